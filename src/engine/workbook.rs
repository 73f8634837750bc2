//! Spreadsheets (xlsx, xlsb, xls, ods): one sheet of a workbook becomes an NDJSON source the
//! engine reads like any other, one spreadsheet row per line.
//!
//! Line `n` of the converted source is row `n` of the sheet (rows above the first data row
//! are blank lines, which NDJSON readers skip), so the line of every row error is the
//! spreadsheet's row number and `Sheet1!C17` can be named from it. Cells keep the types the
//! workbook gave them: numbers are JSON numbers written exactly as the stored double (the
//! shortest text that reads back as the same double, so `42`, never `42.0`), dates and times
//! ISO 8601 text whatever their display format, formulas their cached values, booleans JSON
//! booleans; empty cells are null.
//!
//! calamine reads a whole sheet into memory, so a workbook is bounded twice: its upload size
//! ([`MAX_WORKBOOK_BYTES`]) and the size its parts inflate to ([`MAX_WORKBOOK_INFLATED`]),
//! checked by inflating each part before calamine sees it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::Path;

use calamine::{Data, Ods, Reader, Xls, Xlsb, Xlsx};
use serde::{Deserialize, Serialize};

/// The largest workbook accepted, in bytes as uploaded.
pub const MAX_WORKBOOK_BYTES: u64 = 32 << 20;
/// The most bytes a workbook's parts may inflate to: a sheet is held whole in memory while it
/// is converted (about 30 to 60 bytes of XML per cell; 256 MiB is several million cells).
pub const MAX_WORKBOOK_INFLATED: u64 = 256 << 20;

/// The spreadsheet formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkbookKind {
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

impl WorkbookKind {
    /// The format's name, as the import's `source` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkbookKind::Xlsx => "xlsx",
            WorkbookKind::Xlsb => "xlsb",
            WorkbookKind::Xls => "xls",
            WorkbookKind::Ods => "ods",
        }
    }
}

/// Why a workbook cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum WorkbookError {
    /// The workbook is larger than [`MAX_WORKBOOK_BYTES`] or inflates past
    /// [`MAX_WORKBOOK_INFLATED`].
    #[error("{0}")]
    TooLarge(String),
    /// The file cannot be read as the spreadsheet it looks like.
    #[error("the {kind} workbook cannot be read: {message}")]
    Damaged { kind: &'static str, message: String },
    /// The workbook was read, but its sheet cannot be loaded as it is (no such sheet, no
    /// header, a header named twice).
    #[error("{0}")]
    Sheet(String),
    #[error("the converted sheet could not be stored: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a converted sheet came from, stored with the input so that row errors can name
/// their cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetSource {
    pub kind: WorkbookKind,
    /// The sheet's name.
    pub sheet: String,
    /// The 0-based spreadsheet column of `fields[0]`.
    pub first_column: u32,
    /// The header of each column from `first_column` on; None for a column left out (no
    /// header and no value).
    pub fields: Vec<Option<String>>,
}

impl SheetSource {
    /// `Orders!C17` for an error of `line` about the field feeding table column `column`
    /// (a field feeds the column of its own name, of its name made a column name, or the one
    /// `mapping` sends it to); `Orders!17:17` for an error about the whole row.
    pub fn cell(
        &self,
        mapping: &std::collections::BTreeMap<String, Option<String>>,
        column: Option<&str>,
        line: u64,
    ) -> String {
        let sheet = quote_sheet(&self.sheet);
        let position = column.and_then(|column| {
            self.fields.iter().position(|field| {
                field.as_deref().is_some_and(|f| match mapping.get(f) {
                    Some(target) => target.as_deref() == Some(column),
                    None => f == column || crate::model::infer::column_name_for(f) == column,
                })
            })
        });
        match position {
            Some(i) => format!(
                "{sheet}!{}{line}",
                column_letters(self.first_column + i as u32)
            ),
            None => format!("{sheet}!{line}:{line}"),
        }
    }
}

/// A sheet name as a cell reference writes it: quoted when it holds anything but letters,
/// digits and underscores.
fn quote_sheet(name: &str) -> String {
    if name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        name.to_owned()
    } else {
        format!("'{}'", name.replace('\'', "''"))
    }
}

/// The letters of a 0-based column: A, …, Z, AA, AB, …
pub fn column_letters(mut index: u32) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// What a converted sheet holds.
#[derive(Debug)]
pub struct Converted {
    pub source: SheetSource,
    /// Bytes written.
    pub size: u64,
    /// The first bytes written, for sniffing.
    pub head: Vec<u8>,
}

/// Converts sheet `sheet` (a name, or a 1-based position when no sheet has that name; None:
/// the first) of the workbook at `path` into NDJSON at `out`.
pub fn convert(
    path: &Path,
    kind: WorkbookKind,
    sheet: Option<&str>,
    out: &Path,
    head_bytes: usize,
) -> Result<Converted, WorkbookError> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_WORKBOOK_BYTES {
        return Err(WorkbookError::TooLarge(format!(
            "the workbook is larger than the limit of {MAX_WORKBOOK_BYTES} bytes for \
             spreadsheets (a sheet is read whole into memory): save the sheet as CSV and \
             upload that"
        )));
    }
    if kind != WorkbookKind::Xls {
        check_inflated(path)?;
    }
    let damaged = |e: &dyn std::fmt::Display| WorkbookError::Damaged {
        kind: kind.as_str(),
        message: e.to_string(),
    };
    let reader = BufReader::new(File::open(path)?);
    let (name, range) = match kind {
        WorkbookKind::Xlsx => {
            read_sheet(Xlsx::new(reader).map_err(|e| damaged(&e))?, sheet, &damaged)?
        }
        WorkbookKind::Xlsb => {
            read_sheet(Xlsb::new(reader).map_err(|e| damaged(&e))?, sheet, &damaged)?
        }
        WorkbookKind::Xls => {
            read_sheet(Xls::new(reader).map_err(|e| damaged(&e))?, sheet, &damaged)?
        }
        WorkbookKind::Ods => {
            read_sheet(Ods::new(reader).map_err(|e| damaged(&e))?, sheet, &damaged)?
        }
    };
    write_sheet(&name, kind, &range, out, head_bytes)
}

/// Inflates each part of a zip-based workbook, counting, so that a small file inflating to
/// gigabytes is refused before calamine holds it in memory (the sizes an archive declares
/// may lie).
fn check_inflated(path: &Path) -> Result<(), WorkbookError> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path)?)).map_err(|e| {
        WorkbookError::Damaged {
            kind: "zip",
            message: e.to_string(),
        }
    })?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut part = archive.by_index(i).map_err(|e| WorkbookError::Damaged {
            kind: "zip",
            message: e.to_string(),
        })?;
        let left = MAX_WORKBOOK_INFLATED - total;
        total += std::io::copy(&mut (&mut part).take(left + 1), &mut std::io::sink())?;
        if total > MAX_WORKBOOK_INFLATED {
            return Err(WorkbookError::TooLarge(format!(
                "the workbook's parts inflate to more than {MAX_WORKBOOK_INFLATED} bytes, the \
                 limit for spreadsheets (a sheet is read whole into memory): save the sheet \
                 as CSV and upload that"
            )));
        }
    }
    Ok(())
}

/// Reads the chosen sheet whole.
fn read_sheet<R, W>(
    mut workbook: W,
    sheet: Option<&str>,
    damaged: &dyn Fn(&dyn std::fmt::Display) -> WorkbookError,
) -> Result<(String, calamine::Range<Data>), WorkbookError>
where
    R: Read + Seek,
    W: Reader<R>,
    W::Error: std::fmt::Display,
{
    let names = workbook.sheet_names();
    let name = match sheet {
        None => names.first().cloned(),
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .cloned()
            .or_else(|| {
                wanted
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .and_then(|n| names.get(n - 1).cloned())
            }),
    };
    let Some(name) = name else {
        let listed = names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(WorkbookError::Sheet(match sheet {
            None => "the workbook has no sheet".to_owned(),
            Some(wanted) => format!(
                "the workbook has no sheet {wanted:?}: its sheets are {listed} (name one, or \
                 give its position from 1)"
            ),
        }));
    };
    let range = workbook.worksheet_range(&name).map_err(|e| damaged(&e))?;
    Ok((name, range))
}

/// Writes the sheet as NDJSON, the header row naming the fields.
fn write_sheet(
    name: &str,
    kind: WorkbookKind,
    range: &calamine::Range<Data>,
    out: &Path,
    head_bytes: usize,
) -> Result<Converted, WorkbookError> {
    let quoted = quote_sheet(name);
    let Some((first_row, first_column)) = range.start() else {
        return Err(WorkbookError::Sheet(format!(
            "sheet {name:?} is empty: there is nothing to import"
        )));
    };
    let mut rows = range.rows();
    let header = rows.next().unwrap_or(&[]);
    let header_line = u64::from(first_row) + 1;
    let width = range.width();
    let mut fields: Vec<Option<String>> = Vec::with_capacity(width);
    for (i, cell) in header.iter().enumerate() {
        let letters = column_letters(first_column + i as u32);
        let text = match cell {
            Data::Empty => None,
            Data::String(s) if s.trim().is_empty() => None,
            other => Some(header_text(other).map_err(|m| {
                WorkbookError::Sheet(format!(
                    "the header cell {quoted}!{letters}{header_line} {m}"
                ))
            })?),
        };
        let text = match text {
            Some(t) => Some(t),
            // A column without a header but with values would lose them: say so.
            None if range
                .rows()
                .skip(1)
                .any(|row| !matches!(row.get(i), None | Some(Data::Empty))) =>
            {
                return Err(WorkbookError::Sheet(format!(
                    "column {letters} of sheet {name:?} has values but no header in row \
                     {header_line}: give it a name"
                )));
            }
            None => None,
        };
        if let Some(t) = &text
            && fields.iter().flatten().any(|f| f == t)
        {
            return Err(WorkbookError::Sheet(format!(
                "sheet {name:?} names column {t:?} twice in its header (row {header_line}): \
                 rename one"
            )));
        }
        fields.push(text);
    }
    let keys: Vec<Option<String>> = fields
        .iter()
        .map(|f| {
            f.as_ref()
                .map(|f| serde_json::Value::String(f.clone()).to_string())
        })
        .collect();
    let mut file = std::io::BufWriter::with_capacity(256 * 1024, File::create(out)?);
    let mut head = Vec::new();
    let mut size = 0u64;
    let mut line = Vec::with_capacity(4096);
    let mut emit = |line: &[u8], file: &mut std::io::BufWriter<File>| -> std::io::Result<()> {
        if head.len() < head_bytes {
            head.extend_from_slice(&line[..line.len().min(head_bytes - head.len())]);
        }
        size += line.len() as u64;
        file.write_all(line)
    };
    // Rows above the first data row are blank lines: line n is row n.
    for _ in 0..header_line {
        emit(b"\n", &mut file)?;
    }
    for (r, row) in rows.enumerate() {
        line.clear();
        if row.iter().all(|c| matches!(c, Data::Empty)) {
            line.push(b'\n');
            emit(&line, &mut file)?;
            continue;
        }
        line.push(b'{');
        let mut first = true;
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = key else { continue };
            if !first {
                line.push(b',');
            }
            first = false;
            line.extend_from_slice(key.as_bytes());
            line.push(b':');
            let cell = row.get(i).unwrap_or(&Data::Empty);
            json_cell(cell, &mut line).map_err(|m| {
                let at = header_line + 1 + r as u64;
                WorkbookError::Sheet(format!(
                    "cell {quoted}!{}{at} {m}",
                    column_letters(first_column + i as u32)
                ))
            })?;
        }
        line.extend_from_slice(b"}\n");
        emit(&line, &mut file)?;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(Converted {
        source: SheetSource {
            kind,
            sheet: name.to_owned(),
            first_column,
            fields,
        },
        size,
        head,
    })
}

/// A header cell as a field name.
fn header_text(cell: &Data) -> Result<String, String> {
    let mut text = Vec::new();
    json_cell(cell, &mut text)?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("cannot be read: {e}"))?;
    Ok(match value {
        serde_json::Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    })
}

/// Appends a cell as a JSON value; Err says why it cannot be one.
fn json_cell(cell: &Data, out: &mut Vec<u8>) -> Result<(), String> {
    match cell {
        Data::Empty => out.extend_from_slice(b"null"),
        Data::String(s) if s.is_empty() => out.extend_from_slice(b"null"),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => {
            string(s, out);
        }
        Data::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Data::Float(f) => out.extend_from_slice(number(*f)?.as_bytes()),
        Data::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Data::DateTime(dt) => string(&datetime(dt)?, out),
        // What the cell shows: a number or date column refuses it as that row's error.
        Data::Error(e) => string(&e.to_string(), out),
    }
    Ok(())
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        serde_json::Value::String(s.to_owned())
            .to_string()
            .as_bytes(),
    );
}

/// A stored double as the shortest decimal text that reads back as the same double, in
/// plain notation (`42`, `0.1`, `12345678901234500000`): the exact value the workbook holds.
fn number(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!(
            "holds {f}, which is not a number a table can store"
        ));
    }
    // Rust's Display is the shortest round-trip form, never an exponent; -0 is 0.
    Ok(if f == 0.0 {
        "0".to_owned()
    } else {
        f.to_string()
    })
}

/// A date-formatted cell as ISO 8601: a date, a date and time (to the millisecond when it has
/// one), a time of day (serials below 1), or a duration as `[h]:mm:ss`.
fn datetime(dt: &calamine::ExcelDateTime) -> Result<String, String> {
    let serial = dt.as_f64();
    if !serial.is_finite() {
        return Err(format!("holds {serial}, which is not a date"));
    }
    if dt.is_duration() {
        let ms = (serial * 86_400_000.0).round() as i64;
        let sign = if ms < 0 { "-" } else { "" };
        let ms = ms.unsigned_abs();
        let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        return Ok(if milli == 0 {
            format!("{sign}{h}:{m:02}:{s:02}")
        } else {
            format!("{sign}{h}:{m:02}:{s:02}.{milli:03}")
        });
    }
    let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
    let time = if ms == 0 {
        format!("{h:02}:{mi:02}:{s:02}")
    } else {
        format!("{h:02}:{mi:02}:{s:02}.{ms:03}")
    };
    // A time without a date (Excel stores it as a fraction of day 0).
    if (0.0..1.0).contains(&serial) {
        return Ok(time);
    }
    let date = format!("{y:04}-{mo:02}-{d:02}");
    Ok(if (h, mi, s, ms) == (0, 0, 0, 0) {
        date
    } else {
        format!("{date}T{time}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{ExcelDateTime, ExcelDateTimeType};

    #[test]
    fn numbers_are_written_exactly_and_never_as_floats_of_integers() {
        assert_eq!(number(42.0).as_deref(), Ok("42"));
        assert_eq!(number(-0.0).as_deref(), Ok("0"));
        assert_eq!(number(0.1).as_deref(), Ok("0.1"));
        assert_eq!(number(1234567.891).as_deref(), Ok("1234567.891"));
        assert_eq!(number(1.5e-7).as_deref(), Ok("0.00000015"));
        assert_eq!(
            number(12345678901234500000.0).as_deref(),
            Ok("12345678901234500000")
        );
        assert!(number(f64::NAN).is_err());
    }

    #[test]
    fn dates_times_and_durations_are_iso_text() {
        let at = |v, ty| datetime(&ExcelDateTime::new(v, ty, false));
        assert_eq!(
            at(45352.0, ExcelDateTimeType::DateTime).as_deref(),
            Ok("2024-03-01")
        );
        assert_eq!(
            at(45352.5, ExcelDateTimeType::DateTime).as_deref(),
            Ok("2024-03-01T12:00:00")
        );
        assert_eq!(
            at(0.75, ExcelDateTimeType::DateTime).as_deref(),
            Ok("18:00:00")
        );
        assert_eq!(
            at(1.5, ExcelDateTimeType::TimeDelta).as_deref(),
            Ok("36:00:00")
        );
    }

    #[test]
    fn cells_are_named_like_a_spreadsheet_names_them() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
        let source = SheetSource {
            kind: WorkbookKind::Xlsx,
            sheet: "Q1 Orders".into(),
            first_column: 1,
            fields: vec![Some("Order Id".into()), None, Some("total".into())],
        };
        let none = Default::default();
        assert_eq!(source.cell(&none, Some("order_id"), 17), "'Q1 Orders'!B17");
        assert_eq!(source.cell(&none, Some("total"), 3), "'Q1 Orders'!D3");
        assert_eq!(source.cell(&none, None, 3), "'Q1 Orders'!3:3");
        let mut mapping = std::collections::BTreeMap::new();
        mapping.insert("total".to_owned(), Some("amount".to_owned()));
        assert_eq!(source.cell(&mapping, Some("amount"), 9), "'Q1 Orders'!D9");
    }
}
