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

/// One line of detail about an event, for tables and CSV.
fn detail(event: &Event) -> String {
    use bglass_core::audit::event::EventKind as K;
    match &event.event {
        K::ProxyStart { key, version, .. } => format!("key {key}, bglass {version}"),
        K::ProxyStop { reason } => reason.clone(),
        K::Request {
            request,
            ttl_secs,
            emergency,
            reason,
            incident,
            ..
        } => format!(
            "{request} ttl {ttl_secs}s{} incident {incident}: {reason}",
            // The bypass caps an emergency grant's TTL: the grant entry has the real one.
            if *emergency { " asked, EMERGENCY" } else { "" }
        ),
        K::Approval { request, .. } => format!("approved {request}"),
        K::Denial { reason, detail, .. } => format!("{reason}: {detail}"),
        K::Grant {
            request,
            nbf,
            exp,
            emergency,
            ..
        } => format!(
            "for {request}, {} to {} (ttl {}s){}",
            timestamp::format_secs(*nbf),
            timestamp::format_secs(*exp),
            exp.saturating_sub(*nbf),
            if *emergency {
                " EMERGENCY (review required)"
            } else {
                ""
            }
        ),
        K::UseStart { method, path, .. } => format!("{method} {path} (forwarding)"),
        K::Use {
            method,
            path,
            status,
            bytes_in,
            bytes_out,
            duration_ms,
            ..
        } => format!(
            "{method} {path} -> {status}, {bytes_in}B in, {bytes_out}B out, {duration_ms}ms"
        ),
        K::SshCertificate {
            principals,
            valid_before,
            serial,
            ..
        } => format!(
            "SSH certificate {serial} for {} until {}",
            principals.join(","),
            timestamp::format_secs(*valid_before)
        ),
        K::TunnelOpen { tunnel, .. } => format!("tunnel {tunnel} open"),
        K::TunnelClose {
            tunnel,
            bytes_up,
            bytes_down,
            reason,
            ..
        } => format!("tunnel {tunnel} closed ({reason}), {bytes_up}B up, {bytes_down}B down"),
        K::Revoke { reason, .. } => reason.clone(),
        K::Expiry { .. } => "expired".to_owned(),
        K::Review { note, .. } => note.clone(),
        K::ConfigReload {
            file,
            accepted,
            error,
            signers,
            changes,
            ..
        } => match (accepted, error) {
            (true, _) => {
                let mut text = format!("{file} reloaded");
                if !signers.is_empty() {
                    text.push_str(&format!(" (signed by {})", signers.join(", ")));
                }
                for c in changes {
                    text.push_str(&format!("; {c}"));
                }
                text
            }
            (false, Some(e)) => format!("{file} REJECTED: {e}"),
            (false, None) => format!("{file} REJECTED"),
        },
        K::DrillStart { scenario, .. } => format!("scenario {scenario}"),
        K::DrillStop {} => String::new(),
        K::DrillResult { .. } => "result recorded".to_owned(),
        K::LogRollback {
            published_size,
            size,
            ..
        } => format!(
            "ROLLBACK accepted by the operator: started on {size} entries, {published_size} had been published"
        ),
        K::LogFailed { error } => format!("AUDIT LOG FAILED, access refused: {error}"),
        K::LogRecovered { failed_ms, error } => format!(
            "audit log recovered, access resumed (failed since {}: {error})",
            timestamp::format_ms(*failed_ms)
        ),
        K::StorageLow {
            free_bytes,
            threshold_bytes,
        } => format!("LOW DISK SPACE: {free_bytes} bytes free, below {threshold_bytes}"),
        K::StorageOk { free_bytes } => format!("disk space back: {free_bytes} bytes free"),
        K::SigningKeyRotated { transition } => format!(
            "SIGNING KEY ROTATED: {} -> {} (signed by both keys)",
            transition.old, transition.new
        ),
        K::CanaryReport { results } => {
            let broken: Vec<String> = results
                .iter()
                .filter(|p| !p.ok)
                .map(|p| format!("{} at {}", p.service, p.step.as_deref().unwrap_or("?")))
                .collect();
            if broken.is_empty() {
                format!("canary: {} pathways ready", results.len())
            } else {
                format!(
                    "canary: {} of {} pathways BROKEN: {}",
                    broken.len(),
                    results.len(),
                    broken.join(", ")
                )
            }
        }
        _ => String::new(),
    }
}
