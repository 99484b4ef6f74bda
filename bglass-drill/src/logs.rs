//! Reading a proxy's audit log for a drill's scorecard: verified once (against the key
//! given out of band, or the one its first entry records), then its events read.

use std::path::Path;

use bglass_core::drill::LogCheck;
use bglass_core::drill::fromlog::ProxyLog;
use bglass_core::keys::PublicKey;

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
