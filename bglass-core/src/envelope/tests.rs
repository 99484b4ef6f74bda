use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::testkit::{check_vectors, outcome};

const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn alice() -> SigningKey {
    SigningKey::from_seed(&[3; 32]).unwrap()
}
fn mallory() -> SigningKey {
    SigningKey::from_seed(&[5; 32]).unwrap()
}
fn proxy_a() -> ProxyId {
    ProxyId::new("proxy-a").unwrap()
}

fn access() -> Action {
    Action::Access(AccessRequest {
        service: ServiceName::new("grafana").unwrap(),
        ttl: Some("30m".parse().unwrap()),
        reason: "dashboards down for region eu".to_owned(),
        incident: "INC-123".to_owned(),
        emergency: false,
        drill: None,
        canary: false,
    })
}

fn payload(key: &SigningKey) -> RequestPayload {
    RequestPayload {
        v: ENVELOPE_VERSION,
        responder: ResponderId::new("alice").unwrap(),
        key: key.public_key(),
        aud: proxy_a(),
        iat: NOW - 5,
        nonce: Nonce::from_bytes([9; 16]),
        action: access(),
    }
}

/// An envelope over arbitrary payload bytes with a valid signature by `key`.
fn seal_raw(payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let sig = key.sign(ENVELOPE_DOMAIN, payload);
    serde_json::to_vec(&json!({
        "payload": wire::b64_encode(payload),
        "sig": wire::b64_encode(&sig),
    }))
    .unwrap()
}

struct Case {
    description: &'static str,
    envelope: Vec<u8>,
    roster_key: Option<PublicKey>,
    connection_key: Option<PublicKey>,
    expect: &'static str,
}

fn case(description: &'static str, envelope: Vec<u8>, expect: &'static str) -> Case {
    Case {
        description,
        envelope,
        roster_key: Some(alice().public_key()),
        connection_key: Some(alice().public_key()),
        expect,
    }
}

fn generate() -> BTreeMap<String, serde_json::Value> {
    let key = alice();
    let valid = seal(&payload(&key), &key).unwrap();
    let mut cases: Vec<(&str, Case)> = Vec::new();
    cases.push((
        "envelope_valid",
        case("a valid access request", valid.clone(), "ok"),
    ));

    let mut p = payload(&key);
    p.iat = NOW - FRESHNESS_SECS - 1;
    cases.push((
        "envelope_expired",
        case("made 301 s ago", seal(&p, &key).unwrap(), "Expired"),
    ));
    let mut p = payload(&key);
    p.iat = NOW + FRESHNESS_SECS + 1;
    cases.push((
        "envelope_not_yet_valid",
        case(
            "made 301 s in the future",
            seal(&p, &key).unwrap(),
            "NotYetValid",
        ),
    ));
    let mut p = payload(&key);
    p.iat = NOW + FRESHNESS_SECS;
    cases.push((
        "envelope_clock_skew_at_limit",
        case(
            "made exactly 300 s in the future",
            seal(&p, &key).unwrap(),
            "ok",
        ),
    ));

    let outer: serde_json::Value = serde_json::from_slice(&valid).unwrap();
    let mut sig = wire::b64_decode(outer["sig"].as_str().unwrap()).unwrap();
    sig[0] ^= 0x80;
    let flipped = json!({ "payload": outer["payload"], "sig": wire::b64_encode(&sig) });
    cases.push((
        "envelope_bad_signature",
        case(
            "one bit of the signature flipped",
            serde_json::to_vec(&flipped).unwrap(),
            "BadSignature",
        ),
    ));
    let m = mallory();
    cases.push((
        "envelope_wrong_signer",
        case(
            "claims to be alice, signed by another key",
            seal(&payload(&m), &m).unwrap(),
            "WrongSigner",
        ),
    ));
    let mut unknown = case(
        "the responder is not in the roster",
        valid.clone(),
        "UnknownResponder",
    );
    unknown.roster_key = None;
    cases.push(("envelope_unknown_responder", unknown));
    let mut p = payload(&key);
    p.aud = ProxyId::new("proxy-b").unwrap();
    cases.push((
        "envelope_wrong_audience",
        case(
            "addressed to another proxy",
            seal(&p, &key).unwrap(),
            "WrongAudience",
        ),
    ));
    let mut bound = case(
        "sent over a TLS connection authenticated with another key",
        valid.clone(),
        "ConnectionKeyMismatch",
    );
    bound.connection_key = Some(mallory().public_key());
    cases.push(("envelope_wrong_bound_key", bound));
    cases.push((
        "envelope_truncated",
        case(
            "the last 20 bytes cut off",
            valid[..valid.len() - 20].to_vec(),
            "Truncated",
        ),
    ));
    let mut short_sig = wire::b64_decode(outer["sig"].as_str().unwrap()).unwrap();
    short_sig.truncate(40);
    let short = json!({ "payload": outer["payload"], "sig": wire::b64_encode(&short_sig) });
    cases.push((
        "envelope_truncated_signature",
        case(
            "a 40-byte signature",
            serde_json::to_vec(&short).unwrap(),
            "Truncated",
        ),
    ));
    let mut trailing = valid.clone();
    trailing.extend_from_slice(b"{}");
    cases.push((
        "envelope_trailing_bytes",
        case(
            "a second JSON value after the envelope",
            trailing,
            "TrailingBytes",
        ),
    ));
    let mut body = serde_json::to_vec(&payload(&key)).unwrap();
    body.extend_from_slice(b"xx");
    cases.push((
        "envelope_trailing_bytes_payload",
        case(
            "signed payload with bytes after the JSON",
            seal_raw(&body, &key),
            "TrailingBytes",
        ),
    ));
    let mut value = serde_json::to_value(payload(&key)).unwrap();
    value["v"] = json!(2);
    cases.push((
        "envelope_wrong_version",
        case(
            "payload version 2",
            seal_raw(&serde_json::to_vec(&value).unwrap(), &key),
            "UnsupportedVersion",
        ),
    ));
    let mut value = serde_json::to_value(payload(&key)).unwrap();
    value["role"] = json!("admin");
    cases.push((
        "envelope_unknown_field",
        case(
            "signed payload with a field this version does not know",
            seal_raw(&serde_json::to_vec(&value).unwrap(), &key),
            "Malformed",
        ),
    ));
    let mut value = serde_json::to_value(payload(&key)).unwrap();
    value["action"]["access"]["reason"] = json!("");
    cases.push((
        "envelope_empty_reason",
        case(
            "an access request with an empty reason",
            seal_raw(&serde_json::to_vec(&value).unwrap(), &key),
            "BadText",
        ),
    ));
    cases.push((
        "envelope_too_large",
        case(
            "over the size limit",
            vec![b' '; MAX_ENVELOPE_BYTES + 1],
            "TooLarge",
        ),
    ));

    let mut out = BTreeMap::new();
    for (name, c) in cases {
        out.insert(
            name.to_owned(),
            json!({
                "description": c.description,
                "audience": "proxy-a",
                "now": NOW,
                "roster_key": c.roster_key.map(|k| k.to_string()),
                "connection_key": c.connection_key.map(|k| k.to_string()),
                "envelope": String::from_utf8(c.envelope).unwrap(),
                "expect": c.expect,
            }),
        );
    }
    out
}

fn run(vector: &serde_json::Value) -> String {
    let key = |k: &str| vector[k].as_str().map(|s| s.parse::<PublicKey>().unwrap());
    let result = DecodedEnvelope::decode(vector["envelope"].as_str().unwrap().as_bytes()).and_then(
        |decoded| {
            decoded.verify(
                key("roster_key").as_ref(),
                key("connection_key").as_ref(),
                &ProxyId::new(vector["audience"].as_str().unwrap()).unwrap(),
                vector["now"].as_u64().unwrap(),
            )
        },
    );
    outcome(result)
}

#[test]
fn envelope_vectors() {
    // The named failures of the issue each have a vector and a distinct variant.
    check_vectors(
        "envelope",
        &generate(),
        run,
        &[
            "ok",
            "Expired",
            "NotYetValid",
            "BadSignature",
            "WrongSigner",
            "WrongAudience",
            "ConnectionKeyMismatch",
            "Truncated",
            "UnsupportedVersion",
            "TrailingBytes",
        ],
    );
}

#[test]
fn verified_envelope_keeps_the_exact_signed_bytes() {
    let key = alice();
    let sealed = seal(&payload(&key), &key).unwrap();
    let verified = DecodedEnvelope::decode(&sealed)
        .unwrap()
        .verify(Some(&key.public_key()), None, &proxy_a(), NOW)
        .unwrap();
    assert_eq!(verified.payload(), &payload(&key));
    let original: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    assert_eq!(verified.to_json(), original);
    // An auditor can re-verify the stored form offline.
    let again = serde_json::to_vec(&verified.to_json()).unwrap();
    assert!(
        DecodedEnvelope::decode(&again)
            .unwrap()
            .verify(Some(&key.public_key()), None, &proxy_a(), NOW)
            .is_ok()
    );
}

#[test]
fn seal_refuses_a_key_that_is_not_the_payloads() {
    assert!(matches!(
        seal(&payload(&alice()), &mallory()),
        Err(EnvelopeError::WrongSigner { .. })
    ));
}

#[test]
fn replay_guard_refuses_reuse_and_forgets_after_the_window() {
    let key = alice();
    let verify = |p: &RequestPayload, now| {
        DecodedEnvelope::decode(&seal(p, &key).unwrap())
            .unwrap()
            .verify(Some(&key.public_key()), None, &proxy_a(), now)
            .unwrap()
    };
    let mut guard = ReplayGuard::new(2);
    let first = verify(&payload(&key), NOW);
    guard.check(&first, NOW).unwrap();
    assert_eq!(guard.check(&first, NOW + 1), Err(EnvelopeError::Replayed));

    let mut p = payload(&key);
    p.nonce = Nonce::from_bytes([10; 16]);
    guard.check(&verify(&p, NOW), NOW).unwrap();
    let mut p = payload(&key);
    p.nonce = Nonce::from_bytes([11; 16]);
    // Full: refuse rather than forget a nonce early.
    assert_eq!(
        guard.check(&verify(&p, NOW), NOW),
        Err(EnvelopeError::ReplayGuardFull)
    );
    // Once no envelope of that age can be fresh, its nonce is forgotten.
    let later = NOW + 2 * FRESHNESS_SECS + 10;
    guard.record(&p.responder, p.nonce, later, later).unwrap();
    assert_eq!(guard.len(), 1);
}

#[test]
fn replay_guard_quota_keeps_one_responder_from_filling_it() {
    let mut guard = ReplayGuard::with_quota(10, 2);
    let mallory = ResponderId::new("mallory").unwrap();
    let alice = ResponderId::new("alice").unwrap();
    guard
        .record(&mallory, Nonce::from_bytes([1; 16]), NOW, NOW)
        .unwrap();
    guard
        .record(&mallory, Nonce::from_bytes([2; 16]), NOW, NOW)
        .unwrap();
    assert_eq!(
        guard.record(&mallory, Nonce::from_bytes([3; 16]), NOW, NOW),
        Err(EnvelopeError::ReplayQuota {
            responder: mallory.clone()
        })
    );
    // Another responder is unaffected.
    guard
        .record(&alice, Nonce::from_bytes([3; 16]), NOW, NOW)
        .unwrap();
    // Once the window passes, mallory's quota is free again.
    let later = NOW + 2 * FRESHNESS_SECS + 10;
    guard
        .record(&mallory, Nonce::from_bytes([4; 16]), later, later)
        .unwrap();
    assert_eq!(guard.len(), 1);
}
