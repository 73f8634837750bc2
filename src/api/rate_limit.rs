//! Per-workspace request rates: a tenant's burst of requests cannot starve the others. Each
//! workspace may make `--rate-limit-per-workspace` requests a second (as a burst, refilled
//! evenly); past it, requests answer `429 rate_limited` with `Retry-After`.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};

/// The request budget of every workspace.
pub struct WorkspaceRates {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
    per_second: u32,
}

impl std::fmt::Debug for WorkspaceRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceRates")
            .field("per_second", &self.per_second)
            .finish()
    }
}

impl WorkspaceRates {
    /// Budgets of `per_second` requests a second; None (no limit) for 0.
    pub fn new(per_second: u32) -> Option<WorkspaceRates> {
        let rate = NonZeroU32::new(per_second)?;
        Some(WorkspaceRates {
            limiter: RateLimiter::keyed(Quota::per_second(rate)),
            clock: DefaultClock::default(),
            per_second,
        })
    }

    /// Counts one request of `workspace`; refuses it when its budget is spent.
    pub fn check(&self, workspace: Uuid) -> Result<(), ApiError> {
        let Err(not_until) = self.limiter.check_key(&workspace) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.clock.now());
        // Whole seconds, rounded up: a client that waits that long gets through.
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let mut error = ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "this workspace sends more than {} requests a second; retry in {seconds} s",
                self.per_second
            ),
        )
        .with("retry_after", seconds);
        error.retry_after = Some(seconds);
        Err(error)
    }
}
