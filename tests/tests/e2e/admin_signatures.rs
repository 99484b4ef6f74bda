//! Roster changes signed by k of n admins (`[admins]` in proxy.toml, 2 of carol and dave),
//! against a real proxy: an unsigned first roster does not start it; an under-signed roster
//! adding an approver is rejected, audited, and the old roster keeps working; once both
//! admins sign, it is accepted and the log records the signers and the diff; an older
//! signed roster put back (a replay) is rejected; a change made while the proxy is down is
//! held to the same rule at start. `bglass admin verify` and `bglass-proxy check --diff`
//! say the same before deployment.

use std::path::Path;
use std::time::Duration;

use bglass_tests::attack::config_reload;
use bglass_tests::world::{TEST_CATALOG, World};
use bglass_tests::{bin, eventually, run};

fn roster_of(w: &World, ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("{}\n", w.responder(id).entry))
        .collect()
}

fn sign(w: &World, admin: &str, file: &Path, over: Option<&Path>) {
    let mut args = vec!["admin", "sign", file.to_str().unwrap(), "--kind", "roster"];
    match over {
        Some(old) => args.extend(["--over", old.to_str().unwrap()]),
        None => args.push("--first"),
    }
    let out = w.bglass(admin, &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn roster_changes_need_two_admin_signatures_and_the_log_names_signers_and_changes() {
    let mut w = World::new(
        &["proxy-a"],
        &[
            ("alice", "responder"),
            ("bob", "approver"),
            ("carol", "responder"),
            ("dave", "responder"),
            ("erin", "approver"),
        ],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    let pdir = w.proxies[0].dir.clone();
    let roster = pdir.join("responders.toml");
    let admins = format!(
        "\n[admins]\nkeys = [\"carol={}\", \"dave={}\"]\nroster = 2\n",
        w.responder_key("carol"),
        w.responder_key("dave")
    );
    bglass_tests::toml::append(&w.proxies[0].config, &admins);
    let first = roster_of(&w, &["alice", "bob", "carol", "dave"]);
    std::fs::write(&roster, &first).unwrap();

    // 1. A first roster nobody signed: the proxy does not start on it.
    let refused = w.start_refused(0, &[]);
    assert!(
        refused
            .stderr
            .contains("the roster is signed by 0 of the 2 admins required"),
        "{}",
        refused.stderr
    );
    sign(&w, "carol", &roster, None);
    sign(&w, "dave", &roster, None);
    let first_sig = std::fs::read_to_string(pdir.join("responders.toml.sig")).unwrap();
    w.start(0);
    // The first version's signers are recorded at the start.
    let signed = config_reload(&w, "roster", "the first roster's signers recorded", |e| {
        e["accepted"] == true
    });
    assert_eq!(signed["signers"], serde_json::json!(["carol", "dave"]));
    w.access("alice", "grafana");

    // 2. Erin added as an approver, signed by carol only: rejected, audited; the roster in
    // force stays (erin is refused, alice is served).
    let old = w.dir.path().join("responders-old.toml");
    std::fs::write(&old, &first).unwrap();
    let second = roster_of(&w, &["alice", "bob", "carol", "dave", "erin"]);
    let new = w.dir.path().join("responders-new.toml");
    std::fs::write(&new, &second).unwrap();
    let diff = run(std::process::Command::new(bin("bglass-proxy"))
        .args(["check", "--diff"])
        .arg(&old)
        .arg(&new));
    assert_eq!(diff.code, Some(0), "{}", diff.stderr);
    assert!(
        diff.stdout
            .starts_with("+ responder erin: roles approver, key "),
        "{}",
        diff.stdout
    );
    sign(&w, "carol", &new, Some(&old));
    let verify = |w: &World| {
        w.bglass(
            "alice",
            &[
                "admin",
                "verify",
                new.to_str().unwrap(),
                "--kind",
                "roster",
                "--over",
                old.to_str().unwrap(),
                "--admin",
                &format!("carol={}", w.responder_key("carol")),
                "--admin",
                &format!("dave={}", w.responder_key("dave")),
            ],
        )
    };
    let under = verify(&w);
    assert_eq!(under.code, Some(5), "{}\n{}", under.stdout, under.stderr);
    assert!(
        under
            .stderr
            .contains("signed by 1 of the 2 admins required (carol)"),
        "{}",
        under.stderr
    );
    std::fs::copy(
        new.with_extension("toml.sig"),
        pdir.join("responders.toml.sig"),
    )
    .unwrap();
    std::fs::write(&roster, &second).unwrap();
    let rejected = config_reload(&w, "roster", "the under-signed roster rejected", |e| {
        e["accepted"] == false
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("signed by 1 of the 2 admins required (carol)"))
    });
    assert!(rejected["signers"].is_null(), "{rejected}");
    let erin = w.bglass("erin", &["status"]);
    assert_ne!(erin.code, Some(0), "erin was let in: {}", erin.stdout);
    w.access("alice", "grafana");

    // 3. Dave signs too: accepted, with both signers and the change in the log.
    sign(&w, "dave", &new, Some(&old));
    let both = verify(&w);
    assert_eq!(both.code, Some(0), "{}\n{}", both.stdout, both.stderr);
    std::fs::copy(
        new.with_extension("toml.sig"),
        pdir.join("responders.toml.sig"),
    )
    .unwrap();
    let accepted = config_reload(&w, "roster", "the roster signed by both accepted", |e| {
        e["accepted"] == true && e["changes"].is_array()
    });
    assert_eq!(accepted["signers"], serde_json::json!(["carol", "dave"]));
    assert_eq!(accepted["changes"][0]["op"], "added", "{accepted}");
    assert_eq!(accepted["changes"][0]["item"], "responder erin");
    eventually(Duration::from_secs(10), "erin let in", || {
        (w.bglass("erin", &["status"]).code == Some(0)).then_some(())
    });

    // 4. The first roster and its (valid, signed) signatures put back: a replay, rejected.
    std::fs::write(pdir.join("responders.toml.sig"), &first_sig).unwrap();
    std::fs::write(&roster, &first).unwrap();
    config_reload(&w, "roster", "the replayed old roster rejected", |e| {
        e["accepted"] == false
            && e["error"].as_str().is_some_and(|m| {
                m.contains("signed by 0 of the 2") && m.contains("signed a change from none")
            })
    });
    assert_eq!(w.bglass("erin", &["status"]).code, Some(0));

    // 5. Changed while the proxy is down: bob removed, signed by both over the roster in
    // force; the start records it with its signers and what it changed.
    w.stop(0);
    let third = roster_of(&w, &["alice", "carol", "dave", "erin"]);
    std::fs::write(&roster, &third).unwrap();
    std::fs::remove_file(pdir.join("responders.toml.sig")).unwrap();
    sign(&w, "carol", &roster, Some(&new));
    sign(&w, "dave", &roster, Some(&new));
    w.start(0);
    let at_start = config_reload(&w, "roster", "the change made while down recorded", |e| {
        e["accepted"] == true && e["changes"][0]["item"] == "responder bob"
    });
    assert_eq!(at_start["changes"][0]["op"], "removed");
    assert_eq!(at_start["signers"], serde_json::json!(["carol", "dave"]));
}
