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
mod lifecycle;
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
use crate::model::{Forget, Refusal, Role, Step, TableSchema};
use pool::Pool;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_status_index.sql"),
    include_str!("migrations/0003_key_expiry.sql"),
    include_str!("migrations/0004_key_scope.sql"),
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

/// The current time at the precision timestamps are shown with (milliseconds), so that
/// what a write answers equals what later reads return.
fn now() -> OffsetDateTime {
    ms(OffsetDateTime::now_utc())
}

/// A time cut to milliseconds: filters compare at the precision the SQLite backend keeps.
fn ms(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

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

fn workspace_from_row(r: &::postgres::Row) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: r.try_get(0)?,
        slug: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: r.try_get(3)?,
    })
}

fn key_from_row(r: &::postgres::Row) -> StoreResult<KeyRecord> {
    Ok(KeyRecord {
        id: r.try_get(0)?,
        workspace_id: r.try_get(1)?,
        name: r.try_get(2)?,
        role: Role::parse(&r.try_get::<_, String>(3)?).unwrap_or(Role::Viewer),
        prefix: r.try_get(4)?,
        created_at: r.try_get(5)?,
        last_used_at: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
        expires_at: r.try_get(8)?,
        tables: crate::store::scope_from_text(r.try_get(9)?),
    })
}

const KEY_COLUMNS: &str = "id, workspace_id, name, role, prefix, created_at, last_used_at, revoked_at, expires_at, tables";

fn insert_workspace(tx: &mut Transaction<'_>, slug: &str, name: &str) -> StoreResult<Workspace> {
    tables::check_slug(slug)?;
    let ws = Workspace {
        id: Uuid::now_v7(),
        slug: slug.to_owned(),
        name: name.to_owned(),
        created_at: now(),
    };
    let taken = tx.query_opt("SELECT 1 FROM intake_workspaces WHERE slug = $1", &[&slug])?;
    if taken.is_some() {
        return Err(Refusal::WorkspaceExists(slug.to_owned()).into());
    }
    tx.execute(
        "INSERT INTO intake_workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
        &[&ws.id, &ws.slug, &ws.name, &ws.created_at],
    )
    .map_err(|e| match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            Refusal::WorkspaceExists(slug.to_owned()).into()
        }
        _ => e.into(),
    })?;
    // The workspace's tables live in a schema of its own.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        values::quote(slug)
    ))?;
    Ok(ws)
}

fn delete_workspace(tx: &mut Transaction<'_>, id: Uuid) -> StoreResult<Vec<String>> {
    // Locked, so that no import or table is added to it meanwhile.
    let row = tx
        .query_opt(
            "SELECT id, slug, name, created_at FROM intake_workspaces WHERE id = $1 FOR UPDATE",
            &[&id],
        )?
        .ok_or(StoreError::NotFound("workspace"))?;
    let ws = workspace_from_row(&row)?;
    let busy = tx.query_opt(
        "SELECT id FROM intake_imports WHERE workspace_id = $1
         AND status IN ('queued', 'processing', 'rolling_back') LIMIT 1",
        &[&id],
    )?;
    if let Some(row) = busy {
        let import: Uuid = row.try_get(0)?;
        return Err(Refusal::WorkspaceBusy {
            slug: ws.slug,
            import: import.to_string(),
        }
        .into());
    }
    let blobs = tx
        .query(
            "SELECT t.blob_key FROM intake_import_tables t
             JOIN intake_imports i ON i.id = t.import_id
             WHERE i.workspace_id = $1 AND t.blob_key IS NOT NULL",
            &[&id],
        )?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    for sql in [
        "DELETE FROM intake_idempotency WHERE workspace_id = $1",
        "DELETE FROM intake_imports WHERE workspace_id = $1",
        "DELETE FROM intake_webhooks WHERE workspace_id = $1",
        "DELETE FROM intake_tables WHERE workspace_id = $1",
        "DELETE FROM intake_api_keys WHERE workspace_id = $1",
        "DELETE FROM intake_workspaces WHERE id = $1",
    ] {
        tx.execute(sql, &[&id])?;
    }
    // Its tables, their undo copies and anything else of it live in its schema.
    tx.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        values::quote(&ws.slug)
    ))?;
    Ok(blobs)
}

fn insert_key(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    key: &NewKey,
) -> StoreResult<KeyRecord> {
    let created_at = now();
    tx.execute(
        "INSERT INTO intake_api_keys (id, workspace_id, name, role, prefix, hash, created_at,
         expires_at, tables) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &key.id,
            &workspace_id,
            &key.name,
            &key.role.as_str(),
            &key.prefix,
            &&key.hash[..],
            &created_at,
            &key.expires_at,
            &crate::store::scope_text(&key.tables),
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
impl Store for PgStore {
    async fn bootstrap(&self, owner_key: &NewKey) -> StoreResult<Option<Workspace>> {
        let key = owner_key.clone();
        self.write(move |tx| {
            // Processes starting together on an empty database: one creates the workspace.
            lock_workspace(tx, BOOTSTRAP_LOCK, Uuid::nil())?;
            if tx
                .query_opt("SELECT id FROM intake_workspaces LIMIT 1", &[])?
                .is_some()
            {
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
        self.read(move |tx| {
            let row = match Uuid::parse_str(&key) {
                Ok(id) => tx.query_opt(
                    "SELECT id, slug, name, created_at FROM intake_workspaces
                     WHERE id = $1 OR slug = $2",
                    &[&id, &key],
                )?,
                Err(_) => tx.query_opt(
                    "SELECT id, slug, name, created_at FROM intake_workspaces WHERE slug = $1",
                    &[&key],
                )?,
            };
            row.as_ref().map(workspace_from_row).transpose()
        })
        .await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.read(|tx| {
            tx.query(
                "SELECT id, slug, name, created_at FROM intake_workspaces ORDER BY created_at, id",
                &[],
            )?
            .iter()
            .map(workspace_from_row)
            .collect()
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
        self.read(move |tx| {
            let row = tx.query_opt(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE hash = $1 AND revoked_at IS NULL
                     AND (expires_at IS NULL OR expires_at > now())"
                ),
                &[&&hash[..]],
            )?;
            row.as_ref().map(key_from_row).transpose()
        })
        .await
    }

    async fn list_keys(&self, workspace_id: Uuid) -> StoreResult<Vec<KeyRecord>> {
        self.read(move |tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE workspace_id = $1
                     ORDER BY created_at DESC, id DESC"
                ),
                &[&workspace_id],
            )?;
            rows.iter().map(key_from_row).collect()
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
            let row = tx
                .query_opt(
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM intake_api_keys
                         WHERE id = $1 AND workspace_id = $2 FOR NO KEY UPDATE"
                    ),
                    &[&id, &workspace_id],
                )?
                .ok_or(StoreError::NotFound("key"))?;
            let key = key_from_row(&row)?;
            if key.role > max_role {
                return Err(Refusal::KeyOutranks(key.role).into());
            }
            if key.revoked_at.is_some() {
                return Ok(key);
            }
            let at = now();
            tx.execute(
                "UPDATE intake_api_keys SET revoked_at = $1 WHERE id = $2",
                &[&at, &id],
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
        self.read(move |tx| tables::list(tx, &ws)).await
    }

    async fn get_table(&self, workspace: &Workspace, name: &str) -> StoreResult<TableRecord> {
        let (ws, name) = (workspace.clone(), name.to_owned());
        self.read(move |tx| tables::get(tx, &ws, &name, true)).await
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
        self.read(move |tx| tables::read_records(tx, &ws, &table, after, limit))
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
        self.read(move |tx| imports::find_idempotency(tx, workspace_id, &key))
            .await
    }

    async fn get_import(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord> {
        self.read(move |tx| imports::get(tx, workspace_id, id))
            .await
    }

    async fn list_imports(&self, workspace_id: Uuid, q: &ImportQuery) -> StoreResult<ImportPage> {
        let q = q.clone();
        self.read(move |tx| imports::list(tx, workspace_id, &q))
            .await
    }

    async fn list_row_errors(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<StoredRowError>> {
        self.read(move |tx| imports::row_errors(tx, workspace_id, id, after, limit))
            .await
    }

    async fn summarize_row_errors(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Vec<ErrorGroup>> {
        self.read(move |tx| imports::error_groups(tx, workspace_id, id))
            .await
    }

    async fn list_events(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        self.read(move |tx| imports::events(tx, workspace_id, id, after, limit))
            .await
    }

    async fn list_workspace_events(
        &self,
        workspace_id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        self.read(move |tx| webhooks::workspace_events(tx, workspace_id, after, limit))
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
        self.read(move |tx| webhooks::list(tx, workspace_id)).await
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
        self.read(move |tx| webhooks::deliveries(tx, workspace_id, webhook_id, after, limit))
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
        self.write(move |tx| imports::check_lease(tx, id, token, lease_ms))
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
        // Nothing blocking here: this is called on async tasks. The writer connects on its
        // first operation, which runs on a blocking thread.
        Ok(Box::new(writer::PgWriter::new(
            self.inner.clone(),
            claim,
            plan,
        )))
    }

    async fn finish_table(&self, claim: &Claim, position: u32, end: &TableEnd) -> StoreResult<()> {
        let (claim, end) = (claim.clone(), end.clone());
        self.write(move |tx| imports::finish_table(tx, &claim, position, &end))
            .await
    }

    async fn finish_import(&self, claim: &Claim, end: &ImportEnd) -> StoreResult<()> {
        let (claim, end) = (claim.clone(), end.clone());
        self.write(move |tx| imports::finish(tx, &claim, &end))
            .await
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

    async fn release_node_leases(&self, node: &str) -> StoreResult<u64> {
        let node = node.to_owned();
        self.write(move |tx| imports::release_node_leases(tx, &node))
            .await
    }

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

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        self.read(|tx| {
            let row = tx.query_one(
                "SELECT count(*), min(created_at) FROM intake_imports WHERE status = 'queued'",
                &[],
            )?;
            let queued: i64 = row.try_get(0)?;
            Ok(QueueStats {
                queued: queued.max(0) as u64,
                oldest_created_at: row.try_get(1)?,
            })
        })
        .await
    }

    async fn search_imports(
        &self,
        workspace_id: Uuid,
        q: &ImportSearch,
    ) -> StoreResult<SearchPage> {
        let q = q.clone();
        self.read(move |tx| search::search(tx, workspace_id, &q))
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
