//! Streaming source readers: CSV, TSV, NDJSON and JSON files read record by record, with the
//! physical line where each record starts, resumable checkpoints and memory bounded by the
//! configured record size whatever the file holds.

mod delimited;
pub mod encoding;
mod flat_record;
mod json_array;
mod ndjson;
mod oversized;
mod record;
pub mod sniff;
mod stray_quotes;

pub use record::JsonFields;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::model::RowErrorCode;

/// The longest text kept in a rejected record's `row` (`_raw`, oversized fields), in characters.
const RAW_KEEP_CHARS: usize = 1000;

/// A source file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Tsv,
    Ndjson,
    Json,
}

impl Format {
    /// The format's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Ndjson => "ndjson",
            Format::Json => "json",
        }
    }

    /// Parses a format name (`csv`, `tsv`, `ndjson` or `json`).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "ndjson" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// Whether records are delimited text (CSV or TSV) rather than JSON.
    pub fn is_delimited(self) -> bool {
        matches!(self, Format::Csv | Format::Tsv)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to read a source: its format, the delimiter (CSV only: TSV is always tab-separated),
/// whether the first record is a header, and the size limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    pub format: Format,
    pub delimiter: u8,
    pub has_header: bool,
    pub max_field_bytes: usize,
    pub max_record_bytes: usize,
}

/// Where reading resumes: the raw file offset just after the last record returned, the physical
/// line at that offset (1-based) and the number of records consumed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub byte_offset: u64,
    pub line: u64,
    pub record: u64,
}

impl From<Checkpoint> for crate::store::Position {
    fn from(c: Checkpoint) -> Self {
        crate::store::Position {
            byte_offset: c.byte_offset,
            line: c.line,
            record: c.record,
        }
    }
}

impl From<crate::store::Position> for Checkpoint {
    fn from(p: crate::store::Position) -> Self {
        Checkpoint {
            byte_offset: p.byte_offset,
            line: p.line,
            record: p.record,
        }
    }
}

/// One record of a source: the physical line where it starts (1-based, a header is line 1),
/// its 1-based data record number, and its content.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadItem {
    pub line: u64,
    pub record: u64,
    pub body: RecordBody,
}

/// A record's content, or why it cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordBody {
    /// A delimited record (valid UTF-8) with as many fields as the header (any number without
    /// a header).
    Fields(crate::model::TextRecord),
    /// An NDJSON line or JSON array element that is an object, with the text it was read
    /// from (kept to report the record, instead of the parsed object, which is larger).
    Object(JsonFields),
    /// A record that cannot be used; `row` is what could be recovered, as a JSON object:
    /// header name → field text for delimited records (extra fields keyed `field_N`),
    /// `{"_raw": text}` or `{"_value": value}` for JSON.
    Bad {
        code: RowErrorCode,
        message: String,
        row: serde_json::Value,
    },
}

impl RecordBody {
    /// The object of a JSON record.
    #[cfg(test)]
    pub fn object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match self {
            RecordBody::Object(fields) => Some(fields.to_values().into_iter().collect()),
            _ => None,
        }
    }
}

/// Why a source cannot be read any further; the import fails with this message.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the source file: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Malformed(String),
}

/// A source file being read record by record.
pub struct SourceReader {
    inner: Inner,
    bytes_total: u64,
    /// Set after the end or a fatal error, so that the reader stays finished.
    finished: bool,
}

enum Inner {
    // Boxed: the `csv` reader and its buffers make it several times the others' size.
    Delimited(Box<delimited::DelimitedReader>),
    Ndjson(ndjson::NdjsonReader),
    Json(json_array::JsonReader),
}

impl SourceReader {
    /// Opens a source file at its start (reading the header of delimited formats when
    /// `has_header`), or at a checkpoint taken earlier, with the header read at the start.
    ///
    /// A delimited source without any record has an empty header and yields no items.
    pub fn open(
        path: &Path,
        opts: &ReaderOptions,
        resume: Option<(Checkpoint, Vec<String>)>,
    ) -> Result<SourceReader, ReadError> {
        let file = File::open(path)?;
        let bytes_total = file.metadata()?.len();
        // A checkpoint at offset 0 was taken before anything was read: start afresh, so that
        // the BOM and the header are handled as on a first open.
        let resume = resume.filter(|(cp, _)| cp.byte_offset > 0);
        let inner = match opts.format {
            Format::Csv | Format::Tsv => Inner::Delimited(Box::new(
                delimited::DelimitedReader::open(file, opts, resume)?,
            )),
            Format::Ndjson => Inner::Ndjson(ndjson::NdjsonReader::open(
                file,
                opts,
                resume.map(|(cp, _)| cp),
            )?),
            Format::Json => Inner::Json(json_array::JsonReader::open(
                file,
                opts,
                resume.map(|(cp, _)| cp),
            )?),
        };
        Ok(SourceReader {
            inner,
            bytes_total,
            finished: false,
        })
    }

    /// The header of a delimited source read with `has_header` (trimmed names; empty when the
    /// file holds no record at all); None otherwise.
    pub fn header(&self) -> Option<&[String]> {
        match &self.inner {
            Inner::Delimited(r) => r.header(),
            _ => None,
        }
    }

    /// The next record, None at the end of the file (and after a fatal error).
    pub fn next_item(&mut self) -> Option<Result<ReadItem, ReadError>> {
        if self.finished {
            return None;
        }
        let next = match &mut self.inner {
            Inner::Delimited(r) => r.next_item(),
            Inner::Ndjson(r) => r.next_item(),
            Inner::Json(r) => r.next_item(),
        };
        if !matches!(next, Some(Ok(_))) {
            self.finished = true;
        }
        next
    }

    /// For a delimited source, the next record's fields as read (`Ok(None)` for a record the
    /// load refuses whole), without the copy `next_item` makes; None at the end of the file
    /// and for other formats.
    pub fn next_fields(&mut self) -> Option<Result<Option<&csv::ByteRecord>, ReadError>> {
        if self.finished {
            return None;
        }
        let Inner::Delimited(r) = &mut self.inner else {
            return None;
        };
        let next = r.next_fields();
        if !matches!(next, Some(Ok(_))) {
            self.finished = true;
        }
        next
    }

    /// The position just after the last item returned; reopening there yields the following
    /// items with identical line and record numbers.
    pub fn checkpoint(&self) -> Checkpoint {
        match &self.inner {
            Inner::Delimited(r) => r.checkpoint(),
            Inner::Ndjson(r) => r.checkpoint(),
            Inner::Json(r) => r.checkpoint(),
        }
    }

    /// The size of the source file in bytes.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }
}

/// Skips a UTF-8 BOM at the start of the file; returns the offset where the content starts.
fn skip_bom(file: &mut File) -> std::io::Result<u64> {
    let mut head = [0u8; 3];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let start = if got == 3 && head == [0xEF, 0xBB, 0xBF] {
        3
    } else {
        0
    };
    file.seek(SeekFrom::Start(start))?;
    Ok(start)
}

/// A size limit as people read it ("8 MiB", "64 KiB", "100 bytes").
fn human_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The first `max` characters of `s`.
fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The row kept for a record that could not be parsed: its text, lossily decoded and shortened.
fn raw_row(bytes: &[u8]) -> serde_json::Value {
    // Four bytes per character at most: enough input for the characters kept.
    let head = &bytes[..bytes.len().min(RAW_KEEP_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    serde_json::json!({ "_raw": truncate_chars(&text, RAW_KEEP_CHARS) })
}

/// serde_json's message without its " at line L column C" suffix, and that position.
fn split_json_error(e: &serde_json::Error) -> (String, usize, usize) {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    (msg, e.line(), e.column())
}

/// The name of a JSON value's kind, for "expected an object" messages.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The body of a record that names a field twice: refused, whatever its values.
fn repeated_field(field: &str, bytes: &[u8]) -> RecordBody {
    RecordBody::Bad {
        code: RowErrorCode::DuplicateKey,
        message: format!(
            "field {field:?} appears more than once in the object (which value is meant cannot be told)"
        ),
        row: raw_row(bytes),
    }
}

/// The body for a JSON value parsed from `text`: the object itself, or `not_an_object`.
fn object_body(parsed: record::Parsed, text: &str) -> RecordBody {
    match parsed {
        record::Parsed::Object(fields) => RecordBody::Object(fields),
        record::Parsed::Other(serde_json::Value::Object(map)) => RecordBody::Object(
            JsonFields::from_values(text.into(), map.into_iter().collect()),
        ),
        record::Parsed::Other(other) => RecordBody::Bad {
            code: RowErrorCode::NotAnObject,
            message: format!("expected a JSON object, found {}", json_kind(&other)),
            row: serde_json::json!({ "_value": other }),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests;
