//! Starting and stopping a process: open the store and the sources, bootstrap the first key,
//! serve HTTP and run the workers (or only the workers) until shutdown.

use std::fs::File;
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
    /// Where the SQLite database, uploaded sources and staged uploads live.
    pub data_dir: PathBuf,
    /// A PostgreSQL database instead of SQLite in the data directory.
    pub database_url: Option<String>,
    /// CA certificates for the database's TLS when its URL names none (`sslrootcert`).
    pub database_ca_cert: Option<PathBuf>,
    /// An object store for sources instead of the data directory.
    pub blob_url: Option<String>,
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
            database_url: None,
            database_ca_cert: None,
            blob_url: None,
            bootstrap_key: None,
            engine: EngineConfig::default(),
            api: ApiConfig {
                max_upload_bytes: 10 << 30,
                max_inline_bytes: 64 << 20,
                limits: api::serve::Limits::default(),
                rate_limit_per_workspace: 0,
                url_policy: Default::default(),
                admin_key: None,
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
    if let Some(k) = &config.api.admin_key {
        anyhow::ensure!(
            k.len() >= 16,
            "the instance-admin key must be at least 16 characters"
        );
    }
    let Node {
        store,
        blobs,
        lock,
        node,
    } = open_node(&config).await?;
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

    let mut engine_config = config.engine.clone();
    engine_config.node = node;
    let engine = Engine::new(store.clone(), blobs, engine_config);
    // One stop signal for everything: workers stop at a batch boundary, streams end, and the
    // HTTP server stops accepting, all as soon as shutdown is asked (not after open streams
    // close by themselves).
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = engine.spawn_workers(stop_rx.clone());
    workers.push(engine.spawn_maintenance(stop_rx.clone()));
    workers.push(engine.spawn_webhook_sender(stop_rx.clone()));
    let mut api_config = config.api.clone();
    // URL imports may never read the server's own sources, whatever buckets are allowed.
    let mut url_policy = (*api_config.url_policy).clone();
    url_policy.sources_url = config.blob_url.clone();
    api_config.url_policy = Arc::new(url_policy);
    let state = AppState {
        store,
        engine,
        config: Arc::new(api_config),
        stopping: stop_rx.clone(),
        rates: crate::api::workspace_rates(config.api.rate_limit_per_workspace),
    };
    on_ready(Running {
        bootstrap_key: created.map(|_| secret),
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let limits = config.api.limits.clone();
    api::serve::serve(listener, api::router(state), limits, stop_rx)
        .await
        .context("server error")?;
    for w in workers {
        let _ = w.await;
    }
    drop(lock);
    Ok(())
}

/// Runs import workers (and the maintenance and webhook senders) without HTTP until
/// `shutdown` resolves, sharing the database with other processes.
pub async fn run_workers(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce() + Send,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.database_url.is_some(),
        "intake worker shares a PostgreSQL database with the servers: set --database-url \
         (with SQLite, intake serve runs the workers)"
    );
    let Node {
        store,
        blobs,
        lock,
        node,
    } = open_node(&config).await?;
    let mut engine_config = config.engine.clone();
    engine_config.node = node;
    let engine = Engine::new(store, blobs, engine_config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = engine.spawn_workers(stop_rx.clone());
    workers.push(engine.spawn_maintenance(stop_rx.clone()));
    workers.push(engine.spawn_webhook_sender(stop_rx));
    on_ready();
    shutdown.await;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    drop(lock);
    Ok(())
}

/// What every process opens: its store, its sources, and the lock on its data directory.
struct Node {
    store: SharedStore,
    blobs: BlobStore,
    lock: File,
    /// The data directory's identity, which this process's workers' names carry.
    node: String,
}

async fn open_node(config: &Config) -> anyhow::Result<Node> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    // Staged uploads (and, with SQLite, the database) are this process's own.
    let lock_path = config.data_dir.join("intake.lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another intake process is using {}; each process needs its own data directory",
            config.data_dir.display()
        )
    })?;
    let store = open_store(config).await?;
    let node = node_id(&config.data_dir)?;
    let released = store
        .release_node_leases(&node)
        .await
        .context("cannot release the leases of the last run")?;
    if released > 0 {
        tracing::info!(
            imports = released,
            "resuming imports left unfinished by the last run"
        );
    }
    let blobs = BlobStore::open(&config.data_dir, config.blob_url.as_deref())
        .context("cannot open the source store")?;
    if config.database_url.is_some() && config.blob_url.is_none() {
        tracing::warn!(
            "sources are kept in {}: processes on other machines cannot resume this one's \
             imports; set --blob-url to share them",
            blobs.describe()
        );
    }
    Ok(Node {
        store,
        blobs,
        lock,
        node,
    })
}

/// The identity of a data directory, made at its first use.
fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::now_v7().simple().to_string();
            std::fs::write(&path, &id)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

/// A database URL as errors may show it: host, port, user and database, not the password.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(an unreadable URL)".to_owned(),
    }
}

/// Opens the database a configuration names, as a process beside a running server may (the
/// administration commands): it runs pending migrations and touches nothing else.
pub async fn open_store_beside(config: &Config) -> anyhow::Result<SharedStore> {
    match &config.database_url {
        Some(_) => open_store(config).await,
        None => {
            let path = config.data_dir.join("intake.db");
            let sqlite = SqliteStore::open(&path)
                .with_context(|| format!("cannot open the database {}", path.display()))?;
            Ok(Arc::new(sqlite))
        }
    }
}

/// Opens the database a configuration names (SQLite in the data directory by default),
/// running its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<SharedStore> {
    match &config.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let url = url.clone();
            let shown = without_password(&url);
            let ca_file = config.database_ca_cert.clone();
            let store = tokio::task::spawn_blocking(move || {
                crate::store::postgres::PgStore::connect(&url, ca_file.as_deref())
            })
            .await
            .with_context(|| format!("cannot open the database {shown}"))?
            .with_context(|| format!("cannot open the database {shown}"))?;
            Ok(Arc::new(store))
        }
        Some(_) => anyhow::bail!("--database-url must be a postgres:// URL"),
        None => {
            let path = config.data_dir.join("intake.db");
            let sqlite = SqliteStore::open(&path)
                .with_context(|| format!("cannot open the database {}", path.display()))?;
            // The data directory's lock is held: no other process can be running these
            // imports, so their leases are left over from a process that was killed.
            match sqlite.reset_leases() {
                Ok(0) => {}
                Ok(resumed) => tracing::info!(
                    imports = resumed,
                    "resuming imports left unfinished by the last run"
                ),
                // A full disk must not keep the server from starting (a supervisor would
                // restart it again and again): it serves reads, and the imports resume once
                // their lease runs out, when space may have returned.
                Err(e @ crate::store::StoreError::StorageFull(_)) => tracing::warn!(
                    error = %e,
                    "cannot release the leases of the last run; its unfinished imports resume \
                     once their lease runs out"
                ),
                Err(e) => return Err(e).context("cannot reset leases"),
            }
            Ok(Arc::new(sqlite))
        }
    }
}
