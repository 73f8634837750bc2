//! Imports, their tables, row errors, events, idempotency keys and worker leases.

use ::postgres::{GenericClient, Row, Transaction};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::tables::{IMPORT_COLUMN, stored_schema, undo_table, workspace_slug};
use super::values::{Params, qualified, quote};
use super::{CLAIMS_LOCK, EVENTS_LOCK, StoreError, StoreResult, lock_workspace, ms, now};
use crate::model::{
    CancelAction, Counts, ImportStatus, Mode, OnError, Refusal, RollbackAction, RowError, RowErrorCode,
    Source, Step,
};
use crate::store::*;

const IMPORT_COLUMNS: &str = "id, workspace_id, number, status, step, source, mode, on_error, \
    max_errors, dry_run, cleanup_records, reference, reference_origin, metadata, note, platform, \
    error, bytes_total, bytes_read, inputs, processed, created, updated, unchanged, invalid, \
    destroyed, warnings, cancel_requested, created_at, started_at, completed_at, cancelled_at, \
    rolled_back_at, updated_at, rollback_until, errors_stored";

const TABLE_COLUMNS: &str = "position, table_name, status, format, options, blob_key, file_name, \
    file_size, header, bytes_total, bytes_read, checkpoint_offset, checkpoint_line, \
    checkpoint_record, inputs, processed, created, updated, unchanged, invalid, destroyed, \
    warnings, error, started_at, completed_at";

fn count(r: &Row, i: usize) -> StoreResult<u64> {
    Ok(r.try_get::<_, i64>(i)?.max(0) as u64)
}

fn count_opt(r: &Row, i: usize) -> StoreResult<Option<u64>> {
    Ok(r.try_get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
}

fn counts_at(r: &Row, first: usize) -> StoreResult<Counts> {
    Ok(Counts {
        inputs: count_opt(r, first)?,
        processed: count(r, first + 1)?,
        created: count(r, first + 2)?,
        updated: count(r, first + 3)?,
        unchanged: count(r, first + 4)?,
        invalid: count(r, first + 5)?,
        destroyed: count(r, first + 6)?,
        warnings: count(r, first + 7)?,
    })
}

fn import_from_row(r: &Row) -> StoreResult<ImportRecord> {
    Ok(ImportRecord {
        id: r.try_get(0)?,
        workspace_id: r.try_get(1)?,
        number: r.try_get(2)?,
        status: ImportStatus::parse(&r.try_get::<_, String>(3)?).unwrap_or(ImportStatus::Failed),
        step: Step::parse(&r.try_get::<_, String>(4)?).unwrap_or(Step::Done),
        source: Source::parse(&r.try_get::<_, String>(5)?).unwrap_or(Source::Csv),
        mode: Mode::parse(&r.try_get::<_, String>(6)?).unwrap_or(Mode::Insert),
        on_error: OnError::parse(&r.try_get::<_, String>(7)?).unwrap_or(OnError::Skip),
        max_errors: count_opt(r, 8)?,
        dry_run: r.try_get(9)?,
        cleanup_records: r.try_get(10)?,
        reference: r.try_get(11)?,
        reference_origin: r.try_get(12)?,
        metadata: r.try_get(13)?,
        note: r.try_get(14)?,
        platform: r.try_get(15)?,
        error: r.try_get(16)?,
        bytes_total: count(r, 17)?,
        bytes_read: count(r, 18)?,
        counts: counts_at(r, 19)?,
        cancel_requested: r.try_get(27)?,
        created_at: r.try_get(28)?,
        started_at: r.try_get(29)?,
        completed_at: r.try_get(30)?,
        cancelled_at: r.try_get(31)?,
        rolled_back_at: r.try_get(32)?,
        updated_at: r.try_get(33)?,
        rollback_until: r.try_get(34)?,
        errors_stored: count(r, 35)?,
        tables: Vec::new(),
    })
}

fn table_from_row(r: &Row) -> StoreResult<ImportTableRecord> {
    table_from_row_at(r, 0)
}

/// An import table from the columns of `TABLE_COLUMNS` starting at column `at`.
fn table_from_row_at(r: &Row, at: usize) -> StoreResult<ImportTableRecord> {
    let header: Option<serde_json::Value> = r.try_get(at + 8)?;
    Ok(ImportTableRecord {
        position: u32::try_from(r.try_get::<_, i64>(at)?).unwrap_or(u32::MAX),
        table: r.try_get(at + 1)?,
        status: ImportStatus::parse(&r.try_get::<_, String>(at + 2)?)
            .unwrap_or(ImportStatus::Failed),
        format: r.try_get(at + 3)?,
        options: r.try_get(at + 4)?,
        blob_key: r.try_get(at + 5)?,
        file_name: r.try_get(at + 6)?,
        file_size: count_opt(r, at + 7)?,
        header: header.and_then(|h| serde_json::from_value(h).ok()),
        bytes_total: count(r, at + 9)?,
        bytes_read: count(r, at + 10)?,
        checkpoint: Position {
            byte_offset: count(r, at + 11)?,
            line: count(r, at + 12)?,
            record: count(r, at + 13)?,
        },
        counts: counts_at(r, at + 14)?,
        error: r.try_get(at + 22)?,
        started_at: r.try_get(at + 23)?,
        completed_at: r.try_get(at + 24)?,
    })
}

fn load_tables(tx: &mut Transaction<'_>, import: &mut ImportRecord) -> StoreResult<()> {
    let rows = tx.query(
        &format!(
            "SELECT {TABLE_COLUMNS} FROM intake_import_tables WHERE import_id = $1 ORDER BY position"
        ),
        &[&import.id],
    )?;
    import.tables = rows
        .iter()
        .map(table_from_row)
        .collect::<StoreResult<_>>()?;
    Ok(())
}

/// Loads the tables of a page of imports in one query (a round trip per import would cost
/// more than the rest of the page).
fn load_tables_of(tx: &mut Transaction<'_>, imports: &mut [ImportRecord]) -> StoreResult<()> {
    if imports.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = imports.iter().map(|i| i.id).collect();
    let rows = tx.query(
        &format!(
            "SELECT import_id, {TABLE_COLUMNS} FROM intake_import_tables
             WHERE import_id = ANY ($1) ORDER BY import_id, position"
        ),
        &[&ids],
    )?;
    let mut by_import: std::collections::HashMap<Uuid, Vec<ImportTableRecord>> =
        std::collections::HashMap::with_capacity(imports.len());
    for r in &rows {
        let id: Uuid = r.try_get(0)?;
        by_import
            .entry(id)
            .or_default()
            .push(table_from_row_at(r, 1)?);
    }
    for import in imports {
        import.tables = by_import.remove(&import.id).unwrap_or_default();
    }
    Ok(())
}

/// The imports of a workspace with these ids, in the order of `ids`, each as `get` answers.
pub(super) fn get_many(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> StoreResult<Vec<ImportRecord>> {
    let rows = tx.query(
        &format!(
            "SELECT {IMPORT_COLUMNS} FROM intake_imports WHERE workspace_id = $1 AND id = ANY ($2)"
        ),
        &[&workspace_id, &ids],
    )?;
    let mut found: std::collections::HashMap<Uuid, ImportRecord> = rows
        .iter()
        .map(|r| import_from_row(r).map(|i| (i.id, i)))
        .collect::<StoreResult<_>>()?;
    let mut imports: Vec<ImportRecord> = ids.iter().filter_map(|id| found.remove(id)).collect();
    load_tables_of(tx, &mut imports)?;
    Ok(imports)
}

pub(super) fn get_any(tx: &mut Transaction<'_>, id: Uuid) -> StoreResult<ImportRecord> {
    let row = tx
        .query_opt(
            &format!("SELECT {IMPORT_COLUMNS} FROM intake_imports WHERE id = $1"),
            &[&id],
        )?
        .ok_or(StoreError::NotFound("import"))?;
    let mut import = import_from_row(&row)?;
    load_tables(tx, &mut import)?;
    Ok(import)
}

pub(super) fn get(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    let import = get_any(tx, id)?;
    // Another workspace's import is indistinguishable from a missing one.
    if import.workspace_id != workspace_id {
        return Err(StoreError::NotFound("import"));
    }
    Ok(import)
}

/// Like [`get`], after locking the import's row: a change decided on what was read (cancel a
/// queued import) cannot race a worker's claim or batch.
pub(super) fn get_locked(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    tx.query_opt(
        "SELECT 1 FROM intake_imports WHERE id = $1 AND workspace_id = $2 FOR NO KEY UPDATE",
        &[&id, &workspace_id],
    )?;
    get(tx, workspace_id, id)
}

pub(super) fn append_event(
    tx: &mut impl GenericClient,
    workspace_id: Uuid,
    import_id: Uuid,
    kind: &str,
    data: &serde_json::Value,
) -> StoreResult<()> {
    // Held until commit: the workspace's events commit in id order, so a reader that saw
    // event n never misses an event below n committed later.
    lock_workspace(tx, EVENTS_LOCK, workspace_id)?;
    let event_id: i64 = tx
        .query_one(
            "INSERT INTO intake_events (workspace_id, import_id, kind, data, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&workspace_id, &import_id, &kind, data, &now()],
        )?
        .try_get(0)?;
    super::webhooks::enqueue(tx, workspace_id, import_id, event_id, kind)
}

pub(super) fn find_idempotency(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    key: &str,
) -> StoreResult<Option<IdempotencyRecord>> {
    let row = tx.query_opt(
        "SELECT fingerprint, import_id FROM intake_idempotency WHERE workspace_id = $1 AND key = $2",
        &[&workspace_id, &key],
    )?;
    row.map(|r| {
        Ok(IdempotencyRecord {
            fingerprint: r.try_get(0)?,
            import_id: r.try_get(1)?,
        })
    })
    .transpose()
}

pub(super) fn create(tx: &mut Transaction<'_>, new: &NewImport) -> StoreResult<CreateOutcome> {
    // The workspace row serializes creations: numbers without gaps, and one import per
    // idempotency key even when two requests with the key arrive together.
    tx.query_opt(
        "SELECT 1 FROM intake_workspaces WHERE id = $1 FOR NO KEY UPDATE",
        &[&new.workspace_id],
    )?
    .ok_or(StoreError::NotFound("workspace"))?;
    if let Some(idem) = &new.idempotency
        && let Some(found) = find_idempotency(tx, new.workspace_id, &idem.key)?
    {
        return Ok(CreateOutcome::Replayed(found));
    }
    let number: i64 = tx
        .query_one(
            "UPDATE intake_workspaces SET next_import_number = next_import_number + 1
             WHERE id = $1 RETURNING next_import_number - 1",
            &[&new.workspace_id],
        )?
        .try_get(0)?;
    let at = now();
    let step = match new.status {
        ImportStatus::New => Step::Waiting,
        ImportStatus::Queued => Step::Queued,
        _ => Step::Done,
    };
    let total: u64 = new.inputs.iter().filter_map(|i| i.file_size).sum();
    let terminal = new.status.is_terminal();
    let completed_at = terminal.then_some(at);
    tx.execute(
        "INSERT INTO intake_imports (id, workspace_id, number, status, step, source, mode,
         on_error, max_errors, dry_run, cleanup_records, reference, reference_origin, metadata,
         note, platform, error, bytes_total, created_at, updated_at, completed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
         $18, $19, $19, $20)",
        &[
            &new.id,
            &new.workspace_id,
            &number,
            &new.status.as_str(),
            &step.as_str(),
            &new.source.as_str(),
            &new.mode.as_str(),
            &new.on_error.as_str(),
            &new.max_errors.map(|v| v as i64),
            &new.dry_run,
            &new.cleanup_records,
            &new.reference,
            &new.reference_origin,
            &new.metadata,
            &new.note,
            &new.platform,
            &new.error,
            &(total as i64),
            &at,
            &completed_at,
        ],
    )?;
    for (pos, input) in new.inputs.iter().enumerate() {
        tx.execute(
            "INSERT INTO intake_import_tables (import_id, position, table_name, status, format,
             options, blob_key, file_name, file_size, bytes_total, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &new.id,
                &(pos as i64),
                &input.table,
                &new.status.as_str(),
                &input.format,
                &input.options,
                &input.blob_key,
                &input.file_name,
                &input.file_size.map(|v| v as i64),
                &(input.file_size.unwrap_or(0) as i64),
                &if terminal { new.error.clone() } else { None },
            ],
        )?;
    }
    if let Some(idem) = &new.idempotency {
        tx.execute(
            "INSERT INTO intake_idempotency (workspace_id, key, fingerprint, import_id, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &new.workspace_id,
                &idem.key,
                &idem.fingerprint,
                &new.id,
                &at,
            ],
        )?;
    }
    append_event(
        tx,
        new.workspace_id,
        new.id,
        new.status.event_type(),
        &serde_json::json!({"status": new.status.as_str()}),
    )?;
    Ok(CreateOutcome::Created(Box::new(get_any(tx, new.id)?)))
}

fn sort_column(sort: ImportSort) -> &'static str {
    match sort {
        ImportSort::Id => "id",
        ImportSort::CreatedAt => "created_at",
        ImportSort::UpdatedAt => "updated_at",
        ImportSort::CompletedAt => "completed_at",
    }
}

/// A list cursor's sort value (a [`crate::store::sort_key`] text; empty for null).
fn cursor_time(value: &str) -> StoreResult<Option<OffsetDateTime>> {
    if value.is_empty() {
        return Ok(None);
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| Some(ms(t)))
        .map_err(|_| StoreError::Invalid("invalid cursor".into()))
}

pub(super) fn list(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    q: &ImportQuery,
) -> StoreResult<ImportPage> {
    let mut p = Params::default();
    let workspace = p.push(workspace_id);
    // Filters but the status.
    let mut filters = String::new();
    if let Some(t) = &q.table {
        filters.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM intake_import_tables t
               WHERE t.import_id = intake_imports.id AND t.table_name = {})",
            p.push(t.clone())
        ));
    }
    if let Some(s) = q.source {
        filters.push_str(&format!(" AND source = {}", p.push(s.as_str().to_owned())));
    }
    if let Some(r) = &q.reference {
        filters.push_str(&format!(" AND reference = {}", p.push(r.clone())));
    }
    let bounds: [(&str, &str, Option<OffsetDateTime>); 4] = [
        ("created_at", ">", q.created_after),
        ("created_at", "<", q.created_before),
        ("updated_at", ">", q.updated_after),
        ("updated_at", "<", q.updated_before),
    ];
    for (col, op, value) in bounds {
        if let Some(v) = value {
            filters.push_str(&format!(" AND {col} {op} {}", p.push(ms(v))));
        }
    }
    let sort = q.sort.unwrap_or(ImportSort::Id);
    let col = sort_column(sort);
    // Nulls (not completed yet) sort before any time, as the SQLite backend's empty text.
    let key = if sort == ImportSort::CompletedAt {
        format!("coalesce({col}, '-infinity'::timestamptz)")
    } else {
        col.to_owned()
    };
    let (cmp, dir) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((value, id)) = &q.after {
        if sort == ImportSort::Id {
            filters.push_str(&format!(" AND id {cmp} {}", p.push(*id)));
        } else {
            let t = cursor_time(value.as_deref().unwrap_or(""))?;
            filters.push_str(&format!(
                " AND ({key}, id) {cmp} (coalesce({}::timestamptz, '-infinity'), {})",
                p.push(t),
                p.push(*id)
            ));
        }
    }
    let order = if sort == ImportSort::Id {
        format!(" ORDER BY id {dir}")
    } else {
        format!(" ORDER BY {key} {dir}, id {dir}")
    };
    let limit = p.push(i64::from(q.limit) + 1);
    let statuses = q.distinct_statuses();
    let sql = if sort == ImportSort::Id && !statuses.is_empty() {
        // One walk of the (workspace, status, id) index per status, the walks merged: a page
        // of a rare status comes as fast as one of a common status.
        let parts: Vec<String> = statuses
            .iter()
            .map(|s| {
                format!(
                    "(SELECT {IMPORT_COLUMNS} FROM intake_imports
                     WHERE workspace_id = {workspace} AND status = {}{filters}{order} LIMIT {limit})",
                    p.push(s.as_str().to_owned())
                )
            })
            .collect();
        format!(
            "SELECT * FROM ({}) AS page{order} LIMIT {limit}",
            parts.join(" UNION ALL ")
        )
    } else {
        let mut in_list = String::new();
        if !statuses.is_empty() {
            let list: Vec<String> = statuses.iter().map(|s| s.as_str().to_owned()).collect();
            in_list = format!(" AND status = ANY ({}::text[])", p.push(list));
        }
        format!(
            "SELECT {IMPORT_COLUMNS} FROM intake_imports
             WHERE workspace_id = {workspace}{in_list}{filters}{order} LIMIT {limit}"
        )
    };
    let rows = tx.query(&sql, &p.refs())?;
    let mut imports = rows
        .iter()
        .map(import_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    let has_more = imports.len() > q.limit as usize;
    imports.truncate(q.limit as usize);
    load_tables_of(tx, &mut imports)?;
    Ok(ImportPage { imports, has_more })
}

pub(super) fn row_errors(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<StoredRowError>> {
    get(tx, workspace_id, id)?;
    let rows = tx.query(
        "SELECT e.id, t.table_name, e.line, e.record, e.column_name, e.code, e.message, e.row
         FROM intake_row_errors e
         JOIN intake_import_tables t ON t.import_id = e.import_id AND t.position = e.position
         WHERE e.import_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3",
        &[&id, &after.unwrap_or(0), &i64::from(limit)],
    )?;
    rows.iter()
        .map(|r| {
            let code: String = r.try_get(5)?;
            Ok(StoredRowError {
                id: r.try_get(0)?,
                table: r.try_get(1)?,
                error: RowError {
                    line: count(r, 2)?,
                    record: count(r, 3)?,
                    column: r.try_get(4)?,
                    code: code_from_str(&code),
                    message: r.try_get(6)?,
                    row: r.try_get(7)?,
                },
            })
        })
        .collect()
}

/// The first error of each group is the one listed first (lowest id: source order).
pub(super) fn error_groups(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<Vec<ErrorGroup>> {
    get(tx, workspace_id, id)?;
    let rows = tx.query(
        "SELECT t.table_name, g.column_name, g.code, g.n, e.line, e.message
         FROM (SELECT position, column_name, code, count(*) AS n, min(id) AS first
               FROM intake_row_errors WHERE import_id = $1
               GROUP BY position, column_name, code) g
         JOIN intake_row_errors e ON e.id = g.first
         JOIN intake_import_tables t ON t.import_id = $1 AND t.position = g.position
         ORDER BY g.n DESC, e.line, g.position",
        &[&id],
    )?;
    rows.iter()
        .map(|r| {
            let code: String = r.try_get(2)?;
            Ok(ErrorGroup {
                table: r.try_get(0)?,
                column: r.try_get(1)?,
                code: code_from_str(&code),
                count: count(r, 3)?,
                first_line: count(r, 4)?,
                example: r.try_get(5)?,
            })
        })
        .collect()
}

fn code_from_str(s: &str) -> RowErrorCode {
    crate::model::row_error::ALL_CODES
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .unwrap_or(RowErrorCode::MalformedRecord)
}

pub(super) fn event_from_row(r: &Row) -> StoreResult<EventRecord> {
    Ok(EventRecord {
        id: r.try_get(0)?,
        import_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        data: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

pub(super) fn events(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<EventRecord>> {
    get(tx, workspace_id, id)?;
    let rows = tx.query(
        "SELECT id, import_id, kind, data, created_at FROM intake_events
         WHERE import_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        &[&id, &after.unwrap_or(0), &i64::from(limit)],
    )?;
    rows.iter().map(event_from_row).collect()
}

/// Sets the terminal state of an import and of its unfinished tables.
fn set_terminal(
    tx: &mut Transaction<'_>,
    import: &ImportRecord,
    status: ImportStatus,
    error: Option<&str>,
) -> StoreResult<()> {
    let at = now();
    let cancelled_at = (status == ImportStatus::Cancelled).then_some(at);
    let rolled_back_at = (status == ImportStatus::RolledBack).then_some(at);
    tx.execute(
        "UPDATE intake_imports SET status = $2, step = 'done', error = coalesce($3, error),
         completed_at = coalesce(completed_at, $4), cancelled_at = coalesce($5, cancelled_at),
         rolled_back_at = coalesce($6, rolled_back_at), updated_at = $4,
         lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
        &[
            &import.id,
            &status.as_str(),
            &error,
            &at,
            &cancelled_at,
            &rolled_back_at,
        ],
    )?;
    tx.execute(
        "UPDATE intake_import_tables SET status = $2, completed_at = coalesce(completed_at, $3)
         WHERE import_id = $1 AND status IN ('new', 'queued', 'processing')",
        &[&import.id, &status.as_str(), &at],
    )?;
    append_event(
        tx,
        import.workspace_id,
        import.id,
        status.event_type(),
        &serde_json::json!({"status": status.as_str(), "error": error}),
    )
}

pub(super) fn request_cancel(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    let import = get_locked(tx, workspace_id, id)?;
    match import.lifecycle().cancel()? {
        CancelAction::CancelNow => {
            set_terminal(tx, &import, ImportStatus::Cancelled, None)?;
        }
        CancelAction::AskWorker => {
            tx.execute(
                "UPDATE intake_imports SET cancel_requested = true, updated_at = $2 WHERE id = $1",
                &[&id, &now()],
            )?;
        }
    }
    get(tx, workspace_id, id)
}

/// Which imports may be claimed now (over `intake_imports i`; `$1` is the per-workspace
/// limit): runnable, with no live lease, from a workspace running fewer imports than the
/// limit, sharing no table with a running import (imports of one table run one after the
/// other, so each one's changes, and their undo, stay its own).
const CLAIMABLE: &str = "i.status IN ('queued', 'processing', 'rolling_back')
    AND (i.lease_expires_at IS NULL OR i.lease_expires_at < now())
    AND (SELECT count(*) FROM intake_imports r
         WHERE r.workspace_id = i.workspace_id
           AND r.status IN ('processing', 'rolling_back')
           AND r.lease_expires_at >= now()) < $1
    AND NOT EXISTS (
         SELECT 1 FROM intake_import_tables mine
         JOIN intake_import_tables theirs ON theirs.table_name = mine.table_name
         JOIN intake_imports o ON o.id = theirs.import_id
         WHERE mine.import_id = i.id AND o.id <> i.id
           AND o.workspace_id = i.workspace_id
           AND o.status IN ('processing', 'rolling_back')
           AND o.lease_expires_at >= now())";

pub(super) fn claim(
    tx: &mut Transaction<'_>,
    worker: &str,
    lease_ms: i64,
    per_workspace: u32,
) -> StoreResult<Option<Claim>> {
    let limit = i64::from(per_workspace);
    let mut passed: Vec<Uuid> = Vec::new();
    // Candidates locked by another claim are skipped; a candidate whose workspace filled up
    // meanwhile is passed over for the next.
    for _ in 0..4 {
        let Some(row) = tx.query_opt(
            &format!(
                "SELECT i.id, i.workspace_id FROM intake_imports i
                 WHERE {CLAIMABLE} AND i.id <> ALL ($2)
                 ORDER BY i.created_at LIMIT 1 FOR NO KEY UPDATE OF i SKIP LOCKED"
            ),
            &[&limit, &passed],
        )?
        else {
            return Ok(None);
        };
        let id: Uuid = row.try_get(0)?;
        let workspace_id: Uuid = row.try_get(1)?;
        // The limits hold across processes: checks and claims of one workspace take turns,
        // and the check below (a new snapshot) sees every claim committed before.
        lock_workspace(tx, CLAIMS_LOCK, workspace_id)?;
        let still = tx.query_opt(
            &format!("SELECT 1 FROM intake_imports i WHERE i.id = $2 AND {CLAIMABLE}"),
            &[&limit, &id],
        )?;
        if still.is_none() {
            passed.push(id);
            continue;
        }
        let token: i64 = tx
            .query_one(
                "UPDATE intake_imports SET lease_owner = $2, lease_token = lease_token + 1,
                 lease_expires_at = now() + $3::bigint * interval '1 millisecond',
                 status = CASE status WHEN 'queued' THEN 'processing' ELSE status END,
                 started_at = coalesce(started_at, $4), updated_at = $4
                 WHERE id = $1 RETURNING lease_token",
                &[&id, &worker, &lease_ms, &now()],
            )?
            .try_get(0)?;
        let import = get_any(tx, id)?;
        return Ok(Some(Claim {
            import,
            worker: worker.to_owned(),
            token,
            lease_ms,
        }));
    }
    Ok(None)
}

/// Checks the claim still holds the lease and extends it; the fencing check of every write.
pub(super) fn check_lease(
    tx: &mut Transaction<'_>,
    id: Uuid,
    token: i64,
    lease_ms: i64,
) -> StoreResult<LeaseState> {
    let row = tx.query_opt(
        "UPDATE intake_imports SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
         WHERE id = $1 AND lease_token = $2 RETURNING cancel_requested",
        &[&id, &token, &lease_ms],
    )?;
    match row {
        Some(r) => Ok(LeaseState {
            cancel_requested: r.try_get(0)?,
        }),
        None => Err(StoreError::LeaseLost),
    }
}

/// Makes the imports whose lease a worker of `node` holds claimable at once (worker names
/// are `<pid>-<node>-<n>`).
pub(super) fn release_node_leases(tx: &mut Transaction<'_>, node: &str) -> StoreResult<u64> {
    Ok(tx.execute(
        "UPDATE intake_imports SET lease_expires_at = NULL
         WHERE lease_expires_at IS NOT NULL
           AND status IN ('queued', 'processing', 'rolling_back')
           AND strpos(lease_owner, '-' || $1 || '-') > 0",
        &[&node],
    )?)
}

/// Records an inference pass's progress (and, at its end, the input's options).
pub(super) fn note_inference(
    tx: &mut Transaction<'_>,
    claim: &Claim,
    position: u32,
    bytes_read: u64,
    options: Option<&serde_json::Value>,
) -> StoreResult<LeaseState> {
    let lease = check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    tx.execute(
        "UPDATE intake_import_tables SET bytes_read = $3, options = coalesce($4, options)
         WHERE import_id = $1 AND position = $2",
        &[
            &claim.import.id,
            &i64::from(position),
            &(bytes_read as i64),
            &options,
        ],
    )?;
    Ok(lease)
}

pub(super) fn start_table(
    tx: &mut Transaction<'_>,
    claim: &Claim,
    position: u32,
    start: &TableStart,
) -> StoreResult<()> {
    check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    let at = now();
    let header = start
        .header
        .as_ref()
        .map(|h| serde_json::to_value(h).unwrap_or_default());
    let id = claim.import.id;
    let position = i64::from(position);
    let first_start: bool = tx
        .query_opt(
            "SELECT started_at IS NULL FROM intake_import_tables WHERE import_id = $1 AND position = $2",
            &[&id, &position],
        )?
        .ok_or(StoreError::NotFound("import table"))?
        .try_get(0)?;
    tx.execute(
        "UPDATE intake_import_tables SET status = 'processing', header = coalesce(header, $3),
         bytes_total = $4, started_at = coalesce(started_at, $5)
         WHERE import_id = $1 AND position = $2",
        &[&id, &position, &header, &(start.bytes_total as i64), &at],
    )?;
    // Warnings are counted once, at the table's first start, not again on resume.
    if first_start && !start.warnings.is_empty() {
        let n = start.warnings.len() as i64;
        tx.execute(
            "UPDATE intake_import_tables SET warnings = warnings + $3
             WHERE import_id = $1 AND position = $2",
            &[&id, &position, &n],
        )?;
        tx.execute(
            "UPDATE intake_imports SET warnings = warnings + $2 WHERE id = $1",
            &[&id, &n],
        )?;
        for w in &start.warnings {
            append_event(
                tx,
                claim.import.workspace_id,
                id,
                "import.warning",
                &serde_json::json!({"table_position": position, "message": w}),
            )?;
        }
    }
    if first_start {
        append_event(
            tx,
            claim.import.workspace_id,
            id,
            "table.started",
            &serde_json::json!({"table_position": position}),
        )?;
    }
    Ok(())
}

pub(super) fn finish_table(
    tx: &mut Transaction<'_>,
    claim: &Claim,
    position: u32,
    end: &TableEnd,
) -> StoreResult<()> {
    check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    mark_table_finished(
        tx,
        claim.import.workspace_id,
        claim.import.id,
        position,
        end,
    )
}

/// Records the end of one table of an import (its status, inputs, rows destroyed), in the
/// caller's transaction: the writer does it in the transaction of its last change, so that
/// no crash can leave a table changed but not finished.
pub(super) fn mark_table_finished(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    import_id: Uuid,
    position: u32,
    end: &TableEnd,
) -> StoreResult<()> {
    let position = i64::from(position);
    let prev_destroyed: i64 = tx
        .query_opt(
            "SELECT destroyed FROM intake_import_tables WHERE import_id = $1 AND position = $2",
            &[&import_id, &position],
        )?
        .ok_or(StoreError::NotFound("import table"))?
        .try_get(0)?;
    let destroyed_delta = end.destroyed as i64 - prev_destroyed;
    let at = now();
    tx.execute(
        "UPDATE intake_import_tables SET status = $3, inputs = $4, destroyed = $5, error = $6,
         completed_at = $7, bytes_read = bytes_total WHERE import_id = $1 AND position = $2",
        &[
            &import_id,
            &position,
            &end.status.as_str(),
            &end.inputs.map(|v| v as i64),
            &(end.destroyed as i64),
            &end.error,
            &at,
        ],
    )?;
    tx.execute(
        "UPDATE intake_imports SET destroyed = destroyed + $2,
         inputs = (SELECT CASE WHEN count(inputs) = count(*) THEN sum(inputs)::bigint END
                   FROM intake_import_tables WHERE import_id = $1),
         updated_at = $3 WHERE id = $1",
        &[&import_id, &destroyed_delta, &at],
    )?;
    append_event(
        tx,
        workspace_id,
        import_id,
        "table.finished",
        &serde_json::json!({"table_position": position, "status": end.status.as_str()}),
    )
}

pub(super) fn finish(tx: &mut Transaction<'_>, claim: &Claim, end: &ImportEnd) -> StoreResult<()> {
    check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    let import = get_any(tx, claim.import.id)?;
    // What a finished or cancelled import wrote can be rolled back until then.
    if end.status != ImportStatus::RolledBack {
        tx.execute(
            "UPDATE intake_imports SET rollback_until = $2 WHERE id = $1",
            &[&import.id, &end.rollback_until.map(ms)],
        )?;
    }
    if !matches!(
        end.status,
        ImportStatus::Cancelled | ImportStatus::RolledBack
    ) {
        tx.execute(
            "UPDATE intake_imports SET bytes_read = bytes_total WHERE id = $1",
            &[&import.id],
        )?;
    }
    set_terminal(tx, &import, end.status, end.error.as_deref())
}

pub(super) fn set_step(
    tx: &mut Transaction<'_>,
    claim: &Claim,
    step: Step,
    error: Option<&str>,
) -> StoreResult<()> {
    check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    tx.execute(
        "UPDATE intake_imports SET step = $2, updated_at = $3, error = coalesce($4, error)
         WHERE id = $1",
        &[&claim.import.id, &step.as_str(), &now(), &error],
    )?;
    Ok(())
}

/// The id and number of the import of a workspace with this number, if it still exists.
fn import_by_number(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    number: i64,
) -> StoreResult<(String, i64)> {
    let row = tx.query_opt(
        "SELECT id, number FROM intake_imports WHERE workspace_id = $1 AND number = $2",
        &[&workspace_id, &number],
    )?;
    Ok(match row {
        Some(r) => (r.try_get::<_, Uuid>(0)?.to_string(), r.try_get(1)?),
        None => ("a later import".into(), number),
    })
}

/// The import that now holds a row this import's undo would restore: a destroyed row that is
/// back, or an updated row that another import wrote since. The journal is checked against
/// the live table (one set-based probe per table), so that an undo never fails halfway on a
/// key that is taken.
fn live_conflict(
    tx: &mut Transaction<'_>,
    import: &ImportRecord,
) -> StoreResult<Option<(String, i64)>> {
    let slug = workspace_slug(tx, import.workspace_id)?;
    for table in &import.tables {
        let Some(schema) = stored_schema(tx, import.workspace_id, &table.table)? else {
            continue;
        };
        let key = schema.key_indexes();
        if key.is_empty() {
            continue;
        }
        let physical = qualified(&slug, &table.table);
        let cond: Vec<String> = key
            .iter()
            .map(|&i| {
                let c = quote(schema.columns[i].name.as_str());
                format!("t.{c} = o.{c}")
            })
            .collect();
        let owner = format!("t.{}", quote(IMPORT_COLUMN));
        let sql = format!(
            "SELECT CASE WHEN {owner} IS NULL THEN -1 ELSE {owner} END
             FROM intake_undo u
             CROSS JOIN LATERAL json_populate_record(NULL::{physical}, u.row) o
             LEFT JOIN {physical} t ON {cond}
             WHERE u.import_id = $1 AND u.position = $2
               AND ((u.op = 'destroyed' AND {owner} IS NOT NULL)
                    OR (u.op <> 'destroyed' AND ({owner} IS NULL OR {owner} <> $3)))
             ORDER BY u.id LIMIT 1",
            cond = cond.join(" AND ")
        );
        let holder = tx.query_opt(
            &sql,
            &[&import.id, &i64::from(table.position), &import.number],
        )?;
        if let Some(row) = holder {
            let number: i64 = row.try_get(0)?;
            // -1: the updated row is gone, a later import deleted it.
            return Ok(Some(import_by_number(tx, import.workspace_id, number)?));
        }
    }
    Ok(None)
}

/// The first later import that changed rows this import wrote, and is not rolled back.
fn later_conflict(
    tx: &mut Transaction<'_>,
    import: &ImportRecord,
) -> StoreResult<Option<(String, i64)>> {
    let to_pair = |r: Row| -> StoreResult<(String, i64)> {
        Ok((r.try_get::<_, Uuid>(0)?.to_string(), r.try_get(1)?))
    };
    for table in &import.tables {
        // A later import still running on the table, or a later replace (which changed
        // every row), or any later write when this import was itself a replace.
        let unfinished_or_replacing = tx.query_opt(
            "SELECT i.id, i.number FROM intake_imports i
             JOIN intake_import_tables t ON t.import_id = i.id
             WHERE i.workspace_id = $1 AND t.table_name = $2 AND i.number > $3
               AND NOT i.dry_run
               AND (i.status IN ('new', 'queued', 'processing', 'rolling_back')
                    OR (t.status IN ('complete', 'partially_complete', 'cancelled', 'failed')
                        AND NOT (t.status = 'failed' AND i.on_error IN ('abort', 'atomic'))
                        AND (i.mode = 'replace' OR $4 = 'replace')
                        AND (t.created + t.updated + t.destroyed) > 0))
             ORDER BY i.number LIMIT 1",
            &[
                &import.workspace_id,
                &table.table,
                &import.number,
                &import.mode.as_str(),
            ],
        )?;
        if let Some(r) = unfinished_or_replacing {
            return Ok(Some(to_pair(r)?));
        }
        // A later upsert journaled the previous version of rows this import had written.
        let touched = tx.query_opt(
            &format!(
                "SELECT i.id, i.number FROM intake_imports i
                 JOIN intake_import_tables t ON t.import_id = i.id
                 JOIN intake_undo u ON u.import_id = i.id AND u.position = t.position
                 WHERE i.workspace_id = $1 AND t.table_name = $2 AND i.number > $3
                   AND t.status <> 'rolled_back'
                   AND (u.row ->> '{IMPORT_COLUMN}')::bigint = $3
                 ORDER BY i.number LIMIT 1"
            ),
            &[&import.workspace_id, &table.table, &import.number],
        )?;
        if let Some(r) = touched {
            return Ok(Some(to_pair(r)?));
        }
    }
    Ok(None)
}

pub(super) fn request_rollback(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    let import = get_locked(tx, workspace_id, id)?;
    if import.lifecycle().rollback(now())? == RollbackAction::AsItIs {
        return Ok(import);
    }
    let conflict = match later_conflict(tx, &import)? {
        Some(c) => Some(c),
        None => live_conflict(tx, &import)?,
    };
    if let Some((later, number)) = conflict {
        return Err(Refusal::RollbackBlocked { later, number }.into());
    }
    tx.execute(
        "UPDATE intake_imports SET status = 'rolling_back', step = 'rolling_back',
         lease_owner = NULL, lease_expires_at = NULL, updated_at = $2 WHERE id = $1",
        &[&id, &now()],
    )?;
    append_event(
        tx,
        workspace_id,
        id,
        ImportStatus::RollingBack.event_type(),
        &serde_json::json!({"status": "rolling_back"}),
    )?;
    get(tx, workspace_id, id)
}

/// The tables a replace kept as undo copies for this import.
pub(super) fn undo_tables(
    tx: &mut Transaction<'_>,
    import: &ImportRecord,
) -> StoreResult<Vec<String>> {
    let slug = workspace_slug(tx, import.workspace_id)?;
    let mut out = Vec::new();
    for t in &import.tables {
        let name = undo_table(&t.table, import.number);
        if super::tables::exists(tx, &slug, &name)? {
            out.push(qualified(&slug, &name));
        }
    }
    Ok(out)
}

pub(super) fn prune(
    tx: &mut Transaction<'_>,
    at: OffsetDateTime,
    ended_before: OffsetDateTime,
) -> StoreResult<u64> {
    let ids: Vec<Uuid> = tx
        .query(
            "SELECT id FROM intake_imports
             WHERE rollback_until IS NOT NULL AND (rollback_until < $1 OR completed_at < $2)
             FOR NO KEY UPDATE SKIP LOCKED",
            &[&ms(at), &ms(ended_before)],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for id in &ids {
        let import = get_any(tx, *id)?;
        for t in undo_tables(tx, &import)? {
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {t}"))?;
        }
        tx.execute("DELETE FROM intake_undo WHERE import_id = $1", &[id])?;
        tx.execute("DELETE FROM intake_row_errors WHERE import_id = $1", &[id])?;
        tx.execute(
            // The row errors are gone: the import no longer claims them as stored.
            "UPDATE intake_imports SET rollback_until = NULL, errors_stored = 0 WHERE id = $1",
            &[id],
        )?;
    }
    Ok(ids.len() as u64)
}
