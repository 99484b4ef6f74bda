//! `bglass grants`, `revoke GRANT`, `review GRANT --note N`.

use std::path::Path;

use bglass_core::api::GrantView;
use bglass_core::envelope::Action;
use bglass_core::id::GrantId;
use bglass_core::timestamp;

use super::act::{Subject, act};
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
    let id = grant_id(&args.grant)?;
    let action = Action::Revoke {
        grant: id.clone(),
        reason: args.reason,
    };
    act(
        config,
        Subject::Grant(&id),
        "/v1/revoke",
        action,
        args.json,
        print_grant("revoked"),
    )
}

/// Closes the review of an emergency bypass.
pub fn review(config: Option<&Path>, args: ReviewArgs) -> CliResult {
    let id = grant_id(&args.grant)?;
    let action = Action::Review {
        grant: id.clone(),
        note: args.note,
    };
    act(
        config,
        Subject::Grant(&id),
        "/v1/review",
        action,
        args.json,
        print_grant("reviewed"),
    )
}
