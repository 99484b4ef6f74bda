//! Ed25519 keys: responder identities, proxy signing keys, and the responder's encrypted key file.
//!
//! A responder key lives in one file, age-encrypted with a passphrase (scrypt), mode 0600.
//! Signatures are always over `domain || message`, where each signed format has its own
//! domain string, so a signature made for one format can never be replayed as another.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

use crate::id::ResponderId;

/// Length of an Ed25519 public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 public key. Written `ed25519:<base64url, no padding>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

/// Why a string or byte string is not a public key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// The `ed25519:` prefix is missing.
    #[error("public key must start with \"ed25519:\"")]
    MissingPrefix,
    /// The text after the prefix is not base64url.
    #[error("public key is not valid base64url")]
    Encoding,
    /// The key does not have 32 bytes.
    #[error("public key has {0} bytes, expected 32")]
    Length(usize),
}

impl PublicKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PublicKeyError> {
        let array: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| PublicKeyError::Length(bytes.len()))?;
        Ok(Self(array))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// A short stable identifier: the first 8 bytes of SHA-256 over the key, in hex.
    pub fn key_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.0);
        hex_lower(&digest.as_ref()[..8])
    }

    /// Checks `signature` over `domain || message`.
    pub fn verify(&self, domain: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let mut signed = Vec::with_capacity(domain.len() + message.len());
        signed.extend_from_slice(domain);
        signed.extend_from_slice(message);
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(&signed, signature)
            .is_ok()
    }
}

/// A statement signed by both ends of a key change (a log's rotation, a responder's rekey):
/// `Err("old")` or `Err("new")` names the first of the two standard-base64 signatures over
/// `domain || message` that does not verify.
pub fn check_both(
    domain: &[u8],
    message: &[u8],
    old: (&PublicKey, &str),
    new: (&PublicKey, &str),
) -> Result<(), &'static str> {
    use base64::engine::general_purpose::STANDARD;
    for (which, (key, sig)) in [("old", old), ("new", new)] {
        let ok = STANDARD
            .decode(sig)
            .is_ok_and(|sig| key.verify(domain, message, &sig));
        if !ok {
            return Err(which);
        }
    }
    Ok(())
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = PublicKeyError;
    fn from_str(s: &str) -> Result<Self, PublicKeyError> {
        let b64 = s
            .strip_prefix("ed25519:")
            .ok_or(PublicKeyError::MissingPrefix)?;
        if b64.len() > 64 {
            return Err(PublicKeyError::Length(b64.len() * 3 / 4));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| PublicKeyError::Encoding)?;
        Self::from_bytes(&bytes)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Why a key could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The PKCS#8 document is not a valid Ed25519 key.
    #[error("the key material is not a valid Ed25519 key")]
    InvalidKey,
}

/// An Ed25519 signing key (a responder's key, or a proxy's grant and checkpoint key).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key from the system's random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Loads a key from a PKCS#8 v2 document (as produced by [`Self::pkcs8_der`]).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|_| KeyError::InvalidKey)?;
        Ok(Self {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// Derives a key from a 32-byte seed. Meant for test vectors and deterministic tests.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| KeyError::InvalidKey)?;
        // Re-encode as PKCS#8 v2 so that every key can be exported the same way.
        let public = pair.public_key().as_ref();
        let mut der = Vec::with_capacity(PKCS8_PREFIX.len() + 32 + PKCS8_MIDDLE.len() + 32);
        der.extend_from_slice(PKCS8_PREFIX);
        der.extend_from_slice(seed);
        der.extend_from_slice(PKCS8_MIDDLE);
        der.extend_from_slice(public);
        Self::from_pkcs8(&der)
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(bytes)
    }

    /// Signs `domain || message`.
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut signed = Vec::with_capacity(domain.len() + message.len());
        signed.extend_from_slice(domain);
        signed.extend_from_slice(message);
        let sig = self.pair.sign(&signed);
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(sig.as_ref());
        out
    }

    /// The key as a PKCS#8 v2 DER document (secret; for TLS certificates and sealing).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

// PKCS#8 v2 (RFC 8410 / RFC 5958) framing for an Ed25519 seed and public key, the same
// bytes ring's `generate_pkcs8` produces.
const PKCS8_PREFIX: &[u8] = &[
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const PKCS8_MIDDLE: &[u8] = &[0x81, 0x21, 0x00];

/// The smallest and largest scrypt work factors (log2 N) accepted for key files.
pub const MIN_WORK_FACTOR: u8 = 10;
/// See [`MIN_WORK_FACTOR`]. 2^20 already needs 1 GiB of memory to open the file.
pub const MAX_WORK_FACTOR: u8 = 20;
/// The work factor used unless the user chooses another: 2^18 (256 MiB, about a second).
pub const DEFAULT_WORK_FACTOR: u8 = 18;
/// The shortest accepted passphrase, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// The largest key file accepted when opening one.
pub const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

const KEY_FILE_FORMAT: &str = "bglass-responder-key-v1";

/// Why a key file could not be written or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Refused to replace an existing key file.
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists {
        /// The key file.
        path: String,
    },
    /// Group or others can read the file.
    #[error("{path} is readable by other users (mode {mode:o}); run: chmod 600 {path}")]
    InsecurePermissions {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The passphrase is shorter than [`MIN_PASSPHRASE_CHARS`].
    #[error("passphrase is too short: use at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    /// The work factor is outside the accepted range.
    #[error("scrypt work factor {0} is outside {MIN_WORK_FACTOR}..={MAX_WORK_FACTOR}")]
    WorkFactor(u8),
    /// The passphrase does not open the file.
    #[error("wrong passphrase for key file {path}")]
    WrongPassphrase {
        /// The key file.
        path: String,
    },
    /// The file asks for more scrypt work than this machine allows.
    #[error("key file {path} needs scrypt work factor {required}, above the limit")]
    ExcessiveWork {
        /// The key file.
        path: String,
        /// The work factor recorded in the file.
        required: u8,
    },
    /// The file is too large to be a key file.
    #[error("{path} is {size} bytes, too large to be a bglass key file")]
    TooLarge {
        /// The key file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The file is not an age file protected by a passphrase.
    #[error("{path} is not a bglass key file (not age-encrypted with a passphrase)")]
    NotAKeyFile {
        /// The key file.
        path: String,
    },
    /// The file decrypted but its content is not a responder key.
    #[error("{path} decrypted but does not hold a valid bglass responder key")]
    Corrupt {
        /// The key file.
        path: String,
    },
    /// Encryption failed.
    #[error("encrypting the key failed: {0}")]
    Encrypt(String),
    /// The key itself failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileBody {
    format: String,
    responder: ResponderId,
    pkcs8: String,
}

impl Drop for KeyFileBody {
    /// The key, base64-encoded, must not outlive its use in freed memory.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pkcs8);
    }
}

/// A responder's identity as held on their machine: who they are and their signing key.
#[derive(Debug)]
pub struct ResponderIdentity {
    /// The responder's roster id.
    pub id: ResponderId,
    /// Their key.
    pub key: SigningKey,
}

impl ResponderIdentity {
    /// Encrypts the identity with `passphrase` and writes it to a new 0600 file.
    ///
    /// Refuses to overwrite an existing file.
    pub fn create_file(
        &self,
        path: &Path,
        passphrase: &SecretString,
        work_factor: u8,
    ) -> Result<(), KeyFileError> {
        let shown = path.display().to_string();
        if passphrase.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(KeyFileError::WeakPassphrase);
        }
        if !(MIN_WORK_FACTOR..=MAX_WORK_FACTOR).contains(&work_factor) {
            return Err(KeyFileError::WorkFactor(work_factor));
        }
        let body = KeyFileBody {
            format: KEY_FILE_FORMAT.to_owned(),
            responder: self.id.clone(),
            pkcs8: URL_SAFE_NO_PAD.encode(self.key.pkcs8_der()),
        };
        let plain = Zeroizing::new(
            serde_json::to_vec(&body).map_err(|e| KeyFileError::Encrypt(e.to_string()))?,
        );
        let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
        recipient.set_work_factor(work_factor);
        let sealed = age::encrypt_and_armor(&recipient, &plain)
            .map_err(|e| KeyFileError::Encrypt(e.to_string()))?;

        let io = |source| KeyFileError::Io {
            path: shown.clone(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: shown.clone(),
                }
            } else {
                io(e)
            }
        })?;
        file.write_all(sealed.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// Opens and decrypts a key file written by [`Self::create_file`].
    pub fn open_file(path: &Path, passphrase: &SecretString) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        let io = |source| KeyFileError::Io {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::InsecurePermissions { path: shown, mode });
            }
        }
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(KeyFileError::TooLarge {
                path: shown,
                size: meta.len(),
            });
        }
        let mut sealed = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut sealed)
            .map_err(io)?;
        Self::open_bytes(&sealed, passphrase, &shown)
    }

    /// Decrypts a key file's bytes; `shown` names the file in errors.
    pub fn open_bytes(
        sealed: &[u8],
        passphrase: &SecretString,
        shown: &str,
    ) -> Result<Self, KeyFileError> {
        let not_key = || KeyFileError::NotAKeyFile {
            path: shown.to_owned(),
        };
        let reader = age::armor::ArmoredReader::new(sealed);
        let decryptor = age::Decryptor::new_buffered(reader).map_err(|_| not_key())?;
        if !decryptor.is_scrypt() {
            return Err(not_key());
        }
        let mut identity = age::scrypt::Identity::new(passphrase.clone());
        identity.set_max_work_factor(MAX_WORK_FACTOR);
        let reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::DecryptionFailed
                | age::DecryptError::NoMatchingKeys
                | age::DecryptError::KeyDecryptionFailed => KeyFileError::WrongPassphrase {
                    path: shown.to_owned(),
                },
                age::DecryptError::ExcessiveWork { required, .. } => KeyFileError::ExcessiveWork {
                    path: shown.to_owned(),
                    required,
                },
                _ => not_key(),
            })?;
        let mut plain = Zeroizing::new(Vec::new());
        let corrupt = || KeyFileError::Corrupt {
            path: shown.to_owned(),
        };
        reader
            .take(MAX_KEY_FILE_BYTES)
            .read_to_end(&mut plain)
            .map_err(|_| corrupt())?;
        let body: KeyFileBody = serde_json::from_slice(&plain).map_err(|_| corrupt())?;
        if body.format != KEY_FILE_FORMAT {
            return Err(corrupt());
        }
        let der = Zeroizing::new(URL_SAFE_NO_PAD.decode(&body.pkcs8).map_err(|_| corrupt())?);
        let key = SigningKey::from_pkcs8(&der).map_err(|_| corrupt())?;
        Ok(Self {
            id: body.responder.clone(),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn public_key_text_round_trips() {
        let key = SigningKey::from_seed(&[7; 32]).unwrap();
        let pk = key.public_key();
        let text = pk.to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.parse::<PublicKey>().unwrap(), pk);
        assert_eq!(
            "ssh-ed25519:AAAA".parse::<PublicKey>(),
            Err(PublicKeyError::MissingPrefix)
        );
        assert_eq!(
            "ed25519:!!".parse::<PublicKey>(),
            Err(PublicKeyError::Encoding)
        );
        assert_eq!(
            "ed25519:AAAA".parse::<PublicKey>(),
            Err(PublicKeyError::Length(3))
        );
    }

    #[test]
    fn seeded_keys_match_generated_encoding() {
        let generated = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(generated.pkcs8_der()).unwrap();
        assert_eq!(generated.public_key(), again.public_key());
        let seeded = SigningKey::from_seed(&[1; 32]).unwrap();
        assert_eq!(seeded.pkcs8_der().len(), generated.pkcs8_der().len());
    }

    #[test]
    fn signatures_are_domain_separated() {
        let key = SigningKey::from_seed(&[2; 32]).unwrap();
        let sig = key.sign(b"domain-a\0", b"hello");
        assert!(key.public_key().verify(b"domain-a\0", b"hello", &sig));
        assert!(!key.public_key().verify(b"domain-b\0", b"hello", &sig));
        assert!(!key.public_key().verify(b"domain-a\0", b"hellO", &sig));
    }

    #[test]
    fn key_file_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.age");
        let identity = ResponderIdentity {
            id: ResponderId::new("alice").unwrap(),
            key: SigningKey::generate().unwrap(),
        };
        identity
            .create_file(&path, &pass("correct horse"), MIN_WORK_FACTOR)
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        let opened = ResponderIdentity::open_file(&path, &pass("correct horse")).unwrap();
        assert_eq!(opened.id.as_str(), "alice");
        assert_eq!(opened.key.public_key(), identity.key.public_key());

        let wrong = ResponderIdentity::open_file(&path, &pass("wrong horse")).unwrap_err();
        assert!(
            matches!(wrong, KeyFileError::WrongPassphrase { .. }),
            "{wrong}"
        );

        let again = identity
            .create_file(&path, &pass("correct horse"), MIN_WORK_FACTOR)
            .unwrap_err();
        assert!(matches!(again, KeyFileError::Exists { .. }));
    }

    #[test]
    fn key_file_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let identity = ResponderIdentity {
            id: ResponderId::new("bob").unwrap(),
            key: SigningKey::generate().unwrap(),
        };
        let path = dir.path().join("k");
        assert!(matches!(
            identity.create_file(&path, &pass("short"), MIN_WORK_FACTOR),
            Err(KeyFileError::WeakPassphrase)
        ));
        assert!(matches!(
            identity.create_file(&path, &pass("long enough"), 30),
            Err(KeyFileError::WorkFactor(30))
        ));

        std::fs::write(&path, b"not an age file").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                ResponderIdentity::open_file(&path, &pass("long enough")),
                Err(KeyFileError::InsecurePermissions { mode: 0o644, .. })
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(
            ResponderIdentity::open_file(&path, &pass("long enough")),
            Err(KeyFileError::NotAKeyFile { .. })
        ));
    }
}
