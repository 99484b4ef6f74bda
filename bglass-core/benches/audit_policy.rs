//! Policy-check benchmark: the rate at which `bglass audit verify --policy` proves a log
//! against the roster and catalog kept beside it (target: a 1,000,000-entry log at
//! ≥ 500,000 entries/s). The log is written through the real `AuditLog`: every 1,000 entries
//! a signed request and a signed approval, the grant, then `use_start`/`use` pairs under it
//! (the data plane's two entries a request, the most frequent kinds).
//!
//! cargo bench -p bglass-core --bench audit_policy -- [ENTRIES]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind, StoredEnvelope};
use bglass_core::audit::log::{AuditLog, LogConfig};
use bglass_core::audit::policy_check::{self, PolicyOptions};
use bglass_core::audit::policy_files::{self, PolicyKind};
use bglass_core::audit::report::with_events;
use bglass_core::audit::verify::verify_dir;
use bglass_core::envelope::{AccessRequest, Action};
use bglass_core::id::{GrantId, ProxyId, RequestId, ResponderId, ServiceName};
use bglass_core::keys::SigningKey;
use bglass_core::roster::Role;

const T0_MS: u64 = 1_767_225_600_000;
const BLOCK: u64 = 1_000;

#[path = "../src/audit/policy_fixture.rs"]
mod fixture;

fn roster() -> String {
    fixture::roster(&[
        ("alice", 1, &[Role::Responder]),
        ("bob", 2, &[Role::Responder, Role::Approver]),
    ])
}

fn envelope(who: &str, seed: u8, time_ms: u64, n: u64, action: Action) -> StoredEnvelope {
    fixture::signed(who, seed, "proxy-a", time_ms, (n % 251) as u8, action)
}

fn event(i: u64, last_start: &mut u64, proxy_key: &SigningKey) -> Event {
    let time_ms = T0_MS + i;
    let block = i / BLOCK;
    let request = RequestId::new(&format!("r-{block:016x}")).unwrap();
    let grant = GrantId::new(&format!("g-{block:016x}")).unwrap();
    let argocd = ServiceName::new("argocd").unwrap();
    let (actor, kind) = match i % BLOCK {
        _ if i == 0 => (
            None,
            EventKind::ProxyStart {
                key: proxy_key.public_key(),
                version: "bench".to_owned(),
                catalog: policy_files::digest(fixture::CATALOG.as_bytes()),
                roster: policy_files::digest(roster().as_bytes()),
                recovered: None,
            },
        ),
        // The previous block's grant reaches its end.
        0 => (
            None,
            EventKind::Expiry {
                grant: GrantId::new(&format!("g-{:016x}", block - 1)).unwrap(),
            },
        ),
        1 => (
            "alice",
            EventKind::Request {
                request: request.clone(),
                service: argocd.clone(),
                ttl_secs: 3600,
                emergency: false,
                reason: "bench".to_owned(),
                incident: "INC-1".to_owned(),
                envelope: envelope(
                    "alice",
                    1,
                    time_ms,
                    i,
                    Action::Access(AccessRequest {
                        service: argocd.clone(),
                        ttl: None,
                        reason: "bench".to_owned(),
                        incident: "INC-1".to_owned(),
                        emergency: false,
                        drill: None,
                        canary: false,
                    }),
                ),
            },
        )
            .into_some(),
        2 => (
            "bob",
            EventKind::Approval {
                request: request.clone(),
                envelope: envelope("bob", 2, time_ms, i, Action::Approve { request }),
            },
        )
            .into_some(),
        3 => (
            "bob",
            EventKind::Grant {
                grant,
                request,
                responder: ResponderId::new("alice").unwrap(),
                service: argocd,
                nbf: time_ms / 1000,
                exp: time_ms / 1000 + 3600,
                emergency: false,
                token: "bg1.bench".to_owned(),
            },
        )
            .into_some(),
        n if n % 2 == 0 => {
            *last_start = i;
            (
                "alice",
                EventKind::UseStart {
                    grant,
                    service: argocd,
                    method: "GET".to_owned(),
                    path: format!("/api/applications/{i:08}"),
                },
            )
                .into_some()
        }
        _ => (
            "alice",
            EventKind::Use {
                grant,
                service: argocd,
                method: "GET".to_owned(),
                path: format!("/api/applications/{:08}", *last_start),
                status: 200,
                bytes_in: 0,
                bytes_out: 18_211,
                duration_ms: 12,
                start: Some(*last_start),
            },
        )
            .into_some(),
    };
    Event {
        v: EVENT_VERSION,
        time_ms,
        proxy: ProxyId::new("proxy-a").unwrap(),
        actor: actor.map(|a| ResponderId::new(a).unwrap()),
        drill: None,
        event: kind,
    }
}

/// `(actor, kind)` with the actor named.
trait IntoSome {
    fn into_some(self) -> (Option<&'static str>, EventKind);
}

impl IntoSome for (&'static str, EventKind) {
    fn into_some(self) -> (Option<&'static str>, EventKind) {
        (Some(self.0), self.1)
    }
}

fn main() {
    let entries: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let proxy_key = Arc::new(fixture::key(42));
    let (log, _) = AuditLog::open(
        LogConfig::new(
            dir.clone(),
            ProxyId::new("proxy-a").unwrap(),
            Arc::clone(&proxy_key),
        ),
        |_, _| Ok(()),
    )
    .unwrap();
    policy_files::store(&dir, PolicyKind::Roster, roster().as_bytes()).unwrap();
    policy_files::store(&dir, PolicyKind::Catalog, fixture::CATALOG.as_bytes()).unwrap();
    let start = Instant::now();
    let mut last_start = 0;
    let mut pending = Vec::with_capacity(4096);
    for i in 0..entries {
        let bytes = event(i, &mut last_start, &proxy_key).to_bytes().unwrap();
        pending.push(log.submit(bytes).unwrap());
        if pending.len() == 4096 {
            for p in pending.drain(..) {
                p.wait().unwrap();
            }
        }
    }
    for p in pending {
        p.wait().unwrap();
    }
    log.close();
    println!(
        "wrote {entries} entries ({} grants, each with a signed request and approval) in {:.1} s",
        entries.div_ceil(BLOCK),
        start.elapsed().as_secs_f64()
    );

    let options = PolicyOptions {
        review_within_ms: 24 * 3_600_000,
    };
    let mut best_policy = f64::MAX;
    let mut best_total = f64::MAX;
    let mut best_both = f64::MAX;
    for round in 1..=3 {
        let t0 = Instant::now();
        let integrity = verify_dir(&dir, Some(proxy_key.public_key())).unwrap();
        let t1 = Instant::now();
        let report =
            with_events(&dir, |events| policy_check::check(&dir, events, options)).unwrap();
        let t2 = Instant::now();
        assert_eq!(integrity.entries, entries);
        assert_eq!(report.entries, entries);
        assert!(
            report.violations.is_empty(),
            "{:?}",
            &report.violations[..report.violations.len().min(3)]
        );
        let (verify_s, policy_s) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
        println!(
            "round {round}: verify {verify_s:.2} s, policy {policy_s:.2} s ({} envelopes verified): policy {:.0} entries/s, verify --policy {:.0} entries/s",
            report.envelopes,
            entries as f64 / policy_s,
            entries as f64 / (verify_s + policy_s)
        );
        best_policy = best_policy.min(policy_s);
        best_total = best_total.min(verify_s + policy_s);
        // What `bglass audit verify --policy` runs: both checks side by side.
        let t3 = Instant::now();
        let (integrity, checked) =
            policy_check::verify_and_check(&dir, Some(proxy_key.public_key()), options);
        let both_s = t3.elapsed().as_secs_f64();
        assert_eq!(integrity.unwrap().entries, entries);
        assert!(checked.unwrap().unwrap().violations.is_empty());
        println!(
            "round {round}: verify --policy side by side {both_s:.2} s: {:.0} entries/s",
            entries as f64 / both_s
        );
        best_both = best_both.min(both_s);
    }
    let rate = entries as f64 / best_policy;
    println!(
        "policy check (best of 3): {rate:.0} entries/s, {:.2}x the target of 500,000; verify then policy {:.0} entries/s",
        rate / 500_000.0,
        entries as f64 / best_total
    );
    let both = entries as f64 / best_both;
    println!(
        "verify --policy end to end, side by side (best of 3): {both:.0} entries/s, {:.2}x the target of 500,000",
        both / 500_000.0
    );
}
