//! `bglass tui`: the responder's and approver's console. One unlock for the whole session
//! (the key held in memory and wiped when the console ends); the proxies polled live on
//! copies of that session (`live`); the state a pure model (`model`) drawn with ratatui
//! (`view`). The terminal is restored on every way out: `q`, Ctrl-C, SIGTERM, SIGHUP, an
//! error, and a panic (hook); `s` and `o` hand it over to `bglass ssh` / `bglass open` and
//! take it back afterwards.

mod live;
mod model;
mod view;

#[cfg(test)]
mod fixture;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bglass_core::envelope::Action;
use bglass_core::timestamp;
use crossterm::event::Event as TermEvent;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::client::Session;
use crate::cmd::block_on;
use crate::error::{CliError, CliResult};
use model::{Command, Event, Model};

type Term = Terminal<CrosstermBackend<std::io::Stdout>>;

/// Runs `bglass tui`.
pub fn run(config: Option<&Path>) -> CliResult {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(CliError::user("bglass tui needs a terminal").with_hint(
            "the commands (`bglass status`, `requests`, `grants`, …) work without one",
        ));
    }
    // The one unlock of this session, before the screen is taken.
    let mut session = Session::open(config)?;
    session.silence();
    // `--color` and NO_COLOR, decided once in `main` (standard output is a terminal here).
    let color = bglass_client::style::enabled();
    let screen = Screen::enter()?;
    // The screen is given back when the console ends, however it ends.
    block_on(console(
        session,
        screen,
        color,
        config.map(Path::to_path_buf),
    ))
}

/// The terminal taken for the console: raw mode and the alternate screen, given back on
/// drop and from the panic hook.
struct Screen {
    terminal: Term,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Screen")
    }
}

fn take_terminal() -> std::io::Result<()> {
    enable_raw_mode()?;
    crossterm::execute!(
        std::io::stdout(),
        EnterAlternateScreen,
        crossterm::cursor::Hide
    )
}

fn give_back_terminal() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

impl Screen {
    fn enter() -> CliResult<Self> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            give_back_terminal();
            hook(info);
        }));
        let taken = take_terminal();
        let terminal = taken
            .and_then(|()| Terminal::new(CrosstermBackend::new(std::io::stdout())))
            .map_err(|e| {
                give_back_terminal();
                CliError::user(format!("cannot use the terminal: {e}"))
            })?;
        Ok(Self { terminal })
    }

    /// Gives the terminal to `work` (the screen as it was before the console, cooked mode),
    /// then takes it back.
    fn handed_over<T>(&mut self, work: impl FnOnce() -> T) -> CliResult<T> {
        give_back_terminal();
        let out = work();
        take_terminal()
            .map_err(|e| CliError::user(format!("cannot take the terminal back: {e}")))?;
        // Redraw everything (without `clear`, which asks the terminal where its cursor is
        // and fails on a terminal that does not answer).
        let area = self
            .terminal
            .size()
            .map_err(|e| CliError::user(format!("cannot read the terminal's size: {e}")))?;
        self.terminal
            .resize(area.into())
            .map_err(|e| CliError::user(format!("cannot redraw: {e}")))?;
        Ok(out)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        give_back_terminal();
    }
}

/// The reader of the keyboard: a thread (crossterm reads are blocking) that can be parked
/// while another program owns the terminal.
struct Keyboard {
    state: Arc<(Mutex<Reading>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Run,
    ParkAsked,
    Parked,
    Stop,
}

impl std::fmt::Debug for Keyboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyboard")
    }
}

impl Keyboard {
    fn start(events: mpsc::UnboundedSender<TermEvent>) -> Self {
        let state = Arc::new((Mutex::new(Reading::Run), Condvar::new()));
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*shared;
            loop {
                {
                    let Ok(mut s) = lock.lock() else { return };
                    if *s == Reading::ParkAsked {
                        *s = Reading::Parked;
                        cv.notify_all();
                    }
                    while *s == Reading::Parked {
                        let Ok(next) = cv.wait(s) else { return };
                        s = next;
                    }
                    if *s == Reading::Stop {
                        return;
                    }
                }
                match crossterm::event::poll(Duration::from_millis(100)) {
                    Ok(true) => match crossterm::event::read() {
                        Ok(event) => {
                            if events.send(event).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        });
        Self {
            state,
            thread: Some(thread),
        }
    }

    fn set(&self, to: Reading) {
        let (lock, cv) = &*self.state;
        if let Ok(mut s) = lock.lock() {
            *s = to;
            cv.notify_all();
        }
    }

    /// Stops reading keys and waits until the thread is parked.
    fn park(&self) {
        self.set(Reading::ParkAsked);
        let (lock, cv) = &*self.state;
        if let Ok(mut s) = lock.lock() {
            while *s == Reading::ParkAsked {
                match cv.wait(s) {
                    Ok(next) => s = next,
                    Err(_) => return,
                }
            }
        }
    }

    fn resume(&self) {
        self.set(Reading::Run);
    }
}

impl Drop for Keyboard {
    fn drop(&mut self) {
        self.set(Reading::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn console(
    session: Session,
    mut screen: Screen,
    color: bool,
    config: Option<std::path::PathBuf>,
) -> CliResult {
    let urls = session.conns.iter().map(|c| c.entry.url.clone()).collect();
    let mut model = Model::new(
        session.identity.id.clone(),
        urls,
        timestamp::now_ms(),
        color,
    );
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let (keys_tx, mut keys) = mpsc::unbounded_channel::<TermEvent>();
    let (refresh_tx, refresh_rx) = watch::channel(0u64);
    let keyboard = Keyboard::start(keys_tx);
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CliError::internal(format!("cannot watch SIGTERM: {e}")))?;
    let mut hangup = signal(SignalKind::hangup())
        .map_err(|e| CliError::internal(format!("cannot watch SIGHUP: {e}")))?;
    let mut interrupt = watch_interrupt()?;
    let mut pollers = Vec::new();
    for proxy in 0..session.conns.len() {
        let mut copy = session.sibling()?;
        copy.silence();
        pollers.push(tokio::spawn(live::poll_proxy(
            copy,
            proxy,
            events_tx.clone(),
            refresh_rx.clone(),
        )));
    }
    let mut clock = tokio::time::interval(Duration::from_millis(500));
    let outcome = loop {
        if let Err(e) = screen.terminal.draw(|f| view::draw(f, &model)) {
            break Err(CliError::user(format!("cannot draw: {e}")));
        }
        let event = tokio::select! {
            key = keys.recv() => match key {
                Some(TermEvent::Key(k)) => Event::Key(k),
                // A resize (or anything else): draw again at the new size.
                Some(_) => continue,
                None => break Err(CliError::user("the terminal closed")),
            },
            Some(event) = events.recv() => event,
            _ = clock.tick() => Event::Tick(timestamp::now_ms()),
            _ = term.recv() => break Ok(()),
            _ = hangup.recv() => break Ok(()),
            _ = interrupt.recv() => break Ok(()),
        };
        let mut quit = false;
        let mut handed_over = false;
        for command in model.update(event) {
            match command {
                Command::Quit => quit = true,
                Command::Refresh => {
                    refresh_tx.send_modify(|n| *n += 1);
                }
                Command::Bell => {
                    let out = screen.terminal.backend_mut();
                    let _ = out.write_all(b"\x07").and_then(|()| out.flush());
                }
                Command::Access {
                    service,
                    reason,
                    incident,
                    ttl,
                    emergency,
                } => match copy_of(&session) {
                    Ok(copy) => {
                        tokio::spawn(live::access(
                            copy,
                            service,
                            reason,
                            incident,
                            ttl,
                            emergency,
                            events_tx.clone(),
                        ));
                    }
                    Err(e) => {
                        model.update(Event::Said(e.to_string()));
                    }
                },
                Command::Approve { request, proxy } => {
                    spawn_act(
                        &session,
                        Action::Approve { request },
                        proxy,
                        &events_tx,
                        &refresh_tx,
                        &mut model,
                    );
                }
                Command::Deny {
                    request,
                    reason,
                    proxy,
                } => {
                    spawn_act(
                        &session,
                        Action::Deny { request, reason },
                        proxy,
                        &events_tx,
                        &refresh_tx,
                        &mut model,
                    );
                }
                Command::Cancel { request, proxy } => {
                    spawn_act(
                        &session,
                        Action::Cancel { request },
                        proxy,
                        &events_tx,
                        &refresh_tx,
                        &mut model,
                    );
                }
                Command::Revoke {
                    grant,
                    reason,
                    proxy,
                } => {
                    spawn_act(
                        &session,
                        Action::Revoke { grant, reason },
                        proxy,
                        &events_tx,
                        &refresh_tx,
                        &mut model,
                    );
                }
                Command::Open(service) => {
                    let args = crate::cli::OpenArgs {
                        service: service.to_string(),
                        local: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                        no_browser: false,
                        kubeconfig: None,
                    };
                    let said = hand_over(&mut screen, &keyboard, &session, move |s| {
                        crate::cmd::open::run_in(s, args)
                    })?;
                    handed_over = true;
                    model.update(Event::Said(said(&format!("bglass open {service}"))));
                    refresh_tx.send_modify(|n| *n += 1);
                }
                Command::Join => {
                    let said = join(&mut screen, &keyboard, &session)?;
                    handed_over = true;
                    model.update(Event::Said(said));
                    refresh_tx.send_modify(|n| *n += 1);
                }
                Command::Ssh(service) => {
                    let args = crate::cli::SshArgs {
                        service: service.to_string(),
                        user: None,
                        save_cert: false,
                        command: Vec::new(),
                    };
                    let config = config.clone();
                    let said = hand_over(&mut screen, &keyboard, &session, move |s| {
                        crate::cmd::ssh::run_in(config.as_deref(), s, args)
                    })?;
                    handed_over = true;
                    model.update(Event::Said(said(&format!("bglass ssh {service}"))));
                    refresh_tx.send_modify(|n| *n += 1);
                }
            }
        }
        if quit {
            break Ok(());
        }
        if handed_over {
            // A Ctrl-C that ended `bglass open` was for it, not for the console.
            interrupt = watch_interrupt()?;
        }
    };
    for poller in &pollers {
        poller.abort();
    }
    drop(keyboard);
    drop(screen);
    // `session` drops here: the key's bytes are wiped (and those of its copies, which the
    // aborted tasks drop when the runtime ends).
    outcome
}

/// SIGINT (sent by another process: in raw mode Ctrl-C is a key) ends the console cleanly.
fn watch_interrupt() -> CliResult<tokio::signal::unix::Signal> {
    signal(SignalKind::interrupt())
        .map_err(|e| CliError::internal(format!("cannot watch SIGINT: {e}")))
}

fn copy_of(session: &Session) -> CliResult<Session> {
    let mut copy = session.sibling()?;
    copy.silence();
    Ok(copy)
}

fn spawn_act(
    session: &Session,
    action: Action,
    proxy: usize,
    events: &mpsc::UnboundedSender<Event>,
    refresh: &watch::Sender<u64>,
    model: &mut Model,
) {
    match copy_of(session) {
        Ok(copy) => {
            let events = events.clone();
            let refresh = refresh.clone();
            tokio::spawn(async move {
                live::act(copy, action, proxy, events).await;
                refresh.send_modify(|n| *n += 1);
            });
        }
        Err(e) => {
            model.update(Event::Said(e.to_string()));
        }
    }
}

/// Hands the terminal to `bglass drill join`; what to say afterwards.
#[cfg(feature = "drill")]
fn join(screen: &mut Screen, keyboard: &Keyboard, session: &Session) -> CliResult<String> {
    let said = hand_over(screen, keyboard, session, |s| {
        crate::cmd::drill::join_in(s, &crate::cli::JsonArgs { json: false })
    })?;
    Ok(said("bglass drill join"))
}

/// This `bglass` has no drill mode (the responder-only build).
#[cfg(not(feature = "drill"))]
fn join(_: &mut Screen, _: &Keyboard, _: &Session) -> CliResult<String> {
    Ok(
        "this bglass is built without drill mode: join with a full bglass (`bglass drill join`)"
            .to_owned(),
    )
}

/// Runs `work` on a copy of the session with the terminal handed over (on its own thread:
/// the commands run their own runtime); returns how to report its outcome.
fn hand_over(
    screen: &mut Screen,
    keyboard: &Keyboard,
    session: &Session,
    work: impl FnOnce(Session) -> CliResult + Send + 'static,
) -> CliResult<impl Fn(&str) -> String> {
    let copy = session.sibling()?;
    keyboard.park();
    let result = screen.handed_over(move || {
        let result = std::thread::spawn(move || work(copy))
            .join()
            .unwrap_or_else(|_| Err(CliError::internal("the command stopped unexpectedly")));
        // Leave its last words on the screen until the user is done reading them.
        if let Err(e) = &result {
            eprintln!("error: {e}");
        }
        eprint!("Press Enter to return to bglass tui. ");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        result
    });
    keyboard.resume();
    let result = result?;
    Ok(move |what: &str| match &result {
        Ok(()) => format!("{what}: ended"),
        Err(e) => format!("{what}: {e}"),
    })
}
