//! `/admin/workspaces`: the instance-admin API, which makes, lists and deletes workspaces
//! (tenants). It answers only to the key given at start (`--admin-key`), never to a
//! workspace's key, and is off (404) without one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{bearer, generate_key, hash_key};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::views::{List, WorkspaceView};
use crate::model::{Identifier, Role};

/// A workspace just made, with its first owner key (shown only this once).
#[derive(Serialize, ToSchema)]
pub struct NewWorkspaceView {
    #[serde(flatten)]
    workspace: WorkspaceView,
    /// The secret of its first owner key.
    owner_key: String,
}

/// Body of `POST /admin/workspaces`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspaceBody {
    /// Lowercase letters, digits and `_`, starting with a letter, at most 48 characters.
    slug: String,
    /// A display name (the slug without one).
    name: Option<String>,
}

/// Lets the request through only with the instance-admin key.
fn require_admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(admin) = &state.config.admin_key else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "the instance-admin API is off: start the server with --admin-key",
        ));
    };
    // Compared as hashes in constant time: the answer's timing says nothing of the key.
    match bearer(headers) {
        Some(t) if bool::from(hash_key(t).ct_eq(&hash_key(admin))) => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "this route needs the instance-admin key: send Authorization: Bearer <admin key>",
        )),
    }
}

/// Makes a workspace and its first owner key (201).
#[utoipa::path(post, path = "/admin/workspaces", tag = "admin", request_body = NewWorkspaceBody,
    security(("admin" = [])),
    responses((status = 201, body = NewWorkspaceView)))]
pub async fn create_workspace(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewWorkspaceBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<NewWorkspaceView>)> {
    require_admin(&state, &headers)?;
    let Json(body) = body?;
    // The table naming rule, so that `<slug>__<table>` always splits one way.
    let slug = Identifier::parse("workspace", &body.slug)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(slug.as_str())
        .to_owned();
    if name.chars().count() > 100 {
        return Err(ApiError::validation("name must be at most 100 characters"));
    }
    let ws = state.store.create_workspace(slug.as_str(), &name).await?;
    let (secret, key) = generate_key("owner", Role::Owner)?;
    state.store.create_key(ws.id, &key).await?;
    tracing::info!(workspace = %ws.slug, "workspace created");
    Ok((
        StatusCode::CREATED,
        Json(NewWorkspaceView {
            workspace: WorkspaceView::of(&ws),
            owner_key: secret,
        }),
    ))
}

/// Every workspace, oldest first.
#[utoipa::path(get, path = "/admin/workspaces", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = List<WorkspaceView>)))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<List<WorkspaceView>>> {
    require_admin(&state, &headers)?;
    let all = state.store.list_workspaces().await?;
    Ok(Json(List {
        data: all.iter().map(WorkspaceView::of).collect(),
    }))
}

/// Deletes a workspace with its tables, rows, imports, keys and webhooks (204); refused
/// (409) while one of its imports is queued, running or rolling back.
#[utoipa::path(delete, path = "/admin/workspaces/{slug}", tag = "admin",
    security(("admin" = [])),
    params(("slug" = String, Path, description = "The workspace's slug")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&state, &headers)?;
    let ws = state
        .store
        .find_workspace(&slug)
        .await?
        .filter(|ws| ws.slug == slug)
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    let blobs = state.store.delete_workspace(ws.id).await?;
    for key in blobs {
        if let Err(e) = state.engine.blobs.delete(&key).await {
            tracing::warn!(error = %e, key, "could not delete a deleted workspace's source");
        }
    }
    tracing::info!(workspace = %ws.slug, "workspace deleted");
    Ok(StatusCode::NO_CONTENT)
}
