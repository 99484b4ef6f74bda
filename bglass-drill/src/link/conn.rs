//! One link's connections: the accept loop, how a new connection is admitted (or reset,
//! or held) under the active faults, and the two pumps of each connection, each a reader
//! and a writer joined by a delay line.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::effects::{Pacer, XorShift, piece_len};
use super::{ACCEPT_BACKOFF, CHUNK, CONNECT_TIMEOUT, QUEUE, Shared, State};

pub(super) async fn accept_loop(
    listener: TcpListener,
    mut rx: watch::Receiver<State>,
    shared: Arc<Shared>,
) {
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
pub(super) async fn until(rx: &mut watch::Receiver<State>, done: impl Fn(&State) -> bool) {
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
