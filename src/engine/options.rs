//! How to read one input: the options stored with it when the import is created.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Reading options of one input, stored as JSON with the import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputOptions {
    /// Field delimiter of CSV/TSV sources (decided when the upload was sniffed).
    #[serde(default = "comma")]
    pub delimiter: u8,
    /// Whether the first record of a delimited source names the fields.
    #[serde(default = "yes")]
    pub has_header: bool,
    /// Source field → table column; a null column ignores the field.
    #[serde(default)]
    pub mapping: BTreeMap<String, Option<String>>,
    /// Cells (after nothing is trimmed) that mean NULL.
    #[serde(default = "empty_is_null")]
    pub null_values: Vec<String>,
    /// Line number of the first record when the source has no lines (inline records count
    /// from 1 per record).
    #[serde(default)]
    pub records_are_lines: bool,
    /// A missing table is created from the whole source before it is loaded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub create_table: bool,
    /// The inference of a created table may propose enum columns.
    #[serde(default, skip_serializing_if = "is_false")]
    pub infer_enums: bool,
    /// Source fields the table lacks are added to it as nullable columns.
    #[serde(default, skip_serializing_if = "is_false")]
    pub add_columns: bool,
    /// The table this input's import created, as `POST /v1/tables` takes it: recorded before
    /// the table is created, so that a resumed import creates the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_schema: Option<serde_json::Value>,
    /// Cells read as missing in the typed columns of a created table (`NA`, `NULL`…), where
    /// text columns keep them as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub typed_null_values: Vec<String>,
    /// The columns `add_columns` decided to add (as `POST /v1/tables` takes columns): recorded
    /// before they are added, so that a resumed import adds the same ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_columns: Option<Vec<serde_json::Value>>,
    /// Byte sequences the source's encoding does not define, replaced by U+FFFD as the
    /// upload was converted to UTF-8: the load says so in a warning.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replaced_sequences: u64,
    /// The workbook sheet this NDJSON source was converted from: row errors name their cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<super::workbook::SheetSource>,
}

fn is_false(b: &bool) -> bool {
    !b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn comma() -> u8 {
    b','
}
fn yes() -> bool {
    true
}
fn empty_is_null() -> Vec<String> {
    vec![String::new()]
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            delimiter: comma(),
            has_header: true,
            mapping: BTreeMap::new(),
            null_values: empty_is_null(),
            records_are_lines: false,
            create_table: false,
            infer_enums: false,
            add_columns: false,
            created_schema: None,
            typed_null_values: Vec::new(),
            added_columns: None,
            replaced_sequences: 0,
            sheet: None,
        }
    }
}
