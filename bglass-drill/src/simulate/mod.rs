//! `bglass drill simulate`: runs a scenario in a world on loopback ([`crate::world`]) and
//! scores it. The drill lead starts the drill on every proxy through the API (so every
//! event is tagged with the drill's id), participants arrive spread over the scenario's
//! arrival window and go through their tools one after another ([`crowd`]), approvers
//! approve by a fixed rotation ([`approvers`]), the timeline switches faults on and off
//! ([`faults`]), and at the end every proxy's log is verified and every access looked up
//! in it.

mod approvers;
mod crowd;
mod faults;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bglass_client::client::{Call, Session};
use bglass_client::config::ProxyEntry;
use bglass_client::error::{CliError, CliResult};
use bglass_core::drill::fromlog::audit_check;
use bglass_core::drill::{DrillInfo, Scorecard};
use bglass_core::envelope::Action;
use bglass_core::id::DrillId;
use bglass_core::keys::PublicKey;
use bglass_core::scenario::MAX_PARTICIPANTS;
use bglass_core::timestamp;

use crate::live::{drill_id, live_plan};
use crate::load::{Loaded, load};
use crate::logs::read_log;
use crate::participant::{Plan, Target};
use crate::report::{to_text, write_reports};
use crate::world::{self, World};

/// What `bglass drill simulate` was asked.
#[derive(Debug)]
pub struct Options {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Overrides the scenario's participant count.
    pub participants: Option<u32>,
    /// Where the reports and the world go.
    pub out: Option<PathBuf>,
    /// Print the scorecard as JSON instead of text.
    pub json: bool,
}

/// A proxy's log, where it is and the key that verifies it, for the drill lead to check.
type LogLine = (String, PathBuf, PublicKey);

/// Runs `bglass drill simulate`; returns whether every expectation held.
pub fn run(options: Options) -> CliResult<bool> {
    let loaded = load(&options.scenario)?;
    let scenario = &loaded.scenario;
    let count = options.participants.unwrap_or(scenario.participants.count);
    if count == 0 || count > MAX_PARTICIPANTS {
        return Err(CliError::user(format!(
            "--participants must be 1-{MAX_PARTICIPANTS}"
        )));
    }
    let approvers = scenario.participants.approvers.min(count);
    let needs = scenario
        .services(&loaded.catalog)
        .iter()
        .filter_map(|s| loaded.catalog.get(s))
        .map(|s| u32::from(s.approvals))
        .max()
        .unwrap_or(0);
    if needs > 0 && approvers < needs + 1 {
        return Err(CliError::user(format!(
            "{count} participants leave {approvers} approvers, but a tool needs {needs} approval(s) besides the requester's: give more participants"
        )));
    }
    let id = drill_id(&scenario.name)?;
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("drill-reports").join(id.as_str()));
    if out.join("world").exists() {
        return Err(CliError::user(format!(
            "{} already holds a drill; give another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(out.join("world"))
        .map_err(|e| CliError::user(format!("{}: {e}", out.display())))?;
    // Each participant holds a few sockets; allow as many files as the hard limit does.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))?;
    let (card, logs) = runtime.block_on(simulate(&loaded, &id, &out, count, approvers))?;
    let (json_path, html_path) = write_reports(&out, &card)?;
    if options.json {
        bglass_client::output::print_json(&card)?;
    } else {
        bglass_client::out!("{}", to_text(&card))?;
        bglass_client::outln!(
            "Reports: {} and {}",
            json_path.display(),
            html_path.display()
        )?;
        for (proxy, dir, key) in &logs {
            bglass_client::outln!(
                "Audit log of {proxy}: bglass audit verify {} --key {key}",
                dir.display()
            )?;
        }
    }
    Ok(card.passed)
}

/// Builds the world, runs the drill in it, takes it down and scores it.
async fn simulate(
    loaded: &Loaded,
    id: &DrillId,
    out: &Path,
    count: u32,
    approvers: u32,
) -> CliResult<(Scorecard, Vec<LogLine>)> {
    let scenario = &loaded.scenario;
    let started_ms = timestamp::now_ms();
    let wall = Instant::now();
    let mut world = world::build(
        scenario,
        &loaded.catalog_text,
        loaded.production.as_ref(),
        &out.join("world"),
        count,
        approvers,
    )
    .await?;
    let services: Vec<Target> = scenario
        .services(&loaded.catalog)
        .iter()
        .filter_map(|s| world.catalog.get(s).and_then(Target::of))
        .collect();
    let tools: Vec<(String, String)> = services
        .iter()
        .map(|t| (t.name.to_string(), t.kind.name().to_owned()))
        .collect();
    let entries = world.entries();

    // The drill lead starts the drill on every proxy. The world's links act out the
    // responder-side faults: nobody needs to skip a proxy.
    let mut lead = Session::in_memory(world.lead.identity()?, &entries)?;
    let plan = live_plan(loaded, id.clone(), false);
    for i in 0..entries.len() {
        lead.call_with(
            &Call::post("/v1/drill/start", Action::DrillStart(plan.clone())),
            Some(i),
        )
        .await
        .map_err(|e| CliError::internal(format!("starting the drill: {e}")))?;
    }

    // The clock starts now: faults, arrivals and deadlines count from here.
    let start = Instant::now();
    let timeline = tokio::spawn(faults::run_timeline(
        world.links.clone(),
        world.forced.keys().cloned().collect(),
        scenario.faults.clone(),
        start,
    ));
    let plan = Plan {
        drill: id.clone(),
        start,
        deadline: start + Duration::from_millis(scenario.duration.as_ms()),
        emergency: scenario.participants.emergency,
        ssh: world.ssh.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let approver_tasks = approvers::spawn(&world, &entries, &stop_rx)?;
    let first = scenario.proxies.first().cloned();
    let arrival = scenario.participants.arrival.as_ms();
    let accesses = crowd::run(&world, &entries, services, &plan, arrival, first).await?;
    let _ = stop_tx.send(true);
    for t in approver_tasks {
        let _ = t.await;
    }
    timeline.abort();

    stop_drill(&mut lead, &world, &entries, id).await;
    let mut notes = world.notes.clone();
    notes.push(world.tool_note());
    notes.extend(link_notes(&world, loaded));
    world.shutdown().await;
    let wall_ms = crate::ms_since(wall);

    let mut list = faults::attribute(accesses, &scenario.faults, &world.forced);
    let (logs, where_logs): (Vec<_>, Vec<LogLine>) = world
        .proxies
        .iter()
        .map(|p| {
            let dir = p.dir.join("data").join("log");
            notes.push(format!("key of {}: {}", p.id, p.key));
            (
                read_log(p.id.as_str(), &dir, Some(p.key)).log,
                (p.id.to_string(), dir, p.key),
            )
        })
        .unzip();
    let audit = audit_check(&logs, id.as_str(), &mut list);
    let info = DrillInfo {
        id: id.to_string(),
        scenario: scenario.name.to_string(),
        description: scenario.description.clone(),
        scenario_digest: scenario.digest.clone(),
        mode: "simulate".to_owned(),
        started_ms,
        wall_ms,
        down: scenario.down.iter().map(|d| d.value.to_string()).collect(),
        proxies: scenario.proxies.iter().map(ToString::to_string).collect(),
        participants: u64::from(count),
        approvers: u64::from(approvers),
        duration_ms: scenario.duration.as_ms(),
        notes,
    };
    let card = Scorecard::compute(
        info,
        &tools,
        list,
        scenario.faults.clone(),
        audit,
        &scenario.expect,
    );
    Ok((card, where_logs))
}

/// The drill lead stops the drill on every proxy it can reach (faults cleared first); a
/// proxy it cannot reach ends the drill by its own clock.
async fn stop_drill(lead: &mut Session, world: &World, entries: &[ProxyEntry], id: &DrillId) {
    for l in world.links.values() {
        l.set_faults(Vec::new());
    }
    for i in 0..entries.len() {
        let stop = Action::DrillStop {
            drill: id.to_string(),
        };
        let _ = lead
            .call_with(&Call::post("/v1/drill/stop", stop), Some(i))
            .await;
    }
}

/// How many connections each faulted link carried, for the report.
fn link_notes(world: &World, loaded: &Loaded) -> Vec<String> {
    world
        .links
        .iter()
        .filter(|(link, _)| loaded.scenario.faults.iter().any(|f| f.link == **link))
        .map(|(_, l)| {
            format!(
                "{} carried {} connection(s) during the drill.",
                l.name(),
                l.connections()
            )
        })
        .collect()
}
