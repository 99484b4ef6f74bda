//! `bglass whoami`: unlock the key and show who this CLI acts as (and the roster entry).
//!
//! Proves the passphrase and key file work before an outage needs them (or, while a key
//! agent runs, shows that it signs and until when).

use std::path::Path;

use bglass_client::identity::Identity;
use bglass_core::timestamp;

use crate::config::{self, Config};
use crate::error::CliResult;

/// Runs `bglass whoami`.
pub fn run(config_flag: Option<&Path>) -> CliResult {
    let location = config::locate(config_flag)?;
    let config = Config::load(&location.path).map_err(config::config_error)?;
    let identity = Identity::unlock(&location.path, &config)?;
    crate::outln!("responder: {}", identity.id)?;
    crate::outln!("key:       {}", identity.public_key())?;
    crate::outln!("key id:    {}", identity.public_key().key_id())?;
    crate::outln!("config:    {}", location.path.display())?;
    if let Some(agent) = identity.agent_client() {
        crate::outln!(
            "agent:     unlocked until {} (pid {}, {})",
            timestamp::format_secs(agent.info().expires),
            agent.info().pid,
            agent.path().display()
        )?;
    }
    for (i, proxy) in config.proxies.iter().enumerate() {
        crate::outln!("proxy {}:   {} (pin {})", i + 1, proxy.url, proxy.pin)?;
    }
    Ok(())
}
