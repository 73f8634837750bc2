//! One worker step: claim an import, run its tables through the pipeline, end it.
//! Reading+validating and writing run on two threads joined by a small bounded channel, so
//! parsing and the database use different cores and memory stays bounded.

use std::sync::mpsc::sync_channel;

use tokio::sync::watch;

use super::Engine;
use super::create_table::{Creation, Input};
use super::mapper::{map_fields, map_keys, unknown_fields_warning};
use super::options::InputOptions;
use super::reader::{Checkpoint, Format, ReaderOptions, SourceReader};
use super::validator::{Checked, Validator};
use crate::background::{self, Share};
use crate::model::{ImportStatus, Mode, OnError, Step};
use crate::store::{
    Batch, BatchOutcome, BatchWriter, Claim, ImportEnd, ImportTableRecord, StoreError, TableEnd,
    TableStart, WritePlan,
};

/// What a worker step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// It claimed an import and worked on it.
    Worked,
    /// There was nothing to do.
    Idle,
}

/// How many times in a row a table's pass may be sent again from the same checkpoint.
const MAX_REPLAYS: u32 = 5;

/// The first wait before an import whose database went away is run again; it doubles at
/// each attempt up to [`OUTAGE_MOST_DELAY`].
const OUTAGE_FIRST_DELAY: std::time::Duration = std::time::Duration::from_millis(200);
const OUTAGE_MOST_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// Row errors an atomic import's validation pass holds in memory (about 70 MB of wide rows)
/// until it records them in one commit; past it, errors are counted, not stored.
const VALIDATION_ERRORS_KEPT: u64 = 100_000;

/// How one table's load ended.
enum TableOutcome {
    Done {
        invalid: u64,
    },
    Failed(String),
    Cancelled,
    /// The process is shutting down or lost the lease: leave the import to be resumed.
    Interrupted,
}

/// How the pipeline over one source ended.
struct PassEnd {
    records: u64,
    invalid: u64,
    stop: Option<Stop>,
    read_error: Option<String>,
    /// The writer rolled back batches it had not committed: the pass must run again from
    /// the table's last checkpoint.
    replay: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    Shutdown,
    TooManyErrors,
}

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

    /// Undoes every change of an all-or-nothing import that stopped on `error`, then ends it
    /// failed. The `reverting` step is recorded first, so that a worker resuming a killed
    /// undo finishes it.
    async fn undo_failed(&self, claim: &Claim, error: &StoreError) -> Result<(), StoreError> {
        if matches!(error, StoreError::StorageFull(_)) {
            self.store.release_reserve();
        }
        let why = undone_reason(error, claim.import.on_error);
        self.store
            .set_step(claim, Step::Reverting, Some(&why))
            .await?;
        self.revert_all(claim, Some(why)).await
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

    /// Undoes a finished import table by table (each in one transaction), then ends it
    /// `rolled_back`. A worker that resumes a killed rollback skips the tables already done.
    #[tracing::instrument(name = "rollback", skip_all, fields(import = %claim.import.id))]
    async fn run_rollback(&self, claim: &Claim) -> Result<(), StoreError> {
        let import = &claim.import;
        for table in import.tables.iter().rev() {
            if table.status == ImportStatus::RolledBack {
                continue;
            }
            // A deleted table has nothing left to undo.
            let Some(schema) = self.table_schema(claim, &table.table).await? else {
                continue;
            };
            let writer = self.open_writer(claim, table, &schema, import.mode)?;
            self.with_writer(writer, |w| w.roll_back()).await?;
        }
        self.store
            .finish_import(
                claim,
                &ImportEnd {
                    status: ImportStatus::RolledBack,
                    error: None,
                    rollback_until: None,
                },
            )
            .await
    }

    /// Undoes every table of an aborted import (after a crash, or when a later table of a
    /// stacked import stops it), then ends it failed.
    #[tracing::instrument(name = "revert", skip_all, fields(import = %claim.import.id))]
    async fn revert_all(&self, claim: &Claim, why: Option<String>) -> Result<(), StoreError> {
        let import = &claim.import;
        for table in &import.tables {
            let Some(schema) = self.table_schema(claim, &table.table).await? else {
                continue;
            };
            let writer = self.open_writer(claim, table, &schema, import.mode)?;
            self.with_writer(writer, |w| w.revert()).await?;
        }
        let why = why
            .or_else(|| import.error.clone())
            .unwrap_or_else(|| "the import was stopped and its changes undone".into());
        let unfinished = import
            .tables
            .iter()
            .filter(|t| !t.status.is_terminal())
            .map(|t| t.position)
            .collect();
        self.fail(claim, unfinished, why).await
    }

    #[tracing::instrument(name = "table", skip_all, fields(table = %table.table))]
    async fn run_table(
        &self,
        claim: &Claim,
        table: &ImportTableRecord,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<TableOutcome, StoreError> {
        let import = &claim.import;
        let Some(ws) = self
            .store
            .find_workspace(&import.workspace_id.to_string())
            .await?
        else {
            return Ok(TableOutcome::Failed(
                "the workspace no longer exists".into(),
            ));
        };
        let mut options: InputOptions =
            serde_json::from_value(table.options.clone()).unwrap_or_default();
        let Some(format) = Format::parse(&table.format) else {
            return Ok(TableOutcome::Failed(format!(
                "unknown source format {:?}",
                table.format
            )));
        };
        let Some(key) = &table.blob_key else {
            return Ok(TableOutcome::Failed("the import has no source file".into()));
        };
        let path = match self.blobs.fetch(key).await {
            Ok(p) => p,
            Err(e) => {
                return Ok(TableOutcome::Failed(format!(
                    "the import's source cannot be read: {e}"
                )));
            }
        };
        let reader_options = ReaderOptions {
            format,
            delimiter: options.delimiter,
            has_header: options.has_header,
            max_field_bytes: self.config.max_field_bytes,
            max_record_bytes: self.config.max_record_bytes,
        };
        let input = Input {
            table,
            workspace: &ws,
            reader_options: &reader_options,
            path: &path,
        };
        let schema = match self.store.get_table(&ws, &table.table).await {
            Ok(t) if options.add_columns => {
                let added = self
                    .add_columns_from_source(claim, &input, t.schema, &mut options, shutdown)
                    .await?;
                match added {
                    Creation::Ready(schema) => schema,
                    Creation::Cancelled => return Ok(TableOutcome::Cancelled),
                    Creation::Interrupted => return Ok(TableOutcome::Interrupted),
                    Creation::Failed(why) => return Ok(TableOutcome::Failed(why)),
                }
            }
            Ok(t) => t.schema,
            Err(StoreError::NotFound(_)) if options.create_table => {
                let created = self
                    .create_table_from_source(claim, &input, &mut options, shutdown)
                    .await?;
                match created {
                    Creation::Ready(schema) => schema,
                    Creation::Cancelled => return Ok(TableOutcome::Cancelled),
                    Creation::Interrupted => return Ok(TableOutcome::Interrupted),
                    Creation::Failed(why) => return Ok(TableOutcome::Failed(why)),
                }
            }
            Err(StoreError::NotFound(_)) => {
                return Ok(TableOutcome::Failed(format!(
                    "table {:?} no longer exists",
                    table.table
                )));
            }
            Err(e) => return Err(e),
        };
        let atomic = import.on_error == OnError::Atomic;
        // An atomic import first checks every row; once that pass found none invalid, the
        // step says so, and a resumed worker goes straight to writing. The step is the
        // import's: in a stacked import it may still say `writing` from the table before,
        // so it speaks for this table only once this table was started.
        let validated = import.step == Step::Writing && table.started_at.is_some();
        // A validation pass records its invalid rows in one commit, then fails the import: a
        // worker resuming after that commit fails it without counting them again.
        if atomic && import.step == Step::Validating && table.counts.invalid > 0 && !import.dry_run
        {
            let writer = self.open_writer(claim, table, &schema, import.mode)?;
            self.with_writer(writer, |w| w.discard()).await?;
            return Ok(TableOutcome::Failed(format!(
                "{} invalid row(s); with on_error=atomic nothing was written",
                table.counts.invalid
            )));
        }
        if atomic && !validated && !import.dry_run {
            self.store.set_step(claim, Step::Validating, None).await?;
            let writer = self.open_writer(claim, table, &schema, import.mode)?;
            let (writer, end) = self
                .pass(
                    claim,
                    table,
                    &schema,
                    &options,
                    &reader_options,
                    &path,
                    writer,
                    false,
                    shutdown,
                    true,
                )
                .await?;
            let outcome = if let Some(why) = end.read_error {
                Some(TableOutcome::Failed(why))
            } else {
                match end.stop {
                    Some(Stop::Cancelled) => Some(TableOutcome::Cancelled),
                    Some(Stop::Shutdown) => return Ok(TableOutcome::Interrupted),
                    _ if end.invalid > 0 => Some(TableOutcome::Failed(format!(
                        "{} invalid row(s); with on_error=atomic nothing was written",
                        end.invalid
                    ))),
                    _ => None,
                }
            };
            if let Some(outcome) = outcome {
                self.with_writer(writer, |w| w.discard()).await?;
                return Ok(outcome);
            }
            drop(writer);
        }
        self.store.set_step(claim, Step::Writing, None).await?;
        let mut writer = self.open_writer(claim, table, &schema, import.mode)?;
        let mut resume = !atomic || validated;
        let mut table = table.clone();
        let mut replays = 0;
        let (mut writer, end) = loop {
            let (w, end) = self
                .pass(
                    claim,
                    &table,
                    &schema,
                    &options,
                    &reader_options,
                    &path,
                    writer,
                    resume,
                    shutdown,
                    false,
                )
                .await?;
            if !end.replay {
                break (w, end);
            }
            // What the writer rolled back is read again from the last checkpoint committed.
            let reloaded = self.table_record(claim, table.position).await?;
            replays = if reloaded.checkpoint == table.checkpoint {
                replays + 1
            } else {
                1
            };
            if replays > MAX_REPLAYS {
                return Err(StoreError::Database(
                    "the table's batches kept being rolled back".into(),
                ));
            }
            writer = w;
            resume = true;
            table = reloaded;
        };
        let undo = matches!(import.on_error, OnError::Abort | OnError::Atomic);
        if let Some(why) = end.read_error {
            if undo {
                self.revert(claim, writer, &why).await?;
            } else {
                self.with_writer(writer, |w| w.discard()).await?;
            }
            return Ok(TableOutcome::Failed(why));
        }
        match end.stop {
            // What a cancelled import wrote stays, but an atomic import writes all or nothing,
            // and a replace that was not swapped in wrote nothing visible.
            Some(Stop::Cancelled) if atomic => {
                self.revert(
                    claim,
                    writer,
                    "cancelled; with on_error=atomic every change was undone",
                )
                .await?;
                return Ok(TableOutcome::Cancelled);
            }
            Some(Stop::Cancelled) => {
                self.with_writer(writer, |w| w.discard()).await?;
                return Ok(TableOutcome::Cancelled);
            }
            Some(Stop::Shutdown) => return Ok(TableOutcome::Interrupted),
            Some(Stop::TooManyErrors) => {
                let why = format!(
                    "stopped after {} invalid row(s) (max_errors is {})",
                    end.invalid,
                    import.max_errors.unwrap_or(0)
                );
                if undo {
                    let why = format!("{why}; every change was undone");
                    self.revert(claim, writer, &why).await?;
                    return Ok(TableOutcome::Failed(why));
                }
                self.with_writer(writer, |w| w.discard()).await?;
                return Ok(TableOutcome::Failed(why));
            }
            None => {}
        }
        if atomic && end.invalid > 0 {
            // A dry run skips the validation pass, so its invalid rows are not only the ones
            // the database refused.
            let why = if import.dry_run {
                format!(
                    "{} invalid row(s); with on_error=atomic nothing would be written",
                    end.invalid
                )
            } else {
                format!(
                    "{} row(s) were rejected by the database; with on_error=atomic every change was undone",
                    end.invalid
                )
            };
            self.revert(claim, writer, &why).await?;
            return Ok(TableOutcome::Failed(why));
        }
        if import.cleanup_records || import.mode == Mode::Replace {
            self.store.set_step(claim, Step::CleaningUp, None).await?;
        }
        let status = if end.invalid > 0 {
            ImportStatus::PartiallyComplete
        } else {
            ImportStatus::Complete
        };
        // The swap or cleanup and the table's end commit together: no crash falls between.
        let table_end = TableEnd {
            status,
            inputs: Some(end.records),
            destroyed: 0,
            error: None,
        };
        tokio::task::spawn_blocking(move || writer.finish(&table_end))
            .await
            .map_err(|e| StoreError::Database(format!("writer task failed: {e}")))??;
        Ok(TableOutcome::Done {
            invalid: end.invalid,
        })
    }

    fn open_writer(
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

    /// Undoes what the import wrote to a table; the reason is stored first, so that a worker
    /// resuming after a crash finishes the undo and ends the import with it.
    async fn revert(
        &self,
        claim: &Claim,
        writer: Box<dyn BatchWriter>,
        why: &str,
    ) -> Result<(), StoreError> {
        self.store
            .set_step(claim, Step::Reverting, Some(why))
            .await?;
        self.with_writer(writer, |w| w.revert()).await
    }

    /// The source fields an import's warnings already named for one table.
    async fn warned_fields(&self, claim: &Claim, position: u32) -> Result<Vec<String>, StoreError> {
        let import = &claim.import;
        let mut fields = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_events(import.workspace_id, import.id, after, 1000)
                .await?;
            for e in &page {
                if e.kind == "import.warning"
                    && e.data["table_position"] == position
                    && let Some(list) = e.data["fields"].as_array()
                {
                    fields.extend(list.iter().filter_map(|f| f.as_str().map(str::to_owned)));
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.id),
                _ => return Ok(fields),
            }
        }
    }

    /// Runs one pass over a source: read, validate, and (unless `validate_only`) write.
    /// A validate-only pass commits nothing unless it finds invalid rows, which it records.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(name = "pass", skip_all, fields(validate_only = validate_only, resume = resume))]
    async fn pass(
        &self,
        claim: &Claim,
        table: &ImportTableRecord,
        schema: &crate::model::TableSchema,
        options: &InputOptions,
        reader_options: &ReaderOptions,
        path: &std::path::Path,
        mut writer: Box<dyn BatchWriter>,
        resume: bool,
        shutdown: &watch::Receiver<bool>,
        validate_only: bool,
    ) -> Result<(Box<dyn BatchWriter>, PassEnd), StoreError> {
        let start = resume
            .then_some(table.checkpoint)
            .filter(|c| c.record > 0 || c.byte_offset > 0);
        let reader = {
            let path = path.to_owned();
            let opts = reader_options.clone();
            let resume_at = start.map(|c| {
                (
                    Checkpoint::from(c),
                    table.header.clone().unwrap_or_default(),
                )
            });
            tokio::task::spawn_blocking(move || SourceReader::open(&path, &opts, resume_at))
                .await
                .map_err(|e| StoreError::Database(format!("reader task failed: {e}")))?
        };
        let mut reader = match reader {
            Ok(r) => r,
            Err(e) => {
                return Ok((
                    writer,
                    PassEnd {
                        records: 0,
                        invalid: 0,
                        stop: None,
                        read_error: Some(e.to_string()),
                        replay: false,
                    },
                ));
            }
        };
        let header: Option<Vec<String>> = reader.header().map(|h| h.to_vec());
        let delimited = matches!(reader_options.format, Format::Csv | Format::Tsv);
        let (fields, keys) = if delimited {
            let header_ref = if reader_options.has_header {
                header.as_deref()
            } else {
                None
            };
            // A header none of whose fields is a column would load rows of nothing but NULLs.
            let mapped = map_fields(schema, options, header_ref).and_then(|m| {
                match header_ref {
                    Some(names) if !m.sources.iter().any(Option::is_some) => {
                        Err(super::mapper::MappingError(format!(
                            "no field of the source matches a column of table {:?} (its fields: {}; its columns: {})",
                            schema.name.as_str(),
                            quoted_list(names.iter().map(String::as_str)),
                            quoted_list(schema.columns.iter().map(|c| c.name.as_str())),
                        )))
                    }
                    _ => Ok(m),
                }
            });
            match mapped {
                Ok(m) => (Some(m), None),
                Err(e) => {
                    return Ok((
                        writer,
                        PassEnd {
                            records: 0,
                            invalid: 0,
                            stop: None,
                            read_error: Some(e.0),
                            replay: false,
                        },
                    ));
                }
            }
        } else {
            match map_keys(schema, options) {
                Ok(k) => (None, Some(k)),
                Err(e) => {
                    return Ok((
                        writer,
                        PassEnd {
                            records: 0,
                            invalid: 0,
                            stop: None,
                            read_error: Some(e.0),
                            replay: false,
                        },
                    ));
                }
            }
        };
        let mut first_warnings = Vec::new();
        if start.is_none() && !validate_only && options.replaced_sequences > 0 {
            first_warnings.push(format!(
                "{} byte sequence(s) of the source are not valid in its encoding and were read \
                 as U+FFFD (\u{FFFD}): check the encoding option",
                options.replaced_sequences
            ));
        }
        if start.is_none()
            && !validate_only
            && let Some(w) = fields
                .as_ref()
                .and_then(|f| unknown_fields_warning(schema.name.as_str(), &f.unknown))
        {
            first_warnings.push(w);
        }
        self.store
            .start_table(
                claim,
                table.position,
                &TableStart {
                    header: header.clone(),
                    bytes_total: reader.bytes_total(),
                    warnings: Vec::new(),
                },
            )
            .await?;
        let mut validator = Validator::new(
            schema.clone(),
            &options.null_values,
            &options.typed_null_values,
            fields,
            keys,
            header.clone().unwrap_or_default(),
        )
        .map_err(StoreError::Invalid)?;

        if start.is_some() && !delimited {
            // Keys already reported before the checkpoint are not reported (or counted) again.
            validator.seed_warned(self.warned_fields(claim, table.position).await?);
        }
        let batch_rows = self.config.batch_rows;
        let batch_bytes = self.config.batch_bytes;
        let (tx, rx) = sync_channel::<Batch>(2);
        let table_name = schema.name.as_str().to_owned();
        let json_source = !delimited;
        let invalid_before = if start.is_some() {
            table.counts.invalid
        } else {
            0
        };
        // The reader enforces `max_errors` row by row, so that no row past the one that
        // passes the limit reaches the writer, whatever the batch size. It starts from the
        // invalid rows counted before the checkpoint (a resumed pass). A validation pass has
        // no limit: it counts every invalid row.
        let error_limit = if validate_only {
            None
        } else {
            claim.import.on_error.error_limit(claim.import.max_errors)
        };
        let parse = background::spawn(
            "intake-read",
            Share::Yield,
            move || -> Result<u64, String> {
                let mut batch = Batch {
                    warnings: first_warnings,
                    ..Batch::default()
                };
                let mut records = 0u64;
                let mut batch_start = reader.checkpoint().byte_offset;
                let pass_start = batch_start;
                let mut invalid_read = invalid_before;
                // A pass resumed after the batch that passed the limit committed reads no
                // further: its empty last batch lets the writer see the limit again.
                let mut over_limit = error_limit.is_some_and(|m| invalid_read > m);
                while !over_limit {
                    let item = match reader.next_item() {
                        None => break,
                        Some(Ok(item)) => item,
                        Some(Err(e)) => return Err(e.to_string()),
                    };
                    records = item.record;
                    if json_source {
                        let unknown = validator.new_unknown_keys(&item);
                        if let Some(w) = unknown_fields_warning(&table_name, &unknown) {
                            batch.warnings.push(w);
                            batch.warned_fields.extend(unknown);
                        }
                    }
                    match validator.check(item) {
                        Checked::Row(row) => batch.rows.push(row),
                        Checked::Invalid(e, key) => {
                            batch.errors.push(e);
                            batch.kept_keys.extend(key);
                            invalid_read += 1;
                            over_limit = error_limit.is_some_and(|m| invalid_read > m);
                        }
                    }
                    // The row that passed the limit ends the last batch: the rows before it
                    // are written, none after it is read.
                    if over_limit {
                        break;
                    }
                    // Wide records make a batch of fewer rows: memory follows bytes, not rows.
                    let cp = reader.checkpoint();
                    if batch.rows.len() + batch.errors.len() >= batch_rows
                        || cp.byte_offset.saturating_sub(batch_start) >= batch_bytes
                    {
                        batch_start = cp.byte_offset;
                        batch.checkpoint = cp.into();
                        batch.bytes_read = cp.byte_offset;
                        if tx.send(std::mem::take(&mut batch)).is_err() {
                            return Ok(records);
                        }
                    }
                }
                let cp = reader.checkpoint();
                records = records.max(cp.record);
                batch.checkpoint = cp.into();
                batch.bytes_read = cp.byte_offset;
                if !validate_only {
                    metrics::counter!("intake_bytes_read_total")
                        .increment(cp.byte_offset.saturating_sub(pass_start));
                }
                let _ = tx.send(batch);
                Ok(records)
            },
        )
        .map_err(|e| StoreError::Database(format!("cannot start the reader: {e}")))?;

        let max_stored_errors = self.config.max_stored_errors;
        let shutdown = shutdown.clone();
        let store = self.store.clone();
        let claim2 = std::sync::Arc::new(claim.clone());
        let handle = tokio::runtime::Handle::current();
        let from = start.unwrap_or_default();
        let write = background::spawn("intake-write", Share::Equal, move || {
            let mut invalid = invalid_before;
            let mut stop = None;
            if !validate_only {
                writer.continue_from(from);
                let mut next = || rx.recv().ok();
                let mut seen = |out: &BatchOutcome| {
                    invalid += out.invalid;
                    metrics::counter!("intake_rows_written_total")
                        .increment(out.created + out.updated + out.unchanged);
                    metrics::counter!("intake_rows_rejected_total").increment(out.invalid);
                    if out.cancel_requested {
                        stop = Some(Stop::Cancelled);
                    }
                    // Rows the database refused (a taken key) are counted here, at the end
                    // of the batch holding them; the reader stops at the rows it rejects.
                    let limit_hit = error_limit.is_some_and(|m| invalid > m);
                    if stop.is_none() && limit_hit {
                        stop = Some(Stop::TooManyErrors);
                    }
                    if stop.is_none() && *shutdown.borrow() {
                        stop = Some(Stop::Shutdown);
                    }
                    stop.is_some()
                };
                return match writer.write_stream(&mut next, &mut seen) {
                    Ok(()) => Ok((writer, invalid, stop, false)),
                    Err(StoreError::Replay) => Ok((writer, invalid, stop, true)),
                    Err(e) => Err((writer, e)),
                };
            }
            // A validation pass keeps only the errors that will be stored; it counts the rest
            // (and the import says its stored errors are fewer than its invalid rows). They
            // wait in memory until the pass ends, hence the bound below the store's cap.
            let keep = max_stored_errors.min(VALIDATION_ERRORS_KEPT) as usize;
            let mut pending_errors: Vec<crate::model::RowError> = Vec::new();
            let mut unstored = 0u64;
            let mut valid = 0u64;
            for mut batch in rx {
                invalid += batch.errors.len() as u64;
                valid += batch.rows.len() as u64;
                let room = keep.saturating_sub(pending_errors.len());
                unstored += batch.errors.len().saturating_sub(room) as u64;
                batch.errors.truncate(room);
                pending_errors.append(&mut batch.errors);
                // Renewing the lease also tells whether a cancel was asked: every batch, so
                // that a cancel stops the pass within a second. It runs on the runtime: a
                // thread this low-priority one started (the store's blocking pool grows from
                // its callers) would keep its priority for good.
                let (store, claim) = (store.clone(), claim2.clone());
                let renewed = handle.block_on(
                    handle.spawn(async move { store.renew_lease(&claim, claim.lease_ms).await }),
                );
                match renewed {
                    Ok(Ok(l)) if l.cancel_requested => stop = Some(Stop::Cancelled),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err((writer, e)),
                    Err(e) => {
                        let e = StoreError::Database(format!("renewing the lease failed: {e}"));
                        return Err((writer, e));
                    }
                }
                if stop.is_none() && *shutdown.borrow() {
                    stop = Some(Stop::Shutdown);
                }
                if stop.is_some() {
                    break;
                }
            }
            // A validation pass that found invalid rows records them (and only them).
            if (!pending_errors.is_empty() || unstored > 0) && stop.is_none() {
                let batch = Batch {
                    errors: pending_errors,
                    unstored_invalid: unstored,
                    checked_valid: valid,
                    ..Batch::default()
                };
                if let Err(e) = writer.write(&batch) {
                    return Err((writer, e));
                }
            }
            Ok((writer, invalid, stop, false))
        })
        .map_err(|e| StoreError::Database(format!("cannot start the writer: {e}")))?;
        let written = write
            .await
            .map_err(|e| StoreError::Database(format!("writer task failed: {e}")))?;
        let read = parse
            .await
            .map_err(|e| StoreError::Database(format!("reader task failed: {e}")))?;
        let (writer, invalid, stop, replay) = match written {
            Ok(w) => w,
            Err((_, e)) => return Err(e),
        };
        let (records, read_error) = match read {
            Ok(n) => (n, None),
            Err(why) => (0, Some(why)),
        };
        Ok((
            writer,
            PassEnd {
                records,
                invalid,
                stop,
                read_error,
                replay,
            },
        ))
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

/// Why an all-or-nothing import that stopped on an error failed, once its changes were
/// undone.
fn undone_reason(e: &StoreError, on_error: OnError) -> String {
    let undone = format!(
        "with on_error={} every change was undone",
        on_error.as_str()
    );
    match e {
        StoreError::StorageFull(cause) => format!(
            "storage_full: the disk holding the database is full ({cause}); {undone} (free \
             some space and send the file again)"
        ),
        StoreError::Unavailable(cause) => {
            format!("database_unavailable: the database went away ({cause}); {undone}")
        }
        e => format!("the import stopped on an error: {e}; {undone}"),
    }
}

/// The tables an import loads, for log lines: `orders,customers`.
fn table_names(import: &crate::store::ImportRecord) -> String {
    let names: Vec<&str> = import.tables.iter().map(|t| t.table.as_str()).collect();
    names.join(",")
}

/// Names as a message lists them: quoted, the first ten, then how many more.
fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let mut shown: Vec<String> = names.iter().take(10).map(|n| format!("{n:?}")).collect();
    if names.len() > 10 {
        shown.push(format!("and {} more", names.len() - 10));
    }
    shown.join(", ")
}
