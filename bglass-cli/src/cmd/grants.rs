//! `bglass grants`, `revoke GRANT`, `review GRANT --note N`.

use std::path::Path;

use bglass_client::style::{Cell, Style, state_style};
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

/// Lists grants from every proxy that answers, in aligned columns.
pub fn list(config: Option<&Path>, args: JsonArgs) -> CliResult {
    super::table_from_every_proxy(
        config,
        args.json,
        "/v1/grants",
        "grant",
        "No grants.",
        &[
            "GRANT",
            "STATE",
            "RESPONDER",
            "SERVICE",
            "UNTIL",
            "PROXY",
            "REVIEW",
        ],
        |proxy, g: &GrantView| {
            let state = g.state.to_string();
            let review = match g.review_open {
                Some(true) => Cell::styled("EMERGENCY, review OPEN", Style::Bad),
                Some(false) => Cell::plain("emergency, reviewed"),
                None => Cell::plain(""),
            };
            vec![
                Cell::plain(g.id.to_string()),
                Cell::styled(state.clone(), state_style(&state)),
                Cell::plain(g.responder.to_string()),
                Cell::plain(g.service.to_string()),
                Cell::plain(timestamp::format_secs(g.exp)),
                Cell::styled(proxy, Style::Dim),
                review,
            ]
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
