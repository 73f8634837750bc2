//! Compatibility dialects: five vendors' documented import APIs (`../shared/seeds/`), each
//! served under `/compat/<vendor>` by one small module that translates the vendor's requests,
//! authentication, shapes and error bodies onto Intake's own store and engine. No dialect keeps
//! state of its own: everything they answer is read from, or written to, the same imports the
//! native API shows. `docs/dialects/<vendor>.md` documents each mapping. Each vendor's
//! `router()` is nested at `/compat/<vendor>` by the route table (`api::router`), directly,
//! so that its own 404 and 405 answers apply under its prefix.

pub(super) mod commercelayer;
pub(super) mod fleetio;
pub(super) mod qobra;
pub(super) mod rocketchat;
pub(super) mod rybbit;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::import_options::{ImportSettings, RawOptions};
use crate::engine::reader::Format;
use crate::engine::staging::{StageError, Staged, stage};
use crate::engine::{StagedSource, Submission, SubmitError, Submitted};
use crate::model::{ImportStatus, Source};
use crate::store::{
    ImportRecord, KeyRecord, NewImportInput, StoreError, StoreResult, StoredRowError, Workspace,
};

/// The key a request presents and its workspace; `None` when there is no key, or when it is
/// unknown or revoked (each vendor words that its own way).
async fn caller(
    state: &AppState,
    token: Option<&str>,
) -> ApiResult<Option<(KeyRecord, Workspace)>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match super::auth::authenticate(state, Some(token)).await {
        Ok(found) => Ok(Some(found)),
        Err(e) if e.code == ErrorCode::Unauthenticated => Ok(None),
        Err(e) => Err(e),
    }
}

/// A header's value, trimmed; `None` when absent, empty or not text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The token of `Authorization: <scheme> <token>` for the given scheme (case-insensitive).
fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = header(headers, "authorization")?;
    let (given, token) = value.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Percent done, as the native API computes it: bytes read over bytes total, 100 once the
/// rows are all in.
fn percent(status: ImportStatus, read: u64, total: u64) -> u64 {
    match status {
        ImportStatus::Complete | ImportStatus::PartiallyComplete => 100,
        _ if total == 0 => 0,
        _ => (read.saturating_mul(100) / total).min(99),
    }
}

/// `2024-01-10T12:00:00.000Z`: UTC with milliseconds, as the JavaScript vendors print dates.
fn millis(t: OffsetDateTime) -> String {
    crate::store::sort_key(t)
}

/// `2024-06-25T09:58:32Z`: UTC to the second.
fn seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an RFC 3339 timestamp.
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).ok()
}

/// Parses an import id (a UUID); anything else is an import that does not exist.
fn import_id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s.trim()).map_err(|_| ApiError::not_found("import"))
}

/// Reads a request body of at most the inline limit.
async fn read_body(state: &AppState, request: Request) -> ApiResult<Bytes> {
    let limit = state.config.max_inline_bytes;
    axum::body::to_bytes(
        request.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    })
}

/// Parses a JSON body.
fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// Up to `cap` stored row errors of an import, in source order.
async fn row_errors(
    state: &AppState,
    workspace_id: Uuid,
    id: Uuid,
    cap: u32,
) -> ApiResult<Vec<StoredRowError>> {
    let read = |after, limit: u32| {
        state
            .store
            .list_row_errors(workspace_id, id, after, limit.min(1000))
    };
    Ok(read_up_to(cap, |e: &StoredRowError| e.id, read).await?)
}

/// A list the store pages by id, read from its start up to `cap` items: `page(after, limit)`
/// answers at most `limit` items after the one whose id is `after`; `id_of` gives an item's id.
async fn read_up_to<T, P, F>(cap: u32, id_of: fn(&T) -> i64, mut page: P) -> StoreResult<Vec<T>>
where
    P: FnMut(Option<i64>, u32) -> F,
    F: std::future::Future<Output = StoreResult<Vec<T>>>,
{
    let mut out: Vec<T> = Vec::new();
    while (out.len() as u32) < cap {
        let next = page(out.last().map(id_of), cap - out.len() as u32).await?;
        if next.is_empty() {
            break;
        }
        out.extend(next);
    }
    Ok(out)
}

fn stage_error(e: StageError) -> ApiError {
    match e {
        StageError::TooLarge(limit) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the records are larger than the limit of {limit} bytes"),
        ),
        StageError::Body(m) => ApiError::bad_request(m),
        StageError::Io(e) => ApiError::io("the records", &e),
        e => super::imports::stage_error(e),
    }
}

/// Streams bytes to a staged file (the same staging every upload goes through).
async fn stage_bytes(state: &AppState, bytes: Vec<u8>) -> ApiResult<Staged> {
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]);
    stage(
        state.engine.blobs.staging_path(),
        chunks,
        None,
        state.config.max_upload_bytes,
    )
    .await
    .map_err(stage_error)
}

/// The records of an import made through a dialect.
enum Records {
    /// JSON records, staged as NDJSON (a record's line is its position, 1-based).
    Json(Vec<Value>),
    /// CSV text with a header line.
    Csv(String),
}

/// An import a dialect creates from records sent in its request.
struct InlineImport {
    /// Native options (`table`, `mode`, `cleanup_records`, `reference`, `metadata`, ...),
    /// checked exactly as `POST /v1/imports` checks them.
    options: RawOptions,
    records: Records,
    source: Source,
    /// The key that sends it: its scope limits the tables it may load.
    key: KeyRecord,
}

/// Creates and queues an import from records, through the native options and the same
/// staging, store and engine as `POST /v1/imports`.
async fn create_inline_import(
    state: &AppState,
    ws: &Workspace,
    spec: InlineImport,
) -> ApiResult<ImportRecord> {
    let settings = ImportSettings::parse(&spec.options)?;
    let table_name = settings
        .table
        .clone()
        .ok_or_else(|| ApiError::validation("say which table to load"))?;
    super::auth::check_scope(&spec.key, &table_name)?;
    let table = match state.store.get_table(ws, &table_name).await {
        Ok(t) => t,
        Err(StoreError::NotFound(_)) => return Err(ApiError::not_found("table")),
        Err(e) => return Err(e.into()),
    };
    settings.check_against(&table.schema)?;
    let (bytes, format) = match spec.records {
        Records::Json(items) => {
            let mut text = Vec::new();
            for item in &items {
                serde_json::to_writer(&mut text, item).map_err(ApiError::internal)?;
                text.push(b'\n');
            }
            (text, Format::Ndjson)
        }
        Records::Csv(text) => (text.into_bytes(), Format::Csv),
    };
    let staged = stage_bytes(state, bytes).await?;
    let result = async {
        let id = Uuid::now_v7();
        let mut options = settings.input_options(b',');
        options.records_are_lines = format == Format::Ndjson;
        let inputs = vec![NewImportInput {
            table: table_name.clone(),
            blob_key: Some(format!("{id}-0")),
            format: format.as_str().to_owned(),
            options: serde_json::to_value(&options).map_err(ApiError::internal)?,
            file_name: None,
            file_size: Some(staged.size),
        }];
        let new = settings.new_import(id, ws.id, ImportStatus::Queued, spec.source, None, inputs);
        let submission = Submission {
            import: new,
            sources: vec![StagedSource {
                path: &staged.path,
                sha256: &staged.sha256,
                table: None,
                file_name: None,
            }],
            idempotency_key: None,
            canonical: &settings.canonical,
        };
        let submitted = state.engine.submit(submission).await.map_err(|e| match e {
            SubmitError::Blob(e) => ApiError::internal(e),
            SubmitError::Store(e) => e.into(),
        })?;
        match submitted {
            Submitted::Created(import) => Ok(*import),
            Submitted::Replayed { .. } => Err(ApiError::internal(
                "an import without an idempotency key was answered as a replay",
            )),
        }
    }
    .await;
    let _ = tokio::fs::remove_file(&staged.path).await;
    result
}

/// The per-table numbers every dialect derives its counts from: rows written (created,
/// updated or unchanged) of a table or import.
fn written(c: &crate::model::Counts) -> u64 {
    c.created + c.updated + c.unchanged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_to_the_millisecond_and_to_the_second() {
        let t = time::macros::datetime!(2024-01-10 12:04:30.25 UTC);
        assert_eq!(millis(t), "2024-01-10T12:04:30.250Z");
        assert_eq!(seconds(t), "2024-01-10T12:04:30Z");
    }

    #[test]
    fn an_authorization_header_is_read_for_its_scheme_only() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Token abc".parse().unwrap());
        assert_eq!(authorization(&h, "token"), Some("abc"));
        assert_eq!(authorization(&h, "Bearer"), None);
    }
}
