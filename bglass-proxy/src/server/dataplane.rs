//! The HTTP data plane at `/s/<service>/…`: verify the grant, strip the client's
//! credentials, inject the upstream credential from the vault, stream both bodies, and audit
//! every request.
//!
//! The grant must verify (signature, issuer, window, service, bound key — the connection's
//! key) and must not be revoked; a verified grant is cached per connection, but revocation
//! and expiry are checked on every request.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bglass_core::api::GRANT_HEADER;
use bglass_core::audit::event::{EventKind, stored_path};
use bglass_core::catalog::ServiceKind;
use bglass_core::grant::{GrantVerifyError, VerifiedGrant};
use bglass_core::id::{ResponderId, ServiceName};
use bglass_core::vault::CredentialError;
use bglass_core::{ExposeSecret, timestamp};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use super::hygiene::{clean_request, clean_response};
use super::{Body, BoxError, Denied, Peer, Proxy, lock, refusal_response};
use bglass_core::policy::Refusal;

/// Most grants cached per connection.
const CACHE_LIMIT: usize = 64;

/// Verified grants of one connection, by token.
#[derive(Debug, Default)]
pub struct ConnCache {
    grants: Mutex<HashMap<String, VerifiedGrant>>,
    /// Grants with a response streaming on this connection, and how many.
    streaming: Mutex<HashMap<bglass_core::id::GrantId, usize>>,
}

impl ConnCache {
    /// Resolves when a grant with a response streaming on this connection ends: the
    /// connection is then closed, even if the client has stopped reading.
    pub async fn grant_ended(&self, proxy: &Proxy) {
        let mut changes = proxy.grant_changes.subscribe();
        loop {
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
            let streaming: Vec<bglass_core::id::GrantId> =
                lock(&self.streaming).keys().cloned().collect();
            let now = timestamp::now_ms();
            let ended = {
                let state = lock(&proxy.state);
                streaming
                    .iter()
                    .any(|g| !state.grants.get(g).is_some_and(|r| r.active(now)))
            };
            if ended {
                return;
            }
        }
    }
}

fn grant_code(e: &GrantVerifyError) -> &'static str {
    match e {
        GrantVerifyError::WrongSigner { .. } => "wrong_signer",
        GrantVerifyError::BadSignature => "bad_grant_signature",
        GrantVerifyError::WrongIssuer { .. } => "wrong_issuer",
        GrantVerifyError::NotYetValid { .. } => "grant_not_yet_valid",
        GrantVerifyError::Expired { .. } => "expired_grant",
        GrantVerifyError::WrongService { .. } => "wrong_service",
        GrantVerifyError::WrongBoundKey => "wrong_bound_key",
        _ => "malformed_grant",
    }
}

/// Answers one data-plane request.
pub async fn handle(
    proxy: &Arc<Proxy>,
    peer: &Peer,
    conn: &Arc<ConnCache>,
    req: Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    match forward(proxy, peer, conn, req, rest).await {
        Ok(response) => response,
        Err(refusal) => refusal_response(&refusal),
    }
}

/// A request that may use a service: who, which service, and the checked grant.
pub struct Authorized {
    /// The caller.
    pub caller: bglass_core::roster::Responder,
    /// The service.
    pub service: bglass_core::catalog::Service,
    /// The grant, verified for this service and this connection's key, not revoked.
    pub verified: VerifiedGrant,
    /// Watches the grant from before it was found live: whatever ends it after the check
    /// (revocation, expiry, its holder leaving the roster) is seen.
    pub watch: GrantWatch,
}

/// Resolves when a grant ends. Made before the grant's liveness is checked, so that an end
/// landing between the check and the use is never missed.
pub struct GrantWatch {
    proxy: Arc<Proxy>,
    grant: bglass_core::id::GrantId,
    exp: u64,
    changes: tokio::sync::watch::Receiver<u64>,
}

impl GrantWatch {
    /// A watch on `grant` (valid until `exp`, Unix seconds) starting now.
    pub fn new(proxy: &Arc<Proxy>, grant: bglass_core::id::GrantId, exp: u64) -> Self {
        Self {
            proxy: Arc::clone(proxy),
            grant,
            exp,
            changes: proxy.grant_changes.subscribe(),
        }
    }

    /// Resolves when the grant is revoked or expires (within a second of the revocation
    /// being recorded).
    pub async fn ended(mut self) {
        let left = self
            .exp
            .saturating_mul(1000)
            .saturating_sub(timestamp::now_ms());
        let deadline = tokio::time::sleep(std::time::Duration::from_millis(left));
        tokio::pin!(deadline);
        loop {
            let live = lock(&self.proxy.state)
                .grants
                .get(&self.grant)
                .is_some_and(|g| g.active(timestamp::now_ms()));
            if !live {
                return;
            }
            tokio::select! {
                () = &mut deadline => return,
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }
}

/// Checks everything but the request itself: the log works, the caller is in the roster,
/// the service exists and is of a kind in `want`, and the presented grant verifies (cached
/// per connection) and is neither revoked nor expired. Every refusal is recorded.
pub async fn authorize(
    proxy: &Arc<Proxy>,
    peer: &Peer,
    conn: &Arc<ConnCache>,
    headers: &HeaderMap,
    service_part: &str,
    want: &[&str],
) -> Result<Authorized, Refusal> {
    if let Some(why) = proxy.log.failure() {
        return Err(proxy.audit_failed(&why));
    }
    let caller = match proxy.responder_of(peer) {
        Ok(c) => c,
        Err(r) => {
            if peer.key.is_some() {
                return Err(proxy.refuse(None, &r, Denied::default()).await);
            }
            return Err(r);
        }
    };
    let actor = Some(caller.id.clone());
    let service_name = match ServiceName::new(service_part) {
        Ok(s) => s,
        Err(e) => {
            let r = Refusal::new("unknown_service", 404, e.to_string());
            return Err(proxy.refuse(actor, &r, Denied::default()).await);
        }
    };
    let catalog = proxy.catalog.current();
    let Some(service) = catalog.get(&service_name).cloned() else {
        let r = Refusal::new(
            "unknown_service",
            404,
            format!("no service {service_name} in this proxy's catalog"),
        );
        return Err(proxy
            .refuse(
                actor,
                &r,
                Denied {
                    service: Some(service_name),
                    ..Denied::default()
                },
            )
            .await);
    };
    let denied = |grant| Denied {
        service: Some(service_name.clone()),
        grant,
        ..Denied::default()
    };
    if !want.contains(&service.kind_name()) {
        let hint = if service.kind_name() == "http" {
            format!("use `bglass curl` or `bglass open` for {service_name}")
        } else {
            format!("use `bglass ssh`, `bglass tunnel` or `bglass forward` for {service_name}")
        };
        let r = Refusal::new(
            "wrong_kind",
            400,
            format!("{service_name} is a {} service", service.kind_name()),
        )
        .hint(hint);
        return Err(proxy.refuse(actor, &r, denied(None)).await);
    }

    // The grant: verified once per connection, revocation and expiry checked every time.
    let Some(token) = headers
        .get(GRANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        let r = Refusal::new(
            "no_grant",
            401,
            format!("no grant presented for {service_name}"),
        )
        .hint(format!("run `bglass access {service_name}` first"));
        return Err(proxy.refuse(actor, &r, denied(None)).await);
    };
    let now_ms = timestamp::now_ms();
    let key = peer.key.unwrap_or(caller.key);
    let cached = lock(&conn.grants).get(&token).cloned();
    let verified = match cached {
        Some(v) if v.is_live(now_ms / 1000) && v.claims().svc == service_name => v,
        _ => match proxy
            .verifier
            .verify(&token, now_ms / 1000, &service_name, &key)
        {
            Ok(v) => {
                let mut cache = lock(&conn.grants);
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(token.clone(), v.clone());
                v
            }
            Err(e) => {
                let r = Refusal::new(grant_code(&e), 403, e.to_string());
                let r = match e {
                    GrantVerifyError::Expired { ago_secs } => {
                        let now_s = now_ms / 1000;
                        bglass_core::policy::expired_refusal(
                            "the grant",
                            now_s.saturating_sub(ago_secs),
                            now_s,
                            service_name.as_str(),
                        )
                    }
                    GrantVerifyError::WrongBoundKey => {
                        r.hint("a grant only works for the responder it was issued to")
                    }
                    _ => r,
                };
                return Err(proxy.refuse(actor, &r, denied(None)).await);
            }
        },
    };
    let grant_id = verified.claims().id.clone();
    let watch = GrantWatch::new(proxy, grant_id.clone(), verified.claims().exp);
    {
        let live = lock(&proxy.state)
            .grants
            .get(&grant_id)
            .map(|g| g.ended(now_ms));
        let refusal = match live {
            None => Some(Refusal::new(
                "unknown_grant",
                403,
                format!("{grant_id} is not a grant of this proxy's log"),
            )),
            Some(ended) => ended,
        };
        if let Some(r) = refusal {
            lock(&conn.grants).remove(&token);
            return Err(proxy.refuse(actor, &r, denied(Some(grant_id))).await);
        }
    }

    Ok(Authorized {
        caller,
        service,
        verified,
        watch,
    })
}

async fn forward(
    proxy: &Arc<Proxy>,
    peer: &Peer,
    conn: &Arc<ConnCache>,
    req: Request<Incoming>,
    rest: &str,
) -> Result<Response<Body>, Refusal> {
    let started = Instant::now();
    let (service_part, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Authorized {
        caller,
        service,
        verified,
        watch,
    } = authorize(proxy, peer, conn, req.headers(), service_part, &["http"]).await?;
    let actor = Some(caller.id.clone());
    let service_name = service.name.clone();
    let grant_id = verified.claims().id.clone();
    let denied = |grant| Denied {
        service: Some(service_name.clone()),
        grant,
        ..Denied::default()
    };
    // TRACE echoes the request (the injected credential included) back to the client, and
    // CONNECT would turn the tool into a relay.
    if matches!(req.method(), &http::Method::TRACE | &http::Method::CONNECT) {
        let r = Refusal::new(
            "method_not_allowed",
            405,
            format!("{} is never forwarded to a tool", req.method()),
        );
        return Err(proxy.refuse(actor, &r, denied(Some(grant_id))).await);
    }
    // A canary grant serves the service's health check and nothing else.
    if verified.claims().canary {
        let probe = match &service.kind {
            ServiceKind::Http { health, .. } => health.path.as_str(),
            _ => "",
        };
        let asked = req.uri().path_and_query().map_or("", |p| p.as_str());
        let asked = asked
            .strip_prefix(&format!("/s/{service_part}"))
            .unwrap_or(asked);
        if req.method() != http::Method::GET || asked != probe {
            let r = Refusal::new(
                "canary_probe_only",
                403,
                format!(
                    "a canary grant serves only GET {probe} on {service_name} (its health check), not {} {asked}",
                    req.method()
                ),
            );
            return Err(proxy.refuse(actor, &r, denied(Some(grant_id))).await);
        }
    }
    let inject = match &service.kind {
        ServiceKind::Http { inject, .. } => inject.clone(),
        _ => None,
    };

    // The upstream request: the client's credentials and identity claims out, the injected
    // credential and the grant's cookies in.
    let (mut parts, body) = req.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("/{tail}?{q}"),
        None => format!("/{tail}"),
    };
    // Scheme, address and Host come from the catalog (`upstream::Upstreams::send`).
    let uri = path_and_query;
    let mut headers = std::mem::take(&mut parts.headers);
    clean_request(&mut headers, peer.addr);
    // Values the tool must never echo back to the responder.
    let mut secrets: Vec<zeroize::Zeroizing<String>> = Vec::new();
    if let Some(inject) = &inject {
        headers.remove(inject.header.as_str());
        let vault = proxy
            .vault
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let secret = match vault.credential(&inject.secret, &service_name, &service.upstream) {
            Ok(secret) => secret,
            Err(CredentialError::Missing(_)) => {
                let r = Refusal::new(
                    "missing_secret",
                    502,
                    format!("the proxy has no credential for {service_name}"),
                )
                .hint("the operator must run `bglass-proxy secrets set` for it");
                return Err(proxy.refuse(actor, &r, denied(Some(grant_id))).await);
            }
            Err(e) => {
                let r = Refusal::new("credential_not_bound", 502, e.to_string()).hint(format!(
                    "the operator must bind it: bglass-proxy secrets bind {} --for {service_name}",
                    inject.secret
                ));
                return Err(proxy.refuse(actor, &r, denied(Some(grant_id))).await);
            }
        };
        let rendered = zeroize::Zeroizing::new(inject.render(secret.expose_secret()));
        let value = HeaderValue::from_str(&rendered).map_err(|_| {
            Refusal::new(
                "bad_secret",
                502,
                "the stored credential is not a valid header value",
            )
        })?;
        let name = HeaderName::from_bytes(inject.header.as_bytes())
            .map_err(|_| Refusal::new("bad_secret", 502, "the injection header name is invalid"))?;
        headers.insert(name, value);
        secrets.push(zeroize::Zeroizing::new(secret.expose_secret().to_owned()));
        secrets.push(rendered);
    }
    if let Some(cookies) = lock(&proxy.jars)
        .get_mut(&grant_id)
        .and_then(|jar| jar.header(timestamp::now_ms() / 1000))
    {
        headers.insert(http::header::COOKIE, cookies);
    }
    let bytes_in = Arc::new(AtomicU64::new(0));
    let limit = proxy.config.limits.max_body_bytes;
    let counted = Counted {
        inner: body,
        bytes: Arc::clone(&bytes_in),
        limit,
    };
    let mut upstream_req = Request::builder()
        .method(parts.method.clone())
        .uri(&uri)
        .body(counted.boxed())
        .map_err(|e| Refusal::new("bad_request", 400, e.to_string()))?;
    *upstream_req.headers_mut() = headers;

    // Record before serve: nothing reaches the tool that the log does not hold.
    let path = stored_path(&format!("/{tail}"));
    let method: String = parts.method.as_str().chars().take(32).collect();
    let start = proxy
        .record(
            actor.clone(),
            EventKind::UseStart {
                grant: grant_id.clone(),
                service: service_name.clone(),
                method: method.clone(),
                path: path.clone(),
            },
        )
        .await?;
    let record = UseRecord {
        conn: Arc::clone(conn),
        proxy: Arc::clone(proxy),
        actor: caller.id.clone(),
        grant: grant_id.clone(),
        service: service_name.clone(),
        method,
        path,
        start: start.index,
        bytes_in,
        started,
        done: false,
    };
    *lock(&conn.streaming).entry(grant_id.clone()).or_insert(0) += 1;
    let timeout = proxy.config.limits.upstream_timeout.to_std();
    let mut ended: Pin<Box<dyn Future<Output = ()> + Send + Sync>> = Box::pin(watch.ended());
    let sent = proxy.upstream.send(&service.upstream, upstream_req);
    let answer = tokio::select! {
        answer = tokio::time::timeout(timeout, sent) => answer,
        () = &mut ended => {
            record.finish(499, 0);
            return Err(Refusal::new(
                "grant_ended",
                403,
                format!("{grant_id} ended (revoked or expired) while {service_name} was answering"),
            ));
        }
    };
    let response = match answer {
        Ok(Ok(r)) => r,
        // The upstream did not prove who it is: nothing was sent; refused and audited.
        Ok(Err(e)) if e.is_tls() => {
            record.finish(502, 0);
            let r = e.refusal(&service_name, &service.upstream);
            return Err(proxy.refuse(actor, &r, denied(Some(grant_id))).await);
        }
        Ok(Err(e)) => {
            let r = Refusal::new(
                "upstream_unreachable",
                502,
                format!(
                    "{service_name} at {} did not answer: {e}",
                    service.upstream.addr
                ),
            )
            .hint("the tool itself may be down; `bglass status` shows the proxy's health checks");
            record.finish(502, 0);
            return Err(r);
        }
        Err(_) => {
            let r = Refusal::new(
                "upstream_timeout",
                504,
                format!(
                    "{service_name} did not answer within {}",
                    proxy.config.limits.upstream_timeout
                ),
            );
            record.finish(504, 0);
            return Err(r);
        }
    };
    let (mut parts, body) = response.into_parts();
    let shown: Vec<&str> = secrets.iter().map(|s| s.as_str()).collect();
    let cookies = clean_response(&mut parts.headers, &shown);
    if !cookies.is_empty() {
        let now_s = timestamp::now_ms() / 1000;
        let mut jars = lock(&proxy.jars);
        let jar = jars.entry(grant_id.clone()).or_default();
        for c in &cookies {
            jar.store(c, now_s);
        }
    }
    let status = parts.status.as_u16();
    let audited = Audited {
        inner: body,
        bytes: 0,
        status,
        record: Some(record),
        cut: ended,
    };
    Ok(Response::from_parts(parts, audited.boxed()))
}

/// A response cut because its grant ended.
#[derive(Debug, thiserror::Error)]
#[error("the grant ended (revoked or expired); the response was cut")]
struct GrantEnded;

/// What a finished use records.
struct UseRecord {
    conn: Arc<ConnCache>,
    proxy: Arc<Proxy>,
    actor: ResponderId,
    grant: bglass_core::id::GrantId,
    service: ServiceName,
    method: String,
    path: String,
    start: u64,
    bytes_in: Arc<AtomicU64>,
    started: Instant,
    /// Whether the outcome was recorded.
    done: bool,
}

impl Drop for UseRecord {
    /// A request whose handling was dropped midway (the client went away, or its connection
    /// was closed when the grant ended) still gets its outcome recorded.
    fn drop(&mut self) {
        if !self.done {
            self.record(499, 0);
        }
    }
}

impl UseRecord {
    fn finish(mut self, status: u16, bytes_out: u64) {
        self.record(status, bytes_out);
    }

    fn record(&mut self, status: u16, bytes_out: u64) {
        self.done = true;
        {
            let mut streaming = lock(&self.conn.streaming);
            if let Some(n) = streaming.get_mut(&self.grant) {
                *n -= 1;
                if *n == 0 {
                    streaming.remove(&self.grant);
                }
            }
        }
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        self.proxy.metrics.bytes(bytes_in, bytes_out);
        let kind = EventKind::Use {
            grant: self.grant.clone(),
            service: self.service.clone(),
            method: std::mem::take(&mut self.method),
            path: std::mem::take(&mut self.path),
            status,
            bytes_in,
            bytes_out,
            duration_ms: timestamp::millis(self.started.elapsed()),
            start: Some(self.start),
        };
        // The outcome, after the response: the request itself is already in the log (its
        // `use_start`); a failed append here fails the log, and later requests are refused.
        self.proxy.record_detached(Some(self.actor.clone()), kind);
    }
}

/// The client's request body, counted and limited.
struct Counted {
    inner: Incoming,
    bytes: Arc<AtomicU64>,
    limit: u64,
}

/// A request body over the limit.
#[derive(Debug, thiserror::Error)]
#[error("request body over the limit of {0} bytes")]
struct TooLarge(u64);

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let total = self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    if total > self.limit {
                        return Poll::Ready(Some(Err(Box::new(TooLarge(self.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's response body, counted; the use is recorded when it ends or is dropped.
struct Audited {
    inner: Incoming,
    bytes: u64,
    status: u16,
    record: Option<UseRecord>,
    cut: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
}

impl HttpBody for Audited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.cut.as_mut().poll(cx).is_ready() {
            let (status, bytes) = (self.status, self.bytes);
            if let Some(record) = self.record.take() {
                record.finish(status, bytes);
            }
            return Poll::Ready(Some(Err(Box::new(GrantEnded))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => {
                let (status, bytes) = (self.status, self.bytes);
                if let Some(record) = self.record.take() {
                    record.finish(status, bytes);
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.finish(self.status, self.bytes);
        }
    }
}
