//! One pass over a table's source: parse on one thread, validate on a second, write (or, for
//! an atomic import's first pass, only check) on a third, joined by small bounded channels so
//! that parsing, checking and the database share the cores and memory stays bounded.

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use tokio::sync::watch;

use super::super::Engine;
use super::super::mapper::{
    FieldMapping, KeyMapping, MappingError, map_fields, map_keys, unknown_fields_warning,
};
use super::super::options::InputOptions;
use super::super::pause::PausePoint;
use super::super::reader::{Checkpoint, Format, ReaderOptions, SourceReader};
use super::super::validator::{Checked, Validator};
use super::lease::{LeaseFlags, LeaseRenewal};
use super::read_ahead::{Read, ReadAhead};
use crate::background::{self, Share};
use crate::model::{RowError, TableSchema};
use crate::store::{
    Batch, BatchOutcome, BatchWriter, Claim, ImportTableRecord, Position, StoreError, TableStart,
};

/// Row errors an atomic import's validation pass holds in memory (about 70 MB of wide rows)
/// until it records them in one commit; past it, errors are counted, not stored.
const VALIDATION_ERRORS_KEPT: u64 = 100_000;

/// How the pipeline over one source ended.
pub(super) struct PassEnd {
    /// Records of the source read (all of it, unless the pass stopped early).
    pub records: u64,
    /// Invalid rows of the table so far, those before the checkpoint included.
    pub invalid: u64,
    /// Why the pass stopped before the end of its source, if it did.
    pub stop: Option<Stop>,
    /// Why the source could not be read (or mapped onto the table), if it could not.
    pub read_error: Option<String>,
    /// The writer rolled back batches it had not committed: the pass must run again from
    /// the table's last checkpoint.
    pub replay: bool,
}

impl PassEnd {
    /// A pass that could not read its source (or map it onto the table).
    fn unread(why: String) -> PassEnd {
        PassEnd {
            records: 0,
            invalid: 0,
            stop: None,
            read_error: Some(why),
            replay: false,
        }
    }
}

/// Why a pass stopped before the end of its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// A cancel was asked.
    Cancelled,
    /// The process is stopping (or lost the lease): the import is left to be resumed.
    Shutdown,
    /// More invalid rows than `max_errors` allows.
    TooManyErrors,
}

/// What every pass over one table's source needs: the claimed import, the table's schema,
/// and the source with its options.
pub(super) struct Pass<'a> {
    /// The engine whose store, configuration and pause points the pass uses.
    pub engine: &'a Engine,
    /// The import, as claimed (its lease fences every commit).
    pub claim: &'a Claim,
    /// The table's schema, as the source is loaded into it.
    pub schema: &'a TableSchema,
    /// How to read the table's input (mapping, nulls, encoding).
    pub options: &'a InputOptions,
    /// The source's format and limits.
    pub reader_options: &'a ReaderOptions,
    /// Where the source is on local disk.
    pub path: &'a Path,
    /// Turns true when the process is stopping.
    pub shutdown: &'a watch::Receiver<bool>,
}

/// How the writer's side of a pass ended: the writer back, the invalid rows counted, why it
/// stopped early, and whether it must replay.
type Written = (Box<dyn BatchWriter>, u64, Option<Stop>, bool);

impl Pass<'_> {
    /// Runs one pass over the source from the table's checkpoint (when `resume`): read,
    /// validate, and (unless `validate_only`) write. A validate-only pass commits nothing
    /// unless it finds invalid rows, which it records.
    #[tracing::instrument(name = "pass", skip_all, fields(validate_only = validate_only, resume = resume))]
    pub(super) async fn run(
        &self,
        table: &ImportTableRecord,
        writer: Box<dyn BatchWriter>,
        resume: bool,
        validate_only: bool,
    ) -> Result<(Box<dyn BatchWriter>, PassEnd), StoreError> {
        let start = resume
            .then_some(table.checkpoint)
            .filter(|c| c.record > 0 || c.byte_offset > 0);
        let reader = match self.open_reader(table, start).await? {
            Ok(r) => r,
            Err(why) => return Ok((writer, PassEnd::unread(why))),
        };
        let header: Option<Vec<String>> = reader.header().map(|h| h.to_vec());
        let delimited = matches!(self.reader_options.format, Format::Csv | Format::Tsv);
        let (fields, keys) = match self.mapping(header.as_deref(), delimited) {
            Ok(m) => m,
            Err(e) => return Ok((writer, PassEnd::unread(e.0))),
        };
        let first_warnings = if start.is_none() && !validate_only {
            self.first_warnings(fields.as_ref())
        } else {
            Vec::new()
        };
        self.engine
            .store
            .start_table(
                self.claim,
                table.position,
                &TableStart {
                    header: header.clone(),
                    bytes_total: reader.bytes_total(),
                    warnings: Vec::new(),
                },
            )
            .await?;
        let mut validator = Validator::new(
            self.schema.clone(),
            &self.options.null_values,
            &self.options.typed_null_values,
            fields,
            keys,
            header.unwrap_or_default(),
        )
        .map_err(StoreError::Invalid)?;
        if start.is_some() && !delimited {
            // Keys already reported before the checkpoint are not reported (or counted) again.
            let warned = self
                .engine
                .warned_fields(self.claim, table.position)
                .await?;
            validator.seed_warned(warned);
        }
        let invalid_before = if start.is_some() {
            table.counts.invalid
        } else {
            0
        };
        // The reader enforces `max_errors` row by row, so that no row past the one that
        // passes the limit reaches the writer, whatever the batch size. It starts from the
        // invalid rows counted before the checkpoint (a resumed pass). A validation pass has
        // no limit: it counts every invalid row.
        let import = &self.claim.import;
        let error_limit = if validate_only {
            None
        } else {
            import.on_error.error_limit(import.max_errors)
        };
        let (tx, rx) = sync_channel::<Batch>(2);
        // Written batches come back to the reader's thread, which made their rows, to be
        // freed there (and their memory reused).
        let (spent_tx, spent_rx) = channel::<Batch>();
        let read = ReadJob {
            reader,
            validator,
            tx,
            spent: spent_rx,
            first_warnings,
            batch_rows: self.engine.config.batch_rows,
            batch_bytes: self.engine.config.batch_bytes,
            table_name: self.schema.name.as_str().to_owned(),
            json_source: !delimited,
            invalid_before,
            error_limit,
            validate_only,
        };
        let parse = background::spawn("intake-read", Share::Yield, move || read.run())
            .map_err(|e| StoreError::Database(format!("cannot start the reader: {e}")))?;
        let tally = Tally {
            invalid: invalid_before,
            error_limit,
        };
        let written = if validate_only {
            self.validate(writer, rx, tally).await
        } else {
            self.write(writer, rx, spent_tx, tally, start.unwrap_or_default())
                .await
        };
        let read = parse
            .await
            .map_err(|e| StoreError::Database(format!("reader task failed: {e}")))?;
        let (writer, invalid, stop, replay) = written?;
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

    /// Opens the source, at `start` when resuming; the inner error says why it cannot be
    /// read.
    async fn open_reader(
        &self,
        table: &ImportTableRecord,
        start: Option<Position>,
    ) -> Result<Result<SourceReader, String>, StoreError> {
        let path = self.path.to_owned();
        let opts = self.reader_options.clone();
        let resume_at = start.map(|c| {
            (
                Checkpoint::from(c),
                table.header.clone().unwrap_or_default(),
            )
        });
        let opened =
            tokio::task::spawn_blocking(move || SourceReader::open(&path, &opts, resume_at))
                .await
                .map_err(|e| StoreError::Database(format!("reader task failed: {e}")))?;
        Ok(opened.map_err(|e| e.to_string()))
    }

    /// How the source's fields (a delimited source) or keys (JSON) map onto the columns.
    fn mapping(
        &self,
        header: Option<&[String]>,
        delimited: bool,
    ) -> Result<(Option<FieldMapping>, Option<KeyMapping>), MappingError> {
        let schema = self.schema;
        if !delimited {
            return map_keys(schema, self.options).map(|k| (None, Some(k)));
        }
        let header = if self.reader_options.has_header {
            header
        } else {
            None
        };
        let mapped = map_fields(schema, self.options, header)?;
        // A header none of whose fields is a column would load rows of nothing but NULLs.
        match header {
            Some(names) if !mapped.sources.iter().any(Option::is_some) => {
                Err(MappingError(format!(
                    "no field of the source matches a column of table {:?} (its fields: {}; its columns: {})",
                    schema.name.as_str(),
                    quoted_list(names.iter().map(String::as_str)),
                    quoted_list(schema.columns.iter().map(|c| c.name.as_str())),
                )))
            }
            _ => Ok((Some(mapped), None)),
        }
    }

    /// The warnings a first writing pass starts with: bytes replaced while decoding, source
    /// fields that feed no column.
    fn first_warnings(&self, fields: Option<&FieldMapping>) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.options.replaced_sequences > 0 {
            warnings.push(format!(
                "{} byte sequence(s) of the source are not valid in its encoding and were read \
                 as U+FFFD (\u{FFFD}): check the encoding option",
                self.options.replaced_sequences
            ));
        }
        if let Some(w) =
            fields.and_then(|f| unknown_fields_warning(self.schema.name.as_str(), &f.unknown))
        {
            warnings.push(w);
        }
        warnings
    }

    /// Writes the batches the reader sends, each committed with its checkpoint, until the
    /// source ends or the pass must stop.
    async fn write(
        &self,
        mut writer: Box<dyn BatchWriter>,
        rx: Receiver<Batch>,
        spent: Sender<Batch>,
        mut tally: Tally,
        from: Position,
    ) -> Result<Written, StoreError> {
        let shutdown = self.shutdown.clone();
        let pauses = self.engine.config.pauses.clone();
        let write = background::spawn("intake-write", Share::Equal, move || {
            let mut stop = None;
            let mut batches = 0u64;
            writer.continue_from(from);
            let mut next = || rx.recv().ok();
            let mut seen = |out: &BatchOutcome| {
                batches += 1;
                pauses.pause(PausePoint::AfterBatch(batches));
                metrics::counter!("intake_rows_written_total")
                    .increment(out.created + out.updated + out.unchanged);
                metrics::counter!("intake_rows_rejected_total").increment(out.invalid);
                if out.cancel_requested {
                    stop = Some(Stop::Cancelled);
                }
                // Rows the database refused (a taken key) are counted here, at the end of
                // the batch holding them; the reader stops at the rows it rejects.
                let limit_hit = tally.add(out.invalid);
                if stop.is_none() && limit_hit {
                    stop = Some(Stop::TooManyErrors);
                }
                if stop.is_none() && *shutdown.borrow() {
                    stop = Some(Stop::Shutdown);
                }
                stop.is_some()
            };
            // A reader that has ended takes nothing back: the batch is freed here.
            let mut spent = |batch: Batch| drop(spent.send(batch));
            let written = writer.write_stream(&mut next, &mut seen, &mut spent);
            let invalid = tally.invalid;
            match written {
                Ok(()) => Ok((writer, invalid, stop, false)),
                Err(StoreError::Replay) => Ok((writer, invalid, stop, true)),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| StoreError::Database(format!("cannot start the writer: {e}")))?;
        write
            .await
            .map_err(|e| StoreError::Database(format!("writer task failed: {e}")))?
    }

    /// Checks every batch the reader sends without writing it; the invalid rows found are
    /// recorded in one commit at the end. The lease is renewed beside it, which also tells
    /// whether a cancel was asked: every batch, so that a cancel stops the pass within a
    /// second.
    async fn validate(
        &self,
        writer: Box<dyn BatchWriter>,
        rx: Receiver<Batch>,
        tally: Tally,
    ) -> Result<Written, StoreError> {
        let (renewal, flags) = LeaseRenewal::start(self.engine.store.clone(), self.claim.clone());
        let keep = self
            .engine
            .config
            .max_stored_errors
            .min(VALIDATION_ERRORS_KEPT) as usize;
        let shutdown = self.shutdown.clone();
        let check = background::spawn("intake-write", Share::Equal, move || {
            check_batches(rx, &flags, &shutdown, tally.invalid, keep)
        })
        .map_err(|e| StoreError::Database(format!("cannot start the writer: {e}")));
        let checked = match check {
            Ok(task) => task
                .await
                .map_err(|e| StoreError::Database(format!("writer task failed: {e}"))),
            Err(e) => Err(e),
        };
        // The renewal stops with the pass, whatever ended it.
        let read_all = matches!(&checked, Ok(Ok(c)) if c.stop.is_none());
        let cancelled = renewal.finish(read_all).await;
        let checked = checked??;
        let mut stop = checked.stop;
        if cancelled? && stop.is_none() {
            stop = Some(Stop::Cancelled);
        }
        // A validation pass that found invalid rows records them (and only them).
        let errors = !checked.errors.is_empty() || checked.unstored > 0;
        if errors && stop.is_none() {
            let batch = Batch {
                errors: checked.errors,
                unstored_invalid: checked.unstored,
                checked_valid: checked.valid,
                ..Batch::default()
            };
            let mut writer = writer;
            let written = tokio::task::spawn_blocking(move || {
                let written = writer.write(&batch);
                written.map(|_| writer)
            })
            .await
            .map_err(|e| StoreError::Database(format!("writer task failed: {e}")))??;
            return Ok((written, checked.invalid, stop, false));
        }
        Ok((writer, checked.invalid, stop, false))
    }
}

/// The invalid rows a pass counted so far, against the import's `max_errors`.
struct Tally {
    invalid: u64,
    error_limit: Option<u64>,
}

impl Tally {
    /// Counts `n` more invalid rows; true once they pass the limit.
    fn add(&mut self, n: u64) -> bool {
        self.invalid += n;
        self.error_limit.is_some_and(|m| self.invalid > m)
    }
}

/// What a validation pass found.
struct CheckedBatches {
    invalid: u64,
    valid: u64,
    errors: Vec<RowError>,
    unstored: u64,
    stop: Option<Stop>,
}

/// The validation pass's loop, on a blocking thread: counts the valid and invalid rows of
/// each batch and stops early on a cancel, a lost lease or a shutdown. It keeps only the
/// errors that will be stored (`keep`) and counts the rest (and the import says its stored
/// errors are fewer than its invalid rows); they wait in memory until the pass ends, hence
/// the bound below the store's cap.
fn check_batches(
    rx: Receiver<Batch>,
    lease: &LeaseFlags,
    shutdown: &watch::Receiver<bool>,
    invalid_before: u64,
    keep: usize,
) -> Result<CheckedBatches, StoreError> {
    let mut found = CheckedBatches {
        invalid: invalid_before,
        valid: 0,
        errors: Vec::new(),
        unstored: 0,
        stop: None,
    };
    for mut batch in rx {
        found.invalid += batch.errors.len() as u64;
        found.valid += batch.rows.len() as u64;
        let room = keep.saturating_sub(found.errors.len());
        found.unstored += batch.errors.len().saturating_sub(room) as u64;
        batch.errors.truncate(room);
        found.errors.append(&mut batch.errors);
        lease.batch_done();
        if let Some(e) = lease.take_error() {
            return Err(e);
        }
        if lease.cancel_requested() {
            found.stop = Some(Stop::Cancelled);
        }
        if found.stop.is_none() && *shutdown.borrow() {
            found.stop = Some(Stop::Shutdown);
        }
        if found.stop.is_some() {
            break;
        }
    }
    Ok(found)
}

/// The reader's side of a pass, moved onto its own thread.
struct ReadJob {
    reader: SourceReader,
    validator: Validator,
    tx: SyncSender<Batch>,
    /// Batches the writer is done with.
    spent: Receiver<Batch>,
    first_warnings: Vec<String>,
    batch_rows: usize,
    batch_bytes: u64,
    table_name: String,
    json_source: bool,
    invalid_before: u64,
    error_limit: Option<u64>,
    validate_only: bool,
}

impl ReadJob {
    /// Reads and validates the source into batches sent to the writer; answers how many
    /// records it read, or why the source could not be read.
    fn run(self) -> Result<u64, String> {
        let ReadJob {
            reader,
            mut validator,
            tx,
            spent,
            first_warnings,
            batch_rows,
            batch_bytes,
            table_name,
            json_source,
            invalid_before,
            error_limit,
            validate_only,
        } = self;
        let mut batch = Batch {
            warnings: first_warnings,
            ..Batch::default()
        };
        let mut records = 0u64;
        // Where the source stands after the last record taken from the parser (which reads
        // ahead of it).
        let mut cp = reader.checkpoint();
        let mut batch_start = cp.byte_offset;
        let pass_start = batch_start;
        let mut invalid_read = invalid_before;
        // A pass resumed after the batch that passed the limit committed reads no further:
        // its empty last batch lets the writer see the limit again.
        let mut over_limit = error_limit.is_some_and(|m| invalid_read > m);
        let mut ahead = if over_limit {
            None
        } else {
            Some(ReadAhead::start(reader).map_err(|e| format!("cannot start the parser: {e}"))?)
        };
        while let Some(ahead) = ahead.as_mut() {
            let item = match ahead.next() {
                Some(Read::Record(item, after)) => {
                    cp = after;
                    item
                }
                Some(Read::End(end)) => {
                    cp = end;
                    break;
                }
                Some(Read::Failed(why)) => return Err(why),
                None => return Err("the parser stopped".to_owned()),
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
            // The row that passed the limit ends the last batch: the rows before it are
            // written, none after it is read.
            if over_limit {
                break;
            }
            // Wide records make a batch of fewer rows: memory follows bytes, not rows.
            if batch.rows.len() + batch.errors.len() >= batch_rows
                || cp.byte_offset.saturating_sub(batch_start) >= batch_bytes
            {
                batch_start = cp.byte_offset;
                batch.checkpoint = cp.into();
                batch.bytes_read = cp.byte_offset;
                if tx.send(std::mem::take(&mut batch)).is_err() {
                    return Ok(records);
                }
                for written in spent.try_iter() {
                    let mut rows = written.rows;
                    rows.clear();
                    if rows.capacity() > batch.rows.capacity() {
                        batch.rows = rows;
                    }
                }
            }
        }
        records = records.max(cp.record);
        batch.checkpoint = cp.into();
        batch.bytes_read = cp.byte_offset;
        if !validate_only {
            metrics::counter!("intake_bytes_read_total")
                .increment(cp.byte_offset.saturating_sub(pass_start));
        }
        let _ = tx.send(batch);
        Ok(records)
    }
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

impl Engine {
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
}
