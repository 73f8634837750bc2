//! The command line: `intake serve` runs the server, `intake worker` runs workers only; `intake import`, `imports`, `tables`
//! and `keys` talk to one by URL and key, over http:// or https://.

/// `println!` for command output: a closed stdout (`intake ... | head`) silences the rest
/// instead of panicking, and the exit code still tells how the command went.
macro_rules! say {
    () => {
        $crate::cli::output::say(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::say(format_args!($($arg)*))
    };
}

pub mod admin;
pub mod client;
pub mod file_name;
pub mod import;
pub mod imports;
pub mod keys;
pub mod output;
pub mod sse;
pub mod tables;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::engine::EngineConfig;
use crate::server::Config;

/// Intake: load CSV, TSV, NDJSON and JSON into typed SQL tables.
#[derive(Debug, Parser)]
#[command(name = "intake", version, about, after_help = client_help())]
pub struct Cli {
    /// How log lines are written: `text` for people, `json` (one object per line) for log
    /// collectors. Colours only when writing to a terminal.
    #[arg(long, global = true, env = "INTAKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people to read.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API and import workers.
    Serve(ServeArgs),
    /// Run import workers only, without HTTP, beside servers sharing a PostgreSQL database.
    Worker(WorkerArgs),
    /// Upload a file into a table, show its progress, and summarise the outcome.
    Import(import::ImportArgs),
    /// List, show, watch, cancel and roll back imports; read their row errors.
    Imports(imports::ImportsArgs),
    /// Create tables, or propose one from a file.
    Tables(tables::TablesArgs),
    /// Create, list and revoke API keys.
    Keys(keys::KeysArgs),
    /// Administer the database directly: a key when every owner key is lost, a workspace.
    Admin(admin::AdminArgs),
}

/// Shown under `intake --help`.
fn client_help() -> String {
    format!(
        "The client commands reach the server at --url (INTAKE_URL, default http://127.0.0.1:8080)\n\
         with the key --key (INTAKE_KEY); --json prints the API's JSON for scripts.\n\n{}",
        output::EXIT_CODES_HELP
    )
}

/// Options of `intake serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "INTAKE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// On a fresh server, use this value as the owner key instead of a random one.
    #[arg(long, env = "INTAKE_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,
    /// Largest upload accepted, in bytes.
    #[arg(long, env = "INTAKE_MAX_UPLOAD_BYTES", default_value_t = 10 << 30)]
    pub max_upload_bytes: u64,
    /// Largest JSON request body (inline records), in bytes.
    #[arg(long, env = "INTAKE_MAX_INLINE_BYTES", default_value_t = 64 << 20)]
    pub max_inline_bytes: u64,
    /// Seconds a client has to send a request's head (and an idle connection waits for its
    /// next request) before the connection is closed.
    #[arg(long, env = "INTAKE_HEADER_TIMEOUT_SECONDS", default_value_t = 30)]
    pub header_timeout_seconds: u64,
    /// Seconds a request body may pause between two pieces before the request fails.
    #[arg(long, env = "INTAKE_BODY_IDLE_SECONDS", default_value_t = 60)]
    pub body_idle_seconds: u64,
    /// Open connections at most (more are closed at once).
    #[arg(long, env = "INTAKE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Open connections at most from one client address.
    #[arg(long, env = "INTAKE_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// Requests a second each workspace may make through the API, as a burst refilled
    /// evenly; past it, requests answer 429 with Retry-After (0: no limit).
    #[arg(long, env = "INTAKE_RATE_LIMIT_PER_WORKSPACE", default_value_t = 0)]
    pub rate_limit_per_workspace: u32,
    /// Non-public networks URL imports may fetch from all the same, as addresses or CIDR
    /// blocks (`10.0.0.0/8,127.0.0.1`); private, loopback and link-local addresses are
    /// refused otherwise.
    #[arg(long, env = "INTAKE_URL_ALLOW", value_delimiter = ',', value_parser = crate::api::url_source::AllowedNet::parse)]
    pub url_allow: Vec<crate::api::url_source::AllowedNet>,
    /// S3 buckets URL imports may read from (`s3://bucket/key`), with the server's S3
    /// credentials, endpoint and region (the AWS_* variables); other buckets are refused, and
    /// the place the server keeps its own sources always is.
    #[arg(long, env = "INTAKE_URL_BUCKETS", value_delimiter = ',')]
    pub url_buckets: Vec<String>,
    /// Seconds a URL import's download may take, from connecting to its last byte.
    #[arg(long, env = "INTAKE_URL_TIMEOUT_SECONDS", default_value_t = 600)]
    pub url_timeout_seconds: u64,
    /// The instance-admin key (at least 16 characters): it opens `/admin/workspaces`, which
    /// creates, lists and deletes workspaces. Without it that API is off.
    #[arg(long, env = "INTAKE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Options of `intake worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Options of every process that runs imports: where the data is, and how work is done.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Directory of the SQLite database (when no --database-url), uploaded sources (when no
    /// --blob-url) and staged uploads. One process per directory.
    #[arg(long, env = "INTAKE_DATA_DIR", default_value = "./intake-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL database for metadata and tables (postgres://user@host:port/db), shared by
    /// every process; by default, SQLite in the data directory. TLS as libpq reads the URL:
    /// sslmode=disable, prefer (the default), require, verify-ca or verify-full, and
    /// sslrootcert=FILE or system.
    #[arg(long, env = "INTAKE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// CA certificates (PEM) that the database server's certificate must chain to, when the
    /// URL names none with sslrootcert (with sslmode=require, verify-ca or verify-full).
    #[arg(long, env = "INTAKE_DATABASE_CA_CERT")]
    pub database_ca_cert: Option<PathBuf>,
    /// Where uploaded sources are kept: s3://bucket/prefix (endpoint, region and credentials
    /// from the AWS_* variables) or file:///shared/dir; by default, the data directory.
    #[arg(long, env = "INTAKE_BLOB_URL")]
    pub blob_url: Option<String>,
    /// Import workers in this process (`intake serve --workers 0` answers the API only,
    /// beside `intake worker` processes sharing its PostgreSQL database).
    #[arg(long, env = "INTAKE_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Imports one workspace may run at once, across all processes (so one tenant cannot
    /// take every worker).
    #[arg(long, env = "INTAKE_WORKSPACE_CONCURRENCY", default_value_t = 2)]
    pub workspace_concurrency: u32,
    /// Row errors stored per import, each downloadable with its original row (all are
    /// counted; an import with more says so in `errors_truncated`).
    #[arg(long, env = "INTAKE_MAX_STORED_ERRORS", default_value_t = 1_000_000)]
    pub max_stored_errors: u64,
    /// Days a finished import keeps its undo journal and row errors (and can be rolled back).
    #[arg(long, env = "INTAKE_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u64,
    /// Largest field of a CSV/TSV source, in bytes.
    #[arg(long, env = "INTAKE_MAX_FIELD_BYTES", default_value_t = 1 << 20)]
    pub max_field_bytes: usize,
    /// Largest record (CSV record, NDJSON line, JSON element), in bytes.
    #[arg(long, env = "INTAKE_MAX_RECORD_BYTES", default_value_t = 8 << 20)]
    pub max_record_bytes: usize,
    /// Seconds a process holds an import without renewing it; after that another process
    /// resumes it (how soon a killed process's imports go on elsewhere).
    #[arg(long, env = "INTAKE_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,
}

impl ServeArgs {
    /// The server configuration these options describe.
    pub fn config(&self) -> Config {
        let mut c = self.node.config();
        c.bootstrap_key = self.bootstrap_key.clone();
        c.api.max_upload_bytes = self.max_upload_bytes;
        c.api.max_inline_bytes = self.max_inline_bytes;
        c.api.rate_limit_per_workspace = self.rate_limit_per_workspace;
        c.api.url_policy = std::sync::Arc::new(crate::api::url_source::UrlPolicy {
            allow: self.url_allow.clone(),
            buckets: self.url_buckets.clone(),
            sources_url: None,
            timeout: std::time::Duration::from_secs(self.url_timeout_seconds.max(1)),
        });
        c.api.admin_key = self.admin_key.clone();
        c.api.limits = crate::api::serve::Limits {
            header_read_timeout: std::time::Duration::from_secs(self.header_timeout_seconds.max(1)),
            body_idle_timeout: std::time::Duration::from_secs(self.body_idle_seconds.max(1)),
            max_connections: self.max_connections.max(1),
            max_connections_per_ip: self.max_connections_per_ip.max(1),
        };
        c
    }
}

impl NodeArgs {
    /// The configuration of a process with these options.
    pub fn config(&self) -> Config {
        let mut c = Config::new(self.data_dir.clone());
        c.database_url = self.database_url.clone();
        c.database_ca_cert = self.database_ca_cert.clone();
        c.blob_url = self.blob_url.clone();
        c.engine = EngineConfig {
            workers: self.workers,
            per_workspace: self.workspace_concurrency.max(1),
            max_stored_errors: self.max_stored_errors,
            max_field_bytes: self.max_field_bytes,
            max_record_bytes: self.max_record_bytes,
            retention: std::time::Duration::from_secs(self.retention_days.saturating_mul(86_400)),
            lease: std::time::Duration::from_secs(self.lease_seconds.max(1)),
            pauses: crate::engine::pause::PausePoints::from_env(),
            ..EngineConfig::default()
        };
        c
    }
}
