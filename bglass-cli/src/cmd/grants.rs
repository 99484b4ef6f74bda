//! `bglass grants`, `revoke GRANT`, `review GRANT --note N`.

use std::path::Path;

use bglass_core::api::GrantView;
use bglass_core::envelope::Action;
use bglass_core::id::GrantId;
use bglass_core::timestamp;

use super::act::act;
use super::parse_arg;
use crate::cli::{JsonArgs, ReviewArgs, RevokeArgs};
use crate::error::CliResult;

fn grant_id(text: &str) -> CliResult<GrantId> {
    parse_arg(None, text).map_err(|e| e.with_hint("copy the id from `bglass grants`"))
}

/// Lists grants from every proxy that answers.
pub fn list(config: Option<&Path>, args: JsonArgs) -> CliResult {
    super::list_from_every_proxy(
        config,
        args.json,
        "/v1/grants",
        "grant",
        "No grants.",
        |proxy, g: &GrantView| {
            let review = match g.review_open {
                Some(true) => "  EMERGENCY, review OPEN",
                Some(false) => "  emergency, reviewed",
                None => "",
            };
            format!(
                "{}  {:<8} {} on {} until {} [{}]{}",
                g.id,
                g.state,
                g.responder,
                g.service,
                timestamp::format_secs(g.exp),
                proxy,
                review
            )
        },
    )
}

fn print_grant(what: &str) -> impl FnOnce(&GrantView) -> CliResult + '_ {
    move |g| {
        crate::outln!(
            "{} {what}: {} on {} is now {}",
            g.id,
            g.responder,
            g.service,
            g.state
        )
    }
}

/// Revokes a grant.
pub fn revoke(config: Option<&Path>, args: RevokeArgs) -> CliResult {
    let grant = grant_id(&args.grant)?;
    let reason = args.reason;
    let report = print_grant("revoked");
    act(config, Action::Revoke { grant, reason }, args.json, report)
}

/// Closes the review of an emergency bypass.
pub fn review(config: Option<&Path>, args: ReviewArgs) -> CliResult {
    let grant = grant_id(&args.grant)?;
    let note = args.note;
    let report = print_grant("reviewed");
    act(config, Action::Review { grant, note }, args.json, report)
}
