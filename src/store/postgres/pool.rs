//! A small blocking connection pool: a few lines instead of a pool crate. Connections are
//! taken for one operation (one transaction) and given back. An idle connection is checked
//! with a trivial query before it is handed out: one that the server closed meanwhile (a
//! terminated session, a restart) is dropped and replaced, so that a request does not fail
//! on a connection that was dead before it started. Connections use TLS as the URL's
//! `sslmode` says (see `tls`).

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use ::postgres::config::{Host, SslMode as ClientSslMode};
use ::postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{self, SslMode};
use super::{StoreError, StoreResult};

/// How long an operation waits for a free connection before it fails (`Unavailable`).
const WAIT: Duration = Duration::from_secs(10);

/// How long a server may take to connect, or to answer the check of an idle connection,
/// before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Open connections to one database, at most `max` at a time.
pub(crate) struct Pool {
    config: ::postgres::Config,
    /// `None`: plain TCP (`sslmode=disable`).
    tls: Option<MakeRustlsConnect>,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Client>,
    /// Connections open, idle or taken.
    open: usize,
}

/// What the pool handed out before any check.
enum Taken {
    /// Just opened: it answered already.
    New(Client),
    /// Idle since its last use: the server may have closed it meanwhile.
    Idle(Client),
}

/// A connection taken from the pool; given back when dropped.
pub(crate) struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl Pool {
    /// A pool for the database at `url` (a `postgres://` URL), with
    /// `ca_file` as the CA certificates when the URL names none (`sslrootcert`).
    pub(crate) fn new(url: &str, ca_file: Option<&Path>, max: usize) -> StoreResult<Pool> {
        let (url, settings) =
            tls::split(url, ca_file).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut config: ::postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("invalid database URL: {e}")))?;
        // The client crate's own modes: it asks for TLS, rustls decides what to trust.
        config.ssl_mode(match settings.mode {
            SslMode::Disable => ClientSslMode::Disable,
            SslMode::Prefer => ClientSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
        });
        let tls = tls::connector(&settings).map_err(|e| StoreError::Invalid(e.to_string()))?;
        if config.get_application_name().is_none() {
            config.application_name("intake");
        }
        // An unreachable server fails an operation instead of hanging it.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(Pool {
            config,
            tls,
            max: max.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        })
    }

    /// Takes an idle connection, opens one if fewer than `max` are open, or waits for one.
    pub(crate) fn get(&self) -> StoreResult<Conn<'_>> {
        Ok(Conn {
            pool: self,
            client: self.take(false)?,
        })
    }

    /// A connection for work that may as well run later, without waiting: `None` unless
    /// another one would still be free for others (an idle one, or room to open one).
    pub(crate) fn get_spare(&self) -> StoreResult<Option<Conn<'_>>> {
        Ok(self.take(true)?.map(|client| Conn {
            pool: self,
            client: Some(client),
        }))
    }

    fn take(&self, spare: bool) -> StoreResult<Option<Client>> {
        loop {
            match self.take_unchecked(spare)? {
                None => return Ok(None),
                Some(Taken::New(client)) => return Ok(Some(client)),
                Some(Taken::Idle(mut client)) => {
                    // Checked without holding the pool's lock: the check is a round trip.
                    if client.is_valid(CHECK_TIMEOUT).is_ok() {
                        return Ok(Some(client));
                    }
                    tracing::debug!("dropped a pooled database connection that no longer answers");
                    self.forget(client);
                }
            }
        }
    }

    /// An idle connection (unchecked), or a new one when fewer than `max` are open, or the
    /// first one given back; for `spare`, `None` instead of the last free one or of waiting.
    fn take_unchecked(&self, spare: bool) -> StoreResult<Option<Taken>> {
        let poisoned = || StoreError::Database("connection pool poisoned".into());
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        loop {
            if spare && state.idle.len() + (self.max - state.open) < 2 {
                return Ok(None);
            }
            while let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    discard(client);
                    continue;
                }
                return Ok(Some(Taken::Idle(client)));
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(client) => Ok(Some(Taken::New(client))),
                    Err(e) => {
                        if let Ok(mut state) = self.state.lock() {
                            state.open -= 1;
                        }
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let (next, timeout) = self
                .freed
                .wait_timeout(state, WAIT)
                .map_err(|_| poisoned())?;
            state = next;
            if timeout.timed_out() && state.idle.is_empty() && state.open >= self.max {
                return Err(StoreError::Unavailable(
                    "no database connection became free in time".into(),
                ));
            }
        }
    }

    /// Drops a taken connection that is not given back, making room for a new one.
    fn forget(&self, client: Client) {
        if let Ok(mut state) = self.state.lock() {
            state.open -= 1;
        }
        discard(client);
        self.freed.notify_one();
    }

    fn connect(&self) -> StoreResult<Client> {
        let connected = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        };
        let mut client = connected.map_err(|e| self.connect_error(e))?;
        // UTC and shortest exact floats: what the journal's JSON rows are written with.
        client.batch_execute("SET TIME ZONE 'UTC'; SET extra_float_digits = 1")?;
        Ok(client)
    }

    /// A failed connect as an error naming the server; a failed TLS handshake says so and
    /// why (the client crate's own text is a bare "error performing TLS handshake").
    fn connect_error(&self, e: ::postgres::Error) -> StoreError {
        if e.to_string() != "error performing TLS handshake" {
            return e.into();
        }
        let servers = self.servers();
        let Some(cause) = std::error::Error::source(&e) else {
            return StoreError::Database(format!("TLS handshake with {servers} failed"));
        };
        let message = format!("TLS handshake with {servers} failed: {cause}");
        // io::Error shows its inner error but skips it as a source: look inside.
        let io = cause.downcast_ref::<std::io::Error>();
        let mut inner = io.and_then(|io| io.get_ref());
        let mut from_rustls = false;
        while let Some(i) = inner {
            from_rustls |= i.is::<rustls::Error>();
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref());
        }
        match io {
            // The connection broke during the handshake: the server may be restarting.
            Some(_) if !from_rustls => StoreError::Unavailable(message),
            // A certificate refused, TLS refused by the server: trying again will not help.
            _ => StoreError::Database(message),
        }
    }

    /// The servers of the URL, as `host:port` (comma-separated when there are several).
    fn servers(&self) -> String {
        let ports = self.config.get_ports();
        self.config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                // One port for every host, or one each.
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    Host::Unix(dir) => format!("{}:{port}", dir.display()),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Connections open and in use now, and the most this pool opens.
    pub(crate) fn stats(&self) -> crate::store::PoolStats {
        let (open, idle) = self
            .state
            .lock()
            .map(|s| (s.open, s.idle.len()))
            .unwrap_or_default();
        crate::store::PoolStats {
            open: open as u64,
            in_use: open.saturating_sub(idle) as u64,
            max: self.max as u64,
        }
    }

    fn give_back(&self, client: Client) {
        let Ok(mut state) = self.state.lock() else {
            discard(client);
            return;
        };
        if client.is_closed() {
            state.open -= 1;
            discard(client);
        } else {
            state.idle.push(client);
        }
        drop(state);
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Ok(state) = self.state.get_mut() {
            for client in state.idle.drain(..) {
                discard(client);
            }
        }
    }
}

/// Closes a connection on a thread of its own: closing blocks on the client's runtime, which
/// must not happen on an async task (the pool may be dropped on one).
fn discard(client: Client) {
    let _ = std::thread::Builder::new()
        .name("intake-pg-close".into())
        .spawn(move || drop(client));
}

impl Deref for Conn<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Only `drop` takes the client out.
        self.client
            .as_ref()
            .expect("pooled connection present until dropped")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("pooled connection present until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.give_back(client);
        }
    }
}
