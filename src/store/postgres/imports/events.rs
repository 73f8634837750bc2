//! The life-cycle events of imports, the workspace-wide event feed, and the webhook
//! deliveries each event queues in the transaction that appends it.

use ::postgres::GenericClient;
use uuid::Uuid;

use super::super::{EVENTS_LOCK, StoreResult, lock_workspace, now, now_ms};

pub(crate) fn append_event(
    tx: &mut impl GenericClient,
    workspace_id: Uuid,
    import_id: Uuid,
    kind: &str,
    data: &serde_json::Value,
) -> StoreResult<()> {
    // Held until commit: the workspace's events commit in id order, so a reader that saw
    // event n never misses an event below n committed later.
    lock_workspace(tx, EVENTS_LOCK, workspace_id)?;
    let event_id: i64 = tx
        .query_one(
            "INSERT INTO intake_events (workspace_id, import_id, kind, data, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&workspace_id, &import_id, &kind, data, &now()],
        )?
        .try_get(0)?;
    enqueue(tx, workspace_id, import_id, event_id, kind)
}

/// Queues a delivery of an event to every webhook of the workspace subscribed to its type;
/// called in the transaction that appends the event.
pub(crate) fn enqueue(
    tx: &mut impl GenericClient,
    workspace_id: Uuid,
    import_id: Uuid,
    event_id: i64,
    kind: &str,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO intake_webhook_deliveries (webhook_id, workspace_id, event_id, event_type,
         import_id, status, next_attempt_at, created_at)
         SELECT w.id, w.workspace_id, $1, $2, $3, 'pending', $4, $5 FROM intake_webhooks w
         WHERE w.workspace_id = $6 AND $2 = ANY (w.events)",
        &[
            &event_id,
            &kind,
            &import_id,
            &now_ms(),
            &now(),
            &workspace_id,
        ],
    )?;
    Ok(())
}
