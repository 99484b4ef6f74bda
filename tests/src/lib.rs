//! Helpers for end-to-end tests: find the real `bglass` and `bglass-proxy` binaries built
//! by `cargo build`, run them with a clean environment, and read their results; build
//! audit logs with known content.

// Test support: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod attack;
pub mod audit;
pub mod catalogs;
pub mod chromium;
pub mod go;
pub mod https;
pub mod loadgen;
pub mod ports;
pub mod raw;
pub mod system_ssh;
pub mod toml;
pub mod tunnels;
pub mod upstreams;
pub mod wait;
pub mod world;

pub use wait::eventually;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The path of a workspace binary in the same profile directory as this test.
///
/// The test command builds the binaries first (`cargo build --workspace --bins`); a test
/// that cannot find them fails with that instruction rather than testing something else.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<triple>/<profile>/deps/<test> → target/<triple>/<profile>/<name>; a binary of
    // this crate (a benchmark) sits in <profile>/ itself.
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// A command for a workspace binary with every `BGLASS_*` variable removed and `HOME` and
/// `XDG_CONFIG_HOME` pointed at `home`, so nothing from the developer's machine leaks in.
pub fn command(name: &str, home: &Path) -> Command {
    let mut cmd = Command::new(bin(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BGLASS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(root());
    cmd
}

/// The result of a finished command, as text.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs a command to completion.
pub fn run(cmd: &mut Command) -> Run {
    match cmd.output() {
        Ok(o) => o.into(),
        Err(e) => Run {
            code: None,
            stdout: String::new(),
            stderr: format!("could not start {cmd:?}: {e}"),
        },
    }
}

/// The Unix time in whole seconds (what grants and certificates count in).
pub fn now_secs() -> u64 {
    bglass_core::timestamp::now_ms() / 1000
}

/// Waits until the clock has passed Unix second `secs` (a grant's or certificate's end):
/// the event is the clock's, so this polls it.
#[track_caller]
pub fn wait_past(secs: u64, what: &str) {
    let left = secs.saturating_sub(now_secs()) + 2;
    eventually(std::time::Duration::from_secs(left), what, || {
        now_secs() > secs
    });
}

/// Reads the first line a child printed on its standard output (piped), e.g. the address a
/// command listening on port 0 bound.
pub fn first_line(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    // Keep the rest of the output flowing into a pipe nobody reads no further.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    line
}

/// The port of the first `127.0.0.1:PORT` in `text`.
pub fn loopback_port(text: &str) -> u16 {
    text.split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| panic!("no 127.0.0.1:PORT in {text:?}"))
}

/// Asserts that a run did not panic: Rust panics exit 101 and print "panicked".
pub fn assert_no_panic(run: &Run) {
    assert_ne!(run.code, Some(101), "panicked: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "panicked: {}", run.stderr);
}

/// Ends a key agent (`bglass agent-daemon`) a test started when dropped, so that a failed
/// assertion does not leave it running until its time limit. Checks that the process is
/// still that agent (not a reused pid) before signalling it.
#[derive(Debug)]
pub struct EndAgent(pub u32);

impl Drop for EndAgent {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("agent-daemon") {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.to_string()])
                .status();
        }
    }
}

/// The pid in `bglass unlock`'s output ("… (key agent pid N, …").
pub fn agent_pid(unlock_stdout: &str) -> u32 {
    unlock_stdout
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {unlock_stdout:?}"))
}

/// A `bglass open` forwarder's session, traded for the secret in the URL it printed (as a
/// browser does): its port, the session cookie (`name=value`), and the whole answer to the
/// trade (a 303 that sets the cookie).
pub fn open_session(printed: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let port = loopback_port(printed);
    let url = printed
        .split_whitespace()
        .find(|t| t.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL printed: {printed}"));
    let target = url.trim_start_matches(&format!("http://127.0.0.1:{port}"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {answer}"))
        .to_owned();
    (port, cookie, answer)
}
