//! `bglass audit verify` on a 10,000-event log: clean, then each kind of tampering.

use std::path::{Path, PathBuf};

use bglass_core::audit::checkpoint;
use bglass_core::audit::storage::{self, parse_bundle};
use bglass_core::audit::tree::leaf_hash;
use bglass_core::id::ProxyId;
use bglass_core::keys::SigningKey;
use bglass_tests::{assert_no_panic, audit, command, run};

const N: u64 = 10_000;

fn pristine() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        audit::write(dir.path(), &audit::realistic(N));
        dir
    })
    .path()
}

fn copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    audit::copy_dir(pristine(), &dir);
    (tmp, dir)
}

fn verify(dir: &Path) -> bglass_tests::Run {
    let home = tempfile::tempdir().unwrap();
    let out = run(command("bglass", home.path())
        .args(["audit", "verify"])
        .arg(dir)
        .arg("--key")
        .arg(audit::proxy_key().public_key().to_string()));
    assert_no_panic(&out);
    out
}

fn assert_defect(dir: &Path, expected: &str) {
    let out = verify(dir);
    assert_eq!(
        out.code,
        Some(5),
        "expected a defect, got: {}{}",
        out.stdout,
        out.stderr
    );
    let first = out.stderr.lines().next().unwrap_or_default().to_owned();
    eprintln!("verify reported: {first}");
    assert!(
        first.contains(expected),
        "expected {expected:?} in: {first}"
    );
}

fn entries(dir: &Path, bundle: u64) -> Vec<Vec<u8>> {
    let bytes = storage::read_bundle(dir, bundle).unwrap();
    parse_bundle(&bytes)
        .unwrap()
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

fn write_bundle(dir: &Path, bundle: u64, entries: &[Vec<u8>]) {
    std::fs::write(
        dir.join(storage::bundle_rel(bundle)),
        storage::encode_bundle(
            &entries
                .iter()
                .map(|e| storage::Entry::new(e.clone()).unwrap())
                .collect::<Vec<_>>(),
        ),
    )
    .unwrap();
}

#[test]
fn untouched_log_verifies() {
    let out = verify(pristine());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("verified: 10000 entries of proxy proxy-a"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("latest checkpoint: size 10000"),
        "{}",
        out.stdout
    );

    // Without --key: verifies with the recorded key, and says so.
    let home = tempfile::tempdir().unwrap();
    let out = run(command("bglass", home.path())
        .args(["audit", "verify"])
        .arg(pristine()));
    assert_eq!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("warning: checked against the key recorded in entry 0"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_wrong_key_is_named_as_a_likely_wrong_key() {
    let home = tempfile::tempdir().unwrap();
    let other = SigningKey::from_seed(&[9; 32]).unwrap().public_key();
    let out = run(command("bglass", home.path())
        .args(["audit", "verify"])
        .arg(pristine())
        .arg("--key")
        .arg(other.to_string()));
    assert_no_panic(&out);
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("hint: the --key given may be the wrong one"),
        "{}",
        out.stderr
    );
    // A log altered under the right key keeps its own hint.
    let (_t, dir) = copy();
    let mut e = entries(&dir, 10);
    e[100] = String::from_utf8(e[100].clone())
        .unwrap()
        .replacen("\"status\":200", "\"status\":201", 1)
        .into_bytes();
    write_bundle(&dir, 10, &e);
    let altered = verify(&dir);
    assert!(
        altered.stderr.contains("hint: the log has been altered"),
        "{}",
        altered.stderr
    );
}

#[test]
fn one_byte_flipped_in_an_entry() {
    let (_t, dir) = copy();
    let mut e = entries(&dir, 10);
    // Entry 2660 (bundle 10, position 100): change a digit inside the JSON, keeping it valid.
    let text =
        String::from_utf8(e[100].clone())
            .unwrap()
            .replacen("\"status\":200", "\"status\":201", 1);
    assert_ne!(text.as_bytes(), e[100].as_slice(), "the entry must change");
    e[100] = text.into_bytes();
    write_bundle(&dir, 10, &e);
    assert_defect(
        &dir,
        "entry 2660: its hash differs from hash 100 of tile/0/010",
    );
}

#[test]
fn one_byte_flipped_making_an_entry_invalid() {
    let (_t, dir) = copy();
    let mut e = entries(&dir, 3);
    e[5][0] = b'[';
    write_bundle(&dir, 3, &e);
    assert_defect(&dir, "entry 773:");
}

#[test]
fn an_entry_deleted() {
    let (_t, dir) = copy();
    let mut e = entries(&dir, 10);
    e.remove(101);
    write_bundle(&dir, 10, &e);
    assert_defect(
        &dir,
        "entry 2661: its hash differs from hash 101 of tile/0/010",
    );
}

#[test]
fn two_entries_swapped() {
    let (_t, dir) = copy();
    let mut e = entries(&dir, 10);
    e.swap(102, 103);
    write_bundle(&dir, 10, &e);
    assert_defect(
        &dir,
        "entry 2662: its hash differs from hash 102 of tile/0/010",
    );
}

#[test]
fn tail_truncated() {
    let (_t, dir) = copy();
    // The last 16 entries live only in the write-ahead file (which also keeps entries of
    // the last full bundles: it is trimmed every 16 bundles); drop the last 10 of them.
    let wal = storage::read_wal(&dir.join(storage::WAL_FILE)).unwrap();
    assert!(wal.records.len() >= 256 + 16, "{}", wal.records.len());
    assert_eq!(wal.records.last().map(|r| r.index), Some(9999));
    let mut bytes = storage::wal_header();
    for r in &wal.records[..wal.records.len() - 10] {
        storage::encode_record(&mut bytes, r.index, &r.data);
    }
    std::fs::write(dir.join(storage::WAL_FILE), bytes).unwrap();
    assert_defect(&dir, "entry 9990: checkpoint #");
    let out = verify(&dir);
    assert!(
        // The first checkpoint past 9990 in the history is named; which one depends on when
        // the writer signed, so only the start and the rule are fixed.
        out.stderr
            .contains("but the log holds 9990: entries 9990..")
            && out.stderr.contains(" are missing (tail truncated)"),
        "{}",
        out.stderr
    );

    // Whole bundles removed from the end as well.
    std::fs::remove_file(dir.join(storage::bundle_rel(38))).unwrap();
    std::fs::remove_file(dir.join(storage::WAL_FILE)).unwrap();
    assert_defect(&dir, "entry 9728:");
}

#[test]
fn a_tile_hash_replaced() {
    let (_t, dir) = copy();
    let path = dir.join(storage::tile_rel(0, 5));
    let mut tile = std::fs::read(&path).unwrap();
    tile[17 * 32..18 * 32].copy_from_slice(&leaf_hash(b"forged").0);
    std::fs::write(&path, tile).unwrap();
    assert_defect(&dir, "entry 1297: hash 17 of tile/0/005 was replaced");
}

fn history(dir: &Path) -> Vec<Vec<u8>> {
    storage::read_history(&dir.join(storage::HISTORY_FILE))
        .unwrap()
        .0
}

fn write_history(dir: &Path, notes: &[Vec<u8>]) {
    let bytes: Vec<u8> = notes
        .iter()
        .flat_map(|n| storage::encode_history(n).unwrap())
        .collect();
    std::fs::write(dir.join(storage::HISTORY_FILE), bytes).unwrap();
}

#[test]
fn checkpoint_size_or_root_altered() {
    let (_t, dir) = copy();
    let text =
        String::from_utf8(std::fs::read(dir.join(storage::CHECKPOINT_FILE)).unwrap()).unwrap();
    let altered = text.replacen("\n10000\n", "\n9999\n", 1);
    assert_ne!(altered, text);
    std::fs::write(dir.join(storage::CHECKPOINT_FILE), &altered).unwrap();
    assert_defect(
        &dir,
        "tree size 9999: the checkpoint in checkpoint: checkpoint signature does not verify",
    );

    // The root altered inside the history.
    let (_t2, dir) = copy();
    let mut notes = history(&dir);
    let first = String::from_utf8(notes[0].clone()).unwrap();
    let mut lines: Vec<&str> = first.split('\n').collect();
    let forged_root = base64_of(&leaf_hash(b"other").0);
    lines[2] = &forged_root;
    notes[0] = lines.join("\n").into_bytes();
    write_history(&dir, &notes);
    assert_defect(
        &dir,
        "checkpoint #1 in checkpoints: checkpoint signature does not verify",
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn checkpoint_signed_by_another_key() {
    let (_t, dir) = copy();
    let other = SigningKey::from_seed(&[99; 32]).unwrap();
    let origin = checkpoint::origin(&ProxyId::new(audit::PROXY).unwrap());
    let (_, size, root) =
        checkpoint::peek(&std::fs::read(dir.join(storage::CHECKPOINT_FILE)).unwrap()).unwrap();
    let forged = checkpoint::sign(&origin, size, root, &other).unwrap();
    std::fs::write(dir.join(storage::CHECKPOINT_FILE), forged).unwrap();
    assert_defect(&dir, "checkpoint is not signed by the proxy key");
}

#[test]
fn two_inconsistent_checkpoints_a_fork() {
    let (_t, dir) = copy();
    let origin = checkpoint::origin(&ProxyId::new(audit::PROXY).unwrap());
    // The proxy's own key signs a second view of size 5000 with another root.
    let fork = checkpoint::sign(
        &origin,
        5000,
        leaf_hash(b"another history"),
        &audit::proxy_key(),
    )
    .unwrap();
    let mut notes = history(&dir);
    notes.push(fork);
    write_history(&dir, &notes);
    assert_defect(&dir, "tree size 5000: checkpoint #");
    let out = verify(&dir);
    assert!(
        out.stderr
            .contains("does not match the entries: it is inconsistent with checkpoint #"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("which matches the entries (a fork)"),
        "{}",
        out.stderr
    );
}
