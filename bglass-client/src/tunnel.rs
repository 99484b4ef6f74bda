//! Opening a tunnel to an SSH or TCP service: mutual TLS to the proxy that issued the grant,
//! then `GET /v1/tunnel/<service>` with `Upgrade: bglass-tunnel`; after `101`, the stream
//! carries the service's bytes both ways.

use std::sync::Arc;

use bglass_core::api::{ApiError, GRANT_HEADER};
use bglass_core::id::ServiceName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::client::{Session, refusal_error};
use crate::error::{CliError, CliResult, ErrorKind};
use crate::store::HeldGrant;

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
        let config = bglass_tls::client_config(
            conn.entry.pin,
            &session.identity.key,
            session.identity.id.as_str(),
        )
        .map_err(|e| CliError::internal(format!("TLS setup: {e}")))?;
        Ok(Self {
            addr: conn.entry.addr,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            grant,
        })
    }

    /// Opens one tunnel.
    pub async fn dial(&self) -> CliResult<TlsStream<TcpStream>> {
        let unavailable = |e: &dyn std::fmt::Display| {
            CliError::new(ErrorKind::Unavailable, format!("{} did not answer: {e}", self.grant.proxy_url))
                .with_hint("grants are per proxy: if it is down, run `bglass access` again to get one from another")
        };
        let tcp = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            TcpStream::connect(self.addr),
        )
        .await
        .map_err(|_| unavailable(&"timeout"))?
        .map_err(|e| unavailable(&e))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        let mut tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| unavailable(&e))?;
        let head = format!(
            "GET /v1/tunnel/{} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: bglass-tunnel\r\n{GRANT_HEADER}: {}\r\n\r\n",
            self.grant.service, self.addr, self.grant.token
        );
        tls.write_all(head.as_bytes())
            .await
            .map_err(|e| unavailable(&e))?;
        // Read the answer's head one byte at a time: the tunnel's first bytes may follow it.
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\n") {
            if answer.len() > 16 * 1024 {
                return Err(unavailable(&"answer head too long"));
            }
            let byte = tls.read_u8().await.map_err(|e| unavailable(&e))?;
            answer.push(byte);
        }
        let head = String::from_utf8_lossy(&answer);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unavailable(&"not an HTTP answer"))?;
        if status == 101 {
            return Ok(tls);
        }
        // A refusal: its JSON body follows (Content-Length).
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0)
            .min(64 * 1024);
        let mut body = vec![0u8; length];
        let _ = tls.read_exact(&mut body).await;
        let error: ApiError = serde_json::from_slice(&body).unwrap_or(ApiError {
            error: format!("http_{status}"),
            message: format!("the proxy refused the tunnel ({status})"),
            hint: None,
        });
        Err(refusal_error(status, error))
    }
}
