//! Snapshots of what responders, approvers and auditors read: `bglass status`, `access`
//! (granted, and pending until it gives up), `requests`, `approve`, `grants`, `revoke`,
//! `audit verify`, `audit report`, and the drill scorecard, against the real binaries. A
//! change to any of them shows as a diff to review (`cargo insta review`), not as a silent
//! drift. The volatile parts (ports, ids, times, keys, digests, directories, timings) are
//! redacted by filters, so a snapshot changes only when the output's shape or wording does.

use std::path::Path;
use std::time::Duration;

use bglass_tests::world::World;
use bglass_tests::{Run, command, eventually, root, run};
use serde_json::Value;

/// A regular expression matching `text` literally.
fn literal(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// Snapshot settings: snapshots named by the test alone (stable if the test moves to
/// another file), and the volatile parts of the output redacted.
fn settings(dirs: &[&Path]) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    for dir in dirs {
        s.add_filter(&literal(&dir.display().to_string()), "[dir]");
    }
    for (pattern, replacement) in [
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"\bg-[0-9a-f]{16}\b", "g-[id]"),
        (r"\br-[0-9a-f]{16}\b", "r-[id]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z", "[time]"),
        (r"ed25519:[A-Za-z0-9_-]{43}", "ed25519:[key]"),
        // A signed-note verifier key's id and key.
        (r"\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}", "+[keyid]+[vkey]"),
        (r"sha256:[0-9a-f]{64}", "sha256:[digest]"),
        (r"\b[0-9a-f]{64}\b", "[hash]"),
        (r"\bbglass \d+\.\d+\.\d+\b", "bglass [version]"),
        // A checkpoint's root, base64.
        (r"[A-Za-z0-9+/]{43}=", "[root]"),
        // A catalog's short digest.
        (r"catalog [0-9a-f]{12}\b", "catalog [digest]"),
        // How many checkpoints the proxy signed depends on how its appends fell in time.
        (r"\d+ checkpoints\b", "[n] checkpoints"),
        // Free space on this machine's disk.
        (r"\d+(\.\d+)? [KMGT]?i?B free", "[size] free"),
    ] {
        s.add_filter(pattern, replacement);
    }
    s
}

/// A run as one text: exit code, standard output, standard error.
fn shown(out: &Run) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.code.map_or("signal".to_owned(), |c| c.to_string()),
        out.stdout,
        out.stderr
    )
}

/// One proxy with nginx and the test catalog; carol responds, alice approves.
fn world() -> World {
    let w = World::alice_and_carol();
    // Every service's health is known (the prober's first round), so that status shows it.
    eventually(
        Duration::from_secs(15),
        "a health verdict for every service",
        || {
            let out = w.bglass("carol", &["status", "--json"]);
            let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
            v[0]["status"]["services"]
                .as_array()
                .is_some_and(|list| list.iter().all(|s| s["health"] != "unknown"))
        },
    );
    w
}

#[test]
fn responder_approver_and_auditor_outputs() {
    let mut w = world();
    let s = settings(&[w.dir.path()]);
    let snap = |name: &str, out: &Run| {
        s.bind(|| insta::assert_snapshot!(name, shown(out)));
    };

    snap("status", &w.bglass("carol", &["status"]));
    snap(
        "access_granted",
        &w.bglass(
            "carol",
            &[
                "access",
                "grafana",
                "--reason",
                "dashboards down",
                "--incident",
                "INC-1",
            ],
        ),
    );
    snap(
        "access_pending",
        &w.bglass(
            "carol",
            &[
                "access",
                "argocd",
                "--reason",
                "roll back",
                "--incident",
                "INC-1",
                "--wait",
                "1s",
            ],
        ),
    );
    let requests = w.bglass("alice", &["requests"]);
    snap("requests", &requests);
    // The first id in the table (after its header).
    let request = requests
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("r-"))
        .unwrap()
        .to_owned();
    snap("approve", &w.bglass("alice", &["approve", &request]));
    let grants = w.bglass("alice", &["grants"]);
    snap("grants", &grants);
    let grafana = grants
        .stdout
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == "grafana"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    snap(
        "revoke",
        &w.bglass("alice", &["revoke", &grafana, "--reason", "incident over"]),
    );

    // The auditor's view of the log, once the proxy has stopped (its last checkpoint
    // signed).
    w.stop(0);
    let home = tempfile::tempdir().unwrap();
    let auditor = |args: &[&str]| {
        run(command("bglass", home.path())
            .args(args)
            .args(["--key", &w.proxies[0].key])
            .arg(w.proxies[0].log_dir()))
    };
    snap("audit_verify", &auditor(&["audit", "verify"]));
    snap("audit_report", &auditor(&["audit", "report"]));
}

#[test]
fn drill_scorecard() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("snapshot.toml");
    std::fs::write(
        &scenario,
        r#"version = 1
name = "snapshot"
description = "Two responders reach two web tools through one proxy"
duration = "30s"
proxies = ["primary"]

[participants]
count = 2
approvers = 1
services = ["grafana", "prometheus"]

[expect]
success_rate = 1.0
"#,
    )
    .unwrap();
    let out = run(command("bglass", tmp.path())
        .args(["drill", "simulate"])
        .arg(&scenario)
        .arg("--out")
        .arg(tmp.path().join("out")));
    let mut s = settings(&[tmp.path(), &root()]);
    // Timings: the scorecard's numbers in milliseconds and seconds, and the tool table's.
    for (pattern, replacement) in [
        // The wall time reads "812 ms" or "1.2 s" depending on the machine.
        (r"wall \d+(\.\d+)? m?s\b", "wall [time]"),
        (r"\d+ ms\b", "[ms]"),
        (
            r"(?m)^(\S+ +\S+ +\d+/\d+) +\d+ +\d+ +\d+",
            "$1 [p50] [p95] [max]",
        ),
        (r"snapshot-\d{14}", "snapshot-[time]"),
        // The simulated tools also count the health prober's requests.
        (r"refused \d+ without it", "refused [n] without it"),
    ] {
        s.add_filter(pattern, replacement);
    }
    s.bind(|| insta::assert_snapshot!("drill_scorecard", shown(&out)));
}
