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
        EventKind::ProxyStart {
            key: SigningKey::from_seed(&[1; 32]).unwrap().public_key(),
            version: "v".to_owned(),
            catalog: "c".to_owned(),
            roster: "r".to_owned(),
            recovered: None,
        },
        EventKind::ProxyStop {
            reason: "signal".to_owned(),
        },
        EventKind::ConfigReload {
            file: "catalog".to_owned(),
            accepted: true,
            digest: None,
            error: None,
        },
        EventKind::DrillResult {
            summary: serde_json::json!({"ok": true}),
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
