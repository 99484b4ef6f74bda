//! What a proxy is told at a live drill's start ([`LivePlan`]), checked before the proxy
//! records it: the drill's id, its scenario, the tools participants probe, the proxies they
//! skip when (client-side faults), and how long it runs.

use crate::id::{DrillId, ProxyId, ScenarioName, ServiceName};
use crate::scenario::{MAX_DURATION_MS, MAX_FAULTS};

/// Most services a live drill probes.
pub const MAX_PLAN_SERVICES: usize = 256;

/// A live drill as the drill lead starts it and participants read it from the proxy
/// (`GET /v1/drill`): which tools to probe, which proxies to skip when, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivePlan {
    /// The drill's id: tags the audit events.
    pub drill: DrillId,
    /// The scenario's name.
    pub scenario: ScenarioName,
    /// SHA-256 of the scenario file, hex.
    pub digest: String,
    /// The tools each participant probes.
    pub services: Vec<ServiceName>,
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
    pub proxy: ProxyId,
    /// From, ms after the start.
    pub start_ms: u64,
    /// Until, ms after the start.
    pub end_ms: u64,
}

/// Why a live plan is refused (its names are checked when it is read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The digest is not SHA-256 in hex.
    #[error("digest must be 64 hex digits")]
    Digest,
    /// No service, or more than [`MAX_PLAN_SERVICES`].
    #[error("a drill probes 1-{MAX_PLAN_SERVICES} services, not {0}")]
    Services(usize),
    /// More client-side faults than a scenario may have faults.
    #[error("too many client-side faults: {0}, limit {MAX_FAULTS}")]
    Skips(usize),
    /// Zero, or longer than the longest drill.
    #[error("duration must be between 1 ms and 1 hour, not {0} ms")]
    Duration(u64),
}

impl LivePlan {
    /// Checks the bounds a proxy relies on.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.digest.len() != 64 || !self.digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PlanError::Digest);
        }
        if self.services.is_empty() || self.services.len() > MAX_PLAN_SERVICES {
            return Err(PlanError::Services(self.services.len()));
        }
        if self.skip.len() > MAX_FAULTS {
            return Err(PlanError::Skips(self.skip.len()));
        }
        if self.duration_ms == 0 || self.duration_ms > MAX_DURATION_MS {
            return Err(PlanError::Duration(self.duration_ms));
        }
        Ok(())
    }

    /// Whether participants skip `proxy` at `offset_ms` after the drill's start.
    pub fn skips(&self, proxy: &ProxyId, offset_ms: u64) -> bool {
        self.skip
            .iter()
            .any(|s| s.proxy == *proxy && s.start_ms <= offset_ms && offset_ms < s.end_ms)
    }
}
