//! Catalog and roster changes signed by k of n admins (`[admins]` in `proxy.toml`): a new
//! version is put in force, at a reload or at start, only with enough valid signatures in
//! the file beside it (`services.toml.sig`, `responders.toml.sig`) over the change from the
//! version in force (as the log records it) to its exact bytes. Otherwise the last good
//! version stays in force (fail stale), and the rejection is audited and notified.
//!
//! A roster that changes only responders' keys is also accepted with a rekey statement per
//! change, signed by the key in force and the new one (`bglass rekey`,
//! [`bglass_core::rekey`]): a responder rotates their own key without the admins.

use std::path::{Path, PathBuf};

use bglass_core::admin::{MAX_SIG_FILE_BYTES, SIG_SUFFIX, Transition};
use bglass_core::audit::policy_files::{PolicyKind, digest};
use bglass_core::audit::storage::read_bounded;
use bglass_core::roster::Roster;

use crate::config::AdminPolicy;

/// The signature file beside `path` (`responders.toml.sig`).
pub fn sig_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(SIG_SUFFIX);
    PathBuf::from(name)
}

/// Whether the bytes of `kind` read from `path` may replace the version in force, whose
/// digest is `parent` (`None`: nothing in force yet, a new log). Returns the admins who
/// signed the change: none when `proxy.toml` requires no signatures for `kind`, or when the
/// bytes are the version in force. For a roster, `rosters` (the one in force and the new
/// one) lets rekey statements stand in for the admins when only keys change; the signers
/// are then the responders who rekeyed (`alice (rekey)`).
pub fn admit(
    policy: &AdminPolicy,
    kind: PolicyKind,
    path: &Path,
    bytes: &[u8],
    parent: Option<&str>,
    rosters: Option<(&Roster, &Roster)>,
) -> Result<Vec<String>, String> {
    let threshold = policy.threshold(kind);
    if threshold == 0 || parent == Some(digest(bytes).as_str()) {
        return Ok(Vec::new());
    }
    let change = Transition::to_bytes(kind, parent, bytes);
    let sig = sig_path(path);
    let text = match read_bounded(&sig, MAX_SIG_FILE_BYTES) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) if !sig.exists() => {
            return Err(format!(
                "{}: the {} is signed by 0 of the {threshold} admins required (no {}); sign it with `bglass admin sign`",
                path.display(),
                kind.name(),
                sig.display()
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let admins = change.signers(&text, &policy.keys).require(threshold, kind);
    match (admins, rosters) {
        (Ok(signers), _) => Ok(signers),
        (Err(why), Some((old, new))) => match bglass_core::rekey::covered(old, new, &text) {
            Ok(rekeyed) => Ok(rekeyed.iter().map(|id| format!("{id} (rekey)")).collect()),
            // Say why the statements did not count only where there were some.
            Err(rekey) if text.contains(bglass_core::rekey::TAG) => {
                Err(format!("{}: {why}; as a rekey: {rekey}", path.display()))
            }
            Err(_) => Err(format!("{}: {why}", path.display())),
        },
        (Err(why), None) => Err(format!("{}: {why}", path.display())),
    }
}
