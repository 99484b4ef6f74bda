//! Witnessing other proxies' logs (C2SP tlog-witness, tlog-cosignature): a witness keeps,
//! for each log it is configured for, the latest checkpoint it verified; it cosigns a new
//! checkpoint only when a consistency proof shows it extends that one, so a log that is
//! rolled back or forked is refused by its witnesses, and a checkpoint carrying a quorum of
//! cosignatures is one that no witness saw contradicted.
//!
//! Formats, as the specifications give them:
//! - `add-checkpoint` request: `old <size>\n`, up to 63 base64 consistency-proof lines, an
//!   empty line, then the signed checkpoint.
//! - a cosignature: a note signature line `— <witness name> base64(key id || timestamp ||
//!   Ed25519 signature)`, the key id being SHA-256(name || "\n" || 0x04 || key)[:4], the
//!   timestamp a big-endian u64 of seconds, and the signature over `cosignature/v1\n`,
//!   `time <timestamp>\n` and the checkpoint's body.
//!
//! The witness's view is persisted atomically and durably before a cosignature is returned,
//! and checking the old size and recording the new checkpoint happen under one lock, so two
//! concurrent submissions can never roll the view back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::checkpoint::{self, CheckpointError};
use super::storage::{StorageError, write_file_atomic};
use super::tree::{Hash, check_consistency};
use crate::keys::{PublicKey, SigningKey};

/// The signature type byte of an Ed25519 cosignature (C2SP signed-note).
pub const COSIGNATURE_TYPE: u8 = 0x04;
/// Most consistency-proof lines in a request.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest `add-checkpoint` body accepted.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// The content type of a 409 answer's body (the witness's size).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The file in a log's directory that holds its latest checkpoint with the cosignatures
/// its witnesses returned for it (the `checkpoint` file carries only the log's signature).
pub const COSIGNED_FILE: &str = "cosigned-checkpoint";

/// A witness as a verifier knows it: its name and cosigning key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessKey {
    /// Its cosigner name.
    pub name: String,
    /// Its Ed25519 key.
    pub key: PublicKey,
}

impl std::str::FromStr for WitnessKey {
    type Err = String;

    /// Parses `<name>=ed25519:<key>` (a proxy's name as a witness and its signing key), or
    /// a cosigner verifier key, `<name>+<key id>+<base64(0x04 || key)>`.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((name, key)) = s.split_once('=')
            && key.starts_with("ed25519:")
        {
            let key = key.parse().map_err(|e| format!("{s:?}: {e}"))?;
            return Ok(Self {
                name: name.to_owned(),
                key,
            });
        }
        let mut parts = s.rsplitn(3, '+');
        let (Some(material), Some(id), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{s:?} is not <name>+<key id>+<key>"));
        };
        let bytes = STANDARD
            .decode(material)
            .map_err(|_| format!("{s:?}: the key is not base64"))?;
        let (Some(&COSIGNATURE_TYPE), Some(raw)) = (bytes.first(), bytes.get(1..)) else {
            return Err(format!("{s:?}: not an Ed25519 cosigner key (type 0x04)"));
        };
        let key = PublicKey::from_bytes(raw).map_err(|e| format!("{s:?}: {e}"))?;
        let expected: String = cosigner_key_id(name, &key)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if id != expected {
            return Err(format!(
                "{s:?}: the key id is {id}, the key's is {expected}"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }
}

/// Which of `witnesses` cosigned the checkpoint `note`.
pub fn cosigners<'a>(note: &str, witnesses: &'a [WitnessKey]) -> Vec<&'a str> {
    witnesses
        .iter()
        .filter(|w| cosigned_at(note, &w.name, &w.key).is_some())
        .map(|w| w.name.as_str())
        .collect()
}

/// The key id of a cosigner's Ed25519 key under its name.
pub fn cosigner_key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut data = Vec::with_capacity(name.len() + 34);
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(COSIGNATURE_TYPE);
    data.extend_from_slice(key.as_bytes());
    let d = ring::digest::digest(&ring::digest::SHA256, &data);
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    id
}

/// The cosigner's verifier key in signed-note text form (`<name>+<id>+<base64(0x04 ||
/// key)>`).
pub fn cosigner_vkey(name: &str, key: &PublicKey) -> String {
    let mut material = vec![COSIGNATURE_TYPE];
    material.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        cosigner_key_id(name, key)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        STANDARD.encode(material)
    )
}

fn message(body: &str, time: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {time}\n{body}").into_bytes()
}

/// The body of a signed note: its text up to and including the line before the blank line.
fn body_of(note: &str) -> Option<&str> {
    note.find("\n\n").map(|i| &note[..=i])
}

/// A cosignature line (ending in a newline) by `name` with `key` on the checkpoint whose
/// note is `note`, made at `time` (Unix seconds).
pub fn cosign(note: &str, name: &str, key: &SigningKey, time: u64) -> Option<String> {
    let body = body_of(note)?;
    let sig = key.sign(b"", &message(body, time));
    let mut blob = Vec::with_capacity(76);
    blob.extend_from_slice(&cosigner_key_id(name, &key.public_key()));
    blob.extend_from_slice(&time.to_be_bytes());
    blob.extend_from_slice(&sig);
    Some(format!("\u{2014} {name} {}\n", STANDARD.encode(blob)))
}

/// The time of a valid cosignature by (`name`, `key`) on the checkpoint note, if the note
/// carries one. Lines of other signers are ignored.
pub fn cosigned_at(note: &str, name: &str, key: &PublicKey) -> Option<u64> {
    let body = body_of(note)?;
    let id = cosigner_key_id(name, key);
    let sigs = &note[body.len() + 1..];
    sigs.lines().find_map(|line| {
        let rest = line.strip_prefix("\u{2014} ")?;
        let (who, b64) = rest.split_once(' ')?;
        if who != name {
            return None;
        }
        let (found, time, sig) = parse_cosignature(b64)?;
        if found != id {
            return None;
        }
        key.verify(b"", &message(body, time), &sig).then_some(time)
    })
}

/// The parts of a cosignature line's base64 blob: key ID (4 bytes), timestamp (8 bytes,
/// big-endian Unix seconds), Ed25519 signature (64 bytes).
fn parse_cosignature(b64: &str) -> Option<([u8; 4], u64, Vec<u8>)> {
    let blob = STANDARD.decode(b64).ok()?;
    if blob.len() != 76 {
        return None;
    }
    let id: [u8; 4] = blob[..4].try_into().ok()?;
    let time = u64::from_be_bytes(blob[4..12].try_into().ok()?);
    Some((id, time, blob[12..].to_vec()))
}

/// Why a checkpoint was not cosigned: each maps to the status the specification gives.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The request is not an `add-checkpoint` body (400).
    #[error("bad add-checkpoint request: {0}")]
    BadRequest(String),
    /// The witness does not witness this log (404).
    #[error("this witness does not witness {0:?}")]
    UnknownLog(String),
    /// No signature by the log's key verifies (403).
    #[error("the checkpoint is not signed by {origin}'s key: {source}")]
    BadSignature {
        /// The log.
        origin: String,
        /// Why.
        source: CheckpointError,
    },
    /// The old size is not the size this witness last cosigned (409; the body is that
    /// size).
    #[error("old size {claimed} is not {size}, the size this witness last cosigned for {origin}")]
    OldSize {
        /// The log.
        origin: String,
        /// The size in the request.
        claimed: u64,
        /// The witness's size.
        size: u64,
    },
    /// Same size, another root: a fork (409).
    #[error(
        "{origin} at size {size} has root {found}, but this witness cosigned root {held} at that size: a fork"
    )]
    Fork {
        /// The log.
        origin: String,
        /// The size.
        size: u64,
        /// The root the witness holds, base64.
        held: String,
        /// The root submitted, base64.
        found: String,
    },
    /// The consistency proof does not verify: the new checkpoint does not extend the one
    /// the witness holds (422).
    #[error(
        "{origin} at size {new} is not consistent with size {old} this witness cosigned (the proof does not verify): a fork or a rollback"
    )]
    Inconsistent {
        /// The log.
        origin: String,
        /// The witness's size.
        old: u64,
        /// The submitted size.
        new: u64,
    },
    /// The witness's view could not be saved: nothing was cosigned (500).
    #[error("saving the witness's view: {0}")]
    Storage(#[from] StorageError),
}

impl WitnessError {
    /// The HTTP status the specification gives for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UnknownLog(_) => 404,
            Self::BadSignature { .. } => 403,
            Self::OldSize { .. } | Self::Fork { .. } => 409,
            Self::Inconsistent { .. } => 422,
            Self::Storage(_) => 500,
        }
    }

    /// Whether the refusal is evidence against the log (a valid signature on a checkpoint
    /// that contradicts what this witness cosigned), to be audited and notified.
    pub fn is_evidence(&self) -> bool {
        matches!(self, Self::Fork { .. } | Self::Inconsistent { .. })
    }
}

/// A parsed `add-checkpoint` body.
#[derive(Debug)]
pub struct AddCheckpoint {
    /// The size the submitter believes the witness holds.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: Vec<u8>,
}

impl AddCheckpoint {
    /// The request body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old);
        for h in &self.proof {
            out.push_str(&STANDARD.encode(h.0));
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.note);
        bytes
    }

    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<Self, WitnessError> {
        let bad = |why: &str| WitnessError::BadRequest(why.to_owned());
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad("the body is too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
        let split = text
            .find("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let (head, note) = (&text[..split], &text[split + 2..]);
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| *n == "0" || !n.starts_with('0'))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("the first line must be `old <size>`"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let bytes = STANDARD
                .decode(line)
                .map_err(|_| bad("a proof line is not base64"))?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("a proof line is not a 32-byte hash"))?;
            proof.push(Hash(hash));
        }
        Ok(Self {
            old,
            proof,
            note: note.as_bytes().to_vec(),
        })
    }
}

/// What a witness holds for one log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    /// The size of the latest checkpoint cosigned.
    pub size: u64,
    /// Its root, base64.
    pub root: String,
    /// That checkpoint's note, as submitted (with the log's signature).
    pub note: String,
}

/// A witness: its name and key, the logs it witnesses, and its persisted view.
#[derive(Debug)]
pub struct Witness {
    name: String,
    key: std::sync::Arc<SigningKey>,
    logs: BTreeMap<String, PublicKey>,
    path: PathBuf,
    view: Mutex<BTreeMap<String, Seen>>,
}

impl Witness {
    /// A witness named `name` signing with `key`, for the logs (origin → the log's key),
    /// keeping its view in the file `path` (read now if it exists).
    pub fn open(
        name: &str,
        key: std::sync::Arc<SigningKey>,
        logs: BTreeMap<String, PublicKey>,
        path: &Path,
    ) -> Result<Self, WitnessOpenError> {
        let view = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| WitnessOpenError::Corrupt {
                path: path.to_path_buf(),
                why: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(WitnessOpenError::Read {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        };
        Ok(Self {
            name: name.to_owned(),
            key,
            logs,
            path: path.to_path_buf(),
            view: Mutex::new(view),
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The latest checkpoint cosigned for `origin`.
    pub fn seen(&self, origin: &str) -> Option<Seen> {
        self.lock().get(origin).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Seen>> {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Handles an `add-checkpoint` body at `now` (Unix seconds): the cosignature line(s) to
    /// answer with, or why not. The view is saved before the answer.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<String, WitnessError> {
        let request = AddCheckpoint::parse(body)?;
        let (origin, _, _) = checkpoint::peek(&request.note)
            .ok_or_else(|| WitnessError::BadRequest("the checkpoint does not parse".to_owned()))?;
        let log_key = self
            .logs
            .get(&origin)
            .ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?;
        let verified = checkpoint::verify(&request.note, &origin, log_key).map_err(|source| {
            WitnessError::BadSignature {
                origin: origin.clone(),
                source,
            }
        })?;
        if request.old > verified.size {
            return Err(WitnessError::BadRequest(format!(
                "old size {} is above the checkpoint's size {}",
                request.old, verified.size
            )));
        }
        // Checked and recorded under one lock: no submission can roll the view back.
        let mut view = self.lock();
        let held = view.get(&origin);
        let held_size = held.map_or(0, |s| s.size);
        if request.old != held_size {
            return Err(WitnessError::OldSize {
                origin,
                claimed: request.old,
                size: held_size,
            });
        }
        let new_root = STANDARD.encode(verified.root.0);
        if let Some(held) = held {
            let held_root = STANDARD
                .decode(&held.root)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(Hash)
                .ok_or_else(|| {
                    WitnessError::BadRequest("the witness's view is damaged".to_owned())
                })?;
            if held.size == verified.size && held_root != verified.root {
                return Err(WitnessError::Fork {
                    origin,
                    size: held.size,
                    held: held.root.clone(),
                    found: new_root,
                });
            }
            if !check_consistency(
                &request.proof,
                verified.size,
                verified.root,
                held.size,
                held_root,
            ) {
                return Err(WitnessError::Inconsistent {
                    origin,
                    old: held.size,
                    new: verified.size,
                });
            }
        } else if !request.proof.is_empty() {
            return Err(WitnessError::BadRequest(
                "the proof must be empty from size 0".to_owned(),
            ));
        }
        let note = String::from_utf8_lossy(&request.note).into_owned();
        let line = cosign(&note, &self.name, &self.key, now).ok_or_else(|| {
            WitnessError::BadRequest("the checkpoint note has no body".to_owned())
        })?;
        let mut next = view.clone();
        next.insert(
            origin,
            Seen {
                size: verified.size,
                root: new_root,
                note,
            },
        );
        let bytes = serde_json::to_vec_pretty(&next)
            .map_err(|e| WitnessError::BadRequest(e.to_string()))?;
        write_file_atomic(&self.path, &bytes)?;
        *view = next;
        Ok(line)
    }
}

/// Why a witness's saved view could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessOpenError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a witness view: refused rather than started empty (an empty view
    /// would cosign a rolled-back log).
    #[error("{}: not a witness view ({why}); restore it from a backup, never delete it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tree::{leaf_hash, node_hash};

    /// The C2SP tlog-cosignature specification's example: its cosignature line carries the
    /// timestamp of the signed message it shows (`time 1679315147`). Its witness key is not
    /// published, so only the layout can be checked against it.
    #[test]
    fn the_specifications_example_cosignature_parses_to_its_timestamp() {
        let line = "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
        let (id, time, sig) = parse_cosignature(line).unwrap();
        assert_eq!(id, [0x8d, 0x66, 0xcf, 0x3f]);
        assert_eq!(time, 1_679_315_147);
        assert_eq!(sig.len(), 64);
        assert_eq!(message("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", time),
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
    }

    fn log_key() -> SigningKey {
        SigningKey::from_seed(&[1; 32]).unwrap()
    }

    /// Root of the first `n` leaves `0..n` (leaf i = leaf_hash([i])), RFC 6962.
    fn root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => crate::audit::tree::EMPTY_HASH,
            1 => leaves[0],
            n => {
                let k = (n as u64).next_power_of_two() as usize / 2;
                let k = if k == n { k / 2 } else { k };
                node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u8, salt: u8) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i, salt])).collect()
    }

    /// RFC 6962 SUBPROOF, for the test's own consistency proofs.
    fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![root(d)] };
        }
        let k = (n as u64).next_power_of_two() as usize / 2;
        let k = if k == n { k / 2 } else { k };
        if m <= k {
            let mut p = subproof(m, &d[..k], b);
            p.push(root(&d[k..]));
            p
        } else {
            let mut p = subproof(m - k, &d[k..], false);
            p.push(root(&d[..k]));
            p
        }
    }

    fn note(leaves: &[Hash]) -> Vec<u8> {
        checkpoint::sign(
            "bglass/proxy-a",
            leaves.len() as u64,
            root(leaves),
            &log_key(),
        )
        .unwrap()
    }

    fn body(old: u64, proof: Vec<Hash>, note: Vec<u8>) -> Vec<u8> {
        AddCheckpoint { old, proof, note }.encode()
    }

    fn witness(dir: &Path) -> Witness {
        let mut logs = BTreeMap::new();
        logs.insert("bglass/proxy-a".to_owned(), log_key().public_key());
        Witness::open(
            "bglass-witness/proxy-b",
            std::sync::Arc::new(SigningKey::from_seed(&[2; 32]).unwrap()),
            logs,
            &dir.join("witness.json"),
        )
        .unwrap()
    }

    #[test]
    fn a_growing_log_is_cosigned_and_the_cosignature_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let w = witness(dir.path());
        let all = leaves(13, 0);
        let first = note(&all[..5]);
        let line = w
            .add_checkpoint(&body(0, vec![], first.clone()), 1_700_000_000)
            .unwrap();
        let cosigned = format!("{}{line}", String::from_utf8(first).unwrap());
        let wkey = SigningKey::from_seed(&[2; 32]).unwrap().public_key();
        assert_eq!(
            cosigned_at(&cosigned, "bglass-witness/proxy-b", &wkey),
            Some(1_700_000_000)
        );
        // Another name, another key, a changed body: no cosignature.
        assert_eq!(cosigned_at(&cosigned, "other", &wkey), None);
        assert_eq!(
            cosigned_at(&cosigned, "bglass-witness/proxy-b", &log_key().public_key()),
            None
        );
        assert_eq!(
            cosigned_at(
                &cosigned.replacen("\n5\n", "\n6\n", 1),
                "bglass-witness/proxy-b",
                &wkey
            ),
            None
        );
        // The log's own signature still verifies beside the cosignature.
        checkpoint::verify(
            cosigned.as_bytes(),
            "bglass/proxy-a",
            &log_key().public_key(),
        )
        .unwrap();

        let proof = subproof(5, &all, true);
        w.add_checkpoint(&body(5, proof, note(&all)), 1_700_000_001)
            .unwrap();
        assert_eq!(w.seen("bglass/proxy-a").unwrap().size, 13);
        // Reopened from its file: the same view.
        let again = witness(dir.path());
        assert_eq!(again.seen("bglass/proxy-a").unwrap().size, 13);
    }

    #[test]
    fn a_rollback_a_fork_and_bad_requests_are_refused_with_the_specified_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let w = witness(dir.path());
        let all = leaves(8, 0);
        w.add_checkpoint(&body(0, vec![], note(&all)), 1).unwrap();
        // A rolled-back log (size 5) submitted from 0: the witness says its size.
        let e = w
            .add_checkpoint(&body(0, vec![], note(&all[..5])), 2)
            .unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
        assert!(e.to_string().contains("is not 8"), "{e}");
        // Submitted as if from 8: old above the size.
        let e = w
            .add_checkpoint(&body(8, vec![], note(&all[..5])), 2)
            .unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        // A fork at the same size.
        let other = leaves(8, 1);
        let e = w
            .add_checkpoint(&body(8, vec![], note(&other)), 2)
            .unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
        assert!(e.is_evidence(), "{e}");
        // A fork that grows: its proof from 8 does not verify against the held root.
        let forked = leaves(12, 1);
        let e = w
            .add_checkpoint(&body(8, subproof(8, &forked, true), note(&forked)), 2)
            .unwrap_err();
        assert_eq!(e.status(), 422, "{e}");
        assert!(e.is_evidence(), "{e}");
        assert_eq!(w.seen("bglass/proxy-a").unwrap().size, 8);
        // Unknown log, bad signature, malformed.
        let foreign = checkpoint::sign("bglass/proxy-z", 8, root(&all), &log_key()).unwrap();
        assert_eq!(
            w.add_checkpoint(&body(0, vec![], foreign), 2)
                .unwrap_err()
                .status(),
            404
        );
        let forged = checkpoint::sign(
            "bglass/proxy-a",
            9,
            root(&leaves(9, 0)),
            &SigningKey::from_seed(&[9; 32]).unwrap(),
        )
        .unwrap();
        assert_eq!(
            w.add_checkpoint(&body(8, vec![], forged), 2)
                .unwrap_err()
                .status(),
            403
        );
        for junk in [
            &b"old 01\n\nx"[..],
            b"new 1\n\n",
            b"old 1\nnot base64!\n\n",
            b"old 1",
        ] {
            assert_eq!(w.add_checkpoint(junk, 2).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn verifier_keys_round_trip_and_a_wrong_id_is_refused() {
        let key = SigningKey::from_seed(&[2; 32]).unwrap().public_key();
        let vkey = cosigner_vkey("bglass-witness/proxy-b", &key);
        let parsed: WitnessKey = vkey.parse().unwrap();
        assert_eq!(parsed.name, "bglass-witness/proxy-b");
        assert_eq!(parsed.key, key);
        let other = vkey.replacen("bglass-witness/proxy-b", "bglass-witness/proxy-c", 1);
        assert!(other.parse::<WitnessKey>().unwrap_err().contains("key id"));
        assert!("nothing".parse::<WitnessKey>().is_err());
        let named: WitnessKey = format!("bglass-witness/proxy-b={key}").parse().unwrap();
        assert_eq!(named, parsed);
    }

    #[test]
    fn a_damaged_view_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("witness.json"), b"{ not json").unwrap();
        let mut logs = BTreeMap::new();
        logs.insert("bglass/proxy-a".to_owned(), log_key().public_key());
        let e = Witness::open(
            "w",
            std::sync::Arc::new(log_key()),
            logs,
            &dir.path().join("witness.json"),
        )
        .unwrap_err();
        assert!(matches!(e, WitnessOpenError::Corrupt { .. }), "{e}");
    }
}
