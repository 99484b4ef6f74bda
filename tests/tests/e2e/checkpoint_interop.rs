//! The proxy's checkpoints verify with an implementation of C2SP signed-note that is not
//! bglass's: Go's `golang.org/x/mod/sumdb/note` (Debian's golang-golang-x-mod-dev, built
//! with Debian's Go by `tests/go/note-verify`). An auditor needs no bglass code to check them.
//! Their cosignatures verify with `tests/go/cosig-verify`, written from the C2SP
//! tlog-cosignature specification with Go's standard library: no registry this project can
//! install from has an implementation of it (x/mod predates the cosignature type 0x04).

use std::path::Path;

use bglass_core::audit::checkpoint::{origin, verifier_key};
use bglass_core::id::ProxyId;
use bglass_core::keys::PublicKey;
use bglass_tests::world::World;
use bglass_tests::{audit, go};

fn check(tool: &Path, key: &str, note: &[u8], dir: &Path) -> (Option<i32>, String, String) {
    let file = dir.join("note");
    std::fs::write(&file, note).unwrap();
    go::run(tool, &[key, file.to_str().unwrap()])
}

#[test]
fn checkpoints_verify_with_gos_signed_note_and_a_changed_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let tool = go::build("note-verify", tmp.path());

    // A log written through the real log code, signed with its key.
    let log = tmp.path().join("log");
    audit::write(&log, &audit::realistic(1000));
    let note = std::fs::read(log.join("checkpoint")).unwrap();
    let name = origin(&ProxyId::new(audit::PROXY).unwrap());
    let key = verifier_key(&name, &audit::proxy_key().public_key());
    let (code, text, err) = check(&tool, &key, &note, tmp.path());
    assert_eq!(code, Some(0), "{err}");
    let body = String::from_utf8(note.clone()).unwrap();
    assert!(
        body.starts_with(&text),
        "{text:?} is not the head of {body:?}"
    );
    assert!(text.starts_with(&format!("{name}\n1000\n")), "{text}");

    // One character of the tree size changed: refused.
    let changed = body.replacen("\n1000\n", "\n1001\n", 1);
    let (code, _, err) = check(&tool, &key, changed.as_bytes(), tmp.path());
    assert_eq!(code, Some(1), "{err}");
    // Another key under the same name: refused.
    let other = bglass_core::keys::SigningKey::from_seed(&[7; 32]).unwrap();
    let (code, _, err) = check(
        &tool,
        &verifier_key(&name, &other.public_key()),
        &note,
        tmp.path(),
    );
    assert_eq!(code, Some(1), "{err}");

    // A real proxy's checkpoint, with the key its operator was given at init.
    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    w.start_nginx();
    w.catalog(bglass_tests::world::TEST_CATALOG);
    w.start_all();
    w.access("alice", "grafana");
    w.stop(0);
    let note = std::fs::read(w.proxies[0].log_dir().join("checkpoint")).unwrap();
    let key: PublicKey = w.proxies[0].key.parse().unwrap();
    let (code, text, err) = check(
        &tool,
        &verifier_key(&origin(&ProxyId::new("proxy-a").unwrap()), &key),
        &note,
        tmp.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(text.starts_with("bglass/proxy-a\n"), "{text}");
}

#[test]
fn cosignatures_verify_with_a_go_verifier_written_from_the_specification() {
    use base64::Engine;
    use bglass_core::audit::witness::cosign;
    let tmp = tempfile::tempdir().unwrap();
    let tool = go::build("cosig-verify", tmp.path());
    let log = tmp.path().join("log");
    audit::write(&log, &audit::realistic(300));
    let note = std::fs::read_to_string(log.join("checkpoint")).unwrap();
    let name = origin(&ProxyId::new(audit::PROXY).unwrap());
    let key = verifier_key(&name, &audit::proxy_key().public_key());
    let witness = bglass_core::keys::SigningKey::from_seed(&[3; 32]).unwrap();
    let b64 = |k: &PublicKey| base64::engine::general_purpose::STANDARD.encode(k.as_bytes());
    let cosigner = format!("bglass-witness/proxy-b={}", b64(&witness.public_key()));
    let line = cosign(&note, "bglass-witness/proxy-b", &witness, 1_796_000_000).unwrap();
    let cosigned = format!("{note}{line}");
    let verify = |text: &str, who: &str| {
        let file = tmp.path().join("cosigned");
        std::fs::write(&file, text).unwrap();
        go::run(&tool, &[&key, file.to_str().unwrap(), who])
    };
    let (code, out, err) = verify(&cosigned, &cosigner);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "bglass-witness/proxy-b time 1796000000\n");

    // The time the cosignature claims is part of what is signed.
    let blob = line.trim_end().rsplit(' ').next().unwrap();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .unwrap();
    raw[11] ^= 1;
    let shifted = format!(
        "{note}\u{2014} bglass-witness/proxy-b {}\n",
        base64::engine::general_purpose::STANDARD.encode(&raw)
    );
    let (code, _, err) = verify(&shifted, &cosigner);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no valid cosignature by bglass-witness/proxy-b"),
        "{err}"
    );
    // Another witness's key under that name, and no cosignature at all: refused.
    let other = bglass_core::keys::SigningKey::from_seed(&[4; 32]).unwrap();
    let impostor = format!("bglass-witness/proxy-b={}", b64(&other.public_key()));
    assert_eq!(verify(&cosigned, &impostor).0, Some(1));
    assert_eq!(verify(&note, &cosigner).0, Some(1));
    // A cosignature moved onto another checkpoint of the same log: refused.
    audit::write(&log, &audit::realistic(301));
    let later = std::fs::read_to_string(log.join("checkpoint")).unwrap();
    assert_ne!(later, note);
    assert_eq!(verify(&format!("{later}{line}"), &cosigner).0, Some(1));
}
