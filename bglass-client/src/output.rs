//! Writing to stdout without panicking when the reader goes away (`bglass audit show | head`).
//!
//! `println!` panics on a closed pipe; commands use [`outln!`] instead, which turns a closed
//! pipe into a quiet, successful exit and any other write error into a clear one.

use std::io::Write;

use crate::error::{CliError, CliResult};

/// Writes formatted text to stdout.
pub fn write_out(args: std::fmt::Arguments<'_>) -> CliResult {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::closed_pipe()),
        Err(e) => Err(CliError::user(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// `println!` that returns an error instead of panicking.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that returns an error instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*)) };
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(CliError::internal)?;
    write_out(format_args!("{text}\n"))
}
