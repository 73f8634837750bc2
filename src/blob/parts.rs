//! Resumable uploads: the parts of a source received so far, kept where every process can
//! find them (a local file, or one object per part in the object store), so that the next
//! part may arrive at any process.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::remote::Remote;
use super::{BlobError, BlobStore};

/// One part being received; `finish` keeps it, dropping it unfinished keeps nothing.
pub struct PartSink {
    file: tokio::fs::File,
    path: PathBuf,
    /// Bytes received before this part (where it starts).
    start: u64,
    remote: Option<(Remote, String)>,
}

impl BlobStore {
    /// How many bytes of an import's upload were received so far.
    pub async fn part_received(&self, import: Uuid) -> Result<u64, BlobError> {
        match &self.remote {
            Some(remote) => Ok(remote
                .list(&parts_prefix(import))
                .await?
                .iter()
                .map(|(_, size)| size)
                .sum()),
            None => match tokio::fs::metadata(self.part_path(import)).await {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Starts receiving a part at byte `start`.
    pub async fn begin_part(&self, import: Uuid, start: u64) -> Result<PartSink, BlobError> {
        let (path, remote) = match &self.remote {
            Some(remote) => (
                self.staging_path(),
                Some((
                    remote.clone(),
                    // Parts that start at the same byte (batches sent at once) keep both.
                    format!("{}/{start:020}-{}", parts_prefix(import), Uuid::now_v7()),
                )),
            ),
            None => (self.part_path(import), None),
        };
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        Ok(PartSink {
            file,
            path,
            start,
            remote,
        })
    }

    /// The whole received upload as one local file (removed by `delete_part`).
    pub async fn assemble_part(&self, import: Uuid) -> Result<PathBuf, BlobError> {
        let local = self.part_path(import);
        let Some(remote) = &self.remote else {
            return Ok(local);
        };
        let mut out = tokio::fs::File::create(&local).await?;
        for (name, _) in remote.list(&parts_prefix(import)).await? {
            remote.append_to(&name, &mut out).await?;
        }
        out.sync_all().await?;
        Ok(local)
    }

    /// Forgets an import's received parts.
    pub async fn delete_part(&self, import: Uuid) -> Result<(), BlobError> {
        super::remove_local(&self.part_path(import)).await?;
        if let Some(remote) = &self.remote {
            for (name, _) in remote.list(&parts_prefix(import)).await? {
                remote.delete(&name).await?;
            }
        }
        Ok(())
    }

    fn part_path(&self, import: Uuid) -> PathBuf {
        self.root.join("parts").join(import.to_string())
    }
}

impl PartSink {
    /// Appends received bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.file.write_all(chunk).await?;
        Ok(())
    }

    /// Keeps the part: synced locally, or stored as its own object.
    pub async fn finish(self) -> Result<(), BlobError> {
        self.file.sync_all().await?;
        drop(self.file);
        if let Some((remote, name)) = &self.remote {
            remote.upload(&self.path, name).await?;
            super::remove_local(&self.path).await?;
        }
        Ok(())
    }

    /// Drops the part, leaving what was received before it.
    pub async fn abort(self) -> Result<(), BlobError> {
        drop(self.file);
        match self.remote {
            Some(_) => super::remove_local(&self.path).await,
            None => {
                let f = tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.path)
                    .await?;
                f.set_len(self.start).await?;
                Ok(())
            }
        }
    }
}

fn parts_prefix(import: Uuid) -> String {
    format!("parts/{import}")
}
