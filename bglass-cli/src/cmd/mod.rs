//! One module per command.

pub mod access;
pub mod approvals;
pub mod audit;
pub mod catalog;
pub mod completions;
pub mod curl;
pub mod enroll;
pub mod grants;
pub mod open;
pub mod status;
pub mod whoami;

use crate::error::{CliError, CliResult};

/// Runs a future on a single-threaded runtime (commands are short-lived clients).
pub fn block_on<T>(future: impl Future<Output = CliResult<T>>) -> CliResult<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))?
        .block_on(future)
}

/// Prints a JSON value.
pub fn print_json(value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(CliError::internal)?;
    crate::outln!("{text}")
}
