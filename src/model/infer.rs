//! Schema inference for `POST /v1/schema/infer`: proposes column names, types, flags and a
//! primary key from a sample of rows.
//!
//! Every type guess is tried with the same `ColumnCoercer` imports use, so a proposed schema
//! accepts the rows it was inferred from.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;

use super::coerce::{CoerceError, ColumnCoercer};
use super::{ColumnSpec, ColumnType, Identifier, Value};

/// Longest column name (the `Identifier` limit).
const MAX_NAME: usize = 48;
/// Most distinct values a column may show to be proposed as an enum.
const ENUM_MAX_VALUES: usize = 10;
/// Fewest non-null values a column needs before it may be proposed as an enum.
const ENUM_MIN_SAMPLE: usize = 20;
/// Longest enum value (in characters) proposed.
const ENUM_MAX_VALUE_CHARS: usize = 40;
/// Most fractional digits a column may show to be proposed as decimal rather than float.
const DECIMAL_MAX_FRACTION: usize = 6;

/// One sampled cell: None for a null/empty cell, else text (CSV) or a JSON value (NDJSON/JSON).
#[derive(Debug, Clone, PartialEq)]
pub enum SampleCell {
    Text(String),
    Json(serde_json::Value),
}

/// A proposed table schema.
#[derive(Debug, Serialize)]
pub struct InferredSchema {
    pub columns: Vec<InferredColumn>,
    /// The proposed key: one column, or empty when no column qualifies.
    pub primary_key: Vec<String>,
    /// How many rows the proposal is based on.
    pub sampled_rows: usize,
}

/// A proposed column: its name, the source field it reads, its type and flags.
#[derive(Debug, Serialize)]
pub struct InferredColumn {
    pub name: String,
    pub source: String,
    #[serde(rename = "type")]
    pub r#type: ColumnType,
    pub required: bool,
    pub unique: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
}

/// Proposes a schema for a header and sampled rows (rows may be shorter than the header).
pub fn infer_schema(header: &[String], rows: &[Vec<Option<SampleCell>>]) -> InferredSchema {
    let probes = Probes::new();
    let names = unique_names(header);
    let mut columns = Vec::with_capacity(header.len());
    for (i, (source, name)) in header.iter().zip(names).enumerate() {
        let cells: Vec<&SampleCell> = rows
            .iter()
            .filter_map(|row| row.get(i).and_then(Option::as_ref))
            .filter(|cell| !is_blank(cell))
            .collect();
        let (ty, values) = choose_type(&probes, &cells);
        let unique = rows.len() >= 2 && !cells.is_empty() && all_distinct(ty, &values, &cells);
        columns.push(InferredColumn {
            name,
            source: source.clone(),
            r#type: ty,
            required: !rows.is_empty() && cells.len() == rows.len(),
            unique,
            values,
            max_length: None,
        });
    }
    let primary_key = columns
        .iter()
        .filter(|c| {
            c.required
                && c.unique
                && matches!(
                    c.r#type,
                    ColumnType::Integer | ColumnType::String | ColumnType::Uuid
                )
        })
        // min_by_key keeps the first of equals, so ties go to the leftmost column.
        .min_by_key(|c| key_rank(&c.name))
        .map(|c| vec![c.name.clone()])
        .unwrap_or_default();
    InferredSchema {
        columns,
        primary_key,
        sampled_rows: rows.len(),
    }
}

/// A column name for a source header: lowercase ASCII letters and digits, other runs turned
/// into one `_`, prefixed with `c_` when it would not start with a letter or would start with
/// the reserved `intake`, at most 48 characters. A header with no letter or digit gives
/// `column` (`infer_schema` numbers such columns by position instead).
pub fn column_name_for(source: &str) -> String {
    name_base(source).unwrap_or_else(|| "column".to_owned())
}

/// The name derived from a header, or None when it has no letter or digit.
fn name_base(source: &str) -> Option<String> {
    let mut out = String::with_capacity(source.len().min(MAX_NAME + 2));
    let mut separated = false;
    for c in source.chars() {
        if c.is_ascii_alphanumeric() {
            if separated && !out.is_empty() {
                out.push('_');
            }
            separated = false;
            out.push(c.to_ascii_lowercase());
        } else {
            separated = true;
        }
        // Enough to fill a name even after a `c_` prefix; the rest would be cut anyway.
        if out.len() > MAX_NAME {
            break;
        }
    }
    if out.is_empty() {
        return None;
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) || out.starts_with("intake") {
        out.insert_str(0, "c_");
    }
    let name = fit(&out, MAX_NAME);
    // The rules above produce valid names; the check keeps that true if the rules drift.
    Identifier::parse("column", &name).ok()?;
    Some(name)
}

/// `name` cut to `len` bytes (all ASCII) without a trailing `_`.
fn fit(name: &str, len: usize) -> String {
    name[..name.len().min(len)].trim_end_matches('_').to_owned()
}

/// Names for every header, made distinct with `_2`, `_3`… suffixes. A suffix never takes a
/// name another header derives, so `a, a, a_2` gives `a, a_3, a_2`.
fn unique_names(header: &[String]) -> Vec<String> {
    let bases: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| name_base(h).unwrap_or_else(|| format!("column_{}", i + 1)))
        .collect();
    let derived: HashSet<&str> = bases.iter().map(String::as_str).collect();
    let mut used: HashSet<String> = HashSet::with_capacity(bases.len());
    let mut names = Vec::with_capacity(bases.len());
    for base in &bases {
        let name = if used.contains(base) {
            (2..)
                .map(|k| {
                    let suffix = format!("_{k}");
                    format!("{}{suffix}", fit(base, MAX_NAME - suffix.len()))
                })
                .find(|n| !used.contains(n) && !derived.contains(n.as_str()))
                .unwrap_or_else(|| base.clone())
        } else {
            base.clone()
        };
        used.insert(name.clone());
        names.push(name);
    }
    names
}

/// Lower is a likelier key: `id`, then `…_id`, then key/code names, then anything else.
fn key_rank(name: &str) -> u8 {
    if name == "id" {
        0
    } else if name.ends_with("_id") {
        1
    } else if ["key", "code"]
        .iter()
        .any(|w| name == *w || name.strip_suffix(w).is_some_and(|p| p.ends_with('_')))
    {
        2
    } else {
        3
    }
}

/// One plain coercer per type guess, built once per inference.
struct Probes {
    integer: ColumnCoercer,
    float: ColumnCoercer,
    decimal: ColumnCoercer,
    boolean: ColumnCoercer,
    date: ColumnCoercer,
    datetime: ColumnCoercer,
    uuid: ColumnCoercer,
    email: ColumnCoercer,
    url: ColumnCoercer,
}

impl Probes {
    fn new() -> Probes {
        Probes {
            integer: probe(ColumnType::Integer, None),
            float: probe(ColumnType::Float, None),
            decimal: probe(ColumnType::Decimal, None),
            boolean: probe(ColumnType::Boolean, None),
            date: probe(ColumnType::Date, None),
            datetime: probe(ColumnType::Datetime, None),
            uuid: probe(ColumnType::Uuid, None),
            email: probe(ColumnType::Email, None),
            url: probe(ColumnType::Url, None),
        }
    }
}

/// A coercer for a column with no constraints (and the given enum values).
fn probe(ty: ColumnType, values: Option<Vec<String>>) -> ColumnCoercer {
    let spec = ColumnSpec {
        name: Identifier::parse("column", "sample").expect("\"sample\" is a valid name"),
        ty,
        required: false,
        unique: false,
        default: None,
        max_length: None,
        min_length: None,
        min: None,
        max: None,
        pattern: None,
        values,
    };
    // Without pattern or default only an enum without values can fail, which callers avoid.
    ColumnCoercer::new(&spec).expect("a column without constraints compiles")
}

fn coerce(c: &ColumnCoercer, cell: &SampleCell) -> Result<Value, CoerceError> {
    match cell {
        SampleCell::Text(s) => c.coerce_text(s),
        SampleCell::Json(v) => c.coerce_json(v),
    }
}

fn all_coerce(c: &ColumnCoercer, cells: &[&SampleCell]) -> bool {
    cells.iter().all(|cell| coerce(c, cell).is_ok())
}

/// The cell's text when it has one: text cells and JSON strings, trimmed.
fn cell_str(cell: &SampleCell) -> Option<&str> {
    match cell {
        SampleCell::Text(s) | SampleCell::Json(serde_json::Value::String(s)) => {
            Some(s.trim_ascii())
        }
        SampleCell::Json(_) => None,
    }
}

/// Null, empty and blank cells count as missing: every non-string type reads them so, and
/// calling a column with blanks optional is the safe guess for strings too.
fn is_blank(cell: &SampleCell) -> bool {
    match cell {
        SampleCell::Json(serde_json::Value::Null) => true,
        _ => cell_str(cell).is_some_and(str::is_empty),
    }
}

/// Text like `007` or `-0123`: leading zeros mark codes (postcodes, account numbers) whose
/// zeros a number column would lose.
fn has_leading_zero(cell: &SampleCell) -> bool {
    let Some(s) = cell_str(cell) else {
        return false;
    };
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    digits.len() >= 2 && digits[0] == b'0' && digits[1].is_ascii_digit()
}

/// A number written without exponent and with few enough fractional digits for `decimal`.
fn is_plain_number(cell: &SampleCell) -> bool {
    let text = match cell {
        SampleCell::Json(serde_json::Value::Number(n)) => n.to_string(),
        other => match cell_str(other) {
            Some(s) => s.to_owned(),
            None => return false,
        },
    };
    if text.contains(['e', 'E']) {
        return false;
    }
    let fraction = text.split_once('.').map_or(0, |(_, f)| f.len());
    fraction <= DECIMAL_MAX_FRACTION
}

fn is_boolean_word(cell: &SampleCell) -> bool {
    const WORDS: [&str; 8] = ["true", "false", "yes", "no", "t", "f", "y", "n"];
    match cell {
        SampleCell::Json(serde_json::Value::Bool(_)) => true,
        other => cell_str(other).is_some_and(|s| WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))),
    }
}

/// Hyphenated UUIDs only: the crate also reads 32 bare hex digits, which are more often
/// hashes than UUIDs.
fn is_hyphenated_uuid(cell: &SampleCell) -> bool {
    cell_str(cell).is_some_and(|s| {
        let b = s.as_bytes();
        b.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
    })
}

fn is_json_container(cell: &SampleCell) -> bool {
    match cell {
        SampleCell::Json(v) => v.is_object() || v.is_array(),
        SampleCell::Text(s) => {
            let s = s.trim_ascii();
            (s.starts_with('{') || s.starts_with('['))
                && serde_json::from_str::<serde_json::Value>(s).is_ok()
        }
    }
}

/// The type for a column's non-blank cells, with the values when it is an enum.
fn choose_type(p: &Probes, cells: &[&SampleCell]) -> (ColumnType, Option<Vec<String>>) {
    if cells.is_empty() {
        return (ColumnType::String, None);
    }
    let numeric_looking = !cells.iter().any(|c| has_leading_zero(c));
    if numeric_looking && all_coerce(&p.integer, cells) {
        return (ColumnType::Integer, None);
    }
    if numeric_looking && all_coerce(&p.float, cells) {
        if cells.iter().all(|c| is_plain_number(c)) && all_coerce(&p.decimal, cells) {
            return (ColumnType::Decimal, None);
        }
        return (ColumnType::Float, None);
    }
    if cells.iter().all(|c| is_boolean_word(c)) && all_coerce(&p.boolean, cells) {
        return (ColumnType::Boolean, None);
    }
    let guesses = [
        (ColumnType::Date, &p.date),
        (ColumnType::Datetime, &p.datetime),
        (ColumnType::Uuid, &p.uuid),
        (ColumnType::Email, &p.email),
        (ColumnType::Url, &p.url),
    ];
    for (ty, coercer) in guesses {
        let shaped = ty != ColumnType::Uuid || cells.iter().all(|c| is_hyphenated_uuid(c));
        if shaped && all_coerce(coercer, cells) {
            return (ty, None);
        }
    }
    // A string column refuses JSON objects and arrays, so one of them decides.
    let any_json_container = cells
        .iter()
        .any(|c| matches!(c, SampleCell::Json(v) if v.is_object() || v.is_array()));
    if any_json_container || cells.iter().all(|c| is_json_container(c)) {
        return (ColumnType::Json, None);
    }
    match enum_values(cells) {
        Some(values) => (ColumnType::Enum, Some(values)),
        None => (ColumnType::String, None),
    }
}

/// The sorted distinct values of a string column that looks like a small closed set.
fn enum_values(cells: &[&SampleCell]) -> Option<Vec<String>> {
    if cells.len() < ENUM_MIN_SAMPLE {
        return None;
    }
    let mut distinct: BTreeSet<String> = BTreeSet::new();
    for cell in cells {
        // Enum coercion trims text and reads JSON scalars as their text, so values are kept
        // in that form.
        let text = match cell {
            SampleCell::Json(serde_json::Value::Number(n)) => n.to_string(),
            SampleCell::Json(serde_json::Value::Bool(b)) => b.to_string(),
            other => cell_str(other)?.to_owned(),
        };
        if text.chars().count() > ENUM_MAX_VALUE_CHARS {
            return None;
        }
        distinct.insert(text);
        if distinct.len() > ENUM_MAX_VALUES {
            return None;
        }
    }
    let values: Vec<String> = distinct.into_iter().collect();
    // The proposal must accept its own sample.
    let check = probe(ColumnType::Enum, Some(values.clone()));
    all_coerce(&check, cells).then_some(values)
}

/// Whether the cells hold distinct values once coerced to the chosen type (so `1` and `1.0`
/// in an integer column are the same value).
fn all_distinct(ty: ColumnType, values: &Option<Vec<String>>, cells: &[&SampleCell]) -> bool {
    let c = probe(ty, values.clone());
    let mut seen: HashSet<String> = HashSet::with_capacity(cells.len());
    cells.iter().all(|cell| match coerce(&c, cell) {
        // Debug text is a faithful key for every variant, floats included.
        Ok(v) => seen.insert(format!("{v:?}")),
        Err(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Option<SampleCell> {
        Some(SampleCell::Text(s.to_owned()))
    }

    fn j(v: serde_json::Value) -> Option<SampleCell> {
        Some(SampleCell::Json(v))
    }

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Infers one column from text cells.
    fn one(cells: &[&str]) -> InferredColumn {
        let rows: Vec<Vec<Option<SampleCell>>> = cells
            .iter()
            .map(|c| vec![if c.is_empty() { None } else { t(c) }])
            .collect();
        one_of(rows)
    }

    /// Infers one column from given cells.
    fn one_of(rows: Vec<Vec<Option<SampleCell>>>) -> InferredColumn {
        let mut s = infer_schema(&header(&["col"]), &rows);
        s.columns.remove(0)
    }

    fn ty(cells: &[&str]) -> ColumnType {
        one(cells).r#type
    }

    fn json_ty(cells: Vec<serde_json::Value>) -> ColumnType {
        one_of(cells.into_iter().map(|v| vec![j(v)]).collect()).r#type
    }

    // names

    #[test]
    fn names_are_lowercased_with_separator_runs_collapsed() {
        assert_eq!(column_name_for("First Name"), "first_name");
        assert_eq!(column_name_for("  E-mail  Address!! "), "e_mail_address");
        assert_eq!(column_name_for("__id__"), "id");
        assert_eq!(column_name_for("Prix (€)"), "prix");
        assert_eq!(column_name_for("customerId"), "customerid");
    }

    #[test]
    fn names_start_with_a_letter_and_avoid_the_reserved_prefix() {
        assert_eq!(column_name_for("2021 sales"), "c_2021_sales");
        assert_eq!(column_name_for("Intake Date"), "c_intake_date");
        assert_eq!(column_name_for("intake"), "c_intake");
        assert_eq!(column_name_for("in take"), "in_take");
    }

    #[test]
    fn names_are_cut_to_48_characters_without_a_trailing_underscore() {
        let long = format!("{} b", "a".repeat(47));
        assert_eq!(column_name_for(&long), "a".repeat(47));
        let n = column_name_for(&"x".repeat(100));
        assert_eq!(n, "x".repeat(48));
        let digits = column_name_for(&"9".repeat(100));
        assert_eq!(digits.len(), 48);
        assert!(digits.starts_with("c_9"));
    }

    #[test]
    fn every_name_is_a_valid_identifier() {
        for h in [
            "A",
            "a__b",
            "_",
            "1",
            "Intake_x",
            "ÉTÉ 2020",
            "a-",
            "--a--b--",
            "x y z",
        ] {
            let n = column_name_for(h);
            assert!(Identifier::parse("column", &n).is_ok(), "{h:?} -> {n:?}");
        }
    }

    #[test]
    fn headers_without_letters_or_digits_are_numbered_by_position() {
        assert_eq!(column_name_for("???"), "column");
        let s = infer_schema(&header(&["a", "", "€"]), &[]);
        let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "column_2", "column_3"]);
        assert_eq!(s.columns[1].source, "");
    }

    #[test]
    fn colliding_names_get_numbered_suffixes() {
        let s = infer_schema(&header(&["Name", "name", "NAME!", "a", "a", "a_2"]), &[]);
        let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["name", "name_2", "name_3", "a", "a_3", "a_2"]);
    }

    #[test]
    fn suffixed_names_still_fit_in_48_characters() {
        let long = "y".repeat(60);
        let s = infer_schema(&header(&[&long, &long]), &[]);
        assert_eq!(s.columns[0].name, "y".repeat(48));
        assert_eq!(s.columns[1].name, format!("{}_2", "y".repeat(46)));
    }

    // types

    #[test]
    fn whole_numbers_are_integers() {
        assert_eq!(ty(&["1", "-20", "300", "4.0"]), ColumnType::Integer);
        assert_eq!(ty(&["0", "1", "1", "0"]), ColumnType::Integer);
        assert_eq!(
            json_ty(vec![json!(1), json!(2), json!("3")]),
            ColumnType::Integer
        );
    }

    #[test]
    fn numbers_with_leading_zeros_stay_strings() {
        assert_eq!(ty(&["01234", "02345", "12345"]), ColumnType::String);
        assert_eq!(ty(&["0.5", "0", "10"]), ColumnType::Decimal);
    }

    #[test]
    fn short_fractions_are_decimal_and_others_float() {
        assert_eq!(ty(&["1.5", "2", "3.123456"]), ColumnType::Decimal);
        assert_eq!(ty(&["1.5", "3.1234567"]), ColumnType::Float);
        assert_eq!(ty(&["1.5", "1e3"]), ColumnType::Float);
        assert_eq!(ty(&["99999999999999999999", "1"]), ColumnType::Decimal);
        assert_eq!(json_ty(vec![json!(1.25), json!(3)]), ColumnType::Decimal);
        assert_eq!(json_ty(vec![json!(1e-7), json!(3)]), ColumnType::Float);
    }

    #[test]
    fn boolean_words_are_booleans_but_not_on_off() {
        assert_eq!(
            ty(&["true", "False", "YES", "no", "t", "f", "y", "N"]),
            ColumnType::Boolean
        );
        assert_eq!(
            json_ty(vec![json!(true), json!(false), json!("yes")]),
            ColumnType::Boolean
        );
        assert_eq!(ty(&["on", "off"]), ColumnType::String);
        assert_eq!(ty(&["true", "maybe"]), ColumnType::String);
    }

    #[test]
    fn dates_and_datetimes_are_told_apart() {
        assert_eq!(ty(&["2024-01-01", "1999-12-31"]), ColumnType::Date);
        assert_eq!(
            ty(&["2024-01-01T10:00:00Z", "2024-01-02 11:30"]),
            ColumnType::Datetime
        );
        assert_eq!(
            ty(&["2024-01-01", "2024-01-02T10:00:00+02:00"]),
            ColumnType::Datetime
        );
        assert_eq!(ty(&["2024-02-30", "2024-01-01"]), ColumnType::String);
    }

    #[test]
    fn hyphenated_uuids_are_uuids_but_bare_hex_is_not() {
        assert_eq!(
            ty(&[
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"
            ]),
            ColumnType::Uuid
        );
        assert_eq!(
            ty(&[
                "67e5504410b1426f9247bb680e5fe0c8",
                "a0eebc999c0b4ef8bb6d6bb9bd380a11"
            ]),
            ColumnType::String
        );
    }

    #[test]
    fn emails_and_urls_are_recognised() {
        assert_eq!(
            ty(&["a@example.com", "b.c@mail.example.org"]),
            ColumnType::Email
        );
        assert_eq!(
            ty(&["https://example.com", "http://x.org/a"]),
            ColumnType::Url
        );
        assert_eq!(ty(&["a@example.com", "https://x.org"]), ColumnType::String);
    }

    #[test]
    fn json_containers_are_json() {
        assert_eq!(
            json_ty(vec![json!({"a": 1}), json!([1, 2])]),
            ColumnType::Json
        );
        assert_eq!(
            json_ty(vec![json!({"a": 1}), json!("text"), json!(3)]),
            ColumnType::Json
        );
        assert_eq!(ty(&[r#"{"a": 1}"#, "[1,2]"]), ColumnType::Json);
        assert_eq!(ty(&[r#"{"a": 1}"#, "plain"]), ColumnType::String);
    }

    #[test]
    fn anything_else_is_a_string() {
        assert_eq!(ty(&["alice", "bob", "42"]), ColumnType::String);
        assert_eq!(
            json_ty(vec![json!("x"), json!(1), json!(true)]),
            ColumnType::String
        );
    }

    #[test]
    fn a_column_with_no_values_is_an_optional_string() {
        let c = one(&["", "", ""]);
        assert_eq!(c.r#type, ColumnType::String);
        assert!(!c.required);
        assert!(!c.unique);
        let c = one_of(vec![vec![j(json!(null))], vec![t("  ")], vec![]]);
        assert_eq!(c.r#type, ColumnType::String);
        assert!(!c.required);
    }

    #[test]
    fn every_inferred_type_accepts_its_own_sample() {
        let samples: [&[&str]; 6] = [
            &["1", "2.0"],
            &["1.5", "2"],
            &["yes", "N"],
            &["2024-01-01T10:00"],
            &["https://x.org"],
            &[r#"{"a":1}"#],
        ];
        for cells in samples {
            let c = one(cells);
            let check = probe(c.r#type, c.values.clone());
            for cell in cells {
                assert!(check.coerce_text(cell).is_ok(), "{cell} as {:?}", c.r#type);
            }
        }
    }

    // enums

    fn repeated(values: &[&str], n: usize) -> Vec<String> {
        values
            .iter()
            .cycle()
            .take(n)
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn small_closed_sets_of_strings_become_sorted_enums() {
        let cells = repeated(&["open", "closed", "pending"], 20);
        let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
        let c = one(&refs);
        assert_eq!(c.r#type, ColumnType::Enum);
        assert_eq!(
            c.values,
            Some(vec!["closed".into(), "open".into(), "pending".into()])
        );
    }

    #[test]
    fn enums_need_twenty_values_at_most_ten_distinct_and_short_ones() {
        let few = repeated(&["a", "b"], 19);
        let refs: Vec<&str> = few.iter().map(String::as_str).collect();
        assert_eq!(ty(&refs), ColumnType::String);

        let names: Vec<String> = (0..11).map(|i| format!("v{i}")).collect();
        let many = repeated(&names.iter().map(String::as_str).collect::<Vec<_>>(), 30);
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(ty(&refs), ColumnType::String);

        let long = "l".repeat(41);
        let wide = repeated(&["a", &long], 20);
        let refs: Vec<&str> = wide.iter().map(String::as_str).collect();
        assert_eq!(ty(&refs), ColumnType::String);
    }

    #[test]
    fn enum_values_are_trimmed_like_enum_coercion_trims() {
        let cells = repeated(&[" red", "red ", "blue"], 21);
        let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
        let c = one(&refs);
        assert_eq!(c.values, Some(vec!["blue".into(), "red".into()]));
    }

    #[test]
    fn max_length_is_never_proposed() {
        assert_eq!(one(&["abc", "defgh"]).max_length, None);
    }

    // required and unique

    #[test]
    fn columns_without_nulls_are_required() {
        assert!(one(&["a", "b"]).required);
        assert!(!one(&["a", ""]).required);
        let short_row = one_of(vec![vec![t("a")], vec![]]);
        assert!(!short_row.required);
        let s = infer_schema(&header(&["a"]), &[]);
        assert!(!s.columns[0].required);
        assert_eq!(s.sampled_rows, 0);
    }

    #[test]
    fn columns_with_distinct_values_are_unique() {
        assert!(one(&["a", "b", "c"]).unique);
        assert!(!one(&["a", "b", "a"]).unique);
        assert!(one(&["a", "", "b"]).unique);
        assert!(!one(&["a"]).unique);
    }

    #[test]
    fn uniqueness_compares_coerced_values() {
        assert!(!one(&["1", "1.0", "2"]).unique);
        assert!(!one(&["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00"]).unique);
        // Strings are kept exactly, so padding makes a different value.
        assert!(one(&["x1", "x1 "]).unique);
    }

    // primary key

    fn key_of(names: &[&str], rows: Vec<Vec<Option<SampleCell>>>) -> Vec<String> {
        infer_schema(&header(names), &rows).primary_key
    }

    #[test]
    fn the_key_is_the_first_required_unique_column_of_a_key_type() {
        let rows = vec![
            vec![t("1.5"), t("x"), t("1")],
            vec![t("2.5"), t("y"), t("2")],
        ];
        assert_eq!(key_of(&["price", "label", "n"], rows), ["label"]);
    }

    #[test]
    fn key_like_names_are_preferred() {
        let rows = vec![
            vec![t("x"), t("10"), t("a"), t("7")],
            vec![t("y"), t("11"), t("b"), t("8")],
        ];
        assert_eq!(
            key_of(&["name", "order_code", "customer id", "id"], rows.clone()),
            ["id"]
        );
        assert_eq!(
            key_of(&["name", "order_code", "customer id", "n"], rows.clone()),
            ["customer_id"]
        );
        assert_eq!(
            key_of(&["name", "order_code", "x", "n"], rows.clone()),
            ["order_code"]
        );
        assert_eq!(key_of(&["name", "key", "x", "n"], rows), ["key"]);
    }

    #[test]
    fn columns_that_are_optional_duplicated_or_of_other_types_are_not_keys() {
        let rows = vec![
            vec![t("1"), t("a"), t("2024-01-01"), t("x")],
            vec![None, t("a"), t("2024-01-02"), t("x")],
        ];
        assert!(key_of(&["id", "code", "day", "name"], rows).is_empty());
        assert!(key_of(&["id"], vec![vec![t("1")]]).is_empty());
    }

    #[test]
    fn uuid_columns_can_be_keys() {
        let rows = vec![
            vec![t("67e55044-10b1-426f-9247-bb680e5fe0c8")],
            vec![t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")],
        ];
        assert_eq!(key_of(&["ref"], rows), ["ref"]);
    }

    #[test]
    fn the_schema_serialises_with_type_and_without_empty_options() {
        let rows = vec![vec![t("1"), t("a")], vec![t("2"), t("b")]];
        let s = infer_schema(&header(&["ID", "Name"]), &rows);
        let v = serde_json::to_value(&s).expect("serialises");
        assert_eq!(
            v,
            json!({
                "columns": [
                    {"name": "id", "source": "ID", "type": "integer", "required": true, "unique": true},
                    {"name": "name", "source": "Name", "type": "string", "required": true, "unique": true},
                ],
                "primary_key": ["id"],
                "sampled_rows": 2,
            })
        );
    }
}
