//! `bglass audit monitor` against a real proxy, run by an enrolled auditor: it mirrors the
//! log incrementally into a directory `audit verify` accepts; alerts once (printed, exit 5,
//! and to a webhook) on a policy violation, on the proxy restarted on a rolled-back copy of
//! its data, and on the fork that copy grows into; keeps the refused checkpoints as
//! evidence and its own mirror intact; and with `--follow`, catches the same while running.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bglass_tests::attack::Receiver;
use bglass_tests::audit::copy_dir;
use bglass_tests::world::{TEST_CATALOG, World};
use bglass_tests::{Run, eventually};

fn monitor(w: &World, out: &Path, hook: u16) -> Run {
    let key = format!("proxy-a={}", w.proxies[0].key);
    let url = format!("http://127.0.0.1:{hook}/hook");
    w.bglass(
        "audrey",
        &[
            "audit",
            "monitor",
            "--out",
            out.to_str().unwrap(),
            "--key",
            &key,
            "--policy",
            "--review-within",
            "1s",
            "--webhook",
            &url,
        ],
    )
}

/// The mirror size a monitor run printed.
fn mirrored(out: &Run) -> (u64, u64) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("proxy-a: mirror at "))
        .unwrap_or_else(|| panic!("no mirror line: {}\n{}", out.stdout, out.stderr));
    let rest = &line["proxy-a: mirror at ".len()..];
    let (size, rest) = rest.split_once(" entries (+").unwrap();
    let added = rest.split_once(')').unwrap().0;
    (size.parse().unwrap(), added.parse().unwrap())
}

fn alerts_of(bodies: &Mutex<Vec<serde_json::Value>>, kind: &str) -> usize {
    bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["alert"]["kind"] == kind)
        .count()
}

#[test]
fn an_auditor_mirrors_a_proxy_and_is_alerted_once_of_a_violation_a_rollback_and_a_fork() {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder"), ("audrey", "auditor")],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(Arc::clone(&bodies));
    let out = w.dir.path().join("mirrors");
    let mirror = out.join("proxy-a");

    // 1. A first run mirrors the whole log; the next takes only what is new.
    w.access("alice", "grafana");
    w.denials("alice", 0, 300);
    // (The proxy signs a checkpoint within a second: runs until one covers the 300.)
    let mut taken = 0;
    let first = eventually(
        Duration::from_secs(10),
        "a checkpoint of 300 mirrored",
        || {
            let run = monitor(&w, &out, receiver.port);
            assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
            let (size, added) = mirrored(&run);
            taken += added;
            (size >= 300).then_some(run)
        },
    );
    assert_eq!(mirrored(&first).0, taken, "{}", first.stdout);
    assert!(
        first.stdout.contains("policy: 0 violation(s)"),
        "{}",
        first.stdout
    );
    // Reading the log through the API is itself in the log: who read what (PCI DSS 10.2).
    let reads = eventually(
        Duration::from_secs(5),
        "the auditor's read in the log",
        || {
            let events = bglass_core::audit::report::read_events(&w.proxies[0].log_dir()).unwrap();
            let reads: Vec<_> = events
            .into_iter()
            .filter(|(_, e)| {
                matches!(&e.event, bglass_core::audit::event::EventKind::AuditRead { what, count } if what == "entries" && *count >= 1)
                    && e.actor.as_ref().map(|a| a.as_str()) == Some("audrey")
            })
            .collect();
            (!reads.is_empty()).then_some(reads)
        },
    );
    assert_eq!(
        reads.len(),
        1,
        "one entry per reader, kind and minute: {reads:?}"
    );
    w.denials("alice", 0, 5);
    let second = eventually(
        Duration::from_secs(10),
        "a checkpoint past the mirror",
        || {
            let run = monitor(&w, &out, receiver.port);
            (mirrored(&run).1 > 0).then_some(run)
        },
    );
    assert_eq!(second.code, Some(0), "{}\n{}", second.stdout, second.stderr);
    let (size, added) = mirrored(&second);
    assert!(
        (5..20).contains(&added),
        "not incremental: {}",
        second.stdout
    );
    let verify = bglass_tests::audit::verify(&mirror, &w.proxies[0].key, &["--policy"]);
    assert_eq!(verify.code, Some(0), "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .contains(&format!("verified: {size} entries of proxy proxy-a")),
        "{}",
        verify.stdout
    );

    // A copy of the proxy's whole data directory as it is now (its published checkpoint
    // included, so that only an outside view can tell a restart on it).
    w.stop(0);
    let data = w.proxies[0].dir.join("data");
    let snapshot = w.dir.path().join("proxy-a-data-copy");
    copy_dir(&data, &snapshot);
    w.start(0);

    // 2. An emergency bypass never reviewed within the window (1 s here): a violation,
    // alerted once.
    let bypass = w.bglass(
        "alice",
        &[
            "access",
            "argocd",
            "--reason",
            "bypass",
            "--incident",
            "INC-M",
            "--emergency",
        ],
    );
    assert_eq!(bypass.code, Some(0), "{}", bypass.stderr);
    std::thread::sleep(Duration::from_millis(1100));
    w.denials("alice", 0, 3);
    // A responder is not an auditor: the entries are refused (exit 3), nothing is kept.
    let denied = w.bglass(
        "alice",
        &[
            "audit",
            "monitor",
            "--out",
            w.dir.path().join("not-mine").to_str().unwrap(),
        ],
    );
    assert_eq!(denied.code, Some(3), "{}\n{}", denied.stdout, denied.stderr);
    assert!(
        denied.stderr.contains("needs the auditor role"),
        "{}",
        denied.stderr
    );
    let violated = eventually(Duration::from_secs(10), "the violation alerted", || {
        let run = monitor(&w, &out, receiver.port);
        run.stdout
            .contains("ALERT proxy-a: policy:review_missing")
            .then_some(run)
    });
    assert_eq!(
        violated.code,
        Some(5),
        "{}\n{}",
        violated.stdout,
        violated.stderr
    );
    assert_eq!(alerts_of(&bodies, "policy:review_missing"), 1);
    let again = monitor(&w, &out, receiver.port);
    assert_eq!(again.code, Some(0), "{}\n{}", again.stdout, again.stderr);
    assert!(!again.stdout.contains("ALERT"), "{}", again.stdout);
    assert_eq!(alerts_of(&bodies, "policy:review_missing"), 1);
    let held = mirrored(&again).0;

    // 3. Restarted on the older copy: the monitor sees a rollback.
    w.stop(0);
    let newer = w.dir.path().join("proxy-a-data-newer");
    copy_dir(&data, &newer);
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&snapshot, &data);
    w.start(0);
    let rolled = monitor(&w, &out, receiver.port);
    assert_eq!(rolled.code, Some(5), "{}\n{}", rolled.stdout, rolled.stderr);
    assert!(
        rolled.stdout.contains("ALERT proxy-a: rollback: ROLLBACK"),
        "{}",
        rolled.stdout
    );
    assert_eq!(alerts_of(&bodies, "rollback"), 1);
    let evidence = std::fs::read_dir(mirror.join("evidence")).unwrap().count();
    assert_eq!(evidence, 1);

    // 4. It grows past the mirror on another history: a fork, alerted once, standing.
    w.denials("alice", 0, (held - size) as usize + 20);
    let forked = eventually(Duration::from_secs(10), "the fork alerted", || {
        let run = monitor(&w, &out, receiver.port);
        run.stdout
            .contains("ALERT proxy-a: fork: FORK")
            .then_some(run)
    });
    assert_eq!(forked.code, Some(5), "{}\n{}", forked.stdout, forked.stderr);
    let still = monitor(&w, &out, receiver.port);
    assert_eq!(
        still.code,
        Some(5),
        "a fork must keep failing: {}",
        still.stdout
    );
    assert!(
        still.stdout.contains("NOT ADVANCING: FORK"),
        "{}",
        still.stdout
    );
    assert!(!still.stdout.contains("ALERT"), "{}", still.stdout);
    assert_eq!(alerts_of(&bodies, "fork"), 1);
    // The mirror kept what it had, and still verifies offline.
    let verify = bglass_tests::audit::verify(&mirror, &w.proxies[0].key, &[]);
    assert_eq!(verify.code, Some(0), "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains(&format!("verified: {held} entries")),
        "{}",
        verify.stdout
    );

    // 5. --follow on a fresh mirror of the forked log; the proxy is then put back on the
    // newer copy, which does not extend it, and the running monitor alerts.
    let out2 = w.dir.path().join("mirrors-follow");
    let key = format!("proxy-a={}", w.proxies[0].key);
    let url = format!("http://127.0.0.1:{}/hook", receiver.port);
    let mut follow = w.spawn_bglass(
        "audrey",
        &[
            "audit",
            "monitor",
            "--out",
            out2.to_str().unwrap(),
            "--key",
            &key,
            "--follow",
            "--interval",
            "1s",
            "--webhook",
            &url,
        ],
    );
    eventually(Duration::from_secs(20), "the follow mirror taken", || {
        out2.join("proxy-a/checkpoint").exists().then_some(())
    });
    w.stop(0);
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&newer, &data);
    w.start(0);
    eventually(
        Duration::from_secs(30),
        "the running monitor's alert",
        || (alerts_of(&bodies, "fork") + alerts_of(&bodies, "rollback") > 2).then_some(()),
    );
    follow.kill().unwrap();
    let _ = follow.wait();
    receiver.stop();
}
