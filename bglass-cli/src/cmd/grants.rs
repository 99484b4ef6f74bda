//! `bglass grants`, `revoke GRANT`, `review GRANT --note N`.

use std::path::Path;

use bglass_core::api::GrantView;
use bglass_core::envelope::Action;
use bglass_core::id::GrantId;
use bglass_core::timestamp;

use super::{block_on, print_json};
use crate::cli::{JsonArgs, ReviewArgs, RevokeArgs};
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult};

fn grant_id(text: &str) -> CliResult<GrantId> {
    GrantId::new(text).map_err(|e| CliError::user(e).with_hint("copy the id from `bglass grants`"))
}

/// Lists grants from every proxy that answers.
pub fn list(config: Option<&Path>, args: JsonArgs) -> CliResult {
    let mut session = Session::open(config)?;
    block_on(async move {
        let all: Vec<(String, GrantView)> =
            super::from_every_proxy(&mut session, "/v1/grants").await?;
        if args.json {
            let doc: Vec<_> = all
                .iter()
                .map(|(p, g)| serde_json::json!({ "proxy": p, "grant": g }))
                .collect();
            return print_json(&doc);
        }
        if all.is_empty() {
            return crate::outln!("No grants.");
        }
        for (proxy, g) in &all {
            let review = match g.review_open {
                Some(true) => "  EMERGENCY, review OPEN",
                Some(false) => "  emergency, reviewed",
                None => "",
            };
            crate::outln!(
                "{}  {:<8} {} on {} until {} [{}]{}",
                g.id,
                g.state,
                g.responder,
                g.service,
                timestamp::format_secs(g.exp),
                proxy,
                review
            )?;
        }
        Ok(())
    })
}

async fn on_its_proxy(session: &mut Session, id: &GrantId) -> CliResult<Option<usize>> {
    for i in 0..session.conns.len() {
        if let Ok((value, _)) = session.call_with(&Call::get("/v1/grants"), Some(i)).await {
            let list: Vec<GrantView> = serde_json::from_value(value).unwrap_or_default();
            if list.iter().any(|g| &g.id == id) {
                return Ok(Some(i));
            }
        }
    }
    // Held locally? Then it is on that proxy even if the listing hid it.
    if let Some(held) = session.store.grants()?.into_iter().find(|g| &g.id == id)
        && let Some(i) = session
            .conns
            .iter()
            .position(|c| c.entry.url == held.proxy_url)
    {
        return Ok(Some(i));
    }
    Ok(None)
}

fn print_grant(g: &GrantView, json: bool, what: &str) -> CliResult {
    if json {
        return print_json(g);
    }
    crate::outln!(
        "{} {what}: {} on {} is now {}",
        g.id,
        g.responder,
        g.service,
        g.state
    )
}

/// Revokes a grant.
pub fn revoke(config: Option<&Path>, args: RevokeArgs) -> CliResult {
    let id = grant_id(&args.grant)?;
    let mut session = Session::open(config)?;
    block_on(async move {
        let proxy = on_its_proxy(&mut session, &id).await?;
        let (value, _) = session
            .call_with(
                &Call::post(
                    "/v1/revoke",
                    Action::Revoke {
                        grant: id.clone(),
                        reason: args.reason,
                    },
                ),
                proxy,
            )
            .await?;
        session.store.remove_grant(&id);
        print_grant(
            &serde_json::from_value(value).map_err(CliError::internal)?,
            args.json,
            "revoked",
        )
    })
}

/// Closes the review of an emergency bypass.
pub fn review(config: Option<&Path>, args: ReviewArgs) -> CliResult {
    let id = grant_id(&args.grant)?;
    let mut session = Session::open(config)?;
    block_on(async move {
        let proxy = on_its_proxy(&mut session, &id).await?;
        let (value, _) = session
            .call_with(
                &Call::post(
                    "/v1/review",
                    Action::Review {
                        grant: id,
                        note: args.note,
                    },
                ),
                proxy,
            )
            .await?;
        print_grant(
            &serde_json::from_value(value).map_err(CliError::internal)?,
            args.json,
            "reviewed",
        )
    })
}
