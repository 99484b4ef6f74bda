//! Checkpoints: the log's signed tree heads, in C2SP tlog-checkpoint format inside a C2SP
//! signed note, signed with the proxy's Ed25519 key (through ring).
//!
//! ```text
//! bglass/proxy-a
//! 10000
//! <base64 root hash>
//!
//! — bglass/proxy-a <base64(key id || signature)>
//! ```
//!
//! The key id is the first four bytes of SHA-256(name || "\n" || 0x01 || public key), as
//! C2SP signed-note recommends for Ed25519, so any signed-note tool can check our notes.
//! The same key signs grants, but grant signatures cover a domain prefix that ends in a NUL
//! byte, which no note text can start with, so neither can be passed off as the other.

use signed_note::{Note, Signer, VerificationError, Verifier, Verifiers};
use tlog_tiles::Checkpoint;

use super::tree::Hash;
use crate::id::ProxyId;
use crate::keys::{PublicKey, SigningKey};

/// Largest checkpoint note accepted.
pub const MAX_CHECKPOINT_BYTES: usize = 4096;

/// The log origin (checkpoint first line and signer name) of a proxy.
pub fn origin(proxy: &ProxyId) -> String {
    format!("bglass/{proxy}")
}

/// The C2SP signed-note key id of an Ed25519 key under a name.
pub fn note_key_id(name: &str, key: &PublicKey) -> u32 {
    let mut encoded = Vec::with_capacity(33);
    encoded.push(0x01);
    encoded.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &encoded)
}

/// The verifier key of an Ed25519 key under a name, in the C2SP signed-note text form
/// (`<name>+<key id, 8 hex digits>+<base64 of 0x01 || key>`), as other signed-note tools
/// (Go's `golang.org/x/mod/sumdb/note`, `note.NewVerifier`) read it: how an auditor checks
/// a proxy's checkpoints with software that is not bglass.
pub fn verifier_key(name: &str, key: &PublicKey) -> String {
    use base64::Engine;
    let mut encoded = Vec::with_capacity(33);
    encoded.push(0x01);
    encoded.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{:08x}+{}",
        note_key_id(name, key),
        base64::engine::general_purpose::STANDARD.encode(encoded)
    )
}

/// Signs notes with a proxy key.
pub struct NoteSigner<'a> {
    name: String,
    id: u32,
    key: &'a SigningKey,
}

impl std::fmt::Debug for NoteSigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.id)
    }
}

impl<'a> NoteSigner<'a> {
    /// A signer named `name` using `key`.
    pub fn new(name: &str, key: &'a SigningKey) -> Self {
        Self {
            name: name.to_owned(),
            id: note_key_id(name, &key.public_key()),
            key,
        }
    }
}

impl Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.key.sign(b"", msg).to_vec())
    }
}

/// Verifies notes against one proxy key.
#[derive(Debug)]
struct NoteVerifier {
    name: String,
    id: u32,
    key: PublicKey,
}

impl Verifier for NoteVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.key.verify(b"", msg, sig)
    }
}

impl Verifiers for NoteVerifier {
    fn verifier(&self, name: &str, id: u32) -> Result<&dyn Verifier, VerificationError> {
        if name == self.name && id == self.id {
            Ok(self)
        } else {
            Err(VerificationError::UnknownKey {
                name: name.to_owned(),
                id,
            })
        }
    }
}

impl CheckpointError {
    /// Whether the bytes are not a note at all (cut short or garbled, as a crash leaves a
    /// note it was writing), rather than a whole note that fails its signature.
    pub fn is_unreadable(&self) -> bool {
        matches!(self, Self::Note(_) | Self::Malformed)
    }
}

/// Why a checkpoint was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Larger than [`MAX_CHECKPOINT_BYTES`].
    #[error("checkpoint is too large: {0} bytes")]
    TooLarge(usize),
    /// Not a signed note.
    #[error("checkpoint is not a signed note: {0}")]
    Note(String),
    /// Signed, but not by the expected key.
    #[error("checkpoint is not signed by the proxy key (signed by key id(s) {found})")]
    WrongKey {
        /// The key ids found, hex.
        found: String,
    },
    /// The expected key's signature does not verify: the note was altered.
    #[error("checkpoint signature does not verify: the checkpoint was altered")]
    BadSignature,
    /// The note text is not a C2SP checkpoint.
    #[error("note is not a C2SP checkpoint")]
    Malformed,
    /// The origin line names another log.
    #[error("checkpoint is for log {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// The expected origin.
        expected: String,
        /// The origin in the note.
        found: String,
    },
}

/// Signs a checkpoint of the tree (`size`, `root`) for `origin`.
pub fn sign(
    origin: &str,
    size: u64,
    root: Hash,
    key: &SigningKey,
) -> Result<Vec<u8>, CheckpointError> {
    sign_by(origin, size, root, &[key])
}

/// Signs a checkpoint with several keys of the log (during a rotation: the new key, and
/// the old one so that whoever knows only the old key accepts the checkpoint that first
/// covers the transition).
pub fn sign_by(
    origin: &str,
    size: u64,
    root: Hash,
    keys: &[&SigningKey],
) -> Result<Vec<u8>, CheckpointError> {
    let checkpoint =
        Checkpoint::new(origin, size, root, "").map_err(|_| CheckpointError::Malformed)?;
    let mut note =
        Note::new(&checkpoint.to_bytes(), &[]).map_err(|e| CheckpointError::Note(e.to_string()))?;
    let signers: Vec<NoteSigner<'_>> = keys.iter().map(|k| NoteSigner::new(origin, k)).collect();
    let signers: Vec<&dyn Signer> = signers.iter().map(|s| s as &dyn Signer).collect();
    note.add_sigs(&signers)
        .map_err(|e| CheckpointError::Note(e.to_string()))?;
    Ok(note.to_bytes())
}

/// A checkpoint whose signature and origin were checked.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
    /// The signed note, exactly as received.
    pub note: Vec<u8>,
}

/// Checks a signed checkpoint against the proxy's key and origin.
pub fn verify(
    note_bytes: &[u8],
    origin: &str,
    key: &PublicKey,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    if note_bytes.len() > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::TooLarge(note_bytes.len()));
    }
    let note = Note::from_bytes(note_bytes).map_err(|e| CheckpointError::Note(e.to_string()))?;
    let verifier = NoteVerifier {
        name: origin.to_owned(),
        id: note_key_id(origin, key),
        key: *key,
    };
    match note.verify(&verifier) {
        Ok(_) => {}
        Err(signed_note::NoteError::InvalidSignature { .. }) => {
            return Err(CheckpointError::BadSignature);
        }
        Err(signed_note::NoteError::UnverifiedNote) => {
            let found = note_signature_ids(note_bytes);
            return Err(CheckpointError::WrongKey { found });
        }
        Err(e) => return Err(CheckpointError::Note(e.to_string())),
    }
    let checkpoint = Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::Malformed)?;
    if checkpoint.origin() != origin {
        return Err(CheckpointError::WrongOrigin {
            expected: origin.to_owned(),
            found: checkpoint.origin().chars().take(80).collect(),
        });
    }
    Ok(VerifiedCheckpoint {
        size: checkpoint.size(),
        root: *checkpoint.hash(),
        note: note_bytes.to_vec(),
    })
}

/// Reads size and root from a checkpoint without checking its signature (for reporting
/// what a refused checkpoint claimed).
pub fn peek(note_bytes: &[u8]) -> Option<(String, u64, Hash)> {
    let note = Note::from_bytes(note_bytes).ok()?;
    let checkpoint = Checkpoint::from_bytes(note.text()).ok()?;
    Some((
        checkpoint.origin().to_owned(),
        checkpoint.size(),
        *checkpoint.hash(),
    ))
}

fn note_signature_ids(note_bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(note_bytes);
    let ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| l.split(' ').nth(1))
        .filter_map(|b64| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .filter(|raw| raw.len() >= 4)
        .map(|raw| format!("{:02x}{:02x}{:02x}{:02x}", raw[0], raw[1], raw[2], raw[3]))
        .collect();
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32]).unwrap()
    }

    #[test]
    fn signed_checkpoints_verify_and_tampering_is_named() {
        let k = key(1);
        let origin = origin(&ProxyId::new("proxy-a").unwrap());
        let root = super::super::tree::leaf_hash(b"x");
        let note = sign(&origin, 42, root, &k).unwrap();
        let text = String::from_utf8(note.clone()).unwrap();
        assert!(text.starts_with("bglass/proxy-a\n42\n"), "{text}");
        assert!(text.contains("\n\n\u{2014} bglass/proxy-a "), "{text}");
        let verified = verify(&note, &origin, &k.public_key()).unwrap();
        assert_eq!((verified.size, verified.root), (42, root));

        let altered = text.replace("\n42\n", "\n43\n");
        assert_eq!(
            verify(altered.as_bytes(), &origin, &k.public_key()),
            Err(CheckpointError::BadSignature)
        );

        let other = sign(&origin, 42, root, &key(2)).unwrap();
        assert!(matches!(
            verify(&other, &origin, &k.public_key()),
            Err(CheckpointError::WrongKey { .. })
        ));
        assert!(matches!(
            verify(&note, "bglass/proxy-b", &k.public_key()),
            Err(CheckpointError::WrongKey { .. })
        ));
        assert!(matches!(
            verify(b"garbage", &origin, &k.public_key()),
            Err(CheckpointError::Note(_))
        ));
        assert_eq!(peek(&note), Some((origin, 42, root)));
    }
}
