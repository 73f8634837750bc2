//! Imports, their tables, row errors, events, idempotency keys and worker leases.

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::values::{parse_ts, parse_ts_opt, ts};
use super::{StoreError, StoreResult, now, parse_uuid};
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

fn json_col(s: Option<String>) -> serde_json::Value {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn counts_at(r: &Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    Ok(Counts {
        inputs: r.get::<_, Option<i64>>(first)?.map(|v| v as u64),
        processed: r.get::<_, i64>(first + 1)? as u64,
        created: r.get::<_, i64>(first + 2)? as u64,
        updated: r.get::<_, i64>(first + 3)? as u64,
        unchanged: r.get::<_, i64>(first + 4)? as u64,
        invalid: r.get::<_, i64>(first + 5)? as u64,
        destroyed: r.get::<_, i64>(first + 6)? as u64,
        warnings: r.get::<_, i64>(first + 7)? as u64,
    })
}

fn import_from_row(r: &Row<'_>) -> rusqlite::Result<ImportRecord> {
    Ok(ImportRecord {
        id: parse_uuid(&r.get::<_, String>(0)?),
        workspace_id: parse_uuid(&r.get::<_, String>(1)?),
        number: r.get(2)?,
        status: ImportStatus::parse(&r.get::<_, String>(3)?).unwrap_or(ImportStatus::Failed),
        step: Step::parse(&r.get::<_, String>(4)?).unwrap_or(Step::Done),
        source: Source::parse(&r.get::<_, String>(5)?).unwrap_or(Source::Csv),
        mode: Mode::parse(&r.get::<_, String>(6)?).unwrap_or(Mode::Insert),
        on_error: OnError::parse(&r.get::<_, String>(7)?).unwrap_or(OnError::Skip),
        max_errors: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        dry_run: r.get(9)?,
        cleanup_records: r.get(10)?,
        reference: r.get(11)?,
        reference_origin: r.get(12)?,
        metadata: json_col(r.get(13)?),
        note: r.get(14)?,
        platform: r.get(15)?,
        error: r.get(16)?,
        bytes_total: r.get::<_, i64>(17)? as u64,
        bytes_read: r.get::<_, i64>(18)? as u64,
        counts: counts_at(r, 19)?,
        cancel_requested: r.get(27)?,
        created_at: parse_ts(&r.get::<_, String>(28)?),
        started_at: parse_ts_opt(r.get(29)?),
        completed_at: parse_ts_opt(r.get(30)?),
        cancelled_at: parse_ts_opt(r.get(31)?),
        rolled_back_at: parse_ts_opt(r.get(32)?),
        updated_at: parse_ts(&r.get::<_, String>(33)?),
        rollback_until: parse_ts_opt(r.get(34)?),
        errors_stored: r.get::<_, i64>(35)? as u64,
        tables: Vec::new(),
    })
}

fn table_from_row(r: &Row<'_>) -> rusqlite::Result<ImportTableRecord> {
    Ok(ImportTableRecord {
        position: r.get(0)?,
        table: r.get(1)?,
        status: ImportStatus::parse(&r.get::<_, String>(2)?).unwrap_or(ImportStatus::Failed),
        format: r.get(3)?,
        options: json_col(r.get(4)?),
        blob_key: r.get(5)?,
        file_name: r.get(6)?,
        file_size: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        header: r
            .get::<_, Option<String>>(8)?
            .and_then(|h| serde_json::from_str(&h).ok()),
        bytes_total: r.get::<_, i64>(9)? as u64,
        bytes_read: r.get::<_, i64>(10)? as u64,
        checkpoint: Position {
            byte_offset: r.get::<_, i64>(11)? as u64,
            line: r.get::<_, i64>(12)? as u64,
            record: r.get::<_, i64>(13)? as u64,
        },
        counts: counts_at(r, 14)?,
        error: r.get(22)?,
        started_at: parse_ts_opt(r.get(23)?),
        completed_at: parse_ts_opt(r.get(24)?),
    })
}

fn load_tables(c: &Connection, import: &mut ImportRecord) -> StoreResult<()> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {TABLE_COLUMNS} FROM intake_import_tables WHERE import_id = ?1 ORDER BY position"
    ))?;
    let rows = stmt.query_map([import.id.to_string()], table_from_row)?;
    import.tables = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(())
}

/// The tables of a page of imports, in one query.
fn load_tables_of_page(c: &Connection, imports: &mut [ImportRecord]) -> StoreResult<()> {
    if imports.is_empty() {
        return Ok(());
    }
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {TABLE_COLUMNS}, import_id FROM intake_import_tables WHERE import_id IN ({})
         ORDER BY import_id, position",
        vec!["?"; imports.len()].join(", ")
    ))?;
    let ids: Vec<String> = imports.iter().map(|i| i.id.to_string()).collect();
    let mut by_import: std::collections::HashMap<String, Vec<ImportTableRecord>> =
        std::collections::HashMap::with_capacity(imports.len());
    let mut rows = stmt.query(rusqlite::params_from_iter(ids.iter()))?;
    while let Some(r) = rows.next()? {
        let table = table_from_row(r)?;
        by_import
            .entry(r.get::<_, String>(25)?)
            .or_default()
            .push(table);
    }
    for (import, id) in imports.iter_mut().zip(&ids) {
        import.tables = by_import.remove(id).unwrap_or_default();
    }
    Ok(())
}

fn get_any(c: &Connection, id: Uuid) -> StoreResult<ImportRecord> {
    let mut import = c
        .prepare_cached(&format!(
            "SELECT {IMPORT_COLUMNS} FROM intake_imports WHERE id = ?1"
        ))?
        .query_row([id.to_string()], import_from_row)
        .optional()?
        .ok_or(StoreError::NotFound("import"))?;
    load_tables(c, &mut import)?;
    Ok(import)
}

pub(super) fn get(c: &Connection, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord> {
    let import = get_any(c, id)?;
    // Another workspace's import is indistinguishable from a missing one.
    if import.workspace_id != workspace_id {
        return Err(StoreError::NotFound("import"));
    }
    Ok(import)
}

pub(super) fn append_event(
    c: &Connection,
    workspace_id: Uuid,
    import_id: Uuid,
    kind: &str,
    data: &serde_json::Value,
) -> StoreResult<()> {
    let event_id: i64 = c
        .prepare_cached(
            "INSERT INTO intake_events (workspace_id, import_id, kind, data, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(
            params![
                workspace_id.to_string(),
                import_id.to_string(),
                kind,
                data.to_string(),
                ts(now())
            ],
            |r| r.get(0),
        )?;
    super::webhooks::enqueue(c, workspace_id, import_id, event_id, kind)
}

pub(super) fn find_idempotency(
    c: &Connection,
    workspace_id: Uuid,
    key: &str,
) -> StoreResult<Option<IdempotencyRecord>> {
    Ok(c
        .query_row(
            "SELECT fingerprint, import_id FROM intake_idempotency WHERE workspace_id = ?1 AND key = ?2",
            params![workspace_id.to_string(), key],
            |r| {
                Ok(IdempotencyRecord {
                    fingerprint: r.get(0)?,
                    import_id: parse_uuid(&r.get::<_, String>(1)?),
                })
            },
        )
        .optional()?)
}

pub(super) fn create(tx: &Connection, new: &NewImport) -> StoreResult<CreateOutcome> {
    if let Some(idem) = &new.idempotency
        && let Some(found) = find_idempotency(tx, new.workspace_id, &idem.key)?
    {
        return Ok(CreateOutcome::Replayed(found));
    }
    let number: i64 = tx.query_row(
        "UPDATE intake_workspaces SET next_import_number = next_import_number + 1
         WHERE id = ?1 RETURNING next_import_number - 1",
        [new.workspace_id.to_string()],
        |r| r.get(0),
    )?;
    let at = ts(now());
    let step = match new.status {
        ImportStatus::New => Step::Waiting,
        ImportStatus::Queued => Step::Queued,
        _ => Step::Done,
    };
    let total: u64 = new.inputs.iter().filter_map(|i| i.file_size).sum();
    let terminal = new.status.is_terminal();
    tx.execute(
        &format!(
            "INSERT INTO intake_imports (id, workspace_id, number, status, step, source, mode,
             on_error, max_errors, dry_run, cleanup_records, reference, reference_origin, metadata,
             note, platform, error, bytes_total, created_at, updated_at, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18, ?19, ?19, {})",
            if terminal { "?19" } else { "NULL" }
        ),
        params![
            new.id.to_string(),
            new.workspace_id.to_string(),
            number,
            new.status.as_str(),
            step.as_str(),
            new.source.as_str(),
            new.mode.as_str(),
            new.on_error.as_str(),
            new.max_errors.map(|v| v as i64),
            new.dry_run,
            new.cleanup_records,
            new.reference,
            new.reference_origin,
            new.metadata.to_string(),
            new.note,
            new.platform,
            new.error,
            total as i64,
            at,
        ],
    )?;
    for (pos, input) in new.inputs.iter().enumerate() {
        tx.execute(
            "INSERT INTO intake_import_tables (import_id, position, table_name, status, format,
             options, blob_key, file_name, file_size, bytes_total, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                new.id.to_string(),
                pos as i64,
                input.table,
                new.status.as_str(),
                input.format,
                input.options.to_string(),
                input.blob_key,
                input.file_name,
                input.file_size.map(|v| v as i64),
                input.file_size.unwrap_or(0) as i64,
                if terminal { new.error.clone() } else { None },
            ],
        )?;
    }
    if let Some(idem) = &new.idempotency {
        tx.execute(
            "INSERT INTO intake_idempotency (workspace_id, key, fingerprint, import_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                new.workspace_id.to_string(),
                idem.key,
                idem.fingerprint,
                new.id.to_string(),
                at
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

pub(super) fn list(c: &Connection, workspace_id: Uuid, q: &ImportQuery) -> StoreResult<ImportPage> {
    // Filters but the status, with their arguments (after the workspace's).
    let mut filters = String::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(t) = &q.table {
        filters.push_str(
            " AND EXISTS (SELECT 1 FROM intake_import_tables t
               WHERE t.import_id = intake_imports.id AND t.table_name = ?)",
        );
        args.push(t.clone().into());
    }
    if let Some(s) = q.source {
        filters.push_str(" AND source = ?");
        args.push(s.as_str().to_owned().into());
    }
    if let Some(r) = &q.reference {
        filters.push_str(" AND reference = ?");
        args.push(r.clone().into());
    }
    let bounds: [(&str, &str, Option<OffsetDateTime>); 4] = [
        ("created_at", ">", q.created_after),
        ("created_at", "<", q.created_before),
        ("updated_at", ">", q.updated_after),
        ("updated_at", "<", q.updated_before),
    ];
    for (col, op, value) in bounds {
        if let Some(v) = value {
            filters.push_str(&format!(" AND {col} {op} ?"));
            args.push(ts(v).into());
        }
    }
    let sort = q.sort.unwrap_or(ImportSort::Id);
    let col = sort_column(sort);
    let (cmp, dir) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((value, id)) = &q.after {
        if sort == ImportSort::Id {
            filters.push_str(&format!(" AND id {cmp} ?"));
            args.push(id.to_string().into());
        } else {
            // NULLs (not completed yet) sort as the empty string: before any timestamp.
            filters.push_str(&format!(" AND (coalesce({col}, ''), id) {cmp} (?, ?)"));
            args.push(value.clone().unwrap_or_default().into());
            args.push(id.to_string().into());
        }
    }
    let order = if sort == ImportSort::Id {
        format!(" ORDER BY id {dir}")
    } else {
        format!(" ORDER BY coalesce({col}, '') {dir}, id {dir}")
    };
    let limit = i64::from(q.limit) + 1;
    let workspace = rusqlite::types::Value::from(workspace_id.to_string());
    let mut all: Vec<rusqlite::types::Value> = Vec::new();
    let statuses = q.distinct_statuses();
    let sql = if sort == ImportSort::Id && !statuses.is_empty() {
        // One walk of the (workspace, status, id) index per status, the walks merged: a page
        // of a rare status comes as fast as one of a common status.
        let part = format!(
            "SELECT * FROM (SELECT {IMPORT_COLUMNS} FROM intake_imports
             WHERE workspace_id = ? AND status = ?{filters}{order} LIMIT {limit})"
        );
        for status in &statuses {
            all.push(workspace.clone());
            all.push(status.as_str().to_owned().into());
            all.extend(args.iter().cloned());
        }
        let parts = vec![part; statuses.len()];
        format!(
            "SELECT * FROM ({}){order} LIMIT {limit}",
            parts.join(" UNION ALL ")
        )
    } else {
        all.push(workspace);
        let mut in_list = String::new();
        if !statuses.is_empty() {
            in_list = format!(" AND status IN ({})", vec!["?"; statuses.len()].join(", "));
            all.extend(statuses.iter().map(|s| s.as_str().to_owned().into()));
        }
        all.extend(args);
        format!(
            "SELECT {IMPORT_COLUMNS} FROM intake_imports WHERE workspace_id = ?{in_list}{filters}{order} LIMIT {limit}"
        )
    };
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(all), import_from_row)?;
    let mut imports = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = imports.len() > q.limit as usize;
    imports.truncate(q.limit as usize);
    load_tables_of_page(c, &mut imports)?;
    Ok(ImportPage { imports, has_more })
}

pub(super) fn row_errors(
    c: &Connection,
    workspace_id: Uuid,
    id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<StoredRowError>> {
    get(c, workspace_id, id)?;
    let mut stmt = c.prepare_cached(
        "SELECT e.id, t.table_name, e.line, e.record, e.column_name, e.code, e.message, e.row
         FROM intake_row_errors e
         JOIN intake_import_tables t ON t.import_id = e.import_id AND t.position = e.position
         WHERE e.import_id = ?1 AND e.id > ?2 ORDER BY e.id LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![id.to_string(), after.unwrap_or(0), i64::from(limit)],
        |r| {
            let code: String = r.get(5)?;
            Ok(StoredRowError {
                id: r.get(0)?,
                table: r.get(1)?,
                error: RowError {
                    line: r.get::<_, i64>(2)? as u64,
                    record: r.get::<_, i64>(3)? as u64,
                    column: r.get(4)?,
                    code: code_from_str(&code),
                    message: r.get(6)?,
                    row: json_col(r.get(7)?),
                },
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The first error of each group is the one listed first (lowest id: source order).
pub(super) fn error_groups(
    c: &Connection,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<Vec<ErrorGroup>> {
    get(c, workspace_id, id)?;
    let mut stmt = c.prepare_cached(
        "SELECT t.table_name, g.column_name, g.code, g.n, e.line, e.message
         FROM (SELECT position, column_name, code, count(*) AS n, min(id) AS first
               FROM intake_row_errors WHERE import_id = ?1
               GROUP BY position, column_name, code) g
         JOIN intake_row_errors e ON e.id = g.first
         JOIN intake_import_tables t ON t.import_id = ?1 AND t.position = g.position
         ORDER BY g.n DESC, e.line, g.position",
    )?;
    let rows = stmt.query_map([id.to_string()], |r| {
        let code: String = r.get(2)?;
        Ok(ErrorGroup {
            table: r.get(0)?,
            column: r.get(1)?,
            code: code_from_str(&code),
            count: r.get::<_, i64>(3)?.max(0) as u64,
            first_line: r.get::<_, i64>(4)?.max(0) as u64,
            example: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn code_from_str(s: &str) -> RowErrorCode {
    crate::model::row_error::ALL_CODES
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .unwrap_or(RowErrorCode::MalformedRecord)
}

pub(super) fn events(
    c: &Connection,
    workspace_id: Uuid,
    id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<EventRecord>> {
    get(c, workspace_id, id)?;
    let mut stmt = c.prepare_cached(
        "SELECT id, import_id, kind, data, created_at FROM intake_events
         WHERE import_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![id.to_string(), after.unwrap_or(0), i64::from(limit)],
        |r| {
            Ok(EventRecord {
                id: r.get(0)?,
                import_id: parse_uuid(&r.get::<_, String>(1)?),
                kind: r.get(2)?,
                data: json_col(r.get(3)?),
                created_at: parse_ts(&r.get::<_, String>(4)?),
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Sets the terminal state of an import and of its unfinished tables.
fn set_terminal(
    tx: &Connection,
    import: &ImportRecord,
    status: ImportStatus,
    error: Option<&str>,
) -> StoreResult<()> {
    let at = ts(now());
    let cancelled_at = (status == ImportStatus::Cancelled).then(|| at.clone());
    let rolled_back_at = (status == ImportStatus::RolledBack).then(|| at.clone());
    tx.execute(
        "UPDATE intake_imports SET status = ?2, step = 'done', error = coalesce(?3, error),
         completed_at = coalesce(completed_at, ?4), cancelled_at = coalesce(?5, cancelled_at),
         rolled_back_at = coalesce(?6, rolled_back_at), updated_at = ?4,
         lease_owner = NULL, lease_expires_at = NULL WHERE id = ?1",
        params![
            import.id.to_string(),
            status.as_str(),
            error,
            at,
            cancelled_at,
            rolled_back_at
        ],
    )?;
    tx.execute(
        "UPDATE intake_import_tables SET status = ?2, completed_at = coalesce(completed_at, ?3)
         WHERE import_id = ?1 AND status IN ('new', 'queued', 'processing')",
        params![import.id.to_string(), status.as_str(), at],
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
    tx: &Connection,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    let import = get(tx, workspace_id, id)?;
    match import.lifecycle().cancel()? {
        CancelAction::CancelNow => {
            set_terminal(tx, &import, ImportStatus::Cancelled, None)?;
        }
        CancelAction::AskWorker => {
            tx.execute(
                "UPDATE intake_imports SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
                params![id.to_string(), ts(now())],
            )?;
        }
    }
    get(tx, workspace_id, id)
}

/// The current time in Unix milliseconds (how leases and retries are timed).
pub(super) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn claim(
    tx: &Connection,
    worker: &str,
    lease_ms: i64,
    per_workspace: u32,
) -> StoreResult<Option<Claim>> {
    let now = now_ms();
    // The oldest runnable import of a workspace that runs fewer than `per_workspace` imports
    // (live leases) right now, so one tenant's backlog cannot take every worker, and that
    // shares no table with a running import: imports of one table run one after the other,
    // so each one's changes (and their undo) stay its own.
    let found: Option<(String, i64)> = tx
        .query_row(
            "SELECT i.id, i.lease_token FROM intake_imports i
             WHERE i.status IN ('queued', 'processing', 'rolling_back')
               AND (i.lease_expires_at IS NULL OR i.lease_expires_at < ?1)
               AND (SELECT count(*) FROM intake_imports r
                    WHERE r.workspace_id = i.workspace_id
                      AND r.status IN ('processing', 'rolling_back')
                      AND r.lease_expires_at >= ?1) < ?2
               AND NOT EXISTS (
                    SELECT 1 FROM intake_import_tables mine
                    JOIN intake_import_tables theirs ON theirs.table_name = mine.table_name
                    JOIN intake_imports o ON o.id = theirs.import_id
                    WHERE mine.import_id = i.id AND o.id <> i.id
                      AND o.workspace_id = i.workspace_id
                      AND o.status IN ('processing', 'rolling_back')
                      AND o.lease_expires_at >= ?1)
             ORDER BY i.created_at LIMIT 1",
            params![now, per_workspace],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((id, token)) = found else {
        return Ok(None);
    };
    let token = token + 1;
    let at = ts(OffsetDateTime::now_utc());
    tx.execute(
        "UPDATE intake_imports SET lease_owner = ?2, lease_token = ?3, lease_expires_at = ?4,
         status = CASE status WHEN 'queued' THEN 'processing' ELSE status END,
         started_at = coalesce(started_at, ?5), updated_at = ?5 WHERE id = ?1",
        params![id, worker, token, now + lease_ms, at],
    )?;
    let import = get_any(tx, parse_uuid(&id))?;
    Ok(Some(Claim {
        import,
        worker: worker.to_owned(),
        token,
        lease_ms,
    }))
}

/// Checks the claim still holds the lease and extends it; the fencing check of every write.
pub(super) fn check_lease(
    tx: &Connection,
    id: Uuid,
    token: i64,
    lease_ms: i64,
) -> StoreResult<LeaseState> {
    let cancel: Option<bool> = tx
        .prepare_cached(
            "UPDATE intake_imports SET lease_expires_at = ?3
             WHERE id = ?1 AND lease_token = ?2 RETURNING cancel_requested",
        )?
        .query_row(params![id.to_string(), token, now_ms() + lease_ms], |r| {
            r.get(0)
        })
        .optional()?;
    match cancel {
        Some(cancel_requested) => Ok(LeaseState { cancel_requested }),
        None => Err(StoreError::LeaseLost),
    }
}

pub(super) fn renew(
    tx: &Connection,
    id: Uuid,
    token: i64,
    lease_ms: i64,
) -> StoreResult<LeaseState> {
    check_lease(tx, id, token, lease_ms)
}

/// Records an inference pass's progress (and, at its end, the input's options).
pub(super) fn note_inference(
    tx: &Connection,
    claim: &Claim,
    position: u32,
    bytes_read: u64,
    options: Option<&serde_json::Value>,
) -> StoreResult<LeaseState> {
    let lease = check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    tx.execute(
        "UPDATE intake_import_tables SET bytes_read = ?3, options = coalesce(?4, options)
         WHERE import_id = ?1 AND position = ?2",
        params![
            claim.import.id.to_string(),
            position,
            bytes_read as i64,
            options.map(|o| o.to_string())
        ],
    )?;
    Ok(lease)
}

pub(super) fn start_table(
    tx: &Connection,
    claim: &Claim,
    position: u32,
    start: &TableStart,
) -> StoreResult<()> {
    check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    let at = ts(now());
    let header = start
        .header
        .as_ref()
        .map(|h| serde_json::to_string(h).unwrap_or_default());
    let first_start: bool = tx.query_row(
        "SELECT started_at IS NULL FROM intake_import_tables WHERE import_id = ?1 AND position = ?2",
        params![claim.import.id.to_string(), position],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE intake_import_tables SET status = 'processing', header = coalesce(header, ?3),
         bytes_total = ?4, started_at = coalesce(started_at, ?5)
         WHERE import_id = ?1 AND position = ?2",
        params![
            claim.import.id.to_string(),
            position,
            header,
            start.bytes_total as i64,
            at
        ],
    )?;
    // Warnings are counted once, at the table's first start, not again on resume.
    if first_start && !start.warnings.is_empty() {
        let n = start.warnings.len() as i64;
        tx.execute(
            "UPDATE intake_import_tables SET warnings = warnings + ?3
             WHERE import_id = ?1 AND position = ?2",
            params![claim.import.id.to_string(), position, n],
        )?;
        tx.execute(
            "UPDATE intake_imports SET warnings = warnings + ?2 WHERE id = ?1",
            params![claim.import.id.to_string(), n],
        )?;
        for w in &start.warnings {
            append_event(
                tx,
                claim.import.workspace_id,
                claim.import.id,
                "import.warning",
                &serde_json::json!({"table_position": position, "message": w}),
            )?;
        }
    }
    if first_start {
        append_event(
            tx,
            claim.import.workspace_id,
            claim.import.id,
            "table.started",
            &serde_json::json!({"table_position": position}),
        )?;
    }
    Ok(())
}

pub(super) fn finish_table(
    tx: &Connection,
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
    tx: &Connection,
    workspace_id: Uuid,
    import_id: Uuid,
    position: u32,
    end: &TableEnd,
) -> StoreResult<()> {
    let id = import_id.to_string();
    let prev_destroyed: i64 = tx.query_row(
        "SELECT destroyed FROM intake_import_tables WHERE import_id = ?1 AND position = ?2",
        params![id, position],
        |r| r.get(0),
    )?;
    let destroyed_delta = end.destroyed as i64 - prev_destroyed;
    tx.execute(
        "UPDATE intake_import_tables SET status = ?3, inputs = ?4, destroyed = ?5, error = ?6,
         completed_at = ?7, bytes_read = bytes_total WHERE import_id = ?1 AND position = ?2",
        params![
            id,
            position,
            end.status.as_str(),
            end.inputs.map(|v| v as i64),
            end.destroyed as i64,
            end.error,
            ts(now())
        ],
    )?;
    tx.execute(
        "UPDATE intake_imports SET destroyed = destroyed + ?2,
         inputs = (SELECT CASE WHEN count(inputs) = count(*) THEN sum(inputs) END
                   FROM intake_import_tables WHERE import_id = ?1),
         updated_at = ?3 WHERE id = ?1",
        params![id, destroyed_delta, ts(now())],
    )?;
    append_event(
        tx,
        workspace_id,
        import_id,
        "table.finished",
        &serde_json::json!({"table_position": position, "status": end.status.as_str()}),
    )
}

pub(super) fn finish(tx: &Connection, claim: &Claim, end: &ImportEnd) -> StoreResult<()> {
    check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    let import = get_any(tx, claim.import.id)?;
    // What a finished or cancelled import wrote can be rolled back until then.
    if end.status != ImportStatus::RolledBack {
        tx.execute(
            "UPDATE intake_imports SET rollback_until = ?2 WHERE id = ?1",
            params![import.id.to_string(), end.rollback_until.map(ts)],
        )?;
    }
    if !matches!(
        end.status,
        ImportStatus::Cancelled | ImportStatus::RolledBack
    ) {
        tx.execute(
            "UPDATE intake_imports SET bytes_read = bytes_total WHERE id = ?1",
            [import.id.to_string()],
        )?;
    }
    set_terminal(tx, &import, end.status, end.error.as_deref())
}

pub(super) fn set_step(
    tx: &Connection,
    claim: &Claim,
    step: Step,
    error: Option<&str>,
) -> StoreResult<()> {
    check_lease(tx, claim.import.id, claim.token, claim.lease_ms)?;
    tx.execute(
        "UPDATE intake_imports SET step = ?2, updated_at = ?3, error = coalesce(?4, error)
         WHERE id = ?1",
        params![claim.import.id.to_string(), step.as_str(), ts(now()), error],
    )?;
    Ok(())
}

/// The import that now holds a row this import's undo would restore: a destroyed row that is
/// back, or an updated row that another import wrote since. The journal is checked against
/// the live table, so that an undo never fails halfway on a key that is taken.
fn live_conflict(tx: &Connection, import: &ImportRecord) -> StoreResult<Option<(String, i64)>> {
    let slug = super::tables::workspace_slug(tx, import.workspace_id)?;
    for table in &import.tables {
        let Some(schema_text): Option<String> = tx
            .query_row(
                "SELECT schema FROM intake_tables WHERE workspace_id = ?1 AND name = ?2",
                params![import.workspace_id.to_string(), table.table],
                |r| r.get(0),
            )
            .optional()?
        else {
            continue;
        };
        let schema = crate::model::TableSchema::from_stored(&schema_text)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let key = schema.key_indexes();
        if key.is_empty() {
            continue;
        }
        let cond: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                format!(
                    "{} = ?{}",
                    super::values::quote(schema.columns[i].name.as_str()),
                    j + 1
                )
            })
            .collect();
        let lookup = format!(
            "SELECT {} FROM {} WHERE {}",
            super::values::quote(super::tables::IMPORT_COLUMN),
            super::values::quote(&super::tables::physical_name_in(&slug, &table.table)),
            cond.join(" AND ")
        );
        let mut entries =
            tx.prepare("SELECT op, row FROM intake_undo WHERE import_id = ?1 AND position = ?2")?;
        let rows = entries.query_map(params![import.id.to_string(), table.position], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut probe = tx.prepare(&lookup)?;
        for entry in rows {
            let (op, row) = entry?;
            let old = super::values::journal_to_row(&row);
            let key_values: Vec<&rusqlite::types::Value> =
                key.iter().filter_map(|&i| old.get(i)).collect();
            let owner: Option<i64> = probe
                .query_row(rusqlite::params_from_iter(key_values), |r| r.get(0))
                .optional()?;
            let holder = match (op.as_str(), owner) {
                ("destroyed", Some(n)) => Some(n),
                ("destroyed", None) => None,
                (_, Some(n)) if n != import.number => Some(n),
                (_, Some(_)) => None,
                // The updated row is gone: a later import deleted it.
                (_, None) => Some(-1),
            };
            if let Some(number) = holder {
                let later: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT id, number FROM intake_imports WHERE workspace_id = ?1 AND number = ?2",
                        params![import.workspace_id.to_string(), number],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                return Ok(Some(
                    later.unwrap_or_else(|| ("a later import".into(), number)),
                ));
            }
        }
    }
    Ok(None)
}

/// The first later import that changed rows this import wrote, and is not rolled back.
fn later_conflict(tx: &Connection, import: &ImportRecord) -> StoreResult<Option<(String, i64)>> {
    let ws = import.workspace_id.to_string();
    for table in &import.tables {
        // A later import still running on the table, or a later replace (which changed
        // every row), or any later write when this import was itself a replace.
        let unfinished_or_replacing: Option<(String, i64)> = tx
            .query_row(
                "SELECT i.id, i.number FROM intake_imports i
                 JOIN intake_import_tables t ON t.import_id = i.id
                 WHERE i.workspace_id = ?1 AND t.table_name = ?2 AND i.number > ?3
                   AND i.dry_run = 0
                   AND (i.status IN ('new', 'queued', 'processing', 'rolling_back')
                        OR (t.status IN ('complete', 'partially_complete', 'cancelled', 'failed')
                            AND NOT (t.status = 'failed' AND i.on_error IN ('abort', 'atomic'))
                            AND (i.mode = 'replace' OR ?4 = 'replace')
                            AND (t.created + t.updated + t.destroyed) > 0))
                 ORDER BY i.number LIMIT 1",
                params![ws, table.table, import.number, import.mode.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if unfinished_or_replacing.is_some() {
            return Ok(unfinished_or_replacing);
        }
        // A later upsert journaled the previous version of rows this import had written.
        let touched: Option<(String, i64)> = tx
            .query_row(
                "SELECT i.id, i.number FROM intake_imports i
                 JOIN intake_import_tables t ON t.import_id = i.id
                 JOIN intake_undo u ON u.import_id = i.id AND u.position = t.position
                 WHERE i.workspace_id = ?1 AND t.table_name = ?2 AND i.number > ?3
                   AND t.status <> 'rolled_back'
                   AND json_extract(u.row, '$[#-1].i') = ?3
                 ORDER BY i.number LIMIT 1",
                params![ws, table.table, import.number],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if touched.is_some() {
            return Ok(touched);
        }
    }
    Ok(None)
}

pub(super) fn request_rollback(
    tx: &Connection,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    let import = get(tx, workspace_id, id)?;
    if import.lifecycle().rollback(now())? == RollbackAction::AsItIs {
        return Ok(import);
    }
    if let Some((later, number)) = later_conflict(tx, &import)?.or(live_conflict(tx, &import)?) {
        return Err(Refusal::RollbackBlocked { later, number }.into());
    }
    tx.execute(
        "UPDATE intake_imports SET status = 'rolling_back', step = 'rolling_back',
         lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2 WHERE id = ?1",
        params![id.to_string(), ts(now())],
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

/// Names of the tables a replace kept as undo copies for this import.
pub(super) fn undo_tables(tx: &Connection, import: &ImportRecord) -> StoreResult<Vec<String>> {
    let slug = super::tables::workspace_slug(tx, import.workspace_id)?;
    let mut out = Vec::new();
    for t in &import.tables {
        let name = super::writer::undo_table(
            &super::tables::physical_name_in(&slug, &t.table),
            import.number,
        );
        let exists: Option<String> = tx
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&name],
                |r| r.get(0),
            )
            .optional()?;
        out.extend(exists);
    }
    Ok(out)
}

pub(super) fn prune(
    tx: &Connection,
    at: OffsetDateTime,
    ended_before: OffsetDateTime,
) -> StoreResult<u64> {
    let ids: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT id FROM intake_imports WHERE rollback_until IS NOT NULL
             AND (rollback_until < ?1 OR completed_at < ?2)",
        )?;
        let rows = stmt.query_map([ts(at), ts(ended_before)], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in &ids {
        let import = get_any(tx, parse_uuid(id))?;
        for t in undo_tables(tx, &import)? {
            tx.execute_batch(&format!(
                "DROP TABLE IF EXISTS {}",
                super::values::quote(&t)
            ))?;
        }
        tx.execute("DELETE FROM intake_undo WHERE import_id = ?1", [id])?;
        tx.execute("DELETE FROM intake_row_errors WHERE import_id = ?1", [id])?;
        tx.execute(
            // The row errors are gone: the import no longer claims them as stored.
            "UPDATE intake_imports SET rollback_until = NULL, errors_stored = 0 WHERE id = ?1",
            [id],
        )?;
    }
    Ok(ids.len() as u64)
}
