//! The writer of one recorded session: frames in, chunks on disk, their digests in the log.
//!
//! Frames reach the writer through a bounded queue (a slow disk slows the session through
//! SSH flow control; nothing is dropped). They are appended to a chunk in memory; a chunk is
//! sealed — written to `recordings/<session>.rec` under the log directory and hashed — when
//! it reaches [`CHUNK_BYTES`], or at the next [`FLUSH_EVERY`] tick when it holds anything.
//! Sealed chunks are committed in batches: the file is synced, then one `recording_chunks`
//! entry lists them, and the writer waits until that entry is durable. So the log never names
//! a chunk the disk may not hold, and at most one tick's or [`BATCH_CHUNKS`] chunks' worth of
//! a session can be lost if the proxy dies: that recording then has no `recording_end` and
//! is reported truncated, never complete.
//!
//! Any failure (disk full, the file unwritable, the log refusing the entry) is final: the
//! writer reports it on [`Recorder::failed`], and the session, a recorded service's, is
//! ended at once with a message (fail closed, as the failure policy says).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bglass_core::audit::event::EventKind;
use bglass_core::audit::recording::{self, ChunkDigest, FrameKind, Header};
use bglass_core::id::ResponderId;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use super::Proxy;

/// A chunk is sealed at this size.
pub const CHUNK_BYTES: usize = 128 * 1024;
/// Sealed chunks are committed to the log at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// …or as soon as this many are waiting.
pub const BATCH_CHUNKS: usize = 16;
/// Frames waiting for the writer before the session waits for it.
const QUEUE: usize = 64;

/// One frame on its way to the writer.
#[derive(Debug)]
struct Queued {
    kind: FrameKind,
    channel: u32,
    micros: u64,
    data: Bytes,
}

/// The session's side of the writer: cheap to clone, one per channel.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Queued>,
    start: Instant,
    failed: watch::Receiver<Option<String>>,
}

/// What the writer did, once the session is over.
#[derive(Debug)]
pub struct Finished {
    /// Chunks written and listed in the log.
    pub chunks: u64,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the whole file.
    pub sha256: String,
    /// Why recording stopped early, if it did.
    pub failure: Option<String>,
}

impl Recorder {
    /// Queues a frame (waits while the writer is behind). Returns the failure when the
    /// recording can no longer be written: the caller ends the session.
    pub async fn frame(&self, kind: FrameKind, channel: u32, data: &[u8]) -> Result<(), String> {
        if let Some(why) = self.failure() {
            return Err(why);
        }
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let queued = Queued {
            kind,
            channel,
            micros,
            data: Bytes::copy_from_slice(data),
        };
        if self.tx.send(queued).await.is_err() {
            return Err(self
                .failure()
                .unwrap_or_else(|| "the recording stopped".to_owned()));
        }
        Ok(())
    }

    /// Why the recording failed, if it has.
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Resolves when the recording fails (never, while it works).
    pub async fn failed(&self) -> String {
        let mut failed = self.failed.clone();
        loop {
            if let Some(why) = failed.borrow_and_update().clone() {
                return why;
            }
            if failed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Starts the writer of recording `header.session` for `actor`: creates its file (refusing
/// to reuse one) and writes the header frame. The returned handle ends when every
/// [`Recorder`] is dropped.
pub async fn start(
    proxy: &Arc<Proxy>,
    actor: ResponderId,
    header: &Header,
) -> Result<(Recorder, tokio::task::JoinHandle<Finished>), String> {
    let dir = proxy
        .config
        .data_dir
        .join("log")
        .join(recording::RECORDINGS_DIR);
    let path = recording::file_path(&proxy.config.data_dir.join("log"), &header.session)
        .ok_or_else(|| format!("{:?} is not a valid recording id", header.session))?;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    let header_json =
        serde_json::to_vec(header).map_err(|e| format!("encoding the header: {e}"))?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (failed_tx, failed) = watch::channel(None);
    let recorder = Recorder {
        tx,
        start: Instant::now(),
        failed,
    };
    let mut writer = Writer {
        proxy: Arc::clone(proxy),
        actor,
        session: header.session.clone(),
        path: path.display().to_string(),
        file,
        chunk: Vec::with_capacity(CHUNK_BYTES + recording::FRAME_HEAD),
        sealed: Vec::new(),
        listed: 0,
        bytes: 0,
        whole: ring::digest::Context::new(&ring::digest::SHA256),
        committed: ring::digest::Context::new(&ring::digest::SHA256),
    };
    recording::encode(&mut writer.chunk, FrameKind::Header, 0, 0, &header_json);
    let task = tokio::spawn(async move {
        let failure = writer.run(rx).await.err();
        if let Some(why) = &failure {
            let _ = failed_tx.send(Some(why.clone()));
        }
        Finished {
            chunks: writer.listed,
            bytes: writer.bytes,
            sha256: hex(writer.committed.clone().finish().as_ref()),
            failure,
        }
    });
    Ok((recorder, task))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Writer {
    proxy: Arc<Proxy>,
    actor: ResponderId,
    session: String,
    path: String,
    file: tokio::fs::File,
    /// The chunk being filled.
    chunk: Vec<u8>,
    /// Chunks written, not yet listed in the log.
    sealed: Vec<ChunkDigest>,
    /// Chunks listed in the log.
    listed: u64,
    /// Bytes listed in the log.
    bytes: u64,
    /// The digest of every byte written, in order.
    whole: ring::digest::Context,
    /// …as it stood when the log last listed every byte written.
    committed: ring::digest::Context,
}

impl Writer {
    async fn run(&mut self, mut rx: mpsc::Receiver<Queued>) -> Result<(), String> {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                queued = rx.recv() => match queued {
                    Some(q) => {
                        recording::encode(&mut self.chunk, q.kind, q.channel, q.micros, &q.data);
                        if self.chunk.len() >= CHUNK_BYTES {
                            self.seal().await?;
                            if self.sealed.len() >= BATCH_CHUNKS {
                                self.commit().await?;
                            }
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    self.seal().await?;
                    self.commit().await?;
                }
            }
        }
        self.seal().await?;
        self.commit().await
    }

    /// Writes the chunk being filled, if it holds anything.
    async fn seal(&mut self) -> Result<(), String> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.chunk)
            .await
            .map_err(|e| format!("writing {}: {e}", self.path))?;
        self.sealed.push(ChunkDigest::of(&self.chunk));
        self.whole.update(&self.chunk);
        self.chunk.clear();
        Ok(())
    }

    /// Makes the sealed chunks durable and lists them in the log.
    async fn commit(&mut self) -> Result<(), String> {
        if self.sealed.is_empty() {
            return Ok(());
        }
        self.file
            .flush()
            .await
            .and(self.file.sync_data().await)
            .map_err(|e| format!("syncing {}: {e}", self.path))?;
        let chunks = std::mem::take(&mut self.sealed);
        let (count, bytes) = (
            chunks.len() as u64,
            chunks.iter().map(|c| c.bytes).sum::<u64>(),
        );
        let entry = EventKind::RecordingChunks {
            session: self.session.clone(),
            first: self.listed,
            chunks,
        };
        self.proxy
            .record(Some(self.actor.clone()), entry)
            .await
            .map_err(|r| {
                format!(
                    "the audit log refused the recording's chunks: {}",
                    r.message
                )
            })?;
        self.listed += count;
        self.bytes += bytes;
        self.committed = self.whole.clone();
        Ok(())
    }
}
