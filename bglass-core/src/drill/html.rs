//! The drill scorecard as `report.html`: one self-contained page for the drill lead, with
//! inline CSS and inline SVG charts, no JavaScript and no external resources, so that it
//! opens offline and can be archived with the drill.
//!
//! Pure: the page is a function of the [`Scorecard`]. Every string from the scorecard is
//! escaped. The access log is summarised, never listed (a drill can make tens of thousands
//! of accesses; `report.json` has them all).

use std::fmt::{self, Write};

use super::{Access, Bucket, Scorecard, ToolScore, percent};
use crate::scenario::{Fault, Millis};
use crate::timestamp::format_ms;

/// Id of the time-to-access histogram's `<svg>`.
pub const TTA_HISTOGRAM_ID: &str = "tta-histogram";
/// Id of the per-tool success chart's `<svg>`.
pub const TOOL_SUCCESS_ID: &str = "tool-success";
/// Id of the fault timeline's `<svg>`.
pub const FAULT_TIMELINE_ID: &str = "fault-timeline";

/// Most missing accesses listed in the audit section.
const MISSING_LISTED: usize = 20;
/// Time bins of the access-activity row of the fault timeline.
const ACTIVITY_BINS: u64 = 60;

const GREEN: &str = "#2e7d32";
const AMBER: &str = "#e0a800";
const RED: &str = "#c62828";
const GREY: &str = "#9aa0a6";

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
    let mut out = String::with_capacity(48 * 1024);
    // Writing into a `String` cannot fail.
    let _ = page(&mut out, card);
    out
}

/// Text escaped for HTML element content and quoted attribute values, as it is written.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut done = 0;
        for (i, c) in s.char_indices() {
            let entity = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&s[done..i])?;
            f.write_str(entity)?;
            done = i + c.len_utf8();
        }
        f.write_str(&s[done..])
    }
}

/// `s` escaped for HTML element content and quoted attribute values (`&`, `<`, `>`, `"`,
/// `'`).
pub fn escape(s: &str) -> String {
    Esc(s).to_string()
}

fn verdict(card: &Scorecard) -> &'static str {
    if card.passed { "PASS" } else { "FAIL" }
}

fn page(out: &mut String, card: &Scorecard) -> fmt::Result {
    let d = &card.drill;
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Drill {} — {}: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        Esc(&d.id),
        Esc(&d.scenario),
        verdict(card)
    )?;
    header(out, card)?;
    expectations(out, card)?;
    summary(out, card)?;
    out.push_str("<section>\n<h2>Time to access</h2>\n");
    histogram(out, &card.histogram)?;
    out.push_str("</section>\n<section>\n<h2>Success by tool</h2>\n");
    tool_success(out, &card.tools)?;
    tools_table(out, &card.tools)?;
    out.push_str("</section>\n<section>\n<h2>Faults</h2>\n");
    fault_timeline(out, card)?;
    faults_table(out, &card.faults)?;
    out.push_str("</section>\n");
    failures(out, card)?;
    audit(out, card)?;
    notes(out, card)?;
    out.push_str("</main>\n</body>\n</html>\n");
    Ok(())
}

fn header(out: &mut String, card: &Scorecard) -> fmt::Result {
    let d = &card.drill;
    let class = if card.passed { "pass" } else { "fail" };
    write!(
        out,
        "<header>\n<div class=\"top\">\n<div>\n<h1>Drill <code>{}</code></h1>\n",
        Esc(&d.id)
    )?;
    if !d.description.is_empty() {
        writeln!(out, "<p class=\"desc\">{}</p>", Esc(&d.description))?;
    }
    writeln!(
        out,
        "</div>\n<div class=\"badge {class}\" role=\"status\">{}</div>\n</div>\n<dl>",
        verdict(card)
    )?;
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
                "{:.1} s (scenario length {})",
                d.wall_ms as f64 / 1000.0,
                Millis::from_ms(d.duration_ms)
            ),
        ),
        (
            "Participants",
            format!("{} ({} approvers)", d.participants, d.approvers),
        ),
        ("Proxies", or_none(&d.proxies.join(" → "))),
        ("Down dependencies", or_none(&d.down.join(", "))),
        ("Scenario digest", or_none(&d.scenario_digest)),
    ];
    for (k, v) in rows {
        writeln!(out, "<dt>{k}</dt><dd>{}</dd>", Esc(&v))?;
    }
    out.push_str("</dl>\n</header>\n");
    Ok(())
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "none".to_owned()
    } else {
        s.to_owned()
    }
}

fn expectations(out: &mut String, card: &Scorecard) -> fmt::Result {
    out.push_str("<section>\n<h2>Expectations</h2>\n");
    if card.expectations.is_empty() {
        out.push_str("<p>No expectations were judged.</p>\n</section>\n");
        return Ok(());
    }
    out.push_str(
        "<table>\n<thead><tr><th>Result</th><th>Expectation</th><th>Actual</th></tr></thead>\n\
         <tbody>\n",
    );
    for o in &card.expectations {
        let (row, class, word) = if o.met {
            ("", "met", "met")
        } else {
            (" class=\"bad\"", "notmet", "NOT MET")
        };
        writeln!(
            out,
            "<tr{row}><td class=\"{class}\">{word}</td><td>{}</td><td>{}</td></tr>",
            Esc(&o.expectation),
            Esc(&o.actual)
        )?;
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    Ok(())
}

fn summary(out: &mut String, card: &Scorecard) -> fmt::Result {
    out.push_str("<section>\n<h2>Summary</h2>\n<div class=\"nums\">\n");
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
        (
            if card.failovers == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{} ms vs {} ms",
                    card.tta_failover.p95, card.tta_first_proxy.p95
                )
            },
            "p95 after failover vs first proxy",
        ),
        (or_none(&served.join(", ")), "served by"),
        (
            format!("{} / {}", card.audit.found, card.audit.checked),
            "found in the audit log",
        ),
    ];
    for (value, label) in nums {
        writeln!(
            out,
            "<div class=\"num\"><b>{}</b><span>{label}</span></div>",
            Esc(&value)
        )?;
    }
    out.push_str("</div>\n");
    access_log_summary(out, &card.access_log)?;
    out.push_str("</section>\n");
    Ok(())
}

fn access_log_summary(out: &mut String, log: &[Access]) -> fmt::Result {
    let attempts: u64 = log.iter().map(|a| u64::from(a.attempts)).sum();
    let retried = log.iter().filter(|a| a.attempts > 1).count();
    let participants = log
        .iter()
        .map(|a| a.participant.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    writeln!(
        out,
        "<p class=\"small\">Access log: {} accesses by {participants} participants, \
         {attempts} attempts, {retried} retried. Every access is listed in \
         <code>report.json</code>.</p>",
        log.len()
    )
}

/// A duration in ms for an axis label: `25 ms`, `1 s`, `1.5 s`.
fn ms_label(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// A histogram bucket's label: `≤25 ms`, or `>10 s` for the open last bucket.
fn bucket_label(le_ms: u64, previous: Option<u64>) -> String {
    if le_ms == u64::MAX {
        format!(">{}", ms_label(previous.unwrap_or(0)))
    } else {
        format!("≤{}", ms_label(le_ms))
    }
}

/// The smallest step in {1, 2, 5} × 10^k that covers `max` in at most `ticks` steps.
fn nice_step(max: u64, ticks: u64) -> u64 {
    let ticks = ticks.max(1);
    let mut base: u64 = 1;
    loop {
        for m in [1, 2, 5] {
            let step = base.saturating_mul(m);
            if max.div_ceil(step) <= ticks {
                return step;
            }
        }
        if base > u64::MAX / 10 {
            return u64::MAX;
        }
        base *= 10;
    }
}

/// Opens an accessible `<svg>`: role, label, and a `<title>` first.
fn svg_open(out: &mut String, id: &str, width: u32, height: u32, label: &str) -> fmt::Result {
    writeln!(
        out,
        "<svg id=\"{id}\" role=\"img\" aria-label=\"{label}\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\" preserveAspectRatio=\"xMinYMin meet\">\
         <title>{label}</title>",
        label = Esc(label)
    )
}

fn histogram(out: &mut String, buckets: &[Bucket]) -> fmt::Result {
    const W: u32 = 760;
    const H: u32 = 260;
    const ML: f64 = 52.0;
    const MR: f64 = 12.0;
    const MT: f64 = 16.0;
    const MB: f64 = 46.0;
    let pw = f64::from(W) - ML - MR;
    let ph = f64::from(H) - MT - MB;
    let total: u64 = buckets.iter().map(|b| b.count).sum();
    let peak = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    let step = nice_step(peak, 5);
    let top = peak.div_ceil(step).max(1).saturating_mul(step);
    svg_open(
        out,
        TTA_HISTOGRAM_ID,
        W,
        H,
        &format!("Histogram of time to access: {total} successful accesses by time bucket"),
    )?;
    let base = MT + ph;
    let mut k = 0;
    while k <= top {
        let y = base - k as f64 / top as f64 * ph;
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{ML}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{k}</text>",
            ML + pw,
            ML - 6.0,
            y + 4.0
        )?;
        k = match k.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    let slot = if buckets.is_empty() {
        pw
    } else {
        pw / buckets.len() as f64
    };
    let mut previous = None;
    for (i, b) in buckets.iter().enumerate() {
        let label = bucket_label(b.le_ms, previous);
        previous = Some(b.le_ms);
        let x = ML + i as f64 * slot;
        let h = b.count as f64 / top as f64 * ph;
        let cx = x + slot / 2.0;
        if b.count > 0 {
            writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#0969da\">\
                 <title>{}: {} accesses</title></rect>\
                 <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + slot * 0.1,
                base - h,
                slot * 0.8,
                Esc(&label),
                b.count,
                base - h - 3.0,
                b.count
            )?;
        }
        writeln!(
            out,
            "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
            base + 15.0,
            Esc(&label)
        )?;
    }
    writeln!(
        out,
        "<line class=\"axis\" x1=\"{ML}\" x2=\"{:.1}\" y1=\"{base:.1}\" y2=\"{base:.1}\"/>\
         <line class=\"axis\" x1=\"{ML}\" x2=\"{ML}\" y1=\"{MT}\" y2=\"{base:.1}\"/>\
         <text class=\"muted\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">time to access</text>\
         <text class=\"muted\" transform=\"translate(12 {:.1}) rotate(-90)\" \
         text-anchor=\"middle\">successful accesses</text>",
        ML + pw,
        ML + pw / 2.0,
        H - 6,
        MT + ph / 2.0
    )?;
    if total == 0 {
        writeln!(
            out,
            "<text class=\"muted\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
             font-size=\"14\">no successful accesses</text>",
            ML + pw / 2.0,
            MT + ph / 2.0
        )?;
    }
    out.push_str("</svg>\n");
    Ok(())
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

fn tool_success(out: &mut String, tools: &[ToolScore]) -> fmt::Result {
    const W: u32 = 760;
    const ROW: u32 = 26;
    const MT: u32 = 24;
    const X0: f64 = 204.0;
    const BW: f64 = 360.0;
    let rows = u32::try_from(tools.len()).unwrap_or(u32::MAX).max(1);
    let h = MT
        .saturating_add(rows.saturating_mul(ROW))
        .saturating_add(8);
    svg_open(
        out,
        TOOL_SUCCESS_ID,
        W,
        h,
        &format!("Success rate of each of {} tools, 0 to 100%", tools.len()),
    )?;
    for pct in [0u32, 25, 50, 75, 100] {
        let x = X0 + BW * f64::from(pct) / 100.0;
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\"/>\
             <text class=\"muted\" x=\"{x:.1}\" y=\"14\" text-anchor=\"middle\">{pct}%</text>",
            MT - 4,
            h - 4
        )?;
    }
    if tools.is_empty() {
        writeln!(
            out,
            "<text class=\"muted\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" \
             font-size=\"14\">no tools</text>",
            X0 + BW / 2.0,
            MT + 17
        )?;
    }
    let mut y = f64::from(MT);
    for t in tools {
        let rate = if t.success_rate.is_finite() {
            t.success_rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let detail = if t.accesses == 0 {
            "not exercised".to_owned()
        } else {
            format!("{}/{} ok · p95 {} ms", t.succeeded, t.accesses, t.tta.p95)
        };
        writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{X0}\" y=\"{:.1}\" width=\"{BW}\" height=\"16\" fill=\"#eaeef2\"/>\
             <rect x=\"{X0}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{}\">\
             <title>{}: {} ({})</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            X0 - 8.0,
            y + 12.0,
            Esc(&t.service),
            y + 1.0,
            y + 1.0,
            BW * rate,
            rate_colour(t),
            Esc(&t.service),
            Esc(&percent(t.success_rate)),
            Esc(&detail),
            X0 + BW + 8.0,
            y + 12.0,
            Esc(&format!("{} · {detail}", percent(t.success_rate)))
        )?;
        y += f64::from(ROW);
    }
    out.push_str("</svg>\n");
    Ok(())
}

fn tools_table(out: &mut String, tools: &[ToolScore]) -> fmt::Result {
    if tools.is_empty() {
        out.push_str("<p>No tools were exercised.</p>\n");
        return Ok(());
    }
    out.push_str(
        "<table>\n<thead><tr><th>Tool</th><th>Kind</th><th class=\"n\">OK</th>\
         <th class=\"n\">Rate</th><th class=\"n\">p50 ms</th><th class=\"n\">p95 ms</th>\
         <th class=\"n\">max ms</th><th>Top failure cause</th></tr></thead>\n<tbody>\n",
    );
    for t in tools {
        let cause = t
            .failures
            .first()
            .map(|c| format!("{}× {}", c.count, c.cause))
            .unwrap_or_default();
        writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{}</td></tr>",
            if t.succeeded < t.accesses {
                " class=\"bad\""
            } else {
                ""
            },
            Esc(&t.service),
            Esc(&t.kind),
            t.succeeded,
            t.accesses,
            Esc(&percent(t.success_rate)),
            t.tta.p50,
            t.tta.p95,
            t.tta.max,
            Esc(&cause)
        )?;
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

fn fault_colour(f: &Fault) -> &'static str {
    match f.kind.name() {
        "latency" | "bandwidth" | "slow_close" => AMBER,
        _ => RED,
    }
}

fn fault_label(f: &Fault) -> String {
    format!("{} {}", f.link, f.kind.describe())
}

fn fault_timeline(out: &mut String, card: &Scorecard) -> fmt::Result {
    const W: u32 = 760;
    const ML: f64 = 16.0;
    const MR: f64 = 28.0;
    const MT: u32 = 8;
    const ROW: u32 = 36;
    const MB: u32 = 34;
    let faults = &card.faults;
    let span = faults
        .iter()
        .map(|f| f.end.as_ms())
        .max()
        .unwrap_or(0)
        .max(card.drill.duration_ms)
        .max(card.drill.wall_ms)
        .max(1);
    let failed = card.access_log.iter().any(|a| !a.ok);
    let rows = u32::try_from(faults.len())
        .unwrap_or(u32::MAX)
        .max(1)
        .saturating_add(u32::from(!card.access_log.is_empty()));
    let h = MT
        .saturating_add(rows.saturating_mul(ROW))
        .saturating_add(MB);
    let pw = f64::from(W) - ML - MR;
    let x_of = |ms: u64| ML + ms.min(span) as f64 / span as f64 * pw;
    let label = if faults.is_empty() {
        "Fault timeline: no faults".to_owned()
    } else {
        format!(
            "Fault timeline: {} faults over {}",
            faults.len(),
            Millis::from_ms(span)
        )
    };
    svg_open(out, FAULT_TIMELINE_ID, W, h, &label)?;
    let axis_y = h - MB;
    let step = nice_step(span, 8);
    let mut t = 0;
    while t <= span {
        let x = x_of(t);
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{MT}\" y2=\"{axis_y}\"/>\
             <text class=\"muted\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            axis_y + 16,
            Millis::from_ms(t)
        )?;
        t = match t.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    let end = card.drill.duration_ms;
    if end > 0 && end < span {
        let x = x_of(end);
        writeln!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{MT}\" y2=\"{axis_y}\" stroke=\"#57606a\" \
             stroke-dasharray=\"4 3\"><title>scenario end, {}</title></line>\
             <text class=\"muted\" x=\"{:.1}\" y=\"{}\" text-anchor=\"end\" \
             font-size=\"10\">scenario end</text>",
            Millis::from_ms(end),
            x - 3.0,
            MT + 8
        )?;
    }
    let mut y = MT;
    if faults.is_empty() {
        writeln!(
            out,
            "<text class=\"muted\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" \
             font-size=\"14\">no faults</text>",
            ML + pw / 2.0,
            y + 22
        )?;
        y += ROW;
    }
    for f in faults {
        let (start, end) = (f.start.as_ms(), f.end.as_ms().max(f.start.as_ms()));
        let x = x_of(start);
        let width = (x_of(end) - x).max(2.0);
        let label = fault_label(f);
        let mut tip = format!("{label}, {} to {}", f.start, Millis::from_ms(end));
        if let Some(n) = &f.note {
            tip.push_str(": ");
            tip.push_str(n);
        }
        writeln!(
            out,
            "<text x=\"{ML}\" y=\"{}\">{}</text>\
             <rect x=\"{x:.1}\" y=\"{}\" width=\"{width:.1}\" height=\"14\" rx=\"2\" \
             fill=\"{}\"><title>{}</title></rect>",
            y + 12,
            Esc(&label),
            y + 17,
            fault_colour(f),
            Esc(&tip)
        )?;
        y += ROW;
    }
    if !card.access_log.is_empty() {
        activity_row(out, &card.access_log, span, y, failed, &x_of)?;
    }
    writeln!(
        out,
        "<line class=\"axis\" x1=\"{ML}\" x2=\"{:.1}\" y1=\"{axis_y}\" y2=\"{axis_y}\"/>\
         <text class=\"muted\" x=\"{:.1}\" y=\"{}\" text-anchor=\"end\">time from the drill's \
         start</text>",
        ML + pw,
        ML + pw,
        h - 3
    )?;
    out.push_str("</svg>\n");
    Ok(())
}

/// A row under the faults: accesses started per time bin, failed ones in red, so that
/// failures can be read against the faults above them.
fn activity_row(
    out: &mut String,
    log: &[Access],
    span: u64,
    y: u32,
    failed: bool,
    x_of: &dyn Fn(u64) -> f64,
) -> fmt::Result {
    let bin_ms = span.div_ceil(ACTIVITY_BINS).max(1);
    let bins = usize::try_from(span.div_ceil(bin_ms)).unwrap_or(0).max(1);
    let mut all = vec![0u64; bins];
    let mut bad = vec![0u64; bins];
    for a in log {
        let i = usize::try_from(a.start_ms / bin_ms)
            .unwrap_or(usize::MAX)
            .min(bins - 1);
        if let (Some(n), Some(b)) = (all.get_mut(i), bad.get_mut(i)) {
            *n += 1;
            *b += u64::from(!a.ok);
        }
    }
    let peak = all.iter().copied().max().unwrap_or(0).max(1) as f64;
    writeln!(
        out,
        "<text x=\"16\" y=\"{}\">accesses started{}</text>",
        y + 12,
        if failed {
            " (failed in red)"
        } else {
            ", all succeeded"
        }
    )?;
    let base = f64::from(y) + 33.0;
    for (i, (&n, &b)) in all.iter().zip(&bad).enumerate() {
        if n == 0 {
            continue;
        }
        let from = (i as u64).saturating_mul(bin_ms);
        let x = x_of(from);
        let w = (x_of(from.saturating_add(bin_ms)) - x - 1.0).max(1.0);
        let hn = n as f64 / peak * 16.0;
        let hb = b as f64 / peak * 16.0;
        write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{hn:.1}\" fill=\"{GREY}\">\
             <title>{} to {}: {n} accesses, {b} failed</title></rect>",
            base - hn,
            Millis::from_ms(from),
            Millis::from_ms(from.saturating_add(bin_ms))
        )?;
        if b > 0 {
            write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{hb:.1}\" \
                 fill=\"{RED}\"/>",
                base - hb
            )?;
        }
        out.push('\n');
    }
    Ok(())
}

fn faults_table(out: &mut String, faults: &[Fault]) -> fmt::Result {
    if faults.is_empty() {
        out.push_str("<p>No faults were injected.</p>\n");
        return Ok(());
    }
    out.push_str(
        "<table>\n<thead><tr><th>Link</th><th>Fault</th><th>From</th><th>To</th><th>Note</th>\
         </tr></thead>\n<tbody>\n",
    );
    for f in faults {
        writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            Esc(&f.link.to_string()),
            Esc(&f.kind.describe()),
            f.start,
            f.end,
            Esc(f.note.as_deref().unwrap_or(""))
        )?;
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

fn failures(out: &mut String, card: &Scorecard) -> fmt::Result {
    out.push_str("<section>\n<h2>Failures</h2>\n");
    if card.failures.is_empty() {
        out.push_str("<p>No access failed.</p>\n</section>\n");
        return Ok(());
    }
    out.push_str(
        "<table>\n<thead><tr><th>Tool</th><th class=\"n\">Count</th><th>Cause</th>\
         <th>Example</th></tr></thead>\n<tbody>\n",
    );
    for f in &card.failures {
        writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            Esc(&f.service),
            f.cause.count,
            Esc(&f.cause.cause),
            Esc(&f.cause.example)
        )?;
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    Ok(())
}

fn audit(out: &mut String, card: &Scorecard) -> fmt::Result {
    let a = &card.audit;
    write!(
        out,
        "<section>\n<h2>Audit</h2>\n<dl>\n\
         <dt>Found in the log</dt><dd>{} of {} successful accesses</dd>\n\
         <dt>Unaudited</dt><dd{}>{}</dd>\n\
         <dt>Uses outside grants</dt><dd{}>{}</dd>\n\
         <dt>Drill events</dt><dd>{}</dd>\n</dl>\n",
        a.found,
        a.checked,
        if a.unaudited > 0 {
            " class=\"notmet\""
        } else {
            ""
        },
        a.unaudited,
        if a.uses_outside_grants > 0 {
            " class=\"notmet\""
        } else {
            ""
        },
        a.uses_outside_grants,
        a.drill_events
    )?;
    if a.logs.is_empty() {
        out.push_str("<p class=\"notmet\">No audit log was checked.</p>\n");
    } else {
        out.push_str(
            "<table>\n<thead><tr><th>Proxy</th><th>Log</th><th class=\"n\">Entries</th>\
             <th>Verification</th></tr></thead>\n<tbody>\n",
        );
        for l in &a.logs {
            let status = if l.verified {
                "<span class=\"met\">verified</span>".to_owned()
            } else {
                format!(
                    "<span class=\"notmet\">DOES NOT VERIFY</span>: {}",
                    Esc(l.error.as_deref().unwrap_or("no reason given"))
                )
            };
            writeln!(
                out,
                "<tr{}><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td>\
                 <td>{status}</td></tr>",
                if l.verified { "" } else { " class=\"bad\"" },
                Esc(&l.proxy),
                Esc(&l.dir),
                l.entries
            )?;
        }
        out.push_str("</tbody>\n</table>\n");
    }
    if !a.missing.is_empty() {
        out.push_str("<h3>Successful accesses missing from the log</h3>\n<ul>\n");
        for m in a.missing.iter().take(MISSING_LISTED) {
            writeln!(out, "<li><code>{}</code></li>", Esc(m))?;
        }
        out.push_str("</ul>\n");
        let listed = a.missing.len().min(MISSING_LISTED) as u64;
        if a.unaudited > listed {
            writeln!(
                out,
                "<p class=\"small\">… and {} more.</p>",
                a.unaudited - listed
            )?;
        }
    }
    out.push_str("</section>\n");
    Ok(())
}

fn notes(out: &mut String, card: &Scorecard) -> fmt::Result {
    out.push_str("<section>\n<h2>Notes</h2>\n");
    if card.drill.notes.is_empty() {
        out.push_str("<p>None.</p>\n");
    } else {
        out.push_str("<ul>\n");
        for n in &card.drill.notes {
            writeln!(out, "<li>{}</li>", Esc(n))?;
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
    Ok(())
}
