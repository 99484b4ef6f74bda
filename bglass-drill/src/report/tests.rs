//! The reports of fixed scorecards: snapshots of `report.html` and of the text, and the
//! page's promises (self-contained, every string escaped, three charts, summarised access
//! log).

use bglass_core::drill::{Access, AuditCheck, DrillInfo, Failure, LogCheck, Scorecard};
use bglass_core::scenario::{Expectations, Fault, FaultKind, Link, Millis};

use super::{to_html, to_text};

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
            Link::ProxyToService(bglass_core::id::ServiceName::new("logs").unwrap()),
            FaultKind::Down,
            1_000,
            45_000,
            Some(hostile),
        ),
        fault(
            Link::ResponderToProxy(bglass_core::id::ProxyId::new("primary").unwrap()),
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
fn html_report_has_the_three_charts_and_escapes_every_string() {
    let card = html_card(HOSTILE, 1.0);
    let page = to_html(&card);
    assert_charts(&page);
    assert_self_contained(&page);
    assert!(!page.contains("<script>"), "hostile strings are escaped");
    assert!(page.contains("&lt;script&gt;alert('x&amp;y')&lt;/script&gt;&quot;"));
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
    let page = to_html(&card);
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
        let page = to_html(&card);
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
    let page = to_html(&card);
    assert_charts(&page);
    assert!(page.contains("Access log: 36000 accesses"));
    assert!(!page.contains("p35999"), "no row per access");
    assert!(page.len() < 100_000, "page is {} bytes", page.len());
}

/// A drill of four participants on two proxies with a fault and a failover: the reports'
/// snapshots (`snapshots/`). Review a change with `cargo insta review`, or rerun with
/// `INSTA_UPDATE=always` and read the diff.
fn snapshot_card() -> Scorecard {
    let tools = vec![
        ("grafana".to_owned(), "http".to_owned()),
        ("bastion".to_owned(), "ssh".to_owned()),
        ("logs".to_owned(), "http".to_owned()),
    ];
    let mut accesses = Vec::new();
    for (i, p) in ["p0001", "p0002", "p0003", "p0004"].into_iter().enumerate() {
        let i = i as u64;
        let mut g = ok(
            p,
            "grafana",
            120 + 40 * i,
            if i < 3 { "primary" } else { "secondary" },
        );
        g.start_ms = 250 * i;
        g.audited = Some(true);
        let mut b = ok(p, "bastion", 1_450 + 300 * i, "primary");
        b.kind = "ssh".to_owned();
        b.approval_ms = Some(900 + 100 * i);
        b.start_ms = 250 * i + 200;
        b.audited = Some(true);
        let mut l = failed(
            p,
            "logs",
            "upstream_unreachable",
            &["proxy->service:logs down"],
        );
        l.start_ms = 250 * i + 2_000;
        accesses.extend([g, b, l]);
    }
    let mut audit = verified_log();
    audit.checked = 8;
    audit.found = 8;
    audit.drill_events = 61;
    audit.logs.push(LogCheck {
        proxy: "secondary".to_owned(),
        dir: "world/secondary/data/log".to_owned(),
        entries: 7,
        verified: true,
        error: None,
    });
    audit.logs[0].dir = "world/primary/data/log".to_owned();
    let drill = DrillInfo {
        id: "logs-down-20261122031500".to_owned(),
        scenario: "logs-down".to_owned(),
        description: "Log search is down for the whole drill".to_owned(),
        scenario_digest: "9f".repeat(32),
        mode: "simulate".to_owned(),
        started_ms: 1_795_835_700_000,
        wall_ms: 4_350,
        down: Vec::new(),
        proxies: vec!["primary".to_owned(), "secondary".to_owned()],
        participants: 4,
        approvers: 2,
        duration_ms: 30_000,
        notes: vec!["sshd is not installed: SSH tools were probed by the banner.".to_owned()],
    };
    let faults = vec![fault(
        Link::ProxyToService(bglass_core::id::ServiceName::new("logs").unwrap()),
        FaultKind::Down,
        0,
        30_000,
        Some("the log cluster lost power"),
    )];
    let expect = Expectations {
        success_rate: Some(1.0),
        tta_p95: Some(Millis::from_ms(3_000)),
        ..Expectations::default()
    };
    Scorecard::compute(drill, &tools, accesses, faults, audit, &expect)
}

#[test]
fn report_html_snapshot() {
    let page = to_html(&snapshot_card());
    assert_charts(&page);
    assert_self_contained(&page);
    // One tag a line, so that a change reads as a diff. Unambiguous: a `><` in text would
    // have been escaped.
    insta::assert_snapshot!("report_html", page.replace("><", ">\n<"));
}

#[test]
fn scorecard_text_snapshot() {
    insta::assert_snapshot!("scorecard_text", to_text(&snapshot_card()));
}

#[test]
fn text_names_unmet_expectations_and_bad_logs() {
    let text = to_text(&snapshot_card());
    assert!(
        text.contains("[NOT MET] success rate >= 100% — 66.7% (8 of 12)"),
        "{text}"
    );
    assert!(text.contains("Result: FAIL"), "{text}");
    let mut audit = verified_log();
    audit.logs[0].verified = false;
    audit.logs[0].error = Some("entry 3: altered".to_owned());
    let card = Scorecard::compute(
        DrillInfo::default(),
        &[],
        Vec::new(),
        Vec::new(),
        audit,
        &Expectations::default(),
    );
    assert!(to_text(&card).contains("primary: 10 entries, DOES NOT VERIFY: entry 3: altered"));
}
