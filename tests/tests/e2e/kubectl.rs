//! `bglass open kubernetes-api --kubeconfig FILE` with the real `kubectl`: the kubeconfig's
//! server is the local forwarder, which adds the grant; the proxy injects the cluster's
//! credential, which the upstream (nginx serving `/version` only with it) checks. kubectl
//! never sees that credential, and without the forwarder's token it gets nothing.

use std::process::{Command, Stdio};

use bglass_tests::world::{PASSPHRASE, TEST_CATALOG, World};
use bglass_tests::{bin, first_line, loopback_port, run};

const KUBE_SERVICE: &str = r#"
[[service]]
name = "kubernetes-api"
kind = "http"
description = "Kubernetes control plane (nginx standing in)"
upstream = "127.0.0.1:{nginx}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
health = { path = "/version", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }
"#;

const VERSION: &str = r#"{"major":"1","minor":"30","gitVersion":"v1.30.0-bglass-test","gitCommit":"0000000000000000000000000000000000000000","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.22.0","compiler":"gc","platform":"linux/amd64"}"#;

fn kubectl(
    home: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> bglass_tests::Run {
    run(Command::new("kubectl")
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--request-timeout", "10s"])
        .args(args))
}

#[test]
fn kubectl_reaches_the_api_through_the_forwarder_kubeconfig() {
    let mut w = World::new(&["proxy-a"], &[("carol", "responder")]);
    w.start_nginx();
    std::fs::write(w.dir.path().join("nginx/www/version"), VERSION).unwrap();
    w.catalog(&format!("{TEST_CATALOG}{KUBE_SERVICE}"));
    w.start_all();
    w.access("carol", "kubernetes-api");

    let kubeconfig = w.dir.path().join("kube/config");
    let mut forwarder = Command::new(bin("bglass"))
        .env("BGLASS_PASSPHRASE", PASSPHRASE)
        .env("HOME", w.dir.path())
        .arg("--config")
        .arg(&w.responder("carol").config)
        .args([
            "open",
            "kubernetes-api",
            "--local",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ended with the test, whichever way it ends.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let printed = first_line(&mut forwarder);
    let _forwarder = Reap(forwarder);
    let port = loopback_port(&printed);
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        text.contains(&format!("server: http://127.0.0.1:{port}/kube-")),
        "{text}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kubeconfig).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds a token");
    assert!(
        !text.contains(bglass_tests::world::UPSTREAM_PASSWORD)
            && !text.contains(&bglass_tests::world::upstream_credential()),
        "the cluster's credential reached the kubeconfig"
    );

    let home = tempfile::tempdir().unwrap();
    let out = kubectl(home.path(), &kubeconfig, &["version", "-o", "json"]);
    assert_eq!(out.code, Some(0), "kubectl: {}\n{}", out.stderr, w.logs());
    let version: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.30.0-bglass-test",
        "{}",
        out.stdout
    );

    // The same kubeconfig with another secret: the forwarder refuses it.
    let forged = kubeconfig.with_file_name("forged");
    let secret = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .and_then(|url| url.split("/kube-").nth(1))
        .unwrap()
        .to_owned();
    std::fs::write(&forged, text.replace(&secret, &"0".repeat(secret.len()))).unwrap();
    let out = kubectl(home.path(), &forged, &["version", "-o", "json"]);
    assert_ne!(
        out.code,
        Some(0),
        "a forged secret was served: {}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("v1.30.0-bglass-test"),
        "{}",
        out.stdout
    );

    // nginx itself answers /version only with the injected credential.
    let direct = kubeconfig.with_file_name("direct");
    std::fs::write(
        &direct,
        text.replace(
            &format!("127.0.0.1:{port}/kube-{secret}"),
            &format!("127.0.0.1:{}", w.nginx_port),
        ),
    )
    .unwrap();
    let out = kubectl(home.path(), &direct, &["version", "-o", "json"]);
    assert_ne!(
        out.code,
        Some(0),
        "nginx served without the credential: {}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("v1.30.0-bglass-test"),
        "{}",
        out.stdout
    );
}
