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
