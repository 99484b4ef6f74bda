//! `bglass audit export DIR --format jsonl|csv`: events for SIEMs and spreadsheets.

use std::io::Write;

use bglass_core::audit::report::grants;
use bglass_core::timestamp;
use serde_json::json;

use super::{detail, events, filter};
use crate::cli::{AuditExportArgs, ExportFormat};
use crate::error::{CliError, CliResult};

/// Quotes a CSV field when needed (RFC 4180).
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Runs `bglass audit export`.
pub fn run(args: AuditExportArgs) -> CliResult {
    let filter = filter(&args.filter)?;
    let events = events(&args.source, args.filter.unverified)?;
    let grants = grants(&events);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::closed_pipe()
        } else {
            CliError::user(format!("cannot write the export: {e}"))
        }
    };
    if let ExportFormat::Csv = args.format {
        writeln!(
            out,
            "index,time,proxy,actor,drill,event,service,grant,request,detail"
        )
        .map_err(write_err)?;
    }
    for (index, e) in events.iter().filter(|(_, e)| filter.matches(e, &grants)) {
        match args.format {
            ExportFormat::Jsonl => {
                let line = serde_json::to_string(&json!({ "index": index, "event": e }))
                    .map_err(CliError::internal)?;
                writeln!(out, "{line}").map_err(write_err)?;
            }
            ExportFormat::Csv => {
                let fields = [
                    index.to_string(),
                    timestamp::format_ms(e.time_ms),
                    e.proxy.to_string(),
                    e.actor
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    e.drill.clone().unwrap_or_default(),
                    e.event.type_name().to_owned(),
                    e.event
                        .service()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    e.event.grant().map(ToString::to_string).unwrap_or_default(),
                    e.event
                        .request()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    detail(e),
                ];
                let row: Vec<String> = fields.iter().map(|f| csv(f)).collect();
                writeln!(out, "{}", row.join(",")).map_err(write_err)?;
            }
        }
    }
    out.flush().map_err(write_err)
}
