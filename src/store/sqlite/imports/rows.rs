//! Imports as stored: reading one or a page of them, idempotency keys, and their row
//! errors.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::super::values::ts;
use super::super::{StoreError, StoreResult, first_record, parse_uuid};
use crate::store::stored_row;
use crate::store::*;

pub(crate) use crate::store::columns::{IMPORT_COLUMNS, TABLE_COLUMNS};

pub(crate) fn load_tables(c: &Connection, import: &mut ImportRecord) -> StoreResult<()> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {TABLE_COLUMNS} FROM intake_import_tables WHERE import_id = ?1 ORDER BY position"
    ))?;
    let rows = stmt.query_and_then([import.id.to_string()], |r| stored_row::import_table(r, 0))?;
    import.tables = rows.collect::<StoreResult<Vec<_>>>()?;
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
        let table = stored_row::import_table(r, 0)?;
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
    let sql = format!("SELECT {IMPORT_COLUMNS} FROM intake_imports WHERE id = ?1");
    let mut import = first_record(c, &sql, [id.to_string()], |r| stored_row::import(r))?
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
    let col = sort.column();
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
    let rows = stmt.query_and_then(rusqlite::params_from_iter(all), |r| stored_row::import(r))?;
    let mut imports = rows.collect::<StoreResult<Vec<_>>>()?;
    let has_more = imports.len() > q.limit as usize;
    imports.truncate(q.limit as usize);
    load_tables_of_page(c, &mut imports)?;
    Ok(ImportPage { imports, has_more })
}
