//! Workspaces and their keys on PostgreSQL.

use ::postgres::Transaction;
use ::postgres::error::SqlState;
use uuid::Uuid;

use super::{BOOTSTRAP_LOCK, StoreError, StoreResult, lock_workspace, now, tables, values};
use crate::model::{Refusal, Role};
use crate::store::{KeyRecord, NewKey, Workspace, stored_row};

use crate::store::columns::KEY_COLUMNS;

pub(super) fn insert_workspace(
    tx: &mut Transaction<'_>,
    slug: &str,
    name: &str,
) -> StoreResult<Workspace> {
    tables::check_slug(slug)?;
    let ws = Workspace {
        id: Uuid::now_v7(),
        slug: slug.to_owned(),
        name: name.to_owned(),
        created_at: now(),
    };
    let taken = tx.query_opt("SELECT 1 FROM intake_workspaces WHERE slug = $1", &[&slug])?;
    if taken.is_some() {
        return Err(Refusal::WorkspaceExists(slug.to_owned()).into());
    }
    tx.execute(
        "INSERT INTO intake_workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
        &[&ws.id, &ws.slug, &ws.name, &ws.created_at],
    )
    .map_err(|e| match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            StoreError::from(Refusal::WorkspaceExists(slug.to_owned()))
        }
        _ => e.into(),
    })?;
    // The workspace's tables live in a schema of its own.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        values::quote(slug)
    ))?;
    Ok(ws)
}

pub(super) fn delete_workspace(tx: &mut Transaction<'_>, id: Uuid) -> StoreResult<Vec<String>> {
    // Locked, so that no import or table is added to it meanwhile.
    let row = tx
        .query_opt(
            "SELECT id, slug, name, created_at FROM intake_workspaces WHERE id = $1 FOR UPDATE",
            &[&id],
        )?
        .ok_or(StoreError::NotFound("workspace"))?;
    let ws = stored_row::workspace(&row)?;
    let busy = tx.query_opt(
        "SELECT id FROM intake_imports WHERE workspace_id = $1
         AND status IN ('queued', 'processing', 'rolling_back') LIMIT 1",
        &[&id],
    )?;
    if let Some(row) = busy {
        let import: Uuid = row.try_get(0)?;
        return Err(Refusal::WorkspaceBusy {
            slug: ws.slug,
            import: import.to_string(),
        }
        .into());
    }
    let blobs = tx
        .query(
            "SELECT t.blob_key FROM intake_import_tables t
             JOIN intake_imports i ON i.id = t.import_id
             WHERE i.workspace_id = $1 AND t.blob_key IS NOT NULL",
            &[&id],
        )?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    for sql in [
        "DELETE FROM intake_idempotency WHERE workspace_id = $1",
        "DELETE FROM intake_imports WHERE workspace_id = $1",
        "DELETE FROM intake_webhooks WHERE workspace_id = $1",
        "DELETE FROM intake_tables WHERE workspace_id = $1",
        "DELETE FROM intake_api_keys WHERE workspace_id = $1",
        "DELETE FROM intake_workspaces WHERE id = $1",
    ] {
        tx.execute(sql, &[&id])?;
    }
    // Its tables, their undo copies and anything else of it live in its schema.
    tx.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        values::quote(&ws.slug)
    ))?;
    Ok(blobs)
}

pub(super) fn insert_key(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    key: &NewKey,
) -> StoreResult<KeyRecord> {
    let created_at = now();
    tx.execute(
        "INSERT INTO intake_api_keys (id, workspace_id, name, role, prefix, hash, created_at,
         expires_at, tables) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &key.id,
            &workspace_id,
            &key.name,
            &key.role.as_str(),
            &key.prefix,
            &&key.hash[..],
            &created_at,
            &key.expires_at,
            &crate::store::scope_text(&key.tables),
        ],
    )?;
    Ok(key.record(workspace_id, created_at))
}

/// Creates the default workspace and its owner key when there is no workspace yet.
pub(super) fn bootstrap(tx: &mut Transaction<'_>, key: &NewKey) -> StoreResult<Option<Workspace>> {
    // Processes starting together on an empty database: one creates the workspace.
    lock_workspace(tx, BOOTSTRAP_LOCK, Uuid::nil())?;
    if tx
        .query_opt("SELECT id FROM intake_workspaces LIMIT 1", &[])?
        .is_some()
    {
        return Ok(None);
    }
    let ws = insert_workspace(tx, "default", "Default workspace")?;
    insert_key(tx, ws.id, key)?;
    Ok(Some(ws))
}

/// A workspace by id or slug.
pub(super) fn find_workspace(
    tx: &mut Transaction<'_>,
    key: &str,
) -> StoreResult<Option<Workspace>> {
    let row = match Uuid::parse_str(key) {
        Ok(id) => tx.query_opt(
            "SELECT id, slug, name, created_at FROM intake_workspaces
                 WHERE id = $1 OR slug = $2",
            &[&id, &key],
        )?,
        Err(_) => tx.query_opt(
            "SELECT id, slug, name, created_at FROM intake_workspaces WHERE slug = $1",
            &[&key],
        )?,
    };
    row.as_ref().map(|r| stored_row::workspace(r)).transpose()
}

/// A live key by its hash.
pub(super) fn authenticate(
    tx: &mut Transaction<'_>,
    hash: &[u8; 32],
) -> StoreResult<Option<KeyRecord>> {
    let row = tx.query_opt(
        &format!(
            "SELECT {KEY_COLUMNS} FROM intake_api_keys WHERE hash = $1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > now())"
        ),
        &[&&hash[..]],
    )?;
    row.as_ref().map(|r| stored_row::key(r)).transpose()
}

/// Revokes a key of at most `max_role`.
pub(super) fn revoke_key(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
    max_role: Role,
) -> StoreResult<KeyRecord> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {KEY_COLUMNS} FROM intake_api_keys
                     WHERE id = $1 AND workspace_id = $2 FOR NO KEY UPDATE"
            ),
            &[&id, &workspace_id],
        )?
        .ok_or(StoreError::NotFound("key"))?;
    let key = stored_row::key(&row)?;
    key.role.revoke_within(max_role)?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let at = now();
    tx.execute(
        "UPDATE intake_api_keys SET revoked_at = $1 WHERE id = $2",
        &[&at, &id],
    )?;
    Ok(KeyRecord {
        revoked_at: Some(at),
        ..key
    })
}
