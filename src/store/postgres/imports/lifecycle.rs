//! Import life-cycle changes asked for by users: create, start, cancel, roll back, relabel, forget
//! (with or without its rows), and the pruning of ended rollback windows. The model decides
//! each; these apply its answer.

use ::postgres::types::ToSql;
use ::postgres::{Row, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::super::tables::{IMPORT_COLUMN, stored_schema, undo_table, workspace_slug};
use super::super::values::{qualified, quote};
use super::super::{StoreError, StoreResult, ms, now};
use super::events::*;
use super::queue::*;
use super::rows::*;
use crate::model::{CancelAction, ImportStatus, Step};
use crate::store::apply::{Apply, Arg, apply_by_name};
use crate::store::*;

pub(crate) fn create(tx: &mut Transaction<'_>, new: &NewImport) -> StoreResult<CreateOutcome> {
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

pub(crate) fn request_cancel(
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

/// The tables a replace kept as undo copies for this import.
pub(crate) fn undo_tables(
    tx: &mut Transaction<'_>,
    import: &ImportRecord,
) -> StoreResult<Vec<String>> {
    let slug = workspace_slug(tx, import.workspace_id)?;
    let mut out = Vec::new();
    for t in &import.tables {
        let name = undo_table(&t.table, import.number);
        if super::super::tables::exists(tx, &slug, &name)? {
            out.push(qualified(&slug, &name));
        }
    }
    Ok(out)
}

pub(crate) use crate::store::apply::{
    finish, finish_table, note_inference, prune, purge, relabel, request_rollback,
    set_input_source, set_new_step, set_step, start, start_table,
};

impl Apply for &mut Transaction<'_> {
    apply_by_name!();

    fn run(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        Ok(self.execute(sql, &bind(args))?)
    }

    fn any(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<bool> {
        Ok(self.query_opt(sql, &bind(args))?.is_some())
    }

    fn event(
        &mut self,
        workspace_id: Uuid,
        id: Uuid,
        kind: &str,
        data: &serde_json::Value,
    ) -> StoreResult<()> {
        append_event(&mut **self, workspace_id, id, kind, data)
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
fn bind<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter()
        .map(|a| -> &(dyn ToSql + Sync) {
            match a {
                Arg::Id(v) => v,
                Arg::Int(v) => v,
                Arg::MaybeInt(v) => v,
                Arg::Text(v) => v,
                Arg::Json(v) => v,
                Arg::Time(v) => v,
            }
        })
        .collect()
}
