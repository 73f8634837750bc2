//! JSON sources: one top-level array of objects, read element by element. A byte scanner
//! tracking depth, strings and escapes finds each element's span and starting line; only that
//! element is buffered (up to the record size limit) and handed to serde_json.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use super::record::{RecordError, RecordParser};
use super::{
    Checkpoint, RAW_KEEP_CHARS, ReadError, ReadItem, ReaderOptions, RecordBody, human_size,
    object_body, raw_row, repeated_field, skip_bom, split_json_error,
};
use crate::model::RowErrorCode;

/// How far back a resumed reader looks for the start of its line (for error columns).
const LINE_START_LOOKBACK: u64 = 64 * 1024;

/// Where the scanner is in the array's structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// After `[`: an element or `]` comes next.
    Open,
    /// After an element: `,` or `]` comes next.
    AfterElement,
    /// The array ended (or reading failed): nothing more comes.
    Done,
}

/// Reads a JSON array file.
pub(super) struct JsonReader {
    input: BufReader<File>,
    state: State,
    /// Offset of the next unread byte and the physical line it is on.
    offset: u64,
    line: u64,
    /// Offset where the current line starts, when known (for error columns).
    line_start: Option<u64>,
    record: u64,
    element: Vec<u8>,
    max_record: usize,
    checkpoint: Checkpoint,
    parser: RecordParser,
}

impl JsonReader {
    pub(super) fn open(
        mut file: File,
        opts: &ReaderOptions,
        resume: Option<Checkpoint>,
    ) -> Result<JsonReader, ReadError> {
        let (offset, line, record, line_start) = match resume {
            Some(cp) => {
                let line = cp.line.max(1);
                let line_start = find_line_start(&mut file, cp.byte_offset, line)?;
                file.seek(SeekFrom::Start(cp.byte_offset))?;
                (cp.byte_offset, line, cp.record, line_start)
            }
            None => (skip_bom(&mut file)?, 1, 0, Some(0)),
        };
        let state = if record > 0 {
            State::AfterElement
        } else {
            State::Start
        };
        Ok(JsonReader {
            input: BufReader::with_capacity(64 * 1024, file),
            state,
            offset,
            line,
            line_start,
            record,
            element: Vec::new(),
            max_record: opts.max_record_bytes,
            checkpoint: Checkpoint {
                byte_offset: offset,
                line,
                record,
            },
            parser: RecordParser::default(),
        })
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    pub(super) fn next_item(&mut self) -> Option<Result<ReadItem, ReadError>> {
        match self.advance() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }

    fn advance(&mut self) -> Result<Option<ReadItem>, ReadError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Start => match self.skip_whitespace()? {
                    Some(b'[') => {
                        self.bump();
                        self.state = State::Open;
                    }
                    Some(b) => {
                        return Err(self.malformed(format!(
                            "a JSON source must be an array of objects, but it starts with {}",
                            describe(b)
                        )));
                    }
                    None => {
                        return Err(ReadError::Malformed(
                            "the JSON source is empty: expected an array of objects".into(),
                        ));
                    }
                },
                State::Open => match self.skip_whitespace()? {
                    Some(b']') => {
                        self.bump();
                        return self.finish();
                    }
                    Some(b) => return self.element(b).map(Some),
                    None => return Err(self.truncated()),
                },
                State::AfterElement => match self.skip_whitespace()? {
                    Some(b',') => {
                        self.bump();
                        match self.skip_whitespace()? {
                            Some(b']') => {
                                return Err(self.malformed(
                                    "a comma is followed by ']' instead of an element".into(),
                                ));
                            }
                            Some(b) => return self.element(b).map(Some),
                            None => return Err(self.truncated()),
                        }
                    }
                    Some(b']') => {
                        self.bump();
                        return self.finish();
                    }
                    Some(b) => {
                        return Err(self.malformed(format!(
                            "expected ',' or ']' after an array element, found {}",
                            describe(b)
                        )));
                    }
                    None => return Err(self.truncated()),
                },
            }
        }
    }

    /// After the closing `]`: only whitespace may follow.
    fn finish(&mut self) -> Result<Option<ReadItem>, ReadError> {
        match self.skip_whitespace()? {
            None => {
                self.state = State::Done;
                Ok(None)
            }
            Some(b) => Err(self.malformed(format!(
                "unexpected {} after the end of the array",
                describe(b)
            ))),
        }
    }

    /// Scans one element (the next byte is its first) and turns it into an item.
    fn element(&mut self, first: u8) -> Result<ReadItem, ReadError> {
        if matches!(first, b',' | b']' | b'}') {
            return Err(self.malformed(format!(
                "expected an array element, found {}",
                describe(first)
            )));
        }
        let start_line = self.line;
        let start_column = self.line_start.map(|s| self.offset.saturating_sub(s) + 1);
        let too_large = self.scan_element(first)?;
        self.record += 1;
        self.state = State::AfterElement;
        self.checkpoint = Checkpoint {
            byte_offset: self.offset,
            line: self.line,
            record: self.record,
        };
        let body = if too_large {
            RecordBody::Bad {
                code: RowErrorCode::RecordTooLarge,
                message: format!(
                    "the array element is larger than the {} record size limit",
                    human_size(self.max_record)
                ),
                row: raw_row(&self.element),
            }
        } else {
            self.parse_element(start_line, start_column)
        };
        Ok(ReadItem {
            line: start_line,
            record: self.record,
            body,
        })
    }

    fn parse_element(&mut self, start_line: u64, start_column: Option<u64>) -> RecordBody {
        if let Err(e) = std::str::from_utf8(&self.element) {
            return RecordBody::Bad {
                code: RowErrorCode::InvalidEncoding,
                message: format!(
                    "the array element is not valid UTF-8 (invalid byte {} bytes into it)",
                    e.valid_up_to()
                ),
                row: raw_row(&self.element),
            };
        }
        let text = String::from_utf8_lossy(&self.element);
        match self.parser.parse(&text) {
            Ok(value) => object_body(value, &text),
            Err(RecordError::Repeated(field)) => repeated_field(&field, &self.element),
            Err(RecordError::Json(e)) => {
                let (msg, line, column) = split_json_error(&e);
                let line = line as u64;
                let column = column as u64;
                let at_line = start_line + line.saturating_sub(1);
                // Columns on the element's first line count from where the element starts.
                let column = if line <= 1 {
                    start_column.map(|c| c + column.saturating_sub(1))
                } else {
                    Some(column)
                };
                let position = match column {
                    Some(c) => format!("line {at_line} column {c}"),
                    None => format!("line {at_line}"),
                };
                RecordBody::Bad {
                    code: RowErrorCode::InvalidJson,
                    message: format!("invalid JSON: {msg} at {position}"),
                    row: raw_row(&self.element),
                }
            }
        }
    }

    /// Finds the end of the element that starts at the next byte (`first`), keeping its bytes
    /// in `element` unless it outgrows the limit (then only a prefix for the rejected row).
    /// Returns whether it was too large.
    fn scan_element(&mut self, first: u8) -> Result<bool, ReadError> {
        self.element.clear();
        let start_line = self.line;
        let keep_when_large = RAW_KEEP_CHARS * 4;
        let mut too_large = false;
        let mut depth: u64 = 0;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                // A number or literal may end at the end of the file; the missing `]` is
                // then reported as a truncated array.
                if !matches!(first, b'{' | b'[' | b'"') && depth == 0 && !in_string {
                    return Ok(too_large);
                }
                return Err(ReadError::Malformed(format!(
                    "the JSON array is truncated: the element starting at line {start_line} \
                     is not closed"
                )));
            }
            let mut i = 0;
            let mut done = false;
            while i < buf.len() {
                let b = buf[i];
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            i += 1;
                            done = true;
                            break;
                        }
                    } else if b == b'\n' {
                        self.line += 1;
                        self.line_start = Some(self.offset + i as u64 + 1);
                    }
                    i += 1;
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        if depth == 0 {
                            // A scalar followed by the array's end: not part of it.
                            done = true;
                            break;
                        }
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            done = true;
                            break;
                        }
                    }
                    b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => {
                        done = true;
                        break;
                    }
                    b'\n' => {
                        self.line += 1;
                        self.line_start = Some(self.offset + i as u64 + 1);
                    }
                    _ => {}
                }
                i += 1;
            }
            let chunk = &buf[..i];
            if !too_large && self.element.len() + chunk.len() > self.max_record {
                too_large = true;
            }
            let room = if too_large {
                keep_when_large.saturating_sub(self.element.len())
            } else {
                chunk.len()
            };
            self.element
                .extend_from_slice(&chunk[..room.min(chunk.len())]);
            self.input.consume(i);
            self.offset += i as u64;
            if done {
                return Ok(too_large);
            }
        }
    }

    /// Skips whitespace; returns the next byte without consuming it (None at the end).
    fn skip_whitespace(&mut self) -> Result<Option<u8>, ReadError> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            let mut i = 0;
            let mut found = None;
            while i < buf.len() {
                match buf[i] {
                    b' ' | b'\t' | b'\r' => {}
                    b'\n' => {
                        self.line += 1;
                        self.line_start = Some(self.offset + i as u64 + 1);
                    }
                    b => {
                        found = Some(b);
                        break;
                    }
                }
                i += 1;
            }
            self.input.consume(i);
            self.offset += i as u64;
            if found.is_some() {
                return Ok(found);
            }
        }
    }

    /// Consumes one byte already seen (never a newline).
    fn bump(&mut self) {
        self.input.consume(1);
        self.offset += 1;
    }

    fn malformed(&self, what: String) -> ReadError {
        ReadError::Malformed(format!("line {}: {what}", self.line))
    }

    fn truncated(&self) -> ReadError {
        ReadError::Malformed(format!(
            "line {}: the JSON array is truncated: the file ends before its closing ']'",
            self.line
        ))
    }
}

/// A byte as shown in messages.
fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("byte 0x{b:02X}")
    }
}

/// The offset where the line holding `offset` starts, looking back a little (None if the
/// line started further back than that).
fn find_line_start(file: &mut File, offset: u64, line: u64) -> Result<Option<u64>, ReadError> {
    let from = offset.saturating_sub(LINE_START_LOOKBACK);
    file.seek(SeekFrom::Start(from))?;
    let mut back = Vec::new();
    file.take(offset - from).read_to_end(&mut back)?;
    Ok(match back.iter().rposition(|&b| b == b'\n') {
        Some(i) => Some(from + i as u64 + 1),
        None if line == 1 => Some(0),
        None if from == 0 => Some(0),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::reader::tests::{TempFile, json_opts, read_all};
    use crate::engine::reader::{ReadError, SourceReader};
    use serde_json::json;

    fn outcome(data: &[u8]) -> (Vec<ReadItem>, Option<String>) {
        let f = TempFile::with(data);
        let mut r = SourceReader::open(f.path(), &json_opts(), None).unwrap();
        let mut items = Vec::new();
        while let Some(next) = r.next_item() {
            match next {
                Ok(item) => items.push(item),
                Err(ReadError::Malformed(m)) => return (items, Some(m)),
                Err(e) => panic!("{e}"),
            }
        }
        (items, None)
    }

    fn obj(v: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
        v.as_object().cloned()
    }

    #[test]
    fn elements_across_lines_get_the_line_where_they_start() {
        let data = b"\xEF\xBB\xBF[\n  {\"a\": 1,\n   \"s\": \"x]}\\\"{\"},\n  {\"b\":\n [1, {\"c\": 2}]}, 3,\n\"str\" , null ]\n";
        let (items, err) = outcome(data);
        assert_eq!(err, None);
        let pos: Vec<_> = items.iter().map(|it| (it.line, it.record)).collect();
        assert_eq!(pos, vec![(2, 1), (4, 2), (5, 3), (6, 4), (6, 5)]);
        assert_eq!(items[0].body.object(), obj(json!({"a": 1, "s": "x]}\"{"})));
        assert_eq!(items[1].body.object(), obj(json!({"b": [1, {"c": 2}]})));
        for (item, value, kind) in [
            (&items[2], json!(3), "a number"),
            (&items[3], json!("str"), "a string"),
            (&items[4], json!(null), "null"),
        ] {
            assert_eq!(
                item.body,
                RecordBody::Bad {
                    code: RowErrorCode::NotAnObject,
                    message: format!("expected a JSON object, found {kind}"),
                    row: json!({ "_value": value }),
                }
            );
        }
    }

    #[test]
    fn an_empty_array_yields_nothing() {
        assert_eq!(outcome(b" [ ] \n").1, None);
        assert!(outcome(b"[]").0.is_empty());
    }

    #[test]
    fn an_invalid_element_is_a_bad_record_with_its_position() {
        let (items, err) = outcome(b"[{\"a\":1},\n  {\"a\": tru}, {\"a\":\n x}, {\"ok\":1}]");
        assert_eq!(err, None);
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[1].body,
            RecordBody::Bad {
                code: RowErrorCode::InvalidJson,
                message: "invalid JSON: expected ident at line 2 column 12".into(),
                row: json!({"_raw": "{\"a\": tru}"}),
            }
        );
        match &items[2].body {
            RecordBody::Bad { code, message, .. } => {
                assert_eq!(*code, RowErrorCode::InvalidJson);
                assert_eq!(message, "invalid JSON: expected value at line 3 column 2");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(items[3].body.object(), obj(json!({"ok": 1})));
    }

    #[test]
    fn a_source_that_is_not_an_array_is_malformed() {
        assert_eq!(
            outcome(b"\n{\"a\":1}\n").1.as_deref(),
            Some("line 2: a JSON source must be an array of objects, but it starts with '{'")
        );
        assert_eq!(
            outcome(b"").1.as_deref(),
            Some("the JSON source is empty: expected an array of objects")
        );
    }

    #[test]
    fn a_truncated_or_unbalanced_array_is_malformed() {
        let (items, err) = outcome(b"[{\"a\":1},\n{\"b\": [1,2}\n");
        assert_eq!(items.len(), 1);
        assert_eq!(
            err.as_deref(),
            Some("the JSON array is truncated: the element starting at line 2 is not closed")
        );
        let (items, err) = outcome(b"[{\"a\":1},\n{\"b\":2}\n");
        assert_eq!(items.len(), 2);
        assert_eq!(
            err.as_deref(),
            Some("line 3: the JSON array is truncated: the file ends before its closing ']'")
        );
        assert_eq!(
            outcome(b"[{\"a\":1} {\"b\":2}]").1.as_deref(),
            Some("line 1: expected ',' or ']' after an array element, found '{'")
        );
        assert_eq!(
            outcome(b"[,{\"a\":1}]").1.as_deref(),
            Some("line 1: expected an array element, found ','")
        );
        assert_eq!(
            outcome(b"[{\"a\":1}, }]").1.as_deref(),
            Some("line 1: expected an array element, found '}'")
        );
        assert_eq!(
            outcome(b"[{\"a\":1},]").1.as_deref(),
            Some("line 1: a comma is followed by ']' instead of an element")
        );
        assert_eq!(
            outcome(b"[{\"a\":1}]\n]").1.as_deref(),
            Some("line 2: unexpected ']' after the end of the array")
        );
        assert_eq!(
            outcome(b"[1").1.as_deref(),
            Some("line 1: the JSON array is truncated: the file ends before its closing ']'")
        );
        assert_eq!(
            outcome(b"[\"abc").1.as_deref(),
            Some("the JSON array is truncated: the element starting at line 1 is not closed")
        );
    }

    #[test]
    fn an_oversized_element_is_skipped_without_being_buffered() {
        let mut data = b"[{\"a\":1},\n{\"big\":[\"".to_vec();
        data.extend(std::iter::repeat_n(b'x', 500_000));
        data.extend(b"\", {\"]\": \"[\"}]},\n{\"a\":2}]");
        let f = TempFile::with(&data);
        let mut opts = json_opts();
        opts.max_record_bytes = 64 * 1024;
        let mut r = SourceReader::open(f.path(), &opts, None).unwrap();
        r.next_item().unwrap().unwrap();
        let item = r.next_item().unwrap().unwrap();
        match &item.body {
            RecordBody::Bad { code, message, row } => {
                assert_eq!(*code, RowErrorCode::RecordTooLarge);
                assert_eq!(
                    message,
                    "the array element is larger than the 64 KiB record size limit"
                );
                assert!(row["_raw"].as_str().unwrap().starts_with("{\"big\":[\"xxx"));
            }
            other => panic!("{other:?}"),
        }
        let json = match &r.inner {
            crate::engine::reader::Inner::Json(j) => j,
            _ => unreachable!(),
        };
        assert!(json.element.capacity() < 200 * 1024);
        let item = r.next_item().unwrap().unwrap();
        assert_eq!((item.line, item.record), (3, 3));
        assert_eq!(item.body.object(), obj(json!({"a": 2})));
        assert!(r.next_item().is_none());
    }

    #[test]
    fn resuming_past_the_first_line_keeps_error_columns() {
        let data = b"[\n{\"a\":1}, {\"a\":x}]";
        let f = TempFile::with(data);
        let opts = json_opts();
        let (_, all) = read_all(f.path(), &opts, None);
        let mut r = SourceReader::open(f.path(), &opts, None).unwrap();
        r.next_item().unwrap().unwrap();
        let (_, rest) = read_all(f.path(), &opts, Some((r.checkpoint(), vec![])));
        assert_eq!(rest, all[1..].to_vec());
        match &rest[0].body {
            RecordBody::Bad { message, .. } => {
                assert_eq!(message, "invalid JSON: expected value at line 2 column 15")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_test_suite_elements_never_panic_and_objects_are_accepted() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/JSONTestSuite/test_parsing");
        if !dir.exists() {
            println!("skipped: {} is absent", dir.display());
            return;
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let content = std::fs::read(&path).unwrap();
            let mut wrapped = b"[".to_vec();
            wrapped.extend(&content);
            wrapped.extend(b"\n]");
            let (items, err) = outcome(&wrapped);
            let is_object =
                serde_json::from_slice::<serde_json::Value>(&content).is_ok_and(|v| v.is_object());
            if name.starts_with("y_object_duplicated_key") {
                // Valid JSON, but which value is meant cannot be told: that row's error.
                assert_eq!(err, None, "{name}");
                assert!(
                    matches!(
                        items[0].body,
                        RecordBody::Bad {
                            code: RowErrorCode::DuplicateKey,
                            ..
                        }
                    ),
                    "{name}"
                );
            } else if name.starts_with("y_") && is_object {
                assert_eq!(err, None, "{name}");
                assert_eq!(items.len(), 1, "{name}");
                assert!(matches!(items[0].body, RecordBody::Object(..)), "{name}");
            }
        }
    }
}
