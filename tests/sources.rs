//! The files people really send, on the backend under test: zstd-compressed files, a zip
//! holding one file, and spreadsheets (xlsx written by a real spreadsheet writer, ods), with
//! their sheets, types, empty cells and row errors that name their cell.

use crate::common;

use std::io::Write;

use common::{TestServer, send};
use reqwest::multipart::{Form, Part};
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};
use serde_json::{Value, json};

use common::people_schema as people;

/// Uploads a raw body, expects 202 and waits for the end.
async fn import(s: &TestServer, query: &str, body: Vec<u8>) -> Value {
    let (status, created) = s.upload(query, "application/octet-stream", body).await;
    assert_eq!(status, 202, "create import: {created}");
    s.wait_done(created["id"].as_str().expect("id")).await
}

/// A table's rows, ordered by id, without the row metadata.
async fn rows(s: &TestServer, table: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = s
        .all_records(table)
        .await
        .into_iter()
        .map(|mut r| {
            if let Some(o) = r.as_object_mut() {
                o.retain(|k, _| !k.starts_with('_'));
            }
            r
        })
        .collect();
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("compress")
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("entry");
        zip.write_all(data).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

/// Files left in the staging folder.
fn staged_files(s: &TestServer) -> usize {
    std::fs::read_dir(s.data_dir().join("staging"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_zstd_compressed_upload_is_inflated_as_it_streams_in() {
    let s = TestServer::start().await;
    s.create_table(people("raw")).await;
    s.create_table(people("parts")).await;
    let done = import(&s, "table=raw", zstd(b"id,name\n1,Ann\n2,\"Bob, Jr.\"\n")).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(
        rows(&s, "raw").await,
        [
            json!({"id": 1, "name": "Ann"}),
            json!({"id": 2, "name": "Bob, Jr."})
        ]
    );
    // Named after what it holds: a TSV.
    let form = Form::new().part(
        "parts",
        Part::bytes(zstd(b"id\tname\n3\tCy\n"))
            .file_name("people.tsv.zst")
            .mime_str("application/zstd")
            .expect("mime"),
    );
    let (status, created) = send(s.post("/v1/imports").multipart(form)).await;
    assert_eq!(status, 202, "{created}");
    let done = s.wait_done(created["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["tables"][0]["format"], "tsv", "{done}");
    assert_eq!(rows(&s, "parts").await, [json!({"id": 3, "name": "Cy"})]);
}

#[tokio::test]
async fn a_zip_holding_one_file_is_read_as_that_file_and_its_name_is_never_a_path() {
    let s = TestServer::start().await;
    s.create_table(people("people")).await;
    let zip = zip_of(&[
        ("__MACOSX/._people.tsv", b"\0\x05\x16\x07"),
        ("../../../escaped/people.tsv", b"id\tname\n1\tAnn\n2\tBob\n"),
    ]);
    let done = import(&s, "table=people&file_name=people.zip", zip).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["tables"][0]["format"], "tsv", "{done}");
    assert_eq!(
        rows(&s, "people").await,
        [
            json!({"id": 1, "name": "Ann"}),
            json!({"id": 2, "name": "Bob"})
        ]
    );
    let escaped = s.data_dir().join("staging/../../../escaped");
    assert!(
        !escaped.exists(),
        "nothing is written where the name points"
    );
    assert_eq!(staged_files(&s), 0, "the spooled archive is removed");
}

#[tokio::test]
async fn a_zip_holding_several_files_is_refused_naming_them() {
    let s = TestServer::start().await;
    s.create_table(people("people")).await;
    let zip = zip_of(&[("a.csv", b"id\n1\n"), ("b.csv", b"id\n2\n")]);
    let (status, body) = s.upload("table=people", "application/zip", zip).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_format");
    assert_eq!(
        body["error"]["message"],
        "the source cannot be read: the zip archive holds 2 files (\"a.csv\", \"b.csv\"): an \
         import reads one; send a zip holding one file, or each file as a field of a multipart \
         upload"
    );
    let id = body["error"]["import_id"].as_str().expect("import_id");
    let (_, import) = send(s.get(&format!("/v1/imports/{id}"))).await;
    assert_eq!(import["status"], "unsupported", "{import}");
    assert_eq!(staged_files(&s), 0);
}

#[tokio::test]
async fn a_zstd_or_zip_bomb_is_refused_and_nothing_is_kept() {
    let s = TestServer::start().await;
    s.create_table(people("people")).await;
    let mut bomb = b"id,name\n".to_vec();
    bomb.resize(64 << 20, b'a');
    for (what, body) in [
        ("zstd", zstd(&bomb)),
        ("zip", zip_of(&[("bomb.csv", &bomb)])),
    ] {
        let (status, body) = s.upload("table=people", "text/csv", body).await;
        assert_eq!(status, 413, "{what}: {body}");
        assert_eq!(body["error"]["code"], "payload_too_large", "{what}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("decompression bomb"), "{what}: {message}");
    }
    let whole = zstd(b"id,name\n1,Ann\n");
    let (status, body) = s
        .upload(
            "table=people",
            "text/csv",
            whole[..whole.len() - 3].to_vec(),
        )
        .await;
    assert_eq!(status, 415, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("the zstd-compressed upload is damaged"),
        "{message}"
    );
    let (_, list) = send(s.get("/v1/imports")).await;
    assert_eq!(list["data"], json!([]), "nothing was created");
    assert_eq!(staged_files(&s), 0, "no staged or spooled file is left");
}

/// A workbook of two sheets: "Notes" (first) and "Orders", whose cells hold what people type:
/// whole and decimal numbers, dates and date-times in local display formats, booleans, text
/// with commas and line breaks, a formula, empty cells inside and at the end of rows, and a
/// blank row.
fn orders_workbook() -> Vec<u8> {
    let mut book = Workbook::new();
    let notes = book.add_worksheet();
    notes.set_name("Notes").expect("name");
    notes.write_string(0, 0, "Note").expect("cell");
    notes
        .write_string(1, 0, "see the Orders sheet")
        .expect("cell");
    let orders = book.add_worksheet();
    orders.set_name("Orders").expect("name");
    let day = Format::new().set_num_format("dd/mm/yyyy");
    let stamp = Format::new().set_num_format("d mmm yyyy h:mm AM/PM");
    let money = Format::new().set_num_format("#,##0.00 €");
    for (c, h) in [
        "Order ID",
        "Customer",
        "Amount",
        "Ordered on",
        "Shipped at",
        "Paid",
        "Note",
        "Total",
    ]
    .iter()
    .enumerate()
    {
        orders.write_string(0, c as u16, *h).expect("header");
    }
    let date = |y, m, d| ExcelDateTime::from_ymd(y, m, d).expect("date");
    // Row 2.
    orders.write_number(1, 0, 1).expect("cell");
    orders.write_string(1, 1, "Ann, Ltd.").expect("cell");
    orders
        .write_number_with_format(1, 2, 12.5, &money)
        .expect("cell");
    orders
        .write_datetime_with_format(1, 3, date(2024, 3, 1), &day)
        .expect("cell");
    orders
        .write_datetime_with_format(
            1,
            4,
            date(2024, 3, 2).and_hms(14, 30, 0).expect("time"),
            &stamp,
        )
        .expect("cell");
    orders.write_boolean(1, 5, true).expect("cell");
    orders
        .write_string(1, 6, "first line\nsecond, with \"quotes\"")
        .expect("cell");
    orders
        .write_formula(1, 7, Formula::new("=C2*2").set_result("25"))
        .expect("cell");
    // Row 3: empty cells inside and at the end.
    orders.write_number(2, 0, 2).expect("cell");
    orders.write_string(2, 1, "Bob").expect("cell");
    orders.write_number(2, 2, 1234567.891).expect("cell");
    orders
        .write_datetime_with_format(2, 3, date(2023, 12, 31), &day)
        .expect("cell");
    orders.write_boolean(2, 5, false).expect("cell");
    // Row 4 is blank; row 5.
    orders.write_number(4, 0, 3).expect("cell");
    orders.write_string(4, 1, "Cy").expect("cell");
    orders.write_number(4, 2, 0.1).expect("cell");
    orders
        .write_datetime_with_format(4, 3, date(2024, 2, 29), &day)
        .expect("cell");
    orders.write_boolean(4, 5, true).expect("cell");
    orders.write_number(4, 7, 42).expect("cell");
    book.save_to_buffer().expect("workbook")
}

/// The rows of the orders sheet as loaded, by order id, after checking what every writer's
/// workbook holds: text with a comma, a decimal, a date, a date-time whatever its display
/// format, a boolean, text with a line break and quotes, and every digit of a large number.
async fn orders_loaded(s: &TestServer) -> Vec<Value> {
    let mut got = s.all_records("orders").await;
    for r in &mut got {
        if let Some(o) = r.as_object_mut() {
            o.retain(|k, _| !k.starts_with('_'));
        }
    }
    got.sort_by_key(|r| r["order_id"].as_i64());
    assert_eq!(got.len(), 3, "the blank row is skipped: {got:?}");
    assert_eq!(got[0]["customer"], "Ann, Ltd.");
    assert_eq!(got[0]["amount"], json!("12.5"));
    assert_eq!(got[0]["ordered_on"], "2024-03-01");
    assert!(
        got[0]["shipped_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2024-03-02T14:30:00")),
        "{}",
        got[0]
    );
    assert_eq!(got[0]["paid"], true);
    assert_eq!(got[0]["note"], "first line\nsecond, with \"quotes\"");
    assert_eq!(got[1]["amount"], json!("1234567.891"), "no digit lost");
    got
}

#[tokio::test]
async fn an_xlsx_sheet_creates_its_table_with_the_workbooks_types_and_loads_every_row() {
    let s = TestServer::start().await;
    let done = import(
        &s,
        "table=orders&create_table=true&sheet=Orders&file_name=orders.xlsx",
        orders_workbook(),
    )
    .await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["source"], "xlsx", "{done}");
    assert_eq!(done["counts"]["created"], 3, "{done}");
    assert_eq!(done["counts"]["invalid"], 0, "{done}");
    let columns: Vec<(String, String)> = done["tables"][0]["created_schema"]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_owned(),
                c["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let named = |n: &str, t: &str| (n.to_owned(), t.to_owned());
    assert_eq!(
        columns,
        [
            named("order_id", "integer"),
            named("customer", "string"),
            named("amount", "decimal"),
            named("ordered_on", "date"),
            named("shipped_at", "datetime"),
            named("paid", "boolean"),
            named("note", "string"),
            named("total", "integer"),
        ]
    );
    let got = orders_loaded(&s).await;
    assert_eq!(got[0]["total"], 25, "a formula loads its cached value");
    assert_eq!(got[1]["ordered_on"], "2023-12-31");
    assert_eq!(got[1]["shipped_at"], Value::Null);
    assert_eq!(got[1]["note"], Value::Null);
    assert_eq!(
        got[1]["total"],
        Value::Null,
        "a trailing empty cell is null"
    );
    assert_eq!(got[2]["amount"], json!("0.1"));
    assert_eq!(got[2]["ordered_on"], "2024-02-29");
    assert_eq!(got[2]["total"], 42);
}

/// The orders sheet's table with `amount` an integer: its decimal amounts are row errors.
fn orders_with_integer_amounts() -> Value {
    json!({
        "name": "orders",
        "columns": [
            {"name": "order_id", "type": "integer", "required": true},
            {"name": "customer", "type": "string"},
            {"name": "amount", "type": "integer"}
        ],
        "primary_key": ["order_id"]
    })
}

#[tokio::test]
async fn row_errors_of_a_sheet_name_their_cell_and_line_is_the_spreadsheet_row() {
    let s = TestServer::start().await;
    s.create_table(orders_with_integer_amounts()).await;
    let done = import(&s, "table=orders&sheet=2", orders_workbook()).await;
    assert_eq!(done["status"], "partially_complete", "{done}");
    assert_eq!(done["counts"]["created"], 0, "{done}");
    assert_eq!(done["counts"]["invalid"], 3, "{done}");
    let errors = s.all_errors(done["id"].as_str().expect("id")).await;
    let found: Vec<(Value, Value, Value)> = errors
        .iter()
        .map(|e| (e["line"].clone(), e["cell"].clone(), e["code"].clone()))
        .collect();
    assert_eq!(
        found,
        [
            (json!(2), json!("Orders!C2"), json!("invalid_integer")),
            (json!(3), json!("Orders!C3"), json!("invalid_integer")),
            (json!(5), json!("Orders!C5"), json!("invalid_integer")),
        ]
    );
    assert_eq!(errors[0]["column"], "amount");
    assert_eq!(errors[0]["row"]["Customer"], "Ann, Ltd.");
    // The rejected-rows file names the cells too, between the line and the error.
    let csv = s
        .get(&format!(
            "/v1/imports/{}/errors?format=csv",
            done["id"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("download")
        .text()
        .await
        .expect("body");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header[header.len() - 3..],
        ["line", "cell", "error"],
        "{csv}"
    );
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let at = |r: &csv::StringRecord, back: usize| r[r.len() - back].to_owned();
    assert_eq!(
        records
            .iter()
            .map(|r| (at(r, 3), at(r, 2)))
            .collect::<Vec<_>>(),
        [
            ("2".to_owned(), "Orders!C2".to_owned()),
            ("3".to_owned(), "Orders!C3".to_owned()),
            ("5".to_owned(), "Orders!C5".to_owned()),
        ]
    );
    assert!(at(&records[0], 1).starts_with("amount: "), "{csv}");
}

#[tokio::test]
async fn the_first_sheet_is_the_default_and_a_missing_sheet_is_refused_naming_the_sheets() {
    let s = TestServer::start().await;
    let (status, body) = s
        .upload(
            "table=orders&create_table=true&sheet=Invoices",
            "application/octet-stream",
            orders_workbook(),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["message"],
        "the workbook has no sheet \"Invoices\": its sheets are \"Notes\", \"Orders\" (name \
         one, or give its position from 1)"
    );
    let done = import(&s, "table=notes&create_table=true", orders_workbook()).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(
        rows(&s, "notes").await,
        [json!({"note": "see the Orders sheet"})]
    );
    assert_eq!(staged_files(&s), 0);
}

/// A minimal OpenDocument spreadsheet, as the format's specification lays it out.
fn ods(rows: &str) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="People">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
    );
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    zip_of(&[
        (
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet",
        ),
        ("META-INF/manifest.xml", manifest.as_bytes()),
        ("content.xml", content.as_bytes()),
    ])
}

#[tokio::test]
async fn an_ods_sheet_loads_like_an_xlsx_one() {
    let s = TestServer::start().await;
    s.create_table(people("people")).await;
    let cell_n = |v: &str| {
        format!(
            r#"<table:table-cell office:value-type="float" office:value="{v}"><text:p>{v}</text:p></table:table-cell>"#
        )
    };
    let cell_s = |v: &str| {
        format!(
            r#"<table:table-cell office:value-type="string"><text:p>{v}</text:p></table:table-cell>"#
        )
    };
    let row = |cells: String| format!("<table:table-row>{cells}</table:table-row>");
    let body = ods(&[
        row(cell_s("id") + &cell_s("name")),
        row(cell_n("1") + &cell_s("Ann")),
        row(cell_n("2.5") + &cell_s("Bob")),
    ]
    .concat());
    let done = import(&s, "table=people", body).await;
    assert_eq!(done["status"], "partially_complete", "{done}");
    assert_eq!(done["source"], "ods", "{done}");
    assert_eq!(rows(&s, "people").await, [json!({"id": 1, "name": "Ann"})]);
    let errors = s.all_errors(done["id"].as_str().expect("id")).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["cell"], "People!A3");
    assert_eq!(errors[0]["line"], 3);
}

#[tokio::test]
async fn a_sheet_with_an_unnamed_or_twice_named_column_is_refused_saying_where() {
    let s = TestServer::start().await;
    let book = |header: [&str; 3]| {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        for (c, h) in header.iter().enumerate() {
            if !h.is_empty() {
                sheet.write_string(0, c as u16, *h).expect("header");
            }
            sheet.write_number(1, c as u16, 1).expect("cell");
        }
        book.save_to_buffer().expect("workbook")
    };
    let (status, body) = s
        .upload(
            "table=t&create_table=true",
            "application/octet-stream",
            book(["id", "", "b"]),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["message"],
        "column B of sheet \"Sheet1\" has values but no header in row 1: give it a name"
    );
    let (status, body) = s
        .upload(
            "table=t&create_table=true",
            "application/octet-stream",
            book(["id", "b", "b"]),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["message"],
        "sheet \"Sheet1\" names column \"b\" twice in its header (row 1): rename one"
    );
    assert_eq!(staged_files(&s), 0);
}

#[tokio::test]
async fn a_workbook_inflating_past_its_limit_is_refused_with_413_before_it_is_read() {
    let s = TestServer::start().await;
    // A sheet part of 300 MiB of blanks compresses to well under a MiB.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("xl/workbook.xml", options).expect("entry");
    zip.write_all(b"<workbook/>").expect("write");
    zip.start_file("xl/worksheets/sheet1.xml", options)
        .expect("entry");
    let blanks = vec![b' '; 1 << 20];
    for _ in 0..300 {
        zip.write_all(&blanks).expect("write");
    }
    let bytes = zip.finish().expect("finish").into_inner();
    assert!(bytes.len() < 2 << 20, "{}", bytes.len());
    let (status, body) = s
        .upload(
            "table=t&create_table=true",
            "application/octet-stream",
            bytes,
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["error"]["message"],
        "the workbook's parts inflate to more than 268435456 bytes, the limit for spreadsheets \
         (a sheet is read whole into memory): save the sheet as CSV and upload that"
    );
    assert_eq!(staged_files(&s), 0);
}

#[tokio::test]
async fn schema_inference_reads_a_workbook_sheet_and_returns_its_rows_as_text() {
    let s = TestServer::start().await;
    let (status, body) = send(
        s.post("/v1/schema/infer?sheet=Orders&name=orders")
            .header("content-type", "application/octet-stream")
            .body(orders_workbook()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["format"], "ndjson");
    assert_eq!(body["sheet"], "Orders");
    assert_eq!(body["sampled_rows"], 3, "{body}");
    let sample = body["sample"].as_str().expect("sample");
    let first = sample.lines().find(|l| !l.is_empty()).expect("a row");
    let row: Value = serde_json::from_str(first).expect("json");
    assert_eq!(row["Order ID"], 1);
    assert_eq!(row["Amount"], json!(12.5));
    assert_eq!(row["Ordered on"], "2024-03-01");
    assert!(
        sample.starts_with("\n"),
        "row 1, the header, is a blank line: {sample:?}"
    );
}

#[tokio::test]
async fn a_workbook_sent_in_the_two_step_flow_loads_the_sheet_its_upload_names() {
    let s = TestServer::start().await;
    s.create_table(orders_with_integer_amounts()).await;
    let (status, created) = send(
        s.post("/v1/imports")
            .json(&json!({"table": "orders", "start": false, "file_name": "orders.xlsx"})),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("id");
    let (status, body) = send(
        s.req(
            reqwest::Method::PUT,
            &format!("/v1/imports/{id}/file?sheet=Orders"),
        )
        .body(orders_workbook()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, started) = send(s.post(&format!("/v1/imports/{id}/start"))).await;
    assert_eq!(status, 202, "{started}");
    let done = s.wait_done(id).await;
    assert_eq!(done["tables"][0]["format"], "ndjson", "{done}");
    assert_eq!(done["counts"]["invalid"], 3, "amounts are decimals: {done}");
    let errors = s.all_errors(id).await;
    assert_eq!(errors[0]["cell"], "Orders!C2", "{errors:?}");
}

/// A file server on a loopback address of its own: `/people.csv` answers a CSV,
/// `/moved.csv` redirects to `redirect_to`, anything else 404.
async fn file_server(ip: &str, redirect_to: Option<String>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let redirect_to = redirect_to.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let answer = match (path.as_str(), &redirect_to) {
                    ("/people.csv", _) => {
                        let body = "id,name\n1,Ann\n2,\"Bob, Jr.\"\n";
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    ("/moved.csv", Some(to)) => format!(
                        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    ),
                    _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned(),
                };
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

/// A server whose URL imports may reach `allowed` (and no other non-public address).
async fn server_allowing(allowed: &str) -> TestServer {
    let net = intake::api::url_source::AllowedNet::parse(allowed).expect("net");
    TestServer::start_with(|c| {
        c.api.url_policy = std::sync::Arc::new(intake::api::url_source::UrlPolicy {
            allow: vec![net],
            timeout: std::time::Duration::from_secs(30),
            ..Default::default()
        });
    })
    .await
}

/// Imports the file at `url` into `people`: expects 202 and the `downloading` step, and
/// answers the import once it has ended.
async fn import_url(s: &TestServer, url: String) -> Value {
    let (status, created) = send(
        s.post("/v1/imports")
            .json(&json!({"table": "people", "url": url})),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["step"], "downloading", "{created}");
    s.wait_done(created["id"].as_str().expect("id")).await
}

/// The rows of the people file the URL tests serve.
fn people_rows() -> [Value; 2] {
    [
        json!({"id": 1, "name": "Ann"}),
        json!({"id": 2, "name": "Bob, Jr."}),
    ]
}

#[tokio::test]
async fn a_file_at_an_allowlisted_url_is_downloaded_then_loaded() {
    let s = server_allowing("127.0.0.2").await;
    s.create_table(people("people")).await;
    let files = file_server("127.0.0.2", None).await;
    let (status, created) = send(s.post("/v1/imports").json(&json!({
        "table": "people",
        "url": format!("http://{files}/people.csv"),
    })))
    .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["status"], "new", "{created}");
    assert_eq!(created["step"], "downloading", "{created}");
    assert_eq!(created["file_name"], "people.csv", "{created}");
    let done = s.wait_done(created["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(rows(&s, "people").await, people_rows());
    // A missing file ends the import failed, saying so.
    let done = import_url(&s, format!("http://{files}/gone.csv")).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"], "the server at the URL answered 404");
}

#[tokio::test]
async fn private_addresses_are_refused_directly_by_name_and_on_redirect() {
    let s = server_allowing("127.0.0.2").await;
    s.create_table(people("people")).await;
    let hidden = file_server("127.0.0.3", None).await;
    let files = file_server("127.0.0.2", Some(format!("http://{hidden}/people.csv"))).await;
    // An address: refused before anything is created.
    let (status, body) = send(s.post("/v1/imports").json(&json!({
        "table": "people",
        "url": format!("http://{hidden}/people.csv"),
    })))
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["message"],
        "127.0.0.3 is 127.0.0.3, a private, loopback or link-local address: the server fetches \
         only from public addresses (an operator may allow a network with --url-allow)"
    );
    for (url, why) in [
        // A redirect from an allowed address to a private one.
        (
            format!("http://{files}/moved.csv"),
            "the URL was refused: a redirect was refused: 127.0.0.3 is 127.0.0.3",
        ),
        // A name resolving to a private address.
        (
            format!("http://localhost:{}/people.csv", hidden.port()),
            "the URL was refused: localhost is ",
        ),
    ] {
        let (status, created) = send(
            s.post("/v1/imports")
                .json(&json!({"table": "people", "url": url})),
        )
        .await;
        assert_eq!(status, 202, "{created}");
        let done = s.wait_done(created["id"].as_str().expect("id")).await;
        assert_eq!(done["status"], "failed", "{done}");
        let error = done["error"].as_str().unwrap_or("");
        assert!(error.starts_with(why), "{url}: {error}");
    }
    assert!(s.all_records("people").await.is_empty());
    let (status, body) = send(s.post("/v1/imports").json(&json!({
        "table": "people",
        "url": "file:///etc/passwd",
    })))
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(staged_files(&s), 0);
}

#[tokio::test]
async fn a_replayed_url_import_answers_the_first_and_another_url_under_the_same_key_is_refused() {
    let s = server_allowing("127.0.0.2").await;
    s.create_table(people("people")).await;
    let files = file_server("127.0.0.2", None).await;
    let post = |url: String| {
        s.post("/v1/imports")
            .header("idempotency-key", "nightly-1")
            .json(&json!({"table": "people", "url": url}))
    };
    let (status, first) = send(post(format!("http://{files}/people.csv"))).await;
    assert_eq!(status, 202, "{first}");
    let done = s.wait_done(first["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "complete", "{done}");
    let (status, again) = send(post(format!("http://{files}/people.csv"))).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["status"], "complete", "not downloaded again: {again}");
    let (status, other) = send(post(format!("http://{files}/other.csv"))).await;
    assert_eq!(status, 422, "{other}");
    assert_eq!(other["error"]["code"], "idempotency_key_reused");
    // A URL is a JSON request's member, not an upload's option.
    let (status, body) = s
        .upload(
            &format!("table=people&url=http://{files}/people.csv"),
            "text/csv",
            "id\n9\n",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(s.all_records("people").await.len(), 2);
}

#[tokio::test]
async fn a_merged_cell_belongs_to_its_first_row_and_the_others_are_empty() {
    let s = TestServer::start().await;
    s.create_table(people("people")).await;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "id").expect("cell");
    sheet.write_string(0, 1, "name").expect("cell");
    for r in 1..=3u32 {
        sheet.write_number(r, 0, r).expect("cell");
    }
    sheet
        .merge_range(1, 1, 2, 1, "Ann", &Format::new())
        .expect("merge");
    sheet.write_string(3, 1, "Cy").expect("cell");
    let done = import(&s, "table=people", book.save_to_buffer().expect("workbook")).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(
        rows(&s, "people").await,
        [
            json!({"id": 1, "name": "Ann"}),
            json!({"id": 2, "name": null}),
            json!({"id": 3, "name": "Cy"})
        ]
    );
}

/// The test S3 server's bucket, or None (skipped, saying so) outside CI when none runs.
#[cfg(feature = "s3")]
fn test_bucket() -> Option<&'static str> {
    if std::env::var_os("AWS_ENDPOINT").is_some() {
        return Some("intake-test");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the S3 tests need the local S3 server in CI (eval \"$(scripts/s3-server.sh)\")"
    );
    eprintln!("skipped: no S3 server (AWS_ENDPOINT is unset)");
    None
}

/// Puts `bytes` at `key` in the test bucket.
#[cfg(feature = "s3")]
async fn put_object(bucket: &str, key: &str, bytes: &[u8]) {
    use object_store::ObjectStoreExt;
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .expect("S3 client");
    store
        .put(&object_store::path::Path::from(key), bytes.to_vec().into())
        .await
        .expect("put object");
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn a_file_in_an_allowed_bucket_is_read_with_the_servers_s3_client() {
    let Some(bucket) = test_bucket() else { return };
    let s = TestServer::start_with(|c| {
        c.api.url_policy = std::sync::Arc::new(intake::api::url_source::UrlPolicy {
            buckets: vec![bucket.to_owned()],
            ..Default::default()
        });
    })
    .await;
    s.create_table(people("people")).await;
    let folder = format!("url-imports/{}", uuid::Uuid::now_v7());
    put_object(
        bucket,
        &format!("{folder}/new people.csv"),
        b"id,name\n1,Ann\n2,\"Bob, Jr.\"\n",
    )
    .await;
    let done = import_url(&s, format!("s3://{bucket}/{folder}/new%20people.csv")).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(rows(&s, "people").await, people_rows());
    // A key that is not there fails the import, saying so.
    let done = import_url(&s, format!("s3://{bucket}/{folder}/gone.csv")).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"], "the server at the URL answered 404");
    // Buckets not allowed, and keys that climb, are refused before anything is created.
    for (url, why) in [
        (
            "s3://another-bucket/people.csv".to_owned(),
            "the bucket \"another-bucket\" is not one URL imports may read from (an operator \
             allows buckets with --url-buckets)",
        ),
        // (`/../` itself is resolved when the URL is parsed; escaped, it is a key's text.)
        (
            format!("s3://{bucket}/{folder}%2F..%2Fpeople.csv"),
            "an S3 key may not hold . or .. segments",
        ),
        (
            format!("s3://{bucket}"),
            "an S3 URL names a bucket and a key: s3://bucket/path/to/file.csv",
        ),
    ] {
        let (status, body) = send(
            s.post("/v1/imports")
                .json(&json!({"table": "people", "url": url})),
        )
        .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["message"], why, "{url}");
    }
    let (_, page) = send(s.get("/v1/imports")).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2), "{page}");
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn the_servers_own_sources_cannot_be_imported_from_a_url() {
    let Some(bucket) = test_bucket() else { return };
    let own = format!("own-sources-{}", uuid::Uuid::now_v7());
    let sources = format!("s3://{bucket}/{own}");
    let s = TestServer::start_with(|c| {
        c.blob_url = Some(sources.clone());
        c.api.url_policy = std::sync::Arc::new(intake::api::url_source::UrlPolicy {
            buckets: vec![bucket.to_owned()],
            ..Default::default()
        });
    })
    .await;
    s.create_table(people("people")).await;
    let (status, first) = s
        .upload("table=people", "text/csv", b"id,name\n1,Ann\n".to_vec())
        .await;
    assert_eq!(status, 202, "{first}");
    s.wait_done(first["id"].as_str().expect("id")).await;
    for key in [format!("{own}/anything.csv"), own.clone()] {
        let url = format!("s3://{bucket}/{key}");
        let (status, body) = send(
            s.post("/v1/imports")
                .json(&json!({"table": "people", "url": url})),
        )
        .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!(
                "{url} is where this server keeps uploaded sources: it cannot be imported from"
            ),
        );
    }
}

#[tokio::test]
async fn a_sheet_of_a_header_and_no_rows_creates_its_table_as_such_a_csv_file_does() {
    let s = TestServer::start().await;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "Order Id").expect("header");
    sheet.write_string(0, 1, "name").expect("header");
    let done = import(
        &s,
        "table=from_sheet&create_table=true",
        book.save_to_buffer().expect("xlsx"),
    )
    .await;
    assert_eq!(done["status"], "complete", "{done}");
    let done = import(
        &s,
        "table=from_csv&create_table=true",
        b"Order Id,name\n".to_vec(),
    )
    .await;
    assert_eq!(done["status"], "complete", "{done}");
    let columns = |table: &'static str| {
        let s = &s;
        async move {
            let (status, body) = send(s.get(&format!("/v1/tables/{table}"))).await;
            assert_eq!(status, 200, "{body}");
            body["columns"].clone()
        }
    };
    let from_sheet = columns("from_sheet").await;
    assert_eq!(from_sheet, columns("from_csv").await);
    assert_eq!(from_sheet[0]["name"], "order_id", "{from_sheet}");
    assert_eq!(from_sheet.as_array().map(Vec::len), Some(2), "{from_sheet}");
}

#[tokio::test]
async fn an_xls_sheet_written_by_an_excel_97_writer_loads_with_its_types() {
    // tests/data/orders.xls is written by tests/data/make_orders_xls.py (xlwt).
    let book = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/orders.xls"
    ))
    .expect("tests/data/orders.xls");
    let s = TestServer::start().await;
    let done = import(&s, "table=orders&create_table=true&sheet=Orders", book).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["source"], "xls", "{done}");
    let columns: Vec<String> = done["tables"][0]["created_schema"]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap_or(""),
                c["type"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            "order_id integer",
            "customer string",
            "amount decimal",
            "ordered_on date",
            "shipped_at datetime",
            "paid boolean",
            "note string",
        ]
    );
    let got = orders_loaded(&s).await;
    assert_eq!(got[1]["shipped_at"], Value::Null);
    assert_eq!(got[1]["note"], Value::Null, "a trailing empty cell is null");
    assert_eq!(got[2]["ordered_on"], "2024-02-29");
}
