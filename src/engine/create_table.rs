//! The one-step load's first step: a table that does not exist yet is inferred from the whole
//! stored source (step `inferring`), recorded with the import, created, then loaded like any
//! other. The inferred schema is recorded before the table is created, so that a worker
//! resuming after a crash creates the same table instead of inferring again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::Engine;
use super::inference_pass::{self, Progress};
use super::mapper::column_for;
use super::options::InputOptions;
use super::reader::ReaderOptions;
use crate::background::{self, Share};
use crate::model::infer::{Claims, Inference, InferredSchema};
use crate::model::schema::{RawColumn, RawTableSchema};
use crate::model::{ColumnSpec, Mode, Step, TableSchema};
use crate::store::{Claim, ImportTableRecord, StoreError, TableStart, Workspace};

/// How often the inference pass reports its progress and learns of a cancel.
const NOTE_EVERY: Duration = Duration::from_millis(500);

/// The input whose source a table is inferred from.
pub(super) struct Input<'a> {
    pub table: &'a ImportTableRecord,
    pub workspace: &'a Workspace,
    pub reader_options: &'a ReaderOptions,
    pub path: &'a std::path::Path,
}

/// How creating a table from its source ended.
pub(super) enum Creation {
    /// The table exists now (this import created it, or another did meanwhile).
    Ready(TableSchema),
    /// The import was cancelled during the inference pass.
    Cancelled,
    /// The process is stopping: the import is left to be resumed.
    Interrupted,
    /// No table can be made from this source.
    Failed(String),
}

/// How the inference pass over a source ended.
enum PassEnd {
    /// The proposal, and how many bytes of the source were read.
    Inferred(InferredSchema, u64),
    Stopped,
    Unreadable(String),
}

impl Engine {
    /// Infers, records and creates the table of an input with `create_table=true` whose
    /// table does not exist; `options` gains the recorded schema and missing-value tokens.
    pub(super) async fn create_table_from_source(
        &self,
        claim: &Claim,
        input: &Input<'_>,
        options: &mut InputOptions,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Creation, StoreError> {
        let Input {
            table,
            workspace,
            path,
            ..
        } = *input;
        let recorded = match &options.created_schema {
            Some(schema) => schema.clone(),
            None => {
                self.store.set_step(claim, Step::Inferring, None).await?;
                let size = tokio::fs::metadata(path)
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0);
                let start = TableStart {
                    header: None,
                    bytes_total: size,
                    warnings: Vec::new(),
                };
                self.store
                    .start_table(claim, table.position, &start)
                    .await?;
                let (inferred, read) =
                    match self.infer_source(claim, input, options, shutdown).await? {
                        Ok(inferred) => inferred,
                        Err(stopped) => return Ok(stopped),
                    };
                if inferred.columns.is_empty() {
                    return Ok(Creation::Failed(
                        "the source has no fields to make columns of".into(),
                    ));
                }
                if claim.import.mode == Mode::Upsert && inferred.primary_key.is_empty() {
                    return Ok(Creation::Failed(
                        "mode=upsert needs a primary key, and no field of the source is complete and free of repeats".into(),
                    ));
                }
                let schema = inferred.table(&table.table);
                options.created_schema = Some(schema.clone());
                options.typed_null_values = inferred.missing_tokens;
                let stored = serde_json::to_value(&*options)
                    .map_err(|e| StoreError::Database(format!("cannot record options: {e}")))?;
                self.store
                    .note_inference(claim, table.position, read, Some(&stored))
                    .await?;
                schema
            }
        };
        let schema = match serde_json::from_value::<RawTableSchema>(recorded.clone())
            .map_err(|e| e.to_string())
            .and_then(|raw| TableSchema::parse(raw).map_err(|e| e.0))
        {
            Ok(s) => s,
            Err(why) => {
                return Ok(Creation::Failed(format!(
                    "the inferred table cannot be created: {why}"
                )));
            }
        };
        let mut refused = None;
        match self.store.create_table(workspace, &schema).await {
            Ok(_) => {
                let data = serde_json::json!({
                    "table_position": table.position,
                    "table": recorded,
                    "missing_tokens": options.typed_null_values,
                });
                self.store
                    .append_event(
                        claim.import.workspace_id,
                        claim.import.id,
                        "import.table_created",
                        &data,
                    )
                    .await?;
            }
            // Created since the import was queued: by this import before a crash, or by
            // another one. The rows go into the table as it is.
            Err(StoreError::Refused(why)) => refused = Some(why.to_string()),
            Err(e) => return Err(e),
        }
        match self.store.get_table(workspace, &table.table).await {
            Ok(t) => Ok(Creation::Ready(t.schema)),
            // Refused for another reason (a table of that name left in the database by
            // something else), or deleted as soon as created: say which.
            Err(StoreError::NotFound(_)) => Ok(Creation::Failed(refused.unwrap_or_else(|| {
                format!("table {:?} was deleted as it was created", table.table)
            }))),
            Err(e) => Err(e),
        }
    }

    /// Adds to an existing table the fields of an input with `add_columns=true` that match no
    /// column, as nullable columns of the type every value of the source fits. The columns
    /// are recorded with the import before they are added, so a resumed import adds the same.
    pub(super) async fn add_columns_from_source(
        &self,
        claim: &Claim,
        input: &Input<'_>,
        schema: TableSchema,
        options: &mut InputOptions,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Creation, StoreError> {
        let Input {
            table, workspace, ..
        } = *input;
        let added = match &options.added_columns {
            Some(columns) => columns.clone(),
            None => {
                self.store.set_step(claim, Step::Inferring, None).await?;
                let (inferred, read) =
                    match self.infer_source(claim, input, options, shutdown).await? {
                        Ok(inferred) => inferred,
                        Err(stopped) => return Ok(stopped),
                    };
                let proposed = inferred.table(&table.table);
                let new: Vec<serde_json::Value> = inferred
                    .columns
                    .iter()
                    .zip(proposed["columns"].as_array().into_iter().flatten())
                    .filter(|(c, _)| column_for(&schema, options, &c.source).is_none())
                    .map(|(_, json)| {
                        let mut json = json.clone();
                        json["required"] = false.into();
                        json
                    })
                    .collect();
                options.added_columns = Some(new.clone());
                let stored = serde_json::to_value(&*options)
                    .map_err(|e| StoreError::Database(format!("cannot record options: {e}")))?;
                self.store
                    .note_inference(claim, table.position, read, Some(&stored))
                    .await?;
                new
            }
        };
        if added.is_empty() {
            return Ok(Creation::Ready(schema));
        }
        let mut columns = Vec::with_capacity(added.len());
        for json in &added {
            let column = serde_json::from_value::<RawColumn>(json.clone())
                .map_err(|e| e.to_string())
                .and_then(|raw| ColumnSpec::parse(raw).map_err(|e| e.0));
            match column {
                Ok(c) => columns.push(c),
                Err(why) => {
                    return Ok(Creation::Failed(format!(
                        "a new column cannot be added: {why}"
                    )));
                }
            }
        }
        let updated = match self
            .store
            .add_columns(workspace, &table.table, &columns)
            .await
        {
            Ok(t) => t.schema,
            Err(StoreError::NotFound(_)) => {
                return Ok(Creation::Failed(format!(
                    "table {:?} no longer exists",
                    table.table
                )));
            }
            Err(e) => return Err(e),
        };
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let data = serde_json::json!({
            "table_position": table.position,
            "columns": added,
        });
        self.store
            .append_event(
                claim.import.workspace_id,
                claim.import.id,
                "import.columns_added",
                &data,
            )
            .await?;
        tracing::info!(import = %claim.import.id, table = %table.table, columns = ?names, "columns added");
        Ok(Creation::Ready(updated))
    }

    /// The schema inferred from the whole source and the bytes read, or how the import stops
    /// instead.
    async fn infer_source(
        &self,
        claim: &Claim,
        input: &Input<'_>,
        options: &InputOptions,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Result<(InferredSchema, u64), Creation>, StoreError> {
        Ok(
            match self.run_inference(claim, input, options, shutdown).await? {
                PassEnd::Inferred(s, read) => Ok((s, read)),
                PassEnd::Stopped if *shutdown.borrow() => Err(Creation::Interrupted),
                PassEnd::Stopped => Err(Creation::Cancelled),
                PassEnd::Unreadable(why) => Err(Creation::Failed(why)),
            },
        )
    }

    /// Reads the whole source once on a thread of its own, profiling every cell, while this
    /// task reports its progress and watches for a cancel or a shutdown.
    async fn run_inference(
        &self,
        claim: &Claim,
        input: &Input<'_>,
        options: &InputOptions,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<PassEnd, StoreError> {
        let table = input.table;
        let stop = Arc::new(AtomicBool::new(false));
        let bytes_read = Arc::new(AtomicU64::new(0));
        let claims = Claims::whole_source(options.infer_enums);
        let nulls = options.null_values.clone();
        let (path, opts) = (input.path.to_owned(), input.reader_options.clone());
        // A sheet is read as records of its header's fields, so a sheet of a header and no
        // rows shows no field: its columns are its header's, as those of such a CSV file.
        let sheet_header: Vec<String> = options
            .sheet
            .iter()
            .flat_map(|s| s.fields.iter().flatten().cloned())
            .collect();
        let (stop2, read2) = (stop.clone(), bytes_read.clone());
        let pass = background::spawn("intake-infer", Share::Yield, move || {
            let progress = Progress {
                stop: &stop2,
                bytes_read: &read2,
            };
            match inference_pass::run(&path, &opts, claims, &nulls, &progress) {
                Ok(Some((schema, read)))
                    if schema.columns.is_empty() && !sheet_header.is_empty() =>
                {
                    let header = Inference::new(&sheet_header, claims, &nulls).finish();
                    PassEnd::Inferred(header, read)
                }
                Ok(Some((schema, read))) => PassEnd::Inferred(schema, read),
                Ok(None) => PassEnd::Stopped,
                Err(why) => PassEnd::Unreadable(why),
            }
        })
        .map_err(|e| StoreError::Database(format!("cannot start the inference: {e}")))?;
        tokio::pin!(pass);
        let mut tick = tokio::time::interval(NOTE_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                ended = &mut pass => {
                    let ended = ended
                        .map_err(|e| StoreError::Database(format!("inference task failed: {e}")))?;
                    return Ok(ended);
                }
                _ = tick.tick() => {
                    let read = bytes_read.load(Ordering::Relaxed);
                    let lease = self.store.note_inference(claim, table.position, read, None).await;
                    let cancelled = match lease {
                        Ok(l) => l.cancel_requested,
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    };
                    if cancelled || *shutdown.borrow() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}
