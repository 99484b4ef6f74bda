//! Opening a log: every file read and checked (entries replayed, tiles, checkpoints, the
//! published checkpoint), the crash artefacts found — a torn tail of the write-ahead file
//! or of the checkpoint history, a missing or short tile, a bundle or checkpoint file left
//! short — and what to write to repair them decided; nothing is written until every check
//! has passed (a refused open changes no file).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;

use super::super::checkpoint::{self, VerifiedCheckpoint};
use super::super::event::EventKind;
use super::super::storage::{self, DiskTiles, Entry, WAL_FILE};
use super::super::tree::{
    FullTile, HASH_SIZE, Hash, TILE_WIDTH, TreeEdge, leaf_hash, subtree_root, tile_offset,
};
use super::{AuditOpenError, LogConfig, RecoveryReport, Replay, Rollback, corrupt};

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
pub(super) fn recompute_tile(dir: &Path, level: u8, index: u64) -> Result<Vec<u8>, AuditOpenError> {
    let hashes: Vec<Hash> = if level == 0 {
        let bytes = storage::read_bundle(dir, index)?;
        storage::parse_bundle(&bytes)
            .map_err(|e| corrupt(index * TILE_WIDTH as u64, e))?
            .into_iter()
            .map(leaf_hash)
            .collect()
    } else {
        use super::super::tree::FullTiles;
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
pub(super) struct Repairs {
    /// Full bundles whose entries are only in the write-ahead file: (index, bytes).
    pub bundles: Vec<(u64, Vec<u8>)>,
    /// Full tiles missing or short on disk, recomputed from what is below them.
    pub tiles: Vec<(u8, u64)>,
    /// The write-ahead file's new bytes, when it must change (a torn tail to cut, records
    /// now in bundles to trim, or no file yet).
    pub wal: Option<Vec<u8>>,
    /// The checkpoint history's valid length, when a torn tail must be cut.
    pub history_cut: Option<u64>,
    /// A note to append to the history (the latest checkpoint, when the history lost it).
    pub history_append: Option<Vec<u8>>,
    /// The `checkpoint` file's new content, when it is missing, short or behind.
    pub checkpoint_file: Option<Vec<u8>>,
}

pub(super) struct Recovered {
    pub edge: TreeEdge,
    /// The entries the write-ahead file holds once repaired, from index `wal_base`: the
    /// bundle being filled, and the last full bundle when the file still holds it.
    pub wal_entries: Vec<Entry>,
    /// The index of the first of them.
    pub wal_base: u64,
    /// The full bundles on disk once repaired.
    pub bundles: u64,
    /// The checkpoint history's length once repaired.
    pub history_len: u64,
    pub latest: Option<VerifiedCheckpoint>,
    /// The published checkpoint, when the file exists.
    pub published: Option<VerifiedCheckpoint>,
    /// A rollback that was found and accepted.
    pub rollback: Option<Rollback>,
    pub repairs: Repairs,
    pub report: RecoveryReport,
}

/// One bundle, read and hashed on a reader thread.
struct ReadBundle {
    bundle: u64,
    /// Its bytes and the byte ranges of its entries, or why it is not a readable full
    /// bundle.
    contents: Result<(Vec<u8>, Vec<std::ops::Range<usize>>), AuditOpenError>,
    leaves: Vec<Hash>,
    /// The subtree root of its 256 leaves.
    root: Hash,
}

impl ReadBundle {
    fn read(dir: &Path, bundle: u64) -> Self {
        let contents = storage::read_bundle(dir, bundle)
            .map_err(AuditOpenError::Storage)
            .and_then(|bytes| {
                let ranges = storage::bundle_ranges(&bytes).map_err(|e| {
                    corrupt(
                        bundle * TILE_WIDTH as u64,
                        format!("bundle {}: {e}", storage::bundle_rel(bundle)),
                    )
                })?;
                Ok((bytes, ranges))
            });
        let leaves: Vec<Hash> = match &contents {
            Ok((b, r)) => r.iter().map(|r| leaf_hash(&b[r.clone()])).collect(),
            Err(_) => Vec::new(),
        };
        let root = subtree_root(&leaves);
        Self {
            bundle,
            contents,
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

/// The latest checkpoint, from the end of the history and the `checkpoint` file, with what
/// must be repaired so that both hold it: a torn history tail (cut short, or a last note
/// that does not verify) is cut; a `checkpoint` file that is missing, short, garbled or
/// behind the history is rewritten; a history that lost the note the file holds gets it
/// again.
fn latest_checkpoint(
    dir: &Path,
    origin: &str,
    key: &crate::keys::PublicKey,
    repairs: &mut Repairs,
    report: &mut RecoveryReport,
) -> Result<(Option<VerifiedCheckpoint>, u64), AuditOpenError> {
    let history_path = dir.join(storage::HISTORY_FILE);
    let end = storage::history_end(&history_path).map_err(|e| corrupt(0, e))?;
    let file_len = std::fs::metadata(&history_path).map_or(0, |m| m.len());
    let mut history_len = end.valid_len;
    let mut torn = end.torn.clone();
    let verify = |note: &[u8]| checkpoint::verify(note, origin, key);
    let mut from_history = match &end.last {
        None => None,
        Some((at, note)) => match verify(note) {
            Ok(v) => Some(v),
            // Only the last note may be torn (written when the crash came): cut it.
            Err(e) if end.torn.is_none() && e.is_unreadable() => {
                history_len = *at;
                torn = Some(format!(
                    "its last note (at byte {at}) does not verify ({e}): written when a crash came"
                ));
                match &end.before_last {
                    None => None,
                    Some((_, note)) => Some(verify(note).map_err(|e| {
                        corrupt(
                            0,
                            format!("the checkpoint history's note before its torn last one: {e}"),
                        )
                    })?),
                }
            }
            Err(e) => {
                return Err(corrupt(
                    0,
                    format!("the checkpoint history's last complete note: {e}"),
                ));
            }
        },
    };
    if let Some(why) = torn {
        report.history_torn_bytes = file_len.saturating_sub(history_len);
        report.history_torn = Some(why);
        repairs.history_cut = Some(history_len);
    }
    let file_path = dir.join(storage::CHECKPOINT_FILE);
    // A short or garbled file is what a crash can leave (it is rewritten); a whole note
    // that fails its signature is not.
    let from_file = match storage::read_bounded(&file_path, checkpoint::MAX_CHECKPOINT_BYTES as u64)
    {
        Ok(note) => match verify(&note) {
            Ok(v) => Some(v),
            Err(e) if e.is_unreadable() => None,
            Err(e) => return Err(corrupt(0, format!("the checkpoint file: {e}"))),
        },
        Err(_) if !file_path.exists() => None,
        Err(e) => return Err(e.into()),
    };
    let latest = match (&from_history, &from_file) {
        (Some(h), Some(f)) if h.size == f.size && h.root != f.root => {
            return Err(corrupt(
                h.size,
                "the checkpoint file and the checkpoint history hold different checkpoints of the same size",
            ));
        }
        (Some(h), Some(f)) if f.size > h.size => Some(f.clone()),
        (Some(h), _) => Some(h.clone()),
        (None, f) => f.clone(),
    };
    if let Some(latest) = &latest {
        if from_history.as_ref().is_none_or(|h| h.size < latest.size) {
            // The history lost the note the file still holds (its tail was torn after).
            repairs.history_append = Some(latest.note.clone());
            history_len += storage::history_record_len(latest.note.len());
            from_history = Some(latest.clone());
        }
        if from_file.as_ref().is_none_or(|f| f.size < latest.size) {
            report.checkpoint_file_repaired = true;
            repairs.checkpoint_file = Some(latest.note.clone());
        }
    }
    let _ = from_history;
    Ok((latest, history_len))
}

/// Reads and checks everything, replaying every entry, and decides what must be written;
/// writes nothing.
pub(super) fn recover(
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

    // The checkpoints the entries must match: the latest one of the log, and the newest
    // one published (kept outside the log). Their roots are taken as the walk passes them.
    let (latest, history_len) = latest_checkpoint(dir, origin, &public, &mut repairs, &mut report)?;
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

    // The write-ahead file, read first: it may hold the last full bundle's entries too,
    // which rebuild that bundle when a crash left it short.
    let wal_path = dir.join(WAL_FILE);
    let wal = storage::read_wal(&wal_path).map_err(|e| match e.index() {
        Some(index) => corrupt(index, &e),
        None => match e {
            storage::WalError::Storage(s) => AuditOpenError::Storage(s),
            other => corrupt(0, other),
        },
    })?;
    let mut bundles = storage::count_bundles(dir);
    if bundles > 0 {
        let last = bundles - 1;
        let base = last * TILE_WIDTH as u64;
        let held = wal
            .records
            .iter()
            .filter(|r| r.index >= base && r.index < base + TILE_WIDTH as u64)
            .count();
        let parses = storage::read_bundle(dir, last)
            .ok()
            .is_some_and(|b| storage::parse_bundle(&b).is_ok());
        if !parses && held == TILE_WIDTH {
            // Rebuilt from the write-ahead file below, like a bundle never written.
            bundles = last;
            report.bundle_rebuilt = Some(last);
        }
    }

    // 1. Full bundles, in order: reader threads read and hash them while this thread
    //    replays their entries and checks the tiles on disk against the hashes.
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
        // Bundle b comes from reader b % readers: the receivers in turn.
        for (b, rx) in (0..bundles).zip(receivers.iter().cycle()) {
            let Ok(read) = rx.recv() else {
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
    //    bundle (the last full one, kept until the next is full, or a crash between writing
    //    a bundle and trimming the file) must match it.
    let mut wal_changes = !wal_path.exists();
    if let Some(why) = &wal.torn {
        report.torn_bytes_dropped = wal.torn_bytes;
        report.torn = Some(why.clone());
        wal_changes = true;
    }
    let keep_from = bundles.saturating_sub(1) * TILE_WIDTH as u64;
    let mut wal_entries: Vec<Entry> = Vec::new();
    let mut wal_base: Option<u64> = None;
    let mut last_bundle: Option<(u64, Vec<u8>)> = None;
    for record in wal.records {
        let size = edge.size();
        if record.index < size {
            // Already in a full bundle: it must be the same entry.
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
            if entries.get(tile_offset(record.index)) != Some(&record.data.as_bytes()) {
                return Err(corrupt(
                    record.index,
                    "the write-ahead file and the bundle disagree",
                ));
            }
            if record.index >= keep_from && wal_base.is_none_or(|b| record.index >= b) {
                wal_base.get_or_insert(record.index);
                wal_entries.push(record.data);
            } else {
                wal_changes = true;
            }
            continue;
        }
        if record.index > size {
            return Err(corrupt(
                size,
                format!("entries {size}..{} are missing", record.index),
            ));
        }
        replay(size, record.data.as_bytes()).map_err(|source| AuditOpenError::Replay {
            index: size,
            source,
        })?;
        edge.push(leaf_hash(record.data.as_bytes()), &mut completed);
        note_root(&edge, &mut wanted);
        let base = *wal_base.get_or_insert(size);
        wal_entries.push(record.data);
        if (size + 1).is_multiple_of(TILE_WIDTH as u64) {
            // The bundle filled before the crash let it be written: write it once checked.
            let b = size / TILE_WIDTH as u64;
            let first = (b * TILE_WIDTH as u64)
                .checked_sub(base)
                .and_then(|first| usize::try_from(first).ok())
                .filter(|first| *first < wal_entries.len())
                .ok_or_else(|| {
                    corrupt(size, "the write-ahead file does not hold the whole bundle")
                })?;
            repairs
                .bundles
                .push((b, storage::encode_bundle(&wal_entries[first..])));
            // Keep this bundle (now the last full one) in the file; drop older records.
            if first > 0 {
                wal_entries.drain(..first);
                wal_base = Some(b * TILE_WIDTH as u64);
                wal_changes = true;
            }
        }
        for tile in completed.drain(..) {
            if let TileOnDisk::Missing = check_tile(dir, &tile)? {
                repairs.tiles.push((tile.level, tile.index));
            }
        }
    }
    let bundles_after = edge.size() / TILE_WIDTH as u64;
    let wal_base = wal_base.unwrap_or(edge.size());
    if wal_changes {
        // Exactly the kept entries (drops a torn tail and records of older bundles).
        let mut wal_bytes = storage::wal_header();
        for (i, data) in wal_entries.iter().enumerate() {
            storage::encode_record(&mut wal_bytes, wal_base + i as u64, data);
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
                    "the latest checkpoint covers {} entries but only {} are on disk: acknowledged entries are missing{}",
                    latest.size,
                    edge.size(),
                    report
                        .torn
                        .as_ref()
                        .map(|t| format!(" (the write-ahead file's tail is damaged: {t})"))
                        .unwrap_or_default()
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
        wal_entries,
        wal_base,
        bundles: bundles_after,
        history_len,
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
    let (bytes, ranges) = read.contents?;
    for (i, range) in ranges.iter().enumerate() {
        let index = base + i as u64;
        replay(index, &bytes[range.clone()])
            .map_err(|source| AuditOpenError::Replay { index, source })?;
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
pub(super) fn rollback_kind(rollback: &Rollback) -> EventKind {
    EventKind::LogRollback {
        published_size: rollback.published_size,
        published_root: rollback.published_root.clone(),
        size: rollback.size,
        detail: format!("{rollback}; accepted by the operator"),
    }
}
