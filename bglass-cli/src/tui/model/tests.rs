//! The console's keys and events, without a terminal: each key path ends in the command
//! it must produce (or none), and the model keeps the last data when proxies stop answering.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::tui::fixture::{self, NOW_MS};

fn press(m: &mut Model, code: KeyCode) -> Vec<Command> {
    m.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(m: &mut Model, text: &str) {
    for c in text.chars() {
        assert!(press(m, KeyCode::Char(c)).is_empty());
    }
}

#[test]
fn q_and_ctrl_c_quit_from_anywhere() {
    let mut m = fixture::model(true);
    assert_eq!(press(&mut m, KeyCode::Char('q')), [Command::Quit]);
    press(&mut m, KeyCode::Char('/'));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(m.update(Event::Key(ctrl_c)), [Command::Quit]);
}

#[test]
fn approving_asks_first_and_goes_to_the_proxy_that_holds_the_request() {
    let mut m = fixture::model(true);
    press(&mut m, KeyCode::Char('3'));
    assert_eq!(m.tab, Tab::Requests);
    assert!(press(&mut m, KeyCode::Char('a')).is_empty());
    assert!(matches!(m.mode, Mode::Confirm(Pending::Approve { .. })));
    // Anything but y cancels.
    assert!(press(&mut m, KeyCode::Char('n')).is_empty());
    assert_eq!(m.mode, Mode::Normal);
    press(&mut m, KeyCode::Char('a'));
    assert_eq!(
        press(&mut m, KeyCode::Char('y')),
        [Command::Approve {
            request: "r-3f2a9c0d1e2b4a6c".parse().unwrap(),
            proxy: 0
        }]
    );
}

#[test]
fn your_own_request_is_listed_but_cannot_be_decided_by_you() {
    let mut m = fixture::model(true);
    press(&mut m, KeyCode::Char('3'));
    assert_eq!(m.to_decide().len(), 1);
    assert_eq!(m.mine_pending().len(), 1);
    press(&mut m, KeyCode::Down);
    assert!(press(&mut m, KeyCode::Char('a')).is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert!(m.message.as_ref().unwrap().0.contains("your own cannot"));
}

#[test]
fn c_withdraws_only_your_own_pending_request_after_a_yes() {
    let mut m = fixture::model(true);
    press(&mut m, KeyCode::Char('3'));
    // The first row waits for you: it is someone else's, not yours to withdraw.
    assert!(press(&mut m, KeyCode::Char('c')).is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert!(m.message.as_ref().unwrap().0.contains("your own pending"));
    press(&mut m, KeyCode::Down);
    let mine = m.mine_pending()[0].view.id.clone();
    let proxy = m.mine_pending()[0].proxy;
    assert!(press(&mut m, KeyCode::Char('c')).is_empty());
    assert!(matches!(m.mode, Mode::Confirm(Pending::Cancel { .. })));
    assert_eq!(
        press(&mut m, KeyCode::Char('y')),
        [Command::Cancel {
            request: mine,
            proxy
        }]
    );
}

#[test]
fn deny_and_revoke_need_a_reason_then_a_yes() {
    let mut m = fixture::model(true);
    press(&mut m, KeyCode::Char('3'));
    press(&mut m, KeyCode::Char('d'));
    press(&mut m, KeyCode::Enter);
    assert!(
        matches!(m.mode, Mode::Note(_)),
        "an empty reason is refused"
    );
    typed(&mut m, "not in the runbook");
    press(&mut m, KeyCode::Enter);
    assert_eq!(
        press(&mut m, KeyCode::Char('y')),
        [Command::Deny {
            request: "r-3f2a9c0d1e2b4a6c".parse().unwrap(),
            reason: "not in the runbook".to_owned(),
            proxy: 0
        }]
    );

    press(&mut m, KeyCode::Char('4'));
    // Grants: alice's newest first: bastion, grafana, dns-control (revoked), then carol's.
    press(&mut m, KeyCode::Down);
    press(&mut m, KeyCode::Down);
    assert!(press(&mut m, KeyCode::Char('x')).is_empty());
    assert!(m.message.as_ref().unwrap().0.contains("already revoked"));
    press(&mut m, KeyCode::Up);
    press(&mut m, KeyCode::Char('x'));
    typed(&mut m, "done");
    press(&mut m, KeyCode::Enter);
    assert_eq!(
        press(&mut m, KeyCode::Char('y')),
        [Command::Revoke {
            grant: "g-1c2d3e4f5a6b7c8d".parse().unwrap(),
            reason: "done".to_owned(),
            proxy: 0
        }]
    );
}

#[test]
fn enter_on_a_service_asks_reason_incident_ttl_and_emergency_needs_a_yes() {
    let mut m = fixture::model(true);
    press(&mut m, KeyCode::Char('/'));
    typed(&mut m, "bast");
    press(&mut m, KeyCode::Enter);
    assert_eq!(m.services()[0].name.as_str(), "bastion");
    press(&mut m, KeyCode::Enter);
    typed(&mut m, "edge down");
    press(&mut m, KeyCode::Enter);
    typed(&mut m, "INC-9");
    press(&mut m, KeyCode::Tab);
    typed(&mut m, "forever");
    press(&mut m, KeyCode::Enter);
    assert!(matches!(m.mode, Mode::Form(_)), "a bad TTL keeps the form");
    assert!(m.message.as_ref().unwrap().0.contains("TTL"));
    for _ in 0.."forever".len() {
        press(&mut m, KeyCode::Backspace);
    }
    typed(&mut m, "15m");
    press(&mut m, KeyCode::Tab);
    press(&mut m, KeyCode::Char(' '));
    assert!(press(&mut m, KeyCode::Enter).is_empty());
    assert!(matches!(m.mode, Mode::Confirm(Pending::Access(_))));
    assert_eq!(
        press(&mut m, KeyCode::Char('y')),
        [Command::Access {
            service: "bastion".parse().unwrap(),
            reason: "edge down".to_owned(),
            incident: "INC-9".to_owned(),
            ttl: Some("15m".to_owned()),
            emergency: true,
        }]
    );
    assert_eq!(m.waiting.len(), 1);
    // The answer rings the bell and ends the wait.
    let mut granted = fixture::request("r-1111222233334444", "alice", "bastion", 0, "edge down");
    granted.status = "granted".to_owned();
    let out = m.update(Event::Access(AccessUpdate::Granted(Box::new(granted))));
    assert_eq!(out, [Command::Bell, Command::Refresh]);
    assert!(m.waiting.is_empty());
    assert!(
        m.message
            .as_ref()
            .unwrap()
            .0
            .starts_with("GRANTED: bastion")
    );
}

#[test]
fn o_opens_http_tools_and_s_is_for_ssh_tools_you_hold() {
    let mut m = fixture::model(true);
    press(&mut m, KeyCode::Char('4'));
    // Row 0: alice's bastion (ssh), row 1: alice's grafana (http), row 3: carol's argocd.
    assert_eq!(
        press(&mut m, KeyCode::Char('s')),
        [Command::Ssh("bastion".parse().unwrap())]
    );
    assert!(press(&mut m, KeyCode::Char('o')).is_empty());
    press(&mut m, KeyCode::Down);
    assert_eq!(
        press(&mut m, KeyCode::Char('o')),
        [Command::Open("grafana".parse().unwrap())]
    );
    press(&mut m, KeyCode::Down);
    press(&mut m, KeyCode::Down);
    assert!(press(&mut m, KeyCode::Char('o')).is_empty());
    assert!(
        m.message
            .as_ref()
            .unwrap()
            .0
            .contains("not a live grant of yours")
    );
}

#[test]
fn fail_stale_keeps_the_last_data_and_says_how_old_it_is() {
    let m = fixture::stale_model();
    assert_eq!(m.serving(), None);
    assert_eq!(m.stale_for_ms(), Some(42_000));
    assert_eq!(m.services().len(), 18);
    assert!(m.requests().iter().all(|r| r.stale));
    // A proxy answering again makes the data fresh.
    let mut m = m;
    m.update(Event::Polled {
        proxy: 1,
        at_ms: NOW_MS + 45_000,
        outcome: PollOutcome::Answered {
            data: Box::new(fixture::data("proxy-b")),
            latency_ms: 5,
            checkpoint_size: None,
            checkpoint_checked: false,
        },
    });
    assert_eq!(m.serving(), Some(1));
    assert_eq!(m.stale_for_ms(), None);
}

#[test]
fn fuzzy_filter_matches_in_order_and_ranks_runs_first() {
    assert!(fuzzy_score("kbap", "kubernetes-api").is_some());
    assert!(fuzzy_score("pak", "kubernetes-api").is_none());
    assert_eq!(fuzzy_score("", "x"), Some(0));
    assert!(fuzzy_score("graf", "grafana") > fuzzy_score("graf", "g-r-a-f"));
    let mut m = fixture::model(true);
    m.filter = "co".to_owned();
    let names: Vec<&str> = m.services().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[0], "config-api", "{names:?}");
    assert!(
        names.contains(&"core-host") && !names.contains(&"grafana"),
        "{names:?}"
    );
}

#[test]
fn a_countdown_and_ages_read_as_people_read_them() {
    assert_eq!(clock_left(0), "00:00");
    assert_eq!(clock_left(725), "12:05");
    assert_eq!(clock_left(3725), "1h02:05");
    assert_eq!(age(4_000), "4s");
    assert_eq!(age(600_000), "10m");
    let m = fixture::model(true);
    let held = m.held(&"grafana".parse().unwrap()).unwrap();
    assert_eq!(held.exp - NOW_MS / 1000, 1200);
    assert!(m.held(&"dns-control".parse().unwrap()).is_none(), "revoked");
}

#[test]
fn keys_never_panic_on_an_empty_model() {
    let mut m = Model::new("alice".parse().unwrap(), Vec::new(), 0, false);
    for tab in Tab::ALL {
        m.tab = tab;
        for code in [
            KeyCode::Enter,
            KeyCode::Char('a'),
            KeyCode::Char('d'),
            KeyCode::Char('x'),
            KeyCode::Char('o'),
            KeyCode::Char('s'),
            KeyCode::Down,
            KeyCode::Up,
            KeyCode::Char('/'),
            KeyCode::Esc,
        ] {
            press(&mut m, code);
        }
    }
}

#[test]
fn enter_joins_a_live_drill_and_says_when_none_runs() {
    let mut m = fixture::model(true);
    press(&mut m, KeyCode::Char('5'));
    assert!(press(&mut m, KeyCode::Enter).is_empty());
    assert_eq!(m.message.as_ref().unwrap().0, "no live drill runs");
    let plan: LivePlan = serde_json::from_value(serde_json::json!({
        "drill": "zero-trust-outage-20270115074820", "scenario": "zero-trust-outage",
        "digest": "00", "services": ["grafana"], "skip": [], "duration_ms": 60000,
    }))
    .unwrap();
    if let Some(d) = m.proxies[0].data.as_mut() {
        d.drill = Some((plan, NOW_MS));
    }
    assert_eq!(press(&mut m, KeyCode::Enter), [Command::Join]);
}
