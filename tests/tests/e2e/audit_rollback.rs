//! The proxy's audit log at start-up, attacked on disk while the proxy is stopped: a log
//! restored from an older copy (every file consistent, just shorter) is refused until the
//! operator says `--accept-rollback`, and that start is recorded in the log; a record
//! damaged in the middle of the write-ahead file is refused and named, and nothing on disk
//! is rewritten by a refused start.

use std::path::{Path, PathBuf};

use bglass_core::audit::{checkpoint, storage};
use bglass_tests::world::{TEST_CATALOG, World, files_under};
use bglass_tests::{command, run};
use serde_json::Value;

fn world() -> World {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder,auditor"), ("bob", "responder")],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w
}

/// One access by `who` and a few uses of it through the data plane.
fn work_as(w: &World, who: &str, uses: usize) {
    w.access(who, "grafana");
    for _ in 0..uses {
        let out = w.bglass(who, &["curl", "grafana", "/api/health"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
}

fn work(w: &World, uses: usize) {
    work_as(w, "alice", uses);
}

/// The size of the latest checkpoint in a log directory.
fn checkpoint_size(log: &Path) -> u64 {
    let note = std::fs::read(log.join(storage::CHECKPOINT_FILE)).unwrap();
    checkpoint::peek(&note).unwrap().1
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every file under `dir` by path relative to it, sorted, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = files_under(dir)
        .into_iter()
        .map(|(p, b)| (p.strip_prefix(dir).unwrap().to_path_buf(), b))
        .collect();
    files.sort();
    files
}

fn events(w: &World) -> Vec<Value> {
    let home = tempfile::tempdir().unwrap();
    let shown = run(command("bglass", home.path())
        .args(["audit", "show", "--json", "--key", &w.proxies[0].key])
        .arg(w.proxies[0].log_dir()));
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    serde_json::from_str(&shown.stdout).unwrap()
}

#[test]
fn a_log_restored_from_an_older_copy_is_refused_until_the_operator_accepts_and_is_audited() {
    let mut w = world();
    w.start_all();
    work(&w, 2);
    w.stop(0);
    let log = w.proxies[0].log_dir();
    let old_size = checkpoint_size(&log);
    let backup = w.dir.path().join("log-backup");
    copy_dir(&log, &backup);

    // More work, published in more checkpoints.
    w.start(0);
    work(&w, 3);
    w.stop(0);
    let new_size = checkpoint_size(&log);
    assert!(new_size > old_size, "{new_size} > {old_size}");

    // The attack (or an operator's mistaken restore): the older copy put back. Every file
    // in it is consistent; the log is just shorter.
    std::fs::remove_dir_all(&log).unwrap();
    copy_dir(&backup, &log);
    let before = snapshot(&log);
    let out = w.start_refused(0, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    for needed in [
        &old_size.to_string(),
        &new_size.to_string(),
        "--accept-rollback",
    ] {
        assert!(
            out.stderr.contains(needed),
            "the refusal names {needed}: {}",
            out.stderr
        );
    }
    assert!(
        snapshot(&log) == before,
        "a refused start changed the log's files"
    );

    // The operator accepts the rollback: the proxy starts, and the log says so first.
    w.start_with(0, &["--accept-rollback"]);
    // A responder who saw the newer log is told (the CLI remembers checkpoints)…
    let seen = w.bglass("alice", &["status"]);
    assert!(
        seen.stderr.contains("SPLIT VIEW"),
        "{}{}",
        seen.stdout,
        seen.stderr
    );
    // …and one who did not is served.
    work_as(&w, "bob", 1);
    w.stop(0);
    let events = events(&w);
    let rollback = events
        .iter()
        .find(|e| !e["event"]["event"]["log_rollback"].is_null())
        .unwrap_or_else(|| panic!("no log_rollback event in {events:#?}"));
    assert_eq!(rollback["index"], old_size, "{rollback}");
    let details = &rollback["event"]["event"]["log_rollback"];
    assert_eq!(details["published_size"], new_size, "{rollback}");
    assert_eq!(details["size"], old_size, "{rollback}");
    assert!(details["published_root"].as_str().is_some(), "{rollback}");
    // Nothing was served before it: the next entry is the start of that run.
    let next = events
        .iter()
        .find(|e| e["index"] == old_size + 1)
        .unwrap_or_else(|| panic!("no entry after the rollback event"));
    assert!(
        !next["event"]["event"]["proxy_start"].is_null(),
        "the start follows the rollback event: {next}"
    );

    // From now on the accepted log is the one published: a plain restart works.
    w.start(0);
    work_as(&w, "bob", 1);
    w.stop(0);
}

/// The write-ahead file's records: (byte offset, entry index, data length).
fn wal_records(bytes: &[u8]) -> Vec<(usize, u64, usize)> {
    let mut out = Vec::new();
    let mut at = 8; // the header
    while at + 10 <= bytes.len() {
        let index = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = usize::from(u16::from_be_bytes([bytes[at + 8], bytes[at + 9]]));
        out.push((at, index, len));
        at += 10 + len + 8;
    }
    assert_eq!(at, bytes.len(), "the write-ahead file parses whole");
    out
}

#[test]
fn a_record_damaged_in_the_middle_of_the_write_ahead_file_is_refused_and_named() {
    let mut w = world();
    w.start_all();
    work(&w, 3);
    w.stop(0);
    let wal_path = w.proxies[0].log_dir().join(storage::WAL_FILE);
    let mut bytes = std::fs::read(&wal_path).unwrap();
    let records = wal_records(&bytes);
    assert!(records.len() >= 4, "{} records", records.len());
    // A record in the middle: complete records follow it.
    let (offset, index, len) = records[records.len() / 2];
    bytes[offset + 10 + len / 2] ^= 0x01;
    std::fs::write(&wal_path, &bytes).unwrap();
    let before = snapshot(&w.proxies[0].log_dir());

    let out = w.start_refused(0, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("byte {offset}"))
            && out.stderr.contains(&format!("entry {index}")),
        "the refusal names the record (entry {index} at byte {offset}): {}",
        out.stderr
    );
    assert!(
        snapshot(&w.proxies[0].log_dir()) == before,
        "a refused start rewrote the log's files (the records after the damage are evidence)"
    );
    // The auditor's tool names it too.
    let home = tempfile::tempdir().unwrap();
    let verify = run(command("bglass", home.path())
        .args(["audit", "verify", "--key", &w.proxies[0].key])
        .arg(w.proxies[0].log_dir()));
    assert_ne!(verify.code, Some(0), "{}", verify.stdout);
    assert!(
        verify.stderr.contains(&format!("byte {offset}")),
        "{}",
        verify.stderr
    );
}
