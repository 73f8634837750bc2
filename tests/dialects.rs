//! The five compatibility dialects (`/compat/<vendor>`), driven by the seed pages' own
//! examples (the same headers, only the base URL swapped) against a server holding real
//! imports in every status: complete, partially complete with row errors, failed,
//! unsupported, rolled back, cancelled, queued and running. Each vendor's field names,
//! types, nullability, status mapping, pages, sorts, filters and auth failures are checked.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{TestServer, send};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The world: one server, imports in every status
// ---------------------------------------------------------------------------------------------

/// A server (its workers stopped, so unfinished imports stay as they are) holding eight
/// imports, numbered in creation order:
/// 1 complete · 2 partially complete (two tables, one row error) · 3 failed · 4 unsupported ·
/// 5 rolled back · 6 queued · 7 cancelled · 8 processing.
struct World {
    s: TestServer,
    /// The data directory (where its database is found).
    db: PathBuf,
    /// The native view of each import, by number - 1.
    imports: Vec<Value>,
    _data: tempfile::TempDir,
}

impl World {
    /// The native view of import `n`.
    fn import(&self, n: usize) -> &Value {
        &self.imports[n - 1]
    }

    fn id(&self, n: usize) -> String {
        self.import(n)["id"].as_str().expect("id").to_owned()
    }

    /// The number of an import id.
    fn number_of(&self, id: &str) -> usize {
        self.imports
            .iter()
            .position(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("unknown import {id}"))
            + 1
    }
}

fn companies() -> Value {
    json!({
        "name": "companies",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "name", "type": "string"}
        ],
        "primary_key": ["id"]
    })
}

fn opportunities() -> Value {
    json!({
        "name": "opportunities",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "name", "type": "string"},
            {"name": "user", "type": "email"},
            {"name": "amount", "type": "float"}
        ],
        "primary_key": ["id"]
    })
}

const COMPANIES_CSV: &str = "id,name\n1,Acme\n2,Globex\n3,Initech\n";
const OPPORTUNITIES_CSV: &str = "id,name,user,amount\n1,Great opportunity,user@example.fr,AAAAA\n2,Small deal,user@example.fr,12.5\n";

async fn created(req: RequestBuilder) -> Value {
    let (status, body) = send(req).await;
    assert_eq!(status, 202, "create import: {body}");
    body
}

async fn csv(s: &TestServer, query: &str, body: &str) -> Value {
    created(
        s.post(&format!("/v1/imports?{query}"))
            .header("content-type", "text/csv")
            .body(body.to_owned()),
    )
    .await
}

/// The time as the store writes it.
fn stored_now() -> String {
    intake::store::sort_key(time::OffsetDateTime::now_utc())
}

async fn world() -> World {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let db = dir.clone();

    // Phase 1, with workers: the imports that end.
    let d = dir.clone();
    let s = TestServer::start_with(move |c| c.data_dir = d).await;
    s.create_table(companies()).await;
    s.create_table(opportunities()).await;
    let mut ids = Vec::new();
    let form = Form::new()
        .text("table", "companies")
        .text("reference", "REF-1")
        .text("reference_origin", "crm")
        .text("note", "first load")
        .text("metadata", r#"{"batch": 1}"#)
        .part(
            "file",
            Part::bytes(COMPANIES_CSV.as_bytes().to_vec()).file_name("companies.csv"),
        );
    let c = created(s.post("/v1/imports").multipart(form)).await;
    ids.push(s.wait_done(c["id"].as_str().unwrap()).await["id"].clone());
    let form = Form::new()
        .text("reference", "REF-2")
        .part(
            "companies",
            Part::bytes(b"id,name\n4,Umbrella\n5,Hooli\n".to_vec()).file_name("more.csv"),
        )
        .part(
            "opportunities",
            Part::bytes(OPPORTUNITIES_CSV.as_bytes().to_vec()).file_name("opportunities.csv"),
        );
    let c = created(s.post("/v1/imports").multipart(form)).await;
    ids.push(s.wait_done(c["id"].as_str().unwrap()).await["id"].clone());
    let c = csv(
        &s,
        "table=companies&on_error=abort",
        "id,name\n6,Ok\nx,Bad\n",
    )
    .await;
    ids.push(s.wait_done(c["id"].as_str().unwrap()).await["id"].clone());
    let (status, body) = s
        .upload(
            "table=companies",
            "application/octet-stream",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        )
        .await;
    assert_eq!(status, 415, "{body}");
    ids.push(body["error"]["import_id"].clone());
    let c = csv(&s, "table=companies", "id,name\n10,Ten\n11,Eleven\n").await;
    let id = c["id"].as_str().unwrap().to_owned();
    s.wait_done(&id).await;
    roll_back(&s, &id).await;
    ids.push(json!(id));
    s.stop().await;

    // Phase 2, without workers: imports that stay queued, are cancelled, or run.
    let d = dir.clone();
    let s = TestServer::start_with(move |c| {
        c.data_dir = d;
        c.engine.workers = 0;
    })
    .await;
    let c = csv(
        &s,
        "table=companies&reference=REF-Q",
        "id,name\n20,Twenty\n",
    )
    .await;
    ids.push(c["id"].clone());
    let c = csv(&s, "table=companies", "id,name\n21,TwentyOne\n").await;
    let (status, body) =
        send(s.post(&format!("/v1/imports/{}/cancel", c["id"].as_str().unwrap()))).await;
    assert_eq!(status, 200, "{body}");
    ids.push(c["id"].clone());
    let c = csv(&s, "table=companies", "id,name\n30,A\n31,B\n32,C\n").await;
    let id = c["id"].as_str().unwrap().to_owned();
    // A running import, as a worker leaves it between two batches (no worker runs here).
    let now = stored_now();
    common::sql_execute(
        &dir,
        &format!(
            "UPDATE intake_imports SET status = 'processing', step = 'writing',
             started_at = '{now}', bytes_read = bytes_total / 2, processed = 1, created = 1,
             updated_at = '{now}' WHERE id = '{id}';
             UPDATE intake_import_tables SET status = 'processing', started_at = '{now}',
             bytes_read = bytes_total / 2, processed = 1, created = 1 WHERE import_id = '{id}';"
        ),
    );
    ids.push(json!(id));

    let mut imports = Vec::new();
    for id in &ids {
        let (status, body) = send(s.get(&format!("/v1/imports/{}", id.as_str().unwrap()))).await;
        assert_eq!(status, 200, "{body}");
        imports.push(body);
    }
    let statuses: Vec<&str> = imports
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "complete",
            "partially_complete",
            "failed",
            "unsupported",
            "rolled_back",
            "queued",
            "cancelled",
            "processing"
        ]
    );
    World {
        s,
        db,
        imports,
        _data: data,
    }
}

/// Rolls an import back through the native route and waits until it is rolled back.
async fn roll_back(s: &TestServer, id: &str) {
    let (status, body) = send(s.post(&format!("/v1/imports/{id}/rollback"))).await;
    assert!(matches!(status, 200 | 202), "rollback: {status} {body}");
    s.wait_until(id, |i| i["status"] == "rolled_back").await;
}

/// A second workspace `other` with an owner key, made straight in the database.
async fn other_workspace(db: &Path) -> String {
    const KEY: &str = "intake_other_key_012345678901234";
    let store = common::open_store(db).await;
    let ws = store
        .create_workspace("other", "Other")
        .await
        .expect("create workspace");
    store
        .create_key(
            ws.id,
            &intake::api::key_record(KEY, "k", intake::model::Role::Owner),
        )
        .await
        .expect("create key");
    KEY.to_owned()
}

/// The id of the default workspace.
async fn workspace_id(db: &Path) -> String {
    let store = common::open_store(db).await;
    store
        .find_workspace("default")
        .await
        .expect("read")
        .expect("default workspace")
        .id
        .to_string()
}

/// The id of a key, from its secret (by its shown prefix).
async fn key_id(s: &TestServer, secret: &str) -> String {
    let (_, list) = send(s.get("/v1/keys")).await;
    let prefix: String = secret.chars().take(13).collect();
    list["data"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["prefix"] == prefix)
        .and_then(|k| k["id"].as_str())
        .expect("key listed")
        .to_owned()
}

/// Sends a request; status and body (JSON, null when empty, or the text as a JSON string).
async fn plain(req: RequestBuilder) -> (u16, Value) {
    let (status, _, body) = full(req).await;
    (status, body)
}

/// Sends a request; status, headers and body (JSON, or the text as a JSON string).
async fn full(req: RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    assert!(status < 500, "server error {status}: {body}");
    (status, headers, body)
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `2024-01-10T12:00:00.000Z`
fn is_millis_time(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.' && s.as_bytes()[10] == b'T'
    })
}

/// `2024-06-25T09:58:32Z`
fn is_seconds_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

// ---------------------------------------------------------------------------------------------
// Rybbit
// ---------------------------------------------------------------------------------------------

fn rybbit(s: &TestServer, method: Method, path: &str, key: &str) -> RequestBuilder {
    // The seed: -H "Authorization: Bearer your_api_key_here"
    s.client
        .request(method, s.url(&format!("/compat/rybbit{path}")))
        .header("Authorization", format!("Bearer {key}"))
}

#[tokio::test]
async fn rybbit_lists_a_sites_imports_as_the_seed_shows() {
    let w = world().await;
    let s = &w.s;
    let (status, body) = send(rybbit(s, Method::GET, "/api/sites/default/imports", &s.key)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys_of(&body), set(&["data"]));
    let data = body["data"].as_array().expect("data");
    // Newest first.
    let order: Vec<usize> = data
        .iter()
        .map(|i| w.number_of(i["importId"].as_str().unwrap()))
        .collect();
    assert_eq!(order, [8, 7, 6, 5, 4, 3, 2, 1]);
    for item in data {
        assert_eq!(
            keys_of(item),
            set(&[
                "importId",
                "platform",
                "importedEvents",
                "skippedEvents",
                "invalidEvents",
                "startedAt",
                "completedAt"
            ]),
            "{item}"
        );
        assert!(uuid::Uuid::parse_str(item["importId"].as_str().unwrap()).is_ok());
        assert_eq!(
            item["platform"], "csv",
            "the default platform is the source format"
        );
        for n in ["importedEvents", "skippedEvents", "invalidEvents"] {
            assert!(item[n].is_u64(), "{n}: {item}");
        }
        assert!(is_millis_time(&item["startedAt"]), "{item}");
        let number = w.number_of(item["importId"].as_str().unwrap());
        if matches!(number, 6 | 8) {
            assert_eq!(item["completedAt"], Value::Null, "running: {item}");
        } else {
            assert!(is_millis_time(&item["completedAt"]), "{item}");
        }
    }
    let by_number = |n: usize| {
        data.iter()
            .find(|i| i["importId"] == w.id(n))
            .expect("listed")
            .clone()
    };
    assert_eq!(by_number(1)["importedEvents"], 3);
    assert_eq!(by_number(1)["invalidEvents"], 0);
    assert_eq!(by_number(2)["importedEvents"], 3);
    assert_eq!(by_number(2)["invalidEvents"], 1);
    assert_eq!(
        by_number(1)["startedAt"],
        w.import(1)["created_at"]
            .as_str()
            .map(|t| {
                // The native view drops trailing zeros of the fraction; Rybbit prints three digits.
                // A whole second has no fraction at all.
                let t = t.trim_end_matches('Z');
                let (head, frac) = t.split_once('.').unwrap_or((t, ""));
                format!("{head}.{frac:0<3}Z")
            })
            .unwrap()
    );

    // The site may also be named by the workspace's id.
    let ws = workspace_id(&w.db).await;
    let (status, by_id) = send(rybbit(
        s,
        Method::GET,
        &format!("/api/sites/{ws}/imports"),
        &s.key,
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_id, body);
}

#[tokio::test]
async fn rybbit_needs_an_admin_key_of_the_sites_workspace() {
    let w = world().await;
    let s = &w.s;
    let path = "/api/sites/default/imports";
    // No key, an unknown key.
    let (status, body) = send(s.client.get(s.url(&format!("/compat/rybbit{path}")))).await;
    assert_eq!((status, body), (401, json!({"error": "Unauthorized"})));
    let (status, body) = send(rybbit(s, Method::GET, path, "nope_nope_nope_nope")).await;
    assert_eq!((status, body), (401, json!({"error": "Unauthorized"})));
    // Members and viewers: 403; admins and owners: 200.
    for role in ["viewer", "member"] {
        let key = s.create_key(role).await;
        let (status, body) = send(rybbit(s, Method::GET, path, &key)).await;
        assert_eq!(
            (status, body),
            (403, json!({"error": "Forbidden"})),
            "{role}"
        );
        let (status, _) =
            send(rybbit(s, Method::POST, path, &key).json(&json!({"platform": "umami"}))).await;
        assert_eq!(status, 403, "{role}");
    }
    let admin = s.create_key("admin").await;
    let (status, _) = send(rybbit(s, Method::GET, path, &admin)).await;
    assert_eq!(status, 200);
    // Another workspace's site, or a site that does not exist.
    other_workspace(&w.db).await;
    for site in ["other", "123"] {
        let (status, body) = send(rybbit(
            s,
            Method::GET,
            &format!("/api/sites/{site}/imports"),
            &s.key,
        ))
        .await;
        assert_eq!(
            (status, body),
            (403, json!({"error": "Forbidden"})),
            "{site}"
        );
    }
    // An import of another workspace cannot be deleted through this one's site either.
    let (status, body) = send(rybbit(
        s,
        Method::DELETE,
        &format!("/api/sites/other/imports/{}", w.id(1)),
        &s.key,
    ))
    .await;
    assert_eq!((status, body), (403, json!({"error": "Forbidden"})));
    // Unknown routes and methods answer in Rybbit's shape too.
    let (status, body) = send(rybbit(s, Method::GET, "/api/nope", &s.key)).await;
    assert_eq!((status, body), (404, json!({"error": "Not Found"})));
}

#[tokio::test]
async fn rybbit_creates_an_import_takes_event_batches_and_deletes_it_with_its_events() {
    let s = TestServer::start().await;
    let base = "/api/sites/default/imports";
    let (status, body) =
        send(rybbit(&s, Method::POST, base, &s.key).json(&json!({"platform": "umami"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys_of(&body["data"]),
        set(&["importId", "allowedDateRange"])
    );
    assert_eq!(
        keys_of(&body["data"]["allowedDateRange"]),
        set(&["earliestAllowedDate", "latestAllowedDate"])
    );
    let id = body["data"]["importId"].as_str().unwrap().to_owned();

    // Collecting batches: listed, not completed; the native API shows it `new`.
    let (_, list) = send(rybbit(&s, Method::GET, base, &s.key)).await;
    assert_eq!(list["data"][0]["importId"], id.as_str());
    assert_eq!(list["data"][0]["platform"], "umami");
    assert_eq!(list["data"][0]["completedAt"], Value::Null);
    let (_, native) = send(s.get(&format!("/v1/imports/{id}"))).await;
    assert_eq!(native["status"], "new");
    assert_eq!(native["platform"], "umami");

    let events = format!("{base}/{id}/events");
    let first = json!({"events": [
        {"created_at": "2024-01-10 12:00:00", "url_path": "/pricing", "hostname": "example.com",
         "session_id": "s1", "event_type": "1"},
        {"url_path": "/no-time"}
    ]});
    let (status, body) = plain(rybbit(&s, Method::POST, &events, &s.key).json(&first)).await;
    assert_eq!((status, body), (200, Value::Null));
    let last = json!({"events": [
        {"timestamp": "2024-01-11T08:30:00Z", "pathname": "/docs", "type": "pageview"}
    ], "isLastBatch": true});
    let (status, _) = plain(rybbit(&s, Method::POST, &events, &s.key).json(&last)).await;
    assert_eq!(status, 200);
    let done = s.wait_done(&id).await;
    assert_eq!(done["status"], "partially_complete", "{done}");

    let (_, list) = send(rybbit(&s, Method::GET, base, &s.key)).await;
    let item = &list["data"][0];
    assert_eq!(item["importedEvents"], 2, "{item}");
    assert_eq!(item["invalidEvents"], 1, "{item}");
    assert_eq!(item["skippedEvents"], 0, "{item}");
    assert!(is_millis_time(&item["completedAt"]), "{item}");

    // The events landed in the site's events table, with the lifted fields.
    let rows = s.all_records("rybbit_events").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let pricing = rows
        .iter()
        .find(|r| r["pathname"] == "/pricing")
        .expect("row");
    assert_eq!(pricing["timestamp"], "2024-01-10T12:00:00Z");
    assert_eq!(pricing["hostname"], "example.com");
    assert_eq!(pricing["platform"], "umami");
    assert_eq!(pricing["event"]["url_path"], "/pricing");

    // A batch after the end is refused; a repeated last batch is answered again, adding nothing.
    let (status, body) = send(rybbit(&s, Method::POST, &events, &s.key).json(&first)).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "Import is already complete"}))
    );
    let (status, _) = plain(rybbit(&s, Method::POST, &events, &s.key).json(&last)).await;
    assert_eq!(status, 200);
    assert_eq!(s.all_records("rybbit_events").await.len(), 2);
    // Malformed batches.
    for bad in [
        json!({"events": "x"}),
        json!({"events": [], "extra": 1}),
        json!([1]),
    ] {
        let (status, body) = send(rybbit(&s, Method::POST, &events, &s.key).json(&bad)).await;
        assert_eq!(
            (status, body),
            (400, json!({"error": "Validation error"})),
            "{bad}"
        );
    }
    let (status, body) = send(
        rybbit(
            &s,
            Method::POST,
            &format!("{base}/{}/events", uuid::Uuid::now_v7()),
            &s.key,
        )
        .json(&last),
    )
    .await;
    assert_eq!((status, body), (404, json!({"error": "Import not found"})));

    // A second import's events stay when the first is deleted.
    let (_, other) =
        send(rybbit(&s, Method::POST, base, &s.key).json(&json!({"platform": "plausible"}))).await;
    let other_id = other["data"]["importId"].as_str().unwrap().to_owned();
    let (status, _) = plain(
        rybbit(
            &s,
            Method::POST,
            &format!("{base}/{other_id}/events"),
            &s.key,
        )
        .json(&json!({
            "events": [{"timestamp": "2024-02-01T00:00:00Z", "pathname": "/kept"}],
            "isLastBatch": true
        })),
    )
    .await;
    assert_eq!(status, 200);
    s.wait_done(&other_id).await;
    assert_eq!(s.all_records("rybbit_events").await.len(), 3);

    let (status, body) = plain(rybbit(&s, Method::DELETE, &format!("{base}/{id}"), &s.key)).await;
    assert_eq!((status, body), (200, Value::Null));
    let rows = s.all_records("rybbit_events").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pathname"], "/kept");
    let (_, list) = send(rybbit(&s, Method::GET, base, &s.key)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["importId"], other_id.as_str());
    let (status, _) = send(s.get(&format!("/v1/imports/{id}"))).await;
    assert_eq!(status, 404, "the import is forgotten");
    let (status, body) = send(rybbit(&s, Method::DELETE, &format!("{base}/{id}"), &s.key)).await;
    assert_eq!((status, body), (404, json!({"error": "Import not found"})));
    let (status, body) = send(rybbit(&s, Method::DELETE, &format!("{base}/nope"), &s.key)).await;
    assert_eq!((status, body), (400, json!({"error": "Validation error"})));
    // A create without a platform.
    let (status, body) = send(rybbit(&s, Method::POST, base, &s.key).json(&json!({}))).await;
    assert_eq!((status, body), (400, json!({"error": "Validation error"})));
}

#[tokio::test]
async fn rybbit_does_not_delete_a_running_import() {
    let w = world().await;
    let s = &w.s;
    for n in [6, 8] {
        let (status, body) = send(rybbit(
            s,
            Method::DELETE,
            &format!("/api/sites/default/imports/{}", w.id(n)),
            &s.key,
        ))
        .await;
        assert_eq!(
            (status, body),
            (400, json!({"error": "Cannot delete active import"})),
            "import {n}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Qobra
// ---------------------------------------------------------------------------------------------

fn qobra(s: &TestServer, method: Method, path: &str, key: &str) -> RequestBuilder {
    // The seed: --header 'X-API-Key: <api-key>'
    s.client
        .request(method, s.url(&format!("/compat/qobra{path}")))
        .header("X-API-Key", key)
}

fn assert_qobra_shape(import: &Value) {
    assert_eq!(keys_of(import), set(&["data_import"]));
    let d = &import["data_import"];
    assert_eq!(
        keys_of(d),
        set(&[
            "id",
            "created_at",
            "launched_at",
            "finished_at",
            "status",
            "progress",
            "data_tables_details"
        ])
    );
    assert!(is_seconds_time(&d["created_at"]), "{d}");
    for t in ["launched_at", "finished_at"] {
        assert!(d[t].is_null() || is_seconds_time(&d[t]), "{t}: {d}");
    }
    assert!(d["progress"].is_u64(), "{d}");
    for t in d["data_tables_details"].as_array().expect("details") {
        assert_eq!(
            keys_of(t),
            set(&[
                "type",
                "status",
                "data_table_key",
                "progress",
                "number_of_records",
                "error"
            ])
        );
        assert!(["api", "csv", "integration"].contains(&t["type"].as_str().unwrap()));
        assert!(["scheduled", "started", "finished"].contains(&t["status"].as_str().unwrap()));
        assert!(t["progress"].is_u64());
        assert!(t["number_of_records"].is_null() || t["number_of_records"].is_u64());
        if !t["error"].is_null() {
            assert_eq!(
                keys_of(&t["error"]),
                set(&["title", "description", "parsing_error_details"])
            );
            for e in t["error"]["parsing_error_details"].as_array().unwrap() {
                assert_eq!(keys_of(e), set(&["line_number", "row", "details"]));
                assert!(e["line_number"].is_u64() && e["row"].is_object());
                assert!(e["details"].is_string());
            }
        }
    }
}

#[tokio::test]
async fn qobra_fetches_a_stacked_import_with_its_parsing_errors_as_the_seed_shows() {
    let w = world().await;
    let s = &w.s;
    let (status, body) = send(qobra(
        s,
        Method::GET,
        &format!("/v1/imports/{}", w.id(2)),
        &s.key,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_qobra_shape(&body);
    let d = &body["data_import"];
    assert_eq!(d["id"], w.id(2).as_str());
    assert_eq!(d["status"], "finished");
    assert_eq!(d["progress"], 100);
    assert!(is_seconds_time(&d["launched_at"]) && is_seconds_time(&d["finished_at"]));
    assert_eq!(
        d["data_tables_details"][0],
        json!({
            "type": "csv",
            "status": "finished",
            "data_table_key": "companies",
            "progress": 100,
            "number_of_records": 2,
            "error": null
        })
    );
    let opp = &d["data_tables_details"][1];
    assert_eq!(opp["data_table_key"], "opportunities");
    assert_eq!(opp["number_of_records"], 1, "the valid row was imported");
    let error = &opp["error"];
    assert_eq!(error["title"], "ParsingError");
    assert!(
        error["description"].as_str().unwrap().contains("AAAAA"),
        "{error}"
    );
    let details = error["parsing_error_details"].as_array().unwrap();
    assert_eq!(details.len(), 1);
    // The true line of the file (the header is line 1), and the row as it was sent.
    assert_eq!(details[0]["line_number"], 2);
    assert_eq!(
        details[0]["row"],
        json!({"id": "1", "name": "Great opportunity", "user": "user@example.fr", "amount": "AAAAA"})
    );
    assert!(
        details[0]["details"]
            .as_str()
            .unwrap()
            .starts_with("invalid_float: ")
    );
}

#[tokio::test]
async fn qobra_maps_every_status_to_scheduled_started_or_finished() {
    let w = world().await;
    let s = &w.s;
    let expected = [
        (1, "finished", None),
        (2, "finished", Some("ParsingError")),
        (3, "finished", Some("ImportError")),
        (4, "finished", Some("UnsupportedFormat")),
        (5, "finished", Some("RolledBack")),
        (6, "scheduled", None),
        (7, "finished", Some("Cancelled")),
        (8, "started", None),
    ];
    for (n, status_name, title) in expected {
        let (status, body) = send(qobra(
            s,
            Method::GET,
            &format!("/v1/imports/{}", w.id(n)),
            &s.key,
        ))
        .await;
        assert_eq!(status, 200, "{body}");
        assert_qobra_shape(&body);
        let d = &body["data_import"];
        assert_eq!(d["status"], status_name, "import {n}: {d}");
        let last = d["data_tables_details"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["error"]["title"].as_str(), title, "import {n}: {last}");
        match n {
            6 => {
                assert_eq!(d["launched_at"], Value::Null);
                assert_eq!(d["finished_at"], Value::Null);
                assert_eq!(d["progress"], 0);
                assert_eq!(last["number_of_records"], Value::Null);
            }
            8 => {
                assert!(is_seconds_time(&d["launched_at"]));
                assert_eq!(d["finished_at"], Value::Null);
                assert_eq!(d["progress"], w.import(8)["progress"]);
                assert!(d["progress"].as_u64().unwrap() > 0);
                assert_eq!(last["status"], "started");
                assert_eq!(last["number_of_records"], Value::Null);
            }
            _ => {
                assert!(is_seconds_time(&d["finished_at"]), "import {n}: {d}");
                assert_eq!(d["progress"], 100);
            }
        }
    }
    let (_, failed) = send(qobra(
        s,
        Method::GET,
        &format!("/v1/imports/{}", w.id(3)),
        &s.key,
    ))
    .await;
    assert_eq!(
        failed["data_import"]["data_tables_details"][0]["error"]["description"],
        w.import(3)["error"]
    );
}

#[tokio::test]
async fn qobra_ingests_records_in_bulk_and_answers_the_import_id() {
    let s = TestServer::start().await;
    s.create_table(companies()).await;
    let path = "/v1/tables/companies/records/bulk";
    let (status, body) = send(
        qobra(&s, Method::POST, path, &s.key)
            .json(&json!([{"id": 1, "name": "Acme"}, {"id": 2, "name": "Globex"}])),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys_of(&body), set(&["import_id"]));
    let id = body["import_id"].as_str().unwrap().to_owned();
    s.wait_done(&id).await;
    let (_, got) = send(qobra(&s, Method::GET, &format!("/v1/imports/{id}"), &s.key)).await;
    assert_qobra_shape(&got);
    assert_eq!(
        got["data_import"]["data_tables_details"],
        json!([{"type": "api", "status": "finished", "data_table_key": "companies",
                "progress": 100, "number_of_records": 2, "error": null}])
    );
    // Records are upserted by the key: sending id 2 again updates it.
    let (_, body) = send(
        qobra(&s, Method::POST, path, &s.key)
            .json(&json!({"records": [{"id": 2, "name": "Globex Corp"}, {"id": 3, "name": "x"}]})),
    )
    .await;
    s.wait_done(body["import_id"].as_str().unwrap()).await;
    assert_eq!(s.all_records("companies").await.len(), 3);
    // all=true replaces the table's content.
    let (status, body) = send(
        qobra(&s, Method::POST, &format!("{path}?all=true"), &s.key)
            .json(&json!([{"id": 9, "name": "Only"}])),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    s.wait_done(body["import_id"].as_str().unwrap()).await;
    let rows = s.all_records("companies").await;
    assert_eq!(rows, vec![json!({"id": 9, "name": "Only"})]);
    // A bad record is a parsing error with its line (its position in the list).
    let (_, body) =
        send(qobra(&s, Method::POST, path, &s.key).json(&json!([{"id": 10}, {"id": "ten"}]))).await;
    let id = body["import_id"].as_str().unwrap().to_owned();
    s.wait_done(&id).await;
    let (_, got) = send(qobra(&s, Method::GET, &format!("/v1/imports/{id}"), &s.key)).await;
    let error = &got["data_import"]["data_tables_details"][0]["error"];
    assert_eq!(
        error["parsing_error_details"][0]["line_number"], 2,
        "{error}"
    );
    assert_eq!(
        error["parsing_error_details"][0]["row"],
        json!({"id": "ten"})
    );

    // Refusals, as {"detail": "..."}.
    let (status, body) = send(
        s.client
            .post(s.url(&format!("/compat/qobra{path}")))
            .json(&json!([])),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body["detail"].is_string(), "{body}");
    let viewer = s.create_key("viewer").await;
    let (status, body) = send(qobra(&s, Method::POST, path, &viewer).json(&json!([]))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].is_string());
    let (status, got) = send(qobra(
        &s,
        Method::GET,
        &format!("/v1/imports/{id}"),
        &viewer,
    ))
    .await;
    assert_eq!(status, 200, "viewers read imports: {got}");
    let (status, body) =
        send(qobra(&s, Method::POST, "/v1/tables/nope/records/bulk", &s.key).json(&json!([])))
            .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].is_string());
    let (status, body) = send(
        qobra(
            &s,
            Method::POST,
            &format!("{path}?all=true&debounce=30"),
            &s.key,
        )
        .json(&json!([])),
    )
    .await;
    assert_eq!(status, 400, "debounce is not supported: {body}");
    let (status, body) = send(qobra(&s, Method::POST, path, &s.key).json(&json!({"x": 1}))).await;
    assert_eq!(status, 422, "{body}");
    for bad in ["nope", "00000000-0000-0000-0000-000000000000"] {
        let (status, body) = send(qobra(
            &s,
            Method::GET,
            &format!("/v1/imports/{bad}"),
            &s.key,
        ))
        .await;
        assert_eq!((status, body), (404, json!({"detail": "Import not found"})));
    }
}

// ---------------------------------------------------------------------------------------------
// Commerce Layer
// ---------------------------------------------------------------------------------------------

fn cl(s: &TestServer, method: Method, path: &str, key: &str) -> RequestBuilder {
    // The seed: -H 'Accept: application/vnd.api+json' -H 'Authorization: Bearer your-access-token'
    s.client
        .request(method, s.url(&format!("/compat/commercelayer{path}")))
        .header("Accept", "application/vnd.api+json")
        .header("Authorization", format!("Bearer {key}"))
}

/// A JSON:API request body.
fn cl_body(req: RequestBuilder, body: Value) -> RequestBuilder {
    req.header("Content-Type", "application/vnd.api+json")
        .body(body.to_string())
}

async fn cl_get(s: &TestServer, path: &str) -> (u16, Value) {
    let (status, headers, body) = full(cl(s, Method::GET, path, &s.key)).await;
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/vnd.api+json"),
        "{path}"
    );
    (status, body)
}

/// The numbers of the imports of a list answer, in order.
fn cl_numbers(w: &World, body: &Value) -> Vec<usize> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {body}"))
        .iter()
        .map(|r| w.number_of(r["id"].as_str().unwrap()))
        .collect()
}

/// The seed's attributes, plus `format` (which it lists as sortable).
const CL_ATTRIBUTES: [&str; 22] = [
    "resource_type",
    "format",
    "parent_resource_id",
    "status",
    "started_at",
    "completed_at",
    "interrupted_at",
    "inputs",
    "inputs_size",
    "errors_count",
    "warnings_count",
    "destroyed_count",
    "processed_count",
    "errors_log",
    "warnings_log",
    "cleanup_records",
    "attachment_url",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
];

fn assert_cl_resource(s: &TestServer, r: &Value) {
    let id = r["id"].as_str().expect("id");
    assert_eq!(
        keys_of(r),
        set(&["id", "type", "links", "attributes", "relationships", "meta"])
    );
    assert_eq!(r["type"], "imports");
    let self_link = format!("{}/compat/commercelayer/api/imports/{id}", s.base);
    assert_eq!(r["links"], json!({"self": self_link}));
    assert_eq!(
        r["relationships"],
        json!({"events": {"links": {
            "self": format!("{self_link}/relationships/events"),
            "related": format!("{self_link}/events"),
        }}})
    );
    assert!(["test", "live"].contains(&r["meta"]["mode"].as_str().unwrap()));
    let a = &r["attributes"];
    assert_eq!(keys_of(a), set(&CL_ATTRIBUTES));
    assert!(a["resource_type"].is_string());
    assert!(["json", "csv"].contains(&a["format"].as_str().unwrap()));
    assert!(
        ["pending", "in_progress", "interrupted", "completed"]
            .contains(&a["status"].as_str().unwrap())
    );
    for t in ["started_at", "completed_at", "interrupted_at"] {
        assert!(a[t].is_null() || is_millis_time(&a[t]), "{t}: {a}");
    }
    for t in ["created_at", "updated_at"] {
        assert!(is_millis_time(&a[t]), "{t}: {a}");
    }
    assert!(a["inputs_size"].is_null() || a["inputs_size"].is_u64());
    for n in [
        "errors_count",
        "warnings_count",
        "destroyed_count",
        "processed_count",
    ] {
        assert!(a[n].is_u64(), "{n}: {a}");
    }
    assert!(a["errors_log"].is_object() && a["warnings_log"].is_object());
    assert!(a["cleanup_records"].is_boolean());
    assert!(a["metadata"].is_object());
    assert!(a["reference"].is_null() || a["reference"].is_string());
}

#[tokio::test]
async fn commercelayer_lists_imports_as_the_seed_shows() {
    let w = world().await;
    let s = &w.s;
    // The seed's request, trailing slash included.
    let (status, body) = cl_get(s, "/api/imports/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys_of(&body), set(&["data", "meta", "links"]));
    assert_eq!(body["meta"], json!({"record_count": 8, "page_count": 1}));
    let base = format!("{}/compat/commercelayer/api/imports", s.base);
    assert_eq!(
        body["links"],
        json!({
            "first": format!("{base}?page[number]=1&page[size]=10"),
            "last": format!("{base}?page[number]=1&page[size]=10"),
        })
    );
    assert_eq!(
        cl_numbers(&w, &body),
        [8, 7, 6, 5, 4, 3, 2, 1],
        "newest first"
    );
    for r in body["data"].as_array().unwrap() {
        assert_cl_resource(s, r);
    }
    let attrs = |n: usize| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == w.id(n))
            .unwrap()["attributes"]
            .clone()
    };
    let statuses: Vec<Value> = (1..=8).map(|n| attrs(n)["status"].clone()).collect();
    assert_eq!(
        statuses,
        [
            "completed",
            "completed",
            "interrupted",
            "interrupted",
            "interrupted",
            "pending",
            "interrupted",
            "in_progress"
        ]
    );
    let one = attrs(1);
    assert_eq!(one["resource_type"], "companies");
    assert_eq!(one["format"], "csv");
    assert_eq!(one["reference"], "REF-1");
    assert_eq!(one["reference_origin"], "crm");
    assert_eq!(one["metadata"], json!({"batch": 1}));
    assert_eq!(one["inputs_size"], 3);
    assert_eq!(one["processed_count"], 3);
    assert_eq!(one["errors_log"], json!({}));
    assert_eq!(one["interrupted_at"], Value::Null);
    assert!(is_millis_time(&one["completed_at"]));
    // Row errors keyed by the rejected input's identifier (its primary key).
    let two = attrs(2);
    assert_eq!(two["errors_count"], 1);
    let log = &two["errors_log"];
    assert_eq!(keys_of(log), set(&["1"]), "{log}");
    assert!(
        log["1"]["amount"][0].as_str().unwrap().contains("AAAAA"),
        "{log}"
    );
    // Interrupted imports say when.
    for n in [3, 4, 5, 7] {
        assert!(is_millis_time(&attrs(n)["interrupted_at"]), "import {n}");
    }
    assert_eq!(attrs(6)["started_at"], Value::Null);
    assert_eq!(attrs(6)["completed_at"], Value::Null);
    assert!(is_millis_time(&attrs(8)["started_at"]));
}

#[tokio::test]
async fn commercelayer_pages_across_several_pages_with_absolute_links() {
    let w = world().await;
    let s = &w.s;
    let (status, first) = cl_get(s, "/api/imports?page[size]=3").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["meta"], json!({"record_count": 8, "page_count": 3}));
    let base = format!("{}/compat/commercelayer/api/imports", s.base);
    assert_eq!(
        first["links"]["first"],
        format!("{base}?page[number]=1&page[size]=3")
    );
    assert_eq!(
        first["links"]["next"],
        format!("{base}?page[number]=2&page[size]=3")
    );
    assert_eq!(
        first["links"]["last"],
        format!("{base}?page[number]=3&page[size]=3")
    );
    assert!(first["links"].get("prev").is_none());
    // Following `next` from page to page visits every import once, in order.
    let mut seen = cl_numbers(&w, &first);
    let mut next = first["links"]["next"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(url) = next {
        let relative = url
            .strip_prefix(&format!("{}/compat/commercelayer", s.base))
            .unwrap();
        let (_, page) = cl_get(s, relative).await;
        assert!(page["links"]["prev"].is_string());
        seen.extend(cl_numbers(&w, &page));
        next = page["links"]["next"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, [8, 7, 6, 5, 4, 3, 2, 1]);
    // Past the end: an empty page.
    let (_, past) = cl_get(s, "/api/imports?page[number]=4&page[size]=3").await;
    assert_eq!(past["data"], json!([]));
    assert_eq!(past["meta"]["record_count"], 8);
    // Links keep the sort and filters.
    let (_, filtered) = cl_get(
        s,
        "/api/imports?page[size]=1&sort=created_at&filter[q][status_eq]=interrupted",
    )
    .await;
    assert_eq!(
        filtered["meta"],
        json!({"record_count": 4, "page_count": 4})
    );
    assert_eq!(
        filtered["links"]["next"],
        format!(
            "{base}?page[number]=2&page[size]=1&sort=created_at&filter[q][status_eq]=interrupted"
        )
    );
    assert_eq!(cl_numbers(&w, &filtered), [3]);
}

#[tokio::test]
async fn commercelayer_sorts_by_the_documented_fields() {
    let w = world().await;
    let s = &w.s;
    let numbers = |body: &Value| cl_numbers(&w, body);
    let (_, body) = cl_get(s, "/api/imports?sort=created_at").await;
    assert_eq!(numbers(&body), [1, 2, 3, 4, 5, 6, 7, 8]);
    let (_, body) = cl_get(s, "/api/imports?sort=-id").await;
    assert_eq!(numbers(&body), [8, 7, 6, 5, 4, 3, 2, 1]);
    // Status sorts by Commerce Layer's names: completed, in_progress, interrupted, pending.
    let (_, body) = cl_get(s, "/api/imports?sort=status,created_at").await;
    assert_eq!(numbers(&body), [1, 2, 8, 3, 4, 5, 7, 6]);
    let (_, body) = cl_get(s, "/api/imports?sort=-status,-created_at").await;
    assert_eq!(numbers(&body), [6, 7, 5, 4, 3, 8, 2, 1]);
    let (_, body) = cl_get(s, "/api/imports?sort=-errors_count,created_at").await;
    assert_eq!(numbers(&body)[0], 2);
    let (_, body) = cl_get(s, "/api/imports?sort=-processed_count,created_at").await;
    let counts: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attributes"]["processed_count"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|p| p[0] >= p[1]), "{counts:?}");
    // Nulls first ascending: imports that have not started come first.
    let (_, body) = cl_get(s, "/api/imports?sort=started_at,created_at").await;
    assert_eq!(numbers(&body)[..3], [4, 6, 7], "{body}");
    let (_, body) = cl_get(s, "/api/imports?sort=reference,created_at").await;
    assert_eq!(numbers(&body)[5..], [1, 2, 6]);
    // Every documented field is accepted.
    for field in [
        "resource_type",
        "format",
        "parent_resource_id",
        "status",
        "started_at",
        "completed_at",
        "interrupted_at",
        "inputs_size",
        "errors_count",
        "warnings_count",
        "destroyed_count",
        "processed_count",
        "attachment_url",
        "id",
        "created_at",
        "updated_at",
        "reference",
        "reference_origin",
    ] {
        for sort in [field.to_owned(), format!("-{field}")] {
            let (status, body) = cl_get(s, &format!("/api/imports?sort={sort}")).await;
            assert_eq!(status, 200, "{sort}: {body}");
            assert_eq!(body["meta"]["record_count"], 8, "{sort}");
        }
    }
}

/// The numbers of the world's imports a Commerce Layer filter query keeps, in order (one page
/// holds them all).
async fn cl_filtered(w: &World, q: String) -> Vec<usize> {
    let path = format!("/api/imports?sort=created_at&page[size]=25&{q}");
    let (status, body) = cl_get(&w.s, &path).await;
    assert_eq!(status, 200, "{path}: {body}");
    let mut n = cl_numbers(w, &body);
    n.sort();
    n
}

#[tokio::test]
async fn commercelayer_filters_with_ransack_matchers() {
    let w = &world().await;
    let filtered = |q: String| cl_filtered(w, q);
    let f = |k: &str, v: &str| format!("filter[q][{k}]={v}");
    assert_eq!(filtered(f("status_eq", "completed")).await, [1, 2]);
    assert_eq!(
        filtered(f("status_not_eq", "interrupted")).await,
        [1, 2, 6, 8]
    );
    assert_eq!(
        filtered(f("status_in", "pending,in_progress")).await,
        [6, 8]
    );
    assert_eq!(
        filtered(f("status_not_in", "interrupted,completed")).await,
        [6, 8]
    );
    assert_eq!(filtered(f("status_start", "in")).await, [3, 4, 5, 7, 8]);
    assert_eq!(filtered(f("status_cont", "pen")).await, [6]);
    // Counts as the native API shows them.
    let numbers_where = |pred: &dyn Fn(&Value) -> bool| -> Vec<usize> {
        (1..=8).filter(|n| pred(&w.import(*n)["counts"])).collect()
    };
    let with_errors = numbers_where(&|c| c["invalid"].as_u64() > Some(0));
    assert!(with_errors.contains(&2));
    assert_eq!(filtered(f("errors_count_gt", "0")).await, with_errors);
    assert_eq!(
        filtered(f("errors_count_lteq", "0")).await,
        numbers_where(&|c| c["invalid"] == 0)
    );
    assert_eq!(filtered(f("processed_count_gteq", "3")).await, [1, 2]);
    assert_eq!(
        filtered(f("inputs_size_null", "true")).await,
        numbers_where(&|c| c["inputs"].is_null())
    );
    assert_eq!(filtered(f("reference_eq", "REF-1")).await, [1]);
    assert_eq!(filtered(f("reference_start", "REF")).await, [1, 2, 6]);
    assert_eq!(filtered(f("reference_end", "-2")).await, [2]);
    assert_eq!(filtered(f("reference_cont", "F-Q")).await, [6]);
    assert_eq!(filtered(f("reference_null", "true")).await, [3, 4, 5, 7, 8]);
    assert_eq!(filtered(f("reference_not_null", "true")).await, [1, 2, 6]);
    assert_eq!(filtered(f("reference_origin_eq", "crm")).await, [1]);
    assert_eq!(filtered(f("completed_at_null", "true")).await, [6, 8]);
    assert_eq!(
        filtered(f("interrupted_at_null", "false")).await,
        [3, 4, 5, 7]
    );
    assert_eq!(filtered(f("started_at_null", "true")).await, [4, 6, 7]);
    assert_eq!(
        filtered(f("resource_type_eq", "companies")).await,
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        filtered(f("resource_type_eq", "opportunities")).await,
        Vec::<usize>::new()
    );
    assert_eq!(
        filtered(f("parent_resource_id_null", "true")).await.len(),
        8
    );
    assert_eq!(
        filtered(f("parent_resource_id_eq", "1")).await,
        Vec::<usize>::new()
    );
    assert_eq!(
        filtered(f("id_in", &format!("{},{}", w.id(3), w.id(5)))).await,
        [3, 5]
    );
    assert_eq!(filtered(f("id_eq", &w.id(4))).await, [4]);
    let sixth = w.import(6)["created_at"].as_str().unwrap().to_owned();
    assert_eq!(filtered(f("created_at_gteq", &sixth)).await, [6, 7, 8]);
    assert_eq!(filtered(f("created_at_lt", &sixth)).await, [1, 2, 3, 4, 5]);
    assert_eq!(
        filtered(f("updated_at_gt", "2000-01-01T00:00:00Z"))
            .await
            .len(),
        8
    );
    // Conditions combine.
    assert_eq!(
        filtered(format!(
            "{}&{}",
            f("status_eq", "completed"),
            f("errors_count_eq", "0")
        ))
        .await,
        [1]
    );
}

#[tokio::test]
async fn commercelayer_filters_with_plain_dates_attribute_combinations_and_every_matcher() {
    let w = &world().await;
    let filtered = |q: String| cl_filtered(w, q);
    let f = |k: &str, v: &str| format!("filter[q][{k}]={v}");
    let all = [1, 2, 3, 4, 5, 6, 7, 8];
    // Plain dates, as the SDK's README writes them, and date-times without an offset.
    assert_eq!(filtered(f("created_at_gt", "2018-01-01")).await, all);
    assert_eq!(
        filtered(f("created_at_lt", "2018-01-01")).await,
        Vec::<usize>::new()
    );
    assert_eq!(
        filtered(f("created_at_gteq_lt", "2018-01-01,2999-12-31")).await,
        all
    );
    assert_eq!(filtered(f("updated_at_gt", "2018-01-01 12:00")).await, all);
    // Attributes combined with OR (the README's example) and with AND.
    assert_eq!(
        filtered(f("updated_at_or_created_at_gt", "2019-10-10")).await,
        all
    );
    assert_eq!(
        filtered(f("reference_or_reference_origin_eq", "crm")).await,
        [1]
    );
    assert_eq!(
        filtered(f("reference_or_reference_origin_eq", "REF-2")).await,
        [2]
    );
    assert_eq!(
        filtered(f("reference_and_reference_origin_present", "true")).await,
        [1]
    );
    assert_eq!(
        filtered(f("started_at_or_completed_at_null", "true")).await,
        [4, 6, 7, 8]
    );
    // The other matchers.
    assert_eq!(filtered(f("reference_not_cont", "-Q")).await, [1, 2]);
    assert_eq!(filtered(f("reference_i_cont", "ref-q")).await, [6]);
    assert_eq!(filtered(f("reference_not_i_cont", "ref-q")).await, [1, 2]);
    assert_eq!(filtered(f("reference_matches", "ref-_")).await, [1, 2, 6]);
    assert_eq!(filtered(f("reference_matches", "%-2")).await, [2]);
    assert_eq!(filtered(f("reference_does_not_match", "%1")).await, [2, 6]);
    assert_eq!(filtered(f("reference_not_start", "REF-Q")).await, [1, 2]);
    assert_eq!(filtered(f("reference_not_end", "-1")).await, [2, 6]);
    assert_eq!(filtered(f("reference_eq_any", "REF-1,REF-Q")).await, [1, 6]);
    assert_eq!(filtered(f("reference_cont_all", "REF,1")).await, [1]);
    assert_eq!(
        filtered(f("reference_not_eq_all", "REF-1,REF-2")).await,
        [6]
    );
    assert_eq!(
        filtered(f("reference_eq_or_null", "REF-1")).await,
        [1, 3, 4, 5, 7, 8]
    );
    assert_eq!(
        filtered(f("reference_in_or_null", "REF-2,REF-Q")).await,
        [2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        filtered(f("reference_blank", "true")).await,
        [3, 4, 5, 7, 8]
    );
    assert_eq!(filtered(f("status_matches", "%PROG%")).await, [8]);
    assert_eq!(filtered(f("status_in_or_null", "pending")).await, [6]);
    assert_eq!(
        filtered(f("status_blank", "true")).await,
        Vec::<usize>::new()
    );
    assert_eq!(filtered(f("parent_resource_id_blank", "true")).await, all);
    assert_eq!(
        filtered(f("parent_resource_id_or_reference_eq", "REF-1")).await,
        [1]
    );
    assert_eq!(
        filtered(f("processed_count_gt_lteq", "0,3")).await,
        [1, 3, 5, 8]
    );
    assert_eq!(
        filtered(f("processed_count_lt_any", "1,2")).await,
        filtered(f("processed_count_lt", "2")).await
    );
}

#[tokio::test]
async fn commercelayer_refuses_unknown_sorts_filters_and_pages_with_400() {
    let w = world().await;
    let s = &w.s;
    let cases = [
        ("sort=bogus", "INVALID_SORT_CRITERIA", "sort"),
        ("sort=-bogus", "INVALID_SORT_CRITERIA", "sort"),
        ("sort=created_at,name", "INVALID_SORT_CRITERIA", "sort"),
        (
            "filter[q][bogus_eq]=1",
            "FILTER_NOT_ALLOWED",
            "filter[q][bogus_eq]",
        ),
        (
            "filter[q][status_like]=x",
            "FILTER_NOT_ALLOWED",
            "filter[q][status_like]",
        ),
        (
            "filter[q][reference_or_bogus_eq]=x",
            "FILTER_NOT_ALLOWED",
            "filter[q][reference_or_bogus_eq]",
        ),
        (
            "filter[q][reference_true]=1",
            "FILTER_NOT_ALLOWED",
            "filter[q][reference_true]",
        ),
        (
            "filter[q][created_at_gt_lt]=2018-01-01",
            "INVALID_FILTER_VALUE",
            "filter[q][created_at_gt_lt]",
        ),
        (
            "filter[q][format_eq]=csv",
            "FILTER_NOT_ALLOWED",
            "filter[q][format_eq]",
        ),
        (
            "filter[q][events_name_eq]=x",
            "FILTER_NOT_ALLOWED",
            "filter[q][events_name_eq]",
        ),
        (
            "filter[q][errors_count_gt]=many",
            "INVALID_FILTER_VALUE",
            "filter[q][errors_count_gt]",
        ),
        (
            "filter[q][created_at_gt]=yesterday",
            "INVALID_FILTER_VALUE",
            "filter[q][created_at_gt]",
        ),
        (
            "filter[q][reference_null]=maybe",
            "INVALID_FILTER_VALUE",
            "filter[q][reference_null]",
        ),
        ("filter[status]=x", "PARAM_NOT_ALLOWED", "filter[status]"),
        ("page[size]=26", "INVALID_PAGE_VALUE", "page[size]"),
        ("page[size]=0", "INVALID_PAGE_VALUE", "page[size]"),
        ("page[number]=0", "INVALID_PAGE_VALUE", "page[number]"),
        ("include=events", "INVALID_INCLUDE", "include"),
        (
            "fields[imports]=status,bogus",
            "INVALID_FIELD",
            "fields[imports]",
        ),
        ("foo=bar", "PARAM_NOT_ALLOWED", "foo"),
    ];
    for (query, code, parameter) in cases {
        let (status, body) = cl_get(s, &format!("/api/imports?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let errors = body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{body}");
        assert_eq!(
            keys_of(&errors[0]),
            set(&["title", "detail", "code", "status", "source"])
        );
        assert_eq!(errors[0]["code"], code, "{query}: {body}");
        assert_eq!(errors[0]["status"], "400");
        assert_eq!(
            errors[0]["source"],
            json!({"parameter": parameter}),
            "{query}"
        );
    }
    // Sparse fieldsets keep only the named attributes.
    let (status, body) = cl_get(s, "/api/imports?fields[imports]=status,errors_count").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys_of(&body["data"][0]["attributes"]),
        set(&["status", "errors_count"])
    );
    assert!(body["data"][0].get("relationships").is_none());
}

#[tokio::test]
async fn commercelayer_answers_auth_failures_as_json_api_errors() {
    let w = world().await;
    let s = &w.s;
    let url = s.url("/compat/commercelayer/api/imports");
    let (status, headers, body) = full(
        s.client
            .get(&url)
            .header("Accept", "application/vnd.api+json"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(headers["content-type"], "application/vnd.api+json");
    assert_eq!(
        body,
        json!({"errors": [{
            "title": "Invalid token",
            "detail": "The access token you provided is invalid.",
            "code": "INVALID_TOKEN",
            "status": "401",
            "source": {"header": "Authorization"}
        }]})
    );
    let (status, body) = send(cl(
        s,
        Method::GET,
        "/api/imports",
        "intake_not_a_key_000000",
    ))
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["code"], "INVALID_TOKEN");
    // A viewer reads but does not create or delete.
    let viewer = s.create_key("viewer").await;
    let (status, _) = send(cl(s, Method::GET, "/api/imports", &viewer)).await;
    assert_eq!(status, 200);
    let (status, body) = send(cl_body(
        cl(s, Method::POST, "/api/imports", &viewer),
        json!({"data": {"type": "imports", "attributes": {"resource_type": "companies", "inputs": [{"id": 1}]}}}),
    ))
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    let member = s.create_key("member").await;
    let (status, body) = send(cl(
        s,
        Method::DELETE,
        &format!("/api/imports/{}", w.id(1)),
        &member,
    ))
    .await;
    assert_eq!(status, 401, "deleting needs an admin key: {body}");
    let (status, body) = send(cl(
        s,
        Method::GET,
        &format!("/api/imports/{}", uuid::Uuid::now_v7()),
        &s.key,
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["code"], "RECORD_NOT_FOUND");
    let (status, body) = send(cl(s, Method::GET, "/api/nope", &s.key)).await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["status"], "404");
}

#[tokio::test]
async fn commercelayer_creates_reads_updates_and_deletes_an_import() {
    let s = TestServer::start().await;
    s.create_table(companies()).await;
    let (status, headers, body) = full(cl_body(
        cl(&s, Method::POST, "/api/imports", &s.key),
        json!({"data": {"type": "imports", "attributes": {
            "resource_type": "companies",
            "format": "json",
            "inputs": [{"id": 1, "name": "Acme"}, {"id": "x", "name": "Bad"}, {"id": 3, "name": "Initech"}],
            "reference": "ANY-EXTERNAL-REFERENCE",
            "reference_origin": "ANY-ORIGIN",
            "metadata": {"foo": "bar"}
        }}}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["content-type"], "application/vnd.api+json");
    assert_cl_resource(&s, &body["data"]);
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    s.wait_done(&id).await;

    let (status, body) = cl_get(&s, &format!("/api/imports/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_cl_resource(&s, &body["data"]);
    let a = &body["data"]["attributes"];
    assert_eq!(a["status"], "completed");
    assert_eq!(a["format"], "json");
    assert_eq!(a["inputs_size"], 3);
    assert_eq!(a["processed_count"], 3);
    assert_eq!(a["errors_count"], 1);
    assert_eq!(keys_of(&a["errors_log"]), set(&["x"]), "{a}");
    assert!(a["errors_log"]["x"]["id"][0].is_string(), "{a}");
    assert_eq!(a["reference"], "ANY-EXTERNAL-REFERENCE");
    assert_eq!(a["metadata"], json!({"foo": "bar"}));
    assert_eq!(s.all_records("companies").await.len(), 2);

    // include is refused on one import as on the list.
    let (status, body) = cl_get(&s, &format!("/api/imports/{id}?include=events")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["code"], "INVALID_INCLUDE");
    assert_eq!(body["errors"][0]["source"], json!({"parameter": "include"}));

    // Its events, and their linkage.
    let (status, events) = cl_get(&s, &format!("/api/imports/{id}/events")).await;
    assert_eq!(status, 200, "{events}");
    let names: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"import.queued"), "{names:?}");
    assert!(
        names
            .last()
            .is_some_and(|n| n.starts_with("import.partially_complete")),
        "{names:?}"
    );
    assert_eq!(events["data"][0]["type"], "events");
    assert_eq!(events["meta"]["record_count"], names.len());
    let (status, links) = cl_get(&s, &format!("/api/imports/{id}/relationships/events")).await;
    assert_eq!(status, 200);
    assert_eq!(links["data"].as_array().unwrap().len(), names.len());
    assert_eq!(links["data"][0]["type"], "events");

    // PATCH changes labels; interrupting an ended import is refused.
    let (status, body) = send(cl_body(
        cl(&s, Method::PATCH, &format!("/api/imports/{id}"), &s.key),
        json!({"data": {"type": "imports", "id": id, "attributes": {"reference": "NEW", "metadata": {"a": 1}}}}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["attributes"]["reference"], "NEW");
    assert_eq!(body["data"]["attributes"]["reference_origin"], "ANY-ORIGIN");
    assert_eq!(body["data"]["attributes"]["metadata"], json!({"a": 1}));
    let (status, body) = send(cl_body(
        cl(&s, Method::PATCH, &format!("/api/imports/{id}"), &s.key),
        json!({"data": {"type": "imports", "id": id, "attributes": {"_interrupt": true}}}),
    ))
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["code"], "VALIDATION_ERROR");
    assert_eq!(
        body["errors"][0]["source"],
        json!({"pointer": "/data/attributes/_interrupt"})
    );
    let (status, body) = send(cl_body(
        cl(&s, Method::PATCH, &format!("/api/imports/{id}"), &s.key),
        json!({"data": {"type": "imports", "id": "other", "attributes": {}}}),
    ))
    .await;
    assert_eq!(status, 400, "{body}");

    // CSV inputs.
    let (status, body) = send(cl_body(
        cl(&s, Method::POST, "/api/imports", &s.key),
        json!({"data": {"type": "imports", "attributes": {
            "resource_type": "companies", "format": "csv", "inputs": "id,name\n7,Seven\n"
        }}}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let csv_id = body["data"]["id"].as_str().unwrap().to_owned();
    s.wait_done(&csv_id).await;
    let (_, body) = cl_get(&s, &format!("/api/imports/{csv_id}")).await;
    assert_eq!(body["data"]["attributes"]["format"], "csv");
    assert_eq!(body["data"]["attributes"]["status"], "completed");

    // Refused creations.
    let bad = [
        (
            json!({"resource_type": "nope", "inputs": [{"id": 1}]}),
            422,
            "/data/attributes/resource_type",
        ),
        (
            json!({"inputs": [{"id": 1}]}),
            422,
            "/data/attributes/resource_type",
        ),
        (
            json!({"resource_type": "companies", "inputs": []}),
            422,
            "/data/attributes/inputs",
        ),
        (
            json!({"resource_type": "companies", "inputs": [{"id": 1}], "format": "xml"}),
            422,
            "/data/attributes/format",
        ),
        (
            json!({"resource_type": "companies", "inputs": [{"id": 1}], "parent_resource_id": "1"}),
            422,
            "/data/attributes/parent_resource_id",
        ),
        (
            json!({"resource_type": "companies", "inputs": [{"id": 1}], "color": "red"}),
            400,
            "/data/attributes/color",
        ),
    ];
    for (attributes, code, pointer) in bad {
        let (status, body) = send(cl_body(
            cl(&s, Method::POST, "/api/imports", &s.key),
            json!({"data": {"type": "imports", "attributes": attributes}}),
        ))
        .await;
        assert_eq!(status, code, "{attributes}: {body}");
        assert_eq!(body["errors"][0]["source"]["pointer"], pointer, "{body}");
    }
    let (status, _) = send(
        cl(&s, Method::POST, "/api/imports", &s.key)
            .header("Content-Type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 415);

    // DELETE forgets the import; its records stay.
    let (status, body) = plain(cl(
        &s,
        Method::DELETE,
        &format!("/api/imports/{id}"),
        &s.key,
    ))
    .await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, _) = cl_get(&s, &format!("/api/imports/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(s.all_records("companies").await.len(), 3);
}

#[tokio::test]
async fn commercelayer_honours_skip_errors_as_the_skip_policy_and_false_as_the_ten_percent_threshold()
 {
    let s = TestServer::start().await;
    s.create_table(companies()).await;
    let create = |skip: Value, inputs: Value| {
        cl_body(
            cl(&s, Method::POST, "/api/imports", &s.key),
            json!({"data": {"type": "imports", "attributes": {
                "resource_type": "companies", "inputs": inputs, "skip_errors": skip
            }}}),
        )
    };
    let inputs = json!([{"id": 1, "name": "Acme"}, {"id": "x", "name": "Bad"}, {"id": 3, "name": "Initech"}]);
    let (status, body) = send(create(json!(true), inputs.clone())).await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let native = s.wait_done(&id).await;
    assert_eq!(native["on_error"], "skip");
    let (_, body) = cl_get(&s, &format!("/api/imports/{id}")).await;
    assert_eq!(body["data"]["attributes"]["status"], "completed");
    assert_eq!(body["data"]["attributes"]["errors_count"], 1);
    assert_eq!(s.all_records("companies").await.len(), 2);

    // One error in three passes 10%: the import is interrupted and writes nothing.
    let (status, body) = send(create(
        json!(false),
        json!([{"id": 4, "name": "Four"}, {"id": "y", "name": "Bad"}, {"id": 5, "name": "Five"}]),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let native = s.wait_done(&id).await;
    assert_eq!(native["on_error"], "abort");
    let (_, body) = cl_get(&s, &format!("/api/imports/{id}")).await;
    assert_eq!(body["data"]["attributes"]["status"], "interrupted");
    assert_eq!(s.all_records("companies").await.len(), 2);

    let (status, body) = send(create(json!("yes"), inputs)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["errors"][0]["source"],
        json!({"pointer": "/data/attributes/skip_errors"})
    );
}

#[tokio::test]
async fn commercelayer_interrupts_a_pending_import_and_will_not_delete_a_running_one() {
    let w = world().await;
    let s = &w.s;
    let (status, body) = send(cl(
        s,
        Method::DELETE,
        &format!("/api/imports/{}", w.id(8)),
        &s.key,
    ))
    .await;
    assert_eq!(status, 423, "{body}");
    assert_eq!(body["errors"][0]["code"], "LOCKED");
    // A queued import and a two-step one waiting for its file are pending: locked too.
    let (status, pending) = send(
        s.post("/v1/imports")
            .json(&json!({"table": "companies", "start": false, "file_name": "big.csv"})),
    )
    .await;
    assert_eq!(status, 202, "{pending}");
    assert_eq!(pending["status"], "new");
    let (_, body) = cl_get(
        s,
        &format!("/api/imports/{}", pending["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(body["data"]["attributes"]["status"], "pending");
    for id in [w.id(6), pending["id"].as_str().unwrap().to_owned()] {
        let (status, body) =
            send(cl(s, Method::DELETE, &format!("/api/imports/{id}"), &s.key)).await;
        assert_eq!(status, 423, "{body}");
        assert_eq!(body["errors"][0]["code"], "LOCKED");
        assert_eq!(body["errors"][0]["source"], json!({"parameter": "id"}));
    }
    let id = w.id(6);
    let (status, body) = send(cl_body(
        cl(s, Method::PATCH, &format!("/api/imports/{id}"), &s.key),
        json!({"data": {"type": "imports", "id": id, "attributes": {"_interrupt": true}}}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["attributes"]["status"], "interrupted");
    assert!(is_millis_time(
        &body["data"]["attributes"]["interrupted_at"]
    ));
    let (_, native) = send(s.get(&format!("/v1/imports/{id}"))).await;
    assert_eq!(native["status"], "cancelled");
}

#[tokio::test]
async fn commercelayer_delete_of_a_replace_import_leaves_no_undo_copy_behind() {
    let s = TestServer::start().await;
    s.create_table(json!({
        "name": "people",
        "columns": [{"name": "id", "type": "integer", "required": true}],
        "primary_key": ["id"]
    }))
    .await;
    for query in ["table=people", "table=people&mode=replace"] {
        let (status, created) = s.upload(query, "text/csv", "id\n1\n2\n").await;
        assert_eq!(status, 202, "{created}");
        let done = s.wait_done(created["id"].as_str().expect("id")).await;
        assert_eq!(done["status"], "complete", "{done}");
    }
    let copies = || {
        let sql = if common::on_postgres() {
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'default'
             AND tablename = 'people__undo_2'"
        } else {
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'
             AND name = 'default__people__undo_2'"
        };
        common::sql_rows(&s.data_dir(), sql)[0][0].clone()
    };
    assert_eq!(
        copies(),
        Some("1".to_owned()),
        "the replace kept its undo copy"
    );
    let (_, list) = send(s.get("/v1/imports?limit=10")).await;
    let id = list["data"]
        .as_array()
        .expect("imports")
        .iter()
        .find(|i| i["number"] == 2)
        .and_then(|i| i["id"].as_str())
        .expect("the replace import")
        .to_owned();
    let (status, body) = plain(cl(
        &s,
        Method::DELETE,
        &format!("/api/imports/{id}"),
        &s.key,
    ))
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        copies(),
        Some("0".to_owned()),
        "the undo copy went with the import"
    );
}

// ---------------------------------------------------------------------------------------------
// Fleetio
// ---------------------------------------------------------------------------------------------

fn fleetio(s: &TestServer, query: &str, key: &str, account: &str) -> RequestBuilder {
    // Fleetio's documented headers: Authorization: Token <key>, Account-Token: <account>.
    s.client
        .get(s.url(&format!("/compat/fleetio/api/v1/imports{query}")))
        .header("Authorization", format!("Token {key}"))
        .header("Account-Token", account)
}

async fn fleetio_get(s: &TestServer, query: &str) -> (u16, Value) {
    send(fleetio(s, query, &s.key, "default")).await
}

fn fleetio_ids(body: &Value) -> Vec<i64> {
    body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records: {body}"))
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn fleetio_lists_imports_with_integer_ids_and_its_ten_statuses() {
    let w = world().await;
    let s = &w.s;
    let (status, body) = fleetio_get(s, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys_of(&body),
        set(&[
            "start_cursor",
            "next_cursor",
            "per_page",
            "estimated_remaining_count",
            "filtered_by",
            "sorted_by",
            "records"
        ])
    );
    assert_eq!(body["start_cursor"], Value::Null);
    assert_eq!(body["next_cursor"], Value::Null);
    assert_eq!(body["per_page"], 50);
    assert_eq!(body["estimated_remaining_count"], 8);
    assert_eq!(body["filtered_by"], json!([]));
    assert_eq!(body["sorted_by"], json!([{"id": "desc"}]));
    assert_eq!(fleetio_ids(&body), [8, 7, 6, 5, 4, 3, 2, 1]);
    let statuses = [
        "processing",
        "incomplete",
        "queued",
        "rolled_back",
        "unsupported",
        "failed",
        "partially_complete",
        "complete",
    ];
    for (r, expected) in body["records"].as_array().unwrap().iter().zip(statuses) {
        assert_eq!(
            keys_of(r),
            set(&[
                "id",
                "completed_at",
                "file_name",
                "file_size",
                "note",
                "type",
                "status",
                "created_at",
                "updated_at"
            ])
        );
        assert_eq!(r["status"], expected, "{r}");
        let n = r["id"].as_u64().unwrap() as usize;
        assert_eq!(w.import(n)["number"], n as u64);
        assert!(r["file_size"].is_string(), "file_size is a string: {r}");
        assert_eq!(r["type"], "companies");
        assert!(r["created_at"].is_string() && r["updated_at"].is_string());
        if matches!(n, 6 | 8) {
            assert_eq!(r["completed_at"], Value::Null);
        } else {
            assert!(r["completed_at"].is_string(), "{r}");
        }
    }
    let first = body["records"].as_array().unwrap().last().unwrap();
    assert_eq!(first["file_name"], "companies.csv");
    assert_eq!(first["file_size"], COMPANIES_CSV.len().to_string());
    assert_eq!(first["note"], "first load");
}

#[tokio::test]
async fn fleetio_pages_with_cursors_and_counts_what_remains() {
    let w = world().await;
    let s = &w.s;
    let mut pages = Vec::new();
    let mut remaining = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?per_page=3&start_cursor={c}"),
            None => "?per_page=3".to_owned(),
        };
        let (status, body) = fleetio_get(s, &query).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["per_page"], 3);
        assert_eq!(body["start_cursor"].as_str(), cursor.as_deref());
        pages.push(fleetio_ids(&body));
        remaining.push(body["estimated_remaining_count"].as_u64().unwrap());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, vec![vec![8, 7, 6], vec![5, 4, 3], vec![2, 1]]);
    assert_eq!(remaining, [8, 5, 2]);
    // Ascending by creation, two at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?per_page=2&sort[created_at]=asc&start_cursor={c}"),
            None => "?per_page=2&sort[created_at]=asc".to_owned(),
        };
        let (_, body) = fleetio_get(s, &query).await;
        assert_eq!(body["sorted_by"], json!([{"created_at": "asc"}]));
        seen.extend(fleetio_ids(&body));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
    // A cursor of one order is refused with another.
    let (_, first) = fleetio_get(s, "?per_page=2").await;
    let c = first["next_cursor"].as_str().unwrap();
    let (status, body) = fleetio_get(
        s,
        &format!("?per_page=2&sort[created_at]=asc&start_cursor={c}"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["start_cursor"][0].is_string(), "{body}");
}

#[tokio::test]
async fn fleetio_filters_by_status_and_dates_and_sorts() {
    let w = world().await;
    let s = &w.s;
    let (_, body) = fleetio_get(s, "?filter[status][include]=complete").await;
    assert_eq!(fleetio_ids(&body), [1]);
    assert_eq!(
        body["filtered_by"],
        json!([{"status": {"include": "complete"}}])
    );
    let (_, body) = fleetio_get(s, "?filter[status][include]=incomplete").await;
    assert_eq!(fleetio_ids(&body), [7]);
    let (_, body) = fleetio_get(
        s,
        "?filter[status][include]=complete,partially_complete,processing",
    )
    .await;
    assert_eq!(fleetio_ids(&body), [8, 2, 1]);
    let sixth = w.import(6)["created_at"].as_str().unwrap().to_owned();
    let (status, body) = fleetio_get(s, &format!("?filter[created_at][gte]={sixth}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fleetio_ids(&body), [8, 7, 6]);
    assert_eq!(body["filtered_by"], json!([{"created_at": {"gte": sixth}}]));
    let (_, body) = fleetio_get(s, &format!("?filter[created_at][lt]={sixth}&sort[id]=asc")).await;
    assert_eq!(fleetio_ids(&body), [1, 2, 3, 4, 5]);
    assert_eq!(body["sorted_by"], json!([{"id": "asc"}]));
    let (_, body) = fleetio_get(s, "?filter[updated_at][gt]=2000-01-01").await;
    assert_eq!(fleetio_ids(&body).len(), 8);
    let (_, body) = fleetio_get(s, "?filter[updated_at][lte]=2000-01-01T00:00:00Z").await;
    assert_eq!(fleetio_ids(&body), Vec::<i64>::new());
    assert_eq!(body["estimated_remaining_count"], 0);
    let (_, body) = fleetio_get(s, "?sort[updated_at]=desc").await;
    let updated: Vec<String> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["updated_at"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = updated.clone();
    sorted.sort_by(|a, b| {
        let t = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        t(b).cmp(&t(a))
    });
    assert_eq!(updated, sorted);
}

#[tokio::test]
async fn fleetio_refuses_bad_parameters_and_credentials() {
    let w = world().await;
    let s = &w.s;
    for q in [
        "?per_page=1",
        "?per_page=101",
        "?per_page=many",
        "?sort[name]=asc",
        "?sort[id]=up",
        "?filter[status][include]=cancelled",
        "?filter[name][like]=x",
        "?filter[created_at][eq]=2024-01-01",
        "?filter[created_at][lt]=soon",
        "?start_cursor=zz",
        "?page=2",
    ] {
        let (status, body) = fleetio_get(s, q).await;
        assert_eq!(status, 400, "{q}: {body}");
        let errors = body["errors"]
            .as_object()
            .unwrap_or_else(|| panic!("{q}: {body}"));
        assert_eq!(errors.len(), 1);
        assert!(errors.values().all(|v| v[0].is_string()), "{body}");
    }
    let (status, body) = fleetio_get(s, "?per_page=100").await;
    assert_eq!((status, body["per_page"].clone()), (200, json!(100)));
    let (status, body) = fleetio_get(s, "?per_page=2").await;
    assert_eq!((status, fleetio_ids(&body).len()), (200, 2));

    let denied = |status: u16, headers: &reqwest::header::HeaderMap, body: &Value| {
        assert_eq!(status, 401);
        assert_eq!(headers["www-authenticate"], "Token realm=\"Application\"");
        assert_eq!(body, &json!("HTTP Token: Access denied.\n"));
    };
    let (status, headers, body) = full(s.client.get(s.url("/compat/fleetio/api/v1/imports"))).await;
    denied(status, &headers, &body);
    let (status, headers, body) = full(fleetio(s, "", "intake_not_a_key_00000", "default")).await;
    denied(status, &headers, &body);
    let (status, headers, body) = full(
        s.client
            .get(s.url("/compat/fleetio/api/v1/imports"))
            .header("Authorization", format!("Token {}", s.key)),
    )
    .await;
    denied(status, &headers, &body);
    other_workspace(&w.db).await;
    let (status, headers, body) = full(fleetio(s, "", &s.key, "other")).await;
    denied(status, &headers, &body);
    let (status, headers, body) = full(
        s.client
            .get(s.url("/compat/fleetio/api/v1/imports"))
            .header("Authorization", format!("Bearer {}", s.key))
            .header("Account-Token", "default"),
    )
    .await;
    denied(status, &headers, &body);
    // The account may be named by id; a viewer key reads.
    let ws = workspace_id(&w.db).await;
    let viewer = s.create_key("viewer").await;
    let (status, body) = send(fleetio(s, "", &viewer, &ws)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        s.client
            .get(s.url("/compat/fleetio/api/v1/imports"))
            .header("Authorization", format!("Token token=\"{}\"", s.key))
            .header("Account-Token", "default"),
    )
    .await;
    assert_eq!(status, 200, "Rails' token=\"...\" form: {body}");
}

// ---------------------------------------------------------------------------------------------
// Rocket.Chat
// ---------------------------------------------------------------------------------------------

fn rocketchat(s: &TestServer, path: &str, user: &str, token: &str) -> RequestBuilder {
    // The seed: -H 'X-User-Id: d26x6zSkaPSe5gCyy' -H 'X-Auth-Token: Zu-Z6eKzIIz7MCCRGeHi29bYkXZCJ4SxFC0JAasqm92'
    s.client
        .get(s.url(&format!("/compat/rocketchat/api/v1/{path}")))
        .header("X-User-Id", user)
        .header("X-Auth-Token", token)
}

#[tokio::test]
async fn rocketchat_reports_the_current_imports_progress_as_the_seed_shows() {
    let w = world().await;
    let s = &w.s;
    let member = s.create_key("member").await;
    let user = key_id(s, &member).await;
    let (status, body) = send(rocketchat(s, "getImportProgress", &user, &member)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys_of(&body),
        set(&["key", "name", "step", "count", "success"])
    );
    assert_eq!(keys_of(&body["count"]), set(&["completed", "total"]));
    // The current import is the newest: the running one.
    assert_eq!(body["key"], "csv");
    assert_eq!(body["name"], "CSV");
    assert_eq!(body["step"], "importer_importing_started");
    assert_eq!(body["count"]["completed"], 1);
    assert!(body["count"]["total"].as_u64().unwrap() >= 1);
    assert_eq!(body["success"], true);

    let (status, body) = send(rocketchat(s, "getCurrentImportOperation", &user, &member)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let op = &body["operation"];
    assert_eq!(op["_id"], w.id(8).as_str());
    assert_eq!(op["status"], "importer_importing_started");
    assert_eq!(op["importerKey"], "csv");
    assert_eq!(op["user"], user.as_str());
    assert!(is_millis_time(&op["ts"]) && is_millis_time(&op["_updatedAt"]));

    // The latest operations, newest first, each step mapped from the import's status.
    let viewer = s.create_key("viewer").await;
    let viewer_id = key_id(s, &viewer).await;
    let (status, body) = send(rocketchat(
        s,
        "getLatestImportOperations",
        &viewer_id,
        &viewer,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let steps: Vec<&str> = body
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "importer_importing_started",
            "importer_import_cancelled",
            "importer_file_loaded",
            "importer_import_cancelled",
            "importer_import_failed",
            "importer_import_failed",
            "importer_done",
            "importer_done"
        ]
    );
    assert_eq!(
        body[7]["count"],
        json!({"total": 3, "completed": 3, "error": 0})
    );
    assert_eq!(body[6]["count"]["error"], 1);
}

#[tokio::test]
async fn rocketchat_answers_its_documented_auth_and_permission_bodies() {
    let w = world().await;
    let s = &w.s;
    let unauthorized = json!({"success": false, "error": "unauthorized"});
    let owner_id = key_id(s, &s.key).await;
    let (status, body) = send(
        s.client
            .get(s.url("/compat/rocketchat/api/v1/getImportProgress")),
    )
    .await;
    assert_eq!((status, body), (401, unauthorized.clone()));
    let (status, body) = send(
        s.client
            .get(s.url("/compat/rocketchat/api/v1/getImportProgress"))
            .header("X-Auth-Token", &s.key),
    )
    .await;
    assert_eq!((status, body), (401, unauthorized.clone()), "no user id");
    let (status, body) = send(rocketchat(
        s,
        "getImportProgress",
        &owner_id,
        "intake_wrong_token_0000",
    ))
    .await;
    assert_eq!((status, body), (401, unauthorized.clone()), "unknown token");
    // A valid token with another key's id.
    let member = s.create_key("member").await;
    let (status, body) = send(rocketchat(s, "getImportProgress", &owner_id, &member)).await;
    assert_eq!(
        (status, body),
        (401, unauthorized.clone()),
        "mismatched user id"
    );
    // A viewer lacks run-import.
    let viewer = s.create_key("viewer").await;
    let viewer_id = key_id(s, &viewer).await;
    let no_permission = json!({
        "success": false,
        "error": "User does not have the permissions required for this action [error-unauthorized]"
    });
    for path in ["getImportProgress", "getCurrentImportOperation"] {
        let (status, body) = send(rocketchat(s, path, &viewer_id, &viewer)).await;
        assert_eq!((status, body), (403, no_permission.clone()), "{path}");
    }
    let (status, _) = send(rocketchat(s, "getImportProgress", &owner_id, &s.key)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn rocketchat_follows_an_import_from_no_operation_to_done() {
    let s = TestServer::start().await;
    let user = key_id(&s, &s.key).await;
    let (status, body) = send(rocketchat(&s, "getImportProgress", &user, &s.key)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["errorType"], "error-operation-not-found");
    let (status, body) = send(rocketchat(&s, "getCurrentImportOperation", &user, &s.key)).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let (status, body) = send(rocketchat(&s, "getLatestImportOperations", &user, &s.key)).await;
    assert_eq!((status, body), (200, json!([])));

    s.create_table(companies()).await;
    let c = csv(
        &s,
        "table=companies&platform=pending-avatars",
        COMPANIES_CSV,
    )
    .await;
    s.wait_done(c["id"].as_str().unwrap()).await;
    let (status, body) = send(rocketchat(&s, "getImportProgress", &user, &s.key)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "key": "pending-avatars",
            "name": "Pending Avatars",
            "step": "importer_done",
            "count": {"completed": 3, "total": 3},
            "success": true
        })
    );
}

#[tokio::test]
async fn rocketchat_steps_never_go_backwards_and_an_ended_import_reports_its_final_count() {
    let (_data, dir, s) = TestServer::start_idle().await;
    s.create_table(companies()).await;
    let user = key_id(&s, &s.key).await;
    let c = csv(&s, "table=companies&on_error=atomic", COMPANIES_CSV).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let progress = || async {
        let (status, body) = send(rocketchat(&s, "getImportProgress", &user, &s.key)).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let step = |import: &str, table: &str, step: &str| {
        common::sql_execute(
            &dir,
            &format!(
                "UPDATE intake_imports SET status = '{import}', step = '{step}' WHERE id = '{id}';
                 UPDATE intake_import_tables SET status = '{table}' WHERE import_id = '{id}';"
            ),
        );
    };
    let mut seen = vec![progress().await["step"].clone()];
    // Claimed by a worker (still marked queued), checking every row, then writing.
    for (import, table, name) in [
        ("processing", "queued", "queued"),
        ("processing", "processing", "validating"),
        ("processing", "processing", "writing"),
        ("processing", "processing", "cleaning_up"),
    ] {
        step(import, table, name);
        seen.push(progress().await["step"].clone());
    }
    assert_eq!(
        seen,
        [
            "importer_file_loaded",
            "importer_preparing_started",
            "importer_preparing_started",
            "importer_importing_started",
            "importer_finishing"
        ]
    );

    // A cancelled import that did not read its whole source reports the rows it got
    // through, not an estimate.
    let now = stored_now();
    common::sql_execute(
        &dir,
        &format!(
            "UPDATE intake_imports SET status = 'cancelled', step = 'done', cancelled_at = '{now}',
             completed_at = '{now}', bytes_read = bytes_total / 4, processed = 1, inputs = NULL
             WHERE id = '{id}';
             UPDATE intake_import_tables SET status = 'cancelled' WHERE import_id = '{id}';"
        ),
    );
    let body = progress().await;
    assert_eq!(body["step"], "importer_import_cancelled");
    assert_eq!(body["count"], json!({"completed": 1, "total": 1}));
}
