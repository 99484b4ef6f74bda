//! The listener: mutual TLS with the roster checked at every handshake, connections within
//! the admission caps, the router to the control API, the data plane and tunnels, and the
//! start and stop of serving.

use std::net::SocketAddr;
use std::sync::Arc;

use bglass_core::audit::event::EventKind;
use bglass_core::failstale::FailStale;
use bglass_core::keys::PublicKey;
use bglass_core::policy::Refusal;
use bglass_core::roster::{Responder, Roster};
use bglass_tls::KeyGate;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};

use super::start::{StartError, Startup};
use super::{Body, Proxy, admission, api, dataplane, json, ops, refusal_response, tunnel};

/// The roster check made at every TLS handshake.
#[derive(Debug)]
struct RosterGate {
    roster: Arc<FailStale<Roster>>,
    admission: Arc<admission::Admission>,
    refusals: tokio::sync::mpsc::Sender<admission::Immediate>,
}

impl KeyGate for RosterGate {
    fn admits(&self, key: &PublicKey) -> bool {
        self.roster.current().by_key(key).is_some()
    }
    fn refused(&self, key: Option<PublicKey>, why: &str) {
        let peer = admission::HANDSHAKE_PEER.try_with(|a| *a).ok();
        if let Some(immediate) = self.admission.refused(peer, key, why) {
            // At most IMMEDIATE_PER_MINUTE a minute: the channel does not fill.
            let _ = self.refusals.try_send(immediate);
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The client's key, when it presented one (verified at the handshake).
    pub key: Option<PublicKey>,
    /// The remote address.
    pub addr: SocketAddr,
}

impl Proxy {
    /// The roster entry of the connection's key, or a refusal.
    pub fn responder_of(&self, peer: &Peer) -> Result<Responder, Refusal> {
        let key = peer.key.ok_or_else(|| {
            Refusal::new(
                "no_client_key",
                401,
                "this route needs a client certificate over a roster key",
            )
            .hint("use the bglass CLI with an enrolled key")
        })?;
        self.roster.current().by_key(&key).cloned().ok_or_else(|| {
            Refusal::new(
                "unknown_key",
                401,
                "your key is no longer in this proxy's roster",
            )
            .hint("ask the operator to check responders.toml")
        })
    }
}

async fn route(
    proxy: Arc<Proxy>,
    peer: Peer,
    conn: Arc<dataplane::ConnCache>,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let (route, response) =
        if path == "/v1/witness/add-checkpoint" && req.method() == http::Method::POST {
            // A checkpoint's signature authenticates it: no client key needed (C2SP tlog-witness).
            ("witness", super::witness::add_checkpoint(&proxy, req).await)
        } else if peer.key.is_none() && path != "/healthz" {
            (
                "unauthenticated",
                refusal_response(
                    &Refusal::new(
                        "no_client_key",
                        401,
                        "only /healthz answers without a client certificate over a roster key",
                    )
                    .hint("use the bglass CLI with an enrolled key"),
                ),
            )
        } else if path == "/healthz" {
            // The key's rotations go with it: a CLI that knew an older key follows them (each
            // signed by both its keys) instead of trusting a new key on sight.
            let transitions = super::lock(&proxy.state).key_transitions.clone();
            (
                "healthz",
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "ok": true,
                        "proxy": proxy.config.id,
                        "key": proxy.key.public_key(),
                        "key_transitions": transitions,
                    }),
                ),
            )
        } else if let Some(rest) = path.strip_prefix("/s/") {
            let rest = rest.to_owned();
            (
                "data",
                dataplane::handle(&proxy, &peer, &conn, req, &rest).await,
            )
        } else if let Some(service) = path.strip_prefix("/v1/tunnel/") {
            let service = service.to_owned();
            (
                "tunnel",
                tunnel::open(&proxy, &peer, &conn, req, &service).await,
            )
        } else if let Some(service) = path
            .strip_prefix("/v1/ssh/")
            .and_then(|rest| rest.strip_suffix("/certificate"))
            .filter(|_| req.method() == http::Method::POST)
        {
            let service = service.to_owned();
            (
                "ssh_certificate",
                tunnel::certificate(&proxy, &peer, &conn, req, &service).await,
            )
        } else if path.starts_with("/v1/") {
            ("api", api::handle(&proxy, &peer, req).await)
        } else {
            (
                "other",
                refusal_response(&Refusal::new("not_found", 404, format!("no route {path}"))),
            )
        };
    proxy.metrics.request(route, response.status().as_u16());
    response
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(proxy: Arc<Proxy>, startup: Startup) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(proxy.config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: proxy.config.listen,
            source,
        })?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(StartError::Signal)?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let recovered = startup.recovered;
    // The address bound, not the configured one: with port 0 the system chose the port.
    let bound = listener.local_addr().unwrap_or(proxy.config.listen);
    let announce = {
        let proxy = Arc::clone(&proxy);
        move || {
            eprintln!(
                "bglass-proxy {}: listening on {bound} ({recovered} audit entries replayed)",
                proxy.config.id
            );
        }
    };
    serve_on(proxy, startup, listener, announce, shutdown).await
}

/// Serves on a bound listener until `shutdown` completes (the drill simulator runs its
/// proxies in-process this way), then records the stop and signs a final checkpoint.
/// `ready` runs once the start is recorded and the background tasks run.
pub async fn serve_on(
    proxy: Arc<Proxy>,
    startup: Startup,
    listener: tokio::net::TcpListener,
    ready: impl FnOnce(),
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let gate = Arc::new(RosterGate {
        roster: Arc::clone(&proxy.roster),
        admission: Arc::clone(&proxy.admission),
        refusals: proxy.refusals.clone(),
    });
    let tls = bglass_tls::server_config(startup.chain, startup.tls_key, gate)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let start = EventKind::ProxyStart {
        key: proxy.key.public_key(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        catalog: startup.policy.catalog.clone(),
        roster: startup.policy.roster.clone(),
        recovered: startup.repaired.clone(),
    };
    // A log behind what its witnesses cosigned was rolled back: refused before anything
    // is recorded or served.
    let rollbacks = super::witness::check_at_start(&proxy, startup.accept_rollback)
        .await
        .map_err(StartError::WitnessRollback)?;
    for rollback in rollbacks {
        proxy
            .record(None, rollback)
            .await
            .map_err(StartError::RecordStart)?;
    }
    proxy
        .record(None, start)
        .await
        .map_err(StartError::RecordStart)?;
    for change in startup.changed {
        proxy
            .record(None, change)
            .await
            .map_err(StartError::RecordStart)?;
    }
    if proxy.witness.is_some() {
        eprintln!(
            "bglass-proxy {}: witnessing {} logs as {}",
            proxy.config.id,
            proxy.config.witness_of.len(),
            bglass_core::audit::witness::cosigner_vkey(
                &format!("bglass-witness/{}", proxy.config.id),
                &proxy.key.public_key()
            )
        );
    }
    let tasks = ops::spawn_all(&proxy, startup.notify_rx, startup.refusals_rx);
    ready();

    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let limits = proxy.config.limits.clone();
    // Accept errors (out of file descriptors, above all) back off instead of spinning.
    let mut backoff = std::time::Duration::ZERO;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, addr) = match accepted {
                    Ok(a) => {
                        backoff = std::time::Duration::ZERO;
                        a
                    }
                    Err(e) => {
                        proxy.metrics.accept_error();
                        if backoff.is_zero() {
                            eprintln!("bglass-proxy: accept failed: {e} (backing off; raise LimitNOFILE or lower limits.max_connections)");
                        }
                        backoff = (backoff * 2).clamp(std::time::Duration::from_millis(5), std::time::Duration::from_millis(500));
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                };
                // Over a cap: closed at once, before any TLS work.
                let Ok(slot) = proxy.admission.admit(addr, limits.max_connections, limits.max_connections_per_source) else {
                    drop(tcp);
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let proxy = Arc::clone(&proxy);
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    connection(proxy, acceptor, tcp, addr).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    connections.abort_all();
    for task in tasks {
        task.abort();
    }
    let _ = proxy
        .record(
            None,
            EventKind::ProxyStop {
                reason: "signal".to_owned(),
            },
        )
        .await;
    let _ = proxy.log.checkpoint_now();
    Ok(())
}

async fn connection(
    proxy: Arc<Proxy>,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
) {
    let timeout = proxy.config.limits.header_timeout.to_std();
    let handshake = admission::HANDSHAKE_PEER.scope(addr, acceptor.accept(tcp));
    let Ok(Ok(tls)) = tokio::time::timeout(timeout, handshake).await else {
        return;
    };
    let key = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(bglass_tls::ed25519_key_of);
    // Without a client key only /healthz is served, once: the connection is not kept.
    let keep_alive = key.is_some();
    let peer = Peer { key, addr };
    let proxy_limits_buf = proxy.config.limits.max_header_bytes.max(8192);
    let conn = Arc::new(dataplane::ConnCache::default());
    let watch = Arc::clone(&conn);
    let watcher = Arc::clone(&proxy);
    let service = hyper::service::service_fn(move |req| {
        let proxy = Arc::clone(&proxy);
        let peer = peer.clone();
        let conn = Arc::clone(&conn);
        async move { Ok::<_, std::convert::Infallible>(route(proxy, peer, conn, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(proxy_limits_buf)
        .keep_alive(keep_alive);
    let serving = builder
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    // A revoked or expired grant closes the connections streaming under it, even when the
    // client has stopped reading.
    tokio::select! {
        _ = serving => {}
        () = watch.grant_ended(&watcher) => {}
    }
}
