//! `bglass requests`, `approve ID`, `deny ID --reason R`: the approver's side of the
//! two-person rule.

use std::path::Path;

use bglass_core::api::RequestView;
use bglass_core::envelope::Action;
use bglass_core::id::RequestId;
use bglass_core::timestamp;

use super::act::act;
use super::parse_arg;
use crate::cli::{ApproveArgs, CancelArgs, DenyArgs, JsonArgs, RequestsArgs, RequestsCommand};
use crate::error::CliResult;

fn request_id(text: &str) -> CliResult<RequestId> {
    parse_arg(None, text).map_err(|e| e.with_hint("copy the id from `bglass requests`"))
}

/// `bglass requests`: lists pending requests, or `requests cancel ID` withdraws one.
pub fn requests_command(config: Option<&Path>, args: RequestsArgs) -> CliResult {
    match args.command {
        Some(RequestsCommand::Cancel(cancel_args)) => cancel(config, cancel_args),
        None => requests(config, JsonArgs { json: args.json }),
    }
}

/// Withdraws your own pending request (signed, audited on the proxy that holds it).
pub fn cancel(config: Option<&Path>, args: CancelArgs) -> CliResult {
    let request = request_id(&args.request)?;
    act(config, Action::Cancel { request }, args.json, print_request)
}

/// Lists pending requests on every proxy that answers.
pub fn requests(config: Option<&Path>, args: JsonArgs) -> CliResult {
    super::list_from_every_proxy(
        config,
        args.json,
        "/v1/requests",
        "request",
        "No pending requests.",
        |proxy, r: &RequestView| {
            format!(
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
            )
        },
    )
}

fn print_request(r: &RequestView) -> CliResult {
    match r.status.as_str() {
        "granted" => crate::outln!(
            "{} approved: {} now has {} (grant {})",
            r.id,
            r.responder,
            r.service,
            r.grant.as_ref().map_or("?", |g| g.id.as_str())
        ),
        "denied" => crate::outln!("{} denied", r.id),
        "cancelled" => crate::outln!(
            "{} withdrawn: approvers no longer see it ({} for {})",
            r.id,
            r.service,
            r.incident
        ),
        _ => crate::outln!(
            "{} approved ({} of {}); more approvals needed",
            r.id,
            r.approved_by.len(),
            r.approvals_needed
        ),
    }
}

/// Approves a request.
pub fn approve(config: Option<&Path>, args: ApproveArgs) -> CliResult {
    let request = request_id(&args.request)?;
    act(
        config,
        Action::Approve { request },
        args.json,
        print_request,
    )
}

/// Denies a request.
pub fn deny(config: Option<&Path>, args: DenyArgs) -> CliResult {
    let request = request_id(&args.request)?;
    let reason = args.reason;
    act(
        config,
        Action::Deny { request, reason },
        args.json,
        print_request,
    )
}
