//! Benchmark: what recording costs an SSH session. One real sshd, reached through one proxy as
//! two catalog services — `plain` (the tunnel relays the responder's own SSH) and `recorded`
//! (`record = true`: the proxy terminates SSH and records) — measured the same way:
//!
//! - keystrokes: one byte sent to `cat` on the host and read back, one at a time (the round
//!   trip a typed character takes to echo), N times; percentiles of the round trip;
//! - bulk: `head -c SIZE /dev/zero` read to the end (a `cat` of a large file).
//!
//! Prints both, the time recording adds per keystroke, the bulk throughput ratio, and what
//! the recording wrote (file bytes, log entries).
//!
//! cargo run --release -p bglass-tests --bin record-bench -- --keys 2000 --bulk-mb 100

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bglass_tests::raw::Raw;
use bglass_tests::world::{World, current_user};
use russh::ChannelMsg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CATALOG: &str = r#"version = 1

[[service]]
name = "plain"
kind = "ssh"
description = "Relayed, not recorded"
upstream = "127.0.0.1:{ssh}"
max_ttl = "4h"
default_ttl = "4h"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "{hostkey}"

[[service]]
name = "recorded"
kind = "ssh"
description = "Recorded"
upstream = "127.0.0.1:{ssh}"
max_ttl = "4h"
default_ttl = "4h"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "{hostkey}"
record = true
"#;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    rtt: Vec<Duration>,
    bulk: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Opens a tunnel to `service` (mutual TLS, HTTP upgrade) and returns its stream.
async fn tunnel(
    w: &World,
    alice: &Raw,
    service: &str,
    token: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let p = &w.proxies[0];
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", p.port).parse().unwrap();
    let config = bglass_tls::client_config(
        p.pin.parse().unwrap(),
        &alice.identity.key,
        alice.identity.id.as_str(),
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let head = format!(
        "GET /v1/tunnel/{service} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: bglass-tunnel\r\nbglass-grant: {token}\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        answer.push(tls.read_u8().await.unwrap());
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    tls
}

async fn measure(ssh: &bglass_client::ssh::SshHandle, keys: u64, bulk_bytes: u64) -> Figures {
    // Keystrokes: `cat` echoes each byte back.
    let mut channel = ssh.channel_open_session().await.unwrap();
    channel.exec(true, "cat").await.unwrap();
    let mut rtt = Vec::with_capacity(keys as usize);
    for i in 0..keys {
        let byte = [b'a' + (i % 26) as u8];
        let sent = Instant::now();
        channel.data(&byte[..]).await.unwrap();
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    assert_eq!(&data[..], &byte[..]);
                    break;
                }
                Some(_) => {}
                None => panic!("cat ended"),
            }
        }
        rtt.push(sent.elapsed());
    }
    channel.eof().await.unwrap();
    while channel.wait().await.is_some() {}
    rtt.sort();

    // Bulk: a large output read to the end.
    let mut channel = ssh.channel_open_session().await.unwrap();
    let started = Instant::now();
    channel
        .exec(true, format!("head -c {bulk_bytes} /dev/zero"))
        .await
        .unwrap();
    let mut got = 0u64;
    while let Some(msg) = channel.wait().await {
        if let ChannelMsg::Data { data } = msg {
            got += data.len() as u64;
        }
    }
    let bulk = started.elapsed();
    assert_eq!(got, bulk_bytes, "the bulk output was cut");
    Figures { rtt, bulk }
}

fn main() {
    let keys = arg("--keys", 2000);
    let bulk_mb = arg("--bulk-mb", 100);
    let bulk_bytes = bulk_mb * 1_000_000;
    let user = current_user();

    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    // One sshd that trusts both the responders' CA (the relayed service) and the session CA
    // (the recorded one): the same host either way.
    let session_ca = std::fs::read_to_string(w.proxies[0].dir.join("ssh_session_ca.pub")).unwrap();
    w.start_sshd(&[session_ca]);
    w.catalog(CATALOG);
    w.start_all();
    let alice = Raw::new(
        &w.responder("alice").config,
        &w.proxies[0].url(),
        &w.proxies[0].pin,
    );
    let token = |service: &str| {
        w.access("alice", service)["grant"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (plain_token, recorded_token) = (token("plain"), token("recorded"));
    // The relayed service's certificate, as `bglass ssh --save-cert` writes it.
    let saved = w.bglass("alice", &["ssh", "plain", "--user", &user, "--save-cert"]);
    assert_eq!(saved.code, Some(0), "{}", saved.stderr);
    let ssh_dir = w.ssh_dir("alice");
    let private = std::fs::read_to_string(ssh_dir.join("plain")).unwrap();
    let cert = std::fs::read_to_string(ssh_dir.join("plain-cert.pub")).unwrap();
    let host_key = w.sshd.as_ref().unwrap().1.clone();
    let proxy_key = std::fs::read_to_string(w.proxies[0].dir.join("ssh_host_key.pub")).unwrap();
    let log = w.proxies[0].log_dir();
    let entries_before = w.log_entries(0);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (plain, recorded) = runtime.block_on(async {
        let service = "plain".parse().unwrap();
        let stream = tunnel(&w, &alice, "plain", &plain_token).await;
        let ssh = bglass_client::ssh::login(
            stream,
            &service,
            &host_key,
            &user,
            &private,
            &cert,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("login to plain: {e:?}"));
        let plain = measure(&ssh, keys, bulk_bytes).await;
        let _ = ssh
            .disconnect(russh::Disconnect::ByApplication, "", "")
            .await;

        let service = "recorded".parse().unwrap();
        let stream = tunnel(&w, &alice, "recorded", &recorded_token).await;
        let ssh = bglass_client::ssh::login_recorded(
            stream,
            &service,
            &proxy_key,
            &user,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("login to recorded: {e:?}"));
        let recorded = measure(&ssh, keys, bulk_bytes).await;
        let _ = ssh
            .disconnect(russh::Disconnect::ByApplication, "", "")
            .await;
        (plain, recorded)
    });

    // The recording is closed once the session's end is in the log.
    let recording = (0..100)
        .find_map(|_| {
            let events = bglass_core::audit::report::read_events(&log).unwrap();
            let found = bglass_core::audit::recording::collect(&events);
            let r = found.into_iter().find(|r| r.end.is_some());
            if r.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            r
        })
        .expect("the recorded session's end never reached the log");
    let checked = bglass_core::audit::recording::check(&log, &recording).unwrap();
    let entries = w.log_entries(0) - entries_before;

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("keystrokes:               {keys} round trips each, one at a time");
    for (name, f) in [("plain", &plain), ("recorded", &recorded)] {
        println!(
            "{name:<9} keystroke rtt  p50 {:.0} us  p90 {:.0} us  p99 {:.0} us",
            us(percentile(&f.rtt, 0.5)),
            us(percentile(&f.rtt, 0.9)),
            us(percentile(&f.rtt, 0.99)),
        );
    }
    let added = us(percentile(&recorded.rtt, 0.5)) - us(percentile(&plain.rtt, 0.5));
    println!(
        "recording adds per keystroke: {added:.0} us at p50 ({:.2}x), {:.0} us at p99",
        us(percentile(&recorded.rtt, 0.5)) / us(percentile(&plain.rtt, 0.5)),
        us(percentile(&recorded.rtt, 0.99)) - us(percentile(&plain.rtt, 0.99)),
    );
    let mbps = |d: Duration| bulk_bytes as f64 / 1e6 / d.as_secs_f64();
    for (name, f) in [("plain", &plain), ("recorded", &recorded)] {
        println!(
            "{name:<9} bulk {bulk_mb} MB       {:.2} s  {:.1} MB/s",
            f.bulk.as_secs_f64(),
            mbps(f.bulk)
        );
    }
    println!(
        "recorded bulk vs plain:   {:.2}x the throughput",
        mbps(recorded.bulk) / mbps(plain.bulk)
    );
    println!(
        "recording: {} chunks, {} bytes, {} ({}); {entries} log entries for both sessions",
        recording.chunks.len(),
        checked.verified_bytes,
        checked.state.name(),
        checked.detail
    );
}
