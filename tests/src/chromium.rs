//! Headless Chromium (Debian's, installed by scripts/test): a page as a browser parses and
//! lays it out, serialised by `--dump-dom`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser's path; panics with the fix when it is not installed.
pub fn binary() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("chromium is not installed; scripts/test installs Debian's chromium")
        })
}

/// Loads `url` with a fresh profile in `profile` (plus `extra` flags) and returns what it
/// printed: the DOM on stdout, its complaints on stderr.
pub fn dump_dom(profile: &Path, url: &str, extra: &[&str]) -> crate::Run {
    let mut c = Command::new(binary());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
    ])
    .args(extra)
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--dump-dom")
    .arg(url);
    crate::run(&mut c)
}
