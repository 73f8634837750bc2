//! The SQLite backend: one file holding Intake's metadata and the workspaces' tables.
//! One writer connection (SQLite has one writer at a time) and a few readers, in WAL mode so
//! reads never wait for an import's batches.

mod checkpointer;
mod imports;
mod lifecycle;
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
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::model::{Forget, Refusal, Role, Step, TableSchema};
use checkpointer::Checkpointer;
use reserve::Reserve;
use values::{parse_ts, parse_ts_opt, ts};

/// Timestamps as this backend stores and sorts them.
pub fn sort_key(t: OffsetDateTime) -> String {
    ts(t)
}

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_rollback.sql"),
    include_str!("migrations/0003_webhooks.sql"),
    include_str!("migrations/0004_status_index.sql"),
    include_str!("migrations/0005_key_expiry.sql"),
    include_str!("migrations/0006_key_scope.sql"),
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
    // WAL + synchronous=NORMAL: a killed process loses nothing committed; a power loss may
    // lose the last commits, each with its own checkpoint, so the state stays consistent
    // (the end of an import, after which its sources are deleted, is committed durably).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
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
        // once the log holds 64 MiB, finds little left and lets the log start over.
        writer.execute_batch("PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 16384;")?;
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

/// The current time at the precision timestamps are stored with (milliseconds), so that
/// what a write answers equals what later reads return.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

fn parse_uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap_or_default()
}

fn workspace_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace {
        id: parse_uuid(&r.get::<_, String>(0)?),
        slug: r.get(1)?,
        name: r.get(2)?,
        created_at: parse_ts(&r.get::<_, String>(3)?),
    })
}

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        id: parse_uuid(&r.get::<_, String>(0)?),
        workspace_id: parse_uuid(&r.get::<_, String>(1)?),
        name: r.get(2)?,
        role: Role::parse(&r.get::<_, String>(3)?).unwrap_or(Role::Viewer),
        prefix: r.get(4)?,
        created_at: parse_ts(&r.get::<_, String>(5)?),
        last_used_at: parse_ts_opt(r.get(6)?),
        revoked_at: parse_ts_opt(r.get(7)?),
        expires_at: parse_ts_opt(r.get(8)?),
        tables: crate::store::scope_from_text(r.get(9)?),
    })
}

const KEY_COLUMNS: &str = "id, workspace_id, name, role, prefix, created_at, last_used_at, revoked_at, expires_at, tables";

fn insert_workspace(tx: &Connection, slug: &str, name: &str) -> StoreResult<Workspace> {
    let ws = Workspace {
        id: Uuid::now_v7(),
        slug: slug.to_owned(),
        name: name.to_owned(),
        created_at: now(),
    };
    tx.execute(
        "INSERT INTO intake_workspaces (id, slug, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![ws.id.to_string(), ws.slug, ws.name, ts(ws.created_at)],
    )
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Refusal::WorkspaceExists(slug.to_owned()).into()
        }
        _ => e.into(),
    })?;
    Ok(ws)
}

fn delete_workspace(tx: &Connection, id: Uuid) -> StoreResult<Vec<String>> {
    let ws = tx
        .query_row(
            "SELECT id, slug, name, created_at FROM intake_workspaces WHERE id = ?1",
            [id.to_string()],
            workspace_from_row,
        )
        .optional()?
        .ok_or(StoreError::NotFound("workspace"))?;
    let wid = id.to_string();
    let busy: Option<String> = tx
        .query_row(
            "SELECT id FROM intake_imports WHERE workspace_id = ?1
             AND status IN ('queued', 'processing', 'rolling_back') LIMIT 1",
            [&wid],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(import) = busy {
        return Err(Refusal::WorkspaceBusy {
            slug: ws.slug,
            import: import.to_string(),
        }
        .into());
    }
    let blobs: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT t.blob_key FROM intake_import_tables t
             JOIN intake_imports i ON i.id = t.import_id
             WHERE i.workspace_id = ?1 AND t.blob_key IS NOT NULL",
        )?;
        let rows = stmt.query_map([&wid], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let table_names: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM intake_tables WHERE workspace_id = ?1")?;
        let rows = stmt.query_map([&wid], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // The imports first (their errors, events and undo journals go with them), so that
    // no import holds a table when the tables are dropped.
    for sql in [
        "DELETE FROM intake_idempotency WHERE workspace_id = ?1",
        "DELETE FROM intake_imports WHERE workspace_id = ?1",
        "DELETE FROM intake_webhooks WHERE workspace_id = ?1",
    ] {
        tx.execute(sql, [&wid])?;
    }
    for name in &table_names {
        tables::delete(tx, &ws, name)?;
    }
    tx.execute(
        "DELETE FROM intake_api_keys WHERE workspace_id = ?1",
        [&wid],
    )?;
    tx.execute("DELETE FROM intake_workspaces WHERE id = ?1", [&wid])?;
    Ok(blobs)
}

fn insert_key(tx: &Connection, workspace_id: Uuid, key: &NewKey) -> StoreResult<KeyRecord> {
    let created_at = now();
    tx.execute(
        "INSERT INTO intake_api_keys (id, workspace_id, name, role, prefix, hash, created_at,
         expires_at, tables) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            key.id.to_string(),
            workspace_id.to_string(),
            key.name,
            key.role.as_str(),
            key.prefix,
            &key.hash[..],
            ts(created_at),
            key.expires_at.map(ts),
            crate::store::scope_text(&key.tables)
        ],
    )?;
    Ok(KeyRecord {
        id: key.id,
        workspace_id,
        name: key.name.clone(),
        role: key.role,
        prefix: key.prefix.clone(),
        created_at,
        last_used_at: None,
        revoked_at: None,
        expires_at: key.expires_at,
        tables: key.tables.clone(),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn bootstrap(&self, owner_key: &NewKey) -> StoreResult<Option<Workspace>> {
        let key = owner_key.clone();
        self.write(move |tx| {
            let any: Option<String> = tx
                .query_row("SELECT id FROM intake_workspaces LIMIT 1", [], |r| r.get(0))
                .optional()?;
            if any.is_some() {
                return Ok(None);
            }
            let ws = insert_workspace(tx, "default", "Default workspace")?;
            insert_key(tx, ws.id, &key)?;
            Ok(Some(ws))
        })
        .await
    }

    async fn create_workspace(&self, slug: &str, name: &str) -> StoreResult<Workspace> {
        let (slug, name) = (slug.to_owned(), name.to_owned());
        self.write(move |tx| insert_workspace(tx, &slug, &name))
            .await
    }

    async fn find_workspace(&self, id_or_slug: &str) -> StoreResult<Option<Workspace>> {
        let key = id_or_slug.to_owned();
        self.read_small(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, slug, name, created_at FROM intake_workspaces WHERE id = ?1 OR slug = ?1",
            )?
            .query_row([key], workspace_from_row)
            .optional()?)
        })
        .await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, slug, name, created_at FROM intake_workspaces ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([], workspace_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn delete_workspace(&self, id: Uuid) -> StoreResult<Vec<String>> {
        self.write(move |tx| delete_workspace(tx, id)).await
    }

    async fn create_key(&self, workspace_id: Uuid, key: &NewKey) -> StoreResult<KeyRecord> {
        let key = key.clone();
        self.write(move |tx| insert_key(tx, workspace_id, &key))
            .await
    }

    async fn authenticate(&self, hash: &[u8; 32]) -> StoreResult<Option<KeyRecord>> {
        let hash = *hash;
        self.read_small(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE hash = ?1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > ?2)"
            ))?;
            let at = ts(now());
            Ok(stmt
                .query_row(params![&hash[..], at], key_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_keys(&self, workspace_id: Uuid) -> StoreResult<Vec<KeyRecord>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE workspace_id = ?1
                 ORDER BY created_at DESC, id DESC"
            ))?;
            let rows = stmt.query_map([workspace_id.to_string()], key_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_key(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        max_role: Role,
    ) -> StoreResult<KeyRecord> {
        self.write(move |tx| {
            let key = tx
                .query_row(
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE id = ?1 AND workspace_id = ?2"
                    ),
                    params![id.to_string(), workspace_id.to_string()],
                    key_from_row,
                )
                .optional()?
                .ok_or(StoreError::NotFound("key"))?;
            if key.role > max_role {
                return Err(Refusal::KeyOutranks(key.role).into());
            }
            if key.revoked_at.is_some() {
                return Ok(key);
            }
            let at = now();
            tx.execute(
                "UPDATE intake_api_keys SET revoked_at = ?1 WHERE id = ?2",
                params![ts(at), id.to_string()],
            )?;
            Ok(KeyRecord {
                revoked_at: Some(at),
                ..key
            })
        })
        .await
    }

    async fn create_table(
        &self,
        workspace: &Workspace,
        schema: &TableSchema,
    ) -> StoreResult<TableRecord> {
        let (ws, schema) = (workspace.clone(), schema.clone());
        self.write(move |tx| tables::create(tx, &ws, &schema)).await
    }

    async fn add_columns(
        &self,
        workspace: &Workspace,
        table: &str,
        columns: &[crate::model::ColumnSpec],
    ) -> StoreResult<TableRecord> {
        let (ws, table, columns) = (workspace.clone(), table.to_owned(), columns.to_vec());
        self.write(move |tx| tables::add_columns(tx, &ws, &table, &columns))
            .await
    }

    async fn list_tables(&self, workspace: &Workspace) -> StoreResult<Vec<TableRecord>> {
        let ws = workspace.clone();
        self.read(move |c| tables::list(c, &ws)).await
    }

    async fn get_table(&self, workspace: &Workspace, name: &str) -> StoreResult<TableRecord> {
        let (ws, name) = (workspace.clone(), name.to_owned());
        self.read(move |c| tables::get(c, &ws, &name, true)).await
    }

    async fn delete_table(&self, workspace: &Workspace, name: &str) -> StoreResult<()> {
        let (ws, name) = (workspace.clone(), name.to_owned());
        self.write(move |tx| tables::delete(tx, &ws, &name)).await
    }

    async fn read_records(
        &self,
        workspace: &Workspace,
        table: &TableSchema,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<RecordsPage> {
        let (ws, table) = (workspace.clone(), table.clone());
        self.read(move |c| tables::read_records(c, &ws, &table, after, limit))
            .await
    }

    async fn create_import(&self, new: &NewImport) -> StoreResult<CreateOutcome> {
        let new = new.clone();
        self.write(move |tx| imports::create(tx, &new)).await
    }

    async fn find_idempotency(
        &self,
        workspace_id: Uuid,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let key = key.to_owned();
        self.read(move |c| imports::find_idempotency(c, workspace_id, &key))
            .await
    }

    async fn get_import(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord> {
        self.read_small(move |c| imports::get(c, workspace_id, id))
            .await
    }

    async fn list_imports(&self, workspace_id: Uuid, q: &ImportQuery) -> StoreResult<ImportPage> {
        let q = q.clone();
        self.read(move |c| imports::list(c, workspace_id, &q)).await
    }

    async fn list_row_errors(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<StoredRowError>> {
        self.read(move |c| imports::row_errors(c, workspace_id, id, after, limit))
            .await
    }

    async fn summarize_row_errors(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Vec<ErrorGroup>> {
        self.read(move |c| imports::error_groups(c, workspace_id, id))
            .await
    }

    async fn list_events(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        self.read(move |c| imports::events(c, workspace_id, id, after, limit))
            .await
    }

    async fn list_workspace_events(
        &self,
        workspace_id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        self.read(move |c| webhooks::workspace_events(c, workspace_id, after, limit))
            .await
    }

    async fn create_webhook(
        &self,
        workspace_id: Uuid,
        hook: &NewWebhook,
    ) -> StoreResult<WebhookRecord> {
        let hook = hook.clone();
        self.write(move |tx| webhooks::create(tx, workspace_id, &hook))
            .await
    }

    async fn list_webhooks(&self, workspace_id: Uuid) -> StoreResult<Vec<WebhookRecord>> {
        self.read(move |c| webhooks::list(c, workspace_id)).await
    }

    async fn delete_webhook(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<()> {
        self.write(move |tx| webhooks::delete(tx, workspace_id, id))
            .await
    }

    async fn list_deliveries(
        &self,
        workspace_id: Uuid,
        webhook_id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        self.read(move |c| webhooks::deliveries(c, workspace_id, webhook_id, after, limit))
            .await
    }

    async fn claim_deliveries(&self, limit: u32, lease_ms: i64) -> StoreResult<Vec<DueDelivery>> {
        self.write(move |tx| webhooks::claim(tx, limit, lease_ms))
            .await
    }

    async fn record_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> StoreResult<()> {
        let outcome = outcome.clone();
        self.write(move |tx| webhooks::record(tx, id, &outcome))
            .await
    }

    async fn request_cancel(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord> {
        self.write(move |tx| imports::request_cancel(tx, workspace_id, id))
            .await
    }

    async fn claim_import(
        &self,
        worker: &str,
        lease_ms: i64,
        per_workspace: u32,
    ) -> StoreResult<Option<Claim>> {
        let worker = worker.to_owned();
        self.write(move |tx| imports::claim(tx, &worker, lease_ms, per_workspace))
            .await
    }

    async fn renew_lease(&self, claim: &Claim, lease_ms: i64) -> StoreResult<LeaseState> {
        let (id, token) = (claim.import.id, claim.token);
        self.write(move |tx| imports::renew(tx, id, token, lease_ms))
            .await
    }

    async fn start_table(
        &self,
        claim: &Claim,
        position: u32,
        start: &TableStart,
    ) -> StoreResult<()> {
        let (claim, start) = (claim.clone(), start.clone());
        self.write(move |tx| imports::start_table(tx, &claim, position, &start))
            .await
    }

    async fn note_inference(
        &self,
        claim: &Claim,
        position: u32,
        bytes_read: u64,
        options: Option<&serde_json::Value>,
    ) -> StoreResult<LeaseState> {
        let (claim, options) = (claim.clone(), options.cloned());
        self.write(move |tx| {
            imports::note_inference(tx, &claim, position, bytes_read, options.as_ref())
        })
        .await
    }

    fn open_writer(&self, claim: &Claim, plan: WritePlan) -> StoreResult<Box<dyn BatchWriter>> {
        Ok(Box::new(writer::SqliteWriter::new(
            self.inner.clone(),
            claim,
            plan,
        )?))
    }

    async fn finish_table(&self, claim: &Claim, position: u32, end: &TableEnd) -> StoreResult<()> {
        let (claim, end) = (claim.clone(), end.clone());
        self.write(move |tx| imports::finish_table(tx, &claim, position, &end))
            .await
    }

    async fn finish_import(&self, claim: &Claim, end: &ImportEnd) -> StoreResult<()> {
        let (claim, end) = (claim.clone(), end.clone());
        let inner = self.inner.clone();
        // Durable: the import's sources are deleted once it has ended.
        off_runtime(move || inner.write_durably(|tx| imports::finish(tx, &claim, &end))).await
    }

    async fn set_step(&self, claim: &Claim, step: Step, error: Option<&str>) -> StoreResult<()> {
        let (claim, error) = (claim.clone(), error.map(str::to_owned));
        self.write(move |tx| imports::set_step(tx, &claim, step, error.as_deref()))
            .await
    }

    async fn request_rollback(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord> {
        self.write(move |tx| imports::request_rollback(tx, workspace_id, id))
            .await
    }

    async fn prune(&self, now: OffsetDateTime, retention: std::time::Duration) -> StoreResult<u64> {
        let ended_before = crate::model::lifecycle::prune_before(now, retention);
        self.write(move |tx| imports::prune(tx, now, ended_before))
            .await
    }

    async fn append_event(
        &self,
        workspace_id: Uuid,
        import_id: Uuid,
        kind: &str,
        data: &serde_json::Value,
    ) -> StoreResult<()> {
        let (kind, data) = (kind.to_owned(), data.clone());
        self.write(move |tx| imports::append_event(tx, workspace_id, import_id, &kind, &data))
            .await
    }

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

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        self.read(|c| {
            let (queued, oldest): (i64, Option<String>) = c.query_row(
                "SELECT count(*), min(created_at) FROM intake_imports WHERE status = 'queued'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(QueueStats {
                queued: queued.max(0) as u64,
                oldest_created_at: parse_ts_opt(oldest),
            })
        })
        .await
    }

    fn release_reserve(&self) -> bool {
        self.inner.reserve.release()
    }

    async fn search_imports(
        &self,
        workspace_id: Uuid,
        q: &ImportSearch,
    ) -> StoreResult<SearchPage> {
        let q = q.clone();
        self.read(move |c| search::search(c, workspace_id, &q))
            .await
    }

    async fn start_import(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        sizes: &[u64],
    ) -> StoreResult<ImportRecord> {
        let sizes = sizes.to_vec();
        self.write(move |tx| lifecycle::start(tx, workspace_id, id, &sizes))
            .await
    }

    async fn purge_import(
        &self,
        workspace: &Workspace,
        id: Uuid,
        which: Forget,
        remove_rows: bool,
    ) -> StoreResult<PurgedImport> {
        let ws = workspace.clone();
        self.write(move |tx| lifecycle::purge(tx, &ws, id, which, remove_rows))
            .await
    }

    async fn set_new_import_step(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        step: crate::model::Step,
        failure: Option<&str>,
    ) -> StoreResult<()> {
        let failure = failure.map(str::to_owned);
        self.write(move |tx| {
            lifecycle::set_new_step(tx, workspace_id, id, step, failure.as_deref())
        })
        .await
    }

    async fn set_input_source(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        position: u32,
        format: &str,
        options: &serde_json::Value,
    ) -> StoreResult<()> {
        let (format, options) = (format.to_owned(), options.clone());
        self.write(move |tx| {
            lifecycle::set_input_source(tx, workspace_id, id, position, &format, &options)
        })
        .await
    }

    async fn relabel_import(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        labels: &ImportLabels,
    ) -> StoreResult<ImportRecord> {
        let labels = labels.clone();
        self.write(move |tx| lifecycle::relabel(tx, workspace_id, id, &labels))
            .await
    }
}
