//! The validator: turns a source record into a typed row of the table, or a row error.

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::coerce::{CoerceError, ColumnCoercer, JsonCell};
use crate::model::row_error::SourceRecord;
use crate::model::{ColumnType, RowError, TableSchema, Value};
use crate::store::TypedRow;

use super::mapper::{FieldMapping, KeyMapping};
use super::reader::{JsonFields, ReadItem, RecordBody};

/// Validates records of one source against one table.
pub struct Validator {
    schema: TableSchema,
    coercers: Vec<ColumnCoercer>,
    /// Each column's cells that mean NULL.
    null_values: Vec<NullValues>,
    fields: Option<FieldMapping>,
    keys: Option<KeyMapping>,
    header: Arc<Vec<String>>,
    /// JSON keys already reported as unknown.
    warned: HashSet<String>,
    /// Positions of the key columns.
    key: Vec<usize>,
    /// The keys of the last JSON object, by position, with the columns they feed.
    keys_now: KeyColumns,
    /// Lists of keys seen before, with their columns (up to `KEPT_KEY_LISTS`).
    keys_before: Vec<KeyColumns>,
    /// The list of `keys_before` that the next one kept replaces, once it is full.
    next_replaced: usize,
    /// `keys_now` already holds the keys of the record about to be checked (the unknown
    /// key check brought it up to date): the check does not compare them again.
    keys_current: bool,
}

/// Lists of JSON keys whose columns the validator keeps beside the last one's.
const KEPT_KEY_LISTS: usize = 4;

/// The columns a list of JSON keys feeds.
#[derive(Default)]
struct KeyColumns {
    /// The number naming the list (0: not known to be shared by other records).
    id: u64,
    /// The keys by position, with the column each feeds.
    keys: Vec<(String, Option<usize>)>,
    /// For each column, the position of the key that feeds it.
    fields: Vec<Option<usize>>,
}

/// The cells that mean NULL; the usual set (only the empty cell) is checked without hashing.
enum NullValues {
    EmptyOnly,
    Set(HashSet<String>),
}

impl NullValues {
    fn new(values: &[String]) -> NullValues {
        if values.len() == 1 && values[0].is_empty() {
            NullValues::EmptyOnly
        } else {
            NullValues::Set(values.iter().cloned().collect())
        }
    }

    /// The null cells of one column: `typed` ones count only in columns that are not text.
    fn of_column(ty: ColumnType, all: &[String], typed: &[String]) -> NullValues {
        if typed.is_empty() || ty == ColumnType::String {
            return NullValues::new(all);
        }
        NullValues::Set(all.iter().chain(typed).cloned().collect())
    }

    fn contains(&self, cell: &str) -> bool {
        match self {
            NullValues::EmptyOnly => cell.is_empty(),
            NullValues::Set(set) => set.contains(cell),
        }
    }
}

/// What a record became.
pub enum Checked {
    Row(TypedRow),
    /// A rejected record, with its key when the key columns themselves were valid (so that
    /// `cleanup_records` keeps the table's row of that key).
    Invalid(RowError, Option<Vec<Value>>),
}

impl Validator {
    /// A validator for delimited records (fields mapped by position) or JSON objects (by key).
    pub fn new(
        schema: TableSchema,
        null_values: &[String],
        typed_null_values: &[String],
        fields: Option<FieldMapping>,
        keys: Option<KeyMapping>,
        header: Vec<String>,
    ) -> Result<Validator, String> {
        let key = schema.key_indexes();
        let null_values = schema
            .columns
            .iter()
            .map(|c| NullValues::of_column(c.ty, null_values, typed_null_values))
            .collect();
        let coercers = schema
            .columns
            .iter()
            .map(ColumnCoercer::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Validator {
            schema,
            coercers,
            null_values,
            fields,
            keys,
            header: Arc::new(header),
            warned: HashSet::new(),
            key,
            keys_now: KeyColumns::default(),
            keys_before: Vec::new(),
            next_replaced: 0,
            keys_current: false,
        })
    }

    /// Marks keys as already warned about (by the run before a resume).
    pub fn seed_warned(&mut self, keys: Vec<String>) {
        self.warned.extend(keys);
    }

    /// Unknown JSON keys of this object not warned about yet (each key is reported once).
    pub fn new_unknown_keys(&mut self, item: &ReadItem) -> Vec<String> {
        let RecordBody::Object(obj) = &item.body else {
            return Vec::new();
        };
        let known = self.remember_key_columns(obj);
        self.keys_current = true;
        // The keys of the record before, whose unknown ones are warned about already.
        if known {
            return Vec::new();
        }
        let Some(keys) = &self.keys else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, column) in &self.keys_now.keys {
            if column.is_none() && !keys.ignored.contains(k) && self.warned.insert(k.clone()) {
                out.push(k.clone());
            }
        }
        out
    }

    /// Brings `keys_now` to the keys of `obj`; answers whether they were a list seen before
    /// (whose columns were known).
    fn remember_key_columns(&mut self, obj: &JsonFields) -> bool {
        let id = obj.keys_id();
        if id != 0 {
            if self.keys_now.id == id {
                return true;
            }
            if let Some(n) = self.keys_before.iter().position(|k| k.id == id) {
                std::mem::swap(&mut self.keys_now, &mut self.keys_before[n]);
                return true;
            }
        }
        if self.keys_now.id != 0 {
            let kept = std::mem::take(&mut self.keys_now);
            if self.keys_before.len() < KEPT_KEY_LISTS {
                self.keys_before.push(kept);
            } else {
                self.keys_before[self.next_replaced] = kept;
                self.next_replaced = (self.next_replaced + 1) % KEPT_KEY_LISTS;
            }
        }
        self.keys_now.id = id;
        self.find_key_columns(obj);
        let now = &mut self.keys_now;
        now.fields.clear();
        now.fields.resize(self.schema.columns.len(), None);
        // A later key feeding the same column wins, as it would in a map.
        for (j, (_, column)) in now.keys.iter().enumerate() {
            if let Some(i) = *column {
                now.fields[i] = Some(j);
            }
        }
        false
    }

    /// Brings `keys_now.keys` to the keys of `obj`, finding the column only of a key that
    /// is not the one the object before had at its position.
    fn find_key_columns(&mut self, obj: &JsonFields) {
        let keys_now = &mut self.keys_now.keys;
        let Some(keys) = &self.keys else {
            keys_now.clear();
            return;
        };
        keys_now.truncate(obj.len());
        for (i, k) in obj.keys().enumerate() {
            match keys_now.get_mut(i) {
                Some((known, _)) if known == k => {}
                Some(slot) => *slot = (k.to_owned(), keys.column(&self.schema, k)),
                None => keys_now.push((k.to_owned(), keys.column(&self.schema, k))),
            }
        }
    }

    /// Checks one record.
    pub fn check(&mut self, item: ReadItem) -> Checked {
        let keys_current = std::mem::take(&mut self.keys_current);
        let n = self.schema.columns.len();
        let mut values = Vec::with_capacity(n);
        let mut problems: Vec<(usize, CoerceError)> = Vec::new();
        let original = match item.body {
            RecordBody::Bad { code, message, row } => {
                let error = RowError {
                    line: item.line,
                    record: item.record,
                    column: None,
                    code,
                    message,
                    row,
                };
                return Checked::Invalid(error, None);
            }
            RecordBody::Fields(rec) => {
                let sources = self
                    .fields
                    .as_ref()
                    .map(|f| f.sources.as_slice())
                    .unwrap_or(&[]);
                for (i, coercer) in self.coercers.iter().enumerate() {
                    let cell = sources.get(i).copied().flatten().and_then(|j| rec.get(j));
                    let result = match cell {
                        Some(text) if !self.null_values[i].contains(text) => {
                            coercer.coerce_text(text)
                        }
                        _ => coercer.missing(),
                    };
                    match result {
                        Ok(v) => values.push(v),
                        Err(e) => {
                            values.push(Value::Null);
                            problems.push((i, e));
                        }
                    }
                }
                SourceRecord::Fields(self.header.clone(), rec)
            }
            RecordBody::Object(obj) => {
                if !keys_current {
                    self.remember_key_columns(&obj);
                }
                for (i, coercer) in self.coercers.iter().enumerate() {
                    let cell = self.keys_now.fields[i].and_then(|j| obj.value(j));
                    let result = match cell {
                        Some(JsonCell::String(s)) if self.null_values[i].contains(s) => {
                            coercer.missing()
                        }
                        Some(v) => coercer.coerce_cell(v),
                        None => coercer.missing(),
                    };
                    match result {
                        Ok(v) => values.push(v),
                        Err(e) => {
                            values.push(Value::Null);
                            problems.push((i, e));
                        }
                    }
                }
                SourceRecord::Json(obj.into_text())
            }
        };
        if problems.is_empty() {
            return Checked::Row(TypedRow {
                line: item.line,
                record: item.record,
                values,
                original,
            });
        }
        // One error per row, naming the first bad column; the others are listed in the message.
        let (first_col, first) = &problems[0];
        let mut message = first.message.clone();
        if problems.len() > 1 {
            let rest: Vec<String> = problems[1..]
                .iter()
                .map(|(i, e)| format!("{}: {}", self.schema.columns[*i].name, e.message))
                .collect();
            message = format!("{message} (also {})", rest.join("; "));
        }
        let key_ok = !self.key.is_empty()
            && self
                .key
                .iter()
                .all(|k| !problems.iter().any(|(i, _)| i == k));
        let key = key_ok.then(|| self.key.iter().map(|&k| values[k].clone()).collect());
        let error = RowError {
            line: item.line,
            record: item.record,
            column: Some(self.schema.columns[*first_col].name.as_str().to_owned()),
            code: first.code,
            message,
            row: original.to_json(),
        };
        Checked::Invalid(error, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::reader::tests::{TempFile, ndjson_opts, read_all};
    use std::collections::HashMap;

    #[test]
    fn json_records_alternating_between_lists_of_keys_map_each_key_and_warn_once() {
        let schema = TableSchema::parse(
            serde_json::from_value(serde_json::json!({"name": "t", "columns": [
                {"name": "id", "type": "integer"},
                {"name": "name", "type": "string"}
            ]}))
            .expect("raw schema"),
        )
        .expect("schema");
        let keys = KeyMapping {
            keys: HashMap::from([("id".to_owned(), 0), ("name".to_owned(), 1)]),
            ignored: HashSet::new(),
        };
        let mut validator =
            Validator::new(schema, &[String::new()], &[], None, Some(keys), Vec::new())
                .expect("validator");
        // Six lists of keys, more than either side keeps, some coming back.
        let lines = [
            r#"{"id": 1, "name": "a"}"#,
            r#"{"id": 2, "extra": 1}"#,
            r#"{"name": "c", "id": 3}"#,
            r#"{"id": 4, "name": "d"}"#,
            r#"{"id": 5, "extra": 2}"#,
            r#"{"id": 6, "extra": 3, "name": "f"}"#,
            r#"{"x1": 0, "id": 7}"#,
            r#"{"x2": 0, "id": 8}"#,
            r#"{"x3": 0, "id": 9}"#,
            r#"{"x4": 0, "id": 10}"#,
            r#"{"id": 11, "name": "k"}"#,
            r#"{"id": 12, "extra": 4}"#,
            r#"{"id": 13, "na\u006de": "m"}"#,
        ];
        let file = TempFile::with(lines.join("\n").as_bytes());
        let (_, items) = read_all(file.path(), &ndjson_opts(), None);
        let mut warned = Vec::new();
        let mut rows = Vec::new();
        for item in items {
            warned.extend(validator.new_unknown_keys(&item));
            match validator.check(item) {
                Checked::Row(row) => rows.push(row.values),
                Checked::Invalid(e, _) => panic!("record {} refused: {}", e.record, e.message),
            }
        }
        assert_eq!(warned, ["extra", "x1", "x2", "x3", "x4"]);
        let text = |s: &str| Value::Text(s.to_owned());
        let expected: Vec<Vec<Value>> = vec![
            vec![Value::Int(1), text("a")],
            vec![Value::Int(2), Value::Null],
            vec![Value::Int(3), text("c")],
            vec![Value::Int(4), text("d")],
            vec![Value::Int(5), Value::Null],
            vec![Value::Int(6), text("f")],
            vec![Value::Int(7), Value::Null],
            vec![Value::Int(8), Value::Null],
            vec![Value::Int(9), Value::Null],
            vec![Value::Int(10), Value::Null],
            vec![Value::Int(11), text("k")],
            vec![Value::Int(12), Value::Null],
            vec![Value::Int(13), text("m")],
        ];
        assert_eq!(rows, expected);
    }
}
