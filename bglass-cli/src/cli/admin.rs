//! `bglass admin sign|verify`: the arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `bglass admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Sign the change to FILE with your key: your signature is appended to FILE.sig.
    #[command(after_help = "\
Example:
  bglass-proxy check --diff /etc/bglass-proxy/responders.toml responders.toml
  bglass admin sign responders.toml --kind roster --over /etc/bglass-proxy/responders.toml

Deploy FILE and FILE.sig together once enough admins have signed. A signature approves the
change from the version in force (--over) to FILE's exact bytes: it cannot put an older
version back, nor serve as the other kind of file.")]
    Sign(AdminSignArgs),
    /// Check FILE.sig: which admins signed the change to FILE, and whether enough did
    /// (exit 5 when not).
    Verify(AdminVerifyArgs),
}

/// Catalog or roster.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AdminFileKind {
    /// `services.toml`.
    Catalog,
    /// `responders.toml`.
    Roster,
}

/// A change to sign or check.
#[derive(Debug, Args)]
pub struct AdminChange {
    /// The new catalog or roster.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Which it is.
    #[arg(long, value_enum)]
    pub kind: AdminFileKind,
    /// The version the proxies run now, which FILE replaces.
    #[arg(long, value_name = "OLD", required_unless_present = "first")]
    pub over: Option<PathBuf>,
    /// FILE is a first version (a new proxy, nothing in force yet).
    #[arg(long, conflicts_with = "over")]
    pub first: bool,
}

/// `bglass admin sign`.
#[derive(Debug, Args)]
pub struct AdminSignArgs {
    #[command(flatten)]
    pub change: AdminChange,
}

/// `bglass admin verify`.
#[derive(Debug, Args)]
pub struct AdminVerifyArgs {
    #[command(flatten)]
    pub change: AdminChange,
    /// An admin as the proxies' `[admins] keys` list them: `NAME=ed25519:…` (repeat).
    #[arg(long = "admin", value_name = "NAME=KEY", required = true)]
    pub admins: Vec<String>,
    /// How many must have signed [default: all given].
    #[arg(long, value_name = "K")]
    pub threshold: Option<usize>,
}
