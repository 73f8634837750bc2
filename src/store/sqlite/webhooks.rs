//! Webhooks, their deliveries, and the workspace-wide event feed.

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::values::ts;
use super::{StoreError, StoreResult, first_record, now, now_ms};
use crate::store::stored_row;
use crate::store::{DeliveryOutcome, DueDelivery, NewWebhook, WebhookRecord};

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
    first_record(
        c,
        &format!(
            "SELECT {WEBHOOK_COLUMNS} FROM intake_webhooks WHERE id = ?1 AND workspace_id = ?2"
        ),
        params![id.to_string(), workspace_id.to_string()],
        |r| stored_row::webhook(r),
    )?
    .ok_or(StoreError::NotFound("webhook"))
}

pub(super) fn delete(tx: &Connection, workspace_id: Uuid, id: Uuid) -> StoreResult<()> {
    get(tx, workspace_id, id)?;
    tx.execute(
        "DELETE FROM intake_webhooks WHERE id = ?1",
        [id.to_string()],
    )?;
    Ok(())
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
        let rows = stmt.query_and_then(params![now, i64::from(limit)], |r| {
            stored_row::due_delivery(r)
        })?;
        rows.collect::<StoreResult<_>>()?
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
