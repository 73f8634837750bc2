//! Undoing what an import wrote: a rollback asked for once it ended, and the revert of an
//! all-or-nothing import that stopped. Both record their step first, so that a worker
//! resuming a killed undo finishes it.

use super::super::Engine;
use crate::model::{ImportStatus, OnError, Step};
use crate::store::{BatchWriter, Claim, ImportEnd, StoreError};

impl Engine {
    /// Undoes a finished import table by table (each in one transaction), then ends it
    /// `rolled_back`. A worker that resumes a killed rollback skips the tables already done.
    #[tracing::instrument(name = "rollback", skip_all, fields(import = %claim.import.id))]
    pub(super) async fn run_rollback(&self, claim: &Claim) -> Result<(), StoreError> {
        let import = &claim.import;
        for table in import.tables.iter().rev() {
            if table.status == ImportStatus::RolledBack {
                continue;
            }
            // A deleted table has nothing left to undo.
            let Some(schema) = self.table_schema(claim, &table.table).await? else {
                continue;
            };
            let writer = self.open_writer(claim, table, &schema, import.mode)?;
            self.with_writer(writer, |w| w.roll_back()).await?;
        }
        self.store
            .finish_import(
                claim,
                &ImportEnd {
                    status: ImportStatus::RolledBack,
                    error: None,
                    rollback_until: None,
                },
            )
            .await
    }

    /// Undoes every table of an aborted import (after a crash, or when a later table of a
    /// stacked import stops it), then ends it failed.
    #[tracing::instrument(name = "revert", skip_all, fields(import = %claim.import.id))]
    pub(super) async fn revert_all(
        &self,
        claim: &Claim,
        why: Option<String>,
    ) -> Result<(), StoreError> {
        let import = &claim.import;
        for table in &import.tables {
            let Some(schema) = self.table_schema(claim, &table.table).await? else {
                continue;
            };
            let writer = self.open_writer(claim, table, &schema, import.mode)?;
            self.with_writer(writer, |w| w.revert()).await?;
        }
        let why = why
            .or_else(|| import.error.clone())
            .unwrap_or_else(|| "the import was stopped and its changes undone".into());
        let unfinished = import
            .tables
            .iter()
            .filter(|t| !t.status.is_terminal())
            .map(|t| t.position)
            .collect();
        self.fail(claim, unfinished, why).await
    }

    /// Undoes what the import wrote to a table; the reason is stored first, so that a worker
    /// resuming after a crash finishes the undo and ends the import with it.
    pub(super) async fn revert(
        &self,
        claim: &Claim,
        writer: Box<dyn BatchWriter>,
        why: &str,
    ) -> Result<(), StoreError> {
        self.store
            .set_step(claim, Step::Reverting, Some(why))
            .await?;
        self.with_writer(writer, |w| w.revert()).await
    }

    /// Undoes every change of an all-or-nothing import that stopped on `error`, then ends it
    /// failed. The `reverting` step is recorded first, so that a worker resuming a killed
    /// undo finishes it.
    pub(super) async fn undo_failed(
        &self,
        claim: &Claim,
        error: &StoreError,
    ) -> Result<(), StoreError> {
        if matches!(error, StoreError::StorageFull(_)) {
            self.store.release_reserve();
        }
        let why = undone_reason(error, claim.import.on_error);
        self.store
            .set_step(claim, Step::Reverting, Some(&why))
            .await?;
        // Undoing writes as well (the journal of what it deletes), which a full disk may
        // refuse again. From the `reverting` step on, the source is never read again (a
        // resumed undo needs only the journal), so its space goes to the undo now rather
        // than once the import has ended.
        if matches!(error, StoreError::StorageFull(_)) {
            self.delete_sources(&claim.import).await;
        }
        self.revert_all(claim, Some(why)).await
    }
}

/// Why an all-or-nothing import that stopped on an error failed, once its changes were
/// undone.
fn undone_reason(e: &StoreError, on_error: OnError) -> String {
    let undone = format!(
        "with on_error={} every change was undone",
        on_error.as_str()
    );
    match e {
        StoreError::StorageFull(cause) => format!(
            "storage_full: the disk holding the database is full ({cause}); {undone} (free \
             some space and send the file again)"
        ),
        StoreError::Unavailable(cause) => {
            format!("database_unavailable: the database went away ({cause}); {undone}")
        }
        e => format!("the import stopped on an error: {e}; {undone}"),
    }
}
