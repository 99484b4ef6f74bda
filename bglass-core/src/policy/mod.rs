//! The access policy: who may have which tool for how long, decided on the proxy's live
//! state and applied from the audit log. It lives in the core, beside the formats it rules
//! on, so that it is tested and fuzzed without a proxy (the `policy` fuzz target drives it
//! with arbitrary sequences of requests, approvals, revocations and roster changes).
//!
//! "The log is the database": the [`State`] is only ever changed by applying audit events
//! ([`State::apply`]), at start-up ([`State::replay`]) and live, so a restarted proxy
//! rebuilds exactly what it had.
//!
//! Decisions (`State::decide_*`, in `decide.rs`) look at the state, the catalog and the
//! roster and return the events to append, or a [`Refusal`] with a stable reason code. They
//! do not touch the state; the caller applies the events once it has queued them to the
//! log, in the same order.
//!
//! - `refusal.rs`: [`Refusal`] and the stable codes of envelope errors.
//! - `state.rs`: the records, [`State::apply`], [`State::replay`] and the queries of the
//!   background tasks (expiries, departed holders, the drill an event belongs to).
//! - `decide.rs`: the decisions.
//! - `views.rs`: requests and grants as the API shows them.

use crate::audit::event::EventKind;
use crate::catalog::Catalog;
use crate::id::{ProxyId, ResponderId};
use crate::keys::SigningKey;
use crate::roster::{Responder, Roster};

mod decide;
mod refusal;
mod state;
mod views;

#[cfg(test)]
mod tests;

pub use crate::audit::log::ReplayError;
pub use refusal::{Refusal, envelope_code, envelope_refusal};
pub use state::{GrantRec, PolicyInForce, RequestRec, RequestStatus, State};
pub use views::{expired_refusal, span};

/// The event kinds [`State::apply`] leaves the state unchanged for, so that replay skips
/// parsing them (a test applies each and checks).
pub const REPLAY_IGNORES: &[&str] = &[
    "use",
    "use_start",
    "ssh_certificate",
    "tunnel_open",
    "tunnel_close",
    "proxy_stop",
    "drill_result",
    "log_rollback",
    "log_failed",
    "log_recovered",
    "storage_low",
    "storage_ok",
];

/// Nonces remembered (within the ±5 min window).
pub const REPLAY_CAPACITY: usize = 1_000_000;
/// Nonces remembered for one responder: about 33 signed requests a second, sustained over
/// the window; one responder can never fill the guard for everyone.
pub const REPLAY_QUOTA: usize = 20_000;
/// The denial reason of a request that waited longer than the proxy's `request_ttl`.
pub const REQUEST_EXPIRED: &str = "request_expired";
/// The denial reason of a request an approver refused.
pub const DENIED_BY_APPROVER: &str = "denied_by_approver";
/// The denial reason of a request its requester withdrew (`bglass requests cancel`).
pub const CANCELLED_BY_REQUESTER: &str = "cancelled_by_requester";

/// What a decision wants appended: the events, in order, each with its actor.
pub type Decision = Result<Vec<(Option<ResponderId>, EventKind)>, Refusal>;

/// Everything a decision needs besides the state.
#[derive(Debug)]
pub struct Context<'a> {
    /// This proxy.
    pub proxy: &'a ProxyId,
    /// The signing key.
    pub key: &'a SigningKey,
    /// The catalog in force.
    pub catalog: &'a Catalog,
    /// The roster in force.
    pub roster: &'a Roster,
    /// The caller.
    pub caller: &'a Responder,
    /// Now, Unix ms.
    pub now_ms: u64,
}
