//! A drill's result as the audit log records it (`drill_result`): counts, and times in
//! whole milliseconds, and nothing else. A log entry must decode and re-encode to the same
//! event, and JSON floats do not round-trip (a fuzzed entry's `1.760006666666667e70`
//! re-encoded as `1.7600066666666667e70`), so no rate is stored as a fraction: it is the
//! pair of counts it comes from.

use super::scorecard::Scorecard;

/// The result of a drill, for its `drill_result` audit event.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSummary {
    /// Whether every expectation held.
    pub passed: bool,
    /// Expectations judged.
    pub expectations: u64,
    /// … of which not met.
    pub unmet: u64,
    /// Accesses attempted (participant × tool).
    pub accesses: u64,
    /// Accesses that got through (the success rate is `succeeded` / `accesses`).
    pub succeeded: u64,
    /// Accesses served by a proxy other than the participant's first.
    pub failovers: u64,
    /// Time to access of the successes, median, ms.
    pub tta_p50_ms: u64,
    /// … 95th percentile, ms.
    pub tta_p95_ms: u64,
    /// … largest, ms.
    pub tta_max_ms: u64,
    /// Accesses that waited for approvals.
    pub approvals: u64,
    /// Approval latency, 95th percentile, ms.
    pub approval_p95_ms: u64,
    /// Successful accesses missing from the audit log.
    pub unaudited: u64,
    /// Uses in the logs that no grant covered.
    pub uses_outside_grants: u64,
}

impl Scorecard {
    /// The scorecard's result as the audit log records it.
    pub fn summary(&self) -> DrillSummary {
        let unmet = self.expectations.iter().filter(|o| !o.met).count();
        DrillSummary {
            passed: self.passed,
            expectations: self.expectations.len() as u64,
            unmet: unmet as u64,
            accesses: self.accesses,
            succeeded: self.succeeded,
            failovers: self.failovers,
            tta_p50_ms: self.tta.p50,
            tta_p95_ms: self.tta.p95,
            tta_max_ms: self.tta.max,
            approvals: self.approvals.count,
            approval_p95_ms: self.approvals.p95,
            unaudited: self.audit.unaudited,
            uses_outside_grants: self.audit.uses_outside_grants,
        }
    }
}
