//! The one async adapter of the blocking backends. Both backends do their work on blocking
//! connections (rusqlite, the synchronous PostgreSQL client) through the same four calls,
//! `read`, `read_small`, `write` and `write_durably`, each running a closure off the async
//! runtime; and both name their functions alike, module by module (`keys`, `tables`,
//! `imports`, `search`, `webhooks`). [`blocking_roles!`] writes the role traits once on top
//! of that, a line a method: each method carries its borrowed arguments into the closure
//! ([`Carry`]) and calls the backend's function of that name. What a backend decides for
//! itself (how it reads and commits, its batch writer, its upkeep) stays in the backend.

use uuid::Uuid;

use crate::model::{Forget, Role, Step};

/// An argument as a blocking closure takes it: borrowed ones are copied into owned values
/// (the closure outlives the call's borrows), plain values travel as they are.
pub trait Carry {
    /// What the closure holds.
    type Owned: Send + 'static;
    /// Makes the value the closure holds.
    fn carry(self) -> Self::Owned;
}

impl<T: ToOwned + ?Sized> Carry for &T
where
    T::Owned: Send + 'static,
{
    type Owned = T::Owned;
    fn carry(self) -> T::Owned {
        self.to_owned()
    }
}

impl<T: ToOwned + ?Sized> Carry for Option<&T>
where
    T::Owned: Send + 'static,
{
    type Owned = Option<T::Owned>;
    fn carry(self) -> Option<T::Owned> {
        self.map(ToOwned::to_owned)
    }
}

/// Types that travel into a closure as they are.
macro_rules! carried_as_is {
    ($($t:ty),*) => {
        $(impl Carry for $t {
            type Owned = $t;
            fn carry(self) -> $t {
                self
            }
        })*
    };
}

carried_as_is!(Uuid, i64, u32, u64, bool, Option<i64>, Role, Step, Forget);

/// Implements one role trait for a blocking backend: each `run name(args) -> T = |conn| call;`
/// line becomes the async method `name` that carries its arguments into a closure, hands it
/// to the backend's `run` (`read`, `read_small`, `write` or `write_durably`) and answers
/// `StoreResult<T>`. Methods that do more are written after the list, as they are.
macro_rules! forward {
    ($role:path, $store:ty,
     { $($run:ident $name:ident($($arg:ident: $ty:ty),*) -> $out:ty = |$c:ident| $call:expr;)* }
     $($written:tt)*) => {
        #[async_trait::async_trait]
        impl $role for $store {
            $(
                async fn $name(&self, $($arg: $ty),*) -> StoreResult<$out> {
                    $(let $arg = $crate::store::adapter::Carry::carry($arg);)*
                    self.$run(move |$c| $call).await
                }
            )*
            $($written)*
        }
    };
}

/// Implements [`Keys`](super::Keys), [`Tables`](super::Tables), [`Imports`](super::Imports),
/// [`Webhooks`](super::Webhooks) and [`Queue`](super::Queue) for a blocking backend, in the
/// module that defines it (whose `keys`, `tables`, `imports`, `search` and `webhooks` modules
/// hold the functions called, and whose type has the four run methods and `batch_writer`).
macro_rules! blocking_roles {
    ($store:ty) => {
        $crate::store::adapter::forward!($crate::store::Keys, $store, {
            write bootstrap(key: &NewKey) -> Option<Workspace> = |tx| keys::bootstrap(tx, &key);
            write create_workspace(slug: &str, name: &str) -> Workspace =
                |tx| keys::insert_workspace(tx, &slug, &name);
            read_small find_workspace(id_or_slug: &str) -> Option<Workspace> =
                |c| keys::find_workspace(c, &id_or_slug);
            read list_workspaces() -> Vec<Workspace> = |c| $crate::store::reads::workspaces(c);
            write delete_workspace(id: Uuid) -> Vec<String> = |tx| keys::delete_workspace(tx, id);
            write create_key(workspace_id: Uuid, key: &NewKey) -> KeyRecord =
                |tx| keys::insert_key(tx, workspace_id, &key);
            read_small authenticate(hash: &[u8; 32]) -> Option<KeyRecord> =
                |c| keys::authenticate(c, &hash);
            read list_keys(workspace_id: Uuid) -> Vec<KeyRecord> = |c| $crate::store::reads::keys(c, workspace_id);
            write revoke_key(workspace_id: Uuid, id: Uuid, max_role: $crate::model::Role) -> KeyRecord =
                |tx| keys::revoke_key(tx, workspace_id, id, max_role);
        });

        $crate::store::adapter::forward!($crate::store::Tables, $store, {
            write create_table(workspace: &Workspace, schema: &$crate::model::TableSchema) -> TableRecord =
                |tx| tables::create(tx, &workspace, &schema);
            write add_columns(workspace: &Workspace, table: &str, columns: &[$crate::model::ColumnSpec])
                -> TableRecord = |tx| tables::add_columns(tx, &workspace, &table, &columns);
            read list_tables(workspace: &Workspace) -> Vec<TableRecord> = |c| tables::list(c, &workspace);
            read get_table(workspace: &Workspace, name: &str) -> TableRecord =
                |c| tables::get(c, &workspace, &name, true);
            write delete_table(workspace: &Workspace, name: &str) -> () =
                |tx| tables::delete(tx, &workspace, &name);
            read read_records(workspace: &Workspace, table: &$crate::model::TableSchema, after: Option<i64>, limit: u32)
                -> RecordsPage = |c| tables::read_records(c, &workspace, &table, after, limit);
        });

        $crate::store::adapter::forward!($crate::store::Imports, $store, {
            write create_import(new: &NewImport) -> CreateOutcome = |tx| imports::create(tx, &new);
            read find_idempotency(workspace_id: Uuid, key: &str) -> Option<IdempotencyRecord> =
                |c| imports::find_idempotency(c, workspace_id, &key);
            read_small get_import(workspace_id: Uuid, id: Uuid) -> ImportRecord =
                |c| imports::get(c, workspace_id, id);
            read list_imports(workspace_id: Uuid, q: &ImportQuery) -> ImportPage =
                |c| imports::list(c, workspace_id, &q);
            read search_imports(workspace_id: Uuid, q: &ImportSearch) -> SearchPage =
                |c| search::search(c, workspace_id, &q);
            read list_row_errors(workspace_id: Uuid, id: Uuid, after: Option<i64>, limit: u32)
                -> Vec<StoredRowError> = |c| $crate::store::reads::row_errors(c, workspace_id, id, after, limit);
            read summarize_row_errors(workspace_id: Uuid, id: Uuid) -> Vec<ErrorGroup> =
                |c| $crate::store::reads::error_groups(c, workspace_id, id);
            read list_events(workspace_id: Uuid, id: Uuid, after: Option<i64>, limit: u32)
                -> Vec<EventRecord> = |c| $crate::store::reads::events(c, workspace_id, Some(id), after, limit);
            read list_workspace_events(workspace_id: Uuid, after: Option<i64>, limit: u32)
                -> Vec<EventRecord> = |c| $crate::store::reads::events(c, workspace_id, None, after, limit);
            write append_event(workspace_id: Uuid, import_id: Uuid, kind: &str, data: &serde_json::Value)
                -> () = |tx| imports::append_event(tx, workspace_id, import_id, &kind, &data);
            write request_cancel(workspace_id: Uuid, id: Uuid) -> ImportRecord =
                |tx| imports::request_cancel(tx, workspace_id, id);
            write request_rollback(workspace_id: Uuid, id: Uuid) -> ImportRecord =
                |tx| imports::request_rollback(tx, workspace_id, id);
            write purge_import(workspace: &Workspace, id: Uuid, which: $crate::model::Forget, remove_rows: bool)
                -> PurgedImport = |tx| imports::purge(tx, &workspace, id, which, remove_rows);
            write start_import(workspace_id: Uuid, id: Uuid, sizes: &[u64]) -> ImportRecord =
                |tx| imports::start(tx, workspace_id, id, &sizes);
            write set_new_import_step(workspace_id: Uuid, id: Uuid, step: $crate::model::Step, failure: Option<&str>)
                -> () = |tx| imports::set_new_step(tx, workspace_id, id, step, failure.as_deref());
            write set_input_source(workspace_id: Uuid, id: Uuid, position: u32, format: &str, options: &serde_json::Value)
                -> () = |tx| imports::set_input_source(tx, workspace_id, id, position, &format, &options);
            write relabel_import(workspace_id: Uuid, id: Uuid, labels: &ImportLabels) -> ImportRecord =
                |tx| imports::relabel(tx, workspace_id, id, &labels);
        }
            async fn prune(
                &self,
                now: time::OffsetDateTime,
                retention: std::time::Duration,
            ) -> StoreResult<u64> {
                let ended_before = $crate::model::lifecycle::prune_before(now, retention);
                self.write(move |tx| imports::prune(tx, now, ended_before)).await
            }
        );

        $crate::store::adapter::forward!($crate::store::Webhooks, $store, {
            write create_webhook(workspace_id: Uuid, hook: &NewWebhook) -> WebhookRecord =
                |tx| webhooks::create(tx, workspace_id, &hook);
            read list_webhooks(workspace_id: Uuid) -> Vec<WebhookRecord> = |c| $crate::store::reads::webhooks(c, workspace_id);
            write delete_webhook(workspace_id: Uuid, id: Uuid) -> () = |tx| webhooks::delete(tx, workspace_id, id);
            read list_deliveries(workspace_id: Uuid, webhook_id: Uuid, after: Option<i64>, limit: u32)
                -> Vec<DeliveryRecord> = |c| $crate::store::reads::deliveries(c, workspace_id, webhook_id, after, limit);
            write claim_deliveries(limit: u32, lease_ms: i64) -> Vec<DueDelivery> =
                |tx| webhooks::claim(tx, limit, lease_ms);
            write record_delivery(id: i64, outcome: &DeliveryOutcome) -> () = |tx| webhooks::record(tx, id, &outcome);
        });

        $crate::store::adapter::forward!($crate::store::Queue, $store, {
            write claim_import(worker: &str, lease_ms: i64, per_workspace: u32) -> Option<Claim> =
                |tx| imports::claim(tx, &worker, lease_ms, per_workspace);
            write start_table(claim: &Claim, position: u32, start: &TableStart) -> () =
                |tx| imports::start_table(tx, &claim, position, &start);
            write note_inference(claim: &Claim, position: u32, bytes_read: u64, options: Option<&serde_json::Value>)
                -> LeaseState = |tx| imports::note_inference(tx, &claim, position, bytes_read, options.as_ref());
            write finish_table(claim: &Claim, position: u32, end: &TableEnd) -> () =
                |tx| imports::finish_table(tx, &claim, position, &end);
            // Durable: the import's sources are deleted once it has ended.
            write_durably finish_import(claim: &Claim, end: &ImportEnd) -> () = |tx| imports::finish(tx, &claim, &end);
            write set_step(claim: &Claim, step: $crate::model::Step, error: Option<&str>) -> () =
                |tx| imports::set_step(tx, &claim, step, error.as_deref());
            read queue_stats() -> QueueStats = |c| imports::queue_stats(c);
        }
            async fn renew_lease(&self, claim: &Claim, lease_ms: i64) -> StoreResult<LeaseState> {
                let (id, token) = (claim.import.id, claim.token);
                self.write(move |tx| imports::check_lease(tx, id, token, lease_ms)).await
            }

            fn open_writer(
                &self,
                claim: &Claim,
                plan: WritePlan,
            ) -> StoreResult<Box<dyn BatchWriter>> {
                self.batch_writer(claim, plan)
            }
        );
    };
}

pub(crate) use {blocking_roles, forward};
