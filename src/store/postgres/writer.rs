//! The batch writer: loads typed rows into a user table, one transaction holding the rows,
//! the undo journal, the row errors, the counts and the checkpoint.
//!
//! The bulk path is set-based: rows are encoded as a binary COPY stream. An insert streams
//! batch after batch into one COPY straight into the table, committing every
//! [`GROUP_ROWS`] rows or [`GROUP_TIME`] (the common case: no key is taken). When a key is
//! taken, that transaction is rolled back, its batches are read again from the checkpoint
//! (`Replay`), and from then on each batch goes through a temporary staging table and one
//! `INSERT … SELECT … ON CONFLICT DO NOTHING`, which keeps exactly the rows the SQLite
//! backend's row-by-row inserts keep (the first of duplicates). An upsert classifies the
//! staged rows against the table and against earlier rows of the same key in one statement
//! that also journals the previous versions and writes the last version of each key; its
//! batches stream into the staging table as an insert's do into the target, and one such
//! statement per transaction upserts them all, on a thread of its own while the next
//! transaction's batches are sent on another connection (when the pool has one to spare).
//! Only when an upsert breaks a unique column other than the key is its transaction
//! replayed batch by batch, and that batch row by row, the only way to reproduce the
//! row-by-row outcome of such conflicts.
//!
//! Batch transactions commit without waiting for their WAL to reach the disk
//! (`synchronous_commit = off`): a database crash may lose the last of them, and with them
//! their checkpoint, so the import resumes before them; nothing is lost or doubled. The end
//! of a table or an import commits durably, and with it every batch before.

use std::hash::BuildHasher;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use ::postgres::GenericClient;
use ::postgres::error::SqlState;
use ::postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::imports::{append_event, check_lease};
use super::pool::Conn;
use super::tables::{
    IMPORT_COLUMN, ROW_COLUMN, create_sql, db_message, exists, journal_table, side_table,
    undo_table, workspace_slug,
};
use super::values::{
    Cell, Unstorable, compare_expr, copy_header, copy_trailer, encode_field, qualified, quote,
    scalar_type,
};
use super::{Inner, StoreError, StoreResult, now};
use crate::model::{ColumnType, Mode, RowError, RowErrorCode, Value};
use crate::store::apply::finish_cleaned_table;
use crate::store::columns::JOURNAL_OP_COLUMN;
use crate::store::{
    Batch, BatchOutcome, BatchWriter, Claim, Position, TableEnd, TypedRow, WritePlan, write_each,
};

/// Rows one transaction of a streamed insert holds at most: few enough that a crash redoes
/// little, many enough that commits cost nothing next to the rows.
const GROUP_ROWS: u64 = 50_000;
/// How long one transaction of a streamed insert stays open at most, so that progress and
/// the lease move on even when rows come slowly.
const GROUP_TIME: Duration = Duration::from_millis(500);
/// Row errors one transaction holds at most (they wait in memory for its commit).
const GROUP_ERRORS: usize = 5_000;
/// Bytes of encoded rows sent to the database at a time.
const CHUNK: usize = 64 << 10;

/// A number known once worked out (or learnt from a commit), shared with the thread that
/// ends a streamed upsert's transaction while the next one is sent.
struct Known(AtomicI64);

impl Default for Known {
    fn default() -> Known {
        Known(AtomicI64::new(i64::MIN))
    }
}

impl Known {
    fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Acquire)).filter(|&n| n != i64::MIN)
    }

    fn set(&self, n: Option<i64>) {
        self.0.store(n.unwrap_or(i64::MIN), Ordering::Release);
    }
}

/// Writes one table of one import into PostgreSQL.
pub struct PgWriter {
    inner: Arc<Inner>,
    import_id: Uuid,
    workspace_id: Uuid,
    number: i64,
    token: i64,
    lease_ms: i64,
    plan: WritePlan,
    cleanup: bool,
    key: Vec<usize>,
    /// Where the rows go; known after the first operation (which runs off the async runtime).
    names: Option<Names>,
    /// Whether the side tables of a write exist (created once, in their own transaction).
    prepared: bool,
    /// Whether batches may still stream ([`PgWriter::streams`]): an insert's until a key is
    /// taken, an upsert's until a unique column other than the key conflicts.
    direct: AtomicBool,
    /// The `_intake_row` of the next row written to the target.
    next_row: Known,
    /// The table's checkpoint (byte offset) that the next commit follows on from, once
    /// known: a database crash may lose the last commits, which their successor finds out.
    follows: Known,
}

/// The tables a writer works on, in the workspace's schema.
struct Names {
    slug: String,
    /// The real table.
    table: String,
    /// The table rows go to: the real table, or for replace the table that will be swapped in.
    target: String,
    /// A dry run with cleanup writes nothing, so no row is marked as seen in the table: the
    /// keys of the rows it would have written go to this scratch table instead, committed with
    /// each batch's checkpoint, and the rows it would destroy are those whose key is not in it.
    seen: Option<String>,
    /// An upsert's journal of the previous versions of the rows it changes (none for a dry
    /// run, which keeps nothing).
    journal: Option<String>,
    /// The session's temporary staging table (named by the table's shape).
    stage: String,
}

/// A batch encoded for COPY: the valid rows' tuples and the rows PostgreSQL cannot store.
struct Encoded {
    copy: Vec<u8>,
    /// Tuples in the stream.
    tuples: u64,
    /// `_intake_row` of the batch's row i is `base + i`.
    base: i64,
    refused: Vec<(usize, RowError)>,
}

/// What the batches of one transaction add up to, recorded as it commits.
#[derive(Default)]
struct Tally {
    processed: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    invalid: u64,
    /// Warnings, each with the source fields it names.
    warnings: Vec<(String, Vec<String>)>,
    checkpoint: Position,
    bytes_read: u64,
}

/// A streamed transaction whose batches are sent: its connection, with the transaction
/// open, and what the batches add up to.
struct Sent<'p> {
    tx: Open<'p>,
    tally: Tally,
    errors: Vec<RowError>,
    /// Rows numbered (sent or refused).
    numbered: i64,
    /// Whether more batches may follow.
    more: bool,
    /// Whether the keys an upsert staged looked distinct.
    distinct: bool,
}

/// A pooled connection with a transaction open, rolled back if dropped before its commit.
/// Unlike the client's own transaction it owns its connection, so that it can be ended on
/// another thread.
struct Open<'p> {
    conn: Conn<'p>,
    open: bool,
}

impl<'p> Open<'p> {
    fn begin(mut conn: Conn<'p>) -> StoreResult<Open<'p>> {
        conn.batch_execute("BEGIN; SET LOCAL synchronous_commit = off")?;
        Ok(Open { conn, open: true })
    }

    fn commit(mut self) -> StoreResult<()> {
        self.open = false;
        self.conn.batch_execute("COMMIT")?;
        Ok(())
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if self.open {
            // A connection that cannot roll back is broken, and the pool checks it.
            let _ = self.conn.batch_execute("ROLLBACK");
        }
    }
}

/// The pieces both upsert statements are made of, as SQL text: the key list and its first
/// column, the bookkeeping columns, the comparable staged (`s.`) and table (`t.`) values, the
/// column names (bare and of `c.`), the `SET` list of `ON CONFLICT`, the staging and target
/// tables and how a table row meets its staged row.
struct UpsertParts {
    keys: String,
    first_key: String,
    row: String,
    owner: String,
    s_cmp: String,
    t_cmp: String,
    names: String,
    c_names: String,
    set: String,
    stage: String,
    target: String,
    key_match: String,
}

/// The created, updated and unchanged counts an upsert statement answers.
fn counts(r: &::postgres::Row) -> Result<(u64, u64, u64), ::postgres::Error> {
    let n =
        |i: usize| -> Result<u64, ::postgres::Error> { Ok(r.try_get::<_, i64>(i)?.max(0) as u64) };
    Ok((n(0)?, n(1)?, n(2)?))
}

/// What one batch's write works on.
#[derive(Clone, Copy)]
struct Work<'a> {
    names: &'a Names,
    batch: &'a Batch,
    enc: &'a Encoded,
}

/// What applying a batch found: its counts, the rows the database refused (by batch index),
/// and with cleanup the keys of refused rows, whose table rows stay.
struct Applied {
    out: BatchOutcome,
    refused: Vec<(usize, RowError)>,
    kept: Vec<Vec<Value>>,
}

impl Names {
    fn target(&self) -> String {
        qualified(&self.slug, &self.target)
    }

    fn table(&self) -> String {
        qualified(&self.slug, &self.table)
    }

    fn journal(&self) -> Option<String> {
        self.journal.as_ref().map(|j| qualified(&self.slug, j))
    }
}

impl PgWriter {
    /// A writer for one table of a claimed import; connects on its first operation.
    pub fn new(inner: Arc<Inner>, claim: &Claim, plan: WritePlan) -> PgWriter {
        let key = plan.schema.key_indexes();
        let cleanup = claim.import.cleanup_records && plan.mode == Mode::Upsert;
        PgWriter {
            inner,
            import_id: claim.import.id,
            workspace_id: claim.import.workspace_id,
            number: claim.import.number,
            token: claim.token,
            lease_ms: claim.lease_ms,
            plan,
            cleanup,
            key,
            names: None,
            prepared: false,
            direct: AtomicBool::new(true),
            next_row: Known::default(),
            follows: Known::default(),
        }
    }

    /// Learns the workspace's schema and names the tables.
    fn names(&mut self) -> StoreResult<&Names> {
        if self.names.is_none() {
            let workspace_id = self.workspace_id;
            let slug = self
                .inner
                .write_now(|tx| workspace_slug(tx, workspace_id))?;
            let table = self.plan.schema.name.as_str().to_owned();
            let number = self.number;
            let target = match (self.plan.mode, self.plan.dry_run) {
                (Mode::Replace, false) => side_table(&table, "replace", number),
                (Mode::Replace, true) => side_table(&table, "dry_run", number),
                _ => table.clone(),
            };
            let seen =
                (self.cleanup && self.plan.dry_run).then(|| side_table(&table, "seen", number));
            let journal = (self.plan.mode == Mode::Upsert && !self.plan.dry_run)
                .then(|| journal_table(&table, number));
            let stage = format!("intake_stage_{:016x}", shape_hash(&self.plan));
            self.names = Some(Names {
                slug,
                table,
                target,
                seen,
                journal,
                stage,
            });
        }
        self.known_names()
    }

    /// The names [`PgWriter::names`] worked out.
    fn known_names(&self) -> StoreResult<&Names> {
        self.names
            .as_ref()
            .ok_or_else(|| StoreError::Database("writer names missing".into()))
    }

    /// Creates the tables a write needs beside the real one: a replace's new table (for a
    /// dry run, an unlogged one that is dropped at the end), a dry run's seen keys.
    fn prepare(&mut self) -> StoreResult<()> {
        if self.prepared {
            return Ok(());
        }
        self.names()?;
        let names = self.known_names()?;
        let schema = &self.plan.schema;
        let key = &self.key;
        let replace = self.plan.mode == Mode::Replace;
        let dry_run = self.plan.dry_run;
        let stored = self.column_list();
        self.inner.write_now(|tx| {
            if let (Some(journal), Some(name)) = (names.journal(), &names.journal)
                && !exists(tx, &names.slug, name)?
            {
                // The table's own columns and types, without its constraints: old versions
                // of a key may repeat.
                tx.batch_execute(&format!(
                    "CREATE TABLE {journal} AS SELECT {stored}, ''::text AS {op}
                     FROM {table} WITH NO DATA",
                    op = quote(JOURNAL_OP_COLUMN),
                    table = names.table(),
                ))?;
            }
            if let Some(seen) = &names.seen
                && !exists(tx, &names.slug, seen)?
            {
                // Same types as the key columns, so that keys compare as in the table.
                let cols: Vec<String> = key
                    .iter()
                    .map(|&i| {
                        let c = &schema.columns[i];
                        format!("{} {}", quote(c.name.as_str()), scalar_type(c.ty))
                    })
                    .collect();
                let names_list: Vec<String> = key
                    .iter()
                    .map(|&i| quote(schema.columns[i].name.as_str()))
                    .collect();
                tx.batch_execute(&format!(
                    "CREATE TABLE {} ({}, PRIMARY KEY ({}))",
                    qualified(&names.slug, seen),
                    cols.join(", "),
                    names_list.join(", ")
                ))?;
            }
            if replace && !exists(tx, &names.slug, &names.target)? {
                tx.batch_execute(&create_sql(&names.slug, &names.target, schema, dry_run))?;
            }
            Ok(())
        })?;
        self.prepared = true;
        Ok(())
    }

    /// The `_intake_row` the next batch starts at: past every row of the target. Known once
    /// per writer: while an import runs, no other import writes its table.
    fn next_row(&self, names: &Names) -> StoreResult<i64> {
        if let Some(n) = self.next_row.get() {
            return Ok(n);
        }
        let target = names.target();
        let n = self.inner.write_now(|tx| {
            Ok(tx
                .query_one(
                    &format!(
                        "SELECT coalesce(max({}), 0) + 1 FROM {target}",
                        quote(ROW_COLUMN)
                    ),
                    &[],
                )?
                .try_get::<_, i64>(0)?)
        })?;
        self.next_row.set(Some(n));
        Ok(n)
    }

    /// Appends one row's tuple to a binary COPY stream: the table's columns, then
    /// `_intake_import` and `_intake_row`. A value the database cannot store leaves the stream
    /// as it was and makes the row an error.
    fn encode_row(
        &self,
        row: &TypedRow,
        number: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), Box<RowError>> {
        let cols = &self.plan.schema.columns;
        let start = out.len();
        out.extend_from_slice(&((cols.len() + 2) as i16).to_be_bytes());
        for (col, v) in cols.iter().zip(&row.values) {
            if let Err(why) = encode_field(col.ty, v, out) {
                out.truncate(start);
                return Err(Box::new(unstorable(row, col.name.as_str(), why)));
            }
        }
        // Integers always encode.
        let _ = encode_field(ColumnType::Integer, &Value::Int(self.number), out);
        let _ = encode_field(ColumnType::Integer, &Value::Int(number), out);
        Ok(())
    }

    /// Encodes the batch's rows as one binary COPY stream, for the staging table.
    fn encode(&self, batch: &Batch, base: i64) -> Encoded {
        let cols = &self.plan.schema.columns;
        let mut copy = Vec::with_capacity(64 + batch.rows.len() * (cols.len() * 12 + 32));
        copy_header(&mut copy);
        let mut tuples = 0;
        let mut refused = Vec::new();
        for (i, row) in batch.rows.iter().enumerate() {
            match self.encode_row(row, base + i as i64, &mut copy) {
                Ok(()) => tuples += 1,
                Err(e) => refused.push((i, *e)),
            }
        }
        copy_trailer(&mut copy);
        Encoded {
            copy,
            tuples,
            base,
            refused,
        }
    }

    /// The column list of COPY and INSERT: the table's columns and the bookkeeping ones.
    fn column_list(&self) -> String {
        self.plan
            .schema
            .columns
            .iter()
            .map(|c| quote(c.name.as_str()))
            .chain([quote(IMPORT_COLUMN), quote(ROW_COLUMN)])
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// [`PgWriter::column_list`], each column of the table aliased `alias`.
    fn column_list_of(&self, alias: &str) -> String {
        self.plan
            .schema
            .columns
            .iter()
            .map(|c| quote(c.name.as_str()))
            .chain([quote(IMPORT_COLUMN), quote(ROW_COLUMN)])
            .map(|c| format!("{alias}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|&i| quote(self.plan.schema.columns[i].name.as_str()))
            .collect()
    }

    /// `a.k1 = b.k1 AND a.k2 = b.k2`.
    fn key_match(&self, a: &str, b: &str) -> String {
        self.key_names()
            .iter()
            .map(|k| format!("{a}.{k} = {b}.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn copy_into(
        &self,
        tx: &mut impl GenericClient,
        table: &str,
        enc: &Encoded,
    ) -> StoreResult<()> {
        let mut w = tx.copy_in(&format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            self.column_list()
        ))?;
        w.write_all(&enc.copy)
            .map_err(|e| StoreError::Database(format!("copy: {e}")))?;
        w.finish()?;
        Ok(())
    }

    /// Loads the batch into the session's staging table (emptied at commit).
    fn stage(&self, tx: &mut impl GenericClient, names: &Names, enc: &Encoded) -> StoreResult<()> {
        let stage = quote(&names.stage);
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {}) ON COMMIT DELETE ROWS",
            names.target()
        ))?;
        self.copy_into(tx, &stage, enc)
    }

    /// Inserts the batch through the staging table (insert and replace modes, once a key was
    /// taken): a taken key (or unique value) makes the row a `duplicate_key` error, as the
    /// SQLite backend's inserts do.
    fn insert_rows(
        &self,
        tx: &mut impl GenericClient,
        w: &Work<'_>,
        a: &mut Applied,
    ) -> StoreResult<()> {
        let Work { names, batch, enc } = *w;
        if enc.tuples == 0 {
            return Ok(());
        }
        let target = names.target();
        self.stage(tx, names, enc)?;
        let cols = self.column_list();
        let row = quote(ROW_COLUMN);
        let rejected: Vec<i64> = tx
            .query(
                &format!(
                    "WITH ins AS (
                         INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} ORDER BY {row}
                         ON CONFLICT DO NOTHING RETURNING {row})
                     SELECT s.{row} FROM {stage} s
                     WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.{row} = s.{row})
                     ORDER BY s.{row}",
                    stage = quote(&names.stage)
                ),
                &[],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        a.out.created += enc.tuples - rejected.len() as u64;
        if rejected.is_empty() {
            return Ok(());
        }
        let labels = self.conflict_columns(tx, names, &rejected)?;
        for (ir, label) in rejected.iter().zip(labels) {
            let i = (ir - enc.base) as usize;
            if let Some(row) = batch.rows.get(i) {
                a.refused.push((i, duplicate(row, label)));
            }
        }
        Ok(())
    }

    /// Which constraint each rejected staged row broke, checked in SQLite's order (the key,
    /// then unique columns from the last), against the rows present when it was inserted.
    fn conflict_columns(
        &self,
        tx: &mut impl GenericClient,
        names: &Names,
        rejected: &[i64],
    ) -> StoreResult<Vec<Option<String>>> {
        let schema = &self.plan.schema;
        let mut constraints: Vec<(Vec<String>, String)> = Vec::new();
        if !self.key.is_empty() {
            let cols: Vec<&str> = self
                .key
                .iter()
                .map(|&i| schema.columns[i].name.as_str())
                .collect();
            constraints.push((cols.iter().map(|c| quote(c)).collect(), cols.join(", ")));
        }
        let single_key = (schema.primary_key.len() == 1).then(|| &schema.primary_key[0]);
        for c in schema.columns.iter().rev() {
            if c.unique && single_key != Some(&c.name) {
                constraints.push((vec![quote(c.name.as_str())], c.name.as_str().to_owned()));
            }
        }
        let row = quote(ROW_COLUMN);
        let cases: Vec<String> = constraints
            .iter()
            .enumerate()
            .map(|(n, (cols, _))| {
                let cond: Vec<String> = cols.iter().map(|c| format!("t.{c} = s.{c}")).collect();
                format!(
                    "WHEN EXISTS (SELECT 1 FROM {} t WHERE {} AND t.{row} < s.{row}) THEN {n}",
                    names.target(),
                    cond.join(" AND ")
                )
            })
            .collect();
        let sql = format!(
            "SELECT s.{row}, CASE {} ELSE -1 END FROM {} s WHERE s.{row} = ANY ($1) ORDER BY s.{row}",
            if cases.is_empty() {
                "WHEN false THEN -1".to_owned()
            } else {
                cases.join(" ")
            },
            quote(&names.stage)
        );
        let found: Vec<i32> = tx
            .query(&sql, &[&rejected])?
            .iter()
            .map(|r| r.try_get(1))
            .collect::<Result<_, _>>()?;
        Ok(found
            .into_iter()
            .map(|n| {
                usize::try_from(n)
                    .ok()
                    .and_then(|n| constraints.get(n))
                    .map(|(_, label)| label.clone())
            })
            .collect())
    }

    /// Upserts the batch by the key: per row, created, updated or unchanged exactly as the
    /// SQLite backend's row-by-row upserts count them, with the last row of a key winning.
    fn upsert_rows(
        &self,
        tx: &mut impl GenericClient,
        w: &Work<'_>,
        a: &mut Applied,
    ) -> StoreResult<()> {
        let Work { names, enc, .. } = *w;
        if enc.tuples == 0 {
            return Ok(());
        }
        self.stage(tx, names, enc)?;
        // Rolled back to when a unique column other than the key conflicts: the batch is
        // then upserted row by row.
        tx.batch_execute("SAVEPOINT upsert")?;
        match self.upsert_staged(tx, names, self.keys_distinct(w.batch, enc)) {
            Ok((created, updated, unchanged)) => {
                tx.batch_execute("RELEASE upsert")?;
                a.out.created += created;
                a.out.updated += updated;
                a.out.unchanged += unchanged;
                Ok(())
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tx.batch_execute("ROLLBACK TO upsert; RELEASE upsert")?;
                self.upsert_each(tx, w, a)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Upserts what is staged: with the short statement when its keys looked distinct,
    /// else (or when that statement could not be exact) with the general one.
    fn upsert_staged(
        &self,
        tx: &mut impl GenericClient,
        names: &Names,
        distinct: bool,
    ) -> Result<(u64, u64, u64), ::postgres::Error> {
        if distinct {
            tx.batch_execute("SAVEPOINT upsert_distinct")?;
            match self.upsert_distinct(tx, names)? {
                None => tx.batch_execute("ROLLBACK TO upsert_distinct; RELEASE upsert_distinct")?,
                Some(counts) => {
                    tx.batch_execute("RELEASE upsert_distinct")?;
                    return Ok(counts);
                }
            }
        }
        self.upsert_set(tx, names)
    }

    /// The pieces both upsert statements are made of.
    fn upsert_parts(&self, names: &Names) -> UpsertParts {
        let cols = &self.plan.schema.columns;
        let owner = quote(IMPORT_COLUMN);
        let list: Vec<String> = cols.iter().map(|c| quote(c.name.as_str())).collect();
        let join = |v: Vec<String>| v.join(", ");
        UpsertParts {
            keys: self.key_names().join(", "),
            first_key: self.key_names().first().cloned().unwrap_or_default(),
            row: quote(ROW_COLUMN),
            s_cmp: join(cols.iter().map(|c| compare_expr("s.", c)).collect()),
            t_cmp: join(cols.iter().map(|c| compare_expr("t.", c)).collect()),
            c_names: join(list.iter().map(|n| format!("c.{n}")).collect()),
            set: join(
                list.iter()
                    .chain(std::iter::once(&owner))
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect(),
            ),
            names: join(list),
            owner,
            stage: quote(&names.stage),
            target: names.target(),
            key_match: self.key_match("t", "s"),
        }
    }

    /// Puts the row's key, encoded, in `out`; false when it cannot be encoded.
    fn encode_key(&self, row: &TypedRow, out: &mut Vec<u8>) -> bool {
        let cols = &self.plan.schema.columns;
        out.clear();
        self.key
            .iter()
            .all(|&k| encode_field(cols[k].ty, &row.values[k], out).is_ok())
    }

    /// Whether no two rows of the batch have the same key, value for value as encoded.
    fn keys_distinct(&self, batch: &Batch, enc: &Encoded) -> bool {
        let refused: std::collections::HashSet<usize> =
            enc.refused.iter().map(|(i, _)| *i).collect();
        let mut seen = std::collections::HashSet::with_capacity(batch.rows.len());
        let mut key = Vec::new();
        for (i, row) in batch.rows.iter().enumerate() {
            if refused.contains(&i) {
                continue;
            }
            if !self.encode_key(row, &mut key) {
                return false;
            }
            if !seen.insert(key.clone()) {
                return false;
            }
        }
        true
    }

    /// The set-based upsert of a batch whose keys are distinct: each staged row is looked up
    /// once, and where its table row is (`ctid`) is where the journal copies it from and
    /// where it is updated, without a second lookup. Answers `None`, having changed
    /// nothing it cannot take back, when the update did not meet exactly the rows looked up:
    /// two staged rows of one key (keys the database finds equal though written
    /// differently), or a row changed by another transaction since the statement began.
    /// Fails on a unique column other than the key, and on a key created meanwhile.
    fn upsert_distinct(
        &self,
        tx: &mut impl GenericClient,
        names: &Names,
    ) -> Result<Option<(u64, u64, u64)>, ::postgres::Error> {
        let UpsertParts {
            first_key,
            row,
            owner,
            s_cmp,
            t_cmp,
            names: columns,
            c_names,
            stage,
            target,
            key_match,
            ..
        } = self.upsert_parts(names);
        let journal = match names.journal() {
            Some(journal) => format!(
                "j AS (
                     INSERT INTO {journal} ({stored}, {op})
                     SELECT {old}, CASE WHEN c._intake_class = 'u' THEN 'updated' ELSE 'claimed' END
                     FROM c JOIN {target} t ON t.ctid = c._intake_at
                     WHERE c._intake_class <> 'c' AND c._intake_was IS DISTINCT FROM $2
                       AND (c._intake_class = 'u' OR $1)),",
                stored = self.column_list(),
                old = self.column_list_of("t"),
                op = quote(JOURNAL_OP_COLUMN),
            ),
            None => String::new(),
        };
        let set = self
            .plan
            .schema
            .columns
            .iter()
            .map(|c| {
                let n = quote(c.name.as_str());
                format!("{n} = c.{n}")
            })
            .chain(std::iter::once(format!("{owner} = $2")))
            .collect::<Vec<_>>()
            .join(", ");
        // A row is updated when it changes, or when a cleanup claims it.
        let updates = "c._intake_class = 'u'
             OR ($1 AND c._intake_class = 'same' AND c._intake_was IS DISTINCT FROM $2)";
        // Keys whose encodings differ are distinct in the database too, but for numbers
        // (`1.0` and `1.00`, `0` and `-0`): two staged rows of one such key would meet one
        // table row, which the update changes once.
        let distinct = if self.key.iter().any(|&k| {
            matches!(
                self.plan.schema.columns[k].ty,
                ColumnType::Decimal | ColumnType::Float
            )
        }) {
            "AND count(DISTINCT _intake_at) = count(_intake_at)"
        } else {
            ""
        };
        let sql = format!(
            "WITH c AS (
                 SELECT s.*, t.ctid AS _intake_at, t.{owner} AS _intake_was,
                        CASE WHEN t.{first_key} IS NULL THEN 'c'
                             WHEN ROW({t_cmp}) IS NOT DISTINCT FROM ROW({s_cmp}) THEN 'same'
                             ELSE 'u' END AS _intake_class
                 FROM {stage} s LEFT JOIN {target} t ON {key_match}),
             {journal}
             u AS (
                 UPDATE {target} t SET {set} FROM c
                 WHERE t.ctid = c._intake_at AND ({updates})
                 RETURNING 1),
             i AS (
                 INSERT INTO {target} ({columns}, {owner}, {row})
                 SELECT {c_names}, $2, c.{row} FROM c WHERE c._intake_class = 'c')
             SELECT count(*) FILTER (WHERE _intake_class = 'c'),
                    count(*) FILTER (WHERE _intake_class = 'u'),
                    count(*) FILTER (WHERE _intake_class = 'same'),
                    count(*) FILTER (WHERE {updates}) = (SELECT count(*) FROM u) {distinct}
             FROM c"
        );
        // The staging table has no statistics: for a few thousand rows the planner looks
        // each one up by the key, but for tens of thousands it may sort them and merge them
        // with the whole key index, or scan the whole table to meet them by `ctid`. A lookup
        // per row costs the same whatever the table's size. The rows the statement holds
        // (tens of thousands in a streamed transaction) stay in memory. (The caller's
        // savepoint, rolled back on failure, takes these settings back too.)
        tx.batch_execute(
            "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;
             SET LOCAL work_mem = '64MB'",
        )?;
        let r = tx.query_one(&sql, &[&self.cleanup, &self.number])?;
        if !r.try_get::<_, bool>(3)? {
            return Ok(None);
        }
        tx.batch_execute(
            "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT;
             SET LOCAL work_mem TO DEFAULT",
        )?;
        counts(&r).map(Some)
    }

    /// The set-based upsert; fails on a unique column other than the key.
    fn upsert_set(
        &self,
        tx: &mut impl GenericClient,
        names: &Names,
    ) -> Result<(u64, u64, u64), ::postgres::Error> {
        let cols = &self.plan.schema.columns;
        let UpsertParts {
            keys,
            first_key,
            row,
            owner,
            s_cmp,
            t_cmp,
            names: columns,
            c_names,
            set,
            stage,
            target,
            key_match,
        } = self.upsert_parts(names);
        let st_cmp: Vec<String> = cols.iter().map(|c| compare_expr("st.", c)).collect();
        let c_key: Vec<String> = self.key_names().iter().map(|k| format!("c.{k}")).collect();
        let sql = format!(
            "WITH s AS (
                 SELECT st.*, row_number() OVER w AS occ,
                        lag(ROW({st_cmp})) OVER w AS prev,
                        min(st.{row}) OVER (PARTITION BY {st_keys}) AS first_row
                 FROM {stage} st WINDOW w AS (PARTITION BY {st_keys} ORDER BY st.{row})),
             c AS (
                 SELECT s.*, t.{owner} AS old_owner,
                        CASE WHEN s.occ = 1 AND t.{first_key} IS NULL THEN 'c'
                             WHEN s.occ = 1 AND ROW({t_cmp}) IS NOT DISTINCT FROM ROW({s_cmp})
                                 THEN 'same'
                             WHEN s.occ > 1 AND s.prev IS NOT DISTINCT FROM ROW({s_cmp})
                                 THEN 'same'
                             ELSE 'u' END AS class
                 FROM s LEFT JOIN {target} t ON {key_match}),
             k AS (
                 SELECT {c_keys}, bool_or(c.class = 'u') AS changed FROM c GROUP BY {c_keys}
                 HAVING bool_or(c.class <> 'same')
                     OR ($1 AND bool_or(c.old_owner IS DISTINCT FROM $2))),
             {journal}
             w AS (
                 INSERT INTO {target} ({columns}, {owner}, {row})
                 SELECT DISTINCT ON ({c_keys}) {c_names}, $2, c.first_row
                 FROM c JOIN k ON {ck_match}
                 ORDER BY {c_keys}, c.{row} DESC
                 ON CONFLICT ({keys}) DO UPDATE SET {set})
             SELECT count(*) FILTER (WHERE class = 'c'),
                    count(*) FILTER (WHERE class = 'u'),
                    count(*) FILTER (WHERE class = 'same')
             FROM c",
            st_cmp = st_cmp.join(", "),
            st_keys = self
                .key_names()
                .iter()
                .map(|k| format!("st.{k}"))
                .collect::<Vec<_>>()
                .join(", "),
            c_keys = c_key.join(", "),
            ck_match = self.key_match("c", "k"),
            // Only the version from before this import is journaled: a row it created or
            // changed already is undone by that first entry (or deleted).
            journal = match names.journal() {
                Some(journal) => format!(
                    "j AS (
                         INSERT INTO {journal} ({stored}, {op})
                         SELECT {t_stored}, CASE WHEN k.changed THEN 'updated' ELSE 'claimed' END
                         FROM {target} t JOIN k ON {tk_match}
                         WHERE t.{owner} IS DISTINCT FROM $2 ORDER BY t.{row}),",
                    stored = self.column_list(),
                    t_stored = self.column_list_of("t"),
                    op = quote(JOURNAL_OP_COLUMN),
                    tk_match = self.key_match("t", "k"),
                ),
                None => String::new(),
            },
        );
        let r = tx.query_one(&sql, &[&self.cleanup, &self.number])?;
        counts(&r)
    }

    /// The upsert of one batch row by row, for a batch whose rows break a unique column other
    /// than the key: each row is checked, written or refused as the SQLite backend does.
    fn upsert_each(
        &self,
        tx: &mut impl GenericClient,
        w: &Work<'_>,
        a: &mut Applied,
    ) -> StoreResult<()> {
        let Work { names, batch, enc } = *w;
        let cols = &self.plan.schema.columns;
        let n = cols.len();
        let target = names.target();
        let row = quote(ROW_COLUMN);
        let owner = quote(IMPORT_COLUMN);
        // Parameters: $1..$n the row's values, cast to their columns' types.
        let params: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, scalar_type(c.ty)))
            .collect();
        let param_cmp: Vec<String> = cols
            .iter()
            .zip(&params)
            .map(|(c, p)| match c.ty {
                ColumnType::Json => format!("{p}::text"),
                _ => p.clone(),
            })
            .collect();
        let t_cmp: Vec<String> = cols.iter().map(|c| compare_expr("t.", c)).collect();
        let key_cond: Vec<String> = self
            .key
            .iter()
            .map(|&i| format!("t.{} = {}", quote(cols[i].name.as_str()), params[i]))
            .collect();
        let key_cond = key_cond.join(" AND ");
        let select = format!(
            "SELECT ROW({}) IS NOT DISTINCT FROM ROW({}), t.{owner} FROM {target} t WHERE {key_cond}",
            t_cmp.join(", "),
            param_cmp.join(", ")
        );
        // Copies the row of a key into the journal: $1 why, then the key's values.
        let journal = names.journal().map(|journal| {
            let cond: Vec<String> = self
                .key
                .iter()
                .enumerate()
                .map(|(j, &i)| {
                    format!(
                        "t.{} = ${}::{}",
                        quote(cols[i].name.as_str()),
                        j + 2,
                        scalar_type(cols[i].ty)
                    )
                })
                .collect();
            format!(
                "INSERT INTO {journal} ({}, {op}) SELECT {}, $1 FROM {target} t WHERE {}",
                self.column_list(),
                self.column_list_of("t"),
                cond.join(" AND "),
                op = quote(JOURNAL_OP_COLUMN),
            )
        });
        let names_list: Vec<String> = cols.iter().map(|c| quote(c.name.as_str())).collect();
        let insert = format!(
            "INSERT INTO {target} ({}, {owner}, {row}) VALUES ({}, ${}, ${})",
            names_list.join(", "),
            params.join(", "),
            n + 1,
            n + 2
        );
        let set: Vec<String> = names_list
            .iter()
            .zip(&params)
            .map(|(c, p)| format!("{c} = {p}"))
            .collect();
        let update = format!(
            "UPDATE {target} t SET {}, {owner} = ${} WHERE {key_cond}",
            set.join(", "),
            n + 1
        );
        let refused: Vec<usize> = enc.refused.iter().map(|(i, _)| *i).collect();
        for (i, r) in batch.rows.iter().enumerate() {
            if refused.contains(&i) {
                continue;
            }
            let cells: Vec<Cell<'_>> = cols
                .iter()
                .zip(&r.values)
                .map(|(c, v)| Cell { ty: c.ty, value: v })
                .collect();
            let mut args: Vec<&(dyn ToSql + Sync)> =
                cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            let existing = tx.query_opt(&select, &args)?;
            let place = enc.base + i as i64;
            let (sql, op, outcome) = match &existing {
                None => (&insert, None, 0),
                Some(found) => {
                    let same: bool = found.try_get(0)?;
                    if same && !self.cleanup {
                        a.out.unchanged += 1;
                        continue;
                    }
                    // Claiming a row writes the values it already has with this import's
                    // number.
                    if same {
                        (&update, Some("claimed"), 2)
                    } else {
                        (&update, Some("updated"), 1)
                    }
                }
            };
            let mut call_args = args.clone();
            call_args.push(&self.number);
            if existing.is_none() {
                call_args.push(&place);
            }
            tx.batch_execute("SAVEPOINT one_row")?;
            // Only the version from before this import is journaled, before it changes; a
            // refused change takes its entry back with it.
            if let (Some(op), Some(found), Some(journal)) = (op, &existing, &journal) {
                let owner: i64 = found.try_get(1)?;
                if owner != self.number {
                    let mut journal_args: Vec<&(dyn ToSql + Sync)> = vec![&op];
                    journal_args.extend(self.key.iter().map(|&k| args[k]));
                    tx.execute(journal.as_str(), &journal_args)?;
                }
            }
            match tx.execute(sql.as_str(), &call_args) {
                Ok(_) => {
                    tx.batch_execute("RELEASE one_row")?;
                    match outcome {
                        0 => a.out.created += 1,
                        1 => a.out.updated += 1,
                        _ => a.out.unchanged += 1,
                    }
                }
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    tx.batch_execute("ROLLBACK TO one_row; RELEASE one_row")?;
                    let label = match e.as_db_error().and_then(|d| d.constraint()) {
                        Some(name) => constraint_columns(tx, &target, name)?,
                        None => None,
                    };
                    if self.cleanup {
                        a.kept
                            .push(self.key.iter().map(|&k| r.values[k].clone()).collect());
                    }
                    a.refused.push((i, duplicate(r, label)));
                }
                Err(e) => return Err(e.into()),
            }
            args.clear();
        }
        Ok(())
    }

    /// Marks the table's rows of these keys as written by this import, so that cleanup keeps
    /// them (the journal gives the previous owner back on undo).
    fn keep_keys(
        &self,
        tx: &mut impl GenericClient,
        names: &Names,
        kept: &[Vec<Value>],
    ) -> StoreResult<()> {
        if kept.is_empty() || self.key.is_empty() {
            return Ok(());
        }
        let (unnest, arrays) = self.key_arrays(kept, 1);
        let target = names.target();
        let owner = quote(IMPORT_COLUMN);
        let row = quote(ROW_COLUMN);
        let journal = match names.journal() {
            Some(journal) => format!(
                "j AS (INSERT INTO {journal} ({}, {op})
                       SELECT {}, 'claimed' FROM {target} t JOIN k ON {km}
                       WHERE t.{owner} <> $1 ORDER BY t.{row}),",
                self.column_list(),
                self.column_list_of("t"),
                op = quote(JOURNAL_OP_COLUMN),
                km = self.key_match("t", "k"),
            ),
            None => String::new(),
        };
        let sql = format!(
            "WITH k AS (SELECT DISTINCT * FROM {unnest}), {journal}
             done AS (UPDATE {target} t SET {owner} = $1 FROM k WHERE {km} AND t.{owner} <> $1)
             SELECT 1",
            km = self.key_match("t", "k"),
        );
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&self.number];
        args.extend(arrays.iter().map(|a| a as &(dyn ToSql + Sync)));
        // Parameter numbers of the arrays start after the one above.
        tx.execute(&sql, &args)?;
        Ok(())
    }

    /// `unnest($f::t1[], $f+1::t2[]) AS k(k1, k2)` over key values, and the arrays to bind.
    fn key_arrays<'v>(&self, keys: &'v [Vec<Value>], first: usize) -> (String, Vec<Vec<Cell<'v>>>) {
        let cols = &self.plan.schema.columns;
        let mut arrays: Vec<Vec<Cell<'v>>> = vec![Vec::with_capacity(keys.len()); self.key.len()];
        for key in keys {
            for (j, &i) in self.key.iter().enumerate() {
                if let Some(v) = key.get(j) {
                    arrays[j].push(Cell {
                        ty: cols[i].ty,
                        value: v,
                    });
                }
            }
        }
        let casts: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(j, &i)| format!("${}::{}[]", first + 1 + j, scalar_type(cols[i].ty)))
            .collect();
        let unnest = format!(
            "unnest({}) AS k({})",
            casts.join(", "),
            self.key_names().join(", ")
        );
        (unnest, arrays)
    }

    /// Records the keys of a dry-run batch's rows that would have been written (rows the
    /// database refused keep their place too, as in a real run).
    fn mark_seen(
        &self,
        tx: &mut impl GenericClient,
        names: &Names,
        seen: &str,
        batch: &Batch,
    ) -> StoreResult<()> {
        let mut keys: Vec<Vec<Value>> = batch
            .rows
            .iter()
            .map(|r| self.key.iter().map(|&i| r.values[i].clone()).collect())
            .collect();
        keys.extend(batch.kept_keys.iter().cloned());
        if keys.is_empty() || self.key.is_empty() {
            return Ok(());
        }
        let (unnest, arrays) = self.key_arrays(&keys, 0);
        let args: Vec<&(dyn ToSql + Sync)> =
            arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        tx.execute(
            &format!(
                "INSERT INTO {} SELECT DISTINCT * FROM {unnest} ON CONFLICT DO NOTHING",
                qualified(&names.slug, seen)
            ),
            &args,
        )?;
        Ok(())
    }

    fn store_errors(&self, tx: &mut impl GenericClient, errors: &[&RowError]) -> StoreResult<u64> {
        if errors.is_empty() {
            return Ok(0);
        }
        let stored: i64 = tx
            .query_one(
                "SELECT errors_stored FROM intake_imports WHERE id = $1",
                &[&self.import_id],
            )?
            .try_get(0)?;
        let room = (self.plan.max_stored_errors as i64 - stored).max(0) as usize;
        let kept: Vec<&&RowError> = errors.iter().take(room).collect();
        if kept.is_empty() {
            return Ok(0);
        }
        let lines: Vec<i64> = kept.iter().map(|e| e.line as i64).collect();
        let records: Vec<i64> = kept.iter().map(|e| e.record as i64).collect();
        let columns: Vec<Option<String>> = kept.iter().map(|e| e.column.clone()).collect();
        let codes: Vec<&str> = kept.iter().map(|e| e.code.as_str()).collect();
        let messages: Vec<&str> = kept.iter().map(|e| e.message.as_str()).collect();
        let rows: Vec<&serde_json::Value> = kept.iter().map(|e| &e.row).collect();
        tx.execute(
            "INSERT INTO intake_row_errors (import_id, position, line, record, column_name, code,
             message, row)
             SELECT $1, $2, e.line, e.record, e.column_name, e.code, e.message, e.row
             FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                         $8::json[]) WITH ORDINALITY
                  AS e(line, record, column_name, code, message, row, n)
             ORDER BY e.n",
            &[
                &self.import_id,
                &i64::from(self.plan.position),
                &lines,
                &records,
                &columns,
                &codes,
                &messages,
                &rows,
            ],
        )?;
        Ok(kept.len() as u64)
    }

    /// Drops the tables loaded on the side: a replace's new table, a dry run's seen keys.
    fn drop_side_tables(&self, tx: &mut impl GenericClient, names: &Names) -> StoreResult<()> {
        if names.target != names.table {
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", names.target()))?;
        }
        if let Some(seen) = &names.seen {
            tx.batch_execute(&format!(
                "DROP TABLE IF EXISTS {}",
                qualified(&names.slug, seen)
            ))?;
        }
        Ok(())
    }

    /// Undoes a replace: when its table was swapped in, the previous one comes back;
    /// otherwise the table it was loading is dropped.
    fn swap_back_or_drop(&self, tx: &mut impl GenericClient, names: &Names) -> StoreResult<()> {
        let undo = undo_table(&names.table, self.number);
        if exists(tx, &names.slug, &undo)? {
            tx.batch_execute(&format!(
                "DROP TABLE {table}; ALTER TABLE {undo} RENAME TO {name};",
                table = names.table(),
                undo = qualified(&names.slug, &undo),
                name = quote(&names.table)
            ))?;
        }
        self.drop_side_tables(tx, names)
    }

    /// Puts back the rows this import updated or destroyed (each key's oldest version, as
    /// undoing the journal newest first would) and deletes the rows it created.
    /// Takes the table's counts of changes off the import's and sets them to none, with the
    /// undo: rows that were undone are not reported as created (or updated).
    fn forget_changes(&self, tx: &mut impl GenericClient) -> StoreResult<()> {
        let position = i64::from(self.plan.position);
        tx.execute(
            "UPDATE intake_imports i SET created = i.created - t.created,
             updated = i.updated - t.updated, unchanged = i.unchanged - t.unchanged
             FROM intake_import_tables t
             WHERE i.id = $1 AND t.import_id = $1 AND t.position = $2",
            &[&self.import_id, &position],
        )?;
        tx.execute(
            "UPDATE intake_import_tables SET created = 0, updated = 0, unchanged = 0
             WHERE import_id = $1 AND position = $2",
            &[&self.import_id, &position],
        )?;
        Ok(())
    }

    fn undo_rows(&self, tx: &mut impl GenericClient, names: &Names) -> StoreResult<()> {
        let table = names.table();
        let owner = quote(IMPORT_COLUMN);
        let row = quote(ROW_COLUMN);
        let position = i64::from(self.plan.position);
        let cols: Vec<String> = self
            .plan
            .schema
            .columns
            .iter()
            .map(|c| quote(c.name.as_str()))
            .collect();
        if !self.key.is_empty() {
            let keys = self.key_names();
            let set: Vec<String> = cols
                .iter()
                .chain(std::iter::once(&owner))
                .map(|c| format!("{c} = o.{c}"))
                .collect();
            tx.execute(
                &format!(
                    "UPDATE {table} t SET {set}
                     FROM (SELECT DISTINCT ON ({r_keys}) r.*
                           FROM intake_undo u
                           CROSS JOIN LATERAL json_populate_record(NULL::{table}, u.row) r
                           WHERE u.import_id = $1 AND u.position = $2 AND u.op <> 'destroyed'
                           ORDER BY {r_keys}, u.id) o
                     WHERE {km}",
                    set = set.join(", "),
                    r_keys = keys
                        .iter()
                        .map(|k| format!("r.{k}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    km = self.key_match("t", "o"),
                ),
                &[&self.import_id, &position],
            )?;
            // Destroyed rows come back at the end of storage order, newest first, as the
            // SQLite backend re-inserts them.
            tx.execute(
                &format!(
                    "INSERT INTO {table} ({cols}, {owner}, {row})
                     SELECT {r_cols}, r.{owner},
                            (SELECT coalesce(max({row}), 0) FROM {table})
                              + row_number() OVER (ORDER BY u.id DESC)
                     FROM intake_undo u
                     CROSS JOIN LATERAL json_populate_record(NULL::{table}, u.row) r
                     WHERE u.import_id = $1 AND u.position = $2 AND u.op = 'destroyed'",
                    cols = cols.join(", "),
                    r_cols = cols
                        .iter()
                        .map(|c| format!("r.{c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                &[&self.import_id, &position],
            )?;
        }
        self.undo_from_journal(tx, names)?;
        tx.execute(
            &format!("DELETE FROM {table} WHERE {owner} = $1"),
            &[&self.number],
        )?;
        tx.execute(
            "DELETE FROM intake_undo WHERE import_id = $1 AND position = $2",
            &[&self.import_id, &position],
        )?;
        Ok(())
    }

    /// Puts back the rows of the upsert's journal, set by set: the rows it updated or
    /// claimed get their old values and import, the rows it destroyed come back at the end
    /// of storage order, newest first. Drops the journal.
    fn undo_from_journal(&self, tx: &mut impl GenericClient, names: &Names) -> StoreResult<()> {
        let name = journal_table(&names.table, self.number);
        if self.key.is_empty() || !exists(tx, &names.slug, &name)? {
            return Ok(());
        }
        let journal = qualified(&names.slug, &name);
        let table = names.table();
        let owner = quote(IMPORT_COLUMN);
        let row = quote(ROW_COLUMN);
        let op = quote(JOURNAL_OP_COLUMN);
        let cols: Vec<String> = self
            .plan
            .schema
            .columns
            .iter()
            .map(|c| quote(c.name.as_str()))
            .chain(std::iter::once(owner.clone()))
            .collect();
        let set: Vec<String> = cols.iter().map(|c| format!("{c} = o.{c}")).collect();
        let o_cols: Vec<String> = cols.iter().map(|c| format!("o.{c}")).collect();
        tx.batch_execute(&format!(
            "UPDATE {table} t SET {set} FROM {journal} o
             WHERE o.{op} <> 'destroyed' AND {km};
             INSERT INTO {table} ({cols}, {row})
             SELECT {o_cols}, (SELECT coalesce(max({row}), 0) FROM {table})
                              + row_number() OVER (ORDER BY o.{row} DESC)
             FROM {journal} o WHERE o.{op} = 'destroyed';
             DROP TABLE {journal};",
            set = set.join(", "),
            km = self.key_match("t", "o"),
            cols = cols.join(", "),
            o_cols = o_cols.join(", "),
        ))?;
        Ok(())
    }

    fn names_ready(&mut self) -> StoreResult<()> {
        self.names()?;
        Ok(())
    }

    /// Writes one batch through the staging table (upserts, dry runs, and inserts once a key
    /// was taken).
    fn write_batch(
        &self,
        tx: &mut impl GenericClient,
        names: &Names,
        batch: &Batch,
        base: i64,
    ) -> StoreResult<BatchOutcome> {
        // A dry run (but for replace, which loads a side table) applies the batch to learn
        // its counts, then takes it back.
        let rewind = self.plan.dry_run && self.plan.mode != Mode::Replace;
        if rewind {
            tx.batch_execute("SAVEPOINT dry_run")?;
        }
        let enc = &self.encode(batch, base);
        let mut a = Applied {
            out: BatchOutcome {
                invalid: batch.invalid_before_writing(),
                ..BatchOutcome::default()
            },
            refused: enc.refused.clone(),
            kept: Vec::new(),
        };
        if self.cleanup {
            a.kept.extend(enc.refused.iter().map(|(i, _)| {
                self.key
                    .iter()
                    .map(|&k| batch.rows[*i].values[k].clone())
                    .collect()
            }));
        }
        let work = Work { names, batch, enc };
        let applied = if self.plan.mode == Mode::Upsert {
            self.upsert_rows(tx, &work, &mut a)
        } else {
            self.insert_rows(tx, &work, &mut a)
        };
        let applied = applied.and_then(|()| {
            if self.cleanup && !self.plan.dry_run {
                self.keep_keys(tx, names, &a.kept)
            } else {
                Ok(())
            }
        });
        if rewind {
            tx.batch_execute("ROLLBACK TO dry_run; RELEASE dry_run")?;
        }
        applied?;
        let mut out = a.out;
        out.invalid += a.refused.len() as u64;
        if let Some(seen) = &names.seen {
            self.mark_seen(tx, names, seen, batch)?;
        } else if self.cleanup {
            self.keep_keys(tx, names, &batch.kept_keys)?;
        }
        let mut errors: Vec<&RowError> = batch
            .errors
            .iter()
            .chain(a.refused.iter().map(|(_, e)| e))
            .collect();
        errors.sort_by_key(|e| e.record);
        let tally = Tally {
            processed: batch.processed(),
            created: out.created,
            updated: out.updated,
            unchanged: out.unchanged,
            invalid: out.invalid,
            warnings: batch
                .warnings
                .iter()
                .map(|w| (w.clone(), batch.warned_fields.clone()))
                .collect(),
            checkpoint: batch.checkpoint,
            bytes_read: batch.bytes_read,
        };
        out.cancel_requested = self.record(tx, &tally, &errors)?;
        Ok(out)
    }

    /// Records what a transaction applied, before it commits: its row errors (up to the
    /// stored cap), the counts and checkpoint of the table and of the import, and its
    /// warnings as events. The statement that records the counts also checks and extends
    /// the lease (fencing: the check and the commit happen with the import's row locked),
    /// and that the table's checkpoint is the one this transaction follows on from (`Replay`
    /// when a database crash lost a commit this writer saw succeed). Returns whether a
    /// cancel was asked.
    fn record(
        &self,
        tx: &mut impl GenericClient,
        t: &Tally,
        errors: &[&RowError],
    ) -> StoreResult<bool> {
        let stored = self.store_errors(tx, errors)?;
        let position = i64::from(self.plan.position);
        // One statement for both rows (a round trip per transaction): the import's bytes read
        // sum its tables', this one's as just updated.
        // Typed parameters: no statement preparation, one round trip.
        let lease = tx.query_typed_opt(
            "WITH t AS (
                 UPDATE intake_import_tables SET processed = processed + $3,
                 created = created + $4, updated = updated + $5, unchanged = unchanged + $6,
                 invalid = invalid + $7, bytes_read = $8, checkpoint_offset = $9,
                 checkpoint_line = $10, checkpoint_record = $11, warnings = warnings + $12
                 WHERE import_id = $1 AND position = $2
                   AND ($17::bigint IS NULL OR checkpoint_offset = $17) RETURNING bytes_read)
             UPDATE intake_imports SET processed = processed + $3, created = created + $4,
             updated = updated + $5, unchanged = unchanged + $6, invalid = invalid + $7,
             errors_stored = errors_stored + $13, updated_at = $14, warnings = warnings + $12,
             bytes_read = (SELECT bytes_read FROM t)
                 + (SELECT coalesce(sum(bytes_read), 0)::bigint FROM intake_import_tables
                    WHERE import_id = $1 AND position <> $2),
             lease_expires_at = now() + $16::bigint * interval '1 millisecond'
             WHERE id = $1 AND lease_token = $15 AND EXISTS (SELECT 1 FROM t)
             RETURNING cancel_requested",
            &[
                (&self.import_id, Type::UUID),
                (&position, Type::INT8),
                (&(t.processed as i64), Type::INT8),
                (&(t.created as i64), Type::INT8),
                (&(t.updated as i64), Type::INT8),
                (&(t.unchanged as i64), Type::INT8),
                (&(t.invalid as i64), Type::INT8),
                (&(t.bytes_read as i64), Type::INT8),
                (&(t.checkpoint.byte_offset as i64), Type::INT8),
                (&(t.checkpoint.line as i64), Type::INT8),
                (&(t.checkpoint.record as i64), Type::INT8),
                (&(t.warnings.len() as i64), Type::INT8),
                (&(stored as i64), Type::INT8),
                (&now(), Type::TIMESTAMPTZ),
                (&self.token, Type::INT8),
                (&self.lease_ms, Type::INT8),
                (&self.follows.get(), Type::INT8),
            ],
        )?;
        let Some(lease) = lease else {
            // Which check failed: the lease, or the checkpoint.
            let ours = tx
                .query_opt(
                    "SELECT lease_token = $2 FROM intake_imports WHERE id = $1",
                    &[&self.import_id, &self.token],
                )?
                .map(|r| r.try_get::<_, bool>(0))
                .transpose()?;
            return Err(match ours {
                Some(true) => StoreError::Replay,
                _ => StoreError::LeaseLost,
            });
        };
        // After the import's row: every transaction that appends events and changes that row
        // takes the two locks in this order.
        for (message, fields) in &t.warnings {
            append_event(
                tx,
                self.workspace_id,
                self.import_id,
                "import.warning",
                &serde_json::json!({
                    "table_position": self.plan.position,
                    "message": message,
                    "fields": fields,
                }),
            )?;
        }
        Ok(lease.try_get(0)?)
    }

    /// Notes that a commit reached the checkpoint `at`: the next one follows on from it.
    fn committed(&self, at: Position) {
        if self.follows.get().is_some() {
            self.follows.set(Some(at.byte_offset as i64));
        }
    }

    /// Whether batches stream into one COPY per transaction: inserts (and replaces, into
    /// their new table) straight into the target until a key is taken; upserts into the
    /// staging table until a unique column other than the key conflicts, and without
    /// cleanup (whose kept keys are written batch by batch); not a dry run that must take
    /// its rows back.
    fn streams(&self) -> bool {
        let rewind = self.plan.dry_run && self.plan.mode != Mode::Replace;
        !rewind && !self.cleanup && self.direct.load(Ordering::Relaxed)
    }

    /// Sends batches in one transaction, their rows numbered from `base`: `first`, then what
    /// `next` yields until the transaction is due to commit, `next` ends or `seen` asks to
    /// stop. An insert COPYs them into the target; a refused COPY (a taken key) rolls
    /// everything back and answers `Replay`, and later batches take the staging table. An
    /// upsert COPYs them into the staging table, to be upserted all at once by
    /// [`PgWriter::end_group`].
    fn send_group<'p>(
        &self,
        conn: Conn<'p>,
        first: Batch,
        base: i64,
        next: &mut dyn FnMut() -> Option<Batch>,
        seen: &mut dyn FnMut(&BatchOutcome) -> bool,
        spent: &mut dyn FnMut(Batch),
    ) -> StoreResult<Sent<'p>> {
        let upsert = self.plan.mode == Mode::Upsert;
        let names = self.known_names()?;
        let mut tx = Open::begin(conn)?;
        let destination = if upsert {
            let stage = quote(&names.stage);
            tx.conn.batch_execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {}) ON COMMIT DELETE ROWS",
                names.target()
            ))?;
            stage
        } else {
            names.target()
        };
        // An upsert's staged keys, as hashes of their encoded values: a repeated one (or
        // two that collide) makes the group take the general statement.
        let hasher = std::hash::RandomState::new();
        let mut keys = std::collections::HashSet::new();
        let mut distinct = true;
        let mut key = Vec::new();
        let mut tally = Tally::default();
        let mut errors: Vec<RowError> = Vec::new();
        let mut numbered = 0i64;
        let mut more = true;
        let started = Instant::now();
        let copied = {
            let mut w = tx.conn.copy_in(&format!(
                "COPY {destination} ({}) FROM STDIN (FORMAT binary)",
                self.column_list()
            ))?;
            let mut buf = Vec::with_capacity(CHUNK + (64 << 10));
            copy_header(&mut buf);
            // A COPY the database refused stops taking rows; its end says why.
            let mut refused_copy = false;
            let mut batch = first;
            loop {
                let mut out = BatchOutcome {
                    invalid: batch.invalid_before_writing(),
                    ..BatchOutcome::default()
                };
                // `created` counts the rows sent, for `seen`'s running totals: an upsert's
                // split is known when its statement has run.
                for (i, row) in batch.rows.iter().enumerate() {
                    match self.encode_row(row, base + numbered + i as i64, &mut buf) {
                        Ok(()) => {
                            out.created += 1;
                            if upsert && distinct {
                                distinct = self.encode_key(row, &mut key)
                                    && keys.insert(hasher.hash_one(&key));
                            }
                        }
                        Err(e) => {
                            out.invalid += 1;
                            errors.push(*e);
                        }
                    }
                    if buf.len() >= CHUNK {
                        refused_copy |= w.write_all(&buf).is_err();
                        buf.clear();
                    }
                }
                // Sent now, so that the database works while the next batch is awaited.
                refused_copy |= w.write_all(&buf).is_err();
                buf.clear();
                numbered += batch.rows.len() as i64;
                tally.absorb(&mut batch, &out, &mut errors);
                spent(batch);
                if seen(&out) {
                    more = false;
                    break;
                }
                if refused_copy
                    || tally.processed >= GROUP_ROWS
                    || errors.len() >= GROUP_ERRORS
                    || started.elapsed() >= GROUP_TIME
                {
                    break;
                }
                match next() {
                    Some(b) => batch = b,
                    None => {
                        more = false;
                        break;
                    }
                }
            }
            copy_trailer(&mut buf);
            let _ = w.write_all(&buf);
            w.finish()
        };
        if let Err(e) = copied {
            // A lost connection is not the data's fault: the batches are sent again the same
            // way once the database is back.
            let e = StoreError::from(e);
            if e.is_unavailable() {
                return Err(e);
            }
            // A taken key, most likely (an insert's): from now on batches are written one
            // by one through the staging table, which sorts out the rows the table refuses
            // (and reports any other cause).
            tracing::debug!(error = %e, import = %self.import_id, "COPY refused; batches replay one by one");
            self.direct.store(false, Ordering::Relaxed);
            return Err(StoreError::Replay);
        }
        Ok(Sent {
            tx,
            tally,
            errors,
            numbered,
            more,
            distinct,
        })
    }

    /// Ends a transaction [`PgWriter::send_group`] sent: an upsert's one statement, then
    /// the record of what it applied, and the commit; answers whether a cancel was asked. A
    /// unique column other than the key that conflicts rolls everything back and answers
    /// `Replay`, and later batches are upserted one by one (which reproduces the row-by-row
    /// outcome of such conflicts).
    fn end_group(&self, names: &Names, sent: Sent<'_>) -> StoreResult<bool> {
        let Sent {
            mut tx,
            mut tally,
            mut errors,
            distinct,
            ..
        } = sent;
        if self.plan.mode == Mode::Upsert && tally.created > 0 {
            match self.upsert_staged(&mut *tx.conn, names, distinct) {
                Ok((created, updated, unchanged)) => {
                    tally.created = created;
                    tally.updated = updated;
                    tally.unchanged = unchanged;
                }
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    tracing::debug!(import = %self.import_id, "a unique column conflicts; batches replay one by one");
                    self.direct.store(false, Ordering::Relaxed);
                    return Err(StoreError::Replay);
                }
                Err(e) => return Err(e.into()),
            }
        }
        errors.sort_by_key(|e| e.record);
        let refs: Vec<&RowError> = errors.iter().collect();
        let cancel_requested = self.record(&mut *tx.conn, &tally, &refs)?;
        tx.commit()?;
        self.committed(tally.checkpoint);
        Ok(cancel_requested)
    }
}

/// The thread ending a streamed upsert's transaction; it answers whether a cancel was asked.
type Ending<'s> = ScopedJoinHandle<'s, StoreResult<bool>>;

/// Waits for the transaction being ended, if any; answers whether the writer is to stop.
fn wait(
    ending: &mut Option<Ending<'_>>,
    seen: &mut dyn FnMut(&BatchOutcome) -> bool,
) -> StoreResult<bool> {
    let Some(h) = ending.take() else {
        return Ok(false);
    };
    let cancel_requested = h
        .join()
        .map_err(|_| StoreError::Database("the writer's commit thread failed".into()))??;
    Ok(cancel_requested && cancel(seen))
}

/// Tells `seen` that a cancel was asked; answers whether the writer is to stop.
fn cancel(seen: &mut dyn FnMut(&BatchOutcome) -> bool) -> bool {
    seen(&BatchOutcome {
        cancel_requested: true,
        ..BatchOutcome::default()
    })
}

impl Tally {
    /// Adds a batch streamed with outcome `out`; its validation errors join `errors` (kept
    /// in the order of their records).
    fn absorb(&mut self, batch: &mut Batch, out: &BatchOutcome, errors: &mut Vec<RowError>) {
        self.processed += batch.processed();
        self.created += out.created;
        self.invalid += out.invalid;
        let fields = std::mem::take(&mut batch.warned_fields);
        self.warnings
            .extend(batch.warnings.drain(..).map(|w| (w, fields.clone())));
        errors.append(&mut batch.errors);
        self.checkpoint = batch.checkpoint;
        self.bytes_read = batch.bytes_read;
    }
}

/// The error of a row holding a value the database cannot store.
fn unstorable(row: &TypedRow, column: &str, why: Unstorable) -> RowError {
    RowError {
        line: row.line,
        record: row.record,
        column: Some(column.to_owned()),
        code: match why {
            Unstorable::Nul => RowErrorCode::InvalidEncoding,
            Unstorable::Mismatch => RowErrorCode::InvalidType,
        },
        message: match why {
            Unstorable::Nul => {
                "the value contains the NUL character (U+0000), which the database cannot store"
                    .into()
            }
            Unstorable::Mismatch => "the value does not fit the column".into(),
        },
        row: row.original.to_json(),
    }
}

/// A `duplicate_key` error for a row the database refused.
fn duplicate(row: &TypedRow, column: Option<String>) -> RowError {
    RowError {
        line: row.line,
        record: row.record,
        message: format!(
            "another row already has this value of {}",
            column.as_deref().unwrap_or("the key")
        ),
        column,
        code: RowErrorCode::DuplicateKey,
        row: row.original.to_json(),
    }
}

/// The columns of a table's constraint, as `a, b`.
fn constraint_columns(
    tx: &mut impl GenericClient,
    table: &str,
    constraint: &str,
) -> StoreResult<Option<String>> {
    let row = tx.query_opt(
        "SELECT string_agg(a.attname::text, ', ' ORDER BY k.n)
         FROM pg_catalog.pg_constraint c
         CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
         WHERE c.conrelid = to_regclass($1) AND c.conname = $2",
        &[&table, &constraint],
    )?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => None,
    })
}

/// A hash of a table's shape (column names and types), naming its staging table.
fn shape_hash(plan: &WritePlan) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for c in &plan.schema.columns {
        eat(c.name.as_str());
        eat(&super::values::declared_type(c));
        eat(if c.required { "1" } else { "0" });
    }
    h
}

impl BatchWriter for PgWriter {
    fn continue_from(&mut self, checkpoint: Position) {
        self.follows.set(Some(checkpoint.byte_offset as i64));
    }

    fn write(&mut self, batch: &Batch) -> StoreResult<BatchOutcome> {
        self.prepare()?;
        let names = self.known_names()?;
        let base = self.next_row(names)?;
        let out = self.inner.write_now(|tx| {
            tx.batch_execute("SET LOCAL synchronous_commit = off")?;
            self.write_batch(tx, names, batch, base)
        })?;
        self.next_row.set(Some(base + batch.rows.len() as i64));
        self.committed(batch.checkpoint);
        Ok(out)
    }

    fn write_stream(
        &mut self,
        next: &mut dyn FnMut() -> Option<Batch>,
        seen: &mut dyn FnMut(&BatchOutcome) -> bool,
        spent: &mut dyn FnMut(Batch),
    ) -> StoreResult<()> {
        self.prepare()?;
        if !self.streams() {
            return write_each(self, next, seen, spent);
        }
        let this = &*self;
        let names = this.known_names()?;
        // An upsert's transaction ends (its statement, its commit) on a thread of its own
        // while the next one's batches are sent on another connection (when the pool has
        // one to spare): the database stages them as it upserts the ones before.
        // Transactions still commit one after another, each statement starting once the
        // one before has committed.
        let overlap = this.plan.mode == Mode::Upsert;
        let ended = std::thread::scope(|scope| {
            let mut ending: Option<Ending<'_>> = None;
            while let Some(first) = next() {
                let base = this.next_row(names)?;
                // The transaction being ended holds a connection: the next one takes
                // another only if that leaves one free for others (the API, leases).
                let spare = match ending {
                    Some(_) => this.inner.pool.get_spare()?,
                    None => None,
                };
                let conn = match spare {
                    Some(conn) => conn,
                    None => {
                        if wait(&mut ending, seen)? {
                            return Ok(());
                        }
                        this.inner.pool.get()?
                    }
                };
                let sent = match this.send_group(conn, first, base, next, seen, spent) {
                    Ok(sent) => sent,
                    Err(e) => {
                        // What was sent before is ended first: its commit stands.
                        wait(&mut ending, seen)?;
                        return Err(e);
                    }
                };
                this.next_row.set(Some(base + sent.numbered));
                let more = sent.more;
                if wait(&mut ending, seen)? {
                    // The transaction just sent is rolled back.
                    this.next_row.set(None);
                    return Ok(());
                }
                if overlap {
                    ending = Some(scope.spawn(move || this.end_group(names, sent)));
                } else if this.end_group(names, sent)? && cancel(seen) {
                    return Ok(());
                }
                if !more {
                    break;
                }
            }
            wait(&mut ending, seen).map(drop)
        });
        ended.map_err(|e| {
            // Rows were numbered in a transaction that did not commit.
            this.next_row.set(None);
            match e {
                StoreError::Contention(_) => StoreError::Replay,
                e => e,
            }
        })
    }

    fn revert(&mut self) -> StoreResult<()> {
        self.names_ready()?;
        let names = self.known_names()?;
        self.inner.write_now(|tx| {
            check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            if self.plan.mode == Mode::Replace && !self.plan.dry_run {
                // A table of a stacked import may already have been swapped in: swap back.
                self.swap_back_or_drop(tx, names)?;
            } else if self.plan.dry_run {
                self.drop_side_tables(tx, names)?;
            } else {
                self.undo_rows(tx, names)?;
            }
            self.forget_changes(tx)
        })
    }

    fn roll_back(&mut self) -> StoreResult<()> {
        self.names_ready()?;
        let names = self.known_names()?;
        self.inner.write_now(|tx| {
            check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            let position = i64::from(self.plan.position);
            let status: String = tx
                .query_one(
                    "SELECT status FROM intake_import_tables WHERE import_id = $1 AND position = $2",
                    &[&self.import_id, &position],
                )?
                .try_get(0)?;
            // Each table is undone in one transaction that also marks it: a resumed rollback
            // skips the tables already done.
            if status == "rolled_back" {
                return Ok(());
            }
            if self.plan.mode == Mode::Replace && !self.plan.dry_run {
                self.swap_back_or_drop(tx, names)?;
            } else if !self.plan.dry_run {
                self.undo_rows(tx, names)?;
            }
            tx.execute(
                "UPDATE intake_import_tables SET status = 'rolled_back'
                 WHERE import_id = $1 AND position = $2",
                &[&self.import_id, &position],
            )?;
            Ok(())
        })
    }

    fn finish(&mut self, end: &TableEnd) -> StoreResult<u64> {
        self.prepare()?;
        let names = self.known_names()?;
        self.inner.write_now(|tx| {
            check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            let table = names.table();
            let owner = quote(IMPORT_COLUMN);
            let mut destroyed = 0u64;
            if self.plan.mode == Mode::Replace {
                let old: i64 = tx
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                    .try_get(0)?;
                destroyed = old.max(0) as u64;
                if self.plan.dry_run {
                    tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", names.target()))?;
                } else {
                    // Readers see the old table or the new one: both renames commit together.
                    // The old table stays as the undo copy until retention prunes it.
                    tx.batch_execute(&format!(
                        "ALTER TABLE {table} RENAME TO {undo}; ALTER TABLE {target} RENAME TO {name};",
                        undo = quote(&undo_table(&names.table, self.number)),
                        target = names.target(),
                        name = quote(&names.table)
                    ))
                    .map_err(|e| StoreError::Database(db_message(&e)))?;
                }
            } else if let Some(seen) = &names.seen {
                let gone: i64 = tx
                    .query_one(
                        &format!(
                            "SELECT count(*) FROM {table} t WHERE NOT EXISTS
                             (SELECT 1 FROM {} s WHERE {})",
                            qualified(&names.slug, seen),
                            self.key_match("s", "t")
                        ),
                        &[],
                    )?
                    .try_get(0)?;
                tx.batch_execute(&format!("DROP TABLE {}", qualified(&names.slug, seen)))?;
                destroyed = gone.max(0) as u64;
            } else if self.cleanup {
                let gone: i64 = tx
                    .query_one(
                        &format!(
                            "WITH gone AS (DELETE FROM {table} t WHERE t.{owner} <> $1 RETURNING t.*)
                             {journal}
                             SELECT count(*) FROM gone",
                            journal = match names.journal() {
                                Some(journal) => format!(
                                    ", j AS (INSERT INTO {journal} ({}, {op})
                                       SELECT {}, 'destroyed' FROM gone ORDER BY gone.{row})",
                                    self.column_list(),
                                    self.column_list_of("gone"),
                                    op = quote(JOURNAL_OP_COLUMN),
                                    row = quote(ROW_COLUMN),
                                ),
                                None => String::new(),
                            },
                        ),
                        &[&self.number],
                    )?
                    .try_get(0)?;
                destroyed = gone.max(0) as u64;
            }
            finish_cleaned_table(
                tx,
                self.workspace_id,
                self.import_id,
                self.plan.position,
                end,
                destroyed,
            )
        })
    }

    fn discard(&mut self) -> StoreResult<()> {
        self.names_ready()?;
        let names = self.known_names()?;
        self.inner.write_now(|tx| {
            check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            self.drop_side_tables(tx, names)
        })
    }
}
