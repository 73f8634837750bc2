//! The big list of naughty strings: every valid UTF-8 string survives an import as a cell
//! value and reads back byte-exact, from CSV and from NDJSON; invalid UTF-8 is a row error.

use crate::common;

use common::{TestServer, send, shared_testdata};
use serde_json::{Value, json};

fn naughty() -> Option<Vec<Vec<u8>>> {
    let path = shared_testdata()?.join("big-list-of-naughty-strings/blns.base64.json");
    let list: Vec<String> = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(list.iter().map(|b| base64_decode(b)).collect())
}

/// Standard base64 (the suite's encoding), decoded without a crate for a test.
fn base64_decode(s: &str) -> Vec<u8> {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let Some(v) = table.iter().position(|&t| t == c) else {
            continue;
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

fn table() -> Value {
    json!({"name": "strings", "columns": [
        {"name": "id", "type": "integer", "required": true},
        {"name": "value", "type": "string"}
    ], "primary_key": ["id"]})
}

async fn read_back(s: &TestServer) -> Vec<(i64, String)> {
    s.all_records("strings")
        .await
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["value"]
                    .as_str()
                    .expect("a string, never null")
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_naughty_string_round_trips_byte_exact_through_csv() {
    let Some(strings) = naughty() else { return };
    let s = TestServer::start().await;
    s.create_table(table()).await;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "value"]).unwrap();
    let mut expected = Vec::new();
    let mut invalid = 0;
    for (i, bytes) in strings.iter().enumerate() {
        w.write_record([i.to_string().as_bytes(), bytes.as_slice()])
            .unwrap();
        match String::from_utf8(bytes.clone()) {
            Ok(text) => expected.push((i as i64, text)),
            Err(_) => invalid += 1,
        }
    }
    let body = w.into_inner().unwrap();
    let (status, created) = s
        .upload("table=strings&null_values=__never__", "text/csv", body)
        .await;
    assert_eq!(status, 202, "{created}");
    let done = s.wait_done(created["id"].as_str().unwrap()).await;
    assert_eq!(done["counts"]["invalid"], invalid, "{done}");
    assert_eq!(read_back(&s).await, expected);
    if invalid > 0 {
        let (_, errors) = send(s.get(&format!(
            "/v1/imports/{}/errors",
            created["id"].as_str().unwrap()
        )))
        .await;
        assert!(
            errors["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["code"] == "invalid_encoding"),
            "{errors}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn every_naughty_string_round_trips_byte_exact_through_ndjson() {
    let Some(strings) = naughty() else { return };
    let s = TestServer::start().await;
    s.create_table(table()).await;
    let mut body = String::new();
    let mut expected = Vec::new();
    for (i, bytes) in strings.iter().enumerate() {
        let Ok(text) = String::from_utf8(bytes.clone()) else {
            continue;
        };
        body.push_str(&json!({"id": i, "value": text}).to_string());
        body.push('\n');
        expected.push((i as i64, text));
    }
    let (status, created) = s
        .upload(
            "table=strings&null_values=__never__",
            "application/x-ndjson",
            body,
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let done = s.wait_done(created["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(read_back(&s).await, expected);
    s.stop().await;
}
