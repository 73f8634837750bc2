//! SQL text both backends write alike: quoted identifiers, and the column definitions of a
//! workspace's table.

use crate::model::{ColumnSpec, TableSchema};

/// Quotes an identifier that has already been validated (double quotes doubled anyway).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The column definitions of a schema's table: each column with its type as `declared`
/// writes it, then the backend's `extra` columns, then the primary key.
pub(crate) fn column_defs(
    schema: &TableSchema,
    declared: impl Fn(&ColumnSpec) -> String,
    extra: &[String],
) -> Vec<String> {
    let mut cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| {
            let mut def = format!("{} {}", quote(c.name.as_str()), declared(c));
            if c.required {
                def.push_str(" NOT NULL");
            }
            // A single-column key is unique already.
            if c.unique && !(schema.primary_key.len() == 1 && schema.primary_key[0] == c.name) {
                def.push_str(" UNIQUE");
            }
            def
        })
        .collect();
    cols.extend_from_slice(extra);
    if !schema.primary_key.is_empty() {
        let key: Vec<String> = schema
            .primary_key
            .iter()
            .map(|k| quote(k.as_str()))
            .collect();
        cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    cols
}
