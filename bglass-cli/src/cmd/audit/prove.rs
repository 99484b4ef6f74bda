//! `bglass audit prove [DIR]`: check the receipts of your own grants — alone (signed
//! checkpoint and inclusion proof), and against a copied log when one is given.

use std::path::Path;

use bglass_core::audit::checkpoint;
use bglass_core::audit::receipt::ReceiptError;
use bglass_core::audit::verify::{Defect, VerifyReport, verify_dir};
use bglass_core::id::ProxyId;

use crate::cli::AuditProveArgs;
use crate::config;
use crate::error::{CliError, CliResult, ErrorKind};
use crate::store::{Store, StoredReceipt};

/// One receipt's outcome, as printed (`--json`: one object a receipt).
#[derive(Debug, serde::Serialize)]
struct Row {
    /// The grant (absent for an unreadable receipt file).
    #[serde(skip_serializing_if = "Option::is_none")]
    grant: Option<String>,
    /// The receipt file, when it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    ok: bool,
    /// Where the grant is proven.
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
    /// Why it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

/// Why a receipt does not prove its grant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum NotProven {
    /// The receipt file could not be read or parsed.
    #[error("unreadable receipt")]
    Unreadable,
    /// The receipt itself does not verify.
    #[error(transparent)]
    Receipt(ReceiptError),
    /// The copied log is another proxy's.
    #[error("the log in {dir} is {log}'s, not {receipt}'s")]
    OtherProxy {
        /// The copied log's directory.
        dir: String,
        /// Whose log it is.
        log: ProxyId,
        /// Whose receipt it is.
        receipt: ProxyId,
    },
    /// The copied log is shorter than the receipt's checkpoint.
    #[error("the log holds {entries} entries, the receipt's checkpoint {size}")]
    Short {
        /// Entries in the copied log.
        entries: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The copied log has a defect.
    #[error(transparent)]
    Log(Defect),
}

/// Checks one receipt alone, then against the copied log in `dir` when one is given.
fn prove(
    stored: &StoredReceipt,
    log: Option<&VerifyReport>,
    dir: Option<&Path>,
) -> Result<String, NotProven> {
    let origin = checkpoint::origin(&stored.proxy);
    let anchored = stored
        .receipt
        .verify(&origin, &stored.key, None)
        .map_err(NotProven::Receipt)?;
    let proof = format!(
        "in {} at index {} (checkpoint of size {})",
        stored.proxy, stored.receipt.index, anchored.size
    );
    let (Some(report), Some(dir)) = (log, dir) else {
        return Ok(proof);
    };
    // The copied log must be this proxy's, hold the entry, and agree with the checkpoint.
    if report.proxy != stored.proxy {
        return Err(NotProven::OtherProxy {
            dir: dir.display().to_string(),
            log: report.proxy.clone(),
            receipt: stored.proxy.clone(),
        });
    }
    let copied = verify_dir(dir, Some(stored.key)).map_err(NotProven::Log)?;
    if copied.entries < anchored.size {
        return Err(NotProven::Short {
            entries: copied.entries,
            size: anchored.size,
        });
    }
    Ok(proof)
}

/// Runs `bglass audit prove`.
pub fn run(config_flag: Option<&Path>, args: AuditProveArgs) -> CliResult {
    let location = config::locate(config_flag)?;
    let store = Store::beside(&location.path);
    let receipts = store.receipts();
    if receipts.is_empty() {
        return Err(CliError::user("no receipts stored")
            .with_hint("receipts are kept for grants you get with `bglass access`"));
    }
    let log = match &args.dir {
        Some(dir) => Some(super::verified(&crate::cli::AuditSource {
            dir: dir.clone(),
            key: None,
        })?),
        None => None,
    };
    let mut failures = 0;
    let mut rows = Vec::new();
    for (path, stored) in receipts {
        let row = match stored {
            None => Row {
                grant: None,
                file: Some(path.display().to_string()),
                ok: false,
                proof: None,
                why: Some(NotProven::Unreadable.to_string()),
            },
            Some(stored) => {
                let result = prove(&stored, log.as_ref(), args.dir.as_deref());
                Row {
                    grant: Some(stored.grant.to_string()),
                    file: None,
                    ok: result.is_ok(),
                    proof: result.as_ref().ok().cloned(),
                    why: result.err().map(|e| e.to_string()),
                }
            }
        };
        if !row.ok {
            failures += 1;
        }
        rows.push(row);
    }
    if args.json {
        super::super::print_json(&rows)?;
    } else {
        for row in &rows {
            let name = row.grant.as_deref().or(row.file.as_deref()).unwrap_or("?");
            match (&row.proof, &row.why) {
                (Some(proof), _) => crate::outln!("{name}: proven {proof}")?,
                (None, why) => {
                    crate::outln!("{name}: NOT PROVEN: {}", why.as_deref().unwrap_or(""))?
                }
            }
        }
    }
    if failures > 0 {
        return Err(CliError::new(
            ErrorKind::Defect,
            format!("{failures} receipt(s) not proven"),
        ));
    }
    Ok(())
}
