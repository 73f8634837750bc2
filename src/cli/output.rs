//! What the command line prints: exit codes, JSON for scripts, aligned tables and a little
//! color for people, progress bars on stderr. Colors and bars appear only on a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::client::ClientError;

/// The exit codes of client commands (clap itself exits with 2 on a usage error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; an import is `complete` (or `rolled_back` when a rollback was watched).
    Ok,
    /// 1: an error talking to the server, an error answer, or a local problem (file, options).
    Error,
    /// 3: the import finished with invalid rows (`partially_complete`).
    Invalid,
    /// 4: the import `failed`, was `cancelled`, or is `unsupported`.
    Failed,
    /// 130: interrupted with Ctrl-C while watching (the import goes on).
    Interrupted,
}

impl Exit {
    /// The exit code of a finished import's status.
    pub fn of_status(status: &str) -> Exit {
        match status {
            "complete" | "rolled_back" => Exit::Ok,
            "partially_complete" => Exit::Invalid,
            _ => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Invalid => 3,
            Exit::Failed => 4,
            Exit::Interrupted => 130,
        })
    }
}

/// The exit codes, for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
    0  success (the import is complete)
    1  error talking to the server, an error answer, or a bad file or option
    2  invalid command line (unknown option, missing --key...)
    3  the import finished with invalid rows (partially_complete)
    4  the import failed, was cancelled, or its file is not a supported format
  130  Ctrl-C while following an import (the import goes on on the server)";

/// Set once stdout is closed: nothing more is written to it.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes a line to stdout (see the `say!` macro).
pub fn say(args: std::fmt::Arguments) {
    let _ = write_stdout(format!("{args}\n").as_bytes());
}

/// Writes bytes to stdout; once the reader has gone (`| head`), the rest is dropped.
/// Answers whether stdout is still open.
pub fn write_stdout(bytes: &[u8]) -> bool {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        // Any write error means nobody reads any more; there is nowhere to report it.
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        return false;
    }
    true
}

/// Prints an error as `error: <message> (<code>)` and gives its exit code.
pub fn report(e: &ClientError) -> Exit {
    eprintln!("error: {e}");
    match e {
        // The server recorded the import as `unsupported`: an import that failed.
        ClientError::Api { code, error, .. } if code == "unsupported_format" => {
            if let Some(id) = error["import_id"].as_str() {
                eprintln!("(recorded as import {id}, status unsupported)");
            }
            Exit::Failed
        }
        _ => Exit::Error,
    }
}

/// Turns a command's result into its exit code, reporting an error.
pub fn finish(result: Result<Exit, ClientError>) -> Exit {
    result.unwrap_or_else(|e| report(&e))
}

/// How to print: JSON for scripts, or text (with colors on a terminal).
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// Print the API's JSON.
    pub json: bool,
    color: bool,
}

impl Out {
    /// The output settings for `--json` or not.
    pub fn new(json: bool) -> Out {
        let color = !json
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Out { json, color }
    }

    /// Prints a JSON value on stdout.
    pub fn print_json(&self, v: &Value) {
        let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
        say!("{text}");
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    /// Bold text.
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    /// Dim text.
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }

    /// A status, colored by how it went.
    pub fn status(&self, status: &str) -> String {
        let code = match status {
            "complete" | "rolled_back" => "1;32",
            "partially_complete" => "1;33",
            "failed" | "cancelled" | "unsupported" => "1;31",
            _ => "1;36",
        };
        self.paint(code, status)
    }

    /// A progress bar on stderr; hidden with `--json` and when stderr is not a terminal.
    pub fn bar(&self, len: u64, template: &str) -> ProgressBar {
        if self.json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
        }
        if !bar.is_hidden() {
            // Keeps the spinner and elapsed time moving while the server is quiet.
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        bar
    }
}

/// Prints rows under headers, each column as wide as its widest cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = w.saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        say!("{}", text.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// A count with thousands separators (`1,234,567`).
pub fn count(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// A JSON number as a count, or `-` when absent.
pub fn count_of(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), count)
}

/// A short duration: `850 ms`, `4.2 s`, `3 min 05 s`, `1 h 02 min`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", d.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        let s = d.as_secs();
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let s = d.as_secs();
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// An RFC 3339 timestamp as `YYYY-MM-DD HH:MM:SS` (UTC), or `-`.
pub fn timestamp(v: &Value) -> String {
    match v.as_str().and_then(|s| s.get(..19)) {
        Some(s) => s.replacen('T', " ", 1),
        None => "-".to_owned(),
    }
}

/// The time between two RFC 3339 timestamps of a resource.
pub fn between(start: &Value, end: &Value) -> Option<Duration> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let parse = |v: &Value| {
        v.as_str()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    };
    let d = parse(end)? - parse(start)?;
    Duration::try_from(d).ok()
}

/// A JSON string field, or `-`.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// The tables of an import, comma-separated.
pub fn tables_of(import: &Value) -> String {
    let names: Vec<&str> = import["tables"]
        .as_array()
        .map(|ts| ts.iter().filter_map(|t| t["table"].as_str()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}
