//! The drill scorecard as `report.html`: one self-contained page for the drill lead, with
//! inline CSS and inline SVG charts, no JavaScript and no external resources, so that it
//! opens offline and can be archived with the drill.
//!
//! Pure: the page is a function of the [`Scorecard`]. It is a `maud` template, which
//! escapes every value it interpolates, so no string from the scorecard (a participant's
//! error, a note, a path) can reach the page as markup. The access log is summarised, never
//! listed (a drill can make tens of thousands of accesses; `report.json` has them all).

use bglass_core::drill::{Access, Bucket, Scorecard, ToolScore, percent};
use bglass_core::duration::ms_text;
use bglass_core::scenario::{Fault, Millis};
use bglass_core::timestamp::format_ms;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::charts::{self, ActivityBin};

/// Id of the time-to-access histogram's `<svg>`.
pub const TTA_HISTOGRAM_ID: &str = "tta-histogram";
/// Id of the per-tool success chart's `<svg>`.
pub const TOOL_SUCCESS_ID: &str = "tool-success";
/// Id of the fault timeline's `<svg>`.
pub const FAULT_TIMELINE_ID: &str = "fault-timeline";

/// Most missing accesses listed in the audit section.
const MISSING_LISTED: usize = 20;

const GREEN: &str = "#2e7d32";
const AMBER: &str = "#e0a800";
const RED: &str = "#c62828";
const GREY: &str = "#9aa0a6";
const BLUE: &str = "#0969da";

/// The page's style sheet: a constant, so it is written as it is (inside `<style>`, which
/// HTML does not unescape).
const STYLE: &str = "\
:root{color-scheme:light}\
body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1f2328;\
background:#f6f8fa;margin:0}\
main{max-width:1000px;margin:0 auto;padding:24px}\
section,header{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;\
margin-bottom:16px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 12px}\
.desc{color:#57606a;margin:0 0 12px}\
.top{display:flex;justify-content:space-between;align-items:flex-start;gap:16px}\
.badge{font-size:28px;font-weight:700;letter-spacing:2px;padding:8px 22px;border-radius:8px;\
color:#fff}\
.badge.pass{background:#2e7d32}.badge.fail{background:#c62828}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}\
dt{color:#57606a}dd{margin:0}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}\
th{font-weight:600;color:#57606a;font-size:12px;text-transform:uppercase}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
.met{color:#2e7d32;font-weight:600}.notmet{color:#c62828;font-weight:700}\
tr.bad{background:#fff5f5}\
.nums{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}\
.num{border:1px solid #eaeef2;border-radius:6px;padding:8px 12px}\
.num b{display:block;font-size:20px}.num span{color:#57606a;font-size:12px}\
svg{display:block;width:100%;height:auto;margin:8px 0}\
svg text{font:11px system-ui,sans-serif;fill:#1f2328}\
svg .axis{stroke:#57606a;stroke-width:1}svg .grid{stroke:#eaeef2;stroke-width:1}\
svg .muted{fill:#57606a}\
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}\
.small{color:#57606a;font-size:12px}\
@media print{body{background:#fff}section,header{break-inside:avoid}}";

/// Renders the scorecard as one self-contained HTML5 document.
pub fn to_html(card: &Scorecard) -> String {
    page(card).into_string()
}

/// A coordinate to a tenth of a pixel.
fn px(x: f64) -> String {
    format!("{x:.1}")
}

fn verdict(card: &Scorecard) -> &'static str {
    if card.passed { "PASS" } else { "FAIL" }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "none" } else { s }
}

fn page(card: &Scorecard) -> Markup {
    let d = &card.drill;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Drill " (d.id) " — " (d.scenario) ": " (verdict(card)) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    (header(card))
                    (expectations(card))
                    (summary(card))
                    section {
                        h2 { "Time to access" }
                        (histogram(&card.histogram))
                    }
                    section {
                        h2 { "Success by tool" }
                        (tool_success(&card.tools))
                        (tools_table(&card.tools))
                    }
                    section {
                        h2 { "Faults" }
                        (fault_timeline(card))
                        (faults_table(&card.faults))
                    }
                    (failures(card))
                    (audit(card))
                    (notes(card))
                }
            }
        }
    }
}

fn header(card: &Scorecard) -> Markup {
    let d = &card.drill;
    let started = if d.started_ms == 0 {
        "not recorded".to_owned()
    } else {
        format_ms(d.started_ms)
    };
    let rows: [(&str, String); 8] = [
        ("Scenario", d.scenario.clone()),
        ("Mode", d.mode.clone()),
        ("Started", started),
        (
            "Wall time",
            format!(
                "{} (scenario length {})",
                ms_text(d.wall_ms),
                Millis::from_ms(d.duration_ms)
            ),
        ),
        (
            "Participants",
            format!("{} ({} approvers)", d.participants, d.approvers),
        ),
        ("Proxies", or_none(&d.proxies.join(" → ")).to_owned()),
        ("Down dependencies", or_none(&d.down.join(", ")).to_owned()),
        ("Scenario digest", or_none(&d.scenario_digest).to_owned()),
    ];
    html! {
        header {
            div.top {
                div {
                    h1 { "Drill " code { (d.id) } }
                    @if !d.description.is_empty() {
                        p.desc { (d.description) }
                    }
                }
                div.badge.pass[card.passed].fail[!card.passed] role="status" { (verdict(card)) }
            }
            dl {
                @for (k, v) in &rows {
                    dt { (k) } dd { (v) }
                }
            }
        }
    }
}

fn expectations(card: &Scorecard) -> Markup {
    html! {
        section {
            h2 { "Expectations" }
            @if card.expectations.is_empty() {
                p { "No expectations were judged." }
            } @else {
                table {
                    thead { tr { th { "Result" } th { "Expectation" } th { "Actual" } } }
                    tbody {
                        @for o in &card.expectations {
                            tr class=[(!o.met).then_some("bad")] {
                                @if o.met {
                                    td.met { "met" }
                                } @else {
                                    td.notmet { "NOT MET" }
                                }
                                td { (o.expectation) }
                                td { (o.actual) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn summary(card: &Scorecard) -> Markup {
    let approvals = if card.approvals.count == 0 {
        "none".to_owned()
    } else {
        format!("{} · p95 {} ms", card.approvals.count, card.approvals.p95)
    };
    let served: Vec<String> = card
        .served_by
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    let failover = if card.failovers == 0 {
        "-".to_owned()
    } else {
        format!(
            "{} ms vs {} ms",
            card.tta_failover.p95, card.tta_first_proxy.p95
        )
    };
    let nums: [(String, &str); 10] = [
        (
            format!("{} / {}", card.succeeded, card.accesses),
            "accesses succeeded",
        ),
        (percent(card.success_rate), "success rate"),
        (format!("{} ms", card.tta.p50), "time to access p50"),
        (format!("{} ms", card.tta.p95), "time to access p95"),
        (format!("{} ms", card.tta.max), "time to access max"),
        (approvals, "approvals waited"),
        (card.failovers.to_string(), "served after failover"),
        (failover, "p95 after failover vs first proxy"),
        (or_none(&served.join(", ")).to_owned(), "served by"),
        (
            format!("{} / {}", card.audit.found, card.audit.checked),
            "found in the audit log",
        ),
    ];
    html! {
        section {
            h2 { "Summary" }
            div.nums {
                @for (value, label) in &nums {
                    div.num { b { (value) } span { (label) } }
                }
            }
            (access_log_summary(&card.access_log))
        }
    }
}

fn access_log_summary(log: &[Access]) -> Markup {
    let attempts: u64 = log.iter().map(|a| u64::from(a.attempts)).sum();
    let retried = log.iter().filter(|a| a.attempts > 1).count();
    let participants = log
        .iter()
        .map(|a| a.participant.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    html! {
        p.small {
            "Access log: " (log.len()) " accesses by " (participants) " participants, "
            (attempts) " attempts, " (retried) " retried. Every access is listed in "
            code { "report.json" } "."
        }
    }
}

/// An accessible `<svg>`: role, label, and a `<title>` first.
fn svg(id: &str, width: f64, height: f64, label: &str, body: Markup) -> Markup {
    html! {
        svg id=(id) role="img" aria-label=(label) viewBox=(format!("0 0 {width} {height}"))
            width=(width) height=(height) preserveAspectRatio="xMinYMin meet" {
            title { (label) }
            (body)
        }
    }
}

/// A histogram bucket's label: `≤25 ms`, or `>10 s` for the open last bucket.
fn bucket_label(le_ms: u64, previous: Option<u64>) -> String {
    if le_ms == u64::MAX {
        format!(">{}", ms_text(previous.unwrap_or(0)))
    } else {
        format!("≤{}", ms_text(le_ms))
    }
}

fn histogram(buckets: &[Bucket]) -> Markup {
    const W: f64 = 760.0;
    const H: f64 = 260.0;
    const ML: f64 = 52.0;
    const MR: f64 = 12.0;
    const MT: f64 = 16.0;
    const MB: f64 = 46.0;
    let pw = W - ML - MR;
    let ph = H - MT - MB;
    let total: u64 = buckets.iter().map(|b| b.count).sum();
    let peak = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    let step = charts::nice_step(peak, 5);
    let top = peak.div_ceil(step).max(1).saturating_mul(step);
    let base = MT + ph;
    let y_of = |n: u64| base - n as f64 / top as f64 * ph;
    let slot = pw / buckets.len().max(1) as f64;
    let mut previous = None;
    let bars: Vec<(String, f64, &Bucket)> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let label = bucket_label(b.le_ms, previous);
            previous = Some(b.le_ms);
            (label, ML + i as f64 * slot, b)
        })
        .collect();
    let body = html! {
        @for k in charts::ticks(top, step) {
            line.grid x1=(ML) x2=(px(ML + pw)) y1=(px(y_of(k))) y2=(px(y_of(k))) {}
            text x=(px(ML - 6.0)) y=(px(y_of(k) + 4.0)) text-anchor="end" { (k) }
        }
        @for (label, x, b) in &bars {
            @if b.count > 0 {
                rect x=(px(x + slot * 0.1)) y=(px(y_of(b.count))) width=(px(slot * 0.8))
                    height=(px(base - y_of(b.count))) fill=(BLUE) {
                    title { (label) ": " (b.count) " accesses" }
                }
                text x=(px(x + slot / 2.0)) y=(px(y_of(b.count) - 3.0)) text-anchor="middle" {
                    (b.count)
                }
            }
            text x=(px(x + slot / 2.0)) y=(px(base + 15.0)) text-anchor="middle" font-size="10" {
                (label)
            }
        }
        line.axis x1=(ML) x2=(px(ML + pw)) y1=(px(base)) y2=(px(base)) {}
        line.axis x1=(ML) x2=(ML) y1=(MT) y2=(px(base)) {}
        text.muted x=(px(ML + pw / 2.0)) y=(H - 6.0) text-anchor="middle" { "time to access" }
        text.muted transform=(format!("translate(12 {}) rotate(-90)", px(MT + ph / 2.0)))
            text-anchor="middle" { "successful accesses" }
        @if total == 0 {
            text.muted x=(px(ML + pw / 2.0)) y=(px(MT + ph / 2.0)) text-anchor="middle"
                font-size="14" { "no successful accesses" }
        }
    };
    svg(
        TTA_HISTOGRAM_ID,
        W,
        H,
        &format!("Histogram of time to access: {total} successful accesses by time bucket"),
        body,
    )
}

fn rate_colour(t: &ToolScore) -> &'static str {
    if t.accesses == 0 {
        GREY
    } else if t.success_rate >= 0.99 {
        GREEN
    } else if t.success_rate >= 0.9 {
        AMBER
    } else {
        RED
    }
}

fn tool_success(tools: &[ToolScore]) -> Markup {
    const W: f64 = 760.0;
    const ROW: f64 = 26.0;
    const MT: f64 = 24.0;
    const X0: f64 = 204.0;
    const BW: f64 = 360.0;
    let h = MT + tools.len().max(1) as f64 * ROW + 8.0;
    let body = html! {
        @for pct in [0u32, 25, 50, 75, 100] {
            @let x = X0 + BW * f64::from(pct) / 100.0;
            line.grid x1=(px(x)) x2=(px(x)) y1=(MT - 4.0) y2=(h - 4.0) {}
            text.muted x=(px(x)) y="14" text-anchor="middle" { (pct) "%" }
        }
        @if tools.is_empty() {
            text.muted x=(px(X0 + BW / 2.0)) y=(MT + 17.0) text-anchor="middle" font-size="14" {
                "no tools"
            }
        }
        @for (i, t) in tools.iter().enumerate() {
            @let y = MT + i as f64 * ROW;
            @let rate = if t.success_rate.is_finite() { t.success_rate.clamp(0.0, 1.0) } else { 0.0 };
            @let detail = if t.accesses == 0 {
                "not exercised".to_owned()
            } else {
                format!("{}/{} ok · p95 {} ms", t.succeeded, t.accesses, t.tta.p95)
            };
            text x=(px(X0 - 8.0)) y=(px(y + 12.0)) text-anchor="end" { (t.service) }
            rect x=(X0) y=(px(y + 1.0)) width=(BW) height="16" fill="#eaeef2" {}
            rect x=(X0) y=(px(y + 1.0)) width=(px(BW * rate)) height="16" fill=(rate_colour(t)) {
                title { (t.service) ": " (percent(t.success_rate)) " (" (detail) ")" }
            }
            text x=(px(X0 + BW + 8.0)) y=(px(y + 12.0)) {
                (percent(t.success_rate)) " · " (detail)
            }
        }
    };
    svg(
        TOOL_SUCCESS_ID,
        W,
        h,
        &format!("Success rate of each of {} tools, 0 to 100%", tools.len()),
        body,
    )
}

fn tools_table(tools: &[ToolScore]) -> Markup {
    html! {
        @if tools.is_empty() {
            p { "No tools were exercised." }
        } @else {
            table {
                thead {
                    tr {
                        th { "Tool" } th { "Kind" } th.n { "OK" } th.n { "Rate" }
                        th.n { "p50 ms" } th.n { "p95 ms" } th.n { "max ms" }
                        th { "Top failure cause" }
                    }
                }
                tbody {
                    @for t in tools {
                        tr class=[(t.succeeded < t.accesses).then_some("bad")] {
                            td { (t.service) }
                            td { (t.kind) }
                            td.n { (t.succeeded) "/" (t.accesses) }
                            td.n { (percent(t.success_rate)) }
                            td.n { (t.tta.p50) }
                            td.n { (t.tta.p95) }
                            td.n { (t.tta.max) }
                            td {
                                @if let Some(c) = t.failures.first() {
                                    (c.count) "× " (c.cause)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn fault_colour(f: &Fault) -> &'static str {
    if f.kind.degrades() { AMBER } else { RED }
}

fn fault_timeline(card: &Scorecard) -> Markup {
    const W: f64 = 760.0;
    const ML: f64 = 16.0;
    const MR: f64 = 28.0;
    const MT: f64 = 8.0;
    const ROW: f64 = 36.0;
    const MB: f64 = 34.0;
    let faults = &card.faults;
    let span = faults
        .iter()
        .map(|f| f.end.as_ms())
        .max()
        .unwrap_or(0)
        .max(card.drill.duration_ms)
        .max(card.drill.wall_ms)
        .max(1);
    let activity = charts::activity(&card.access_log, span);
    let rows = faults.len().max(1) + usize::from(!activity.is_empty());
    let h = MT + rows as f64 * ROW + MB;
    let pw = W - ML - MR;
    let x_of = |ms: u64| ML + ms.min(span) as f64 / span as f64 * pw;
    let axis_y = h - MB;
    let end = card.drill.duration_ms;
    let label = if faults.is_empty() {
        "Fault timeline: no faults".to_owned()
    } else {
        format!(
            "Fault timeline: {} faults over {}",
            faults.len(),
            Millis::from_ms(span)
        )
    };
    let first_row = if faults.is_empty() { MT + ROW } else { MT };
    let body = html! {
        @for t in charts::ticks(span, charts::nice_step(span, 8)) {
            line.grid x1=(px(x_of(t))) x2=(px(x_of(t))) y1=(MT) y2=(axis_y) {}
            text.muted x=(px(x_of(t))) y=(axis_y + 16.0) text-anchor="middle" { (Millis::from_ms(t)) }
        }
        @if end > 0 && end < span {
            line x1=(px(x_of(end))) x2=(px(x_of(end))) y1=(MT) y2=(axis_y) stroke="#57606a"
                stroke-dasharray="4 3" {
                title { "scenario end, " (Millis::from_ms(end)) }
            }
            text.muted x=(px(x_of(end) - 3.0)) y=(MT + 8.0) text-anchor="end" font-size="10" {
                "scenario end"
            }
        }
        @if faults.is_empty() {
            text.muted x=(px(ML + pw / 2.0)) y=(MT + 22.0) text-anchor="middle" font-size="14" {
                "no faults"
            }
        }
        @for (i, f) in faults.iter().enumerate() {
            @let y = MT + i as f64 * ROW;
            @let stop = f.end.as_ms().max(f.start.as_ms());
            @let x = x_of(f.start.as_ms());
            text x=(ML) y=(y + 12.0) { (f.label()) }
            rect x=(px(x)) y=(y + 17.0) width=(px((x_of(stop) - x).max(2.0))) height="14" rx="2"
                fill=(fault_colour(f)) {
                title {
                    (f.label()) ", " (f.start) " to " (Millis::from_ms(stop))
                    @if let Some(n) = &f.note { ": " (n) }
                }
            }
        }
        @if !activity.is_empty() {
            (activity_row(&activity, first_row + faults.len() as f64 * ROW, &x_of))
        }
        line.axis x1=(ML) x2=(px(ML + pw)) y1=(axis_y) y2=(axis_y) {}
        text.muted x=(px(ML + pw)) y=(h - 3.0) text-anchor="end" { "time from the drill's start" }
    };
    svg(FAULT_TIMELINE_ID, W, h, &label, body)
}

/// A row under the faults: accesses started per time bin, failed ones in red, so that
/// failures can be read against the faults above them.
fn activity_row(bins: &[ActivityBin], y: f64, x_of: &dyn Fn(u64) -> f64) -> Markup {
    let failed = bins.iter().any(|b| b.failed > 0);
    let peak = bins.iter().map(|b| b.started).max().unwrap_or(0).max(1) as f64;
    let base = y + 33.0;
    html! {
        text x="16" y=(y + 12.0) {
            "accesses started"
            @if failed { " (failed in red)" } @else { ", all succeeded" }
        }
        @for b in bins.iter().filter(|b| b.started > 0) {
            @let x = x_of(b.from_ms);
            @let w = (x_of(b.to_ms) - x - 1.0).max(1.0);
            @let hn = b.started as f64 / peak * 16.0;
            @let hb = b.failed as f64 / peak * 16.0;
            rect x=(px(x)) y=(px(base - hn)) width=(px(w)) height=(px(hn)) fill=(GREY) {
                title {
                    (Millis::from_ms(b.from_ms)) " to " (Millis::from_ms(b.to_ms)) ": "
                    (b.started) " accesses, " (b.failed) " failed"
                }
            }
            @if b.failed > 0 {
                rect x=(px(x)) y=(px(base - hb)) width=(px(w)) height=(px(hb)) fill=(RED) {}
            }
        }
    }
}

fn faults_table(faults: &[Fault]) -> Markup {
    html! {
        @if faults.is_empty() {
            p { "No faults were injected." }
        } @else {
            table {
                thead {
                    tr { th { "Link" } th { "Fault" } th { "From" } th { "To" } th { "Note" } }
                }
                tbody {
                    @for f in faults {
                        tr {
                            td { code { (f.link) } }
                            td { (f.kind.describe()) }
                            td { (f.start) }
                            td { (f.end) }
                            td { (f.note.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn failures(card: &Scorecard) -> Markup {
    html! {
        section {
            h2 { "Failures" }
            @if card.failures.is_empty() {
                p { "No access failed." }
            } @else {
                table {
                    thead {
                        tr { th { "Tool" } th.n { "Count" } th { "Cause" } th { "Example" } }
                    }
                    tbody {
                        @for f in &card.failures {
                            tr {
                                td { (f.service) }
                                td.n { (f.cause.count) }
                                td { (f.cause.cause) }
                                td { (f.cause.example) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn audit(card: &Scorecard) -> Markup {
    let a = &card.audit;
    let listed = a.missing.len().min(MISSING_LISTED) as u64;
    html! {
        section {
            h2 { "Audit" }
            dl {
                dt { "Found in the log" }
                dd { (a.found) " of " (a.checked) " successful accesses" }
                dt { "Unaudited" }
                dd class=[(a.unaudited > 0).then_some("notmet")] { (a.unaudited) }
                dt { "Uses outside grants" }
                dd class=[(a.uses_outside_grants > 0).then_some("notmet")] { (a.uses_outside_grants) }
                dt { "Drill events" }
                dd { (a.drill_events) }
            }
            @if a.logs.is_empty() {
                p.notmet { "No audit log was checked." }
            } @else {
                table {
                    thead {
                        tr {
                            th { "Proxy" } th { "Log" } th.n { "Entries" } th { "Verification" }
                        }
                    }
                    tbody {
                        @for l in &a.logs {
                            tr class=[(!l.verified).then_some("bad")] {
                                td { (l.proxy) }
                                td { code { (l.dir) } }
                                td.n { (l.entries) }
                                td {
                                    @if l.verified {
                                        span.met { "verified" }
                                    } @else {
                                        span.notmet { "DOES NOT VERIFY" }
                                        ": " (l.error.as_deref().unwrap_or("no reason given"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !a.missing.is_empty() {
                h3 { "Successful accesses missing from the log" }
                ul {
                    @for m in a.missing.iter().take(MISSING_LISTED) {
                        li { code { (m) } }
                    }
                }
                @if a.unaudited > listed {
                    p.small { "… and " (a.unaudited - listed) " more." }
                }
            }
        }
    }
}

fn notes(card: &Scorecard) -> Markup {
    html! {
        section {
            h2 { "Notes" }
            @if card.drill.notes.is_empty() {
                p { "None." }
            } @else {
                ul {
                    @for n in &card.drill.notes {
                        li { (n) }
                    }
                }
            }
        }
    }
}
