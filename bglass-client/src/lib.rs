//! The client of bglass proxies, shared by the `bglass` CLI and the drill simulator: the
//! responder's config and key, the state kept beside it (pinned proxies, grants, receipts),
//! sessions that fail over between proxies and check every proxy's log for a split view,
//! tunnels, and the errors all of these report (each with a kind the CLI turns into an exit
//! code).

pub mod agent;
pub mod client;
pub mod config;
pub mod error;
pub mod failure;
pub mod identity;
pub mod output;
pub mod passphrase;
pub mod ssh;
pub mod store;
pub mod style;
pub mod tunnel;
