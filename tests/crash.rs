//! Kill -9 at random instants: a child `intake serve` loading a large file is killed with
//! SIGKILL again and again and restarted each time; the table must end exactly as after an
//! uninterrupted run (row-by-row checksum) with exact counts.
//!
//! The size is `INTAKE_CRASH_ROWS` (default 60 000 rows) and the number of kills
//! `INTAKE_CRASH_KILLS` (default 8); `scripts/crash-test.sh` runs a larger version.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{generator, orders_schema};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const KEY: &str = "intake_crash_test_owner_key_0123";

/// A child server process on its own data directory.
struct Child_ {
    child: Child,
    base: String,
}

fn spawn(data: &Path) -> Child_ {
    let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(common::backend_args(data))
        .env("INTAKE_BOOTSTRAP_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn intake");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("intake exited before listening")
            .expect("read stdout");
        if let Some(rest) = line.strip_prefix("intake is listening on ") {
            break rest.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Child_ { child, base }
}

impl Child_ {
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn get(base: &str, path: &str) -> Option<Value> {
    let resp = client()
        .get(format!("{base}{path}"))
        .bearer_auth(KEY)
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

async fn upload(base: &str, file: &Path, query: &str) -> Option<Value> {
    let body = tokio::fs::read(file).await.expect("read file");
    let resp = client()
        .post(format!("{base}/v1/imports?{query}"))
        .bearer_auth(KEY)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .ok()?;
    if resp.status().as_u16() != 202 {
        return None;
    }
    resp.json().await.ok()
}

async fn create_table(base: &str) {
    let resp = client()
        .post(format!("{base}/v1/tables"))
        .bearer_auth(KEY)
        .json(&orders_schema("orders"))
        .send()
        .await
        .expect("create table");
    assert_eq!(resp.status().as_u16(), 201);
}

/// Whether the import infers and creates its table (the one-step load).
fn creates_table(query: &str) -> bool {
    query.contains("create_table=true")
}

fn terminal(import: &Value) -> bool {
    matches!(
        import["status"].as_str(),
        Some("complete" | "partially_complete" | "failed" | "cancelled")
    )
}

/// Checksum of the table's rows in key order, read straight from the database.
fn checksum(data: &Path) -> (u64, String) {
    let rows = common::sql_rows(
        data,
        &format!(
            "SELECT id, email, full_name, country, amount, quantity, active, created_at, notes \
             FROM {} ORDER BY id",
            common::physical_table("orders")
        ),
    );
    let mut h = Sha256::new();
    for row in &rows {
        for cell in row {
            h.update(format!("{cell:?}\u{1f}").as_bytes());
        }
        h.update(b"\x1e");
    }
    (
        rows.len() as u64,
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    )
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator of kill instants (printed seed makes a failure replayable).
struct Lcg(u64);
impl Lcg {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

async fn run_clean(file: &Path, dir: &Path, query: &str) -> (Value, (u64, String)) {
    let server = spawn(dir);
    if !creates_table(query) {
        create_table(&server.base).await;
    }
    let import = upload(&server.base, file, query).await.expect("upload");
    let id = import["id"].as_str().expect("id").to_owned();
    let done = wait_terminal(&server.base, &id, Duration::from_secs(300))
        .await
        .expect("finished");
    server.kill();
    (done, checksum(dir))
}

async fn wait_terminal(base: &str, id: &str, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(i) = get(base, &format!("/v1/imports/{id}")).await
            && terminal(&i)
        {
            return Some(i);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

async fn crash_run(
    file: &Path,
    dir: &Path,
    query: &str,
    kills: u64,
    seed: u64,
) -> (Value, (u64, String)) {
    let mut rng = Lcg(seed);
    let mut server = spawn(dir);
    if !creates_table(query) {
        create_table(&server.base).await;
    }
    // Kill during an upload: an upload cut short never becomes an import.
    {
        let base = server.base.clone();
        let f: PathBuf = file.to_owned();
        let q = query.to_owned();
        let pending = tokio::spawn(async move { upload(&base, &f, &q).await });
        tokio::time::sleep(Duration::from_millis(rng.next_ms(1, 40))).await;
        server.kill();
        let accepted = pending.await.ok().flatten();
        server = spawn(dir);
        let list = get(&server.base, "/v1/imports").await.expect("list");
        let ids: Vec<&str> = list["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        // Either the upload was committed before the kill (then it is a real import, answered
        // or not) or nothing of it exists.
        assert!(
            ids.len() <= 1,
            "unexpected imports after a killed upload: {list}"
        );
        if let Some(accepted) = &accepted {
            assert_eq!(
                ids,
                vec![accepted["id"].as_str().expect("id")],
                "an accepted upload must survive"
            );
        }
        if let Some(id) = ids.first() {
            let id = id.to_string();
            return finish_with_kills(server, dir, &id, kills, &mut rng).await;
        }
    }
    let import = upload(&server.base, file, query).await.expect("upload");
    let id = import["id"].as_str().expect("id").to_owned();
    finish_with_kills(server, dir, &id, kills, &mut rng).await
}

async fn finish_with_kills(
    mut server: Child_,
    dir: &Path,
    id: &str,
    kills: u64,
    rng: &mut Lcg,
) -> (Value, (u64, String)) {
    let mut killed = 0;
    while killed < kills {
        tokio::time::sleep(Duration::from_millis(rng.next_ms(20, 400))).await;
        let state = get(&server.base, &format!("/v1/imports/{id}"))
            .await
            .expect("import");
        if terminal(&state) {
            break;
        }
        server.kill();
        killed += 1;
        server = spawn(dir);
    }
    let done = wait_terminal(&server.base, id, Duration::from_secs(300))
        .await
        .expect("import finished after restarts");
    server.kill();
    eprintln!("import ended after {killed} kills");
    (done, checksum(dir))
}

async fn compare(query: &str, rows: u64, seed: u64) {
    let Some(generator_py) = generator() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("orders.csv");
    let status = Command::new("python3")
        .arg(&generator_py)
        .args([
            "--rows",
            &rows.to_string(),
            "--invalid-rate",
            "0.01",
            "--no-manifest",
            "--out",
        ])
        .arg(&file)
        .status()
        .expect("run gen.py");
    assert!(status.success());
    let kills = env_number("INTAKE_CRASH_KILLS", 8);
    eprintln!("crash test: {rows} rows, {kills} kills, seed {seed}, options {query}");
    let (clean, clean_sum) = run_clean(&file, &tmp.path().join("clean"), query).await;
    let (crashed, crashed_sum) =
        crash_run(&file, &tmp.path().join("crashed"), query, kills, seed).await;
    assert_eq!(crashed["status"], clean["status"]);
    assert_eq!(
        crashed["counts"], clean["counts"],
        "counts differ after kills"
    );
    assert_eq!(crashed_sum, clean_sum, "table contents differ after kills");
    if creates_table(query) {
        // The same table, whatever instant the inference or the load was killed at.
        let schema = |i: &Value| i["tables"][0]["created_schema"].clone();
        assert!(schema(&clean).is_object(), "{clean}");
        assert_eq!(schema(&crashed), schema(&clean));
        return;
    }
    let invalid = (rows as f64 * 0.01).round() as u64;
    assert_eq!(clean["counts"]["invalid"], json!(invalid));
}

fn seed() -> u64 {
    std::env::var("INTAKE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 2654435761)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_insert_import_killed_at_random_instants_ends_exactly_as_an_uninterrupted_one() {
    compare(
        "table=orders",
        env_number("INTAKE_CRASH_ROWS", 60_000),
        seed(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_step_import_killed_at_random_instants_creates_and_loads_the_same_table() {
    compare(
        "table=orders&create_table=true",
        env_number("INTAKE_CRASH_ROWS", 60_000),
        seed(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replace_import_killed_at_random_instants_ends_exactly_as_an_uninterrupted_one() {
    compare(
        "table=orders&mode=replace",
        env_number("INTAKE_CRASH_ROWS", 60_000),
        seed() ^ 0x5eed,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_killed_at_random_instants_still_restores_the_table_exactly() {
    let Some(generator_py) = generator() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (first, second) = (tmp.path().join("first.csv"), tmp.path().join("second.csv"));
    let rows = env_number("INTAKE_CRASH_ROWS", 60_000);
    for (file, seed) in [(&first, "1"), (&second, "2")] {
        let status = Command::new("python3")
            .arg(&generator_py)
            .args([
                "--rows",
                &rows.to_string(),
                "--seed",
                seed,
                "--no-manifest",
                "--out",
            ])
            .arg(file)
            .status()
            .expect("run gen.py");
        assert!(status.success());
    }
    let dir = tmp.path().join("data");
    let mut server = spawn(&dir);
    create_table(&server.base).await;
    let a = upload(&server.base, &first, "table=orders")
        .await
        .expect("upload");
    wait_terminal(
        &server.base,
        a["id"].as_str().unwrap(),
        Duration::from_secs(300),
    )
    .await
    .expect("first");
    let before = checksum(&dir);
    // Same ids, other values: an upsert that updates every row.
    let b = upload(&server.base, &second, "table=orders&mode=upsert")
        .await
        .expect("upload");
    let id = b["id"].as_str().unwrap().to_owned();
    let b = wait_terminal(&server.base, &id, Duration::from_secs(300))
        .await
        .expect("second");
    assert_eq!(b["counts"]["updated"], json!(rows), "{b}");
    let resp = client()
        .post(format!("{}/v1/imports/{id}/rollback", server.base))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("rollback");
    assert_eq!(resp.status().as_u16(), 202);
    let mut rng = Lcg(seed());
    for _ in 0..env_number("INTAKE_CRASH_KILLS", 8) {
        tokio::time::sleep(Duration::from_millis(rng.next_ms(5, 150))).await;
        let state = get(&server.base, &format!("/v1/imports/{id}"))
            .await
            .expect("import");
        if state["status"] == "rolled_back" {
            break;
        }
        server.kill();
        server = spawn(&dir);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let state = get(&server.base, &format!("/v1/imports/{id}"))
            .await
            .expect("import");
        if state["status"] == "rolled_back" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollback did not finish: {state}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    server.kill();
    assert_eq!(
        checksum(&dir),
        before,
        "the table differs from before the rolled-back import"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_interrupted_by_a_kill_still_ends_cancelled_with_consistent_counts() {
    let Some(generator_py) = generator() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("orders.csv");
    let rows = env_number("INTAKE_CRASH_ROWS", 60_000);
    let status = Command::new("python3")
        .arg(&generator_py)
        .args(["--rows", &rows.to_string(), "--no-manifest", "--out"])
        .arg(&file)
        .status()
        .expect("run gen.py");
    assert!(status.success());
    let dir = tmp.path().join("data");
    let server = spawn(&dir);
    create_table(&server.base).await;
    let import = upload(&server.base, &file, "table=orders")
        .await
        .expect("upload");
    let id = import["id"].as_str().unwrap().to_owned();
    let resp = client()
        .post(format!("{}/v1/imports/{id}/cancel", server.base))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("cancel");
    assert!(matches!(resp.status().as_u16(), 200 | 409));
    server.kill();
    let server = spawn(&dir);
    let done = wait_terminal(&server.base, &id, Duration::from_secs(300))
        .await
        .expect("ended");
    server.kill();
    assert!(
        matches!(done["status"].as_str(), Some("cancelled" | "complete")),
        "{done}"
    );
    let c = &done["counts"];
    let sum: u64 = ["created", "updated", "unchanged", "invalid"]
        .iter()
        .map(|k| c[*k].as_u64().unwrap())
        .sum();
    assert_eq!(c["processed"].as_u64().unwrap(), sum, "{c}");
    assert_eq!(
        checksum(&dir).0,
        c["created"].as_u64().unwrap(),
        "rows in the table = rows created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ndjson_import_killed_midway_reports_an_unknown_field_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rows = env_number("INTAKE_CRASH_ROWS", 60_000);
    let mut body = String::new();
    for i in 1..=rows {
        body.push_str(&format!(
            "{{\"id\": {i}, \"email\": \"p{i}@example.com\", \"full_name\": \"P {i}\", \"country\": \"FR\", \"amount\": \"1.5\", \"quantity\": 1, \"active\": true, \"created_at\": \"2024-01-01T00:00:00Z\", \"extra\": {i}}}\n"
        ));
    }
    let dir = tmp.path().join("data");
    let mut server = spawn(&dir);
    create_table(&server.base).await;
    let resp = client()
        .post(format!("{}/v1/imports?table=orders", server.base))
        .bearer_auth(KEY)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.json::<Value>().await.expect("json")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut rng = Lcg(seed() ^ 0xfeed);
    for _ in 0..env_number("INTAKE_CRASH_KILLS", 8) {
        tokio::time::sleep(Duration::from_millis(rng.next_ms(20, 300))).await;
        let state = get(&server.base, &format!("/v1/imports/{id}"))
            .await
            .expect("import");
        if terminal(&state) {
            break;
        }
        server.kill();
        server = spawn(&dir);
    }
    let done = wait_terminal(&server.base, &id, Duration::from_secs(300))
        .await
        .expect("ended");
    server.kill();
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["counts"]["created"], json!(rows));
    assert_eq!(done["counts"]["warnings"], 1, "{done}");
}
