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
use std::time::Duration;

use rusqlite::Connection;

/// The least time between two checkpoints: each copies what several commits wrote.
const PAUSE: Duration = Duration::from_millis(100);

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
    pub(super) fn start(conn: Connection) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("intake-checkpoint".into())
            .spawn(move || {
                crate::background::lower_this_thread();
                run(&conn, &theirs)
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

fn run(conn: &Connection, shared: &Shared) {
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
        checkpoint(conn);
        if stop {
            return;
        }
        // Commits made meanwhile wait for the next checkpoint; a stop does not.
        let Ok(state) = shared.state.lock() else {
            return;
        };
        if let Ok((state, _)) = shared.wake.wait_timeout_while(state, PAUSE, |s| !s.stop)
            && state.stop
            && !state.pending
        {
            return;
        }
    }
}

fn checkpoint(conn: &Connection) {
    // Copies what it can without waiting for the writer or readers.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "checkpoint failed");
    }
}
