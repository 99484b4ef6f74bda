//! What a link's active faults do, combined ([`Effects`]), and the pieces that carry them
//! out without regard to sockets: the bandwidth pacer, and the seeded jitter generator.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bglass_core::scenario::FaultKind;
use tokio::time::Instant;

use super::CHUNK;

/// What a set of faults does, combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Effects {
    pub(super) down: bool,
    pub(super) blackhole: bool,
    pub(super) reset: bool,
    pub(super) timeout: bool,
    /// Added one-way delay, milliseconds.
    pub(super) latency_ms: u64,
    /// Uniform spread around it, milliseconds.
    pub(super) jitter_ms: u64,
    /// Bytes per second each way.
    pub(super) bandwidth: Option<u64>,
    /// How long a close is held back.
    pub(super) slow_close: Option<Duration>,
}

impl Effects {
    pub(super) fn of(faults: &[FaultKind]) -> Self {
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
    pub(super) fn delay(&self, rng: &mut XorShift) -> Duration {
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
pub(super) struct Pacer(Mutex<Booking>);

#[derive(Debug, Default)]
struct Booking {
    rate: u64,
    free_at: Option<Instant>,
}

impl Pacer {
    /// Books `bytes` at `rate` bytes per second; returns when they have gone through. A new
    /// rate forgets the bookings made at the old one.
    pub(super) fn book(&self, bytes: usize, rate: u64) -> Instant {
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
pub(super) fn piece_len(rate: u64) -> usize {
    // Clamped to at most CHUNK (16 KiB) first, so the conversion loses nothing.
    (rate / 10).clamp(256, CHUNK as u64) as usize
}

/// FNV-1a of the link's name: the seed of its jitter.
pub(super) fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// A small, fast generator for jitter (not for anything secret).
#[derive(Debug)]
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: u64) -> Self {
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
