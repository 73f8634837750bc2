//! Staging an upload: the body is streamed to a temporary file (never held whole in memory),
//! inflated when it is gzip or zstd compressed, converted to UTF-8 on the way, hashed, and
//! size-limited, then sniffed. The request's task only receives: storing and hashing each
//! run on a thread of their own, so the three overlap. Containers (a zip holding one file, a workbook) are spooled
//! whole first, since their directory is at their end, then read from the spool.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::background::{self, Share};

use super::archive::{self, ArchiveError, CONTAINER_SNIFF, Container, Contents};
use super::inflate::{Damaged, Inflater};
use super::reader::Format;
use super::reader::encoding::{Encoding, Transcoder};
use super::reader::sniff::{Sniffed, sniff};
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
        let mut received = Received::new(limit)?;
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
            let storing = Storing::start(path.clone(), options.encoding, limit)?;
            // Whether the body was received whole, or the storing stopped first (on an
            // error of its own, which it answers).
            let received_all = async {
                if !storing.send(first.into(), received.bytes).await {
                    return Ok(false);
                }
                while let Some(chunk) = body.next().await {
                    let chunk: Bytes = chunk.map_err(|e| StageError::Body(e.to_string()))?.into();
                    let total = received.count(chunk.clone()).await?;
                    if !storing.send(chunk, total).await {
                        return Ok(false);
                    }
                }
                Ok::<bool, StageError>(true)
            }
            .await;
            // Stopped (and its file closed) before a failed upload's file is removed.
            let text = storing.finish(matches!(received_all, Ok(true))).await;
            received_all?;
            let text = text?;
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

/// Bytes received so far: counted against the limit, and hashed on a thread of its own
/// while the body is stored (hashing, done in line, took half of a large upload's time).
/// The threads of an upload are its own, not the runtime's blocking pool: they wait as long
/// as a slow client takes, and the pool's threads are the store's.
struct Received {
    bytes: u64,
    limit: u64,
    chunks: mpsc::Sender<Bytes>,
    hashing: Pending<String>,
}

/// What a thread of an upload answers once it ends.
type Pending<T> = Pin<Box<dyn Future<Output = std::io::Result<T>> + Send + Sync>>;

/// Chunks that may wait for each of the hashing and storing threads: enough to keep both
/// busy, few enough that an upload holds about 3 MiB at most (a chunk of a request's body is
/// 400 KiB at most). Sixteen made the upload 0.01 s faster and the server's peak 10 MiB
/// larger.
const CHUNKS_AHEAD: usize = 4;

impl Received {
    fn new(limit: u64) -> Result<Received, StageError> {
        let (chunks, mut rx) = mpsc::channel::<Bytes>(CHUNKS_AHEAD);
        let hashing = background::spawn("intake-hash", Share::Equal, move || {
            let mut hasher = Sha256::new();
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })?;
        Ok(Received {
            bytes: 0,
            limit,
            chunks,
            hashing: Box::pin(hashing),
        })
    }

    /// Counts the next chunk of the body and hands it to the hashing; returns the bytes
    /// received so far.
    async fn count(&mut self, chunk: Bytes) -> Result<u64, StageError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(StageError::TooLarge(self.limit));
        }
        self.chunks
            .send(chunk)
            .await
            .map_err(|_| StageError::Io(std::io::Error::other("the upload's hashing stopped")))?;
        Ok(self.bytes)
    }

    /// The SHA-256 of the whole body, hex, once every chunk is hashed.
    async fn sha256(self) -> Result<String, StageError> {
        // The channel closed, the hashing ends with the last chunk.
        drop(self.chunks);
        Ok(self.hashing.await?)
    }
}

/// The storing of a text upload: its chunks inflated, converted and written on a thread of
/// its own, while the request's task receives the next ones and another thread hashes them.
struct Storing {
    pieces: mpsc::Sender<Piece>,
    task: Pending<Result<TextSink, StageError>>,
}

/// What the storing thread is sent.
enum Piece {
    /// The next chunk, and the bytes received with it.
    Chunk(Bytes, u64),
    /// The body ended whole.
    End,
}

impl Storing {
    fn start(path: PathBuf, encoding: Option<Encoding>, limit: u64) -> Result<Storing, StageError> {
        let (pieces, rx) = mpsc::channel::<Piece>(CHUNKS_AHEAD);
        let task = background::spawn("intake-store", Share::Equal, move || {
            store_text(&path, encoding, limit, rx)
        })?;
        Ok(Storing {
            pieces,
            task: Box::pin(task),
        })
    }

    /// Hands over the next chunk; false when the storing stopped (`finish` tells why).
    async fn send(&self, chunk: Bytes, received: u64) -> bool {
        self.pieces
            .send(Piece::Chunk(chunk, received))
            .await
            .is_ok()
    }

    /// Waits for the storing to end: the text stored and synced when the body came `whole`.
    async fn finish(self, whole: bool) -> Result<TextSink, StageError> {
        if whole {
            let _ = self.pieces.send(Piece::End).await;
        }
        drop(self.pieces);
        self.task.await?
    }
}

/// Writes the pieces received to `path` as UTF-8 text, synced once the body ended whole.
/// Blocking: runs off the async threads.
fn store_text(
    path: &Path,
    encoding: Option<Encoding>,
    limit: u64,
    mut pieces: mpsc::Receiver<Piece>,
) -> Result<TextSink, StageError> {
    let mut text = TextSink::new(encoding, limit);
    let mut file = std::fs::File::create(path)?;
    let mut behind = WriteBehind::new(&file)?;
    loop {
        match pieces.blocking_recv() {
            Some(Piece::Chunk(chunk, received)) => {
                file.write_all(text.push(&chunk, received)?)?;
                behind.wrote(received)?;
            }
            Some(Piece::End) => break,
            // The upload failed: the caller says why and removes the file.
            None => return Err(StageError::Body("the upload ended early".into())),
        }
    }
    file.write_all(text.finish()?)?;
    // Synced before the import that points at it is committed.
    behind.finished()?;
    file.sync_all()?;
    Ok(text)
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

    #[tokio::test]
    async fn a_body_that_fails_midway_leaves_no_file_and_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
            Ok(b"id,name\n".repeat(1 << 16)),
            Ok(b"1,Ann\n".repeat(1 << 16)),
            Err(std::io::Error::other("connection reset")),
        ];
        let path = dir.path().join("cut");
        let err = stage(
            path.clone(),
            futures_util::stream::iter(chunks),
            None,
            1 << 30,
        )
        .await
        .expect_err("a failed body");
        assert!(
            matches!(&err, StageError::Body(m) if m.contains("connection reset")),
            "{err}"
        );
        assert!(!path.exists(), "the partial file is removed");
    }
}
