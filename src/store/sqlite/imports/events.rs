//! The life-cycle events of imports, the workspace-wide event feed, and the webhook
//! deliveries each event queues in the transaction that appends it.

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::super::values::ts;
use super::super::{StoreResult, now, now_ms};

pub(crate) fn append_event(
    c: &Connection,
    workspace_id: Uuid,
    import_id: Uuid,
    kind: &str,
    data: &serde_json::Value,
) -> StoreResult<()> {
    let event_id: i64 = c
        .prepare_cached(
            "INSERT INTO intake_events (workspace_id, import_id, kind, data, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(
            params![
                workspace_id.to_string(),
                import_id.to_string(),
                kind,
                data.to_string(),
                ts(now())
            ],
            |r| r.get(0),
        )?;
    enqueue(c, workspace_id, import_id, event_id, kind)
}

/// Queues a delivery of an event to every webhook of the workspace subscribed to its type;
/// called in the transaction that appends the event.
pub(crate) fn enqueue(
    tx: &Connection,
    workspace_id: Uuid,
    import_id: Uuid,
    event_id: i64,
    kind: &str,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO intake_webhook_deliveries (webhook_id, workspace_id, event_id, event_type,
         import_id, status, next_attempt_at, created_at)
         SELECT w.id, w.workspace_id, ?1, ?2, ?3, 'pending', ?4, ?5 FROM intake_webhooks w
         WHERE w.workspace_id = ?6 AND EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = ?2)",
    )?
    .execute(params![
        event_id,
        kind,
        import_id.to_string(),
        now_ms(),
        ts(now()),
        workspace_id.to_string()
    ])?;
    Ok(())
}
