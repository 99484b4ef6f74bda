//! The proxy's background tasks: handshake refusals to the log, grant expiry, health probes,
//! the metrics listener, catalog/roster reload (fail stale), and webhook notifications.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bglass_core::audit::event::{Event, EventKind};
use bglass_core::catalog::{Catalog, ServiceKind, TcpProbe};
use bglass_core::failstale::Offer;
use bglass_core::roster::Roster;
use bglass_core::timestamp;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Body, Denied, Proxy, full, lock};
use crate::config::{NotifyFormat, NotifyTarget};
use bglass_core::policy::Refusal;

/// Starts every background task.
pub fn spawn_all(
    proxy: &Arc<Proxy>,
    notify_rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>,
    refusals_rx: tokio::sync::mpsc::Receiver<super::admission::Immediate>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(handshake_refusals(Arc::clone(proxy), refusals_rx)),
        tokio::spawn(expiries(Arc::clone(proxy))),
        tokio::spawn(health(Arc::clone(proxy))),
        tokio::spawn(super::storage::watch(Arc::clone(proxy))),
    ];
    if let Some(addr) = proxy.config.metrics_listen {
        tasks.push(tokio::spawn(metrics(Arc::clone(proxy), addr)));
    }
    tasks.push(tokio::spawn(reload(Arc::clone(proxy))));
    tasks.push(tokio::spawn(notifier(Arc::clone(proxy), notify_rx)));
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
                reason: bglass_core::policy::REQUEST_EXPIRED.to_owned(),
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

/// Probes every service every 10 seconds. Informational only: never gates access.
async fn health(proxy: Arc<Proxy>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let catalog = proxy.catalog.current();
        let mut results = Vec::new();
        for service in catalog.services() {
            let result = tokio::time::timeout(Duration::from_secs(3), probe(&proxy, service)).await;
            let (up, detail) = match result {
                Ok(Ok(())) => (Some(true), None),
                Ok(Err(why)) => (Some(false), Some(why)),
                Err(_) => (Some(false), Some("no answer within 3s".to_owned())),
            };
            results.push((service.name.to_string(), (up, detail)));
        }
        let mut health = lock(&proxy.health);
        health.clear();
        health.extend(results);
    }
}

async fn probe(proxy: &Proxy, service: &bglass_core::catalog::Service) -> Result<(), String> {
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
                    .map_err(|e| format!("not probed with its credential: {e}"))?;
                use bglass_core::ExposeSecret;
                request = request.header(
                    inject.header.as_str(),
                    inject.render(secret.expose_secret()),
                );
            }
            let request = request
                .body(full(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let response = proxy
                .upstream
                .send(&service.upstream, request)
                .await
                .map_err(|e| format!("no answer: {e}"))?;
            if response.status().as_u16() == health.expect_status {
                Ok(())
            } else {
                Err(format!(
                    "status {} (expected {})",
                    response.status().as_u16(),
                    health.expect_status
                ))
            }
        }
        ServiceKind::Ssh { .. } => banner(addr, Some(b"SSH-")).await,
        ServiceKind::Tcp { probe } => match probe {
            TcpProbe::Connect => tokio::net::TcpStream::connect(addr)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            TcpProbe::Banner => banner(addr, None).await,
            TcpProbe::Postgres => {
                // SSLRequest: length 8, code 80877103; a server answers 'S' or 'N'.
                let mut s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
                    .await
                    .map_err(|e| e.to_string())?;
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
                if b[0] == b'S' || b[0] == b'N' {
                    Ok(())
                } else {
                    Err("not a PostgreSQL server".to_owned())
                }
            }
            TcpProbe::Redis => {
                let mut s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                s.write_all(b"PING\r\n").await.map_err(|e| e.to_string())?;
                let mut b = [0u8; 64];
                let n = s.read(&mut b).await.map_err(|e| e.to_string())?;
                let answer = &b[..n];
                if answer.starts_with(b"+PONG") || answer.starts_with(b"-NOAUTH") {
                    Ok(())
                } else {
                    Err("not a Redis server".to_owned())
                }
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

async fn banner(addr: std::net::SocketAddr, expect: Option<&[u8]>) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut b = [0u8; 64];
    let n = s.read(&mut b).await.map_err(|e| e.to_string())?;
    match expect {
        _ if n == 0 => Err("closed without a banner".to_owned()),
        Some(prefix) if !b[..n].starts_with(prefix) => Err("unexpected banner".to_owned()),
        _ => Ok(()),
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

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the catalog and roster on SIGHUP or when their files change; a rejected version
/// leaves the last good one in force (fail stale). Every attempt is audited; a rejection is
/// notified. A roster change ends the grants of responders it removed.
async fn reload(proxy: Arc<Proxy>) {
    // Responders removed while the proxy was down lose their grants now.
    end_grants_of_departed(&proxy).await;
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    let files: [(&str, PathBuf); 2] = [
        ("catalog", proxy.config.services.clone()),
        ("roster", proxy.config.roster.clone()),
    ];
    let mut seen: Vec<Option<SystemTime>> = files.iter().map(|(_, p)| mtime(p)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let forced = tokio::select! {
            _ = hup.recv() => true,
            _ = tick.tick() => false,
        };
        if forced {
            // The vault (upstream credentials) is read again on SIGHUP only.
            let reloaded =
                bglass_core::vault::VaultIdentity::open_file(&proxy.config.vault_identity)
                    .and_then(|id| bglass_core::vault::Vault::open(&proxy.config.vault, &id));
            match reloaded {
                Ok(v) => {
                    *proxy
                        .vault
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(v)
                }
                Err(e) => {
                    eprintln!("bglass-proxy: vault reload REJECTED, keeping the last good one: {e}")
                }
            }
        }
        for (i, (name, path)) in files.iter().enumerate() {
            let now = mtime(path);
            if !forced && now == seen[i] {
                continue;
            }
            seen[i] = now;
            let (accepted, digest, error) = match *name {
                "catalog" => match proxy
                    .catalog
                    .offer(bound_catalog(&proxy, path), timestamp::now_ms() / 1000)
                {
                    Offer::Accepted(c) => (true, Some(c.digest().to_owned()), None),
                    Offer::Rejected { error, .. } => (false, None, Some(error)),
                },
                _ => match proxy
                    .roster
                    .offer(Roster::load(path), timestamp::now_ms() / 1000)
                {
                    Offer::Accepted(_) => (true, Some(super::roster_digest(path)), None),
                    Offer::Rejected { error, .. } => (false, None, Some(error.to_string())),
                },
            };
            if let Some(e) = &error {
                proxy.metrics.config_rejected(name);
                eprintln!(
                    "bglass-proxy: {name} reload REJECTED, keeping the last good version: {e}"
                );
            }
            let _ = proxy
                .record(
                    None,
                    EventKind::ConfigReload {
                        file: (*name).to_owned(),
                        accepted,
                        digest,
                        error,
                    },
                )
                .await;
            if *name == "roster" && accepted {
                end_grants_of_departed(&proxy).await;
            }
        }
    }
}

/// Loads a catalog and refuses it when any of its services would send a credential where
/// the vault does not bind it (a new address, a new pin, another service, or one of the
/// proxy's own keys): a catalog push alone must never move a credential.
fn bound_catalog(proxy: &Proxy, path: &Path) -> Result<Catalog, String> {
    let catalog = Catalog::load(path).map_err(|e| e.to_string())?;
    let vault = proxy
        .vault
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let moved: Vec<String> = vault
        .unbound(&catalog)
        .into_iter()
        .filter(|(_, e)| !matches!(e, bglass_core::vault::CredentialError::Missing(_)))
        .map(|(service, e)| format!("{service}: {e}"))
        .collect();
    if moved.is_empty() {
        Ok(catalog)
    } else {
        Err(format!(
            "{}: would send credentials where they are not bound ({}); if the move is intended, bind them first: bglass-proxy secrets bind NAME --for SERVICE",
            path.display(),
            moved.join("; ")
        ))
    }
}

/// Ends every live grant whose holder left the roster (or whose key changed in it): their
/// open streams and tunnels are cut, and the revocations are recorded.
pub async fn end_grants_of_departed(proxy: &Arc<Proxy>) {
    let roster = proxy.roster.current();
    let departed = lock(&proxy.state).grants_of_departed(&roster, timestamp::now_ms());
    for (grant, holder) in departed {
        let kind = EventKind::Revoke {
            grant,
            reason: format!("{holder} is no longer in the roster with this key"),
            envelope: None,
        };
        let _ = proxy.record(None, kind).await;
    }
}

/// Whether and how an event is notified.
fn summary(event: &Event, catalog: &Catalog, data_dir: &Path) -> Option<String> {
    let who = event
        .actor
        .as_ref()
        .map_or_else(|| "the proxy".to_owned(), ToString::to_string);
    match &event.event {
        EventKind::Grant {
            responder,
            service,
            emergency: true,
            grant,
            ..
        } => Some(format!(
            "EMERGENCY BYPASS: {responder} broke glass on {service} without approval ({grant}); an approver must review it"
        )),
        EventKind::Grant {
            responder,
            service,
            grant,
            ..
        } => Some(format!(
            "Glass broken: {responder} was granted {service} ({grant})"
        )),
        EventKind::Request {
            request,
            service,
            emergency: false,
            reason,
            incident,
            ..
        } if catalog.get(service).is_some_and(|s| s.approvals > 0) => Some(format!(
            "Approval needed: {who} asks for {service} for {incident} ({reason}); run `bglass approve {request}`"
        )),
        EventKind::ConfigReload {
            file,
            accepted: false,
            error,
            ..
        } => Some(format!(
            "CONFIG PUSH REJECTED on {}: the new {file} was refused and the last good version stays in force: {}",
            event.proxy,
            error.as_deref().unwrap_or("no reason given")
        )),
        kind => super::storage::summary(&event.proxy, data_dir, event.time_ms, kind),
    }
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Cursor {
    /// Next index to deliver, per target URL.
    next: BTreeMap<String, u64>,
}

fn cursor_path(proxy: &Proxy) -> PathBuf {
    proxy.config.data_dir.join("notify-cursor.json")
}

fn save_cursor(path: &Path, cursor: &Cursor) {
    let tmp = path.with_extension("tmp");
    if let Ok(text) = serde_json::to_vec(cursor)
        && std::fs::write(&tmp, text).is_ok()
    {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Entries read from the log's files per step of the notifier's catch-up.
const NOTIFY_BATCH: usize = 256;

/// Delivers notifications from the log, in order, to every target. Fail open: delivery
/// never blocks access; a target that is down is retried with backoff (up to a minute), and
/// the cursor file makes delivery survive restarts (at least once).
///
/// The notifier reads the log itself, lazily, from the oldest target's cursor: entries
/// written before this start, and any it fell behind on, are read from the log's files a
/// bundle at a time (bounded memory however long the log); once caught up, appended events
/// arrive on `rx`. With no target it stops at once and nothing is read or queued.
async fn notifier(proxy: Arc<Proxy>, mut rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>) {
    let targets = proxy.config.notify.clone();
    if targets.is_empty() {
        return;
    }
    let path = cursor_path(&proxy);
    let mut cursor: Cursor = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut next = targets
        .iter()
        .map(|t| cursor.next.get(&t.url).copied().unwrap_or(0))
        .min()
        .unwrap_or(0);
    let mut reader = proxy.log.entries_from(next);
    let mut saved = (cursor_text(&cursor), std::time::Instant::now());
    loop {
        let size = proxy.log.size();
        if next < size {
            // Behind: read from the files. Events sent meanwhile are in the files too.
            while rx.try_recv().is_ok() {}
            if reader.position() != next {
                reader = proxy.log.entries_from(next);
            }
            reader.extend_to(size);
            let read = tokio::task::spawn_blocking(move || {
                let batch: Vec<_> = reader.by_ref().take(NOTIFY_BATCH).collect();
                (reader, batch)
            })
            .await;
            let Ok((back, batch)) = read else {
                return;
            };
            reader = back;
            for item in batch {
                match item {
                    Ok((index, bytes)) => {
                        notify_entry(&proxy, &targets, &mut cursor, &path, &mut rx, index, &bytes)
                            .await;
                        next = index + 1;
                    }
                    Err(e) => {
                        eprintln!("bglass-proxy: notifier cannot read the audit log: {e}");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        reader = proxy.log.entries_from(next);
                        break;
                    }
                }
            }
            continue;
        }
        // Caught up: keep the cursor, then wait for the next event (or look again now and
        // then, for entries appended without one).
        save_if_changed(&path, &cursor, &mut saved);
        let received = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        match received {
            Ok(Some((index, event))) if index == next => {
                if let Some(text) =
                    summary(&event, &proxy.catalog.current(), &proxy.config.data_dir)
                {
                    deliver_all(
                        &proxy,
                        &targets,
                        &mut cursor,
                        &path,
                        &mut rx,
                        index,
                        &event,
                        &text,
                    )
                    .await;
                }
                advance(&mut cursor, &targets, index);
                next = index + 1;
            }
            // Already delivered (events can arrive out of order), or ahead: the files.
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => return,
        }
    }
}

/// Notifies one entry read from the log's files. Entries of kinds that are never notified
/// are recognised without being parsed.
async fn notify_entry(
    proxy: &Proxy,
    targets: &[NotifyTarget],
    cursor: &mut Cursor,
    path: &Path,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>,
    index: u64,
    bytes: &[u8],
) {
    let notified = bglass_core::audit::event::peek_kind(bytes)
        .is_none_or(|kind| NOTIFIED_KINDS.contains(&kind));
    if notified {
        match Event::from_bytes(bytes) {
            Ok(event) => {
                if let Some(text) =
                    summary(&event, &proxy.catalog.current(), &proxy.config.data_dir)
                {
                    deliver_all(proxy, targets, cursor, path, rx, index, &event, &text).await;
                }
            }
            Err(e) => eprintln!("bglass-proxy: notifier skips audit entry {index}: {e}"),
        }
    }
    advance(cursor, targets, index);
}

/// The event kinds [`summary`] may notify.
const NOTIFIED_KINDS: &[&str] = &[
    "grant",
    "request",
    "config_reload",
    "log_failed",
    "log_recovered",
    "storage_low",
    "storage_ok",
];

/// Delivers one notification to every target whose cursor has not passed it, retrying a
/// target that is down with backoff.
#[allow(clippy::too_many_arguments)]
async fn deliver_all(
    proxy: &Proxy,
    targets: &[NotifyTarget],
    cursor: &mut Cursor,
    path: &Path,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>,
    index: u64,
    event: &Event,
    text: &str,
) {
    for target in targets {
        if cursor.next.get(&target.url).copied().unwrap_or(0) > index {
            continue;
        }
        let mut backoff = Duration::from_millis(500);
        loop {
            match deliver(target, index, event, text).await {
                Ok(()) => {
                    proxy.metrics.notify(true);
                    break;
                }
                Err(_) => {
                    proxy.metrics.notify(false);
                    // What is appended meanwhile is read from the files afterwards: do not
                    // hold it in memory while the target is down.
                    while rx.try_recv().is_ok() {}
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
        cursor.next.insert(target.url.clone(), index + 1);
        save_cursor(path, cursor);
    }
}

fn cursor_text(cursor: &Cursor) -> Vec<u8> {
    serde_json::to_vec(cursor).unwrap_or_default()
}

/// Saves the cursor when it moved since the last save, at most once a second (entries
/// passed without a notification move it too, so that a restart does not read them again;
/// a delivery saves it at once).
fn save_if_changed(path: &Path, cursor: &Cursor, saved: &mut (Vec<u8>, std::time::Instant)) {
    if saved.1.elapsed() < Duration::from_secs(1) {
        return;
    }
    let text = cursor_text(cursor);
    if text != saved.0 {
        save_cursor(path, cursor);
        *saved = (text, std::time::Instant::now());
    }
}

fn advance(cursor: &mut Cursor, targets: &[NotifyTarget], index: u64) {
    for t in targets {
        let next = cursor.next.entry(t.url.clone()).or_insert(0);
        if *next <= index {
            *next = index + 1;
        }
    }
}

async fn deliver(
    target: &NotifyTarget,
    index: u64,
    event: &Event,
    text: &str,
) -> Result<(), String> {
    let body = match target.format {
        NotifyFormat::Slack => serde_json::json!({ "text": text }),
        NotifyFormat::Json => serde_json::json!({
            "summary": text,
            "index": index,
            "time": timestamp::format_ms(event.time_ms),
            "proxy": event.proxy,
            "event": event,
        }),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(target.addr),
    )
    .await
    .map_err(|_| "connect timeout".to_owned())?
    .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = Request::post(target.path.as_str())
        .header(http::header::HOST, target.addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bglass_core::audit::event::EVENT_VERSION;
    use bglass_core::id::ProxyId;

    fn event(kind: EventKind) -> Event {
        Event {
            v: EVENT_VERSION,
            time_ms: 1_700_000_000_000,
            proxy: ProxyId::new("proxy-a").unwrap(),
            actor: None,
            drill: None,
            event: kind,
        }
    }

    /// Every kind the notifier summarises is one it reads from the log's files too (where
    /// it catches up after a restart, and where the log's own `log_failed` and
    /// `log_recovered` entries reach it).
    #[test]
    fn proxy_events_that_are_notified_are_read_from_the_files_too() {
        let catalog = Catalog::from_bytes(
            Path::new("services.toml"),
            b"version = 1\n\n[[service]]\nname = \"grafana\"\nkind = \"http\"\ndescription = \"Dashboards\"\nupstream = \"127.0.0.1:3000\"\nmax_ttl = \"4h\"\ndefault_ttl = \"1h\"\napprovals = 0\nhealth = { path = \"/\", expect_status = 200 }\n".to_vec(),
        )
        .unwrap();
        let dir = Path::new("/srv/bglass/data");
        let kinds = [
            EventKind::ConfigReload {
                file: "catalog".to_owned(),
                accepted: false,
                digest: None,
                error: Some("services.toml:3:1: bad".to_owned()),
            },
            EventKind::LogFailed {
                error: "No space left on device (os error 28)".to_owned(),
            },
            EventKind::LogRecovered {
                failed_ms: 1_699_999_990_000,
                error: "No space left on device (os error 28)".to_owned(),
            },
            EventKind::StorageLow {
                free_bytes: 1,
                threshold_bytes: 2,
            },
            EventKind::StorageOk { free_bytes: 3 },
        ];
        for kind in kinds {
            let e = event(kind);
            let name = e.event.type_name();
            assert!(
                summary(&e, &catalog, dir).is_some(),
                "{name} is not notified"
            );
            assert!(
                NOTIFIED_KINDS.contains(&name),
                "{name} is skipped in the files"
            );
            let bytes = e.to_bytes().unwrap();
            assert_eq!(bglass_core::audit::event::peek_kind(&bytes), Some(name));
        }
        let accepted = event(EventKind::ConfigReload {
            file: "catalog".to_owned(),
            accepted: true,
            digest: Some("d".to_owned()),
            error: None,
        });
        assert_eq!(summary(&accepted, &catalog, dir), None);
    }
}
