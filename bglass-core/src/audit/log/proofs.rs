//! Proofs from the open log: root hashes, inclusion and consistency proofs, leaf hashes,
//! receipts, and tiles for mirroring. They read the tree's edge in memory and its full
//! tiles from disk.

use tlog_tiles::HashReader;

use super::super::receipt::Receipt;
use super::super::storage::{self, DiskTiles};
use super::super::tree::{self, Hash, TreeReader, prove_consistency, prove_inclusion};
use super::{Appended, AuditLog, ProofError, State, lock_state};

impl AuditLog {
    /// The full tiles, on disk.
    fn tiles(&self) -> DiskTiles {
        DiskTiles {
            dir: self.dir.clone(),
        }
    }

    /// The root hash at `size` (at most the current size).
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        let state = lock_state(&self.state);
        holds(&state, size)?;
        Ok(tlog_tiles::tree_hash(size, &reader(&state, &self.tiles()))?)
    }

    /// An inclusion proof for entry `index` in the tree of size `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let state = lock_state(&self.state);
        holds(&state, size)?;
        if index >= size {
            return Err(ProofError::NotInTree { index, size });
        }
        Ok(prove_inclusion(
            &reader(&state, &self.tiles()),
            size,
            index,
        )?)
    }

    /// A consistency proof from the tree of size `old` to the tree of size `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        let state = lock_state(&self.state);
        holds(&state, new)?;
        if old > new {
            return Err(ProofError::Backwards { old, new });
        }
        Ok(prove_consistency(&reader(&state, &self.tiles()), new, old)?)
    }

    /// The leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, ProofError> {
        let state = lock_state(&self.state);
        let size = state.edge.size();
        if index >= size {
            return Err(ProofError::NoEntry { index, size });
        }
        reader(&state, &self.tiles())
            .read_hashes(&[tlog_tiles::stored_hash_index(0, index)])?
            .first()
            .copied()
            .ok_or(ProofError::NoHash { index })
    }

    /// A receipt for an appended entry, when a checkpoint already covers it.
    pub fn receipt(&self, appended: &Appended) -> Result<Option<Receipt>, ProofError> {
        let Some(checkpoint) = self.latest_checkpoint().filter(|c| c.size > appended.index) else {
            return Ok(None);
        };
        let proof = self.inclusion_proof(appended.index, checkpoint.size)?;
        Ok(Some(Receipt::new(
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
        if level >= tree::tile_levels(state.edge.size()) {
            return None;
        }
        if state.edge.holds(level, index) {
            let data = state.edge.partial_tile(level);
            return (!data.is_empty()).then_some(data);
        }
        drop(state);
        std::fs::read(self.dir.join(storage::tile_rel(level, index))).ok()
    }
}

/// The tree as the state's edge and the tiles on disk show it.
fn reader<'a>(state: &'a State, tiles: &'a DiskTiles) -> TreeReader<'a, DiskTiles> {
    TreeReader {
        edge: &state.edge,
        full: tiles,
    }
}

/// Whether the log holds a tree of `size` entries.
fn holds(state: &State, size: u64) -> Result<(), ProofError> {
    let have = state.edge.size();
    if size > have {
        return Err(ProofError::NoTree {
            requested: size,
            size: have,
        });
    }
    Ok(())
}
