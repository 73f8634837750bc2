//! Following an import to its end through its event stream, with a progress bar, and the
//! summary printed once it ends. `intake import` and `intake imports watch` share both.

use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::Value;

use super::client::{Client, ClientError};
use super::output::{self, Exit, Out, count, count_of};

/// Reconnections tried in a row before giving up (about a minute with the backoff below).
const MAX_RETRIES: u32 = 30;

/// How the follow ended.
pub enum Followed {
    /// The import reached a terminal state: here it is, as the server sent it.
    Ended(Value),
    /// The user pressed Ctrl-C; the import goes on.
    Interrupted,
}

/// The template of the processing bar.
const BAR: &str =
    "{spinner:.green} {prefix:.bold} [{elapsed_precise}] [{bar:30.cyan/blue}] {pos:>3}% {msg}";

/// Follows an import's stream until its final state, drawing a bar on stderr. Lost
/// connections are resumed with `Last-Event-ID`, so no lifecycle event is missed.
pub async fn follow(client: &Client, import: &Value, out: Out) -> Result<Followed, ClientError> {
    let id = import["id"]
        .as_str()
        .ok_or_else(|| ClientError::Protocol("an import without an id".into()))?
        .to_owned();
    let bar = out.bar(100, BAR);
    bar.set_prefix(format!("import #{}", count_of(&import["number"])));
    show_progress(&bar, import);
    let result = tokio::select! {
        r = follow_stream(client, &id, &bar) => r.map(Followed::Ended),
        _ = tokio::signal::ctrl_c() => Ok(Followed::Interrupted),
    };
    bar.finish_and_clear();
    if let Ok(Followed::Interrupted) = result {
        eprintln!(
            "Stopped watching; the import goes on on the server.\n  watch it again: intake imports watch {id}\n  or cancel it:   intake imports cancel {id}"
        );
    }
    result
}

async fn follow_stream(client: &Client, id: &str, bar: &ProgressBar) -> Result<Value, ClientError> {
    let mut last_event_id: Option<String> = None;
    let mut retries = 0u32;
    loop {
        let lost = match client.import_events(id, last_event_id.as_deref()).await {
            Ok(mut stream) => {
                loop {
                    match stream.next().await {
                        Ok(Some(event)) => {
                            // Back only once the server speaks: a stream that opens and closes
                            // at once must still run out of retries.
                            if retries > 0 {
                                bar.suspend(|| eprintln!("(reconnected)"));
                                retries = 0;
                            }
                            if event.id.is_some() {
                                last_event_id.clone_from(&event.id);
                            }
                            let data: Value = serde_json::from_str(&event.data).map_err(|e| {
                                ClientError::Protocol(format!(
                                    "a stream event that is not JSON: {e}"
                                ))
                            })?;
                            match event.event.as_str() {
                                "progress" => show_progress(bar, &data),
                                "end" => return Ok(data),
                                "import.warning" => {
                                    let message = data["data"]["message"].as_str().unwrap_or("");
                                    bar.suspend(|| eprintln!("warning: {message}"));
                                }
                                _ => {}
                            }
                        }
                        // Closed without `end`: the server stopped (a restart); resume.
                        Ok(None) => break None,
                        Err(e) if e.is_transient() => break Some(e),
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if e.is_transient() => Some(e),
            Err(e) => return Err(e),
        };
        if retries >= MAX_RETRIES {
            return Err(lost.unwrap_or_else(|| {
                ClientError::Protocol("the stream kept closing before the import ended".into())
            }));
        }
        if retries == 0 {
            // Said once per outage; the bar's message tells the rest.
            let why = lost.map_or_else(
                || "the server closed the stream".to_owned(),
                |e| e.to_string(),
            );
            bar.suspend(|| eprintln!("(connection lost: {why}; reconnecting…)"));
        }
        retries += 1;
        bar.set_message(format!(
            "connection lost; reconnecting (attempt {retries} of {MAX_RETRIES})…"
        ));
        tokio::time::sleep(Duration::from_millis(250 * u64::from(retries.min(8)))).await;
    }
}

/// Shows a progress event (or an import, which has the same fields) on the bar.
fn show_progress(bar: &ProgressBar, p: &Value) {
    bar.set_position(p["progress"].as_u64().unwrap_or(0));
    let status = p["status"].as_str().unwrap_or("");
    let step = p["step"].as_str().unwrap_or("");
    let counts = &p["counts"];
    let message = match status {
        "new" => "waiting for the file".to_owned(),
        "queued" => "queued, waiting for a worker".to_owned(),
        "rolling_back" => "rolling back".to_owned(),
        _ => {
            let mut parts = vec![format!("{} rows", count_of(&counts["processed"]))];
            if let Some(rps) = p["rows_per_second"].as_f64() {
                parts.push(format!("{} rows/s", count(rps.round() as u64)));
            }
            if let Some(eta) = p["eta_seconds"].as_u64().filter(|_| status == "processing") {
                parts.push(format!("ETA {}", eta_text(eta)));
            }
            parts.push(format!("{} invalid", count_of(&counts["invalid"])));
            if step != "writing" && !step.is_empty() {
                parts.push(step.replace('_', " "));
            }
            parts.join(" · ")
        }
    };
    bar.set_message(message);
}

fn eta_text(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// The upload, as measured by the client, for the summary.
#[derive(Debug, Clone, Copy)]
pub struct UploadStats {
    /// Bytes sent.
    pub bytes: u64,
    /// From the first byte to the server's answer.
    pub elapsed: Duration,
}

/// Row errors shown in the summary.
const FIRST_ERRORS: &str = "5";

/// Prints the summary of a finished (or running) import, with its first row errors, and
/// gives the exit code of its status.
pub async fn summary(
    client: &Client,
    import: &Value,
    upload: Option<UploadStats>,
    out: Out,
) -> Result<Exit, ClientError> {
    let status = import["status"].as_str().unwrap_or("");
    let id = import["id"].as_str().unwrap_or("");
    let counts = &import["counts"];
    // Padded before painting: escape codes would count as width.
    let field = |name: &str, value: String| say!("  {}  {value}", out.dim(&format!("{name:<11}")));

    say!(
        "{} {}",
        out.bold(&format!("Import #{}", count_of(&import["number"]))),
        out.status(status)
    );
    field("id", id.to_owned());
    let mut how = format!(
        "mode {}, on error {}",
        output::text(&import["mode"]),
        output::text(&import["on_error"])
    );
    if import["dry_run"].as_bool() == Some(true) {
        how.push_str(", dry run (nothing written)");
    }
    field("table", format!("{}  ({how})", output::tables_of(import)));
    for t in import["tables"].as_array().into_iter().flatten() {
        let Some(created) = t.get("created_schema") else {
            continue;
        };
        let key: Vec<&str> = created["primary_key"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let columns: Vec<String> = created["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or("");
                let mut shown = format!("{name} {}", c["type"].as_str().unwrap_or(""));
                if key.contains(&name) {
                    shown.push_str(" (key)");
                } else if c["required"].as_bool() == Some(true) {
                    shown.push_str(" (required)");
                }
                shown
            })
            .collect();
        field(
            "created",
            format!(
                "table {}: {}",
                output::text(&t["table"]),
                columns.join(", ")
            ),
        );
        let tokens: Vec<String> = t["missing_tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| format!("{:?}", v.as_str().unwrap_or("")))
            .collect();
        if !tokens.is_empty() {
            field(
                "missing",
                format!("{} read as missing in typed columns", tokens.join(", ")),
            );
        }
    }
    if let Some(upload) = upload {
        let rate = upload.bytes as f64 / upload.elapsed.as_secs_f64().max(0.001);
        field(
            "upload",
            format!(
                "{} in {} ({}/s)",
                indicatif::HumanBytes(upload.bytes),
                output::duration(upload.elapsed),
                indicatif::HumanBytes(rate as u64)
            ),
        );
    }
    let mut rows = format!(
        "{} processed: {} created, {} updated, {} unchanged, {} invalid",
        count_of(&counts["processed"]),
        count_of(&counts["created"]),
        count_of(&counts["updated"]),
        count_of(&counts["unchanged"]),
        count_of(&counts["invalid"]),
    );
    if counts["destroyed"].as_u64().unwrap_or(0) > 0 {
        rows.push_str(&format!(", {} destroyed", count_of(&counts["destroyed"])));
    }
    field("rows", rows);
    let end = if import["completed_at"].is_null() {
        &import["updated_at"]
    } else {
        &import["completed_at"]
    };
    if let Some(d) = output::between(&import["started_at"], end) {
        let mut text = output::duration(d);
        if let Some(rps) = import["rows_per_second"].as_f64() {
            text.push_str(&format!(", {} rows/s", count(rps.round() as u64)));
        }
        field("duration", text);
    }
    if let Some(w) = counts["warnings"].as_u64().filter(|w| *w > 0) {
        field(
            "warnings",
            format!(
                "{} (see GET {})",
                count(w),
                client.url(&["v1", "imports", id, "events"], &[])
            ),
        );
    }
    if let Some(error) = import["error"].as_str() {
        field("error", error.to_owned());
    }
    if !import["rolled_back_at"].is_null() {
        field("rolled back", output::timestamp(&import["rolled_back_at"]));
    }

    let invalid = counts["invalid"].as_u64().unwrap_or(0);
    if invalid > 0
        && let Err(e) = print_error_groups(client, id, out).await
    {
        // As below: the summary is a help, not the outcome.
        say!();
        say!("The row errors could not be summarised: {e}");
    }
    if invalid > 0
        && let Err(e) = print_first_errors(client, id, invalid, out).await
    {
        // The outcome is known: a failure to show examples must not change the exit code.
        say!();
        say!(
            "{} invalid rows; the first ones could not be fetched: {e}",
            count(invalid)
        );
    }
    Ok(Exit::of_status(status))
}

/// Error groups shown in the summary (the largest; the API answers them all).
const ERROR_GROUPS: usize = 5;

/// Prints the row errors grouped by table, column and code (so that thousands of errors read
/// as a few lines), and a warning when some rejected rows were counted but not stored.
async fn print_error_groups(client: &Client, id: &str, out: Out) -> Result<(), ClientError> {
    let summary = client
        .get(&["v1", "imports", id, "errors", "summary"], &[])
        .await?;
    let groups = summary["groups"].as_array().cloned().unwrap_or_default();
    if summary["truncated"].as_bool() == Some(true) {
        say!();
        say!("{}", out.bold(&truncation_warning(&summary)));
    }
    if groups.is_empty() {
        return Ok(());
    }
    say!();
    say!("{}", out.bold("Row errors by kind:"));
    let rows: Vec<Vec<String>> = groups
        .iter()
        .take(ERROR_GROUPS)
        .map(|g| {
            vec![
                format!("  {}", count_of(&g["count"])),
                output::text(&g["table"]),
                output::text(&g["column"]),
                output::text(&g["code"]),
                format!(
                    "line {}: {}",
                    output::text(&g["first_line"]),
                    output::text(&g["example"])
                ),
            ]
        })
        .collect();
    output::print_table(&["  rows", "table", "column", "code", "first"], &rows);
    if groups.len() > ERROR_GROUPS {
        say!(
            "  ... and {} more kinds (GET {})",
            groups.len() - ERROR_GROUPS,
            client.url(&["v1", "imports", id, "errors", "summary"], &[])
        );
    }
    Ok(())
}

/// The warning printed when an import stored fewer row errors than it rejected rows.
fn truncation_warning(summary: &Value) -> String {
    format!(
        "Warning: only {} of {} rejected rows are stored (the server's --max-stored-errors); \
         the rejected-rows CSV holds only those.",
        count_of(&summary["stored"]),
        count_of(&summary["invalid"])
    )
}

async fn print_first_errors(
    client: &Client,
    id: &str,
    invalid: u64,
    out: Out,
) -> Result<(), ClientError> {
    let page = client
        .get(&["v1", "imports", id, "errors"], &[("limit", FIRST_ERRORS)])
        .await?;
    let errors = page["data"].as_array().cloned().unwrap_or_default();
    say!();
    if errors.is_empty() {
        // Stored errors are pruned with the undo journal after the retention period.
        say!(
            "{} invalid rows; their details are no longer stored.",
            count(invalid)
        );
        return Ok(());
    }
    say!(
        "{}",
        out.bold(&format!(
            "First {} of {} invalid rows:",
            errors.len(),
            count(invalid)
        ))
    );
    let rows: Vec<Vec<String>> = errors
        .iter()
        .map(|e| {
            vec![
                // Plain digits: a line number is for an editor's "go to line".
                format!("  {}", output::text(&e["line"])),
                output::text(&e["column"]),
                output::text(&e["code"]),
                output::text(&e["message"]),
            ]
        })
        .collect();
    output::print_table(&["  line", "column", "code", "message"], &rows);
    say!();
    say!("All rejected rows, as CSV with line and error columns, to fix and upload again:");
    say!("  intake imports errors {id} --csv > rejected.csv");
    say!(
        "  {}",
        client.url(&["v1", "imports", id, "errors"], &[("format", "csv")])
    );
    Ok(())
}
