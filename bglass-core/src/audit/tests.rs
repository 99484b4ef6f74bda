//! The log end to end in one process: appends, recovery, proofs, receipts, verification.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::event::{EVENT_VERSION, Event, EventKind};
use super::log::{AuditLog, AuditOpenError, LogConfig};
use super::receipt::ReceiptError;
use super::storage;
use super::tree::TILE_WIDTH;
use super::verify::{DefectKind, KeySource, verify_dir};
use crate::id::{GrantId, ProxyId};
use crate::keys::SigningKey;

fn key() -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seed(&[7; 32]).unwrap())
}

fn config(dir: &Path) -> LogConfig {
    LogConfig {
        dir: dir.to_path_buf(),
        proxy: ProxyId::new("proxy-a").unwrap(),
        key: key(),
        checkpoint_interval: Duration::from_millis(50),
    }
}

fn event(i: u64) -> Vec<u8> {
    let kind = if i == 0 {
        EventKind::ProxyStart {
            key: key().public_key(),
            version: "test".to_owned(),
            catalog: "c".to_owned(),
            roster: "r".to_owned(),
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
    storage::encode_record(&mut extra, 300, &event(300));
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
        storage::encode_record(&mut wal, i, &event(i));
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
