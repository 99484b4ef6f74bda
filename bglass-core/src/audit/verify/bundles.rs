//! The verifier's reader threads: one bundle at a time read, split into entries, hashed,
//! its entries' heads checked, and its key rotations noted.

use std::path::Path;

use super::head::{HeadError, check_head};
use super::{Defect, DefectKind, defect};
use crate::audit::event::{Event, EventKind, peek_kind};
use crate::audit::rotation::{self, KeyTransition};
use crate::audit::storage::{self, WAL_FILE};
use crate::audit::tree::{Hash, TILE_WIDTH, leaf_hash, subtree_root};

/// The proxy named by the log's first entry, for the reader threads' head checks (the
/// walker reports a first entry that does not parse).
pub(super) fn first_proxy(dir: &Path) -> Option<String> {
    let first = match storage::read_bundle(dir, 0) {
        Ok(bytes) => entry_ranges(&bytes)
            .0
            .first()
            .map(|r| bytes[r.clone()].to_vec()),
        Err(_) => storage::read_wal(&dir.join(WAL_FILE))
            .ok()
            .and_then(|w| w.records.into_iter().next().map(|r| r.data.into_bytes())),
    }?;
    Event::from_bytes(&first).ok().map(|e| e.proxy.to_string())
}

/// One bundle, read and hashed by the reader thread.
pub(super) struct Hashed {
    pub(super) bundle: u64,
    pub(super) data: Result<Vec<u8>, storage::StorageError>,
    pub(super) ranges: Vec<std::ops::Range<usize>>,
    pub(super) leaves: Vec<Hash>,
    pub(super) damage: Option<String>,
    /// The first entry whose head is not an event of the log's proxy.
    pub(super) bad_head: Option<(usize, HeadError)>,
    /// The subtree root of a full bundle.
    pub(super) root: Option<Hash>,
    /// The positions of the entries that record a rotation of the signing key.
    pub(super) rotations: Vec<usize>,
}

impl Hashed {
    pub(super) fn read(dir: &Path, bundle: u64, proxy: Option<&str>) -> Self {
        let data = storage::read_bundle(dir, bundle);
        let (ranges, damage) = match &data {
            Ok(bytes) => entry_ranges(bytes),
            Err(_) => (Vec::new(), None),
        };
        let leaves = match &data {
            Ok(bytes) => ranges
                .iter()
                .map(|r| leaf_hash(&bytes[r.clone()]))
                .collect(),
            Err(_) => Vec::new(),
        };
        let bad_head = match (&data, proxy) {
            (Ok(bytes), Some(proxy)) => ranges.iter().enumerate().find_map(|(i, r)| {
                let first_of_log = bundle == 0 && i == 0;
                (!first_of_log)
                    .then(|| check_head(&bytes[r.clone()], proxy).err().map(|e| (i, e)))
                    .flatten()
            }),
            _ => None,
        };
        let root = (leaves.len() == TILE_WIDTH).then(|| subtree_root(&leaves));
        let rotations = match &data {
            Ok(bytes) => ranges
                .iter()
                .enumerate()
                .filter(|(_, r)| peek_kind(&bytes[(*r).clone()]) == Some(rotation::EVENT_TYPE))
                .map(|(i, _)| i)
                .collect(),
            Err(_) => Vec::new(),
        };
        Self {
            rotations,
            bundle,
            data,
            ranges,
            leaves,
            damage,
            bad_head,
            root,
        }
    }
}

/// The rotation an entry records, if it is a `signing_key_rotated` event (recognised from
/// the head of its encoding, parsed only then).
pub(super) fn rotation_at(index: u64, entry: &[u8]) -> Result<Option<KeyTransition>, Defect> {
    if peek_kind(entry) != Some(rotation::EVENT_TYPE) {
        return Ok(None);
    }
    let event = Event::from_bytes(entry)
        .map_err(|e| defect(Some(index), DefectKind::EntryMalformed, e.to_string()))?;
    match event.event {
        EventKind::SigningKeyRotated { transition } => Ok(Some(transition)),
        _ => Ok(None),
    }
}

/// The byte ranges of a bundle's complete entries, and a description of any damage.
pub(super) fn entry_ranges(bytes: &[u8]) -> (Vec<std::ops::Range<usize>>, Option<String>) {
    let mut out = Vec::with_capacity(TILE_WIDTH);
    let mut at = 0usize;
    let mut damage = None;
    while at < bytes.len() {
        let n = out.len();
        let len = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        match len {
            Some(0) => {
                damage = Some(format!("entry {n} is empty"));
                break;
            }
            Some(len) if at + 2 + len <= bytes.len() => {
                out.push(at + 2..at + 2 + len);
                at += 2 + len;
            }
            _ => {
                damage = Some(format!(
                    "entry {n} at byte {at} runs past the end of the bundle"
                ));
                break;
            }
        }
    }
    if damage.is_none() && out.len() != TILE_WIDTH {
        damage = Some(format!(
            "bundle holds {} entries, a full bundle holds {TILE_WIDTH}",
            out.len()
        ));
    }
    (out, damage)
}
