//! The HTTP client of the command line: one `Client` holding the server URL and key, with a
//! method per kind of request and one error type. `https://` URLs are checked against the
//! platform's trusted roots, plus the certificates of `--ca-cert` for a private CA.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use reqwest::{Method, RequestBuilder, Response, Url};
use serde_json::Value;

use super::sse::{SseEvent, SseParser};

/// Options every command that talks to a server takes.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// URL of the Intake server: http://, or https:// (behind a TLS-terminating proxy).
    #[arg(long, env = "INTAKE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// CA certificates (PEM) to trust for an https:// URL, besides the system's: for a
    /// server whose certificate comes from a private CA or is self-signed.
    #[arg(long, env = "INTAKE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// API key of the workspace (`intake serve` prints the owner key at first start).
    #[arg(long, env = "INTAKE_KEY", hide_env_values = true)]
    pub key: String,
    /// Machine output: print the API's JSON as is, with no bars and no colors.
    #[arg(long)]
    pub json: bool,
}

impl ClientArgs {
    /// A client for these options.
    pub fn connect(&self) -> Result<Client, ClientError> {
        Client::new(&self.url, &self.key, self.ca_cert.as_deref())
    }
}

/// Everything that can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with its error envelope.
    #[error("{message} ({code})")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// The whole error object (it may carry more, such as `import_id`).
        error: Value,
    },
    /// No connection could be made.
    #[error("cannot connect to {url} (is `intake serve` running there? set --url or INTAKE_URL)")]
    Unreachable { url: String },
    /// A connection was made but TLS failed: the certificate was refused, or the other end
    /// does not speak TLS.
    #[error("TLS with {url} failed: {reason}")]
    Tls { url: String, reason: String },
    /// The request failed on the way (connection reset, bad answer framing...).
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl ClientError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ClientError {
        ClientError::Io {
            what: what.into(),
            source,
        }
    }

    /// The API error code, if the server answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying again later may work (the server restarted, the network blinked).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A connection to one server with one key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: String,
}

/// How long the stream may stay silent before the connection is deemed dead: the server
/// sends a keep-alive comment every 15 s.
const STREAM_IDLE: Duration = Duration::from_secs(45);

impl Client {
    /// A client of the server at `url` (`http://host:port` or `https://...`, optionally
    /// with a path prefix), trusting the PEM certificates of `ca_cert` besides the system's.
    pub fn new(url: &str, key: &str, ca_cert: Option<&Path>) -> Result<Client, ClientError> {
        let base = Url::parse(url.trim())
            .map_err(|e| ClientError::Usage(format!("--url {url:?} is not a URL: {e}")))?;
        match base.scheme() {
            "http" | "https" => {}
            other => {
                return Err(ClientError::Usage(format!(
                    "--url must be an http:// or https:// URL, not {other}://"
                )));
            }
        }
        if base.cannot_be_a_base() {
            return Err(ClientError::Usage(format!(
                "--url {url:?} cannot hold paths"
            )));
        }
        let key = key.trim();
        // A key goes in a header: refuse what a header cannot carry before any request.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::Usage(
                "the key must be non-empty visible ASCII (check --key or INTAKE_KEY)".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("intake-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            builder = builder.tls_certs_merge(ca_certificates(path)?);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            key: key.to_owned(),
        })
    }

    /// The URL of an API path given as segments (each one percent-encoded, so an id can
    /// never reach another route) with query pairs.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A request with the key.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.key)
    }

    /// Sends a request; a non-2xx answer becomes `ClientError::Api`.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let (client, request) = request.build_split();
        let request = request.map_err(|e| ClientError::Usage(format!("bad request: {e}")))?;
        let url = request.url().clone();
        let response = client
            .execute(request)
            .await
            .map_err(|e| transport(&url, e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(&url, response).await)
    }

    /// Sends a request and reads its JSON answer (`null` for an empty one, such as a 204).
    pub async fn json(&self, request: RequestBuilder) -> Result<Value, ClientError> {
        let response = self.send(request).await?;
        let url = response.url().clone();
        let bytes = response.bytes().await.map_err(|e| transport(&url, e))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("{url} did not answer JSON: {e}")))
    }

    /// `GET` of an API path.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        self.json(self.request(Method::GET, self.url(segments, query)))
            .await
    }

    /// `POST` of an API path, with a JSON body or none.
    pub async fn post(
        &self,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut request = self.request(Method::POST, self.url(segments, &[]));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.json(request).await
    }

    /// `DELETE` of an API path.
    pub async fn delete(&self, segments: &[&str]) -> Result<Value, ClientError> {
        self.json(self.request(Method::DELETE, self.url(segments, &[])))
            .await
    }

    /// Opens an import's event stream, resuming after `last_event_id` if given.
    pub async fn import_events(
        &self,
        import_id: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, ClientError> {
        let url = self.url(&["v1", "imports", import_id, "stream"], &[]);
        let mut request = self
            .request(Method::GET, url)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self.send(request).await?;
        Ok(EventStream {
            response,
            parser: SseParser::default(),
            pending: VecDeque::new(),
        })
    }
}

/// An open Server-Sent Events response.
pub struct EventStream {
    response: Response,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
}

impl EventStream {
    /// The next event; `None` once the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            let url = self.response.url().clone();
            let chunk = tokio::time::timeout(STREAM_IDLE, self.response.chunk())
                .await
                .map_err(|_| ClientError::Transport {
                    url: url.to_string(),
                    reason: format!("no news for {} s", STREAM_IDLE.as_secs()),
                })?
                .map_err(|e| transport(&url, e))?;
            match chunk {
                Some(bytes) => self.pending.extend(self.parser.push(&bytes)),
                None => return Ok(None),
            }
        }
    }
}

/// The certificates of a PEM file given with `--ca-cert`.
fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem = std::fs::read(path)
        .map_err(|e| ClientError::io(format!("cannot read --ca-cert {}", path.display()), e))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        ClientError::Usage(format!(
            "--ca-cert {} is not a PEM certificate file: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(ClientError::Usage(format!(
            "--ca-cert {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// A failed request as an error that says what happened in words.
pub fn transport(url: &Url, e: reqwest::Error) -> ClientError {
    let mut origin = url.clone();
    origin.set_path("");
    origin.set_query(None);
    let origin = origin.as_str().trim_end_matches('/').to_owned();
    // A refused certificate is a connect error too, but not one of reaching the server.
    if let Some(tls) = tls_error(&e) {
        return ClientError::Tls {
            url: origin,
            reason: tls_reason(tls),
        };
    }
    if e.is_connect() {
        return ClientError::Unreachable { url: origin };
    }
    // The innermost cause is the useful part ("connection reset by peer").
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    ClientError::Transport {
        url: url.to_string(),
        reason,
    }
}

/// The rustls error behind a failed request, if TLS is what failed.
fn tls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        // io::Error shows its inner error but skips it as a source (and the connector
        // wraps one io::Error in another): look inside each.
        let mut inner = Some(c);
        while let Some(i) = inner {
            if let Some(tls) = i.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|e| e as &(dyn std::error::Error + 'static));
        }
        cause = c.source();
    }
    None
}

/// What a TLS failure means for the user, and what to do about it.
fn tls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let hint = "if the server's certificate comes from a private CA or is self-signed, \
                trust it with --ca-cert FILE or INTAKE_CA_CERT";
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            format!("the server's certificate is not signed by a trusted authority ({hint})")
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => format!("the server's certificate is not valid for this host name ({e})"),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("the server's certificate has expired ({e})")
        }
        rustls::Error::InvalidCertificate(_) => {
            format!("the server's certificate was refused ({e})")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("the server does not answer TLS (is it plain http://?): {e}")
        }
        _ => e.to_string(),
    }
}

/// Reads the error envelope of a non-2xx answer.
async fn api_error(url: &Url, response: Response) -> ClientError {
    let status = response.status();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return transport(url, e),
    };
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(error) => ClientError::Api {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"]
                .as_str()
                .unwrap_or("(no message)")
                .to_owned(),
            error: error.clone(),
        },
        // Not Intake's envelope: a proxy, or not an Intake server at all.
        None => {
            let snippet: String = text.trim().chars().take(200).collect();
            ClientError::Api {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message: if snippet.is_empty() {
                    format!("{url} answered {status}")
                } else {
                    format!("{url} answered {status}: {snippet}")
                },
                error: Value::Null,
            }
        }
    }
}
