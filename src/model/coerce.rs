//! Coercion of raw cells (text from CSV/TSV, JSON values from NDJSON/JSON) to typed column
//! values, with the column's constraints checked after the type.
//!
//! This runs on every cell of every import, so built-in types are parsed by hand (no regex)
//! and integers, floats and booleans are coerced without allocating; messages, which users
//! read, are built only on the error path.

use std::collections::HashSet;

use regex::Regex;
use serde_json::Value as Json;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::{ColumnSpec, ColumnType, RowErrorCode, Value};

/// Most digits a canonical decimal may have.
const MAX_DECIMAL_DIGITS: usize = 1000;
/// Most characters of a cell quoted in a message.
const QUOTE_CHARS: usize = 60;
/// Most enum values listed in a message.
const LISTED_VALUES: usize = 10;

/// Why a cell could not become a value of its column.
#[derive(Debug, Clone, PartialEq)]
pub struct CoerceError {
    pub code: RowErrorCode,
    pub message: String,
}

impl CoerceError {
    #[cold]
    fn new(code: RowErrorCode, message: String) -> CoerceError {
        CoerceError { code, message }
    }
}

/// A JSON value as a column reads it, borrowed from where it was parsed: a record's text or a
/// parsed `serde_json::Value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JsonCell<'a> {
    /// JSON `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number's text exactly as serde_json's `Number` keeps it (never through an f64).
    Number(&'a str),
    /// A string's content, unescaped.
    String(&'a str),
    /// An array or an object.
    Nested(&'a Json),
}

impl<'a> JsonCell<'a> {
    /// The cell of a parsed value.
    pub fn of(v: &'a Json) -> JsonCell<'a> {
        match v {
            Json::Null => JsonCell::Null,
            Json::Bool(b) => JsonCell::Bool(*b),
            Json::Number(n) => JsonCell::Number(n.as_str()),
            Json::String(s) => JsonCell::String(s),
            Json::Array(_) | Json::Object(_) => JsonCell::Nested(v),
        }
    }

    /// The value's compact JSON text, as `serde_json::Value`'s `Display` writes it.
    pub fn json_text(self) -> String {
        match self {
            JsonCell::Null => "null".to_owned(),
            JsonCell::Bool(b) => if b { "true" } else { "false" }.to_owned(),
            JsonCell::Number(n) => n.to_owned(),
            // A string slice serialises exactly as a `Value::String` holding it.
            JsonCell::String(s) => serde_json::to_string(s).unwrap_or_default(),
            JsonCell::Nested(v) => v.to_string(),
        }
    }
}

/// A column's coercion rules, compiled once per import and shared by the threads reading it.
#[derive(Debug, Clone)]
pub struct ColumnCoercer {
    spec: ColumnSpec,
    /// The user's pattern anchored at both ends.
    pattern: Option<Regex>,
    /// The allowed values of an enum column.
    allowed: HashSet<String>,
    /// The default, already coerced.
    default: Option<Value>,
    /// Whether `min` or `max` is set (skips the range check on the common path).
    ranged: bool,
    /// `min` and `max` as canonical decimals, for a decimal column's range check (made once
    /// here, not for every cell).
    decimal_bounds: (Option<String>, Option<String>),
}

/// A range bound as a canonical decimal (None when unset, or not finite).
fn decimal_bound(bound: Option<f64>) -> Option<String> {
    bound.and_then(|b| canonical_decimal(&b.to_string()).ok())
}

impl ColumnCoercer {
    /// Compiles the column's rules: anchors its pattern and coerces its default.
    pub fn new(spec: &ColumnSpec) -> Result<ColumnCoercer, String> {
        let pattern = match &spec.pattern {
            None => None,
            Some(p) => {
                // Compiled alone first: an unbalanced `)` could otherwise close the anchoring
                // group and leave part of the pattern unanchored.
                Regex::new(p).map_err(|e| format!("invalid pattern: {e}"))?;
                let anchored = Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| format!("invalid pattern: {e}"))?;
                Some(anchored)
            }
        };
        let allowed: HashSet<String> = spec.values.iter().flatten().cloned().collect();
        if spec.ty == ColumnType::Enum && allowed.is_empty() {
            return Err("an enum column needs a non-empty \"values\" list".to_owned());
        }
        let mut coercer = ColumnCoercer {
            spec: spec.clone(),
            pattern,
            allowed,
            default: None,
            ranged: spec.min.is_some() || spec.max.is_some(),
            decimal_bounds: (decimal_bound(spec.min), decimal_bound(spec.max)),
        };
        if let Some(d) = &spec.default
            && !d.is_null()
        {
            let value = coercer
                .coerce_json(d)
                .map_err(|e| format!("default {d} is not valid: {}", e.message))?;
            coercer.default = Some(value);
        }
        Ok(coercer)
    }

    /// The column this coercer was compiled from.
    pub fn spec(&self) -> &ColumnSpec {
        &self.spec
    }

    /// Coerces a non-null text cell (CSV/TSV).
    pub fn coerce_text(&self, raw: &str) -> Result<Value, CoerceError> {
        if self.spec.ty == ColumnType::String {
            // Strings are stored byte for byte: surrounding spaces may be data.
            return self.text_value(raw);
        }
        let s = raw.trim_ascii();
        if s.is_empty() {
            return self.missing();
        }
        match self.spec.ty {
            ColumnType::String => self.text_value(raw),
            ColumnType::Integer => match parse_i64(s) {
                Ok(n) => self.int_value(n),
                Err(IntError::Syntax) => Err(not_a(ColumnType::Integer, &quote(s))),
                Err(IntError::Overflow) => Err(int_out_of_range(&quote(s))),
            },
            ColumnType::Float => match s.parse::<f64>() {
                Ok(x) if x.is_finite() => self.float_value(x),
                // Only "inf"/"nan" spellings have no digit; a digit means a finite literal
                // that overflowed, which is a range problem rather than a syntax one.
                Ok(_) if s.bytes().any(|b| b.is_ascii_digit()) => Err(CoerceError::new(
                    RowErrorCode::OutOfRange,
                    format!("{} is too large for a float", quote(s)),
                )),
                Ok(_) => Err(CoerceError::new(
                    RowErrorCode::InvalidFloat,
                    format!("{} is not a finite number", quote(s)),
                )),
                Err(_) => Err(not_a(ColumnType::Float, &quote(s))),
            },
            ColumnType::Decimal => self.decimal_value(s, || quote(s)),
            ColumnType::Boolean => match parse_bool(s) {
                Some(b) => Ok(Value::Bool(b)),
                None => Err(not_a(ColumnType::Boolean, &quote(s))),
            },
            ColumnType::Date => match parse_date(s.as_bytes()) {
                Ok(d) => Ok(Value::Date(d)),
                Err(DateError::Format) => Err(not_a(ColumnType::Date, &quote(s))),
                Err(DateError::Calendar) => Err(CoerceError::new(
                    RowErrorCode::InvalidDate,
                    format!("{} is not a valid calendar date", quote(s)),
                )),
            },
            ColumnType::Datetime => match parse_datetime(s.as_bytes()) {
                Some(t) => Ok(Value::Datetime(t)),
                None => Err(not_a(ColumnType::Datetime, &quote(s))),
            },
            ColumnType::Email if is_email(s) => self.text_value(s),
            ColumnType::Url if is_url(s) => self.text_value(s),
            ColumnType::Email | ColumnType::Url => Err(not_a(self.spec.ty, &quote(s))),
            ColumnType::Uuid => match uuid::Uuid::parse_str(s) {
                Ok(u) => Ok(Value::Uuid(u)),
                Err(_) => Err(not_a(ColumnType::Uuid, &quote(s))),
            },
            ColumnType::Enum if self.allowed.contains(s) => self.text_value(s),
            ColumnType::Enum => Err(self.not_allowed(&quote(s))),
            ColumnType::Json => match serde_json::from_str::<Json>(s) {
                Ok(v) => Ok(Value::Json(v.to_string())),
                Err(e) => Err(CoerceError::new(
                    RowErrorCode::InvalidJson,
                    format!("{} is not valid JSON: {e}", quote(s)),
                )),
            },
        }
    }

    /// Coerces a JSON value (NDJSON/JSON); JSON null is a missing value.
    pub fn coerce_json(&self, v: &Json) -> Result<Value, CoerceError> {
        self.coerce_cell(JsonCell::of(v))
    }

    /// Coerces a JSON value read in place from its record; JSON null is a missing value.
    pub fn coerce_cell(&self, cell: JsonCell<'_>) -> Result<Value, CoerceError> {
        let ty = self.spec.ty;
        match (ty, cell) {
            (_, JsonCell::Null) => self.missing(),
            (ColumnType::Json, _) => Ok(Value::Json(cell.json_text())),
            // A JSON string holds exactly the text a CSV cell would.
            (ColumnType::String, JsonCell::String(s)) => self.text_value(s),
            (_, JsonCell::String(s)) => self.coerce_text(s),
            // Scalars have one obvious text form; strings and enums take it.
            (ColumnType::String | ColumnType::Enum, JsonCell::Number(n)) => self.coerce_text(n),
            (ColumnType::String | ColumnType::Enum, JsonCell::Bool(b)) => {
                self.coerce_text(if b { "true" } else { "false" })
            }
            (ColumnType::String, JsonCell::Nested(Json::Array(_))) => Err(CoerceError::new(
                RowErrorCode::InvalidType,
                "expected a string, got an array".to_owned(),
            )),
            (ColumnType::String, JsonCell::Nested(Json::Object(_))) => Err(CoerceError::new(
                RowErrorCode::InvalidType,
                "expected a string, got an object".to_owned(),
            )),
            // JSON numbers keep the text they were written with, so an integer is read from
            // that text exactly (`1e5` and `7.0` are integers; no f64 in between).
            // A plain integer (the usual case) is read as it is, without the canonical form.
            (ColumnType::Integer, JsonCell::Number(text)) if !text.contains(['.', 'e', 'E']) => {
                match parse_i64(text) {
                    Ok(i) => self.int_value(i),
                    Err(IntError::Overflow) => Err(int_out_of_range(text)),
                    Err(IntError::Syntax) => Err(not_a(ColumnType::Integer, text)),
                }
            }
            (ColumnType::Integer, JsonCell::Number(text)) => match canonical_decimal(text) {
                Ok(d) if !d.contains('.') => match parse_i64(&d) {
                    Ok(i) => self.int_value(i),
                    Err(_) => Err(int_out_of_range(text)),
                },
                Err(DecimalError::TooManyDigits) => Err(int_out_of_range(text)),
                _ => Err(not_a(ColumnType::Integer, text)),
            },
            // What serde_json's `Number::as_f64` answers for a number kept as its text.
            (ColumnType::Float, JsonCell::Number(text)) => match text.parse::<f64>() {
                Ok(x) if x.is_finite() => self.float_value(x),
                _ => Err(not_a(ColumnType::Float, text)),
            },
            (ColumnType::Decimal, JsonCell::Number(text)) => {
                self.decimal_value(text, || text.to_owned())
            }
            (ColumnType::Boolean, JsonCell::Bool(b)) => Ok(Value::Bool(b)),
            (ColumnType::Boolean, JsonCell::Number(text)) => match text.parse::<u64>() {
                Ok(0) => Ok(Value::Bool(false)),
                Ok(1) => Ok(Value::Bool(true)),
                _ => Err(not_a(ColumnType::Boolean, text)),
            },
            (ColumnType::Enum, _) => Err(self.not_allowed(&quote_cell(cell))),
            _ => Err(not_a(ty, &quote_cell(cell))),
        }
    }

    /// The value for a cell that is missing or null: the default, NULL, or `missing_required`.
    pub fn missing(&self) -> Result<Value, CoerceError> {
        match &self.default {
            Some(d) => Ok(d.clone()),
            None if self.spec.required => Err(CoerceError::new(
                RowErrorCode::MissingRequired,
                "a value is required".to_owned(),
            )),
            None => Ok(Value::Null),
        }
    }

    /// Checks a textual value's length and pattern, then stores it.
    fn text_value(&self, s: &str) -> Result<Value, CoerceError> {
        // PostgreSQL text cannot hold U+0000: refused on every backend, so that a file means
        // the same wherever it is loaded.
        if s.as_bytes().contains(&0) {
            return Err(CoerceError::new(
                RowErrorCode::InvalidEncoding,
                format!(
                    "{} holds a NUL character (U+0000), which a text value cannot hold",
                    quote(s)
                ),
            ));
        }
        if let Some(max) = self.spec.max_length {
            let max = max as usize;
            // Bytes bound characters from above, so short values skip the count.
            if s.len() > max {
                let n = s.chars().count();
                if n > max {
                    return Err(CoerceError::new(
                        RowErrorCode::TooLong,
                        format!(
                            "{} is too long: {n} characters, at most {max} allowed",
                            quote(s)
                        ),
                    ));
                }
            }
        }
        if let Some(min) = self.spec.min_length {
            let min = min as usize;
            // A character is at most 4 bytes, so long values skip the count.
            if s.len() < min.saturating_mul(4) {
                let n = s.chars().count();
                if n < min {
                    return Err(CoerceError::new(
                        RowErrorCode::TooShort,
                        format!(
                            "{} is too short: {n} characters, at least {min} required",
                            quote(s)
                        ),
                    ));
                }
            }
        }
        if let Some(re) = &self.pattern
            && !re.is_match(s)
        {
            let p = self.spec.pattern.as_deref().unwrap_or_default();
            return Err(CoerceError::new(
                RowErrorCode::PatternMismatch,
                format!("{} does not match the pattern {}", quote(s), quote(p)),
            ));
        }
        Ok(Value::Text(s.to_owned()))
    }

    fn int_value(&self, n: i64) -> Result<Value, CoerceError> {
        if self.ranged {
            self.check_range(n as f64, || n.to_string())?;
        }
        Ok(Value::Int(n))
    }

    fn float_value(&self, x: f64) -> Result<Value, CoerceError> {
        if self.ranged {
            self.check_range(x, || x.to_string())?;
        }
        Ok(Value::Float(x))
    }

    /// Canonicalises a decimal literal; `shown` renders the input for messages.
    fn decimal_value(&self, s: &str, shown: impl Fn() -> String) -> Result<Value, CoerceError> {
        match canonical_decimal(s) {
            Ok(d) => {
                if self.ranged {
                    self.check_decimal_range(&d)?;
                }
                Ok(Value::Decimal(d))
            }
            Err(DecimalError::Syntax) => Err(not_a(ColumnType::Decimal, &shown())),
            Err(DecimalError::TooManyDigits) => Err(CoerceError::new(
                RowErrorCode::InvalidDecimal,
                format!("{} has more than {MAX_DECIMAL_DIGITS} digits", shown()),
            )),
        }
    }

    /// Compares a canonical decimal with the bounds exactly: each bound as the shortest
    /// decimal that reads back as it (`0.1`, not the binary float's 55 digits), so that a
    /// 30-digit value just above `max` is refused rather than rounded onto it.
    fn check_decimal_range(&self, d: &str) -> Result<(), CoerceError> {
        use std::cmp::Ordering;
        let (low, high) = &self.decimal_bounds;
        if let (Some(min), Some(low)) = (self.spec.min, low)
            && compare_decimals(d, low) == Ordering::Less
        {
            return Err(CoerceError::new(
                RowErrorCode::OutOfRange,
                format!("{d} is below the minimum of {min}"),
            ));
        }
        if let (Some(max), Some(high)) = (self.spec.max, high)
            && compare_decimals(d, high) == Ordering::Greater
        {
            return Err(CoerceError::new(
                RowErrorCode::OutOfRange,
                format!("{d} is above the maximum of {max}"),
            ));
        }
        Ok(())
    }

    fn check_range(&self, x: f64, shown: impl FnOnce() -> String) -> Result<(), CoerceError> {
        if let Some(min) = self.spec.min
            && x < min
        {
            return Err(CoerceError::new(
                RowErrorCode::OutOfRange,
                format!("{} is below the minimum of {min}", shown()),
            ));
        }
        if let Some(max) = self.spec.max
            && x > max
        {
            return Err(CoerceError::new(
                RowErrorCode::OutOfRange,
                format!("{} is above the maximum of {max}", shown()),
            ));
        }
        Ok(())
    }

    #[cold]
    fn not_allowed(&self, shown: &str) -> CoerceError {
        let values = self.spec.values.as_deref().unwrap_or_default();
        let mut list: Vec<String> = values
            .iter()
            .take(LISTED_VALUES)
            .map(|v| quote(v))
            .collect();
        if values.len() > LISTED_VALUES {
            list.push(format!("and {} more", values.len() - LISTED_VALUES));
        }
        CoerceError::new(
            RowErrorCode::InvalidEnum,
            format!(
                "{shown} is not one of the allowed values: {}",
                list.join(", ")
            ),
        )
    }
}

/// The integer a trimmed text cell holds, as an `integer` column reads it.
pub fn integer_text(s: &str) -> Option<i64> {
    parse_i64(s).ok()
}

/// Whether a trimmed, non-empty text cell is a value of a column of this type with no
/// constraints: what `coerce_text` accepts, checked without building the value or an error
/// (schema inference asks it of every cell of a file).
pub fn accepts_text(ty: ColumnType, s: &str) -> bool {
    match ty {
        ColumnType::String | ColumnType::Enum => true,
        ColumnType::Integer => parse_i64(s).is_ok(),
        ColumnType::Float => s.parse::<f64>().is_ok_and(f64::is_finite),
        ColumnType::Decimal => decimal_parts(s).is_ok(),
        ColumnType::Boolean => parse_bool(s).is_some(),
        ColumnType::Date => parse_date(s.as_bytes()).is_ok(),
        ColumnType::Datetime => parse_datetime(s.as_bytes()).is_some(),
        ColumnType::Email => is_email(s),
        ColumnType::Url => is_url(s),
        ColumnType::Uuid => uuid::Uuid::parse_str(s).is_ok(),
        ColumnType::Json => serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok(),
    }
}

/// The error for a value that is not of the column's type at all.
#[cold]
fn not_a(ty: ColumnType, shown: &str) -> CoerceError {
    let (code, what) = match ty {
        ColumnType::Integer => (RowErrorCode::InvalidInteger, "an integer"),
        ColumnType::Float => (RowErrorCode::InvalidFloat, "a number"),
        ColumnType::Decimal => (RowErrorCode::InvalidDecimal, "a decimal number"),
        ColumnType::Boolean => (
            RowErrorCode::InvalidBoolean,
            "a boolean (true/false, yes/no, 1/0, on/off)",
        ),
        ColumnType::Date => (RowErrorCode::InvalidDate, "a date (YYYY-MM-DD)"),
        ColumnType::Datetime => (
            RowErrorCode::InvalidDatetime,
            "a datetime (like 2024-01-31T10:30:00Z)",
        ),
        ColumnType::Email => (RowErrorCode::InvalidEmail, "an email address"),
        ColumnType::Url => (RowErrorCode::InvalidUrl, "a URL"),
        ColumnType::Uuid => (RowErrorCode::InvalidUuid, "a UUID"),
        ColumnType::Enum => (RowErrorCode::InvalidEnum, "an allowed value"),
        ColumnType::Json => (RowErrorCode::InvalidJson, "valid JSON"),
        ColumnType::String => (RowErrorCode::InvalidType, "a string"),
    };
    CoerceError::new(code, format!("{shown} is not {what}"))
}

#[cold]
fn int_out_of_range(shown: &str) -> CoerceError {
    CoerceError::new(
        RowErrorCode::OutOfRange,
        format!(
            "{shown} is outside the integer range ({} to {})",
            i64::MIN,
            i64::MAX
        ),
    )
}

/// A cell as shown in messages: a JSON string literal, cut after `QUOTE_CHARS` characters.
#[cold]
fn quote(s: &str) -> String {
    let cut = match s.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    };
    let mut q = serde_json::to_string(cut).unwrap_or_else(|_| format!("{cut:?}"));
    if cut.len() < s.len() {
        // Inside the closing quote, which is one byte.
        q.insert(q.len() - 1, '…');
    }
    q
}

/// A JSON value as shown in messages, cut like `quote`.
#[cold]
fn quote_cell(cell: JsonCell<'_>) -> String {
    if let JsonCell::String(s) = cell {
        return quote(s);
    }
    let text = cell.json_text();
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

enum IntError {
    Syntax,
    Overflow,
}

/// `[+-]?\d+(\.0+)?` as an i64.
fn parse_i64(s: &str) -> Result<i64, IntError> {
    let b = s.as_bytes();
    let (negative, rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match rest.iter().position(|&c| c == b'.') {
        Some(p) => (&rest[..p], Some(&rest[p + 1..])),
        None => (rest, None),
    };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) {
        return Err(IntError::Syntax);
    }
    if let Some(f) = frac
        && (f.is_empty() || !f.iter().all(|&c| c == b'0'))
    {
        return Err(IntError::Syntax);
    }
    // Accumulated as a negative number so that i64::MIN, one larger in magnitude than
    // i64::MAX, parses too.
    let mut n: i64 = 0;
    for &c in int {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_sub(i64::from(c - b'0')))
            .ok_or(IntError::Overflow)?;
    }
    if negative {
        Ok(n)
    } else {
        n.checked_neg().ok_or(IntError::Overflow)
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["true", "t", "yes", "y", "1", "on"];
    const FALSE: [&str; 6] = ["false", "f", "no", "n", "0", "off"];
    if s.len() > 5 {
        return None;
    }
    if TRUE.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if FALSE.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

enum DecimalError {
    Syntax,
    TooManyDigits,
}

/// Rewrites `[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?` in the canonical form of `Value::Decimal`.
fn canonical_decimal(s: &str) -> Result<String, DecimalError> {
    decimal_parts(s).map(|p| p.render())
}

/// A decimal literal read: its sign, digits, and where the point goes.
struct DecimalParts<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    /// Leading zeros of the digits.
    lead: usize,
    /// Significant digits (0 for zero).
    sig: usize,
    /// The value is 0.D × 10^point, D being the significant digits.
    point: i64,
}

/// Reads a decimal literal without building its canonical form.
fn decimal_parts(s: &str) -> Result<DecimalParts<'_>, DecimalError> {
    // Larger exponents only matter for zero, whose canonical form ignores them.
    const EXPONENT_CAP: i64 = 1_000_000_000;
    let b = s.as_bytes();
    let (negative, rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let digits_from = |at: usize| rest[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int_len = digits_from(0);
    let int = &rest[..int_len];
    let mut i = int_len;
    let mut frac: &[u8] = &[];
    if rest.get(i) == Some(&b'.') {
        let n = digits_from(i + 1);
        frac = &rest[i + 1..i + 1 + n];
        i += 1 + n;
    }
    if int.is_empty() && frac.is_empty() {
        return Err(DecimalError::Syntax);
    }
    let mut exponent: i64 = 0;
    if matches!(rest.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative_exponent = match rest.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let n = digits_from(i);
        if n == 0 {
            return Err(DecimalError::Syntax);
        }
        for &c in &rest[i..i + n] {
            exponent = (exponent * 10 + i64::from(c - b'0')).min(EXPONENT_CAP);
        }
        if negative_exponent {
            exponent = -exponent;
        }
        i += n;
    }
    if i != rest.len() {
        return Err(DecimalError::Syntax);
    }

    let lead = int.iter().chain(frac).take_while(|&&c| c == b'0').count();
    let all = int.len() + frac.len();
    if lead == all {
        return Ok(DecimalParts {
            negative,
            int,
            frac,
            lead,
            sig: 0,
            point: 0,
        });
    }
    let trail = int
        .iter()
        .chain(frac)
        .rev()
        .take_while(|&&c| c == b'0')
        .count();
    let sig = all - lead - trail;
    let point = int.len() as i64 + exponent - lead as i64;
    let written = if point <= 0 {
        1 - point + sig as i64
    } else {
        point.max(sig as i64)
    };
    if written > MAX_DECIMAL_DIGITS as i64 {
        return Err(DecimalError::TooManyDigits);
    }
    Ok(DecimalParts {
        negative,
        int,
        frac,
        lead,
        sig,
        point,
    })
}

impl DecimalParts<'_> {
    /// The canonical text: optional `-`, no leading or trailing zeros, no exponent.
    fn render(&self) -> String {
        let (sig, point) = (self.sig, self.point);
        if sig == 0 {
            return "0".to_owned();
        }
        let significant = self
            .int
            .iter()
            .chain(self.frac)
            .skip(self.lead)
            .take(sig)
            .copied();
        let written = if point <= 0 {
            1 - point + sig as i64
        } else {
            point.max(sig as i64)
        };
        let mut out = String::with_capacity(written as usize + 2);
        if self.negative {
            out.push('-');
        }
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.extend(significant.map(char::from));
        } else {
            let point = point as usize;
            for (k, c) in significant.enumerate() {
                if k == point {
                    out.push('.');
                }
                out.push(char::from(c));
            }
            if point > sig {
                out.extend(std::iter::repeat_n('0', point - sig));
            }
        }
        out
    }
}

/// Orders two canonical decimals (optional `-`, no leading or trailing zeros) by value.
fn compare_decimals(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a_neg, a_abs) = a.strip_prefix('-').map_or((false, a), |r| (true, r));
    let (b_neg, b_abs) = b.strip_prefix('-').map_or((false, b), |r| (true, r));
    match (a_neg, b_neg) {
        (false, true) => return Ordering::Greater,
        (true, false) => return Ordering::Less,
        _ => {}
    }
    let (a_int, a_frac) = a_abs.split_once('.').unwrap_or((a_abs, ""));
    let (b_int, b_frac) = b_abs.split_once('.').unwrap_or((b_abs, ""));
    // Without leading zeros a longer integer part is larger; equal lengths compare as text,
    // and so do fractions once the shorter is read as padded with zeros.
    let magnitude = a_int
        .len()
        .cmp(&b_int.len())
        .then_with(|| a_int.cmp(b_int))
        .then_with(|| a_frac.cmp(b_frac));
    if a_neg {
        magnitude.reverse()
    } else {
        magnitude
    }
}

enum DateError {
    Format,
    Calendar,
}

/// Two ASCII digits at `at`.
fn two_digits(b: &[u8], at: usize) -> Option<u8> {
    match (b.get(at), b.get(at + 1)) {
        (Some(h @ b'0'..=b'9'), Some(l @ b'0'..=b'9')) => Some((h - b'0') * 10 + (l - b'0')),
        _ => None,
    }
}

/// `YYYY-MM-DD` at the start of `b`.
fn date_prefix(b: &[u8]) -> Result<Date, DateError> {
    let (Some(c), Some(y), Some(m), Some(d)) = (
        two_digits(b, 0),
        two_digits(b, 2),
        two_digits(b, 5),
        two_digits(b, 8),
    ) else {
        return Err(DateError::Format);
    };
    // Year first is unambiguous whatever the separator (`2024-01-31`, `2024/01/31`,
    // `2024.01.31`), as long as both are the same.
    if b[4] != b[7] || !matches!(b[4], b'-' | b'/' | b'.') {
        return Err(DateError::Format);
    }
    let month = Month::try_from(m).map_err(|_| DateError::Calendar)?;
    Date::from_calendar_date(i32::from(c) * 100 + i32::from(y), month, d)
        .map_err(|_| DateError::Calendar)
}

fn parse_date(b: &[u8]) -> Result<Date, DateError> {
    if b.len() != 10 {
        return Err(DateError::Format);
    }
    date_prefix(b)
}

/// RFC 3339 and its common relaxations: `T`, `t` or space between date and time, optional
/// seconds, fraction and offset (UTC when absent), or a bare date (midnight UTC).
fn parse_datetime(b: &[u8]) -> Option<OffsetDateTime> {
    let date = date_prefix(b).ok()?;
    if b.len() == 10 {
        return Some(date.midnight().assume_utc());
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = two_digits(b, 11)?;
    let minute = two_digits(b, 14)?;
    let mut i = 16;
    let (mut second, mut nano) = (0, 0);
    if b.get(i) == Some(&b':') {
        second = two_digits(b, i + 1)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            for &c in &b[i + 1..i + 1 + n] {
                nano = nano * 10 + u32::from(c - b'0');
            }
            nano *= 10u32.pow(9 - n as u32);
            i += 1 + n;
        }
    }
    let offset = match b.get(i) {
        None => UtcOffset::UTC,
        Some(b'Z' | b'z') if b.len() == i + 1 => UtcOffset::UTC,
        Some(&sign @ (b'+' | b'-')) => {
            let hours = two_digits(b, i + 1)?;
            let minutes = match b.len() - i {
                6 if b[i + 3] == b':' => two_digits(b, i + 4)?,
                5 => two_digits(b, i + 3)?,
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            // Both below 60, so the casts are lossless.
            let (h, m) = (hours as i8, minutes as i8);
            let offset = if sign == b'-' {
                UtcOffset::from_hms(-h, -m, 0)
            } else {
                UtcOffset::from_hms(h, m, 0)
            };
            offset.ok()?
        }
        _ => return None,
    };
    let time = Time::from_hms_nano(hour, minute, second, nano).ok()?;
    // A valid local time can still leave the supported years once moved to UTC.
    PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .checked_to_offset(UtcOffset::UTC)
}

fn is_email(s: &str) -> bool {
    if s.len() > 254 {
        return false;
    }
    // Byte by byte: '@' and '.' are ASCII, and this runs on every cell of an email column.
    let Some(at) = s.bytes().position(|c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    // ASCII, the usual local part, is checked a byte at a time; other text by its characters.
    let spaced = if local.is_ascii() {
        // Every ASCII space but ' ' is a control character.
        local.bytes().any(|b| b == b' ' || b.is_ascii_control())
    } else {
        local.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if spaced {
        return false;
    }
    if domain.is_ascii() {
        return is_dns_name(domain.as_bytes());
    }
    // An internationalised domain (`müller.de`) is checked in the form DNS knows it by.
    match url::Host::parse(domain) {
        Ok(url::Host::Domain(ascii)) => is_dns_name(ascii.as_bytes()),
        _ => false,
    }
}

/// Whether `domain` is a dotted DNS name of letters, digits and inner hyphens.
fn is_dns_name(domain: &[u8]) -> bool {
    // Also refuses a second '@', which is not a label character.
    domain.contains(&b'.')
        && domain.split(|&c| c == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.first() != Some(&b'-')
                && label.last() != Some(&b'-')
                && label
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// Whether `s` is a URL with a host (`scheme://host…`), as the WHATWG URL standard reads it.
fn is_url(s: &str) -> bool {
    // The parser would trim surrounding spaces; a cell holding them is not a URL.
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    // The parser reads `https:/x` and `https:///x` as `https://x/`, as browsers do; in data,
    // a slash too few or too many is a typo to report.
    match s.split_once("://") {
        Some((_, rest)) if !rest.starts_with('/') => {}
        _ => return false,
    }
    url::Url::parse(s).is_ok_and(|u| u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identifier;
    use serde_json::json;
    use time::macros::{date, datetime};

    fn spec(ty: ColumnType) -> ColumnSpec {
        ColumnSpec {
            name: Identifier::parse("column", "c").expect("valid name"),
            ty,
            required: false,
            unique: false,
            default: None,
            max_length: None,
            min_length: None,
            min: None,
            max: None,
            pattern: None,
            values: None,
        }
    }

    fn coercer(ty: ColumnType) -> ColumnCoercer {
        ColumnCoercer::new(&spec(ty)).expect("plain spec compiles")
    }

    fn text(ty: ColumnType, raw: &str) -> Result<Value, CoerceError> {
        coercer(ty).coerce_text(raw)
    }

    fn json(ty: ColumnType, v: Json) -> Result<Value, CoerceError> {
        coercer(ty).coerce_json(&v)
    }

    fn code(r: Result<Value, CoerceError>) -> RowErrorCode {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.code,
        }
    }

    fn message(r: Result<Value, CoerceError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.message,
        }
    }

    fn dec(raw: &str) -> Result<Value, CoerceError> {
        text(ColumnType::Decimal, raw)
    }

    fn decimal(s: &str) -> Result<Value, CoerceError> {
        Ok(Value::Decimal(s.to_owned()))
    }

    #[test]
    fn the_coercer_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ColumnCoercer>();
    }

    #[test]
    fn spec_returns_the_column_it_was_built_from() {
        let s = spec(ColumnType::Integer);
        assert_eq!(ColumnCoercer::new(&s).expect("compiles").spec(), &s);
    }

    // integer

    #[test]
    fn integers_parse_with_sign_and_surrounding_spaces() {
        let t = ColumnType::Integer;
        assert_eq!(text(t, "42"), Ok(Value::Int(42)));
        assert_eq!(text(t, "+42"), Ok(Value::Int(42)));
        assert_eq!(text(t, "-42"), Ok(Value::Int(-42)));
        assert_eq!(text(t, "  7\t"), Ok(Value::Int(7)));
        assert_eq!(text(t, "007"), Ok(Value::Int(7)));
        assert_eq!(text(t, "-0"), Ok(Value::Int(0)));
    }

    #[test]
    fn integers_may_have_a_fraction_of_zeros_only() {
        let t = ColumnType::Integer;
        assert_eq!(text(t, "42.0"), Ok(Value::Int(42)));
        assert_eq!(text(t, "-42.000"), Ok(Value::Int(-42)));
        assert_eq!(code(text(t, "42.5")), RowErrorCode::InvalidInteger);
        assert_eq!(code(text(t, "42.")), RowErrorCode::InvalidInteger);
        assert_eq!(code(text(t, ".0")), RowErrorCode::InvalidInteger);
    }

    #[test]
    fn integers_reach_both_i64_bounds_and_no_further() {
        let t = ColumnType::Integer;
        assert_eq!(text(t, "9223372036854775807"), Ok(Value::Int(i64::MAX)));
        assert_eq!(text(t, "-9223372036854775808"), Ok(Value::Int(i64::MIN)));
        assert_eq!(
            code(text(t, "9223372036854775808")),
            RowErrorCode::OutOfRange
        );
        assert_eq!(
            code(text(t, "-9223372036854775809")),
            RowErrorCode::OutOfRange
        );
        assert_eq!(
            message(text(t, "99999999999999999999")),
            "\"99999999999999999999\" is outside the integer range \
             (-9223372036854775808 to 9223372036854775807)"
        );
    }

    #[test]
    fn integers_refuse_exponents_hex_separators_and_words() {
        let t = ColumnType::Integer;
        for raw in [
            "1e3", "0x10", "1,000", "1 000", "abc", "+", "-", "--1", "1-", "٣",
        ] {
            assert_eq!(code(text(t, raw)), RowErrorCode::InvalidInteger, "{raw}");
        }
        assert_eq!(message(text(t, "1e3")), "\"1e3\" is not an integer");
    }

    #[test]
    fn blank_cells_of_non_string_types_are_missing() {
        for ty in ColumnType::ALL {
            if ty == ColumnType::String {
                continue;
            }
            let mut s = spec(ty);
            s.values = Some(vec!["a".into()]);
            let c = ColumnCoercer::new(&s).expect("compiles");
            assert_eq!(c.coerce_text(""), Ok(Value::Null), "{ty:?}");
            assert_eq!(c.coerce_text(" \t\r\n"), Ok(Value::Null), "{ty:?}");
        }
        let mut s = spec(ColumnType::Integer);
        s.required = true;
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(code(c.coerce_text("  ")), RowErrorCode::MissingRequired);
    }

    #[test]
    fn json_integers_accept_whole_numbers_and_numeric_strings() {
        let t = ColumnType::Integer;
        assert_eq!(json(t, json!(42)), Ok(Value::Int(42)));
        assert_eq!(json(t, json!(-7)), Ok(Value::Int(-7)));
        assert_eq!(json(t, json!(42.0)), Ok(Value::Int(42)));
        assert_eq!(json(t, json!(" 12 ")), Ok(Value::Int(12)));
        assert_eq!(json(t, json!("12.00")), Ok(Value::Int(12)));
        assert_eq!(json(t, json!(i64::MIN)), Ok(Value::Int(i64::MIN)));
        assert_eq!(json(t, json!(i64::MAX)), Ok(Value::Int(i64::MAX)));
    }

    #[test]
    fn json_integers_refuse_fractions_large_numbers_and_other_kinds() {
        let t = ColumnType::Integer;
        assert_eq!(code(json(t, json!(1.5))), RowErrorCode::InvalidInteger);
        assert_eq!(message(json(t, json!(1.5))), "1.5 is not an integer");
        assert_eq!(code(json(t, json!(u64::MAX))), RowErrorCode::OutOfRange);
        // The same message whether the number is read as written or through its decimal form.
        let range = format!(
            "is outside the integer range ({} to {})",
            i64::MIN,
            i64::MAX
        );
        assert_eq!(
            message(json(t, json!(u64::MAX))),
            format!("18446744073709551615 {range}")
        );
        assert_eq!(message(json(t, json!(1e19))), format!("1e+19 {range}"));
        assert_eq!(code(json(t, json!(1e19))), RowErrorCode::OutOfRange);
        assert_eq!(
            code(json(t, json!(9.223_372_036_854_776e18))),
            RowErrorCode::OutOfRange
        );
        assert_eq!(code(json(t, json!(true))), RowErrorCode::InvalidInteger);
        assert_eq!(code(json(t, json!([1]))), RowErrorCode::InvalidInteger);
        assert_eq!(code(json(t, json!({"a": 1}))), RowErrorCode::InvalidInteger);
        assert_eq!(code(json(t, json!("1e3"))), RowErrorCode::InvalidInteger);
        assert_eq!(message(json(t, json!(true))), "true is not an integer");
    }

    // float

    #[test]
    fn floats_parse_like_rust() {
        let t = ColumnType::Float;
        assert_eq!(text(t, "1.5"), Ok(Value::Float(1.5)));
        assert_eq!(text(t, " -2 "), Ok(Value::Float(-2.0)));
        assert_eq!(text(t, "1e3"), Ok(Value::Float(1000.0)));
        assert_eq!(text(t, ".5"), Ok(Value::Float(0.5)));
        assert_eq!(text(t, "1E-2"), Ok(Value::Float(0.01)));
    }

    #[test]
    fn floats_refuse_non_finite_values_and_words() {
        let t = ColumnType::Float;
        for raw in ["NaN", "nan", "inf", "-inf", "Infinity", "+infinity"] {
            assert_eq!(code(text(t, raw)), RowErrorCode::InvalidFloat, "{raw}");
        }
        assert_eq!(message(text(t, "inf")), "\"inf\" is not a finite number");
        assert_eq!(code(text(t, "1,5")), RowErrorCode::InvalidFloat);
        assert_eq!(message(text(t, "abc")), "\"abc\" is not a number");
        assert_eq!(code(text(t, "1e400")), RowErrorCode::OutOfRange);
    }

    #[test]
    fn json_floats_accept_numbers_and_numeric_strings_only() {
        let t = ColumnType::Float;
        assert_eq!(json(t, json!(2.5)), Ok(Value::Float(2.5)));
        assert_eq!(json(t, json!(3)), Ok(Value::Float(3.0)));
        assert_eq!(json(t, json!("4.25")), Ok(Value::Float(4.25)));
        assert_eq!(code(json(t, json!("NaN"))), RowErrorCode::InvalidFloat);
        assert_eq!(code(json(t, json!(false))), RowErrorCode::InvalidFloat);
        assert_eq!(code(json(t, json!({}))), RowErrorCode::InvalidFloat);
    }

    // decimal

    #[test]
    fn decimals_are_canonicalised() {
        assert_eq!(dec("007.50"), decimal("7.5"));
        assert_eq!(dec("1.5e3"), decimal("1500"));
        assert_eq!(dec("-0.00"), decimal("0"));
        assert_eq!(dec(".5"), decimal("0.5"));
        assert_eq!(dec("1e-3"), decimal("0.001"));
        assert_eq!(dec("0"), decimal("0"));
        assert_eq!(dec("000"), decimal("0"));
        assert_eq!(dec("+12"), decimal("12"));
        assert_eq!(dec("12."), decimal("12"));
        assert_eq!(dec("-12.340"), decimal("-12.34"));
        assert_eq!(dec("100"), decimal("100"));
        assert_eq!(dec("1000e-3"), decimal("1"));
        assert_eq!(dec("123.456E1"), decimal("1234.56"));
        assert_eq!(dec("123.456e-5"), decimal("0.00123456"));
        assert_eq!(dec("-0.003"), decimal("-0.003"));
        assert_eq!(dec("0e999999999999999999999"), decimal("0"));
        assert_eq!(dec(" 3.14 "), decimal("3.14"));
    }

    #[test]
    fn decimals_refuse_what_the_grammar_does_not_allow() {
        for raw in [
            "12.3.4", ".", "+", "-", "1e", "1e+", "e3", "1,5", "0x1", "NaN", "1.5f", "--1",
        ] {
            assert_eq!(code(dec(raw)), RowErrorCode::InvalidDecimal, "{raw}");
        }
        assert_eq!(message(dec("12.3.4")), "\"12.3.4\" is not a decimal number");
    }

    #[test]
    fn decimals_have_at_most_1000_digits() {
        assert_eq!(dec("1e999"), decimal(&format!("1{}", "0".repeat(999))));
        assert_eq!(code(dec("1e1000")), RowErrorCode::InvalidDecimal);
        assert_eq!(dec("1e-998"), decimal(&format!("0.{}1", "0".repeat(997))));
        assert_eq!(dec("1e-999"), decimal(&format!("0.{}1", "0".repeat(998))));
        assert_eq!(code(dec("1e-1000")), RowErrorCode::InvalidDecimal);
        assert_eq!(code(dec("1e99999999999999")), RowErrorCode::InvalidDecimal);
        let long = "9".repeat(1001);
        assert_eq!(
            message(dec(&long)),
            format!("\"{}…\" has more than 1000 digits", "9".repeat(60))
        );
        // Leading and trailing zeros are not digits of the canonical form.
        let padded = format!(
            "{}5{}",
            "0".repeat(2000),
            ".0".to_owned() + &"0".repeat(2000)
        );
        assert_eq!(dec(&padded), decimal("5"));
    }

    #[test]
    fn json_decimals_use_the_numbers_text() {
        let t = ColumnType::Decimal;
        assert_eq!(json(t, json!(12.50)), decimal("12.5"));
        assert_eq!(json(t, json!(-3)), decimal("-3"));
        assert_eq!(json(t, json!(1e21)), decimal("1000000000000000000000"));
        assert_eq!(json(t, json!(1e-7)), decimal("0.0000001"));
        assert_eq!(json(t, json!("0012.300")), decimal("12.3"));
        assert_eq!(code(json(t, json!(true))), RowErrorCode::InvalidDecimal);
        assert_eq!(code(json(t, json!("x"))), RowErrorCode::InvalidDecimal);
    }

    // boolean

    #[test]
    fn booleans_accept_the_usual_words_in_any_case() {
        let t = ColumnType::Boolean;
        for raw in ["true", "TRUE", "t", "Yes", "y", "1", "on", " On "] {
            assert_eq!(text(t, raw), Ok(Value::Bool(true)), "{raw}");
        }
        for raw in ["false", "False", "F", "no", "N", "0", "off", "OFF"] {
            assert_eq!(text(t, raw), Ok(Value::Bool(false)), "{raw}");
        }
        for raw in ["2", "yess", "truee", "maybe", "-1", "00"] {
            assert_eq!(code(text(t, raw)), RowErrorCode::InvalidBoolean, "{raw}");
        }
        assert_eq!(
            message(text(t, "maybe")),
            "\"maybe\" is not a boolean (true/false, yes/no, 1/0, on/off)"
        );
    }

    #[test]
    fn json_booleans_accept_bools_zero_one_and_words() {
        let t = ColumnType::Boolean;
        assert_eq!(json(t, json!(true)), Ok(Value::Bool(true)));
        assert_eq!(json(t, json!(0)), Ok(Value::Bool(false)));
        assert_eq!(json(t, json!(1)), Ok(Value::Bool(true)));
        assert_eq!(json(t, json!("no")), Ok(Value::Bool(false)));
        assert_eq!(code(json(t, json!(2))), RowErrorCode::InvalidBoolean);
        assert_eq!(code(json(t, json!(1.5))), RowErrorCode::InvalidBoolean);
        assert_eq!(code(json(t, json!([]))), RowErrorCode::InvalidBoolean);
    }

    // date

    #[test]
    fn dates_are_yyyy_mm_dd_on_the_calendar() {
        let t = ColumnType::Date;
        assert_eq!(
            text(t, "2024-02-29"),
            Ok(Value::Date(date!(2024 - 02 - 29)))
        );
        assert_eq!(
            text(t, " 0001-01-01 "),
            Ok(Value::Date(date!(0001 - 01 - 01)))
        );
        assert_eq!(code(text(t, "2023-02-29")), RowErrorCode::InvalidDate);
        assert_eq!(
            message(text(t, "2023-02-30")),
            "\"2023-02-30\" is not a valid calendar date"
        );
        assert_eq!(code(text(t, "2023-13-01")), RowErrorCode::InvalidDate);
        for raw in [
            "2023-1-01",
            "15/03/2023",
            "2023-01-01T00:00:00",
            "20230101",
            "2023-01-0x",
        ] {
            assert_eq!(code(text(t, raw)), RowErrorCode::InvalidDate, "{raw}");
        }
        assert_eq!(
            message(text(t, "15/03/2023")),
            "\"15/03/2023\" is not a date (YYYY-MM-DD)"
        );
        assert_eq!(
            json(t, json!("2020-01-02")),
            Ok(Value::Date(date!(2020 - 01 - 02)))
        );
        assert_eq!(code(json(t, json!(20200102))), RowErrorCode::InvalidDate);
    }

    // datetime

    fn dt(raw: &str) -> Result<Value, CoerceError> {
        text(ColumnType::Datetime, raw)
    }

    fn utc(t: OffsetDateTime) -> Result<Value, CoerceError> {
        Ok(Value::Datetime(t))
    }

    #[test]
    fn datetimes_are_converted_to_utc() {
        assert_eq!(
            dt("2021-05-15T03:58:45-05:00"),
            utc(datetime!(2021-05-15 08:58:45 UTC))
        );
        assert_eq!(
            dt("2021-05-15T03:58:45+05:30"),
            utc(datetime!(2021-05-14 22:28:45 UTC))
        );
        assert_eq!(
            dt("2021-05-15T03:58:45+0530"),
            utc(datetime!(2021-05-14 22:28:45 UTC))
        );
        assert_eq!(
            dt("2023-11-26T12:16:48.320Z"),
            utc(datetime!(2023-11-26 12:16:48.32 UTC))
        );
        let Ok(Value::Datetime(t)) = dt("2021-05-15T03:58:45-05:00") else {
            panic!("parses");
        };
        assert_eq!(t.offset(), UtcOffset::UTC);
    }

    #[test]
    fn datetimes_accept_the_common_relaxations() {
        assert_eq!(
            dt("2024-01-01 10:30:00"),
            utc(datetime!(2024-01-01 10:30 UTC))
        );
        assert_eq!(
            dt("2024-01-01t10:30:00z"),
            utc(datetime!(2024-01-01 10:30 UTC))
        );
        assert_eq!(dt("2024-01-01T10:30"), utc(datetime!(2024-01-01 10:30 UTC)));
        assert_eq!(
            dt("2024-01-01T10:30+01:00"),
            utc(datetime!(2024-01-01 09:30 UTC))
        );
        assert_eq!(dt("2024-01-01"), utc(datetime!(2024-01-01 0:00 UTC)));
        assert_eq!(
            dt("2024-01-01T00:00:00.123456789Z"),
            utc(datetime!(2024-01-01 0:00:00.123456789 UTC))
        );
        assert_eq!(
            dt("2024-01-01T00:00:00.1"),
            utc(datetime!(2024-01-01 0:00:00.1 UTC))
        );
    }

    #[test]
    fn datetimes_refuse_malformed_or_impossible_times() {
        for raw in [
            "2024-01-01T",
            "2024-01-01T10",
            "2024-01-01T25:00:00Z",
            "2024-01-01T10:60",
            "2024-01-01T10:30:61",
            "2024-01-01T10:30:00.Z",
            "2024-01-01T10:30:00.1234567890Z",
            "2024-01-01T10:30:00+24:00",
            "2024-01-01T10:30:00+05:3",
            "2024-01-01T10:30:00 +05:00",
            "2024-01-01T10:30:00ZZ",
            "2024-02-30T10:30:00Z",
            "2024/01-01 10:30",
            "9999-12-31T23:00:00-05:00",
            "yesterday",
        ] {
            assert_eq!(code(dt(raw)), RowErrorCode::InvalidDatetime, "{raw}");
        }
        assert_eq!(
            message(dt("yesterday")),
            "\"yesterday\" is not a datetime (like 2024-01-31T10:30:00Z)"
        );
        assert_eq!(
            code(json(ColumnType::Datetime, json!(1700000000))),
            RowErrorCode::InvalidDatetime
        );
    }

    // email

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        let t = ColumnType::Email;
        assert_eq!(
            text(t, " ann@example.com "),
            Ok(Value::Text("ann@example.com".into()))
        );
        assert_eq!(
            text(t, "a.b+c@mail-1.example.co.uk"),
            Ok(Value::Text("a.b+c@mail-1.example.co.uk".into()))
        );
        // Internationalised domains and local parts.
        for raw in ["ann@müller.de", "josé@exämple.com", "用户@例子.广告"] {
            assert_eq!(text(t, raw), Ok(Value::Text(raw.into())), "{raw}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b.".repeat(130));
        for raw in [
            "ann",
            "@example.com",
            "ann@",
            "ann@localhost",
            "ann@@example.com",
            "ann@b@example.com",
            "ann@-example.com",
            "ann@example-.com",
            "ann@example..com",
            "ann@example.com.",
            "ann@exa_mple.com",
            "a nn@example.com",
            "a\tnn@example.com",
            "a\u{7f}nn@example.com",
            "jos\u{e9}\u{a0}x@example.com",
            "ann@exam ple.com",
            long_local.as_str(),
            long_total.as_str(),
        ] {
            assert_eq!(code(text(t, raw)), RowErrorCode::InvalidEmail, "{raw}");
        }
        assert_eq!(message(text(t, "ann")), "\"ann\" is not an email address");
        assert_eq!(code(json(t, json!(5))), RowErrorCode::InvalidEmail);
    }

    // url

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        let t = ColumnType::Url;
        for raw in [
            "https://example.com",
            "http://example.com/a?b=c#d",
            "git+ssh://git@github.com:22/x.git",
            "http://[::1]:8080/",
            "ftp://host",
            "https://müller.de/straße",
        ] {
            assert_eq!(text(t, raw), Ok(Value::Text(raw.into())), "{raw}");
        }
        assert_eq!(
            text(t, " https://x.org "),
            Ok(Value::Text("https://x.org".into()))
        );
        for raw in [
            "example.com",
            "https:/example.com",
            "https://",
            "https:///path",
            "http://:80/",
            "http://user@/",
            "1http://x.org",
            "ht_tp://x.org",
            "https://exa mple.com",
            "https://x.org/\u{7}",
        ] {
            assert_eq!(code(text(t, raw)), RowErrorCode::InvalidUrl, "{raw}");
        }
        assert_eq!(
            message(text(t, "example.com")),
            "\"example.com\" is not a URL"
        );
    }

    // uuid

    #[test]
    fn uuids_accept_every_form_the_uuid_crate_reads() {
        let t = ColumnType::Uuid;
        let id = uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").expect("valid");
        for raw in [
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            " 67e55044-10b1-426f-9247-bb680e5fe0c8 ",
        ] {
            assert_eq!(text(t, raw), Ok(Value::Uuid(id)), "{raw}");
        }
        assert_eq!(
            code(text(t, "67e55044-10b1-426f-9247")),
            RowErrorCode::InvalidUuid
        );
        assert_eq!(message(text(t, "nope")), "\"nope\" is not a UUID");
        assert_eq!(code(json(t, json!(12))), RowErrorCode::InvalidUuid);
    }

    // enum

    fn enum_coercer(values: &[&str]) -> ColumnCoercer {
        let mut s = spec(ColumnType::Enum);
        s.values = Some(values.iter().map(|v| v.to_string()).collect());
        ColumnCoercer::new(&s).expect("compiles")
    }

    #[test]
    fn enums_match_allowed_values_exactly_after_trimming() {
        let c = enum_coercer(&["red", "green", "1"]);
        assert_eq!(c.coerce_text(" red "), Ok(Value::Text("red".into())));
        assert_eq!(code(c.coerce_text("Red")), RowErrorCode::InvalidEnum);
        assert_eq!(
            message(c.coerce_text("blue")),
            "\"blue\" is not one of the allowed values: \"red\", \"green\", \"1\""
        );
        assert_eq!(
            c.coerce_json(&json!("green")),
            Ok(Value::Text("green".into()))
        );
        assert_eq!(c.coerce_json(&json!(1)), Ok(Value::Text("1".into())));
        assert_eq!(
            code(c.coerce_json(&json!(["red"]))),
            RowErrorCode::InvalidEnum
        );
    }

    #[test]
    fn enum_messages_list_at_most_ten_values() {
        let values: Vec<String> = (1..=12).map(|i| format!("v{i}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let m = message(enum_coercer(&refs).coerce_text("x"));
        assert!(m.ends_with("\"v9\", \"v10\", and 2 more"), "{m}");
        assert!(!m.contains("v11"));
    }

    #[test]
    fn an_enum_without_values_does_not_compile() {
        assert!(ColumnCoercer::new(&spec(ColumnType::Enum)).is_err());
    }

    // json

    #[test]
    fn json_text_is_validated_and_stored_compactly() {
        let t = ColumnType::Json;
        assert_eq!(
            text(t, r#" { "a" : [1, 2] } "#),
            Ok(Value::Json(r#"{"a":[1,2]}"#.into()))
        );
        assert_eq!(text(t, "42"), Ok(Value::Json("42".into())));
        assert_eq!(text(t, "\"abc\""), Ok(Value::Json("\"abc\"".into())));
        assert_eq!(text(t, "null"), Ok(Value::Json("null".into())));
        assert_eq!(code(text(t, "{a:1}")), RowErrorCode::InvalidJson);
        assert_eq!(code(text(t, "abc")), RowErrorCode::InvalidJson);
        assert!(message(text(t, "{a:1}")).starts_with("\"{a:1}\" is not valid JSON: "));
    }

    #[test]
    fn a_json_cell_writes_the_text_its_parsed_value_would() {
        for text in [
            r#""tab\there \"quoted\" \u00e9 \u0001""#,
            "12345678901234567890.000000000000000000001",
            "-0",
            "1E5",
            "true",
            "null",
            r#"{"b": [1, {"c": null}], "a": "x"}"#,
            "[]",
        ] {
            let v: Json = serde_json::from_str(text).unwrap();
            assert_eq!(JsonCell::of(&v).json_text(), v.to_string(), "{text}");
        }
        // A number read in place coerces as the parsed number does.
        for ty in [ColumnType::Integer, ColumnType::Float, ColumnType::Decimal] {
            let c = coercer(ty);
            let v: Json = serde_json::from_str("1E5").unwrap();
            assert_eq!(c.coerce_cell(JsonCell::Number("1e+5")), c.coerce_json(&v));
        }
    }

    #[test]
    fn json_values_are_stored_as_their_compact_text() {
        let t = ColumnType::Json;
        assert_eq!(
            json(t, json!({"b": [1, {"c": null}]})),
            Ok(Value::Json(r#"{"b":[1,{"c":null}]}"#.into()))
        );
        assert_eq!(json(t, json!("abc")), Ok(Value::Json("\"abc\"".into())));
        assert_eq!(json(t, json!(1.5)), Ok(Value::Json("1.5".into())));
        assert_eq!(json(t, json!(null)), Ok(Value::Null));
    }

    // string

    #[test]
    fn strings_keep_their_bytes_exactly() {
        let t = ColumnType::String;
        for raw in ["  padded  ", "line\r\nbreak\n", "", " ", "é"] {
            assert_eq!(text(t, raw), Ok(Value::Text(raw.into())), "{raw:?}");
        }
        // Except a NUL, which no database text value can hold on every backend.
        assert_eq!(code(text(t, "a\0b")), RowErrorCode::InvalidEncoding);
    }

    #[test]
    fn json_strings_take_scalars_as_their_text_but_not_containers() {
        let t = ColumnType::String;
        assert_eq!(json(t, json!("  x ")), Ok(Value::Text("  x ".into())));
        assert_eq!(json(t, json!(12.5)), Ok(Value::Text("12.5".into())));
        assert_eq!(json(t, json!(false)), Ok(Value::Text("false".into())));
        assert_eq!(code(json(t, json!({"a": 1}))), RowErrorCode::InvalidType);
        assert_eq!(
            message(json(t, json!({"a": 1}))),
            "expected a string, got an object"
        );
        assert_eq!(
            message(json(t, json!([1]))),
            "expected a string, got an array"
        );
    }

    // constraints

    #[test]
    fn lengths_are_counted_in_characters() {
        let mut s = spec(ColumnType::String);
        s.max_length = Some(3);
        s.min_length = Some(2);
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(c.coerce_text("ééé"), Ok(Value::Text("ééé".into())));
        assert_eq!(c.coerce_text("ab"), Ok(Value::Text("ab".into())));
        assert_eq!(code(c.coerce_text("abcd")), RowErrorCode::TooLong);
        assert_eq!(
            message(c.coerce_text("éééé")),
            "\"éééé\" is too long: 4 characters, at most 3 allowed"
        );
        assert_eq!(code(c.coerce_text("é")), RowErrorCode::TooShort);
        assert_eq!(
            message(c.coerce_text("")),
            "\"\" is too short: 0 characters, at least 2 required"
        );
        assert_eq!(code(c.coerce_json(&json!("abcd"))), RowErrorCode::TooLong);
    }

    #[test]
    fn lengths_apply_to_emails_after_trimming() {
        let mut s = spec(ColumnType::Email);
        s.max_length = Some(7);
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(
            c.coerce_text("  a@b.co  "),
            Ok(Value::Text("a@b.co".into()))
        );
        assert_eq!(code(c.coerce_text("ab@c.com")), RowErrorCode::TooLong);
    }

    #[test]
    fn patterns_must_match_the_whole_value() {
        let mut s = spec(ColumnType::String);
        s.pattern = Some("[A-Z]{2}|[0-9]+".into());
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(c.coerce_text("AB"), Ok(Value::Text("AB".into())));
        assert_eq!(c.coerce_text("123"), Ok(Value::Text("123".into())));
        assert_eq!(code(c.coerce_text("ABC")), RowErrorCode::PatternMismatch);
        assert_eq!(code(c.coerce_text("x123")), RowErrorCode::PatternMismatch);
        assert_eq!(code(c.coerce_text("AB\n")), RowErrorCode::PatternMismatch);
        assert_eq!(
            message(c.coerce_text("ABC")),
            "\"ABC\" does not match the pattern \"[A-Z]{2}|[0-9]+\""
        );
    }

    #[test]
    fn a_pattern_cannot_escape_its_anchors() {
        let mut s = spec(ColumnType::String);
        s.pattern = Some("a)|(b".into());
        assert!(ColumnCoercer::new(&s).is_err());
        s.pattern = Some("(".into());
        let e = ColumnCoercer::new(&s).err().unwrap_or_default();
        assert!(e.starts_with("invalid pattern: "), "{e}");
    }

    #[test]
    fn numbers_are_checked_against_min_and_max() {
        let mut s = spec(ColumnType::Integer);
        s.min = Some(0.0);
        s.max = Some(100.0);
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(c.coerce_text("0"), Ok(Value::Int(0)));
        assert_eq!(c.coerce_text("100"), Ok(Value::Int(100)));
        assert_eq!(
            message(c.coerce_text("150")),
            "150 is above the maximum of 100"
        );
        assert_eq!(
            message(c.coerce_json(&json!(-1))),
            "-1 is below the minimum of 0"
        );
        assert_eq!(code(c.coerce_text("101")), RowErrorCode::OutOfRange);

        s.ty = ColumnType::Float;
        s.max = Some(1.5);
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(c.coerce_text("1.5"), Ok(Value::Float(1.5)));
        assert_eq!(
            message(c.coerce_text("1.75")),
            "1.75 is above the maximum of 1.5"
        );

        s.ty = ColumnType::Decimal;
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(c.coerce_text("1.50"), decimal("1.5"));
        assert_eq!(
            message(c.coerce_text("0001.60")),
            "1.6 is above the maximum of 1.5"
        );
        assert_eq!(code(c.coerce_text("-0.1")), RowErrorCode::OutOfRange);
        assert_eq!(code(c.coerce_text("1e999")), RowErrorCode::OutOfRange);
    }

    // missing values and defaults

    #[test]
    fn missing_values_are_null_unless_required() {
        let mut s = spec(ColumnType::String);
        assert_eq!(
            ColumnCoercer::new(&s).expect("compiles").missing(),
            Ok(Value::Null)
        );
        s.required = true;
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(
            c.missing(),
            Err(CoerceError {
                code: RowErrorCode::MissingRequired,
                message: "a value is required".into()
            })
        );
        assert_eq!(
            code(c.coerce_json(&json!(null))),
            RowErrorCode::MissingRequired
        );
    }

    #[test]
    fn missing_values_take_the_coerced_default() {
        let mut s = spec(ColumnType::Decimal);
        s.required = true;
        s.default = Some(json!("010.50"));
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(c.missing(), decimal("10.5"));
        assert_eq!(c.coerce_text("  "), decimal("10.5"));
        assert_eq!(c.coerce_json(&json!(null)), decimal("10.5"));

        let mut s = spec(ColumnType::Datetime);
        s.default = Some(json!("2024-01-01T01:00:00+01:00"));
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(c.missing(), utc(datetime!(2024-01-01 0:00 UTC)));
    }

    #[test]
    fn a_null_default_is_no_default() {
        let mut s = spec(ColumnType::Integer);
        s.required = true;
        s.default = Some(json!(null));
        let c = ColumnCoercer::new(&s).expect("compiles");
        assert_eq!(code(c.missing()), RowErrorCode::MissingRequired);
    }

    #[test]
    fn an_invalid_default_does_not_compile() {
        let mut s = spec(ColumnType::Integer);
        s.default = Some(json!("abc"));
        assert_eq!(
            ColumnCoercer::new(&s).err(),
            Some("default \"abc\" is not valid: \"abc\" is not an integer".into())
        );
        s.default = Some(json!(500));
        s.max = Some(10.0);
        assert_eq!(
            ColumnCoercer::new(&s).err(),
            Some("default 500 is not valid: 500 is above the maximum of 10".into())
        );
    }

    // messages

    #[test]
    fn messages_quote_at_most_sixty_characters() {
        let long = "x".repeat(100);
        let m = message(text(ColumnType::Integer, &long));
        assert_eq!(m, format!("\"{}…\" is not an integer", "x".repeat(60)));
        let m = message(text(ColumnType::Integer, "a\"b\0"));
        assert_eq!(m, "\"a\\\"b\\u0000\" is not an integer");
        let big = json!({"k": "y".repeat(100)});
        let m = message(json(ColumnType::Date, big));
        assert!(m.ends_with("… is not a date (YYYY-MM-DD)"), "{m}");
        assert!(m.chars().count() < 100, "{m}");
    }
}
