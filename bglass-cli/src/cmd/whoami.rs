//! `bglass whoami`: unlock the key and show who this CLI acts as (and the roster entry).
//!
//! Proves the passphrase and key file work before an outage needs them.

use std::path::Path;

use bglass_core::keys::{KeyFileError, ResponderIdentity};

use crate::config::{self, Config};
use crate::error::{CliError, CliResult};
use crate::passphrase;

/// Runs `bglass whoami`.
pub fn run(config_flag: Option<&Path>) -> CliResult {
    let location = config::locate(config_flag)?;
    let config = Config::load(&location.path).map_err(config::config_error)?;
    let passphrase = passphrase::existing_passphrase(&config.identity)?;
    let identity = ResponderIdentity::open_file(&config.identity, &passphrase).map_err(|e| {
        let hint = match &e {
            KeyFileError::WrongPassphrase { .. } => Some(format!(
                "type it again, or check {}",
                passphrase::PASSPHRASE_ENV
            )),
            KeyFileError::InsecurePermissions { .. } => None,
            _ => Some("re-enroll if the key file is lost or damaged".to_owned()),
        };
        let err = CliError::user(&e);
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    })?;
    if identity.id != config.responder {
        return Err(CliError::user(format!(
            "the key file belongs to {}, but the config says responder = {}",
            identity.id, config.responder
        )));
    }
    crate::outln!("responder: {}", identity.id)?;
    crate::outln!("key:       {}", identity.key.public_key())?;
    crate::outln!("key id:    {}", identity.key.public_key().key_id())?;
    crate::outln!("config:    {}", location.path.display())?;
    for (i, proxy) in config.proxies.iter().enumerate() {
        crate::outln!("proxy {}:   {} (pin {})", i + 1, proxy.url, proxy.pin)?;
    }
    Ok(())
}
