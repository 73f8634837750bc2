//! The two-step flow for big files: create with start=false, upload (resumable in parts),
//! start.

use crate::common;

use common::{TestServer, send};
use serde_json::{Value, json};

fn people() -> Value {
    common::people_schema("people")
}

fn csv(rows: usize) -> String {
    let mut s = String::from("id,name\n");
    for i in 1..=rows {
        s.push_str(&format!("{i},name {i}\n"));
    }
    s
}

async fn create_waiting(s: &TestServer) -> String {
    let (status, body) = send(
        s.post("/v1/imports")
            .json(&json!({"table": "people", "start": false, "file_name": "people.csv"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "new");
    assert_eq!(body["step"], "waiting");
    body["id"].as_str().unwrap().to_owned()
}

fn put(s: &TestServer, id: &str) -> reqwest::RequestBuilder {
    s.req(reqwest::Method::PUT, &format!("/v1/imports/{id}/file"))
}

#[tokio::test]
async fn a_file_uploaded_in_parts_then_started_loads_like_a_single_upload() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let id = create_waiting(&s).await;
    let data = csv(3000).into_bytes();
    let total = data.len();
    let cuts = [0, 1000, 25_000, total];
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (status, body) = send(
            put(&s, &id)
                .header("content-range", format!("bytes {a}-{}/{total}", b - 1))
                .body(data[a..b].to_vec()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if b < total {
            assert_eq!(
                body,
                json!({"received": b, "total": total, "complete": false})
            );
        } else {
            assert_eq!(body["status"], "new", "{body}");
            assert_eq!(body["file_received"], total);
        }
    }
    let (status, started) = send(s.post(&format!("/v1/imports/{id}/start"))).await;
    assert_eq!(status, 202, "{started}");
    let done = s.wait_done(&id).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["counts"]["created"], 3000);
    assert_eq!(done["file_name"], "people.csv");
    assert_eq!(s.all_records("people").await.len(), 3000);
    s.stop().await;
}

#[tokio::test]
async fn a_part_that_does_not_follow_the_received_bytes_is_refused_with_the_offset() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let id = create_waiting(&s).await;
    let data = csv(100).into_bytes();
    let total = data.len();
    let (status, _) = send(
        put(&s, &id)
            .header("content-range", format!("bytes 0-9/{total}"))
            .body(data[..10].to_vec()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(
        put(&s, &id)
            .header("content-range", format!("bytes 20-29/{total}"))
            .body(data[20..30].to_vec()),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["received"], 10);
    // A part whose body is shorter than its range is refused and leaves nothing behind.
    let (status, _) = send(
        put(&s, &id)
            .header("content-range", format!("bytes 10-19/{total}"))
            .body(data[10..15].to_vec()),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = send(
        put(&s, &id)
            .header("content-range", format!("bytes 10-{}/{total}", total - 1))
            .body(data[10..].to_vec()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    send(s.post(&format!("/v1/imports/{id}/start"))).await;
    assert_eq!(s.wait_done(&id).await["counts"]["created"], 100);
    s.stop().await;
}

#[tokio::test]
async fn starting_without_a_file_or_uploading_after_the_start_is_a_conflict() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let id = create_waiting(&s).await;
    let (status, body) = send(s.post(&format!("/v1/imports/{id}/start"))).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = send(put(&s, &id).body(csv(5))).await;
    assert_eq!(status, 200);
    let (status, _) = send(s.post(&format!("/v1/imports/{id}/start"))).await;
    assert_eq!(status, 202);
    let (status, body) = send(put(&s, &id).body(csv(5))).await;
    assert_eq!(status, 409, "{body}");
    s.wait_done(&id).await;
    s.stop().await;
}

#[tokio::test]
async fn an_upload_made_with_start_false_waits_for_its_start() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let (status, body) = s
        .upload("table=people&start=false", "text/csv", csv(10))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "new");
    let id = body["id"].as_str().unwrap();
    let (status, _) = send(s.post(&format!("/v1/imports/{id}/start"))).await;
    assert_eq!(status, 202);
    assert_eq!(s.wait_done(id).await["counts"]["created"], 10);
    s.stop().await;
}

#[tokio::test]
async fn a_resumable_upload_announcing_more_than_the_limit_gets_413() {
    let s = TestServer::start_with(|c| c.api.max_upload_bytes = 1000).await;
    s.create_table(people()).await;
    let id = create_waiting(&s).await;
    let (status, body) = send(
        put(&s, &id)
            .header("content-range", "bytes 0-9/5000")
            .body("0123456789"),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    s.stop().await;
}

#[tokio::test]
async fn inference_treats_the_given_null_values_as_missing() {
    let s = TestServer::start().await;
    let sample = "id,score\n1,NA\n2,3.5\n3,4\n";
    let (status, plain) = send(
        s.post("/v1/schema/infer")
            .header("content-type", "text/csv")
            .body(sample),
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(
        plain["columns"][1]["type"], "string",
        "without null_values, NA is text"
    );
    let (status, body) = send(
        s.post("/v1/schema/infer?null_values=NA,")
            .header("content-type", "text/csv")
            .body(sample),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["columns"][1]["type"], "decimal", "{body}");
    assert_eq!(body["columns"][1]["required"], false, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn starting_an_import_twice_is_409_import_not_waiting() {
    let s = TestServer::start_with(|c| c.engine.workers = 0).await;
    s.create_table(people()).await;
    let id = create_waiting(&s).await;
    let (status, body) = send(put(&s, &id).body(csv(5))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(s.post(&format!("/v1/imports/{id}/start"))).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = send(s.post(&format!("/v1/imports/{id}/start"))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "import_not_waiting", "message": "the import is queued and no longer waits for its sources"}})
    );
    // Nor does it take another file.
    let (status, again) = send(put(&s, &id).body(csv(5))).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again, body);
    s.stop().await;
}
