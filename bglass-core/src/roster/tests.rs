use std::path::Path;

use super::*;
use crate::keys::SigningKey;

fn key(seed: u8) -> String {
    SigningKey::from_seed(&[seed; 32])
        .unwrap()
        .public_key()
        .to_string()
}

fn entry(id: &str, seed: u8, roles: &str) -> String {
    format!(
        "[[responder]]\nid = \"{id}\"\nname = \"{id} example\"\nkey = \"{}\"\nroles = [{roles}]\n\n",
        key(seed)
    )
}

fn parse(text: &str) -> Result<Roster, RosterError> {
    Roster::from_bytes(Path::new("responders.toml"), text.as_bytes().to_vec())
}

#[test]
fn parses_and_indexes_by_id_and_key() {
    let text = format!(
        "version = 1\n\n{}{}",
        entry("alice", 1, "\"responder\", \"approver\""),
        entry("bob", 2, "\"responder\"")
    );
    let roster = parse(&text).unwrap();
    assert_eq!(roster.responders().len(), 2);
    let alice = roster.get(&ResponderId::new("alice").unwrap()).unwrap();
    assert!(alice.has(Role::Approver));
    let by_key = roster.by_key(&key(2).parse().unwrap()).unwrap();
    assert_eq!(by_key.id.as_str(), "bob");
    assert_eq!(roster.count_with(Role::Approver), 1);
}

#[test]
fn printed_entries_parse_back() {
    let responder = Responder {
        id: ResponderId::new("carol").unwrap(),
        name: "Carol \"CJ\" O'Neil \\ SRE".to_owned(),
        key: key(3).parse().unwrap(),
        roles: vec![Role::Responder, Role::DrillLead],
    };
    let roster = parse(&responder.to_toml()).unwrap();
    assert_eq!(roster.responders(), &[responder]);
}

#[test]
fn refusals_are_located() {
    let cases: Vec<(String, &str)> = vec![
        (
            format!(
                "{}{}",
                entry("alice", 1, "\"responder\""),
                entry("alice", 2, "\"responder\"")
            ),
            "responders.toml:8:6: duplicate responder id \"alice\" (first defined on line 2)",
        ),
        (
            format!(
                "{}{}",
                entry("alice", 1, "\"responder\""),
                entry("bob", 1, "\"responder\"")
            ),
            "responders.toml:10:7: this key is already the key of responder \"alice\"; keys must be unique",
        ),
        (
            entry("alice", 1, "\"root\""),
            "responders.toml:5:10: unknown role \"root\": expected responder, approver, drill-lead, auditor or canary",
        ),
        (
            entry("alice", 1, ""),
            "responders.toml:5:9: roles must list at least one of responder, approver, drill-lead, auditor",
        ),
        (
            entry("alice", 1, "\"approver\", \"approver\""),
            "responders.toml:5:22: role approver is listed twice",
        ),
        (
            entry("Alice", 1, "\"responder\""),
            "responders.toml:2:6: invalid responder id: responder id \"Alice\" is invalid: use 1-64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
        ),
        (
            entry("alice", 1, "\"responder\"").replace("ed25519:", "ssh-ed25519:"),
            "responders.toml:4:7: invalid key: public key must start with \"ed25519:\"",
        ),
        (
            format!("{}team = \"sre\"\n", entry("alice", 1, "\"responder\"")),
            "responders.toml:7:1: unknown field `team`, expected one of `id`, `name`, `key`, `roles`",
        ),
        (
            format!("version = 3\n{}", entry("alice", 1, "\"responder\"")),
            "responders.toml:1:11: unsupported roster version 3 (this bglass reads version 1)",
        ),
    ];
    for (text, expected) in cases {
        let err = parse(&text).unwrap_err();
        assert_eq!(err.to_string(), expected, "for:\n{text}");
    }
}

#[test]
fn too_many_responders_are_refused_before_parsing() {
    let text = "[[responder]]\n".repeat(MAX_RESPONDERS + 1);
    let err = parse(&text).unwrap_err();
    assert!(matches!(
        err.problem,
        RosterProblem::TooManyResponders { .. }
    ));
}

#[test]
fn entries_from_code_follow_the_same_rules() {
    let a = Responder {
        id: ResponderId::new("a").unwrap(),
        name: "A".to_owned(),
        key: key(1).parse().unwrap(),
        roles: vec![Role::Responder],
    };
    let mut b = a.clone();
    b.id = ResponderId::new("b").unwrap();
    assert!(matches!(
        Roster::from_entries(vec![a.clone(), b]),
        Err(RosterProblem::DuplicateKey { .. })
    ));
    assert!(Roster::from_entries(vec![a]).is_ok());
}
