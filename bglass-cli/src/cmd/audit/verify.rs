//! `bglass audit verify DIR`: full offline verification.

use base64::Engine;
use serde_json::json;

use super::{parse_key, verified};
use crate::cli::AuditVerifyArgs;
use crate::error::{CliError, CliResult, ErrorKind};

/// Runs `bglass audit verify`.
pub fn run(args: AuditVerifyArgs) -> CliResult {
    parse_key(&args.source)?;
    let result = verified(&args.source);
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
    crate::outln!("signing key: {} ({:?})", report.key, report.key_source)?;
    Ok(())
}
