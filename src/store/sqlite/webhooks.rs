//! Webhooks, their deliveries, and the workspace-wide event feed.

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::values::{parse_ts, parse_ts_opt, ts};
use super::{StoreError, StoreResult, now, now_ms, parse_uuid};
use crate::store::{DeliveryOutcome, DeliveryRecord, DueDelivery, NewWebhook, WebhookRecord};

fn webhook_from_row(r: &Row<'_>) -> rusqlite::Result<WebhookRecord> {
    Ok(WebhookRecord {
        id: parse_uuid(&r.get::<_, String>(0)?),
        url: r.get(1)?,
        events: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
        secret: r.get(3)?,
        description: r.get(4)?,
        created_at: parse_ts(&r.get::<_, String>(5)?),
    })
}

use crate::store::columns::WEBHOOK_COLUMNS;

pub(super) fn create(
    tx: &Connection,
    workspace_id: Uuid,
    hook: &NewWebhook,
) -> StoreResult<WebhookRecord> {
    let events =
        serde_json::to_string(&hook.events).map_err(|e| StoreError::Database(e.to_string()))?;
    tx.execute(
        "INSERT INTO intake_webhooks (id, workspace_id, url, events, secret, description, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            hook.id.to_string(),
            workspace_id.to_string(),
            hook.url,
            events,
            hook.secret,
            hook.description,
            ts(now())
        ],
    )?;
    get(tx, workspace_id, hook.id)
}

fn get(c: &Connection, workspace_id: Uuid, id: Uuid) -> StoreResult<WebhookRecord> {
    c.query_row(
        &format!(
            "SELECT {WEBHOOK_COLUMNS} FROM intake_webhooks WHERE id = ?1 AND workspace_id = ?2"
        ),
        params![id.to_string(), workspace_id.to_string()],
        webhook_from_row,
    )
    .optional()?
    .ok_or(StoreError::NotFound("webhook"))
}

pub(super) fn list(c: &Connection, workspace_id: Uuid) -> StoreResult<Vec<WebhookRecord>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM intake_webhooks WHERE workspace_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([workspace_id.to_string()], webhook_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn delete(tx: &Connection, workspace_id: Uuid, id: Uuid) -> StoreResult<()> {
    get(tx, workspace_id, id)?;
    tx.execute(
        "DELETE FROM intake_webhooks WHERE id = ?1",
        [id.to_string()],
    )?;
    Ok(())
}

pub(super) fn deliveries(
    c: &Connection,
    workspace_id: Uuid,
    webhook_id: Uuid,
    after: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<DeliveryRecord>> {
    get(c, workspace_id, webhook_id)?;
    let mut stmt = c.prepare_cached(
        "SELECT id, event_id, event_type, import_id, status, attempts, last_status_code,
         last_error, next_attempt_at, created_at, delivered_at FROM intake_webhook_deliveries
         WHERE webhook_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![
            webhook_id.to_string(),
            after.unwrap_or(i64::MAX),
            i64::from(limit)
        ],
        |r| {
            Ok(DeliveryRecord {
                id: r.get(0)?,
                event_id: r.get(1)?,
                event_type: r.get(2)?,
                import_id: parse_uuid(&r.get::<_, String>(3)?),
                status: r.get(4)?,
                attempts: r.get(5)?,
                last_status_code: r.get(6)?,
                last_error: r.get(7)?,
                next_attempt_at: r.get(8)?,
                created_at: parse_ts(&r.get::<_, String>(9)?),
                delivered_at: parse_ts_opt(r.get(10)?),
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn claim(tx: &Connection, limit: u32, lease_ms: i64) -> StoreResult<Vec<DueDelivery>> {
    let now = now_ms();
    let due: Vec<DueDelivery> = {
        let mut stmt = tx.prepare_cached(
            "SELECT d.id, d.workspace_id, w.url, w.secret, d.event_id, d.event_type,
             e.created_at, d.import_id, d.attempts
             FROM intake_webhook_deliveries d
             JOIN intake_webhooks w ON w.id = d.webhook_id
             JOIN intake_events e ON e.id = d.event_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
             ORDER BY d.next_attempt_at, d.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, i64::from(limit)], |r| {
            Ok(DueDelivery {
                id: r.get(0)?,
                workspace_id: parse_uuid(&r.get::<_, String>(1)?),
                url: r.get(2)?,
                secret: r.get(3)?,
                event_id: r.get(4)?,
                event_type: r.get(5)?,
                event_created_at: parse_ts(&r.get::<_, String>(6)?),
                import_id: parse_uuid(&r.get::<_, String>(7)?),
                attempts: r.get(8)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for d in &due {
        tx.execute(
            "UPDATE intake_webhook_deliveries SET next_attempt_at = ?2 WHERE id = ?1",
            params![d.id, now + lease_ms],
        )?;
    }
    Ok(due)
}

pub(super) fn record(tx: &Connection, id: i64, outcome: &DeliveryOutcome) -> StoreResult<()> {
    let status = match (outcome.succeeded, outcome.retry_at) {
        (true, _) => "succeeded",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    tx.execute(
        "UPDATE intake_webhook_deliveries SET status = ?2, attempts = attempts + 1,
         last_status_code = ?3, last_error = ?4, next_attempt_at = coalesce(?5, next_attempt_at),
         delivered_at = CASE WHEN ?2 = 'succeeded' THEN ?6 ELSE delivered_at END
         WHERE id = ?1",
        params![
            id,
            status,
            outcome.status_code,
            outcome.error,
            outcome.retry_at,
            ts(now())
        ],
    )?;
    Ok(())
}
