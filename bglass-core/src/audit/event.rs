//! The events of the audit log: one JSON leaf per event, versioned.
//!
//! Every event names when it happened, which proxy recorded it, and who acted. Where a
//! responder asked for something, the event carries their signed envelope exactly as they
//! sent it, so that a compromised proxy cannot invent a request without the responder's key.

use crate::id::{GrantId, ProxyId, RequestId, ResponderId, ServiceName};
use crate::keys::PublicKey;

/// The event format version this code writes and reads.
pub const EVENT_VERSION: u32 = 1;

/// Longest request path stored in a use event, in bytes (longer paths are cut at a character
/// boundary and marked with `…`), so that an entry never approaches the entry size limit.
pub const MAX_STORED_PATH: usize = 1024;

/// `path` as a use event stores it: at most [`MAX_STORED_PATH`] bytes.
pub fn stored_path(path: &str) -> String {
    if path.len() <= MAX_STORED_PATH {
        return path.to_owned();
    }
    let mut end = MAX_STORED_PATH - '…'.len_utf8();
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

/// A responder's signed envelope, stored exactly as received (base64url fields).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEnvelope {
    /// base64url of the signed payload bytes.
    pub payload: String,
    /// base64url of the signature.
    pub sig: String,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Format version, [`EVENT_VERSION`].
    pub v: u32,
    /// When, in Unix milliseconds (the proxy's clock).
    pub time_ms: u64,
    /// The proxy that recorded it.
    pub proxy: ProxyId,
    /// Who acted: a responder, or `None` for the proxy itself.
    pub actor: Option<ResponderId>,
    /// The drill this event belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
    /// What happened.
    pub event: EventKind,
}

/// Why a request or use was refused (stable codes for reports and metrics).
pub type DenialCode = String;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum EventKind {
    /// The proxy started. The first entry of every log, recording the key that signs its
    /// checkpoints and grants.
    ProxyStart {
        /// The proxy's signing key.
        key: PublicKey,
        /// bglass version.
        version: String,
        /// Digest of the catalog in force.
        catalog: String,
        /// Digest of the roster in force.
        roster: String,
        /// What opening the log repaired (torn tails cut, files rewritten), when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<String>,
    },
    /// The proxy stopped cleanly.
    ProxyStop {
        /// Why.
        reason: String,
    },
    /// A responder asked for access.
    Request {
        /// The request's id.
        request: RequestId,
        /// The service.
        service: ServiceName,
        /// Lifetime asked for, seconds.
        ttl_secs: u64,
        /// Emergency bypass asked for.
        emergency: bool,
        /// Why (from the envelope).
        reason: String,
        /// Incident (from the envelope).
        incident: String,
        /// The signed request.
        envelope: StoredEnvelope,
    },
    /// An approver approved a pending request.
    Approval {
        /// The request.
        request: RequestId,
        /// The approver's signed approval.
        envelope: StoredEnvelope,
    },
    /// Something was refused.
    Denial {
        /// Stable reason code (`bad_signature`, `self_approval`, `expired_grant`, …).
        reason: DenialCode,
        /// The specific error, as shown to the client.
        detail: String,
        /// The request, when one was identified.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<RequestId>,
        /// The service, when one was named.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceName>,
        /// The grant, when one was presented.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant: Option<GrantId>,
        /// The signed request that was refused, when it decoded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        envelope: Option<StoredEnvelope>,
    },
    /// A grant was issued.
    Grant {
        /// The grant's id.
        grant: GrantId,
        /// The request it answers.
        request: RequestId,
        /// Who holds it.
        responder: ResponderId,
        /// The service.
        service: ServiceName,
        /// Valid from, Unix seconds.
        nbf: u64,
        /// Valid until, Unix seconds.
        exp: u64,
        /// Issued under the emergency bypass (review required).
        emergency: bool,
        /// The signed grant token (bound to the responder's key, useless to anyone else).
        token: String,
    },
    /// An HTTP request through the data plane is about to be forwarded: recorded (durable)
    /// before a byte reaches the upstream, so that nothing is served that the log does not
    /// hold. Its outcome follows in a [`EventKind::Use`] naming this entry.
    UseStart {
        /// The grant used.
        grant: GrantId,
        /// The service.
        service: ServiceName,
        /// HTTP method.
        method: String,
        /// Path (without query string), at most [`MAX_STORED_PATH`] bytes.
        path: String,
    },
    /// One HTTP request through the data plane, once answered (or cut).
    Use {
        /// The grant used.
        grant: GrantId,
        /// The service.
        service: ServiceName,
        /// HTTP method.
        method: String,
        /// Path (without query string).
        path: String,
        /// Upstream status.
        status: u16,
        /// Request body bytes.
        bytes_in: u64,
        /// Response body bytes.
        bytes_out: u64,
        /// Duration in milliseconds.
        duration_ms: u64,
        /// The index of its `use_start` entry (absent in logs written before it existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<u64>,
    },
    /// An OpenSSH user certificate was issued for a grant on an SSH service.
    SshCertificate {
        /// The grant.
        grant: GrantId,
        /// The service.
        service: ServiceName,
        /// SHA-256 fingerprint of the certified public key.
        key: String,
        /// The certificate's serial.
        serial: u64,
        /// Principals written into it.
        principals: Vec<String>,
        /// Valid until, Unix seconds: minutes after issue (the proxy's `[ssh]
        /// certificate_ttl`), never past the grant's end.
        valid_before: u64,
    },
    /// A tunnel (SSH or TCP) opened.
    TunnelOpen {
        /// The grant used.
        grant: GrantId,
        /// The service.
        service: ServiceName,
        /// Tunnel number, unique within the proxy run.
        tunnel: u64,
    },
    /// A tunnel closed.
    TunnelClose {
        /// The grant used.
        grant: GrantId,
        /// The service.
        service: ServiceName,
        /// Tunnel number.
        tunnel: u64,
        /// Bytes from the responder to the service.
        bytes_up: u64,
        /// Bytes from the service to the responder.
        bytes_down: u64,
        /// Why it closed (`eof`, `expired`, `revoked`, `error`).
        reason: String,
    },
    /// A recorded SSH session began: the proxy terminates SSH for a `record = true` service
    /// and writes what passes to `recordings/<session>.rec` under the log directory.
    RecordingStart {
        /// The grant used.
        grant: GrantId,
        /// The service.
        service: ServiceName,
        /// The tunnel it runs in.
        tunnel: u64,
        /// The recording's id (its file name without `.rec`).
        session: String,
        /// The login name on the host.
        user: String,
    },
    /// Chunks of a recording were written to disk: each one's size and SHA-256, in order,
    /// the first being chunk number `first` (from 0).
    RecordingChunks {
        /// The recording.
        session: String,
        /// The number of the first chunk listed.
        first: u64,
        /// The chunks.
        chunks: Vec<crate::audit::recording::ChunkDigest>,
    },
    /// A recorded session ended: how many chunks and bytes its recording holds and the
    /// SHA-256 of all of them end to end.
    RecordingEnd {
        /// The grant used.
        grant: GrantId,
        /// The service.
        service: ServiceName,
        /// The recording.
        session: String,
        /// Chunks written.
        chunks: u64,
        /// Bytes written.
        bytes: u64,
        /// SHA-256 of the whole recording, lower-case hex.
        sha256: String,
        /// Why the session ended (`eof`, `expired`, `revoked`, `recording_failed`, …).
        reason: String,
    },
    /// The audit log was read through the proxy's API (entries, tiles, checkpoints, policy
    /// files, recordings): who read what, at most one entry per reader, kind and minute.
    AuditRead {
        /// What was read (`entries`, `tiles`, `checkpoint`, `policy`, `recording`).
        what: String,
        /// Reads of that kind in the minute this entry stands for.
        count: u64,
    },
    /// A grant was ended early.
    Revoke {
        /// The grant.
        grant: GrantId,
        /// Why.
        reason: String,
        /// The approver's signed revocation (none when the proxy revoked on its own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        envelope: Option<StoredEnvelope>,
    },
    /// A grant reached its end.
    Expiry {
        /// The grant.
        grant: GrantId,
    },
    /// An approver closed the review of an emergency bypass.
    Review {
        /// The grant issued under the bypass.
        grant: GrantId,
        /// The reviewer's conclusion.
        note: String,
        /// The reviewer's signed review.
        envelope: StoredEnvelope,
    },
    /// A catalog or roster reload.
    ConfigReload {
        /// Which file (`catalog` or `roster`).
        file: String,
        /// Whether the new version is now in force.
        accepted: bool,
        /// Digest of the accepted version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// Why it was rejected (file:line:column: rule).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The admins whose signatures put it in force (when `proxy.toml` requires them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        signers: Vec<String>,
        /// What it changed from the version before (services, responders).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<crate::config_diff::Change>,
    },
    /// The proxy started on a log that was behind the newest checkpoint it had published
    /// (restored from an older copy, cut short, or replaced), because its operator
    /// accepted that (`bglass-proxy run --accept-rollback`). Recorded before anything else
    /// of that run; the entries after the log's size that the published checkpoint
    /// covered are not in this log.
    LogRollback {
        /// Entries the published checkpoint covered.
        published_size: u64,
        /// Its root hash (base64).
        published_root: String,
        /// Entries the log held when the proxy started.
        size: u64,
        /// What was found, in a sentence.
        detail: String,
    },
    /// The log could not write or sync its files (a full disk, an I/O error, a read-only
    /// file system): from this entry until the matching [`EventKind::LogRecovered`], the
    /// proxy refused every access. Written by the log itself, into space it kept in reserve
    /// for this, when the file system lets it.
    LogFailed {
        /// What failed, as the operating system said it.
        error: String,
    },
    /// The log could write and sync again (written by the log itself); access resumed.
    LogRecovered {
        /// When the failure began, Unix ms.
        failed_ms: u64,
        /// What had failed.
        error: String,
    },
    /// Free space under the proxy's data directory fell below the warning threshold.
    StorageLow {
        /// Bytes free (available to the proxy).
        free_bytes: u64,
        /// The threshold, bytes.
        threshold_bytes: u64,
    },
    /// Free space is above the warning threshold again.
    StorageOk {
        /// Bytes free (available to the proxy).
        free_bytes: u64,
    },
    /// The proxy's signing key was rotated (`bglass-proxy rotate-key`): from this entry on,
    /// checkpoints and grants are signed by the new key.
    SigningKeyRotated {
        /// The statement, signed by the old key and by the new one.
        transition: crate::audit::rotation::KeyTransition,
    },
    /// A canary reported its readiness probes (`bglass canary`).
    CanaryReport {
        /// What each probe found.
        results: Vec<crate::api::CanaryProbe>,
    },
    /// A live drill started.
    DrillStart {
        /// The scenario's name.
        scenario: String,
        /// The drill lead's signed request, when started through the API.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        envelope: Option<StoredEnvelope>,
        /// What participants are asked to do.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<crate::drill::LivePlan>,
    },
    /// A live drill stopped.
    DrillStop {},
    /// A drill's result: counts and whole milliseconds only, never a float (a float does
    /// not survive decoding and re-encoding, and an entry must).
    DrillResult {
        /// The scorecard's totals.
        summary: crate::drill::DrillSummary,
    },
}

impl EventKind {
    /// The event's type name as written in the log.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ProxyStart { .. } => "proxy_start",
            Self::ProxyStop { .. } => "proxy_stop",
            Self::Request { .. } => "request",
            Self::Approval { .. } => "approval",
            Self::Denial { .. } => "denial",
            Self::Grant { .. } => "grant",
            Self::UseStart { .. } => "use_start",
            Self::Use { .. } => "use",
            Self::SshCertificate { .. } => "ssh_certificate",
            Self::TunnelOpen { .. } => "tunnel_open",
            Self::TunnelClose { .. } => "tunnel_close",
            Self::RecordingStart { .. } => "recording_start",
            Self::RecordingChunks { .. } => "recording_chunks",
            Self::RecordingEnd { .. } => "recording_end",
            Self::AuditRead { .. } => "audit_read",
            Self::Revoke { .. } => "revoke",
            Self::Expiry { .. } => "expiry",
            Self::Review { .. } => "review",
            Self::ConfigReload { .. } => "config_reload",
            Self::LogRollback { .. } => "log_rollback",
            Self::LogFailed { .. } => "log_failed",
            Self::LogRecovered { .. } => "log_recovered",
            Self::StorageLow { .. } => "storage_low",
            Self::StorageOk { .. } => "storage_ok",
            Self::SigningKeyRotated { .. } => crate::audit::rotation::EVENT_TYPE,
            Self::CanaryReport { .. } => "canary_report",
            Self::DrillStart { .. } => "drill_start",
            Self::DrillStop {} => "drill_stop",
            Self::DrillResult { .. } => "drill_result",
        }
    }

    /// The service the event concerns, when it names one.
    pub fn service(&self) -> Option<&ServiceName> {
        match self {
            Self::Request { service, .. }
            | Self::Grant { service, .. }
            | Self::Use { service, .. }
            | Self::UseStart { service, .. }
            | Self::SshCertificate { service, .. }
            | Self::TunnelOpen { service, .. }
            | Self::TunnelClose { service, .. }
            | Self::RecordingStart { service, .. }
            | Self::RecordingEnd { service, .. } => Some(service),
            Self::Denial { service, .. } => service.as_ref(),
            _ => None,
        }
    }

    /// The grant the event concerns, when it names one.
    pub fn grant(&self) -> Option<&GrantId> {
        match self {
            Self::Grant { grant, .. }
            | Self::Use { grant, .. }
            | Self::UseStart { grant, .. }
            | Self::SshCertificate { grant, .. }
            | Self::TunnelOpen { grant, .. }
            | Self::TunnelClose { grant, .. }
            | Self::RecordingStart { grant, .. }
            | Self::RecordingEnd { grant, .. }
            | Self::Revoke { grant, .. }
            | Self::Expiry { grant }
            | Self::Review { grant, .. } => Some(grant),
            Self::Denial { grant, .. } => grant.as_ref(),
            _ => None,
        }
    }

    /// The request the event concerns, when it names one.
    pub fn request(&self) -> Option<&RequestId> {
        match self {
            Self::Request { request, .. }
            | Self::Approval { request, .. }
            | Self::Grant { request, .. } => Some(request),
            Self::Denial { request, .. } => request.as_ref(),
            _ => None,
        }
    }
}

/// Why bytes are not an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not JSON for the event schema.
    #[error("not a valid bglass event: {0}")]
    Malformed(String),
    /// A version this code does not read.
    #[error("event version {0} is not supported (expected {EVENT_VERSION})")]
    Version(u32),
}

impl Event {
    /// Encodes the event as the exact bytes of a log entry.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EventError> {
        serde_json::to_vec(self).map_err(|e| EventError::Malformed(e.to_string()))
    }

    /// Decodes a log entry.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EventError> {
        let event: Event = crate::wire::json_exact(bytes).map_err(|shape| {
            EventError::Malformed(match shape {
                crate::wire::Shape::Truncated => "truncated".to_owned(),
                crate::wire::Shape::Trailing => "trailing bytes".to_owned(),
                crate::wire::Shape::Malformed(m) => m,
            })
        })?;
        if event.v != EVENT_VERSION {
            return Err(EventError::Version(event.v));
        }
        Ok(event)
    }

    /// The responder the event is about: the actor, or the grant holder for grant events.
    pub fn responder(&self) -> Option<&ResponderId> {
        match &self.event {
            EventKind::Grant { responder, .. } => Some(responder),
            _ => self.actor.as_ref(),
        }
    }
}

/// The type name of the event in a log entry (`"use"`, `"grant"`, …), read from the head
/// of the canonical encoding the log writes (fields in a fixed order) without parsing the
/// entry. `None` when the entry does not start the way the log writes events; the caller
/// then parses it fully.
pub fn peek_kind(entry: &[u8]) -> Option<&str> {
    let rest = entry.strip_prefix(b"{\"v\":1,\"time_ms\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // Ids never hold a quote or a backslash.
    let rest = rest.get(digits..)?.strip_prefix(b",\"proxy\":\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    let rest = rest.get(end + 1..)?.strip_prefix(b",\"actor\":")?;
    let rest = match rest.strip_prefix(b"null") {
        Some(rest) => rest,
        None => {
            let rest = rest.strip_prefix(b"\"")?;
            let end = rest.iter().position(|b| *b == b'"')?;
            rest.get(end + 1..)?
        }
    };
    let rest = match rest.strip_prefix(b",\"drill\":\"") {
        // A JSON string: the first quote not escaped by a backslash ends it.
        Some(drill) => {
            let mut i = 0;
            loop {
                match drill.get(i)? {
                    b'\\' => i += 2,
                    b'"' => break drill.get(i + 1..)?,
                    _ => i += 1,
                }
            }
        }
        None => rest,
    };
    let rest = rest.strip_prefix(b",\"event\":{\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_is_read_from_the_head_without_parsing() {
        let base = Event {
            v: EVENT_VERSION,
            time_ms: 1_767_225_600_000,
            proxy: ProxyId::new("proxy-a").unwrap(),
            actor: None,
            drill: None,
            event: EventKind::Expiry {
                grant: GrantId::new("g-0000000000000001").unwrap(),
            },
        };
        let mut with_actor = base.clone();
        with_actor.actor = Some(ResponderId::new("alice").unwrap());
        with_actor.event = EventKind::ProxyStop {
            reason: "\"event\":{\"grant\"".to_owned(),
        };
        let mut with_drill = with_actor.clone();
        with_drill.drill = Some("a \"quoted\\\" drill \\".to_owned());
        with_drill.event = EventKind::DrillStop {};
        for (event, kind) in [
            (&base, "expiry"),
            (&with_actor, "proxy_stop"),
            (&with_drill, "drill_stop"),
        ] {
            let bytes = event.to_bytes().unwrap();
            assert_eq!(
                peek_kind(&bytes),
                Some(kind),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(event.event.type_name(), kind);
        }
        assert_eq!(peek_kind(b"{\"v\":2,\"time_ms\":1}"), None);
        assert_eq!(peek_kind(b"{\"v\":1,\"time_ms\":1,\"proxy\":\"p"), None);
        assert_eq!(peek_kind(b""), None);
    }

    #[test]
    fn events_round_trip_and_refuse_unknown_fields() {
        let event = Event {
            v: EVENT_VERSION,
            time_ms: 1_767_225_600_000,
            proxy: ProxyId::new("proxy-a").unwrap(),
            actor: Some(ResponderId::new("alice").unwrap()),
            drill: None,
            event: EventKind::Expiry {
                grant: GrantId::new("g-0000000000000001").unwrap(),
            },
        };
        let bytes = event.to_bytes().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"v":1,"time_ms":1767225600000,"proxy":"proxy-a","actor":"alice","event":{"expiry":{"grant":"g-0000000000000001"}}}"#
        );
        assert_eq!(Event::from_bytes(&bytes).unwrap(), event);
        let extra = String::from_utf8(bytes)
            .unwrap()
            .replace("\"v\":1,", "\"v\":1,\"x\":2,");
        assert!(Event::from_bytes(extra.as_bytes()).is_err());
        let v2 = r#"{"v":2,"time_ms":1,"proxy":"p","actor":null,"event":{"drill_stop":{}}}"#;
        assert!(matches!(
            Event::from_bytes(v2.as_bytes()),
            Err(EventError::Version(2))
        ));
    }

    #[test]
    fn stored_paths_are_cut_at_a_character_boundary_and_marked() {
        assert_eq!(stored_path("/api/health"), "/api/health");
        let long = format!("/{}", "é".repeat(2000));
        let stored = stored_path(&long);
        assert!(stored.len() <= MAX_STORED_PATH, "{}", stored.len());
        assert!(stored.ends_with('…'));
        assert!(long.starts_with(stored.trim_end_matches('…')));
        let exact = "x".repeat(MAX_STORED_PATH);
        assert_eq!(stored_path(&exact), exact);
    }
}
