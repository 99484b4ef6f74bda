//! The simulated tools of a drill world, on loopback: each of the catalog's services answers
//! as much of its protocol as a participant's probe needs, and no more.
//!
//! - HTTP tools answer `200 ok <service>` only when the proxy injected the right credential
//!   (the vault secret in the catalog's header and format); anything else gets `401`.
//! - TCP tools speak their probe's protocol: PostgreSQL's SSLRequest (answered `N`), Redis
//!   `PING` (`+PONG`), a banner, or (for `connect`) an HTTP `/health` answer as etcd gives.
//! - SSH tools are real `sshd` processes ([`Sshd`]) trusting the world's SSH CAs, when
//!   `sshd` is installed; otherwise a stand-in that sends an SSH banner, and the report says
//!   that only the banner and the certificate were checked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bglass_core::catalog::TcpProbe;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counts what a simulated tool saw.
#[derive(Debug, Default)]
pub struct ToolCounters {
    /// Requests (or connections) that carried the right credential / protocol.
    pub authorised: AtomicU64,
    /// Requests refused for a missing or wrong credential.
    pub refused: AtomicU64,
}

/// A running simulated tool.
#[derive(Debug)]
pub struct Tool {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub counters: Arc<ToolCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tool {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen() -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// An HTTP tool that accepts only `header: value`.
pub async fn http(service: String, header: String, value: String) -> std::io::Result<Tool> {
    let listener = listen().await?;
    let addr = listener.local_addr()?;
    let counters = Arc::new(ToolCounters::default());
    let seen = Arc::clone(&counters);
    let header = http::HeaderName::from_bytes(header.as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let expected = Arc::new((header, value, service));
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let expected = Arc::clone(&expected);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    let (header, value, name) = &*expected;
                    let authorised = req
                        .headers()
                        .get(header)
                        .is_some_and(|v| v.as_bytes() == value.as_bytes());
                    // Every path needs the credential (the proxies' health probes inject it).
                    let (status, body) = if authorised {
                        seen.authorised.fetch_add(1, Ordering::Relaxed);
                        (200, format!("ok {name}\n"))
                    } else {
                        seen.refused.fetch_add(1, Ordering::Relaxed);
                        (401, format!("{name}: missing or wrong credential\n"))
                    };
                    let mut response = http::Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = http::StatusCode::from_u16(status)
                        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(Tool {
        addr,
        counters,
        task,
    })
}

/// A TCP tool speaking `probe`'s protocol (`banner` sends `banner`).
pub async fn tcp(probe: TcpProbe, banner: String) -> std::io::Result<Tool> {
    serve_tcp(listen().await?, probe, banner)
}

/// Like [`tcp`], on a given loopback port.
pub async fn tcp_on(port: u16, probe: TcpProbe, banner: String) -> std::io::Result<Tool> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    serve_tcp(listener, probe, banner)
}

fn serve_tcp(listener: TcpListener, probe: TcpProbe, banner: String) -> std::io::Result<Tool> {
    let addr = listener.local_addr()?;
    let counters = Arc::new(ToolCounters::default());
    let banner = Arc::new(banner);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            let banner = Arc::clone(&banner);
            tokio::spawn(async move {
                let answered = match probe {
                    TcpProbe::Postgres => {
                        let mut request = [0u8; 8];
                        tcp.read_exact(&mut request).await.is_ok()
                            && request == POSTGRES_SSL_REQUEST
                            && tcp.write_all(b"N").await.is_ok()
                    }
                    TcpProbe::Redis => {
                        let mut request = [0u8; REDIS_PING.len()];
                        tcp.read_exact(&mut request).await.is_ok()
                            && request == *REDIS_PING
                            && tcp.write_all(b"+PONG\r\n").await.is_ok()
                    }
                    TcpProbe::Banner => tcp.write_all(banner.as_bytes()).await.is_ok(),
                    _ => {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
                            match tcp.read(&mut byte).await {
                                Ok(1) => head.push(byte[0]),
                                _ => break,
                            }
                        }
                        head.starts_with(b"GET /health ")
                            && tcp
                                .write_all(
                                    b"HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\n{\"health\":true}\n",
                                )
                                .await
                                .is_ok()
                    }
                };
                // Counted by participants, not here: the proxies' health probes connect too.
                let _ = answered;
                // Hold the connection until the client closes it.
                let mut sink = [0u8; 256];
                while let Ok(n) = tcp.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    Ok(Tool {
        addr,
        counters,
        task,
    })
}

/// PostgreSQL's SSLRequest: length 8, code 80877103.
pub const POSTGRES_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];
/// A Redis PING in RESP.
pub const REDIS_PING: &[u8; 14] = b"*1\r\n$4\r\nPING\r\n";

/// Where `sshd` lives on Debian.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A real `sshd` on loopback that accepts certificates from the world's SSH CAs for the
/// service's principals, mapped to the local user running the drill.
#[derive(Debug)]
pub struct Sshd {
    child: std::process::Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The login the drill's SSH certificates are used for: the user running the drill (as
/// `id -un` names the effective user; `$USER` can be stale under sudo or in CI).
pub fn local_user() -> String {
    std::process::Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "root".to_owned())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, bytes)
}

impl Sshd {
    /// Starts `sshd` for one service in `dir`: its host key (the catalog pins its public
    /// half), the CAs it trusts, and the principals it accepts for the local user.
    ///
    /// Its key exchange is ECDH on P-256 only (the drill's client offers it first): OpenSSH
    /// computes that with OpenSSL, but Curve25519 with its own portable reference code,
    /// about 2.7 ms of `sshd` CPU per login in a profile of a 200-participant drill. The
    /// host key stays Ed25519: an ECDSA one moved about as much work into the client's
    /// P-256 verification as it saved in `sshd`'s signature.
    pub fn start(
        dir: &Path,
        port: u16,
        host_key: &[u8],
        trusted_cas: &str,
        principals: &[String],
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key_path = dir.join("host_key");
        write_private(&key_path, host_key).map_err(|e| format!("{}: {e}", key_path.display()))?;
        let cas = dir.join("trusted_cas");
        std::fs::write(&cas, trusted_cas).map_err(|e| format!("{}: {e}", cas.display()))?;
        let principals_file = dir.join("principals");
        std::fs::write(&principals_file, principals.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", principals_file.display()))?;
        let config = dir.join("sshd_config");
        let abs = |p: &PathBuf| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        };
        let text = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {key}\nPidFile {pid}\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AuthorizedKeysFile none\nTrustedUserCAKeys {cas}\nAuthorizedPrincipalsFile {principals}\n\
             StrictModes no\nMaxStartups 1000:30:2000\nMaxSessions 10\nLoginGraceTime 30\n\
             PermitRootLogin prohibit-password\nLogLevel ERROR\n\
             KexAlgorithms ecdh-sha2-nistp256\n",
            key = abs(&key_path),
            pid = dir.join("sshd.pid").display(),
            cas = abs(&cas),
            principals = abs(&principals_file),
        );
        // sshd run by root needs its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let child = std::process::Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .args(rexec_off())
            .arg("-f")
            .arg(abs(&config))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {SSHD}: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut sshd = Self { child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(sshd);
            }
            if let Ok(Some(status)) = sshd.child.try_wait() {
                return Err(format!(
                    "sshd exited at start ({status}); config {}",
                    config.display()
                ));
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("sshd did not listen on {addr} within 5 s"));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// `-r` (no re-execution per connection) where sshd still has it: re-executing and
/// relinking sshd for each of hundreds of logins is a third of a drill's CPU time. OpenSSH
/// 9.8 split sshd and dropped the flag.
fn rexec_off() -> &'static [&'static str] {
    static FLAGS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    FLAGS.get_or_init(rexec_flags)
}

fn rexec_flags() -> &'static [&'static str] {
    let version = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    // "OpenSSH_9.2p1 …"
    let number = version.strip_prefix("OpenSSH_").and_then(|v| {
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        Some((
            parts.next()?.parse::<u32>().ok()?,
            parts.next()?.parse::<u32>().ok()?,
        ))
    });
    match number {
        Some((major, minor)) if (major, minor) < (9, 8) => &["-r"],
        _ => &[],
    }
}

/// A free loopback port (bound and released; sshd binds it next).
pub fn free_port() -> std::io::Result<u16> {
    Ok(
        std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?
            .local_addr()?
            .port(),
    )
}

/// What the stand-in SSH server sends.
const STANDIN_BANNER: &str = "SSH-2.0-bglass-drill-standin\r\n";

/// A stand-in SSH server that only sends its banner (when `sshd` is not installed).
pub async fn ssh_banner() -> std::io::Result<Tool> {
    tcp(TcpProbe::Banner, STANDIN_BANNER.to_owned()).await
}

/// The stand-in on a given port (when `sshd` is installed but could not start).
pub async fn ssh_banner_on(port: u16) -> std::io::Result<Tool> {
    tcp_on(port, TcpProbe::Banner, STANDIN_BANNER.to_owned()).await
}
