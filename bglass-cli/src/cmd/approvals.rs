//! `bglass requests`, `approve ID`, `deny ID --reason R`: the approver's side of the
//! two-person rule.

use std::path::Path;

use bglass_client::style::{Cell, Style};
use bglass_core::api::RequestView;
use bglass_core::duration::HumanDuration;
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

/// Lists pending requests on every proxy that answers, in aligned columns (the reason,
/// free text, last).
pub fn requests(config: Option<&Path>, args: JsonArgs) -> CliResult {
    super::table_from_every_proxy(
        config,
        args.json,
        "/v1/requests",
        "request",
        "No pending requests.",
        &[
            "REQUEST",
            "CREATED",
            "RESPONDER",
            "SERVICE",
            "INCIDENT",
            "TTL",
            "APPROVALS",
            "PROXY",
            "REASON",
        ],
        |proxy, r: &RequestView| {
            let ttl = HumanDuration::from_secs(r.ttl_secs)
                .map_or_else(|| format!("{}s", r.ttl_secs), |d| d.to_string());
            let approvals = format!("{}/{}", r.approved_by.len(), r.approvals_needed);
            vec![
                Cell::plain(r.id.to_string()),
                Cell::plain(timestamp::format_ms(r.created_ms)),
                Cell::plain(r.responder.to_string()),
                Cell::plain(r.service.to_string()),
                Cell::plain(r.incident.clone()),
                Cell::plain(ttl),
                if r.emergency {
                    Cell::styled(format!("{approvals} EMERGENCY"), Style::Bad)
                } else {
                    Cell::styled(approvals, Style::Warn)
                },
                Cell::styled(proxy, Style::Dim),
                Cell::plain(r.reason.clone()),
            ]
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
