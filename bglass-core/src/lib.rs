//! bglass-core: the pure logic of bglass, shared by the proxy and the CLI.
//!
//! No sockets, no async runtime, no terminal: formats, parsing, validation and verification
//! only, so that every rule that decides access can be tested and fuzzed on its own.
//!
//! - [`catalog`]: the critical tools (`services.toml`).
//! - [`roster`]: who may use a proxy (`responders.toml`).
//! - [`keys`]: Ed25519 keys and the responder's encrypted key file.
//! - [`envelope`]: signed requests from responders.
//! - [`grant`]: signed grants from proxies; [`grant::VerifiedGrant`] only from verification.
//! - [`policy`]: the access policy: the proxy's live state, the decisions taken on it and
//!   how audit events change it.
//! - [`audit`]: the append-only audit log, its checkpoints, proofs, verification and reports.
//! - [`failstale`]: keep the last good configuration when a reload is rejected.
//! - [`admin`]: catalog and roster changes signed by k of n admins; [`config_diff`]: what
//!   a change changes; [`rekey`]: a responder's new key vouched for by the old one.
//! - [`vault`]: the proxy's sealed keys and upstream credentials, bound to their services.
//! - [`api`]: the control API's wire types.
//! - [`suggest`]: "did you mean" for mistyped names.
//! - [`source`], [`id`], [`duration`], [`size`], [`timestamp`]: strict file reading, names,
//!   durations, sizes and times.

pub mod admin;
pub mod api;
pub mod audit;
// The shared test fixtures name this crate as other crates do (`bglass_core::…`).
#[cfg(test)]
extern crate self as bglass_core;
pub mod catalog;
pub mod config_diff;
pub mod drill;
pub mod duration;
pub mod envelope;
pub mod failstale;
pub mod grant;
pub mod headers;
pub mod id;
pub mod keys;
pub mod policy;
pub mod rekey;
pub mod roster;
pub mod scenario;
pub mod size;
pub mod source;
pub mod suggest;
pub mod timestamp;
pub mod vault;
mod wire;

#[cfg(test)]
mod testkit;

/// Re-exported so that callers build passphrases with the same type the key file takes.
pub use age::secrecy::{ExposeSecret, SecretString};
