//! SSH certificates that a responder could keep: bound to the proxy's egress address, alive
//! for minutes rather than for the whole grant (a fresh one per session while the grant
//! lives), and principals that one service's certificate cannot reuse on another host
//! unless the catalog says so. Against a real OpenSSH sshd and the system `ssh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use bglass_tests::world::{SSH_CATALOG, World, current_user};
use bglass_tests::{Run, assert_no_panic, command, now_secs, run, wait_past};
use serde_json::Value;

fn world(proxy_toml_extra: &str) -> World {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder,approver"), ("carol", "responder")],
    );
    w.start_sshd(&[]);
    w.start_redis();
    w.catalog(SSH_CATALOG);
    if !proxy_toml_extra.is_empty() {
        bglass_tests::toml::append(&w.proxies[0].config, proxy_toml_extra);
    }
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

/// `bglass ssh SERVICE --save-cert` as `who`; the key and certificate paths.
fn save_cert(w: &World, who: &str, service: &str) -> (Run, PathBuf, PathBuf) {
    let saved = w.bglass(
        who,
        &["ssh", service, "--user", &current_user(), "--save-cert"],
    );
    assert_eq!(saved.code, Some(0), "{}", saved.stderr);
    let dir = w.responder(who).config.parent().unwrap().join("state/ssh");
    (
        saved,
        dir.join(service),
        dir.join(format!("{service}-cert.pub")),
    )
}

/// The system ssh straight to sshd (not through the proxy) with a saved key and
/// certificate, from the loopback source address `from`.
fn direct_ssh(w: &World, from: &str, key: &Path, cert: &Path) -> Run {
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
            "-o",
            "IdentitiesOnly=yes",
            "-b",
            from,
            "-i",
        ])
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

fn sshd_log(w: &World) -> String {
    std::fs::read_to_string(w.dir.path().join("sshd/sshd.log")).unwrap_or_default()
}

/// `ssh-keygen -L` of a certificate, in UTC.
fn describe(cert: &Path) -> String {
    let out = run(Command::new("ssh-keygen")
        .env("TZ", "UTC")
        .arg("-L")
        .arg("-f")
        .arg(cert));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS` (UTC).
fn epoch_of(text: &str) -> u64 {
    let n = |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap() };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    // Days from the civil date (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).unwrap()
}

/// The certificate's validity window (from, to), Unix seconds.
fn validity(description: &str) -> (u64, u64) {
    let line = description
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Valid: from "))
        .unwrap_or_else(|| panic!("no validity in {description}"));
    let (from, to) = line.split_once(" to ").unwrap();
    (epoch_of(from.trim()), epoch_of(to.trim()))
}

#[test]
fn a_saved_certificate_is_refused_by_sshd_from_any_address_but_the_proxys() {
    let w = world("");
    w.access("alice", "bastion");
    let (_, key, cert) = save_cert(&w, "alice", "bastion");
    let description = describe(&cert);
    assert!(
        description.contains("source-address 127.0.0.1/32"),
        "the certificate is not bound to the proxy's address: {description}"
    );

    // The responder takes the key and certificate to another machine (here: another
    // loopback address) and logs in directly, bypassing the proxy: sshd refuses.
    let elsewhere = direct_ssh(&w, "127.0.0.2", &key, &cert);
    assert_ne!(
        elsewhere.code,
        Some(0),
        "a saved certificate logged in from another address: {}",
        elsewhere.stdout
    );
    assert!(!elsewhere.stdout.contains("direct-ok"));
    let log = sshd_log(&w);
    assert!(
        log.contains("not from a permitted source address"),
        "sshd did not refuse for the source address: {log}"
    );

    // The same certificate from the proxy's own address is accepted: the address is what
    // was refused, not the certificate.
    let from_proxy = direct_ssh(&w, "127.0.0.1", &key, &cert);
    assert_eq!(from_proxy.code, Some(0), "{}", from_proxy.stderr);
    assert_eq!(from_proxy.stdout, "direct-ok\n");

    // Through the proxy, as documented, it works too.
    let through = w.bglass(
        "alice",
        &[
            "ssh",
            "bastion",
            "--user",
            &current_user(),
            "--",
            "echo",
            "ok",
        ],
    );
    assert_eq!(through.code, Some(0), "{}", through.stderr);
    assert_eq!(through.stdout, "ok\n");
}

#[test]
fn certificates_live_minutes_not_the_grants_hours_and_each_session_gets_a_fresh_one() {
    let w = world("");
    let granted = w.access("alice", "bastion");
    let grant_exp = granted["grant"]["exp"].as_u64().unwrap();
    let grant_nbf = granted["grant"]["nbf"].as_u64().unwrap();
    assert!(
        grant_exp - grant_nbf >= 30 * 60,
        "the test needs a long grant: {granted}"
    );
    let asked = now_secs();
    let (saved, _, cert) = save_cert(&w, "alice", "bastion");
    let (from, to) = validity(&describe(&cert));
    assert!(
        to <= asked + 5 * 60 + 5,
        "the certificate is valid until {to}, more than 5 minutes after {asked} (grant ends {grant_exp})"
    );
    assert!(to - from <= 6 * 60 + 5, "window {from}..{to}");
    assert!(to <= grant_exp);
    // The output says how short-lived it is and how to get another.
    assert!(
        saved.stdout.contains("5 minutes") && saved.stdout.contains("--save-cert"),
        "{}",
        saved.stdout
    );
    let help = w.bglass("alice", &["ssh", "--help"]);
    assert!(help.stdout.contains("minutes"), "{}", help.stdout);

    // Two sessions: two certificates, each short.
    for _ in 0..2 {
        let out = w.bglass(
            "alice",
            &["ssh", "bastion", "--user", &current_user(), "--", "true"],
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    let certs: Vec<Value> = events(&w)
        .into_iter()
        .filter_map(|e| e.get("ssh_certificate").cloned())
        .collect();
    assert_eq!(certs.len(), 3, "{certs:?}");
    let serials: std::collections::BTreeSet<u64> = certs
        .iter()
        .map(|c| c["serial"].as_u64().unwrap())
        .collect();
    assert_eq!(serials.len(), 3, "{certs:?}");
    for c in &certs {
        let before = c["valid_before"].as_u64().unwrap();
        assert!(before <= now_secs() + 5 * 60 + 5, "{c}");
    }
}

#[test]
fn a_saved_certificate_dies_with_its_short_life_while_bglass_ssh_keeps_working() {
    let w = world("[ssh]\ncertificate_ttl = \"10s\"\n");
    w.access("alice", "bastion");
    let (_, key, cert) = save_cert(&w, "alice", "bastion");
    let ok = direct_ssh(&w, "127.0.0.1", &key, &cert);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let (_, to) = validity(&describe(&cert));
    wait_past(to, "the certificate's end");
    let late = direct_ssh(&w, "127.0.0.1", &key, &cert);
    assert_ne!(late.code, Some(0), "an expired certificate logged in");
    assert!(sshd_log(&w).contains("expired"), "{}", sshd_log(&w));
    // The grant still lives: a new session gets a new certificate.
    let again = w.bglass(
        "alice",
        &[
            "ssh",
            "bastion",
            "--user",
            &current_user(),
            "--",
            "echo",
            "still-ok",
        ],
    );
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.stdout, "still-ok\n");
}

/// Two SSH services on different hosts; `{shared}` is the second one's principal and
/// `{opt_a}`/`{opt_b}` their opt-in lines.
const SHARING_CATALOG: &str = r#"version = 1

[[service]]
name = "bastion"
kind = "ssh"
description = "SSH bastion"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "30m"
principals = ["breakglass"]
host_key = "{hostkey}"
{opt_a}

[[service]]
name = "db-host"
kind = "ssh"
description = "Database host"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 1
principals = ["dba", "{shared}"]
host_key = "{hostkey}"
{opt_b}
"#;

fn sharing(shared: &str, opt_a: bool, opt_b: bool) -> String {
    let opt = |on: bool| if on { "share_principals = true" } else { "" };
    SHARING_CATALOG
        .replace("{shared}", shared)
        .replace("{opt_a}", opt(opt_a))
        .replace("{opt_b}", opt(opt_b))
}

fn check(w: &World, catalog: &str) -> (Run, PathBuf) {
    let path = w.dir.path().join("candidate.toml");
    let (port, key) = w.sshd.clone().unwrap();
    std::fs::write(
        &path,
        catalog
            .replace("{ssh}", &port.to_string())
            .replace("{hostkey}", &key),
    )
    .unwrap();
    let out = run(command("bglass-proxy", w.dir.path())
        .args(["check", "--services"])
        .arg(&path)
        .arg("--roster")
        .arg(w.proxies[0].dir.join("responders.toml")));
    assert_no_panic(&out);
    (out, path)
}

#[test]
fn ssh_services_sharing_a_principal_are_refused_unless_both_opt_in_even_on_live_reload() {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder,approver")]);
    w.start_sshd(&[]);

    // Distinct principals: valid.
    let (out, _) = check(&w, &sharing("dbadmin", false, false));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // A certificate for bastion would log in to db-host as well: refused, located at the
    // second listing of the principal.
    let (out, path) = check(&w, &sharing("breakglass", false, false));
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("error: {}:22:", path.display())),
        "{}",
        out.stderr
    );
    assert!(
        first.contains("\"breakglass\"")
            && first.contains("bastion")
            && first.contains("share_principals"),
        "{}",
        out.stderr
    );
    // One side opting in is not enough.
    let (out, _) = check(&w, &sharing("breakglass", true, false));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let (out, _) = check(&w, &sharing("breakglass", false, true));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    // Both opting in: the catalog says so explicitly.
    let (out, _) = check(&w, &sharing("breakglass", true, true));
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    // A running proxy with the good catalog is pushed the sharing one: it keeps the last
    // good catalog.
    w.catalog(&sharing("dbadmin", false, false));
    w.start_all();
    let digest_before = w.status("alice")[0]["status"]["catalog"].clone();
    // db-host now claims bastion's principal, neither opting in.
    bglass_tests::toml::edit(&w.proxies[0].dir.join("services.toml"), |doc| {
        bglass_tests::toml::service(doc, "db-host")["principals"] =
            toml_edit::value(toml_edit::Array::from_iter(["dba", "breakglass"]));
    });
    w.hup(0);
    let (status, rejected) = w.catalog_rejection("alice");
    assert!(
        rejected.contains("services.toml:") && rejected.contains("share_principals"),
        "{rejected}"
    );
    assert_eq!(status[0]["status"]["catalog"], digest_before);
    let reloads: Vec<Value> = events(&w)
        .into_iter()
        .filter_map(|e| e.get("config_reload").cloned())
        .collect();
    assert!(
        reloads
            .iter()
            .any(|r| r["file"] == "catalog" && r["accepted"] == false),
        "{reloads:?}"
    );
    // The last good catalog still serves.
    w.access("alice", "bastion");
    let ssh = w.bglass(
        "alice",
        &[
            "ssh",
            "bastion",
            "--user",
            &current_user(),
            "--",
            "echo",
            "ok",
        ],
    );
    assert_eq!(ssh.code, Some(0), "{}", ssh.stderr);
    let issued: Vec<Value> = events(&w)
        .into_iter()
        .filter_map(|e| e.get("ssh_certificate").cloned())
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["principals"], serde_json::json!(["breakglass"]));
}
