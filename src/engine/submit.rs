//! Submitting work: the one use case every way in (the native API, the two-step flow, the
//! dialects) goes through to create, start or roll back an import. Sources are put in place
//! before the import that points at them commits, an idempotency key's request is recognised
//! by one fingerprint, and the workers are woken here, after the commit, and nowhere else.

use std::path::Path;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Engine;
use crate::blob::BlobError;
use crate::model::ImportStatus;
use crate::store::{CreateOutcome, ImportRecord, NewIdempotency, NewImport, StoreError};

/// A request to create an import: what to import, into which tables, with which settings,
/// for which workspace (all in `import`), with the sources staged for it.
#[derive(Debug)]
pub struct Submission<'a> {
    /// The import as it is to be stored; its idempotency is set from `idempotency_key`.
    pub import: NewImport,
    /// Each input's staged source, in the order of `import.inputs` (none for an import
    /// created before its file).
    pub sources: Vec<StagedSource<'a>>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// The options as given, in their canonical spelling (`ImportSettings.canonical`).
    pub canonical: &'a str,
}

/// One staged source of a submission, and what tells it apart in a fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct StagedSource<'a> {
    /// Where the source waits on local disk.
    pub path: &'a Path,
    /// The SHA-256 of its bytes, in hex.
    pub sha256: &'a str,
    /// The table its request named for it (a multipart field's name), if any.
    pub table: Option<&'a str>,
    /// Its file name, if it came with one.
    pub file_name: Option<&'a str>,
}

/// What a submission did.
#[derive(Debug)]
pub enum Submitted {
    /// The import was created (and queued, unless it waits for its file or was refused).
    Created(Box<ImportRecord>),
    /// Its idempotency key was already used: by this same request when `same_request`.
    Replayed {
        /// The import the key created first.
        import_id: Uuid,
        /// The request is the one the key was first used with (same options and sources).
        same_request: bool,
    },
}

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A source could not be put in place.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Creates an import: stores its sources, commits it, and wakes the workers when it is
    /// queued. A replayed idempotency key creates nothing and says whether the request is the
    /// one it was first used with.
    pub async fn submit(&self, submission: Submission<'_>) -> Result<Submitted, SubmitError> {
        let Submission {
            mut import,
            sources,
            idempotency_key,
            canonical,
        } = submission;
        import.idempotency = idempotency_key.map(|key| NewIdempotency {
            key,
            fingerprint: fingerprint(canonical, &sources),
        });
        // Sources are in place before the import that points at them is committed.
        if import.status != ImportStatus::Unsupported {
            for (source, input) in sources.iter().zip(&import.inputs) {
                if let Some(key) = &input.blob_key {
                    self.blobs.commit(source.path, key).await?;
                }
            }
        }
        match self.store.create_import(&import).await? {
            CreateOutcome::Created(created) => {
                if created.status == ImportStatus::Queued {
                    self.wake();
                }
                Ok(Submitted::Created(created))
            }
            CreateOutcome::Replayed(first) => {
                // The first request's import keeps its own sources; these are not needed.
                for key in import.inputs.iter().filter_map(|i| i.blob_key.as_deref()) {
                    let _ = self.blobs.delete(key).await;
                }
                let same_request = import
                    .idempotency
                    .as_ref()
                    .is_some_and(|i| i.fingerprint == first.fingerprint);
                Ok(Submitted::Replayed {
                    import_id: first.import_id,
                    same_request,
                })
            }
        }
    }

    /// Queues an import that waited (status `new`) for its sources, whose sizes are given
    /// in input order, and wakes the workers.
    pub async fn start(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        sizes: &[u64],
    ) -> Result<ImportRecord, StoreError> {
        let import = self.store.start_import(workspace_id, id, sizes).await?;
        self.wake();
        Ok(import)
    }

    /// Asks for a finished import to be undone and wakes the workers to do it.
    pub async fn roll_back(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<ImportRecord, StoreError> {
        let import = self.store.request_rollback(workspace_id, id).await?;
        self.wake();
        Ok(import)
    }
}

/// What an idempotency key's request is recognised by: its options and its sources' bytes.
fn fingerprint(options: &str, sources: &[StagedSource<'_>]) -> String {
    let mut h = Sha256::new();
    h.update(options.as_bytes());
    for s in sources {
        h.update(b"\0");
        h.update(s.table.unwrap_or("").as_bytes());
        h.update(b"\0");
        h.update(s.file_name.unwrap_or("").as_bytes());
        h.update(b"\0");
        h.update(s.sha256.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
