//! Rybbit's site imports (`/compat/rybbit`): list a site's imports, create an import for a
//! platform, post event batches until `isLastBatch`, delete an import with its events.
//!
//! A site is the workspace (its id or slug); keys must be admin or owner. Events land in the
//! workspace's table `rybbit_events`, created on first use: while an import collects batches
//! it stays `new` and each batch is appended to its staged NDJSON source; the last batch
//! queues it for the engine. Errors are Rybbit's `{"error": "..."}`.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{authorization, caller, millis, parse_json, read_body};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorCode};
use crate::engine::options::InputOptions;
use crate::engine::{Submission, SubmitError, Submitted};
use crate::model::schema::RawTableSchema;
use crate::model::{Forget, ImportStatus, Mode, OnError, Refusal, Role, Source, TableSchema};
use crate::store::{
    ImportField, ImportRecord, ImportSearch, NewImport, NewImportInput, SortKey, SortSpec,
    StoreError, Workspace,
};

/// The table a site's imported events land in.
pub const EVENTS_TABLE: &str = "rybbit_events";

/// The most imports a site's list shows (the newest).
const LIST_LIMIT: u32 = 1000;

/// The routes, relative to `/compat/rybbit`.
pub(in crate::api) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{site}/imports", get(list).post(create))
        .route("/api/sites/{site}/imports/{import_id}/events", post(batch))
        .route("/api/sites/{site}/imports/{import_id}", delete(remove))
        .fallback(|| async { RybbitError::new(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            RybbitError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
}

/// A Rybbit error answer: `{"error": "..."}`.
pub(super) struct RybbitError {
    status: StatusCode,
    message: String,
}

impl RybbitError {
    fn new(status: StatusCode, message: impl Into<String>) -> RybbitError {
        RybbitError {
            status,
            message: message.into(),
        }
    }

    fn validation() -> RybbitError {
        RybbitError::new(StatusCode::BAD_REQUEST, "Validation error")
    }
}

impl IntoResponse for RybbitError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<ApiError> for RybbitError {
    fn from(e: ApiError) -> RybbitError {
        let message = match e.code {
            ErrorCode::Internal => "Internal server error".to_owned(),
            ErrorCode::Unauthenticated => "Unauthorized".to_owned(),
            ErrorCode::Forbidden => "Forbidden".to_owned(),
            ErrorCode::InvalidJson => "Validation error".to_owned(),
            _ => e.message,
        };
        RybbitError::new(e.code.status(), message)
    }
}

impl From<StoreError> for RybbitError {
    fn from(e: StoreError) -> RybbitError {
        ApiError::from(e).into()
    }
}

type RybbitResult<T> = Result<T, RybbitError>;

/// The workspace a site names, for an admin or owner key of that workspace.
async fn site_admin(state: &AppState, headers: &HeaderMap, site: &str) -> RybbitResult<Workspace> {
    let Some((key, ws)) = caller(state, authorization(headers, "bearer")).await? else {
        return Err(RybbitError::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
    };
    if key.role < Role::Admin {
        tracing::debug!(key = %key.id, "rybbit: imports need an admin or owner key");
        return Err(RybbitError::new(StatusCode::FORBIDDEN, "Forbidden"));
    }
    // Its imports all load one table, which a scoped key must be allowed.
    if crate::api::auth::check_scope(&key, EVENTS_TABLE).is_err() {
        tracing::debug!(key = %key.id, "rybbit: the key's scope leaves out {EVENTS_TABLE}");
        return Err(RybbitError::new(StatusCode::FORBIDDEN, "Forbidden"));
    }
    // Another workspace's site (or one that does not exist) is not this key's to see.
    if site != ws.slug && site != ws.id.to_string() {
        return Err(RybbitError::new(StatusCode::FORBIDDEN, "Forbidden"));
    }
    Ok(ws)
}

/// One import as Rybbit lists it.
fn import_view(i: &ImportRecord) -> Value {
    json!({
        "importId": i.id,
        "platform": i.platform.clone().unwrap_or_else(|| i.source.as_str().to_owned()),
        "importedEvents": i.counts.created + i.counts.updated,
        "skippedEvents": i.counts.unchanged,
        "invalidEvents": i.counts.invalid,
        // Rybbit's import starts when it is created (batches follow at once).
        "startedAt": millis(i.created_at),
        "completedAt": if i.status.is_terminal() { i.completed_at.map(millis) } else { None },
    })
}

/// `GET /api/sites/:site/imports`: the site's imports, newest first.
async fn list(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> RybbitResult<Json<Value>> {
    let ws = site_admin(&state, &headers, &site).await?;
    let page = state
        .store
        .search_imports(
            ws.id,
            &ImportSearch {
                sort: vec![SortSpec {
                    key: SortKey::Field(ImportField::CreatedAt),
                    descending: true,
                }],
                limit: LIST_LIMIT,
                ..Default::default()
            },
        )
        .await?;
    Ok(Json(json!({
        "data": page.imports.iter().map(import_view).collect::<Vec<_>>()
    })))
}

/// The schema of the events table (documented in `docs/dialects/rybbit.md`).
fn events_schema() -> Result<TableSchema, ApiError> {
    let raw: RawTableSchema = serde_json::from_value(json!({
        "name": EVENTS_TABLE,
        "columns": [
            {"name": "timestamp", "type": "datetime", "required": true},
            {"name": "type", "type": "string"},
            {"name": "event_name", "type": "string"},
            {"name": "hostname", "type": "string"},
            {"name": "pathname", "type": "string"},
            {"name": "session_id", "type": "string"},
            {"name": "user_id", "type": "string"},
            {"name": "platform", "type": "string", "required": true},
            {"name": "event", "type": "json", "required": true}
        ]
    }))
    .map_err(ApiError::internal)?;
    Ok(TableSchema::parse(raw)?)
}

/// Creates the events table unless it exists.
async fn ensure_events_table(state: &AppState, ws: &Workspace) -> Result<(), ApiError> {
    match state.store.get_table(ws, EVENTS_TABLE).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound(_)) => match state.store.create_table(ws, &events_schema()?).await
        {
            // Two first imports racing: one creates it, the other finds it made.
            Ok(_) | Err(StoreError::Refused(Refusal::TableExists(_))) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/sites/:site/imports` `{"platform": "..."}`: an import waiting for batches.
async fn create(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> RybbitResult<Json<Value>> {
    let ws = site_admin(&state, &headers, &site).await?;
    let body = parse_json(&read_body(&state, request).await?)?;
    let platform = match body {
        Value::Object(obj) if obj.len() == 1 => match obj.get("platform") {
            Some(Value::String(p)) if !p.trim().is_empty() && p.chars().count() <= 100 => {
                p.trim().to_owned()
            }
            _ => return Err(RybbitError::validation()),
        },
        _ => return Err(RybbitError::validation()),
    };
    ensure_events_table(&state, &ws).await?;
    let id = uuid::Uuid::now_v7();
    let key = format!("{id}-0");
    // Batches arrive as parts of the source (kept where any process finds them); the last
    // one assembles them into the source itself.
    let options = InputOptions {
        records_are_lines: true,
        ..Default::default()
    };
    let new = NewImport {
        id,
        workspace_id: ws.id,
        status: ImportStatus::New,
        source: Source::Api,
        mode: Mode::Insert,
        on_error: OnError::Skip,
        max_errors: None,
        dry_run: false,
        cleanup_records: false,
        reference: None,
        reference_origin: None,
        metadata: json!({}),
        note: None,
        platform: Some(platform),
        error: None,
        inputs: vec![NewImportInput {
            table: EVENTS_TABLE.to_owned(),
            blob_key: Some(key.clone()),
            format: "ndjson".to_owned(),
            options: serde_json::to_value(&options).map_err(ApiError::internal)?,
            file_name: None,
            file_size: Some(0),
        }],
        idempotency: None,
    };
    let submission = Submission {
        import: new,
        sources: Vec::new(),
        idempotency_key: None,
        canonical: "",
    };
    let import = match state.engine.submit(submission).await {
        Ok(Submitted::Created(import)) => import,
        Ok(Submitted::Replayed { .. }) => {
            return Err(ApiError::internal("a new import was answered as a replay").into());
        }
        Err(SubmitError::Blob(e)) => {
            let _ = state.engine.blobs.delete(&key).await;
            return Err(ApiError::internal(e).into());
        }
        Err(SubmitError::Store(e)) => {
            let _ = state.engine.blobs.delete(&key).await;
            return Err(e.into());
        }
    };
    let today = OffsetDateTime::now_utc().date();
    let latest = format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    Ok(Json(json!({
        "data": {
            "importId": import.id,
            // Intake keeps no import quota: every date is allowed.
            "allowedDateRange": {
                "earliestAllowedDate": "1970-01-01",
                "latestAllowedDate": latest,
            }
        }
    })))
}

/// The first of `names` the event has as a scalar value.
fn first_scalar(event: &Map<String, Value>, names: &[&str]) -> Option<Value> {
    names.iter().find_map(|n| match event.get(*n) {
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Some(v.clone()),
        _ => None,
    })
}

/// The events-table row of one posted event: a few well-known fields lifted into columns
/// (under the names Rybbit's platforms use), and the whole event kept as JSON. A value that
/// is not an object is kept as is, for the reader to reject it as a row error.
fn event_row(platform: &str, event: Value) -> Value {
    let Value::Object(obj) = event else {
        return event;
    };
    let mut row = Map::new();
    let lifted: [(&str, &[&str]); 7] = [
        (
            "timestamp",
            &["timestamp", "created_at", "date", "datetime", "time"],
        ),
        ("type", &["type", "event_type"]),
        ("event_name", &["event_name", "name"]),
        ("hostname", &["hostname"]),
        ("pathname", &["pathname", "url_path", "path", "page"]),
        ("session_id", &["session_id"]),
        ("user_id", &["user_id", "distinct_id"]),
    ];
    for (column, names) in lifted {
        if let Some(v) = first_scalar(&obj, names) {
            row.insert(column.to_owned(), v);
        }
    }
    row.insert("platform".to_owned(), Value::String(platform.to_owned()));
    row.insert("event".to_owned(), Value::Object(obj));
    Value::Object(row)
}

/// `POST /api/sites/:site/imports/:importId/events` `{"events": [...], "isLastBatch": bool}`.
async fn batch(
    State(state): State<AppState>,
    Path((site, import_id)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> RybbitResult<Response> {
    let ws = site_admin(&state, &headers, &site).await?;
    let id = uuid::Uuid::parse_str(&import_id).map_err(|_| RybbitError::validation())?;
    let body = parse_json(&read_body(&state, request).await?)?;
    let Value::Object(mut obj) = body else {
        return Err(RybbitError::validation());
    };
    let last = match obj.remove("isLastBatch") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(RybbitError::validation()),
    };
    let Some(Value::Array(events)) = obj.remove("events") else {
        return Err(RybbitError::validation());
    };
    if !obj.is_empty() {
        return Err(RybbitError::validation());
    }
    let import = match state.store.get_import(ws.id, id).await {
        Ok(i) => i,
        Err(StoreError::NotFound(_)) => {
            return Err(RybbitError::new(StatusCode::NOT_FOUND, "Import not found"));
        }
        Err(e) => return Err(e.into()),
    };
    if import.status != ImportStatus::New {
        // A lost answer to the last batch is retried: answer it again, adding nothing.
        if last {
            return Ok(StatusCode::OK.into_response());
        }
        return Err(RybbitError::new(
            StatusCode::BAD_REQUEST,
            "Import is already complete",
        ));
    }
    let key = match import.tables.as_slice() {
        [t] if t.table == EVENTS_TABLE && t.format == "ndjson" => t.blob_key.clone(),
        _ => None,
    }
    .ok_or_else(|| {
        RybbitError::new(
            StatusCode::BAD_REQUEST,
            "Import does not take event batches",
        )
    })?;
    let platform = import
        .platform
        .clone()
        .unwrap_or_else(|| import.source.as_str().to_owned());
    let mut lines = Vec::new();
    for event in events {
        serde_json::to_writer(&mut lines, &event_row(&platform, event))
            .map_err(ApiError::internal)?;
        lines.push(b'\n');
    }
    let blobs = &state.engine.blobs;
    // One part per batch: the source only ever grows by complete lines.
    let received = blobs.part_received(id).await.map_err(ApiError::internal)?;
    let mut part = blobs
        .begin_part(id, received)
        .await
        .map_err(ApiError::internal)?;
    if let Err(e) = part.write(&lines).await {
        let _ = part.abort().await;
        return Err(ApiError::internal(e).into());
    }
    part.finish().await.map_err(ApiError::internal)?;
    if last {
        let source = blobs.assemble_part(id).await.map_err(ApiError::internal)?;
        let size = tokio::fs::metadata(&source)
            .await
            .map_err(ApiError::internal)?
            .len();
        let staged = blobs.staging_path();
        tokio::fs::rename(&source, &staged)
            .await
            .map_err(ApiError::internal)?;
        blobs
            .commit(&staged, &key)
            .await
            .map_err(ApiError::internal)?;
        blobs.delete_part(id).await.map_err(ApiError::internal)?;
        match state.engine.start(ws.id, id, &[size]).await {
            Ok(_) => {}
            // Another request's last batch queued it first.
            Err(StoreError::Refused(Refusal::NotWaiting(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// `DELETE /api/sites/:site/imports/:importId`: deletes the events the import wrote, then
/// the import.
async fn remove(
    State(state): State<AppState>,
    Path((site, import_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> RybbitResult<Response> {
    let ws = site_admin(&state, &headers, &site).await?;
    let id = uuid::Uuid::parse_str(&import_id).map_err(|_| RybbitError::validation())?;
    let purged = match state
        .store
        .purge_import(&ws, id, Forget::EndedOrWaiting, true)
        .await
    {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => {
            return Err(RybbitError::new(StatusCode::NOT_FOUND, "Import not found"));
        }
        Err(StoreError::Refused(Refusal::Running(..))) => {
            return Err(RybbitError::new(
                StatusCode::BAD_REQUEST,
                "Cannot delete active import",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    for key in &purged.blob_keys {
        if let Err(e) = state.engine.blobs.delete(key).await {
            tracing::warn!(error = %e, key, "could not delete a deleted import's source");
        }
    }
    if let Err(e) = state.engine.blobs.delete_part(id).await {
        tracing::warn!(error = %e, "could not delete a deleted import's batches");
    }
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_schema_is_a_valid_table() {
        let schema = events_schema().expect("valid");
        assert_eq!(schema.name.as_str(), EVENTS_TABLE);
    }

    #[test]
    fn an_event_keeps_its_fields_and_lifts_the_known_ones() {
        let row = event_row(
            "umami",
            json!({"created_at": "2024-01-10 12:00:00", "url_path": "/a", "event_type": "1"}),
        );
        assert_eq!(row["timestamp"], "2024-01-10 12:00:00");
        assert_eq!(row["pathname"], "/a");
        assert_eq!(row["type"], "1");
        assert_eq!(row["platform"], "umami");
        assert_eq!(row["event"]["url_path"], "/a");
        assert_eq!(event_row("umami", json!(3)), json!(3));
    }
}
