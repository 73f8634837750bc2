//! Import life-cycle operations beyond the native API, on SQLite: queueing an import whose
//! sources arrived in parts, forgetting an import (optionally with the rows it wrote), and
//! changing its labels.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::tables::{IMPORT_COLUMN, physical_name};
use super::values::{quote, ts};
use super::{StoreError, StoreResult, imports, now};
use crate::model::{Forget, ImportStatus, Step};
use crate::store::{ImportLabels, ImportRecord, PurgedImport, Workspace};

pub(super) fn start(
    tx: &Connection,
    workspace_id: Uuid,
    id: Uuid,
    sizes: &[u64],
) -> StoreResult<ImportRecord> {
    let import = imports::get(tx, workspace_id, id)?;
    import.lifecycle().expect_waiting()?;
    if sizes.len() != import.tables.len() {
        return Err(StoreError::Invalid(format!(
            "the import has {} inputs, not {}",
            import.tables.len(),
            sizes.len()
        )));
    }
    let at = ts(now());
    for (table, size) in import.tables.iter().zip(sizes) {
        tx.execute(
            "UPDATE intake_import_tables SET status = 'queued', file_size = ?3, bytes_total = ?3
             WHERE import_id = ?1 AND position = ?2",
            params![id.to_string(), table.position, *size as i64],
        )?;
    }
    let total: u64 = sizes.iter().sum();
    tx.execute(
        "UPDATE intake_imports SET status = 'queued', step = 'queued', bytes_total = ?2,
         updated_at = ?3 WHERE id = ?1",
        params![id.to_string(), total as i64, at],
    )?;
    imports::append_event(
        tx,
        workspace_id,
        id,
        ImportStatus::Queued.event_type(),
        &serde_json::json!({"status": "queued"}),
    )?;
    imports::get(tx, workspace_id, id)
}

pub(super) fn purge(
    tx: &Connection,
    ws: &Workspace,
    id: Uuid,
    which: Forget,
    remove_rows: bool,
) -> StoreResult<PurgedImport> {
    let import = imports::get(tx, ws.id, id)?;
    import.lifecycle().forget(which)?;
    let mut rows_deleted = 0u64;
    if remove_rows && import.lifecycle().wrote_rows() {
        let mut done: Vec<&str> = Vec::new();
        for table in &import.tables {
            if done.contains(&table.table.as_str()) {
                continue;
            }
            done.push(&table.table);
            // A table dropped since has no rows left to delete.
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM intake_tables WHERE workspace_id = ?1 AND name = ?2",
                    params![ws.id.to_string(), table.table],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                continue;
            }
            rows_deleted += tx.execute(
                &format!(
                    "DELETE FROM {} WHERE {} = ?1",
                    quote(&physical_name(ws, &table.table)),
                    quote(IMPORT_COLUMN)
                ),
                [import.number],
            )? as u64;
        }
    }
    // A replace's undo copy goes with the import.
    for t in imports::undo_tables(tx, &import)? {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(&t)))?;
    }
    tx.execute(
        "DELETE FROM intake_idempotency WHERE workspace_id = ?1 AND import_id = ?2",
        params![ws.id.to_string(), id.to_string()],
    )?;
    // Its tables, row errors, events and undo journal go with it (ON DELETE CASCADE).
    tx.execute("DELETE FROM intake_imports WHERE id = ?1", [id.to_string()])?;
    Ok(PurgedImport {
        rows_deleted,
        blob_keys: import
            .tables
            .iter()
            .filter_map(|t| t.blob_key.clone())
            .collect(),
    })
}

pub(super) fn relabel(
    tx: &Connection,
    workspace_id: Uuid,
    id: Uuid,
    labels: &ImportLabels,
) -> StoreResult<ImportRecord> {
    let import = imports::get(tx, workspace_id, id)?;
    let reference = labels.reference.clone().unwrap_or(import.reference);
    let origin = labels
        .reference_origin
        .clone()
        .unwrap_or(import.reference_origin);
    let metadata = labels.metadata.clone().unwrap_or(import.metadata);
    tx.execute(
        "UPDATE intake_imports SET reference = ?2, reference_origin = ?3, metadata = ?4,
         updated_at = ?5 WHERE id = ?1",
        params![
            id.to_string(),
            reference,
            origin,
            metadata.to_string(),
            ts(now())
        ],
    )?;
    imports::get(tx, workspace_id, id)
}

pub(super) fn set_new_step(
    tx: &Connection,
    workspace_id: Uuid,
    id: Uuid,
    step: Step,
    failure: Option<&str>,
) -> StoreResult<()> {
    let import = imports::get(tx, workspace_id, id)?;
    import.lifecycle().expect_waiting()?;
    let at = ts(now());
    let Some(why) = failure else {
        tx.execute(
            "UPDATE intake_imports SET step = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.to_string(), step.as_str(), at],
        )?;
        return Ok(());
    };
    tx.execute(
        "UPDATE intake_import_tables SET status = 'failed', error = ?2, completed_at = ?3
         WHERE import_id = ?1",
        params![id.to_string(), why, at],
    )?;
    tx.execute(
        "UPDATE intake_imports SET status = 'failed', step = 'done', error = ?2,
         completed_at = ?3, updated_at = ?3 WHERE id = ?1",
        params![id.to_string(), why, at],
    )?;
    imports::append_event(
        tx,
        workspace_id,
        id,
        ImportStatus::Failed.event_type(),
        &serde_json::json!({"status": "failed", "error": why}),
    )?;
    Ok(())
}

pub(super) fn set_input_source(
    tx: &Connection,
    workspace_id: Uuid,
    id: Uuid,
    position: u32,
    format: &str,
    options: &serde_json::Value,
) -> StoreResult<()> {
    let import = imports::get(tx, workspace_id, id)?;
    import.lifecycle().expect_waiting()?;
    tx.execute(
        "UPDATE intake_import_tables SET format = ?3, options = ?4 WHERE import_id = ?1 AND position = ?2",
        params![id.to_string(), position, format, options.to_string()],
    )?;
    Ok(())
}
