//! Tests across formats: resuming from every checkpoint, generated files and their
//! manifests, shared helpers for the per-format tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

/// A temporary file removed when dropped.
pub(crate) struct TempFile(tempfile::NamedTempFile);

impl TempFile {
    pub(crate) fn with(data: &[u8]) -> TempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        f.flush().unwrap();
        TempFile(f)
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

pub(crate) fn csv_opts() -> ReaderOptions {
    ReaderOptions {
        format: Format::Csv,
        delimiter: b',',
        has_header: true,
        max_field_bytes: 64 * 1024,
        max_record_bytes: 1024 * 1024,
    }
}

pub(crate) fn ndjson_opts() -> ReaderOptions {
    ReaderOptions {
        format: Format::Ndjson,
        ..csv_opts()
    }
}

pub(crate) fn json_opts() -> ReaderOptions {
    ReaderOptions {
        format: Format::Json,
        ..csv_opts()
    }
}

/// Every item of a source (panicking on a fatal error) and its header.
pub(crate) fn read_all(
    path: &Path,
    opts: &ReaderOptions,
    resume: Option<(Checkpoint, Vec<String>)>,
) -> (Option<Vec<String>>, Vec<ReadItem>) {
    let mut r = SourceReader::open(path, opts, resume).unwrap();
    let header = r.header().map(<[String]>::to_vec);
    let mut items = Vec::new();
    while let Some(item) = r.next_item() {
        items.push(item.unwrap());
    }
    (header, items)
}

/// Reads a source through, then reopens it at every checkpoint seen (the one after opening
/// included) and checks that the rest comes out identical.
fn assert_resumes_everywhere(data: &[u8], opts: &ReaderOptions) -> Vec<(Checkpoint, ReadItem)> {
    let f = TempFile::with(data);
    let mut r = SourceReader::open(f.path(), opts, None).unwrap();
    let header = r.header().map(<[String]>::to_vec).unwrap_or_default();
    let mut checkpoints = vec![r.checkpoint()];
    let mut items = Vec::new();
    while let Some(item) = r.next_item() {
        items.push(item.unwrap());
        checkpoints.push(r.checkpoint());
    }
    assert_eq!(r.bytes_total(), data.len() as u64);
    for (i, cp) in checkpoints.iter().enumerate() {
        let (_, rest) = read_all(f.path(), opts, Some((*cp, header.clone())));
        assert_eq!(rest, items[i..].to_vec(), "resumed at {cp:?}");
    }
    checkpoints.into_iter().zip(items).collect()
}

#[test]
fn csv_resumes_from_every_checkpoint_with_identical_items() {
    let data = b"\xEF\xBB\xBFid,note\r\n1,\"two\r\nlines\"\r\n\r\n2,plain\r\n3,\"x\"\"y\",extra\r\n4,\xFF\n\n5,last";
    let seen = assert_resumes_everywhere(data, &csv_opts());
    let lines: Vec<_> = seen.iter().map(|(_, it)| (it.line, it.record)).collect();
    assert_eq!(lines, vec![(2, 1), (5, 2), (6, 3), (7, 4), (9, 5)]);
    // Checkpoints are raw file offsets (BOM included) of the next line.
    let first = seen[0].0;
    assert_eq!(
        first,
        Checkpoint {
            byte_offset: 12,
            line: 2,
            record: 0
        }
    );
    assert_eq!(
        seen[1].0,
        Checkpoint {
            byte_offset: 28,
            line: 4,
            record: 1
        }
    );
    assert_eq!(&data[28..32], b"\r\n2,");
}

#[test]
fn csv_checkpoints_are_where_the_next_record_starts() {
    let data = b"a,b\n1,\"q\nq\"\n2,3\r\n4,5\r\n";
    let seen = assert_resumes_everywhere(data, &csv_opts());
    let offsets: Vec<_> = seen
        .iter()
        .map(|(cp, _)| (cp.byte_offset, cp.line))
        .collect();
    assert_eq!(offsets, vec![(4, 2), (12, 4), (17, 5)]);
}

#[test]
fn ndjson_resumes_from_every_checkpoint_with_identical_items() {
    let data = b"\xEF\xBB\xBF{\"a\":1}\r\n\r\n[2]\n{bad\n  \n{\"b\":\"\xFF\"}\n{\"c\":3}";
    let seen = assert_resumes_everywhere(data, &ndjson_opts());
    let lines: Vec<_> = seen.iter().map(|(_, it)| (it.line, it.record)).collect();
    assert_eq!(lines, vec![(1, 1), (3, 2), (4, 3), (6, 4), (7, 5)]);
}

#[test]
fn json_resumes_from_every_checkpoint_with_identical_items() {
    let data = b"\xEF\xBB\xBF[\n{\"a\":1},{\"a\":\n2}, 7,\n {\"a\": x},\n\n\"s\",{\"z\":[{}]}\n]\n";
    let seen = assert_resumes_everywhere(data, &json_opts());
    let lines: Vec<_> = seen.iter().map(|(_, it)| (it.line, it.record)).collect();
    assert_eq!(lines, vec![(2, 1), (2, 2), (3, 3), (4, 4), (6, 5), (6, 6)]);
}

#[test]
fn format_names_round_trip() {
    for f in [Format::Csv, Format::Tsv, Format::Ndjson, Format::Json] {
        assert_eq!(Format::parse(f.as_str()), Some(f));
    }
    assert_eq!(Format::parse("xlsx"), None);
    assert_eq!(human_size(8 * 1024 * 1024), "8 MiB");
    assert_eq!(human_size(1536), "1536 bytes");
    assert_eq!(human_size(2048), "2 KiB");
}

/// Runs the shared generator; None (after saying why) when it is absent.
fn generate(format: &str, rows: u32, dir: &Path) -> Option<PathBuf> {
    let gen_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen.py");
    if !gen_py.exists() {
        println!("skipped: {} is absent", gen_py.display());
        return None;
    }
    let out = dir.join(format!("orders.{format}"));
    let status = std::process::Command::new("python3")
        .arg(&gen_py)
        .args(["--rows", &rows.to_string(), "--invalid-rate", "0.01"])
        .args(["--format", format, "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        other => {
            println!("skipped: gen.py did not run ({other:?})");
            None
        }
    }
}

/// The generator's manifest: record number → physical line.
fn manifest(out: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(format!("{}.invalid.tsv", out.display())).unwrap();
    let mut lines = text.lines();
    let head: Vec<_> = lines.next().unwrap().split('\t').collect();
    let record = head.iter().position(|h| *h == "record").unwrap();
    let line = head.iter().position(|h| *h == "line").unwrap();
    lines
        .map(|l| {
            let cols: Vec<_> = l.split('\t').collect();
            (cols[record].parse().unwrap(), cols[line].parse().unwrap())
        })
        .collect()
}

#[test]
fn generated_files_read_every_record_on_the_manifest_lines() {
    let dir = tempfile::tempdir().unwrap();
    for (format, opts) in [("csv", csv_opts()), ("ndjson", ndjson_opts())] {
        let Some(out) = generate(format, 2000, dir.path()) else {
            return;
        };
        let (_, items) = read_all(&out, &opts, None);
        assert_eq!(items.len(), 2000, "{format}");
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item.record, i as u64 + 1);
            assert!(
                matches!(item.body, RecordBody::Fields(_) | RecordBody::Object(..)),
                "{format}: {item:?}"
            );
        }
        let expected = manifest(&out);
        assert_eq!(expected.len(), 20);
        for (record, line) in expected {
            let item = &items[record as usize - 1];
            assert_eq!(item.line, line, "{format} record {record}");
        }
    }
}

/// Every item of a source, and the fatal error that ended it if any.
fn outcome(
    path: &Path,
    opts: &ReaderOptions,
    resume: Option<(Checkpoint, Vec<String>)>,
) -> (Vec<(Checkpoint, ReadItem)>, Option<String>) {
    let mut r = match SourceReader::open(path, opts, resume) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut items = Vec::new();
    loop {
        let before = r.checkpoint();
        match r.next_item() {
            None => return (items, None),
            Some(Ok(item)) => items.push((before, item)),
            Some(Err(e)) => {
                assert!(r.next_item().is_none(), "a reader ends after an error");
                return (items, Some(e.to_string()));
            }
        }
    }
}

/// Random inputs made of the bytes that matter to the parsers, read with tiny limits: no
/// panic, and resuming from every checkpoint gives the same items and the same failure.
#[test]
fn random_inputs_never_panic_and_resume_identically() {
    const ALPHABET: &[u8] = b"\",,\r\n\n{}[]\\:a1 \t\xFF\xEF\xBB\xBF\xC3\xA9";
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let formats = [csv_opts(), ndjson_opts(), json_opts()];
    for round in 0..600 {
        let len = (next() % 60) as usize;
        let mut data: Vec<u8> = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        if round % 3 == 0 {
            data.insert(0, b'[');
        }
        let mut opts = formats[round % 3].clone();
        opts.has_header = round % 2 == 0;
        opts.max_field_bytes = 1 + (next() % 8) as usize;
        opts.max_record_bytes = 4 + (next() % 24) as usize;
        let f = TempFile::with(&data);
        let (items, failure) = outcome(f.path(), &opts, None);
        let header = SourceReader::open(f.path(), &opts, None)
            .ok()
            .and_then(|r| r.header().map(<[String]>::to_vec))
            .unwrap_or_default();
        for (i, (cp, _)) in items.iter().enumerate() {
            let (rest, rest_failure) = outcome(f.path(), &opts, Some((*cp, header.clone())));
            let rest: Vec<_> = rest.into_iter().map(|(_, it)| it).collect();
            let want: Vec<_> = items[i..].iter().map(|(_, it)| it.clone()).collect();
            assert_eq!(rest, want, "{:?} {data:?} resumed at {cp:?}", opts.format);
            assert_eq!(
                rest_failure, failure,
                "{:?} {data:?} resumed at {cp:?}",
                opts.format
            );
        }
    }
}

#[test]
fn a_source_reader_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<SourceReader>();
}
