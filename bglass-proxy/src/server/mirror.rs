//! What an auditor's mirror (`bglass audit monitor`) reads besides checkpoints, proofs and
//! hash tiles: the entries themselves, as C2SP tlog-tiles entry bundles
//! (`/v1/audit/tile/entries/<N>[.p/<W>]`), and the catalogs and rosters the log names
//! (`/v1/audit/policy/<kind>-<sha256>.toml`). Both need the auditor role: the entries are
//! the whole record of who asked for what and why.
//!
//! Reading them is itself audited (PCI DSS 10.2.1.3 asks for every access to audit logs):
//! an `audit_read` entry names the reader and what they read before the first read of each
//! minute is served, with the count of their reads of that kind since their last such entry.
//! A read that cannot be recorded is refused.

use std::sync::Arc;

use bglass_core::audit::policy_files::{self, PolicyKind};
use bglass_core::audit::storage::{self, Entry, encode_bundle};
use bglass_core::audit::tree::TILE_WIDTH;
use bglass_core::roster::{Responder, Role};
use http::{Response, StatusCode};

use super::{Body, Proxy, full};
use bglass_core::policy::Refusal;

fn auditor(caller: &Responder) -> Result<(), Refusal> {
    if caller.has(Role::Auditor) {
        Ok(())
    } else {
        Err(Refusal::new(
            "missing_role",
            403,
            "reading the log's entries and policy files needs the auditor role",
        ))
    }
}

/// Records that `caller` reads `what` (at most one entry per reader, kind and minute).
async fn audited(
    proxy: &Arc<Proxy>,
    caller: &Responder,
    what: &'static str,
) -> Result<(), Refusal> {
    let now = bglass_core::timestamp::now_ms();
    let count = {
        let mut reads = super::lock(&proxy.reads);
        let seen = reads.entry((caller.id.clone(), what)).or_insert((0, 0));
        seen.1 += 1;
        if seen.0 != 0 && now.saturating_sub(seen.0) < READ_WINDOW_MS {
            return Ok(());
        }
        seen.0 = now;
        std::mem::take(&mut seen.1)
    };
    let event = bglass_core::audit::event::EventKind::AuditRead {
        what: what.to_owned(),
        count,
    };
    if let Err(r) = proxy.record(Some(caller.id.clone()), event).await {
        // Not recorded: the next read tries again, and this one is not served.
        if let Some(seen) = super::lock(&proxy.reads).get_mut(&(caller.id.clone(), what)) {
            seen.0 = 0;
            seen.1 += count;
        }
        return Err(r);
    }
    Ok(())
}

/// Reads of one kind by one reader within this window share an `audit_read` entry.
const READ_WINDOW_MS: u64 = 60_000;

fn bytes(data: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(data));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    r
}

/// The index of a tile path `x001/x234/567`, or `None` when it is not one.
pub(super) fn tile_index(path: &str) -> Option<u64> {
    let mut index = 0u64;
    for part in path.split('/') {
        let digits = part.strip_prefix('x').unwrap_or(part);
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index
            .checked_mul(1000)?
            .checked_add(digits.parse::<u64>().ok()?)?;
    }
    Some(index)
}

/// `GET /v1/audit/tile/entries/<N>[.p/<W>]`: entry bundle `N`, whole (256 entries, from
/// disk once full) or its first `W` entries (1 ≤ W < 256), as stored in the log.
pub(super) async fn entries(
    proxy: &Arc<Proxy>,
    caller: &Responder,
    rest: &str,
) -> Result<Response<Body>, Refusal> {
    auditor(caller)?;
    audited(proxy, caller, "entries").await?;
    let malformed = || {
        Refusal::new(
            "malformed",
            400,
            "an entry bundle path is tile/entries/<N>[.p/<W>], N as x###/…/###, 1 ≤ W ≤ 255",
        )
    };
    let (index_path, width) = match rest.split_once(".p/") {
        Some((index, w)) => {
            let w: usize = w.parse().map_err(|_| malformed())?;
            if w == 0 || w >= TILE_WIDTH {
                return Err(malformed());
            }
            (index, w)
        }
        None => (rest, TILE_WIDTH),
    };
    let bundle = tile_index(index_path).ok_or_else(malformed)?;
    let first = bundle
        .checked_mul(TILE_WIDTH as u64)
        .ok_or_else(malformed)?;
    let end = first.saturating_add(width as u64);
    if end > proxy.log.size() {
        return Err(Refusal::new(
            "no_tile",
            404,
            format!(
                "entries {first}..{end} are not all in the log yet ({} entries)",
                proxy.log.size()
            ),
        ));
    }
    let log = Arc::clone(&proxy.log);
    let read = tokio::task::spawn_blocking(move || {
        if width == TILE_WIDTH
            && let Ok(data) = storage::read_bundle(log.dir(), bundle)
        {
            return Ok(data);
        }
        let mut entries = Vec::with_capacity(width);
        for item in log.entries_from(first).take(width) {
            let (_, data) = item.map_err(|e| e.to_string())?;
            entries.push(Entry::new(data).map_err(|e| e.to_string())?);
        }
        if entries.len() < width {
            return Err(format!(
                "only {} of the {width} entries from {first} could be read",
                entries.len()
            ));
        }
        Ok(encode_bundle(&entries))
    })
    .await
    .map_err(|e| Refusal::new("internal", 500, format!("reading entries: {e}")))?;
    let data =
        read.map_err(|e| Refusal::new("unavailable", 503, format!("reading entries: {e}")))?;
    Ok(bytes(data))
}

/// `GET /v1/audit/policy/<catalog|roster>-<sha256>.toml`: a catalog or roster the log names,
/// checked against its digest before it is served.
pub(super) async fn policy_file(
    proxy: &Arc<Proxy>,
    caller: &Responder,
    name: &str,
) -> Result<Response<Body>, Refusal> {
    auditor(caller)?;
    audited(proxy, caller, "policy").await?;
    let parsed = name.strip_suffix(".toml").and_then(|stem| {
        let (kind, digest) = stem.split_once('-')?;
        let kind = match kind {
            "catalog" => PolicyKind::Catalog,
            "roster" => PolicyKind::Roster,
            _ => return None,
        };
        Some((kind, digest))
    });
    let Some((kind, digest)) = parsed else {
        return Err(Refusal::new(
            "malformed",
            400,
            "a policy file is policy/catalog-<sha256>.toml or policy/roster-<sha256>.toml",
        ));
    };
    match policy_files::load(proxy.log.dir(), kind, digest) {
        Ok(data) => Ok(bytes(data)),
        Err(policy_files::PolicyFileError::Missing { .. }) => Err(Refusal::new(
            "no_policy_file",
            404,
            format!("the log keeps no {} with digest {digest}", kind.name()),
        )),
        Err(e @ policy_files::PolicyFileError::BadDigest { .. }) => {
            Err(Refusal::new("malformed", 400, e.to_string()))
        }
        Err(e) => Err(Refusal::new("unavailable", 503, e.to_string())),
    }
}
