//! Deciding how to read a source from its first bytes, a declared format and its file name,
//! and refusing binary files (archives, spreadsheets, images, databases) early.

use super::Format;

/// How to read a source: its format and, for CSV/TSV, the delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub format: Format,
    pub delimiter: u8,
}

/// Magic numbers of binary formats people upload by mistake, with what to call them.
const MAGIC: &[(&[u8], &str)] = &[
    // A zip or workbook upload was unpacked when staged: these are archives inside one.
    (b"PK\x03\x04", "a zip archive inside a compressed file"),
    (b"\x1f\x8b", "a gzip file"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xFF\xD8\xFF", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\0", "an SQLite database"),
];

/// Delimiters tried, in order of preference.
const DELIMITERS: [u8; 4] = [b',', b'\t', b';', b'|'];

/// Whether a sample is binary data rather than text. Other encodings were converted to UTF-8
/// at upload, so text holds NUL bytes only by accident: a stray one is the error of the row
/// holding it (`invalid_encoding`), not a reason to refuse the file. Binary data is full of
/// them.
fn looks_binary(sample: &[u8]) -> bool {
    let nuls = sample.iter().filter(|&&b| b == 0).count();
    nuls >= 4 && nuls * 100 > sample.len()
}

/// How many complete lines the delimiter count looks at.
const SNIFF_LINES: usize = 20;

/// Decides how to read a source from its first bytes (up to 64 KiB), a declared format
/// (content type or option) and the file name; Err says why the source is unsupported.
pub fn sniff(
    sample: &[u8],
    declared: Option<Format>,
    delimiter: Option<u8>,
    file_name: Option<&str>,
) -> Result<Sniffed, String> {
    if let Some((_, kind)) = MAGIC.iter().find(|(magic, _)| sample.starts_with(magic)) {
        return Err(format!(
            "the file looks like {kind}, not text: upload CSV, TSV, NDJSON, JSON or a workbook \
             (xlsx, xls, ods), plain or gzip, zstd or zip compressed"
        ));
    }
    if looks_binary(sample) {
        return Err(
            "the file contains NUL bytes: it looks like a binary file, not CSV, TSV, NDJSON or \
             JSON text"
                .to_owned(),
        );
    }
    let text = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(sample);
    let format = declared
        .or_else(|| file_name.and_then(|name| by_extension(name, text)))
        .unwrap_or_else(|| by_content(text));
    let delimiter = match (format, delimiter) {
        (Format::Ndjson | Format::Json, _) => b',',
        (_, Some(d)) => d,
        (Format::Tsv, None) => b'\t',
        (Format::Csv, None) => sniff_delimiter(text),
    };
    let format = match format {
        Format::Csv | Format::Tsv if delimiter == b'\t' => Format::Tsv,
        Format::Csv | Format::Tsv => Format::Csv,
        other => other,
    };
    Ok(Sniffed { format, delimiter })
}

/// The format a file name's extension stands for.
fn by_extension(name: &str, text: &[u8]) -> Option<Format> {
    // A compressed file is named after what it holds: `orders.csv.gz`, `orders.csv.zst`.
    let lower = name.to_ascii_lowercase();
    let name = [".gz", ".zst", ".zstd"]
        .iter()
        .find_map(|ext| lower.strip_suffix(ext))
        .unwrap_or(&lower);
    let (_, ext) = name.rsplit_once('.')?;
    match ext.to_ascii_lowercase().as_str() {
        "csv" | "txt" => Some(Format::Csv),
        "tsv" | "tab" => Some(Format::Tsv),
        "ndjson" | "jsonl" => Some(Format::Ndjson),
        // NDJSON is often saved as .json: a first line holding a whole object says so.
        "json" if first_line_is_object(text) => Some(Format::Ndjson),
        "json" => Some(Format::Json),
        _ => None,
    }
}

/// Whether the first non-blank line of the sample is a complete JSON object.
fn first_line_is_object(text: &[u8]) -> bool {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let rest = &text[start..];
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        return false;
    };
    rest.first() == Some(&b'{')
        && serde_json::from_slice::<serde_json::Value>(&rest[..end]).is_ok_and(|v| v.is_object())
}

/// The format the first bytes suggest: JSON brackets, else delimited text.
fn by_content(text: &[u8]) -> Format {
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Format::Json,
        Some(b'{') => Format::Ndjson,
        _ => Format::Csv,
    }
}

/// The delimiter found the same non-zero number of times (outside quotes) on each of the
/// first lines, by preference; else the one most frequent on the first line; else a comma.
fn sniff_delimiter(text: &[u8]) -> u8 {
    let mut lines: Vec<[usize; 4]> = Vec::new();
    let mut counts = [0usize; 4];
    let mut in_quotes = false;
    let mut non_blank = false;
    for &b in text {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if in_quotes {
            continue;
        } else if b == b'\n' {
            if non_blank {
                lines.push(counts);
                if lines.len() == SNIFF_LINES {
                    break;
                }
            }
            counts = [0; 4];
            non_blank = false;
            continue;
        } else if let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
            counts[i] += 1;
        }
        if !b.is_ascii_whitespace() {
            non_blank = true;
        }
    }
    // Without a complete line (a one-line file), the partial line is all there is.
    if lines.is_empty() && non_blank {
        lines.push(counts);
    }
    let Some(first) = lines.first() else {
        return b',';
    };
    for (i, &d) in DELIMITERS.iter().enumerate() {
        if first[i] > 0 && lines.iter().all(|l| l[i] == first[i]) {
            return d;
        }
    }
    let mut best = 0;
    for i in 1..DELIMITERS.len() {
        if first[i] > first[best] {
            best = i;
        }
    }
    DELIMITERS[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(
        sample: &[u8],
        declared: Option<Format>,
        delim: Option<u8>,
        name: Option<&str>,
    ) -> (Format, u8) {
        let s = sniff(sample, declared, delim, name).unwrap();
        (s.format, s.delimiter)
    }

    #[test]
    fn binary_files_are_refused_by_name_whatever_was_declared() {
        let cases: &[(&[u8], &str)] = &[
            (b"PK\x03\x04\x14\x00", "zip archive"),
            (b"\x1f\x8b\x08\x00", "gzip file"),
            (b"%PDF-1.7\n", "PDF document"),
            (b"\x89PNG\r\n\x1a\n\0\0", "PNG image"),
            (b"\xFF\xD8\xFF\xE0", "JPEG image"),
            (b"GIF89a..", "GIF image"),
            (b"PAR1\x15\x04", "Parquet file"),
            (b"SQLite format 3\0\x10\0", "SQLite database"),
        ];
        for (sample, kind) in cases {
            let err = sniff(sample, Some(Format::Csv), None, Some("a.csv")).unwrap_err();
            assert!(
                err.contains(&format!("looks like a {kind}"))
                    || err.contains(&format!("looks like an {kind}")),
                "{err}"
            );
        }
        let blob: Vec<u8> = (0..4096u32).map(|i| (i % 7) as u8).collect();
        let err = sniff(&blob, Some(Format::Csv), None, None).unwrap_err();
        assert!(err.contains("NUL bytes"), "{err}");
        // A stray NUL in text is its row's error, read like any other byte.
        let mut text = b"id,name\n".to_vec();
        text.extend(b"1,abc\n".repeat(100));
        text.extend(b"2,\0\0\0\0\n");
        assert_eq!(ok(&text, None, None, None), (Format::Csv, b','));
    }

    #[test]
    fn a_declared_format_wins_over_the_name_and_content() {
        assert_eq!(
            ok(b"[1]", Some(Format::Csv), None, Some("x.json")),
            (Format::Csv, b',')
        );
        assert_eq!(
            ok(b"a,b\n", Some(Format::Json), None, Some("x.csv")),
            (Format::Json, b',')
        );
        assert_eq!(
            ok(b"a,b\n", Some(Format::Ndjson), Some(b';'), None),
            (Format::Ndjson, b',')
        );
        assert_eq!(
            ok(b"a,b\n", Some(Format::Tsv), None, None),
            (Format::Tsv, b'\t')
        );
        assert_eq!(
            ok(b"a;b\n1;2\n", Some(Format::Csv), None, None),
            (Format::Csv, b';')
        );
    }

    #[test]
    fn a_given_delimiter_is_used_as_is() {
        assert_eq!(ok(b"a,b\n", None, Some(b'|'), None), (Format::Csv, b'|'));
        assert_eq!(
            ok(b"a,b\n", Some(Format::Csv), Some(b'\t'), None),
            (Format::Tsv, b'\t')
        );
        assert_eq!(
            ok(b"a,b\n", None, Some(b'\t'), Some("x.csv")),
            (Format::Tsv, b'\t')
        );
    }

    #[test]
    fn the_extension_decides_next() {
        let csv = b"a,b\n1,2\n";
        assert_eq!(ok(b"[1]", None, None, Some("x.CSV")), (Format::Csv, b','));
        assert_eq!(ok(csv, None, None, Some("x.tsv")), (Format::Tsv, b'\t'));
        assert_eq!(ok(csv, None, None, Some("x.tab")), (Format::Tsv, b'\t'));
        assert_eq!(
            ok(csv, None, None, Some("x.ndjson")),
            (Format::Ndjson, b',')
        );
        assert_eq!(ok(csv, None, None, Some("x.jsonl")), (Format::Ndjson, b','));
        assert_eq!(ok(csv, None, None, Some("x.json")), (Format::Json, b','));
        assert_eq!(
            ok(b"a\tb\n1\t2\n", None, None, Some("x.txt")),
            (Format::Tsv, b'\t')
        );
        assert_eq!(ok(csv, None, None, Some("x.txt")), (Format::Csv, b','));
        // NDJSON saved as .json
        assert_eq!(
            ok(b"{\"a\":1}\n{\"a\":2}\n", None, None, Some("x.json")),
            (Format::Ndjson, b',')
        );
        assert_eq!(
            ok(b"{\n \"a\": 1\n}\n", None, None, Some("x.json")),
            (Format::Json, b',')
        );
        assert_eq!(ok(csv, None, None, Some("x.unknown")), (Format::Csv, b','));
    }

    #[test]
    fn content_decides_last() {
        assert_eq!(
            ok(b"\xEF\xBB\xBF \n [{\"a\":1}]", None, None, None),
            (Format::Json, b',')
        );
        assert_eq!(
            ok(b"\r\n{\"a\":1}\n", None, None, None),
            (Format::Ndjson, b',')
        );
        assert_eq!(ok(b"", None, None, None), (Format::Csv, b','));
        assert_eq!(ok(b"  \n", None, None, None), (Format::Csv, b','));
        assert_eq!(
            ok(b"justone\nvalue\n", None, None, None),
            (Format::Csv, b',')
        );
    }

    #[test]
    fn the_delimiter_is_the_one_counted_the_same_on_every_line() {
        assert_eq!(ok(b"a,b,c\n1,2,3\n", None, None, None), (Format::Csv, b','));
        assert_eq!(ok(b"a\tb\n1\t2\n", None, None, None), (Format::Tsv, b'\t'));
        assert_eq!(
            ok(b"a;b;c\n1,5;2;3\n4;5,5;6\n", None, None, None),
            (Format::Csv, b';')
        );
        assert_eq!(ok(b"a|b\n1|2\n", None, None, None), (Format::Csv, b'|'));
        // Quoted delimiters and newlines do not count.
        assert_eq!(
            ok(b"a;b\n\"x;y\n;z\";2\n3;4\n", None, None, None),
            (Format::Csv, b';')
        );
        // Commas and semicolons both consistent: the comma is preferred.
        assert_eq!(ok(b"a,b;c\n1,2;3\n", None, None, None), (Format::Csv, b','));
        // Nothing consistent: the most frequent on the first line.
        assert_eq!(ok(b"a;b;c\n1;2\n", None, None, None), (Format::Csv, b';'));
        // One line without a newline still counts.
        assert_eq!(ok(b"a\tb\tc", None, None, None), (Format::Tsv, b'\t'));
        // A partial last line is left out.
        assert_eq!(
            ok(b"a;b\n1;2\n3;4;5;6", None, None, None),
            (Format::Csv, b';')
        );
    }

    #[test]
    fn random_samples_never_panic() {
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..2000 {
            let sample: Vec<u8> = (0..(seed % 80))
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"\",;|\t\r\n{[ a\xEF\xBB\xBF"[(seed % 14) as usize]
                })
                .collect();
            let found = sniff(&sample, None, None, Some("x.json"));
            assert!(found.is_ok());
            seed = seed.wrapping_add(1);
        }
    }
}
