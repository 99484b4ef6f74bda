//! The writable log: crash recovery at open, durable appends with group commit, checkpoints
//! at least every second while events arrive, and proofs.
//!
//! One writer thread owns the files. Appenders hand it entries and wait; it writes every
//! entry that is queued in one write and one fsync (group commit), then answers them all.
//! An entry is therefore on disk before [`AuditLog::append`] returns. If the disk fails, the
//! log stops accepting entries (fail closed: no access without a record, so an access that
//! could not be audited never happens).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::checkpoint::VerifiedCheckpoint;
use super::storage::{self, Disk, FileOp, WAL_FILE};
use super::tree::{Hash, TreeEdge};
use crate::id::ProxyId;
use crate::keys::SigningKey;

mod bundler;
mod error;
mod proofs;
mod reader;
mod recover;
mod reply;
mod writer;

pub use error::{AuditAppendError, AuditOpenError, LogFault, OwnEntry, ProofError, ReplayError};
pub use reader::EntryReader;
pub use reply::Submitted;

/// The default size of the reserve file (see [`LogConfig::reserve_bytes`]).
pub const DEFAULT_RESERVE_BYTES: u64 = 8 << 20;

/// How to open a log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The log directory.
    pub dir: PathBuf,
    /// The proxy whose log this is (its origin is `bglass/<proxy>`).
    pub proxy: ProxyId,
    /// The proxy signing key.
    pub key: Arc<SigningKey>,
    /// A key that co-signs every checkpoint this writer signs: the new key while
    /// `bglass-proxy rotate-key` records its transition (see [`super::rotation`]).
    pub successor: Option<Arc<SigningKey>>,
    /// Longest time between the first unsigned entry and its checkpoint.
    pub checkpoint_interval: Duration,
    /// A file outside the log directory that keeps the newest checkpoint this log has
    /// signed, rewritten atomically and durably each time one is signed. At open, a log
    /// that is behind it (fewer entries, or other entries up to its size) is refused as
    /// rolled back: a log restored from an older copy is consistent in itself, so only a
    /// record kept elsewhere shows it. `None`: no such check.
    pub published: Option<PathBuf>,
    /// Open a rolled-back log anyway: the rollback is then appended as the log's next
    /// entry (a `log_rollback` event) before anything else, and the published checkpoint
    /// moves to the log as it now is.
    pub accept_rollback: bool,
    /// Bytes kept in a reserve file in the log directory, freed when the disk is full so
    /// that the log can still record its failure and a checkpoint (0: none).
    pub reserve_bytes: u64,
    /// The file operations of the writer (tests inject faults through it).
    pub disk: Disk,
    /// First wait before retrying after a failed write; it doubles, up to 2 s.
    pub retry_after: Duration,
}

impl LogConfig {
    /// A log in `dir` for `proxy`, checkpoints at least every second, no published
    /// checkpoint kept outside it.
    pub fn new(dir: PathBuf, proxy: ProxyId, key: Arc<SigningKey>) -> Self {
        Self {
            dir,
            proxy,
            key,
            successor: None,
            checkpoint_interval: Duration::from_secs(1),
            published: None,
            accept_rollback: false,
            reserve_bytes: 0,
            disk: Disk::default(),
            retry_after: Duration::from_millis(100),
        }
    }
}

/// A log found behind the newest checkpoint it had published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The file that keeps the published checkpoint.
    pub path: PathBuf,
    /// Entries the published checkpoint covers.
    pub published_size: u64,
    /// Its root hash (base64).
    pub published_root: String,
    /// Entries in the log.
    pub size: u64,
    /// The log holds at least `published_size` entries, but not the ones published.
    pub diverged: bool,
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.diverged {
            write!(
                f,
                "the log holds {} entries, but its first {} are not the {} entries this proxy published in the checkpoint kept in {}: the log was replaced by another history",
                self.size,
                self.published_size,
                self.published_size,
                self.path.display()
            )
        } else {
            write!(
                f,
                "the log holds {} entries, but this proxy published a checkpoint of {} entries (kept in {}): the log was rolled back (restored from an older copy, or cut short) and entries {}..{} are missing",
                self.size,
                self.published_size,
                self.path.display(),
                self.size,
                self.published_size
            )
        }
    }
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Appended {
    /// Its index.
    pub index: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf: Hash,
}

/// What recovery found and did at open.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Entries in the log.
    pub entries: u64,
    /// Bytes of an unacknowledged torn tail cut from the write-ahead file.
    pub torn_bytes_dropped: u64,
    /// Why the tail was torn, when it was.
    pub torn: Option<String>,
    /// Bundles and tiles that were missing (half-written at a crash) and were written.
    pub files_repaired: u64,
    /// Whether a checkpoint was signed to cover entries that had none.
    pub checkpoint_signed: bool,
    /// The rollback that was accepted and recorded (see [`LogConfig::accept_rollback`]).
    pub rollback: Option<Rollback>,
    /// Bytes of a torn tail cut from the checkpoint history.
    pub history_torn_bytes: u64,
    /// Why the history's tail was torn, when it was.
    pub history_torn: Option<String>,
    /// Whether the `checkpoint` file was missing, short or behind and was written again.
    pub checkpoint_file_repaired: bool,
    /// A full bundle left short that was rebuilt from the write-ahead file.
    pub bundle_rebuilt: Option<u64>,
    /// Why the reserve file could not be made, when it could not (the log opens anyway).
    pub reserve_missing: Option<String>,
}

/// The callback that sees every entry at open.
type Replay<'a> = dyn FnMut(u64, &[u8]) -> Result<(), ReplayError> + 'a;

pub(super) enum Command {
    Append(Vec<u8>, reply::Reply),
    Checkpoint(mpsc::SyncSender<Result<VerifiedCheckpoint, AuditAppendError>>),
}

pub(super) struct State {
    edge: TreeEdge,
    latest: Option<VerifiedCheckpoint>,
    failed: Option<LogFault>,
    /// When the current failure began, Unix ms.
    failed_since_ms: Option<u64>,
    /// Failures since the log was opened.
    failures: u64,
    /// The last failure the log recovered from.
    last_recovery: Option<LogRecovery>,
}

/// The log's health, for status, metrics and alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogHealth {
    /// The current failure: the log refuses every append until it recovers.
    pub failed: Option<LogFailure>,
    /// Failures since the log was opened.
    pub failures: u64,
    /// The last failure the log recovered from.
    pub last_recovery: Option<LogRecovery>,
}

/// A failure the log is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFailure {
    /// Since when, Unix ms.
    pub since_ms: u64,
    /// What failed.
    pub error: LogFault,
}

/// A failure the log recovered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecovery {
    /// When it failed, Unix ms.
    pub failed_ms: u64,
    /// When it recovered, Unix ms.
    pub recovered_ms: u64,
    /// What had failed.
    pub error: LogFault,
}

/// An open, writable audit log.
pub struct AuditLog {
    dir: PathBuf,
    origin: String,
    state: Arc<Mutex<State>>,
    tx: Option<mpsc::Sender<Command>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

pub(super) fn lock_state(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // State fields are replaced whole; a panic elsewhere cannot leave them half-written.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn corrupt(index: u64, what: impl std::fmt::Display) -> AuditOpenError {
    AuditOpenError::Corrupt {
        index,
        what: what.to_string(),
    }
}

impl AuditLog {
    /// Opens (or creates) the log in `config.dir`, recovering from any crash, and calls
    /// `replay` with every entry in order before any new entry can be appended.
    ///
    /// Every file is read and checked before any is written: a log that is corrupt, or
    /// behind its published checkpoint (unless the rollback is accepted), is refused with
    /// its files as they were.
    pub fn open(
        config: LogConfig,
        mut replay: impl FnMut(u64, &[u8]) -> Result<(), ReplayError>,
    ) -> Result<(Self, RecoveryReport), AuditOpenError> {
        let dir = config.dir.clone();
        let tmp = dir.join(storage::TMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(|e| storage::io_err(&tmp, FileOp::CreateDir, &e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(storage::LOCK_FILE))
            .map_err(|e| storage::io_err(&dir.join(storage::LOCK_FILE), FileOp::Open, &e))?;
        if lock.try_lock().is_err() {
            return Err(AuditOpenError::Locked(dir.display().to_string()));
        }
        let origin = super::checkpoint::origin(&config.proxy);
        // The last rotation of the signing key the log records: this opener must hold the
        // key it put in force (or be the rotation, co-signing with it).
        let rotated = std::cell::Cell::new(None::<(u64, crate::keys::PublicKey)>);
        let mut replay = |index: u64, bytes: &[u8]| {
            if super::event::peek_kind(bytes) == Some(super::rotation::EVENT_TYPE)
                && let Ok(event) = super::event::Event::from_bytes(bytes)
                && let super::event::EventKind::SigningKeyRotated { transition } = event.event
            {
                rotated.set(Some((index, transition.new)));
            }
            replay(index, bytes)
        };
        let recovered = recover::recover(&config, &origin, &mut replay)?;
        if let Some((index, logged)) = rotated.get() {
            let held = config.key.public_key();
            let successor = config.successor.as_ref().map(|k| k.public_key());
            if logged != held && Some(logged) != successor {
                return Err(AuditOpenError::KeyRotated {
                    index,
                    logged,
                    held,
                });
            }
        }

        // Every check passed: now write what recovery decided. Leftovers of writes cut by
        // a crash go first; their targets are rewritten here if needed.
        if let Ok(entries) = std::fs::read_dir(dir.join(storage::TMP_DIR)) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let disk = config.disk.clone();
        let mut report = recovered.report;
        let repairs = recovered.repairs;
        for (b, bytes) in &repairs.bundles {
            disk.write_atomic(&dir, &storage::bundle_rel(*b), bytes)?;
            report.files_repaired += 1;
        }
        if let Some(bytes) = &repairs.wal {
            disk.write_atomic(&dir, WAL_FILE, bytes)?;
        }
        let history = dir.join(storage::HISTORY_FILE);
        if let Some(len) = repairs.history_cut {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&history)
                .map_err(|e| storage::io_err(&history, FileOp::Open, &e))?;
            disk.set_len(&file, &history, len)
                .map_err(|e| storage::io_err(&history, FileOp::Truncate, &e))?;
            disk.sync_all(&file, &history)
                .map_err(|e| storage::io_err(&history, FileOp::Sync, &e))?;
        }
        if let Some(note) = &repairs.history_append {
            let mut file = disk
                .open_append(&history)
                .map_err(storage::io_err_at(&history, FileOp::Open))?;
            let record = storage::encode_history(note).map_err(LogFault::Note)?;
            disk.write_all(&mut file, &history, &record)
                .map_err(storage::io_err_at(&history, FileOp::Write))?;
            disk.sync_data(&file, &history)
                .map_err(storage::io_err_at(&history, FileOp::Sync))?;
        }
        if let Some(note) = &repairs.checkpoint_file {
            disk.write_atomic(&dir, storage::CHECKPOINT_FILE, note)?;
        }

        let state = Arc::new(Mutex::new(State {
            edge: recovered.edge,
            latest: recovered.latest,
            failed: None,
            failed_since_ms: None,
            failures: 0,
            last_recovery: None,
        }));
        let wal_path = dir.join(WAL_FILE);
        let wal = disk
            .open_append(&wal_path)
            .map_err(|e| storage::io_err(&wal_path, FileOp::Open, &e))?;
        let mut writer = writer::Writer::new(
            dir.clone(),
            origin.clone(),
            config.proxy.clone(),
            Arc::clone(&config.key),
            config.checkpoint_interval,
            config.published.clone(),
            disk.clone(),
            Arc::clone(&state),
            lock,
        );
        writer.wal = Some(wal);
        writer.successor = config.successor.clone();
        writer.wal_entries = recovered.wal_entries;
        writer.wal_base = recovered.wal_base;
        writer.bundles = recovered.bundles;
        writer.history_len = recovered.history_len;
        writer.reserve_bytes = config.reserve_bytes;
        writer.first_backoff = config.retry_after;
        writer.reserve_held = config.reserve_bytes > 0
            && std::fs::metadata(dir.join(writer::RESERVE_FILE))
                .is_ok_and(|m| m.len() == config.reserve_bytes);
        for (level, index) in &repairs.tiles {
            writer.repair_tile(*level, *index)?;
            report.files_repaired += 1;
        }
        if let Err(e) = writer.make_reserve() {
            report.reserve_missing = Some(e.to_string());
        }
        // An accepted rollback is the log's next entry, before any other.
        if let Some(rollback) = recovered.rollback {
            let entry = recover::rollback_kind(&rollback);
            let appended = writer.append_own(entry, OwnEntry::Rollback)?;
            let bytes = writer
                .wal_entries
                .last()
                .cloned()
                .ok_or_else(|| corrupt(rollback.size, "the rollback entry is not in memory"))?;
            replay(appended.index, bytes.as_bytes()).map_err(|source| AuditOpenError::Replay {
                index: appended.index,
                source,
            })?;
            report.rollback = Some(rollback);
        }
        // Entries with no checkpoint yet (recovered after a crash) get one now; a
        // published checkpoint that is missing or older than the latest is brought level.
        let (needs, latest) = {
            let s = lock_state(&state);
            (
                s.edge.size() > s.latest.as_ref().map_or(0, |c| c.size),
                s.latest.clone(),
            )
        };
        if needs {
            writer.sign()?;
            report.checkpoint_signed = true;
        } else if let (Some(path), Some(latest)) = (&config.published, &latest)
            && recovered
                .published
                .as_ref()
                .is_none_or(|p| p.size < latest.size)
        {
            disk.write_file_atomic(path, &latest.note)?;
        }
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("bglass-audit-writer".to_owned())
            .spawn(move || writer.run(&rx))
            .map_err(|e| storage::io_err(&dir, FileOp::Start, &e))?;
        Ok((
            Self {
                dir: config.dir,
                origin,
                state,
                tx: Some(tx),
                writer: Some(handle),
            },
            report,
        ))
    }

    /// Appends one entry; returns once it is on disk.
    pub fn append(&self, entry: Vec<u8>) -> Result<Appended, AuditAppendError> {
        self.submit(entry)?.wait()
    }

    /// Queues one entry without waiting. Entries submitted in order are appended in that
    /// order; [`Submitted::wait`] returns (and the `Submitted` future resolves) once the
    /// entry is on disk.
    pub fn submit(&self, entry: Vec<u8>) -> Result<Submitted, AuditAppendError> {
        let (reply, submitted) = reply::channel();
        self.send(Command::Append(entry, reply))?;
        Ok(submitted)
    }

    /// Signs a checkpoint now (if any entry is not yet covered) and returns the latest one.
    pub fn checkpoint_now(&self) -> Result<VerifiedCheckpoint, AuditAppendError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Command::Checkpoint(reply))?;
        rx.recv().unwrap_or(Err(AuditAppendError::Closed))
    }

    fn send(&self, command: Command) -> Result<(), AuditAppendError> {
        self.tx
            .as_ref()
            .ok_or(AuditAppendError::Closed)?
            .send(command)
            .map_err(|_| AuditAppendError::Closed)
    }

    /// Entries in the log.
    pub fn size(&self) -> u64 {
        lock_state(&self.state).edge.size()
    }

    /// The latest signed checkpoint.
    pub fn latest_checkpoint(&self) -> Option<VerifiedCheckpoint> {
        lock_state(&self.state).latest.clone()
    }

    /// Why the log stopped accepting entries, if it did.
    pub fn failure(&self) -> Option<LogFault> {
        lock_state(&self.state).failed.clone()
    }

    /// Whether the log works, since when it failed, and its last recovery.
    pub fn health(&self) -> LogHealth {
        let s = lock_state(&self.state);
        LogHealth {
            failed: s.failed.as_ref().map(|error| LogFailure {
                since_ms: s.failed_since_ms.unwrap_or(0),
                error: error.clone(),
            }),
            failures: s.failures,
            last_recovery: s.last_recovery.clone(),
        }
    }

    /// The log's origin (`bglass/<proxy>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the entries from index `from` up to the current size, lazily: a bundle (or
    /// the write-ahead file) at a time, so memory stays bounded however long the log is.
    /// Appends made meanwhile are read once [`EntryReader::extend_to`] raises the end.
    pub fn entries_from(&self, from: u64) -> EntryReader {
        EntryReader::new(self.dir.clone(), from, self.size())
    }

    /// Stops the writer after it has answered every queued append, signing a final
    /// checkpoint when entries are not yet covered.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}
