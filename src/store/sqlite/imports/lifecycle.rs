//! Import life-cycle changes asked for by users: create, start, cancel, roll back, relabel, forget
//! (with or without its rows), and the pruning of ended rollback windows. The model decides
//! each; these apply its answer.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use time::OffsetDateTime;
use uuid::Uuid;

use super::super::tables::{physical_name, table_exists};
use super::super::values::{quote, ts};
use super::super::{StoreError, StoreResult, parse_uuid};
use super::events::*;
use super::queue::*;
use super::rows::*;
use crate::store::apply::{Apply, Arg, apply_by_name};
use crate::store::reads::{Query, Reader};
use crate::store::*;

/// The import that now holds a row this import's undo would restore: a destroyed row that is
/// back, or an updated row that another import wrote since. The journal is checked against
/// the live table, so that an undo never fails halfway on a key that is taken.
pub(crate) fn live_conflict(
    tx: &Connection,
    import: &ImportRecord,
) -> StoreResult<Option<(String, i64)>> {
    let slug = super::super::tables::workspace_slug(tx, import.workspace_id)?;
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
                    super::super::values::quote(schema.columns[i].name.as_str()),
                    j + 1
                )
            })
            .collect();
        let lookup = format!(
            "SELECT {} FROM {} WHERE {}",
            super::super::values::quote(super::super::tables::IMPORT_COLUMN),
            super::super::values::quote(&super::super::tables::physical_name_in(
                &slug,
                &table.table
            )),
            cond.join(" AND ")
        );
        let physical = super::super::tables::physical_name_in(&slug, &table.table);
        if let Some(number) = journal_conflict(tx, &physical, &schema, import.number)? {
            return Ok(Some(import_named(tx, import.workspace_id, number)?));
        }
        let mut entries =
            tx.prepare("SELECT op, row FROM intake_undo WHERE import_id = ?1 AND position = ?2")?;
        let rows = entries.query_map(params![import.id.to_string(), table.position], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut probe = tx.prepare(&lookup)?;
        for entry in rows {
            let (op, row) = entry?;
            let old = super::super::values::journal_to_row(&row);
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
                return Ok(Some(import_named(tx, import.workspace_id, number)?));
            }
        }
    }
    Ok(None)
}

/// The id and number of the import of a workspace with this number, if it still exists.
fn import_named(tx: &Connection, workspace_id: Uuid, number: i64) -> StoreResult<(String, i64)> {
    let later: Option<(String, i64)> = tx
        .query_row(
            "SELECT id, number FROM intake_imports WHERE workspace_id = ?1 AND number = ?2",
            params![workspace_id.to_string(), number],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(later.unwrap_or_else(|| ("a later import".into(), number)))
}

/// The number of the import that holds a row this import's journal would restore (-1: the
/// updated row is gone), checked set-based against the live table.
fn journal_conflict(
    tx: &Connection,
    physical: &str,
    schema: &crate::model::TableSchema,
    number: i64,
) -> StoreResult<Option<i64>> {
    let journal = super::super::tables::journal_table(physical, number);
    if !table_exists(tx, &journal)? {
        return Ok(None);
    }
    let cond: Vec<String> = schema
        .key_indexes()
        .iter()
        .map(|&i| {
            let c = quote(schema.columns[i].name.as_str());
            format!("t.{c} = j.{c}")
        })
        .collect();
    let owner = quote(super::super::tables::IMPORT_COLUMN);
    let op = quote(crate::store::columns::JOURNAL_OP_COLUMN);
    let holder = tx
        .query_row(
            &format!(
                "SELECT CASE WHEN t.rowid IS NULL THEN -1 ELSE t.{owner} END
                 FROM {} j LEFT JOIN {} t ON {}
                 WHERE (j.{op} = 'destroyed' AND t.rowid IS NOT NULL)
                    OR (j.{op} <> 'destroyed' AND (t.rowid IS NULL OR t.{owner} <> ?1))
                 ORDER BY j.rowid LIMIT 1",
                quote(&journal),
                quote(physical),
                cond.join(" AND ")
            ),
            [number],
            |r| r.get(0),
        )
        .optional()?;
    Ok(holder)
}

/// The first later import that changed rows this import wrote, and is not rolled back.
pub(crate) fn later_conflict(
    tx: &Connection,
    import: &ImportRecord,
) -> StoreResult<Option<(String, i64)>> {
    let ws = import.workspace_id.to_string();
    let slug = super::super::tables::workspace_slug(tx, import.workspace_id)?;
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
        // Or journaled them in its own journal table.
        let later: Vec<(String, i64)> = {
            let mut stmt = tx.prepare(
                "SELECT i.id, i.number FROM intake_imports i
                 JOIN intake_import_tables t ON t.import_id = i.id
                 WHERE i.workspace_id = ?1 AND t.table_name = ?2 AND i.number > ?3
                   AND t.status <> 'rolled_back' AND i.mode = 'upsert'
                 ORDER BY i.number",
            )?;
            let rows = stmt.query_map(params![ws, table.table, import.number], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let physical = super::super::tables::physical_name_in(&slug, &table.table);
        for (id, number) in later {
            let journal = super::super::tables::journal_table(&physical, number);
            if table_exists(tx, &journal)?
                && tx
                    .prepare(&format!(
                        "SELECT 1 FROM {} WHERE {} = ?1 LIMIT 1",
                        quote(&journal),
                        quote(super::super::tables::IMPORT_COLUMN)
                    ))?
                    .exists([import.number])?
            {
                return Ok(Some((id, number)));
            }
        }
    }
    Ok(None)
}

/// Names of the tables kept to undo this import: a replace's copy, an upsert's journal.
pub(crate) fn undo_tables(tx: &Connection, import: &ImportRecord) -> StoreResult<Vec<String>> {
    let slug = super::super::tables::workspace_slug(tx, import.workspace_id)?;
    let mut out = Vec::new();
    for t in &import.tables {
        let physical = super::super::tables::physical_name_in(&slug, &t.table);
        for name in [
            super::super::tables::undo_table(&physical, import.number),
            super::super::tables::journal_table(&physical, import.number),
        ] {
            if table_exists(tx, &name)? {
                out.push(name);
            }
        }
    }
    Ok(out)
}

pub(crate) use crate::store::apply::{
    create, finish, finish_table, note_inference, prune, purge, relabel, request_cancel,
    request_rollback, set_input_source, set_new_step, set_step, start, start_table,
};

impl Apply for &rusqlite::Transaction<'_> {
    apply_by_name!();

    fn serialize_creations(&mut self, _workspace_id: Uuid) -> StoreResult<()> {
        // The one writer connection already runs one write transaction at a time.
        Ok(())
    }

    fn run(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        Ok(self.execute(&numbered(sql), params_from_iter(bind(args)))? as u64)
    }

    fn any(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<bool> {
        Ok(self
            .prepare(&numbered(sql))?
            .exists(params_from_iter(bind(args)))?)
    }

    fn undo_copies(&mut self, import: &ImportRecord) -> StoreResult<Vec<String>> {
        Ok(undo_tables(self, import)?
            .iter()
            .map(|t| quote(t))
            .collect())
    }

    fn data_table(&self, ws: &Workspace, table: &str) -> String {
        quote(&physical_name(ws, table))
    }

    fn prunable(
        &mut self,
        at: OffsetDateTime,
        ended_before: OffsetDateTime,
    ) -> StoreResult<Vec<Uuid>> {
        let mut stmt = self.prepare(
            "SELECT id FROM intake_imports WHERE rollback_until IS NOT NULL
             AND (rollback_until < ?1 OR completed_at < ?2)",
        )?;
        let rows = stmt.query_map([ts(at), ts(ended_before)], |r| r.get::<_, String>(0))?;
        let ids = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids.iter().map(|id| parse_uuid(id)).collect())
    }
}

/// The first column of the first row of a query written with `$n` placeholders.
fn first<T: rusqlite::types::FromSql>(
    c: &Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> StoreResult<Option<T>> {
    let mut stmt = c.prepare_cached(&numbered(sql))?;
    Ok(stmt
        .query_row(params_from_iter(bind(args)), |r| r.get(0))
        .optional()?)
}

/// The arguments as SQLite stores them.
impl Query for &Connection {
    fn rows<T>(&mut self, sql: &str, args: &[Arg<'_>], read: Reader<T>) -> StoreResult<Vec<T>> {
        let mut stmt = self.prepare_cached(&numbered(sql))?;
        let rows = stmt.query_and_then(params_from_iter(bind(args)), |r| read(r))?;
        rows.collect()
    }
}

fn bind(args: &[Arg<'_>]) -> Vec<Value> {
    args.iter()
        .map(|a| match a {
            Arg::Id(v) => Value::Text(v.to_string()),
            Arg::Int(v) => Value::Integer(*v),
            Arg::MaybeInt(v) => v.map_or(Value::Null, Value::Integer),
            Arg::Bool(v) => Value::Integer(i64::from(*v)),
            Arg::Text(v) => v.map_or(Value::Null, |s| Value::Text(s.to_owned())),
            Arg::Json(v) => v.map_or(Value::Null, |j| Value::Text(j.to_string())),
            Arg::Time(v) => v.map_or(Value::Null, |t| Value::Text(ts(t))),
        })
        .collect()
}

/// A statement's `$n` placeholders written as SQLite's `?n`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let placeholder = c == '$' && chars.peek().is_some_and(char::is_ascii_digit);
        out.push(if placeholder { '?' } else { c });
    }
    out
}
