//! The key agent (`bglass unlock` / `bglass lock`) with the real binaries: one unlock serves
//! ten later commands that have no passphrase source at all; `lock` and the time limit end
//! it (socket gone, process gone, commands back to needing the passphrase); and the attacks
//! of another user on the same machine fail: connecting as `nobody`, a socket directory or
//! socket path prepared by someone else, a stale socket, oversized and malformed requests,
//! and requests to sign what is not an envelope.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bglass_tests::world::{PASSPHRASE, TEST_CATALOG, World};
use bglass_tests::{EndAgent, Run, agent_pid, bin, eventually, root, run};

/// One proxy with nginx and the test catalog; carol responds.
fn world() -> World {
    let mut w = World::new(&["proxy-a"], &[("carol", "responder")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    w
}

/// A private runtime directory (what `$XDG_RUNTIME_DIR` is on a desktop).
fn runtime_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// `bglass --config CAROL ARGS` with `XDG_RUNTIME_DIR=runtime`, in a session of its own
/// (no controlling terminal), with no input and no `BGLASS_*` variable: no way to get a
/// passphrase unless `passphrase` is given.
fn bglass(w: &World, runtime: &Path, passphrase: bool, args: &[&str]) -> Run {
    let mut cmd = Command::new("setsid");
    cmd.arg("-w").arg(bin("bglass"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BGLASS_") {
            cmd.env_remove(&key);
        }
    }
    if passphrase {
        cmd.env("BGLASS_PASSPHRASE", PASSPHRASE);
    }
    cmd.env("HOME", w.dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .env("XDG_RUNTIME_DIR", runtime)
        .current_dir(root())
        .stdin(Stdio::null())
        .arg("--config")
        .arg(&w.responder("carol").config)
        .args(args);
    run(&mut cmd)
}

/// Unlocks carol's key for `duration`; the agent's pid and socket. The agent is ended with
/// the test (see [`EndAgent`]): keep the first value alive.
fn unlock(w: &World, runtime: &Path, duration: &str) -> (EndAgent, u32, PathBuf) {
    let out = bglass(w, runtime, true, &["unlock", "--for", duration]);
    assert_eq!(out.code, Some(0), "unlock: {}", out.stderr);
    let pid = agent_pid(&out.stdout);
    let socket = out
        .stdout
        .split("socket ")
        .nth(1)
        .and_then(|rest| rest.split(").").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no socket in {:?}", out.stdout));
    assert!(
        socket.starts_with(runtime.join("bglass")),
        "{}",
        socket.display()
    );
    (EndAgent(pid), pid, socket)
}

fn alive(pid: u32) -> bool {
    // A zombie has ended (it only waits to be reaped by its parent).
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.trim_start().starts_with('Z'))
    })
}

/// Asserts that a command got its signatures from nowhere: it failed for want of a
/// passphrase.
#[track_caller]
fn assert_needs_passphrase(out: &Run) {
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("cannot ask for the passphrase"),
        "{}",
        out.stderr
    );
}

/// `agent-probe SOCKET ARGS…`, as `as_user` when given (via setpriv).
fn probe(socket: &Path, args: &[&str], as_user: Option<&str>) -> String {
    let mut cmd = match as_user {
        Some(user) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={user}"),
                "--regid=nogroup",
                "--clear-groups",
                "--",
            ])
            .arg(bin("agent-probe"));
            c
        }
        None => Command::new(bin("agent-probe")),
    };
    let out = run(cmd.arg(socket).args(args));
    assert_eq!(out.code, Some(0), "agent-probe: {}", out.stderr);
    out.stdout
}

#[test]
fn one_unlock_serves_ten_commands_without_a_prompt_and_lock_ends_it() {
    let w = world();
    let runtime = runtime_dir();
    let rt = runtime.path();
    // Without an agent, a command has no way to get the passphrase here.
    assert_needs_passphrase(&bglass(&w, rt, false, &["status"]));

    let (_reap, pid, socket) = unlock(&w, rt, "10m");
    assert!(alive(pid));
    let dir = socket.parent().unwrap();
    let dmeta = std::fs::symlink_metadata(dir).unwrap();
    assert_eq!(dmeta.mode() & 0o777, 0o700, "agent directory mode");
    let smeta = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!(smeta.mode() & 0o777, 0o600, "socket mode");

    // Ten commands, none with a passphrase: each signs envelopes and TLS handshakes
    // through the agent.
    let started = std::time::Instant::now();
    let ok = |args: &[&str]| {
        let out = bglass(&w, rt, false, args);
        assert_eq!(out.code, Some(0), "{args:?}: {}\n{}", out.stderr, w.logs());
        assert!(
            !out.stderr.contains("assphrase"),
            "{args:?}: {}",
            out.stderr
        );
        out
    };
    let who = ok(&["whoami"]);
    assert!(
        who.stdout.contains("agent:     unlocked until"),
        "{}",
        who.stdout
    );
    ok(&["status"]);
    ok(&["grants"]);
    ok(&["requests"]);
    let access = ok(&[
        "access",
        "grafana",
        "--reason",
        "agent test",
        "--incident",
        "INC-A",
        "--json",
    ]);
    let granted: serde_json::Value = serde_json::from_str(&access.stdout).unwrap();
    let grant = granted["grant"]["id"]
        .as_str()
        .or_else(|| granted["grant"].as_str())
        .or_else(|| granted["id"].as_str())
        .unwrap_or_else(|| panic!("no grant id in {granted}"))
        .to_owned();
    let body = ok(&["curl", "grafana", "/api/health"]);
    assert!(!body.stdout.is_empty());
    let grants = ok(&["grants", "--json"]);
    assert!(grants.stdout.contains(&grant), "{}", grants.stdout);
    // A forwarder that outlives the agent (a 1h grant, a 10m agent) says so at the start:
    // its later TLS handshakes need the agent.
    let mut open = Command::new(bin("bglass"))
        .env_remove("BGLASS_PASSPHRASE")
        .env("HOME", w.dir.path())
        .env("XDG_RUNTIME_DIR", rt)
        .arg("--config")
        .arg(&w.responder("carol").config)
        .args(["open", "grafana", "--no-browser"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = open.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let warned = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(20)).ok())
        .take(5)
        .any(|line| line.contains("the key agent ends at") && line.contains("before the grant"));
    let _ = open.kill();
    let _ = open.wait();
    assert!(warned, "no warning that the agent ends before the grant");
    ok(&["revoke", &grant, "--reason", "done with the agent test"]);
    ok(&["requests", "--json"]);
    ok(&["whoami"]);
    eprintln!(
        "ten commands through the agent took {:?}",
        started.elapsed()
    );

    let out = bglass(&w, rt, false, &["lock"]);
    assert_eq!(out.code, Some(0), "lock: {}", out.stderr);
    assert!(out.stdout.contains("Locked"), "{}", out.stdout);
    assert!(!socket.exists(), "the socket outlived lock");
    eventually(Duration::from_secs(10), "the agent process ends", || {
        !alive(pid)
    });
    assert_needs_passphrase(&bglass(&w, rt, false, &["whoami"]));
    // Locking again is harmless.
    let again = bglass(&w, rt, false, &["lock"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.stdout.contains("No key agent"), "{}", again.stdout);
}

#[test]
fn the_agent_ends_at_its_time_limit() {
    let w = world();
    let runtime = runtime_dir();
    let rt = runtime.path();
    let (_reap, pid, socket) = unlock(&w, rt, "3s");
    let out = bglass(&w, rt, false, &["whoami"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    eventually(
        Duration::from_secs(15),
        "the agent ends at its limit",
        || !socket.exists() && !alive(pid),
    );
    assert_needs_passphrase(&bglass(&w, rt, false, &["status"]));
}

#[test]
fn another_user_is_refused_even_when_the_socket_is_reachable() {
    let w = world();
    let runtime = runtime_dir();
    let rt = runtime.path();
    let (_reap, pid, socket) = unlock(&w, rt, "10m");
    // As it is, nobody cannot even reach the socket (0700 directories).
    let out = probe(&socket, &[r#"{"op":"hello"}"#], Some("nobody"));
    assert!(out.starts_with("connect:"), "{out}");
    // A careless chmod opens the path: the agent itself still refuses another uid.
    for p in [rt, socket.parent().unwrap()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for request in [
        r#"{"op":"hello"}"#,
        r#"{"op":"lock"}"#,
        r#"{"op":"sign_tls_client_verify","message":"AAAA"}"#,
    ] {
        let out = probe(&socket, &[request], Some("nobody"));
        assert!(
            out.contains("refused") && out.contains("uid 65534 may not use this agent"),
            "{request}: {out}"
        );
        assert!(
            !out.contains("certificate") && !out.contains("signature"),
            "{out}"
        );
    }
    assert!(alive(pid), "another user's lock ended the agent");
    // The owner still can.
    let out = probe(&socket, &[r#"{"op":"hello"}"#], None);
    assert!(out.contains(r#""status":"hello""#), "{out}");
    // The owner's bglass does not use an agent whose directory others can enter.
    let out = bglass(&w, rt, true, &["whoami"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("not using the key agent"),
        "{}",
        out.stderr
    );
    for p in [rt, socket.parent().unwrap()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let lock = bglass(&w, rt, false, &["lock"]);
    assert_eq!(lock.code, Some(0), "{}", lock.stderr);
}

#[test]
fn the_agent_signs_nothing_but_fresh_envelopes_of_its_own_and_survives_bad_input() {
    let w = world();
    let runtime = runtime_dir();
    let rt = runtime.path();
    let (_reap, pid, socket) = unlock(&w, rt, "10m");
    let refused = |args: &[&str], why: &str| {
        let out = probe(&socket, args, None);
        assert!(
            out.contains(r#""status":"refused""#) && out.contains(why),
            "{args:?}: {out}"
        );
    };
    // Oversized, empty and malformed frames.
    refused(&["--claim-len", "100000000"], "limit");
    refused(&["--claim-len", "0"], "limit");
    refused(&["{not json"], "not a request");
    refused(&[r#"{"op":"export_key"}"#], "not a request");
    refused(&[r#"{"op":"hello","key":"give"}"#], "not a request");
    // Arbitrary bytes, and an envelope's bytes, for the raw TLS signing operation.
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut envelope_bytes = bglass_core::envelope::ENVELOPE_DOMAIN.to_vec();
    envelope_bytes.extend_from_slice(br#"{"v":1,"responder":"carol"}"#);
    for message in [b64(b"hello"), b64(&envelope_bytes), b64(&[b' '; 130])] {
        refused(
            &[&format!(
                r#"{{"op":"sign_tls_client_verify","message":"{message}"}}"#
            )],
            "not a TLS 1.3 client CertificateVerify",
        );
    }
    // Envelopes for someone else, with another key, or dated outside the window.
    let hello = probe(&socket, &[r#"{"op":"hello"}"#], None);
    let info: serde_json::Value = serde_json::from_str(&hello).unwrap();
    let key = info["info"]["key"].as_str().unwrap().to_owned();
    let now = bglass_tests::now_secs();
    let payload = |responder: &str, key: &str, iat: u64| {
        format!(
            r#"{{"op":"seal_envelope","payload":{{"v":1,"responder":"{responder}","key":"{key}","aud":"proxy-a","iat":{iat},"nonce":"AAAAAAAAAAAAAAAAAAAAAA","action":{{"revoke":{{"grant":"g-0000000000000000","reason":"x"}}}}}}}}"#
        )
    };
    let other_key = "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let sealed_ok = probe(&socket, &[&payload("carol", &key, now)], None);
    // The same payload, fresh and its own, is what the agent does sign (so the refusals
    // below are about what they change, not about the payload's shape).
    assert!(
        sealed_ok.contains(r#""status":"envelope""#),
        "a valid payload: {sealed_ok}"
    );
    refused(&[&payload("mallory", &key, now)], "signs for carol only");
    refused(&[&payload("carol", other_key, now)], "another key");
    refused(&[&payload("carol", &key, now + 3600)], "fresh");
    refused(&[&payload("carol", &key, now - 3600)], "fresh");
    // Many idle connections do not stop it serving.
    let idle: Vec<_> = (0..40)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&socket).ok())
        .collect();
    drop(idle);
    assert!(alive(pid));
    let out = bglass(&w, rt, false, &["whoami"]);
    assert_eq!(out.code, Some(0), "after bad input: {}", out.stderr);
    let lock = bglass(&w, rt, false, &["lock"]);
    assert_eq!(lock.code, Some(0), "{}", lock.stderr);
}

#[test]
fn a_socket_directory_or_path_prepared_by_someone_else_is_refused() {
    let w = world();
    let runtime = runtime_dir();
    let rt = runtime.path();
    let dir = rt.join("bglass");
    // Group- and world-readable.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = bglass(&w, rt, true, &["unlock"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains("refusing") && out.stderr.contains("0755"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing made");
    // Owned by another user, even with the right mode.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let out = bglass(&w, rt, true, &["unlock"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("uid 65534"), "{}", out.stderr);
    // A link to a directory elsewhere.
    std::fs::remove_dir(&dir).unwrap();
    let elsewhere = runtime_dir();
    std::os::unix::fs::symlink(elsewhere.path(), &dir).unwrap();
    let out = bglass(&w, rt, true, &["unlock"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
    std::fs::remove_file(&dir).unwrap();

    // A stale socket (its agent killed) is replaced; commands meanwhile ask for the
    // passphrase rather than fail on it.
    let (_reap, pid, socket) = unlock(&w, rt, "10m");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(10), "the agent is killed", || {
        !alive(pid)
    });
    assert!(socket.exists(), "a killed agent leaves its socket");
    assert_needs_passphrase(&bglass(&w, rt, false, &["whoami"]));
    let (_reap2, pid2, socket2) = unlock(&w, rt, "10m");
    assert_eq!(socket2, socket);
    assert!(alive(pid2));
    let lock = bglass(&w, rt, false, &["lock"]);
    assert_eq!(lock.code, Some(0), "{}", lock.stderr);

    // A socket at the agent's path that another user made: not used, not replaced.
    let planted = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::os::unix::fs::chown(&socket, Some(65534), Some(65534)).unwrap();
    let out = bglass(&w, rt, true, &["unlock"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains("belongs to uid 65534"),
        "{}",
        out.stderr
    );
    let out = bglass(&w, rt, true, &["whoami"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("not using the key agent") && !out.stdout.contains("agent:"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    drop(planted);
    // A regular file there is refused too.
    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, b"not a socket").unwrap();
    let out = bglass(&w, rt, true, &["unlock"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("not a socket"), "{}", out.stderr);
}

#[test]
fn without_xdg_runtime_dir_the_agent_lives_in_a_private_directory_of_the_temp_dir() {
    let w = world();
    // $TMPDIR stands in for /tmp (the real one is shared with everything else).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let dir = tmp.path().join(format!("bglass-{uid}"));
    let bglass_tmp = |passphrase: bool, args: &[&str]| {
        let mut cmd = Command::new("setsid");
        cmd.arg("-w")
            .arg(bin("bglass"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("BGLASS_PASSPHRASE")
            .env("TMPDIR", tmp.path())
            .env("HOME", w.dir.path())
            .current_dir(root())
            .stdin(Stdio::null())
            .arg("--config")
            .arg(&w.responder("carol").config)
            .args(args);
        if passphrase {
            cmd.env("BGLASS_PASSPHRASE", PASSPHRASE);
        }
        run(&mut cmd)
    };
    // Someone else made the directory first: refused, nothing listens there.
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let out = bglass_tmp(true, &["unlock"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains("belongs to uid 65534"),
        "{}",
        out.stderr
    );
    std::fs::remove_dir(&dir).unwrap();
    // Otherwise it is made 0700, and the agent serves from it.
    let out = bglass_tmp(true, &["unlock", "--for", "5m"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let _agent = EndAgent(agent_pid(&out.stdout));
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert!(meta.is_dir() && meta.mode() & 0o777 == 0o700 && meta.uid() == uid);
    let who = bglass_tmp(false, &["whoami"]);
    assert_eq!(who.code, Some(0), "{}", who.stderr);
    assert!(
        who.stdout.contains(&dir.display().to_string()),
        "{}",
        who.stdout
    );
    let lock = bglass_tmp(false, &["lock"]);
    assert_eq!(lock.code, Some(0), "{}", lock.stderr);
}

#[test]
fn unlocking_again_replaces_the_running_agent() {
    let w = world();
    let runtime = runtime_dir();
    let rt = runtime.path();
    let (_first, pid, socket) = unlock(&w, rt, "2m");
    let (_second, pid2, socket2) = unlock(&w, rt, "10m");
    assert_eq!(socket, socket2);
    assert_ne!(pid, pid2);
    eventually(Duration::from_secs(10), "the first agent ends", || {
        !alive(pid)
    });
    assert!(alive(pid2));
    let who = bglass(&w, rt, false, &["whoami"]);
    assert!(
        who.stdout.contains(&format!("pid {pid2}")),
        "{}",
        who.stdout
    );
    let lock = bglass(&w, rt, false, &["lock"]);
    assert_eq!(lock.code, Some(0), "{}", lock.stderr);
}

#[test]
fn ssh_through_a_tunnel_signs_through_the_agent_too() {
    let mut w = World::new(&["proxy-a"], &[("carol", "responder")]);
    w.start_sshd(&[]);
    w.start_redis();
    w.catalog(bglass_tests::world::SSH_CATALOG);
    w.start_all();
    let runtime = runtime_dir();
    let rt = runtime.path();
    let (_agent, _, _) = unlock(&w, rt, "10m");
    let access = bglass(
        &w,
        rt,
        false,
        &[
            "access",
            "bastion",
            "--reason",
            "agent ssh",
            "--incident",
            "INC-S",
        ],
    );
    assert_eq!(access.code, Some(0), "{}", access.stderr);
    // The tunnel's own mutual TLS, and the certificate request, are signed by the agent.
    let user = bglass_tests::world::current_user();
    let out = bglass(
        &w,
        rt,
        false,
        &[
            "ssh",
            "bastion",
            "--user",
            &user,
            "--",
            "echo",
            "through the agent",
        ],
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, w.logs());
    assert_eq!(out.stdout, "through the agent\n");
    let lock = bglass(&w, rt, false, &["lock"]);
    assert_eq!(lock.code, Some(0), "{}", lock.stderr);
}
