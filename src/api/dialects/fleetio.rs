//! Fleetio's imports list (`/compat/fleetio`): `GET /api/v1/imports` with keyset pages
//! (`start_cursor`, `per_page`), status and date filters and sorts.
//!
//! `Authorization: Token <key>` carries an Intake key and `Account-Token` names its workspace
//! (id or slug). A record's integer `id` is the import's `number`. Errors follow Fleetio: 401
//! with the text `HTTP Token: Access denied.`, 403 with an empty body, and otherwise an
//! `{"errors": {"<field>": ["message"]}}` hash (400 for a bad query parameter).

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header as http_header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{authorization, caller, header, millis, parse_time};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorCode};
use crate::api::views::rfc3339;
use crate::model::ImportStatus;
use crate::store::{
    FilterOp, FilterValue, ImportField, ImportFilter, ImportRecord, ImportSearch, SortKey,
    SortSpec, StoreError, Workspace,
};

/// Page sizes Fleetio accepts, and its default.
const MIN_PER_PAGE: u32 = 2;
const MAX_PER_PAGE: u32 = 100;
const DEFAULT_PER_PAGE: u32 = 50;
/// `estimated_remaining_count` counts up to this many.
const MAX_ESTIMATE: u64 = 500;

/// The routes, relative to `/compat/fleetio`.
pub(in crate::api) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/imports", get(list))
        .fallback(|| async { FleetioError::field(StatusCode::NOT_FOUND, "base", "not found") })
        .method_not_allowed_fallback(|| async {
            FleetioError::field(StatusCode::METHOD_NOT_ALLOWED, "base", "method not allowed")
        })
}

/// A Fleetio error answer.
pub(super) enum FleetioError {
    /// 401 `HTTP Token: Access denied.`
    AccessDenied,
    /// 403, empty body.
    Forbidden,
    /// `{"errors": {field: [message]}}` with a status.
    Field {
        status: StatusCode,
        field: String,
        message: String,
    },
}

impl FleetioError {
    fn field(status: StatusCode, field: &str, message: impl Into<String>) -> FleetioError {
        FleetioError::Field {
            status,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn param(field: &str, message: impl Into<String>) -> FleetioError {
        FleetioError::field(StatusCode::BAD_REQUEST, field, message)
    }
}

impl IntoResponse for FleetioError {
    fn into_response(self) -> Response {
        match self {
            FleetioError::AccessDenied => (
                StatusCode::UNAUTHORIZED,
                [
                    (http_header::WWW_AUTHENTICATE, "Token realm=\"Application\""),
                    (http_header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                ],
                "HTTP Token: Access denied.\n",
            )
                .into_response(),
            FleetioError::Forbidden => StatusCode::FORBIDDEN.into_response(),
            FleetioError::Field {
                status,
                field,
                message,
            } => (status, Json(json!({"errors": {field: [message]}}))).into_response(),
        }
    }
}

impl From<ApiError> for FleetioError {
    fn from(e: ApiError) -> FleetioError {
        match e.code {
            ErrorCode::Unauthenticated => FleetioError::AccessDenied,
            ErrorCode::Forbidden => FleetioError::Forbidden,
            ErrorCode::Internal => {
                FleetioError::field(StatusCode::INTERNAL_SERVER_ERROR, "base", "internal error")
            }
            code => FleetioError::field(code.status(), "base", e.message),
        }
    }
}

impl From<StoreError> for FleetioError {
    fn from(e: StoreError) -> FleetioError {
        ApiError::from(e).into()
    }
}

type FleetioResult<T> = Result<T, FleetioError>;

/// The workspace of the key in `Authorization: Token`, when `Account-Token` names it.
async fn authorize(state: &AppState, headers: &HeaderMap) -> FleetioResult<Workspace> {
    // Rails also accepts `Token token="..."`.
    let token = authorization(headers, "token")
        .map(|t| t.strip_prefix("token=").map_or(t, |v| v.trim_matches('"')));
    let Some((_, ws)) = caller(state, token).await? else {
        return Err(FleetioError::AccessDenied);
    };
    // An account the key does not belong to is a credential that does not match: 401,
    // whether or not that account exists.
    match header(headers, "account-token") {
        Some(account) if account == ws.slug || account == ws.id.to_string() => Ok(ws),
        _ => {
            tracing::debug!("fleetio: missing or mismatched Account-Token");
            Err(FleetioError::AccessDenied)
        }
    }
}

/// Fleetio's ten statuses; Intake's `cancelled` is Fleetio's `incomplete`.
fn status(s: ImportStatus) -> &'static str {
    match s {
        ImportStatus::Cancelled => "incomplete",
        other => other.as_str(),
    }
}

fn parse_status(s: &str) -> Option<ImportStatus> {
    match s {
        "incomplete" => Some(ImportStatus::Cancelled),
        "cancelled" => None,
        other => ImportStatus::parse(other),
    }
}

/// One import as a Fleetio record.
fn record(i: &ImportRecord) -> Value {
    let size: Option<u64> = i.tables.iter().map(|t| t.file_size).sum();
    json!({
        "id": i.number,
        "completed_at": if i.status.is_terminal() { i.completed_at.map(rfc3339) } else { None },
        "file_name": i.tables.first().and_then(|t| t.file_name.clone()),
        "file_size": size.map(|s| s.to_string()),
        "note": i.note,
        "type": i.tables.first().map(|t| t.table.clone()),
        "status": status(i.status),
        "created_at": rfc3339(i.created_at),
        "updated_at": rfc3339(i.updated_at),
    })
}

/// A sortable field: Fleetio's name and the store's field.
fn sort_field(name: &str) -> Option<ImportField> {
    match name {
        "id" => Some(ImportField::Number),
        "created_at" => Some(ImportField::CreatedAt),
        "updated_at" => Some(ImportField::UpdatedAt),
        _ => None,
    }
}

fn sort_name(f: ImportField) -> &'static str {
    match f {
        ImportField::CreatedAt => "created_at",
        ImportField::UpdatedAt => "updated_at",
        _ => "id",
    }
}

/// A filter date: RFC 3339, or a bare date (midnight UTC).
fn filter_time(s: &str) -> Option<OffsetDateTime> {
    parse_time(s).or_else(|| {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(s.trim(), &format)
            .ok()
            .map(|d| d.midnight().assume_utc())
    })
}

/// The list request, checked.
struct ListRequest {
    per_page: u32,
    start_cursor: Option<String>,
    filters: Vec<ImportFilter>,
    filtered_by: Vec<Value>,
    sort: Vec<(ImportField, bool)>,
}

fn parse_request(pairs: Vec<(String, String)>) -> FleetioResult<ListRequest> {
    let mut req = ListRequest {
        per_page: DEFAULT_PER_PAGE,
        start_cursor: None,
        filters: Vec::new(),
        filtered_by: Vec::new(),
        sort: Vec::new(),
    };
    for (name, value) in pairs {
        if name == "per_page" {
            req.per_page = value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (MIN_PER_PAGE..=MAX_PER_PAGE).contains(n))
                .ok_or_else(|| {
                    FleetioError::param(
                        "per_page",
                        format!("must be a whole number between {MIN_PER_PAGE} and {MAX_PER_PAGE}"),
                    )
                })?;
        } else if name == "start_cursor" {
            req.start_cursor = Some(value).filter(|v| !v.is_empty());
        } else if name == "filter[status][include]" {
            let statuses = value
                .split(',')
                .map(|s| {
                    parse_status(s.trim()).ok_or_else(|| {
                        FleetioError::param(
                            &name,
                            format!(
                                "status {:?} is not one of new, queued, processing, partially_complete, failed, complete, incomplete, rolled_back, rolling_back, unsupported",
                                s.trim()
                            ),
                        )
                    })
                })
                .collect::<FleetioResult<Vec<_>>>()?;
            req.filters.push(ImportFilter {
                field: ImportField::Status,
                op: FilterOp::In(
                    statuses
                        .iter()
                        .map(|s| FilterValue::Text(s.as_str().to_owned()))
                        .collect(),
                ),
            });
            req.filtered_by.push(json!({"status": {"include": value}}));
        } else if let Some(rest) = name.strip_prefix("filter[") {
            let parsed = rest
                .strip_suffix(']')
                .and_then(|r| r.split_once("]["))
                .and_then(|(field, op)| {
                    let field = match field {
                        "created_at" => ImportField::CreatedAt,
                        "updated_at" => ImportField::UpdatedAt,
                        _ => return None,
                    };
                    Some((field, op))
                });
            let Some((field, op)) = parsed else {
                return Err(FleetioError::param(
                    &name,
                    format!(
                        "{name} is not a supported filter; filter on status (include), created_at or updated_at (lt, lte, gt, gte)"
                    ),
                ));
            };
            let t = filter_time(&value).ok_or_else(|| {
                FleetioError::param(
                    &name,
                    format!("{name} must be a date-time (RFC 3339), not {value:?}"),
                )
            })?;
            let v = FilterValue::Time(t);
            let op_value = match op {
                "lt" => FilterOp::Lt(v),
                "lte" => FilterOp::Lte(v),
                "gt" => FilterOp::Gt(v),
                "gte" => FilterOp::Gte(v),
                _ => {
                    return Err(FleetioError::param(
                        &name,
                        format!("{name}: the operations are lt, lte, gt and gte"),
                    ));
                }
            };
            req.filters.push(ImportFilter {
                field,
                op: op_value,
            });
            req.filtered_by.push(json!({
                sort_name(field): { op: value }
            }));
        } else if let Some(field) = name.strip_prefix("sort[").and_then(|r| r.strip_suffix(']')) {
            let f = sort_field(field).ok_or_else(|| {
                FleetioError::param(
                    &name,
                    format!("cannot sort by {field:?}; sort by id, created_at or updated_at"),
                )
            })?;
            let descending = match value.as_str() {
                "asc" => false,
                "desc" => true,
                _ => {
                    return Err(FleetioError::param(
                        &name,
                        format!("sort[{field}] must be asc or desc, not {value:?}"),
                    ));
                }
            };
            if req.sort.iter().any(|(g, _)| *g == f) {
                return Err(FleetioError::param(
                    &name,
                    format!("sort[{field}] is given twice"),
                ));
            }
            req.sort.push((f, descending));
        } else {
            return Err(FleetioError::param(
                &name,
                "is not a parameter of this endpoint",
            ));
        }
    }
    if req.sort.is_empty() {
        req.sort.push((ImportField::Number, true));
    }
    Ok(req)
}

/// What the order looks like, stored in cursors so that one is not used with another order.
fn signature(sort: &[(ImportField, bool)]) -> String {
    sort.iter()
        .map(|(f, d)| format!("{}:{}", sort_name(*f), if *d { "desc" } else { "asc" }))
        .collect::<Vec<_>>()
        .join(",")
}

/// The cursor that starts after `last` (hex, so that it travels in a URL untouched).
fn encode_cursor(sort: &[(ImportField, bool)], last: &ImportRecord) -> String {
    let mut text = signature(sort);
    for (f, _) in sort {
        text.push('|');
        match f {
            ImportField::CreatedAt => text.push_str(&millis(last.created_at)),
            ImportField::UpdatedAt => text.push_str(&millis(last.updated_at)),
            _ => text.push_str(&last.number.to_string()),
        }
    }
    text.push('|');
    text.push_str(&last.number.to_string());
    text.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The keyset position of a cursor, for this order.
fn decode_cursor(
    sort: &[(ImportField, bool)],
    cursor: &str,
) -> FleetioResult<Vec<Option<FilterValue>>> {
    let invalid = || FleetioError::param("start_cursor", "is not a cursor of this list");
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('|');
    if parts.next() != Some(signature(sort).as_str()) {
        return Err(FleetioError::param(
            "start_cursor",
            "was made for another sort order",
        ));
    }
    let mut values = Vec::with_capacity(sort.len() + 1);
    for (f, _) in sort {
        let part = parts.next().ok_or_else(invalid)?;
        let value = match f {
            ImportField::CreatedAt | ImportField::UpdatedAt => {
                FilterValue::Time(parse_time(part).ok_or_else(invalid)?)
            }
            _ => FilterValue::Integer(part.parse().map_err(|_| invalid())?),
        };
        values.push(Some(value));
    }
    let number = parts
        .next()
        .and_then(|p| p.parse::<i64>().ok())
        .ok_or_else(invalid)?;
    values.push(Some(FilterValue::Integer(number)));
    if parts.next().is_some() {
        return Err(invalid());
    }
    Ok(values)
}

/// `GET /api/v1/imports`.
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> FleetioResult<Json<Value>> {
    let ws = authorize(&state, &headers).await?;
    let Query(pairs) = query.map_err(|e| FleetioError::param("base", e.body_text()))?;
    let req = parse_request(pairs)?;
    let after = req
        .start_cursor
        .as_deref()
        .map(|c| decode_cursor(&req.sort, c))
        .transpose()?;
    let page = state
        .store
        .search_imports(
            ws.id,
            &ImportSearch {
                filters: req.filters.clone(),
                sort: req
                    .sort
                    .iter()
                    .map(|(f, d)| SortSpec {
                        key: SortKey::Field(*f),
                        descending: *d,
                    })
                    .collect(),
                after,
                offset: 0,
                limit: req.per_page,
                ..Default::default()
            },
        )
        .await?;
    // `total` counts the rows from this page's start on: the remaining records, this page's
    // included.
    let next_cursor = (page.total > page.imports.len() as u64)
        .then(|| page.imports.last().map(|l| encode_cursor(&req.sort, l)))
        .flatten();
    let sorted_by: Vec<Value> = req
        .sort
        .iter()
        .map(|(f, d)| {
            let mut m = Map::new();
            m.insert(
                sort_name(*f).to_owned(),
                Value::from(if *d { "desc" } else { "asc" }),
            );
            Value::Object(m)
        })
        .collect();
    Ok(Json(json!({
        "start_cursor": req.start_cursor,
        "next_cursor": next_cursor,
        "per_page": req.per_page,
        "estimated_remaining_count": page.total.min(MAX_ESTIMATE),
        "filtered_by": req.filtered_by,
        "sorted_by": sorted_by,
        "records": page.imports.iter().map(record).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_page_outside_2_to_100_is_refused() {
        for bad in ["1", "101", "x", "-3"] {
            assert!(parse_request(vec![("per_page".into(), bad.into())]).is_err());
        }
        let ok = parse_request(vec![("per_page".into(), "2".into())]).ok();
        assert_eq!(ok.map(|r| r.per_page), Some(2));
    }

    #[test]
    fn the_default_order_is_id_descending() {
        let req = parse_request(Vec::new()).ok().expect("parses");
        assert_eq!(req.sort, vec![(ImportField::Number, true)]);
    }

    #[test]
    fn cancelled_is_fleetios_incomplete() {
        assert_eq!(status(ImportStatus::Cancelled), "incomplete");
        assert_eq!(parse_status("incomplete"), Some(ImportStatus::Cancelled));
        assert_eq!(parse_status("cancelled"), None);
        for s in ImportStatus::ALL {
            assert_eq!(parse_status(status(*s)), Some(*s));
        }
    }
}
