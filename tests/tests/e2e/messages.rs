//! What a responder reads when something is not there: a plain cause instead of the
//! system's error text (that only with `-v`), no failover chatter with a single proxy, a
//! grant that ended says when and (revoked) by whom and why, and a refused revocation says
//! what to do. Against the real binaries.

use bglass_tests::world::World;
use bglass_tests::{assert_no_panic, now_secs, wait_past};

fn world() -> World {
    World::alice_and_carol()
}

#[test]
fn one_proxy_down_reads_as_a_plain_cause_and_the_system_text_only_with_v() {
    let mut w = world();
    w.kill(0);
    let addr = format!("127.0.0.1:{}", w.proxies[0].port);
    for args in [
        vec!["grants"],
        vec!["status"],
        vec!["access", "grafana", "--reason", "r", "--incident", "I"],
    ] {
        let out = w.bglass("carol", &args);
        assert_no_panic(&out);
        assert_eq!(out.code, Some(4), "{args:?}: {}", out.stderr);
        // `status` reports each proxy on stdout, the others on stderr.
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(
            said.contains(&format!(
                "connection refused: is bglass-proxy running on {addr}?"
            )),
            "{args:?}: {said}"
        );
        for raw in ["os error", "tcp connect error", "error sending request"] {
            assert!(!said.contains(raw), "{args:?}: {said}");
        }
        assert!(
            !said.contains("trying the next proxy"),
            "{args:?}: one proxy, no next one: {said}"
        );
    }
    let verbose = w.bglass("carol", &["-v", "grants"]);
    assert_eq!(verbose.code, Some(4), "{}", verbose.stderr);
    assert!(
        verbose
            .stderr
            .contains("connection refused: is bglass-proxy running")
            && verbose.stderr.contains("os error"),
        "-v adds the system's text: {}",
        verbose.stderr
    );
}

#[test]
fn an_ended_grant_says_when_and_by_whom_and_a_refused_revocation_says_what_to_do() {
    let w = world();
    // Revoked by an approver: the holder reads who and why.
    let granted = w.access("carol", "grafana");
    let grant = granted["grant"]["id"].as_str().unwrap().to_owned();
    let revoke = w.bglass(
        "alice",
        &["revoke", &grant, "--reason", "incident INC-4 is over"],
    );
    assert_eq!(revoke.code, Some(0), "{}", revoke.stderr);
    let used = w.bglass("carol", &["curl", "grafana", "/api/health"]);
    assert_eq!(used.code, Some(3), "{}", used.stderr);
    assert!(
        used.stderr.contains(&format!("{grant} was revoked at "))
            && used.stderr.contains("by alice: incident INC-4 is over")
            && used.stderr.contains("(revoked_grant)"),
        "{}",
        used.stderr
    );

    // Revoking it again is refused, with what happened and what to do.
    let again = w.bglass("alice", &["revoke", &grant]);
    assert_eq!(again.code, Some(3), "{}", again.stderr);
    assert!(
        again.stderr.contains("by alice: incident INC-4 is over")
            && again.stderr.contains("(already_revoked)")
            && again.stderr.contains("hint: nothing to do"),
        "{}",
        again.stderr
    );
    let unknown = w.bglass("alice", &["revoke", "g-0000000000000000"]);
    assert_eq!(unknown.code, Some(3), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("(unknown_grant)") && unknown.stderr.contains("hint: "),
        "{}",
        unknown.stderr
    );

    // Expired (prom's grants last 3 s): the holder reads when.
    let short = w.access("carol", "prom");
    let exp = short["grant"]["exp"].as_u64().unwrap();
    wait_past(exp, "the prom grant to expire");
    assert!(now_secs() > exp);
    let late = w.bglass("carol", &["curl", "prom", "/api/health"]);
    assert_eq!(late.code, Some(3), "{}", late.stderr);
    let id = short["grant"]["id"].as_str().unwrap();
    assert!(
        late.stderr
            .contains(&format!("your grant {id} expired at "))
            && late.stderr.contains(" ago)"),
        "{}",
        late.stderr
    );
}

#[test]
fn audit_show_gives_an_emergency_grant_its_real_ttl() {
    let w = world();
    // argocd: default TTL 30 min, emergency TTL 10 min.
    let out = w.bglass(
        "carol",
        &[
            "access",
            "argocd",
            "--reason",
            "prod down",
            "--incident",
            "INC-5",
            "--emergency",
            "--json",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let view: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let g = &view["grant"];
    let ttl = g["exp"].as_u64().unwrap() - g["nbf"].as_u64().unwrap();
    assert_eq!(ttl, 600);
    let home = tempfile::tempdir().unwrap();
    let shown = bglass_tests::run(
        bglass_tests::command("bglass", home.path())
            .args(["audit", "show", "--key", &w.proxies[0].key])
            .arg(w.proxies[0].log_dir()),
    );
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    let line = shown
        .stdout
        .lines()
        .find(|l| l.contains(g["id"].as_str().unwrap()) && l.contains(" to "))
        .unwrap_or_else(|| panic!("no grant line: {}", shown.stdout));
    assert!(
        line.contains("(ttl 600s) EMERGENCY"),
        "the grant's own TTL, not the 1800 s asked: {line}"
    );
}
