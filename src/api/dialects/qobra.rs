//! Qobra's imports (`/compat/qobra`): `GET /v1/imports/{import_id}` (an import with one
//! detail entry per table, row errors as parsing errors) and
//! `POST /v1/tables/{data_table_key}/records/bulk` (records in, an import id out).
//!
//! `X-API-Key` carries an Intake key. Errors are `{"detail": "..."}`, the default body of the
//! Python frameworks Qobra's API answers from.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get, routing::post};
use serde_json::{Value, json};

use super::{
    InlineImport, Records, caller, create_inline_import, header, import_id, parse_json, percent,
    read_body, row_errors, seconds, written,
};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorCode};
use crate::model::{ImportStatus, Role, Source};
use crate::store::{
    ImportRecord, ImportTableRecord, KeyRecord, StoreError, StoredRowError, Workspace,
};

/// Row errors shown per import (the first ones, in source order).
const MAX_DETAILS: u32 = 1000;

/// The routes, relative to `/compat/qobra`.
pub(in crate::api) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/imports/{import_id}", get(fetch_import))
        .route(
            "/v1/tables/{data_table_key}/records/bulk",
            post(ingest_records),
        )
        .fallback(|| async { QobraError::new(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            QobraError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
}

/// A Qobra error answer: `{"detail": "..."}`.
pub(super) struct QobraError {
    status: StatusCode,
    detail: String,
}

impl QobraError {
    fn new(status: StatusCode, detail: impl Into<String>) -> QobraError {
        QobraError {
            status,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for QobraError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

impl From<ApiError> for QobraError {
    fn from(e: ApiError) -> QobraError {
        let detail = match e.code {
            ErrorCode::Internal => "Internal Server Error".to_owned(),
            _ => e.message,
        };
        QobraError::new(e.code.status(), detail)
    }
}

impl From<StoreError> for QobraError {
    fn from(e: StoreError) -> QobraError {
        ApiError::from(e).into()
    }
}

type QobraResult<T> = Result<T, QobraError>;

/// The workspace of the `X-API-Key`, whose role must be at least `role`.
async fn authorize(state: &AppState, headers: &HeaderMap, role: Role) -> QobraResult<Workspace> {
    authorize_key(state, headers, role).await.map(|(_, ws)| ws)
}

/// The bearer key and its workspace, for the routes that write (the key's scope applies).
async fn authorize_key(
    state: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> QobraResult<(KeyRecord, Workspace)> {
    let Some((key, ws)) = caller(state, header(headers, "x-api-key")).await? else {
        return Err(QobraError::new(
            StatusCode::UNAUTHORIZED,
            "Invalid or missing API key: send X-API-Key: <key>",
        ));
    };
    if key.role < role {
        return Err(QobraError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this action needs a key with role {} or above",
                role.as_str()
            ),
        ));
    }
    Ok((key, ws))
}

/// Qobra's three statuses: waiting, running, ended (whatever the ending).
fn status(s: ImportStatus) -> &'static str {
    match s {
        ImportStatus::New | ImportStatus::Queued => "scheduled",
        ImportStatus::Processing | ImportStatus::RollingBack => "started",
        _ => "finished",
    }
}

/// Percent done; every ended import shows 100, as its status is `finished`.
fn progress(s: ImportStatus, read: u64, total: u64) -> u64 {
    if s.is_terminal() {
        100
    } else {
        percent(s, read, total)
    }
}

/// Where an import came from: `api` for records sent through an API, `csv` for uploaded
/// files, `integration` for imports labelled with another platform (e.g. Rybbit events).
fn origin(i: &ImportRecord) -> &'static str {
    match i.platform.as_deref() {
        Some(p) if p != i.source.as_str() => "integration",
        _ => match i.source {
            Source::Api | Source::Inline => "api",
            _ => "csv",
        },
    }
}

/// The `error` of one table: why it failed or stopped, and its rejected rows.
fn table_error(i: &ImportRecord, t: &ImportTableRecord, errors: &[&StoredRowError]) -> Value {
    let details: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({
                "line_number": e.error.line,
                "row": e.error.row,
                "details": format!("{}: {}", e.error.code.as_str(), e.error.message),
            })
        })
        .collect();
    let (title, description) = match t.status {
        ImportStatus::Failed => (
            "ImportError",
            t.error
                .clone()
                .or_else(|| i.error.clone())
                .unwrap_or_else(|| "the import failed".to_owned()),
        ),
        ImportStatus::Unsupported => (
            "UnsupportedFormat",
            t.error
                .clone()
                .or_else(|| i.error.clone())
                .unwrap_or_else(|| "the source is not in a supported format".to_owned()),
        ),
        ImportStatus::Cancelled => (
            "Cancelled",
            "the import was cancelled before this table finished".to_owned(),
        ),
        ImportStatus::RolledBack | ImportStatus::RollingBack => (
            "RolledBack",
            "the import was rolled back: its changes to this table are undone".to_owned(),
        ),
        _ if t.counts.invalid > 0 => (
            "ParsingError",
            errors.first().map_or_else(
                || format!("{} records could not be imported", t.counts.invalid),
                |e| e.error.message.clone(),
            ),
        ),
        _ => return Value::Null,
    };
    json!({
        "title": title,
        "description": description,
        "parsing_error_details": details,
    })
}

/// One table of an import as a `data_tables_details` entry.
fn table_view(i: &ImportRecord, t: &ImportTableRecord, errors: &[&StoredRowError]) -> Value {
    // Rows imported, once the table has loaded them; null while running and for a table
    // whose load failed, stopped or was undone.
    let records = matches!(
        t.status,
        ImportStatus::Complete | ImportStatus::PartiallyComplete
    )
    .then(|| written(&t.counts));
    json!({
        "type": origin(i),
        "status": status(t.status),
        "data_table_key": t.table,
        "progress": progress(t.status, t.bytes_read, t.bytes_total),
        "number_of_records": records,
        "error": table_error(i, t, errors),
    })
}

/// `GET /v1/imports/{import_id}`.
async fn fetch_import(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> QobraResult<Json<Value>> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let not_found = || QobraError::new(StatusCode::NOT_FOUND, "Import not found");
    let id = import_id(&id).map_err(|_| not_found())?;
    let import = match state.store.get_import(ws.id, id).await {
        Ok(i) => i,
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let errors = if import.counts.invalid > 0 {
        row_errors(&state, ws.id, id, MAX_DETAILS).await?
    } else {
        Vec::new()
    };
    let mut by_table: BTreeMap<&str, Vec<&StoredRowError>> = BTreeMap::new();
    for e in &errors {
        by_table.entry(e.table.as_str()).or_default().push(e);
    }
    let tables: Vec<Value> = import
        .tables
        .iter()
        .map(|t| {
            let errs = by_table.get(t.table.as_str()).map_or(&[][..], |v| &v[..]);
            table_view(&import, t, errs)
        })
        .collect();
    Ok(Json(json!({
        "data_import": {
            "id": import.id,
            "created_at": seconds(import.created_at),
            "launched_at": import.started_at.map(seconds),
            "finished_at": if import.status.is_terminal() { import.completed_at.map(seconds) } else { None },
            "status": status(import.status),
            "progress": progress(import.status, import.bytes_read, import.bytes_total),
            "data_tables_details": tables,
        }
    })))
}

/// Query of the bulk route.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkQuery {
    all: Option<String>,
    debounce: Option<String>,
}

/// `POST /v1/tables/{data_table_key}/records/bulk`: the body is a list of records (or
/// `{"records": [...]}`); `all=true` replaces the table's content with them, otherwise
/// records are upserted by the table's key (inserted when it has none).
async fn ingest_records(
    State(state): State<AppState>,
    Path(table): Path<String>,
    query: Result<Query<BulkQuery>, QueryRejection>,
    headers: HeaderMap,
    request: Request,
) -> QobraResult<Response> {
    let (key, ws) = authorize_key(&state, &headers, Role::Member).await?;
    let Query(q) = query.map_err(|e| QobraError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let all = match q.all.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(QobraError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("all must be true or false, not {other:?}"),
            ));
        }
    };
    match q.debounce.as_deref().map(str::parse::<u64>) {
        None | Some(Ok(0)) => {}
        // Debounced imports stack several requests into one; Intake starts each at once,
        // which would make a second `all=true` request erase the first one's records.
        Some(Ok(_)) => {
            return Err(QobraError::new(
                StatusCode::BAD_REQUEST,
                "debounce is not supported: send all the records of an all=true import in one request",
            ));
        }
        Some(Err(_)) => {
            return Err(QobraError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "debounce must be a whole number of seconds",
            ));
        }
    }
    let body = parse_json(&read_body(&state, request).await?)?;
    let records = match body {
        Value::Array(items) => items,
        Value::Object(mut obj) if obj.len() == 1 => match obj.remove("records") {
            Some(Value::Array(items)) => items,
            _ => return Err(records_expected()),
        },
        _ => return Err(records_expected()),
    };
    let has_key = match state.store.get_table(&ws, &table).await {
        Ok(t) => !t.schema.primary_key.is_empty(),
        Err(StoreError::NotFound(_)) => {
            return Err(QobraError::new(
                StatusCode::NOT_FOUND,
                format!("Data table {table:?} not found"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mode = if all {
        "replace"
    } else if has_key {
        "upsert"
    } else {
        "insert"
    };
    let options = [
        ("table".to_owned(), Value::String(table)),
        ("mode".to_owned(), Value::String(mode.to_owned())),
    ]
    .into_iter()
    .collect();
    let import = create_inline_import(
        &state,
        &ws,
        InlineImport {
            options,
            records: Records::Json(records),
            source: Source::Api,
            key,
        },
    )
    .await?;
    Ok(Json(json!({ "import_id": import.id })).into_response())
}

fn records_expected() -> QobraError {
    QobraError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "the body must be a list of records (objects keyed by field API name)",
    )
}
