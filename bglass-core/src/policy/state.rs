//! The policy's live state — pending requests, grants, revocations, open reviews, recent
//! nonces, the live drill — and how audit events change it: [`State::apply`] live and
//! [`State::replay`] at start-up, so that the state is exactly what the log says. The
//! queries the proxy's background tasks ask of it are here too.

use std::collections::{BTreeMap, HashMap};

use crate::audit::event::{Event, EventKind, StoredEnvelope, peek_kind};
use crate::audit::log::ReplayError;
use crate::drill::LivePlan;
use crate::duration::HumanDuration;
use crate::envelope::{AccessRequest, DecodedEnvelope, Nonce, ReplayGuard};
use crate::grant::GrantClaims;
use crate::id::{GrantId, RequestId, ResponderId};
use crate::roster::{Responder, Role, Roster};

use super::{
    CANCELLED_BY_REQUESTER, DENIED_BY_APPROVER, REPLAY_CAPACITY, REPLAY_IGNORES, REPLAY_QUOTA,
    REQUEST_EXPIRED,
};

/// Where a request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestStatus {
    /// Waiting for approvals.
    Pending,
    /// A grant was issued.
    Granted(GrantId),
    /// An approver refused it.
    Denied(String),
    /// Nobody decided within the proxy's `request_ttl`.
    Expired,
    /// Its requester withdrew it.
    Cancelled,
}

/// A request as the state holds it.
#[derive(Clone, Debug)]
pub struct RequestRec {
    /// The request.
    pub id: RequestId,
    /// Requester.
    pub responder: ResponderId,
    /// What was asked.
    pub access: AccessRequest,
    /// TTL, seconds (the request's, or the catalog default).
    pub ttl_secs: u64,
    /// When, Unix ms.
    pub created_ms: u64,
    /// Approvers so far.
    pub approved_by: Vec<ResponderId>,
    /// Status.
    pub status: RequestStatus,
    /// When it ended without a grant (denied, expired or withdrawn), Unix ms; 0 before.
    pub ended_ms: u64,
    /// Drill, if any.
    pub drill: Option<String>,
    /// Order of arrival at this proxy (1, 2, …): approvers long-poll for requests newer
    /// than the last they saw.
    pub seq: u64,
}

/// A grant as the state holds it.
#[derive(Clone, Debug)]
pub struct GrantRec {
    /// The signed claims.
    pub claims: GrantClaims,
    /// The token.
    pub token: String,
    /// Its audit entry.
    pub index: u64,
    /// Ended early at, Unix ms.
    pub revoked_ms: Option<u64>,
    /// Who ended it early (`None` for the proxy itself, e.g. its holder left the roster),
    /// and why: the revocation that counts (the earliest).
    pub revoked: Option<(Option<ResponderId>, String)>,
    /// Expiry recorded.
    pub expired: bool,
    /// Review closed by, for emergency grants.
    pub reviewed_by: Option<ResponderId>,
}

impl GrantRec {
    /// Active at `now_ms`: not revoked, not expired.
    pub fn active(&self, now_ms: u64) -> bool {
        self.revoked_ms.is_none() && !self.expired && now_ms < self.claims.exp.saturating_mul(1000)
    }
}

/// The live state.
#[derive(Debug)]
pub struct State {
    /// Requests by id.
    pub requests: HashMap<RequestId, RequestRec>,
    /// Grants by id.
    pub grants: HashMap<GrantId, GrantRec>,
    /// Recently seen nonces.
    pub replay: ReplayGuard,
    /// The live drill, if one is running.
    pub drill: Option<String>,
    /// Its plan and when it started (Unix ms), when started through the API.
    pub drill_plan: Option<(LivePlan, u64)>,
    /// Requests received so far (the last [`RequestRec::seq`]).
    pub request_seq: u64,
    /// The pending requests by `seq` (approvers' lists without scanning every request).
    pub pending: BTreeMap<u64, RequestId>,
    /// The digests of the catalog and roster the log last put in force (`proxy_start`, an
    /// accepted `config_reload`): what a signed change must name as its parent.
    pub in_force: PolicyInForce,
    /// The rotations of the signing key the log records, in order (`/healthz` shows them
    /// so that a CLI that knew an older key can follow them to the current one).
    pub key_transitions: Vec<crate::audit::rotation::KeyTransition>,
    /// The last canary probe of each service (for `/metrics` and `bglass status`).
    pub canary: BTreeMap<crate::id::ServiceName, crate::api::CanaryStatus>,
}

/// The digests of the catalog and roster in force, as the log records them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyInForce {
    /// The catalog's SHA-256, hex.
    pub catalog: Option<String>,
    /// The roster's SHA-256, hex.
    pub roster: Option<String>,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

fn envelope_nonce(envelope: &StoredEnvelope) -> Option<(ResponderId, Nonce, u64)> {
    let bytes = serde_json::to_vec(envelope).ok()?;
    let decoded = DecodedEnvelope::decode(&bytes).ok()?;
    let payload = decoded.unverified_payload();
    Some((payload.responder.clone(), payload.nonce, payload.iat))
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self {
            requests: HashMap::new(),
            grants: HashMap::new(),
            replay: ReplayGuard::with_quota(REPLAY_CAPACITY, REPLAY_QUOTA),
            drill: None,
            drill_plan: None,
            request_seq: 0,
            pending: BTreeMap::new(),
            in_force: PolicyInForce::default(),
            key_transitions: Vec::new(),
            canary: BTreeMap::new(),
        }
    }

    /// Replays one log entry at start-up. Entries of a kind that never changes the state
    /// ([`REPLAY_IGNORES`]: uses, tunnels, SSH certificates, … the bulk of a long log) are
    /// recognised from the head of their canonical encoding and not parsed; every other
    /// entry is parsed and applied, and one that does not parse stops the start.
    pub fn replay(&mut self, index: u64, bytes: &[u8]) -> Result<(), ReplayError> {
        if peek_kind(bytes).is_some_and(|kind| REPLAY_IGNORES.contains(&kind)) {
            return Ok(());
        }
        let event = Event::from_bytes(bytes)?;
        self.apply(index, &event);
        Ok(())
    }

    /// Ends a pending request without a grant. Live, the proxy applies the events it
    /// records itself (expiries) once they are durable but its decisions at once, so two
    /// ends of one request (an expiry and a withdrawal or a denial) can be applied in the
    /// opposite order from the log's. The earlier end wins whatever the order — by time,
    /// then denial before withdrawal before expiry, then the denier's name — so that the
    /// state a restart replays is the live one.
    fn end_request(&mut self, id: &RequestId, status: RequestStatus, at_ms: u64) {
        fn rank(status: &RequestStatus) -> Option<(u8, &str)> {
            match status {
                RequestStatus::Denied(by) => Some((0, by.as_str())),
                RequestStatus::Cancelled => Some((1, "")),
                RequestStatus::Expired => Some((2, "")),
                RequestStatus::Pending | RequestStatus::Granted(_) => None,
            }
        }
        let Some(r) = self.requests.get_mut(id) else {
            return;
        };
        let replace = match (&r.status, rank(&status)) {
            (RequestStatus::Pending, Some(_)) => true,
            (current, Some(new)) => {
                rank(current).is_some_and(|old| (at_ms, new) < (r.ended_ms, old))
            }
            (_, None) => false,
        };
        if replace {
            self.pending.remove(&r.seq);
            r.status = status;
            r.ended_ms = at_ms;
        }
    }

    /// Applies one event (at replay, or once it is durable live).
    pub fn apply(&mut self, index: u64, event: &Event) {
        let now_s = event.time_ms / 1000;
        let mut remember = |envelope: &StoredEnvelope| {
            if let Some((responder, nonce, iat)) = envelope_nonce(envelope) {
                // A nonce seen twice in the log would have been refused live; ignore.
                let _ = self.replay.record(&responder, nonce, iat, now_s);
            }
        };
        match &event.event {
            EventKind::Request {
                request,
                service,
                ttl_secs,
                emergency,
                reason,
                incident,
                envelope,
            } => {
                remember(envelope);
                let Some(responder) = event.actor.clone() else {
                    return;
                };
                self.request_seq += 1;
                let seq = self.request_seq;
                self.pending.insert(seq, request.clone());
                self.requests.insert(
                    request.clone(),
                    RequestRec {
                        id: request.clone(),
                        responder,
                        access: AccessRequest {
                            service: service.clone(),
                            ttl: HumanDuration::from_secs(*ttl_secs),
                            reason: reason.clone(),
                            incident: incident.clone(),
                            emergency: *emergency,
                            drill: event.drill.clone(),
                            // A canary request is granted in the same decision: never
                            // pending, so what it asked needs no replaying.
                            canary: false,
                        },
                        ttl_secs: *ttl_secs,
                        created_ms: event.time_ms,
                        approved_by: Vec::new(),
                        status: RequestStatus::Pending,
                        ended_ms: 0,
                        drill: event.drill.clone(),
                        seq,
                    },
                );
            }
            EventKind::Approval { request, envelope } => {
                remember(envelope);
                if let (Some(r), Some(actor)) = (self.requests.get_mut(request), &event.actor)
                    && !r.approved_by.contains(actor)
                {
                    r.approved_by.push(actor.clone());
                }
            }
            EventKind::Denial {
                request,
                envelope,
                reason,
                ..
            } => {
                if let Some(envelope) = envelope {
                    remember(envelope);
                }
                let end = match reason.as_str() {
                    DENIED_BY_APPROVER => {
                        Some(RequestStatus::Denied(event.actor.as_ref().map_or_else(
                            || "an approver".to_owned(),
                            ToString::to_string,
                        )))
                    }
                    REQUEST_EXPIRED => Some(RequestStatus::Expired),
                    // Only the requester's own withdrawal counts.
                    CANCELLED_BY_REQUESTER => request
                        .as_ref()
                        .and_then(|id| self.requests.get(id))
                        .filter(|r| event.actor.as_ref() == Some(&r.responder))
                        .map(|_| RequestStatus::Cancelled),
                    _ => None,
                };
                if let (Some(status), Some(id)) = (end, request.as_ref()) {
                    self.end_request(id, status, event.time_ms);
                }
            }
            EventKind::Grant {
                grant,
                request,
                token,
                ..
            } => {
                // The claims come from the token the proxy signed (not re-verified here:
                // the log's integrity is the proxy's own).
                let claims = token
                    .split('.')
                    .nth(1)
                    .and_then(|p| {
                        use base64::Engine;
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(p)
                            .ok()
                    })
                    .and_then(|bytes| serde_json::from_slice::<GrantClaims>(&bytes).ok());
                if let Some(claims) = claims {
                    self.grants.insert(
                        grant.clone(),
                        GrantRec {
                            claims,
                            token: token.clone(),
                            index,
                            revoked_ms: None,
                            revoked: None,
                            expired: false,
                            reviewed_by: None,
                        },
                    );
                }
                if let Some(r) = self.requests.get_mut(request) {
                    self.pending.remove(&r.seq);
                    r.status = RequestStatus::Granted(grant.clone());
                }
            }
            EventKind::Revoke {
                grant,
                envelope,
                reason,
            } => {
                if let Some(envelope) = envelope {
                    remember(envelope);
                }
                // The first revocation ended the grant. The proxy applies the revocations it
                // records itself (holders who left the roster) once durable, so a revocation
                // decided meanwhile may be applied before one the log holds earlier: keep
                // the earliest, so that replay rebuilds what the proxy had.
                // Revocations in the same millisecond: the same one whatever the order
                // (the smallest actor, then reason), so that replay agrees with live.
                if let Some(g) = self.grants.get_mut(grant) {
                    let candidate = (event.time_ms, event.actor.clone(), reason.clone());
                    let first = match (g.revoked_ms, &g.revoked) {
                        (Some(t), Some((actor, why))) => {
                            candidate < (t, actor.clone(), why.clone())
                        }
                        (Some(t), None) => event.time_ms < t,
                        (None, _) => true,
                    };
                    if first {
                        g.revoked_ms = Some(event.time_ms);
                        g.revoked = Some((event.actor.clone(), reason.clone()));
                    }
                }
            }
            EventKind::Expiry { grant } => {
                if let Some(g) = self.grants.get_mut(grant) {
                    g.expired = true;
                }
            }
            EventKind::Review {
                grant, envelope, ..
            } => {
                remember(envelope);
                if let Some(g) = self.grants.get_mut(grant) {
                    g.reviewed_by = event.actor.clone();
                }
            }
            EventKind::DrillStart { plan, envelope, .. } => {
                if let Some(envelope) = envelope {
                    remember(envelope);
                }
                self.drill = event.drill.clone();
                self.drill_plan = plan.clone().map(|p| (p, event.time_ms));
            }
            EventKind::DrillStop {} => {
                self.drill = None;
                self.drill_plan = None;
            }
            EventKind::ProxyStart {
                catalog, roster, ..
            } => {
                self.in_force.catalog = Some(catalog.clone());
                self.in_force.roster = Some(roster.clone());
            }
            EventKind::CanaryReport { results } => {
                for probe in results {
                    let last_ok_ms = if probe.ok {
                        Some(event.time_ms)
                    } else {
                        self.canary.get(&probe.service).and_then(|c| c.last_ok_ms)
                    };
                    self.canary.insert(
                        probe.service.clone(),
                        crate::api::CanaryStatus {
                            probe: probe.clone(),
                            at_ms: event.time_ms,
                            last_ok_ms,
                        },
                    );
                }
            }
            EventKind::SigningKeyRotated { transition } => {
                self.key_transitions.push(transition.clone());
            }
            EventKind::ConfigReload {
                file,
                accepted: true,
                digest: Some(digest),
                ..
            } => match file.as_str() {
                "catalog" => self.in_force.catalog = Some(digest.clone()),
                "roster" => self.in_force.roster = Some(digest.clone()),
                _ => {}
            },
            _ => {}
        }
    }

    /// The drill an event belongs to: the drill of the request or grant it concerns (a
    /// grant carries its request's drill, signed), or the running drill for its stop.
    /// Events of real accesses, and the proxy's own, belong to none.
    pub fn drill_tag(&self, kind: &EventKind) -> Option<String> {
        let of_request = |r: &RequestId| self.requests.get(r).and_then(|r| r.drill.clone());
        let of_grant = |g: &GrantId| self.grants.get(g).and_then(|g| g.claims.drill.clone());
        match kind {
            EventKind::Approval { request, .. } => of_request(request),
            EventKind::Grant { request, .. } => of_request(request),
            EventKind::Use { grant, .. }
            | EventKind::UseStart { grant, .. }
            | EventKind::SshCertificate { grant, .. }
            | EventKind::TunnelOpen { grant, .. }
            | EventKind::TunnelClose { grant, .. }
            | EventKind::Revoke { grant, .. }
            | EventKind::Expiry { grant }
            | EventKind::Review { grant, .. } => of_grant(grant),
            EventKind::Denial { request, grant, .. } => request
                .as_ref()
                .and_then(of_request)
                .or_else(|| grant.as_ref().and_then(of_grant)),
            EventKind::DrillStart { plan, .. } => plan.as_ref().map(|p| p.drill.to_string()),
            EventKind::DrillStop {} => self.drill.clone(),
            _ => None,
        }
    }

    /// Pending requests newer than `since` (by `seq`) that `caller` may see, oldest first.
    pub fn pending_since<'a>(
        &'a self,
        caller: &'a Responder,
        since: u64,
    ) -> impl Iterator<Item = &'a RequestRec> + 'a {
        self.pending
            .range(since.saturating_add(1)..)
            .filter_map(|(_, id)| self.requests.get(id))
            .filter(|r| matches!(r.status, RequestStatus::Pending))
            .filter(move |r| caller.has(Role::Approver) || r.responder == caller.id)
    }

    /// Whether the live drill's time is up at `now_ms`.
    pub fn drill_over(&self, now_ms: u64) -> bool {
        self.drill_plan
            .as_ref()
            .is_some_and(|(plan, started)| now_ms >= started.saturating_add(plan.duration_ms))
    }

    /// Pending requests created at or before `now_ms - ttl_ms`: no decision in time.
    pub fn due_request_expiries(&self, now_ms: u64, ttl_ms: u64) -> Vec<RequestId> {
        let cutoff = now_ms.saturating_sub(ttl_ms);
        self.pending
            .values()
            .filter_map(|id| self.requests.get(id))
            .filter(|r| matches!(r.status, RequestStatus::Pending) && r.created_ms <= cutoff)
            .map(|r| r.id.clone())
            .collect()
    }

    /// Active grants whose holder has left the roster, or whose key changed in it: they end.
    pub fn grants_of_departed(&self, roster: &Roster, now_ms: u64) -> Vec<(GrantId, ResponderId)> {
        self.grants
            .values()
            .filter(|g| g.active(now_ms))
            .filter(|g| {
                roster
                    .get(&g.claims.sub)
                    .is_none_or(|entry| entry.key != g.claims.key)
            })
            .map(|g| (g.claims.id.clone(), g.claims.sub.clone()))
            .collect()
    }

    /// Grants whose end has passed and whose expiry is not yet recorded.
    pub fn due_expiries(&self, now_ms: u64) -> Vec<GrantId> {
        self.grants
            .values()
            .filter(|g| {
                !g.expired && g.revoked_ms.is_none() && now_ms >= g.claims.exp.saturating_mul(1000)
            })
            .map(|g| g.claims.id.clone())
            .collect()
    }
}
