//! SSH and TCP access end to end: a real OpenSSH sshd trusting the bglass SSH CA, the real
//! system `ssh` through `bglass tunnel`, and a real Redis reached with `redis-cli` through
//! `bglass forward`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bglass_tests::system_ssh;
use bglass_tests::world::{PASSPHRASE, SSH_CATALOG, World, current_user};
use bglass_tests::{bin, eventually, first_line, loopback_port, run, wait_past};
use serde_json::Value;

fn world(extra_cas: &[String]) -> World {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder,approver"), ("carol", "responder")],
    );
    w.start_sshd(extra_cas);
    w.start_redis();
    w.catalog(SSH_CATALOG);
    w.start_all();
    w
}

/// The events of the proxy's log (the inner event of each entry); `None` while a read
/// races the proxy's writing (polls try again).
fn events(w: &World) -> Option<Vec<Value>> {
    let events = bglass_tests::attack::try_events(w, 0).ok()?;
    Some(
        events
            .into_iter()
            .map(|e| e["event"]["event"].clone())
            .collect(),
    )
}

/// Runs the system ssh directly against sshd (not through the proxy) with a key and cert.
fn direct_ssh(w: &World, key: &std::path::Path, cert: &std::path::Path) -> bglass_tests::Run {
    let (port, _) = w.sshd.clone().unwrap();
    run(Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "IdentitiesOnly=yes", "-i"])
        .arg(key)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .args([
            "-p",
            &port.to_string(),
            &format!("{}@127.0.0.1", current_user()),
            "echo",
            "direct-ok",
        ]))
}

#[test]
fn ssh_runs_commands_with_a_certificate_and_passes_the_exit_status() {
    let w = world(&[]);
    w.access("alice", "bastion");
    let user = current_user();
    let ok = w.bglass(
        "alice",
        &["ssh", "bastion", "--user", &user, "--", "echo", "ok"],
    );
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert_eq!(ok.stdout, "ok\n");
    let three = w.bglass(
        "alice",
        &[
            "ssh", "bastion", "--user", &user, "--", "sh", "-c", "exit 3",
        ],
    );
    assert_eq!(three.code, Some(3), "{}", three.stderr);
    // Arguments arrive as given, quoting included.
    let quoted = w.bglass(
        "alice",
        &[
            "ssh", "bastion", "--user", &user, "--", "printf", "%s|", "a b", "it's",
        ],
    );
    assert_eq!(quoted.stdout, "a b|it's|", "{}", quoted.stderr);

    // Without a command: a shell on a PTY (here fed from a pipe), its exit status passed on.
    let mut shell = Command::new(bin("bglass"))
        .env("BGLASS_PASSPHRASE", PASSPHRASE)
        .env("HOME", w.dir.path())
        .arg("--config")
        .arg(&w.responder("alice").config)
        .args(["ssh", "bastion", "--user", &user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo from-a-pty-$((6*7)); tty; exit 4\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("from-a-pty-42"), "{text}");
    assert!(
        text.contains("/dev/pts/"),
        "the shell did not get a PTY: {text}"
    );

    // sshd accepted a certificate naming alice and the grant.
    let log = std::fs::read_to_string(w.dir.path().join("sshd/sshd.log")).unwrap();
    assert!(
        log.contains("Accepted certificate ID \"bglass:alice:g-"),
        "{log}"
    );
    // Audited: the certificate, and each tunnel opened and closed with its bytes (a close
    // is recorded as the proxy sees the tunnel end).
    let ev = eventually(
        Duration::from_secs(10),
        "four tunnel closes in the log",
        || {
            let ev = events(&w)?;
            (ev.iter()
                .filter(|e| e.get("tunnel_close").is_some())
                .count()
                >= 4)
                .then_some(ev)
        },
    );
    let certs: Vec<&Value> = ev.iter().filter_map(|e| e.get("ssh_certificate")).collect();
    assert_eq!(certs.len(), 4);
    assert_eq!(certs[0]["principals"], serde_json::json!(["breakglass"]));
    let closes: Vec<&Value> = ev.iter().filter_map(|e| e.get("tunnel_close")).collect();
    assert!(closes.len() >= 4, "{ev:?}");
    assert!(
        closes
            .iter()
            .all(|c| c["bytes_up"].as_u64().unwrap() > 0 && c["bytes_down"].as_u64().unwrap() > 0)
    );
}

#[test]
fn certificates_end_with_the_grant_foreign_cas_and_wrong_host_keys_are_refused() {
    // A CA sshd does not trust, to sign a certificate for the same key.
    let scratch = tempfile::tempdir().unwrap();
    let rogue = scratch.path().join("rogue_ca");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&rogue)
            .status()
            .unwrap()
            .success()
    );
    let w = world(&[]);

    // A 5-second grant: save its key and certificate for the system ssh.
    let exp = w.access("alice", "brief")["grant"]["exp"].as_u64().unwrap();
    let saved = w.bglass(
        "alice",
        &["ssh", "brief", "--user", &current_user(), "--save-cert"],
    );
    assert_eq!(saved.code, Some(0), "{}", saved.stderr);
    let ssh_dir = w.ssh_dir("alice");
    let key = ssh_dir.join("brief");
    let cert = ssh_dir.join("brief-cert.pub");
    // Valid now: sshd accepts it (directly, to test the certificate alone).
    let before = direct_ssh(&w, &key, &cert);
    assert_eq!(before.code, Some(0), "{}", before.stderr);
    assert_eq!(before.stdout, "direct-ok\n");
    // After the grant's end, sshd itself refuses it.
    wait_past(exp, "the 5-second grant to end");
    let after = direct_ssh(&w, &key, &cert);
    assert_ne!(after.code, Some(0), "an expired certificate was accepted");
    let log = std::fs::read_to_string(w.dir.path().join("sshd/sshd.log")).unwrap();
    assert!(
        log.contains("expired"),
        "sshd did not refuse for expiry: {log}"
    );

    // The same key certified by another CA: refused.
    let pubkey = scratch.path().join("brief.pub");
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    std::fs::write(&pubkey, out.stdout).unwrap();
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&rogue)
            .args(["-I", "rogue", "-n", "breakglass", "-V", "-5m:+1h"])
            .arg(&pubkey)
            .status()
            .unwrap()
            .success()
    );
    let forged = direct_ssh(&w, &key, &scratch.path().join("brief-cert.pub"));
    assert_ne!(
        forged.code,
        Some(0),
        "a certificate from another CA was accepted"
    );

    // A host whose key is not the catalog's pinned key: refused before authenticating.
    w.access("alice", "impostor");
    let impostor = w.bglass(
        "alice",
        &[
            "ssh",
            "impostor",
            "--user",
            &current_user(),
            "--",
            "echo",
            "no",
        ],
    );
    assert_eq!(impostor.code, Some(3), "{}", impostor.stderr);
    assert!(
        impostor
            .stderr
            .contains("does not match the key pinned in the catalog"),
        "{}",
        impostor.stderr
    );
    assert!(impostor.stdout.is_empty());
}

#[test]
fn the_system_ssh_reaches_sshd_through_the_printed_snippet_with_a_non_default_config() {
    let w = world(&[]);
    w.access("carol", "bastion");
    let saved = w.bglass(
        "carol",
        &["ssh", "bastion", "--user", &current_user(), "--save-cert"],
    );
    assert_eq!(saved.code, Some(0), "{}", saved.stderr);
    // The snippet exactly as bglass printed it: carol's config is not the default one, so
    // the ProxyCommand must name it (absolute), or `bglass tunnel` looks in ~/.config.
    let snippet = system_ssh::snippet(&saved.stdout);
    let carol_cfg = std::fs::canonicalize(&w.responder("carol").config).unwrap();
    assert!(
        snippet.contains(&format!(
            "ProxyCommand bglass --config {} tunnel bastion",
            carol_cfg.display()
        )),
        "{snippet}"
    );
    assert!(snippet.contains("StrictHostKeyChecking yes"), "{snippet}");
    let ssh_config = w.dir.path().join("ssh_config");
    std::fs::write(&ssh_config, format!("{snippet}    BatchMode yes\n")).unwrap();
    let out = system_ssh::run_with(
        &ssh_config,
        &["bastion.breakglass", "echo", "through-the-proxy"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "through-the-proxy\n");
}

#[test]
fn forward_serves_redis_cli_and_revocation_closes_forwarded_connections_within_a_second() {
    let w = world(&[]);
    let granted = w.access("carol", "redis");
    let grant = granted["grant"]["id"].as_str().unwrap().to_owned();
    let mut forward = Command::new(bin("bglass"))
        .env("BGLASS_PASSPHRASE", PASSPHRASE)
        .env("HOME", w.dir.path())
        .arg("--config")
        .arg(&w.responder("carol").config)
        .args(["forward", "redis", "--local", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It listens before it says where ("forwarding 127.0.0.1:PORT to redis …").
    let local = loopback_port(&first_line(&mut forward));
    let cli = |args: &[&str]| {
        run(Command::new("redis-cli")
            .args(["-p", &local.to_string()])
            .args(args))
    };
    assert_eq!(cli(&["ping"]).stdout.trim(), "PONG");
    assert_eq!(cli(&["set", "incident", "INC-20"]).stdout.trim(), "OK");
    assert_eq!(cli(&["get", "incident"]).stdout.trim(), "INC-20");

    // A connection left open through the forwarder.
    let mut open = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
    open.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = open.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"+PONG\r\n");
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let revoked_at = Instant::now();
    let revoke = w.bglass("alice", &["revoke", &grant, "--reason", "done"]);
    assert_eq!(revoke.code, Some(0), "{}", revoke.stderr);
    let revoke_took = revoked_at.elapsed();
    let closed = open.read(&mut buf);
    let cut_after = revoked_at.elapsed();
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "the forwarded connection stayed open: {closed:?}"
    );
    assert!(
        cut_after.saturating_sub(revoke_took) < Duration::from_secs(1),
        "closed {cut_after:?} after the revoke started, which took {revoke_took:?}"
    );
    let _ = forward.kill();
    let _ = forward.wait();

    // Bytes audited both ways, and the cut attributed to the revocation.
    let revoked =
        |c: &Value| c["reason"] == "revoked" && c["bytes_up"] == 6 && c["bytes_down"] == 7;
    let ev = eventually(
        Duration::from_secs(10),
        "the revoked tunnel's close in the log",
        || {
            let ev = events(&w)?;
            ev.iter()
                .filter_map(|e| e.get("tunnel_close"))
                .any(revoked)
                .then_some(ev)
        },
    );
    let closes: Vec<&Value> = ev.iter().filter_map(|e| e.get("tunnel_close")).collect();
    assert!(closes.len() >= 4, "{ev:?}");
    // The redis-cli runs moved bytes both ways too (the readiness probe's empty connection
    // is a tunnel with no bytes, also recorded).
    assert!(closes.iter().filter(|c| c["bytes_up"].as_u64().unwrap() > 0 && c["bytes_down"].as_u64().unwrap() > 0).count() >= 4);
}

#[test]
fn a_thousand_concurrent_tunnels_through_one_proxy_none_dropped() {
    use bglass_tests::raw::Raw;
    use bglass_tests::tunnels::{self, ECHO_CATALOG};
    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    w.set_tcp_port(tunnels::start_echo());
    w.catalog(ECHO_CATALOG);
    w.start_all();
    let token = w.access("alice", "echo")["grant"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = Raw::new(
        &w.responder("alice").config,
        &w.proxies[0].url(),
        &w.proxies[0].pin,
    );
    let result = tunnels::run(&w, &alice, &token, 1000, w.pid(0).unwrap());
    assert_eq!(result.opened, 1000, "{result:?}");
    assert_eq!(result.echoed, 1000, "{result:?}");
    // Every tunnel is in the log, opened and closed (closes are recorded as the proxy sees
    // each tunnel end).
    let count = |ev: &[Value], kind: &str| ev.iter().filter(|e| e.get(kind).is_some()).count();
    let ev = eventually(
        Duration::from_secs(30),
        "1000 tunnel closes in the log",
        || {
            let ev = events(&w)?;
            (count(&ev, "tunnel_close") >= 1000).then_some(ev)
        },
    );
    assert_eq!(count(&ev, "tunnel_open"), 1000);
    assert_eq!(count(&ev, "tunnel_close"), 1000);
}

#[test]
fn access_to_an_ssh_or_tcp_service_suggests_ssh_or_forward_not_curl() {
    let w = world(&[]);
    let ask = |service: &str| {
        let out = w.bglass(
            "carol",
            &["access", service, "--reason", "r", "--incident", "INC-9"],
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
    };
    let ssh = ask("bastion");
    assert!(ssh.contains("bglass ssh bastion"), "{ssh}");
    let tcp = ask("redis");
    assert!(tcp.contains("bglass forward redis"), "{tcp}");
    for text in [&ssh, &tcp] {
        assert!(
            !text.contains("bglass curl") && !text.contains("bglass open"),
            "{text}"
        );
    }
}
