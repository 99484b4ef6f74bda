//! SSH and TCP access: tunnels over the mutual-TLS connection (HTTP upgrade), and
//! short-lived OpenSSH user certificates signed by the proxy's SSH CA.
//!
//! A tunnel is opened only with a grant for the service, checked like any data-plane request;
//! its opening and closing (with bytes each way) are audited, and it is cut when the grant is
//! revoked or expires. A certificate lives minutes (`[ssh] certificate_ttl`, never past the
//! grant's end; the client asks for a fresh one per session), is valid only from the proxy's
//! own addresses (`source-address`, `[ssh] source_addresses`), carries the catalog's
//! principals and a key id naming the responder and the grant, and allows port or agent
//! forwarding only when the catalog does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bglass_core::audit::event::EventKind;
use bglass_core::catalog::ServiceKind;
use bglass_core::timestamp;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::dataplane::{Authorized, ConnCache, authorize};
use super::{Body, Denied, Peer, Proxy, full, json, lock, refusal_response};
use crate::init::SSH_CA_SECRET;
use bglass_core::policy::Refusal;

/// The `Upgrade` token of a bglass tunnel.
pub const TUNNEL_PROTOCOL: &str = "bglass-tunnel";

/// Tunnel numbers, unique within a proxy run.
static NEXT_TUNNEL: AtomicU64 = AtomicU64::new(1);

/// `GET /v1/tunnel/<service>` with `Upgrade: bglass-tunnel`.
pub async fn open(
    proxy: &Arc<Proxy>,
    peer: &Peer,
    conn: &Arc<ConnCache>,
    mut req: Request<Incoming>,
    service_part: &str,
) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(TUNNEL_PROTOCOL));
    if !upgrade {
        return refusal_response(&Refusal::new(
            "not_a_tunnel",
            400,
            "a tunnel needs `Upgrade: bglass-tunnel`",
        ));
    }
    let auth = match authorize(
        proxy,
        peer,
        conn,
        req.headers(),
        service_part,
        &["ssh", "tcp"],
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return refusal_response(&r),
    };
    let Authorized {
        caller,
        service,
        verified,
        watch,
    } = auth;
    let grant = verified.claims().id.clone();
    let upstream = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(service.upstream.addr),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let r = Refusal::new(
                "upstream_unreachable",
                502,
                format!(
                    "{} at {} refused the connection: {e}",
                    service.name, service.upstream.addr
                ),
            )
            .hint("the host itself may be down; `bglass status` shows the proxy's health checks");
            let context = Denied {
                service: Some(service.name.clone()),
                grant: Some(grant),
                ..Denied::default()
            };
            return refusal_response(&proxy.refuse(Some(caller.id.clone()), &r, context).await);
        }
        Err(_) => {
            let r = Refusal::new(
                "upstream_timeout",
                504,
                format!("{} did not accept a connection within 5s", service.name),
            );
            let context = Denied {
                service: Some(service.name.clone()),
                grant: Some(grant),
                ..Denied::default()
            };
            return refusal_response(&proxy.refuse(Some(caller.id.clone()), &r, context).await);
        }
    };
    let _ = upstream.set_nodelay(true);
    let tunnel = NEXT_TUNNEL.fetch_add(1, Ordering::Relaxed);
    // A canary's TCP probe: the connection was made; nothing is relayed.
    if verified.claims().canary && service.kind_name() == "tcp" {
        drop(upstream);
        for event in [
            EventKind::TunnelOpen {
                grant: grant.clone(),
                service: service.name.clone(),
                tunnel,
            },
            EventKind::TunnelClose {
                grant,
                service: service.name.clone(),
                tunnel,
                bytes_up: 0,
                bytes_down: 0,
                reason: "canary_probe".to_owned(),
            },
        ] {
            if let Err(r) = proxy.record(Some(caller.id.clone()), event).await {
                return refusal_response(&r);
            }
        }
        return json(
            StatusCode::OK,
            &serde_json::json!({ "connected": true, "service": service.name }),
        );
    }
    // A recorded service's keys are checked before the tunnel opens: without them its
    // sessions cannot be recorded, and so are refused (fail closed).
    let recorded_key = if service.recorded() {
        let keys = super::certify::vault_key(proxy, crate::recording_keys::HOST_KEY_SECRET)
            .and_then(|host| {
                super::certify::vault_key(proxy, crate::recording_keys::SESSION_CA_SECRET)
                    .map(|_| host)
            });
        match keys {
            Ok(host) => Some(host),
            Err(r) => {
                let r = Refusal::new(
                    "recording_unavailable",
                    503,
                    format!("{} is recorded, and this proxy cannot record: {}", service.name, r.message),
                )
                .hint("the operator runs `bglass-proxy ssh-ca recording --config proxy.toml` and reloads the proxy");
                let context = Denied {
                    service: Some(service.name.clone()),
                    grant: Some(grant),
                    ..Denied::default()
                };
                return refusal_response(&proxy.refuse(Some(caller.id.clone()), &r, context).await);
            }
        }
    } else {
        None
    };
    let opened = EventKind::TunnelOpen {
        grant: grant.clone(),
        service: service.name.clone(),
        tunnel,
    };
    if let Err(r) = proxy.record(Some(caller.id.clone()), opened).await {
        return refusal_response(&r);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let proxy = Arc::clone(proxy);
    let canary = verified.claims().canary;
    let exp = verified.claims().exp;
    tokio::spawn(async move {
        let ended = {
            let proxy = Arc::clone(&proxy);
            let grant = grant.clone();
            async move {
                watch.ended().await;
                let revoked = lock(&proxy.state)
                    .grants
                    .get(&grant)
                    .is_some_and(|g| g.revoked_ms.is_some());
                if revoked { "revoked" } else { "expired" }
            }
        };
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let reason = match (on_upgrade.await, recorded_key) {
            (Ok(upgraded), Some(host_key)) => {
                let ctx = Arc::new(super::recorded::Context {
                    proxy: Arc::clone(&proxy),
                    caller: caller.id.clone(),
                    service: service.clone(),
                    grant: grant.clone(),
                    exp,
                    canary,
                    tunnel,
                });
                let counters = Arc::new(super::recorded::Counters::default());
                let client = TokioIo::new(upgraded);
                let reason = super::recorded::serve(
                    ctx,
                    client,
                    upstream,
                    host_key,
                    Arc::clone(&counters),
                    ended,
                )
                .await;
                up.store(counters.up.load(Ordering::Relaxed), Ordering::Relaxed);
                down.store(counters.down.load(Ordering::Relaxed), Ordering::Relaxed);
                reason
            }
            (Ok(upgraded), None) => {
                let client = TokioIo::new(upgraded);
                tokio::select! {
                    reason = pump(client, upstream, Arc::clone(&up), Arc::clone(&down)) => reason,
                    reason = ended => reason,
                }
            }
            (Err(_), _) => "upgrade_failed",
        };
        let (bytes_up, bytes_down) = (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
        proxy.metrics.bytes(bytes_up, bytes_down);
        let closed = EventKind::TunnelClose {
            grant,
            service: service.name,
            tunnel,
            bytes_up,
            bytes_down,
            reason: reason.to_owned(),
        };
        let _ = proxy.record(Some(caller.id), closed).await;
    });
    let mut response = Response::new(full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    response.headers_mut().insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static(TUNNEL_PROTOCOL),
    );
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    response
}

/// Copies both ways until both sides are done; returns why it ended.
async fn pump(
    client: impl AsyncRead + AsyncWrite + Unpin,
    upstream: tokio::net::TcpStream,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
) -> &'static str {
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut up_r, mut up_w) = upstream.into_split();
    let to_upstream = async {
        let mut buf = vec![0u8; 8192];
        loop {
            match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if up_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    up.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        let _ = up_w.shutdown().await;
    };
    let to_client = async {
        let mut buf = vec![0u8; 8192];
        loop {
            match up_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if client_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let _ = client_w.flush().await;
                    down.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        let _ = client_w.shutdown().await;
    };
    tokio::join!(to_upstream, to_client);
    "eof"
}

/// `POST /v1/ssh/<service>/certificate` with `{"public_key": "<OpenSSH public key>"}`.
pub async fn certificate(
    proxy: &Arc<Proxy>,
    peer: &Peer,
    conn: &Arc<ConnCache>,
    req: Request<Incoming>,
    service_part: &str,
) -> Response<Body> {
    match issue(proxy, peer, conn, req, service_part).await {
        Ok(r) => r,
        Err(r) => refusal_response(&r),
    }
}

async fn issue(
    proxy: &Arc<Proxy>,
    peer: &Peer,
    conn: &Arc<ConnCache>,
    req: Request<Incoming>,
    service_part: &str,
) -> Result<Response<Body>, Refusal> {
    let Authorized {
        caller,
        service,
        verified,
        ..
    } = authorize(proxy, peer, conn, req.headers(), service_part, &["ssh"]).await?;
    let claims = verified.claims().clone();
    let context = || Denied {
        service: Some(service.name.clone()),
        grant: Some(claims.id.clone()),
        ..Denied::default()
    };
    let body = Limited::new(req.into_body(), 4096)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|_| {
            Refusal::new(
                "too_large",
                413,
                "the certificate request is over 4096 bytes",
            )
        })?;
    let text = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["public_key"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            Refusal::new(
                "malformed",
                400,
                "give {\"public_key\": \"<OpenSSH public key>\"}",
            )
        })?;
    let public = match ssh_key::PublicKey::from_openssh(text.trim()) {
        Ok(k)
            if matches!(
                k.algorithm(),
                ssh_key::Algorithm::Ed25519 | ssh_key::Algorithm::Ecdsa { .. }
            ) =>
        {
            k
        }
        _ => {
            let r = Refusal::new(
                "bad_public_key",
                400,
                "the public key must be an OpenSSH Ed25519 or ECDSA key",
            );
            return Err(proxy.refuse(Some(caller.id.clone()), &r, context()).await);
        }
    };
    let ServiceKind::Ssh {
        principals,
        host_key,
        permit_port_forwarding,
        permit_agent_forwarding,
        ..
    } = &service.kind
    else {
        return Err(Refusal::new("wrong_kind", 400, "not an SSH service"));
    };
    if service.recorded() {
        // The proxy logs in to a recorded host itself: the responder gets no certificate,
        // only the key of the proxy's own SSH endpoint to check.
        let host = super::certify::vault_key(proxy, crate::recording_keys::HOST_KEY_SECRET)?
            .public_key()
            .to_openssh()
            .map_err(|e| Refusal::new("internal", 500, format!("the SSH host key: {e}")))?;
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "recorded": true,
                "principals": principals,
                "host_key": host,
                "valid_before": claims.exp,
                "grant_expires": claims.exp,
            }),
        ));
    }
    let ca = super::certify::vault_key(proxy, SSH_CA_SECRET)?;
    let now = timestamp::now_ms() / 1000;
    // Valid from a minute ago (clock skew between proxy and host) for minutes, never past
    // the grant's end; only from the addresses this proxy reaches hosts from.
    let settings = &proxy.config.ssh;
    let (valid_after, valid_before) = settings.window(now, claims.exp);
    let mut extensions = Vec::new();
    if *permit_port_forwarding {
        extensions.push("permit-port-forwarding");
    }
    if *permit_agent_forwarding {
        extensions.push("permit-agent-forwarding");
    }
    let spec = super::certify::Spec {
        key: public.key_data(),
        principals,
        window: (valid_after, valid_before),
        key_id: format!("bglass:{}:{}:{}", caller.id, claims.id, proxy.config.id),
        probe_only: claims.canary,
        extensions,
    };
    let (cert, serial) = super::certify::sign(proxy, &ca, &spec)?;
    let fail =
        |e: ssh_key::Error| Refusal::new("internal", 500, format!("building the certificate: {e}"));
    let text = cert.to_openssh().map_err(fail)?;
    let event = EventKind::SshCertificate {
        grant: claims.id.clone(),
        service: service.name.clone(),
        key: public.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        serial,
        principals: principals.clone(),
        valid_before,
    };
    proxy.record(Some(caller.id.clone()), event).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "certificate": text,
            "principals": principals,
            "host_key": host_key,
            "valid_before": valid_before,
            "grant_expires": claims.exp,
            "source_addresses": settings.source_address_option(),
            "serial": serial,
        }),
    ))
}
