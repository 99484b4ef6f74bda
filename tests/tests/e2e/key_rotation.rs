//! The proxy's signing key rotated with the real binaries: `bglass-proxy rotate-key` on a
//! stopped proxy, refused on a running one; a responder's CLI that knew the old key follows
//! the signed transition and keeps working; `bglass audit verify` follows it from the old
//! key or the new one; and a proxy that presents a new key without a signed transition is
//! still refused as a split view.

use bglass_tests::world::{TEST_CATALOG, World};
use bglass_tests::{command, run};

fn world() -> World {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder,auditor"), ("bob", "responder")],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w
}

/// `bglass access grafana` as `who`, whatever it answers.
fn access(w: &World, who: &str) -> bglass_tests::Run {
    w.bglass(
        who,
        &[
            "access",
            "grafana",
            "--reason",
            "test",
            "--incident",
            "INC-T",
            "--json",
        ],
    )
}

fn rotate(w: &World) -> bglass_tests::Run {
    run(command("bglass-proxy", w.dir.path())
        .args(["rotate-key", "--config"])
        .arg(&w.proxies[0].config))
}

fn line_value<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        .trim()
}

/// One `bglass audit monitor` round by alice (an auditor) with the key she was given.
fn monitor(w: &World, out: &std::path::Path, key: &str) -> bglass_tests::Run {
    let key = format!("proxy-a={key}");
    w.bglass(
        "alice",
        &[
            "audit",
            "monitor",
            "--out",
            out.to_str().unwrap(),
            "--key",
            &key,
        ],
    )
}

fn verify(w: &World, key: &str) -> bglass_tests::Run {
    verify_dir(&w.proxies[0].log_dir(), key)
}

fn verify_dir(dir: &std::path::Path, key: &str) -> bglass_tests::Run {
    let home = tempfile::tempdir().unwrap();
    run(command("bglass", home.path())
        .args(["audit", "verify", "--key", key])
        .arg(dir))
}

#[test]
fn a_rotated_signing_key_keeps_the_cli_and_audit_verify_working_across_the_rotation() {
    let mut w = world();
    w.start_all();
    let old_key = w.proxies[0].key.clone();
    w.access("alice", "grafana");
    let out = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // An auditor mirrors the log with the key given before the rotation.
    let mirror = w.dir.path().join("mirror");
    let before = monitor(&w, &mirror, &old_key);
    assert_eq!(before.code, Some(0), "{}{}", before.stdout, before.stderr);

    // A running proxy holds its log: the rotation is refused and changes nothing.
    let refused = rotate(&w);
    assert_ne!(refused.code, Some(0));
    assert!(
        refused.stderr.contains("stop the proxy first"),
        "{}",
        refused.stderr
    );

    w.stop(0);
    let rotated = rotate(&w);
    assert_eq!(rotated.code, Some(0), "{}", rotated.stderr);
    assert!(
        !rotated.stdout.contains("finished the rotation"),
        "the refused run left nothing to finish: {}",
        rotated.stdout
    );
    assert_eq!(line_value(&rotated.stdout, "old signing key:"), old_key);
    let new_key = line_value(&rotated.stdout, "new signing key:").to_owned();
    assert_ne!(new_key, old_key);
    let index: u64 = line_value(&rotated.stdout, "recorded at entry")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    w.start(0);

    // The grant issued before the rotation (signed by the old key, and in the log) still
    // works.
    let out = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // The CLI knew the old key: at its next contact it follows the signed transition, says
    // so, and works.
    let again = access(&w, "alice");
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stderr.contains("rotated its signing key") && again.stderr.contains(&new_key),
        "{}",
        again.stderr
    );
    // A new grant is signed by the new key.
    let fresh = access(&w, "bob");
    assert_eq!(fresh.code, Some(0), "{}", fresh.stderr);
    let out = w.bglass("bob", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Learned once: the next contact is silent.
    let out = access(&w, "alice");
    assert!(!out.stderr.contains("rotated"), "{}", out.stderr);
    // The auditor's monitor, still given the old key, follows the rotation the log records:
    // no alert, and its mirror verifies offline.
    let after = monitor(&w, &mirror, &old_key);
    assert_eq!(after.code, Some(0), "{}{}", after.stdout, after.stderr);
    assert!(!after.stdout.contains("ALERT"), "{}", after.stdout);
    w.stop(0);
    let mirrored = verify_dir(&mirror.join("proxy-a"), &old_key);
    assert_eq!(
        mirrored.code,
        Some(0),
        "{}{}",
        mirrored.stdout,
        mirrored.stderr
    );
    assert!(
        mirrored.stdout.contains("signing key rotated at entry"),
        "{}",
        mirrored.stdout
    );

    // The auditor verifies the whole log from the key obtained before the rotation, or
    // from the new one.
    for key in [&old_key, &new_key] {
        let v = verify(&w, key);
        assert_eq!(v.code, Some(0), "{}{}", v.stdout, v.stderr);
        assert!(
            v.stdout.contains(&format!(
                "signing key rotated at entry {index}: {old_key} -> {new_key}"
            )),
            "{}",
            v.stdout
        );
        assert!(
            v.stdout
                .contains(&format!("signing key: {new_key} (Given)")),
            "{}",
            v.stdout
        );
    }
}

#[test]
fn a_key_no_signed_rotation_leads_to_is_still_a_split_view() {
    let mut w = world();
    w.start_all();
    w.access("bob", "grafana");
    w.stop(0);
    let rotated = rotate(&w);
    assert_eq!(rotated.code, Some(0), "{}", rotated.stderr);
    // Bob's machine knew the proxy by a key that is not on its log's chain (another
    // proxy's, say, that an attacker once passed off): the rotations shown lead from the
    // old key to the new one, not from it, so the new key is refused.
    let state = w
        .responder("bob")
        .config
        .parent()
        .unwrap()
        .join("state/proxies");
    let record = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let text = std::fs::read_to_string(&record).unwrap();
    let stranger = bglass_core::keys::SigningKey::from_seed(&[42; 32])
        .unwrap()
        .public_key()
        .to_string();
    std::fs::write(&record, text.replace(&w.proxies[0].key, &stranger)).unwrap();
    w.start(0);
    let out = access(&w, "bob");
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stderr.contains("with key"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("rotated its signing key"),
        "{}",
        out.stderr
    );
}
