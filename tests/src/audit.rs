//! Audit logs with known content, written through the real log code.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind, StoredEnvelope};
use bglass_core::audit::log::{AuditLog, LogConfig, ReplayError};
use bglass_core::id::{GrantId, ProxyId, RequestId, ResponderId, ServiceName};
use bglass_core::keys::SigningKey;

/// Responders with keys from fixed seeds, their roster and the envelopes they sign (shared
/// with the core's policy-check tests and benchmark).
#[path = "../../bglass-core/src/audit/policy_fixture.rs"]
pub mod fixture;

/// `bglass audit verify DIR --key KEY ARGS…`, as an auditor with no bglass config runs it.
pub fn verify(dir: &Path, key: &str, args: &[&str]) -> crate::Run {
    let home = tempfile::tempdir().unwrap();
    crate::run(
        crate::command("bglass", home.path())
            .args(["audit", "verify"])
            .arg(dir)
            .args(["--key", key])
            .args(args),
    )
}

/// Proxy `i`'s log, checked offline with `--policy` as an auditor does; panics unless every
/// entry is proven allowed.
pub fn assert_policy_proven(w: &crate::world::World, i: usize) {
    let p = &w.proxies[i];
    let out = verify(&p.log_dir(), &p.key, &["--policy"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

/// The proxy id of test logs.
pub const PROXY: &str = "proxy-a";
/// 2026-01-01T00:00:00Z in milliseconds.
pub const T0_MS: u64 = 1_767_225_600_000;

/// The signing key of test logs.
pub fn proxy_key() -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seed(&[42; 32]).unwrap())
}

/// Opens (creating) a test log in `dir`.
pub fn open(dir: &Path) -> AuditLog {
    open_with(dir, |_, _| Ok(()))
}

/// Opens a test log, replaying every entry through `replay`.
pub fn open_with(
    dir: &Path,
    replay: impl FnMut(u64, &[u8]) -> Result<(), ReplayError>,
) -> AuditLog {
    let config = LogConfig {
        dir: dir.to_path_buf(),
        proxy: ProxyId::new(PROXY).unwrap(),
        key: proxy_key(),
        checkpoint_interval: Duration::from_millis(100),
        ..LogConfig::new(dir.to_path_buf(), ProxyId::new(PROXY).unwrap(), proxy_key())
    };
    match AuditLog::open(config, replay) {
        Ok((log, _)) => log,
        Err(e) => panic!("opening {}: {e}", dir.display()),
    }
}

/// An event at `T0 + offset_ms`.
pub fn event(offset_ms: u64, actor: Option<&str>, drill: Option<&str>, kind: EventKind) -> Event {
    Event {
        v: EVENT_VERSION,
        time_ms: T0_MS + offset_ms,
        proxy: ProxyId::new(PROXY).unwrap(),
        actor: actor.map(|a| ResponderId::new(a).unwrap()),
        drill: drill.map(str::to_owned),
        event: kind,
    }
}

/// The first event of every log.
pub fn start() -> Event {
    event(
        0,
        None,
        None,
        EventKind::ProxyStart {
            key: proxy_key().public_key(),
            version: "test".to_owned(),
            catalog: "c".to_owned(),
            roster: "r".to_owned(),
            recovered: None,
        },
    )
}

/// A placeholder-free envelope value for events that need one (opaque to the log).
pub fn envelope(tag: &str) -> StoredEnvelope {
    StoredEnvelope {
        payload: format!("payload-{tag}"),
        sig: format!("sig-{tag}"),
    }
}

/// A grant event.
pub fn grant(
    offset_ms: u64,
    grant: &str,
    responder: &str,
    service: &str,
    emergency: bool,
    drill: Option<&str>,
) -> Event {
    let nbf = (T0_MS + offset_ms) / 1000;
    event(
        offset_ms,
        Some(responder),
        drill,
        EventKind::Grant {
            grant: GrantId::new(grant).unwrap(),
            request: RequestId::new(&grant.replacen("g-", "r-", 1)).unwrap(),
            responder: ResponderId::new(responder).unwrap(),
            service: ServiceName::new(service).unwrap(),
            nbf,
            exp: nbf + 1800,
            emergency,
            token: format!("bg1.token-of-{grant}"),
        },
    )
}

/// A use of a grant.
pub fn use_of(
    offset_ms: u64,
    grant: &str,
    responder: &str,
    service: &str,
    drill: Option<&str>,
) -> Event {
    event(
        offset_ms,
        Some(responder),
        drill,
        EventKind::Use {
            grant: GrantId::new(grant).unwrap(),
            service: ServiceName::new(service).unwrap(),
            method: "GET".to_owned(),
            path: "/api/health".to_owned(),
            status: 200,
            bytes_in: 0,
            bytes_out: 42,
            duration_ms: 3,
            start: None,
        },
    )
}

/// Writes `events` to a new log in `dir` and closes it (signing a final checkpoint).
pub fn write(dir: &Path, events: &[Event]) {
    let log = open(dir);
    for e in events {
        log.append(e.to_bytes().unwrap()).unwrap();
    }
    log.close();
}

/// A log of `n` realistic events: a proxy start, then requests, grants and uses.
pub fn realistic(n: u64) -> Vec<Event> {
    let mut out = vec![start()];
    let services = ["grafana", "prometheus", "logs", "argocd", "bastion"];
    let mut i = 1u64;
    while (out.len() as u64) < n {
        let g = format!("g-{i:016x}");
        let who = format!("responder{}", i % 7);
        let svc = services[(i % services.len() as u64) as usize];
        out.push(grant(i * 10, &g, &who, svc, false, None));
        for k in 0..3 {
            if (out.len() as u64) < n {
                out.push(use_of(i * 10 + k + 1, &g, &who, svc, None));
            }
        }
        i += 1;
    }
    out.truncate(usize::try_from(n).unwrap());
    out
}

/// Copies a log directory (files only, recursively).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
