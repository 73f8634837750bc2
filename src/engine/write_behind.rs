//! A file flushed to disk while it is written: an upload is made durable before its import
//! is committed, and one sync at the end of a 120 MB upload waited 55 ms for all of it. Syncs
//! started in the background as the file grows leave the last one little to write.

use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes written between two background syncs.
const SYNC_EVERY_BYTES: u64 = 16 << 20;

/// The background syncs of one file being written.
pub struct WriteBehind {
    file: Arc<File>,
    next_at: u64,
    syncing: Option<JoinHandle<std::io::Result<()>>>,
}

impl WriteBehind {
    /// Follows `file` (through a handle of its own onto the same file).
    pub fn new(file: &File) -> std::io::Result<WriteBehind> {
        Ok(WriteBehind {
            file: Arc::new(file.try_clone()?),
            next_at: SYNC_EVERY_BYTES,
            syncing: None,
        })
    }

    /// Told how many bytes were written so far: starts a sync of what is written when the
    /// file grew enough since the last one and that one is done.
    pub fn wrote(&mut self, bytes: u64) -> std::io::Result<()> {
        if bytes < self.next_at || self.syncing.as_ref().is_some_and(|s| !s.is_finished()) {
            return Ok(());
        }
        self.finished()?;
        let file = self.file.clone();
        // Without a thread for it (the system's limit reached), this sync is left to the
        // last one, which makes the file durable all the same.
        self.syncing = std::thread::Builder::new()
            .name("intake-sync".into())
            .spawn(move || file.sync_data())
            .ok();
        self.next_at = bytes + SYNC_EVERY_BYTES;
        Ok(())
    }

    /// Waits for the sync under way, if any; a sync that failed fails the file.
    pub fn finished(&mut self) -> std::io::Result<()> {
        match self.syncing.take() {
            Some(sync) => sync
                .join()
                .map_err(|_| std::io::Error::other("the sync thread panicked"))?,
            None => Ok(()),
        }
    }
}
