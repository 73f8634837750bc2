//! `intake tables create|infer|list|show`: typed tables, and schemas proposed from a file.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use super::client::{ClientArgs, ClientError};
use super::file_name::{FileFormat, table_name_from};
use super::output::{self, Exit, Out, count_of};

/// Options of `intake tables`.
#[derive(Debug, Args)]
pub struct TablesArgs {
    #[command(subcommand)]
    pub command: TablesCommand,
}

/// The `tables` subcommands.
#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Create a table from a JSON schema (as `tables infer` prints it).
    Create(CreateArgs),
    /// Propose a table for a file from its first MiB; prints JSON ready for `tables create`.
    Infer(InferArgs),
    /// List the workspace's tables.
    List(ListArgs),
    /// Show a table's columns and row count.
    Show(ShowArgs),
}

/// Options of `intake tables create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The schema: a JSON file, or `-` for stdin.
    #[arg(long)]
    pub schema: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `intake tables infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// The file to look at (only its first MiB is sent; a workbook or zip is sent whole, up
    /// to 16 MiB, since it cannot be cut).
    pub file: PathBuf,
    /// The sheet of a workbook: its name, or its position from 1 (default: the first).
    #[arg(long)]
    pub sheet: Option<String>,
    /// The table's name (default: from the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// The file's format (default: from its extension, else sniffed by the server).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// Cells that mean NULL, as a comma list (`NA,,null`): they do not make a number column
    /// text.
    #[arg(long)]
    pub null_values: Option<String>,
    /// Propose enums for short closed sets of values seen in the sample.
    #[arg(long)]
    pub enums: bool,
    /// Mark columns with no empty cell in the sample required.
    #[arg(long)]
    pub required: bool,
    /// Mark columns without repeats in the sample unique, and propose a key.
    #[arg(long)]
    pub unique: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `intake tables list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `intake tables show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The table's name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs an `intake tables` subcommand.
pub async fn run(args: TablesArgs) -> Exit {
    output::finish(match &args.command {
        TablesCommand::Create(a) => create(a).await,
        TablesCommand::Infer(a) => infer(a).await,
        TablesCommand::List(a) => list(a).await,
        TablesCommand::Show(a) => show(a).await,
    })
}

async fn create(args: &CreateArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let text = if args.schema.as_os_str() == "-" {
        // Tokio's stdin needs a feature this crate leaves off; a blocking read will do.
        tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin()))
            .await
            .map_err(|e| ClientError::io("cannot read the schema from stdin", e.into()))?
            .map_err(|e| ClientError::io("cannot read the schema from stdin", e))?
    } else {
        tokio::fs::read_to_string(&args.schema)
            .await
            .map_err(|e| ClientError::io(format!("cannot read {}", args.schema.display()), e))?
    };
    let schema: Value = serde_json::from_str(&text)
        .map_err(|e| ClientError::Usage(format!("the schema is not valid JSON: {e}")))?;
    let table = client.post(&["v1", "tables"], Some(&schema)).await?;
    if out.json {
        out.print_json(&table);
    } else {
        say!(
            "Created table {} ({} columns; in the database: {})",
            out.bold(&output::text(&table["name"])),
            table["columns"].as_array().map_or(0, Vec::len),
            output::text(&table["database_table"])
        );
    }
    Ok(Exit::Ok)
}

/// The most of a file sent for inference.
const SAMPLE_BYTES: usize = 1 << 20;

async fn infer(args: &InferArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let path = &args.file;
    let what = || format!("cannot read {}", path.display());
    let (mut sample, whole) = read_sample(path.clone())
        .await
        .map_err(|e| ClientError::io(what(), e))?;
    let format = args.format.or_else(|| FileFormat::of_path(path));
    if whole && sample.len() > WHOLE_SAMPLE_BYTES {
        return Err(ClientError::Usage(format!(
            "{} is a workbook or zip archive, which is read whole for a proposal, and it is \
             larger than {WHOLE_SAMPLE_BYTES} bytes: save a part of it as CSV, or let `intake \
             import` create the table from the whole file",
            path.display()
        )));
    }
    if !whole && sample.len() > SAMPLE_BYTES {
        sample.truncate(SAMPLE_BYTES);
        // End on a line break so that the last sampled row is whole (a cut value would
        // otherwise skew its column's type). A single JSON array has no rows by line.
        if !matches!(format, Some(FileFormat::Json))
            && let Some(end) = sample.iter().rposition(|&b| b == b'\n')
        {
            sample.truncate(end + 1);
        }
    }
    let name = args.name.clone().or_else(|| table_name_from(path));
    let mut query = Vec::new();
    if let Some(n) = &name {
        query.push(("name", n.as_str()));
    }
    if let Some(f) = format {
        query.push(("format", f.as_str()));
    }
    if let Some(n) = &args.null_values {
        query.push(("null_values", n.as_str()));
    }
    if let Some(sheet) = &args.sheet {
        query.push(("sheet", sheet.as_str()));
    }
    for (asked, name) in [
        (args.enums, "enums"),
        (args.required, "required"),
        (args.unique, "unique"),
    ] {
        if asked {
            query.push((name, "true"));
        }
    }
    let request = client
        .request(Method::POST, client.url(&["v1", "schema", "infer"], &query))
        .header(CONTENT_TYPE, FileFormat::content_type(format))
        .body(sample);
    let proposal = client.json(request).await?;
    if out.json {
        out.print_json(&proposal);
        return Ok(Exit::Ok);
    }
    out.print_json(&proposal["table"]);
    // Advice goes to stderr so that stdout stays the schema, ready to save to a file.
    eprintln!(
        "Proposed from {} sampled rows ({}). Review it, save it, then: intake tables create --schema FILE \
         (or let `intake import FILE` infer the table from the whole file)",
        count_of(&proposal["sampled_rows"]),
        output::text(&proposal["format"])
    );
    Ok(Exit::Ok)
}

/// The most of a workbook or zip sent for inference: the server's sample limit.
const WHOLE_SAMPLE_BYTES: usize = 16 << 20;

/// The first [`SAMPLE_BYTES`] (and one more, to tell a longer file) of a file's data:
/// inflated when the file is gzip or zstd compressed, since the server reads a sample whole.
/// A workbook or zip archive cannot be cut: it is read whole (up to one byte past
/// [`WHOLE_SAMPLE_BYTES`]), and `true` says so.
async fn read_sample(path: PathBuf) -> std::io::Result<(Vec<u8>, bool)> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        let mut file = std::fs::File::open(&path)?;
        let mut magic = [0u8; 8];
        let read = file.read(&mut magic)?;
        let gzip = read >= 2 && magic[..2] == [0x1f, 0x8b];
        let zstd = read >= 4 && magic[..4] == [0x28, 0xb5, 0x2f, 0xfd];
        let whole = (read >= 4 && magic[..4] == *b"PK\x03\x04")
            || (read == 8 && magic == [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
        file.rewind()?;
        let mut sample = Vec::with_capacity(64 << 10);
        let limit = SAMPLE_BYTES as u64 + 1;
        if whole {
            file.take(WHOLE_SAMPLE_BYTES as u64 + 1)
                .read_to_end(&mut sample)?;
        } else if gzip {
            let inflated = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
            inflated.take(limit).read_to_end(&mut sample)?;
        } else if zstd {
            let inflated = zstd::stream::read::Decoder::new(file)?;
            inflated.take(limit).read_to_end(&mut sample)?;
        } else {
            file.take(limit).read_to_end(&mut sample)?;
        }
        Ok((sample, whole))
    })
    .await
    .map_err(std::io::Error::other)?
}

async fn list(args: &ListArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let page = client.get(&["v1", "tables"], &[]).await?;
    if out.json {
        out.print_json(&page);
        return Ok(Exit::Ok);
    }
    let tables = page["data"].as_array().cloned().unwrap_or_default();
    if tables.is_empty() {
        say!("No tables. Propose one from a file: intake tables infer FILE");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            vec![
                output::text(&t["name"]),
                t["columns"].as_array().map_or(0, Vec::len).to_string(),
                key_of(t),
                output::text(&t["database_table"]),
                output::timestamp(&t["created_at"]),
            ]
        })
        .collect();
    output::print_table(
        &[
            "name",
            "columns",
            "primary key",
            "database table",
            "created (UTC)",
        ],
        &rows,
    );
    Ok(Exit::Ok)
}

fn key_of(table: &Value) -> String {
    let key: Vec<&str> = table["primary_key"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if key.is_empty() {
        "-".to_owned()
    } else {
        key.join(",")
    }
}

async fn show(args: &ShowArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    let table = client.get(&["v1", "tables", &args.name], &[]).await?;
    if out.json {
        out.print_json(&table);
        return Ok(Exit::Ok);
    }
    say!(
        "{}  {} rows, primary key {}, in the database: {}",
        out.bold(&output::text(&table["name"])),
        count_of(&table["row_count"]),
        key_of(&table),
        output::text(&table["database_table"])
    );
    let columns = table["columns"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            let flag = |name: &str| c[name].as_bool() == Some(true);
            let mut rules = Vec::new();
            for field in [
                "min",
                "max",
                "min_length",
                "max_length",
                "pattern",
                "values",
                "default",
            ] {
                if !c[field].is_null() {
                    rules.push(format!("{field} {}", c[field]));
                }
            }
            vec![
                output::text(&c["name"]),
                output::text(&c["type"]),
                if flag("required") { "yes" } else { "" }.to_owned(),
                if flag("unique") { "yes" } else { "" }.to_owned(),
                rules.join(", "),
            ]
        })
        .collect();
    output::print_table(&["column", "type", "required", "unique", "rules"], &rows);
    Ok(Exit::Ok)
}
