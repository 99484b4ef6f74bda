//! Who may hold a connection, and how refused handshakes reach the log, so that peers who
//! cannot authenticate can neither exhaust the proxy's connections nor fill its disk.
//!
//! - Connections are capped in all and per source address (an IPv6 /64 counts as one
//!   source); a connection over a cap is closed at accept, before any TLS work.
//! - Refused handshakes (keys not in the roster) are summarised per source: the first from
//!   a source in a minute is recorded at once, the rest of that minute only counted, and one
//!   summary entry per minute lists the counts and distinct keys per source. Log growth is
//!   bounded whatever the flood (at most [`IMMEDIATE_PER_MINUTE`] + 1 entries a minute), and a
//!   flood from one source cannot hide another source's first refusal.
//! - A source refused more than [`BLOCK_AFTER_REFUSALS`] times in a minute has its new
//!   connections closed at accept for the rest of that minute.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bglass_core::keys::PublicKey;

/// How long a source's refusals are aggregated into one window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// First refusals recorded at once per minute, across all sources.
pub const IMMEDIATE_PER_MINUTE: usize = 60;
/// Refusals from one source in a window after which its connections are closed at accept.
pub const BLOCK_AFTER_REFUSALS: u64 = 100;
/// Sources tracked at once; refusals from further sources are counted together.
const MAX_SOURCES: usize = 1024;
/// Distinct keys named per source in a summary.
const KEYS_NAMED: usize = 8;
/// Sources named in a summary (the busiest).
const SOURCES_NAMED: usize = 32;

tokio::task_local! {
    /// The remote address of the connection whose TLS handshake is being polled: the
    /// client-certificate verifier runs inside that poll and has no other way to know it.
    pub static HANDSHAKE_PEER: SocketAddr;
}

/// The source a connection counts against: its IPv4 address, or its IPv6 /64.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// Why a connection was closed at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turned {
    /// The proxy holds its maximum number of connections.
    Total,
    /// The source holds its maximum number of connections.
    PerSource,
    /// The source sent too many refused handshakes this minute.
    Blocked,
}

impl Turned {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Total => "total_limit",
            Self::PerSource => "source_limit",
            Self::Blocked => "refusal_flood",
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    refusals: u64,
    keys: BTreeSet<String>,
    more_keys: u64,
    reasons: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct RefusalState {
    sources: HashMap<Option<IpAddr>, Window>,
    window_started: Option<Instant>,
    immediate: usize,
}

/// A refusal the caller must record at once, or nothing (it was aggregated).
#[derive(Debug)]
pub struct Immediate {
    /// The source.
    pub source: IpAddr,
    /// The key presented, if any.
    pub key: Option<PublicKey>,
    /// Why it was refused.
    pub why: String,
}

/// Connection counts and the refusal summary.
#[derive(Debug, Default)]
pub struct Admission {
    open: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
    refusals: Mutex<RefusalState>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    turned_total: AtomicU64,
    turned_per_source: AtomicU64,
    turned_blocked: AtomicU64,
    summarised: AtomicU64,
}

/// A held connection slot; released when dropped.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

impl Admission {
    /// Takes a slot for a connection from `addr`, or says why not.
    pub fn admit(
        self: &Arc<Self>,
        addr: SocketAddr,
        max_total: usize,
        max_per_source: usize,
    ) -> Result<Slot, Turned> {
        let source = source_of(addr.ip());
        {
            let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(until) = blocked.get(&source) {
                if Instant::now() < *until {
                    self.turned_blocked.fetch_add(1, Ordering::Relaxed);
                    return Err(Turned::Blocked);
                }
                blocked.remove(&source);
            }
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if self.total.load(Ordering::Relaxed) >= max_total {
            self.turned_total.fetch_add(1, Ordering::Relaxed);
            return Err(Turned::Total);
        }
        let n = open.entry(source).or_insert(0);
        if *n >= max_per_source {
            self.turned_per_source.fetch_add(1, Ordering::Relaxed);
            return Err(Turned::PerSource);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            admission: Arc::clone(self),
            source,
        })
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Connections closed at accept, by reason, and refusals only summarised.
    pub fn counts(&self) -> [(Turned, u64); 3] {
        [
            (Turned::Total, self.turned_total.load(Ordering::Relaxed)),
            (
                Turned::PerSource,
                self.turned_per_source.load(Ordering::Relaxed),
            ),
            (Turned::Blocked, self.turned_blocked.load(Ordering::Relaxed)),
        ]
    }

    /// Refused handshakes that were summarised rather than recorded one by one.
    pub fn summarised(&self) -> u64 {
        self.summarised.load(Ordering::Relaxed)
    }

    /// Notes a refused handshake from `peer` (unknown when the verifier ran outside a
    /// connection); returns it when it must be recorded at once.
    pub fn refused(
        &self,
        peer: Option<SocketAddr>,
        key: Option<PublicKey>,
        why: &str,
    ) -> Option<Immediate> {
        let now = Instant::now();
        let mut state = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .window_started
            .is_none_or(|s| now.duration_since(s) >= WINDOW)
        {
            state.window_started = Some(now);
            state.immediate = 0;
        }
        let source = peer.map(|p| source_of(p.ip()));
        let tracked = if state.sources.contains_key(&source) || state.sources.len() < MAX_SOURCES {
            source
        } else {
            None
        };
        let first = !state.sources.contains_key(&tracked);
        let window = state.sources.entry(tracked).or_default();
        window.started.get_or_insert(now);
        window.refusals += 1;
        *window.reasons.entry(why.to_owned()).or_default() += 1;
        if let Some(k) = key {
            let id = k.key_id().to_string();
            if window.keys.len() < KEYS_NAMED {
                window.keys.insert(id);
            } else if !window.keys.contains(&id) {
                window.more_keys += 1;
            }
        }
        let refusals = window.refusals;
        if let Some(src) = tracked
            && refusals > BLOCK_AFTER_REFUSALS
        {
            let until = window.started.unwrap_or(now) + WINDOW;
            self.blocked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(src, until);
        }
        if first && tracked.is_some() && state.immediate < IMMEDIATE_PER_MINUTE {
            state.immediate += 1;
            if let Some(w) = state.sources.get_mut(&tracked) {
                // Recorded on its own: the summary counts the others.
                w.refusals -= 1;
            }
            return tracked.map(|source| Immediate {
                source,
                key,
                why: why.to_owned(),
            });
        }
        self.summarised.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The summary of every source window older than [`WINDOW`] (removing them), or `None`
    /// when none of them holds an unrecorded refusal.
    pub fn due_summary(&self) -> Option<String> {
        let now = Instant::now();
        let mut state = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        let due: Vec<Option<IpAddr>> = state
            .sources
            .iter()
            .filter(|(_, w)| w.started.is_some_and(|s| now.duration_since(s) >= WINDOW))
            .map(|(k, _)| *k)
            .collect();
        let mut windows: Vec<(Option<IpAddr>, Window)> = due
            .into_iter()
            .filter_map(|k| state.sources.remove(&k).map(|w| (k, w)))
            .filter(|(_, w)| w.refusals > 0)
            .collect();
        drop(state);
        if windows.is_empty() {
            return None;
        }
        windows.sort_by_key(|w| std::cmp::Reverse(w.1.refusals));
        let total: u64 = windows.iter().map(|(_, w)| w.refusals).sum();
        let mut parts = Vec::new();
        for (source, w) in windows.iter().take(SOURCES_NAMED) {
            let who = source.map_or_else(|| "other sources".to_owned(), |s| s.to_string());
            let keys = if w.keys.is_empty() {
                "no key".to_owned()
            } else {
                let named: Vec<&str> = w.keys.iter().map(String::as_str).collect();
                let more = if w.more_keys > 0 {
                    format!(" and {} more", w.more_keys)
                } else {
                    String::new()
                };
                format!("keys {}{more}", named.join(", "))
            };
            let reasons: Vec<String> = w.reasons.iter().map(|(r, n)| format!("{n}× {r}")).collect();
            parts.push(format!(
                "{who}: {} more ({keys}; {})",
                w.refusals,
                reasons.join(", ")
            ));
        }
        if windows.len() > SOURCES_NAMED {
            let rest: u64 = windows[SOURCES_NAMED..]
                .iter()
                .map(|(_, w)| w.refusals)
                .sum();
            parts.push(format!(
                "{rest} more from {} other sources",
                windows.len() - SOURCES_NAMED
            ));
        }
        Some(format!(
            "TLS handshakes refused in the last minute, beyond those recorded one by one: {total} ({})",
            parts.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_hold_per_source_and_in_all_and_free_on_drop() {
        let a = Arc::new(Admission::default());
        let s1 = a.admit(addr("127.0.0.2:1"), 3, 2).unwrap();
        let _s2 = a.admit(addr("127.0.0.2:2"), 3, 2).unwrap();
        assert_eq!(
            a.admit(addr("127.0.0.2:3"), 3, 2).unwrap_err(),
            Turned::PerSource
        );
        let _s3 = a.admit(addr("127.0.0.1:1"), 3, 2).unwrap();
        assert_eq!(
            a.admit(addr("127.0.0.3:1"), 3, 2).unwrap_err(),
            Turned::Total
        );
        drop(s1);
        assert!(a.admit(addr("127.0.0.2:4"), 3, 2).is_ok());
        // An IPv6 /64 is one source.
        let b = Arc::new(Admission::default());
        let _x = b.admit(addr("[2001:db8::1]:1"), 10, 1).unwrap();
        assert!(b.admit(addr("[2001:db8::2]:1"), 10, 1).is_err());
        assert!(b.admit(addr("[2001:db8:0:1::2]:1"), 10, 1).is_ok());
    }

    #[test]
    fn a_flood_from_one_source_does_not_hide_another_and_is_blocked() {
        let a = Arc::new(Admission::default());
        let flood = addr("127.0.0.2:9");
        assert!(a.refused(Some(flood), None, "unknown key").is_some());
        for _ in 0..500 {
            assert!(a.refused(Some(flood), None, "unknown key").is_none());
        }
        // Another source's first refusal is still recorded at once.
        let other = a.refused(Some(addr("127.0.0.3:9")), None, "unknown key");
        assert_eq!(
            other.unwrap().source,
            "127.0.0.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(a.summarised(), 500);
        // The flooding source is closed at accept; the other is not.
        assert_eq!(a.admit(flood, 100, 100).unwrap_err(), Turned::Blocked);
        assert!(a.admit(addr("127.0.0.3:10"), 100, 100).is_ok());
        // Nothing is due before the window ends.
        assert!(a.due_summary().is_none());
    }
}
