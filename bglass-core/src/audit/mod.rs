//! The tamper-evident audit log: what auditors trust and what the proxy rebuilds
//! its state from ("the log is the database").
//!
//! - [`event`]: the JSON events that are the log's entries.
//! - [`tree`]: RFC 6962 hashing and C2SP tiles (over `tlog_tiles`).
//! - [`checkpoint`]: C2SP checkpoints in signed notes (over `signed_note`, signed with ring).
//! - [`storage`]: the files, C2SP tlog-tiles layout plus a write-ahead file.
//! - [`log`]: the writable log: recovery, group commit, checkpoints, proofs.
//! - [`rotation`]: signing-key transitions recorded in the log, and the key chain.
//! - [`receipt`]: what a responder keeps to prove an entry is in the log.
//! - [`verify`]: offline verification of a copied log.
//! - [`mirror`]: an auditor's copy kept current from a proxy's API (`audit monitor`).
//! - [`report`]: filters and the auditor's summary.

pub mod checkpoint;
pub mod describe;
pub mod event;
pub mod inclusion;
pub mod log;
pub mod mirror;
pub mod policy_check;
pub mod policy_files;
#[cfg(test)]
pub(crate) mod policy_fixture;
pub mod receipt;
pub mod recording;
pub mod report;
pub mod review;
pub mod rotation;
pub mod storage;
pub mod tree;
pub mod verify;
pub mod witness;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod rotation_tests;
#[cfg(test)]
mod tests;
