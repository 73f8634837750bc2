//! What is particular to PostgreSQL: each workspace's tables are real, natively typed
//! tables in a schema named by the workspace, that `psql` can query; migrations run safely
//! when several processes start at once. Runs on the PostgreSQL backend only
//! (INTAKE_TEST_BACKEND=postgres).

use crate::common;

use std::process::Command;

use common::{TestServer, send};
use serde_json::json;

fn skipped() -> bool {
    if common::on_postgres() {
        return false;
    }
    eprintln!("skipped: runs on PostgreSQL only (INTAKE_TEST_BACKEND=postgres)");
    true
}

#[tokio::test]
async fn every_column_type_becomes_a_native_postgresql_type() {
    if skipped() {
        return;
    }
    let s = TestServer::start().await;
    let created = s
        .create_table(json!({
            "name": "everything",
            "columns": [
                {"name": "code", "type": "string", "required": true},
                {"name": "seq", "type": "integer", "required": true},
                {"name": "ratio", "type": "float"},
                {"name": "price", "type": "decimal"},
                {"name": "active", "type": "boolean"},
                {"name": "born_on", "type": "date"},
                {"name": "seen_at", "type": "datetime"},
                {"name": "email", "type": "email"},
                {"name": "ref", "type": "uuid"},
                {"name": "extra", "type": "json"}
            ],
            "primary_key": ["code", "seq"]
        }))
        .await;
    assert_eq!(created["database_table"], "default.everything");
    let columns = common::sql_rows(
        &s.data_dir(),
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns
         WHERE table_schema = 'default' AND table_name = 'everything' ORDER BY ordinal_position",
    );
    let columns: Vec<String> = columns
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(Option::unwrap_or_default)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        columns,
        [
            "code text NO",
            "seq bigint NO",
            "ratio double precision YES",
            "price numeric YES",
            "active boolean YES",
            "born_on date YES",
            "seen_at timestamp with time zone YES",
            "email text YES",
            "ref uuid YES",
            "extra json YES",
            "_intake_import bigint NO",
            "_intake_row bigint NO",
        ]
    );
    let key = common::sql_rows(
        &s.data_dir(),
        "SELECT a.attname FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = '\"default\".everything'::regclass AND i.indisprimary
         ORDER BY array_position(i.indkey, a.attnum)",
    );
    assert_eq!(
        key,
        [vec![Some("code".to_owned())], vec![Some("seq".to_owned())]]
    );
    s.stop().await;
}

#[tokio::test]
async fn psql_reads_imported_rows_in_the_workspaces_schema() {
    if skipped() {
        return;
    }
    let s = TestServer::start().await;
    s.create_table(json!({
        "name": "orders",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "amount", "type": "decimal"},
            {"name": "placed_at", "type": "datetime"}
        ],
        "primary_key": ["id"]
    }))
    .await;
    let (status, body) = s
        .upload(
            "table=orders",
            "text/csv",
            "id,amount,placed_at\n1,10.50,2024-01-31T10:00:00Z\n2,3,2024-02-01T23:30:00+02:00\n",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let done = s.wait_done(body["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "complete", "{done}");

    let url = format!(
        "{}/{}",
        common::admin_url()
            .expect("database URL")
            .rsplit_once('/')
            .expect("a URL with a database")
            .0,
        common::database_name(&s.data_dir())
    );
    let Ok(out) = Command::new("psql")
        .args([url.as_str(), "-At", "-F", "|", "-c"])
        .arg(
            "SET TIME ZONE 'UTC'; \
             SELECT id, amount, placed_at, _intake_import FROM \"default\".orders ORDER BY id",
        )
        .output()
    else {
        eprintln!("skipped the psql half: psql is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number = done["number"].as_i64().expect("number");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains('|'))
            .collect::<Vec<_>>(),
        [
            format!("1|10.5|2024-01-31 10:00:00+00|{number}"),
            format!("2|3|2024-02-01 21:30:00+00|{number}"),
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn another_workspace_gets_a_schema_of_its_own() {
    if skipped() {
        return;
    }
    let s = TestServer::start().await;
    let store = common::open_store(&s.data_dir()).await;
    let ws = store
        .create_workspace("acme", "Acme")
        .await
        .expect("create workspace");
    let key = "intake_acme_owner_key_0123456789";
    store
        .create_key(
            ws.id,
            &intake::api::key_record(key, "k", intake::model::Role::Owner),
        )
        .await
        .expect("create key");
    let (status, body) = send(
        s.req_as(key, reqwest::Method::POST, "/v1/tables")
            .json(&json!({
                "name": "orders",
                "columns": [{"name": "id", "type": "integer", "required": true}],
                "primary_key": ["id"]
            })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["database_table"], "acme.orders");
    let tables = common::sql_rows(
        &s.data_dir(),
        "SELECT table_schema || '.' || table_name FROM information_schema.tables
         WHERE table_name = 'orders'",
    );
    assert_eq!(tables, [vec![Some("acme.orders".to_owned())]]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_together_on_a_new_database_migrate_it_once() {
    if skipped() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let data = data.clone();
            tokio::spawn(async move { common::open_store(&data).await })
        })
        .collect();
    for open in opens {
        let store = open.await.expect("open task");
        store.ping().await.expect("ping");
    }
    let versions = common::sql_rows(&data, "SELECT count(*) FROM intake_workspaces");
    assert_eq!(versions, [vec![Some("0".to_owned())]]);
    common::drop_database_of(&data);
}
