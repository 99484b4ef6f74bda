//! The rules a scenario file can break, each with what the drill lead needs to fix it.

use crate::duration::{Millis, MillisError};
use crate::id::{DependencyName, NameError, ProxyId, ServiceName};
use crate::source::{Located, SourceProblem};

use super::fault::{FAULT_KINDS, LinkError};
use super::{MAX_FAULTS, MAX_TEXT_CHARS, SCENARIO_VERSION};

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
    /// A name (the scenario's, a proxy's, a service's, a dependency's) is invalid.
    #[error(transparent)]
    Name(NameError),
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
    #[error(transparent)]
    Link(LinkError),
    /// A link names a proxy the scenario does not have.
    #[error(
        "link responder->proxy:{proxy} names proxy \"{proxy}\", which is not in proxies = [{known}]"
    )]
    UnknownProxy {
        /// The proxy.
        proxy: ProxyId,
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
    #[error("{what} names service \"{name}\", which the catalog ({catalog}) does not have")]
    UnknownService {
        /// Where it was named.
        what: &'static str,
        /// The name.
        name: ServiceName,
        /// The catalog.
        catalog: String,
    },
    /// A dependency is not declared.
    #[error(
        "down names \"{name}\", which the production file does not declare (declared: {known})"
    )]
    UnknownDependency {
        /// The name.
        name: DependencyName,
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
        service: ServiceName,
        /// Approvals it needs.
        needed: u8,
        /// The least number of approvers.
        least: u32,
        /// What the scenario has.
        approvers: u32,
    },
}
