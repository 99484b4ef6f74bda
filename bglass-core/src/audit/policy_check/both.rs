//! `audit verify --policy` as one pass of the machine: the integrity check and the policy
//! check read the log side by side (neither depends on the other's result until the end),
//! and the policy's findings count only once integrity has passed.

use std::path::Path;

use super::{PolicyOptions, PolicyReport, check};
use crate::audit::report::with_events;
use crate::audit::verify::{Defect, VerifyReport, verify_dir};
use crate::keys::PublicKey;

/// Verifies the log in `dir` (with `key`, as [`verify_dir`]) and checks its policy at the
/// same time. The policy report is `None` when integrity failed (a log that does not verify
/// proves nothing about what was allowed), else the check's result or why it could not
/// read the log.
pub fn verify_and_check(
    dir: &Path,
    key: Option<PublicKey>,
    options: PolicyOptions,
) -> (
    Result<VerifyReport, Defect>,
    Option<Result<PolicyReport, String>>,
) {
    std::thread::scope(|scope| {
        let policy = scope.spawn(move || with_events(dir, |events| check(dir, events, options)));
        let integrity = verify_dir(dir, key);
        let policy = match policy.join() {
            Ok(read) => read.map_err(|e| e.to_string()),
            Err(_) => Err("the policy check stopped unexpectedly".to_owned()),
        };
        match integrity {
            Ok(report) => (Ok(report), Some(policy)),
            Err(defect) => (Err(defect), None),
        }
    })
}
