//! The proxy's client to upstream tools, shared by the data plane and the health prober.
//!
//! A plain `IP:PORT` upstream is spoken to in HTTP. An `https://` upstream is only ever
//! spoken to over TLS (1.2 or 1.3; rustls with the ring provider), trusted by its catalog
//! entry alone, never by a system trust store or DNS: the server must present either the
//! certificate whose SHA-256 is `upstream_pin` (that certificate is the identity; its names
//! and dates are not consulted), or a chain holding the CA certificate with that pin, which
//! must then validate the server's certificate for `upstream_server_name` now. The name is
//! sent as SNI and as `Host`. A certificate that matches no pin is its own error
//! ([`UpstreamError::PinMismatch`]), so that callers refuse with `upstream_pin_mismatch`;
//! nothing of the request (headers, injected credential, body) is written before the
//! handshake has verified the server.
//!
//! Connections are pooled per (address, pin, server name): a connection verified under
//! one pin never serves a catalog that has since pinned something else.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bglass_core::catalog::{CertPin, Upstream, UpstreamTls};
use bglass_core::id::ServiceName;
use http::header::HeaderValue;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::server::Body;
use bglass_core::policy::Refusal;
use bglass_tls::{pin_of, provider};

/// Time allowed to open a TCP connection to an upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the TLS handshake once connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// Most distinct https targets with a pool (a catalog holds at most 256 services; old
/// targets left by reloads are dropped past this).
const MAX_TLS_TARGETS: usize = 512;

/// Why an upstream request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The server's certificate is not the pinned one and its chain holds no certificate
    /// with the pin.
    #[error(
        "the upstream presented a certificate ({presented}) whose chain matches no certificate with upstream_pin {pin}"
    )]
    PinMismatch {
        /// The catalog's pin.
        pin: CertPin,
        /// The pin of the certificate the server presented.
        presented: CertPin,
    },
    /// The pinned CA is in the chain but does not validate the server's certificate for the
    /// server name (wrong name, expired, not a CA, bad signature).
    #[error(
        "the upstream's certificate does not verify under the pinned CA for {server_name}: {reason}"
    )]
    Certificate {
        /// The catalog's `upstream_server_name`.
        server_name: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed before or apart from the certificate check (no common
    /// version or cipher, the server closed, not TLS at all, timeout).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// No connection could be made.
    #[error("no connection: {0}")]
    Unreachable(String),
    /// The connection broke during the exchange.
    #[error("{0}")]
    Exchange(String),
}

impl UpstreamError {
    /// The refusal code callers answer with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PinMismatch { .. } => "upstream_pin_mismatch",
            Self::Certificate { .. } => "upstream_certificate_invalid",
            Self::Handshake(_) => "upstream_tls_failed",
            Self::Unreachable(_) | Self::Exchange(_) => "upstream_unreachable",
        }
    }

    /// Whether the upstream failed to prove who it is over TLS (nothing was sent to it):
    /// a security refusal to audit, not an outage.
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            Self::PinMismatch { .. } | Self::Certificate { .. } | Self::Handshake(_)
        )
    }

    /// The refusal for a request to `service` at `upstream` (502).
    pub fn refusal(&self, service: &ServiceName, upstream: &Upstream) -> Refusal {
        let r = Refusal::new(
            self.code(),
            502,
            format!("{service} at {upstream}: {self}; nothing was sent to it"),
        );
        match self {
            Self::PinMismatch { .. } => r.hint(
                "if the tool's certificate or CA was replaced, the operator must update upstream_pin in services.toml; otherwise something else answers at that address",
            ),
            Self::Certificate { .. } => r.hint(
                "the operator must check upstream_server_name and the tool's certificate (names, dates) in services.toml",
            ),
            Self::Handshake(_) => {
                r.hint("the tool may not speak TLS at that address, or only older versions than TLS 1.2")
            }
            Self::Unreachable(_) | Self::Exchange(_) => r.hint(
                "the tool itself may be down; `bglass status` shows the proxy's health checks",
            ),
        }
    }
}

/// The client to every upstream.
pub struct Upstreams {
    plain: Client<HttpConnector, Body>,
    tls: Mutex<HashMap<UpstreamTlsTarget, Client<PinnedConnector, Body>>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

impl Default for Upstreams {
    fn default() -> Self {
        Self::new()
    }
}

/// What one pool of TLS connections is verified for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct UpstreamTlsTarget {
    addr: SocketAddr,
    tls: UpstreamTls,
}

fn tcp_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector
}

impl Upstreams {
    /// A client with empty pools.
    pub fn new() -> Self {
        Self {
            plain: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .build(tcp_connector()),
            tls: Mutex::new(HashMap::new()),
            provider: provider(),
        }
    }

    /// Sends `request` to `upstream`. Only the request's path and query are used: the
    /// scheme and address come from the upstream (https when the catalog says so), and
    /// `Host` is set to the upstream's address or server name.
    pub async fn send(
        &self,
        upstream: &Upstream,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .to_owned();
        let scheme = if upstream.tls.is_some() {
            "https"
        } else {
            "http"
        };
        parts.uri = format!("{scheme}://{}{path}", upstream.addr)
            .parse::<Uri>()
            .map_err(|e| UpstreamError::Exchange(format!("request target {path:?}: {e}")))?;
        let host = match &upstream.tls {
            Some(tls) => host_header(&tls.server_name, upstream.addr.port()),
            None => upstream.addr.to_string(),
        };
        let host = HeaderValue::from_str(&host)
            .map_err(|_| UpstreamError::Exchange(format!("{host:?} is not a Host value")))?;
        parts.headers.insert(http::header::HOST, host);
        let request = Request::from_parts(parts, body);
        match &upstream.tls {
            None => self.plain.request(request).await.map_err(classify),
            Some(tls) => {
                let client = self.tls_client(upstream.addr, tls)?;
                client.request(request).await.map_err(classify)
            }
        }
    }

    /// The pool for one https target, made on first use.
    fn tls_client(
        &self,
        addr: SocketAddr,
        tls: &UpstreamTls,
    ) -> Result<Client<PinnedConnector, Body>, UpstreamError> {
        let target = UpstreamTlsTarget {
            addr,
            tls: tls.clone(),
        };
        let mut pools = self.tls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = pools.get(&target) {
            return Ok(client.clone());
        }
        let connector = PinnedConnector::new(tls, Arc::clone(&self.provider))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        if pools.len() >= MAX_TLS_TARGETS {
            pools.clear();
        }
        pools.insert(target, client.clone());
        Ok(client)
    }
}

/// `Host` for a server name: the name, bracketed when IPv6, with the port unless 443.
fn host_header(server_name: &str, port: u16) -> String {
    let name = match server_name.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => server_name.to_owned(),
    };
    if port == 443 {
        name
    } else {
        format!("{name}:{port}")
    }
}

/// An error and its causes, one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Sorts a client error into what callers tell apart.
fn classify(e: hyper_util::client::legacy::Error) -> UpstreamError {
    let failure = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<ConnectFailure>());
    match failure {
        Some(ConnectFailure::Pin { pin, presented }) => UpstreamError::PinMismatch {
            pin: *pin,
            presented: *presented,
        },
        Some(ConnectFailure::Certificate {
            server_name,
            reason,
        }) => UpstreamError::Certificate {
            server_name: server_name.clone(),
            reason: reason.clone(),
        },
        Some(ConnectFailure::Handshake(why)) => UpstreamError::Handshake(why.clone()),
        Some(ConnectFailure::Tcp(why)) => UpstreamError::Unreachable(why.clone()),
        None if e.is_connect() => UpstreamError::Unreachable(chain(&e)),
        None => UpstreamError::Exchange(chain(&e)),
    }
}

/// Why a TLS connection could not be made (the connector's error).
#[derive(Debug, thiserror::Error)]
enum ConnectFailure {
    #[error("TCP: {0}")]
    Tcp(String),
    #[error("certificate matches no pin {pin} (presented {presented})")]
    Pin { pin: CertPin, presented: CertPin },
    #[error("certificate invalid for {server_name}: {reason}")]
    Certificate { server_name: String, reason: String },
    #[error("TLS handshake: {0}")]
    Handshake(String),
}

impl ConnectFailure {
    /// Reads the verifier's verdict out of a failed handshake.
    fn from_handshake(e: &std::io::Error, server_name: &str) -> Self {
        let rustls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match rustls_error {
            Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) => {
                match other.0.downcast_ref::<PinMismatch>() {
                    Some(m) => Self::Pin {
                        pin: m.pin,
                        presented: m.presented,
                    },
                    None => Self::Certificate {
                        server_name: server_name.to_owned(),
                        reason: other.to_string(),
                    },
                }
            }
            Some(rustls::Error::InvalidCertificate(reason)) => Self::Certificate {
                server_name: server_name.to_owned(),
                reason: format!("{reason:?}"),
            },
            Some(other) => Self::Handshake(other.to_string()),
            None => Self::Handshake(e.to_string()),
        }
    }
}

/// The verifier's refusal of a certificate that matches no pin.
#[derive(Debug, thiserror::Error)]
#[error("certificate {presented} matches no pin {pin}")]
struct PinMismatch {
    pin: CertPin,
    presented: CertPin,
}

/// Connects over TCP, then TLS with the pinned verifier, for one target.
#[derive(Clone)]
struct PinnedConnector {
    tcp: HttpConnector,
    tls: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    shown_name: String,
}

impl PinnedConnector {
    fn new(tls: &UpstreamTls, provider: Arc<CryptoProvider>) -> Result<Self, UpstreamError> {
        let name = ServerName::try_from(tls.server_name.clone()).map_err(|e| {
            UpstreamError::Handshake(format!("server name {:?}: {e}", tls.server_name))
        })?;
        let verifier = PinVerifier {
            pin: tls.pin,
            provider: Arc::clone(&provider),
        };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| UpstreamError::Handshake(format!("TLS configuration: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut tcp = tcp_connector();
        // The connector is only ever handed https URIs (`Upstreams::send`).
        tcp.enforce_http(false);
        Ok(Self {
            tcp,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
            shown_name: tls.server_name.clone(),
        })
    }
}

impl tower_service::Service<Uri> for PinnedConnector {
    type Response = TlsIo;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectFailure>> {
        self.tcp
            .poll_ready(cx)
            .map_err(|e| ConnectFailure::Tcp(chain(&e)))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let connecting = self.tcp.call(uri);
        let (tls, name, shown) = (self.tls.clone(), self.name.clone(), self.shown_name.clone());
        Box::pin(async move {
            if !https {
                return Err(ConnectFailure::Tcp(
                    "refusing a plain-text connection to an https upstream".to_owned(),
                ));
            }
            let tcp = connecting
                .await
                .map_err(|e| ConnectFailure::Tcp(chain(&e)))?
                .into_inner();
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.connect(name, tcp))
                .await
                .map_err(|_| {
                    ConnectFailure::Handshake(format!(
                        "no handshake within {}s",
                        HANDSHAKE_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(|e| ConnectFailure::from_handshake(&e, &shown))?;
            Ok(TlsIo(TokioIo::new(stream)))
        })
    }
}

/// A verified TLS connection to an upstream, as hyper's client drives it.
struct TlsIo(TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>);

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Trusts exactly what `upstream_pin` names: the server's own certificate, or a CA
/// certificate in the chain the server sends, which must then validate the server's
/// certificate for the server name.
#[derive(Debug)]
struct PinVerifier {
    pin: CertPin,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = pin_of(end_entity);
        if presented == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(ca) = intermediates.iter().find(|c| pin_of(c) == self.pin) else {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    pin: self.pin,
                    presented,
                })),
            )));
        };
        bglass_tls::verify_under_ca(
            ca,
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
            &self.provider,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::host_header;

    #[test]
    fn host_names_the_server_with_its_port_unless_443() {
        assert_eq!(
            host_header("kubernetes.internal", 443),
            "kubernetes.internal"
        );
        assert_eq!(
            host_header("kubernetes.internal", 6443),
            "kubernetes.internal:6443"
        );
        assert_eq!(host_header("10.0.0.5", 8443), "10.0.0.5:8443");
        assert_eq!(host_header("::1", 8443), "[::1]:8443");
    }
}
