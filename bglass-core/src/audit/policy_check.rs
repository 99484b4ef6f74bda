//! The policy check: replays a verified log and proves, entry by entry, that what it records
//! was allowed by the roster and catalog then in force (kept beside the log, see
//! [`super::policy_files`]). Integrity (`audit verify`) proves the log is the one the proxy
//! signed; this proves the proxy — or whoever holds its key — only signed what the rules
//! allowed:
//!
//! - every request carries an envelope signed by the requester's key as the roster in force
//!   lists it, asking for what the entry says;
//! - every grant answers such a request, for its requester and service; unless it is an
//!   emergency or a canary's (the canary role, a minute long) it has the catalog's number of
//!   signed approvals from distinct holders of the approver role in force, none the requester;
//! - its TTL is within the catalog's maximum (the bypass's, for an emergency grant) and what
//!   was asked, and it starts at the final approval (at the request, when none is needed);
//! - emergency grants exist only where the catalog allows the bypass, and each is reviewed,
//!   by an approver other than its holder, within the review window;
//! - every use, tunnel and SSH certificate falls within a live grant of its holder for that
//!   service (within the clock skew the proxy allows), and none starts more than a second
//!   after the grant was revoked;
//! - every revocation and review is signed by someone allowed to make it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::event::{Event, EventKind, StoredEnvelope};
use super::policy_files::{self, PolicyKind};
use super::report::{REVOKE_GRACE_MS, USE_SKEW_MS};
use crate::catalog::Catalog;
use crate::duration::elapsed_text;
use crate::envelope::{Action, DecodedEnvelope, RequestPayload};
use crate::id::{GrantId, RequestId, ResponderId, ServiceName};
use crate::roster::{Role, Roster};

/// Slack allowed between a decision and the time its entry was stamped, in milliseconds
/// (the proxy decides, then stamps the entry as it queues it).
const CLOCK_SLACK_MS: u64 = 2_000;

/// One way an entry broke the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The entry's index.
    pub index: u64,
    /// A stable code (`approval_signature`, `ttl_above_max`, `use_after_revoke`, …).
    pub kind: &'static str,
    /// What is wrong, in a sentence.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry {}: {}: {}", self.index, self.kind, self.detail)
    }
}

/// What the check found.
#[derive(Debug, Default)]
pub struct PolicyReport {
    /// Entries checked.
    pub entries: u64,
    /// Grants checked.
    pub grants: u64,
    /// Signed envelopes verified.
    pub envelopes: u64,
    /// Every violation, in log order.
    pub violations: Vec<Violation>,
}

/// How to check.
#[derive(Debug, Clone, Copy)]
pub struct PolicyOptions {
    /// An emergency grant must be reviewed within this many milliseconds of its issue.
    pub review_within_ms: u64,
}

struct RequestRec {
    requester: ResponderId,
    service: ServiceName,
    ttl_secs: u64,
    emergency: bool,
    /// A canary's probe request (no approvals; the canary role; one round of probes).
    canary: bool,
    time_ms: u64,
    /// Approvers whose signed approval verified, with the time of the approval.
    approvals: Vec<(ResponderId, u64)>,
}

struct GrantRec {
    holder: ResponderId,
    service: ServiceName,
    nbf: u64,
    exp: u64,
    emergency: bool,
    index: u64,
    time_ms: u64,
    revoked_ms: Option<u64>,
    reviewed_ms: Option<u64>,
}

struct Checker<'a> {
    dir: &'a Path,
    options: PolicyOptions,
    roster: Option<Arc<Roster>>,
    catalog: Option<Arc<Catalog>>,
    rosters: HashMap<String, Arc<Roster>>,
    catalogs: HashMap<String, Arc<Catalog>>,
    requests: HashMap<RequestId, RequestRec>,
    grants: HashMap<GrantId, GrantRec>,
    use_starts: HashSet<u64>,
    last_ms: u64,
    report: PolicyReport,
}

/// Checks the events of a verified log (in order, with their indexes) against the policy
/// files kept in `dir`, the log's directory.
pub fn check(
    dir: &Path,
    events: impl IntoIterator<Item = (u64, Event)>,
    options: PolicyOptions,
) -> PolicyReport {
    let mut c = Checker {
        dir,
        options,
        roster: None,
        catalog: None,
        rosters: HashMap::new(),
        catalogs: HashMap::new(),
        requests: HashMap::new(),
        grants: HashMap::new(),
        use_starts: HashSet::new(),
        last_ms: 0,
        report: PolicyReport::default(),
    };
    for (index, event) in events {
        c.report.entries += 1;
        c.last_ms = c.last_ms.max(event.time_ms);
        c.entry(index, &event);
    }
    c.finish();
    c.report
}

impl Checker<'_> {
    fn violation(&mut self, index: u64, kind: &'static str, detail: impl Into<String>) {
        self.report.violations.push(Violation {
            index,
            kind,
            detail: detail.into(),
        });
    }

    fn load_roster(&mut self, index: u64, digest: &str) {
        if let Some(r) = self.rosters.get(digest) {
            self.roster = Some(Arc::clone(r));
            return;
        }
        let parsed = policy_files::load(self.dir, PolicyKind::Roster, digest)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                Roster::from_bytes(Path::new("roster"), bytes).map_err(|e| e.to_string())
            });
        match parsed {
            Ok(r) => {
                let r = Arc::new(r);
                self.rosters.insert(digest.to_owned(), Arc::clone(&r));
                self.roster = Some(r);
            }
            Err(e) => {
                self.roster = None;
                self.violation(index, "roster_unavailable", e);
            }
        }
    }

    fn load_catalog(&mut self, index: u64, digest: &str) {
        if let Some(c) = self.catalogs.get(digest) {
            self.catalog = Some(Arc::clone(c));
            return;
        }
        let parsed = policy_files::load(self.dir, PolicyKind::Catalog, digest)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                Catalog::from_bytes(Path::new("catalog"), bytes).map_err(|e| e.to_string())
            });
        match parsed {
            Ok(c) => {
                let c = Arc::new(c);
                self.catalogs.insert(digest.to_owned(), Arc::clone(&c));
                self.catalog = Some(c);
            }
            Err(e) => {
                self.catalog = None;
                self.violation(index, "catalog_unavailable", e);
            }
        }
    }

    /// Verifies a stored envelope as signed by `signer`'s key in the roster in force, at the
    /// entry's time, for the log's proxy; returns its payload.
    fn envelope(
        &mut self,
        index: u64,
        event: &Event,
        signer: Option<&ResponderId>,
        stored: &StoredEnvelope,
        kind: &'static str,
    ) -> Option<RequestPayload> {
        self.report.envelopes += 1;
        let Some(signer) = signer else {
            self.violation(index, kind, "the entry names no actor to have signed it");
            return None;
        };
        let Some(roster) = self.roster.clone() else {
            self.violation(
                index,
                kind,
                "no roster in force to check the signature against",
            );
            return None;
        };
        let bytes = match serde_json::to_vec(stored) {
            Ok(b) => b,
            Err(e) => {
                self.violation(index, kind, e.to_string());
                return None;
            }
        };
        let decoded = match DecodedEnvelope::decode(&bytes) {
            Ok(d) => d,
            Err(e) => {
                self.violation(index, kind, format!("the envelope does not decode: {e}"));
                return None;
            }
        };
        if decoded.claimed_responder() != signer {
            self.violation(
                index,
                kind,
                format!(
                    "the envelope is {}'s, the entry says {signer} acted",
                    decoded.claimed_responder()
                ),
            );
            return None;
        }
        let Some(entry) = roster.get(signer) else {
            self.violation(
                index,
                "signer_not_in_roster",
                format!("{signer} signed it, but is not in the roster in force"),
            );
            return None;
        };
        match decoded.verify(Some(&entry.key), None, &event.proxy, event.time_ms / 1000) {
            Ok(v) => Some(v.payload().clone()),
            Err(e) => {
                self.violation(
                    index,
                    kind,
                    format!("{signer}'s envelope does not verify against the roster in force: {e}"),
                );
                None
            }
        }
    }

    fn has_role(&self, who: &ResponderId, role: Role) -> bool {
        self.roster
            .as_ref()
            .and_then(|r| r.get(who))
            .is_some_and(|e| e.has(role))
    }

    fn entry(&mut self, index: u64, event: &Event) {
        match &event.event {
            EventKind::ProxyStart {
                catalog, roster, ..
            } => {
                self.load_catalog(index, catalog);
                self.load_roster(index, roster);
            }
            EventKind::ConfigReload {
                file,
                accepted: true,
                digest: Some(digest),
                ..
            } => match file.as_str() {
                "catalog" => self.load_catalog(index, digest),
                "roster" => self.load_roster(index, digest),
                other => self.violation(
                    index,
                    "unknown_config",
                    format!("a reload of {other:?}, which is neither catalog nor roster"),
                ),
            },
            EventKind::Request {
                request,
                service,
                ttl_secs,
                emergency,
                envelope,
                ..
            } => self.request(
                index, event, request, service, *ttl_secs, *emergency, envelope,
            ),
            EventKind::Approval { request, envelope } => {
                self.approval(index, event, request, envelope);
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
            } => self.grant(
                index, event, grant, request, responder, service, *nbf, *exp, *emergency,
            ),
            EventKind::UseStart { grant, service, .. }
                if self.within_grant(index, event, grant, service, "use") =>
            {
                self.use_starts.insert(index);
            }
            EventKind::Use {
                grant,
                service,
                start,
                ..
            } => match start {
                // The outcome of a request whose start was checked: it may end after a
                // revocation (the response was cut), never begin after one.
                Some(s) if self.use_starts.remove(s) => {}
                _ => {
                    self.within_grant(index, event, grant, service, "use");
                }
            },
            EventKind::TunnelOpen { grant, service, .. } => {
                self.within_grant(index, event, grant, service, "tunnel");
            }
            EventKind::SshCertificate { grant, service, .. } => {
                self.within_grant(index, event, grant, service, "SSH certificate");
            }
            EventKind::Revoke {
                grant, envelope, ..
            } => self.revoke(index, event, grant, envelope.as_ref()),
            EventKind::Review {
                grant, envelope, ..
            } => self.review(index, event, grant, envelope),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        index: u64,
        event: &Event,
        request: &RequestId,
        service: &ServiceName,
        ttl_secs: u64,
        emergency: bool,
        envelope: &StoredEnvelope,
    ) {
        let actor = event.actor.clone();
        let Some(payload) =
            self.envelope(index, event, actor.as_ref(), envelope, "request_signature")
        else {
            return;
        };
        let Some(requester) = actor else { return };
        match &payload.action {
            Action::Access(a) if &a.service == service && a.emergency == emergency => {}
            _ => self.violation(
                index,
                "request_mismatch",
                format!("the signed envelope does not ask for {service} as the entry records"),
            ),
        }
        let canary = matches!(&payload.action, Action::Access(a) if a.canary);
        let role = if canary {
            Role::Canary
        } else {
            Role::Responder
        };
        if !self.has_role(&requester, role) {
            self.violation(
                index,
                "requester_not_responder",
                format!("{requester} does not hold the {role} role in the roster in force"),
            );
        }
        self.requests.insert(
            request.clone(),
            RequestRec {
                requester,
                service: service.clone(),
                ttl_secs,
                emergency,
                canary,
                time_ms: event.time_ms,
                approvals: Vec::new(),
            },
        );
    }

    fn approval(
        &mut self,
        index: u64,
        event: &Event,
        request: &RequestId,
        envelope: &StoredEnvelope,
    ) {
        let actor = event.actor.clone();
        let Some(payload) =
            self.envelope(index, event, actor.as_ref(), envelope, "approval_signature")
        else {
            return;
        };
        let Some(approver) = actor else { return };
        if !matches!(&payload.action, Action::Approve { request: r } if r == request) {
            self.violation(
                index,
                "approval_mismatch",
                format!("{approver}'s signed envelope does not approve {request}"),
            );
            return;
        }
        if !self.has_role(&approver, Role::Approver) {
            self.violation(
                index,
                "approver_without_role",
                format!("{approver} does not hold the approver role in the roster in force"),
            );
            return;
        }
        let Some(r) = self.requests.get_mut(request) else {
            self.violation(
                index,
                "approval_of_unknown_request",
                format!("no request {request} before this approval"),
            );
            return;
        };
        if r.requester == approver {
            self.violation(
                index,
                "self_approval",
                format!("{approver} approved their own request {request}"),
            );
            return;
        }
        if r.approvals.iter().any(|(a, _)| a == &approver) {
            self.violation(
                index,
                "duplicate_approval",
                format!("{approver} approved {request} twice"),
            );
            return;
        }
        r.approvals.push((approver, event.time_ms));
    }

    #[allow(clippy::too_many_arguments)]
    fn grant(
        &mut self,
        index: u64,
        event: &Event,
        grant: &GrantId,
        request: &RequestId,
        responder: &ResponderId,
        service: &ServiceName,
        nbf: u64,
        exp: u64,
        emergency: bool,
    ) {
        self.report.grants += 1;
        self.grants.insert(
            grant.clone(),
            GrantRec {
                holder: responder.clone(),
                service: service.clone(),
                nbf,
                exp,
                emergency,
                index,
                time_ms: event.time_ms,
                revoked_ms: None,
                reviewed_ms: None,
            },
        );
        let Some(r) = self.requests.get(request) else {
            self.violation(
                index,
                "grant_without_request",
                format!("{grant} answers {request}, which no signed request before it asked for"),
            );
            return;
        };
        let (requester, asked_service, asked_ttl, asked_emergency, request_ms, canary) = (
            r.requester.clone(),
            r.service.clone(),
            r.ttl_secs,
            r.emergency,
            r.time_ms,
            r.canary,
        );
        // Only approvals of approvers still in the roster in force, with the role, count.
        let mut approvals: Vec<(ResponderId, u64)> = r
            .approvals
            .iter()
            .filter(|(a, _)| self.has_role(a, Role::Approver))
            .cloned()
            .collect();
        approvals.sort_by_key(|(_, t)| *t);
        if &requester != responder || &asked_service != service {
            self.violation(
                index,
                "grant_mismatch",
                format!(
                    "{grant} is for {responder} on {service}; {request} was {requester}'s for {asked_service}"
                ),
            );
        }
        let Some(catalog) = self.catalog.clone() else {
            self.violation(
                index,
                "grant_unchecked",
                "no catalog in force to check it against",
            );
            return;
        };
        let Some(svc) = catalog.get(service) else {
            self.violation(
                index,
                "grant_for_unknown_service",
                format!("{service} is not in the catalog in force"),
            );
            return;
        };
        let ttl = exp.saturating_sub(nbf);
        let max = if emergency {
            match svc.emergency {
                Some(b) => b.ttl.as_secs().min(svc.max_ttl.as_secs()),
                None => {
                    self.violation(
                        index,
                        "emergency_not_allowed",
                        format!("{grant} was issued under the emergency bypass, which the catalog in force does not allow for {service}"),
                    );
                    svc.max_ttl.as_secs()
                }
            }
        } else if canary {
            crate::grant::CANARY_TTL_SECS.min(svc.max_ttl.as_secs())
        } else {
            svc.max_ttl.as_secs()
        };
        if ttl > max || ttl > asked_ttl {
            self.violation(
                index,
                "ttl_above_max",
                format!(
                    "{grant} lasts {ttl} s; the most allowed was {} s (catalog maximum {max} s, asked {asked_ttl} s)",
                    max.min(asked_ttl)
                ),
            );
        }
        if emergency && !asked_emergency {
            self.violation(
                index,
                "emergency_not_asked",
                format!("{grant} is an emergency grant, but {request} did not ask for the bypass"),
            );
        }
        // When the grant's TTL starts: at the final counted approval, or at the request.
        let needed = if canary {
            0
        } else {
            usize::from(svc.approvals)
        };
        let start_ms = if emergency || needed == 0 {
            request_ms
        } else {
            if approvals.len() < needed {
                self.violation(
                    index,
                    "approvals_missing",
                    format!(
                        "{grant} needed {needed} approvals from distinct approvers in the roster in force; {} were recorded",
                        approvals.len()
                    ),
                );
            }
            approvals.last().map_or(request_ms, |(_, t)| *t)
        };
        let nbf_ms = nbf.saturating_mul(1000);
        if nbf_ms.saturating_add(CLOCK_SLACK_MS) < start_ms
            || nbf_ms > event.time_ms.saturating_add(CLOCK_SLACK_MS)
        {
            self.violation(
                index,
                "ttl_start",
                format!(
                    "{grant} starts at {nbf}; it must start at the final approval (or the request), {}",
                    start_ms / 1000
                ),
            );
        }
    }

    /// Checks that a use, tunnel or certificate falls in a live grant of its actor for its
    /// service. Returns whether it does.
    fn within_grant(
        &mut self,
        index: u64,
        event: &Event,
        grant: &GrantId,
        service: &ServiceName,
        what: &str,
    ) -> bool {
        let Some(g) = self.grants.get(grant) else {
            self.violation(
                index,
                "use_without_grant",
                format!("a {what} under {grant}, which no grant before it issued"),
            );
            return false;
        };
        let mut problems = Vec::new();
        if event.actor.as_ref() != Some(&g.holder) {
            problems.push((
                "use_by_other",
                format!(
                    "a {what} under {grant} by {}, but the grant is {}'s",
                    event.actor.as_ref().map_or("the proxy", |a| a.as_str()),
                    g.holder
                ),
            ));
        }
        if &g.service != service {
            problems.push((
                "use_of_other_service",
                format!(
                    "a {what} of {service} under {grant}, a grant for {}",
                    g.service
                ),
            ));
        }
        // A request past its checks while the revocation was being made durable may start
        // just after it: the same grace as `audit report`.
        if let Some(revoked) = g.revoked_ms
            && event.time_ms > revoked.saturating_add(REVOKE_GRACE_MS)
        {
            problems.push((
                "use_after_revoke",
                format!("a {what} under {grant} after it was revoked"),
            ));
        }
        let t = event.time_ms;
        // The clock skew the proxy allows when it verifies a grant.
        if t.saturating_add(USE_SKEW_MS) < g.nbf.saturating_mul(1000)
            || t >= g.exp.saturating_mul(1000).saturating_add(USE_SKEW_MS)
        {
            problems.push((
                "use_outside_grant",
                format!(
                    "a {what} under {grant} at {} s, outside its window {}–{}",
                    t / 1000,
                    g.nbf,
                    g.exp
                ),
            ));
        }
        let ok = problems.is_empty();
        for (kind, detail) in problems {
            self.violation(index, kind, detail);
        }
        ok
    }

    fn revoke(
        &mut self,
        index: u64,
        event: &Event,
        grant: &GrantId,
        envelope: Option<&StoredEnvelope>,
    ) {
        if let Some(envelope) = envelope {
            let actor = event.actor.clone();
            if let Some(payload) =
                self.envelope(index, event, actor.as_ref(), envelope, "revoke_signature")
                && let Some(who) = actor
            {
                if !matches!(&payload.action, Action::Revoke { grant: g, .. } if g == grant) {
                    self.violation(
                        index,
                        "revoke_mismatch",
                        format!("{who}'s signed envelope does not revoke {grant}"),
                    );
                }
                let holder = self.grants.get(grant).map(|g| g.holder.clone());
                if holder.as_ref() != Some(&who) && !self.has_role(&who, Role::Approver) {
                    self.violation(
                        index,
                        "revoke_without_role",
                        format!("{who} revoked {grant} without being its holder or an approver"),
                    );
                }
            }
        }
        if let Some(g) = self.grants.get_mut(grant) {
            g.revoked_ms.get_or_insert(event.time_ms);
        }
    }

    fn review(&mut self, index: u64, event: &Event, grant: &GrantId, envelope: &StoredEnvelope) {
        let actor = event.actor.clone();
        let Some(payload) =
            self.envelope(index, event, actor.as_ref(), envelope, "review_signature")
        else {
            return;
        };
        let Some(who) = actor else { return };
        if !matches!(&payload.action, Action::Review { grant: g, .. } if g == grant) {
            self.violation(
                index,
                "review_mismatch",
                format!("{who}'s signed envelope does not review {grant}"),
            );
            return;
        }
        if !self.has_role(&who, Role::Approver) {
            self.violation(
                index,
                "review_without_role",
                format!("{who} reviewed {grant} without the approver role"),
            );
            return;
        }
        match self.grants.get_mut(grant) {
            Some(g) if g.holder == who => {
                self.violation(
                    index,
                    "self_review",
                    format!("{who} reviewed their own emergency grant {grant}"),
                );
            }
            Some(g) => {
                g.reviewed_ms.get_or_insert(event.time_ms);
            }
            None => self.violation(
                index,
                "review_of_unknown_grant",
                format!("no grant {grant} before this review"),
            ),
        }
    }

    /// Emergency grants whose review window has passed by the log's last entry.
    fn finish(&mut self) {
        let window = self.options.review_within_ms;
        let mut late: Vec<(u64, String, &'static str)> = Vec::new();
        for (id, g) in &self.grants {
            if !g.emergency {
                continue;
            }
            let due = g.time_ms.saturating_add(window);
            match g.reviewed_ms {
                Some(t) if t > due => late.push((
                    g.index,
                    format!(
                        "{id} was reviewed {} after its issue; the window is {}",
                        elapsed_text(t - g.time_ms),
                        elapsed_text(window)
                    ),
                    "review_late",
                )),
                None if self.last_ms > due => late.push((
                    g.index,
                    format!(
                        "{id} was not reviewed within {} of its issue",
                        elapsed_text(window)
                    ),
                    "review_missing",
                )),
                _ => {}
            }
        }
        late.sort_by_key(|(i, _, _)| *i);
        for (index, detail, kind) in late {
            self.violation(index, kind, detail);
        }
        self.report.violations.sort_by_key(|v| v.index);
    }
}
mod both;
pub use both::verify_and_check;
#[cfg(test)]
mod tests;
