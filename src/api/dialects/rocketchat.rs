//! Rocket.Chat's import progress (`/compat/rocketchat`): `GET /api/v1/getImportProgress`,
//! `getCurrentImportOperation` and `getLatestImportOperations`.
//!
//! `X-Auth-Token` carries an Intake key and `X-User-Id` must be that key's id (as `GET
//! /v1/keys` shows it): the pair Rocket.Chat's REST clients send. The workspace's current
//! import is its newest one, as Rocket.Chat's "last import operation". Its `run-import`
//! permission is Intake's member role; `view-import-operations` is the viewer role.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{caller, header, millis};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorCode};
use crate::model::{ImportStatus, Role, Step};
use crate::store::{ImportField, ImportRecord, ImportSearch, SortKey, SortSpec, Workspace};

/// How many operations `getLatestImportOperations` lists, as Rocket.Chat does.
const LATEST: u32 = 20;

/// The routes, relative to `/compat/rocketchat`.
pub(in crate::api) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/getImportProgress", get(import_progress))
        .route("/api/v1/getCurrentImportOperation", get(current_operation))
        .route("/api/v1/getLatestImportOperations", get(latest_operations))
        .fallback(|| async { RocketError::NotFound })
        .method_not_allowed_fallback(|| async { RocketError::NotFound })
}

/// A Rocket.Chat error answer.
pub(super) enum RocketError {
    /// 401 `{"success": false, "error": "unauthorized"}`.
    Unauthorized,
    /// 403, the permission body of the documentation.
    NoPermission,
    /// 400, a Meteor error: `{"success": false, "error": "<reason> [<type>]", "errorType"}`.
    Meteor {
        error_type: &'static str,
        reason: String,
    },
    NotFound,
    Internal,
}

impl IntoResponse for RocketError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            RocketError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"success": false, "error": "unauthorized"}),
            ),
            RocketError::NoPermission => (
                StatusCode::FORBIDDEN,
                json!({
                    "success": false,
                    "error": "User does not have the permissions required for this action [error-unauthorized]"
                }),
            ),
            RocketError::Meteor { error_type, reason } => (
                StatusCode::BAD_REQUEST,
                json!({
                    "success": false,
                    "error": format!("{reason} [{error_type}]"),
                    "errorType": error_type,
                    "details": {"method": "getImportProgress"},
                }),
            ),
            RocketError::NotFound => (
                StatusCode::NOT_FOUND,
                json!({"success": false, "error": "Not found"}),
            ),
            RocketError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"success": false, "error": "Internal server error"}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

impl From<ApiError> for RocketError {
    fn from(e: ApiError) -> RocketError {
        match e.code {
            ErrorCode::Unauthenticated => RocketError::Unauthorized,
            ErrorCode::Forbidden => RocketError::NoPermission,
            ErrorCode::NotFound => RocketError::NotFound,
            _ => RocketError::Internal,
        }
    }
}

impl From<crate::store::StoreError> for RocketError {
    fn from(e: crate::store::StoreError) -> RocketError {
        ApiError::from(e).into()
    }
}

type RocketResult<T> = Result<T, RocketError>;

/// The workspace of the `X-Auth-Token` key, when `X-User-Id` is that key's id and its role
/// carries the permission (`role`).
async fn authorize(state: &AppState, headers: &HeaderMap, role: Role) -> RocketResult<Workspace> {
    let (Some(user), Some(token)) = (
        header(headers, "x-user-id"),
        header(headers, "x-auth-token"),
    ) else {
        return Err(RocketError::Unauthorized);
    };
    let Some((key, ws)) = caller(state, Some(token)).await? else {
        return Err(RocketError::Unauthorized);
    };
    // A token presented with another user's id is refused like an unknown token.
    if !user.eq_ignore_ascii_case(&key.id.to_string()) {
        tracing::debug!(key = %key.id, "rocketchat: X-User-Id is not the key's id");
        return Err(RocketError::Unauthorized);
    }
    if key.role < role {
        return Err(RocketError::NoPermission);
    }
    Ok(ws)
}

/// Rocket.Chat's importer step for an import's status and step.
///
/// Rocket.Chat's steps only move forward (file loaded, preparing, importing, finishing,
/// done), so the mapping follows the whole import, not the step of the table at hand: a
/// claimed import still marked `queued`, or an atomic one checking its rows, is preparing
/// until its first table is written; a later table's checking pass is part of importing;
/// and a table's clean-up is finishing only when no table follows it.
fn step(i: &ImportRecord) -> &'static str {
    match i.status {
        ImportStatus::Complete | ImportStatus::PartiallyComplete => "importer_done",
        ImportStatus::Failed | ImportStatus::Unsupported => "importer_import_failed",
        ImportStatus::Cancelled | ImportStatus::RolledBack => "importer_import_cancelled",
        ImportStatus::New => "importer_new",
        ImportStatus::Queued => "importer_file_loaded",
        ImportStatus::RollingBack => "importer_finishing",
        ImportStatus::Processing => {
            let ended = i.tables.iter().filter(|t| t.status.is_terminal()).count();
            let left = i.tables.len().saturating_sub(ended);
            match i.step {
                Step::Waiting | Step::Queued | Step::Inferring | Step::Validating if ended == 0 => {
                    "importer_preparing_started"
                }
                Step::CleaningUp if left > 1 => "importer_importing_started",
                Step::Waiting
                | Step::Queued
                | Step::Inferring
                | Step::Validating
                | Step::Writing => "importer_importing_started",
                // Cleaning up the last table, reverting an aborted import, and whatever
                // step comes last.
                _ => "importer_finishing",
            }
        }
    }
}

/// The importer key: the import's platform label (its source format by default).
fn importer_key(i: &ImportRecord) -> String {
    i.platform
        .clone()
        .unwrap_or_else(|| i.source.as_str().to_owned())
}

/// A person-readable importer name: `CSV`, `NDJSON`, `API records`, or the label in title
/// case (`pending-avatars` → `Pending Avatars`).
fn importer_name(key: &str) -> String {
    match key {
        "csv" | "tsv" | "json" | "ndjson" => key.to_ascii_uppercase(),
        "api" => "API records".to_owned(),
        "inline" => "Inline records".to_owned(),
        other => other
            .split(['-', '_', ' '])
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Rows done and rows in all. `total` is `inputs` once the whole source has been read
/// (exact); before that an estimate, `completed` scaled by the share of the source's bytes
/// read so far, never below `completed`, which converges on the exact count as the reading
/// goes on and becomes it when the last batch commits. An import that ended without
/// reading its whole source (cancelled, failed) reports the rows it got through.
fn count(i: &ImportRecord) -> (u64, u64) {
    let completed = i.counts.processed;
    let total = match i.counts.inputs {
        Some(n) => n,
        None if i.status.is_terminal() => completed,
        None if i.bytes_read > 0 && i.bytes_total > i.bytes_read => {
            let estimate = (u128::from(completed) * u128::from(i.bytes_total)
                / u128::from(i.bytes_read)) as u64;
            estimate.max(completed)
        }
        None => completed,
    };
    (completed, total)
}

/// The workspace's newest imports.
async fn newest(state: &AppState, ws: &Workspace, limit: u32) -> RocketResult<Vec<ImportRecord>> {
    let page = state
        .store
        .search_imports(
            ws.id,
            &ImportSearch {
                sort: vec![SortSpec {
                    key: SortKey::Field(ImportField::CreatedAt),
                    descending: true,
                }],
                limit,
                ..Default::default()
            },
        )
        .await?;
    Ok(page.imports)
}

/// An import as a Rocket.Chat import operation (`IImport`).
fn operation(i: &ImportRecord, user: &str) -> Value {
    let (completed, total) = count(i);
    let key = importer_key(i);
    let size: Option<u64> = i.tables.iter().map(|t| t.file_size).sum();
    json!({
        "_id": i.id,
        "type": key,
        "importerKey": key,
        "ts": millis(i.created_at),
        "status": step(i),
        // Rocket.Chat invalidates every operation but the newest; Intake's imports all stay
        // readable, so only an ended import that did not complete is invalid.
        "valid": !matches!(i.status, ImportStatus::Failed | ImportStatus::Unsupported | ImportStatus::Cancelled | ImportStatus::RolledBack),
        "user": user,
        "file": i.tables.first().and_then(|t| t.file_name.clone()),
        "fileSize": size,
        "count": {"total": total, "completed": completed, "error": i.counts.invalid},
        "_updatedAt": millis(i.updated_at),
    })
}

fn no_operation() -> RocketError {
    RocketError::Meteor {
        error_type: "error-operation-not-found",
        reason: "Import Operation Not Found".to_owned(),
    }
}

/// `GET /api/v1/getImportProgress` (run-import).
async fn import_progress(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> RocketResult<Json<Value>> {
    let ws = authorize(&state, &headers, Role::Member).await?;
    let current = newest(&state, &ws, 1).await?;
    let import = current.first().ok_or_else(no_operation)?;
    let (completed, total) = count(import);
    let key = importer_key(import);
    Ok(Json(json!({
        "key": key,
        "name": importer_name(&key),
        "step": step(import),
        "count": {"completed": completed, "total": total},
        "success": true,
    })))
}

/// `GET /api/v1/getCurrentImportOperation` (run-import): `{"success": true, "operation"}`,
/// without `operation` when there is none.
async fn current_operation(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> RocketResult<Json<Value>> {
    let ws = authorize(&state, &headers, Role::Member).await?;
    let user = header(&headers, "x-user-id").unwrap_or_default().to_owned();
    let current = newest(&state, &ws, 1).await?;
    let mut body = json!({"success": true});
    if let Some(i) = current.first() {
        body["operation"] = operation(i, &user);
    }
    Ok(Json(body))
}

/// `GET /api/v1/getLatestImportOperations` (view-import-operations): a list of the 20
/// newest operations.
async fn latest_operations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> RocketResult<Json<Value>> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let user = header(&headers, "x-user-id").unwrap_or_default().to_owned();
    let imports = newest(&state, &ws, LATEST).await?;
    Ok(Json(Value::Array(
        imports.iter().map(|i| operation(i, &user)).collect(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn importer_names_read_like_rocketchats() {
        assert_eq!(importer_name("pending-avatars"), "Pending Avatars");
        assert_eq!(importer_name("csv"), "CSV");
        assert_eq!(importer_name("simple_analytics"), "Simple Analytics");
    }
}
