//! What a drill tells the proxies: its id (the scenario's name and the start time), and
//! the live plan with the client-side faults participants act out where bglass cannot cut
//! real links.

use bglass_client::error::{CliError, CliResult};
use bglass_core::drill::{LivePlan, SkipProxy};
use bglass_core::id::{DrillId, ScenarioName};
use bglass_core::scenario::{FaultKind, Link, Scenario};
use bglass_core::timestamp;

use super::load::Loaded;

/// A drill id: the scenario's name and the start time, `<scenario>-<YYYYMMDDhhmmss>` (a
/// scenario name is at most 48 characters, so the id fits in 64).
pub fn drill_id(scenario: &ScenarioName) -> CliResult<DrillId> {
    let secs = timestamp::now_ms() / 1000;
    let stamp: String = timestamp::format_secs(secs)
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    DrillId::new(&format!("{scenario}-{stamp}")).map_err(CliError::internal)
}

/// The plan a drill of `loaded` tells the proxies; with `skip`, the client-side faults that
/// live participants act out.
pub fn live_plan(loaded: &Loaded, drill: DrillId, skip: bool) -> LivePlan {
    let s = &loaded.scenario;
    LivePlan {
        drill,
        scenario: s.name.clone(),
        digest: s.digest.clone(),
        services: s.services(&loaded.catalog),
        skip: if skip { client_faults(s) } else { Vec::new() },
        duration_ms: s.duration.as_ms(),
    }
}

/// Which proxies participants skip when, from the scenario's faults on responder links
/// (for live drills, where bglass cannot cut real links).
pub fn client_faults(scenario: &Scenario) -> Vec<SkipProxy> {
    scenario
        .faults
        .iter()
        .filter_map(|f| match (&f.link, f.kind) {
            (
                Link::ResponderToProxy(p),
                FaultKind::Down | FaultKind::Blackhole | FaultKind::Timeout | FaultKind::Reset,
            ) => Some(SkipProxy {
                proxy: p.clone(),
                start_ms: f.start.as_ms(),
                end_ms: f.end.as_ms(),
            }),
            _ => None,
        })
        .collect()
}
