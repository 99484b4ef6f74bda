//! Tests of the policy: what replay skips, and the rules of the decisions.

use super::*;
use crate::audit::event::{Event, EventKind, peek_kind};
use crate::id::{GrantId, ProxyId, ServiceName};
use crate::keys::SigningKey;

fn event(kind: EventKind) -> Event {
    Event {
        v: crate::audit::event::EVENT_VERSION,
        time_ms: 1_767_225_600_000,
        proxy: ProxyId::new("proxy-a").unwrap(),
        actor: Some(ResponderId::new("alice").unwrap()),
        drill: Some("d1".to_owned()),
        event: kind,
    }
}

#[test]
fn the_kinds_replay_skips_never_change_the_state() {
    let grant = GrantId::new("g-0000000000000001").unwrap();
    let service = ServiceName::new("grafana").unwrap();
    let kinds = [
        EventKind::Use {
            grant: grant.clone(),
            service: service.clone(),
            method: "GET".to_owned(),
            path: "/".to_owned(),
            status: 200,
            bytes_in: 0,
            bytes_out: 1,
            duration_ms: 1,
            start: Some(6),
        },
        EventKind::UseStart {
            grant: grant.clone(),
            service: service.clone(),
            method: "GET".to_owned(),
            path: "/".to_owned(),
        },
        EventKind::SshCertificate {
            grant: grant.clone(),
            service: service.clone(),
            key: "SHA256:x".to_owned(),
            serial: 1,
            principals: vec!["p".to_owned()],
            valid_before: 1,
        },
        EventKind::TunnelOpen {
            grant: grant.clone(),
            service: service.clone(),
            tunnel: 1,
        },
        EventKind::TunnelClose {
            grant: grant.clone(),
            service: service.clone(),
            tunnel: 1,
            bytes_up: 1,
            bytes_down: 1,
            reason: "eof".to_owned(),
        },
        EventKind::ProxyStop {
            reason: "signal".to_owned(),
        },
        EventKind::DrillResult {
            summary: crate::drill::DrillSummary::default(),
        },
        EventKind::LogRollback {
            published_size: 2,
            published_root: "r".to_owned(),
            size: 1,
            detail: "d".to_owned(),
        },
        EventKind::LogFailed {
            error: "No space left on device".to_owned(),
        },
        EventKind::LogRecovered {
            failed_ms: 1,
            error: "No space left on device".to_owned(),
        },
        EventKind::StorageLow {
            free_bytes: 1,
            threshold_bytes: 2,
        },
        EventKind::StorageOk { free_bytes: 3 },
    ];
    let mut names: Vec<&str> = kinds.iter().map(EventKind::type_name).collect();
    names.sort_unstable();
    let mut ignored = REPLAY_IGNORES.to_vec();
    ignored.sort_unstable();
    assert_eq!(names, ignored, "every skipped kind is checked here");
    for kind in kinds {
        let event = event(kind);
        let mut state = State::new();
        let before = format!("{state:?}");
        state.apply(7, &event);
        assert_eq!(format!("{state:?}"), before, "{}", event.event.type_name());
        // And replay recognises it without parsing.
        let bytes = event.to_bytes().unwrap();
        assert_eq!(peek_kind(&bytes), Some(event.event.type_name()));
        assert!(state.replay(7, &bytes).is_ok());
    }
    // A kind that changes the state is parsed, and a malformed one refused.
    let mut state = State::new();
    assert!(
        state
            .replay(
                0,
                b"{\"v\":1,\"time_ms\":1,\"proxy\":\"p\",\"actor\":null,\"event\":{\"grant\":{}}}"
            )
            .is_err()
    );
    assert!(state.replay(0, b"not json").is_err());
}

#[test]
fn replay_remembers_the_catalog_and_roster_last_put_in_force() {
    let mut state = State::new();
    let start = event(EventKind::ProxyStart {
        key: SigningKey::from_seed(&[1; 32]).unwrap().public_key(),
        version: "v".to_owned(),
        catalog: "c1".to_owned(),
        roster: "r1".to_owned(),
        recovered: None,
    });
    state.replay(0, &start.to_bytes().unwrap()).unwrap();
    let reload = |accepted: bool, digest: &str| {
        event(EventKind::ConfigReload {
            file: "roster".to_owned(),
            accepted,
            digest: accepted.then(|| digest.to_owned()),
            error: (!accepted).then(|| "no".to_owned()),
            signers: Vec::new(),
            changes: Vec::new(),
        })
    };
    state
        .replay(1, &reload(true, "r2").to_bytes().unwrap())
        .unwrap();
    state
        .replay(2, &reload(false, "r3").to_bytes().unwrap())
        .unwrap();
    assert_eq!(
        state.in_force,
        PolicyInForce {
            catalog: Some("c1".to_owned()),
            roster: Some("r2".to_owned())
        }
    );
}

/// A grant event with a real token (apply reads the claims from the token).
fn grant_event(time_ms: u64) -> (GrantId, Event) {
    let key = SigningKey::from_seed(&[1; 32]).unwrap();
    let grant = GrantId::new("g-0000000000000001").unwrap();
    let claims = crate::grant::GrantClaims {
        id: grant.clone(),
        iss: ProxyId::new("proxy-a").unwrap(),
        kid: key.public_key().key_id(),
        sub: ResponderId::new("alice").unwrap(),
        key: SigningKey::from_seed(&[3; 32]).unwrap().public_key(),
        svc: ServiceName::new("grafana").unwrap(),
        req: crate::id::RequestId::new("r-0000000000000001").unwrap(),
        iat: time_ms / 1000,
        nbf: time_ms / 1000,
        exp: time_ms / 1000 + 3600,
        emergency: false,
        drill: None,
        canary: false,
    };
    let kind = EventKind::Grant {
        grant: grant.clone(),
        request: claims.req.clone(),
        responder: claims.sub.clone(),
        service: claims.svc.clone(),
        nbf: claims.nbf,
        exp: claims.exp,
        emergency: false,
        token: crate::grant::issue(&claims, &key).unwrap(),
    };
    let mut e = event(kind);
    e.time_ms = time_ms;
    e.drill = None;
    (grant, e)
}

/// The proxy applies an event it recorded itself (the revocation of a holder who left the
/// roster) once it is durable, so a revocation decided meanwhile can be applied first,
/// while the log holds them in the other order. A restart must rebuild the same grant.
#[test]
fn replay_rebuilds_the_revocation_time_whatever_order_revocations_were_applied_live() {
    let t0 = 1_767_225_600_000;
    let (grant, granted) = grant_event(t0);
    let revoke = |time_ms: u64, actor: Option<&str>| {
        let mut e = event(EventKind::Revoke {
            grant: grant.clone(),
            reason: "r".to_owned(),
            envelope: None,
        });
        e.time_ms = time_ms;
        e.actor = actor.map(|a| ResponderId::new(a).unwrap());
        e.drill = None;
        e
    };
    // The log: the roster task's revocation first, the approver's 30 s later.
    let departed = revoke(t0 + 1_000, None);
    let by_approver = revoke(t0 + 31_000, Some("bob"));
    let log = [&granted, &departed, &by_approver];

    let mut live = State::new();
    live.apply(0, &granted);
    live.apply(2, &by_approver);
    live.apply(1, &departed);

    let mut replayed = State::new();
    for (index, e) in log.iter().enumerate() {
        replayed
            .replay(index as u64, &e.to_bytes().unwrap())
            .unwrap();
    }
    assert_eq!(replayed.grants[&grant].revoked_ms, Some(t0 + 1_000));
    assert_eq!(
        replayed.grants[&grant].revoked,
        Some((None, "r".to_owned()))
    );
    assert_eq!(live.grants[&grant].revoked, replayed.grants[&grant].revoked);
    assert_eq!(
        live.grants[&grant].revoked_ms,
        replayed.grants[&grant].revoked_ms
    );
}

/// A grant that ended says how: revoked (when, by whom or by the proxy, why), expired
/// (when, how long ago); and revocations in the same millisecond resolve to the same one in
/// whatever order they are applied.
#[test]
fn an_ended_grant_says_when_by_whom_and_why() {
    let t0 = 1_767_225_600_000;
    let (grant, granted) = grant_event(t0);
    let revoke = |time_ms: u64, actor: Option<&str>, reason: &str| {
        let mut e = event(EventKind::Revoke {
            grant: grant.clone(),
            reason: reason.to_owned(),
            envelope: None,
        });
        e.time_ms = time_ms;
        e.actor = actor.map(|a| ResponderId::new(a).unwrap());
        e.drill = None;
        e
    };
    let mut state = State::new();
    state.apply(0, &granted);
    assert_eq!(state.grants[&grant].ended(t0 + 1_000), None, "active");

    // Expired: an hour after t0.
    let late = state.grants[&grant]
        .ended(t0 + 3_600_000 + 180_000)
        .unwrap();
    assert_eq!(late.code, "expired_grant");
    assert_eq!(
        late.message,
        "g-0000000000000001 expired at 2026-01-01T01:00:00Z (3 min ago)"
    );

    // Revoked by an approver, then (same millisecond) by the proxy's roster task.
    let by_bob = revoke(t0 + 60_000, Some("bob"), "incident over");
    let by_proxy = revoke(t0 + 60_000, None, "alice left the roster");
    let mut one = State::new();
    one.apply(0, &granted);
    one.apply(1, &by_bob);
    one.apply(2, &by_proxy);
    let mut other = State::new();
    other.apply(0, &granted);
    other.apply(2, &by_proxy);
    other.apply(1, &by_bob);
    assert_eq!(one.grants[&grant].revoked, other.grants[&grant].revoked);
    let ended = one.grants[&grant].ended(t0 + 61_000).unwrap();
    assert_eq!(ended.code, "revoked_grant");
    assert_eq!(
        ended.message,
        "g-0000000000000001 was revoked at 2026-01-01T00:01:00Z by the proxy: alice left the roster"
    );

    let mut single = State::new();
    single.apply(0, &granted);
    single.apply(1, &by_bob);
    let ended = single.grants[&grant].ended(t0 + 61_000).unwrap();
    assert_eq!(
        ended.message,
        "g-0000000000000001 was revoked at 2026-01-01T00:01:00Z by bob: incident over"
    );
    assert!(ended.hint.unwrap().contains("bglass access grafana"));
}

/// The proxy applies the expiry it records itself once it is durable, but a withdrawal or
/// a denial it decides at once, so these can be applied in the opposite order from the
/// log's. The earlier end must win either way, so that a restart rebuilds the live state
/// (found by the `policy` fuzz target).
#[test]
fn the_earlier_end_of_a_request_wins_whatever_order_the_ends_were_applied() {
    let t0 = 1_767_225_600_000;
    let id = crate::id::RequestId::new("r-0000000000000001").unwrap();
    let alice = ResponderId::new("alice").unwrap();
    let pending = || {
        let mut state = State::new();
        state.pending.insert(1, id.clone());
        state.requests.insert(
            id.clone(),
            RequestRec {
                id: id.clone(),
                responder: alice.clone(),
                access: crate::envelope::AccessRequest {
                    service: ServiceName::new("grafana").unwrap(),
                    ttl: None,
                    reason: "r".to_owned(),
                    incident: "INC-1".to_owned(),
                    emergency: false,
                    drill: None,
                    canary: false,
                },
                ttl_secs: 900,
                created_ms: t0,
                approved_by: Vec::new(),
                status: RequestStatus::Pending,
                ended_ms: 0,
                drill: None,
                seq: 1,
            },
        );
        state
    };
    let end = |reason: &str, time_ms: u64, actor: Option<&str>| {
        let mut e = event(EventKind::Denial {
            reason: reason.to_owned(),
            detail: String::new(),
            request: Some(id.clone()),
            service: None,
            grant: None,
            envelope: None,
        });
        e.time_ms = time_ms;
        e.actor = actor.map(|a| ResponderId::new(a).unwrap());
        e.drill = None;
        e
    };
    let expired = end(REQUEST_EXPIRED, t0 + 3_600_000, Some("alice"));
    let withdrawn = end(CANCELLED_BY_REQUESTER, t0 + 3_600_500, Some("alice"));
    let denied = end(DENIED_BY_APPROVER, t0 + 3_600_700, Some("bob"));
    for order in [
        [&expired, &withdrawn, &denied],
        [&withdrawn, &expired, &denied],
        [&denied, &withdrawn, &expired],
        [&withdrawn, &denied, &expired],
    ] {
        let mut state = pending();
        for (index, e) in order.iter().enumerate() {
            state.apply(index as u64, e);
        }
        assert_eq!(state.requests[&id].status, RequestStatus::Expired);
        assert_eq!(state.requests[&id].ended_ms, t0 + 3_600_000);
        assert!(state.pending.is_empty());
    }
    // A withdrawal by anyone but the requester ends nothing.
    let mut state = pending();
    state.apply(0, &end(CANCELLED_BY_REQUESTER, t0, Some("bob")));
    assert_eq!(state.requests[&id].status, RequestStatus::Pending);
}
