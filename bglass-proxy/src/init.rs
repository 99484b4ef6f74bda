//! `bglass-proxy init`: a new proxy cell — its CA and server certificate, signing key, SSH
//! CA key, vault identity and vault, and a commented `proxy.toml`.
//!
//! The keys the running proxy needs go into the vault (`secrets.age`, encrypted to
//! `vault.key`); only public material is written in clear. The TLS CA's private key is not
//! needed at run time: it is written to `offline/ca.key` for the operator to move off the
//! host, and comes back only to re-issue the server certificate ([`reissue`]). The output
//! names the pin responders put in their config and the public keys auditors and target
//! hosts need.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::SecretString;
use bglass_core::catalog::CertPin;
use bglass_core::id::{ProxyId, SecretName};
use bglass_core::keys::{PublicKey, SigningKey};
use bglass_core::vault::{Vault, VaultIdentity};

use rustls_pki_types::pem::PemObject;

use bglass_tls::pin_of;

/// Vault names of the proxy's own keys (PKCS#8 or OpenSSH, base64).
pub const SIGNING_KEY_SECRET: &str = "bglass.signing_key";
/// The TLS server key.
pub const TLS_KEY_SECRET: &str = "bglass.tls_key";
/// The TLS CA key, which older versions kept in the vault (now an offline file).
pub const CA_KEY_SECRET: &str = "bglass.ca_key";
/// Where `init` writes the CA key for the operator to move off the host.
pub const OFFLINE_CA_KEY: &str = "offline/ca.key";
/// The SSH certificate authority key (OpenSSH format).
pub const SSH_CA_SECRET: &str = "bglass.ssh_ca_key";

/// What `init` made.
#[derive(Debug)]
pub struct Initialized {
    /// The config file.
    pub config: PathBuf,
    /// The pin of the CA (for responders' configs).
    pub pin: CertPin,
    /// The signing key's public half (for auditors: `bglass audit verify --key`).
    pub signing_key: PublicKey,
    /// The SSH CA public key (for target hosts' `TrustedUserCAKeys`).
    pub ssh_ca: String,
    /// The CA private key, to be moved off the host.
    pub offline_ca_key: PathBuf,
    /// The session CA (recorded hosts trust it instead of `ssh_ca`) and the proxy's SSH host
    /// key (responders pin it).
    pub recording: crate::recording_keys::RecordingKeys,
}

/// Why init failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The directory already holds a proxy.
    #[error("{0} already holds a proxy (proxy.toml exists); refusing to overwrite its keys")]
    Exists(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Key or certificate generation failed.
    #[error("generating keys failed: {0}")]
    Keys(String),
    /// The vault could not be written.
    #[error(transparent)]
    Vault(#[from] bglass_core::vault::VaultError),
    /// The CA key given to `reissue-cert` is not this proxy's CA.
    #[error("{0}")]
    WrongCa(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn keys<E: std::fmt::Display>(e: E) -> InitError {
    InitError::Keys(e.to_string())
}

fn secret(name: &str) -> Result<SecretName, InitError> {
    SecretName::new(name).map_err(keys)
}

/// Creates a proxy in `dir`: `id` names it, `listen` is its TLS address, `address` the IP
/// responders connect to (the certificate's subject alternative name).
pub fn init(
    dir: &Path,
    id: &ProxyId,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<Initialized, InitError> {
    let config_path = dir.join("proxy.toml");
    if config_path.exists() {
        return Err(InitError::Exists(dir.display().to_string()));
    }
    std::fs::create_dir_all(dir.join("tls")).map_err(io(dir))?;
    std::fs::create_dir_all(dir.join("data")).map_err(io(dir))?;

    // TLS: a CA of this cell alone, and a server certificate for the listen address.
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(keys)?;
    let ca_cert = ca_params(id)?.self_signed(&ca_key).map_err(keys)?;
    let (server_key, server_cert) = server_certificate(id, listen, &ca_key)?;

    let chain = format!("{}{}", server_cert.pem(), ca_cert.pem());
    let chain_path = dir.join("tls/chain.pem");
    std::fs::write(&chain_path, chain).map_err(io(&chain_path))?;
    let ca_path = dir.join("tls/ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).map_err(io(&ca_path))?;
    let pin = pin_of(ca_cert.der());

    // Signing key for grants and checkpoints.
    let signing = SigningKey::generate().map_err(keys)?;

    // SSH CA for short-lived OpenSSH user certificates.
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| InitError::Keys("random".to_owned()))?;
    let ssh_pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let ssh_private = ssh_key::PrivateKey::from(ssh_pair);
    let ssh_private_text = ssh_private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(keys)?;
    let mut ssh_public = ssh_private.public_key().to_openssh().map_err(keys)?;
    ssh_public.push_str(&format!(" bglass-ssh-ca-{id}"));
    let ssh_pub_path = dir.join("ssh_ca.pub");
    std::fs::write(&ssh_pub_path, format!("{ssh_public}\n")).map_err(io(&ssh_pub_path))?;

    // The vault: every private key, encrypted to the vault identity.
    let identity = VaultIdentity::generate();
    identity.create_file(&dir.join("vault.key"))?;
    let mut vault = Vault::new();
    let b64 = |bytes: &[u8]| SecretString::from(STANDARD.encode(bytes));
    vault.set_proxy_key(secret(SIGNING_KEY_SECRET)?, b64(signing.pkcs8_der()))?;
    vault.set_proxy_key(
        secret(TLS_KEY_SECRET)?,
        b64(&zeroize::Zeroizing::new(server_key.serialize_der())),
    )?;
    vault.set_proxy_key(secret(SSH_CA_SECRET)?, b64(ssh_private_text.as_bytes()))?;
    // Recorded SSH sessions: the proxy's session CA and its own SSH host key.
    let recording = crate::recording_keys::ensure(&mut vault, id.as_str())
        .map_err(|e| InitError::Keys(e.to_string()))?;
    crate::recording_keys::write_public(dir, &recording).map_err(io(dir))?;
    vault.save(&dir.join("secrets.age"), &identity)?;

    // The CA key leaves the running proxy: an offline file the operator moves away.
    let offline = dir.join(OFFLINE_CA_KEY);
    if let Some(parent) = offline.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let ca_pem = zeroize::Zeroizing::new(ca_key.serialize_pem());
    bglass_core::vault::write_private(&offline, ca_pem.as_bytes())?;

    let metrics_line = match metrics {
        Some(m) => format!("metrics_listen = \"{m}\""),
        None => format!(
            "# metrics_listen = \"127.0.0.1:{}\"",
            listen.port().saturating_add(1000)
        ),
    };
    let source = crate::ssh_settings::SourceNet::host(listen.ip());
    let config = format!(
        r#"# bglass-proxy configuration, written by `bglass-proxy init`. Paths are relative to
# this file. Validate catalog and roster with:
#   bglass-proxy check --services services.toml --roster responders.toml

# This proxy's id: it names the grants it signs and its audit log (bglass/{id}).
id = "{id}"
# The mutual-TLS listener responders connect to (an IP literal; the certificate names it).
listen = "{listen}"
# Prometheus metrics, plain HTTP: keep it on loopback or a management network.
{metrics_line}

# The catalog of critical tools and the roster of responders (reloaded on SIGHUP or when
# they change; a bad version is rejected and the last good one kept).
services = "services.toml"
roster = "responders.toml"

# The audit log and the notifier's cursor live here. Back it up; auditors copy data/log.
data_dir = "data"

# Upstream credentials and this proxy's private keys, encrypted to vault_identity.
# Edit with: bglass-proxy secrets set NAME --for SERVICE --config proxy.toml  (value on stdin;
# the credential is bound to that service's upstream: a catalog that moves it is rejected)
vault = "secrets.age"
vault_identity = "vault.key"

# Server certificate followed by this proxy's CA (whose SHA-256 responders pin).
tls_chain = "tls/chain.pem"

# [limits]
# max_header_bytes = 16384        # request line and headers
# max_api_body_bytes = 65536      # control API bodies
# max_body_bytes = 67108864       # data-plane request bodies
# upstream_timeout = "30s"        # time for an upstream to answer
# header_timeout = "10s"          # time for a client to send its request head (and TLS handshake)
# request_ttl = "1h"              # a request without its approvals by then expires
# max_connections = 16384         # open connections at once (keep below LimitNOFILE / 2)
# max_connections_per_source = 256  # from one address (an IPv6 /64 counts as one)

# SSH certificates. Every certificate carries a source-address critical option: sshd
# accepts it only from these addresses, the ones this proxy connects to SSH hosts from, so
# a certificate copied off a responder's machine logs in nowhere. The default is the IP of
# `listen`; list the proxy's egress addresses when it reaches hosts from others (another
# interface, NAT). IP literals or CIDR blocks (no host names), at most 16.
# A certificate lives certificate_ttl (10s to 1h), never past its grant; `bglass ssh` asks
# for a fresh one per session while the grant lasts.
# [ssh]
# source_addresses = ["{source}"]
# certificate_ttl = "5m"

# The disk that holds data_dir. Below free_space_warning the proxy warns (stderr, a
# storage_low audit event, `bglass status`, a notification, bglass_data_free_bytes): when the
# audit log cannot write, every access is refused until it can again. The log keeps a
# reserve file of `reserve` bytes, released when the disk is full so that it can still record
# its failure and a final checkpoint. Sizes like 64KiB, 512MiB, 1GiB.
# [storage]
# free_space_warning = "512MiB"   # "0B": never warn
# reserve = "8MiB"                # 64KiB to 1GiB

# Notifications of glass-break events, emergency bypasses and pending approvals. They never
# block access: queued from the audit log, retried with backoff.
# [[notify]]
# url = "http://127.0.0.1:9900/bglass"
# format = "json"                 # or "slack"
"#
    );
    std::fs::write(&config_path, config).map_err(io(&config_path))?;
    Ok(Initialized {
        config: config_path,
        pin,
        signing_key: signing.public_key(),
        ssh_ca: ssh_public,
        offline_ca_key: offline,
        recording,
    })
}

/// The CA certificate's parameters; the same for `init` and `reissue`, so that a re-issued
/// server certificate names the issuer exactly as the CA certificate names itself.
fn ca_params(id: &ProxyId) -> Result<rcgen::CertificateParams, InitError> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(keys)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("bglass proxy CA {id}"));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca_params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(ca_params)
}

/// A new server key and certificate for `listen`'s IP, signed by the CA key.
fn server_certificate(
    id: &ProxyId,
    listen: SocketAddr,
    ca_key: &rcgen::KeyPair,
) -> Result<(rcgen::KeyPair, rcgen::Certificate), InitError> {
    let issuer = rcgen::Issuer::new(ca_params(id)?, ca_key);
    let server_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(keys)?;
    let mut server_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(keys)?;
    server_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(listen.ip()));
    server_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("bglass proxy {id}"));
    server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    server_params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    server_params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(keys)?;
    Ok((server_key, server_cert))
}

/// Re-issues the server certificate with the offline CA key (a new listen address, or a
/// suspected leak of the server key): a new server key in the vault and a new chain; the
/// CA, and so every responder's pin, stay the same. The CA key must be the one whose
/// certificate is at the end of the current chain.
pub fn reissue(
    config: &crate::config::ProxyConfig,
    ca_key_pem: &str,
    listen: SocketAddr,
) -> Result<CertPin, InitError> {
    let ca_key = rcgen::KeyPair::from_pem(ca_key_pem)
        .map_err(|e| InitError::WrongCa(format!("the CA key does not parse: {e}")))?;
    let chain_text = std::fs::read_to_string(&config.tls_chain).map_err(io(&config.tls_chain))?;
    let ca_pem = chain_text
        .find("-----BEGIN CERTIFICATE-----")
        .and_then(|first| {
            chain_text[first + 1..]
                .find("-----BEGIN CERTIFICATE-----")
                .map(|i| &chain_text[first + 1 + i..])
        })
        .ok_or_else(|| {
            InitError::WrongCa(format!(
                "{} does not hold the server certificate followed by the CA",
                config.tls_chain.display()
            ))
        })?;
    let ca_der = rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| InitError::WrongCa(format!("the CA certificate in the chain: {e}")))?;
    // The key must be the CA's: its public key is in the CA certificate.
    let public = ca_key.public_key_raw();
    if !ca_der.as_ref().windows(public.len()).any(|w| w == public) {
        return Err(InitError::WrongCa(
            "this key is not the CA key of this proxy (its public key is not in the CA certificate)"
                .to_owned(),
        ));
    }
    let (server_key, server_cert) = server_certificate(&config.id, listen, &ca_key)?;
    let identity = VaultIdentity::open_file(&config.vault_identity)?;
    let mut vault = Vault::open(&config.vault, &identity)?;
    vault.set_proxy_key(
        secret(TLS_KEY_SECRET)?,
        SecretString::from(STANDARD.encode(zeroize::Zeroizing::new(server_key.serialize_der()))),
    )?;
    let chain = format!("{}{}", server_cert.pem(), ca_pem.trim_end());
    let chain_tmp = config.tls_chain.with_extension("pem.new");
    std::fs::write(&chain_tmp, format!("{chain}\n")).map_err(io(&chain_tmp))?;
    vault.save(&config.vault, &identity)?;
    std::fs::rename(&chain_tmp, &config.tls_chain).map_err(io(&config.tls_chain))?;
    Ok(pin_of(ca_der.as_ref()))
}
