//! The HTTP API: the route table, shared state, and the handlers of each resource.

mod admin;
mod auth;
mod dialects;
pub mod error;
mod health;
mod import_create;
mod import_file;
mod import_options;
mod import_url;
mod imports;
mod keys;
mod openapi;
mod pagination;
mod prometheus;
mod rate_limit;
mod rejected_csv;
mod request_log;
mod schema_infer;
pub mod serve;
mod sheet_cells;
mod stream;
mod tables;
pub mod url_source;
mod views;
mod web;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use auth::{generate_key, key_record};

/// The request budgets of a per-workspace rate (None for 0: no limit).
pub fn workspace_rates(per_second: u32) -> Option<Arc<rate_limit::WorkspaceRates>> {
    rate_limit::WorkspaceRates::new(per_second).map(Arc::new)
}

use crate::engine::Engine;
use crate::store::SharedStore;

/// API limits.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest upload, in bytes.
    pub max_upload_bytes: u64,
    /// Largest JSON request body (inline records), in bytes.
    pub max_inline_bytes: u64,
    /// Deadlines and connection caps against slow or greedy clients.
    pub limits: serve::Limits,
    /// Requests a second each workspace may make through the native API (0: no limit).
    pub rate_limit_per_workspace: u32,
    /// Which addresses URL imports may fetch from, and how long a download may take.
    pub url_policy: Arc<url_source::UrlPolicy>,
    /// The instance-admin key, which opens `/admin/workspaces` (None: that API is off).
    pub admin_key: Option<String>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub engine: Engine,
    pub config: Arc<ApiConfig>,
    /// Turns true when the server shuts down: long-lived responses (streams) end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Each workspace's request budget, when there is a limit.
    pub rates: Option<Arc<rate_limit::WorkspaceRates>>,
}

/// The route table.
pub fn router(state: AppState) -> Router {
    prometheus::install();
    let v1 = Router::new()
        .route("/me", get(keys::me))
        .route("/keys", post(keys::create).get(keys::list))
        .route("/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/tables", post(tables::create).get(tables::list))
        .route("/tables/{table}", get(tables::get).delete(tables::delete))
        .route(
            "/tables/{table}/records",
            get(tables::records).post(imports::create_from_records),
        )
        .route("/schema/infer", post(schema_infer::infer))
        .route("/imports", post(imports::create).get(imports::list))
        .route("/imports/{id}", get(imports::get).delete(imports::delete))
        .route("/imports/{id}/rollback", post(imports::rollback))
        .route("/imports/{id}/progress", get(imports::progress))
        .route("/imports/{id}/errors", get(imports::errors))
        .route("/imports/{id}/errors/summary", get(imports::error_summary))
        .route("/imports/{id}/events", get(imports::events))
        .route("/imports/{id}/cancel", post(imports::cancel))
        .route(
            "/imports/{id}/file",
            axum::routing::put(import_file::upload),
        )
        .route("/imports/{id}/start", post(import_file::start))
        .route("/imports/{id}/stream", get(stream::import_stream))
        .route("/stream", get(stream::workspace_stream))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries));
    Router::new()
        .route("/", get(web::index))
        .route("/assets/{file}", get(web::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/version", get(health::version))
        .route("/metrics", get(prometheus::scrape))
        .route("/openapi.json", get(openapi::serve))
        .route(
            "/admin/workspaces",
            post(admin::create_workspace).get(admin::list_workspaces),
        )
        .route(
            "/admin/workspaces/{slug}",
            axum::routing::delete(admin::delete_workspace),
        )
        .nest("/v1", v1)
        .nest("/compat/rybbit", dialects::rybbit::router())
        .nest("/compat/qobra", dialects::qobra::router())
        .nest("/compat/commercelayer", dialects::commercelayer::router())
        .nest("/compat/fleetio", dialects::fleetio::router())
        .nest("/compat/rocketchat", dialects::rocketchat::router())
        .route_layer(axum::middleware::from_fn(request_log::note_route))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        // Upload routes enforce their own limits while streaming.
        .layer(DefaultBodyLimit::disable())
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(error::ApiError::internal(
                "a handler panicked",
            ))
        }))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(request_log::log_request))
        .with_state(state)
}
