//! `bglass unlock` / `bglass lock`: one passphrase prompt per incident. `unlock` decrypts the
//! key and hands it to a background `bglass` (the key agent, see `bglass_client::agent`)
//! that signs for later commands until its time limit; `lock` ends it at once.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bglass_client::agent::{self, AgentClient, server};
use bglass_client::identity::Identity;
use bglass_core::duration::HumanDuration;
use bglass_core::timestamp;

use crate::cli::{AgentDaemonArgs, UnlockArgs};
use crate::config::{self, Config};
use crate::error::{CliError, CliResult, ErrorKind};

/// How long `unlock` waits for its agent to be listening.
const START_WAIT: Duration = Duration::from_secs(15);

/// Runs `bglass unlock`.
pub fn unlock(config_flag: Option<&Path>, args: UnlockArgs) -> CliResult {
    let lifetime: HumanDuration = args
        .r#for
        .parse()
        .map_err(|e| CliError::user(format!("--for: {e}")))?;
    if lifetime.to_std() > agent::MAX_LIFETIME {
        return Err(CliError::user(format!(
            "--for {}: longer than the limit of {}h",
            args.r#for,
            agent::MAX_LIFETIME.as_secs() / 3600
        ))
        .with_hint("unlock again when it ends"));
    }
    let location = config::locate(config_flag)?;
    let config = Config::load(&location.path).map_err(config::config_error)?;
    let path = agent::socket_path(&location.path);
    if let Some(dir) = path.parent() {
        agent::ensure_private_dir(dir)?;
    }
    // One agent per config: a new unlock replaces the running one (and its time limit).
    if let Some(old) = AgentClient::at(&path)? {
        old.lock()?;
        wait_gone(&path)?;
    }
    let identity = Identity::from_key_file(&config)?;
    let handoff = server::handoff_bytes(&identity)?;
    drop(identity);
    let exe = std::env::current_exe()
        .map_err(|e| CliError::internal(format!("cannot find this program: {e}")))?;
    let mut child = Command::new(exe)
        .arg("agent-daemon")
        .arg("--socket")
        .arg(&path)
        .arg("--seconds")
        .arg(lifetime.as_secs().to_string())
        .env_remove(bglass_client::passphrase::PASSPHRASE_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::internal(format!("cannot start the key agent: {e}")))?;
    let handed = child
        .stdin
        .take()
        .ok_or_else(|| CliError::internal("the key agent has no input"))
        .and_then(|mut stdin| {
            stdin
                .write_all(&handoff)
                .map_err(|e| CliError::internal(format!("cannot hand the key over: {e}")))
        });
    drop(handoff);
    handed?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| CliError::internal("the key agent has no output"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(START_WAIT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CliError::internal(format!(
                "the key agent did not start within {}s",
                START_WAIT.as_secs()
            )));
        }
    };
    if let Some(message) = line.trim().strip_prefix("error: ") {
        let _ = child.wait();
        return Err(CliError::user(format!(
            "the key agent could not start: {message}"
        )));
    }
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CliError::internal(format!(
            "the key agent did not start (it said {:?})",
            line.trim()
        )));
    }
    let running = AgentClient::at(&path)?.ok_or_else(|| {
        CliError::internal(format!(
            "the key agent does not answer on {}",
            path.display()
        ))
    })?;
    let info = running.info();
    crate::outln!(
        "Unlocked {} until {} (key agent pid {}, socket {}).",
        info.responder,
        timestamp::format_secs(info.expires),
        info.pid,
        path.display()
    )?;
    crate::outln!(
        "bglass commands with this config now sign through it without a prompt; `bglass lock` ends it now."
    )
}

/// Polls until the socket at `path` is gone (an agent ending removes it first).
fn wait_gone(path: &Path) -> CliResult {
    let started = Instant::now();
    while path.exists() {
        if started.elapsed() > START_WAIT {
            return Err(CliError::internal(format!(
                "the old key agent did not end: {} is still there",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs `bglass lock`.
pub fn lock(config_flag: Option<&Path>) -> CliResult {
    let location = config::locate(config_flag)?;
    let path = agent::socket_path(&location.path);
    match AgentClient::at(&path)? {
        Some(running) => {
            running.lock()?;
            wait_gone(&path)?;
            crate::outln!(
                "Locked: the key agent (pid {}) dropped the key and ended.",
                running.info().pid
            )
        }
        None => crate::outln!("No key agent was running for {}.", location.path.display()),
    }
}

/// Runs the hidden `bglass agent-daemon`: the agent process `unlock` starts. Reads the key on
/// standard input, says `ready` (or `error: …`) on standard output, then serves.
pub fn daemon(args: AgentDaemonArgs) -> CliResult {
    // Out of the terminal's session: closing the terminal or Ctrl-C there does not end it.
    let _ = server::detach();
    let prepared = server::harden_process().and_then(|()| {
        let identity = server::read_handoff(std::io::stdin().lock())?;
        let listener = server::bind(&args.socket)?;
        Ok((identity, listener))
    });
    let (identity, listener) = match prepared {
        Ok(ready) => ready,
        Err(e) => {
            let _ = crate::outln!("error: {e}");
            return Err(CliError::new(ErrorKind::User, e));
        }
    };
    let _ = std::env::set_current_dir("/");
    crate::outln!("ready")?;
    let lifetime = Duration::from_secs(args.seconds.min(agent::MAX_LIFETIME.as_secs()));
    super::block_on(async move {
        server::serve(listener, args.socket, identity, lifetime)
            .await
            .map(|_| ())
            .map_err(CliError::from)
    })
}
