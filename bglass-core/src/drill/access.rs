//! The unit a drill counts: one participant's attempt to reach one tool ([`Access`]), and
//! why it failed ([`Failure`]), as measured by a participant or rebuilt from a log.

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
