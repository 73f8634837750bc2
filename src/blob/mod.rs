//! Uploaded sources: staged to a temporary file while they arrive, then kept under a key
//! until their import no longer needs them. Kept in the data directory by default, or in an
//! object store (S3-compatible bucket, or a shared directory) that every process reaches.

mod parts;
mod remote;

use std::path::{Path, PathBuf};

use uuid::Uuid;

pub use parts::PartSink;
use remote::Remote;
pub use remote::read_s3_object;

/// What can go wrong with stored sources.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("source storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("source storage: {0}")]
    Remote(#[from] object_store::Error),
    #[error("source storage: {0}")]
    Config(String),
}

/// Whether a failed file write means the disk (or the user's quota) is full: the write may
/// succeed once space is freed.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Where sources live: `<dir>/sources/<key>` or a remote object store, staged locally in
/// `<dir>/staging/` either way.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    remote: Option<Remote>,
}

impl BlobStore {
    /// Opens the store under `dir`, or in the object store at `url` (`s3://bucket/prefix`,
    /// `file:///shared/dir`) with `dir` for staging; removes staged files left by an
    /// interrupted upload (an upload that was not fully received never becomes an import).
    pub fn open(dir: &Path, url: Option<&str>) -> Result<BlobStore, BlobError> {
        let root = dir.to_owned();
        std::fs::create_dir_all(root.join("sources"))?;
        // Parts of resumable uploads survive restarts (unlike staged files).
        std::fs::create_dir_all(root.join("parts"))?;
        for scratch in ["staging", "fetched"] {
            let path = root.join(scratch);
            if path.exists() {
                std::fs::remove_dir_all(&path)?;
            }
            std::fs::create_dir_all(&path)?;
        }
        let remote = url.map(Remote::open).transpose()?;
        Ok(BlobStore { root, remote })
    }

    /// Where sources are kept, for logs (`local` or the object store's URL).
    pub fn describe(&self) -> String {
        match &self.remote {
            Some(r) => r.url().to_owned(),
            None => self.root.join("sources").display().to_string(),
        }
    }

    /// A fresh path to stage an upload at.
    pub fn staging_path(&self) -> PathBuf {
        self.root.join("staging").join(Uuid::now_v7().to_string())
    }

    /// Keeps a fully received, synced staged file under `key` (the staged file is gone after).
    pub async fn commit(&self, staged: &Path, key: &str) -> Result<(), BlobError> {
        match &self.remote {
            Some(remote) => {
                remote.upload(staged, &source_path(key)).await?;
                tokio::fs::remove_file(staged).await?;
            }
            None => tokio::fs::rename(staged, self.local_path(key)).await?,
        }
        Ok(())
    }

    /// The size of a stored source, or None when it is not stored.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, BlobError> {
        match &self.remote {
            Some(remote) => remote.size(&source_path(key)).await,
            None => match tokio::fs::metadata(self.local_path(key)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// A local file holding a stored source, for the engine to read: the file itself, or a
    /// copy fetched from the object store (kept until the source is deleted or the process
    /// restarts).
    pub async fn fetch(&self, key: &str) -> Result<PathBuf, BlobError> {
        let Some(remote) = &self.remote else {
            return Ok(self.local_path(key));
        };
        let fetched = self.fetched_path(key);
        if tokio::fs::try_exists(&fetched).await? {
            return Ok(fetched);
        }
        let partial = self.staging_path();
        remote.download(&source_path(key), &partial).await?;
        tokio::fs::rename(&partial, &fetched).await?;
        Ok(fetched)
    }

    /// Deletes a stored source and any local copy (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        if let Some(remote) = &self.remote {
            remove_local(&self.fetched_path(key)).await?;
            return remote.delete(&source_path(key)).await;
        }
        remove_local(&self.local_path(key)).await
    }

    fn local_path(&self, key: &str) -> PathBuf {
        self.root.join("sources").join(key)
    }

    fn fetched_path(&self, key: &str) -> PathBuf {
        self.root.join("fetched").join(key)
    }
}

fn source_path(key: &str) -> String {
    format!("sources/{key}")
}

async fn remove_local(path: &Path) -> Result<(), BlobError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
