//! A signing-key rotation through the log itself: the transition entry, the checkpoint both
//! keys sign, verification across it from either key, and what is refused.

use std::path::Path;
use std::sync::Arc;

use super::checkpoint;
use super::event::{EVENT_VERSION, Event, EventKind};
use super::log::{AuditLog, AuditOpenError, LogConfig};
use super::rotation::KeyTransition;
use super::tests::{config, event, key};
use super::verify::{DefectKind, KeySource, verify_dir};
use crate::id::ProxyId;
use crate::keys::SigningKey;

fn new_key() -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seed(&[9; 32]).unwrap())
}

fn rotation_event(transition: KeyTransition) -> Vec<u8> {
    Event {
        v: EVENT_VERSION,
        time_ms: 1_767_225_700_000,
        proxy: ProxyId::new("proxy-a").unwrap(),
        actor: None,
        drill: None,
        event: EventKind::SigningKeyRotated { transition },
    }
    .to_bytes()
    .unwrap()
}

/// A log of `before` entries under the old key, a rotation to the new key as
/// `bglass-proxy rotate-key` writes it, then `after` entries under the new key. Returns
/// the transition's index.
fn rotated_log(dir: &Path, before: u64, after: u64, forge: bool) -> u64 {
    let (old, new) = (key(), new_key());
    let (log, _) = AuditLog::open(config(dir), |_, _| Ok(())).unwrap();
    for i in 0..before {
        log.append(event(i)).unwrap();
    }
    log.close();
    let rotating = LogConfig {
        successor: Some(Arc::clone(&new)),
        ..config(dir)
    };
    let (log, _) = AuditLog::open(rotating, |_, _| Ok(())).unwrap();
    let index = log.size();
    let mut transition = KeyTransition::sign(log.origin(), index, &old, &new);
    if forge {
        // Whoever holds only the old key names a key whose owner never agreed.
        let other = SigningKey::from_seed(&[11; 32]).unwrap();
        transition.sig_new = KeyTransition::sign(log.origin(), index, &old, &other).sig_new;
    }
    log.append(rotation_event(transition)).unwrap();
    log.checkpoint_now().unwrap();
    log.close();
    let (log, _) = AuditLog::open(
        LogConfig {
            key: Arc::clone(&new),
            ..config(dir)
        },
        |_, _| Ok(()),
    )
    .unwrap();
    for i in 0..after {
        log.append(event(before + i + 1)).unwrap();
    }
    log.close();
    index
}

#[test]
fn a_rotated_log_verifies_from_either_key_and_the_old_key_can_no_longer_open_it() {
    let dir = tempfile::tempdir().unwrap();
    // Across a full bundle, so that the transition is read on the fast path too.
    let index = rotated_log(dir.path(), 300, 40, false);
    let (old, new) = (key().public_key(), new_key().public_key());

    for given in [Some(old), Some(new), None] {
        let report = verify_dir(dir.path(), given).unwrap();
        assert_eq!(report.entries, 341);
        assert_eq!(report.key, new, "the key in force after the rotation");
        assert_eq!(report.rotations.len(), 1);
        assert_eq!(report.rotations[0].index, index);
        assert_eq!(
            report.key_source,
            if given.is_some() {
                KeySource::Given
            } else {
                KeySource::RecordedAtStart
            }
        );
    }

    // The checkpoint that first covers the transition carries both signatures: a verifier
    // (or witness) that knows only the old key accepts it.
    let history = std::fs::read(dir.path().join(super::storage::HISTORY_FILE)).unwrap();
    let text = String::from_utf8_lossy(&history);
    let head = format!("bglass/proxy-a\n{}\n", index + 1);
    let at = text
        .find(&head)
        .expect("a checkpoint covers the transition");
    let rest = &text[at + head.len()..];
    let note = &rest[..rest.find("bglass/proxy-a\n").unwrap_or(rest.len())];
    assert_eq!(
        note.lines()
            .filter(|l| l.starts_with("\u{2014} bglass/proxy-a "))
            .count(),
        2,
        "{note}"
    );

    // The old key alone can no longer sign this log: once the new key has signed, its
    // checkpoints do not verify with the old one; right after the rotation (the last
    // checkpoint signed by both), the rotation entry itself refuses it.
    let refused = AuditLog::open(config(dir.path()), |_, _| Ok(()));
    assert!(matches!(refused, Err(AuditOpenError::Corrupt { .. })));
    let fresh = tempfile::tempdir().unwrap();
    let index = rotated_log(fresh.path(), 3, 0, false);
    match AuditLog::open(config(fresh.path()), |_, _| Ok(())) {
        Err(AuditOpenError::KeyRotated {
            index: at,
            logged,
            held,
        }) => assert_eq!((at, logged, held), (index, new, old)),
        other => panic!("expected KeyRotated, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_rotation_the_new_key_did_not_sign_is_named_by_verification() {
    let dir = tempfile::tempdir().unwrap();
    let index = rotated_log(dir.path(), 10, 5, true);
    let defect = verify_dir(dir.path(), Some(key().public_key())).unwrap_err();
    assert_eq!(defect.kind, DefectKind::RotationInvalid, "{defect}");
    assert_eq!(defect.index, Some(index));
    assert!(defect.what.contains("new key"), "{defect}");
}

#[test]
fn a_checkpoint_the_old_key_signs_after_the_rotation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = rotated_log(dir.path(), 10, 5, false);
    // Whoever kept the old key signs the log as it now is: not the key in force.
    let (log, _) = AuditLog::open(
        LogConfig {
            key: new_key(),
            ..config(dir.path())
        },
        |_, _| Ok(()),
    )
    .unwrap();
    let latest = log.latest_checkpoint().unwrap();
    let (size, root) = (latest.size, latest.root);
    log.close();
    let origin = checkpoint::origin(&ProxyId::new("proxy-a").unwrap());
    let note = checkpoint::sign(&origin, size, root, &key()).unwrap();
    let history = dir.path().join(super::storage::HISTORY_FILE);
    let mut bytes = std::fs::read(&history).unwrap();
    bytes.extend(super::storage::encode_history(&note).unwrap());
    std::fs::write(&history, bytes).unwrap();
    let defect = verify_dir(dir.path(), Some(key().public_key())).unwrap_err();
    assert_eq!(defect.kind, DefectKind::CheckpointWrongKey, "{defect}");
    assert!(size > index + 1);
}
