//! A refusal: the "no" of a decision, with the stable code clients, metrics and the audit
//! log share, and the codes of envelope errors.

use crate::envelope::EnvelopeError;

/// A refusal: stable code (for metrics, the log and clients), sentence, hint, HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Stable code.
    pub code: &'static str,
    /// One sentence.
    pub message: String,
    /// What to do next.
    pub hint: Option<String>,
    /// HTTP status.
    pub status: u16,
}

impl Refusal {
    /// A refusal.
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
            status,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Refusal {}

/// The stable reason code of an envelope error.
pub fn envelope_code(e: &EnvelopeError) -> &'static str {
    match e {
        EnvelopeError::TooLarge { .. } => "too_large",
        EnvelopeError::Truncated
        | EnvelopeError::TrailingBytes
        | EnvelopeError::Malformed { .. }
        | EnvelopeError::BadText { .. } => "malformed",
        EnvelopeError::UnsupportedVersion { .. } => "unsupported_version",
        EnvelopeError::UnknownResponder { .. } => "unknown_responder",
        EnvelopeError::WrongSigner { .. } => "wrong_signer",
        EnvelopeError::BadSignature => "bad_signature",
        EnvelopeError::ConnectionKeyMismatch => "connection_key_mismatch",
        EnvelopeError::Expired { .. } => "stale_request",
        EnvelopeError::NotYetValid { .. } => "future_request",
        EnvelopeError::WrongAudience { .. } => "wrong_audience",
        EnvelopeError::Replayed => "replayed",
        EnvelopeError::ReplayGuardFull => "busy",
        EnvelopeError::ReplayQuota { .. } => "too_many_requests",
    }
}

/// The refusal of an envelope error: its stable code, the HTTP status clients see, and a
/// hint where the responder can do something about it.
pub fn envelope_refusal(e: &EnvelopeError) -> Refusal {
    let status = match e {
        EnvelopeError::TooLarge { .. }
        | EnvelopeError::Truncated
        | EnvelopeError::TrailingBytes
        | EnvelopeError::Malformed { .. }
        | EnvelopeError::BadText { .. }
        | EnvelopeError::UnsupportedVersion { .. } => 400,
        EnvelopeError::WrongAudience { .. } => 421,
        EnvelopeError::Replayed => 409,
        EnvelopeError::ReplayGuardFull => 503,
        EnvelopeError::ReplayQuota { .. } => 429,
        EnvelopeError::UnknownResponder { .. }
        | EnvelopeError::WrongSigner { .. }
        | EnvelopeError::BadSignature
        | EnvelopeError::ConnectionKeyMismatch
        | EnvelopeError::Expired { .. }
        | EnvelopeError::NotYetValid { .. } => 401,
    };
    let refusal = Refusal::new(envelope_code(e), status, e.to_string());
    match e {
        EnvelopeError::Expired { .. } | EnvelopeError::NotYetValid { .. } => refusal
            .hint("set your machine's clock right; requests are valid for 5 minutes either way"),
        EnvelopeError::WrongAudience { .. } => {
            refusal.hint("the request was signed for another proxy")
        }
        _ => refusal,
    }
}
