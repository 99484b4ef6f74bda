//! The proxy's checkpoints verify with an implementation of C2SP signed-note that is not
//! bglass's: Go's `golang.org/x/mod/sumdb/note` (Debian's golang-golang-x-mod-dev, built
//! with Debian's Go by `tests/go/note-verify`). An auditor needs no bglass code to check them.

use std::path::{Path, PathBuf};
use std::process::Command;

use bglass_core::audit::checkpoint::{origin, verifier_key};
use bglass_core::id::ProxyId;
use bglass_core::keys::PublicKey;
use bglass_tests::audit;
use bglass_tests::world::World;

/// Builds `tests/go/note-verify` into `dir`.
fn note_verify(dir: &Path) -> PathBuf {
    let out = dir.join("note-verify");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("go/note-verify");
    let build = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        // Debian installs the module's source under /usr/share/gocode (GOPATH mode).
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.join("gocache"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    out
}

fn check(tool: &Path, key: &str, note: &[u8], dir: &Path) -> (Option<i32>, String, String) {
    let file = dir.join("note");
    std::fs::write(&file, note).unwrap();
    let out = Command::new(tool).arg(key).arg(&file).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn checkpoints_verify_with_gos_signed_note_and_a_changed_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let tool = note_verify(tmp.path());

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
