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

mod conn;
mod effects;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bglass_core::scenario::FaultKind;
use tokio::net::TcpListener;
use tokio::sync::watch;

use conn::accept_loop;
use effects::{Effects, Pacer, seed_of};

/// How long the upstream has to accept a connection before the client is reset.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest chunk read at once, per direction.
pub(crate) const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction: with latency, at most `QUEUE × CHUNK` bytes are held.
pub(crate) const QUEUE: usize = 8;
/// Pause after a failed accept (out of file descriptors, say) before trying again.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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
pub(crate) struct Shared {
    upstream: SocketAddr,
    accepted: AtomicU64,
    /// Bandwidth per direction: client to upstream, upstream to client.
    pacers: [Pacer; 2],
    seed: u64,
}

/// The link's state as its connections see it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct State {
    effects: Effects,
    /// Bumped each time `down` or `reset` switches on: connections accepted under an older
    /// epoch are cut.
    cut_epoch: u64,
    /// Set by [`FaultLink::shutdown`].
    closed: bool,
}
