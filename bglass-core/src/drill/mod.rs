//! Scoring drills: from the accesses a drill made (measured by the simulator's
//! participants, or rebuilt from a proxy's audit log for a live drill) to the scorecard —
//! time to access per tool (p50, p95, max), success rates, failures with their causes and
//! the faults active when they happened, approval latency, failovers, audit completeness,
//! and the scenario's expectations, each met or not — and the live plan a proxy is told.
//!
//! Pure: no clocks, no sockets, no presentation. The scorecard is data (`report.json`);
//! the drill crate writes it as text and as `report.html`.

mod access;
pub mod fromlog;
mod judge;
mod plan;
mod scorecard;
mod stats;
mod summary;
#[cfg(test)]
mod tests;

pub use access::{Access, Failure};
pub use plan::{LivePlan, MAX_PLAN_SERVICES, PlanError, SkipProxy};
pub use scorecard::{
    AuditCheck, CauseCount, DrillInfo, LogCheck, Outcome, Scorecard, ToolCause, ToolScore,
};
pub use stats::{BUCKETS_MS, Bucket, Stats, histogram, percent};
pub use summary::DrillSummary;
