//! A typed cell value, the output of coercion and the input of every writer.

use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// One coerced cell, ready to be written to a column of the matching type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// `integer` columns.
    Int(i64),
    /// `float` columns (always finite).
    Float(f64),
    /// `boolean` columns.
    Bool(bool),
    /// `string`, `email`, `url` and `enum` columns.
    Text(String),
    /// `decimal` columns, in canonical form: optional `-`, no leading zeros, no trailing
    /// fractional zeros, no exponent (`"12.5"`, `"-0.003"`, `"1000"`).
    Decimal(String),
    /// `date` columns.
    Date(Date),
    /// `datetime` columns, always in UTC.
    Datetime(OffsetDateTime),
    /// `uuid` columns.
    Uuid(Uuid),
    /// `json` columns, as compact JSON text.
    Json(String),
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}
