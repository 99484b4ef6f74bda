//! One module per command.

pub mod access;
pub mod approvals;
pub mod audit;
pub mod catalog;
pub mod completions;
pub mod curl;
pub mod drill;
pub mod enroll;
pub mod forward;
pub mod grants;
pub mod open;
pub mod ssh;
pub mod status;
pub mod tunnel;
pub mod whoami;

use crate::error::{CliError, CliResult};

/// Runs a future on a single-threaded runtime (commands are short-lived clients).
pub fn block_on<T>(future: impl Future<Output = CliResult<T>>) -> CliResult<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(future);
    // Do not wait for blocking reads still parked on stdin (a tunnel the proxy closed must
    // end its process at once, not at the next keystroke).
    runtime.shutdown_background();
    result
}

/// Prints a JSON value.
pub fn print_json(value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(CliError::internal)?;
    crate::outln!("{text}")
}

/// Asks every proxy that answers for a list at `path`; each item with its proxy's id.
pub async fn from_every_proxy<T: serde::de::DeserializeOwned>(
    session: &mut crate::client::Session,
    path: &str,
) -> CliResult<Vec<(String, T)>> {
    let mut all = Vec::new();
    for i in 0..session.conns.len() {
        if let Ok((value, _)) = session
            .call_with(&crate::client::Call::get(path), Some(i))
            .await
        {
            let list: Vec<T> = serde_json::from_value(value).map_err(CliError::internal)?;
            let proxy = session.conns[i]
                .record
                .as_ref()
                .map(|r| r.id.to_string())
                .unwrap_or_default();
            all.extend(list.into_iter().map(|item| (proxy.clone(), item)));
        }
    }
    Ok(all)
}
