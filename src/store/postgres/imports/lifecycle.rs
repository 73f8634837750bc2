//! Import life-cycle changes asked for by users: create, start, cancel, roll back, relabel, forget
//! (with or without its rows), and the pruning of ended rollback windows. The model decides
//! each; these apply its answer.

use ::postgres::types::ToSql;
use ::postgres::{Row, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::super::tables::{
    IMPORT_COLUMN, exists, journal_table, stored_schema, undo_table, workspace_slug,
};
use super::super::values::{qualified, quote};
use super::super::{StoreError, StoreResult, ms};
use super::events::*;
use super::queue::*;
use super::rows::*;
use crate::store::apply::{Apply, Arg, apply_by_name};
use crate::store::reads::{Query, Reader};
use crate::store::*;

/// The id and number of the import of a workspace with this number, if it still exists.
pub(crate) fn import_by_number(
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
pub(crate) fn live_conflict(
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
        let journal = journal_table(&table.table, import.number);
        if exists(tx, &slug, &journal)? {
            let op = quote(crate::store::columns::JOURNAL_OP_COLUMN);
            let holder = tx.query_opt(
                &format!(
                    "SELECT CASE WHEN {owner} IS NULL THEN -1 ELSE {owner} END
                     FROM {} o LEFT JOIN {physical} t ON {cond}
                     WHERE (o.{op} = 'destroyed' AND {owner} IS NOT NULL)
                        OR (o.{op} <> 'destroyed' AND ({owner} IS NULL OR {owner} <> $1))
                     LIMIT 1",
                    qualified(&slug, &journal),
                    cond = cond.join(" AND ")
                ),
                &[&import.number],
            )?;
            if let Some(row) = holder {
                let number: i64 = row.try_get(0)?;
                return Ok(Some(import_by_number(tx, import.workspace_id, number)?));
            }
        }
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
pub(crate) fn later_conflict(
    tx: &mut Transaction<'_>,
    import: &ImportRecord,
) -> StoreResult<Option<(String, i64)>> {
    let to_pair = |r: Row| -> StoreResult<(String, i64)> {
        Ok((r.try_get::<_, Uuid>(0)?.to_string(), r.try_get(1)?))
    };
    let slug = workspace_slug(tx, import.workspace_id)?;
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
        // Or journaled them in its own journal table.
        let later = tx.query(
            "SELECT i.id, i.number FROM intake_imports i
             JOIN intake_import_tables t ON t.import_id = i.id
             WHERE i.workspace_id = $1 AND t.table_name = $2 AND i.number > $3
               AND t.status <> 'rolled_back' AND i.mode = 'upsert'
             ORDER BY i.number",
            &[&import.workspace_id, &table.table, &import.number],
        )?;
        for r in later {
            let number: i64 = r.try_get(1)?;
            let journal = journal_table(&table.table, number);
            if exists(tx, &slug, &journal)?
                && tx
                    .query_opt(
                        &format!(
                            "SELECT 1 FROM {} WHERE {} = $1 LIMIT 1",
                            qualified(&slug, &journal),
                            quote(IMPORT_COLUMN)
                        ),
                        &[&import.number],
                    )?
                    .is_some()
            {
                return Ok(Some(to_pair(r)?));
            }
        }
    }
    Ok(None)
}

/// The tables kept to undo this import: a replace's copy, an upsert's journal.
pub(crate) fn undo_tables(
    tx: &mut Transaction<'_>,
    import: &ImportRecord,
) -> StoreResult<Vec<String>> {
    let slug = workspace_slug(tx, import.workspace_id)?;
    let mut out = Vec::new();
    for t in &import.tables {
        for name in [
            undo_table(&t.table, import.number),
            journal_table(&t.table, import.number),
        ] {
            if exists(tx, &slug, &name)? {
                out.push(qualified(&slug, &name));
            }
        }
    }
    Ok(out)
}

pub(crate) use crate::store::apply::{
    create, finish, finish_table, note_inference, prune, purge, relabel, request_cancel,
    request_rollback, set_input_source, set_new_step, set_step, start, start_table,
};

impl Apply for &mut Transaction<'_> {
    apply_by_name!();

    fn serialize_creations(&mut self, workspace_id: Uuid) -> StoreResult<()> {
        // The workspace row: held until commit by every creation in the workspace.
        self.query_opt(
            "SELECT 1 FROM intake_workspaces WHERE id = $1 FOR NO KEY UPDATE",
            &[&workspace_id],
        )?
        .ok_or(StoreError::NotFound("workspace"))?;
        Ok(())
    }

    fn run(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        Ok(self.execute(sql, &bind(args))?)
    }

    fn any(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<bool> {
        Ok(self.query_opt(sql, &bind(args))?.is_some())
    }

    fn undo_copies(&mut self, import: &ImportRecord) -> StoreResult<Vec<String>> {
        undo_tables(self, import)
    }

    fn data_table(&self, ws: &Workspace, table: &str) -> String {
        qualified(&ws.slug, table)
    }

    fn prunable(
        &mut self,
        at: OffsetDateTime,
        ended_before: OffsetDateTime,
    ) -> StoreResult<Vec<Uuid>> {
        let rows = self.query(
            "SELECT id FROM intake_imports
             WHERE rollback_until IS NOT NULL AND (rollback_until < $1 OR completed_at < $2)
             FOR NO KEY UPDATE SKIP LOCKED",
            &[&ms(at), &ms(ended_before)],
        )?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }
}

/// The first column of the first row of a query.
fn first<T: for<'a> ::postgres::types::FromSql<'a>>(
    tx: &mut Transaction<'_>,
    sql: &str,
    args: &[Arg<'_>],
) -> StoreResult<Option<T>> {
    let row = tx.query_opt(sql, &bind(args))?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// The arguments as the PostgreSQL client binds them.
impl Query for &mut Transaction<'_> {
    fn rows<T>(&mut self, sql: &str, args: &[Arg<'_>], read: Reader<T>) -> StoreResult<Vec<T>> {
        let rows = self.query(sql, &bind(args))?;
        rows.iter().map(|r| read(r)).collect()
    }
}

fn bind<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter()
        .map(|a| -> &(dyn ToSql + Sync) {
            match a {
                Arg::Id(v) => v,
                Arg::Int(v) => v,
                Arg::MaybeInt(v) => v,
                Arg::Bool(v) => v,
                Arg::Text(v) => v,
                Arg::Json(v) => v,
                Arg::Time(v) => v,
            }
        })
        .collect()
}
