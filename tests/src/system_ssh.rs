//! The system `ssh` as a responder runs it with the snippet `bglass ssh --save-cert` prints.

use std::path::Path;
use std::process::Command;

use crate::world::PASSPHRASE;
use crate::{Run, bin, run};

/// The `Host …` block of what `bglass ssh --save-cert` printed.
pub fn snippet(stdout: &str) -> String {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Host "))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs `ssh -F config ARGS` as a user would: `bglass` on the PATH, a HOME with no bglass
/// config in it, from another working directory, the passphrase from the environment.
pub fn run_with(config: &Path, args: &[&str]) -> Run {
    let elsewhere = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        bin("bglass").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("ssh")
        .env("PATH", path)
        .env("HOME", elsewhere.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BGLASS_CONFIG")
        .env("BGLASS_PASSPHRASE", PASSPHRASE)
        .current_dir(elsewhere.path())
        .arg("-F")
        .arg(config)
        .args(args))
}
