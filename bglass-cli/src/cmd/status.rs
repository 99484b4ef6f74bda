//! `bglass status`: each proxy, who you are to it, its log, and its services' health.

use std::path::Path;

use bglass_core::api::StatusView;

use super::{block_on, print_json};
use crate::cli::JsonArgs;
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult, ErrorKind};

/// Runs `bglass status`.
pub fn run(config: Option<&Path>, args: JsonArgs) -> CliResult {
    let mut session = Session::open(config)?;
    session.verbose = false;
    block_on(async move {
        let mut docs = Vec::new();
        let mut reachable = 0;
        for i in 0..session.conns.len() {
            let url = session.conns[i].entry.url.clone();
            match session.call_with(&Call::get("/v1/status"), Some(i)).await {
                Ok((value, _)) => {
                    reachable += 1;
                    let status: StatusView =
                        serde_json::from_value(value.clone()).map_err(CliError::internal)?;
                    docs.push(serde_json::json!({ "url": url, "status": value }));
                    if !args.json {
                        crate::outln!(
                            "{} ({url}): you are {} [{}]; catalog {}; audit log {} entries{}",
                            status.proxy,
                            status.you,
                            status.roles.join(", "),
                            &status.catalog[..12.min(status.catalog.len())],
                            status.log_size,
                            status
                                .audit_failure
                                .as_ref()
                                .map(|f| format!("; AUDIT FAILURE: {f}"))
                                .unwrap_or_default()
                        )?;
                        for rejected in [&status.catalog_rejected, &status.roster_rejected]
                            .into_iter()
                            .flatten()
                        {
                            crate::outln!(
                                "  last reload REJECTED (still serving the previous version): {rejected}"
                            )?;
                        }
                        for s in &status.services {
                            crate::outln!(
                                "  {:<18} {:<4} {:<8} approvals {}{}{}",
                                s.name,
                                s.kind,
                                s.health,
                                s.approvals,
                                if s.emergency_bypass {
                                    ", emergency bypass"
                                } else {
                                    ""
                                },
                                s.detail
                                    .as_ref()
                                    .map(|d| format!(" ({d})"))
                                    .unwrap_or_default()
                            )?;
                        }
                    }
                }
                Err(e) => {
                    docs.push(serde_json::json!({ "url": url, "error": e.to_string() }));
                    if !args.json {
                        crate::outln!("{url}: UNAVAILABLE: {e}")?;
                    }
                }
            }
        }
        if args.json {
            print_json(&docs)?;
        }
        if reachable == 0 {
            return Err(CliError::new(ErrorKind::Unavailable, "no proxy answered"));
        }
        Ok(())
    })
}
