//! `bglass completions SHELL`: shell completion scripts, generated from the command line.
//!
//! The script is generated into memory and written with the CLI's own writer, so that
//! `bglass completions bash | head` ends quietly when `head` closes the pipe (clap_complete
//! writing to stdout itself would panic there).

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{CliError, CliResult};

/// Writes the completion script for the shell to stdout.
pub fn run(args: CompletionsArgs) -> CliResult {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "bglass", &mut script);
    let script = String::from_utf8(script)
        .map_err(|e| CliError::internal(format!("the completion script is not UTF-8: {e}")))?;
    crate::out!("{script}")
}
