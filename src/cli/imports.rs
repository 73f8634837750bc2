//! `intake imports list|show|errors|cancel|rollback|watch`: reading and steering imports.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, ClientError, transport};
use super::output::{self, EXIT_CODES_HELP, Exit, Out, count_of};
use super::watch::{self, Followed};

/// Options of `intake imports`.
#[derive(Debug, Args)]
pub struct ImportsArgs {
    #[command(subcommand)]
    pub command: ImportsCommand,
}

/// The `imports` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImportsCommand {
    /// List imports, newest first.
    List(ListArgs),
    /// Show one import, its row errors grouped by kind, and the first ones.
    Show(IdArgs),
    /// Print an import's row errors (or, with --csv, the rejected rows as CSV).
    Errors(ErrorsArgs),
    /// Cancel a queued or running import (what was written stays).
    Cancel(IdArgs),
    /// Undo a finished import: delete the rows it created, restore those it changed.
    Rollback(RollbackArgs),
    /// Follow an import with a progress bar until it ends, then print its summary.
    #[command(after_help = EXIT_CODES_HELP)]
    Watch(IdArgs),
}

/// Options of `intake imports list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only imports in these statuses (a comma list: complete,partially_complete...).
    #[arg(long)]
    pub status: Option<String>,
    /// Only imports loading this table.
    #[arg(long)]
    pub table: Option<String>,
    /// How many (1 to 1000).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// An import id and the connection options.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The import's id.
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `intake imports errors`.
#[derive(Debug, Args)]
pub struct ErrorsArgs {
    /// The import's id.
    pub id: String,
    /// Print the rejected rows as CSV, with `line` and `error` columns added.
    #[arg(long)]
    pub csv: bool,
    /// At most this many errors (default: every stored one).
    #[arg(long)]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `intake imports rollback`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct RollbackArgs {
    /// The import's id.
    pub id: String,
    /// Follow the rollback until it ends.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs an `intake imports` subcommand.
pub async fn run(args: ImportsArgs) -> Exit {
    output::finish(match &args.command {
        ImportsCommand::List(a) => list(a).await,
        ImportsCommand::Show(a) => show(a).await,
        ImportsCommand::Errors(a) => errors(a).await,
        ImportsCommand::Cancel(a) => cancel(a).await,
        ImportsCommand::Rollback(a) => rollback(a).await,
        ImportsCommand::Watch(a) => watch(a).await,
    })
}

async fn list(args: &ListArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let limit = args.limit.to_string();
    let mut query = vec![("limit", limit.as_str())];
    if let Some(s) = &args.status {
        query.push(("status", s));
    }
    if let Some(t) = &args.table {
        query.push(("table", t));
    }
    let page = client.get(&["v1", "imports"], &query).await?;
    if out.json {
        out.print_json(&page);
        return Ok(Exit::Ok);
    }
    let imports = page["data"].as_array().cloned().unwrap_or_default();
    if imports.is_empty() {
        say!("No imports.");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = imports
        .iter()
        .map(|i| {
            vec![
                count_of(&i["number"]),
                output::text(&i["id"]),
                output::text(&i["status"]),
                output::tables_of(i),
                output::timestamp(&i["created_at"]),
                count_of(&i["counts"]["processed"]),
                count_of(&i["counts"]["invalid"]),
            ]
        })
        .collect();
    output::print_table(
        &[
            "#",
            "id",
            "status",
            "table",
            "created (UTC)",
            "processed",
            "invalid",
        ],
        &rows,
    );
    if page["has_more"].as_bool() == Some(true) {
        say!("(more: raise --limit, or filter with --status / --table)");
    }
    Ok(Exit::Ok)
}

async fn show(args: &IdArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let import = client.get(&["v1", "imports", &args.id], &[]).await?;
    if out.json {
        out.print_json(&import);
    } else {
        watch::summary(&client, &import, None, out).await?;
    }
    // Showing worked, whatever the import's status.
    Ok(Exit::Ok)
}

async fn errors(args: &ErrorsArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    if args.csv {
        download_csv(&client, &args.id).await?;
        return Ok(Exit::Ok);
    }
    let mut all: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let wanted = args.limit.unwrap_or(u64::MAX);
    let has_more = loop {
        let left = wanted
            .saturating_sub(all.len() as u64)
            .min(1000)
            .to_string();
        let mut query = vec![("limit", left.as_str())];
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let page = client
            .get(&["v1", "imports", &args.id, "errors"], &query)
            .await?;
        all.extend(page["data"].as_array().cloned().unwrap_or_default());
        let more = page["has_more"].as_bool() == Some(true);
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if !more || cursor.is_none() || all.len() as u64 >= wanted {
            break more;
        }
    };
    // As with the CSV: stdout holds the errors, stderr says when they are not all of them.
    let import = client.get(&["v1", "imports", &args.id], &[]).await?;
    if import["errors_truncated"].as_bool() == Some(true) {
        eprintln!(
            "Warning: only {} of {} rejected rows are stored: the others were counted but \
             not stored (the server's --max-stored-errors).",
            count_of(&import["errors_stored"]),
            count_of(&import["counts"]["invalid"])
        );
    }
    if out.json {
        // The API's error objects, every page in one list.
        out.print_json(&json!({"data": all, "has_more": has_more}));
        return Ok(Exit::Ok);
    }
    if all.is_empty() {
        say!("No stored row errors.");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|e| {
            vec![
                output::text(&e["line"]),
                output::text(&e["table"]),
                output::text(&e["column"]),
                output::text(&e["code"]),
                output::text(&e["message"]),
            ]
        })
        .collect();
    output::print_table(&["line", "table", "column", "code", "message"], &rows);
    Ok(Exit::Ok)
}

/// Copies the rejected rows' CSV to stdout as it arrives (it can be large).
async fn download_csv(client: &Client, id: &str) -> Result<(), ClientError> {
    let url = client.url(&["v1", "imports", id, "errors"], &[("format", "csv")]);
    let mut response = client
        .send(client.request(Method::GET, url.clone()))
        .await?;
    // The file goes to stdout; the warning that it is not every rejected row, to stderr.
    if let Some(v) = response.headers().get("intake-errors-truncated") {
        let (stored, invalid) = v
            .to_str()
            .ok()
            .and_then(|v| v.split_once(" of "))
            .unwrap_or(("some", "all"));
        eprintln!(
            "Warning: this CSV holds {stored} of {invalid} rejected rows: the others were \
             counted but not stored (the server's --max-stored-errors)."
        );
    }
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(&url, e))? {
        if !output::write_stdout(&chunk) {
            break; // the reader has gone (`| head`): the rest is not wanted
        }
    }
    Ok(())
}

async fn cancel(args: &IdArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let import = client
        .post(&["v1", "imports", &args.id, "cancel"], None)
        .await?;
    if out.json {
        out.print_json(&import);
    } else {
        let status = import["status"].as_str().unwrap_or("");
        say!(
            "Import #{} {}{}",
            count_of(&import["number"]),
            out.status(status),
            if status == "cancelled" {
                ""
            } else {
                " (it stops at its next batch)"
            }
        );
    }
    Ok(Exit::Ok)
}

async fn rollback(args: &RollbackArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let import = client
        .post(&["v1", "imports", &args.id, "rollback"], None)
        .await?;
    if !args.wait {
        if out.json {
            out.print_json(&import);
        } else {
            say!(
                "Import #{} {}",
                count_of(&import["number"]),
                out.status(import["status"].as_str().unwrap_or(""))
            );
            if import["status"] != "rolled_back" {
                say!("  watch it:  intake imports watch {}", args.id);
            }
        }
        return Ok(Exit::Ok);
    }
    // The import's own status says how it loaded; here only the rollback's outcome counts.
    Ok(match follow_and_summarise(&client, &import, out).await? {
        None => Exit::Interrupted,
        Some(done) if done["status"] == "rolled_back" => Exit::Ok,
        Some(_) => Exit::Failed,
    })
}

async fn watch(args: &IdArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let import = client.get(&["v1", "imports", &args.id], &[]).await?;
    Ok(match follow_and_summarise(&client, &import, out).await? {
        None => Exit::Interrupted,
        Some(done) => Exit::of_status(done["status"].as_str().unwrap_or("")),
    })
}

/// Follows an import to its end and prints it (JSON, or the summary); `None` if the user
/// stopped watching.
async fn follow_and_summarise(
    client: &Client,
    import: &Value,
    out: Out,
) -> Result<Option<Value>, ClientError> {
    match watch::follow(client, import, out).await? {
        Followed::Interrupted => Ok(None),
        Followed::Ended(done) => {
            if out.json {
                out.print_json(&done);
            } else {
                watch::summary(client, &done, None, out).await?;
            }
            Ok(Some(done))
        }
    }
}
