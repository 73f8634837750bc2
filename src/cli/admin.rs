//! `intake admin`: what no API key can do, done on the database itself. Making a key when
//! every owner key is lost, and making another workspace (a tenant) with its first owner
//! key. It runs where the server's database is reachable; the server may be running.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::model::Role;
use crate::server::{Config, open_store_beside};

/// Options of `intake admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
    /// Directory of the SQLite database (when no --database-url).
    #[arg(
        long,
        global = true,
        env = "INTAKE_DATA_DIR",
        default_value = "./intake-data"
    )]
    pub data_dir: PathBuf,
    /// The server's PostgreSQL database, when it uses one.
    #[arg(
        long,
        global = true,
        env = "INTAKE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Where the server keeps sources, when not in the data directory (`s3://…`).
    #[arg(long, global = true, env = "INTAKE_BLOB_URL")]
    pub blob_url: Option<String>,
    /// CA certificates (PEM) that the database server's certificate must chain to, when the
    /// URL names none with `sslrootcert`.
    #[arg(long, global = true, env = "INTAKE_DATABASE_CA_CERT")]
    pub database_ca_cert: Option<PathBuf>,
}

/// The administration commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make a new key in a workspace (by default an owner key in the default workspace: the
    /// way back in when every owner key is lost). The key is printed once.
    CreateKey {
        /// The workspace's slug.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// The key's role: viewer, member, admin or owner.
        #[arg(long, default_value = "owner")]
        role: String,
        /// A name to tell the key by.
        #[arg(long, default_value = "recovery")]
        name: String,
    },
    /// Create a workspace (a tenant, with tables and imports of its own) and its first owner
    /// key, printed once.
    CreateWorkspace {
        /// Its slug: lowercase letters, digits and `_`, as in its tables' database names.
        slug: String,
        /// Its display name (the slug by default).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the workspaces.
    ListWorkspaces,
    /// Delete a workspace with its tables and their rows, imports, keys and webhooks
    /// (refused while one of its imports runs).
    DeleteWorkspace {
        /// Its slug.
        slug: String,
    },
}

/// Runs an administration command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let mut config = Config::new(args.data_dir.clone());
    config.database_url = args.database_url.clone();
    config.blob_url = args.blob_url.clone();
    config.database_ca_cert = args.database_ca_cert.clone();
    let store = open_store_beside(&config).await?;
    match args.command {
        AdminCommand::CreateKey {
            workspace,
            role,
            name,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!("unknown role {role:?}: viewer, member, admin or owner")
            })?;
            let ws = store
                .find_workspace(&workspace)
                .await?
                .with_context(|| format!("there is no workspace {workspace:?}"))?;
            let (key, record) = crate::api::generate_key(&name, role)
                .map_err(|e| anyhow::anyhow!("cannot make a key: {}", e.message))?;
            store.create_key(ws.id, &record).await?;
            println!(
                "Created the {} key {name:?} in workspace {:?} (shown only this once):\n\n    {key}\n",
                role.as_str(),
                ws.slug
            );
        }
        AdminCommand::CreateWorkspace { slug, name } => {
            let name = name.unwrap_or_else(|| slug.clone());
            let ws = store.create_workspace(&slug, &name).await?;
            let (key, record) = crate::api::generate_key("owner", Role::Owner)
                .map_err(|e| anyhow::anyhow!("cannot make a key: {}", e.message))?;
            store.create_key(ws.id, &record).await?;
            println!(
                "Created workspace {:?} and its owner key (shown only this once):\n\n    {key}\n",
                ws.slug
            );
        }
        AdminCommand::ListWorkspaces => {
            for ws in store.list_workspaces().await? {
                println!(
                    "{}\t{}\t{}",
                    ws.slug,
                    ws.name,
                    ws.created_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                );
            }
        }
        AdminCommand::DeleteWorkspace { slug } => {
            let ws = store
                .find_workspace(&slug)
                .await?
                .filter(|ws| ws.slug == slug)
                .with_context(|| format!("there is no workspace {slug:?}"))?;
            let sources = store.delete_workspace(ws.id).await?;
            let blobs = crate::blob::BlobStore::open(&config.data_dir, config.blob_url.as_deref())
                .context("cannot open the source store")?;
            for key in &sources {
                if let Err(e) = blobs.delete(key).await {
                    eprintln!("could not delete the source {key}: {e}");
                }
            }
            println!("Deleted workspace {slug:?}.");
        }
    }
    Ok(())
}
