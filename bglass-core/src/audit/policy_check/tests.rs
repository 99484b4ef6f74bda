//! The policy check on small logs: the emergency rules, grants nobody asked for, uses by
//! someone else.

use super::*;
use crate::audit::event::EVENT_VERSION;
use crate::audit::policy_fixture as fixture;
use crate::envelope::AccessRequest;
use crate::id::ProxyId;

const T0: u64 = 1_767_225_600_000;
const MIN: u64 = 60_000;

/// alice (responder, seed 1), bob (approver, seed 2), probe (canary, seed 3).
fn roster() -> String {
    fixture::roster(&[
        ("alice", 1, &[Role::Responder]),
        ("bob", 2, &[Role::Responder, Role::Approver]),
        ("probe", 3, &[Role::Canary]),
    ])
}

fn signed(who: &str, seed: u8, at: u64, action: Action) -> StoredEnvelope {
    fixture::signed(who, seed, "proxy-a", T0 + at, (at % 251) as u8, action)
}

fn ev(at: u64, actor: Option<&str>, kind: EventKind) -> Event {
    Event {
        v: EVENT_VERSION,
        time_ms: T0 + at,
        proxy: ProxyId::new("proxy-a").unwrap(),
        actor: actor.map(|a| ResponderId::new(a).unwrap()),
        drill: None,
        event: kind,
    }
}

/// `who` (key `seed`) asks at `at` for a canary grant of argocd (one approval needed for
/// anyone else); the grant follows at once, for `ttl_secs`.
fn canary(who: &str, seed: u8, at: u64, ttl_secs: u64) -> Vec<Event> {
    let svc = ServiceName::new("argocd").unwrap();
    let request = RequestId::new("r-00000000000000c1").unwrap();
    let nbf = (T0 + at) / 1000;
    let access = AccessRequest {
        service: svc.clone(),
        ttl: None,
        reason: "readiness probe".to_owned(),
        incident: "canary".to_owned(),
        emergency: false,
        drill: None,
        canary: true,
    };
    vec![
        ev(
            at,
            Some(who),
            EventKind::Request {
                request: request.clone(),
                service: svc.clone(),
                ttl_secs: crate::grant::CANARY_TTL_SECS,
                emergency: false,
                reason: access.reason.clone(),
                incident: access.incident.clone(),
                envelope: signed(who, seed, at, Action::Access(access)),
            },
        ),
        ev(
            at,
            Some(who),
            EventKind::Grant {
                grant: GrantId::new("g-00000000000000c1").unwrap(),
                request,
                responder: ResponderId::new(who).unwrap(),
                service: svc,
                nbf,
                exp: nbf + ttl_secs,
                emergency: false,
                token: "bg1.t".to_owned(),
            },
        ),
    ]
}

#[test]
fn canary_grants_need_no_approval_but_the_canary_role_and_last_a_minute_at_most() {
    assert_eq!(kinds(canary("probe", 3, 1_000, 60), 30 * MIN), vec![]);
    assert_eq!(
        kinds(canary("probe", 3, 1_000, 600), 30 * MIN),
        vec![(2, "ttl_above_max")]
    );
    // A responder without the canary role asking for one: not allowed, whatever followed.
    let v = kinds(canary("alice", 1, 1_000, 60), 30 * MIN);
    assert!(v.contains(&(1, "requester_not_responder")), "{v:?}");
}

/// alice asks for `service` under the emergency bypass at `at`; the grant follows.
fn emergency(service: &str, at: u64, ttl_secs: u64) -> Vec<Event> {
    let svc = ServiceName::new(service).unwrap();
    let request = RequestId::new("r-00000000000000e1").unwrap();
    let nbf = (T0 + at) / 1000;
    vec![
        ev(
            at,
            Some("alice"),
            EventKind::Request {
                request: request.clone(),
                service: svc.clone(),
                ttl_secs: 1800,
                emergency: true,
                reason: "outage".to_owned(),
                incident: "INC-1".to_owned(),
                envelope: signed(
                    "alice",
                    1,
                    at,
                    Action::Access(AccessRequest {
                        service: svc.clone(),
                        ttl: None,
                        reason: "outage".to_owned(),
                        incident: "INC-1".to_owned(),
                        emergency: true,
                        drill: None,
                        canary: false,
                    }),
                ),
            },
        ),
        ev(
            at,
            Some("alice"),
            EventKind::Grant {
                grant: GrantId::new("g-00000000000000e1").unwrap(),
                request,
                responder: ResponderId::new("alice").unwrap(),
                service: svc,
                nbf,
                exp: nbf + ttl_secs,
                emergency: true,
                token: "bg1.t".to_owned(),
            },
        ),
    ]
}

fn review(by: &str, seed: u8, at: u64) -> Event {
    let grant = GrantId::new("g-00000000000000e1").unwrap();
    ev(
        at,
        Some(by),
        EventKind::Review {
            grant: grant.clone(),
            note: "fine".to_owned(),
            envelope: signed(
                by,
                seed,
                at,
                Action::Review {
                    grant,
                    note: "fine".to_owned(),
                },
            ),
        },
    )
}

/// Runs the check on `events` after a start naming the test roster and catalog.
fn kinds(events: Vec<Event>, last_at: u64) -> Vec<(u64, &'static str)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(crate::audit::storage::TMP_DIR)).unwrap();
    let roster = policy_files::store(dir.path(), PolicyKind::Roster, roster().as_bytes());
    let catalog = policy_files::store(dir.path(), PolicyKind::Catalog, fixture::CATALOG.as_bytes());
    let mut all = vec![ev(
        0,
        None,
        EventKind::ProxyStart {
            key: fixture::key(42).public_key(),
            version: "test".to_owned(),
            catalog: catalog.unwrap(),
            roster: roster.unwrap(),
            recovered: None,
        },
    )];
    all.extend(events);
    all.push(ev(
        last_at,
        None,
        EventKind::ProxyStop {
            reason: "signal".to_owned(),
        },
    ));
    let report = check(
        dir.path(),
        all.into_iter().enumerate().map(|(i, e)| (i as u64, e)),
        PolicyOptions {
            review_within_ms: 60 * MIN,
        },
    );
    report
        .violations
        .iter()
        .map(|v| (v.index, v.kind))
        .collect()
}

#[test]
fn an_emergency_grant_reviewed_in_time_by_another_approver_passes() {
    let mut events = emergency("argocd", 1_000, 600);
    events.push(review("bob", 2, 30 * MIN));
    assert_eq!(kinds(events, 120 * MIN), vec![]);
}

#[test]
fn an_emergency_grant_without_review_is_caught_once_its_window_has_passed() {
    // Still within the window at the log's end: open, not a violation.
    assert_eq!(kinds(emergency("argocd", 1_000, 600), 30 * MIN), vec![]);
    assert_eq!(
        kinds(emergency("argocd", 1_000, 600), 120 * MIN),
        vec![(2, "review_missing")]
    );
}

#[test]
fn a_late_review_and_a_self_review_are_caught() {
    let mut late = emergency("argocd", 1_000, 600);
    late.push(review("bob", 2, 90 * MIN));
    assert_eq!(kinds(late, 120 * MIN), vec![(2, "review_late")]);
    let mut own = emergency("argocd", 1_000, 600);
    own.push(review("alice", 1, 10 * MIN));
    // alice holds no approver role, and it is her own grant: refused at the role.
    assert_eq!(kinds(own, 30 * MIN), vec![(3, "review_without_role")]);
}

#[test]
fn a_bypass_where_the_catalog_has_none_or_longer_than_its_ttl_is_caught() {
    let v = kinds(emergency("grafana", 1_000, 600), 30 * MIN);
    assert!(v.contains(&(2, "emergency_not_allowed")), "{v:?}");
    // argocd's bypass is 10 minutes.
    assert_eq!(
        kinds(emergency("argocd", 1_000, 1200), 30 * MIN),
        vec![(2, "ttl_above_max")]
    );
}

#[test]
fn a_grant_nobody_asked_for_and_a_use_by_someone_else_are_caught() {
    let mut events = emergency("argocd", 1_000, 600);
    events.remove(0);
    events.push(review("bob", 2, 10 * MIN));
    events.push(ev(
        2_000,
        Some("bob"),
        EventKind::TunnelOpen {
            grant: GrantId::new("g-00000000000000e1").unwrap(),
            service: ServiceName::new("argocd").unwrap(),
            tunnel: 1,
        },
    ));
    let v = kinds(events, 30 * MIN);
    assert_eq!(
        v,
        vec![(1, "grant_without_request"), (3, "use_by_other")],
        "{v:?}"
    );
}
