//! `bglass requests cancel ID`: a responder withdraws their own pending request with a
//! signed, replay-protected envelope the proxy records; nobody else can withdraw it (an
//! approver denies instead), and a decided request cannot be withdrawn. Against the real
//! binaries.

use bglass_core::envelope::Action;
use bglass_core::id::RequestId;
use bglass_tests::raw::Raw;
use bglass_tests::world::{TEST_CATALOG, World};
use serde_json::Value;

fn world() -> World {
    let mut w = World::new(
        &["proxy-a"],
        &[
            ("alice", "responder,approver"),
            ("bob", "responder"),
            ("carol", "responder"),
        ],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    w
}

/// Carol asks for argocd (one approval needed) and gives up waiting at once: the id of her
/// pending request.
fn pending_request(w: &World) -> String {
    let out = w.bglass(
        "carol",
        &[
            "access",
            "argocd",
            "--reason",
            "roll back",
            "--incident",
            "INC-7",
            "--wait",
            "1s",
            "--new",
        ],
    );
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    out.stderr
        .split_whitespace()
        .find(|w| w.starts_with("r-"))
        .unwrap()
        .to_owned()
}

/// The ids of the pending requests alice (an approver) sees.
fn pending_ids(w: &World) -> Vec<String> {
    let out = w.bglass("alice", &["requests", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str::<Vec<Value>>(&out.stdout)
        .unwrap()
        .iter()
        .map(|e| e["request"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn cancel(w: &World, who: &str, request: &str) -> bglass_tests::Run {
    w.bglass(who, &["requests", "cancel", request])
}

#[test]
fn only_the_requester_withdraws_a_pending_request_and_the_proxy_records_it() {
    let w = world();
    let request = pending_request(&w);
    assert_eq!(pending_ids(&w), vec![request.clone()]);

    // An approver cannot withdraw someone else's request: they deny it.
    let by_approver = cancel(&w, "alice", &request);
    assert_eq!(by_approver.code, Some(3), "{}", by_approver.stderr);
    assert!(
        by_approver.stderr.contains("(not_your_request)")
            && by_approver.stderr.contains("bglass deny"),
        "{}",
        by_approver.stderr
    );
    // Another responder does not even learn it exists.
    let by_colleague = cancel(&w, "bob", &request);
    assert_eq!(by_colleague.code, Some(3), "{}", by_colleague.stderr);
    assert!(
        by_colleague.stderr.contains("(unknown_request)"),
        "{}",
        by_colleague.stderr
    );
    assert_eq!(pending_ids(&w), vec![request.clone()], "still pending");

    // The requester withdraws it: approvers no longer see it, and it cannot be approved.
    let withdrawn = cancel(&w, "carol", &request);
    assert_eq!(withdrawn.code, Some(0), "{}", withdrawn.stderr);
    assert!(
        withdrawn.stdout.contains(&format!("{request} withdrawn")),
        "{}",
        withdrawn.stdout
    );
    assert!(pending_ids(&w).is_empty());
    let approve = w.bglass("alice", &["approve", &request]);
    assert_eq!(approve.code, Some(3), "{}", approve.stderr);
    assert!(
        approve.stderr.contains("(already_cancelled)"),
        "{}",
        approve.stderr
    );
    let again = cancel(&w, "carol", &request);
    assert_eq!(again.code, Some(3), "{}", again.stderr);
    assert!(
        again.stderr.contains("(already_cancelled)"),
        "{}",
        again.stderr
    );

    // The log holds the withdrawal, by carol, with her signed envelope; and the refusals.
    let events = bglass_tests::attack::events(&w, 0);
    let withdrawals: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"]["event"]["denial"]["reason"] == "cancelled_by_requester")
        .collect();
    assert_eq!(withdrawals.len(), 1, "{withdrawals:?}");
    assert_eq!(withdrawals[0]["event"]["actor"], "carol");
    let denial = &withdrawals[0]["event"]["event"]["denial"];
    assert_eq!(denial["request"], request.as_str());
    assert!(denial["envelope"].is_object(), "{denial}");
    let refused: Vec<String> = bglass_tests::attack::denials(&w, 0)
        .into_iter()
        .map(|(reason, _)| reason)
        .collect();
    assert!(
        refused.contains(&"not_your_request".to_owned()),
        "{refused:?}"
    );
}

#[test]
fn a_decided_request_cannot_be_withdrawn_and_a_withdrawal_cannot_be_replayed() {
    let w = world();
    // Granted: withdrawing it now is refused (a grant is revoked instead).
    let granted = pending_request(&w);
    let approve = w.bglass("alice", &["approve", &granted]);
    assert_eq!(approve.code, Some(0), "{}", approve.stderr);
    let late = cancel(&w, "carol", &granted);
    assert_eq!(late.code, Some(3), "{}", late.stderr);
    assert!(late.stderr.contains("(already_granted)"), "{}", late.stderr);

    // Denied: likewise.
    let denied = pending_request(&w);
    let deny = w.bglass("alice", &["deny", &denied, "--reason", "not now"]);
    assert_eq!(deny.code, Some(0), "{}", deny.stderr);
    let late = cancel(&w, "carol", &denied);
    assert_eq!(late.code, Some(3), "{}", late.stderr);
    assert!(late.stderr.contains("(already_denied)"), "{}", late.stderr);

    // A signed withdrawal sent twice: the second is refused as a replay.
    let pending = pending_request(&w);
    let p = &w.proxies[0];
    let carol = Raw::new(&w.responder("carol").config, &p.url(), &p.pin);
    let envelope = carol.envelope(
        Action::Cancel {
            request: RequestId::new(&pending).unwrap(),
        },
        "proxy-a",
        0,
    );
    let first = carol.send("POST", "/v1/cancel", Some(envelope.clone()), &[]);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&first.body).unwrap()["status"],
        "cancelled"
    );
    let replay = carol.send("POST", "/v1/cancel", Some(envelope), &[]);
    assert_eq!(
        (replay.status, replay.code.as_str()),
        (409, "replayed"),
        "{replay:?}"
    );
    // Nor does a cancel envelope pass on another route.
    let other = pending_request(&w);
    let wrong = carol.send(
        "POST",
        "/v1/deny",
        Some(carol.envelope(
            Action::Cancel {
                request: RequestId::new(&other).unwrap(),
            },
            "proxy-a",
            0,
        )),
        &[],
    );
    assert_eq!(wrong.code, "wrong_route", "{wrong:?}");
    assert_eq!(pending_ids(&w), vec![other]);
}
