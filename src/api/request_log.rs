//! One log line per request: method, matched route (never the raw path, which holds ids and
//! query strings), status, latency and the id of the key that made it. Never the key itself
//! or the body.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

/// What the layers inside learn of a request for its log line, filled as it is handled.
#[derive(Debug, Default)]
pub struct RequestNote {
    route: Mutex<Option<String>>,
    key: Mutex<Option<Uuid>>,
}

impl RequestNote {
    /// Records the key a request authenticated with.
    pub fn set_key(&self, id: Uuid) {
        if let Ok(mut key) = self.key.lock() {
            *key = Some(id);
        }
    }
}

/// The outer layer: times the request and logs it once answered.
pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let note = Arc::new(RequestNote::default());
    request.extensions_mut().insert(note.clone());
    let response = next.run(request).await;
    let route = note.route.lock().ok().and_then(|r| r.clone());
    let key = note.key.lock().ok().and_then(|k| *k);
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let route = route.as_deref().unwrap_or("(no route)");
    metrics::counter!(
        "intake_http_requests_total",
        "method" => method.to_string(),
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        "intake_http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route.to_owned()
    )
    .record(latency_ms / 1000.0);
    let key = key.map(|k| k.to_string());
    let key = key.as_deref().unwrap_or("-");
    if status >= 500 {
        tracing::warn!(%method, route, status, latency_ms, key, "request");
    } else {
        tracing::info!(%method, route, status, latency_ms, key, "request");
    }
    response
}

/// The inner layer, run once the router matched a route: notes which one.
pub async fn note_route(request: Request, next: Next) -> Response {
    if let (Some(path), Some(note)) = (
        request.extensions().get::<MatchedPath>(),
        request.extensions().get::<Arc<RequestNote>>(),
    ) && let Ok(mut route) = note.route.lock()
    {
        *route = Some(path.as_str().to_owned());
    }
    next.run(request).await
}
