//! `bglass drill join`: a participant's checklist of the running drill, probe by probe.

use std::path::Path;
use std::time::{Duration, Instant};

use bglass_core::api::{ServiceType, StatusView};
use bglass_core::drill::LivePlan;
use bglass_core::timestamp;
use bglass_drill::participant::{self, Plan, SshProbe, Target, TargetKind};

use super::super::{block_on, print_json};
use super::running_drill;
use crate::cli::JsonArgs;
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult, ErrorKind};

/// `bglass drill join`: the checklist of the running drill, probe by probe.
pub(super) fn run(config: Option<&Path>, args: &JsonArgs) -> CliResult {
    run_in(Session::open(config)?, args)
}

/// `bglass drill join` on a session already open (`bglass tui` hands its terminal over).
pub fn run_in(mut session: Session, args: &JsonArgs) -> CliResult {
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
        let status: StatusView = serde_json::from_value(value).map_err(|e| {
            CliError::internal(format!(
                "the proxy's status names what this bglass cannot read ({e}): a service kind or probe from a newer bglass? Nothing was probed"
            ))
        })?;
        let targets = targets(&plan, &status)?;
        let first = session
            .conns
            .first()
            .and_then(|c| c.record.as_ref())
            .map(|r| r.id.clone());
        let probe = Plan {
            drill: plan.drill.clone(),
            start,
            deadline,
            emergency: false,
            ssh: SshProbe::Login {
                user: None,
                world: false,
            },
        };
        let who = session.identity.id.to_string();
        let mut results = Vec::new();
        for service in &targets {
            let offset = bglass_drill::ms_since(start);
            // Client-side faults: act as if a skipped proxy were unreachable.
            let skipped: Vec<usize> = session
                .conns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.record.as_ref().is_some_and(|r| plan.skips(&r.id, offset)))
                .map(|(i, _)| i)
                .collect();
            let mut removed = Vec::new();
            for i in skipped.iter().rev() {
                removed.push((*i, session.conns.remove(*i)));
            }
            let a = participant::access(&mut session, &who, first.as_ref(), service, &probe).await;
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

/// The plan's tools as the proxy's catalog describes them (a tool the catalog lacks is
/// left out: the proxy refuses a drill naming one). A TCP tool without a probe is refused
/// rather than probed by a guess.
fn targets(plan: &LivePlan, status: &StatusView) -> CliResult<Vec<Target>> {
    let mut targets = Vec::new();
    for name in &plan.services {
        let Some(s) = status.services.iter().find(|s| s.name == *name) else {
            continue;
        };
        let kind = match (s.kind, s.probe) {
            (ServiceType::Http, _) => TargetKind::Http,
            (ServiceType::Ssh, _) => TargetKind::Ssh,
            (ServiceType::Tcp, Some(probe)) => TargetKind::Tcp(probe),
            (kind, _) => {
                return Err(CliError::internal(format!(
                    "the proxy's status gives {kind} service {name} no probe this bglass knows: nothing was probed"
                )));
            }
        };
        targets.push(Target {
            name: s.name.clone(),
            kind,
            path: s.health_path.clone().unwrap_or_else(|| "/".to_owned()),
            emergency: s.emergency_bypass,
        });
    }
    Ok(targets)
}
