//! The rejected rows of an import as a CSV, ready to fix and upload again: the original
//! fields plus `line` (and `cell`, for a workbook's sheet) and `error`. Cells that a spreadsheet would run as a formula are
//! neutralised with a leading apostrophe. When some rejected rows were counted but not
//! stored, the `Intake-Errors-Truncated` header says how many the file holds.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::sheet_cells::SheetCells;
use crate::store::StoredRowError;

/// Makes a cell safe to open in a spreadsheet.
/// A plain number (`-4`, `+1.5e3`) is shown as a number by spreadsheets and runs nothing, so it
/// is kept as is: prefixing it would break uploading the fixed file again.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    let plain_number = cell
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && cell.parse::<f64>().is_ok();
    match cell.as_bytes().first() {
        Some(b'+' | b'-') if plain_number => cell.into(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Row errors read from the store at a time, both to find the columns and to stream rows.
const PAGE: u32 = 1000;

/// The response header that says the download holds fewer rows than were rejected.
pub const TRUNCATED_HEADER: &str = "intake-errors-truncated";

/// Answers the CSV of an import's stored row errors, streamed page by page: an import may
/// have a million rejected rows, which must not be held in memory at once.
pub async fn download(state: &AppState, workspace_id: Uuid, id: Uuid) -> ApiResult<Response> {
    let import = state.store.get_import(workspace_id, id).await?;
    // Columns: the source header of each table with rejected rows, in the file's order (the
    // stored rows are maps, which lose it), then any other field in order of first appearance.
    // Finding them takes a first pass over the errors, keeping only their field names; the
    // rows streamed stop at the last error that pass saw, so every row has its columns.
    let mut tables: Vec<&str> = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_row_errors(workspace_id, id, after, PAGE)
            .await?;
        for e in &page {
            if !tables.contains(&e.table.as_str())
                && let Some(t) = import.tables.iter().find(|t| t.table == e.table)
            {
                tables.push(&t.table);
            }
            if let serde_json::Value::Object(obj) = &e.error.row {
                for k in obj.keys() {
                    if !extra.contains(k) {
                        extra.push(k.clone());
                    }
                }
            }
        }
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        if page.len() < PAGE as usize {
            break;
        }
    }
    let last_id = after.unwrap_or(0);
    let mut columns: Vec<String> = Vec::new();
    for t in import
        .tables
        .iter()
        .filter(|t| tables.contains(&t.table.as_str()))
    {
        for name in t.header.iter().flatten() {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    for k in extra {
        if !columns.contains(&k) {
            columns.push(k);
        }
    }
    let mut header: Vec<String> = columns.iter().map(|c| neutralise(c).into_owned()).collect();
    let cells = std::sync::Arc::new(super::sheet_cells::SheetCells::of(&import));
    let added: &[&str] = if cells.any() {
        &["line", "cell", "error"]
    } else {
        &["line", "error"]
    };
    // The added columns never take the name of an original one.
    for &added in added {
        let mut name = added.to_owned();
        while columns.contains(&name) {
            name.insert(0, '_');
        }
        header.push(name);
    }
    let first = csv_bytes(std::iter::once(header)).map_err(ApiError::internal)?;

    let store = state.store.clone();
    let rows = futures_util::stream::unfold(Some(None), move |cursor: Option<Option<i64>>| {
        let (store, columns, cells) = (store.clone(), columns.clone(), cells.clone());
        async move {
            let after = cursor?;
            if after.is_some_and(|a| a >= last_id) || last_id == 0 {
                return None;
            }
            let page = match store.list_row_errors(workspace_id, id, after, PAGE).await {
                Ok(p) => p,
                // The response has begun: a failure can only cut it short, which the client
                // sees as an incomplete body, never as a complete file.
                Err(e) => {
                    tracing::error!(error = %e, import = %id, "rejected rows download failed");
                    return Some((Err(std::io::Error::other(e.to_string())), None));
                }
            };
            let next = page.last().map(|l| l.id);
            let records = page
                .iter()
                .filter(|e| e.id <= last_id)
                .map(|e| rejected_record(&columns, &cells, e));
            let chunk = csv_bytes(records);
            let cursor = match (&chunk, next) {
                (Ok(_), Some(n)) if page.len() == PAGE as usize => Some(Some(n)),
                _ => None,
            };
            Some((chunk, cursor))
        }
    });
    let body = futures_util::stream::once(async move { Ok(first) }).chain(rows);

    let mut response = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{id}-rejected.csv\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response();
    // Some rejected rows were counted but not stored: the file says how many it holds.
    if import.errors_truncated()
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{} of {}",
            import.errors_stored, import.counts.invalid
        ))
    {
        response.headers_mut().insert(TRUNCATED_HEADER, value);
    }
    Ok(response)
}

/// One rejected row: its original fields in `columns` order, then its line, its cell (when
/// some input is a sheet) and its error.
fn rejected_record(columns: &[String], cells: &SheetCells, e: &StoredRowError) -> Vec<String> {
    let mut record: Vec<String> = columns
        .iter()
        .map(|c| {
            neutralise(&cell_text(
                e.error.row.get(c).unwrap_or(&serde_json::Value::Null),
            ))
            .into_owned()
        })
        .collect();
    record.push(e.error.line.to_string());
    if cells.any() {
        record.push(cells.cell(e).unwrap_or_default());
    }
    let what = match &e.error.column {
        Some(c) => format!("{}: {} ({})", c, e.error.message, e.error.code.as_str()),
        None => format!("{} ({})", e.error.message, e.error.code.as_str()),
    };
    record.push(neutralise(&what).into_owned());
    record
}

/// CSV text of some records.
fn csv_bytes(records: impl Iterator<Item = Vec<String>>) -> std::io::Result<Bytes> {
    let mut out = csv::Writer::from_writer(Vec::new());
    for r in records {
        out.write_record(&r)?;
    }
    out.into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn formula_starts_are_prefixed_and_plain_numbers_are_not() {
        for cell in [
            "=1+1",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "-",
            "+",
        ] {
            assert_eq!(neutralise(cell), format!("'{cell}"), "{cell:?}");
        }
        for cell in ["-4", "+1.5", "-1e3", "12", "plain", ""] {
            assert_eq!(neutralise(cell), cell, "{cell:?}");
        }
    }
}
