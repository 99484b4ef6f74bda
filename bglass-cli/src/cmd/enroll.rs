//! `bglass enroll`: create the responder's key and CLI config, print their roster entry.
//!
//! Everything the user typed is validated before anything is written; the key file is
//! created 0600 and never overwritten; on any failure after the key is written, nothing
//! half-made is left behind.

use std::path::{Path, PathBuf};

use bglass_core::id::ResponderId;
use bglass_core::keys::{MAX_WORK_FACTOR, MIN_WORK_FACTOR, ResponderIdentity, SigningKey};
use bglass_core::roster::{Responder, Role};

use crate::cli::EnrollArgs;
use crate::config::{self, Config, ProxyEntry, parse_proxy_url};
use crate::error::{CliError, CliResult};
use crate::passphrase;

/// What enroll will do, fully validated, before any side effect.
struct Plan {
    config_path: PathBuf,
    identity_path: PathBuf,
    identity_as_written: String,
    id: ResponderId,
    name: String,
    roles: Vec<Role>,
    config: Config,
    work_factor: u8,
}

fn plan(config_flag: Option<&Path>, args: EnrollArgs) -> CliResult<Plan> {
    let id: ResponderId = super::parse_arg(Some("--id"), &args.id)?;
    if args.proxies.len() != args.pins.len() {
        return Err(CliError::user(format!(
            "{} --proxy but {} --pin: give one pin per proxy",
            args.proxies.len(),
            args.pins.len()
        ))
        .with_hint("repeat --proxy URL --pin PIN for each proxy, in priority order"));
    }
    if args.proxies.len() > config::MAX_PROXIES {
        return Err(CliError::user(format!(
            "at most {} proxies may be listed",
            config::MAX_PROXIES
        )));
    }
    let mut proxies: Vec<ProxyEntry> = Vec::new();
    for (url, pin) in args.proxies.iter().zip(&args.pins) {
        let addr = parse_proxy_url(url, None)
            .map_err(|reason| CliError::user(format!("--proxy {url:?}: {reason}")))?;
        let pin = pin.parse().map_err(|e| {
            CliError::user(format!("--pin {pin:?}: {e}"))
                .with_hint("use the pin printed by `bglass-proxy init`")
        })?;
        if proxies.iter().any(|p| p.addr == addr) {
            return Err(CliError::user(format!("--proxy {url} is given twice")));
        }
        proxies.push(ProxyEntry {
            witnesses: Vec::new(),
            witness_quorum: 0,
            ssh_host_key: None,
            url: url.clone(),
            addr,
            pin,
        });
    }
    let mut roles = Vec::new();
    for name in &args.roles {
        let role = Role::from_name(name.trim()).ok_or_else(|| {
            CliError::user(format!(
                "--roles: unknown role {name:?}; expected responder, approver, drill-lead, auditor or canary"
            ))
        })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let name = args.name.unwrap_or_else(|| id.to_string());
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(CliError::user(
            "--name must be 1-100 characters without control characters",
        ));
    }
    if !(MIN_WORK_FACTOR..=MAX_WORK_FACTOR).contains(&args.kdf_work_factor) {
        return Err(CliError::user(format!(
            "--kdf-work-factor must be {MIN_WORK_FACTOR}..={MAX_WORK_FACTOR}"
        )));
    }

    let config_path = config::locate(config_flag)?.path;
    let config_dir = config_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (identity_path, identity_as_written) = match args.identity {
        Some(path) => {
            let shown = path.display().to_string();
            (path, shown)
        }
        None => (config_dir.join("identity.age"), "identity.age".to_owned()),
    };
    for existing in [&config_path, &identity_path] {
        if existing.exists() {
            return Err(CliError::user(format!(
                "{} already exists; enroll never overwrites a key or config",
                existing.display()
            ))
            .with_hint("move it away first, or pass --config FILE for a separate enrollment"));
        }
    }
    Ok(Plan {
        config: Config {
            responder: id.clone(),
            identity: identity_path.clone(),
            proxies,
        },
        id,
        name,
        roles,
        config_path,
        identity_path,
        identity_as_written,
        work_factor: args.kdf_work_factor,
    })
}

/// Runs `bglass enroll`.
pub fn run(config_flag: Option<&Path>, args: EnrollArgs) -> CliResult {
    let plan = plan(config_flag, args)?;
    let passphrase = passphrase::new_passphrase()?;

    let key = SigningKey::generate()
        .map_err(|e| CliError::internal(format!("generating the key failed: {e}")))?;
    let responder = Responder {
        id: plan.id.clone(),
        name: plan.name.clone(),
        key: key.public_key(),
        roles: plan.roles.clone(),
    };
    let identity = ResponderIdentity {
        id: plan.id.clone(),
        key,
    };

    for dir in [plan.config_path.parent(), plan.identity_path.parent()]
        .into_iter()
        .flatten()
        .filter(|d| !d.as_os_str().is_empty())
    {
        create_private_dir(dir)?;
    }
    identity
        .create_file(&plan.identity_path, &passphrase, plan.work_factor)
        .map_err(|e| {
            let err = CliError::user(&e);
            match e {
                bglass_core::keys::KeyFileError::WeakPassphrase => {
                    err.with_hint("choose a longer passphrase")
                }
                _ => err,
            }
        })?;
    if let Err(e) = write_new(
        &plan.config_path,
        &plan.config.to_toml(&plan.identity_as_written),
    ) {
        // Do not leave a key without the config that names it.
        let _ = std::fs::remove_file(&plan.identity_path);
        return Err(e);
    }

    crate::out!("{}", responder.to_toml())?;
    eprintln!(
        "Enrolled {}.\n  key:    {} (age-encrypted, mode 0600)\n  config: {}\n\n\
         Send the [[responder]] entry {} to your proxy operator; it goes in responders.toml\n\
         on every proxy. Your key never leaves this machine.",
        responder.id,
        plan.identity_path.display(),
        plan.config_path.display(),
        entry_went()
    );
    Ok(())
}

/// Where the roster entry printed on standard output went: "above" on a terminal, else the
/// file (or pipe) standard output is redirected to, so the responder knows where to look.
fn entry_went() -> String {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        return "above".to_owned();
    }
    match std::fs::read_link("/proc/self/fd/1") {
        Ok(target) if target.is_absolute() => {
            format!("written to {} (standard output)", target.display())
        }
        Ok(target) => format!(
            "written to standard output ({}), not shown here",
            target.display()
        ),
        Err(_) => "written to standard output, not shown here".to_owned(),
    }
}

fn create_private_dir(dir: &Path) -> CliResult {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| CliError::user(format!("cannot create {}: {e}", dir.display())))
}

fn write_new(path: &Path, text: &str) -> CliResult {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CliError::user(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::user(format!("cannot write {}: {e}", path.display())))
}
