//! The arithmetic behind the report's charts, apart from their markup: axis steps and
//! ticks, and the access-activity bins of the fault timeline.

use bglass_core::drill::Access;

/// Time bins of the access-activity row of the fault timeline.
pub const ACTIVITY_BINS: u64 = 60;

/// The smallest step in {1, 2, 5} × 10^k that covers `max` in at most `ticks` steps.
pub fn nice_step(max: u64, ticks: u64) -> u64 {
    let ticks = ticks.max(1);
    let mut base: u64 = 1;
    loop {
        for m in [1, 2, 5] {
            let step = base.saturating_mul(m);
            if max.div_ceil(step) <= ticks {
                return step;
            }
        }
        if base > u64::MAX / 10 {
            return u64::MAX;
        }
        base *= 10;
    }
}

/// `0, step, 2 × step, …` up to `top`.
pub fn ticks(top: u64, step: u64) -> impl Iterator<Item = u64> {
    let step = step.max(1);
    std::iter::successors(Some(0u64), move |t| t.checked_add(step)).take_while(move |t| *t <= top)
}

/// Accesses started in one time bin of a drill, and how many of them failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivityBin {
    /// The bin's start, ms from the drill's start.
    pub from_ms: u64,
    /// Its end.
    pub to_ms: u64,
    /// Accesses started in it.
    pub started: u64,
    /// … that failed.
    pub failed: u64,
}

/// The accesses of `log` by start time over `span` ms, in at most [`ACTIVITY_BINS`] bins
/// (an access starting after `span` counts in the last); none for an empty log.
pub fn activity(log: &[Access], span: u64) -> Vec<ActivityBin> {
    if log.is_empty() {
        return Vec::new();
    }
    let bin_ms = span.div_ceil(ACTIVITY_BINS).max(1);
    let last = span.div_ceil(bin_ms).max(1) - 1;
    let mut bins: Vec<ActivityBin> = (0..=last)
        .map(|k| ActivityBin {
            from_ms: k.saturating_mul(bin_ms),
            to_ms: k.saturating_add(1).saturating_mul(bin_ms),
            started: 0,
            failed: 0,
        })
        .collect();
    for a in log {
        let from_ms = (a.start_ms / bin_ms).min(last).saturating_mul(bin_ms);
        if let Some(bin) = bins.iter_mut().find(|b| b.from_ms == from_ms) {
            bin.started += 1;
            bin.failed += u64::from(!a.ok);
        }
    }
    bins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_ticks_cover_the_range() {
        assert_eq!(nice_step(0, 5), 1);
        assert_eq!(nice_step(7, 5), 2);
        assert_eq!(nice_step(36_000, 5), 10_000);
        assert_eq!(nice_step(u64::MAX, 5), 5_000_000_000_000_000_000);
        assert_eq!(nice_step(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks(10, 5).collect::<Vec<_>>(), [0, 5, 10]);
        assert_eq!(ticks(u64::MAX, u64::MAX).count(), 2);
    }

    #[test]
    fn activity_counts_every_access_once() {
        let access = |start_ms, ok| Access {
            start_ms,
            ok,
            ..Access::default()
        };
        let log = [
            access(0, true),
            access(999, false),
            access(1_000, true),
            access(99_999, false),
        ];
        let bins = activity(&log, 60_000);
        assert_eq!(bins.len(), 60);
        assert_eq!((bins[0].started, bins[0].failed), (2, 1));
        assert_eq!(bins[1].started, 1);
        assert_eq!(
            (bins[59].started, bins[59].failed),
            (1, 1),
            "late ones in the last"
        );
        assert_eq!(bins.iter().map(|b| b.started).sum::<u64>(), 4);
        assert!(activity(&[], 60_000).is_empty());
    }
}
