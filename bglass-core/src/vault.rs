//! The proxy's vault (`secrets.age`): upstream credentials and the proxy's own private keys,
//! as TOML inside an age file encrypted to the proxy's X25519 identity (and to any offline
//! recovery recipients the operator adds).
//!
//! Responders never see these values: the data plane injects upstream credentials, and the
//! keys never leave the proxy.
//!
//! Two kinds of entry live apart. The proxy's own keys (names starting `bglass.`) are read
//! only through [`Vault::proxy_key`] and can never be injected. An upstream credential is
//! bound, when the operator stores it, to the services and upstream addresses it may be sent
//! to; [`Vault::credential`] hands it out only for such a pair, so that a catalog change alone
//! can never send a credential (or a key) to an address of its choosing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::catalog::{Catalog, ServiceKind, Upstream};
use crate::id::{SecretName, ServiceName};

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
    /// A file holding key material is readable or writable by group or others.
    #[error("{path} has mode {mode:o}: it must be readable by its owner only (chmod 600 {path})")]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A name starting with `bglass.` belongs to the proxy's own keys.
    #[error(
        "{0}: names starting with \"bglass.\" hold the proxy's own keys, which are never upstream credentials"
    )]
    Reserved(String),
    /// A proxy key name that does not start with `bglass.`.
    #[error("{0}: the proxy's own keys are named \"bglass.…\"")]
    NotAProxyKey(String),
    /// A credential stored with no service to send it to.
    #[error("secret {0}: a credential must be bound to at least one service (--for SERVICE)")]
    Unbound(String),
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

    /// Reads an identity file, refusing one that group or others may read.
    pub fn open_file(path: &Path) -> Result<Self, VaultError> {
        check_private(path)?;
        let text = Zeroizing::new(read_bounded(path, 4096)?);
        let text = Zeroizing::new(String::from_utf8_lossy(&text[..]).into_owned());
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

/// Refuses a key file that group or others may read or write.
fn check_private(path: &Path) -> Result<(), VaultError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io(path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(VaultError::Permissions {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    Ok(())
}

/// Writes a file with mode 0600, replacing an existing one atomically and durably. The
/// temporary file has a fresh random name and is created new (`O_EXCL`), so that a file left
/// by someone else (with other permissions, or a link) is never reused.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let suffix = crate::id::random_bytes::<8>()
        .map(|b| crate::keys::hex_lower(&b))
        .map_err(|e| VaultError::Encrypt(e.to_string()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{suffix}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VaultFile {
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// Credential name → the (service, upstream) pairs it may be sent to.
    #[serde(default)]
    bindings: BTreeMap<String, Vec<Binding>>,
}

impl Drop for VaultFile {
    /// The plaintext values copied in for saving must not linger in freed memory.
    fn drop(&mut self) {
        for value in self.secrets.values_mut() {
            zeroize::Zeroize::zeroize(value);
        }
    }
}

/// A place a credential may be sent: a service of the catalog at one upstream.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The service.
    pub service: String,
    /// The upstream, as [`Upstream::binding`] writes it (scheme, address and pin).
    pub upstream: String,
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.service, self.upstream)
    }
}

/// Why a credential may not be sent where it was asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The name is one of the proxy's own keys: never injectable.
    #[error("{0} is one of the proxy's own keys and is never sent upstream")]
    Reserved(String),
    /// The vault holds no such credential.
    #[error("the vault holds no credential {0}")]
    Missing(String),
    /// The credential is not bound to this service at this upstream.
    #[error("credential {secret} is not bound to {service} at {upstream} (bound to: {bound})")]
    NotBound {
        /// The credential.
        secret: String,
        /// The service asking.
        service: String,
        /// Where it would go.
        upstream: String,
        /// Where it may go.
        bound: String,
    },
}

/// The decrypted vault.
pub struct Vault {
    /// Extra recipients (offline recovery keys) the vault is also encrypted to.
    recipients: Vec<String>,
    secrets: BTreeMap<SecretName, SecretString>,
    bindings: BTreeMap<SecretName, Vec<Binding>>,
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
            bindings: BTreeMap::new(),
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
        let name_of = |name: &str| {
            SecretName::new(name).map_err(|e| VaultError::Content {
                path: shown.clone(),
                why: e.to_string(),
            })
        };
        let mut file = file;
        let mut secrets = BTreeMap::new();
        for (name, value) in std::mem::take(&mut file.secrets) {
            secrets.insert(name_of(&name)?, SecretString::from(value));
        }
        let mut bindings = BTreeMap::new();
        for (name, list) in std::mem::take(&mut file.bindings) {
            let name = name_of(&name)?;
            if name.is_reserved() {
                return Err(VaultError::Content {
                    path: shown.clone(),
                    why: format!("{name} is one of the proxy's own keys and cannot be bound"),
                });
            }
            bindings.insert(name, list);
        }
        Ok(Self {
            recipients: std::mem::take(&mut file.recipients),
            secrets,
            bindings,
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
            bindings: self
                .bindings
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
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

    fn check_value(name: &SecretName, value: &SecretString) -> Result<(), VaultError> {
        let v = value.expose_secret();
        if v.is_empty() || v.len() > MAX_SECRET_BYTES || v.contains(['\n', '\r']) {
            return Err(VaultError::Value(name.to_string()));
        }
        Ok(())
    }

    /// Stores an upstream credential and the places it may be sent to (replacing both).
    pub fn set_credential(
        &mut self,
        name: SecretName,
        value: SecretString,
        bindings: Vec<Binding>,
    ) -> Result<(), VaultError> {
        if name.is_reserved() {
            return Err(VaultError::Reserved(name.to_string()));
        }
        if bindings.is_empty() {
            return Err(VaultError::Unbound(name.to_string()));
        }
        Self::check_value(&name, &value)?;
        self.secrets.insert(name.clone(), value);
        self.bind(&name, bindings)
    }

    /// Replaces the places a stored credential may be sent to.
    pub fn bind(
        &mut self,
        name: &SecretName,
        mut bindings: Vec<Binding>,
    ) -> Result<(), VaultError> {
        if name.is_reserved() {
            return Err(VaultError::Reserved(name.to_string()));
        }
        if bindings.is_empty() {
            return Err(VaultError::Unbound(name.to_string()));
        }
        bindings.sort();
        bindings.dedup();
        self.bindings.insert(name.clone(), bindings);
        Ok(())
    }

    /// Stores one of the proxy's own keys (`bglass.…`).
    pub fn set_proxy_key(
        &mut self,
        name: SecretName,
        value: SecretString,
    ) -> Result<(), VaultError> {
        if !name.is_reserved() {
            return Err(VaultError::NotAProxyKey(name.to_string()));
        }
        Self::check_value(&name, &value)?;
        self.secrets.insert(name, value);
        Ok(())
    }

    /// One of the proxy's own keys; `None` for any other name.
    pub fn proxy_key(&self, name: &SecretName) -> Option<&SecretString> {
        if name.is_reserved() {
            self.secrets.get(name)
        } else {
            None
        }
    }

    /// Removes one of the proxy's own keys (the offline CA key, moved out of the vault).
    pub fn remove_proxy_key(&mut self, name: &SecretName) -> bool {
        name.is_reserved() && self.secrets.remove(name).is_some()
    }

    /// The credential `name` for sending to `service` at `upstream`: only when the operator
    /// bound it there, and never one of the proxy's own keys.
    pub fn credential(
        &self,
        name: &SecretName,
        service: &ServiceName,
        upstream: &Upstream,
    ) -> Result<&SecretString, CredentialError> {
        if name.is_reserved() {
            return Err(CredentialError::Reserved(name.to_string()));
        }
        let value = self
            .secrets
            .get(name)
            .ok_or_else(|| CredentialError::Missing(name.to_string()))?;
        let wanted = Binding {
            service: service.to_string(),
            upstream: upstream.binding(),
        };
        let bound = self
            .bindings
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if bound.contains(&wanted) {
            Ok(value)
        } else {
            Err(CredentialError::NotBound {
                secret: name.to_string(),
                service: wanted.service,
                upstream: wanted.upstream,
                bound: if bound.is_empty() {
                    "nothing".to_owned()
                } else {
                    bound
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
        }
    }

    /// Every injection of `catalog` whose credential the vault would refuse to send, with why.
    pub fn unbound(&self, catalog: &Catalog) -> Vec<(ServiceName, CredentialError)> {
        catalog
            .services()
            .iter()
            .filter_map(|s| match &s.kind {
                ServiceKind::Http {
                    inject: Some(inject),
                    ..
                } => self
                    .credential(&inject.secret, &s.name, &s.upstream)
                    .err()
                    .map(|e| (s.name.clone(), e)),
                _ => None,
            })
            .collect()
    }

    /// Removes an upstream credential and its bindings; whether it existed.
    pub fn remove(&mut self, name: &SecretName) -> bool {
        if name.is_reserved() {
            return false;
        }
        self.bindings.remove(name);
        self.secrets.remove(name).is_some()
    }

    /// The upstream credentials held, with where each may be sent (never the proxy's keys).
    pub fn credentials(&self) -> impl Iterator<Item = (&SecretName, &[Binding])> {
        self.secrets.keys().filter(|n| !n.is_reserved()).map(|n| {
            (
                n,
                self.bindings.get(n).map(Vec::as_slice).unwrap_or_default(),
            )
        })
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

    fn name(n: &str) -> SecretName {
        SecretName::new(n).unwrap()
    }

    fn upstream(addr: &str) -> Upstream {
        Upstream {
            addr: addr.parse().unwrap(),
            tls: None,
        }
    }

    fn grafana_binding() -> Binding {
        Binding {
            service: "grafana".to_owned(),
            upstream: upstream("127.0.0.1:18001").binding(),
        }
    }

    #[test]
    fn vault_round_trips_and_refuses_other_identities() {
        let dir = tempfile::tempdir().unwrap();
        let id = VaultIdentity::generate();
        id.create_file(&dir.path().join("vault.key")).unwrap();
        let id = VaultIdentity::open_file(&dir.path().join("vault.key")).unwrap();
        let mut vault = Vault::new();
        vault
            .set_credential(
                name("grafana_token"),
                SecretString::from("t0k3n".to_owned()),
                vec![grafana_binding()],
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
        let grafana = ServiceName::new("grafana").unwrap();
        assert_eq!(
            opened
                .credential(
                    &name("grafana_token"),
                    &grafana,
                    &upstream("127.0.0.1:18001")
                )
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
            vault.set_credential(
                name("x"),
                SecretString::from("a\nb".to_owned()),
                vec![grafana_binding()]
            ),
            Err(VaultError::Value(_))
        ));
    }

    #[test]
    fn credentials_go_only_where_they_are_bound() {
        let mut vault = Vault::new();
        vault
            .set_credential(
                name("grafana_token"),
                SecretString::from("t0k3n".to_owned()),
                vec![grafana_binding()],
            )
            .unwrap();
        let grafana = ServiceName::new("grafana").unwrap();
        let evil = ServiceName::new("evil").unwrap();
        // Another address for the same service, or another service at the same address.
        assert!(matches!(
            vault.credential(&name("grafana_token"), &grafana, &upstream("127.0.0.1:9")),
            Err(CredentialError::NotBound { .. })
        ));
        assert!(matches!(
            vault.credential(&name("grafana_token"), &evil, &upstream("127.0.0.1:18001")),
            Err(CredentialError::NotBound { .. })
        ));
        // The same address over TLS is another upstream.
        let tls = Upstream {
            addr: "127.0.0.1:18001".parse().unwrap(),
            tls: Some(crate::catalog::UpstreamTls {
                pin: crate::catalog::CertPin([7; 32]),
                server_name: "grafana.internal".to_owned(),
            }),
        };
        assert!(
            vault
                .credential(&name("grafana_token"), &grafana, &tls)
                .is_err()
        );
        // A credential without a binding cannot be stored.
        assert!(matches!(
            vault.set_credential(name("loose"), SecretString::from("v".to_owned()), vec![]),
            Err(VaultError::Unbound(_))
        ));
    }

    #[test]
    fn proxy_keys_are_never_credentials() {
        let mut vault = Vault::new();
        vault
            .set_proxy_key(
                name("bglass.signing_key"),
                SecretString::from("k".to_owned()),
            )
            .unwrap();
        let grafana = ServiceName::new("grafana").unwrap();
        assert!(matches!(
            vault.credential(
                &name("bglass.signing_key"),
                &grafana,
                &upstream("127.0.0.1:18001")
            ),
            Err(CredentialError::Reserved(_))
        ));
        assert!(matches!(
            vault.set_credential(
                name("bglass.signing_key"),
                SecretString::from("v".to_owned()),
                vec![grafana_binding()]
            ),
            Err(VaultError::Reserved(_))
        ));
        assert!(matches!(
            vault.set_proxy_key(name("grafana_token"), SecretString::from("v".to_owned())),
            Err(VaultError::NotAProxyKey(_))
        ));
        assert!(vault.proxy_key(&name("grafana_token")).is_none());
        assert!(!vault.remove(&name("bglass.signing_key")));
        assert_eq!(vault.credentials().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn key_files_others_can_read_are_refused_and_stale_temporaries_never_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.key");
        VaultIdentity::generate().create_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            VaultIdentity::open_file(&path),
            Err(VaultError::Permissions { mode: 0o644, .. })
        ));
        // A world-readable leftover named like the old temporary file is ignored.
        let secrets = dir.path().join("secrets.age");
        let old_tmp = secrets.with_extension("tmp");
        std::fs::write(&old_tmp, "left over").unwrap();
        std::fs::set_permissions(&old_tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&secrets, b"sealed").unwrap();
        assert_eq!(
            std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read(&old_tmp).unwrap(), b"left over");
    }
}
