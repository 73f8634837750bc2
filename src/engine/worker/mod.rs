//! One worker step: claim an import, run its tables through the pipeline, end it. The
//! table's load is in `table`, one pass over a source in `pass` (its parser in
//! `read_ahead`), undoing in `rollback`, and the lease renewal a blocking loop relies on in
//! `lease`.

mod lease;
mod pass;
mod read_ahead;
mod rollback;
mod table;

use tokio::sync::watch;

use super::Engine;
use super::pause::PausePoint;
use crate::model::{ImportStatus, Mode, OnError, Step};
use crate::store::{
    BatchWriter, Claim, ImportEnd, ImportTableRecord, StoreError, TableEnd, WritePlan,
};
use table::TableOutcome;

/// What a worker step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// It claimed an import and worked on it.
    Worked,
    /// There was nothing to do.
    Idle,
}

/// The first wait before an import whose database went away is run again; it doubles at
/// each attempt up to [`OUTAGE_MOST_DELAY`].
const OUTAGE_FIRST_DELAY: std::time::Duration = std::time::Duration::from_millis(200);
const OUTAGE_MOST_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

impl Engine {
    /// Claims one runnable import and works on it until it ends or must be left.
    pub async fn run_once(
        &self,
        worker: &str,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Ran, StoreError> {
        let Some(claim) = self
            .store
            .claim_import(worker, self.lease_ms(), self.config.per_workspace)
            .await?
        else {
            return Ok(Ran::Idle);
        };
        // Batches renew the lease as they commit; the heartbeat keeps it while no batch
        // commits (a source being fetched, a long swap), so that another process does not
        // take over an import this one is still working on.
        let import = &claim.import;
        tracing::info!(
            import = %import.id,
            workspace = %import.workspace_id,
            number = import.number,
            tables = %table_names(import),
            step = import.step.as_str(),
            worker,
            "import claimed"
        );
        metrics::counter!("intake_imports_claimed_total").increment(1);
        if !matches!(import.step, Step::Queued) {
            metrics::counter!("intake_imports_resumed_total").increment(1);
        }
        let heartbeat = self.spawn_heartbeat(&claim);
        self.config.pauses.pause_async(PausePoint::Claimed).await;
        let ran = self.run_through_outages(&claim, shutdown).await;
        heartbeat.abort();
        match ran {
            Ok(()) | Err(StoreError::LeaseLost) => Ok(Ran::Worked),
            Err(e) => {
                // An error that would come back at every retry must not keep the import (and
                // its workspace's slot) busy forever: the import ends failed, saying why.
                let why = failure_reason(&e);
                let wrote = !import.dry_run && import.status != ImportStatus::RollingBack;
                // An abort or atomic import writes all or nothing: what it committed before
                // the error is undone now, when the database lets it (a full disk gives back
                // its reserve for it). Else it ends failed with its changes left to roll back.
                if wrote && matches!(import.on_error, OnError::Abort | OnError::Atomic) {
                    match self.undo_failed(&claim, &e).await {
                        Ok(()) => return Err(e),
                        Err(e2) => tracing::warn!(
                            error = %e2,
                            import = %import.id,
                            "the changes of a failed import could not be undone; it can be rolled back"
                        ),
                    }
                }
                let end = ImportEnd {
                    status: ImportStatus::Failed,
                    error: Some(why),
                    rollback_until: wrote
                        .then(|| time::OffsetDateTime::now_utc() + self.config.retention),
                };
                match self.finish_failed(&claim, &end, shutdown).await {
                    // Ended for good: its sources are not needed any more.
                    Ok(()) => {
                        self.log_ended(&claim).await;
                        self.delete_sources(import).await
                    }
                    Err(e2) => tracing::error!(
                        error = %e2,
                        import = %import.id,
                        "could not end a failing import; it resumes from its checkpoint once its lease runs out"
                    ),
                }
                Err(e)
            }
        }
    }

    /// Runs a claimed import; when the database goes away (a lost connection, a restart),
    /// waits with capped exponential backoff and runs it again from what the database
    /// holds: its step and each table's last committed checkpoint, as a worker resuming it
    /// after a crash would (the lease it still holds fences any other worker). Gives up
    /// (`Unavailable`) when the database stays away for `outage_limit` without the import
    /// moving on.
    async fn run_through_outages(
        &self,
        claim: &Claim,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let mut claim = claim.clone();
        let mut away_since: Option<std::time::Instant> = None;
        let mut delay = OUTAGE_FIRST_DELAY;
        let mut progress = claim.import.counts.processed;
        loop {
            let e = match self.run_import(&claim, shutdown).await {
                Err(e) if e.is_unavailable() => e,
                other => return other,
            };
            let mut shutdown = shutdown.clone();
            let import = loop {
                let since = *away_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= self.config.outage_limit {
                    return Err(StoreError::Unavailable(format!(
                        "the database stayed unreachable for more than {} s: {e}",
                        self.config.outage_limit.as_secs()
                    )));
                }
                tracing::warn!(
                    error = %e,
                    import = %claim.import.id,
                    retry_in_ms = delay.as_millis() as u64,
                    "the database is unavailable; the import goes on from its last checkpoint once it is back"
                );
                // Left as it is on a shutdown: the next start resumes it from its checkpoint.
                if !back_off(&mut delay, &mut shutdown).await {
                    return Ok(());
                }
                let import = &claim.import;
                match self.store.get_import(import.workspace_id, import.id).await {
                    Ok(now) => break now,
                    Err(e) if e.is_unavailable() => {}
                    Err(e) => return Err(e),
                }
            };
            tracing::info!(
                import = %import.id,
                processed = import.counts.processed,
                away_ms = away_since.map_or(0, |t| t.elapsed().as_millis() as u64),
                "the database is back; the import goes on from its last checkpoint"
            );
            // Moving on since the last outage starts the count of the next one afresh.
            if import.counts.processed > progress {
                away_since = None;
                delay = OUTAGE_FIRST_DELAY;
            }
            progress = import.counts.processed;
            claim = Claim { import, ..claim };
        }
    }

    /// Records a failed import's end. When the database cannot take it for now (a full
    /// disk, an outage), tries again with capped backoff for a while, so that the import
    /// does not stay `processing` with nobody working on it.
    async fn finish_failed(
        &self,
        claim: &Claim,
        end: &ImportEnd,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut delay = OUTAGE_FIRST_DELAY;
        let mut shutdown = shutdown.clone();
        loop {
            match self.store.finish_import(claim, end).await {
                // The space kept in reserve is for this: the end is recorded at once.
                Err(StoreError::StorageFull(_)) if self.store.release_reserve() => {}
                Err(e @ (StoreError::StorageFull(_) | StoreError::Unavailable(_)))
                    if started.elapsed() < self.config.outage_limit =>
                {
                    tracing::warn!(error = %e, import = %claim.import.id, "the end of a failed import could not be recorded yet; retrying");
                    if !back_off(&mut delay, &mut shutdown).await {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    /// The lease, in the store's unit.
    pub(crate) fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn spawn_heartbeat(&self, claim: &Claim) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let claim = claim.clone();
        let every = self.config.lease / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = store.renew_lease(&claim, claim.lease_ms).await {
                    tracing::debug!(error = %e, import = %claim.import.id, "lease not renewed");
                    if matches!(e, StoreError::LeaseLost) {
                        return;
                    }
                }
            }
        })
    }

    #[tracing::instrument(name = "import", skip_all, fields(import = %claim.import.id))]
    async fn run_import(
        &self,
        claim: &Claim,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let import = &claim.import;
        if import.status == ImportStatus::RollingBack {
            return self.run_rollback(claim).await;
        }
        if import.step == Step::Reverting {
            return self.revert_all(claim, None).await;
        }
        if import.step == Step::Queued {
            self.store
                .append_event(
                    import.workspace_id,
                    import.id,
                    ImportStatus::Processing.event_type(),
                    &serde_json::json!({}),
                )
                .await?;
        }
        if import.cancel_requested {
            return self.end(claim, ImportStatus::Cancelled, None).await;
        }
        let mut any_invalid = false;
        for table in &import.tables {
            if table.status.is_terminal() {
                any_invalid |= table.counts.invalid > 0;
                continue;
            }
            match self.run_table(claim, table, shutdown).await? {
                TableOutcome::Done { invalid } => any_invalid |= invalid > 0,
                TableOutcome::Cancelled => {
                    return self.end(claim, ImportStatus::Cancelled, None).await;
                }
                TableOutcome::Failed(why)
                    if import.tables.len() > 1
                        && matches!(import.on_error, OnError::Abort | OnError::Atomic) =>
                {
                    return self.revert_all(claim, Some(why)).await;
                }
                TableOutcome::Failed(why) => {
                    return self.fail(claim, vec![table.position], why).await;
                }
                TableOutcome::Interrupted => return Ok(()),
            }
        }
        let status = if any_invalid {
            ImportStatus::PartiallyComplete
        } else {
            ImportStatus::Complete
        };
        self.end(claim, status, None).await
    }

    async fn end(
        &self,
        claim: &Claim,
        status: ImportStatus,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let import = &claim.import;
        // An import that wrote nothing (a dry run, or one whose changes were undone) has
        // nothing to roll back.
        let reverted = status == ImportStatus::Failed
            && matches!(import.on_error, OnError::Abort | OnError::Atomic);
        let rollback_until = (!import.dry_run && !reverted)
            .then(|| time::OffsetDateTime::now_utc() + self.config.retention);
        self.store
            .finish_import(
                claim,
                &ImportEnd {
                    status,
                    error,
                    rollback_until,
                },
            )
            .await?;
        self.log_ended(claim).await;
        // The sources are not needed once the import has ended.
        self.delete_sources(import).await;
        Ok(())
    }

    /// One log line for an import that ended: its outcome, counts and duration.
    async fn log_ended(&self, claim: &Claim) {
        let import = &claim.import;
        let ended = match self.store.get_import(import.workspace_id, import.id).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::warn!(error = %e, import = %import.id, "import ended (its record could not be read back)");
                return;
            }
        };
        let duration_ms = match (ended.started_at, ended.completed_at) {
            (Some(start), Some(end)) => (end - start).whole_milliseconds(),
            _ => 0,
        };
        let c = &ended.counts;
        let status = ended.status.as_str();
        metrics::counter!("intake_imports_ended_total", "status" => status).increment(1);
        metrics::histogram!("intake_import_duration_seconds", "status" => status)
            .record(duration_ms as f64 / 1000.0);
        tracing::info!(
            import = %ended.id,
            workspace = %ended.workspace_id,
            number = ended.number,
            tables = %table_names(&ended),
            status,
            processed = c.processed,
            created = c.created,
            updated = c.updated,
            unchanged = c.unchanged,
            invalid = c.invalid,
            duration_ms,
            error = ended.error.as_deref().unwrap_or(""),
            "import ended"
        );
    }

    /// Deletes the stored sources of an import that has ended.
    async fn delete_sources(&self, import: &crate::store::ImportRecord) {
        for key in import.tables.iter().filter_map(|t| t.blob_key.as_deref()) {
            if let Err(e) = self.blobs.delete(key).await {
                tracing::warn!(error = %e, key, "could not delete a finished import's source");
            }
        }
    }

    /// One table of the claimed import as the store has it now (its last checkpoint and
    /// counts).
    async fn table_record(
        &self,
        claim: &Claim,
        position: u32,
    ) -> Result<ImportTableRecord, StoreError> {
        let import = &claim.import;
        self.store
            .get_import(import.workspace_id, import.id)
            .await?
            .tables
            .into_iter()
            .find(|t| t.position == position)
            .ok_or(StoreError::NotFound("import table"))
    }

    /// The schema of an import's table, or None when the table (or workspace) is gone.
    async fn table_schema(
        &self,
        claim: &Claim,
        table: &str,
    ) -> Result<Option<crate::model::TableSchema>, StoreError> {
        let ws_id = claim.import.workspace_id.to_string();
        let Some(ws) = self.store.find_workspace(&ws_id).await? else {
            return Ok(None);
        };
        match self.store.get_table(&ws, table).await {
            Ok(t) => Ok(Some(t.schema)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs a writer operation off the async runtime.
    async fn with_writer(
        &self,
        mut writer: Box<dyn BatchWriter>,
        op: fn(&mut dyn BatchWriter) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        tokio::task::spawn_blocking(move || op(writer.as_mut()))
            .await
            .map_err(|e| StoreError::Database(format!("writer task failed: {e}")))?
    }

    /// Ends the given tables, then the import, as failed.
    async fn fail(
        &self,
        claim: &Claim,
        positions: Vec<u32>,
        why: String,
    ) -> Result<(), StoreError> {
        for position in positions {
            let end = TableEnd {
                status: ImportStatus::Failed,
                inputs: None,
                destroyed: 0,
                error: Some(why.clone()),
            };
            self.store.finish_table(claim, position, &end).await?;
        }
        self.end(claim, ImportStatus::Failed, Some(why)).await
    }

    /// A writer of the claimed import into one of its tables.
    pub(super) fn open_writer(
        &self,
        claim: &Claim,
        table: &ImportTableRecord,
        schema: &crate::model::TableSchema,
        mode: Mode,
    ) -> Result<Box<dyn BatchWriter>, StoreError> {
        self.store.open_writer(
            claim,
            WritePlan {
                position: table.position,
                schema: schema.clone(),
                mode,
                dry_run: claim.import.dry_run,
                max_stored_errors: self.config.max_stored_errors,
            },
        )
    }
}

/// Waits `delay`, then doubles it up to [`OUTAGE_MOST_DELAY`]; false when the process shuts
/// down first.
async fn back_off(delay: &mut std::time::Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(*delay) => {}
        _ = shutdown.changed() => return false,
    }
    *delay = (*delay * 2).min(OUTAGE_MOST_DELAY);
    true
}

/// Why an import that stopped on an error failed, as its `error` says: a full disk and a
/// database that stayed away start with their error code, so that clients can tell them
/// from the rest.
fn failure_reason(e: &StoreError) -> String {
    match e {
        StoreError::StorageFull(cause) => format!(
            "storage_full: the disk holding the database is full ({cause}); the batch being \
             written was rolled back, and the rows before it stay (roll the import back to \
             undo them, or free some space and send the file again)"
        ),
        StoreError::Unavailable(cause) => {
            format!("database_unavailable: the import stopped at its last checkpoint: {cause}")
        }
        e => format!("the import stopped on an error: {e}"),
    }
}

/// The tables an import loads, for log lines: `orders,customers`.
fn table_names(import: &crate::store::ImportRecord) -> String {
    let names: Vec<&str> = import.tables.iter().map(|t| t.table.as_str()).collect();
    names.join(",")
}
