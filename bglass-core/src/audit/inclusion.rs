//! Inclusion proofs for chosen entries of a log directory, against its latest signed
//! checkpoint: what a review package carries so that whoever holds only the package can
//! tie each item it shows to the signed log (the entry's exact bytes, its leaf hash, an
//! RFC 6962 inclusion proof, and the checkpoint the proxy signed).
//!
//! The proofs are computed from the entries themselves (the stored hash tiles are not
//! trusted for this), and each is checked before it is handed out.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use base64::Engine;

use super::checkpoint::{self, CheckpointError, VerifiedCheckpoint};
use super::receipt::Receipt;
use super::report::{ReadLogError, for_each_entry};
use super::storage::{self, StorageError};
use super::tree::{FullTile, TreeEdge, TreeReader, check_inclusion, leaf_hash, prove_inclusion};
use crate::id::ProxyId;
use crate::keys::PublicKey;

/// Proofs for a set of entries.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Proofs {
    /// The signed checkpoint (a C2SP signed note) every proof leads to.
    pub checkpoint: String,
    /// Its tree size.
    pub size: u64,
    /// Its root hash, base64.
    pub root: String,
    /// One receipt per entry the checkpoint covers: index, leaf hash, inclusion proof.
    pub receipts: Vec<Receipt>,
    /// The entries, exactly as logged (their leaf hash is SHA-256 of 0x00 then these bytes).
    pub entries: Vec<LoggedEntry>,
    /// Entries asked for that came after the checkpoint (none has a proof yet).
    pub after_checkpoint: Vec<u64>,
}

/// An entry's exact bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LoggedEntry {
    /// Its index.
    pub index: u64,
    /// Its bytes (JSON text, as the proxy wrote it).
    pub entry: String,
}

/// Why proofs could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofsError {
    /// The log could not be read.
    #[error(transparent)]
    Read(#[from] ReadLogError),
    /// The checkpoint could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The log has no checkpoint.
    #[error("the log has no signed checkpoint yet: nothing can be proven against it")]
    NoCheckpoint,
    /// The latest checkpoint does not verify.
    #[error("the latest checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The entries do not give the checkpoint's tree.
    #[error("the entries do not give the root of the checkpoint of size {0}")]
    RootMismatch(u64),
    /// An entry is not text.
    #[error("entry {0} is not UTF-8 text")]
    NotText(u64),
    /// A proof could not be made or did not check.
    #[error("the inclusion proof of entry {0} could not be made")]
    Proof(u64),
}

/// Proves that each of `indexes` is in the log in `dir` (of proxy `proxy`, whose checkpoints
/// `key` signs), against its latest checkpoint.
pub fn prove(
    dir: &Path,
    proxy: &ProxyId,
    key: &PublicKey,
    indexes: &[u64],
) -> Result<Proofs, ProofsError> {
    let note = storage::latest_checkpoint(dir)?.ok_or(ProofsError::NoCheckpoint)?;
    let signed: VerifiedCheckpoint = checkpoint::verify(&note, &checkpoint::origin(proxy), key)?;
    let wanted: BTreeSet<u64> = indexes.iter().copied().collect();
    let mut edge = TreeEdge::new();
    let mut full: HashMap<(u8, u64), Vec<u8>> = HashMap::new();
    let mut completed: Vec<FullTile> = Vec::new();
    let mut leaves = HashMap::new();
    let mut entries = Vec::new();
    for_each_entry(dir, |index, bytes| {
        if index >= signed.size && wanted.range(index..).next().is_none() {
            return Err(ReadLogError::Stopped);
        }
        let leaf = leaf_hash(bytes);
        if index < signed.size {
            edge.push(leaf, &mut completed);
            for tile in completed.drain(..) {
                full.insert((tile.level, tile.index), tile.data);
            }
        }
        if wanted.contains(&index) {
            leaves.insert(index, leaf);
            let text = std::str::from_utf8(bytes).map_err(|_| ReadLogError::Stopped);
            entries.push((index, text.map(str::to_owned)));
        }
        Ok(())
    })
    .or_else(|e| match e {
        ReadLogError::Stopped => Ok(0),
        e => Err(e),
    })?;
    if edge.size() != signed.size || edge.root() != signed.root {
        return Err(ProofsError::RootMismatch(signed.size));
    }
    let reader = TreeReader {
        edge: &edge,
        full: &full,
    };
    let mut receipts = Vec::new();
    let mut after_checkpoint = Vec::new();
    for &index in &wanted {
        let Some(&leaf) = leaves.get(&index) else {
            continue;
        };
        if index >= signed.size {
            after_checkpoint.push(index);
            continue;
        }
        let proof =
            prove_inclusion(&reader, signed.size, index).map_err(|_| ProofsError::Proof(index))?;
        if !check_inclusion(&proof, signed.size, signed.root, index, leaf) {
            return Err(ProofsError::Proof(index));
        }
        receipts.push(Receipt::new(index, leaf, &signed, &proof));
    }
    let entries = entries
        .into_iter()
        .map(|(index, text)| {
            text.map(|entry| LoggedEntry { index, entry })
                .map_err(|_| ProofsError::NotText(index))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Proofs {
        checkpoint: String::from_utf8_lossy(&signed.note).into_owned(),
        size: signed.size,
        root: base64::engine::general_purpose::STANDARD.encode(signed.root.0),
        receipts,
        entries,
        after_checkpoint,
    })
}
