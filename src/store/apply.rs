//! Import life-cycle steps written once for both backends: start, roll back, relabel, forget,
//! set a step or a source, and prune. Each backend implements [`Apply`] for its transaction
//! (its dialect, its value types, its row locks); the statements and their order live here,
//! so that the two backends cannot drift apart.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{ImportLabels, ImportRecord, PurgedImport, StoreResult, Workspace};
use crate::model::{Forget, ImportStatus, Refusal, RollbackAction, Step};

/// A value bound to a statement, converted by each backend to its own column types.
pub(crate) enum Arg<'a> {
    /// A UUID (native in PostgreSQL, text in SQLite).
    Id(Uuid),
    /// An integer.
    Int(i64),
    /// Text, or NULL.
    Text(Option<&'a str>),
    /// A JSON document (JSONB in PostgreSQL, text in SQLite).
    Json(&'a serde_json::Value),
    /// A time (timestamptz in PostgreSQL, text in SQLite).
    Time(OffsetDateTime),
}

/// A transaction that can run the statements of the shared life-cycle steps.
pub(crate) trait Apply {
    /// Runs one statement written with `$n` placeholders; how many rows it changed.
    fn run(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64>;
    /// Whether a query written with `$n` placeholders returns a row.
    fn any(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<bool>;
    /// The import, locked until commit where the backend locks rows.
    fn import_locked(&mut self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord>;
    /// The import as it now is.
    fn import(&mut self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord>;
    /// The import, whatever its workspace.
    fn import_any(&mut self, id: Uuid) -> StoreResult<ImportRecord>;
    /// Appends a life-cycle event (and queues its webhook deliveries).
    fn event(
        &mut self,
        workspace_id: Uuid,
        id: Uuid,
        kind: &str,
        data: &serde_json::Value,
    ) -> StoreResult<()>;
    /// The import that holds rows this import's undo would restore, and its number.
    fn rollback_conflict(&mut self, import: &ImportRecord) -> StoreResult<Option<(String, i64)>>;
    /// The undo copies kept for this import, as names ready for SQL.
    fn undo_copies(&mut self, import: &ImportRecord) -> StoreResult<Vec<String>>;
    /// A user table of the workspace, as a name ready for SQL.
    fn data_table(&self, ws: &Workspace, table: &str) -> String;
    /// The imports whose rollback window ended, claimed for pruning.
    fn prunable(
        &mut self,
        at: OffsetDateTime,
        ended_before: OffsetDateTime,
    ) -> StoreResult<Vec<Uuid>>;
}

/// The current time at the precision timestamps are stored with (milliseconds), so that
/// what a write answers equals what later reads return.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

/// Asks for an import's rollback, unless a later import or a live row stands in its way.
pub(crate) fn request_rollback(
    mut tx: impl Apply,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    let import = tx.import_locked(workspace_id, id)?;
    if import.lifecycle().rollback(now())? == RollbackAction::AsItIs {
        return Ok(import);
    }
    if let Some((later, number)) = tx.rollback_conflict(&import)? {
        return Err(Refusal::RollbackBlocked { later, number }.into());
    }
    tx.run(
        "UPDATE intake_imports SET status = 'rolling_back', step = 'rolling_back',
         lease_owner = NULL, lease_expires_at = NULL, updated_at = $2 WHERE id = $1",
        &[Arg::Id(id), Arg::Time(now())],
    )?;
    tx.event(
        workspace_id,
        id,
        ImportStatus::RollingBack.event_type(),
        &serde_json::json!({"status": "rolling_back"}),
    )?;
    tx.import(workspace_id, id)
}

/// Drops the undo copies and row errors of imports whose rollback window ended.
pub(crate) fn prune(
    mut tx: impl Apply,
    at: OffsetDateTime,
    ended_before: OffsetDateTime,
) -> StoreResult<u64> {
    let ids = tx.prunable(at, ended_before)?;
    for id in &ids {
        let import = tx.import_any(*id)?;
        for t in tx.undo_copies(&import)? {
            tx.run(&format!("DROP TABLE IF EXISTS {t}"), &[])?;
        }
        let id = [Arg::Id(*id)];
        tx.run("DELETE FROM intake_undo WHERE import_id = $1", &id)?;
        tx.run("DELETE FROM intake_row_errors WHERE import_id = $1", &id)?;
        tx.run(
            // The row errors are gone: the import no longer claims them as stored.
            "UPDATE intake_imports SET rollback_until = NULL, errors_stored = 0 WHERE id = $1",
            &id,
        )?;
    }
    Ok(ids.len() as u64)
}

/// Queues an import whose sources have all arrived, with their sizes.
pub(crate) fn start(
    mut tx: impl Apply,
    workspace_id: Uuid,
    id: Uuid,
    sizes: &[u64],
) -> StoreResult<ImportRecord> {
    let import = tx.import_locked(workspace_id, id)?;
    import.lifecycle().expect_waiting()?;
    import.check_sizes(sizes)?;
    for (table, size) in import.tables.iter().zip(sizes) {
        tx.run(
            "UPDATE intake_import_tables SET status = 'queued', file_size = $3, bytes_total = $3
             WHERE import_id = $1 AND position = $2",
            &[
                Arg::Id(id),
                Arg::Int(i64::from(table.position)),
                Arg::Int(*size as i64),
            ],
        )?;
    }
    let total: u64 = sizes.iter().sum();
    tx.run(
        "UPDATE intake_imports SET status = 'queued', step = 'queued', bytes_total = $2,
         updated_at = $3 WHERE id = $1",
        &[Arg::Id(id), Arg::Int(total as i64), Arg::Time(now())],
    )?;
    tx.event(
        workspace_id,
        id,
        ImportStatus::Queued.event_type(),
        &serde_json::json!({"status": "queued"}),
    )?;
    tx.import(workspace_id, id)
}

/// Forgets an import, and with `remove_rows` the rows it last wrote.
pub(crate) fn purge(
    mut tx: impl Apply,
    ws: &Workspace,
    id: Uuid,
    which: Forget,
    remove_rows: bool,
) -> StoreResult<PurgedImport> {
    let import = tx.import_locked(ws.id, id)?;
    import.lifecycle().forget(which)?;
    let mut rows_deleted = 0u64;
    let tables = if remove_rows {
        import.tables_written()
    } else {
        Vec::new()
    };
    for table in tables {
        // A table dropped since has no rows left to delete.
        if !tx.any(
            "SELECT 1 FROM intake_tables WHERE workspace_id = $1 AND name = $2",
            &[Arg::Id(ws.id), Arg::Text(Some(table))],
        )? {
            continue;
        }
        rows_deleted += tx.run(
            &format!(
                "DELETE FROM {} WHERE {} = $1",
                tx.data_table(ws, table),
                super::ddl::quote(super::columns::IMPORT_COLUMN)
            ),
            &[Arg::Int(import.number)],
        )?;
    }
    // A replace's undo copy goes with the import.
    for t in tx.undo_copies(&import)? {
        tx.run(&format!("DROP TABLE IF EXISTS {t}"), &[])?;
    }
    tx.run(
        "DELETE FROM intake_idempotency WHERE workspace_id = $1 AND import_id = $2",
        &[Arg::Id(ws.id), Arg::Id(id)],
    )?;
    // Its tables, row errors, events and undo journal go with it (ON DELETE CASCADE).
    tx.run("DELETE FROM intake_imports WHERE id = $1", &[Arg::Id(id)])?;
    Ok(PurgedImport {
        rows_deleted,
        blob_keys: import.blob_keys(),
    })
}

/// Changes an import's reference, origin or metadata.
pub(crate) fn relabel(
    mut tx: impl Apply,
    workspace_id: Uuid,
    id: Uuid,
    labels: &ImportLabels,
) -> StoreResult<ImportRecord> {
    let import = tx.import_locked(workspace_id, id)?;
    let (reference, origin, metadata) = import.relabelled(labels);
    tx.run(
        "UPDATE intake_imports SET reference = $2, reference_origin = $3, metadata = $4,
         updated_at = $5 WHERE id = $1",
        &[
            Arg::Id(id),
            Arg::Text(reference.as_deref()),
            Arg::Text(origin.as_deref()),
            Arg::Json(&metadata),
            Arg::Time(now()),
        ],
    )?;
    tx.import(workspace_id, id)
}

/// Moves a waiting import to its next step, or fails it with `failure`.
pub(crate) fn set_new_step(
    mut tx: impl Apply,
    workspace_id: Uuid,
    id: Uuid,
    step: Step,
    failure: Option<&str>,
) -> StoreResult<()> {
    let import = tx.import_locked(workspace_id, id)?;
    import.lifecycle().expect_waiting()?;
    let at = Arg::Time(now());
    let Some(why) = failure else {
        tx.run(
            "UPDATE intake_imports SET step = $2, updated_at = $3 WHERE id = $1",
            &[Arg::Id(id), Arg::Text(Some(step.as_str())), at],
        )?;
        return Ok(());
    };
    let args = [Arg::Id(id), Arg::Text(Some(why)), at];
    tx.run(
        "UPDATE intake_import_tables SET status = 'failed', error = $2, completed_at = $3
         WHERE import_id = $1",
        &args,
    )?;
    tx.run(
        "UPDATE intake_imports SET status = 'failed', step = 'done', error = $2,
         completed_at = $3, updated_at = $3 WHERE id = $1",
        &args,
    )?;
    tx.event(
        workspace_id,
        id,
        ImportStatus::Failed.event_type(),
        &serde_json::json!({"status": "failed", "error": why}),
    )?;
    Ok(())
}

/// Sets the format and options of one source of a waiting import.
pub(crate) fn set_input_source(
    mut tx: impl Apply,
    workspace_id: Uuid,
    id: Uuid,
    position: u32,
    format: &str,
    options: &serde_json::Value,
) -> StoreResult<()> {
    let import = tx.import_locked(workspace_id, id)?;
    import.lifecycle().expect_waiting()?;
    tx.run(
        "UPDATE intake_import_tables SET format = $3, options = $4
         WHERE import_id = $1 AND position = $2",
        &[
            Arg::Id(id),
            Arg::Int(i64::from(position)),
            Arg::Text(Some(format)),
            Arg::Json(options),
        ],
    )?;
    Ok(())
}
