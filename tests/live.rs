//! Live progress: Server-Sent Events and signed webhooks.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::{TestServer, send};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// One parsed Server-Sent Event.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// Reads a whole SSE response (until the server closes it or `limit` events arrived).
async fn read_events(resp: reqwest::Response, limit: usize) -> Vec<Sse> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            out.push(Sse {
                id,
                event,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
            });
            if out.len() >= limit {
                return out;
            }
        }
    }
    out
}

fn people() -> Value {
    common::people_schema("people")
}

fn csv(rows: usize) -> String {
    let mut s = String::from("id,name\n");
    for i in 0..rows {
        s.push_str(&format!("{i},name {i}\n"));
    }
    s
}

#[tokio::test]
async fn an_import_stream_sends_progress_and_every_lifecycle_event_then_closes() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let (_, created) = s.upload("table=people", "text/csv", csv(50_000)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let resp = s
        .get(&format!("/v1/imports/{id}/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = read_events(resp, 10_000).await;
    let lifecycle: Vec<&str> = events
        .iter()
        .filter(|e| e.id.is_some())
        .map(|e| e.event.as_str())
        .collect();
    assert_eq!(
        lifecycle,
        vec![
            "import.queued",
            "import.started",
            "table.started",
            "table.finished",
            "import.completed"
        ]
    );
    let ids: Vec<i64> = events
        .iter()
        .filter_map(|e| e.id.as_ref()?.parse().ok())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(
        events.iter().any(|e| e.event == "progress"),
        "at least one progress event"
    );
    let last = events.last().unwrap();
    assert_eq!(last.event, "end");
    assert_eq!(last.data["status"], "complete");
    assert_eq!(last.data["counts"]["created"], 50_000);
    for p in events.iter().filter(|e| e.event == "progress") {
        for key in [
            "status",
            "step",
            "progress",
            "counts",
            "rows_per_second",
            "eta_seconds",
        ] {
            assert!(
                p.data.get(key).is_some(),
                "progress lacks {key}: {}",
                p.data
            );
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn a_client_reconnecting_with_last_event_id_misses_no_lifecycle_event() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let (_, created) = s.upload("table=people", "text/csv", csv(100)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    s.wait_done(&id).await;
    let all = read_events(
        s.get(&format!("/v1/imports/{id}/stream"))
            .send()
            .await
            .unwrap(),
        1000,
    )
    .await;
    let lifecycle: Vec<&Sse> = all.iter().filter(|e| e.id.is_some()).collect();
    assert!(lifecycle.len() >= 4);
    // Reconnect after the second event: the rest arrive, none twice.
    let second = lifecycle[1].id.clone().unwrap();
    let rest = read_events(
        s.get(&format!("/v1/imports/{id}/stream"))
            .header("Last-Event-ID", &second)
            .send()
            .await
            .unwrap(),
        1000,
    )
    .await;
    let rest_ids: Vec<&str> = rest.iter().filter_map(|e| e.id.as_deref()).collect();
    let expected: Vec<&str> = lifecycle[2..]
        .iter()
        .filter_map(|e| e.id.as_deref())
        .collect();
    assert_eq!(rest_ids, expected);
    assert_eq!(rest.last().unwrap().event, "end");
    s.stop().await;
}

#[tokio::test]
async fn the_workspace_stream_carries_every_imports_lifecycle_events() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let resp = s.get("/v1/stream").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // The stream's starting point is fixed before its headers are sent: nothing is missed.
    let reader = tokio::spawn(read_events(resp, 10));
    for _ in 0..2 {
        let (_, created) = s
            .upload("table=people&mode=upsert", "text/csv", csv(10))
            .await;
        s.wait_done(created["id"].as_str().unwrap()).await;
    }
    let events = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("10 events")
        .unwrap();
    let completed = events
        .iter()
        .filter(|e| e.event == "import.completed")
        .count();
    assert_eq!(events.len(), 10);
    assert_eq!(completed, 2, "{events:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_stream_of_another_workspaces_or_a_missing_import_is_404() {
    let s = TestServer::start().await;
    let (status, body) = send(s.get(&format!("/v1/imports/{}/stream", uuid::Uuid::now_v7()))).await;
    assert_eq!(status, 404, "{body}");
    s.stop().await;
}

/// A local webhook receiver: records each request, answers 500 to the first `fail_first`.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    fail_first: Arc<Mutex<usize>>,
}

async fn start_receiver(fail_first: usize) -> (String, Receiver) {
    let rx = Receiver::default();
    *rx.fail_first.lock().unwrap() = fail_first;
    let state = rx.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                state.hits.lock().unwrap().push((headers, body));
                let mut left = state.fail_first.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let sig = headers["intake-signature"].to_str().unwrap();
    let t = sig.split(',').find_map(|p| p.strip_prefix("t=")).unwrap();
    let v1 = sig.split(',').find_map(|p| p.strip_prefix("v1=")).unwrap();
    let mac =
        intake::engine::webhooks::hmac_sha256(secret.as_bytes(), format!("{t}.{body}").as_bytes());
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    hex == v1
}

#[tokio::test]
async fn a_webhook_receives_signed_events_and_is_retried_after_a_500() {
    let (url, rx) = start_receiver(1).await;
    let s = TestServer::start_with(|c| c.engine.webhook_backoff = Duration::from_millis(100)).await;
    s.create_table(people()).await;
    let (status, hook) = send(s.post("/v1/webhooks").json(&json!({
        "url": url, "events": ["import.completed", "import.partially_completed"]
    })))
    .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, created) = s.upload("table=people", "text/csv", csv(5)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    s.wait_done(&id).await;
    let hits = wait_for("the retry", || {
        let hits = rx.hits.lock().unwrap();
        (hits.len() >= 2).then(|| hits.clone())
    })
    .await;
    assert_eq!(
        hits.len(),
        2,
        "one failed attempt, one success, nothing else"
    );
    for (headers, body) in &hits {
        assert!(verify(&secret, headers, body), "signature verifies");
        assert_eq!(headers["intake-event"], "import.completed");
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["type"], "import.completed");
        assert_eq!(payload["data"]["import"]["id"], id.as_str());
        assert_eq!(payload["data"]["import"]["counts"]["created"], 5);
    }
    let hook_id = hook["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let (_, log) = send(s.get(&format!("/v1/webhooks/{hook_id}/deliveries"))).await;
        let d = log["data"][0].clone();
        if d["status"] == "succeeded" || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(delivery["status"], "succeeded", "{delivery}");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["last_status_code"], 200);
    assert_eq!(delivery["event_type"], "import.completed");
    let (_, list) = send(s.get("/v1/webhooks")).await;
    assert!(
        list["data"][0].get("secret").is_none(),
        "secrets are shown once"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_pending_delivery_survives_a_restart() {
    let (url, rx) = start_receiver(1).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d1 = data.clone();
    let s = TestServer::start_with(move |c| {
        c.data_dir = d1;
        // Long enough that the retry cannot happen before the restart.
        c.engine.webhook_backoff = Duration::from_secs(2);
    })
    .await;
    s.create_table(people()).await;
    let (_, hook) = send(
        s.post("/v1/webhooks")
            .json(&json!({"url": url, "events": ["import.completed"]})),
    )
    .await;
    let (_, created) = s.upload("table=people", "text/csv", csv(3)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    s.wait_done(&id).await;
    wait_for("the first attempt", || {
        (rx.hits.lock().unwrap().len() == 1).then_some(())
    })
    .await;
    s.stop().await;
    let d2 = data.clone();
    let s = TestServer::start_with(move |c| {
        c.data_dir = d2;
        c.engine.webhook_backoff = Duration::from_secs(2);
    })
    .await;
    wait_for("the retry after the restart", || {
        (rx.hits.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    let hook_id = hook["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, log) = send(s.get(&format!("/v1/webhooks/{hook_id}/deliveries"))).await;
        if log["data"][0]["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn webhooks_need_an_admin_key_a_url_and_known_event_types() {
    let s = TestServer::start().await;
    let member = s.create_key("member").await;
    let (status, _) = send(
        s.req_as(&member, reqwest::Method::POST, "/v1/webhooks")
            .json(&json!({"url": "http://127.0.0.1:1/x", "events": ["import.completed"]})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(
        s.post("/v1/webhooks")
            .json(&json!({"url": "ftp://x", "events": ["import.completed"]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(
        s.post("/v1/webhooks")
            .json(&json!({"url": "http://127.0.0.1:1/x", "events": ["import.exploded"]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("import.exploded")
    );
    s.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_ends_streams_at_once_and_the_import_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d1 = data.clone();
    let s = TestServer::start_with(move |c| c.data_dir = d1).await;
    s.create_table(people()).await;
    let (_, created) = s.upload("table=people", "text/csv", csv(300_000)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    s.wait_until(&id, |i| i["counts"]["processed"].as_u64() > Some(0))
        .await;
    let stream = s
        .get(&format!("/v1/imports/{id}/stream"))
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_events(stream, 1_000_000));
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), s.stop())
        .await
        .expect("the server stops without waiting for the stream or the import");
    assert!(started.elapsed() < Duration::from_secs(10));
    let events = reader.await.unwrap();
    assert!(
        events.iter().all(|e| e.event != "end"),
        "the stream ended early, without `end`"
    );
    let d2 = data.clone();
    let s = TestServer::start_with(move |c| c.data_dir = d2).await;
    let done = s.wait_done(&id).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["counts"]["created"], 300_000);
    assert_eq!(s.all_records("people").await.len(), 300_000);
    s.stop().await;
}
