//! The command line against a real server: the `intake` binary is run as a user would run
//! it (stdout and stderr piped, so not a terminal), and its exit codes and output are checked.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{TestServer, send};
use serde_json::{Value, json};

/// What a run of the binary gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs `intake ARGS --url URL --key KEY`, feeding `stdin`; checks that the output, which is
/// not a terminal, carries no escape sequences and no bar redraws.
async fn run_as(url: &str, key: &str, args: &[&str], stdin: Option<String>) -> Run {
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.extend(["--url".into(), url.into(), "--key".into(), key.into()]);
    let run = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(&argv)
            .env_remove("INTAKE_URL")
            .env_remove("INTAKE_KEY")
            .env_remove("RUST_LOG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn intake");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("intake output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("runner");
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains('\x1b') && !text.contains('\r'),
            "{name} has terminal escapes or redraws though it is not a terminal: {run:?}"
        );
    }
    run
}

async fn run(s: &TestServer, args: &[&str]) -> Run {
    run_as(&s.base, &s.key, args, None).await
}

fn people() -> Value {
    json!({"name": "people", "columns": [
        {"name": "id", "type": "integer", "required": true},
        {"name": "email", "type": "email", "required": true},
        {"name": "age", "type": "integer", "min": 0}
    ], "primary_key": ["id"]})
}

/// A CSV of `rows` people; the ids in `bad` get an invalid email.
fn people_csv(dir: &Path, name: &str, rows: usize, bad: &[usize]) -> PathBuf {
    let mut text = String::from("id,email,age\n");
    for i in 1..=rows {
        let email = if bad.contains(&i) {
            format!("person{i}.example.com")
        } else {
            format!("person{i}@example.com")
        };
        text.push_str(&format!("{i},{email},{}\n", i % 90));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_import_exits_0_and_its_json_is_the_finished_import() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let file = people_csv(s.dir.path(), "people.csv", 2000, &[]);
    let r = run(
        &s,
        &["import", path_str(&file), "--table", "people", "--json"],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let import = r.json();
    assert_eq!(import["status"], "complete");
    assert_eq!(import["counts"]["created"], 2000);
    assert_eq!(import["counts"]["invalid"], 0);
    assert_eq!(import["tables"][0]["table"], "people");
    assert_eq!(import["source"], "csv");
    assert_eq!(s.all_records("people").await.len(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rows_exit_3_and_the_summary_names_their_lines_and_the_csv_download() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let file = people_csv(s.dir.path(), "people.csv", 100, &[2, 50]);
    let r = run(&s, &["import", path_str(&file), "--table", "people"]).await;
    assert_eq!(r.code, 3, "{r:?}");
    let out = &r.stdout;
    assert!(out.contains("partially_complete"), "{out}");
    assert!(
        out.contains("100 processed: 98 created, 0 updated, 0 unchanged, 2 invalid"),
        "{out}"
    );
    assert!(out.contains("First 2 of 2 invalid rows"), "{out}");
    // Line 3 is id 2 (the header is line 1); line 51 is id 50.
    let line_of = |n: &str| {
        out.lines()
            .any(|l| l.split_whitespace().next() == Some(n) && l.contains("invalid_email"))
    };
    assert!(line_of("3") && line_of("51"), "{out}");
    assert!(out.contains("errors?format=csv"), "{out}");
    assert!(out.contains("upload"), "{out}");
    assert!(out.contains("rows/s"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atomic_import_with_an_invalid_row_fails_and_exits_4() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let file = people_csv(s.dir.path(), "people.csv", 50, &[7]);
    let r = run(
        &s,
        &[
            "import",
            path_str(&file),
            "--table",
            "people",
            "--on-error",
            "atomic",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(r.json()["status"], "failed");
    assert!(s.all_records("people").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_data_exits_4_with_the_servers_error() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let path = s.dir.path().join("picture.bin");
    std::fs::write(
        &path,
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0",
    )
    .unwrap();
    let r = run(&s, &["import", path_str(&path), "--table", "people"]).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.starts_with("error: "), "{r:?}");
    assert!(r.stderr.contains("(unsupported_format)"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_prints_the_created_import_and_watch_follows_it_to_its_end() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let file = people_csv(s.dir.path(), "people.csv", 500, &[10]);
    let r = run(
        &s,
        &[
            "import",
            path_str(&file),
            "--table",
            "people",
            "--no-wait",
            "--json",
            "--reference",
            "batch-7",
            "--metadata",
            r#"{"by": "cli test"}"#,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let created = r.json();
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["reference"], "batch-7");
    assert_eq!(created["metadata"], json!({"by": "cli test"}));

    let w = run(&s, &["imports", "watch", &id, "--json"]).await;
    assert_eq!(w.code, 3, "{w:?}");
    assert_eq!(w.json()["counts"]["invalid"], 1);

    // Watching a finished import ends at once with the same answer.
    let again = run(&s, &["imports", "watch", &id]).await;
    assert_eq!(again.code, 3, "{again:?}");
    assert!(again.stdout.contains("partially_complete"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_list_show_errors_cancel_and_rollback() {
    let s = TestServer::start().await;
    s.create_table(people()).await;
    let file = people_csv(s.dir.path(), "people.csv", 30, &[4]);
    let first = run(
        &s,
        &["import", path_str(&file), "--table", "people", "--json"],
    )
    .await;
    assert_eq!(first.code, 3, "{first:?}");
    let id = first.json()["id"].as_str().expect("id").to_owned();

    let list = run(&s, &["imports", "list", "--json"]).await;
    assert_eq!(list.code, 0, "{list:?}");
    assert_eq!(list.json()["data"][0]["id"], id.as_str());
    let table = run(&s, &["imports", "list", "--status", "partially_complete"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    let header = table.stdout.lines().next().unwrap_or_default();
    for column in [
        "#",
        "id",
        "status",
        "table",
        "created",
        "processed",
        "invalid",
    ] {
        assert!(header.contains(column), "{table:?}");
    }
    assert!(table.stdout.contains(&id), "{table:?}");
    let none = run(&s, &["imports", "list", "--status", "failed", "--json"]).await;
    assert_eq!(none.json()["data"], json!([]));

    let show = run(&s, &["imports", "show", &id, "--json"]).await;
    assert_eq!(show.code, 0, "{show:?}");
    assert_eq!(show.json()["status"], "partially_complete");

    let errors = run(&s, &["imports", "errors", &id, "--json"]).await;
    assert_eq!(errors.code, 0, "{errors:?}");
    assert_eq!(errors.json()["data"][0]["line"], 5);
    assert_eq!(errors.json()["data"][0]["code"], "invalid_email");
    let csv = run(&s, &["imports", "errors", &id, "--csv"]).await;
    assert_eq!(csv.code, 0, "{csv:?}");
    let mut lines = csv.stdout.lines();
    let head = lines.next().unwrap_or_default();
    assert!(head.contains("line") && head.contains("error"), "{csv:?}");
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .contains("person4.example.com"),
        "{csv:?}"
    );

    // A finished import cannot be cancelled: the server's error, exit 1.
    let cancel = run(&s, &["imports", "cancel", &id]).await;
    assert_eq!(cancel.code, 1, "{cancel:?}");
    assert!(cancel.stderr.starts_with("error: "), "{cancel:?}");
    assert!(
        cancel
            .stderr
            .trim_end()
            .ends_with("(import_not_cancellable)"),
        "{cancel:?}"
    );

    let rollback = run(&s, &["imports", "rollback", &id, "--wait", "--json"]).await;
    assert_eq!(rollback.code, 0, "{rollback:?}");
    assert_eq!(rollback.json()["status"], "rolled_back");
    assert!(s.all_records("people").await.is_empty());

    let missing = run(
        &s,
        &["imports", "show", "01966c0e-0000-7000-8000-000000000000"],
    )
    .await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("(not_found)"), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_groups_the_row_errors_and_warns_when_rejected_rows_were_not_all_stored() {
    let s = TestServer::start_with(|c| c.engine.max_stored_errors = 100).await;
    s.create_table(people()).await;
    // 300 people; of the first 250, every fifth has a negative age, the others a bad email.
    let mut text = String::from("id,email,age\n");
    for i in 1..=300 {
        let line = match i {
            ..=250 if i % 5 == 0 => format!("{i},p{i}@example.com,-1"),
            ..=250 => format!("{i},p{i}.example.com,30"),
            _ => format!("{i},p{i}@example.com,30"),
        };
        text.push_str(&line);
        text.push('\n');
    }
    let file = s.dir.path().join("people.csv");
    std::fs::write(&file, text).expect("write csv");
    let import = run(
        &s,
        &["import", path_str(&file), "--table", "people", "--json"],
    )
    .await;
    assert_eq!(import.code, 3, "{import:?}");
    let id = import.json()["id"].as_str().expect("id").to_owned();

    let show = run(&s, &["imports", "show", &id]).await;
    assert_eq!(show.code, 0, "{show:?}");
    let out = &show.stdout;
    assert!(
        out.contains("Warning: only 100 of 250 rejected rows are stored"),
        "{out}"
    );
    assert!(out.contains("Row errors by kind:"), "{out}");
    // The 100 stored errors: 80 bad emails (the first on line 2), 20 negative ages (line 6).
    let group = |count: &str, column: &str, code: &str, line: &str| {
        out.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() > 5 && words[..6] == [count, "people", column, code, "line", line]
        })
    };
    assert!(group("80", "email", "invalid_email", "2:"), "{out}");
    assert!(group("20", "age", "out_of_range", "6:"), "{out}");

    let csv = run(&s, &["imports", "errors", &id, "--csv"]).await;
    assert_eq!(csv.code, 0, "{csv:?}");
    assert!(
        csv.stderr
            .contains("Warning: this CSV holds 100 of 250 rejected rows"),
        "{csv:?}"
    );
    // The header and the 100 stored rows: the warning is not in the file.
    assert_eq!(csv.stdout.lines().count(), 101, "{csv:?}");
    let listed = run(&s, &["imports", "errors", &id, "--json"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(listed.json()["data"].as_array().map(Vec::len), Some(100));
    assert!(
        listed
            .stderr
            .contains("Warning: only 100 of 250 rejected rows are stored"),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_infer_output_creates_a_table_the_file_then_loads_into() {
    let s = TestServer::start().await;
    let path = s.dir.path().join("Sign-ups 2024.csv");
    std::fs::write(
        &path,
        "Id,E-mail,Joined\n1,a@example.com,2024-01-02\n2,b@example.com,2024-02-03\n3,c@example.com,2024-03-04\n",
    )
    .unwrap();
    let infer = run(&s, &["tables", "infer", path_str(&path), "--unique"]).await;
    assert_eq!(infer.code, 0, "{infer:?}");
    let table = infer.json();
    assert_eq!(table["name"], "sign_ups_2024");
    assert_eq!(table["primary_key"], json!(["id"]));

    // Through stdin, under another name.
    let mut renamed = table.clone();
    renamed["name"] = json!("signups");
    let create = run_as(
        &s.base,
        &s.key,
        &["tables", "create", "--schema", "-", "--json"],
        Some(renamed.to_string()),
    )
    .await;
    assert_eq!(create.code, 0, "{create:?}");
    assert_eq!(create.json()["name"], "signups");

    let schema = s.dir.path().join("schema.json");
    std::fs::write(&schema, &infer.stdout).unwrap();
    let create = run(&s, &["tables", "create", "--schema", path_str(&schema)]).await;
    assert_eq!(create.code, 0, "{create:?}");
    assert!(create.stdout.contains("sign_ups_2024"), "{create:?}");
    let again = run(&s, &["tables", "create", "--schema", path_str(&schema)]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("(table_exists)"), "{again:?}");

    let load = run(
        &s,
        &[
            "import",
            path_str(&path),
            "--table",
            "sign_ups_2024",
            "--json",
        ],
    )
    .await;
    assert_eq!(load.code, 0, "{load:?}");
    assert_eq!(load.json()["counts"]["created"], 3);

    let list = run(&s, &["tables", "list", "--json"]).await.json();
    let names: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"signups") && names.contains(&"sign_ups_2024"),
        "{list}"
    );
    let show = run(&s, &["tables", "show", "sign_ups_2024"]).await;
    assert_eq!(show.code, 0, "{show:?}");
    assert!(show.stdout.contains("3 rows"), "{show:?}");
    assert!(show.stdout.contains("e_mail"), "{show:?}");

    // Refusing to create a missing table stops before the upload.
    let missing = run(
        &s,
        &["import", path_str(&path), "--table", "nope", "--no-create"],
    )
    .await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("tables infer"), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_of_a_file_alone_creates_its_table_from_the_whole_file() {
    let s = TestServer::start().await;
    let path = s.dir.path().join("Orders 2024.csv");
    let mut body = String::from("id,amount,country,when\n");
    for i in 1..=2000 {
        let country = if i == 2000 { "NA" } else { "FR" };
        body.push_str(&format!("{i},{i}.25,{country},2024-01-02\n"));
    }
    std::fs::write(&path, body).unwrap();
    let r = run(&s, &["import", path_str(&path)]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("created from the whole file"), "{r:?}");
    assert!(
        r.stdout
            .contains("table orders_2024: id integer (key), amount decimal (required), country string (required), when date (required)"),
        "{r:?}"
    );
    assert_eq!(s.all_records("orders_2024").await.len(), 2000);
    // The next file goes into the table as it is.
    let again = run(
        &s,
        &[
            "import",
            path_str(&path),
            "--table",
            "orders_2024",
            "--mode",
            "upsert",
            "--json",
        ],
    )
    .await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.json()["counts"]["unchanged"], 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_create_prints_a_key_that_works_until_it_is_revoked() {
    let s = TestServer::start().await;
    let created = run(
        &s,
        &["keys", "create", "--name", "loader", "--role", "member"],
    )
    .await;
    assert_eq!(created.code, 0, "{created:?}");
    let key = created.stdout.trim().to_owned();
    assert!(
        key.starts_with("intake_") && !key.contains(char::is_whitespace),
        "{created:?}"
    );
    assert!(created.stderr.contains("only this once"), "{created:?}");

    let as_member = run_as(&s.base, &key, &["tables", "list"], None).await;
    assert_eq!(as_member.code, 0, "{as_member:?}");
    let forbidden = run_as(&s.base, &key, &["keys", "list"], None).await;
    assert_eq!(forbidden.code, 1, "{forbidden:?}");
    assert!(forbidden.stderr.contains("(forbidden)"), "{forbidden:?}");

    let list = run(&s, &["keys", "list", "--json"]).await;
    let id = list.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| k["name"] == "loader")
        .and_then(|k| k["id"].as_str())
        .expect("the new key is listed")
        .to_owned();
    let revoke = run(&s, &["keys", "revoke", &id]).await;
    assert_eq!(revoke.code, 0, "{revoke:?}");
    let refused = run_as(&s.base, &key, &["tables", "list"], None).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("(unauthenticated)"), "{refused:?}");

    let json = run(
        &s,
        &[
            "keys", "create", "--name", "ci", "--role", "viewer", "--json",
        ],
    )
    .await;
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(json.json()["role"], "viewer");
    assert!(
        json.json()["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("intake_"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_connection_errors_have_their_exit_codes() {
    let s = TestServer::start().await;
    // No key: clap's usage error.
    let no_key = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["tables", "list"])
            .env_remove("INTAKE_KEY")
            .output()
            .expect("run")
    })
    .await
    .unwrap();
    assert_eq!(no_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("--key"));

    // Nobody listens on port 9 of localhost.
    let down = run_as("http://127.0.0.1:9", &s.key, &["tables", "list"], None).await;
    assert_eq!(down.code, 1, "{down:?}");
    assert!(
        down.stderr
            .starts_with("error: cannot connect to http://127.0.0.1:9"),
        "{down:?}"
    );

    // https is spoken (tests/tls.rs tries it through a proxy); here nobody answers.
    let tls = run_as("https://127.0.0.1:9", &s.key, &["tables", "list"], None).await;
    assert_eq!(tls.code, 1, "{tls:?}");
    assert!(
        tls.stderr
            .starts_with("error: cannot connect to https://127.0.0.1:9"),
        "{tls:?}"
    );

    let bad_json = run(
        &s,
        &[
            "import",
            "whatever.csv",
            "--table",
            "t",
            "--mapping",
            "{nope",
        ],
    )
    .await;
    assert_eq!(bad_json.code, 1, "{bad_json:?}");
    assert!(
        bad_json.stderr.contains("--mapping is not valid JSON"),
        "{bad_json:?}"
    );

    let no_file = run(&s, &["import", "/nonexistent/x.csv", "--table", "t"]).await;
    assert_eq!(no_file.code, 1, "{no_file:?}");
    assert!(
        no_file.stderr.contains("cannot open /nonexistent/x.csv"),
        "{no_file:?}"
    );
}

/// Runs `intake admin ARGS` on the database of a server's data directory.
fn admin(s: &TestServer, args: &[&str]) -> Run {
    let dir = s.data_dir();
    let backend = common::backend_args(&dir);
    let mut argv: Vec<String> = vec!["admin".into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend(["--data-dir".into(), dir.display().to_string()]);
    if let Some(i) = backend.iter().position(|a| a == "--database-url") {
        argv.extend(["--database-url".into(), backend[i + 1].clone()]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(&argv)
        .env_remove("INTAKE_DATABASE_URL")
        .env_remove("INTAKE_DATA_DIR")
        .output()
        .expect("run intake admin");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The key an admin command printed.
fn printed_key(run: &Run) -> String {
    run.stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("intake_"))
        .unwrap_or_else(|| panic!("no key printed: {run:?}"))
        .to_owned()
}

#[tokio::test]
async fn admin_makes_a_recovery_owner_key_and_a_workspace_of_its_own_beside_the_server() {
    let s = TestServer::start().await;
    let recovered = admin(&s, &["create-key"]);
    assert_eq!(recovered.code, 0, "{recovered:?}");
    let key = printed_key(&recovered);
    // The new key is an owner of the default workspace: it may create keys.
    let made = run_as(
        &s.base,
        &key,
        &[
            "keys", "create", "--name", "ci", "--role", "owner", "--json",
        ],
        None,
    )
    .await;
    assert_eq!(made.code, 0, "{made:?}");

    let tenant = admin(&s, &["create-workspace", "acme", "--name", "Acme"]);
    assert_eq!(tenant.code, 0, "{tenant:?}");
    let acme = printed_key(&tenant);
    let created = run_as(
        &s.base,
        &acme,
        &["tables", "create", "--schema", "-"],
        Some(people().to_string()),
    )
    .await;
    assert_eq!(created.code, 0, "{created:?}");
    // Each workspace sees its own tables only.
    let (status, theirs) = send(s.get("/v1/tables")).await;
    assert_eq!(status, 200);
    assert_eq!(theirs["data"], json!([]), "{theirs}");

    let again = admin(&s, &["create-workspace", "acme"]);
    assert_ne!(again.code, 0, "a taken slug is refused: {again:?}");
    let nobody = admin(&s, &["create-key", "--workspace", "nope"]);
    assert_ne!(nobody.code, 0);
    assert!(
        nobody.stderr.contains("there is no workspace \"nope\""),
        "{nobody:?}"
    );

    // Listed beside the default one, then deleted with its table.
    let listed = admin(&s, &["list-workspaces"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let slugs: Vec<&str> = listed
        .stdout
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(slugs, ["default", "acme"], "{listed:?}");
    let deleted = admin(&s, &["delete-workspace", "acme"]);
    assert_eq!(deleted.code, 0, "{deleted:?}");
    let (status, _) = send(s.req_as(&acme, reqwest::Method::GET, "/v1/tables")).await;
    assert_eq!(status, 401, "its keys went with it");
    let listed = admin(&s, &["list-workspaces"]);
    assert!(!listed.stdout.contains("acme"), "{listed:?}");
    let gone = admin(&s, &["delete-workspace", "acme"]);
    assert_ne!(gone.code, 0, "{gone:?}");
}

#[tokio::test]
async fn keys_create_scopes_a_key_to_tables() {
    let s = TestServer::start().await;
    let made = run_as(
        &s.base,
        &s.key,
        &[
            "keys",
            "create",
            "--name",
            "etl",
            "--role",
            "member",
            "--tables",
            "orders,items",
            "--json",
        ],
        None,
    )
    .await;
    assert_eq!(made.code, 0, "{made:?}");
    let key: Value = serde_json::from_str(&made.stdout).expect("JSON");
    assert_eq!(key["tables"], json!(["items", "orders"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reads_a_sheet_of_a_workbook_and_a_zstd_compressed_file() {
    let s = TestServer::start().await;
    let mut book = rust_xlsxwriter::Workbook::new();
    book.add_worksheet()
        .set_name("Readme")
        .and_then(|w| w.write_string(0, 0, "About"))
        .expect("sheet");
    let orders = book.add_worksheet();
    orders.set_name("Orders").expect("name");
    orders.write_string(0, 0, "Order ID").expect("cell");
    orders.write_string(0, 1, "Amount").expect("cell");
    for i in 1..=300u32 {
        orders.write_number(i, 0, i).expect("cell");
        orders
            .write_number(i, 1, f64::from(i) + 0.25)
            .expect("cell");
    }
    let path = s.dir.path().join("Q1 Book.xlsx");
    book.save(&path).expect("save");
    let proposal = run(
        &s,
        &["tables", "infer", path_str(&path), "--sheet", "2", "--json"],
    )
    .await;
    assert_eq!(proposal.code, 0, "{proposal:?}");
    let proposal = proposal.json();
    assert_eq!(proposal["sheet"], "Orders", "{proposal}");
    assert_eq!(proposal["table"]["name"], "q1_book", "{proposal}");
    let types: Vec<&str> = proposal["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["integer", "decimal"], "{proposal}");
    let r = run(
        &s,
        &["import", path_str(&path), "--sheet", "Orders", "--json"],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let import = r.json();
    assert_eq!(import["source"], "xlsx", "{import}");
    assert_eq!(import["tables"][0]["table"], "q1_book", "{import}");
    assert_eq!(import["counts"]["created"], 300, "{import}");

    let path = s.dir.path().join("people.csv.zst");
    let csv = "id,name\n1,Ann\n2,Bob\n";
    std::fs::write(&path, zstd::encode_all(csv.as_bytes(), 3).expect("zstd")).expect("write");
    let r = run(&s, &["import", path_str(&path), "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let import = r.json();
    assert_eq!(import["tables"][0]["table"], "people", "{import}");
    assert_eq!(import["counts"]["created"], 2, "{import}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_url_has_the_server_download_the_file() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let net = intake::api::url_source::AllowedNet::parse("127.0.0.2").expect("net");
    let s = TestServer::start_with(|c| {
        c.api.url_policy = std::sync::Arc::new(intake::api::url_source::UrlPolicy {
            allow: vec![net],
            timeout: std::time::Duration::from_secs(30),
            ..Default::default()
        });
    })
    .await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.2", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = "id,city\n1,Oslo\n2,Lima\n3,Pune\n";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    let url = format!("http://{addr}/Cities.csv");
    let r = run(&s, &["import", "--from-url", &url, "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let import = r.json();
    assert_eq!(import["status"], "complete", "{import}");
    assert_eq!(import["tables"][0]["table"], "cities", "{import}");
    assert_eq!(import["counts"]["created"], 3, "{import}");
    let r = run(
        &s,
        &[
            "import",
            "--from-url",
            "http://10.0.0.1/x.csv",
            "--table",
            "cities",
        ],
    )
    .await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("a private, loopback or link-local address"),
        "{r:?}"
    );
}
