//! Cases where an import's undo or a stopped import could have left the table wrong.

use crate::common;

use common::{TestServer, send};
use serde_json::{Value, json};

fn people() -> Value {
    json!({"name": "people", "columns": [
        {"name": "id", "type": "integer", "required": true},
        {"name": "name", "type": "string"},
        {"name": "email", "type": "string", "unique": true}
    ], "primary_key": ["id"]})
}

async fn load(s: &TestServer, query: &str, csv: &str) -> Value {
    let (status, body) = s.upload(query, "text/csv", csv.to_owned()).await;
    assert_eq!(status, 202, "{body}");
    s.wait_done(body["id"].as_str().unwrap()).await
}

fn ids(rows: &[Value]) -> Vec<i64> {
    let mut v: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_rollback_that_would_bring_back_a_key_taken_since_is_refused_naming_the_taker() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    load(&s, "table=people", "id,name\n1,a\n2,a\n").await;
    let cleanup = load(
        &s,
        "table=people&mode=upsert&cleanup_records=true",
        "id,name\n1,a\n",
    )
    .await;
    assert_eq!(cleanup["counts"]["destroyed"], 1);
    let again = load(&s, "table=people", "id,name\n2,b\n").await;
    let (status, body) = send(s.post(&format!(
        "/v1/imports/{}/rollback",
        cleanup["id"].as_str().unwrap()
    )))
    .await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(again["id"].as_str().unwrap()), "{message}");
    s.stop().await;
}

#[tokio::test]
async fn one_import_cannot_load_the_same_table_twice() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let form = reqwest::multipart::Form::new()
        .part(
            "people",
            reqwest::multipart::Part::bytes(b"id,name\n1,a\n".to_vec()).file_name("a.csv"),
        )
        .part(
            "people",
            reqwest::multipart::Part::bytes(b"id,name\n2,b\n".to_vec()).file_name("b.csv"),
        );
    let (status, body) = send(s.post("/v1/imports").multipart(form)).await;
    assert_eq!(status, 422, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn a_stacked_atomic_replace_that_fails_leaves_every_table_as_it_was() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    s.create_table(json!({"name": "other", "columns": [
        {"name": "id", "type": "integer", "required": true}], "primary_key": ["id"]}))
        .await;
    load(&s, "table=people", "id,name\n1,old\n").await;
    let form = reqwest::multipart::Form::new()
        .part(
            "people",
            reqwest::multipart::Part::bytes(b"id,name\n9,new\n".to_vec()).file_name("p.csv"),
        )
        .part(
            "other",
            reqwest::multipart::Part::bytes(b"id\nnot-a-number\n".to_vec()).file_name("o.csv"),
        );
    let (status, body) = send(
        s.post("/v1/imports?mode=replace&on_error=atomic")
            .multipart(form),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = s.wait_done(body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(ids(&s.all_records("people").await), vec![1]);
    let sql = if common::on_postgres() {
        "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\\_\\_replace\\_%' OR tablename LIKE '%\\_\\_undo\\_%'"
    } else {
        "SELECT count(*) FROM sqlite_master WHERE name GLOB '*__replace_*' OR name GLOB '*__undo_*'"
    };
    let leftovers: i64 = common::sql_rows(&s.data_dir(), sql)[0][0]
        .as_deref()
        .unwrap_or("0")
        .parse()
        .unwrap();
    assert_eq!(leftovers, 0, "nothing is left on the side");
    s.stop().await;
}

#[tokio::test]
async fn cleanup_keeps_a_row_whose_new_version_the_database_refused() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    load(&s, "table=people", "id,name,email\n1,a,a@x\n2,b,b@x\n").await;
    // Row 1's new email is row 2's: the update is refused; row 1 must stay.
    let done = load(
        &s,
        "table=people&mode=upsert&cleanup_records=true",
        "id,name,email\n1,a,b@x\n2,b,b@x\n",
    )
    .await;
    assert_eq!(done["counts"]["invalid"], 1, "{done}");
    assert_eq!(done["counts"]["destroyed"], 0, "{done}");
    assert_eq!(ids(&s.all_records("people").await), vec![1, 2]);
    // And its undo has nothing wrong to restore.
    let (status, body) = send(s.post(&format!(
        "/v1/imports/{}/rollback",
        done["id"].as_str().unwrap()
    )))
    .await;
    assert_eq!(status, 202, "{body}");
    s.wait_until(done["id"].as_str().unwrap(), |i| {
        i["status"] == "rolled_back"
    })
    .await;
    assert_eq!(ids(&s.all_records("people").await), vec![1, 2]);
    s.stop().await;
}
