//! Benchmark: a proxy restarting on a long audit log. Builds a log of N entries (realistic
//! `use` events, written straight through the core's storage functions and signed with the
//! proxy's own key), checks that it verifies, then starts the real `bglass-proxy run` on it
//! several times and prints the time until `/healthz` answers and the proxy's memory
//! (VmHWM, VmRSS from /proc) once it serves.
//!
//! cargo run --release -p bglass-tests --bin restart-bench -- [ENTRIES] [RUNS]
//! (scripts/bench-restart builds and runs it; BGLASS_BENCH_PROXY=PATH runs another build of
//! the proxy on the same log, for comparisons.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind};
use bglass_core::audit::tree::{FullTile, TILE_WIDTH, TreeEdge, leaf_hash, subtree_root};
use bglass_core::audit::verify::verify_dir;
use bglass_core::audit::{checkpoint, storage};
use bglass_core::id::{GrantId, ProxyId, ResponderId, SecretName, ServiceName};
use bglass_core::keys::SigningKey;
use bglass_core::vault::{Vault, VaultIdentity};
use bglass_core::{ExposeSecret, timestamp};
use bglass_proxy::config::ProxyConfig;
use bglass_tests::bin;
use bglass_tests::ports::PortHold;

/// A checkpoint is signed every this many entries (the proxy signs one a second while
/// events arrive), so the history is long too.
const CHECKPOINT_EVERY: u64 = 1000;

fn event(i: u64, key: &SigningKey, t0: u64) -> Vec<u8> {
    let kind = if i == 0 {
        EventKind::ProxyStart {
            key: key.public_key(),
            version: "bench".to_owned(),
            catalog: "c".to_owned(),
            roster: "r".to_owned(),
            recovered: None,
        }
    } else if i % 2 == 1 {
        // A data-plane request through a grant, recorded before it is forwarded: with its
        // outcome below, the most frequent entries of a real log.
        EventKind::UseStart {
            grant: GrantId::new(&format!("g-{:016x}", i / 4096)).unwrap(),
            service: ServiceName::new("grafana").unwrap(),
            method: if i.is_multiple_of(7) { "POST" } else { "GET" }.to_owned(),
            path: format!(
                "/api/dashboards/uid/{:08x}/panels/{}",
                i * 2_654_435_761 % (1 << 32),
                i % 17
            ),
        }
    } else {
        EventKind::Use {
            grant: GrantId::new(&format!("g-{:016x}", i / 4096)).unwrap(),
            service: ServiceName::new("grafana").unwrap(),
            method: if (i - 1).is_multiple_of(7) {
                "POST"
            } else {
                "GET"
            }
            .to_owned(),
            path: format!(
                "/api/dashboards/uid/{:08x}/panels/{}",
                (i - 1) * 2_654_435_761 % (1 << 32),
                (i - 1) % 17
            ),
            status: if i.is_multiple_of(23) { 404 } else { 200 },
            bytes_in: if (i - 1).is_multiple_of(7) { 812 } else { 0 },
            bytes_out: 18_211 + i % 977,
            duration_ms: 3 + i % 41,
            start: Some(i - 1),
        }
    };
    Event {
        v: EVENT_VERSION,
        time_ms: t0 + i * 5,
        proxy: ProxyId::new("proxy-a").unwrap(),
        actor: (i > 0)
            .then(|| ResponderId::new(["alice", "bob", "carol"][(i % 3) as usize]).unwrap()),
        drill: None,
        event: kind,
    }
    .to_bytes()
    .unwrap()
}

/// The proxy's signing key, from its vault.
fn signing_key(config: &ProxyConfig) -> Arc<SigningKey> {
    let identity = VaultIdentity::open_file(&config.vault_identity).unwrap();
    let vault = Vault::open(&config.vault, &identity).unwrap();
    let secret = vault
        .proxy_key(&SecretName::new(bglass_proxy::init::SIGNING_KEY_SECRET).unwrap())
        .unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(secret.expose_secret())
        .unwrap();
    Arc::new(SigningKey::from_pkcs8(&der).unwrap())
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Writes a log of `n` entries into `dir` as the log writer lays it out: full bundles and
/// tiles, the rest in the write-ahead file, a checkpoint every [`CHECKPOINT_EVERY`] entries
/// in the history and the latest in `checkpoint` (and in `published`).
fn build_log(dir: &Path, published: &Path, n: u64, key: &SigningKey) {
    let origin = checkpoint::origin(&ProxyId::new("proxy-a").unwrap());
    let t0 = timestamp::now_ms() - n * 5;
    let mut edge = TreeEdge::new();
    let mut completed: Vec<FullTile> = Vec::new();
    let mut history = Vec::new();
    let mut latest = Vec::new();
    let signed = std::cell::Cell::new(0u64);
    let sign = |edge: &TreeEdge, history: &mut Vec<u8>| {
        signed.set(signed.get() + 1);
        let note = checkpoint::sign(&origin, edge.size(), edge.root(), key).unwrap();
        history.extend_from_slice(&storage::encode_history(&note).unwrap());
        note
    };
    let bundles = n / TILE_WIDTH as u64;
    let started = Instant::now();
    for b in 0..bundles {
        let base = b * TILE_WIDTH as u64;
        let entries: Vec<storage::Entry> = (base..base + TILE_WIDTH as u64)
            .map(|i| storage::Entry::new(event(i, key, t0)).unwrap())
            .collect();
        write_file(
            dir,
            &storage::bundle_rel(b),
            &storage::encode_bundle(&entries),
        );
        let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e.as_bytes())).collect();
        let next_checkpoint = (base / CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY;
        if next_checkpoint < base + TILE_WIDTH as u64 {
            for leaf in leaves {
                edge.push(leaf, &mut completed);
                if edge.size().is_multiple_of(CHECKPOINT_EVERY) {
                    latest = sign(&edge, &mut history);
                }
            }
        } else {
            let root = subtree_root(&leaves);
            assert!(edge.push_bundle(&leaves, root, &mut completed));
        }
        for tile in completed.drain(..) {
            write_file(dir, &storage::tile_rel(tile.level, tile.index), &tile.data);
        }
        if b % 4096 == 0 {
            eprint!(
                "\r  {:>10} entries written ({:.0} s)",
                edge.size(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut wal = storage::wal_header();
    for i in edge.size()..n {
        let entry = storage::Entry::new(event(i, key, t0)).unwrap();
        storage::encode_record(&mut wal, i, &entry);
        edge.push(leaf_hash(entry.as_bytes()), &mut completed);
    }
    assert!(completed.is_empty());
    write_file(dir, storage::WAL_FILE, &wal);
    if latest.is_empty() || !edge.size().is_multiple_of(CHECKPOINT_EVERY) {
        latest = sign(&edge, &mut history);
    }
    write_file(dir, storage::HISTORY_FILE, &history);
    write_file(dir, storage::CHECKPOINT_FILE, &latest);
    std::fs::write(published, &latest).unwrap();
    eprintln!(
        "\r  {n} entries written in {:.1} s ({} checkpoints in the history)",
        started.elapsed().as_secs_f64(),
        signed.get()
    );
}

/// VmHWM and VmRSS of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn healthz(client: &reqwest::Client, runtime: &tokio::runtime::Runtime, url: &str) -> bool {
    runtime.block_on(async { matches!(client.get(url).send().await, Ok(r) if r.status() == 200) })
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    // A proxy made by the real `bglass-proxy init`, with the shipped catalog (its tools
    // are not running: health probes fail, nothing else) and an empty roster.
    // BGLASS_BENCH_DIR=DIR keeps the proxy (and its log) in DIR, and a later run with the
    // same DIR starts on that log again instead of writing a new one.
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("BGLASS_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = kept
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf())
        .join("proxy-a");
    let reuse = kept.is_some() && dir.join("data/published-checkpoint").exists();
    if kept.is_some() && !reuse {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // The proxy's port, held for the benchmark's life: the proxy takes it over at each
    // start (SO_REUSEADDR), and no other process is handed it between runs.
    let hold = if reuse {
        let text = std::fs::read_to_string(dir.join("proxy.toml")).unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let listen: std::net::SocketAddr = doc["listen"].as_str().unwrap().parse().unwrap();
        PortHold::again(listen.port())
    } else {
        PortHold::new()
    };
    let port = hold.port();
    let out = if reuse {
        std::fs::read_to_string(dir.join("init.out")).unwrap()
    } else {
        let out = bglass_tests::run(
            Command::new(bin("bglass-proxy"))
                .args(["init", "--dir"])
                .arg(&dir)
                .args(["--id", "proxy-a", "--listen", &format!("127.0.0.1:{port}")]),
        );
        assert_eq!(out.code, Some(0), "init: {}", out.stderr);
        std::fs::write(dir.join("init.out"), &out.stdout).unwrap();
        out.stdout
    };
    let pin = out
        .lines()
        .find_map(|l| l.strip_prefix("pin:"))
        .map(|p| p.trim().to_owned())
        .unwrap();
    if !reuse {
        std::fs::copy(
            bglass_tests::root().join("services.toml"),
            dir.join("services.toml"),
        )
        .unwrap();
        std::fs::write(dir.join("responders.toml"), "").unwrap();
    }
    let config_path = dir.join("proxy.toml");
    let config = ProxyConfig::load(&config_path).unwrap();
    let key = signing_key(&config);
    let log = config.data_dir.join("log");
    println!("restart benchmark: {n} entries, log in {}", log.display());
    if reuse {
        println!("log kept from an earlier run (BGLASS_BENCH_DIR)");
    } else {
        build_log(&log, &config.data_dir.join("published-checkpoint"), n, &key);
        let out = Command::new("du").args(["-sb"]).arg(&log).output().unwrap();
        let size: u64 = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let _ = Command::new("sync").status();
        let started = Instant::now();
        let report = verify_dir(&log, Some(key.public_key())).unwrap();
        println!(
            "log: {} entries, {:.2} GB on disk, {} checkpoints; verifies in {:.1} s",
            report.entries,
            size as f64 / 1e9,
            report.checkpoints,
            started.elapsed().as_secs_f64()
        );
    }
    let tls = {
        let pin: bglass_core::catalog::CertPin = pin.parse().unwrap();
        let mut tls = rustls::ClientConfig::builder_with_provider(bglass_tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(bglass_tls::PinnedCaVerifier::new(pin)))
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        tls
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/healthz");
    println!(
        "{:>4} {:>14} {:>11} {:>11} {:>14} {:>14}",
        "run", "to serving s", "VmHWM MiB", "VmRSS MiB", "VmHWM +5s MiB", "VmRSS +5s MiB"
    );
    let mut worst = (0f64, 0u64);
    for run in 1..=runs {
        let stderr = std::fs::File::create(dir.join(format!("run{run}.stderr"))).unwrap();
        let start = Instant::now();
        // BGLASS_BENCH_PROXY: another build of the proxy to compare with (e.g. an older one).
        let proxy_bin = std::env::var_os("BGLASS_BENCH_PROXY")
            .map_or_else(|| bin("bglass-proxy"), std::path::PathBuf::from);
        let mut child = Command::new(proxy_bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let pid = child.id();
        while !healthz(&client, &runtime, &url) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the proxy exited ({status}): {}",
                    std::fs::read_to_string(dir.join(format!("run{run}.stderr")))
                        .unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "not serving after 10 min"
            );
            // Polled every 10 ms: the resolution of the time to serving measured.
            std::thread::sleep(Duration::from_millis(10));
        }
        let serving = start.elapsed().as_secs_f64();
        let (hwm, rss) = memory(pid);
        // Memory is reported again 5 s after serving began: a measurement interval, not a
        // wait for an event.
        std::thread::sleep(Duration::from_secs(5));
        let (hwm5, rss5) = memory(pid);
        println!(
            "{run:>4} {serving:>14.2} {:>11.1} {:>11.1} {:>14.1} {:>14.1}",
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0,
            hwm5 as f64 / 1024.0,
            rss5 as f64 / 1024.0
        );
        worst = (worst.0.max(serving), worst.1.max(hwm5));
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = child.wait();
    }
    println!(
        "worst: serving in {:.2} s (target 5 s: {:.2}x), VmHWM {:.1} MiB (target 64 MiB: {:.2}x)",
        worst.0,
        worst.0 / 5.0,
        worst.1 as f64 / 1024.0,
        worst.1 as f64 / 1024.0 / 64.0
    );
}
