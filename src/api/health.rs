//! Operations routes: liveness, readiness and version.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiResult;

/// The state of the server or of its database.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (the server is up) or `ready` (its database answers).
    status: &'static str,
}

/// The running build.
#[derive(Serialize, ToSchema)]
pub struct Version {
    name: &'static str,
    version: &'static str,
    /// Whether this build can keep sources in S3-style object storage.
    s3: bool,
}

/// Answers once the server is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The running build: its version and whether it can keep sources in S3.
#[utoipa::path(get, path = "/version", tag = "operations", security(()),
    responses((status = 200, body = Version)))]
pub async fn version() -> Json<Version> {
    Json(Version {
        name: "intake",
        version: env!("CARGO_PKG_VERSION"),
        s3: cfg!(feature = "s3"),
    })
}

/// Answers once the database answers (503 `database_unavailable` until then).
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.ping().await?;
    Ok(Json(Health { status: "ready" }))
}
