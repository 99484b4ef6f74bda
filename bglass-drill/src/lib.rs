//! The drill simulator and live drills: `bglass drill simulate` runs a scenario against a
//! world of proxies and tools on loopback, with the scenario's faults put on its named links
//! ([`link`]); live drills run the same scenarios against real proxies; both are scored
//! and written as text, `report.json` and `report.html` ([`report`]).

pub mod canary;
pub mod link;
pub mod live;
pub mod load;
pub mod logs;
pub mod participant;
pub mod report;
pub mod simulate;
pub mod tools;
pub mod world;

use std::time::Instant;

/// Milliseconds from `earlier` to `later` (zero when `later` is not later), saturating at
/// `u64::MAX` (some 584 million years).
pub fn ms_between(earlier: Instant, later: Instant) -> u64 {
    let d = later.saturating_duration_since(earlier);
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// Milliseconds since `t`.
pub fn ms_since(t: Instant) -> u64 {
    ms_between(t, Instant::now())
}
