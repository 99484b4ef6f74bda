//! A fault-injecting TCP link for drills: a loopback listener that forwards each connection
//! to one upstream address and applies the link's active faults ([`FaultKind`]) to it, so
//! that the simulator can put the named links of its world (`responder->proxy:NAME`, …) into
//! the states a scenario asks for.
//!
//! Each accepted connection is one task. Each direction of it is a reader and a writer joined
//! by a short queue of chunks stamped with their arrival time (a delay line), so latency
//! delays every chunk by its own amount without stopping the reads behind it, and the queue
//! bounds what a connection holds in flight, like a TCP window. Read buffers are taken only
//! when a socket is readable, so idle connections cost a task and two sockets.
//!
//! How the kinds act:
//!
//! - `down`: new connections are reset as soon as they are accepted; open ones (established
//!   or still waiting to reach the far end) are reset on both sides when it switches on.
//! - `blackhole`: nothing moves either way, on open and new connections: the link stops
//!   reading and writing (as TCP does when its segments are lost), so what was sent is
//!   delivered if the blackhole ends before someone gives up. New connections are accepted
//!   and reach the far end only once it ends.
//! - `latency`: every chunk (and a close) is delivered `latency ± jitter` after it was read,
//!   each way, never before the chunk ahead of it. Several latency faults add up.
//! - `bandwidth`: each direction of the link is paced at the rate, shared by all its
//!   connections in turn (no burst allowance). Of several, the lowest rate acts.
//! - `reset`: open connections are reset on both sides when it switches on; new ones are
//!   reset when their first bytes arrive (one that stays quiet until it ends goes through).
//! - `timeout`: new connections are accepted and never reach the far end, even after it ends
//!   (what they send is read and dropped, so their close is seen); open ones carry on.
//! - `slow_close`: a side's close reaches the other side `hold` after it happened (after
//!   any latency). Of several, the longest hold acts.
//!
//! A fault that switches on applies to data read from then on; data already delayed keeps
//! its delay. Jitter comes from a xorshift generator seeded from the link's name and the
//! connection's number, so a drill's delays do not depend on anything else.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bglass_core::scenario::FaultKind;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long the upstream has to accept a connection before the client is reset.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest chunk read at once, per direction.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction: with latency, at most `QUEUE × CHUNK` bytes are held.
const QUEUE: usize = 8;
/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A loopback TCP link to one upstream address, with faults switched on and off by the drill.
///
/// Dropping the last handle has the effect of [`FaultLink::shutdown`].
#[derive(Debug)]
pub struct FaultLink {
    name: String,
    addr: SocketAddr,
    state: watch::Sender<State>,
    shared: Arc<Shared>,
}

impl FaultLink {
    /// Binds 127.0.0.1:0 and forwards each accepted connection to `upstream`, applying the
    /// active faults. `upstream` must be a loopback address.
    pub async fn bind(name: String, upstream: SocketAddr) -> io::Result<Arc<FaultLink>> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("link {name}: upstream {upstream} is not a loopback address"),
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (state, rx) = watch::channel(State::default());
        let shared = Arc::new(Shared {
            upstream,
            accepted: AtomicU64::new(0),
            pacers: [Pacer::default(), Pacer::default()],
            seed: seed_of(&name),
        });
        tokio::spawn(accept_loop(listener, rx, Arc::clone(&shared)));
        Ok(Arc::new(FaultLink {
            name,
            addr,
            state,
            shared,
        }))
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The link's name.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "for the drill report (in progress)")
    )]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the set of active faults (empty = healthy). Several may be active at once;
    /// open connections are treated as each kind says (see the module documentation).
    pub fn set_faults(&self, faults: Vec<FaultKind>) {
        let next = Effects::of(&faults);
        self.state.send_modify(|s| {
            if (next.down && !s.effects.down) || (next.reset && !s.effects.reset) {
                s.cut_epoch += 1;
            }
            s.effects = next;
        });
    }

    /// Connections accepted so far.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "for the drill report (in progress)")
    )]
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Stops accepting and resets every connection (used at the end of a drill).
    pub fn shutdown(&self) {
        self.state.send_modify(|s| s.closed = true);
    }
}

/// What the accept loop and the connections share.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    accepted: AtomicU64,
    /// Bandwidth per direction: client to upstream, upstream to client.
    pacers: [Pacer; 2],
    seed: u64,
}

/// The link's state as its connections see it.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    effects: Effects,
    /// Bumped each time `down` or `reset` switches on: connections accepted under an older
    /// epoch are cut.
    cut_epoch: u64,
    /// Set by [`FaultLink::shutdown`].
    closed: bool,
}

/// What a set of faults does, combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Effects {
    down: bool,
    blackhole: bool,
    reset: bool,
    timeout: bool,
    /// Added one-way delay, milliseconds.
    latency_ms: u64,
    /// Uniform spread around it, milliseconds.
    jitter_ms: u64,
    /// Bytes per second each way.
    bandwidth: Option<u64>,
    /// How long a close is held back.
    slow_close: Option<Duration>,
}

impl Effects {
    fn of(faults: &[FaultKind]) -> Self {
        let mut e = Self::default();
        for fault in faults {
            match *fault {
                FaultKind::Down => e.down = true,
                FaultKind::Blackhole => e.blackhole = true,
                FaultKind::Reset => e.reset = true,
                FaultKind::Timeout => e.timeout = true,
                FaultKind::Latency { latency, jitter } => {
                    e.latency_ms = e.latency_ms.saturating_add(latency.as_ms());
                    e.jitter_ms = e.jitter_ms.saturating_add(jitter.as_ms());
                }
                FaultKind::Bandwidth { bytes_per_sec } => {
                    let rate = bytes_per_sec.max(1);
                    e.bandwidth = Some(e.bandwidth.map_or(rate, |r| r.min(rate)));
                }
                FaultKind::SlowClose { hold } => {
                    let hold = hold.to_std();
                    e.slow_close = Some(e.slow_close.map_or(hold, |h| h.max(hold)));
                }
            }
        }
        e
    }

    /// One chunk's delay.
    fn delay(&self, rng: &mut XorShift) -> Duration {
        if self.jitter_ms == 0 {
            return Duration::from_millis(self.latency_ms);
        }
        let spread = rng.below(self.jitter_ms.saturating_mul(2).saturating_add(1));
        Duration::from_millis(
            self.latency_ms
                .saturating_add(spread)
                .saturating_sub(self.jitter_ms),
        )
    }
}

/// Paces one direction of a link: each piece of data books the link for its transmission
/// time, after the pieces booked before it.
#[derive(Debug, Default)]
struct Pacer(Mutex<Booking>);

#[derive(Debug, Default)]
struct Booking {
    rate: u64,
    free_at: Option<Instant>,
}

impl Pacer {
    /// Books `bytes` at `rate` bytes per second; returns when they have gone through. A new
    /// rate forgets the bookings made at the old one.
    fn book(&self, bytes: usize, rate: u64) -> Instant {
        let mut booking = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let start = match booking.free_at {
            Some(at) if booking.rate == rate => at.max(now),
            _ => now,
        };
        let done = start + Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        booking.rate = rate;
        booking.free_at = Some(done);
        done
    }
}

/// The largest piece booked at once: a tenth of a second's worth, within bounds.
fn piece_len(rate: u64) -> usize {
    usize::try_from(rate / 10).map_or(CHUNK, |n| n.clamp(256, CHUNK))
}

async fn accept_loop(listener: TcpListener, mut rx: watch::Receiver<State>, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = until(&mut rx, |s| s.closed) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let index = shared.accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(stream, index, rx.clone(), Arc::clone(&shared)));
            }
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}

/// Returns once `done` holds for the state, or the link is gone.
async fn until(rx: &mut watch::Receiver<State>, done: impl Fn(&State) -> bool) {
    loop {
        if done(&rx.borrow_and_update()) {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// What becomes of a new connection.
enum Admission {
    /// It reached the far end.
    Forward(TcpStream),
    /// Reset it.
    Reset,
    /// The client went away; close it.
    Close,
}

async fn serve(client: TcpStream, index: u64, mut rx: watch::Receiver<State>, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let epoch = rx.borrow_and_update().cut_epoch;
    let upstream = match admit(&client, epoch, &mut rx, shared.upstream).await {
        Admission::Forward(upstream) => upstream,
        Admission::Reset => {
            let _ = client.set_zero_linger();
            return;
        }
        Admission::Close => return,
    };
    let _ = upstream.set_nodelay(true);
    let (client_rd, mut client_wr) = client.into_split();
    let (upstream_rd, mut upstream_wr) = upstream.into_split();
    let seed = shared.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let finished = {
        let out = pump(
            &client_rd,
            &mut upstream_wr,
            &shared.pacers[0],
            rx.clone(),
            seed,
        );
        let back = pump(
            &upstream_rd,
            &mut client_wr,
            &shared.pacers[1],
            rx.clone(),
            seed.wrapping_add(1),
        );
        tokio::select! {
            r = async { tokio::try_join!(out, back) } => r.is_ok(),
            () = until(&mut rx, |s| s.closed || s.cut_epoch != epoch) => false,
        }
    };
    if !finished {
        abort(client_rd, client_wr);
        abort(upstream_rd, upstream_wr);
    }
}

/// Closes the socket with a reset.
fn abort(rd: OwnedReadHalf, wr: OwnedWriteHalf) {
    let _ = rd.as_ref().set_zero_linger();
    // Dropping the write half would send FIN first.
    wr.forget();
    drop(rd);
}

/// Holds a new connection as the active faults say, then connects it to the far end.
async fn admit(
    client: &TcpStream,
    epoch: u64,
    rx: &mut watch::Receiver<State>,
    upstream: SocketAddr,
) -> Admission {
    loop {
        let state = *rx.borrow_and_update();
        if state.closed || state.effects.down || state.cut_epoch != epoch {
            return Admission::Reset;
        }
        if state.effects.reset {
            let mut first = [0u8; 1];
            tokio::select! {
                r = client.peek(&mut first) => match r {
                    Ok(0) | Err(_) => return Admission::Close,
                    Ok(_) if rx.borrow().effects.reset => return Admission::Reset,
                    Ok(_) => continue,
                },
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Admission::Reset;
                    }
                    continue;
                }
            }
        }
        if state.effects.timeout {
            return hold(client, epoch, rx).await;
        }
        if state.effects.blackhole {
            if rx.changed().await.is_err() {
                return Admission::Reset;
            }
            continue;
        }
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream));
        return tokio::select! {
            r = connect => match r {
                Ok(Ok(stream)) => Admission::Forward(stream),
                Ok(Err(_)) | Err(_) => Admission::Reset,
            },
            () = until(rx, |s| s.closed || s.cut_epoch != epoch) => Admission::Reset,
        };
    }
}

/// A connection that never reaches the far end: what it sends is dropped until it closes.
async fn hold(client: &TcpStream, epoch: u64, rx: &mut watch::Receiver<State>) -> Admission {
    loop {
        tokio::select! {
            r = client.readable() => {
                if r.is_err() {
                    return Admission::Close;
                }
                let mut sink = [0u8; 512];
                match client.try_read(&mut sink) {
                    Ok(0) => return Admission::Close,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return Admission::Close,
                }
            }
            () = until(rx, |s| s.closed || s.cut_epoch != epoch) => return Admission::Reset,
        }
    }
}

/// A chunk read from one side, on its way to the other.
#[derive(Debug)]
struct Chunk {
    arrival: Instant,
    /// `None` is the end of the stream (the side's close).
    data: Option<Bytes>,
}

/// One direction of a connection, until the close has been passed on.
async fn pump(
    rd: &OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    pacer: &Pacer,
    rx: watch::Receiver<State>,
    seed: u64,
) -> io::Result<()> {
    let (tx, queue) = mpsc::channel(QUEUE);
    tokio::try_join!(
        read_side(rd, tx, rx.clone()),
        write_side(wr, queue, pacer, rx, seed)
    )?;
    Ok(())
}

async fn read_side(
    rd: &OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
    mut rx: watch::Receiver<State>,
) -> io::Result<()> {
    loop {
        flowing(&mut rx).await?;
        rd.readable().await?;
        if rx.borrow().effects.blackhole {
            continue;
        }
        let mut buf = BytesMut::with_capacity(CHUNK);
        let data = match rd.try_read_buf(&mut buf) {
            Ok(0) => None,
            // Keep small chunks small: the buffer is freed, not held by the queue.
            Ok(n) if n < CHUNK / 4 => Some(Bytes::copy_from_slice(&buf)),
            Ok(_) => Some(buf.freeze()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let end = data.is_none();
        let chunk = Chunk {
            arrival: Instant::now(),
            data,
        };
        // A send fails only once the writer has failed, and its error ends the connection.
        if tx.send(chunk).await.is_err() || end {
            return Ok(());
        }
    }
}

async fn write_side(
    wr: &mut OwnedWriteHalf,
    mut queue: mpsc::Receiver<Chunk>,
    pacer: &Pacer,
    mut rx: watch::Receiver<State>,
    seed: u64,
) -> io::Result<()> {
    let mut rng = XorShift::new(seed);
    let mut previous = Instant::now();
    while let Some(chunk) = queue.recv().await {
        let effects = rx.borrow().effects;
        let mut due = chunk.arrival + effects.delay(&mut rng);
        if chunk.data.is_none() {
            due += effects.slow_close.unwrap_or_default();
        }
        // Never overtake the chunk ahead.
        due = due.max(previous);
        previous = due;
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        flowing(&mut rx).await?;
        match chunk.data {
            Some(data) => send(wr, data, pacer, &mut rx).await?,
            None => return wr.shutdown().await,
        }
    }
    Ok(())
}

/// Writes `data`, paced while a bandwidth limit is active.
async fn send(
    wr: &mut OwnedWriteHalf,
    mut data: Bytes,
    pacer: &Pacer,
    rx: &mut watch::Receiver<State>,
) -> io::Result<()> {
    while !data.is_empty() {
        let Some(rate) = rx.borrow_and_update().effects.bandwidth else {
            return wr.write_all(&data).await;
        };
        let piece = data.len().min(piece_len(rate));
        let done = pacer.book(piece, rate);
        // A changed limit applies at once, to the piece waiting too.
        let paced = tokio::select! {
            () = tokio::time::sleep_until(done) => true,
            () = rate_change(rx, rate) => false,
        };
        if paced {
            flowing(rx).await?;
            wr.write_all(&data.split_to(piece)).await?;
        }
    }
    Ok(())
}

/// Returns when the bandwidth limit is no longer `rate`; never if the link is gone (the
/// connection is being cut).
async fn rate_change(rx: &mut watch::Receiver<State>, rate: u64) {
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if rx.borrow_and_update().effects.bandwidth != Some(rate) {
            return;
        }
    }
}

/// Waits while the link is blackholed; fails once it is shut down.
async fn flowing(rx: &mut watch::Receiver<State>) -> io::Result<()> {
    let gone = || io::Error::new(io::ErrorKind::ConnectionAborted, "link shut down");
    loop {
        let state = *rx.borrow_and_update();
        if state.closed {
            return Err(gone());
        }
        if !state.effects.blackhole {
            return Ok(());
        }
        if rx.changed().await.is_err() {
            return Err(gone());
        }
    }
}

/// FNV-1a of the link's name: the seed of its jitter.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// A small, fast generator for jitter (not for anything secret).
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // splitmix64 spreads nearby seeds apart; xorshift needs a non-zero state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (up to a negligible bias); `n` must not be zero.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use bglass_core::scenario::Millis;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// What the test upstream does with a connection.
    #[derive(Clone, Copy)]
    enum Upstream {
        /// Echoes until the client closes, then closes.
        Echo,
        /// Closes at once.
        Close,
    }

    /// A loopback upstream; returns its address and how many connections it accepted.
    async fn upstream(mode: Upstream) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepts);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                if let Upstream::Echo = mode {
                    tokio::spawn(async move {
                        let (mut r, mut w) = stream.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            }
        });
        (addr, accepts)
    }

    async fn link(name: &str, mode: Upstream) -> (Arc<FaultLink>, Arc<AtomicUsize>) {
        let (addr, accepts) = upstream(mode).await;
        (
            FaultLink::bind(name.to_owned(), addr).await.unwrap(),
            accepts,
        )
    }

    fn ms(n: u64) -> Millis {
        Millis::from_ms(n)
    }

    async fn connect(link: &FaultLink) -> TcpStream {
        let stream = TcpStream::connect(link.addr()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) {
        stream.write_all(message).await.unwrap();
        let mut back = vec![0; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
            .await
            .expect("echo within 5 s")
            .unwrap();
        assert_eq!(back, message);
    }

    /// Nothing arrives for 300 ms.
    async fn assert_silent(stream: &mut TcpStream) {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
        assert!(read.is_err(), "expected silence, got {read:?}");
    }

    /// The connection ends (reset, or closed if `reset_only` is false) within a second.
    async fn assert_cut(stream: &mut TcpStream, reset_only: bool) {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
            .await
            .expect("cut within 1 s");
        match read {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(0) if !reset_only => {}
            other => panic!("expected a reset, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn healthy_link_carries_bytes_both_ways_and_closes() {
        let (link, accepts) = link("responder->proxy:a", Upstream::Echo).await;
        assert_eq!(link.name(), "responder->proxy:a");
        assert!(link.addr().ip().is_loopback());
        let mut stream = connect(&link).await;
        round_trip(&mut stream, b"hello").await;

        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = stream.into_split();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        assert_eq!(back, payload);
        assert_eq!(link.connections(), 1);
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn non_loopback_upstream_is_refused() {
        let err = FaultLink::bind("x".to_owned(), "192.0.2.1:80".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn latency_delays_each_way() {
        let (link, _) = link("latency", Upstream::Echo).await;
        link.set_faults(vec![FaultKind::Latency {
            latency: ms(200),
            jitter: ms(0),
        }]);
        let mut stream = connect(&link).await;
        let start = Instant::now();
        round_trip(&mut stream, b"ping").await;
        let rtt = start.elapsed();
        assert!(rtt >= Duration::from_millis(380), "{rtt:?}");
        assert!(rtt < Duration::from_secs(5), "{rtt:?}");
    }

    #[tokio::test]
    async fn jitter_keeps_order() {
        let (link, _) = link("jitter", Upstream::Echo).await;
        link.set_faults(vec![FaultKind::Latency {
            latency: ms(30),
            jitter: ms(25),
        }]);
        let stream = connect(&link).await;
        let (mut r, mut w) = stream.into_split();
        let writer = tokio::spawn(async move {
            for i in 0..40u8 {
                w.write_all(&[i; 3]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let mut back = vec![0; 120];
        tokio::time::timeout(Duration::from_secs(5), r.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        let expected: Vec<u8> = (0..40u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(back, expected);
    }

    #[tokio::test]
    async fn bandwidth_limits_each_way() {
        let (link, _) = link("bandwidth", Upstream::Echo).await;
        link.set_faults(vec![FaultKind::Bandwidth {
            bytes_per_sec: 64 * 1024,
        }]);
        let stream = connect(&link).await;
        let start = Instant::now();
        let (mut r, mut w) = stream.into_split();
        let writer = tokio::spawn(async move { w.write_all(&[7; 128 * 1024]).await.unwrap() });
        let mut back = vec![0; 128 * 1024];
        tokio::time::timeout(Duration::from_secs(8), r.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1500), "{took:?}");
        assert!(took < Duration::from_secs(6), "{took:?}");
    }

    #[tokio::test]
    async fn bandwidth_is_shared_by_the_connections() {
        let (link, _) = link("shared", Upstream::Echo).await;
        link.set_faults(vec![FaultKind::Bandwidth {
            bytes_per_sec: 64 * 1024,
        }]);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let mut stream = connect(&link).await;
            tasks.push(tokio::spawn(async move {
                round_trip(&mut stream, &[1; 64 * 1024]).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Alone, each would take about a second.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1500), "{took:?}");
        assert!(took < Duration::from_secs(6), "{took:?}");
    }

    #[tokio::test]
    async fn down_refuses_new_connections_and_cuts_open_ones() {
        let (link, accepts) = link("down", Upstream::Echo).await;
        let mut open = connect(&link).await;
        round_trip(&mut open, b"before").await;
        link.set_faults(vec![FaultKind::Down]);
        assert_cut(&mut open, false).await;

        match TcpStream::connect(link.addr()).await {
            Ok(mut fresh) => assert_cut(&mut fresh, false).await,
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
        }
        assert_eq!(accepts.load(Ordering::SeqCst), 1);

        link.set_faults(Vec::new());
        let mut after = connect(&link).await;
        round_trip(&mut after, b"after").await;
    }

    #[tokio::test]
    async fn blackhole_stalls_both_ways_until_cleared() {
        let (link, _) = link("blackhole", Upstream::Echo).await;
        let mut open = connect(&link).await;
        round_trip(&mut open, b"before").await;
        link.set_faults(vec![FaultKind::Blackhole]);
        open.write_all(b"held").await.unwrap();
        assert_silent(&mut open).await;
        let mut fresh = connect(&link).await;
        fresh.write_all(b"fresh").await.unwrap();
        assert_silent(&mut fresh).await;

        link.set_faults(Vec::new());
        let mut back = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), open.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&back, b"held");
        let mut back = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(2), fresh.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&back, b"fresh");
        let mut after = connect(&link).await;
        round_trip(&mut after, b"after").await;
    }

    #[tokio::test]
    async fn reset_resets_open_connections_and_new_ones_at_their_first_bytes() {
        let (link, _) = link("reset", Upstream::Echo).await;
        let mut open = connect(&link).await;
        round_trip(&mut open, b"before").await;
        link.set_faults(vec![FaultKind::Reset]);
        assert_cut(&mut open, true).await;

        let mut fresh = connect(&link).await;
        fresh.write_all(b"first").await.unwrap();
        assert_cut(&mut fresh, true).await;
    }

    #[tokio::test]
    async fn timeout_never_reaches_the_far_end_and_open_ones_carry_on() {
        let (link, accepts) = link("timeout", Upstream::Echo).await;
        let mut open = connect(&link).await;
        round_trip(&mut open, b"before").await;
        link.set_faults(vec![FaultKind::Timeout]);

        let mut fresh = connect(&link).await;
        fresh.write_all(b"hello").await.unwrap();
        assert_silent(&mut fresh).await;
        round_trip(&mut open, b"still").await;
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
        assert_eq!(link.connections(), 2);

        // It stays unconnected after the fault ends.
        link.set_faults(Vec::new());
        assert_silent(&mut fresh).await;
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn slow_close_holds_back_the_close() {
        let (link, _) = link("slow-close", Upstream::Close).await;
        let mut buf = [0u8; 8];

        let start = Instant::now();
        let mut quick = connect(&link).await;
        assert_eq!(quick.read(&mut buf).await.unwrap(), 0);
        assert!(start.elapsed() < Duration::from_millis(250));

        link.set_faults(vec![FaultKind::SlowClose { hold: ms(300) }]);
        let start = Instant::now();
        let mut slow = connect(&link).await;
        let read = tokio::time::timeout(Duration::from_secs(3), slow.read(&mut buf)).await;
        assert_eq!(read.unwrap().unwrap(), 0);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }

    #[tokio::test]
    async fn shutdown_resets_open_connections_and_stops_accepting() {
        let (link, _) = link("shutdown", Upstream::Echo).await;
        let mut open = connect(&link).await;
        round_trip(&mut open, b"before").await;
        link.shutdown();
        assert_cut(&mut open, true).await;
        for _ in 0..50 {
            if TcpStream::connect(link.addr()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("still accepting after shutdown");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_connections_under_latency_run_side_by_side() {
        let (link, _) = link("many", Upstream::Echo).await;
        link.set_faults(vec![FaultKind::Latency {
            latency: ms(50),
            jitter: ms(10),
        }]);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let mut stream = connect(&link).await;
            tasks.push(tokio::spawn(async move {
                round_trip(&mut stream, &i.to_be_bytes()).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(link.connections(), 200);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn faults_combine() {
        let effects = Effects::of(&[
            FaultKind::Latency {
                latency: ms(100),
                jitter: ms(10),
            },
            FaultKind::Latency {
                latency: ms(50),
                jitter: ms(0),
            },
            FaultKind::Bandwidth {
                bytes_per_sec: 1000,
            },
            FaultKind::Bandwidth { bytes_per_sec: 500 },
            FaultKind::SlowClose { hold: ms(20) },
            FaultKind::SlowClose { hold: ms(70) },
        ]);
        assert_eq!(effects.latency_ms, 150);
        assert_eq!(effects.jitter_ms, 10);
        assert_eq!(effects.bandwidth, Some(500));
        assert_eq!(effects.slow_close, Some(Duration::from_millis(70)));
        assert!(!effects.down && !effects.blackhole && !effects.reset && !effects.timeout);

        let mut rng = XorShift::new(seed_of("x"));
        for _ in 0..1000 {
            let d = effects.delay(&mut rng);
            assert!((140..=160).contains(&d.as_millis()), "{d:?}");
        }
    }

    #[tokio::test]
    async fn down_or_reset_switching_on_bumps_the_cut_epoch() {
        let (link, _) = link("epoch", Upstream::Echo).await;
        let epoch = || link.state.borrow().cut_epoch;
        link.set_faults(vec![FaultKind::Down]);
        assert_eq!(epoch(), 1);
        link.set_faults(vec![FaultKind::Down, FaultKind::Blackhole]);
        assert_eq!(epoch(), 1);
        link.set_faults(vec![FaultKind::Reset, FaultKind::Down]);
        assert_eq!(epoch(), 2);
        link.set_faults(Vec::new());
        link.set_faults(vec![FaultKind::Down]);
        assert_eq!(epoch(), 3);
    }
}
