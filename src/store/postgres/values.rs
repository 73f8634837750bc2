//! How values are represented in PostgreSQL: the native type of each column type, the binary
//! wire encoding of a value (shared by COPY and bound parameters), and the JSON a stored cell
//! reads back as (the same as the SQLite backend's, value for value).

use std::error::Error;

use ::postgres::Row;
use ::postgres::types::private::BytesMut;
use ::postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use time::{OffsetDateTime, UtcOffset};

use crate::model::schema::ColumnSpec;
use crate::model::{ColumnType, Value};
pub use crate::store::ddl::quote;
use crate::store::text::{date_text, datetime_text};

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// The declared type of a column.
pub fn declared_type(col: &ColumnSpec) -> String {
    match (col.ty, col.max_length) {
        (ColumnType::String | ColumnType::Email | ColumnType::Url | ColumnType::Enum, Some(n))
            if n > 0 && n <= 10_485_760 =>
        {
            format!("varchar({n})")
        }
        (ty, _) => scalar_type(ty).to_owned(),
    }
}

/// The type a value of a column type is cast to in statements (text for every textual type).
pub fn scalar_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Integer => "bigint",
        ColumnType::Float => "double precision",
        // Unconstrained: the canonical decimal text comes back exactly as it went in.
        ColumnType::Decimal => "numeric",
        ColumnType::Boolean => "boolean",
        ColumnType::Date => "date",
        ColumnType::Datetime => "timestamptz",
        ColumnType::Uuid => "uuid",
        // `json` keeps the document as written; `jsonb` would reorder its keys.
        ColumnType::Json => "json",
        ColumnType::String | ColumnType::Email | ColumnType::Url | ColumnType::Enum => "text",
    }
}

/// The expression a column is selected with to read it back: decimals and JSON as their text.
pub fn read_expr(alias: &str, col: &ColumnSpec) -> String {
    let c = format!("{alias}{}", quote(col.name.as_str()));
    match col.ty {
        ColumnType::Decimal | ColumnType::Json => format!("{c}::text"),
        _ => c,
    }
}

/// The expression two versions of a column compare by (JSON has no equality operator; its
/// text is what the SQLite backend compares too).
pub fn compare_expr(alias: &str, col: &ColumnSpec) -> String {
    let c = format!("{alias}{}", quote(col.name.as_str()));
    match col.ty {
        ColumnType::Json => format!("{c}::text"),
        _ => c,
    }
}

/// Why a value cannot be stored as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unstorable {
    /// PostgreSQL text cannot hold U+0000.
    Nul,
    /// The value does not fit the column type (cannot come out of validation).
    Mismatch,
}

/// Microseconds from 2000-01-01 UTC (PostgreSQL's epoch), rounded down: PostgreSQL keeps
/// microseconds.
pub fn pg_micros(t: OffsetDateTime) -> i64 {
    let nanos = t.to_offset(UtcOffset::UTC).unix_timestamp_nanos();
    let micros = nanos.div_euclid(1_000);
    (micros - 946_684_800_000_000) as i64
}

/// Days from 2000-01-01.
fn pg_days(d: time::Date) -> i32 {
    d.to_julian_day() - 2_451_545
}

/// Appends the binary wire form of a (non-null) value of type `ty`, without its length.
pub fn encode_value(ty: ColumnType, v: &Value, out: &mut Vec<u8>) -> Result<(), Unstorable> {
    match (ty, v) {
        (ColumnType::Integer, Value::Int(i)) => out.extend_from_slice(&i.to_be_bytes()),
        (ColumnType::Float, Value::Float(f)) => out.extend_from_slice(&f.to_be_bytes()),
        (ColumnType::Boolean, Value::Bool(b)) => out.push(u8::from(*b)),
        (ColumnType::Decimal, Value::Decimal(s)) => encode_numeric(s, out)?,
        (ColumnType::Date, Value::Date(d)) => out.extend_from_slice(&pg_days(*d).to_be_bytes()),
        (ColumnType::Datetime, Value::Datetime(t)) => {
            out.extend_from_slice(&pg_micros(*t).to_be_bytes())
        }
        (ColumnType::Uuid, Value::Uuid(u)) => out.extend_from_slice(u.as_bytes()),
        (ColumnType::Json, Value::Json(s)) => out.extend_from_slice(s.as_bytes()),
        (
            ColumnType::String | ColumnType::Email | ColumnType::Url | ColumnType::Enum,
            Value::Text(s),
        ) => {
            if s.as_bytes().contains(&0) {
                return Err(Unstorable::Nul);
            }
            out.extend_from_slice(s.as_bytes())
        }
        _ => return Err(Unstorable::Mismatch),
    }
    Ok(())
}

/// Appends one field of a binary COPY tuple: its length (-1 for null) and its bytes.
pub fn encode_field(ty: ColumnType, v: &Value, out: &mut Vec<u8>) -> Result<(), Unstorable> {
    if v.is_null() {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_value(ty, v, out)?;
    let len = i32::try_from(out.len() - at - 4).map_err(|_| Unstorable::Mismatch)?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// The binary form of a canonical decimal (`-12.5`, `1000`, `0.003`): base-10000 digits,
/// weight, sign and display scale, the scale being the number of fractional digits written.
fn encode_numeric(s: &str, out: &mut Vec<u8>) -> Result<(), Unstorable> {
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(Unstorable::Mismatch);
    }
    let int = int.trim_start_matches('0');
    let group = |chunk: &[u8]| -> i16 {
        chunk
            .iter()
            .fold(0i16, |acc, &b| acc * 10 + i16::from(b - b'0'))
    };
    let mut digits: Vec<i16> = Vec::with_capacity((int.len() + frac.len()) / 4 + 2);
    let lead = (4 - int.len() % 4) % 4;
    let mut padded = Vec::with_capacity(int.len() + lead);
    padded.resize(lead, b'0');
    padded.extend_from_slice(int.as_bytes());
    digits.extend(padded.chunks(4).map(group));
    let int_groups = digits.len();
    let mut fpadded = frac.as_bytes().to_vec();
    fpadded.resize(frac.len().div_ceil(4) * 4, b'0');
    digits.extend(fpadded.chunks(4).map(group));
    let mut weight = int_groups as i64 - 1;
    let first = digits.iter().position(|&d| d != 0);
    let digits: &[i16] = match first {
        None => {
            weight = 0;
            &[]
        }
        Some(first) => {
            weight -= first as i64;
            let last = digits.iter().rposition(|&d| d != 0).unwrap_or(first);
            &digits[first..=last]
        }
    };
    let ndigits = i16::try_from(digits.len()).map_err(|_| Unstorable::Mismatch)?;
    let weight = i16::try_from(weight).map_err(|_| Unstorable::Mismatch)?;
    let dscale = u16::try_from(frac.len()).map_err(|_| Unstorable::Mismatch)?;
    let sign: u16 = if negative && !digits.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    Ok(())
}

/// A column value bound as a statement parameter, in the same wire form COPY uses. The
/// statement casts its parameter to the column's type (`$1::bigint`).
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    pub ty: ColumnType,
    pub value: &'a Value,
}

impl ToSql for Cell<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if self.value.is_null() {
            return Ok(IsNull::Yes);
        }
        let mut buf = Vec::new();
        encode_value(self.ty, self.value, &mut buf).map_err(|e| match e {
            Unstorable::Nul => "text cannot contain the NUL character",
            Unstorable::Mismatch => "value does not match its column type",
        })?;
        out.extend_from_slice(&buf);
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        // The statement's cast fixes the type; `encode_value` checks the value matches it.
        true
    }

    to_sql_checked!();
}

/// The header of a binary COPY stream.
pub fn copy_header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// The trailer of a binary COPY stream.
pub fn copy_trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// A stored cell (selected with [`read_expr`]) as JSON, the way the records API shows it.
pub fn cell_to_json(
    ty: ColumnType,
    row: &Row,
    i: usize,
) -> Result<serde_json::Value, ::postgres::Error> {
    use serde_json::Value as J;
    Ok(match ty {
        ColumnType::Integer => row.try_get::<_, Option<i64>>(i)?.map_or(J::Null, J::from),
        ColumnType::Float => row
            .try_get::<_, Option<f64>>(i)?
            .and_then(serde_json::Number::from_f64)
            .map_or(J::Null, J::Number),
        ColumnType::Boolean => row.try_get::<_, Option<bool>>(i)?.map_or(J::Null, J::Bool),
        ColumnType::Date => row
            .try_get::<_, Option<time::Date>>(i)?
            .map_or(J::Null, |d| J::String(date_text(d))),
        ColumnType::Datetime => row
            .try_get::<_, Option<OffsetDateTime>>(i)?
            .map_or(J::Null, |t| J::String(datetime_text(t))),
        ColumnType::Uuid => row
            .try_get::<_, Option<uuid::Uuid>>(i)?
            .map_or(J::Null, |u| J::String(u.hyphenated().to_string())),
        ColumnType::Json => match row.try_get::<_, Option<String>>(i)? {
            None => J::Null,
            Some(t) => serde_json::from_str(&t).unwrap_or(J::String(t)),
        },
        ColumnType::Decimal
        | ColumnType::String
        | ColumnType::Email
        | ColumnType::Url
        | ColumnType::Enum => row
            .try_get::<_, Option<String>>(i)?
            .map_or(J::Null, J::String),
    })
}

/// PostgreSQL keeps the store's records in native types: `uuid`, `timestamptz`, `jsonb`,
/// `text[]`, and `bigint` for every integer.
impl crate::store::stored_row::StoredRow for Row {
    fn uuid(&self, i: usize) -> crate::store::StoreResult<uuid::Uuid> {
        Ok(self.try_get(i)?)
    }
    fn text_opt(&self, i: usize) -> crate::store::StoreResult<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int_opt(&self, i: usize) -> crate::store::StoreResult<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> crate::store::StoreResult<bool> {
        Ok(self.try_get(i)?)
    }
    fn json(&self, i: usize) -> crate::store::StoreResult<serde_json::Value> {
        Ok(self
            .try_get::<_, Option<serde_json::Value>>(i)?
            .unwrap_or_default())
    }
    fn time_opt(&self, i: usize) -> crate::store::StoreResult<Option<OffsetDateTime>> {
        Ok(self.try_get(i)?)
    }
    fn texts(&self, i: usize) -> crate::store::StoreResult<Vec<String>> {
        Ok(self
            .try_get::<_, Option<Vec<String>>>(i)?
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_numeric(s, &mut out).expect("canonical decimal");
        out
    }

    fn words(v: &[i16]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn decimals_encode_as_base_10000_digits_with_their_scale() {
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(numeric("0"), words(&[0, 0, 0, 0]));
        assert_eq!(numeric("1000"), words(&[1, 0, 0, 0, 1000]));
        assert_eq!(numeric("12345.5"), words(&[3, 1, 0, 1, 1, 2345, 5000]));
        assert_eq!(numeric("-0.003"), {
            let mut v = words(&[1, -1, 0, 3, 30]);
            v[4..6].copy_from_slice(&0x4000u16.to_be_bytes());
            v
        });
        assert_eq!(numeric("0.00005"), words(&[1, -2, 0, 5, 5000]));
        assert_eq!(numeric("100000000"), words(&[1, 2, 0, 0, 1]));
    }
}

/// Parameters of a statement built at run time: each `push` returns its placeholder.
#[derive(Default)]
pub struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    /// Adds a parameter and returns its placeholder (`$3`).
    pub fn push<T: ToSql + Sync + Send + 'static>(&mut self, value: T) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    /// How many parameters are bound.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The parameters, to pass to a query.
    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}
