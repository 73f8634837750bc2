//! Checks of what is particular to the PostgreSQL backend, on a real server: each test
//! creates a uniquely named database from `INTAKE_TEST_DATABASE_URL` (an URL of a database
//! to connect to for creating others, e.g. `postgres://postgres@127.0.0.1:5432/postgres`)
//! and drops it at the end. Without the variable the tests are skipped.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::PgStore;
use crate::model::row_error::SourceRecord;
use crate::model::{ImportStatus, Mode, OnError, Role, Source, TableSchema, Value};
use crate::store::*;

/// A database of its own, dropped with it.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    fn create() -> Option<TestDb> {
        let Ok(admin) = std::env::var("INTAKE_TEST_DATABASE_URL") else {
            eprintln!("skipped: INTAKE_TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!("intake_unit_{}", Uuid::now_v7().simple());
        let (a, n) = (admin.clone(), name.clone());
        std::thread::spawn(move || {
            let mut c = ::postgres::Client::connect(&a, ::postgres::NoTls).expect("connect");
            c.batch_execute(&format!("CREATE DATABASE {n}"))
                .expect("create database");
        })
        .join()
        .expect("create thread");
        let (base, _) = admin.rsplit_once('/').expect("URL with a database");
        let url = format!("{base}/{name}");
        Some(TestDb { admin, name, url })
    }

    fn store(&self) -> PgStore {
        PgStore::connect(&self.url, None).expect("connect the store")
    }

    /// Runs SQL on the test database (as `psql` would), on a thread of its own.
    fn sql(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        std::thread::spawn(move || {
            let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
            c.simple_query(&sql)
                .expect("query")
                .into_iter()
                .filter_map(|m| match m {
                    ::postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    _ => None,
                })
                .collect()
        })
        .join()
        .expect("query thread")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (a, n) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = ::postgres::Client::connect(&a, ::postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"));
            }
        })
        .join();
    }
}

fn schema(v: serde_json::Value) -> TableSchema {
    TableSchema::parse(serde_json::from_value(v).expect("raw schema")).expect("schema")
}

fn people() -> TableSchema {
    schema(json!({"name": "people", "columns": [
        {"name": "id", "type": "integer"},
        {"name": "name", "type": "string"},
        {"name": "email", "type": "email", "unique": true}
    ], "primary_key": ["id"]}))
}

fn new_key(role: Role) -> NewKey {
    NewKey {
        id: Uuid::now_v7(),
        name: "k".into(),
        role,
        prefix: "p".into(),
        hash: *Uuid::now_v7()
            .as_bytes()
            .repeat(2)
            .first_chunk()
            .expect("32 bytes"),
        expires_at: None,
        tables: None,
    }
}

fn new_import(ws: &Workspace, table: &str, mode: Mode, cleanup: bool) -> NewImport {
    NewImport {
        id: Uuid::now_v7(),
        workspace_id: ws.id,
        status: ImportStatus::Queued,
        source: Source::Csv,
        mode,
        on_error: OnError::Skip,
        max_errors: None,
        dry_run: false,
        cleanup_records: cleanup,
        reference: None,
        reference_origin: None,
        metadata: json!({}),
        note: None,
        platform: None,
        error: None,
        inputs: vec![NewImportInput {
            table: table.into(),
            blob_key: None,
            format: "csv".into(),
            options: json!({}),
            file_name: None,
            file_size: Some(1),
        }],
        idempotency: None,
    }
}

fn row(line: u64, values: Vec<Value>) -> TypedRow {
    TypedRow {
        line,
        record: line - 1,
        values,
        original: SourceRecord::Json("{}".into()),
    }
}

fn person(line: u64, id: i64, name: &str, email: &str) -> TypedRow {
    row(
        line,
        vec![
            Value::Int(id),
            Value::Text(name.into()),
            Value::Text(email.into()),
        ],
    )
}

/// Claims the import and runs `f` with a writer of its first table, off the runtime.
async fn with_writer<T: Send + 'static>(
    store: &PgStore,
    schema: &TableSchema,
    mode: Mode,
    f: impl FnOnce(&mut dyn BatchWriter) -> T + Send + 'static,
) -> (Claim, T) {
    let claim = store
        .claim_import("test", 30_000, 8)
        .await
        .expect("claim")
        .expect("an import to claim");
    let mut writer = store
        .open_writer(
            &claim,
            WritePlan {
                position: 0,
                schema: schema.clone(),
                mode,
                dry_run: false,
                max_stored_errors: 1000,
            },
        )
        .expect("writer");
    let out = tokio::task::spawn_blocking(move || f(writer.as_mut()))
        .await
        .expect("writer thread");
    (claim, out)
}

async fn setup(db: &TestDb) -> (PgStore, Workspace) {
    let store = db.store();
    store
        .bootstrap(&new_key(Role::Owner))
        .await
        .expect("bootstrap");
    let ws = store
        .find_workspace("default")
        .await
        .expect("find")
        .expect("default workspace");
    (store, ws)
}

/// A store with its default workspace holding the table `t`.
async fn setup_with(db: &TestDb, t: TableSchema) -> (PgStore, Workspace, TableSchema) {
    let (store, ws) = setup(db).await;
    store.create_table(&ws, &t).await.expect("table");
    (store, ws, t)
}

fn end() -> TableEnd {
    TableEnd {
        status: ImportStatus::Complete,
        inputs: None,
        destroyed: 0,
        error: None,
    }
}

/// Queues `n` imports into `table`.
async fn queue_imports(store: &PgStore, ws: &Workspace, table: &str, mode: Mode, n: usize) {
    for _ in 0..n {
        store
            .create_import(&new_import(ws, table, mode, false))
            .await
            .expect("import");
    }
}

/// Claims the next import, writes `batch` into its first table and finishes the table.
async fn load(
    store: &PgStore,
    schema: &TableSchema,
    mode: Mode,
    batch: Batch,
) -> (Claim, StoreResult<BatchOutcome>) {
    with_writer(store, schema, mode, move |w| {
        let out = w.write(&batch)?;
        w.finish(&end())?;
        Ok(out)
    })
    .await
}

/// Ends a claimed import complete, with its undo journal kept until `rollback_until`.
async fn complete(store: &PgStore, claim: &Claim, rollback_until: Option<time::OffsetDateTime>) {
    let end = ImportEnd {
        status: ImportStatus::Complete,
        error: None,
        rollback_until,
    };
    store.finish_import(claim, &end).await.expect("finish");
}

/// A key-value table's rows as `k=v`, in storage order.
async fn pairs(store: &PgStore, ws: &Workspace, t: &TableSchema) -> Vec<String> {
    let page = store.read_records(ws, t, None, 100).await.expect("read");
    page.rows
        .iter()
        .map(|r| format!("{}={}", r["k"].as_str().unwrap_or("?"), r["v"]))
        .collect()
}

#[tokio::test]
async fn processes_starting_together_migrate_once() {
    let Some(db) = TestDb::create() else { return };
    let url = db.url.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url, None).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().expect("thread").expect("connect");
    }
    // Each migration applied once.
    assert_eq!(
        db.sql("SELECT count(*) FROM intake_schema_version"),
        [[Some(super::MIGRATIONS.len().to_string())]]
    );
}

#[test]
fn a_spare_connection_is_taken_only_when_another_stays_free() {
    let Some(db) = TestDb::create() else { return };
    let pool = super::pool::Pool::new(&db.url, None, 3).expect("pool");
    let first = pool.get().expect("first");
    let spare = pool.get_spare().expect("spare");
    assert!(spare.is_some(), "two of three free: one to spare");
    assert!(
        pool.get_spare().expect("spare").is_none(),
        "the last free one is not spared"
    );
    let last = pool.get().expect("the last one, for whoever needs it");
    drop((first, spare));
    let again = pool.get_spare().expect("spare");
    assert!(again.is_some(), "two idle: one to spare");
    drop((again, last));
}

#[tokio::test]
async fn slugs_postgresql_owns_are_refused_and_a_workspace_gets_its_schema() {
    let Some(db) = TestDb::create() else { return };
    let (store, _) = setup(&db).await;
    for slug in ["public", "information_schema", "pg_catalog", "PG_x", ""] {
        let e = store.create_workspace(slug, "x").await.expect_err(slug);
        assert!(matches!(e, StoreError::Invalid(_)), "{slug}: {e:?}");
    }
    let acme = store.create_workspace("acme", "Acme").await.expect("acme");
    let again = store
        .create_workspace("acme", "Acme")
        .await
        .expect_err("taken");
    assert!(
        matches!(
            again,
            StoreError::Refused(crate::model::Refusal::WorkspaceExists(_))
        ),
        "{again:?}"
    );
    let t = store.create_table(&acme, &people()).await.expect("table");
    assert_eq!(t.physical_name, "acme.people");
    assert_eq!(
        db.sql("SELECT count(*) FROM acme.people"),
        [[Some("0".into())]]
    );
    // The bootstrap workspace is `default`, a keyword: its schema is quoted.
    assert_eq!(
        db.sql("SELECT nspname FROM pg_namespace WHERE nspname IN ('acme', 'default') ORDER BY 1"),
        [[Some("acme".into())], [Some("default".into())]]
    );
}

#[tokio::test]
async fn every_type_reads_back_as_the_sqlite_backend_shows_it() {
    let Some(db) = TestDb::create() else { return };
    let (store, ws) = setup(&db).await;
    let t = schema(json!({"name": "all", "columns": [
        {"name": "s", "type": "string", "max_length": 10},
        {"name": "i", "type": "integer"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "decimal"},
        {"name": "b", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "datetime"},
        {"name": "u", "type": "uuid"},
        {"name": "j", "type": "json"}
    ]}));
    store.create_table(&ws, &t).await.expect("table");
    queue_imports(&store, &ws, "all", Mode::Insert, 1).await;
    let at = time::macros::datetime!(2024-02-29 23:59:58.125 UTC);
    let u = Uuid::now_v7();
    let values = vec![
        Value::Text("héllo".into()),
        Value::Int(-42),
        Value::Float(3.0),
        Value::Decimal("12345678901234567890.000001".into()),
        Value::Bool(true),
        Value::Date(time::macros::date!(0001 - 01 - 01)),
        Value::Datetime(at),
        Value::Uuid(u),
        Value::Json(r#"{"z":1,"a":[1.5,"\u0000"]}"#.into()),
    ];
    let nulls = vec![Value::Null; 9];
    let batch = Batch {
        rows: vec![row(2, values), row(3, nulls)],
        ..Batch::default()
    };
    let (_, out) = with_writer(&store, &t, Mode::Insert, move |w| w.write(&batch)).await;
    assert_eq!(out.expect("write").created, 2);
    let page = store.read_records(&ws, &t, None, 10).await.expect("read");
    assert_eq!(
        serde_json::Value::Array(
            page.rows
                .into_iter()
                .map(serde_json::Value::Object)
                .collect()
        )
        .to_string(),
        json!([
            {"s": "héllo", "i": -42, "f": 3.0, "d": "12345678901234567890.000001", "b": true,
             "day": "0001-01-01", "at": "2024-02-29T23:59:58.125Z", "u": u.to_string(),
             "j": {"z": 1, "a": [1.5, "\u{0}"]}},
            {"s": null, "i": null, "f": null, "d": null, "b": null, "day": null, "at": null,
             "u": null, "j": null}
        ])
        .to_string()
    );
    // Native types, for people who query the table.
    assert_eq!(
        db.sql(
            "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum)
             FROM pg_attribute WHERE attrelid = '\"default\".all'::regclass AND attnum > 0"
        ),
        [[Some(
            "character varying(10),bigint,double precision,numeric,boolean,date,\
             timestamp with time zone,uuid,json,bigint,bigint"
                .into()
        )]]
    );
}

#[tokio::test]
async fn inserts_report_taken_keys_and_unique_values_on_their_lines() {
    let Some(db) = TestDb::create() else { return };
    let (store, ws, t) = setup_with(&db, people()).await;
    queue_imports(&store, &ws, "people", Mode::Insert, 2).await;
    let first = Batch {
        rows: vec![person(2, 1, "a", "a@x.io"), person(3, 2, "b", "b@x.io")],
        ..Batch::default()
    };
    let (claim, out) = load(&store, &t, Mode::Insert, first).await;
    assert_eq!(out.expect("first").created, 2);
    complete(&store, &claim, None).await;
    // A taken key, a key twice in the batch, a taken email, an email twice in the batch.
    let second = Batch {
        rows: vec![
            person(2, 1, "again", "new@x.io"),
            person(3, 3, "c", "c@x.io"),
            person(4, 3, "c2", "c2@x.io"),
            person(5, 4, "d", "a@x.io"),
            person(6, 5, "e", "c@x.io"),
            person(7, 6, "f", "f@x.io"),
        ],
        ..Batch::default()
    };
    let (claim, out) = with_writer(&store, &t, Mode::Insert, move |w| w.write(&second)).await;
    let out = out.expect("second");
    assert_eq!((out.created, out.invalid), (2, 4));
    let errors = store
        .list_row_errors(ws.id, claim.import.id, None, 100)
        .await
        .expect("errors");
    let got: Vec<(u64, Option<String>, String)> = errors
        .iter()
        .map(|e| {
            (
                e.error.line,
                e.error.column.clone(),
                e.error.code.as_str().to_owned(),
            )
        })
        .collect();
    let dup = |line: u64, col: &str| (line, Some(col.to_owned()), "duplicate_key".to_owned());
    assert_eq!(
        got,
        [dup(2, "id"), dup(4, "id"), dup(5, "email"), dup(6, "email")]
    );
    let ids = record_ids(&store, &ws, &t).await;
    assert_eq!(ids, [json!(1), json!(2), json!(3), json!(6)]);
}

/// The `id` of every row of a table, in storage order.
async fn record_ids(store: &PgStore, ws: &Workspace, t: &TableSchema) -> Vec<serde_json::Value> {
    store
        .read_records(ws, t, None, 100)
        .await
        .expect("read")
        .rows
        .iter()
        .map(|r| r["id"].clone())
        .collect()
}

/// A batch of people `ids`, the source's `n`th, ending at byte `n * 100`.
fn people_batch(n: u64, ids: &[i64]) -> Batch {
    Batch {
        rows: ids
            .iter()
            .enumerate()
            .map(|(i, &id)| person(n * 10 + i as u64 + 2, id, "p", &format!("{id}@x.io")))
            .collect(),
        checkpoint: Position {
            byte_offset: n * 100,
            line: n * 10,
            record: n * 10,
        },
        bytes_read: n * 100,
        ..Batch::default()
    }
}

/// Streams `batches` through `writer`; answers what each batch did (rows created), or the
/// error that ended the stream.
fn stream(writer: &mut dyn BatchWriter, batches: Vec<Batch>) -> (Vec<u64>, StoreResult<()>) {
    let mut batches = batches.into_iter();
    let mut created = Vec::new();
    let ended = writer.write_stream(
        &mut || batches.next(),
        &mut |o| {
            created.push(o.created);
            false
        },
        &mut drop,
    );
    (created, ended)
}

#[tokio::test]
async fn streamed_inserts_replay_after_a_taken_key_or_a_lost_commit() {
    let Some(db) = TestDb::create() else { return };
    let (store, ws, t) = setup_with(&db, people()).await;
    queue_imports(&store, &ws, "people", Mode::Insert, 1).await;
    let claim = store
        .claim_import("test", 30_000, 8)
        .await
        .expect("claim")
        .expect("an import to claim");
    let plan = WritePlan {
        position: 0,
        schema: t.clone(),
        mode: Mode::Insert,
        dry_run: false,
        max_stored_errors: 1000,
    };
    let mut writer = store.open_writer(&claim, plan.clone()).expect("writer");
    let (mut writer, first, taken) = tokio::task::spawn_blocking(move || {
        writer.continue_from(Position::default());
        // Two batches stream into one COPY and commit together.
        let first = stream(
            writer.as_mut(),
            vec![people_batch(1, &[1, 2]), people_batch(2, &[3, 4])],
        );
        // A taken key refuses the COPY: nothing of the batch stays, it is to be sent again.
        let taken = stream(writer.as_mut(), vec![people_batch(3, &[5, 1])]);
        (writer, first, taken)
    })
    .await
    .expect("writer thread");
    assert_eq!(first.0, [2, 2]);
    first.1.expect("first stream");
    assert!(matches!(taken.1, Err(StoreError::Replay)), "{:?}", taken.1);
    let table = || db.sql("SELECT checkpoint_offset, processed, created FROM intake_import_tables");
    let row =
        |a: &str, b: &str, c: &str| vec![vec![Some(a.into()), Some(b.into()), Some(c.into())]];
    assert_eq!(table(), row("200", "4", "4"));

    // Sent again from the checkpoint, it goes through the staging table: the taken key is a
    // row error, the other row is written.
    let again = tokio::task::spawn_blocking(move || {
        writer.continue_from(people_batch(2, &[]).checkpoint);
        let again = stream(writer.as_mut(), vec![people_batch(3, &[5, 1])]);
        (writer, again)
    });
    let (_writer, again) = again.await.expect("writer thread");
    again.1.expect("sent again");
    assert_eq!(again.0, [1]);
    assert_eq!(table(), row("300", "6", "5"));

    // A commit the database lost (as a crash would, with commits that did not wait for the
    // disk): the next one finds the checkpoint it follows on from gone, and asks for a replay.
    db.sql("UPDATE intake_import_tables SET checkpoint_offset = 200");
    let mut writer = store.open_writer(&claim, plan).expect("writer");
    let lost = tokio::task::spawn_blocking(move || {
        writer.continue_from(people_batch(3, &[]).checkpoint);
        stream(writer.as_mut(), vec![people_batch(4, &[6])])
    })
    .await
    .expect("writer thread");
    assert!(matches!(lost.1, Err(StoreError::Replay)), "{:?}", lost.1);
    assert_eq!(table(), row("200", "6", "5"));
    let ids = record_ids(&store, &ws, &t).await;
    assert_eq!(ids, [json!(1), json!(2), json!(3), json!(4), json!(5)]);
}

/// A people table with an insert and then an upsert queued.
async fn insert_then_upsert(db: &TestDb) -> (PgStore, Workspace, TableSchema) {
    let (store, ws, t) = setup_with(db, people()).await;
    queue_imports(&store, &ws, "people", Mode::Insert, 1).await;
    queue_imports(&store, &ws, "people", Mode::Upsert, 1).await;
    (store, ws, t)
}

/// The checkpoint and counts of the upsert's table.
fn upsert_counts(db: &TestDb) -> Vec<Vec<Option<String>>> {
    db.sql(
        "SELECT t.checkpoint_offset, t.processed, t.created, t.updated, t.unchanged, t.invalid
         FROM intake_import_tables t JOIN intake_imports i ON i.id = t.import_id
         WHERE i.mode = 'upsert'",
    )
}

/// One row of these values, as [`TestDb::sql`] answers it.
fn one_row(values: &[&str]) -> Vec<Vec<Option<String>>> {
    vec![values.iter().map(|s| Some(s.to_string())).collect()]
}

#[tokio::test]
async fn streamed_upserts_commit_together_and_replay_after_a_unique_conflict() {
    let Some(db) = TestDb::create() else { return };
    let (store, ws, t) = insert_then_upsert(&db).await;
    let (claim, out) = load(&store, &t, Mode::Insert, people_batch(0, &[1, 2])).await;
    assert_eq!(out.expect("first").created, 2);
    complete(&store, &claim, None).await;
    // Key 3 comes in both batches, so the two take the general statement together.
    let mut changed = people_batch(2, &[3, 4]);
    changed.rows[0].values[1] = Value::Text("q".into());
    let conflict = Batch {
        rows: vec![person(32, 5, "p", "1@x.io"), person(33, 6, "p", "6@x.io")],
        ..people_batch(3, &[])
    };
    let (claim, (first, refused, ended)) = with_writer(&store, &t, Mode::Upsert, move |w| {
        w.continue_from(Position::default());
        let first = stream(w, vec![people_batch(1, &[2, 3]), changed]);
        // Key 5's email is key 1's: the transaction is taken back, to be sent again.
        let refused = stream(w, vec![conflict.clone()]);
        w.continue_from(people_batch(2, &[]).checkpoint);
        let again = stream(w, vec![conflict]);
        let ended = w.finish(&end());
        (first, (refused, again), ended)
    })
    .await;
    first.1.expect("first stream");
    let (refused, again) = refused;
    assert!(
        matches!(refused.1, Err(StoreError::Replay)),
        "{:?}",
        refused.1
    );
    again.1.expect("sent again");
    let counts = upsert_counts(&db);
    // 2 unchanged; 3 created, then updated; 4 created; 5 refused; 6 created.
    assert_eq!(counts, one_row(&["300", "6", "3", "1", "1", "1"]));
    ended.expect("finish");
    let errors = store
        .list_row_errors(ws.id, claim.import.id, None, 100)
        .await
        .expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].error.line, errors[0].error.column.as_deref()),
        (32, Some("email"))
    );
    let ids = record_ids(&store, &ws, &t).await;
    assert_eq!(ids, [json!(1), json!(2), json!(3), json!(4), json!(6)]);
}

#[tokio::test]
async fn streamed_upserts_of_many_transactions_commit_in_order() {
    let Some(db) = TestDb::create() else { return };
    let (store, _, t) = insert_then_upsert(&db).await;
    // 5,000-row batches: more rows than three transactions hold, so that one ends while
    // the next is sent.
    let batches = |renamed: bool, last: i64| -> Vec<Batch> {
        let ids: Vec<i64> = (1..=last).collect();
        ids.chunks(5_000)
            .enumerate()
            .map(|(n, ids)| {
                let mut b = people_batch(n as u64 + 1, ids);
                for r in &mut b.rows {
                    if let Value::Int(id) = r.values[0]
                        && renamed
                        && id % 2 == 0
                    {
                        r.values[1] = Value::Text("q".into());
                    }
                }
                b
            })
            .collect()
    };
    let (first, second) = (batches(false, 120_000), batches(true, 125_000));
    for (mode, rows) in [(Mode::Insert, first), (Mode::Upsert, second)] {
        let (claim, (sent, ended)) = with_writer(&store, &t, mode, move |w| {
            w.continue_from(Position::default());
            let sent = stream(w, rows);
            let ended = sent.1.and_then(|()| w.finish(&end()));
            (sent.0.len(), ended)
        })
        .await;
        ended.expect("streamed");
        assert!(sent >= 24, "{sent} batches");
        complete(&store, &claim, None).await;
    }
    let counts = upsert_counts(&db);
    assert_eq!(
        counts,
        one_row(&["2500", "125000", "5000", "60000", "60000", "0"])
    );
    assert_eq!(
        db.sql(
            "SELECT count(*), count(*) FILTER (WHERE name = 'q'), count(DISTINCT _intake_row),
                    count(*) FILTER (WHERE id > 120000 AND _intake_row = id + 120000)
             FROM \"default\".people"
        ),
        // A created row is numbered by its place in the upsert's rows, after the table's.
        one_row(&["125000", "62500", "125000", "5000"])
    );
}

#[tokio::test]
async fn upserts_count_every_row_and_the_last_row_of_a_key_wins() {
    let Some(db) = TestDb::create() else { return };
    let (store, ws) = setup(&db).await;
    let t = schema(json!({"name": "kv", "columns": [
        {"name": "k", "type": "string"},
        {"name": "v", "type": "json"}
    ], "primary_key": ["k"]}));
    store.create_table(&ws, &t).await.expect("table");
    queue_imports(&store, &ws, "kv", Mode::Upsert, 2).await;
    let kv = |line, k: &str, v: &str| row(line, vec![Value::Text(k.into()), Value::Json(v.into())]);
    let first = Batch {
        rows: vec![kv(2, "b", "1"), kv(3, "c", "1"), kv(4, "d", "1")],
        ..Batch::default()
    };
    let an_hour = Some(time::OffsetDateTime::now_utc() + time::Duration::HOUR);
    let (claim, out) = load(&store, &t, Mode::Upsert, first).await;
    assert_eq!(out.expect("first").created, 3);
    complete(&store, &claim, an_hour).await;
    let second = Batch {
        rows: vec![
            kv(2, "a", "1"),                  // created
            kv(3, "a", "2"),                  // updated (by the row above)
            kv(4, "b", "1"),                  // unchanged
            kv(5, "c", "2"),                  // updated
            kv(6, "c", "2"),                  // unchanged (same as the row above)
            kv(7, "a", "{\"x\":1, \"b\":2}"), // updated, JSON as written
            kv(8, "e", "1"),                  // created
        ],
        ..Batch::default()
    };
    let (claim2, out) = load(&store, &t, Mode::Upsert, second).await;
    let out = out.expect("second");
    assert_eq!(
        (out.created, out.updated, out.unchanged),
        (2, 3, 2),
        "{out:?}"
    );
    // Storage order: earlier rows first, new keys where they first appeared.
    assert_eq!(
        pairs(&store, &ws, &t).await,
        ["b=1", "c=2", "d=1", "a={\"x\":1,\"b\":2}", "e=1"]
    );
    // Rolling the second import back restores the first's rows exactly.
    complete(&store, &claim2, an_hour).await;
    store
        .request_rollback(ws.id, claim2.import.id)
        .await
        .expect("rollback");
    let (_, undone) = with_writer(&store, &t, Mode::Upsert, |w| w.roll_back()).await;
    undone.expect("roll back");
    assert_eq!(pairs(&store, &ws, &t).await, ["b=1", "c=1", "d=1"]);
}

#[tokio::test]
async fn two_processes_never_run_more_imports_of_a_workspace_than_its_limit() {
    let Some(db) = TestDb::create() else { return };
    let (store, ws) = setup(&db).await;
    let other = db.store();
    for i in 0..6 {
        let mut t = people();
        t.name = crate::model::schema::Identifier::parse("table", &format!("t{i}")).expect("name");
        store.create_table(&ws, &t).await.expect("table");
        store
            .create_import(&new_import(&ws, &format!("t{i}"), Mode::Insert, false))
            .await
            .expect("import");
    }
    // Another import of t0 waits for the first: one running import per table.
    queue_imports(&store, &ws, "t0", Mode::Insert, 1).await;
    let stores = [Arc::new(store), Arc::new(other)];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            s.claim_import(&format!("w{i}"), 30_000, 3).await
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        if let Some(c) = t.await.expect("task").expect("claim") {
            claimed.push(c.import.tables[0].table.clone());
        }
    }
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), 3, "one import per table");
}

#[tokio::test]
async fn events_appended_concurrently_become_visible_in_id_order() {
    let Some(db) = TestDb::create() else { return };
    let (store, ws) = setup(&db).await;
    store.create_table(&ws, &people()).await.expect("table");
    let import = match store
        .create_import(&new_import(&ws, "people", Mode::Insert, false))
        .await
        .expect("import")
    {
        CreateOutcome::Created(i) => i,
        CreateOutcome::Replayed(_) => unreachable!("no idempotency key"),
    };
    let store = Arc::new(store);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = store.clone();
            let (ws, id) = (ws.id, import.id);
            tokio::spawn(async move {
                for n in 0..40 {
                    s.append_event(ws, id, "test", &json!({"w": w, "n": n}))
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    let mut seen: Vec<i64> = Vec::new();
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let page = store
            .list_workspace_events(ws.id, seen.last().copied(), 1000)
            .await
            .expect("events");
        seen.extend(page.iter().map(|e| e.id));
        if done && page.is_empty() {
            break;
        }
    }
    let all: Vec<i64> = store
        .list_workspace_events(ws.id, None, 10_000)
        .await
        .expect("all")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(seen, all, "a reader following ids missed none");
}
