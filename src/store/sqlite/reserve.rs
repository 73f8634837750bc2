//! Space kept in reserve beside the database: a file of zeros that is deleted when the disk
//! is full, so that the failure that filled it can still be recorded (an import ending
//! `failed` with `storage_full` instead of staying `processing` with nobody able to write
//! its end). Made again once there is room for it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// How much space is kept: enough for many small commits (an import's end is a few pages).
const RESERVE_BYTES: usize = 4 << 20;

/// The reserve file of one database.
pub(super) struct Reserve {
    path: PathBuf,
    present: AtomicBool,
}

impl Reserve {
    /// The reserve at `path`, made now if there is room.
    pub(super) fn open(path: PathBuf) -> Reserve {
        let reserve = Reserve {
            path,
            present: AtomicBool::new(false),
        };
        reserve.ensure();
        reserve
    }

    /// Makes the reserve if it is missing and there is room for it (a partial one is
    /// removed: it would only take space).
    pub(super) fn ensure(&self) {
        if self.present.load(Ordering::Acquire) {
            return;
        }
        let made = std::fs::metadata(&self.path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64)
            || self.write();
        if made {
            self.present.store(true, Ordering::Release);
        }
    }

    fn write(&self) -> bool {
        let written = std::fs::File::create(&self.path).and_then(|mut f| {
            f.write_all(&vec![0u8; RESERVE_BYTES])?;
            f.sync_all()
        });
        match written {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "no room for the reserve yet");
                let _ = std::fs::remove_file(&self.path);
                false
            }
        }
    }

    /// Deletes the reserve; answers whether there was one to free.
    pub(super) fn release(&self) -> bool {
        if !self.present.swap(false, Ordering::AcqRel) {
            return false;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::warn!(
                    bytes = RESERVE_BYTES,
                    "the disk is full: released the space kept in reserve to record the failure"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not release the space kept in reserve");
                false
            }
        }
    }
}
