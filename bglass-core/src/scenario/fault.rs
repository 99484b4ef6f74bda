//! The faults a scenario puts on its world's named links: the links, the kinds of fault and
//! their parameters, and the bandwidth notation (`64KiB/s`).

use std::fmt;

use crate::duration::Millis;
use crate::id::{ProxyId, ServiceName};
use crate::source::Position;

/// A named link of the world: where a fault acts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// Responders to one proxy: `responder->proxy:NAME`.
    ResponderToProxy(ProxyId),
    /// Every proxy to one tool: `proxy->service:NAME`.
    ProxyToService(ServiceName),
    /// Proxies to the notification receiver: `proxy->notify`.
    ProxyToNotify,
}

impl Link {
    /// Whether this is `proxy->service:NAME` for `service`.
    pub fn is_to_service(&self, service: &str) -> bool {
        matches!(self, Self::ProxyToService(s) if s.as_str() == service)
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ResponderToProxy(p) => write!(f, "responder->proxy:{p}"),
            Self::ProxyToService(s) => write!(f, "proxy->service:{s}"),
            Self::ProxyToNotify => f.write_str("proxy->notify"),
        }
    }
}

/// A string is not one of the named links.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "link {0:?} is not a named link: write responder->proxy:NAME, proxy->service:NAME or proxy->notify"
)]
pub struct LinkError(pub String);

impl std::str::FromStr for Link {
    type Err = LinkError;
    fn from_str(s: &str) -> Result<Self, LinkError> {
        let bad = || LinkError(s.chars().take(60).collect());
        if s == "proxy->notify" {
            return Ok(Self::ProxyToNotify);
        }
        if let Some(p) = s.strip_prefix("responder->proxy:") {
            return ProxyId::new(p)
                .map(Self::ResponderToProxy)
                .map_err(|_| bad());
        }
        if let Some(name) = s.strip_prefix("proxy->service:") {
            return ServiceName::new(name)
                .map(Self::ProxyToService)
                .map_err(|_| bad());
        }
        Err(bad())
    }
}

impl serde::Serialize for Link {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a fault does to the connections crossing its link while it is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultKind {
    /// The far end is gone: new connections are refused (reset at once), open ones cut.
    Down,
    /// Everything sent is silently dropped, both ways, on new and open connections.
    Blackhole,
    /// Every chunk is delayed by `latency` ± `jitter`, each way; order is kept.
    Latency {
        /// Added delay, one way.
        latency: Millis,
        /// Uniform spread around it.
        jitter: Millis,
    },
    /// The link carries at most `bytes_per_sec` each way, shared by its connections.
    Bandwidth {
        /// Bytes per second.
        bytes_per_sec: u64,
    },
    /// Open connections are reset; new ones are reset at their first bytes.
    Reset,
    /// New connections are accepted but never reach the far end (the client times out);
    /// open ones carry on.
    Timeout,
    /// A side's close reaches the other side only after `hold`.
    SlowClose {
        /// The delay.
        hold: Millis,
    },
}

impl FaultKind {
    /// The kind's name as written.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Blackhole => "blackhole",
            Self::Latency { .. } => "latency",
            Self::Bandwidth { .. } => "bandwidth",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::SlowClose { .. } => "slow_close",
        }
    }

    /// Whether the kind slows the link down rather than breaking it (latency, bandwidth,
    /// slow close).
    pub fn degrades(&self) -> bool {
        matches!(
            self,
            Self::Latency { .. } | Self::Bandwidth { .. } | Self::SlowClose { .. }
        )
    }

    /// The kind with its parameters, for people (`latency 300ms ±20ms`).
    pub fn describe(&self) -> String {
        match self {
            Self::Latency { latency, jitter } if jitter.as_ms() > 0 => {
                format!("latency {latency} ±{jitter}")
            }
            Self::Latency { latency, .. } => format!("latency {latency}"),
            Self::Bandwidth { bytes_per_sec } => format!("bandwidth {}", rate_text(*bytes_per_sec)),
            Self::SlowClose { hold } => format!("slow_close {hold}"),
            other => other.name().to_owned(),
        }
    }
}

/// The kinds accepted in `kind = …`.
pub const FAULT_KINDS: [&str; 7] = [
    "down",
    "blackhole",
    "latency",
    "bandwidth",
    "reset",
    "timeout",
    "slow_close",
];

/// One timed fault.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    /// The link it acts on.
    pub link: Link,
    /// What it does.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// When it starts, from the drill's start.
    pub start: Millis,
    /// When it ends (the drill's end when not written).
    pub end: Millis,
    /// Why, for the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where it was written.
    #[serde(skip)]
    pub at: Option<Position>,
}

impl Fault {
    /// Whether the fault acts at `offset` from the drill's start.
    pub fn active_at(&self, offset_ms: u64) -> bool {
        self.start.as_ms() <= offset_ms && offset_ms < self.end.as_ms()
    }

    /// The link and the kind, for people (`proxy->service:logs down`).
    pub fn label(&self) -> String {
        format!("{} {}", self.link, self.kind.describe())
    }
}

/// Parses `64KiB/s`, `1MiB/s`, `500KB/s`, `1000B/s` into bytes per second.
pub fn parse_rate(s: &str) -> Option<u64> {
    let body = s.strip_suffix("/s")?;
    let digits: String = body.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let unit = &body[digits.len()..];
    let scale: u64 = match unit {
        "B" => 1,
        "KB" => 1_000,
        "KiB" => 1_024,
        "MB" => 1_000_000,
        "MiB" => 1_048_576,
        "GB" => 1_000_000_000,
        "GiB" => 1_073_741_824,
        _ => return None,
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(scale).filter(|v| *v > 0)
}

/// Bytes per second for people (`1MiB/s`).
pub fn rate_text(bytes_per_sec: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes_per_sec >= size && bytes_per_sec.is_multiple_of(size) {
            return format!("{}{unit}/s", bytes_per_sec / size);
        }
    }
    format!("{bytes_per_sec}B/s")
}
