//! What one column's values have shown so far: which types every value still fits, how many
//! are missing, and whether they repeat. Built one cell at a time in bounded memory, so the
//! same profile serves a 1,000-row sample and a whole file.

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};

use serde_json::Value as Json;

use super::probes::Probes;
use crate::model::coerce::{ColumnCoercer, accepts_text, integer_text};
use crate::model::{ColumnType, Value};

/// Most distinct values a column may show to be proposed as an enum.
const ENUM_MAX_VALUES: usize = 10;
/// Fewest non-null values a column needs before it may be proposed as an enum.
const ENUM_MIN_VALUES: u64 = 20;
/// Longest enum value (in characters) proposed.
const ENUM_MAX_VALUE_CHARS: usize = 40;
/// Most fractional digits a column may show to be proposed as decimal rather than float.
const DECIMAL_MAX_FRACTION: usize = 6;
/// Most significant digits every binary float reads back exactly.
const FLOAT_EXACT_DIGITS: usize = 15;
/// Most distinct values remembered (as 64-bit hashes, about 19 MiB) to tell whether a column
/// repeats; past it the column is not a key unless its integers only increase.
const DISTINCT_LIMIT: usize = 1 << 20;
/// Most spellings of missing-value tokens remembered per column.
const TOKEN_SPELLINGS: usize = 16;

/// Cells that usually mean "no value" in files written by spreadsheets, R, pandas and
/// databases, compared without case. They count as missing only in a column whose other values
/// all fit a typed column: in a text column (a country code `NA`) they stay text.
pub const MISSING_TOKENS: [&str; 6] = ["NA", "N/A", "NULL", "None", "NaN", "#N/A"];

/// One cell, borrowed from the record it was read from.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// A field of a delimited source.
    Text(&'a str),
    /// A value of a JSON record.
    Json(&'a Json),
}

impl<'a> Cell<'a> {
    /// The cell's text when it has one: text cells and JSON strings, trimmed.
    fn text(self) -> Option<&'a str> {
        match self {
            Cell::Text(s) => Some(s.trim_ascii()),
            Cell::Json(Json::String(s)) => Some(s.trim_ascii()),
            Cell::Json(_) => None,
        }
    }

    /// The text a number cell is written with: JSON numbers keep theirs.
    fn number_text(self) -> Option<&'a str> {
        match self {
            Cell::Json(Json::Number(n)) => Some(n.as_str()),
            other => other.text(),
        }
    }

    fn is_blank(self) -> bool {
        match self {
            Cell::Json(Json::Null) => true,
            other => other.text().is_some_and(str::is_empty),
        }
    }

    fn coerce(self, c: &ColumnCoercer) -> Option<Value> {
        match self {
            Cell::Text(s) => c.coerce_text(s).ok(),
            Cell::Json(v) => c.coerce_json(v).ok(),
        }
    }

    /// Whether the cell is a value of `c`'s type (`c` has no constraints). Text is checked
    /// without building a value or an error: every cell of a file goes through here.
    fn fits(self, c: &ColumnCoercer) -> bool {
        match self.text() {
            Some(text) => accepts_text(c.spec().ty, text),
            None => self.coerce(c).is_some(),
        }
    }
}

/// Whether a trimmed cell is one of the usual missing-value tokens.
pub fn is_missing_token(text: &str) -> bool {
    // Every token is 2 to 4 bytes: most cells are passed over on their length.
    (2..=4).contains(&text.len()) && MISSING_TOKENS.iter().any(|t| text.eq_ignore_ascii_case(t))
}

/// The types a column's values may still all be, in the order they are preferred.
#[derive(Debug, Clone, Copy)]
struct Fits {
    integer: bool,
    float: bool,
    decimal: bool,
    boolean: bool,
    date: bool,
    datetime: bool,
    uuid: bool,
    email: bool,
    url: bool,
}

impl Fits {
    const ALL: Fits = Fits {
        integer: true,
        float: true,
        decimal: true,
        boolean: true,
        date: true,
        datetime: true,
        uuid: true,
        email: true,
        url: true,
    };
}

/// Hashes that are already 64-bit hashes: stored as they are, not hashed again.
#[derive(Debug, Default, Clone, Copy)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are written; anything else is folded in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // A bijection, so that integers (stored as themselves) spread over the buckets and
        // two of them collide only when equal.
        self.0 = (n ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
}

/// Whether a column's values are distinct, tracked as hashes of their typed form.
#[derive(Debug)]
struct Distinct {
    seen: HashSet<u64, BuildHasherDefault<Prehashed>>,
    /// A value came twice, or more came than are remembered.
    repeated: bool,
    /// The range of the integers that only increased from the first value on: they are
    /// distinct without being remembered (a sorted key costs no memory); once the run ends,
    /// a later integer inside it counts as a repeat.
    run: Option<(i64, i64)>,
}

impl Distinct {
    /// Remembers a key, noting a repeat (or one too many to remember).
    fn insert(&mut self, key: u64) {
        if !self.seen.insert(key) || self.seen.len() > DISTINCT_LIMIT {
            self.repeated = true;
            self.seen = HashSet::default();
        }
    }
}

/// The profile of one column.
#[derive(Debug)]
pub struct ColumnProfile {
    /// The field the column reads.
    pub source: String,
    /// Values that are not missing.
    pub present: u64,
    /// Empty, blank and null cells, and records without the field.
    pub blank: u64,
    /// Missing-value tokens (`NA`, `NULL`…), counted apart until the type is known.
    pub tokens: u64,
    /// The token spellings seen.
    pub token_spellings: BTreeSet<String>,
    /// Whether tokens are told apart at all (else they are values like any other).
    read_tokens: bool,
    fits: Fits,
    leading_zero: bool,
    /// Every number is written without exponent and with few fractional digits.
    plain_numbers: bool,
    /// Every number has few enough significant digits to read back exactly from a float.
    float_exact: bool,
    /// A JSON object or array came as a value.
    any_container: bool,
    /// Every value is a JSON object or array (or text holding one).
    all_containers: bool,
    /// The distinct values of a text column, while it could be an enum.
    enum_values: Option<BTreeSet<String>>,
    distinct: Option<Distinct>,
    /// Every value so far is an integer larger than the one before (a key in file order).
    increasing: bool,
    first_integer: Option<i64>,
    last_integer: Option<i64>,
}

impl ColumnProfile {
    /// A profile for a field first seen after `absent_before` records; `enums` tracks the
    /// distinct values an enum proposal needs, `distinct` whether values repeat.
    pub fn new(
        source: String,
        absent_before: u64,
        enums: bool,
        distinct: bool,
        read_tokens: bool,
    ) -> ColumnProfile {
        ColumnProfile {
            source,
            present: 0,
            blank: absent_before,
            tokens: 0,
            token_spellings: BTreeSet::new(),
            read_tokens,
            fits: Fits::ALL,
            leading_zero: false,
            plain_numbers: true,
            float_exact: true,
            any_container: false,
            all_containers: true,
            enum_values: enums.then(BTreeSet::new),
            distinct: distinct.then(|| Distinct {
                seen: HashSet::default(),
                repeated: false,
                run: None,
            }),
            increasing: true,
            first_integer: None,
            last_integer: None,
        }
    }

    /// Counts a record that does not have this field.
    pub fn add_absent(&mut self) {
        self.blank += 1;
    }

    /// Adds one cell; `missing` tells whether the caller's null settings read it as NULL.
    pub fn add(&mut self, probes: &Probes, cell: Cell<'_>, missing: bool) {
        if missing || cell.is_blank() {
            self.blank += 1;
            return;
        }
        if self.read_tokens
            && let Some(text) = cell.text()
            && is_missing_token(text)
        {
            self.tokens += 1;
            // Kept as written, spaces included: the load compares cells with them exactly.
            let raw = match cell {
                Cell::Text(s) => s,
                Cell::Json(Json::String(s)) => s.as_str(),
                Cell::Json(_) => text,
            };
            if self.token_spellings.len() < TOKEN_SPELLINGS && !self.token_spellings.contains(raw) {
                self.token_spellings.insert(raw.to_owned());
            }
            return;
        }
        self.present += 1;
        self.check_types(probes, cell);
        self.track_enum(cell);
    }

    fn check_types(&mut self, p: &Probes, cell: Cell<'_>) {
        let run_before = self
            .increasing
            .then_some(())
            .and(self.first_integer.zip(self.last_integer));
        let container = matches!(cell, Cell::Json(v) if v.is_object() || v.is_array());
        self.any_container |= container;
        if self.all_containers && !container {
            self.all_containers = cell.text().is_some_and(|s| {
                (s.starts_with('{') || s.starts_with('['))
                    && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
            });
        }
        let mut integer: Option<i64> = None;
        let f = &mut self.fits;
        if f.integer || f.float || f.decimal {
            let text = cell.number_text();
            if text.is_some_and(has_leading_zero) {
                self.leading_zero = true;
            }
            // An integer is also a float and a decimal: one parse decides all three.
            let read = match cell.text() {
                Some(text) if f.integer => integer_text(text),
                _ if f.integer => match cell.coerce(&p.integer) {
                    Some(Value::Int(n)) => Some(n),
                    _ => None,
                },
                _ => None,
            };
            if let Some(n) = read {
                self.increasing &= self.last_integer.is_none_or(|last| n > last);
                self.first_integer.get_or_insert(n);
                self.last_integer = Some(n);
                integer = Some(n);
            } else {
                f.integer = false;
                self.increasing = false;
                f.float = f.float && cell.fits(&p.float);
                f.decimal = f.decimal && cell.fits(&p.decimal);
            }
            if let Some(text) = text
                && (f.float || f.decimal)
                && (self.plain_numbers || self.float_exact)
            {
                let (plain, significant) = number_shape(text);
                self.plain_numbers &= plain;
                self.float_exact &= significant <= FLOAT_EXACT_DIGITS;
            }
        } else {
            self.increasing = false;
        }
        if f.boolean {
            f.boolean = is_boolean_word(cell) && cell.fits(&p.boolean);
        }
        if f.date {
            f.date = cell.fits(&p.date);
        }
        if f.datetime {
            f.datetime = cell.fits(&p.datetime);
        }
        if f.uuid {
            f.uuid = cell.text().is_some_and(is_hyphenated_uuid) && cell.fits(&p.uuid);
        }
        if f.email {
            f.email = cell.fits(&p.email);
        }
        if f.url {
            f.url = cell.fits(&p.url);
        }
        if let Some(d) = &mut self.distinct
            && !d.repeated
        {
            if self.increasing {
                // Still in the run of increasing integers: nothing to remember.
                return;
            }
            if d.run.is_none() {
                d.run = run_before;
            }
            // The key's form depends on the value alone, never on which types are still
            // possible when it comes: `1` read as an integer early and `"1"` read as text
            // later (or a JSON 1) are the same key.
            let integer = integer.or_else(|| cell.number_text().and_then(integer_text));
            let key = match integer {
                Some(n) => {
                    if d.run.is_some_and(|(lo, hi)| (lo..=hi).contains(&n)) {
                        d.repeated = true;
                        d.seen = HashSet::default();
                        return;
                    }
                    n as u64
                }
                // Datetimes and UUIDs equal once typed are the same key; other values are
                // hashed (a collision only costs a key, never a row).
                None => match (cell.coerce(&p.datetime), cell.coerce(&p.uuid), cell) {
                    (Some(Value::Datetime(t)), _, _) => hash_of((1u8, t.unix_timestamp_nanos())),
                    (_, Some(Value::Uuid(u)), _) => hash_of((2u8, u)),
                    (_, _, Cell::Text(s)) => hash_of((3u8, s)),
                    (_, _, Cell::Json(Json::String(s))) => hash_of((3u8, s.as_str())),
                    (_, _, Cell::Json(v)) => hash_of((4u8, v.to_string())),
                },
            };
            d.insert(key);
        }
    }

    /// Adds the profile of the same column over the records that follow.
    pub fn merge(&mut self, later: ColumnProfile) {
        self.present += later.present;
        self.blank += later.blank;
        self.tokens += later.tokens;
        for t in later.token_spellings {
            if self.token_spellings.len() < TOKEN_SPELLINGS {
                self.token_spellings.insert(t);
            }
        }
        let (f, g) = (&mut self.fits, later.fits);
        f.integer &= g.integer;
        f.float &= g.float;
        f.decimal &= g.decimal;
        f.boolean &= g.boolean;
        f.date &= g.date;
        f.datetime &= g.datetime;
        f.uuid &= g.uuid;
        f.email &= g.email;
        f.url &= g.url;
        self.leading_zero |= later.leading_zero;
        self.plain_numbers &= later.plain_numbers;
        self.float_exact &= later.float_exact;
        self.any_container |= later.any_container;
        self.all_containers &= later.all_containers;
        self.enum_values = match (self.enum_values.take(), later.enum_values) {
            (Some(mut mine), Some(theirs)) => {
                mine.extend(theirs);
                (mine.len() <= ENUM_MAX_VALUES).then_some(mine)
            }
            _ => None,
        };
        // Each side's integers are its run (remembered as a range) and its set.
        let my_run = self.distinct.as_ref().and_then(|d| d.run).or(self
            .increasing
            .then_some(())
            .and(self.first_integer.zip(self.last_integer)));
        let their_run = later.distinct.as_ref().and_then(|d| d.run).or(later
            .increasing
            .then_some(())
            .and(later.first_integer.zip(later.last_integer)));
        self.distinct = match (self.distinct.take(), later.distinct) {
            (Some(mut mine), Some(theirs)) => {
                mine.repeated |= theirs.repeated;
                let inside = |run: Option<(i64, i64)>, key: u64| {
                    run.is_some_and(|(lo, hi)| (lo..=hi).contains(&(key as i64)))
                };
                // Runs that overlap, or a remembered value inside the other side's run, may
                // repeat: counted as a repeat (which costs a key at most).
                let overlap = match (my_run, their_run) {
                    (Some((a, b)), Some((c, d))) => a <= d && c <= b,
                    _ => false,
                };
                if overlap
                    || mine.seen.iter().any(|&k| inside(their_run, k))
                    || theirs.seen.iter().any(|&k| inside(my_run, k))
                {
                    mine.repeated = true;
                }
                if !mine.repeated {
                    for key in theirs.seen {
                        mine.insert(key);
                        if mine.repeated {
                            break;
                        }
                    }
                }
                mine.run = match (my_run, their_run) {
                    (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                    (run, None) | (None, run) => run,
                };
                Some(mine)
            }
            _ => None,
        };
        let joined = match (self.last_integer, later.first_integer) {
            (Some(last), Some(first)) => first > last,
            _ => true,
        };
        self.increasing = self.increasing && later.increasing && joined;
        self.first_integer = self.first_integer.or(later.first_integer);
        self.last_integer = later.last_integer.or(self.last_integer);
    }

    fn track_enum(&mut self, cell: Cell<'_>) {
        let Some(values) = &mut self.enum_values else {
            return;
        };
        // Enum coercion trims text and reads JSON scalars as their text, so values are kept
        // in that form.
        let text = match cell {
            Cell::Json(Json::Number(n)) => Some(n.as_str()),
            Cell::Json(Json::Bool(b)) => Some(if *b { "true" } else { "false" }),
            other => other.text(),
        };
        match text {
            Some(t) if t.chars().count() <= ENUM_MAX_VALUE_CHARS => {
                if !values.contains(t) {
                    values.insert(t.to_owned());
                }
                if values.len() > ENUM_MAX_VALUES {
                    self.enum_values = None;
                }
            }
            _ => self.enum_values = None,
        }
    }

    /// The narrowest type every present value fits, with the values when it is an enum
    /// (`enums` allows one).
    pub fn choose_type(&self, enums: bool) -> (ColumnType, Option<Vec<String>>) {
        let f = &self.fits;
        if self.present == 0 {
            return (ColumnType::String, None);
        }
        if !self.leading_zero && f.integer {
            return (ColumnType::Integer, None);
        }
        if !self.leading_zero && (f.float || f.decimal) {
            // A float reads short numbers back exactly; longer ones stay exact as decimals.
            return if f.decimal && (self.plain_numbers || !self.float_exact || !f.float) {
                (ColumnType::Decimal, None)
            } else {
                (ColumnType::Float, None)
            };
        }
        if f.boolean {
            return (ColumnType::Boolean, None);
        }
        for (fits, ty) in [
            (f.date, ColumnType::Date),
            (f.datetime, ColumnType::Datetime),
            (f.uuid, ColumnType::Uuid),
            (f.email, ColumnType::Email),
            (f.url, ColumnType::Url),
        ] {
            if fits {
                return (ty, None);
            }
        }
        // A string column refuses JSON objects and arrays, so one of them decides.
        if self.any_container || self.all_containers {
            return (ColumnType::Json, None);
        }
        if enums
            && self.present >= ENUM_MIN_VALUES
            && let Some(values) = &self.enum_values
        {
            return (ColumnType::Enum, Some(values.iter().cloned().collect()));
        }
        (ColumnType::String, None)
    }

    /// Whether the missing-value tokens of a column of this type are missing values (any
    /// typed column, enums included since their values leave tokens out) or text (strings).
    pub fn tokens_are_missing(ty: ColumnType) -> bool {
        ty != ColumnType::String
    }

    /// Whether the present values never repeat: known exactly while they are remembered,
    /// and for integers that only increase, however many.
    pub fn all_distinct(&self, ty: ColumnType) -> bool {
        if ty == ColumnType::Integer && self.increasing {
            return true;
        }
        self.distinct.as_ref().is_some_and(|d| !d.repeated)
    }
}

fn hash_of(value: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Text like `007` or `-0123`: leading zeros mark codes (postcodes, account numbers) whose
/// zeros a number column would lose.
fn has_leading_zero(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    digits.len() >= 2 && digits[0] == b'0' && digits[1].is_ascii_digit()
}

/// Of a number's text: whether it is written without exponent and with few enough fractional
/// digits for `decimal`, and its significant digits (from the first non-zero digit to the
/// last of the mantissa). One pass over the bytes: this runs on every cell of a number column.
fn number_shape(text: &str) -> (bool, usize) {
    let (mut exponent, mut in_fraction, mut fraction) = (false, false, 0usize);
    let (mut first, mut last, mut digits) = (None, None, 0usize);
    for &c in text.as_bytes() {
        match c {
            b'e' | b'E' => {
                exponent = true;
                break;
            }
            b'.' => in_fraction = true,
            b'0'..=b'9' => {
                fraction += usize::from(in_fraction);
                if c != b'0' {
                    first.get_or_insert(digits);
                    last = Some(digits);
                }
                digits += 1;
            }
            _ => {}
        }
    }
    let significant = match (first, last) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 0,
    };
    (!exponent && fraction <= DECIMAL_MAX_FRACTION, significant)
}

fn is_boolean_word(cell: Cell<'_>) -> bool {
    const WORDS: [&str; 8] = ["true", "false", "yes", "no", "t", "f", "y", "n"];
    match cell {
        Cell::Json(Json::Bool(_)) => true,
        other => other
            .text()
            .is_some_and(|s| WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))),
    }
}

/// Hyphenated UUIDs only: the crate also reads 32 bare hex digits, which are more often
/// hashes than UUIDs.
fn is_hyphenated_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
}
