//! The disk under the data directory, and the audit log's health, as an operator sees them.
//!
//! A full disk stops the audit log, and a proxy whose log cannot write refuses every access:
//! the operator should see it coming and know what to do. Every [`INTERVAL`] a background
//! task measures the free space under the data directory (statvfs), keeps it for the metrics
//! listener and `bglass status`, and when it falls below `[storage] free_space_warning`
//! warns on stderr and records a `storage_low` event (notified); once it is back above the
//! threshold with a margin ([`rearm_bytes`], so that it does not flap) it records
//! `storage_ok`. An event that cannot be recorded (the log is failed) is recorded once the
//! log works again. The same task announces on stderr, once each, that the log failed (with
//! what the operator does) and that it recovered, whether or not requests arrive meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bglass_core::api::{AuditRecoveryView, StorageStatus};
use bglass_core::audit::event::EventKind;
use bglass_core::audit::log::{LogFailure, LogHealth};
use bglass_core::duration::elapsed_text;
use bglass_core::id::ProxyId;
use bglass_core::size::ByteSize;
use bglass_core::timestamp;

use super::{Proxy, lock};

/// How often free space and the log's health are looked at.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// The smallest margin above the threshold that free space must reach before the warning
/// ends.
pub const MIN_REARM_MARGIN: u64 = 64 << 10;

/// Free space at or above which a warning for `threshold` ends: the threshold plus a tenth
/// of it (at least [`MIN_REARM_MARGIN`]), so that free space wavering around the threshold
/// does not warn again and again.
pub fn rearm_bytes(threshold: u64) -> u64 {
    threshold.saturating_add((threshold / 10).max(MIN_REARM_MARGIN))
}

/// A change of the warning state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// Free space fell below the threshold.
    Low,
    /// Free space is back at or above [`rearm_bytes`].
    Ok,
}

/// The warning state: low below the threshold, and low until free space reaches
/// [`rearm_bytes`]. A threshold of 0 never warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    threshold: u64,
    low: bool,
}

impl Hysteresis {
    /// Not low, warning below `threshold` bytes.
    pub fn new(threshold: u64) -> Self {
        Self {
            threshold,
            low: false,
        }
    }

    /// Whether free space is low.
    pub fn low(&self) -> bool {
        self.low
    }

    /// Takes a measurement; the crossing it makes, if any.
    pub fn observe(&mut self, free: u64) -> Option<Crossing> {
        if !self.low && free < self.threshold {
            self.low = true;
            Some(Crossing::Low)
        } else if self.low && free >= rearm_bytes(self.threshold) {
            self.low = false;
            Some(Crossing::Ok)
        } else {
            None
        }
    }
}

/// The last measurement of the data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// Bytes free (available to the proxy).
    pub free_bytes: Option<u64>,
    /// Why it could not be measured.
    pub error: Option<String>,
    /// Below the warning threshold.
    pub low: bool,
}

/// What the watcher knows, shared with the metrics listener, the status route and refusals.
#[derive(Debug, Default)]
pub struct StorageWatch {
    reading: Mutex<Reading>,
    /// `since_ms` of the last log failure announced on stderr (0: none yet).
    announced_failure: AtomicU64,
}

impl StorageWatch {
    /// The last measurement.
    pub fn reading(&self) -> Reading {
        lock(&self.reading).clone()
    }

    fn set(&self, reading: Reading) {
        *lock(&self.reading) = reading;
    }
}

/// Why the free space under the data directory could not be measured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FreeSpaceError {
    /// The file system did not say.
    #[error("{}: {source}", dir.display())]
    Statvfs {
        /// The directory.
        dir: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The measuring task failed.
    #[error("measuring free space: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Bytes available to the proxy on the file system that holds `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64, FreeSpaceError> {
    let s = rustix::fs::statvfs(dir).map_err(|e| FreeSpaceError::Statvfs {
        dir: dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// What an operator does when the log failed.
fn operator_action(data_dir: &Path) -> String {
    format!(
        "free space under {} (or check the disk: I/O errors in the kernel log, a read-only remount, a missing directory); the proxy retries by itself and resumes without a restart once it can write its log",
        data_dir.display()
    )
}

/// Prints, once per failure, that the audit log failed and what the operator does.
pub fn announce_failure(proxy: &Proxy, failure: &LogFailure) {
    let key = failure.since_ms.max(1);
    if proxy.storage.announced_failure.swap(key, Ordering::Relaxed) != key {
        eprintln!(
            "bglass-proxy: AUDIT LOG FAILED at {}: {}; refusing all access until it can write again. What to do: {}",
            timestamp::format_ms(failure.since_ms),
            failure.error,
            operator_action(&proxy.config.data_dir)
        );
    }
}

/// The sentence a refusal carries while the log is failed; `why` when the log does not
/// (or no longer) report a failure.
pub fn refusal_message(health: &LogHealth, why: &dyn std::fmt::Display) -> String {
    match &health.failed {
        Some(f) => format!(
            "the proxy cannot write its audit log since {} ({}), so it refuses access; it retries by itself and serves again as soon as the log can write",
            timestamp::format_ms(f.since_ms),
            f.error
        ),
        None => format!(
            "the proxy could not write its audit log ({why}), so it refused access; it retries by itself"
        ),
    }
}

/// The notification of a storage event of `proxy` (whose data directory is `data_dir`):
/// `log_failed`, `log_recovered`, `storage_low`, `storage_ok`; `None` for other kinds.
pub fn summary(proxy: &ProxyId, data_dir: &Path, time_ms: u64, kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::LogFailed { error } => format!(
            "AUDIT LOG FAILED on {proxy}: access refused: {error}; {}",
            operator_action(data_dir)
        ),
        EventKind::LogRecovered { failed_ms, error } => format!(
            "audit log of {proxy} recovered after {}; access resumed (it failed at {}: {error})",
            elapsed_text(time_ms.saturating_sub(*failed_ms)),
            timestamp::format_ms(*failed_ms)
        ),
        EventKind::StorageLow {
            free_bytes,
            threshold_bytes,
        } => format!(
            "LOW DISK SPACE on {proxy}: {} free under {}, below the warning threshold of {}; free space there before the audit log runs out (the proxy then refuses all access)",
            ByteSize::from_bytes(*free_bytes),
            data_dir.display(),
            ByteSize::from_bytes(*threshold_bytes)
        ),
        EventKind::StorageOk { free_bytes } => format!(
            "disk space on {proxy} is back above the warning threshold: {} free under {}",
            ByteSize::from_bytes(*free_bytes),
            data_dir.display()
        ),
        _ => return None,
    })
}

/// Measures free space and watches the log's health every [`INTERVAL`], until aborted.
pub async fn watch(proxy: Arc<Proxy>) {
    let threshold = proxy.config.storage.free_space_warning_bytes;
    let mut hysteresis = Hysteresis::new(threshold);
    // The warning state the log holds (`storage_low` recorded and no `storage_ok` since).
    let mut recorded_low = false;
    // A recording under way: the state it records, and whether it succeeded. It runs on
    // its own so that a log that hangs does not stop the measurements.
    let mut recording: Option<(bool, tokio::task::JoinHandle<bool>)> = None;
    let mut last_error: Option<String> = None;
    let mut seen_recovery = proxy.log.health().last_recovery.map(|r| r.recovered_ms);
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let health = proxy.log.health();
        if let Some(failure) = &health.failed {
            announce_failure(&proxy, failure);
        }
        if let Some(r) = &health.last_recovery
            && seen_recovery != Some(r.recovered_ms)
        {
            seen_recovery = Some(r.recovered_ms);
            eprintln!(
                "bglass-proxy: audit log recovered at {} after {} (it failed at {}: {}); access resumed",
                timestamp::format_ms(r.recovered_ms),
                elapsed_text(r.recovered_ms.saturating_sub(r.failed_ms)),
                timestamp::format_ms(r.failed_ms),
                r.error
            );
        }

        let dir = proxy.config.data_dir.clone();
        let measured = tokio::task::spawn_blocking(move || free_bytes(&dir))
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .map_err(|e| e.to_string());
        let free = match measured {
            Ok(free) => {
                last_error = None;
                free
            }
            Err(e) => {
                if last_error.as_ref() != Some(&e) {
                    eprintln!(
                        "bglass-proxy: WARNING: cannot measure the free space under the data directory: {e}"
                    );
                }
                proxy.storage.set(Reading {
                    free_bytes: None,
                    error: Some(e.clone()),
                    low: hysteresis.low(),
                });
                last_error = Some(e);
                continue;
            }
        };
        match hysteresis.observe(free) {
            Some(Crossing::Low) => eprintln!(
                "bglass-proxy: WARNING: LOW DISK SPACE: {} free under {}, below [storage] free_space_warning = {}. When the audit log cannot write, this proxy refuses all access: free space there now",
                ByteSize::from_bytes(free),
                proxy.config.data_dir.display(),
                ByteSize::from_bytes(threshold)
            ),
            Some(Crossing::Ok) => eprintln!(
                "bglass-proxy: disk space under {} is back above the warning threshold: {} free",
                proxy.config.data_dir.display(),
                ByteSize::from_bytes(free)
            ),
            None => {}
        }
        proxy.storage.set(Reading {
            free_bytes: Some(free),
            error: None,
            low: hysteresis.low(),
        });

        if let Some((_, handle)) = &recording
            && handle.is_finished()
            && let Some((state, handle)) = recording.take()
            && handle.await.unwrap_or(false)
        {
            recorded_low = state;
        }
        if recording.is_none() && hysteresis.low() != recorded_low && health.failed.is_none() {
            let low = hysteresis.low();
            let kind = if low {
                EventKind::StorageLow {
                    free_bytes: free,
                    threshold_bytes: threshold,
                }
            } else {
                EventKind::StorageOk { free_bytes: free }
            };
            let p = Arc::clone(&proxy);
            recording = Some((
                low,
                tokio::spawn(async move { p.record(None, kind).await.is_ok() }),
            ));
        }
    }
}

/// The disk and log-health figures on the metrics listener.
pub fn render_metrics(proxy: &Proxy) -> String {
    let reading = proxy.storage.reading();
    let health = proxy.log.health();
    let now = timestamp::now_ms();
    let mut out = String::new();
    if let Some(free) = reading.free_bytes {
        out.push_str(&format!(
            "# HELP bglass_data_free_bytes Bytes free (available to the proxy) on the file system of the data directory.\n# TYPE bglass_data_free_bytes gauge\nbglass_data_free_bytes {free}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP bglass_data_free_threshold_bytes Free space below which the proxy warns ([storage] free_space_warning).\n# TYPE bglass_data_free_threshold_bytes gauge\nbglass_data_free_threshold_bytes {}\n",
        proxy.config.storage.free_space_warning_bytes
    ));
    out.push_str(&format!(
        "# HELP bglass_audit_failures_total Times the audit log failed (access refused until it could write again) since the proxy started.\n# TYPE bglass_audit_failures_total counter\nbglass_audit_failures_total {}\n",
        health.failures
    ));
    let failed_for = health
        .failed
        .as_ref()
        .map_or(0, |f| now.saturating_sub(f.since_ms));
    out.push_str(&format!(
        "# HELP bglass_audit_failed_since_seconds How long the audit log has been failed (0 when it works).\n# TYPE bglass_audit_failed_since_seconds gauge\nbglass_audit_failed_since_seconds {}\n",
        failed_for as f64 / 1e3
    ));
    let recovered = health.last_recovery.as_ref().map_or(0, |r| r.recovered_ms);
    out.push_str(&format!(
        "# HELP bglass_audit_last_recovery_timestamp_seconds When the audit log last recovered from a failure, Unix time (0: never).\n# TYPE bglass_audit_last_recovery_timestamp_seconds gauge\nbglass_audit_last_recovery_timestamp_seconds {}\n",
        recovered as f64 / 1e3
    ));
    out
}

/// The status fields: (failed since, failures, last recovery, storage).
pub fn status(proxy: &Proxy) -> (Option<u64>, u64, Option<AuditRecoveryView>, StorageStatus) {
    let health = proxy.log.health();
    let reading = proxy.storage.reading();
    (
        health.failed.as_ref().map(|f| f.since_ms),
        health.failures,
        health.last_recovery.map(|r| AuditRecoveryView {
            failed_ms: r.failed_ms,
            recovered_ms: r.recovered_ms,
            error: r.error.to_string(),
        }),
        StorageStatus {
            free_bytes: reading.free_bytes,
            threshold_bytes: proxy.config.storage.free_space_warning_bytes,
            low: reading.low,
            error: reading.error,
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_warning_starts_below_the_threshold_and_ends_only_clearly_above_it() {
        let threshold = 1 << 20;
        let rearm = rearm_bytes(threshold);
        assert_eq!(rearm, threshold + threshold / 10);
        let mut h = Hysteresis::new(threshold);
        assert_eq!(h.observe(threshold), None);
        assert!(!h.low());
        assert_eq!(h.observe(threshold - 1), Some(Crossing::Low));
        assert!(h.low());
        // Wavering around the threshold: no new crossing either way.
        for free in [
            threshold - 1,
            threshold,
            threshold + 1,
            rearm - 1,
            0,
            threshold - 1,
        ] {
            assert_eq!(h.observe(free), None, "{free}");
            assert!(h.low());
        }
        assert_eq!(h.observe(rearm), Some(Crossing::Ok));
        assert!(!h.low());
        assert_eq!(h.observe(rearm - 1), None);
        assert_eq!(h.observe(threshold), None);
        assert_eq!(h.observe(threshold - 1), Some(Crossing::Low));
    }

    #[test]
    fn a_small_threshold_still_has_a_margin_and_zero_never_warns() {
        assert_eq!(rearm_bytes(64 << 10), (64 << 10) + MIN_REARM_MARGIN);
        assert_eq!(rearm_bytes(u64::MAX), u64::MAX);
        let mut off = Hysteresis::new(0);
        for free in [0, 1, u64::MAX] {
            assert_eq!(off.observe(free), None);
        }
        assert!(!off.low());
    }

    #[test]
    fn free_space_is_measured_and_a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        let missing = dir.path().join("gone");
        match free_bytes(&missing).unwrap_err() {
            FreeSpaceError::Statvfs { dir, source } => {
                assert_eq!(dir, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other}"),
        }
        let e = free_bytes(&missing).unwrap_err().to_string();
        assert!(e.contains("gone") && e.contains("No such file"), "{e}");
    }

    #[test]
    fn storage_events_are_notified_with_what_to_do() {
        let proxy = ProxyId::new("proxy-a").unwrap();
        let dir = Path::new("/var/lib/bglass/data");
        let failed = summary(
            &proxy,
            dir,
            5_000,
            &EventKind::LogFailed {
                error: "No space left on device (os error 28)".to_owned(),
            },
        )
        .unwrap();
        assert!(
            failed.starts_with(
                "AUDIT LOG FAILED on proxy-a: access refused: No space left on device (os error 28); free space under /var/lib/bglass/data"
            ) && failed.contains("resumes without a restart"),
            "{failed}"
        );
        let recovered = summary(
            &proxy,
            dir,
            1_700_000_095_000,
            &EventKind::LogRecovered {
                failed_ms: 1_700_000_000_000,
                error: "No space left on device (os error 28)".to_owned(),
            },
        )
        .unwrap();
        assert!(
            recovered.starts_with("audit log of proxy-a recovered after 1m35s; access resumed"),
            "{recovered}"
        );
        let low = summary(
            &proxy,
            dir,
            0,
            &EventKind::StorageLow {
                free_bytes: 300 << 20,
                threshold_bytes: 512 << 20,
            },
        )
        .unwrap();
        assert!(
            low.starts_with(
                "LOW DISK SPACE on proxy-a: 300 MiB free under /var/lib/bglass/data, below the warning threshold of 512 MiB"
            ),
            "{low}"
        );
        let ok = summary(
            &proxy,
            dir,
            0,
            &EventKind::StorageOk {
                free_bytes: 3 << 30,
            },
        )
        .unwrap();
        assert_eq!(
            ok,
            "disk space on proxy-a is back above the warning threshold: 3 GiB free under /var/lib/bglass/data"
        );
        assert_eq!(summary(&proxy, dir, 0, &EventKind::DrillStop {}), None);
    }

    #[test]
    fn a_refusal_says_since_when_and_that_the_proxy_retries() {
        let health = LogHealth {
            failed: Some(LogFailure {
                since_ms: 1_700_000_000_000,
                error: bglass_core::audit::log::LogFault::Storage(
                    bglass_core::audit::storage::StorageError {
                        path: "/srv/bglass/data/log/pending.wal".to_owned(),
                        op: bglass_core::audit::storage::FileOp::Sync,
                        what: "No space left on device (os error 28)".to_owned(),
                        errno: Some(28),
                    },
                ),
            }),
            failures: 1,
            last_recovery: None,
        };
        let m = refusal_message(&health, &"ignored");
        assert!(m.contains(&timestamp::format_ms(1_700_000_000_000)), "{m}");
        assert!(m.contains("No space left on device"), "{m}");
        assert!(m.contains("retries by itself"), "{m}");
        assert!(!m.contains("repaired"), "{m}");
        let healthy = refusal_message(&LogHealth::default(), &"the audit log is closed");
        assert!(healthy.contains("the audit log is closed"), "{healthy}");
    }
}
