//! `intake keys create|list|revoke`: the workspace's API keys (admin).

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::client::{ClientArgs, ClientError};
use super::output::{self, Exit, Out};

/// Options of `intake keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints its secret on stdout, once.
    Create(CreateArgs),
    /// List the keys (never their secrets).
    List(ListArgs),
    /// Revoke a key.
    Revoke(RevokeArgs),
}

/// Key roles.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    /// Read tables, rows, imports, errors, events.
    Viewer,
    /// Also create and cancel imports.
    Member,
    /// Also create and delete tables, manage keys below admin.
    Admin,
    /// Everything.
    Owner,
}

/// Options of `intake keys create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name saying who or what uses the key.
    #[arg(long)]
    pub name: String,
    /// What the key may do.
    #[arg(long, value_enum)]
    pub role: Role,
    /// When the key stops working (RFC 3339, `2030-01-31T00:00:00Z`); never, without it.
    #[arg(long)]
    pub expires_at: Option<String>,
    /// The only tables the key may import into, create and delete (comma-separated); any,
    /// without it.
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<String>>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `intake keys list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `intake keys revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id (from `intake keys list`).
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs an `intake keys` subcommand.
pub async fn run(args: KeysArgs) -> Exit {
    output::finish(match &args.command {
        KeysCommand::Create(a) => create(a).await,
        KeysCommand::List(a) => list(a).await,
        KeysCommand::Revoke(a) => revoke(a).await,
    })
}

async fn create(args: &CreateArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let role = args
        .role
        .to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default();
    let key = client
        .post(
            &["v1", "keys"],
            Some(&{
                let mut body = json!({"name": args.name, "role": role});
                if let Some(at) = &args.expires_at {
                    body["expires_at"] = json!(at);
                }
                if let Some(tables) = &args.tables {
                    body["tables"] = json!(tables);
                }
                body
            }),
        )
        .await?;
    if out.json {
        out.print_json(&key);
        return Ok(Exit::Ok);
    }
    let secret = key["key"]
        .as_str()
        .ok_or_else(|| ClientError::Protocol("the new key has no secret".into()))?;
    // The secret alone on stdout, so that `KEY=$(intake keys create ...)` captures it.
    eprintln!(
        "Created {} key {:?} (id {}). Its secret is shown only this once:",
        role,
        args.name,
        output::text(&key["id"])
    );
    say!("{secret}");
    Ok(Exit::Ok)
}

async fn list(args: &ListArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let page = client.get(&["v1", "keys"], &[]).await?;
    if out.json {
        out.print_json(&page);
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = page["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|k| {
            vec![
                output::text(&k["id"]),
                output::text(&k["name"]),
                output::text(&k["role"]),
                format!("{}…", output::text(&k["prefix"])),
                output::timestamp(&k["created_at"]),
                output::timestamp(&k["revoked_at"]),
            ]
        })
        .collect();
    output::print_table(
        &[
            "id",
            "name",
            "role",
            "prefix",
            "created (UTC)",
            "revoked (UTC)",
        ],
        &rows,
    );
    Ok(Exit::Ok)
}

async fn revoke(args: &RevokeArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let key = client.delete(&["v1", "keys", &args.id]).await?;
    if out.json {
        out.print_json(&key);
    } else {
        say!(
            "Revoked key {:?} ({}).",
            output::text(&key["name"]),
            output::text(&key["id"])
        );
    }
    Ok(Exit::Ok)
}
