//! `bglass audit show DIR`: events as a table or JSON, filtered.

use bglass_core::audit::report::grants;
use bglass_core::timestamp;
use serde_json::json;

use super::{detail, events, filter};
use crate::cli::AuditShowArgs;
use crate::error::{CliError, CliResult};

/// Runs `bglass audit show`.
pub fn run(args: AuditShowArgs) -> CliResult {
    let filter = filter(&args.filter)?;
    let events = events(&args.source, args.filter.unverified)?;
    if args.sessions {
        return super::play::list(&args, &events);
    }
    let grants = grants(&events);
    let shown: Vec<_> = events
        .iter()
        .filter(|(_, e)| filter.matches(e, &grants))
        .collect();
    if args.json {
        let doc: Vec<_> = shown
            .iter()
            .map(|(i, e)| json!({ "index": i, "event": e }))
            .collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(CliError::internal)?
        )?;
        return Ok(());
    }
    crate::outln!(
        "{:>7}  {:<24}  {:<13}  {:<12}  {:<16}  {:<18}  DETAIL",
        "INDEX",
        "TIME (UTC)",
        "EVENT",
        "ACTOR",
        "SERVICE",
        "GRANT"
    )?;
    for (index, e) in &shown {
        let drill = e
            .drill
            .as_ref()
            .map(|d| format!("[drill {d}] "))
            .unwrap_or_default();
        crate::outln!(
            "{:>7}  {:<24}  {:<13}  {:<12}  {:<16}  {:<18}  {drill}{}",
            index,
            timestamp::format_ms(e.time_ms),
            e.event.type_name(),
            e.actor.as_ref().map_or("(proxy)", |a| a.as_str()),
            e.event.service().map_or("-", |s| s.as_str()),
            e.event.grant().map_or("-", |g| g.as_str()),
            detail(e)
        )?;
    }
    eprintln!("{} of {} events shown", shown.len(), events.len());
    Ok(())
}
