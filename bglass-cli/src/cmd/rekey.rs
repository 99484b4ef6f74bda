//! `bglass rekey`: a new key for this responder, vouched for by the old one.
//!
//! Two steps, so that the old key keeps working until the proxies know the new one:
//! `bglass rekey` writes the new key beside the old (`identity.age.next`) and prints the
//! roster entry with the new key and the statement both keys sign; once the new roster is
//! deployed, `bglass rekey --activate` puts the new key in use and keeps the old file aside.

use std::path::{Path, PathBuf};

use bglass_core::keys::{ResponderIdentity, SigningKey};
use bglass_core::rekey::Rekey;
use bglass_core::roster::Roster;

use crate::config;
use crate::error::{CliError, CliResult};

/// `bglass rekey`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Step 1: `bglass rekey --roster responders.toml` writes your new key beside the old one and
prints your roster entry with the new key, then the rekey statement (signed by both keys).
The operator puts the entry in responders.toml and appends the statement to
responders.toml.sig: proxies whose [admins] sign the roster accept a change of your key with
it alone. Your old key keeps working until the proxies have the new roster.
Step 2: `bglass rekey --activate` puts the new key in use (the old file is kept aside).")]
pub struct RekeyArgs {
    /// The roster the proxies run (responders.toml): your entry is printed with the new
    /// key. Without it, only the new `key =` line is printed.
    #[arg(long, value_name = "FILE")]
    pub roster: Option<PathBuf>,
    /// Put the new key in use, once the proxies have the roster with it.
    #[arg(long, conflicts_with = "roster")]
    pub activate: bool,
    /// scrypt work factor (log2 N) protecting the new key.
    #[arg(long, value_name = "N", default_value_t = bglass_core::keys::DEFAULT_WORK_FACTOR)]
    pub kdf_work_factor: u8,
}

/// Where the new key waits until `--activate`.
fn next_path(identity: &Path) -> PathBuf {
    let mut name = identity.as_os_str().to_owned();
    name.push(".next");
    name.into()
}

/// Runs `bglass rekey`.
pub fn run(config_flag: Option<&Path>, args: &RekeyArgs) -> CliResult {
    let location = config::locate(config_flag)?;
    let config = config::Config::load(&location.path).map_err(config::config_error)?;
    let next = next_path(&config.identity);
    if args.activate {
        return activate(&config, &next);
    }
    if next.exists() {
        return Err(CliError::user(format!(
            "a new key already waits in {}",
            next.display()
        ))
        .with_hint("run `bglass rekey --activate` once the proxies have your new roster entry, or remove that file to start again"));
    }
    // The roster entry first: nothing is written for an entry that cannot be printed.
    let entry = match &args.roster {
        Some(path) => {
            let roster = Roster::load(path).map_err(|e| CliError::user(e.to_string()))?;
            let mine = roster.get(&config.responder).cloned().ok_or_else(|| {
                CliError::user(format!(
                    "{} has no entry for {}",
                    path.display(),
                    config.responder
                ))
            })?;
            Some(mine)
        }
        None => None,
    };
    let old = bglass_client::identity::Identity::from_key_file(&config)?;
    if let Some(mine) = &entry
        && mine.key != old.key.public_key()
    {
        return Err(CliError::user(format!(
            "your entry in the roster has key {}, not yours ({})",
            mine.key,
            old.key.public_key()
        ))
        .with_hint("pass the roster the proxies run now"));
    }
    let passphrase = bglass_client::passphrase::new_passphrase()?;
    let key = SigningKey::generate()
        .map_err(|e| CliError::internal(format!("generating the key failed: {e}")))?;
    let statement = Rekey::sign(&config.responder, &old.key, &key);
    ResponderIdentity {
        id: config.responder.clone(),
        key,
    }
    .create_file(&next, &passphrase, args.kdf_work_factor)
    .map_err(|e| CliError::user(&e))?;

    match entry {
        Some(mut mine) => {
            mine.key = statement.new;
            crate::outln!("# your [[responder]] entry with the new key, for responders.toml:")?;
            crate::out!("{}", mine.to_toml())?;
        }
        None => {
            crate::outln!(
                "# the new key of your [[responder]] entry (id = \"{}\") in responders.toml:",
                config.responder
            )?;
            crate::outln!("key = \"{}\"", statement.new)?;
        }
    }
    crate::outln!("# append to responders.toml.sig:")?;
    crate::out!("{}", statement.line())?;
    eprintln!(
        "New key {} written to {} (your old key {} stays in use).\n\
         Give both to your proxy operator; once the proxies run the new roster, run\n\
         `bglass rekey --activate`.",
        statement.new,
        next.display(),
        statement.old
    );
    Ok(())
}

fn activate(config: &config::Config, next: &Path) -> CliResult {
    if !next.exists() {
        return Err(
            CliError::user(format!("no new key waits in {}", next.display()))
                .with_hint("run `bglass rekey` first"),
        );
    }
    // The new file must open with its passphrase and belong to this responder.
    let waiting = config::Config {
        identity: next.to_path_buf(),
        ..config.clone()
    };
    let new = bglass_client::identity::Identity::from_key_file(&waiting)?;
    let secs = bglass_core::timestamp::now_ms() / 1000;
    let mut retired = config.identity.as_os_str().to_owned();
    retired.push(format!(".retired-{secs}"));
    let retired = PathBuf::from(retired);
    std::fs::rename(&config.identity, &retired)
        .map_err(|e| CliError::user(format!("{}: {e}", config.identity.display())))?;
    if let Err(e) = std::fs::rename(next, &config.identity) {
        // Put the old key back: never leave the config without a key file.
        let _ = std::fs::rename(&retired, &config.identity);
        return Err(CliError::user(format!("{}: {e}", next.display())));
    }
    crate::outln!(
        "now using key {} ({}); the old key file is {}",
        new.key.public_key(),
        config.identity.display(),
        retired.display()
    )?;
    eprintln!(
        "Delete the old key file once you no longer need it. A running key agent still holds the old key: `bglass lock`, then `bglass unlock`."
    );
    Ok(())
}
