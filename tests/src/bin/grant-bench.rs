//! Benchmark: grant issuance. 64 responders (keys made in memory, in the proxy's roster)
//! each hold a mutual-TLS connection to a real `bglass-proxy` and ask for grants on a
//! service that needs no approval, one signed request after another, for a fixed time.
//! Prints grants per second, latency, the proxy's CPU per grant, its log entries per grant,
//! and — when `perf` is installed — where the proxy's CPU went per grant: verifying the
//! requests' signatures, signing grants and checkpoints, hashing (log entries, tree), and
//! the log's syncs to disk.
//!
//! cargo build --release -p bglass-proxy -p bglass-cli -p bglass-tests
//! target/x86_64-unknown-linux-gnu/release/grant-bench [--seconds 10] [--responders 64]
//!     [--rounds 3] [--grants N (smoke: N in all per round)]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bglass_core::envelope::{AccessRequest, Action, ENVELOPE_VERSION, Nonce, RequestPayload, seal};
use bglass_core::id::{ProxyId, ResponderId, ServiceName};
use bglass_core::keys::SigningKey;
use bglass_core::roster::{Responder, Role};
use bglass_tests::loadgen::{self, Target, cpu_of};
use bglass_tests::world::{TEST_CATALOG, World};
use rustls_pki_types::ServerName;

struct Args {
    seconds: u64,
    responders: usize,
    rounds: usize,
    grants: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 10,
        responders: 64,
        rounds: 3,
        grants: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value: u64 = pair
            .get(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{} needs a number", pair[0]));
        match pair[0].as_str() {
            "--seconds" => a.seconds = value,
            "--responders" => a.responders = usize::try_from(value).unwrap(),
            "--rounds" => a.rounds = usize::try_from(value).unwrap(),
            "--grants" => a.grants = Some(value),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// One responder: its id and key.
struct Who {
    id: ResponderId,
    key: SigningKey,
}

/// A signed request for a grant on `grafana`, as `bglass access` sends it.
fn request(who: &Who, audience: &ProxyId, addr: SocketAddr) -> Vec<u8> {
    let payload = RequestPayload {
        v: ENVELOPE_VERSION,
        responder: who.id.clone(),
        key: who.key.public_key(),
        aud: audience.clone(),
        iat: bglass_core::timestamp::now_ms() / 1000,
        nonce: Nonce::random().unwrap(),
        action: Action::Access(AccessRequest {
            service: ServiceName::new("grafana").unwrap(),
            ttl: None,
            reason: "grant benchmark".to_owned(),
            incident: "INC-BENCH".to_owned(),
            emergency: false,
            drill: None,
            canary: false,
        }),
    };
    let body = seal(&payload, &who.key).unwrap();
    let mut out = format!(
        "POST /v1/access HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// What one round measured.
/// What one round measured, per grant where it says so.
struct Round {
    rate: f64,
    /// The proxy's CPU, and its audit threads' part of it, in µs per grant.
    cpu_us: f64,
    audit_us: f64,
    entries_per_grant: f64,
}

#[allow(clippy::too_many_arguments)]
async fn responder(
    who: Arc<Who>,
    target: Target,
    audience: ProxyId,
    addr: SocketAddr,
    deadline: Option<Instant>,
    budget: u64,
    issued: Arc<AtomicU64>,
) -> Vec<u32> {
    let mut stream = loadgen::connect(&target).await.unwrap();
    let mut reader = loadgen::Reader::default();
    let mut latencies = Vec::new();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d)
            || issued.fetch_add(1, Ordering::Relaxed) >= budget
        {
            return latencies;
        }
        let req = request(&who, &audience, addr);
        let sent = Instant::now();
        tokio::io::AsyncWriteExt::write_all(&mut stream, &req)
            .await
            .unwrap();
        let mut body = Vec::new();
        let answer = reader
            .response(&mut stream, |b| body.extend_from_slice(b))
            .await
            .unwrap();
        latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        assert_eq!(
            answer.status,
            200,
            "{}{}",
            answer.head,
            String::from_utf8_lossy(&body)
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            json["grant"]["token"].is_string(),
            "no grant in {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// CPU seconds used by the threads of `pid` whose name starts with `name`.
fn thread_cpu(pid: u32, name: &str) -> f64 {
    let mut total = 0.0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim_end().starts_with(name) {
                let tid: u32 = t.file_name().to_string_lossy().parse().unwrap_or(0);
                total += loadgen::task_cpu_seconds(pid, tid).unwrap_or(0.0);
            }
        }
    }
    total
}

/// Microseconds per call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// The cost of each cryptographic step of a grant, measured here with the same code the
/// proxy runs: the request's check (decode, Ed25519 verify, claims), the grant's Ed25519
/// signature, and the log's hashing of real entries from the proxy's first bundle (a leaf
/// hash per entry and, amortised, one tree node per entry).
fn steps(who: &Who, audience: &ProxyId, log_dir: &std::path::Path) -> (f64, f64, f64) {
    let addr = SocketAddr::from(([127, 0, 0, 1], 1));
    let raw = request(who, audience, addr);
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = raw[body_at..].to_vec();
    let key = who.key.public_key();
    let now = bglass_core::timestamp::now_ms() / 1000;
    let verify = per_call(2000, || {
        let decoded = bglass_core::envelope::DecodedEnvelope::decode(&body).unwrap();
        decoded
            .verify(Some(&key), Some(&key), audience, now)
            .unwrap();
    });
    let claims = vec![b'x'; 420];
    let sign = per_call(2000, || {
        std::hint::black_box(who.key.sign(bglass_core::grant::GRANT_DOMAIN, &claims));
    });
    let bundle = bglass_core::audit::storage::read_bundle(log_dir, 0).unwrap();
    let entries = bglass_core::audit::storage::parse_bundle(&bundle).unwrap();
    let mut i = 0;
    let hash = per_call(20_000, || {
        let leaf = bglass_core::audit::tree::leaf_hash(entries[i % entries.len()]);
        std::hint::black_box(bglass_core::audit::tree::node_hash(&leaf, &leaf));
        i += 1;
    });
    (verify, sign, hash)
}

fn main() {
    let a = args();
    let mut w = World::new(&["proxy-a"], &[]);
    let people: Vec<Arc<Who>> = (0..a.responders)
        .map(|i| {
            Arc::new(Who {
                id: ResponderId::new(&format!("r{i:03}")).unwrap(),
                key: SigningKey::generate().unwrap(),
            })
        })
        .collect();
    let roster: String = people
        .iter()
        .map(|p| {
            Responder {
                id: p.id.clone(),
                name: p.id.to_string(),
                key: p.key.public_key(),
                roles: vec![Role::Responder],
            }
            .to_toml()
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(w.proxies[0].dir.join("responders.toml"), roster).unwrap();
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let url = w.proxies[0].url();
    let addr: SocketAddr = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let pin: bglass_core::catalog::CertPin = w.proxies[0].pin.parse().unwrap();
    let audience = ProxyId::new(&w.proxies[0].id).unwrap();
    let pid = w.pid(0).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    println!(
        "grant issuance: {} responders, {} per round, {} rounds, service grafana (no approval)",
        a.responders,
        a.grants
            .map_or(format!("{} s", a.seconds), |n| format!("{n} grants")),
        a.rounds
    );
    println!(
        "{:<6} {:>8} {:>10} {:>9} {:>9} {:>14} {:>16}",
        "round", "grants", "grants/s", "p50 ms", "p99 ms", "proxy CPU µs", "entries/grant"
    );
    let mut rounds: Vec<Round> = Vec::new();
    for round in 1..=a.rounds {
        let issued = Arc::new(AtomicU64::new(0));
        let deadline = a
            .grants
            .is_none()
            .then(|| Instant::now() + Duration::from_secs(a.seconds));
        let budget = a.grants.unwrap_or(u64::MAX);
        let entries_before = w.log_entries(0);
        let cpu_before = cpu_of(&[pid]);
        let audit_before = thread_cpu(pid, "bglass-audit");
        let start = Instant::now();
        let mut latencies: Vec<u32> = rt.block_on(async {
            let mut tasks = Vec::new();
            for who in &people {
                let tls =
                    Arc::new(bglass_tls::client_config(pin, &who.key, who.id.as_str()).unwrap());
                tasks.push(tokio::spawn(responder(
                    Arc::clone(who),
                    Target::Tls(addr, tls, ServerName::IpAddress(addr.ip().into())),
                    audience.clone(),
                    addr,
                    deadline,
                    budget,
                    Arc::clone(&issued),
                )));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        });
        let elapsed = start.elapsed();
        let per_grant = |seconds: f64| seconds * 1e6 / latencies.len() as f64;
        let r = Round {
            rate: latencies.len() as f64 / elapsed.as_secs_f64(),
            cpu_us: per_grant(cpu_of(&[pid]) - cpu_before),
            audit_us: per_grant(thread_cpu(pid, "bglass-audit") - audit_before),
            // The last grants' entries are durable before their answers: the log holds them.
            entries_per_grant: (w.log_entries(0) - entries_before) as f64 / latencies.len() as f64,
        };
        latencies.sort_unstable();
        let q = |q: f64| {
            let i = ((latencies.len() - 1) as f64 * q).round() as usize;
            f64::from(latencies[i]) / 1000.0
        };
        println!(
            "{round:<6} {:>8} {:>10.0} {:>9.1} {:>9.1} {:>14.1} {:>16.2}",
            latencies.len(),
            r.rate,
            q(0.5),
            q(0.99),
            r.cpu_us,
            r.entries_per_grant
        );
        rounds.push(r);
    }
    let median = |f: fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rate = median(|r| r.rate);
    println!(
        "median: {rate:.0} grants/s ({:.2}x the 10,000 grants/s target) [{}], proxy CPU {:.1} µs per grant",
        rate / 10_000.0,
        if rate >= 10_000.0 { "met" } else { "NOT met" },
        median(|r| r.cpu_us)
    );

    // Where a grant's CPU goes (the last round).
    let Some(Round {
        cpu_us: cpu,
        audit_us: writer,
        entries_per_grant,
        ..
    }) = rounds.last()
    else {
        return;
    };
    let (cpu, writer, entries_per_grant) = (*cpu, *writer, *entries_per_grant);
    let (verify, sign, hash) = steps(&people[0], &audience, &w.proxies[0].log_dir());
    let hashing = hash * entries_per_grant;
    println!("\nproxy CPU per grant, last round: {cpu:.1} µs");
    println!(
        "  verify   the signed request (decode, Ed25519 verify, claims) {verify:6.1} µs  (measured here, once per grant)"
    );
    println!(
        "  sign     the grant token (Ed25519)                           {sign:6.1} µs  (measured here, once per grant)"
    );
    println!(
        "  hash     {entries_per_grant:.2} log entries (leaf + tree node SHA-256)          {hashing:6.1} µs  (measured here on the log's entries)"
    );
    println!(
        "  fsync    the audit writer thread: write, fdatasync, bundles  {:6.1} µs  (its thread's CPU, less the hashing)",
        (writer - hashing).max(0.0)
    );
    println!(
        "  other    TLS, HTTP, JSON, policy and state                   {:6.1} µs  (the rest)",
        (cpu - verify - sign - writer).max(0.0)
    );
}
