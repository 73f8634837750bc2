//! Fault injection: a data directory on a size-limited filesystem (a full disk), and a
//! PostgreSQL server whose sessions are terminated, or which is restarted, while an import
//! loads. Each test ends by checking the table holds exactly the rows it should.
//!
//! The full-disk tests mount a tmpfs (root only): elsewhere they are skipped with a message,
//! except under `CI=true`, where they fail. The PostgreSQL tests run with
//! `INTAKE_TEST_BACKEND=postgres` only, on a throwaway cluster each starts for itself with
//! `initdb` on a free port (never the server the other tests share).

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, on_postgres, sql_rows};
#[cfg(debug_assertions)]
use intake::engine::pause::PausePoint;
use intake::engine::pause::PausePoints;
use serde_json::{Value, json};

// ---- Helpers --------------------------------------------------------------------------

/// Shows the server's logs with `RUST_LOG` (e.g. `RUST_LOG=intake=info`), to see retries.
fn logs() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// A tmpfs of a given size, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB; None (saying why) when this machine does not allow it,
    /// except under CI, where not being able to mount fails the test.
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs { dir }),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: the full-disk tests must run, but a tmpfs cannot be mounted: {why}"
        );
        eprintln!(
            "skipped: a tmpfs cannot be mounted here (run as root to test a full disk): {why}"
        );
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0u8; 64 << 10];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC: {e}");
                break;
            }
        }
        // The last bytes, a page at a time.
        while f.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a server being dropped may still hold a file open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Sends a request and answers its status, Retry-After header and JSON body; a 500 fails
/// the test (no fault may come out as an internal error).
async fn call(req: reqwest::RequestBuilder) -> Option<(u16, Option<String>, Value)> {
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.ok()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert_ne!(status, 500, "a fault came out as an internal error: {body}");
    Some((status, retry_after, body))
}

/// A CSV of `n` rows `id,name,amount`, ids 1..=n.
fn csv(n: u64) -> String {
    let mut s = String::from("id,name,amount\n");
    for i in 1..=n {
        s.push_str(&format!(
            "{i},customer number {i} of the batch,{}.{:02}\n",
            i % 9973,
            i % 100
        ));
    }
    s
}

fn people_schema(name: &str) -> Value {
    json!({
        "name": name,
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "name", "type": "string", "required": true},
            {"name": "amount", "type": "decimal"}
        ],
        "primary_key": ["id"]
    })
}

fn terminal(import: &Value) -> bool {
    matches!(
        import["status"].as_str(),
        Some("complete" | "partially_complete" | "failed" | "cancelled")
    )
}

/// Polls an import until `done` holds (a 503 while the database is away is retried, and
/// must carry Retry-After); panics after `limit`. Returns the import and how many 503s were
/// seen.
async fn wait_for(
    s: &TestServer,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, u32) {
    let deadline = Instant::now() + limit;
    let mut unavailable = 0;
    loop {
        if let Some((status, retry_after, body)) = call(s.get(&format!("/v1/imports/{id}"))).await {
            match status {
                200 if done(&body) => return (body, unavailable),
                200 => {}
                503 => {
                    assert!(retry_after.is_some(), "a 503 without Retry-After: {body}");
                    unavailable += 1;
                }
                other => panic!("get import answered {other}: {body}"),
            }
            assert!(
                Instant::now() < deadline,
                "import {id} did not reach the condition in time: {body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- A full disk ----------------------------------------------------------------------

#[tokio::test]
async fn an_upload_that_does_not_fit_on_the_disk_answers_507_and_the_next_one_fits() {
    logs();
    let Some(fs) = Tmpfs::mount(20) else { return };
    let data = fs.path().join("data");
    let s = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    s.create_table(people_schema("people")).await;

    let big = "x".repeat(24 << 20);
    let (status, retry_after, body) = call(
        s.post("/v1/imports?table=people")
            .header("content-type", "text/csv")
            .body(format!("id,name,amount\n1,{big},1\n")),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 507, "{body}");
    assert_eq!(retry_after, None);
    assert_eq!(
        body,
        json!({"error": {
            "code": "storage_full",
            "message": "there is no space left to store the upload; free some space and send it again"
        }})
    );

    // What the refused upload had written was removed: a small one fits and loads.
    let (status, body) = s.upload("table=people", "text/csv", csv(100)).await;
    assert_eq!(status, 202, "{body}");
    let done = s.wait_done(body["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(s.all_records("people").await.len(), 100);
    s.stop().await;
}

/// Loads 250,000 rows (about 12 MiB of source: it fits, but not beside the table it loads)
/// with `query` into a data directory on a 20 MiB tmpfs, and waits for the import's end.
/// None where no tmpfs can be mounted (outside CI) or with PostgreSQL, whose database is
/// not in the data directory.
async fn an_import_filling_the_disk(query: &str) -> Option<(Tmpfs, PathBuf, TestServer, Value)> {
    if on_postgres() {
        eprintln!("skipped: the database is not in the data directory with PostgreSQL");
        return None;
    }
    logs();
    let fs = Tmpfs::mount(20)?;
    let data = fs.path().join("data");
    let s = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    s.create_table(people_schema("people")).await;
    let (status, body) = s.upload(query, "text/csv", csv(250_000)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    let (import, _) = wait_for(&s, &id, Duration::from_secs(60), terminal).await;
    assert_eq!(import["status"], "failed", "{import}");
    let error = import["error"].as_str().expect("error");
    assert!(error.starts_with("storage_full:"), "{error}");
    Some((fs, data, s, import))
}

#[tokio::test]
async fn an_atomic_import_that_fills_the_disk_undoes_every_change() {
    let Some((_fs, data, _s, import)) =
        an_import_filling_the_disk("table=people&on_error=atomic").await
    else {
        return;
    };
    let error = import["error"].as_str().expect("error");
    assert!(error.contains("every change was undone"), "{error}");
    assert_eq!(import["counts"]["created"], 0, "{import}");
    assert_eq!(
        sql_rows(&data, "SELECT count(*) FROM \"default__people\""),
        vec![vec![Some("0".to_owned())]]
    );
    assert_eq!(
        sql_rows(&data, "PRAGMA integrity_check"),
        vec![vec![Some("ok".to_owned())]]
    );
}

#[tokio::test]
async fn an_import_that_fills_the_disk_fails_with_storage_full_and_the_server_restarts_on_it() {
    let Some((fs, data, s, import)) = an_import_filling_the_disk("table=people").await else {
        return;
    };
    let rows = 250_000;
    let id = import["id"].as_str().expect("id").to_owned();

    // The batch that did not fit was rolled back: the table holds exactly the rows counted,
    // the first of the source, each once.
    let created: u64 = import["counts"]["created"].as_u64().expect("created");
    assert!(created < rows, "{import}");
    let check = |dir: &Path| {
        let r = sql_rows(
            dir,
            "SELECT count(*), count(DISTINCT id), coalesce(min(id), 1), coalesce(max(id), 0)
             FROM \"default__people\"",
        );
        let n = |i: usize| {
            r[0][i]
                .as_deref()
                .expect("cell")
                .parse::<u64>()
                .expect("int")
        };
        (n(0), n(1), n(2), n(3))
    };
    assert_eq!(check(&data), (created, created, 1, created));
    assert_eq!(
        sql_rows(&data, "PRAGMA integrity_check"),
        vec![vec![Some("ok".to_owned())]]
    );

    // A process killed mid-import leaves a lease behind, and its log and shared-memory
    // files (held open here, as a killed process leaves them). Its log emptied, the disk
    // then fills up entirely, and the server restarts on it: releasing the lease cannot be
    // written, yet the server starts and serves reads.
    common::sql_execute(
        &data,
        &format!(
            "UPDATE intake_imports SET lease_expires_at = '2999-01-01T00:00:00.000Z' WHERE id = '{id}'"
        ),
    );
    let holder = rusqlite::Connection::open(data.join("intake.db")).expect("open the database");
    s.stop().await;
    holder
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("empty the log");
    let filler = fs.fill();
    let s = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    let (status, _, body) = call(s.get(&format!("/v1/imports/{id}")))
        .await
        .expect("answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(s.all_records("people").await.len() as u64, created);
    // A write answers 507 while the disk is full.
    let (status, _, body) = call(s.post("/v1/tables").json(&people_schema("more")))
        .await
        .expect("answer");
    assert_eq!(status, 507, "{body}");
    assert_eq!(
        body,
        json!({"error": {
            "code": "storage_full",
            "message": "there is no space left to store the change; free some space and send it again"
        }})
    );

    // Once space returns, writes work again and nothing was corrupted.
    std::fs::remove_file(&filler).expect("remove the filler");
    drop(holder);
    let (status, body) = call(s.post(&format!("/v1/imports/{id}/rollback")))
        .await
        .map(|(s, _, b)| (s, b))
        .expect("answer");
    assert_eq!(status, 202, "{body}");
    let (undone, _) = wait_for(&s, &id, Duration::from_secs(60), |i| {
        i["status"] == "rolled_back"
    })
    .await;
    assert_eq!(undone["status"], "rolled_back");
    assert_eq!(check(&data), (0, 0, 1, 0));
    let (status, body) = s.upload("table=people", "text/csv", csv(1_000)).await;
    assert_eq!(status, 202, "{body}");
    let done = s.wait_done(body["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(check(&data), (1_000, 1_000, 1, 1_000));
    s.stop().await;
    assert_eq!(
        sql_rows(&data, "PRAGMA integrity_check"),
        vec![vec![Some("ok".to_owned())]]
    );
}

// ---- PostgreSQL going away ------------------------------------------------------------

/// A PostgreSQL cluster of the test's own, on a free port; stopped and removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    ctl: Ctl,
}

/// What controls a cluster: its directory and port (cheap to hand to a blocking task).
#[derive(Clone)]
struct Ctl {
    root: PathBuf,
    port: u16,
}

/// The path of one of PostgreSQL's programs.
fn pg_bin(program: &str) -> PathBuf {
    for dir in ["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(program)
}

/// Runs a PostgreSQL program as the `postgres` user when this process is root (initdb and
/// the server refuse to run as root).
fn pg_command(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(program));
        c
    } else {
        Command::new(pg_bin(program))
    }
}

impl Cluster {
    /// Creates a cluster with initdb in a temporary directory and starts it on a free port.
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let out = pg_command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(dir.path().join("pg"))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let ctl = Ctl {
            root: dir.path().to_owned(),
            port,
        };
        ctl.pg_ctl(&["start"]);
        Cluster { dir, ctl }
    }
}

impl Ctl {
    /// Runs `pg_ctl` on the cluster, waiting for it to finish.
    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.root.display()
        );
        let out = pg_command("pg_ctl")
            .args(["-w", "-t", "30", "-D"])
            .arg(self.root.join("pg"))
            .arg("-l")
            .arg(self.root.join("log"))
            .args(["-o", &options])
            .args(args)
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs a query on the cluster; answers the first column of each row, as text.
    fn query(&self, sql: &str) -> Vec<Option<String>> {
        let mut c = postgres::Client::connect(&self.url(), postgres::NoTls).expect("connect");
        c.simple_query(sql)
            .expect("query")
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
                _ => None,
            })
            .collect()
    }

    /// Waits until the server under test streams rows with COPY (or `limit` passed);
    /// answers whether it did.
    fn await_copy(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let copying = self.query(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'intake'
                 AND state = 'active' AND query LIKE 'COPY%'",
            );
            if copying != [Some("0".to_owned())] {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Terminates every session of the server under test (named `intake`); answers how many.
    fn terminate_intake_sessions(&self) -> usize {
        self.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'intake' AND pid <> pg_backend_pid()",
        )
        .into_iter()
        .filter(|t| t.as_deref() == Some("t"))
        .count()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.path().join("pg"))
            .arg("stop")
            .output();
    }
}

/// Runs blocking cluster work off the test's runtime.
async fn on_cluster<T: Send + 'static>(ctl: &Ctl, f: impl FnOnce(&Ctl) -> T + Send + 'static) -> T {
    let ctl = ctl.clone();
    tokio::task::spawn_blocking(move || f(&ctl))
        .await
        .expect("cluster task")
}

/// A throwaway cluster and a server on it, with a table to load; None when the suite does
/// not run on PostgreSQL.
/// A server on a PostgreSQL cluster of its own, its workers held at the points `pauses`
/// arms.
async fn server_on_own_cluster(pauses: PausePoints) -> Option<(Cluster, TestServer)> {
    logs();
    if !on_postgres() {
        eprintln!("skipped: the PostgreSQL fault tests run with INTAKE_TEST_BACKEND=postgres");
        return None;
    }
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("start the cluster");
    let url = cluster.ctl.url();
    let dir = cluster.dir.path().join("data");
    let s = TestServer::start_with(move |c| {
        c.data_dir = dir;
        c.database_url = Some(url);
        c.engine.pauses = pauses;
    })
    .await;
    s.create_table(people_schema("people")).await;
    Some((cluster, s))
}

const ROWS: u64 = 300_000;

/// The table holds exactly the source's rows, each once.
async fn assert_exact(cluster: &Cluster) {
    let r = on_cluster(&cluster.ctl, |c| {
        c.query(
            "SELECT concat_ws(',', count(*), count(DISTINCT id), sum(id), sum(length(name)))
         FROM \"default\".people",
        )
    })
    .await;
    let expected_names: u64 = (1..=ROWS)
        .map(|i| format!("customer number {i} of the batch").len() as u64)
        .sum();
    assert_eq!(
        r,
        vec![Some(format!(
            "{ROWS},{ROWS},{},{expected_names}",
            ROWS * (ROWS + 1) / 2
        ))]
    );
}

async fn upload_big(s: &TestServer) -> String {
    let (status, body) = s.upload("table=people", "text/csv", csv(ROWS)).await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

fn processed(import: &Value) -> u64 {
    import["counts"]["processed"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_whose_database_sessions_are_terminated_replays_and_ends_exact() {
    let Some((cluster, s)) = server_on_own_cluster(PausePoints::default()).await else {
        return;
    };
    let id = upload_big(&s).await;
    let mut terminations = 0;
    let mut last = 0;
    let started = Instant::now();
    // Three times, each after the import moved on: cut every session of the server.
    for _ in 0..3 {
        let (import, _) = wait_for(&s, &id, Duration::from_secs(60), |i| {
            terminal(i) || processed(i) > last
        })
        .await;
        if terminal(&import) {
            break;
        }
        last = processed(&import);
        // Mid-COPY: while the writer streams a group of batches in its transaction.
        let cut = on_cluster(&cluster.ctl, |c| {
            if c.await_copy(Duration::from_secs(10)) {
                c.terminate_intake_sessions()
            } else {
                0
            }
        })
        .await;
        if cut > 0 {
            terminations += 1;
        }
    }
    assert!(
        terminations > 0,
        "no session was terminated while the import ran"
    );
    let (import, unavailable) = wait_for(&s, &id, Duration::from_secs(60), terminal).await;
    eprintln!(
        "terminated {terminations} time(s); ended {} in {:?}; {unavailable} answer(s) 503",
        import["status"],
        started.elapsed()
    );
    assert_eq!(import["status"], "complete", "{import}");
    assert_eq!(import["counts"]["created"], ROWS);
    assert_eq!(import["counts"]["processed"], ROWS);
    assert_exact(&cluster).await;
    s.stop().await;
}

// Built with debug assertions only: release builds have no pause points.
#[cfg(debug_assertions)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_survives_a_restart_of_postgresql_and_requests_meanwhile_answer_503() {
    // Batches of 5,000 rows: by the 11th, a group of them (50,000 rows at most) committed,
    // and the writer is in the middle of the next when the database stops.
    let held = PausePoint::AfterBatch(11);
    let pauses = PausePoints::default();
    pauses.arm(held);
    let Some((cluster, s)) = server_on_own_cluster(pauses.clone()).await else {
        return;
    };
    let id = upload_big(&s).await;
    let started = Instant::now();
    pauses.reached(held).await;
    let (import, _) = wait_for(&s, &id, Duration::from_secs(60), |i| {
        terminal(i) || processed(i) > 0
    })
    .await;
    assert!(
        !terminal(&import),
        "the import ended before the restart: {import}"
    );

    // Stopped (fast: sessions are cut), the database is away: a request answers 503 with
    // Retry-After. Then it starts again and the import carries on.
    let down = Instant::now();
    let down_at = time::OffsetDateTime::now_utc();
    on_cluster(&cluster.ctl, |c| c.pg_ctl(&["-m", "fast", "stop"])).await;
    // Away for two seconds (the worker backs off meanwhile), every request answered 503.
    let mut refused = 0;
    while down.elapsed() < Duration::from_secs(2) {
        let (status, retry_after, body) = call(s.get(&format!("/v1/imports/{id}")))
            .await
            .expect("answer");
        assert_eq!(status, 503, "{body}");
        assert_eq!(retry_after.as_deref(), Some("2"), "{body}");
        assert_eq!(
            body,
            json!({"error": {
                "code": "database_unavailable",
                "message": "the database is unavailable for now; send the request again shortly"
            }})
        );
        refused += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused > 0);
    on_cluster(&cluster.ctl, |c| c.pg_ctl(&["start"])).await;
    eprintln!("the database was away for {:?}", down.elapsed());
    pauses.release(held);

    let (import, unavailable) = wait_for(&s, &id, Duration::from_secs(60), terminal).await;
    eprintln!(
        "ended {} in {:?}; {unavailable} answer(s) 503",
        import["status"],
        started.elapsed()
    );
    assert_eq!(import["status"], "complete", "{import}");
    assert_eq!(import["counts"]["created"], ROWS);
    // It was still loading when the database stopped.
    let completed = import["completed_at"].as_str().expect("completed_at");
    let completed =
        time::OffsetDateTime::parse(completed, &time::format_description::well_known::Rfc3339)
            .expect("a timestamp");
    assert!(completed > down_at, "{import}");
    assert_exact(&cluster).await;
    s.stop().await;
}
