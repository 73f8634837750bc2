//! One table of a claimed import: its source and schema made ready (the table created or
//! widened from the source when asked), an atomic import's validation pass, the writing
//! passes (replayed from the last checkpoint when the writer rolled batches back), and the
//! table's end as the policies decide it.

use std::path::PathBuf;

use tokio::sync::watch;

use super::super::Engine;
use super::super::create_table::{Creation, Input};
use super::super::options::InputOptions;
use super::super::reader::{Format, ReaderOptions};
use super::pass::{Pass, PassEnd, Stop};
use crate::model::{ImportStatus, Mode, OnError, Step, TableSchema};
use crate::store::{BatchWriter, Claim, ImportTableRecord, StoreError, TableEnd};

/// How many times in a row a table's pass may be sent again from the same checkpoint.
const MAX_REPLAYS: u32 = 5;

/// How one table's load ended.
pub(super) enum TableOutcome {
    /// The table is loaded, with this many invalid rows.
    Done { invalid: u64 },
    /// The table failed, saying why.
    Failed(String),
    /// A cancel was asked.
    Cancelled,
    /// The process is shutting down or lost the lease: leave the import to be resumed.
    Interrupted,
}

/// A table's source, ready to be read into the table of `schema`.
struct TableSource {
    schema: TableSchema,
    options: InputOptions,
    reader_options: ReaderOptions,
    path: PathBuf,
}

impl Engine {
    /// Loads one table of the claimed import from its source.
    #[tracing::instrument(name = "table", skip_all, fields(table = %table.table))]
    pub(super) async fn run_table(
        &self,
        claim: &Claim,
        table: &ImportTableRecord,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<TableOutcome, StoreError> {
        let source = match self.table_source(claim, table, shutdown).await? {
            Ok(source) => source,
            Err(outcome) => return Ok(outcome),
        };
        let pass = Pass {
            engine: self,
            claim,
            schema: &source.schema,
            options: &source.options,
            reader_options: &source.reader_options,
            path: &source.path,
            shutdown,
        };
        pass.load(table).await
    }

    /// The table's source and the schema it loads into (creating the table, or adding
    /// columns to it, from the source when the import asks); the outcome instead when the
    /// table cannot be loaded.
    async fn table_source(
        &self,
        claim: &Claim,
        table: &ImportTableRecord,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Result<TableSource, TableOutcome>, StoreError> {
        let import = &claim.import;
        let Some(ws) = self
            .store
            .find_workspace(&import.workspace_id.to_string())
            .await?
        else {
            return Ok(Err(TableOutcome::Failed(
                "the workspace no longer exists".into(),
            )));
        };
        let mut options: InputOptions =
            serde_json::from_value(table.options.clone()).unwrap_or_default();
        let Some(format) = Format::parse(&table.format) else {
            return Ok(Err(TableOutcome::Failed(format!(
                "unknown source format {:?}",
                table.format
            ))));
        };
        let Some(key) = &table.blob_key else {
            return Ok(Err(TableOutcome::Failed(
                "the import has no source file".into(),
            )));
        };
        let path = match self.blobs.fetch(key).await {
            Ok(p) => p,
            Err(e) => {
                return Ok(Err(TableOutcome::Failed(format!(
                    "the import's source cannot be read: {e}"
                ))));
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
        let creation = match self.store.get_table(&ws, &table.table).await {
            Ok(t) if options.add_columns => {
                self.add_columns_from_source(claim, &input, t.schema, &mut options, shutdown)
                    .await?
            }
            Ok(t) => Creation::Ready(t.schema),
            Err(StoreError::NotFound(_)) if options.create_table => {
                self.create_table_from_source(claim, &input, &mut options, shutdown)
                    .await?
            }
            Err(StoreError::NotFound(_)) => {
                return Ok(Err(TableOutcome::Failed(format!(
                    "table {:?} no longer exists",
                    table.table
                ))));
            }
            Err(e) => return Err(e),
        };
        let schema = match creation {
            Creation::Ready(schema) => schema,
            Creation::Cancelled => return Ok(Err(TableOutcome::Cancelled)),
            Creation::Interrupted => return Ok(Err(TableOutcome::Interrupted)),
            Creation::Failed(why) => return Ok(Err(TableOutcome::Failed(why))),
        };
        Ok(Ok(TableSource {
            schema,
            options,
            reader_options,
            path,
        }))
    }
}

impl Pass<'_> {
    /// Loads the table: an atomic import checks every row first; then the writing passes;
    /// then the table ends as the policies say.
    async fn load(&self, table: &ImportTableRecord) -> Result<TableOutcome, StoreError> {
        let (engine, claim) = (self.engine, self.claim);
        let import = &claim.import;
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
            let writer = self.open_writer(table)?;
            engine.with_writer(writer, |w| w.discard()).await?;
            return Ok(TableOutcome::Failed(format!(
                "{} invalid row(s); with on_error=atomic nothing was written",
                table.counts.invalid
            )));
        }
        if atomic
            && !validated
            && !import.dry_run
            && let Some(outcome) = self.validate_first(table).await?
        {
            return Ok(outcome);
        }
        engine.store.set_step(claim, Step::Writing, None).await?;
        let (writer, end) = self.write_passes(table, !atomic || validated).await?;
        self.settle(writer, end).await
    }

    /// An atomic import's validation pass: the outcome when it ends the table (invalid
    /// rows, a cancel, a shutdown), None when every row is valid.
    async fn validate_first(
        &self,
        table: &ImportTableRecord,
    ) -> Result<Option<TableOutcome>, StoreError> {
        self.engine
            .store
            .set_step(self.claim, Step::Validating, None)
            .await?;
        let writer = self.open_writer(table)?;
        let (writer, end) = self.run(table, writer, false, true).await?;
        let outcome = if let Some(why) = end.read_error {
            TableOutcome::Failed(why)
        } else {
            match end.stop {
                Some(Stop::Cancelled) => TableOutcome::Cancelled,
                Some(Stop::Shutdown) => return Ok(Some(TableOutcome::Interrupted)),
                _ if end.invalid > 0 => TableOutcome::Failed(format!(
                    "{} invalid row(s); with on_error=atomic nothing was written",
                    end.invalid
                )),
                _ => return Ok(None),
            }
        };
        self.engine.with_writer(writer, |w| w.discard()).await?;
        Ok(Some(outcome))
    }

    /// The writing passes: one, or more when the writer rolled batches back, each of which
    /// reads again from the last checkpoint committed.
    async fn write_passes(
        &self,
        table: &ImportTableRecord,
        mut resume: bool,
    ) -> Result<(Box<dyn BatchWriter>, PassEnd), StoreError> {
        let mut writer = self.open_writer(table)?;
        let mut table = table.clone();
        let mut replays = 0;
        loop {
            let (w, end) = self.run(&table, writer, resume, false).await?;
            if !end.replay {
                return Ok((w, end));
            }
            let reloaded = self.engine.table_record(self.claim, table.position).await?;
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
        }
    }

    /// Ends the table as its last pass and the import's policies decide: undone, discarded,
    /// failed, cancelled, or finished (the swap or cleanup committed with the table's end).
    async fn settle(
        &self,
        writer: Box<dyn BatchWriter>,
        end: PassEnd,
    ) -> Result<TableOutcome, StoreError> {
        let (engine, claim) = (self.engine, self.claim);
        let import = &claim.import;
        let atomic = import.on_error == OnError::Atomic;
        let undo = matches!(import.on_error, OnError::Abort | OnError::Atomic);
        if let Some(why) = end.read_error {
            if undo {
                engine.revert(claim, writer, &why).await?;
            } else {
                engine.with_writer(writer, |w| w.discard()).await?;
            }
            return Ok(TableOutcome::Failed(why));
        }
        match end.stop {
            // What a cancelled import wrote stays, but an atomic import writes all or nothing,
            // and a replace that was not swapped in wrote nothing visible.
            Some(Stop::Cancelled) if atomic => {
                let why = "cancelled; with on_error=atomic every change was undone";
                engine.revert(claim, writer, why).await?;
                return Ok(TableOutcome::Cancelled);
            }
            Some(Stop::Cancelled) => {
                engine.with_writer(writer, |w| w.discard()).await?;
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
                    engine.revert(claim, writer, &why).await?;
                    return Ok(TableOutcome::Failed(why));
                }
                engine.with_writer(writer, |w| w.discard()).await?;
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
            engine.revert(claim, writer, &why).await?;
            return Ok(TableOutcome::Failed(why));
        }
        if import.cleanup_records || import.mode == Mode::Replace {
            engine.store.set_step(claim, Step::CleaningUp, None).await?;
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
        let mut writer = writer;
        tokio::task::spawn_blocking(move || writer.finish(&table_end))
            .await
            .map_err(|e| StoreError::Database(format!("writer task failed: {e}")))??;
        Ok(TableOutcome::Done {
            invalid: end.invalid,
        })
    }

    /// A writer into this pass's table, in the import's mode.
    fn open_writer(&self, table: &ImportTableRecord) -> Result<Box<dyn BatchWriter>, StoreError> {
        let mode = self.claim.import.mode;
        self.engine
            .open_writer(self.claim, table, self.schema, mode)
    }
}
