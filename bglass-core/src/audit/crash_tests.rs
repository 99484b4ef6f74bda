//! Crash consistency: a real log's files cut at every byte offset within their last records,
//! and (for the files the log appends to) garbage written over their tails — what a crash or
//! a torn write can leave. Each damaged copy must open, keep every acknowledged entry, and
//! verify (before opening, the verifier names the torn tail and never calls it altered; a
//! change inside a file is always called altered).
#![cfg(test)]

use std::path::Path;
use std::time::Duration;

use super::log::{AuditLog, AuditOpenError, LogConfig};
use super::storage::{self, WAL_FILE};
use super::tests::{config, event};
use super::tree::TILE_WIDTH;
use super::verify::{DefectKind, verify_dir};

/// Entries in the crash image, and how many its last checkpoint covers.
const ENTRIES: u64 = 2 * TILE_WIDTH as u64 + 40;
const SIGNED: u64 = 2 * TILE_WIDTH as u64 + 30;

/// Defects that mean "altered": never acceptable for damage a crash can leave.
const ALTERED: [DefectKind; 7] = [
    DefectKind::EntryAltered,
    DefectKind::EntryMalformed,
    DefectKind::RecordDamaged,
    DefectKind::CheckpointAltered,
    DefectKind::CheckpointMalformed,
    DefectKind::CheckpointFork,
    DefectKind::TileReplaced,
];

fn slow_config(dir: &Path) -> LogConfig {
    LogConfig {
        checkpoint_interval: Duration::from_secs(3600),
        ..config(dir)
    }
}

/// A crash image: the files of a log copied while it runs, with `ENTRIES` acknowledged
/// entries of which the last checkpoint covers `SIGNED`.
fn crash_image() -> tempfile::TempDir {
    let live = tempfile::tempdir().unwrap();
    let (log, _) = AuditLog::open(slow_config(live.path()), |_, _| Ok(())).unwrap();
    for i in 0..SIGNED {
        log.append(event(i)).unwrap();
        if i == 99 {
            log.checkpoint_now().unwrap();
        }
    }
    log.checkpoint_now().unwrap();
    for i in SIGNED..ENTRIES {
        log.append(event(i)).unwrap();
    }
    let image = tempfile::tempdir().unwrap();
    copy_dir(live.path(), image.path());
    drop(log);
    image
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else if entry.file_name() != "lock" {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The byte range of the last `n` records of a file, and whether the log appends to it.
struct Target {
    rel: String,
    range: std::ops::Range<usize>,
    appended: bool,
}

fn targets(dir: &Path) -> Vec<Target> {
    let len = |rel: &str| std::fs::metadata(dir.join(rel)).unwrap().len() as usize;
    // The write-ahead file's last two records.
    let wal = std::fs::read(dir.join(WAL_FILE)).unwrap();
    let records = storage::read_wal(&dir.join(WAL_FILE)).unwrap().records;
    let tail: usize = records
        .iter()
        .rev()
        .take(2)
        .map(|r| storage::record_len(r.data.as_bytes().len()))
        .sum();
    // The history's last note.
    let end = storage::history_end(&dir.join(storage::HISTORY_FILE)).unwrap();
    let last_note = end.last.map_or(0, |(at, _)| at as usize);
    // The last bundle's last two entries.
    let bundle = storage::bundle_rel(1);
    let bundle_bytes = std::fs::read(dir.join(&bundle)).unwrap();
    let ranges = storage::bundle_ranges(&bundle_bytes).unwrap();
    let bundle_tail = ranges[TILE_WIDTH - 2].start - 2;
    let tile = storage::tile_rel(0, 1);
    vec![
        Target {
            rel: WAL_FILE.to_owned(),
            range: wal.len() - tail..wal.len(),
            appended: true,
        },
        Target {
            rel: storage::HISTORY_FILE.to_owned(),
            range: last_note..len(storage::HISTORY_FILE),
            appended: true,
        },
        Target {
            rel: storage::CHECKPOINT_FILE.to_owned(),
            range: 0..len(storage::CHECKPOINT_FILE),
            appended: false,
        },
        Target {
            range: bundle_tail..len(&bundle),
            rel: bundle,
            appended: false,
        },
        Target {
            range: len(&tile) - 64..len(&tile),
            rel: tile,
            appended: false,
        },
    ]
}

/// Bytes that are not a record: a fixed pseudo-random pattern.
fn garbage(n: usize, seed: u32) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32 ^ seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn damaged_copy(image: &Path, rel: &str, bytes: &[u8]) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(image, copy.path());
    std::fs::write(copy.path().join(rel), bytes).unwrap();
    copy
}

/// Opens a damaged copy; every acknowledged entry must be there, in order, unchanged.
fn open_keeps_what_was_acknowledged(dir: &Path, what: &str) {
    let mut replayed: Vec<Vec<u8>> = Vec::new();
    let opened = AuditLog::open(slow_config(dir), |i, e| {
        assert_eq!(i, replayed.len() as u64);
        replayed.push(e.to_vec());
        Ok(())
    });
    let (log, _) = opened.unwrap_or_else(|e| panic!("{what}: the log did not open: {e}"));
    assert!(
        replayed.len() as u64 >= SIGNED,
        "{what}: {} entries, {SIGNED} were acknowledged by a checkpoint",
        replayed.len()
    );
    for (i, entry) in replayed.iter().enumerate() {
        assert_eq!(entry, &event(i as u64), "{what}: entry {i} changed");
    }
    // It goes on working, and verifies.
    log.append(event(replayed.len() as u64)).unwrap();
    log.close();
    if let Err(d) = verify_dir(dir, Some(super::tests::key().public_key())) {
        panic!("{what}: after recovery the log does not verify: {d}");
    }
}

#[test]
fn every_tail_cut_and_torn_write_opens_with_every_acknowledged_entry() {
    let image = crash_image();
    for target in targets(image.path()) {
        let original = std::fs::read(image.path().join(&target.rel)).unwrap();
        for at in target.range.clone() {
            let mut variants: Vec<(String, Vec<u8>)> = vec![(
                format!("{} cut at byte {at}", target.rel),
                original[..at].to_vec(),
            )];
            if target.appended {
                let mut torn = original[..at].to_vec();
                torn.extend(garbage(
                    original.len() - at,
                    u32::try_from(at).expect("a small offset"),
                ));
                variants.push((format!("{} garbled from byte {at}", target.rel), torn));
            }
            for (what, bytes) in variants {
                let copy = damaged_copy(image.path(), &target.rel, &bytes);
                // Before opening: a crash artefact is never called altered.
                if let Err(d) = verify_dir(copy.path(), Some(super::tests::key().public_key())) {
                    assert!(
                        !ALTERED.contains(&d.kind),
                        "{what}: verify calls a crash artefact altered: {d}"
                    );
                    assert!(
                        !target.appended,
                        "{what}: verify refuses a torn tail of a file the log appends to: {d}"
                    );
                }
                open_keeps_what_was_acknowledged(copy.path(), &what);
            }
        }
    }
}

#[test]
fn a_change_inside_a_file_is_always_called_altered() {
    let image = crash_image();
    // One byte changed well inside each file: in an entry the checkpoint covers, in the
    // first of the two history notes, in a tile's first hash. Opening refuses all but the
    // history (it checks only the history's end; the verifier checks every note).
    let records = storage::read_wal(&image.path().join(WAL_FILE)).unwrap();
    let first_len = storage::record_len(records.records[0].data.as_bytes().len());
    let cases: Vec<(String, usize)> = vec![
        (WAL_FILE.to_owned(), 8 + first_len + 20),
        (storage::HISTORY_FILE.to_owned(), 40),
        (storage::bundle_rel(0), 100),
        (storage::tile_rel(0, 0), 5),
    ];
    for (rel, at) in cases {
        let mut bytes = std::fs::read(image.path().join(&rel)).unwrap();
        bytes[at] ^= 0x20;
        let copy = damaged_copy(image.path(), &rel, &bytes);
        let d = verify_dir(copy.path(), Some(super::tests::key().public_key()))
            .expect_err(&format!("{rel} changed at byte {at} verified"));
        assert!(
            ALTERED.contains(&d.kind),
            "{rel} changed at byte {at}: verify says {:?}, not altered: {d}",
            d.kind
        );
        if rel != storage::HISTORY_FILE {
            assert!(
                matches!(
                    AuditLog::open(slow_config(copy.path()), |_, _| Ok(())),
                    Err(AuditOpenError::Corrupt { .. })
                ),
                "{rel} changed at byte {at}: the log opened"
            );
        }
    }
}
