//! The rejected rows of an import as a CSV, ready to fix and upload again: the original
//! fields plus `line` and `error`. Cells that a spreadsheet would run as a formula are
//! neutralised with a leading apostrophe.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};

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

/// Answers the CSV of an import's stored row errors.
pub async fn download(state: &AppState, workspace_id: Uuid, id: Uuid) -> ApiResult<Response> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_row_errors(workspace_id, id, after, 1000)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let done = page.len() < 1000;
        all.extend(page);
        if done {
            break;
        }
    }
    // Columns: the source header of each table with rejected rows, in the file's order (the
    // stored rows are maps, which lose it), then any other field in order of first appearance.
    let import = state.store.get_import(workspace_id, id).await?;
    let mut columns: Vec<String> = Vec::new();
    for t in &import.tables {
        if !all.iter().any(|e| e.table == t.table) {
            continue;
        }
        for name in t.header.iter().flatten() {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    for e in &all {
        if let serde_json::Value::Object(obj) = &e.error.row {
            for k in obj.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = columns.iter().map(|c| neutralise(c).into_owned()).collect();
    // The added columns never take the name of an original one.
    for added in ["line", "error"] {
        let mut name = added.to_owned();
        while columns.contains(&name) {
            name.insert(0, '_');
        }
        header.push(name);
    }
    out.write_record(&header).map_err(ApiError::internal)?;
    for e in &all {
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
        let what = match &e.error.column {
            Some(c) => format!("{}: {} ({})", c, e.error.message, e.error.code.as_str()),
            None => format!("{} ({})", e.error.message, e.error.code.as_str()),
        };
        record.push(neutralise(&what).into_owned());
        out.write_record(&record).map_err(ApiError::internal)?;
    }
    let body = out.into_inner().map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{id}-rejected.csv\""),
            ),
        ],
        body,
    )
        .into_response())
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
