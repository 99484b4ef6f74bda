//! The control API's JSON bodies, shared by the proxy and the CLI (documented in
//! `docs/api.md`).

use crate::audit::receipt::Receipt;
use crate::catalog::{ServiceKind, TcpProbe};
use crate::id::{GrantId, ProxyId, RequestId, ResponderId, ServiceName};

/// The header that carries a grant on data-plane requests.
pub const GRANT_HEADER: &str = "bglass-grant";

/// An error answer: a stable code, one sentence, and what to do next.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiError {
    /// Stable machine-readable code (`bad_signature`, `replayed`, `self_approval`, …).
    pub error: String,
    /// One sentence for the user.
    pub message: String,
    /// What to do next, when there is something to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A grant as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrantView {
    /// Grant id.
    pub id: GrantId,
    /// The signed token (only shown to its holder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Holder.
    pub responder: ResponderId,
    /// Service.
    pub service: ServiceName,
    /// The request it answers.
    pub request: RequestId,
    /// Valid from, Unix seconds.
    pub nbf: u64,
    /// Valid until, Unix seconds.
    pub exp: u64,
    /// Issued under the emergency bypass.
    pub emergency: bool,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// For emergency grants: whether the review is still open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_open: Option<bool>,
}

/// An access request as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestView {
    /// Request id.
    pub id: RequestId,
    /// Requester.
    pub responder: ResponderId,
    /// Service.
    pub service: ServiceName,
    /// Lifetime asked for, seconds.
    pub ttl_secs: u64,
    /// Why.
    pub reason: String,
    /// Incident.
    pub incident: String,
    /// Emergency bypass asked for.
    pub emergency: bool,
    /// `pending`, `granted`, `denied`, `expired` or `cancelled` (withdrawn by its requester).
    pub status: String,
    /// Approvers who approved so far.
    pub approved_by: Vec<ResponderId>,
    /// Approvals the catalog requires.
    pub approvals_needed: u8,
    /// When it was made, Unix ms.
    pub created_ms: u64,
    /// Why it was denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<String>,
    /// The grant, once issued (its token only for the requester).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantView>,
    /// A receipt for the grant's audit entry, once a checkpoint covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// The audit index of the grant entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_index: Option<u64>,
    /// Order of arrival at the proxy (for `GET /v1/requests?wait=S&since=SEQ`).
    #[serde(default)]
    pub seq: u64,
    /// The service's kind (`http`, `ssh`, `tcp`), when the catalog in force still holds
    /// it: how the grant is used (`curl`/`open`, `ssh`, `forward`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ServiceType>,
}

/// A catalog service's kind as the API names it (`http`, `ssh`, `tcp`): a client refuses
/// an answer with a kind it does not know rather than guess how to reach the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServiceType {
    /// A web tool or API reached through `/s/<name>/`.
    Http,
    /// An SSH host reached with a short-lived certificate.
    Ssh,
    /// A TCP service reached through a tunnel.
    Tcp,
}

impl ServiceType {
    /// The kind of a catalog service.
    pub fn of(kind: &ServiceKind) -> Self {
        match kind {
            ServiceKind::Http { .. } => Self::Http,
            ServiceKind::Ssh { .. } => Self::Ssh,
            ServiceKind::Tcp { .. } => Self::Tcp,
        }
    }

    /// The name as the catalog and the API write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Ssh => "ssh",
            Self::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for ServiceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// A catalog service's state in `/v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: ServiceName,
    /// Kind.
    pub kind: ServiceType,
    /// Approvals needed.
    pub approvals: u8,
    /// Emergency bypass allowed.
    pub emergency_bypass: bool,
    /// For TCP services, the protocol the health probe speaks (`postgres`, `redis`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<TcpProbe>,
    /// For HTTP services, the health path (what a drill participant requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    /// `up`, `down` or `unknown` (informational only).
    pub health: String,
    /// Why, when down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The last readiness probe a canary reported for it (`bglass canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
}

/// One pathway's readiness probe, as `bglass canary` reports it to the proxy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryProbe {
    /// The service probed.
    pub service: ServiceName,
    /// Whether the pathway worked end to end.
    pub ok: bool,
    /// Where it broke: `pin`, `roster`, `grant`, `injection`, `upstream` or `login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What was seen, in a sentence.
    pub detail: String,
}

/// Most probes one canary report may carry.
pub const MAX_CANARY_PROBES: usize = 256;
/// Longest detail of one probe, in bytes.
pub const MAX_CANARY_DETAIL: usize = 512;

/// A service's last canary result, as the proxy keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanaryStatus {
    /// The last probe.
    pub probe: CanaryProbe,
    /// When it was reported, Unix ms.
    pub at_ms: u64,
    /// The last time a probe succeeded, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok_ms: Option<u64>,
}

/// `/v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusView {
    /// Proxy id.
    pub proxy: ProxyId,
    /// bglass version.
    pub version: String,
    /// The caller, as the roster knows them.
    pub you: ResponderId,
    /// Your roles.
    pub roles: Vec<String>,
    /// Digest of the catalog in force.
    pub catalog: String,
    /// The last rejected catalog reload, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_rejected: Option<String>,
    /// The last rejected roster reload, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_rejected: Option<String>,
    /// Entries in the audit log.
    pub log_size: u64,
    /// The audit log's failure, if it failed (the proxy then refuses access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_failure: Option<String>,
    /// Since when the audit log has been failed, Unix ms (while it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_failed_since_ms: Option<u64>,
    /// Audit log failures since the proxy started (each one refused access until the log
    /// could write again).
    #[serde(default)]
    pub audit_failures: u64,
    /// The last audit log failure the proxy recovered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_last_recovery: Option<AuditRecoveryView>,
    /// The disk under the proxy's data directory (absent from proxies that do not report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    /// Services.
    pub services: Vec<ServiceStatus>,
}

/// An audit log failure the proxy recovered from, in `/v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecoveryView {
    /// When the log failed, Unix ms.
    pub failed_ms: u64,
    /// When it could write again (and access resumed), Unix ms.
    pub recovered_ms: u64,
    /// What had failed.
    pub error: String,
}

/// The disk under the proxy's data directory, in `/v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StorageStatus {
    /// Bytes free (available to the proxy); absent when not measured yet or not measurable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    /// The warning threshold (`[storage] free_space_warning`), bytes.
    pub threshold_bytes: u64,
    /// Free space fell below the threshold and has not risen clearly above it since.
    pub low: bool,
    /// Why free space could not be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A proof answer: hashes, base64.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProofView {
    /// The proof's hashes, base64.
    pub proof: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: &str, probe: &str) -> Result<ServiceStatus, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{"name":"db","kind":"{kind}","approvals":0,"emergency_bypass":false,{probe}"health":"up"}}"#
        ))
    }

    /// Kinds and probes are the catalog's names on the wire, and an unknown one is refused
    /// rather than read as something else.
    #[test]
    fn service_kinds_and_probes_are_typed_on_the_wire() {
        let s = status("tcp", r#""probe":"postgres","#).unwrap();
        assert_eq!(
            (s.kind, s.probe),
            (ServiceType::Tcp, Some(TcpProbe::Postgres))
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap()["probe"],
            serde_json::json!("postgres")
        );
        assert_eq!(status("http", "").unwrap().kind, ServiceType::Http);
        assert_eq!(format!("{:<4}|", ServiceType::Ssh), "ssh |");
        assert!(status("ftp", "").is_err(), "an unknown kind");
        assert!(
            status("tcp", r#""probe":"mysql","#).is_err(),
            "an unknown probe"
        );
        assert!(status("Tcp", "").is_err(), "names are lowercase");
    }
}
