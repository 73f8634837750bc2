//! The checkpointer: copies what commits appended to the write-ahead log into the database
//! file, on a thread and a connection of its own. SQLite's automatic checkpoint runs inside
//! the commit that crosses its threshold, on the writer: while an import loads, that writer
//! is the busiest thread there is, and the copying (every page written twice, with an fsync)
//! took a quarter of its time. The writer's own checkpoint stays, at a higher threshold:
//! it finds little left to copy, and after it the log starts over (SQLite restarts the log
//! only once every page of it was copied, which a checkpoint running beside a busy writer
//! never sees).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::reserve::Reserve;

/// The least time between two checkpoints: each copies what several commits wrote.
const PAUSE: Duration = Duration::from_millis(100);

/// The longest wait after failed checkpoints: a checkpoint that failed (a full disk: the
/// database file cannot grow) is tried again after a pause that doubles up to this, so that
/// a full disk costs a few attempts and log lines a minute, not ten a second. Nothing waits
/// on the checkpointer: the log keeps every commit until a checkpoint succeeds.
const MOST_PAUSE: Duration = Duration::from_secs(30);

/// How often a checkpoint that keeps failing is logged as a warning.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The checkpointer's thread; stopped (after a last checkpoint) when dropped.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// A commit appended to the log since the last checkpoint.
    pending: bool,
    stop: bool,
}

impl Checkpointer {
    /// Starts the checkpointer on its own connection to the database.
    /// It also makes the space reserve again once checkpoints succeed (there may be room).
    pub(super) fn start(conn: Connection, reserve: Arc<Reserve>) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("intake-checkpoint".into())
            .spawn(move || {
                crate::background::lower_this_thread();
                run(&conn, &theirs, &reserve)
            })?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the checkpointer that a commit appended to the log.
    pub(super) fn nudge(&self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.pending = true;
        }
        self.shared.wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, shared: &Shared, reserve: &Reserve) {
    let mut failing = Failing::default();
    loop {
        let Ok(mut state) = shared.state.lock() else {
            return;
        };
        while !state.pending && !state.stop {
            state = match shared.wake.wait(state) {
                Ok(s) => s,
                Err(_) => return,
            };
        }
        let stop = state.stop;
        state.pending = false;
        drop(state);
        let done = checkpoint(conn);
        if done.is_ok() {
            reserve.ensure();
        }
        let pause = failing.after(done);
        if stop {
            return;
        }
        // Commits made meanwhile wait for the next checkpoint; a stop does not.
        let Ok(state) = shared.state.lock() else {
            return;
        };
        if let Ok((state, _)) = shared.wake.wait_timeout_while(state, pause, |s| !s.stop)
            && state.stop
            && !state.pending
        {
            return;
        }
    }
}

/// Checkpoints that failed in a row, and when that was last logged.
#[derive(Default)]
struct Failing {
    count: u32,
    warned: Option<Instant>,
}

impl Failing {
    /// Notes how a checkpoint went; answers how long to wait before the next one.
    fn after(&mut self, result: rusqlite::Result<()>) -> Duration {
        match result {
            Ok(()) => {
                if self.count > 0 {
                    tracing::info!(failed = self.count, "checkpoints succeed again");
                }
                *self = Failing::default();
                PAUSE
            }
            Err(e) => {
                self.count += 1;
                if self.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    tracing::warn!(error = %e, failed = self.count, "checkpoint failed; retrying with backoff");
                    self.warned = Some(Instant::now());
                } else {
                    tracing::debug!(error = %e, failed = self.count, "checkpoint failed");
                }
                PAUSE
                    .saturating_mul(1 << self.count.min(10))
                    .min(MOST_PAUSE)
            }
        }
    }
}

fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    // Copies what it can without waiting for the writer or readers.
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
