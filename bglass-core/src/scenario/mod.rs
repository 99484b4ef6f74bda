//! Drill scenarios (`drills/*.toml`, DESIGN §10): which production dependencies are down,
//! timed network faults on named links, the participants, and what must hold at the end.
//!
//! Parsed like the catalog: size and line limits before parsing, unknown fields rejected,
//! every value validated, every error located (`file:line:column: rule`). References to the
//! catalog (services) and to the declared production dependencies are checked by
//! [`Scenario::check`] once those files are loaded, with the same locations.

pub mod production;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::catalog::Catalog;
use crate::id::ServiceName;
use crate::source::{Located, Position, Source, SourceLimits, SourceProblem};

pub use crate::duration::{Millis, MillisError};
pub use production::{Dependency, Production};

/// The scenario format version this code reads.
pub const SCENARIO_VERSION: i64 = 1;
/// Size and line limits checked before parsing.
pub const SCENARIO_LIMITS: SourceLimits = SourceLimits {
    max_bytes: 64 * 1024,
    max_line_bytes: 1024,
};
/// Most participants a scenario may ask for (`--participants` may go higher, to this bound).
pub const MAX_PARTICIPANTS: u32 = 10_000;
/// Most faults in one scenario.
pub const MAX_FAULTS: usize = 64;
/// Most proxies in a simulated world.
pub const MAX_PROXIES: usize = 8;
/// Longest drill.
pub const MAX_DURATION_MS: u64 = 3_600_000;
/// Longest description or note, in characters.
pub const MAX_TEXT_CHARS: usize = 400;

/// A value and where it was written (for errors found after parsing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spot<T> {
    /// The value.
    pub value: T,
    /// Where in the scenario file.
    pub at: Option<Position>,
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its name (`[a-z0-9-]`, names the drill).
    pub name: String,
    /// What it rehearses, for people.
    pub description: String,
    /// The catalog to use, resolved against the scenario's directory; `None` means the
    /// catalog shipped inside bglass.
    pub catalog: Option<PathBuf>,
    /// The declared production dependencies, resolved likewise.
    pub production: Option<PathBuf>,
    /// Production dependencies considered down for the whole drill.
    pub down: Vec<Spot<String>>,
    /// How long the drill may run; accesses not done by then fail with `drill_ended`.
    pub duration: Millis,
    /// The proxies of the simulated world, in the participants' priority order.
    pub proxies: Vec<String>,
    /// Who takes part.
    pub participants: Participants,
    /// Timed faults.
    pub faults: Vec<Fault>,
    /// What must hold.
    pub expect: Expectations,
    /// SHA-256 of the file's bytes, hex.
    pub digest: String,
}

/// The participants of a drill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Participants {
    /// How many.
    pub count: u32,
    /// How many of them are approvers (they also request access).
    pub approvers: u32,
    /// The services each exercises; `None` means every service in the catalog.
    pub services: Option<Vec<Spot<String>>>,
    /// Participants start spread evenly over this window.
    pub arrival: Millis,
    /// Ask for the emergency bypass where the catalog allows it.
    pub emergency: bool,
}

/// A named link of the world (DESIGN §10).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// Responders to one proxy: `responder->proxy:NAME`.
    ResponderToProxy(String),
    /// Every proxy to one tool: `proxy->service:NAME`.
    ProxyToService(String),
    /// Proxies to the notification receiver: `proxy->notify`.
    ProxyToNotify,
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

impl std::str::FromStr for Link {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s == "proxy->notify" {
            return Ok(Self::ProxyToNotify);
        }
        if let Some(p) = s.strip_prefix("responder->proxy:") {
            return valid_name(p, 32)
                .then(|| Self::ResponderToProxy(p.to_owned()))
                .ok_or(());
        }
        if let Some(name) = s.strip_prefix("proxy->service:") {
            return valid_name(name, 32)
                .then(|| Self::ProxyToService(name.to_owned()))
                .ok_or(());
        }
        Err(())
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
}

/// What must hold at the end of a drill; an unmet one makes it fail.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expectations {
    /// Least fraction of accesses (participant × tool) that succeed, 0 to 1.
    pub success_rate: Option<f64>,
    /// Longest 95th percentile of time to access.
    pub tta_p95: Option<Millis>,
    /// Longest 95th percentile of approval latency.
    pub approval_p95: Option<Millis>,
    /// Most accesses that may be missing from the audit log (the default and only sane
    /// value is 0).
    pub unaudited: u64,
    /// Whether some access must (true) or must not (false) be served by a proxy other than
    /// the first.
    pub failover: Option<bool>,
    /// Per-tool expectations.
    pub tools: Vec<ToolExpect>,
}

/// Expectations about one tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolExpect {
    /// The tool.
    pub name: Spot<String>,
    /// Least success rate.
    pub success_rate: Option<f64>,
    /// Longest 95th percentile of time to access.
    pub tta_p95: Option<Millis>,
}

/// A scenario error: file, line, column and the rule broken.
pub type ScenarioError = Located<ScenarioProblem>;

/// The rule a scenario broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioProblem {
    /// Unreadable, too large, not UTF-8, overlong line, or not TOML for the schema.
    #[error(transparent)]
    Source(SourceProblem),
    /// `version` is not [`SCENARIO_VERSION`].
    #[error("unsupported scenario version {0} (this bglass reads version {SCENARIO_VERSION})")]
    Version(i64),
    /// A name is not `[a-z0-9-]` of the right length.
    #[error("{what} {value:?} is invalid: use 1-{max} characters a-z, 0-9 and -")]
    Name {
        /// Which name.
        what: &'static str,
        /// The value (shortened).
        value: String,
        /// The longest allowed.
        max: usize,
    },
    /// A text is empty, too long or holds control characters.
    #[error("{what} must be 1-{MAX_TEXT_CHARS} characters without control characters")]
    Text {
        /// Which text.
        what: &'static str,
    },
    /// A duration is malformed.
    #[error("{what}: {source}")]
    Duration {
        /// Which field.
        what: &'static str,
        /// Why.
        source: MillisError,
    },
    /// A number is out of range.
    #[error("{what} must be {range}")]
    Range {
        /// Which field.
        what: &'static str,
        /// The allowed range, in words.
        range: String,
    },
    /// A value appears twice.
    #[error("{what} {value:?} is listed twice")]
    Duplicate {
        /// Which list.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// A link is not one of the named links.
    #[error(
        "link {0:?} is not a named link: write responder->proxy:NAME, proxy->service:NAME or proxy->notify"
    )]
    Link(String),
    /// A link names a proxy the scenario does not have.
    #[error(
        "link responder->proxy:{proxy} names proxy {proxy:?}, which is not in proxies = [{known}]"
    )]
    UnknownProxy {
        /// The proxy.
        proxy: String,
        /// The proxies declared.
        known: String,
    },
    /// An unknown fault kind.
    #[error("unknown fault kind {0:?}: expected one of {kinds}", kinds = FAULT_KINDS.join(", "))]
    Kind(String),
    /// A fault misses a field its kind needs, or has one it does not take.
    #[error("a {kind} fault {rule}")]
    FaultField {
        /// The kind.
        kind: &'static str,
        /// What is wrong.
        rule: &'static str,
    },
    /// A fault's window is empty or outside the drill.
    #[error(
        "fault window {start}..{end} must start before it ends and end by duration = {duration}"
    )]
    Window {
        /// Start.
        start: Millis,
        /// End.
        end: Millis,
        /// The drill's length.
        duration: Millis,
    },
    /// A bandwidth is malformed.
    #[error("rate {0:?} is invalid: write bytes per second like 64KiB/s, 1MiB/s or 500000B/s")]
    Rate(String),
    /// Too many faults.
    #[error("too many faults: {0}, limit {MAX_FAULTS}")]
    TooManyFaults(usize),
    /// A service is not in the catalog.
    #[error("{what} names service {name:?}, which the catalog ({catalog}) does not have")]
    UnknownService {
        /// Where it was named.
        what: &'static str,
        /// The name.
        name: String,
        /// The catalog.
        catalog: String,
    },
    /// A dependency is not declared.
    #[error("down names {name:?}, which the production file does not declare (declared: {known})")]
    UnknownDependency {
        /// The name.
        name: String,
        /// The names declared.
        known: String,
    },
    /// `down` is used without a production file.
    #[error("down names production dependencies, so the scenario needs production = \"FILE\"")]
    NoProduction,
    /// Too few approvers for the catalog's approvals.
    #[error(
        "{service} needs {needed} approval(s) besides the requester, so the drill needs at least {least} approvers; it has {approvers}"
    )]
    Approvers {
        /// The service that needs the most.
        service: String,
        /// Approvals it needs.
        needed: u8,
        /// The least number of approvers.
        least: u32,
        /// What the scenario has.
        approvers: u32,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    version: Spanned<i64>,
    name: Spanned<String>,
    description: Spanned<String>,
    catalog: Option<Spanned<String>>,
    production: Option<Spanned<String>>,
    #[serde(default)]
    down: Vec<Spanned<String>>,
    duration: Spanned<String>,
    proxies: Option<Spanned<Vec<Spanned<String>>>>,
    participants: Spanned<RawParticipants>,
    #[serde(default)]
    fault: Vec<Spanned<RawFault>>,
    #[serde(default)]
    expect: Option<RawExpect>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParticipants {
    count: Spanned<i64>,
    approvers: Spanned<i64>,
    services: Option<Vec<Spanned<String>>>,
    arrival: Option<Spanned<String>>,
    #[serde(default)]
    emergency: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    link: Spanned<String>,
    kind: Spanned<String>,
    start: Option<Spanned<String>>,
    end: Option<Spanned<String>>,
    latency: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    hold: Option<Spanned<String>>,
    note: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    success_rate: Option<Spanned<f64>>,
    tta_p95: Option<Spanned<String>>,
    approval_p95: Option<Spanned<String>>,
    unaudited: Option<Spanned<i64>>,
    failover: Option<bool>,
    #[serde(default)]
    tool: Vec<Spanned<RawToolExpect>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToolExpect {
    name: Spanned<String>,
    success_rate: Option<Spanned<f64>>,
    tta_p95: Option<Spanned<String>>,
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

fn valid_text(s: &str) -> bool {
    let n = s.chars().count();
    n > 0 && n <= MAX_TEXT_CHARS && !s.chars().any(char::is_control)
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

impl Scenario {
    /// Reads and validates a scenario file (not yet checked against a catalog).
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let source =
            Source::read(path, SCENARIO_LIMITS).map_err(|e| e.map(ScenarioProblem::Source))?;
        Self::parse(&source)
    }

    /// Validates scenario bytes already in memory; `path` names them in errors and relative
    /// paths are resolved against its directory.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, ScenarioError> {
        let source = Source::from_bytes(path, bytes, SCENARIO_LIMITS)
            .map_err(|e| e.map(ScenarioProblem::Source))?;
        Self::parse(&source)
    }

    fn parse(source: &Source) -> Result<Self, ScenarioError> {
        let headers = source.table_header_lines("fault");
        if headers.len() > MAX_FAULTS {
            return Err(Located::new(
                source.path(),
                headers
                    .get(MAX_FAULTS)
                    .map(|&line| Position { line, column: 1 }),
                ScenarioProblem::TooManyFaults(headers.len()),
            ));
        }
        let raw: RawScenario = source
            .parse_toml()
            .map_err(|e| e.map(ScenarioProblem::Source))?;
        let err = |span: std::ops::Range<usize>, problem| {
            Located::new(source.path(), source.locate(span), problem)
        };
        let at = |span: std::ops::Range<usize>| source.locate(span);
        let millis = |what: &'static str, v: &Spanned<String>| {
            v.get_ref()
                .parse::<Millis>()
                .map_err(|e| err(v.span(), ScenarioProblem::Duration { what, source: e }))
        };
        let name_check = |what: &'static str, v: &Spanned<String>, max: usize| {
            if valid_name(v.get_ref(), max) {
                Ok(v.get_ref().clone())
            } else {
                Err(err(
                    v.span(),
                    ScenarioProblem::Name {
                        what,
                        value: v.get_ref().chars().take(40).collect(),
                        max,
                    },
                ))
            }
        };
        let rate_check = |what: &'static str, v: &Spanned<f64>| {
            let r = *v.get_ref();
            if r.is_finite() && (0.0..=1.0).contains(&r) {
                Ok(r)
            } else {
                Err(err(
                    v.span(),
                    ScenarioProblem::Range {
                        what,
                        range: "a fraction from 0.0 to 1.0".to_owned(),
                    },
                ))
            }
        };

        if *raw.version.get_ref() != SCENARIO_VERSION {
            return Err(err(
                raw.version.span(),
                ScenarioProblem::Version(*raw.version.get_ref()),
            ));
        }
        let name = name_check("name", &raw.name, 48)?;
        if !valid_text(raw.description.get_ref()) {
            return Err(err(
                raw.description.span(),
                ScenarioProblem::Text {
                    what: "description",
                },
            ));
        }
        let dir = source.path().parent().unwrap_or(Path::new("."));
        let relative = |v: &Spanned<String>, what: &'static str| {
            if valid_text(v.get_ref()) {
                Ok(dir.join(v.get_ref()))
            } else {
                Err(err(v.span(), ScenarioProblem::Text { what }))
            }
        };
        let catalog = raw
            .catalog
            .as_ref()
            .map(|v| relative(v, "catalog"))
            .transpose()?;
        let production = raw
            .production
            .as_ref()
            .map(|v| relative(v, "production"))
            .transpose()?;
        let mut down: Vec<Spot<String>> = Vec::new();
        for d in &raw.down {
            let value = name_check("dependency", d, 48)?;
            if down.iter().any(|x| x.value == value) {
                return Err(err(
                    d.span(),
                    ScenarioProblem::Duplicate {
                        what: "dependency",
                        value,
                    },
                ));
            }
            down.push(Spot {
                value,
                at: at(d.span()),
            });
        }
        if !down.is_empty() && production.is_none() {
            return Err(err(raw.down[0].span(), ScenarioProblem::NoProduction));
        }
        let duration = millis("duration", &raw.duration)?;
        if duration.as_ms() < 1000 || duration.as_ms() > MAX_DURATION_MS {
            return Err(err(
                raw.duration.span(),
                ScenarioProblem::Range {
                    what: "duration",
                    range: "from 1s to 1h".to_owned(),
                },
            ));
        }

        let mut proxies: Vec<String> = Vec::new();
        match &raw.proxies {
            None => proxies.push("primary".to_owned()),
            Some(list) => {
                if list.get_ref().is_empty() || list.get_ref().len() > MAX_PROXIES {
                    return Err(err(
                        list.span(),
                        ScenarioProblem::Range {
                            what: "proxies",
                            range: format!("a list of 1 to {MAX_PROXIES} names"),
                        },
                    ));
                }
                for p in list.get_ref() {
                    let value = name_check("proxy", p, 32)?;
                    if proxies.contains(&value) {
                        return Err(err(
                            p.span(),
                            ScenarioProblem::Duplicate {
                                what: "proxy",
                                value,
                            },
                        ));
                    }
                    proxies.push(value);
                }
            }
        }

        let p = raw.participants.get_ref();
        let count = u32::try_from(*p.count.get_ref())
            .ok()
            .filter(|c| (1..=MAX_PARTICIPANTS).contains(c))
            .ok_or_else(|| {
                err(
                    p.count.span(),
                    ScenarioProblem::Range {
                        what: "participants.count",
                        range: format!("from 1 to {MAX_PARTICIPANTS}"),
                    },
                )
            })?;
        let approvers = u32::try_from(*p.approvers.get_ref())
            .ok()
            .filter(|a| *a <= count)
            .ok_or_else(|| {
                err(
                    p.approvers.span(),
                    ScenarioProblem::Range {
                        what: "participants.approvers",
                        range: format!("from 0 to count ({count})"),
                    },
                )
            })?;
        let services = match &p.services {
            None => None,
            Some(list) => {
                let mut out: Vec<Spot<String>> = Vec::new();
                for s in list {
                    let value = name_check("service", s, 32)?;
                    if out.iter().any(|x| x.value == value) {
                        return Err(err(
                            s.span(),
                            ScenarioProblem::Duplicate {
                                what: "service",
                                value,
                            },
                        ));
                    }
                    out.push(Spot {
                        value,
                        at: at(s.span()),
                    });
                }
                if out.is_empty() {
                    return Err(err(
                        raw.participants.span(),
                        ScenarioProblem::Range {
                            what: "participants.services",
                            range: "a non-empty list (leave it out for every service)".to_owned(),
                        },
                    ));
                }
                Some(out)
            }
        };
        let arrival = match &p.arrival {
            None => Millis::default(),
            Some(a) => {
                let v = millis("participants.arrival", a)?;
                if v >= duration {
                    return Err(err(
                        a.span(),
                        ScenarioProblem::Range {
                            what: "participants.arrival",
                            range: format!("shorter than duration ({duration})"),
                        },
                    ));
                }
                v
            }
        };
        let participants = Participants {
            count,
            approvers,
            services,
            arrival,
            emergency: p.emergency,
        };

        let mut faults = Vec::with_capacity(raw.fault.len());
        if raw.fault.len() > MAX_FAULTS {
            return Err(Located::new(
                source.path(),
                None,
                ScenarioProblem::TooManyFaults(raw.fault.len()),
            ));
        }
        for f in &raw.fault {
            let span = f.span();
            let f = f.get_ref();
            let link: Link = f.link.get_ref().parse().map_err(|()| {
                err(
                    f.link.span(),
                    ScenarioProblem::Link(f.link.get_ref().chars().take(60).collect()),
                )
            })?;
            if let Link::ResponderToProxy(proxy) = &link
                && !proxies.contains(proxy)
            {
                return Err(err(
                    f.link.span(),
                    ScenarioProblem::UnknownProxy {
                        proxy: proxy.clone(),
                        known: proxies.join(", "),
                    },
                ));
            }
            let kind_name = f.kind.get_ref().as_str();
            let field = |kind: &'static str, rule: &'static str| {
                err(span.clone(), ScenarioProblem::FaultField { kind, rule })
            };
            // Each kind takes exactly its own parameters.
            let takes: &[&str] = match kind_name {
                "latency" => &["latency", "jitter"],
                "bandwidth" => &["rate"],
                "slow_close" => &["hold"],
                "down" | "blackhole" | "reset" | "timeout" => &[],
                other => {
                    return Err(err(
                        f.kind.span(),
                        ScenarioProblem::Kind(other.chars().take(32).collect()),
                    ));
                }
            };
            let kind_static = FAULT_KINDS
                .iter()
                .find(|k| **k == kind_name)
                .copied()
                .unwrap_or("fault");
            for (present, name) in [
                (f.latency.is_some(), "latency"),
                (f.jitter.is_some(), "jitter"),
                (f.rate.is_some(), "rate"),
                (f.hold.is_some(), "hold"),
            ] {
                if present && !takes.contains(&name) {
                    return Err(field(
                        kind_static,
                        match name {
                            "latency" => "does not take latency",
                            "jitter" => "does not take jitter",
                            "rate" => "does not take rate",
                            _ => "does not take hold",
                        },
                    ));
                }
            }
            let kind = match kind_name {
                "down" => FaultKind::Down,
                "blackhole" => FaultKind::Blackhole,
                "reset" => FaultKind::Reset,
                "timeout" => FaultKind::Timeout,
                "latency" => {
                    let latency = f
                        .latency
                        .as_ref()
                        .ok_or_else(|| field("latency", "needs latency = \"300ms\""))?;
                    let latency = millis("latency", latency)?;
                    let jitter = f
                        .jitter
                        .as_ref()
                        .map(|j| millis("jitter", j))
                        .transpose()?
                        .unwrap_or_default();
                    if latency.as_ms() == 0 || latency.as_ms() > 60_000 || jitter > latency {
                        return Err(field(
                            "latency",
                            "needs 0 < latency <= 60s and jitter <= latency",
                        ));
                    }
                    FaultKind::Latency { latency, jitter }
                }
                "bandwidth" => {
                    let rate = f
                        .rate
                        .as_ref()
                        .ok_or_else(|| field("bandwidth", "needs rate = \"1MiB/s\""))?;
                    let bytes_per_sec = parse_rate(rate.get_ref()).ok_or_else(|| {
                        err(
                            rate.span(),
                            ScenarioProblem::Rate(rate.get_ref().chars().take(32).collect()),
                        )
                    })?;
                    if bytes_per_sec < 1024 {
                        return Err(field("bandwidth", "needs a rate of at least 1KiB/s"));
                    }
                    FaultKind::Bandwidth { bytes_per_sec }
                }
                _ => {
                    let hold = f
                        .hold
                        .as_ref()
                        .ok_or_else(|| field("slow_close", "needs hold = \"2s\""))?;
                    let hold = millis("hold", hold)?;
                    if hold.as_ms() == 0 || hold.as_ms() > 600_000 {
                        return Err(field("slow_close", "needs 0 < hold <= 10m"));
                    }
                    FaultKind::SlowClose { hold }
                }
            };
            let start = f
                .start
                .as_ref()
                .map(|s| millis("start", s))
                .transpose()?
                .unwrap_or_default();
            let end = f
                .end
                .as_ref()
                .map(|e| millis("end", e))
                .transpose()?
                .unwrap_or(duration);
            if start >= end || end > duration {
                return Err(err(
                    span.clone(),
                    ScenarioProblem::Window {
                        start,
                        end,
                        duration,
                    },
                ));
            }
            let note = match &f.note {
                None => None,
                Some(n) if valid_text(n.get_ref()) => Some(n.get_ref().clone()),
                Some(n) => return Err(err(n.span(), ScenarioProblem::Text { what: "note" })),
            };
            faults.push(Fault {
                link,
                kind,
                start,
                end,
                note,
                at: at(span),
            });
        }

        let mut expect = Expectations::default();
        if let Some(e) = &raw.expect {
            expect.success_rate = e
                .success_rate
                .as_ref()
                .map(|r| rate_check("expect.success_rate", r))
                .transpose()?;
            expect.tta_p95 = e
                .tta_p95
                .as_ref()
                .map(|t| millis("expect.tta_p95", t))
                .transpose()?;
            expect.approval_p95 = e
                .approval_p95
                .as_ref()
                .map(|t| millis("expect.approval_p95", t))
                .transpose()?;
            if let Some(u) = &e.unaudited {
                expect.unaudited = u64::try_from(*u.get_ref()).map_err(|_| {
                    err(
                        u.span(),
                        ScenarioProblem::Range {
                            what: "expect.unaudited",
                            range: "0 or more".to_owned(),
                        },
                    )
                })?;
            }
            expect.failover = e.failover;
            for t in &e.tool {
                let t = t.get_ref();
                let value = name_check("service", &t.name, 32)?;
                if expect.tools.iter().any(|x| x.name.value == value) {
                    return Err(err(
                        t.name.span(),
                        ScenarioProblem::Duplicate {
                            what: "expect.tool",
                            value,
                        },
                    ));
                }
                expect.tools.push(ToolExpect {
                    name: Spot {
                        value,
                        at: at(t.name.span()),
                    },
                    success_rate: t
                        .success_rate
                        .as_ref()
                        .map(|r| rate_check("expect.tool.success_rate", r))
                        .transpose()?,
                    tta_p95: t
                        .tta_p95
                        .as_ref()
                        .map(|v| millis("expect.tool.tta_p95", v))
                        .transpose()?,
                });
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, source.text().as_bytes());
        Ok(Self {
            path: source.path().to_path_buf(),
            name,
            description: raw.description.get_ref().clone(),
            catalog,
            production,
            down,
            duration,
            proxies,
            participants,
            faults,
            expect,
            digest: crate::keys::hex_lower(digest.as_ref()),
        })
    }

    /// Checks the scenario's references against the catalog it runs on and the declared
    /// production dependencies: services named anywhere exist, `down` names declared
    /// dependencies, and there are enough approvers for the approvals the services need.
    pub fn check(
        &self,
        catalog: &Catalog,
        catalog_name: &str,
        production: Option<&Production>,
    ) -> Result<(), ScenarioError> {
        let err = |at: Option<Position>, problem| Located::new(&self.path, at, problem);
        let exists = |name: &str| ServiceName::new(name).is_ok_and(|n| catalog.get(&n).is_some());
        let unknown = |what: &'static str, name: &str, at| {
            err(
                at,
                ScenarioProblem::UnknownService {
                    what,
                    name: name.to_owned(),
                    catalog: catalog_name.to_owned(),
                },
            )
        };
        for s in self.participants.services.iter().flatten() {
            if !exists(&s.value) {
                return Err(unknown("participants.services", &s.value, s.at));
            }
        }
        for f in &self.faults {
            if let Link::ProxyToService(name) = &f.link
                && !exists(name)
            {
                return Err(unknown("a fault's link", name, f.at));
            }
        }
        for t in &self.expect.tools {
            if !exists(&t.name.value) {
                return Err(unknown("expect.tool", &t.name.value, t.name.at));
            }
        }
        if let Some(production) = production {
            for d in &self.down {
                if production.get(&d.value).is_none() {
                    return Err(err(
                        d.at,
                        ScenarioProblem::UnknownDependency {
                            name: d.value.clone(),
                            known: production
                                .dependencies
                                .iter()
                                .map(|d| d.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        },
                    ));
                }
            }
        }
        // Every participant requests access; an approver cannot approve their own request,
        // so a service needing n approvals needs n + 1 approvers among the participants.
        let needs = self
            .services(catalog)
            .into_iter()
            .filter_map(|name| catalog.get(&name))
            .filter(|s| !(self.participants.emergency && s.emergency.is_some()))
            .max_by_key(|s| s.approvals);
        if let Some(s) = needs
            && s.approvals > 0
        {
            let least = u32::from(s.approvals) + 1;
            if self.participants.approvers < least {
                return Err(err(
                    None,
                    ScenarioProblem::Approvers {
                        service: s.name.to_string(),
                        needed: s.approvals,
                        least,
                        approvers: self.participants.approvers,
                    },
                ));
            }
        }
        Ok(())
    }

    /// The services each participant exercises, in catalog order.
    pub fn services(&self, catalog: &Catalog) -> Vec<ServiceName> {
        catalog
            .services()
            .iter()
            .filter(|s| match &self.participants.services {
                None => true,
                Some(list) => list.iter().any(|x| x.value == s.name.as_str()),
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// The faults on `link`.
    pub fn faults_on<'a>(&'a self, link: &'a Link) -> impl Iterator<Item = &'a Fault> + 'a {
        self.faults.iter().filter(move |f| &f.link == link)
    }
}
