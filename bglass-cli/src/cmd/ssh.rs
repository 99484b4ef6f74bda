//! `bglass ssh SERVICE [-- COMMAND…]`: a fresh in-memory key per session, an OpenSSH
//! certificate for it from the proxy (valid for minutes, never past the grant, and only
//! from the proxy's addresses), and an `ssh2` session
//! through a tunnel. The host key must be the catalog's pinned key (never trusted on first
//! use). With a command, its exit status becomes bglass's; without, an interactive shell on
//! a PTY with the terminal in raw mode.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use bglass_core::api::GRANT_HEADER;
use bglass_core::id::ServiceName;

use super::block_on;
use crate::cli::SshArgs;
use crate::client::{Session, answer};
use crate::error::{CliError, CliResult, ErrorKind};
use crate::tunnel::Dialer;
use bglass_client::ssh::{Issued, check_host_key};

/// Quotes one argument for a POSIX shell.
fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn ssh_error(what: &str, e: &ssh2::Error) -> CliError {
    CliError::new(ErrorKind::Unavailable, format!("{what}: {e}"))
}

/// Runs `bglass ssh`.
pub fn run(config: Option<&Path>, args: SshArgs) -> CliResult {
    // The input first: nothing is unlocked for a bad name.
    let _: ServiceName = super::parse_arg(Some("service"), &args.service)?;
    run_in(config, Session::open(config)?, args)
}

/// `bglass ssh` on a session already open (`bglass tui` hands its terminal over to it).
pub fn run_in(config: Option<&Path>, session: Session, args: SshArgs) -> CliResult {
    let service: ServiceName = super::parse_arg(Some("service"), &args.service)?;
    let mut session = session;
    super::check_held(&mut session, &service)?;
    let (grant, conn) = session
        .held_grants(&service)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::internal("no grant"))?;
    let dialer = Dialer::new(&session, &service)?;

    // A key that exists only for this session (ECDSA P-256: libssh2 authenticates with
    // certificates of this type).
    let key = ssh_key::PrivateKey::random(
        &mut rand_core::OsRng,
        ssh_key::Algorithm::Ecdsa {
            curve: ssh_key::EcdsaCurve::NistP256,
        },
    )
    .map_err(|e| CliError::internal(format!("generating the session key: {e}")))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| CliError::internal(format!("encoding the session key: {e}")))?;
    let url = format!(
        "{}/v1/ssh/{service}/certificate",
        conn.entry.url.trim_end_matches('/')
    );
    let http = conn.http.clone();
    let token = grant.token.clone();
    let issued: Issued = block_on(async move {
        let response = http
            .post(&url)
            .header(GRANT_HEADER, token)
            .json(&serde_json::json!({ "public_key": public }))
            .send()
            .await
            .map_err(|e| {
                CliError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{url} did not answer: {}",
                        bglass_client::failure::transport_cause(&e)
                    ),
                )
            })?;
        let value = answer(response).await.map_err(CliError::from)?;
        serde_json::from_value(value).map_err(CliError::internal)
    })?;
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| CliError::internal(format!("encoding the session key: {e}")))?;
    let user = args
        .user
        .clone()
        .or_else(|| issued.principals.first().cloned())
        .ok_or_else(|| CliError::internal("the certificate has no principal"))?;

    if args.save_cert {
        return save(config, &session, &service, &private, &issued, &user);
    }

    // The tunnel, bridged to a socket pair that libssh2 can drive.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(CliError::internal)?;
    let (ready_tx, ready_rx) = mpsc::channel::<CliResult>();
    let bridge = std::thread::spawn(move || {
        let _ = block_on(async move {
            let tunnel = match dialer.dial().await {
                Ok(t) => {
                    let _ = ready_tx.send(Ok(()));
                    t
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            theirs.set_nonblocking(true).map_err(CliError::internal)?;
            let mut theirs =
                tokio::net::UnixStream::from_std(theirs).map_err(CliError::internal)?;
            let mut tunnel = tunnel;
            let _ = tokio::io::copy_bidirectional(&mut theirs, &mut tunnel).await;
            Ok(())
        });
    });
    ready_rx
        .recv()
        .map_err(|_| CliError::internal("the tunnel thread stopped"))??;

    let mut ssh = ssh2::Session::new().map_err(|e| ssh_error("starting SSH", &e))?;
    ssh.set_tcp_stream(ours);
    ssh.set_timeout(30_000);
    ssh.handshake()
        .map_err(|e| ssh_error("SSH handshake", &e))?;
    check_host_key(&ssh, &service, &issued.host_key)?;
    ssh.userauth_pubkey_memory(&user, Some(&issued.certificate), &private, None)
        .map_err(|e| {
            CliError::new(ErrorKind::Denied, format!("{service} refused the certificate for user {user}: {e}"))
                .with_hint("the host must trust this proxy's SSH CA (TrustedUserCAKeys) and list the principal for the user")
        })?;
    if !ssh.authenticated() {
        return Err(CliError::new(
            ErrorKind::Denied,
            format!("{service} did not accept the certificate"),
        ));
    }
    let status = if args.command.is_empty() {
        shell(&ssh)?
    } else {
        let command: Vec<String> = args.command.iter().map(|a| quote(a)).collect();
        exec(&ssh, &command.join(" "))?
    };
    drop(ssh);
    let _ = bridge.join();
    match u8::try_from(status) {
        Ok(0) => Ok(()),
        Ok(code) => Err(CliError::new(ErrorKind::Exit(code), "")),
        // POSIX exit statuses are 0-255; a server that sends another value is reported, and
        // the command counts as failed.
        Err(_) => Err(CliError::new(
            ErrorKind::Unavailable,
            format!("{service} reported exit status {status}, which is not 0-255"),
        )),
    }
}

/// Runs one command; returns its exit status.
fn exec(ssh: &ssh2::Session, command: &str) -> CliResult<i32> {
    let mut channel = ssh
        .channel_session()
        .map_err(|e| ssh_error("opening a channel", &e))?;
    channel
        .exec(command)
        .map_err(|e| ssh_error("running the command", &e))?;
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = channel.read(&mut buf).map_err(CliError::internal)?;
        if n == 0 {
            break;
        }
        stdout.write_all(&buf[..n]).map_err(CliError::internal)?;
    }
    let mut err = String::new();
    let _ = channel.stderr().read_to_string(&mut err);
    eprint!("{err}");
    let _ = stdout.flush();
    channel
        .wait_close()
        .map_err(|e| ssh_error("closing the channel", &e))?;
    channel
        .exit_status()
        .map_err(|e| ssh_error("reading the exit status", &e))
}

/// An interactive shell on a PTY, the local terminal in raw mode.
fn shell(ssh: &ssh2::Session) -> CliResult<i32> {
    let mut channel = ssh
        .channel_session()
        .map_err(|e| ssh_error("opening a channel", &e))?;
    let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_owned());
    channel
        .request_pty(&term, None, Some((u32::from(cols), u32::from(rows), 0, 0)))
        .map_err(|e| ssh_error("requesting a terminal", &e))?;
    channel
        .shell()
        .map_err(|e| ssh_error("starting the shell", &e))?;
    let raw = crossterm::terminal::enable_raw_mode().is_ok();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    ssh.set_blocking(false);
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 16 * 1024];
    let result = loop {
        let mut idle = true;
        match channel.read(&mut buf) {
            Ok(0) if channel.eof() => break Ok(()),
            Ok(0) => {}
            Ok(n) => {
                idle = false;
                let _ = stdout.write_all(&buf[..n]);
                let _ = stdout.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => break Err(CliError::internal(e)),
        }
        while let Ok(input) = rx.try_recv() {
            idle = false;
            let mut rest: &[u8] = &input;
            while !rest.is_empty() {
                match channel.write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => break,
                }
            }
        }
        if channel.eof() {
            break Ok(());
        }
        if idle {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    if raw {
        let _ = crossterm::terminal::disable_raw_mode();
    }
    result?;
    ssh.set_blocking(true);
    let _ = channel.wait_close();
    channel
        .exit_status()
        .map_err(|e| ssh_error("reading the exit status", &e))
}

/// The `--config FILE ` to put in the snippet's ProxyCommand: empty when the config in use
/// is the one `bglass` finds by default (no flag, no `BGLASS_CONFIG`), else the config's
/// absolute path, so the system `ssh` runs `bglass tunnel` with the same config whatever its
/// working directory or environment.
fn config_flag(config: Option<&Path>) -> CliResult<String> {
    let Some(given) = config else {
        return Ok(String::new());
    };
    let absolute = std::fs::canonicalize(given)
        .or_else(|_| std::path::absolute(given))
        .map_err(|e| CliError::user(format!("cannot resolve {}: {e}", given.display())))?;
    let default = crate::config::locate(None)
        .ok()
        .map(|l| std::fs::canonicalize(&l.path).unwrap_or(l.path));
    if default.as_deref() == Some(absolute.as_path()) {
        return Ok(String::new());
    }
    let text = absolute.to_str().ok_or_else(|| {
        CliError::user(format!(
            "the config path {} is not UTF-8: it cannot go into an ssh_config snippet",
            absolute.display()
        ))
    })?;
    Ok(format!("--config {} ", ssh_config_token(&quote(text))))
}

/// A value for an ssh_config line: `%` is ssh's token character (`%%` is a literal `%`).
fn ssh_config_token(text: &str) -> String {
    text.replace('%', "%%")
}

/// A file path as an ssh_config argument: tokens escaped, double-quoted when it has spaces.
fn ssh_config_path(path: &Path) -> String {
    let text = ssh_config_token(&path.display().to_string());
    if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// Writes the session key and certificate for the system `ssh`, and prints how to use them.
fn save(
    config: Option<&Path>,
    session: &Session,
    service: &ServiceName,
    private: &str,
    issued: &Issued,
    user: &str,
) -> CliResult {
    let dir = session.store.dir().join("ssh");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::user(format!("cannot create {}: {e}", dir.display())))?;
    let key_path = dir.join(service.as_str());
    let cert_path = dir.join(format!("{service}-cert.pub"));
    let write = |path: &Path, text: &str| crate::store::write_private(path, text.as_bytes());
    // Another bglass of this responder may save at the same time: one at a time.
    let _lock = session.store.lock_blocking()?;
    write(&key_path, private)?;
    write(&cert_path, &format!("{}\n", issued.certificate))?;
    let known = dir.join("known_hosts");
    let existing = match std::fs::read_to_string(&known) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(CliError::user(format!(
                "cannot read {}: {e}",
                known.display()
            )));
        }
    };
    let line = format!("{service}.breakglass {}\n", issued.host_key);
    if !existing.contains(&line) {
        write(&known, &format!("{existing}{line}"))?;
    }
    let now = bglass_core::timestamp::now_ms() / 1000;
    let left = issued.valid_before.saturating_sub(now);
    let life = if left >= 120 {
        format!("{} minutes", left.div_ceil(60))
    } else {
        format!("{left} seconds")
    };
    let grant = match issued.grant_expires {
        Some(end) if end > issued.valid_before => format!(
            "; your grant lasts until {}: run `bglass ssh {service} --save-cert` again for a fresh certificate until then",
            bglass_core::timestamp::format_secs(end)
        ),
        _ => " (when the grant ends)".to_owned(),
    };
    let flag = config_flag(config)?;
    crate::outln!(
        "Key and certificate for {service} written to {}.\nThe certificate is valid for {life}, until {}{grant}. sshd accepts it only from the proxy's addresses, so use it through the proxy:\n\nAdd to ~/.ssh/config:\n\nHost {service}.breakglass\n    User {user}\n    ProxyCommand bglass {flag}tunnel {service}\n    IdentityFile {}\n    CertificateFile {}\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n\nthen: ssh {service}.breakglass",
        dir.display(),
        bglass_core::timestamp::format_secs(issued.valid_before),
        ssh_config_path(&key_path),
        ssh_config_path(&cert_path),
        ssh_config_path(&known)
    )
}
