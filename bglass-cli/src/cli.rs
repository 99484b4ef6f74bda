//! The command line, as clap parses it. No side effects here: `main` dispatches to `cmd`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::EXIT_CODES;

/// bglass: signed, audited, time-limited break-glass access to critical tools.
#[derive(Debug, Parser)]
#[command(name = "bglass", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// The CLI config file [default: $BGLASS_CONFIG, else $XDG_CONFIG_HOME/bglass/config.toml,
    /// else ~/.config/bglass/config.toml]
    #[arg(long, global = true, value_name = "FILE", env = "BGLASS_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create your responder key and CLI config, and print your roster entry for the operator.
    Enroll(EnrollArgs),
    /// Unlock your key and show who you are to the proxies (checks the passphrase).
    Whoami,
    /// Work with the catalog of critical tools.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

/// `bglass enroll`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  bglass enroll --id alice --proxy https://192.0.2.10:8443 --pin sha256:3f1c…

Give --proxy and --pin once per proxy, in priority order (the first is tried first).
The passphrase is read from BGLASS_PASSPHRASE when set, otherwise asked twice on the terminal.")]
pub struct EnrollArgs {
    /// Your responder id (as the operator will put it in the roster).
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// Proxy URL, https://IP:PORT (repeat, in priority order).
    #[arg(long = "proxy", value_name = "URL", required = true)]
    pub proxies: Vec<String>,
    /// SHA-256 pin of each proxy's CA, sha256:HEX (as printed by `bglass-proxy init`), in the
    /// same order as --proxy.
    #[arg(long = "pin", value_name = "PIN", required = true)]
    pub pins: Vec<String>,
    /// Your display name in the roster [default: the id].
    #[arg(long)]
    pub name: Option<String>,
    /// Roles to ask the operator for (responder, approver, drill-lead, auditor).
    #[arg(long, value_delimiter = ',', default_value = "responder")]
    pub roles: Vec<String>,
    /// Where to write the encrypted key [default: identity.age beside the config].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// scrypt work factor (log2 N) protecting the key: 18 takes about a second and 256 MiB;
    /// lower values are faster to unlock and cheaper to attack.
    #[arg(long, value_name = "N", default_value_t = bglass_core::keys::DEFAULT_WORK_FACTOR)]
    pub kdf_work_factor: u8,
}

/// `bglass catalog …`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Validate a catalog and list its services; exit 0 when valid.
    Check(CatalogCheckArgs),
}

/// `bglass catalog check`.
#[derive(Debug, Args)]
pub struct CatalogCheckArgs {
    /// The catalog file.
    #[arg(value_name = "FILE", default_value = "services.toml")]
    pub file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `bglass completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
