//! The review package as one self-contained HTML page: inline CSS, no JavaScript, no
//! external resources, so it opens offline and can be archived with the incident.
//!
//! A `maud` template, which escapes every value it interpolates: nothing from the log (a
//! reason, a path, a session's output) reaches the page as markup. The element ids
//! (`timeline`, `requests`, `approvals`, `grants`, `bypasses`, `denials`, `uses`, `tunnels`,
//! `sessions`, `proofs`) are stable, for whoever checks the page by machine.

use bglass_core::audit::inclusion::Proofs;
use bglass_core::audit::recording::{Check, Recording, State};
use bglass_core::audit::review::{GrantRow, Review};
use bglass_core::timestamp::{format_ms, format_secs};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// A recorded session with its check and a transcript of what verifies.
pub struct Session {
    /// The session as the log tells it.
    pub recording: Recording,
    /// Its check against the log (`None`: the file could not be read, with why).
    pub check: Result<Check, String>,
    /// What was run and shown (verified bytes only), and whether it was cut for length.
    pub transcript: (String, bool),
}

impl Session {
    /// The state's name, `unreadable` when the file could not be read.
    pub fn state(&self) -> &'static str {
        match &self.check {
            Ok(c) => c.state.name(),
            Err(_) => "unreadable",
        }
    }

    /// What the check found.
    pub fn detail(&self) -> &str {
        match &self.check {
            Ok(c) => &c.detail,
            Err(e) => e,
        }
    }

    /// Whether it is complete.
    pub fn complete(&self) -> bool {
        matches!(&self.check, Ok(c) if c.state == State::Complete)
    }
}

/// What the page shows besides the review.
pub struct Page<'a> {
    /// The review.
    pub review: &'a Review,
    /// The recorded sessions, checked.
    pub sessions: &'a [Session],
    /// The proofs of the review's entries.
    pub proofs: &'a Proofs,
    /// The proxy whose log it is.
    pub proxy: &'a str,
    /// The key that verified the log, and where it came from.
    pub key: String,
    /// The log directory as given (for the play command).
    pub log_dir: &'a str,
    /// Where a recording's file is linked from the page: `recordings/` in a bundle.
    pub recordings_href: &'a str,
}

const STYLE: &str = "\
:root{color-scheme:light}\
body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1f2328;\
background:#f6f8fa;margin:0}\
main{max-width:1200px;margin:0 auto;padding:24px}\
section,header{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;\
margin-bottom:16px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 12px}\
.desc{color:#57606a;margin:0 0 12px}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}\
dt{color:#57606a}dd{margin:0}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}\
th{font-weight:600;color:#57606a;font-size:12px;text-transform:uppercase}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.alert{background:#fff5f5}.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:700}\
.warn{color:#9a6700;font-weight:600}\
.bar{position:relative;height:12px;min-width:160px;background:#eaeef2;border-radius:3px}\
.bar span{position:absolute;top:0;height:12px;border-radius:3px}\
.bar .ttl{background:#9ecbff}.bar .held{background:#0969da}.bar .emergency{background:#c62828}\
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}\
pre{white-space:pre-wrap;background:#f6f8fa;border:1px solid #eaeef2;padding:8px;\
max-height:420px;overflow:auto}\
.small{color:#57606a;font-size:12px}\
@media print{body{background:#fff}section,header{break-inside:avoid}pre{max-height:none}}";

/// Renders the page.
pub fn to_html(page: &Page<'_>) -> String {
    let r = page.review;
    let title = format!("bglass review: {}", r.scope.describe());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    (header(page, &title))
                    (timeline(r))
                    (requests(r))
                    (approvals(r))
                    (grants(r))
                    (bypasses(r))
                    (denials(r))
                    (uses(r))
                    (tunnels(r))
                    (sessions(page))
                    (proofs(page))
                }
            }
        }
    }
    .into_string()
}

fn who(x: Option<&impl std::fmt::Display>) -> String {
    x.map_or("(proxy)".to_owned(), ToString::to_string)
}

fn header(page: &Page<'_>, title: &str) -> Markup {
    let r = page.review;
    let open_reviews = r.bypasses.iter().filter(|b| b.review.is_none()).count();
    let broken = page.sessions.iter().filter(|s| !s.complete()).count();
    html! {
        header #summary {
            h1 { (title) }
            p.desc {
                "Everything the audit log of proxy " code { (page.proxy) } " holds about "
                (r.scope.describe()) ", read from a log that verified, with an inclusion proof for each entry shown."
            }
            dl {
                dt { "Proxy key" } dd { code { (page.key) } }
                dt { "Log" } dd { (r.entries) " entries; " (r.indexes.len()) " in this review" }
                dt { "Signed checkpoint" } dd { "tree size " (page.proofs.size) ", root " code { (page.proofs.root) } }
                dt { "Requests" } dd { (r.requests.len()) }
                dt { "Grants" } dd { (r.grants.len()) }
                dt { "Emergency bypasses" } dd {
                    (r.bypasses.len())
                    @if open_reviews > 0 { " " span.bad { "(" (open_reviews) " review(s) open)" } }
                }
                dt { "Denials" } dd { (r.denials.len()) }
                dt { "HTTP uses" } dd { (r.uses.iter().map(|t| t.uses.len()).sum::<usize>()) }
                dt { "Tunnels" } dd { (r.tunnels.len()) }
                dt { "Recorded sessions" } dd {
                    (page.sessions.len())
                    @if broken > 0 { " " span.bad { "(" (broken) " not complete)" } }
                }
            }
        }
    }
}

fn timeline(r: &Review) -> Markup {
    html! {
        section #timeline {
            h2 { "Timeline" }
            table {
                thead { tr { th.n { "Entry" } th { "Time (UTC)" } th { "Event" } th { "Actor" } th { "Tool" } th { "Grant" } th { "What" } } }
                tbody {
                    @for t in &r.timeline {
                        tr class=(format!("ev-{}", t.event)) {
                            td.n { (t.index) }
                            td { (format_ms(t.time_ms)) }
                            td { (t.event) }
                            td { (who(t.actor.as_ref())) }
                            td { (t.service.as_deref().unwrap_or("")) }
                            td { code { (t.grant.as_deref().unwrap_or("")) } }
                            td { (t.summary) }
                        }
                    }
                }
            }
        }
    }
}

fn requests(r: &Review) -> Markup {
    html! {
        section #requests {
            h2 { "Requests" }
            table {
                thead { tr { th.n { "Entry" } th { "Time (UTC)" } th { "Responder" } th { "Tool" } th.n { "TTL" } th { "Incident" } th { "Reason" } } }
                tbody {
                    @for q in &r.requests {
                        tr class=[q.emergency.then_some("alert")] {
                            td.n { (q.index) }
                            td { (format_ms(q.time_ms)) }
                            td { (who(q.responder.as_ref())) }
                            td { (q.service) }
                            td.n { (q.ttl_secs) "s" }
                            td { (q.incident) @if q.emergency { " " span.bad { "EMERGENCY" } } }
                            td { (q.reason) }
                        }
                    }
                }
            }
        }
    }
}

fn approvals(r: &Review) -> Markup {
    html! {
        section #approvals {
            h2 { "Approvals" }
            p.desc { "Each approval is signed by its approver over the request it approves; the reason shown is the requester's, which the approver read." }
            table {
                thead { tr { th.n { "Entry" } th { "Time (UTC)" } th { "Approver" } th { "Request" } th { "Requester" } th { "Tool" } th { "Reason approved" } } }
                tbody {
                    @for a in &r.approvals {
                        tr {
                            td.n { (a.index) }
                            td { (format_ms(a.time_ms)) }
                            td { (who(a.approver.as_ref())) }
                            td { code { (a.request) } }
                            td { (who(a.requester.as_ref())) }
                            td { (a.service.as_ref().map_or("", |s| s.as_str())) }
                            td { (a.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// The TTL bar of a grant: its validity (light), how long it was held (dark; red for an
/// emergency grant), on the review's time span.
fn ttl_bar(g: &GrantRow, span: (u64, u64)) -> Markup {
    let width = (span.1 - span.0).max(1) as f64;
    let pos = |t: u64| (t.clamp(span.0, span.1) - span.0) as f64 / width * 100.0;
    let (start, end) = (pos(g.nbf_ms), pos(g.exp_ms));
    let held = pos(g.end.as_ref().map_or(g.exp_ms, |e| e.time_ms.min(g.exp_ms)));
    let class = if g.emergency { "emergency" } else { "held" };
    html! {
        div.bar title=(format!("{} to {}", format_ms(g.nbf_ms), format_ms(g.exp_ms))) {
            span.ttl style=(format!("left:{start:.2}%;width:{:.2}%", (end - start).max(0.5))) {}
            span class=(class) style=(format!("left:{start:.2}%;width:{:.2}%", (held - start).max(0.5))) {}
        }
    }
}

fn grants(r: &Review) -> Markup {
    let span = r.span_ms().unwrap_or((0, 1));
    html! {
        section #grants {
            h2 { "Grants" }
            p.desc { "Bars: the grant's validity on the review's time span (" (format_ms(span.0)) " to " (format_ms(span.1)) "), dark up to its end; red for an emergency grant." }
            table {
                thead { tr { th.n { "Entry" } th { "Grant" } th { "Responder" } th { "Tool" } th { "Valid" } th { "TTL" } th { "Approved by" } th { "Ended" } th.n { "Uses" } } }
                tbody {
                    @for g in &r.grants {
                        tr class=[g.emergency.then_some("alert")] {
                            td.n { (g.index) }
                            td { code { (g.grant) } }
                            td { (g.responder) }
                            td { (g.service) }
                            td { (format_secs(g.nbf_ms / 1000)) " to " (format_secs(g.exp_ms / 1000)) }
                            td { (ttl_bar(g, span)) }
                            td {
                                @if g.emergency { span.bad { "emergency bypass" } }
                                @else if g.approvers.is_empty() { span.small { "none required" } }
                                @else { (g.approvers.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")) }
                            }
                            td { @match &g.end { Some(e) => { (format_ms(e.time_ms)) ": " (e.how) }, None => { span.small { "not in the log (still valid at the log's end?)" } } } }
                            td.n { (g.uses) }
                        }
                    }
                }
            }
        }
    }
}

fn bypasses(r: &Review) -> Markup {
    html! {
        section #bypasses {
            h2 { "Emergency bypasses and their reviews" }
            table {
                thead { tr { th.n { "Entry" } th { "Time (UTC)" } th { "Grant" } th { "Responder" } th { "Tool" } th { "Review" } } }
                tbody {
                    @for b in &r.bypasses {
                        tr class=[b.review.is_none().then_some("alert")] {
                            td.n { (b.index) }
                            td { (format_ms(b.time_ms)) }
                            td { code { (b.grant) } }
                            td { (b.responder) }
                            td { (b.service) }
                            td {
                                @match &b.review {
                                    Some(v) => { span.ok { "reviewed" } " by " (who(v.reviewer.as_ref())) " at " (format_ms(v.time_ms)) " (entry " (v.index) "): " (v.note) },
                                    None => { span.bad { "REVIEW OPEN" } },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn denials(r: &Review) -> Markup {
    html! {
        section #denials {
            h2 { "Denials" }
            table {
                thead { tr { th.n { "Entry" } th { "Time (UTC)" } th { "Who" } th { "Tool" } th { "Reason" } th { "Detail" } } }
                tbody {
                    @for d in &r.denials {
                        tr {
                            td.n { (d.index) }
                            td { (format_ms(d.time_ms)) }
                            td { (who(d.actor.as_ref())) }
                            td { (d.service.as_ref().map_or("", |s| s.as_str())) }
                            td { code { (d.reason) } }
                            td { (d.detail) }
                        }
                    }
                }
            }
        }
    }
}

fn uses(r: &Review) -> Markup {
    let class = |c: u16| {
        if c == 0 {
            "other".to_owned()
        } else {
            format!("{}xx", c / 100)
        }
    };
    html! {
        section #uses {
            h2 { "HTTP uses per tool" }
            table.tools {
                thead { tr { th { "Tool" } th.n { "Uses" } th { "Responses" } th.n { "Bytes in" } th.n { "Bytes out" } } }
                tbody {
                    @for t in &r.uses {
                        tr {
                            td { (t.service) }
                            td.n { (t.uses.len()) }
                            td { (t.by_class.iter().map(|(c, n)| format!("{n} {}", class(*c))).collect::<Vec<_>>().join(", ")) }
                            td.n { (t.bytes_in) }
                            td.n { (t.bytes_out) }
                        }
                    }
                }
            }
            @for t in &r.uses {
                details {
                    summary { "Each use of " (t.service) " (" (t.uses.len()) ")" }
                    table.each {
                        thead { tr { th.n { "Entry" } th { "Time (UTC)" } th { "Responder" } th { "Request" } th.n { "Status" } th.n { "ms" } } }
                        tbody {
                            @for u in &t.uses {
                                tr class=[(u.status >= 500).then_some("alert")] {
                                    td.n { (u.index) }
                                    td { (format_ms(u.time_ms)) }
                                    td { (who(u.responder.as_ref())) }
                                    td { code { (u.method) " " (u.path) } }
                                    td.n { (u.status) }
                                    td.n { (u.duration_ms) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn tunnels(r: &Review) -> Markup {
    html! {
        section #tunnels {
            h2 { "Tunnels" }
            table {
                thead { tr { th.n { "Entry" } th { "Opened (UTC)" } th { "Tool" } th { "Responder" } th { "Grant" } th { "Closed" } th.n { "Bytes up" } th.n { "Bytes down" } } }
                tbody {
                    @for t in &r.tunnels {
                        tr {
                            td.n { (t.index) }
                            td { (format_ms(t.time_ms)) }
                            td { (t.service) }
                            td { (who(t.responder.as_ref())) }
                            td { code { (t.grant) } }
                            @match &t.close {
                                Some(c) => { td { (format_ms(c.time_ms)) " (" (c.reason) ")" } td.n { (c.bytes_up) } td.n { (c.bytes_down) } },
                                None => { td { span.warn { "no close in the log" } } td {} td {} },
                            }
                        }
                    }
                }
            }
        }
    }
}

fn sessions(page: &Page<'_>) -> Markup {
    html! {
        section #sessions {
            h2 { "Recorded SSH sessions" }
            p.desc { "Each recording is checked chunk by chunk against the SHA-256 the log holds for it; the transcript shows only bytes that verify (input is left out: replay with --input to see it)." }
            table {
                thead { tr { th { "Session" } th { "Responder" } th { "Login" } th { "Tool" } th { "Started (UTC)" } th { "Ended" } th.n { "Chunks" } th { "Recording" } th { "Play" } } }
                tbody {
                    @for s in page.sessions {
                        @let r = &s.recording;
                        tr class=[(!s.complete()).then_some("alert")] {
                            td { a href=(format!("{}{}.rec", page.recordings_href, r.session)) { code { (r.session) } } }
                            td { (who(r.responder.as_ref())) }
                            td { (r.user) }
                            td { (r.service) }
                            td { (format_ms(r.start_ms)) }
                            td { @match &r.end { Some(e) => { (format_ms(e.time_ms)) " (" (e.reason) ")" }, None => { span.warn { "no end in the log" } } } }
                            td.n { (r.chunks.len()) }
                            td {
                                span class=(format!("state {}", if s.complete() { "ok" } else { "bad" })) { (s.state()) }
                                br; span.small { (s.detail()) }
                            }
                            td { code { "bglass audit play " (page.log_dir) " " (r.session) } }
                        }
                    }
                }
            }
            @for s in page.sessions {
                details.transcript {
                    summary { "Transcript of " (s.recording.session) " (" (s.state()) ")" }
                    pre { (s.transcript.0) @if s.transcript.1 { "\n[… cut here: play the recording for the rest]" } }
                }
            }
        }
    }
}

fn proofs(page: &Page<'_>) -> Markup {
    let p = page.proofs;
    html! {
        section #proofs {
            h2 { "Checkpoint and inclusion proofs" }
            p.desc {
                "Every entry above is in the tree this checkpoint signs: its leaf hash is SHA-256(0x00 ‖ entry), and the proof's hashes lead from it to the root (RFC 6962). The entries' exact bytes are in the bundle's entries.jsonl; "
                code { "bglass audit verify" } " checks the whole log."
            }
            pre.checkpoint { (p.checkpoint) }
            table {
                thead { tr { th.n { "Entry" } th { "Leaf hash" } th.n { "Proof length" } th { "Proof" } } }
                tbody {
                    @for rc in &p.receipts {
                        tr {
                            td.n { (rc.index) }
                            td { code { (rc.leaf_hash) } }
                            td.n { (rc.inclusion.len()) }
                            td { details { summary { "hashes" } code { (rc.inclusion.join(" ")) } } }
                        }
                    }
                }
            }
            @if !p.after_checkpoint.is_empty() {
                p.warn {
                    "Entries after the latest checkpoint (no proof yet; the next checkpoint will cover them): "
                    (p.after_checkpoint.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
                }
            }
        }
    }
}
