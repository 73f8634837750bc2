//! Types of the import life-cycle operations the compatibility dialects need beyond the
//! native API: queueing an import whose sources arrived in parts, forgetting an import (with
//! or without its rows), and changing its labels.

/// What forgetting an import removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgedImport {
    /// Rows deleted from the import's tables (those it last wrote).
    pub rows_deleted: u64,
    /// Keys of the import's stored sources, for the caller to delete.
    pub blob_keys: Vec<String>,
}

/// New labels of an import: `None` leaves a label as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportLabels {
    /// `Some(None)` clears the reference.
    pub reference: Option<Option<String>>,
    /// `Some(None)` clears the origin.
    pub reference_origin: Option<Option<String>>,
    /// Replaces the metadata (a JSON object).
    pub metadata: Option<serde_json::Value>,
}
