//! Several processes sharing one PostgreSQL database and one object store: imports sent to
//! any of them are spread across all, a process killed with SIGKILL has its import resumed by
//! another from its checkpoint, and every import ends exactly once with exact counts and
//! exact rows. Runs on the PostgreSQL backend only (INTAKE_TEST_BACKEND=postgres).

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

const KEY: &str = "intake_multiprocess_owner_key_01";
const IMPORTS: usize = 20;
/// Rows of each of the twenty imports: enough for an import to commit more than once (a
/// transaction holds up to 50,000 rows), so that a process dies between its checkpoints.
const ROWS: usize = 100_000;
/// Rows of the import that is streamed and cancelled through another process.
const BIG_ROWS: usize = 1_000_000;
const PER_WORKSPACE: usize = 3;

/// A child `intake serve` on its own data directory, sharing the database and sources.
struct Node {
    child: Child,
    base: String,
}

/// The database and object store every process of a test shares (named after the first
/// process's data directory), dropped with the test.
struct Shared {
    root: tempfile::TempDir,
    first: PathBuf,
    database_url: String,
    blob_url: String,
}

impl Shared {
    /// The shared backend, or `None` (saying so) off PostgreSQL.
    fn new() -> Option<Shared> {
        if !common::on_postgres() {
            eprintln!("skipped: runs on PostgreSQL only (INTAKE_TEST_BACKEND=postgres)");
            return None;
        }
        let root = tempfile::tempdir().expect("temp dir");
        let first = root.path().join("node-0");
        let database_url = common::backend_args(&first)[1].clone();
        let blob_url = match std::env::var("INTAKE_TEST_BLOB_URL") {
            Ok(b) if !b.is_empty() => format!(
                "{}/{}",
                b.trim_end_matches('/'),
                common::database_name(&first)
            ),
            _ => format!("file://{}", root.path().join("shared-sources").display()),
        };
        Some(Shared {
            root,
            first,
            database_url,
            blob_url,
        })
    }

    /// An `intake serve` with two workers on data directory `node-<i>`.
    fn serve(&self, i: usize) -> Node {
        self.spawn(i, "serve", 2)
    }

    /// An `intake <command>` with `workers` workers on data directory `node-<i>`.
    fn spawn(&self, i: usize, command: &str, workers: usize) -> Node {
        let data = self.root.path().join(format!("node-{i}"));
        spawn_with(
            &data,
            &self.database_url,
            &self.blob_url,
            command,
            workers,
            &[],
        )
    }

    /// An `intake serve` on `node-<i>` whose first import to write its `batch`-th batch
    /// waits there until the file `release` exists (a pause point of test builds).
    fn serve_paused(&self, i: usize, batch: u64, release: &Path) -> Node {
        let data = self.root.path().join(format!("node-{i}"));
        let env = [
            ("INTAKE_TEST_PAUSE_AFTER_BATCH", batch.to_string()),
            ("INTAKE_TEST_PAUSE_RELEASE", release.display().to_string()),
        ];
        spawn_with(&data, &self.database_url, &self.blob_url, "serve", 2, &env)
    }

    /// Rows of a query on the shared database.
    fn sql(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        common::sql_rows(&self.first, sql)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        common::drop_database_of(&self.first);
    }
}

/// An `intake serve` (its base URL) or `intake worker` (no URL) with `workers` workers.
fn spawn_with(
    data: &Path,
    database_url: &str,
    blob_url: &str,
    command: &str,
    workers: usize,
    env: &[(&str, String)],
) -> Node {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intake"));
    cmd.arg(command).envs(env.iter().map(|(k, v)| (*k, v)));
    if command == "serve" {
        cmd.args(["--bind", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .arg("--data-dir")
        .arg(data)
        .args(["--database-url", database_url, "--blob-url", blob_url])
        .args(["--lease-seconds", "2", "--workers", &workers.to_string()])
        .args(["--workspace-concurrency", &PER_WORKSPACE.to_string()])
        .env("INTAKE_BOOTSTRAP_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn intake");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("intake exited before it was ready")
            .expect("read stdout");
        if let Some(rest) = line.strip_prefix("intake is listening on ") {
            break rest.trim().to_owned();
        }
        if line.starts_with("intake worker is running") {
            break String::new();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Node { child, base }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.bearer_auth(KEY).send().await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// `rows` rows of import `n`: keys of their own, a name and an amount derived from the key.
fn source(n: usize, rows: usize) -> String {
    let mut csv = String::with_capacity(rows * 32);
    csv.push_str("id,name,amount\n");
    for i in 0..rows {
        let id = n * 1_000_000 + i;
        csv.push_str(&format!(
            "{id},\"name {id}, n{n}\",{}.{:02}\n",
            id % 997,
            id % 100
        ));
    }
    csv
}

/// Creates table `name` (the columns of `source`) through the process at `base`.
async fn create_table(client: &reqwest::Client, base: &str, name: &str) {
    let (status, body) = call(client.post(format!("{base}/v1/tables")).json(&json!({
        "name": name,
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "name", "type": "string"},
            {"name": "amount", "type": "decimal"}
        ],
        "primary_key": ["id"]
    })))
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_twenty_imports_and_survive_a_kill() {
    let Some(shared) = Shared::new() else { return };
    let mut nodes: Vec<Option<Node>> = (0..3).map(|i| Some(shared.serve(i))).collect();
    let client = reqwest::Client::new();
    let bases: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().expect("node").base.clone())
        .collect();

    // Twenty tables, one import each, sent to the three processes in turn.
    let mut ids = Vec::new();
    for n in 0..IMPORTS {
        let base = &bases[n % 3];
        create_table(&client, base, &format!("t{n}")).await;
    }
    for n in 0..IMPORTS {
        let base = &bases[n % 3];
        let (status, body) = call(
            client
                .post(format!("{base}/v1/imports?table=t{n}"))
                .header("content-type", "text/csv")
                .body(source(n, ROWS)),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }

    // Watch the leases: which processes work, and how many imports run at once.
    let pids: Vec<u32> = nodes
        .iter()
        .map(|n| n.as_ref().expect("node").child.id())
        .collect();
    let mut owners = BTreeSet::new();
    // The index of the process killed part-way through an import.
    let mut killed: Option<usize> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let live = shared.sql(
            "SELECT lease_owner, processed FROM intake_imports \
             WHERE status = 'processing' AND lease_expires_at > now()",
        );
        assert!(
            live.len() <= PER_WORKSPACE,
            "{} imports run at once, over the workspace's limit of {PER_WORKSPACE}",
            live.len()
        );
        for row in &live {
            let owner = row[0].clone().unwrap_or_default();
            let pid: u32 = owner.split('-').next().unwrap_or("").parse().unwrap_or(0);
            owners.insert(pid);
            let processed: u64 = row[1].as_deref().unwrap_or("0").parse().unwrap_or(0);
            // Kill the first process seen part-way through an import: past a checkpoint,
            // before the end.
            if killed.is_none()
                && processed > 0
                && processed < ROWS as u64
                && let Some(i) = pids.iter().position(|p| *p == pid)
            {
                drop(nodes[i].take());
                killed = Some(i);
            }
        }
        let watcher = &bases[killed.map_or(0, |k| (k + 1) % 3)];
        let (_, page) = call(client.get(format!("{watcher}/v1/imports?limit=100"))).await;
        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        for import in page["data"].as_array().expect("imports") {
            *statuses
                .entry(import["status"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        if statuses.get("complete") == Some(&IMPORTS) && killed.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let unfinished = shared.sql(
                "SELECT status, lease_owner, processed, error FROM intake_imports \
                 WHERE status <> 'complete'",
            );
            panic!(
                "imports did not all end within 300 s: {statuses:?}; killed node: {killed:?} \
                 of pids {pids:?}; unfinished: {unfinished:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        owners.len() >= 2,
        "imports ran in one process only: {owners:?}"
    );
    let killed = killed.expect("the watch ends once a process is killed");
    let survivors: Vec<&String> = (0..3).filter(|i| *i != killed).map(|i| &bases[i]).collect();

    // Exact counts, exactly one completion each, exact rows, whichever process answers.
    for (n, id) in ids.iter().enumerate() {
        let base = survivors[n % 2];
        let (_, import) = call(client.get(format!("{base}/v1/imports/{id}"))).await;
        assert_eq!(import["status"], "complete", "{import}");
        let counts = &import["counts"];
        assert_eq!(counts["processed"], ROWS, "{import}");
        assert_eq!(counts["created"], ROWS, "{import}");
        assert_eq!(counts["invalid"], 0, "{import}");
        let (_, events) = call(client.get(format!("{base}/v1/imports/{id}/events"))).await;
        let mut kinds: HashMap<String, usize> = HashMap::new();
        for e in events["data"].as_array().expect("events") {
            *kinds
                .entry(e["type"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        assert_eq!(kinds.get("import.completed"), Some(&1), "{events}");
        let rows = shared.sql(&format!(
            "SELECT count(*), count(DISTINCT id), sum(id), sum(amount) FROM \"default\".\"t{n}\""
        ));
        let ids_sum: usize = (0..ROWS).map(|i| n * 1_000_000 + i).sum();
        let amount_sum: f64 = (0..ROWS)
            .map(|i| {
                let id = n * 1_000_000 + i;
                (id % 997) as f64 + (id % 100) as f64 / 100.0
            })
            .sum();
        assert_eq!(rows[0][0].as_deref(), Some(ROWS.to_string().as_str()));
        assert_eq!(rows[0][1].as_deref(), Some(ROWS.to_string().as_str()));
        assert_eq!(rows[0][2].as_deref(), Some(ids_sum.to_string().as_str()));
        let stored: f64 = rows[0][3].as_deref().unwrap_or("0").parse().unwrap_or(0.0);
        assert!(
            (stored - amount_sum).abs() < 0.005,
            "{stored} vs {amount_sum}"
        );
    }
}

/// The event names of a whole SSE response, in order (until the server closes it).
async fn event_names(resp: reqwest::Response) -> Vec<String> {
    let mut names = Vec::new();
    let mut buf = String::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(name) = block.lines().find_map(|l| l.strip_prefix("event:")) {
                names.push(name.trim().to_owned());
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_and_a_cancel_through_another_process_reach_the_import() {
    let Some(shared) = Shared::new() else { return };
    // A's import waits after its 11th batch (55,000 rows: past PostgreSQL's first group
    // commit of 50,000) until the test releases it, so the cancel provably comes mid-way.
    let release = shared.root.path().join("release");
    let a = shared.serve_paused(0, 11, &release);
    let b = shared.serve(1);
    let client = reqwest::Client::new();
    create_table(&client, &a.base, "t0").await;
    let big = source(0, BIG_ROWS);
    let (status, body) = call(
        client
            .post(format!("{}/v1/imports?table=t0", a.base))
            .header("content-type", "text/csv")
            .body(big),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();

    // Process B streams the import that was sent to A, and cancels it part-way.
    let resp = client
        .get(format!("{}/v1/imports/{id}/stream", b.base))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200);
    let stream = tokio::spawn(event_names(resp));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, import) = call(client.get(format!("{}/v1/imports/{id}", b.base))).await;
        if import["counts"]["processed"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import never progressed: {import}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = call(client.post(format!("{}/v1/imports/{id}/cancel", b.base))).await;
    assert_eq!(status, 200, "{body}");
    std::fs::write(&release, b"").expect("release the import");
    let names = tokio::time::timeout(Duration::from_secs(120), stream)
        .await
        .expect("the stream ended")
        .expect("stream task");
    assert!(names.iter().any(|n| n == "progress"), "{names:?}");
    assert!(names.iter().any(|n| n == "import.cancelled"), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("end"), "{names:?}");
    let (_, import) = call(client.get(format!("{}/v1/imports/{id}", a.base))).await;
    assert_eq!(import["status"], "cancelled", "{import}");
    let processed = import["counts"]["processed"].as_u64().unwrap_or(0);
    assert!(
        processed < BIG_ROWS as u64,
        "cancelled before the end: {import}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_only_server_leaves_its_imports_to_a_worker_process() {
    let Some(shared) = Shared::new() else { return };
    let api = shared.spawn(0, "serve", 0);
    let worker = shared.spawn(1, "worker", 1);
    let client = reqwest::Client::new();
    create_table(&client, &api.base, "t0").await;
    let (status, body) = call(
        client
            .post(format!("{}/v1/imports?table=t0", api.base))
            .header("content-type", "text/csv")
            .body(source(0, 200_000)),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    // Which processes hold the import while it runs (a worker's name starts with its pid).
    let mut owners = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let import = loop {
        let held = shared.sql(&format!(
            "SELECT lease_owner FROM intake_imports WHERE id = '{id}'"
        ));
        if let Some(owner) = held[0][0].as_deref() {
            owners.insert(owner.split('-').next().unwrap_or("").to_owned());
        }
        let (_, import) = call(client.get(format!("{}/v1/imports/{id}", api.base))).await;
        if import["status"] == "complete" {
            break import;
        }
        assert!(
            Instant::now() < deadline,
            "the import never ended: {import}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(import["counts"]["created"], 200_000, "{import}");
    assert_eq!(
        owners,
        BTreeSet::from([worker.child.id().to_string()]),
        "only the worker process runs imports"
    );
}

#[test]
fn a_server_without_workers_needs_a_shared_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("INTAKE_DATABASE_URL")
        .output()
        .expect("run intake");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--workers 0 needs --database-url"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["worker", "--workers", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run intake");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs --workers 1 or more"), "{err}");
}
