//! OpenSSH user certificates signed by one of the proxy's SSH CAs: the responders' CA
//! (`bglass ssh`, `POST /v1/ssh/<service>/certificate`) and the session CA (the proxy's own
//! login to a recorded host).

use std::sync::Arc;

use bglass_core::ExposeSecret;
use bglass_core::id::SecretName;
use bglass_core::policy::Refusal;
use zeroize::Zeroizing;

use super::Proxy;

/// An OpenSSH private key from the running proxy's vault.
pub fn vault_key(proxy: &Arc<Proxy>, secret: &'static str) -> Result<ssh_key::PrivateKey, Refusal> {
    use base64::Engine;
    let vault = proxy
        .vault
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let name = SecretName::new(secret).map_err(|e| Refusal::new("internal", 500, e.to_string()))?;
    let missing = || Refusal::new("no_ssh_ca", 500, format!("the vault has no {secret}"));
    let encoded = vault.proxy_key(&name).ok_or_else(missing)?;
    // Decoded copies of the key are wiped when dropped.
    let pem = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.expose_secret())
            .map_err(|_| {
                Refusal::new(
                    "no_ssh_ca",
                    500,
                    format!("{secret} in the vault is not base64"),
                )
            })?,
    );
    let pem = std::str::from_utf8(&pem)
        .map_err(|_| Refusal::new("no_ssh_ca", 500, format!("{secret} is not text")))?;
    ssh_key::PrivateKey::from_openssh(pem)
        .map_err(|e| Refusal::new("no_ssh_ca", 500, format!("{secret}: {e}")))
}

/// What a certificate says.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The certified key.
    pub key: &'a ssh_key::public::KeyData,
    /// Its principals.
    pub principals: &'a [String],
    /// Valid after and before, Unix seconds.
    pub window: (u64, u64),
    /// Its key id (names the responder, the grant and the proxy).
    pub key_id: String,
    /// `force-command true` and nothing else (a canary's login).
    pub probe_only: bool,
    /// Extensions besides `permit-pty` (port and agent forwarding, when the catalog allows).
    pub extensions: Vec<&'static str>,
}

/// Signs a user certificate for `spec` with `ca`, valid only from the proxy's addresses;
/// returns it with its serial.
pub fn sign(
    proxy: &Proxy,
    ca: &ssh_key::PrivateKey,
    spec: &Spec<'_>,
) -> Result<(ssh_key::Certificate, u64), Refusal> {
    let mut random = [0u8; 40];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| Refusal::new("internal", 500, "random generator failed"))?;
    let mut serial_bytes = [0u8; 8];
    serial_bytes.copy_from_slice(&random[32..]);
    let serial = u64::from_be_bytes(serial_bytes);
    let fail =
        |e: ssh_key::Error| Refusal::new("internal", 500, format!("building the certificate: {e}"));
    let mut builder = ssh_key::certificate::Builder::new(
        random[..32].to_vec(),
        spec.key.clone(),
        spec.window.0,
        spec.window.1,
    )
    .map_err(fail)?;
    builder
        .critical_option("source-address", proxy.config.ssh.source_address_option())
        .map_err(fail)?;
    builder.serial(serial).map_err(fail)?;
    builder
        .cert_type(ssh_key::certificate::CertType::User)
        .map_err(fail)?;
    builder.key_id(spec.key_id.clone()).map_err(fail)?;
    for p in spec.principals {
        builder.valid_principal(p.clone()).map_err(fail)?;
    }
    if spec.probe_only {
        // A canary's login runs `true` and nothing else: no shell, no forwarding.
        builder
            .critical_option("force-command", "true")
            .map_err(fail)?;
    } else {
        builder.extension("permit-pty", "").map_err(fail)?;
        for e in &spec.extensions {
            builder.extension(*e, "").map_err(fail)?;
        }
    }
    Ok((builder.sign(ca).map_err(fail)?, serial))
}
