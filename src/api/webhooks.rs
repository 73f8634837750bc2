//! `/v1/webhooks` (admin): register a URL for event types, list, remove, read deliveries.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::auth::{Admin, Auth};
use super::error::{ApiError, ApiResult};
use super::pagination::{number_cursor, page_limit};
use super::views::rfc3339;
use crate::store::{DeliveryRecord, NewWebhook, WebhookRecord};

/// The event types a webhook may subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "import.queued",
    "import.started",
    "import.completed",
    "import.partially_completed",
    "import.failed",
    "import.cancelled",
    "import.rolled_back",
];

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    url: String,
    events: Vec<String>,
    description: Option<String>,
}

fn view(h: &WebhookRecord, with_secret: bool) -> Value {
    let mut v = json!({
        "id": h.id,
        "url": h.url,
        "events": h.events,
        "description": h.description,
        "created_at": rfc3339(h.created_at),
    });
    if with_secret {
        v["secret"] = json!(h.secret);
    }
    v
}

fn delivery_view(d: &DeliveryRecord) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "import_id": d.import_id,
        "status": d.status,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_attempt_at": (d.status == "pending").then(|| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(d.next_attempt_at) * 1_000_000)
                .map(rfc3339)
                .ok()
        }).flatten(),
        "created_at": rfc3339(d.created_at),
        "delivered_at": d.delivered_at.map(rfc3339),
    })
}

/// Registers a webhook (201); the answer holds its signing secret, shown only this once.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    body: Result<Json<NewWebhookBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(body) = body?;
    let url = body.url.trim();
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !scheme_ok || url.len() > 2000 || url.chars().any(char::is_whitespace) {
        return Err(ApiError::validation(
            "url must be an http:// or https:// URL",
        ));
    }
    if body.events.is_empty() {
        return Err(ApiError::validation(format!(
            "events must list at least one of {}",
            EVENT_TYPES.join(", ")
        )));
    }
    if let Some(bad) = body
        .events
        .iter()
        .find(|e| !EVENT_TYPES.contains(&e.as_str()))
    {
        return Err(ApiError::validation(format!(
            "unknown event type {bad:?}; the types are {}",
            EVENT_TYPES.join(", ")
        )));
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    let secret = format!(
        "whsec_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut events = body.events.clone();
    events.dedup();
    let hook = state
        .store
        .create_webhook(
            auth.workspace.id,
            &NewWebhook {
                id: Uuid::now_v7(),
                url: url.to_owned(),
                events,
                secret,
                description: body.description.clone(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&hook, true))))
}

/// Lists the workspace's webhooks (without secrets).
pub async fn list(State(state): State<AppState>, auth: Auth<Admin>) -> ApiResult<Json<Value>> {
    let hooks = state.store.list_webhooks(auth.workspace.id).await?;
    Ok(Json(
        json!({"data": hooks.iter().map(|h| view(h, false)).collect::<Vec<_>>()}),
    ))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("webhook"))
}

/// Removes a webhook (204); its pending deliveries are dropped.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_webhook(auth.workspace.id, parse_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the delivery log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A webhook's deliveries, newest first: status, attempts, last answer.
pub async fn deliveries(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let limit = page_limit(q.limit)?;
    let after = number_cursor(q.cursor.as_deref())?;
    let rows = state
        .store
        .list_deliveries(auth.workspace.id, parse_id(&id)?, after, limit + 1)
        .await?;
    let has_more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    Ok(Json(json!({
        "data": rows.iter().map(delivery_view).collect::<Vec<_>>(),
        "next_cursor": if has_more { rows.last().map(|d| d.id.to_string()) } else { None },
        "has_more": has_more,
    })))
}
