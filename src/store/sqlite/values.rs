//! How values and timestamps are represented in SQLite.

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::{ColumnType, Value};
use crate::store::StoreResult;
pub use crate::store::ddl::quote;
pub use crate::store::text::{date_text, datetime_text, ts};

/// Parses a timestamp written by [`ts`].
pub fn parse_ts(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Parses an optional timestamp column.
pub fn parse_ts_opt(s: Option<String>) -> Option<OffsetDateTime> {
    s.map(|s| parse_ts(&s))
}

/// The store's records keep UUIDs and times as text, JSON as its text, and lists of texts
/// as JSON arrays.
impl crate::store::stored_row::StoredRow for rusqlite::Row<'_> {
    fn uuid(&self, i: usize) -> StoreResult<uuid::Uuid> {
        Ok(uuid::Uuid::parse_str(&self.get::<_, String>(i)?).unwrap_or_default())
    }
    fn text_opt(&self, i: usize) -> StoreResult<Option<String>> {
        Ok(self.get(i)?)
    }
    fn int_opt(&self, i: usize) -> StoreResult<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn flag(&self, i: usize) -> StoreResult<bool> {
        Ok(self.get(i)?)
    }
    fn json(&self, i: usize) -> StoreResult<serde_json::Value> {
        let text: Option<String> = self.get(i)?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }
    fn time_opt(&self, i: usize) -> StoreResult<Option<OffsetDateTime>> {
        Ok(parse_ts_opt(self.get(i)?))
    }
    fn texts(&self, i: usize) -> StoreResult<Vec<String>> {
        let text: Option<String> = self.get(i)?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }
}

/// The SQLite value a column value is stored as.
pub fn to_sql(v: &Value) -> ToSqlOutput<'_> {
    match v {
        Value::Null => ToSqlOutput::Owned(SqlValue::Null),
        Value::Int(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
        Value::Float(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
        Value::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*b))),
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) => {
            ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
        }
        Value::Date(d) => ToSqlOutput::Owned(SqlValue::Text(date_text(*d))),
        Value::Datetime(t) => ToSqlOutput::Owned(SqlValue::Text(datetime_text(*t))),
        Value::Uuid(u) => ToSqlOutput::Owned(SqlValue::Text(u.hyphenated().to_string())),
    }
}

/// The declared SQLite type of a column. Decimals are their canonical text: SQLite's NUMERIC
/// affinity would turn any literal past 15 significant digits into a rounded REAL.
pub fn declared_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Integer | ColumnType::Boolean => "INTEGER",
        ColumnType::Float => "REAL",
        _ => "TEXT",
    }
}

/// A stored cell as JSON, the way the records API shows it.
pub fn cell_to_json(ty: ColumnType, v: ValueRef<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match (ty, v) {
        (_, ValueRef::Null) => J::Null,
        (ColumnType::Boolean, ValueRef::Integer(i)) => J::Bool(i != 0),
        (ColumnType::Decimal, ValueRef::Integer(i)) => J::String(i.to_string()),
        (ColumnType::Decimal, ValueRef::Real(f)) => J::String(decimal_text(f)),
        (ColumnType::Json, ValueRef::Text(t)) => {
            serde_json::from_slice(t).unwrap_or_else(|_| J::String(lossy(t)))
        }
        (_, ValueRef::Integer(i)) => J::from(i),
        (_, ValueRef::Real(f)) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        (_, ValueRef::Text(t)) => J::String(lossy(t)),
        (_, ValueRef::Blob(b)) => J::String(lossy(b)),
    }
}

/// A decimal held as REAL, written without exponent or float noise.
fn decimal_text(f: f64) -> String {
    let s = format!("{f}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether a stored cell holds the same value as a new one (for `unchanged` in upserts).
pub fn same_value(stored: ValueRef<'_>, new: &Value) -> bool {
    match (stored, to_sql(new)) {
        (ValueRef::Null, ToSqlOutput::Owned(SqlValue::Null)) => true,
        (ValueRef::Integer(a), ToSqlOutput::Owned(SqlValue::Integer(b))) => a == b,
        (ValueRef::Real(a), ToSqlOutput::Owned(SqlValue::Real(b))) => a.to_bits() == b.to_bits(),
        (stored, out) => {
            let new_text: &[u8] = match &out {
                ToSqlOutput::Borrowed(ValueRef::Text(t)) => t,
                ToSqlOutput::Owned(SqlValue::Text(t)) => t.as_bytes(),
                _ => return false,
            };
            match (stored, new) {
                (ValueRef::Text(s), _) => s == new_text,
                // A decimal that SQLite stored as a number: compare numerically.
                (ValueRef::Integer(i), Value::Decimal(d)) => d == &i.to_string(),
                (ValueRef::Real(f), Value::Decimal(d)) => d.parse::<f64>().ok() == Some(f),
                _ => false,
            }
        }
    }
}

/// Reads a journal row back into SQLite values.
pub fn journal_to_row(text: &str) -> Vec<SqlValue> {
    let cells: Vec<serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
    cells
        .into_iter()
        .map(|c| {
            if let Some(i) = c.get("i").and_then(|v| v.as_i64()) {
                SqlValue::Integer(i)
            } else if let Some(f) = c.get("r").and_then(|v| v.as_f64()) {
                SqlValue::Real(f)
            } else if let Some(t) = c.get("t").and_then(|v| v.as_str()) {
                SqlValue::Text(t.to_owned())
            } else {
                SqlValue::Null
            }
        })
        .collect()
}
