//! The proxy as an operator runs it: kill -9 and restart with state rebuilt from the log, a
//! bad catalog push kept out (fail stale), a rewritten log caught by the CLI (split view),
//! webhooks that never block access and survive restarts, and Prometheus metrics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bglass_tests::attack::Receiver;
use bglass_tests::ports::PortHold;
use bglass_tests::world::{TEST_CATALOG, World};
use bglass_tests::{command, eventually, run};
use serde_json::Value;

fn world() -> World {
    let mut w = World::new(
        &["proxy-a"],
        &[
            ("alice", "responder,approver"),
            ("bob", "responder,approver"),
        ],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w
}

fn verify(w: &World) -> bglass_tests::Run {
    let home = tempfile::tempdir().unwrap();
    run(command("bglass", home.path())
        .args(["audit", "verify", "--key", &w.proxies[0].key])
        .arg(w.proxies[0].log_dir()))
}

#[test]
fn kill_9_and_restart_restores_grants_and_pending_requests_from_the_log() {
    let mut w = world();
    w.start_all();
    let granted = w.bglass(
        "alice",
        &["access", "grafana", "--reason", "r", "--incident", "INC-4"],
    );
    assert_eq!(granted.code, Some(0), "{}", granted.stderr);
    // A pending request (argocd needs an approval): do not wait for it.
    let pending = w.bglass(
        "alice",
        &[
            "access",
            "argocd",
            "--reason",
            "r",
            "--incident",
            "INC-4",
            "--wait",
            "1s",
        ],
    );
    assert_eq!(pending.code, Some(3), "{}", pending.stderr);
    assert!(
        pending.stderr.contains("still pending"),
        "{}",
        pending.stderr
    );

    w.kill(0); // SIGKILL
    w.start(0);

    let requests = w.bglass("bob", &["requests", "--json"]);
    let list: Value = serde_json::from_str(&requests.stdout).unwrap();
    let id = list[0]["request"]["id"]
        .as_str()
        .expect("the pending request survived")
        .to_owned();
    assert_eq!(list[0]["request"]["responder"], "alice");
    let grants = w.bglass("alice", &["grants", "--json"]);
    let list: Value = serde_json::from_str(&grants.stdout).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|g| g["grant"]["service"] == "grafana" && g["grant"]["state"] == "active"),
        "{list}"
    );
    // The grant issued before the kill still works, and the pending request can be approved.
    let curl = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(curl.code, Some(0), "{}", curl.stderr);
    let approve = w.bglass("bob", &["approve", &id]);
    assert_eq!(approve.code, Some(0), "{}", approve.stderr);

    let v = verify(&w);
    assert_eq!(v.code, Some(0), "{}", v.stderr);
}

#[test]
fn an_invalid_catalog_push_is_rejected_and_the_last_good_one_served() {
    let mut w = world();
    w.start_all();
    bglass_tests::toml::edit(&w.proxies[0].dir.join("services.toml"), |doc| {
        bglass_tests::toml::service(doc, "grafana")["max_ttl"] = toml_edit::value("forever");
    });
    w.hup(0);

    let (_, status) = w.catalog_rejection("alice");
    assert!(
        status.contains("services.toml:") && status.contains("max_ttl"),
        "{status}"
    );
    let text = w.bglass("alice", &["status"]);
    assert!(
        text.stdout.contains("last reload REJECTED"),
        "{}",
        text.stdout
    );

    // Still serving the last good catalog.
    let access = w.bglass(
        "alice",
        &["access", "grafana", "--reason", "r", "--incident", "INC-5"],
    );
    assert_eq!(access.code, Some(0), "{}", access.stderr);
    assert_eq!(
        w.bglass("alice", &["curl", "grafana", "/api/health"]).code,
        Some(0)
    );

    let metrics = w.metrics(0);
    assert!(
        metrics.contains("bglass_config_rejections_total{file=\"catalog\"} "),
        "{metrics}"
    );
    let home = tempfile::tempdir().unwrap();
    let shown = run(command("bglass", home.path())
        .args(["audit", "show", "--json"])
        .arg(w.proxies[0].log_dir()));
    let events: Vec<Value> = serde_json::from_str(&shown.stdout).unwrap();
    assert!(
        events.iter().any(
            |e| e["event"]["event"]["config_reload"]["accepted"] == false
                && e["event"]["event"]["config_reload"]["file"] == "catalog"
        ),
        "no rejected reload in the log"
    );
}

#[test]
fn a_rewritten_log_is_detected_by_the_cli_and_refused() {
    let mut w = world();
    w.start_all();
    // The CLI sees the log (and remembers its checkpoint).
    for _ in 0..3 {
        assert_eq!(
            w.bglass(
                "alice",
                &["access", "grafana", "--reason", "r", "--incident", "INC-7"]
            )
            .code,
            Some(0)
        );
    }
    assert_eq!(w.bglass("alice", &["status"]).code, Some(0));
    // The proxy's log is replaced by another history (a fresh log, as after a rewrite).
    w.kill(0);
    let log = w.proxies[0].log_dir();
    std::fs::rename(&log, log.with_extension("old")).unwrap();
    // The proxy itself refuses a log behind the checkpoint it published…
    let refused = w.start_refused(0, &[]);
    assert!(refused.stderr.contains("rolled back"), "{}", refused.stderr);
    // …so the attacker, who controls the proxy's host, removes that record too: the
    // responders' CLI is the witness left.
    std::fs::remove_file(w.proxies[0].dir.join("data/published-checkpoint")).unwrap();
    w.start(0);
    let out = w.bglass("alice", &["status"]);
    assert_eq!(out.code, Some(4), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("SPLIT VIEW"), "{}", out.stderr);
    let access = w.bglass(
        "alice",
        &["access", "grafana", "--reason", "r", "--incident", "INC-7"],
    );
    assert_ne!(access.code, Some(0), "a split-view proxy must be refused");
    assert!(access.stderr.contains("split view"), "{}", access.stderr);
}

#[test]
fn webhooks_fail_open_and_deliver_after_the_receiver_returns_even_across_restarts() {
    let mut w = world();
    // The receiver's port, refusing connections until the receiver comes up on it.
    let hook = PortHold::new();
    let port = hook.port();
    bglass_tests::toml::append(
        &w.proxies[0].config,
        &format!("[[notify]]\nurl = \"http://127.0.0.1:{port}/hook\"\nformat = \"json\"\n"),
    );
    w.start_all();

    // The receiver is down: access still works at once.
    let started = Instant::now();
    let out = w.bglass(
        "alice",
        &[
            "access",
            "grafana",
            "--reason",
            "first",
            "--incident",
            "INC-8",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    let emergency = w.bglass(
        "alice",
        &[
            "access",
            "argocd",
            "--reason",
            "bypass",
            "--incident",
            "INC-8",
            "--emergency",
        ],
    );
    assert_eq!(emergency.code, Some(0), "{}", emergency.stderr);

    // It comes back: the queued events arrive.
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start_on(port, Arc::clone(&bodies));
    receiver.wait_for("Glass broken: alice was granted grafana", 90);
    receiver.wait_for("EMERGENCY BYPASS: alice broke glass on argocd", 90);
    receiver.stop();

    // Down again; an approval request is queued; the proxy restarts before delivery.
    let pending = w.bglass(
        "bob",
        &[
            "access",
            "argocd",
            "--reason",
            "after",
            "--incident",
            "INC-9",
            "--wait",
            "1s",
        ],
    );
    assert_eq!(pending.code, Some(3), "{}", pending.stderr);
    w.kill(0);
    w.start(0);
    let bodies2 = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start_on(port, Arc::clone(&bodies2));
    receiver.wait_for("Approval needed: bob asks for argocd", 90);
    // Delivered once: the first events are not sent again after the restart.
    assert!(
        !bodies2.lock().unwrap().iter().any(|b| b["summary"]
            .as_str()
            .unwrap_or("")
            .contains("granted grafana")),
        "{:?}",
        bodies2.lock().unwrap()
    );
    receiver.stop();
    assert!(
        w.metrics(0)
            .contains("bglass_notifications_total{result=\"sent\"}")
    );
}

/// A minimal Prometheus text-format parser: every line is a comment (`# HELP`/`# TYPE`) or
/// `name{labels} value` with a valid name, well-formed labels and a number.
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "bad comment: {line}"
            );
            if let Some(t) = rest.strip_prefix("TYPE ") {
                let kind = t.split_whitespace().nth(1).unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                let l = l
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                for pair in l.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label: {line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    let _ = v;
                }
                (n, l.to_owned())
            }
            None => (series, String::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.is_empty(),
            "bad metric name: {line}"
        );
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

#[test]
fn metrics_parse_as_prometheus_text_and_carry_the_counters() {
    let mut w = world();
    w.start_all();
    assert_eq!(
        w.bglass(
            "alice",
            &["access", "grafana", "--reason", "r", "--incident", "INC-10"]
        )
        .code,
        Some(0)
    );
    assert_eq!(
        w.bglass("alice", &["curl", "grafana", "/api/health"]).code,
        Some(0)
    );
    assert_eq!(
        w.bglass(
            "alice",
            &["access", "nosuch", "--reason", "r", "--incident", "INC-10"]
        )
        .code,
        Some(3)
    );
    // The health prober's first round (at start-up) is in the metrics.
    let samples = eventually(
        Duration::from_secs(15),
        "the first health probes in the metrics",
        || {
            let samples = parse_prometheus(&w.metrics(0));
            let probed = |service: &str| {
                samples
                    .iter()
                    .any(|(n, l, _)| n == "bglass_service_up" && l.contains(service))
            };
            (probed("\"grafana\"") && probed("\"down\"")).then_some(samples)
        },
    );
    let value = |name: &str, label: &str| {
        samples
            .iter()
            .filter(|(n, l, _)| n == name && l.contains(label))
            .map(|(_, _, v)| *v)
            .sum::<f64>()
    };
    assert!(value("bglass_requests_total", "route=\"data\"") >= 1.0);
    assert!(value("bglass_grants_total", "") >= 1.0);
    assert!(value("bglass_denials_total", "reason=\"unknown_service\"") >= 1.0);
    assert!(value("bglass_audit_appends_total", "") >= 3.0);
    assert!(
        samples
            .iter()
            .any(|(n, _, _)| n == "bglass_audit_append_seconds_sum")
    );
    assert!(
        samples
            .iter()
            .any(|(n, l, v)| n == "bglass_service_up" && l.contains("grafana") && *v == 1.0)
    );
    assert!(
        samples
            .iter()
            .any(|(n, l, v)| n == "bglass_service_up" && l.contains("\"down\"") && *v == 0.0)
    );
    assert_eq!(value("bglass_audit_failed", ""), 0.0);
}
