//! Import life-cycle and work-queue steps written once for both backends: start, roll back,
//! relabel, forget, set a step or a source, prune, and a worker's table starts and ends. Each
//! backend implements [`Apply`] for its transaction
//! (its dialect, its value types, its row locks); the statements and their order live here,
//! so that the two backends cannot drift apart.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Claim, CreateOutcome, IdempotencyRecord, ImportEnd, ImportLabels, ImportRecord, LeaseState,
    NewImport, PurgedImport, StoreError, StoreResult, TableEnd, TableStart, Workspace,
};
use crate::model::{CancelAction, Forget, ImportStatus, Refusal, RollbackAction, Step};

/// A value bound to a statement, converted by each backend to its own column types.
pub(crate) enum Arg<'a> {
    /// A UUID (native in PostgreSQL, text in SQLite).
    Id(Uuid),
    /// An integer.
    Int(i64),
    /// An integer, or NULL.
    MaybeInt(Option<i64>),
    /// A flag (boolean in PostgreSQL, 0 or 1 in SQLite).
    Bool(bool),
    /// Text, or NULL.
    Text(Option<&'a str>),
    /// A JSON document (JSONB in PostgreSQL, text in SQLite), or NULL.
    Json(Option<&'a serde_json::Value>),
    /// A time (timestamptz in PostgreSQL, text in SQLite), or NULL.
    Time(Option<OffsetDateTime>),
}

/// A transaction that can run the statements of the shared life-cycle steps.
pub(crate) trait Apply {
    /// Runs one statement written with `$n` placeholders; how many rows it changed.
    fn run(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64>;
    /// Whether a query written with `$n` placeholders returns a row.
    fn any(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<bool>;
    /// The first column of the first row of a query, as a flag (`None`: no row).
    fn flag(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Option<bool>>;
    /// The first column of the first row of a query, as an integer (`None`: no row).
    fn number(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Option<i64>>;
    /// Checks the claim still holds the lease and extends it; the fencing check of every write.
    fn lease(&mut self, claim: &Claim) -> StoreResult<LeaseState>;
    /// Sets the terminal state of an import and of its unfinished tables.
    fn terminal(
        &mut self,
        import: &ImportRecord,
        status: ImportStatus,
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// Holds the workspace's creations back until commit, so that import numbers have no
    /// gaps and an idempotency key makes one import even when two requests bring it together.
    fn serialize_creations(&mut self, workspace_id: Uuid) -> StoreResult<()>;
    /// What an idempotency key of the workspace was first used for.
    fn idempotency(
        &mut self,
        workspace_id: Uuid,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
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
    /// Appends the event that tells the import reached `status`.
    fn announce(&mut self, workspace_id: Uuid, id: Uuid, status: ImportStatus) -> StoreResult<()> {
        let data = serde_json::json!({"status": status.as_str()});
        self.event(workspace_id, id, status.event_type(), &data)
    }
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

/// Writes the [`Apply`] methods a backend answers with its own functions of the same names
/// (`first`, `find_idempotency`, `check_lease`, `set_terminal`, `get_locked`, `get`, `get_any`,
/// `append_event`, `later_conflict`, `live_conflict`), inside its `impl Apply` in the module
/// that has them in scope.
macro_rules! apply_by_name {
    () => {
        fn flag(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Option<bool>> {
            first(self, sql, args)
        }

        fn number(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Option<i64>> {
            first(self, sql, args)
        }

        fn lease(
            &mut self,
            claim: &$crate::store::Claim,
        ) -> StoreResult<$crate::store::LeaseState> {
            check_lease(self, claim.import.id, claim.token, claim.lease_ms)
        }

        fn terminal(
            &mut self,
            import: &ImportRecord,
            status: $crate::model::ImportStatus,
            error: Option<&str>,
        ) -> StoreResult<()> {
            set_terminal(self, import, status, error)
        }

        fn idempotency(
            &mut self,
            workspace_id: Uuid,
            key: &str,
        ) -> StoreResult<Option<$crate::store::IdempotencyRecord>> {
            find_idempotency(self, workspace_id, key)
        }

        fn import_locked(&mut self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord> {
            get_locked(self, workspace_id, id)
        }

        fn import(&mut self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord> {
            get(self, workspace_id, id)
        }

        fn import_any(&mut self, id: Uuid) -> StoreResult<ImportRecord> {
            get_any(self, id)
        }

        fn event(
            &mut self,
            workspace_id: Uuid,
            id: Uuid,
            kind: &str,
            data: &serde_json::Value,
        ) -> StoreResult<()> {
            append_event(*self, workspace_id, id, kind, data)
        }

        fn rollback_conflict(
            &mut self,
            import: &ImportRecord,
        ) -> StoreResult<Option<(String, i64)>> {
            match later_conflict(self, import)? {
                Some(c) => Ok(Some(c)),
                None => live_conflict(self, import),
            }
        }
    };
}
pub(crate) use apply_by_name;

/// The current time at the precision timestamps are stored with (milliseconds), so that
/// what a write answers equals what later reads return.
pub(crate) fn now() -> OffsetDateTime {
    ms(OffsetDateTime::now_utc())
}

/// A time cut to milliseconds: filters compare at the precision the SQLite backend keeps.
pub(crate) fn ms(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

/// Creates an import with its tables (or finds the one its idempotency key made).
pub(crate) fn create(mut tx: impl Apply, new: &NewImport) -> StoreResult<CreateOutcome> {
    tx.serialize_creations(new.workspace_id)?;
    if let Some(idem) = &new.idempotency
        && let Some(found) = tx.idempotency(new.workspace_id, &idem.key)?
    {
        return Ok(CreateOutcome::Replayed(found));
    }
    let number = tx
        .number(
            "UPDATE intake_workspaces SET next_import_number = next_import_number + 1
             WHERE id = $1 RETURNING next_import_number - 1",
            &[Arg::Id(new.workspace_id)],
        )?
        .ok_or(StoreError::NotFound("workspace"))?;
    let at = now();
    let step = match new.status {
        ImportStatus::New => Step::Waiting,
        ImportStatus::Queued => Step::Queued,
        _ => Step::Done,
    };
    let total: u64 = new.inputs.iter().filter_map(|i| i.file_size).sum();
    let terminal = new.status.is_terminal();
    tx.run(
        "INSERT INTO intake_imports (id, workspace_id, number, status, step, source, mode,
         on_error, max_errors, dry_run, cleanup_records, reference, reference_origin, metadata,
         note, platform, error, bytes_total, created_at, updated_at, completed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
         $18, $19, $19, $20)",
        &[
            Arg::Id(new.id),
            Arg::Id(new.workspace_id),
            Arg::Int(number),
            Arg::Text(Some(new.status.as_str())),
            Arg::Text(Some(step.as_str())),
            Arg::Text(Some(new.source.as_str())),
            Arg::Text(Some(new.mode.as_str())),
            Arg::Text(Some(new.on_error.as_str())),
            Arg::MaybeInt(new.max_errors.map(|v| v as i64)),
            Arg::Bool(new.dry_run),
            Arg::Bool(new.cleanup_records),
            Arg::Text(new.reference.as_deref()),
            Arg::Text(new.reference_origin.as_deref()),
            Arg::Json(Some(&new.metadata)),
            Arg::Text(new.note.as_deref()),
            Arg::Text(new.platform.as_deref()),
            Arg::Text(new.error.as_deref()),
            Arg::Int(total as i64),
            Arg::Time(Some(at)),
            Arg::Time(terminal.then_some(at)),
        ],
    )?;
    for (pos, input) in new.inputs.iter().enumerate() {
        tx.run(
            "INSERT INTO intake_import_tables (import_id, position, table_name, status, format,
             options, blob_key, file_name, file_size, bytes_total, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                Arg::Id(new.id),
                Arg::Int(pos as i64),
                Arg::Text(Some(&input.table)),
                Arg::Text(Some(new.status.as_str())),
                Arg::Text(Some(&input.format)),
                Arg::Json(Some(&input.options)),
                Arg::Text(input.blob_key.as_deref()),
                Arg::Text(input.file_name.as_deref()),
                Arg::MaybeInt(input.file_size.map(|v| v as i64)),
                Arg::Int(input.file_size.unwrap_or(0) as i64),
                Arg::Text(new.error.as_deref().filter(|_| terminal)),
            ],
        )?;
    }
    if let Some(idem) = &new.idempotency {
        tx.run(
            "INSERT INTO intake_idempotency (workspace_id, key, fingerprint, import_id, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                Arg::Id(new.workspace_id),
                Arg::Text(Some(&idem.key)),
                Arg::Text(Some(&idem.fingerprint)),
                Arg::Id(new.id),
                Arg::Time(Some(at)),
            ],
        )?;
    }
    tx.announce(new.workspace_id, new.id, new.status)?;
    Ok(CreateOutcome::Created(Box::new(tx.import_any(new.id)?)))
}

/// Cancels an import at once, or asks its worker to stop, as the model decides.
pub(crate) fn request_cancel(
    mut tx: impl Apply,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<ImportRecord> {
    let import = tx.import_locked(workspace_id, id)?;
    match import.lifecycle().cancel()? {
        CancelAction::CancelNow => {
            tx.terminal(&import, ImportStatus::Cancelled, None)?;
        }
        CancelAction::AskWorker => {
            tx.run(
                "UPDATE intake_imports SET cancel_requested = true, updated_at = $2 WHERE id = $1",
                &[Arg::Id(id), Arg::Time(Some(now()))],
            )?;
        }
    }
    tx.import(workspace_id, id)
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
        &[Arg::Id(id), Arg::Time(Some(now()))],
    )?;
    tx.announce(workspace_id, id, ImportStatus::RollingBack)?;
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
        &[Arg::Id(id), Arg::Int(total as i64), Arg::Time(Some(now()))],
    )?;
    tx.announce(workspace_id, id, ImportStatus::Queued)?;
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
            Arg::Json(Some(&metadata)),
            Arg::Time(Some(now())),
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
    let at = Arg::Time(Some(now()));
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
            Arg::Json(Some(options)),
        ],
    )?;
    Ok(())
}

/// Records an inference pass's progress (and, at its end, the input's options).
pub(crate) fn note_inference(
    mut tx: impl Apply,
    claim: &Claim,
    position: u32,
    bytes_read: u64,
    options: Option<&serde_json::Value>,
) -> StoreResult<LeaseState> {
    let lease = tx.lease(claim)?;
    tx.run(
        "UPDATE intake_import_tables SET bytes_read = $3, options = coalesce($4, options)
         WHERE import_id = $1 AND position = $2",
        &[
            Arg::Id(claim.import.id),
            Arg::Int(i64::from(position)),
            Arg::Int(bytes_read as i64),
            Arg::Json(options),
        ],
    )?;
    Ok(lease)
}

/// Records that a worker starts (or resumes) one table of its import.
pub(crate) fn start_table(
    mut tx: impl Apply,
    claim: &Claim,
    position: u32,
    start: &TableStart,
) -> StoreResult<()> {
    tx.lease(claim)?;
    let at = now();
    let header = start
        .header
        .as_ref()
        .map(|h| serde_json::to_value(h).unwrap_or_default());
    let id = claim.import.id;
    let position = i64::from(position);
    let keys = [Arg::Id(id), Arg::Int(position)];
    let first_start = tx
        .flag(
            "SELECT started_at IS NULL FROM intake_import_tables WHERE import_id = $1 AND position = $2",
            &keys,
        )?
        .ok_or(StoreError::NotFound("import table"))?;
    tx.run(
        "UPDATE intake_import_tables SET status = 'processing', header = coalesce(header, $3),
         bytes_total = $4, started_at = coalesce(started_at, $5)
         WHERE import_id = $1 AND position = $2",
        &[
            Arg::Id(id),
            Arg::Int(position),
            Arg::Json(header.as_ref()),
            Arg::Int(start.bytes_total as i64),
            Arg::Time(Some(at)),
        ],
    )?;
    // Warnings are counted once, at the table's first start, not again on resume.
    if first_start && !start.warnings.is_empty() {
        let n = start.warnings.len() as i64;
        tx.run(
            "UPDATE intake_import_tables SET warnings = warnings + $3
             WHERE import_id = $1 AND position = $2",
            &[Arg::Id(id), Arg::Int(position), Arg::Int(n)],
        )?;
        tx.run(
            "UPDATE intake_imports SET warnings = warnings + $2 WHERE id = $1",
            &[Arg::Id(id), Arg::Int(n)],
        )?;
        for w in &start.warnings {
            tx.event(
                claim.import.workspace_id,
                id,
                "import.warning",
                &serde_json::json!({"table_position": position, "message": w}),
            )?;
        }
    }
    if first_start {
        tx.event(
            claim.import.workspace_id,
            id,
            "table.started",
            &serde_json::json!({"table_position": position}),
        )?;
    }
    Ok(())
}

/// Records that a worker finished one table of its import.
pub(crate) fn finish_table(
    mut tx: impl Apply,
    claim: &Claim,
    position: u32,
    end: &TableEnd,
) -> StoreResult<()> {
    tx.lease(claim)?;
    mark_table_finished(
        tx,
        claim.import.workspace_id,
        claim.import.id,
        position,
        end,
    )
}

/// Ends a table whose clean-up destroyed `destroyed` rows (announced when there were any),
/// in the transaction of that clean-up.
pub(crate) fn finish_cleaned_table(
    mut tx: impl Apply,
    workspace_id: Uuid,
    import_id: Uuid,
    position: u32,
    end: &TableEnd,
    destroyed: u64,
) -> StoreResult<u64> {
    if destroyed > 0 {
        tx.event(
            workspace_id,
            import_id,
            "table.cleaned_up",
            &serde_json::json!({"table_position": position, "destroyed": destroyed}),
        )?;
    }
    let end = TableEnd {
        destroyed,
        ..end.clone()
    };
    mark_table_finished(tx, workspace_id, import_id, position, &end)?;
    Ok(destroyed)
}

/// Records the end of one table of an import (its status, inputs, rows destroyed), in the
/// caller's transaction: the writer does it in the transaction of its last change, so that
/// no crash can leave a table changed but not finished.
pub(crate) fn mark_table_finished(
    mut tx: impl Apply,
    workspace_id: Uuid,
    import_id: Uuid,
    position: u32,
    end: &TableEnd,
) -> StoreResult<()> {
    let position = i64::from(position);
    let prev_destroyed = tx
        .number(
            "SELECT destroyed FROM intake_import_tables WHERE import_id = $1 AND position = $2",
            &[Arg::Id(import_id), Arg::Int(position)],
        )?
        .ok_or(StoreError::NotFound("import table"))?;
    let destroyed_delta = end.destroyed as i64 - prev_destroyed;
    let at = now();
    tx.run(
        "UPDATE intake_import_tables SET status = $3, inputs = $4, destroyed = $5, error = $6,
         completed_at = $7, bytes_read = bytes_total WHERE import_id = $1 AND position = $2",
        &[
            Arg::Id(import_id),
            Arg::Int(position),
            Arg::Text(Some(end.status.as_str())),
            Arg::MaybeInt(end.inputs.map(|v| v as i64)),
            Arg::Int(end.destroyed as i64),
            Arg::Text(end.error.as_deref()),
            Arg::Time(Some(at)),
        ],
    )?;
    tx.run(
        "UPDATE intake_imports SET destroyed = destroyed + $2,
         inputs = (SELECT CASE WHEN count(inputs) = count(*) THEN CAST(sum(inputs) AS bigint) END
                   FROM intake_import_tables WHERE import_id = $1),
         updated_at = $3 WHERE id = $1",
        &[
            Arg::Id(import_id),
            Arg::Int(destroyed_delta),
            Arg::Time(Some(at)),
        ],
    )?;
    tx.event(
        workspace_id,
        import_id,
        "table.finished",
        &serde_json::json!({"table_position": position, "status": end.status.as_str()}),
    )
}

/// Ends a worker's import with its final status.
pub(crate) fn finish(mut tx: impl Apply, claim: &Claim, end: &ImportEnd) -> StoreResult<()> {
    tx.lease(claim)?;
    let import = tx.import_any(claim.import.id)?;
    // What a finished or cancelled import wrote can be rolled back until then.
    if end.status != ImportStatus::RolledBack {
        tx.run(
            "UPDATE intake_imports SET rollback_until = $2 WHERE id = $1",
            &[Arg::Id(import.id), Arg::Time(end.rollback_until.map(ms))],
        )?;
    }
    if !matches!(
        end.status,
        ImportStatus::Cancelled | ImportStatus::RolledBack
    ) {
        tx.run(
            "UPDATE intake_imports SET bytes_read = bytes_total WHERE id = $1",
            &[Arg::Id(import.id)],
        )?;
    }
    tx.terminal(&import, end.status, end.error.as_deref())
}

/// Records the step a worker's import is at (and an error it met, if any).
pub(crate) fn set_step(
    mut tx: impl Apply,
    claim: &Claim,
    step: Step,
    error: Option<&str>,
) -> StoreResult<()> {
    tx.lease(claim)?;
    tx.run(
        "UPDATE intake_imports SET step = $2, updated_at = $3, error = coalesce($4, error)
         WHERE id = $1",
        &[
            Arg::Id(claim.import.id),
            Arg::Text(Some(step.as_str())),
            Arg::Time(Some(now())),
            Arg::Text(error),
        ],
    )?;
    Ok(())
}
