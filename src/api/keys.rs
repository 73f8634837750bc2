//! `/v1/keys`: create (the key is shown once), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::auth::{Admin, Auth, Viewer, generate_key};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::views::{List, WorkspaceView, rfc3339};
use crate::model::Role;
use crate::store::KeyRecord;

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    name: String,
    /// `owner`, `admin`, `member` or `viewer`.
    role: String,
    /// When the key stops working (RFC 3339); it never does without one.
    #[serde(default)]
    expires_at: Option<String>,
    /// The only tables the key may import into, create and delete (any without it).
    #[serde(default)]
    tables: Option<Vec<String>>,
}

/// A key as the API shows it (never its secret).
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    id: Uuid,
    name: String,
    role: Role,
    /// The key's first characters, for people to recognise it.
    prefix: String,
    created_at: String,
    revoked_at: Option<String>,
    /// Past this instant the key authenticates nothing (null: it does not expire).
    expires_at: Option<String>,
    /// The only tables the key may import into, create and delete (null: any).
    tables: Option<Vec<String>>,
}

impl KeyView {
    fn of(k: &KeyRecord) -> KeyView {
        KeyView {
            id: k.id,
            name: k.name.clone(),
            role: k.role,
            prefix: k.prefix.clone(),
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
            expires_at: k.expires_at.map(rfc3339),
            tables: k.tables.clone(),
        }
    }
}

/// A key just made, with its secret: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct NewKeyView {
    #[serde(flatten)]
    key: KeyView,
    /// The secret to send as `Authorization: Bearer <key>`.
    #[serde(rename = "key")]
    secret: String,
}

/// Creates a key of a role the caller may grant; the answer holds the secret, once.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = NewKeyBody,
    responses((status = 201, body = NewKeyView)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    body: Result<Json<NewKeyBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<NewKeyView>)> {
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
    let tables = scope(&auth.key, body.tables)?;
    let (secret, mut new) = generate_key(name, role)?;
    new.expires_at = expires_at;
    new.tables = tables;
    let record = state.store.create_key(auth.workspace.id, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKeyView {
            key: KeyView::of(&record),
            secret,
        }),
    ))
}

/// Who a key is: `GET /v1/me`.
#[derive(Serialize, ToSchema)]
pub struct MeView {
    key: KeyView,
    workspace: WorkspaceView,
}

/// The calling key and its workspace (any role): what a client needs to know what it may do.
#[utoipa::path(get, path = "/v1/me", tag = "keys",
    responses((status = 200, body = MeView)))]
pub async fn me(auth: Auth<Viewer>) -> Json<MeView> {
    Json(MeView {
        key: KeyView::of(&auth.key),
        workspace: WorkspaceView::of(&auth.workspace),
    })
}

/// Lists the workspace's keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = List<KeyView>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Admin>,
) -> ApiResult<Json<List<KeyView>>> {
    let keys = state.store.list_keys(auth.workspace.id).await?;
    Ok(Json(List {
        data: keys.iter().map(KeyView::of).collect(),
    }))
}

/// Revokes a key; admins revoke keys below admin, owners any key.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The revoked key", body = KeyView)))]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("key"))?;
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
            crate::store::StoreError::Refused(crate::model::Refusal::KeyOutranks(_)) => {
                ApiError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "{} key can revoke only member and viewer keys",
                        with_article(auth.key.role)
                    ),
                )
            }
            other => other.into(),
        })?;
    Ok(Json(KeyView::of(&key)))
}

/// The scope of a new key: valid table names, and never wider than the creating key's own
/// (a scoped key cannot mint a key that reaches further than itself).
fn scope(creator: &KeyRecord, tables: Option<Vec<String>>) -> ApiResult<Option<Vec<String>>> {
    let Some(mut tables) = tables else {
        return match &creator.tables {
            Some(own) => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "this key is limited to the tables {}: a key it makes needs \"tables\" within them",
                    own.join(", ")
                ),
            )),
            None => Ok(None),
        };
    };
    if tables.is_empty() || tables.len() > 100 {
        return Err(ApiError::validation(
            "tables must list 1 to 100 table names",
        ));
    }
    for name in &tables {
        crate::model::Identifier::parse("table", name)
            .map_err(|e| ApiError::validation(e.to_string()))?;
        super::auth::check_scope(creator, name)?;
    }
    tables.sort();
    tables.dedup();
    Ok(Some(tables))
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
