//! Staging an upload: the body is streamed to a temporary file (never held whole in memory),
//! inflated when it is gzip or zstd compressed, converted to UTF-8 on the way, hashed, and
//! size-limited, then sniffed. The request's task only receives: storing and hashing are
//! relayed to the blocking pool in batches (`relay.rs`), so the three overlap. Containers (a
//! zip holding one file, a workbook) are spooled whole first, since their directory is at
//! their end, then read from the spool.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::archive::{self, ArchiveError, CONTAINER_SNIFF, Container, Contents};
use super::inflate::{Damaged, Inflater};
use super::reader::Format;
use super::reader::encoding::{Encoding, Transcoder};
use super::reader::sniff::{Sniffed, sniff};
use super::relay::{Relay, Work};
use super::workbook::{self, SheetSource, WorkbookError};
use super::write_behind::WriteBehind;

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
    /// How the upload was compressed (`gzip`, `zstd`, `zip`), if it was.
    pub compression: Option<&'static str>,
    /// The name of the file a zip archive held: read for its extension only.
    pub entry_name: Option<String>,
    /// The sheet a workbook upload was converted from (the stored file is then NDJSON).
    pub workbook: Option<SheetSource>,
    /// The first bytes of the stored file, for sniffing.
    pub head: Vec<u8>,
    /// Why the upload, received whole, holds nothing readable (a damaged archive, a text
    /// document): its import is created `unsupported`, as one of a binary file is.
    pub unsupported: Option<String>,
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
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Workbook(#[from] WorkbookError),
}

/// How many times its compressed size an upload may inflate to, once past
/// [`RATIO_FREE_BYTES`]: CSV and JSON compress 3 to 20 times, very repetitive data 100.
pub const MAX_RATIO: u64 = 250;
/// Inflated bytes below which the ratio is not checked (small files compress the most).
const RATIO_FREE_BYTES: u64 = 16 << 20;

const HEAD: usize = 64 * 1024;

/// How to stage an upload.
#[derive(Debug, Clone, Default)]
pub struct StageOptions {
    /// The text encoding declared (a BOM wins; UTF-8 when none).
    pub encoding: Option<Encoding>,
    /// The sheet of a workbook to load: a name, or a 1-based position when no sheet has that
    /// name (None: the first).
    pub sheet: Option<String>,
}

/// Streams `body` to `path`, converting from `encoding` (a BOM wins) to UTF-8.
pub async fn stage<S, B, E>(
    path: PathBuf,
    body: S,
    encoding: Option<Encoding>,
    limit: u64,
) -> Result<Staged, StageError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Into<Bytes>,
    E: std::fmt::Display,
{
    let options = StageOptions {
        encoding,
        sheet: None,
    };
    stage_with(path, body, &options, limit).await
}

/// Streams `body` to `path` as UTF-8 text: inflated when gzip or zstd compressed, taken out
/// of a zip holding one file, converted from a workbook's sheet to NDJSON, converted from
/// its encoding. Nothing is left behind on error.
pub async fn stage_with<S, B, E>(
    path: PathBuf,
    body: S,
    options: &StageOptions,
    limit: u64,
) -> Result<Staged, StageError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Into<Bytes>,
    E: std::fmt::Display,
{
    // A body may end while its first bytes are sniffed (an empty one does), and is read on
    // after that: a stream must not be polled past its end (some panic), so it is fused
    // here, for every source.
    let mut body = body.fuse();
    let spool = path.with_extension("spool");
    let result = async {
        let mut received = Received::new(limit);
        // The first bytes tell a text stream (plain or compressed), which converts as it
        // comes, from a container (zip, OLE), which can only be read whole.
        let mut first = Vec::new();
        while first.len() < CONTAINER_SNIFF {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| StageError::Body(e.to_string()))?.into();
                    first.extend_from_slice(&chunk);
                    received.count(chunk).await?;
                }
                None => break,
            }
        }
        let Some(container) = Container::sniff(&first) else {
            let file = tokio::fs::File::create(&path).await?.into_std().await;
            let behind = WriteBehind::new(&file)?;
            let mut storing = Relay::new(TextFile {
                text: TextSink::new(options.encoding, limit),
                file,
                behind,
            });
            let received_all = async {
                storing.push(first.into(), received.bytes).await?;
                loop {
                    tokio::select! {
                        // A batch that failed is answered at once, not when more comes.
                        ended = storing.batch_ended(), if storing.is_running() => ended?,
                        chunk = body.next() => {
                            let Some(chunk) = chunk else { break };
                            let chunk: Bytes =
                                chunk.map_err(|e| StageError::Body(e.to_string()))?.into();
                            let total = received.count(chunk.clone()).await?;
                            storing.push(chunk, total).await?;
                        }
                    }
                }
                Ok::<(), StageError>(())
            }
            .await;
            if let Err(e) = received_all {
                // The storing's own error, when the chunks before the failure hold one, is
                // the upload's (as when it ran in line, before the next chunk was read).
                return Err(storing.finish().await.err().unwrap_or(e));
            }
            let stored = storing.finish().await?;
            let text = tokio::task::spawn_blocking(move || stored.close())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            let bytes = received.bytes;
            let sha256 = received.sha256().await?;
            return Ok(text.staged(path.clone(), bytes, sha256));
        };
        let mut file = tokio::fs::File::create(&spool).await?;
        file.write_all(&first).await?;
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = chunk.map_err(|e| StageError::Body(e.to_string()))?.into();
            file.write_all(&chunk).await?;
            received.count(chunk).await?;
        }
        file.sync_all().await?;
        drop(file);
        let (spooled, out, options) = (spool.clone(), path.clone(), options.clone());
        let bytes = received.bytes;
        let sha256 = received.sha256().await?;
        tokio::task::spawn_blocking(move || {
            unpack(&spooled, container, &out, &options, limit, bytes, sha256)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
    }
    .await;
    let _ = tokio::fs::remove_file(&spool).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&path).await;
    }
    result
}

/// Bytes received so far: counted against the limit, and hashed while the body is stored
/// (hashing in line took half of a large upload's time).
struct Received {
    bytes: u64,
    limit: u64,
    hashing: Relay<Hashing>,
}

impl Received {
    fn new(limit: u64) -> Received {
        Received {
            bytes: 0,
            limit,
            hashing: Relay::new(Hashing(Sha256::new())),
        }
    }

    /// Counts the next chunk of the body and hands it to the hashing; returns the bytes
    /// received so far.
    async fn count(&mut self, chunk: Bytes) -> Result<u64, StageError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(StageError::TooLarge(self.limit));
        }
        self.hashing.push(chunk, self.bytes).await?;
        Ok(self.bytes)
    }

    /// The SHA-256 of the whole body, hex, once every chunk is hashed.
    async fn sha256(self) -> Result<String, StageError> {
        let Hashing(hasher) = self.hashing.finish().await?;
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// The hashing of an upload's bytes.
struct Hashing(Sha256);

impl Work for Hashing {
    type Error = StageError;

    fn take(&mut self, chunk: &[u8], _: u64) -> Result<(), StageError> {
        self.0.update(chunk);
        Ok(())
    }
}

/// The stored file of a text upload, its chunks inflated and converted on the way.
struct TextFile {
    text: TextSink,
    file: std::fs::File,
    behind: WriteBehind,
}

impl Work for TextFile {
    type Error = StageError;

    fn take(&mut self, chunk: &[u8], received: u64) -> Result<(), StageError> {
        self.file.write_all(self.text.push(chunk, received)?)?;
        self.behind.wrote(received)?;
        Ok(())
    }
}

impl TextFile {
    /// Ends the text and syncs the file. Blocking: runs off the async threads.
    fn close(mut self) -> Result<TextSink, StageError> {
        self.file.write_all(self.text.finish()?)?;
        // Synced before the import that points at it is committed.
        self.behind.finished()?;
        self.file.sync_all()?;
        Ok(self.text)
    }
}

/// Text on its way to the stored file: inflated, size- and ratio-capped, converted to UTF-8,
/// its first bytes kept for sniffing.
struct TextSink {
    inflater: Inflater,
    transcoder: Transcoder,
    limit: u64,
    plain: Vec<u8>,
    out: Vec<u8>,
    head: Vec<u8>,
    inflated: u64,
    size: u64,
    replaced: u64,
}

impl TextSink {
    fn new(encoding: Option<Encoding>, limit: u64) -> TextSink {
        TextSink {
            inflater: Inflater::default(),
            transcoder: Transcoder::new(encoding),
            limit,
            plain: Vec::with_capacity(128 * 1024),
            out: Vec::with_capacity(128 * 1024),
            head: Vec::new(),
            inflated: 0,
            size: 0,
            replaced: 0,
        }
    }

    /// Takes the next piece of the source, `received` bytes of upload having come so far;
    /// returns what to write (the piece itself when there is nothing to convert).
    fn push<'a>(&'a mut self, chunk: &'a [u8], received: u64) -> Result<&'a [u8], StageError> {
        let plain = if self.inflater.passes_through() {
            chunk
        } else {
            self.plain.clear();
            self.inflater.push(chunk, &mut self.plain)?;
            &self.plain
        };
        // The limit holds for what is stored too: an inflated upload may not pass it.
        self.inflated += plain.len() as u64;
        if self.inflated > self.limit {
            return Err(StageError::TooLarge(self.limit));
        }
        if self.inflated > RATIO_FREE_BYTES && self.inflated / received.max(1) > MAX_RATIO {
            return Err(StageError::Bomb(self.inflated));
        }
        let text = if self.transcoder.passes_through() {
            plain
        } else {
            self.out.clear();
            self.transcoder.push(plain, &mut self.out);
            &self.out
        };
        Self::emit(&mut self.head, &mut self.size, text);
        Ok(text)
    }

    /// Ends the source; returns the last bytes to write.
    fn finish(&mut self) -> Result<&[u8], StageError> {
        self.plain.clear();
        self.inflater.finish(&mut self.plain)?;
        self.out.clear();
        self.transcoder.push(&self.plain, &mut self.out);
        self.replaced = self.transcoder.finish(&mut self.out);
        Self::emit(&mut self.head, &mut self.size, &self.out);
        Ok(&self.out)
    }

    /// Counts text about to be written, keeping its first bytes for sniffing.
    fn emit(head: &mut Vec<u8>, size: &mut u64, text: &[u8]) {
        if head.len() < HEAD {
            let n = text.len().min(HEAD - head.len());
            head.extend_from_slice(&text[..n]);
        }
        *size += text.len() as u64;
    }

    fn staged(self, path: PathBuf, received: u64, sha256: String) -> Staged {
        Staged {
            path,
            received,
            size: self.size,
            sha256,
            replaced: self.replaced,
            compression: self.inflater.compression(),
            entry_name: None,
            workbook: None,
            head: self.head,
            unsupported: None,
        }
    }
}

/// Reads a spooled container into `out`: a workbook's sheet as NDJSON, or the one file a
/// zip holds as text; a container holding nothing readable is staged as unsupported.
/// Blocking: runs off the async threads.
fn unpack(
    spooled: &Path,
    container: Container,
    out: &Path,
    options: &StageOptions,
    limit: u64,
    received: u64,
    sha256: String,
) -> Result<Staged, StageError> {
    let why = match read_container(spooled, container, out, options, limit, received, &sha256) {
        Err(StageError::Archive(ArchiveError::Damaged(e))) => format!(
            "the file looks like a zip archive (as xlsx and ods workbooks are), but it cannot \
             be read: {e}"
        ),
        Err(StageError::Archive(ArchiveError::Unsupported(why))) => why,
        Err(StageError::Workbook(e @ WorkbookError::Damaged { .. })) => e.to_string(),
        other => return other,
    };
    Ok(Staged {
        path: out.to_owned(),
        received,
        // Not empty: the upload had bytes, none of them readable.
        size: received,
        sha256,
        replaced: 0,
        compression: None,
        entry_name: None,
        workbook: None,
        head: Vec::new(),
        unsupported: Some(why),
    })
}

fn read_container(
    spooled: &Path,
    container: Container,
    out: &Path,
    options: &StageOptions,
    limit: u64,
    received: u64,
    sha256: &str,
) -> Result<Staged, StageError> {
    let sha256 = sha256.to_owned();
    match archive::inspect(spooled, container)? {
        Contents::Workbook(kind) => {
            let converted = workbook::convert(spooled, kind, options.sheet.as_deref(), out, HEAD)?;
            Ok(Staged {
                path: out.to_owned(),
                received,
                size: converted.size,
                sha256,
                replaced: 0,
                compression: None,
                entry_name: None,
                workbook: Some(converted.source),
                head: converted.head,
                unsupported: None,
            })
        }
        Contents::DataFile { index, name } => {
            let mut archive = archive::open(spooled)?;
            let mut entry = archive
                .by_index(index)
                .map_err(|e| ArchiveError::Damaged(e.to_string()))?;
            let mut text = TextSink::new(options.encoding, limit);
            let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = match entry.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ArchiveError::Damaged(e.to_string()).into()),
                };
                file.write_all(text.push(&buffer[..n], received)?)?;
            }
            file.write_all(text.finish()?)?;
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            let mut staged = text.staged(out.to_owned(), received, sha256);
            staged.compression = Some("zip");
            staged.entry_name = Some(name);
            Ok(staged)
        }
    }
}

/// Decides the format of a staged upload.
pub fn detect(
    staged: &Staged,
    declared: Option<Format>,
    delimiter: Option<u8>,
    file_name: Option<&str>,
) -> Result<Sniffed, String> {
    if let Some(why) = &staged.unsupported {
        return Err(why.clone());
    }
    // A sheet was converted to NDJSON, whatever was declared.
    if staged.workbook.is_some() {
        return Ok(Sniffed {
            format: Format::Ndjson,
            delimiter: b',',
        });
    }
    // A zipped file is read as its own name says, the archive's name saying nothing of it.
    let name = staged.entry_name.as_deref().or(file_name);
    sniff(&staged.head, declared, delimiter, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_that_ends_at_once_is_never_polled_past_its_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        // `unfold` panics when polled again after it ended; an empty body ends while its
        // first bytes are sniffed.
        let body = futures_util::stream::unfold((), |()| async {
            None::<(Result<Vec<u8>, std::io::Error>, ())>
        });
        let staged = stage(dir.path().join("empty"), Box::pin(body), None, 1 << 20)
            .await
            .expect("staged");
        assert_eq!(staged.size, 0);
    }

    #[tokio::test]
    async fn a_body_synced_while_it_arrives_is_stored_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        // 40 MiB in 1 MiB chunks: background syncs start while the body still arrives.
        let chunks: Vec<Vec<u8>> = (0..40u8)
            .map(|i| {
                let line = format!("{i},row {i}\n");
                line.repeat((1 << 20) / line.len()).into_bytes()
            })
            .collect();
        let whole: Vec<u8> = chunks.concat();
        let body = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let path = dir.path().join("big");
        let staged = stage(path.clone(), body, None, 1 << 30)
            .await
            .expect("staged");
        assert_eq!(staged.received, whole.len() as u64);
        assert_eq!(staged.size, whole.len() as u64);
        assert!(std::fs::read(&path).expect("read") == whole);
        let digest: String = Sha256::digest(&whole)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(staged.sha256, digest);
    }

    /// Stages chunks that end in a failure: the error answered, once the partial file is
    /// checked to be gone.
    async fn stage_failing(chunks: Vec<Result<Vec<u8>, std::io::Error>>) -> StageError {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("failing");
        let err = stage(
            path.clone(),
            futures_util::stream::iter(chunks),
            None,
            1 << 30,
        )
        .await
        .expect_err("a failed upload");
        assert!(!path.exists(), "the partial file is removed");
        err
    }

    /// A gzip header, then a deflate block of the reserved type: damaged at once.
    fn damaged_gzip() -> Vec<u8> {
        let mut damaged = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        damaged.extend([0xff; 64]);
        damaged
    }

    fn reset() -> std::io::Error {
        std::io::Error::other("connection reset")
    }

    #[tokio::test]
    async fn a_body_that_fails_midway_leaves_no_file_and_says_why() {
        let err = stage_failing(vec![
            Ok(b"id,name\n".repeat(1 << 16)),
            Ok(b"1,Ann\n".repeat(1 << 16)),
            Err(reset()),
        ])
        .await;
        assert!(
            matches!(&err, StageError::Body(m) if m.contains("connection reset")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_damaged_gzip_is_the_error_even_when_the_body_then_fails() {
        let err = stage_failing(vec![Ok(damaged_gzip()), Err(reset())]).await;
        assert!(matches!(err, StageError::Damaged(_)), "{err}");
    }

    #[tokio::test]
    async fn damage_in_a_chunk_waiting_to_be_stored_is_the_error_of_a_body_that_then_fails() {
        use flate2::{Compression, write::GzEncoder};
        // A large whole member (its batch may still run), then a damaged one, then a failed
        // body: the damage is answered, whatever the timing.
        let mut member = GzEncoder::new(Vec::new(), Compression::fast());
        for i in 0..200_000 {
            member
                .write_all(format!("{i},row {i}\n").as_bytes())
                .expect("written");
        }
        let member = member.finish().expect("compressed");
        let err = stage_failing(vec![Ok(member), Ok(damaged_gzip()), Err(reset())]).await;
        assert!(matches!(err, StageError::Damaged(_)), "{err}");
    }
}
