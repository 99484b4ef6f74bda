//! The writer thread: it owns the log's files. Appends are written in one batch and one
//! sync (group commit) and answered once durable; full bundles, tiles and checkpoints follow.
//!
//! When a write or a sync fails (a full disk, an I/O error, a read-only file system, the
//! directory gone), the log fails closed: every append is refused from then on. If the
//! error is a full disk, the writer frees its reserve file and uses that space to record the
//! failure (`log_failed`) and sign a checkpoint. Then it retries with backoff. A retry never
//! trusts the file it failed on (after a failed fsync the kernel may have dropped the dirty
//! pages): it rewrites the write-ahead file whole, from memory, through a new file, checks
//! that the files it wrote before are still there, writes what it owed (bundles, tiles, the
//! history cut back to its last good length), and remakes the reserve. Once all of that is
//! written and synced, it records `log_recovered` and accepts appends again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::checkpoint::{self, VerifiedCheckpoint};
use super::super::event::{EVENT_VERSION, Event, EventKind};
use super::super::storage::{self, Disk, Entry, FileOp, StorageError, WAL_FILE};
use super::super::tree::{FullTile, TILE_WIDTH, TreeEdge, leaf_hash};
use super::bundler::{Bundler, Job};
use super::recover::recompute_tile;
use super::{
    Appended, AuditAppendError, AuditOpenError, Command, LogFault, LogRecovery, OwnEntry, State,
    lock_state,
};
use crate::id::ProxyId;
use crate::keys::SigningKey;

/// Most entries written in one group commit.
const MAX_BATCH: usize = 8192;
/// How many full bundles the write-ahead file may hold beyond the last one before it is
/// trimmed (each holds 256 entries, about 64 KiB of `use` events).
const WAL_TRIM_BUNDLES: u64 = 16;
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The reserve file, in the log directory.
pub(super) const RESERVE_FILE: &str = "reserve";

use super::reply::{self, Reply};

/// The `errno` of a full disk.
const ENOSPC: i32 = 28;
/// The largest reserve file (a larger `reserve_bytes` keeps this much): it is written from
/// memory in one piece.
const MAX_RESERVE_BYTES: usize = 64 << 20;

/// A failure the writer is in.
struct Failure {
    since_ms: u64,
    error: LogFault,
    /// Whether `log_failed` is in the log.
    recorded: bool,
    next_try: Instant,
    backoff: Duration,
}

pub(super) struct Writer {
    pub dir: PathBuf,
    pub origin: String,
    pub proxy: ProxyId,
    pub key: Arc<SigningKey>,
    /// Co-signs each checkpoint (a rotation in progress).
    pub successor: Option<Arc<SigningKey>>,
    pub interval: Duration,
    /// Where the newest signed checkpoint is also kept, outside the log directory.
    pub published: Option<PathBuf>,
    pub disk: Disk,
    pub state: Arc<Mutex<State>>,
    /// The write-ahead file, open for appending (`None` after a failure, until rewritten).
    pub wal: Option<File>,
    /// What the write-ahead file holds, acknowledged: entries from index `wal_base`.
    pub wal_entries: Vec<Entry>,
    pub wal_base: u64,
    /// Full bundles written to disk.
    pub bundles: u64,
    /// Full bundles handed to the bundler thread (written or not yet).
    bundles_queued: u64,
    /// Writes bundles and tiles beside this thread (started by [`Writer::run`]; without
    /// it, as at open, they are written here).
    bundler: Option<Bundler>,
    /// Full tiles completed but not yet written.
    pub tiles_owed: Vec<FullTile>,
    /// The checkpoint history's length: everything before it is whole.
    pub history_len: u64,
    /// Bytes of the reserve file (0: none is kept).
    pub reserve_bytes: u64,
    /// First wait before retrying after a failure; it doubles up to [`MAX_BACKOFF`].
    pub first_backoff: Duration,
    /// Whether the reserve file is in place.
    pub reserve_held: bool,
    /// When the oldest entry not covered by a checkpoint was written.
    pub unsigned_since: Option<Instant>,
    failure: Option<Failure>,
    pub _lock: File,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        dir: PathBuf,
        origin: String,
        proxy: ProxyId,
        key: Arc<SigningKey>,
        interval: Duration,
        published: Option<PathBuf>,
        disk: Disk,
        state: Arc<Mutex<State>>,
        lock: File,
    ) -> Self {
        Self {
            dir,
            origin,
            proxy,
            key,
            successor: None,
            interval,
            published,
            disk,
            state,
            wal: None,
            wal_entries: Vec::new(),
            wal_base: 0,
            bundles: 0,
            bundles_queued: 0,
            bundler: None,
            tiles_owed: Vec::new(),
            history_len: 0,
            reserve_bytes: 0,
            first_backoff: Duration::from_millis(100),
            reserve_held: false,
            unsigned_since: None,
            failure: None,
            _lock: lock,
        }
    }

    pub(super) fn run(mut self, rx: &mpsc::Receiver<Command>) {
        self.bundles_queued = self.bundles;
        // Without the thread, bundles and tiles are written here, as before it.
        self.bundler = Bundler::start(self.dir.clone(), self.disk.clone(), self.bundles).ok();
        loop {
            let mut timeout = match self.unsigned_since {
                Some(since) => self.interval.saturating_sub(since.elapsed()),
                None => Duration::from_secs(3600),
            };
            if let Some(f) = &self.failure {
                timeout = timeout.min(f.next_try.saturating_duration_since(Instant::now()));
            }
            let first = match rx.recv_timeout(timeout) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut appends = Vec::new();
            let mut checkpoints = Vec::new();
            let mut next = first;
            while let Some(command) = next {
                match command {
                    Command::Append(entry, reply) => appends.push((entry, reply)),
                    Command::Checkpoint(reply) => checkpoints.push(reply),
                }
                next = if appends.len() < MAX_BATCH {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if self
                .failure
                .as_ref()
                .is_some_and(|f| Instant::now() >= f.next_try)
            {
                self.retry();
            }
            if !appends.is_empty() {
                self.commit(appends);
            }
            let due = self
                .unsigned_since
                .is_some_and(|s| s.elapsed() >= self.interval);
            if (due || !checkpoints.is_empty()) && self.failure.is_none() {
                let result = self.sign_if_needed();
                for reply in checkpoints {
                    let _ = reply.send(result.clone());
                }
            } else if let Some(f) = &self.failure {
                for reply in checkpoints {
                    let _ = reply.send(Err(AuditAppendError::Failed(f.error.clone())));
                }
            }
        }
        // Closing: cover every entry with a checkpoint.
        if self.failure.is_none() {
            let _ = self.sign_if_needed();
        }
    }

    /// Enters the failed state (or stays in it): appends are refused from now on. On a full
    /// disk, the reserve is freed and the failure recorded in the space it leaves.
    fn fail(&mut self, why: LogFault) -> AuditAppendError {
        // Never append to a file whose last write or sync failed.
        self.wal = None;
        if self.failure.is_none() {
            let since_ms = crate::timestamp::now_ms();
            {
                let mut state = lock_state(&self.state);
                state.failed = Some(why.clone());
                state.failed_since_ms = Some(since_ms);
                state.failures += 1;
            }
            self.failure = Some(Failure {
                since_ms,
                error: why.clone(),
                recorded: false,
                next_try: Instant::now() + self.first_backoff,
                backoff: self.first_backoff,
            });
            if why.errno() == Some(ENOSPC) && self.reserve_held {
                let reserve = self.dir.join(RESERVE_FILE);
                if self.disk.remove(&reserve).is_ok() {
                    self.reserve_held = false;
                }
                let _ = self.record_failure();
            }
        }
        AuditAppendError::Failed(why)
    }

    /// Writes `log_failed` (and a checkpoint covering it) when the disk lets it: the
    /// write-ahead file is rewritten whole with the failure as its last entry.
    fn record_failure(&mut self) -> Result<(), LogFault> {
        let Some(failure) = &self.failure else {
            return Ok(());
        };
        if failure.recorded {
            return Ok(());
        }
        let kind = EventKind::LogFailed {
            error: failure.error.to_string(),
        };
        self.append_own(kind, OwnEntry::Failure)?;
        if let Some(f) = &mut self.failure {
            f.recorded = true;
        }
        let _ = self.sign();
        Ok(())
    }

    /// Tries to leave the failed state; on failure, waits longer before the next try.
    fn retry(&mut self) {
        match self.recover() {
            Ok(()) => {}
            Err(why) => {
                if let Some(f) = &mut self.failure {
                    f.backoff = (f.backoff * 2).min(MAX_BACKOFF);
                    f.next_try = Instant::now() + f.backoff;
                    // The state says what failed first; the latest reason goes with it.
                    let mut state = lock_state(&self.state);
                    state.failed = Some(LogFault::Retrying {
                        first: Box::new(f.error.clone()),
                        latest: Box::new(why),
                    });
                }
            }
        }
    }

    /// Rewrites and checks everything the failure may have left behind; clears the failure
    /// once every write and sync succeeded.
    fn recover(&mut self) -> Result<(), LogFault> {
        // The files written before the failure must still be there (a directory removed or
        // replaced under the proxy is not recovered from: the log is not there to extend).
        self.reclaim();
        let dir = self.dir.clone();
        if !dir.is_dir() {
            return Err(LogFault::DirectoryMissing { dir });
        }
        let checkpoint_there = dir.join(storage::CHECKPOINT_FILE).exists();
        if lock_state(&self.state).latest.is_some() && !checkpoint_there {
            return Err(LogFault::CheckpointGone { dir });
        }
        let found = storage::count_bundles(&dir);
        if found < self.bundles {
            return Err(LogFault::BundlesGone {
                dir,
                found,
                wrote: self.bundles,
            });
        }
        // Space first: the reserve back in place (what a full disk needs, and proof the
        // disk takes writes).
        self.make_reserve().map_err(LogFault::Reserve)?;
        // The write-ahead file, whole, from memory (and the failure, if not yet recorded).
        self.rewrite_wal()?;
        self.record_failure()?;
        // The history, cut back to its last whole note.
        self.cut_history()?;
        // Bundles and tiles owed.
        self.flush_bundles()?;
        let Some(failure) = self.failure.take() else {
            return Ok(());
        };
        let recovered_ms = crate::timestamp::now_ms();
        {
            let mut state = lock_state(&self.state);
            state.failed = None;
            state.failed_since_ms = None;
            state.last_recovery = Some(LogRecovery {
                failed_ms: failure.since_ms,
                recovered_ms,
                error: failure.error.clone(),
            });
        }
        let recovered = EventKind::LogRecovered {
            failed_ms: failure.since_ms,
            error: failure.error.to_string(),
        };
        self.append_own(recovered, OwnEntry::Recovery)?;
        self.sign().map(|_| ())
    }

    /// Creates the reserve file when it is missing: `reserve_bytes` of zeros, synced.
    pub(super) fn make_reserve(&mut self) -> Result<(), StorageError> {
        if self.reserve_bytes == 0 || self.reserve_held {
            return Ok(());
        }
        // A size beyond the address space is capped like any size beyond the bound.
        let len = usize::try_from(self.reserve_bytes)
            .map_or(MAX_RESERVE_BYTES, |n| n.min(MAX_RESERVE_BYTES));
        let zeros = vec![0u8; len];
        self.disk
            .write_atomic(&self.dir, RESERVE_FILE, &zeros)
            .inspect_err(|_| {
                let _ = std::fs::remove_file(self.dir.join(RESERVE_FILE));
            })?;
        self.reserve_held = true;
        Ok(())
    }

    /// Rewrites the write-ahead file whole from `wal_entries`, through a new file, and opens
    /// it for appending.
    fn rewrite_wal(&mut self) -> Result<(), StorageError> {
        let mut bytes = storage::wal_header();
        for (i, data) in self.wal_entries.iter().enumerate() {
            storage::encode_record(&mut bytes, self.wal_base + i as u64, data);
        }
        self.disk.write_atomic(&self.dir, WAL_FILE, &bytes)?;
        let path = self.dir.join(WAL_FILE);
        self.wal = Some(
            self.disk
                .open_append(&path)
                .map_err(|e| storage::io_err(&path, FileOp::Open, &e))?,
        );
        Ok(())
    }

    /// Cuts the checkpoint history back to its last whole note (after a failed append).
    fn cut_history(&mut self) -> Result<(), StorageError> {
        let path = self.dir.join(storage::HISTORY_FILE);
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len == self.history_len {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| storage::io_err(&path, FileOp::Open, &e))?;
        self.disk
            .set_len(&file, &path, self.history_len)
            .map_err(|e| storage::io_err(&path, FileOp::Truncate, &e))?;
        self.disk
            .sync_all(&file, &path)
            .map_err(|e| storage::io_err(&path, FileOp::Sync, &e))
    }

    /// Appends one of the log's own entries (failure, recovery, rollback) while appends of
    /// others may be refused: written and synced, or an error.
    pub(super) fn append_own(
        &mut self,
        kind: EventKind,
        entry: OwnEntry,
    ) -> Result<Appended, LogFault> {
        let bytes = Event {
            v: EVENT_VERSION,
            time_ms: crate::timestamp::now_ms(),
            proxy: self.proxy.clone(),
            actor: None,
            drill: None,
            event: kind,
        }
        .to_bytes()
        .map_err(|e| LogFault::Encode {
            entry,
            what: e.to_string(),
        })?;
        if self.wal.is_none() {
            self.rewrite_wal()?;
        }
        let (reply, submitted) = reply::channel();
        self.write_batch(vec![(bytes, reply)]);
        submitted.wait().map_err(|e| LogFault::Record {
            entry,
            source: Box::new(e),
        })
    }

    pub(super) fn commit(&mut self, appends: Vec<(Vec<u8>, Reply)>) {
        if let Some(f) = &self.failure {
            let why = lock_state(&self.state)
                .failed
                .clone()
                .unwrap_or_else(|| f.error.clone());
            for (_, reply) in appends {
                reply.send(Err(AuditAppendError::Failed(why.clone())));
            }
            return;
        }
        self.write_batch(appends);
    }

    /// Writes a batch to the write-ahead file with one write and one sync, then answers it.
    fn write_batch(&mut self, appends: Vec<(Vec<u8>, Reply)>) {
        let mut edge: TreeEdge = lock_state(&self.state).edge.clone();
        let mut buffer = Vec::new();
        let mut accepted = Vec::with_capacity(appends.len());
        for (entry, reply) in appends {
            let entry = match Entry::new(entry) {
                Ok(entry) => entry,
                Err(e) => {
                    reply.send(Err(AuditAppendError::Size(e.len)));
                    continue;
                }
            };
            let index = edge.size() + accepted.len() as u64;
            storage::encode_record(&mut buffer, index, &entry);
            accepted.push((entry, reply));
        }
        if accepted.is_empty() {
            return;
        }
        let path = self.dir.join(WAL_FILE);
        let written = match self.wal.as_mut() {
            None => Err(LogFault::WalClosed { path }),
            Some(file) => {
                let disk = self.disk.clone();
                disk.write_all(file, &path, &buffer)
                    .map_err(io_fault(&path, FileOp::Write))
                    .and_then(|()| {
                        disk.sync_data(file, &path)
                            .map_err(io_fault(&path, FileOp::Sync))
                    })
                    .and_then(|()| {
                        // Written to a file nobody can open any more: not durable.
                        use std::os::unix::fs::MetadataExt;
                        match file.metadata() {
                            Ok(m) if m.nlink() == 0 => Err(LogFault::WalUnlinked { path }),
                            Ok(_) => Ok(()),
                            Err(e) => Err(io_fault(&path, FileOp::Read)(e)),
                        }
                    })
            }
        };
        if let Err(fault) = written {
            let err = self.fail(fault);
            for (_, reply) in accepted {
                reply.send(Err(err.clone()));
            }
            return;
        }
        // Durable from here on: every entry is answered Ok.
        let mut completed = Vec::new();
        let mut answers = Vec::with_capacity(accepted.len());
        for (entry, reply) in accepted {
            let leaf = leaf_hash(entry.as_bytes());
            let index = edge.size();
            edge.push(leaf, &mut completed);
            self.wal_entries.push(entry);
            answers.push((reply, Appended { index, leaf }));
        }
        self.tiles_owed.extend(completed);
        lock_state(&self.state).edge = edge;
        self.unsigned_since.get_or_insert_with(Instant::now);
        for (reply, appended) in answers {
            reply.send(Ok(appended));
        }
        if let Err(e) = self.after_batch() {
            // The entries are durable in the write-ahead file; the bundle is written again
            // when the disk recovers (or by recovery at the next open).
            let _ = self.fail(e);
        }
    }

    /// After a batch: full bundles and tiles to the bundler thread (here, while the log is
    /// failed or without the thread), then the write-ahead file trimmed to what is durable.
    fn after_batch(&mut self) -> Result<(), LogFault> {
        let Some(bundler) = self.bundler.as_ref().filter(|_| self.failure.is_none()) else {
            self.reclaim();
            return self.flush_bundles();
        };
        let full = lock_state(&self.state).edge.size() / TILE_WIDTH as u64;
        let mut job = Job::default();
        while self.bundles_queued < full {
            let b = self.bundles_queued;
            let entries = self.bundle_entries(b)?;
            job.bundles.push((b, storage::encode_bundle(entries)));
            self.bundles_queued += 1;
        }
        job.tiles = std::mem::take(&mut self.tiles_owed);
        bundler.send(job);
        let report = bundler.look();
        self.bundles = report.durable;
        if let Some(fault) = report.failed {
            self.reclaim();
            return Err(fault);
        }
        self.trim_wal()
    }

    /// Waits for the bundler thread to finish what it was given and takes back what it did
    /// not write: the bundles from the first one not durable, and the tiles.
    fn reclaim(&mut self) {
        if let Some(bundler) = &self.bundler {
            let back = bundler.take_back();
            self.bundles = back.durable;
            let mut tiles = back.tiles;
            tiles.append(&mut self.tiles_owed);
            self.tiles_owed = tiles;
        }
        self.bundles_queued = self.bundles;
    }

    /// The entries of full bundle `b`, from the write-ahead entries in memory.
    fn bundle_entries(&self, b: u64) -> Result<&[Entry], LogFault> {
        b.checked_mul(TILE_WIDTH as u64)
            .and_then(|first| first.checked_sub(self.wal_base))
            .and_then(|first| usize::try_from(first).ok())
            .and_then(|first| self.wal_entries.get(first..first + TILE_WIDTH))
            .ok_or(LogFault::BundleNotInMemory { bundle: b })
    }

    /// Writes every full bundle not yet on disk (from the write-ahead entries), the tiles
    /// owed, then trims the write-ahead file to the last full bundle and the one being
    /// filled.
    fn flush_bundles(&mut self) -> Result<(), LogFault> {
        let size = lock_state(&self.state).edge.size();
        let full = size / TILE_WIDTH as u64;
        if full == self.bundles && self.tiles_owed.is_empty() {
            return Ok(());
        }
        while self.bundles < full {
            let b = self.bundles;
            let entries = self.bundle_entries(b)?;
            self.disk.write_atomic(
                &self.dir,
                &storage::bundle_rel(b),
                &storage::encode_bundle(entries),
            )?;
            self.bundles += 1;
        }
        while let Some(tile) = self.tiles_owed.first() {
            let rel = storage::tile_rel(tile.level, tile.index);
            // A tile from before a failure may already be there (written, then the failure).
            let same = std::fs::read(self.dir.join(&rel)).is_ok_and(|d| d == tile.data);
            if !same {
                self.disk.write_atomic(&self.dir, &rel, &tile.data)?;
            }
            self.tiles_owed.remove(0);
        }
        self.bundles_queued = self.bundles;
        self.trim_wal()
    }

    /// Trims the write-ahead file once it holds enough entries already in durable bundles.
    fn trim_wal(&mut self) -> Result<(), LogFault> {
        // Keep the last full bundle's entries (they rebuild it if a crash leaves it short).
        // The file is rewritten only once it holds WAL_TRIM_BUNDLES bundles more than that:
        // a rewrite is a new file, a sync and a rename, too dear for every bundle.
        let keep_from = self.bundles.saturating_sub(1) * TILE_WIDTH as u64;
        if keep_from >= self.wal_base + WAL_TRIM_BUNDLES * TILE_WIDTH as u64 {
            // At most the entries held (past them, all are dropped).
            let drop = usize::try_from(keep_from - self.wal_base)
                .map_or(self.wal_entries.len(), |d| d.min(self.wal_entries.len()));
            let kept: Vec<Entry> = self.wal_entries.split_off(drop);
            let old = std::mem::replace(&mut self.wal_entries, kept);
            let old_base = self.wal_base;
            self.wal_base = keep_from;
            if let Err(e) = self.rewrite_wal() {
                // Put the entries back: the old file still holds them all.
                let mut all = old;
                all.append(&mut self.wal_entries);
                self.wal_entries = all;
                self.wal_base = old_base;
                return Err(e.into());
            }
        }
        Ok(())
    }

    pub(super) fn sign_if_needed(&mut self) -> Result<VerifiedCheckpoint, AuditAppendError> {
        let (size, latest) = {
            let s = lock_state(&self.state);
            (s.edge.size(), s.latest.clone())
        };
        match latest {
            Some(c) if c.size == size => {
                self.unsigned_since = None;
                Ok(c)
            }
            _ if size == 0 => Err(AuditAppendError::Failed(LogFault::Empty)),
            _ => self.sign().map_err(AuditAppendError::Failed),
        }
    }

    /// Signs a checkpoint of the log as it is: appended to the history, then the
    /// `checkpoint` file, then the published copy outside the log.
    pub(super) fn sign(&mut self) -> Result<VerifiedCheckpoint, LogFault> {
        // Every bundle and tile this checkpoint covers is written first: what the bundler
        // thread was given, then what the writer owes itself (written here while the log
        // is failed). When the disk takes none of it, no checkpoint is signed: the entries
        // are safe in the write-ahead file, and a checkpoint over tiles that are not on
        // disk would read as a tampered log.
        if let Some(bundler) = &self.bundler {
            let report = bundler.drain();
            self.bundles = report.durable;
            if let Some(fault) = report.failed {
                self.reclaim();
                return Err(self.failed(fault));
            }
        }
        self.flush_bundles().map_err(|e| self.failed(e))?;
        let (size, root) = {
            let s = lock_state(&self.state);
            (s.edge.size(), s.edge.root())
        };
        let keys: Vec<&SigningKey> = std::iter::once(&*self.key)
            .chain(self.successor.as_deref())
            .collect();
        let note = checkpoint::sign_by(&self.origin, size, root, &keys).map_err(LogFault::Sign)?;
        let history = self.dir.join(storage::HISTORY_FILE);
        // A note a failed append left half-written goes first: the new one follows the
        // last whole note.
        self.cut_history().map_err(|e| self.failed(e.into()))?;
        let record = storage::encode_history(&note).map_err(LogFault::Note)?;
        let appended = self
            .disk
            .open_append(&history)
            .map_err(io_fault(&history, FileOp::Open))
            .and_then(|mut file| {
                self.disk
                    .write_all(&mut file, &history, &record)
                    .map_err(io_fault(&history, FileOp::Write))?;
                self.disk
                    .sync_data(&file, &history)
                    .map_err(io_fault(&history, FileOp::Sync))
            });
        appended.map_err(|e| self.failed(e))?;
        self.history_len += record.len() as u64;
        self.disk
            .write_atomic(&self.dir, storage::CHECKPOINT_FILE, &note)
            .map_err(|e| self.failed(e.into()))?;
        // Published last: it never runs ahead of the log's own files.
        if let Some(path) = self.published.clone() {
            self.disk
                .write_file_atomic(&path, &note)
                .map_err(|e| self.failed(e.into()))?;
        }
        let verified = VerifiedCheckpoint { size, root, note };
        lock_state(&self.state).latest = Some(verified.clone());
        self.unsigned_since = None;
        Ok(verified)
    }

    /// Enters the failed state with `fault` and hands it back (for the caller's error).
    fn failed(&mut self, fault: LogFault) -> LogFault {
        let _ = self.fail(fault.clone());
        fault
    }

    /// Writes full tiles (recomputed from the bundles below when needed) at open.
    pub(super) fn repair_tile(&self, level: u8, index: u64) -> Result<(), AuditOpenError> {
        let data = recompute_tile(&self.dir, level, index)?;
        self.disk
            .write_atomic(&self.dir, &storage::tile_rel(level, index), &data)?;
        Ok(())
    }
}

/// The fault of a failed operation `op` on `path`.
fn io_fault(path: &Path, op: FileOp) -> impl Fn(std::io::Error) -> LogFault + '_ {
    move |e| LogFault::from(storage::io_err(path, op, &e))
}
