//! Who may do what through the HTTP API, and what they see: operations routes, keys and
//! roles, workspace isolation, table schemas, record pages, schema inference and the error
//! envelope.

use crate::common;

use std::collections::BTreeMap;

use common::{TestServer, people_schema, send};
use intake::model::Role;
use reqwest::Method;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Operations routes and the error envelope
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_and_readiness_answer_200_without_a_key() {
    let s = TestServer::start().await;
    let (status, body) = send(s.client.get(s.url("/healthz"))).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = send(s.client.get(s.url("/readyz"))).await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    let (status, body) = send(s.client.get(s.url("/version"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        body["s3"], true,
        "the default build keeps sources in S3 too"
    );
    s.stop().await;
}

#[test]
fn the_binary_says_its_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("--version")
        .output()
        .expect("run intake --version");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), format!("intake {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn json_logs_have_a_line_per_request_and_per_import_without_keys_or_colours() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log_path = dir.path().join("intake.log");
    let key = "intake_log_test_owner_key_012345";
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_intake"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .args(common::backend_args(&data))
        .env("INTAKE_BOOTSTRAP_KEY", key)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("spawn intake");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("intake exited").expect("stdout");
        if let Some(rest) = line.strip_prefix("intake is listening on ") {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let client = reqwest::Client::new();
    let (status, _) = send(
        client
            .post(format!("{base}/v1/tables"))
            .bearer_auth(key)
            .json(&json!({"name": "t", "columns": [{"name": "a", "type": "integer"}]})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, created) = send(
        client
            .post(format!("{base}/v1/imports?table=t"))
            .bearer_auth(key)
            .header("content-type", "text/csv")
            .body("a\n1\n2\n"),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    // The end of the import is logged once it is recorded: awaited, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let records: Vec<Value> = loop {
        let text = std::fs::read_to_string(&log_path).expect("read the log");
        let ended = text.contains("\"import ended\"");
        if ended || std::time::Instant::now() > deadline {
            assert!(
                !text.contains('\u{1b}'),
                "no colour codes in a file: {text}"
            );
            assert!(!text.contains(key), "the key is never logged");
            break text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let request = records
        .iter()
        .find(|r| r["message"] == "request" && r["route"] == "/v1/imports")
        .unwrap_or_else(|| panic!("a request line: {records:?}"));
    assert_eq!(request["method"], "POST");
    assert_eq!(request["status"], 202);
    assert!(request["latency_ms"].is_number(), "{request}");
    assert!(
        request["key"].as_str().is_some_and(|k| k.len() == 36),
        "the key's id: {request}"
    );
    let ended = records
        .iter()
        .find(|r| r["message"] == "import ended")
        .unwrap_or_else(|| panic!("an import line: {records:?}"));
    assert_eq!(ended["import"], id.as_str());
    assert_eq!(ended["status"], "complete");
    assert_eq!(ended["created"], 2);
    assert_eq!(ended["tables"], "t");
}

/// A sample's value in a Prometheus text page (0 when absent): `name` with its labels, as
/// the page spells them.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_the_rows_imports_and_requests_of_an_import() {
    let s = TestServer::start().await;
    let scrape = || async {
        let resp = s
            .client
            .get(s.url("/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(resp.status(), 200);
        let kind = resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .to_owned();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        resp.text().await.expect("page")
    };
    // Other tests of this process record too: only growth is asserted.
    let before = scrape().await;
    s.create_table(json!({"name": "m", "columns": [{"name": "a", "type": "integer"}]}))
        .await;
    let mut csv = String::from("a\n");
    for i in 0..20_000 {
        csv.push_str(&format!("{i}\n"));
    }
    csv.push_str("bad\n");
    let (status, created) = s.upload("table=m", "text/csv", csv).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("id");
    s.wait_done(id).await;
    // The end is counted just after it is recorded: awaited, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ended = "intake_imports_ended_total{status=\"partially_complete\"}";
    let after = loop {
        let page = scrape().await;
        if sample(&page, ended) > sample(&before, ended) || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let grew = |name: &str| sample(&after, name) - sample(&before, name);
    assert!(grew(ended) >= 1.0, "{after}");
    assert!(grew("intake_rows_written_total") >= 20_000.0, "{after}");
    assert!(grew("intake_rows_rejected_total") >= 1.0, "{after}");
    assert!(grew("intake_bytes_read_total") >= 100_000.0, "{after}");
    assert!(grew("intake_imports_claimed_total") >= 1.0, "{after}");
    let uploads =
        "intake_http_requests_total{method=\"POST\",route=\"/v1/imports\",status=\"202\"}";
    assert!(grew(uploads) >= 1.0, "{after}");
    assert!(
        after.contains("intake_http_request_duration_seconds_bucket{"),
        "{after}"
    );
    assert!(after.contains("\nintake_queue_depth "), "{after}");
    for gauge in ["open", "in_use", "max"] {
        assert!(
            after.contains(&format!("\nintake_db_connections_{gauge} ")),
            "{gauge}: {after}"
        );
    }
    assert!(
        after.contains("\nintake_queue_oldest_age_seconds "),
        "{after}"
    );
}

#[tokio::test]
async fn the_same_table_created_at_once_is_made_once_and_the_others_conflict() {
    let s = TestServer::start().await;
    let schema = json!({"name": "twins", "columns": [{"name": "a", "type": "integer"}]});
    let answers =
        futures_util::future::join_all((0..8).map(|_| send(s.post("/v1/tables").json(&schema))))
            .await;
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [201, 409, 409, 409, 409, 409, 409, 409],
        "{answers:?}"
    );
    for (status, body) in &answers {
        if *status == 409 {
            assert_eq!(body["error"]["message"], "table \"twins\" already exists");
        }
    }
}

#[tokio::test]
async fn a_key_may_carry_an_expiry_past_which_it_authenticates_nothing() {
    let s = TestServer::start().await;
    for (expires_at, why) in [
        ("2001-01-01T00:00:00Z", "has passed"),
        ("next tuesday", "RFC 3339"),
    ] {
        let (status, body) = send(
            s.post("/v1/keys")
                .json(&json!({"name": "temp", "role": "member", "expires_at": expires_at})),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(why), "{message}");
    }
    let (status, made) = send(s.post("/v1/keys").json(
        &json!({"name": "temp", "role": "member", "expires_at": "2999-12-31T23:59:59.123456Z"}),
    ))
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["expires_at"], "2999-12-31T23:59:59.123Z");
    let key = made["key"].as_str().expect("key");
    let (status, _) = send(s.client.get(s.url("/v1/tables")).bearer_auth(key)).await;
    assert_eq!(status, 200, "a key before its expiry works");
    let (_, listed) = send(s.get("/v1/keys")).await;
    let shown = listed["data"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == made["id"])
        .expect("listed");
    assert_eq!(shown["expires_at"], "2999-12-31T23:59:59.123Z");

    // A key whose expiry has passed, as time leaves it (made in the store: the API refuses one).
    let store = common::open_store(&s.data_dir()).await;
    let ws = store
        .find_workspace("default")
        .await
        .expect("find")
        .expect("default");
    let secret = "intake_expired_key_0123456789abcdef";
    let mut expired = intake::api::key_record(secret, "old", Role::Owner);
    expired.expires_at = Some(time::OffsetDateTime::now_utc() - time::Duration::seconds(1));
    store.create_key(ws.id, &expired).await.expect("create key");
    let (status, body) = send(s.client.get(s.url("/v1/tables")).bearer_auth(secret)).await;
    assert_eq!(
        (status, body),
        (
            401,
            error_body("unauthenticated", "invalid, revoked or expired API key")
        )
    );
}

#[tokio::test]
async fn a_workspace_past_its_request_rate_gets_429_with_retry_after_and_others_do_not() {
    let s = TestServer::start_with(|c| c.api.rate_limit_per_workspace = 3).await;
    let other = other_workspace_key(&s).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    // Twenty at once: far more than three a second could refill, however slow the machine.
    for _ in 0..20 {
        let resp = s.get("/v1/tables").send().await.expect("request");
        let status = resp.status().as_u16();
        statuses.push(status);
        if status == 429 && refused.is_none() {
            let wait = resp.headers()["retry-after"]
                .to_str()
                .unwrap_or("")
                .to_owned();
            refused = Some((wait, resp.json::<Value>().await.expect("body")));
        }
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let (wait, body) = refused.expect("a refusal");
    assert!(
        wait.parse::<u64>().is_ok_and(|w| w >= 1),
        "Retry-After: {wait}"
    );
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Another workspace has a budget of its own.
    let (status, _) = send(s.req_as(&other, Method::GET, "/v1/tables")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_unknown_route_answers_404_in_the_error_envelope() {
    let s = TestServer::start().await;
    for path in ["/nope", "/v1/nope", "/v1/tables/t/nope"] {
        let (status, body) = send(s.get(path)).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body, error_body("not_found", "route not found"), "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_method_answers_405_in_the_error_envelope() {
    let s = TestServer::start().await;
    let (status, body) = send(s.req(Method::PUT, "/v1/tables")).await;
    assert_eq!(status, 405);
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn a_malformed_json_body_is_400_invalid_json() {
    let s = TestServer::start().await;
    let (status, body) = send(
        s.post("/v1/tables")
            .header("content-type", "application/json")
            .body(r#"{"name": "orders", "columns": ["#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_json", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Failed to parse the request body as JSON"),
        "{message}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_table_schema_sent_as_another_content_type_is_415() {
    let s = TestServer::start().await;
    let (status, body) = send(
        s.post("/v1/tables")
            .header("content-type", "text/plain")
            .body(json!({"name": "t", "columns": [{"name": "a", "type": "string"}]}).to_string()),
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(
        body,
        error_body(
            "unsupported_media_type",
            "expected a JSON body with Content-Type: application/json"
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn a_schema_with_an_unknown_field_is_422() {
    let s = TestServer::start().await;
    let (status, body) = send(s.post("/v1/tables").json(&json!({
        "name": "t",
        "columns": [{"name": "a", "type": "string", "nullable": true}]
    })))
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown field `nullable`"), "{message}");
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_key_is_401() {
    let s = TestServer::start().await;
    let resp = s.client.get(s.url("/v1/tables")).send().await.unwrap();
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"intake\"")
    );
    let (status, body) = send(s.client.get(s.url("/v1/tables"))).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        error_body(
            "unauthenticated",
            "missing API key: send Authorization: Bearer <key>"
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn a_request_with_a_wrong_key_is_401() {
    let s = TestServer::start().await;
    for key in ["intake_not_a_real_key_000000000", "x"] {
        let (status, body) = send(s.req_as(key, Method::GET, "/v1/tables")).await;
        assert_eq!(status, 401, "{key}");
        assert_eq!(
            body,
            error_body("unauthenticated", "invalid, revoked or expired API key")
        );
    }
    // Another scheme than Bearer carries no key.
    let (status, body) = send(
        s.client
            .get(s.url("/v1/tables"))
            .basic_auth("owner", Some(common::OWNER_KEY)),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthenticated");
    s.stop().await;
}

#[tokio::test]
async fn the_owner_creates_keys_of_each_role_and_the_secret_is_shown_once() {
    let s = TestServer::start().await;
    let mut secrets = Vec::new();
    for role in ["admin", "member", "viewer"] {
        let (status, body) = send(
            s.post("/v1/keys")
                .json(&json!({"name": format!("{role} key"), "role": role})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let key = body["key"].as_str().expect("the secret").to_owned();
        assert!(key.starts_with("intake_"), "{key}");
        assert_eq!(key.len(), "intake_".len() + 48, "{key}");
        assert_eq!(body["prefix"], key[..13], "{body}");
        assert_eq!(body["name"], format!("{role} key"));
        assert_eq!(body["role"], role);
        assert_eq!(body["revoked_at"], Value::Null);
        assert_eq!(key_fields(&body), KEY_FIELDS_WITH_SECRET, "{body}");
        // The new key works.
        let (status, _) = send(s.req_as(&key, Method::GET, "/v1/tables")).await;
        assert_eq!(status, 200);
        secrets.push(key);
    }

    let (status, list) = send(s.get("/v1/keys")).await;
    assert_eq!(status, 200, "{list}");
    let keys = list["data"].as_array().unwrap();
    let mut roles: Vec<&str> = keys.iter().map(|k| k["role"].as_str().unwrap()).collect();
    roles.sort();
    assert_eq!(roles, ["admin", "member", "owner", "viewer"]);
    for k in keys {
        assert_eq!(key_fields(k), KEY_FIELDS, "{k}");
    }
    let text = list.to_string();
    for secret in secrets
        .iter()
        .map(String::as_str)
        .chain([common::OWNER_KEY])
    {
        assert!(!text.contains(secret), "the list shows a secret: {text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_key_with_an_unknown_role_or_no_name_is_422() {
    let s = TestServer::start().await;
    let (status, body) = send(
        s.post("/v1/keys")
            .json(&json!({"name": "k", "role": "superuser"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        error_body(
            "validation_failed",
            "role must be owner, admin, member or viewer, not \"superuser\""
        )
    );
    let (status, body) = send(
        s.post("/v1/keys")
            .json(&json!({"name": "  ", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        error_body("validation_failed", "name must be 1 to 100 characters")
    );
    s.stop().await;
}

#[tokio::test]
async fn an_admin_creates_member_and_viewer_keys_but_not_owner_or_admin_keys() {
    let s = TestServer::start().await;
    let admin = s.create_key("admin").await;
    for role in ["member", "viewer"] {
        let (status, body) = send(
            s.req_as(&admin, Method::POST, "/v1/keys")
                .json(&json!({"name": "k", "role": role})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["role"], role);
    }
    for role in ["owner", "admin"] {
        let (status, body) = send(
            s.req_as(&admin, Method::POST, "/v1/keys")
                .json(&json!({"name": "k", "role": role})),
        )
        .await;
        assert_eq!(status, 403, "{role}: {body}");
        assert_eq!(
            body,
            error_body(
                "forbidden",
                &format!("an admin key cannot create {} {role} key", article(role))
            )
        );
    }
    // The admin sees the keys: its own, the owner's and the two it made.
    let (status, list) = send(s.req_as(&admin, Method::GET, "/v1/keys")).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 4, "{list}");
    s.stop().await;
}

#[tokio::test]
async fn members_and_viewers_cannot_list_or_create_keys() {
    let s = TestServer::start().await;
    for role in ["member", "viewer"] {
        let key = s.create_key(role).await;
        let expected = error_body(
            "forbidden",
            &format!("this action needs a key with role admin or above; this key is {role}"),
        );
        let (status, body) = send(s.req_as(&key, Method::GET, "/v1/keys")).await;
        assert_eq!((status, body), (403, expected.clone()));
        let (status, body) = send(
            s.req_as(&key, Method::POST, "/v1/keys")
                .json(&json!({"name": "k", "role": "viewer"})),
        )
        .await;
        assert_eq!((status, body), (403, expected.clone()));
        let (status, body) = send(s.req_as(
            &key,
            Method::DELETE,
            "/v1/keys/00000000-0000-7000-8000-000000000000",
        ))
        .await;
        assert_eq!((status, body), (403, expected));
    }
    s.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_from_then_on() {
    let s = TestServer::start().await;
    let member = s.create_key("member").await;
    let id = key_id(&s, &member).await;
    let (status, _) = send(s.req_as(&member, Method::GET, "/v1/imports")).await;
    assert_eq!(status, 200);

    let (status, revoked) = send(s.delete(&format!("/v1/keys/{id}"))).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["id"], id);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");

    let (status, body) = send(s.req_as(&member, Method::GET, "/v1/imports")).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        error_body("unauthenticated", "invalid, revoked or expired API key")
    );
    // The list still shows it, as revoked.
    let (_, list) = send(s.get("/v1/keys")).await;
    let listed = list_entry(&list, &id);
    assert!(listed["revoked_at"].is_string(), "{listed}");
    s.stop().await;
}

#[tokio::test]
async fn a_key_shows_the_same_timestamps_when_created_revoked_and_listed() {
    let s = TestServer::start().await;
    let (status, created) = send(
        s.post("/v1/keys")
            .json(&json!({"name": "k", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, revoked) = send(s.delete(&format!("/v1/keys/{id}"))).await;
    assert_eq!(status, 200, "{revoked}");
    let (_, list) = send(s.get("/v1/keys")).await;
    let listed = list_entry(&list, id);
    assert_eq!(listed["created_at"], created["created_at"]);
    assert_eq!(listed["revoked_at"], revoked["revoked_at"]);
    s.stop().await;
}

#[tokio::test]
async fn an_admin_revokes_member_keys_but_not_owner_or_admin_keys() {
    let s = TestServer::start().await;
    let admin = s.create_key("admin").await;
    let other_admin = s.create_key("admin").await;
    let viewer = s.create_key("viewer").await;
    let owner_id = key_id(&s, common::OWNER_KEY).await;
    let other_admin_id = key_id(&s, &other_admin).await;
    let viewer_id = key_id(&s, &viewer).await;

    let (status, body) =
        send(s.req_as(&admin, Method::DELETE, &format!("/v1/keys/{owner_id}"))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        error_body(
            "forbidden",
            "an admin key can revoke only member and viewer keys"
        )
    );
    let (status, body) = send(s.req_as(
        &admin,
        Method::DELETE,
        &format!("/v1/keys/{other_admin_id}"),
    ))
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        error_body(
            "forbidden",
            "an admin key can revoke only member and viewer keys"
        )
    );
    // Both keys still work.
    for key in [common::OWNER_KEY, other_admin.as_str()] {
        let (status, _) = send(s.req_as(key, Method::GET, "/v1/keys")).await;
        assert_eq!(status, 200);
    }

    let (status, body) =
        send(s.req_as(&admin, Method::DELETE, &format!("/v1/keys/{viewer_id}"))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(s.req_as(&viewer, Method::GET, "/v1/tables")).await;
    assert_eq!(status, 401);

    // The owner may revoke an admin.
    let (status, _) = send(s.delete(&format!("/v1/keys/{other_admin_id}"))).await;
    assert_eq!(status, 200);
    let (status, _) = send(s.req_as(&other_admin, Method::GET, "/v1/keys")).await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test]
async fn revoking_an_unknown_key_is_404() {
    let s = TestServer::start().await;
    for id in ["0190a8a4-0000-7000-8000-000000000001", "not-a-uuid"] {
        let (status, body) = send(s.delete(&format!("/v1/keys/{id}"))).await;
        assert_eq!(status, 404, "{id}");
        assert_eq!(body, error_body("not_found", "key not found"));
    }
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Roles (DESIGN.md section 1)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_viewer_reads_imports_and_tables_but_cannot_change_anything() {
    // No workers: imports stay queued, so nothing races the assertions.
    let s = TestServer::start_with(|c| c.engine.workers = 0).await;
    s.create_table(people_schema("people")).await;
    let import_id = queue_import(&s, common::OWNER_KEY, "people").await;
    let viewer = s.create_key("viewer").await;

    let (status, body) = send(s.req_as(&viewer, Method::GET, "/v1/imports")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["id"], import_id);
    let (status, body) =
        send(s.req_as(&viewer, Method::GET, &format!("/v1/imports/{import_id}"))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(s.req_as(
        &viewer,
        Method::GET,
        &format!("/v1/imports/{import_id}/errors/summary"),
    ))
    .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"invalid": 0, "stored": 0, "truncated": false, "groups": []})
        )
    );
    let (status, body) = send(s.req_as(&viewer, Method::GET, "/v1/tables")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["name"], "people");
    let (status, body) = send(s.req_as(&viewer, Method::GET, "/v1/tables/people")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(s.req_as(&viewer, Method::GET, "/v1/tables/people/records")).await;
    assert_eq!(status, 200, "{body}");

    let needs_member = error_body(
        "forbidden",
        "this action needs a key with role member or above; this key is viewer",
    );
    let needs_admin = error_body(
        "forbidden",
        "this action needs a key with role admin or above; this key is viewer",
    );
    let (status, body) = import_csv_as(&s, &viewer, "people", "id,name\n1,Ann\n").await;
    assert_eq!((status, body), (403, needs_member.clone()));
    let (status, body) =
        send_records_as(&s, &viewer, "people", json!([{"id": 1, "name": "Ann"}])).await;
    assert_eq!((status, body), (403, needs_member.clone()));
    let (status, body) = send(s.req_as(
        &viewer,
        Method::POST,
        &format!("/v1/imports/{import_id}/cancel"),
    ))
    .await;
    assert_eq!((status, body), (403, needs_member));
    let (status, body) = send(
        s.req_as(&viewer, Method::POST, "/v1/tables")
            .json(&people_schema("other")),
    )
    .await;
    assert_eq!((status, body), (403, needs_admin.clone()));
    let (status, body) = send(s.req_as(&viewer, Method::DELETE, "/v1/tables/people")).await;
    assert_eq!((status, body), (403, needs_admin));

    // Nothing changed: one import, still queued; one table.
    let (_, imports) = send(s.get("/v1/imports")).await;
    assert_eq!(imports["data"].as_array().unwrap().len(), 1);
    assert_eq!(imports["data"][0]["status"], "queued");
    let (_, tables) = send(s.get("/v1/tables")).await;
    assert_eq!(tables["data"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_member_runs_and_cancels_imports_but_cannot_manage_tables() {
    let s = TestServer::start_with(|c| c.engine.workers = 0).await;
    s.create_table(people_schema("people")).await;
    let member = s.create_key("member").await;

    let import_id = queue_import(&s, &member, "people").await;
    let (status, body) = send(s.req_as(
        &member,
        Method::POST,
        &format!("/v1/imports/{import_id}/cancel"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], import_id);
    assert_eq!(body["status"], "cancelled");

    let needs_admin = error_body(
        "forbidden",
        "this action needs a key with role admin or above; this key is member",
    );
    let (status, body) = send(
        s.req_as(&member, Method::POST, "/v1/tables")
            .json(&people_schema("other")),
    )
    .await;
    assert_eq!((status, body), (403, needs_admin.clone()));
    let (status, body) = send(s.req_as(&member, Method::DELETE, "/v1/tables/people")).await;
    assert_eq!((status, body), (403, needs_admin));

    let (status, _) = send(s.get("/v1/tables/people")).await;
    assert_eq!(status, 200, "the table is still there");
    let (_, tables) = send(s.get("/v1/tables")).await;
    assert_eq!(tables["data"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn an_admin_manages_tables() {
    let s = TestServer::start().await;
    let admin = s.create_key("admin").await;
    let (status, body) = send(
        s.req_as(&admin, Method::POST, "/v1/tables")
            .json(&people_schema("people")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(s.req_as(&admin, Method::DELETE, "/v1/tables/people")).await;
    assert_eq!(status, 204);
    s.stop().await;
}

#[tokio::test]
async fn me_names_the_calling_key_its_role_and_its_workspace() {
    let s = TestServer::start().await;
    for role in ["viewer", "member", "admin", "owner"] {
        let key = if role == "owner" {
            common::OWNER_KEY.to_owned()
        } else {
            s.create_key(role).await
        };
        let (status, me) = send(s.req_as(&key, Method::GET, "/v1/me")).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["key"]["role"], role, "{me}");
        assert_eq!(me["key"]["prefix"], key[..13], "{me}");
        assert!(me["key"].get("key").is_none(), "never the secret: {me}");
        assert_eq!(me["workspace"]["slug"], "default", "{me}");
    }
    let (status, _) = send(s.req_as("intake_nope_nope_nope", Method::GET, "/v1/me")).await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test]
async fn a_key_scoped_to_tables_imports_creates_and_deletes_only_those() {
    let s = TestServer::start().await;
    s.create_table(people_schema("orders")).await;
    s.create_table(people_schema("items")).await;
    let (status, key) = send(s.post("/v1/keys").json(&json!({
        "name": "etl", "role": "admin", "tables": ["orders", "drafts", "orders"]
    })))
    .await;
    assert_eq!(status, 201, "{key}");
    assert_eq!(key["tables"], json!(["drafts", "orders"]));
    let scoped = key["key"].as_str().unwrap().to_owned();

    // Its tables: imports, the one-step load, create and delete.
    let (status, body) = import_csv_as(&s, &scoped, "orders", "id,name\n1,Ann\n").await;
    assert_eq!(status, 202, "{body}");
    let (status, body) =
        send_records_as(&s, &scoped, "orders", json!([{"id": 2, "name": "Bob"}])).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = send(
        s.req_as(&scoped, Method::POST, "/v1/tables")
            .json(&people_schema("drafts")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(s.req_as(&scoped, Method::DELETE, "/v1/tables/drafts")).await;
    assert_eq!(status, 204);

    // Any other table: 403, and nothing happens.
    let refused = error_body(
        "forbidden",
        "this key may use only the tables drafts, orders, not \"items\"",
    );
    let (status, body) = import_csv_as(&s, &scoped, "items", "id,name\n1,Ann\n").await;
    assert_eq!((status, body), (403, refused.clone()));
    let (status, body) =
        send_records_as(&s, &scoped, "items", json!([{"id": 2, "name": "Bob"}])).await;
    assert_eq!((status, body), (403, refused.clone()));
    let (status, body) = send(s.req_as(&scoped, Method::DELETE, "/v1/tables/items")).await;
    assert_eq!((status, body), (403, refused.clone()));
    let (status, body) = send(
        s.req_as(
            &scoped,
            Method::POST,
            "/v1/imports?table=fresh&create_table=true",
        )
        .header("Content-Type", "text/csv")
        .body("id\n1\n"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (_, items) = send(s.get("/v1/tables/items")).await;
    assert_eq!(items["row_count"], 0);
    // Through a dialect too.
    let (status, body) = send(
        s.client
            .post(s.url("/compat/qobra/v1/tables/items/records/bulk"))
            .header("X-API-Key", &scoped)
            .json(&json!({"records": [{"id": 3, "name": "Cy"}]})),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // A key it makes stays within its scope.
    let (status, body) = send(
        s.req_as(&scoped, Method::POST, "/v1/keys")
            .json(&json!({"name": "wide", "role": "member"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(
        s.req_as(&scoped, Method::POST, "/v1/keys")
            .json(&json!({"name": "wider", "role": "member", "tables": ["orders", "items"]})),
    )
    .await;
    assert_eq!((status, body), (403, refused));
    let (status, body) = send(
        s.req_as(&scoped, Method::POST, "/v1/keys")
            .json(&json!({"name": "narrow", "role": "member", "tables": ["orders"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        s.post("/v1/keys")
            .json(&json!({"name": "bad", "role": "member", "tables": ["Orders"]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // Listed with its scope; unscoped keys show null.
    let (_, keys) = send(s.get("/v1/keys")).await;
    let scopes: Vec<Value> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["tables"].clone())
        .collect();
    assert!(scopes.contains(&json!(["drafts", "orders"])), "{keys}");
    assert!(scopes.contains(&Value::Null), "{keys}");
    s.stop().await;
}

#[tokio::test]
async fn the_instance_admin_makes_lists_and_deletes_workspaces() {
    const ADMIN: &str = "instance_admin_key_0123456789";
    let s = TestServer::start_with(|c| c.api.admin_key = Some(ADMIN.into())).await;
    let admin = |method: Method, path: &str| s.req_as(ADMIN, method, path);

    // Workspace keys, even the owner's, are not the admin key.
    let (status, body) = send(s.get("/admin/workspaces")).await;
    assert_eq!(status, 401, "{body}");

    let (status, made) = send(
        admin(Method::POST, "/admin/workspaces").json(&json!({"slug": "acme", "name": "Acme"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["slug"].clone(), made["name"].clone()),
        (json!("acme"), json!("Acme"))
    );
    let owner = made["owner_key"].as_str().unwrap().to_owned();
    let (status, body) =
        send(admin(Method::POST, "/admin/workspaces").json(&json!({"slug": "acme"}))).await;
    assert_eq!(status, 409, "{body}");
    for bad in ["Acme", "a__b", "intake_x", ""] {
        let (status, body) =
            send(admin(Method::POST, "/admin/workspaces").json(&json!({"slug": bad}))).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, list) = send(admin(Method::GET, "/admin/workspaces")).await;
    assert_eq!(status, 200);
    let slugs: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["default", "acme"]);

    // The new tenant works on its own, and is deleted with everything it has.
    let (status, _) = send(
        s.req_as(&owner, Method::POST, "/v1/tables")
            .json(&people_schema("orders")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = import_csv_as(&s, &owner, "orders", "id,name\n1,Ann\n").await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, done) = send(s.req_as(&owner, Method::GET, &format!("/v1/imports/{id}"))).await;
    let mut done = done;
    while !matches!(done["status"].as_str(), Some("complete")) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        done = send(s.req_as(&owner, Method::GET, &format!("/v1/imports/{id}")))
            .await
            .1;
        assert_ne!(done["status"], "failed", "{done}");
    }
    let physical = common::database_table("acme", "orders");
    assert!(physical_exists(&s, &physical));
    let (status, _) = send(admin(Method::DELETE, "/admin/workspaces/acme")).await;
    assert_eq!(status, 204);
    assert!(!physical_exists(&s, &physical), "{physical} is left");
    let (status, _) = send(s.req_as(&owner, Method::GET, "/v1/tables")).await;
    assert_eq!(status, 401, "the deleted workspace's keys are gone");
    let (status, _) = send(admin(Method::DELETE, "/admin/workspaces/acme")).await;
    assert_eq!(status, 404);
    let (_, list) = send(admin(Method::GET, "/admin/workspaces")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // The default workspace is untouched.
    let (status, _) = send(s.get("/v1/tables")).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn without_an_admin_key_the_instance_admin_api_is_off() {
    let s = TestServer::start().await;
    let (status, body) = send(s.get("/admin/workspaces")).await;
    assert_eq!(
        (status, body),
        (
            404,
            error_body(
                "not_found",
                "the instance-admin API is off: start the server with --admin-key"
            )
        )
    );
    s.stop().await;
}

/// Whether the database has a physical table (`schema.table` on PostgreSQL).
fn physical_exists(s: &TestServer, physical: &str) -> bool {
    let sql = if common::on_postgres() {
        format!("SELECT to_regclass('{physical}') IS NOT NULL")
    } else {
        format!("SELECT count(*) > 0 FROM sqlite_master WHERE name = '{physical}'")
    };
    let rows = common::sql_rows(&s.data_dir(), &sql);
    matches!(rows[0][0].as_deref(), Some("1" | "t" | "true"))
}

// ---------------------------------------------------------------------------------------------
// Workspace isolation
// ---------------------------------------------------------------------------------------------

/// Every native route that names a resource (taken from the API document, so a new route is
/// covered the day it is added), and every dialect route that names an import, answers 404
/// to a key of another workspace, and leaves the resource as it was.
#[tokio::test]
async fn every_route_given_another_workspaces_ids_answers_404_and_changes_nothing() {
    let s = TestServer::start().await;
    let import_id = loaded_orders(&s).await;
    let member = s.create_key("member").await;
    let member_id = key_id(&s, &member).await;
    let (status, hook) = send(s.post("/v1/webhooks").json(&json!({
        "url": "http://127.0.0.1:9/hook", "events": ["import.completed"]
    })))
    .await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let other = other_workspace_key(&s).await;

    let (status, doc) = send(s.client.get(s.url("/openapi.json"))).await;
    assert_eq!(status, 200);
    let mut tried = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.contains('{') {
            continue;
        }
        let id = if template.starts_with("/v1/keys/") {
            &member_id
        } else if template.starts_with("/v1/webhooks/") {
            &hook_id
        } else {
            &import_id
        };
        let path = template.replace("{id}", id).replace("{table}", "orders");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let req = s
                .req_as(&other, method.clone(), &path)
                .header("Content-Type", "application/json")
                .body(r#"[{"id": 3, "name": "Cy"}]"#);
            let (status, body) = send(req).await;
            // Records sent to a table the workspace lacks are refused as a missing table.
            let expected: &[u16] = if method == Method::POST && path.ends_with("/records") {
                &[404, 422]
            } else {
                &[404]
            };
            assert!(
                expected.contains(&status),
                "{method} {template}: {status} {body}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 19, "only {tried} routes tried");

    // The dialects, with the same key: an import of another workspace does not exist.
    let (_, import) = send(s.get(&format!("/v1/imports/{import_id}"))).await;
    let cl = |method: Method, path: &str| {
        s.client
            .request(
                method,
                s.url(&format!("/compat/commercelayer/api/imports/{path}")),
            )
            .header("Authorization", format!("Bearer {other}"))
            .header("Content-Type", "application/vnd.api+json")
            .body(
                json!({"data": {"type": "imports", "id": import_id, "attributes": {}}}).to_string(),
            )
    };
    for (method, path) in [
        (Method::GET, import_id.clone()),
        (Method::PATCH, import_id.clone()),
        (Method::DELETE, import_id.clone()),
        (Method::GET, format!("{import_id}/events")),
        (Method::GET, format!("{import_id}/relationships/events")),
    ] {
        let (status, body) = send(cl(method.clone(), &path)).await;
        assert_eq!(status, 404, "Commerce Layer {method} {path}: {body}");
    }
    let (status, body) = send(
        s.client
            .get(s.url(&format!("/compat/qobra/v1/imports/{import_id}")))
            .header("X-API-Key", &other),
    )
    .await;
    assert_eq!(status, 404, "Qobra: {body}");
    for method in [Method::DELETE, Method::POST] {
        let suffix = if method == Method::POST {
            "/events"
        } else {
            ""
        };
        let (status, body) = send(
            s.client
                .request(
                    method.clone(),
                    s.url(&format!(
                        "/compat/rybbit/api/sites/other/imports/{import_id}{suffix}"
                    )),
                )
                .header("Authorization", format!("Bearer {other}"))
                .json(&json!({"events": [], "isLastBatch": true})),
        )
        .await;
        assert_eq!(status, 404, "Rybbit {method}: {body}");
    }

    // Nothing of the first workspace changed.
    let (_, after) = send(s.get(&format!("/v1/imports/{import_id}"))).await;
    assert_eq!(after, import);
    let (_, table) = send(s.get("/v1/tables/orders")).await;
    assert_eq!(table["row_count"], 2);
    let (status, _) = send(s.req_as(&member, Method::GET, "/v1/tables")).await;
    assert_eq!(status, 200, "the member key still works");
    let (_, hooks) = send(s.get("/v1/webhooks")).await;
    assert_eq!(hooks["data"][0]["id"], hook_id.as_str());
    s.stop().await;
}

#[tokio::test]
async fn a_key_of_another_workspace_sees_none_of_this_workspaces_data() {
    let s = TestServer::start().await;
    let import_id = loaded_orders(&s).await;
    let owner_id = key_id(&s, common::OWNER_KEY).await;
    let other = other_workspace_key(&s).await;

    let (status, body) =
        send(s.req_as(&other, Method::GET, &format!("/v1/imports/{import_id}"))).await;
    assert_eq!(
        (status, body),
        (404, error_body("not_found", "import not found"))
    );
    let (status, body) = send(s.req_as(
        &other,
        Method::POST,
        &format!("/v1/imports/{import_id}/cancel"),
    ))
    .await;
    assert_eq!(
        (status, body),
        (404, error_body("not_found", "import not found"))
    );
    for path in ["errors/summary", "errors?format=csv"] {
        let (status, body) = send(s.req_as(
            &other,
            Method::GET,
            &format!("/v1/imports/{import_id}/{path}"),
        ))
        .await;
        assert_eq!(
            (status, body),
            (404, error_body("not_found", "import not found")),
            "{path}"
        );
    }
    let (status, body) = send(s.req_as(&other, Method::GET, "/v1/imports")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([]));
    let (status, body) = send(s.req_as(&other, Method::GET, "/v1/tables")).await;
    assert_eq!((status, body["data"].clone()), (200, json!([])));
    let (status, body) = send(s.req_as(&other, Method::GET, "/v1/tables/orders")).await;
    assert_eq!(
        (status, body),
        (404, error_body("not_found", "table not found"))
    );
    let (status, body) = send(s.req_as(&other, Method::GET, "/v1/tables/orders/records")).await;
    assert_eq!(
        (status, body),
        (404, error_body("not_found", "table not found"))
    );
    // Keys of one workspace are neither listed nor revocable from another.
    let (_, keys) = send(s.req_as(&other, Method::GET, "/v1/keys")).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys["data"][0]["prefix"], "intake_other_");
    let (status, body) =
        send(s.req_as(&other, Method::DELETE, &format!("/v1/keys/{owner_id}"))).await;
    assert_eq!(
        (status, body),
        (404, error_body("not_found", "key not found"))
    );

    // The same table name lives independently in both workspaces.
    let (status, mine) = send(
        s.req_as(&other, Method::POST, "/v1/tables")
            .json(&people_schema("orders")),
    )
    .await;
    assert_eq!(status, 201, "{mine}");
    assert_eq!(
        mine["database_table"],
        common::database_table("other", "orders")
    );
    let (_, theirs) = send(s.get("/v1/tables/orders")).await;
    assert_eq!(
        theirs["database_table"],
        common::database_table("default", "orders")
    );
    assert_eq!(theirs["row_count"], 2);
    let (_, mine) = send(s.req_as(&other, Method::GET, "/v1/tables/orders")).await;
    assert_eq!(mine["row_count"], 0);
    let (status, page) = send(s.req_as(&other, Method::GET, "/v1/tables/orders/records")).await;
    assert_eq!(status, 200);
    assert_eq!(page["data"], json!([]));

    // Deleting one leaves the other.
    let (status, _) = send(s.req_as(&other, Method::DELETE, "/v1/tables/orders")).await;
    assert_eq!(status, 204);
    assert_eq!(
        s.all_records("orders").await,
        [
            json!({"id": 1, "name": "Ann"}),
            json!({"id": 2, "name": "Bob"})
        ]
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_table_with_every_type_and_constraint_reads_back_the_same_schema() {
    let s = TestServer::start().await;
    // Every field given explicitly (and numbers as floats) so the answer can equal the request.
    let columns = json!([
        {"name": "code", "type": "string", "required": true, "unique": false,
         "max_length": 8, "min_length": 2, "pattern": "^[A-Z]+$"},
        {"name": "seq", "type": "integer", "required": true, "unique": false,
         "min": 0.0, "max": 1000.0},
        {"name": "ratio", "type": "float", "required": false, "unique": false,
         "min": -1.5, "max": 1.5},
        {"name": "price", "type": "decimal", "required": false, "unique": false,
         "default": "0", "min": 0.0, "max": 99999.99},
        {"name": "active", "type": "boolean", "required": false, "unique": false,
         "default": true},
        {"name": "born_on", "type": "date", "required": false, "unique": false},
        {"name": "seen_at", "type": "datetime", "required": false, "unique": false},
        {"name": "email", "type": "email", "required": false, "unique": true,
         "max_length": 100},
        {"name": "homepage", "type": "url", "required": false, "unique": false},
        {"name": "ref", "type": "uuid", "required": false, "unique": true},
        {"name": "status", "type": "enum", "required": true, "unique": false,
         "default": "new", "values": ["new", "done"]},
        {"name": "extra", "type": "json", "required": false, "unique": false}
    ]);
    let created = s
        .create_table(
            json!({"name": "everything", "columns": columns, "primary_key": ["code", "seq"]}),
        )
        .await;
    assert_eq!(created["name"], "everything");
    assert_eq!(created["columns"], columns);
    assert_eq!(created["primary_key"], json!(["code", "seq"]));
    assert_eq!(
        created["database_table"],
        common::database_table("default", "everything")
    );
    assert_eq!(created["row_count"], 0);

    let (status, got) = send(s.get("/v1/tables/everything")).await;
    assert_eq!(status, 200);
    assert_eq!(got, created);
    let (_, list) = send(s.get("/v1/tables")).await;
    assert_eq!(list["data"][0]["columns"], columns);

    // The real table has the declared types, the bookkeeping column and the composite key
    // (the PostgreSQL suite checks its own types).
    if common::on_postgres() {
        s.stop().await;
        return;
    }
    let db = rusqlite::Connection::open(s.db_path()).unwrap();
    assert_eq!(
        table_info(&db, "default__everything"),
        [
            ("code", "TEXT", true, 1),
            ("seq", "INTEGER", true, 2),
            ("ratio", "REAL", false, 0),
            // Exact text: SQLite's NUMERIC would round past 15 significant digits.
            ("price", "TEXT", false, 0),
            ("active", "INTEGER", false, 0),
            ("born_on", "TEXT", false, 0),
            ("seen_at", "TEXT", false, 0),
            ("email", "TEXT", false, 0),
            ("homepage", "TEXT", false, 0),
            ("ref", "TEXT", false, 0),
            ("status", "TEXT", true, 0),
            ("extra", "TEXT", false, 0),
            ("_intake_import", "INTEGER", true, 0),
        ]
        .map(|(n, t, nn, pk)| (n.to_owned(), t.to_owned(), nn, pk))
    );
    s.stop().await;
}

#[tokio::test]
async fn primary_key_columns_become_required_and_a_single_key_may_be_a_string() {
    let s = TestServer::start().await;
    let created = s
        .create_table(json!({
            "name": "t",
            "columns": [{"name": "sku", "type": "string"}, {"name": "n", "type": "integer"}],
            "primary_key": "sku"
        }))
        .await;
    assert_eq!(
        created["columns"],
        json!([
            {"name": "sku", "type": "string", "required": true, "unique": false},
            {"name": "n", "type": "integer", "required": false, "unique": false}
        ])
    );
    assert_eq!(created["primary_key"], json!(["sku"]));
    s.stop().await;
}

#[tokio::test]
async fn a_table_name_of_48_characters_is_accepted() {
    let s = TestServer::start().await;
    let name = format!("t{}", "a".repeat(47));
    let created = s
        .create_table(json!({"name": name, "columns": [{"name": "a", "type": "string"}]}))
        .await;
    assert_eq!(created["name"], name);
    s.stop().await;
}

#[tokio::test]
async fn invalid_schemas_are_422_with_a_message_naming_the_problem() {
    let s = TestServer::start().await;
    let long = format!("t{}", "a".repeat(48));
    let cases: Vec<(Value, String)> = vec![
        (
            table("Orders", json!([{"name": "a", "type": "string"}])),
            r#"invalid table name "Orders": it must start with a lowercase letter a-z"#.into(),
        ),
        (
            table("1x", json!([{"name": "a", "type": "string"}])),
            r#"invalid table name "1x": it must start with a lowercase letter a-z"#.into(),
        ),
        (
            table("a__b", json!([{"name": "a", "type": "string"}])),
            r#"invalid table name "a__b": it must not contain two underscores in a row"#.into(),
        ),
        (
            table("intake_x", json!([{"name": "a", "type": "string"}])),
            r#"invalid table name "intake_x": names starting with "intake" are reserved"#.into(),
        ),
        (
            table(&long, json!([{"name": "a", "type": "string"}])),
            format!("invalid table name {long:?}: it is longer than 48 characters"),
        ),
        (
            table("my-table", json!([{"name": "a", "type": "string"}])),
            r#"invalid table name "my-table": only lowercase letters a-z, digits and _ are allowed"#
                .into(),
        ),
        (
            table("", json!([{"name": "a", "type": "string"}])),
            r#"invalid table name "": it is empty"#.into(),
        ),
        (
            table("t", json!([])),
            "a table needs at least one column".into(),
        ),
        (
            table("t", json!([{"name": "First Name", "type": "string"}])),
            r#"invalid column name "First Name": it must start with a lowercase letter a-z"#.into(),
        ),
        (
            table("t", json!([{"name": "first name", "type": "string"}])),
            r#"invalid column name "first name": only lowercase letters a-z, digits and _ are allowed"#
                .into(),
        ),
        (
            table("t", json!([{"name": "a_", "type": "string"}])),
            r#"invalid column name "a_": it must not end with _"#.into(),
        ),
        (
            table("t", json!([{"name": "a", "type": "text"}])),
            r#"column "a" has unknown type "text"; the types are string, integer, float, decimal, boolean, date, datetime, email, url, uuid, enum, json"#
                .into(),
        ),
        (
            table("t", json!([{"name": "s", "type": "enum"}])),
            r#"column "s": an enum column needs a non-empty "values" list"#.into(),
        ),
        (
            table("t", json!([{"name": "s", "type": "enum", "values": []}])),
            r#"column "s": an enum column needs a non-empty "values" list"#.into(),
        ),
        (
            table("t", json!([{"name": "s", "type": "string", "values": ["a"]}])),
            r#"column "s": values applies only to enum columns, not string"#.into(),
        ),
        (
            table("t", json!([{"name": "n", "type": "integer", "max_length": 3}])),
            r#"column "n": max_length/min_length applies only to string, email, url and enum columns, not integer"#
                .into(),
        ),
        (
            table("t", json!([{"name": "s", "type": "string", "min": 1}])),
            r#"column "s": min/max applies only to integer, float and decimal columns, not string"#
                .into(),
        ),
        (
            table("t", json!([{"name": "n", "type": "integer", "pattern": "^1"}])),
            r#"column "n": pattern applies only to string, email, url and enum columns, not integer"#
                .into(),
        ),
        (
            table("t", json!([{"name": "n", "type": "integer", "min": 10, "max": 1}])),
            r#"column "n": min 10 is above max 1"#.into(),
        ),
        (
            table(
                "t",
                json!([{"name": "s", "type": "string", "min_length": 5, "max_length": 2}]),
            ),
            r#"column "s": min_length 5 is above max_length 2"#.into(),
        ),
        (
            json!({"name": "t", "columns": [{"name": "a", "type": "string"}], "primary_key": ["nope"]}),
            r#"primary_key names column "nope", which the table does not have"#.into(),
        ),
        (
            json!({"name": "t", "columns": [{"name": "a", "type": "string"}], "primary_key": ["a", "a"]}),
            r#"primary_key names column "a" twice"#.into(),
        ),
        (
            json!({"name": "t", "columns": [{"name": "j", "type": "json"}], "primary_key": ["j"]}),
            r#"column "j" has type json, which cannot be part of a key"#.into(),
        ),
        (
            table(
                "t",
                json!([{"name": "a", "type": "string"}, {"name": "a", "type": "integer"}]),
            ),
            r#"column "a" is defined twice"#.into(),
        ),
        (
            table("t", json!([{"name": "n", "type": "integer", "default": "abc"}])),
            r#"column "n": default "abc" is not valid: "abc" is not an integer"#.into(),
        ),
        (
            table(
                "t",
                json!([{"name": "s", "type": "enum", "values": ["a", "b"], "default": "c"}]),
            ),
            r#"column "s": default "c" is not valid: "c" is not one of the allowed values: "a", "b""#
                .into(),
        ),
        (
            table(
                "t",
                json!([{"name": "n", "type": "integer", "min": 0, "default": -1}]),
            ),
            r#"column "n": default -1 is not valid: -1 is below the minimum of 0"#.into(),
        ),
    ];
    for (schema, message) in cases {
        let (status, body) = send(s.post("/v1/tables").json(&schema)).await;
        assert_eq!(status, 422, "{schema}: {body}");
        assert_eq!(body, error_body("validation_failed", &message), "{schema}");
    }

    // The regular expression library's explanation follows a fixed prefix.
    let (status, body) = send(s.post("/v1/tables").json(&table(
        "t",
        json!([{"name": "c", "type": "string", "pattern": "([a-z"}]),
    )))
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(r#"column "c": invalid pattern: "#),
        "{message}"
    );

    // Nothing was created along the way.
    let (_, list) = send(s.get("/v1/tables")).await;
    assert_eq!(list["data"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn creating_a_table_twice_is_409_table_exists() {
    let s = TestServer::start().await;
    s.create_table(people_schema("orders")).await;
    let (status, body) = send(s.post("/v1/tables").json(&people_schema("orders"))).await;
    assert_eq!(status, 409);
    assert_eq!(
        body,
        error_body("table_exists", "table \"orders\" already exists")
    );
    s.stop().await;
}

#[tokio::test]
async fn a_missing_table_is_404() {
    let s = TestServer::start().await;
    for path in [
        "/v1/tables/nope",
        "/v1/tables/nope/records",
        "/v1/tables/Not%20A%20Name",
    ] {
        let (status, body) = send(s.get(path)).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body, error_body("not_found", "table not found"), "{path}");
    }
    let (status, body) = send(s.delete("/v1/tables/nope")).await;
    assert_eq!(
        (status, body),
        (404, error_body("not_found", "table not found"))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_deleted_table_is_gone_from_the_api_and_the_database() {
    let s = TestServer::start().await;
    s.create_table(people_schema("orders")).await;
    assert!(physical_table_exists(&s, "orders"));

    let resp = s.delete("/v1/tables/orders").send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.text().await.unwrap(), "");
    let (status, body) = send(s.get("/v1/tables/orders")).await;
    assert_eq!(
        (status, body),
        (404, error_body("not_found", "table not found"))
    );
    let (_, list) = send(s.get("/v1/tables")).await;
    assert_eq!(list["data"], json!([]));
    assert!(!physical_table_exists(&s, "orders"));

    // The name is free again.
    s.create_table(people_schema("orders")).await;
    s.stop().await;
}

#[tokio::test]
async fn imported_rows_can_be_queried_directly_in_the_database() {
    let s = TestServer::start().await;
    s.create_table(json!({
        "name": "orders",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "email", "type": "email"},
            {"name": "amount", "type": "decimal"},
            {"name": "paid", "type": "boolean"},
            {"name": "placed_on", "type": "date"}
        ],
        "primary_key": ["id"]
    }))
    .await;
    let (status, body) = s
        .upload(
            "table=orders",
            "text/csv",
            "id,email,amount,paid,placed_on\n\
             1,ann@example.com,10.50,yes,2024-01-31\n\
             2,bob@example.com,3,no,2024-02-01\n\
             3,,,,\n",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let done = s.wait_done(body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "complete", "{done}");
    let number = done["number"].as_i64().unwrap();

    let table = common::physical_table("orders");
    let rows: Vec<String> = common::sql_rows(
        &s.data_dir(),
        &format!(
            "SELECT id, email, amount, paid, placed_on, _intake_import FROM {table} ORDER BY id"
        ),
    )
    .into_iter()
    .map(|r| {
        r.into_iter()
            .map(|c| c.unwrap_or_else(|| "NULL".to_owned()))
            .collect::<Vec<_>>()
            .join("|")
    })
    .collect();
    // Each database's own types: SQLite's numbers and ISO text, PostgreSQL's booleans.
    let (yes, no) = if common::on_postgres() {
        ("t", "f")
    } else {
        ("1", "0")
    };
    assert_eq!(
        rows,
        [
            format!("1|ann@example.com|10.5|{yes}|2024-01-31|{number}"),
            format!("2|bob@example.com|3|{no}|2024-02-01|{number}"),
            format!("3|NULL|NULL|NULL|NULL|{number}"),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn records_come_in_typed_pages_with_each_row_exactly_once() {
    let s = TestServer::start().await;
    s.create_table(json!({
        "name": "t",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "label", "type": "string"},
            {"name": "active", "type": "boolean"},
            {"name": "price", "type": "decimal"},
            {"name": "ratio", "type": "float"}
        ],
        "primary_key": ["id"]
    }))
    .await;
    let (csv, expected) = records_source(2500);
    let (status, body) = s.upload("table=t", "text/csv", csv).await;
    assert_eq!(status, 202, "{body}");
    let done = s.wait_done(body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["counts"]["created"], 2500);

    let mut rows = Vec::new();
    let mut sizes = Vec::new();
    let mut path = "/v1/tables/t/records?limit=1000".to_owned();
    loop {
        let (status, page) = send(s.get(&path)).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(field_names(&page), ["data", "has_more", "next_cursor"]);
        let data = page["data"].as_array().unwrap();
        sizes.push(data.len());
        rows.extend(data.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(page["has_more"], true, "{path}");
                path = format!("/v1/tables/t/records?limit=1000&cursor={cursor}");
            }
            None => {
                assert_eq!(page["has_more"], false, "{path}");
                assert_eq!(page["next_cursor"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(sizes, [1000, 1000, 500]);
    assert_eq!(rows.len(), expected.len());
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got, want);
    }

    // Without a limit, a page holds 50 rows.
    let (_, page) = send(s.get("/v1/tables/t/records")).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 50);
    assert_eq!(page["data"][0], expected[0]);
    assert_eq!(page["has_more"], true);
    s.stop().await;
}

#[tokio::test]
async fn an_exact_last_page_says_there_is_no_more() {
    let s = TestServer::start().await;
    s.create_table(people_schema("people")).await;
    let (status, body) = s
        .upload("table=people", "text/csv", "id,name\n1,a\n2,b\n3,c\n4,d\n")
        .await;
    assert_eq!(status, 202, "{body}");
    s.wait_done(body["id"].as_str().unwrap()).await;
    let (_, first) = send(s.get("/v1/tables/people/records?limit=2")).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = send(s.get(&format!(
        "/v1/tables/people/records?limit=2&cursor={cursor}"
    )))
    .await;
    assert_eq!(
        second,
        json!({
            "data": [{"id": 3, "name": "c"}, {"id": 4, "name": "d"}],
            "next_cursor": null,
            "has_more": false
        })
    );
    s.stop().await;
}

#[tokio::test]
async fn a_records_limit_outside_1_to_1000_or_a_bad_cursor_is_400() {
    let s = TestServer::start().await;
    s.create_table(people_schema("people")).await;
    for limit in [0, 1001, 5000] {
        let (status, body) = send(s.get(&format!("/v1/tables/people/records?limit={limit}"))).await;
        assert_eq!(status, 400, "{limit}");
        assert_eq!(
            body,
            error_body(
                "bad_request",
                &format!("limit must be between 1 and 1000, not {limit}")
            )
        );
    }
    for cursor in ["abc", "1.5", "%20"] {
        let (status, body) =
            send(s.get(&format!("/v1/tables/people/records?cursor={cursor}"))).await;
        assert_eq!(status, 400, "{cursor}");
        assert_eq!(
            body,
            error_body("bad_request", "invalid cursor"),
            "{cursor}"
        );
    }
    for query in ["limit=-1", "limit=ten", "page=2"] {
        let (status, body) = send(s.get(&format!("/v1/tables/people/records?{query}"))).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}");
    }
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Schema inference
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_csv_sample_gets_a_schema_that_can_be_created_as_is() {
    let s = TestServer::start().await;
    let sample = "id,Email,amount,active,signup date,updated_at,token,name\n\
        1,ann@example.com,10.50,true,2024-01-02,2024-01-02T03:04:05Z,0190a8a4-1c2d-7e3f-8a4b-5c6d7e8f9a01,Ann\n\
        2,bob@example.com,3.25,false,2024-02-03,2024-02-03T04:05:06Z,0190a8a4-1c2d-7e3f-8a4b-5c6d7e8f9a02,Bob\n\
        3,cy@example.com,7.00,true,2024-03-04,2024-03-04T05:06:07Z,0190a8a4-1c2d-7e3f-8a4b-5c6d7e8f9a03,\n";
    // A sample claims no key, required or unique column unless asked.
    let (status, plain) = send(
        s.post("/v1/schema/infer")
            .header("content-type", "text/csv")
            .body(sample),
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["primary_key"], json!([]));
    assert!(
        plain["columns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["required"] == false && c["unique"] == false),
        "{plain}"
    );
    let (status, body) = send(
        s.post("/v1/schema/infer?required=true&unique=true")
            .header("content-type", "text/csv")
            .body(sample),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["format"], "csv");
    assert_eq!(body["delimiter"], ",");
    assert_eq!(body["sampled_rows"], 3);
    assert_eq!(
        column_types(&body["columns"]),
        [
            ("id", "integer"),
            ("email", "email"),
            ("amount", "decimal"),
            ("active", "boolean"),
            ("signup_date", "date"),
            ("updated_at", "datetime"),
            ("token", "uuid"),
            ("name", "string"),
        ]
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
    );
    assert_eq!(body["primary_key"], json!(["id"]));
    // Renamed headers are mapped back to their source fields.
    assert_eq!(
        body["mapping"],
        json!({"Email": "email", "signup date": "signup_date"})
    );
    let required: Vec<bool> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["required"].as_bool().unwrap())
        .collect();
    assert_eq!(
        required,
        [true, true, true, true, true, true, true, false],
        "only name has an empty cell"
    );
    assert_eq!(body["columns"][3]["unique"], false, "active repeats");

    let mut table = body["table"].clone();
    assert_eq!(table["name"], "my_table");
    table["name"] = json!("signups");
    let created = s.create_table(table).await;
    assert_eq!(created["primary_key"], json!(["id"]));
    assert_eq!(
        column_types(&created["columns"]),
        column_types(&body["columns"])
    );
    s.stop().await;
}

#[tokio::test]
async fn the_name_query_parameter_names_the_proposed_table() {
    let s = TestServer::start().await;
    let (status, body) = send(
        s.post("/v1/schema/infer?name=people")
            .header("content-type", "text/csv")
            .body("id,name\n1,Ann\n2,Bob\n"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["table"]["name"], "people");
    s.create_table(body["table"].clone()).await;
    s.stop().await;
}

#[tokio::test]
async fn an_ndjson_sample_gets_a_schema_that_can_be_created() {
    let s = TestServer::start().await;
    let sample = concat!(
        r#"{"id": 1, "sku": "A-1", "price": 9.99, "in_stock": true, "tags": ["a"]}"#,
        "\n",
        r#"{"id": 2, "sku": "B-2", "price": 12.5, "in_stock": false, "tags": []}"#,
        "\n",
        r#"{"id": 3, "sku": "C-3", "price": 1, "in_stock": true}"#,
        "\n",
    );
    let (status, body) = send(
        s.post("/v1/schema/infer?required=true&unique=true")
            .header("content-type", "application/x-ndjson")
            .body(sample),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["format"], "ndjson");
    assert_eq!(body["sampled_rows"], 3);
    // Field order is checked on its own below (it is not kept yet).
    let mut types = column_types(&body["columns"]);
    types.sort();
    assert_eq!(
        types,
        [
            ("id", "integer"),
            ("in_stock", "boolean"),
            ("price", "decimal"),
            ("sku", "string"),
            ("tags", "json"),
        ]
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
    );
    assert_eq!(body["primary_key"], json!(["id"]));
    let required: BTreeMap<&str, bool> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["required"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        required,
        BTreeMap::from([
            ("id", true),
            ("in_stock", true),
            ("price", true),
            ("sku", true),
            ("tags", false)
        ]),
        "tags is missing once"
    );

    let mut table = body["table"].clone();
    table["name"] = json!("products");
    s.create_table(table).await;

    // The proposed table takes the sample itself.
    let (status, import) = s
        .upload("table=products", "application/x-ndjson", sample)
        .await;
    assert_eq!(status, 202, "{import}");
    let done = s.wait_done(import["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(
        s.all_records("products").await,
        [
            json!({"id": 1, "sku": "A-1", "price": "9.99", "in_stock": true, "tags": ["a"]}),
            json!({"id": 2, "sku": "B-2", "price": "12.5", "in_stock": false, "tags": []}),
            json!({"id": 3, "sku": "C-3", "price": "1", "in_stock": true, "tags": null}),
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn an_ndjson_sample_proposes_columns_in_source_order() {
    let s = TestServer::start().await;
    let (status, body) = send(
        s.post("/v1/schema/infer")
            .header("content-type", "application/x-ndjson")
            .body("{\"id\": 1, \"zone\": \"a\", \"amount\": 2}\n{\"id\": 2, \"zone\": \"b\", \"amount\": 3}\n"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<String> = column_types(&body["columns"])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["id", "zone", "amount"]);
    s.stop().await;
}

#[tokio::test]
async fn a_binary_sample_is_415_unsupported_format() {
    let s = TestServer::start().await;
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend((0..=255u8).cycle().take(2000));
    for content_type in ["application/octet-stream", "text/csv"] {
        let (status, body) = send(
            s.post("/v1/schema/infer")
                .header("content-type", content_type)
                .body(png.clone()),
        )
        .await;
        assert_eq!(status, 415, "{content_type}: {body}");
        assert_eq!(body["error"]["code"], "unsupported_format", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("the sample cannot be read: "),
            "{message}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn an_unknown_format_or_a_long_delimiter_for_inference_is_422() {
    let s = TestServer::start().await;
    let (status, body) = send(
        s.post("/v1/schema/infer?format=xlsx")
            .header("content-type", "text/csv")
            .body("a\n1\n"),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            422,
            error_body("validation_failed", "unknown format \"xlsx\"")
        )
    );
    let (status, body) = send(
        s.post("/v1/schema/infer?delimiter=;;")
            .header("content-type", "text/csv")
            .body("a\n1\n"),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            422,
            error_body(
                "validation_failed",
                "delimiter must be one character, not \";;\""
            )
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn schema_inference_needs_a_key() {
    let s = TestServer::start().await;
    let (status, body) = send(
        s.client
            .post(s.url("/v1/schema/infer"))
            .header("content-type", "text/csv")
            .body("a\n1\n"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthenticated");
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The error envelope with a code and a message and nothing else.
fn error_body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// "a" or "an" for a role name.
fn article(role: &str) -> &'static str {
    if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// What a key shows besides the optional `last_used_at`, with and without its secret.
const KEY_FIELDS: [&str; 8] = [
    "created_at",
    "expires_at",
    "id",
    "name",
    "prefix",
    "revoked_at",
    "role",
    "tables",
];
const KEY_FIELDS_WITH_SECRET: [&str; 9] = [
    "created_at",
    "expires_at",
    "id",
    "key",
    "name",
    "prefix",
    "revoked_at",
    "role",
    "tables",
];

/// The sorted field names of a key view, leaving out the optional `last_used_at`.
fn key_fields(v: &Value) -> Vec<String> {
    let mut names = field_names(v);
    names.retain(|n| n != "last_used_at");
    names
}

/// The entry of a key list with this id.
fn list_entry<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} is not listed: {list}"))
}

/// The sorted field names of a JSON object.
fn field_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    names.sort();
    names
}

/// A table schema body with a name and columns.
fn table(name: &str, columns: Value) -> Value {
    json!({"name": name, "columns": columns})
}

/// A two-column table keyed by `id`.
/// Uploads a one-row CSV to `table` with `key`; returns the queued import's id.
async fn queue_import(s: &TestServer, key: &str, table: &str) -> String {
    let (status, body) = send(
        s.req_as(key, Method::POST, &format!("/v1/imports?table={table}"))
            .header("content-type", "text/csv")
            .body("id,name\n1,Ann\n"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// The id of a key, found in the owner's key list by its prefix.
async fn key_id(s: &TestServer, secret: &str) -> String {
    let (status, list) = send(s.get("/v1/keys")).await;
    assert_eq!(status, 200, "{list}");
    let prefix = &secret[..13];
    let matching: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["prefix"] == prefix)
        .collect();
    assert_eq!(matching.len(), 1, "keys with prefix {prefix}: {list}");
    matching[0]["id"].as_str().unwrap().to_owned()
}

/// Creates the table `orders` and loads two people into it; returns the import's id.
async fn loaded_orders(s: &TestServer) -> String {
    s.create_table(people_schema("orders")).await;
    let (status, body) = s
        .upload("table=orders", "text/csv", "id,name\n1,Ann\n2,Bob\n")
        .await;
    assert_eq!(status, 202, "{body}");
    let import_id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(s.wait_done(&import_id).await["status"], "complete");
    import_id
}

/// Sends a CSV body to `POST /v1/imports?table=TABLE` with a key.
async fn import_csv_as(s: &TestServer, key: &str, table: &str, csv: &str) -> (u16, Value) {
    send(
        s.req_as(key, Method::POST, &format!("/v1/imports?table={table}"))
            .header("Content-Type", "text/csv")
            .body(csv.to_owned()),
    )
    .await
}

/// Sends records to `POST /v1/tables/TABLE/records` with a key.
async fn send_records_as(s: &TestServer, key: &str, table: &str, records: Value) -> (u16, Value) {
    send(
        s.req_as(key, Method::POST, &format!("/v1/tables/{table}/records"))
            .json(&records),
    )
    .await
}

/// Creates a second workspace `other` straight in the server's database, with an owner key.
async fn other_workspace_key(s: &TestServer) -> String {
    const KEY: &str = "intake_other_key_012345678901234";
    let store = common::open_store(&s.data_dir()).await;
    let ws = store
        .create_workspace("other", "Other")
        .await
        .expect("create workspace");
    store
        .create_key(
            ws.id,
            &intake::api::key_record(KEY, "k", intake::model::Role::Owner),
        )
        .await
        .expect("create key");
    KEY.to_owned()
}

/// `(name, declared type, not null, position in the primary key)` of each column of a
/// physical table.
fn table_info(db: &rusqlite::Connection, table: &str) -> Vec<(String, String, bool, i64)> {
    let mut stmt = db
        .prepare(&format!("PRAGMA table_info(\"{table}\")"))
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>("name")?,
            r.get::<_, String>("type")?,
            r.get::<_, bool>("notnull")?,
            r.get::<_, i64>("pk")?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Whether the database has the physical table of a table of the default workspace.
fn physical_table_exists(s: &TestServer, table: &str) -> bool {
    let sql = if common::on_postgres() {
        format!(
            "SELECT count(*) FROM information_schema.tables
             WHERE table_schema = 'default' AND table_name = '{table}'"
        )
    } else {
        format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'default__{table}'"
        )
    };
    common::sql_rows(&s.data_dir(), &sql)[0][0].as_deref() == Some("1")
}

/// `(name, type)` of each column of an inferred or stored schema.
fn column_types(columns: &Value) -> Vec<(String, String)> {
    columns
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A CSV of `n` rows for the records test and the rows the API should show for it: every
/// tenth label, every seventh price and every fifth flag empty (null).
fn records_source(n: u32) -> (String, Vec<Value>) {
    let mut csv = String::from("id,label,active,price,ratio\n");
    let mut rows = Vec::with_capacity(n as usize);
    for i in 1..=n {
        let label = (i % 10 != 0).then(|| format!("row, {i}"));
        let active = (i % 5 != 0).then_some(i % 2 == 0);
        let price = (i % 7 != 0).then(|| format!("{i}.25"));
        let ratio = f64::from(i) / 4.0;
        csv.push_str(&format!(
            "{i},{},{},{},{ratio}\n",
            label
                .as_deref()
                .map(|l| format!("\"{l}\""))
                .unwrap_or_default(),
            active.map(|a| a.to_string()).unwrap_or_default(),
            price.as_deref().unwrap_or(""),
        ));
        let mut row = BTreeMap::new();
        row.insert("id", json!(i));
        row.insert("label", json!(label));
        row.insert("active", json!(active));
        row.insert("price", json!(price));
        row.insert("ratio", json!(ratio));
        rows.push(json!(row));
    }
    (csv, rows)
}

// ---------------------------------------------------------------------------------------------
// Slow and greedy clients
// ---------------------------------------------------------------------------------------------

/// Reads what the server sends until it closes the connection (or 10 s pass: then None).
async fn until_closed(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut got),
    )
    .await
    .ok()?;
    // A reset also closes it.
    let _ = read;
    Some(got)
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_request_head_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start_with(|c| {
        c.api.limits.header_read_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = until_closed(&mut slow).await;
    assert!(
        answer.is_some(),
        "a head never finished held its connection"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // A client that sends its head in time is served as usual.
    let (status, _) = send(s.client.get(s.url("/healthz"))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn connections_past_the_cap_per_address_are_closed_at_once() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start_with(|c| c.api.limits.max_connections_per_ip = 3).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut fourth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = until_closed(&mut fourth).await.expect("closed");
    assert!(answer.is_empty(), "the fourth got an answer: {answer:?}");
    // A held connection is served; once they close, new ones are accepted again.
    held[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut held[0]).await.expect("closed");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut again = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let answer = until_closed(&mut again).await.unwrap_or_default();
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slots were never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// Refusals: each answers 409 with a code of its own, the same on both backends.

#[tokio::test]
async fn creating_a_workspace_whose_slug_is_taken_is_409_workspace_exists() {
    const ADMIN: &str = "instance_admin_key_0123456789";
    let s = TestServer::start_with(|c| c.api.admin_key = Some(ADMIN.into())).await;
    let create = || {
        s.req_as(ADMIN, Method::POST, "/admin/workspaces")
            .json(&json!({"slug": "acme", "name": "Acme"}))
    };
    let (status, body) = send(create()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(create()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        error_body("workspace_exists", "workspace \"acme\" already exists")
    );
    s.stop().await;
}

#[tokio::test]
async fn deleting_a_workspace_with_a_queued_import_is_409_workspace_busy() {
    const ADMIN: &str = "instance_admin_key_0123456789";
    let s = TestServer::start_with(|c| {
        c.api.admin_key = Some(ADMIN.into());
        c.engine.workers = 0;
    })
    .await;
    let (status, made) = send(
        s.req_as(ADMIN, Method::POST, "/admin/workspaces")
            .json(&json!({"slug": "acme", "name": "Acme"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let owner = made["owner_key"].as_str().unwrap().to_owned();
    let (status, body) = send(
        s.req_as(&owner, Method::POST, "/v1/tables")
            .json(&people_schema("orders")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, queued) = import_csv_as(&s, &owner, "orders", "id,name\n1,Ann\n").await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_str().unwrap();
    let (status, body) = send(s.req_as(ADMIN, Method::DELETE, "/admin/workspaces/acme")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        error_body(
            "workspace_busy",
            &format!(
                "workspace \"acme\" has an import in progress ({id}): cancel it or let it finish first"
            )
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn deleting_a_table_a_queued_import_writes_to_is_409_table_in_use() {
    let s = TestServer::start_with(|c| c.engine.workers = 0).await;
    s.create_table(people_schema("orders")).await;
    let (status, queued) = send(
        s.post("/v1/imports?table=orders")
            .header("Content-Type", "text/csv")
            .body("id,name\n1,Ann\n"),
    )
    .await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_str().unwrap();
    let (status, body) = send(s.delete("/v1/tables/orders")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        error_body(
            "table_in_use",
            &format!("table \"orders\" is in use by import {id}, which has not finished")
        )
    );
    s.stop().await;
}
