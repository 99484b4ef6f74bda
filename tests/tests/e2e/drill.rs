//! Drill mode end to end: `bglass drill simulate` on the shipped scenarios (real proxies in
//! process, real TLS, real sshd, fault links), `drill deps` on the planted hidden
//! dependency, a live drill among a real `bglass-proxy` and four `bglass` processes, and
//! the HTML report as headless Chromium renders it.

use std::path::Path;

use bglass_tests::world::{TEST_CATALOG, World};
use bglass_tests::{Run, assert_no_panic, bin, command, root, run};
use serde_json::Value;

fn simulate(scenario: &Path, out: &Path, extra: &[&str]) -> (Run, Value) {
    let tmp = out.parent().unwrap();
    let r = run(command("bglass", tmp)
        .args(["drill", "simulate"])
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(extra));
    assert_no_panic(&r);
    let report = std::fs::read(out.join("report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}): {}\n{}", r.stdout, r.stderr));
    (r, serde_json::from_slice(&report).unwrap())
}

fn tool<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["service"] == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

fn verify(log: &Path, key: &str) -> Run {
    run(command("bglass", log)
        .args(["audit", "verify"])
        .arg(log)
        .args(["--key", key]))
}

/// The README's main command, with fewer participants: every participant reaches all 18
/// tools through real proxy code over TLS, the reports are written, and every access is in
/// a log that `bglass audit verify` accepts.
#[test]
fn the_zero_trust_outage_drill_reaches_every_tool_and_audits_every_access() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let scenario = root().join("drills/zero-trust-outage.toml");
    let (r, report) = simulate(&scenario, &out, &["--participants", "8"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Result: PASS"), "{}", r.stdout);
    assert_eq!(report["accesses"], 8 * 18);
    assert_eq!(report["succeeded"], 8 * 18);
    assert_eq!(report["tools"].as_array().unwrap().len(), 18);
    assert_eq!(report["audit"]["found"], 8 * 18);
    assert_eq!(report["audit"]["unaudited"], 0);
    assert!(report["audit"]["drill_events"].as_u64().unwrap() > 8 * 18 * 2);
    for a in report["access_log"].as_array().unwrap() {
        assert_eq!(a["audited"], true, "{a}");
    }
    // SSH was a real login when sshd is installed (scripts/test installs it).
    if Path::new("/usr/sbin/sshd").exists() {
        let notes = report["drill"]["notes"].to_string();
        assert!(notes.contains("real sshd"), "{notes}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for id in ["tta-histogram", "tool-success", "fault-timeline"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no chart {id}");
    }
    // Each proxy's log verifies offline with the key the scorecard printed.
    for p in ["primary", "secondary"] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("Audit log of {p}:")))
            .unwrap();
        let key = line.rsplit(' ').next().unwrap();
        let log = out.join("world").join(p).join("data/log");
        let v = verify(&log, key);
        assert_eq!(v.code, Some(0), "{}", v.stderr);
    }
    // The drill's events are tagged with its id.
    let id = report["drill"]["id"].as_str().unwrap();
    let shown = run(command("bglass", tmp.path())
        .args(["audit", "export", "--format", "jsonl", "--drill", id])
        .arg(out.join("world/primary/data/log")));
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    assert!(shown.stdout.lines().count() > 8 * 18);
}

/// The drill benchmark's harness cannot rot: `scripts/bench-drill` itself runs a small
/// drill on the debug binary — the same scenario path as the benchmark (company-wide.toml
/// rewritten as the harness rewrites it, its production file, the JSON scorecard parsed
/// into the table) — and every access gets through. No timing is asserted.
#[test]
fn the_drill_benchmark_harness_runs_a_small_company_wide_drill() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(root().join("scripts/bench-drill"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BGLASS_") {
            c.env_remove(&key);
        }
    }
    c.arg("4")
        .env("BGLASS_BIN", bin("bglass"))
        .env("HOME", tmp.path())
        .current_dir(root());
    let r = run(&mut c);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with("4 "))
        .unwrap_or_else(|| panic!("no row for 4 participants:\n{}", r.stdout));
    // 4 participants x 18 tools, all through; the scenario's expectations held.
    assert!(row.contains(" 72/72 "), "{row}");
    assert!(row.contains("[PASS]"), "{row}");
    assert!(row.contains("reference"), "{row}");
}

/// Faults act and are attributed: the primary's loss shows as failover in time to access;
/// grafana's 300 ms latency shows in its timings; a tool that is down fails with the fault
/// named, and the unmet expectation makes the exit non-zero.
#[test]
fn faults_act_and_are_attributed() {
    let tmp = tempfile::tempdir().unwrap();

    let (r, report) = simulate(
        &root().join("drills/primary-proxy-loss.toml"),
        &tmp.path().join("loss"),
        &["--participants", "10"],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(report["failovers"].as_u64().unwrap() > 0, "{}", r.stdout);
    assert!(report["served_by"]["secondary"].as_u64().unwrap() > 0);
    assert!(report["tta_failover"]["count"].as_u64().unwrap() > 0);
    assert!(r.stdout.contains("after failover p50"), "{}", r.stdout);

    let (r, report) = simulate(
        &root().join("drills/degraded-links.toml"),
        &tmp.path().join("degraded"),
        &["--participants", "10"],
    );
    assert_no_panic(&r);
    let grafana = tool(&report, "grafana");
    // 300 ms ± 20 ms each way on the proxy's link to grafana.
    assert!(grafana["tta"]["min"].as_u64().unwrap() >= 560, "{grafana}");
    // (How fast the other tools were is a benchmark's question, not a test's.)

    let scenario = tmp.path().join("logs-down.toml");
    std::fs::write(
        &scenario,
        r#"version = 1
name = "logs-down"
description = "Log search is down for the whole drill"
duration = "30s"
proxies = ["primary"]

[participants]
count = 4
approvers = 3
services = ["grafana", "logs"]

[[fault]]
link = "proxy->service:logs"
kind = "down"
note = "the log cluster lost power"

[expect]
success_rate = 1.0
"#,
    )
    .unwrap();
    let (r, report) = simulate(&scenario, &tmp.path().join("down"), &[]);
    assert_eq!(r.code, Some(6), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("[NOT MET] success rate >= 100%"),
        "{}",
        r.stdout
    );
    let logs = tool(&report, "logs");
    assert_eq!(logs["succeeded"], 0);
    let cause = logs["failures"][0]["cause"].as_str().unwrap();
    assert!(cause.contains("proxy->service:logs down"), "{cause}");
    assert_eq!(tool(&report, "grafana")["succeeded"], 4);
}

/// The planted hidden dependency: `drill deps` flags it, and the simulation fails naming it.
#[test]
fn the_hidden_dependency_is_flagged_and_fails_the_drill() {
    let tmp = tempfile::tempdir().unwrap();
    let deps = run(command("bglass", tmp.path()).args([
        "drill",
        "deps",
        "--services",
        "services.toml",
        "--production",
        "drills/hidden-dependency.production.toml",
    ]));
    assert_eq!(deps.code, Some(6), "{}\n{}", deps.stdout, deps.stderr);
    let flagged: Vec<&str> = deps.stdout.lines().filter(|l| l.contains("!!")).collect();
    assert_eq!(flagged.len(), 1, "{}", deps.stdout);
    assert!(flagged[0].contains("feature-flags"), "{}", deps.stdout);
    assert!(
        deps.stdout.contains("depends on zero-trust"),
        "{}",
        deps.stdout
    );
    // The shipped production file flags nothing in the shipped catalog.
    let clean = run(command("bglass", tmp.path()).args([
        "drill",
        "deps",
        "--services",
        "services.toml",
        "--production",
        "drills/production.toml",
    ]));
    assert_eq!(clean.code, Some(0), "{}\n{}", clean.stdout, clean.stderr);

    let (r, report) = simulate(
        &root().join("drills/hidden-dependency.toml"),
        &tmp.path().join("out"),
        &["--participants", "5"],
    );
    assert_eq!(r.code, Some(6), "{}\n{}", r.stdout, r.stderr);
    let ff = tool(&report, "feature-flags");
    assert_eq!(ff["succeeded"], 0);
    assert_eq!(ff["failures"][0]["cause"], "hidden dependency: zero-trust");
    assert!(
        r.stdout.contains("hidden dependency: zero-trust"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Result: FAIL"), "{}", r.stdout);
}

/// `drill plan` says what will happen, and rejects a broken scenario with its location.
#[test]
fn plan_describes_the_scenario_and_bad_scenarios_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    let p =
        run(command("bglass", tmp.path()).args(["drill", "plan", "drills/degraded-links.toml"]));
    assert_eq!(p.code, Some(0), "{}", p.stderr);
    assert!(
        p.stdout
            .contains("proxy->service:grafana latency 300ms ±20ms"),
        "{}",
        p.stdout
    );
    assert!(p.stdout.contains("720 accesses in all"), "{}", p.stdout);
    let h =
        run(command("bglass", tmp.path()).args(["drill", "plan", "drills/hidden-dependency.toml"]));
    assert!(
        h.stdout
            .contains("!! proxy->service:feature-flags will be down"),
        "{}",
        h.stdout
    );

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "version = 1\nname = \"x\"\nfault = 3\n").unwrap();
    let r = run(command("bglass", tmp.path())
        .args(["drill", "simulate"])
        .arg(&bad));
    assert_no_panic(&r);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("bad.toml:"), "{}", r.stderr);
    assert!(!tmp.path().join("drill-reports").exists());
}

/// A live drill: a real `bglass-proxy`, a drill lead and three participants (four `bglass`
/// processes): start, join, stop, and the report rebuilt from the proxy's audit log.
#[test]
fn a_live_drill_is_started_joined_stopped_and_reported_from_the_log() {
    let mut w = World::new(
        &["proxy-a"],
        &[
            ("lead", "drill-lead"),
            ("alice", "responder"),
            ("bob", "responder"),
            ("carol", "responder"),
        ],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let scenario = w.dir.path().join("live.toml");
    std::fs::write(
        &scenario,
        r#"version = 1
name = "live-check"
description = "Everyone reaches the dashboards and metrics through the proxy"
catalog = "proxy-a/services.toml"
duration = "10m"
proxies = ["proxy-a"]

[participants]
count = 3
approvers = 0
services = ["grafana", "prom"]

[expect]
success_rate = 1.0
"#,
    )
    .unwrap();

    // Only a drill lead may start one.
    let refused = w.bglass("alice", &["drill", "start", scenario.to_str().unwrap()]);
    assert_eq!(refused.code, Some(3), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("missing_role"),
        "{}",
        refused.stderr
    );

    let started = w.bglass(
        "lead",
        &["drill", "start", "--json", scenario.to_str().unwrap()],
    );
    assert_eq!(started.code, Some(0), "{}", started.stderr);
    let plan: Value = serde_json::from_str(&started.stdout).unwrap();
    let id = plan["drill"].as_str().unwrap().to_owned();
    assert!(id.starts_with("live-check-"), "{id}");
    let twice = w.bglass("lead", &["drill", "start", scenario.to_str().unwrap()]);
    assert!(twice.stderr.contains("drill_running"), "{}", twice.stderr);

    // A real access while the drill runs is not the drill's.
    let real = w.bglass(
        "carol",
        &[
            "access",
            "grafana",
            "--reason",
            "real outage",
            "--incident",
            "INC-77",
        ],
    );
    assert_eq!(real.code, Some(0), "{}", real.stderr);

    for who in ["alice", "bob", "carol"] {
        let j = w.bglass(who, &["drill", "join"]);
        assert_eq!(j.code, Some(0), "{who}: {}\n{}", j.stdout, j.stderr);
        assert!(j.stdout.contains("2 of 2 tools reached"), "{}", j.stdout);
    }
    let stopped = w.bglass("lead", &["drill", "stop"]);
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    assert!(stopped.stdout.contains(&id), "{}", stopped.stdout);
    // After the stop, accesses are no longer drill accesses.
    let after = w.bglass("alice", &["drill", "join"]);
    assert!(after.stderr.contains("no_drill"), "{}", after.stderr);

    let out = w.dir.path().join("report");
    let p = &w.proxies[0];
    let report = run(command("bglass", w.dir.path())
        .args(["drill", "report", &id, "--log"])
        .arg(p.log_dir())
        .args(["--key", &p.key, "--scenario"])
        .arg(&scenario)
        .arg("--out")
        .arg(&out));
    assert_eq!(report.code, Some(0), "{}\n{}", report.stdout, report.stderr);
    // Without --key the log is checked against its own first entry, and the report says so.
    let keyless = run(command("bglass", w.dir.path())
        .args(["drill", "report", &id, "--log"])
        .arg(p.log_dir()));
    assert_eq!(keyless.code, Some(0), "{}", keyless.stderr);
    assert!(
        keyless
            .stdout
            .contains("verified against the key recorded in its own first entry"),
        "{}",
        keyless.stdout
    );
    // A drill that is not in the log is a clear error.
    let unknown = run(command("bglass", w.dir.path())
        .args(["drill", "report", "no-such-drill", "--log"])
        .arg(p.log_dir()));
    assert_eq!(unknown.code, Some(1), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("does not start in these logs"),
        "{}",
        unknown.stderr
    );
    let card: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(card["drill"]["mode"], "live");
    assert_eq!(card["drill"]["participants"], 3);
    assert_eq!(card["accesses"], 6);
    assert_eq!(card["succeeded"], 6);
    assert_eq!(card["audit"]["found"], 6);
    assert!(out.join("report.html").exists());
    // Every event between start and stop carries the drill's id.
    let shown = run(command("bglass", w.dir.path())
        .args(["audit", "export", "--format", "jsonl", "--drill", &id])
        .arg(p.log_dir()));
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    let kinds: Vec<String> = shown.stdout.lines().map(str::to_owned).collect();
    assert!(kinds.iter().any(|k| k.contains("drill_start")), "{kinds:?}");
    assert!(
        !kinds.iter().any(|k| k.contains("INC-77")),
        "a real access was filed as the drill's"
    );
    let all = run(command("bglass", w.dir.path())
        .args(["audit", "export", "--format", "jsonl"])
        .arg(p.log_dir()));
    let real: Vec<&str> = all
        .stdout
        .lines()
        .filter(|l| l.contains("INC-77"))
        .collect();
    assert_eq!(real.len(), 1, "{}", all.stdout);
    assert!(!real[0].contains(&id), "{}", real[0]);
    assert!(kinds.iter().any(|k| k.contains("drill_stop")), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| k.contains("grant")).count() >= 6,
        "{kinds:?}"
    );
}

/// The part of a serialised DOM from `<svg id="ID"` to its `</svg>`.
fn svg_in<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("chart {id} missing from the rendered DOM"));
    let len = dom[start..].find("</svg>").expect("an svg that ends");
    &dom[start..start + len]
}

/// report.html as headless Chromium parses and lays it out (`--dump-dom` serialises the
/// document once it has loaded): the three charts are SVG elements with one bar per
/// non-empty histogram bucket, a track and a bar per tool, a row per fault, and the
/// scorecard's numbers from report.json are the page's figures.
#[test]
fn the_html_report_renders_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (r, report) = simulate(
        &root().join("drills/degraded-links.toml"),
        &out,
        &["--participants", "4"],
    );
    assert_no_panic(&r);
    let page = format!("file://{}", out.join("report.html").display());
    let dom = bglass_tests::chromium::dump_dom(&tmp.path().join("profile"), &page, &[]);
    assert!(
        dom.stdout.contains("</html>"),
        "no DOM from chromium: {}",
        dom.stderr
    );
    let dom = dom.stdout;

    // The histogram: a bar (with its count above it) for each bucket that has successes.
    let histogram = svg_in(&dom, "tta-histogram");
    let buckets = report["histogram"].as_array().unwrap();
    let filled = buckets.iter().filter(|b| b["count"] != 0).count();
    assert!(filled > 0, "{report}");
    assert_eq!(histogram.matches("<rect ").count(), filled, "{histogram}");
    let successes: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert!(histogram.contains(&format!("{successes} successful accesses")));

    // Success by tool: a track and a bar per tool, each tool named with its rate.
    let tools = svg_in(&dom, "tool-success");
    let scored = report["tools"].as_array().unwrap();
    assert_eq!(tools.matches("<rect ").count(), 2 * scored.len(), "{tools}");
    for t in scored {
        let name = t["service"].as_str().unwrap();
        assert!(
            tools.contains(&format!(">{name}</text>")),
            "no bar for {name}"
        );
        let line = format!("{}/{} ok", t["succeeded"], t["accesses"]);
        assert!(tools.contains(&line), "{name}: no {line}");
    }

    // The fault timeline: a labelled row per fault, then the accesses started.
    let timeline = svg_in(&dom, "fault-timeline");
    for f in report["faults"].as_array().unwrap() {
        let link = f["link"].as_str().unwrap().replace('>', "&gt;");
        assert!(timeline.contains(&format!(">{link} {}", f["kind"].as_str().unwrap())));
    }
    assert!(timeline.contains("accesses started"), "{timeline}");

    // The figures are the scorecard's.
    for figure in [
        format!("<b>{} / {}</b>", report["succeeded"], report["accesses"]),
        format!("<b>{} ms</b><span>time to access p50", report["tta"]["p50"]),
        format!("<b>{} ms</b><span>time to access p95", report["tta"]["p95"]),
        format!(
            "<b>{} / {}</b><span>found in the audit log",
            report["audit"]["found"], report["audit"]["checked"]
        ),
    ] {
        assert!(dom.contains(&figure), "no {figure} in the rendered page");
    }
    let verdict = if report["passed"] == true {
        "PASS"
    } else {
        "FAIL"
    };
    assert!(dom.contains(&format!("role=\"status\">{verdict}</div>")));
}
