//! `bglass catalog check [FILE]`: validate a catalog and list its services.
//!
//! Exit 0 when valid; otherwise exit 1 with `file:line:column: rule`.

use bglass_core::catalog::{Catalog, CatalogProblem, Service, ServiceKind};
use bglass_core::source::SourceProblem;
use serde_json::json;

use crate::cli::CatalogCheckArgs;
use crate::error::{CliError, CliResult};

/// Runs `bglass catalog check`.
pub fn check(args: CatalogCheckArgs) -> CliResult {
    let catalog = Catalog::load(&args.file).map_err(|e| {
        // Only a problem inside the file has a position to point at.
        let hint = match (&e.position, &e.problem) {
            (Some(_), _) => "fix the catalog at the position shown; nothing was loaded",
            (None, CatalogProblem::Source(SourceProblem::Io(_))) => {
                "check the path: the file could not be read, so nothing was checked"
            }
            (None, _) => "fix the catalog as described; nothing was loaded",
        };
        CliError::user(e).with_hint(hint)
    })?;
    if args.json {
        let services: Vec<serde_json::Value> = catalog.services().iter().map(to_json).collect();
        let doc = json!({
            "file": args.file.display().to_string(),
            "valid": true,
            "digest": format!("sha256:{}", catalog.digest()),
            "services": services,
        });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| CliError::internal(format!("encoding JSON failed: {e}")))?;
        crate::outln!("{text}")?;
        return Ok(());
    }
    crate::out!("{}", table(&catalog))?;
    crate::outln!(
        "\n{}: valid, {} services, sha256:{}",
        args.file.display(),
        catalog.services().len(),
        &catalog.digest()[..16]
    )?;
    Ok(())
}

fn access_column(s: &Service) -> String {
    let mut text = match s.approvals {
        0 => "open".to_owned(),
        1 => "1 approval".to_owned(),
        n => format!("{n} approvals"),
    };
    if let Some(e) = &s.emergency {
        text.push_str(&format!(", bypass {}", e.ttl));
    }
    text
}

fn check_column(s: &Service) -> String {
    match &s.kind {
        ServiceKind::Http { health, inject } => {
            let inject = match inject {
                Some(i) => format!("; injects {}", i.header),
                None => String::new(),
            };
            format!("GET {} -> {}{inject}", health.path, health.expect_status)
        }
        ServiceKind::Ssh {
            principals, record, ..
        } => format!(
            "host key pinned; as {}{}",
            principals.join(","),
            if *record { "; recorded" } else { "" }
        ),
        ServiceKind::Tcp { probe } => format!("probe {}", probe.name()),
        _ => String::new(),
    }
}

fn table(catalog: &Catalog) -> String {
    let header = ["NAME", "KIND", "UPSTREAM", "TTL", "ACCESS", "CHECK"];
    let rows: Vec<[String; 6]> = catalog
        .services()
        .iter()
        .map(|s| {
            [
                s.name.to_string(),
                s.kind_name().to_owned(),
                s.upstream.to_string(),
                format!("{}/{}", s.default_ttl, s.max_ttl),
                access_column(s),
                check_column(s),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

fn to_json(s: &Service) -> serde_json::Value {
    let mut v = json!({
        "name": s.name,
        "kind": s.kind_name(),
        "description": s.description,
        "upstream": s.upstream.to_string(),
        "default_ttl": s.default_ttl,
        "max_ttl": s.max_ttl,
        "approvals": s.approvals,
        "emergency_bypass": s.emergency.is_some(),
        "emergency_ttl": s.emergency.map(|e| e.ttl),
    });
    if let Some(tls) = &s.upstream.tls {
        v["upstream_pin"] = json!(tls.pin.to_string());
        v["upstream_server_name"] = json!(tls.server_name);
    }
    match &s.kind {
        ServiceKind::Http { health, inject } => {
            v["health"] = json!({ "path": health.path, "expect_status": health.expect_status });
            v["inject"] = match inject {
                Some(i) => json!({ "header": i.header, "secret": i.secret, "format": i.format }),
                None => serde_json::Value::Null,
            };
        }
        ServiceKind::Ssh {
            principals,
            host_key,
            permit_port_forwarding,
            permit_agent_forwarding,
            share_principals,
            record,
        } => {
            v["principals"] = json!(principals);
            v["record"] = json!(record);
            v["share_principals"] = json!(share_principals);
            v["host_key"] = json!(host_key);
            v["permit_port_forwarding"] = json!(permit_port_forwarding);
            v["permit_agent_forwarding"] = json!(permit_agent_forwarding);
        }
        ServiceKind::Tcp { probe } => v["probe"] = json!(probe.name()),
        _ => {}
    }
    v
}
