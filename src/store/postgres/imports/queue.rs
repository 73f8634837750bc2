//! The work queue: workers claim imports under a lease, record each table's start and end,
//! and end the import.

use ::postgres::Transaction;
use uuid::Uuid;

use super::super::{CLAIMS_LOCK, StoreError, StoreResult, lock_workspace, now};
use super::events::*;
use super::rows::*;
use crate::model::ImportStatus;
use crate::store::*;

/// Sets the terminal state of an import and of its unfinished tables.
pub(crate) fn set_terminal(
    tx: &mut Transaction<'_>,
    import: &ImportRecord,
    status: ImportStatus,
    error: Option<&str>,
) -> StoreResult<()> {
    let at = now();
    let cancelled_at = (status == ImportStatus::Cancelled).then_some(at);
    let rolled_back_at = (status == ImportStatus::RolledBack).then_some(at);
    tx.execute(
        "UPDATE intake_imports SET status = $2, step = 'done', error = coalesce($3, error),
         completed_at = coalesce(completed_at, $4), cancelled_at = coalesce($5, cancelled_at),
         rolled_back_at = coalesce($6, rolled_back_at), updated_at = $4,
         lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
        &[
            &import.id,
            &status.as_str(),
            &error,
            &at,
            &cancelled_at,
            &rolled_back_at,
        ],
    )?;
    tx.execute(
        "UPDATE intake_import_tables SET status = $2, completed_at = coalesce(completed_at, $3)
         WHERE import_id = $1 AND status IN ('new', 'queued', 'processing')",
        &[&import.id, &status.as_str(), &at],
    )?;
    append_event(
        tx,
        import.workspace_id,
        import.id,
        status.event_type(),
        &serde_json::json!({"status": status.as_str(), "error": error}),
    )
}

/// Which imports may be claimed now (over `intake_imports i`; `$1` is the per-workspace
/// limit): runnable, with no live lease, from a workspace running fewer imports than the
/// limit, sharing no table with a running import (imports of one table run one after the
/// other, so each one's changes, and their undo, stay its own).
pub(crate) const CLAIMABLE: &str = "i.status IN ('queued', 'processing', 'rolling_back')
    AND (i.lease_expires_at IS NULL OR i.lease_expires_at < now())
    AND (SELECT count(*) FROM intake_imports r
         WHERE r.workspace_id = i.workspace_id
           AND r.status IN ('processing', 'rolling_back')
           AND r.lease_expires_at >= now()) < $1
    AND NOT EXISTS (
         SELECT 1 FROM intake_import_tables mine
         JOIN intake_import_tables theirs ON theirs.table_name = mine.table_name
         JOIN intake_imports o ON o.id = theirs.import_id
         WHERE mine.import_id = i.id AND o.id <> i.id
           AND o.workspace_id = i.workspace_id
           AND o.status IN ('processing', 'rolling_back')
           AND o.lease_expires_at >= now())";

pub(crate) fn claim(
    tx: &mut Transaction<'_>,
    worker: &str,
    lease_ms: i64,
    per_workspace: u32,
) -> StoreResult<Option<Claim>> {
    let limit = i64::from(per_workspace);
    let mut passed: Vec<Uuid> = Vec::new();
    // Candidates locked by another claim are skipped; a candidate whose workspace filled up
    // meanwhile is passed over for the next.
    for _ in 0..4 {
        let Some(row) = tx.query_opt(
            &format!(
                "SELECT i.id, i.workspace_id FROM intake_imports i
                 WHERE {CLAIMABLE} AND i.id <> ALL ($2)
                 ORDER BY i.created_at LIMIT 1 FOR NO KEY UPDATE OF i SKIP LOCKED"
            ),
            &[&limit, &passed],
        )?
        else {
            return Ok(None);
        };
        let id: Uuid = row.try_get(0)?;
        let workspace_id: Uuid = row.try_get(1)?;
        // The limits hold across processes: checks and claims of one workspace take turns,
        // and the check below (a new snapshot) sees every claim committed before.
        lock_workspace(tx, CLAIMS_LOCK, workspace_id)?;
        let still = tx.query_opt(
            &format!("SELECT 1 FROM intake_imports i WHERE i.id = $2 AND {CLAIMABLE}"),
            &[&limit, &id],
        )?;
        if still.is_none() {
            passed.push(id);
            continue;
        }
        let token: i64 = tx
            .query_one(
                "UPDATE intake_imports SET lease_owner = $2, lease_token = lease_token + 1,
                 lease_expires_at = now() + $3::bigint * interval '1 millisecond',
                 status = CASE status WHEN 'queued' THEN 'processing' ELSE status END,
                 started_at = coalesce(started_at, $4), updated_at = $4
                 WHERE id = $1 RETURNING lease_token",
                &[&id, &worker, &lease_ms, &now()],
            )?
            .try_get(0)?;
        let import = get_any(tx, id)?;
        return Ok(Some(Claim {
            import,
            worker: worker.to_owned(),
            token,
            lease_ms,
        }));
    }
    Ok(None)
}

/// Checks the claim still holds the lease and extends it; the fencing check of every write.
pub(crate) fn check_lease(
    tx: &mut Transaction<'_>,
    id: Uuid,
    token: i64,
    lease_ms: i64,
) -> StoreResult<LeaseState> {
    let row = tx.query_opt(
        "UPDATE intake_imports SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
         WHERE id = $1 AND lease_token = $2 RETURNING cancel_requested",
        &[&id, &token, &lease_ms],
    )?;
    match row {
        Some(r) => Ok(LeaseState {
            cancel_requested: r.try_get(0)?,
        }),
        None => Err(StoreError::LeaseLost),
    }
}

/// Makes the imports whose lease a worker of `node` holds claimable at once (worker names
/// are `<pid>-<node>-<n>`).
pub(crate) fn release_node_leases(tx: &mut Transaction<'_>, node: &str) -> StoreResult<u64> {
    Ok(tx.execute(
        "UPDATE intake_imports SET lease_expires_at = NULL
         WHERE lease_expires_at IS NOT NULL
           AND status IN ('queued', 'processing', 'rolling_back')
           AND strpos(lease_owner, '-' || $1 || '-') > 0",
        &[&node],
    )?)
}

/// How many imports wait for a worker, and since when the oldest.
pub(crate) fn queue_stats(tx: &mut Transaction<'_>) -> StoreResult<QueueStats> {
    let row = tx.query_one(
        "SELECT count(*), min(created_at) FROM intake_imports WHERE status = 'queued'",
        &[],
    )?;
    let queued: i64 = row.try_get(0)?;
    Ok(QueueStats {
        queued: queued.max(0) as u64,
        oldest_created_at: row.try_get(1)?,
    })
}
