//! The life-cycle events of imports, the workspace-wide event feed, and the webhook
//! deliveries each event queues in the transaction that appends it.

use ::postgres::{GenericClient, Row, Transaction};
use uuid::Uuid;

use super::super::{EVENTS_LOCK, StoreResult, lock_workspace, now, now_ms};
use super::rows::*;
use crate::store::*;

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

pub(crate) fn event_from_row(r: &Row) -> StoreResult<EventRecord> {
    Ok(EventRecord {
        id: r.try_get(0)?,
        import_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        data: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

pub(crate) fn events(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<EventRecord>> {
    get(tx, workspace_id, id)?;
    let rows = tx.query(
        "SELECT id, import_id, kind, data, created_at FROM intake_events
         WHERE import_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        &[&id, &after.unwrap_or(0), &i64::from(limit)],
    )?;
    rows.iter().map(event_from_row).collect()
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

pub(crate) fn workspace_events(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<EventRecord>> {
    let rows = tx.query(
        "SELECT id, import_id, kind, data, created_at FROM intake_events
         WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        &[&workspace_id, &after.unwrap_or(0), &i64::from(limit)],
    )?;
    rows.iter().map(event_from_row).collect()
}
