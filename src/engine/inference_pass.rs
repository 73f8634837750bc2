//! The blocking pass of schema inference: every record of a stored source profiled once.
//!
//! A large delimited source is read in two halves at once, one per core: the second half
//! starts at the first line break past the middle, and counts only if the first half's reader,
//! reading on, ends a record exactly there (a line break inside a quoted field is no record
//! boundary: the first half then reads on to the end alone). The halves' profiles merge into
//! the profile of the whole, so the result never depends on the split.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::reader::{Checkpoint, ReaderOptions, RecordBody, SourceReader};
use crate::model::infer::{Claims, Inference, InferredSchema};

/// Below this size a source is read in one piece: a second thread would not pay for itself.
const SPLIT_FROM_BYTES: u64 = 8 << 20;
/// How far past the middle a line break is looked for.
const BREAK_SEARCH_BYTES: usize = 1 << 20;
/// Records between two looks at the stop flag (and two progress reports).
const CHECK_EVERY: u64 = 4096;

/// What the pass shares with the task watching it.
pub(super) struct Progress<'a> {
    /// Set when the import is cancelled or the process stops.
    pub stop: &'a AtomicBool,
    /// Bytes read so far, by every reader of the pass.
    pub bytes_read: &'a AtomicU64,
}

/// Profiles the whole source: its schema and the bytes read, None when stopped, or why the
/// source cannot be read.
pub(super) fn run(
    path: &Path,
    opts: &ReaderOptions,
    claims: Claims,
    null_values: &[String],
    progress: &Progress<'_>,
) -> Result<Option<(InferredSchema, u64)>, String> {
    let mut reader = SourceReader::open(path, opts, None).map_err(|e| e.to_string())?;
    let header: Vec<String> = if opts.has_header {
        reader.header().map(|h| h.to_vec()).unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut first = Inference::new(&header, claims, null_values);
    let total = reader.bytes_total();
    let split = (opts.format.is_delimited() && opts.has_header && total >= SPLIT_FROM_BYTES)
        .then(|| second_half_start(path, total / 2))
        .flatten();
    let Some(middle) = split else {
        let read = profile(&mut reader, &mut first, None, progress)?;
        return Ok(read.map(|read| (first.finish(), read)));
    };
    std::thread::scope(|scope| {
        let second = scope.spawn(|| -> Result<Option<Inference>, String> {
            crate::background::lower_this_thread();
            let at = Checkpoint {
                byte_offset: middle,
                line: 1,
                record: 0,
            };
            let mut reader = SourceReader::open(path, opts, Some((at, header.clone())))
                .map_err(|e| e.to_string())?;
            let mut inference = Inference::new(&header, claims, null_values);
            Ok(profile(&mut reader, &mut inference, None, progress)?.map(|_| inference))
        });
        let Some(at) = profile(&mut reader, &mut first, Some(middle), progress)? else {
            return Ok(None);
        };
        let joined = second
            .join()
            .map_err(|_| "the inference's second reader failed")?;
        match joined {
            // The halves meet at a record boundary: together they are the whole source.
            Ok(Some(later)) if at == middle => {
                first.merge(later);
                Ok(Some((first.finish(), total)))
            }
            Ok(None) => Ok(None),
            // The middle fell inside a record (or the second half could not be read from
            // there): the first reader goes on to the end alone.
            _ => {
                let read = profile(&mut reader, &mut first, None, progress)?;
                Ok(read.map(|read| (first.finish(), read)))
            }
        }
    })
}

/// The offset just past the first line break at or after `from`, if one comes soon.
fn second_half_start(path: &Path, from: u64) -> Option<u64> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut chunk = vec![0u8; BREAK_SEARCH_BYTES];
    let n = file.read(&mut chunk).ok()?;
    let at = chunk[..n].iter().position(|&b| b == b'\n')?;
    Some(from + at as u64 + 1)
}

/// Profiles records until the end (or until a record ends at or past `until`); answers the
/// offset reached, None when stopped.
fn profile(
    reader: &mut SourceReader,
    inference: &mut Inference,
    until: Option<u64>,
    progress: &Progress<'_>,
) -> Result<Option<u64>, String> {
    let mut reported = reader.checkpoint().byte_offset;
    let mut n = 0u64;
    let report = |reader: &SourceReader, reported: &mut u64| {
        let at = reader.checkpoint().byte_offset;
        progress
            .bytes_read
            .fetch_add(at.saturating_sub(*reported), Ordering::Relaxed);
        *reported = at;
    };
    loop {
        if until.is_some_and(|end| reader.checkpoint().byte_offset >= end) {
            break;
        }
        if !next_record(reader, inference)? {
            break;
        }
        n += 1;
        if n.is_multiple_of(CHECK_EVERY) {
            report(reader, &mut reported);
            if progress.stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
        }
    }
    report(reader, &mut reported);
    Ok(Some(reader.checkpoint().byte_offset))
}

/// Adds the next record to the inference; false at the end of the source.
fn next_record(reader: &mut SourceReader, inference: &mut Inference) -> Result<bool, String> {
    if let Some(record) = reader.next_fields() {
        // A record the load refuses whole (wrong field count, oversized field) is passed
        // over, and so is one that is not UTF-8: both are the load's row errors, not values.
        // A record is checked once; its fields are then slices of it (a field cut inside a
        // character, possible only in a record the load refuses, reads as empty).
        if let Some(record) = record.map_err(|e| e.to_string())?
            && let Ok(text) = std::str::from_utf8(record.as_slice())
        {
            let fields =
                (0..record.len()).map(|i| record.range(i).and_then(|r| text.get(r)).unwrap_or(""));
            inference.add_fields(fields);
        }
        return Ok(true);
    }
    let Some(item) = reader.next_item() else {
        return Ok(false);
    };
    match item.map_err(|e| e.to_string())?.body {
        RecordBody::Fields(rec) => inference.add_fields(rec.iter()),
        RecordBody::Object(obj) => {
            let fields = obj.to_values();
            inference.add_object(fields.iter().map(|(k, v)| (k, v)));
        }
        // A record that cannot be read is the load's row error, not a column.
        RecordBody::Bad { .. } => {}
    }
    Ok(true)
}
