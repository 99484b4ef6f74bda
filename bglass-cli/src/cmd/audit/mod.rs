//! `bglass audit …`: offline verification and reading of a proxy's audit log, and the
//! auditor's mirror of it (`monitor`).

mod export;
mod monitor;
mod play;
mod prove;
mod report;
mod review;
mod review_html;
mod show;
mod verify;

/// The webhook target of `audit monitor`, shared with `bglass canary`.
pub use monitor::Webhook;

use bglass_core::audit::describe::detail;
use bglass_core::audit::event::Event;
use bglass_core::audit::report::{Filter, read_events};
use bglass_core::audit::verify::{VerifyReport, verify_dir};
use bglass_core::id::{ResponderId, ServiceName};
use bglass_core::keys::PublicKey;
use bglass_core::timestamp;

use crate::cli::{AuditCommand, AuditFilterArgs, AuditSource};
use crate::error::{CliError, CliResult, ErrorKind};

/// Runs an audit command.
pub fn run(config: Option<&std::path::Path>, command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::Prove(args) => prove::run(config, args),
        AuditCommand::Verify(args) => verify::run(args),
        AuditCommand::Play(args) => play::run(args),
        AuditCommand::Show(args) => show::run(args),
        AuditCommand::Export(args) => export::run(args),
        AuditCommand::Report(args) => report::run(args),
        AuditCommand::Monitor(args) => monitor::run(config, args),
    }
}

fn parse_key(source: &AuditSource) -> CliResult<Option<PublicKey>> {
    source
        .key
        .as_deref()
        .map(|k| {
            k.parse()
                .map_err(|e| CliError::user(format!("--key {k:?}: {e}")))
        })
        .transpose()
}

/// Verifies the log, as every reading command does first.
fn verified(source: &AuditSource) -> CliResult<VerifyReport> {
    let key = source_key(source)?;
    verify_dir(&source.dir, key).map_err(|d| defect_error(source, key, &d))
}

/// The key of a source to verify, once its directory is known to exist.
fn source_key(source: &AuditSource) -> CliResult<Option<PublicKey>> {
    if !source.dir.is_dir() {
        return Err(
            CliError::user(format!("{} is not a directory", source.dir.display()))
                .with_hint("give the proxy's log directory, or a copy of it"),
        );
    }
    parse_key(source)
}

/// A defect verification found, as the error the CLI reports (exit 5).
fn defect_error(
    source: &AuditSource,
    key: Option<PublicKey>,
    d: &bglass_core::audit::verify::Defect,
) -> CliError {
    let hint = if key.is_some()
        && d.kind == bglass_core::audit::verify::DefectKind::CheckpointWrongKey
    {
        // The likelier story: a key from another proxy, or a typo, not a forged log.
        "the --key given may be the wrong one: the checkpoints are signed by another key. Check it against the proxy's signing key as its operator recorded it (`bglass-proxy init` printed it); keep the copy as evidence until it is settled"
    } else {
        "the log has been altered or damaged; keep the copy as evidence"
    };
    CliError::new(ErrorKind::Defect, format!("{}: {d}", source.dir.display())).with_hint(hint)
}

/// Reads the events after verifying (or, with `--unverified`, with a warning).
fn events(source: &AuditSource, unverified: bool) -> CliResult<Vec<(u64, Event)>> {
    match verified(source) {
        Ok(report) => {
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
        }
        Err(e) if unverified => eprintln!("warning: reading a log that does not verify: {e}"),
        Err(e) => {
            return Err(
                e.with_hint("run `bglass audit verify`; pass --unverified to read it anyway")
            );
        }
    }
    read_events(&source.dir).map_err(|e| CliError::new(ErrorKind::Defect, e))
}

fn time_arg(flag: &str, value: Option<&String>) -> CliResult<Option<u64>> {
    value
        .map(|v| timestamp::parse_ms(v).map_err(|e| CliError::user(format!("{flag}: {e}"))))
        .transpose()
}

fn filter(args: &AuditFilterArgs) -> CliResult<Filter> {
    Ok(Filter {
        since_ms: time_arg("--since", args.since.as_ref())?,
        until_ms: time_arg("--until", args.until.as_ref())?,
        responder: args
            .responder
            .as_deref()
            .map(|r| crate::cmd::parse_arg::<ResponderId>(Some("--responder"), r))
            .transpose()?,
        service: args
            .service
            .as_deref()
            .map(|s| crate::cmd::parse_arg::<ServiceName>(Some("--service"), s))
            .transpose()?,
        drill: args.drill.clone(),
    })
}
