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
    parse_json, parse_time, read_body, row_errors,
};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorCode};
use crate::model::{ImportStatus, Role, Source};
use crate::store::{
    EventRecord, FilterOp, FilterValue, ImportField, ImportFilter, ImportLabels, ImportRecord,
    ImportSearch, SortKey, SortSpec, StoreError, StoredRowError, Workspace,
};

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

// ---------------------------------------------------------------------------------------------
// Errors and responses
// ---------------------------------------------------------------------------------------------

/// A JSON:API error answer: `{"errors": [{title, detail, code, status, source}]}` (boxed:
/// results stay small on the happy path).
pub(super) struct ClError(Box<ErrorObject>);

/// The one error object of a [`ClError`].
struct ErrorObject {
    status: StatusCode,
    code: &'static str,
    title: String,
    detail: String,
    source: Value,
}

impl ClError {
    fn new(
        status: StatusCode,
        code: &'static str,
        title: impl Into<String>,
        detail: impl Into<String>,
        source: Value,
    ) -> ClError {
        ClError(Box::new(ErrorObject {
            status,
            code,
            title: title.into(),
            detail: detail.into(),
            source,
        }))
    }

    /// A 400 about a query parameter.
    fn param(code: &'static str, parameter: &str, detail: impl Into<String>) -> ClError {
        let detail = detail.into();
        ClError::new(
            StatusCode::BAD_REQUEST,
            code,
            detail.clone(),
            detail,
            json!({ "parameter": parameter }),
        )
    }

    /// A 422 about an attribute of the request's data.
    fn invalid(attribute: &str, title: &str, detail: impl Into<String>) -> ClError {
        ClError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            title,
            detail,
            json!({ "pointer": format!("/data/attributes/{attribute}") }),
        )
    }

    fn not_found() -> ClError {
        ClError::new(
            StatusCode::NOT_FOUND,
            "RECORD_NOT_FOUND",
            "Record not found",
            "The requested resource was not found.",
            json!({ "parameter": "id" }),
        )
    }
}

impl IntoResponse for ClError {
    fn into_response(self) -> Response {
        let e = *self.0;
        let body = json!({"errors": [{
            "title": e.title,
            "detail": e.detail,
            "code": e.code,
            "status": e.status.as_u16().to_string(),
            "source": e.source,
        }]});
        jsonapi(e.status, body)
    }
}

impl From<ApiError> for ClError {
    fn from(e: ApiError) -> ClError {
        let status = e.code.status();
        let (code, title) = match e.code {
            ErrorCode::NotFound => return ClError::not_found(),
            ErrorCode::Internal => {
                return ClError::new(
                    status,
                    "INTERNAL_SERVER_ERROR",
                    "Internal server error",
                    "Something went wrong; the cause was logged.",
                    json!({}),
                );
            }
            ErrorCode::Validation | ErrorCode::Conflict => ("VALIDATION_ERROR", "is invalid"),
            ErrorCode::PayloadTooLarge => ("PAYLOAD_TOO_LARGE", "Payload too large"),
            ErrorCode::UnsupportedMediaType | ErrorCode::UnsupportedFormat => {
                ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type")
            }
            ErrorCode::Unauthenticated => ("INVALID_TOKEN", "Invalid token"),
            ErrorCode::Forbidden => ("UNAUTHORIZED", "Unauthorized"),
            _ => ("BAD_REQUEST", "Bad request"),
        };
        ClError::new(status, code, title, e.message, json!({}))
    }
}

impl From<StoreError> for ClError {
    fn from(e: StoreError) -> ClError {
        ApiError::from(e).into()
    }
}

type ClResult<T> = Result<T, ClError>;

/// A JSON:API answer.
fn jsonapi(status: StatusCode, body: Value) -> Response {
    (status, [(http_header::CONTENT_TYPE, JSONAPI)], Json(body)).into_response()
}

/// The workspace of the bearer key, whose role must be at least `role`. Commerce Layer
/// answers 401 both for a bad token and for one without the permission.
async fn authorize(state: &AppState, headers: &HeaderMap, role: Role) -> ClResult<Workspace> {
    let Some((key, ws)) = caller(state, authorization(headers, "bearer")).await? else {
        return Err(ClError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_TOKEN",
            "Invalid token",
            "The access token you provided is invalid.",
            json!({ "header": "Authorization" }),
        ));
    };
    if key.role < role {
        return Err(ClError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Unauthorized",
            format!(
                "You are not authorized to perform this action: it needs a key with role {} or above.",
                role.as_str()
            ),
            json!({ "header": "Authorization" }),
        ));
    }
    Ok(ws)
}

/// `scheme://host/compat/commercelayer`, from the request's `Host` (links are absolute).
fn base_url(headers: &HeaderMap) -> String {
    let scheme = match header(headers, "x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = header(headers, "host").unwrap_or("localhost");
    format!("{scheme}://{host}{PREFIX}")
}

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

/// Commerce Layer's statuses, in their alphabetical order (the order `sort=status` uses),
/// with the Intake statuses each stands for.
const STATUSES: [(&str, &[ImportStatus]); 4] = [
    (
        "completed",
        &[ImportStatus::Complete, ImportStatus::PartiallyComplete],
    ),
    (
        "in_progress",
        &[ImportStatus::Processing, ImportStatus::RollingBack],
    ),
    (
        "interrupted",
        &[
            ImportStatus::Failed,
            ImportStatus::Cancelled,
            ImportStatus::Unsupported,
            ImportStatus::RolledBack,
        ],
    ),
    ("pending", &[ImportStatus::New, ImportStatus::Queued]),
];

fn status(s: ImportStatus) -> &'static str {
    STATUSES
        .iter()
        .find(|(_, members)| members.contains(&s))
        .map_or("interrupted", |(name, _)| name)
}

/// Commerce Layer's two formats: delimited text is `csv`, JSON and NDJSON are `json`.
fn format_of(intake: &str) -> &'static str {
    match intake {
        "csv" | "tsv" => "csv",
        _ => "json",
    }
}

/// The attributes, in the documentation's order (`format` after `resource_type`).
const ATTRIBUTES: [&str; 24] = [
    "resource_type",
    "format",
    "parent_resource_id",
    "status",
    "started_at",
    "completed_at",
    "interrupted_at",
    "inputs",
    "inputs_size",
    "errors_count",
    "warnings_count",
    "destroyed_count",
    "processed_count",
    "errors_log",
    "warnings_log",
    "cleanup_records",
    "attachment_url",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
    "_interrupt",
    "events",
];

/// A sortable field (the documentation's list).
fn sort_key(name: &str) -> Option<Option<SortKey>> {
    let field = |f| Some(Some(SortKey::Field(f)));
    match name {
        "resource_type" => field(ImportField::Table),
        "format" => Some(Some(SortKey::Ranked {
            field: ImportField::Format,
            ranks: vec![
                vec!["csv".into(), "tsv".into()],
                vec!["json".into(), "ndjson".into()],
            ],
        })),
        "status" => Some(Some(SortKey::Ranked {
            field: ImportField::Status,
            ranks: STATUSES
                .iter()
                .map(|(_, members)| members.iter().map(|s| s.as_str().to_owned()).collect())
                .collect(),
        })),
        "started_at" => field(ImportField::StartedAt),
        "completed_at" => field(ImportField::CompletedAt),
        "interrupted_at" => field(ImportField::StoppedAt),
        "inputs_size" => field(ImportField::Inputs),
        "errors_count" => field(ImportField::Invalid),
        "warnings_count" => field(ImportField::Warnings),
        "destroyed_count" => field(ImportField::Destroyed),
        "processed_count" => field(ImportField::Processed),
        "id" => field(ImportField::Id),
        "created_at" => field(ImportField::CreatedAt),
        "updated_at" => field(ImportField::UpdatedAt),
        "reference" => field(ImportField::Reference),
        "reference_origin" => field(ImportField::ReferenceOrigin),
        // Always null in Intake: sorting by them keeps the order of the other keys.
        "parent_resource_id" | "attachment_url" => Some(None),
        _ => None,
    }
}

/// A filterable field (the documentation's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterField {
    Stored(ImportField),
    /// Filtered by Commerce Layer's status names.
    Status,
    /// Always null.
    ParentResourceId,
}

const FILTER_FIELDS: [(&str, FilterField); 16] = [
    ("resource_type", FilterField::Stored(ImportField::Table)),
    ("parent_resource_id", FilterField::ParentResourceId),
    ("status", FilterField::Status),
    ("started_at", FilterField::Stored(ImportField::StartedAt)),
    (
        "completed_at",
        FilterField::Stored(ImportField::CompletedAt),
    ),
    (
        "interrupted_at",
        FilterField::Stored(ImportField::StoppedAt),
    ),
    ("inputs_size", FilterField::Stored(ImportField::Inputs)),
    ("errors_count", FilterField::Stored(ImportField::Invalid)),
    ("warnings_count", FilterField::Stored(ImportField::Warnings)),
    (
        "destroyed_count",
        FilterField::Stored(ImportField::Destroyed),
    ),
    (
        "processed_count",
        FilterField::Stored(ImportField::Processed),
    ),
    ("id", FilterField::Stored(ImportField::Id)),
    ("created_at", FilterField::Stored(ImportField::CreatedAt)),
    ("updated_at", FilterField::Stored(ImportField::UpdatedAt)),
    ("reference", FilterField::Stored(ImportField::Reference)),
    (
        "reference_origin",
        FilterField::Stored(ImportField::ReferenceOrigin),
    ),
];

/// Ransack's matchers, longest first (so that `not_eq` is tried before `eq`).
const MATCHERS: [&str; 13] = [
    "not_null", "not_eq", "not_in", "gteq", "lteq", "start", "null", "cont", "end", "eq", "in",
    "gt", "lt",
];

/// Splits `<field>_<matcher>`.
fn split_predicate(predicate: &str) -> Option<(&'static str, FilterField, &'static str)> {
    MATCHERS.iter().find_map(|m| {
        let field = predicate.strip_suffix(m)?.strip_suffix('_')?;
        FILTER_FIELDS
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(name, f)| (*name, *f, *m))
    })
}

fn truth(parameter: &str, value: &str) -> ClResult<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" => Ok(true),
        "false" | "0" | "f" | "no" => Ok(false),
        _ => Err(ClError::param(
            "INVALID_FILTER_VALUE",
            parameter,
            format!("{value:?} is not a valid value for {parameter}: use true or false"),
        )),
    }
}

/// Whether a (never null) text value passes a matcher.
fn text_matches(matcher: &str, candidate: &str, arg: &str) -> bool {
    match matcher {
        "eq" => candidate == arg,
        "not_eq" => candidate != arg,
        "in" => arg.split(',').any(|a| a.trim() == candidate),
        "not_in" => !arg.split(',').any(|a| a.trim() == candidate),
        "gt" => candidate > arg,
        "gteq" => candidate >= arg,
        "lt" => candidate < arg,
        "lteq" => candidate <= arg,
        "start" => candidate.starts_with(arg),
        "end" => candidate.ends_with(arg),
        "cont" => candidate.contains(arg),
        _ => false,
    }
}

/// One `filter[q][<field>_<matcher>]=<value>` as a store condition (`None`: no condition).
fn filter(parameter: &str, predicate: &str, value: &str) -> ClResult<Option<ImportFilter>> {
    let Some((name, field, matcher)) = split_predicate(predicate) else {
        let detail = if predicate.starts_with("events_") {
            format!("{parameter}: filtering on the events relationship is not supported")
        } else {
            format!(
                "{parameter} is not a valid filter: filter on {} with _eq, _not_eq, _in, _not_in, _gt, _gteq, _lt, _lteq, _start, _end, _cont, _null or _not_null",
                FILTER_FIELDS.map(|(n, _)| n).join(", ")
            )
        };
        return Err(ClError::param("FILTER_NOT_ALLOWED", parameter, detail));
    };
    let null_test = match matcher {
        "null" => Some(truth(parameter, value)?),
        "not_null" => Some(!truth(parameter, value)?),
        _ => None,
    };
    let stored = match field {
        FilterField::Stored(f) => f,
        // Never null: only "is not null" holds.
        FilterField::Status => {
            let wanted: Vec<FilterValue> = match null_test {
                Some(is_null) => STATUSES
                    .iter()
                    .filter(|_| !is_null)
                    .flat_map(|(_, m)| m.iter())
                    .map(|s| FilterValue::Text(s.as_str().to_owned()))
                    .collect(),
                None => STATUSES
                    .iter()
                    .filter(|(n, _)| text_matches(matcher, n, value))
                    .flat_map(|(_, m)| m.iter())
                    .map(|s| FilterValue::Text(s.as_str().to_owned()))
                    .collect(),
            };
            return Ok(Some(ImportFilter {
                field: ImportField::Status,
                op: FilterOp::In(wanted),
            }));
        }
        // Always null: only "is null" holds (every other comparison with null fails).
        FilterField::ParentResourceId => {
            return Ok(match null_test {
                Some(true) => None,
                _ => Some(ImportFilter {
                    field: ImportField::Id,
                    op: FilterOp::In(Vec::new()),
                }),
            });
        }
    };
    if let Some(is_null) = null_test {
        return Ok(Some(ImportFilter {
            field: stored,
            op: FilterOp::IsNull(is_null),
        }));
    }
    let typed = |raw: &str| -> ClResult<FilterValue> {
        let raw = raw.trim();
        let bad = |what: &str| {
            ClError::param(
                "INVALID_FILTER_VALUE",
                parameter,
                format!("{raw:?} is not a valid value for {name}: it must be {what}"),
            )
        };
        Ok(match stored.kind() {
            crate::store::FieldKind::Text => FilterValue::Text(raw.to_owned()),
            crate::store::FieldKind::Integer => {
                FilterValue::Integer(raw.parse().map_err(|_| bad("a whole number"))?)
            }
            crate::store::FieldKind::Time => {
                FilterValue::Time(parse_time(raw).ok_or_else(|| bad("an ISO 8601 date-time"))?)
            }
        })
    };
    let op = match matcher {
        "eq" => FilterOp::Eq(typed(value)?),
        "not_eq" => FilterOp::NotEq(typed(value)?),
        "in" => FilterOp::In(value.split(',').map(typed).collect::<ClResult<_>>()?),
        "not_in" => FilterOp::NotIn(value.split(',').map(typed).collect::<ClResult<_>>()?),
        "gt" => FilterOp::Gt(typed(value)?),
        "gteq" => FilterOp::Gte(typed(value)?),
        "lt" => FilterOp::Lt(typed(value)?),
        "lteq" => FilterOp::Lte(typed(value)?),
        "start" => FilterOp::StartsWith(value.to_owned()),
        "end" => FilterOp::EndsWith(value.to_owned()),
        _ => FilterOp::Contains(value.to_owned()),
    };
    Ok(Some(ImportFilter { field: stored, op }))
}

// ---------------------------------------------------------------------------------------------
// The import resource
// ---------------------------------------------------------------------------------------------

/// What a resource needs beyond the import: its tables' keys, row errors and warnings.
struct Extras<'a> {
    keys: &'a BTreeMap<String, Vec<String>>,
    errors: Vec<StoredRowError>,
    warnings: Vec<EventRecord>,
}

/// An input's identifier in `errors_log`: its values of the table's primary key, else its
/// `code` or `id`, else its record number.
fn identifier(row: &Value, key: &[String], record: u64) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        other => Some(other.to_string()),
    };
    if !key.is_empty() {
        let parts: Option<Vec<String>> = key.iter().map(|k| row.get(k).and_then(text)).collect();
        if let Some(parts) = parts {
            return parts.join(",");
        }
    }
    ["code", "id"]
        .iter()
        .find_map(|k| row.get(*k).and_then(text))
        .unwrap_or_else(|| record.to_string())
}

fn errors_log(extras: &Extras<'_>) -> Value {
    let mut log: Map<String, Value> = Map::new();
    for e in &extras.errors {
        let key = extras.keys.get(&e.table).map_or(&[][..], |k| &k[..]);
        let ident = identifier(&e.error.row, key, e.error.record);
        let column = e.error.column.clone().unwrap_or_else(|| "base".to_owned());
        let entry = log
            .entry(ident)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(columns) = entry
            && let Value::Array(messages) = columns
                .entry(column)
                .or_insert_with(|| Value::Array(Vec::new()))
        {
            messages.push(Value::String(e.error.message.clone()));
        }
    }
    Value::Object(log)
}

/// Warnings (fields that match no column) keyed by the table they concern.
fn warnings_log(i: &ImportRecord, warnings: &[EventRecord]) -> Value {
    let mut log: Map<String, Value> = Map::new();
    for w in warnings {
        let table = w
            .data
            .get("table_position")
            .and_then(Value::as_u64)
            .and_then(|p| i.tables.iter().find(|t| u64::from(t.position) == p))
            .map_or_else(|| "base".to_owned(), |t| t.table.clone());
        let message = w
            .data
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("warning")
            .to_owned();
        if let Value::Array(list) = log.entry(table).or_insert_with(|| Value::Array(Vec::new())) {
            list.push(Value::String(message));
        }
    }
    Value::Object(log)
}

/// The import as a JSON:API resource object; `fields` restricts attributes (sparse
/// fieldsets).
fn resource(base: &str, i: &ImportRecord, extras: &Extras<'_>, fields: Option<&[String]>) -> Value {
    let ts = |t: Option<time::OffsetDateTime>| t.map(millis);
    let stopped = match i.status {
        ImportStatus::Cancelled => i.cancelled_at,
        ImportStatus::RolledBack => i.rolled_back_at,
        ImportStatus::Failed | ImportStatus::Unsupported => i.completed_at,
        _ => None,
    };
    let all = [
        (
            "resource_type",
            json!(i.tables.first().map(|t| t.table.clone())),
        ),
        (
            "format",
            json!(i.tables.first().map(|t| format_of(&t.format))),
        ),
        ("parent_resource_id", Value::Null),
        ("status", json!(status(i.status))),
        ("started_at", json!(ts(i.started_at))),
        ("completed_at", json!(ts(i.completed_at))),
        ("interrupted_at", json!(ts(stopped))),
        // Sources are not kept once an import ends, and lists never echo them.
        ("inputs", Value::Null),
        ("inputs_size", json!(i.counts.inputs)),
        ("errors_count", json!(i.counts.invalid)),
        ("warnings_count", json!(i.counts.warnings)),
        ("destroyed_count", json!(i.counts.destroyed)),
        ("processed_count", json!(i.counts.processed)),
        ("errors_log", errors_log(extras)),
        ("warnings_log", warnings_log(i, &extras.warnings)),
        ("cleanup_records", json!(i.cleanup_records)),
        ("attachment_url", Value::Null),
        ("created_at", json!(millis(i.created_at))),
        ("updated_at", json!(millis(i.updated_at))),
        ("reference", json!(i.reference)),
        ("reference_origin", json!(i.reference_origin)),
        ("metadata", i.metadata.clone()),
    ];
    let wanted = |name: &str| fields.is_none_or(|f| f.iter().any(|n| n == name));
    let attributes: Map<String, Value> = all
        .into_iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, v)| (name.to_owned(), v))
        .collect();
    let self_link = format!("{base}/api/imports/{}", i.id);
    let mut object = json!({
        "id": i.id,
        "type": "imports",
        "links": {"self": self_link},
        "attributes": attributes,
    });
    if wanted("events") {
        object["relationships"] = json!({
            "events": {
                "links": {
                    "self": format!("{self_link}/relationships/events"),
                    "related": format!("{self_link}/events"),
                }
            }
        });
    }
    object["meta"] = json!({"mode": if i.dry_run { "test" } else { "live" }});
    object
}

/// Each table's primary key columns, by table name.
async fn table_keys(state: &AppState, ws: &Workspace) -> ClResult<BTreeMap<String, Vec<String>>> {
    Ok(state
        .store
        .list_tables(ws)
        .await?
        .into_iter()
        .map(|t| {
            (
                t.schema.name.as_str().to_owned(),
                t.schema
                    .primary_key
                    .iter()
                    .map(|k| k.as_str().to_owned())
                    .collect(),
            )
        })
        .collect())
}

/// An import's warning events.
async fn warning_events(
    state: &AppState,
    ws: &Workspace,
    i: &ImportRecord,
) -> ClResult<Vec<EventRecord>> {
    if i.counts.warnings == 0 {
        return Ok(Vec::new());
    }
    Ok(all_events(state, ws, i.id)
        .await?
        .into_iter()
        .filter(|e| e.kind == "import.warning")
        .collect())
}

/// An import's events, oldest first (at most [`MAX_EVENTS`]).
async fn all_events(
    state: &AppState,
    ws: &Workspace,
    id: uuid::Uuid,
) -> ClResult<Vec<EventRecord>> {
    let mut out: Vec<EventRecord> = Vec::new();
    while (out.len() as u32) < MAX_EVENTS {
        let after = out.last().map(|e| e.id);
        let page = state
            .store
            .list_events(ws.id, id, after, MAX_EVENTS - out.len() as u32)
            .await?;
        let done = page.is_empty();
        out.extend(page);
        if done {
            break;
        }
    }
    Ok(out)
}

/// The resource of one import, with its errors and warnings read.
/// Answers one import as a JSON:API document (show, create and update answer alike).
async fn one_resource(
    state: &AppState,
    ws: &Workspace,
    headers: &HeaderMap,
    import: &ImportRecord,
    fields: Option<&[String]>,
    status: StatusCode,
) -> ClResult<Response> {
    let keys = table_keys(state, ws).await?;
    let data = full_resource(
        state,
        ws,
        &base_url(headers),
        &keys,
        import,
        SHOW_ERRORS,
        fields,
    )
    .await?;
    Ok(jsonapi(status, json!({ "data": data })))
}

async fn full_resource(
    state: &AppState,
    ws: &Workspace,
    base: &str,
    keys: &BTreeMap<String, Vec<String>>,
    i: &ImportRecord,
    max_errors: u32,
    fields: Option<&[String]>,
) -> ClResult<Value> {
    let errors = if i.counts.invalid > 0 {
        row_errors(state, ws.id, i.id, max_errors).await?
    } else {
        Vec::new()
    };
    let extras = Extras {
        keys,
        errors,
        warnings: warning_events(state, ws, i).await?,
    };
    Ok(resource(base, i, &extras, fields))
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

/// Percent-encodes a query component, leaving the characters Commerce Layer's own links
/// show bare (`[`, `]`, `,`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'['
            | b']'
            | b',' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page request: `page[number]` and `page[size]`.
struct PageRequest {
    number: u64,
    size: u64,
}

fn page_value(name: &str, value: &str, max: u64) -> ClResult<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ClError::param(
                "INVALID_PAGE_VALUE",
                name,
                format!(
                    "{value:?} is not a valid value for {name}: it must be between 1 and {max}"
                ),
            )
        })
}

/// `meta` and `links` of a page of a collection at `path`; `extra` are the request's other
/// parameters, kept in every link.
fn paging(
    base: &str,
    path: &str,
    page: &PageRequest,
    total: u64,
    extra: &[(String, String)],
) -> (Value, Value) {
    let page_count = total.div_ceil(page.size);
    let tail: String = extra
        .iter()
        .map(|(k, v)| format!("&{}={}", encode(k), encode(v)))
        .collect();
    let link = |n: u64| {
        format!(
            "{base}{path}?page[number]={n}&page[size]={}{tail}",
            page.size
        )
    };
    let mut links = Map::new();
    links.insert("first".into(), Value::String(link(1)));
    if page.number > 1 {
        links.insert(
            "prev".into(),
            Value::String(link((page.number - 1).min(page_count.max(1)))),
        );
    }
    if page.number < page_count {
        links.insert("next".into(), Value::String(link(page.number + 1)));
    }
    links.insert("last".into(), Value::String(link(page_count.max(1))));
    (
        json!({"record_count": total, "page_count": page_count}),
        Value::Object(links),
    )
}

/// The list query, checked.
struct ListQuery {
    page: PageRequest,
    search: ImportSearch,
    fields: Option<Vec<String>>,
    /// Parameters other than the page's, for links.
    extra: Vec<(String, String)>,
}

fn sparse_fields(value: &str) -> ClResult<Vec<String>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            if ATTRIBUTES.contains(&n) && n != "_interrupt" {
                Ok(n.to_owned())
            } else {
                Err(ClError::param(
                    "INVALID_FIELD",
                    "fields[imports]",
                    format!("{n} is not a valid field for imports."),
                ))
            }
        })
        .collect()
}

fn parse_list_query(pairs: Vec<(String, String)>) -> ClResult<ListQuery> {
    let mut page = PageRequest {
        number: 1,
        size: DEFAULT_PAGE_SIZE,
    };
    let mut search = ImportSearch::default();
    let mut fields = None;
    let mut extra = Vec::new();
    for (name, value) in pairs {
        match name.as_str() {
            "page[number]" => {
                page.number = page_value(&name, &value, u64::from(u32::MAX))?;
                continue;
            }
            "page[size]" => {
                page.size = page_value(&name, &value, MAX_PAGE_SIZE)?;
                continue;
            }
            "sort" => {
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (descending, field) =
                        item.strip_prefix('-').map_or((false, item), |f| (true, f));
                    match sort_key(field) {
                        Some(Some(key)) => search.sort.push(SortSpec { key, descending }),
                        Some(None) => {}
                        None => {
                            return Err(ClError::param(
                                "INVALID_SORT_CRITERIA",
                                "sort",
                                format!("{field} is not a valid sort criteria for imports"),
                            ));
                        }
                    }
                }
            }
            "fields[imports]" => fields = Some(sparse_fields(&value)?),
            "include" => {
                return Err(ClError::param(
                    "INVALID_INCLUDE",
                    "include",
                    format!("{value} is not a valid includable relationship of imports"),
                ));
            }
            _ => {
                let Some(predicate) = name
                    .strip_prefix("filter[q][")
                    .and_then(|r| r.strip_suffix(']'))
                else {
                    return Err(ClError::param(
                        "PARAM_NOT_ALLOWED",
                        &name,
                        format!("{name} is not allowed."),
                    ));
                };
                if let Some(f) = filter(&name, predicate, &value)? {
                    search.filters.push(f);
                }
            }
        }
        extra.push((name, value));
    }
    if search.sort.is_empty() {
        // Newest first.
        search.sort.push(SortSpec {
            key: SortKey::Field(ImportField::CreatedAt),
            descending: true,
        });
    }
    search.limit = u32::try_from(page.size).unwrap_or(u32::MAX);
    search.offset = (page.number - 1).saturating_mul(page.size);
    Ok(ListQuery {
        page,
        search,
        fields,
        extra,
    })
}

fn query_pairs(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ClResult<Vec<(String, String)>> {
    query
        .map(|Query(p)| p)
        .map_err(|e| ClError::param("BAD_REQUEST", "query", e.body_text()))
}

/// `GET /api/imports`.
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let q = parse_list_query(query_pairs(query)?)?;
    let found = state.store.search_imports(ws.id, &q.search).await?;
    let base = base_url(&headers);
    let keys = table_keys(&state, &ws).await?;
    let mut data = Vec::with_capacity(found.imports.len());
    for i in &found.imports {
        data.push(
            full_resource(
                &state,
                &ws,
                &base,
                &keys,
                i,
                LIST_ERRORS,
                q.fields.as_deref(),
            )
            .await?,
        );
    }
    let (meta, links) = paging(&base, "/api/imports", &q.page, found.total, &q.extra);
    Ok(jsonapi(
        StatusCode::OK,
        json!({"data": data, "meta": meta, "links": links}),
    ))
}

// ---------------------------------------------------------------------------------------------
// One import
// ---------------------------------------------------------------------------------------------

async fn find(state: &AppState, ws: &Workspace, id: &str) -> ClResult<ImportRecord> {
    let id = import_id(id).map_err(|_| ClError::not_found())?;
    match state.store.get_import(ws.id, id).await {
        Ok(i) => Ok(i),
        Err(StoreError::NotFound(_)) => Err(ClError::not_found()),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/imports/{id}`.
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let mut fields = None;
    for (name, value) in query_pairs(query)? {
        if name == "fields[imports]" {
            fields = Some(sparse_fields(&value)?);
        } else {
            return Err(ClError::param(
                "PARAM_NOT_ALLOWED",
                &name,
                format!("{name} is not allowed."),
            ));
        }
    }
    let import = find(&state, &ws, &id).await?;
    one_resource(
        &state,
        &ws,
        &headers,
        &import,
        fields.as_deref(),
        StatusCode::OK,
    )
    .await
}

/// The `data` object of a JSON:API request body, checked for type (and id).
async fn request_data(
    state: &AppState,
    headers: &HeaderMap,
    request: Request,
    id: Option<&str>,
) -> ClResult<Map<String, Value>> {
    let media = header(headers, "content-type")
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    if !matches!(media.as_deref(), Some(JSONAPI | "application/json")) {
        return Err(ClError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Unsupported media type",
            format!("All requests must use the '{JSONAPI}' Content-Type."),
            json!({ "header": "Content-Type" }),
        ));
    }
    let body = parse_json(&read_body(state, request).await?)?;
    let bad = |detail: &str| {
        ClError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA_FORMAT",
            "Invalid data format",
            detail,
            json!({ "pointer": "/data" }),
        )
    };
    let Value::Object(mut top) = body else {
        return Err(bad(
            "the body must be a JSON:API document: {\"data\": {...}}",
        ));
    };
    let Some(Value::Object(data)) = top.remove("data") else {
        return Err(bad("the document has no data object"));
    };
    if data.get("type").and_then(Value::as_str) != Some("imports") {
        return Err(ClError::new(
            StatusCode::CONFLICT,
            "TYPE_MISMATCH",
            "Type mismatch",
            "data.type must be imports",
            json!({ "pointer": "/data/type" }),
        ));
    }
    if let Some(id) = id
        && data.get("id").and_then(Value::as_str) != Some(id)
    {
        return Err(ClError::new(
            StatusCode::BAD_REQUEST,
            "KEY_NOT_INCLUDED_IN_URL",
            "Key is not included in URL",
            format!("data.id must be the id of the URL ({id})"),
            json!({ "pointer": "/data/id" }),
        ));
    }
    Ok(data)
}

fn attributes(data: &mut Map<String, Value>, allowed: &[&str]) -> ClResult<Map<String, Value>> {
    let attrs = match data.remove("attributes") {
        None => Map::new(),
        Some(Value::Object(a)) => a,
        Some(_) => {
            return Err(ClError::invalid(
                "",
                "is invalid",
                "attributes must be an object",
            ));
        }
    };
    if let Some(unknown) = attrs.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ClError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_NOT_ALLOWED",
            "Param not allowed",
            format!("{unknown} is not allowed."),
            json!({ "pointer": format!("/data/attributes/{unknown}") }),
        ));
    }
    Ok(attrs)
}

/// An optional text attribute (null clears it).
fn text_attribute(attrs: &Map<String, Value>, name: &str) -> ClResult<Option<Option<String>>> {
    match attrs.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.chars().count() <= 255 => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ClError::invalid(
            name,
            "is invalid",
            format!("{name} must be a text of at most 255 characters"),
        )),
    }
}

fn metadata_attribute(attrs: &Map<String, Value>) -> ClResult<Option<Value>> {
    match attrs.get("metadata") {
        None => Ok(None),
        Some(m @ Value::Object(_)) => Ok(Some(m.clone())),
        Some(_) => Err(ClError::invalid(
            "metadata",
            "is invalid",
            "metadata must be an object",
        )),
    }
}

/// `POST /api/imports`: `resource_type` (a table), `format` (`json` or `csv`), `inputs`,
/// `cleanup_records`, `reference`, `reference_origin`, `metadata`.
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Member).await?;
    let mut data = request_data(&state, &headers, request, None).await?;
    let attrs = attributes(
        &mut data,
        &[
            "resource_type",
            "format",
            "parent_resource_id",
            "inputs",
            "cleanup_records",
            "reference",
            "reference_origin",
            "metadata",
        ],
    )?;
    if attrs
        .get("parent_resource_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ClError::invalid(
            "parent_resource_id",
            "is not supported",
            "Intake tables have no parent resources: leave parent_resource_id out",
        ));
    }
    let Some(Value::String(table)) = attrs.get("resource_type") else {
        return Err(ClError::invalid(
            "resource_type",
            "can't be blank",
            "resource_type - can't be blank (the name of a table)",
        ));
    };
    let format = match attrs.get("format") {
        None | Some(Value::Null) => "json",
        Some(Value::String(f)) if f == "json" || f == "csv" => f.as_str(),
        Some(_) => {
            return Err(ClError::invalid(
                "format",
                "is not included in the list",
                "format must be json or csv",
            ));
        }
    };
    let records = match (format, attrs.get("inputs")) {
        (_, Some(Value::Array(items))) if !items.is_empty() => Records::Json(items.clone()),
        ("csv", Some(Value::String(text))) if !text.trim().is_empty() => Records::Csv(text.clone()),
        _ => {
            return Err(ClError::invalid(
                "inputs",
                "can't be blank",
                "inputs - can't be blank (a list of records, or CSV text with format csv)",
            ));
        }
    };
    let cleanup = match attrs.get("cleanup_records") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ClError::invalid(
                "cleanup_records",
                "is invalid",
                "cleanup_records must be true or false",
            ));
        }
    };
    let has_key = match state.store.get_table(&ws, table).await {
        Ok(t) => !t.schema.primary_key.is_empty(),
        Err(StoreError::NotFound(_)) => {
            return Err(ClError::invalid(
                "resource_type",
                "is invalid",
                format!("resource_type - {table:?} is not a table of this organization"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut options: crate::api::import_options::RawOptions = BTreeMap::new();
    options.insert("table".into(), Value::String(table.clone()));
    // Commerce Layer imports create or update: by the table's key when it has one.
    options.insert(
        "mode".into(),
        Value::String(if has_key { "upsert" } else { "insert" }.into()),
    );
    options.insert("cleanup_records".into(), Value::Bool(cleanup));
    for name in ["reference", "reference_origin"] {
        if let Some(Some(v)) = text_attribute(&attrs, name)? {
            options.insert(name.into(), Value::String(v));
        }
    }
    if let Some(m) = metadata_attribute(&attrs)? {
        options.insert("metadata".into(), m);
    }
    let import = create_inline_import(
        &state,
        &ws,
        InlineImport {
            options,
            records,
            source: Source::Api,
        },
    )
    .await
    .map_err(|e| match e.code {
        ErrorCode::Validation => ClError::invalid("inputs", "is invalid", e.message),
        _ => e.into(),
    })?;
    one_resource(&state, &ws, &headers, &import, None, StatusCode::CREATED).await
}

/// `PATCH /api/imports/{id}`: `_interrupt: true` stops the import; `reference`,
/// `reference_origin` and `metadata` change its labels.
async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Member).await?;
    let import = find(&state, &ws, &id).await?;
    let mut data = request_data(&state, &headers, request, Some(&id)).await?;
    let attrs = attributes(
        &mut data,
        &["_interrupt", "reference", "reference_origin", "metadata"],
    )?;
    let labels = ImportLabels {
        reference: text_attribute(&attrs, "reference")?,
        reference_origin: text_attribute(&attrs, "reference_origin")?,
        metadata: metadata_attribute(&attrs)?,
    };
    let interrupt = match attrs.get("_interrupt") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            return Err(ClError::invalid(
                "_interrupt",
                "is invalid",
                "_interrupt must be true",
            ));
        }
    };
    let mut current = import;
    if labels != ImportLabels::default() {
        current = state
            .store
            .relabel_import(ws.id, current.id, &labels)
            .await?;
    }
    if interrupt {
        current = match state.store.request_cancel(ws.id, current.id).await {
            Ok(i) => i,
            Err(StoreError::Conflict(m)) => {
                return Err(ClError::invalid("_interrupt", "cannot be interrupted", m));
            }
            Err(e) => return Err(e.into()),
        };
    }
    one_resource(&state, &ws, &headers, &current, None, StatusCode::OK).await
}

/// `DELETE /api/imports/{id}`: forgets an ended import (its records stay); 423 while it runs.
async fn destroy(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Admin).await?;
    let import = find(&state, &ws, &id).await?;
    let purged = match state.store.purge_import(&ws, import.id, false).await {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => return Err(ClError::not_found()),
        Err(StoreError::Conflict(m)) => {
            return Err(ClError::new(
                StatusCode::LOCKED,
                "LOCKED",
                "Locked",
                m,
                json!({ "parameter": "id" }),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    for key in &purged.blob_keys {
        if let Err(e) = state.engine.blobs.delete(key).await {
            tracing::warn!(error = %e, key, "could not delete a deleted import's source");
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An Intake event as a Commerce Layer event resource.
fn event_resource(i: &ImportRecord, e: &EventRecord) -> Value {
    json!({
        "id": e.id.to_string(),
        "type": "events",
        "attributes": {
            "name": e.kind,
            "created_at": millis(e.created_at),
            "updated_at": millis(e.created_at),
            "reference": null,
            "reference_origin": null,
            "metadata": e.data,
        },
        "meta": {"mode": if i.dry_run { "test" } else { "live" }},
    })
}

/// `GET /api/imports/{id}/events`: the import's lifecycle events, oldest first, paged.
async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let mut page = PageRequest {
        number: 1,
        size: DEFAULT_PAGE_SIZE,
    };
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "page[number]" => page.number = page_value(&name, &value, u64::from(u32::MAX))?,
            "page[size]" => page.size = page_value(&name, &value, MAX_PAGE_SIZE)?,
            _ => {
                return Err(ClError::param(
                    "PARAM_NOT_ALLOWED",
                    &name,
                    format!("{name} is not allowed."),
                ));
            }
        }
    }
    let import = find(&state, &ws, &id).await?;
    let all = all_events(&state, &ws, import.id).await?;
    let start = usize::try_from((page.number - 1).saturating_mul(page.size)).unwrap_or(usize::MAX);
    let data: Vec<Value> = all
        .iter()
        .skip(start)
        .take(page.size as usize)
        .map(|e| event_resource(&import, e))
        .collect();
    let base = base_url(&headers);
    let (meta, links) = paging(
        &base,
        &format!("/api/imports/{}/events", import.id),
        &page,
        all.len() as u64,
        &[],
    );
    Ok(jsonapi(
        StatusCode::OK,
        json!({"data": data, "meta": meta, "links": links}),
    ))
}

/// `GET /api/imports/{id}/relationships/events`: the linkage of the import's events.
async fn event_links(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let import = find(&state, &ws, &id).await?;
    let all = all_events(&state, &ws, import.id).await?;
    let self_link = format!("{}/api/imports/{}", base_url(&headers), import.id);
    Ok(jsonapi(
        StatusCode::OK,
        json!({
            "data": all.iter().map(|e| json!({"type": "events", "id": e.id.to_string()})).collect::<Vec<_>>(),
            "links": {
                "self": format!("{self_link}/relationships/events"),
                "related": format!("{self_link}/events"),
            }
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_split_on_the_longest_matcher() {
        assert_eq!(
            split_predicate("status_not_eq").map(|(n, _, m)| (n, m)),
            Some(("status", "not_eq"))
        );
        assert_eq!(
            split_predicate("reference_origin_eq").map(|(n, _, m)| (n, m)),
            Some(("reference_origin", "eq"))
        );
        assert_eq!(
            split_predicate("errors_count_gteq").map(|(n, _, m)| (n, m)),
            Some(("errors_count", "gteq"))
        );
        assert_eq!(
            split_predicate("completed_at_not_null").map(|(n, _, m)| (n, m)),
            Some(("completed_at", "not_null"))
        );
        assert!(split_predicate("format_eq").is_none());
        assert!(split_predicate("status_matches").is_none());
    }

    #[test]
    fn every_status_maps_to_one_of_the_four() {
        for s in ImportStatus::ALL {
            let name = status(*s);
            let (_, members) = STATUSES.iter().find(|(n, _)| *n == name).expect("mapped");
            assert!(members.contains(s), "{s}");
        }
    }

    #[test]
    fn a_status_filter_becomes_the_intake_statuses_it_stands_for() {
        let f = filter("p", "status_eq", "completed").ok().flatten();
        assert_eq!(
            f.map(|f| f.op),
            Some(FilterOp::In(vec![
                FilterValue::Text("complete".into()),
                FilterValue::Text("partially_complete".into()),
            ]))
        );
    }

    #[test]
    fn the_identifier_of_an_input_is_its_key_then_code_then_record() {
        let row = json!({"code": "ABC", "sku": 7});
        assert_eq!(identifier(&row, &["sku".into()], 3), "7");
        assert_eq!(identifier(&row, &[], 3), "ABC");
        assert_eq!(identifier(&json!({"x": 1}), &[], 3), "3");
    }
}
