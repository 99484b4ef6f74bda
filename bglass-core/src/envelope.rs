//! Signed requests from responders to proxies.
//!
//! An envelope is `{"payload": base64url(JSON bytes), "sig": base64url(Ed25519)}`. The
//! signature covers [`ENVELOPE_DOMAIN`] followed by the exact payload bytes, never a
//! re-serialization. The payload names the responder, their key, the proxy it is for
//! (audience), when it was made, a random nonce, and the action asked for. The proxy keeps
//! the envelope in its audit log, so an auditor can check that every request was really made
//! by the responder it names.

use std::collections::{HashMap, VecDeque};

use crate::duration::HumanDuration;
use crate::id::{GrantId, ProxyId, RandomError, RequestId, ResponderId, ServiceName, random_bytes};
use crate::keys::{PublicKey, SIGNATURE_LEN, SigningKey};
use crate::wire::{self, Shape};

/// Prefix of every signed envelope payload; separates these signatures from all others.
pub const ENVELOPE_DOMAIN: &[u8] = b"bglass/envelope/v1\0";
/// The payload version this code writes and accepts.
pub const ENVELOPE_VERSION: u32 = 1;
/// Largest accepted encoded envelope.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024;
/// How far `iat` may be from the proxy's clock, either way (±5 minutes: room for the clock
/// drift of a laptop during an outage, short enough that a captured envelope soon expires).
pub const FRESHNESS_SECS: u64 = 300;
/// Longest accepted free-text field (reason, incident, note), in characters.
pub const MAX_TEXT_CHARS: usize = 512;

/// A 128-bit random nonce, base64url on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nonce([u8; 16]);

impl Nonce {
    /// A fresh nonce from the system's generator.
    pub fn random() -> Result<Self, RandomError> {
        Ok(Self(random_bytes()?))
    }

    /// Wraps 16 bytes (test vectors).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl serde::Serialize for Nonce {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&wire::b64_encode(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Nonce {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes =
            wire::b64_decode(&s).map_err(|_| serde::de::Error::custom("nonce is not base64url"))?;
        let array: [u8; 16] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("nonce must be 16 bytes"))?;
        Ok(Self(array))
    }
}

/// A request for access to one service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    /// The catalog service.
    pub service: ServiceName,
    /// Requested lifetime; the proxy uses the catalog's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<HumanDuration>,
    /// Why access is needed (free text, required).
    pub reason: String,
    /// The incident this access is for (required).
    pub incident: String,
    /// Ask to skip approvals under the catalog's emergency bypass.
    #[serde(default)]
    pub emergency: bool,
    /// The live drill this access is part of (must be the proxy's running drill). Only
    /// accesses that say so are tagged with a drill: a real access made while a drill runs
    /// is never filed as a drill's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
    /// A readiness probe (`bglass canary`, canary role): granted at once for
    /// [`crate::grant::CANARY_TTL_SECS`], usable only for the service's probe.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
}

/// What the responder asks the proxy to do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Action {
    /// Ask for a grant.
    Access(AccessRequest),
    /// Approve someone else's pending request.
    Approve {
        /// The pending request.
        request: RequestId,
    },
    /// Refuse someone else's pending request.
    Deny {
        /// The pending request.
        request: RequestId,
        /// Why.
        reason: String,
    },
    /// End a grant now.
    Revoke {
        /// The grant.
        grant: GrantId,
        /// Why.
        reason: String,
    },
    /// Close the review of an emergency bypass.
    Review {
        /// The grant issued under the bypass.
        grant: GrantId,
        /// The reviewer's conclusion.
        note: String,
    },
    /// Start a live drill (drill-lead role): the proxy tags every event with its id until
    /// it is stopped or its time is up, and hands its plan to participants.
    DrillStart(crate::drill::LivePlan),
    /// Stop the live drill.
    DrillStop {
        /// The drill's id.
        drill: String,
    },
    /// Report readiness probes (canary role): what `bglass canary` found on each pathway.
    CanaryReport {
        /// One probe per service of this proxy.
        results: Vec<crate::api::CanaryProbe>,
    },
    /// Withdraw your own pending request (only its requester, only while it is pending).
    Cancel {
        /// The pending request.
        request: RequestId,
    },
}

impl Action {
    fn texts(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Access(a) => vec![("reason", &a.reason), ("incident", &a.incident)],
            Self::Approve { .. } => vec![],
            Self::Deny { reason, .. } | Self::Revoke { reason, .. } => vec![("reason", reason)],
            Self::Review { note, .. } => vec![("note", note)],
            Self::DrillStart(_) | Self::DrillStop { .. } | Self::Cancel { .. } => vec![],
            Self::CanaryReport { results } => results
                .iter()
                .map(|p| ("detail", p.detail.as_str()))
                .collect(),
        }
    }
}

/// The signed content of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestPayload {
    /// Payload version, [`ENVELOPE_VERSION`].
    pub v: u32,
    /// Who signs.
    pub responder: ResponderId,
    /// The key that signs; must be the roster's key for `responder`.
    pub key: PublicKey,
    /// The proxy the request is for.
    pub aud: ProxyId,
    /// When it was made, in Unix seconds.
    pub iat: u64,
    /// Random, never reused within the freshness window.
    pub nonce: Nonce,
    /// What is asked.
    pub action: Action,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Outer {
    payload: String,
    sig: String,
}

/// Why an envelope was refused. Every variant fails closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The encoded envelope is over [`MAX_ENVELOPE_BYTES`].
    #[error("envelope is too large: {size} bytes, limit {MAX_ENVELOPE_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// The envelope or its payload ends early, or the signature is short.
    #[error("envelope is truncated")]
    Truncated,
    /// Bytes follow the envelope or its payload, or the signature is long.
    #[error("envelope has trailing bytes")]
    TrailingBytes,
    /// Not an envelope: wrong JSON shape, bad base64url, unknown field.
    #[error("envelope is malformed: {reason}")]
    Malformed {
        /// The decoder's description.
        reason: String,
    },
    /// The payload declares a version this code does not speak.
    #[error("envelope version {found} is not supported (expected {ENVELOPE_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// A free-text field is empty or too long.
    #[error("{field} must be 1-{MAX_TEXT_CHARS} characters without control characters")]
    BadText {
        /// The field.
        field: &'static str,
    },
    /// The named responder is not in the roster.
    #[error("responder {responder} is not in this proxy's roster")]
    UnknownResponder {
        /// The id named in the payload.
        responder: ResponderId,
    },
    /// The payload's key is not the roster's key for the responder.
    #[error("envelope is signed by key {found}, not {responder}'s roster key")]
    WrongSigner {
        /// The id named in the payload.
        responder: ResponderId,
        /// The key id of the key in the payload.
        found: String,
    },
    /// The signature does not verify.
    #[error("envelope signature is invalid")]
    BadSignature,
    /// The TLS connection's client key is not the key that signed.
    #[error("envelope was signed by another key than the connection's client certificate")]
    ConnectionKeyMismatch,
    /// `iat` is older than the freshness window.
    #[error("envelope expired: made {age_secs}s ago, limit {FRESHNESS_SECS}s (check the clock)")]
    Expired {
        /// How old it is.
        age_secs: u64,
    },
    /// `iat` is ahead of the proxy's clock by more than the window.
    #[error(
        "envelope is not yet valid: made {ahead_secs}s in the future, limit {FRESHNESS_SECS}s (check the clock)"
    )]
    NotYetValid {
        /// How far ahead.
        ahead_secs: u64,
    },
    /// The envelope is for another proxy.
    #[error("envelope is addressed to proxy {found}, not {expected}")]
    WrongAudience {
        /// This proxy.
        expected: ProxyId,
        /// The audience in the payload.
        found: ProxyId,
    },
    /// The nonce was already used within the freshness window.
    #[error("envelope was replayed (nonce already seen)")]
    Replayed,
    /// The replay guard is full; the request is refused rather than risk a replay.
    #[error("too many requests in the freshness window; try again shortly")]
    ReplayGuardFull,
    /// This responder has sent more requests in the freshness window than the guard keeps
    /// for one responder.
    #[error("{responder} sent too many requests in the last minutes; wait and try again")]
    ReplayQuota {
        /// The responder.
        responder: ResponderId,
    },
}

impl From<Shape> for EnvelopeError {
    fn from(shape: Shape) -> Self {
        match shape {
            Shape::Truncated => Self::Truncated,
            Shape::Trailing => Self::TrailingBytes,
            Shape::Malformed(reason) => Self::Malformed { reason },
        }
    }
}

/// Signs a payload into envelope bytes. The key must be the payload's key.
pub fn seal(payload: &RequestPayload, key: &SigningKey) -> Result<Vec<u8>, EnvelopeError> {
    if payload.key != key.public_key() {
        return Err(EnvelopeError::WrongSigner {
            responder: payload.responder.clone(),
            found: key.public_key().key_id(),
        });
    }
    check_texts(&payload.action)?;
    let bytes = serde_json::to_vec(payload).map_err(|e| EnvelopeError::Malformed {
        reason: e.to_string(),
    })?;
    let sig = key.sign(ENVELOPE_DOMAIN, &bytes);
    let outer = Outer {
        payload: wire::b64_encode(&bytes),
        sig: wire::b64_encode(&sig),
    };
    serde_json::to_vec(&outer).map_err(|e| EnvelopeError::Malformed {
        reason: e.to_string(),
    })
}

fn check_texts(action: &Action) -> Result<(), EnvelopeError> {
    for (field, text) in action.texts() {
        let n = text.chars().count();
        if n == 0 || n > MAX_TEXT_CHARS || text.chars().any(char::is_control) {
            return Err(EnvelopeError::BadText { field });
        }
    }
    Ok(())
}

/// An envelope whose structure decoded but whose signature and claims are not yet checked.
#[derive(Clone, Debug)]
pub struct DecodedEnvelope {
    payload_bytes: Vec<u8>,
    sig: [u8; SIGNATURE_LEN],
    payload: RequestPayload,
}

impl DecodedEnvelope {
    /// Decodes envelope bytes under the size limit, refusing anything not exactly one envelope.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge { size: bytes.len() });
        }
        let outer: Outer = wire::json_exact(bytes)?;
        let payload_bytes = wire::b64_decode(&outer.payload)?;
        let sig = wire::signature(&outer.sig)?;
        // Read the version alone first so that a future version is named as such rather
        // than reported as unknown fields.
        #[derive(serde::Deserialize)]
        struct VersionOnly {
            v: u32,
        }
        if let Ok(VersionOnly { v }) = serde_json::from_slice::<VersionOnly>(&payload_bytes)
            && v != ENVELOPE_VERSION
        {
            return Err(EnvelopeError::UnsupportedVersion { found: v });
        }
        let payload: RequestPayload = wire::json_exact(&payload_bytes)?;
        if payload.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion { found: payload.v });
        }
        check_texts(&payload.action)?;
        Ok(Self {
            payload_bytes,
            sig,
            payload,
        })
    }

    /// The claimed responder, for looking up their roster entry before verifying.
    pub fn claimed_responder(&self) -> &ResponderId {
        &self.payload.responder
    }

    /// The payload, NOT yet verified: only for reading back envelopes the log already
    /// holds (nonces at replay), never for a decision.
    pub fn unverified_payload(&self) -> &RequestPayload {
        &self.payload
    }

    /// Checks the envelope against the roster key, the connection's key, the clock and the
    /// audience. `roster_key` is the roster's key for [`Self::claimed_responder`], or
    /// `None` when the roster has no such responder.
    pub fn verify(
        self,
        roster_key: Option<&PublicKey>,
        connection_key: Option<&PublicKey>,
        audience: &ProxyId,
        now: u64,
    ) -> Result<VerifiedEnvelope, EnvelopeError> {
        let p = &self.payload;
        let roster_key = roster_key.ok_or_else(|| EnvelopeError::UnknownResponder {
            responder: p.responder.clone(),
        })?;
        if &p.key != roster_key {
            return Err(EnvelopeError::WrongSigner {
                responder: p.responder.clone(),
                found: p.key.key_id(),
            });
        }
        if !roster_key.verify(ENVELOPE_DOMAIN, &self.payload_bytes, &self.sig) {
            return Err(EnvelopeError::BadSignature);
        }
        if connection_key.is_some_and(|k| k != roster_key) {
            return Err(EnvelopeError::ConnectionKeyMismatch);
        }
        if p.iat.saturating_add(FRESHNESS_SECS) < now {
            return Err(EnvelopeError::Expired {
                age_secs: now - p.iat,
            });
        }
        if p.iat > now.saturating_add(FRESHNESS_SECS) {
            return Err(EnvelopeError::NotYetValid {
                ahead_secs: p.iat - now,
            });
        }
        if &p.aud != audience {
            return Err(EnvelopeError::WrongAudience {
                expected: audience.clone(),
                found: p.aud.clone(),
            });
        }
        Ok(VerifiedEnvelope {
            encoded: Outer {
                payload: wire::b64_encode(&self.payload_bytes),
                sig: wire::b64_encode(&self.sig),
            },
            payload: self.payload,
        })
    }
}

/// An envelope whose signature, signer, freshness and audience were checked.
///
/// Only [`DecodedEnvelope::verify`] makes one. Replay is checked separately, against the
/// proxy's [`ReplayGuard`], because it needs the proxy's state.
#[derive(Debug)]
pub struct VerifiedEnvelope {
    encoded: Outer,
    payload: RequestPayload,
}

impl std::fmt::Debug for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outer").finish_non_exhaustive()
    }
}

impl VerifiedEnvelope {
    /// The checked payload.
    pub fn payload(&self) -> &RequestPayload {
        &self.payload
    }

    /// The envelope re-encoded from the exact signed bytes, for the audit log: an auditor
    /// can check its signature without trusting the proxy.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "payload": self.encoded.payload, "sig": self.encoded.sig })
    }
}

/// Remembers nonces for twice the freshness window so that no envelope is accepted twice.
///
/// Bounded: when full, new envelopes are refused ([`EnvelopeError::ReplayGuardFull`]) rather
/// than forgetting nonces early, which would allow a replay. Each responder has a quota of
/// its own ([`EnvelopeError::ReplayQuota`]), so that one responder (a compromised key, a
/// runaway script) cannot fill the guard and lock everyone else out.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: HashMap<(ResponderId, Nonce), u64>,
    order: VecDeque<(u64, ResponderId, Nonce)>,
    per_responder: HashMap<ResponderId, usize>,
    capacity: usize,
    quota: usize,
}

impl ReplayGuard {
    /// A guard holding at most `capacity` nonces, any responder up to all of them.
    pub fn new(capacity: usize) -> Self {
        Self::with_quota(capacity, capacity)
    }

    /// A guard holding at most `capacity` nonces, at most `quota` of one responder.
    pub fn with_quota(capacity: usize, quota: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            per_responder: HashMap::new(),
            capacity,
            quota,
        }
    }

    /// Records the envelope's nonce, or refuses it when already seen.
    pub fn check(&mut self, envelope: &VerifiedEnvelope, now: u64) -> Result<(), EnvelopeError> {
        let p = envelope.payload();
        self.record(&p.responder, p.nonce, p.iat, now)
    }

    /// Records a nonce seen at `iat` (also used when replaying the audit log at start-up).
    pub fn record(
        &mut self,
        responder: &ResponderId,
        nonce: Nonce,
        iat: u64,
        now: u64,
    ) -> Result<(), EnvelopeError> {
        self.expire(now);
        let key = (responder.clone(), nonce);
        if self.seen.contains_key(&key) {
            return Err(EnvelopeError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(EnvelopeError::ReplayGuardFull);
        }
        let held = self.per_responder.entry(responder.clone()).or_insert(0);
        if *held >= self.quota {
            return Err(EnvelopeError::ReplayQuota {
                responder: responder.clone(),
            });
        }
        *held += 1;
        // Keep it until no envelope with this iat can be fresh any more.
        let until = iat.saturating_add(2 * FRESHNESS_SECS);
        self.seen.insert(key.clone(), until);
        self.order.push_back((until, key.0, key.1));
        Ok(())
    }

    fn expire(&mut self, now: u64) {
        // `order` is roughly sorted; pop while the front is expired.
        while let Some((until, _, _)) = self.order.front() {
            if *until >= now {
                break;
            }
            if let Some((until, responder, nonce)) = self.order.pop_front()
                && self.seen.get(&(responder.clone(), nonce)) == Some(&until)
            {
                if let Some(held) = self.per_responder.get_mut(&responder) {
                    *held = held.saturating_sub(1);
                    if *held == 0 {
                        self.per_responder.remove(&responder);
                    }
                }
                self.seen.remove(&(responder, nonce));
            }
        }
    }

    /// How many nonces are held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests;
