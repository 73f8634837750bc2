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
use crate::model::{Forget, ImportStatus, Refusal, Role, Source};
use crate::store::{
    Condition, EventRecord, FieldKind, FilterOp, FilterValue, ImportField, ImportFilter,
    ImportLabels, ImportRecord, ImportSearch, KeyRecord, SortKey, SortSpec, StoreError,
    StoredRowError, Workspace,
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
    authorize_key(state, headers, role).await.map(|(_, ws)| ws)
}

/// The bearer key and its workspace, for the routes that write (the key's scope applies).
async fn authorize_key(
    state: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> ClResult<(KeyRecord, Workspace)> {
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
    Ok((key, ws))
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

/// How one value is compared (a Ransack predicate's core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Eq,
    NotEq,
    Lt,
    Lteq,
    Gt,
    Gteq,
    Start,
    NotStart,
    End,
    NotEnd,
    Cont,
    NotCont,
    /// `cont` without case (ASCII letters).
    ICont,
    NotICont,
    /// A `LIKE` pattern, without case (ASCII letters).
    Matches,
    DoesNotMatch,
}

/// The comparisons, by name; each also takes `_any` and `_all` (a comma list).
const COMPARES: [(&str, Compare); 16] = [
    ("eq", Compare::Eq),
    ("not_eq", Compare::NotEq),
    ("lt", Compare::Lt),
    ("lteq", Compare::Lteq),
    ("gt", Compare::Gt),
    ("gteq", Compare::Gteq),
    ("start", Compare::Start),
    ("not_start", Compare::NotStart),
    ("end", Compare::End),
    ("not_end", Compare::NotEnd),
    ("cont", Compare::Cont),
    ("not_cont", Compare::NotCont),
    ("i_cont", Compare::ICont),
    ("not_i_cont", Compare::NotICont),
    ("matches", Compare::Matches),
    ("does_not_match", Compare::DoesNotMatch),
];

/// How a comparison meets a comma list of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    One,
    Any,
    All,
}

/// A Ransack predicate, as Commerce Layer documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matcher {
    /// `eq`, `eq_any`, `eq_all`, `cont`, ...
    Compare(Compare, Quantifier),
    /// `in`, `not_in` (a comma list), and their `_or_null` forms.
    In { negated: bool, or_null: bool },
    /// `eq_or_null`, `not_eq_or_null`.
    EqOrNull { negated: bool },
    /// `gt_lt`, `gteq_lteq`, `gteq_lt`, `gt_lteq`: two values, `low,high`.
    Range(Compare, Compare),
    /// `null` / `not_null`, with `true` or `false`.
    Null { negated: bool },
    /// `present` / `blank`, with `true` or `false`.
    Present { negated: bool },
    /// `true`, `false`, `jcont`: for boolean and JSON attributes, which imports do not
    /// filter on.
    Unsupported,
}

/// Every predicate name with its matcher, longest name first (so that `not_eq` is tried
/// before `eq`, and `gteq_lt` before `lt`).
fn matchers() -> Vec<(String, Matcher)> {
    let mut all: Vec<(String, Matcher)> = Vec::new();
    for (name, c) in COMPARES {
        all.push((name.to_owned(), Matcher::Compare(c, Quantifier::One)));
        all.push((format!("{name}_any"), Matcher::Compare(c, Quantifier::Any)));
        all.push((format!("{name}_all"), Matcher::Compare(c, Quantifier::All)));
    }
    let fixed = [
        (
            "in",
            Matcher::In {
                negated: false,
                or_null: false,
            },
        ),
        (
            "not_in",
            Matcher::In {
                negated: true,
                or_null: false,
            },
        ),
        (
            "in_or_null",
            Matcher::In {
                negated: false,
                or_null: true,
            },
        ),
        (
            "not_in_or_null",
            Matcher::In {
                negated: true,
                or_null: true,
            },
        ),
        ("eq_or_null", Matcher::EqOrNull { negated: false }),
        ("not_eq_or_null", Matcher::EqOrNull { negated: true }),
        ("gt_lt", Matcher::Range(Compare::Gt, Compare::Lt)),
        ("gteq_lteq", Matcher::Range(Compare::Gteq, Compare::Lteq)),
        ("gteq_lt", Matcher::Range(Compare::Gteq, Compare::Lt)),
        ("gt_lteq", Matcher::Range(Compare::Gt, Compare::Lteq)),
        ("null", Matcher::Null { negated: false }),
        ("not_null", Matcher::Null { negated: true }),
        ("present", Matcher::Present { negated: false }),
        ("blank", Matcher::Present { negated: true }),
        ("true", Matcher::Unsupported),
        ("false", Matcher::Unsupported),
        ("jcont", Matcher::Unsupported),
    ];
    all.extend(fixed.into_iter().map(|(n, m)| (n.to_owned(), m)));
    all.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    all
}

/// How several attributes of one predicate combine (`a_or_b_eq`, `a_and_b_eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combinator {
    Or,
    And,
}

/// A predicate split into its attributes, their combinator and its matcher.
#[derive(Debug, Clone, PartialEq)]
struct Predicate {
    fields: Vec<(&'static str, FilterField)>,
    combinator: Combinator,
    matcher: Matcher,
    /// The matcher's name as written (for messages).
    matcher_name: String,
}

/// Splits `<attribute>[_or_|_and_<attribute>...]_<matcher>` as Ransack does: the first
/// `_or_` or `_and_` names the combinator, and every part must be a filterable attribute.
fn split_predicate(predicate: &str) -> Option<Predicate> {
    matchers().into_iter().find_map(|(name, matcher)| {
        let attributes = predicate.strip_suffix(name.as_str())?.strip_suffix('_')?;
        let combinator = match (attributes.find("_or_"), attributes.find("_and_")) {
            (Some(o), Some(a)) if a < o => Combinator::And,
            (None, Some(_)) => Combinator::And,
            _ => Combinator::Or,
        };
        let fields = attributes
            .split("_or_")
            .flat_map(|p| p.split("_and_"))
            .map(|part| FILTER_FIELDS.iter().find(|(n, _)| *n == part).copied())
            .collect::<Option<Vec<_>>>()?;
        Some(Predicate {
            fields,
            combinator,
            matcher,
            matcher_name: name,
        })
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

/// Whether `text` matches a SQL `LIKE` pattern (`%`, `_`, `\` escapes), ASCII letters
/// compared without case, as the store compares.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative matching with backtracking to the last `%`.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let (pc, escaped) = match p.get(pi) {
            Some('\\') => (p.get(pi + 1).copied(), true),
            other => (other.copied(), false),
        };
        match pc {
            Some('%') if !escaped => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(c) if (c == '_' && !escaped) || c == t[ti] => {
                ti += 1;
                pi += if escaped { 2 } else { 1 };
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

/// Whether a (never null) text passes a comparison.
fn text_holds(compare: Compare, candidate: &str, arg: &str) -> bool {
    let folded = |s: &str| s.to_ascii_lowercase();
    match compare {
        Compare::Eq => candidate == arg,
        Compare::NotEq => candidate != arg,
        Compare::Lt => candidate < arg,
        Compare::Lteq => candidate <= arg,
        Compare::Gt => candidate > arg,
        Compare::Gteq => candidate >= arg,
        Compare::Start => candidate.starts_with(arg),
        Compare::NotStart => !candidate.starts_with(arg),
        Compare::End => candidate.ends_with(arg),
        Compare::NotEnd => !candidate.ends_with(arg),
        Compare::Cont => candidate.contains(arg),
        Compare::NotCont => !candidate.contains(arg),
        Compare::ICont => folded(candidate).contains(&folded(arg)),
        Compare::NotICont => !folded(candidate).contains(&folded(arg)),
        Compare::Matches => like(candidate, arg),
        Compare::DoesNotMatch => !like(candidate, arg),
    }
}

/// A comma list's values, trimmed.
fn values(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).collect()
}

/// A condition that always holds, and one that never does.
fn always() -> Condition {
    Condition::All(Vec::new())
}
fn never() -> Condition {
    Condition::Any(Vec::new())
}

/// Whether a value that is always null passes a matcher (`parent_resource_id`).
fn null_holds(parameter: &str, matcher: Matcher, value: &str) -> ClResult<bool> {
    Ok(match matcher {
        Matcher::Null { negated } => truth(parameter, value)? != negated,
        // Blank (`present=false`, `blank=true`) holds for null.
        Matcher::Present { negated } => truth(parameter, value)? == negated,
        Matcher::In { or_null, .. } => or_null,
        Matcher::EqOrNull { .. } => true,
        // Every comparison with null fails, as in SQL.
        _ => false,
    })
}

/// Whether a text that is never null (a Commerce Layer status name) passes a matcher.
fn name_holds(parameter: &str, matcher: Matcher, name: &str, value: &str) -> ClResult<bool> {
    Ok(match matcher {
        Matcher::Compare(c, Quantifier::One) => text_holds(c, name, value),
        Matcher::Compare(c, Quantifier::Any) => {
            values(value).iter().any(|v| text_holds(c, name, v))
        }
        Matcher::Compare(c, Quantifier::All) => {
            values(value).iter().all(|v| text_holds(c, name, v))
        }
        Matcher::In { negated, .. } => values(value).contains(&name) != negated,
        Matcher::EqOrNull { negated } => (name == value.trim()) != negated,
        Matcher::Range(low, high) => match values(value)[..] {
            [a, b] => text_holds(low, name, a) && text_holds(high, name, b),
            _ => return Err(range_error(parameter, value)),
        },
        // A status name is never null, and never blank.
        Matcher::Null { negated } => truth(parameter, value)? == negated,
        Matcher::Present { negated } => truth(parameter, value)? != negated,
        Matcher::Unsupported => false,
    })
}

fn range_error(parameter: &str, value: &str) -> ClError {
    ClError::param(
        "INVALID_FILTER_VALUE",
        parameter,
        format!("{value:?} is not a valid value for {parameter}: it must be two values, low,high"),
    )
}

/// A date or date-time as Commerce Layer (Rails) reads one: RFC 3339, a date alone
/// (`2018-01-01`, its midnight UTC), or a date-time without offset (UTC), with `T` or a
/// space between date and time and with or without seconds.
fn filter_time(raw: &str) -> Option<time::OffsetDateTime> {
    let s = raw.trim().replacen(' ', "T", 1);
    if let Some(t) = parse_time(&s) {
        return Some(t);
    }
    if s.len() == 10 {
        return parse_time(&format!("{s}T00:00:00Z"));
    }
    parse_time(&format!("{s}Z")).or_else(|| parse_time(&format!("{s}:00Z")))
}

/// One value compared with a stored field, typed by the field's kind.
fn typed(parameter: &str, name: &str, field: ImportField, raw: &str) -> ClResult<FilterValue> {
    let raw = raw.trim();
    let bad = |what: &str| {
        ClError::param(
            "INVALID_FILTER_VALUE",
            parameter,
            format!("{raw:?} is not a valid value for {name}: it must be {what}"),
        )
    };
    Ok(match field.kind() {
        FieldKind::Text => FilterValue::Text(raw.to_owned()),
        FieldKind::Integer => FilterValue::Integer(raw.parse().map_err(|_| bad("a whole number"))?),
        FieldKind::Time => {
            FilterValue::Time(filter_time(raw).ok_or_else(|| bad("an ISO 8601 date or date-time"))?)
        }
    })
}

/// One comparison of a stored field.
fn compare_op(
    parameter: &str,
    name: &str,
    field: ImportField,
    compare: Compare,
    raw: &str,
) -> ClResult<Condition> {
    let v = || typed(parameter, name, field, raw);
    let op = match compare {
        Compare::Eq => FilterOp::Eq(v()?),
        Compare::NotEq => FilterOp::NotEq(v()?),
        Compare::Lt => FilterOp::Lt(v()?),
        Compare::Lteq => FilterOp::Lte(v()?),
        Compare::Gt => FilterOp::Gt(v()?),
        Compare::Gteq => FilterOp::Gte(v()?),
        Compare::Start => FilterOp::StartsWith(raw.to_owned()),
        Compare::NotStart => FilterOp::NotStartsWith(raw.to_owned()),
        Compare::End => FilterOp::EndsWith(raw.to_owned()),
        Compare::NotEnd => FilterOp::NotEndsWith(raw.to_owned()),
        Compare::Cont => FilterOp::Contains(raw.to_owned()),
        Compare::NotCont => FilterOp::NotContains(raw.to_owned()),
        Compare::ICont => FilterOp::ContainsFolded(raw.to_owned()),
        Compare::NotICont => FilterOp::NotContainsFolded(raw.to_owned()),
        Compare::Matches => FilterOp::Like(raw.to_owned()),
        Compare::DoesNotMatch => FilterOp::NotLike(raw.to_owned()),
    };
    Ok(Condition::Filter(ImportFilter { field, op }))
}

/// A matcher over one stored field.
fn stored_condition(
    parameter: &str,
    name: &str,
    field: ImportField,
    matcher: Matcher,
    value: &str,
) -> ClResult<Condition> {
    let filter = |op| Condition::Filter(ImportFilter { field, op });
    let is_null = |null| filter(FilterOp::IsNull(null));
    let list = || -> ClResult<Vec<FilterValue>> {
        values(value)
            .into_iter()
            .map(|v| typed(parameter, name, field, v))
            .collect()
    };
    Ok(match matcher {
        Matcher::Compare(c, Quantifier::One) => compare_op(parameter, name, field, c, value)?,
        Matcher::Compare(c, Quantifier::Any) => Condition::Any(
            values(value)
                .into_iter()
                .map(|v| compare_op(parameter, name, field, c, v))
                .collect::<ClResult<_>>()?,
        ),
        Matcher::Compare(c, Quantifier::All) => Condition::All(
            values(value)
                .into_iter()
                .map(|v| compare_op(parameter, name, field, c, v))
                .collect::<ClResult<_>>()?,
        ),
        Matcher::In { negated, or_null } => {
            let op = if negated {
                FilterOp::NotIn(list()?)
            } else {
                FilterOp::In(list()?)
            };
            if or_null {
                Condition::Any(vec![filter(op), is_null(true)])
            } else {
                filter(op)
            }
        }
        Matcher::EqOrNull { negated } => {
            let v = typed(parameter, name, field, value)?;
            let op = if negated {
                FilterOp::NotEq(v)
            } else {
                FilterOp::Eq(v)
            };
            Condition::Any(vec![filter(op), is_null(true)])
        }
        Matcher::Range(low, high) => match values(value)[..] {
            [a, b] => Condition::All(vec![
                compare_op(parameter, name, field, low, a)?,
                compare_op(parameter, name, field, high, b)?,
            ]),
            _ => return Err(range_error(parameter, value)),
        },
        Matcher::Null { negated } => is_null(truth(parameter, value)? != negated),
        Matcher::Present { negated } => {
            let present = truth(parameter, value)? != negated;
            // Blank is null or empty text; only text fields can be empty.
            let empty = field.kind() == FieldKind::Text;
            match (present, empty) {
                (true, true) => Condition::All(vec![
                    is_null(false),
                    filter(FilterOp::NotEq(FilterValue::Text(String::new()))),
                ]),
                (true, false) => is_null(false),
                (false, true) => Condition::Any(vec![
                    is_null(true),
                    filter(FilterOp::Eq(FilterValue::Text(String::new()))),
                ]),
                (false, false) => is_null(true),
            }
        }
        Matcher::Unsupported => never(),
    })
}

/// One `filter[q][<predicate>]=<value>` as a store condition.
fn filter(parameter: &str, predicate: &str, value: &str) -> ClResult<Condition> {
    let Some(p) = split_predicate(predicate) else {
        let detail = if predicate.starts_with("events_") {
            format!("{parameter}: filtering on the events relationship is not supported")
        } else {
            format!(
                "{parameter} is not a valid filter: filter on {} (combined with _or_ or _and_) with one of Ransack's predicates (_eq, _in, _gt, _cont, _matches, _null, ...)",
                FILTER_FIELDS.map(|(n, _)| n).join(", ")
            )
        };
        return Err(ClError::param("FILTER_NOT_ALLOWED", parameter, detail));
    };
    if p.matcher == Matcher::Unsupported {
        return Err(ClError::param(
            "FILTER_NOT_ALLOWED",
            parameter,
            format!(
                "{parameter}: _{} applies to boolean and JSON attributes, and imports filter on none",
                p.matcher_name
            ),
        ));
    }
    let mut parts = Vec::with_capacity(p.fields.len());
    for (name, field) in &p.fields {
        parts.push(match field {
            FilterField::Stored(f) => stored_condition(parameter, name, *f, p.matcher, value)?,
            // Never null: the Commerce Layer names that pass stand for their Intake statuses.
            FilterField::Status => {
                let mut wanted = Vec::new();
                for (n, members) in STATUSES {
                    if name_holds(parameter, p.matcher, n, value)? {
                        wanted.extend(
                            members
                                .iter()
                                .map(|s| FilterValue::Text(s.as_str().to_owned())),
                        );
                    }
                }
                Condition::Filter(ImportFilter {
                    field: ImportField::Status,
                    op: FilterOp::In(wanted),
                })
            }
            // Always null.
            FilterField::ParentResourceId => {
                if null_holds(parameter, p.matcher, value)? {
                    always()
                } else {
                    never()
                }
            }
        });
    }
    Ok(match (p.combinator, parts.len()) {
        (_, 1) => parts.remove(0),
        (Combinator::Or, _) => Condition::Any(parts),
        (Combinator::And, _) => Condition::All(parts),
    })
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

/// `include` is refused on every route: events are read at `/api/imports/{id}/events`.
fn invalid_include(value: &str) -> ClError {
    ClError::param(
        "INVALID_INCLUDE",
        "include",
        format!("{value} is not a valid includable relationship of imports"),
    )
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
            "include" => return Err(invalid_include(&value)),
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
                search.conditions.push(filter(&name, predicate, &value)?);
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
        } else if name == "include" {
            return Err(invalid_include(&value));
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
/// `cleanup_records`, `skip_errors`, `reference`, `reference_origin`, `metadata`.
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> ClResult<Response> {
    let (key, ws) = authorize_key(&state, &headers, Role::Member).await?;
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
            "skip_errors",
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
    match attrs.get("skip_errors") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => {
            options.insert("on_error".into(), Value::String("skip".into()));
        }
        // Commerce Layer interrupts an import whose errors pass 10% of its inputs; Intake's
        // abort policy stops it there and undoes what it wrote.
        Some(Value::Bool(false)) => {
            let inputs = match &records {
                Records::Json(items) => items.len(),
                Records::Csv(text) => text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .count()
                    .saturating_sub(1),
            };
            options.insert("on_error".into(), Value::String("abort".into()));
            options.insert("max_errors".into(), json!(inputs / 10));
        }
        Some(_) => {
            return Err(ClError::invalid(
                "skip_errors",
                "is invalid",
                "skip_errors must be true or false",
            ));
        }
    }
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
            key,
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
            Err(StoreError::Refused(r @ Refusal::NotCancellable(_))) => {
                return Err(ClError::invalid(
                    "_interrupt",
                    "cannot be interrupted",
                    r.to_string(),
                ));
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
    // A two-step import waiting for its file is pending, as a queued one is: Commerce Layer
    // locks both. (The store refuses queued and running imports itself.)
    if import.status == ImportStatus::New {
        return Err(locked(
            "the import is pending (waiting for its file); interrupt it first",
        ));
    }
    let purged = match state
        .store
        .purge_import(&ws, import.id, Forget::EndedOrWaiting, false)
        .await
    {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => return Err(ClError::not_found()),
        // Commerce Layer locks an import while it runs; other refusals answer as usual.
        Err(StoreError::Refused(r @ Refusal::Running(..))) => return Err(locked(r.to_string())),
        Err(e) => return Err(e.into()),
    };
    for key in &purged.blob_keys {
        if let Err(e) = state.engine.blobs.delete(key).await {
            tracing::warn!(error = %e, key, "could not delete a deleted import's source");
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 423: the import is pending or running.
fn locked(detail: impl Into<String>) -> ClError {
    ClError::new(
        StatusCode::LOCKED,
        "LOCKED",
        "Locked",
        detail,
        json!({ "parameter": "id" }),
    )
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

    fn split(p: &str) -> Option<(Vec<&'static str>, Combinator, String)> {
        split_predicate(p).map(|p| {
            (
                p.fields.iter().map(|(n, _)| *n).collect(),
                p.combinator,
                p.matcher_name,
            )
        })
    }

    #[test]
    fn predicates_split_on_the_longest_matcher() {
        let one = |f: &'static str, m: &str| Some((vec![f], Combinator::Or, m.to_owned()));
        assert_eq!(split("status_not_eq"), one("status", "not_eq"));
        assert_eq!(split("reference_origin_eq"), one("reference_origin", "eq"));
        assert_eq!(split("errors_count_gteq"), one("errors_count", "gteq"));
        assert_eq!(
            split("completed_at_not_null"),
            one("completed_at", "not_null")
        );
        assert_eq!(split("created_at_gteq_lt"), one("created_at", "gteq_lt"));
        assert_eq!(
            split("reference_eq_or_null"),
            one("reference", "eq_or_null")
        );
        assert_eq!(
            split("reference_not_i_cont_any"),
            one("reference", "not_i_cont_any")
        );
        assert_eq!(split("status_matches"), one("status", "matches"));
        assert!(split("format_eq").is_none());
        assert!(split("status_like").is_none());
    }

    #[test]
    fn attributes_combine_with_the_first_or_or_and() {
        assert_eq!(
            split("updated_at_or_created_at_gt"),
            Some((
                vec!["updated_at", "created_at"],
                Combinator::Or,
                "gt".into()
            ))
        );
        assert_eq!(
            split("reference_and_reference_origin_cont"),
            Some((
                vec!["reference", "reference_origin"],
                Combinator::And,
                "cont".into()
            ))
        );
        assert!(split("reference_or_bogus_eq").is_none());
    }

    #[test]
    fn like_patterns_match_as_sql_does_without_ascii_case() {
        assert!(like("REF-12", "ref%"));
        assert!(like("REF-12", "%-1_"));
        assert!(!like("REF-12", "%-1"));
        assert!(like("50%", "50\\%"));
        assert!(!like("501", "50\\%"));
        assert!(like("", "%"));
        assert!(like("abcabc", "%b%c"));
    }

    #[test]
    fn plain_dates_and_date_times_without_offset_are_utc() {
        let t = |s: &str| filter_time(s).map(millis);
        assert_eq!(t("2018-01-01").as_deref(), Some("2018-01-01T00:00:00.000Z"));
        assert_eq!(
            t("2018-01-01 12:30").as_deref(),
            Some("2018-01-01T12:30:00.000Z")
        );
        assert_eq!(
            t("2018-01-01T12:30:15").as_deref(),
            Some("2018-01-01T12:30:15.000Z")
        );
        assert_eq!(
            t("2018-01-01T12:30:15+01:00").as_deref(),
            Some("2018-01-01T11:30:15.000Z")
        );
        assert!(t("yesterday").is_none());
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
        let f = filter("p", "status_eq", "completed").ok();
        assert_eq!(
            f,
            Some(Condition::Filter(ImportFilter {
                field: ImportField::Status,
                op: FilterOp::In(vec![
                    FilterValue::Text("complete".into()),
                    FilterValue::Text("partially_complete".into()),
                ]),
            }))
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
