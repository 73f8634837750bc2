//! Authentication (`Authorization: Bearer <key>`) and authorisation by role, in the
//! extractor's type: a handler taking `Auth<Admin>` cannot run for a member key.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use crate::model::Role;
use crate::store::{KeyRecord, NewKey, Workspace};

/// A role a route requires (the key's role must be at least this).
pub trait RequiredRole: Send + Sync + 'static {
    const ROLE: Role;
}

macro_rules! roles {
    ($($name:ident => $role:expr),+) => {$(
        #[doc = concat!("Requires a key of role ", stringify!($name), " or above.")]
        pub struct $name;
        impl RequiredRole for $name {
            const ROLE: Role = $role;
        }
    )+};
}
roles!(Viewer => Role::Viewer, Member => Role::Member, Admin => Role::Admin);

/// An authenticated caller whose key has at least role `R`.
pub struct Auth<R: RequiredRole> {
    pub key: KeyRecord,
    pub workspace: Workspace,
    _role: PhantomData<R>,
}

const KEY_PREFIX: &str = "intake_";

/// A new random key: the secret (shown once) and what is stored of it.
pub fn generate_key(name: &str, role: Role) -> Result<(String, NewKey), ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{KEY_PREFIX}{secret}");
    Ok((key.clone(), key_record(&key, name, role)))
}

/// What is stored of a given key: its SHA-256 and a recognisable prefix.
pub fn key_record(key: &str, name: &str, role: Role) -> NewKey {
    NewKey {
        id: uuid::Uuid::now_v7(),
        name: name.to_owned(),
        role,
        prefix: key.chars().take(KEY_PREFIX.len() + 6).collect(),
        hash: hash_key(key),
        expires_at: None,
        tables: None,
    }
}

/// Refuses (403) a table outside the key's scope: a key made with `tables` may import into,
/// create and delete those tables only.
pub fn check_scope(key: &KeyRecord, table: &str) -> Result<(), ApiError> {
    match &key.tables {
        Some(tables) if !tables.iter().any(|t| t == table) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "this key may use only the tables {}, not {table:?}",
                tables.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// The stored hash of a key.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Finds the key of a request and its workspace (any role).
pub async fn authenticate(
    state: &AppState,
    token: Option<&str>,
) -> Result<(KeyRecord, Workspace), ApiError> {
    let token = token.ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "missing API key: send Authorization: Bearer <key>",
        )
    })?;
    let key = state
        .store
        .authenticate(&hash_key(token))
        .await?
        .ok_or_else(|| {
            tracing::debug!("rejected an unknown, revoked or expired key");
            ApiError::new(
                ErrorCode::Unauthenticated,
                "invalid, revoked or expired API key",
            )
        })?;
    let ws = state
        .store
        .find_workspace(&key.workspace_id.to_string())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "the key's workspace no longer exists",
            )
        })?;
    Ok((key, ws))
}

/// The bearer token of a request's headers, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl<R: RequiredRole> FromRequestParts<AppState> for Auth<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (key, workspace) = authenticate(state, bearer(&parts.headers)).await?;
        if let Some(note) = parts
            .extensions
            .get::<std::sync::Arc<super::request_log::RequestNote>>()
        {
            note.set_key(key.id);
        }
        if let Some(rates) = &state.rates {
            rates.check(workspace.id)?;
        }
        if key.role < R::ROLE {
            tracing::debug!(key = %key.id, role = key.role.as_str(), "role too low");
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "this action needs a key with role {} or above; this key is {}",
                    R::ROLE.as_str(),
                    key.role.as_str()
                ),
            ));
        }
        Ok(Auth {
            key,
            workspace,
            _role: PhantomData,
        })
    }
}
