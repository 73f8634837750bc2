//! CSV and TSV sources, parsed by the `csv` crate (RFC 4180 quoting, CRLF or LF, multi-line
//! quoted fields) with exact physical line numbers and a hard record size limit.
//!
//! The `csv` crate reports a record's position as where the previous record ended, which is
//! the wrong line after a CRLF (the LF is consumed with the next record) or blank lines. The
//! start line is therefore derived from the line count after the record: minus the newlines
//! inside its fields, minus its own LF terminator. Telling an LF terminator from a CR (or the
//! end of the file) needs the last byte consumed, which `ChunkReader` keeps at hand.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use csv::ByteRecord;
use serde_json::{Map, Value};

use super::oversized::find_record_end;
use super::stray_quotes::StrayQuotes;
use super::{
    Checkpoint, Format, RAW_KEEP_CHARS, ReadError, ReadItem, ReaderOptions, RecordBody, human_size,
    raw_row, skip_bom, truncate_chars,
};
use crate::model::{RowErrorCode, TextRecord};

/// Bytes read from the file at a time.
const CHUNK: usize = 64 * 1024;
/// The `csv` reader's own buffer.
const CSV_BUFFER: usize = 64 * 1024;

/// The file as the `csv` reader sees it: buffered here so that recently consumed bytes can be
/// looked at, and refusing to hand out more than the current record may hold.
struct ChunkReader {
    file: File,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// The byte at `base - 1`, once a chunk has been passed.
    prev_last: Option<u8>,
    /// No byte at or past this file offset is handed out (the record size guard).
    limit: u64,
    limit_hit: bool,
    /// Watches what is handed out for text after a closing quote.
    stray_quotes: StrayQuotes,
}

impl ChunkReader {
    fn new(file: File, start: u64, delimiter: u8) -> ChunkReader {
        ChunkReader {
            file,
            buf: vec![0; CHUNK].into_boxed_slice(),
            pos: 0,
            filled: 0,
            base: start,
            prev_last: None,
            limit: u64::MAX,
            limit_hit: false,
            stray_quotes: StrayQuotes::new(delimiter),
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        if self.filled > 0 {
            self.prev_last = self.buf.get(self.filled - 1).copied();
        }
        self.base += self.filled as u64;
        self.pos = 0;
        self.filled = 0;
        loop {
            match self.file.read(&mut self.buf) {
                Ok(n) => {
                    self.filled = n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The byte at file offset `off`, if it is still (or already) buffered. The `csv` reader
    /// only asks for input once it consumed all it had, so a byte just before its position is
    /// always here, and the byte at its position can be fetched when everything was consumed.
    fn byte_at(&mut self, off: u64) -> Option<u8> {
        if off.checked_add(1) == Some(self.base) {
            return self.prev_last;
        }
        let i = usize::try_from(off.checked_sub(self.base)?).ok()?;
        if i == self.filled && self.pos == self.filled && self.refill().is_ok() {
            return self.buf.get(..self.filled)?.first().copied();
        }
        self.buf.get(..self.filled)?.get(i).copied()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.filled {
            self.refill()?;
            if self.filled == 0 {
                return Ok(0);
            }
        }
        let handed = self.base + self.pos as u64;
        let room = self.limit.saturating_sub(handed);
        if room == 0 {
            self.limit_hit = true;
            return Err(io::Error::other("record size limit reached"));
        }
        let n = (self.filled - self.pos)
            .min(out.len())
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.stray_quotes.feed(&out[..n], handed);
        self.pos += n;
        Ok(n)
    }
}

/// Reads a CSV or TSV file.
pub(super) struct DelimitedReader {
    csv: csv::Reader<ChunkReader>,
    /// File offset and physical line where the `csv` reader started (its position 0, line 1).
    byte_base: u64,
    line_base: u64,
    header: Option<Vec<String>>,
    /// Keys of the fields in a rejected record's `row`: the header names, made unique.
    keys: Vec<String>,
    expected_fields: Option<usize>,
    max_field: usize,
    max_record: usize,
    checkpoint: Checkpoint,
    /// The record being read, reused: each item gets an exact-size `TextRecord` of it.
    scratch: ByteRecord,
    /// The header is empty: the file has no records at all.
    empty: bool,
    /// The file's length, to recognise its last record.
    file_len: u64,
    /// File offsets of the record just read.
    span: (u64, u64),
    delimiter: u8,
    /// The record just read was over the size limit and passed over: its first bytes.
    oversized: Option<Vec<u8>>,
    /// The record just read has text after a closing quote.
    stray_quote: bool,
}

impl DelimitedReader {
    pub(super) fn open(
        mut file: File,
        opts: &ReaderOptions,
        resume: Option<(Checkpoint, Vec<String>)>,
    ) -> Result<DelimitedReader, ReadError> {
        let delimiter = match opts.format {
            Format::Tsv => b'\t',
            _ => opts.delimiter,
        };
        if matches!(delimiter, b'"' | b'\n' | b'\r') {
            return Err(ReadError::Malformed(format!(
                "{:?} cannot be used as the delimiter",
                char::from(delimiter)
            )));
        }
        let (start, line, record) = match &resume {
            Some((cp, _)) => (cp.byte_offset, cp.line.max(1), cp.record),
            None => (skip_bom(&mut file)?, 1, 0),
        };
        let file_len = file.metadata().map_err(ReadError::Io)?.len();
        let (byte_base, line_base) = csv_start(&mut file, start, line)?;
        let csv = csv_reader(file, byte_base, delimiter);
        let mut reader = DelimitedReader {
            csv,
            byte_base,
            line_base,
            header: None,
            keys: Vec::new(),
            expected_fields: None,
            max_field: opts.max_field_bytes,
            max_record: opts.max_record_bytes,
            checkpoint: Checkpoint {
                byte_offset: start,
                line,
                record,
            },
            scratch: ByteRecord::new(),
            empty: false,
            file_len,
            span: (start, start),
            delimiter,
            oversized: None,
            stray_quote: false,
        };
        if opts.has_header {
            let header = match resume {
                Some((_, header)) => header,
                None => reader.read_header()?,
            };
            reader.empty = header.is_empty();
            reader.expected_fields = Some(header.len());
            reader.keys = unique_keys(&header);
            reader.header = Some(header);
        }
        Ok(reader)
    }

    pub(super) fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    fn read_header(&mut self) -> Result<Vec<String>, ReadError> {
        let Some(line) = self.read_raw()? else {
            return Ok(Vec::new());
        };
        if self.oversized.is_some() {
            return Err(ReadError::Malformed(format!(
                "line {line}: the header is larger than the {} record size limit",
                human_size(self.max_record)
            )));
        }
        if self.stray_quote {
            return Err(ReadError::Malformed(format!(
                "line {line}: a header field has text after its closing quote"
            )));
        }
        let mut names = Vec::with_capacity(self.scratch.len());
        for (i, field) in self.scratch.iter().enumerate() {
            if field.len() > self.max_field {
                return Err(ReadError::Malformed(format!(
                    "line {}: header field {} is longer than the {} field size limit",
                    line,
                    i + 1,
                    human_size(self.max_field)
                )));
            }
            let name = std::str::from_utf8(field).map_err(|_| {
                ReadError::Malformed(format!(
                    "line {}: header field {} is not valid UTF-8",
                    line,
                    i + 1
                ))
            })?;
            names.push(name.trim().to_owned());
        }
        Ok(names)
    }

    pub(super) fn next_item(&mut self) -> Option<Result<ReadItem, ReadError>> {
        let line = match self.advance()? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(ReadItem {
            line,
            record: self.checkpoint.record,
            body: self.body(),
        }))
    }

    /// The next record's fields as read, not copied (schema inference reads every record of
    /// a file); `Ok(None)` for a record the load refuses whole (wrong field count, a field
    /// over the size limit).
    pub(super) fn next_fields(&mut self) -> Option<Result<Option<&ByteRecord>, ReadError>> {
        if let Err(e) = self.advance()? {
            return Some(Err(e));
        }
        let record = &self.scratch;
        let refused = self.oversized.is_some()
            || self.stray_quote
            || self.expected_fields.is_some_and(|n| n != record.len())
            || (record.as_slice().len() > self.max_field
                && record.iter().any(|f| f.len() > self.max_field));
        Some(Ok((!refused).then_some(record)))
    }

    /// Reads the next record into `scratch`, passing over blank lines; answers the line it
    /// starts at, None at the end of the file.
    fn advance(&mut self) -> Option<Result<u64, ReadError>> {
        if self.empty {
            return None;
        }
        loop {
            let line = match self.read_raw() {
                Ok(Some(line)) => line,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let found = self.scratch.len();
            if self.oversized.is_some() {
                self.checkpoint.record += 1;
                return Some(Ok(line));
            }
            // A blank line reads as one empty field: not a record when more are expected.
            if found == 1
                && self.expected_fields.is_some_and(|n| n > 1)
                && self.scratch.as_slice().is_empty()
            {
                continue;
            }
            self.checkpoint.record += 1;
            if self.checkpoint.byte_offset >= self.file_len
                && let Err(e) = self.check_last_record_closed(line)
            {
                return Some(Err(e));
            }
            return Some(Ok(line));
        }
    }

    /// Checks the record just read: field count, field sizes, then encoding.
    fn body(&self) -> RecordBody {
        if let Some(head) = &self.oversized {
            return RecordBody::Bad {
                code: RowErrorCode::RecordTooLarge,
                message: format!(
                    "the record is larger than the {} record size limit",
                    human_size(self.max_record)
                ),
                row: raw_row(head),
            };
        }
        let record = &self.scratch;
        let found = record.len();
        if let Some(n) = self.expected_fields.filter(|&n| n != found) {
            return self.bad(
                RowErrorCode::FieldCountMismatch,
                format!("expected {n} fields, found {found}"),
                record,
            );
        }
        if self.stray_quote {
            return self.bad(
                RowErrorCode::MalformedRecord,
                "a quoted field has text after its closing quote (quote the whole field, and \
                 double the quotes inside it)"
                    .to_owned(),
                record,
            );
        }
        // Only a record longer than the field limit can hold a field that is.
        let oversized = (record.as_slice().len() > self.max_field)
            .then(|| record.iter().position(|f| f.len() > self.max_field))
            .flatten();
        if let Some(i) = oversized {
            let len = record.get(i).map_or(0, <[u8]>::len);
            let message = format!(
                "{} is {len} bytes, over the {} field size limit",
                self.field_name(i),
                human_size(self.max_field)
            );
            return self.bad(RowErrorCode::FieldTooLarge, message, record);
        }
        match TextRecord::read(record) {
            Ok(fields) => RecordBody::Fields(fields),
            Err(i) => {
                let message = format!("{} is not valid UTF-8", self.field_name(i));
                self.bad(RowErrorCode::InvalidEncoding, message, record)
            }
        }
    }

    /// Names field `i` (0-based) in messages: by its header name when there is one.
    fn field_name(&self, i: usize) -> String {
        match self.header.as_ref().and_then(|h| h.get(i)) {
            Some(name) if !name.is_empty() => format!("field {} ({name:?})", i + 1),
            _ => format!("field {}", i + 1),
        }
    }

    fn bad(&self, code: RowErrorCode, message: String, record: &ByteRecord) -> RecordBody {
        let mut row = Map::new();
        for (i, field) in record.iter().enumerate() {
            let key = match self.keys.get(i) {
                Some(k) => k.clone(),
                None => format!("field_{}", i + 1),
            };
            let text = String::from_utf8_lossy(field);
            // An oversized field is kept shortened: rejected rows are stored and shown.
            let text = if field.len() > self.max_field {
                truncate_chars(&text, RAW_KEEP_CHARS).to_owned()
            } else {
                text.into_owned()
            };
            row.entry(key).or_insert(Value::String(text));
        }
        RecordBody::Bad {
            code,
            message,
            row: Value::Object(row),
        }
    }

    /// Reads the next record into `scratch` and moves the checkpoint past it; returns the
    /// physical line where the record starts, None at the end of the file.
    fn read_raw(&mut self) -> Result<Option<u64>, ReadError> {
        self.oversized = None;
        self.stray_quote = false;
        let before = self.csv.position().clone();
        let start = self.byte_base + before.byte();
        self.csv.get_mut().limit = start
            .saturating_add(self.max_record as u64)
            .saturating_add(1);
        let more = match self.csv.read_byte_record(&mut self.scratch) {
            Ok(more) => more,
            Err(_) if self.csv.get_ref().limit_hit => return self.pass_oversized(),
            Err(e) => return Err(self.read_failure(e)),
        };
        if !more {
            return Ok(None);
        }
        let after = self.csv.position().clone();
        if after.byte().saturating_sub(before.byte()) > self.max_record as u64 {
            return self.pass_oversized();
        }
        let end = self.byte_base + after.byte();
        self.span = (start, end);
        self.stray_quote = self.csv.get_mut().stray_quotes.take_in(start, end);
        let newlines = after.line().saturating_sub(before.line());
        let last = end
            .checked_sub(1)
            .and_then(|off| self.csv.get_mut().byte_at(off));
        // Newlines before the record (blank lines, the LF of a CRLF) push its start down.
        let mut leading = newlines.saturating_sub(u64::from(last == Some(b'\n')));
        if leading > 0 {
            let inside = self
                .scratch
                .as_slice()
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            leading = leading.saturating_sub(inside);
        }
        let line = self.line_base + before.line() + leading - 1;
        let mut next = Checkpoint {
            byte_offset: end,
            line: self.line_base + after.line() - 1,
            record: self.checkpoint.record,
        };
        // After a CR, step over its LF so that the checkpoint is where the next line starts.
        if last == Some(b'\r') && self.csv.get_mut().byte_at(end) == Some(b'\n') {
            next.byte_offset += 1;
            next.line += 1;
        }
        self.checkpoint = next;
        Ok(Some(line))
    }

    /// Passes over the next record, found to be over the size limit: finds where it ends
    /// and starts the `csv` reader again after it, so that the record is one row error and
    /// the rows after it load. A record that never ends (the file ends inside its quotes)
    /// fails the read.
    fn pass_oversized(&mut self) -> Result<Option<u64>, ReadError> {
        let too_large = self.too_large();
        // From the checkpoint, not the `csv` reader's position: that one is before the LF
        // of a CRLF, which the checkpoint has stepped over.
        let start = self.checkpoint.byte_offset;
        let mut file = self.csv.get_ref().file.try_clone()?;
        file.seek(SeekFrom::Start(start))?;
        let mut input = io::BufReader::with_capacity(CHUNK, file);
        let keep = RAW_KEEP_CHARS * 4;
        let Some(end) = find_record_end(&mut input, self.delimiter, keep)? else {
            return Err(too_large);
        };
        let line = self.checkpoint.line + end.leading_lines;
        let next = Checkpoint {
            byte_offset: start + end.len,
            line: self.checkpoint.line + end.lines,
            record: self.checkpoint.record,
        };
        let mut file = input.into_inner();
        let (byte_base, line_base) = csv_start(&mut file, next.byte_offset, next.line)?;
        self.csv = csv_reader(file, byte_base, self.delimiter);
        (self.byte_base, self.line_base) = (byte_base, line_base);
        self.span = (start, next.byte_offset);
        self.checkpoint = next;
        self.scratch.clear();
        self.oversized = Some(end.head);
        Ok(Some(line))
    }

    /// The `csv` reader ends a quoted field left open at the end of the file as if it were
    /// closed, swallowing every line after the quote into one field. The last record is read
    /// again raw and refused when the file ends inside quotes.
    fn check_last_record_closed(&self, line: u64) -> Result<(), ReadError> {
        use std::os::unix::fs::FileExt;
        let (start, end) = self.span;
        let len = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
        let mut raw = vec![0u8; len.min(self.max_record + 1)];
        self.csv
            .get_ref()
            .file
            .read_exact_at(&mut raw, start)
            .map_err(ReadError::Io)?;
        if ends_inside_quotes(&raw, self.delimiter) {
            return Err(ReadError::Malformed(format!(
                "line {line}: a quoted field is never closed (the file ends inside quotes)"
            )));
        }
        Ok(())
    }

    fn read_failure(&self, e: csv::Error) -> ReadError {
        let message = format!("line {}: {e}", self.checkpoint.line);
        match e.into_kind() {
            csv::ErrorKind::Io(e) => ReadError::Io(e),
            _ => ReadError::Malformed(message),
        }
    }

    fn too_large(&self) -> ReadError {
        ReadError::Malformed(format!(
            "record starting at line {} exceeds the {} record size limit (unterminated quote?)",
            self.checkpoint.line,
            human_size(self.max_record)
        ))
    }
}

/// Whether RFC 4180 quoting is still open at the end of `raw` (a quote opens a field only at
/// its start; inside quotes, `""` is a quote and a lone `"` closes).
fn ends_inside_quotes(raw: &[u8], delimiter: u8) -> bool {
    let mut quoted = false;
    let mut field_start = true;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if quoted {
            if b == b'"' {
                if raw.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else if field_start && b == b'"' {
            quoted = true;
            field_start = false;
        } else {
            field_start = b == delimiter || b == b'\n' || b == b'\r';
        }
        i += 1;
    }
    quoted
}

/// A `csv` reader of `file` from file offset `base` (where the file is positioned).
fn csv_reader(file: File, base: u64, delimiter: u8) -> csv::Reader<ChunkReader> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(CSV_BUFFER)
        .from_reader(ChunkReader::new(file, base, delimiter))
}

/// Positions the file where the `csv` reader starts and returns that offset and its line.
///
/// `csv` drops a UTF-8 BOM at the very start of its input. A record resumed at an offset
/// whose first field begins with U+FEFF would lose it, so the reader then starts one byte
/// earlier, on the previous record's line terminator, which it skips as a blank line.
fn csv_start(file: &mut File, start: u64, line: u64) -> Result<(u64, u64), ReadError> {
    let mut base = (start, line);
    if start > 0 {
        file.seek(SeekFrom::Start(start - 1))?;
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match file.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if got == 4 && head[1..] == [0xEF, 0xBB, 0xBF] && matches!(head[0], b'\n' | b'\r') {
            base = (start - 1, line - u64::from(head[0] == b'\n'));
        }
    }
    file.seek(SeekFrom::Start(base.0))?;
    Ok(base)
}

/// The keys of a rejected record's fields: header names, with `field_N` for an empty or
/// repeated name.
fn unique_keys(header: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if !name.is_empty() && seen.insert(name.as_str()) {
                name.clone()
            } else {
                format!("field_{}", i + 1)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::reader::SourceReader;
    use crate::engine::reader::tests::{TempFile, csv_opts, read_all};
    use std::path::Path;

    fn lines_and_fields(data: &[u8]) -> Vec<(u64, u64, Vec<String>)> {
        let f = TempFile::with(data);
        let (_, items) = read_all(f.path(), &csv_opts(), None);
        items
            .into_iter()
            .map(|it| match it.body {
                RecordBody::Fields(r) => (it.line, it.record, r.iter().map(String::from).collect()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn csv_spectrum_cases_parse_to_their_expected_objects() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/csv-spectrum");
        if !dir.exists() {
            println!("skipped: {} is absent", dir.display());
            return;
        }
        let mut checked = 0;
        for entry in std::fs::read_dir(dir.join("csvs")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let (header, items) = read_all(&path, &csv_opts(), None);
            let header = header.unwrap();
            let got: Vec<Value> = items
                .iter()
                .map(|it| match &it.body {
                    RecordBody::Fields(r) => {
                        assert_eq!(r.len(), header.len(), "{name}");
                        Value::Object(
                            header
                                .iter()
                                .zip(r.iter())
                                .map(|(k, v)| (k.clone(), Value::String(v.to_owned())))
                                .collect(),
                        )
                    }
                    other => panic!("{name}: unexpected {other:?}"),
                })
                .collect();
            if name == "location_coordinates" {
                // Upstream's JSON does not match this CSV; the CSV is the truth.
                assert_eq!(got.len(), 1);
                assert_eq!(got[0]["Cities"], "Modesto");
                assert_eq!(
                    got[0]["Location Coordinates"],
                    "37\u{fffd}36'37.8\"N 121\u{fffd}2'17.9\"W"
                );
            } else {
                let want: Value = serde_json::from_slice(
                    &std::fs::read(dir.join("json").join(format!("{name}.json"))).unwrap(),
                )
                .unwrap();
                assert_eq!(Value::Array(got), want, "{name}");
            }
            checked += 1;
        }
        assert_eq!(checked, 12);
    }

    #[test]
    fn lines_count_quoted_newlines_crlf_and_blank_lines() {
        let data = b"a,b\r\n1,\"x\r\ny\"\r\n\r\n2,3\r\n\"p\nq\nr\",4\n\n\n5,6";
        assert_eq!(
            lines_and_fields(data),
            vec![
                (2, 1, strs(&["1", "x\r\ny"])),
                (5, 2, strs(&["2", "3"])),
                (6, 3, strs(&["p\nq\nr", "4"])),
                (11, 4, strs(&["5", "6"])),
            ]
        );
    }

    #[test]
    fn a_bom_is_stripped_and_header_names_are_trimmed() {
        let f = TempFile::with(b"\xEF\xBB\xBF id , name\n1,\xEF\xBB\xBFx\n");
        let (header, items) = read_all(f.path(), &csv_opts(), None);
        assert_eq!(header.unwrap(), strs(&["id", "name"]));
        match &items[0].body {
            RecordBody::Fields(r) => assert_eq!(r, &TextRecord::from_fields(["1", "\u{feff}x"])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_blank_line_is_skipped_only_when_the_header_has_several_fields() {
        assert_eq!(
            lines_and_fields(b"a,b\n1,2\n\"\"\n3,4\n"),
            vec![(2, 1, strs(&["1", "2"])), (4, 2, strs(&["3", "4"]))]
        );
        assert_eq!(
            lines_and_fields(b"a\n1\n\"\"\n3\n"),
            vec![
                (2, 1, strs(&["1"])),
                (3, 2, strs(&[""])),
                (4, 3, strs(&["3"]))
            ]
        );
    }

    #[test]
    fn an_empty_file_has_an_empty_header_and_no_items() {
        for data in [&b""[..], b"\xEF\xBB\xBF", b"\n\r\n\n"] {
            let f = TempFile::with(data);
            let (header, items) = read_all(f.path(), &csv_opts(), None);
            assert_eq!(header, Some(vec![]));
            assert!(items.is_empty());
        }
    }

    #[test]
    fn a_wrong_field_count_is_a_bad_record_with_what_could_be_recovered() {
        let f = TempFile::with(b"a,b\n1,2,3\n4\n5,6\n");
        let (_, items) = read_all(f.path(), &csv_opts(), None);
        assert_eq!(items.len(), 3);
        match &items[0].body {
            RecordBody::Bad { code, message, row } => {
                assert_eq!(*code, RowErrorCode::FieldCountMismatch);
                assert_eq!(message, "expected 2 fields, found 3");
                assert_eq!(
                    row,
                    &serde_json::json!({"a": "1", "b": "2", "field_3": "3"})
                );
            }
            other => panic!("{other:?}"),
        }
        match &items[1].body {
            RecordBody::Bad { code, message, row } => {
                assert_eq!(*code, RowErrorCode::FieldCountMismatch);
                assert_eq!(message, "expected 2 fields, found 1");
                assert_eq!(row, &serde_json::json!({"a": "4"}));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!((items[2].line, items[2].record), (4, 3));
    }

    #[test]
    fn invalid_utf8_names_the_field() {
        let f = TempFile::with(b"a,b\n1,x\xFFy\n");
        let (_, items) = read_all(f.path(), &csv_opts(), None);
        match &items[0].body {
            RecordBody::Bad { code, message, row } => {
                assert_eq!(*code, RowErrorCode::InvalidEncoding);
                assert_eq!(message, "field 2 (\"b\") is not valid UTF-8");
                assert_eq!(row, &serde_json::json!({"a": "1", "b": "x\u{fffd}y"}));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_oversized_field_is_a_bad_record_with_the_field_shortened() {
        let mut data = b"a,b\n1,".to_vec();
        data.extend(std::iter::repeat_n(b'x', 3000));
        data.extend(b"\n2,ok\n");
        let f = TempFile::with(&data);
        let mut opts = csv_opts();
        opts.max_field_bytes = 2048;
        let (_, items) = read_all(f.path(), &opts, None);
        match &items[0].body {
            RecordBody::Bad { code, message, row } => {
                assert_eq!(*code, RowErrorCode::FieldTooLarge);
                assert_eq!(
                    message,
                    "field 2 (\"b\") is 3000 bytes, over the 2 KiB field size limit"
                );
                assert_eq!(row["b"].as_str().unwrap().len(), 1000);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(items[1].body, RecordBody::Fields(_)));
    }

    #[test]
    fn text_after_a_closing_quote_is_a_malformed_record_not_joined_text() {
        let f = TempFile::with(b"a,b\n1,\"ab\"c\n2,\"o\"\"k\"\n3,x\"y\"\n");
        let (_, items) = read_all(f.path(), &csv_opts(), None);
        match &items[0].body {
            RecordBody::Bad { code, row, .. } => {
                assert_eq!(*code, RowErrorCode::MalformedRecord);
                assert_eq!(row, &serde_json::json!({"a": "1", "b": "abc"}));
            }
            other => panic!("{other:?}"),
        }
        let rest: Vec<_> = items[1..]
            .iter()
            .map(|it| match &it.body {
                RecordBody::Fields(r) => r.iter().map(String::from).collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(rest, vec![strs(&["2", "o\"k"]), strs(&["3", "x\"y\""])]);
    }

    #[test]
    fn a_quote_left_open_until_the_end_of_the_file_fails_the_read() {
        let f = TempFile::with(b"id,name\n1,A\n2,\"Bob\n3,C\n");
        let mut r = SourceReader::open(f.path(), &csv_opts(), None).unwrap();
        assert!(matches!(r.next_item(), Some(Ok(_))));
        match r.next_item() {
            Some(Err(ReadError::Malformed(m))) => assert!(m.contains("line 3"), "{m}"),
            other => panic!("expected a malformed-file error, got {other:?}"),
        }
        assert!(!ends_inside_quotes(b"1,5\" screen,\"a \"\"b\"\"\"\n", b','));
    }

    #[test]
    fn an_unterminated_quote_fails_at_the_record_size_limit() {
        let mut data = b"a,b\n1,2\n3,\"never closed\n".to_vec();
        for _ in 0..200_000 {
            data.extend(b"more,text\n");
        }
        let f = TempFile::with(&data);
        let mut opts = csv_opts();
        opts.max_record_bytes = 1024 * 1024;
        let mut r = SourceReader::open(f.path(), &opts, None).unwrap();
        assert!(matches!(r.next_item(), Some(Ok(_))));
        match r.next_item() {
            Some(Err(ReadError::Malformed(m))) => assert_eq!(
                m,
                "record starting at line 3 exceeds the 1 MiB record size limit (unterminated quote?)"
            ),
            other => panic!("{other:?}"),
        }
        assert!(r.next_item().is_none());
    }

    #[test]
    fn a_record_just_over_the_limit_is_refused_and_one_at_the_limit_passes() {
        for (len, ok) in [(100usize, true), (101, false)] {
            let mut data = b"a\n".to_vec();
            data.extend(std::iter::repeat_n(b'x', len - 1));
            data.extend(b"\ny\n");
            let f = TempFile::with(&data);
            let mut opts = csv_opts();
            opts.max_record_bytes = 100;
            let (_, items) = read_all(f.path(), &opts, None);
            assert_eq!(items.len(), 2, "{len}");
            let fields = matches!(items[0].body, RecordBody::Fields(_));
            assert_eq!(fields, ok, "{len}: {:?}", items[0].body);
            match &items[1].body {
                RecordBody::Fields(r) => assert_eq!(r, &TextRecord::from_fields(["y"])),
                other => panic!("{other:?}"),
            }
            assert_eq!((items[1].line, items[1].record), (3, 2), "{len}");
        }
    }

    #[test]
    fn an_oversized_record_is_a_row_error_and_the_reader_goes_on_after_it() {
        let mut data = b"id,note\r\n1,a\r\n\r\n2,\"".to_vec();
        data.extend(std::iter::repeat_n(b'x', 5000));
        data.extend(b"\r\nstill, inside \"\"quotes\"\"\",z\r\n3,b\r\n4,");
        data.extend(std::iter::repeat_n(b'y', 5000));
        data.extend(b"\r\n5,c");
        let f = TempFile::with(&data);
        let mut opts = csv_opts();
        opts.max_record_bytes = 1000;
        let (_, items) = read_all(f.path(), &opts, None);
        let got: Vec<_> = items
            .iter()
            .map(|it| {
                let what = match &it.body {
                    RecordBody::Fields(r) => r.iter().collect::<Vec<_>>().join("|"),
                    RecordBody::Bad { code, row, .. } => {
                        let raw = row["_raw"].as_str().unwrap_or("");
                        format!("{}:{}", code.as_str(), &raw[..raw.len().min(4)])
                    }
                    other => format!("{other:?}"),
                };
                (it.line, it.record, what)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (2, 1, "1|a".to_owned()),
                (4, 2, "record_too_large:2,\"x".to_owned()),
                (6, 3, "3|b".to_owned()),
                (7, 4, "record_too_large:4,yy".to_owned()),
                (8, 5, "5|c".to_owned()),
            ]
        );
        // A resume from the checkpoint after an oversized record reads on from there.
        let mut r = SourceReader::open(f.path(), &opts, None).unwrap();
        r.next_item();
        r.next_item();
        let cp = r.checkpoint();
        assert_eq!(cp.line, 6);
        let (_, rest) = read_all(f.path(), &opts, Some((cp, strs(&["id", "note"]))));
        assert_eq!(rest.len(), 3);
        assert_eq!((rest[0].line, rest[0].record), (6, 3));
    }

    #[test]
    fn tsv_and_headerless_sources_read_any_field_count() {
        let f = TempFile::with(b"1\t\"a\tb\"\n2\n");
        let opts = ReaderOptions {
            format: Format::Tsv,
            delimiter: b',',
            has_header: false,
            ..csv_opts()
        };
        let (header, items) = read_all(f.path(), &opts, None);
        assert_eq!(header, None);
        let got: Vec<_> = items
            .iter()
            .map(|it| match &it.body {
                RecordBody::Fields(r) => (it.line, r.iter().map(String::from).collect()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, vec![(1, strs(&["1", "a\tb"])), (2, strs(&["2"]))]);
    }

    #[test]
    fn resuming_on_a_field_that_starts_with_a_bom_keeps_it() {
        let f = TempFile::with(b"a\n1\n\xEF\xBB\xBFx\n");
        let opts = csv_opts();
        let mut r = SourceReader::open(f.path(), &opts, None).unwrap();
        r.next_item().unwrap().unwrap();
        let cp = r.checkpoint();
        assert_eq!(
            cp,
            Checkpoint {
                byte_offset: 4,
                line: 3,
                record: 1
            }
        );
        let (_, rest) = read_all(f.path(), &opts, Some((cp, strs(&["a"]))));
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].line, rest[0].record), (3, 2));
        match &rest[0].body {
            RecordBody::Fields(r) => assert_eq!(r, &TextRecord::from_fields(["\u{feff}x"])),
            other => panic!("{other:?}"),
        }
    }
}
