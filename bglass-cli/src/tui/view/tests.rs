//! Snapshots of every view at 80x24 and 160x48 (ratatui's `TestBackend`), including the
//! state where no proxy answers and the views show their last data with its age.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::draw;
use crate::tui::fixture::{self, NOW_MS};
use crate::tui::model::{Event, Model, Tab};

fn screen(model: &Model, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| draw(f, model)).unwrap();
    terminal.backend().to_string()
}

fn key(model: &mut Model, code: KeyCode) {
    model.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn typed(model: &mut Model, text: &str) {
    for c in text.chars() {
        key(model, KeyCode::Char(c));
    }
}

fn snap_both(name: &str, model: &Model) {
    insta::assert_snapshot!(format!("{name}_80x24"), screen(model, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), screen(model, 160, 48));
}

#[test]
fn every_view_at_both_sizes() {
    for tab in Tab::ALL {
        let mut m = fixture::model(true);
        m.tab = tab;
        snap_both(&tab.title().to_lowercase(), &m);
    }
}

#[test]
fn every_view_when_no_proxy_answers_shows_the_last_data_and_its_age() {
    for tab in Tab::ALL {
        let mut m = fixture::stale_model();
        m.tab = tab;
        let text = screen(&m, 80, 24);
        assert!(
            text.contains("NO PROXY ANSWERS: showing data from 42s ago"),
            "{text}"
        );
        snap_both(&format!("stale_{}", tab.title().to_lowercase()), &m);
    }
}

#[test]
fn one_proxy_down_says_which_serves_and_marks_its_data_stale() {
    let mut m = fixture::model(true);
    m.update(Event::Polled {
        proxy: 0,
        at_ms: NOW_MS + 5_000,
        outcome: crate::tui::model::PollOutcome::Failed {
            why: "connection refused".to_owned(),
            split_view: false,
        },
    });
    m.update(Event::Tick(NOW_MS + 6_000));
    m.tab = Tab::Proxies;
    snap_both("one_down_proxies", &m);
    m.tab = Tab::Requests;
    let text = screen(&m, 80, 24);
    assert!(
        text.contains("serving: proxy-b (1 not answering)"),
        "{text}"
    );
    assert!(text.contains("stale"), "{text}");
}

#[test]
fn a_split_view_is_named_on_the_proxies_view() {
    let mut m = fixture::model(true);
    m.update(Event::Polled {
        proxy: 1,
        at_ms: NOW_MS,
        outcome: crate::tui::model::PollOutcome::Failed {
            why: "SPLIT VIEW: its log does not extend what this machine saw".to_owned(),
            split_view: true,
        },
    });
    m.tab = Tab::Proxies;
    key(&mut m, KeyCode::Down);
    let text = screen(&m, 80, 24);
    assert!(text.contains("SPLIT VIEW"), "{text}");
    insta::assert_snapshot!("split_view_80x24", text);
}

#[test]
fn overlays_help_form_note_confirm_and_filter() {
    let mut m = fixture::model(true);
    key(&mut m, KeyCode::Char('?'));
    snap_both("help", &m);

    let mut m = fixture::model(true);
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "kbap");
    snap_both("filter", &m);
    key(&mut m, KeyCode::Enter);
    key(&mut m, KeyCode::Enter);
    typed(&mut m, "pods crashlooping");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "INC-4711");
    snap_both("form", &m);

    let mut m = fixture::model(true);
    m.tab = Tab::Requests;
    key(&mut m, KeyCode::Char('d'));
    typed(&mut m, "not in the runbook");
    insta::assert_snapshot!("note_80x24", screen(&m, 80, 24));
    key(&mut m, KeyCode::Enter);
    insta::assert_snapshot!("confirm_80x24", screen(&m, 80, 24));
}

#[test]
fn waiting_shows_the_elapsed_time_and_the_live_drill_its_plan() {
    let mut m = fixture::model(true);
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "vault");
    key(&mut m, KeyCode::Enter);
    key(&mut m, KeyCode::Enter);
    typed(&mut m, "rotate");
    key(&mut m, KeyCode::Enter);
    typed(&mut m, "INC-1");
    key(&mut m, KeyCode::Enter);
    m.update(Event::Tick(NOW_MS + 1_000));
    let text = screen(&m, 80, 24);
    assert!(text.contains("asking for vault… [00:01]"), "{text}");
    let mut pending = fixture::request("r-0123456789abcdef", "alice", "vault", 0, "rotate");
    pending.approvals_needed = 2;
    pending.approved_by = vec!["bob".parse().unwrap()];
    m.update(Event::Access(crate::tui::model::AccessUpdate::Pending(
        Box::new(pending),
    )));
    m.update(Event::Tick(NOW_MS + 75_000));
    let text = screen(&m, 80, 24);
    assert!(
        text.contains("waiting for approval of vault (r-0123456789abcdef): 1 of 2 [01:15]"),
        "{text}"
    );
    insta::assert_snapshot!("waiting_80x24", text);

    let mut m = fixture::model(true);
    let plan: bglass_core::drill::LivePlan = serde_json::from_value(serde_json::json!({
        "drill": "zero-trust-outage-20270115074820", "scenario": "zero-trust-outage", "digest": "00",
        "services": ["grafana", "bastion", "vault"],
        "skip": [{"proxy": "proxy-a", "start_ms": 60000, "end_ms": 300000}],
        "duration_ms": 1_800_000,
    }))
    .unwrap();
    for p in &mut m.proxies {
        if let Some(d) = p.data.as_mut() {
            d.drill = Some((plan.clone(), NOW_MS - 700_000));
        }
    }
    m.tab = Tab::Drill;
    snap_both("drill_live", &m);
}

#[test]
fn no_color_draws_no_colour_at_all() {
    let m = fixture::model(false);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| draw(f, &m)).unwrap();
    for cell in terminal.backend().buffer().content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
        assert_eq!(cell.bg, ratatui::style::Color::Reset, "{cell:?}");
    }
    let m = fixture::model(true);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| draw(f, &m)).unwrap();
    assert!(
        terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .any(|c| c.fg != ratatui::style::Color::Reset),
        "with colour allowed, some cell is coloured"
    );
}

#[test]
fn tiny_and_resized_terminals_draw_without_panicking() {
    let m = fixture::model(true);
    for (w, h) in [(1, 1), (10, 3), (40, 10), (80, 24), (79, 23), (200, 60)] {
        for tab in Tab::ALL {
            let mut m = m.clone();
            m.tab = tab;
            let _ = screen(&m, w, h);
        }
    }
}

#[test]
fn text_from_a_proxy_cannot_reach_the_terminal_as_escape_sequences() {
    // The proxy refuses control characters in reasons; a proxy that sent them anyway (or
    // an error message that carried them) must not move the cursor, clear the screen or
    // retitle the approver's terminal.
    let mut m = fixture::model(true);
    for p in &mut m.proxies {
        if let Some(d) = p.data.as_mut() {
            for r in &mut d.requests {
                r.reason = "\u{1b}[2J\u{1b}]0;pwned\u{7}ok".to_owned();
            }
        }
    }
    m.update(Event::Said("\u{1b}[31mred\u{1b}[0m".to_owned()));
    m.tab = Tab::Requests;
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    terminal.draw(|f| draw(f, &m)).unwrap();
    for cell in terminal.backend().buffer().content() {
        assert!(
            !cell.symbol().contains(char::is_control),
            "a control character reached a cell: {cell:?}"
        );
    }
    let text = terminal.backend().to_string();
    assert!(
        text.contains("[2J]0;pwnedok") && text.contains("[31mred[0m"),
        "{text}"
    );
}

#[test]
fn the_help_names_every_view_key() {
    let mut m = fixture::model(true);
    key(&mut m, KeyCode::Char('?'));
    let text = screen(&m, 80, 24);
    for k in [
        "Enter", "/", "a / d", "x", "o", "s", "r", "q Ctrl-C", "Tab 1-5",
    ] {
        assert!(text.contains(k), "{k}: {text}");
    }
    // Any key closes it.
    key(&mut m, KeyCode::Char('z'));
    assert!(!screen(&m, 80, 24).contains(" Keys "));
}
