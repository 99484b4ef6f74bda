//! The responder flow end to end: real `bglass-proxy` processes, real `bglass`, real nginx
//! that accepts only the credential the proxy injects.

use std::time::Duration;

use bglass_tests::raw::Raw;
use bglass_tests::world::{
    TEST_CATALOG, UPSTREAM_PASSWORD, World, files_under, upstream_credential,
};
use bglass_tests::{assert_no_panic, eventually, run, wait_past};
use serde_json::Value;

fn world() -> World {
    let mut w = World::new(
        &["proxy-a", "proxy-b"],
        &[
            ("alice", "responder,approver"),
            ("bob", "responder,approver"),
            ("carol", "responder"),
        ],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    w
}

fn nginx_direct(port: u16, auth: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET /api/health HTTP/1.0\r\nHost: x\r\n{auth}\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn access_then_curl_reaches_nginx_with_the_injected_credential_only() {
    let mut w = world();
    // nginx itself refuses anyone without the credential.
    assert!(nginx_direct(w.nginx_port, None).contains("401"));
    assert!(nginx_direct(w.nginx_port, Some(&upstream_credential())).contains("200"));

    let mut outputs = Vec::new();
    let before = w.bglass("carol", &["curl", "grafana", "/api/health"]);
    assert_eq!(before.code, Some(3), "{}", before.stderr);
    assert!(
        before.stderr.contains("no active grant for grafana"),
        "{}",
        before.stderr
    );

    let access = w.bglass(
        "carol",
        &[
            "access",
            "grafana",
            "--reason",
            "dashboards down",
            "--incident",
            "INC-1",
        ],
    );
    assert_eq!(access.code, Some(0), "{}", access.stderr);
    assert!(
        access.stdout.contains("Granted grafana") && access.stdout.contains("by proxy-a"),
        "{}",
        access.stdout
    );
    let curl = w.bglass("carol", &["curl", "grafana", "/api/health"]);
    assert_eq!(curl.code, Some(0), "{}", curl.stderr);
    assert_eq!(curl.stdout, "nginx says ok\n");
    outputs.extend([before, access, curl]);

    // Without a grant the proxy refuses, whatever the client sends as credentials.
    let carol = w.responder("carol").config.clone();
    let raw = Raw::new(&carol, &w.proxies[0].url(), &w.proxies[0].pin);
    let refused = raw.send(
        "GET",
        "/s/grafana/api/health",
        None,
        &[("authorization", "Basic Zm9vOmJhcg==")],
    );
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (401, "no_grant"),
        "{}",
        refused.body
    );

    // The tool's 4xx becomes exit 8; a down tool is a clear 502 (exit 4).
    let missing = w.bglass("carol", &["curl", "grafana", "/no/such/page"]);
    assert_eq!(missing.code, Some(8), "{}", missing.stderr);
    let down = w.bglass(
        "carol",
        &["access", "down", "--reason", "r", "--incident", "I"],
    );
    assert_eq!(down.code, Some(0), "{}", down.stderr);
    let down = w.bglass("carol", &["curl", "down", "/"]);
    assert_eq!(down.code, Some(4), "{}", down.stderr);
    assert!(down.stderr.contains("did not answer"), "{}", down.stderr);
    outputs.push(missing);

    // `bglass open`: a loopback forwarder that adds the grant; a browser (here a plain
    // HTTP client) needs no credential at all, only the session secret in the printed URL,
    // which it trades for a cookie (tests/cli_hardening.rs attacks the forwarder).
    let carol_cfg = w.responder("carol").config.clone();
    let mut forwarder = std::process::Command::new(bglass_tests::bin("bglass"))
        .env("BGLASS_PASSPHRASE", bglass_tests::world::PASSPHRASE)
        .env("HOME", w.dir.path())
        .arg("--config")
        .arg(&carol_cfg)
        .args(["open", "grafana", "--no-browser", "--local", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // It listens before it prints its URL (on the port the system chose).
    let printed = bglass_tests::first_line(&mut forwarder);
    let (local, cookie, session) = bglass_tests::open_session(&printed);
    let http = |request: String| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let page = http(format!(
        "GET /api/health HTTP/1.1\r\nHost: localhost:{local}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    ));
    let without = http(format!(
        "GET /api/health HTTP/1.1\r\nHost: localhost:{local}\r\nConnection: close\r\n\r\n"
    ));
    forwarder.kill().unwrap();
    let _ = forwarder.wait();
    assert!(session.starts_with("HTTP/1.1 303"), "{session}");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.ends_with("nginx says ok\n"),
        "{page}"
    );
    assert!(without.starts_with("HTTP/1.1 403"), "{without}");
    assert!(
        printed.contains(&format!(
            "grafana is at http://127.0.0.1:{local}/?bglass-session="
        )),
        "{printed}"
    );

    // Receipts are kept and prove the grants are in the log.
    let prove = w.bglass("carol", &["audit", "prove"]);
    assert_eq!(prove.code, Some(0), "{}{}", prove.stdout, prove.stderr);
    assert!(
        prove.stdout.contains("proven in proxy-a"),
        "{}",
        prove.stdout
    );

    // Primary down: the CLI fails over to the secondary.
    w.kill(0);
    let failover = w.bglass(
        "carol",
        &[
            "access",
            "grafana",
            "--reason",
            "primary down",
            "--incident",
            "INC-1",
        ],
    );
    assert_eq!(failover.code, Some(0), "{}", failover.stderr);
    assert!(
        failover.stdout.contains("by proxy-b"),
        "{}",
        failover.stdout
    );
    assert!(
        failover.stderr.contains("unavailable")
            && failover.stderr.contains("trying the next proxy"),
        "{}",
        failover.stderr
    );
    let curl = w.bglass("carol", &["curl", "grafana", "/api/health"]);
    assert_eq!(
        curl.code,
        Some(0),
        "{}\n{}\nheld: {:?}",
        curl.stderr,
        w.logs(),
        files_under(
            &w.responder("carol")
                .config
                .parent()
                .unwrap()
                .join("state/grants")
        )
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect::<Vec<_>>()
    );
    outputs.extend([failover, curl]);

    // The upstream credential is in no CLI output, no CLI file, no proxy file but the
    // encrypted vault, and no proxy log.
    let secret_b64 = upstream_credential();
    for out in &outputs {
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(UPSTREAM_PASSWORD) && !text.contains(&secret_b64),
                "credential in output: {text}"
            );
        }
    }
    for (path, bytes) in files_under(w.dir.path()) {
        let p = path.display().to_string();
        if p.contains("/nginx/") || p.ends_with("secrets.age") {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(UPSTREAM_PASSWORD) && !text.contains(&secret_b64),
            "the upstream credential leaked into {p}"
        );
    }
}

#[test]
fn approvals_self_approval_ttl_from_approval_and_emergency_review() {
    let w = world();
    // alice asks for argocd (one approval); the request waits.
    let alice_cfg = w.responder("alice").config.clone();
    let mut waiting = std::process::Command::new(bglass_tests::bin("bglass"));
    waiting
        .env("BGLASS_PASSPHRASE", bglass_tests::world::PASSPHRASE)
        .env("HOME", w.dir.path())
        .arg("--config")
        .arg(&alice_cfg)
        .args([
            "access",
            "argocd",
            "--reason",
            "roll back",
            "--incident",
            "INC-2",
            "--wait",
            "60s",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = waiting.spawn().unwrap();

    let (id, created_s) = eventually(
        Duration::from_secs(20),
        "alice's pending request in bob's list",
        || {
            let list = w.bglass("bob", &["requests", "--json"]);
            let v: Value = serde_json::from_str(&list.stdout).unwrap_or(Value::Null);
            let request = &v.get(0)?["request"];
            Some((
                request["id"].as_str()?.to_owned(),
                request["created_ms"].as_u64()? / 1000,
            ))
        },
    );
    let self_approval = w.bglass("alice", &["approve", &id]);
    assert_eq!(self_approval.code, Some(3), "{}", self_approval.stderr);
    assert!(
        self_approval
            .stderr
            .contains("you cannot approve your own request (self_approval)"),
        "{}",
        self_approval.stderr
    );
    let carol_approval = w.bglass("carol", &["approve", &id]);
    assert_eq!(carol_approval.code, Some(3));
    assert!(
        carol_approval.stderr.contains("missing_role"),
        "{}",
        carol_approval.stderr
    );

    // Approved two whole seconds after it was asked: the grant's TTL must count from here.
    wait_past(created_s + 1, "two seconds after the request");
    let approved = w.bglass("bob", &["approve", &id]);
    assert_eq!(approved.code, Some(0), "{}", approved.stderr);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["status"], "granted");
    assert_eq!(view["approved_by"], serde_json::json!(["bob"]));
    // The TTL counts from the approval, not from the request.
    let created_s = view["created_ms"].as_u64().unwrap() / 1000;
    let nbf = view["grant"]["nbf"].as_u64().unwrap();
    let exp = view["grant"]["exp"].as_u64().unwrap();
    assert!(
        nbf >= created_s + 2,
        "granted at {nbf}, asked at {created_s}"
    );
    assert_eq!(exp - nbf, 1800);
    let curl = w.bglass("alice", &["curl", "argocd", "/api/health"]);
    assert_eq!(curl.code, Some(0), "{}", curl.stderr);

    // Emergency: issued at once, short TTL, review open until an approver closes it.
    let emergency = w.bglass(
        "carol",
        &[
            "access",
            "argocd",
            "--reason",
            "prod down",
            "--incident",
            "INC-3",
            "--emergency",
            "--json",
        ],
    );
    assert_eq!(emergency.code, Some(0), "{}", emergency.stderr);
    let view: Value = serde_json::from_str(&emergency.stdout).unwrap();
    let grant = view["grant"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        view["grant"]["exp"].as_u64().unwrap() - view["grant"]["nbf"].as_u64().unwrap(),
        600
    );
    assert_eq!(view["grant"]["review_open"], true);
    let open = w.bglass("bob", &["grants", "--json"]);
    let listed: Value = serde_json::from_str(&open.stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["grant"]["id"] == grant.as_str() && g["grant"]["review_open"] == true)
    );
    let self_review = w.bglass("carol", &["review", &grant, "--note", "fine"]);
    assert_eq!(self_review.code, Some(3));
    let review = w.bglass(
        "bob",
        &["review", &grant, "--note", "justified: prod was down"],
    );
    assert_eq!(review.code, Some(0), "{}", review.stderr);
    let again = w.bglass("alice", &["review", &grant, "--note", "again"]);
    assert_eq!(again.code, Some(3));
    assert!(
        again.stderr.contains("already_reviewed"),
        "{}",
        again.stderr
    );

    // The auditor sees it: one bypass, reviewed by bob.
    let home = tempfile::tempdir().unwrap();
    let report = run(bglass_tests::command("bglass", home.path())
        .args(["audit", "report", "--json", "--key", &w.proxies[0].key])
        .arg(w.proxies[0].log_dir()));
    assert_eq!(report.code, Some(0), "{}", report.stderr);
    let r: Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(r["bypasses"][0]["reviewed_by"], "bob");
    assert_eq!(r["uses_outside_grants"], serde_json::json!([]));
    assert_no_panic(&report);
}
