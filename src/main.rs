//! The `intake` binary: parses the command line and runs it.
#![forbid(unsafe_code)]

use clap::Parser;
use intake::cli::{Cli, Command};
use mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

// Batches are built on the parsing thread and freed on the writing thread; glibc's allocator
// spends a sixth of the writer's time consolidating such frees, mimalloc does not.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let listener = tokio::net::TcpListener::bind(args.bind).await?;
            let addr = listener.local_addr()?;
            intake::launch(args.config(), listener, shutdown_signal(), |running| {
                if let Some(key) = running.bootstrap_key {
                    println!("Created the default workspace and its owner key (shown only this once):\n\n    {key}\n");
                }
                println!("intake is listening on http://{addr}");
            })
            .await
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
