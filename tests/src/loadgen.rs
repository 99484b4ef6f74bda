//! An HTTP/1.1 load generator for the data-plane benchmark: keep-alive connections, plain or
//! mutual TLS with any client certificate (a responder's key for `bglass-proxy`, a CA-issued
//! one for nginx), each sending one request after another and timing every answer.
//!
//! wrk cannot present a responder's key, so every path of the benchmark is driven by this
//! one generator, and the comparisons are like for like. It speaks just enough HTTP/1.1 to
//! be cheap: a fixed request written as bytes, a response read by `Content-Length` or chunks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to connect and how.
#[derive(Clone, Debug)]
pub enum Target {
    /// Plain HTTP.
    Plain(SocketAddr),
    /// HTTPS with this client configuration (its certificate is the client's).
    Tls(SocketAddr, Arc<rustls::ClientConfig>, ServerName<'static>),
}

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// After this long.
    Time(Duration),
    /// After this many requests in all.
    Requests(u64),
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Requests answered with another status, or connections that failed.
    pub errors: u64,
    /// The first error seen, to say why.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Every answered request's latency, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl Outcome {
    /// Answered requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[i.min(self.latencies_us.len() - 1)]
    }
}

/// Runs `connections` keep-alive connections to `target`, each sending `request` (the whole
/// request's bytes) over and over until `until`, and expecting `status`.
pub async fn run(
    target: &Target,
    request: &[u8],
    status: u16,
    connections: usize,
    until: Until,
) -> Outcome {
    let request: Arc<[u8]> = Arc::from(request);
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = match until {
        Until::Time(d) => Some(start + d),
        Until::Requests(_) => None,
    };
    let budget = match until {
        Until::Requests(n) => n,
        Until::Time(_) => u64::MAX,
    };
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let target = target.clone();
        let request = Arc::clone(&request);
        let issued = Arc::clone(&issued);
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            if let Err(e) = connection(
                &target, &request, status, deadline, budget, &issued, &mut out,
            )
            .await
            {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
            out
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(o) => {
                total.ok += o.ok;
                total.errors += o.errors;
                if total.first_error.is_none() {
                    total.first_error = o.first_error;
                }
                total.latencies_us.extend(o.latencies_us);
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert(e.to_string());
            }
        }
    }
    total.elapsed = start.elapsed();
    total.latencies_us.sort_unstable();
    total
}

/// Opens a connection to `target`.
pub async fn connect(target: &Target) -> Result<Box<dyn Stream>, String> {
    match target {
        Target::Plain(addr) => {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            Ok(Box::new(tcp))
        }
        Target::Tls(addr, config, name) => {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            Ok(Box::new(tls))
        }
    }
}

/// A byte stream the generator can use.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connection(
    target: &Target,
    request: &[u8],
    status: u16,
    deadline: Option<Instant>,
    budget: u64,
    issued: &AtomicU64,
    out: &mut Outcome,
) -> Result<(), String> {
    let mut stream = connect(target).await?;
    let mut reader = Reader::default();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        if issued.fetch_add(1, Ordering::Relaxed) >= budget {
            return Ok(());
        }
        let sent = Instant::now();
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let answer = reader.response(&mut stream, |_| {}).await?;
        let us = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        if answer.status == status {
            out.ok += 1;
            out.latencies_us.push(us);
        } else {
            out.errors += 1;
            out.first_error
                .get_or_insert_with(|| format!("status {} (expected {status})", answer.status));
        }
        if answer.close {
            stream = connect(target).await?;
            reader = Reader::default();
        }
    }
}

/// A response's head and how much body it had.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The head, as text.
    pub head: String,
    /// Body bytes read.
    pub body_bytes: u64,
    /// Whether the server closes the connection after it.
    pub close: bool,
}

/// Reads responses from a stream, keeping bytes that arrive early.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// Reads one whole response; `body` sees each piece of the body.
    pub async fn response<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
        mut body: impl FnMut(&[u8]),
    ) -> Result<Answer, String> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill(stream).await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for line in head.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let mut body_bytes = 0;
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    self.fill(stream).await?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size =
                    u64::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| format!("bad chunk size {size_text:?}"))?;
                self.buf.drain(..line_end + 2);
                if size == 0 {
                    // Trailers (none expected) end with an empty line.
                    loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            self.buf.drain(..i + 2);
                            if i == 0 {
                                break;
                            }
                            continue;
                        }
                        self.fill(stream).await?;
                    }
                    break;
                }
                body_bytes += self.take(stream, size, &mut body).await?;
                while self.buf.len() < 2 {
                    self.fill(stream).await?;
                }
                self.buf.drain(..2);
            }
        } else if let Some(n) = length {
            body_bytes = self.take(stream, n, &mut body).await?;
        } else if close {
            loop {
                body(&self.buf);
                body_bytes += self.buf.len() as u64;
                self.buf.clear();
                if self.fill(stream).await.is_err() {
                    break;
                }
            }
        }
        Ok(Answer {
            status,
            head,
            body_bytes,
            close,
        })
    }

    async fn take<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
        n: u64,
        body: &mut impl FnMut(&[u8]),
    ) -> Result<u64, String> {
        let mut left = n;
        loop {
            let here = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            body(&self.buf[..here]);
            self.buf.drain(..here);
            left -= here as u64;
            if left == 0 {
                return Ok(n);
            }
            self.fill(stream).await?;
        }
    }

    async fn fill<S: AsyncRead + Unpin + ?Sized>(&mut self, stream: &mut S) -> Result<(), String> {
        let mut chunk = [0u8; 64 * 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".to_owned());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// CPU time (user + system) a process and its threads have used, in seconds, from
/// `/proc/PID/stat`; `None` when it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu(&stat)
}

fn stat_cpu(stat: &str) -> Option<f64> {
    // The command name may hold spaces: fields start after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
    let ticks = 100.0;
    Some((utime + stime) / ticks)
}

/// CPU seconds used by thread `tid` of process `pid`.
pub fn task_cpu_seconds(pid: u32, tid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat_cpu(&stat)
}

/// The process `pid` and its children (nginx's master and its workers).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let parent = std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 2..].to_owned();
                    rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok())
                });
            if parent == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids
}

/// CPU seconds used by all of `pids` (those still running).
pub fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| cpu_seconds(*p)).sum()
}
