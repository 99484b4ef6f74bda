//! Opening a tunnel to an SSH or TCP service: mutual TLS to the proxy that issued the grant,
//! then `GET /v1/tunnel/<service>` with `Upgrade: bglass-tunnel`; after `101`, the stream
//! carries the service's bytes both ways.

use std::sync::Arc;

use bglass_core::api::{ApiError, GRANT_HEADER};
use bglass_core::id::ServiceName;
use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::{Session, refusal_error};
use crate::error::{CliError, CliResult, ErrorKind};
use crate::store::HeldGrant;

/// The `Upgrade` token the proxy's tunnel route expects.
const TUNNEL_PROTOCOL: &str = "bglass-tunnel";

/// The most of a refusal's body read (its JSON says why).
const MAX_REFUSAL_BYTES: usize = 64 * 1024;

/// An open tunnel: the service's bytes both ways.
pub type Tunnel = TokioIo<Upgraded>;

/// What the proxy answered a tunnel request with.
enum Opened {
    /// `101`: the tunnel.
    Tunnel(Tunnel),
    /// `200`: a canary's connection probe succeeded (nothing is relayed).
    Probed,
}

/// What is needed to open tunnels for one grant (cheap to clone into tasks).
#[derive(Clone)]
pub struct Dialer {
    /// The grant.
    pub grant: HeldGrant,
    addr: std::net::SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("grant", &self.grant.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer for the newest grant held for `service`.
    pub fn new(session: &Session, service: &ServiceName) -> CliResult<Self> {
        let (grant, conn) = session
            .held_grants(service)?
            .into_iter()
            .next()
            .ok_or_else(|| CliError::internal("no grant"))?;
        Self::for_grant(session, conn, grant)
    }

    /// A dialer for `grant`, issued by the proxy of `conn`.
    pub fn for_grant(
        session: &Session,
        conn: &crate::client::Conn,
        grant: HeldGrant,
    ) -> CliResult<Self> {
        let config = session.identity.tls_config(conn.entry.pin)?;
        Ok(Self {
            addr: conn.entry.addr,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            grant,
        })
    }

    /// Opens one tunnel: mutual TLS to the proxy, then the upgrade request through hyper's
    /// HTTP/1.1 client; after `101 Switching Protocols` the upgraded connection (with any
    /// bytes the proxy sent after its answer) carries the service's bytes both ways.
    pub async fn dial(&self) -> CliResult<Tunnel> {
        match self.request().await? {
            Opened::Tunnel(t) => Ok(t),
            Opened::Probed => Err(CliError::internal(
                "the proxy answered a connection probe, not a tunnel",
            )),
        }
    }

    /// A canary's TCP probe under a canary grant: the proxy connects to the service and
    /// says so, relaying nothing.
    pub async fn probe(&self) -> CliResult {
        match self.request().await? {
            Opened::Probed => Ok(()),
            Opened::Tunnel(_) => Err(CliError::internal(
                "the proxy opened a tunnel for a connection probe",
            )),
        }
    }

    async fn request(&self) -> CliResult<Opened> {
        let at = self.addr.to_string();
        let unavailable = |e: &(dyn std::error::Error + 'static)| {
            let why = crate::failure::plain_cause(e, &at);
            CliError::new(ErrorKind::Unavailable, format!("{} did not answer: {why}", self.grant.proxy_url))
                .with_hint("grants are per proxy: if it is down, run `bglass access` again to get one from another")
        };
        let tcp = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            TcpStream::connect(self.addr),
        )
        .await
        .map_err(|_| unavailable(&std::io::Error::from(std::io::ErrorKind::TimedOut)))?
        .map_err(|e| unavailable(&e))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| unavailable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(&e))?;
        // The connection task ends when the upgrade hands the stream over (or on an error,
        // which the request below reports).
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        let request = hyper::Request::get(format!("/v1/tunnel/{}", self.grant.service))
            .header(header::HOST, self.addr.to_string())
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, TUNNEL_PROTOCOL)
            .header(GRANT_HEADER, &self.grant.token)
            .body(Empty::<Bytes>::new())
            .map_err(|e| CliError::internal(format!("the tunnel request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(&e))?;
        let status = response.status();
        if status == StatusCode::SWITCHING_PROTOCOLS {
            let upgraded = hyper::upgrade::on(response)
                .await
                .map_err(|e| unavailable(&e))?;
            return Ok(Opened::Tunnel(TokioIo::new(upgraded)));
        }
        if status == StatusCode::OK {
            return Ok(Opened::Probed);
        }
        // A refusal: its JSON body says why.
        let body = Limited::new(response.into_body(), MAX_REFUSAL_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let error: ApiError = serde_json::from_slice(&body).unwrap_or(ApiError {
            error: format!("http_{}", status.as_u16()),
            message: format!("the proxy refused the tunnel ({})", status.as_u16()),
            hint: None,
        });
        Err(refusal_error(status.as_u16(), error))
    }
}
