//! Imports as stored: reading one or a page of them, idempotency keys, and their row
//! errors.

use ::postgres::{Row, Transaction};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::super::values::Params;
use super::super::{StoreError, StoreResult, ms};
use crate::model::{Counts, ImportStatus, Mode, OnError, RowError, RowErrorCode, Source, Step};
use crate::store::*;

pub(crate) use crate::store::columns::{IMPORT_COLUMNS, TABLE_COLUMNS};

pub(crate) fn count(r: &Row, i: usize) -> StoreResult<u64> {
    Ok(r.try_get::<_, i64>(i)?.max(0) as u64)
}

pub(crate) fn count_opt(r: &Row, i: usize) -> StoreResult<Option<u64>> {
    Ok(r.try_get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
}

pub(crate) fn counts_at(r: &Row, first: usize) -> StoreResult<Counts> {
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

pub(crate) fn import_from_row(r: &Row) -> StoreResult<ImportRecord> {
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

pub(crate) fn table_from_row(r: &Row) -> StoreResult<ImportTableRecord> {
    table_from_row_at(r, 0)
}

/// An import table from the columns of `TABLE_COLUMNS` starting at column `at`.
pub(crate) fn table_from_row_at(r: &Row, at: usize) -> StoreResult<ImportTableRecord> {
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

pub(crate) fn load_tables(tx: &mut Transaction<'_>, import: &mut ImportRecord) -> StoreResult<()> {
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
pub(crate) fn load_tables_of(
    tx: &mut Transaction<'_>,
    imports: &mut [ImportRecord],
) -> StoreResult<()> {
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
pub(crate) fn get_many(
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

pub(crate) fn get_any(tx: &mut Transaction<'_>, id: Uuid) -> StoreResult<ImportRecord> {
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

pub(crate) fn get(
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
pub(crate) fn get_locked(
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

pub(crate) fn find_idempotency(
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

pub(crate) fn sort_column(sort: ImportSort) -> &'static str {
    match sort {
        ImportSort::Id => "id",
        ImportSort::CreatedAt => "created_at",
        ImportSort::UpdatedAt => "updated_at",
        ImportSort::CompletedAt => "completed_at",
    }
}

/// A list cursor's sort value (a [`crate::store::sort_key`] text; empty for null).
pub(crate) fn cursor_time(value: &str) -> StoreResult<Option<OffsetDateTime>> {
    if value.is_empty() {
        return Ok(None);
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| Some(ms(t)))
        .map_err(|_| StoreError::Invalid("invalid cursor".into()))
}

pub(crate) fn list(
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
    for (col, op, v) in q.time_bounds() {
        filters.push_str(&format!(" AND {col} {op} {}", p.push(ms(v))));
    }
    let sort = q.sort.unwrap_or(ImportSort::Id);
    let col = sort_column(sort);
    // Nulls (not completed yet) sort before any time, as the SQLite backend's empty text.
    let key = if sort == ImportSort::CompletedAt {
        format!("coalesce({col}, '-infinity'::timestamptz)")
    } else {
        col.to_owned()
    };
    let (cmp, dir) = q.direction();
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

pub(crate) fn row_errors(
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
pub(crate) fn error_groups(
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

pub(crate) fn code_from_str(s: &str) -> RowErrorCode {
    crate::model::row_error::ALL_CODES
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .unwrap_or(RowErrorCode::MalformedRecord)
}
