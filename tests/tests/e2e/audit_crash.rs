//! SIGKILL a process appending to the log at random moments; after each kill the log
//! recovers, every acknowledged entry is present, and `bglass audit verify` passes.

use std::collections::HashMap;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use bglass_core::audit::event::{Event, EventKind};
use bglass_tests::{audit, bin, command, run};

/// A small deterministic generator for kill delays (no randomness crate needed; the
/// moments still fall at arbitrary points of the writer's work).
fn delay_ms(round: u64) -> u64 {
    let x = round
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    20 + (x >> 33) % 280
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut acked: HashMap<u64, String> = HashMap::new();
    for round in 0..24u64 {
        let mut child = std::process::Command::new(bin("audit-writer"))
            .arg(&dir)
            .arg(round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The crash's moment, chosen per round (no event to wait for: any moment will do).
        std::thread::sleep(Duration::from_millis(delay_ms(round)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut this_round = 0;
        for line in out.lines() {
            // A line cut by the kill is not a complete acknowledgement.
            let parts: Vec<&str> = line.split(' ').collect();
            if let ["ack", index, id] = parts[..]
                && id.len() == 18
            {
                acked.insert(index.parse().unwrap(), id.to_owned());
                this_round += 1;
            }
        }
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            !err.contains("panicked"),
            "round {round}: writer panicked: {err}"
        );

        // Reopen: recovery must succeed and replay every acknowledged entry.
        let mut found: HashMap<u64, String> = HashMap::new();
        let log = audit::open_with(&dir, |index, bytes| {
            let event = Event::from_bytes(bytes)?;
            if let EventKind::Expiry { grant } = event.event {
                found.insert(index, grant.to_string());
            }
            Ok(())
        });
        drop(log);
        for (index, id) in &acked {
            assert_eq!(
                found.get(index),
                Some(id),
                "round {round}: acknowledged entry {index} lost"
            );
        }
        let home = tempfile::tempdir().unwrap();
        let out = run(command("bglass", home.path())
            .args(["audit", "verify"])
            .arg(&dir));
        assert_eq!(
            out.code,
            Some(0),
            "round {round} ({this_round} acks): {}",
            out.stderr
        );
    }
    assert!(
        acked.len() > 100,
        "the writer made progress: {} acks",
        acked.len()
    );
}
