//! `/v1/webhooks` (admin): register a URL for event types, list, remove, read deliveries.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::auth::{Admin, Auth};
use super::error::{ApiError, ApiResult};
use super::pagination::{number_cursor, page_limit};
use super::views::{List, Page, rfc3339};
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    /// Where events are POSTed (http or https).
    url: String,
    /// The event types to send (`import.completed`, …).
    events: Vec<String>,
    description: Option<String>,
}

/// A webhook as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    id: Uuid,
    url: String,
    events: Vec<String>,
    description: Option<String>,
    created_at: String,
    /// The signing secret: shown only when the webhook is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

fn view(h: &WebhookRecord, with_secret: bool) -> WebhookView {
    WebhookView {
        id: h.id,
        url: h.url.clone(),
        events: h.events.clone(),
        description: h.description.clone(),
        created_at: rfc3339(h.created_at),
        secret: with_secret.then(|| h.secret.clone()),
    }
}

/// One delivery of an event to a webhook.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    id: i64,
    event_id: i64,
    event_type: String,
    import_id: Uuid,
    /// `pending`, `succeeded` or `failed` (gave up).
    status: String,
    attempts: u32,
    last_status_code: Option<u16>,
    last_error: Option<String>,
    /// When the next attempt is due (pending deliveries only).
    next_attempt_at: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
}

fn delivery_view(d: &DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.id,
        event_id: d.event_id,
        event_type: d.event_type.clone(),
        import_id: d.import_id,
        status: d.status.clone(),
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        next_attempt_at: (d.status == "pending")
            .then(|| {
                time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(d.next_attempt_at) * 1_000_000,
                )
                .map(rfc3339)
                .ok()
            })
            .flatten(),
        created_at: rfc3339(d.created_at),
        delivered_at: d.delivered_at.map(rfc3339),
    }
}

/// Registers a webhook (201); the answer holds its signing secret, shown only this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhookBody,
    responses((status = 201, body = WebhookView)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    body: Result<Json<NewWebhookBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
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
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = List<WebhookView>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Admin>,
) -> ApiResult<Json<List<WebhookView>>> {
    let hooks = state.store.list_webhooks(auth.workspace.id).await?;
    Ok(Json(List {
        data: hooks.iter().map(|h| view(h, false)).collect(),
    }))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("webhook"))
}

/// Removes a webhook (204); its pending deliveries are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses((status = 204, description = "Removed")))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Deliveries a page (1-1000, default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A webhook's deliveries, newest first: status, attempts, last answer.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id"), DeliveriesQuery),
    responses((status = 200, body = Page<DeliveryView>)))]
pub async fn deliveries(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<DeliveryView>>> {
    let Query(q) = query?;
    let limit = page_limit(q.limit)?;
    let after = number_cursor(q.cursor.as_deref())?;
    let rows = state
        .store
        .list_deliveries(auth.workspace.id, parse_id(&id)?, after, limit + 1)
        .await?;
    let has_more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    Ok(Json(Page {
        data: rows.iter().map(delivery_view).collect(),
        next_cursor: if has_more {
            rows.last().map(|d| d.id.to_string())
        } else {
            None
        },
        has_more,
    }))
}
