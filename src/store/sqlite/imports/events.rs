//! The life-cycle events of imports, the workspace-wide event feed, and the webhook
//! deliveries each event queues in the transaction that appends it.

use rusqlite::{Connection, Row, params};
use uuid::Uuid;

use super::super::values::{parse_ts, ts};
use super::super::{StoreResult, now, now_ms, parse_uuid};
use super::rows::*;
use crate::store::*;

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

pub(crate) fn events(
    c: &Connection,
    workspace_id: Uuid,
    id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<EventRecord>> {
    get(c, workspace_id, id)?;
    let mut stmt = c.prepare_cached(
        "SELECT id, import_id, kind, data, created_at FROM intake_events
         WHERE import_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![id.to_string(), after.unwrap_or(0), i64::from(limit)],
        |r| {
            Ok(EventRecord {
                id: r.get(0)?,
                import_id: parse_uuid(&r.get::<_, String>(1)?),
                kind: r.get(2)?,
                data: json_col(r.get(3)?),
                created_at: parse_ts(&r.get::<_, String>(4)?),
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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

pub(crate) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        id: r.get(0)?,
        import_id: parse_uuid(&r.get::<_, String>(1)?),
        kind: r.get(2)?,
        data: r
            .get::<_, Option<String>>(3)?
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(serde_json::Value::Null),
        created_at: parse_ts(&r.get::<_, String>(4)?),
    })
}

pub(crate) fn workspace_events(
    c: &Connection,
    workspace_id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<EventRecord>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, import_id, kind, data, created_at FROM intake_events
         WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![
            workspace_id.to_string(),
            after.unwrap_or(0),
            i64::from(limit)
        ],
        event_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
