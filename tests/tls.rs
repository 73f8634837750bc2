//! TLS and reverse proxies: the command line through https (a TLS-terminating proxy made
//! here, in front of a real server, with a certificate from a CA made here), the event
//! streams' headers for proxies, and PostgreSQL with each `sslmode` against a throwaway
//! cluster started here with `ssl=on` (never the server the other tests share).
//!
//! The PostgreSQL tests run with `INTAKE_TEST_BACKEND=postgres` only, like the fault tests;
//! where the cluster cannot be made (no `initdb`, not root nor `postgres`) they are skipped
//! with a message, except under `CI`, where they fail.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{TestServer, on_postgres};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

// ---- Certificates -----------------------------------------------------------------------

/// A CA and a server certificate it signed, as PEM files in a directory of their own.
struct Pki {
    dir: tempfile::TempDir,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Pki {
    /// A CA and a certificate for `names` (host names or IP addresses).
    fn new(names: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Intake test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &issuer).expect("server certificate");

        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
        std::fs::write(dir.path().join("server.pem"), cert.pem()).expect("write server.pem");
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write key");
        Pki {
            dir,
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

// ---- The command line through https -------------------------------------------------------

/// A TLS-terminating proxy on a free port of 127.0.0.1, in front of `upstream`, as nginx
/// or Caddy would be; answers its https:// URL.
async fn tls_proxy(pki: &Pki, upstream: String) -> String {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone())),
        )
        .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to relay.
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

/// Runs the `intake` binary with these arguments; answers its exit code, stdout, stderr.
async fn intake(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(&args)
            .env_remove("INTAKE_URL")
            .env_remove("INTAKE_KEY")
            .env_remove("INTAKE_CA_CERT")
            .env_remove("RUST_LOG")
            .output()
            .expect("run intake");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("runner")
}

/// The server's address (`127.0.0.1:port`) from its base URL.
fn upstream(s: &TestServer) -> String {
    s.base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

#[tokio::test]
async fn the_cli_works_through_https_when_given_the_servers_ca_certificate() {
    let s = TestServer::start().await;
    s.create_table(common::orders_schema("orders")).await;
    let pki = Pki::new(&["127.0.0.1", "localhost"]);
    let https = tls_proxy(&pki, upstream(&s)).await;

    let (code, stdout, stderr) = intake(vec![
        "tables".into(),
        "list".into(),
        "--json".into(),
        "--url".into(),
        https.clone(),
        "--key".into(),
        s.key.clone(),
        "--ca-cert".into(),
        path_str(&pki.ca()).into(),
    ])
    .await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let tables: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(
        stdout.contains("\"orders\""),
        "the table made over http is listed over https: {tables}"
    );
}

#[tokio::test]
async fn without_the_ca_certificate_the_cli_says_the_certificate_is_not_trusted() {
    let s = TestServer::start().await;
    let pki = Pki::new(&["127.0.0.1"]);
    let https = tls_proxy(&pki, upstream(&s)).await;

    let (code, stdout, stderr) = intake(vec![
        "tables".into(),
        "list".into(),
        "--url".into(),
        https.clone(),
        "--key".into(),
        s.key.clone(),
    ])
    .await;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: TLS with {https} failed: the server's certificate is not signed by a \
             trusted authority (if the server's certificate comes from a private CA or is \
             self-signed, trust it with --ca-cert FILE or INTAKE_CA_CERT)"
        )
    );

    // A certificate for another name is refused though its CA is trusted.
    let other = Pki::new(&["db.example"]);
    let https = tls_proxy(&other, upstream(&s)).await;
    let (code, _, stderr) = intake(vec![
        "tables".into(),
        "list".into(),
        "--url".into(),
        https.clone(),
        "--key".into(),
        s.key.clone(),
        "--ca-cert".into(),
        path_str(&other.ca()).into(),
    ])
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: TLS with {https} failed: the server's certificate is not valid for this \
             host name"
        )),
        "{stderr}"
    );

    // A CA file that is not there is named.
    let (code, _, stderr) = intake(vec![
        "tables".into(),
        "list".into(),
        "--url".into(),
        https,
        "--key".into(),
        s.key.clone(),
        "--ca-cert".into(),
        "/nonexistent/ca.pem".into(),
    ])
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read --ca-cert /nonexistent/ca.pem: "),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_https_url_to_a_plain_http_server_says_it_does_not_answer_tls() {
    let s = TestServer::start().await;
    let url = s.base.replace("http://", "https://");
    let (code, _, stderr) = intake(vec![
        "tables".into(),
        "list".into(),
        "--url".into(),
        url.trim_end_matches('/').to_owned(),
        "--key".into(),
        s.key.clone(),
    ])
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("failed: the server does not answer TLS (is it plain http://?)"),
        "{stderr}"
    );
}

// ---- Behind a reverse proxy ---------------------------------------------------------------

#[tokio::test]
async fn event_streams_tell_proxies_not_to_buffer_or_cache_them() {
    let s = TestServer::start().await;
    let response = s
        .get("/v1/stream")
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
}

// ---- PostgreSQL with TLS ------------------------------------------------------------------

/// The path of one of PostgreSQL's programs.
fn pg_bin(program: &str) -> Option<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"));
    versions
        .chain(["/usr/local/bin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL program, as the `postgres` user when this process is root (initdb and
/// the server refuse to run as root).
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A throwaway cluster serving TLS with a certificate for `db.example` from a CA made here;
/// stopped when dropped.
struct TlsCluster {
    pki: Pki,
    pg_ctl: PathBuf,
    port: u16,
}

impl TlsCluster {
    /// Starts one; `Err` says why it could not be.
    fn start() -> Result<TlsCluster, String> {
        let initdb = pg_bin("initdb").ok_or("initdb is not installed")?;
        let pg_ctl = pg_bin("pg_ctl").ok_or("pg_ctl is not installed")?;
        let pki = Pki::new(&["db.example"]);
        let root = pki.dir.path().to_owned();
        // The server reads its key only when no one else can.
        std::fs::set_permissions(
            root.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .map_err(|e| e.to_string())?;
        if is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !chown.success() {
                return Err("cannot give the cluster's directory to the postgres user".into());
            }
        }
        let out = pg_command(&initdb)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(root.join("pg"))
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c ssl=on \
             -c ssl_cert_file={root}/server.pem -c ssl_key_file={root}/server.key",
            root = root.display()
        );
        let cluster = TlsCluster { pki, pg_ctl, port };
        let out = pg_command(&cluster.pg_ctl)
            .args(["-w", "-t", "30", "-D"])
            .arg(root.join("pg"))
            .arg("-l")
            .arg(root.join("log"))
            .args(["-o", &options, "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(root.join("log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl start: {}{log}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(cluster)
    }

    /// A URL of the cluster at `host` (connecting to 127.0.0.1 whatever the name).
    fn url(&self, host: &str, params: &str) -> String {
        let addr = if host == "127.0.0.1" {
            String::new()
        } else {
            "hostaddr=127.0.0.1&".to_owned()
        };
        format!(
            "postgres://postgres@{host}:{}/postgres?{addr}{params}",
            self.port
        )
    }

    /// Whether each session of Intake's store is encrypted, asked over a connection of
    /// the test's own; waits for the sessions of a store dropped before to be gone first.
    fn intake_sessions_use_tls(&self) -> Vec<bool> {
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        );
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'intake'",
            &[],
        )
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    /// Waits (5 s at most) until no session of Intake's store is left.
    fn await_no_intake_session(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.intake_sessions_use_tls().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sessions of a dropped store stay open"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = pg_command(&self.pg_ctl)
            .args(["-m", "immediate", "-D"])
            .arg(self.pki.dir.path().join("pg"))
            .arg("stop")
            .output();
    }
}

/// The cluster, or None (saying why) when it cannot be made here or the suite does not run
/// on PostgreSQL; under CI, not being able to make it fails the test.
fn tls_cluster() -> Option<TlsCluster> {
    if !on_postgres() {
        eprintln!("skipped: the PostgreSQL TLS tests run with INTAKE_TEST_BACKEND=postgres");
        return None;
    }
    match TlsCluster::start() {
        Ok(c) => Some(c),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("cannot start a PostgreSQL cluster with TLS: {why}")
        }
        Err(why) => {
            eprintln!("skipped: cannot start a PostgreSQL cluster with TLS: {why}");
            None
        }
    }
}

/// Opens Intake's store on `url` as `intake serve` does; answers the error as printed.
async fn open(url: String, ca_file: Option<PathBuf>) -> Result<intake::store::SharedStore, String> {
    let mut config = intake::Config::new(PathBuf::from("/nonexistent"));
    config.database_url = Some(url);
    config.database_ca_cert = ca_file;
    intake::server::open_store(&config)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// Runs blocking work on the cluster off the test's runtime.
async fn on_cluster<T: Send + 'static>(
    cluster: &Arc<TlsCluster>,
    f: impl FnOnce(&TlsCluster) -> T + Send + 'static,
) -> T {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || f(&cluster))
        .await
        .expect("cluster task")
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_connects_with_each_sslmode_as_libpq_does() {
    let Some(cluster) = tokio::task::spawn_blocking(tls_cluster).await.unwrap() else {
        return;
    };
    let cluster = Arc::new(cluster);
    let ca = cluster.pki.ca();
    let ca_param = format!("sslrootcert={}", path_str(&ca));

    // Each mode, and whether its sessions are encrypted: the cluster's certificate names
    // db.example, so verify-full reaches it by that name (hostaddr=127.0.0.1).
    let working = [
        (cluster.url("127.0.0.1", "sslmode=disable"), None, false),
        (cluster.url("127.0.0.1", ""), None, true),
        (cluster.url("127.0.0.1", "sslmode=prefer"), None, true),
        (cluster.url("127.0.0.1", "sslmode=require"), None, true),
        (
            cluster.url("127.0.0.1", &format!("sslmode=require&{ca_param}")),
            None,
            true,
        ),
        (
            cluster.url("127.0.0.1", &format!("sslmode=verify-ca&{ca_param}")),
            None,
            true,
        ),
        (
            cluster.url("db.example", &format!("sslmode=verify-full&{ca_param}")),
            None,
            true,
        ),
        // The CA given beside the URL (--database-ca-cert).
        (
            cluster.url("db.example", "sslmode=verify-full"),
            Some(ca.clone()),
            true,
        ),
    ];
    for (url, ca_file, encrypted) in working {
        let store = open(url.clone(), ca_file)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let used = on_cluster(&cluster, |c| c.intake_sessions_use_tls()).await;
        assert!(!used.is_empty(), "{url}: no session of the store");
        assert!(
            used.iter().all(|tls| *tls == encrypted),
            "{url}: sessions encrypted {used:?}, expected {encrypted}"
        );
        drop(store);
        on_cluster(&cluster, |c| c.await_no_intake_session()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_refuses_a_certificate_the_sslmode_does_not_trust_and_says_why() {
    let Some(cluster) = tokio::task::spawn_blocking(tls_cluster).await.unwrap() else {
        return;
    };
    let ca = cluster.pki.ca();
    let server = format!("127.0.0.1:{}", cluster.port);
    let other = Pki::new(&["db.example"]);
    let other_ca = other.ca();
    let refused = [
        // The certificate names db.example, not the address connected to.
        (
            format!("sslmode=verify-full&sslrootcert={}", path_str(&ca)),
            "invalid peer certificate: certificate not valid for name \"127.0.0.1\"",
        ),
        // The system's roots do not include the test's CA.
        (
            "sslmode=verify-ca".to_owned(),
            "invalid peer certificate: UnknownIssuer",
        ),
        // With a CA file, require checks the chain, as libpq does.
        (
            format!("sslmode=require&sslrootcert={}", path_str(&other_ca)),
            "invalid peer certificate: BadSignature",
        ),
    ];
    for (params, why) in refused {
        let url = cluster.url("127.0.0.1", &params);
        let e = open(url.clone(), None).await.err().expect("refused");
        let expected = format!("TLS handshake with {server} failed: {why}");
        assert!(
            e.contains(&expected),
            "{url}:\n{e}\nshould contain\n{expected}"
        );
        assert!(
            e.starts_with(&format!("cannot open the database {url}: ")),
            "{e}"
        );
    }

    let e = open(cluster.url("127.0.0.1", "sslmode=verify-all"), None)
        .await
        .err()
        .expect("refused");
    assert!(
        e.ends_with(
            "sslmode=\"verify-all\" is not supported: use disable, prefer, require, verify-ca \
             or verify-full"
        ),
        "{e}"
    );
}
