//! Test harness: starts a real server in-process on a random port with a temp data directory
//! and talks HTTP to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use intake::Config;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The owner key every test server starts with.
pub const OWNER_KEY: &str = "intake_test_owner_key_0123456789";

/// A running server.
pub struct TestServer {
    pub base: String,
    pub key: String,
    pub client: Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    owned_database: Option<String>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(name) = self.owned_database.take() {
            // The synchronous client cannot run on the test's runtime thread.
            let _ = std::thread::spawn(move || drop_database(&name)).join();
        }
    }
}

impl TestServer {
    /// Starts a server with default settings.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server that runs no import (no workers) on a data directory that outlives
    /// it: for a state made by hand before a server with workers takes its imports up.
    /// Answers the directory's holder, the data directory and the server.
    pub async fn start_idle() -> (tempfile::TempDir, PathBuf, TestServer) {
        let holder = tempfile::tempdir().expect("temp dir");
        let dir = holder.path().join("data");
        let d = dir.clone();
        let s = TestServer::start_with(move |c| {
            c.data_dir = d;
            c.engine.workers = 0;
        })
        .await;
        (holder, dir, s)
    }

    /// Starts a server after adjusting its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let own_data = dir.path().join("data");
        let mut config = Config::new(own_data.clone());
        config.bootstrap_key = Some(OWNER_KEY.to_owned());
        config.engine.poll_interval = Duration::from_millis(50);
        adjust(&mut config);
        // A server of a directory the test chose (to restart on it) keeps its database
        // until the test process ends; one of its own directory drops it when it stops.
        let owned_database = if on_postgres() && config.data_dir == own_data {
            Some(database_name(&config.data_dir))
        } else {
            None
        };
        backend_config(&mut config).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(intake::launch(
            config,
            listener,
            async {
                let _ = stopped.await;
            },
            move |_| {
                let _ = ready_tx.send(());
            },
        ));
        ready_rx.await.expect("server failed to start");
        TestServer {
            base: format!("http://{addr}"),
            key: OWNER_KEY.to_owned(),
            client: Client::new(),
            dir,
            stop: Some(stop),
            handle: Some(handle),
            owned_database,
        }
    }

    /// The SQLite database file of the server.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data").join("intake.db")
    }

    /// The server's data directory (when the test did not choose another).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server result");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the owner key.
    pub fn req(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.req_as(&self.key, method, path)
    }

    /// A request with another key.
    pub fn req_as(&self, key: &str, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.req(reqwest::Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.req(reqwest::Method::DELETE, path)
    }

    /// Creates a table; panics unless the answer is 201.
    pub async fn create_table(&self, schema: Value) -> Value {
        let (status, body) = send(self.post("/v1/tables").json(&schema)).await;
        assert_eq!(status, 201, "create table: {body}");
        body
    }

    /// Creates a key of a role and returns its secret.
    pub async fn create_key(&self, role: &str) -> String {
        let (status, body) = send(
            self.post("/v1/keys")
                .json(&json!({"name": format!("{role} key"), "role": role})),
        )
        .await;
        assert_eq!(status, 201, "create key: {body}");
        body["key"].as_str().expect("key").to_owned()
    }

    /// Uploads a raw body to `POST /v1/imports?{query}`; returns status and body.
    pub async fn upload(
        &self,
        query: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        send(
            self.post(&format!("/v1/imports?{query}"))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// Waits until an import is terminal (or a minute passed) and returns it.
    pub async fn wait_done(&self, id: &str) -> Value {
        self.wait_until(id, |i| {
            matches!(
                i["status"].as_str(),
                Some(
                    "complete"
                        | "partially_complete"
                        | "failed"
                        | "cancelled"
                        | "rolled_back"
                        | "unsupported"
                )
            )
        })
        .await
    }

    /// Polls an import until `done` holds; panics after 120 s.
    pub async fn wait_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, body) = send(self.get(&format!("/v1/imports/{id}"))).await;
            assert_eq!(status, 200, "get import: {body}");
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "import {id} did not reach the condition: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every row of a table through the records API, following cursors.
    pub async fn all_records(&self, table: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/tables/{table}/records?limit=1000&cursor={c}"),
                None => format!("/v1/tables/{table}/records?limit=1000"),
            };
            let (status, body) = send(self.get(&path)).await;
            assert_eq!(status, 200, "records: {body}");
            out.extend(body["data"].as_array().expect("data").iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// Every stored row error of an import, following cursors.
    pub async fn all_errors(&self, id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/imports/{id}/errors?limit=1000&cursor={c}"),
                None => format!("/v1/imports/{id}/errors?limit=1000"),
            };
            let (status, body) = send(self.get(&path)).await;
            assert_eq!(status, 200, "errors: {body}");
            out.extend(body["data"].as_array().expect("data").iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }
}

/// Sends a request; returns the status and the body as JSON (or as a JSON string if it is not JSON).
pub async fn send(req: RequestBuilder) -> (u16, Value) {
    let resp: Response = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert!(status < 500, "server error {status}: {body}");
    (status, body)
}

/// A file or folder of the shared data beside the checkout: None (saying so) where it is
/// absent, which fails the test in CI (`CI` set), where the shared data must be there.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(relative);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is required in CI",
        p.display()
    );
    eprintln!("skipped: {} is absent", p.display());
    None
}

/// The shared test data folder, if present beside the checkout.
pub fn shared_testdata() -> Option<PathBuf> {
    shared("testdata")
}

/// The reference generator, if present beside the checkout.
pub fn generator() -> Option<PathBuf> {
    shared("bench/gen.py")
}

/// A table of people: an integer key `id` and a text `name`.
pub fn people_schema(name: &str) -> Value {
    json!({
        "name": name,
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "name", "type": "string"}
        ],
        "primary_key": ["id"]
    })
}

/// The orders table of the reference generator's files, every column typed.
pub fn orders_schema(name: &str) -> Value {
    json!({
        "name": name,
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "email", "type": "email", "required": true},
            {"name": "full_name", "type": "string", "required": true},
            {"name": "country", "type": "string", "required": true, "max_length": 2},
            {"name": "amount", "type": "decimal", "required": true, "min": 0},
            {"name": "quantity", "type": "integer", "required": true},
            {"name": "active", "type": "boolean", "required": true},
            {"name": "created_at", "type": "datetime", "required": true},
            {"name": "notes", "type": "string"}
        ],
        "primary_key": ["id"]
    })
}

// ---- Backends -------------------------------------------------------------------------
//
// The suites run on SQLite by default. With INTAKE_TEST_BACKEND=postgres they run on
// PostgreSQL: INTAKE_TEST_DATABASE_URL names a server (any database on it); each data
// directory gets its own database there, created on first use and dropped after. With
// INTAKE_TEST_BLOB_URL (s3://bucket or file:///dir), sources go to that object store, under
// a prefix of their own (on either backend).

/// Whether test servers run on PostgreSQL.
pub fn on_postgres() -> bool {
    match std::env::var("INTAKE_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            assert!(
                admin_url().is_some(),
                "INTAKE_TEST_BACKEND=postgres needs INTAKE_TEST_DATABASE_URL"
            );
            true
        }
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("unknown INTAKE_TEST_BACKEND {other:?}: use sqlite or postgres"),
    }
}

/// The PostgreSQL server tests may create databases on, when one is given.
pub fn admin_url() -> Option<String> {
    std::env::var("INTAKE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Points a configuration at the backend under test: the data directory's own database,
/// and the object store when one is given.
pub async fn backend_config(config: &mut Config) {
    if config.database_url.is_some() || config.blob_url.is_some() {
        return;
    }
    let (database, blobs) = backend_urls(&config.data_dir);
    config.database_url = database;
    config.blob_url = blobs;
}

/// The command-line options that put a child `intake` process on the backend under test
/// for a data directory (with a short lease, so that a restarted child resumes at once).
pub fn backend_args(data_dir: &Path) -> Vec<String> {
    let (database, blobs) = backend_urls(data_dir);
    let mut args = Vec::new();
    if let Some(url) = database {
        args.extend(["--database-url".to_owned(), url]);
        args.extend(["--lease-seconds".to_owned(), "2".to_owned()]);
    }
    if let Some(url) = blobs {
        args.extend(["--blob-url".to_owned(), url]);
    }
    args
}

/// The database and object store URLs of a data directory (None: SQLite, local sources).
fn backend_urls(data_dir: &Path) -> (Option<String>, Option<String>) {
    let name = database_name(data_dir);
    let blobs = std::env::var("INTAKE_TEST_BLOB_URL")
        .ok()
        .filter(|b| !b.is_empty())
        .map(|b| format!("{}/{name}", b.trim_end_matches('/')));
    if !on_postgres() {
        return (None, blobs);
    }
    // The synchronous client cannot run on a test's runtime thread.
    let database = std::thread::spawn(move || create_database(&name))
        .join()
        .expect("create the test database");
    (Some(database), blobs)
}

/// The database of a data directory: named after this process (so that a later run can
/// tell it is left over) and the directory.
pub fn database_name(data_dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    format!("intake_test_{}_{:016x}", std::process::id(), h.finish())
}

fn database_url(name: &str) -> String {
    let admin = admin_url().expect("INTAKE_TEST_DATABASE_URL");
    let (server, _) = admin
        .rsplit_once('/')
        .expect("a postgres:// URL with a database");
    format!("{server}/{name}")
}

fn admin_client() -> postgres::Client {
    let url = admin_url().expect("INTAKE_TEST_DATABASE_URL");
    postgres::Client::connect(&url, postgres::NoTls).expect("connect to the test PostgreSQL")
}

static SWEPT: std::sync::Once = std::sync::Once::new();

/// Creates the database if needed; returns its URL. The first call of a test process drops
/// the databases of test processes that have ended.
fn create_database(name: &str) -> String {
    let mut client = admin_client();
    SWEPT.call_once(|| {
        let rows = client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'intake_test_%'",
                &[],
            )
            .expect("list test databases");
        for row in rows {
            let db: String = row.get(0);
            let pid = db.split('_').nth(2).unwrap_or("");
            if !Path::new("/proc").join(pid).exists() {
                let _ =
                    client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
            }
        }
    });
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .expect("look the test database up")
        .is_some();
    if !exists && let Err(e) = client.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
        // Servers of one directory starting at once: another made it first.
        let made_by_another = e.code().is_some_and(|c| {
            *c == postgres::error::SqlState::DUPLICATE_DATABASE
                || *c == postgres::error::SqlState::UNIQUE_VIOLATION
        });
        assert!(made_by_another, "create the test database: {e}");
    }
    database_url(name)
}

/// Drops the database of a data directory the test chose (PostgreSQL only).
pub fn drop_database_of(data_dir: &Path) {
    if on_postgres() {
        let name = database_name(data_dir);
        let _ = std::thread::spawn(move || drop_database(&name)).join();
    }
}

fn drop_database(name: &str) {
    let mut client = admin_client();
    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
}

/// How the API names a workspace's table in the database under test (`database_table`).
pub fn database_table(workspace: &str, table: &str) -> String {
    if on_postgres() {
        format!("{workspace}.{table}")
    } else {
        format!("{workspace}__{table}")
    }
}

/// A user table as it is named in the database under test.
pub fn physical_table(table: &str) -> String {
    if on_postgres() {
        format!("\"default\".\"{table}\"")
    } else {
        format!("\"default__{table}\"")
    }
}

/// The store of a data directory's database, opened beside its server (to set up what the
/// API cannot, such as a second workspace).
pub async fn open_store(data_dir: &Path) -> intake::store::SharedStore {
    let mut config = Config::new(data_dir.to_owned());
    backend_config(&mut config).await;
    intake::server::open_store(&config)
        .await
        .expect("open the store")
}

/// Runs statements straight on the database of a data directory.
pub fn sql_execute(data_dir: &Path, sql: &str) {
    if on_postgres() {
        let name = database_name(data_dir);
        let sql = sql.to_owned();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&database_url(&name), postgres::NoTls)
                .expect("connect to the test database");
            c.batch_execute(&sql).expect("run SQL");
        })
        .join()
        .expect("SQL thread");
    } else {
        let db = rusqlite::Connection::open(data_dir.join("intake.db")).expect("open the database");
        db.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        db.execute_batch(sql).expect("run SQL");
    }
}

/// The rows a query answers on the database of a data directory, every value as text.
pub fn sql_rows(data_dir: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    if on_postgres() {
        let name = database_name(data_dir);
        let sql = sql.to_owned();
        return std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&database_url(&name), postgres::NoTls)
                .expect("connect to the test database");
            c.simple_query(&sql)
                .expect("query")
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    _ => None,
                })
                .collect()
        })
        .join()
        .expect("SQL thread");
    }
    let db = rusqlite::Connection::open(data_dir.join("intake.db")).expect("open the database");
    let mut stmt = db.prepare(sql).expect("prepare");
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).expect("cell") {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                rusqlite::types::ValueRef::Blob(b) => Some(format!("{b:?}")),
            })
            .collect())
    })
    .expect("query")
    .map(|r| r.expect("row"))
    .collect()
}
