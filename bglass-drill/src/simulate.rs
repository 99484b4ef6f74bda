//! `bglass drill simulate`: runs a scenario in a world on loopback ([`super::world`]) and
//! scores it. The drill lead starts the drill on every proxy through the API (so every
//! event is tagged with the drill's id), participants arrive spread over the scenario's
//! arrival window and go through their tools one after another, approvers approve by a
//! fixed rotation, the timeline switches faults on and off, and at the end every proxy's
//! log is verified and every access looked up in it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bglass_core::api::RequestView;
use bglass_core::catalog::Catalog;
use bglass_core::drill::fromlog::{ProxyLog, audit_check};
use bglass_core::drill::{Access, DrillInfo, LivePlan, LogCheck, Scorecard, SkipProxy};
use bglass_core::envelope::Action;
use bglass_core::id::{RequestId, ResponderId};
use bglass_core::keys::PublicKey;
use bglass_core::scenario::{FaultKind, Link, Production, Scenario};
use bglass_core::timestamp;

use super::participant::{self, Plan, Target};
use super::world;
use bglass_client::client::{Call, Session};
use bglass_client::error::{CliError, CliResult, ErrorKind};

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

/// A scenario with everything it refers to, loaded and checked.
#[derive(Debug)]
pub struct Loaded {
    /// The scenario.
    pub scenario: Scenario,
    /// The catalog's text (the scenario's, or the one built in).
    pub catalog_text: String,
    /// The catalog.
    pub catalog: Catalog,
    /// Where the catalog came from, for people.
    pub catalog_name: String,
    /// The declared production dependencies.
    pub production: Option<Production>,
}

/// Loads a scenario, its catalog and its production dependencies, and checks them together.
pub fn load(path: &Path) -> CliResult<Loaded> {
    let hint = "fix the scenario at the position shown; nothing was run";
    let scenario = Scenario::load(path).map_err(|e| CliError::user(e).with_hint(hint))?;
    let (catalog_text, catalog_name) = match &scenario.catalog {
        Some(p) => {
            // Validated by Catalog::load first: size limits, encoding, schema.
            Catalog::load(p)
                .map_err(|e| CliError::user(e).with_hint("fix the catalog; nothing was run"))?;
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::user(format!("{}: {e}", p.display())))?;
            (text, p.display().to_string())
        }
        None => (
            world::SHIPPED_CATALOG.to_owned(),
            "the catalog built into bglass".to_owned(),
        ),
    };
    let catalog = Catalog::from_bytes(Path::new(&catalog_name), catalog_text.as_bytes().to_vec())
        .map_err(|e| CliError::user(e).with_hint("fix the catalog; nothing was run"))?;
    let production = scenario
        .production
        .as_ref()
        .map(|p| Production::load(p).map_err(|e| CliError::user(e).with_hint(hint)))
        .transpose()?;
    scenario
        .check(&catalog, &catalog_name, production.as_ref())
        .map_err(|e| CliError::user(e).with_hint(hint))?;
    Ok(Loaded {
        scenario,
        catalog_text,
        catalog,
        catalog_name,
        production,
    })
}

/// A drill id: the scenario's name and the start time, `[a-z0-9-]`.
pub fn drill_id(scenario: &str) -> String {
    let secs = timestamp::now_ms() / 1000;
    let stamp = timestamp::format_secs(secs)
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect::<String>();
    let mut id = format!("{scenario}-{stamp}");
    id.truncate(64);
    id
}

/// Runs `bglass drill simulate`; returns whether every expectation held.
pub fn run(options: Options) -> CliResult<bool> {
    let loaded = load(&options.scenario)?;
    let scenario = &loaded.scenario;
    let count = options.participants.unwrap_or(scenario.participants.count);
    if count == 0 || count > bglass_core::scenario::MAX_PARTICIPANTS {
        return Err(CliError::user(format!(
            "--participants must be 1-{}",
            bglass_core::scenario::MAX_PARTICIPANTS
        )));
    }
    let approvers = scenario.participants.approvers.min(count);
    let needs_two = scenario
        .services(&loaded.catalog)
        .iter()
        .filter_map(|s| loaded.catalog.get(s))
        .map(|s| u32::from(s.approvals))
        .max()
        .unwrap_or(0);
    if needs_two > 0 && approvers < needs_two + 1 {
        return Err(CliError::user(format!(
            "{count} participants leave {approvers} approvers, but a tool needs {needs_two} approval(s) besides the requester's: give more participants"
        )));
    }
    let id = drill_id(&scenario.name);
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("drill-reports").join(&id));
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
        bglass_client::out!("{}", card.to_text())?;
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

/// Live counters for the progress line.
#[derive(Debug, Default)]
struct Progress {
    done: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

async fn simulate(
    loaded: &Loaded,
    id: &str,
    out: &Path,
    count: u32,
    approvers: u32,
) -> CliResult<(Scorecard, Vec<(String, PathBuf, PublicKey)>)> {
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
    let entries = world.entries();
    let first = scenario.proxies.first().cloned();

    // The drill lead starts the drill on every proxy.
    // The world's links act out the responder-side faults: nobody needs to skip a proxy.
    let live = live_plan(loaded, id.to_owned(), false);
    let mut lead = Session::in_memory(world.lead.identity()?, &entries)?;
    for i in 0..entries.len() {
        lead.call_with(
            &Call::post("/v1/drill/start", Action::DrillStart(live.clone())),
            Some(i),
        )
        .await
        .map_err(|e| CliError::internal(format!("starting the drill: {e}")))?;
    }

    // The clock starts now: faults, arrivals and deadlines count from here.
    let start = Instant::now();
    let deadline = start + Duration::from_millis(scenario.duration.as_ms());
    let timeline = tokio::spawn(run_timeline(
        world.links.clone(),
        world.forced.keys().cloned().collect(),
        scenario.faults.clone(),
        start,
    ));
    let plan = Plan {
        drill: id.to_owned(),
        start,
        deadline,
        emergency: scenario.participants.emergency,
        ssh: world.ssh.clone(),
    };

    // Approvers: one long poll per (approver, proxy).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let approver_ids: Vec<ResponderId> = world
        .members
        .iter()
        .filter(|m| m.approver)
        .map(|m| m.id.clone())
        .collect();
    let mut approver_tasks = Vec::new();
    for m in world.members.iter().filter(|m| m.approver) {
        for i in 0..entries.len() {
            let session = Session::in_memory(m.identity()?, &entries)?;
            approver_tasks.push(tokio::spawn(approve_loop(
                session,
                i,
                m.id.clone(),
                approver_ids.clone(),
                stop_rx.clone(),
            )));
        }
    }

    // Participants.
    let progress = Arc::new(Progress::default());
    let total = u64::from(count) * services.len() as u64;
    let services = Arc::new(services);
    let mut participants = tokio::task::JoinSet::new();
    let arrival = scenario.participants.arrival.as_ms();
    for (n, m) in world.members.iter().enumerate() {
        let mut session = Session::in_memory(m.identity()?, &entries)?;
        let who = m.id.to_string();
        let services = Arc::clone(&services);
        let plan = plan.clone();
        let progress = Arc::clone(&progress);
        let first = first.clone();
        let offset = arrival * n as u64 / u64::from(count);
        participants.spawn(async move {
            tokio::time::sleep_until((start + Duration::from_millis(offset)).into()).await;
            let mut mine = Vec::with_capacity(services.len());
            for service in services.iter() {
                let begun = Instant::now();
                let a =
                    participant::access(&mut session, &who, first.as_deref(), service, &plan).await;
                let end_ms = u64::try_from(begun.elapsed().as_millis())
                    .unwrap_or(0)
                    .saturating_add(a.start_ms);
                progress.done.fetch_add(1, Ordering::Relaxed);
                if a.ok {
                    progress.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                }
                mine.push((a, end_ms));
            }
            mine
        });
    }
    let shown = tokio::spawn(show_progress(Arc::clone(&progress), total, start));
    let mut accesses: Vec<(Access, u64)> = Vec::with_capacity(total as usize);
    while let Some(done) = participants.join_next().await {
        accesses.extend(done.map_err(CliError::internal)?);
    }
    shown.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let _ = stop_tx.send(true);
    for t in approver_tasks {
        let _ = t.await;
    }
    timeline.abort();
    let mut notes_links = Vec::new();

    for i in 0..entries.len() {
        // Best effort: a proxy whose link is down for good cannot be reached, and its
        // drill ends by its own clock.
        for l in world.links.values() {
            l.set_faults(Vec::new());
        }
        let _ = lead
            .call_with(
                &Call::post(
                    "/v1/drill/stop",
                    Action::DrillStop {
                        drill: id.to_owned(),
                    },
                ),
                Some(i),
            )
            .await;
    }
    let tool_note = world.tool_note();
    for l in world.links.values() {
        if scenario
            .faults
            .iter()
            .any(|f| f.link.to_string() == l.name())
        {
            notes_links.push(format!(
                "{} carried {} connection(s) during the drill.",
                l.name(),
                l.connections()
            ));
        }
    }
    world.shutdown().await;
    let wall_ms = u64::try_from(wall.elapsed().as_millis()).unwrap_or(u64::MAX);

    // Attribute failures to the faults on their path, and to dependencies.
    let mut list: Vec<Access> = Vec::with_capacity(accesses.len());
    accesses.sort_by(|a, b| {
        a.0.start_ms
            .cmp(&b.0.start_ms)
            .then_with(|| a.0.participant.cmp(&b.0.participant))
    });
    for (mut a, end_ms) in accesses {
        if let Some(f) = &mut a.failure {
            let service_link = Link::ProxyToService(a.service.clone());
            if let Some(forced) = world.forced.get(&service_link) {
                f.dependency = Some(forced.dependency.clone());
                f.faults
                    .push(format!("{service_link} down ({})", forced.why));
            }
            for fault in &scenario.faults {
                let on_path = match &fault.link {
                    Link::ProxyToService(s) => *s == a.service,
                    Link::ResponderToProxy(_) => true,
                    Link::ProxyToNotify => false,
                };
                let overlaps = fault.start.as_ms() <= end_ms && a.start_ms < fault.end.as_ms();
                if on_path && overlaps {
                    f.faults
                        .push(format!("{} {}", fault.link, fault.kind.describe()));
                }
            }
        }
        list.push(a);
    }

    // The audit side.
    let mut logs = Vec::new();
    let mut notes = world.notes.clone();
    notes.push(tool_note);
    notes.extend(notes_links);
    let mut where_logs = Vec::new();
    for p in &world.proxies {
        let dir = p.dir.join("data").join("log");
        logs.push(read_log(&p.id, &dir, Some(p.key)).log);
        notes.push(format!("key of {}: {}", p.id, p.key));
        where_logs.push((p.id.clone(), dir, p.key));
    }
    let audit = audit_check(&logs, id, &mut list);
    let tools: Vec<(String, String)> = world
        .catalog
        .services()
        .iter()
        .filter(|s| services.iter().any(|x| x.name == s.name))
        .map(|s| (s.name.to_string(), s.kind_name().to_owned()))
        .collect();
    let info = DrillInfo {
        id: id.to_owned(),
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        scenario_digest: scenario.digest.clone(),
        mode: "simulate".to_owned(),
        started_ms,
        wall_ms,
        down: scenario.down.iter().map(|d| d.value.clone()).collect(),
        proxies: scenario.proxies.clone(),
        participants: count,
        approvers,
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

/// A proxy's log, verified and read.
#[derive(Debug)]
pub struct ReadLog {
    /// The check and the events, for the scorecard.
    pub log: ProxyLog,
    /// The key that verified it (the one given, or the one its first entry records).
    pub key: Option<PublicKey>,
}

/// Verifies a proxy's log once (against `key`, or the key its first entry records when
/// `None`) and reads its events. The log is named by the proxy id it verifies as, else
/// `name`.
pub fn read_log(name: &str, dir: &Path, key: Option<PublicKey>) -> ReadLog {
    let verified = bglass_core::audit::verify::verify_dir(dir, key);
    let mut check = LogCheck {
        proxy: name.to_owned(),
        dir: dir.display().to_string(),
        entries: 0,
        verified: false,
        error: None,
    };
    let mut used = None;
    match verified {
        Ok(report) => {
            check.proxy = report.proxy.to_string();
            check.entries = report.entries;
            check.verified = true;
            used = Some(report.key);
        }
        Err(d) => check.error = Some(d.to_string()),
    }
    let events = match bglass_core::audit::report::read_events(dir) {
        Ok(e) => e,
        Err(e) => {
            check.verified = false;
            check.error.get_or_insert(e.to_string());
            Vec::new()
        }
    };
    ReadLog {
        log: ProxyLog { check, events },
        key: used,
    }
}

/// Writes `report.json` and `report.html` to `out`; returns their paths.
pub fn write_reports(out: &Path, card: &Scorecard) -> CliResult<(PathBuf, PathBuf)> {
    let write = |name: &str, bytes: Vec<u8>| {
        let path = out.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| CliError::user(format!("{}: {e}", path.display())))
            .map(|()| path)
    };
    std::fs::create_dir_all(out).map_err(|e| CliError::user(format!("{}: {e}", out.display())))?;
    let json = write(
        "report.json",
        serde_json::to_vec_pretty(card).map_err(CliError::internal)?,
    )?;
    let html = write(
        "report.html",
        bglass_core::drill::html::to_html(card).into_bytes(),
    )?;
    Ok((json, html))
}

/// Switches each link's faults on and off as the scenario says.
async fn run_timeline(
    links: std::collections::BTreeMap<Link, Arc<super::link::FaultLink>>,
    forced: Vec<Link>,
    faults: Vec<bglass_core::scenario::Fault>,
    start: Instant,
) {
    let mut moments: Vec<u64> = faults
        .iter()
        .flat_map(|f| [f.start.as_ms(), f.end.as_ms()])
        .collect();
    moments.sort_unstable();
    moments.dedup();
    for at in moments {
        tokio::time::sleep_until((start + Duration::from_millis(at)).into()).await;
        for (link, l) in &links {
            let mut active: Vec<FaultKind> = faults
                .iter()
                .filter(|f| &f.link == link && f.active_at(at))
                .map(|f| f.kind)
                .collect();
            if forced.contains(link) {
                active.push(FaultKind::Down);
            }
            l.set_faults(active);
        }
    }
}

/// Whether `me` approves request `r`: the approvers in a rotation starting at a position
/// drawn from the request's id, without the requester; the first as many as the tool
/// needs approve.
fn assigned(me: &ResponderId, approvers: &[ResponderId], r: &RequestView) -> bool {
    let eligible: Vec<&ResponderId> = approvers.iter().filter(|a| **a != r.responder).collect();
    if eligible.is_empty() {
        return false;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, r.id.as_str().as_bytes());
    let h = digest
        .as_ref()
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let n = eligible.len();
    let first = usize::try_from(h % n as u64).unwrap_or(0);
    (0..usize::from(r.approvals_needed).min(n)).any(|k| eligible[(first + k) % n] == me)
}

async fn approve_loop(
    mut session: Session,
    proxy: usize,
    me: ResponderId,
    approvers: Vec<ResponderId>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut since = 0u64;
    let mut done: std::collections::HashSet<RequestId> = std::collections::HashSet::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let call = Call::get(format!("/v1/requests?wait=2&since={since}"));
        let answer = tokio::select! {
            a = session.call_with(&call, Some(proxy)) => a,
            _ = stop.changed() => return,
        };
        let list: Vec<RequestView> = match answer {
            Ok((value, _)) => serde_json::from_value(value).unwrap_or_default(),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        for r in list {
            since = since.max(r.seq);
            if r.status != "pending"
                || r.responder == me
                || r.approved_by.contains(&me)
                || done.contains(&r.id)
                || !assigned(&me, &approvers, &r)
            {
                continue;
            }
            done.insert(r.id.clone());
            let _ = session
                .call_with(
                    &Call::post("/v1/approve", Action::Approve { request: r.id }),
                    Some(proxy),
                )
                .await;
        }
    }
}

async fn show_progress(progress: Arc<Progress>, total: u64, start: Instant) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    };
    loop {
        tokio::time::sleep(every).await;
        let done = progress.done.load(Ordering::Relaxed);
        let ok = progress.ok.load(Ordering::Relaxed);
        let failed = progress.failed.load(Ordering::Relaxed);
        let width = 30u64;
        let filled = (done * width).checked_div(total).unwrap_or(0);
        let bar: String = (0..width)
            .map(|i| if i < filled { '#' } else { '.' })
            .collect();
        let line = format!(
            "[{bar}] {done}/{total} accesses  ok {ok}  failed {failed}  {:.1} s",
            start.elapsed().as_secs_f64()
        );
        if tty {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// The exit status of a drill whose expectations were not met.
pub fn not_met() -> CliError {
    CliError::new(
        ErrorKind::DrillFailed,
        "the drill did not meet its expectations (see above)",
    )
}

/// The plan a drill of `loaded` tells the proxies; with `skip`, the client-side faults that
/// live participants act out.
pub fn live_plan(loaded: &Loaded, drill: String, skip: bool) -> LivePlan {
    let s = &loaded.scenario;
    LivePlan {
        drill,
        scenario: s.name.clone(),
        digest: s.digest.clone(),
        services: s.services(&loaded.catalog),
        skip: if skip { client_faults(s) } else { Vec::new() },
        duration_ms: s.duration.as_ms(),
    }
}

/// Which proxies participants skip when, from the scenario's faults on responder links
/// (for live drills, where bglass cannot cut real links).
pub fn client_faults(scenario: &Scenario) -> Vec<SkipProxy> {
    scenario
        .faults
        .iter()
        .filter_map(|f| match (&f.link, f.kind) {
            (
                Link::ResponderToProxy(p),
                FaultKind::Down | FaultKind::Blackhole | FaultKind::Timeout | FaultKind::Reset,
            ) => Some(SkipProxy {
                proxy: p.clone(),
                start_ms: f.start.as_ms(),
                end_ms: f.end.as_ms(),
            }),
            _ => None,
        })
        .collect()
}
