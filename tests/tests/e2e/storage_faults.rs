//! Storage faults as an incident brings them: the disk under the proxy's data directory
//! fills while a responder sends requests. Nothing may be served that the log does not hold,
//! refusals must say `audit_failed`, access must resume by itself once space is freed (no
//! restart), the proxy must restart cleanly afterwards and its log must verify; the operator
//! is warned before (free space below the threshold) and told when the log failed and when
//! it recovered.
//!
//! `a_full_disk_*` mounts a 3 MiB tmpfs on the proxy's data directory, so it needs root (CI
//! runs the suite as root); it says so and fails when not root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bglass_tests::attack::{Receiver, events, wait_events};
use bglass_tests::ports::PortHold;
use bglass_tests::raw::Raw;
use bglass_tests::wait::within;
use bglass_tests::world::{TEST_CATALOG, World};
use bglass_tests::{command, run};
use serde_json::Value;

/// The tmpfs's size: small enough to fill in a moment, large enough for a proxy's log.
const TMPFS_SIZE: &str = "3m";
/// The free-space warning threshold of these tests' proxies.
const THRESHOLD: u64 = 1 << 20;

/// A tmpfs mounted on a directory; unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Fails the test at once, saying why, unless it runs as root.
    fn need_root() {
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert!(
            uid.stdout == b"0\n",
            "this test needs root: it mounts a tmpfs on the proxy's data directory (`mount -t tmpfs -o size={TMPFS_SIZE} tmpfs DIR`) to fill the disk for real. CI runs it as root; run it as root, e.g. `sudo -E cargo test -p bglass-tests --test storage_faults`"
        );
    }

    fn mount(dir: &Path, size: &str) -> Self {
        Self::need_root();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -t tmpfs on {}: {} (the test needs root with the right to mount)",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let plain = Command::new("umount").arg(&self.dir).status();
        if !plain.is_ok_and(|s| s.success()) {
            // Still busy (a process that has not exited yet): detach it now, freed when the
            // last file is closed.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The world with the proxy's data directory on a tmpfs: the proxy is killed before the
/// tmpfs is unmounted.
struct Rig {
    world: World,
    tmpfs: Option<Tmpfs>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for i in 0..self.world.proxies.len() {
            self.world.kill(i);
        }
        self.tmpfs.take();
    }
}

/// Bytes available on the file system of `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let s = rustix::fs::statvfs(dir).unwrap();
    s.f_bavail * s.f_frsize
}

/// Appends `chunk`-byte blocks to `file` while `more()` holds; false when the disk is full.
fn grow(file: &mut std::fs::File, chunk: usize, more: impl Fn() -> bool) -> bool {
    let block = vec![0x5a_u8; chunk];
    while more() {
        if file.write_all(&block).and_then(|()| file.flush()).is_err() {
            return false;
        }
    }
    true
}

/// Fills the file system of `file` completely (down to the last page).
fn fill_completely(file: &mut std::fs::File) {
    for chunk in [64 << 10, 4 << 10, 512] {
        grow(file, chunk, || true);
    }
}

/// The proxy's metric `name` (a sample without labels).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `bglass status --json` as `who`: the first proxy's status document.
fn status(w: &World, who: &str) -> Value {
    let out = w.bglass(who, &["status", "--json"]);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|_| panic!("status --json: {}{}", out.stdout, out.stderr));
    v[0]["status"].clone()
}

fn verify(w: &World) -> bglass_tests::Run {
    let home = tempfile::tempdir().unwrap();
    run(command("bglass", home.path())
        .args(["audit", "verify", "--key", &w.proxies[0].key])
        .arg(w.proxies[0].log_dir()))
}

fn kind_count(events: &[Value], kind: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event"]["event"].get(kind).is_some())
        .count()
}

fn index_of(events: &[Value], kind: &str) -> Option<usize> {
    events
        .iter()
        .position(|e| e["event"]["event"].get(kind).is_some())
}

/// One answer the responder got: when, status, refusal code, body.
#[derive(Debug, Clone)]
struct Answer {
    at: Instant,
    status: u16,
    code: String,
    body: String,
}

impl Answer {
    fn served(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A responder sending data-plane requests in a loop until dropped.
struct Responder {
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    fn start(config: PathBuf, url: String, pin: String, token: String) -> Self {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&answers), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            let client = Raw::new(&config, &url, &pin);
            while !s.load(Ordering::Relaxed) {
                let r = client.send(
                    "GET",
                    "/s/grafana/api/health",
                    None,
                    &[("bglass-grant", &token)],
                );
                let answer = Answer {
                    at: Instant::now(),
                    status: r.status,
                    code: r.code,
                    body: r.body,
                };
                let refused = !answer.served();
                a.lock().unwrap().push(answer);
                if refused {
                    // Refusals come at once: pace the requests rather than spin (this waits
                    // for no event).
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Self {
            answers,
            stop,
            handle: Some(handle),
        }
    }

    fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Waits up to `secs` until some answer satisfies `cond`; that answer.
    fn wait(&self, secs: u64, what: &str, cond: impl Fn(&Answer) -> bool) -> Answer {
        within(Duration::from_secs(secs), || {
            self.answers().into_iter().find(|a| cond(a))
        })
        .unwrap_or_else(|| {
            panic!(
                "{what}: not within {secs}s; {} answers, the last: {:?}",
                self.answers().len(),
                self.answers()
                    .iter()
                    .rev()
                    .take(3)
                    .map(|a| (
                        a.status,
                        a.code.clone(),
                        a.body.chars().take(300).collect::<String>()
                    ))
                    .collect::<Vec<_>>()
            )
        })
    }

    fn stop(mut self) -> Vec<Answer> {
        self.halt();
        self.answers()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Keeps the disk full until dropped (as a runaway log keeps filling it): whatever space
/// appears is taken again within 50 ms.
struct HoldFull {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl HoldFull {
    fn start(path: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            while !s.load(Ordering::Relaxed) {
                fill_completely(&mut file);
                // How often space that appears is taken again (the fault's own pace).
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for HoldFull {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A world with one proxy warning below `warning`, notifying a receiver on the returned
/// port (held until the test starts its receiver there).
fn world(warning: &str, reserve: &str) -> (World, PortHold) {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder,approver")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    let hook = PortHold::new();
    bglass_tests::toml::append(
        &w.proxies[0].config,
        &format!(
            "[storage]\nfree_space_warning = \"{warning}\"\nreserve = \"{reserve}\"\n\n[[notify]]\nurl = \"http://127.0.0.1:{}/hook\"\nformat = \"json\"\n",
            hook.port()
        ),
    );
    (w, hook)
}

#[test]
fn a_full_disk_refuses_access_without_serving_unaudited_requests_and_recovers_by_itself() {
    Tmpfs::need_root();
    let (w, hook) = world("1MiB", "256KiB");
    let data = w.proxies[0].dir.join("data");
    let tmpfs = Tmpfs::mount(&data, TMPFS_SIZE);
    let mut rig = Rig {
        world: w,
        tmpfs: Some(tmpfs),
    };
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start_on(hook.port(), Arc::clone(&bodies));
    rig.world.start(0);
    let w = &rig.world;
    let p = &w.proxies[0];
    let token = w.access("alice", "grafana")["grant"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let filler_path = data.join("filler");

    // 1. Healthy: served, and the free space is on the metrics listener and in status.
    let alice = Raw::new(&w.responder("alice").config, &p.url(), &p.pin);
    let first = alice.send(
        "GET",
        "/s/grafana/api/health",
        None,
        &[("bglass-grant", &token)],
    );
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, "nginx says ok\n")
    );
    let m = w.metrics(0);
    assert_eq!(
        metric(&m, "bglass_data_free_threshold_bytes"),
        Some(THRESHOLD as f64),
        "step 1: {m}"
    );
    assert!(
        metric(&m, "bglass_data_free_bytes").is_some_and(|f| f > THRESHOLD as f64),
        "step 1: {m}"
    );
    assert_eq!(metric(&m, "bglass_audit_failed"), Some(0.0), "step 1: {m}");

    // 2. Free space falls below the threshold: warned on stderr, recorded once, notified,
    //    shown in status.
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    grow(&mut filler, 64 << 10, || free_bytes(&data) > 640 << 10);
    assert!(
        free_bytes(&data) < THRESHOLD,
        "step 2: the filler did not fill"
    );
    wait_events(w, 0, 15, "step 2: storage_low", |e| {
        kind_count(e, "storage_low") == 1
    });
    receiver.wait_for("LOW DISK SPACE on proxy-a", 15);
    let s = status(w, "alice");
    assert_eq!(s["storage"]["low"], true, "step 2: {s}");
    assert_eq!(s["storage"]["threshold_bytes"], THRESHOLD, "step 2: {s}");
    let text = w.bglass("alice", &["status"]);
    assert!(
        text.stdout.contains("LOW DISK SPACE"),
        "step 2: {}",
        text.stdout
    );
    assert!(
        std::fs::read_to_string(p.stderr_path())
            .unwrap()
            .contains("LOW DISK SPACE"),
        "step 2: {}",
        w.logs()
    );
    drop(filler);

    // 3. A responder sends requests while the disk fills up and stays full.
    let responder = Responder::start(
        w.responder("alice").config.clone(),
        p.url(),
        p.pin.clone(),
        token.clone(),
    );
    responder.wait(
        10,
        "step 3: a request served before the disk is full",
        |a| a.served(),
    );
    let hold = HoldFull::start(filler_path.clone());
    let refused = responder.wait(
        60,
        "step 3: an audit_failed refusal once the disk is full",
        |a| !a.served(),
    );
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (503, "audit_failed"),
        "step 3: the first refusal: {refused:?}"
    );
    // Keep refusing for a while: every answer while full is served (before the log hit the
    // wall) or refused as audit_failed, and the refusal says the proxy retries by itself.
    let full_since = refused.at;
    responder.wait(30, "step 3: more refusals while full", |a| {
        a.at > full_since + Duration::from_secs(3) && !a.served()
    });
    let s = status(w, "alice");
    assert!(s["audit_failure"].is_string(), "step 3: {s}");
    assert!(s["audit_failed_since_ms"].is_u64(), "step 3: {s}");
    let text = w.bglass("alice", &["status"]);
    assert!(
        text.stdout.contains("AUDIT LOG FAILED since"),
        "step 3: {}",
        text.stdout
    );
    let m = w.metrics(0);
    assert_eq!(metric(&m, "bglass_audit_failed"), Some(1.0), "step 3: {m}");
    assert!(
        metric(&m, "bglass_audit_failed_since_seconds").is_some_and(|s| s > 0.0),
        "step 3: {m}"
    );
    assert!(
        metric(&m, "bglass_audit_failures_total").is_some_and(|n| n >= 1.0),
        "step 3: {m}"
    );
    let stderr = std::fs::read_to_string(p.stderr_path()).unwrap();
    assert!(
        stderr.contains("AUDIT LOG FAILED at") && stderr.contains("free space under"),
        "step 3: {stderr}"
    );
    // Nothing served that the log does not hold: answers are counted before the log is read.
    let served = responder.answers().iter().filter(|a| a.served()).count() + 1;
    let logged = kind_count(&events(w, 0), "use_start");
    assert!(
        served <= logged,
        "step 3: {served} requests served but only {logged} use_start events in the log"
    );
    for a in responder.answers() {
        assert!(
            (a.served() && a.body == "nginx says ok\n")
                || (a.status == 503 && a.code == "audit_failed"),
            "step 3: an answer that is neither served nor audit_failed: {a:?}"
        );
        if !a.served() {
            assert!(
                a.body.contains("retries by itself") && !a.body.contains("repaired"),
                "step 3: {a:?}"
            );
        }
    }

    // 4. Space is freed: access resumes by itself within 10 s, without a restart.
    drop(hold);
    std::fs::remove_file(&filler_path).unwrap();
    let freed = Instant::now();
    let resumed = responder.wait(
        10,
        "step 4: access resumed within 10 s of freeing space, without a restart",
        |a| a.at > freed && a.served(),
    );
    eprintln!(
        "access resumed {:?} after the space was freed",
        resumed.at - freed
    );
    // Both ends of the failure are in the log (written by the log itself) and notified.
    wait_events(w, 0, 15, "step 4: log_failed then log_recovered", |e| {
        matches!(
            (index_of(e, "log_failed"), index_of(e, "log_recovered")),
            (Some(f), Some(r)) if f < r
        )
    });
    receiver.wait_for("AUDIT LOG FAILED on proxy-a", 30);
    receiver.wait_for("audit log of proxy-a recovered after", 30);
    // The disk warning ends too, once.
    wait_events(w, 0, 15, "step 4: storage_ok", |e| {
        kind_count(e, "storage_ok") == 1
    });
    receiver.wait_for(
        "disk space on proxy-a is back above the warning threshold",
        15,
    );
    let s = status(w, "alice");
    assert!(s["audit_failure"].is_null(), "step 4: {s}");
    assert!(
        s["audit_last_recovery"]["recovered_ms"].is_u64(),
        "step 4: {s}"
    );
    assert!(s["audit_failures"].as_u64() >= Some(1), "step 4: {s}");
    assert_eq!(s["storage"]["low"], false, "step 4: {s}");
    let m = w.metrics(0);
    assert_eq!(metric(&m, "bglass_audit_failed"), Some(0.0), "step 4: {m}");
    assert_eq!(
        metric(&m, "bglass_audit_failed_since_seconds"),
        Some(0.0),
        "step 4: {m}"
    );
    assert!(
        metric(&m, "bglass_audit_last_recovery_timestamp_seconds").is_some_and(|t| t > 0.0),
        "step 4: {m}"
    );

    // 5. Everything served is in the log, and every answer was served or audit_failed.
    let answers = responder.stop();
    let served = answers.iter().filter(|a| a.served()).count() + 1;
    let logged = kind_count(&events(w, 0), "use_start");
    assert!(
        served <= logged,
        "step 5: {served} requests served but only {logged} use_start events in the log"
    );
    for a in &answers {
        assert!(
            (a.served() && a.body == "nginx says ok\n")
                || (a.status == 503 && a.code == "audit_failed"),
            "step 5: {a:?}"
        );
    }

    // 6. The proxy restarts cleanly and serves; the log verifies.
    rig.world.stop(0);
    rig.world.start(0);
    let w = &rig.world;
    let again = alice.send(
        "GET",
        "/s/grafana/api/health",
        None,
        &[("bglass-grant", &token)],
    );
    assert_eq!(again.status, 200, "step 6: {again:?}\n{}", w.logs());
    let v = verify(w);
    assert_eq!(
        v.code,
        Some(0),
        "step 6: audit verify: {}{}",
        v.stdout,
        v.stderr
    );
    receiver.stop();
}

#[test]
fn free_space_below_the_threshold_is_warned_once_in_stderr_log_status_metrics_and_a_notification() {
    // A threshold above any disk: the warning is on from the first measurement.
    let (mut w, hook) = world("16777215TiB", "64KiB");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start_on(hook.port(), Arc::clone(&bodies));
    w.start(0);
    wait_events(&w, 0, 15, "storage_low", |e| {
        kind_count(e, "storage_low") == 1
    });
    receiver.wait_for("LOW DISK SPACE on proxy-a", 15);
    let low = events(&w, 0)
        .into_iter()
        .find(|e| e["event"]["event"].get("storage_low").is_some())
        .unwrap();
    let recorded = &low["event"]["event"]["storage_low"];
    assert_eq!(recorded["threshold_bytes"], 16_777_215_u64 << 40, "{low}");
    assert!(
        recorded["free_bytes"].as_u64().is_some_and(|f| f > 0),
        "{low}"
    );

    let text = w.bglass("alice", &["status"]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(
        text.stdout.contains("LOW DISK SPACE:") && text.stdout.contains("16777215 TiB"),
        "{}",
        text.stdout
    );
    let s = status(&w, "alice");
    assert_eq!(s["storage"]["low"], true, "{s}");
    assert_eq!(s["audit_failures"], 0, "{s}");
    assert!(s.get("audit_last_recovery").is_none(), "{s}");
    let m = w.metrics(0);
    assert!(
        metric(&m, "bglass_data_free_bytes").is_some_and(|f| f > 0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "bglass_data_free_threshold_bytes"),
        Some((16_777_215_u64 << 40) as f64),
        "{m}"
    );
    for (name, want) in [
        ("bglass_audit_failed", 0.0),
        ("bglass_audit_failures_total", 0.0),
        ("bglass_audit_failed_since_seconds", 0.0),
        ("bglass_audit_last_recovery_timestamp_seconds", 0.0),
    ] {
        assert_eq!(metric(&m, name), Some(want), "{name}: {m}");
    }
    let stderr = std::fs::read_to_string(w.proxies[0].stderr_path()).unwrap();
    assert_eq!(
        stderr.matches("LOW DISK SPACE").count(),
        1,
        "warned once: {stderr}"
    );

    // Once per crossing: later measurements (every 2 s) do not record it again. (A wait for
    // something not to happen: two more measurement periods, watched.)
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(5) {
        assert_eq!(kind_count(&events(&w, 0), "storage_low"), 1);
        std::thread::sleep(Duration::from_millis(500));
    }
    let stderr = std::fs::read_to_string(w.proxies[0].stderr_path()).unwrap();
    assert_eq!(stderr.matches("LOW DISK SPACE").count(), 1, "{stderr}");
    receiver.stop();
}
