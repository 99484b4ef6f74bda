//! An auditor's copy of a proxy's log, kept current from its API (`bglass audit monitor`).
//!
//! The mirror is a log directory in the layout `audit verify` reads: full entry bundles and
//! hash tiles, the entries after the last full bundle in `pending.wal`, the checkpoints it
//! took in `checkpoints` and `checkpoint`, the latest cosigned one in `cosigned-checkpoint`,
//! and the catalogs and rosters the entries name in `policy/`.
//!
//! It only ever grows by a checkpoint the proxy signed whose tree extends the mirror's own:
//! the new entries are hashed onto the mirror's tree and must give the new checkpoint's
//! root. A smaller checkpoint (a rollback), another root at the same size, or a tree that
//! does not extend the mirror's (a fork, or a split view) is an [`Inconsistency`], and the
//! mirror keeps what it had, as evidence. Files are written before the checkpoint that
//! covers them, so a crash leaves only uncovered files, which opening removes.
//!
//! A rotation of the proxy's signing key is followed along the log's own
//! `signing_key_rotated` entries (each signed by both keys): a checkpoint signed by a newer
//! key is taken only when the rotations the proxy shows lead to that key from the mirror's,
//! and the entries fetched put that key in force at the checkpoint's size.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::checkpoint::{self, CheckpointError, VerifiedCheckpoint};
use super::event::{Event, EventKind, peek_kind};
use super::policy_files::{self, PolicyKind};
use super::rotation::{self, KeyChain, KeyTransition};
use super::storage::{
    self, CHECKPOINT_FILE, Entry, FileOp, HISTORY_FILE, StorageError, TMP_DIR, WAL_FILE,
    encode_bundle, encode_history, encode_record, io_err, wal_header, write_atomic,
};
use super::tree::{FullTile, HASH_SIZE, Hash, TILE_HEIGHT, TILE_WIDTH, TreeEdge, leaf_hash};
use super::witness::COSIGNED_FILE;
use crate::id::ProxyId;
use crate::keys::PublicKey;

/// The directory, beside the mirrored files, where refused checkpoints are kept.
pub const EVIDENCE_DIR: &str = "evidence";

/// Why the mirror could not be read or written (its own files, not the proxy's answers).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// A file could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The mirror's files do not agree with its own latest checkpoint.
    #[error("{dir}: {what}")]
    Damaged {
        /// The mirror.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The mirror's checkpoint does not verify with the key given.
    #[error("{dir}: the mirror's checkpoint does not verify with the key given: {source}")]
    Key {
        /// The mirror.
        dir: PathBuf,
        /// Why.
        source: CheckpointError,
    },
}

/// What a proxy served that the mirror cannot take: the alerts of `audit monitor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Inconsistency {
    /// The checkpoint does not verify with the proxy's key.
    #[error("its checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// The checkpoint is smaller than the mirror's: the log was rolled back.
    #[error("ROLLBACK: its checkpoint is of size {size}, the mirror holds {mirror} signed entries")]
    Rollback {
        /// The mirror's size.
        mirror: u64,
        /// The checkpoint's.
        size: u64,
    },
    /// A signed checkpoint whose tree does not contain the mirror's: the proxy signed two
    /// views that cannot both be true (a fork, or a split view shown to different readers).
    #[error("FORK: its checkpoint of size {size} does not extend the mirror's of size {mirror}")]
    Fork {
        /// The mirror's size.
        mirror: u64,
        /// The checkpoint's.
        size: u64,
    },
    /// The entries served do not hash to the checkpoint the proxy signed for them (whose
    /// tree does extend the mirror's): its stored entries were altered.
    #[error(
        "ENTRIES ALTERED: the entries {from}..{to} it serves do not hash to its signed checkpoint"
    )]
    EntriesAltered {
        /// First entry fetched.
        from: u64,
        /// One past the last.
        to: u64,
    },
    /// An entry served is not an event of this proxy.
    #[error("entry {index} it serves is not an event of this proxy: {what}")]
    EntryMalformed {
        /// The entry.
        index: u64,
        /// Why.
        what: String,
    },
    /// A policy file served does not hash to the digest the log names.
    #[error("the {kind} it serves as {digest} has another digest")]
    PolicyFile {
        /// Catalog or roster.
        kind: &'static str,
        /// The digest asked for.
        digest: String,
    },
}

impl Inconsistency {
    /// A stable code for the alert (`rollback`, `fork`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Checkpoint(_) => "checkpoint_invalid",
            Self::Rollback { .. } => "rollback",
            Self::Fork { .. } => "fork",
            Self::EntriesAltered { .. } => "entries_altered",
            Self::EntryMalformed { .. } => "entry_malformed",
            Self::PolicyFile { .. } => "policy_file_altered",
        }
    }
}

/// What a new checkpoint means for the mirror.
#[derive(Debug)]
pub enum Seen {
    /// The mirror already holds it.
    Held,
    /// A larger checkpoint: fetch its entries and [`Mirror::advance`].
    Larger(VerifiedCheckpoint),
}

/// A proxy's log mirrored in a directory.
#[derive(Debug)]
pub struct Mirror {
    dir: PathBuf,
    origin: String,
    proxy: ProxyId,
    /// The log's keys: the one given, and the rotations its mirrored entries record.
    chain: KeyChain,
    edge: TreeEdge,
    /// Entries after the last full bundle.
    tail: Vec<Entry>,
    latest: Option<VerifiedCheckpoint>,
}

/// The note with only `origin`'s own signature lines: the form the proxy keeps in its
/// history (a cosigned note is this note followed by cosignature lines).
pub fn own_note(note: &[u8], origin: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(note);
    let Some(split) = text.find("\n\n") else {
        return note.to_vec();
    };
    let prefix = format!("\u{2014} {origin} ");
    let mut out = text[..split + 2].to_owned();
    for line in text[split + 2..].lines() {
        if line.starts_with(&prefix) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

impl Mirror {
    /// Opens the mirror of `proxy`'s log in `dir` (creating it), whose checkpoints `key`
    /// signs. Its entries are hashed again and must give its latest checkpoint's root;
    /// files past that checkpoint (left by an interrupted update) are removed.
    pub fn open(dir: &Path, proxy: &ProxyId, key: PublicKey) -> Result<Self, MirrorError> {
        let tmp = dir.join(TMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, FileOp::CreateDir, &e))?;
        let origin = checkpoint::origin(proxy);
        let damaged = |what: String| MirrorError::Damaged {
            dir: dir.to_path_buf(),
            what,
        };
        // Its size first (the note is checked once the entries give the key in force).
        let note = storage::latest_checkpoint(dir)?;
        let size = match &note {
            Some(n) => {
                checkpoint::peek(n)
                    .ok_or_else(|| MirrorError::Key {
                        dir: dir.to_path_buf(),
                        source: CheckpointError::Malformed,
                    })?
                    .1
            }
            None => 0,
        };
        let mut first_key: Option<PublicKey> = None;
        let mut transitions: Vec<KeyTransition> = Vec::new();
        let mut read = |index: u64, entry: &[u8]| {
            let kind = peek_kind(entry);
            if (index == 0 || kind == Some(rotation::EVENT_TYPE))
                && let Ok(event) = Event::from_bytes(entry)
            {
                match event.event {
                    EventKind::ProxyStart { key, .. } if index == 0 => first_key = Some(key),
                    EventKind::SigningKeyRotated { transition } => transitions.push(transition),
                    _ => {}
                }
            }
        };
        let full = size / TILE_WIDTH as u64;
        let mut edge = TreeEdge::new();
        let mut completed = Vec::new();
        for b in 0..full {
            let bytes = storage::read_bundle(dir, b)?;
            let entries = storage::parse_bundle(&bytes)
                .map_err(|e| damaged(format!("entry bundle {b}: {e}")))?;
            for entry in entries {
                read(edge.size(), entry);
                edge.push(leaf_hash(entry), &mut completed);
            }
            completed.clear();
        }
        let mut tail = Vec::new();
        let wal = storage::read_wal(&dir.join(WAL_FILE)).map_err(|e| damaged(e.to_string()))?;
        for record in wal.records {
            if record.index == edge.size() && record.index < size {
                read(record.index, record.data.as_bytes());
                edge.push(leaf_hash(record.data.as_bytes()), &mut completed);
                tail.push(record.data);
            }
        }
        if edge.size() != size {
            return Err(damaged(format!(
                "it holds {} entries, its checkpoint covers {size}",
                edge.size()
            )));
        }
        // The chain from entry 0's key through the rotations mirrored; the key given must
        // be on it (else it alone is used, and a log it did not sign is refused).
        let mut chain = KeyChain::new(&origin, first_key.unwrap_or(key));
        for t in transitions {
            let index = t.index;
            chain
                .push(index, t)
                .map_err(|e| damaged(format!("entry {index}: {e}")))?;
        }
        if !chain.contains(&key) {
            chain = KeyChain::new(&origin, key);
        }
        let latest = match note {
            Some(note) => Some(
                checkpoint::verify(&note, &origin, &chain.key_for(size)).map_err(|source| {
                    MirrorError::Key {
                        dir: dir.to_path_buf(),
                        source,
                    }
                })?,
            ),
            None => None,
        };
        if let Some(c) = &latest
            && edge.root() != c.root
        {
            return Err(damaged(format!(
                "its entries do not hash to its own checkpoint of size {size}"
            )));
        }
        let mirror = Self {
            dir: dir.to_path_buf(),
            origin,
            proxy: proxy.clone(),
            chain,
            edge,
            tail,
            latest,
        };
        mirror.trim()?;
        Ok(mirror)
    }

    /// The number of entries the mirror holds (its latest checkpoint's size).
    pub fn size(&self) -> u64 {
        self.edge.size()
    }

    /// The mirror's latest checkpoint.
    pub fn latest(&self) -> Option<&VerifiedCheckpoint> {
        self.latest.as_ref()
    }

    /// The mirror's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key in force after the rotations the mirror holds.
    pub fn key(&self) -> PublicKey {
        self.chain.current()
    }

    /// Checks a checkpoint the proxy serves against the mirror.
    pub fn see(&self, note: &[u8]) -> Result<Seen, Inconsistency> {
        self.see_following(note, &[])
    }

    /// [`Mirror::see`], also accepting a checkpoint signed by a key that `transitions` (the
    /// rotations the proxy shows, each checked) lead to from the mirror's key; the entries
    /// fetched must then record those rotations ([`Advance::finish`]).
    pub fn see_following(
        &self,
        note: &[u8],
        transitions: &[KeyTransition],
    ) -> Result<Seen, Inconsistency> {
        let mut keys = vec![self.chain.current()];
        for t in transitions {
            if keys.last() == Some(&t.old) && t.verify(&self.origin).is_ok() {
                keys.push(t.new);
            }
        }
        let mut first_error = None;
        let c = keys
            .iter()
            .find_map(|k| match checkpoint::verify(note, &self.origin, k) {
                Ok(c) => Some(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                    None
                }
            })
            .ok_or_else(|| {
                Inconsistency::Checkpoint(first_error.map(|e| e.to_string()).unwrap_or_default())
            })?;
        let mirror = self.size();
        if c.size < mirror {
            return Err(Inconsistency::Rollback {
                mirror,
                size: c.size,
            });
        }
        if c.size == mirror {
            let root = self.latest.as_ref().map_or(self.edge.root(), |l| l.root);
            return if c.root == root {
                Ok(Seen::Held)
            } else {
                Err(Inconsistency::Fork {
                    mirror,
                    size: c.size,
                })
            };
        }
        Ok(Seen::Larger(c))
    }

    /// Whether `proof` (from the proxy) shows that the tree of `size` with `root` extends
    /// the mirror's: when it does, entries that do not give `root` were altered where the
    /// proxy keeps them; when it does not, the proxy signed a fork.
    pub fn extends(&self, proof: &[Hash], size: u64, root: Hash) -> bool {
        let own = self.latest.as_ref().map_or(self.edge.root(), |l| l.root);
        super::tree::check_consistency(proof, size, root, self.size(), own)
    }

    /// The entry bundles to fetch for the entries from the mirror's size up to `to`:
    /// (bundle index, width), a width under 256 being a partial bundle.
    pub fn bundles_to(&self, to: u64) -> Vec<(u64, usize)> {
        let width = TILE_WIDTH as u64;
        let mut out = Vec::new();
        let mut b = self.size() / width;
        while b * width < to {
            let w = (to - b * width).min(width);
            out.push((b, usize::try_from(w).unwrap_or(TILE_WIDTH)));
            b += 1;
        }
        out
    }

    /// Starts taking the entries of `checkpoint` (larger than the mirror's).
    pub fn advance(&mut self, checkpoint: VerifiedCheckpoint) -> Advance<'_> {
        Advance {
            edge: self.edge.clone(),
            chain: self.chain.clone(),
            tail: self.tail.clone(),
            policy: Vec::new(),
            checkpoint,
            mirror: self,
        }
    }

    /// Keeps `note` (a checkpoint the mirror holds, with cosignatures) as the log's
    /// cosigned checkpoint, for `audit verify --witness`.
    pub fn keep_cosigned(&self, note: &[u8]) -> Result<(), MirrorError> {
        Ok(write_atomic(&self.dir, COSIGNED_FILE, note)?)
    }

    /// Keeps a policy file the log names, when its bytes hash to `digest`.
    pub fn keep_policy(
        &self,
        kind: PolicyKind,
        digest: &str,
        bytes: &[u8],
    ) -> Result<Result<(), Inconsistency>, MirrorError> {
        if policy_files::digest(bytes) != digest {
            return Ok(Err(Inconsistency::PolicyFile {
                kind: kind.name(),
                digest: digest.to_owned(),
            }));
        }
        policy_files::store(&self.dir, kind, bytes)?;
        Ok(Ok(()))
    }

    /// Whether the policy file the log names by `digest` is held.
    pub fn has_policy(&self, kind: PolicyKind, digest: &str) -> bool {
        policy_files::load(&self.dir, kind, digest).is_ok()
    }

    /// Keeps a refused checkpoint as evidence, beside the mirror's own latest one; returns
    /// its path.
    pub fn keep_evidence(
        &self,
        code: &str,
        note: &[u8],
        time_ms: u64,
    ) -> Result<PathBuf, MirrorError> {
        let rel = format!("{EVIDENCE_DIR}/{time_ms}-{code}.note");
        let mut text = note.to_vec();
        if let Some(own) = &self.latest {
            text.extend_from_slice(b"\n# the mirror's checkpoint when it was refused:\n");
            text.extend_from_slice(&own.note);
        }
        write_atomic(&self.dir, &rel, &text)?;
        Ok(self.dir.join(rel))
    }

    /// Removes bundles and hash tiles that no checkpoint of the mirror covers.
    fn trim(&self) -> Result<(), MirrorError> {
        let size = self.size();
        let remove = |rel: String| -> Result<bool, MirrorError> {
            let path = self.dir.join(rel);
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_err(&path, FileOp::Remove, &e).into()),
            }
        };
        let mut b = size / TILE_WIDTH as u64;
        while remove(storage::bundle_rel(b))? {
            b += 1;
        }
        for level in 0..8u8 {
            let span = u32::from(TILE_HEIGHT) * (u32::from(level) + 1);
            let mut i = size.checked_shr(span).unwrap_or(0);
            while remove(storage::tile_rel(level, i))? {
                i += 1;
            }
        }
        Ok(())
    }
}

/// A checkpoint's entries being taken into the mirror, in order; nothing is covered until
/// [`Advance::finish`] finds that they give the checkpoint's root.
#[derive(Debug)]
pub struct Advance<'a> {
    mirror: &'a mut Mirror,
    checkpoint: VerifiedCheckpoint,
    edge: TreeEdge,
    chain: KeyChain,
    tail: Vec<Entry>,
    policy: Vec<(PolicyKind, String)>,
}

/// Why an entry could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdvanceError {
    /// What the proxy served is wrong.
    #[error(transparent)]
    Served(#[from] Inconsistency),
    /// The mirror's files.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
}

impl From<StorageError> for AdvanceError {
    fn from(e: StorageError) -> Self {
        Self::Mirror(e.into())
    }
}

impl Advance<'_> {
    /// The index the next entry must have.
    pub fn next_index(&self) -> u64 {
        self.edge.size()
    }

    /// Takes the next entry: an event of this proxy. Full bundles and tiles are written as
    /// they complete (uncovered until [`Advance::finish`]).
    pub fn push(&mut self, entry: &[u8]) -> Result<(), AdvanceError> {
        let index = self.edge.size();
        let malformed = |what: String| Inconsistency::EntryMalformed { index, what };
        if index >= self.checkpoint.size {
            return Err(malformed("past the checkpoint's size".to_owned()).into());
        }
        let event = Event::from_bytes(entry).map_err(|e| malformed(e.to_string()))?;
        if event.proxy != self.mirror.proxy {
            return Err(malformed(format!("it names proxy {}", event.proxy)).into());
        }
        match &event.event {
            EventKind::ProxyStart {
                catalog, roster, ..
            } => {
                self.policy.push((PolicyKind::Catalog, catalog.clone()));
                self.policy.push((PolicyKind::Roster, roster.clone()));
            }
            EventKind::ConfigReload {
                file,
                accepted: true,
                digest: Some(digest),
                ..
            } => {
                let kind = match file.as_str() {
                    "catalog" => Some(PolicyKind::Catalog),
                    "roster" => Some(PolicyKind::Roster),
                    _ => None,
                };
                if let Some(kind) = kind {
                    self.policy.push((kind, digest.clone()));
                }
            }
            EventKind::SigningKeyRotated { transition } => {
                self.chain
                    .push(index, transition.clone())
                    .map_err(|e| malformed(e.to_string()))?;
            }
            _ => {}
        }
        let entry = Entry::new(entry.to_vec()).map_err(|e| malformed(e.to_string()))?;
        let mut completed: Vec<FullTile> = Vec::new();
        self.edge.push(leaf_hash(entry.as_bytes()), &mut completed);
        self.tail.push(entry);
        if self.tail.len() == TILE_WIDTH {
            let bundle = self.edge.size() / TILE_WIDTH as u64 - 1;
            write_atomic(
                &self.mirror.dir,
                &storage::bundle_rel(bundle),
                &encode_bundle(&self.tail),
            )?;
            self.tail.clear();
        }
        for tile in completed {
            debug_assert_eq!(tile.data.len(), TILE_WIDTH * HASH_SIZE);
            write_atomic(
                &self.mirror.dir,
                &storage::tile_rel(tile.level, tile.index),
                &tile.data,
            )?;
        }
        Ok(())
    }

    /// Gives up (the proxy stopped answering): the files written for it are removed.
    pub fn abandon(self) -> Result<(), MirrorError> {
        self.mirror.trim()
    }

    /// Covers the entries taken by the checkpoint, when they give its root; returns the
    /// policy files they name that the mirror does not hold yet. On any error the mirror
    /// is as it was before [`Mirror::advance`].
    pub fn finish(self) -> Result<Vec<(PolicyKind, String)>, AdvanceError> {
        let Self {
            mirror,
            checkpoint,
            edge,
            chain,
            tail,
            mut policy,
        } = self;
        // Signed by the key the entries put in force at its size (a rotation shown but not
        // recorded in the log does not count).
        if let Err(e) = checkpoint::verify(
            &checkpoint.note,
            &mirror.origin,
            &chain.key_for(checkpoint.size),
        ) {
            mirror.trim()?;
            return Err(Inconsistency::Checkpoint(format!(
                "not signed by the key the log's rotations put in force at size {}: {e}",
                checkpoint.size
            ))
            .into());
        }
        let root: Hash = edge.root();
        if edge.size() != checkpoint.size || root != checkpoint.root {
            let from = mirror.size();
            mirror.trim()?;
            return Err(Inconsistency::EntriesAltered {
                from,
                to: checkpoint.size,
            }
            .into());
        }
        // The entries after the last full bundle, then the checkpoint that covers them.
        let first = edge.size() - tail.len() as u64;
        let mut wal = wal_header();
        for (i, entry) in tail.iter().enumerate() {
            encode_record(&mut wal, first + i as u64, entry);
        }
        write_atomic(&mirror.dir, WAL_FILE, &wal)?;
        let own = own_note(&checkpoint.note, &mirror.origin);
        append_history(&mirror.dir, &own)?;
        write_atomic(&mirror.dir, CHECKPOINT_FILE, &own)?;
        mirror.edge = edge;
        mirror.chain = chain;
        mirror.tail = tail;
        mirror.latest = Some(VerifiedCheckpoint {
            note: own,
            ..checkpoint
        });
        policy.sort();
        policy.dedup();
        policy.retain(|(kind, digest)| !mirror.has_policy(*kind, digest));
        Ok(policy)
    }
}

fn append_history(dir: &Path, note: &[u8]) -> Result<(), MirrorError> {
    let path = dir.join(HISTORY_FILE);
    let record = encode_history(note).map_err(|e| MirrorError::Damaged {
        dir: dir.to_path_buf(),
        what: e.to_string(),
    })?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_err(&path, FileOp::Open, &e))?;
    file.write_all(&record)
        .map_err(|e| io_err(&path, FileOp::Write, &e))?;
    file.sync_data()
        .map_err(|e| io_err(&path, FileOp::Sync, &e))?;
    Ok(storage::sync_dir(dir)?)
}

#[cfg(test)]
mod tests;
