//! Lease renewal for a loop that runs on a blocking thread and commits nothing per batch (a
//! validation pass): an async task renews the lease beside it, once per batch the loop
//! reports, and flags what it learns (a cancel asked, the lease lost, a database error) for
//! the loop to read between batches. The loop never waits on the runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::store::{Claim, SharedStore, StoreError};

/// What the renewing task and the blocking loop share.
#[derive(Default)]
struct Shared {
    /// The loop finished a batch: renew now.
    batch: Notify,
    /// The pass ended: stop renewing.
    done: AtomicBool,
    /// A renewal answered that a cancel was asked.
    cancel: AtomicBool,
    /// A renewal failed (`LeaseLost` when another worker took the import); renewing stops.
    failed: Mutex<Option<StoreError>>,
}

/// The renewing task of one pass; [`LeaseRenewal::stop`] ends it.
pub(super) struct LeaseRenewal {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    store: SharedStore,
    claim: Claim,
}

/// The blocking loop's side: reports batches, reads the flags.
pub(super) struct LeaseFlags(Arc<Shared>);

impl LeaseRenewal {
    /// Starts renewing `claim`'s lease, once per batch reported through the flags.
    pub(super) fn start(store: SharedStore, claim: Claim) -> (LeaseRenewal, LeaseFlags) {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn({
            let shared = shared.clone();
            let (store, claim) = (store.clone(), claim.clone());
            async move {
                loop {
                    shared.batch.notified().await;
                    if shared.done.load(Ordering::Acquire) {
                        return;
                    }
                    match store.renew_lease(&claim, claim.lease_ms).await {
                        Ok(l) if l.cancel_requested => shared.cancel.store(true, Ordering::Release),
                        Ok(_) => {}
                        Err(e) => {
                            *lock(&shared.failed) = Some(e);
                            return;
                        }
                    }
                }
            }
        });
        let flags = LeaseFlags(shared.clone());
        let renewal = LeaseRenewal {
            shared,
            task,
            store,
            claim,
        };
        (renewal, flags)
    }

    /// Stops renewing once the renewal under way (if any) is done; then, when `last` (the
    /// loop read every batch), renews once more so that the pass ends knowing the lease
    /// holds. Answers whether a cancel was asked, or the error a renewal failed with.
    pub(super) async fn finish(self, last: bool) -> Result<bool, StoreError> {
        self.shared.done.store(true, Ordering::Release);
        self.shared.batch.notify_one();
        self.task
            .await
            .map_err(|e| StoreError::Database(format!("renewing the lease failed: {e}")))?;
        if let Some(e) = lock(&self.shared.failed).take() {
            return Err(e);
        }
        let mut cancel = self.shared.cancel.load(Ordering::Acquire);
        if last {
            let claim = &self.claim;
            cancel |= self
                .store
                .renew_lease(claim, claim.lease_ms)
                .await?
                .cancel_requested;
        }
        Ok(cancel)
    }
}

impl LeaseFlags {
    /// Tells the renewing task a batch went by: it renews the lease (and so learns of a
    /// cancel within a batch or two).
    pub(super) fn batch_done(&self) {
        self.0.batch.notify_one();
    }

    /// Whether a renewal answered that a cancel was asked.
    pub(super) fn cancel_requested(&self) -> bool {
        self.0.cancel.load(Ordering::Acquire)
    }

    /// The error a renewal failed with, if one did.
    pub(super) fn take_error(&self) -> Option<StoreError> {
        lock(&self.0.failed).take()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The flags stay meaningful if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
