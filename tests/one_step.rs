//! The one-step load: `create_table=true` infers a missing table from the whole source, creates
//! it and loads every row, on the backend under test; then real public files, written by people
//! who never heard of Intake, load that way with every row landing.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestServer, send};
use serde_json::{Value, json};

/// Uploads a body with `create_table=true` (and `extra` options), waits for the end.
async fn load(s: &TestServer, table: &str, extra: &str, content_type: &str, body: String) -> Value {
    let query = format!("table={table}&create_table=true{extra}");
    let (status, created) = s.upload(&query, content_type, body).await;
    assert_eq!(status, 202, "create import: {created}");
    s.wait_done(created["id"].as_str().expect("id")).await
}

/// The created table's columns as (name, type, required).
fn columns(import: &Value) -> Vec<(String, String, bool)> {
    import["tables"][0]["created_schema"]["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("no created schema: {import}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_owned(),
                c["type"].as_str().unwrap_or("").to_owned(),
                c["required"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn col(name: &str, ty: &str, required: bool) -> (String, String, bool) {
    (name.to_owned(), ty.to_owned(), required)
}

#[tokio::test]
async fn a_csv_creates_its_table_with_the_narrowest_types_and_loads_every_row() {
    let s = TestServer::start().await;
    let mut body = String::from("Order ID,Customer,Amount,Paid,Day,Country,Score,Ref\n");
    for i in 1..=300 {
        let score = if i % 7 == 0 {
            "NA".to_owned()
        } else {
            i.to_string()
        };
        // Namibia's code in a text column is text; NA in a number column is missing.
        let country = if i % 5 == 0 { "NA" } else { "FR" };
        body.push_str(&format!(
            "{i},Customer {i},{}.{:02},{},2024-01-{:02},{country},{score},0{i}\n",
            i * 3,
            i % 100,
            if i % 2 == 0 { "yes" } else { "no" },
            i % 28 + 1
        ));
    }
    let done = load(&s, "orders", "", "text/csv", body).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["counts"]["created"], 300);
    assert_eq!(done["counts"]["invalid"], 0);
    assert_eq!(
        columns(&done),
        [
            col("order_id", "integer", true),
            col("customer", "string", true),
            col("amount", "decimal", true),
            col("paid", "boolean", true),
            col("day", "date", true),
            col("country", "string", true),
            col("score", "integer", false),
            col("ref", "string", true),
        ]
    );
    let created = &done["tables"][0]["created_schema"];
    assert_eq!(created["primary_key"], json!(["order_id"]));
    assert!(
        created["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["unique"] == false),
        "only the key is unique: {created}"
    );
    assert_eq!(done["tables"][0]["missing_tokens"], json!(["NA"]));
    let records = s.all_records("orders").await;
    assert_eq!(records.len(), 300);
    assert_eq!(records[4]["country"], "NA", "text keeps NA: {}", records[4]);
    assert_eq!(
        records[6]["score"],
        Value::Null,
        "a number column reads NA as missing"
    );
    assert_eq!(records[0]["ref"], "01", "leading zeros keep a code text");
    assert_eq!(records[0]["amount"], "3.01");
    // The table is a table like any other: the next file loads into it.
    let (status, table) = send(s.get("/v1/tables/orders")).await;
    assert_eq!(status, 200, "{table}");
    let events = send(s.get(&format!(
        "/v1/imports/{}/events",
        done["id"].as_str().unwrap_or("")
    )))
    .await
    .1;
    let kinds: Vec<&str> = events["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(kinds.contains(&"import.table_created"), "{kinds:?}");
}

#[tokio::test]
async fn a_rare_value_past_row_100000_makes_no_enum_and_no_rejection() {
    let s = TestServer::start().await;
    let mut body = String::with_capacity(2 << 20);
    body.push_str("id,status,note\n");
    for i in 1..=120_000u32 {
        let status = match i {
            110_000 => "on hold, pending",
            _ if i % 3 == 0 => "open",
            _ if i % 3 == 1 => "closed",
            _ => "shipped",
        };
        // The note is empty only in the very last row.
        let note = if i == 120_000 { "" } else { "a note" };
        body.push_str(&format!("{i},\"{status}\",{note}\n"));
    }
    let done = load(&s, "rare", "", "text/csv", body.clone()).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["counts"]["created"], 120_000);
    assert_eq!(done["counts"]["invalid"], 0);
    assert_eq!(
        columns(&done),
        [
            col("id", "integer", true),
            col("status", "string", true),
            col("note", "string", false),
        ]
    );
    // Asked for enums, the whole file's values make one (a value may hold a comma).
    let done = load(&s, "rare_enum", "&infer_enums=true", "text/csv", body).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["counts"]["invalid"], 0);
    let status = &done["tables"][0]["created_schema"]["columns"][1];
    assert_eq!(status["type"], "enum", "{status}");
    assert_eq!(
        status["values"],
        json!(["closed", "on hold, pending", "open", "shipped"])
    );
}

#[tokio::test]
async fn ndjson_fields_that_appear_late_become_optional_columns() {
    let s = TestServer::start().await;
    let mut body = String::new();
    for i in 1..=50 {
        body.push_str(&format!(
            "{{\"id\": {i}, \"price\": {i}.5, \"tags\": [\"a\"]}}\n"
        ));
    }
    body.push_str("{\"id\": 51, \"price\": null, \"late\": \"2024-05-06T07:08:09Z\"}\n");
    let done = load(&s, "late", "", "application/x-ndjson", body).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["counts"]["created"], 51);
    assert_eq!(
        columns(&done),
        [
            col("id", "integer", true),
            col("price", "decimal", false),
            col("tags", "json", false),
            col("late", "datetime", false),
        ]
    );
}

#[tokio::test]
async fn an_existing_table_is_loaded_as_it_is() {
    let s = TestServer::start().await;
    s.create_table(json!({
        "name": "kept",
        "columns": [{"name": "id", "type": "string"}, {"name": "n", "type": "string"}]
    }))
    .await;
    let done = load(&s, "kept", "", "text/csv", "id,n\n1,2\n".into()).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert!(done["tables"][0].get("created_schema").is_none(), "{done}");
    assert_eq!(s.all_records("kept").await, [json!({"id": "1", "n": "2"})]);
}

#[tokio::test]
async fn a_missing_table_without_create_table_or_with_options_it_cannot_honour_is_refused() {
    let s = TestServer::start().await;
    for (query, says) in [
        ("table=nope", "create_table=true"),
        ("table=nope&create_table=true&dry_run=true", "dry run"),
        (
            "table=nope&create_table=true&mapping={\"a\":\"b\"}",
            "mapping",
        ),
        ("table=1bad&create_table=true", "invalid table name"),
    ] {
        let (status, body) = s.upload(query, "text/csv", "a\n1\n").await;
        assert_eq!(status, 422, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{query}: {message}");
    }
    let done = load(
        &s,
        "keyless",
        "&mode=upsert",
        "text/csv",
        "a\n1\n1\n".into(),
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap_or("");
    assert!(error.contains("primary key"), "{error}");
    let (status, _) = send(s.get("/v1/tables/keyless")).await;
    assert_eq!(status, 404, "a failed inference creates no table");
}

// ---- Real files ----------------------------------------------------------------------------

/// One file of the real-data corpus, as its builder's manifest lists it.
struct RealFile {
    path: PathBuf,
    format: String,
    records: u64,
}

/// Builds the real-data corpus (cached under `target/`) and reads its manifest; None (saying
/// so) where the builder cannot run, which fails the test in CI.
fn real_files() -> Option<Vec<RealFile>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("../shared/real-data/fetch.py");
    let unavailable = |why: String| {
        assert!(
            std::env::var_os("CI").is_none(),
            "the real-data corpus is required in CI: {why}"
        );
        eprintln!("skipped: {why}");
        None
    };
    if !script.exists() {
        return unavailable(format!("{} is absent", script.display()));
    }
    let out = root.join("target/real-data");
    let run = Command::new("python3").arg(&script).arg(&out).output();
    let output = match run {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return unavailable(format!(
                "fetch.py failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Err(e) => return unavailable(format!("python3 cannot run: {e}")),
    };
    let manifest = String::from_utf8_lossy(&output.stdout);
    let files: Vec<RealFile> = manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (name, format, records) = (f.next()?, f.next()?, f.next()?);
            Some(RealFile {
                path: out.join(name),
                format: format.to_owned(),
                records: records.parse().ok()?,
            })
        })
        .collect();
    assert_eq!(files.len(), 15, "the manifest lists 15 files: {manifest}");
    Some(files)
}

fn content_type(format: &str) -> &'static str {
    match format {
        "tsv" => "text/tab-separated-values",
        "ndjson" => "application/x-ndjson",
        "json" => "application/json",
        _ => "text/csv",
    }
}

fn table_for(path: &Path) -> String {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .unwrap_or("real");
    stem.to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[tokio::test]
async fn every_real_file_loads_in_one_step_with_every_row_and_typed_columns() {
    let Some(files) = real_files() else {
        return;
    };
    let s = TestServer::start().await;
    let mut ids = Vec::new();
    for f in &files {
        let body = tokio::fs::read(&f.path).await.expect("read a real file");
        let table = table_for(&f.path);
        let (status, created) = s
            .upload(
                &format!("table={table}&create_table=true&file_name={table}"),
                content_type(&f.format),
                body,
            )
            .await;
        assert_eq!(status, 202, "{}: {created}", f.path.display());
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    // The 1.4M-row file takes a while in a debug build on a busy machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    for (f, id) in files.iter().zip(ids) {
        let done = loop {
            let (status, import) = send(s.get(&format!("/v1/imports/{id}"))).await;
            assert_eq!(status, 200, "{import}");
            let ended = matches!(
                import["status"].as_str(),
                Some("complete" | "partially_complete" | "failed" | "cancelled")
            );
            if ended {
                break import;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not end: {import}",
                f.path.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let name = f.path.display();
        assert_eq!(done["status"], "complete", "{name}: {done}");
        assert_eq!(done["counts"]["invalid"], 0, "{name}: {done}");
        assert_eq!(done["counts"]["created"], f.records, "{name}: {done}");
        let types = columns(&done);
        let typed = types.iter().filter(|(_, t, _)| t != "string").count();
        eprintln!("{name}: {} records, {types:?}", f.records);
        assert!(
            typed * 3 >= types.len(),
            "{name}: most columns are strings: {types:?}"
        );
    }
}

#[tokio::test]
async fn add_columns_adds_new_fields_as_nullable_typed_columns_and_never_retypes_old_ones() {
    let s = TestServer::start().await;
    s.create_table(json!({
        "name": "people",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "name", "type": "string"}
        ],
        "primary_key": ["id"]
    }))
    .await;
    let body = "id,name,Age,joined\n1,Ann,31,2024-01-02\n2,Bob,,2024-02-03\nx,Cy,40,2024-03-04\n";
    // Without add_columns the new fields are ignored, with a warning.
    let (status, created) = s.upload("table=people", "text/csv", body).await;
    assert_eq!(status, 202, "{created}");
    let done = s.wait_done(created["id"].as_str().expect("id")).await;
    assert_eq!(done["counts"]["warnings"], 1, "{done}");
    let (_, table) = send(s.get("/v1/tables/people")).await;
    assert_eq!(table["columns"].as_array().map(Vec::len), Some(2));

    let done = load(
        &s,
        "people",
        "&add_columns=true&mode=upsert",
        "text/csv",
        body.into(),
    )
    .await;
    assert_eq!(done["status"], "partially_complete", "{done}");
    assert_eq!(
        done["counts"]["invalid"], 1,
        "x is still not an integer: {done}"
    );
    assert_eq!(done["counts"]["warnings"], 0, "{done}");
    let (_, table) = send(s.get("/v1/tables/people")).await;
    let got: Vec<(String, String, bool)> = table["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_owned(),
                c["type"].as_str().unwrap_or("").to_owned(),
                c["required"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            col("id", "integer", true),
            col("name", "string", false),
            col("age", "integer", false),
            col("joined", "date", false),
        ]
    );
    let records = s.all_records("people").await;
    assert_eq!(
        records,
        [
            json!({"id": 1, "name": "Ann", "age": 31, "joined": "2024-01-02"}),
            json!({"id": 2, "name": "Bob", "age": null, "joined": "2024-02-03"}),
        ]
    );
}
