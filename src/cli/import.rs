//! `intake import FILE --table T`: streams a file to the server as the raw request body with a
//! bar of bytes sent, then follows the import to its end and prints a summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Method};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::client::{ClientArgs, ClientError};
use super::file_name::{FileFormat, table_name_from};
use super::output::{self, EXIT_CODES_HELP, Exit, Out};
use super::watch::{self, Followed, UploadStats};

/// Options of `intake import`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ImportArgs {
    /// The file to load: CSV, TSV, NDJSON, JSON or a workbook (xlsx, xls, ods), plain or
    /// gzip, zstd or zip compressed.
    #[arg(required_unless_present = "source_url")]
    pub file: Option<PathBuf>,
    /// Load the file at this http(s) or s3://bucket/key URL instead: the server downloads it
    /// (it must be able to reach it; private addresses only when the server allows them with
    /// --url-allow, buckets only those it allows with --url-buckets).
    #[arg(long = "from-url", id = "source_url", conflicts_with = "file")]
    pub source_url: Option<String>,
    /// The table to load it into (default: named after the file). A table that does not
    /// exist is created from the whole file: its columns' types are those every value fits.
    #[arg(long, short)]
    pub table: Option<String>,
    /// Refuse to create a missing table.
    #[arg(long)]
    pub no_create: bool,
    /// A created table may have enum columns (short closed sets of values).
    #[arg(long)]
    pub infer_enums: bool,
    /// Fields the table lacks become new nullable columns.
    #[arg(long)]
    pub add_columns: bool,
    /// insert: a key already present is a row error; upsert: match rows by primary key;
    /// replace: the table ends holding exactly the file's valid rows.
    #[arg(long, value_enum)]
    pub mode: Option<ImportMode>,
    /// skip: record invalid rows and go on; abort: stop after --max-errors invalid rows and
    /// undo; atomic: write nothing unless every row is valid.
    #[arg(long, value_enum)]
    pub on_error: Option<OnErrorPolicy>,
    /// Invalid rows tolerated (with abort), or the most before the import stops (with skip).
    #[arg(long)]
    pub max_errors: Option<u64>,
    /// Validate and count what would change, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With upsert: delete the table's rows whose key is absent from the file.
    #[arg(long)]
    pub cleanup_records: bool,
    /// The file's format (default: from its extension, else sniffed by the server).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// Field delimiter of CSV/TSV: one ASCII character, or `tab`.
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Text encoding, by its label: utf-8, utf-16, windows-1252, latin1, iso-8859-2, shift_jis…
    #[arg(long)]
    pub encoding: Option<String>,
    /// The sheet of a workbook to load: its name, or its position from 1 (default: the
    /// first sheet).
    #[arg(long)]
    pub sheet: Option<String>,
    /// The file has no header line: fields map to columns by position.
    #[arg(long)]
    pub no_header: bool,
    /// Cells that mean NULL, as a comma list (`NA,,null`) or a JSON list.
    #[arg(long)]
    pub null_values: Option<String>,
    /// JSON object: source field → column, or null to ignore a field.
    #[arg(long)]
    pub mapping: Option<String>,
    /// Your identifier for this import (filterable).
    #[arg(long)]
    pub reference: Option<String>,
    /// Free text kept with the import.
    #[arg(long)]
    pub note: Option<String>,
    /// JSON object kept with the import.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Makes a retry safe: the same key and file answer the first import again.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Print the created import and exit without waiting for it to finish.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Import modes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportMode {
    Insert,
    Upsert,
    Replace,
}

/// Error policies.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnErrorPolicy {
    Skip,
    Abort,
    Atomic,
}

fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// Checks a JSON option locally, so a typo fails before a large upload.
fn check_json(flag: &str, text: &str, object: bool) -> Result<(), ClientError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ClientError::Usage(format!("{flag} is not valid JSON: {e}")))?;
    if object && !v.is_object() {
        return Err(ClientError::Usage(format!("{flag} must be a JSON object")));
    }
    Ok(())
}

impl ImportArgs {
    /// The query string options of the upload.
    fn query(
        &self,
        table: &str,
        format: Option<FileFormat>,
    ) -> Result<Vec<(&'static str, String)>, ClientError> {
        let mut q = vec![("table", table.to_owned())];
        if !self.no_create {
            q.push(("create_table", "true".into()));
        }
        if self.infer_enums {
            q.push(("infer_enums", "true".into()));
        }
        if self.add_columns {
            q.push(("add_columns", "true".into()));
        }
        if let Some(name) = self
            .file
            .as_deref()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
        {
            q.push(("file_name", name.to_owned()));
        }
        if let Some(m) = self.mode {
            q.push(("mode", value_name(m)));
        }
        if let Some(p) = self.on_error {
            q.push(("on_error", value_name(p)));
        }
        if let Some(n) = self.max_errors {
            q.push(("max_errors", n.to_string()));
        }
        if self.dry_run {
            q.push(("dry_run", "true".into()));
        }
        if self.cleanup_records {
            q.push(("cleanup_records", "true".into()));
        }
        if let Some(f) = format {
            q.push(("format", f.as_str().into()));
        }
        if self.no_header {
            q.push(("has_header", "false".into()));
        }
        if let Some(m) = &self.mapping {
            check_json("--mapping", m, true)?;
            q.push(("mapping", m.clone()));
        }
        if let Some(m) = &self.metadata {
            check_json("--metadata", m, true)?;
            q.push(("metadata", m.clone()));
        }
        for (name, value) in [
            ("delimiter", &self.delimiter),
            ("encoding", &self.encoding),
            ("sheet", &self.sheet),
            ("null_values", &self.null_values),
            ("reference", &self.reference),
            ("note", &self.note),
        ] {
            if let Some(v) = value {
                q.push((name, v.clone()));
            }
        }
        Ok(q)
    }
}

/// Runs `intake import`.
pub async fn run(args: ImportArgs) -> Exit {
    output::finish(import(&args).await)
}

/// `intake import --from-url`: the server downloads the file; the import is followed as
/// after an upload.
async fn import_url(
    args: &ImportArgs,
    client: &super::client::Client,
    out: Out,
    table: &str,
    url: &str,
    query: Vec<(&'static str, String)>,
) -> Result<Exit, ClientError> {
    check_table(args, client, &out, table, url).await?;
    let mut body = serde_json::Map::new();
    for (name, value) in query {
        body.insert(name.to_owned(), Value::String(value));
    }
    body.insert("url".into(), Value::String(url.to_owned()));
    let mut request = client
        .request(Method::POST, client.url(&["v1", "imports"], &[]))
        .json(&Value::Object(body));
    if let Some(key) = &args.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let created = client.json(request).await?;
    if args.no_wait {
        out.print_json(&created);
        return Ok(Exit::Ok);
    }
    match watch::follow(client, &created, out).await? {
        Followed::Interrupted => Ok(Exit::Interrupted),
        Followed::Ended(done) if out.json => {
            out.print_json(&done);
            Ok(Exit::of_status(done["status"].as_str().unwrap_or("")))
        }
        Followed::Ended(done) => watch::summary(client, &done, None, out).await,
    }
}

/// Says whether the table exists (it is created from the file when missing, unless
/// --no-create, which refuses before anything is sent).
async fn check_table(
    args: &ImportArgs,
    client: &super::client::Client,
    out: &Out,
    table: &str,
    source: &str,
) -> Result<(), ClientError> {
    match client.get(&["v1", "tables", table], &[]).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("not_found") && !args.no_create => {
            if !out.json {
                eprintln!("Table {table:?} does not exist: it is created from the whole file.");
            }
            Ok(())
        }
        Err(e) if e.code() == Some("not_found") => Err(ClientError::Usage(format!(
            "there is no table {table:?} in this workspace; drop --no-create to create it from the file, or propose one with `intake tables infer {source}`",
        ))),
        Err(e) => Err(e),
    }
}

/// The bar of bytes sent.
const UPLOAD_BAR: &str = "{spinner:.green} {prefix:.bold} [{elapsed_precise}] [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}";

async fn import(args: &ImportArgs) -> Result<Exit, ClientError> {
    let out = Out::new(args.client.json);
    let client = args.client.connect()?;
    // A URL's last segment names what it holds, as a file's name does.
    let named = match (&args.file, &args.source_url) {
        (Some(file), _) => file.clone(),
        (None, Some(url)) => PathBuf::from(
            url::Url::parse(url)
                .map_err(|e| ClientError::Usage(format!("--from-url is not a URL: {e}")))?
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default(),
        ),
        (None, None) => return Err(ClientError::Usage("name a FILE or --from-url".into())),
    };
    let format = args.format.or_else(|| FileFormat::of_path(&named));
    let table = match &args.table {
        Some(t) => t.clone(),
        None => table_name_from(&named).ok_or_else(|| {
            ClientError::Usage(format!(
                "no table name can be made from {}; name the table with --table",
                named.display()
            ))
        })?,
    };
    let query = args.query(&table, format)?;
    if let Some(url) = &args.source_url {
        return import_url(args, &client, out, &table, url, query).await;
    }

    let path = &named;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ClientError::io(format!("cannot open {}", path.display()), e))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| ClientError::io(format!("cannot read {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(ClientError::Usage(format!(
            "{} is not a file",
            path.display()
        )));
    }
    let len = meta.len();

    // A missing table would only be reported after the whole upload: ask first.
    check_table(args, &client, &out, &table, &path.display().to_string()).await?;

    let bar = out.bar(len, UPLOAD_BAR);
    bar.set_prefix("upload");
    let counter = bar.clone();
    // `take` keeps the body to the announced length even if the file grows meanwhile.
    let chunks = ReaderStream::with_capacity(file.take(len), 256 << 10).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            counter.inc(bytes.len() as u64);
            if counter.position() >= len {
                counter.set_message("sent; the server is checking the file");
            }
        }
        chunk
    });
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut request = client
        .request(Method::POST, client.url(&["v1", "imports"], &pairs))
        .header(CONTENT_TYPE, FileFormat::content_type(format))
        // A known length lets the server refuse an oversized file before any byte is sent.
        .header(CONTENT_LENGTH, len)
        .body(Body::wrap_stream(chunks));
    if let Some(key) = &args.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let started = Instant::now();
    let created = client.json(request).await;
    bar.finish_and_clear();
    let created = created?;
    let upload = UploadStats {
        bytes: len,
        elapsed: started.elapsed(),
    };

    if args.no_wait {
        if out.json {
            out.print_json(&created);
        } else {
            let id = output::text(&created["id"]);
            say!(
                "Import #{} {} ({})",
                output::count_of(&created["number"]),
                out.status(created["status"].as_str().unwrap_or("")),
                id
            );
            say!("  watch it:  intake imports watch {id}");
        }
        return Ok(Exit::Ok);
    }

    match watch::follow(&client, &created, out).await? {
        Followed::Interrupted => Ok(Exit::Interrupted),
        Followed::Ended(done) if out.json => {
            out.print_json(&done);
            Ok(Exit::of_status(done["status"].as_str().unwrap_or("")))
        }
        Followed::Ended(done) => watch::summary(&client, &done, Some(upload), out).await,
    }
}
