//! Starting and stopping the server: open the store, bootstrap the first key, serve HTTP
//! and run the workers until shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, ApiConfig, AppState};
use crate::blob::BlobStore;
use crate::engine::{Engine, EngineConfig};
use crate::model::Role;
use crate::store::SharedStore;
use crate::store::sqlite::SqliteStore;

/// Everything `intake serve` is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database and uploaded sources live.
    pub data_dir: PathBuf,
    /// Use this value as the owner key of a fresh server instead of a random one.
    pub bootstrap_key: Option<String>,
    pub engine: EngineConfig,
    pub api: ApiConfig,
}

impl Config {
    /// Defaults for a data directory.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            bootstrap_key: None,
            engine: EngineConfig::default(),
            api: ApiConfig {
                max_upload_bytes: 10 << 30,
                max_inline_bytes: 64 << 20,
            },
        }
    }
}

/// A running server's handles: what tests and `main` need.
pub struct Running {
    /// The owner key printed at first start, when this start created it.
    pub bootstrap_key: Option<String>,
}

/// Opens the store, bootstraps, and serves on `listener` until `shutdown` resolves; then
/// stops accepting requests, lets workers reach a batch boundary, and returns.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(Running) + Send,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let lock_path = config.data_dir.join("intake.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another intake process is using {}; one process per SQLite data directory",
            config.data_dir.display()
        )
    })?;
    let sqlite = SqliteStore::open(&config.data_dir.join("intake.db"))
        .context("cannot open the database")?;
    let resumed = sqlite.reset_leases().context("cannot reset leases")?;
    if resumed > 0 {
        tracing::info!(
            imports = resumed,
            "resuming imports left unfinished by the last run"
        );
    }
    let store: SharedStore = Arc::new(sqlite);
    let blobs = BlobStore::open(&config.data_dir).context("cannot open the source store")?;

    let (secret, key) = match &config.bootstrap_key {
        Some(k) => {
            anyhow::ensure!(
                k.len() >= 16,
                "the bootstrap key must be at least 16 characters"
            );
            (
                k.clone(),
                api::key_record(k, "bootstrap owner key", Role::Owner),
            )
        }
        None => api::generate_key("bootstrap owner key", Role::Owner)
            .map_err(|e| anyhow::anyhow!("cannot generate a key: {}", e.message))?,
    };
    let created = store.bootstrap(&key).await.context("cannot bootstrap")?;

    let engine = Engine::new(store.clone(), blobs, config.engine.clone());
    // One stop signal for everything: workers stop at a batch boundary, streams end, and the
    // HTTP server stops accepting, all as soon as shutdown is asked (not after open streams
    // close by themselves).
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = engine.spawn_workers(stop_rx.clone());
    workers.push(engine.spawn_maintenance(stop_rx.clone()));
    workers.push(engine.spawn_webhook_sender(stop_rx.clone()));
    let state = AppState {
        store,
        engine,
        config: Arc::new(config.api.clone()),
        stopping: stop_rx.clone(),
    };
    on_ready(Running {
        bootstrap_key: created.map(|_| secret),
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stopped = stop_rx;
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
        .context("server error")?;
    for w in workers {
        let _ = w.await;
    }
    drop(lock);
    Ok(())
}
