//! Records read ahead on a thread of their own: parsing a source (CSV fields, JSON objects
//! read in place) and checking its records against the table take about the same time, so a
//! pass runs them on two threads, the parser a few chunks ahead of the validator, and both
//! cores stay busy while the writer waits for the database.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::super::reader::{Checkpoint, ReadItem, SourceReader};

/// Records per chunk sent from the parser to the validator: enough to make the hand-over
/// cheap per record, few enough that the validator starts at once.
const CHUNK_RECORDS: usize = 1024;

/// Source bytes per chunk at most: wide records make chunks of fewer records, so that the
/// chunks in flight stay small whatever the records hold.
const CHUNK_BYTES: u64 = 512 * 1024;

/// Chunks the parser may be ahead of the validator.
const CHUNKS_AHEAD: usize = 8;

/// What the parser read next.
pub(super) enum Read {
    /// A record, and where the source stands just after it.
    Record(ReadItem, Checkpoint),
    /// The source cannot be read further: why.
    Failed(String),
    /// The end of the source, and where the source stands at its end.
    End(Checkpoint),
}

/// A source being parsed ahead on its own thread; dropping it stops the thread and waits
/// for it.
pub(super) struct ReadAhead {
    chunks: Option<Receiver<Vec<Read>>>,
    current: std::vec::IntoIter<Read>,
    parser: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts parsing `reader` from where it stands.
    pub(super) fn start(reader: SourceReader) -> std::io::Result<ReadAhead> {
        let (tx, rx) = sync_channel(CHUNKS_AHEAD);
        let parser = std::thread::Builder::new()
            .name("intake-parse".to_owned())
            .spawn(move || {
                crate::background::lower_this_thread();
                parse(reader, &tx);
            })?;
        Ok(ReadAhead {
            chunks: Some(rx),
            current: Vec::new().into_iter(),
            parser: Some(parser),
        })
    }

    /// The next thing read; `None` only if the parser stopped without saying why (it
    /// panicked).
    pub(super) fn next(&mut self) -> Option<Read> {
        loop {
            if let Some(read) = self.current.next() {
                return Some(read);
            }
            let chunk = self.chunks.as_ref()?.recv().ok()?;
            self.current = chunk.into_iter();
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the channel first makes a parser blocked on a full channel stop.
        self.chunks = None;
        if let Some(parser) = self.parser.take() {
            let _ = parser.join();
        }
    }
}

/// The parser's loop: chunks of records until the end, a failure, or a closed channel.
fn parse(mut reader: SourceReader, tx: &SyncSender<Vec<Read>>) {
    let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
    let mut chunk_start = reader.checkpoint().byte_offset;
    loop {
        let read = match reader.next_item() {
            Some(Ok(item)) => Read::Record(item, reader.checkpoint()),
            Some(Err(e)) => Read::Failed(e.to_string()),
            None => Read::End(reader.checkpoint()),
        };
        let last = !matches!(read, Read::Record(..));
        chunk.push(read);
        let at = reader.checkpoint().byte_offset;
        if last || chunk.len() >= CHUNK_RECORDS || at.saturating_sub(chunk_start) >= CHUNK_BYTES {
            chunk_start = at;
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
            if tx.send(full).is_err() || last {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::reader::tests::{TempFile, csv_opts, ndjson_opts};
    use crate::engine::reader::{ReaderOptions, SourceReader};

    /// Every record of a source and the checkpoint after it, and the end's checkpoint,
    /// read directly.
    fn direct(
        path: &std::path::Path,
        opts: &ReaderOptions,
    ) -> (Vec<(ReadItem, Checkpoint)>, Checkpoint) {
        let mut reader = SourceReader::open(path, opts, None).unwrap();
        let mut out = Vec::new();
        while let Some(item) = reader.next_item() {
            out.push((item.unwrap(), reader.checkpoint()));
        }
        (out, reader.checkpoint())
    }

    /// The same, read ahead on the parser's thread; the end's checkpoint too.
    fn ahead(
        path: &std::path::Path,
        opts: &ReaderOptions,
    ) -> (Vec<(ReadItem, Checkpoint)>, Checkpoint) {
        let reader = SourceReader::open(path, opts, None).unwrap();
        let mut ahead = ReadAhead::start(reader).unwrap();
        let mut out = Vec::new();
        loop {
            match ahead.next() {
                Some(Read::Record(item, cp)) => out.push((item, cp)),
                Some(Read::End(cp)) => return (out, cp),
                Some(Read::Failed(why)) => panic!("failed: {why}"),
                None => panic!("the parser stopped without an end"),
            }
        }
    }

    #[test]
    fn records_read_ahead_are_the_records_read_directly_across_chunks() {
        let mut csv = String::from("id,name\n");
        let mut ndjson = String::new();
        // Over four chunks, a quoted line break, a blank line and a trailing one.
        for i in 0..1100 {
            csv.push_str(&format!("{i},\"n{i}\nx\"\n"));
            ndjson.push_str(&format!("{{\"id\":{i},\"name\":\"n{i}\"}}\n"));
            if i == 700 {
                ndjson.push('\n');
            }
        }
        csv.push('\n');
        for (data, opts) in [(csv, csv_opts()), (ndjson, ndjson_opts())] {
            let file = TempFile::with(data.as_bytes());
            let (expected, expected_end) = direct(file.path(), &opts);
            let (got, end) = ahead(file.path(), &opts);
            assert_eq!(got.len(), 1100);
            assert_eq!(got, expected);
            assert_eq!(end, expected_end);
            assert_eq!(end.record, 1100);
        }
    }

    #[test]
    fn a_source_that_fails_ends_with_why_after_its_good_records() {
        let file = TempFile::with(b"id,name\n1,a\n2,\"never closed\n");
        let reader = SourceReader::open(file.path(), &csv_opts(), None).unwrap();
        let mut ahead = ReadAhead::start(reader).unwrap();
        assert!(matches!(ahead.next(), Some(Read::Record(item, _)) if item.record == 1));
        assert!(matches!(ahead.next(), Some(Read::Failed(why)) if why.contains("line 3")));
        assert!(ahead.next().is_none());
    }

    #[test]
    fn dropping_a_reader_ahead_stops_its_parser() {
        let mut csv = String::from("id\n");
        for i in 0..100_000 {
            csv.push_str(&format!("{i}\n"));
        }
        let file = TempFile::with(csv.as_bytes());
        let reader = SourceReader::open(file.path(), &csv_opts(), None).unwrap();
        let mut ahead = ReadAhead::start(reader).unwrap();
        assert!(matches!(ahead.next(), Some(Read::Record(..))));
        // The parser is blocked on a full channel: dropping returns (it joins the thread).
        drop(ahead);
    }
}
