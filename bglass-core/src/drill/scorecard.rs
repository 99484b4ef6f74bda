//! The scorecard of a drill: from the accesses it made to time to access per tool,
//! success rates, failures with their causes, approval latency, failovers and the audit
//! check, with the scenario's expectations judged (in `judge.rs`).

use std::collections::BTreeMap;

use super::access::Access;
use super::stats::{Bucket, Stats, histogram, rate};
use crate::scenario::{Expectations, Fault};

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
    pub participants: u64,
    /// Approvers among them.
    pub approvers: u64,
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
        let histogram = histogram(&ttas);
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
}
