//! A console model with realistic data for the snapshot and key tests: the example
//! catalog's 18 tools, two proxies, requests waiting, grants held and revoked.

use bglass_core::api::{GrantView, RequestView, ServiceStatus};

use super::model::{Event, Model, PollOutcome, ProxyData};

/// The tests' clock: 2027-01-15T08:00:00Z.
pub const NOW_MS: u64 = 1_800_000_000_000;

const TOOLS: &[(&str, &str, u8, bool)] = &[
    ("grafana", "http", 0, false),
    ("prometheus", "http", 0, false),
    ("alertmanager", "http", 0, false),
    ("logs", "http", 0, false),
    ("tracing", "http", 0, false),
    ("clickhouse", "http", 0, false),
    ("statuspage", "http", 0, false),
    ("kubernetes-api", "http", 1, true),
    ("argocd", "http", 1, false),
    ("config-api", "http", 1, false),
    ("feature-flags", "http", 1, false),
    ("dns-control", "http", 1, true),
    ("vault", "http", 2, false),
    ("bastion", "ssh", 1, true),
    ("edge-router", "ssh", 1, false),
    ("core-host", "ssh", 1, false),
    ("postgres-control", "tcp", 1, false),
    ("etcd", "tcp", 1, false),
];

fn services() -> Vec<ServiceStatus> {
    TOOLS
        .iter()
        .map(|(name, kind, approvals, bypass)| {
            let down = *name == "clickhouse";
            serde_json::from_value(serde_json::json!({
                "name": name, "kind": kind, "approvals": approvals,
                "emergency_bypass": bypass,
                "health": if down { "down" } else { "up" },
                "detail": if down { Some("connection refused") } else { None },
            }))
            .unwrap_or_else(|e| unreachable!("fixture service: {e}"))
        })
        .collect()
}

/// A request made `ago_s` seconds before [`NOW_MS`].
pub fn request(id: &str, who: &str, service: &str, ago_s: u64, reason: &str) -> RequestView {
    serde_json::from_value(serde_json::json!({
        "id": id, "responder": who, "service": service, "ttl_secs": 1800,
        "reason": reason, "incident": "INC-4711", "emergency": false,
        "status": "pending", "approved_by": [], "approvals_needed": 1,
        "created_ms": NOW_MS - ago_s * 1000, "seq": 1,
    }))
    .unwrap_or_else(|e| unreachable!("fixture request: {e}"))
}

/// A grant issued `ago_s` seconds before [`NOW_MS`] for `ttl_s` seconds.
pub fn grant(id: &str, who: &str, service: &str, ago_s: u64, ttl_s: u64, state: &str) -> GrantView {
    let nbf = NOW_MS / 1000 - ago_s;
    serde_json::from_value(serde_json::json!({
        "id": id, "responder": who, "service": service,
        "request": "r-00000000000000aa", "nbf": nbf, "exp": nbf + ttl_s,
        "emergency": false, "state": state,
    }))
    .unwrap_or_else(|e| unreachable!("fixture grant: {e}"))
}

/// Proxy `id`'s answer with the fixture's catalog, requests and grants.
pub fn data(id: &str) -> ProxyData {
    ProxyData {
        id: id.to_owned(),
        roles: vec!["responder".to_owned(), "approver".to_owned()],
        log_size: 4812,
        audit_failure: None,
        services: services(),
        requests: vec![
            request(
                "r-3f2a9c0d1e2b4a6c",
                "bob",
                "kubernetes-api",
                42,
                "pods crashlooping in eu-west",
            ),
            request(
                "r-77aa01bc9d3e5f10",
                "alice",
                "vault",
                95,
                "rotate the leaked token",
            ),
        ],
        grants: vec![
            grant(
                "g-1c2d3e4f5a6b7c8d",
                "alice",
                "grafana",
                600,
                1800,
                "active",
            ),
            grant("g-0a0b0c0d0e0f1011", "alice", "bastion", 300, 900, "active"),
            grant("g-9e8d7c6b5a4f3e2d", "carol", "argocd", 200, 1800, "active"),
            grant(
                "g-5555666677778888",
                "alice",
                "dns-control",
                3000,
                1800,
                "revoked",
            ),
        ],
        drill: None,
    }
}

/// Alice (responder and approver) with two proxies that both answered just now.
pub fn model(color: bool) -> Model {
    let mut m = Model::new(
        "alice".parse().unwrap_or_else(|e| unreachable!("{e}")),
        vec![
            "https://proxy-a.example:8443".to_owned(),
            "https://proxy-b.example:8443".to_owned(),
        ],
        NOW_MS,
        color,
    );
    for (i, id) in ["proxy-a", "proxy-b"].iter().enumerate() {
        let mut d = data(id);
        if i == 1 {
            // The second proxy holds nothing of the above (requests live where they were made).
            d.requests.clear();
            d.grants.clear();
        }
        m.update(Event::Polled {
            proxy: i,
            at_ms: NOW_MS - 1000,
            outcome: PollOutcome::Answered {
                data: Box::new(d),
                latency_ms: 12 + 30 * i as u64,
                checkpoint_size: Some(4812),
                checkpoint_checked: true,
            },
        });
    }
    m
}

/// The same model after both proxies stopped answering 40 s ago (fail stale).
pub fn stale_model() -> Model {
    let mut m = model(true);
    for i in 0..2 {
        m.update(Event::Polled {
            proxy: i,
            at_ms: NOW_MS + 39_000,
            outcome: PollOutcome::Failed {
                why: "connection refused: is bglass-proxy running?".to_owned(),
                split_view: false,
            },
        });
    }
    m.update(Event::Tick(NOW_MS + 41_000));
    m
}
