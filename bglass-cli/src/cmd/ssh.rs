//! `bglass ssh SERVICE [-- COMMAND…]`: a fresh in-memory key per session, an OpenSSH
//! certificate for it from the proxy (valid for minutes, never past the grant, and only
//! from the proxy's addresses), and an SSH session (russh) run directly over the tunnel's
//! stream. The host key must be the catalog's pinned key (never trusted on first
//! use). With a command, its exit status becomes bglass's; without, an interactive shell on
//! a PTY with the terminal in raw mode.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use bglass_core::api::GRANT_HEADER;
use bglass_core::id::ServiceName;

use super::block_on;
use crate::cli::SshArgs;
use crate::client::{Session, answer};
use crate::error::{CliError, CliResult, ErrorKind};
use crate::tunnel::Dialer;
use bglass_client::ssh::{Issued, LoginError, SshHandle};
use russh::ChannelMsg;
use tokio::io::AsyncWriteExt;

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

fn ssh_error(what: &str, e: &russh::Error) -> CliError {
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

    // A key that exists only for this session (Ed25519: the proxy certifies it and sshd
    // accepts ssh-ed25519-cert-v01 certificates).
    let key = ssh_key::PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Ed25519)
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

    // A recorded service: the proxy's own SSH endpoint, whose key the config may pin.
    if issued.recorded
        && let Some(pinned) = &conn.entry.ssh_host_key
        && bglass_client::config::canonical_ssh_key(&issued.host_key).as_deref()
            != Some(pinned.as_str())
    {
        return Err(CliError::new(
            ErrorKind::Denied,
            format!(
                "the proxy's SSH host key ({}) is not the ssh_host_key your config pins; refusing to connect",
                issued.host_key
            ),
        )
        .with_hint("if the proxy's key was changed, check the new one with its operator and update ssh_host_key"));
    }
    if args.save_cert {
        return save(config, &session, &service, &private, &issued, &user);
    }

    // The SSH session runs directly over the tunnel's stream.
    let service_name = service.clone();
    let status = block_on(async move {
        let tunnel = dialer.dial().await?;
        let login = if issued.recorded {
            bglass_client::ssh::login_recorded(
                tunnel,
                &service,
                &issued.host_key,
                &user,
                Duration::from_secs(30),
            )
            .await
        } else {
            bglass_client::ssh::login(
                tunnel,
                &service,
                &issued.host_key,
                &user,
                &private,
                &issued.certificate,
                Duration::from_secs(30),
            )
            .await
        };
        let ssh = login.map_err(|e| match e {
            LoginError::Key(why) => CliError::internal(why),
            LoginError::Handshake(why) => {
                CliError::new(ErrorKind::Unavailable, format!("SSH handshake: {why}"))
            }
            LoginError::HostKey(e) => e,
            LoginError::Refused(Some(why)) => refused(&service, &user, &why),
            LoginError::Refused(None) => refused(&service, &user, "the host did not accept it"),
        })?;
        let status = if args.command.is_empty() {
            shell(&ssh).await?
        } else {
            let command: Vec<String> = args.command.iter().map(|a| quote(a)).collect();
            exec(&ssh, &command.join(" ")).await?
        };
        let _ = ssh
            .disconnect(russh::Disconnect::ByApplication, "", "")
            .await;
        Ok(status)
    })?;
    let Some(status) = status else {
        // As ssh(1): a session cut before the host said how the command ended is a failure
        // (exit 255), never a success.
        return Err(CliError::new(
            ErrorKind::Exit(255),
            format!(
                "the session with {service_name} ended without an exit status: the connection was closed"
            ),
        ));
    };
    match u8::try_from(status) {
        Ok(0) => Ok(()),
        Ok(code) => Err(CliError::new(ErrorKind::Exit(code), "")),
        // POSIX exit statuses are 0-255; a server that sends another value is reported, and
        // the command counts as failed.
        Err(_) => Err(CliError::new(
            ErrorKind::Unavailable,
            format!("{service_name} reported exit status {status}, which is not 0-255"),
        )),
    }
}

/// The host refused the session's certificate.
fn refused(service: &ServiceName, user: &str, why: &str) -> CliError {
    CliError::new(
        ErrorKind::Denied,
        format!("{service} refused the certificate for user {user}: {why}"),
    )
    .with_hint("the host must trust this proxy's SSH CA (TrustedUserCAKeys) and list the principal for the user")
}

/// What a channel ended with: its exit status, 255 when the command was killed by a signal
/// (as ssh(1) reports it), none when the server said neither (the connection was cut).
#[derive(Debug, Default)]
struct Ending {
    status: Option<u32>,
}

impl Ending {
    /// Records `msg` if it carries the channel's ending.
    fn note(&mut self, msg: &ChannelMsg) {
        match msg {
            ChannelMsg::ExitStatus { exit_status } => self.status = Some(*exit_status),
            ChannelMsg::ExitSignal { .. } => self.status = self.status.or(Some(255)),
            _ => {}
        }
    }

    fn status(&self) -> Option<i64> {
        self.status.map(i64::from)
    }
}

/// Runs one command; returns its exit status.
async fn exec(ssh: &SshHandle, command: &str) -> CliResult<Option<i64>> {
    let mut channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| ssh_error("opening a channel", &e))?;
    channel
        .exec(true, command)
        .await
        .map_err(|e| ssh_error("running the command", &e))?;
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut ending = Ending::default();
    while let Some(msg) = channel.wait().await {
        match &msg {
            ChannelMsg::Data { data } => {
                stdout.write_all(data).await.map_err(CliError::internal)?;
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                let _ = stderr.write_all(data).await;
            }
            _ => ending.note(&msg),
        }
    }
    let _ = stdout.flush().await;
    let _ = stderr.flush().await;
    Ok(ending.status())
}

/// An interactive shell on a PTY, the local terminal in raw mode.
async fn shell(ssh: &SshHandle) -> CliResult<Option<i64>> {
    let mut channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| ssh_error("opening a channel", &e))?;
    let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_owned());
    channel
        .request_pty(true, &term, u32::from(cols), u32::from(rows), 0, 0, &[])
        .await
        .map_err(|e| ssh_error("requesting a terminal", &e))?;
    channel
        .request_shell(true)
        .await
        .map_err(|e| ssh_error("starting the shell", &e))?;
    let raw = crossterm::terminal::enable_raw_mode().is_ok();
    // Standard input is read by a thread of its own (a blocking read parked on a terminal
    // must not hold the runtime); the process ends without waiting for it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut resized =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    let mut stdout = tokio::io::stdout();
    let mut ending = Ending::default();
    let mut input_open = true;
    let result: CliResult = loop {
        tokio::select! {
            msg = channel.wait() => match msg {
                None => break Ok(()),
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    let _ = stdout.write_all(&data).await;
                    let _ = stdout.flush().await;
                }
                Some(msg) => ending.note(&msg),
            },
            input = rx.recv(), if input_open => match input {
                Some(bytes) => {
                    if channel.data(bytes.as_slice()).await.is_err() {
                        input_open = false;
                    }
                }
                None => input_open = false,
            },
            Some(()) = async { match resized.as_mut() { Some(s) => s.recv().await, None => None } } => {
                if let Ok((cols, rows)) = crossterm::terminal::size() {
                    let _ = channel.window_change(u32::from(cols), u32::from(rows), 0, 0).await;
                }
            }
        }
    };
    if raw {
        let _ = crossterm::terminal::disable_raw_mode();
    }
    result?;
    Ok(ending.status())
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
    if !issued.recorded {
        write(&key_path, private)?;
        write(&cert_path, &format!("{}\n", issued.certificate))?;
    }
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
    let flag = config_flag(config)?;
    if issued.recorded {
        return crate::outln!(
            "{service} is recorded: the proxy logs in to it for you and records the session, so there is no key or certificate to save. The proxy's SSH host key was added to {}.\n\nAdd to ~/.ssh/config:\n\nHost {service}.breakglass\n    User {user}\n    ProxyCommand bglass {flag}tunnel {service}\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n    PubkeyAuthentication no\n\nthen: ssh {service}.breakglass (while your grant lasts; everything you type and see is recorded)",
            ssh_config_path(&known),
            ssh_config_path(&known)
        );
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
    crate::outln!(
        "Key and certificate for {service} written to {}.\nThe certificate is valid for {life}, until {}{grant}. sshd accepts it only from the proxy's addresses, so use it through the proxy:\n\nAdd to ~/.ssh/config:\n\nHost {service}.breakglass\n    User {user}\n    ProxyCommand bglass {flag}tunnel {service}\n    IdentityFile {}\n    CertificateFile {}\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n\nthen: ssh {service}.breakglass",
        dir.display(),
        bglass_core::timestamp::format_secs(issued.valid_before),
        ssh_config_path(&key_path),
        ssh_config_path(&cert_path),
        ssh_config_path(&known)
    )
}
