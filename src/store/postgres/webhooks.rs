//! Webhooks, their deliveries, and the workspace-wide event feed.

use ::postgres::Transaction;
use uuid::Uuid;

use super::{StoreError, StoreResult, now, now_ms};
use crate::store::stored_row;
use crate::store::{DeliveryOutcome, DueDelivery, NewWebhook, WebhookRecord};

use crate::store::columns::WEBHOOK_COLUMNS;

pub(super) fn create(
    tx: &mut Transaction<'_>,
    workspace_id: Uuid,
    hook: &NewWebhook,
) -> StoreResult<WebhookRecord> {
    tx.execute(
        "INSERT INTO intake_webhooks (id, workspace_id, url, events, secret, description, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &hook.id,
            &workspace_id,
            &hook.url,
            &hook.events,
            &hook.secret,
            &hook.description,
            &now(),
        ],
    )?;
    get(tx, workspace_id, hook.id)
}

fn get(tx: &mut Transaction<'_>, workspace_id: Uuid, id: Uuid) -> StoreResult<WebhookRecord> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM intake_webhooks WHERE id = $1 AND workspace_id = $2"
            ),
            &[&id, &workspace_id],
        )?
        .ok_or(StoreError::NotFound("webhook"))?;
    stored_row::webhook(&row)
}

pub(super) fn delete(tx: &mut Transaction<'_>, workspace_id: Uuid, id: Uuid) -> StoreResult<()> {
    get(tx, workspace_id, id)?;
    tx.execute("DELETE FROM intake_webhooks WHERE id = $1", &[&id])?;
    Ok(())
}

pub(super) fn claim(
    tx: &mut Transaction<'_>,
    limit: u32,
    lease_ms: i64,
) -> StoreResult<Vec<DueDelivery>> {
    let now = now_ms();
    // Deliveries another process is claiming right now are skipped, not waited for; a
    // claimed delivery is not due again before its lease ends.
    let rows = tx.query(
        "SELECT d.id, d.workspace_id, w.url, w.secret, d.event_id, d.event_type,
         e.created_at, d.import_id, d.attempts
         FROM intake_webhook_deliveries d
         JOIN intake_webhooks w ON w.id = d.webhook_id
         JOIN intake_events e ON e.id = d.event_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1
         ORDER BY d.next_attempt_at, d.id LIMIT $2
         FOR NO KEY UPDATE OF d SKIP LOCKED",
        &[&now, &i64::from(limit)],
    )?;
    let due: Vec<DueDelivery> = rows
        .iter()
        .map(|r| stored_row::due_delivery(r))
        .collect::<StoreResult<_>>()?;
    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
    if !ids.is_empty() {
        tx.execute(
            "UPDATE intake_webhook_deliveries SET next_attempt_at = $2 WHERE id = ANY ($1)",
            &[&ids, &(now + lease_ms)],
        )?;
    }
    Ok(due)
}

pub(super) fn record(
    tx: &mut Transaction<'_>,
    id: i64,
    outcome: &DeliveryOutcome,
) -> StoreResult<()> {
    let status = match (outcome.succeeded, outcome.retry_at) {
        (true, _) => "succeeded",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    tx.execute(
        "UPDATE intake_webhook_deliveries SET status = $2, attempts = attempts + 1,
         last_status_code = $3, last_error = $4, next_attempt_at = coalesce($5, next_attempt_at),
         delivered_at = CASE WHEN $2 = 'succeeded' THEN $6 ELSE delivered_at END
         WHERE id = $1",
        &[
            &id,
            &status,
            &outcome.status_code.map(i64::from),
            &outcome.error,
            &outcome.retry_at,
            &now(),
        ],
    )?;
    Ok(())
}
