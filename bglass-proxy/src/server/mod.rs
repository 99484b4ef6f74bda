//! The running proxy: start-up (keys from the vault, state replayed from the log), the
//! mutual-TLS listener, routing to the control API and the data plane, and the background
//! tasks (expiry, health, metrics, reload, notifications).

pub mod admission;
mod api;
mod dataplane;
mod hygiene;
mod ops;
mod storage;
mod tunnel;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::api::ApiError;
use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind};
use bglass_core::audit::log::{Appended, AuditLog, AuditOpenError, LogConfig, Submitted};
use bglass_core::catalog::Catalog;
use bglass_core::failstale::FailStale;
use bglass_core::grant::GrantVerifier;
use bglass_core::id::{ResponderId, SecretName};
use bglass_core::keys::{PublicKey, SigningKey};
use bglass_core::roster::{Responder, Roster};
use bglass_core::vault::{Vault, VaultIdentity};
use bglass_core::{ExposeSecret, timestamp};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::config::ProxyConfig;
use crate::init::{CA_KEY_SECRET, SIGNING_KEY_SECRET, TLS_KEY_SECRET};
use crate::metrics::Metrics;
use bglass_core::policy::{Refusal, State};
use bglass_tls::KeyGate;

/// The error type of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response (and of upstream requests).
pub type Body = BoxBody<Bytes, BoxError>;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file is invalid or unreadable.
    #[error("{0}")]
    Config(String),
    /// The audit log could not be opened: the proxy refuses to run without it.
    #[error("audit log: {0}")]
    Audit(String),
    /// The audit log is behind the newest checkpoint this proxy published, and the
    /// operator has not accepted that.
    #[error(
        "audit log rolled back: {0}. Nothing was served. If this log is the one to keep (the newer one is lost), start with --accept-rollback: the rollback is then recorded in the log before anything is served"
    )]
    RolledBack(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

fn config_err(e: impl std::fmt::Display) -> StartError {
    StartError::Config(e.to_string())
}

/// A service's last probe: up or down (unknown before the first), and why when down.
pub type Health = (Option<bool>, Option<String>);

/// The running proxy, shared by every connection and task.
pub struct Proxy {
    /// `proxy.toml`.
    pub config: ProxyConfig,
    /// The signing key (grants, checkpoints).
    pub key: Arc<SigningKey>,
    /// Verifies grants this proxy issued.
    pub verifier: GrantVerifier,
    /// The catalog in force (fail stale).
    pub catalog: FailStale<Catalog>,
    /// The roster in force (fail stale); also consulted at every handshake.
    pub roster: Arc<FailStale<Roster>>,
    /// Upstream credentials.
    pub vault: RwLock<Arc<Vault>>,
    /// The audit log.
    pub log: Arc<AuditLog>,
    /// The live state (rebuilt from the log).
    pub state: Mutex<State>,
    /// Metrics.
    pub metrics: Metrics,
    /// Last health of each service: (up, detail).
    pub health: Mutex<HashMap<String, Health>>,
    /// Bumped whenever a grant ends (revocation, expiry), so that open streams re-check.
    pub grant_changes: tokio::sync::watch::Sender<u64>,
    /// The cookies tools set, per grant: replayed to the tool, never given to the client,
    /// dropped when the grant ends.
    jars: Mutex<HashMap<bglass_core::id::GrantId, hygiene::CookieJar>>,
    /// Long polls waiting on one request's decision (`GET /v1/requests/ID?wait=S`).
    request_waiters: Mutex<HashMap<bglass_core::id::RequestId, Arc<tokio::sync::Notify>>>,
    /// Bumped when the set of pending requests changes (`GET /v1/requests?wait=S`).
    pub pending_changes: tokio::sync::watch::Sender<u64>,
    /// Sends appended events to the notifier.
    notify: tokio::sync::mpsc::UnboundedSender<(u64, Event)>,
    /// Sends handshake refusals to be recorded one by one to the auditor task.
    refusals: tokio::sync::mpsc::Sender<admission::Immediate>,
    /// Connection caps and the summary of refused handshakes.
    pub admission: Arc<admission::Admission>,
    /// The client to upstream tools (plain HTTP, or pinned HTTPS).
    upstream: crate::upstream::Upstreams,
    /// Free space under the data directory, and what was announced of the log's health.
    storage: storage::StorageWatch,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("id", &self.config.id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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

fn secret_bytes(vault: &Vault, name: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, StartError> {
    let name = SecretName::new(name).map_err(config_err)?;
    let value = vault.proxy_key(&name).ok_or_else(|| {
        StartError::Config(format!(
            "the vault has no {name}; was this proxy made by `bglass-proxy init`?"
        ))
    })?;
    STANDARD
        .decode(value.expose_secret())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| StartError::Config(format!("vault entry {name} is not base64")))
}

/// How to start.
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    /// Start on a log that is behind the newest checkpoint this proxy published (restored
    /// from an older copy), recording the rollback in the log first.
    pub accept_rollback: bool,
}

/// Where the proxy keeps the newest checkpoint it has published, outside its log directory,
/// so that a log restored from an older copy is noticed at start.
pub const PUBLISHED_CHECKPOINT_FILE: &str = "published-checkpoint";

/// Loads everything and opens the log (replaying it into the state).
pub fn start(config_path: &Path) -> Result<(Arc<Proxy>, Startup), StartError> {
    start_with(config_path, &StartOptions::default())
}

/// [`start`] with options.
pub fn start_with(
    config_path: &Path,
    options: &StartOptions,
) -> Result<(Arc<Proxy>, Startup), StartError> {
    let config = ProxyConfig::load(config_path).map_err(config_err)?;
    let identity = VaultIdentity::open_file(&config.vault_identity).map_err(config_err)?;
    let vault = Vault::open(&config.vault, &identity).map_err(config_err)?;
    let key = Arc::new(
        SigningKey::from_pkcs8(&secret_bytes(&vault, SIGNING_KEY_SECRET)?).map_err(config_err)?,
    );
    let tls_key = PrivatePkcs8KeyDer::from(secret_bytes(&vault, TLS_KEY_SECRET)?.to_vec());
    if SecretName::new(CA_KEY_SECRET)
        .ok()
        .is_some_and(|n| vault.proxy_key(&n).is_some())
    {
        eprintln!(
            "bglass-proxy: WARNING: the TLS CA private key is in the vault; the running proxy does not need it. Move it off this host: bglass-proxy export-ca-key --config {} --out FILE",
            config.path.display()
        );
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.tls_chain)
        .map_err(|e| StartError::Config(format!("{}: {e}", config.tls_chain.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| StartError::Config(format!("{}: {e}", config.tls_chain.display())))?;
    let catalog = Catalog::load(&config.services).map_err(config_err)?;
    for (service, why) in vault.unbound(&catalog) {
        eprintln!(
            "bglass-proxy: WARNING: {service} will be refused (credential_not_bound): {why}; bind it with `bglass-proxy secrets bind NAME --for {service}`"
        );
    }
    let roster = Roster::load(&config.roster).map_err(config_err)?;

    let mut state = State::new();
    let log_config = LogConfig {
        published: Some(config.data_dir.join(PUBLISHED_CHECKPOINT_FILE)),
        accept_rollback: options.accept_rollback,
        reserve_bytes: config.storage.reserve_bytes,
        ..LogConfig::new(
            config.data_dir.join("log"),
            config.id.clone(),
            Arc::clone(&key),
        )
    };
    let (log, recovery) = AuditLog::open(log_config, |index, bytes| state.replay(index, bytes))
        .map_err(|e| match e {
            AuditOpenError::RolledBack(rollback) => StartError::RolledBack(rollback.to_string()),
            other => StartError::Audit(other.to_string()),
        })?;
    if let Some(rollback) = &recovery.rollback {
        eprintln!("bglass-proxy: ROLLBACK ACCEPTED and recorded in the audit log: {rollback}");
    } else if options.accept_rollback {
        eprintln!("bglass-proxy: --accept-rollback given, but the audit log is not rolled back");
    }
    let repaired = repairs_of(&recovery);
    if let Some(what) = &repaired {
        eprintln!("bglass-proxy: the audit log recovered from a crash: {what}");
    }
    if let Some(why) = &recovery.reserve_missing {
        eprintln!(
            "bglass-proxy: WARNING: the audit log's reserve file could not be made ({why}): on a full disk the log cannot record its failure until space returns"
        );
    }

    let (notify, notify_rx) = tokio::sync::mpsc::unbounded_channel();
    let (refusals, refusals_rx) = tokio::sync::mpsc::channel(admission::IMMEDIATE_PER_MINUTE * 4);
    let upstream = crate::upstream::Upstreams::new();
    let verifier = GrantVerifier::new(config.id.clone(), key.public_key());
    let proxy = Arc::new(Proxy {
        catalog: FailStale::new(catalog),
        roster: Arc::new(FailStale::new(roster)),
        vault: RwLock::new(Arc::new(vault)),
        log: Arc::new(log),
        state: Mutex::new(state),
        metrics: Metrics::default(),
        health: Mutex::new(HashMap::new()),
        notify,
        refusals,
        admission: Arc::new(admission::Admission::default()),
        grant_changes: tokio::sync::watch::channel(0).0,
        jars: Mutex::new(HashMap::new()),
        request_waiters: Mutex::new(HashMap::new()),
        pending_changes: tokio::sync::watch::channel(0).0,
        upstream,
        storage: storage::StorageWatch::default(),
        verifier,
        key,
        config,
    });
    Ok((
        proxy,
        Startup {
            chain,
            tls_key,
            notify_rx,
            refusals_rx,
            recovered: recovery.entries,
            repaired,
        },
    ))
}

/// What `start` hands to `serve`.
#[derive(Debug)]
pub struct Startup {
    chain: Vec<CertificateDer<'static>>,
    tls_key: PrivatePkcs8KeyDer<'static>,
    notify_rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>,
    refusals_rx: tokio::sync::mpsc::Receiver<admission::Immediate>,
    /// Entries replayed from the log.
    pub recovered: u64,
    /// What opening the log repaired, in a sentence (recorded in `proxy_start`).
    pub repaired: Option<String>,
}

impl Proxy {
    /// The event for `kind` by `actor`, now, tagged with the drill it belongs to.
    fn event(&self, actor: Option<ResponderId>, kind: EventKind, drill: Option<String>) -> Event {
        Event {
            v: EVENT_VERSION,
            time_ms: timestamp::now_ms(),
            proxy: self.config.id.clone(),
            actor,
            drill,
            event: kind,
        }
    }

    /// Queues events for the log, in order (call with the state lock held when the order
    /// must match the order of decisions).
    pub fn submit(&self, events: &[Event]) -> Result<Vec<Submitted>, Refusal> {
        if let Some(why) = self.log.failure() {
            return Err(self.audit_failed(&why));
        }
        events
            .iter()
            .map(|event| {
                let bytes = event.to_bytes().map_err(|e| {
                    Refusal::new("internal", 500, format!("encoding an audit event: {e}"))
                })?;
                self.log.submit(bytes).map_err(|e| self.audit_failed(&e))
            })
            .collect()
    }

    /// Waits until submitted events are durable; hands them to the notifier.
    pub async fn wait(
        &self,
        pending: Vec<Submitted>,
        events: &[Event],
    ) -> Result<Vec<Appended>, Refusal> {
        let start = Instant::now();
        let results = tokio::task::spawn_blocking(move || {
            pending.into_iter().map(Submitted::wait).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Refusal::new("internal", 500, format!("audit wait: {e}")))?;
        let micros = timestamp::micros(start.elapsed());
        let mut out = Vec::with_capacity(results.len());
        for (result, event) in results.into_iter().zip(events) {
            match result {
                Ok(appended) => {
                    self.metrics.audit_append(micros, true);
                    let _ = self.notify.send((appended.index, event.clone()));
                    out.push(appended);
                }
                Err(e) => {
                    self.metrics.audit_append(micros, false);
                    return Err(self.audit_failed(&e));
                }
            }
        }
        Ok(out)
    }

    /// Records one event by `actor` (refusals, uses, expiries, proxy events); the state is
    /// updated with it once it is durable.
    pub async fn record(
        &self,
        actor: Option<ResponderId>,
        kind: EventKind,
    ) -> Result<Appended, Refusal> {
        let (event, pending) = {
            let state = lock(&self.state);
            let drill = state.drill_tag(&kind);
            let event = self.event(actor, kind, drill);
            let pending = self.submit(std::slice::from_ref(&event))?;
            (event, pending)
        };
        let appended = self.wait(pending, std::slice::from_ref(&event)).await?;
        let first = appended
            .into_iter()
            .next()
            .ok_or_else(|| Refusal::new("internal", 500, "no append result"))?;
        lock(&self.state).apply(first.index, &event);
        self.applied(&event);
        Ok(first)
    }

    /// Tells open streams when a grant ends, and long polls when a request changes.
    pub fn applied(&self, event: &Event) {
        match &event.event {
            EventKind::Revoke { grant, .. } | EventKind::Expiry { grant } => {
                lock(&self.jars).remove(grant);
                self.grant_changes.send_modify(|g| *g += 1);
            }
            EventKind::Request { request, .. }
            | EventKind::Approval { request, .. }
            | EventKind::Grant { request, .. }
            | EventKind::Denial {
                request: Some(request),
                ..
            } => {
                if let Some(n) = lock(&self.request_waiters).get(request) {
                    n.notify_waiters();
                }
                self.pending_changes.send_modify(|g| *g += 1);
            }
            _ => {}
        }
    }

    /// The notifier of one request's changes (for a long poll); drop it with
    /// [`Self::unwait_request`].
    pub fn wait_request(&self, id: &bglass_core::id::RequestId) -> Arc<tokio::sync::Notify> {
        Arc::clone(lock(&self.request_waiters).entry(id.clone()).or_default())
    }

    /// Forgets a request's notifier once nobody waits on it.
    pub fn unwait_request(&self, id: &bglass_core::id::RequestId, n: Arc<tokio::sync::Notify>) {
        let mut waiters = lock(&self.request_waiters);
        // Ours and the map's: nobody else waits.
        if Arc::strong_count(&n) <= 2 {
            waiters.remove(id);
        }
    }

    /// The refusal while the audit log cannot write: it says since when and that the proxy
    /// retries by itself; the first one of a failure tells the operator what to do.
    fn audit_failed(&self, why: &dyn std::fmt::Display) -> Refusal {
        self.metrics.denial("audit_failed");
        let health = self.log.health();
        if let Some(failure) = &health.failed {
            storage::announce_failure(self, failure);
        }
        Refusal::new("audit_failed", 503, storage::refusal_message(&health, why))
            .hint("try another proxy, or this one again shortly: it resumes by itself")
    }

    /// Records a refusal (best effort: a refusal is already a "no").
    pub async fn refuse(
        &self,
        actor: Option<ResponderId>,
        refusal: &Refusal,
        context: Denied,
    ) -> Refusal {
        self.metrics.denial(refusal.code);
        let kind = EventKind::Denial {
            reason: refusal.code.to_owned(),
            detail: refusal.message.clone(),
            request: context.request,
            service: context.service,
            grant: context.grant,
            envelope: context.envelope,
        };
        let _ = self.record(actor, kind).await;
        refusal.clone()
    }
}

/// What a refusal concerned, for its audit event.
#[derive(Debug, Default)]
pub struct Denied {
    /// The request.
    pub request: Option<bglass_core::id::RequestId>,
    /// The service.
    pub service: Option<bglass_core::id::ServiceName>,
    /// The grant.
    pub grant: Option<bglass_core::id::GrantId>,
    /// The envelope, when it decoded.
    pub envelope: Option<bglass_core::audit::event::StoredEnvelope>,
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A response body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Refusals carry this header so that clients tell them from an upstream's own answers.
pub const REFUSAL_HEADER: &str = "bglass-refusal";

/// The JSON error response for a refusal.
pub fn refusal_response(r: &Refusal) -> Response<Body> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = json(
        status,
        &ApiError {
            error: r.code.to_owned(),
            message: r.message.clone(),
            hint: r.hint.clone(),
        },
    );
    if let Ok(v) = http::HeaderValue::from_str(r.code) {
        response.headers_mut().insert(REFUSAL_HEADER, v);
    }
    response
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
    let (route, response) = if peer.key.is_none() && path != "/healthz" {
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
        (
            "healthz",
            json(
                StatusCode::OK,
                &serde_json::json!({ "ok": true, "proxy": proxy.config.id, "key": proxy.key.public_key() }),
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
        .map_err(|e| StartError::Config(format!("signal handler: {e}")))?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let recovered = startup.recovered;
    let announce = {
        let proxy = Arc::clone(&proxy);
        move || {
            eprintln!(
                "bglass-proxy {}: listening on {} ({recovered} audit entries replayed)",
                proxy.config.id, proxy.config.listen
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
    let tls =
        bglass_tls::server_config(startup.chain, startup.tls_key, gate).map_err(config_err)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let start = EventKind::ProxyStart {
        key: proxy.key.public_key(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        catalog: proxy.catalog.current().digest().to_owned(),
        roster: roster_digest(&proxy.config.roster),
        recovered: startup.repaired.clone(),
    };
    proxy
        .record(None, start)
        .await
        .map_err(|r| StartError::Audit(r.message))?;
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

/// What opening the log repaired, in a sentence, when it repaired anything.
fn repairs_of(report: &bglass_core::audit::log::RecoveryReport) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(why) = &report.torn {
        parts.push(format!(
            "a torn tail of {} bytes cut from the write-ahead file after entry {} ({why}); nothing acknowledged was lost",
            report.torn_bytes_dropped,
            report.entries.saturating_sub(1)
        ));
    }
    if let Some(why) = &report.history_torn {
        parts.push(format!(
            "a torn tail of {} bytes cut from the checkpoint history ({why})",
            report.history_torn_bytes
        ));
    }
    if report.checkpoint_file_repaired {
        parts.push("the checkpoint file rewritten from the history".to_owned());
    }
    if let Some(b) = report.bundle_rebuilt {
        parts.push(format!(
            "entry bundle {b} rebuilt from the write-ahead file"
        ));
    }
    if report.files_repaired > 0 {
        parts.push(format!(
            "{} bundle or tile files written again",
            report.files_repaired
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn roster_digest(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| {
            let d = ring::digest::digest(&ring::digest::SHA256, &b);
            d.as_ref().iter().map(|x| format!("{x:02x}")).collect()
        })
        .unwrap_or_default()
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
