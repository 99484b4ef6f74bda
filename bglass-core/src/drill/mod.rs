//! Scoring drills (DESIGN §10): from the accesses a drill made (measured by the simulator's
//! participants, or rebuilt from a proxy's audit log for a live drill) to the scorecard —
//! time to access per tool (p50, p95, max), success rates, failures with their causes and
//! the faults active when they happened, approval latency, failovers, audit completeness,
//! and the scenario's expectations, each met or not.
//!
//! Pure: no clocks, no sockets. The same scorecard is written as `report.json`, rendered as
//! `report.html`, and printed.

pub mod fromlog;
pub mod html;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::scenario::{Expectations, Fault};

/// A live drill as the drill lead starts it and participants read it from the proxy
/// (`GET /v1/drill`): which tools to probe, which proxies to skip when, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivePlan {
    /// The drill's id (`[a-z0-9-]`, 1-64): tags the audit events.
    pub drill: String,
    /// The scenario's name.
    pub scenario: String,
    /// SHA-256 of the scenario file, hex.
    pub digest: String,
    /// The tools each participant probes.
    pub services: Vec<crate::id::ServiceName>,
    /// Client-side faults: proxies participants must not use during a window.
    #[serde(default)]
    pub skip: Vec<SkipProxy>,
    /// How long the drill runs; the proxy ends it then if nobody stops it.
    pub duration_ms: u64,
}

/// A client-side fault of a live drill: participants act as if `proxy` were unreachable
/// from `start_ms` to `end_ms` after the drill's start.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkipProxy {
    /// The proxy's id.
    pub proxy: String,
    /// From, ms after the start.
    pub start_ms: u64,
    /// Until, ms after the start.
    pub end_ms: u64,
}

impl LivePlan {
    /// Checks the names and bounds a proxy relies on.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !name_ok(&self.drill) {
            return Err(format!(
                "drill id {:?} must be 1-64 of a-z, 0-9, -",
                self.drill
            ));
        }
        if !name_ok(&self.scenario) {
            return Err(format!(
                "scenario {:?} must be 1-64 of a-z, 0-9, -",
                self.scenario
            ));
        }
        if self.digest.len() != 64 || !self.digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("digest must be 64 hex digits".to_owned());
        }
        if self.services.is_empty() || self.services.len() > 256 {
            return Err("a drill probes 1-256 services".to_owned());
        }
        if self.skip.len() > crate::scenario::MAX_FAULTS {
            return Err("too many client-side faults".to_owned());
        }
        if self.duration_ms == 0 || self.duration_ms > crate::scenario::MAX_DURATION_MS {
            return Err("duration must be between 1 ms and 1 hour".to_owned());
        }
        Ok(())
    }

    /// Whether participants skip `proxy` at `offset_ms` after the drill's start.
    pub fn skips(&self, proxy: &str, offset_ms: u64) -> bool {
        self.skip
            .iter()
            .any(|s| s.proxy == proxy && s.start_ms <= offset_ms && offset_ms < s.end_ms)
    }
}

/// One participant's attempt to reach one tool: the unit a drill counts.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Access {
    /// Who.
    pub participant: String,
    /// Which tool.
    pub service: String,
    /// `http`, `ssh` or `tcp`.
    pub kind: String,
    /// When the participant asked, in ms from the drill's start.
    pub start_ms: u64,
    /// Whether the participant got through to the tool.
    pub ok: bool,
    /// Time from asking to the first authorised byte from the tool (successes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tta_ms: Option<u64>,
    /// Time spent waiting for approvals, when the tool needed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_ms: Option<u64>,
    /// The proxy that served the access (or the last one tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Served by a proxy other than the participant's first.
    #[serde(default)]
    pub failover: bool,
    /// Attempts made (a failed attempt is retried a few times, as a person would).
    pub attempts: u32,
    /// The grant, once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Whether the access was found in the proxy's audit log (`None` before the check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audited: Option<bool>,
}

/// Why an access failed, and what to blame.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// Where it failed: `proxy`, `request`, `approval`, `certificate`, `tunnel`, `tool`,
    /// `drill_ended`.
    pub stage: String,
    /// A stable code (`upstream_unreachable`, `unavailable`, `denied`, `timeout`, …).
    pub code: String,
    /// The error as the participant saw it.
    pub detail: String,
    /// The faults active on the access's path when it failed (`proxy->service:logs down`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// A production dependency the path turned out to need, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
}

impl Failure {
    /// The cause as one line: the dependency when known, else the faults, else the code.
    pub fn cause(&self) -> String {
        if let Some(d) = &self.dependency {
            return format!("hidden dependency: {d}");
        }
        if !self.faults.is_empty() {
            return format!("{} (fault: {})", self.code, self.faults.join("; "));
        }
        self.code.clone()
    }
}

/// Percentiles and extremes of a set of durations.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// How many.
    pub count: u64,
    /// Median, ms.
    pub p50: u64,
    /// 95th percentile, ms.
    pub p95: u64,
    /// Largest, ms.
    pub max: u64,
    /// Smallest, ms.
    pub min: u64,
}

impl Stats {
    /// Nearest-rank percentiles of `values` (empty: all zero).
    pub fn of(values: &[u64]) -> Self {
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |p: u64| -> u64 {
            if v.is_empty() {
                return 0;
            }
            let n = v.len() as u64;
            let r = (p * n).div_ceil(100).clamp(1, n);
            v[usize::try_from(r - 1).unwrap_or(0)]
        };
        Self {
            count: v.len() as u64,
            p50: rank(50),
            p95: rank(95),
            max: v.last().copied().unwrap_or(0),
            min: v.first().copied().unwrap_or(0),
        }
    }
}

/// One tool's line of the scorecard.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolScore {
    /// The tool.
    pub service: String,
    /// Its kind.
    pub kind: String,
    /// Accesses attempted.
    pub accesses: u64,
    /// Accesses that got through.
    pub succeeded: u64,
    /// succeeded / accesses.
    pub success_rate: f64,
    /// Time to access of the successes.
    pub tta: Stats,
    /// Failures by cause, most frequent first.
    pub failures: Vec<CauseCount>,
}

/// A cause and how often it happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CauseCount {
    /// The cause ([`Failure::cause`]).
    pub cause: String,
    /// How many accesses failed so.
    pub count: u64,
    /// One participant's error, as an example.
    pub example: String,
}

/// The audit side of a drill: every proxy's log verified, every access looked up in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditCheck {
    /// Each proxy's log.
    pub logs: Vec<LogCheck>,
    /// Successful accesses looked up.
    pub checked: u64,
    /// … found with their grant and use in the log of the proxy that served them.
    pub found: u64,
    /// Successful accesses missing from the log (must be none).
    pub unaudited: u64,
    /// Up to 20 of them, for the report.
    pub missing: Vec<String>,
    /// Uses in the logs that no grant covered (must be none).
    pub uses_outside_grants: u64,
    /// Events tagged with the drill id, over all logs.
    pub drill_events: u64,
}

/// One proxy's log as checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogCheck {
    /// The proxy.
    pub proxy: String,
    /// Where the log is.
    pub dir: String,
    /// Entries.
    pub entries: u64,
    /// Whether `bglass audit verify` would pass.
    pub verified: bool,
    /// The first defect, when it would not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An expectation and its outcome.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// What was expected, in words (`success rate >= 100%`).
    pub expectation: String,
    /// What happened (`97.2%`).
    pub actual: String,
    /// Whether it held.
    pub met: bool,
}

/// A bucket of the time-to-access histogram.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    /// Upper bound of the bucket, ms (inclusive); the last bucket is open.
    pub le_ms: u64,
    /// Successes in it.
    pub count: u64,
}

/// Upper bounds of the histogram's buckets, ms.
pub const BUCKETS_MS: [u64; 14] = [
    25,
    50,
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    10_000,
    u64::MAX,
];

/// What a drill was.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DrillInfo {
    /// The drill's id (tags its audit events).
    pub id: String,
    /// The scenario's name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// SHA-256 of the scenario file.
    pub scenario_digest: String,
    /// `simulate` or `live`.
    pub mode: String,
    /// When it started, Unix ms.
    pub started_ms: u64,
    /// Wall time, ms.
    pub wall_ms: u64,
    /// The production dependencies considered down.
    pub down: Vec<String>,
    /// The proxies, in priority order.
    pub proxies: Vec<String>,
    /// Participants.
    pub participants: u32,
    /// Approvers among them.
    pub approvers: u32,
    /// The scenario's length, ms.
    pub duration_ms: u64,
    /// Things the reader must know about how the drill was run (e.g. how SSH was probed).
    pub notes: Vec<String>,
}

/// The scorecard of a drill.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Scorecard {
    /// The drill.
    pub drill: DrillInfo,
    /// Whether every expectation held.
    pub passed: bool,
    /// Each expectation and its outcome.
    pub expectations: Vec<Outcome>,
    /// Accesses attempted.
    pub accesses: u64,
    /// Accesses that got through.
    pub succeeded: u64,
    /// succeeded / accesses.
    pub success_rate: f64,
    /// Time to access of all successes.
    pub tta: Stats,
    /// Approval latency.
    pub approvals: Stats,
    /// Accesses served by a proxy other than the participant's first.
    pub failovers: u64,
    /// Time to access of the accesses served by the participant's first proxy.
    pub tta_first_proxy: Stats,
    /// … and of those served after failing over to another.
    pub tta_failover: Stats,
    /// Accesses served by each proxy.
    pub served_by: BTreeMap<String, u64>,
    /// One line per tool, in catalog order.
    pub tools: Vec<ToolScore>,
    /// All failures by tool and cause.
    pub failures: Vec<ToolCause>,
    /// Time-to-access histogram.
    pub histogram: Vec<Bucket>,
    /// The scenario's faults (the timeline).
    pub faults: Vec<Fault>,
    /// The audit check.
    pub audit: AuditCheck,
    /// Every access (for the report's charts and for scripts).
    pub access_log: Vec<Access>,
}

/// A cause of failure on one tool.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolCause {
    /// The tool.
    pub service: String,
    /// The cause and count.
    #[serde(flatten)]
    pub cause: CauseCount,
}

pub(crate) fn percent(x: f64) -> String {
    let p = x * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn rate(ok: u64, all: u64) -> f64 {
    if all == 0 {
        1.0
    } else {
        ok as f64 / all as f64
    }
}

fn causes<'a>(failed: impl Iterator<Item = &'a Access>) -> Vec<CauseCount> {
    let mut by: BTreeMap<String, CauseCount> = BTreeMap::new();
    for a in failed {
        let Some(f) = &a.failure else { continue };
        let cause = f.cause();
        let entry = by.entry(cause.clone()).or_insert_with(|| CauseCount {
            cause,
            count: 0,
            example: format!("{}: {}", a.participant, f.detail),
        });
        entry.count += 1;
    }
    let mut list: Vec<CauseCount> = by.into_values().collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cause.cmp(&b.cause)));
    list
}

impl Scorecard {
    /// Scores the accesses of a drill. `tools` lists (name, kind) in catalog order.
    pub fn compute(
        drill: DrillInfo,
        tools: &[(String, String)],
        accesses: Vec<Access>,
        faults: Vec<Fault>,
        audit: AuditCheck,
        expect: &Expectations,
    ) -> Self {
        let succeeded = accesses.iter().filter(|a| a.ok).count() as u64;
        let all = accesses.len() as u64;
        let ttas: Vec<u64> = accesses.iter().filter_map(|a| a.tta_ms).collect();
        let approvals: Vec<u64> = accesses.iter().filter_map(|a| a.approval_ms).collect();
        let mut served_by: BTreeMap<String, u64> = BTreeMap::new();
        for a in accesses.iter().filter(|a| a.ok) {
            if let Some(p) = &a.proxy {
                *served_by.entry(p.clone()).or_default() += 1;
            }
        }
        let failovers = accesses.iter().filter(|a| a.ok && a.failover).count() as u64;
        let tta_of = |failover: bool| {
            let v: Vec<u64> = accesses
                .iter()
                .filter(|a| a.failover == failover)
                .filter_map(|a| a.tta_ms)
                .collect();
            Stats::of(&v)
        };
        let (tta_first_proxy, tta_failover) = (tta_of(false), tta_of(true));
        let mut tool_scores = Vec::new();
        let mut failures = Vec::new();
        for (name, kind) in tools {
            let mine: Vec<&Access> = accesses.iter().filter(|a| &a.service == name).collect();
            let ok = mine.iter().filter(|a| a.ok).count() as u64;
            let t: Vec<u64> = mine.iter().filter_map(|a| a.tta_ms).collect();
            let c = causes(mine.iter().copied().filter(|a| !a.ok));
            failures.extend(c.iter().map(|cause| ToolCause {
                service: name.clone(),
                cause: cause.clone(),
            }));
            tool_scores.push(ToolScore {
                service: name.clone(),
                kind: kind.clone(),
                accesses: mine.len() as u64,
                succeeded: ok,
                success_rate: rate(ok, mine.len() as u64),
                tta: Stats::of(&t),
                failures: c,
            });
        }
        let histogram = BUCKETS_MS
            .iter()
            .enumerate()
            .map(|(i, &le)| {
                let lo = if i == 0 { 0 } else { BUCKETS_MS[i - 1] + 1 };
                Bucket {
                    le_ms: le,
                    count: ttas.iter().filter(|&&t| t >= lo && t <= le).count() as u64,
                }
            })
            .collect();
        let mut card = Self {
            drill,
            passed: false,
            expectations: Vec::new(),
            accesses: all,
            succeeded,
            success_rate: rate(succeeded, all),
            tta: Stats::of(&ttas),
            approvals: Stats::of(&approvals),
            failovers,
            tta_first_proxy,
            tta_failover,
            served_by,
            tools: tool_scores,
            failures,
            histogram,
            faults,
            audit,
            access_log: accesses,
        };
        card.expectations = card.judge(expect);
        card.passed = card.expectations.iter().all(|o| o.met);
        card
    }

    /// Every expectation with its outcome. Two always apply: the audit logs verify, and
    /// there was something to score.
    fn judge(&self, expect: &Expectations) -> Vec<Outcome> {
        let mut out = Vec::new();
        out.push(Outcome {
            expectation: "at least one access attempted".to_owned(),
            actual: format!("{} accesses", self.accesses),
            met: self.accesses > 0,
        });
        let bad_logs: Vec<&LogCheck> = self.audit.logs.iter().filter(|l| !l.verified).collect();
        out.push(Outcome {
            expectation: "every proxy's audit log verifies".to_owned(),
            actual: if bad_logs.is_empty() {
                format!("{} log(s) verified", self.audit.logs.len())
            } else {
                bad_logs
                    .iter()
                    .map(|l| format!("{}: {}", l.proxy, l.error.clone().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            met: bad_logs.is_empty() && !self.audit.logs.is_empty(),
        });
        if let Some(min) = expect.success_rate {
            out.push(Outcome {
                expectation: format!("success rate >= {}", percent(min)),
                actual: format!(
                    "{} ({} of {})",
                    percent(self.success_rate),
                    self.succeeded,
                    self.accesses
                ),
                met: self.success_rate + 1e-9 >= min,
            });
        }
        if let Some(max) = expect.tta_p95 {
            out.push(Outcome {
                expectation: format!("time to access p95 <= {max}"),
                actual: format!("{} ms", self.tta.p95),
                met: self.tta.count > 0 && self.tta.p95 <= max.as_ms(),
            });
        }
        if let Some(max) = expect.approval_p95 {
            out.push(Outcome {
                expectation: format!("approval latency p95 <= {max}"),
                actual: if self.approvals.count == 0 {
                    "no approvals".to_owned()
                } else {
                    format!("{} ms", self.approvals.p95)
                },
                met: self.approvals.p95 <= max.as_ms(),
            });
        }
        out.push(Outcome {
            expectation: format!("unaudited accesses <= {}", expect.unaudited),
            actual: format!(
                "{} unaudited, {} uses outside grants ({} of {} found in the log)",
                self.audit.unaudited,
                self.audit.uses_outside_grants,
                self.audit.found,
                self.audit.checked
            ),
            met: self.audit.unaudited <= expect.unaudited
                && self.audit.uses_outside_grants == 0
                && self.audit.checked == self.succeeded,
        });
        if let Some(want) = expect.failover {
            out.push(Outcome {
                expectation: if want {
                    "failover to another proxy seen".to_owned()
                } else {
                    "no failover".to_owned()
                },
                actual: format!("{} accesses served after failover", self.failovers),
                met: want == (self.failovers > 0),
            });
        }
        for t in &expect.tools {
            let score = self.tools.iter().find(|s| s.service == t.name.value);
            if let Some(min) = t.success_rate {
                out.push(Outcome {
                    expectation: format!("{}: success rate >= {}", t.name.value, percent(min)),
                    actual: score
                        .map_or_else(|| "not exercised".to_owned(), |s| percent(s.success_rate)),
                    met: score.is_some_and(|s| s.accesses > 0 && s.success_rate + 1e-9 >= min),
                });
            }
            if let Some(max) = t.tta_p95 {
                out.push(Outcome {
                    expectation: format!("{}: time to access p95 <= {max}", t.name.value),
                    actual: score.map_or_else(
                        || "not exercised".to_owned(),
                        |s| format!("{} ms", s.tta.p95),
                    ),
                    met: score.is_some_and(|s| s.tta.count > 0 && s.tta.p95 <= max.as_ms()),
                });
            }
        }
        out
    }

    /// The scorecard as text for a terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let d = &self.drill;
        s.push_str(&format!(
            "Drill {} — scenario {} ({}), {} participants ({} approvers), proxies {}\n",
            d.id,
            d.scenario,
            d.mode,
            d.participants,
            d.approvers,
            d.proxies.join(" → ")
        ));
        if !d.down.is_empty() {
            s.push_str(&format!("Down: {}\n", d.down.join(", ")));
        }
        s.push_str(&format!(
            "Accesses: {} of {} succeeded ({}); time to access p50 {} ms, p95 {} ms, max {} ms; wall {:.1} s\n",
            self.succeeded,
            self.accesses,
            percent(self.success_rate),
            self.tta.p50,
            self.tta.p95,
            self.tta.max,
            d.wall_ms as f64 / 1000.0
        ));
        if self.approvals.count > 0 {
            s.push_str(&format!(
                "Approvals: {} waited, p50 {} ms, p95 {} ms, max {} ms\n",
                self.approvals.count, self.approvals.p50, self.approvals.p95, self.approvals.max
            ));
        }
        let served: Vec<String> = self
            .served_by
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        s.push_str(&format!(
            "Served by: {}; after failover: {}\n",
            if served.is_empty() {
                "none".to_owned()
            } else {
                served.join(", ")
            },
            self.failovers
        ));
        if self.failovers > 0 {
            s.push_str(&format!(
                "Time to access: first proxy p50 {} ms, p95 {} ms ({}); after failover p50 {} ms, p95 {} ms ({})\n",
                self.tta_first_proxy.p50,
                self.tta_first_proxy.p95,
                self.tta_first_proxy.count,
                self.tta_failover.p50,
                self.tta_failover.p95,
                self.tta_failover.count
            ));
        }
        s.push_str(&format!(
            "\n{:<18} {:<4} {:>9} {:>8} {:>8} {:>8}  {}\n",
            "TOOL", "KIND", "OK", "P50 MS", "P95 MS", "MAX MS", "FAILURES"
        ));
        for t in &self.tools {
            let fails = t
                .failures
                .first()
                .map(|c| format!("{}× {}", c.count, c.cause))
                .unwrap_or_default();
            s.push_str(&format!(
                "{:<18} {:<4} {:>9} {:>8} {:>8} {:>8}  {}\n",
                t.service,
                t.kind,
                format!("{}/{}", t.succeeded, t.accesses),
                t.tta.p50,
                t.tta.p95,
                t.tta.max,
                fails
            ));
        }
        if !self.failures.is_empty() {
            s.push_str("\nFailures:\n");
            for f in &self.failures {
                s.push_str(&format!(
                    "  {} × {}: {}\n    e.g. {}\n",
                    f.cause.count, f.service, f.cause.cause, f.cause.example
                ));
            }
        }
        s.push_str(&format!(
            "\nAudit: {} log(s), {} drill events; {} of {} successful accesses found in the log; {} unaudited; {} uses outside grants\n",
            self.audit.logs.len(),
            self.audit.drill_events,
            self.audit.found,
            self.audit.checked,
            self.audit.unaudited,
            self.audit.uses_outside_grants
        ));
        for l in &self.audit.logs {
            s.push_str(&format!(
                "  {}: {} entries, {}\n",
                l.proxy,
                l.entries,
                if l.verified {
                    "verified".to_owned()
                } else {
                    format!("DOES NOT VERIFY: {}", l.error.clone().unwrap_or_default())
                }
            ));
        }
        for n in &d.notes {
            s.push_str(&format!("Note: {n}\n"));
        }
        s.push_str("\nExpectations:\n");
        for o in &self.expectations {
            s.push_str(&format!(
                "  [{}] {} — {}\n",
                if o.met { "met" } else { "NOT MET" },
                o.expectation,
                o.actual
            ));
        }
        s.push_str(&format!(
            "\nResult: {}\n",
            if self.passed {
                "PASS"
            } else {
                "FAIL (expectations not met)"
            }
        ));
        s
    }
}
