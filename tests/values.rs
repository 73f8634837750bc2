//! Values land exactly as written: 30-digit decimals, JSON numbers in string and json columns,
//! integers written with an exponent, through CSV, NDJSON, a JSON array and inline records, on
//! the backend under test, read back through the API and straight from the database.

use crate::common;

use common::{TestServer, physical_table, send, sql_rows};
use serde_json::{Value, json};

/// Decimals that a binary float would round, each with its canonical form.
const DECIMALS: [(&str, &str); 4] = [
    ("12345678901234567890", "12345678901234567890"),
    ("0.1000000000000000000000001", "0.1000000000000000000000001"),
    (
        "123456789012345678901234567890.123456789",
        "123456789012345678901234567890.123456789",
    ),
    ("-000.500", "-0.5"),
];

fn exact_table(name: &str) -> Value {
    json!({
        "name": name,
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "d", "type": "decimal"},
            {"name": "s", "type": "string"},
            {"name": "j", "type": "json"},
            {"name": "n", "type": "integer"}
        ],
        "primary_key": ["id"]
    })
}

async fn finished(s: &TestServer, status: u16, created: Value) -> Value {
    assert_eq!(status, 202, "create import: {created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let done = s.wait_done(&id).await;
    assert_eq!(done["status"], "complete", "{done}");
    done
}

/// Waits for an import created with `status`, and answers it with its stored row errors.
async fn with_row_errors(s: &TestServer, status: u16, created: Value) -> (Value, Vec<Value>) {
    assert_eq!(status, 202, "create import: {created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let done = s.wait_done(&id).await;
    let errors = s.all_errors(&id).await;
    (done, errors)
}

/// The decimal column as the database holds it, by id.
fn stored_decimals(s: &TestServer, table: &str) -> Vec<String> {
    let sql = if common::on_postgres() {
        format!("SELECT d::text FROM {} ORDER BY id", physical_table(table))
    } else {
        format!("SELECT d FROM {} ORDER BY id", physical_table(table))
    };
    sql_rows(&s.data_dir(), &sql)
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
}

fn canonical() -> Vec<String> {
    DECIMALS.iter().map(|(_, c)| c.to_string()).collect()
}

#[tokio::test]
async fn csv_decimals_keep_every_digit_in_the_api_and_the_database() {
    let s = TestServer::start().await;
    s.create_table(exact_table("exact_csv")).await;
    let mut body = String::from("id,d\n");
    for (i, (written, _)) in DECIMALS.iter().enumerate() {
        body.push_str(&format!("{},{written}\n", i + 1));
    }
    let (status, created) = s.upload("table=exact_csv", "text/csv", body).await;
    finished(&s, status, created).await;
    let records = s.all_records("exact_csv").await;
    let got: Vec<String> = records
        .iter()
        .map(|r| r["d"].as_str().expect("decimals are strings").to_owned())
        .collect();
    assert_eq!(got, canonical());
    assert_eq!(stored_decimals(&s, "exact_csv"), canonical());
}

/// One JSON record per row: numbers written as the tests' JSON text, never through f64.
const JSON_RECORDS: &str = r#"{"id": 1, "d": 12345678901234567890, "s": 1e5, "j": {"n": 123456789012345678901}, "n": 1e5}
{"id": 2, "d": 0.1000000000000000000000001, "s": 1.50, "j": [0.1000000000000000000000001], "n": 9007199254740993.0}
{"id": 3, "d": 123456789012345678901234567890.123456789, "s": -0, "j": 1.0, "n": -9223372036854775808}
{"id": 4, "d": -0.500, "s": 123456789012345678901234, "j": {"a": 1.50e300}, "n": 7}"#;

/// Checks the four records of `JSON_RECORDS` as the API and the database show them.
async fn assert_json_values(s: &TestServer, table: &str) {
    let records = s.all_records(table).await;
    assert_eq!(records.len(), 4, "{records:?}");
    let d: Vec<&str> = records
        .iter()
        .map(|r| r["d"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(d, canonical());
    let strings: Vec<&str> = records
        .iter()
        .map(|r| r["s"].as_str().unwrap_or("?"))
        .collect();
    // Digits are kept; an exponent is spelled `e+5` (the JSON parser's one spelling of it).
    assert_eq!(strings, ["1e+5", "1.50", "-0", "123456789012345678901234"]);
    // The JSON column's numbers are compared as the text they are written with.
    let json_text: Vec<String> = records.iter().map(|r| r["j"].to_string()).collect();
    assert_eq!(
        json_text,
        [
            r#"{"n":123456789012345678901}"#,
            "[0.1000000000000000000000001]",
            "1.0",
            r#"{"a":1.50e+300}"#
        ]
    );
    let ints: Vec<i64> = records
        .iter()
        .map(|r| r["n"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(ints, [100000, 9007199254740993, i64::MIN, 7]);
    assert_eq!(stored_decimals(s, table), canonical());
}

#[tokio::test]
async fn ndjson_numbers_land_as_written_in_decimal_string_json_and_integer_columns() {
    let s = TestServer::start().await;
    s.create_table(exact_table("exact_ndjson")).await;
    let (status, created) = s
        .upload("table=exact_ndjson", "application/x-ndjson", JSON_RECORDS)
        .await;
    finished(&s, status, created).await;
    assert_json_values(&s, "exact_ndjson").await;
}

#[tokio::test]
async fn json_array_numbers_land_as_written() {
    let s = TestServer::start().await;
    s.create_table(exact_table("exact_array")).await;
    let body = format!("[{}]", JSON_RECORDS.replace('\n', ",\n"));
    let (status, created) = s
        .upload("table=exact_array", "application/json", body)
        .await;
    finished(&s, status, created).await;
    assert_json_values(&s, "exact_array").await;
}

#[tokio::test]
async fn inline_records_keep_their_numbers_as_written() {
    let s = TestServer::start().await;
    s.create_table(exact_table("exact_inline")).await;
    let inputs = format!("[{}]", JSON_RECORDS.replace('\n', ","));
    // Sent as text: the request body carries the digits, whatever the client's numbers are.
    let body = format!(r#"{{"table": "exact_inline", "inputs": {inputs}}}"#);
    let (status, created) = send(
        s.post("/v1/imports")
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    finished(&s, status, created).await;
    assert_json_values(&s, "exact_inline").await;
}

#[tokio::test]
async fn numbers_that_do_not_fit_are_refused_at_their_row_never_rounded() {
    let s = TestServer::start().await;
    s.create_table(json!({
        "name": "bounded",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "d", "type": "decimal", "max": 100},
            {"name": "n", "type": "integer"}
        ]
    }))
    .await;
    let body = "{\"id\": 1, \"d\": 100.0000000000000000000001}\n\
                {\"id\": 2, \"n\": 9223372036854775808}\n\
                {\"id\": 3, \"n\": 1.5}\n\
                {\"id\": 4, \"d\": 100, \"n\": 1e2}\n";
    let (status, created) = s
        .upload("table=bounded&on_error=skip", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 202, "{created}");
    let done = s.wait_done(created["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "partially_complete", "{done}");
    let errors = s.all_errors(created["id"].as_str().expect("id")).await;
    let codes: Vec<(i64, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["line"].as_i64().unwrap_or(0),
                e["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (1, "out_of_range"),
            (2, "out_of_range"),
            (3, "invalid_integer")
        ]
    );
    let records = s.all_records("bounded").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["d"], "100");
    assert_eq!(records[0]["n"].as_i64(), Some(100));
}

#[tokio::test]
async fn a_record_naming_a_field_twice_is_refused_not_half_kept() {
    let s = TestServer::start().await;
    s.create_table(exact_table("twice")).await;
    let body = "{\"id\": 1, \"s\": \"a\"}\n{\"id\": 2, \"s\": \"b\", \"s\": \"c\"}\n";
    let (status, created) = s.upload("table=twice", "application/x-ndjson", body).await;
    let (done, errors) = with_row_errors(&s, status, created).await;
    assert_eq!(done["counts"]["invalid"], 1, "{done}");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["code"], "duplicate_key");
    let message = errors[0]["message"].as_str().unwrap_or("");
    assert!(message.contains("\"s\""), "{message}");
    assert_eq!(s.all_records("twice").await.len(), 1);
}

#[tokio::test]
async fn an_inline_record_naming_a_field_twice_is_refused_like_a_files() {
    let s = TestServer::start().await;
    s.create_table(exact_table("twice")).await;
    // Written by hand, over several lines, with exact numbers: each record lands as written.
    let body = "{\"table\": \"twice\", \"inputs\": [\n  {\"id\": 1, \"d\": 0.1000000000000000000000001},\n  {\"id\": 2, \"s\": \"b\",\n   \"s\": \"c\"}\n]}";
    let (status, created) = send(
        s.post("/v1/imports")
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    let (done, errors) = with_row_errors(&s, status, created).await;
    assert_eq!(done["counts"]["invalid"], 1, "{done}");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["code"], "duplicate_key");
    let records = s.all_records("twice").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["d"], "0.1000000000000000000000001");
}

#[tokio::test]
async fn a_raw_nul_byte_in_a_csv_is_that_rows_error_not_the_files() {
    let s = TestServer::start().await;
    s.create_table(exact_table("nul")).await;
    let (status, created) = s
        .upload("table=nul", "text/csv", b"id,s\n1,a\0b\n2,ok\n".to_vec())
        .await;
    let (done, errors) = with_row_errors(&s, status, created).await;
    assert_eq!(done["status"], "partially_complete", "{done}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["code"], "invalid_encoding");
    let records = s.all_records("nul").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["s"], "ok");
}

#[tokio::test]
async fn a_nul_character_in_text_is_that_rows_error_on_every_backend() {
    let s = TestServer::start().await;
    s.create_table(exact_table("nul")).await;
    let body = "{\"id\": 1, \"s\": \"a\\u0000b\"}\n{\"id\": 2, \"s\": \"ok\"}\n";
    let (status, created) = s.upload("table=nul", "application/x-ndjson", body).await;
    let (done, errors) = with_row_errors(&s, status, created).await;
    assert_eq!(done["status"], "partially_complete", "{done}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["line"], 1);
    assert_eq!(errors[0]["code"], "invalid_encoding");
    assert_eq!(s.all_records("nul").await.len(), 1);
}
