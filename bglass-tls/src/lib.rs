//! Mutual TLS between `bglass` and `bglass-proxy`, shared by both sides (a crate of its own, so
//! that the responder's binary links it without linking the proxy).
//!
//! - The proxy has its own CA. Clients trust exactly one CA: the one whose certificate's
//!   SHA-256 equals the pin in their config. No public PKI, no system roots.
//! - Clients present a self-signed certificate over the responder's Ed25519 key. The proxy
//!   admits a client only if that key is in its roster, at the handshake; TLS 1.3's
//!   CertificateVerify proves the client holds the key.
//! - TLS 1.3 only, ring provider only.

use std::sync::Arc;

use bglass_core::catalog::CertPin;
use bglass_core::keys::{PublicKey, SigningKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// What the pinned verifier's refusal says: a readiness probe tells a wrong pin by it.
pub const PIN_MISMATCH: &str = "does not match the pin";

/// The one crypto provider bglass uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 pin of a certificate.
pub fn pin_of(cert: &[u8]) -> CertPin {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    CertPin(out)
}

fn refuse_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("TLS 1.2 is not accepted".to_owned()))
}

fn verify_tls13(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The Ed25519 public key of a certificate, or `None` when it has another key type or does
/// not parse.
pub fn ed25519_key_of(cert: &CertificateDer<'_>) -> Option<PublicKey> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let bytes: &[u8] = spki.as_ref();
    let key = bytes.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    PublicKey::from_bytes(key).ok()
}

/// Decides at the handshake whether a client key may connect (the roster, at that moment).
pub trait KeyGate: Send + Sync + std::fmt::Debug {
    /// Whether `key` belongs to a responder in the roster.
    fn admits(&self, key: &PublicKey) -> bool;
    /// Called when a presented key is refused (for the audit log and metrics).
    fn refused(&self, key: Option<PublicKey>, why: &str);
}

/// The proxy's client certificate verifier: admits roster keys only.
#[derive(Debug)]
pub struct RosterClientVerifier {
    gate: Arc<dyn KeyGate>,
    provider: Arc<CryptoProvider>,
}

impl RosterClientVerifier {
    /// A verifier asking `gate` about each presented key.
    pub fn new(gate: Arc<dyn KeyGate>) -> Self {
        Self {
            gate,
            provider: provider(),
        }
    }
}

impl ClientCertVerifier for RosterClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Optional at the TLS level so that `/healthz` answers without a key; every other
    /// route refuses a connection without a verified client key.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let Some(key) = ed25519_key_of(end_entity) else {
            self.gate
                .refused(None, "the client certificate is not over an Ed25519 key");
            return Err(rustls::Error::General(
                "client certificate must carry an Ed25519 key".to_owned(),
            ));
        };
        if !self.gate.admits(&key) {
            self.gate.refused(Some(key), "the key is not in the roster");
            return Err(rustls::Error::General("unknown responder key".to_owned()));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The proxy's server TLS configuration.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    gate: Arc<dyn KeyGate>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(RosterClientVerifier::new(gate)))
        .with_single_cert(chain, PrivateKeyDer::Pkcs8(key))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies `end_entity` for `server_name` under exactly one trusted CA (a pinned one): no
/// system roots. Shared by the CLI's verifier of proxies and the proxy's verifier of pinned
/// HTTPS upstreams.
pub fn verify_under_ca(
    ca: &CertificateDer<'_>,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
    ocsp_response: &[u8],
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<ServerCertVerified, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone().into_owned()).map_err(|e| {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(e),
        )))
    })?;
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(provider),
    )
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
}

/// The CLI's verifier: trusts only the CA whose certificate has the pinned SHA-256, which the
/// proxy sends after its own certificate.
#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: CertPin,
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    /// A verifier for the CA pinned by `pin`.
    pub fn new(pin: CertPin) -> Self {
        Self {
            pin,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates.iter().find(|c| pin_of(c) == self.pin) else {
            return Err(rustls::Error::General(format!(
                "the proxy's CA {PIN_MISMATCH} {} (wrong proxy, or a machine in the middle)",
                self.pin
            )));
        };
        verify_under_ca(
            ca,
            end_entity,
            &[],
            server_name,
            ocsp_response,
            now,
            &self.provider,
        )
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A self-signed client certificate over the responder's key, made fresh for each process.
pub fn client_certificate(
    key: &SigningKey,
    responder: &str,
) -> Result<CertificateDer<'static>, TlsSetupError> {
    let pair = rcgen::KeyPair::try_from(key.pkcs8_der())?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("bglass responder {responder}"),
    );
    Ok(params.self_signed(&pair)?.der().clone())
}

/// The CLI's client TLS configuration for one proxy.
pub fn client_config(
    pin: CertPin,
    key: &SigningKey,
    responder: &str,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let cert = client_certificate(key, responder)?;
    let private = PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec());
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier::new(pin)))
        .with_client_auth_cert(vec![cert], PrivateKeyDer::Pkcs8(private))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Always presents one certificate and key (a key held elsewhere, e.g. by the key agent).
#[derive(Debug)]
struct OneClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for OneClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The CLI's client TLS configuration for one proxy when the responder key is held
/// elsewhere: `key` signs the handshake, `cert` is the client certificate over it.
pub fn client_config_with_key(
    pin: CertPin,
    cert: CertificateDer<'static>,
    key: Arc<dyn rustls::sign::SigningKey>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let certified = rustls::sign::CertifiedKey::new(vec![cert], key);
    certified.keys_match()?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier::new(pin)))
        .with_client_cert_resolver(Arc::new(OneClientCert(Arc::new(certified))));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
