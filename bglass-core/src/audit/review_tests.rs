//! The review of an incident takes what belongs to it and nothing else.

use super::*;
use crate::audit::event::{EVENT_VERSION, StoredEnvelope};

fn env() -> StoredEnvelope {
    StoredEnvelope {
        payload: String::new(),
        sig: String::new(),
    }
}

fn ev(time_ms: u64, actor: Option<&str>, event: EventKind) -> Event {
    Event {
        v: EVENT_VERSION,
        time_ms,
        proxy: "p1".parse().unwrap(),
        actor: actor.map(|a| a.parse().unwrap()),
        drill: None,
        event,
    }
}

fn request(id: &str, incident: &str, emergency: bool) -> EventKind {
    EventKind::Request {
        request: id.parse().unwrap(),
        service: "grafana".parse().unwrap(),
        ttl_secs: 3600,
        emergency,
        reason: format!("reason of {id}"),
        incident: incident.to_owned(),
        envelope: env(),
    }
}

fn grant(id: &str, request: &str, who: &str, emergency: bool) -> EventKind {
    EventKind::Grant {
        grant: id.parse().unwrap(),
        request: request.parse().unwrap(),
        responder: who.parse().unwrap(),
        service: "grafana".parse().unwrap(),
        nbf: 1000,
        exp: 4600,
        emergency,
        token: String::new(),
    }
}

fn used(grant: &str, status: u16) -> EventKind {
    EventKind::Use {
        grant: grant.parse().unwrap(),
        service: "grafana".parse().unwrap(),
        method: "GET".to_owned(),
        path: "/api/health".to_owned(),
        status,
        bytes_in: 10,
        bytes_out: 100,
        duration_ms: 3,
        start: None,
    }
}

fn log() -> Vec<(u64, Event)> {
    let events = vec![
        ev(
            1_000_000,
            Some("alice"),
            request("r-00000000000000a1", "INC-1", false),
        ),
        ev(
            1_000_500,
            Some("bob"),
            request("r-00000000000000b1", "INC-2", false),
        ),
        ev(
            1_001_000,
            Some("carol"),
            EventKind::Approval {
                request: "r-00000000000000a1".parse().unwrap(),
                envelope: env(),
            },
        ),
        ev(
            1_001_001,
            None,
            grant("g-00000000000000a1", "r-00000000000000a1", "alice", false),
        ),
        ev(
            1_001_002,
            Some("dave"),
            request("r-00000000000000e1", "INC-1", true),
        ),
        ev(
            1_001_003,
            None,
            grant("g-00000000000000e1", "r-00000000000000e1", "dave", true),
        ),
        ev(1_002_000, Some("alice"), used("g-00000000000000a1", 200)),
        ev(1_002_500, Some("dave"), used("g-00000000000000e1", 502)),
        ev(
            1_002_600,
            None,
            grant("g-00000000000000b1", "r-00000000000000b1", "bob", false),
        ),
        ev(1_002_700, Some("bob"), used("g-00000000000000b1", 200)),
        ev(
            1_003_000,
            Some("carol"),
            EventKind::Review {
                grant: "g-00000000000000e1".parse().unwrap(),
                note: "justified".to_owned(),
                envelope: env(),
            },
        ),
        ev(
            1_004_000,
            Some("carol"),
            EventKind::Revoke {
                grant: "g-00000000000000a1".parse().unwrap(),
                reason: "done".to_owned(),
                envelope: None,
            },
        ),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64, e))
        .collect()
}

#[test]
fn an_incident_gathers_its_requests_grants_approvals_uses_and_reviews_only() {
    let scope = Scope {
        incident: Some("INC-1".to_owned()),
        ..Scope::default()
    };
    let r = Review::build(&log(), &scope);
    assert_eq!(r.requests.len(), 2);
    assert_eq!(r.approvals.len(), 1);
    assert_eq!(r.approvals[0].approver.as_ref().unwrap().as_str(), "carol");
    assert_eq!(
        r.approvals[0].reason.as_deref(),
        Some("reason of r-00000000000000a1")
    );
    let grants: Vec<&str> = r.grants.iter().map(|g| g.grant.as_str()).collect();
    assert_eq!(grants, ["g-00000000000000a1", "g-00000000000000e1"]);
    assert_eq!(r.grants[0].approvers.len(), 1);
    assert_eq!(r.grants[0].uses, 1);
    assert!(
        r.grants[0]
            .end
            .as_ref()
            .unwrap()
            .how
            .contains("revoked by carol")
    );
    assert_eq!(r.bypasses.len(), 1);
    assert_eq!(r.bypasses[0].review.as_ref().unwrap().note, "justified");
    assert_eq!(r.uses.len(), 1);
    assert_eq!(r.uses[0].uses.len(), 2);
    assert_eq!(r.uses[0].by_class.get(&200), Some(&1));
    assert_eq!(r.uses[0].by_class.get(&500), Some(&1));
    // Bob's incident is not in it, in any table or in the proofs.
    assert!(
        !r.indexes.iter().any(|i| [1, 8, 9].contains(i)),
        "{:?}",
        r.indexes
    );
    assert_eq!(r.indexes, [0, 2, 3, 4, 5, 6, 7, 10, 11]);
    assert_eq!(r.timeline.len(), 9);
    // Each line says what happened, as `audit show` does.
    let last = r.timeline.last().unwrap();
    assert_eq!((last.event, last.summary.as_str()), ("revoke", "done"));
    assert!(
        r.timeline[4].summary.contains("EMERGENCY"),
        "{:?}",
        r.timeline[4]
    );
}

#[test]
fn a_responder_and_a_window_narrow_the_scope() {
    let scope = Scope {
        responder: Some("dave".parse().unwrap()),
        until_ms: Some(1_002_000),
        ..Scope::default()
    };
    let r = Review::build(&log(), &scope);
    assert_eq!(r.requests.len(), 1);
    assert_eq!(r.grants.len(), 1);
    // The use and the review came after the window.
    assert!(r.uses.is_empty());
    assert!(r.bypasses[0].review.is_none());
    assert_eq!(r.indexes, [4, 5]);
    assert_eq!(scope.describe().split(", ").count(), 2);
}
