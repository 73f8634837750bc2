//! Commerce Layer's imports (`/compat/commercelayer`), as JSON:API
//! (`application/vnd.api+json`): `GET/POST /api/imports` (pages, sorts, `filter[q]`
//! matchers, sparse fieldsets), `GET/PATCH/DELETE /api/imports/{id}`, and the import's events.
//!
//! `Authorization: Bearer <key>` carries an Intake key. An import's `resource_type` is its
//! (first) table; `errors_log` is built from its stored row errors, keyed by each rejected
//! input's identifier. Errors are JSON:API error objects.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header as http_header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::{
    InlineImport, Records, authorization, caller, create_inline_import, header, import_id, millis,
    parse_json, parse_time, read_body, read_up_to, row_errors,
};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorCode};
use crate::model::{Forget, ImportStatus, Refusal, Role, Source};
use crate::store::{
    Condition, EventRecord, FieldKind, FilterOp, FilterValue, ImportField, ImportFilter,
    ImportLabels, ImportRecord, ImportSearch, KeyRecord, SortKey, SortSpec, StoreError,
    StoredRowError, Workspace,
};

mod errors;
mod import;
mod list;
mod resource;
#[cfg(test)]
mod tests;
mod vocabulary;

use errors::*;
use import::*;
use list::*;
use resource::*;
use vocabulary::*;

/// JSON:API's media type.
const JSONAPI: &str = "application/vnd.api+json";
/// Where the dialect is mounted (links are absolute).
const PREFIX: &str = "/compat/commercelayer";
/// Page sizes: Commerce Layer's default and largest.
const DEFAULT_PAGE_SIZE: u64 = 10;
const MAX_PAGE_SIZE: u64 = 25;
/// Row errors read per import for `errors_log` (a list page / one import).
const LIST_ERRORS: u32 = 100;
const SHOW_ERRORS: u32 = 1000;
/// Events an import's events list shows at most.
const MAX_EVENTS: u32 = 1000;

/// The routes, relative to `/compat/commercelayer`.
pub(in crate::api) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/imports", get(list).post(create))
        // The documentation's own example ends the path with a slash.
        .route("/api/imports/", get(list).post(create))
        .route("/api/imports/{id}", get(show).patch(update).delete(destroy))
        .route("/api/imports/{id}/events", get(events))
        .route("/api/imports/{id}/relationships/events", get(event_links))
        .fallback(|| async {
            ClError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Not found",
                "The requested resource was not found.",
                json!({}),
            )
        })
        .method_not_allowed_fallback(|| async {
            ClError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Method not allowed",
                "This request method is not supported by the resource.",
                json!({}),
            )
        })
}
