//! Signed fixtures for the policy check's tests and benchmark: responders with keys from
//! fixed seeds, their roster, and envelopes they sign. One file shared by the core's tests,
//! its benchmark (`benches/audit_policy.rs`) and the end-to-end tests (`bglass_tests`),
//! each including it, so the three build logs the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bglass_core::audit::event::StoredEnvelope;
use bglass_core::envelope::{Action, ENVELOPE_VERSION, Nonce, RequestPayload, seal};
use bglass_core::id::{ProxyId, ResponderId};
use bglass_core::keys::SigningKey;
use bglass_core::roster::{Responder, Role};

/// A catalog with `argocd` (one approval, a 2 h maximum, a 10 min emergency bypass) and
/// `grafana` (no approval).
pub const CATALOG: &str = r#"version = 1

[[service]]
name = "argocd"
kind = "http"
description = "Deploys"
upstream = "127.0.0.1:8080"
max_ttl = "2h"
default_ttl = "30m"
approvals = 1
emergency_bypass = true
emergency_ttl = "10m"
health = { path = "/", expect_status = 200 }

[[service]]
name = "grafana"
kind = "http"
description = "Dashboards"
upstream = "127.0.0.1:8080"
max_ttl = "4h"
default_ttl = "1h"
approvals = 0
health = { path = "/", expect_status = 200 }
"#;

/// The key of seed `seed`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32]).unwrap()
}

/// A roster (`responders.toml`) of `(id, key seed, roles)`.
pub fn roster(entries: &[(&str, u8, &[Role])]) -> String {
    entries
        .iter()
        .map(|(id, seed, roles)| {
            Responder {
                id: ResponderId::new(id).unwrap(),
                name: (*id).to_owned(),
                key: key(*seed).public_key(),
                roles: roles.to_vec(),
            }
            .to_toml()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An envelope `who` signs with the key of `seed`, for `proxy`, at `time_ms`, with a nonce
/// made from `nonce`.
pub fn signed(
    who: &str,
    seed: u8,
    proxy: &str,
    time_ms: u64,
    nonce: u8,
    action: Action,
) -> StoredEnvelope {
    let payload = RequestPayload {
        v: ENVELOPE_VERSION,
        responder: ResponderId::new(who).unwrap(),
        key: key(seed).public_key(),
        aud: ProxyId::new(proxy).unwrap(),
        iat: time_ms / 1000,
        nonce: Nonce::from_bytes([nonce; 16]),
        action,
    };
    serde_json::from_slice(&seal(&payload, &key(seed)).unwrap()).unwrap()
}
