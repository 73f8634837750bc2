//! Pause points: named places where a worker of a test build waits until the test releases
//! it, so that a test can cancel or stop an import while it is provably mid-way instead of
//! hoping the load is slow enough. Release builds keep an empty type whose calls compile to
//! nothing.

/// A place in the worker where a test may hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PausePoint {
    /// A worker just claimed an import (and has not read anything of it yet).
    Claimed,
    /// A writing pass just wrote its n-th batch (counted from 1 in each pass); with
    /// PostgreSQL's grouped writes, the batch's transaction may still be open.
    AfterBatch(u64),
}

#[cfg(debug_assertions)]
pub use armed::PausePoints;

#[cfg(not(debug_assertions))]
pub use release::PausePoints;

#[cfg(debug_assertions)]
mod armed {
    use std::collections::HashMap;
    use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::PausePoint;

    /// A forgotten release must not hang a test run for ever: past this, the worker goes on.
    const LONGEST_PAUSE: Duration = Duration::from_secs(120);

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Gate {
        Armed,
        Waiting,
        Released,
    }

    #[derive(Debug, Default)]
    struct Shared {
        gates: Mutex<HashMap<PausePoint, Gate>>,
        released: Condvar,
        changed: Notify,
    }

    /// The pause points a test armed; clones share them (the test keeps one, the engine
    /// configuration another). Each armed point holds the first worker that reaches it.
    #[derive(Debug, Clone, Default)]
    pub struct PausePoints(Arc<Shared>);

    impl PausePoints {
        /// The pause a test of a server process asks for through its environment (a test
        /// cannot reach into another process): with `INTAKE_TEST_PAUSE_AFTER_BATCH=N`, the
        /// first writing pass to write its N-th batch waits until the file named by
        /// `INTAKE_TEST_PAUSE_RELEASE` exists. Read by test builds only.
        pub fn from_env() -> PausePoints {
            let pauses = PausePoints::default();
            let batch = std::env::var("INTAKE_TEST_PAUSE_AFTER_BATCH")
                .ok()
                .and_then(|n| n.parse::<u64>().ok());
            let release = std::env::var_os("INTAKE_TEST_PAUSE_RELEASE");
            let (Some(batch), Some(release)) = (batch, release) else {
                return pauses;
            };
            let point = PausePoint::AfterBatch(batch);
            pauses.arm(point);
            let watcher = pauses.clone();
            let release = std::path::PathBuf::from(release);
            let spawned = std::thread::Builder::new()
                .name("intake-pause".into())
                .spawn(move || {
                    while !release.exists() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    watcher.release(point);
                });
            if spawned.is_err() {
                // Without its watcher the point would only be released by the longest pause.
                pauses.release(point);
            }
            pauses
        }

        /// Makes the next worker that reaches `point` wait there until [`Self::release`].
        pub fn arm(&self, point: PausePoint) {
            self.gates().insert(point, Gate::Armed);
        }

        /// Waits until a worker waits at `point` (or went past it once released).
        pub async fn reached(&self, point: PausePoint) {
            loop {
                let changed = self.0.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if matches!(
                    self.gates().get(&point),
                    Some(Gate::Waiting | Gate::Released)
                ) {
                    return;
                }
                changed.await;
            }
        }

        /// Lets the worker waiting at `point` (and any later one) go on.
        pub fn release(&self, point: PausePoint) {
            self.gates().insert(point, Gate::Released);
            self.0.released.notify_all();
            self.0.changed.notify_waiters();
        }

        /// Waits at `point` on a blocking thread while a test holds it there.
        pub(crate) fn pause(&self, point: PausePoint) {
            let mut gates = self.gates();
            if !self.hold(&mut gates, point) {
                return;
            }
            let (_gates, _) = self
                .0
                .released
                .wait_timeout_while(gates, LONGEST_PAUSE, |g| {
                    g.get(&point) == Some(&Gate::Waiting)
                })
                .unwrap_or_else(|e| e.into_inner());
        }

        /// Waits at `point` on the async runtime while a test holds it there.
        pub(crate) async fn pause_async(&self, point: PausePoint) {
            if !self.hold(&mut self.gates(), point) {
                return;
            }
            let _ = tokio::time::timeout(LONGEST_PAUSE, async {
                loop {
                    let changed = self.0.changed.notified();
                    tokio::pin!(changed);
                    changed.as_mut().enable();
                    if self.gates().get(&point) != Some(&Gate::Waiting) {
                        return;
                    }
                    changed.await;
                }
            })
            .await;
        }

        /// Turns an armed `point` into one being waited at; false when it is not armed.
        fn hold(&self, gates: &mut HashMap<PausePoint, Gate>, point: PausePoint) -> bool {
            if gates.get(&point) != Some(&Gate::Armed) {
                return false;
            }
            gates.insert(point, Gate::Waiting);
            self.0.changed.notify_waiters();
            true
        }

        fn gates(&self) -> MutexGuard<'_, HashMap<PausePoint, Gate>> {
            // A test that panicked while holding the lock left consistent gates behind.
            self.0.gates.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

#[cfg(not(debug_assertions))]
mod release {
    use super::PausePoint;

    /// No pause points in a release build: waiting at one does nothing.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct PausePoints;

    impl PausePoints {
        /// No pause: release builds do not read the test environment.
        pub fn from_env() -> PausePoints {
            PausePoints
        }

        /// Does nothing.
        #[inline(always)]
        pub(crate) fn pause(&self, _point: PausePoint) {}

        /// Does nothing.
        pub(crate) async fn pause_async(&self, _point: PausePoint) {}
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::{PausePoint, PausePoints};

    #[tokio::test]
    async fn a_worker_waits_at_an_armed_point_until_the_test_releases_it() {
        let pauses = PausePoints::default();
        pauses.arm(PausePoint::AfterBatch(2));
        // A point that is not armed lets the worker through at once.
        pauses.pause(PausePoint::AfterBatch(1));
        let worker = {
            let pauses = pauses.clone();
            tokio::task::spawn_blocking(move || pauses.pause(PausePoint::AfterBatch(2)))
        };
        pauses.reached(PausePoint::AfterBatch(2)).await;
        assert!(!worker.is_finished());
        pauses.release(PausePoint::AfterBatch(2));
        worker.await.expect("the worker went on");
        // Released, the point holds no one again.
        pauses.pause(PausePoint::AfterBatch(2));
        pauses.pause_async(PausePoint::AfterBatch(2)).await;
    }

    #[tokio::test]
    async fn an_async_step_waits_at_an_armed_point_until_the_test_releases_it() {
        let pauses = PausePoints::default();
        pauses.arm(PausePoint::Claimed);
        let step = {
            let pauses = pauses.clone();
            tokio::spawn(async move { pauses.pause_async(PausePoint::Claimed).await })
        };
        pauses.reached(PausePoint::Claimed).await;
        assert!(!step.is_finished());
        pauses.release(PausePoint::Claimed);
        step.await.expect("the step went on");
    }
}
