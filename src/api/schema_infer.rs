//! `POST /v1/schema/infer`: a sample of a source in, a proposed table schema out.

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{Auth, Viewer};
use super::error::{ApiError, ApiResult, ErrorCode};
use crate::engine::reader::{Format, ReaderOptions, RecordBody, SourceReader};
use crate::engine::staging::{detect, stage};
use crate::model::infer::{SampleCell, infer_schema};

/// The most bytes of a sample read, and records looked at.
const SAMPLE_BYTES: u64 = 16 << 20;
const SAMPLE_RECORDS: usize = 1000;

/// Query of the inference route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferQuery {
    format: Option<String>,
    delimiter: Option<String>,
    name: Option<String>,
    /// Cells that mean NULL, as for an import (`NA,,null`): they count as missing, so that
    /// a column of numbers with some `NA` is proposed as numbers, and not required.
    null_values: Option<String>,
}

/// Proposes a schema (types, required, unique, candidate key) from a sample of a source.
pub async fn infer(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    headers: HeaderMap,
    query: Result<Query<InferQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> ApiResult<Json<Value>> {
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
    let staged = stage(
        state.engine.blobs.staging_path(),
        request.into_body().into_data_stream(),
        None,
        SAMPLE_BYTES,
    )
    .await
    .map_err(|e| match e {
        crate::engine::staging::StageError::TooLarge(_) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("a sample may be at most {SAMPLE_BYTES} bytes; send the first rows only"),
        ),
        other => ApiError::bad_request(other.to_string()),
    })?;
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
            tokio::task::spawn_blocking(move || sample(&p, &opts, &nulls))
                .await
                .map_err(ApiError::internal)?
                .map(|(header, rows)| {
                    let schema = infer_schema(&header, &rows);
                    let name = q.name.unwrap_or_else(|| "my_table".into());
                    let table = json!({
                        "name": name,
                        "columns": schema.columns.iter().map(|c| {
                            // Values distinct in a sample say little about the whole file: only the key
                            // (unique by being the key) is proposed as unique.
                            let mut col = json!({"name": c.name, "type": c.r#type, "required": c.required, "unique": false});
                            if let Some(v) = &c.values { col["values"] = json!(v); }
                            col
                        }).collect::<Vec<_>>(),
                        "primary_key": schema.primary_key,
                    });
                    let mapping: serde_json::Map<String, Value> = schema
                        .columns
                        .iter()
                        .filter(|c| c.source != c.name)
                        .map(|c| (c.source.clone(), json!(c.name)))
                        .collect();
                    json!({
                        "format": sn.format.as_str(),
                        "delimiter": (sn.delimiter as char).to_string(),
                        "sampled_rows": schema.sampled_rows,
                        "columns": schema.columns,
                        "primary_key": schema.primary_key,
                        "mapping": mapping,
                        "table": table,
                    })
                })
        }
    };
    let _ = tokio::fs::remove_file(&path).await;
    result.map(Json)
}

type Sample = (Vec<String>, Vec<Vec<Option<SampleCell>>>);

fn sample(path: &std::path::Path, opts: &ReaderOptions, nulls: &[String]) -> ApiResult<Sample> {
    let mut reader = SourceReader::open(path, opts, None)
        .map_err(|e| ApiError::validation(format!("the sample cannot be read: {e}")))?;
    let mut header: Vec<String> = reader.header().map(|h| h.to_vec()).unwrap_or_default();
    let mut objects = Vec::new();
    let mut rows: Vec<Vec<Option<SampleCell>>> = Vec::new();
    while rows.len() + objects.len() < SAMPLE_RECORDS {
        let Some(item) = reader.next_item() else {
            break;
        };
        // A sample cut mid-record (the client sent the first bytes) ends the sample.
        let Ok(item) = item else { break };
        match item.body {
            RecordBody::Fields(rec) => rows.push(
                rec.iter()
                    .map(|f| {
                        let null = f.is_empty() || nulls.iter().any(|n| n == f);
                        (!null).then(|| SampleCell::Text(f.to_owned()))
                    })
                    .collect(),
            ),
            RecordBody::Object(obj, _) => objects.push(obj),
            RecordBody::Bad { .. } => {}
        }
    }
    if !objects.is_empty() {
        for obj in &objects {
            for k in obj.keys() {
                if !header.contains(k) {
                    header.push(k.clone());
                }
            }
        }
        rows = objects
            .into_iter()
            .map(|obj| {
                header
                    .iter()
                    .map(|k| match obj.get(k) {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) if nulls.iter().any(|n| n == s) => None,
                        Some(Value::String(s)) => Some(SampleCell::Text(s.clone())),
                        Some(v) => Some(SampleCell::Json(v.clone())),
                    })
                    .collect()
            })
            .collect();
    }
    Ok((header, rows))
}
