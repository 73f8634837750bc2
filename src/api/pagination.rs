//! Cursors and page sizes shared by the list routes.

use uuid::Uuid;

use super::error::{ApiError, ApiResult};

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;

/// Checks a requested page size.
pub fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}, not {n}"
        ))),
    }
}

/// A cursor that is the id of the last item seen (row errors, events, rows, deliveries).
pub fn number_cursor(cursor: Option<&str>) -> ApiResult<Option<i64>> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request("invalid cursor"))
        })
        .transpose()
}

/// A position in a sorted list: the last item's sort value and id.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub value: Option<String>,
    pub id: Uuid,
}

impl Cursor {
    /// The cursor as an opaque string.
    pub fn encode(&self) -> String {
        match &self.value {
            None => self.id.simple().to_string(),
            Some(v) => format!("{}.{}", self.id.simple(), v),
        }
    }

    /// Reads a cursor made by [`Cursor::encode`].
    pub fn decode(s: &str) -> ApiResult<Cursor> {
        let (id, value) = match s.split_once('.') {
            Some((id, v)) => (id, Some(v.to_owned())),
            None => (s, None),
        };
        let id = Uuid::parse_str(id).map_err(|_| ApiError::bad_request("invalid cursor"))?;
        Ok(Cursor { value, id })
    }
}
