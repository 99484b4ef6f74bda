//! The per-incident review package from a real proxy's log: an incident with an approval
//! (and a refused self-approval), an emergency bypass and its review, HTTP uses through
//! real nginx and a recorded SSH session on real sshd. The page is checked as headless
//! Chromium renders it; the bundle is unpacked with tar(1) and every proof in it checked
//! against the entries' bytes and the proxy's key.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bglass_core::audit::checkpoint;
use bglass_core::audit::receipt::Receipt;
use bglass_tests::world::{RECORDED_CATALOG, World, current_user};
use bglass_tests::{Run, eventually, run};
use serde_json::Value;

const INCIDENT: &str = "INC-REVIEW-7";

/// argocd needs one approval and allows the emergency bypass.
const ARGOCD: &str = r#"
[[service]]
name = "argocd"
kind = "http"
description = "Deploys"
upstream = "127.0.0.1:{nginx}"
max_ttl = "2h"
default_ttl = "30m"
approvals = 1
emergency_bypass = true
emergency_ttl = "10m"
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }
"#;

fn world() -> World {
    let mut w = World::new(
        &["proxy-a"],
        &[
            ("alice", "responder,approver"),
            ("bob", "responder,approver"),
            ("carol", "responder"),
        ],
    );
    w.start_nginx();
    w.start_sshd(&[]);
    w.start_recorded_sshd();
    w.catalog(&format!("{RECORDED_CATALOG}{ARGOCD}"));
    w.start_all();
    w
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    r
}

fn access(w: &World, who: &str, service: &str, incident: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "access",
        service,
        "--reason",
        "the deploy broke login",
        "--incident",
        incident,
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(w.bglass(who, &args)).stdout).unwrap()
}

/// The incident, as responders and approvers make it.
fn incident(w: &World) -> String {
    // alice asks for argocd and waits; she cannot approve herself; bob approves.
    let child = w.spawn_bglass(
        "alice",
        &[
            "access",
            "argocd",
            "--reason",
            "roll back the deploy",
            "--incident",
            INCIDENT,
            "--wait",
            "60s",
            "--json",
        ],
    );
    let id = eventually(Duration::from_secs(20), "alice's pending request", || {
        let list = w.bglass("bob", &["requests", "--json"]);
        let v: Value = serde_json::from_str(&list.stdout).unwrap_or(Value::Null);
        Some(v.get(0)?["request"]["id"].as_str()?.to_owned())
    });
    assert_eq!(w.bglass("alice", &["approve", &id]).code, Some(3));
    ok(w.bglass("bob", &["approve", &id]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    ok(w.bglass("alice", &["curl", "argocd", "/api/health"]));
    assert_eq!(
        w.bglass("alice", &["curl", "argocd", "/no/such/page"]).code,
        Some(8)
    );

    // carol uses the emergency bypass; bob reviews it.
    let grant = access(w, "carol", "argocd", INCIDENT, &["--emergency"])["grant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(w.bglass("carol", &["curl", "argocd", "/api/health"]));
    ok(w.bglass(
        "bob",
        &["review", &grant, "--note", "justified: login was down"],
    ));

    // alice's recorded session on the vault host.
    access(w, "alice", "vault-ssh", INCIDENT, &[]);
    let user = current_user();
    let said = ok(w.bglass(
        "alice",
        &[
            "ssh",
            "vault-ssh",
            "--user",
            &user,
            "--",
            "echo",
            "review-marker-42",
        ],
    ));
    assert_eq!(said.stdout, "review-marker-42\n");

    // Another incident, which the review must leave out.
    access(w, "carol", "grafana", "INC-OTHER-9", &[]);
    ok(w.bglass("carol", &["curl", "grafana", "/api/health"]));
    grant
}

/// The review as JSON, once the proxy has signed a checkpoint over all of it.
fn review_json(w: &World, log: &Path) -> Value {
    eventually(
        Duration::from_secs(20),
        "a checkpoint covering the incident",
        || {
            let r = w.bglass(
                "alice",
                &[
                    "audit",
                    "report",
                    log.to_str().unwrap(),
                    "--incident",
                    INCIDENT,
                    "--json",
                ],
            );
            assert_eq!(r.code, Some(0), "{}", r.stderr);
            let v: Value = serde_json::from_str(&r.stdout).unwrap();
            v["proofs"]["after_checkpoint"]
                .as_array()
                .unwrap()
                .is_empty()
                .then_some(v)
        },
    )
}

/// The text of the element with `id` in the DOM, up to its closing `</section>`.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("section {id} missing from the rendered DOM"));
    let len = dom[start..].find("</section>").unwrap();
    &dom[start..start + len]
}

#[test]
fn an_incidents_review_package_renders_and_its_bundle_proves_every_entry() {
    let w = world();
    let emergency_grant = incident(&w);
    let log = w.proxies[0].log_dir();
    let review = review_json(&w, &log);

    let out = w.dir.path().join("review");
    std::fs::create_dir_all(&out).unwrap();
    let html = out.join("INC-REVIEW-7.html");
    let tar = out.join("INC-REVIEW-7.tar");
    let made = ok(w.bglass(
        "alice",
        &[
            "audit",
            "report",
            log.to_str().unwrap(),
            "--incident",
            INCIDENT,
            "--html",
            html.to_str().unwrap(),
            "--bundle",
            tar.to_str().unwrap(),
        ],
    ));
    assert!(
        made.stdout.contains("Recorded sessions: 1"),
        "{}",
        made.stdout
    );

    // The page as Chromium renders it.
    let dom = bglass_tests::chromium::dump_dom(
        &w.dir.path().join("chromium"),
        &format!("file://{}", html.display()),
        &[],
    );
    assert!(dom.stdout.contains("</html>"), "no DOM: {}", dom.stderr);
    let dom = dom.stdout;
    assert!(!dom.contains("INC-OTHER-9"), "another incident leaked in");
    let timeline = section(&dom, "timeline");
    let rows = review["review"]["timeline"].as_array().unwrap();
    assert_eq!(timeline.matches("<tr class=\"ev-").count(), rows.len());
    for kind in ["request", "approval", "denial", "grant", "use", "review"] {
        assert!(
            timeline.contains(&format!("<tr class=\"ev-{kind}\"")),
            "no {kind} in the timeline"
        );
    }
    let approvals = section(&dom, "approvals");
    assert_eq!(approvals.matches("<tr>").count(), 1 + 1, "{approvals}");
    assert!(approvals.contains("<td>bob</td>") && approvals.contains("roll back the deploy"));
    let grants = section(&dom, "grants");
    assert_eq!(grants.matches("class=\"bar\"").count(), 3, "{grants}");
    assert!(grants.contains("emergency bypass"));
    let bypasses = section(&dom, "bypasses");
    assert!(bypasses.contains(&emergency_grant));
    assert!(bypasses.contains("reviewed") && bypasses.contains("justified: login was down"));
    assert!(!bypasses.contains("REVIEW OPEN"));
    let denials = section(&dom, "denials");
    assert!(denials.contains("self_approval"), "{denials}");
    let uses = section(&dom, "uses");
    assert!(
        uses.contains("<td>argocd</td><td class=\"n\">3</td><td>2 2xx, 1 4xx</td>"),
        "{uses}"
    );
    assert!(!uses.contains("grafana"));
    let sessions = section(&dom, "sessions");
    let session = review["sessions"][0]["session"].as_str().unwrap();
    assert_eq!(review["sessions"][0]["state"], "complete");
    assert!(
        sessions.contains(session) && sessions.contains(">complete<"),
        "{sessions}"
    );
    assert!(sessions.contains("$ echo review-marker-42"), "{sessions}");
    let proofs = section(&dom, "proofs");
    let proven = review["proofs"]["receipts"].as_array().unwrap().len();
    assert_eq!(
        proven,
        review["review"]["indexes"].as_array().unwrap().len()
    );
    assert!(proofs.contains("proxy-a"), "the checkpoint's origin");

    // The bundle, unpacked by tar(1): every entry's bytes give its leaf, every proof leads
    // to the checkpoint, which the proxy's key signs.
    let unpacked = out.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let x = run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&unpacked));
    assert_eq!(x.code, Some(0), "{}", x.stderr);
    let root = unpacked.join("INC-REVIEW-7");
    for f in [
        "README.txt",
        "review.html",
        "review.json",
        "entries.jsonl",
        "proofs.json",
        "checkpoint",
    ] {
        assert!(root.join(f).is_file(), "{f} missing from the bundle");
    }
    let recorded = root.join(format!("recordings/{session}.rec"));
    assert_eq!(
        std::fs::read(&recorded).unwrap(),
        std::fs::read(log.join(format!("recordings/{session}.rec"))).unwrap()
    );
    let verified = bglass_core::audit::verify::verify_dir(&log, None).unwrap();
    let origin = checkpoint::origin(&verified.proxy);
    let proofs: Value =
        serde_json::from_slice(&std::fs::read(root.join("proofs.json")).unwrap()).unwrap();
    let receipts: Vec<Receipt> = serde_json::from_value(proofs["receipts"].clone()).unwrap();
    let entries = std::fs::read_to_string(root.join("entries.jsonl")).unwrap();
    assert_eq!(entries.lines().count(), receipts.len());
    for line in entries.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let index = e["index"].as_u64().unwrap();
        let bytes = e["entry"].as_str().unwrap().as_bytes();
        let receipt = receipts.iter().find(|r| r.index == index).unwrap();
        receipt.verify(&origin, &verified.key, Some(bytes)).unwrap();
        // An entry changed in the bundle no longer matches its proof.
        let mut changed = bytes.to_vec();
        changed[bytes.len() / 2] ^= 1;
        assert!(
            receipt
                .verify(&origin, &verified.key, Some(&changed))
                .is_err()
        );
    }

    // A recording altered on disk shows as altered, in red, in the page of a copy.
    let copy = w.dir.path().join("log-copy");
    ok(run(Command::new("cp").arg("-a").arg(&log).arg(&copy)));
    let file = copy.join(format!("recordings/{session}.rec"));
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let altered = out.join("altered.html");
    let r = ok(w.bglass(
        "alice",
        &[
            "audit",
            "report",
            copy.to_str().unwrap(),
            "--incident",
            INCIDENT,
            "--html",
            altered.to_str().unwrap(),
        ],
    ));
    assert!(r.stderr.contains("is altered"), "{}", r.stderr);
    let page = std::fs::read_to_string(&altered).unwrap();
    assert!(page.contains("<span class=\"state bad\">altered</span>"));

    // An incident the log does not hold is a clear error.
    let none = w.bglass(
        "alice",
        &[
            "audit",
            "report",
            log.to_str().unwrap(),
            "--incident",
            "INC-NONE",
        ],
    );
    assert_eq!(none.code, Some(1), "{}", none.stderr);
    assert!(
        none.stderr.contains("no request for incident INC-NONE"),
        "{}",
        none.stderr
    );
}
