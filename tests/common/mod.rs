//! Test harness: starts a real server in-process on a random port with a temp data directory
//! and talks HTTP to it.
#![allow(dead_code)]

use std::path::PathBuf;
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
}

impl TestServer {
    /// Starts a server with default settings.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after adjusting its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new(dir.path().join("data"));
        config.bootstrap_key = Some(OWNER_KEY.to_owned());
        config.engine.poll_interval = Duration::from_millis(50);
        adjust(&mut config);
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
        }
    }

    /// The SQLite database file of the server.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data").join("intake.db")
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

/// The shared test data folder, if present beside the checkout.
pub fn shared_testdata() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/testdata is absent");
        None
    }
}

/// The reference generator, if present beside the checkout.
pub fn generator() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen.py");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/bench/gen.py is absent");
        None
    }
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
