//! `bglass completions SHELL`: shell completion scripts, generated from the command line.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::CliResult;

/// Writes the completion script for the shell to stdout.
pub fn run(args: CompletionsArgs) -> CliResult {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "bglass", &mut std::io::stdout());
    Ok(())
}
