//! Benchmark: the HTTP data plane against nginx doing the same job, on loopback, in one run
//! with interleaved rounds. Paths (all ending at the same upstream nginx, which answers "ok"
//! only with the injected credential):
//!
//! - `upstream`: straight to the upstream (the ceiling);
//! - `nginx`: an nginx TLS reverse proxy requiring a client certificate (TLS 1.3, Ed25519),
//!   injecting the credential, keep-alive to the upstream;
//! - `proxy`: `bglass-proxy`, hit by a mutual-TLS client holding a grant (a responder's key);
//! - `nginx-chain`: a plain nginx listener → mutual TLS → the nginx reverse proxy above;
//! - `open`: the `bglass open` forwarder → mutual TLS → `bglass-proxy`;
//! - `floor`: `floor-proxy`, the proxy's stack (tokio, rustls, hyper, mimalloc) doing just
//!   nginx's job, with nginx's certificates: the floor of that stack, beside nginx;
//! - `floor-audit`: the same plus the proxy's audit work per request (a `use_start` appended
//!   and awaited until durable before forwarding, a `use` queued after), in its own log;
//! - `floor-nowait`: the same without awaiting the `use_start` (a diagnostic only: what the
//!   wait for durability costs; the proxy never forwards before it).
//!
//! Each prints requests/s, p50/p99 latency and the CPU per request of every process on the
//! path, then the ratios against the targets; a 1 GiB body is then streamed through nginx
//! and through the proxy. Every request through the proxy must be in its audit log (a
//! `use_start` before the upstream sees it, a `use` with its outcome): the run checks the
//! log's size at the end and fails if any is missing.
//!
//! cargo build --release -p bglass-cli -p bglass-proxy -p bglass-tests
//! target/x86_64-unknown-linux-gnu/release/dataplane-bench [--seconds 5] [--rounds 3]
//!     [--connections 32] [--stream-mib 1024] [--requests N (smoke: N per path per round)]
//!     [--only PATH (repeatable: only those paths, no ratios; e.g. to profile the proxy)]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bglass_core::api::GRANT_HEADER;
use bglass_tests::loadgen::{self, Target, Until, cpu_of, with_children};
use bglass_tests::ports::PortHold;
use bglass_tests::raw::Raw;
use bglass_tests::upstreams::{nginx_user_line, spawn_nginx, terminate};
use bglass_tests::world::{World, upstream_credential, wait_port};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

const CATALOG: &str = r#"version = 1

[[service]]
name = "bench"
kind = "http"
description = "The benchmark's upstream"
upstream = "127.0.0.1:{nginx}"
max_ttl = "4h"
default_ttl = "4h"
approvals = 0
health = { path = "/", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }
"#;

/// The name in the nginx proxy's certificate.
const NGINX_NAME: &str = "bench.local";

struct Args {
    seconds: u64,
    rounds: usize,
    connections: usize,
    stream_mib: u64,
    requests: Option<u64>,
    /// Only these paths (e.g. to profile one): `--only proxy`.
    only: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 5,
        rounds: 3,
        connections: 32,
        stream_mib: 1024,
        requests: None,
        only: Vec::new(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || {
            argv.get(i + 1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{} needs a number", argv[i]))
        };
        match argv[i].as_str() {
            "--seconds" => a.seconds = value(),
            "--rounds" => a.rounds = usize::try_from(value()).unwrap(),
            "--connections" => a.connections = usize::try_from(value()).unwrap(),
            "--stream-mib" => a.stream_mib = value(),
            "--requests" => a.requests = Some(value()),
            "--only" => a.only.push(argv.get(i + 1).cloned().unwrap_or_default()),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// A `floor-proxy` (next to this binary), serving until dropped.
struct FloorProxy {
    child: Child,
    port: u16,
}

impl FloorProxy {
    fn start(certs: &Path, upstream: u16, auth: &str, audit: Option<(&str, &Path)>) -> Self {
        let exe = std::env::current_exe()
            .unwrap()
            .with_file_name("floor-proxy");
        let mut cmd = std::process::Command::new(exe);
        cmd.arg(certs)
            .arg(upstream.to_string())
            .arg(format!("Basic {auth}"))
            .stdout(std::process::Stdio::piped());
        if let Some((flag, dir)) = audit {
            cmd.arg(flag).arg(dir);
        }
        let mut child = cmd.spawn().unwrap();
        let line = bglass_tests::first_line(&mut child);
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("floor-proxy printed {line:?}"));
        Self { child, port }
    }
}

impl Drop for FloorProxy {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// An nginx run in its own prefix directory.
struct Nginx {
    child: Child,
}

impl Nginx {
    fn start(prefix: &Path, conf: &str, port: u16) -> Self {
        std::fs::create_dir_all(prefix.join("tmp")).unwrap();
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let check = std::process::Command::new("nginx")
            .arg("-t")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = spawn_nginx(prefix);
        wait_port(port);
        Self { child }
    }

    fn pids(&self) -> Vec<u32> {
        with_children(self.child.id())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

fn common(p: &str) -> String {
    format!(
        "{user}pid {p}/nginx.pid;\nerror_log {p}/error.log;\n",
        user = nginx_user_line()
    )
}

fn temp_paths(p: &str) -> String {
    format!(
        "  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n"
    )
}

/// The upstream: "ok" for the injected credential, 401 otherwise; `/big` streams a file.
fn upstream_conf(p: &str, port: u16) -> String {
    let auth = upstream_credential();
    format!(
        "{common}worker_processes 1;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n{temp}  keepalive_requests 100000000;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      if ($http_authorization != \"Basic {auth}\") {{ return 401; }}\n      default_type text/plain;\n      return 200 \"ok\\n\";\n    }}\n    location = /big {{\n      if ($http_authorization != \"Basic {auth}\") {{ return 401; }}\n      default_type application/octet-stream;\n      alias {p}/big;\n    }}\n  }}\n}}\n",
        common = common(p),
        temp = temp_paths(p),
    )
}

/// The nginx doing the proxy's job: mutual TLS, the credential injected, keep-alive to the
/// upstream, an access log line per request (nginx's default); plus the chain's plain front.
fn nginx_conf(p: &str, up: u16, mtls: u16, front: u16) -> String {
    let auth = upstream_credential();
    format!(
        "{common}worker_processes auto;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log {p}/access.log;\n{temp}  keepalive_requests 100000000;\n  proxy_http_version 1.1;\n  proxy_max_temp_file_size 0;\n  upstream tool {{ server 127.0.0.1:{up}; keepalive 128; keepalive_requests 100000000; }}\n  upstream mtls {{ server 127.0.0.1:{mtls}; keepalive 128; keepalive_requests 100000000; }}\n  server {{\n    listen 127.0.0.1:{mtls} ssl;\n    ssl_protocols TLSv1.3;\n    ssl_certificate {p}/server.pem;\n    ssl_certificate_key {p}/server.key;\n    ssl_client_certificate {p}/ca.pem;\n    ssl_verify_client on;\n    location / {{\n      proxy_pass http://tool;\n      proxy_set_header Connection \"\";\n      proxy_set_header Authorization \"Basic {auth}\";\n    }}\n  }}\n  server {{\n    listen 127.0.0.1:{front};\n    location / {{\n      proxy_pass https://mtls;\n      proxy_set_header Connection \"\";\n      proxy_ssl_protocols TLSv1.3;\n      proxy_ssl_certificate {p}/client.pem;\n      proxy_ssl_certificate_key {p}/client.key;\n      proxy_ssl_trusted_certificate {p}/ca.pem;\n      proxy_ssl_verify on;\n      proxy_ssl_name {NGINX_NAME};\n      proxy_ssl_session_reuse on;\n    }}\n  }}\n}}\n",
        common = common(p),
        temp = temp_paths(p),
    )
}

/// A CA, nginx's server certificate and a client certificate, all Ed25519; returns the
/// client's TLS configuration for nginx.
fn nginx_certs(dir: &Path) -> Arc<rustls::ClientConfig> {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaf = |name: &str, usage| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert, key)
    };
    let (server, server_key) = leaf(NGINX_NAME, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = leaf("alice", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), pkcs8_v1_pem(&server_key)).unwrap();
    std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.join("client.key"), pkcs8_v1_pem(&client_key)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from(client.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
    )
    .unwrap();
    Arc::new(config)
}

/// An Ed25519 key as PKCS#8 v1 PEM: OpenSSL (nginx) does not read the v2 document (with the
/// public key) that ring writes. v1 is a fixed prefix and the 32-byte seed, which sits at
/// offset 16 of ring's v2 document.
fn pkcs8_v1_pem(key: &rcgen::KeyPair) -> String {
    use base64::Engine;
    let v2 = key.serialize_der();
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&v2[16..48]);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// One path of the benchmark.
struct Route {
    name: &'static str,
    target: Target,
    request: Vec<u8>,
    /// The processes on the path, by name, whose CPU is counted.
    procs: Vec<(&'static str, Vec<u32>)>,
}

/// One path's figures in one round.
struct Figures {
    rate: f64,
    p50_us: u32,
    p99_us: u32,
    /// CPU µs per request, per process on the path (same order as `procs`), then the
    /// generator's own.
    cpu_us: Vec<f64>,
    ok: u64,
}

fn measure(rt: &tokio::runtime::Runtime, path: &Route, a: &Args) -> Figures {
    let until = match a.requests {
        Some(n) => Until::Requests(n),
        None => Until::Time(Duration::from_secs(a.seconds)),
    };
    let before: Vec<f64> = path.procs.iter().map(|(_, p)| cpu_of(p)).collect();
    let me = std::process::id();
    let me_before = cpu_of(&[me]);
    let outcome = rt.block_on(loadgen::run(
        &path.target,
        &path.request,
        200,
        a.connections,
        until,
    ));
    let after: Vec<f64> = path.procs.iter().map(|(_, p)| cpu_of(p)).collect();
    let me_after = cpu_of(&[me]);
    if outcome.errors > 0 || outcome.ok == 0 {
        panic!(
            "{}: {} errors, {} answered; first: {}",
            path.name,
            outcome.errors,
            outcome.ok,
            outcome.first_error.unwrap_or_default()
        );
    }
    let per = |s: f64| s * 1e6 / outcome.ok as f64;
    let mut cpu_us: Vec<f64> = before.iter().zip(&after).map(|(b, a)| per(a - b)).collect();
    cpu_us.push(per(me_after - me_before));
    Figures {
        rate: outcome.rate(),
        p50_us: outcome.quantile_us(0.5),
        p99_us: outcome.quantile_us(0.99),
        cpu_us,
        ok: outcome.ok,
    }
}

/// Streams `/big` once through `target`; returns MiB/s.
fn stream(rt: &tokio::runtime::Runtime, target: &Target, request: &[u8], bytes: u64) -> f64 {
    rt.block_on(async {
        let mut s = loadgen::connect(target).await.unwrap();
        let mut reader = loadgen::Reader::default();
        let start = Instant::now();
        tokio::io::AsyncWriteExt::write_all(&mut s, request)
            .await
            .unwrap();
        let answer = reader.response(&mut s, |_| {}).await.unwrap();
        let elapsed = start.elapsed();
        assert_eq!(answer.status, 200, "{}", answer.head);
        assert_eq!(answer.body_bytes, bytes, "a short body: {}", answer.head);
        bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The upstream, with a sparse file of the streaming size.
    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    let base = w.dir.path().to_owned();
    let up_dir = base.join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let stream_bytes = a.stream_mib << 20;
    std::fs::File::create(up_dir.join("big"))
        .unwrap()
        .set_len(stream_bytes)
        .unwrap();
    let up_hold = PortHold::new();
    let up_port = up_hold.port();
    let upstream = Nginx::start(
        &up_dir,
        &upstream_conf(&up_dir.display().to_string(), up_port),
        up_port,
    );
    drop(up_hold);
    w.nginx_port = up_port;

    // The nginx doing the proxy's job, and the chain's front.
    let ngx_dir = base.join("nginx-proxy");
    std::fs::create_dir_all(&ngx_dir).unwrap();
    let nginx_tls = nginx_certs(&ngx_dir);
    let (mtls_hold, front_hold) = (PortHold::new(), PortHold::new());
    let (mtls_port, front_port) = (mtls_hold.port(), front_hold.port());
    let nginx = Nginx::start(
        &ngx_dir,
        &nginx_conf(
            &ngx_dir.display().to_string(),
            up_port,
            mtls_port,
            front_port,
        ),
        mtls_port,
    );
    wait_port(front_port);
    drop((mtls_hold, front_hold));

    // The proxy, alice's grant, and `bglass open` with its session cookie.
    w.catalog(CATALOG);
    w.start_all();
    let token = w.access("alice", "bench")["grant"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let proxy_url = w.proxies[0].url();
    let proxy_addr: SocketAddr = proxy_url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let alice = Raw::new(&w.responder("alice").config, &proxy_url, &w.proxies[0].pin);
    let proxy_tls = Arc::new(
        bglass_tls::client_config(
            w.proxies[0].pin.parse().unwrap(),
            &alice.identity.key,
            alice.identity.id.as_str(),
        )
        .unwrap(),
    );
    let proxy_pid = w.pid(0).unwrap();
    let mut open = w.spawn_bglass(
        "alice",
        &["open", "bench", "--no-browser", "--local", "127.0.0.1:0"],
    );
    let printed = bglass_tests::first_line(&mut open);
    let (open_port, cookie, _) = bglass_tests::open_session(&printed);

    // The proxy's stack doing nginx's job, without and with the audit work.
    let auth = upstream_credential();
    let floor = FloorProxy::start(&ngx_dir, up_port, &auth, None);
    let floor_log = base.join("floor-log");
    let floor_audit = FloorProxy::start(&ngx_dir, up_port, &auth, Some(("--audit", &floor_log)));
    let nowait_log = base.join("floor-nowait-log");
    let floor_nowait = FloorProxy::start(
        &ngx_dir,
        up_port,
        &auth,
        Some(("--audit-nowait", &nowait_log)),
    );

    let up_pids = upstream.pids();
    let ngx_pids = nginx.pids();
    let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let nginx_name = ServerName::try_from(NGINX_NAME).unwrap();
    let proxy_name = ServerName::IpAddress(proxy_addr.ip().into());
    let paths = [
        Route {
            name: "upstream",
            target: Target::Plain(localhost(up_port)),
            request: format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\r\n"
            )
            .into_bytes(),
            procs: vec![("upstream", up_pids.clone())],
        },
        Route {
            name: "nginx",
            target: Target::Tls(
                localhost(mtls_port),
                Arc::clone(&nginx_tls),
                nginx_name.clone(),
            ),
            request: format!("GET / HTTP/1.1\r\nHost: {NGINX_NAME}\r\n\r\n").into_bytes(),
            procs: vec![("nginx", ngx_pids.clone()), ("upstream", up_pids.clone())],
        },
        Route {
            name: "proxy",
            target: Target::Tls(proxy_addr, Arc::clone(&proxy_tls), proxy_name.clone()),
            request: format!(
                "GET /s/bench/ HTTP/1.1\r\nHost: {proxy_addr}\r\n{GRANT_HEADER}: {token}\r\n\r\n"
            )
            .into_bytes(),
            procs: vec![
                ("bglass-proxy", vec![proxy_pid]),
                ("upstream", up_pids.clone()),
            ],
        },
        Route {
            name: "nginx-chain",
            target: Target::Plain(localhost(front_port)),
            request: format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{front_port}\r\n\r\n").into_bytes(),
            procs: vec![("nginx", ngx_pids.clone()), ("upstream", up_pids.clone())],
        },
        Route {
            name: "open",
            target: Target::Plain(localhost(open_port)),
            request: format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:{open_port}\r\nCookie: {cookie}\r\n\r\n"
            )
            .into_bytes(),
            procs: vec![
                ("bglass open", vec![open.id()]),
                ("bglass-proxy", vec![proxy_pid]),
                ("upstream", up_pids.clone()),
            ],
        },
        Route {
            name: "floor",
            target: Target::Tls(
                localhost(floor.port),
                Arc::clone(&nginx_tls),
                nginx_name.clone(),
            ),
            request: format!("GET / HTTP/1.1\r\nHost: {NGINX_NAME}\r\n\r\n").into_bytes(),
            procs: vec![
                ("floor-proxy", vec![floor.child.id()]),
                ("upstream", up_pids.clone()),
            ],
        },
        Route {
            name: "floor-audit",
            target: Target::Tls(
                localhost(floor_audit.port),
                Arc::clone(&nginx_tls),
                nginx_name.clone(),
            ),
            request: format!("GET / HTTP/1.1\r\nHost: {NGINX_NAME}\r\n\r\n").into_bytes(),
            procs: vec![
                ("floor-proxy", vec![floor_audit.child.id()]),
                ("upstream", up_pids.clone()),
            ],
        },
        Route {
            name: "floor-nowait",
            target: Target::Tls(
                localhost(floor_nowait.port),
                Arc::clone(&nginx_tls),
                nginx_name.clone(),
            ),
            request: format!("GET / HTTP/1.1\r\nHost: {NGINX_NAME}\r\n\r\n").into_bytes(),
            procs: vec![
                ("floor-proxy", vec![floor_nowait.child.id()]),
                ("upstream", up_pids.clone()),
            ],
        },
    ];

    println!(
        "data plane: {} connections, {} per path per round, {} rounds, interleaved",
        a.connections,
        a.requests
            .map_or(format!("{} s", a.seconds), |n| format!("{n} requests")),
        a.rounds
    );
    let size_before = w.log_entries(0);
    let mut proxy_requests = 0;
    let mut results: Vec<Vec<Figures>> = paths.iter().map(|_| Vec::new()).collect();
    for round in 1..=a.rounds {
        println!("\nround {round}");
        println!(
            "{:<12} {:>10} {:>9} {:>9}   CPU µs per request",
            "path", "req/s", "p50 µs", "p99 µs"
        );
        for (i, path) in paths.iter().enumerate() {
            if !a.only.is_empty() && !a.only.iter().any(|o| o == path.name) {
                continue;
            }
            let f = measure(&rt, path, &a);
            let cpu: Vec<String> = path
                .procs
                .iter()
                .map(|(n, _)| *n)
                .chain(["generator"])
                .zip(&f.cpu_us)
                .map(|(n, c)| format!("{n} {c:.1}"))
                .collect();
            println!(
                "{:<12} {:>10.0} {:>9} {:>9}   {}",
                path.name,
                f.rate,
                f.p50_us,
                f.p99_us,
                cpu.join(", ")
            );
            if path.procs.iter().any(|(n, _)| *n == "bglass-proxy") {
                proxy_requests += f.ok;
            }
            results[i].push(f);
        }
    }

    if !a.only.is_empty() {
        let _ = open.kill();
        return;
    }
    // The medians over rounds, and the ratios against the targets.
    let med = |i: usize, f: &dyn Fn(&Figures) -> f64| {
        let mut v: Vec<f64> = results[i].iter().map(f).collect();
        median(&mut v)
    };
    let (nginx, proxy, chain, open_i, floor_i, floor_audit_i, nowait_i) = (1, 2, 3, 4, 5, 6, 7);
    let rate = |i| med(i, &|f| f.rate);
    let p99 = |i| med(i, &|f| f64::from(f.p99_us));
    let cpu0 = |i| med(i, &|f| f.cpu_us[0]);
    let cpu_open = med(open_i, &|f| f.cpu_us[0] + f.cpu_us[1]);
    println!("\nmedians over {} rounds, against the targets", a.rounds);
    let line = |what: &str, ratio: f64, target: &str, ok: bool| {
        println!(
            "  {what:<52} {ratio:>6.2}x  (target {target})  [{}]",
            if ok { "met" } else { "NOT met" }
        );
    };
    let r = rate(proxy) / rate(nginx);
    line("bglass-proxy req/s vs nginx", r, ">= 1.0x", r >= 1.0);
    let r = p99(proxy) / p99(nginx);
    line("bglass-proxy p99 vs nginx", r, "<= 1.5x", r <= 1.5);
    let r = cpu0(proxy) / cpu0(nginx);
    line(
        "bglass-proxy CPU per request vs nginx",
        r,
        "<= 1.2x",
        r <= 1.2,
    );
    let r = rate(open_i) / rate(chain);
    line(
        "bglass open + bglass-proxy req/s vs the nginx chain",
        r,
        ">= 1.0x",
        r >= 1.0,
    );
    let r = cpu_open / cpu0(chain);
    println!(
        "  {:<52} {r:>6.2}x  (no target)",
        "open + proxy CPU per request vs the nginx chain"
    );
    // Where the proxy's CPU per request goes: the stack's floor, the audit work on top of
    // it, and the rest (roster, grant, hygiene, jar, timeout, metrics).
    let (n, f, fa, p) = (cpu0(nginx), cpu0(floor_i), cpu0(floor_audit_i), cpu0(proxy));
    println!("\nCPU µs per request (medians): where the proxy's goes");
    let row = |what: &str, cpu: f64, note: String| println!("  {what:<44} {cpu:>6.1}  {note}");
    row("nginx", n, String::new());
    row(
        "floor: the proxy's stack doing nginx's job",
        f,
        format!(
            "({:.2}x nginx, {:.2}x its req/s)",
            f / n,
            rate(floor_i) / rate(nginx)
        ),
    );
    row(
        "floor + the audit work, not awaited",
        cpu0(nowait_i),
        "(diagnostic: what waiting for durability costs)".to_owned(),
    );
    row(
        "floor + the audit work",
        fa,
        format!(
            "(+{:.1}; {:.2}x nginx, {:.2}x its req/s)",
            fa - f,
            fa / n,
            rate(floor_audit_i) / rate(nginx)
        ),
    );
    row(
        "bglass-proxy",
        p,
        format!(
            "(+{:.1} for roster, grant, hygiene, jar, timeout, metrics)",
            p - fa
        ),
    );

    // Streaming a big body, one connection, alternating.
    println!("\nstreaming {} MiB, one connection", a.stream_mib);
    let big_nginx = format!("GET /big HTTP/1.1\r\nHost: {NGINX_NAME}\r\n\r\n").into_bytes();
    let big_proxy = format!(
        "GET /s/bench/big HTTP/1.1\r\nHost: {proxy_addr}\r\n{GRANT_HEADER}: {token}\r\n\r\n"
    )
    .into_bytes();
    let mut by_nginx = Vec::new();
    let mut by_proxy = Vec::new();
    for _ in 0..a.rounds {
        let n = stream(&rt, &paths[nginx].target, &big_nginx, stream_bytes);
        let p = stream(&rt, &paths[proxy].target, &big_proxy, stream_bytes);
        proxy_requests += 1;
        println!(
            "  nginx {n:8.0} MiB/s   bglass-proxy {p:8.0} MiB/s   ratio {:.2}x",
            p / n
        );
        by_nginx.push(n);
        by_proxy.push(p);
    }
    let r = median(&mut by_proxy) / median(&mut by_nginx);
    line(
        "bglass-proxy streaming vs nginx (medians)",
        r,
        ">= 0.8x",
        r >= 0.8,
    );

    // Every request through the proxy is in its log: a `use_start` and a `use` each.
    let expected = size_before + 2 * proxy_requests;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut size = w.log_entries(0);
    while size < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        size = w.log_entries(0);
    }
    println!(
        "\naudit: {proxy_requests} requests through the proxy, {} new log entries (2 per request: use_start before the upstream, use after)",
        size - size_before
    );
    let _ = open.kill();
    let _ = open.wait();
    if size < expected {
        eprintln!("error: {} audit entries missing", expected - size);
        std::process::exit(1);
    }
}
