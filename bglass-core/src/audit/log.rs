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

use super::checkpoint::{self, VerifiedCheckpoint};
use super::storage::{self, DiskTiles, StorageError, WAL_FILE};
use super::tree::{FullTile, Hash, TILE_WIDTH, TreeEdge, TreeReader, leaf_hash};
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
fn write_tiles(
    dir: &Path,
    tiles: &[FullTile],
    report: Option<&mut RecoveryReport>,
) -> Result<(), AuditOpenError> {
    let mut repaired = 0;
    for tile in tiles {
        let rel = storage::tile_rel(tile.level, tile.index);
        let path = dir.join(&rel);
        match std::fs::read(&path) {
            Ok(existing) if existing == tile.data => continue,
            Ok(existing) if existing.len() == tile.data.len() => {
                let first = tile.index << (8 * (u32::from(tile.level) + 1));
                return Err(corrupt(
                    first,
                    format!("hash tile {rel} differs from the hashes of the entries"),
                ));
            }
            // Missing or short: a write cut by a crash. Write it again.
            _ => {
                storage::write_atomic(dir, &rel, &tile.data)?;
                repaired += 1;
            }
        }
    }
    if let Some(report) = report {
        report.files_repaired += repaired;
    }
    Ok(())
}

struct Recovered {
    edge: TreeEdge,
    pending: Vec<Vec<u8>>,
    latest: Option<VerifiedCheckpoint>,
    report: RecoveryReport,
}

fn recover(
    config: &LogConfig,
    origin: &str,
    replay: &mut Replay<'_>,
) -> Result<Recovered, AuditOpenError> {
    let dir = &config.dir;
    let mut report = RecoveryReport::default();
    let mut edge = TreeEdge::new();
    let mut completed = Vec::new();

    // 1. Full bundles, in order; their tiles are recomputed and checked (or rewritten when
    //    a crash cut them short).
    let bundles = storage::count_bundles(dir);
    for b in 0..bundles {
        let bytes = storage::read_bundle(dir, b)?;
        let entries = storage::parse_bundle(&bytes).map_err(|e| {
            corrupt(
                b * TILE_WIDTH as u64,
                format!("bundle {}: {e}", storage::bundle_rel(b)),
            )
        })?;
        for entry in entries {
            let index = edge.size();
            replay(index, entry).map_err(|what| AuditOpenError::Replay { index, what })?;
            edge.push(leaf_hash(entry), &mut completed);
        }
        write_tiles(dir, &completed, Some(&mut report))?;
        completed.clear();
    }

    // 2. The write-ahead file: entries after the last full bundle. Records already in a
    //    bundle (a crash between writing the bundle and trimming the file) must match it.
    let wal = storage::read_wal(&dir.join(WAL_FILE))?;
    if let Some(why) = &wal.torn {
        let len = std::fs::metadata(dir.join(WAL_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        report.torn_bytes_dropped = len.saturating_sub(wal.valid_len);
        report.torn = Some(why.clone());
    }
    let mut pending: Vec<Vec<u8>> = Vec::new();
    for record in wal.records {
        let size = edge.size();
        if record.index < size {
            // Already in a full bundle: it must be the same entry.
            let bundle = storage::read_bundle(dir, record.index / TILE_WIDTH as u64)?;
            let entries = storage::parse_bundle(&bundle).map_err(|e| corrupt(record.index, e))?;
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
        pending.push(record.data);
        if pending.len() == TILE_WIDTH {
            // The bundle filled before the crash let it be written: write it now.
            let b = size / TILE_WIDTH as u64;
            storage::write_atomic(
                dir,
                &storage::bundle_rel(b),
                &storage::encode_bundle(&pending),
            )?;
            report.files_repaired += 1;
            pending.clear();
        }
        write_tiles(dir, &completed, Some(&mut report))?;
        completed.clear();
    }
    // Rewrite the write-ahead file to hold exactly the pending entries (drops a torn tail).
    let mut wal_bytes = storage::wal_header();
    let first = edge.size() - pending.len() as u64;
    for (i, data) in pending.iter().enumerate() {
        storage::encode_record(&mut wal_bytes, first + i as u64, data);
    }
    storage::write_atomic(dir, WAL_FILE, &wal_bytes)?;
    report.entries = edge.size();

    // 3. The latest checkpoint must be signed by this proxy and match the entries.
    let (history, _, _) = storage::read_history(&dir.join(storage::HISTORY_FILE))?;
    let mut latest = None;
    if let Some(note) = history.last() {
        let verified = checkpoint::verify(note, origin, &config.key.public_key())
            .map_err(|e| corrupt(edge.size(), format!("latest checkpoint: {e}")))?;
        if verified.size > edge.size() {
            return Err(corrupt(
                edge.size(),
                format!(
                    "the latest checkpoint covers {} entries but only {} are on disk: acknowledged entries are missing",
                    verified.size,
                    edge.size()
                ),
            ));
        }
        let tiles = DiskTiles { dir: dir.clone() };
        let reader = TreeReader {
            edge: &edge,
            full: &tiles,
        };
        let root = tlog_tiles::tree_hash(verified.size, &reader)
            .map_err(|e| corrupt(verified.size, format!("cannot compute the root: {e}")))?;
        if root != verified.root {
            return Err(corrupt(
                0,
                format!(
                    "the latest checkpoint (size {}) does not match the entries",
                    verified.size
                ),
            ));
        }
        latest = Some(verified);
    }
    Ok(Recovered {
        edge,
        pending,
        latest,
        report,
    })
}

impl AuditLog {
    /// Opens (or creates) the log in `config.dir`, recovering from any crash, and calls
    /// `replay` with every entry in order before any new entry can be appended.
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
        // Leftovers of writes cut by a crash; their targets are rewritten below if needed.
        if let Ok(entries) = std::fs::read_dir(dir.join(storage::TMP_DIR)) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let origin = checkpoint::origin(&config.proxy);
        let recovered = recover(&config, &origin, &mut replay)?;
        let mut report = recovered.report;
        let state = Arc::new(Mutex::new(State {
            edge: recovered.edge,
            latest: recovered.latest,
            failed: None,
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
            state: Arc::clone(&state),
            wal,
            pending: recovered.pending,
            unsigned_since: None,
            _lock: lock,
        };
        // Entries with no checkpoint yet (recovered after a crash) get one now.
        let needs = {
            let s = lock_state(&state);
            s.edge.size() > s.latest.as_ref().map_or(0, |c| c.size)
        };
        if needs {
            writer.sign().map_err(|e| corrupt(0, e))?;
            report.checkpoint_signed = true;
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

struct Writer {
    dir: PathBuf,
    origin: String,
    key: Arc<SigningKey>,
    interval: Duration,
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
        state.failed.get_or_insert(why.clone());
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
        write_tiles(&self.dir, tiles, None).map_err(|e| e.to_string())?;
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
        let verified = VerifiedCheckpoint { size, root, note };
        lock_state(&self.state).latest = Some(verified.clone());
        self.unsigned_since = None;
        Ok(verified)
    }
}
