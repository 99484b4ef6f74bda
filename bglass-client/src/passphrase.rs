//! Getting the passphrase that protects the responder key: `BGLASS_PASSPHRASE` for drills,
//! tests and automation, otherwise the terminal.

use bglass_core::SecretString;
use bglass_core::keys::MIN_PASSPHRASE_CHARS;

use crate::error::{CliError, CliResult};

/// The environment variable that unlocks the key without a prompt.
pub const PASSPHRASE_ENV: &str = "BGLASS_PASSPHRASE";

fn from_env() -> CliResult<Option<SecretString>> {
    match std::env::var(PASSPHRASE_ENV) {
        Ok(value) => Ok(Some(SecretString::from(value))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(CliError::user(format!(
            "{PASSPHRASE_ENV} is not valid UTF-8"
        ))),
    }
}

fn no_terminal(e: &std::io::Error) -> CliError {
    CliError::user(format!("cannot ask for the passphrase: no terminal ({e})"))
        .with_hint(format!("set {PASSPHRASE_ENV} to unlock without a terminal"))
}

/// A new passphrase: from the environment, or asked twice on the terminal.
pub fn new_passphrase() -> CliResult<SecretString> {
    if let Some(p) = from_env()? {
        return Ok(p);
    }
    let first = rpassword::prompt_password(format!(
        "New passphrase for your bglass key (at least {MIN_PASSPHRASE_CHARS} characters): "
    ))
    .map_err(|e| no_terminal(&e))?;
    let second =
        rpassword::prompt_password("Repeat the passphrase: ").map_err(|e| no_terminal(&e))?;
    if first != second {
        return Err(CliError::user("the two passphrases differ").with_hint("run the command again"));
    }
    Ok(SecretString::from(first))
}

/// The passphrase of an existing key: from the environment, or asked on the terminal.
pub fn existing_passphrase(path: &std::path::Path) -> CliResult<SecretString> {
    if let Some(p) = from_env()? {
        return Ok(p);
    }
    let p = rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
        .map_err(|e| no_terminal(&e))?;
    Ok(SecretString::from(p))
}
