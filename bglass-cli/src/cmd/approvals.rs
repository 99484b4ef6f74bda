//! `bglass requests`, `approve ID`, `deny ID --reason R`: the approver's side of the
//! two-person rule.

use std::path::Path;

use bglass_core::api::RequestView;
use bglass_core::envelope::Action;
use bglass_core::id::RequestId;
use bglass_core::timestamp;

use super::{block_on, print_json};
use crate::cli::{ApproveArgs, DenyArgs, JsonArgs};
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult};

fn request_id(text: &str) -> CliResult<RequestId> {
    RequestId::new(text)
        .map_err(|e| CliError::user(e).with_hint("copy the id from `bglass requests`"))
}

/// Lists pending requests on every proxy that answers.
pub fn requests(config: Option<&Path>, args: JsonArgs) -> CliResult {
    let mut session = Session::open(config)?;
    block_on(async move {
        let all: Vec<(String, RequestView)> =
            super::from_every_proxy(&mut session, "/v1/requests").await?;
        if args.json {
            let doc: Vec<_> = all
                .iter()
                .map(|(p, r)| serde_json::json!({ "proxy": p, "request": r }))
                .collect();
            return print_json(&doc);
        }
        if all.is_empty() {
            return crate::outln!("No pending requests.");
        }
        for (proxy, r) in &all {
            crate::outln!(
                "{}  {}  {} wants {} for {} ({}s){}: {} — approvals {}/{} [{}]",
                r.id,
                timestamp::format_ms(r.created_ms),
                r.responder,
                r.service,
                r.incident,
                r.ttl_secs,
                if r.emergency { " EMERGENCY" } else { "" },
                r.reason,
                r.approved_by.len(),
                r.approvals_needed,
                proxy
            )?;
        }
        Ok(())
    })
}

fn print_request(r: &RequestView, json: bool) -> CliResult {
    if json {
        return print_json(r);
    }
    match r.status.as_str() {
        "granted" => crate::outln!(
            "{} approved: {} now has {} (grant {})",
            r.id,
            r.responder,
            r.service,
            r.grant.as_ref().map_or("?", |g| g.id.as_str())
        ),
        "denied" => crate::outln!("{} denied", r.id),
        _ => crate::outln!(
            "{} approved ({} of {}); more approvals needed",
            r.id,
            r.approved_by.len(),
            r.approvals_needed
        ),
    }
}

/// Finds the proxy holding a request (requests live on the proxy that received them).
/// `None` when no proxy shows it to this caller: the first proxy that answers then gives
/// the authoritative refusal (unknown request, or a missing role).
async fn on_its_proxy(session: &mut Session, id: &RequestId) -> Option<usize> {
    session.verbose = false;
    for i in 0..session.conns.len() {
        if session
            .call_with(&Call::get(format!("/v1/requests/{id}")), Some(i))
            .await
            .is_ok()
        {
            session.verbose = true;
            return Some(i);
        }
    }
    session.verbose = true;
    None
}

/// Approves a request.
pub fn approve(config: Option<&Path>, args: ApproveArgs) -> CliResult {
    let id = request_id(&args.request)?;
    let mut session = Session::open(config)?;
    block_on(async move {
        let proxy = on_its_proxy(&mut session, &id).await;
        let (value, _) = session
            .call_with(
                &Call::post("/v1/approve", Action::Approve { request: id }),
                proxy,
            )
            .await?;
        print_request(
            &serde_json::from_value(value).map_err(CliError::internal)?,
            args.json,
        )
    })
}

/// Denies a request.
pub fn deny(config: Option<&Path>, args: DenyArgs) -> CliResult {
    let id = request_id(&args.request)?;
    let mut session = Session::open(config)?;
    block_on(async move {
        let proxy = on_its_proxy(&mut session, &id).await;
        let (value, _) = session
            .call_with(
                &Call::post(
                    "/v1/deny",
                    Action::Deny {
                        request: id,
                        reason: args.reason,
                    },
                ),
                proxy,
            )
            .await?;
        print_request(
            &serde_json::from_value(value).map_err(CliError::internal)?,
            args.json,
        )
    })
}
