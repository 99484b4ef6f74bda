//! The writable log: crash recovery at open, durable appends with group commit, checkpoints
//! at least every second while events arrive, and proofs.
//!
//! One writer thread owns the files. Appenders hand it entries and wait; it writes every
//! entry that is queued in one write and one fsync (group commit), then answers them all.
//! An entry is therefore on disk before [`AuditLog::append`] returns. If the disk fails, the
//! log stops accepting entries (fail closed: no access without a record, DESIGN §9).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use super::checkpoint::{self, VerifiedCheckpoint};
use super::event::{EVENT_VERSION, Event, EventKind};
use super::storage::{self, DiskTiles, StorageError, WAL_FILE};
use super::tree::{
    FullTile, HASH_SIZE, Hash, TILE_WIDTH, TreeEdge, TreeReader, leaf_hash, subtree_root,
};
use crate::id::ProxyId;
use crate::keys::SigningKey;

/// Most entries written in one group commit.
const MAX_BATCH: usize = 8192;

/// How to open a log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The log directory.
    pub dir: PathBuf,
    /// The proxy whose log this is (its origin is `bglass/<proxy>`).
    pub proxy: ProxyId,
    /// The proxy signing key.
    pub key: Arc<SigningKey>,
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
}

impl LogConfig {
    /// A log in `dir` for `proxy`, checkpoints at least every second, no published
    /// checkpoint kept outside it.
    pub fn new(dir: PathBuf, proxy: ProxyId, key: Arc<SigningKey>) -> Self {
        Self {
            dir,
            proxy,
            key,
            checkpoint_interval: Duration::from_secs(1),
            published: None,
            accept_rollback: false,
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

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditOpenError {
    /// A file could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Another process holds the log.
    #[error("{0}: the log is in use by another process")]
    Locked(String),
    /// The files contradict each other: tampering or disk corruption. Never repaired silently.
    #[error("the log is corrupt at entry {index}: {what}")]
    Corrupt {
        /// The first entry concerned.
        index: u64,
        /// What is wrong.
        what: String,
    },
    /// The log is behind the newest checkpoint it published (see
    /// [`LogConfig::published`]) and the rollback was not accepted.
    #[error("{0}")]
    RolledBack(Box<Rollback>),
    /// The published checkpoint kept outside the log cannot be used.
    #[error("{path}: {what}")]
    Published {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The replay callback refused an entry.
    #[error("replay stopped at entry {index}: {what}")]
    Replay {
        /// The entry.
        index: u64,
        /// Why.
        what: String,
    },
}

/// Why an append failed. The entry is not in the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditAppendError {
    /// The entry is empty or larger than [`storage::MAX_ENTRY_BYTES`].
    #[error("audit entry of {0} bytes is empty or larger than {max} bytes", max = storage::MAX_ENTRY_BYTES)]
    Size(usize),
    /// Writing failed; the log accepts no more entries until it is reopened.
    #[error("the audit log failed and accepts no entries: {0}")]
    Failed(String),
    /// The log is closed.
    #[error("the audit log is closed")]
    Closed,
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Appended {
    /// Its index.
    pub index: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf: Hash,
}

/// An entry queued for appending.
#[derive(Debug)]
pub struct Submitted(mpsc::Receiver<Result<Appended, AuditAppendError>>);

impl Submitted {
    /// Waits until the entry is on disk (or the append failed).
    pub fn wait(self) -> Result<Appended, AuditAppendError> {
        self.0.recv().unwrap_or(Err(AuditAppendError::Closed))
    }
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
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The sizes or index are outside the log.
    #[error("no such entry or tree size: {0}")]
    Range(String),
    /// Reading tiles failed.
    #[error("cannot read the tree: {0}")]
    Tree(String),
}

/// The callback that sees every entry at open.
type Replay<'a> = dyn FnMut(u64, &[u8]) -> Result<(), String> + 'a;

type Reply = mpsc::SyncSender<Result<Appended, AuditAppendError>>;

enum Command {
    Append(Vec<u8>, Reply),
    Checkpoint(mpsc::SyncSender<Result<VerifiedCheckpoint, AuditAppendError>>),
}

struct State {
    edge: TreeEdge,
    latest: Option<VerifiedCheckpoint>,
    failed: Option<String>,
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
    pub error: String,
}

/// A failure the log recovered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecovery {
    /// When it failed, Unix ms.
    pub failed_ms: u64,
    /// When it recovered, Unix ms.
    pub recovered_ms: u64,
    /// What had failed.
    pub error: String,
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

fn lock_state(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // State fields are replaced whole; a panic elsewhere cannot leave them half-written.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn corrupt(index: u64, what: impl std::fmt::Display) -> AuditOpenError {
    AuditOpenError::Corrupt {
        index,
        what: what.to_string(),
    }
}

/// Writes full tiles, each atomically; an existing tile must hold the same bytes.
fn write_tiles(dir: &Path, tiles: &[FullTile]) -> Result<(), AuditOpenError> {
    for tile in tiles {
        match check_tile(dir, tile)? {
            TileOnDisk::Same => {}
            TileOnDisk::Missing => {
                storage::write_atomic(dir, &storage::tile_rel(tile.level, tile.index), &tile.data)?
            }
        }
    }
    Ok(())
}

/// A recomputed full tile, compared with the one on disk.
enum TileOnDisk {
    /// The same bytes.
    Same,
    /// Missing or short: a write cut by a crash (written again once every check passed).
    Missing,
}

/// Compares a recomputed full tile with the stored one; a different one of full length is
/// corruption.
fn check_tile(dir: &Path, tile: &FullTile) -> Result<TileOnDisk, AuditOpenError> {
    let rel = storage::tile_rel(tile.level, tile.index);
    match std::fs::read(dir.join(&rel)) {
        Ok(existing) if existing == tile.data => Ok(TileOnDisk::Same),
        Ok(existing) if existing.len() == tile.data.len() => {
            let first = tile
                .index
                .checked_shl(8 * (u32::from(tile.level) + 1))
                .unwrap_or(u64::MAX);
            Err(corrupt(
                first,
                format!("hash tile {rel} differs from the hashes of the entries"),
            ))
        }
        _ => Ok(TileOnDisk::Missing),
    }
}

/// Recomputes full tile (`level`, `index`) from what is on disk below it: the leaf hashes
/// of bundle `index` for level 0, else the subtree roots of the 256 tiles one level down.
fn recompute_tile(dir: &Path, level: u8, index: u64) -> Result<Vec<u8>, AuditOpenError> {
    let hashes: Vec<Hash> = if level == 0 {
        let bytes = storage::read_bundle(dir, index)?;
        storage::parse_bundle(&bytes)
            .map_err(|e| corrupt(index * TILE_WIDTH as u64, e))?
            .into_iter()
            .map(leaf_hash)
            .collect()
    } else {
        use super::tree::FullTiles;
        let tiles = DiskTiles {
            dir: dir.to_path_buf(),
        };
        let mut out = Vec::with_capacity(TILE_WIDTH);
        for j in 0..TILE_WIDTH as u64 {
            let below = index * TILE_WIDTH as u64 + j;
            let data = tiles.full_tile(level - 1, below).map_err(|e| {
                corrupt(
                    0,
                    format!(
                        "cannot rebuild {}: {}: {e}",
                        storage::tile_rel(level, index),
                        storage::tile_rel(level - 1, below)
                    ),
                )
            })?;
            let row: Vec<Hash> = data
                .chunks_exact(HASH_SIZE)
                .map(|c| {
                    let mut h = [0u8; HASH_SIZE];
                    h.copy_from_slice(c);
                    Hash(h)
                })
                .collect();
            out.push(subtree_root(&row));
        }
        out
    };
    Ok(hashes.iter().flat_map(|h| h.0).collect())
}

/// What recovery must write, decided while reading and done only after every check
/// passed (a refused open changes no file).
#[derive(Default)]
struct Repairs {
    /// Full bundles whose entries are only in the write-ahead file: (index, bytes).
    bundles: Vec<(u64, Vec<u8>)>,
    /// Full tiles missing or short on disk, recomputed from what is below them.
    tiles: Vec<(u8, u64)>,
    /// The write-ahead file's new bytes, when it must change (a torn tail to cut, records
    /// now in bundles to trim, or no file yet).
    wal: Option<Vec<u8>>,
}

struct Recovered {
    edge: TreeEdge,
    pending: Vec<Vec<u8>>,
    latest: Option<VerifiedCheckpoint>,
    /// The published checkpoint, when the file exists.
    published: Option<VerifiedCheckpoint>,
    /// A rollback that was found and accepted.
    rollback: Option<Rollback>,
    repairs: Repairs,
    report: RecoveryReport,
}

/// One bundle, read and hashed on a reader thread.
struct ReadBundle {
    bundle: u64,
    bytes: Result<Vec<u8>, StorageError>,
    /// Byte ranges of its entries, or why it is not a full bundle.
    ranges: Result<Vec<std::ops::Range<usize>>, String>,
    leaves: Vec<Hash>,
    /// The subtree root of its 256 leaves.
    root: Hash,
}

impl ReadBundle {
    fn read(dir: &Path, bundle: u64) -> Self {
        let bytes = storage::read_bundle(dir, bundle);
        let ranges = match &bytes {
            Ok(b) => storage::bundle_ranges(b).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let leaves: Vec<Hash> = match (&bytes, &ranges) {
            (Ok(b), Ok(r)) => r.iter().map(|r| leaf_hash(&b[r.clone()])).collect(),
            _ => Vec::new(),
        };
        let root = subtree_root(&leaves);
        Self {
            bundle,
            bytes,
            ranges,
            leaves,
            root,
        }
    }
}

/// Reads a checkpoint note kept in a file and checks that this log signed it.
fn read_published(
    path: &Path,
    origin: &str,
    key: &crate::keys::PublicKey,
) -> Result<Option<VerifiedCheckpoint>, AuditOpenError> {
    let note = match storage::read_bounded(path, checkpoint::MAX_CHECKPOINT_BYTES as u64) {
        Ok(note) => note,
        Err(_) if !path.exists() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    checkpoint::verify(&note, origin, key)
        .map(Some)
        .map_err(|e| AuditOpenError::Published {
            path: path.display().to_string(),
            what: format!(
                "not a checkpoint of this log signed by this proxy's key ({e}); it records the newest checkpoint the proxy published, to detect a log rolled back to an older copy"
            ),
        })
}

/// Reads and checks everything, replaying every entry, and decides what must be written;
/// writes nothing.
fn recover(
    config: &LogConfig,
    origin: &str,
    replay: &mut Replay<'_>,
) -> Result<Recovered, AuditOpenError> {
    let dir = &config.dir;
    let public = config.key.public_key();
    let mut report = RecoveryReport::default();
    let mut repairs = Repairs::default();
    let mut edge = TreeEdge::new();
    let mut completed = Vec::new();

    // The checkpoints the entries must match: the latest one in the log, and the newest
    // one published (kept outside the log). Their roots are taken as the walk passes them.
    let latest = match storage::latest_checkpoint(dir)? {
        Some(note) => Some(
            checkpoint::verify(&note, origin, &public)
                .map_err(|e| corrupt(0, format!("latest checkpoint: {e}")))?,
        ),
        None => None,
    };
    let published = match &config.published {
        Some(path) => read_published(path, origin, &public)?,
        None => None,
    };
    let mut wanted: BTreeMap<u64, Option<Hash>> = latest
        .iter()
        .chain(published.iter())
        .map(|c| (c.size, None))
        .collect();
    let note_root = |edge: &TreeEdge, wanted: &mut BTreeMap<u64, Option<Hash>>| {
        if let Some(root) = wanted.get_mut(&edge.size()) {
            *root = Some(edge.root());
        }
    };

    // 1. Full bundles, in order: reader threads read and hash them while this thread
    //    replays their entries and checks the tiles on disk against the hashes.
    let bundles = storage::count_bundles(dir);
    let mut walk = Ok(());
    std::thread::scope(|scope| {
        let readers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .clamp(1, 4) as u64;
        let receivers: Vec<_> = (0..readers)
            .map(|r| {
                let (tx, rx) = mpsc::sync_channel::<ReadBundle>(4);
                scope.spawn(move || {
                    let mut b = r;
                    while b < bundles {
                        if tx.send(ReadBundle::read(dir, b)).is_err() {
                            break; // the walk stopped
                        }
                        b += readers;
                    }
                });
                rx
            })
            .collect();
        for b in 0..bundles {
            let Some(read) = receivers
                .get(usize::try_from(b % readers).unwrap_or(0))
                .and_then(|rx| rx.recv().ok())
            else {
                walk = Err(corrupt(b * TILE_WIDTH as u64, "a bundle reader stopped"));
                break;
            };
            if let Err(e) = walk_bundle(
                dir,
                read,
                replay,
                &mut edge,
                &mut completed,
                &mut wanted,
                &mut repairs,
            ) {
                walk = Err(e);
                break;
            }
        }
        // Dropping the receivers stops the readers.
        drop(receivers);
    });
    walk?;

    // 2. The write-ahead file: entries after the last full bundle. Records already in a
    //    bundle (a crash between writing the bundle and trimming the file) must match it.
    let wal_path = dir.join(WAL_FILE);
    let wal = storage::read_wal(&wal_path).map_err(|e| match e.index() {
        Some(index) => corrupt(index, &e),
        None => match e {
            storage::WalError::Storage(s) => AuditOpenError::Storage(s),
            other => corrupt(edge.size(), other),
        },
    })?;
    let mut wal_changes = !wal_path.exists();
    if let Some(why) = &wal.torn {
        let len = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
        report.torn_bytes_dropped = len.saturating_sub(wal.valid_len);
        report.torn = Some(why.clone());
        wal_changes = true;
    }
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut last_bundle: Option<(u64, Vec<u8>)> = None;
    for record in wal.records {
        let size = edge.size();
        if record.index < size {
            // Already in a full bundle: it must be the same entry.
            wal_changes = true;
            let b = record.index / TILE_WIDTH as u64;
            if last_bundle.as_ref().is_none_or(|(i, _)| *i != b) {
                let bytes = match repairs.bundles.iter().find(|(i, _)| *i == b) {
                    Some((_, bytes)) => bytes.clone(),
                    None => storage::read_bundle(dir, b)?,
                };
                last_bundle = Some((b, bytes));
            }
            let bundle = last_bundle.as_ref().map_or(&[][..], |(_, bytes)| bytes);
            let entries = storage::parse_bundle(bundle).map_err(|e| corrupt(record.index, e))?;
            let pos = usize::try_from(record.index % TILE_WIDTH as u64).unwrap_or(0);
            if entries.get(pos) != Some(&record.data.as_slice()) {
                return Err(corrupt(
                    record.index,
                    "the write-ahead file and the bundle disagree",
                ));
            }
            continue;
        }
        if record.index > size {
            return Err(corrupt(
                size,
                format!("entries {size}..{} are missing", record.index),
            ));
        }
        replay(size, &record.data).map_err(|what| AuditOpenError::Replay { index: size, what })?;
        edge.push(leaf_hash(&record.data), &mut completed);
        note_root(&edge, &mut wanted);
        pending.push(record.data);
        if pending.len() == TILE_WIDTH {
            // The bundle filled before the crash let it be written: write it once checked.
            let b = size / TILE_WIDTH as u64;
            repairs
                .bundles
                .push((b, storage::encode_bundle(&std::mem::take(&mut pending))));
            wal_changes = true;
        }
        for tile in completed.drain(..) {
            if let TileOnDisk::Missing = check_tile(dir, &tile)? {
                repairs.tiles.push((tile.level, tile.index));
            }
        }
    }
    if wal_changes {
        // Exactly the pending entries (drops a torn tail and records now in bundles).
        let mut wal_bytes = storage::wal_header();
        let first = edge.size() - pending.len() as u64;
        for (i, data) in pending.iter().enumerate() {
            storage::encode_record(&mut wal_bytes, first + i as u64, data);
        }
        repairs.wal = Some(wal_bytes);
    }
    report.entries = edge.size();

    // 3. The latest checkpoint must match the entries.
    let root_at = |size: u64| wanted.get(&size).copied().flatten();
    if let Some(latest) = &latest {
        if latest.size > edge.size() {
            return Err(corrupt(
                edge.size(),
                format!(
                    "the latest checkpoint covers {} entries but only {} are on disk: acknowledged entries are missing",
                    latest.size,
                    edge.size()
                ),
            ));
        }
        if root_at(latest.size) != Some(latest.root) {
            return Err(corrupt(
                0,
                format!(
                    "the latest checkpoint (size {}) does not match the entries",
                    latest.size
                ),
            ));
        }
    }

    // 4. The log must not be behind the newest checkpoint it published.
    let mut rollback = None;
    if let (Some(published), Some(path)) = (&published, &config.published) {
        let behind = published.size > edge.size();
        if behind || root_at(published.size) != Some(published.root) {
            let found = Rollback {
                path: path.clone(),
                published_size: published.size,
                published_root: published.root.to_string(),
                size: edge.size(),
                diverged: !behind,
            };
            if !config.accept_rollback {
                return Err(AuditOpenError::RolledBack(Box::new(found)));
            }
            rollback = Some(found);
        }
    }
    repairs.tiles.sort_unstable();
    repairs.tiles.dedup();
    Ok(Recovered {
        edge,
        pending,
        latest,
        published,
        rollback,
        repairs,
        report,
    })
}

/// Walks one full bundle: replays its entries and adds them to the tree (taking the roots
/// of wanted sizes on the way), and checks its full tiles against the disk.
fn walk_bundle(
    dir: &Path,
    read: ReadBundle,
    replay: &mut Replay<'_>,
    edge: &mut TreeEdge,
    completed: &mut Vec<FullTile>,
    wanted: &mut BTreeMap<u64, Option<Hash>>,
    repairs: &mut Repairs,
) -> Result<(), AuditOpenError> {
    let base = read.bundle * TILE_WIDTH as u64;
    let (bytes, ranges) = match (read.bytes, &read.ranges) {
        (Ok(bytes), Ok(ranges)) => (bytes, ranges),
        (Err(e), _) => return Err(AuditOpenError::Storage(e)),
        (_, Err(e)) => {
            return Err(corrupt(
                base,
                format!("bundle {}: {e}", storage::bundle_rel(read.bundle)),
            ));
        }
    };
    for (i, range) in ranges.iter().enumerate() {
        let index = base + i as u64;
        replay(index, &bytes[range.clone()])
            .map_err(|what| AuditOpenError::Replay { index, what })?;
    }
    // A wanted size inside the bundle needs the tree entry by entry.
    let inside = wanted
        .range(base + 1..base + TILE_WIDTH as u64)
        .next()
        .is_some();
    if inside || !edge.push_bundle(&read.leaves, read.root, completed) {
        for leaf in &read.leaves {
            edge.push(*leaf, completed);
            if let Some(root) = wanted.get_mut(&edge.size()) {
                *root = Some(edge.root());
            }
        }
    } else if let Some(root) = wanted.get_mut(&edge.size()) {
        *root = Some(edge.root());
    }
    for tile in completed.drain(..) {
        if let TileOnDisk::Missing = check_tile(dir, &tile)? {
            repairs.tiles.push((tile.level, tile.index));
        }
    }
    Ok(())
}

/// The `log_rollback` event recorded when a rollback is accepted.
fn rollback_entry(config: &LogConfig, rollback: &Rollback) -> Result<Vec<u8>, AuditOpenError> {
    Event {
        v: EVENT_VERSION,
        time_ms: crate::timestamp::now_ms(),
        proxy: config.proxy.clone(),
        actor: None,
        drill: None,
        event: EventKind::LogRollback {
            published_size: rollback.published_size,
            published_root: rollback.published_root.clone(),
            size: rollback.size,
            detail: format!("{rollback}; accepted by the operator"),
        },
    }
    .to_bytes()
    .map_err(|e| corrupt(rollback.size, e))
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
        mut replay: impl FnMut(u64, &[u8]) -> Result<(), String>,
    ) -> Result<(Self, RecoveryReport), AuditOpenError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(dir.join(storage::TMP_DIR)).map_err(|e| storage::err(&dir, e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(storage::LOCK_FILE))
            .map_err(|e| storage::err(&dir, e))?;
        if lock.try_lock().is_err() {
            return Err(AuditOpenError::Locked(dir.display().to_string()));
        }
        let origin = checkpoint::origin(&config.proxy);
        let recovered = recover(&config, &origin, &mut replay)?;

        // Every check passed: now write what recovery decided. Leftovers of writes cut by
        // a crash go first; their targets are rewritten here if needed.
        if let Ok(entries) = std::fs::read_dir(dir.join(storage::TMP_DIR)) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let mut report = recovered.report;
        let repairs = recovered.repairs;
        for (b, bytes) in &repairs.bundles {
            storage::write_atomic(&dir, &storage::bundle_rel(*b), bytes)?;
            report.files_repaired += 1;
        }
        for (level, index) in &repairs.tiles {
            let data = recompute_tile(&dir, *level, *index)?;
            storage::write_atomic(&dir, &storage::tile_rel(*level, *index), &data)?;
            report.files_repaired += 1;
        }
        if let Some(bytes) = &repairs.wal {
            storage::write_atomic(&dir, WAL_FILE, bytes)?;
        }

        let state = Arc::new(Mutex::new(State {
            edge: recovered.edge,
            latest: recovered.latest,
            failed: None,
            failed_since_ms: None,
            failures: 0,
            last_recovery: None,
        }));
        let wal = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(WAL_FILE))
            .map_err(|e| storage::err(&dir.join(WAL_FILE), e))?;
        let mut writer = Writer {
            dir: dir.clone(),
            origin: origin.clone(),
            key: Arc::clone(&config.key),
            interval: config.checkpoint_interval,
            published: config.published.clone(),
            state: Arc::clone(&state),
            wal,
            pending: recovered.pending,
            unsigned_since: None,
            _lock: lock,
        };
        // An accepted rollback is the log's next entry, before any other.
        if let Some(rollback) = recovered.rollback {
            let entry = rollback_entry(&config, &rollback)?;
            let (reply, rx) = mpsc::sync_channel(1);
            writer.commit(vec![(entry.clone(), reply)]);
            let appended = rx
                .recv()
                .unwrap_or(Err(AuditAppendError::Closed))
                .map_err(|e| corrupt(rollback.size, format!("recording the rollback: {e}")))?;
            replay(appended.index, &entry).map_err(|what| AuditOpenError::Replay {
                index: appended.index,
                what,
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
            writer.sign().map_err(|e| corrupt(0, e))?;
            report.checkpoint_signed = true;
        } else if let (Some(path), Some(latest)) = (&config.published, &latest)
            && recovered
                .published
                .as_ref()
                .is_none_or(|p| p.size < latest.size)
        {
            storage::write_file_atomic(path, &latest.note)?;
        }
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("bglass-audit-writer".to_owned())
            .spawn(move || writer.run(&rx))
            .map_err(|e| storage::err(&dir, format!("cannot start the writer: {e}")))?;
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
    /// order; [`Submitted::wait`] returns once the entry is on disk.
    pub fn submit(&self, entry: Vec<u8>) -> Result<Submitted, AuditAppendError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Command::Append(entry, reply))?;
        Ok(Submitted(rx))
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
    pub fn failure(&self) -> Option<String> {
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

    /// The root hash at `size` (at most the current size).
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        let state = lock_state(&self.state);
        if size > state.edge.size() {
            return Err(ProofError::Range(format!(
                "size {size} > {}",
                state.edge.size()
            )));
        }
        let tiles = DiskTiles {
            dir: self.dir.clone(),
        };
        let reader = TreeReader {
            edge: &state.edge,
            full: &tiles,
        };
        tlog_tiles::tree_hash(size, &reader).map_err(|e| ProofError::Tree(e.to_string()))
    }

    /// An inclusion proof for entry `index` in the tree of size `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let state = lock_state(&self.state);
        if index >= size || size > state.edge.size() {
            return Err(ProofError::Range(format!("entry {index} in size {size}")));
        }
        let tiles = DiskTiles {
            dir: self.dir.clone(),
        };
        let reader = TreeReader {
            edge: &state.edge,
            full: &tiles,
        };
        super::tree::prove_inclusion(&reader, size, index)
            .map_err(|e| ProofError::Tree(e.to_string()))
    }

    /// A consistency proof from the tree of size `old` to the tree of size `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        let state = lock_state(&self.state);
        if old > new || new > state.edge.size() {
            return Err(ProofError::Range(format!("sizes {old} -> {new}")));
        }
        let tiles = DiskTiles {
            dir: self.dir.clone(),
        };
        let reader = TreeReader {
            edge: &state.edge,
            full: &tiles,
        };
        super::tree::prove_consistency(&reader, new, old)
            .map_err(|e| ProofError::Tree(e.to_string()))
    }

    /// The leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, ProofError> {
        let state = lock_state(&self.state);
        if index >= state.edge.size() {
            return Err(ProofError::Range(format!("entry {index}")));
        }
        let tiles = DiskTiles {
            dir: self.dir.clone(),
        };
        let reader = TreeReader {
            edge: &state.edge,
            full: &tiles,
        };
        use tlog_tiles::HashReader;
        reader
            .read_hashes(&[tlog_tiles::stored_hash_index(0, index)])
            .map_err(|e| ProofError::Tree(e.to_string()))?
            .first()
            .copied()
            .ok_or_else(|| ProofError::Tree("no hash".to_owned()))
    }

    /// A receipt for an appended entry, when a checkpoint already covers it.
    pub fn receipt(
        &self,
        appended: &Appended,
    ) -> Result<Option<super::receipt::Receipt>, ProofError> {
        let Some(checkpoint) = self.latest_checkpoint().filter(|c| c.size > appended.index) else {
            return Ok(None);
        };
        let proof = self.inclusion_proof(appended.index, checkpoint.size)?;
        Ok(Some(super::receipt::Receipt::new(
            appended.index,
            appended.leaf,
            &checkpoint,
            &proof,
        )))
    }

    /// Tile data for mirroring: a full tile from disk, or the current partial tile from
    /// memory, by C2SP level and index (`None` level for entry bundles are served from disk
    /// only when full).
    pub fn hash_tile(&self, level: u8, index: u64) -> Option<Vec<u8>> {
        let state = lock_state(&self.state);
        if level >= super::tree::tile_levels(state.edge.size()) {
            return None;
        }
        if state.edge.holds(level, index) {
            let data = state.edge.partial_tile(level);
            return (!data.is_empty()).then_some(data);
        }
        drop(state);
        std::fs::read(self.dir.join(storage::tile_rel(level, index))).ok()
    }

    /// Reads the entries from index `from` up to the current size, lazily: a bundle (or
    /// the write-ahead file) at a time, so memory stays bounded however long the log is.
    /// Appends made meanwhile are read once [`EntryReader::extend_to`] raises the end.
    pub fn entries_from(&self, from: u64) -> EntryReader {
        EntryReader {
            dir: self.dir.clone(),
            next: from,
            end: self.size(),
            batch: std::collections::VecDeque::new(),
        }
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

/// Entries of an open log read in order from its files (see [`AuditLog::entries_from`]).
#[derive(Debug)]
pub struct EntryReader {
    dir: PathBuf,
    /// The index of the next entry to return.
    next: u64,
    /// One past the last entry to return.
    end: u64,
    /// Entries read ahead, starting at `next`.
    batch: std::collections::VecDeque<Vec<u8>>,
}

impl EntryReader {
    /// The index of the next entry it returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Reads on up to `end` entries (the log's size at a later time; never lowered).
    pub fn extend_to(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// Reads the entries from `next` on: the rest of its full bundle, or the records of the
    /// write-ahead file. The writer moves entries from that file into a bundle while this
    /// reads, so an entry found in neither is looked for again.
    fn fill(&mut self) -> Result<(), StorageError> {
        let b = self.next / TILE_WIDTH as u64;
        for _ in 0..3 {
            let bundle = self.dir.join(storage::bundle_rel(b));
            match storage::read_bundle(&self.dir, b) {
                Ok(bytes) => {
                    let entries = storage::parse_bundle(&bytes)
                        .map_err(|e| storage::err(&bundle, format!("entry {}: {e}", self.next)))?;
                    let skip = usize::try_from(self.next % TILE_WIDTH as u64).unwrap_or(0);
                    self.batch
                        .extend(entries.into_iter().skip(skip).map(<[u8]>::to_vec));
                    return Ok(());
                }
                Err(_) if !bundle.exists() => {}
                Err(e) => return Err(e),
            }
            let wal_path = self.dir.join(WAL_FILE);
            let wal = storage::read_wal(&wal_path).map_err(|e| storage::err(&wal_path, e))?;
            for record in wal.records {
                let wanted = self.next + self.batch.len() as u64;
                if record.index == wanted && wanted < self.end {
                    self.batch.push_back(record.data);
                }
            }
            if !self.batch.is_empty() {
                return Ok(());
            }
        }
        Err(storage::err(
            &self.dir,
            format!(
                "entry {} is in neither a bundle nor the write-ahead file",
                self.next
            ),
        ))
    }
}

impl Iterator for EntryReader {
    type Item = Result<(u64, Vec<u8>), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            self.batch.clear();
            return None;
        }
        if self.batch.is_empty()
            && let Err(e) = self.fill()
        {
            return Some(Err(e));
        }
        let entry = self.batch.pop_front()?;
        let index = self.next;
        self.next += 1;
        Some(Ok((index, entry)))
    }
}

struct Writer {
    dir: PathBuf,
    origin: String,
    key: Arc<SigningKey>,
    interval: Duration,
    /// Where the newest signed checkpoint is also kept, outside the log directory.
    published: Option<PathBuf>,
    state: Arc<Mutex<State>>,
    wal: std::fs::File,
    /// Entries of the bundle being filled (also in the write-ahead file).
    pending: Vec<Vec<u8>>,
    /// When the oldest entry not covered by a checkpoint was written.
    unsigned_since: Option<Instant>,
    _lock: std::fs::File,
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Command>) {
        loop {
            let timeout = match self.unsigned_since {
                Some(since) => self.interval.saturating_sub(since.elapsed()),
                None => Duration::from_secs(3600),
            };
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
            if !appends.is_empty() {
                self.commit(appends);
            }
            let due = self
                .unsigned_since
                .is_some_and(|s| s.elapsed() >= self.interval);
            if due || !checkpoints.is_empty() {
                let result = self.sign_if_needed();
                for reply in checkpoints {
                    let _ = reply.send(result.clone());
                }
            }
        }
        // Closing: cover every entry with a checkpoint.
        let _ = self.sign_if_needed();
    }

    fn fail(&self, why: String) -> AuditAppendError {
        let mut state = lock_state(&self.state);
        if state.failed.is_none() {
            state.failed = Some(why.clone());
            state.failed_since_ms = Some(crate::timestamp::now_ms());
            state.failures += 1;
        }
        AuditAppendError::Failed(why)
    }

    fn commit(&mut self, appends: Vec<(Vec<u8>, Reply)>) {
        if let Some(why) = lock_state(&self.state).failed.clone() {
            for (_, reply) in appends {
                let _ = reply.send(Err(AuditAppendError::Failed(why.clone())));
            }
            return;
        }
        let mut edge = lock_state(&self.state).edge.clone();
        let mut buffer = Vec::new();
        let mut accepted = Vec::with_capacity(appends.len());
        for (entry, reply) in appends {
            if entry.is_empty() || entry.len() > storage::MAX_ENTRY_BYTES {
                let _ = reply.send(Err(AuditAppendError::Size(entry.len())));
                continue;
            }
            let index = edge.size() + accepted.len() as u64;
            storage::encode_record(&mut buffer, index, &entry);
            accepted.push((entry, reply));
        }
        if accepted.is_empty() {
            return;
        }
        use std::io::Write;
        if let Err(e) = self
            .wal
            .write_all(&buffer)
            .and_then(|()| self.wal.sync_data())
        {
            let err = self.fail(format!(
                "writing {}: {e}",
                self.dir.join(WAL_FILE).display()
            ));
            for (_, reply) in accepted {
                let _ = reply.send(Err(err.clone()));
            }
            return;
        }
        // Durable from here on: every entry will be answered Ok.
        let mut completed = Vec::new();
        let mut answers = Vec::with_capacity(accepted.len());
        let mut full_bundles = Vec::new();
        for (entry, reply) in accepted {
            let leaf = leaf_hash(&entry);
            let index = edge.size();
            edge.push(leaf, &mut completed);
            self.pending.push(entry);
            if self.pending.len() == TILE_WIDTH {
                full_bundles.push((index / TILE_WIDTH as u64, std::mem::take(&mut self.pending)));
            }
            answers.push((reply, Appended { index, leaf }));
        }
        if !full_bundles.is_empty()
            && let Err(e) = self.write_full(&full_bundles, &completed)
        {
            // The entries are durable in the write-ahead file and recovery will write
            // these files at the next open; accept nothing more until then.
            let _ = self.fail(e);
        }
        lock_state(&self.state).edge = edge;
        self.unsigned_since.get_or_insert_with(Instant::now);
        for (reply, appended) in answers {
            let _ = reply.send(Ok(appended));
        }
    }

    fn write_full(
        &mut self,
        bundles: &[(u64, Vec<Vec<u8>>)],
        tiles: &[FullTile],
    ) -> Result<(), String> {
        for (index, entries) in bundles {
            storage::write_atomic(
                &self.dir,
                &storage::bundle_rel(*index),
                &storage::encode_bundle(entries),
            )
            .map_err(|e| e.to_string())?;
        }
        write_tiles(&self.dir, tiles).map_err(|e| e.to_string())?;
        // Trim the write-ahead file to the entries of the bundle now being filled.
        let mut wal_bytes = storage::wal_header();
        let base = (bundles.last().map_or(0, |(i, _)| i + 1)) * TILE_WIDTH as u64;
        for (i, data) in self.pending.iter().enumerate() {
            storage::encode_record(&mut wal_bytes, base + i as u64, data);
        }
        storage::write_atomic(&self.dir, WAL_FILE, &wal_bytes).map_err(|e| e.to_string())?;
        self.wal = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join(WAL_FILE))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn sign_if_needed(&mut self) -> Result<VerifiedCheckpoint, AuditAppendError> {
        let (size, latest) = {
            let s = lock_state(&self.state);
            (s.edge.size(), s.latest.clone())
        };
        match latest {
            Some(c) if c.size == size => {
                self.unsigned_since = None;
                Ok(c)
            }
            _ if size == 0 => Err(AuditAppendError::Failed("the log is empty".to_owned())),
            _ => self.sign().map_err(|e| self.fail(e)),
        }
    }

    fn sign(&mut self) -> Result<VerifiedCheckpoint, String> {
        let (size, root) = {
            let s = lock_state(&self.state);
            (s.edge.size(), s.edge.root())
        };
        let note =
            checkpoint::sign(&self.origin, size, root, &self.key).map_err(|e| e.to_string())?;
        let history = self.dir.join(storage::HISTORY_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .map_err(|e| format!("{}: {e}", history.display()))?;
        use std::io::Write;
        file.write_all(&storage::encode_history(&note))
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("{}: {e}", history.display()))?;
        storage::write_atomic(&self.dir, storage::CHECKPOINT_FILE, &note)
            .map_err(|e| e.to_string())?;
        // Published last: it never runs ahead of the log's own files.
        if let Some(path) = &self.published {
            storage::write_file_atomic(path, &note).map_err(|e| e.to_string())?;
        }
        let verified = VerifiedCheckpoint { size, root, note };
        lock_state(&self.state).latest = Some(verified.clone());
        self.unsigned_since = None;
        Ok(verified)
    }
}
