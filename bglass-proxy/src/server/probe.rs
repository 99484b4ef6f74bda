//! Health probes: every service is probed every 10 seconds (HTTP with the catalog's path
//! and status, SSH and TCP banners, PostgreSQL and Redis handshakes) for status and
//! metrics. Informational only: a probe never gates access.

use std::sync::Arc;
use std::time::Duration;

use bglass_core::catalog::{Service, ServiceKind, TcpProbe};
use bglass_core::vault::CredentialError;
use bytes::Bytes;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Proxy, full, lock};
use crate::upstream::UpstreamError;

/// Why a service's health probe failed (informational: probes never gate access).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// No answer within the probe's time.
    #[error("no answer within 3s")]
    Timeout,
    /// The credential the health path needs is not usable.
    #[error("not probed with its credential: {0}")]
    Credential(CredentialError),
    /// The probe request could not be made.
    #[error("{0}")]
    Request(#[from] http::Error),
    /// The tool did not answer the HTTP probe.
    #[error("no answer: {0}")]
    NoAnswer(#[from] UpstreamError),
    /// The tool answered with another status than the catalog expects.
    #[error("status {got} (expected {expected})")]
    Status {
        /// The status received.
        got: u16,
        /// The status the catalog expects.
        expected: u16,
    },
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The connection closed before a banner.
    #[error("closed without a banner")]
    NoBanner,
    /// The banner is not the protocol's.
    #[error("unexpected banner")]
    UnexpectedBanner,
    /// The answer to an SSLRequest is not PostgreSQL's.
    #[error("not a PostgreSQL server")]
    NotPostgres,
    /// The answer to PING is not Redis's.
    #[error("not a Redis server")]
    NotRedis,
}

/// Probes every service every 10 seconds. Informational only: never gates access.
pub async fn health(proxy: Arc<Proxy>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let catalog = proxy.catalog.current();
        let mut results = Vec::new();
        for service in catalog.services() {
            let result = tokio::time::timeout(Duration::from_secs(3), probe(&proxy, service)).await;
            let (up, detail) = match result {
                Ok(Ok(())) => (Some(true), None),
                Ok(Err(why)) => (Some(false), Some(why.to_string())),
                Err(_) => (Some(false), Some(ProbeError::Timeout.to_string())),
            };
            results.push((service.name.to_string(), (up, detail)));
        }
        let mut health = lock(&proxy.health);
        health.clear();
        health.extend(results);
    }
}

async fn probe(proxy: &Proxy, service: &Service) -> Result<(), ProbeError> {
    let addr = service.upstream.addr;
    match &service.kind {
        ServiceKind::Http { health, inject } => {
            // Scheme, address and Host come from the catalog: TLS with the pin for https.
            let mut request = Request::get(health.path.as_str());
            // A probe carries the credential only where the catalog says the health path
            // needs it, and only where the credential is bound.
            if let (true, Some(inject)) = (health.auth, inject) {
                let vault = proxy
                    .vault
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let secret = vault
                    .credential(&inject.secret, &service.name, &service.upstream)
                    .map_err(ProbeError::Credential)?;
                use bglass_core::ExposeSecret;
                request = request.header(
                    inject.header.as_str(),
                    inject.render(secret.expose_secret()),
                );
            }
            let request = request.body(full(Bytes::new()))?;
            let response = proxy.upstream.send(&service.upstream, request).await?;
            let got = response.status().as_u16();
            if got == health.expect_status {
                Ok(())
            } else {
                Err(ProbeError::Status {
                    got,
                    expected: health.expect_status,
                })
            }
        }
        ServiceKind::Ssh { .. } => banner(addr, Some(b"SSH-")).await,
        ServiceKind::Tcp { probe } => match probe {
            TcpProbe::Connect => {
                tokio::net::TcpStream::connect(addr).await?;
                Ok(())
            }
            TcpProbe::Banner => banner(addr, None).await,
            TcpProbe::Postgres => {
                // SSLRequest: length 8, code 80877103; a server answers 'S' or 'N'.
                let mut s = tokio::net::TcpStream::connect(addr).await?;
                s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await?;
                if b[0] == b'S' || b[0] == b'N' {
                    Ok(())
                } else {
                    Err(ProbeError::NotPostgres)
                }
            }
            TcpProbe::Redis => {
                let mut s = tokio::net::TcpStream::connect(addr).await?;
                s.write_all(b"PING\r\n").await?;
                let mut b = [0u8; 64];
                let n = s.read(&mut b).await?;
                let answer = &b[..n];
                if answer.starts_with(b"+PONG") || answer.starts_with(b"-NOAUTH") {
                    Ok(())
                } else {
                    Err(ProbeError::NotRedis)
                }
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

async fn banner(addr: std::net::SocketAddr, expect: Option<&[u8]>) -> Result<(), ProbeError> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut b = [0u8; 64];
    let n = s.read(&mut b).await?;
    match expect {
        _ if n == 0 => Err(ProbeError::NoBanner),
        Some(prefix) if !b[..n].starts_with(prefix) => Err(ProbeError::UnexpectedBanner),
        _ => Ok(()),
    }
}
