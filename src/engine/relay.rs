//! Work on an upload's bytes (hashing them, storing them) done on the runtime's blocking pool
//! one batch of chunks at a time, while the request's task receives the next ones: the chunks
//! that come while a batch is worked on make the next batch. No thread waits for a slow
//! client (a thread per upload waiting for its bytes would let a few hundred slow clients
//! hold every thread the store's calls need), and a failed batch is seen as soon as it ends.

use bytes::Bytes;
use tokio::task::JoinHandle;

/// Bytes of chunks that may wait while a batch runs; past it, the request's task waits for
/// the batch. An upload then holds about two chunks per stage, waiting and at work (a chunk
/// of a request's body is 400 KiB at most).
const WAITING_BYTES: usize = 256 << 10;

/// What is done with each chunk of an upload, in order.
pub trait Work: Send + 'static {
    /// Why a chunk could not be taken.
    type Error: From<std::io::Error> + Send + 'static;

    /// Takes the next chunk, `received` bytes of the upload having come with it.
    fn take(&mut self, chunk: &[u8], received: u64) -> Result<(), Self::Error>;
}

/// A batch at work: the work, handed back with how the batch went.
type Running<W> = JoinHandle<(W, Result<(), <W as Work>::Error>)>;

/// Chunks handed over, worked on in batches, in order.
pub struct Relay<W: Work> {
    /// The work, while no batch runs.
    idle: Option<W>,
    running: Option<Running<W>>,
    waiting: Vec<(Bytes, u64)>,
    waiting_bytes: usize,
}

impl<W: Work> Relay<W> {
    /// A relay of chunks to `work`.
    pub fn new(work: W) -> Relay<W> {
        Relay {
            idle: Some(work),
            running: None,
            waiting: Vec::new(),
            waiting_bytes: 0,
        }
    }

    /// Whether a batch is at work.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Hands over the next chunk: a batch starts with it when none runs; otherwise it waits
    /// for the next batch (and the caller for the running one, once too much waits).
    pub async fn push(&mut self, chunk: Bytes, received: u64) -> Result<(), W::Error> {
        self.waiting_bytes += chunk.len();
        self.waiting.push((chunk, received));
        let busy = self.running.as_ref().is_some_and(|r| !r.is_finished());
        if busy && self.waiting_bytes < WAITING_BYTES {
            return Ok(());
        }
        self.settle().await?;
        self.start();
        Ok(())
    }

    /// Waits for the running batch to end, then starts the chunks that came meanwhile; the
    /// batch's error, when it failed. Dropped while it waits, the batch keeps running.
    pub async fn batch_ended(&mut self) -> Result<(), W::Error> {
        self.settle().await?;
        self.start();
        Ok(())
    }

    /// Waits for the running batch, if any: its error, when it failed (chunks still waiting
    /// are not started).
    pub async fn settle(&mut self) -> Result<(), W::Error> {
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        let joined = running.await;
        self.running = None;
        let (work, result) = joined.map_err(|e| {
            std::io::Error::other(format!("the upload's work on its bytes failed: {e}"))
        })?;
        self.idle = Some(work);
        result
    }

    /// Every chunk handed over worked on: the work.
    pub async fn finish(mut self) -> Result<W, W::Error> {
        self.settle().await?;
        self.start();
        self.settle().await?;
        self.idle
            .ok_or_else(|| std::io::Error::other("the upload's work on its bytes was lost").into())
    }

    /// Starts a batch of the waiting chunks, when no batch runs.
    fn start(&mut self) {
        if self.waiting.is_empty() || self.running.is_some() {
            return;
        }
        let Some(mut work) = self.idle.take() else {
            return;
        };
        let batch = std::mem::take(&mut self.waiting);
        self.waiting_bytes = 0;
        self.running = Some(tokio::task::spawn_blocking(move || {
            let result = batch
                .iter()
                .try_for_each(|(chunk, received)| work.take(chunk, *received));
            (work, result)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps what it is given; refuses a chunk that says "bad".
    struct Collect(Vec<u8>, Vec<u64>);

    impl Work for Collect {
        type Error = std::io::Error;

        fn take(&mut self, chunk: &[u8], received: u64) -> Result<(), std::io::Error> {
            if chunk == b"bad" {
                return Err(std::io::Error::other("refused"));
            }
            self.0.extend_from_slice(chunk);
            self.1.push(received);
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_chunk_is_worked_on_once_and_in_order() {
        let mut relay = Relay::new(Collect(Vec::new(), Vec::new()));
        let mut whole = Vec::new();
        for i in 0..2000u64 {
            let chunk = format!("{i},");
            whole.extend_from_slice(chunk.as_bytes());
            relay
                .push(Bytes::from(chunk), whole.len() as u64)
                .await
                .expect("taken");
        }
        let work = relay.finish().await.expect("finished");
        assert_eq!(work.0, whole);
        assert_eq!(work.1.len(), 2000);
        assert!(work.1.windows(2).all(|w| w[0] < w[1]));
    }

    #[tokio::test]
    async fn a_failed_batch_is_seen_by_the_next_wait() {
        let mut relay = Relay::new(Collect(Vec::new(), Vec::new()));
        relay
            .push(Bytes::from_static(b"ok"), 2)
            .await
            .expect("taken");
        relay.push(Bytes::from_static(b"bad"), 5).await.ok();
        let err = match relay.settle().await {
            Ok(()) => relay.finish().await.map(|_| ()),
            Err(e) => Err(e),
        }
        .expect_err("the refused chunk fails the relay");
        assert_eq!(err.to_string(), "refused");
    }
}
