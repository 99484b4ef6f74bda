use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::testkit::{check_vectors, outcome};

const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn proxy_key() -> SigningKey {
    SigningKey::from_seed(&[1; 32]).unwrap()
}
fn other_proxy_key() -> SigningKey {
    SigningKey::from_seed(&[2; 32]).unwrap()
}
fn responder_key() -> PublicKey {
    SigningKey::from_seed(&[3; 32]).unwrap().public_key()
}
fn other_responder_key() -> PublicKey {
    SigningKey::from_seed(&[4; 32]).unwrap().public_key()
}
fn proxy_id() -> ProxyId {
    ProxyId::new("proxy-a").unwrap()
}
fn grafana() -> ServiceName {
    ServiceName::new("grafana").unwrap()
}

fn claims(signer: &SigningKey) -> GrantClaims {
    GrantClaims {
        id: GrantId::new("g-00000000000000a1").unwrap(),
        iss: proxy_id(),
        kid: signer.public_key().key_id(),
        sub: ResponderId::new("alice").unwrap(),
        key: responder_key(),
        svc: grafana(),
        req: RequestId::new("r-00000000000000b2").unwrap(),
        iat: NOW - 60,
        nbf: NOW - 60,
        exp: NOW + 1800,
        emergency: false,
        drill: None,
        canary: false,
    }
}

fn token(claims: &GrantClaims, signer: &SigningKey) -> String {
    issue(claims, signer).unwrap()
}

/// A token with a valid signature over arbitrary payload bytes.
fn token_over(payload: &[u8], signer: &SigningKey) -> String {
    let sig = signer.sign(GRANT_DOMAIN, payload);
    format!(
        "bg1.{}.{}",
        wire::b64_encode(payload),
        wire::b64_encode(&sig)
    )
}

struct Case {
    description: &'static str,
    token: String,
    now: u64,
    service: ServiceName,
    presented: PublicKey,
    expect: &'static str,
}

fn case(description: &'static str, token: String, expect: &'static str) -> Case {
    Case {
        description,
        token,
        now: NOW,
        service: grafana(),
        presented: responder_key(),
        expect,
    }
}

fn generate() -> BTreeMap<String, serde_json::Value> {
    let key = proxy_key();
    let valid = token(&claims(&key), &key);
    let (head, sig) = valid.rsplit_once('.').unwrap();
    let mut cases: Vec<(&str, Case)> = Vec::new();

    cases.push(("grant_valid", case("a valid grant", valid.clone(), "ok")));
    let mut c = claims(&key);
    c.exp = NOW - 31;
    cases.push((
        "grant_expired",
        case(
            "expired 31 s ago, beyond the 30 s skew",
            token(&c, &key),
            "Expired",
        ),
    ));
    let mut c = claims(&key);
    c.exp = NOW - 10;
    cases.push((
        "grant_expired_within_skew",
        case(
            "expired 10 s ago, within the 30 s skew",
            token(&c, &key),
            "ok",
        ),
    ));
    let mut c = claims(&key);
    c.nbf = NOW + 120;
    c.exp = NOW + 1800;
    cases.push((
        "grant_not_yet_valid",
        case("starts in 120 s", token(&c, &key), "NotYetValid"),
    ));
    // Flip one bit of the signature.
    let mut sig_bytes = wire::b64_decode(sig).unwrap();
    sig_bytes[10] ^= 0x01;
    cases.push((
        "grant_bad_signature",
        case(
            "one bit of the signature flipped",
            format!("{head}.{}", wire::b64_encode(&sig_bytes)),
            "BadSignature",
        ),
    ));
    let other = other_proxy_key();
    cases.push((
        "grant_wrong_signer",
        case(
            "signed by another proxy's key",
            token(&claims(&other), &other),
            "WrongSigner",
        ),
    ));
    let mut c = claims(&key);
    c.iss = ProxyId::new("proxy-b").unwrap();
    cases.push((
        "grant_wrong_issuer",
        case(
            "signed by this key but naming another issuer",
            token(&c, &key),
            "WrongIssuer",
        ),
    ));
    let mut wrong_service = case(
        "presented for another service",
        valid.clone(),
        "WrongService",
    );
    wrong_service.service = ServiceName::new("argocd").unwrap();
    cases.push(("grant_wrong_service", wrong_service));
    let mut wrong_key = case(
        "presented over a connection with another client key",
        valid.clone(),
        "WrongBoundKey",
    );
    wrong_key.presented = other_responder_key();
    cases.push(("grant_wrong_bound_key", wrong_key));
    cases.push((
        "grant_truncated",
        case(
            "the last 10 characters cut off",
            valid[..valid.len() - 10].to_owned(),
            "Truncated",
        ),
    ));
    cases.push((
        "grant_truncated_no_signature",
        case("the signature part missing", head.to_owned(), "Truncated"),
    ));
    cases.push((
        "grant_wrong_version_prefix",
        case(
            "bg2 prefix",
            valid.replacen("bg1.", "bg2.", 1),
            "WrongVersion",
        ),
    ));
    cases.push((
        "grant_no_prefix",
        case(
            "a bare JWT-like token",
            valid.trim_start_matches("bg1.").to_owned(),
            "WrongVersion",
        ),
    ));
    cases.push((
        "grant_trailing_bytes",
        case(
            "an extra part after the signature",
            format!("{valid}.AA"),
            "TrailingBytes",
        ),
    ));
    let mut long_sig = wire::b64_decode(sig).unwrap();
    long_sig.push(0);
    cases.push((
        "grant_trailing_bytes_signature",
        case(
            "a byte after the 64-byte signature",
            format!("{head}.{}", wire::b64_encode(&long_sig)),
            "TrailingBytes",
        ),
    ));
    let mut payload = serde_json::to_vec(&claims(&key)).unwrap();
    payload.extend_from_slice(b" {}");
    cases.push((
        "grant_trailing_bytes_payload",
        case(
            "signed payload with a second JSON value after the claims",
            token_over(&payload, &key),
            "TrailingBytes",
        ),
    ));
    let mut value = serde_json::to_value(claims(&key)).unwrap();
    value["admin"] = json!(true);
    cases.push((
        "grant_unknown_claim",
        case(
            "signed payload with a claim this version does not know",
            token_over(&serde_json::to_vec(&value).unwrap(), &key),
            "Malformed",
        ),
    ));
    cases.push((
        "grant_malformed_base64",
        case(
            "payload is not base64url",
            "bg1.!!!!.AAAA".to_owned(),
            "Malformed",
        ),
    ));
    cases.push((
        "grant_too_large",
        case(
            "over the size limit",
            format!("bg1.{}.AAAA", "A".repeat(MAX_GRANT_BYTES)),
            "TooLarge",
        ),
    ));

    let mut out = BTreeMap::new();
    for (name, c) in cases {
        out.insert(
            name.to_owned(),
            json!({
                "description": c.description,
                "issuer": "proxy-a",
                "issuer_key": key.public_key().to_string(),
                "now": c.now,
                "service": c.service.as_str(),
                "presented_key": c.presented.to_string(),
                "token": c.token,
                "expect": c.expect,
            }),
        );
    }
    out
}

fn run(vector: &serde_json::Value) -> String {
    let s = |k: &str| vector[k].as_str().unwrap().to_owned();
    let verifier = GrantVerifier::new(
        ProxyId::new(&s("issuer")).unwrap(),
        s("issuer_key").parse().unwrap(),
    );
    let result = verifier.verify(
        &s("token"),
        vector["now"].as_u64().unwrap(),
        &ServiceName::new(&s("service")).unwrap(),
        &s("presented_key").parse().unwrap(),
    );
    outcome(result)
}

#[test]
fn grant_vectors() {
    // The named failures of the issue each have a vector and a distinct variant.
    check_vectors(
        "grant",
        &generate(),
        run,
        &[
            "ok",
            "Expired",
            "NotYetValid",
            "BadSignature",
            "WrongSigner",
            "WrongService",
            "WrongBoundKey",
            "Truncated",
            "WrongVersion",
            "TrailingBytes",
        ],
    );
}

#[test]
fn issued_grants_verify_and_expose_claims() {
    let key = proxy_key();
    let c = claims(&key);
    let verifier = GrantVerifier::new(proxy_id(), key.public_key());
    let verified = verifier
        .verify(&token(&c, &key), NOW, &grafana(), &responder_key())
        .unwrap();
    assert_eq!(verified.claims(), &c);
    assert!(verified.is_live(NOW));
    assert!(!verified.is_live(NOW + 1800 + DEFAULT_SKEW_SECS));
    assert_eq!(verified.remaining_secs(NOW), 1800);
}

#[test]
fn grants_of_a_key_before_a_rotation_verify_only_when_that_key_is_listed() {
    let (old, new) = (proxy_key(), other_proxy_key());
    let before = token(&claims(&old), &old);
    let plain = GrantVerifier::new(proxy_id(), new.public_key());
    assert!(matches!(
        plain.verify(&before, NOW, &grafana(), &responder_key()),
        Err(GrantVerifyError::WrongSigner { .. })
    ));
    let rotated = plain.with_previous([old.public_key()]);
    assert!(
        rotated
            .verify(&before, NOW, &grafana(), &responder_key())
            .is_ok()
    );
    assert!(
        rotated
            .verify(
                &token(&claims(&new), &new),
                NOW,
                &grafana(),
                &responder_key()
            )
            .is_ok()
    );
    // The old key id with a signature by another key: still refused.
    let mut forged = claims(&old);
    forged.kid = old.public_key().key_id();
    let third = SigningKey::from_seed(&[9; 32]).unwrap();
    let payload = serde_json::to_vec(&forged).unwrap();
    assert!(matches!(
        rotated.verify(
            &token_over(&payload, &third),
            NOW,
            &grafana(),
            &responder_key()
        ),
        Err(GrantVerifyError::BadSignature)
    ));
}

#[test]
fn issue_refuses_bad_windows_and_foreign_kids() {
    let key = proxy_key();
    let mut c = claims(&key);
    c.exp = c.nbf;
    assert!(matches!(
        issue(&c, &key),
        Err(GrantIssueError::BadWindow { .. })
    ));
    let mut c = claims(&key);
    c.exp = c.nbf + MAX_GRANT_SECS + 1;
    assert!(matches!(
        issue(&c, &key),
        Err(GrantIssueError::BadWindow { .. })
    ));
    let c = claims(&other_proxy_key());
    assert!(matches!(
        issue(&c, &key),
        Err(GrantIssueError::KeyIdMismatch { .. })
    ));
}

#[test]
fn every_single_byte_change_is_refused() {
    let key = proxy_key();
    let valid = token(&claims(&key), &key);
    let verifier = GrantVerifier::new(proxy_id(), key.public_key());
    let mut bytes = valid.into_bytes();
    for i in 0..bytes.len() {
        let original = bytes[i];
        for replacement in [b'A', b'-', b'.', b'z'] {
            if replacement == original {
                continue;
            }
            bytes[i] = replacement;
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(
                verifier
                    .verify(&text, NOW, &grafana(), &responder_key())
                    .is_err(),
                "changing byte {i} to {:?} was accepted",
                char::from(replacement)
            );
        }
        bytes[i] = original;
    }
}
