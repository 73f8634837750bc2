//! The store's own records read back from a result row, written once for both backends. Each
//! backend says how it reads one column of each kind ([`StoredRow`]: UUIDs and times are
//! text in SQLite and native in PostgreSQL, JSON is text or `jsonb`); the column order of each
//! record (the `*_COLUMNS` lists and the queries that select them) and how each column
//! becomes a field live here.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    DeliveryRecord, DueDelivery, ErrorGroup, EventRecord, ImportRecord, ImportTableRecord,
    KeyRecord, Position, StoreResult, StoredRowError, WebhookRecord, Workspace,
};
use crate::model::{
    Counts, ImportStatus, Mode, OnError, Role, RowError, RowErrorCode, Source, Step,
};

/// One result row of a backend, read column by column (0-based).
pub(crate) trait StoredRow {
    /// A UUID column.
    fn uuid(&self, i: usize) -> StoreResult<Uuid>;
    /// A text column, or NULL.
    fn text_opt(&self, i: usize) -> StoreResult<Option<String>>;
    /// An integer column, or NULL.
    fn int_opt(&self, i: usize) -> StoreResult<Option<i64>>;
    /// A boolean column.
    fn flag(&self, i: usize) -> StoreResult<bool>;
    /// A JSON column (NULL, or a document the backend cannot read, as JSON null).
    fn json(&self, i: usize) -> StoreResult<serde_json::Value>;
    /// A time column, or NULL.
    fn time_opt(&self, i: usize) -> StoreResult<Option<OffsetDateTime>>;
    /// A list of texts (a JSON array in SQLite, `text[]` in PostgreSQL).
    fn texts(&self, i: usize) -> StoreResult<Vec<String>>;

    /// A text column that is never NULL.
    fn text(&self, i: usize) -> StoreResult<String> {
        Ok(self.text_opt(i)?.unwrap_or_default())
    }
    /// An integer column that is never NULL.
    fn int(&self, i: usize) -> StoreResult<i64> {
        Ok(self.int_opt(i)?.unwrap_or_default())
    }
    /// A count (never negative), or NULL.
    fn count_opt(&self, i: usize) -> StoreResult<Option<u64>> {
        Ok(self.int_opt(i)?.map(|v| v.max(0) as u64))
    }
    /// A count (never negative).
    fn count(&self, i: usize) -> StoreResult<u64> {
        Ok(self.int(i)?.max(0) as u64)
    }
    /// A time column that is never NULL.
    fn time(&self, i: usize) -> StoreResult<OffsetDateTime> {
        Ok(self.time_opt(i)?.unwrap_or(OffsetDateTime::UNIX_EPOCH))
    }
}

/// A workspace from `id, slug, name, created_at`.
pub(crate) fn workspace(r: &dyn StoredRow) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: r.uuid(0)?,
        slug: r.text(1)?,
        name: r.text(2)?,
        created_at: r.time(3)?,
    })
}

/// A key from [`KEY_COLUMNS`](super::columns::KEY_COLUMNS).
pub(crate) fn key(r: &dyn StoredRow) -> StoreResult<KeyRecord> {
    Ok(KeyRecord {
        id: r.uuid(0)?,
        workspace_id: r.uuid(1)?,
        name: r.text(2)?,
        role: Role::parse(&r.text(3)?).unwrap_or(Role::Viewer),
        prefix: r.text(4)?,
        created_at: r.time(5)?,
        last_used_at: r.time_opt(6)?,
        revoked_at: r.time_opt(7)?,
        expires_at: r.time_opt(8)?,
        tables: super::scope_from_text(r.text_opt(9)?),
    })
}

/// A webhook from [`WEBHOOK_COLUMNS`](super::columns::WEBHOOK_COLUMNS).
pub(crate) fn webhook(r: &dyn StoredRow) -> StoreResult<WebhookRecord> {
    Ok(WebhookRecord {
        id: r.uuid(0)?,
        url: r.text(1)?,
        events: r.texts(2)?,
        secret: r.text(3)?,
        description: r.text_opt(4)?,
        created_at: r.time(5)?,
    })
}

/// A delivery from `id, event_id, event_type, import_id, status, attempts, last_status_code,
/// last_error, next_attempt_at, created_at, delivered_at`.
pub(crate) fn delivery(r: &dyn StoredRow) -> StoreResult<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: r.int(0)?,
        event_id: r.int(1)?,
        event_type: r.text(2)?,
        import_id: r.uuid(3)?,
        status: r.text(4)?,
        attempts: attempts(r.int(5)?),
        last_status_code: r.int_opt(6)?.and_then(|c| u16::try_from(c).ok()),
        last_error: r.text_opt(7)?,
        next_attempt_at: r.int(8)?,
        created_at: r.time(9)?,
        delivered_at: r.time_opt(10)?,
    })
}

/// A due delivery from `d.id, d.workspace_id, w.url, w.secret, d.event_id, d.event_type,
/// e.created_at, d.import_id, d.attempts`.
pub(crate) fn due_delivery(r: &dyn StoredRow) -> StoreResult<DueDelivery> {
    Ok(DueDelivery {
        id: r.int(0)?,
        workspace_id: r.uuid(1)?,
        url: r.text(2)?,
        secret: r.text(3)?,
        event_id: r.int(4)?,
        event_type: r.text(5)?,
        event_created_at: r.time(6)?,
        import_id: r.uuid(7)?,
        attempts: attempts(r.int(8)?),
    })
}

fn attempts(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An event from `id, import_id, kind, data, created_at`.
pub(crate) fn event(r: &dyn StoredRow) -> StoreResult<EventRecord> {
    Ok(EventRecord {
        id: r.int(0)?,
        import_id: r.uuid(1)?,
        kind: r.text(2)?,
        data: r.json(3)?,
        created_at: r.time(4)?,
    })
}

/// The eight counters of an import or of one of its tables, from column `first` on.
fn counts(r: &dyn StoredRow, first: usize) -> StoreResult<Counts> {
    Ok(Counts {
        inputs: r.count_opt(first)?,
        processed: r.count(first + 1)?,
        created: r.count(first + 2)?,
        updated: r.count(first + 3)?,
        unchanged: r.count(first + 4)?,
        invalid: r.count(first + 5)?,
        destroyed: r.count(first + 6)?,
        warnings: r.count(first + 7)?,
    })
}

/// An import, without its tables, from [`IMPORT_COLUMNS`](super::columns::IMPORT_COLUMNS).
pub(crate) fn import(r: &dyn StoredRow) -> StoreResult<ImportRecord> {
    Ok(ImportRecord {
        id: r.uuid(0)?,
        workspace_id: r.uuid(1)?,
        number: r.int(2)?,
        status: ImportStatus::parse(&r.text(3)?).unwrap_or(ImportStatus::Failed),
        step: Step::parse(&r.text(4)?).unwrap_or(Step::Done),
        source: Source::parse(&r.text(5)?).unwrap_or(Source::Csv),
        mode: Mode::parse(&r.text(6)?).unwrap_or(Mode::Insert),
        on_error: OnError::parse(&r.text(7)?).unwrap_or(OnError::Skip),
        max_errors: r.count_opt(8)?,
        dry_run: r.flag(9)?,
        cleanup_records: r.flag(10)?,
        reference: r.text_opt(11)?,
        reference_origin: r.text_opt(12)?,
        metadata: r.json(13)?,
        note: r.text_opt(14)?,
        platform: r.text_opt(15)?,
        error: r.text_opt(16)?,
        bytes_total: r.count(17)?,
        bytes_read: r.count(18)?,
        counts: counts(r, 19)?,
        cancel_requested: r.flag(27)?,
        created_at: r.time(28)?,
        started_at: r.time_opt(29)?,
        completed_at: r.time_opt(30)?,
        cancelled_at: r.time_opt(31)?,
        rolled_back_at: r.time_opt(32)?,
        updated_at: r.time(33)?,
        rollback_until: r.time_opt(34)?,
        errors_stored: r.count(35)?,
        tables: Vec::new(),
    })
}

/// One table of an import, from [`TABLE_COLUMNS`](super::columns::TABLE_COLUMNS) starting at
/// column `at`.
pub(crate) fn import_table(r: &dyn StoredRow, at: usize) -> StoreResult<ImportTableRecord> {
    let header = r.json(at + 8)?;
    Ok(ImportTableRecord {
        position: u32::try_from(r.int(at)?).unwrap_or(u32::MAX),
        table: r.text(at + 1)?,
        status: ImportStatus::parse(&r.text(at + 2)?).unwrap_or(ImportStatus::Failed),
        format: r.text(at + 3)?,
        options: r.json(at + 4)?,
        blob_key: r.text_opt(at + 5)?,
        file_name: r.text_opt(at + 6)?,
        file_size: r.count_opt(at + 7)?,
        header: serde_json::from_value(header).ok(),
        bytes_total: r.count(at + 9)?,
        bytes_read: r.count(at + 10)?,
        checkpoint: Position {
            byte_offset: r.count(at + 11)?,
            line: r.count(at + 12)?,
            record: r.count(at + 13)?,
        },
        counts: counts(r, at + 14)?,
        error: r.text_opt(at + 22)?,
        started_at: r.time_opt(at + 23)?,
        completed_at: r.time_opt(at + 24)?,
    })
}

/// A stored row error from `e.id, t.table_name, e.line, e.record, e.column_name, e.code,
/// e.message, e.row`.
pub(crate) fn row_error(r: &dyn StoredRow) -> StoreResult<StoredRowError> {
    Ok(StoredRowError {
        id: r.int(0)?,
        table: r.text(1)?,
        error: RowError {
            line: r.count(2)?,
            record: r.count(3)?,
            column: r.text_opt(4)?,
            code: error_code(&r.text(5)?),
            message: r.text(6)?,
            row: r.json(7)?,
        },
    })
}

/// A group of row errors from `table_name, column_name, code, count, first line, message`.
pub(crate) fn error_group(r: &dyn StoredRow) -> StoreResult<ErrorGroup> {
    Ok(ErrorGroup {
        table: r.text(0)?,
        column: r.text_opt(1)?,
        code: error_code(&r.text(2)?),
        count: r.count(3)?,
        first_line: r.count(4)?,
        example: r.text(5)?,
    })
}

/// A stored error code (one no longer known reads as a malformed record).
fn error_code(s: &str) -> RowErrorCode {
    crate::model::row_error::ALL_CODES
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .unwrap_or(RowErrorCode::MalformedRecord)
}
