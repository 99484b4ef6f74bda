//! `bglass audit verify --policy`: a log forged the way a holder of the proxy's key would
//! forge it (real entries, checkpoints signed with that key, so the integrity check passes)
//! is caught entry by entry by the policy check, against the roster and catalog kept beside
//! it; and a real proxy's log, reloads included, passes it.

use bglass_core::audit::event::{Event, EventKind, StoredEnvelope};
use bglass_core::audit::policy_files::{self, PolicyKind};
use bglass_core::envelope::{AccessRequest, Action};
use bglass_core::id::{GrantId, RequestId, ResponderId, ServiceName};
use bglass_core::roster::Role;
use bglass_tests::audit::{self, T0_MS, fixture};
use bglass_tests::world::{TEST_CATALOG, World};

const GRANT: &str = "g-00000000000000a1";
const REQUEST: &str = "r-00000000000000a1";

/// alice responds; bob and carol approve. mallory has a key but is in no roster.
fn roster() -> String {
    fixture::roster(&[
        ("alice", 1, &[Role::Responder]),
        ("bob", 2, &[Role::Responder, Role::Approver]),
        ("carol", 3, &[Role::Responder, Role::Approver]),
    ])
}

fn catalog() -> String {
    TEST_CATALOG
        .replace("{nginx}", "8080")
        .replace("{dead}", "9")
}

/// An envelope `who` signs with the key of seed `signer`, at `offset_ms`.
fn envelope(who: &str, signer: u8, offset_ms: u64, action: Action) -> StoredEnvelope {
    fixture::signed(
        who,
        signer,
        audit::PROXY,
        T0_MS + offset_ms,
        signer ^ (offset_ms as u8),
        action,
    )
}

/// The honest story: alice asks for argocd (one approval, 2 h maximum), bob approves, the
/// grant starts at the approval for 30 min, alice uses it once, bob revokes it.
fn honest() -> Vec<Event> {
    let request = RequestId::new(REQUEST).unwrap();
    let grant = GrantId::new(GRANT).unwrap();
    let argocd = ServiceName::new("argocd").unwrap();
    let nbf = (T0_MS + 5_000) / 1000;
    vec![
        audit::event(
            0,
            None,
            None,
            EventKind::ProxyStart {
                key: audit::proxy_key().public_key(),
                version: "test".to_owned(),
                catalog: policy_files::digest(catalog().as_bytes()),
                roster: policy_files::digest(roster().as_bytes()),
                recovered: None,
            },
        ),
        audit::event(
            1_000,
            Some("alice"),
            None,
            EventKind::Request {
                request: request.clone(),
                service: argocd.clone(),
                ttl_secs: 1800,
                emergency: false,
                reason: "deploy stuck".to_owned(),
                incident: "INC-7".to_owned(),
                envelope: envelope(
                    "alice",
                    1,
                    1_000,
                    Action::Access(AccessRequest {
                        service: argocd.clone(),
                        ttl: None,
                        reason: "deploy stuck".to_owned(),
                        incident: "INC-7".to_owned(),
                        emergency: false,
                        drill: None,
                        canary: false,
                    }),
                ),
            },
        ),
        audit::event(
            5_000,
            Some("bob"),
            None,
            EventKind::Approval {
                request: request.clone(),
                envelope: envelope(
                    "bob",
                    2,
                    5_000,
                    Action::Approve {
                        request: request.clone(),
                    },
                ),
            },
        ),
        audit::event(
            5_000,
            Some("bob"),
            None,
            EventKind::Grant {
                grant: grant.clone(),
                request,
                responder: ResponderId::new("alice").unwrap(),
                service: argocd.clone(),
                nbf,
                exp: nbf + 1800,
                emergency: false,
                token: "bg1.token".to_owned(),
            },
        ),
        audit::event(
            10_000,
            Some("alice"),
            None,
            EventKind::UseStart {
                grant: grant.clone(),
                service: argocd.clone(),
                method: "GET".to_owned(),
                path: "/api/apps".to_owned(),
            },
        ),
        audit::use_of(10_010, GRANT, "alice", "argocd", None),
        audit::event(
            20_000,
            Some("bob"),
            None,
            EventKind::Revoke {
                grant: grant.clone(),
                reason: "done".to_owned(),
                envelope: Some(envelope(
                    "bob",
                    2,
                    20_000,
                    Action::Revoke {
                        grant,
                        reason: "done".to_owned(),
                    },
                )),
            },
        ),
    ]
}

/// Writes `events` as a log signed with the log's key, with the roster and catalog beside
/// it; returns the directory.
fn forged(events: &[Event]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    audit::write(tmp.path(), events);
    policy_files::store(tmp.path(), PolicyKind::Roster, roster().as_bytes()).unwrap();
    policy_files::store(tmp.path(), PolicyKind::Catalog, catalog().as_bytes()).unwrap();
    tmp
}

fn verify(dir: &std::path::Path, policy: bool) -> bglass_tests::Run {
    let key = audit::proxy_key().public_key().to_string();
    audit::verify(dir, &key, if policy { &["--policy"] } else { &[] })
}

/// The log verifies (integrity), and the policy check names `kind` at entry `index`.
fn caught(events: &[Event], index: u64, kind: &str) -> String {
    let dir = forged(events);
    let plain = verify(dir.path(), false);
    assert_eq!(
        plain.code,
        Some(0),
        "the forgery must verify: {}",
        plain.stderr
    );
    let out = verify(dir.path(), true);
    assert_eq!(out.code, Some(5), "{}\n{}", out.stdout, out.stderr);
    let line = format!("POLICY VIOLATION entry {index}: {kind}: ");
    assert!(
        out.stdout.contains(&line),
        "no {line:?} in:\n{}",
        out.stdout
    );
    out.stdout
}

#[test]
fn an_honest_log_passes_the_policy_check() {
    let dir = forged(&honest());
    let out = verify(dir.path(), true);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("policy: 7 entries, 1 grants, 3 signed envelopes checked against the roster and catalog in force: 0 violations"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_approval_whose_signature_is_wrong_is_caught() {
    let mut events = honest();
    let request = RequestId::new(REQUEST).unwrap();
    // bob's approval with a signature that is not his: its first byte changed.
    let mut forged = envelope(
        "bob",
        2,
        5_000,
        Action::Approve {
            request: request.clone(),
        },
    );
    let first = if forged.sig.starts_with('A') {
        "B"
    } else {
        "A"
    };
    forged.sig.replace_range(0..1, first);
    events[2].event = EventKind::Approval {
        request,
        envelope: forged,
    };
    let out = caught(&events, 2, "approval_signature");
    assert!(out.contains("entry 3: approvals_missing: "), "{out}");
}

#[test]
fn an_approver_outside_the_roster_is_caught() {
    let mut events = honest();
    let request = RequestId::new(REQUEST).unwrap();
    events[2] = audit::event(
        5_000,
        Some("mallory"),
        None,
        EventKind::Approval {
            request: request.clone(),
            envelope: envelope("mallory", 9, 5_000, Action::Approve { request }),
        },
    );
    let out = caught(&events, 2, "signer_not_in_roster");
    assert!(out.contains("entry 3: approvals_missing: "), "{out}");
}

#[test]
fn a_ttl_above_the_catalogs_maximum_is_caught() {
    let mut events = honest();
    if let EventKind::Grant { nbf, exp, .. } = &mut events[3].event {
        *exp = *nbf + 3 * 3600;
    }
    let out = caught(&events, 3, "ttl_above_max");
    assert!(out.contains("lasts 10800 s"), "{out}");
}

#[test]
fn a_use_after_revocation_is_caught() {
    let mut events = honest();
    events.push(audit::event(
        30_000,
        Some("alice"),
        None,
        EventKind::UseStart {
            grant: GrantId::new(GRANT).unwrap(),
            service: ServiceName::new("argocd").unwrap(),
            method: "GET".to_owned(),
            path: "/api/apps".to_owned(),
        },
    ));
    caught(&events, 7, "use_after_revoke");
}

#[test]
fn a_roster_changed_beside_the_log_is_refused() {
    let dir = forged(&honest());
    let path = dir.path().join(policy_files::relative_path(
        PolicyKind::Roster,
        &policy_files::digest(roster().as_bytes()),
    ));
    // Whoever adds mallory as an approver to the kept roster is caught by its digest.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[[responder]]\nid = \"mallory\"\nname = \"m\"\n");
    std::fs::write(&path, text).unwrap();
    let out = verify(dir.path(), true);
    assert_eq!(out.code, Some(5), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("POLICY VIOLATION entry 0: roster_unavailable: ")
            && out.stdout.contains("was changed"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_real_proxys_log_with_approvals_and_a_reload_passes_the_policy_check() {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder"), ("bob", "responder,approver")],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    // A grant without approval, then one with bob's approval.
    w.access("alice", "grafana");
    let waiting = w.spawn_bglass(
        "alice",
        &[
            "access",
            "argocd",
            "--reason",
            "deploy",
            "--incident",
            "INC-9",
            "--json",
        ],
    );
    let id = bglass_tests::eventually(
        std::time::Duration::from_secs(20),
        "alice's pending request in bob's list",
        || {
            let list = w.bglass("bob", &["requests", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&list.stdout).ok()?;
            Some(v.get(0)?["request"]["id"].as_str()?.to_owned())
        },
    );
    let approved = w.bglass("bob", &["approve", &id]);
    assert_eq!(approved.code, Some(0), "{}", approved.stderr);
    let granted = waiting.wait_with_output().unwrap();
    assert_eq!(
        granted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    // A roster reload: the new roster is kept beside the log before it is in force.
    let roster_path = w.proxies[0].dir.join("responders.toml");
    let mut roster = std::fs::read_to_string(&roster_path).unwrap();
    roster.push_str("\n# reviewed 2026-12-01\n");
    std::fs::write(&roster_path, &roster).unwrap();
    let digest = policy_files::digest(roster.as_bytes());
    let kept = w.proxies[0]
        .log_dir()
        .join(policy_files::relative_path(PolicyKind::Roster, &digest));
    bglass_tests::eventually(
        std::time::Duration::from_secs(15),
        "the reloaded roster kept beside the log",
        || kept.exists().then_some(()),
    );
    w.stop(0);

    let out = audit::verify(&w.proxies[0].log_dir(), &w.proxies[0].key, &["--policy"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(": 0 violations"), "{}", out.stdout);
    assert!(out.stdout.contains(" 2 grants, "), "{}", out.stdout);
}
