//! HTTPS upstreams end to end: a real nginx with TLS on loopback that requires the
//! injected bearer token, reached through the proxy's data plane and health prober with a
//! pinned CA or certificate and an explicit server name; a wrong pin refused, audited, and
//! nothing sent; and nothing ever sent in cleartext to a port the catalog says speaks TLS.

use std::time::Duration;

use bglass_tests::https::{Certs, Recorder, TlsNginx, ca_and_server, is_client_hello};
use bglass_tests::world::World;
use bglass_tests::{command, eventually, run};
use serde_json::Value;

/// The credential the proxy injects; nginx accepts nothing else.
const TOKEN: &str = "k8s-bearer-3c9f17d2e4";
const SERVER_NAME: &str = "kubernetes.internal";

/// An https service on `port` with `pin` and `server_name`.
fn service(name: &str, port: u16, pin: &str, server_name: &str) -> String {
    format!(
        r#"
[[service]]
name = "{name}"
kind = "http"
description = "Kubernetes API over TLS"
upstream = "https://127.0.0.1:{port}"
upstream_pin = "{pin}"
upstream_server_name = "{server_name}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
health = {{ path = "/healthz", expect_status = 200 }}
inject = {{ header = "Authorization", secret = "k8s_token", format = "Bearer {{}}" }}
"#
    )
}

/// One proxy serving `services`, with the token in its vault, and alice.
fn world(services: &[String]) -> World {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder,approver")]);
    w.catalog(&format!("version = 1\n{}", services.concat()));
    w.set_secret("k8s_token", TOKEN);
    w.start_all();
    w
}

fn events(w: &World) -> Vec<Value> {
    let home = tempfile::tempdir().unwrap();
    let out = run(command("bglass", home.path())
        .args(["audit", "show", "--json"])
        .arg(w.proxies[0].log_dir()));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str::<Vec<Value>>(&out.stdout)
        .unwrap()
        .into_iter()
        .map(|e| e["event"]["event"].clone())
        .collect()
}

/// Polls `bglass status` until `service` has a health verdict; returns (health, detail).
fn health(w: &World, service: &str) -> (String, String) {
    eventually(
        Duration::from_secs(25),
        &format!("a health verdict for {service}"),
        || {
            let s = w.status("alice")[0]["status"]["services"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == service)?
                .clone();
            (s["health"] != "unknown").then(|| {
                (
                    s["health"].as_str().unwrap_or_default().to_owned(),
                    s["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
        },
    )
}

#[test]
fn pinned_https_upstreams_serve_through_the_data_plane_and_the_prober() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = ca_and_server(SERVER_NAME);
    let nginx = TlsNginx::start(&scratch.path().join("nginx"), &certs, TOKEN);
    let w = world(&[
        // The CA pinned: it must then validate the server certificate for the name.
        service("k8s", nginx.port, &certs.ca_pin, SERVER_NAME),
        // The server certificate itself pinned.
        service("k8s-leaf", nginx.port, &certs.leaf_pin, SERVER_NAME),
        // A server that speaks only TLS 1.2.
        service("k8s-tls12", nginx.port_tls12, &certs.ca_pin, SERVER_NAME),
    ]);
    for name in ["k8s", "k8s-leaf", "k8s-tls12"] {
        w.access("alice", name);
        let out = w.bglass("alice", &["curl", name, "/api/v1/namespaces"]);
        assert_eq!(out.code, Some(0), "{name}: {}\n{}", out.stderr, w.logs());
        assert_eq!(out.stdout, "kubernetes says ok\n", "{name}");
    }
    // nginx saw the injected token, over TLS, for the configured name (SNI and Host).
    let log = nginx.access_log();
    let api: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("/api/v1/namespaces"))
        .collect();
    assert_eq!(api.len(), 3, "{log}");
    for line in &api {
        assert!(line.contains(" 200 "), "{line}");
        assert!(line.contains(&format!("auth=\"Bearer {TOKEN}\"")), "{line}");
        assert!(line.contains(&format!("host=\"{SERVER_NAME}\"")), "{line}");
        assert!(line.contains(&format!("sni=\"{SERVER_NAME}\"")), "{line}");
    }
    assert!(api.iter().any(|l| l.contains("tls=\"TLSv1.3\"")), "{log}");
    assert!(api.iter().any(|l| l.contains("tls=\"TLSv1.2\"")), "{log}");
    // The health prober speaks TLS with the same pin.
    for name in ["k8s", "k8s-leaf", "k8s-tls12"] {
        let (up, detail) = health(&w, name);
        assert_eq!(up, "up", "{name}: {detail}");
    }
    // Uses are audited as usual.
    let uses = events(&w)
        .into_iter()
        .filter(|e| e["use"]["status"] == 200)
        .count();
    assert_eq!(uses, 3);

    // The operator pins another CA for k8s: the connection pooled under the old pin is not
    // reused; the next request is refused.
    let other = ca_and_server(SERVER_NAME);
    let digest = w.status("alice")[0]["status"]["catalog"].clone();
    bglass_tests::toml::edit(&w.proxies[0].dir.join("services.toml"), |doc| {
        bglass_tests::toml::service(doc, "k8s")["upstream_pin"] =
            toml_edit::value(other.ca_pin.as_str());
    });
    // A new pin is a new upstream: the operator binds the credential to it on purpose
    // (without that, the push is rejected and the old pin stays in force).
    w.set_secret("k8s_token", TOKEN);
    w.hup(0);
    eventually(Duration::from_secs(15), "the new catalog in force", || {
        let catalog = w.status("alice")[0]["status"]["catalog"].clone();
        catalog != digest && !catalog.is_null()
    });
    let out = w.bglass("alice", &["curl", "k8s", "/api/v1/namespaces"]);
    assert!(
        out.stderr.contains("(upstream_pin_mismatch)"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        nginx
            .access_log()
            .lines()
            .filter(|l| l.contains("/api/v1/namespaces"))
            .count(),
        3
    );
}

#[test]
fn a_wrong_pin_is_refused_with_its_code_audited_and_nothing_reaches_the_upstream() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = ca_and_server(SERVER_NAME);
    // Another CA and certificate for the same name: what an impostor would present.
    let other: Certs = ca_and_server(SERVER_NAME);
    let nginx = TlsNginx::start(&scratch.path().join("nginx"), &certs, TOKEN);
    let w = world(&[
        service("k8s-wrong", nginx.port, &other.ca_pin, SERVER_NAME),
        service("k8s-wrong-leaf", nginx.port, &other.leaf_pin, SERVER_NAME),
        // The right CA, but the certificate does not name this server.
        service("k8s-misnamed", nginx.port, &certs.ca_pin, "etcd.internal"),
    ]);
    for name in ["k8s-wrong", "k8s-wrong-leaf"] {
        w.access("alice", name);
        let out = w.bglass("alice", &["curl", name, "/api/v1/secrets"]);
        assert_ne!(out.code, Some(0), "{name}: {}", out.stdout);
        assert!(
            out.stderr.contains("(upstream_pin_mismatch)"),
            "{name}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{name}: {}", out.stdout);
    }
    w.access("alice", "k8s-misnamed");
    let out = w.bglass("alice", &["curl", "k8s-misnamed", "/api/v1/secrets"]);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(
        out.stderr.contains("(upstream_certificate_invalid)"),
        "{}",
        out.stderr
    );

    // Audited: a denial with the code, naming the service and the grant.
    let ev = events(&w);
    let denials: Vec<&Value> = ev
        .iter()
        .filter_map(|e| e.get("denial"))
        .filter(|d| d["reason"] == "upstream_pin_mismatch")
        .collect();
    assert_eq!(denials.len(), 2, "{ev:?}");
    for d in &denials {
        assert!(d["grant"].as_str().unwrap().starts_with("g-"), "{d}");
        assert!(
            d["detail"].as_str().unwrap().contains(&certs.leaf_pin),
            "the refusal names the certificate presented: {d}"
        );
    }
    assert!(
        ev.iter()
            .filter_map(|e| e.get("denial"))
            .any(
                |d| d["reason"] == "upstream_certificate_invalid" && d["service"] == "k8s-misnamed"
            ),
        "{ev:?}"
    );

    // The prober refuses the same certificate.
    let (up, detail) = health(&w, "k8s-wrong");
    assert_eq!(up, "down");
    assert!(detail.contains("pin"), "{detail}");
    // nginx never saw a request: no token, and no request line at all.
    let log = nginx.access_log();
    assert!(!log.contains(TOKEN), "the token reached nginx: {log}");
    assert!(log.trim().is_empty(), "a request reached nginx: {log}");
}

#[test]
fn nothing_is_sent_in_cleartext_to_an_https_upstream_by_the_data_plane_or_the_prober() {
    let certs = ca_and_server(SERVER_NAME);
    let recorder = Recorder::start();
    let w = world(&[service(
        "recorded",
        recorder.port,
        &certs.ca_pin,
        SERVER_NAME,
    )]);
    // The prober has connected at start-up.
    recorder.wait_for(1, Duration::from_secs(20));
    w.access("alice", "recorded");
    let out = w.bglass("alice", &["curl", "recorded", "/api/v1/secrets"]);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stderr.contains("(upstream_"), "{}", out.stderr);
    let seen = recorder.wait_for(2, Duration::from_secs(20));
    for bytes in &seen {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("GET") && !text.contains("Bearer") && !text.contains(TOKEN),
            "cleartext reached the TLS port: {text:?}"
        );
        assert!(
            is_client_hello(bytes),
            "not a TLS ClientHello: {:?}",
            &bytes[..bytes.len().min(64)]
        );
    }
}
