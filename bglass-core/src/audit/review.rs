//! The review package: everything a verified log holds about one incident (or one
//! responder, or one period), gathered for the auditor, with the proofs that tie each item
//! to the signed log.
//!
//! What belongs to the scope: the requests that match it (their incident, their responder,
//! their time), the grants issued for them, and every entry about those requests and
//! grants: approvals, denials, uses, SSH certificates, tunnels, recorded sessions,
//! revocations, expiries and emergency reviews. `--since`/`--until` keep only the entries in
//! that window. Pure: a function of the events (recordings are checked by the caller, which
//! has their files).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::event::{Event, EventKind};
use super::recording::{self, Recording};
use crate::id::{GrantId, RequestId, ResponderId, ServiceName};

/// Which requests the review is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Scope {
    /// The requests' incident (as the responder gave it).
    pub incident: Option<String>,
    /// The requests' responder.
    pub responder: Option<ResponderId>,
    /// Entries at or after, Unix milliseconds.
    pub since_ms: Option<u64>,
    /// Entries before, Unix milliseconds.
    pub until_ms: Option<u64>,
}

impl Scope {
    fn in_window(&self, time_ms: u64) -> bool {
        self.since_ms.is_none_or(|s| time_ms >= s) && self.until_ms.is_none_or(|u| time_ms < u)
    }

    /// A sentence naming the scope ("incident INC-1, responder alice").
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(i) = &self.incident {
            parts.push(format!("incident {i}"));
        }
        if let Some(r) = &self.responder {
            parts.push(format!("responder {r}"));
        }
        match (self.since_ms, self.until_ms) {
            (None, None) => {}
            (s, u) => parts.push(format!(
                "{} to {}",
                s.map_or("the start".to_owned(), crate::timestamp::format_ms),
                u.map_or("the end".to_owned(), crate::timestamp::format_ms)
            )),
        }
        if parts.is_empty() {
            "the whole log".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TimelineItem {
    /// The entry.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// The event's type (`request`, `approval`, …).
    pub event: &'static str,
    /// Who acted (none for the proxy's own entries).
    pub actor: Option<String>,
    /// The service.
    pub service: Option<String>,
    /// The grant.
    pub grant: Option<String>,
    /// What happened, in a line.
    pub summary: String,
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestRow {
    /// The entry.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// The request.
    pub request: RequestId,
    /// Who asked.
    pub responder: Option<ResponderId>,
    /// For which tool.
    pub service: ServiceName,
    /// The TTL asked for, seconds.
    pub ttl_secs: u64,
    /// Under the emergency bypass.
    pub emergency: bool,
    /// The incident given.
    pub incident: String,
    /// The reason given.
    pub reason: String,
}

/// An approval.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalRow {
    /// The entry.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// The approver.
    pub approver: Option<ResponderId>,
    /// The request approved.
    pub request: RequestId,
    /// Who asked, and for what (from the request).
    pub requester: Option<ResponderId>,
    /// The tool.
    pub service: Option<ServiceName>,
    /// The requester's reason: an approval signs the request it approves, whose reason is
    /// what the approver read.
    pub reason: Option<String>,
}

/// How a grant ended before its expiry, or that it ran out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GrantEnd {
    /// The entry.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// `revoked: <reason>` (with who) or `expired`.
    pub how: String,
}

/// A grant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GrantRow {
    /// The entry.
    pub index: u64,
    /// When issued, Unix ms.
    pub time_ms: u64,
    /// The grant.
    pub grant: GrantId,
    /// Its request.
    pub request: RequestId,
    /// Its holder.
    pub responder: ResponderId,
    /// The tool.
    pub service: ServiceName,
    /// Valid from, Unix ms.
    pub nbf_ms: u64,
    /// Valid until, Unix ms.
    pub exp_ms: u64,
    /// Issued under the emergency bypass.
    pub emergency: bool,
    /// Who approved its request.
    pub approvers: Vec<ResponderId>,
    /// Its end, when the log has it.
    pub end: Option<GrantEnd>,
    /// HTTP uses made with it.
    pub uses: u64,
}

/// An emergency bypass and its review.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BypassRow {
    /// The grant's entry.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// The grant.
    pub grant: GrantId,
    /// Who used the bypass.
    pub responder: ResponderId,
    /// On which tool.
    pub service: ServiceName,
    /// The review, when it is closed.
    pub review: Option<ReviewRow>,
}

/// The review of an emergency grant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReviewRow {
    /// The entry.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// The reviewer.
    pub reviewer: Option<ResponderId>,
    /// The reviewer's conclusion.
    pub note: String,
}

/// A denial.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DenialRow {
    /// The entry.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// Who was refused.
    pub actor: Option<ResponderId>,
    /// The tool, when known.
    pub service: Option<ServiceName>,
    /// The reason code.
    pub reason: String,
    /// The detail.
    pub detail: String,
}

/// One HTTP use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UseRow {
    /// The entry.
    pub index: u64,
    /// When it ended, Unix ms.
    pub time_ms: u64,
    /// The grant.
    pub grant: GrantId,
    /// Its holder.
    pub responder: Option<ResponderId>,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// The tool's status.
    pub status: u16,
    /// Bytes to the tool.
    pub bytes_in: u64,
    /// Bytes from the tool.
    pub bytes_out: u64,
    /// How long, ms.
    pub duration_ms: u64,
}

/// The HTTP uses of one tool.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ToolUses {
    /// The tool.
    pub service: ServiceName,
    /// Responses by class: 2xx, 3xx, 4xx, 5xx (and others under 0).
    pub by_class: BTreeMap<u16, u64>,
    /// Bytes to the tool.
    pub bytes_in: u64,
    /// Bytes from the tool.
    pub bytes_out: u64,
    /// Each use, in log order.
    pub uses: Vec<UseRow>,
}

/// A TCP/SSH tunnel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TunnelRow {
    /// The open entry.
    pub index: u64,
    /// When it opened, Unix ms.
    pub time_ms: u64,
    /// The tunnel's number.
    pub tunnel: u64,
    /// The grant.
    pub grant: GrantId,
    /// The tool.
    pub service: ServiceName,
    /// The grant's holder.
    pub responder: Option<ResponderId>,
    /// Its close: entry, time, reason, bytes up and down.
    pub close: Option<TunnelClose>,
}

/// How a tunnel closed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TunnelClose {
    /// The entry.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// Why.
    pub reason: String,
    /// Bytes to the tool.
    pub bytes_up: u64,
    /// Bytes from the tool.
    pub bytes_down: u64,
}

/// Everything the log holds about a scope.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Review {
    /// What it is about.
    pub scope: Scope,
    /// Entries in the log.
    pub entries: u64,
    /// Every entry in scope, in log order (recording chunk lists and use starts left out).
    pub timeline: Vec<TimelineItem>,
    /// Requests.
    pub requests: Vec<RequestRow>,
    /// Approvals.
    pub approvals: Vec<ApprovalRow>,
    /// Grants.
    pub grants: Vec<GrantRow>,
    /// Emergency bypasses and their reviews.
    pub bypasses: Vec<BypassRow>,
    /// Denials.
    pub denials: Vec<DenialRow>,
    /// HTTP uses, per tool.
    pub uses: Vec<ToolUses>,
    /// Tunnels.
    pub tunnels: Vec<TunnelRow>,
    /// Recorded sessions, as the log tells them (the caller checks their files).
    #[serde(skip)]
    pub recordings: Vec<Recording>,
    /// Every entry the review rests on, in order: the timeline's and the recordings' chunk
    /// lists. Each gets an inclusion proof.
    pub indexes: Vec<u64>,
}

/// The ids of what is in scope.
#[derive(Default)]
struct InScope {
    requests: HashSet<RequestId>,
    grants: HashSet<GrantId>,
}

impl InScope {
    /// Whether `event` is about a request or grant in scope (or, for a denial, about the
    /// scope's responder when it names neither).
    fn holds(&self, event: &Event, scope: &Scope) -> bool {
        if let EventKind::Request { request, .. } = &event.event {
            return self.requests.contains(request);
        }
        if event.event.grant().is_some_and(|g| self.grants.contains(g))
            || event
                .event
                .request()
                .is_some_and(|r| self.requests.contains(r))
        {
            return true;
        }
        if let EventKind::RecordingChunks { .. } = &event.event {
            return false; // Taken with its recording.
        }
        matches!(
            &event.event,
            EventKind::Denial {
                request: None,
                grant: None,
                ..
            }
        ) && scope.incident.is_none()
            && scope.responder.is_some()
            && event.actor == scope.responder
    }
}

impl Review {
    /// Gathers the review of `scope` from a verified log's events.
    pub fn build(events: &[(u64, Event)], scope: &Scope) -> Self {
        let ids = select(events, scope);
        let mut review = Review {
            scope: scope.clone(),
            entries: events.last().map_or(0, |(i, _)| i + 1),
            ..Review::default()
        };
        let mut requests: HashMap<RequestId, (Option<ResponderId>, ServiceName, String)> =
            HashMap::new();
        let mut approvers: HashMap<RequestId, Vec<ResponderId>> = HashMap::new();
        let mut grant_rows: HashMap<GrantId, usize> = HashMap::new();
        let mut bypass_rows: HashMap<GrantId, usize> = HashMap::new();
        let mut tunnel_rows: HashMap<(GrantId, u64), usize> = HashMap::new();
        let mut tools: BTreeMap<ServiceName, ToolUses> = BTreeMap::new();
        let mut sessions: HashSet<String> = HashSet::new();
        for (index, event) in events {
            let index = *index;
            if !scope.in_window(event.time_ms) || !ids.holds(event, scope) {
                continue;
            }
            let time_ms = event.time_ms;
            let holder = |g: &GrantId| {
                grant_rows
                    .get(g)
                    .and_then(|&i| review.grants.get(i))
                    .map(|r| r.responder.clone())
            };
            match &event.event {
                EventKind::Request {
                    request,
                    service,
                    ttl_secs,
                    emergency,
                    reason,
                    incident,
                    ..
                } => {
                    requests.insert(
                        request.clone(),
                        (event.actor.clone(), service.clone(), reason.clone()),
                    );
                    review.requests.push(RequestRow {
                        index,
                        time_ms,
                        request: request.clone(),
                        responder: event.actor.clone(),
                        service: service.clone(),
                        ttl_secs: *ttl_secs,
                        emergency: *emergency,
                        incident: incident.clone(),
                        reason: reason.clone(),
                    });
                }
                EventKind::Approval { request, .. } => {
                    let asked = requests.get(request);
                    if let Some(a) = &event.actor {
                        approvers
                            .entry(request.clone())
                            .or_default()
                            .push(a.clone());
                    }
                    review.approvals.push(ApprovalRow {
                        index,
                        time_ms,
                        approver: event.actor.clone(),
                        request: request.clone(),
                        requester: asked.and_then(|a| a.0.clone()),
                        service: asked.map(|a| a.1.clone()),
                        reason: asked.map(|a| a.2.clone()),
                    });
                }
                EventKind::Grant {
                    grant,
                    request,
                    responder,
                    service,
                    nbf,
                    exp,
                    emergency,
                    ..
                } => {
                    grant_rows.insert(grant.clone(), review.grants.len());
                    review.grants.push(GrantRow {
                        index,
                        time_ms,
                        grant: grant.clone(),
                        request: request.clone(),
                        responder: responder.clone(),
                        service: service.clone(),
                        nbf_ms: nbf.saturating_mul(1000),
                        exp_ms: exp.saturating_mul(1000),
                        emergency: *emergency,
                        approvers: approvers.get(request).cloned().unwrap_or_default(),
                        end: None,
                        uses: 0,
                    });
                    if *emergency {
                        bypass_rows.insert(grant.clone(), review.bypasses.len());
                        review.bypasses.push(BypassRow {
                            index,
                            time_ms,
                            grant: grant.clone(),
                            responder: responder.clone(),
                            service: service.clone(),
                            review: None,
                        });
                    }
                }
                EventKind::Denial {
                    reason,
                    detail,
                    service,
                    ..
                } => review.denials.push(DenialRow {
                    index,
                    time_ms,
                    actor: event.actor.clone(),
                    service: service.clone(),
                    reason: reason.clone(),
                    detail: detail.clone(),
                }),
                EventKind::Use {
                    grant,
                    service,
                    method,
                    path,
                    status,
                    bytes_in,
                    bytes_out,
                    duration_ms,
                    ..
                } => {
                    let responder = holder(grant);
                    if let Some(row) = grant_rows
                        .get(grant)
                        .and_then(|&i| review.grants.get_mut(i))
                    {
                        row.uses += 1;
                    }
                    let tool = tools.entry(service.clone()).or_insert_with(|| ToolUses {
                        service: service.clone(),
                        by_class: BTreeMap::new(),
                        bytes_in: 0,
                        bytes_out: 0,
                        uses: Vec::new(),
                    });
                    let class = if (100..600).contains(status) {
                        status / 100 * 100
                    } else {
                        0
                    };
                    *tool.by_class.entry(class).or_default() += 1;
                    tool.bytes_in += bytes_in;
                    tool.bytes_out += bytes_out;
                    tool.uses.push(UseRow {
                        index,
                        time_ms,
                        grant: grant.clone(),
                        responder,
                        method: method.clone(),
                        path: path.clone(),
                        status: *status,
                        bytes_in: *bytes_in,
                        bytes_out: *bytes_out,
                        duration_ms: *duration_ms,
                    });
                }
                EventKind::TunnelOpen {
                    grant,
                    service,
                    tunnel,
                } => {
                    let responder = holder(grant);
                    tunnel_rows.insert((grant.clone(), *tunnel), review.tunnels.len());
                    review.tunnels.push(TunnelRow {
                        index,
                        time_ms,
                        tunnel: *tunnel,
                        grant: grant.clone(),
                        service: service.clone(),
                        responder,
                        close: None,
                    });
                }
                EventKind::TunnelClose {
                    grant,
                    tunnel,
                    bytes_up,
                    bytes_down,
                    reason,
                    ..
                } => {
                    if let Some(row) = tunnel_rows
                        .get(&(grant.clone(), *tunnel))
                        .and_then(|&i| review.tunnels.get_mut(i))
                    {
                        row.close = Some(TunnelClose {
                            index,
                            time_ms,
                            reason: reason.clone(),
                            bytes_up: *bytes_up,
                            bytes_down: *bytes_down,
                        });
                    }
                }
                EventKind::Revoke { grant, reason, .. } => {
                    let by = event
                        .actor
                        .as_ref()
                        .map_or("the proxy".to_owned(), |a| a.to_string());
                    end_grant(&mut review, &grant_rows, grant, index, time_ms, || {
                        format!("revoked by {by}: {reason}")
                    });
                }
                EventKind::Expiry { grant } => {
                    end_grant(&mut review, &grant_rows, grant, index, time_ms, || {
                        "expired".to_owned()
                    });
                }
                EventKind::Review { grant, note, .. } => {
                    if let Some(row) = bypass_rows
                        .get(grant)
                        .and_then(|&i| review.bypasses.get_mut(i))
                    {
                        row.review = Some(ReviewRow {
                            index,
                            time_ms,
                            reviewer: event.actor.clone(),
                            note: note.clone(),
                        });
                    }
                }
                EventKind::RecordingStart { session, .. } => {
                    sessions.insert(session.clone());
                }
                _ => {}
            }
            if !matches!(event.event, EventKind::UseStart { .. }) {
                review.timeline.push(TimelineItem {
                    index,
                    time_ms,
                    event: event.event.type_name(),
                    actor: event.actor.as_ref().map(|a| a.to_string()),
                    service: event.event.service().map(|s| s.to_string()),
                    grant: event.event.grant().map(|g| g.to_string()),
                    summary: super::describe::detail(event),
                });
            }
            review.indexes.push(index);
        }
        review.uses = tools.into_values().collect();
        review.recordings = recording::collect(events)
            .into_iter()
            .filter(|r| sessions.contains(&r.session))
            .collect();
        let chunk_entries: HashSet<u64> = review
            .recordings
            .iter()
            .flat_map(|r| r.chunks.iter().map(|(i, _)| *i))
            .collect();
        review.indexes.extend(chunk_entries);
        review.indexes.sort_unstable();
        review.indexes.dedup();
        review
    }

    /// The time span the review covers, Unix ms (first entry, and the later of the last
    /// entry and the last grant's expiry), for drawing TTL bars.
    pub fn span_ms(&self) -> Option<(u64, u64)> {
        let first = self.timeline.first()?.time_ms;
        let last = self.timeline.last()?.time_ms;
        let exp = self.grants.iter().map(|g| g.exp_ms).max().unwrap_or(last);
        Some((first, last.max(exp).max(first + 1)))
    }
}

/// Marks grant `grant` ended (the first end the log records wins).
fn end_grant(
    review: &mut Review,
    rows: &HashMap<GrantId, usize>,
    grant: &GrantId,
    index: u64,
    time_ms: u64,
    how: impl FnOnce() -> String,
) {
    if let Some(row) = rows.get(grant).and_then(|&i| review.grants.get_mut(i))
        && row.end.is_none()
    {
        row.end = Some(GrantEnd {
            index,
            time_ms,
            how: how(),
        });
    }
}

/// The requests and grants in scope.
fn select(events: &[(u64, Event)], scope: &Scope) -> InScope {
    let mut ids = InScope::default();
    for (_, event) in events {
        match &event.event {
            EventKind::Request {
                request, incident, ..
            } => {
                let matches = scope.incident.as_ref().is_none_or(|i| i == incident)
                    && scope
                        .responder
                        .as_ref()
                        .is_none_or(|r| event.actor.as_ref() == Some(r))
                    && scope.in_window(event.time_ms);
                if matches {
                    ids.requests.insert(request.clone());
                }
            }
            EventKind::Grant { grant, request, .. } if ids.requests.contains(request) => {
                ids.grants.insert(grant.clone());
            }
            _ => {}
        }
    }
    ids
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
