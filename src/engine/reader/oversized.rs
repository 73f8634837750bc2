//! Finding where a CSV record over the size limit ends, without keeping it: the reader
//! reports that record as a row error and goes on with the next one, instead of failing the
//! whole file because one row holds a 10 MiB field.

use std::io::{self, BufRead};

/// Where an oversized record ends, counted from the byte the scan started at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RecordEnd {
    /// Bytes up to and including the record's line end (CR, LF or CRLF).
    pub len: u64,
    /// Line feeds before the record's first byte (blank lines).
    pub leading_lines: u64,
    /// Line feeds passed in all, its own line end included.
    pub lines: u64,
    /// The record's first bytes, for the row error (at most `keep`).
    pub head: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Line ends before the record's first byte.
    Before,
    /// In an unquoted part of a field; `at_start` when nothing of the field was read yet.
    Unquoted {
        at_start: bool,
    },
    Quoted,
    /// A quote inside quotes: a second one makes it a literal quote, anything else closes.
    QuoteInQuoted,
    /// The record ended on a CR: an LF right after belongs to it.
    AfterCr,
}

/// Reads `input` from a record's start, with RFC 4180 quoting as the `csv` reader applies it
/// (a quote opens a field only at its start; `""` inside quotes is a quote), to the end of
/// the record. Answers None when the input ends inside quotes: the record never ends.
pub(super) fn find_record_end(
    input: &mut impl BufRead,
    delimiter: u8,
    keep: usize,
) -> io::Result<Option<RecordEnd>> {
    let mut end = RecordEnd {
        len: 0,
        leading_lines: 0,
        lines: 0,
        head: Vec::new(),
    };
    let mut state = State::Before;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((state != State::Quoted).then_some(end));
        }
        let mut used = 0;
        let mut done = false;
        for &b in chunk {
            if state == State::AfterCr {
                if b == b'\n' {
                    used += 1;
                    end.lines += 1;
                }
                done = true;
                break;
            }
            used += 1;
            if b == b'\n' {
                end.lines += 1;
            }
            state = match state {
                State::Before if b == b'\n' || b == b'\r' => {
                    end.leading_lines += u64::from(b == b'\n');
                    State::Before
                }
                State::Before | State::Unquoted { .. } | State::QuoteInQuoted
                    if b == b'\n' || b == b'\r' =>
                {
                    if b == b'\n' {
                        done = true;
                        break;
                    }
                    State::AfterCr
                }
                State::Before | State::Unquoted { at_start: true } if b == b'"' => State::Quoted,
                State::QuoteInQuoted if b == b'"' => State::Quoted,
                State::Quoted if b == b'"' => State::QuoteInQuoted,
                State::Quoted => State::Quoted,
                _ => State::Unquoted {
                    at_start: b == delimiter,
                },
            };
            if !matches!(state, State::Before | State::AfterCr) && end.head.len() < keep {
                end.head.push(b);
            }
        }
        end.len += used as u64;
        input.consume(used);
        if done {
            return Ok(Some(end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(data: &[u8]) -> Option<RecordEnd> {
        // A tiny buffer: states must carry over from one chunk to the next.
        let mut input = io::BufReader::with_capacity(3, data);
        find_record_end(&mut input, b',', 8).expect("read")
    }

    #[test]
    fn a_record_ends_at_its_first_line_end_outside_quotes() {
        let end = scan(b"1,\"a\nb\"\"\n\",c\n2,x\n").expect("an end");
        assert_eq!((end.len, end.leading_lines, end.lines), (13, 0, 3));
        assert_eq!(end.head, b"1,\"a\nb\"\"");
    }

    #[test]
    fn crlf_lone_cr_and_the_end_of_the_input_end_a_record() {
        assert_eq!(scan(b"ab\r\nc\n").map(|e| (e.len, e.lines)), Some((4, 1)));
        assert_eq!(scan(b"ab\rc\n").map(|e| (e.len, e.lines)), Some((3, 0)));
        assert_eq!(scan(b"ab").map(|e| (e.len, e.lines)), Some((2, 0)));
        assert_eq!(scan(b"\"a\"\"\"").map(|e| e.len), Some(5));
    }

    #[test]
    fn blank_lines_before_the_record_are_counted_apart() {
        let end = scan(b"\n\r\nabc\nx\n").expect("an end");
        assert_eq!((end.len, end.leading_lines, end.lines), (7, 2, 3));
        assert_eq!(end.head, b"abc");
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_a_plain_byte() {
        let end = scan(b"a\"b,c\nd\"\n").expect("an end");
        assert_eq!(end.len, 6);
    }

    #[test]
    fn input_that_ends_inside_quotes_has_no_record_end() {
        assert_eq!(scan(b"1,\"never closed\nmore\n"), None);
    }
}
