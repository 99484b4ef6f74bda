//! The Merkle tree of the log: RFC 6962 hashing over tlog_tiles, the in-memory right edge,
//! and C2SP tlog-tiles paths.
//!
//! The tree is stored as tiles of height 8: tile level `L` holds the hashes at tree level
//! `8L`, 256 to a full tile. In memory the log keeps only the rightmost, incomplete tile of
//! each level ([`TreeEdge`]); full tiles are written to disk once and never change. Every
//! hash needed for the current root lies in those incomplete tiles, so the root costs no I/O.

use tlog_tiles::{HashReader, Tile};

pub use tlog_tiles::{EMPTY_HASH, HASH_SIZE, Hash};

/// Tile height (C2SP tlog-tiles fixes it at 8).
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;

// `tile_offset` takes an index's low byte.
const _: () = assert!(TILE_HEIGHT == 8);

/// The position of entry (or hash) `index` in its bundle (or tile): its low
/// [`TILE_HEIGHT`] bits.
pub fn tile_offset(index: u64) -> usize {
    usize::from(index.to_le_bytes()[0])
}

/// The RFC 6962 leaf hash: SHA-256(0x00 || entry). ring's SHA-256 (SHA-NI where present);
/// tested equal to `tlog_tiles::record_hash` and against the published vectors.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(entry);
    to_hash(ctx.finish())
}

/// The RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_SIZE];
    buf[0] = 0x01;
    buf[1..=HASH_SIZE].copy_from_slice(&left.0);
    buf[1 + HASH_SIZE..].copy_from_slice(&right.0);
    to_hash(ring::digest::digest(&ring::digest::SHA256, &buf))
}

fn to_hash(digest: ring::digest::Digest) -> Hash {
    let mut out = [0u8; HASH_SIZE];
    out.copy_from_slice(digest.as_ref());
    Hash(out)
}

/// The root of a complete subtree whose bottom row is `hashes` (a power of two of them).
pub fn subtree_root(hashes: &[Hash]) -> Hash {
    let mut row: Vec<Hash> = hashes.to_vec();
    while row.len() > 1 {
        row = row.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    row.first().copied().unwrap_or(EMPTY_HASH)
}

/// Highest tile level C2SP tlog-tiles allows.
pub const MAX_TILE_LEVEL: u8 = 63;

/// How many tile levels hold at least one hash in a tree of `size` leaves: level `L` holds
/// the hashes of complete subtrees of 256^L leaves, so it exists once `size` ≥ 256^L.
pub fn tile_levels(size: u64) -> u8 {
    let mut levels = 0u8;
    let mut hashes = size;
    while hashes > 0 {
        levels += 1;
        hashes >>= TILE_HEIGHT;
    }
    levels
}

/// A tile that has just become full: write it to disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullTile {
    /// Tile level (0 holds leaf hashes).
    pub level: u8,
    /// Index of the tile within its level.
    pub index: u64,
    /// The 256 hashes, 32 bytes each.
    pub data: Vec<u8>,
}

/// The right edge of the tree: its size and the incomplete tile of every level.
#[derive(Clone, Debug, Default)]
pub struct TreeEdge {
    size: u64,
    partial: Vec<Vec<Hash>>,
}

impl TreeEdge {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds a leaf; tiles that become full are appended to `completed`.
    pub fn push(&mut self, leaf: Hash, completed: &mut Vec<FullTile>) {
        self.size += 1;
        self.carry(0, leaf, completed);
    }

    /// Adds a whole bundle of 256 leaves whose subtree root the caller computed (on
    /// another thread). Only valid at a bundle boundary; returns false, changing nothing,
    /// otherwise.
    pub fn push_bundle(
        &mut self,
        leaves: &[Hash],
        root: Hash,
        completed: &mut Vec<FullTile>,
    ) -> bool {
        if leaves.len() != TILE_WIDTH || !self.size.is_multiple_of(TILE_WIDTH as u64) {
            return false;
        }
        self.size += TILE_WIDTH as u64;
        completed.push(FullTile {
            level: 0,
            index: (self.size >> TILE_HEIGHT) - 1,
            data: leaves.iter().flat_map(|h| h.0).collect(),
        });
        self.carry(1, root, completed);
        true
    }

    /// Adds `hash` to the incomplete tile of `level`, carrying full tiles upwards.
    fn carry(&mut self, mut level: u8, mut hash: Hash, completed: &mut Vec<FullTile>) {
        loop {
            while self.partial.len() <= usize::from(level) {
                self.partial.push(Vec::with_capacity(TILE_WIDTH));
            }
            let row = &mut self.partial[usize::from(level)];
            row.push(hash);
            if row.len() < TILE_WIDTH {
                return;
            }
            let hashes = std::mem::take(row);
            hash = subtree_root(&hashes);
            // A u64 size has at most 8 levels of full tiles; a shift past 63 is 0.
            let shift = u32::from(TILE_HEIGHT) * (u32::from(level) + 1);
            let index = self.size.checked_shr(shift).unwrap_or(0).saturating_sub(1);
            completed.push(FullTile {
                level,
                index,
                data: hashes.iter().flat_map(|h| h.0).collect(),
            });
            level += 1;
        }
    }

    /// The root hash of the tree.
    pub fn root(&self) -> Hash {
        // Every hash the root needs lies in the incomplete tiles, so this cannot fail for
        // a consistent edge; an inconsistent one is a bug, reported as the empty hash
        // (which no non-empty checkpoint can match).
        tlog_tiles::tree_hash(self.size, self).unwrap_or(EMPTY_HASH)
    }

    /// The incomplete tile of `level`, as tile data (possibly empty).
    pub fn partial_tile(&self, level: u8) -> Vec<u8> {
        self.partial
            .get(usize::from(level))
            .map(|row| row.iter().flat_map(|h| h.0).collect())
            .unwrap_or_default()
    }

    /// Whether tile (`level`, `index`) is the incomplete one held in memory.
    pub fn holds(&self, level: u8, index: u64) -> bool {
        let shift = u32::from(TILE_HEIGHT) * (u32::from(level) + 1);
        index == self.size.checked_shr(shift).unwrap_or(0)
    }
}

impl HashReader for TreeEdge {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&x| {
                let tile = Tile::from_index(TILE_HEIGHT, x);
                if !self.holds(tile.level(), tile.level_index()) {
                    return Err(tlog_tiles::Error::IndexesNotInTree);
                }
                tile.hash_at_index(&self.partial_tile(tile.level()), x)
            })
            .collect()
    }
}

/// Where full tiles come from: the log's directory, or memory in tests.
pub trait FullTiles {
    /// The 256 hashes of full tile (`level`, `index`).
    fn full_tile(&self, level: u8, index: u64) -> Result<Vec<u8>, tlog_tiles::Error>;
}

impl FullTiles for std::collections::HashMap<(u8, u64), Vec<u8>> {
    fn full_tile(&self, level: u8, index: u64) -> Result<Vec<u8>, tlog_tiles::Error> {
        self.get(&(level, index))
            .cloned()
            .ok_or(tlog_tiles::Error::IndexesNotInTree)
    }
}

/// Reads any hash of the tree: incomplete tiles from the edge, full tiles from storage.
/// Proofs for any size up to the edge's are computed through it.
pub struct TreeReader<'a, F: FullTiles> {
    /// The right edge (incomplete tiles).
    pub edge: &'a TreeEdge,
    /// The full tiles.
    pub full: &'a F,
}

impl<F: FullTiles> std::fmt::Debug for TreeReader<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeReader")
            .field("size", &self.edge.size())
            .finish_non_exhaustive()
    }
}

impl<F: FullTiles> HashReader for TreeReader<'_, F> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(indexes.len());
        let mut cached: Option<((u8, u64), Vec<u8>)> = None;
        for &x in indexes {
            let tile = Tile::from_index(TILE_HEIGHT, x);
            let key = (tile.level(), tile.level_index());
            let data = if self.edge.holds(key.0, key.1) {
                self.edge.partial_tile(key.0)
            } else if key.1 < self.edge.size() >> (u32::from(TILE_HEIGHT) * (u32::from(key.0) + 1))
            {
                match &cached {
                    Some((k, data)) if *k == key => data.clone(),
                    _ => {
                        let data = self.full.full_tile(key.0, key.1)?;
                        cached = Some((key, data.clone()));
                        data
                    }
                }
            } else {
                return Err(tlog_tiles::Error::IndexesNotInTree);
            };
            out.push(tile.hash_at_index(&data, x)?);
        }
        Ok(out)
    }
}

/// An inclusion proof that leaf `index` is in the tree of size `size`.
pub fn prove_inclusion<R: HashReader>(
    reader: &R,
    size: u64,
    index: u64,
) -> Result<Vec<Hash>, tlog_tiles::Error> {
    if index >= size {
        return Err(tlog_tiles::Error::IndexesNotInTree);
    }
    tlog_tiles::prove_record(size, index, reader)
}

/// A consistency proof that the tree of size `old` is a prefix of the tree of size `new`.
pub fn prove_consistency<R: HashReader>(
    reader: &R,
    new: u64,
    old: u64,
) -> Result<Vec<Hash>, tlog_tiles::Error> {
    if old > new {
        return Err(tlog_tiles::Error::IndexesNotInTree);
    }
    tlog_tiles::prove_tree(new, old, reader)
}

/// A hash from its base64 form (as in proofs, receipts and checkpoints); `None` when it is
/// not base64 of 32 bytes.
pub fn decode_hash(text: &str) -> Option<Hash> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

/// Checks an inclusion proof.
pub fn check_inclusion(proof: &[Hash], size: u64, root: Hash, index: u64, leaf: Hash) -> bool {
    index < size && tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).is_ok()
}

/// Checks a consistency proof from (`old`, `old_root`) to (`new`, `new_root`).
pub fn check_consistency(
    proof: &[Hash],
    new: u64,
    new_root: Hash,
    old: u64,
    old_root: Hash,
) -> bool {
    if old > new {
        return false;
    }
    if old == 0 {
        return proof.is_empty();
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    tlog_tiles::check_tree(&proof.to_vec(), new, new_root, old, old_root).is_ok()
}

/// The C2SP tlog-tiles path of a tile: `tile/<L>/<N>` or `tile/entries/<N>`, with `.p/<W>`
/// for a partial tile of width `W`.
pub fn tile_path(level: Option<u8>, index: u64, width: Option<usize>) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut n = index / 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    let level = level.map_or_else(|| "entries".to_owned(), |l| l.to_string());
    let partial = match width {
        Some(w) if w < TILE_WIDTH => format!(".p/{w}"),
        _ => String::new(),
    };
    format!("tile/{level}/{}{partial}", groups.join("/"))
}

#[cfg(test)]
mod tests;
