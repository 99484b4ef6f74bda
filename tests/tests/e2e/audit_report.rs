//! `bglass audit report`, `show` and `export` on a log with known content.

use bglass_core::audit::event::EventKind;
use bglass_core::id::{GrantId, RequestId, ServiceName};
use bglass_tests::audit::{self, event, grant, use_of};
use bglass_tests::{command, run};
use serde_json::Value;

const MIN: u64 = 60_000;

fn denial(offset: u64, actor: &str, reason: &str) -> bglass_core::audit::event::Event {
    event(
        offset,
        Some(actor),
        None,
        EventKind::Denial {
            reason: reason.to_owned(),
            detail: format!("{reason} (test)"),
            request: None,
            service: None,
            grant: None,
            envelope: None,
        },
    )
}

fn known_log(dir: &std::path::Path) {
    let events = vec![
        audit::start(),
        event(
            MIN,
            Some("alice"),
            None,
            EventKind::Request {
                request: RequestId::new("r-0000000000000001").unwrap(),
                service: ServiceName::new("grafana").unwrap(),
                ttl_secs: 1800,
                emergency: false,
                reason: "dashboards".to_owned(),
                incident: "INC-1".to_owned(),
                envelope: audit::envelope("1"),
            },
        ),
        grant(
            MIN + 1,
            "g-0000000000000001",
            "alice",
            "grafana",
            false,
            None,
        ),
        use_of(2 * MIN, "g-0000000000000001", "alice", "grafana", None),
        use_of(3 * MIN, "g-0000000000000001", "alice", "grafana", None),
        grant(4 * MIN, "g-0000000000000002", "bob", "argocd", true, None),
        event(
            5 * MIN,
            Some("carol"),
            None,
            EventKind::Review {
                grant: GrantId::new("g-0000000000000002").unwrap(),
                note: "rollback was right".to_owned(),
                envelope: audit::envelope("review"),
            },
        ),
        grant(6 * MIN, "g-0000000000000003", "bob", "bastion", true, None),
        grant(
            7 * MIN,
            "g-0000000000000004",
            "alice",
            "logs",
            false,
            Some("d1"),
        ),
        use_of(
            7 * MIN + 5,
            "g-0000000000000004",
            "alice",
            "logs",
            Some("d1"),
        ),
        grant(
            8 * MIN,
            "g-0000000000000005",
            "carol",
            "grafana",
            false,
            None,
        ),
        event(
            9 * MIN,
            Some("alice"),
            None,
            EventKind::Revoke {
                grant: GrantId::new("g-0000000000000005").unwrap(),
                reason: "done".to_owned(),
                envelope: Some(audit::envelope("revoke")),
            },
        ),
        denial(10 * MIN, "mallory", "bad_signature"),
        denial(11 * MIN, "mallory", "bad_signature"),
        denial(12 * MIN, "bob", "self_approval"),
        // Three uses no grant covers.
        use_of(13 * MIN, "g-0000000000000009", "mallory", "vault", None),
        use_of(10 * MIN, "g-0000000000000005", "carol", "grafana", None),
        use_of(40 * MIN, "g-0000000000000001", "alice", "grafana", None),
    ];
    audit::write(dir, &events);
}

fn bglass(args: &[&str], dir: &std::path::Path) -> bglass_tests::Run {
    let home = tempfile::tempdir().unwrap();
    run(command("bglass", home.path())
        .args(&args[..2])
        .arg(dir)
        .args(&args[2..]))
}

#[test]
fn report_summarises_the_known_log() {
    let tmp = tempfile::tempdir().unwrap();
    known_log(tmp.path());
    let out = bglass(&["audit", "report", "--json"], tmp.path());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let r: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r["entries"], 18);
    assert_eq!(
        r["grants_by_responder"],
        serde_json::json!({"alice": 1, "bob": 2, "carol": 1})
    );
    assert_eq!(
        r["grants_by_service"],
        serde_json::json!({"argocd": 1, "bastion": 1, "grafana": 2})
    );
    let bypasses = r["bypasses"].as_array().unwrap();
    assert_eq!(bypasses.len(), 2);
    assert_eq!(
        bypasses[0]["grant"], "g-0000000000000003",
        "open review first"
    );
    assert_eq!(bypasses[0]["reviewed_by"], Value::Null);
    assert_eq!(bypasses[1]["reviewed_by"], "carol");
    assert_eq!(
        r["denials_by_reason"],
        serde_json::json!({"bad_signature": 2, "self_approval": 1})
    );
    let outside: Vec<(&str, &str)> = r["uses_outside_grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["grant"].as_str().unwrap(), u["why"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outside,
        vec![
            ("g-0000000000000009", "no grant with this id was issued"),
            ("g-0000000000000005", "after the grant was revoked"),
            ("g-0000000000000001", "after the grant expired"),
        ]
    );
    assert_eq!(
        r["real"],
        serde_json::json!({"requests": 1, "grants": 4, "uses": 5, "denials": 3})
    );
    assert_eq!(
        r["drills"]["d1"],
        serde_json::json!({"requests": 0, "grants": 1, "uses": 1, "denials": 0})
    );

    // A window: only the first five minutes.
    let out = bglass(
        &[
            "audit",
            "report",
            "--until",
            "2026-01-01T00:05:00Z",
            "--json",
        ],
        tmp.path(),
    );
    let r: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r["entries_in_period"], 6);
    assert_eq!(r["real"]["grants"], 2);

    let text = bglass(&["audit", "report"], tmp.path());
    assert!(
        text.stdout
            .contains("Emergency bypasses: 2 (1 review(s) OPEN)"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("Uses outside any grant: 3 — INVESTIGATE"),
        "{}",
        text.stdout
    );
}

#[test]
fn show_filters_and_export_formats() {
    let tmp = tempfile::tempdir().unwrap();
    known_log(tmp.path());
    let out = bglass(
        &["audit", "show", "--responder", "alice", "--json"],
        tmp.path(),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let shown: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let indexes: Vec<u64> = shown.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    // Alice's request, grant, uses, drill grant and use, her revocation of carol's grant,
    // and the late use of her grant.
    assert_eq!(indexes, vec![1, 2, 3, 4, 8, 9, 11, 17]);

    let out = bglass(
        &[
            "audit",
            "show",
            "--service",
            "grafana",
            "--since",
            "2026-01-01T00:08:00Z",
            "--json",
        ],
        tmp.path(),
    );
    let shown: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let indexes: Vec<u64> = shown.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, vec![10, 11, 16, 17]);

    let out = bglass(&["audit", "show", "--drill", "d1"], tmp.path());
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);

    let csv = bglass(&["audit", "export", "--format", "csv"], tmp.path());
    assert_eq!(csv.code, Some(0));
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines.len(), 19);
    assert_eq!(
        lines[0],
        "index,time,proxy,actor,drill,event,service,grant,request,detail"
    );
    assert!(lines[9].starts_with("8,2026-01-01T00:07:00.000Z,proxy-a,alice,d1,grant,logs,g-0000000000000004,r-0000000000000004,"), "{}", lines[9]);

    let jsonl = bglass(
        &["audit", "export", "--format", "jsonl", "--responder", "bob"],
        tmp.path(),
    );
    let rows: Vec<Value> = jsonl
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // His two grants, the review of one of them, and his refused self-approval.
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0]["event"]["event"]["grant"]["grant"],
        "g-0000000000000002"
    );

    let bad = bglass(&["audit", "show", "--since", "yesterday"], tmp.path());
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stderr
            .contains("--since: time \"yesterday\" is invalid"),
        "{}",
        bad.stderr
    );
}

#[test]
fn reading_commands_refuse_a_log_that_does_not_verify() {
    let tmp = tempfile::tempdir().unwrap();
    known_log(tmp.path());
    // Tamper with the write-ahead file holding the entries (fewer than 256: no bundle yet).
    let wal = tmp.path().join("pending.wal");
    let text = std::fs::read(&wal).unwrap();
    let mut records = bglass_core::audit::storage::read_wal(&wal).unwrap().records;
    assert!(!text.is_empty());
    records[3].data = bglass_core::audit::storage::Entry::new(
        String::from_utf8(records[3].data.as_bytes().to_vec())
            .unwrap()
            .replace("/api/health", "/api/secret")
            .into_bytes(),
    )
    .unwrap();
    let mut bytes = bglass_core::audit::storage::wal_header();
    for r in &records {
        bglass_core::audit::storage::encode_record(&mut bytes, r.index, &r.data);
    }
    std::fs::write(&wal, bytes).unwrap();
    let out = bglass(&["audit", "report"], tmp.path());
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert!(
        out.stderr.contains("does not match the entries"),
        "{}",
        out.stderr
    );
    let forensic = bglass(&["audit", "show", "--unverified"], tmp.path());
    assert_eq!(forensic.code, Some(0));
    assert!(
        forensic
            .stderr
            .contains("warning: reading a log that does not verify")
    );
}
