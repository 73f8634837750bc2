//! Staging an upload: the body is streamed to a temporary file (never held whole in memory),
//! inflated when it is gzip-compressed, converted to UTF-8 on the way, hashed, and
//! size-limited, then sniffed.

use std::path::PathBuf;

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::inflate::{Damaged, Inflater};
use super::reader::Format;
use super::reader::encoding::{Encoding, Transcoder};
use super::reader::sniff::{Sniffed, sniff};

/// A staged upload, ready to become an import's source.
#[derive(Debug)]
pub struct Staged {
    pub path: PathBuf,
    /// Bytes received (before conversion).
    pub received: u64,
    /// Bytes stored (after conversion to UTF-8).
    pub size: u64,
    /// SHA-256 of the bytes received, hex.
    pub sha256: String,
    /// Malformed sequences replaced while converting.
    pub replaced: u64,
    /// How the upload was compressed (`gzip`), if it was.
    pub compression: Option<&'static str>,
    /// The first bytes of the stored file, for sniffing.
    pub head: Vec<u8>,
}

/// Why an upload could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("the upload is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the upload could not be read: {0}")]
    Body(String),
    #[error("the upload could not be stored: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Damaged(#[from] Damaged),
    /// A compressed upload inflating far past any real data's ratio: a decompression bomb.
    #[error(
        "the compressed upload inflates to more than {MAX_RATIO} times its size (past \
         {0} bytes); real data compresses far less: a decompression bomb?"
    )]
    Bomb(u64),
}

/// How many times its compressed size an upload may inflate to, once past
/// [`RATIO_FREE_BYTES`]: CSV and JSON compress 3 to 20 times, very repetitive data 100.
pub const MAX_RATIO: u64 = 250;
/// Inflated bytes below which the ratio is not checked (small files compress the most).
const RATIO_FREE_BYTES: u64 = 16 << 20;

const HEAD: usize = 64 * 1024;

/// Streams `body` to `path`, converting from `encoding` (a BOM wins) to UTF-8.
pub async fn stage<S, B, E>(
    path: PathBuf,
    mut body: S,
    encoding: Option<Encoding>,
    limit: u64,
) -> Result<Staged, StageError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let result = async {
        let mut file = tokio::fs::File::create(&path).await?;
        let mut hasher = Sha256::new();
        let mut inflater = Inflater::default();
        let mut transcoder = Transcoder::new(encoding);
        let mut plain = Vec::with_capacity(128 * 1024);
        let mut out = Vec::with_capacity(128 * 1024);
        let mut head = Vec::new();
        let (mut received, mut inflated, mut size) = (0u64, 0u64, 0u64);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StageError::Body(e.to_string()))?;
            let chunk = chunk.as_ref();
            received += chunk.len() as u64;
            if received > limit {
                return Err(StageError::TooLarge(limit));
            }
            hasher.update(chunk);
            plain.clear();
            inflater.push(chunk, &mut plain)?;
            // The limit holds for what is stored too: an inflated upload may not pass it.
            inflated += plain.len() as u64;
            if inflated > limit {
                return Err(StageError::TooLarge(limit));
            }
            if inflated > RATIO_FREE_BYTES && inflated / received.max(1) > MAX_RATIO {
                return Err(StageError::Bomb(inflated));
            }
            out.clear();
            transcoder.push(&plain, &mut out);
            if head.len() < HEAD {
                head.extend_from_slice(&out[..out.len().min(HEAD - head.len())]);
            }
            size += out.len() as u64;
            file.write_all(&out).await?;
        }
        plain.clear();
        inflater.finish(&mut plain)?;
        out.clear();
        transcoder.push(&plain, &mut out);
        let replaced = transcoder.finish(&mut out);
        if head.len() < HEAD {
            head.extend_from_slice(&out[..out.len().min(HEAD - head.len())]);
        }
        size += out.len() as u64;
        file.write_all(&out).await?;
        // Synced before the import that points at it is committed.
        file.sync_all().await?;
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Staged {
            path: path.clone(),
            received,
            size,
            sha256,
            replaced,
            compression: inflater.compression(),
            head,
        })
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&path).await;
    }
    result
}

/// Decides the format of a staged upload.
pub fn detect(
    staged: &Staged,
    declared: Option<Format>,
    delimiter: Option<u8>,
    file_name: Option<&str>,
) -> Result<Sniffed, String> {
    sniff(&staged.head, declared, delimiter, file_name)
}
