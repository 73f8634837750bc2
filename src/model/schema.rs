//! Table schemas: column types, constraints and the rules for names.

use serde::{Deserialize, Serialize};

/// Why a schema (or a name in it) was refused; the message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// The most columns a table may have.
pub const MAX_COLUMNS: usize = 500;

/// A validated name of a table or column: lowercase ASCII letter first, then lowercase
/// letters, digits or `_`, at most 48 characters, no `__` (the database reserves it to
/// join workspace and table names) and no `_intake` prefix (reserved for bookkeeping).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Identifier(String);

impl Identifier {
    /// Checks `raw` against the naming rule, saying which part of it fails.
    pub fn parse(kind: &str, raw: &str) -> Result<Identifier, SchemaError> {
        let fail = |why: &str| Err(SchemaError(format!("invalid {kind} name {raw:?}: {why}")));
        if raw.is_empty() {
            return fail("it is empty");
        }
        if raw.len() > 48 {
            return fail("it is longer than 48 characters");
        }
        let first = raw.as_bytes()[0];
        if !first.is_ascii_lowercase() {
            return fail("it must start with a lowercase letter a-z");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return fail("only lowercase letters a-z, digits and _ are allowed");
        }
        if raw.contains("__") {
            return fail("it must not contain two underscores in a row");
        }
        if raw.ends_with('_') {
            return fail("it must not end with _");
        }
        if raw.starts_with("intake") {
            return fail("names starting with \"intake\" are reserved");
        }
        Ok(Identifier(raw.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The column types a table may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Integer,
    Float,
    Decimal,
    Boolean,
    Date,
    Datetime,
    Email,
    Url,
    Uuid,
    Enum,
    Json,
}

impl ColumnType {
    /// Every type, in documentation order.
    pub const ALL: [ColumnType; 12] = [
        ColumnType::String,
        ColumnType::Integer,
        ColumnType::Float,
        ColumnType::Decimal,
        ColumnType::Boolean,
        ColumnType::Date,
        ColumnType::Datetime,
        ColumnType::Email,
        ColumnType::Url,
        ColumnType::Uuid,
        ColumnType::Enum,
        ColumnType::Json,
    ];

    /// The type's name in schemas.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Decimal => "decimal",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
            ColumnType::Datetime => "datetime",
            ColumnType::Email => "email",
            ColumnType::Url => "url",
            ColumnType::Uuid => "uuid",
            ColumnType::Enum => "enum",
            ColumnType::Json => "json",
        }
    }

    /// Parses a type name.
    pub fn parse(s: &str) -> Option<ColumnType> {
        ColumnType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether values have a length (`max_length` / `min_length` apply).
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            ColumnType::String | ColumnType::Email | ColumnType::Url | ColumnType::Enum
        )
    }

    /// Whether values are numbers (`min` / `max` apply).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ColumnType::Integer | ColumnType::Float | ColumnType::Decimal
        )
    }
}

/// One column of a table, as stored and as shown by the API.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ColumnSpec {
    #[schema(value_type = String)]
    pub name: Identifier,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub required: bool,
    pub unique: bool,
    /// The value used when the source has no value for the column (already valid for the type).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Most characters (Unicode scalar values) a textual value may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// Fewest characters a non-null textual value may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// Smallest allowed number (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed number (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A regular expression the whole textual value must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The allowed values of an `enum` column (matched exactly).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// A table definition: its name, columns and optional primary (upsert) key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableSchema {
    pub name: Identifier,
    pub columns: Vec<ColumnSpec>,
    pub primary_key: Vec<Identifier>,
}

/// The schema as clients send it, before validation.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTableSchema {
    pub name: String,
    pub columns: Vec<RawColumn>,
    #[serde(default)]
    pub primary_key: Option<KeyColumns>,
}

/// A primary key given as one column name or a list of them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum KeyColumns {
    One(String),
    Many(Vec<String>),
}

/// One column as clients send it, before validation.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub max_length: Option<u32>,
    #[serde(default)]
    pub min_length: Option<u32>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

impl TableSchema {
    /// Validates a raw schema: names, types, constraints that fit their type, key columns
    /// that exist, and defaults that are valid values of their column.
    pub fn parse(raw: RawTableSchema) -> Result<TableSchema, SchemaError> {
        let name = Identifier::parse("table", &raw.name)?;
        if raw.columns.is_empty() {
            return Err(SchemaError("a table needs at least one column".into()));
        }
        if raw.columns.len() > MAX_COLUMNS {
            return Err(SchemaError(format!(
                "a table has at most {MAX_COLUMNS} columns"
            )));
        }
        let mut columns: Vec<ColumnSpec> = Vec::with_capacity(raw.columns.len());
        for rc in raw.columns {
            let col = ColumnSpec::parse(rc)?;
            if columns.iter().any(|c| c.name == col.name) {
                return Err(SchemaError(format!(
                    "column {:?} is defined twice",
                    col.name.0
                )));
            }
            columns.push(col);
        }
        let key_names = match raw.primary_key {
            None => Vec::new(),
            Some(KeyColumns::One(s)) => vec![s],
            Some(KeyColumns::Many(v)) => v,
        };
        let mut primary_key = Vec::with_capacity(key_names.len());
        for k in key_names {
            let Some(col) = columns.iter_mut().find(|c| c.name.0 == k) else {
                return Err(SchemaError(format!(
                    "primary_key names column {k:?}, which the table does not have"
                )));
            };
            if primary_key.contains(&col.name) {
                return Err(SchemaError(format!("primary_key names column {k:?} twice")));
            }
            if col.ty == ColumnType::Json {
                return Err(SchemaError(format!(
                    "column {k:?} has type json, which cannot be part of a key"
                )));
            }
            // A key column can never be empty.
            col.required = true;
            primary_key.push(col.name.clone());
        }
        Ok(TableSchema {
            name,
            columns,
            primary_key,
        })
    }

    /// The position of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name.0 == name)
    }

    /// The columns of `proposed` this table lacks, as they are added to it: nullable, not
    /// unique and without default, whatever was proposed (rows already in the table have no
    /// value for them).
    pub fn columns_to_add(&self, proposed: &[ColumnSpec]) -> Vec<ColumnSpec> {
        let mut named = std::collections::HashSet::new();
        proposed
            .iter()
            .filter(|c| self.column_index(c.name.as_str()).is_none() && named.insert(&c.name))
            .map(|c| ColumnSpec {
                required: false,
                unique: false,
                default: None,
                ..c.clone()
            })
            .collect()
    }

    /// Positions of the key columns, in key order.
    pub fn key_indexes(&self) -> Vec<usize> {
        self.primary_key
            .iter()
            .filter_map(|k| self.column_index(k.as_str()))
            .collect()
    }
}

impl ColumnSpec {
    /// Validates one raw column.
    pub fn parse(rc: RawColumn) -> Result<ColumnSpec, SchemaError> {
        let name = Identifier::parse("column", &rc.name)?;
        let Some(ty) = ColumnType::parse(&rc.ty) else {
            let all: Vec<&str> = ColumnType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(SchemaError(format!(
                "column {:?} has unknown type {:?}; the types are {}",
                rc.name,
                rc.ty,
                all.join(", ")
            )));
        };
        let n = &rc.name;
        let refuse = |what: &str, types: &str| {
            Err(SchemaError(format!(
                "column {n:?}: {what} applies only to {types} columns, not {}",
                ty.as_str()
            )))
        };
        if (rc.max_length.is_some() || rc.min_length.is_some()) && !ty.is_textual() {
            return refuse("max_length/min_length", "string, email, url and enum");
        }
        if (rc.min.is_some() || rc.max.is_some()) && !ty.is_numeric() {
            return refuse("min/max", "integer, float and decimal");
        }
        if rc.pattern.is_some() && !ty.is_textual() {
            return refuse("pattern", "string, email, url and enum");
        }
        if let (Some(lo), Some(hi)) = (rc.min, rc.max)
            && lo > hi
        {
            return Err(SchemaError(format!(
                "column {n:?}: min {lo} is above max {hi}"
            )));
        }
        if let (Some(lo), Some(hi)) = (rc.min_length, rc.max_length)
            && lo > hi
        {
            return Err(SchemaError(format!(
                "column {n:?}: min_length {lo} is above max_length {hi}"
            )));
        }
        if let Some(p) = &rc.pattern {
            if p.len() > 1000 {
                return Err(SchemaError(format!("column {n:?}: pattern is too long")));
            }
            if let Err(e) = regex::Regex::new(p) {
                return Err(SchemaError(format!("column {n:?}: invalid pattern: {e}")));
            }
        }
        match (&rc.values, ty) {
            (None, ColumnType::Enum) => {
                return Err(SchemaError(format!(
                    "column {n:?}: an enum column needs a non-empty \"values\" list"
                )));
            }
            (Some(v), ColumnType::Enum) if v.is_empty() => {
                return Err(SchemaError(format!(
                    "column {n:?}: an enum column needs a non-empty \"values\" list"
                )));
            }
            (Some(_), t) if t != ColumnType::Enum => {
                return refuse("values", "enum");
            }
            _ => {}
        }
        let col = ColumnSpec {
            name,
            ty,
            required: rc.required,
            unique: rc.unique,
            default: None,
            max_length: rc.max_length,
            min_length: rc.min_length,
            min: rc.min,
            max: rc.max,
            pattern: rc.pattern,
            values: rc.values,
        };
        let default = match rc.default {
            None | Some(serde_json::Value::Null) => None,
            Some(d) => {
                let checker = crate::model::coerce::ColumnCoercer::new(&col)
                    .map_err(|e| SchemaError(format!("column {n:?}: {e}")))?;
                if let Err(e) = checker.coerce_json(&d) {
                    return Err(SchemaError(format!(
                        "column {n:?}: default {d} is not valid: {}",
                        e.message
                    )));
                }
                Some(d)
            }
        };
        Ok(ColumnSpec { default, ..col })
    }
}

impl TableSchema {
    /// Reads a schema stored by the store (it was valid when stored; checked again anyway).
    pub fn from_stored(text: &str) -> Result<TableSchema, SchemaError> {
        let raw: RawTableSchema =
            serde_json::from_str(text).map_err(|e| SchemaError(e.to_string()))?;
        TableSchema::parse(raw)
    }
}
