//! Tools for attack tests, all on loopback: a listener that records every byte sent to it
//! (where a stolen credential would land), a webhook receiver, an upstream that holds a
//! request before answering, a TLS client without a client certificate, and the proxy's
//! log as JSON.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::wait::{eventually, within};
use crate::world::World;
use crate::{command, run};

/// A listener that records everything any client sends it (and answers nothing).
#[derive(Debug)]
pub struct Capture {
    /// Its port on 127.0.0.1.
    pub port: u16,
    bytes: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl Capture {
    /// Starts one on a free port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (b, c) = (Arc::clone(&bytes), Arc::clone(&connections));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                *c.lock().unwrap() += 1;
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        b.lock().unwrap().extend_from_slice(&chunk[..n]);
                    }
                });
            }
        });
        Self {
            port,
            bytes,
            connections,
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    /// Whether `needle` arrived.
    pub fn saw(&self, needle: &[u8]) -> bool {
        let hay = self.received();
        !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
    }
}

/// A webhook receiver on loopback that records request bodies.
#[derive(Debug)]
pub struct Receiver {
    /// Its port.
    pub port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts one on a port the system chooses, appending each JSON body to `bodies`.
    pub fn start(bodies: Arc<Mutex<Vec<Value>>>) -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").unwrap(), bodies)
    }

    /// Starts one on `port`: a port a [`crate::ports::PortHold`] keeps for it, where the
    /// proxy was told to deliver before the receiver was up (it takes the held port over).
    pub fn start_on(port: u16, bodies: Arc<Mutex<Vec<Value>>>) -> Self {
        Self::serve(TcpListener::bind(("127.0.0.1", port)).unwrap(), bodies)
    }

    fn serve(listener: TcpListener, bodies: Arc<Mutex<Vec<Value>>>) -> Self {
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, s) = (Arc::clone(&bodies), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        if let Some(body) = read_request(&mut stream).1
                            && let Ok(v) = serde_json::from_slice(&body)
                        {
                            b.lock().unwrap().push(v);
                        }
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                    // Nothing to accept: the accept loop idles briefly between checks of
                    // its stop flag (it waits for no particular event).
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self {
            port,
            bodies,
            stop,
            handle: Some(handle),
        }
    }

    /// Waits up to `secs` for a notification whose summary contains `what`.
    pub fn wait_for(&self, what: &str, secs: u64) {
        eventually(
            Duration::from_secs(secs),
            &format!(
                "a notification containing {what:?} (so far: {:?})",
                self.bodies.lock().unwrap()
            ),
            || {
                self.bodies
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|b| b["summary"].as_str().unwrap_or("").contains(what))
            },
        );
    }

    /// Stops it (its port refuses connections afterwards).
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// Reads one HTTP request: its head, and its body when it has a Content-Length.
fn read_request(stream: &mut std::net::TcpStream) -> (String, Option<Vec<u8>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return (String::from_utf8_lossy(&buf).into_owned(), None);
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            return (head, Some(buf[end + 4..end + 4 + len].to_vec()));
        }
    }
}

/// An upstream that answers every request only after `hold`, reporting each request head
/// as it arrives (a tool that is slow to answer).
#[derive(Debug)]
pub struct SlowUpstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl SlowUpstream {
    /// Starts one.
    pub fn start(hold: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = Arc::clone(&heads);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let h = Arc::clone(&h);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let (head, _) = read_request(&mut stream);
                    if head.is_empty() {
                        return;
                    }
                    h.lock().unwrap().push(head);
                    std::thread::sleep(hold);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nslow answer",
                    );
                });
            }
        });
        Self { port, heads }
    }

    /// Waits up to `secs` for a request whose head contains `needle`; its head.
    pub fn wait_request(&self, needle: &str, secs: u64) -> String {
        eventually(
            Duration::from_secs(secs),
            &format!("a request for {needle} to reach the upstream"),
            || {
                self.heads
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|h| h.contains(needle))
                    .cloned()
            },
        )
    }
}

/// A TLS connection to a proxy that trusts its pinned CA but presents no client
/// certificate, from the local address `from` (any address in 127.0.0.0/8).
pub async fn certless(
    proxy: SocketAddr,
    pin: &str,
    from: std::net::IpAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let pin: bglass_core::catalog::CertPin = pin.parse().unwrap();
    let config = rustls::ClientConfig::builder_with_provider(bglass_tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(bglass_tls::PinnedCaVerifier::new(pin)))
        .with_no_client_auth();
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let tcp = socket.connect(proxy).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::IpAddress(proxy.ip().into());
    connector.connect(name, tcp).await
}

/// Every event of proxy `i`'s log, as `bglass audit show --json` prints them.
pub fn events(w: &World, i: usize) -> Vec<Value> {
    try_events(w, i).unwrap_or_else(|e| panic!("{e}"))
}

/// [`events`], or why `bglass audit show` could not read the log: while the proxy writes
/// it, a reader may find a file the checkpoint names not written yet (polls try again).
pub fn try_events(w: &World, i: usize) -> Result<Vec<Value>, String> {
    let home = tempfile::tempdir().unwrap();
    let out = run(command("bglass", home.path())
        .args(["audit", "show", "--json"])
        .arg(w.proxies[i].log_dir()));
    if out.code != Some(0) {
        return Err(format!("audit show exited {:?}: {}", out.code, out.stderr));
    }
    Ok(serde_json::from_str(&out.stdout).unwrap())
}

/// The denial events of proxy `i`'s log: (reason, detail).
pub fn denials(w: &World, i: usize) -> Vec<(String, String)> {
    events(w, i)
        .iter()
        .filter_map(|e| {
            let d = &e["event"]["event"]["denial"];
            Some((
                d["reason"].as_str()?.to_owned(),
                d["detail"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

/// Waits up to `secs` until `cond` holds for proxy `i`'s events.
pub fn wait_events(w: &World, i: usize, secs: u64, what: &str, cond: impl Fn(&[Value]) -> bool) {
    let mut last = Ok(Vec::new());
    let held = within(Duration::from_secs(secs), || {
        last = try_events(w, i);
        last.as_ref().is_ok_and(|events| cond(events))
    });
    assert!(
        held.is_some(),
        "{what}: not in the log within {secs}s: {}",
        match &last {
            Ok(events) => serde_json::to_string_pretty(events).unwrap_or_default(),
            Err(e) => e.clone(),
        }
    );
}

/// A server in place of a stopped proxy, with the proxy's own TLS certificate and key (what
/// the proxy host's operator, or anyone who took the host, can run): it answers `/healthz`
/// as the proxy does and refuses to show a checkpoint (404 to every other route).
#[derive(Debug)]
pub struct Impostor {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Impostor {
    /// Starts it on the stopped proxy's port.
    pub fn start(proxy: &crate::world::Proxy) -> Self {
        use bglass_core::ExposeSecret;
        use rustls_pki_types::pem::PemObject;
        let identity =
            bglass_core::vault::VaultIdentity::open_file(&proxy.dir.join("vault.key")).unwrap();
        let vault =
            bglass_core::vault::Vault::open(&proxy.dir.join("secrets.age"), &identity).unwrap();
        let key_b64 = vault
            .proxy_key(&bglass_core::id::SecretName::new("bglass.tls_key").unwrap())
            .unwrap()
            .expose_secret()
            .to_owned();
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_b64)
            .unwrap();
        let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
            rustls_pki_types::CertificateDer::pem_file_iter(proxy.dir.join("tls/chain.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(bglass_tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, rustls_pki_types::PrivateKeyDer::Pkcs8(key.into()))
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", proxy.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let healthz =
            serde_json::json!({ "ok": true, "proxy": proxy.id, "key": proxy.key }).to_string();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(Ok((tcp, _))) =
                        tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
                    else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let healthz = healthz.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                            match tls.read(&mut byte).await {
                                Ok(1) => head.push(byte[0]),
                                _ => return,
                            }
                        }
                        let text = String::from_utf8_lossy(&head);
                        let (status, body) = if text.starts_with("GET /healthz ") {
                            ("200 OK", healthz)
                        } else {
                            (
                                "404 Not Found",
                                r#"{"error":"no_checkpoint","message":"no checkpoint"}"#.to_owned(),
                            )
                        };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(answer.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        crate::world::wait_port(proxy.port);
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops it; its port is free again.
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// Waits up to 20 s for a `config_reload` of `file` (`catalog`, `roster`) in proxy 0's log
/// matching `want`; returns it.
pub fn config_reload(w: &World, file: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(20), what, || {
        try_events(w, 0)
            .ok()?
            .into_iter()
            .map(|e| e["event"]["event"]["config_reload"].clone())
            .find(|e| e["file"] == file && want(e))
    })
}
