//! Server-Sent Events: an import's progress and lifecycle events until it ends, and the
//! workspace's lifecycle events. Both read the store, so they follow imports whichever
//! process runs them; `Last-Event-ID` resumes without missing a lifecycle event.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::AppState;
use super::auth::{Auth, Viewer};
use super::error::{ApiError, ApiResult};
use super::views::{import_view, progress_view, rfc3339};
use crate::store::EventRecord;

/// How often a stream looks for news.
const TICK: Duration = Duration::from_millis(200);

/// Query of the stream routes (for clients that cannot send `Last-Event-ID`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this event (as the `Last-Event-ID` header does).
    last_event_id: Option<i64>,
}

fn last_event_id(headers: &HeaderMap, q: &StreamQuery) -> ApiResult<Option<i64>> {
    match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event id")),
        None => Ok(q.last_event_id),
    }
}

fn lifecycle(e: &EventRecord) -> Event {
    let data = json!({
        "id": e.id,
        "type": e.kind,
        "import_id": e.import_id,
        "data": e.data,
        "created_at": rfc3339(e.created_at),
    });
    Event::default()
        .id(e.id.to_string())
        .event(e.kind.clone())
        .data(data.to_string())
}

fn into_stream(rx: mpsc::Receiver<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// A stream route's response. `X-Accel-Buffering: no` asks nginx (and the proxies that
/// honour it) to pass each event on at once instead of buffering the response, which would
/// hold progress back until the buffer fills; axum's `Sse` already sends
/// `Cache-Control: no-cache`, so that no cache keeps a stream either.
fn respond(rx: mpsc::Receiver<Event>) -> impl IntoResponse {
    (
        [(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )],
        Sse::new(into_stream(rx)).keep_alive(KeepAlive::default()),
    )
}

/// `GET /v1/imports/{id}/stream`: `progress` events (at most every 200 ms while the import
/// runs), each lifecycle event as it happens (with its id), then `end` with the final import,
/// and the stream closes.
#[utoipa::path(get, path = "/v1/imports/{id}/stream", tag = "imports", params(("id" = String, Path, description = "The import's id"), StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String)))]
pub async fn import_stream(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("import"))?;
    let ws = auth.workspace.id;
    state.store.get_import(ws, id).await?;
    let mut after = last_event_id(&headers, &q)?;
    let (tx, rx) = mpsc::channel::<Event>(64);
    let store = state.store.clone();
    let mut stopping = state.stopping.clone();
    tokio::spawn(async move {
        let mut last_progress = None;
        loop {
            // The import first, then its events: once it reads terminal, the events read
            // after it include the terminal one.
            let Ok(import) = store.get_import(ws, id).await else {
                return;
            };
            let Ok(events) = store.list_events(ws, id, after, 500).await else {
                return;
            };
            for e in &events {
                after = Some(e.id);
                if tx.send(lifecycle(e)).await.is_err() {
                    return;
                }
            }
            let progress = serde_json::to_string(&progress_view(&import)).unwrap_or_default();
            if last_progress.as_ref() != Some(&progress) {
                let event = Event::default().event("progress").data(&progress);
                if tx.send(event).await.is_err() {
                    return;
                }
                last_progress = Some(progress);
            }
            if import.status.is_terminal() && events.len() < 500 {
                let end = Event::default()
                    .event("end")
                    .data(import_view(&import).to_string());
                let _ = tx.send(end).await;
                return;
            }
            // On shutdown the stream just ends: the client reconnects with Last-Event-ID.
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    });
    Ok(respond(rx))
}

/// `GET /v1/stream`: every lifecycle event of the workspace's imports, as they happen; it
/// does not end. Without `Last-Event-ID` it starts with events from now on.
#[utoipa::path(get, path = "/v1/stream", tag = "imports",
    params(StreamQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String)))]
pub async fn workspace_stream(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    let ws = auth.workspace.id;
    let mut after = match last_event_id(&headers, &q)? {
        Some(id) => Some(id),
        None => {
            // Start after the newest event: skip the history.
            let mut newest = None;
            loop {
                let page = state.store.list_workspace_events(ws, newest, 1000).await?;
                match page.last() {
                    Some(e) => newest = Some(e.id),
                    None => break,
                }
                if page.len() < 1000 {
                    break;
                }
            }
            newest.or(Some(0))
        }
    };
    let (tx, rx) = mpsc::channel::<Event>(64);
    let store = state.store.clone();
    let mut stopping = state.stopping.clone();
    tokio::spawn(async move {
        loop {
            let Ok(events) = store.list_workspace_events(ws, after, 500).await else {
                return;
            };
            for e in &events {
                after = Some(e.id);
                if tx.send(lifecycle(e)).await.is_err() {
                    return;
                }
            }
            if events.len() < 500 {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stopping.wait_for(|stop| *stop) => return,
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    Ok(respond(rx))
}
