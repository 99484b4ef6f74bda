//! Attacks on the proxy, each run against the real binaries on loopback: a catalog push
//! that tries to send the proxy's own key or a bound credential to an address of its
//! choosing; the CA key left on the host; connection exhaustion by peers without a key; a
//! revocation landing while a tool is still answering; a responder removed from the roster
//! who keeps streaming; a tool whose cookies, identity headers and echoes would reach the
//! responder; requests that never expire and approvals of approvers who left; a vault key
//! others can read; and a handshake flood that would fill the log and hide other refusals.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bglass_core::ExposeSecret;
use bglass_core::id::SecretName;
use bglass_core::vault::{Vault, VaultIdentity};
use bglass_tests::attack::{
    Capture, Receiver, SlowUpstream, certless, denials, events, wait_events,
};
use bglass_tests::raw::Raw;
use bglass_tests::wait::within;
use bglass_tests::world::{TEST_CATALOG, World, upstream_credential};
use bglass_tests::{command, eventually, run};
use serde_json::Value;

fn world(responders: &[(&str, &str)]) -> World {
    let mut w = World::new(&["proxy-a"], responders);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w
}

/// Adds `text` (tables) to proxy 0's proxy.toml.
fn configure(w: &World, text: &str) {
    bglass_tests::toml::append(&w.proxies[0].config, text);
}

/// Writes proxy 0's catalog and makes the proxy read it at once.
fn push_catalog(w: &World, text: &str) {
    std::fs::write(w.proxies[0].dir.join("services.toml"), text).unwrap();
    w.hup(0);
}

/// The rejected catalog reloads recorded so far: their errors.
fn rejected_reloads(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| {
            let r = &e["event"]["event"]["config_reload"];
            (r["accepted"] == false).then(|| r["error"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// Waits up to `secs` for a child to exit; its status, or `None` if it still runs.
fn wait_exit(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    within(Duration::from_secs(secs), || child.try_wait().unwrap())
}

/// The requests for /api/health in nginx's access log: the data plane's and the health
/// prober's (every 10 s, one a service on nginx).
fn health_requests(w: &World) -> usize {
    std::fs::read_to_string(w.dir.path().join("nginx/access.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("/api/health"))
        .count()
}

fn grant_of(access: &Value) -> (String, String) {
    let g = &access["grant"];
    (
        g["id"].as_str().unwrap().to_owned(),
        g["token"].as_str().unwrap().to_owned(),
    )
}

/// The proxy's own signing key as stored in its vault (base64 PKCS#8).
fn signing_key_b64(w: &World) -> String {
    let dir = &w.proxies[0].dir;
    let identity = VaultIdentity::open_file(&dir.join("vault.key")).unwrap();
    let vault = Vault::open(&dir.join("secrets.age"), &identity).unwrap();
    vault
        .proxy_key(&SecretName::new("bglass.signing_key").unwrap())
        .unwrap()
        .expose_secret()
        .to_owned()
}

#[test]
fn a_catalog_push_can_neither_inject_a_proxy_key_nor_move_a_credential() {
    let mut w = world(&[("alice", "responder,approver")]);
    let hooks = Receiver::start(Arc::new(Mutex::new(Vec::new())));
    configure(
        &w,
        &format!(
            "[[notify]]\nurl = \"http://127.0.0.1:{}/hook\"\nformat = \"json\"",
            hooks.port
        ),
    );
    let capture = Capture::start();
    let exfil = format!(
        "{TEST_CATALOG}\n[[service]]\nname = \"exfil\"\nkind = \"http\"\ndescription = \"x\"\nupstream = \"127.0.0.1:{}\"\nmax_ttl = \"1h\"\ndefault_ttl = \"1h\"\nhealth = {{ path = \"/\", expect_status = 200, auth = true }}\ninject = {{ header = \"Authorization\", secret = \"bglass.signing_key\", format = \"{{}}\" }}\n",
        capture.port
    )
    .replace("{nginx}", &w.nginx_port.to_string())
    .replace("{dead}", &w.dead_port.to_string());

    // Offline validation names the rule.
    let evil = w.dir.path().join("evil.toml");
    std::fs::write(&evil, &exfil).unwrap();
    let check = run(command("bglass-proxy", w.dir.path())
        .args(["check", "--services"])
        .arg(&evil)
        .arg("--roster")
        .arg(w.proxies[0].dir.join("responders.toml")));
    assert_ne!(check.code, Some(0), "a reserved secret must not validate");
    assert!(
        check.stderr.contains("proxy's own keys"),
        "{}",
        check.stderr
    );

    w.start_all();
    let good = std::fs::read_to_string(w.proxies[0].dir.join("services.toml")).unwrap();

    // 1. Inject the proxy's signing key into a probe to our listener.
    push_catalog(&w, &exfil);
    wait_events(&w, 0, 10, "the rejected key push", |e| {
        rejected_reloads(e)
            .iter()
            .any(|r| r.contains("bglass.signing_key"))
    });
    hooks.wait_for("CONFIG PUSH REJECTED", 20);

    // 2. Move grafana (whose credential is bound to nginx) to our listener.
    let mut moved: toml_edit::DocumentMut = good.parse().unwrap();
    bglass_tests::toml::service(&mut moved, "grafana")["upstream"] =
        toml_edit::value(format!("127.0.0.1:{}", capture.port));
    let moved = moved.to_string();
    push_catalog(&w, &moved);
    wait_events(&w, 0, 10, "the rejected move", |e| {
        rejected_reloads(e)
            .iter()
            .any(|r| r.contains("grafana") && r.contains("not bound"))
    });

    // 3. A new service at our address naming the bound credential.
    let mirror = format!(
        "{good}\n[[service]]\nname = \"mirror\"\nkind = \"http\"\ndescription = \"x\"\nupstream = \"127.0.0.1:{}\"\nmax_ttl = \"1h\"\ndefault_ttl = \"1h\"\nhealth = {{ path = \"/\", expect_status = 200, auth = true }}\ninject = {{ header = \"Authorization\", secret = \"nginx_basic\", format = \"Basic {{}}\" }}\n",
        capture.port
    );
    push_catalog(&w, &mirror);
    wait_events(&w, 0, 10, "the rejected mirror", |e| {
        rejected_reloads(e)
            .iter()
            .any(|r| r.contains("mirror") && r.contains("not bound"))
    });

    // The last good catalog still serves grafana from nginx.
    w.access("alice", "grafana");
    let out = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("nginx says ok"));

    // After a whole round of health probes that began after the pushes, nothing reached
    // our listener. A round probes grafana, argocd and prom on nginx: a fourth probe after
    // the request above is from a round that started after it.
    let seen = health_requests(&w);
    eventually(
        Duration::from_secs(30),
        "a round of health probes after the pushes",
        || health_requests(&w) >= seen + 4,
    );
    let key = signing_key_b64(&w);
    assert!(!capture.saw(key.as_bytes()), "the signing key was sent");
    assert!(
        !capture.saw(upstream_credential().as_bytes()),
        "the credential was sent"
    );
    assert_eq!(capture.connections(), 0, "{:?}", capture.received());

    // A proxy started with the key-injecting catalog refuses to start, sending nothing.
    w.kill(0);
    std::fs::write(w.proxies[0].dir.join("services.toml"), &exfil).unwrap();
    let mut proxy = command("bglass-proxy", w.dir.path())
        .args(["run", "--config"])
        .arg(&w.proxies[0].config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut proxy, 10);
    if status.is_none() {
        let _ = proxy.kill();
    }
    assert!(
        status.is_some_and(|s| !s.success()),
        "the proxy started with a catalog injecting its own key"
    );
    assert!(!capture.saw(key.as_bytes()));
    hooks.stop();
}

#[test]
fn the_ca_key_is_offline_and_reissuing_the_certificate_keeps_the_pin() {
    let mut w = World::new(&["proxy-a", "proxy-b"], &[("alice", "responder")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    let dir = w.proxies[0].dir.clone();
    let offline = dir.join("offline/ca.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&offline).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let identity = VaultIdentity::open_file(&dir.join("vault.key")).unwrap();
    let vault = Vault::open(&dir.join("secrets.age"), &identity).unwrap();
    assert!(
        vault
            .proxy_key(&SecretName::new("bglass.ca_key").unwrap())
            .is_none(),
        "the CA key must not be in the running proxy's vault"
    );

    // Another proxy's CA key is refused.
    let wrong = run(command("bglass-proxy", w.dir.path())
        .args(["reissue-cert", "--config"])
        .arg(&w.proxies[0].config)
        .arg("--ca-key")
        .arg(w.proxies[1].dir.join("offline/ca.key")));
    assert_ne!(wrong.code, Some(0));
    assert!(wrong.stderr.contains("not the CA key"), "{}", wrong.stderr);

    let chain_before = std::fs::read(dir.join("tls/chain.pem")).unwrap();
    let out = run(command("bglass-proxy", w.dir.path())
        .args(["reissue-cert", "--config"])
        .arg(&w.proxies[0].config)
        .arg("--ca-key")
        .arg(&offline));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains(&w.proxies[0].pin), "{}", out.stdout);
    assert_ne!(
        std::fs::read(dir.join("tls/chain.pem")).unwrap(),
        chain_before
    );

    // Responders' pins still hold: the new certificate is accepted.
    w.start(0);
    w.access("alice", "grafana");
    let out = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("nginx says ok"));
}

#[test]
fn peers_without_a_key_cannot_exhaust_connections() {
    let mut w = world(&[("alice", "responder")]);
    // Few descriptors, as a small host would have: 1,000 held connections would exhaust them.
    w.start_wrapped(0, &["prlimit", "--nofile=768:768"]);
    let proxy: SocketAddr = format!("127.0.0.1:{}", w.proxies[0].port).parse().unwrap();
    let pin = w.proxies[0].pin.clone();
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // Without a key: /healthz answers and the connection is closed; nothing else answers.
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = certless(proxy, &pin, attacker).await.unwrap();
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: p\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut got)).await;
        assert!(
            read.is_ok(),
            "a keyless connection was kept open after /healthz"
        );
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
        let mut tls = certless(proxy, &pin, attacker).await.unwrap();
        tls.write_all(b"GET /v1/status HTTP/1.1\r\nHost: p\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut got)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
        assert!(text.contains("no_client_key"), "{text}");
    });

    // 1,000 connections held open from one address, never finishing a handshake.
    let held = runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..1000 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(attacker, 0)).unwrap();
            if let Ok(s) = socket.connect(proxy).await {
                held.push(s);
            }
        }
        held
    });
    assert!(held.len() > 900, "only {} connections opened", held.len());

    // A responder from another address is still answered, promptly.
    w.access("alice", "grafana");
    let started = Instant::now();
    let out = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, w.logs());
    assert!(out.stdout.contains("nginx says ok"));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered after {:?}",
        started.elapsed()
    );
    let metrics = w.metrics(0);
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("bglass_connections_refused_total{reason=\"source_limit\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(refused > 500.0, "{metrics}");
    drop(held);
}

#[test]
fn a_revoke_while_the_tool_is_still_answering_cuts_the_request_and_the_use_was_logged_first() {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder,approver")]);
    let slow = SlowUpstream::start(Duration::from_secs(12));
    w.catalog(&format!(
        "version = 1\n\n[[service]]\nname = \"slowtool\"\nkind = \"http\"\ndescription = \"A tool slow to answer\"\nupstream = \"127.0.0.1:{}\"\nmax_ttl = \"1h\"\ndefault_ttl = \"1h\"\nhealth = {{ path = \"/health\", expect_status = 200 }}\n",
        slow.port
    ));
    w.start_all();
    let (grant, _) = grant_of(&w.access("alice", "slowtool"));
    let mut curl = w.spawn_bglass("alice", &["curl", "slowtool", "/work/item-7"]);
    let heads = slow.wait_request("/work/item-7", 20);
    assert!(heads.starts_with("GET /work/item-7"), "{heads}");

    // While the tool holds the request, the log already holds its use.
    let logged = events(&w, 0);
    let start = logged
        .iter()
        .find(|e| e["event"]["event"]["use_start"]["path"] == "/work/item-7")
        .unwrap_or_else(|| panic!("no use_start while the request is in flight: {logged:?}"));
    let start_index = start["index"].as_u64().unwrap();

    let revoked_at = Instant::now();
    let revoke = w.bglass("alice", &["revoke", &grant, "--reason", "done"]);
    assert_eq!(revoke.code, Some(0), "{}", revoke.stderr);
    let took = revoked_at.elapsed();
    let status = wait_exit(&mut curl, 6).expect("the request was not cut");
    assert!(
        revoked_at.elapsed().saturating_sub(took) < Duration::from_secs(1),
        "cut {:?} after the revoke was recorded",
        revoked_at.elapsed().saturating_sub(took)
    );
    assert!(!status.success());
    let mut out = String::new();
    curl.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(!out.contains("slow answer"), "{out}");

    // The outcome names its start.
    wait_events(&w, 0, 5, "the use's outcome", |e| {
        e.iter().any(|x| {
            let u = &x["event"]["event"]["use"];
            u["start"].as_u64() == Some(start_index) && u["status"] == 499
        })
    });
}

#[test]
fn removing_a_responder_from_the_roster_ends_their_streams_and_tunnels() {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder,approver"), ("carol", "responder")],
    );
    w.start_nginx();
    let echo = bglass_tests::tunnels::start_echo();
    w.set_tcp_port(echo);
    w.catalog(&format!(
        "{TEST_CATALOG}\n[[service]]\nname = \"echo\"\nkind = \"tcp\"\ndescription = \"TCP echo\"\nupstream = \"127.0.0.1:{{redis}}\"\nmax_ttl = \"1h\"\ndefault_ttl = \"1h\"\nprobe = \"connect\"\n"
    ));
    w.start_all();
    w.access("carol", "grafana");
    w.access("carol", "echo");

    let mut stream = w.spawn_bglass("carol", &["curl", "grafana", "/slow"]);
    let mut tunnel = w.spawn_bglass("carol", &["tunnel", "echo"]);
    let mut tin = tunnel.stdin.take().unwrap();
    let mut tout = tunnel.stdout.take().unwrap();
    tin.write_all(b"ping\n").unwrap();
    let mut got = [0u8; 5];
    tout.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping\n");
    // The stream is flowing.
    let mut first = [0u8; 1024];
    stream
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();

    // The operator removes carol.
    let roster = w.responder("alice").entry.clone();
    std::fs::write(
        w.proxies[0].dir.join("responders.toml"),
        format!("{roster}\n"),
    )
    .unwrap();
    w.hup(0);
    let removed = Instant::now();
    assert!(
        wait_exit(&mut stream, 3).is_some(),
        "carol's stream went on after she left the roster"
    );
    // The tunnel is closed: its output ends.
    let mut rest = Vec::new();
    let reader = std::thread::spawn(move || {
        let _ = tout.read_to_end(&mut rest);
        rest
    });
    eventually(Duration::from_secs(3), "carol's tunnel to close", || {
        reader.is_finished()
    });
    assert!(removed.elapsed() < Duration::from_secs(3));
    drop(tin);
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    wait_events(&w, 0, 5, "the revocations", |e| {
        let revokes = e
            .iter()
            .filter(|x| {
                x["event"]["event"]["revoke"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("carol is no longer in the roster"))
            })
            .count();
        let closed = e
            .iter()
            .any(|x| x["event"]["event"]["tunnel_close"]["reason"] == "revoked");
        revokes == 2 && closed
    });
}

#[test]
fn cookies_identity_headers_and_echoes_of_the_credential_do_not_cross_the_data_plane() {
    let mut w = world(&[("alice", "responder,approver")]);
    w.start_all();
    let p = &w.proxies[0];
    let alice = Raw::new(&w.responder("alice").config, &p.url(), &p.pin);
    let (grant, token) = grant_of(&w.access("alice", "grafana"));
    let with_grant = [("bglass-grant", token.as_str())];

    let trace = alice.send("TRACE", "/s/grafana/api/health", None, &with_grant);
    assert_eq!(
        (trace.status, trace.code.as_str()),
        (405, "method_not_allowed")
    );

    let set = alice.send("GET", "/s/grafana/set-cookie", None, &with_grant);
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.body, "nginx says ok\n");
    for forbidden in ["set-cookie", "bglass-refusal", "x-echo-auth"] {
        assert!(
            set.header(forbidden).is_none(),
            "{forbidden} reached the client: {set:?}"
        );
    }
    assert!(
        !set.headers
            .iter()
            .any(|(_, v)| v.contains(&upstream_credential())),
        "{set:?}"
    );

    // The tool sees the cookie it set (from the proxy's jar) and the proxy's view of the
    // client, never the client's claims.
    let echo = alice.send(
        "GET",
        "/s/grafana/echo-headers",
        None,
        &[
            ("bglass-grant", token.as_str()),
            ("x-forwarded-for", "10.6.6.6"),
            ("x-webauth-user", "admin"),
            ("x-real-ip", "10.6.6.6"),
            ("cookie", "session=forged"),
        ],
    );
    assert_eq!(
        echo.body,
        "xff=127.0.0.1|webauth=|realip=|cookie=session=minted-with-the-credential"
    );

    // A very long path is stored cut, so that no use entry nears the entry size limit.
    let long = format!("/s/grafana/{}", "a".repeat(6_000));
    let answer = alice.send("GET", &long, None, &with_grant);
    assert_eq!(answer.status, 404, "{answer:?}");
    let stored: Vec<String> = events(&w, 0)
        .iter()
        .filter_map(|e| {
            e["event"]["event"]["use_start"]["path"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|p| p.starts_with("/aaaa"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].len() <= 1024 && stored[0].ends_with('…'),
        "{}",
        stored[0].len()
    );

    // `bglass curl` does not present the tool's bglass-refusal header as a refusal.
    let out = w.bglass("alice", &["curl", "grafana", "/set-cookie"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        !out.stderr.contains("your_session_expired"),
        "{}",
        out.stderr
    );

    // The jar ends with the grant.
    let revoke = w.bglass("alice", &["revoke", &grant]);
    assert_eq!(revoke.code, Some(0), "{}", revoke.stderr);
    let (_, token2) = grant_of(&w.access("alice", "grafana"));
    let echo = alice.send(
        "GET",
        "/s/grafana/echo-headers",
        None,
        &[("bglass-grant", token2.as_str())],
    );
    assert_eq!(echo.body, "xff=127.0.0.1|webauth=|realip=|cookie=");
}

#[test]
fn requests_expire_and_approvals_of_approvers_who_left_do_not_count() {
    let mut w = world(&[
        ("alice", "responder"),
        ("bob", "responder,approver"),
        ("dave", "responder,approver"),
    ]);
    w.catalog(&format!(
        "{TEST_CATALOG}\n[[service]]\nname = \"deploy\"\nkind = \"http\"\ndescription = \"Two approvals\"\nupstream = \"127.0.0.1:{{nginx}}\"\nmax_ttl = \"1h\"\ndefault_ttl = \"30m\"\napprovals = 2\nhealth = {{ path = \"/api/health\", expect_status = 200 }}\ninject = {{ header = \"Authorization\", secret = \"nginx_basic\", format = \"Basic {{}}\" }}\n"
    ));
    configure(&w, "[limits]\nrequest_ttl = \"8s\"");
    w.start_all();
    // Asks and leaves the request pending; its id.
    let ask = |service: &str| -> String {
        let out = w.bglass(
            "alice",
            &[
                "access",
                service,
                "--reason",
                "r",
                "--incident",
                "INC-1",
                "--wait",
                "1s",
            ],
        );
        assert_eq!(out.code, Some(3), "{}", out.stderr);
        out.stderr
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .find(|word| bglass_core::id::RequestId::new(word).is_ok())
            .unwrap_or_else(|| panic!("no request id in {}", out.stderr))
            .to_owned()
    };

    // Nobody decides in time: the request expires, and a late approval is refused.
    let late = ask("argocd");
    wait_events(&w, 0, 10, "the expiry", |_| {
        denials(&w, 0)
            .iter()
            .any(|(reason, _)| reason == "request_expired")
    });
    let approve = w.bglass("bob", &["approve", &late]);
    assert_ne!(approve.code, Some(0));
    assert!(approve.stderr.contains("expired"), "{}", approve.stderr);

    // Two approvals needed; bob approves, then leaves the roster; dave's approval alone
    // does not issue the grant.
    let request = ask("deploy");
    let first = w.bglass("bob", &["approve", &request]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let roster: String = ["alice", "dave"]
        .iter()
        .map(|id| format!("{}\n", w.responder(id).entry))
        .collect();
    std::fs::write(w.proxies[0].dir.join("responders.toml"), roster).unwrap();
    w.hup(0);
    wait_events(&w, 0, 10, "the roster reload", |e| {
        e.iter().any(|x| {
            let r = &x["event"]["event"]["config_reload"];
            r["file"] == "roster" && r["accepted"] == true
        })
    });
    let second = w.bglass("dave", &["approve", &request]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let granted = events(&w, 0)
        .iter()
        .any(|x| x["event"]["event"]["grant"]["request"] == request.as_str());
    assert!(
        !granted,
        "a grant was issued on the approval of an approver who left"
    );
}

#[test]
fn a_vault_key_others_can_read_stops_the_proxy() {
    let w = world(&[("alice", "responder")]);
    let key = w.proxies[0].dir.join("vault.key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut proxy = command("bglass-proxy", w.dir.path())
        .args(["run", "--config"])
        .arg(&w.proxies[0].config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut proxy, 10);
    if status.is_none() {
        let _ = proxy.kill();
    }
    assert!(status.is_some_and(|s| !s.success()), "the proxy started");
    let mut err = String::new();
    proxy
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_handshake_flood_is_summarised_blocked_and_hides_no_other_source() {
    let mut w = world(&[("alice", "responder")]);
    w.start_all();
    let p = &w.proxies[0];
    let flood: IpAddr = "127.0.0.2".parse().unwrap();
    let other: IpAddr = "127.0.0.3".parse().unwrap();
    for _ in 0..300 {
        let stranger = Raw::stranger_from(&p.url(), &p.pin, Some(flood));
        assert_eq!(stranger.send("GET", "/v1/status", None, &[]).status, 0);
    }
    let stranger = Raw::stranger_from(&p.url(), &p.pin, Some(other));
    assert_eq!(stranger.send("GET", "/v1/status", None, &[]).status, 0);

    wait_events(&w, 0, 10, "the other source's refusal", |_| {
        denials(&w, 0)
            .iter()
            .any(|(r, d)| r == "unknown_key" && d.contains("127.0.0.3"))
    });
    let one_by_one = denials(&w, 0)
        .iter()
        .filter(|(r, _)| r == "unknown_key")
        .count();
    assert_eq!(one_by_one, 2, "{:?}", denials(&w, 0));
    // The flooding address is now turned away at accept; the responder is not.
    let metrics = w.metrics(0);
    assert!(
        metrics.lines().any(|l| l
            .starts_with("bglass_connections_refused_total{reason=\"refusal_flood\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    w.access("alice", "grafana");
    // The minute's summary names the flooding source and its count.
    wait_events(&w, 0, 80, "the summary", |_| {
        denials(&w, 0)
            .iter()
            .any(|(r, d)| r == "unknown_key_summary" && d.contains("127.0.0.2: "))
    });
}
