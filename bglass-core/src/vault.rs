//! The proxy's vault (`secrets.age`): upstream credentials and the proxy's own private keys,
//! as TOML inside an age file encrypted to the proxy's X25519 identity (and to any offline
//! recovery recipients the operator adds).
//!
//! Responders never see these values: the data plane injects upstream credentials, and the
//! keys never leave the proxy.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::id::SecretName;

/// Largest vault file accepted.
pub const MAX_VAULT_BYTES: u64 = 1024 * 1024;
/// Longest secret value.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// Why the vault could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The identity file is not an age X25519 identity.
    #[error("{0}: not an age identity (AGE-SECRET-KEY-1…)")]
    Identity(String),
    /// A recipient is not an age X25519 recipient.
    #[error("recipient {0:?} is not an age recipient (age1…)")]
    Recipient(String),
    /// The vault does not decrypt with this identity.
    #[error("{0}: cannot decrypt the vault with this proxy's identity")]
    Decrypt(String),
    /// The decrypted content is not the vault's TOML.
    #[error("{path}: decrypted, but the content is not a vault: {why}")]
    Content {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The file is larger than [`MAX_VAULT_BYTES`].
    #[error("{0}: larger than {MAX_VAULT_BYTES} bytes")]
    TooLarge(String),
    /// A value is empty, too long or has a line break.
    #[error("secret {0}: the value must be 1-{MAX_SECRET_BYTES} bytes without line breaks")]
    Value(String),
    /// Encryption failed.
    #[error("encrypting the vault failed: {0}")]
    Encrypt(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> VaultError + '_ {
    move |source| VaultError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The proxy's vault identity (age X25519).
pub struct VaultIdentity(age::x25519::Identity);

impl std::fmt::Debug for VaultIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultIdentity({})", self.0.to_public())
    }
}

impl VaultIdentity {
    /// A new identity.
    pub fn generate() -> Self {
        Self(age::x25519::Identity::generate())
    }

    /// Writes the identity to a new 0600 file.
    pub fn create_file(&self, path: &Path) -> Result<(), VaultError> {
        let text = Zeroizing::new(format!(
            "# bglass proxy vault identity: decrypts secrets.age. Keep it private.\n# public key: {}\n{}\n",
            self.0.to_public(),
            self.0.to_string().expose_secret()
        ));
        write_private(path, text.as_bytes())
    }

    /// Reads an identity file.
    pub fn open_file(path: &Path) -> Result<Self, VaultError> {
        let text = read_bounded(path, 4096)?;
        let text = Zeroizing::new(String::from_utf8_lossy(&text).into_owned());
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .ok_or_else(|| VaultError::Identity(path.display().to_string()))?;
        age::x25519::Identity::from_str(line)
            .map(Self)
            .map_err(|_| VaultError::Identity(path.display().to_string()))
    }

    /// The matching recipient (`age1…`).
    pub fn recipient(&self) -> String {
        self.0.to_public().to_string()
    }
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, VaultError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut out = Vec::new();
    file.take(max + 1).read_to_end(&mut out).map_err(io(path))?;
    if out.len() as u64 > max {
        return Err(VaultError::TooLarge(path.display().to_string()));
    }
    Ok(out)
}

/// Writes a new file with mode 0600 (replacing an existing one atomically).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VaultFile {
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

/// The decrypted vault.
pub struct Vault {
    /// Extra recipients (offline recovery keys) the vault is also encrypted to.
    recipients: Vec<String>,
    secrets: BTreeMap<SecretName, SecretString>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// An empty vault.
    pub fn new() -> Self {
        Self {
            recipients: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }

    /// Decrypts `path` with `identity`.
    pub fn open(path: &Path, identity: &VaultIdentity) -> Result<Self, VaultError> {
        let shown = path.display().to_string();
        let sealed = read_bounded(path, MAX_VAULT_BYTES)?;
        let plain = Zeroizing::new(
            age::decrypt(&identity.0, &sealed).map_err(|_| VaultError::Decrypt(shown.clone()))?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| VaultError::Content {
            path: shown.clone(),
            why: "not UTF-8".to_owned(),
        })?;
        let file: VaultFile = toml::from_str(text).map_err(|e| VaultError::Content {
            path: shown.clone(),
            why: e.message().to_owned(),
        })?;
        let mut secrets = BTreeMap::new();
        for (name, value) in file.secrets {
            let name = SecretName::new(&name).map_err(|e| VaultError::Content {
                path: shown.clone(),
                why: e.to_string(),
            })?;
            secrets.insert(name, SecretString::from(value));
        }
        Ok(Self {
            recipients: file.recipients,
            secrets,
        })
    }

    /// Encrypts the vault to `identity` and the extra recipients, replacing `path`.
    pub fn save(&self, path: &Path, identity: &VaultIdentity) -> Result<(), VaultError> {
        let mut recipients: Vec<age::x25519::Recipient> = vec![identity.0.to_public()];
        for r in &self.recipients {
            recipients.push(r.parse().map_err(|_| VaultError::Recipient(r.clone()))?);
        }
        let file = VaultFile {
            recipients: self.recipients.clone(),
            secrets: self
                .secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.expose_secret().to_owned()))
                .collect(),
        };
        let plain =
            Zeroizing::new(toml::to_string(&file).map_err(|e| VaultError::Encrypt(e.to_string()))?);
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| VaultError::Encrypt(e.to_string()))?;
        let mut sealed = Vec::new();
        let mut writer = encryptor
            .wrap_output(
                age::armor::ArmoredWriter::wrap_output(&mut sealed, age::armor::Format::AsciiArmor)
                    .map_err(|e| VaultError::Encrypt(e.to_string()))?,
            )
            .map_err(|e| VaultError::Encrypt(e.to_string()))?;
        writer
            .write_all(plain.as_bytes())
            .map_err(|e| VaultError::Encrypt(e.to_string()))?;
        writer
            .finish()
            .and_then(|armor| armor.finish())
            .map_err(|e| VaultError::Encrypt(e.to_string()))?;
        write_private(path, &sealed)
    }

    /// Sets a secret.
    pub fn set(&mut self, name: SecretName, value: SecretString) -> Result<(), VaultError> {
        let v = value.expose_secret();
        if v.is_empty() || v.len() > MAX_SECRET_BYTES || v.contains(['\n', '\r']) {
            return Err(VaultError::Value(name.to_string()));
        }
        self.secrets.insert(name, value);
        Ok(())
    }

    /// A secret's value.
    pub fn get(&self, name: &SecretName) -> Option<&SecretString> {
        self.secrets.get(name)
    }

    /// Removes a secret; whether it existed.
    pub fn remove(&mut self, name: &SecretName) -> bool {
        self.secrets.remove(name).is_some()
    }

    /// The names of the secrets held.
    pub fn names(&self) -> impl Iterator<Item = &SecretName> {
        self.secrets.keys()
    }

    /// Adds an offline recovery recipient (`age1…`).
    pub fn add_recipient(&mut self, recipient: &str) -> Result<(), VaultError> {
        recipient
            .parse::<age::x25519::Recipient>()
            .map_err(|_| VaultError::Recipient(recipient.to_owned()))?;
        if !self.recipients.iter().any(|r| r == recipient) {
            self.recipients.push(recipient.to_owned());
        }
        Ok(())
    }
}

impl Default for Vault {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_round_trips_and_refuses_other_identities() {
        let dir = tempfile::tempdir().unwrap();
        let id = VaultIdentity::generate();
        id.create_file(&dir.path().join("vault.key")).unwrap();
        let id = VaultIdentity::open_file(&dir.path().join("vault.key")).unwrap();
        let mut vault = Vault::new();
        vault
            .set(
                SecretName::new("grafana_token").unwrap(),
                SecretString::from("t0k3n".to_owned()),
            )
            .unwrap();
        let recovery = VaultIdentity::generate();
        vault.add_recipient(&recovery.recipient()).unwrap();
        let path = dir.path().join("secrets.age");
        vault.save(&path, &id).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("t0k3n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let opened = Vault::open(&path, &id).unwrap();
        assert_eq!(
            opened
                .get(&SecretName::new("grafana_token").unwrap())
                .unwrap()
                .expose_secret(),
            "t0k3n"
        );
        // The offline recovery identity opens it too; a stranger does not.
        assert!(Vault::open(&path, &recovery).is_ok());
        assert!(matches!(
            Vault::open(&path, &VaultIdentity::generate()),
            Err(VaultError::Decrypt(_))
        ));
        assert!(matches!(
            vault.set(
                SecretName::new("x").unwrap(),
                SecretString::from("a\nb".to_owned())
            ),
            Err(VaultError::Value(_))
        ));
    }
}
