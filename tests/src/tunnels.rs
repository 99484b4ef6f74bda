//! Many concurrent tunnels through one proxy to a TCP echo server: none may be dropped.
//! Used by the `tunnel-bench` benchmark and the end-to-end test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::raw::Raw;
use crate::world::World;

/// The catalog: one TCP service, the echo server.
pub const ECHO_CATALOG: &str = r#"version = 1

[[service]]
name = "echo"
kind = "tcp"
description = "TCP echo"
upstream = "127.0.0.1:{redis}"
max_ttl = "1h"
default_ttl = "1h"
approvals = 0
probe = "connect"
"#;

/// What a run measured.
#[derive(Debug)]
pub struct TunnelRun {
    /// Tunnels opened.
    pub opened: usize,
    /// Tunnels that echoed correctly while all were open.
    pub echoed: usize,
    /// Time to open them all.
    pub open_time: Duration,
    /// Proxy RSS while all were open, KiB.
    pub rss_kib: u64,
    /// Proxy RSS before, KiB.
    pub rss_before_kib: u64,
}

/// Resident set size of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts a TCP echo server on a free port (in a thread of this process).
pub fn start_echo() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
    });
    port
}

/// Opens `n` tunnels at once through proxy 0 of `world` to the echo service with
/// `token`, echoes a message through each while all are open, then closes them.
pub fn run(world: &World, client: &Raw, token: &str, n: usize, proxy_pid: u32) -> TunnelRun {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let p = &world.proxies[0];
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", p.port).parse().unwrap();
    let config = bglass_tls::client_config(
        p.pin.parse().unwrap(),
        &client.identity.key,
        client.identity.id.as_str(),
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let head = format!(
        "GET /v1/tunnel/echo HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: bglass-tunnel\r\nbglass-grant: {token}\r\n\r\n"
    );
    let rss_before_kib = rss_kib(proxy_pid);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let started = Instant::now();
        let limit = Arc::new(tokio::sync::Semaphore::new(64));
        let mut opening = Vec::with_capacity(n);
        for _ in 0..n {
            let connector = connector.clone();
            let head = head.clone();
            let limit = Arc::clone(&limit);
            opening.push(tokio::spawn(async move {
                // At most 64 handshakes at a time; tunnels stay open once made.
                let _permit = limit.acquire().await.ok()?;
                let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
                let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
                let mut tls = connector.connect(name, tcp).await.ok()?;
                tls.write_all(head.as_bytes()).await.ok()?;
                let mut answer = Vec::new();
                while !answer.ends_with(b"\r\n\r\n") {
                    answer.push(tls.read_u8().await.ok()?);
                }
                String::from_utf8_lossy(&answer)
                    .starts_with("HTTP/1.1 101")
                    .then_some(tls)
            }));
        }
        let mut tunnels = Vec::with_capacity(n);
        for t in opening {
            if let Ok(Some(tls)) = t.await {
                tunnels.push(tls);
            }
        }
        let open_time = started.elapsed();
        let opened = tunnels.len();
        let mut echoed = 0;
        let mut checks = Vec::with_capacity(opened);
        for (i, mut t) in tunnels.into_iter().enumerate() {
            checks.push(tokio::spawn(async move {
                let message = format!("tunnel {i} says hello\n");
                t.write_all(message.as_bytes()).await.ok()?;
                let mut back = vec![0u8; message.len()];
                t.read_exact(&mut back).await.ok()?;
                (back == message.as_bytes()).then_some(t)
            }));
        }
        let mut held = Vec::with_capacity(opened);
        for c in checks {
            if let Ok(Some(t)) = c.await {
                echoed += 1;
                held.push(t);
            }
        }
        // All open, each has echoed: measure the proxy now.
        let rss = rss_kib(proxy_pid);
        for mut t in held {
            let _ = t.shutdown().await;
        }
        TunnelRun {
            opened,
            echoed,
            open_time,
            rss_kib: rss,
            rss_before_kib,
        }
    })
}
