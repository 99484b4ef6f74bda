//! A responder rotates their own key (`bglass rekey`) on a proxy whose roster needs two
//! admins' signatures: the new roster with only their key changed is accepted with their
//! rekey statement alone, recorded as such; their old key is refused and the new one works
//! after `--activate`; someone without the old key cannot move the entry to a key of
//! theirs; and `audit verify --policy` proves the log across the change.

use std::path::Path;
use std::time::Duration;

use bglass_tests::attack::config_reload;
use bglass_tests::eventually;
use bglass_tests::world::{TEST_CATALOG, World};

fn sign_first(w: &World, admin: &str, file: &Path) {
    let out = w.bglass(
        admin,
        &[
            "admin",
            "sign",
            file.to_str().unwrap(),
            "--kind",
            "roster",
            "--first",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// Deploys a roster and its signature file as an operator does: the signatures first, so
/// the proxy never sees the new roster without them.
fn deploy(pdir: &Path, roster: &str, sig: &str) {
    std::fs::write(pdir.join("responders.toml.sig"), sig).unwrap();
    std::fs::write(pdir.join("responders.toml"), roster).unwrap();
}

#[test]
fn a_responder_rotates_their_own_key_with_a_statement_from_the_old_one() {
    let mut w = World::new(
        &["proxy-a"],
        &[
            ("alice", "responder"),
            ("carol", "responder,auditor"),
            ("dave", "responder"),
            ("mallory", "responder"),
        ],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    let pdir = w.proxies[0].dir.clone();
    let admins = format!(
        "\n[admins]\nkeys = [\"carol={}\", \"dave={}\"]\nroster = 2\n",
        w.responder_key("carol"),
        w.responder_key("dave")
    );
    bglass_tests::toml::append(&w.proxies[0].config, &admins);
    let roster_path = pdir.join("responders.toml");
    sign_first(&w, "carol", &roster_path);
    sign_first(&w, "dave", &roster_path);
    w.start(0);
    w.access("alice", "grafana");
    let old_key = w.responder_key("alice");

    // 1. Alice makes a new key; her old one keeps working meanwhile.
    let rekeyed = w.bglass(
        "alice",
        &[
            "rekey",
            "--roster",
            roster_path.to_str().unwrap(),
            "--kdf-work-factor",
            "10",
        ],
    );
    assert_eq!(rekeyed.code, Some(0), "{}", rekeyed.stderr);
    let new_key = rekeyed
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key = "))
        .map(|k| k.trim_matches('"').to_owned())
        .unwrap();
    assert_ne!(new_key, old_key);
    assert!(
        rekeyed.stdout.contains("id = \"alice\""),
        "{}",
        rekeyed.stdout
    );
    let statement = rekeyed
        .stdout
        .lines()
        .find(|l| l.starts_with("bglass-rekey v1 responder=alice "))
        .unwrap()
        .to_owned();
    let out = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    // 2. Mallory, without alice's key, moves alice's entry to a key of hers with a
    // statement she signed herself: rejected, and alice's entry stays.
    let roster = std::fs::read_to_string(&roster_path).unwrap();
    let sig = std::fs::read_to_string(pdir.join("responders.toml.sig")).unwrap();
    let forged_out = w.bglass("mallory", &["rekey", "--kdf-work-factor", "10"]);
    assert_eq!(forged_out.code, Some(0), "{}", forged_out.stderr);
    let mallory_new = forged_out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key = "))
        .map(|k| k.trim_matches('"').to_owned())
        .unwrap();
    let forged_statement = forged_out
        .stdout
        .lines()
        .find(|l| l.starts_with("bglass-rekey v1 "))
        .unwrap()
        .replace("responder=mallory", "responder=alice");
    deploy(
        &pdir,
        &roster.replace(&old_key, &mallory_new),
        &format!("{sig}{forged_statement}\n"),
    );
    let rejected = config_reload(&w, "roster", "the forged rekey rejected", |e| {
        e["accepted"] == false
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("as a rekey: alice"))
    });
    assert!(rejected["signers"].is_null(), "{rejected}");
    let out = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "alice lost access: {}", out.stderr);

    // 3. The operator deploys alice's entry with her statement, and no admin signs: the
    // proxy accepts it as her rekey, and the log says so and what changed.
    deploy(
        &pdir,
        &roster.replace(&old_key, &new_key),
        &format!("{sig}{statement}\n"),
    );
    let accepted = config_reload(&w, "roster", "the rekey accepted", |e| {
        e["accepted"] == true && e["signers"] == serde_json::json!(["alice (rekey)"])
    });
    assert_eq!(
        accepted["changes"][0]["item"], "responder alice",
        "{accepted}"
    );
    assert!(
        accepted["changes"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("key ")),
        "{accepted}"
    );

    // 4. The old key is refused; after --activate the new one works.
    eventually(Duration::from_secs(10), "the old key refused", || {
        (w.bglass("alice", &["status"]).code != Some(0)).then_some(())
    });
    let activated = w.bglass("alice", &["rekey", "--activate"]);
    assert_eq!(activated.code, Some(0), "{}", activated.stderr);
    assert!(activated.stdout.contains(&new_key), "{}", activated.stdout);
    w.access("alice", "grafana");
    let out = w.bglass("alice", &["curl", "grafana", "/api/health"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let again = w.bglass("alice", &["rekey", "--activate"]);
    assert_ne!(again.code, Some(0));
    assert!(
        again.stderr.contains("no new key waits"),
        "{}",
        again.stderr
    );

    // 5. The log proves every access was allowed under the roster in force then: alice's
    // requests before the rekey under her old key, after it under her new one.
    w.stop(0);
    bglass_tests::audit::assert_policy_proven(&w, 0);
}
