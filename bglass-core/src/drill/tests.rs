use super::*;
use crate::scenario::Expectations;

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
    let unmet: Vec<&Outcome> = card.expectations.iter().filter(|o| !o.met).collect();
    assert_eq!(unmet.len(), 1, "{:?}", card.expectations);
    assert_eq!(unmet[0].expectation, "success rate >= 100%");
    assert_eq!(unmet[0].actual, "50% (2 of 4)");
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
    assert!(
        card.expectations
            .iter()
            .any(|o| !o.met && o.actual == "primary: entry 3: altered"),
        "{:?}",
        card.expectations
    );

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

#[test]
fn the_histogram_counts_each_time_in_one_bucket() {
    let h = histogram(&[0, 25, 26, 10_000, 10_001, u64::MAX]);
    assert_eq!(h.len(), BUCKETS_MS.len());
    assert_eq!(h[0].count, 2, "0 and 25 ms");
    assert_eq!(h[1].count, 1, "26 ms");
    assert_eq!(h[12].count, 1, "10 s");
    assert_eq!(h[13].count, 2, "over 10 s, up to the largest");
}

/// `drill_result` holds integers only: it survives decoding and re-encoding exactly, and
/// an entry with a float, or with the free-form summary of old, is not an event.
#[test]
fn drill_result_round_trips_and_refuses_floats() {
    use crate::audit::event::{Event, EventKind};
    let tools = vec![("grafana".to_owned(), "http".to_owned())];
    let mut audit = verified_log();
    audit.checked = 1;
    audit.found = 1;
    let card = Scorecard::compute(
        DrillInfo::default(),
        &tools,
        vec![
            ok("a", "grafana", 40, "primary"),
            failed("b", "grafana", "timeout", &[]),
        ],
        Vec::new(),
        audit,
        &Expectations::default(),
    );
    let summary = card.summary();
    assert_eq!((summary.accesses, summary.succeeded), (2, 1));
    assert_eq!(summary.tta_max_ms, 40);
    assert_eq!(summary.expectations, 3);
    assert!(
        summary.passed && summary.unmet == 0,
        "{:?}",
        card.expectations
    );
    let event = Event {
        v: crate::audit::event::EVENT_VERSION,
        time_ms: 1_760_003,
        proxy: crate::id::ProxyId::new("proxy-a").unwrap(),
        actor: None,
        drill: Some("d-1".to_owned()),
        event: EventKind::DrillResult { summary },
    };
    let bytes = event.to_bytes().unwrap();
    let again = Event::from_bytes(&bytes).unwrap();
    assert_eq!(again, event);
    assert_eq!(again.to_bytes().unwrap(), bytes, "the same bytes again");

    let text = String::from_utf8(bytes).unwrap();
    let float = text.replace("\"tta_p50_ms\":40", "\"tta_p50_ms\":1.5e70");
    assert_ne!(float, text);
    assert!(Event::from_bytes(float.as_bytes()).is_err(), "a float");
    let free_form = r#"{"v":1,"time_ms":1760003,"proxy":"proxy-a","actor":null,"event":{"drill_result":{"summary":{"s":1,"n":[1,2.5]}}}}"#;
    assert!(
        Event::from_bytes(free_form.as_bytes()).is_err(),
        "free-form"
    );
}
