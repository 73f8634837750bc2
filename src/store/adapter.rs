//! The one async adapter of the blocking backends. Both backends do their work on blocking
//! connections (rusqlite, the synchronous PostgreSQL client) through the same four calls,
//! `read`, `read_small`, `write` and `write_durably`, each running a closure off the async
//! runtime; and both name their functions alike, module by module (`keys`, `tables`,
//! `imports`, `search`, `webhooks`). [`blocking_roles!`] writes the role traits once on top
//! of that: each method copies its borrowed arguments into the closure and calls the
//! backend's function of that name. What a backend decides for itself (how it reads and
//! commits, its batch writer, its upkeep) stays in the backend.

/// Implements [`Keys`](super::Keys), [`Tables`](super::Tables), [`Imports`](super::Imports),
/// [`Webhooks`](super::Webhooks) and [`Queue`](super::Queue) for a blocking backend, in the
/// module that defines it (whose `keys`, `tables`, `imports`, `search` and `webhooks` modules
/// hold the functions called, and whose type has the four run methods and `batch_writer`).
macro_rules! blocking_roles {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Keys for $store {
            async fn bootstrap(&self, owner_key: &NewKey) -> StoreResult<Option<Workspace>> {
                let key = owner_key.clone();
                self.write(move |tx| keys::bootstrap(tx, &key)).await
            }

            async fn create_workspace(&self, slug: &str, name: &str) -> StoreResult<Workspace> {
                let (slug, name) = (slug.to_owned(), name.to_owned());
                self.write(move |tx| keys::insert_workspace(tx, &slug, &name))
                    .await
            }

            async fn find_workspace(&self, id_or_slug: &str) -> StoreResult<Option<Workspace>> {
                let key = id_or_slug.to_owned();
                self.read_small(move |c| keys::find_workspace(c, &key))
                    .await
            }

            async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
                self.read(|c| keys::list_workspaces(c)).await
            }

            async fn delete_workspace(&self, id: Uuid) -> StoreResult<Vec<String>> {
                self.write(move |tx| keys::delete_workspace(tx, id)).await
            }

            async fn create_key(&self, workspace_id: Uuid, key: &NewKey) -> StoreResult<KeyRecord> {
                let key = key.clone();
                self.write(move |tx| keys::insert_key(tx, workspace_id, &key))
                    .await
            }

            async fn authenticate(&self, hash: &[u8; 32]) -> StoreResult<Option<KeyRecord>> {
                let hash = *hash;
                self.read_small(move |c| keys::authenticate(c, &hash)).await
            }

            async fn list_keys(&self, workspace_id: Uuid) -> StoreResult<Vec<KeyRecord>> {
                self.read(move |c| keys::list_keys(c, workspace_id)).await
            }

            async fn revoke_key(
                &self,
                workspace_id: Uuid,
                id: Uuid,
                max_role: $crate::model::Role,
            ) -> StoreResult<KeyRecord> {
                self.write(move |tx| keys::revoke_key(tx, workspace_id, id, max_role))
                    .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Tables for $store {
            async fn create_table(
                &self,
                workspace: &Workspace,
                schema: &$crate::model::TableSchema,
            ) -> StoreResult<TableRecord> {
                let (ws, schema) = (workspace.clone(), schema.clone());
                self.write(move |tx| tables::create(tx, &ws, &schema)).await
            }

            async fn add_columns(
                &self,
                workspace: &Workspace,
                table: &str,
                columns: &[$crate::model::ColumnSpec],
            ) -> StoreResult<TableRecord> {
                let (ws, table, columns) = (workspace.clone(), table.to_owned(), columns.to_vec());
                self.write(move |tx| tables::add_columns(tx, &ws, &table, &columns))
                    .await
            }

            async fn list_tables(&self, workspace: &Workspace) -> StoreResult<Vec<TableRecord>> {
                let ws = workspace.clone();
                self.read(move |c| tables::list(c, &ws)).await
            }

            async fn get_table(
                &self,
                workspace: &Workspace,
                name: &str,
            ) -> StoreResult<TableRecord> {
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
                table: &$crate::model::TableSchema,
                after: Option<i64>,
                limit: u32,
            ) -> StoreResult<RecordsPage> {
                let (ws, table) = (workspace.clone(), table.clone());
                self.read(move |c| tables::read_records(c, &ws, &table, after, limit))
                    .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Imports for $store {
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

            async fn list_imports(
                &self,
                workspace_id: Uuid,
                q: &ImportQuery,
            ) -> StoreResult<ImportPage> {
                let q = q.clone();
                self.read(move |c| imports::list(c, workspace_id, &q)).await
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
                self.read(move |c| imports::workspace_events(c, workspace_id, after, limit))
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
                self.write(move |tx| {
                    imports::append_event(tx, workspace_id, import_id, &kind, &data)
                })
                .await
            }

            async fn request_cancel(
                &self,
                workspace_id: Uuid,
                id: Uuid,
            ) -> StoreResult<ImportRecord> {
                self.write(move |tx| imports::request_cancel(tx, workspace_id, id))
                    .await
            }

            async fn request_rollback(
                &self,
                workspace_id: Uuid,
                id: Uuid,
            ) -> StoreResult<ImportRecord> {
                self.write(move |tx| imports::request_rollback(tx, workspace_id, id))
                    .await
            }

            async fn purge_import(
                &self,
                workspace: &Workspace,
                id: Uuid,
                which: $crate::model::Forget,
                remove_rows: bool,
            ) -> StoreResult<PurgedImport> {
                let ws = workspace.clone();
                self.write(move |tx| imports::purge(tx, &ws, id, which, remove_rows))
                    .await
            }

            async fn prune(
                &self,
                now: time::OffsetDateTime,
                retention: std::time::Duration,
            ) -> StoreResult<u64> {
                let ended_before = $crate::model::lifecycle::prune_before(now, retention);
                self.write(move |tx| imports::prune(tx, now, ended_before))
                    .await
            }

            async fn start_import(
                &self,
                workspace_id: Uuid,
                id: Uuid,
                sizes: &[u64],
            ) -> StoreResult<ImportRecord> {
                let sizes = sizes.to_vec();
                self.write(move |tx| imports::start(tx, workspace_id, id, &sizes))
                    .await
            }

            async fn set_new_import_step(
                &self,
                workspace_id: Uuid,
                id: Uuid,
                step: $crate::model::Step,
                failure: Option<&str>,
            ) -> StoreResult<()> {
                let failure = failure.map(str::to_owned);
                self.write(move |tx| {
                    imports::set_new_step(tx, workspace_id, id, step, failure.as_deref())
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
                    imports::set_input_source(tx, workspace_id, id, position, &format, &options)
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
                self.write(move |tx| imports::relabel(tx, workspace_id, id, &labels))
                    .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Webhooks for $store {
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

            async fn claim_deliveries(
                &self,
                limit: u32,
                lease_ms: i64,
            ) -> StoreResult<Vec<DueDelivery>> {
                self.write(move |tx| webhooks::claim(tx, limit, lease_ms))
                    .await
            }

            async fn record_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> StoreResult<()> {
                let outcome = outcome.clone();
                self.write(move |tx| webhooks::record(tx, id, &outcome))
                    .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Queue for $store {
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

            fn open_writer(
                &self,
                claim: &Claim,
                plan: WritePlan,
            ) -> StoreResult<Box<dyn BatchWriter>> {
                self.batch_writer(claim, plan)
            }

            async fn finish_table(
                &self,
                claim: &Claim,
                position: u32,
                end: &TableEnd,
            ) -> StoreResult<()> {
                let (claim, end) = (claim.clone(), end.clone());
                self.write(move |tx| imports::finish_table(tx, &claim, position, &end))
                    .await
            }

            async fn finish_import(&self, claim: &Claim, end: &ImportEnd) -> StoreResult<()> {
                let (claim, end) = (claim.clone(), end.clone());
                // Durable: the import's sources are deleted once it has ended.
                self.write_durably(move |tx| imports::finish(tx, &claim, &end))
                    .await
            }

            async fn set_step(
                &self,
                claim: &Claim,
                step: $crate::model::Step,
                error: Option<&str>,
            ) -> StoreResult<()> {
                let (claim, error) = (claim.clone(), error.map(str::to_owned));
                self.write(move |tx| imports::set_step(tx, &claim, step, error.as_deref()))
                    .await
            }

            async fn queue_stats(&self) -> StoreResult<QueueStats> {
                self.read(|c| imports::queue_stats(c)).await
            }
        }
    };
}

pub(crate) use blocking_roles;
