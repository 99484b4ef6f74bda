//! `bglass audit prove [DIR]`: check the receipts of your own grants — alone (signed
//! checkpoint and inclusion proof), and against a copied log when one is given.

use std::path::Path;

use bglass_core::audit::checkpoint;
use bglass_core::audit::verify::verify_dir;
use serde_json::json;

use crate::cli::AuditProveArgs;
use crate::config;
use crate::error::{CliError, CliResult, ErrorKind};
use crate::store::Store;

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
        let Some(stored) = stored else {
            failures += 1;
            rows.push(json!({ "file": path.display().to_string(), "ok": false, "why": "unreadable receipt" }));
            continue;
        };
        let origin = checkpoint::origin(&stored.proxy);
        let mut result = stored
            .receipt
            .verify(&origin, &stored.key, None)
            .map(|c| {
                format!(
                    "in {} at index {} (checkpoint of size {})",
                    stored.proxy, stored.receipt.index, c.size
                )
            })
            .map_err(|e| e.to_string());
        if let (Ok(_), Some(report), Some(dir)) = (&result, &log, &args.dir) {
            // The copied log must be this proxy's, hold the entry, and agree with the checkpoint.
            if report.proxy != stored.proxy {
                result = Err(format!(
                    "the log in {} is {}'s, not {}'s",
                    dir.display(),
                    report.proxy,
                    stored.proxy
                ));
            } else if let Ok(anchor) =
                checkpoint::verify(stored.receipt.checkpoint.as_bytes(), &origin, &stored.key)
            {
                match verify_dir(dir, Some(stored.key)) {
                    Ok(r) if r.entries < anchor.size => {
                        result = Err(format!(
                            "the log holds {} entries, the receipt's checkpoint {}",
                            r.entries, anchor.size
                        ));
                    }
                    Ok(_) => {}
                    Err(d) => result = Err(d.to_string()),
                }
            }
        }
        match result {
            Ok(what) => rows.push(json!({ "grant": stored.grant, "ok": true, "proof": what })),
            Err(why) => {
                failures += 1;
                rows.push(json!({ "grant": stored.grant, "ok": false, "why": why }));
            }
        }
    }
    if args.json {
        super::super::print_json(&rows)?;
    } else {
        for row in &rows {
            let grant = row["grant"]
                .as_str()
                .or(row["file"].as_str())
                .unwrap_or("?");
            match row["ok"].as_bool() {
                Some(true) => {
                    crate::outln!("{grant}: proven {}", row["proof"].as_str().unwrap_or(""))?
                }
                _ => crate::outln!("{grant}: NOT PROVEN: {}", row["why"].as_str().unwrap_or(""))?,
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
