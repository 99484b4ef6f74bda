use super::*;

fn ok(p: &str, s: &str, tta: u64, proxy: &str) -> Access {
    Access {
        participant: p.to_owned(),
        service: s.to_owned(),
        kind: "http".to_owned(),
        ok: true,
        tta_ms: Some(tta),
        proxy: Some(proxy.to_owned()),
        failover: proxy != "primary",
        attempts: 1,
        grant: Some(format!("g-{p}-{s}")),
        ..Access::default()
    }
}

fn failed(p: &str, s: &str, code: &str, faults: &[&str]) -> Access {
    Access {
        participant: p.to_owned(),
        service: s.to_owned(),
        kind: "http".to_owned(),
        attempts: 3,
        failure: Some(Failure {
            stage: "tool".to_owned(),
            code: code.to_owned(),
            detail: format!("{s} is unreachable"),
            faults: faults.iter().map(|f| (*f).to_owned()).collect(),
            dependency: None,
        }),
        ..Access::default()
    }
}

fn verified_log() -> AuditCheck {
    AuditCheck {
        logs: vec![LogCheck {
            proxy: "primary".to_owned(),
            dir: "x".to_owned(),
            entries: 10,
            verified: true,
            error: None,
        }],
        ..AuditCheck::default()
    }
}

#[test]
fn nearest_rank_percentiles() {
    let v: Vec<u64> = (1..=100).collect();
    let s = Stats::of(&v);
    assert_eq!((s.count, s.p50, s.p95, s.max, s.min), (100, 50, 95, 100, 1));
    assert_eq!(Stats::of(&[7]).p95, 7);
    assert_eq!(Stats::of(&[]), Stats::default());
    let s = Stats::of(&[30, 10, 20]);
    assert_eq!((s.p50, s.p95), (20, 30));
}

#[test]
fn scorecard_counts_tools_causes_failovers_and_histogram() {
    let tools = vec![
        ("grafana".to_owned(), "http".to_owned()),
        ("logs".to_owned(), "http".to_owned()),
    ];
    let mut accesses = vec![
        ok("a", "grafana", 40, "primary"),
        ok("b", "grafana", 320, "secondary"),
        failed(
            "a",
            "logs",
            "upstream_unreachable",
            &["proxy->service:logs down"],
        ),
        failed(
            "b",
            "logs",
            "upstream_unreachable",
            &["proxy->service:logs down"],
        ),
    ];
    let mut audit = verified_log();
    audit.checked = 2;
    audit.found = 2;
    for a in accesses.iter_mut().filter(|a| a.ok) {
        a.audited = Some(true);
    }
    let expect = Expectations {
        success_rate: Some(1.0),
        ..Expectations::default()
    };
    let card = Scorecard::compute(
        DrillInfo::default(),
        &tools,
        accesses,
        Vec::new(),
        audit,
        &expect,
    );
    assert_eq!((card.accesses, card.succeeded), (4, 2));
    assert_eq!(card.failovers, 1);
    assert_eq!(card.served_by.get("secondary"), Some(&1));
    assert_eq!(card.tools[0].tta.max, 320);
    assert_eq!(card.tools[1].success_rate, 0.0);
    assert_eq!(card.failures.len(), 1);
    assert_eq!(card.failures[0].service, "logs");
    assert_eq!(card.failures[0].cause.count, 2);
    assert_eq!(
        card.failures[0].cause.cause,
        "upstream_unreachable (fault: proxy->service:logs down)"
    );
    let hist: u64 = card.histogram.iter().map(|b| b.count).sum();
    assert_eq!(hist, 2);
    assert_eq!(
        card.histogram[1].count, 1,
        "40 ms falls in the 26-50 bucket"
    );
    assert!(!card.passed, "success rate 50% < 100%");
    let text = card.to_text();
    assert!(
        text.contains("[NOT MET] success rate >= 100% — 50% (2 of 4)"),
        "{text}"
    );
    assert!(text.contains("Result: FAIL"), "{text}");
}

#[test]
fn an_unverified_log_or_an_unaudited_access_fails_the_drill() {
    let tools = vec![("grafana".to_owned(), "http".to_owned())];
    let mut audit = verified_log();
    audit.logs[0].verified = false;
    audit.logs[0].error = Some("entry 3: altered".to_owned());
    audit.checked = 1;
    audit.found = 1;
    let card = Scorecard::compute(
        DrillInfo::default(),
        &tools,
        vec![ok("a", "grafana", 10, "primary")],
        Vec::new(),
        audit,
        &Expectations::default(),
    );
    assert!(!card.passed);
    assert!(card.to_text().contains("primary: entry 3: altered"));

    let mut audit = verified_log();
    audit.checked = 1;
    audit.unaudited = 1;
    let card = Scorecard::compute(
        DrillInfo::default(),
        &tools,
        vec![ok("a", "grafana", 10, "primary")],
        Vec::new(),
        audit,
        &Expectations::default(),
    );
    assert!(!card.passed);
}

#[test]
fn a_dependency_is_the_cause_before_the_faults() {
    let f = Failure {
        stage: "tool".to_owned(),
        code: "upstream_unreachable".to_owned(),
        detail: String::new(),
        faults: vec!["x".to_owned()],
        dependency: Some("zero-trust".to_owned()),
    };
    assert_eq!(f.cause(), "hidden dependency: zero-trust");
}

// ---------------------------------------------------------------------------------------
// report.html (`html::to_html`)
// ---------------------------------------------------------------------------------------

use crate::scenario::{FaultKind, Link, Millis};

const HOSTILE: &str = "<script>alert('x&y')</script>\"";

fn fault(link: Link, kind: FaultKind, start: u64, end: u64, note: Option<&str>) -> Fault {
    Fault {
        link,
        kind,
        start: Millis::from_ms(start),
        end: Millis::from_ms(end),
        note: note.map(str::to_owned),
        at: None,
    }
}

fn html_card(hostile: &str, expect_rate: f64) -> Scorecard {
    let tools = vec![
        ("grafana".to_owned(), "http".to_owned()),
        (hostile.to_owned(), "ssh".to_owned()),
    ];
    let mut accesses = vec![
        ok(hostile, "grafana", 40, "primary"),
        ok("b", "grafana", 12_000, "secondary"),
        failed("a", hostile, "upstream_unreachable", &[hostile]),
    ];
    accesses[2].start_ms = 5_000;
    let mut audit = verified_log();
    audit.checked = 2;
    audit.found = 2;
    audit.missing = vec![hostile.to_owned()];
    audit.logs[0].dir = hostile.to_owned();
    let drill = DrillInfo {
        id: "d-1".to_owned(),
        scenario: hostile.to_owned(),
        description: hostile.to_owned(),
        mode: "simulate".to_owned(),
        started_ms: 1_700_000_000_000,
        wall_ms: 20_000,
        duration_ms: 30_000,
        down: vec![hostile.to_owned()],
        proxies: vec!["primary".to_owned(), "secondary".to_owned()],
        participants: 2,
        approvers: 1,
        notes: vec![hostile.to_owned()],
        ..DrillInfo::default()
    };
    let faults = vec![
        fault(
            Link::ProxyToService("logs".to_owned()),
            FaultKind::Down,
            1_000,
            45_000,
            Some(hostile),
        ),
        fault(
            Link::ResponderToProxy("primary".to_owned()),
            FaultKind::Latency {
                latency: Millis::from_ms(300),
                jitter: Millis::from_ms(20),
            },
            0,
            10_000,
            None,
        ),
    ];
    let expect = Expectations {
        success_rate: Some(expect_rate),
        ..Expectations::default()
    };
    Scorecard::compute(drill, &tools, accesses, faults, audit, &expect)
}

fn assert_self_contained(page: &str) {
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "no JavaScript");
    assert!(!lower.contains("http://"), "no external URL");
    assert!(!lower.contains("https://"), "no external URL");
    assert!(!lower.contains("url("), "no CSS resource");
    assert!(!lower.contains("<img"), "no images");
    assert!(!lower.contains("<link"), "no stylesheets");
    assert!(lower.starts_with("<!doctype html>"));
    assert!(page.contains("<meta charset=\"utf-8\">"));
    assert!(page.trim_end().ends_with("</html>"));
}

fn assert_charts(page: &str) {
    for id in ["tta-histogram", "tool-success", "fault-timeline"] {
        let open = format!("<svg id=\"{id}\" role=\"img\" aria-label=\"");
        assert_eq!(page.matches(&open).count(), 1, "one svg #{id}");
    }
}

#[test]
fn html_escape_covers_the_five_special_characters() {
    assert_eq!(html::escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    assert_eq!(html::escape("plain ≤ text"), "plain ≤ text");
    assert_eq!(html::escape(""), "");
}

#[test]
fn html_report_has_the_three_charts_and_escapes_every_string() {
    let card = html_card(HOSTILE, 1.0);
    let page = html::to_html(&card);
    assert_charts(&page);
    assert_self_contained(&page);
    assert!(!page.contains("<script>"), "hostile strings are escaped");
    assert!(page.contains("&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;&quot;"));
    assert!(page.contains("<title>Drill d-1 — &lt;script&gt;"));
    assert!(page.contains("FAIL</title>"), "title names the result");
    assert!(page.contains("NOT MET"));
    assert!(page.contains("≤25 ms"), "first bucket label");
    assert!(page.contains("&gt;10 s"), "open last bucket label");
    assert!(page.contains("proxy-&gt;service:logs down"), "fault label");
    assert!(page.contains("responder-&gt;proxy:primary latency 300ms ±20ms"));
    assert!(page.contains("2/2 ok · p95 12000 ms"), "tool bar label");
    assert!(
        page.len() < 100_000,
        "a small drill makes a small page: {}",
        page.len()
    );
}

#[test]
fn html_report_shows_pass_when_every_expectation_holds() {
    let card = html_card("ssh-box", 0.5);
    assert!(card.passed, "{:?}", card.expectations);
    let page = html::to_html(&card);
    assert!(page.contains("PASS</title>"));
    assert!(page.contains("<div class=\"badge pass\" role=\"status\">PASS</div>"));
    assert!(!page.contains("NOT MET"));
}

#[test]
fn html_report_of_an_empty_scorecard_still_has_every_chart() {
    for card in [
        Scorecard::default(),
        Scorecard::compute(
            DrillInfo::default(),
            &[],
            Vec::new(),
            Vec::new(),
            AuditCheck::default(),
            &Expectations::default(),
        ),
    ] {
        let page = html::to_html(&card);
        assert_charts(&page);
        assert_self_contained(&page);
        assert!(page.contains("no faults"));
        assert!(page.contains("no tools"));
        assert!(page.contains("FAIL"));
    }
}

#[test]
fn html_report_summarises_a_large_access_log_instead_of_listing_it() {
    let tools = vec![("grafana".to_owned(), "http".to_owned())];
    let accesses: Vec<Access> = (0..36_000u64)
        .map(|i| {
            let mut a = ok(&format!("p{i}"), "grafana", i % 3_000, "primary");
            a.start_ms = i * 5;
            a
        })
        .collect();
    let drill = DrillInfo {
        duration_ms: 180_000,
        ..DrillInfo::default()
    };
    let card = Scorecard::compute(
        drill,
        &tools,
        accesses,
        Vec::new(),
        verified_log(),
        &Expectations::default(),
    );
    let page = html::to_html(&card);
    assert_charts(&page);
    assert!(page.contains("Access log: 36000 accesses"));
    assert!(!page.contains("p35999"), "no row per access");
    assert!(page.len() < 100_000, "page is {} bytes", page.len());
}
