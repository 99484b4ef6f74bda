//! Storage faults while the log runs: a scripted workload (appends across a bundle boundary,
//! checkpoints) is run once per (operation, fault): the n-th file operation of the writer
//! fails with ENOSPC (a short write), EIO on fsync, or EROFS (a read-only remount), and
//! keeps failing until the test clears the fault. After each: no append was acknowledged
//! that the log does not hold, the log refused appends while failed, it recovered by itself
//! once the fault was cleared (recording `log_failed` and `log_recovered`), and the files
//! reopen and verify.
#![cfg(test)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::event::Event;
use super::log::{AuditLog, LogConfig, LogFault};
use super::storage::{Disk, Fault, Faults};
use super::tests::{config, event};
use super::tree::TILE_WIDTH;
use super::verify::{DefectKind, verify_dir};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
const EROFS: i32 = 30;

/// Which operations a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Writes run out of space part-way (a short write), and creating files fails.
    DiskFull,
    /// Syncs fail with EIO.
    SyncFails,
    /// Every write and every change of a file fails with EROFS.
    ReadOnly,
}

/// Counts the writer's operations and, from operation `at` on, fails them as `kind` says
/// until cleared.
#[derive(Debug)]
struct Plan {
    kind: Kind,
    at: usize,
    seen: AtomicUsize,
    /// Operations are counted once the log is open (opening on a failing disk fails).
    armed: AtomicBool,
    cleared: AtomicBool,
    hit: AtomicBool,
}

impl Plan {
    fn new(kind: Kind, at: usize) -> Self {
        Self {
            kind,
            at,
            seen: AtomicUsize::new(0),
            armed: AtomicBool::new(false),
            cleared: AtomicBool::new(false),
            hit: AtomicBool::new(false),
        }
    }

    /// Counts one operation; whether the fault is active for it.
    fn active(&self) -> bool {
        if !self.armed.load(Ordering::SeqCst) {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        let on = n >= self.at && !self.cleared.load(Ordering::SeqCst);
        if on {
            self.hit.store(true, Ordering::SeqCst);
        }
        on
    }
}

impl Faults for Plan {
    fn write(&self, _path: &Path, len: usize) -> Option<Fault> {
        if !self.active() {
            return None;
        }
        match self.kind {
            Kind::DiskFull => Some(Fault::Short {
                written: len / 2,
                errno: ENOSPC,
            }),
            Kind::SyncFails => None,
            Kind::ReadOnly => Some(Fault::Fail(EROFS)),
        }
    }

    fn sync(&self, _path: &Path) -> Option<Fault> {
        if !self.active() {
            return None;
        }
        match self.kind {
            Kind::SyncFails => Some(Fault::Fail(EIO)),
            Kind::DiskFull => None,
            Kind::ReadOnly => Some(Fault::Fail(EROFS)),
        }
    }

    fn modify(&self, _path: &Path) -> Option<Fault> {
        if !self.active() {
            return None;
        }
        match self.kind {
            Kind::DiskFull => Some(Fault::Fail(ENOSPC)),
            Kind::SyncFails => None,
            Kind::ReadOnly => Some(Fault::Fail(EROFS)),
        }
    }
}

/// Entries of the workload: across one bundle boundary.
const WORKLOAD: u64 = TILE_WIDTH as u64 + 24;
/// Appends waited for together (one group commit each).
const BATCH: u64 = 16;

fn faulty_config(dir: &Path, plan: Arc<Plan>) -> LogConfig {
    LogConfig {
        checkpoint_interval: Duration::from_secs(3600),
        reserve_bytes: 64 * 1024,
        disk: Disk::with_faults(plan),
        retry_after: Duration::from_millis(2),
        ..config(dir)
    }
}

/// A directory on a memory file system when there is one (syncs cost nothing there).
fn scratch() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap()),
        false => tempfile::tempdir().unwrap(),
    }
}

/// Runs the workload with the fault at operation `at`; returns whether the fault was hit.
fn run(kind: Kind, at: usize) -> bool {
    let dir = scratch();
    let plan = Arc::new(Plan::new(kind, at));
    let (log, _) = AuditLog::open(faulty_config(dir.path(), Arc::clone(&plan)), |_, _| Ok(()))
        .unwrap_or_else(|e| panic!("{kind:?} at {at}: open: {e}"));
    plan.armed.store(true, Ordering::SeqCst);
    let what = format!("{kind:?} at operation {at}");
    // (entry number in the workload, index where the log put it)
    let mut acknowledged: Vec<(u64, u64)> = Vec::new();
    let mut refused = 0u64;
    let mut next = 0u64;
    while next < WORKLOAD {
        let batch: Vec<(u64, _)> = (next..(next + BATCH).min(WORKLOAD))
            .map(|i| (i, log.submit(event(1000 + i))))
            .collect();
        for (i, submitted) in batch {
            match submitted.and_then(super::log::Submitted::wait) {
                Ok(appended) => acknowledged.push((i, appended.index)),
                Err(_) => refused += 1,
            }
        }
        if next == BATCH * 4 {
            let _ = log.checkpoint_now();
        }
        next += BATCH;
        if log.failure().is_some() {
            // A copy taken while the log is failed verifies: no checkpoint was signed over
            // tiles that are not on disk (the writer signs the failure's checkpoint only
            // once every tile it covers is written).
            if let Err(d) = verify_dir(dir.path(), Some(super::tests::key().public_key()))
                && d.kind == DefectKind::TileMissing
            {
                panic!("{what}: while failed, a checkpoint covers a missing tile: {d}");
            }
            // The log refuses while failed, and recovers once the disk works again.
            assert!(
                log.append(event(999)).is_err(),
                "{what}: a failed log took an append"
            );
            plan.cleared.store(true, Ordering::SeqCst);
            let started = Instant::now();
            while log.failure().is_some() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "{what}: no recovery once the fault was cleared: {:?}",
                    log.health()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(log.health().last_recovery.is_some(), "{what}");
        }
    }
    let _ = log.checkpoint_now();
    let hit = plan.hit.load(Ordering::SeqCst);
    drop(log);

    // Reopen without faults: every acknowledged entry is where the log said it put it.
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let (log, _) = AuditLog::open(config(dir.path()), |_, e| {
        entries.push(e.to_vec());
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{what}: reopening: {e}"));
    drop(log);
    for (i, index) in &acknowledged {
        let stored = entries
            .get(usize::try_from(*index).expect("an index in memory"))
            .unwrap_or_else(|| panic!("{what}: acknowledged entry {index} is missing"));
        assert_eq!(
            stored,
            &event(1000 + i),
            "{what}: entry {index} is not what was acknowledged"
        );
    }
    let kinds: Vec<String> = entries
        .iter()
        .filter_map(|e| Event::from_bytes(e).ok())
        .map(|e| e.event.type_name().to_owned())
        .collect();
    if hit && refused > 0 {
        assert!(
            kinds.iter().any(|k| k == "log_failed"),
            "{what}: no log_failed: {kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k == "log_recovered"),
            "{what}: no log_recovered: {kinds:?}"
        );
    }
    if let Err(d) = verify_dir(dir.path(), Some(super::tests::key().public_key())) {
        panic!("{what}: the log does not verify: {d}");
    }
    hit
}

/// How many operations the workload performs without faults.
fn operations() -> usize {
    let dir = scratch();
    let plan = Arc::new(Plan::new(Kind::SyncFails, usize::MAX));
    {
        let (log, _) =
            AuditLog::open(faulty_config(dir.path(), Arc::clone(&plan)), |_, _| Ok(())).unwrap();
        plan.armed.store(true, Ordering::SeqCst);
        for i in 0..WORKLOAD {
            log.append(event(1000 + i)).unwrap();
        }
        let _ = log.checkpoint_now();
    }
    plan.seen.load(Ordering::SeqCst)
}

/// Runs the workload once per operation with `kind` at that operation.
fn every_operation(kind: Kind) {
    let total = operations();
    assert!(total > 20, "the workload performs only {total} operations");
    let mut hits = 0;
    for at in 0..total {
        if run(kind, at) {
            hits += 1;
        }
    }
    assert!(hits > 0, "{kind:?} never hit an operation");
}

#[test]
fn a_full_disk_at_any_write_loses_nothing_acknowledged_and_the_log_recovers() {
    every_operation(Kind::DiskFull);
}

#[test]
fn eio_on_any_fsync_loses_nothing_acknowledged_and_the_log_recovers() {
    every_operation(Kind::SyncFails);
}

#[test]
fn a_read_only_remount_at_any_write_loses_nothing_acknowledged_and_the_log_recovers() {
    every_operation(Kind::ReadOnly);
}

#[test]
fn a_log_directory_removed_under_the_writer_fails_closed_and_says_so() {
    let dir = scratch();
    let log_dir = dir.path().join("log");
    let (log, _) = AuditLog::open(
        LogConfig {
            retry_after: Duration::from_millis(2),
            ..config(&log_dir)
        },
        |_, _| Ok(()),
    )
    .unwrap();
    for i in 0..10 {
        log.append(event(i)).unwrap();
    }
    log.checkpoint_now().unwrap();
    std::fs::remove_dir_all(&log_dir).unwrap();
    // The write-ahead file is gone: an append to it is not durable, so it is refused.
    assert!(log.append(event(10)).is_err());
    let started = Instant::now();
    loop {
        let why = log.failure().expect("the log must stay failed").to_string();
        if why.contains("missing") || why.contains("removed") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{why}");
        std::thread::sleep(Duration::from_millis(5));
    }
    // An empty directory in its place is not the log: still failed, still refusing.
    std::fs::create_dir_all(log_dir.join("tmp")).unwrap();
    let started = Instant::now();
    let replaced = |fault: &LogFault| match fault {
        LogFault::Retrying { latest, .. } => matches!(
            latest.as_ref(),
            LogFault::CheckpointGone { .. } | LogFault::BundlesGone { .. }
        ),
        _ => false,
    };
    while !log.failure().is_some_and(|f| replaced(&f)) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            log.failure()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(log.append(event(11)).is_err());
}

/// A disk that is full only for entry bundles and hash tiles (the files written as bundles
/// fill), while the write-ahead file and the checkpoint history still take writes: the
/// failure's own entry fits, the tiles do not.
#[derive(Debug, Default)]
struct TilesFull {
    on: AtomicBool,
}

impl TilesFull {
    fn hits(&self, path: &Path) -> bool {
        // Tiles and bundles under tile/, and their temporary files (tmp/tile_…).
        let tile = path.components().any(|c| c.as_os_str() == "tile")
            || path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tile_"));
        tile && self.on.load(Ordering::SeqCst)
    }
}

impl Faults for TilesFull {
    fn write(&self, path: &Path, len: usize) -> Option<Fault> {
        self.hits(path).then_some(Fault::Short {
            written: len / 2,
            errno: ENOSPC,
        })
    }

    fn sync(&self, _path: &Path) -> Option<Fault> {
        None
    }

    fn modify(&self, path: &Path) -> Option<Fault> {
        self.hits(path).then_some(Fault::Fail(ENOSPC))
    }
}

#[test]
fn no_checkpoint_covers_a_tile_the_full_disk_kept_from_being_written() {
    let dir = scratch();
    let faults = Arc::new(TilesFull::default());
    let config = LogConfig {
        checkpoint_interval: Duration::from_secs(3600),
        reserve_bytes: 64 * 1024,
        disk: Disk::with_faults(Arc::clone(&faults) as Arc<dyn Faults>),
        retry_after: Duration::from_millis(2),
        ..config(dir.path())
    };
    let (log, _) = AuditLog::open(config, |_, _| Ok(())).unwrap();
    log.append(event(1000)).unwrap();
    log.checkpoint_now().unwrap();
    faults.on.store(true, Ordering::SeqCst);
    // Past a bundle boundary: bundle 0 and its level-0 tile cannot be written.
    for i in 1..WORKLOAD {
        let _ = log.append(event(1000 + i));
    }
    let _ = log.checkpoint_now();
    let started = Instant::now();
    while log.failure().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the log never failed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let key = super::tests::key().public_key();
    // A copy taken now, while the log is failed, verifies: whatever checkpoint was signed
    // covers only what is on disk.
    if let Err(d) = verify_dir(dir.path(), Some(key)) {
        panic!("while the tiles could not be written: {d}");
    }
    faults.on.store(false, Ordering::SeqCst);
    let started = Instant::now();
    while log.failure().is_some() {
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
        std::thread::sleep(Duration::from_millis(5));
    }
    log.checkpoint_now().unwrap();
    drop(log);
    // Recovered: the bundle and tiles written, the failure and the recovery recorded, and a
    // checkpoint over all of it.
    let report = verify_dir(dir.path(), Some(key)).unwrap();
    assert!(report.entries > TILE_WIDTH as u64, "{report:?}");
    assert_eq!(
        report.latest.map(|l| l.0),
        Some(report.entries),
        "{report:?}"
    );
    let kinds: Vec<String> = super::report::read_events(dir.path())
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.event.type_name().to_owned())
        .collect();
    assert!(
        kinds.iter().any(|k| k == "log_failed") && kinds.iter().any(|k| k == "log_recovered"),
        "{kinds:?}"
    );
}
