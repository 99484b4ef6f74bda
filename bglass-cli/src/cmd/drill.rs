//! `bglass drill …`: simulate, plan, deps (for the drill lead and the security team), and
//! the live drill: start, stop, join, report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bglass_core::catalog::Catalog;
use bglass_core::drill::fromlog::{accesses_from_log, audit_check};
use bglass_core::drill::{DrillInfo, LivePlan, Scorecard};
use bglass_core::envelope::Action;
use bglass_core::keys::PublicKey;
use bglass_core::scenario::production::Endpoint;
use bglass_core::scenario::{Expectations, Production};
use bglass_core::timestamp;

use super::{block_on, print_json};
use crate::cli::{
    DrillCommand, DrillDepsArgs, DrillPlanArgs, DrillReportArgs, DrillStartArgs, DrillStopArgs,
    JsonArgs,
};
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult, ErrorKind};
use bglass_core::catalog::TcpProbe;
use bglass_drill::participant::{self, Plan, SshProbe, Target, TargetKind};
use bglass_drill::simulate;
use bglass_drill::world;

/// Runs `bglass drill …`.
pub fn run(config: Option<&Path>, command: DrillCommand) -> CliResult {
    match command {
        DrillCommand::Simulate(args) => {
            let passed = simulate::run(simulate::Options {
                scenario: args.scenario,
                participants: args.participants,
                out: args.out,
                json: args.json,
            })?;
            if passed {
                Ok(())
            } else {
                Err(simulate::not_met())
            }
        }
        DrillCommand::Plan(args) => plan(&args),
        DrillCommand::Deps(args) => deps(&args),
        DrillCommand::Start(args) => start(config, &args),
        DrillCommand::Stop(args) => stop(config, &args),
        DrillCommand::Join(args) => join(config, &args),
        DrillCommand::Report(args) => report(&args),
        DrillCommand::SshLogin => participant::ssh_login_child(),
    }
}

fn secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// `bglass drill plan`.
fn plan(args: &DrillPlanArgs) -> CliResult {
    let loaded = simulate::load(&args.scenario)?;
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
            "live_client_faults": simulate::client_faults(s),
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
        s.proxies.join(" → "),
        secs(s.duration.as_ms())
    ));
    out.push_str(&format!(
        "Participants: {} ({} approvers), arriving over {}{}\n",
        s.participants.count,
        s.participants.approvers,
        secs(s.participants.arrival.as_ms()),
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
                secs(f.start.as_ms()),
                secs(f.end.as_ms()),
                f.link,
                f.kind.describe(),
                f.note
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            ));
        }
    }
    let client = simulate::client_faults(s);
    if !client.is_empty() {
        out.push_str("In a live drill, participants skip (bglass cannot cut real links):\n");
        for c in &client {
            out.push_str(&format!(
                "  {} from {} to {}\n",
                c.proxy,
                secs(c.start_ms),
                secs(c.end_ms)
            ));
        }
    }
    out.push_str("Expectations:\n");
    let e = &s.expect;
    if let Some(r) = e.success_rate {
        out.push_str(&format!("  success rate >= {:.1}%\n", r * 100.0));
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
                .map(|r| format!(" success >= {:.1}%", r * 100.0))
                .unwrap_or_default(),
            t.tta_p95
                .map(|d| format!(" p95 <= {d}"))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "\nRun it: bglass drill simulate {}\n",
        args.scenario.display()
    ));
    crate::out!("{out}")
}

/// One endpoint the break-glass path needs.
#[derive(Debug, serde::Serialize)]
struct PathEndpoint {
    /// Who needs it (`proxy primary → tool grafana`).
    user: String,
    /// The endpoint as written.
    endpoint: String,
    /// The dependencies it matches, with why.
    depends_on: Vec<(String, String)>,
}

/// `bglass drill deps`.
fn deps(args: &DrillDepsArgs) -> CliResult {
    let production = Production::load(&args.production).map_err(CliError::user)?;
    let mut found: Vec<(String, Endpoint)> = Vec::new();
    let mut catalogs: Vec<PathBuf> = args.services.iter().cloned().collect();
    for path in &args.proxy_configs {
        let c = bglass_proxy::config::ProxyConfig::load(path)
            .map_err(|e| CliError::user(e).with_hint("give each proxy's proxy.toml"))?;
        found.push((
            format!("responders → proxy {} (listen)", c.id),
            Endpoint::Addr(c.listen),
        ));
        if let Some(m) = c.metrics_listen {
            found.push((
                format!("monitoring → proxy {} (metrics)", c.id),
                Endpoint::Addr(m),
            ));
        }
        for n in &c.notify {
            found.push((
                format!("proxy {} → notifications ({})", c.id, n.url),
                Endpoint::Addr(n.addr),
            ));
        }
        if args.services.is_none() && !catalogs.contains(&c.services) {
            catalogs.push(c.services.clone());
        }
    }
    for path in &catalogs {
        let catalog = Catalog::load(path).map_err(CliError::user)?;
        for s in catalog.services() {
            found.push((
                format!("proxies → tool {} ({})", s.name, s.kind_name()),
                Endpoint::Addr(s.upstream.addr),
            ));
        }
    }
    for path in &args.cli_configs {
        let c = crate::config::Config::load(path).map_err(crate::config::config_error)?;
        for p in &c.proxies {
            let host = p
                .url
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .rsplit_once(':')
                .map(|(h, _)| h.to_owned())
                .unwrap_or_default();
            let endpoint = if host.parse::<std::net::IpAddr>().is_ok() {
                Endpoint::Addr(p.addr)
            } else {
                Endpoint::PinnedName { host, addr: p.addr }
            };
            found.push((
                format!("responder {} → proxy {}", c.responder, p.url),
                endpoint,
            ));
        }
    }
    if found.is_empty() {
        return Err(CliError::user(
            "nothing to check: give --proxy-config, --services and/or --cli-config",
        ));
    }
    let list: Vec<PathEndpoint> = found
        .iter()
        .map(|(user, e)| PathEndpoint {
            user: user.clone(),
            endpoint: e.to_string(),
            depends_on: production
                .matches(e)
                .into_iter()
                .map(|(d, why)| (d.name.clone(), why))
                .collect(),
        })
        .collect();
    let flagged = list.iter().filter(|e| !e.depends_on.is_empty()).count();
    if args.json {
        print_json(&serde_json::json!({ "endpoints": list, "flagged": flagged }))?;
    } else {
        let mut out = format!(
            "{} endpoint(s) on the break-glass path, checked against {} ({} declared dependencies):\n",
            list.len(),
            args.production.display(),
            production.dependencies.len()
        );
        for e in &list {
            let mark = if e.depends_on.is_empty() { "ok" } else { "!!" };
            out.push_str(&format!("  {mark} {:<26} {}\n", e.endpoint, e.user));
            for (d, why) in &e.depends_on {
                out.push_str(&format!("       depends on {d}: {why}\n"));
            }
        }
        out.push_str(&if flagged == 0 {
            "No endpoint depends on a declared production dependency.\n".to_owned()
        } else {
            format!(
                "{flagged} endpoint(s) depend on production systems the break-glass path must survive: fix them before the outage does.\n"
            )
        });
        crate::out!("{out}")?;
    }
    if flagged > 0 {
        return Err(CliError::new(
            ErrorKind::DrillFailed,
            format!("{flagged} hidden dependenc(ies) on the break-glass path"),
        ));
    }
    Ok(())
}

/// `bglass drill start`: the same plan on every proxy that answers.
fn start(config: Option<&Path>, args: &DrillStartArgs) -> CliResult {
    let loaded = simulate::load(&args.scenario)?;
    let plan = simulate::live_plan(&loaded, simulate::drill_id(&loaded.scenario.name), true);
    let mut session = Session::open(config)?;
    block_on(async move {
        let mut started = Vec::new();
        let mut failures = Vec::new();
        let mut refusal = None;
        for i in 0..session.conns.len() {
            match session
                .call_with(
                    &Call::post("/v1/drill/start", Action::DrillStart(plan.clone())),
                    Some(i),
                )
                .await
            {
                Ok(_) => started.push(session.conns[i].entry.url.clone()),
                Err(e) => {
                    failures.push(format!("{}: {e}", session.conns[i].entry.url));
                    if e.kind() == ErrorKind::Denied {
                        refusal.get_or_insert(e);
                    }
                }
            }
        }
        if started.is_empty() {
            // A refusal (role, a drill already running) says more than "unavailable".
            return Err(refusal.unwrap_or_else(|| {
                CliError::new(
                    ErrorKind::Unavailable,
                    format!("no proxy started the drill: {}", failures.join("; ")),
                )
            }));
        }
        if args.json {
            return print_json(&plan);
        }
        crate::outln!(
            "Drill {} started on {} ({} s); participants run: bglass drill join",
            plan.drill,
            started.join(", "),
            plan.duration_ms / 1000
        )?;
        for f in failures {
            eprintln!("bglass: not started on {f}");
        }
        crate::outln!("Stop it with: bglass drill stop {}", plan.drill)
    })
}

async fn running_drill(session: &mut Session) -> CliResult<(LivePlan, u64, usize)> {
    let (value, index) = session.call(&Call::get("/v1/drill")).await?;
    let plan: LivePlan =
        serde_json::from_value(value["plan"].clone()).map_err(CliError::internal)?;
    let started = value["started_ms"].as_u64().unwrap_or(0);
    Ok((plan, started, index))
}

/// `bglass drill stop`.
fn stop(config: Option<&Path>, args: &DrillStopArgs) -> CliResult {
    let mut session = Session::open(config)?;
    block_on(async move {
        let id = match &args.drill {
            Some(id) => id.clone(),
            None => running_drill(&mut session).await?.0.drill,
        };
        let mut stopped = Vec::new();
        for i in 0..session.conns.len() {
            let call = Call::post("/v1/drill/stop", Action::DrillStop { drill: id.clone() });
            match session.call_with(&call, Some(i)).await {
                Ok(_) => stopped.push(session.conns[i].entry.url.clone()),
                Err(e) => eprintln!("bglass: {}: {e}", session.conns[i].entry.url),
            }
        }
        if stopped.is_empty() {
            return Err(CliError::new(
                ErrorKind::Denied,
                format!("drill {id} was not stopped on any proxy"),
            ));
        }
        crate::outln!(
            "Drill {id} stopped on {}. Score it from copies of the logs: bglass drill report {id} --log DIR --key KEY",
            stopped.join(", ")
        )
    })
}

/// `bglass drill join`: the checklist of the running drill, probe by probe.
fn join(config: Option<&Path>, args: &JsonArgs) -> CliResult {
    let mut session = Session::open(config)?;
    block_on(async move {
        let (plan, started_ms, _) = running_drill(&mut session).await?;
        let now = timestamp::now_ms();
        let elapsed = now.saturating_sub(started_ms);
        let start = Instant::now()
            .checked_sub(Duration::from_millis(elapsed))
            .unwrap_or_else(Instant::now);
        let deadline = start + Duration::from_millis(plan.duration_ms);
        // The proxy's catalog decides kinds and probes: its status lists them.
        let (value, _) = session.call(&Call::get("/v1/status")).await?;
        let status: bglass_core::api::StatusView =
            serde_json::from_value(value).map_err(CliError::internal)?;
        let targets: Vec<Target> = plan
            .services
            .iter()
            .filter_map(|name| {
                let s = status.services.iter().find(|s| s.name == *name)?;
                let kind = match s.kind.as_str() {
                    "http" => TargetKind::Http,
                    "ssh" => TargetKind::Ssh,
                    _ => TargetKind::Tcp(match s.probe.as_deref() {
                        Some("postgres") => TcpProbe::Postgres,
                        Some("redis") => TcpProbe::Redis,
                        Some("banner") => TcpProbe::Banner,
                        _ => TcpProbe::Connect,
                    }),
                };
                Some(Target {
                    name: s.name.clone(),
                    kind,
                    path: s.health_path.clone().unwrap_or_else(|| "/".to_owned()),
                    emergency: s.emergency_bypass,
                })
            })
            .collect();
        let first = session
            .conns
            .first()
            .and_then(|c| c.record.as_ref())
            .map(|r| r.id.to_string());
        let probe = Plan {
            drill: plan.drill.clone(),
            start,
            deadline,
            emergency: false,
            ssh: SshProbe::Login { user: None },
        };
        let who = session.identity.id.to_string();
        let mut results = Vec::new();
        for service in &targets {
            let offset = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
            // Client-side faults: act as if a skipped proxy were unreachable.
            let skipped: Vec<usize> = session
                .conns
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.record
                        .as_ref()
                        .is_some_and(|r| plan.skips(r.id.as_str(), offset))
                })
                .map(|(i, _)| i)
                .collect();
            let mut removed = Vec::new();
            for i in skipped.iter().rev() {
                removed.push((*i, session.conns.remove(*i)));
            }
            let a =
                participant::access(&mut session, &who, first.as_deref(), service, &probe).await;
            for (i, conn) in removed.into_iter().rev() {
                session.conns.insert(i, conn);
            }
            if !args.json {
                match &a.failure {
                    None => crate::outln!(
                        "  ok    {:<18} {:>6} ms via {}{}",
                        a.service,
                        a.tta_ms.unwrap_or(0),
                        a.proxy.clone().unwrap_or_default(),
                        if a.failover { " (failover)" } else { "" }
                    )?,
                    Some(f) => crate::outln!("  FAIL  {:<18} {}", a.service, f.cause())?,
                }
            }
            results.push(a);
        }
        let failed = results.iter().filter(|a| !a.ok).count();
        if args.json {
            print_json(&serde_json::json!({ "drill": plan.drill, "accesses": results }))?;
        } else {
            crate::outln!(
                "Drill {}: {} of {} tools reached. Thank you; the drill lead scores it from the audit log.",
                plan.drill,
                results.len() - failed,
                results.len()
            )?;
        }
        if failed > 0 {
            return Err(CliError::new(
                ErrorKind::DrillFailed,
                format!("{failed} tool(s) not reached in the drill"),
            ));
        }
        Ok(())
    })
}

/// `bglass drill report`: the scorecard of a live drill from copies of the proxies' logs.
fn report(args: &DrillReportArgs) -> CliResult {
    let keys: Vec<PublicKey> = args
        .keys
        .iter()
        .map(|k| {
            k.parse()
                .map_err(|e| CliError::user(format!("--key {k}: {e}")))
        })
        .collect::<CliResult<_>>()?;
    if !keys.is_empty() && keys.len() != args.logs.len() {
        return Err(CliError::user(
            "give one --key per --log, in the same order",
        ));
    }
    let (expect, scenario) = match &args.scenario {
        Some(p) => {
            let loaded = simulate::load(p)?;
            (loaded.scenario.expect.clone(), Some(loaded.scenario))
        }
        None => (Expectations::default(), None),
    };
    let mut logs = Vec::new();
    let mut all = Vec::new();
    let mut notes = vec![
        "Built from the proxies' audit logs: times are the proxies' clocks; time to access runs from the request to the first authorised use recorded.".to_owned(),
    ];
    for (i, dir) in args.logs.iter().enumerate() {
        let given = keys.get(i).copied();
        let read = simulate::read_log(&dir.display().to_string(), dir, given);
        if given.is_none() {
            // Without a key from out of band, a log that does not verify even against
            // itself is a defect, not a scorecard.
            let key = read.key.ok_or_else(|| {
                CliError::new(
                    ErrorKind::Defect,
                    format!(
                        "{}: {}",
                        dir.display(),
                        read.log.check.error.clone().unwrap_or_default()
                    ),
                )
            })?;
            notes.push(format!(
                "{} was verified against the key recorded in its own first entry ({key}): give --key, obtained out of band, to rule out a log rewritten under another key.",
                dir.display()
            ));
        }
        all.extend(read.log.events.iter().cloned());
        logs.push(read.log);
    }
    all.sort_by_key(|(_, e)| e.time_ms);
    let start = all
        .iter()
        .find(|(_, e)| {
            e.drill.as_deref() == Some(args.drill.as_str())
                && matches!(
                    e.event,
                    bglass_core::audit::event::EventKind::DrillStart { .. }
                )
        })
        .map(|(_, e)| e)
        .ok_or_else(|| {
            CliError::user(format!("drill {} does not start in these logs", args.drill))
        })?;
    let started_ms = start.time_ms;
    let plan = match &start.event {
        bglass_core::audit::event::EventKind::DrillStart { plan, .. } => plan.clone(),
        _ => None,
    };
    let first_proxy = logs.first().map(|l| l.check.proxy.clone());
    let mut accesses = accesses_from_log(&all, &args.drill, started_ms, first_proxy.as_deref());
    let audit = audit_check(&logs, &args.drill, &mut accesses);
    let end_ms = all
        .iter()
        .filter(|(_, e)| e.drill.as_deref() == Some(args.drill.as_str()))
        .map(|(_, e)| e.time_ms)
        .max()
        .unwrap_or(started_ms);
    let participants: std::collections::BTreeSet<&str> =
        accesses.iter().map(|a| a.participant.as_str()).collect();
    let mut tools: Vec<(String, String)> = Vec::new();
    for a in &accesses {
        if !tools.iter().any(|(n, _)| *n == a.service) {
            tools.push((a.service.clone(), a.kind.clone()));
        }
    }
    let info = DrillInfo {
        id: args.drill.clone(),
        scenario: plan
            .as_ref()
            .map(|p| p.scenario.clone())
            .unwrap_or_default(),
        description: scenario
            .as_ref()
            .map(|s| s.description.clone())
            .unwrap_or_default(),
        scenario_digest: plan.as_ref().map(|p| p.digest.clone()).unwrap_or_default(),
        mode: "live".to_owned(),
        started_ms,
        wall_ms: end_ms.saturating_sub(started_ms),
        down: scenario
            .as_ref()
            .map(|s| s.down.iter().map(|d| d.value.clone()).collect())
            .unwrap_or_default(),
        proxies: logs.iter().map(|l| l.check.proxy.clone()).collect(),
        participants: u32::try_from(participants.len()).unwrap_or(u32::MAX),
        approvers: 0,
        duration_ms: plan.as_ref().map_or(0, |p| p.duration_ms),
        notes,
    };
    let faults = scenario.map(|s| s.faults).unwrap_or_default();
    let card = Scorecard::compute(info, &tools, accesses, faults, audit, &expect);
    if let Some(out) = &args.out {
        simulate::write_reports(out, &card)?;
    }
    if args.json {
        print_json(&card)?;
    } else {
        crate::out!("{}", card.to_text())?;
    }
    if card.passed {
        Ok(())
    } else {
        Err(simulate::not_met())
    }
}
