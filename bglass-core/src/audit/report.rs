//! Reading a log for people: filters for `bglass audit show`/`export`, and the auditor's
//! summary for `bglass audit report`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::event::{Event, EventError, EventKind};
use super::storage::{self, BundleError, StorageError, WAL_FILE, WalError};
use crate::id::{GrantId, ResponderId, ServiceName};

/// Grace, in milliseconds, at both ends of a grant's window when judging uses (the proxy
/// allows the same clock skew when it verifies grants).
pub const USE_SKEW_MS: u64 = crate::grant::DEFAULT_SKEW_SECS * 1000;

/// Grace after a revocation: the proxy cuts access within a second.
pub const REVOKE_GRACE_MS: u64 = 1000;

/// Why the entries of a log could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadLogError {
    /// Reading stopped before the end (the reader of the events stopped, or the parsing
    /// thread ended abnormally).
    #[error("reading the log stopped before its end")]
    Stopped,
    /// A file could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A full bundle is not 256 entries.
    #[error("{}: {source}", storage::bundle_rel(*bundle))]
    Bundle {
        /// The bundle.
        bundle: u64,
        /// What is wrong with it.
        source: BundleError,
    },
    /// The write-ahead file cannot be read.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The write-ahead file starts after the last full bundle ends.
    #[error("entries {from}..{to} are missing")]
    Missing {
        /// The first entry missing.
        from: u64,
        /// The entry the write-ahead file resumes at.
        to: u64,
    },
    /// An entry is not an event.
    #[error("entry {index}: {source}")]
    Event {
        /// The entry.
        index: u64,
        /// Why.
        source: EventError,
    },
}

/// Calls `f` with every entry of the log in `dir`, in order: full bundles, then the
/// write-ahead file. Stops at the first malformed bundle or record with an error, or at
/// the first error `f` returns.
pub fn for_each_entry(
    dir: &Path,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), ReadLogError>,
) -> Result<u64, ReadLogError> {
    let mut index = 0u64;
    for b in 0..storage::count_bundles(dir) {
        let bytes = storage::read_bundle(dir, b)?;
        let entries = storage::parse_bundle(&bytes)
            .map_err(|source| ReadLogError::Bundle { bundle: b, source })?;
        for entry in entries {
            f(index, entry)?;
            index += 1;
        }
    }
    let wal = storage::read_wal(&dir.join(WAL_FILE))?;
    for record in wal.records {
        if record.index < index {
            continue;
        }
        if record.index > index {
            return Err(ReadLogError::Missing {
                from: index,
                to: record.index,
            });
        }
        f(index, record.data.as_bytes())?;
        index += 1;
    }
    Ok(index)
}

/// Reads and decodes every event of the log in `dir`.
pub fn read_events(dir: &Path) -> Result<Vec<(u64, Event)>, ReadLogError> {
    let mut out = Vec::new();
    for_each_entry(dir, |index, bytes| {
        let event =
            Event::from_bytes(bytes).map_err(|source| ReadLogError::Event { index, source })?;
        out.push((index, event));
        Ok(())
    })?;
    Ok(out)
}

/// Entries read and not yet parsed: their bytes end to end, and each one's index and place.
#[derive(Default)]
struct RawBatch {
    data: Vec<u8>,
    entries: Vec<(u64, usize, usize)>,
}

/// Parses the log's events on other threads and hands them, in order, to `consume` as an
/// iterator: reading, parsing (two threads, a batch each in turn) and whatever `consume`
/// does overlap, and the log is never held in memory whole. Parsing stops early when
/// `consume` returns without reading everything; a read or parse error, if one came, is
/// returned instead of `consume`'s result.
pub fn with_events<R>(
    dir: &Path,
    consume: impl FnOnce(&mut dyn Iterator<Item = (u64, Event)>) -> R,
) -> Result<R, ReadLogError> {
    const BATCH: usize = 1024;
    const PARSERS: usize = 2;
    type Parsed = Result<Vec<(u64, Event)>, ReadLogError>;
    std::thread::scope(|scope| {
        let mut to_parse = Vec::with_capacity(PARSERS);
        let mut parsed = Vec::with_capacity(PARSERS);
        for _ in 0..PARSERS {
            let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<RawBatch>(4);
            let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<Parsed>(4);
            scope.spawn(move || {
                for batch in raw_rx {
                    let events: Parsed = batch
                        .entries
                        .iter()
                        .map(|&(index, start, end)| {
                            Event::from_bytes(&batch.data[start..end])
                                .map(|e| (index, e))
                                .map_err(|source| ReadLogError::Event { index, source })
                        })
                        .collect();
                    let failed = events.is_err();
                    if out_tx.send(events).is_err() || failed {
                        break;
                    }
                }
            });
            to_parse.push(raw_tx);
            parsed.push(out_rx);
        }
        // Batch k goes to parser k % PARSERS, and is read back from it in the same turn.
        let reader = scope.spawn(move || {
            let mut batch = RawBatch::default();
            let mut sent = 0usize;
            let result = for_each_entry(dir, |index, bytes| {
                let start = batch.data.len();
                batch.data.extend_from_slice(bytes);
                batch.entries.push((index, start, batch.data.len()));
                if batch.entries.len() == BATCH {
                    let full = std::mem::take(&mut batch);
                    // The consumer stopped reading: nothing more to do.
                    if to_parse[sent % PARSERS].send(full).is_err() {
                        return Err(ReadLogError::Stopped);
                    }
                    sent += 1;
                }
                Ok(())
            });
            if !batch.entries.is_empty() {
                let _ = to_parse[sent % PARSERS].send(batch);
            }
            result.map(|_| ())
        });
        let mut failure: Option<ReadLogError> = None;
        let mut turn = 0usize;
        let batches = std::iter::from_fn(|| {
            if failure.is_some() {
                return None;
            }
            match parsed[turn % PARSERS].recv() {
                Ok(Ok(batch)) => {
                    turn += 1;
                    Some(batch)
                }
                Ok(Err(e)) => {
                    failure = Some(e);
                    None
                }
                // That parser has nothing more: the reader is done.
                Err(_) => None,
            }
        });
        let mut events = batches.flatten();
        let out = consume(&mut events);
        drop(events);
        // Stop the parsers and the reader if `consume` left early.
        drop(parsed);
        let read = reader.join();
        if let Some(e) = failure {
            return Err(e);
        }
        match read {
            Ok(Ok(()) | Err(ReadLogError::Stopped)) => Ok(out),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ReadLogError::Stopped),
        }
    })
}

/// Which events to show.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// At or after, Unix milliseconds.
    pub since_ms: Option<u64>,
    /// Before, Unix milliseconds.
    pub until_ms: Option<u64>,
    /// About this responder (actor, or holder of the grant).
    pub responder: Option<ResponderId>,
    /// About this service.
    pub service: Option<ServiceName>,
    /// In this drill (`Some("")` would match nothing).
    pub drill: Option<String>,
}

impl Filter {
    /// Whether the time is in the window.
    pub fn in_window(&self, time_ms: u64) -> bool {
        self.since_ms.is_none_or(|s| time_ms >= s) && self.until_ms.is_none_or(|u| time_ms < u)
    }

    /// Whether the event passes every filter. `grant_holders` maps grant ids to their
    /// holders and services, so that uses of a grant match its responder and service.
    pub fn matches(&self, event: &Event, grants: &HashMap<GrantId, GrantInfo>) -> bool {
        if !self.in_window(event.time_ms) {
            return false;
        }
        let info = event.event.grant().and_then(|g| grants.get(g));
        if let Some(r) = &self.responder {
            let about = event.responder() == Some(r) || info.is_some_and(|i| &i.responder == r);
            if !about {
                return false;
            }
        }
        if let Some(s) = &self.service {
            let about = event.event.service() == Some(s) || info.is_some_and(|i| &i.service == s);
            if !about {
                return false;
            }
        }
        if let Some(d) = &self.drill
            && event.drill.as_ref() != Some(d)
        {
            return false;
        }
        true
    }
}

/// What the log says about one grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    /// Holder.
    pub responder: ResponderId,
    /// Service.
    pub service: ServiceName,
    /// Valid from, Unix ms.
    pub nbf_ms: u64,
    /// Valid until, Unix ms.
    pub exp_ms: u64,
    /// Ended early at, Unix ms.
    pub revoked_ms: Option<u64>,
    /// Issued under the emergency bypass.
    pub emergency: bool,
    /// When issued.
    pub issued_ms: u64,
    /// Drill, if any.
    pub drill: Option<String>,
}

/// Every grant in the log, by id.
pub fn grants(events: &[(u64, Event)]) -> HashMap<GrantId, GrantInfo> {
    let mut out = HashMap::new();
    for (_, e) in events {
        match &e.event {
            EventKind::Grant {
                grant,
                responder,
                service,
                nbf,
                exp,
                emergency,
                ..
            } => {
                out.insert(
                    grant.clone(),
                    GrantInfo {
                        responder: responder.clone(),
                        service: service.clone(),
                        nbf_ms: nbf.saturating_mul(1000),
                        exp_ms: exp.saturating_mul(1000),
                        revoked_ms: None,
                        emergency: *emergency,
                        issued_ms: e.time_ms,
                        drill: e.drill.clone(),
                    },
                );
            }
            EventKind::Revoke { grant, .. } => {
                if let Some(info) = out.get_mut(grant) {
                    info.revoked_ms.get_or_insert(e.time_ms);
                }
            }
            _ => {}
        }
    }
    out
}

/// An emergency bypass and its review.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Bypass {
    /// The grant.
    pub grant: GrantId,
    /// Who used the bypass.
    pub responder: ResponderId,
    /// On which service.
    pub service: ServiceName,
    /// When, Unix ms.
    pub time_ms: u64,
    /// The reviewer, when the review is closed.
    pub reviewed_by: Option<ResponderId>,
    /// The review's note.
    pub review_note: Option<String>,
}

/// A use of access that no grant covered (there must be none).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OutsideUse {
    /// The use's entry.
    pub index: u64,
    /// The grant it named.
    pub grant: GrantId,
    /// The service used.
    pub service: ServiceName,
    /// When, Unix ms.
    pub time_ms: u64,
    /// Why no grant covers it.
    pub why: String,
}

/// Counts of one population of events (real incidents, or one drill).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Access requests.
    pub requests: u64,
    /// Grants issued.
    pub grants: u64,
    /// HTTP requests and tunnels opened.
    pub uses: u64,
    /// Refusals.
    pub denials: u64,
}

/// The auditor's summary of a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Entries in the log.
    pub entries: u64,
    /// Entries in the period.
    pub entries_in_period: u64,
    /// Grants per responder (real incidents only).
    pub grants_by_responder: BTreeMap<String, u64>,
    /// Grants per tool (real incidents only).
    pub grants_by_service: BTreeMap<String, u64>,
    /// Emergency bypasses, open reviews first.
    pub bypasses: Vec<Bypass>,
    /// Refusals by reason code.
    pub denials_by_reason: BTreeMap<String, u64>,
    /// Uses no grant covered (must be empty).
    pub uses_outside_grants: Vec<OutsideUse>,
    /// Real incidents.
    pub real: Counts,
    /// Each drill, by id.
    pub drills: BTreeMap<String, Counts>,
}

impl Report {
    /// Summarises the events in `window`.
    pub fn build(events: &[(u64, Event)], window: &Filter) -> Self {
        let grants = grants(events);
        let mut report = Report {
            entries: events.len() as u64,
            ..Report::default()
        };
        let mut reviews: HashMap<&GrantId, (Option<&ResponderId>, &str)> = HashMap::new();
        for (_, e) in events {
            if let EventKind::Review { grant, note, .. } = &e.event {
                reviews.insert(grant, (e.actor.as_ref(), note.as_str()));
            }
        }
        for (index, e) in events {
            if !window.in_window(e.time_ms) {
                continue;
            }
            report.entries_in_period += 1;
            let counts = match &e.drill {
                Some(d) => report.drills.entry(d.clone()).or_default(),
                None => &mut report.real,
            };
            match &e.event {
                EventKind::Request { .. } => counts.requests += 1,
                EventKind::Grant {
                    grant,
                    responder,
                    service,
                    emergency,
                    ..
                } => {
                    counts.grants += 1;
                    if e.drill.is_none() {
                        *report
                            .grants_by_responder
                            .entry(responder.to_string())
                            .or_default() += 1;
                        *report
                            .grants_by_service
                            .entry(service.to_string())
                            .or_default() += 1;
                    }
                    if *emergency {
                        let review = reviews.get(grant);
                        report.bypasses.push(Bypass {
                            grant: grant.clone(),
                            responder: responder.clone(),
                            service: service.clone(),
                            time_ms: e.time_ms,
                            reviewed_by: review.and_then(|(r, _)| r.cloned()),
                            review_note: review.map(|(_, n)| (*n).to_owned()),
                        });
                    }
                }
                EventKind::Denial { reason, .. } => {
                    counts.denials += 1;
                    *report.denials_by_reason.entry(reason.clone()).or_default() += 1;
                }
                // A use is counted (and checked against its grant) when it was authorised: at
                // its `use_start`, or at a `use` written before `use_start` existed.
                EventKind::Use { start: Some(_), .. } => {}
                EventKind::Use { grant, service, .. }
                | EventKind::UseStart { grant, service, .. }
                | EventKind::TunnelOpen { grant, service, .. } => {
                    counts.uses += 1;
                    if let Some(why) = outside(grants.get(grant), service, e.time_ms) {
                        report.uses_outside_grants.push(OutsideUse {
                            index: *index,
                            grant: grant.clone(),
                            service: service.clone(),
                            time_ms: e.time_ms,
                            why,
                        });
                    }
                }
                _ => {}
            }
        }
        // Open reviews first, then by time.
        report
            .bypasses
            .sort_by_key(|b| (b.reviewed_by.is_some(), b.time_ms));
        report
    }
}

fn outside(grant: Option<&GrantInfo>, service: &ServiceName, time_ms: u64) -> Option<String> {
    let Some(g) = grant else {
        return Some("no grant with this id was issued".to_owned());
    };
    if &g.service != service {
        return Some(format!("the grant is for {}", g.service));
    }
    if time_ms.saturating_add(USE_SKEW_MS) < g.nbf_ms {
        return Some("before the grant's window".to_owned());
    }
    if time_ms >= g.exp_ms.saturating_add(USE_SKEW_MS) {
        return Some("after the grant expired".to_owned());
    }
    if g.revoked_ms
        .is_some_and(|r| time_ms > r.saturating_add(REVOKE_GRACE_MS))
    {
        return Some("after the grant was revoked".to_owned());
    }
    None
}
