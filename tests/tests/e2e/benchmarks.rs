//! Smoke runs of the benchmark harnesses, so that they cannot rot between the runs that
//! measure: each runs end to end on a few hundred requests (debug binaries, no figures
//! checked, no timing asserted) and must finish cleanly with its report.

use std::process::Command;

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(bglass_tests::bin(name))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_data_plane_benchmark_runs_every_path_and_finds_every_request_audited() {
    let out = run(
        "dataplane-bench",
        &[
            "--requests",
            "200",
            "--rounds",
            "1",
            "--connections",
            "4",
            "--stream-mib",
            "2",
        ],
    );
    for path in [
        "upstream",
        "nginx",
        "proxy",
        "nginx-chain",
        "open",
        "floor",
        "floor-audit",
        "floor-nowait",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{path} "))),
            "no figures for {path}:\n{out}"
        );
    }
    assert!(out.contains("bglass-proxy req/s vs nginx"), "{out}");
    assert!(out.contains("bglass-proxy streaming vs nginx"), "{out}");
    assert!(out.contains("floor + the audit work"), "{out}");
    // 200 requests on each of the two proxied paths, and one streamed body.
    assert!(
        out.contains("audit: 401 requests through the proxy, 802 new log entries"),
        "{out}"
    );
}

#[test]
fn the_grant_benchmark_issues_and_accounts_for_grants() {
    let out = run(
        "grant-bench",
        &["--grants", "200", "--rounds", "1", "--responders", "8"],
    );
    assert!(out.contains("\n1           200 "), "{out}");
    assert!(out.contains("entries/grant"), "{out}");
    for step in ["verify", "sign", "hash", "fsync", "other"] {
        assert!(
            out.contains(&format!("  {step} ")),
            "no {step} line:\n{out}"
        );
    }
}

#[test]
fn the_restart_benchmark_starts_a_proxy_on_a_written_log() {
    let out = run("restart-bench", &["3000", "1"]);
    assert!(out.contains("worst: serving in"), "{out}");
}

#[test]
fn the_recording_benchmark_measures_both_paths_and_finds_the_recording_complete() {
    let out = run("record-bench", &["--keys", "50", "--bulk-mb", "2"]);
    for line in [
        "plain     keystroke rtt",
        "recorded  keystroke rtt",
        "recording adds per keystroke",
        "recorded bulk vs plain",
    ] {
        assert!(out.contains(line), "no {line:?}:\n{out}");
    }
    assert!(out.contains("bytes, complete ("), "{out}");
}
