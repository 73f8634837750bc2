//! The PostgreSQL backend: Intake's metadata in `intake_*` tables of the `public` schema, and
//! each workspace's tables in a schema of its own named by its slug (`acme.orders`), so that
//! `psql` users query them directly. Any number of processes share one database: claims use
//! `FOR NO KEY UPDATE SKIP LOCKED` and leases on the database's clock, per-workspace limits are
//! checked under a workspace lock, and events are appended under a workspace lock so that
//! their ids become visible in id order.
//!
//! The client is the synchronous `postgres` crate: every operation runs as a blocking closure
//! on tokio's blocking pool (like the SQLite backend), on a connection from a small pool.
//! Connections use TLS with rustls as the URL's `sslmode` asks, libpq's way (`tls`).

mod imports;
mod keys;
mod pool;
mod search;
mod tables;
mod tls;
mod values;
mod webhooks;
mod writer;

#[cfg(test)]
mod copy_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use ::postgres::error::SqlState;
use ::postgres::{Client, IsolationLevel, Transaction};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use pool::Pool;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_status_index.sql"),
    include_str!("../../../migrations/postgres/0003_key_expiry.sql"),
    include_str!("../../../migrations/postgres/0004_key_scope.sql"),
];

/// Connections one process keeps open at most.
const MAX_CONNECTIONS: usize = 8;

/// The advisory lock (bigint form) held while migrations run, so that processes starting
/// together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x696e_7461_6b65_0001;

/// Advisory lock classes (two-int form; the second int is a workspace's hash).
const EVENTS_LOCK: i32 = 0x696e_0001;
const CLAIMS_LOCK: i32 = 0x696e_0002;
const BOOTSTRAP_LOCK: i32 = 0x696e_0003;

/// How many times a transaction that lost a deadlock is run again.
const RETRIES: usize = 3;

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        match db_error(&e) {
            Some(db)
                if *db.code() == SqlState::T_R_DEADLOCK_DETECTED
                    || *db.code() == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                StoreError::Contention(format!("{} ({})", db.message(), db.code().code()))
            }
            Some(db) if unavailable_state(db.code()) => {
                StoreError::Unavailable(format!("{} ({})", db.message(), db.code().code()))
            }
            Some(db) if *db.code() == SqlState::DISK_FULL => {
                StoreError::StorageFull(format!("{} ({})", db.message(), db.code().code()))
            }
            Some(db) => StoreError::Database(format!(
                "{}: {} ({})",
                db.severity(),
                db.message(),
                db.code().code()
            )),
            None if lost_connection(&e) => StoreError::Unavailable(chain(&e)),
            None => StoreError::Database(e.to_string()),
        }
    }
}

/// The server's error behind a client error, also when it is the cause of a failed connect.
fn db_error(e: &::postgres::Error) -> Option<&::postgres::error::DbError> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(db) = c.downcast_ref::<::postgres::error::DbError>() {
            return Some(db);
        }
        cause = c.source();
    }
    None
}

/// SQLSTATEs saying the server is going away, restarting, or refusing connections for now:
/// connection exceptions (class 08), an administrator's or a crash's shutdown (57P01,
/// 57P02), a server still starting (57P03), no connection slot free (53300).
fn unavailable_state(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
}

/// Whether a client error means the connection is gone or could not be made: closed, an
/// I/O error on the socket, a failed connect, a timeout. The client's kinds are private;
/// what they print is the stable part of them.
fn lost_connection(e: &::postgres::Error) -> bool {
    e.is_closed()
        || matches!(
            e.to_string().as_str(),
            "error communicating with the server"
                | "error connecting to server"
                | "timeout waiting for server"
        )
}

/// An error and its causes, as one line.
fn chain(e: &::postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Intake's store on a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pool: Arc<Pool>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, with `sslmode` and
    /// `sslrootcert` as libpq reads them; `ca_file` is the CA file when the URL names none)
    /// and runs pending migrations. Blocking; may be called from async code (it works on a
    /// thread of its own).
    pub fn connect(url: &str, ca_file: Option<&std::path::Path>) -> StoreResult<PgStore> {
        let url = url.to_owned();
        std::thread::scope(|s| {
            s.spawn(move || {
                let pool = Pool::new(&url, ca_file, MAX_CONNECTIONS)?;
                {
                    let mut conn = pool.get()?;
                    migrate(&mut conn)?;
                }
                Ok(PgStore {
                    inner: Arc::new(Inner {
                        pool: Arc::new(pool),
                    }),
                })
            })
            .join()
            .unwrap_or_else(|_| Err(StoreError::Database("connecting panicked".into())))
        })
    }

    /// Runs `f` in a read-only, repeatable-read transaction (one consistent snapshot), off
    /// the async runtime.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        off_runtime(move || {
            let mut conn = inner.pool.get()?;
            let mut tx = conn
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` in a read-committed transaction, off the async runtime.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&mut Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        off_runtime(move || inner.write_now(f)).await
    }
    /// As [`Self::read`]: a PostgreSQL read always goes through the pool.
    async fn read_small<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.read(f).await
    }

    /// As [`Self::write`]: PostgreSQL commits reach the disk before they are answered.
    async fn write_durably<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&mut Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.write(f).await
    }

    /// The writer that loads one table's batches. Nothing blocking here: this is called on
    /// async tasks. The writer connects on its first operation, which runs on a blocking
    /// thread.
    fn batch_writer(&self, claim: &Claim, plan: WritePlan) -> StoreResult<Box<dyn BatchWriter>> {
        Ok(Box::new(writer::PgWriter::new(
            self.inner.clone(),
            claim,
            plan,
        )))
    }
}

impl Inner {
    /// Runs `f` in a transaction, committing when it succeeds; a transaction chosen as a
    /// deadlock victim is run again.
    pub(crate) fn write_now<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: Fn(&mut Transaction<'_>) -> StoreResult<T>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.pool.get()?;
            match run_in_transaction(&mut conn, &f) {
                Err(Retry::Again(_)) if attempt < RETRIES => continue,
                Err(Retry::Again(e)) => return Err(e),
                Err(Retry::Fail(e)) => return Err(e),
                Ok(out) => return Ok(out),
            }
        }
    }
}

enum Retry {
    /// A deadlock or serialization failure: running the transaction again may succeed.
    Again(StoreError),
    Fail(StoreError),
}

fn run_in_transaction<T, F>(client: &mut Client, f: &F) -> Result<T, Retry>
where
    F: Fn(&mut Transaction<'_>) -> StoreResult<T>,
{
    // Statements fail inside `f` with the error already converted: its variant tells.
    let sort = |e: StoreError| match e {
        StoreError::Contention(_) => Retry::Again(e),
        e => Retry::Fail(e),
    };
    let mut tx = client
        .transaction()
        .map_err(|e| sort(StoreError::from(e)))?;
    let out = f(&mut tx).map_err(sort)?;
    tx.commit().map_err(|e| sort(StoreError::from(e)))?;
    Ok(out)
}

fn migrate(client: &mut Client) -> StoreResult<()> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let result = run_migrations(client);
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result?;
    unlocked?;
    Ok(())
}

fn run_migrations(client: &mut Client) -> StoreResult<()> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS intake_schema_version (
             version bigint PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let version: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM intake_schema_version",
            &[],
        )?
        .try_get(0)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let number = i as i64 + 1;
        if number <= version {
            continue;
        }
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO intake_schema_version (version) VALUES ($1)",
            &[&number],
        )?;
        tx.commit()?;
    }
    Ok(())
}

use super::apply::{ms, now};

/// A workspace id folded to the second key of its advisory locks.
fn workspace_lock_key(workspace_id: Uuid) -> i32 {
    let v = workspace_id.as_u128();
    ((v as u32) ^ ((v >> 32) as u32) ^ ((v >> 64) as u32) ^ ((v >> 96) as u32)) as i32
}

/// Takes a workspace's advisory lock of a class until the transaction ends.
fn lock_workspace(
    tx: &mut impl ::postgres::GenericClient,
    class: i32,
    workspace_id: Uuid,
) -> StoreResult<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&class, &workspace_lock_key(workspace_id)],
    )?;
    Ok(())
}

super::adapter::blocking_roles!(PgStore);

#[async_trait]
impl Upkeep for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|tx| {
            tx.query_one("SELECT 1", &[])?;
            Ok(())
        })
        .await
    }

    fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    async fn release_node_leases(&self, node: &str) -> StoreResult<u64> {
        let node = node.to_owned();
        self.write(move |tx| imports::release_node_leases(tx, &node))
            .await
    }
}

/// The current time in Unix milliseconds (how the engine schedules retries).
pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
