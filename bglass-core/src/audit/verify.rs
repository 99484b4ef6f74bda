//! Offline verification of a copied log directory: every entry, bundle, tile, hash,
//! checkpoint signature, and the agreement of every stored checkpoint with the entries.
//!
//! Verification recomputes the whole tree from the entries and compares it with what is
//! stored. The entries and the signed checkpoints are the evidence; tiles are derived data,
//! so when a tile disagrees with entries that agree with the signatures, the tile is what
//! was replaced. The first defect in log order is reported with its index.

use std::collections::BTreeMap;
use std::path::Path;

use super::checkpoint::{self, CheckpointError};
use super::event::{Event, EventKind};
use super::rotation::{KeyChain, KeyTransition};
use super::storage::{self, WAL_FILE};
use super::tree::{FullTile, HASH_SIZE, Hash, TILE_WIDTH, TreeEdge, leaf_hash};
use crate::id::ProxyId;
use crate::keys::PublicKey;

mod bundles;
mod checkpoints;
mod head;
use bundles::{Hashed, first_proxy, rotation_at};
use checkpoints::{rescan_checkpoints, scan_checkpoints};
use head::check_head;

/// Where the key that checked the signatures came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Given by the auditor (obtained out of band): the strong check.
    Given,
    /// Read from the log's first entry: only shows the log is self-consistent.
    RecordedAtStart,
}

/// A log that verified.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The largest verified checkpoint: size and root.
    pub latest: Option<(u64, Hash)>,
    /// The proxy whose log this is.
    pub proxy: ProxyId,
    /// The key that verified the checkpoints.
    pub key: PublicKey,
    /// Where that key came from.
    pub key_source: KeySource,
    /// The rotations of the signing key the log records, each signed by both keys; `key`
    /// is the one in force after the last.
    pub rotations: Vec<KeyTransition>,
    /// Things an auditor should know that are not defects.
    pub warnings: Vec<String>,
}

/// What kind of defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DefectKind {
    /// A file could not be read.
    Unreadable,
    /// An entry bundle is cut short or malformed.
    BundleDamaged,
    /// An entry is not a valid event.
    EntryMalformed,
    /// An entry's hash differs from the stored tree and the signed checkpoints: it was
    /// altered, removed, inserted or moved.
    EntryAltered,
    /// A stored hash tile differs while the entries agree with the signed checkpoints.
    TileReplaced,
    /// A hash tile is missing.
    TileMissing,
    /// Entries are missing (a gap, or a tail cut below what a checkpoint covers).
    EntriesMissing,
    /// A record of the write-ahead file is damaged in a way no crash leaves (valid records
    /// follow it, or it is whole but altered).
    RecordDamaged,
    /// No key to check signatures against.
    NoKey,
    /// A checkpoint's signature does not verify: it was altered.
    CheckpointAltered,
    /// A checkpoint was signed by another key.
    CheckpointWrongKey,
    /// A checkpoint is malformed or for another log.
    CheckpointMalformed,
    /// A rotation of the signing key is not signed by both its keys, names another entry,
    /// or does not start from the key in force.
    RotationInvalid,
    /// A correctly signed checkpoint commits to a different tree than the entries: the log
    /// was rewritten, or the proxy signed two inconsistent views (a fork).
    CheckpointFork,
}

/// The first defect found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{what}", self.place())]
pub struct Defect {
    /// The entry (or tree size) where it is.
    pub index: Option<u64>,
    /// What kind.
    pub kind: DefectKind,
    /// What is wrong, in a sentence.
    pub what: String,
}

impl Defect {
    /// Where the defect is, as a prefix: an entry, or the tree size a checkpoint claims.
    fn place(&self) -> String {
        let checkpoint = matches!(
            self.kind,
            DefectKind::CheckpointAltered
                | DefectKind::CheckpointWrongKey
                | DefectKind::CheckpointMalformed
                | DefectKind::CheckpointFork
        );
        match (self.index, checkpoint) {
            (Some(i), false) => format!("entry {i}: "),
            (Some(i), true) => format!("tree size {i}: "),
            (None, _) => String::new(),
        }
    }
}

fn defect(index: Option<u64>, kind: DefectKind, what: impl Into<String>) -> Defect {
    Defect {
        index,
        kind,
        what: what.into(),
    }
}

/// A tile that disagreed with the entries (kept until the checkpoints say which is wrong).
struct TileDiff {
    first_entry: u64,
    rel: String,
    position: usize,
    missing: bool,
}

/// Verifies the log in `dir`. `key` is the proxy's public key obtained out of band; without
/// it, the key recorded in the log's first entry is used and a warning says so.
///
/// The log may be live (a proxy writing it while it is read): the checkpoints are taken as
/// they stand before the entries are read, and only those are checked. Every one of them
/// was signed after the entries it covers were durable, so the entries read afterwards
/// hold them; a checkpoint signed while the entries are read may cover entries read too
/// early, and is left for the next verification. A write-ahead file trimmed after the
/// bundles were counted is read after the bundles written since.
pub fn verify_dir(dir: &Path, key: Option<PublicKey>) -> Result<VerifyReport, Defect> {
    verify_dir_with(dir, key, |_| {})
}

/// A point of [`verify_dir_with`] where a live writer may change the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// The bundles counted are read; the write-ahead file is next.
    BundlesRead,
    /// The entries are read; the checkpoints are checked against them next.
    EntriesRead,
}

/// [`verify_dir`], calling `at` at each [`Stage`] it reaches.
pub(super) fn verify_dir_with(
    dir: &Path,
    key: Option<PublicKey>,
    mut at: impl FnMut(Stage),
) -> Result<VerifyReport, Defect> {
    let mut warnings = Vec::new();
    // The checkpoints are streamed twice (their sizes now, their signatures once the
    // entries are walked), so a long history is never held in memory. The second pass
    // sees exactly the notes the first one saw.
    let mut wanted: BTreeMap<u64, Option<Hash>> = BTreeMap::new();
    let checkpoints = scan_checkpoints(dir, &mut warnings, |_, note| {
        if let Some((_, size, _)) = checkpoint::peek(note) {
            wanted.insert(size, None);
        }
    })?;

    let mut edge = TreeEdge::new();
    let mut completed = Vec::new();
    let mut tile_diff: Option<TileDiff> = None;
    let mut proxy: Option<ProxyId> = None;
    let mut recorded_key: Option<PublicKey> = None;
    let mut transitions: Vec<KeyTransition> = Vec::new();
    let mut on_entry = |index: u64,
                        entry: &[u8],
                        leaf: Hash,
                        edge: &mut TreeEdge,
                        completed: &mut Vec<FullTile>|
     -> Result<Option<KeyTransition>, Defect> {
        if index == 0 {
            let event = Event::from_bytes(entry)
                .map_err(|e| defect(Some(index), DefectKind::EntryMalformed, e.to_string()))?;
            if let EventKind::ProxyStart { key, .. } = &event.event {
                recorded_key = Some(*key);
            }
            proxy = Some(event.proxy.clone());
        } else if let Some(p) = &proxy {
            check_head(entry, p.as_str()).map_err(|what| {
                defect(Some(index), DefectKind::EntryMalformed, what.to_string())
            })?;
        }
        edge.push(leaf, completed);
        rotation_at(index, entry)
    };
    let note_root = |edge: &TreeEdge, wanted: &mut BTreeMap<u64, Option<Hash>>| {
        if let Some(root) = wanted.get_mut(&edge.size()) {
            *root = Some(edge.root());
        }
    };

    // Full bundles, then the entries after them. Reading stops at the first entry that is
    // not a valid event; a tile disagreement is noted and judged once checkpoints are known.
    let mut entry_defect: Option<Defect> = None;
    let mut short_tiles: Vec<String> = Vec::new();
    // Every tile the checkpoints' proofs read was written before they were signed; one past
    // the largest may not be written yet.
    let covered = wanted.keys().next_back().copied().unwrap_or(0);
    let mut bundles = storage::count_bundles(dir);
    // The write-ahead file keeps the last full bundle's entries until the next bundle is
    // full: a last bundle a crash left short is read from there instead.
    if bundles > 0 {
        let last = bundles - 1;
        let base = last * TILE_WIDTH as u64;
        let parses = storage::read_bundle(dir, last)
            .ok()
            .is_some_and(|b| storage::parse_bundle(&b).is_ok());
        let held = storage::read_wal(&dir.join(WAL_FILE)).ok().map_or(0, |w| {
            w.records
                .iter()
                .filter(|r| r.index >= base && r.index < base + TILE_WIDTH as u64)
                .count()
        });
        if !parses && held == TILE_WIDTH {
            bundles = last;
            warnings.push(format!(
                "{} is torn (cut short or garbled by a crash); its entries are whole in {WAL_FILE} and were read from there (opening the log rewrites it)",
                storage::bundle_rel(last)
            ));
        }
    }
    let head_proxy = first_proxy(dir);
    let head_proxy = &head_proxy;
    // The bundles from `walked` to `bundles`, then the write-ahead file. A live writer
    // trims that file once bundles hold its first entries: when it starts after the bundles
    // walked, the bundles written since (counted again) hold the entries between.
    let mut walked = 0u64;
    loop {
        std::thread::scope(|scope| {
            // Reader threads read bundles and hash their entries (bundle b on thread b % n)
            // while this thread walks the previous ones through the tree in order.
            let readers = std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .clamp(1, 4) as u64;
            let receivers: Vec<_> = (0..readers)
                .map(|r| {
                    let (tx, rx) = std::sync::mpsc::sync_channel::<Hashed>(4);
                    scope.spawn(move || {
                        let mut b = walked + r;
                        while b < bundles {
                            if tx
                                .send(Hashed::read(dir, b, head_proxy.as_deref()))
                                .is_err()
                            {
                                break; // the walker stopped at a defect
                            }
                            b += readers;
                        }
                    });
                    rx
                })
                .collect();
            // Bundle b comes from reader b % readers: the receivers in turn.
            let in_order = (walked..bundles)
                .zip(receivers.iter().cycle())
                .map_while(|(_, rx)| rx.recv().ok());
            for hashed in in_order {
                let b = hashed.bundle;
                let base = b * TILE_WIDTH as u64;
                let bytes = match &hashed.data {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        entry_defect =
                            Some(defect(Some(base), DefectKind::Unreadable, e.to_string()));
                        break;
                    }
                };
                // The stored leaf hashes of this bundle pinpoint a removed, inserted or moved
                // entry even when the bundle no longer holds 256 entries.
                let rel0 = storage::tile_rel(0, b);
                let stored0 =
                    storage::read_bounded(&dir.join(&rel0), (TILE_WIDTH * HASH_SIZE) as u64).ok();
                // Fast path: a whole, well-formed bundle at a boundary, no checkpoint inside it.
                let inside = wanted
                    .range(base + 1..base + TILE_WIDTH as u64)
                    .next()
                    .is_some();
                let whole = match (hashed.root, &hashed.damage, &hashed.bad_head) {
                    (Some(root), None, None) if !inside && b > 0 && edge.size() == base => {
                        Some(root)
                    }
                    _ => None,
                };
                if let Some(root) = whole {
                    // The level-0 tile is exactly these leaves; compare_tiles finds any difference.
                    edge.push_bundle(&hashed.leaves, root, &mut completed);
                    note_root(&edge, &mut wanted);
                    for &p in &hashed.rotations {
                        match rotation_at(base + p as u64, &bytes[hashed.ranges[p].clone()]) {
                            Ok(t) => transitions.extend(t),
                            Err(d) => {
                                entry_defect.get_or_insert(d);
                            }
                        }
                    }
                    if entry_defect.is_some() {
                        break;
                    }
                } else {
                    let mut stop = false;
                    for (position, (range, leaf)) in
                        hashed.ranges.iter().zip(&hashed.leaves).enumerate()
                    {
                        let index = edge.size();
                        if tile_diff.is_none()
                            && let Some(stored) = &stored0
                            && let Some(hash) =
                                stored.get(position * HASH_SIZE..(position + 1) * HASH_SIZE)
                            && hash != &leaf.0[..]
                        {
                            tile_diff = Some(TileDiff {
                                first_entry: base + position as u64,
                                rel: rel0.clone(),
                                position,
                                missing: false,
                            });
                        }
                        let entry = &bytes[range.clone()];
                        match on_entry(index, entry, *leaf, &mut edge, &mut completed) {
                            Ok(t) => transitions.extend(t),
                            Err(d) => {
                                entry_defect = Some(d);
                                stop = true;
                                break;
                            }
                        }
                        note_root(&edge, &mut wanted);
                    }
                    if stop {
                        break;
                    }
                }
                compare_tiles(
                    dir,
                    &completed,
                    covered,
                    &mut tile_diff,
                    &mut short_tiles,
                    stored0.as_deref().map(|d| (b, d)),
                );
                completed.clear();
                if let Some(damage) = &hashed.damage {
                    entry_defect = Some(defect(
                        Some(base + hashed.ranges.len() as u64),
                        DefectKind::BundleDamaged,
                        format!("{}: {damage}", storage::bundle_rel(b)),
                    ));
                    break;
                }
            }
        });
        walked = bundles;
        at(Stage::BundlesRead);
        if entry_defect.is_none() {
            let wal = storage::read_wal(&dir.join(WAL_FILE));
            if let Ok(wal) = &wal
                && wal.records.first().is_some_and(|r| r.index > edge.size())
            {
                let now = storage::count_bundles(dir);
                if now > bundles {
                    bundles = now;
                    continue;
                }
            }
            match wal {
                Err(e) => {
                    let (index, kind) = match e.index() {
                        Some(index) => (index, DefectKind::RecordDamaged),
                        None => (edge.size(), DefectKind::Unreadable),
                    };
                    entry_defect = Some(defect(Some(index), kind, e.to_string()));
                }
                Ok(wal) => {
                    for record in wal.records {
                        let size = edge.size();
                        if record.index < size {
                            continue;
                        }
                        if record.index > size {
                            entry_defect = Some(defect(
                                Some(size),
                                DefectKind::EntriesMissing,
                                format!(
                                    "entries {size}..{} are missing from {WAL_FILE}",
                                    record.index
                                ),
                            ));
                            break;
                        }
                        let leaf = leaf_hash(record.data.as_bytes());
                        match on_entry(
                            size,
                            record.data.as_bytes(),
                            leaf,
                            &mut edge,
                            &mut completed,
                        ) {
                            Ok(t) => transitions.extend(t),
                            Err(d) => {
                                entry_defect = Some(d);
                                break;
                            }
                        }
                        note_root(&edge, &mut wanted);
                        compare_tiles(
                            dir,
                            &completed,
                            covered,
                            &mut tile_diff,
                            &mut short_tiles,
                            None,
                        );
                        completed.clear();
                    }
                    if let Some(why) = wal.torn {
                        warnings.push(format!(
                        "{WAL_FILE} has a torn tail after entry {} ({} bytes: {why}): an append a crash cut short or garbled; no checkpoint covers it, so nothing acknowledged was lost",
                        edge.size().saturating_sub(1),
                        wal.torn_bytes
                    ));
                    }
                }
            }
        }
        break;
    }
    let entries = edge.size();
    at(Stage::EntriesRead);
    warnings.append(&mut short_tiles);
    if let Some(d) = entry_defect.as_ref().filter(|d| d.index == Some(0)) {
        return Err(d.clone());
    }
    if entries == 0 {
        if let Some(d) = entry_defect {
            return Err(d);
        }
        return Err(defect(
            None,
            DefectKind::EntriesMissing,
            "the log holds no entries",
        ));
    }
    let proxy = proxy.ok_or_else(|| defect(Some(0), DefectKind::EntryMalformed, "no proxy id"))?;
    let origin = checkpoint::origin(&proxy);
    let (key, key_source) = match (key, recorded_key) {
        (Some(k), _) => (k, KeySource::Given),
        (None, Some(k)) => {
            warnings.push(format!(
                "checked against the key recorded in entry 0 ({k}); pass --key with the proxy's key obtained out of band to rule out a wholesale forgery"
            ));
            (k, KeySource::RecordedAtStart)
        }
        (None, None) => {
            return Err(defect(
                Some(0),
                DefectKind::NoKey,
                "entry 0 is not a proxy_start event recording the signing key; pass --key",
            ));
        }
    };
    // The chain of keys from entry 0's through each recorded rotation, every link signed
    // by both its keys; a given key anywhere on it vouches for the whole chain.
    let mut chain = KeyChain::new(&origin, recorded_key.unwrap_or(key));
    let mut rotation_defect: Option<Defect> = None;
    for t in transitions {
        let index = t.index;
        if let Err(e) = chain.push(index, t) {
            rotation_defect = Some(defect(
                Some(index),
                DefectKind::RotationInvalid,
                e.to_string(),
            ));
            break;
        }
    }
    if key_source == KeySource::Given && !chain.contains(&key) {
        warnings.push(
            "the key recorded in entry 0 differs from the key given; the given key was used"
                .to_owned(),
        );
        chain = KeyChain::new(&origin, key);
    }

    // Checkpoints: signature, then agreement with the entries. Those that agree are found
    // first, so that a disagreeing one can be named against the nearest one that agrees.
    let mut checkpoint_defect: Option<Defect> = None;
    // Agreeing checkpoints by size (the first of each), and the first fork: (size, position).
    let mut agreeing: BTreeMap<u64, u64> = BTreeMap::new();
    let mut fork: Option<(u64, u64)> = None;
    let mut latest: Option<(u64, Hash)> = None;
    let mut torn_notes: Vec<String> = Vec::new();
    let mut check = |position: u64, note: &[u8]| {
        let label = checkpoints.label(position);
        // Signed by the key in force after the rotations among the entries it covers.
        let key =
            checkpoint::peek(note).map_or(chain.current(), |(_, size, _)| chain.key_for(size));
        let verified = match checkpoint::verify(note, &origin, &key) {
            Ok(v) => v,
            // A crash can leave the note being appended garbled (the last of the history),
            // and the `checkpoint` file is only a copy of a history note: neither is
            // evidence of alteration when nothing follows it.
            Err(e) if checkpoints.torn_candidate(position) && e.is_unreadable() => {
                torn_notes.push(format!(
                    "{label} does not verify ({e}): the note a crash interrupted; the checkpoints before it stand"
                ));
                return;
            }
            Err(e) => {
                let kind = match e {
                    CheckpointError::BadSignature => DefectKind::CheckpointAltered,
                    CheckpointError::WrongKey { .. } => DefectKind::CheckpointWrongKey,
                    _ => DefectKind::CheckpointMalformed,
                };
                let index = checkpoint::peek(note).map(|(_, s, _)| s);
                checkpoint_defect.get_or_insert(defect(index, kind, format!("{label}: {e}")));
                return;
            }
        };
        if verified.size > entries {
            checkpoint_defect.get_or_insert(defect(
                Some(entries),
                DefectKind::EntriesMissing,
                format!(
                    "{label} covers {} entries but the log holds {entries}: entries {entries}..{} are missing (tail truncated)",
                    verified.size, verified.size
                ),
            ));
            return;
        }
        if wanted.get(&verified.size).copied().flatten() == Some(verified.root) {
            agreeing.entry(verified.size).or_insert(position);
            if latest.is_none_or(|(s, _)| verified.size >= s) {
                latest = Some((verified.size, verified.root));
            }
        } else {
            fork.get_or_insert((verified.size, position));
        }
    };
    rescan_checkpoints(dir, &checkpoints, &mut check)?;
    warnings.extend(torn_notes);
    if let Some((size, position)) = fork {
        // The nearest agreeing checkpoint at or after the fork's size, else the largest.
        let witness = agreeing
            .range(size..)
            .next()
            .or_else(|| agreeing.iter().next_back());
        let context = match witness {
            Some((s, p)) => format!(
                "it is inconsistent with {} (size {s}), which matches the entries (a fork)",
                checkpoints.label(*p)
            ),
            None => "the entries were rewritten, or the proxy signed a view that was never its log"
                .to_owned(),
        };
        checkpoint_defect.get_or_insert(defect(
            Some(size),
            DefectKind::CheckpointFork,
            format!(
                "{} (size {size}) does not match the entries: {context}",
                checkpoints.label(position)
            ),
        ));
    }

    // The first defect in log order: a tile disagreement is an altered entry unless the
    // signed checkpoints vouch for the entries.
    let tile_defect = tile_diff.map(|diff| {
        let vouched = entry_defect.is_none()
            && checkpoint_defect.is_none()
            && latest.is_some_and(|(s, _)| s > diff.first_entry);
        if diff.missing {
            defect(Some(diff.first_entry), DefectKind::TileMissing, format!("{} is missing", diff.rel))
        } else if vouched {
            defect(
                Some(diff.first_entry),
                DefectKind::TileReplaced,
                format!(
                    "hash {} of {} was replaced (the entries agree with the signed checkpoints)",
                    diff.position, diff.rel
                ),
            )
        } else {
            defect(
                Some(diff.first_entry),
                DefectKind::EntryAltered,
                format!(
                    "its hash differs from hash {} of {} and from the signed checkpoints: the entry was altered, removed, inserted or moved",
                    diff.position, diff.rel
                ),
            )
        }
    });
    let first = [tile_defect, entry_defect, rotation_defect]
        .into_iter()
        .flatten()
        .min_by_key(|d| d.index.unwrap_or(u64::MAX));
    if let Some(d) = first.or(checkpoint_defect) {
        return Err(d);
    }
    if latest.is_none() {
        warnings
            .push("no checkpoint covers the entries: nothing signed vouches for them".to_owned());
    } else if let Some((size, _)) = latest
        && size < entries
    {
        warnings.push(format!(
            "entries {size}..{entries} are not yet covered by a checkpoint (the proxy signs one within a second while running)"
        ));
    }
    Ok(VerifyReport {
        entries,
        checkpoints: checkpoints.count,
        latest,
        proxy,
        key: chain.current(),
        key_source,
        rotations: chain.steps().to_vec(),
        warnings,
    })
}

/// Compares recomputed full tiles with the stored ones, keeping the first difference.
/// `level0` is the stored level-0 tile already read for bundle `.0`, if any. A tile
/// missing past `covered` entries (the largest checkpoint) is a warning: no checkpoint's
/// proofs read it, a live writer writes it just after its bundle, and opening the log
/// writes it when a crash came between them.
fn compare_tiles(
    dir: &Path,
    tiles: &[FullTile],
    covered: u64,
    diff: &mut Option<TileDiff>,
    short: &mut Vec<String>,
    level0: Option<(u64, &[u8])>,
) {
    if diff.is_some() {
        return;
    }
    for tile in tiles {
        let rel = storage::tile_rel(tile.level, tile.index);
        let first_entry = tile.index << (8 * (u32::from(tile.level) + 1));
        let stored = match level0 {
            Some((b, data)) if tile.level == 0 && tile.index == b => Ok(data.to_vec()),
            _ => storage::read_bounded(&dir.join(&rel), (TILE_WIDTH * HASH_SIZE) as u64),
        };
        let end = (tile.index + 1) << (8 * (u32::from(tile.level) + 1));
        match stored {
            Err(_) if end > covered && !dir.join(&rel).exists() => {
                short.push(format!(
                    "{rel} is not written yet: no checkpoint covers its entries (a running proxy writes it after their bundle; opening the log writes it)"
                ));
            }
            Err(_) => {
                *diff = Some(TileDiff {
                    first_entry,
                    rel,
                    position: 0,
                    missing: true,
                });
                return;
            }
            // A prefix of the right hashes: a write a crash cut short (tiles are written
            // whole through a temporary file, so only a lying disk leaves one), rebuilt from
            // the entries when the log is opened.
            Ok(stored) if stored.len() < tile.data.len() && tile.data.starts_with(&stored) => {
                short.push(format!(
                    "{rel} is short ({} of {} bytes, a torn write): its hashes are recomputed from the entries when the log is opened",
                    stored.len(),
                    tile.data.len()
                ));
            }
            Ok(stored) if stored != tile.data => {
                let position = (0..TILE_WIDTH)
                    .find(|i| {
                        stored.get(i * HASH_SIZE..(i + 1) * HASH_SIZE)
                            != tile.data.get(i * HASH_SIZE..(i + 1) * HASH_SIZE)
                    })
                    .unwrap_or(0);
                let span = 1u64 << (8 * u32::from(tile.level));
                *diff = Some(TileDiff {
                    first_entry: first_entry + position as u64 * span,
                    rel,
                    position,
                    missing: false,
                });
                return;
            }
            Ok(_) => {}
        }
    }
}
