//! bglass-proxy: the out-of-band authenticating proxy.
//!
//! - `init`: a new proxy cell (keys, certificates, vault, config).
//! - `config`: `proxy.toml`.
//! - `server`: the listener, control API and data plane; the access policy they apply is
//!   `bglass_core::policy`.
//! - `ssh_ca`: `ssh-ca begin|finish|retire|keys`, the SSH CA rotated with an overlap.
//! - `recording_keys`: the session CA and SSH host key of recorded sessions.
//! - `rotate`: `rotate-key`, the signing key's rotation recorded in the log.
//! - `check`: catalog and roster validation as the proxy loads them.
//! - `ssh_settings`: `[ssh]` in `proxy.toml` (what binds SSH certificates to the path).
//! - `upstream`: the client to upstream tools (plain HTTP, or HTTPS with a pin and a name).

pub mod check;
pub mod config;
pub mod init;
pub mod metrics;
pub mod recording_keys;
pub mod rotate;
pub mod server;
pub mod ssh_ca;
pub mod ssh_settings;
pub mod upstream;
