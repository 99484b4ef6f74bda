//! `bglass tui` end to end: the real binary in real pseudo-terminals against a real proxy,
//! the screens read with a VT parser. A responder asks for a tool that needs an approval
//! with keys; the approver's console shows the request without a keypress, within 2 s; the
//! approver approves with keys; the responder's console shows the grant counting down; the
//! approver revokes it and the responder's console shows it revoked. The terminal is given
//! back (main screen, cooked mode) after `q` and after SIGTERM.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bglass_tests::world::{PASSPHRASE, TEST_CATALOG, World};
use bglass_tests::{bin, eventually, root};
use nix::sys::termios::LocalFlags;
use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use serde_json::Value;

/// A `bglass tui` in a pseudo-terminal, its output fed to a VT parser.
struct Console {
    name: &'static str,
    master: Box<dyn MasterPty + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    parser: Arc<Mutex<vt100::Parser>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Console {
    /// `bglass tui` as `who`, unlocked with `BGLASS_PASSPHRASE`.
    fn start(w: &World, who: &'static str) -> Self {
        Self::start_with(w, who, true)
    }

    /// `bglass tui` as `who`; without `passphrase_env` it asks for the passphrase on the
    /// terminal.
    fn start_with(w: &World, who: &'static str, passphrase_env: bool) -> Self {
        Self::start_env(w, who, passphrase_env, &[])
    }

    /// `bglass tui` as `who` with extra environment variables.
    fn start_env(w: &World, who: &'static str, passphrase_env: bool, env: &[(&str, &str)]) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(bin("bglass"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("BGLASS_") || key == "NO_COLOR" || key == "XDG_CONFIG_HOME" {
                cmd.env_remove(&key);
            }
        }
        cmd.env("HOME", w.dir.path());
        cmd.env("TERM", "xterm-256color");
        if passphrase_env {
            cmd.env("BGLASS_PASSPHRASE", PASSPHRASE);
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.cwd(root());
        cmd.arg("--config");
        cmd.arg(&w.responder(who).config);
        cmd.arg("tui");
        let child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let (rows, cols) = (
            std::num::NonZeroU16::new(24).unwrap(),
            std::num::NonZeroU16::new(80).unwrap(),
        );
        let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let mut out = pty.master.try_clone_reader().unwrap();
        let feed = Arc::clone(&parser);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => feed.lock().unwrap().process(&buf[..n]),
                }
            }
        });
        let writer = pty.master.take_writer().unwrap();
        Self {
            name: who,
            master: pty.master,
            child,
            writer,
            parser,
            reader: Some(reader),
        }
    }

    fn screen(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// Resizes the terminal (the program gets SIGWINCH) and the parser with it.
    fn resize(&self, rows: u16, cols: u16) {
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        self.parser.lock().unwrap().screen_mut().set_size(
            std::num::NonZeroU16::new(rows).unwrap(),
            std::num::NonZeroU16::new(cols).unwrap(),
        );
    }

    /// One row of the screen.
    fn row(&self, n: u16) -> String {
        let parser = self.parser.lock().unwrap();
        let cols = parser.screen().size().1.get();
        parser
            .screen()
            .rows(0, cols)
            .nth(usize::from(n))
            .unwrap_or_default()
    }

    /// Cells drawn in a colour (foreground or background).
    fn coloured_cells(&self) -> usize {
        let parser = self.parser.lock().unwrap();
        let screen = parser.screen();
        let (rows, cols) = screen.size();
        (0..rows.get())
            .flat_map(|r| (0..cols.get()).map(move |c| (r, c)))
            .filter_map(|(r, c)| screen.cell(r, c))
            .filter(|cell| {
                cell.fgcolor() != vt100::Color::Default || cell.bgcolor() != vt100::Color::Default
            })
            .count()
    }

    fn alternate_screen(&self) -> bool {
        self.parser.lock().unwrap().screen().alternate_screen()
    }

    /// The terminal is in raw mode (no line editing, no echo).
    fn raw(&self) -> bool {
        let t = self.master.get_termios().unwrap();
        !t.local_flags.contains(LocalFlags::ICANON) && !t.local_flags.contains(LocalFlags::ECHO)
    }

    /// The terminal is in cooked mode again (line editing and echo).
    fn cooked(&self) -> bool {
        let t = self.master.get_termios().unwrap();
        t.local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    }

    fn keys(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits until the screen shows `text`; returns the screen.
    #[track_caller]
    fn shows(&self, text: &str, deadline: Duration) -> String {
        let mut last = String::new();
        let found = bglass_tests::wait::within(deadline, || {
            last = self.screen();
            last.contains(text)
        });
        assert!(
            found.is_some(),
            "{}'s console did not show {text:?} within {deadline:?}; it shows:\n{last}",
            self.name
        );
        last
    }

    /// Waits for the process to end; its exit code.
    fn ended(&mut self) -> u32 {
        let status = eventually(Duration::from_secs(10), "the console to end", || {
            self.child.try_wait().unwrap()
        });
        // The last output (leaving the alternate screen) is read before the check.
        if let Some(reader) = self.reader.take() {
            drop(self.master.take_writer());
            let _ = reader.join();
        }
        status.exit_code()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The grant's time left on a line of the Grants view (`mm:ss`) for `service`.
fn time_left(screen: &str, service: &str) -> Option<String> {
    let line = screen
        .lines()
        .find(|l| l.contains(service) && l.contains("g-"))?;
    line.split_whitespace()
        .find(|w| {
            w.len() == 5
                && w.as_bytes()[2] == b':'
                && w.chars().filter(char::is_ascii_digit).count() == 4
        })
        .map(str::to_owned)
}

#[test]
fn approver_sees_a_request_live_approves_and_revokes_it_and_the_terminal_is_restored() {
    let mut w = World::new(
        &["proxy-a"],
        &[("alice", "responder"), ("bob", "responder,approver")],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();

    let mut bob = Console::start(&w, "bob");
    let mut alice = Console::start(&w, "alice");
    let ready = Duration::from_secs(30);
    bob.shows("serving: proxy-a", ready);
    alice.shows("serving: proxy-a", ready);
    assert!(
        alice.raw() && alice.alternate_screen(),
        "the console runs in raw mode"
    );
    // Bob watches the requests; nothing waits yet.
    bob.keys("3");
    bob.shows("Waiting for you (0)", Duration::from_secs(5));

    // Alice asks for argocd (one approval) with keys: filter, Enter, reason, incident.
    alice.keys("/argocd\r");
    alice.keys("\r");
    alice.shows("Ask for access", Duration::from_secs(5));
    alice.keys("deploys stuck\r");
    alice.shows("incident: _", Duration::from_secs(5));
    // The last Enter sends the request; bob's console shows it without a keypress.
    alice.keys("INC-77\r");
    let seen_ms = eventually(
        Duration::from_secs(20),
        "bob's console to show a request waiting for him",
        || {
            bob.screen()
                .contains("Waiting for you (1)")
                .then(bglass_core::timestamp::now_ms)
        },
    );
    let screen = alice.shows(
        "waiting for approval of argocd (r-",
        Duration::from_secs(15),
    );
    let request = screen
        .split("(r-")
        .nth(1)
        .map(|rest| format!("r-{}", &rest[..16]))
        .unwrap();
    // Within 2 s of the request's arrival at the proxy (same machine, same clock).
    let listed = w.bglass("bob", &["requests", "--json"]);
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    let created_ms = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request"]["id"] == request.as_str())
        .and_then(|r| r["request"]["created_ms"].as_u64())
        .unwrap();
    let after = seen_ms.saturating_sub(created_ms);
    assert!(
        after <= 2000,
        "bob's console showed {request} {after} ms after it reached the proxy"
    );
    eprintln!("the approver's console showed the request {after} ms after it reached the proxy");
    let screen = bob.shows("Waiting for you (1)", Duration::from_secs(1));
    assert!(
        screen.contains("alice") && screen.contains("argocd"),
        "{screen}"
    );

    // Bob approves: a, then y.
    bob.keys("a");
    bob.shows(&format!("Approve {request}"), Duration::from_secs(5));
    bob.keys("y");
    bob.shows("alice now has argocd", Duration::from_secs(15));

    // Alice's console says so (and rings), and shows the grant counting down.
    alice.shows("GRANTED: argocd", Duration::from_secs(15));
    alice.keys("4");
    let screen = alice.shows("argocd", Duration::from_secs(5));
    let first = eventually(
        Duration::from_secs(10),
        "alice's grant with its time left",
        || time_left(&alice.screen(), "argocd"),
    );
    assert!(
        first.starts_with("29:") || first.starts_with("30:"),
        "{first}\n{screen}"
    );
    eventually(Duration::from_secs(5), "the countdown to move", || {
        time_left(&alice.screen(), "argocd").is_some_and(|t| t != first)
    });

    // A resize redraws at the new size (the wider layout has a longer bar).
    alice.resize(40, 120);
    eventually(
        Duration::from_secs(10),
        "alice's console redrawn at 120x40",
        || alice.row(39).contains("x revoke") && alice.screen().contains("#########"),
    );

    // Bob revokes it from his Grants view: x, a reason, Enter, y.
    bob.keys("4");
    bob.shows("argocd", Duration::from_secs(10));
    bob.keys("x");
    bob.shows("Reason", Duration::from_secs(5));
    bob.keys("done with it\r");
    bob.shows("Revoke g-", Duration::from_secs(5));
    bob.keys("y");
    bob.shows("is now revoked", Duration::from_secs(15));

    // Alice's view shows it revoked, without a keypress.
    let screen = alice.shows("REVOKED", Duration::from_secs(10));
    assert!(time_left(&screen, "argocd").is_none(), "{screen}");

    // `q` gives the terminal back: the main screen, cooked mode, exit 0.
    alice.keys("q");
    assert_eq!(alice.ended(), 0, "{}", alice.screen());
    assert!(
        !alice.alternate_screen(),
        "alice's console left the alternate screen"
    );
    assert!(alice.cooked(), "alice's terminal is in cooked mode again");

    // SIGTERM does too.
    assert!(bob.raw() && bob.alternate_screen());
    let pid = bob.child.process_id().unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(bob.ended(), 0, "{}", bob.screen());
    assert!(
        !bob.alternate_screen(),
        "bob's console left the alternate screen"
    );
    assert!(bob.cooked(), "bob's terminal is in cooked mode again");
}

/// "from 12s ago" on the screen: the age in seconds.
fn stale_age(screen: &str) -> Option<u64> {
    let rest = screen.split("showing data from ").nth(1)?;
    rest.split("s ago").next()?.trim().parse().ok()
}

#[test]
fn when_the_proxy_stops_the_console_keeps_its_last_data_with_its_age_then_recovers() {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let mut alice = Console::start(&w, "alice");
    alice.shows("serving: proxy-a", Duration::from_secs(30));
    alice.shows("argocd", Duration::from_secs(5));

    // The same console under NO_COLOR draws no colour at all; the first one does.
    let mut plain = Console::start_env(&w, "alice", true, &[("NO_COLOR", "1")]);
    plain.shows("serving: proxy-a", Duration::from_secs(30));
    plain.shows("argocd", Duration::from_secs(5));
    assert_eq!(plain.coloured_cells(), 0, "{}", plain.screen());
    assert!(alice.coloured_cells() > 0, "{}", alice.screen());
    plain.keys("q");
    assert_eq!(plain.ended(), 0);

    w.stop(0);
    let screen = alice.shows(
        "NO PROXY ANSWERS: showing data from",
        Duration::from_secs(20),
    );
    // The last data stays, marked stale, and its age grows.
    assert!(
        screen.contains("argocd") && screen.contains("STALE: no proxy answers"),
        "{screen}"
    );
    let first = stale_age(&screen).unwrap();
    eventually(Duration::from_secs(10), "the data's age to grow", || {
        stale_age(&alice.screen()).is_some_and(|age| age > first)
    });
    alice.keys("1");
    let screen = alice.shows("DOWN", Duration::from_secs(5));
    assert!(screen.contains("STALE"), "{screen}");

    w.start(0);
    let screen = alice.shows("serving: proxy-a", Duration::from_secs(30));
    assert!(!screen.contains("NO PROXY ANSWERS"), "{screen}");
    alice.keys("q");
    assert_eq!(alice.ended(), 0, "{}", alice.screen());
    assert!(!alice.alternate_screen() && alice.cooked());
}

#[test]
fn o_hands_the_terminal_to_open_on_the_one_unlocked_key_and_takes_it_back() {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    // No BGLASS_PASSPHRASE: the console asks once, on the terminal.
    let mut alice = Console::start_with(&w, "alice", false);
    alice.shows("Passphrase for", Duration::from_secs(30));
    alice.keys(&format!("{PASSPHRASE}\r"));
    alice.shows("serving: proxy-a", Duration::from_secs(30));

    // grafana needs no approval: granted at once.
    alice.keys("/grafana\r\r");
    alice.shows("Ask for access", Duration::from_secs(5));
    alice.keys("look at the dashboards\rINC-5\r");
    alice.shows("GRANTED: grafana", Duration::from_secs(15));
    alice.keys("4");
    eventually(
        Duration::from_secs(10),
        "the grant on the Grants view",
        || time_left(&alice.screen(), "grafana"),
    );

    // `o`: bglass open runs on the main screen, with the same unlocked key (it would stop
    // at a passphrase prompt otherwise: nothing types one).
    alice.keys("o");
    let screen = alice.shows("grafana is at http://127.0.0.1:", Duration::from_secs(15));
    assert!(
        !alice.alternate_screen(),
        "the console gave the screen back: {screen}"
    );
    assert!(alice.cooked(), "and the terminal's cooked mode");
    let url = screen
        .split("grafana is at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let authority = url.trim_start_matches("http://").split('/').next().unwrap();
    let path = &url[url.find(authority).unwrap() + authority.len()..];
    let mut tcp = std::net::TcpStream::connect(authority).unwrap();
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.")
            && answer.contains(" 303 ")
            && answer.contains("session started"),
        "the forwarder started a session: {answer}"
    );

    // Ctrl-C ends the forwarder, not the console, which takes the terminal back.
    alice.keys("\x03");
    alice.shows(
        "Press Enter to return to bglass tui",
        Duration::from_secs(15),
    );
    alice.keys("\r");
    alice.shows("bglass open grafana: ended", Duration::from_secs(15));
    assert!(alice.alternate_screen() && alice.raw());
    alice.keys("q");
    assert_eq!(alice.ended(), 0, "{}", alice.screen());
    assert!(!alice.alternate_screen() && alice.cooked());
}

#[test]
fn the_drill_view_shows_the_live_drill_and_enter_joins_it() {
    let mut w = World::new(
        &["proxy-a"],
        &[("lead", "drill-lead"), ("alice", "responder")],
    );
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let mut alice = Console::start(&w, "alice");
    alice.shows("serving: proxy-a", Duration::from_secs(30));
    alice.keys("5");
    alice.shows("No live drill runs.", Duration::from_secs(5));

    let scenario = w.dir.path().join("live.toml");
    std::fs::write(
        &scenario,
        r#"version = 1
name = "tui-check"
description = "The console's participant reaches the dashboards and metrics"
catalog = "proxy-a/services.toml"
duration = "10m"
proxies = ["proxy-a"]

[participants]
count = 1
approvers = 0
services = ["grafana", "prom"]
"#,
    )
    .unwrap();
    let started = w.bglass("lead", &["drill", "start", scenario.to_str().unwrap()]);
    assert_eq!(started.code, Some(0), "{}", started.stderr);

    // The console learns of it by itself (the next full round, or at once on `r`).
    alice.keys("r");
    let screen = alice.shows("LIVE DRILL tui-check-", Duration::from_secs(30));
    assert!(
        screen.contains("your progress: 0 of 2 tools granted"),
        "{screen}"
    );
    // Enter hands the terminal to `bglass drill join` on the console's unlocked key.
    alice.keys("\r");
    let screen = alice.shows(
        "Press Enter to return to bglass tui",
        Duration::from_secs(60),
    );
    assert!(screen.contains("2 of 2 tools reached"), "{screen}");
    alice.keys("\r");
    alice.shows("bglass drill join: ended", Duration::from_secs(15));
    alice.shows(
        "your progress: 2 of 2 tools granted",
        Duration::from_secs(15),
    );
    alice.keys("q");
    assert_eq!(alice.ended(), 0, "{}", alice.screen());
    assert!(!alice.alternate_screen() && alice.cooked());
}
