//! The options of `POST /v1/imports`, from the query string, multipart fields or a JSON body,
//! checked into typed settings. Unknown options are refused, so a typo never goes unnoticed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use crate::engine::reader::Format;
use crate::engine::reader::encoding::{Encoding, parse_encoding};
use crate::model::{Mode, OnError};

/// Every option name `POST /v1/imports` accepts.
const KNOWN: &[&str] = &[
    "table",
    "file_name",
    "start",
    "mode",
    "on_error",
    "max_errors",
    "dry_run",
    "cleanup_records",
    "reference",
    "reference_origin",
    "metadata",
    "note",
    "platform",
    "format",
    "delimiter",
    "encoding",
    "sheet",
    "null_values",
    "mapping",
    "has_header",
    "create_table",
    "infer_enums",
    "add_columns",
    "inputs",
    "records",
    "url",
];

/// Raw options, as gathered from the request.
pub type RawOptions = BTreeMap<String, Value>;

/// The options of `POST /v1/imports` as the API document states them: query parameters of
/// an upload or raw body, fields of a multipart form or of a JSON request. The handler reads
/// them as raw options (a form or a body may carry them too); a test keeps this list and
/// [`KNOWN`] the same.
#[allow(dead_code)] // A statement of the shape for the document; the handler reads raw options.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ImportOptions {
    /// The table to load into (`name` of `POST /v1/tables`).
    pub table: Option<String>,
    /// The source's file name, for a raw body.
    pub file_name: Option<String>,
    /// False: the import waits (status `new`) for its file and `POST …/start`.
    pub start: Option<bool>,
    /// `insert` (default), `upsert` or `replace`.
    pub mode: Option<String>,
    /// `skip` (default: invalid rows are rejected, the rest load) or `abort`.
    pub on_error: Option<String>,
    /// Rejected rows past which the import fails.
    pub max_errors: Option<u64>,
    /// Validate everything, write nothing.
    pub dry_run: Option<bool>,
    /// Upsert only: delete the table's rows the source does not name.
    pub cleanup_records: Option<bool>,
    /// A client's own id for the import (filterable).
    pub reference: Option<String>,
    pub reference_origin: Option<String>,
    /// A JSON object kept with the import.
    pub metadata: Option<String>,
    pub note: Option<String>,
    pub platform: Option<String>,
    /// `csv`, `tsv`, `ndjson` or `json` (sniffed when absent).
    pub format: Option<String>,
    /// One character, or `tab` (sniffed when absent).
    pub delimiter: Option<String>,
    /// A WHATWG label (`utf-8`, `windows-1252`, `shift_jis`, …); sniffed when absent.
    pub encoding: Option<String>,
    /// A workbook's sheet: its name, or its position from 1 (default: the first sheet).
    pub sheet: Option<String>,
    /// Cells that mean NULL, comma-separated or a JSON list.
    pub null_values: Option<String>,
    /// Source field → column (null to ignore), a JSON object.
    pub mapping: Option<String>,
    /// Whether a CSV's first line names the columns (default true).
    pub has_header: Option<bool>,
    /// Create a missing table from the whole source (the one-step load).
    pub create_table: Option<bool>,
    /// The one-step load may infer enum columns.
    pub infer_enums: Option<bool>,
    /// Source fields the table lacks become new nullable columns.
    pub add_columns: Option<bool>,
}

/// A JSON request to `POST /v1/imports`: the options and the records themselves.
#[allow(dead_code)] // A statement of the shape for the document; the handler streams the body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ImportRequest {
    #[serde(flatten)]
    pub options: ImportOptions,
    /// The records, as JSON objects (absent with `start: false` or with `url`).
    pub inputs: Option<Vec<serde_json::Map<String, Value>>>,
    /// Instead of records: an http(s) URL the server downloads the source from (the import
    /// is `new`, step `downloading`, until it has the file).
    pub url: Option<String>,
}

/// A multipart upload to `POST /v1/imports`: the file, with options as more fields.
#[allow(dead_code)] // A statement of the shape for the document; the handler streams the form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ImportUpload {
    #[serde(flatten)]
    pub options: ImportOptions,
    /// The source file (CSV, TSV, NDJSON, JSON or a workbook: xlsx, xls, ods; plain or gzip,
    /// zstd or zip compressed).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Checked options of an import.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub table: Option<String>,
    pub mode: Mode,
    pub on_error: OnError,
    pub max_errors: Option<u64>,
    pub dry_run: bool,
    pub cleanup_records: bool,
    pub reference: Option<String>,
    pub reference_origin: Option<String>,
    pub metadata: Value,
    pub note: Option<String>,
    pub platform: Option<String>,
    /// The source's file name, for raw bodies (multipart uploads carry their own).
    pub file_name: Option<String>,
    /// The URL the source is fetched from (a JSON request's `url`); part of the settings so
    /// that an `Idempotency-Key` replayed with another URL is told apart.
    pub url: Option<String>,
    /// False: the import waits (status `new`) for `POST /v1/imports/{id}/start`, and may be
    /// created before its file is uploaded with `PUT /v1/imports/{id}/file`.
    pub start: bool,
    pub format: Option<Format>,
    pub delimiter: Option<u8>,
    pub encoding: Option<Encoding>,
    /// The sheet of a workbook to load: its name, or its 1-based position when no sheet has
    /// that name (default: the first).
    pub sheet: Option<String>,
    pub null_values: Option<Vec<String>>,
    pub mapping: BTreeMap<String, Option<String>>,
    pub has_header: bool,
    /// A missing table is created from the whole source (the one-step load).
    pub create_table: bool,
    /// The one-step load may infer enum columns.
    pub infer_enums: bool,
    /// Source fields the table lacks become new nullable columns.
    pub add_columns: bool,
    /// The options as given, in one stable spelling (sorted names, JSON values): what an
    /// idempotency key's request is recognised by.
    pub canonical: String,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn flag(name: &str, v: &Value) -> ApiResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ApiError::validation(format!(
                "{name} must be true or false, not {s:?}"
            ))),
        },
        other => Err(ApiError::validation(format!(
            "{name} must be true or false, not {other}"
        ))),
    }
}

/// A JSON option given as JSON or as JSON text (query strings and multipart fields).
fn json_option(name: &str, v: &Value) -> ApiResult<Value> {
    match v {
        Value::String(s) => serde_json::from_str(s)
            .map_err(|e| ApiError::validation(format!("{name} is not valid JSON: {e}"))),
        other => Ok(other.clone()),
    }
}

fn limited(name: &str, v: &Value, max: usize) -> ApiResult<String> {
    let s = text(v);
    if s.chars().count() > max {
        return Err(ApiError::validation(format!(
            "{name} is longer than {max} characters"
        )));
    }
    Ok(s)
}

impl ImportSettings {
    /// The import these settings describe, of `source`, with `inputs`, in `status` (and
    /// the `error` of an unsupported one); its platform is the source's unless named.
    pub fn new_import(
        &self,
        id: uuid::Uuid,
        workspace_id: uuid::Uuid,
        status: crate::model::ImportStatus,
        source: crate::model::Source,
        error: Option<String>,
        inputs: Vec<crate::store::NewImportInput>,
    ) -> crate::store::NewImport {
        crate::store::NewImport {
            id,
            workspace_id,
            status,
            source,
            mode: self.mode,
            on_error: self.on_error,
            max_errors: self.max_errors,
            dry_run: self.dry_run,
            cleanup_records: self.cleanup_records,
            reference: self.reference.clone(),
            reference_origin: self.reference_origin.clone(),
            metadata: self.metadata.clone(),
            note: self.note.clone(),
            platform: self
                .platform
                .clone()
                .or_else(|| Some(source.as_str().to_owned())),
            error,
            idempotency: None,
            inputs,
        }
    }

    /// Checks raw options.
    pub fn parse(raw: &RawOptions) -> ApiResult<ImportSettings> {
        if let Some(unknown) = raw.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::validation(format!(
                "unknown option {unknown:?}; the options are {}",
                KNOWN.join(", ")
            )));
        }
        let get = |k: &str| raw.get(k).filter(|v| !v.is_null());
        let mode = match get("mode") {
            None => Mode::Insert,
            Some(v) => Mode::parse(&text(v)).ok_or_else(|| {
                ApiError::validation(format!(
                    "mode must be insert, upsert or replace, not {}",
                    text(v)
                ))
            })?,
        };
        let on_error = match get("on_error") {
            None => OnError::Skip,
            Some(v) => OnError::parse(&text(v)).ok_or_else(|| {
                ApiError::validation(format!(
                    "on_error must be skip, abort or atomic, not {}",
                    text(v)
                ))
            })?,
        };
        let max_errors = match get("max_errors") {
            None => None,
            // Stored as a signed 64-bit integer, so bounded by one.
            Some(v) => Some(
                text(v)
                    .parse::<u64>()
                    .ok()
                    .filter(|n| i64::try_from(*n).is_ok())
                    .ok_or_else(|| {
                        ApiError::validation(format!(
                            "max_errors must be a whole number from 0 to {}, not {}",
                            i64::MAX,
                            text(v)
                        ))
                    })?,
            ),
        };
        let metadata = match get("metadata") {
            None => Value::Object(Default::default()),
            Some(v) => match json_option("metadata", v)? {
                m @ Value::Object(_) => m,
                _ => return Err(ApiError::validation("metadata must be a JSON object")),
            },
        };
        if metadata.to_string().len() > 16 * 1024 {
            return Err(ApiError::validation("metadata is larger than 16 KiB"));
        }
        let format = match get("format") {
            None => None,
            Some(v) => Some(Format::parse(&text(v)).ok_or_else(|| {
                ApiError::validation(format!(
                    "format must be csv, tsv, ndjson or json, not {}",
                    text(v)
                ))
            })?),
        };
        let delimiter = match get("delimiter") {
            None => None,
            Some(v) => {
                let s = text(v);
                let d = match s.as_str() {
                    "\\t" | "tab" => b'\t',
                    _ if s.len() == 1
                        && s.as_bytes()[0].is_ascii()
                        && s != "\""
                        && s != "\n"
                        && s != "\r" =>
                    {
                        s.as_bytes()[0]
                    }
                    _ => {
                        return Err(ApiError::validation(format!(
                            "delimiter must be one ASCII character (or \"tab\"), not {s:?}"
                        )));
                    }
                };
                Some(d)
            }
        };
        let encoding = match get("encoding") {
            None => None,
            Some(v) => Some(parse_encoding(&text(v)).ok_or_else(|| {
                ApiError::validation(format!(
                    "encoding must be an encoding label (utf-8, utf-16, windows-1252, latin1, iso-8859-2, shift_jis, gbk…), not {}",
                    text(v)
                ))
            })?),
        };
        let null_values = match get("null_values") {
            None => None,
            Some(Value::Array(items)) => Some(items.iter().map(text).collect()),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => {
                match json_option("null_values", &Value::String(s.clone()))? {
                    Value::Array(items) => Some(items.iter().map(text).collect()),
                    _ => {
                        return Err(ApiError::validation(
                            "null_values must be a list of strings",
                        ));
                    }
                }
            }
            Some(Value::String(s)) => Some(s.split(',').map(str::to_owned).collect()),
            Some(_) => {
                return Err(ApiError::validation(
                    "null_values must be a list of strings",
                ));
            }
        };
        let mapping = match get("mapping") {
            None => BTreeMap::new(),
            Some(v) => match json_option("mapping", v)? {
                Value::Object(m) => m
                    .into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k, Some(s))),
                        Value::Null => Ok((k, None)),
                        _ => Err(ApiError::validation(
                            "mapping must map source field names to column names (or null to ignore)",
                        )),
                    })
                    .collect::<ApiResult<_>>()?,
                _ => return Err(ApiError::validation("mapping must be a JSON object")),
            },
        };
        let opt_text = |k: &str, max: usize| get(k).map(|v| limited(k, v, max)).transpose();
        Ok(ImportSettings {
            canonical: serde_json::to_string(raw).map_err(ApiError::internal)?,
            table: opt_text("table", 100)?,
            mode,
            on_error,
            max_errors,
            dry_run: get("dry_run")
                .map(|v| flag("dry_run", v))
                .transpose()?
                .unwrap_or(false),
            cleanup_records: get("cleanup_records")
                .map(|v| flag("cleanup_records", v))
                .transpose()?
                .unwrap_or(false),
            reference: opt_text("reference", 255)?,
            reference_origin: opt_text("reference_origin", 255)?,
            metadata,
            note: opt_text("note", 2000)?,
            platform: opt_text("platform", 100)?,
            file_name: opt_text("file_name", 255)?,
            url: opt_text("url", 8192)?,
            start: get("start")
                .map(|v| flag("start", v))
                .transpose()?
                .unwrap_or(true),
            format,
            delimiter,
            encoding,
            sheet: opt_text("sheet", 255)?,
            null_values,
            mapping,
            has_header: get("has_header")
                .map(|v| flag("has_header", v))
                .transpose()?
                .unwrap_or(true),
            create_table: get("create_table")
                .map(|v| flag("create_table", v))
                .transpose()?
                .unwrap_or(false),
            infer_enums: get("infer_enums")
                .map(|v| flag("infer_enums", v))
                .transpose()?
                .unwrap_or(false),
            add_columns: get("add_columns")
                .map(|v| flag("add_columns", v))
                .transpose()?
                .unwrap_or(false),
        })
    }

    /// Checks the options of an input whose table does not exist yet and will be inferred
    /// from its source (`create_table=true`).
    pub fn check_for_new_table(&self, table: &str) -> ApiResult<()> {
        crate::model::Identifier::parse("table", table)?;
        if !self.create_table {
            return Err(ApiError::validation(format!(
                "table {table:?} does not exist; create it with POST /v1/tables, or pass create_table=true to create it from the file"
            )));
        }
        if self.dry_run {
            return Err(ApiError::validation(format!(
                "table {table:?} does not exist, and a dry run creates nothing; POST /v1/schema/infer proposes a schema"
            )));
        }
        if !self.mapping.is_empty() {
            return Err(ApiError::validation(format!(
                "table {table:?} does not exist yet: its columns are named after the source fields, so mapping applies only to an existing table"
            )));
        }
        if self.cleanup_records {
            return Err(ApiError::validation(
                "cleanup_records works only with mode=upsert on an existing table",
            ));
        }
        Ok(())
    }

    /// Checks the combination of options against the table.
    pub fn check_against(&self, schema: &crate::model::TableSchema) -> ApiResult<()> {
        if self.mode == Mode::Upsert && schema.primary_key.is_empty() {
            return Err(ApiError::validation(format!(
                "mode=upsert needs a primary key, and table {:?} has none",
                schema.name.as_str()
            )));
        }
        if self.cleanup_records && self.mode != Mode::Upsert {
            return Err(ApiError::validation(
                "cleanup_records works only with mode=upsert",
            ));
        }
        let input = self.input_options(b',');
        crate::engine::mapper::check_mapping(schema, &input).map_err(|e| ApiError::validation(e.0))
    }

    /// How an upload is staged: its declared encoding and the sheet of a workbook.
    pub fn stage_options(&self) -> crate::engine::staging::StageOptions {
        crate::engine::staging::StageOptions {
            encoding: self.encoding,
            sheet: self.sheet.clone(),
        }
    }

    /// The reading options stored with each input.
    pub fn input_options(&self, delimiter: u8) -> crate::engine::options::InputOptions {
        let mut o = crate::engine::options::InputOptions {
            delimiter,
            has_header: self.has_header,
            mapping: self.mapping.clone(),
            create_table: self.create_table,
            infer_enums: self.infer_enums,
            add_columns: self.add_columns,
            ..Default::default()
        };
        if let Some(n) = &self.null_values {
            o.null_values = n.clone();
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_options_are_the_accepted_options() {
        let documented: Vec<String> = ImportOptions::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        let accepted: Vec<&str> = KNOWN
            .iter()
            .copied()
            .filter(|k| !matches!(*k, "inputs" | "records" | "url"))
            .collect();
        assert_eq!(documented, accepted);
    }

    #[test]
    fn max_errors_past_what_the_database_stores_is_refused() {
        let raw: RawOptions = [("max_errors".to_owned(), Value::String(u64::MAX.to_string()))]
            .into_iter()
            .collect();
        let e = ImportSettings::parse(&raw).expect_err("refused");
        assert_eq!(e.code, super::super::error::ErrorCode::Validation);
        assert!(
            e.message.contains("from 0 to 9223372036854775807"),
            "{}",
            e.message
        );
        let raw: RawOptions = [("max_errors".to_owned(), Value::String(i64::MAX.to_string()))]
            .into_iter()
            .collect();
        assert!(ImportSettings::parse(&raw).is_ok());
    }
}
