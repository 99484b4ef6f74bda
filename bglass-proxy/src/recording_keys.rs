//! The keys of recorded SSH sessions (`record = true` services), kept in the vault:
//!
//! - the **session CA** (`bglass.ssh_session_ca_key`), which signs the certificate the proxy
//!   mints for itself per recorded session. Recorded hosts trust this CA *instead of* the
//!   responders' SSH CA, so that no certificate a responder holds opens them: every way in
//!   goes through the proxy, which records it. It never leaves the proxy.
//! - the proxy's **SSH host key** (`bglass.ssh_host_key`): responders' SSH clients reach the
//!   proxy's own SSH endpoint through the mutual-TLS tunnel and check this key; the CLI pins
//!   it (`ssh_host_key` in its config) like the TLS CA.
//!
//! `bglass-proxy init` makes both; `bglass-proxy ssh-ca recording` adds them to an older
//! cell and prints the lines to hand out. Both are written beside proxy.toml as
//! `ssh_session_ca.pub` and `ssh_host_key.pub`.

use bglass_core::vault::{Vault, VaultIdentity};

use crate::config::ProxyConfig;
use crate::ssh_ca::{SshCaError, new_ca, private_key, public_line};

/// The session CA's vault name.
pub const SESSION_CA_SECRET: &str = "bglass.ssh_session_ca_key";
/// The proxy's SSH host key's vault name.
pub const HOST_KEY_SECRET: &str = "bglass.ssh_host_key";
/// The file beside proxy.toml with the session CA's public line.
pub const SESSION_CA_FILE: &str = "ssh_session_ca.pub";
/// The file beside proxy.toml with the host key's public line.
pub const HOST_KEY_FILE: &str = "ssh_host_key.pub";

/// The public lines of both keys.
#[derive(Debug, Clone)]
pub struct RecordingKeys {
    /// For recorded hosts' `TrustedUserCAKeys`.
    pub session_ca: String,
    /// For responders' `ssh_host_key`.
    pub host_key: String,
    /// Whether a key was made just now.
    pub made: bool,
}

/// Adds whichever key is missing to `vault` (which the caller saves when `made`).
pub fn ensure(vault: &mut Vault, id: &str) -> Result<RecordingKeys, SshCaError> {
    let mut made = false;
    for secret in [SESSION_CA_SECRET, HOST_KEY_SECRET] {
        if private_key(vault, secret)?.is_none() {
            let name = bglass_core::id::SecretName::new(secret)
                .map_err(|_| SshCaError::Key { name: secret })?;
            vault.set_proxy_key(name, new_ca()?)?;
            made = true;
        }
    }
    let line = |secret: &'static str, comment: String| {
        public_line(vault, secret, &comment)?.ok_or(SshCaError::Key { name: secret })
    };
    Ok(RecordingKeys {
        session_ca: line(SESSION_CA_SECRET, format!("bglass-session-ca-{id}"))?,
        host_key: line(HOST_KEY_SECRET, format!("bglass-proxy-{id}"))?,
        made,
    })
}

/// Writes both public lines beside proxy.toml, in `dir`.
pub fn write_public(dir: &std::path::Path, keys: &RecordingKeys) -> std::io::Result<()> {
    for (file, line) in [
        (SESSION_CA_FILE, &keys.session_ca),
        (HOST_KEY_FILE, &keys.host_key),
    ] {
        let path = dir.join(file);
        let tmp = dir.join(format!("{file}.new"));
        std::fs::write(&tmp, format!("{line}\n"))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// `bglass-proxy ssh-ca recording`: the keys, made if missing, and their lines.
pub fn run(config: &ProxyConfig) -> Result<RecordingKeys, SshCaError> {
    let identity = VaultIdentity::open_file(&config.vault_identity)?;
    let mut vault = Vault::open(&config.vault, &identity)?;
    let keys = ensure(&mut vault, config.id.as_str())?;
    if keys.made {
        vault.save(&config.vault, &identity)?;
    }
    if let Some(dir) = config.path.parent() {
        write_public(dir, &keys)
            .map_err(|e| SshCaError::Order(format!("{}: {e}", dir.display())))?;
    }
    Ok(keys)
}

/// The session CA and the host key from the running proxy's vault.
pub fn load(vault: &Vault) -> Result<(ssh_key::PrivateKey, ssh_key::PrivateKey), String> {
    let get = |secret: &'static str| match private_key(vault, secret) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(format!(
            "the vault has no {secret}: run `bglass-proxy ssh-ca recording --config proxy.toml`, give recorded hosts the session CA, and SIGHUP the proxy"
        )),
        Err(e) => Err(e.to_string()),
    };
    Ok((get(SESSION_CA_SECRET)?, get(HOST_KEY_SECRET)?))
}
