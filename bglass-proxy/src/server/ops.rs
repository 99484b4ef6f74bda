//! The proxy's background tasks: starting them all, and the ones that keep the policy's
//! state current (expiries of grants, of requests and of a live drill; handshake refusals
//! recorded) and the metrics listener. Probes, reloads and notifications have their own
//! modules.

use std::sync::Arc;
use std::time::Duration;

use bglass_core::audit::event::{Event, EventKind};
use bglass_core::policy::{REQUEST_EXPIRED, Refusal};
use bglass_core::timestamp;
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{Body, Denied, Proxy, full, lock};

/// Starts every background task.
pub fn spawn_all(
    proxy: &Arc<Proxy>,
    notify_rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>,
    refusals_rx: tokio::sync::mpsc::Receiver<super::admission::Immediate>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(handshake_refusals(Arc::clone(proxy), refusals_rx)),
        tokio::spawn(expiries(Arc::clone(proxy))),
        tokio::spawn(super::probe::health(Arc::clone(proxy))),
        tokio::spawn(super::storage::watch(Arc::clone(proxy))),
    ];
    if let Some(addr) = proxy.config.metrics_listen {
        tasks.push(tokio::spawn(metrics(Arc::clone(proxy), addr)));
    }
    tasks.push(tokio::spawn(super::reload::reload(Arc::clone(proxy))));
    tasks.push(tokio::spawn(super::witness::submitter(Arc::clone(proxy))));
    tasks.push(tokio::spawn(super::notify::notifier(
        Arc::clone(proxy),
        notify_rx,
    )));
    tasks
}

/// Records refused handshakes: each source's first of a minute at once, the rest in one
/// summary entry a minute (see `admission`).
async fn handshake_refusals(
    proxy: Arc<Proxy>,
    mut rx: tokio::sync::mpsc::Receiver<super::admission::Immediate>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            received = rx.recv() => {
                let Some(refused) = received else { return };
                let detail = match refused.key {
                    Some(k) => format!(
                        "TLS handshake from {} refused: {} (key {k}, id {})",
                        refused.source,
                        refused.why,
                        k.key_id()
                    ),
                    None => format!("TLS handshake from {} refused: {}", refused.source, refused.why),
                };
                let refusal = Refusal::new("unknown_key", 401, detail);
                let _ = proxy.refuse(None, &refusal, Denied::default()).await;
            }
            _ = tick.tick() => {
                if let Some(summary) = proxy.admission.due_summary() {
                    let refusal = Refusal::new("unknown_key_summary", 401, summary);
                    let _ = proxy.refuse(None, &refusal, Denied::default()).await;
                }
            }
        }
    }
}

/// Records the expiry of grants as their windows end, and of requests that waited longer
/// than `limits.request_ttl` for their approvals.
async fn expiries(proxy: Arc<Proxy>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let request_ttl_ms = proxy
        .config
        .limits
        .request_ttl
        .as_secs()
        .saturating_mul(1000);
    loop {
        tick.tick().await;
        let stale = lock(&proxy.state).due_request_expiries(timestamp::now_ms(), request_ttl_ms);
        for request in stale {
            let (holder, service) = {
                let state = lock(&proxy.state);
                let r = state.requests.get(&request);
                (
                    r.map(|r| r.responder.clone()),
                    r.map(|r| r.access.service.clone()),
                )
            };
            let kind = EventKind::Denial {
                reason: REQUEST_EXPIRED.to_owned(),
                detail: format!(
                    "no decision within {}; the request expired",
                    proxy.config.limits.request_ttl
                ),
                request: Some(request),
                service,
                grant: None,
                envelope: None,
            };
            let _ = proxy.record(holder, kind).await;
        }
        if lock(&proxy.state).drill_over(timestamp::now_ms()) {
            let _ = proxy.record(None, EventKind::DrillStop {}).await;
        }
        let due = lock(&proxy.state).due_expiries(timestamp::now_ms());
        for grant in due {
            let holder = lock(&proxy.state)
                .grants
                .get(&grant)
                .map(|g| g.claims.sub.clone());
            let _ = proxy.record(holder, EventKind::Expiry { grant }).await;
        }
    }
}

/// Serves `GET /metrics` (Prometheus text format) on the metrics listener.
async fn metrics(proxy: Arc<Proxy>, addr: std::net::SocketAddr) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bglass-proxy: metrics listener {addr}: {e}");
            return;
        }
    };
    // With port 0 the system chose the port: say which.
    let (id, bound) = (&proxy.config.id, listener.local_addr().unwrap_or(addr));
    eprintln!("bglass-proxy {id}: metrics listening on {bound}");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let proxy = Arc::clone(&proxy);
                async move {
                    let response: Response<Body> = if req.uri().path() == "/metrics" {
                        let health: Vec<(String, Option<bool>)> = lock(&proxy.health)
                            .iter()
                            .map(|(k, (up, _))| (k.clone(), *up))
                            .collect();
                        let mut text = proxy.metrics.render(
                            &health,
                            proxy.log.size(),
                            proxy.log.failure().is_some(),
                        );
                        text.push_str(&proxy.metrics.render_admission(&proxy.admission));
                        let canary = lock(&proxy.state).canary.clone();
                        text.push_str(&crate::metrics::Metrics::render_canary(
                            &canary,
                            timestamp::now_ms(),
                        ));
                        text.push_str(&super::storage::render_metrics(&proxy));
                        let mut r = Response::new(full(text));
                        if let Ok(v) = http::HeaderValue::from_str("text/plain; version=0.0.4") {
                            r.headers_mut().insert(http::header::CONTENT_TYPE, v);
                        }
                        r
                    } else {
                        let mut r = Response::new(full("not found\n"));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    };
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
