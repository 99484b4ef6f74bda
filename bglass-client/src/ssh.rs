//! What `bglass ssh` and the drill's SSH probes share: the proxy's answer to a certificate
//! request, and the check of a host's key against the key the catalog pins.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::id::ServiceName;

use crate::error::{CliError, CliResult, ErrorKind};

/// What the proxy answers for a certificate request.
#[derive(Debug, serde::Deserialize)]
pub struct Issued {
    /// The OpenSSH certificate.
    pub certificate: String,
    /// The principals it carries (the first is the default login).
    pub principals: Vec<String>,
    /// The host key the catalog pins for the service.
    pub host_key: String,
    /// When the certificate ends (minutes after issue).
    pub valid_before: u64,
    /// When the grant ends (older proxies do not say).
    #[serde(default)]
    pub grant_expires: Option<u64>,
}

/// Refuses a host whose key is not the catalog's pinned key.
pub fn check_host_key(ssh: &ssh2::Session, service: &ServiceName, pinned: &str) -> CliResult {
    let expected = pinned
        .split_whitespace()
        .nth(1)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .ok_or_else(|| CliError::internal("the catalog's host key is not an OpenSSH key"))?;
    let (presented, _) = ssh
        .host_key()
        .ok_or_else(|| CliError::internal("the host sent no key"))?;
    if presented != expected.as_slice() {
        let shown = format!(
            "{} {}",
            pinned.split_whitespace().next().unwrap_or("?"),
            STANDARD.encode(presented)
        );
        return Err(CliError::new(
            ErrorKind::Denied,
            format!("the host key of {service} does not match the key pinned in the catalog; refusing to connect (presented: {shown})"),
        )
        .with_hint("if the host was rebuilt, the operator must update host_key in services.toml; otherwise this may be an impostor"));
    }
    Ok(())
}
