//! `bglass canary` against a real proxy, nginx (which checks the injected credential), sshd
//! and Redis: every pathway proven ready; each kind of break found and named by its step
//! (a wrong pin, the canary removed from the roster, a credential missing, an upstream
//! down, an sshd that does not trust the proxy's SSH CA), told to a webhook as it breaks
//! and recovers, exposed on the proxy's /metrics and in `bglass status`; and a canary grant
//! good for its probe only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bglass_core::envelope::{AccessRequest, Action};
use bglass_core::id::ServiceName;
use bglass_tests::attack::Receiver;
use bglass_tests::raw::Raw;
use bglass_tests::world::{World, current_user};
use bglass_tests::{Run, command, eventually, run};
use serde_json::Value;

/// `grafana` (http, credential checked by nginx), `bastion` (ssh), `redis` (tcp).
const CATALOG: &str = r#"version = 1

[[service]]
name = "grafana"
kind = "http"
description = "Dashboards"
upstream = "127.0.0.1:{nginx}"
max_ttl = "4h"
default_ttl = "1h"
approvals = 1
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }

[[service]]
name = "bastion"
kind = "ssh"
description = "SSH bastion"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 2
principals = ["breakglass"]
host_key = "{hostkey}"

[[service]]
name = "redis"
kind = "tcp"
description = "A TCP service"
upstream = "127.0.0.1:{redis}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 1
probe = "redis"
"#;

fn canary(w: &World, hook: u16) -> (Run, Vec<Value>) {
    canary_with(w, hook, &w.responder("canary").config)
}

/// `bglass canary` with the config at `config`.
fn canary_with(w: &World, hook: u16, config: &std::path::Path) -> (Run, Vec<Value>) {
    let textfile = w.dir.path().join("canary.prom");
    let url = format!("http://127.0.0.1:{hook}/hook");
    let user = current_user();
    let args = [
        "canary",
        "--json",
        "--ssh-user",
        &user,
        "--webhook",
        &url,
        "--textfile",
        textfile.to_str().unwrap(),
    ];
    let out = run(command("bglass", w.dir.path())
        .env("BGLASS_PASSPHRASE", bglass_tests::world::PASSPHRASE)
        .arg("--config")
        .arg(config)
        .args(args));
    let found = serde_json::from_str(&out.stdout).unwrap_or_default();
    (out, found)
}

/// The step of `service`'s pathway (`None`: it works), from a run's JSON.
fn step(found: &[Value], service: &str) -> Option<String> {
    let p = found
        .iter()
        .find(|p| p["service"] == service)
        .unwrap_or_else(|| panic!("no pathway for {service}: {found:?}"));
    if p["ok"] == true {
        None
    } else {
        Some(p["step"].as_str().unwrap().to_owned())
    }
}

fn canary_access(service: &str) -> Action {
    Action::Access(AccessRequest {
        service: ServiceName::new(service).unwrap(),
        ttl: None,
        reason: "probe".to_owned(),
        incident: "canary".to_owned(),
        emergency: false,
        drill: None,
        canary: true,
    })
}

#[test]
fn the_canary_proves_each_pathway_and_names_the_step_that_broke() {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder,approver"), ("canary", "canary")],
    );
    w.start_nginx();
    w.start_sshd(&[]);
    w.start_redis();
    w.catalog(CATALOG);
    w.start_all();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let hook = Receiver::start(Arc::clone(&bodies));

    // 1. Every pathway works: no approvals were needed, and each proxy knows.
    let (out, found) = canary(&w, hook.port);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    for service in ["grafana", "bastion", "redis"] {
        assert_eq!(step(&found, service), None, "{service}: {found:?}");
    }
    let prom = std::fs::read_to_string(w.dir.path().join("canary.prom")).unwrap();
    assert!(
        prom.contains("bglass_canary_ok{proxy=\"proxy-a\",service=\"grafana\",step=\"\"} 1"),
        "{prom}"
    );
    let metrics = w.metrics(0);
    assert!(
        metrics.contains("bglass_canary_last_success_age_seconds{service=\"bastion\"}"),
        "{metrics}"
    );
    let status = w.bglass("alice", &["status"]);
    assert!(status.stdout.contains("canary ok"), "{}", status.stdout);

    // 2. A canary grant is good for its probe only.
    let p = &w.proxies[0];
    let raw = Raw::new(&w.responder("canary").config, &p.url(), &p.pin);
    let granted = raw.send(
        "POST",
        "/v1/access",
        Some(raw.envelope(canary_access("grafana"), "proxy-a", 0)),
        &[],
    );
    assert_eq!(granted.status, 200, "{}", granted.body);
    let token = serde_json::from_str::<Value>(&granted.body).unwrap()["grant"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let grant = [("bglass-grant", token.as_str())];
    assert_eq!(
        raw.send("GET", "/s/grafana/api/health", None, &grant)
            .status,
        200
    );
    for (method, path) in [
        ("GET", "/s/grafana/api/dashboards"),
        ("POST", "/s/grafana/api/health"),
    ] {
        let refused = raw.send(method, path, Some(Vec::new()), &grant);
        assert_eq!(
            (refused.status, refused.code.as_str()),
            (403, "canary_probe_only"),
            "{method} {path}: {}",
            refused.body
        );
    }
    // Not an ordinary access (no responder role), and no responder gets a canary grant.
    let mut plain = canary_access("grafana");
    if let Action::Access(a) = &mut plain {
        a.canary = false;
    }
    let refused = raw.send(
        "POST",
        "/v1/access",
        Some(raw.envelope(plain, "proxy-a", 0)),
        &[],
    );
    assert_eq!(refused.code, "missing_role", "{}", refused.body);
    let alice = Raw::new(&w.responder("alice").config, &p.url(), &p.pin);
    let refused = alice.send(
        "POST",
        "/v1/access",
        Some(alice.envelope(canary_access("grafana"), "proxy-a", 0)),
        &[],
    );
    assert_eq!(refused.code, "missing_role", "{}", refused.body);
    // Its SSH certificate runs `true` and nothing else.
    let redis = raw.send(
        "POST",
        "/v1/access",
        Some(raw.envelope(canary_access("bastion"), "proxy-a", 0)),
        &[],
    );
    let ssh_token = serde_json::from_str::<Value>(&redis.body).unwrap()["grant"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_dir = tempfile::tempdir().unwrap();
    let key = key_dir.path().join("k");
    run(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let cert = raw.send(
        "POST",
        "/v1/ssh/bastion/certificate",
        Some(serde_json::to_vec(&serde_json::json!({ "public_key": public.trim() })).unwrap()),
        &[("bglass-grant", ssh_token.as_str())],
    );
    assert_eq!(cert.status, 200, "{}", cert.body);
    let text = serde_json::from_str::<Value>(&cert.body).unwrap()["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let cert_path = key_dir.path().join("k-cert.pub");
    std::fs::write(&cert_path, text).unwrap();
    let shown = run(std::process::Command::new("ssh-keygen")
        .args(["-L", "-f"])
        .arg(&cert_path));
    assert!(
        shown.stdout.contains("force-command true"),
        "{}",
        shown.stdout
    );
    assert!(!shown.stdout.contains("permit-pty"), "{}", shown.stdout);

    // 3. Each kind of break, named by its step; the webhook hears the break and the
    // recovery.
    // A credential missing: injection.
    let secrets = |args: &[&str]| {
        let out = run(command("bglass-proxy", w.dir.path())
            .args(["secrets"])
            .args(args)
            .arg("--config")
            .arg(&w.proxies[0].config));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    };
    secrets(&["remove", "nginx_basic"]);
    w.hup(0);
    let (out, found) = eventually(Duration::from_secs(10), "the credential gone", || {
        let (out, found) = canary(&w, hook.port);
        step(&found, "grafana").is_some().then_some((out, found))
    });
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert_eq!(
        step(&found, "grafana").as_deref(),
        Some("injection"),
        "{found:?}"
    );
    assert_eq!(step(&found, "redis"), None);
    let status = w.bglass("alice", &["status"]);
    assert!(
        status.stdout.contains("canary BROKEN at injection"),
        "{}",
        status.stdout
    );
    assert!(
        w.metrics(0)
            .contains("bglass_canary_ok{service=\"grafana\"} 0")
    );
    w.set_secret("nginx_basic", &bglass_tests::world::upstream_credential());
    w.hup(0);
    eventually(Duration::from_secs(10), "the credential back", || {
        let (_, found) = canary(&w, hook.port);
        step(&found, "grafana").is_none().then_some(())
    });
    let heard = |change: &str, service: &str| {
        bodies
            .lock()
            .unwrap()
            .iter()
            .any(|b| b["change"] == change && b["pathway"]["service"] == service)
    };
    assert!(
        heard("broken", "grafana") && heard("recovered", "grafana"),
        "{:?}",
        bodies.lock().unwrap()
    );

    // sshd no longer trusting the proxy's SSH CA: login.
    let ca = w.dir.path().join("sshd/ca.pub");
    let trusted = std::fs::read_to_string(&ca).unwrap();
    std::fs::write(&ca, "").unwrap();
    let (_, found) = canary(&w, hook.port);
    assert_eq!(
        step(&found, "bastion").as_deref(),
        Some("login"),
        "{found:?}"
    );
    std::fs::write(&ca, trusted).unwrap();

    // An upstream down (Redis's port taken away): upstream.
    let catalog = std::fs::read_to_string(w.proxies[0].dir.join("services.toml")).unwrap();
    let moved = catalog.replace(
        &format!("127.0.0.1:{}", w.redis_port),
        &format!("127.0.0.1:{}", w.dead_port),
    );
    std::fs::write(w.proxies[0].dir.join("services.toml"), moved).unwrap();
    let (_, found) = eventually(
        Duration::from_secs(15),
        "redis moved to a dead port",
        || {
            let (out, found) = canary(&w, hook.port);
            step(&found, "redis").is_some().then_some((out, found))
        },
    );
    assert_eq!(
        step(&found, "redis").as_deref(),
        Some("upstream"),
        "{found:?}"
    );
    std::fs::write(w.proxies[0].dir.join("services.toml"), catalog).unwrap();

    // A wrong pin in the canary's config: pin.
    let config = w.responder("canary").config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    let wrong = config.with_file_name("wrong-pin.toml");
    std::fs::write(
        &wrong,
        text.replace(&w.proxies[0].pin, &format!("sha256:{}", "ab".repeat(32))),
    )
    .unwrap();
    let (out, found) = canary_with(&w, hook.port, &wrong);
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert_eq!(found[0]["step"], "pin", "{found:?}");
    assert!(
        found[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("check the pin")),
        "{found:?}"
    );

    // The canary removed from the roster: roster.
    let roster = w.proxies[0].dir.join("responders.toml");
    std::fs::write(&roster, format!("{}\n", w.responder("alice").entry)).unwrap();
    let found = eventually(
        Duration::from_secs(15),
        "the canary out of the roster",
        || {
            let (_, found) = canary(&w, hook.port);
            (found.first().is_some_and(|p| p["service"].is_null())).then_some(found)
        },
    );
    assert_eq!(found[0]["step"], "roster", "{found:?}");
    assert!(
        found[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is your entry in its roster")),
        "{found:?}"
    );
    hook.stop();

    // 4. The log proves every canary grant was allowed: the canary role, no approvals,
    // one round long.
    w.stop(0);
    bglass_tests::audit::assert_policy_proven(&w, 0);
}
