//! Row errors: why one record of a source was rejected, with a stable code.

use serde::Serialize;

/// The stable, documented codes of row errors (they are API: never rename one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowErrorCode {
    MissingRequired,
    InvalidInteger,
    InvalidFloat,
    InvalidDecimal,
    InvalidBoolean,
    InvalidDate,
    InvalidDatetime,
    InvalidEmail,
    InvalidUrl,
    InvalidUuid,
    InvalidEnum,
    InvalidJson,
    InvalidEncoding,
    InvalidType,
    TooLong,
    TooShort,
    OutOfRange,
    PatternMismatch,
    DuplicateKey,
    FieldCountMismatch,
    FieldTooLarge,
    RecordTooLarge,
    MalformedRecord,
    NotAnObject,
}

impl RowErrorCode {
    /// The code as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingRequired => "missing_required",
            Self::InvalidInteger => "invalid_integer",
            Self::InvalidFloat => "invalid_float",
            Self::InvalidDecimal => "invalid_decimal",
            Self::InvalidBoolean => "invalid_boolean",
            Self::InvalidDate => "invalid_date",
            Self::InvalidDatetime => "invalid_datetime",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidUrl => "invalid_url",
            Self::InvalidUuid => "invalid_uuid",
            Self::InvalidEnum => "invalid_enum",
            Self::InvalidJson => "invalid_json",
            Self::InvalidEncoding => "invalid_encoding",
            Self::InvalidType => "invalid_type",
            Self::TooLong => "too_long",
            Self::TooShort => "too_short",
            Self::OutOfRange => "out_of_range",
            Self::PatternMismatch => "pattern_mismatch",
            Self::DuplicateKey => "duplicate_key",
            Self::FieldCountMismatch => "field_count_mismatch",
            Self::FieldTooLarge => "field_too_large",
            Self::RecordTooLarge => "record_too_large",
            Self::MalformedRecord => "malformed_record",
            Self::NotAnObject => "not_an_object",
        }
    }
}

/// One rejected record: where it starts in the source, which column, why, and what it held.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// Physical line of the source where the record starts (1-based, header included).
    pub line: u64,
    /// 1-based number of the record among the source's data records.
    pub record: u64,
    /// The table column concerned, if the error is about one column.
    pub column: Option<String>,
    pub code: RowErrorCode,
    pub message: String,
    /// The original record as a JSON object keyed by source field name (all values as read).
    pub row: serde_json::Value,
}

/// Every row error code (to parse stored codes back).
pub const ALL_CODES: &[RowErrorCode] = &[
    RowErrorCode::MissingRequired,
    RowErrorCode::InvalidInteger,
    RowErrorCode::InvalidFloat,
    RowErrorCode::InvalidDecimal,
    RowErrorCode::InvalidBoolean,
    RowErrorCode::InvalidDate,
    RowErrorCode::InvalidDatetime,
    RowErrorCode::InvalidEmail,
    RowErrorCode::InvalidUrl,
    RowErrorCode::InvalidUuid,
    RowErrorCode::InvalidEnum,
    RowErrorCode::InvalidJson,
    RowErrorCode::InvalidEncoding,
    RowErrorCode::InvalidType,
    RowErrorCode::TooLong,
    RowErrorCode::TooShort,
    RowErrorCode::OutOfRange,
    RowErrorCode::PatternMismatch,
    RowErrorCode::DuplicateKey,
    RowErrorCode::FieldCountMismatch,
    RowErrorCode::FieldTooLarge,
    RowErrorCode::RecordTooLarge,
    RowErrorCode::MalformedRecord,
    RowErrorCode::NotAnObject,
];

/// A source record as read, kept beside its typed row so that a rejection by the database
/// can still show the original; turned into JSON only when needed.
#[derive(Debug, Clone)]
pub enum SourceRecord {
    /// A delimited record and the header naming its fields.
    Fields(std::sync::Arc<Vec<String>>, super::TextRecord),
    /// A JSON object, as the text it was read from.
    Json(Box<str>),
}

impl SourceRecord {
    /// The record as a JSON object keyed by source field name.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            // The text parsed as an object when it was read.
            SourceRecord::Json(text) => serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::json!({ "_raw": text.as_ref() })),
            SourceRecord::Fields(header, rec) => {
                let mut obj = serde_json::Map::with_capacity(rec.len());
                for (i, field) in rec.iter().enumerate() {
                    let name = header
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("field_{}", i + 1));
                    obj.insert(name, serde_json::Value::String(field.to_owned()));
                }
                serde_json::Value::Object(obj)
            }
        }
    }
}
