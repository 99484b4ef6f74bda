//! `bglass audit verify DIR`: full offline verification.

use base64::Engine;
use serde_json::json;

use bglass_core::audit::checkpoint::{self, origin, verifier_key};
use bglass_core::audit::policy_check;
use bglass_core::audit::storage::{HISTORY_FILE, read_history};
use bglass_core::audit::verify::VerifyReport;
use bglass_core::audit::witness::{COSIGNED_FILE, WitnessKey, cosigners};

use super::{defect_error, parse_key, source_key, verified};
use crate::cli::AuditVerifyArgs;
use crate::error::{CliError, CliResult, ErrorKind};

/// Runs `bglass audit verify`.
pub fn run(args: AuditVerifyArgs) -> CliResult {
    parse_key(&args.source)?;
    let witnesses = args
        .witnesses
        .iter()
        .map(|w| {
            w.parse::<WitnessKey>()
                .map_err(|e| CliError::user(format!("--witness {e}")))
        })
        .collect::<CliResult<Vec<_>>>()?;
    let quorum = args.quorum.unwrap_or(witnesses.len());
    if quorum > witnesses.len() || (!witnesses.is_empty() && quorum == 0) {
        return Err(CliError::user(format!(
            "--quorum {quorum} must be between 1 and the {} witnesses given",
            witnesses.len()
        )));
    }
    // With --policy, the integrity and policy checks read the log side by side; the
    // policy's findings count only if integrity passes.
    let (result, checked) = if args.check.policy {
        let key = source_key(&args.source)?;
        let (integrity, checked) =
            policy_check::verify_and_check(&args.source.dir, key, args.check.options());
        (
            integrity.map_err(|d| defect_error(&args.source, key, &d)),
            checked,
        )
    } else {
        (verified(&args.source), None)
    };
    if !witnesses.is_empty()
        && let Ok(report) = &result
    {
        let witnessed = witnessed(&args.source.dir, report, &witnesses, quorum)?;
        crate::outln!("{witnessed}")?;
    }
    if let Some(checked) = checked
        && result.is_ok()
    {
        return policy(&args, result?, checked);
    }
    if args.json {
        let doc = match &result {
            Ok(r) => json!({
                "ok": true,
                "entries": r.entries,
                "checkpoints": r.checkpoints,
                "latest": r.latest.map(|(size, root)| json!({
                    "size": size,
                    "root": base64::engine::general_purpose::STANDARD.encode(root.0),
                })),
                "proxy": r.proxy,
                "key": r.key,
                "key_source": format!("{:?}", r.key_source),
                "rotations": r.rotations.iter().map(|t| json!({
                    "index": t.index,
                    "old": t.old,
                    "new": t.new,
                })).collect::<Vec<_>>(),
                "warnings": r.warnings,
            }),
            Err(e) => json!({ "ok": false, "defect": e.to_string() }),
        };
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(CliError::internal)?
        )?;
        return result.map(|_| ()).map_err(|_| {
            CliError::new(
                ErrorKind::Defect,
                "the log has a defect (see the JSON output)",
            )
        });
    }
    let report = result?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    crate::outln!(
        "{}: verified: {} entries of proxy {}, {} checkpoints",
        args.source.dir.display(),
        report.entries,
        report.proxy,
        report.checkpoints
    )?;
    if let Some((size, root)) = report.latest {
        crate::outln!(
            "latest checkpoint: size {size}, root {}",
            base64::engine::general_purpose::STANDARD.encode(root.0)
        )?;
    }
    for t in &report.rotations {
        crate::outln!(
            "signing key rotated at entry {}: {} -> {} (signed by both keys)",
            t.index,
            t.old,
            t.new
        )?;
    }
    crate::outln!("signing key: {} ({:?})", report.key, report.key_source)?;
    // For checking the checkpoints with other signed-note tools (e.g. Go's sumdb/note).
    crate::outln!(
        "note verifier key: {}",
        verifier_key(&origin(&report.proxy), &report.key)
    )?;
    Ok(())
}

/// `--policy`: the integrity check passed; now the policy, entry by entry.
fn policy(
    args: &AuditVerifyArgs,
    integrity: VerifyReport,
    checked: Result<policy_check::PolicyReport, String>,
) -> CliResult {
    for w in &integrity.warnings {
        eprintln!("warning: {w}");
    }
    let report = checked.map_err(|e| CliError::new(ErrorKind::Defect, e))?;
    if args.json {
        let doc = json!({
            "ok": report.violations.is_empty(),
            "entries": report.entries,
            "grants": report.grants,
            "envelopes": report.envelopes,
            "proxy": integrity.proxy,
            "key": integrity.key,
            "violations": report.violations.iter().map(|v| json!({
                "index": v.index,
                "kind": v.kind,
                "detail": v.detail,
            })).collect::<Vec<_>>(),
        });
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(CliError::internal)?
        )?;
    } else {
        crate::outln!(
            "{}: verified: {} entries of proxy {}, {} checkpoints; signing key {} ({:?})",
            args.source.dir.display(),
            integrity.entries,
            integrity.proxy,
            integrity.checkpoints,
            integrity.key,
            integrity.key_source
        )?;
        for v in &report.violations {
            crate::outln!("POLICY VIOLATION {v}")?;
        }
        crate::outln!(
            "policy: {} entries, {} grants, {} signed envelopes checked against the roster and catalog in force: {} violations",
            report.entries,
            report.grants,
            report.envelopes,
            report.violations.len()
        )?;
    }
    if report.violations.is_empty() {
        Ok(())
    } else {
        Err(CliError::new(
            ErrorKind::Defect,
            format!(
                "{}: {} policy violations; the first: {}",
                args.source.dir.display(),
                report.violations.len(),
                report.violations[0]
            ),
        )
        .with_hint("the log verifies, so whoever held the proxy's key signed these entries; keep the copy as evidence"))
    }
}

/// `--witness`: the checkpoint kept beside the log with its cosignatures is one of the log's
/// own (so consistent with the entries just verified), and carries `quorum` cosignatures of
/// the witnesses given.
fn witnessed(
    dir: &std::path::Path,
    report: &VerifyReport,
    witnesses: &[WitnessKey],
    quorum: usize,
) -> CliResult<String> {
    let defect = |why: String| {
        CliError::new(ErrorKind::Defect, format!("{}: {why}", dir.display()))
            .with_hint("the log verifies, but its witnesses do not vouch for it: compare it with the witnesses' own view before trusting it")
    };
    let path = dir.join(COSIGNED_FILE);
    let note = std::fs::read(&path)
        .map_err(|e| defect(format!("no cosigned checkpoint: {}: {e}", path.display())))?;
    let origin = origin(&report.proxy);
    let verified = checkpoint::verify(&note, &origin, &report.key)
        .map_err(|e| defect(format!("{}: {e}", path.display())))?;
    let (history, _, _) =
        read_history(&dir.join(HISTORY_FILE)).map_err(|e| defect(e.to_string()))?;
    if !history.iter().any(|h| note.starts_with(h)) {
        return Err(defect(format!(
            "the cosigned checkpoint (size {}) is not one this log signed",
            verified.size
        )));
    }
    let text = String::from_utf8_lossy(&note);
    let by = cosigners(&text, witnesses);
    if by.len() < quorum {
        return Err(defect(format!(
            "the checkpoint of size {} carries {} of the {quorum} cosignatures required ({})",
            verified.size,
            by.len(),
            if by.is_empty() {
                "none of the witnesses given".to_owned()
            } else {
                by.join(", ")
            }
        )));
    }
    Ok(format!(
        "witnessed: the checkpoint of size {} is cosigned by {} ({} of {}, quorum {quorum})",
        verified.size,
        by.join(", "),
        by.len(),
        witnesses.len()
    ))
}
