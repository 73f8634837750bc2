//! Text after a closing quote (`1,"ab"c`): the `csv` reader joins it to the quoted text and
//! answers `abc` without a word, so a row would land changed. The bytes handed to it are
//! watched here, and the record holding such text is refused as its row's error.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unquoted,
    Quoted,
    /// A quote inside quotes: a second one makes it a literal quote, anything else closes.
    QuoteInQuoted,
}

/// Follows RFC 4180 quoting over a CSV's bytes, in the order they are read, and notes where
/// text follows a closing quote.
#[derive(Debug)]
pub(super) struct StrayQuotes {
    delimiter: u8,
    state: State,
    /// The byte before the next one fed (a line end at the start: a record starts there).
    prev: u8,
    /// File offsets of bytes right after a closing quote that are neither a delimiter nor a
    /// line end, in file order.
    found: VecDeque<u64>,
}

impl StrayQuotes {
    /// A watcher starting at the start of a record.
    pub(super) fn new(delimiter: u8) -> StrayQuotes {
        StrayQuotes {
            delimiter,
            state: State::Unquoted,
            prev: b'\n',
            found: VecDeque::new(),
        }
    }

    /// Follows `bytes`, found at file offset `base`, on from the bytes fed before.
    pub(super) fn feed(&mut self, bytes: &[u8], base: u64) {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                // Only a quote at a field's start opens quotes; elsewhere it is a plain byte.
                State::Unquoted => {
                    let Some(q) = memchr::memchr(b'"', &bytes[i..]) else {
                        break;
                    };
                    let at = i + q;
                    let before = match at {
                        0 => self.prev,
                        _ => bytes[at - 1],
                    };
                    if self.ends_field(before) {
                        self.state = State::Quoted;
                    }
                    i = at + 1;
                }
                State::Quoted => match memchr::memchr(b'"', &bytes[i..]) {
                    Some(q) => {
                        i += q + 1;
                        self.state = State::QuoteInQuoted;
                    }
                    None => break,
                },
                State::QuoteInQuoted => {
                    let b = bytes[i];
                    if b == b'"' {
                        self.state = State::Quoted;
                    } else {
                        if !self.ends_field(b) {
                            self.found.push_back(base + i as u64);
                        }
                        self.state = State::Unquoted;
                    }
                    i += 1;
                }
            }
        }
        if let Some(&last) = bytes.last() {
            self.prev = last;
        }
    }

    /// Whether text after a closing quote was found in the record at file offsets
    /// `start..end`; forgets what was found before `end`.
    pub(super) fn take_in(&mut self, start: u64, end: u64) -> bool {
        let mut hit = false;
        while let Some(&off) = self.found.front() {
            if off >= end {
                break;
            }
            hit |= off >= start;
            self.found.pop_front();
        }
        hit
    }

    fn ends_field(&self, b: u8) -> bool {
        b == self.delimiter || b == b'\n' || b == b'\r'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets found in `data`, fed in chunks of `size` bytes.
    fn found(data: &[u8], size: usize) -> Vec<u64> {
        let mut w = StrayQuotes::new(b',');
        for (n, chunk) in data.chunks(size).enumerate() {
            w.feed(chunk, (n * size) as u64);
        }
        w.found.into_iter().collect()
    }

    #[test]
    fn text_after_a_closing_quote_is_found_wherever_the_chunks_split() {
        let data = b"1,\"ab\"c\n\"x\"\"y\",\"z\"\r\n2,a\"b\"c,\"q\" \n";
        for size in 1..=data.len() {
            assert_eq!(found(data, size), vec![6, 31], "chunks of {size}");
        }
    }

    #[test]
    fn well_quoted_and_unquoted_text_has_nothing_to_find() {
        let data = b"\"a,b\",\"c\nd\",e\"f\",\"\"\n\"\"\"\"\n";
        for size in 1..=data.len() {
            assert!(found(data, size).is_empty(), "chunks of {size}");
        }
    }

    #[test]
    fn a_record_takes_only_what_was_found_inside_it() {
        let mut w = StrayQuotes::new(b',');
        w.feed(b"\"a\"b\n\"c\"d\n", 0);
        assert!(!w.take_in(0, 0));
        assert!(w.take_in(0, 5));
        assert!(w.take_in(5, 10));
        assert!(!w.take_in(10, 20));
    }
}
