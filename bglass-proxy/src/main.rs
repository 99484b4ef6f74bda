//! `bglass-proxy`: the operator's binary. Parses the command line and dispatches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The bglass out-of-band authenticating proxy.
#[derive(Debug, Parser)]
#[command(name = "bglass-proxy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a catalog and roster exactly as the proxy would load them; exit 0 when valid.
    Check {
        /// The catalog.
        #[arg(long, value_name = "FILE", default_value = "services.toml")]
        services: PathBuf,
        /// The roster.
        #[arg(long, value_name = "FILE", default_value = "responders.toml")]
        roster: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { services, roster } => match bglass_proxy::check::check(&services, &roster)
        {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!(
                    "hint: fix the file at the position shown; a running proxy keeps its last good version"
                );
                ExitCode::from(1)
            }
        },
    }
}
