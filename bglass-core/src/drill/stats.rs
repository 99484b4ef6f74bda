//! The statistics of a scorecard: nearest-rank percentiles of durations, the time-to-access
//! histogram's buckets, and success rates.

/// Percentiles and extremes of a set of durations.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// How many.
    pub count: u64,
    /// Median, ms.
    pub p50: u64,
    /// 95th percentile, ms.
    pub p95: u64,
    /// Largest, ms.
    pub max: u64,
    /// Smallest, ms.
    pub min: u64,
}

impl Stats {
    /// Nearest-rank percentiles of `values` (empty: all zero).
    pub fn of(values: &[u64]) -> Self {
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |p: usize| -> u64 {
            if v.is_empty() {
                return 0;
            }
            let n = v.len();
            let r = (p * n).div_ceil(100).clamp(1, n);
            v.get(r - 1).copied().unwrap_or(0)
        };
        Self {
            count: v.len() as u64,
            p50: rank(50),
            p95: rank(95),
            max: v.last().copied().unwrap_or(0),
            min: v.first().copied().unwrap_or(0),
        }
    }
}

/// A bucket of the time-to-access histogram.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    /// Upper bound of the bucket, ms (inclusive); the last bucket is open.
    pub le_ms: u64,
    /// Successes in it.
    pub count: u64,
}

/// Upper bounds of the histogram's buckets, ms.
pub const BUCKETS_MS: [u64; 14] = [
    25,
    50,
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    10_000,
    u64::MAX,
];

/// The time-to-access histogram of `ttas`: how many fall in each of [`BUCKETS_MS`].
pub fn histogram(ttas: &[u64]) -> Vec<Bucket> {
    let mut lo = 0;
    BUCKETS_MS
        .iter()
        .map(|&le| {
            let count = ttas.iter().filter(|&&t| t >= lo && t <= le).count() as u64;
            lo = le.saturating_add(1);
            Bucket { le_ms: le, count }
        })
        .collect()
}

/// A rate as a percentage for people: whole when it is (`97%`), else to a tenth (`97.2%`).
pub fn percent(x: f64) -> String {
    let p = x * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// `ok` of `all` as a fraction; 1 when there was nothing to do.
pub(crate) fn rate(ok: u64, all: u64) -> f64 {
    if all == 0 {
        1.0
    } else {
        ok as f64 / all as f64
    }
}
