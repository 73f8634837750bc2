//! The mapper: which source field feeds which table column.

use std::collections::{HashMap, HashSet};

use crate::model::TableSchema;
use crate::model::infer::column_name_for;

use super::options::InputOptions;

/// Where each table column takes its value from in a delimited record.
#[derive(Debug, Clone)]
pub struct FieldMapping {
    /// For each table column, the index of its source field.
    pub sources: Vec<Option<usize>>,
    /// Source fields that feed no column, named once in a warning.
    pub unknown: Vec<String>,
}

/// Where each table column takes its value from in JSON objects.
#[derive(Debug, Clone)]
pub struct KeyMapping {
    /// Source key → table column index.
    pub keys: HashMap<String, usize>,
    /// Keys the mapping ignores on purpose.
    pub ignored: HashSet<String>,
}

/// Why a mapping cannot be used; the import fails with this message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct MappingError(pub String);

/// Checks that an explicit mapping names only columns of the table.
pub fn check_mapping(schema: &TableSchema, options: &InputOptions) -> Result<(), MappingError> {
    for (source, column) in &options.mapping {
        if let Some(c) = column
            && schema.column_index(c).is_none()
        {
            return Err(MappingError(format!(
                "mapping sends field {source:?} to column {c:?}, which table {:?} does not have",
                schema.name.as_str()
            )));
        }
    }
    Ok(())
}

/// The column a source name feeds: an explicit mapping, the same name, or the name made
/// into a column name ("Full Name" → full_name). `None` when it feeds nothing.
pub fn column_for(schema: &TableSchema, options: &InputOptions, source: &str) -> Option<usize> {
    if let Some(target) = options.mapping.get(source) {
        return target.as_deref().and_then(|c| schema.column_index(c));
    }
    schema
        .column_index(source)
        .or_else(|| schema.column_index(&column_name_for(source)))
}

/// Maps a delimited source's header (or, without a header, field positions) onto the table.
pub fn map_fields(
    schema: &TableSchema,
    options: &InputOptions,
    header: Option<&[String]>,
) -> Result<FieldMapping, MappingError> {
    check_mapping(schema, options)?;
    let mut sources = vec![None; schema.columns.len()];
    let mut unknown = Vec::new();
    match header {
        None => {
            for (i, slot) in sources.iter_mut().enumerate() {
                *slot = Some(i);
            }
        }
        Some(names) => {
            for (i, name) in names.iter().enumerate() {
                match column_for(schema, options, name) {
                    Some(col) if sources[col].is_none() => sources[col] = Some(i),
                    Some(col) => {
                        return Err(MappingError(format!(
                            "fields {:?} and {name:?} both map to column {:?}",
                            names[sources[col].unwrap_or(0)],
                            schema.columns[col].name.as_str()
                        )));
                    }
                    None if options.mapping.contains_key(name) => {}
                    None => unknown.push(name.clone()),
                }
            }
        }
    }
    Ok(FieldMapping { sources, unknown })
}

/// Maps JSON object keys onto the table.
pub fn map_keys(schema: &TableSchema, options: &InputOptions) -> Result<KeyMapping, MappingError> {
    check_mapping(schema, options)?;
    let mut keys = HashMap::new();
    let mut ignored = HashSet::new();
    for (source, target) in &options.mapping {
        match target.as_deref().and_then(|c| schema.column_index(c)) {
            Some(i) => {
                keys.insert(source.clone(), i);
            }
            None => {
                ignored.insert(source.clone());
            }
        }
    }
    for (i, col) in schema.columns.iter().enumerate() {
        let name = col.name.as_str().to_owned();
        if !ignored.contains(&name) && !keys.values().any(|&v| v == i) {
            keys.entry(name).or_insert(i);
        }
    }
    Ok(KeyMapping { keys, ignored })
}

impl KeyMapping {
    /// The column a key feeds, trying the key made into a column name when it is not mapped.
    pub fn column(&self, schema: &TableSchema, key: &str) -> Option<usize> {
        if let Some(&i) = self.keys.get(key) {
            return Some(i);
        }
        if self.ignored.contains(key) {
            return None;
        }
        schema.column_index(&column_name_for(key))
    }
}

/// The warning for source fields that feed no column.
pub fn unknown_fields_warning(table: &str, unknown: &[String]) -> Option<String> {
    if unknown.is_empty() {
        return None;
    }
    let list: Vec<String> = unknown.iter().take(20).map(|u| format!("{u:?}")).collect();
    let more = if unknown.len() > 20 {
        format!(" and {} more", unknown.len() - 20)
    } else {
        String::new()
    };
    Some(format!(
        "{} source field(s) {}{more} match no column of table {table:?} and were ignored",
        unknown.len(),
        list.join(", ")
    ))
}
