//! The spreadsheet cell (`Orders!C17`) of a row error of a workbook's sheet, which the
//! error list and the rejected-rows CSV both show beside the line.

use std::collections::BTreeMap;

use crate::engine::options::InputOptions;
use crate::store::{ImportRecord, StoredRowError};

/// How to name the cells of an import's row errors: its inputs read from a sheet.
pub struct SheetCells {
    sheets: BTreeMap<String, InputOptions>,
}

impl SheetCells {
    /// The sheets of `import`'s inputs (none when it read no workbook).
    pub fn of(import: &ImportRecord) -> SheetCells {
        let sheets = import
            .tables
            .iter()
            .filter_map(|t| {
                let options: InputOptions = serde_json::from_value(t.options.clone()).ok()?;
                options.sheet.is_some().then(|| (t.table.clone(), options))
            })
            .collect();
        SheetCells { sheets }
    }

    /// Whether any input is a sheet (so that errors have cells to name).
    pub fn any(&self) -> bool {
        !self.sheets.is_empty()
    }

    /// The cell of `e`, when its table was read from a sheet.
    pub fn cell(&self, e: &StoredRowError) -> Option<String> {
        let options = self.sheets.get(&e.table)?;
        let sheet = options.sheet.as_ref()?;
        Some(sheet.cell(&options.mapping, e.error.column.as_deref(), e.error.line))
    }
}
