//! Uploaded sources: staged to a temporary file while they arrive, then kept under a key
//! until their import no longer needs them.

use std::path::{Path, PathBuf};

use uuid::Uuid;

/// What can go wrong with stored sources.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("source storage: {0}")]
    Io(#[from] std::io::Error),
}

/// Sources kept in a local directory: `<dir>/sources/<key>`, staged in `<dir>/staging/`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens the store under `dir`, removing staged files left by an interrupted upload (an
    /// upload that was not fully received never becomes an import).
    pub fn open(dir: &Path) -> Result<BlobStore, BlobError> {
        let root = dir.to_owned();
        std::fs::create_dir_all(root.join("sources"))?;
        // Parts of resumable uploads survive restarts (unlike staged files).
        std::fs::create_dir_all(root.join("parts"))?;
        let staging = root.join("staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)?;
        Ok(BlobStore { root })
    }

    /// A fresh path to stage an upload at.
    pub fn staging_path(&self) -> PathBuf {
        self.root.join("staging").join(Uuid::now_v7().to_string())
    }

    /// Where the received part of a resumable upload of an import is kept.
    pub fn part_path(&self, import_id: Uuid) -> PathBuf {
        self.root.join("parts").join(import_id.to_string())
    }

    /// Moves a fully received, synced staged file under `key`.
    pub async fn commit(&self, staged: &Path, key: &str) -> Result<(), BlobError> {
        tokio::fs::rename(staged, self.path(key)).await?;
        Ok(())
    }

    /// The local file of a stored source, for the engine to read.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join("sources").join(key)
    }

    /// Deletes a stored source (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
