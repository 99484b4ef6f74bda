//! `bglass audit verify` on a log while a process writes it, as an auditor reads a running
//! proxy's log and `bglass audit show` reads it while the proxy serves: the writer signs
//! checkpoints, completes bundles and their tiles, and trims its write-ahead file between
//! the verifier's reads. A sound log must never be reported as altered or damaged.

use std::process::Stdio;
use std::time::{Duration, Instant};

use bglass_tests::wait::within;
use bglass_tests::{bin, command, run};

/// How long verifications run against the live log.
const WINDOW: Duration = Duration::from_secs(8);

#[test]
fn verifying_a_log_while_it_is_written_never_reports_a_defect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let home = tempfile::tempdir().unwrap();
    let mut writer = std::process::Command::new(bin("audit-writer"))
        .arg(&dir)
        .arg("0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = within(Duration::from_secs(15), || dir.join("checkpoint").exists());
    let mut verified = 0;
    let mut defects = Vec::new();
    let end = Instant::now() + WINDOW;
    while started.is_some() && Instant::now() < end {
        let out = run(command("bglass", home.path())
            .args(["audit", "verify"])
            .arg(&dir));
        verified += 1;
        if out.code != Some(0) {
            defects.push(format!("exit {:?}: {}", out.code, out.stderr.trim()));
        }
    }
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert!(started.is_some(), "the writer signed no checkpoint in 15 s");
    assert!(
        defects.is_empty(),
        "{} of {verified} verifications of the live log reported a defect; the first: {}",
        defects.len(),
        defects[0]
    );
    assert!(verified >= 3, "only {verified} verifications in {WINDOW:?}");
    // At rest, the same log verifies (and grew while it was read: bundles, tiles, a trim).
    let out = run(command("bglass", home.path())
        .args(["audit", "verify"])
        .arg(&dir));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        dir.join("tile/entries/017").exists(),
        "the writer filled fewer than 18 bundles: the write-ahead file was never trimmed"
    );
}
