//! Recorded SSH against real OpenSSH sshd: a `record = true` service is reached through the
//! proxy's own SSH endpoint (by `bglass ssh`, and by the system `ssh` with the printed
//! snippet), the proxy logs in with a session-CA certificate the responder never holds, and
//! the recording is proven complete from the log — or named truncated, missing or altered
//! when it is not (a changed byte, a chunk cut out, a cut tail, the proxy killed
//! mid-session).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bglass_core::audit::recording::{self, Recording, State};
use bglass_tests::system_ssh;
use bglass_tests::world::{RECORDED_CATALOG, World, current_user};
use bglass_tests::{Run, eventually, run};

fn world() -> World {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    w.start_nginx();
    w.start_sshd(&[]);
    w.start_recorded_sshd();
    w.catalog(RECORDED_CATALOG);
    w.start_all();
    w.access("alice", "vault-ssh");
    w
}

fn ssh(w: &World, args: &[&str]) -> Run {
    let user = current_user();
    let mut all = vec!["ssh", "vault-ssh", "--user", &user, "--"];
    all.extend_from_slice(args);
    w.bglass("alice", &all)
}

/// The recordings the log tells of (read with the library, as `audit show` does).
fn recordings(dir: &Path) -> Vec<Recording> {
    let events = bglass_core::audit::report::read_events(dir).unwrap();
    recording::collect(&events)
}

fn play_verify(w: &World, dir: &Path, session: &str) -> Run {
    w.bglass(
        "alice",
        &["audit", "play", dir.to_str().unwrap(), session, "--verify"],
    )
}

/// A copy of the log directory to tamper with.
fn copy_log(w: &World, name: &str) -> PathBuf {
    let to = w.dir.path().join(name);
    let out = run(Command::new("cp")
        .arg("-a")
        .arg(w.proxies[0].log_dir())
        .arg(&to));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    to
}

fn rec_file(dir: &Path, session: &str) -> PathBuf {
    recording::file_path(dir, session).unwrap()
}

#[test]
fn a_recorded_session_runs_commands_and_its_recording_is_proven_complete_or_named_broken() {
    let w = world();
    let log = w.proxies[0].log_dir();

    // Commands run on the recorded host through the proxy, exit statuses pass through.
    let ok = ssh(&w, &["echo", "recorded-marker-1"]);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert_eq!(ok.stdout, "recorded-marker-1\n");
    let three = ssh(&w, &["sh", "-c", "exit 3"]);
    assert_eq!(three.code, Some(3), "{}", three.stderr);
    // Enough output for several chunks.
    let bulk = ssh(&w, &["sh", "-c", "head -c 600000 /dev/zero | tr '\\0' x"]);
    assert_eq!(bulk.code, Some(0), "{}", bulk.stderr);
    assert_eq!(bulk.stdout.len(), 600_000);

    let found = eventually(
        Duration::from_secs(10),
        "the sessions' recordings to end",
        || {
            let r = recordings(&log);
            (r.len() == 3 && r.iter().all(|r| r.end.is_some())).then_some(r)
        },
    );
    for r in &found {
        let checked = recording::check(&log, r).unwrap();
        assert_eq!(checked.state, State::Complete, "{}", checked.detail);
        assert_eq!(r.user, current_user());
    }
    // What was typed and shown is in the first recording, verified against the log.
    let (_, bytes) = recording::read_verified(&log, &found[0]).unwrap();
    let (frames, error) = recording::decode(&bytes);
    assert_eq!(error, None);
    let exec: Vec<_> = frames
        .iter()
        .filter(|f| f.kind == recording::FrameKind::Exec)
        .map(|f| String::from_utf8_lossy(&f.data).into_owned())
        .collect();
    assert_eq!(exec, ["echo recorded-marker-1"]);
    assert!(
        frames
            .iter()
            .any(|f| f.kind == recording::FrameKind::Output && f.data == b"recorded-marker-1\n")
    );
    assert!(
        frames
            .iter()
            .any(|f| f.kind == recording::FrameKind::ExitStatus && f.data == b"0")
    );
    let exit3 = recording::decode(&recording::read_verified(&log, &found[1]).unwrap().1).0;
    assert!(
        exit3
            .iter()
            .any(|f| f.kind == recording::FrameKind::ExitStatus && f.data == b"3")
    );

    // The log with its recorded sessions proves the policy was followed.
    let policy = w.bglass(
        "alice",
        &["audit", "verify", log.to_str().unwrap(), "--policy"],
    );
    assert_eq!(policy.code, Some(0), "{}{}", policy.stdout, policy.stderr);

    // The auditor's check, offline, through the CLI.
    let bulk_rec = &found[2];
    assert!(bulk_rec.chunks.len() >= 4, "{:?}", bulk_rec.chunks.len());
    let verified = play_verify(&w, &log, &bulk_rec.session);
    assert_eq!(verified.code, Some(0), "{}", verified.stderr);
    assert!(verified.stdout.contains("complete"), "{}", verified.stdout);

    // A flipped byte: the chunk is named.
    let flipped = copy_log(&w, "flipped");
    let path = rec_file(&flipped, &bulk_rec.session);
    let mut bytes = std::fs::read(&path).unwrap();
    let second = bulk_rec.chunks[0].1.bytes as usize + 1000;
    bytes[second] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let out = play_verify(&w, &flipped, &bulk_rec.session);
    assert_eq!(out.code, Some(5), "{}{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("altered") && said.contains("chunk 1 "),
        "{said}"
    );

    // The listing names each session's state; the player shows what verifies.
    let listed = w.bglass(
        "alice",
        &[
            "audit",
            "show",
            flipped.to_str().unwrap(),
            "--sessions",
            "--json",
        ],
    );
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["session"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), found.len());
    for (session, state) in states {
        let want = if session == bulk_rec.session {
            "altered"
        } else {
            "complete"
        };
        assert_eq!(state, want, "{session}");
    }
    let played = w.bglass(
        "alice",
        &[
            "audit",
            "play",
            log.to_str().unwrap(),
            &found[0].session,
            "--speed",
            "0",
        ],
    );
    assert_eq!(played.code, Some(0), "{}", played.stderr);
    assert_eq!(played.stdout, "recorded-marker-1\n");
    assert!(
        played.stderr.contains("exec: echo recorded-marker-1"),
        "{}",
        played.stderr
    );
    assert!(played.stderr.contains("exit status 0"), "{}", played.stderr);

    // A chunk cut out: named missing.
    let cut = copy_log(&w, "cut");
    let path = rec_file(&cut, &bulk_rec.session);
    let bytes = std::fs::read(&path).unwrap();
    let (a, b) = (
        bulk_rec.chunks[0].1.bytes as usize,
        (bulk_rec.chunks[0].1.bytes + bulk_rec.chunks[1].1.bytes) as usize,
    );
    let mut without = bytes[..a].to_vec();
    without.extend_from_slice(&bytes[b..]);
    std::fs::write(&path, &without).unwrap();
    let out = play_verify(&w, &cut, &bulk_rec.session);
    assert_eq!(out.code, Some(5), "{}{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("chunk 1 ") && said.contains("missing"),
        "{said}"
    );

    // The tail cut: named truncated.
    let tail = copy_log(&w, "tail");
    let path = rec_file(&tail, &bulk_rec.session);
    std::fs::write(&path, &bytes[..bytes.len() - 5000]).unwrap();
    let out = play_verify(&w, &tail, &bulk_rec.session);
    assert_eq!(out.code, Some(5), "{}{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("truncated"), "{said}");

    // The recording file removed: named missing.
    std::fs::remove_file(&path).unwrap();
    let out = play_verify(&w, &tail, &bulk_rec.session);
    assert_eq!(out.code, Some(5), "{}{}", out.stdout, out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("missing"),
        "{}",
        out.stdout
    );

    // The log itself verifies without any recording.
    let verify = w.bglass("alice", &["audit", "verify", tail.to_str().unwrap()]);
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
}

#[test]
fn the_responder_holds_no_certificate_the_recorded_host_accepts() {
    let w = world();
    let user = current_user();
    // Asked for a recorded service, the proxy hands out no certificate.
    let saved = w.bglass(
        "alice",
        &["ssh", "vault-ssh", "--user", &user, "--save-cert"],
    );
    assert_eq!(saved.code, Some(0), "{}", saved.stderr);
    assert!(saved.stdout.contains("is recorded"), "{}", saved.stdout);
    // A certificate of alice's own (for the unrecorded bastion, with the same principal):
    // the bastion accepts it, the recorded host does not (it trusts only the session CA).
    w.access("alice", "bastion");
    let own = w.bglass("alice", &["ssh", "bastion", "--user", &user, "--save-cert"]);
    assert_eq!(own.code, Some(0), "{}", own.stderr);
    let ssh_dir = w.ssh_dir("alice");
    let (key, cert) = (ssh_dir.join("bastion"), ssh_dir.join("bastion-cert.pub"));
    let direct = |port: u16| {
        run(Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "IdentitiesOnly=yes", "-i"])
            .arg(&key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .args([
                "-p",
                &port.to_string(),
                &format!("{user}@127.0.0.1"),
                "echo",
                "direct-ok",
            ]))
    };
    let bastion = direct(w.sshd.as_ref().unwrap().0);
    assert_eq!(bastion.code, Some(0), "{}", bastion.stderr);
    let recorded = direct(w.recorded_sshd.as_ref().unwrap().0);
    assert_eq!(recorded.code, Some(255), "{}", recorded.stdout);
    assert!(
        recorded.stderr.contains("Permission denied"),
        "{}",
        recorded.stderr
    );
    let sshd_log = std::fs::read_to_string(w.dir.path().join("recorded-sshd/sshd.log")).unwrap();
    assert!(
        sshd_log.contains("CA") || sshd_log.contains("certificate"),
        "{sshd_log}"
    );

    // The system ssh with the snippet printed for the recorded service.
    let snippet = system_ssh::snippet(&saved.stdout);
    assert!(!snippet.contains("CertificateFile"), "{snippet}");
    let ssh_config = w.dir.path().join("ssh_config");
    std::fs::write(&ssh_config, format!("{snippet}    BatchMode yes\n")).unwrap();
    let out = system_ssh::run_with(
        &ssh_config,
        &["vault-ssh.breakglass", "echo", "system-ssh-recorded"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "system-ssh-recorded\n");
    let log = w.proxies[0].log_dir();
    let found = eventually(
        Duration::from_secs(10),
        "the sessions' recordings to end",
        || {
            let r = recordings(&log);
            (r.len() == 1 && r[0].end.is_some()).then_some(r)
        },
    );
    let (_, bytes) = recording::read_verified(&log, &found[0]).unwrap();
    let frames = recording::decode(&bytes).0;
    assert!(
        frames
            .iter()
            .any(|f| f.kind == recording::FrameKind::Exec && f.data == b"echo system-ssh-recorded")
    );

    // A config that pins another key for the proxy's SSH endpoint refuses to connect.
    let config = w.responder("alice").config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    let wrong = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0/BI1KeVrrphI4X6+F7i7ANSpCOIVU1XEA7twXn56K";
    std::fs::write(&config, format!("{text}ssh_host_key = \"{wrong}\"\n")).unwrap();
    let pinned = ssh(&w, &["echo", "never"]);
    assert_eq!(pinned.code, Some(3), "{}", pinned.stderr);
    assert!(pinned.stderr.contains("ssh_host_key"), "{}", pinned.stderr);
    assert!(pinned.stdout.is_empty());
}

#[test]
fn a_proxy_killed_mid_session_leaves_a_truncated_recording_and_a_recording_that_cannot_start_refuses_the_session()
 {
    let mut w = world();
    let log = w.proxies[0].log_dir();

    // No place for recordings: the session is refused with the reason, nothing runs.
    std::fs::write(log.join(recording::RECORDINGS_DIR), "not a directory").unwrap();
    let refused = ssh(&w, &["echo", "must-not-run"]);
    assert_eq!(refused.code, Some(255), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("bglass-proxy:"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("must-not-run"));
    std::fs::remove_file(log.join(recording::RECORDINGS_DIR)).unwrap();

    let user = current_user();
    let mut child = w.spawn_bglass(
        "alice",
        &[
            "ssh",
            "vault-ssh",
            "--user",
            &user,
            "--",
            "sh",
            "-c",
            "echo started; sleep 30",
        ],
    );
    // Once the first chunk is in the log, the proxy dies.
    let session = eventually(
        Duration::from_secs(15),
        "the first chunk of the session in the log",
        || {
            let r = recordings(&log);
            r.iter()
                .find(|r| r.end.is_none() && !r.chunks.is_empty())
                .map(|r| r.session.clone())
        },
    );
    w.kill(0);
    let _ = child.kill();
    let _ = child.wait();
    let r = recordings(&log)
        .into_iter()
        .find(|r| r.session == session)
        .unwrap();
    assert!(r.end.is_none());
    let checked = recording::check(&log, &r).unwrap();
    assert_eq!(checked.state, State::Truncated, "{}", checked.detail);
    let out = play_verify(&w, &log, &session);
    assert_eq!(out.code, Some(5), "{}{}", out.stdout, out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("truncated"),
        "{}",
        out.stdout
    );
}

#[test]
fn revoking_the_grant_ends_a_recorded_session_and_its_recording_says_why() {
    let w = world();
    let log = w.proxies[0].log_dir();
    let grant = w.access("alice", "vault-ssh")["grant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = current_user();
    let mut child = w.spawn_bglass(
        "alice",
        &[
            "ssh",
            "vault-ssh",
            "--user",
            &user,
            "--",
            "sh",
            "-c",
            "echo started; sleep 60",
        ],
    );
    // The command runs (its first line arrived) before the grant is revoked.
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, "started\n");
    let session = eventually(
        Duration::from_secs(15),
        "the session's first chunk in the log",
        || {
            recordings(&log)
                .into_iter()
                .find(|r| r.end.is_none() && !r.chunks.is_empty())
                .map(|r| r.session)
        },
    );
    let revoked = w.bglass("alice", &["revoke", &grant, "--reason", "done"]);
    assert_eq!(revoked.code, Some(0), "{}", revoked.stderr);
    // The session is cut (the client sees the connection end) and the recording closed.
    let status = eventually(Duration::from_secs(10), "the session to end", || {
        child.try_wait().unwrap()
    });
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert_eq!(
        status.code(),
        Some(255),
        "a cut session is a failure, as with ssh(1): {said}"
    );
    let r = eventually(Duration::from_secs(10), "the recording's end", || {
        recordings(&log)
            .into_iter()
            .find(|r| r.session == session && r.end.is_some())
    });
    assert_eq!(r.end.as_ref().unwrap().reason, "revoked");
    let (checked, bytes) = recording::read_verified(&log, &r).unwrap();
    assert_eq!(checked.state, State::Complete, "{}", checked.detail);
    let notes: Vec<String> = recording::decode(&bytes)
        .0
        .into_iter()
        .filter(|f| f.kind == recording::FrameKind::Note)
        .map(|f| String::from_utf8_lossy(&f.data).into_owned())
        .collect();
    assert!(notes.iter().any(|n| n.contains("revoked")), "{notes:?}");
}
