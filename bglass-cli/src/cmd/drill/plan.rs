//! `bglass drill plan`: what a scenario will do, without running anything.

use bglass_core::drill::percent;
use bglass_core::duration::ms_text;
use bglass_core::scenario::Expectations;
use bglass_drill::live::client_faults;
use bglass_drill::load::load;
use bglass_drill::world;

use super::super::print_json;
use crate::cli::DrillPlanArgs;
use crate::error::CliResult;

/// `bglass drill plan`.
pub(super) fn run(args: &DrillPlanArgs) -> CliResult {
    let loaded = load(&args.scenario)?;
    let s = &loaded.scenario;
    let services = s.services(&loaded.catalog);
    let forced = world::forced_links(s, &loaded.catalog, loaded.production.as_ref());
    if args.json {
        return print_json(&serde_json::json!({
            "scenario": s.name,
            "description": s.description,
            "digest": s.digest,
            "catalog": loaded.catalog_name,
            "down": s.down.iter().map(|d| &d.value).collect::<Vec<_>>(),
            "duration_ms": s.duration.as_ms(),
            "proxies": s.proxies,
            "participants": s.participants.count,
            "approvers": s.participants.approvers,
            "arrival_ms": s.participants.arrival.as_ms(),
            "emergency": s.participants.emergency,
            "services": services,
            "accesses": u64::from(s.participants.count) * services.len() as u64,
            "faults": s.faults,
            "forced_down": forced.iter().map(|(l, f)| serde_json::json!({
                "link": l.to_string(), "dependency": f.dependency, "why": f.why
            })).collect::<Vec<_>>(),
            "live_client_faults": client_faults(s),
        }));
    }
    let mut out = String::new();
    out.push_str(&format!("Scenario {} — {}\n", s.name, s.description));
    out.push_str(&format!(
        "  file {} (sha256 {})\n",
        s.path.display(),
        &s.digest[..16]
    ));
    out.push_str(&format!("  catalog: {}\n", loaded.catalog_name));
    if !s.down.is_empty() {
        let names: Vec<&str> = s.down.iter().map(|d| d.value.as_str()).collect();
        out.push_str(&format!(
            "Down for the whole drill: {} (declared in {})\n",
            names.join(", "),
            s.production
                .as_ref()
                .map_or_else(|| "-".to_owned(), |p| p.display().to_string())
        ));
    }
    for (link, f) in &forced {
        out.push_str(&format!(
            "  !! {link} will be down: it depends on {} ({})\n",
            f.dependency, f.why
        ));
    }
    out.push_str(&format!(
        "World: proxies {} (participants try them in this order); drill length {}\n",
        s.proxies
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(" → "),
        ms_text(s.duration.as_ms())
    ));
    out.push_str(&format!(
        "Participants: {} ({} approvers), arriving over {}{}\n",
        s.participants.count,
        s.participants.approvers,
        ms_text(s.participants.arrival.as_ms()),
        if s.participants.emergency {
            ", asking for the emergency bypass where allowed"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "Each reaches {} tool(s): {} accesses in all\n",
        services.len(),
        u64::from(s.participants.count) * services.len() as u64
    ));
    for name in &services {
        if let Some(svc) = loaded.catalog.get(name) {
            out.push_str(&format!(
                "  {:<18} {:<4} {}\n",
                name,
                svc.kind_name(),
                match svc.approvals {
                    0 => "no approval".to_owned(),
                    1 => "1 approval (two-person rule)".to_owned(),
                    n => format!("{n} approvals"),
                }
            ));
        }
    }
    if s.faults.is_empty() {
        out.push_str("Faults: none\n");
    } else {
        out.push_str("Faults (timeline from the drill's start):\n");
        let mut faults: Vec<_> = s.faults.iter().collect();
        faults.sort_by_key(|f| (f.start.as_ms(), f.end.as_ms()));
        for f in faults {
            out.push_str(&format!(
                "  {:>7} – {:<7} {} {}{}\n",
                ms_text(f.start.as_ms()),
                ms_text(f.end.as_ms()),
                f.link,
                f.kind.describe(),
                f.note
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            ));
        }
    }
    let client = client_faults(s);
    if !client.is_empty() {
        out.push_str("In a live drill, participants skip (bglass cannot cut real links):\n");
        for c in &client {
            out.push_str(&format!(
                "  {} from {} to {}\n",
                c.proxy,
                ms_text(c.start_ms),
                ms_text(c.end_ms)
            ));
        }
    }
    out.push_str(&expectations(&s.expect));
    out.push_str(&format!(
        "\nRun it: bglass drill simulate {}\n",
        args.scenario.display()
    ));
    crate::out!("{out}")
}

/// The scenario's expectations, a line each.
fn expectations(e: &Expectations) -> String {
    let mut out = String::new();
    out.push_str("Expectations:\n");
    if let Some(r) = e.success_rate {
        out.push_str(&format!("  success rate >= {}\n", percent(r)));
    }
    if let Some(t) = e.tta_p95 {
        out.push_str(&format!("  time to access p95 <= {t}\n"));
    }
    if let Some(t) = e.approval_p95 {
        out.push_str(&format!("  approval latency p95 <= {t}\n"));
    }
    out.push_str(&format!("  unaudited accesses <= {}\n", e.unaudited));
    if let Some(f) = e.failover {
        out.push_str(if f {
            "  failover to another proxy seen\n"
        } else {
            "  no failover\n"
        });
    }
    for t in &e.tools {
        out.push_str(&format!(
            "  {}:{}{}\n",
            t.name.value,
            t.success_rate
                .map(|r| format!(" success >= {}", percent(r)))
                .unwrap_or_default(),
            t.tta_p95
                .map(|d| format!(" p95 <= {d}"))
                .unwrap_or_default()
        ));
    }
    out
}
