//! Imports as stored: reading one or a page of them, idempotency keys, and their row
//! errors.

use ::postgres::Transaction;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::super::values::Params;
use super::super::{StoreError, StoreResult, ms};
use crate::store::stored_row;
use crate::store::*;

pub(crate) use crate::store::columns::{IMPORT_COLUMNS, TABLE_COLUMNS};

pub(crate) fn load_tables(tx: &mut Transaction<'_>, import: &mut ImportRecord) -> StoreResult<()> {
    let rows = tx.query(
        &format!(
            "SELECT {TABLE_COLUMNS} FROM intake_import_tables WHERE import_id = $1 ORDER BY position"
        ),
        &[&import.id],
    )?;
    import.tables = rows
        .iter()
        .map(|r| stored_row::import_table(r, 0))
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
            .push(stored_row::import_table(r, 1)?);
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
        .map(|r| stored_row::import(r).map(|i| (i.id, i)))
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
    let mut import = stored_row::import(&row)?;
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
    let col = sort.column();
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
        .map(|r| stored_row::import(r))
        .collect::<StoreResult<Vec<_>>>()?;
    let has_more = imports.len() > q.limit as usize;
    imports.truncate(q.limit as usize);
    load_tables_of(tx, &mut imports)?;
    Ok(ImportPage { imports, has_more })
}
