//! The two-step flow for big files: an import created with `start=false` (status `new`)
//! receives its file with `PUT /v1/imports/{id}/file` (whole, or resumable in parts with
//! `Content-Range`), then `POST /v1/imports/{id}/start` queues it.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::{Auth, Member};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::import_options::{ImportSettings, RawOptions};
use super::imports::{check_length, parse_id, stage_error, too_large};
use super::views::{ImportView, import_view};
use crate::engine::reader::Format;
use crate::engine::staging::{detect, stage_with};
use crate::model::ImportStatus;

/// A byte range of a resumable upload: `bytes START-END/TOTAL`.
#[derive(Debug, Clone, Copy)]
struct ContentRange {
    start: u64,
    end: u64,
    total: u64,
}

fn content_range(headers: &HeaderMap) -> ApiResult<Option<ContentRange>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || ApiError::bad_request("Content-Range must be \"bytes START-END/TOTAL\"");
    let text = value.to_str().map_err(|_| bad())?;
    let spec = text.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = spec.split_once('/').ok_or_else(bad)?;
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let r = ContentRange {
        start: start.trim().parse().map_err(|_| bad())?,
        end: end.trim().parse().map_err(|_| bad())?,
        total: total.trim().parse().map_err(|_| bad())?,
    };
    if r.start > r.end || r.end >= r.total {
        return Err(bad());
    }
    Ok(Some(r))
}

/// Reading options that may accompany the file (they concern its bytes).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// `csv`, `tsv`, `ndjson` or `json` (sniffed when absent).
    format: Option<String>,
    /// One character, or `tab`.
    delimiter: Option<String>,
    /// A WHATWG encoding label.
    encoding: Option<String>,
    /// The sheet of a workbook: its name, or its position from 1.
    sheet: Option<String>,
}

/// A part of a file received, more to come.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PartView {
    /// Bytes received so far: the next part starts there.
    received: u64,
    total: u64,
    complete: bool,
}

/// The answer to a file or a part of it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // Made once per answer, and serialized at once.
pub enum UploadAnswer<'a> {
    Part(PartView),
    Whole(UploadedView<'a>),
}

/// The import, once its whole file has arrived.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UploadedView<'a> {
    #[serde(flatten)]
    import: ImportView<'a>,
    /// Bytes of the file received so far.
    file_received: u64,
}

/// Receives the file of an import created with `start=false`: the whole body, or one part
/// of it with `Content-Range` (parts must come in order; a part that does not start where the
/// received bytes end answers 409 with `received`). Once complete, the file is converted,
/// sniffed and kept; the answer is the import.
#[utoipa::path(put, path = "/v1/imports/{id}/file", tag = "imports",
    params(("id" = String, Path, description = "The import's id"), FileQuery,
        ("Content-Range" = Option<String>, Header, description = "`bytes START-END/TOTAL` for one part")),
    request_body(description = "The file's bytes", content((String = "application/octet-stream"))),
    responses((status = 200, body = UploadAnswer)))]
pub async fn upload(
    State(state): State<AppState>,
    auth: Auth<Member>,
    Path(id): Path<String>,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let id = parse_id(&id)?;
    let ws = auth.workspace.id;
    let import = state.store.get_import(ws, id).await?;
    import.lifecycle().expect_waiting()?;
    let [input] = import.tables.as_slice() else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "a stacked import takes its files with the import itself",
        ));
    };
    let Some(key) = input.blob_key.clone() else {
        return Err(ApiError::internal("a new import without a source key"));
    };
    if state
        .engine
        .blobs
        .size(&key)
        .await
        .map_err(ApiError::internal)?
        .is_some()
    {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the import already has its file; start it with POST /v1/imports/{id}/start",
        ));
    }
    let mut raw = RawOptions::new();
    for (k, v) in [
        ("format", &q.format),
        ("delimiter", &q.delimiter),
        ("encoding", &q.encoding),
        ("sheet", &q.sheet),
    ] {
        if let Some(v) = v {
            raw.insert(k.into(), v.clone().into());
        }
    }
    let settings = ImportSettings::parse(&raw)?;
    let limit = state.config.max_upload_bytes;
    let range = content_range(&headers)?;
    if let Some(r) = range
        && r.total > limit
    {
        return Err(too_large(limit));
    }
    check_length(&state, &headers)?;
    let blobs = &state.engine.blobs;
    let received = blobs.part_received(id).await.map_err(ApiError::internal)?;
    let start = match range {
        Some(r) if r.start != received => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "this part starts at byte {}, but {received} bytes were received so far",
                    r.start
                ),
            )
            .with("received", received));
        }
        Some(r) => r.start,
        None => 0,
    };
    if range.is_none() {
        // A whole body starts the upload over.
        blobs.delete_part(id).await.map_err(ApiError::internal)?;
    }
    let received = start;
    let mut sink = blobs
        .begin_part(id, start)
        .await
        .map_err(|e| ApiError::blob("the upload", e))?;
    let mut body = request.into_body().into_data_stream();
    let mut written = 0u64;
    let expected = range.map(|r| r.end - r.start + 1);
    use futures_util::StreamExt;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = sink.abort().await;
                return Err(ApiError::bad_request(format!(
                    "the upload could not be read: {e}"
                )));
            }
        };
        written += chunk.len() as u64;
        if expected.is_some_and(|n| written > n) || received + written > limit {
            let _ = sink.abort().await;
            return Err(if received + written > limit {
                too_large(limit)
            } else {
                ApiError::bad_request("the body is longer than its Content-Range")
            });
        }
        if let Err(e) = sink.write(&chunk).await {
            let _ = sink.abort().await;
            return Err(ApiError::blob("the upload", e));
        }
    }
    if let Some(n) = expected
        && written != n
    {
        let _ = sink.abort().await;
        return Err(ApiError::bad_request(format!(
            "the body has {written} bytes, not the {n} its Content-Range announces"
        )));
    }
    sink.finish()
        .await
        .map_err(|e| ApiError::blob("the upload", e))?;
    let total = received + written;
    if let Some(r) = range
        && total < r.total
    {
        return Ok(Json(UploadAnswer::Part(PartView {
            received: total,
            total: r.total,
            complete: false,
        }))
        .into_response());
    }
    // The whole file is here: convert it as a fresh upload would be, sniff it, keep it.
    let part = blobs
        .assemble_part(id)
        .await
        .map_err(|e| ApiError::blob("the upload", e))?;
    let source = tokio::fs::File::open(&part)
        .await
        .map_err(ApiError::internal)?;
    // Large reads: each chunk is a piece of work handed to the blocking pool.
    let stream = tokio_util::io::ReaderStream::with_capacity(source, 256 << 10);
    let staged = stage_with(
        state.engine.blobs.staging_path(),
        stream,
        &settings.stage_options(),
        limit,
    )
    .await
    .map_err(stage_error)?;
    if staged.size == 0 {
        let _ = tokio::fs::remove_file(&staged.path).await;
        let _ = blobs.delete_part(id).await;
        return Err(super::import_create::empty_file());
    }
    let declared = settings.format.or_else(|| Format::parse(&input.format));
    let sniffed = detect(
        &staged,
        declared,
        settings.delimiter,
        input.file_name.as_deref(),
    );
    let sniffed = match sniffed {
        Ok(s) => s,
        Err(why) => {
            let _ = tokio::fs::remove_file(&staged.path).await;
            let _ = blobs.delete_part(id).await;
            return Err(ApiError::new(
                ErrorCode::UnsupportedFormat,
                format!("the file cannot be read: {why}"),
            ));
        }
    };
    let mut options: crate::engine::options::InputOptions =
        serde_json::from_value(input.options.clone()).unwrap_or_default();
    options.delimiter = sniffed.delimiter;
    options.replaced_sequences = staged.replaced;
    options.sheet = staged.workbook.clone();
    let options = serde_json::to_value(&options).map_err(ApiError::internal)?;
    state
        .store
        .set_input_source(ws, id, input.position, sniffed.format.as_str(), &options)
        .await?;
    state
        .engine
        .blobs
        .commit(&staged.path, &key)
        .await
        .map_err(ApiError::internal)?;
    let _ = blobs.delete_part(id).await;
    let import = state.store.get_import(ws, id).await?;
    Ok(Json(UploadAnswer::Whole(UploadedView {
        import: ImportView::of(&import),
        file_received: staged.size,
    }))
    .into_response())
}

/// Queues an import created with `start=false` once its file is there (202).
#[utoipa::path(post, path = "/v1/imports/{id}/start", tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses((status = 202, body = ImportView)))]
pub async fn start(
    State(state): State<AppState>,
    auth: Auth<Member>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let id = parse_id(&id)?;
    let ws = auth.workspace.id;
    let import = state.store.get_import(ws, id).await?;
    let mut sizes = Vec::with_capacity(import.tables.len());
    for input in &import.tables {
        let size = match &input.blob_key {
            Some(key) => state
                .engine
                .blobs
                .size(key)
                .await
                .map_err(ApiError::internal)?,
            None => None,
        };
        match size {
            Some(n) => sizes.push(n),
            None if import.status == ImportStatus::New => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "the import has no file yet: upload it with PUT /v1/imports/{id}/file",
                ));
            }
            None => sizes.push(0),
        }
    }
    let import = state.engine.start(ws, id, &sizes).await?;
    Ok((StatusCode::ACCEPTED, Json(import_view(&import))))
}
