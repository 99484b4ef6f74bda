//! The shape `approve`, `deny`, `requests cancel`, `revoke` and `review` share: find the proxy that holds the
//! request or grant acted on (each lives on the proxy that made it), sign the action for that
//! proxy, send it there, and report the answer.

use std::path::Path;

use bglass_core::api::GrantView;
use bglass_core::envelope::Action;
use bglass_core::id::{GrantId, RequestId};

use super::{block_on, print_json};
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult};

/// What an action acts on.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A pending access request.
    Request(&'a RequestId),
    /// A grant.
    Grant(&'a GrantId),
}

/// Finds the proxy holding `subject`, asking each proxy quietly (a proxy that does not
/// answer is no news here). `None` when no proxy shows it to this caller: the action then
/// goes to the first proxy that answers, which gives the authoritative refusal (unknown id,
/// or a missing role).
pub async fn on_its_proxy(session: &mut Session, subject: Subject<'_>) -> CliResult<Option<usize>> {
    let verbose = std::mem::replace(&mut session.verbose, false);
    let mut found = None;
    for i in 0..session.conns.len() {
        let shown = match subject {
            Subject::Request(id) => session
                .call_with(&Call::get(format!("/v1/requests/{id}")), Some(i))
                .await
                .is_ok(),
            Subject::Grant(id) => session
                .call_with(&Call::get("/v1/grants"), Some(i))
                .await
                .ok()
                .and_then(|(value, _)| serde_json::from_value::<Vec<GrantView>>(value).ok())
                .is_some_and(|list| list.iter().any(|g| &g.id == id)),
        };
        if shown {
            found = Some(i);
            break;
        }
    }
    session.verbose = verbose;
    if found.is_none()
        && let Subject::Grant(id) = subject
        && let Some(held) = session.store.grants()?.into_iter().find(|g| &g.id == id)
    {
        // Held locally: it is on the proxy that issued it, even if the listing hid it.
        found = session
            .conns
            .iter()
            .position(|c| c.entry.url == held.proxy_url);
    }
    Ok(found)
}

/// The route that takes `action` (approve, deny, cancel, revoke or review).
pub(crate) fn route(action: &Action) -> CliResult<&'static str> {
    target(action).map(|(_, route)| route)
}

/// What `action` acts on, and the route that takes it.
fn target(action: &Action) -> CliResult<(Subject<'_>, &'static str)> {
    match action {
        Action::Approve { request } => Ok((Subject::Request(request), "/v1/approve")),
        Action::Deny { request, .. } => Ok((Subject::Request(request), "/v1/deny")),
        Action::Cancel { request } => Ok((Subject::Request(request), "/v1/cancel")),
        Action::Revoke { grant, .. } => Ok((Subject::Grant(grant), "/v1/revoke")),
        Action::Review { grant, .. } => Ok((Subject::Grant(grant), "/v1/review")),
        _ => Err(CliError::internal(
            "only approve, deny, cancel, revoke and review act on a request or grant",
        )),
    }
}

/// Signs `action`, sends it to the proxy holding the request or grant it acts on, and
/// reports the answer: as JSON with `json`, else with `report`. A revoked grant is
/// forgotten locally.
pub fn act<T>(
    config: Option<&Path>,
    action: Action,
    json: bool,
    report: impl FnOnce(&T) -> CliResult,
) -> CliResult
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let mut session = Session::open(config)?;
    block_on(async move {
        let (subject, path) = target(&action)?;
        let proxy = on_its_proxy(&mut session, subject).await?;
        let (value, _) = session
            .call_with(&Call::post(path, action.clone()), proxy)
            .await?;
        if let Action::Revoke { grant, .. } = &action {
            session.store.remove_grant(grant);
        }
        let answer: T = serde_json::from_value(value).map_err(CliError::internal)?;
        if json {
            print_json(&answer)
        } else {
            report(&answer)
        }
    })
}
