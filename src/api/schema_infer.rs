//! `POST /v1/schema/infer`: a sample of a source in, a proposed table schema out.

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Auth, Viewer};
use super::error::{ApiError, ApiResult, ErrorCode};
use crate::engine::reader::{Format, ReaderOptions, RecordBody, SourceReader};
use crate::engine::staging::{StageError, StageOptions, detect, stage_with};
use crate::engine::workbook::WorkbookError;
use crate::model::infer::{Claims, Inference, InferredColumn, InferredSchema};

/// The most bytes of a sample read, and records looked at.
const SAMPLE_BYTES: u64 = 16 << 20;
const SAMPLE_RECORDS: u64 = 1000;

/// A proposed schema, and the table and mapping to use it.
#[derive(Serialize, ToSchema)]
pub struct InferredView {
    /// The format read (`csv`, `tsv`, `ndjson`, `json`; a workbook's sheet is read as
    /// `ndjson`).
    format: &'static str,
    delimiter: String,
    /// Records the proposal is based on.
    sampled_rows: u64,
    columns: Vec<InferredColumn>,
    /// The proposed key: one column, or none.
    primary_key: Vec<String>,
    /// Source field → column, as an import's `mapping` takes it.
    mapping: serde_json::Map<String, Value>,
    /// The table as `POST /v1/tables` takes it.
    table: Value,
    /// For a workbook, a zip or a zstd file (which a browser cannot read): the first rows of
    /// what it holds, as text (NDJSON for a sheet, line n being the sheet's row n).
    #[serde(skip_serializing_if = "Option::is_none")]
    sample: Option<String>,
    /// The sheet read, for a workbook.
    #[serde(skip_serializing_if = "Option::is_none")]
    sheet: Option<String>,
}

/// Query of the inference route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InferQuery {
    /// `csv`, `tsv`, `ndjson` or `json` (sniffed when absent).
    format: Option<String>,
    /// One character, or `tab`.
    delimiter: Option<String>,
    /// The proposed table's name (default `my_table`).
    name: Option<String>,
    /// Cells that mean NULL, as for an import (`NA,,null`): they count as missing, so that
    /// a column of numbers with some `NA` is proposed as numbers, and not required.
    null_values: Option<String>,
    /// Propose enums for short closed sets of values seen in the sample.
    #[serde(default)]
    enums: bool,
    /// Mark columns complete in the sample required.
    #[serde(default)]
    required: bool,
    /// Mark columns distinct in the sample unique, and propose a key.
    #[serde(default)]
    unique: bool,
    /// The sheet of a workbook: its name, or its position from 1 (default: the first).
    sheet: Option<String>,
}

/// Proposes a schema (types, required, unique, candidate key) from a sample of a source.
#[utoipa::path(post, path = "/v1/schema/infer", tag = "tables", params(InferQuery),
    request_body(description = "A sample of the source (its first 16 MiB are read); a \
        workbook, zip or zstd file whole",
        content((String = "text/csv"), (String = "application/x-ndjson"),
            (String = "application/octet-stream"))),
    responses((status = 200, body = InferredView)))]
pub async fn infer(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    headers: HeaderMap,
    query: Result<Query<InferQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> ApiResult<Json<InferredView>> {
    let Query(q) = query?;
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let declared = match q.format.as_deref() {
        Some(f) => Some(
            Format::parse(f)
                .ok_or_else(|| ApiError::validation(format!("unknown format {f:?}")))?,
        ),
        None => match mime.as_str() {
            "text/csv" => Some(Format::Csv),
            "text/tab-separated-values" => Some(Format::Tsv),
            "application/x-ndjson" => Some(Format::Ndjson),
            "application/json" => Some(Format::Json),
            _ => None,
        },
    };
    let delimiter = match q.delimiter.as_deref() {
        None => None,
        Some("tab") | Some("\\t") => Some(b'\t'),
        Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
        Some(d) => {
            return Err(ApiError::validation(format!(
                "delimiter must be one character, not {d:?}"
            )));
        }
    };
    let options = StageOptions {
        encoding: None,
        sheet: q.sheet.clone(),
    };
    let staged = stage_with(
        state.engine.blobs.staging_path(),
        request.into_body().into_data_stream(),
        &options,
        SAMPLE_BYTES,
    )
    .await
    .map_err(|e| match e {
        StageError::TooLarge(_) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("a sample may be at most {SAMPLE_BYTES} bytes; send the first rows only"),
        ),
        StageError::Workbook(e @ WorkbookError::Sheet(_)) => ApiError::validation(e.to_string()),
        StageError::Workbook(e @ WorkbookError::TooLarge(_)) => {
            ApiError::new(ErrorCode::PayloadTooLarge, e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    })?;
    // What a workbook or compressed file holds, as text the caller can preview: a browser
    // cannot read those itself.
    let converted = (staged.workbook.is_some() || staged.compression.is_some()).then(|| {
        let cut = staged
            .head
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        String::from_utf8_lossy(&staged.head[..cut]).into_owned()
    });
    let sheet = staged.workbook.as_ref().map(|w| w.sheet.clone());
    let sniffed = detect(&staged, declared, delimiter, None);
    let path = staged.path.clone();
    let result = match sniffed {
        Err(why) => Err(ApiError::new(
            ErrorCode::UnsupportedFormat,
            format!("the sample cannot be read: {why}"),
        )),
        Ok(sn) => {
            let opts = ReaderOptions {
                format: sn.format,
                delimiter: sn.delimiter,
                has_header: true,
                max_field_bytes: state.engine.config.max_field_bytes,
                max_record_bytes: state.engine.config.max_record_bytes,
            };
            let p = path.clone();
            let nulls: Vec<String> = match q.null_values.as_deref() {
                Some(list) => list.split(',').map(str::to_owned).collect(),
                None => vec![String::new()],
            };
            // A sample says little about the rest of a file: only what is asked is claimed.
            let claims = Claims {
                enums: q.enums,
                required: q.required,
                unique: q.unique,
                key: q.unique,
                missing_tokens: false,
            };
            tokio::task::spawn_blocking(move || sample(&p, &opts, &nulls, claims))
                .await
                .map_err(ApiError::internal)?
                .map(|schema| {
                    let name = q.name.unwrap_or_else(|| "my_table".into());
                    InferredView {
                        format: sn.format.as_str(),
                        delimiter: (sn.delimiter as char).to_string(),
                        sampled_rows: schema.sampled_rows,
                        mapping: schema.mapping(),
                        table: schema.table(&name),
                        columns: schema.columns,
                        primary_key: schema.primary_key,
                        sample: converted,
                        sheet,
                    }
                })
        }
    };
    let _ = tokio::fs::remove_file(&path).await;
    result.map(Json)
}

/// Profiles the first records of a sample; a record cut off by the sample's end ends it.
fn sample(
    path: &std::path::Path,
    opts: &ReaderOptions,
    nulls: &[String],
    claims: Claims,
) -> ApiResult<InferredSchema> {
    let mut reader = SourceReader::open(path, opts, None)
        .map_err(|e| ApiError::validation(format!("the sample cannot be read: {e}")))?;
    let header: Vec<String> = reader.header().map(|h| h.to_vec()).unwrap_or_default();
    let mut inference = Inference::new(&header, claims, nulls);
    while inference.records() < SAMPLE_RECORDS {
        let Some(Ok(item)) = reader.next_item() else {
            break;
        };
        match item.body {
            RecordBody::Fields(rec) => inference.add_fields(rec.iter()),
            RecordBody::Object(obj) => {
                let fields = obj.to_values();
                inference.add_object(fields.iter().map(|(k, v)| (k, v)));
            }
            RecordBody::Bad { .. } => {}
        }
    }
    Ok(inference.finish())
}
