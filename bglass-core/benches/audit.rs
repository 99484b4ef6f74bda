//! Audit log benchmark: durable append rate (one writer; many concurrent writers with group
//! commit) and offline verification rate. Prints figures and their ratios to the targets
//! recorded in docs/benchmarks.md.
//!
//! cargo bench -p bglass-core --bench audit -- [ENTRIES] [WRITERS]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind};
use bglass_core::audit::log::{AuditLog, LogConfig};
use bglass_core::audit::verify::verify_dir;
use bglass_core::id::{GrantId, ProxyId, ServiceName};
use bglass_core::keys::SigningKey;

fn event(i: u64, key: &SigningKey) -> Vec<u8> {
    let kind = if i == 0 {
        EventKind::ProxyStart {
            key: key.public_key(),
            version: "bench".to_owned(),
            catalog: "c".to_owned(),
            roster: "r".to_owned(),
            recovered: None,
        }
    } else {
        // A typical data-plane event (the most frequent kind), about 250 bytes.
        EventKind::Use {
            grant: GrantId::new(&format!("g-{:016x}", i / 16)).unwrap(),
            service: ServiceName::new("grafana").unwrap(),
            method: "GET".to_owned(),
            path: format!("/api/dashboards/uid/{i:08}"),
            status: 200,
            bytes_in: 0,
            bytes_out: 18_211,
            duration_ms: 12,
            start: None,
        }
    };
    Event {
        v: EVENT_VERSION,
        time_ms: 1_767_225_600_000 + i,
        proxy: ProxyId::new("proxy-a").unwrap(),
        actor: Some(bglass_core::id::ResponderId::new("alice").unwrap()),
        drill: None,
        event: kind,
    }
    .to_bytes()
    .unwrap()
}

fn open(dir: &std::path::Path, key: &Arc<SigningKey>) -> AuditLog {
    let config = LogConfig {
        dir: dir.to_path_buf(),
        proxy: ProxyId::new("proxy-a").unwrap(),
        key: Arc::clone(key),
        checkpoint_interval: Duration::from_secs(1),
        ..LogConfig::new(
            dir.to_path_buf(),
            ProxyId::new("proxy-a").unwrap(),
            Arc::clone(key),
        )
    };
    AuditLog::open(config, |_, _| Ok(())).unwrap().0
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let entries: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let writers: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let key = Arc::new(SigningKey::from_seed(&[1; 32]).unwrap());
    if let Some(dir) = std::env::var_os("BGLASS_BENCH_VERIFY_DIR") {
        // Verify a log kept by an earlier run (BGLASS_BENCH_KEEP=1) without appending again.
        verify_rate(std::path::Path::new(&dir), &key);
        return;
    }
    let base = std::env::var_os("BGLASS_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let tmp = tempfile::tempdir_in(base).unwrap();
    let dir = tmp.path().join("log");
    let log = Arc::new(open(&dir, &key));
    let sample = event(1, &key).len();
    println!(
        "audit benchmark: {entries} entries of ~{sample} bytes, {writers} concurrent writers, log in {}",
        dir.display()
    );

    // 1. One writer: every append waits for its own fsync.
    log.append(event(0, &key)).unwrap();
    let start = Instant::now();
    let mut n = 1u64;
    while start.elapsed() < Duration::from_secs(2) {
        log.append(event(n, &key)).unwrap();
        n += 1;
    }
    let single = (n - 1) as f64 / start.elapsed().as_secs_f64();
    println!(
        "durable append, 1 writer:          {single:>12.0} events/s ({:.2} ms per fsync'd append)",
        1000.0 / single
    );

    // 2. Many writers: group commit shares each fsync among everyone waiting.
    let next = Arc::new(std::sync::atomic::AtomicU64::new(n));
    let start = Instant::now();
    let before = log.size();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let log = Arc::clone(&log);
            let next = Arc::clone(&next);
            let key = Arc::clone(&key);
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= entries {
                        break;
                    }
                    log.append(event(i, &key)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed();
    let many = (log.size() - before) as f64 / elapsed.as_secs_f64();
    println!(
        "durable append, {writers} writers:        {many:>12.0} events/s ({:.1}x one writer; {} entries in {:.1} s)",
        many / single,
        log.size() - before,
        elapsed.as_secs_f64()
    );
    let log = Arc::try_unwrap(log).unwrap_or_else(|_| panic!("writers still hold the log"));
    log.close();

    verify_rate(&dir, &key);
    if std::env::var_os("BGLASS_BENCH_KEEP").is_some() {
        let kept = tmp.keep();
        println!("kept the log in {}", kept.join("log").display());
    }
}

/// Offline verification of the whole directory, as `bglass audit verify` does it.
fn verify_rate(dir: &std::path::Path, key: &SigningKey) {
    // Best of five runs (the first also warms the page cache, as for an auditor's copy).
    let mut best = Duration::MAX;
    let mut report = None;
    for _ in 0..5 {
        let start = Instant::now();
        report = Some(verify_dir(dir, Some(key.public_key())).unwrap());
        best = best.min(start.elapsed());
    }
    let report = report.unwrap();
    let elapsed = best;
    let rate = report.entries as f64 / elapsed.as_secs_f64();
    println!(
        "verify:                             {rate:>12.0} entries/s ({} entries in {:.2} s; target 2,000,000: {:.2}x)",
        report.entries,
        elapsed.as_secs_f64(),
        rate / 2_000_000.0
    );
}
