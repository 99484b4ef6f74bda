//! The simulated participants: each arrives at its point of the arrival window and goes
//! through its tools one after another, as `bglass drill join` does, while a progress line
//! on stderr counts the accesses.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bglass_client::client::Session;
use bglass_client::config::ProxyEntry;
use bglass_client::error::{CliError, CliResult};
use bglass_core::drill::Access;
use bglass_core::id::ProxyId;

use crate::participant::{self, Plan, Target};
use crate::world::World;

/// Live counters for the progress line.
#[derive(Debug, Default)]
struct Progress {
    done: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Runs every participant of `world` through `services` and returns each access with
/// when it ended (ms from the drill's start), in the order they finished.
pub(super) async fn run(
    world: &World,
    entries: &[ProxyEntry],
    services: Vec<Target>,
    plan: &Plan,
    arrival_ms: u64,
    first: Option<ProxyId>,
) -> CliResult<Vec<(Access, u64)>> {
    let progress = Arc::new(Progress::default());
    let count = world.members.len() as u64;
    let total = count * services.len() as u64;
    let services = Arc::new(services);
    let mut participants = tokio::task::JoinSet::new();
    for (n, m) in (0u64..).zip(&world.members) {
        let mut session = Session::in_memory(m.identity()?, entries)?;
        let who = m.id.to_string();
        let services = Arc::clone(&services);
        let plan = plan.clone();
        let progress = Arc::clone(&progress);
        let first = first.clone();
        let offset = arrival_ms * n / count.max(1);
        participants.spawn(async move {
            let at = plan.start + Duration::from_millis(offset);
            tokio::time::sleep_until(at.into()).await;
            let mut mine = Vec::with_capacity(services.len());
            for service in services.iter() {
                let begun = Instant::now();
                let a =
                    participant::access(&mut session, &who, first.as_ref(), service, &plan).await;
                let end_ms = crate::ms_since(begun).saturating_add(a.start_ms);
                progress.done.fetch_add(1, Ordering::Relaxed);
                let counter = if a.ok { &progress.ok } else { &progress.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                mine.push((a, end_ms));
            }
            mine
        });
    }
    let shown = tokio::spawn(show_progress(Arc::clone(&progress), total, plan.start));
    let mut accesses = Vec::new();
    while let Some(done) = participants.join_next().await {
        accesses.extend(done.map_err(CliError::internal)?);
    }
    shown.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    Ok(accesses)
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
            "[{bar}] {done}/{total} accesses  ok {ok}  failed {failed}  {}",
            bglass_core::duration::ms_text(crate::ms_since(start))
        );
        if tty {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
}
