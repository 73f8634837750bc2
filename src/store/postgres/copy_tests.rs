//! The binary COPY encoder against the `postgres` crate's own (`binary_copy`), on a real
//! server: random rows of every column type go into one table through our encoder and into
//! another through the crate's, and the server must read the same values from both. Skipped
//! without `INTAKE_TEST_DATABASE_URL`.

use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, NoTls};
use proptest::prelude::*;
use std::io::Write;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::values::{copy_header, copy_trailer, encode_field};
use crate::model::{ColumnType, Value};

/// One generated row: a value for each column type that has a binary form of its own.
#[derive(Debug, Clone)]
struct Row {
    int: i64,
    float: f64,
    boolean: bool,
    decimal: String,
    date: Date,
    at: OffsetDateTime,
    uuid: Uuid,
    json: serde_json::Value,
    text: String,
    /// Which of the nullable values are null this time (one bit a column).
    nulls: u16,
}

/// The canonical text of `mantissa` × 10^-`scale` (as the model keeps decimals).
fn canonical(mantissa: i128, scale: u32) -> String {
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("0", "")
    };
    let frac = if digits.len() > scale {
        frac.to_owned()
    } else {
        format!("{}{digits}", "0".repeat(scale - digits.len()))
    };
    let frac = frac.trim_end_matches('0');
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if int == "0" && frac.is_empty() {
        return "0".into();
    }
    let sign = if mantissa < 0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn row() -> impl Strategy<Value = Row> {
    let date = (1_721_426i32..=5_373_484).prop_map(|jd| Date::from_julian_day(jd).expect("day"));
    // Years 1 to 9999, to the microsecond, as the model keeps datetimes.
    let at = (-62_135_596_800_000_000i64..=253_402_300_799_999_999).prop_map(|us| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).expect("instant")
    });
    let json = prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z\"\\\\ ]{0,8}".prop_map(serde_json::Value::from),
        any::<bool>().prop_map(|b| serde_json::json!({"k": b, "n": [1, null]})),
    ];
    (
        (
            any::<i64>(),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            any::<bool>(),
            (any::<i128>(), 0u32..20).prop_map(|(m, s)| canonical(m, s)),
            date,
            at,
        ),
        (
            any::<u128>().prop_map(Uuid::from_u128),
            json,
            "[^\\x00]{0,24}",
            any::<u16>(),
        ),
    )
        .prop_map(
            |((int, float, boolean, decimal, date, at), (uuid, json, text, nulls))| Row {
                int,
                float,
                boolean,
                decimal,
                date,
                at,
                uuid,
                json,
                text,
                nulls,
            },
        )
}

const COLUMNS: &str = "id bigint, i bigint, f double precision, b boolean, d numeric, \
                       day date, at timestamptz, u uuid, j json, t text";

/// Our stream of the rows, as the writer sends it.
fn ours(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    copy_header(&mut out);
    for (id, r) in rows.iter().enumerate() {
        let values = [
            (ColumnType::Integer, Value::Int(id as i64)),
            (ColumnType::Integer, Value::Int(r.int)),
            (ColumnType::Float, Value::Float(r.float)),
            (ColumnType::Boolean, Value::Bool(r.boolean)),
            (ColumnType::Decimal, Value::Decimal(r.decimal.clone())),
            (ColumnType::Date, Value::Date(r.date)),
            (ColumnType::Datetime, Value::Datetime(r.at)),
            (ColumnType::Uuid, Value::Uuid(r.uuid)),
            (ColumnType::Json, Value::Json(r.json.to_string())),
            (ColumnType::String, Value::Text(r.text.clone())),
        ];
        out.extend_from_slice(&(values.len() as i16).to_be_bytes());
        for (i, (ty, v)) in values.into_iter().enumerate() {
            let v = if i > 0 && r.nulls & (1 << i) != 0 {
                Value::Null
            } else {
                v
            };
            encode_field(ty, &v, &mut out).expect("encodable");
        }
    }
    copy_trailer(&mut out);
    out
}

/// The same rows through the crate's writer (decimals as text, cast back by the server).
fn theirs(client: &mut Client, rows: &[Row]) {
    let sink = client
        .copy_in("COPY theirs FROM STDIN (FORMAT binary)")
        .expect("copy in");
    let types = [
        Type::INT8,
        Type::INT8,
        Type::FLOAT8,
        Type::BOOL,
        Type::TEXT,
        Type::DATE,
        Type::TIMESTAMPTZ,
        Type::UUID,
        Type::JSON,
        Type::TEXT,
    ];
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for (id, r) in rows.iter().enumerate() {
        let id = id as i64;
        // A null of each column's own type: the writer checks types, nulls included.
        let set = |i: usize| r.nulls & (1 << i) == 0;
        let int = set(1).then_some(r.int);
        let float = set(2).then_some(r.float);
        let boolean = set(3).then_some(r.boolean);
        let decimal = set(4).then_some(r.decimal.as_str());
        let date = set(5).then_some(r.date);
        let at = set(6).then_some(r.at);
        let uuid = set(7).then_some(r.uuid);
        let json = set(8).then_some(&r.json);
        let text = set(9).then_some(r.text.as_str());
        let refs: [&(dyn ToSql + Sync); 10] = [
            &id, &int, &float, &boolean, &decimal, &date, &at, &uuid, &json, &text,
        ];
        w.write(&refs).expect("write a row");
    }
    w.finish().expect("finish");
}

#[test]
fn the_copy_encoder_writes_what_the_postgres_crate_writes() {
    let Ok(admin) = std::env::var("INTAKE_TEST_DATABASE_URL") else {
        eprintln!("skipped: INTAKE_TEST_DATABASE_URL is not set");
        return;
    };
    // The sync client runs a runtime of its own: kept off the test harness's thread.
    std::thread::spawn(move || {
        let name = format!("intake_copy_{}", Uuid::now_v7().simple());
        let mut root = Client::connect(&admin, NoTls).expect("connect");
        root.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let (base, _) = admin.rsplit_once('/').expect("URL with a database");
        let client = Client::connect(&format!("{base}/{name}"), NoTls).expect("connect");
        // The runner takes a `Fn`: the client is borrowed mutably inside, one case at a time.
        let client = std::cell::RefCell::new(client);
        client
            .borrow_mut()
            .batch_execute(&format!(
                "CREATE TABLE ours ({COLUMNS}); CREATE TABLE theirs ({})",
                COLUMNS.replace("d numeric", "d text")
            ))
            .expect("tables");
        let config = ProptestConfig {
            cases: 48,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let outcome = proptest::test_runner::TestRunner::new(config).run(
            &proptest::collection::vec(row(), 0..40),
            |rows| {
                let mut client = client.borrow_mut();
                client
                    .batch_execute("TRUNCATE ours; TRUNCATE theirs")
                    .expect("truncate");
                let mut sink = client
                    .copy_in("COPY ours FROM STDIN (FORMAT binary)")
                    .expect("copy in");
                sink.write_all(&ours(&rows)).expect("write");
                sink.finish().expect("the server reads our stream");
                theirs(&mut client, &rows);
                // Bit for bit where a type has a binary form, by value elsewhere.
                let differ: i64 = client
                    .query_one(
                        "SELECT count(*) FROM ours o FULL JOIN theirs t ON o.id = t.id
                         WHERE o.id IS NULL OR t.id IS NULL
                            OR o.i IS DISTINCT FROM t.i
                            OR float8send(o.f) IS DISTINCT FROM float8send(t.f)
                            OR o.b IS DISTINCT FROM t.b
                            OR o.d::text IS DISTINCT FROM t.d
                            OR o.day IS DISTINCT FROM t.day
                            OR o.at IS DISTINCT FROM t.at
                            OR o.u IS DISTINCT FROM t.u
                            OR o.j::text IS DISTINCT FROM t.j::text
                            OR o.t IS DISTINCT FROM t.t",
                        &[],
                    )
                    .expect("compare")
                    .get(0);
                prop_assert_eq!(differ, 0, "rows differ: {:?}", rows);
                Ok(())
            },
        );
        drop(client);
        let _ = root.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        outcome.expect("our COPY stream matches the crate's");
    })
    .join()
    .expect("test thread");
}

#[test]
fn canonical_decimals_are_the_models_form() {
    assert_eq!(canonical(0, 5), "0");
    assert_eq!(canonical(-1250, 2), "-12.5");
    assert_eq!(canonical(3, 3), "0.003");
    assert_eq!(canonical(1000, 0), "1000");
    assert_eq!(canonical(-7, 1), "-0.7");
}
