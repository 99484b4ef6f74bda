//! `bglass-proxy ssh-ca`: rotating the SSH CA that signs responders' certificates, with an
//! overlap during which hosts trust both CAs, so that no host refuses a certificate the
//! proxy signs at any point.
//!
//! 1. `begin`: a new CA is made and kept in the vault as `bglass.ssh_ca_key.next`; the proxy
//!    still signs with the current one. Hosts are given both (`keys`).
//! 2. `finish`: once every host trusts the new CA, it becomes the signing CA and the old one
//!    is kept as `bglass.ssh_ca_key.previous` (still listed, for hosts not yet updated the
//!    other way round). The running proxy signs with the new CA after `SIGHUP`.
//! 3. `retire`: the previous CA is removed; hosts then trust the new CA alone.
//!
//! `keys` prints, at each step, the lines hosts must have in `TrustedUserCAKeys`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::id::SecretName;
use bglass_core::vault::{Vault, VaultIdentity};
use bglass_core::{ExposeSecret, SecretString};

use crate::config::ProxyConfig;
use crate::init::SSH_CA_SECRET;

/// The CA a rotation has begun with (hosts are being given it).
pub const NEXT_SSH_CA_SECRET: &str = "bglass.ssh_ca_key.next";
/// The CA a finished rotation replaced (hosts may still trust it until `retire`).
pub const PREVIOUS_SSH_CA_SECRET: &str = "bglass.ssh_ca_key.previous";

/// A step of the rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make the next CA.
    Begin,
    /// Sign with the next CA; keep the current one as previous.
    Finish,
    /// Drop the previous CA.
    Retire,
    /// Change nothing; print the lines.
    Keys,
}

/// Why a step was refused (the vault is then unchanged).
#[derive(Debug, thiserror::Error)]
pub enum SshCaError {
    /// The vault could not be read or written.
    #[error(transparent)]
    Vault(#[from] bglass_core::vault::VaultError),
    /// The step does not follow from where the rotation stands.
    #[error("{0}")]
    Order(String),
    /// A CA key in the vault is not an OpenSSH private key.
    #[error("the vault's {name} is not an OpenSSH Ed25519 private key")]
    Key {
        /// Which.
        name: &'static str,
    },
}

/// Where the rotation stands after a step, and the lines hosts must trust.
#[derive(Debug)]
pub struct Trusted {
    /// One `TrustedUserCAKeys` line per CA hosts must trust now: the signing CA first.
    pub lines: Vec<String>,
    /// A rotation was begun and not finished.
    pub next: bool,
    /// A finished rotation's old CA is not retired yet.
    pub previous: bool,
}

fn name(value: &'static str) -> Result<SecretName, SshCaError> {
    SecretName::new(value).map_err(|_| SshCaError::Key { name: value })
}

/// The OpenSSH private key kept in the vault under `secret`, if there is one.
pub(crate) fn private_key(
    vault: &Vault,
    secret: &'static str,
) -> Result<Option<ssh_key::PrivateKey>, SshCaError> {
    let Some(encoded) = vault.proxy_key(&name(secret)?) else {
        return Ok(None);
    };
    let pem = zeroize::Zeroizing::new(
        STANDARD
            .decode(encoded.expose_secret())
            .map_err(|_| SshCaError::Key { name: secret })?,
    );
    let text = std::str::from_utf8(&pem).map_err(|_| SshCaError::Key { name: secret })?;
    ssh_key::PrivateKey::from_openssh(text)
        .map(Some)
        .map_err(|_| SshCaError::Key { name: secret })
}

/// The public line of the key kept under `secret`, with a comment naming the proxy and
/// which key it is.
pub(crate) fn public_line(
    vault: &Vault,
    secret: &'static str,
    comment: &str,
) -> Result<Option<String>, SshCaError> {
    let Some(key) = private_key(vault, secret)? else {
        return Ok(None);
    };
    let line = key
        .public_key()
        .to_openssh()
        .map_err(|_| SshCaError::Key { name: secret })?;
    Ok(Some(format!("{line} {comment}")))
}

/// A new Ed25519 key in OpenSSH format, base64 as the vault keeps it.
pub(crate) fn new_ca() -> Result<SecretString, SshCaError> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed[..])
        .map_err(|_| SshCaError::Order("the random generator failed".to_owned()))?;
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let text = ssh_key::PrivateKey::from(pair)
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|_| SshCaError::Key {
            name: NEXT_SSH_CA_SECRET,
        })?;
    Ok(SecretString::from(STANDARD.encode(text.as_bytes())))
}

/// Takes `step` on the proxy `config` describes, and says what hosts must trust.
pub fn run(config: &ProxyConfig, step: Step) -> Result<Trusted, SshCaError> {
    let identity = VaultIdentity::open_file(&config.vault_identity)?;
    let mut vault = Vault::open(&config.vault, &identity)?;
    let (current, next, previous) = (
        name(SSH_CA_SECRET)?,
        name(NEXT_SSH_CA_SECRET)?,
        name(PREVIOUS_SSH_CA_SECRET)?,
    );
    let has = |vault: &Vault, n: &SecretName| vault.proxy_key(n).is_some();
    match step {
        Step::Keys => {}
        Step::Begin => {
            if has(&vault, &next) {
                return Err(SshCaError::Order(
                    "a rotation is already begun: give hosts the lines of `ssh-ca keys`, then `ssh-ca finish`".to_owned(),
                ));
            }
            if has(&vault, &previous) {
                return Err(SshCaError::Order(
                    "the previous rotation's old CA is not retired: `ssh-ca retire` once no host needs it".to_owned(),
                ));
            }
            vault.set_proxy_key(next, new_ca()?)?;
            vault.save(&config.vault, &identity)?;
        }
        Step::Finish => {
            let Some(new) = vault.proxy_key(&next).cloned() else {
                return Err(SshCaError::Order(
                    "no rotation is begun: `ssh-ca begin` first".to_owned(),
                ));
            };
            let Some(old) = vault.proxy_key(&current).cloned() else {
                return Err(SshCaError::Key {
                    name: SSH_CA_SECRET,
                });
            };
            vault.set_proxy_key(previous, old)?;
            vault.set_proxy_key(current, new)?;
            vault.remove_proxy_key(&next);
            vault.save(&config.vault, &identity)?;
        }
        Step::Retire => {
            if !vault.remove_proxy_key(&previous) {
                return Err(SshCaError::Order(
                    "no old CA to retire: `ssh-ca finish` keeps the one it replaces until then"
                        .to_owned(),
                ));
            }
            vault.save(&config.vault, &identity)?;
        }
    }
    let id = &config.id;
    let lines: Vec<String> = [
        public_line(&vault, SSH_CA_SECRET, &format!("bglass-ssh-ca-{id}"))?,
        public_line(
            &vault,
            NEXT_SSH_CA_SECRET,
            &format!("bglass-ssh-ca-{id}-next"),
        )?,
        public_line(
            &vault,
            PREVIOUS_SSH_CA_SECRET,
            &format!("bglass-ssh-ca-{id}-previous"),
        )?,
    ]
    .into_iter()
    .flatten()
    .collect();
    // The cell's ssh_ca.pub (written by `init`, what operators copy to hosts) follows.
    if let Some(dir) = config.path.parent() {
        let path = dir.join("ssh_ca.pub");
        if path.exists() {
            let tmp = dir.join("ssh_ca.pub.new");
            let text = format!("{}\n", lines.join("\n"));
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| SshCaError::Order(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(Trusted {
        next: has(&vault, &name(NEXT_SSH_CA_SECRET)?),
        previous: has(&vault, &name(PREVIOUS_SSH_CA_SECRET)?),
        lines,
    })
}
