//! `/v1/imports`: create (upload, raw body, inline records), list, read, errors, cancel.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::auth::{Admin, Auth, Member, Viewer};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::import_create::{StagedInput, create_import};
use super::import_options::{
    ImportOptions, ImportRequest, ImportSettings, ImportUpload, RawOptions,
};
use super::pagination::{Cursor, page_limit};
use super::views::{
    ErrorSummaryView, ImportView, Page, ProgressView, RowErrorView, error_summary_view,
    import_view, progress_view, row_error_view,
};
use crate::engine::reader::Format;
use crate::engine::staging::{StageError, stage, stage_with};
use crate::engine::workbook::WorkbookError;
use crate::model::{Forget, ImportStatus, Source};
use crate::store::{ImportQuery, ImportSort};

/// Creates an import from a multipart upload, a raw body or a JSON request (202).
#[utoipa::path(post, path = "/v1/imports", tag = "imports",
    params(ImportOptions, ("Idempotency-Key" = Option<String>, Header,
        description = "The same key and request within 24 hours answer the first import")),
    request_body(description = "The source: a file in a form, a raw body, or records",
        content(
            (ImportUpload = "multipart/form-data"),
            (ImportRequest = "application/json"),
            (String = "text/csv"),
            (String = "text/tab-separated-values"),
            (String = "application/x-ndjson"),
            (String = "application/octet-stream"),
        )),
    responses((status = 202, description = "Queued (or `new` with `start=false`)", body = ImportView)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Member>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let mut raw: RawOptions = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    check_length(&state, &headers)?;
    let mut staged = Vec::new();
    let result = async {
        let source = if mime == "multipart/form-data" {
            let multipart = Multipart::from_request(request, &state)
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?;
            read_multipart(&state, multipart, &mut raw, &mut staged).await?;
            None
        } else if mime == "application/json" && !raw.contains_key("table") {
            // A JSON request object: options and inline records together.
            let body = read_json_body(&state, request).await?;
            let mut obj = json_members(&body).ok_or_else(|| {
                ApiError::validation(
                    "a JSON request must be an object {\"table\", \"inputs\": [...]} (to upload a JSON file, pass ?table=)",
                )
            })??;
            let records = obj.remove("inputs");
            let url = obj.remove("url");
            add_options(&mut raw, obj)?;
            if let Some(url) = url {
                if records.is_some() {
                    return Err(ApiError::validation(
                        "send either \"inputs\" or \"url\", not both",
                    ));
                }
                let url = serde_json::from_str(url.get()).map_err(invalid_body)?;
                return super::import_url::create(&state, &auth, &headers, raw, url).await;
            }
            let settings = ImportSettings::parse(&raw)?;
            match records {
                Some(records) => {
                    staged.push(stage_records(&state, &settings, records).await?);
                    Some(Source::Inline)
                }
                // The two-step flow: the file comes later with PUT /v1/imports/{id}/file.
                None if !settings.start => None,
                None => {
                    return Err(ApiError::validation(
                        "a JSON request needs \"inputs\": a list of records (or \"start\": false to upload the file later)",
                    ));
                }
            }
        } else {
            let declared = match mime.as_str() {
                "text/csv" => Some(Format::Csv),
                "text/tab-separated-values" => Some(Format::Tsv),
                "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" => {
                    Some(Format::Ndjson)
                }
                "application/json" => Some(Format::Json),
                // Compressed files and workbooks are recognised by their first bytes.
                "text/plain"
                | "application/octet-stream"
                | ""
                | "application/gzip"
                | "application/x-gzip"
                | "application/zstd"
                | "application/x-zstd"
                | "application/zip"
                | "application/x-zip-compressed"
                | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                | "application/vnd.ms-excel.sheet.binary.macroenabled.12"
                | "application/vnd.ms-excel"
                | "application/vnd.oasis.opendocument.spreadsheet" => None,
                other => {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedMediaType,
                        format!(
                            "Content-Type {other} is not supported; send text/csv, text/tab-separated-values, application/x-ndjson, application/json or multipart/form-data"
                        ),
                    ));
                }
            };
            let settings = ImportSettings::parse(&raw)?;
            let body = request.into_body().into_data_stream();
            let staged_file = stage_with(
                state.engine.blobs.staging_path(),
                body,
                &settings.stage_options(),
                state.config.max_upload_bytes,
            )
            .await
            .map_err(stage_error)?;
            staged.push(StagedInput {
                table: None,
                file_name: settings.file_name.clone(),
                declared,
                staged: staged_file,
            });
            None
        };
        let settings = ImportSettings::parse(&raw)?;
        if settings.url.is_some() {
            return Err(ApiError::validation(
                "url is a member of a JSON request ({\"table\", \"url\"}), sent without a file",
            ));
        }
        create_import(&state, &auth, &headers, settings, &mut staged, source).await
    }
    .await;
    for s in &staged {
        let _ = tokio::fs::remove_file(&s.staged.path).await;
    }
    result
}

/// Creates an import of source `api` from records sent to a table (202).
#[utoipa::path(post, path = "/v1/tables/{table}/records", tag = "tables",
    params(("table" = String, Path, description = "The table's name"), ImportOptions),
    request_body(description = "`[{...}, ...]`, or `{\"records\": [...]}` with options",
        content((RecordsBody = "application/json"))),
    responses((status = 202, body = ImportView)))]
pub async fn create_from_records(
    State(state): State<AppState>,
    auth: Auth<Member>,
    Path(table): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let mut raw: RawOptions = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    check_length(&state, &headers)?;
    let body = read_json_body(&state, request).await?;
    let wrong =
        || ApiError::validation("send a list of records, or an object with \"records\": [...]");
    let records = if body.get().starts_with('[') {
        body
    } else {
        let mut obj = json_members(&body).ok_or_else(wrong)??;
        let records = obj.remove("records").ok_or_else(wrong)?;
        add_options(&mut raw, obj)?;
        records
    };
    raw.insert("table".into(), Value::String(table));
    let settings = ImportSettings::parse(&raw)?;
    let mut staged = vec![stage_records(&state, &settings, records).await?];
    let result = create_import(
        &state,
        &auth,
        &headers,
        settings,
        &mut staged,
        Some(Source::Api),
    )
    .await;
    for s in &staged {
        let _ = tokio::fs::remove_file(&s.staged.path).await;
    }
    result
}

/// Refuses a body whose declared length is over the limit before reading any of it.
pub(super) fn check_length(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > state.config.max_upload_bytes => {
            Err(too_large(state.config.max_upload_bytes))
        }
        _ => Ok(()),
    }
}

pub(super) fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the upload is larger than the limit of {limit} bytes"),
    )
    .with("limit_bytes", limit)
}

pub(super) fn stage_error(e: StageError) -> ApiError {
    match e {
        StageError::TooLarge(limit) => too_large(limit),
        StageError::Body(m) => ApiError::bad_request(format!("the upload could not be read: {m}")),
        StageError::Io(e) => ApiError::io("the upload", &e),
        e @ StageError::Damaged(_) => ApiError::new(ErrorCode::UnsupportedFormat, e.to_string()),
        e @ StageError::Bomb(_) => ApiError::new(ErrorCode::PayloadTooLarge, e.to_string()),
        StageError::Archive(crate::engine::archive::ArchiveError::Io(e))
        | StageError::Workbook(WorkbookError::Io(e)) => ApiError::io("the upload", &e),
        e @ StageError::Archive(_) => ApiError::new(ErrorCode::UnsupportedFormat, e.to_string()),
        StageError::Workbook(e @ WorkbookError::TooLarge(_)) => {
            ApiError::new(ErrorCode::PayloadTooLarge, e.to_string())
        }
        StageError::Workbook(e @ WorkbookError::Damaged { .. }) => {
            ApiError::new(ErrorCode::UnsupportedFormat, e.to_string())
        }
        StageError::Workbook(e @ WorkbookError::Sheet(_)) => ApiError::validation(e.to_string()),
    }
}

/// Reads a JSON request body, kept as its text: records in it are read as an NDJSON
/// source's are (a field named twice is that record's error, not a value silently kept).
async fn read_json_body(state: &AppState, request: Request) -> ApiResult<Box<RawValue>> {
    let limit = state.config.max_inline_bytes;
    let bytes = axum::body::to_bytes(request.into_body(), limit as usize)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "a JSON request body may be at most {limit} bytes; upload larger data as a file"
                ),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(invalid_body)
}

/// The members of a JSON object, each kept as its text; None when `body` is not an object.
fn json_members(body: &RawValue) -> Option<ApiResult<BTreeMap<String, Box<RawValue>>>> {
    body.get()
        .starts_with('{')
        .then(|| serde_json::from_str(body.get()).map_err(invalid_body))
}

/// Adds a JSON request's other members to the import's options, as values.
fn add_options(raw: &mut RawOptions, members: BTreeMap<String, Box<RawValue>>) -> ApiResult<()> {
    for (key, value) in members {
        let value = serde_json::from_str(value.get()).map_err(invalid_body)?;
        raw.insert(key, value);
    }
    Ok(())
}

fn invalid_body(e: serde_json::Error) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidJson,
        format!("the body is not valid JSON: {e}"),
    )
}

/// Writes inline records as an NDJSON source.
async fn stage_records(
    state: &AppState,
    settings: &ImportSettings,
    records: Box<RawValue>,
) -> ApiResult<StagedInput> {
    let items: Vec<Box<RawValue>> = serde_json::from_str(records.get())
        .map_err(|_| ApiError::validation("records must be a JSON list of objects"))?;
    if items.is_empty() {
        return Err(ApiError::validation(
            "records is empty: send at least one record",
        ));
    }
    // Each record as it was written, on a line of its own: line ends in JSON text are
    // whitespace between tokens (never inside a string), so spaces take their place.
    let mut text = Vec::new();
    for item in &items {
        text.extend(
            item.get()
                .bytes()
                .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
        text.push(b'\n');
    }
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(text)]);
    let staged = stage(
        state.engine.blobs.staging_path(),
        chunks,
        None,
        state.config.max_upload_bytes,
    )
    .await
    .map_err(stage_error)?;
    Ok(StagedInput {
        table: settings.table.clone(),
        file_name: None,
        declared: Some(Format::Ndjson),
        staged,
    })
}

async fn read_multipart(
    state: &AppState,
    mut multipart: Multipart,
    raw: &mut RawOptions,
    staged: &mut Vec<StagedInput>,
) -> ApiResult<()> {
    // Encoding must be known before a file streams through; it may come as a query option
    // or as a field before the files.
    while let Some(field) = multipart.next_field().await.map_err(|e| {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
    })? {
        let name = field.name().unwrap_or("").to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            // The same bound as the file_name option: a name is shown, not stored at any size.
            if file_name.chars().count() > 255 {
                return Err(ApiError::validation(format!(
                    "the file name of field {name:?} is longer than 255 characters"
                )));
            }
            let settings = ImportSettings::parse(raw)?;
            let declared = field.content_type().and_then(|ct| match ct {
                "text/csv" => Some(Format::Csv),
                "text/tab-separated-values" => Some(Format::Tsv),
                "application/x-ndjson" => Some(Format::Ndjson),
                "application/json" => Some(Format::Json),
                _ => None,
            });
            let stream = field.map_err(|e| e.body_text());
            let staged_file = stage_with(
                state.engine.blobs.staging_path(),
                stream,
                &settings.stage_options(),
                state.config.max_upload_bytes,
            )
            .await
            .map_err(stage_error)?;
            let table = (name != "file" && !name.is_empty()).then_some(name);
            staged.push(StagedInput {
                table,
                file_name: Some(file_name),
                declared,
                staged: staged_file,
            });
        } else {
            let value = field.text().await.map_err(|e| {
                ApiError::bad_request(format!(
                    "malformed multipart field {name:?}: {}",
                    e.body_text()
                ))
            })?;
            raw.insert(name, Value::String(value));
        }
    }
    if staged.is_empty() {
        return Err(ApiError::validation(
            "the multipart body has no file: add a file field (e.g. -F file=@data.csv)",
        ));
    }
    Ok(())
}

/// The body of `POST /v1/tables/{table}/records`.
#[allow(dead_code, clippy::large_enum_variant)] // The document's; the handler streams the body.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RecordsBody {
    /// The records alone.
    Records(Vec<serde_json::Map<String, Value>>),
    /// The records with import options beside them.
    WithOptions {
        records: Vec<serde_json::Map<String, Value>>,
        #[serde(flatten)]
        options: ImportOptions,
    },
}

/// Query of `GET /v1/imports`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Imports a page (1-1000, default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Statuses, comma-separated (`complete,failed`).
    status: Option<String>,
    table: Option<String>,
    /// `upload`, `body`, `inline`, `api`, …
    source: Option<String>,
    reference: Option<String>,
    /// RFC 3339 bounds on creation and last change.
    created_after: Option<String>,
    created_before: Option<String>,
    updated_after: Option<String>,
    updated_before: Option<String>,
    /// `id`, `created_at`, `updated_at` or `completed_at`; prefix `-` for descending.
    sort: Option<String>,
}

fn parse_time(name: &str, v: &Option<String>) -> ApiResult<Option<time::OffsetDateTime>> {
    v.as_deref()
        .map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(
                |_| {
                    ApiError::bad_request(format!(
                        "{name} must be an RFC 3339 timestamp, not {s:?}"
                    ))
                },
            )
        })
        .transpose()
}

/// Lists imports, newest first by default.
#[utoipa::path(get, path = "/v1/imports", tag = "imports", params(ListQuery),
    responses((status = 200, body = Page<ImportView>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let (sort, descending) = match q.sort.as_deref() {
        None => (ImportSort::Id, true),
        Some(s) => {
            let (desc, name) = s.strip_prefix('-').map_or((false, s), |n| (true, n));
            let sort = match name {
                "id" => ImportSort::Id,
                "created_at" => ImportSort::CreatedAt,
                "updated_at" => ImportSort::UpdatedAt,
                "completed_at" => ImportSort::CompletedAt,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "cannot sort by {name:?}; sort by id, created_at, updated_at or completed_at (prefix - for descending)"
                    )));
                }
            };
            (sort, desc)
        }
    };
    let statuses = match q.status.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                ImportStatus::parse(s.trim())
                    .ok_or_else(|| ApiError::bad_request(format!("unknown status {s:?}")))
            })
            .collect::<ApiResult<_>>()?,
    };
    let source = q
        .source
        .as_deref()
        .map(|s| {
            Source::parse(s).ok_or_else(|| ApiError::bad_request(format!("unknown source {s:?}")))
        })
        .transpose()?;
    let cursor = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let limit = page_limit(q.limit)?;
    let query = ImportQuery {
        statuses,
        table: q.table.clone(),
        source,
        reference: q.reference.clone(),
        created_after: parse_time("created_after", &q.created_after)?,
        created_before: parse_time("created_before", &q.created_before)?,
        updated_after: parse_time("updated_after", &q.updated_after)?,
        updated_before: parse_time("updated_before", &q.updated_before)?,
        sort: Some(sort),
        descending,
        after: cursor.map(|c| (c.value, c.id)),
        limit,
    };
    let page = state.store.list_imports(auth.workspace.id, &query).await?;
    let next_cursor = if page.has_more {
        page.imports.last().map(|i| {
            let value = match sort {
                ImportSort::Id => None,
                ImportSort::CreatedAt => Some(crate::store::sort_key(i.created_at)),
                ImportSort::UpdatedAt => Some(crate::store::sort_key(i.updated_at)),
                ImportSort::CompletedAt => Some(
                    i.completed_at
                        .map(crate::store::sort_key)
                        .unwrap_or_default(),
                ),
            };
            Cursor { value, id: i.id }.encode()
        })
    } else {
        None
    };
    Ok(Json(Page {
        data: page.imports.iter().map(ImportView::of).collect(),
        next_cursor,
        has_more: page.has_more,
    })
    .into_response())
}

pub(super) fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("import"))
}

/// One import.
#[utoipa::path(get, path = "/v1/imports/{id}", tag = "imports", params(("id" = String, Path, description = "The import's id")),
    responses((status = 200, body = ImportView)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let import = state
        .store
        .get_import(auth.workspace.id, parse_id(&id)?)
        .await?;
    Ok(Json(ImportView::of(&import)).into_response())
}

/// The compact progress of an import.
#[utoipa::path(get, path = "/v1/imports/{id}/progress", tag = "imports", params(("id" = String, Path, description = "The import's id")),
    responses((status = 200, body = ProgressView)))]
pub async fn progress(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProgressView>> {
    let import = state
        .store
        .get_import(auth.workspace.id, parse_id(&id)?)
        .await?;
    Ok(Json(progress_view(&import)))
}

/// Query of the errors and events lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items a page (1-1000, default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Errors only: `json` (default) or `csv` (the rejected rows as a CSV download).
    format: Option<String>,
}

fn seq_cursor(c: &Option<String>) -> ApiResult<Option<i64>> {
    super::pagination::number_cursor(c.as_deref())
}

/// An import's row errors, as JSON pages or (`?format=csv`) as a CSV of the rejected rows.
#[utoipa::path(get, path = "/v1/imports/{id}/errors", tag = "imports",
    params(("id" = String, Path, description = "The import's id"), PageQuery),
    responses((status = 200, content(
        (Page<RowErrorView> = "application/json"),
        (String = "text/csv")))))]
pub async fn errors(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let id = parse_id(&id)?;
    match q.format.as_deref() {
        Some("csv") => return super::rejected_csv::download(&state, auth.workspace.id, id).await,
        None | Some("json") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be json or csv, not {other:?}"
            )));
        }
    }
    let limit = page_limit(q.limit)?;
    let rows = state
        .store
        .list_row_errors(auth.workspace.id, id, seq_cursor(&q.cursor)?, limit + 1)
        .await?;
    let has_more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    // Errors of a workbook's sheet also name their cell.
    let import = state.store.get_import(auth.workspace.id, id).await?;
    let cells = super::sheet_cells::SheetCells::of(&import);
    Ok(Json(Page {
        data: rows
            .iter()
            .map(|e| row_error_view(e, cells.cell(e)))
            .collect(),
        next_cursor: next_cursor(has_more, rows.last().map(|r| r.id)),
        has_more,
    })
    .into_response())
}

/// An import's row errors grouped by table, column and code, the largest groups first, with
/// how many rejected rows were counted and how many stored.
#[utoipa::path(get, path = "/v1/imports/{id}/errors/summary", tag = "imports", params(("id" = String, Path, description = "The import's id")),
    responses((status = 200, body = ErrorSummaryView)))]
pub async fn error_summary(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let import = state.store.get_import(auth.workspace.id, id).await?;
    let groups = state
        .store
        .summarize_row_errors(auth.workspace.id, id)
        .await?;
    Ok(Json(error_summary_view(&import, &groups)).into_response())
}

/// A lifecycle event of an import.
#[derive(Serialize, ToSchema)]
pub struct EventView<'a> {
    id: i64,
    /// `import.created`, `import.started`, `import.completed`, …
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a Value,
    created_at: String,
}

/// The cursor of the next page: the last item's id, when there are more.
fn next_cursor(has_more: bool, last: Option<i64>) -> Option<String> {
    if has_more {
        last.map(|id| id.to_string())
    } else {
        None
    }
}

/// An import's lifecycle events, oldest first.
#[utoipa::path(get, path = "/v1/imports/{id}/events", tag = "imports",
    params(("id" = String, Path, description = "The import's id"), PageQuery),
    responses((status = 200, body = Page<EventView>)))]
pub async fn events(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let limit = page_limit(q.limit)?;
    let rows = state
        .store
        .list_events(
            auth.workspace.id,
            parse_id(&id)?,
            seq_cursor(&q.cursor)?,
            limit + 1,
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    Ok(Json(Page {
        data: rows
            .iter()
            .map(|e| EventView {
                id: e.id,
                kind: &e.kind,
                data: &e.data,
                created_at: super::views::rfc3339(e.created_at),
            })
            .collect(),
        next_cursor: next_cursor(has_more, rows.last().map(|r| r.id)),
        has_more,
    })
    .into_response())
}

/// Starts undoing a finished import (202); answers a rolled-back import as it is (200).
#[utoipa::path(post, path = "/v1/imports/{id}/rollback", tag = "imports", params(("id" = String, Path, description = "The import's id")),
    responses((status = 202, description = "Rolling back", body = ImportView),
        (status = 200, description = "Already rolled back", body = ImportView)))]
pub async fn rollback(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let import = state
        .engine
        .roll_back(auth.workspace.id, parse_id(&id)?)
        .await?;
    let status = if import.status == ImportStatus::RolledBack {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(import_view(&import))).into_response())
}

/// Forgets a finished import: its record, errors, events and undo journal (204). Its rows
/// stay in the table; roll it back first to remove them.
#[utoipa::path(delete, path = "/v1/imports/{id}", tag = "imports", params(("id" = String, Path, description = "The import's id")),
    responses((status = 204, description = "Forgotten")))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let purged = state
        .store
        .purge_import(&auth.workspace, parse_id(&id)?, Forget::Ended, false)
        .await?;
    for key in purged.blob_keys {
        if let Err(e) = state.engine.blobs.delete(&key).await {
            tracing::warn!(error = %e, key, "could not delete a deleted import's source");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels a queued or running import (what was written stays).
#[utoipa::path(post, path = "/v1/imports/{id}/cancel", tag = "imports", params(("id" = String, Path, description = "The import's id")),
    responses((status = 200, body = ImportView)))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth<Member>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let import = state
        .store
        .request_cancel(auth.workspace.id, parse_id(&id)?)
        .await?;
    Ok(Json(ImportView::of(&import)).into_response())
}
