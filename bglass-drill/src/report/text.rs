//! The drill scorecard as text for a terminal: what `bglass drill simulate` and `drill
//! report` print, top to bottom as `docs/drills.md` describes it.

use bglass_core::drill::{Scorecard, percent};
use bglass_core::duration::ms_text;

/// The scorecard as text for a terminal.
pub fn to_text(card: &Scorecard) -> String {
    let mut s = String::new();
    let d = &card.drill;
    s.push_str(&format!(
        "Drill {} — scenario {} ({}), {} participants ({} approvers), proxies {}\n",
        d.id,
        d.scenario,
        d.mode,
        d.participants,
        d.approvers,
        d.proxies.join(" → ")
    ));
    if !d.down.is_empty() {
        s.push_str(&format!("Down: {}\n", d.down.join(", ")));
    }
    s.push_str(&format!(
        "Accesses: {} of {} succeeded ({}); time to access p50 {} ms, p95 {} ms, max {} ms; wall {}\n",
        card.succeeded,
        card.accesses,
        percent(card.success_rate),
        card.tta.p50,
        card.tta.p95,
        card.tta.max,
        ms_text(d.wall_ms)
    ));
    if card.approvals.count > 0 {
        s.push_str(&format!(
            "Approvals: {} waited, p50 {} ms, p95 {} ms, max {} ms\n",
            card.approvals.count, card.approvals.p50, card.approvals.p95, card.approvals.max
        ));
    }
    let served: Vec<String> = card
        .served_by
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    s.push_str(&format!(
        "Served by: {}; after failover: {}\n",
        if served.is_empty() {
            "none".to_owned()
        } else {
            served.join(", ")
        },
        card.failovers
    ));
    if card.failovers > 0 {
        s.push_str(&format!(
            "Time to access: first proxy p50 {} ms, p95 {} ms ({}); after failover p50 {} ms, p95 {} ms ({})\n",
            card.tta_first_proxy.p50,
            card.tta_first_proxy.p95,
            card.tta_first_proxy.count,
            card.tta_failover.p50,
            card.tta_failover.p95,
            card.tta_failover.count
        ));
    }
    s.push_str(&format!(
        "\n{:<18} {:<4} {:>9} {:>8} {:>8} {:>8}  {}\n",
        "TOOL", "KIND", "OK", "P50 MS", "P95 MS", "MAX MS", "FAILURES"
    ));
    for t in &card.tools {
        let fails = t
            .failures
            .first()
            .map(|c| format!("{}× {}", c.count, c.cause))
            .unwrap_or_default();
        s.push_str(&format!(
            "{:<18} {:<4} {:>9} {:>8} {:>8} {:>8}  {}\n",
            t.service,
            t.kind,
            format!("{}/{}", t.succeeded, t.accesses),
            t.tta.p50,
            t.tta.p95,
            t.tta.max,
            fails
        ));
    }
    if !card.failures.is_empty() {
        s.push_str("\nFailures:\n");
        for f in &card.failures {
            s.push_str(&format!(
                "  {} × {}: {}\n    e.g. {}\n",
                f.cause.count, f.service, f.cause.cause, f.cause.example
            ));
        }
    }
    s.push_str(&format!(
        "\nAudit: {} log(s), {} drill events; {} of {} successful accesses found in the log; {} unaudited; {} uses outside grants\n",
        card.audit.logs.len(),
        card.audit.drill_events,
        card.audit.found,
        card.audit.checked,
        card.audit.unaudited,
        card.audit.uses_outside_grants
    ));
    for l in &card.audit.logs {
        s.push_str(&format!(
            "  {}: {} entries, {}\n",
            l.proxy,
            l.entries,
            if l.verified {
                "verified".to_owned()
            } else {
                format!("DOES NOT VERIFY: {}", l.error.clone().unwrap_or_default())
            }
        ));
    }
    for n in &d.notes {
        s.push_str(&format!("Note: {n}\n"));
    }
    s.push_str("\nExpectations:\n");
    for o in &card.expectations {
        s.push_str(&format!(
            "  [{}] {} — {}\n",
            if o.met { "met" } else { "NOT MET" },
            o.expectation,
            o.actual
        ));
    }
    s.push_str(&format!(
        "\nResult: {}\n",
        if card.passed {
            "PASS"
        } else {
            "FAIL (expectations not met)"
        }
    ));
    s
}
