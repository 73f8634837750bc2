//! Creating an import from a request's checked settings and staged sources: each source
//! checked against its table and sniffed, the import assembled, then handed to the engine's
//! `submit`, which stores it and wakes the workers.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use super::auth::{Auth, Member};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::import_options::ImportSettings;
use super::views::import_view;
use crate::engine::reader::Format;
use crate::engine::staging::{Staged, detect};
use crate::engine::workbook::WorkbookKind;
use crate::engine::{StagedSource, Submission, SubmitError, Submitted};
use crate::model::{ImportStatus, Source};
use crate::store::NewImportInput;

/// One staged source waiting to become an input.
pub(super) struct StagedInput {
    pub table: Option<String>,
    pub file_name: Option<String>,
    pub declared: Option<Format>,
    pub staged: Staged,
}

/// The answer to a file of 0 bytes, whatever its format.
pub(super) fn empty_file() -> ApiError {
    ApiError::new(
        ErrorCode::EmptyFile,
        "the file is empty (0 bytes): there is nothing to import",
    )
}

/// Creates an import of the staged sources (none: it waits for its file) with `settings`
/// (202), or answers a replayed `Idempotency-Key` as its first request was answered.
pub(super) async fn create_import(
    state: &AppState,
    auth: &Auth<Member>,
    headers: &HeaderMap,
    settings: ImportSettings,
    staged: &mut [StagedInput],
    source: Option<Source>,
) -> ApiResult<Response> {
    let ws = &auth.workspace;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::bad_request("Idempotency-Key must be 1 to 255 visible characters")
                })
        })
        .transpose()?;
    let id = Uuid::now_v7();
    let mut inputs = Vec::with_capacity(staged.len());
    let mut unsupported: Option<String> = None;
    let mut first_format = None;
    let mut first_workbook = None;
    for s in staged.iter() {
        // One policy for every format: an empty file is a mistake to report, not an import of
        // nothing (records sent inline may be none).
        if s.staged.size == 0 && !matches!(source, Some(Source::Inline | Source::Api)) {
            return Err(empty_file());
        }
        let table_name = s.table.clone().or_else(|| settings.table.clone()).ok_or_else(|| {
            ApiError::validation("say which table to load: the table option (?table=orders), or a file field named after the table")
        })?;
        super::auth::check_scope(&auth.key, &table_name)?;
        match state.store.get_table(ws, &table_name).await {
            Ok(table) => settings.check_against(&table.schema)?,
            // The worker infers the table from the whole source, then creates and loads it.
            Err(crate::store::StoreError::NotFound(_)) => {
                settings.check_for_new_table(&table_name)?
            }
            Err(e) => return Err(e.into()),
        }
        // Undo works per table: two sources for one table would undo each other's changes.
        if inputs
            .iter()
            .any(|i: &NewImportInput| i.table == table_name)
        {
            return Err(ApiError::validation(format!(
                "table {table_name:?} appears twice in this import; send one file per table"
            )));
        }
        let declared = settings.format.or(s.declared);
        let sniffed = detect(
            &s.staged,
            declared,
            settings.delimiter,
            s.file_name.as_deref(),
        );
        let (format, delimiter) = match sniffed {
            Ok(sn) => (sn.format, sn.delimiter),
            Err(why) => {
                unsupported.get_or_insert(why);
                (declared.unwrap_or(Format::Csv), b',')
            }
        };
        first_format.get_or_insert(format);
        let mut options = settings.input_options(delimiter);
        options.records_are_lines = matches!(source, Some(Source::Inline | Source::Api));
        options.replaced_sequences = s.staged.replaced;
        options.sheet = s.staged.workbook.clone();
        first_workbook = first_workbook.or(s.staged.workbook.as_ref().map(|w| w.kind));
        inputs.push(NewImportInput {
            table: table_name,
            blob_key: Some(format!("{id}-{}", inputs.len())),
            format: format.as_str().to_owned(),
            options: serde_json::to_value(&options).map_err(ApiError::internal)?,
            file_name: s.file_name.clone(),
            file_size: Some(s.staged.size),
        });
    }
    if staged.is_empty() {
        // Created before its file: one input, its format decided when the file arrives.
        let table_name = settings
            .table
            .clone()
            .ok_or_else(|| ApiError::validation("say which table to load: the table option"))?;
        match state.store.get_table(ws, &table_name).await {
            Ok(table) => settings.check_against(&table.schema)?,
            Err(crate::store::StoreError::NotFound(_)) => {
                settings.check_for_new_table(&table_name)?
            }
            Err(e) => return Err(e.into()),
        }
        let options = settings.input_options(settings.delimiter.unwrap_or(b','));
        inputs.push(NewImportInput {
            table: table_name,
            blob_key: Some(format!("{id}-0")),
            format: settings.format.map(|f| f.as_str()).unwrap_or("").to_owned(),
            options: serde_json::to_value(&options).map_err(ApiError::internal)?,
            file_name: settings.file_name.clone(),
            file_size: None,
        });
    }
    let source = source.unwrap_or(match (first_workbook, first_format) {
        (Some(WorkbookKind::Xlsx), _) => Source::Xlsx,
        (Some(WorkbookKind::Xlsb), _) => Source::Xlsb,
        (Some(WorkbookKind::Xls), _) => Source::Xls,
        (Some(WorkbookKind::Ods), _) => Source::Ods,
        (None, Some(Format::Tsv)) => Source::Tsv,
        (None, Some(Format::Ndjson)) => Source::Ndjson,
        (None, Some(Format::Json)) => Source::Json,
        (None, _) => Source::Csv,
    });
    let status = if unsupported.is_some() {
        ImportStatus::Unsupported
    } else if !settings.start {
        ImportStatus::New
    } else {
        ImportStatus::Queued
    };
    let new = settings.new_import(id, ws.id, status, source, unsupported.clone(), inputs);
    let submission = Submission {
        import: new,
        sources: staged
            .iter()
            .map(|s| StagedSource {
                path: &s.staged.path,
                sha256: &s.staged.sha256,
                table: s.table.as_deref(),
                file_name: s.file_name.as_deref(),
            })
            .collect(),
        idempotency_key,
        canonical: &settings.canonical,
    };
    let submitted = state.engine.submit(submission).await.map_err(|e| match e {
        SubmitError::Blob(e) => ApiError::blob("the upload", e),
        SubmitError::Store(e) => e.into(),
    })?;
    match submitted {
        Submitted::Created(import) => {
            if status == ImportStatus::Unsupported {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedFormat,
                    format!(
                        "the source cannot be read: {}",
                        unsupported.unwrap_or_default()
                    ),
                )
                .with("import_id", import.id.to_string()));
            }
            Ok((StatusCode::ACCEPTED, Json(import_view(&import))).into_response())
        }
        Submitted::Replayed {
            import_id,
            same_request,
        } => {
            if !same_request {
                return Err(ApiError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was already used with a different request",
                )
                .with("import_id", import_id.to_string()));
            }
            let import = state.store.get_import(ws.id, import_id).await?;
            // A replay answers as the first request was answered: a refused source stays a 415.
            if import.status == ImportStatus::Unsupported {
                let refused = ApiError::new(
                    ErrorCode::UnsupportedFormat,
                    format!(
                        "the source cannot be read: {}",
                        import.error.clone().unwrap_or_default()
                    ),
                )
                .with("import_id", import.id.to_string());
                return Ok(([("idempotent-replayed", "true")], refused).into_response());
            }
            Ok((
                StatusCode::ACCEPTED,
                [("idempotent-replayed", "true")],
                Json(import_view(&import)),
            )
                .into_response())
        }
    }
}
