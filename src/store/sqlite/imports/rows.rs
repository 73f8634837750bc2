//! Imports as stored: reading one or a page of them, idempotency keys, and their row
//! errors.

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::super::values::{parse_ts, parse_ts_opt, ts};
use super::super::{StoreError, StoreResult, parse_uuid};
use crate::model::{Counts, ImportStatus, Mode, OnError, RowError, RowErrorCode, Source, Step};
use crate::store::*;

pub(crate) use crate::store::columns::{IMPORT_COLUMNS, TABLE_COLUMNS};

pub(crate) fn json_col(s: Option<String>) -> serde_json::Value {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

pub(crate) fn counts_at(r: &Row<'_>, first: usize) -> rusqlite::Result<Counts> {
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

pub(crate) fn import_from_row(r: &Row<'_>) -> rusqlite::Result<ImportRecord> {
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

pub(crate) fn table_from_row(r: &Row<'_>) -> rusqlite::Result<ImportTableRecord> {
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

pub(crate) fn load_tables(c: &Connection, import: &mut ImportRecord) -> StoreResult<()> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {TABLE_COLUMNS} FROM intake_import_tables WHERE import_id = ?1 ORDER BY position"
    ))?;
    let rows = stmt.query_map([import.id.to_string()], table_from_row)?;
    import.tables = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(())
}

/// The tables of a page of imports, in one query.
pub(crate) fn load_tables_of_page(c: &Connection, imports: &mut [ImportRecord]) -> StoreResult<()> {
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

pub(crate) fn get_any(c: &Connection, id: Uuid) -> StoreResult<ImportRecord> {
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

/// The import, for a change: the one writer connection serializes writes, so reading is
/// locking.
pub(crate) fn get_locked(
    c: &Connection,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    get(c, workspace_id, id)
}

pub(crate) fn get(c: &Connection, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord> {
    let import = get_any(c, id)?;
    // Another workspace's import is indistinguishable from a missing one.
    if import.workspace_id != workspace_id {
        return Err(StoreError::NotFound("import"));
    }
    Ok(import)
}

pub(crate) fn find_idempotency(
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

pub(crate) fn sort_column(sort: ImportSort) -> &'static str {
    match sort {
        ImportSort::Id => "id",
        ImportSort::CreatedAt => "created_at",
        ImportSort::UpdatedAt => "updated_at",
        ImportSort::CompletedAt => "completed_at",
    }
}

pub(crate) fn list(c: &Connection, workspace_id: Uuid, q: &ImportQuery) -> StoreResult<ImportPage> {
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
    for (col, op, v) in q.time_bounds() {
        filters.push_str(&format!(" AND {col} {op} ?"));
        args.push(ts(v).into());
    }
    let sort = q.sort.unwrap_or(ImportSort::Id);
    let col = sort_column(sort);
    let (cmp, dir) = q.direction();
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

pub(crate) fn row_errors(
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
pub(crate) fn error_groups(
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

pub(crate) fn code_from_str(s: &str) -> RowErrorCode {
    crate::model::row_error::ALL_CODES
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .unwrap_or(RowErrorCode::MalformedRecord)
}
