//! The `intake` binary: parses the command line and runs it.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use intake::cli::{
    Cli, Command, LogFormat, ServeArgs, WorkerArgs, admin, import, imports, keys, tables,
};
use mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

// Batches are built on the parsing thread and freed on the writing thread; glibc's allocator
// spends a sixth of the writer's time consolidating such frees, mimalloc does not.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    // With transparent huge pages on (`always`, as many distributions ship), the allocator's
    // arenas fault in 2 MiB at a time: the server's resident memory grows by a third with no
    // gain. Its memory is many small, short-lived allocations: regular pages suit it.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let cli = Cli::parse();
    // The server logs its work; client commands speak for themselves and log only problems.
    let default_filter = match cli.command {
        Command::Serve(_) | Command::Worker(_) => "info,tower_http=warn",
        // A refused certificate is the command's error, said once in its own words; the
        // verifier's log line would say it twice.
        _ => "warn,rustls_platform_verifier=off",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colour codes only for a terminal: in a file or a collector they are noise.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let exit = match cli.command {
        Command::Serve(args) => return serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Worker(args) => return work(args).await.map(|()| ExitCode::SUCCESS),
        Command::Admin(args) => return admin::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Import(args) => import::run(args).await,
        Command::Imports(args) => imports::run(args).await,
        Command::Tables(args) => tables::run(args).await,
        Command::Keys(args) => keys::run(args).await,
    };
    Ok(exit.into())
}

/// `intake serve`: binds, then runs the server until a shutdown signal.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.node.workers == 0 && args.node.database_url.is_none() {
        anyhow::bail!(
            "--workers 0 needs --database-url: with SQLite, no other process can run this server's imports"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    intake::launch(args.config(), listener, shutdown_signal(), |running| {
        if let Some(key) = running.bootstrap_key {
            println!(
                "Created the default workspace and its owner key (shown only this once):\n\n    {key}\n"
            );
        }
        println!("intake is listening on http://{addr}");
    })
    .await
}

/// `intake worker`: runs import workers until a shutdown signal.
async fn work(args: WorkerArgs) -> anyhow::Result<()> {
    if args.node.workers == 0 {
        anyhow::bail!("intake worker needs --workers 1 or more");
    }
    intake::run_workers(args.node.config(), shutdown_signal(), || {
        println!("intake worker is running");
    })
    .await
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
