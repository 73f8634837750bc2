//! Persistence behind one interface: workspaces, keys, tables, imports, row errors, events,
//! and the batch writer that loads rows into user tables. The only place that writes SQL.

mod adapter;
mod apply;
mod columns;
mod ddl;
mod lifecycle;
pub mod postgres;
mod reads;
mod records;
mod search;
pub mod sqlite;
mod stored_row;
mod text;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use lifecycle::*;
pub use records::*;
pub use search::*;

use crate::model::{Role, TableSchema};

/// What can go wrong in the store; the API maps each variant to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The model refused the change (the import, table or workspace is not in a state that
    /// allows it).
    #[error(transparent)]
    Refused(#[from] crate::model::Refusal),
    /// The request is well-formed but refers to something unusable (e.g. a bad table name).
    #[error("{0}")]
    Invalid(String),
    /// A worker's lease was taken over by another: it must stop writing.
    #[error("the import's lease was lost to another worker")]
    LeaseLost,
    /// The database made this transaction give way to another (a deadlock or a
    /// serialization failure): running it again may succeed.
    #[error("database contention: {0}")]
    Contention(String),
    /// A writer rolled back batches it had not committed yet (and no longer holds): they
    /// must be read again from the table's last checkpoint and sent again.
    #[error("the uncommitted batches must be sent again from the last checkpoint")]
    Replay,
    /// The disk holding the database is full: the transaction that needed the space was
    /// rolled back, and writing again may succeed once space is freed.
    #[error("the disk holding the database is full ({0})")]
    StorageFull(String),
    /// The database cannot be reached (it restarts, or the connection was lost): what was
    /// not committed was rolled back, and trying again later may succeed.
    #[error("the database is unavailable ({0})")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// Whether the error comes from the database being away, not from what was asked: the
    /// same work may succeed once it is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::StorageFull(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// The store, shared by the API and the engine.
pub type SharedStore = Arc<dyn Store>;

/// The role traits of a store, each a concern of its own; [`Store`] is all of them.
/// Workspaces and their keys.
#[async_trait]
pub trait Keys: Send + Sync + 'static {
    /// Creates the default workspace and its owner key when the database has no workspace;
    /// returns the workspace created, if any.
    async fn bootstrap(&self, owner_key: &NewKey) -> StoreResult<Option<Workspace>>;
    /// Creates a workspace (used by tests and multi-tenant set-ups).
    async fn create_workspace(&self, slug: &str, name: &str) -> StoreResult<Workspace>;
    /// Looks a workspace up by id or slug.
    async fn find_workspace(&self, id_or_slug: &str) -> StoreResult<Option<Workspace>>;
    /// Every workspace, oldest first.
    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>>;
    /// Deletes a workspace: its tables and their rows, imports, keys and webhooks. Refused
    /// (conflict) while one of its imports is queued, running or rolling back. Returns the
    /// blob keys of its imports' sources, for the caller to delete.
    async fn delete_workspace(&self, id: Uuid) -> StoreResult<Vec<String>>;
    /// Stores a new key.
    async fn create_key(&self, workspace_id: Uuid, key: &NewKey) -> StoreResult<KeyRecord>;
    /// Finds a live (not revoked) key by its hash and records its use.
    async fn authenticate(&self, hash: &[u8; 32]) -> StoreResult<Option<KeyRecord>>;
    /// Lists a workspace's keys, newest first.
    async fn list_keys(&self, workspace_id: Uuid) -> StoreResult<Vec<KeyRecord>>;
    /// Revokes a key; `max_role` is the highest role the caller may revoke.
    async fn revoke_key(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        max_role: Role,
    ) -> StoreResult<KeyRecord>;
}

/// Workspaces' tables: their definitions, the real tables, and their rows.
#[async_trait]
pub trait Tables: Send + Sync + 'static {
    /// Creates a table: its definition and the real table in the database.
    async fn create_table(
        &self,
        workspace: &Workspace,
        schema: &TableSchema,
    ) -> StoreResult<TableRecord>;
    /// Adds nullable columns to a table (those it already has are left as they are) and
    /// answers the table as it is now.
    async fn add_columns(
        &self,
        workspace: &Workspace,
        table: &str,
        columns: &[crate::model::ColumnSpec],
    ) -> StoreResult<TableRecord>;
    /// Lists a workspace's tables by name.
    async fn list_tables(&self, workspace: &Workspace) -> StoreResult<Vec<TableRecord>>;
    /// One table, with its row count.
    async fn get_table(&self, workspace: &Workspace, name: &str) -> StoreResult<TableRecord>;
    /// Drops a table; refused while an import that writes to it is not finished.
    async fn delete_table(&self, workspace: &Workspace, name: &str) -> StoreResult<()>;
    /// A page of a table's rows in storage order, after `after` (an opaque position).
    async fn read_records(
        &self,
        workspace: &Workspace,
        table: &TableSchema,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<RecordsPage>;
}

/// Imports as users see them: creating, reading and listing them, their row errors and events, and the life-cycle changes users ask for.
#[async_trait]
pub trait Imports: Send + Sync + 'static {
    /// Creates an import with its inputs; with an idempotency key, either stores the key with
    /// the import or returns what the key was first used for.
    async fn create_import(&self, new: &NewImport) -> StoreResult<CreateOutcome>;
    /// Looks an idempotency key up.
    async fn find_idempotency(
        &self,
        workspace_id: Uuid,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// One import of the workspace, with its tables.
    async fn get_import(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord>;
    /// A filtered, sorted page of imports.
    async fn list_imports(&self, workspace_id: Uuid, q: &ImportQuery) -> StoreResult<ImportPage>;
    /// Imports of a workspace matching typed filters, in a typed order, a page at a time,
    /// with how many match (the compatibility dialects' richer lists).
    async fn search_imports(&self, workspace_id: Uuid, q: &ImportSearch)
    -> StoreResult<SearchPage>;
    /// A page of an import's stored row errors, in source order.
    async fn list_row_errors(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<StoredRowError>>;
    /// An import's stored row errors grouped by table, column and code, the largest groups
    /// first.
    async fn summarize_row_errors(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Vec<ErrorGroup>>;
    /// An import's lifecycle events after `after` (an event id), oldest first.
    async fn list_events(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>>;
    /// The workspace's lifecycle events after `after` (an event id), oldest first.
    async fn list_workspace_events(
        &self,
        workspace_id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>>;
    /// Appends a lifecycle event to an import.
    async fn append_event(
        &self,
        workspace_id: Uuid,
        import_id: Uuid,
        kind: &str,
        data: &serde_json::Value,
    ) -> StoreResult<()>;
    /// Asks an import to stop: a queued one is cancelled at once, a processing one at its next
    /// batch. Returns the import as it is after the request.
    async fn request_cancel(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord>;
    /// Starts rolling back a finished import. Refused (naming it) when a later
    /// import that is not rolled back changed any of the same rows; a rolled-back import is
    /// answered as it is.
    async fn request_rollback(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<ImportRecord>;
    /// Forgets an import that has ended (or, as `which` allows, that waits for its sources):
    /// its record, row errors, events, undo journal and a replace's undo copy; refused while
    /// it runs. With `remove_rows`, first deletes from its tables the rows it last wrote
    /// (`_intake_import` equal to its number); else its rows stay.
    async fn purge_import(
        &self,
        workspace: &Workspace,
        id: Uuid,
        which: crate::model::Forget,
        remove_rows: bool,
    ) -> StoreResult<PurgedImport>;
    /// Drops the undo journals and row errors of imports whose rollback window has ended: the
    /// deadline they ended with, or `retention` after they ended, whichever is sooner (so a
    /// lowered retention reaches imports that ended before it); returns how many were pruned.
    async fn prune(
        &self,
        now: time::OffsetDateTime,
        retention: std::time::Duration,
    ) -> StoreResult<u64>;
    /// Queues an import that waited (status `new`) for sources sent in parts, now complete:
    /// `sizes` are its inputs' final sizes in bytes, in position order. Refused when the
    /// import is no longer new.
    async fn start_import(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        sizes: &[u64],
    ) -> StoreResult<ImportRecord>;
    /// Sets the step of an import still `new` (waiting for its source), or, with `failure`,
    /// ends it `failed` with that reason (its source could not be fetched). Refused when
    /// the import is no longer new.
    async fn set_new_import_step(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        step: crate::model::Step,
        failure: Option<&str>,
    ) -> StoreResult<()>;
    /// Records how to read the source of a `new` import's input, once its file arrived.
    async fn set_input_source(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        position: u32,
        format: &str,
        options: &serde_json::Value,
    ) -> StoreResult<()>;
    /// Changes an import's reference, reference origin or metadata.
    async fn relabel_import(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        labels: &ImportLabels,
    ) -> StoreResult<ImportRecord>;
}

/// Webhooks and their deliveries.
#[async_trait]
pub trait Webhooks: Send + Sync + 'static {
    /// Registers a webhook.
    async fn create_webhook(
        &self,
        workspace_id: Uuid,
        hook: &NewWebhook,
    ) -> StoreResult<WebhookRecord>;
    /// The workspace's webhooks.
    async fn list_webhooks(&self, workspace_id: Uuid) -> StoreResult<Vec<WebhookRecord>>;
    /// Removes a webhook and its pending deliveries.
    async fn delete_webhook(&self, workspace_id: Uuid, id: Uuid) -> StoreResult<()>;
    /// A webhook's deliveries, newest first, before `after` (a delivery id).
    async fn list_deliveries(
        &self,
        workspace_id: Uuid,
        webhook_id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    /// Claims deliveries that are due, holding them for `lease_ms` (a process killed while
    /// sending leaves them due again afterwards).
    async fn claim_deliveries(&self, limit: u32, lease_ms: i64) -> StoreResult<Vec<DueDelivery>>;
    /// Records one attempt of a delivery.
    async fn record_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> StoreResult<()>;
}

/// The workers' side: claiming imports under a lease and recording their progress.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Claims the oldest runnable import (queued, or whose lease expired) for `worker`, from
    /// a workspace running fewer than `per_workspace` imports.
    async fn claim_import(
        &self,
        worker: &str,
        lease_ms: i64,
        per_workspace: u32,
    ) -> StoreResult<Option<Claim>>;
    /// Extends a lease; fails with `LeaseLost` when another worker took the import.
    async fn renew_lease(&self, claim: &Claim, lease_ms: i64) -> StoreResult<LeaseState>;
    /// Records that a worker starts (or resumes) one table of its import.
    async fn start_table(
        &self,
        claim: &Claim,
        position: u32,
        start: &TableStart,
    ) -> StoreResult<()>;
    /// Records how far the pass that infers a table from its source has read and, once it
    /// ends, the input's options holding the inferred schema; renews the lease (which tells
    /// whether a cancel was asked).
    async fn note_inference(
        &self,
        claim: &Claim,
        position: u32,
        bytes_read: u64,
        options: Option<&serde_json::Value>,
    ) -> StoreResult<LeaseState>;
    /// Opens the writer that loads one table's batches (blocking; used on a worker thread).
    fn open_writer(&self, claim: &Claim, plan: WritePlan) -> StoreResult<Box<dyn BatchWriter>>;
    /// Ends one table of an import.
    async fn finish_table(&self, claim: &Claim, position: u32, end: &TableEnd) -> StoreResult<()>;
    /// Ends an import with its final status, releasing the lease.
    async fn finish_import(&self, claim: &Claim, end: &ImportEnd) -> StoreResult<()>;
    /// Sets an import's step (and records it for readers), with the reason of a failure
    /// about to be reached (kept so that a resumed worker can end the import with it).
    async fn set_step(
        &self,
        claim: &Claim,
        step: crate::model::Step,
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// How many imports wait for a worker, across workspaces, and since when the oldest.
    async fn queue_stats(&self) -> StoreResult<QueueStats>;
}

/// The database itself: whether it answers, its connections, and what a restart or a full disk needs.
#[async_trait]
pub trait Upkeep: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// How busy this process's database connections are (without waiting for one).
    fn pool_stats(&self) -> PoolStats;
    /// Frees the disk space the store keeps in reserve (beside an embedded database) so
    /// that a failure caused by a full disk can still be recorded; answers whether any was
    /// freed. The store makes the reserve again once there is room.
    fn release_reserve(&self) -> bool {
        false
    }
    /// Makes the unfinished imports whose lease a worker of `node` holds claimable at once:
    /// called by the process that now holds that node's data directory, so its killed
    /// predecessor cannot be running them. Returns how many were released.
    async fn release_node_leases(&self, node: &str) -> StoreResult<u64> {
        let _ = node;
        Ok(0)
    }
}

/// Everything Intake keeps in its database: every role, behind one `Arc<dyn Store>`.
pub trait Store: Keys + Tables + Imports + Webhooks + Queue + Upkeep {}

impl<T: Keys + Tables + Imports + Webhooks + Queue + Upkeep> Store for T {}

/// Loads batches of one table of one import: rows, counts and checkpoint always commit in one
/// transaction.
pub trait BatchWriter: Send {
    /// Writes one batch and commits it together with its checkpoint and counts.
    fn write(&mut self, batch: &Batch) -> StoreResult<BatchOutcome>;
    /// Tells the writer the checkpoint that the batches it gets next continue the source from.
    /// A writer whose database may lose its last commits (without the process noticing)
    /// then checks that each commit follows on from the one before, and answers `Replay`
    /// when one went missing.
    fn continue_from(&mut self, checkpoint: Position) {
        let _ = checkpoint;
    }
    /// Writes the batches `next` yields until it yields none or `seen` (told what each batch
    /// did, and of a cancel request as it is learned) answers true. A writer may commit
    /// several batches in one transaction; it commits everything before returning. On
    /// `Replay`, batches it had received but not committed are lost: the caller reads them
    /// again from the last committed checkpoint. Each batch is handed to `spent` once
    /// written, so that its memory is freed by the thread that allocated it (a free from
    /// another thread costs the allocator more, and the writer is the pipeline's busiest
    /// stage).
    fn write_stream(
        &mut self,
        next: &mut dyn FnMut() -> Option<Batch>,
        seen: &mut dyn FnMut(&BatchOutcome) -> bool,
        spent: &mut dyn FnMut(Batch),
    ) -> StoreResult<()> {
        write_each(self, next, seen, spent)
    }
    /// Undoes everything this import wrote to the table (abort and atomic policies).
    fn revert(&mut self) -> StoreResult<()>;
    /// Undoes a finished import's changes to the table and marks the table rolled back, in
    /// one transaction; does nothing for a table already rolled back.
    fn roll_back(&mut self) -> StoreResult<()>;
    /// Finishes the table: for replace, swaps the new rows in atomically; for upsert with
    /// cleanup, deletes rows absent from the source; and records the table's end (`end`, with
    /// the rows destroyed counted here) in the same transaction. Returns rows destroyed.
    fn finish(&mut self, end: &TableEnd) -> StoreResult<u64>;
    /// Drops what a table that will not finish loaded on the side (a replace's new table).
    fn discard(&mut self) -> StoreResult<()>;
}

/// Runs blocking database work on the runtime's blocking pool.
async fn off_runtime<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Database(format!("store task failed: {e}")))?
}

/// Writes each batch `next` yields in a transaction of its own, until `seen` answers true;
/// each written batch goes to `spent`.
pub fn write_each<W: BatchWriter + ?Sized>(
    writer: &mut W,
    next: &mut dyn FnMut() -> Option<Batch>,
    seen: &mut dyn FnMut(&BatchOutcome) -> bool,
    spent: &mut dyn FnMut(Batch),
) -> StoreResult<()> {
    while let Some(batch) = next() {
        let out = writer.write(&batch)?;
        spent(batch);
        if seen(&out) {
            break;
        }
    }
    Ok(())
}

/// The text a timestamp sorts by in list cursors (fixed-width RFC 3339, UTC, milliseconds).
pub fn sort_key(t: time::OffsetDateTime) -> String {
    text::ts(t)
}
