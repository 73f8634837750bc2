//! The batch writer: loads typed rows into a user table, one transaction per batch holding
//! the rows, the undo journal, the row errors, the counts and the checkpoint.

use std::sync::Arc;

use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, OptionalExtension, ToSql, params};
use uuid::Uuid;

use super::imports::{append_event, check_lease};
use super::tables::{
    IMPORT_COLUMN, create_sql, journal_table, physical_name, table_exists, undo_table,
};
use super::values::{declared_type, journal_to_row, quote, same_value, to_sql, ts};
use super::{Inner, StoreResult, now};
use crate::model::{Mode, RowError, RowErrorCode, Value};
use crate::store::apply::finish_cleaned_table;
use crate::store::columns::JOURNAL_OP_COLUMN;
use crate::store::text::{push_date, push_datetime};
use crate::store::{Batch, BatchOutcome, BatchWriter, Claim, TableEnd, Workspace, WritePlan};

struct Cell<'a>(&'a Value);

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(to_sql(self.0))
    }
}

/// Writes one table of one import into SQLite.
pub struct SqliteWriter {
    inner: Arc<Inner>,
    import_id: Uuid,
    workspace_id: Uuid,
    number: i64,
    token: i64,
    lease_ms: i64,
    plan: WritePlan,
    cleanup: bool,
    /// The table rows go to: the real table, or for replace the table that will be swapped in.
    target: String,
    /// The real table.
    table: String,
    /// A dry run with cleanup writes nothing, so no row is marked as seen in the table: the
    /// keys of the rows it would have written go to this scratch table instead, committed with
    /// each batch's checkpoint, and the rows it would destroy are those whose key is not in it.
    seen: Option<String>,
    /// An upsert's journal of the previous versions of the rows it changes (none for a dry
    /// run, which keeps nothing).
    journal: Option<String>,
    /// Whether the journal exists.
    journal_open: bool,
    key: Vec<usize>,
    sql: Statements,
}

struct Statements {
    insert: String,
    /// The row of a key: its rowid, its columns, its import.
    select: String,
    /// Rewrites the row of a rowid: columns, import, rowid.
    update: String,
    /// Gives the row of a rowid to this import: import, rowid.
    claim: String,
    /// Copies the row of a rowid into the journal: rowid, why.
    journal: String,
}

/// The row an upsert found for a key.
struct Found {
    rowid: i64,
    /// Whether the row already holds the new values.
    same: bool,
    /// The import that last wrote it.
    owner: i64,
}

impl SqliteWriter {
    /// Prepares the writer (and for replace, the table the rows are loaded into).
    pub fn new(inner: Arc<Inner>, claim: &Claim, plan: WritePlan) -> StoreResult<SqliteWriter> {
        let slug: String = {
            let conn = inner.writer()?;
            super::tables::workspace_slug(&conn, claim.import.workspace_id)?
        };
        let ws = Workspace {
            id: claim.import.workspace_id,
            slug,
            name: String::new(),
            created_at: now(),
        };
        let table = physical_name(&ws, plan.schema.name.as_str());
        let number = claim.import.number;
        let target = match (plan.mode, plan.dry_run) {
            (Mode::Replace, false) => format!("{table}__replace_{number}"),
            (Mode::Replace, true) => format!("{table}__dry_run_{number}"),
            _ => table.clone(),
        };
        let key = plan.schema.key_indexes();
        let journal =
            (plan.mode == Mode::Upsert && !plan.dry_run).then(|| journal_table(&table, number));
        let sql = Statements::new(&plan, &target, &key, journal.as_deref());
        let cleanup = claim.import.cleanup_records && plan.mode == Mode::Upsert;
        let seen = (cleanup && plan.dry_run).then(|| format!("{table}__seen_{number}"));
        let writer = SqliteWriter {
            inner,
            import_id: claim.import.id,
            workspace_id: claim.import.workspace_id,
            number,
            token: claim.token,
            lease_ms: claim.lease_ms,
            cleanup,
            target,
            table,
            seen,
            journal,
            journal_open: false,
            key,
            sql,
            plan,
        };
        if let Some(seen) = &writer.seen {
            // Same declared types as the key columns, so that keys compare as in the table.
            let cols: Vec<String> = writer
                .key
                .iter()
                .map(|&i| {
                    let c = &writer.plan.schema.columns[i];
                    format!("{} {}", quote(c.name.as_str()), declared_type(c.ty))
                })
                .collect();
            let names: Vec<String> = writer
                .key
                .iter()
                .map(|&i| quote(writer.plan.schema.columns[i].name.as_str()))
                .collect();
            let create = format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
                quote(seen),
                cols.join(", "),
                names.join(", ")
            );
            writer
                .inner
                .write_now(|tx| Ok(tx.execute_batch(&create)?))?;
        }
        if writer.plan.mode == Mode::Replace {
            let create = create_sql(&writer.target, &writer.plan.schema).replacen(
                "CREATE TABLE",
                "CREATE TABLE IF NOT EXISTS",
                1,
            );
            // A dry run loads into a temporary table: never committed, gone with the connection.
            let create = if writer.plan.dry_run {
                create.replacen("CREATE TABLE", "CREATE TEMP TABLE", 1)
            } else {
                create
            };
            writer
                .inner
                .write_now(|tx| Ok(tx.execute_batch(&create)?))?;
        }
        Ok(writer)
    }

    /// Creates the journal, with the first write that may need it (a writer that only rolls
    /// back creates none).
    fn open_journal(&mut self) -> StoreResult<()> {
        let Some(journal) = self.journal.as_ref().filter(|_| !self.journal_open) else {
            return Ok(());
        };
        // The table's own columns and types, without its constraints: old versions of a key
        // may repeat, and values come back exactly as they were stored.
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} AS SELECT {}, '' AS {} FROM {} WHERE 0",
            quote(journal),
            self.stored_columns().join(", "),
            quote(JOURNAL_OP_COLUMN),
            quote(&self.table)
        );
        self.inner.write_now(|tx| Ok(tx.execute_batch(&create)?))?;
        self.journal_open = true;
        Ok(())
    }

    /// The table's columns and the import column, quoted.
    fn stored_columns(&self) -> Vec<String> {
        self.plan
            .schema
            .columns
            .iter()
            .map(|c| quote(c.name.as_str()))
            .chain(std::iter::once(quote(IMPORT_COLUMN)))
            .collect()
    }

    fn apply_rows(
        &self,
        tx: &Connection,
        batch: &Batch,
        out: &mut BatchOutcome,
        db_errors: &mut Vec<RowError>,
    ) -> StoreResult<()> {
        let upsert = self.plan.mode == Mode::Upsert;
        // Prepared once per batch: looking a statement up by its text for every row costs
        // more than running it.
        let mut insert = tx.prepare_cached(&self.sql.insert)?;
        let mut select = upsert
            .then(|| tx.prepare_cached(&self.sql.select))
            .transpose()?;
        let mut update = upsert
            .then(|| tx.prepare_cached(&self.sql.update))
            .transpose()?;
        let mut claim = (upsert && self.cleanup)
            .then(|| tx.prepare_cached(&self.sql.claim))
            .transpose()?;
        let mut journal = self
            .journal
            .is_some()
            .then(|| tx.prepare_cached(&self.sql.journal))
            .transpose()?;
        let number = self.number;
        // With cleanup, a row whose new version the database refused keeps its place.
        let mut rejected_keys: Vec<Vec<Value>> = Vec::new();
        let mut text = String::with_capacity(40);
        for row in &batch.rows {
            let found = match &mut select {
                Some(select) => self.find_existing(select, &row.values)?,
                None => None,
            };
            let result = match found {
                None => run_row(&mut insert, &row.values, number, None, &mut text)
                    .map(|_| out.created += 1),
                Some(found) if found.same && (!self.cleanup || found.owner == number) => {
                    out.unchanged += 1;
                    Ok(())
                }
                Some(found) => {
                    // Only the version from before this import is journaled: a row it
                    // created or changed already is undone by that first entry (or deleted).
                    let entry = match &mut journal {
                        Some(journal) if found.owner != number => {
                            let why = if found.same { "claimed" } else { "updated" };
                            journal.execute(params![found.rowid, why])?;
                            Some(tx.last_insert_rowid())
                        }
                        _ => None,
                    };
                    let r = match (&mut claim, &mut update) {
                        (Some(claim), _) if found.same => {
                            claim.execute(params![number, found.rowid])
                        }
                        (_, Some(update)) => {
                            run_row(update, &row.values, number, Some(found.rowid), &mut text)
                        }
                        _ => Ok(0),
                    };
                    // A refused update leaves nothing to undo.
                    if let (Err(_), Some(entry), Some(journal)) = (&r, entry, &self.journal) {
                        tx.execute(
                            &format!("DELETE FROM {} WHERE rowid = ?1", quote(journal)),
                            [entry],
                        )?;
                    }
                    r.map(|_| {
                        if found.same {
                            out.unchanged += 1
                        } else {
                            out.updated += 1
                        }
                    })
                }
            };
            if let Err(e) = result {
                match constraint_error(&e) {
                    Some(column) => {
                        out.invalid += 1;
                        if self.cleanup {
                            rejected_keys
                                .push(self.key.iter().map(|&i| row.values[i].clone()).collect());
                        }
                        db_errors.push(RowError {
                            line: row.line,
                            record: row.record,
                            message: format!(
                                "another row already has this value of {}",
                                column.as_deref().unwrap_or("the key")
                            ),
                            column,
                            code: RowErrorCode::DuplicateKey,
                            row: row.original.to_json(),
                        });
                    }
                    None => return Err(e.into()),
                }
            }
        }
        if !rejected_keys.is_empty() {
            self.keep_keys(tx, &rejected_keys)?;
        }
        Ok(())
    }

    /// The row of a record's key, compared with the record's values where it is read
    /// (nothing is copied out of SQLite).
    fn find_existing(
        &self,
        select: &mut rusqlite::Statement<'_>,
        values: &[Value],
    ) -> rusqlite::Result<Option<Found>> {
        for (j, &i) in self.key.iter().enumerate() {
            select.raw_bind_parameter(j + 1, to_sql(&values[i]))?;
        }
        let mut rows = select.raw_query();
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let mut same = true;
        for (i, v) in values.iter().enumerate() {
            if !same_value(r.get_ref(i + 1)?, v) {
                same = false;
                break;
            }
        }
        Ok(Some(Found {
            rowid: r.get(0)?,
            same,
            owner: r.get(values.len() + 1)?,
        }))
    }

    fn store_errors(&self, tx: &Connection, errors: &[&RowError]) -> StoreResult<u64> {
        if errors.is_empty() {
            return Ok(0);
        }
        let stored: i64 = tx.query_row(
            "SELECT errors_stored FROM intake_imports WHERE id = ?1",
            [self.import_id.to_string()],
            |r| r.get(0),
        )?;
        let room = (self.plan.max_stored_errors as i64 - stored).max(0) as usize;
        let mut stmt = tx.prepare_cached(
            "INSERT INTO intake_row_errors (import_id, position, line, record, column_name, code,
             message, row) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let id = self.import_id.to_string();
        let mut n = 0;
        for e in errors.iter().take(room) {
            stmt.execute(params![
                id,
                self.plan.position,
                e.line as i64,
                e.record as i64,
                e.column,
                e.code.as_str(),
                e.message,
                e.row.to_string()
            ])?;
            n += 1;
        }
        Ok(n)
    }

    /// Records the keys of a dry-run batch's rows that would have been written.
    fn mark_seen(&self, tx: &Connection, seen: &str, batch: &Batch) -> StoreResult<()> {
        let holders: Vec<String> = (1..=self.key.len()).map(|i| format!("?{i}")).collect();
        let mut stmt = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {} VALUES ({})",
            quote(seen),
            holders.join(", ")
        ))?;
        // Rows the database refused keep their place too, as in a real run.
        for row in &batch.rows {
            let keys: Vec<Cell<'_>> = self.key.iter().map(|&i| Cell(&row.values[i])).collect();
            let params: Vec<&dyn ToSql> = keys.iter().map(|c| c as &dyn ToSql).collect();
            stmt.execute(params.as_slice())?;
        }
        for key in &batch.kept_keys {
            let keys: Vec<Cell<'_>> = key.iter().map(Cell).collect();
            let params: Vec<&dyn ToSql> = keys.iter().map(|c| c as &dyn ToSql).collect();
            stmt.execute(params.as_slice())?;
        }
        Ok(())
    }

    /// Marks the table's rows of rejected records' keys as seen by this import, so that
    /// cleanup keeps them (the journal gives the previous owner back on undo).
    fn keep_keys(&self, tx: &Connection, kept: &[Vec<Value>]) -> StoreResult<()> {
        let holders: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                format!(
                    "{} = ?{}",
                    quote(self.plan.schema.columns[i].name.as_str()),
                    j + 1
                )
            })
            .collect();
        let mut select = tx.prepare_cached(&format!(
            "SELECT rowid, {} FROM {} WHERE {}",
            quote(IMPORT_COLUMN),
            quote(&self.target),
            holders.join(" AND ")
        ))?;
        let mut claim = tx.prepare_cached(&self.sql.claim)?;
        for key in kept {
            let keys: Vec<Cell<'_>> = key.iter().map(Cell).collect();
            let params: Vec<&dyn ToSql> = keys.iter().map(|c| c as &dyn ToSql).collect();
            let found: Option<(i64, i64)> = select
                .query_row(params.as_slice(), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((rowid, owner)) = found else {
                continue;
            };
            if owner == self.number {
                continue;
            }
            if self.journal.is_some() {
                tx.prepare_cached(&self.sql.journal)?
                    .execute(params![rowid, "claimed"])?;
            }
            claim.execute(params![self.number, rowid])?;
        }
        Ok(())
    }

    /// Drops the tables loaded on the side: a replace's new table, a dry run's seen keys.
    fn drop_side_tables(&self, tx: &Connection) -> StoreResult<()> {
        if self.target != self.table {
            let schema = if self.plan.dry_run { "temp." } else { "" };
            tx.execute_batch(&format!(
                "DROP TABLE IF EXISTS {schema}{}",
                quote(&self.target)
            ))?;
        }
        if let Some(seen) = &self.seen {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(seen)))?;
        }
        Ok(())
    }

    /// Undoes a replace: when its table was swapped in, the previous one comes back;
    /// otherwise the table it was loading is dropped.
    fn swap_back_or_drop(&self, tx: &Connection) -> StoreResult<()> {
        let undo = undo_table(&self.table, self.number);
        if table_exists(tx, &undo)? {
            tx.execute_batch(&format!(
                "DROP TABLE {table}; ALTER TABLE {undo} RENAME TO {table};",
                table = quote(&self.table),
                undo = quote(&undo)
            ))?;
        }
        self.drop_side_tables(tx)
    }

    /// Puts back the rows this import updated or destroyed (newest change first, so a row
    /// changed twice gets its oldest version) and deletes the rows it created.
    /// Takes the table's counts of changes off the import's and sets them to none, with the
    /// undo: rows that were undone are not reported as created (or updated).
    fn forget_changes(&self, tx: &Connection) -> StoreResult<()> {
        let id = self.import_id.to_string();
        tx.execute(
            "UPDATE intake_imports SET created = intake_imports.created - t.created,
             updated = intake_imports.updated - t.updated,
             unchanged = intake_imports.unchanged - t.unchanged
             FROM intake_import_tables AS t
             WHERE intake_imports.id = ?1 AND t.import_id = ?1 AND t.position = ?2",
            params![id, self.plan.position],
        )?;
        tx.execute(
            "UPDATE intake_import_tables SET created = 0, updated = 0, unchanged = 0
             WHERE import_id = ?1 AND position = ?2",
            params![id, self.plan.position],
        )?;
        Ok(())
    }

    fn undo_rows(&self, tx: &Connection) -> StoreResult<()> {
        let entries: Vec<(String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT op, row FROM intake_undo WHERE import_id = ?1 AND position = ?2
                     ORDER BY id DESC",
            )?;
            let rows = stmt.query_map(
                params![self.import_id.to_string(), self.plan.position],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let restore = self.restore_statement();
        let reinsert = self.restore_insert_statement();
        for (op, row) in entries {
            let old = journal_to_row(&row);
            let sql = if op == "destroyed" {
                &reinsert
            } else {
                &restore
            };
            tx.prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(old.iter()))?;
        }
        self.undo_from_journal(tx)?;
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE {} = ?1",
                quote(&self.table),
                quote(IMPORT_COLUMN)
            ),
            [self.number],
        )?;
        tx.execute(
            "DELETE FROM intake_undo WHERE import_id = ?1 AND position = ?2",
            params![self.import_id.to_string(), self.plan.position],
        )?;
        Ok(())
    }

    /// Puts back the rows of the upsert's journal, set by set: the rows it updated or
    /// claimed get their old values and import, the rows it destroyed come back (newest
    /// first, as the journal of earlier versions re-inserts them). Drops the journal.
    fn undo_from_journal(&self, tx: &Connection) -> StoreResult<()> {
        let name = journal_table(&self.table, self.number);
        if !table_exists(tx, &name)? {
            return Ok(());
        }
        let journal = quote(&name);
        let op = quote(JOURNAL_OP_COLUMN);
        let cols = self.stored_columns();
        let set: Vec<String> = cols.iter().map(|c| format!("{c} = j.{c}")).collect();
        let cond: Vec<String> = self
            .key
            .iter()
            .map(|&i| {
                let c = quote(self.plan.schema.columns[i].name.as_str());
                format!("t.{c} = j.{c}")
            })
            .collect();
        tx.execute_batch(&format!(
            "UPDATE {table} AS t SET {set} FROM {journal} AS j
             WHERE j.{op} <> 'destroyed' AND {cond};
             INSERT INTO {table} ({cols}) SELECT {cols} FROM {journal}
             WHERE {op} = 'destroyed' ORDER BY rowid DESC;
             DROP TABLE {journal};",
            table = quote(&self.table),
            set = set.join(", "),
            cond = cond.join(" AND "),
            cols = cols.join(", "),
        ))?;
        Ok(())
    }

    fn restore_statement(&self) -> String {
        let cols = &self.plan.schema.columns;
        let set: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", quote(c.name.as_str()), i + 1))
            .chain(std::iter::once(format!(
                "{} = ?{}",
                quote(IMPORT_COLUMN),
                cols.len() + 1
            )))
            .collect();
        let cond: Vec<String> = self
            .key
            .iter()
            .map(|&i| format!("{} = ?{}", quote(cols[i].name.as_str()), i + 1))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            quote(&self.table),
            set.join(", "),
            cond.join(" AND ")
        )
    }

    fn restore_insert_statement(&self) -> String {
        self.sql
            .insert
            .replacen(&quote(&self.target), &quote(&self.table), 1)
    }
}

impl Statements {
    fn new(plan: &WritePlan, target: &str, key: &[usize], journal: Option<&str>) -> Statements {
        let cols = &plan.schema.columns;
        let names: Vec<String> = cols
            .iter()
            .map(|c| quote(c.name.as_str()))
            .chain(std::iter::once(quote(IMPORT_COLUMN)))
            .collect();
        let holders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        let target = quote(target);
        let insert = format!(
            "INSERT INTO {target} ({}) VALUES ({})",
            names.join(", "),
            holders.join(", ")
        );
        let cond: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(j, &i)| format!("{} = ?{}", quote(cols[i].name.as_str()), j + 1))
            .collect();
        let select = format!(
            "SELECT rowid, {} FROM {target} WHERE {}",
            names.join(", "),
            cond.join(" AND ")
        );
        let set: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n} = ?{}", i + 1))
            .collect();
        let update = format!(
            "UPDATE {target} SET {} WHERE rowid = ?{}",
            set.join(", "),
            names.len() + 1
        );
        let claim = format!(
            "UPDATE {target} SET {} = ?1 WHERE rowid = ?2",
            quote(IMPORT_COLUMN)
        );
        let journal = journal
            .map(|j| {
                format!(
                    "INSERT INTO {} ({names}, {}) SELECT {names}, ?2 FROM {target} WHERE rowid = ?1",
                    quote(j),
                    quote(JOURNAL_OP_COLUMN),
                    names = names.join(", ")
                )
            })
            .unwrap_or_default();
        Statements {
            insert,
            select,
            update,
            claim,
            journal,
        }
    }
}

/// Binds a row's values, then the import's number (and, for an update, the rowid), and runs
/// the statement: no parameter list is built per row. Dates and datetimes are written into
/// `text`, reused (SQLite copies what is bound), instead of a new string per cell.
fn run_row(
    stmt: &mut rusqlite::Statement<'_>,
    values: &[Value],
    number: i64,
    rowid: Option<i64>,
    text: &mut String,
) -> rusqlite::Result<usize> {
    for (i, v) in values.iter().enumerate() {
        match v {
            Value::Datetime(t) => {
                text.clear();
                push_datetime(text, *t);
                stmt.raw_bind_parameter(i + 1, text.as_str())?;
            }
            Value::Date(d) => {
                text.clear();
                push_date(text, *d);
                stmt.raw_bind_parameter(i + 1, text.as_str())?;
            }
            _ => stmt.raw_bind_parameter(i + 1, to_sql(v))?,
        }
    }
    stmt.raw_bind_parameter(values.len() + 1, number)?;
    if let Some(rowid) = rowid {
        stmt.raw_bind_parameter(values.len() + 2, rowid)?;
    }
    stmt.raw_execute()
}

/// The column named by a uniqueness violation, if `e` is one.
fn constraint_error(e: &rusqlite::Error) -> Option<Option<String>> {
    match e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            // "UNIQUE constraint failed: ws__t.a, ws__t.b" names the columns.
            let cols = msg
                .as_deref()
                .and_then(|m| m.split(": ").nth(1))
                .map(|list| {
                    list.split(", ")
                        .map(|c| c.rsplit('.').next().unwrap_or(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            Some(cols)
        }
        _ => None,
    }
}

impl BatchWriter for SqliteWriter {
    fn write(&mut self, batch: &Batch) -> StoreResult<BatchOutcome> {
        self.open_journal()?;
        let inner = self.inner.clone();
        inner.write_now(|tx| {
            let lease = check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            let mut out = BatchOutcome {
                invalid: batch.invalid_before_writing(),
                cancel_requested: lease.cancel_requested,
                ..BatchOutcome::default()
            };
            let mut db_errors = Vec::new();
            // A dry run (but for replace, which loads a temporary table) applies the batch
            // to learn its counts, then takes it back.
            let rewind = self.plan.dry_run && self.plan.mode != Mode::Replace;
            if rewind {
                tx.execute_batch("SAVEPOINT dry_run")?;
            }
            let applied = self.apply_rows(tx, batch, &mut out, &mut db_errors);
            if rewind {
                tx.execute_batch("ROLLBACK TO dry_run; RELEASE dry_run")?;
            }
            applied?;
            if let Some(seen) = &self.seen {
                self.mark_seen(tx, seen, batch)?;
            } else if self.cleanup {
                self.keep_keys(tx, &batch.kept_keys)?;
            }
            let mut all: Vec<&RowError> = batch.errors.iter().chain(db_errors.iter()).collect();
            all.sort_by_key(|e| e.record);
            let stored = self.store_errors(tx, &all)?;
            for w in &batch.warnings {
                append_event(
                    tx,
                    self.workspace_id,
                    self.import_id,
                    "import.warning",
                    &serde_json::json!({
                        "table_position": self.plan.position,
                        "message": w,
                        "fields": batch.warned_fields,
                    }),
                )?;
            }
            let warnings = batch.warnings.len() as i64;
            let processed = batch.processed() as i64;
            let id = self.import_id.to_string();
            tx.prepare_cached(
                "UPDATE intake_import_tables SET processed = processed + ?3,
                 created = created + ?4, updated = updated + ?5, unchanged = unchanged + ?6,
                 invalid = invalid + ?7, bytes_read = ?8, checkpoint_offset = ?9,
                 checkpoint_line = ?10, checkpoint_record = ?11, warnings = warnings + ?12
                 WHERE import_id = ?1 AND position = ?2",
            )?
            .execute(params![
                id,
                self.plan.position,
                processed,
                out.created as i64,
                out.updated as i64,
                out.unchanged as i64,
                out.invalid as i64,
                batch.bytes_read as i64,
                batch.checkpoint.byte_offset as i64,
                batch.checkpoint.line as i64,
                batch.checkpoint.record as i64,
                warnings,
            ])?;
            tx.prepare_cached(
                "UPDATE intake_imports SET processed = processed + ?2, created = created + ?3,
                 updated = updated + ?4, unchanged = unchanged + ?5, invalid = invalid + ?6,
                 errors_stored = errors_stored + ?7, updated_at = ?8, warnings = warnings + ?9,
                 bytes_read = (SELECT sum(bytes_read) FROM intake_import_tables WHERE import_id = ?1)
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                processed,
                out.created as i64,
                out.updated as i64,
                out.unchanged as i64,
                out.invalid as i64,
                stored as i64,
                ts(now()),
                warnings,
            ])?;
            Ok(out)
        })
    }

    fn revert(&mut self) -> StoreResult<()> {
        let inner = self.inner.clone();
        inner.write_now(|tx| {
            check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            if self.plan.mode == Mode::Replace && !self.plan.dry_run {
                // A table of a stacked import may already have been swapped in: swap back.
                self.swap_back_or_drop(tx)?;
            } else if self.plan.dry_run {
                self.drop_side_tables(tx)?;
            } else {
                self.undo_rows(tx)?;
            }
            self.forget_changes(tx)
        })
    }

    fn roll_back(&mut self) -> StoreResult<()> {
        let inner = self.inner.clone();
        inner.write_now(|tx| {
            check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            let status: String = tx.query_row(
                "SELECT status FROM intake_import_tables WHERE import_id = ?1 AND position = ?2",
                params![self.import_id.to_string(), self.plan.position],
                |r| r.get(0),
            )?;
            // Each table is undone in one transaction that also marks it: a resumed rollback
            // skips the tables already done.
            if status == "rolled_back" {
                return Ok(());
            }
            if self.plan.mode == Mode::Replace && !self.plan.dry_run {
                self.swap_back_or_drop(tx)?;
            } else if !self.plan.dry_run {
                self.undo_rows(tx)?;
            }
            tx.execute(
                "UPDATE intake_import_tables SET status = 'rolled_back'
                 WHERE import_id = ?1 AND position = ?2",
                params![self.import_id.to_string(), self.plan.position],
            )?;
            Ok(())
        })
    }

    fn finish(&mut self, end: &TableEnd) -> StoreResult<u64> {
        self.open_journal()?;
        let inner = self.inner.clone();
        inner.write_now(|tx| {
            check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            let mut destroyed = 0u64;
            if self.plan.mode == Mode::Replace {
                let old: i64 = tx.query_row(
                    &format!("SELECT count(*) FROM {}", quote(&self.table)),
                    [],
                    |r| r.get(0),
                )?;
                destroyed = old as u64;
                if self.plan.dry_run {
                    tx.execute_batch(&format!("DROP TABLE IF EXISTS temp.{}", quote(&self.target)))?;
                } else {
                    // Readers see the old table or the new one: both renames commit together.
                    // The old table stays as the undo copy until retention prunes it.
                    tx.execute_batch(&format!(
                        "ALTER TABLE {table} RENAME TO {undo}; ALTER TABLE {target} RENAME TO {table};",
                        table = quote(&self.table),
                        undo = quote(&undo_table(&self.table, self.number)),
                        target = quote(&self.target)
                    ))?;
                }
            } else if let Some(seen) = &self.seen {
                let cond: Vec<String> = self
                    .key
                    .iter()
                    .map(|&i| {
                        let c = quote(self.plan.schema.columns[i].name.as_str());
                        format!("s.{c} = t.{c}")
                    })
                    .collect();
                let gone: i64 = tx.query_row(
                    &format!(
                        "SELECT count(*) FROM {} t WHERE NOT EXISTS (SELECT 1 FROM {} s WHERE {})",
                        quote(&self.table),
                        quote(seen),
                        cond.join(" AND ")
                    ),
                    [],
                    |r| r.get(0),
                )?;
                tx.execute_batch(&format!("DROP TABLE {}", quote(seen)))?;
                destroyed = gone as u64;
            } else if self.cleanup {
                let owner = quote(IMPORT_COLUMN);
                if let Some(journal) = &self.journal {
                    tx.execute(
                        &format!(
                            "INSERT INTO {journal} ({cols}, {op}) SELECT {cols}, 'destroyed'
                             FROM {table} WHERE {owner} <> ?1 ORDER BY rowid",
                            journal = quote(journal),
                            cols = self.stored_columns().join(", "),
                            op = quote(JOURNAL_OP_COLUMN),
                            table = quote(&self.table),
                        ),
                        [self.number],
                    )?;
                }
                destroyed = tx.execute(
                    &format!("DELETE FROM {} WHERE {owner} <> ?1", quote(&self.table)),
                    [self.number],
                )? as u64;
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
        let inner = self.inner.clone();
        inner.write_now(|tx| {
            check_lease(tx, self.import_id, self.token, self.lease_ms)?;
            self.drop_side_tables(tx)
        })
    }
}
