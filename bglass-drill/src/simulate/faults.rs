//! The scenario's faults in a simulation: the timeline that switches them on and off on
//! the world's links, and the attribution of each failed access to the faults (and
//! declared-down dependencies) on its path while it ran.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bglass_core::drill::Access;
use bglass_core::scenario::{Fault, FaultKind, Link};

use crate::link::FaultLink;
use crate::world::Forced;

/// Switches each link's faults on and off as the scenario says; links in `forced` stay
/// down throughout.
pub(super) async fn run_timeline(
    links: BTreeMap<Link, Arc<FaultLink>>,
    forced: Vec<Link>,
    faults: Vec<Fault>,
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

/// The accesses in order of start (then participant), each failure naming the faults on
/// its path that overlapped it, and the dependency when its tool's link was forced down.
/// `accesses` pairs each access with when it ended, ms from the drill's start.
pub(super) fn attribute(
    mut accesses: Vec<(Access, u64)>,
    faults: &[Fault],
    forced: &BTreeMap<Link, Forced>,
) -> Vec<Access> {
    accesses.sort_by(|a, b| {
        a.0.start_ms
            .cmp(&b.0.start_ms)
            .then_with(|| a.0.participant.cmp(&b.0.participant))
    });
    accesses
        .into_iter()
        .map(|(mut a, end_ms)| {
            if let Some(f) = &mut a.failure {
                if let Some((link, why)) = forced.iter().find(|(l, _)| l.is_to_service(&a.service))
                {
                    f.dependency = Some(why.dependency.to_string());
                    f.faults.push(format!("{link} down ({})", why.why));
                }
                for fault in faults {
                    let on_path = match &fault.link {
                        Link::ProxyToService(s) => s.as_str() == a.service,
                        Link::ResponderToProxy(_) => true,
                        Link::ProxyToNotify => false,
                    };
                    let overlaps = fault.start.as_ms() <= end_ms && a.start_ms < fault.end.as_ms();
                    if on_path && overlaps {
                        f.faults.push(fault.label());
                    }
                }
            }
            a
        })
        .collect()
}
