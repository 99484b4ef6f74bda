//! Drill scenarios (`drills/*.toml`): which production dependencies are down, timed network
//! faults on named links, the participants, and what must hold at the end.
//!
//! Parsed like the catalog: size and line limits before parsing, unknown fields rejected,
//! every value validated, every error located (`file:line:column: rule`); the reading is in
//! [`read`], one module per section of the file. References to the catalog (services) and
//! to the declared production dependencies are checked by [`Scenario::check`] once those
//! files are loaded, with the same locations.

mod error;
mod fault;
pub mod production;
mod read;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::id::{DependencyName, ProxyId, ScenarioName, ServiceName};
use crate::source::{Located, Position, Source, SourceLimits};

pub use crate::duration::{Millis, MillisError};
pub use error::{ScenarioError, ScenarioProblem};
pub use fault::{FAULT_KINDS, Fault, FaultKind, Link, LinkError, parse_rate, rate_text};
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
    /// Its name (names the drill).
    pub name: ScenarioName,
    /// What it rehearses, for people.
    pub description: String,
    /// The catalog to use, resolved against the scenario's directory; `None` means the
    /// catalog shipped inside bglass.
    pub catalog: Option<PathBuf>,
    /// The declared production dependencies, resolved likewise.
    pub production: Option<PathBuf>,
    /// Production dependencies considered down for the whole drill.
    pub down: Vec<Spot<DependencyName>>,
    /// How long the drill may run; accesses not done by then fail with `drill_ended`.
    pub duration: Millis,
    /// The proxies (of the simulated world, or the real ones of a live drill), in the
    /// participants' priority order.
    pub proxies: Vec<ProxyId>,
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
    pub services: Option<Vec<Spot<ServiceName>>>,
    /// Participants start spread evenly over this window.
    pub arrival: Millis,
    /// Ask for the emergency bypass where the catalog allows it.
    pub emergency: bool,
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
    pub name: Spot<ServiceName>,
    /// Least success rate.
    pub success_rate: Option<f64>,
    /// Longest 95th percentile of time to access.
    pub tta_p95: Option<Millis>,
}

impl Scenario {
    /// Reads and validates a scenario file (not yet checked against a catalog).
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let source =
            Source::read(path, SCENARIO_LIMITS).map_err(|e| e.map(ScenarioProblem::Source))?;
        read::scenario(&source)
    }

    /// Validates scenario bytes already in memory; `path` names them in errors and relative
    /// paths are resolved against its directory.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, ScenarioError> {
        let source = Source::from_bytes(path, bytes, SCENARIO_LIMITS)
            .map_err(|e| e.map(ScenarioProblem::Source))?;
        read::scenario(&source)
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
        let exists = |name: &ServiceName| catalog.get(name).is_some();
        let unknown = |what: &'static str, name: &ServiceName, at| {
            err(
                at,
                ScenarioProblem::UnknownService {
                    what,
                    name: name.clone(),
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
                        service: s.name.clone(),
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
                Some(list) => list.iter().any(|x| x.value == s.name),
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// The faults on `link`.
    pub fn faults_on<'a>(&'a self, link: &'a Link) -> impl Iterator<Item = &'a Fault> + 'a {
        self.faults.iter().filter(move |f| &f.link == link)
    }
}
