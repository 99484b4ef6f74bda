//! `bglass`: the responder's binary. Parses the command line and dispatches; each command
//! lives in its own file under `cmd/`.

mod cli;
mod cmd;
mod config;
mod error;
mod output;
mod passphrase;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Enroll(args) => cmd::enroll::run(cli.config.as_deref(), args),
        cli::Command::Whoami => cmd::whoami::run(cli.config.as_deref()),
        cli::Command::Catalog(cli::CatalogCommand::Check(args)) => cmd::catalog::check(args),
        cli::Command::Audit(command) => cmd::audit::run(command),
        cli::Command::Completions(args) => cmd::completions::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}
