//! Grants: compact tokens a proxy signs to give one responder time-limited access to one
//! service.
//!
//! A grant is `bg1.<base64url(payload JSON)>.<base64url(signature)>`. The signature covers
//! [`GRANT_DOMAIN`] followed by the exact payload bytes. There is no algorithm field and no
//! negotiation: `bg1` means Ed25519 over this payload, and any other prefix is refused.
//!
//! [`GrantVerifier::verify`] is the only way to obtain a [`VerifiedGrant`], and the data plane
//! takes a `VerifiedGrant`, so an unverified token cannot reach an upstream.

use crate::id::{GrantId, ProxyId, RequestId, ResponderId, ServiceName};
use crate::keys::{PublicKey, SigningKey};
use crate::wire::{self, Shape};

/// The version prefix of every grant this code issues and accepts.
pub const GRANT_PREFIX: &str = "bg1";
/// Prefix of every signed grant payload; separates these signatures from all others.
pub const GRANT_DOMAIN: &[u8] = b"bglass/grant/v1\0";
/// Largest accepted token, in bytes.
pub const MAX_GRANT_BYTES: usize = 4096;
/// Default clock skew tolerated at both ends of the validity window, in seconds.
pub const DEFAULT_SKEW_SECS: u64 = 30;
/// Longest validity window a grant may carry (one day).
pub const MAX_GRANT_SECS: u64 = 24 * 3600;

/// What a grant says. Signed by the proxy; public to whoever holds the token.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaims {
    /// The grant's id (revocations and audit events name it).
    pub id: GrantId,
    /// The proxy that issued it.
    pub iss: ProxyId,
    /// Key id of the proxy signing key ([`PublicKey::key_id`]).
    pub kid: String,
    /// The responder it was issued to.
    pub sub: ResponderId,
    /// The responder key it is bound to: only a connection with this client key may use it.
    pub key: PublicKey,
    /// The service it opens.
    pub svc: ServiceName,
    /// The request it answers.
    pub req: RequestId,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not valid before, Unix seconds.
    pub nbf: u64,
    /// Not valid at or after, Unix seconds.
    pub exp: u64,
    /// Issued under the emergency bypass (review required).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emergency: bool,
    /// The drill this grant belongs to, when issued during a drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
    /// A canary grant (`bglass canary`): the proxy allows only the service's probe with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
}

/// How long a canary grant lasts: one round of probes.
pub const CANARY_TTL_SECS: u64 = 60;

/// Why a grant could not be issued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantIssueError {
    /// `exp` is not after `nbf`, or the window is longer than [`MAX_GRANT_SECS`].
    #[error("grant validity window {nbf}..{exp} is empty or longer than {MAX_GRANT_SECS}s")]
    BadWindow {
        /// Not before.
        nbf: u64,
        /// Expiry.
        exp: u64,
    },
    /// `kid` does not name the signing key.
    #[error("grant kid {kid} does not match the signing key {actual}")]
    KeyIdMismatch {
        /// The kid in the claims.
        kid: String,
        /// The signing key's id.
        actual: String,
    },
    /// The claims could not be encoded.
    #[error("grant claims could not be encoded: {0}")]
    Encode(String),
}

/// Signs claims into a token.
pub fn issue(claims: &GrantClaims, key: &SigningKey) -> Result<String, GrantIssueError> {
    if claims.exp <= claims.nbf || claims.exp - claims.nbf > MAX_GRANT_SECS {
        return Err(GrantIssueError::BadWindow {
            nbf: claims.nbf,
            exp: claims.exp,
        });
    }
    let actual = key.public_key().key_id();
    if claims.kid != actual {
        return Err(GrantIssueError::KeyIdMismatch {
            kid: claims.kid.clone(),
            actual,
        });
    }
    let payload = serde_json::to_vec(claims).map_err(|e| GrantIssueError::Encode(e.to_string()))?;
    let sig = key.sign(GRANT_DOMAIN, &payload);
    Ok(format!(
        "{GRANT_PREFIX}.{}.{}",
        wire::b64_encode(&payload),
        wire::b64_encode(&sig)
    ))
}

/// Why a grant was refused. Every variant fails closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantVerifyError {
    /// The token is over [`MAX_GRANT_BYTES`].
    #[error("grant is too large: {size} bytes, limit {MAX_GRANT_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// The token does not start with `bg1.`.
    #[error("grant has an unsupported version prefix {found:?} (expected \"{GRANT_PREFIX}\")")]
    WrongVersion {
        /// The first part of the token (at most 16 characters).
        found: String,
    },
    /// A part of the token is missing or short.
    #[error("grant is truncated")]
    Truncated,
    /// Bytes follow the signature, or a part has bytes after its end.
    #[error("grant has trailing bytes")]
    TrailingBytes,
    /// A part is not valid base64url or the payload is not grant claims.
    #[error("grant is malformed: {reason}")]
    Malformed {
        /// The decoder's description.
        reason: String,
    },
    /// The grant was signed by another key than this proxy's.
    #[error("grant was signed by another key ({found}), not this proxy's ({expected})")]
    WrongSigner {
        /// Key id of the verifying key.
        expected: String,
        /// Key id named in the grant.
        found: String,
    },
    /// The signature does not verify.
    #[error("grant signature is invalid")]
    BadSignature,
    /// Signed with this proxy's key but naming another issuer.
    #[error("grant names issuer {found}, expected {expected}")]
    WrongIssuer {
        /// This proxy.
        expected: ProxyId,
        /// The issuer in the claims.
        found: ProxyId,
    },
    /// The window has not started (beyond the skew allowance).
    #[error("grant is not valid yet: starts in {in_secs}s")]
    NotYetValid {
        /// Seconds until it starts.
        in_secs: u64,
    },
    /// The window has ended (beyond the skew allowance).
    #[error("grant expired {ago_secs}s ago")]
    Expired {
        /// Seconds since it ended.
        ago_secs: u64,
    },
    /// The grant is for another service.
    #[error("grant is for service {found}, not {expected}")]
    WrongService {
        /// The service being used.
        expected: ServiceName,
        /// The service in the grant.
        found: ServiceName,
    },
    /// The grant is bound to another key than the connection's.
    #[error("grant is bound to another responder key than this connection's")]
    WrongBoundKey,
}

impl From<Shape> for GrantVerifyError {
    fn from(shape: Shape) -> Self {
        match shape {
            Shape::Truncated => Self::Truncated,
            Shape::Trailing => Self::TrailingBytes,
            Shape::Malformed(reason) => Self::Malformed { reason },
        }
    }
}

/// Checks grants against one proxy's identity and signing key.
#[derive(Clone, Debug)]
pub struct GrantVerifier {
    issuer: ProxyId,
    key: PublicKey,
    key_id: String,
    /// Keys this proxy signed with before a rotation (by key id).
    previous: Vec<(String, PublicKey)>,
    skew_secs: u64,
}

impl GrantVerifier {
    /// A verifier for grants from `issuer` signed by `key`, with the default skew.
    pub fn new(issuer: ProxyId, key: PublicKey) -> Self {
        let key_id = key.key_id();
        Self {
            issuer,
            key,
            key_id,
            previous: Vec::new(),
            skew_secs: DEFAULT_SKEW_SECS,
        }
    }

    /// Also accepts grants signed by `keys`, the proxy's keys before its rotations, so that
    /// grants issued before a rotation stay valid until they expire. Only for a caller that
    /// also requires each grant to be in the proxy's log (the proxy does): a grant an old
    /// key signs later is in no log.
    pub fn with_previous(mut self, keys: impl IntoIterator<Item = PublicKey>) -> Self {
        self.previous = keys
            .into_iter()
            .filter(|k| *k != self.key)
            .map(|k| (k.key_id(), k))
            .collect();
        self
    }

    /// Sets the clock skew tolerated at both ends of the window.
    pub fn with_skew(mut self, skew_secs: u64) -> Self {
        self.skew_secs = skew_secs;
        self
    }

    /// Verifies `token` for use of `service` at `now` over a connection whose client key is
    /// `presented`. The only way to obtain a [`VerifiedGrant`].
    pub fn verify(
        &self,
        token: &str,
        now: u64,
        service: &ServiceName,
        presented: &PublicKey,
    ) -> Result<VerifiedGrant, GrantVerifyError> {
        if token.len() > MAX_GRANT_BYTES {
            return Err(GrantVerifyError::TooLarge { size: token.len() });
        }
        let mut parts = token.split('.');
        let prefix = parts.next().unwrap_or_default();
        if prefix != GRANT_PREFIX {
            return Err(GrantVerifyError::WrongVersion {
                found: prefix.chars().take(16).collect(),
            });
        }
        let (Some(payload_b64), Some(sig_b64)) = (parts.next(), parts.next()) else {
            return Err(GrantVerifyError::Truncated);
        };
        if parts.next().is_some() {
            return Err(GrantVerifyError::TrailingBytes);
        }
        let payload = wire::b64_decode(payload_b64)?;
        let sig = wire::signature(sig_b64)?;
        let claims: GrantClaims = wire::json_exact(&payload)?;

        let key = if claims.kid == self.key_id {
            &self.key
        } else if let Some((_, key)) = self.previous.iter().find(|(id, _)| *id == claims.kid) {
            key
        } else {
            return Err(GrantVerifyError::WrongSigner {
                expected: self.key_id.clone(),
                found: claims.kid.chars().take(32).collect(),
            });
        };
        if !key.verify(GRANT_DOMAIN, &payload, &sig) {
            return Err(GrantVerifyError::BadSignature);
        }
        if claims.iss != self.issuer {
            return Err(GrantVerifyError::WrongIssuer {
                expected: self.issuer.clone(),
                found: claims.iss,
            });
        }
        if now.saturating_add(self.skew_secs) < claims.nbf {
            return Err(GrantVerifyError::NotYetValid {
                in_secs: claims.nbf - now,
            });
        }
        if now >= claims.exp.saturating_add(self.skew_secs) {
            return Err(GrantVerifyError::Expired {
                ago_secs: now - claims.exp,
            });
        }
        if &claims.svc != service {
            return Err(GrantVerifyError::WrongService {
                expected: service.clone(),
                found: claims.svc,
            });
        }
        if &claims.key != presented {
            return Err(GrantVerifyError::WrongBoundKey);
        }
        Ok(VerifiedGrant {
            claims,
            skew_secs: self.skew_secs,
        })
    }
}

/// A grant whose signature, issuer, window, service and bound key were checked.
///
/// Its fields are private and it has no public constructor: [`GrantVerifier::verify`] is
/// the only way to make one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedGrant {
    claims: GrantClaims,
    skew_secs: u64,
}

impl VerifiedGrant {
    /// The checked claims.
    pub fn claims(&self) -> &GrantClaims {
        &self.claims
    }

    /// Whether the grant is still usable at `now` (for cached grants on long connections).
    pub fn is_live(&self, now: u64) -> bool {
        now.saturating_add(self.skew_secs) >= self.claims.nbf
            && now < self.claims.exp.saturating_add(self.skew_secs)
    }

    /// Seconds left before expiry (zero once expired).
    pub fn remaining_secs(&self, now: u64) -> u64 {
        self.claims.exp.saturating_sub(now)
    }
}

#[cfg(test)]
mod tests;
