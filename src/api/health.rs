//! Operations routes: liveness, readiness and version.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiResult;

/// Answers once the server is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The running build: its version and whether it can keep sources in S3.
pub async fn version() -> Json<Value> {
    Json(json!({
        "name": "intake",
        "version": env!("CARGO_PKG_VERSION"),
        "s3": cfg!(feature = "s3"),
    }))
}

/// Answers once the database answers.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await?;
    Ok(Json(json!({ "status": "ready" })))
}
