//! Operations routes: liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiResult;

/// Answers once the server is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Answers once the database answers.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await?;
    Ok(Json(json!({ "status": "ready" })))
}
