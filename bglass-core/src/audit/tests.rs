//! The log end to end in one process: appends, recovery, proofs, receipts, verification.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::event::{EVENT_VERSION, Event, EventKind};
use super::log::{AuditLog, AuditOpenError, LogConfig};
use super::receipt::ReceiptError;
use super::storage::{self, Disk};
use super::tree::TILE_WIDTH;
use super::verify::{DefectKind, KeySource, Stage, verify_dir, verify_dir_with};
use crate::id::{GrantId, ProxyId};
use crate::keys::SigningKey;

pub(super) fn key() -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seed(&[7; 32]).unwrap())
}

pub(super) fn config(dir: &Path) -> LogConfig {
    LogConfig {
        dir: dir.to_path_buf(),
        proxy: ProxyId::new("proxy-a").unwrap(),
        key: key(),
        successor: None,
        checkpoint_interval: Duration::from_millis(50),
        published: None,
        accept_rollback: false,
        reserve_bytes: 0,
        disk: Disk::default(),
        retry_after: Duration::from_millis(100),
    }
}

/// [`event`] as an entry of the storage formats.
fn entry(i: u64) -> storage::Entry {
    storage::Entry::new(event(i)).unwrap()
}

pub(super) fn event(i: u64) -> Vec<u8> {
    let kind = if i == 0 {
        EventKind::ProxyStart {
            key: key().public_key(),
            version: "test".to_owned(),
            catalog: "c".to_owned(),
            roster: "r".to_owned(),
            recovered: None,
        }
    } else {
        EventKind::Expiry {
            grant: GrantId::new(&format!("g-{i:016x}")).unwrap(),
        }
    };
    Event {
        v: EVENT_VERSION,
        time_ms: 1_767_225_600_000 + i,
        proxy: ProxyId::new("proxy-a").unwrap(),
        actor: None,
        drill: None,
        event: kind,
    }
    .to_bytes()
    .unwrap()
}

fn open(dir: &Path) -> (AuditLog, Vec<Vec<u8>>) {
    let mut replayed = Vec::new();
    let (log, _) = AuditLog::open(config(dir), |i, e| {
        assert_eq!(i, replayed.len() as u64);
        replayed.push(e.to_vec());
        Ok(())
    })
    .unwrap();
    (log, replayed)
}

#[test]
fn replay_returns_exactly_the_appended_entries_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (log, replayed) = open(dir.path());
    assert!(replayed.is_empty());
    let n = 2 * TILE_WIDTH as u64 + 17;
    let written: Vec<Vec<u8>> = (0..n).map(event).collect();
    for (i, e) in written.iter().enumerate() {
        assert_eq!(log.append(e.clone()).unwrap().index, i as u64);
    }
    log.close();
    let (log, replayed) = open(dir.path());
    assert_eq!(replayed, written);
    assert_eq!(log.size(), n);
    // The close covered everything with a checkpoint.
    assert_eq!(log.latest_checkpoint().unwrap().size, n);
    assert!(dir.path().join("tile/entries/001").exists());
    assert!(dir.path().join("tile/0/001").exists());
    drop(log);
    let report = verify_dir(dir.path(), Some(key().public_key())).unwrap();
    assert_eq!(report.entries, n);
    assert_eq!(report.key_source, KeySource::Given);
}

#[test]
fn concurrent_appenders_are_group_committed_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.append(event(0)).unwrap();
    let log = Arc::new(log);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..200u64)
                    .map(|i| log.append(event(1 + t * 200 + i)).unwrap().index)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut indexes: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (1..=1600).collect::<Vec<_>>());
    let checkpoint = log.checkpoint_now().unwrap();
    assert_eq!(checkpoint.size, 1601);
    drop(log);
    assert!(verify_dir(dir.path(), None).is_ok());
}

/// Waits (up to 10 s, polling) until the latest checkpoint covers `size` entries.
fn wait_for_checkpoint(log: &AuditLog, size: u64) -> Duration {
    let start = std::time::Instant::now();
    while log.latest_checkpoint().map(|c| c.size) != Some(size) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no checkpoint of size {size}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

#[test]
fn checkpoints_are_signed_while_entries_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    // Nobody asks for a checkpoint: the writer signs one on its own after the interval.
    log.append(event(0)).unwrap();
    wait_for_checkpoint(&log, 1);
    log.append(event(1)).unwrap();
    wait_for_checkpoint(&log, 2);
    let (history, _, _) = storage::read_history(&dir.path().join(storage::HISTORY_FILE)).unwrap();
    assert_eq!(history.len(), 2);
}

#[test]
fn receipts_and_proofs_verify_against_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let mut appended = Vec::new();
    for i in 0..600 {
        appended.push(log.append(event(i)).unwrap());
    }
    let first = log.checkpoint_now().unwrap();
    for i in 600..900 {
        appended.push(log.append(event(i)).unwrap());
    }
    let second = log.checkpoint_now().unwrap();
    let origin = log.origin().to_owned();
    for a in [
        &appended[0],
        &appended[255],
        &appended[256],
        &appended[599],
        &appended[899],
    ] {
        let receipt = log.receipt(a).unwrap().unwrap();
        let entry = event(a.index);
        let anchored = receipt
            .verify(&origin, &key().public_key(), Some(&entry))
            .unwrap();
        assert_eq!(anchored.size, 900);
        assert_eq!(
            receipt.verify(&origin, &key().public_key(), Some(b"other")),
            Err(ReceiptError::EntryMismatch)
        );
        let mut bad = receipt.clone();
        bad.index ^= 1;
        assert_eq!(
            bad.verify(&origin, &key().public_key(), None),
            Err(ReceiptError::BadProof)
        );
    }
    let proof = log.consistency_proof(first.size, second.size).unwrap();
    assert!(super::tree::check_consistency(
        &proof,
        second.size,
        second.root,
        first.size,
        first.root
    ));
    assert_eq!(log.root_at(600).unwrap(), first.root);
}

#[test]
fn torn_tail_is_dropped_and_everything_acknowledged_survives() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..300 {
        log.append(event(i)).unwrap();
    }
    drop(log);
    // Half of a record that was never acknowledged.
    let wal = dir.path().join(storage::WAL_FILE);
    let mut bytes = std::fs::read(&wal).unwrap();
    let mut extra = Vec::new();
    storage::encode_record(&mut extra, 300, &entry(300));
    bytes.extend_from_slice(&extra[..extra.len() / 2]);
    std::fs::write(&wal, bytes).unwrap();

    let mut seen = 0;
    let (log, report) = AuditLog::open(config(dir.path()), |_, _| {
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 300);
    assert!(report.torn.is_some());
    assert!(report.torn_bytes_dropped > 0);
    assert_eq!(log.append(event(300)).unwrap().index, 300);
    drop(log);
    assert!(verify_dir(dir.path(), None).is_ok());
}

#[test]
fn a_crash_between_bundle_and_trim_and_a_half_written_tile_are_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..(TILE_WIDTH as u64 + 3) {
        log.append(event(i)).unwrap();
    }
    drop(log);
    // As if the crash came after the bundle was written but before the write-ahead file
    // was trimmed: all 259 records are still in it. And the tile write was cut short.
    let mut wal = storage::wal_header();
    for i in 0..(TILE_WIDTH as u64 + 3) {
        storage::encode_record(&mut wal, i, &entry(i));
    }
    std::fs::write(dir.path().join(storage::WAL_FILE), wal).unwrap();
    std::fs::write(dir.path().join("tile/0/000"), b"short").unwrap();
    let (log, report) = AuditLog::open(config(dir.path()), |_, _| Ok(())).unwrap();
    assert_eq!(report.entries, TILE_WIDTH as u64 + 3);
    assert_eq!(report.files_repaired, 1);
    drop(log);
    assert!(verify_dir(dir.path(), None).is_ok());
}

#[test]
fn a_tampered_log_is_refused_at_open_never_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..(TILE_WIDTH as u64 + 1) {
        log.append(event(i)).unwrap();
    }
    drop(log);
    let path = dir.path().join("tile/entries/000");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let err = AuditLog::open(config(dir.path()), |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, AuditOpenError::Corrupt { .. }), "{err}");
    let defect = verify_dir(dir.path(), None).unwrap_err();
    assert!(
        matches!(
            defect.kind,
            DefectKind::EntryAltered | DefectKind::EntryMalformed
        ),
        "{defect}"
    );
}

#[test]
fn oversized_and_empty_entries_are_refused_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    assert!(
        log.append(vec![b'x'; storage::MAX_ENTRY_BYTES + 1])
            .is_err()
    );
    assert!(log.append(Vec::new()).is_err());
    assert_eq!(log.append(event(0)).unwrap().index, 0);
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, _) = open(dir.path());
    assert!(matches!(
        AuditLog::open(config(dir.path()), |_, _| Ok(())),
        Err(AuditOpenError::Locked(_))
    ));
}

/// Every file under `dir` (relative path, bytes), sorted.
pub(super) fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A log config that keeps its published checkpoint in `published`.
fn published_config(dir: &Path, published: &Path, accept: bool) -> LogConfig {
    LogConfig {
        published: Some(published.to_path_buf()),
        accept_rollback: accept,
        ..config(dir)
    }
}

fn append_range(config: LogConfig, range: std::ops::Range<u64>) {
    let (log, _) = AuditLog::open(config, |_, _| Ok(())).unwrap();
    for i in range {
        log.append(event(i)).unwrap();
    }
    log.close();
}

#[test]
fn a_log_restored_from_an_older_copy_is_refused_untouched_unless_accepted_and_then_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let published = tmp.path().join("published-checkpoint");
    let backup = tmp.path().join("backup");
    append_range(published_config(&dir, &published, false), 0..300);
    // The published checkpoint is kept outside the log and follows it.
    let (_, size, _) = super::checkpoint::peek(&std::fs::read(&published).unwrap()).unwrap();
    assert_eq!(size, 300);
    copy_dir(&dir, &backup);
    append_range(published_config(&dir, &published, false), 300..620);

    // The older copy put back: consistent in itself, just shorter.
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&backup, &dir);
    let before = snapshot(&dir);
    let err = AuditLog::open(published_config(&dir, &published, false), |_, _| Ok(())).unwrap_err();
    match &err {
        AuditOpenError::RolledBack(r) => {
            assert_eq!((r.size, r.published_size, r.diverged), (300, 620, false));
        }
        other => panic!("expected a rollback, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("300 entries") && message.contains("620 entries"),
        "{message}"
    );
    assert!(snapshot(&dir) == before, "a refused open wrote to the log");

    // Accepted: the rollback is the next entry, replayed like any other, and the log
    // publishes from where it now is.
    let mut replayed = Vec::new();
    let (log, report) = AuditLog::open(published_config(&dir, &published, true), |i, e| {
        replayed.push((i, e.to_vec()));
        Ok(())
    })
    .unwrap();
    let rollback = report.rollback.clone().unwrap();
    assert_eq!((rollback.size, rollback.published_size), (300, 620));
    assert_eq!(replayed.len(), 301);
    let (index, entry) = replayed.last().unwrap();
    assert_eq!(*index, 300);
    match Event::from_bytes(entry).unwrap().event {
        EventKind::LogRollback {
            published_size,
            size,
            published_root,
            ..
        } => {
            assert_eq!((published_size, size), (620, 300));
            assert_eq!(published_root, rollback.published_root);
        }
        other => panic!("expected log_rollback, got {other:?}"),
    }
    assert_eq!(log.latest_checkpoint().unwrap().size, 301);
    assert_eq!(log.append(event(301)).unwrap().index, 301);
    log.close();
    assert!(verify_dir(&dir, Some(key().public_key())).is_ok());
    // The accepted log is now the published one: it opens without the flag.
    let (log, report) =
        AuditLog::open(published_config(&dir, &published, false), |_, _| Ok(())).unwrap();
    assert!(report.rollback.is_none());
    assert_eq!(log.size(), 302);
}

#[test]
fn a_log_replaced_by_another_history_of_the_same_length_is_refused_as_diverged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let other = tmp.path().join("other");
    let published = tmp.path().join("published-checkpoint");
    let unused = tmp.path().join("unused");
    append_range(published_config(&dir, &published, false), 0..40);
    // The same proxy key signed another history of 40 entries.
    let (log, _) = AuditLog::open(published_config(&other, &unused, false), |_, _| Ok(())).unwrap();
    for i in 0..40 {
        log.append(event(i + 1000)).unwrap();
    }
    log.close();
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&other, &dir);
    let err = AuditLog::open(published_config(&dir, &published, false), |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(&err, AuditOpenError::RolledBack(r) if r.diverged && r.size == 40),
        "{err}"
    );
    assert!(err.to_string().contains("another history"), "{err}");
}

#[test]
fn a_published_checkpoint_not_signed_by_the_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let published = tmp.path().join("published-checkpoint");
    append_range(published_config(&dir, &published, false), 0..5);
    let other = SigningKey::from_seed(&[9; 32]).unwrap();
    let origin = super::checkpoint::origin(&ProxyId::new("proxy-a").unwrap());
    let forged = super::checkpoint::sign(&origin, 5, super::tree::leaf_hash(b"x"), &other).unwrap();
    std::fs::write(&published, forged).unwrap();
    let err = AuditLog::open(published_config(&dir, &published, false), |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, AuditOpenError::Published { .. }), "{err}");
}

#[test]
fn a_damaged_record_in_the_middle_of_the_write_ahead_file_refuses_the_open_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..20 {
        log.append(event(i)).unwrap();
    }
    // Entries 15..19 are acknowledged but not yet covered by a checkpoint: reading past
    // the damage would silently drop them.
    log.checkpoint_now().unwrap();
    drop(log);
    let wal = dir.path().join(storage::WAL_FILE);
    let mut bytes = std::fs::read(&wal).unwrap();
    let offset = 8
        + (0..10)
            .map(|i| storage::record_len(event(i).len()))
            .sum::<usize>();
    bytes[offset + 20] ^= 0x01;
    std::fs::write(&wal, &bytes).unwrap();
    let before = snapshot(dir.path());
    let err = AuditLog::open(config(dir.path()), |_, _| Ok(())).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, AuditOpenError::Corrupt { index: 10, .. })
            && message.contains(&format!("at byte {offset}")),
        "{message}"
    );
    assert!(
        snapshot(dir.path()) == before,
        "a refused open wrote to the log"
    );
    let defect = verify_dir(dir.path(), None).unwrap_err();
    assert_eq!(defect.kind, DefectKind::RecordDamaged, "{defect}");
    assert_eq!(defect.index, Some(10));
}

#[test]
fn recovery_checks_the_checkpoint_before_it_writes_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..10 {
        log.append(event(i)).unwrap();
    }
    drop(log);
    // A torn tail recovery would cut, and a checkpoint that no longer verifies.
    let wal = dir.path().join(storage::WAL_FILE);
    let mut bytes = std::fs::read(&wal).unwrap();
    let mut extra = Vec::new();
    storage::encode_record(&mut extra, 10, &entry(10));
    bytes.extend_from_slice(&extra[..extra.len() / 2]);
    std::fs::write(&wal, &bytes).unwrap();
    // A checkpoint file signed by the log's key over another root of the same size: it
    // contradicts the history, which no crash does.
    let note = dir.path().join(storage::CHECKPOINT_FILE);
    let forged = crate::audit::checkpoint::sign(
        &crate::audit::checkpoint::origin(&ProxyId::new("proxy-a").unwrap()),
        10,
        crate::audit::tree::Hash([9; 32]),
        &key(),
    )
    .unwrap();
    std::fs::write(&note, forged).unwrap();
    let before = snapshot(dir.path());
    assert!(matches!(
        AuditLog::open(config(dir.path()), |_, _| Ok(())),
        Err(AuditOpenError::Corrupt { .. })
    ));
    assert!(
        snapshot(dir.path()) == before,
        "the torn tail was cut before the checks"
    );
}

#[test]
fn missing_tiles_are_rebuilt_from_the_entries_and_the_history_is_not_needed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let n = 3 * TILE_WIDTH as u64 + 5;
    for i in 0..n {
        log.append(event(i)).unwrap();
    }
    drop(log);
    for b in 0..3 {
        std::fs::remove_file(dir.path().join(storage::tile_rel(0, b))).unwrap();
    }
    // The latest checkpoint is read from its own file: the history is not read at open.
    let history = dir.path().join(storage::HISTORY_FILE);
    let kept = std::fs::read(&history).unwrap();
    std::fs::write(&history, b"\xff\xff\xff\xffnot a history").unwrap();
    let (log, report) = AuditLog::open(config(dir.path()), |_, _| Ok(())).unwrap();
    assert_eq!(report.files_repaired, 3);
    drop(log);
    std::fs::write(&history, kept).unwrap();
    assert!(verify_dir(dir.path(), Some(key().public_key())).is_ok());
}

#[test]
fn entries_are_read_lazily_from_any_index_while_the_log_grows() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let n = 2 * TILE_WIDTH as u64 + 40;
    for i in 0..n {
        log.append(event(i)).unwrap();
    }
    for from in [0, 1, 255, 256, 300, 512, n - 1, n] {
        let read: Vec<(u64, Vec<u8>)> = log.entries_from(from).map(Result::unwrap).collect();
        assert_eq!(read.len() as u64, n - from, "from {from}");
        for (index, entry) in read {
            assert_eq!(entry, event(index));
        }
    }
    // Entries appended while reading (one of them fills a bundle, which moves entries out
    // of the write-ahead file) are read once the end is raised.
    let mut reader = log.entries_from(n - 2);
    assert_eq!(reader.next().unwrap().unwrap().0, n - 2);
    for i in n..3 * TILE_WIDTH as u64 + 3 {
        log.append(event(i)).unwrap();
    }
    reader.extend_to(log.size());
    let rest: Vec<u64> = reader.map(|r| r.unwrap().0).collect();
    assert_eq!(rest, (n - 1..3 * TILE_WIDTH as u64 + 3).collect::<Vec<_>>());
}

#[test]
fn a_checkpoint_signed_while_a_live_log_is_verified_is_neither_a_fork_nor_a_cut_tail() {
    // A proxy signs a checkpoint within a second of its first unsigned entry: a reader of
    // its live log (`bglass audit show` while it serves) can see one appear after it read
    // the entries. Here the writer signs only when asked, at the point of the race.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        checkpoint_interval: Duration::from_secs(3600),
        ..config(dir.path())
    };
    let (log, _) = AuditLog::open(config, |_, _| Ok(())).unwrap();
    for i in 0..16 {
        log.append(event(i)).unwrap();
    }
    let signed = log.checkpoint_now().unwrap();
    assert_eq!(signed.size, 16);
    // Entries no checkpoint covers yet, as after a burst of requests.
    let n = TILE_WIDTH as u64 + 100;
    for i in 16..n {
        log.append(event(i)).unwrap();
    }
    let public = Some(key().public_key());

    // Signed over exactly the entries read: its size was not among the checkpoints the
    // verifier found at first.
    let report = verify_dir_with(dir.path(), public, |stage| {
        if stage == Stage::EntriesRead {
            assert_eq!(log.checkpoint_now().unwrap().size, n);
        }
    })
    .unwrap_or_else(|d| panic!("a checkpoint signed during verification: {d}"));
    assert_eq!(report.entries, n);
    assert_eq!(report.latest.map(|(size, _)| size), Some(16));

    // Signed over more entries than were read.
    let report = verify_dir_with(dir.path(), public, |stage| {
        if stage == Stage::EntriesRead {
            for i in n..n + 10 {
                log.append(event(i)).unwrap();
            }
            assert_eq!(log.checkpoint_now().unwrap().size, n + 10);
        }
    })
    .unwrap_or_else(|d| panic!("a checkpoint signed during verification: {d}"));
    assert_eq!(report.entries, n);
    assert_eq!(report.latest.map(|(size, _)| size), Some(n));
    log.close();

    // At rest, every checkpoint is checked.
    let report = verify_dir(dir.path(), public).unwrap();
    assert_eq!(report.checkpoints, 3);
    assert_eq!(report.latest.map(|(size, _)| size), Some(n + 10));
}

/// Appends entries `range` in one group commit.
fn append_all(log: &AuditLog, range: std::ops::Range<u64>) {
    let submitted: Vec<_> = range.map(|i| log.submit(event(i)).unwrap()).collect();
    for s in submitted {
        s.wait().unwrap();
    }
}

#[test]
fn a_write_ahead_file_trimmed_while_a_live_log_is_verified_is_not_a_gap() {
    // The writer trims the write-ahead file once it holds 16 bundles more than the last
    // durable one: a reader that counted the bundles before that finds the file starting
    // after them.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let width = TILE_WIDTH as u64;
    let n = 15 * width + 10;
    append_all(&log, 0..n);
    // Every bundle durable; the write-ahead file still holds every entry.
    log.checkpoint_now().unwrap();
    let wal = dir.path().join(storage::WAL_FILE);
    assert_eq!(storage::read_wal(&wal).unwrap().records[0].index, 0);
    let end = 18 * width + 1;
    let mut trimmed = false;
    let report = verify_dir_with(dir.path(), Some(key().public_key()), |stage| {
        if stage == Stage::BundlesRead && !trimmed {
            trimmed = true;
            append_all(&log, n..end - 1);
            // Bundles 15 to 17 are durable once a checkpoint is signed; the next batch
            // trims the file (once answered: the checkpoint asked for next waits for it).
            log.checkpoint_now().unwrap();
            append_all(&log, end - 1..end);
            log.checkpoint_now().unwrap();
            let first = storage::read_wal(&wal).unwrap().records[0].index;
            assert!(first >= 16 * width, "the file starts at entry {first}");
        }
    })
    .unwrap_or_else(|d| panic!("the write-ahead file trimmed during verification: {d}"));
    assert!(trimmed);
    assert_eq!(report.entries, end);
    log.close();
    assert_eq!(
        verify_dir(dir.path(), Some(key().public_key()))
            .unwrap()
            .entries,
        end
    );
}

#[test]
fn a_tile_not_yet_written_past_the_checkpoints_is_a_warning_and_a_covered_one_a_defect() {
    // The bundler writes a bundle, then its tiles: a reader of a live log can find the
    // bundle without its tile.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        checkpoint_interval: Duration::from_secs(3600),
        ..config(dir.path())
    };
    let (log, _) = AuditLog::open(config, |_, _| Ok(())).unwrap();
    append_all(&log, 0..16);
    log.checkpoint_now().unwrap();
    let n = TILE_WIDTH as u64 + 44;
    append_all(&log, 16..n);
    let tile = dir.path().join(storage::tile_rel(0, 0));
    let start = std::time::Instant::now();
    while !tile.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "tile 0 never written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::remove_file(&tile).unwrap();
    let public = Some(key().public_key());
    let report = verify_dir(dir.path(), public)
        .unwrap_or_else(|d| panic!("a tile no checkpoint covers yet: {d}"));
    assert_eq!(report.entries, n);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("tile/0/000 is not written yet")),
        "{:?}",
        report.warnings
    );
    // Once a checkpoint covers its entries, its proofs read it: missing, it is a defect.
    assert_eq!(log.checkpoint_now().unwrap().size, n);
    let d = verify_dir(dir.path(), public).unwrap_err();
    assert_eq!(d.kind, DefectKind::TileMissing, "{d}");
    log.close();
}
