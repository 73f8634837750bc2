//! Workspaces and their keys on SQLite.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::values::ts;
use super::{StoreError, StoreResult, first_record, now, tables};
use crate::model::{Refusal, Role};
use crate::store::stored_row;
use crate::store::{KeyRecord, NewKey, Workspace};

use crate::store::columns::KEY_COLUMNS;

pub(super) fn insert_workspace(tx: &Connection, slug: &str, name: &str) -> StoreResult<Workspace> {
    let ws = Workspace {
        id: Uuid::now_v7(),
        slug: slug.to_owned(),
        name: name.to_owned(),
        created_at: now(),
    };
    tx.execute(
        "INSERT INTO intake_workspaces (id, slug, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![ws.id.to_string(), ws.slug, ws.name, ts(ws.created_at)],
    )
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => {
            StoreError::from(Refusal::WorkspaceExists(slug.to_owned()))
        }
        _ => e.into(),
    })?;
    Ok(ws)
}

pub(super) fn delete_workspace(tx: &Connection, id: Uuid) -> StoreResult<Vec<String>> {
    let ws = first_record(
        tx,
        "SELECT id, slug, name, created_at FROM intake_workspaces WHERE id = ?1",
        [id.to_string()],
        |r| stored_row::workspace(r),
    )?
    .ok_or(StoreError::NotFound("workspace"))?;
    let wid = id.to_string();
    let busy: Option<String> = tx
        .query_row(
            "SELECT id FROM intake_imports WHERE workspace_id = ?1
             AND status IN ('queued', 'processing', 'rolling_back') LIMIT 1",
            [&wid],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(import) = busy {
        return Err(Refusal::WorkspaceBusy {
            slug: ws.slug,
            import: import.to_string(),
        }
        .into());
    }
    let blobs: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT t.blob_key FROM intake_import_tables t
             JOIN intake_imports i ON i.id = t.import_id
             WHERE i.workspace_id = ?1 AND t.blob_key IS NOT NULL",
        )?;
        let rows = stmt.query_map([&wid], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let table_names: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM intake_tables WHERE workspace_id = ?1")?;
        let rows = stmt.query_map([&wid], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // The imports first (their errors, events and undo journals go with them), so that
    // no import holds a table when the tables are dropped.
    for sql in [
        "DELETE FROM intake_idempotency WHERE workspace_id = ?1",
        "DELETE FROM intake_imports WHERE workspace_id = ?1",
        "DELETE FROM intake_webhooks WHERE workspace_id = ?1",
    ] {
        tx.execute(sql, [&wid])?;
    }
    for name in &table_names {
        tables::delete(tx, &ws, name)?;
    }
    tx.execute(
        "DELETE FROM intake_api_keys WHERE workspace_id = ?1",
        [&wid],
    )?;
    tx.execute("DELETE FROM intake_workspaces WHERE id = ?1", [&wid])?;
    Ok(blobs)
}

pub(super) fn insert_key(
    tx: &Connection,
    workspace_id: Uuid,
    key: &NewKey,
) -> StoreResult<KeyRecord> {
    let created_at = now();
    tx.execute(
        "INSERT INTO intake_api_keys (id, workspace_id, name, role, prefix, hash, created_at,
         expires_at, tables) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            key.id.to_string(),
            workspace_id.to_string(),
            key.name,
            key.role.as_str(),
            key.prefix,
            &key.hash[..],
            ts(created_at),
            key.expires_at.map(ts),
            crate::store::scope_text(&key.tables)
        ],
    )?;
    Ok(key.record(workspace_id, created_at))
}

/// Creates the default workspace and its owner key when there is no workspace yet.
pub(super) fn bootstrap(tx: &Connection, key: &NewKey) -> StoreResult<Option<Workspace>> {
    let any: Option<String> = tx
        .query_row("SELECT id FROM intake_workspaces LIMIT 1", [], |r| r.get(0))
        .optional()?;
    if any.is_some() {
        return Ok(None);
    }
    let ws = insert_workspace(tx, "default", "Default workspace")?;
    insert_key(tx, ws.id, key)?;
    Ok(Some(ws))
}

/// A workspace by id or slug.
pub(super) fn find_workspace(c: &Connection, key: &str) -> StoreResult<Option<Workspace>> {
    first_record(
        c,
        "SELECT id, slug, name, created_at FROM intake_workspaces WHERE id = ?1 OR slug = ?1",
        [key],
        |r| stored_row::workspace(r),
    )
}

/// A live key by its hash.
pub(super) fn authenticate(c: &Connection, hash: &[u8; 32]) -> StoreResult<Option<KeyRecord>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE hash = ?1 AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > ?2)"
    );
    first_record(c, &sql, params![&hash[..], ts(now())], |r| {
        stored_row::key(r)
    })
}

/// Revokes a key of at most `max_role`.
pub(super) fn revoke_key(
    tx: &Connection,
    workspace_id: Uuid,
    id: Uuid,
    max_role: Role,
) -> StoreResult<KeyRecord> {
    let key = first_record(
        tx,
        &format!("SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE id = ?1 AND workspace_id = ?2"),
        params![id.to_string(), workspace_id.to_string()],
        |r| stored_row::key(r),
    )?
    .ok_or(StoreError::NotFound("key"))?;
    key.role.revoke_within(max_role)?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let at = now();
    tx.execute(
        "UPDATE intake_api_keys SET revoked_at = ?1 WHERE id = ?2",
        params![ts(at), id.to_string()],
    )?;
    Ok(KeyRecord {
        revoked_at: Some(at),
        ..key
    })
}
