//! `bglass-proxy check`: the catalog and roster validated the way the proxy loads them.

use bglass_core::keys::SigningKey;
use bglass_tests::{assert_no_panic, command, run};

fn roster(entries: &[(&str, u8, &str)]) -> String {
    entries
        .iter()
        .map(|(id, seed, roles)| {
            format!(
                "[[responder]]\nid = \"{id}\"\nname = \"{id}\"\nkey = \"{}\"\nroles = [{roles}]\n\n",
                SigningKey::from_seed(&[*seed; 32]).unwrap().public_key()
            )
        })
        .collect()
}

#[test]
fn valid_files_pass_and_unreachable_approvals_are_warned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("responders.toml");
    std::fs::write(
        &path,
        roster(&[
            ("alice", 1, "\"responder\", \"approver\""),
            ("bob", 2, "\"responder\""),
        ]),
    )
    .unwrap();
    let out = run(command("bglass-proxy", dir.path())
        .args(["check", "--services", "services.toml", "--roster"])
        .arg(&path));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("catalog: valid, 18 services"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("roster:  valid, 2 responders (2 responder, 1 approver")
    );
    // vault needs two approvals and there is only one approver; it has no emergency
    // bypass, so its requests can never be granted (not "without --emergency").
    assert!(
        out.stdout.contains(
            "warning: service vault needs 2 approval(s) but the roster has 1 approver(s): requests for it can never be granted (it has no emergency bypass)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("without --emergency"),
        "{}",
        out.stdout
    );
}

#[test]
fn invalid_roster_or_catalog_fail_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("responders.toml");
    std::fs::write(
        &path,
        roster(&[("alice", 1, "\"responder\""), ("bob", 1, "\"responder\"")]),
    )
    .unwrap();
    let out = run(command("bglass-proxy", dir.path())
        .args(["check", "--services", "services.toml", "--roster"])
        .arg(&path));
    assert_no_panic(&out);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.starts_with(&format!(
            "error: {}:10:7: this key is already the key of responder \"alice\"",
            path.display()
        )),
        "{}",
        out.stderr
    );

    let out = run(command("bglass-proxy", dir.path())
        .args([
            "check",
            "--services",
            "bglass-core/testdata/catalog/bad/unknown-kind.toml",
            "--roster",
        ])
        .arg(&path));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("unknown-kind.toml:5:8: unknown kind \"grpc\""),
        "{}",
        out.stderr
    );
}
