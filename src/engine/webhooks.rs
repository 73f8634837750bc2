//! Webhook deliveries: signed JSON posts of lifecycle events, retried with exponential
//! backoff. Deliveries are rows created with their events, so a restart loses none.

use std::time::Duration;

use futures_util::future::join_all;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use super::Engine;
use crate::store::{DeliveryOutcome, DueDelivery, ImportRecord};

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 10;
/// How long a claimed delivery is held before another sender may retry it.
const CLAIM_MS: i64 = 60_000;

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length (a long one is hashed first): this cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The `Intake-Signature` header of a body sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let mac = hmac_sha256(secret.as_bytes(), &signed);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// The import as webhook payloads show it (its state when the delivery is sent).
fn import_payload(i: &ImportRecord) -> Value {
    let fmt = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    json!({
        "id": i.id,
        "number": i.number,
        "status": i.status,
        "step": i.step,
        "source": i.source,
        "mode": i.mode,
        "dry_run": i.dry_run,
        "reference": i.reference,
        "reference_origin": i.reference_origin,
        "metadata": i.metadata,
        "error": i.error,
        "counts": i.counts,
        "tables": i.tables.iter().map(|t| json!({
            "table": t.table, "status": t.status, "counts": t.counts, "error": t.error,
        })).collect::<Vec<_>>(),
        "created_at": fmt(i.created_at),
        "started_at": i.started_at.map(fmt),
        "completed_at": i.completed_at.map(fmt),
        "rolled_back_at": i.rolled_back_at.map(fmt),
    })
}

impl Engine {
    /// Sends due webhook deliveries until `shutdown` turns true.
    pub fn spawn_webhook_sender(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            loop {
                let sent = match engine.store.claim_deliveries(16, CLAIM_MS).await {
                    Ok(due) => {
                        let n = due.len();
                        join_all(due.into_iter().map(|d| engine.deliver(&client, d))).await;
                        n
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim webhook deliveries");
                        0
                    }
                };
                if sent > 0 {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(engine.config.webhook_poll) => {}
                    _ = shutdown.changed() => break,
                }
            }
        })
    }

    async fn deliver(&self, client: &reqwest::Client, d: DueDelivery) {
        let import = match self.store.get_import(d.workspace_id, d.import_id).await {
            Ok(i) => Some(import_payload(&i)),
            Err(crate::store::StoreError::NotFound(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, "webhook payload unavailable");
                return;
            }
        };
        let body = json!({
            "id": d.event_id.to_string(),
            "type": d.event_type,
            "created_at": d.event_created_at.format(&Rfc3339).unwrap_or_default(),
            "data": {"import_id": d.import_id, "import": import},
        })
        .to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let result = client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("intake/", env!("CARGO_PKG_VERSION")))
            .header("intake-event", &d.event_type)
            .header("intake-delivery", d.id.to_string())
            .header(
                "intake-signature",
                signature(&d.secret, timestamp, body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        let (status_code, error) = match result {
            Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
            Ok(resp) => (
                Some(resp.status().as_u16()),
                Some(format!("the receiver answered {}", resp.status())),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        let succeeded = error.is_none();
        let attempts = d.attempts + 1;
        let retry_at = (!succeeded && attempts < MAX_ATTEMPTS).then(|| {
            let base = self.config.webhook_backoff.as_millis() as i64;
            let delay = base
                .saturating_mul(1i64 << (attempts - 1).min(20))
                .min(3_600_000);
            (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64 + delay
        });
        let kind = match (succeeded, retry_at.is_some()) {
            (true, _) => "delivered",
            (false, true) => "retrying",
            (false, false) => "given_up",
        };
        metrics::counter!("intake_webhook_deliveries_total", "outcome" => kind).increment(1);
        let outcome = DeliveryOutcome {
            status_code,
            error,
            retry_at,
            succeeded,
        };
        if let Err(e) = self.store.record_delivery(d.id, &outcome).await {
            tracing::warn!(error = %e, delivery = d.id, "could not record a webhook delivery");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_hashes_keys_longer_than_a_block() {
        let key = [0xaau8; 131];
        let mac = hmac_sha256(
            &key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_signature_header_carries_the_timestamp_and_the_mac() {
        let s = signature("secret", 1700000000, b"{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
    }
}
