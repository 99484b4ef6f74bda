//! Webhook notifications: grants, approvals needed, rejected config pushes and the log's
//! storage events, delivered in log order to every target, at least once (a cursor per
//! target survives restarts); delivery never blocks access.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bglass_core::audit::event::{Event, EventKind};
use bglass_core::catalog::Catalog;
use bglass_core::timestamp;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::{Proxy, storage};
use crate::config::{NotifyFormat, NotifyTarget};

/// Why a notification was not delivered (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The notification did not encode.
    #[error("encoding the notification: {0}")]
    Encode(#[from] serde_json::Error),
    /// No connection within 5 seconds.
    #[error("connect timeout")]
    ConnectTimeout,
    /// Connecting failed.
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request could not be made.
    #[error("{0}")]
    Request(#[from] http::Error),
    /// No answer within 10 seconds.
    #[error("timeout")]
    Timeout,
    /// The target answered with an error status.
    #[error("status {0}")]
    Status(http::StatusCode),
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
        EventKind::ConfigReload {
            file,
            accepted: true,
            signers,
            changes,
            ..
        } if !signers.is_empty() => Some(format!(
            "CONFIG CHANGED on {}: a new {file} signed by {} is in force{}",
            event.proxy,
            signers.join(", "),
            if changes.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    changes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        )),
        EventKind::Denial { reason, detail, .. } if reason == "log_inconsistent" => Some(format!(
            "LOG FORK OR ROLLBACK: {} as a witness refused a checkpoint that contradicts one it cosigned: {detail}",
            event.proxy
        )),
        kind => storage::summary(&event.proxy, data_dir, event.time_ms, kind),
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
pub async fn notifier(proxy: Arc<Proxy>, rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>) {
    let targets = proxy.config.notify.clone();
    if targets.is_empty() {
        return;
    }
    let path = cursor_path(&proxy);
    let cursor: Cursor = std::fs::read(&path)
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
    let mut d = Delivery {
        proxy: &proxy,
        targets,
        cursor,
        path,
        rx,
    };
    loop {
        let size = proxy.log.size();
        if next < size {
            // Behind: read from the files. Events sent meanwhile are in the files too.
            d.drop_queued();
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
                        d.notify_entry(index, &bytes).await;
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
        save_if_changed(&d.path, &d.cursor, &mut saved);
        let received = tokio::time::timeout(Duration::from_secs(2), d.rx.recv()).await;
        match received {
            Ok(Some((index, event))) if index == next => {
                d.notify(index, &event).await;
                next = index + 1;
            }
            // Already delivered (events can arrive out of order), or ahead: the files.
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => return,
        }
    }
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

/// What the notifier delivers with: the targets, their cursor (and its file), and the
/// events appended since it caught up.
struct Delivery<'a> {
    proxy: &'a Proxy,
    targets: Vec<NotifyTarget>,
    cursor: Cursor,
    path: PathBuf,
    rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>,
}

impl Delivery<'_> {
    /// Drops the events queued: they are in the log's files, read from there.
    fn drop_queued(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Notifies one entry read from the log's files. Entries of kinds that are never
    /// notified are recognised without being parsed.
    async fn notify_entry(&mut self, index: u64, bytes: &[u8]) {
        let notified = bglass_core::audit::event::peek_kind(bytes)
            .is_none_or(|kind| NOTIFIED_KINDS.contains(&kind));
        if !notified {
            self.advance(index);
            return;
        }
        match Event::from_bytes(bytes) {
            Ok(event) => self.notify(index, &event).await,
            Err(e) => {
                eprintln!("bglass-proxy: notifier skips audit entry {index}: {e}");
                self.advance(index);
            }
        }
    }

    /// Notifies one event, if it is one to notify, and moves every cursor past it.
    async fn notify(&mut self, index: u64, event: &Event) {
        let proxy = self.proxy;
        if let Some(text) = summary(event, &proxy.catalog.current(), &proxy.config.data_dir) {
            self.deliver_all(index, event, &text).await;
        }
        self.advance(index);
    }

    /// Delivers one notification to every target whose cursor has not passed it, retrying
    /// a target that is down with backoff.
    async fn deliver_all(&mut self, index: u64, event: &Event, text: &str) {
        for i in 0..self.targets.len() {
            let target = &self.targets[i];
            if self.cursor.next.get(&target.url).copied().unwrap_or(0) > index {
                continue;
            }
            let mut backoff = Duration::from_millis(500);
            loop {
                match deliver(target, index, event, text).await {
                    Ok(()) => {
                        self.proxy.metrics.notify(true);
                        break;
                    }
                    Err(_) => {
                        self.proxy.metrics.notify(false);
                        // What is appended meanwhile is read from the files afterwards: do
                        // not hold it in memory while the target is down.
                        while self.rx.try_recv().is_ok() {}
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                }
            }
            self.cursor.next.insert(target.url.clone(), index + 1);
            save_cursor(&self.path, &self.cursor);
        }
    }

    /// Moves every target's cursor past `index`.
    fn advance(&mut self, index: u64) {
        for t in &self.targets {
            let next = self.cursor.next.entry(t.url.clone()).or_insert(0);
            if *next <= index {
                *next = index + 1;
            }
        }
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

async fn deliver(
    target: &NotifyTarget,
    index: u64,
    event: &Event,
    text: &str,
) -> Result<(), DeliveryError> {
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
    let bytes = serde_json::to_vec(&body)?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(target.addr),
    )
    .await
    .map_err(|_| DeliveryError::ConnectTimeout)??;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let request = Request::post(target.path.as_str())
        .header(http::header::HOST, target.addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))?;
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .map_err(|_| DeliveryError::Timeout)??;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status(status))
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
                signers: Vec::new(),
                changes: Vec::new(),
            },
            EventKind::ConfigReload {
                file: "roster".to_owned(),
                accepted: true,
                digest: Some("d".to_owned()),
                error: None,
                signers: vec!["carol".to_owned(), "dave".to_owned()],
                changes: Vec::new(),
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
            signers: Vec::new(),
            changes: Vec::new(),
        });
        // A reload nobody had to sign is not news.
        assert_eq!(summary(&accepted, &catalog, dir), None);
    }
}
