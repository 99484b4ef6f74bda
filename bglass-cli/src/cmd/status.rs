//! `bglass status`: each proxy, who you are to it, its log, and its services' health.

use std::path::Path;

use bglass_client::style::{self, Cell, Style, state_style};
use bglass_core::api::StatusView;
use bglass_core::duration::elapsed_text;
use bglass_core::size::ByteSize;
use bglass_core::timestamp;

use super::{block_on, print_json};
use crate::cli::JsonArgs;
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult, ErrorKind};

/// What `bglass status` says of a proxy's audit log and disk, loudest first.
/// The last canary result of a service: `canary ok 2m ago`, or where it broke.
fn canary_note(c: &bglass_core::api::CanaryStatus, now_ms: u64) -> String {
    let ago = |ms: u64| elapsed_text(now_ms.saturating_sub(ms));
    if c.probe.ok {
        format!("canary ok {} ago", ago(c.at_ms))
    } else {
        format!(
            "canary BROKEN at {} {} ago ({}){}",
            c.probe.step.as_deref().unwrap_or("?"),
            ago(c.at_ms),
            c.probe.detail,
            c.last_ok_ms
                .map(|ok| format!("; last ok {} ago", ago(ok)))
                .unwrap_or_default()
        )
    }
}

fn health_lines(status: &StatusView) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(failure) = &status.audit_failure {
        let since = status
            .audit_failed_since_ms
            .map(|ms| format!(" since {}", timestamp::format_ms(ms)))
            .unwrap_or_default();
        lines.push(format!(
            "AUDIT LOG FAILED{since}: {failure}. This proxy refuses all access and retries by itself; use another proxy meanwhile"
        ));
    }
    if let Some(r) = &status.audit_last_recovery {
        lines.push(format!(
            "audit log last failed at {} and recovered after {} ({}); {} failure(s) since the proxy started",
            timestamp::format_ms(r.failed_ms),
            elapsed_text(r.recovered_ms.saturating_sub(r.failed_ms)),
            r.error,
            status.audit_failures
        ));
    }
    if let Some(s) = &status.storage {
        let threshold = ByteSize::from_bytes(s.threshold_bytes);
        lines.push(match (s.free_bytes, s.low) {
            (Some(free), true) => format!(
                "LOW DISK SPACE: {} free under the data directory, below the warning threshold of {threshold}: the audit log may soon fail, and access is then refused",
                ByteSize::from_bytes(free)
            ),
            (Some(free), false) => format!(
                "data directory: {} free (warning below {threshold})",
                ByteSize::from_bytes(free)
            ),
            (None, _) => format!(
                "data directory: free space unknown{}",
                s.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        });
    }
    lines
}

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
                            "{} ({url}): you are {} [{}]; catalog {}; audit log {} entries",
                            status.proxy,
                            status.you,
                            status.roles.join(", "),
                            &status.catalog[..12.min(status.catalog.len())],
                            status.log_size,
                        )?;
                        for line in health_lines(&status) {
                            let loud = line.starts_with("AUDIT LOG FAILED")
                                || line.starts_with("LOW DISK SPACE");
                            let line = if loud {
                                style::paint(&line, Style::Bad)
                            } else {
                                line
                            };
                            crate::outln!("  {line}")?;
                        }
                        for rejected in [&status.catalog_rejected, &status.roster_rejected]
                            .into_iter()
                            .flatten()
                        {
                            crate::outln!(
                                "  last reload {} (still serving the previous version): {rejected}",
                                style::paint("REJECTED", Style::Bad)
                            )?;
                        }
                        let rows: Vec<Vec<Cell>> = status
                            .services
                            .iter()
                            .map(|s| {
                                let health = s.health.to_string();
                                let mut notes = Vec::new();
                                if s.emergency_bypass {
                                    notes.push("emergency bypass".to_owned());
                                }
                                if let Some(d) = &s.detail {
                                    notes.push(d.clone());
                                }
                                if let Some(c) = &s.canary {
                                    notes.push(canary_note(c, timestamp::now_ms()));
                                }
                                vec![
                                    Cell::plain(s.name.to_string()),
                                    Cell::plain(s.kind.to_string()),
                                    Cell::styled(health.clone(), state_style(&health)),
                                    Cell::plain(format!("approvals {}", s.approvals)),
                                    Cell::plain(notes.join("; ")),
                                ]
                            })
                            .collect();
                        for line in style::table(&[], &rows, "  ") {
                            crate::outln!("{line}")?;
                        }
                    }
                }
                Err(e) => {
                    docs.push(serde_json::json!({ "url": url, "error": e.to_string() }));
                    if !args.json {
                        crate::outln!("{url}: {}: {e}", style::paint("UNAVAILABLE", Style::Bad))?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bglass_core::api::{AuditRecoveryView, StorageStatus};

    fn view() -> StatusView {
        serde_json::from_value(serde_json::json!({
            "proxy": "proxy-a", "version": "0.1.0", "you": "alice", "roles": ["responder"],
            "catalog": "abc", "log_size": 3, "services": []
        }))
        .unwrap()
    }

    #[test]
    fn a_proxy_that_reports_nothing_of_its_disk_prints_no_health_line() {
        // An older proxy: none of the fields.
        assert!(health_lines(&view()).is_empty());
    }

    #[test]
    fn a_failed_log_low_disk_and_the_last_recovery_are_said_loudly() {
        let mut v = view();
        v.audit_failure = Some("No space left on device (os error 28)".to_owned());
        v.audit_failed_since_ms = Some(1_700_000_000_000);
        v.audit_failures = 2;
        v.audit_last_recovery = Some(AuditRecoveryView {
            failed_ms: 1_699_999_000_000,
            recovered_ms: 1_699_999_090_000,
            error: "Input/output error (os error 5)".to_owned(),
        });
        v.storage = Some(StorageStatus {
            free_bytes: Some(100 << 10),
            threshold_bytes: 512 << 20,
            low: true,
            error: None,
        });
        let lines = health_lines(&v);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "AUDIT LOG FAILED since {}: No space left",
                timestamp::format_ms(1_700_000_000_000)
            )) && lines[0].contains("retries by itself"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("recovered after 1m30s") && lines[1].contains("2 failure(s)"),
            "{lines:?}"
        );
        assert!(
            lines[2].starts_with("LOW DISK SPACE: 100 KiB free") && lines[2].contains("512 MiB"),
            "{lines:?}"
        );
    }

    #[test]
    fn free_space_is_shown_when_fine_and_unknown_when_unmeasured() {
        let mut v = view();
        v.storage = Some(StorageStatus {
            free_bytes: Some(3 << 30),
            threshold_bytes: 512 << 20,
            low: false,
            error: None,
        });
        assert_eq!(
            health_lines(&v),
            ["data directory: 3 GiB free (warning below 512 MiB)"]
        );
        v.storage = Some(StorageStatus {
            free_bytes: None,
            threshold_bytes: 512 << 20,
            low: false,
            error: Some("/srv/data: No such file or directory (os error 2)".to_owned()),
        });
        assert_eq!(
            health_lines(&v),
            [
                "data directory: free space unknown (/srv/data: No such file or directory (os error 2))"
            ]
        );
    }
}
