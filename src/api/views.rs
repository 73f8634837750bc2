//! The JSON shapes the API answers with (separate from the stored types).

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{Counts, ImportStatus, Mode, OnError, Source, Step};
use crate::store::{ErrorGroup, ImportRecord, ImportTableRecord, StoredRowError, TableRecord};

/// RFC 3339 text of a timestamp (UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Percent done: bytes read over bytes total, 100 once finished.
fn percent(status: ImportStatus, read: u64, total: u64) -> u64 {
    match status {
        ImportStatus::Complete | ImportStatus::PartiallyComplete | ImportStatus::RolledBack => 100,
        _ if total == 0 => 0,
        _ => (read.saturating_mul(100) / total).min(99),
    }
}

/// An import's percent done; while it rolls back, the share of its tables already undone.
fn import_percent(i: &ImportRecord) -> u64 {
    if i.status == ImportStatus::RollingBack {
        let done = i
            .tables
            .iter()
            .filter(|t| t.status == ImportStatus::RolledBack)
            .count() as u64;
        return done * 100 / (i.tables.len().max(1) as u64);
    }
    percent(i.status, i.bytes_read, i.bytes_total)
}

/// Rows per second and seconds left, from the time spent so far.
fn rates(import: &ImportRecord) -> (Option<f64>, Option<u64>) {
    let Some(started) = import.started_at else {
        return (None, None);
    };
    let end = import.completed_at.unwrap_or_else(OffsetDateTime::now_utc);
    let secs = (end - started).as_seconds_f64();
    if secs <= 0.0 {
        return (None, None);
    }
    let rps = (import.counts.processed as f64 / secs * 10.0).round() / 10.0;
    let eta = if import.status.is_terminal() {
        Some(0)
    } else if import.bytes_read > 0 && import.bytes_total >= import.bytes_read {
        let left = (import.bytes_total - import.bytes_read) as f64;
        Some((left * secs / import.bytes_read as f64).ceil() as u64)
    } else {
        None
    };
    (Some(rps), eta)
}

/// A table of an import, as the import resource shows it.
#[derive(Serialize, ToSchema)]
pub struct ImportTableView<'a> {
    table: &'a str,
    status: ImportStatus,
    format: &'a str,
    file_name: Option<&'a str>,
    file_size: Option<u64>,
    progress: u64,
    bytes_total: u64,
    bytes_read: u64,
    #[schema(value_type = Counts)]
    counts: &'a Counts,
    error: Option<&'a str>,
    started_at: Option<String>,
    completed_at: Option<String>,
    /// The table this import created from its source (`create_table=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    created_schema: Option<&'a Value>,
    /// The cells read as missing in the created table's typed columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    missing_tokens: Option<&'a Value>,
}

impl<'a> ImportTableView<'a> {
    fn of(t: &'a ImportTableRecord) -> Self {
        ImportTableView {
            table: &t.table,
            status: t.status,
            format: &t.format,
            file_name: t.file_name.as_deref(),
            file_size: t.file_size,
            progress: percent(t.status, t.bytes_read, t.bytes_total),
            bytes_total: t.bytes_total,
            bytes_read: t.bytes_read,
            counts: &t.counts,
            error: t.error.as_deref(),
            started_at: t.started_at.map(rfc3339),
            completed_at: t.completed_at.map(rfc3339),
            created_schema: t.options.get("created_schema"),
            missing_tokens: t
                .options
                .get("created_schema")
                .map(|_| t.options.get("typed_null_values").unwrap_or(&EMPTY_LIST)),
        }
    }
}

/// The missing tokens of a created table that read none.
static EMPTY_LIST: Value = Value::Array(Vec::new());

/// The full import resource. Serialized straight to the response (pages of the list and
/// single imports are read often): no intermediate JSON tree.
#[derive(Serialize, ToSchema)]
pub struct ImportView<'a> {
    id: Uuid,
    number: i64,
    status: ImportStatus,
    step: Step,
    progress: u64,
    source: Source,
    mode: Mode,
    on_error: OnError,
    max_errors: Option<u64>,
    dry_run: bool,
    cleanup_records: bool,
    file_name: Option<&'a str>,
    file_size: Option<u64>,
    bytes_total: u64,
    bytes_read: u64,
    rows_per_second: Option<f64>,
    eta_seconds: Option<u64>,
    reference: Option<&'a str>,
    reference_origin: Option<&'a str>,
    #[schema(value_type = Value)]
    metadata: &'a Value,
    note: Option<&'a str>,
    platform: Option<&'a str>,
    error: Option<&'a str>,
    #[schema(value_type = Counts)]
    counts: &'a Counts,
    /// Row errors stored and downloadable; below `counts.invalid` when truncated.
    errors_stored: u64,
    /// Some rejected rows were counted but not stored (past `--max-stored-errors`, or pruned).
    errors_truncated: bool,
    tables: Vec<ImportTableView<'a>>,
    created_at: String,
    started_at: Option<String>,
    completed_at: Option<String>,
    cancelled_at: Option<String>,
    rolled_back_at: Option<String>,
    rollback_available_until: Option<String>,
    updated_at: String,
}

impl<'a> ImportView<'a> {
    /// The resource of an import.
    pub fn of(i: &'a ImportRecord) -> Self {
        let (rps, eta) = rates(i);
        ImportView {
            id: i.id,
            number: i.number,
            status: i.status,
            step: i.step,
            progress: import_percent(i),
            source: i.source,
            mode: i.mode,
            on_error: i.on_error,
            max_errors: i.max_errors,
            dry_run: i.dry_run,
            cleanup_records: i.cleanup_records,
            file_name: i.tables.first().and_then(|t| t.file_name.as_deref()),
            file_size: i.tables.iter().map(|t| t.file_size).sum::<Option<u64>>(),
            bytes_total: i.bytes_total,
            bytes_read: i.bytes_read,
            rows_per_second: rps,
            eta_seconds: eta,
            reference: i.reference.as_deref(),
            reference_origin: i.reference_origin.as_deref(),
            metadata: &i.metadata,
            note: i.note.as_deref(),
            platform: i.platform.as_deref(),
            error: i.error.as_deref(),
            counts: &i.counts,
            errors_stored: i.errors_stored,
            errors_truncated: i.errors_truncated(),
            tables: i.tables.iter().map(ImportTableView::of).collect(),
            created_at: rfc3339(i.created_at),
            started_at: i.started_at.map(rfc3339),
            completed_at: i.completed_at.map(rfc3339),
            cancelled_at: i.cancelled_at.map(rfc3339),
            rolled_back_at: i.rolled_back_at.map(rfc3339),
            rollback_available_until: i.rollback_until.map(rfc3339),
            updated_at: rfc3339(i.updated_at),
        }
    }
}

/// The full import resource, as a JSON value.
pub fn import_view(i: &ImportRecord) -> Value {
    serde_json::to_value(ImportView::of(i)).unwrap_or(Value::Null)
}

/// The compact progress of an import.
#[derive(Serialize, ToSchema)]
pub struct ProgressView {
    id: Uuid,
    status: ImportStatus,
    step: Step,
    progress: u64,
    bytes_total: u64,
    bytes_read: u64,
    rows_per_second: Option<f64>,
    eta_seconds: Option<u64>,
    counts: Counts,
    updated_at: String,
}

/// The compact progress view.
pub fn progress_view(i: &ImportRecord) -> ProgressView {
    let (rps, eta) = rates(i);
    ProgressView {
        id: i.id,
        status: i.status,
        step: i.step,
        progress: import_percent(i),
        bytes_total: i.bytes_total,
        bytes_read: i.bytes_read,
        rows_per_second: rps,
        eta_seconds: eta,
        counts: i.counts,
        updated_at: rfc3339(i.updated_at),
    }
}

/// A stored row error: where it is, what is wrong, and the rejected row.
#[derive(Serialize, ToSchema)]
pub struct RowErrorView<'a> {
    table: &'a str,
    /// The line in the source where the record starts (1-based).
    line: u64,
    /// The record's number in the source (1-based, the header not counted).
    record: u64,
    column: Option<&'a str>,
    #[schema(value_type = String)]
    code: crate::model::RowErrorCode,
    message: &'a str,
    /// The rejected row as read: an object keyed by source field name.
    row: &'a Value,
    /// The spreadsheet cell of an error in a workbook's sheet (`Orders!C17`; `Orders!17:17`
    /// for the whole row); absent for other sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    cell: Option<String>,
}

/// A stored row error.
/// `cell` names the spreadsheet cell (`Orders!C17`) of an error in a workbook's sheet.
pub fn row_error_view(e: &StoredRowError, cell: Option<String>) -> RowErrorView<'_> {
    RowErrorView {
        table: &e.table,
        line: e.error.line,
        record: e.error.record,
        column: e.error.column.as_deref(),
        code: e.error.code,
        message: &e.error.message,
        row: &e.error.row,
        cell,
    }
}

/// Rejected rows of one table, column and code.
#[derive(Serialize, ToSchema)]
pub struct ErrorGroupView<'a> {
    table: &'a str,
    column: Option<&'a str>,
    #[schema(value_type = String)]
    code: crate::model::RowErrorCode,
    count: u64,
    first_line: u64,
    /// The message of the first of them.
    example: &'a str,
}

/// The summary of an import's row errors.
#[derive(Serialize, ToSchema)]
pub struct ErrorSummaryView<'a> {
    /// Rejected rows counted.
    invalid: u64,
    /// Rejected rows stored (and downloadable).
    stored: u64,
    /// Whether some rejected rows were counted but not stored.
    truncated: bool,
    groups: Vec<ErrorGroupView<'a>>,
}

/// The summary of an import's row errors: counted, stored, and grouped.
pub fn error_summary_view<'a>(i: &ImportRecord, groups: &'a [ErrorGroup]) -> ErrorSummaryView<'a> {
    ErrorSummaryView {
        invalid: i.counts.invalid,
        stored: i.errors_stored,
        truncated: i.errors_truncated(),
        groups: groups
            .iter()
            .map(|g| ErrorGroupView {
                table: &g.table,
                column: g.column.as_deref(),
                code: g.code,
                count: g.count,
                first_line: g.first_line,
                example: &g.example,
            })
            .collect(),
    }
}

/// One page of a list, with the cursor of the next page.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass it back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// Every item of a short list, unpaged.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
}

/// A table resource.
#[derive(Serialize, ToSchema)]
pub struct TableView<'a> {
    pub name: &'a str,
    #[schema(value_type = Vec<crate::model::ColumnSpec>)]
    pub columns: &'a [crate::model::ColumnSpec],
    #[schema(value_type = Vec<String>)]
    pub primary_key: &'a [crate::model::Identifier],
    /// The table's name inside the database.
    pub database_table: &'a str,
    pub row_count: Option<u64>,
    pub created_at: String,
}

/// A table resource from its record.
pub fn table_view_of(t: &TableRecord) -> TableView<'_> {
    TableView {
        name: t.schema.name.as_str(),
        columns: &t.schema.columns,
        primary_key: &t.schema.primary_key,
        database_table: &t.physical_name,
        row_count: t.row_count,
        created_at: rfc3339(t.created_at),
    }
}

/// A workspace as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceView {
    id: Uuid,
    /// Its name in the database (tables are `<slug>__<table>` in SQLite, `<slug>.<table>` in
    /// PostgreSQL).
    slug: String,
    name: String,
    created_at: String,
}

impl WorkspaceView {
    /// The view of a workspace.
    pub fn of(ws: &crate::store::Workspace) -> WorkspaceView {
        WorkspaceView {
            id: ws.id,
            slug: ws.slug.clone(),
            name: ws.name.clone(),
            created_at: rfc3339(ws.created_at),
        }
    }
}
