//! The work queue: workers claim imports under a lease, record each table's start and end,
//! and end the import.

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::super::values::{parse_ts_opt, ts};
use super::super::{StoreError, StoreResult, now, now_ms, parse_uuid};
use super::events::*;
use super::rows::*;
use crate::model::ImportStatus;
use crate::store::*;

/// Sets the terminal state of an import and of its unfinished tables.
pub(crate) fn set_terminal(
    tx: &Connection,
    import: &ImportRecord,
    status: ImportStatus,
    error: Option<&str>,
) -> StoreResult<()> {
    let at = ts(now());
    let cancelled_at = (status == ImportStatus::Cancelled).then(|| at.clone());
    let rolled_back_at = (status == ImportStatus::RolledBack).then(|| at.clone());
    tx.execute(
        "UPDATE intake_imports SET status = ?2, step = 'done', error = coalesce(?3, error),
         completed_at = coalesce(completed_at, ?4), cancelled_at = coalesce(?5, cancelled_at),
         rolled_back_at = coalesce(?6, rolled_back_at), updated_at = ?4,
         lease_owner = NULL, lease_expires_at = NULL WHERE id = ?1",
        params![
            import.id.to_string(),
            status.as_str(),
            error,
            at,
            cancelled_at,
            rolled_back_at
        ],
    )?;
    tx.execute(
        "UPDATE intake_import_tables SET status = ?2, completed_at = coalesce(completed_at, ?3)
         WHERE import_id = ?1 AND status IN ('new', 'queued', 'processing')",
        params![import.id.to_string(), status.as_str(), at],
    )?;
    append_event(
        tx,
        import.workspace_id,
        import.id,
        status.event_type(),
        &serde_json::json!({"status": status.as_str(), "error": error}),
    )
}

pub(crate) fn claim(
    tx: &Connection,
    worker: &str,
    lease_ms: i64,
    per_workspace: u32,
) -> StoreResult<Option<Claim>> {
    let now = now_ms();
    // The oldest runnable import of a workspace that runs fewer than `per_workspace` imports
    // (live leases) right now, so one tenant's backlog cannot take every worker, and that
    // shares no table with a running import: imports of one table run one after the other,
    // so each one's changes (and their undo) stay its own.
    let found: Option<(String, i64)> = tx
        .query_row(
            "SELECT i.id, i.lease_token FROM intake_imports i
             WHERE i.status IN ('queued', 'processing', 'rolling_back')
               AND (i.lease_expires_at IS NULL OR i.lease_expires_at < ?1)
               AND (SELECT count(*) FROM intake_imports r
                    WHERE r.workspace_id = i.workspace_id
                      AND r.status IN ('processing', 'rolling_back')
                      AND r.lease_expires_at >= ?1) < ?2
               AND NOT EXISTS (
                    SELECT 1 FROM intake_import_tables mine
                    JOIN intake_import_tables theirs ON theirs.table_name = mine.table_name
                    JOIN intake_imports o ON o.id = theirs.import_id
                    WHERE mine.import_id = i.id AND o.id <> i.id
                      AND o.workspace_id = i.workspace_id
                      AND o.status IN ('processing', 'rolling_back')
                      AND o.lease_expires_at >= ?1)
             ORDER BY i.created_at LIMIT 1",
            params![now, per_workspace],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((id, token)) = found else {
        return Ok(None);
    };
    let token = token + 1;
    let at = ts(OffsetDateTime::now_utc());
    tx.execute(
        "UPDATE intake_imports SET lease_owner = ?2, lease_token = ?3, lease_expires_at = ?4,
         status = CASE status WHEN 'queued' THEN 'processing' ELSE status END,
         started_at = coalesce(started_at, ?5), updated_at = ?5 WHERE id = ?1",
        params![id, worker, token, now + lease_ms, at],
    )?;
    let import = get_any(tx, parse_uuid(&id))?;
    Ok(Some(Claim {
        import,
        worker: worker.to_owned(),
        token,
        lease_ms,
    }))
}

/// Checks the claim still holds the lease and extends it; the fencing check of every write.
pub(crate) fn check_lease(
    tx: &Connection,
    id: Uuid,
    token: i64,
    lease_ms: i64,
) -> StoreResult<LeaseState> {
    let cancel: Option<bool> = tx
        .prepare_cached(
            "UPDATE intake_imports SET lease_expires_at = ?3
             WHERE id = ?1 AND lease_token = ?2 RETURNING cancel_requested",
        )?
        .query_row(params![id.to_string(), token, now_ms() + lease_ms], |r| {
            r.get(0)
        })
        .optional()?;
    match cancel {
        Some(cancel_requested) => Ok(LeaseState { cancel_requested }),
        None => Err(StoreError::LeaseLost),
    }
}

/// How many imports wait for a worker, and since when the oldest.
pub(crate) fn queue_stats(c: &Connection) -> StoreResult<QueueStats> {
    let (queued, oldest): (i64, Option<String>) = c.query_row(
        "SELECT count(*), min(created_at) FROM intake_imports WHERE status = 'queued'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(QueueStats {
        queued: queued.max(0) as u64,
        oldest_created_at: parse_ts_opt(oldest),
    })
}
