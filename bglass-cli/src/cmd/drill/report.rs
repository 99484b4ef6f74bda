//! `bglass drill report`: the scorecard of a live drill, from copies of the proxies' logs.

use bglass_core::audit::event::Event;
use bglass_core::drill::fromlog::{ProxyLog, accesses_from_log, audit_check};
use bglass_core::drill::{DrillInfo, Scorecard};
use bglass_core::id::DrillId;
use bglass_core::keys::PublicKey;
use bglass_core::scenario::Expectations;
use bglass_drill::load::load;
use bglass_drill::logs::read_log;
use bglass_drill::report::{not_met, to_text, write_reports};

use super::super::print_json;
use crate::cli::DrillReportArgs;
use crate::error::{CliError, CliResult, ErrorKind};

/// `bglass drill report`: the scorecard of a live drill from copies of the proxies' logs.
pub(super) fn run(args: &DrillReportArgs) -> CliResult {
    let drill = DrillId::new(&args.drill).map_err(CliError::user)?;
    let (expect, scenario) = match &args.scenario {
        Some(p) => {
            let loaded = load(p)?;
            (loaded.scenario.expect.clone(), Some(loaded.scenario))
        }
        None => (Expectations::default(), None),
    };
    let (logs, mut all, notes) = read_logs(args)?;
    all.sort_by_key(|(_, e)| e.time_ms);
    let start = all
        .iter()
        .find(|(_, e)| {
            e.drill.as_deref() == Some(drill.as_str())
                && matches!(
                    e.event,
                    bglass_core::audit::event::EventKind::DrillStart { .. }
                )
        })
        .map(|(_, e)| e)
        .ok_or_else(|| CliError::user(format!("drill {drill} does not start in these logs")))?;
    let started_ms = start.time_ms;
    let plan = match &start.event {
        bglass_core::audit::event::EventKind::DrillStart { plan, .. } => plan.clone(),
        _ => None,
    };
    let first_proxy = logs.first().map(|l| l.check.proxy.clone());
    let mut accesses = accesses_from_log(&all, drill.as_str(), started_ms, first_proxy.as_deref());
    let audit = audit_check(&logs, drill.as_str(), &mut accesses);
    let end_ms = all
        .iter()
        .filter(|(_, e)| e.drill.as_deref() == Some(drill.as_str()))
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
        id: drill.to_string(),
        scenario: plan
            .as_ref()
            .map(|p| p.scenario.to_string())
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
            .map(|s| s.down.iter().map(|d| d.value.to_string()).collect())
            .unwrap_or_default(),
        proxies: logs.iter().map(|l| l.check.proxy.clone()).collect(),
        participants: participants.len() as u64,
        approvers: 0,
        duration_ms: plan.as_ref().map_or(0, |p| p.duration_ms),
        notes,
    };
    let faults = scenario.map(|s| s.faults).unwrap_or_default();
    let card = Scorecard::compute(info, &tools, accesses, faults, audit, &expect);
    if let Some(out) = &args.out {
        write_reports(out, &card)?;
    }
    if args.json {
        print_json(&card)?;
    } else {
        crate::out!("{}", to_text(&card))?;
    }
    if card.passed { Ok(()) } else { Err(not_met()) }
}

/// The logs read, every event of them (with its index), and notes for the report.
type Logs = (Vec<ProxyLog>, Vec<(u64, Event)>, Vec<String>);

/// The logs given, each verified (against its `--key`, or the key its first entry
/// records, which a note then says), their events in time order, and the report's notes.
fn read_logs(args: &DrillReportArgs) -> CliResult<Logs> {
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
    let mut logs = Vec::new();
    let mut all = Vec::new();
    let mut notes = vec![
        "Built from the proxies' audit logs: times are the proxies' clocks; time to access runs from the request to the first authorised use recorded.".to_owned(),
    ];
    for (i, dir) in args.logs.iter().enumerate() {
        let given = keys.get(i).copied();
        let read = read_log(&dir.display().to_string(), dir, given);
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
    Ok((logs, all, notes))
}
