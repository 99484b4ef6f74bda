//! `bglass audit report DIR`: the auditor's summary of a period.

use bglass_core::audit::report::{Filter, Report};
use bglass_core::timestamp;

use super::{events, time_arg};
use crate::cli::AuditReportArgs;
use crate::error::{CliError, CliResult};

/// Runs `bglass audit report`.
pub fn run(args: AuditReportArgs) -> CliResult {
    if args.incident.is_some()
        || args.responder.is_some()
        || args.html.is_some()
        || args.bundle.is_some()
    {
        return super::review::run(&args);
    }
    let window = Filter {
        since_ms: time_arg("--since", args.since.as_ref())?,
        until_ms: time_arg("--until", args.until.as_ref())?,
        ..Filter::default()
    };
    let events = events(&args.source, false)?;
    let report = Report::build(&events, &window);
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(CliError::internal)?
        )?;
        return Ok(());
    }
    crate::out!("{}", render(&report, &window))?;
    Ok(())
}

fn render(r: &Report, window: &Filter) -> String {
    let mut out = String::new();
    let period = match (window.since_ms, window.until_ms) {
        (None, None) => "the whole log".to_owned(),
        (s, u) => format!(
            "{} to {}",
            s.map_or("the start".to_owned(), timestamp::format_ms),
            u.map_or("the end".to_owned(), timestamp::format_ms)
        ),
    };
    out.push_str(&format!(
        "Audit report for {period}: {} of {} entries\n\n",
        r.entries_in_period, r.entries
    ));
    out.push_str(&format!(
        "Real incidents: {} requests, {} grants, {} uses, {} denials\n",
        r.real.requests, r.real.grants, r.real.uses, r.real.denials
    ));
    for (drill, c) in &r.drills {
        out.push_str(&format!(
            "Drill {drill}: {} requests, {} grants, {} uses, {} denials\n",
            c.requests, c.grants, c.uses, c.denials
        ));
    }
    out.push_str("\nGrants per responder (real incidents)\n");
    for (k, v) in &r.grants_by_responder {
        out.push_str(&format!("  {k:<24} {v}\n"));
    }
    out.push_str("\nGrants per tool (real incidents)\n");
    for (k, v) in &r.grants_by_service {
        out.push_str(&format!("  {k:<24} {v}\n"));
    }
    let open = r
        .bypasses
        .iter()
        .filter(|b| b.reviewed_by.is_none())
        .count();
    out.push_str(&format!(
        "\nEmergency bypasses: {} ({open} review(s) OPEN)\n",
        r.bypasses.len()
    ));
    for b in &r.bypasses {
        let review = match (&b.reviewed_by, &b.review_note) {
            (Some(who), Some(note)) => format!("reviewed by {who}: {note}"),
            _ => "REVIEW OPEN".to_owned(),
        };
        out.push_str(&format!(
            "  {}  {}  {} on {}  {review}\n",
            timestamp::format_ms(b.time_ms),
            b.grant,
            b.responder,
            b.service
        ));
    }
    out.push_str("\nDenials by reason\n");
    for (k, v) in &r.denials_by_reason {
        out.push_str(&format!("  {k:<24} {v}\n"));
    }
    out.push_str(&format!(
        "\nUses outside any grant: {}{}\n",
        r.uses_outside_grants.len(),
        if r.uses_outside_grants.is_empty() {
            " (as it must be)"
        } else {
            " — INVESTIGATE"
        }
    ));
    for u in &r.uses_outside_grants {
        out.push_str(&format!(
            "  entry {}  {}  {} on {}: {}\n",
            u.index,
            timestamp::format_ms(u.time_ms),
            u.grant,
            u.service,
            u.why
        ));
    }
    out
}
