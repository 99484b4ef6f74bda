//! One module per command.

pub mod access;
pub mod act;
pub mod admin;
pub mod agent;
pub mod approvals;
pub mod audit;
#[cfg(feature = "drill")]
pub mod canary;
pub mod catalog;
pub mod complete;
pub mod completions;
pub mod curl;
#[cfg(feature = "drill")]
pub mod drill;
pub mod enroll;
pub mod forward;
pub mod grants;
pub mod man;
pub mod open;
pub mod rekey;
pub mod ssh;
pub mod status;
pub mod tunnel;
pub mod whoami;

use crate::error::{CliError, CliResult, ErrorKind};

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

pub use bglass_client::output::print_json;

/// A command-line value as one of the core's validated types (`ServiceName`, `GrantId`,
/// …): an invalid value is a user error (exit 1) with the type's own message, after the
/// argument's `label` when one is given.
pub fn parse_arg<T>(label: Option<&str>, text: &str) -> CliResult<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| match label {
        Some(label) => CliError::user(format!("{label}: {e}")),
        None => CliError::user(e),
    })
}

/// Before a command that uses a grant (`curl`, `open`, `ssh`, `tunnel`, `forward`): when
/// this machine holds none for `service`, asks the catalog the proxies serve whether the
/// service exists. A name it does not hold is refused as such, with the closest names ("did
/// you mean `grafana`?"), rather than with "run `bglass access grafna` first"; a known one
/// gets the usual "you hold no active grant". When no proxy answers, the latter.
pub fn check_held(
    session: &mut crate::client::Session,
    service: &bglass_core::id::ServiceName,
) -> CliResult {
    let Err(no_grant) = session.held_grants(service).map(|_| ()) else {
        return Ok(());
    };
    let catalog = block_on(catalog_names(session));
    match catalog {
        Ok((proxy, names)) if !names.iter().any(|n| n == service) => {
            Err(unknown_service(service, &proxy, &names))
        }
        _ => Err(no_grant),
    }
}

/// The service names of the catalog the first proxy that answers serves, with its id.
async fn catalog_names(
    session: &mut crate::client::Session,
) -> CliResult<(String, Vec<bglass_core::id::ServiceName>)> {
    use crate::client::Call;
    let verbose = std::mem::replace(&mut session.verbose, false);
    let answer = session.attempt(&Call::get("/v1/status"), None).await;
    session.verbose = verbose;
    let (value, _) = answer?;
    let status: bglass_core::api::StatusView =
        serde_json::from_value(value).map_err(CliError::internal)?;
    Ok((
        status.proxy.to_string(),
        status.services.into_iter().map(|s| s.name).collect(),
    ))
}

/// The refusal of a service name the catalog does not hold, as the proxy words it for
/// `access` (`unknown_service`, exit 3), with the closest names.
pub fn unknown_service(
    service: &bglass_core::id::ServiceName,
    proxy: &str,
    names: &[bglass_core::id::ServiceName],
) -> CliError {
    let hint = match bglass_core::suggest::did_you_mean(
        service.as_str(),
        names.iter().map(bglass_core::id::ServiceName::as_str),
    ) {
        Some(suggestion) => format!("{suggestion} (`bglass status` lists the services)"),
        None => "run `bglass status` to list the services".to_owned(),
    };
    CliError::new(
        ErrorKind::Denied,
        format!("no service {service} in {proxy}'s catalog (unknown_service)"),
    )
    .with_code("unknown_service")
    .with_hint(hint)
}

/// Prints the list at `path` from every proxy that answers: as JSON objects
/// `{"proxy": …, KEY: …}` with `json`, else a table (`header`, then one `row` per item,
/// its columns aligned and coloured when colour is on), or `empty` when there is none.
pub fn table_from_every_proxy<T>(
    config: Option<&std::path::Path>,
    json: bool,
    path: &str,
    key: &str,
    empty: &str,
    header: &[&str],
    row: impl Fn(&str, &T) -> Vec<bglass_client::style::Cell>,
) -> CliResult
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let mut session = crate::client::Session::open(config)?;
    block_on(async move {
        let all: Vec<(String, T)> = from_every_proxy(&mut session, path).await?;
        if json {
            let doc: Vec<_> = all
                .iter()
                .map(|(proxy, item)| serde_json::json!({ "proxy": proxy, key: item }))
                .collect();
            return print_json(&doc);
        }
        if all.is_empty() {
            return crate::outln!("{empty}");
        }
        let rows: Vec<_> = all.iter().map(|(proxy, item)| row(proxy, item)).collect();
        for line in bglass_client::style::table(header, &rows, "") {
            crate::outln!("{line}")?;
        }
        Ok(())
    })
}

/// Asks every proxy for a list at `path`; each item with its proxy's id. When no proxy
/// answered, the list is unknown: an error naming each proxy and why (exit 4, or 3 when a
/// proxy refused). When some answered, their items, with a warning on stderr naming each
/// proxy that did not (its items are missing from the list).
pub async fn from_every_proxy<T: serde::de::DeserializeOwned>(
    session: &mut crate::client::Session,
    path: &str,
) -> CliResult<Vec<(String, T)>> {
    use crate::client::{Call, CallFailure};
    // Say once, at the end, which proxies did not answer (not once per retry).
    let verbose = std::mem::replace(&mut session.verbose, false);
    let mut all = Vec::new();
    let mut answered = 0;
    let mut failures: Vec<(String, CallFailure)> = Vec::new();
    for i in 0..session.conns.len() {
        let url = session.conns[i].entry.url.clone();
        match session.attempt(&Call::get(path), Some(i)).await {
            Ok((value, _)) => {
                answered += 1;
                let list: Vec<T> = serde_json::from_value(value).map_err(CliError::internal)?;
                let proxy = session.conns[i]
                    .record
                    .as_ref()
                    .map(|r| r.id.to_string())
                    .unwrap_or_default();
                all.extend(list.into_iter().map(|item| (proxy.clone(), item)));
            }
            Err(CallFailure::Local(e)) => {
                session.verbose = verbose;
                return Err(e);
            }
            Err(e) => failures.push((url, e)),
        }
    }
    session.verbose = verbose;
    let why = |(url, e): &(String, CallFailure)| match e {
        CallFailure::Unavailable(tried) => CallFailure::reasons(tried),
        CallFailure::Refused(refusal) if refusal.is_denial() => format!("{url}: refused: {e}"),
        _ => format!("{url}: {e}"),
    };
    if answered == 0 {
        let reasons: Vec<String> = failures.iter().map(why).collect();
        if let Some(pos) = failures
            .iter()
            .position(|(_, e)| matches!(e, CallFailure::Refused(r) if r.is_denial()))
        {
            let (_, e) = failures.swap_remove(pos);
            return Err(e.into());
        }
        return Err(CliError::new(
            ErrorKind::Unavailable,
            format!(
                "no proxy answered, so this list is unknown (not empty): {}",
                reasons.join("; ")
            ),
        )
        .with_hint("check the network path to the proxies; `bglass status` lists them"));
    }
    for failure in &failures {
        eprintln!(
            "bglass: warning: {}; what it holds is missing from this list",
            why(failure)
        );
    }
    Ok(all)
}
