//! `/v1/keys`: create (the key is shown once), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{Admin, Auth, generate_key};
use super::error::{ApiError, ApiResult, ErrorCode};
use crate::model::Role;

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    name: String,
    role: String,
    /// When the key stops working (RFC 3339); it never does without one.
    #[serde(default)]
    expires_at: Option<String>,
}

/// Creates a key of a role the caller may grant; the answer holds the secret, once.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    body: Result<Json<NewKeyBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(body) = body?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::validation(format!(
            "role must be owner, admin, member or viewer, not {:?}",
            body.role
        ))
    })?;
    if !auth.key.role.can_grant(role) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "{} key cannot create {} key",
                with_article(auth.key.role),
                with_article(role)
            ),
        ));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation("name must be 1 to 100 characters"));
    }
    let expires_at = match &body.expires_at {
        None => None,
        Some(text) => {
            let at = time::OffsetDateTime::parse(
                text,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|_| {
                ApiError::validation(format!(
                    "expires_at must be an RFC 3339 date-time (2030-01-31T00:00:00Z), not {text:?}"
                ))
            })?;
            if at <= time::OffsetDateTime::now_utc() {
                return Err(ApiError::validation(format!(
                    "expires_at {text:?} has passed: a key must expire in the future"
                )));
            }
            // Kept to the millisecond, as every stored instant is.
            Some(
                at.replace_nanosecond(at.millisecond() as u32 * 1_000_000)
                    .unwrap_or(at),
            )
        }
    };
    let (secret, mut new) = generate_key(name, role)?;
    new.expires_at = expires_at;
    let record = state.store.create_key(auth.workspace.id, &new).await?;
    let mut view = serde_json::to_value(&record).map_err(ApiError::internal)?;
    view["key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

/// Lists the workspace's keys (never their secrets).
pub async fn list(State(state): State<AppState>, auth: Auth<Admin>) -> ApiResult<Json<Value>> {
    let keys = state.store.list_keys(auth.workspace.id).await?;
    Ok(Json(json!({ "data": keys })))
}

/// Revokes a key; admins revoke keys below admin, owners any key.
pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found("key"))?;
    let max = if auth.key.role == Role::Owner {
        Role::Owner
    } else {
        Role::Member
    };
    let key = state
        .store
        .revoke_key(auth.workspace.id, id, max)
        .await
        .map_err(|e| match e {
            // Only admins have a limit (member), so a refusal means an admin or owner key.
            crate::store::StoreError::Conflict(_) => ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "{} key can revoke only member and viewer keys",
                    with_article(auth.key.role)
                ),
            ),
            other => other.into(),
        })?;
    Ok(Json(
        serde_json::to_value(&key).map_err(ApiError::internal)?,
    ))
}

/// "an admin", "a member": a role with its article, for messages.
fn with_article(role: Role) -> String {
    let name = role.as_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}
