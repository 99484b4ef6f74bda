//! The audit log's errors: why it could not be opened, why an append failed (and what
//! made the log fail), why a replay callback stopped the open, why a proof could not be
//! made. Each names what it concerns in typed fields.

use std::path::PathBuf;

use super::super::checkpoint::CheckpointError;
use super::super::event::EventError;
use super::super::storage::{self, NoteSizeError, StorageError};
use super::Rollback;

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
    /// [`LogConfig::published`](super::LogConfig::published)) and the rollback was not accepted.
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
    /// Writing what the open owes (a checkpoint, an accepted rollback) failed.
    #[error("the log could not be written: {0}")]
    Write(#[from] LogFault),
    /// The log's signing key was rotated to a key this opener does not hold: signing with
    /// the old one would write checkpoints no verifier accepts.
    #[error(
        "the log's signing key was rotated to {logged} at entry {index}, but this proxy signs with {held}: an interrupted `bglass-proxy rotate-key` is finished by running it again; otherwise the vault is not this log's"
    )]
    KeyRotated {
        /// The entry of the last rotation.
        index: u64,
        /// The key it put in force.
        logged: crate::keys::PublicKey,
        /// The key this opener holds.
        held: crate::keys::PublicKey,
    },
    /// The replay callback refused an entry.
    #[error("replay stopped at entry {index}: {source}")]
    Replay {
        /// The entry.
        index: u64,
        /// Why.
        source: ReplayError,
    },
}

/// Why the replay callback of [`AuditLog::open`](super::AuditLog::open) refused an entry (the open stops there).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The entry is not an event this version reads.
    #[error(transparent)]
    Event(#[from] EventError),
}

/// Why an append failed. The entry is not in the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditAppendError {
    /// The entry is empty or larger than [`storage::MAX_ENTRY_BYTES`].
    #[error("audit entry of {0} bytes is empty or larger than {max} bytes", max = storage::MAX_ENTRY_BYTES)]
    Size(usize),
    /// Writing failed; the log accepts no more entries until it recovers.
    #[error("the audit log failed and accepts no entries: {0}")]
    Failed(LogFault),
    /// The log is closed.
    #[error("the audit log is closed")]
    Closed,
}

/// What made the log fail, or keeps it failed: it refuses every append until it recovers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogFault {
    /// An operation on one of the log's files failed (which file, which operation, and the
    /// system's error number).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The write-ahead file is not open (a rewrite of it failed).
    #[error("writing {}: the write-ahead file is not open", path.display())]
    WalClosed {
        /// The write-ahead file.
        path: PathBuf,
    },
    /// The write-ahead file was unlinked while the writer held it open: what it wrote there
    /// can never be read back.
    #[error("writing {}: the write-ahead file was removed from the log directory", path.display())]
    WalUnlinked {
        /// The write-ahead file.
        path: PathBuf,
    },
    /// The log directory is gone.
    #[error("{} is missing", dir.display())]
    DirectoryMissing {
        /// The log directory.
        dir: PathBuf,
    },
    /// The log directory no longer holds the checkpoint file of a log that signed one.
    #[error(
        "{} no longer holds the checkpoint this log signed: the log directory was removed or replaced; restart the proxy to examine it",
        dir.display()
    )]
    CheckpointGone {
        /// The log directory.
        dir: PathBuf,
    },
    /// The log directory holds fewer full bundles than the log wrote.
    #[error(
        "{} holds {found} full bundles, but this log wrote {wrote}: the log directory was removed or replaced; restart the proxy to examine it",
        dir.display()
    )]
    BundlesGone {
        /// The log directory.
        dir: PathBuf,
        /// Full bundles found.
        found: u64,
        /// Full bundles the log wrote.
        wrote: u64,
    },
    /// The entries of a full bundle are no longer in the writer's memory.
    #[error("bundle {bundle} is not in memory")]
    BundleNotInMemory {
        /// The bundle.
        bundle: u64,
    },
    /// The thread that writes bundles and tiles is gone (it cannot start or has stopped).
    #[error("the bundle and tile writer thread stopped")]
    BundlerStopped,
    /// The reserve file could not be made again.
    #[error("the reserve file: {0}")]
    Reserve(StorageError),
    /// A checkpoint could not be signed.
    #[error("signing a checkpoint: {0}")]
    Sign(CheckpointError),
    /// A signed checkpoint note does not fit a history record.
    #[error("the checkpoint history: {0}")]
    Note(NoteSizeError),
    /// One of the log's own entries could not be encoded.
    #[error("encoding the log's {entry} entry: {what}")]
    Encode {
        /// Which entry.
        entry: OwnEntry,
        /// Why.
        what: String,
    },
    /// One of the log's own entries could not be appended.
    #[error("recording the {entry}: {source}")]
    Record {
        /// Which entry.
        entry: OwnEntry,
        /// Why.
        source: Box<AuditAppendError>,
    },
    /// The log holds no entry for a checkpoint to cover.
    #[error("the log is empty")]
    Empty,
    /// A retry failed too: the failure the log is in, and why the latest retry did not end
    /// it.
    #[error("{first} (retrying: {latest})")]
    Retrying {
        /// The failure the log is in.
        first: Box<LogFault>,
        /// Why the latest retry failed.
        latest: Box<LogFault>,
    },
}

impl LogFault {
    /// The operating system's error number of the failed operation, when the system refused
    /// it (28 is a full disk).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Storage(e) | Self::Reserve(e) => e.errno,
            Self::Retrying { latest, .. } => latest.errno(),
            _ => None,
        }
    }
}

/// The log's own entries, written by the writer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnEntry {
    /// `log_failed`.
    Failure,
    /// `log_recovered`.
    Recovery,
    /// `log_rollback`.
    Rollback,
}

impl std::fmt::Display for OwnEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Failure => "failure",
            Self::Recovery => "recovery",
            Self::Rollback => "rollback",
        })
    }
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// An entry the log does not hold (yet).
    #[error("no such entry or tree size: entry {index} of a log of {size} entries")]
    NoEntry {
        /// The entry asked for.
        index: u64,
        /// Entries in the log.
        size: u64,
    },
    /// A tree larger than the log.
    #[error("no such entry or tree size: size {requested} > {size}")]
    NoTree {
        /// The tree size asked for.
        requested: u64,
        /// Entries in the log.
        size: u64,
    },
    /// An inclusion proof of an entry outside the tree it is asked for in.
    #[error("no such entry or tree size: entry {index} in size {size}")]
    NotInTree {
        /// The entry.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("no such entry or tree size: sizes {old} -> {new}")]
    Backwards {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// Reading tiles failed.
    #[error("cannot read the tree: {0}")]
    Tree(#[from] tlog_tiles::Error),
    /// The tiles hold no hash for an entry the log holds.
    #[error("cannot read the tree: no hash for entry {index}")]
    NoHash {
        /// The entry.
        index: u64,
    },
}
