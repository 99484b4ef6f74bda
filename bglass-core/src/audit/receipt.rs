//! Audit receipts: what a responder keeps to prove, later and alone, that an event is in a
//! proxy's log — the entry's index and leaf hash, a signed checkpoint, and an inclusion proof.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::checkpoint::{self, VerifiedCheckpoint};
use super::tree::{HASH_SIZE, Hash, check_inclusion, leaf_hash};
use crate::keys::PublicKey;

/// Longest inclusion proof accepted (a tree of 2^64 leaves needs 64 hashes).
pub const MAX_PROOF_LEN: usize = 64;

/// A receipt, as stored by the CLI and served by the proxy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The entry's index.
    pub index: u64,
    /// The entry's RFC 6962 leaf hash, base64.
    pub leaf_hash: String,
    /// A signed checkpoint whose tree contains the entry.
    pub checkpoint: String,
    /// The inclusion proof from the leaf to that checkpoint's root, base64 hashes.
    pub inclusion: Vec<String>,
}

/// Why a receipt does not prove inclusion.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// A hash or the proof is malformed.
    #[error("receipt is malformed: {0}")]
    Malformed(&'static str),
    /// The checkpoint is not validly signed by the proxy.
    #[error("receipt checkpoint: {0}")]
    Checkpoint(checkpoint::CheckpointError),
    /// The entry given does not hash to the receipt's leaf hash.
    #[error("the entry does not match the receipt's leaf hash")]
    EntryMismatch,
    /// The proof does not lead from the leaf to the checkpoint's root.
    #[error("the inclusion proof does not lead to the checkpoint's root")]
    BadProof,
}

fn decode_hash(text: &str) -> Result<Hash, ReceiptError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| ReceiptError::Malformed("hash is not base64"))?;
    let array: [u8; HASH_SIZE] = bytes
        .try_into()
        .map_err(|_| ReceiptError::Malformed("hash is not 32 bytes"))?;
    Ok(Hash(array))
}

impl Receipt {
    /// Builds a receipt for entry `index` with leaf hash `leaf`.
    pub fn new(index: u64, leaf: Hash, checkpoint: &VerifiedCheckpoint, proof: &[Hash]) -> Self {
        Self {
            index,
            leaf_hash: STANDARD.encode(leaf.0),
            checkpoint: String::from_utf8_lossy(&checkpoint.note).into_owned(),
            inclusion: proof.iter().map(|h| STANDARD.encode(h.0)).collect(),
        }
    }

    /// Checks the receipt against the proxy's key and origin, and, when given, the entry.
    /// Returns the checkpoint it is anchored in.
    pub fn verify(
        &self,
        origin: &str,
        key: &PublicKey,
        entry: Option<&[u8]>,
    ) -> Result<VerifiedCheckpoint, ReceiptError> {
        if self.inclusion.len() > MAX_PROOF_LEN {
            return Err(ReceiptError::Malformed("inclusion proof is too long"));
        }
        let leaf = decode_hash(&self.leaf_hash)?;
        if let Some(entry) = entry
            && leaf_hash(entry) != leaf
        {
            return Err(ReceiptError::EntryMismatch);
        }
        let proof = self
            .inclusion
            .iter()
            .map(|h| decode_hash(h))
            .collect::<Result<Vec<_>, _>>()?;
        let checkpoint = checkpoint::verify(self.checkpoint.as_bytes(), origin, key)
            .map_err(ReceiptError::Checkpoint)?;
        if !check_inclusion(&proof, checkpoint.size, checkpoint.root, self.index, leaf) {
            return Err(ReceiptError::BadProof);
        }
        Ok(checkpoint)
    }
}
