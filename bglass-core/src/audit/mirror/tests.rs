//! The mirror against a real log written by the log code: incremental copies that `verify`
//! accepts, and every way a served log can disagree with the mirror.

use std::path::Path;

use super::super::checkpoint::VerifiedCheckpoint;
use super::super::log::AuditLog;
use super::super::tests::{config, event, key};
use super::super::verify::verify_dir;
use super::*;

fn proxy() -> ProxyId {
    ProxyId::new("proxy-a").unwrap()
}

/// A log of `n` entries (entry 0 is its start), with a checkpoint covering them.
fn log_of(dir: &Path, n: u64) -> (AuditLog, VerifiedCheckpoint) {
    let (log, _) = AuditLog::open(config(dir), |_, _| Ok(())).unwrap();
    let c = grow(&log, n, 0);
    (log, c)
}

/// Appends up to `to` entries, entry `i` being `event(i + shift)` after the start, and
/// signs a checkpoint.
fn grow(log: &AuditLog, to: u64, shift: u64) -> VerifiedCheckpoint {
    for i in log.size()..to {
        let n = if i == 0 { 0 } else { i + shift };
        log.append(event(n)).unwrap();
    }
    log.checkpoint_now().unwrap()
}

/// Takes `checkpoint` from `log` into `mirror`, entries read from the log's files.
fn take(
    mirror: &mut Mirror,
    log: &AuditLog,
    checkpoint: &VerifiedCheckpoint,
) -> Result<Vec<(PolicyKind, String)>, AdvanceError> {
    let Seen::Larger(c) = mirror.see(&checkpoint.note)? else {
        return Ok(Vec::new());
    };
    let from = mirror.size();
    let mut advance = mirror.advance(c);
    for item in log
        .entries_from(from)
        .take((checkpoint.size - from) as usize)
    {
        let (_, entry) = item.unwrap();
        advance.push(&entry)?;
    }
    advance.finish()
}

#[test]
fn a_mirror_taken_in_steps_verifies_offline_and_reopens_where_it_was() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (log, first) = log_of(src.path(), 300);
    let mut mirror = Mirror::open(out.path(), &proxy(), key().public_key()).unwrap();
    assert_eq!(mirror.bundles_to(300), vec![(0, 256), (1, 44)]);
    let policy = take(&mut mirror, &log, &first).unwrap();
    assert_eq!(
        policy,
        vec![
            (PolicyKind::Catalog, "c".to_owned()),
            (PolicyKind::Roster, "r".to_owned())
        ]
    );
    assert_eq!(mirror.size(), 300);
    // Taking the same checkpoint again changes nothing.
    assert!(matches!(mirror.see(&first.note), Ok(Seen::Held)));
    let second = grow(&log, 1000, 0);
    assert_eq!(mirror.bundles_to(1000)[0], (1, 256));
    take(&mut mirror, &log, &second).unwrap();
    drop(mirror);

    let report = verify_dir(out.path(), Some(key().public_key())).unwrap();
    assert_eq!(report.entries, 1000);
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.latest.map(|l| l.0), Some(1000));
    let mirror = Mirror::open(out.path(), &proxy(), key().public_key()).unwrap();
    assert_eq!(mirror.size(), 1000);
    assert_eq!(mirror.latest().unwrap().root, second.root);
}

#[test]
fn rollback_fork_and_altered_entries_are_refused_and_the_mirror_keeps_what_it_had() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (log_a, at_200) = log_of(a.path(), 200);
    let mut mirror = Mirror::open(out.path(), &proxy(), key().public_key()).unwrap();
    take(&mut mirror, &log_a, &at_200).unwrap();

    // A log with the same key that agrees up to 100 entries, then says other things.
    let (log_b, b_100) = log_of(b.path(), 100);
    assert_eq!(
        mirror.see(&b_100.note).unwrap_err(),
        Inconsistency::Rollback {
            mirror: 200,
            size: 100
        }
    );
    let b_200 = grow(&log_b, 200, 1_000_000);
    assert_eq!(
        mirror.see(&b_200.note).unwrap_err(),
        Inconsistency::Fork {
            mirror: 200,
            size: 200
        }
    );
    // Larger, but not an extension of the mirror's tree: its entries cannot give its root
    // on top of the mirror's; its consistency proof from the mirror's checkpoint fails.
    let b_600 = grow(&log_b, 600, 1_000_000);
    let err = take(&mut mirror, &log_b, &b_600).unwrap_err();
    assert!(
        matches!(
            err,
            AdvanceError::Served(Inconsistency::EntriesAltered { from: 200, to: 600 })
        ),
        "{err}"
    );
    let proof = log_b.consistency_proof(200, 600).unwrap();
    assert!(!mirror.extends(&proof, 600, b_600.root));
    assert_eq!(mirror.size(), 200);
    assert!(!out.path().join(storage::bundle_rel(1)).exists());

    // The right checkpoint with an altered entry.
    let a_600 = grow(&log_a, 600, 0);
    let proof = log_a.consistency_proof(200, 600).unwrap();
    assert!(mirror.extends(&proof, 600, a_600.root));
    let Seen::Larger(c) = mirror.see(&a_600.note).unwrap() else {
        panic!("not larger")
    };
    let mut advance = mirror.advance(c);
    for item in log_a.entries_from(200).take(400) {
        let (i, mut entry) = item.unwrap();
        if i == 450 {
            entry = event(9_999);
        }
        advance.push(&entry).unwrap();
    }
    assert!(matches!(
        advance.finish().unwrap_err(),
        AdvanceError::Served(Inconsistency::EntriesAltered { .. })
    ));
    // An entry of another proxy, or not an event, is named by its index.
    let Seen::Larger(c) = mirror.see(&a_600.note).unwrap() else {
        panic!("not larger")
    };
    let mut advance = mirror.advance(c);
    let err = advance.push(b"not json").unwrap_err();
    assert!(
        matches!(
            err,
            AdvanceError::Served(Inconsistency::EntryMalformed { index: 200, .. })
        ),
        "{err}"
    );
    drop(advance);
    let report = verify_dir(out.path(), Some(key().public_key())).unwrap();
    assert_eq!(report.entries, 200);
    // A checkpoint signed by another key.
    let other = crate::keys::SigningKey::from_seed(&[9; 32]).unwrap();
    let forged = checkpoint::sign("bglass/proxy-a", 200, at_200.root, &other).unwrap();
    assert!(matches!(
        mirror.see(&forged),
        Err(Inconsistency::Checkpoint(_))
    ));
}

#[test]
fn an_interrupted_update_leaves_only_uncovered_files_which_opening_removes() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (log, at_10) = log_of(src.path(), 10);
    let mut mirror = Mirror::open(out.path(), &proxy(), key().public_key()).unwrap();
    take(&mut mirror, &log, &at_10).unwrap();
    let at_600 = grow(&log, 600, 0);
    let Seen::Larger(c) = mirror.see(&at_600.note).unwrap() else {
        panic!("not larger")
    };
    let mut advance = mirror.advance(c);
    for item in log.entries_from(10).take(590) {
        advance.push(&item.unwrap().1).unwrap();
    }
    // Stopped before finishing: bundles 0 and 1 and their tiles are written, uncovered.
    drop(advance);
    assert!(out.path().join(storage::bundle_rel(1)).exists());
    drop(mirror);
    let mirror = Mirror::open(out.path(), &proxy(), key().public_key()).unwrap();
    assert_eq!(mirror.size(), 10);
    assert!(!out.path().join(storage::bundle_rel(0)).exists());
    assert!(!out.path().join(storage::tile_rel(0, 1)).exists());
    assert_eq!(
        verify_dir(out.path(), Some(key().public_key()))
            .unwrap()
            .entries,
        10
    );
    // A mirror opened with another key refuses.
    let other = crate::keys::SigningKey::from_seed(&[9; 32]).unwrap();
    assert!(matches!(
        Mirror::open(out.path(), &proxy(), other.public_key()),
        Err(MirrorError::Key { .. })
    ));
}

#[test]
fn a_cosigned_note_keeps_only_the_proxys_own_signature_in_the_history() {
    let note = "bglass/proxy-a\n3\nAAAA\n\n\u{2014} bglass/proxy-a abc\n\u{2014} bglass-witness/proxy-b def\n";
    assert_eq!(
        own_note(note.as_bytes(), "bglass/proxy-a"),
        "bglass/proxy-a\n3\nAAAA\n\n\u{2014} bglass/proxy-a abc\n".as_bytes()
    );
}
