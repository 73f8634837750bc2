//! The rules of an import's life cycle, decided here once: each operation (start, cancel,
//! roll back, forget, prune) is a pure function of what the import is, answering what to do
//! or a typed refusal. Each store backend applies the answer inside its own transaction.

use time::OffsetDateTime;

use super::{ImportStatus, Role};

/// Why a change was refused: the same refusal, and the same words, on every backend. The API
/// maps each to one error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Cancelling an import that has ended.
    #[error("the import is {0} and can no longer be cancelled")]
    NotCancellable(ImportStatus),
    /// Rolling back or forgetting an import that has not ended.
    #[error("the import is {0} and cannot be {1} until it ends; cancel it first")]
    Running(ImportStatus, &'static str),
    /// Rolling back an import that wrote nothing, or whose undo journal is gone.
    #[error("{0}")]
    NotRollbackable(NotRollbackable),
    /// Rolling back an import whose rows a later import changed.
    #[error("import {later} (number {number}) changed rows this import wrote; roll it back first")]
    RollbackBlocked {
        /// The later import's id.
        later: String,
        /// The later import's number.
        number: i64,
    },
    /// Starting, or giving a source to, an import that no longer waits for one.
    #[error("the import is {0} and no longer waits for its sources")]
    NotWaiting(ImportStatus),
    /// Creating a workspace whose slug is taken.
    #[error("workspace {0:?} already exists")]
    WorkspaceExists(String),
    /// Deleting a workspace while one of its imports runs.
    #[error(
        "workspace {slug:?} has an import in progress ({import}): cancel it or let it finish first"
    )]
    WorkspaceBusy {
        /// The workspace's slug.
        slug: String,
        /// The running import's id.
        import: String,
    },
    /// Revoking a key of a higher role than the caller may.
    #[error("a {} key cannot be revoked with this key", .0.as_str())]
    KeyOutranks(Role),
    /// Creating a table whose name is taken.
    #[error("table {0:?} already exists")]
    TableExists(String),
    /// Creating a table whose name a table Intake does not know takes in the database.
    #[error("cannot create table {name:?}: {why}")]
    TableLeftOver {
        /// The table's name.
        name: String,
        /// What the database said.
        why: String,
    },
    /// Dropping a table an unfinished import writes to.
    #[error("table {name:?} is in use by import {import}, which has not finished")]
    TableInUse {
        /// The table's name.
        name: String,
        /// The unfinished import's id.
        import: String,
    },
}

/// Why an ended import cannot be rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotRollbackable {
    /// Its source was unsupported.
    #[error("the import wrote nothing (its source was unsupported)")]
    Unsupported,
    /// A dry run.
    #[error("a dry run wrote nothing to roll back")]
    DryRun,
    /// Its rollback window ended.
    #[error("this import can no longer be rolled back: its undo journal was pruned")]
    Pruned,
}

/// What a cancel request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAction {
    /// Not started yet: it ends cancelled at once.
    CancelNow,
    /// Running: its worker is asked to stop at its next batch.
    AskWorker,
}

/// What a rollback request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackAction {
    /// Rolled back, or rolling back already: answered as it is.
    AsItIs,
    /// Starts rolling back, unless a later import changed the same rows (which the store
    /// looks for and refuses with [`Refusal::RollbackBlocked`]).
    Start,
}

/// Which imports a request to forget one accepts beyond those that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// Only ended imports (the native API).
    Ended,
    /// Ended imports and those still waiting for their sources (the dialects).
    EndedOrWaiting,
}

/// The facts about an import its life-cycle decisions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// Its status.
    pub status: ImportStatus,
    /// Whether it is a dry run (it wrote nothing).
    pub dry_run: bool,
    /// Until when it can be rolled back (its undo journal is kept), if it can.
    pub rollback_until: Option<OffsetDateTime>,
}

impl Lifecycle {
    /// Decides a cancel request.
    pub fn cancel(&self) -> Result<CancelAction, Refusal> {
        match self.status {
            ImportStatus::Processing => Ok(CancelAction::AskWorker),
            s if s.is_cancellable() => Ok(CancelAction::CancelNow),
            s => Err(Refusal::NotCancellable(s)),
        }
    }

    /// Decides a rollback request at `now`.
    pub fn rollback(&self, now: OffsetDateTime) -> Result<RollbackAction, Refusal> {
        match self.status {
            ImportStatus::RolledBack | ImportStatus::RollingBack => {
                return Ok(RollbackAction::AsItIs);
            }
            s if !s.is_terminal() => return Err(Refusal::Running(s, "rolled back")),
            ImportStatus::Unsupported => {
                return Err(Refusal::NotRollbackable(NotRollbackable::Unsupported));
            }
            _ => {}
        }
        if self.dry_run {
            return Err(Refusal::NotRollbackable(NotRollbackable::DryRun));
        }
        match self.rollback_until {
            Some(until) if until > now => Ok(RollbackAction::Start),
            _ => Err(Refusal::NotRollbackable(NotRollbackable::Pruned)),
        }
    }

    /// Decides a request to forget the import (and, if asked, to delete the rows it wrote).
    pub fn forget(&self, which: Forget) -> Result<(), Refusal> {
        let waiting = which == Forget::EndedOrWaiting && self.status == ImportStatus::New;
        if self.status.is_terminal() || waiting {
            Ok(())
        } else {
            Err(Refusal::Running(self.status, "deleted"))
        }
    }

    /// Decides a change that only an import waiting for its sources accepts (starting it,
    /// recording a source, its download's step).
    pub fn expect_waiting(&self) -> Result<(), Refusal> {
        match self.status {
            ImportStatus::New => Ok(()),
            s => Err(Refusal::NotWaiting(s)),
        }
    }
}

/// The moment before which an ended import's rollback window is over, for a retention of
/// `retention` at `now`: pruning reaches imports whose own deadline passed, or that ended
/// before this (so a lowered retention reaches imports that ended before it).
pub fn prune_before(now: OffsetDateTime, retention: std::time::Duration) -> OffsetDateTime {
    let retention = time::Duration::try_from(retention).unwrap_or(time::Duration::MAX);
    now.checked_sub(retention)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(status: ImportStatus) -> Lifecycle {
        Lifecycle {
            status,
            dry_run: false,
            rollback_until: Some(OffsetDateTime::now_utc() + time::Duration::hours(1)),
        }
    }

    #[test]
    fn a_queued_import_is_cancelled_at_once_and_a_running_one_is_asked_to_stop() {
        assert_eq!(
            ended(ImportStatus::Queued).cancel(),
            Ok(CancelAction::CancelNow)
        );
        assert_eq!(
            ended(ImportStatus::New).cancel(),
            Ok(CancelAction::CancelNow)
        );
        assert_eq!(
            ended(ImportStatus::Processing).cancel(),
            Ok(CancelAction::AskWorker)
        );
        assert_eq!(
            ended(ImportStatus::Complete).cancel(),
            Err(Refusal::NotCancellable(ImportStatus::Complete))
        );
    }

    #[test]
    fn only_an_ended_import_that_wrote_something_recently_can_be_rolled_back() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            ended(ImportStatus::Complete).rollback(now),
            Ok(RollbackAction::Start)
        );
        assert_eq!(
            ended(ImportStatus::RolledBack).rollback(now),
            Ok(RollbackAction::AsItIs)
        );
        assert!(matches!(
            ended(ImportStatus::Queued).rollback(now),
            Err(Refusal::Running(ImportStatus::Queued, _))
        ));
        let dry = Lifecycle {
            dry_run: true,
            ..ended(ImportStatus::Complete)
        };
        assert_eq!(
            dry.rollback(now),
            Err(Refusal::NotRollbackable(NotRollbackable::DryRun))
        );
        let pruned = Lifecycle {
            rollback_until: None,
            ..ended(ImportStatus::Complete)
        };
        assert_eq!(
            pruned.rollback(now),
            Err(Refusal::NotRollbackable(NotRollbackable::Pruned))
        );
    }

    #[test]
    fn a_waiting_import_can_be_forgotten_only_when_the_caller_says_so() {
        let waiting = ended(ImportStatus::New);
        assert!(waiting.forget(Forget::Ended).is_err());
        assert!(waiting.forget(Forget::EndedOrWaiting).is_ok());
        assert!(ended(ImportStatus::Failed).forget(Forget::Ended).is_ok());
        assert!(
            ended(ImportStatus::Processing)
                .forget(Forget::EndedOrWaiting)
                .is_err()
        );
    }
}
