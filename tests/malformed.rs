//! Malformed input never gets a 5xx, a panic or a stuck import: every JSONTestSuite file is
//! sent as a JSON source, as NDJSON, and as a JSON request body.

use crate::common;

use common::{TestServer, send, shared_testdata};
use serde_json::json;

#[tokio::test]
async fn every_json_test_suite_case_ends_in_a_clear_answer() {
    let Some(data) = shared_testdata() else {
        return;
    };
    let dir = data.join("JSONTestSuite/test_parsing");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("suite")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    // Imports of one table run one at a time: several tables let them run side by side.
    const TABLES: usize = 4;
    let s = TestServer::start_with(|c| {
        c.engine.workers = TABLES;
        c.engine.per_workspace = TABLES as u32;
    })
    .await;
    for t in 0..TABLES {
        s.create_table(
            json!({"name": format!("t{t}"), "columns": [{"name": "a", "type": "json"}]}),
        )
        .await;
    }
    let mut imports = Vec::new();
    for (n, path) in files.iter().enumerate() {
        let body = std::fs::read(path).expect("case");
        let query = format!("table=t{}", n % TABLES);
        for content_type in ["application/json", "application/x-ndjson"] {
            // `send` fails the test on any 5xx.
            let (status, answer) = s.upload(&query, content_type, body.clone()).await;
            match status {
                202 => imports.push(answer["id"].as_str().expect("id").to_owned()),
                415 | 422 | 400 => assert!(answer["error"]["code"].is_string(), "{answer}"),
                other => panic!("{}: unexpected {other} {answer}", path.display()),
            }
        }
        let (status, answer) = send(
            s.post("/v1/imports")
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
        assert!(
            (400..500).contains(&status) || status == 202,
            "{}: {status} {answer}",
            path.display()
        );
        if status == 202 {
            imports.push(answer["id"].as_str().expect("id").to_owned());
        }
    }
    for id in imports {
        // `wait_done` fails the test if an import never ends.
        let done = s.wait_done(&id).await;
        assert!(
            matches!(
                done["status"].as_str(),
                Some("complete" | "partially_complete" | "failed" | "unsupported")
            ),
            "{done}"
        );
    }
    s.stop().await;
}
