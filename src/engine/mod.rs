//! The import engine: reader → mapper → validator → writer, the worker pool, leases,
//! checkpoints and cancellation.

pub mod archive;
mod create_table;
mod inference_pass;
pub mod inflate;
pub mod mapper;
pub mod options;
pub mod pause;
pub mod reader;
mod relay;
pub mod staging;
mod submit;
pub mod validator;
pub mod webhooks;
pub mod workbook;
mod worker;
mod write_behind;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::blob::BlobStore;
use crate::store::SharedStore;

pub use submit::{StagedSource, Submission, SubmitError, Submitted};
pub use worker::Ran;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Workers in this process.
    pub workers: usize,
    /// Imports one workspace may run at once (across all processes).
    pub per_workspace: u32,
    /// Rows per batch at most.
    pub batch_rows: usize,
    /// Source bytes per batch at most (a batch of wide records holds fewer rows).
    pub batch_bytes: u64,
    /// Largest field of a delimited source, in bytes.
    pub max_field_bytes: usize,
    /// Largest record, in bytes.
    pub max_record_bytes: usize,
    /// Row errors stored per import (all are counted; an import with more says so).
    pub max_stored_errors: u64,
    /// How long an idle worker waits before looking for work again.
    pub poll_interval: Duration,
    /// How long finished imports keep their undo journal and row errors (and so can be
    /// rolled back).
    pub retention: Duration,
    /// The first retry delay of a failed webhook delivery (doubled at each attempt).
    pub webhook_backoff: Duration,
    /// How often idle senders look for due webhook deliveries.
    pub webhook_poll: Duration,
    /// How long a worker holds an import without renewing its lease; after that, a worker
    /// of another process may take the import over (a killed process's imports resume).
    pub lease: Duration,
    /// How long a worker waits for a database that went away (retrying with capped
    /// backoff) before it gives the import up as failed.
    pub outage_limit: Duration,
    /// The identity of the data directory this process holds; its workers' names carry it,
    /// so that the next process on the directory can release what a killed one held.
    pub node: String,
    /// Where a test build's workers wait for the test (nothing in a release build).
    pub pauses: pause::PausePoints,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 2,
            per_workspace: 2,
            batch_rows: 5_000,
            batch_bytes: 2 << 20,
            max_field_bytes: 1 << 20,
            max_record_bytes: 8 << 20,
            max_stored_errors: 1_000_000,
            poll_interval: Duration::from_millis(500),
            retention: Duration::from_secs(30 * 24 * 3600),
            webhook_backoff: Duration::from_secs(1),
            webhook_poll: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            outage_limit: Duration::from_secs(60),
            node: uuid::Uuid::now_v7().simple().to_string(),
            pauses: pause::PausePoints::default(),
        }
    }
}

/// The engine, shared by the API (to enqueue and wake) and its workers.
#[derive(Clone)]
pub struct Engine {
    pub store: SharedStore,
    pub blobs: BlobStore,
    pub config: Arc<EngineConfig>,
    wake: Arc<Notify>,
    worker_prefix: String,
}

/// The start of the names of a process's workers: `<pid>-<node>-`.
pub fn worker_prefix(node: &str) -> String {
    format!("{}-{node}", std::process::id())
}

impl Engine {
    /// An engine over a store and a source store.
    pub fn new(store: SharedStore, blobs: BlobStore, config: EngineConfig) -> Engine {
        Engine {
            store,
            blobs,
            wake: Arc::new(Notify::new()),
            worker_prefix: worker_prefix(&config.node),
            config: Arc::new(config),
        }
    }

    /// Tells idle workers there is work; private, so that only the engine's own use cases
    /// (`submit`) wake them, once what they queued is committed.
    fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Prunes undo journals and row errors past the retention period, now and every ten
    /// minutes, until `shutdown` turns true.
    pub fn spawn_maintenance(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let retention = self.config.retention;
        tokio::spawn(async move {
            loop {
                match store
                    .prune(time::OffsetDateTime::now_utc(), retention)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(imports = n, "pruned expired undo journals"),
                    Err(e) => tracing::warn!(error = %e, "pruning failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                    _ = shutdown.changed() => break,
                }
            }
        })
    }

    /// Starts the workers; they stop at a batch boundary once `shutdown` turns true.
    pub fn spawn_workers(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.config.workers)
            .map(|n| {
                let engine = self.clone();
                let mut shutdown = shutdown.clone();
                let name = format!("{}-{n}", self.worker_prefix);
                tokio::spawn(async move {
                    loop {
                        if *shutdown.borrow() {
                            break;
                        }
                        let notified = engine.wake.notified();
                        match engine.run_once(&name, &shutdown).await {
                            Ok(Ran::Worked) => continue,
                            Ok(Ran::Idle) => {}
                            // The database being away is not a fault of this process:
                            // the next poll tries again.
                            Err(e) if e.is_unavailable() => {
                                tracing::warn!(error = %e, "worker step failed");
                            }
                            Err(e) => tracing::error!(error = %e, "worker step failed"),
                        }
                        tokio::select! {
                            _ = notified => {}
                            _ = tokio::time::sleep(engine.config.poll_interval) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                })
            })
            .collect()
    }
}
