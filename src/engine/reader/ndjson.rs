//! NDJSON sources: one JSON value per line (LF or CRLF), blank lines skipped, each line read
//! into a reused buffer no larger than the record size limit.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use super::record::{RecordError, RecordParser};
use super::{
    Checkpoint, ReadError, ReadItem, ReaderOptions, RecordBody, human_size, object_body, raw_row,
    repeated_field, skip_bom, split_json_error,
};
use crate::model::RowErrorCode;

/// Reads an NDJSON file.
pub(super) struct NdjsonReader {
    input: BufReader<File>,
    line_buf: Vec<u8>,
    max_record: usize,
    /// Offset, line and record count of the next line.
    pos: Checkpoint,
    parser: RecordParser,
}

impl NdjsonReader {
    pub(super) fn open(
        mut file: File,
        opts: &ReaderOptions,
        resume: Option<Checkpoint>,
    ) -> Result<NdjsonReader, ReadError> {
        let pos = match resume {
            Some(cp) => {
                file.seek(SeekFrom::Start(cp.byte_offset))?;
                Checkpoint {
                    line: cp.line.max(1),
                    ..cp
                }
            }
            None => Checkpoint {
                byte_offset: skip_bom(&mut file)?,
                line: 1,
                record: 0,
            },
        };
        Ok(NdjsonReader {
            input: BufReader::with_capacity(64 * 1024, file),
            line_buf: Vec::new(),
            max_record: opts.max_record_bytes,
            pos,
            parser: RecordParser::default(),
        })
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        self.pos
    }

    pub(super) fn next_item(&mut self) -> Option<Result<ReadItem, ReadError>> {
        loop {
            let line = self.pos.line;
            let too_large = match self.read_line() {
                Ok(Some(too_large)) => too_large,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let content = trim_line_end(&self.line_buf);
            if !too_large && content.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            self.pos.record += 1;
            let body = if too_large {
                RecordBody::Bad {
                    code: RowErrorCode::RecordTooLarge,
                    message: format!(
                        "the line is longer than the {} record size limit",
                        human_size(self.max_record)
                    ),
                    row: raw_row(content),
                }
            } else {
                parse_line(&mut self.parser, content)
            };
            return Some(Ok(ReadItem {
                line,
                record: self.pos.record,
                body,
            }));
        }
    }

    /// Reads the next line into `line_buf` (at most the limit plus its line end) and moves
    /// past it; returns whether it was too long, None at the end of the file.
    fn read_line(&mut self) -> Result<Option<bool>, ReadError> {
        self.line_buf.clear();
        // Room for the limit and a CRLF: a line longer than that is too large.
        let cap = (self.max_record as u64).saturating_add(2);
        let n = (&mut self.input)
            .take(cap)
            .read_until(b'\n', &mut self.line_buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.pos.byte_offset += n as u64;
        let terminated = self.line_buf.last() == Some(&b'\n');
        let mut too_large = trim_line_end(&self.line_buf).len() > self.max_record;
        if !terminated && n as u64 == cap {
            too_large = true;
            // Skip the rest of the line without keeping it.
            let skipped = self.input.skip_until(b'\n')?;
            self.pos.byte_offset += skipped as u64;
        }
        self.pos.line += 1;
        Ok(Some(too_large))
    }
}

/// A line without its LF or CRLF.
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses one non-blank line.
fn parse_line(parser: &mut RecordParser, content: &[u8]) -> RecordBody {
    let text = match std::str::from_utf8(content) {
        Ok(text) => text,
        Err(e) => {
            return RecordBody::Bad {
                code: RowErrorCode::InvalidEncoding,
                message: format!(
                    "the line is not valid UTF-8 (invalid byte at column {})",
                    e.valid_up_to() + 1
                ),
                row: raw_row(content),
            };
        }
    };
    match parser.parse(text) {
        Ok(value) => object_body(value, text),
        Err(RecordError::Repeated(field)) => repeated_field(&field, content),
        Err(RecordError::Json(e)) => {
            let (msg, _, column) = split_json_error(&e);
            RecordBody::Bad {
                code: RowErrorCode::InvalidJson,
                message: format!("invalid JSON: {msg} at column {column}"),
                row: raw_row(content),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::reader::tests::{TempFile, ndjson_opts, read_all};
    use crate::engine::reader::{Format, SourceReader};
    use serde_json::json;
    use std::path::Path;

    fn bad(item: &ReadItem) -> (RowErrorCode, &str, &serde_json::Value) {
        match &item.body {
            RecordBody::Bad { code, message, row } => (*code, message.as_str(), row),
            other => panic!("expected a bad record, got {other:?}"),
        }
    }

    #[test]
    fn objects_bad_lines_and_blank_lines_get_their_lines_and_records() {
        let data = b"\xEF\xBB\xBF{\"a\":1}\r\n\r\n   \n[1,2]\n{\"a\": tru}\n{\"b\":\xFF}\n{\"c\":\"\xC3\xA9\"}";
        let f = TempFile::with(data);
        let (_, items) = read_all(f.path(), &ndjson_opts(), None);
        let pos: Vec<_> = items.iter().map(|it| (it.line, it.record)).collect();
        assert_eq!(pos, vec![(1, 1), (4, 2), (5, 3), (6, 4), (7, 5)]);
        assert_eq!(items[0].body.object(), json!({"a": 1}).as_object().cloned());
        assert_eq!(
            bad(&items[1]),
            (
                RowErrorCode::NotAnObject,
                "expected a JSON object, found an array",
                &json!({"_value": [1, 2]})
            )
        );
        assert_eq!(
            bad(&items[2]),
            (
                RowErrorCode::InvalidJson,
                "invalid JSON: expected ident at column 10",
                &json!({"_raw": "{\"a\": tru}"})
            )
        );
        let (code, message, _) = bad(&items[3]);
        assert_eq!(code, RowErrorCode::InvalidEncoding);
        assert_eq!(
            message,
            "the line is not valid UTF-8 (invalid byte at column 6)"
        );
        assert_eq!(
            items[4].body.object(),
            json!({"c": "é"}).as_object().cloned()
        );
    }

    #[test]
    fn a_line_over_the_limit_is_skipped_without_being_buffered() {
        let mut data = b"{\"a\":1}\n{\"big\":\"".to_vec();
        data.extend(std::iter::repeat_n(b'x', 300_000));
        data.extend(b"\"}\r\n{\"a\":2}\n");
        let f = TempFile::with(&data);
        let mut opts = ndjson_opts();
        opts.max_record_bytes = 64 * 1024;
        let mut r = SourceReader::open(f.path(), &opts, None).unwrap();
        r.next_item().unwrap().unwrap();
        let item = r.next_item().unwrap().unwrap();
        let (code, message, row) = bad(&item);
        assert_eq!(code, RowErrorCode::RecordTooLarge);
        assert_eq!(
            message,
            "the line is longer than the 64 KiB record size limit"
        );
        assert_eq!(row["_raw"].as_str().unwrap().chars().count(), 1000);
        let ndjson = match &r.inner {
            crate::engine::reader::Inner::Ndjson(n) => n,
            _ => unreachable!(),
        };
        assert!(ndjson.line_buf.capacity() < 200 * 1024);
        let item = r.next_item().unwrap().unwrap();
        assert_eq!((item.line, item.record), (3, 3));
        assert!(r.next_item().is_none());
        assert_eq!(r.checkpoint().byte_offset, data.len() as u64);
    }

    #[test]
    fn a_line_exactly_at_the_limit_passes_with_its_crlf() {
        let f = TempFile::with(b"{\"a\":1}\r\n{\"a\":22}\r\n");
        let mut opts = ndjson_opts();
        opts.max_record_bytes = 7;
        let (_, items) = read_all(f.path(), &opts, None);
        assert!(matches!(items[0].body, RecordBody::Object(..)));
        assert_eq!(bad(&items[1]).0, RowErrorCode::RecordTooLarge);
    }

    #[test]
    fn json_test_suite_lines_never_panic_and_reject_what_is_invalid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/JSONTestSuite/test_parsing");
        if !dir.exists() {
            println!("skipped: {} is absent", dir.display());
            return;
        }
        let opts = ReaderOptions {
            format: Format::Ndjson,
            ..ndjson_opts()
        };
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let content = std::fs::read(&path).unwrap();
            let (_, items) = read_all(&path, &opts, None);
            seen += 1;
            // Contents with line breaks are several NDJSON lines: only "no panic" applies.
            if content.iter().any(|&b| b == b'\n' || b == b'\r') {
                continue;
            }
            let is_object = serde_json::from_slice::<serde_json::Value>(&content)
                .map(|v| v.is_object())
                .unwrap_or(false);
            if name.starts_with("y_object_duplicated_key") {
                // Valid JSON, but which value is meant cannot be told: that row's error.
                assert_eq!(items.len(), 1, "{name}");
                assert_eq!(bad(&items[0]).0, RowErrorCode::DuplicateKey, "{name}");
            } else if name.starts_with("y_") && is_object {
                assert_eq!(items.len(), 1, "{name}");
                assert!(matches!(items[0].body, RecordBody::Object(..)), "{name}");
            } else if name.starts_with("n_") {
                assert!(
                    items
                        .iter()
                        .all(|it| matches!(it.body, RecordBody::Bad { .. })),
                    "{name}: {items:?}"
                );
            }
        }
        assert!(seen > 300);
    }
}
