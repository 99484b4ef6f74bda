//! `bglass admin sign|verify`: catalog and roster changes signed by k of n admins.

use std::io::Write;
use std::path::Path;

use bglass_core::admin::{AdminKey, SIG_SUFFIX, Transition};
use bglass_core::audit::policy_files::{PolicyKind, digest};

use crate::cli::{AdminChange, AdminCommand, AdminFileKind, AdminSignArgs, AdminVerifyArgs};
use crate::config;
use crate::error::{CliError, CliResult, ErrorKind};

/// Runs an admin command.
pub fn run(config_flag: Option<&Path>, command: AdminCommand) -> CliResult {
    match command {
        AdminCommand::Sign(args) => sign(config_flag, &args),
        AdminCommand::Verify(args) => verify(&args),
    }
}

fn read(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| CliError::user(format!("{}: {e}", path.display())))
}

fn sig_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(SIG_SUFFIX);
    name.into()
}

fn short(d: &str) -> &str {
    d.get(..12).unwrap_or(d)
}

/// The change FILE makes, after checking that FILE (and OLD) are valid files of their kind.
fn change(args: &AdminChange) -> CliResult<(Transition, Vec<u8>)> {
    let kind = match args.kind {
        AdminFileKind::Catalog => PolicyKind::Catalog,
        AdminFileKind::Roster => PolicyKind::Roster,
    };
    let bytes = read(&args.file)?;
    let valid = |path: &Path, bytes: Vec<u8>| -> CliResult {
        let checked = match kind {
            PolicyKind::Catalog => bglass_core::catalog::Catalog::from_bytes(path, bytes)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            PolicyKind::Roster => bglass_core::roster::Roster::from_bytes(path, bytes)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        checked.map_err(|e| {
            CliError::user(e).with_hint(format!(
                "only a valid {} can be signed; `bglass-proxy check` validates it",
                kind.name()
            ))
        })
    };
    valid(&args.file, bytes.clone())?;
    let parent = match &args.over {
        Some(old) => {
            let old_bytes = read(old)?;
            valid(old, old_bytes.clone())?;
            Some(digest(&old_bytes))
        }
        None => None,
    };
    Ok((Transition::to_bytes(kind, parent.as_deref(), &bytes), bytes))
}

fn sign(config_flag: Option<&Path>, args: &AdminSignArgs) -> CliResult {
    let (change, _) = change(&args.change)?;
    let location = config::locate(config_flag)?;
    let config = config::Config::load(&location.path).map_err(config::config_error)?;
    let identity = bglass_client::identity::Identity::from_key_file(&config)?;
    let me = AdminKey {
        name: identity.id.to_string(),
        key: identity.key.public_key(),
    };
    let path = sig_path(&args.change.file);
    let held = std::fs::read_to_string(&path).unwrap_or_default();
    let before = change.signers(&held, std::slice::from_ref(&me));
    if before.valid.is_empty() {
        let line = change.sign(me.name.as_str(), &identity.key);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|e| CliError::user(format!("{}: {e}", path.display())))?;
    }
    let all = std::fs::read_to_string(&path).unwrap_or_default();
    let lines = all
        .lines()
        .filter(|l| l.starts_with("bglass-config-signature"))
        .count();
    crate::outln!(
        "{} the {} change {} → {} as {} ({}); {} holds {lines} signature line(s)",
        if before.valid.is_empty() {
            "signed"
        } else {
            "already signed"
        },
        change.kind.name(),
        change.parent.as_deref().map_or("none", short),
        short(&change.digest),
        me.name,
        me.key,
        path.display()
    )
}

fn verify(args: &AdminVerifyArgs) -> CliResult {
    let (change, _) = change(&args.change)?;
    let admins = args
        .admins
        .iter()
        .map(|a| {
            a.parse::<AdminKey>()
                .map_err(|e| CliError::user(format!("--admin {e}")))
        })
        .collect::<CliResult<Vec<_>>>()?;
    let threshold = args.threshold.unwrap_or(admins.len());
    if threshold == 0 || threshold > admins.len() {
        return Err(CliError::user(format!(
            "--threshold {threshold} must be between 1 and the {} admins given",
            admins.len()
        )));
    }
    let path = sig_path(&args.change.file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::user(format!("{}: {e}", path.display())))?;
    let signers = change.signers(&text, &admins);
    for name in &signers.valid {
        crate::outln!("valid: {name}")?;
    }
    for why in &signers.ignored {
        crate::outln!("not counted: {why}")?;
    }
    match signers.require(threshold, change.kind) {
        Ok(names) => crate::outln!(
            "the {} change {} → {} is signed by {} of the {threshold} admins required ({})",
            change.kind.name(),
            change.parent.as_deref().map_or("none", short),
            short(&change.digest),
            names.len(),
            names.join(", ")
        ),
        Err(why) => Err(CliError::new(ErrorKind::Defect, why)
            .with_hint("the proxies keep the version in force until enough admins sign this one")),
    }
}
