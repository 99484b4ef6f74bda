//! The bundler thread: writes full bundles and tiles beside the writer thread, so that group
//! commits of the write-ahead file do not wait behind them.
//!
//! Each bundle and tile is a new file written atomically (a temporary file, a sync, a
//! rename, a sync of the directory): on the proxy's disk that costs milliseconds, paid every
//! 256 entries; done by the writer it held every append queued meanwhile. The entries are
//! durable in the write-ahead file before they are handed over, and the writer trims that
//! file only up to bundles this thread has made durable, so nothing depends on a bundle
//! until it is on disk. Before a checkpoint is signed the writer waits for this thread to be
//! idle ([`Bundler::drain`]), so every tile a checkpoint's proofs read is there.
//!
//! A failed write is kept, with the tiles of that job and of every later one, for the writer
//! to take back at its next look: it fails the log (as a failed bundle write always did) and
//! writes what is owed again when it recovers.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::super::storage::{self, Disk};
use super::super::tree::FullTile;
use super::LogFault;

/// Full bundles (index, encoded) and full tiles to write.
#[derive(Debug, Default)]
pub(super) struct Job {
    pub bundles: Vec<(u64, Vec<u8>)>,
    pub tiles: Vec<FullTile>,
}

#[derive(Debug, Default)]
struct Progress {
    /// Jobs handed over, and jobs finished (written or given up).
    queued: u64,
    done: u64,
    /// Bundles durable on disk: 0..durable.
    durable: u64,
    /// The first failure, and the tiles not written since (the bundles not written are
    /// those from `durable` on: the writer still holds their entries).
    failed: Option<LogFault>,
    unwritten_tiles: Vec<FullTile>,
}

#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the writer learns when it looks.
#[derive(Debug)]
pub(super) struct Report {
    /// Bundles durable on disk (contiguous from the first).
    pub durable: u64,
    /// The failure, if a write failed (it stays until [`Bundler::take_back`]).
    pub failed: Option<LogFault>,
}

/// What the writer takes back.
#[derive(Debug)]
pub(super) struct Back {
    /// Bundles durable on disk: the rest are the writer's to write.
    pub durable: u64,
    /// Tiles not written.
    pub tiles: Vec<FullTile>,
}

/// The handle the writer keeps.
#[derive(Debug)]
pub(super) struct Bundler {
    tx: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Bundler {
    /// Starts the thread for the log in `dir`, whose first `durable` bundles are on disk.
    pub(super) fn start(dir: PathBuf, disk: Disk, durable: u64) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        shared.lock().durable = durable;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("bglass-audit-bundler".to_owned())
            .spawn(move || run(&dir, &disk, &thread_shared, &rx))?;
        Ok(Self {
            tx: Some(tx),
            shared,
            handle: Some(handle),
        })
    }

    /// Hands a job over (nothing to do for an empty one).
    pub(super) fn send(&self, job: Job) {
        if job.bundles.is_empty() && job.tiles.is_empty() {
            return;
        }
        let Some(tx) = &self.tx else {
            return;
        };
        self.shared.lock().queued += 1;
        if let Err(mpsc::SendError(job)) = tx.send(job) {
            // The thread is gone: its work comes back as unwritten.
            let mut p = self.shared.lock();
            p.done += 1;
            p.failed.get_or_insert(LogFault::BundlerStopped);
            p.unwritten_tiles.extend(job.tiles);
            self.shared.idle.notify_all();
        }
    }

    /// Where the thread is now, without waiting.
    pub(super) fn look(&self) -> Report {
        report(&self.shared.lock())
    }

    /// Waits until every job handed over is finished, then reports.
    pub(super) fn drain(&self) -> Report {
        report(&self.idle())
    }

    /// Waits until every job handed over is finished, then takes back what was not
    /// written and clears the failure: the writer writes that itself.
    pub(super) fn take_back(&self) -> Back {
        let mut p = self.idle();
        p.failed = None;
        Back {
            durable: p.durable,
            tiles: std::mem::take(&mut p.unwritten_tiles),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Progress> {
        let mut p = self.shared.lock();
        while p.done < p.queued {
            p = self
                .shared
                .idle
                .wait(p)
                .unwrap_or_else(PoisonError::into_inner);
        }
        p
    }
}

fn report(p: &Progress) -> Report {
    Report {
        durable: p.durable,
        failed: p.failed.clone(),
    }
}

impl Drop for Bundler {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn run(dir: &std::path::Path, disk: &Disk, shared: &Shared, rx: &mpsc::Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        let failed = shared.lock().failed.is_some();
        let outcome = if failed {
            Err((None, job.tiles))
        } else {
            write(dir, disk, shared, job)
        };
        let mut p = shared.lock();
        if let Err((fault, tiles)) = outcome {
            if let Some(fault) = fault {
                p.failed.get_or_insert(fault);
            }
            p.unwritten_tiles.extend(tiles);
        }
        p.done += 1;
        drop(p);
        shared.idle.notify_all();
    }
}

type Unwritten = (Option<LogFault>, Vec<FullTile>);

/// Writes a job's bundles (in order, each made durable before the next) and tiles.
fn write(dir: &std::path::Path, disk: &Disk, shared: &Shared, job: Job) -> Result<(), Unwritten> {
    for (index, bytes) in job.bundles {
        if let Err(e) = disk.write_atomic(dir, &storage::bundle_rel(index), &bytes) {
            return Err((Some(e.into()), job.tiles));
        }
        let mut p = shared.lock();
        if p.durable == index {
            p.durable = index + 1;
        }
    }
    let mut tiles = job.tiles.into_iter();
    while let Some(tile) = tiles.next() {
        let rel = storage::tile_rel(tile.level, tile.index);
        // A tile from before a failure may already be there (written, then the failure).
        let same = std::fs::read(dir.join(&rel)).is_ok_and(|d| d == tile.data);
        if !same && let Err(e) = disk.write_atomic(dir, &rel, &tile.data) {
            let mut left = vec![tile];
            left.extend(tiles);
            return Err((Some(e.into()), left));
        }
    }
    Ok(())
}
