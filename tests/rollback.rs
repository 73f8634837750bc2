//! Rollback: every import can be undone exactly, as a resumable job, unless a later import
//! changed the same rows.

use crate::common;

use common::{TestServer, send};
use serde_json::{Value, json};

fn people() -> Value {
    json!({
        "name": "people",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "name", "type": "string"},
            {"name": "score", "type": "decimal"},
            {"name": "born", "type": "date"}
        ],
        "primary_key": ["id"]
    })
}

async fn load(s: &TestServer, query: &str, csv: &str) -> Value {
    let (status, body) = s.upload(query, "text/csv", csv.to_owned()).await;
    assert_eq!(status, 202, "{body}");
    s.wait_done(body["id"].as_str().expect("id")).await
}

async fn roll_back(s: &TestServer, id: &str) -> (u16, Value) {
    send(s.post(&format!("/v1/imports/{id}/rollback"))).await
}

async fn roll_back_and_wait(s: &TestServer, id: &str) -> Value {
    let (status, body) = roll_back(s, id).await;
    assert!(status == 202 || status == 200, "{status} {body}");
    s.wait_until(id, |i| i["status"] == "rolled_back").await
}

fn id_of(import: &Value) -> String {
    import["id"].as_str().expect("id").to_owned()
}

const BASE: &str =
    "id,name,score,born\n1,Ann,1.5,1990-01-01\n2,Bob,,1985-05-05\n3,Cy,3,\n4,Di,4.25,2000-02-29\n";

/// Creates `people`, loads [`BASE`] into it and answers its records.
async fn people_with_base(s: &TestServer) -> Vec<Value> {
    s.create_table(people()).await;
    load(s, "table=people", BASE).await;
    s.all_records("people").await
}

#[tokio::test]
async fn rolling_back_an_insert_removes_exactly_its_rows() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let before = load(&s, "table=people", "id,name\n100,Keep\n").await;
    assert_eq!(before["status"], "complete");
    let first = load(&s, "table=people", BASE).await;
    assert_eq!(first["counts"]["created"], 4);
    assert!(first["rollback_available_until"].is_string(), "{first}");
    let done = roll_back_and_wait(&s, &id_of(&first)).await;
    assert_eq!(done["progress"], 100);
    assert!(done["rolled_back_at"].is_string());
    assert_eq!(
        s.all_records("people").await,
        vec![json!({"id": 100, "name": "Keep", "score": null, "born": null})]
    );
    let (_, events) = send(s.get(&format!("/v1/imports/{}/events", id_of(&first)))).await;
    let kinds: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.ends_with(&["import.rolling_back", "import.rolled_back"]),
        "{kinds:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn rolling_back_an_upsert_restores_updated_rows_exactly_including_nulls() {
    let s = TestServer::start().await;
    let original = people_with_base(&s).await;
    // Row 1 changes, row 2 gains a score (was NULL), row 3 loses its score, row 4 is
    // identical, row 5 is new.
    let second = load(
        &s,
        "table=people&mode=upsert",
        "id,name,score,born\n1,Ann B,1.5,1990-01-01\n2,Bob,7,1985-05-05\n3,Cy,,\n4,Di,4.25,2000-02-29\n5,Eve,5,\n",
    )
    .await;
    assert_eq!(
        (
            second["counts"]["created"].clone(),
            second["counts"]["updated"].clone(),
            second["counts"]["unchanged"].clone()
        ),
        (json!(1), json!(3), json!(1))
    );
    roll_back_and_wait(&s, &id_of(&second)).await;
    assert_eq!(s.all_records("people").await, original);
    s.stop().await;
}

/// The upsert journals kept beside the tables of the test's database.
fn journals(s: &TestServer) -> i64 {
    let sql = if common::on_postgres() {
        "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\\_\\_journal\\_%'"
    } else {
        "SELECT count(*) FROM sqlite_master WHERE name GLOB '*__journal_*'"
    };
    common::sql_rows(&s.data_dir(), sql)[0][0]
        .as_deref()
        .unwrap_or("0")
        .parse()
        .expect("a count")
}

#[tokio::test]
async fn an_upsert_that_changes_a_key_twice_rolls_back_to_the_first_version_and_drops_its_journal()
{
    let s = TestServer::start().await;
    let original = people_with_base(&s).await;
    // Row 1 changes twice in one file (the last version wins), row 2 changes once, row 9
    // is created and then changed.
    let second = load(
        &s,
        "table=people&mode=upsert",
        "id,name,score,born\n1,Ann B,1.5,1990-01-01\n2,Bo,,1985-05-05\n9,New,,\n1,Ann C,2,\n9,Newer,,\n",
    )
    .await;
    assert_eq!(second["status"], "complete", "{second}");
    assert_eq!(
        journals(&s),
        1,
        "the upsert keeps its journal while it can be rolled back"
    );
    let mut now = s.all_records("people").await;
    now.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(
        now[0],
        json!({"id": 1, "name": "Ann C", "score": "2", "born": null})
    );
    assert_eq!(
        now[4],
        json!({"id": 9, "name": "Newer", "score": null, "born": null})
    );
    roll_back_and_wait(&s, &id_of(&second)).await;
    assert_eq!(s.all_records("people").await, original);
    assert_eq!(journals(&s), 0, "the journal goes with the undo");
    s.stop().await;
}

#[tokio::test]
async fn an_upsert_journal_is_dropped_when_its_rollback_window_ends_or_its_import_is_deleted() {
    let s = TestServer::start_with(|c| c.engine.retention = std::time::Duration::ZERO).await;
    s.create_table(people()).await;
    load(&s, "table=people", BASE).await;
    let first = load(&s, "table=people&mode=upsert", "id,name\n1,Changed\n").await;
    assert_eq!(first["counts"]["updated"], 1, "{first}");
    assert_eq!(journals(&s), 1);
    let store = common::open_store(&s.data_dir()).await;
    let pruned = store
        .prune(
            time::OffsetDateTime::now_utc(),
            std::time::Duration::from_secs(86_400),
        )
        .await
        .expect("prune");
    assert!(pruned >= 1, "{pruned}");
    assert_eq!(journals(&s), 0, "pruned with the rollback window");
    let second = load(&s, "table=people&mode=upsert", "id,name\n2,Changed\n").await;
    assert_eq!(journals(&s), 1);
    let (status, body) = send(s.delete(&format!("/v1/imports/{}", id_of(&second)))).await;
    assert!(status == 200 || status == 204, "{status} {body}");
    assert_eq!(journals(&s), 0, "deleted with its import");
    s.stop().await;
}

#[tokio::test]
async fn rolling_back_a_cleanup_brings_destroyed_rows_back() {
    let s = TestServer::start().await;
    let original = people_with_base(&s).await;
    let cleanup = load(
        &s,
        "table=people&mode=upsert&cleanup_records=true",
        "id,name,score,born\n1,Ann,1.5,1990-01-01\n3,Cy,9,\n",
    )
    .await;
    assert_eq!(cleanup["counts"]["destroyed"], 2);
    assert_eq!(s.all_records("people").await.len(), 2);
    roll_back_and_wait(&s, &id_of(&cleanup)).await;
    let mut after = s.all_records("people").await;
    after.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(after, original);
    s.stop().await;
}

#[tokio::test]
async fn rolling_back_a_replace_swaps_the_previous_rows_back() {
    let s = TestServer::start().await;
    let original = people_with_base(&s).await;
    let replace = load(&s, "table=people&mode=replace", "id,name\n9,Zed\n").await;
    assert_eq!(replace["counts"]["destroyed"], 4);
    assert_eq!(s.all_records("people").await.len(), 1);
    roll_back_and_wait(&s, &id_of(&replace)).await;
    assert_eq!(s.all_records("people").await, original);
    s.stop().await;
}

#[tokio::test]
async fn a_rollback_is_refused_while_a_later_import_that_changed_the_same_rows_stands() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let first = load(&s, "table=people", BASE).await;
    let second = load(&s, "table=people&mode=upsert", "id,name\n2,Robert\n").await;
    let (status, body) = roll_back(&s, &id_of(&first)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "rollback_blocked");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&id_of(&second)), "{message}");
    assert!(
        message.contains(&format!("number {}", second["number"])),
        "{message}"
    );
    // Once the later import is rolled back, the first can be.
    roll_back_and_wait(&s, &id_of(&second)).await;
    roll_back_and_wait(&s, &id_of(&first)).await;
    assert!(s.all_records("people").await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_later_import_that_touched_other_rows_does_not_block_a_rollback() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let first = load(&s, "table=people", BASE).await;
    load(&s, "table=people", "id,name\n50,Other\n").await;
    roll_back_and_wait(&s, &id_of(&first)).await;
    assert_eq!(
        s.all_records("people").await,
        vec![json!({"id": 50, "name": "Other", "score": null, "born": null})]
    );
    s.stop().await;
}

#[tokio::test]
async fn rollback_is_idempotent_and_refused_for_what_wrote_nothing() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let first = load(&s, "table=people", BASE).await;
    roll_back_and_wait(&s, &id_of(&first)).await;
    let (status, again) = roll_back(&s, &id_of(&first)).await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "rolled_back");
    let dry = load(&s, "table=people&dry_run=true", BASE).await;
    let (status, body) = roll_back(&s, &id_of(&dry)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "import_not_rollbackable", "message": "a dry run wrote nothing to roll back"}})
    );
    s.stop().await;
}

#[tokio::test]
async fn only_admins_roll_back_and_a_running_import_cannot_be_rolled_back() {
    let s = TestServer::start_with(|c| c.engine.workers = 0).await;
    s.create_table(people()).await;
    let member = s.create_key("member").await;
    let (status, queued) = s.upload("table=people", "text/csv", BASE).await;
    assert_eq!(status, 202);
    let path = format!("/v1/imports/{}/rollback", id_of(&queued));
    let (status, body) = send(s.req_as(&member, reqwest::Method::POST, &path)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(s.post(&path)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "import_running", "message": "the import is queued and cannot be rolled back until it ends; cancel it first"}})
    );
    s.stop().await;
}

#[tokio::test]
async fn a_new_user_undoes_two_imports_and_gets_the_initial_table_back() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let initial = load(&s, "table=people", "id,name,score\n1,Ann,1\n2,Bob,2\n").await;
    let initial_rows = s.all_records("people").await;
    let mut csv = String::from("id,name,score,born\n");
    for i in 1..=200 {
        csv.push_str(&format!("{i},Person {i},{i}.5,2001-01-01\n"));
    }
    let first = load(&s, "table=people&mode=upsert", &csv).await;
    assert_eq!(first["counts"]["created"], 198);
    assert_eq!(first["counts"]["updated"], 2);
    let mut half = String::from("id,name,score,born\n");
    for i in (1..=200).step_by(2) {
        half.push_str(&format!("{i},Changed {i},{i},\n"));
    }
    let second = load(&s, "table=people&mode=upsert", &half).await;
    assert_eq!(second["counts"]["updated"], 100);
    roll_back_and_wait(&s, &id_of(&second)).await;
    roll_back_and_wait(&s, &id_of(&first)).await;
    assert_eq!(s.all_records("people").await, initial_rows);
    assert_eq!(initial["status"], "complete");
    s.stop().await;
}

#[tokio::test]
async fn deleting_a_finished_import_forgets_it_and_keeps_its_rows() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let first = load(&s, "table=people", BASE).await;
    let (status, _) = send(s.delete(&format!("/v1/imports/{}", id_of(&first)))).await;
    assert_eq!(status, 204);
    let (status, _) = send(s.get(&format!("/v1/imports/{}", id_of(&first)))).await;
    assert_eq!(status, 404);
    assert_eq!(s.all_records("people").await.len(), 4);
    s.stop().await;
}

#[tokio::test]
async fn an_unfinished_import_cannot_be_deleted() {
    let s = TestServer::start_with(|c| c.engine.workers = 0).await;
    s.create_table(people()).await;
    let (_, queued) = s.upload("table=people", "text/csv", BASE).await;
    let (status, body) = send(s.delete(&format!("/v1/imports/{}", id_of(&queued)))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "import_running", "message": "the import is queued and cannot be deleted until it ends; cancel it first"}})
    );
    s.stop().await;
}

#[tokio::test]
async fn past_the_retention_period_errors_and_undo_are_pruned_and_rollback_is_refused() {
    let s = TestServer::start_with(|c| c.engine.retention = std::time::Duration::ZERO).await;
    s.create_table(people()).await;
    let first = load(&s, "table=people", "id,name,score\n1,Ann,x\n2,Bob,2\n").await;
    assert_eq!(first["counts"]["invalid"], 1);
    // Pruning runs at start and every ten minutes: a restart-free check goes through the
    // store directly.
    let store = common::open_store(&s.data_dir()).await;
    let pruned = store
        .prune(
            time::OffsetDateTime::now_utc(),
            std::time::Duration::from_secs(86_400),
        )
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    let (_, errors) = send(s.get(&format!("/v1/imports/{}/errors", id_of(&first)))).await;
    assert_eq!(errors["data"], json!([]));
    let (_, import) = send(s.get(&format!("/v1/imports/{}", id_of(&first)))).await;
    assert_eq!(import["counts"]["invalid"], 1, "counts stay after pruning");
    // The rejected rows are gone, and the import says so.
    assert_eq!(import["errors_stored"], 0, "{import}");
    assert_eq!(import["errors_truncated"], true, "{import}");
    assert!(import["rollback_available_until"].is_null());
    let (status, body) = roll_back(&s, &id_of(&first)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "import_not_rollbackable", "message": "this import can no longer be rolled back: its undo journal was pruned"}})
    );
    s.stop().await;
}

#[tokio::test]
async fn a_lowered_retention_reaches_imports_that_ended_under_the_longer_one() {
    // The import ends with a deadline 30 days away; the retention is then lowered to none.
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let done = load(&s, "table=people", "id,name,score\n1,Ann,x\n2,Bob,2\n").await;
    assert!(done["rollback_available_until"].is_string(), "{done}");
    let store = common::open_store(&s.data_dir()).await;
    let now = time::OffsetDateTime::now_utc();
    let kept = store
        .prune(now, std::time::Duration::from_secs(30 * 86_400))
        .await
        .expect("prune");
    assert_eq!(kept, 0, "within 30 days nothing is pruned");
    let pruned = store
        .prune(now + time::Duration::seconds(1), std::time::Duration::ZERO)
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    let (_, import) = send(s.get(&format!("/v1/imports/{}", id_of(&done)))).await;
    assert!(import["rollback_available_until"].is_null(), "{import}");
    let (status, body) = roll_back(&s, &id_of(&done)).await;
    assert_eq!(status, 409, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn cancel_racing_completion_ends_in_one_consistent_state() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let mut csv = String::from("id,name\n");
    for i in 0..20_000 {
        csv.push_str(&format!("{i},n{i}\n"));
    }
    for delay_ms in [0u64, 5, 20, 60] {
        let (_, created) = s
            .upload("table=people&mode=upsert", "text/csv", csv.clone())
            .await;
        let id = id_of(&created);
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let (status, body) = send(s.post(&format!("/v1/imports/{id}/cancel"))).await;
        assert!(status == 200 || status == 409, "{status} {body}");
        let done = s.wait_done(&id).await;
        let counts = &done["counts"];
        match done["status"].as_str() {
            Some("cancelled") => {
                assert!(done["cancelled_at"].is_string());
                assert!(counts["processed"].as_u64() <= Some(20_000));
            }
            Some("complete") => {
                assert_eq!(counts["processed"], 20_000);
                assert!(done["cancelled_at"].is_null());
            }
            other => panic!("unexpected end {other:?}: {done}"),
        }
        let p = counts["processed"].as_u64().unwrap();
        let sum = ["created", "updated", "unchanged", "invalid"]
            .iter()
            .map(|k| counts[*k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(p, sum, "{counts}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_workspace_runs_no_more_imports_at_once_than_its_limit_and_one_per_table() {
    let s = TestServer::start_with(|c| c.engine.workers = 0).await;
    for name in ["p1", "p2"] {
        let mut schema = people();
        schema["name"] = json!(name);
        s.create_table(schema).await;
    }
    // Two imports of p1, one of p2, in this order.
    for table in ["p1", "p1", "p2"] {
        let (status, _) = s.upload(&format!("table={table}"), "text/csv", BASE).await;
        assert_eq!(status, 202);
    }
    let store = common::open_store(&s.data_dir()).await;
    let first = store.claim_import("w1", 30_000, 1).await.expect("claim");
    assert_eq!(first.expect("a first import").import.tables[0].table, "p1");
    let second = store.claim_import("w2", 30_000, 1).await.expect("claim");
    assert!(second.is_none(), "a limit of one keeps the others queued");
    // With room for two, the second p1 import still waits for the first: p2's runs.
    let second = store.claim_import("w2", 30_000, 2).await.expect("claim");
    assert_eq!(second.expect("another import").import.tables[0].table, "p2");
    s.stop().await;
}
