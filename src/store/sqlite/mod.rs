//! The SQLite backend: one file holding Intake's metadata and the workspaces' tables.
//! One writer connection (SQLite has one writer at a time) and a few readers, in WAL mode so
//! reads never wait for an import's batches.

mod checkpointer;
mod imports;
mod keys;
mod reserve;
mod search;
mod tables;
pub(crate) mod values;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use checkpointer::Checkpointer;
use reserve::Reserve;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_rollback.sql"),
    include_str!("../../../migrations/sqlite/0003_webhooks.sql"),
    include_str!("../../../migrations/sqlite/0004_status_index.sql"),
    include_str!("../../../migrations/sqlite/0005_key_expiry.sql"),
    include_str!("../../../migrations/sqlite/0006_key_scope.sql"),
];
const READERS: usize = 4;

/// Intake's store on an embedded SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    checkpointer: Checkpointer,
    reserve: Arc<Reserve>,
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // 16 KiB pages (for a new database; an existing one keeps its own): a bulk load touches
    // and checksums a quarter as many pages and WAL frames as with 4 KiB.
    // WAL + synchronous=NORMAL: a killed process loses nothing committed; a power loss may
    // lose the last commits, each with its own checkpoint, so the state stays consistent
    // (the end of an import, after which its sources are deleted, is committed durably).
    conn.execute_batch(
        "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -4096;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let path: PathBuf = path.to_owned();
        let mut writer = open_connection(&path)?;
        // The writer walks the tables it loads; readers mostly read small metadata rows.
        // The checkpointer copies the log's pages as they come; the writer's own checkpoint,
        // once the log holds 4,096 pages (64 MiB of 16 KiB pages), finds little left and lets
        // the log start over.
        writer.execute_batch("PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4096;")?;
        migrate(&mut writer)?;
        let reserve = Arc::new(Reserve::open(path.with_extension("reserve")));
        let checkpointer = Checkpointer::start(open_connection(&path)?, reserve.clone())
            .map_err(|e| StoreError::Database(format!("cannot start the checkpointer: {e}")))?;
        let readers = (0..READERS)
            .map(|_| open_connection(&path).map(Mutex::new))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                checkpointer,
                reserve,
            }),
        })
    }

    /// Makes every unfinished import claimable at once. Only for the process that holds the
    /// data directory's lock: no other process can be running those imports, so their leases
    /// are left over from a process that was killed.
    pub fn reset_leases(&self) -> StoreResult<usize> {
        self.inner.write_now(|tx| {
            Ok(tx.execute(
                "UPDATE intake_imports SET lease_expires_at = NULL WHERE lease_expires_at IS NOT NULL",
                [],
            )?)
        })
    }

    /// Runs `f` on a reader connection, off the async runtime.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        off_runtime(move || {
            let n = inner.readers.len();
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
            for i in 0..n {
                if let Ok(conn) = inner.readers[(start + i) % n].try_lock() {
                    return f(&conn);
                }
            }
            let conn = inner.readers[start % n]
                .lock()
                .map_err(|_| StoreError::Database("reader connection poisoned".into()))?;
            f(&conn)
        })
        .await
    }

    /// Runs a small read (a few rows found by key) on the calling thread when a reader
    /// connection is free, else as [`Self::read`]. Small requests (authentication, one
    /// import) otherwise spend more time handing work to the blocking pool and back than
    /// reading.
    async fn read_small<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = &self.inner;
        let n = inner.readers.len();
        let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(conn) = inner.readers[(start + i) % n].try_lock() {
                return f(&conn);
            }
        }
        self.read(f).await
    }

    /// Runs `f` in a write transaction on the writer connection, off the async runtime.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        off_runtime(move || inner.write_now(f)).await
    }
    /// Like [`Self::write`], but the commit reaches the disk before this returns.
    async fn write_durably<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        off_runtime(move || inner.write_durably(f)).await
    }

    /// The writer that loads one table's batches.
    fn batch_writer(&self, claim: &Claim, plan: WritePlan) -> StoreResult<Box<dyn BatchWriter>> {
        Ok(Box::new(writer::SqliteWriter::new(
            self.inner.clone(),
            claim,
            plan,
        )?))
    }
}

impl Inner {
    /// The writer connection, once free.
    pub(crate) fn writer(&self) -> StoreResult<std::sync::MutexGuard<'_, Connection>> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Database("writer connection poisoned".into()))
    }

    /// Runs `f` in an immediate transaction on the writer, committing when it succeeds.
    pub(crate) fn write_now<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
    {
        let mut conn = self.writer()?;
        let out = run_immediate(&mut conn, f);
        self.checkpointer.nudge();
        out
    }

    /// Like [`Inner::write_now`], but the commit reaches the disk before this returns (and
    /// with it every commit before): for what must survive a power loss, such as the end of
    /// an import whose source is deleted next.
    pub(crate) fn write_durably<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
    {
        let mut conn = self.writer()?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let out = run_immediate(&mut conn, f);
        if let Err(e) = conn.pragma_update(None, "synchronous", "NORMAL") {
            // Later commits then wait for the disk: slower, never less safe.
            tracing::warn!(error = %e, "the writer's synchronous mode could not be restored");
        }
        self.checkpointer.nudge();
        out
    }
}

fn run_immediate<T, F>(conn: &mut Connection, f: F) -> StoreResult<T>
where
    F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
{
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

/// The current time in Unix milliseconds (how leases and retries are timed).
pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

use super::apply::now;

/// The record `read` makes of the first row a query returns, if it returns one.
fn first_record<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl FnOnce(&rusqlite::Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(read).transpose()
}

fn parse_uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap_or_default()
}

super::adapter::blocking_roles!(SqliteStore);

#[async_trait]
impl Upkeep for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    fn pool_stats(&self) -> PoolStats {
        // A connection is in use while its lock is held; the one writer counts too.
        let connections = std::iter::once(&self.inner.writer).chain(&self.inner.readers);
        let max = self.inner.readers.len() as u64 + 1;
        PoolStats {
            open: max,
            in_use: connections.filter(|c| c.try_lock().is_err()).count() as u64,
            max,
        }
    }

    fn release_reserve(&self) -> bool {
        self.inner.reserve.release()
    }
}
