//! Three real proxies witnessing each other (C2SP tlog-witness): checkpoints gather the
//! others' cosignatures; a proxy restarted on a rolled-back copy of its whole data
//! directory (its published checkpoint included, so only the witnesses can tell) is refused
//! at start; started anyway with the operator's flag, its forked log is refused by the
//! witnesses, and the refusal reaches their notification target. An auditor's 2-of-3
//! witness policy (`bglass audit verify --witness … --quorum 2`) accepts the cosigned
//! checkpoint and refuses it with a cosignature taken away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bglass_core::audit::witness::cosigned_at;
use bglass_core::keys::PublicKey;
use bglass_tests::attack::{Receiver, events};
use bglass_tests::audit::copy_dir;
use bglass_tests::ports::PortHold;
use bglass_tests::raw::Raw;
use bglass_tests::world::{TEST_CATALOG, World};
use bglass_tests::{bin, eventually};

/// Proxy `i`'s checkpoint as served, and the witnesses whose cosignature it carries.
fn cosigners(w: &World, i: usize) -> (String, Vec<String>) {
    let alice = Raw::new(
        &w.responder("alice").config,
        &w.proxies[i].url(),
        &w.proxies[i].pin,
    );
    let answer = alice.send("GET", "/v1/audit/checkpoint", None, &[]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let names = (0..w.proxies.len())
        .filter(|j| *j != i)
        .filter(|j| {
            let key: PublicKey = w.proxies[*j].key.parse().unwrap();
            let name = format!("bglass-witness/{}", w.proxies[*j].id);
            cosigned_at(&answer.body, &name, &key).is_some()
        })
        .map(|j| w.proxies[j].id.clone())
        .collect();
    (answer.body, names)
}

#[test]
fn proxies_witness_each_other_and_refuse_a_rolled_back_or_forked_log() {
    let mut w = World::new(
        &["proxy-a", "proxy-b", "proxy-c"],
        &[("alice", "responder")],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    // A first start fixes each proxy's port; then each witnesses the other two.
    w.start_all();
    for i in 0..3 {
        w.stop(i);
    }
    let hook = PortHold::new();
    for i in 0..3 {
        let mut extra = String::new();
        for j in (0..3).filter(|j| *j != i) {
            let p = &w.proxies[j];
            extra.push_str(&format!(
                "\n[[witness_of]]\norigin = \"bglass/{}\"\nkey = \"{}\"\n\n[[witnesses]]\nname = \"bglass-witness/{}\"\naddress = \"127.0.0.1:{}\"\npin = \"{}\"\nkey = \"{}\"\n",
                p.id, p.key, p.id, p.port, p.pin, p.key
            ));
        }
        if i == 1 {
            extra.push_str(&format!(
                "\n[[notify]]\nurl = \"http://127.0.0.1:{}/hook\"\nformat = \"json\"\n",
                hook.port()
            ));
        }
        bglass_tests::toml::append(&w.proxies[i].config, &extra);
    }
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let _receiver = Receiver::start_on(hook.port(), Arc::clone(&bodies));
    w.start_all();

    // 1. Normal operation: proxy-a's checkpoints carry proxy-b's and proxy-c's cosignatures.
    let (_, names) = eventually(
        Duration::from_secs(20),
        "proxy-a's checkpoint cosigned by both witnesses",
        || Some(cosigners(&w, 0)).filter(|(_, n)| n.len() == 2),
    );
    assert_eq!(names, ["proxy-b", "proxy-c"]);
    // The same cosignatures checked by a verifier that is not bglass's (Go, written from the
    // C2SP tlog-cosignature specification).
    {
        use base64::Engine;
        let tmp = tempfile::tempdir().unwrap();
        let tool = bglass_tests::go::build("cosig-verify", tmp.path());
        let (note, _) = cosigners(&w, 0);
        let file = tmp.path().join("note");
        std::fs::write(&file, &note).unwrap();
        let log_key: PublicKey = w.proxies[0].key.parse().unwrap();
        let vkey = bglass_core::audit::checkpoint::verifier_key("bglass/proxy-a", &log_key);
        let mut args = vec![vkey, file.to_str().unwrap().to_owned()];
        for p in &w.proxies[1..] {
            let key: PublicKey = p.key.parse().unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
            args.push(format!("bglass-witness/{}={b64}", p.id));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = bglass_tests::go::run(&tool, &args);
        assert_eq!(code, Some(0), "{err}\n{note}");
        assert_eq!(out.lines().count(), 2, "{out}");
    }

    // The responder's CLI with a witness policy for proxy-a: all three of b, c and a
    // stranger is never met (warned, and not taken as proxy-a's view; access goes on);
    // two of them is.
    let stranger = bglass_core::keys::SigningKey::from_seed(&[5; 32]).unwrap();
    let policy = [
        format!("bglass-witness/proxy-b={}", w.proxies[1].key),
        format!("bglass-witness/proxy-c={}", w.proxies[2].key),
        format!("bglass-witness/proxy-z={}", stranger.public_key()),
    ];
    let with_quorum = |k: i64| {
        bglass_tests::toml::edit(&w.responder("alice").config, |doc| {
            let mut list = toml_edit::Array::new();
            for p in &policy {
                list.push(p.as_str());
            }
            doc["proxy"][0]["witnesses"] = toml_edit::value(list);
            doc["proxy"][0]["witness_quorum"] = toml_edit::value(k);
        });
    };
    with_quorum(3);
    let out = w.bglass("alice", &["status"]);
    assert!(
        out.stderr
            .contains("witness cosignatures your config requires")
            && out.stderr.contains("of the 3"),
        "{}",
        out.stderr
    );
    with_quorum(2);
    eventually(
        Duration::from_secs(10),
        "proxy-a's checkpoint taken with a 2-of-3 witness policy",
        || {
            let out = w.bglass("alice", &["status"]);
            (out.code == Some(0) && !out.stderr.contains("witness cosignatures")).then_some(())
        },
    );

    // Receipts under the witness policy: proven in a checkpoint both witnesses cosigned;
    // with a quorum the checkpoints cannot meet, not proven (exit 5).
    w.access("alice", "grafana");
    let proven = eventually(
        Duration::from_secs(20),
        "the grant's receipt proven in a witnessed checkpoint",
        || {
            let out = w.bglass("alice", &["audit", "prove"]);
            (out.code == Some(0)).then_some(out)
        },
    );
    assert!(
        proven
            .stdout
            .contains("witnessed: in the checkpoint of size")
            && proven
                .stdout
                .contains("cosigned by bglass-witness/proxy-b, bglass-witness/proxy-c (quorum 2)"),
        "{}",
        proven.stdout
    );
    with_quorum(3);
    let unproven = w.bglass("alice", &["audit", "prove"]);
    assert_eq!(
        unproven.code,
        Some(5),
        "{}\n{}",
        unproven.stdout,
        unproven.stderr
    );
    assert!(
        unproven
            .stdout
            .contains("NOT PROVEN: not witnessed: its checkpoint of size")
            && unproven
                .stdout
                .contains("carries 2 of the 3 witness cosignatures"),
        "{}",
        unproven.stdout
    );
    with_quorum(2);

    // A copy of proxy-a's whole data directory, taken while it is stopped.
    w.stop(0);
    let data = w.proxies[0].dir.join("data");
    let snapshot = w.dir.path().join("proxy-a-data-copy");
    copy_dir(&data, &snapshot);

    // An auditor's 2-of-3 witness policy on a copy of the log: met by proxy-b and proxy-c;
    // with one cosignature taken away, the checkpoint is refused.
    let evidence = w.dir.path().join("evidence");
    copy_dir(&snapshot.join("log"), &evidence);
    let verify = || {
        let mut args = vec!["--quorum", "2"];
        for p in &policy {
            args.extend(["--witness", p.as_str()]);
        }
        bglass_tests::audit::verify(&evidence, &w.proxies[0].key, &args)
    };
    let out = verify();
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "cosigned by bglass-witness/proxy-b, bglass-witness/proxy-c (2 of 3, quorum 2)"
        ),
        "{}",
        out.stdout
    );
    let cosigned = evidence.join("cosigned-checkpoint");
    let text = std::fs::read_to_string(&cosigned).unwrap();
    let fewer: String = text
        .lines()
        .filter(|l| !l.contains("bglass-witness/proxy-c"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cosigned, fewer).unwrap();
    let out = verify();
    assert_eq!(out.code, Some(5), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("carries 1 of the 2 cosignatures required (bglass-witness/proxy-b)"),
        "{}",
        out.stderr
    );

    w.start(0);
    let (small, _) = cosigners(&w, 0);
    w.denials("alice", 0, 3);
    eventually(
        Duration::from_secs(20),
        "the grown log cosigned by both witnesses",
        || {
            let (note, names) = cosigners(&w, 0);
            (names.len() == 2 && note.lines().nth(1) != small.lines().nth(1)).then_some(())
        },
    );
    w.stop(0);

    // 2. Restarted on the rolled-back copy: refused at start, nothing served.
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&snapshot, &data);
    let out = std::process::Command::new(bin("bglass-proxy"))
        .args(["run", "--config"])
        .arg(&w.proxies[0].config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a rolled-back proxy started: {stderr}"
    );
    assert!(
        stderr.contains("rolled back") && stderr.contains("witness bglass-witness/proxy-"),
        "{stderr}"
    );
    assert!(stderr.contains("cosigned this log at size"), "{stderr}");

    // 3. Started anyway (the operator's audited flag) and grown past what the witnesses
    // hold: a fork, which they refuse, and the refusal is notified.
    w.start_with(0, &["--accept-rollback"]);
    w.denials("alice", 0, 12);
    let notified = || {
        bodies
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.to_string().contains("LOG FORK OR ROLLBACK"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !notified() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        notified(),
        "no notification of the forked log; received {:?}\n{}",
        bodies.lock().unwrap(),
        w.logs()
    );
    let witness_log = serde_json::to_string(&events(&w, 1)).unwrap();
    assert!(
        witness_log.contains("log_inconsistent"),
        "proxy-b's log has no log_inconsistent denial"
    );
    // proxy-a's own log records the rollback its operator accepted.
    let own = serde_json::to_string(&events(&w, 0)).unwrap();
    assert!(
        own.contains("log_rollback"),
        "no log_rollback in proxy-a's log"
    );
    let (_, names) = cosigners(&w, 0);
    assert!(names.is_empty(), "the forked log was cosigned by {names:?}");
}
