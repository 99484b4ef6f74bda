//! The proxy's live state — pending requests, grants, revocations, open reviews, recent
//! nonces — and the decisions taken on it. "The log is the database": the state is only ever
//! changed by applying audit events, at start-up (replay) and live, so a restarted proxy
//! rebuilds exactly what it had.
//!
//! Decisions (`decide_*`) look at the state, the catalog and the roster and return the
//! events to append, or a refusal with a stable reason code. They do not touch the state;
//! the caller applies the events once they are durable.

use std::collections::HashMap;

use bglass_core::api::{GrantView, RequestView};
use bglass_core::audit::event::{Event, EventKind, StoredEnvelope, peek_kind};
use bglass_core::catalog::Catalog;
use bglass_core::envelope::{AccessRequest, DecodedEnvelope, EnvelopeError, ReplayGuard};
use bglass_core::grant::{self, GrantClaims};
use bglass_core::id::{GrantId, ProxyId, RequestId, ResponderId};
use bglass_core::keys::SigningKey;
use bglass_core::roster::{Responder, Role, Roster};

/// The event kinds [`State::apply`] leaves the state unchanged for, so that replay skips
/// parsing them (a test applies each and checks).
pub const REPLAY_IGNORES: &[&str] = &[
    "use",
    "use_start",
    "ssh_certificate",
    "tunnel_open",
    "tunnel_close",
    "proxy_start",
    "proxy_stop",
    "config_reload",
    "drill_result",
    "log_rollback",
    "log_failed",
    "log_recovered",
    "storage_low",
    "storage_ok",
];

/// Nonces remembered (within the ±5 min window).
pub const REPLAY_CAPACITY: usize = 1_000_000;
/// Nonces remembered for one responder: about 33 signed requests a second, sustained over
/// the window; one responder can never fill the guard for everyone.
pub const REPLAY_QUOTA: usize = 20_000;
/// The denial reason of a request that waited longer than the proxy's `request_ttl`.
pub const REQUEST_EXPIRED: &str = "request_expired";

/// A refusal: stable code (for metrics, the log and clients), sentence, hint, HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Stable code.
    pub code: &'static str,
    /// One sentence.
    pub message: String,
    /// What to do next.
    pub hint: Option<String>,
    /// HTTP status.
    pub status: u16,
}

impl Refusal {
    /// A refusal.
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
            status,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The stable reason code of an envelope error.
pub fn envelope_code(e: &EnvelopeError) -> &'static str {
    match e {
        EnvelopeError::TooLarge { .. } => "too_large",
        EnvelopeError::Truncated
        | EnvelopeError::TrailingBytes
        | EnvelopeError::Malformed { .. }
        | EnvelopeError::BadText { .. } => "malformed",
        EnvelopeError::UnsupportedVersion { .. } => "unsupported_version",
        EnvelopeError::UnknownResponder { .. } => "unknown_responder",
        EnvelopeError::WrongSigner { .. } => "wrong_signer",
        EnvelopeError::BadSignature => "bad_signature",
        EnvelopeError::ConnectionKeyMismatch => "connection_key_mismatch",
        EnvelopeError::Expired { .. } => "stale_request",
        EnvelopeError::NotYetValid { .. } => "future_request",
        EnvelopeError::WrongAudience { .. } => "wrong_audience",
        EnvelopeError::Replayed => "replayed",
        EnvelopeError::ReplayGuardFull => "busy",
        EnvelopeError::ReplayQuota { .. } => "too_many_requests",
        _ => "refused",
    }
}

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

    /// As the API shows it; the token only when `with_token`.
    pub fn view(&self, now_ms: u64, with_token: bool) -> GrantView {
        let c = &self.claims;
        let state = if self.revoked_ms.is_some() {
            "revoked"
        } else if self.active(now_ms) {
            "active"
        } else {
            "expired"
        };
        GrantView {
            id: c.id.clone(),
            token: with_token.then(|| self.token.clone()),
            responder: c.sub.clone(),
            service: c.svc.clone(),
            request: c.req.clone(),
            nbf: c.nbf,
            exp: c.exp,
            emergency: c.emergency,
            state: state.to_owned(),
            review_open: c.emergency.then_some(self.reviewed_by.is_none()),
        }
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
    pub drill_plan: Option<(bglass_core::drill::LivePlan, u64)>,
    /// Requests received so far (the last [`RequestRec::seq`]).
    pub request_seq: u64,
    /// The pending requests by `seq` (approvers' lists without scanning every request).
    pub pending: std::collections::BTreeMap<u64, RequestId>,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

fn envelope_nonce(
    envelope: &StoredEnvelope,
) -> Option<(ResponderId, bglass_core::envelope::Nonce, u64)> {
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
            pending: std::collections::BTreeMap::new(),
        }
    }

    /// Applies one event (replayed at start-up, or just appended).
    /// Replays one log entry at start-up. Entries of a kind that never changes the state
    /// ([`REPLAY_IGNORES`]: uses, tunnels, SSH certificates, … the bulk of a long log) are
    /// recognised from the head of their canonical encoding and not parsed; every other
    /// entry is parsed and applied, and one that does not parse stops the start.
    pub fn replay(&mut self, index: u64, bytes: &[u8]) -> Result<(), String> {
        if peek_kind(bytes).is_some_and(|kind| REPLAY_IGNORES.contains(&kind)) {
            return Ok(());
        }
        let event = Event::from_bytes(bytes).map_err(|e| e.to_string())?;
        self.apply(index, &event);
        Ok(())
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
                            ttl: bglass_core::duration::HumanDuration::from_secs(*ttl_secs),
                            reason: reason.clone(),
                            incident: incident.clone(),
                            emergency: *emergency,
                            drill: event.drill.clone(),
                        },
                        ttl_secs: *ttl_secs,
                        created_ms: event.time_ms,
                        approved_by: Vec::new(),
                        status: RequestStatus::Pending,
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
                if reason == "denied_by_approver"
                    && let Some(r) = request.as_ref().and_then(|id| self.requests.get_mut(id))
                {
                    self.pending.remove(&r.seq);
                    r.status = RequestStatus::Denied(
                        event
                            .actor
                            .as_ref()
                            .map_or_else(|| "an approver".to_owned(), ToString::to_string),
                    );
                }
                if reason == REQUEST_EXPIRED
                    && let Some(r) = request.as_ref().and_then(|id| self.requests.get_mut(id))
                    && matches!(r.status, RequestStatus::Pending)
                {
                    self.pending.remove(&r.seq);
                    r.status = RequestStatus::Expired;
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
                grant, envelope, ..
            } => {
                if let Some(envelope) = envelope {
                    remember(envelope);
                }
                if let Some(g) = self.grants.get_mut(grant) {
                    g.revoked_ms.get_or_insert(event.time_ms);
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
            _ => {}
        }
    }

    /// A request as the API shows it to `viewer`.
    pub fn request_view(
        &self,
        r: &RequestRec,
        catalog: &Catalog,
        viewer: &ResponderId,
        now_ms: u64,
    ) -> RequestView {
        let needed = catalog.get(&r.access.service).map_or(0, |s| s.approvals);
        let (status, denied, grant) = match &r.status {
            RequestStatus::Pending => ("pending", None, None),
            RequestStatus::Denied(by) => ("denied", Some(format!("denied by {by}")), None),
            RequestStatus::Expired => (
                "expired",
                Some("expired: no decision in time".to_owned()),
                None,
            ),
            RequestStatus::Granted(g) => (
                "granted",
                None,
                self.grants
                    .get(g)
                    .map(|g| g.view(now_ms, &r.responder == viewer)),
            ),
        };
        RequestView {
            id: r.id.clone(),
            responder: r.responder.clone(),
            service: r.access.service.clone(),
            ttl_secs: r.ttl_secs,
            reason: r.access.reason.clone(),
            incident: r.access.incident.clone(),
            emergency: r.access.emergency,
            status: status.to_owned(),
            approved_by: r.approved_by.clone(),
            approvals_needed: needed,
            created_ms: r.created_ms,
            denied,
            grant_index: match &r.status {
                RequestStatus::Granted(g) => self.grants.get(g).map(|g| g.index),
                _ => None,
            },
            grant,
            receipt: None,
            seq: r.seq,
        }
    }
}

/// What a decision wants appended: the events, in order.
pub type Decision = Result<Vec<(Option<ResponderId>, EventKind)>, Refusal>;

/// Everything a decision needs besides the state.
#[derive(Debug)]
pub struct Context<'a> {
    /// This proxy.
    pub proxy: &'a ProxyId,
    /// The signing key.
    pub key: &'a SigningKey,
    /// The catalog in force.
    pub catalog: &'a Catalog,
    /// The roster in force.
    pub roster: &'a Roster,
    /// The caller.
    pub caller: &'a Responder,
    /// Now, Unix ms.
    pub now_ms: u64,
}

fn random_id<T>(f: fn() -> Result<T, bglass_core::id::RandomError>) -> Result<T, Refusal> {
    f().map_err(|_| Refusal::new("internal", 500, "the system random number generator failed"))
}

/// Makes the grant event for a request, valid from now for `secs`.
fn grant_event(
    ctx: &Context<'_>,
    r: &RequestRec,
    secs: u64,
    emergency: bool,
) -> Result<EventKind, Refusal> {
    // The grant is bound to the requester's roster key, whoever's action issues it.
    let holder = ctx.roster.get(&r.responder).ok_or_else(|| {
        Refusal::new(
            "requester_not_in_roster",
            409,
            format!("{} is no longer in the roster", r.responder),
        )
    })?;
    let id = random_id(GrantId::random)?;
    let now_s = ctx.now_ms / 1000;
    let claims = GrantClaims {
        id: id.clone(),
        iss: ctx.proxy.clone(),
        kid: ctx.key.public_key().key_id(),
        sub: r.responder.clone(),
        key: holder.key,
        svc: r.access.service.clone(),
        req: r.id.clone(),
        iat: now_s,
        nbf: now_s,
        exp: now_s + secs,
        emergency,
        drill: r.drill.clone(),
    };
    let token = grant::issue(&claims, ctx.key)
        .map_err(|e| Refusal::new("internal", 500, format!("issuing the grant failed: {e}")))?;
    Ok(EventKind::Grant {
        grant: id,
        request: r.id.clone(),
        responder: r.responder.clone(),
        service: r.access.service.clone(),
        nbf: claims.nbf,
        exp: claims.exp,
        emergency,
        token,
    })
}

fn need_role(ctx: &Context<'_>, role: Role) -> Result<(), Refusal> {
    if ctx.caller.has(role) {
        Ok(())
    } else {
        Err(Refusal::new(
            "missing_role",
            403,
            format!("{} does not have the {role} role", ctx.caller.id),
        )
        .hint("ask the proxy operator to add the role to your roster entry"))
    }
}

impl State {
    /// An access request: the request event, and the grant at once when no approval is
    /// needed or the emergency bypass applies.
    pub fn decide_access(
        &self,
        ctx: &Context<'_>,
        access: &AccessRequest,
        envelope: StoredEnvelope,
    ) -> Decision {
        need_role(ctx, Role::Responder)?;
        if let Some(drill) = &access.drill
            && self.drill.as_ref() != Some(drill)
        {
            return Err(match &self.drill {
                Some(running) => Refusal::new(
                    "wrong_drill",
                    409,
                    format!("the running drill is {running}, not {drill}"),
                ),
                None => Refusal::new(
                    "no_drill",
                    409,
                    format!("drill {drill} is not running on this proxy"),
                ),
            });
        }
        let service = ctx.catalog.get(&access.service).ok_or_else(|| {
            Refusal::new(
                "unknown_service",
                404,
                format!("no service {} in this proxy's catalog", access.service),
            )
            .hint("run `bglass status` to list the services")
        })?;
        let ttl = access.ttl.unwrap_or(service.default_ttl);
        if ttl > service.max_ttl {
            return Err(Refusal::new(
                "ttl_above_max",
                400,
                format!(
                    "ttl {ttl} is above {}'s maximum of {}",
                    service.name, service.max_ttl
                ),
            )
            .hint(format!("ask for --ttl {} or less", service.max_ttl)));
        }
        let bypass = if access.emergency {
            Some(service.emergency.ok_or_else(|| {
                Refusal::new(
                    "no_emergency_bypass",
                    403,
                    format!("{} has no emergency bypass", service.name),
                )
                .hint("ask an approver to approve the request instead")
            })?)
        } else {
            None
        };
        let request = random_id(RequestId::random)?;
        let record = RequestRec {
            id: request.clone(),
            responder: ctx.caller.id.clone(),
            access: access.clone(),
            ttl_secs: ttl.as_secs(),
            created_ms: ctx.now_ms,
            approved_by: Vec::new(),
            status: RequestStatus::Pending,
            drill: access.drill.clone(),
            seq: self.request_seq + 1,
        };
        let mut events = vec![(
            Some(ctx.caller.id.clone()),
            EventKind::Request {
                request,
                service: access.service.clone(),
                ttl_secs: ttl.as_secs(),
                emergency: access.emergency,
                reason: access.reason.clone(),
                incident: access.incident.clone(),
                envelope,
            },
        )];
        if let Some(bypass) = bypass {
            let secs = ttl.as_secs().min(bypass.ttl.as_secs());
            events.push((
                Some(ctx.caller.id.clone()),
                grant_event(ctx, &record, secs, true)?,
            ));
        } else if service.approvals == 0 {
            events.push((
                Some(ctx.caller.id.clone()),
                grant_event(ctx, &record, ttl.as_secs(), false)?,
            ));
        }
        Ok(events)
    }

    fn pending(&self, request: &RequestId) -> Result<&RequestRec, Refusal> {
        let r = self.requests.get(request).ok_or_else(|| {
            Refusal::new("unknown_request", 404, format!("no request {request}"))
                .hint("run `bglass requests` to list pending requests")
        })?;
        match &r.status {
            RequestStatus::Pending => Ok(r),
            RequestStatus::Granted(_) => Err(Refusal::new(
                "already_granted",
                409,
                format!("{request} was already granted"),
            )),
            RequestStatus::Denied(by) => Err(Refusal::new(
                "already_denied",
                409,
                format!("{request} was denied by {by}"),
            )),
            RequestStatus::Expired => Err(Refusal::new(
                REQUEST_EXPIRED,
                409,
                format!("{request} expired without a decision"),
            )
            .hint("the requester must ask again")),
        }
    }

    /// An approval; the grant when it is the last one needed. The TTL counts from now.
    pub fn decide_approve(
        &self,
        ctx: &Context<'_>,
        request: &RequestId,
        envelope: StoredEnvelope,
    ) -> Decision {
        need_role(ctx, Role::Approver)?;
        let r = self.pending(request)?;
        if r.responder == ctx.caller.id {
            return Err(
                Refusal::new("self_approval", 403, "you cannot approve your own request")
                    .hint("another approver must approve it (two-person rule)"),
            );
        }
        if r.approved_by.contains(&ctx.caller.id) {
            return Err(Refusal::new(
                "already_approved",
                409,
                format!("you already approved {request}"),
            ));
        }
        let needed = ctx
            .catalog
            .get(&r.access.service)
            .map_or(1, |s| s.approvals);
        let mut events = vec![(
            Some(ctx.caller.id.clone()),
            EventKind::Approval {
                request: request.clone(),
                envelope,
            },
        )];
        // Only approvals of approvers still in the roster (with the role) count.
        let standing = r
            .approved_by
            .iter()
            .filter(|a| ctx.roster.get(a).is_some_and(|e| e.has(Role::Approver)))
            .count();
        if standing + 1 >= usize::from(needed) {
            events.push((
                Some(ctx.caller.id.clone()),
                grant_event(ctx, r, r.ttl_secs, false)?,
            ));
        }
        Ok(events)
    }

    /// A refusal of a pending request by an approver.
    pub fn decide_deny(
        &self,
        ctx: &Context<'_>,
        request: &RequestId,
        reason: &str,
        envelope: StoredEnvelope,
    ) -> Decision {
        need_role(ctx, Role::Approver)?;
        let r = self.pending(request)?;
        if r.responder == ctx.caller.id {
            return Err(Refusal::new(
                "self_denial",
                403,
                "withdraw your own request by letting it lapse, not by denying it",
            ));
        }
        Ok(vec![(
            Some(ctx.caller.id.clone()),
            EventKind::Denial {
                reason: "denied_by_approver".to_owned(),
                detail: reason.to_owned(),
                request: Some(request.clone()),
                service: Some(r.access.service.clone()),
                grant: None,
                envelope: Some(envelope),
            },
        )])
    }

    fn active_grant(&self, grant: &GrantId, now_ms: u64) -> Result<&GrantRec, Refusal> {
        let g = self
            .grants
            .get(grant)
            .ok_or_else(|| Refusal::new("unknown_grant", 404, format!("no grant {grant}")))?;
        Ok(g).and_then(|g| {
            if g.revoked_ms.is_some() {
                Err(Refusal::new(
                    "already_revoked",
                    409,
                    format!("{grant} is already revoked"),
                ))
            } else if !g.active(now_ms) {
                Err(Refusal::new(
                    "already_expired",
                    409,
                    format!("{grant} has already expired"),
                ))
            } else {
                Ok(g)
            }
        })
    }

    /// A revocation by an approver or by the grant's holder.
    pub fn decide_revoke(
        &self,
        ctx: &Context<'_>,
        grant: &GrantId,
        reason: &str,
        envelope: StoredEnvelope,
    ) -> Decision {
        let g = self.active_grant(grant, ctx.now_ms)?;
        if g.claims.sub != ctx.caller.id {
            need_role(ctx, Role::Approver)?;
        }
        Ok(vec![(
            Some(ctx.caller.id.clone()),
            EventKind::Revoke {
                grant: grant.clone(),
                reason: reason.to_owned(),
                envelope: Some(envelope),
            },
        )])
    }

    /// Closing the review of an emergency bypass, by an approver other than its holder.
    pub fn decide_review(
        &self,
        ctx: &Context<'_>,
        grant: &GrantId,
        note: &str,
        envelope: StoredEnvelope,
    ) -> Decision {
        need_role(ctx, Role::Approver)?;
        let g = self
            .grants
            .get(grant)
            .ok_or_else(|| Refusal::new("unknown_grant", 404, format!("no grant {grant}")))?;
        if !g.claims.emergency {
            return Err(Refusal::new(
                "not_emergency",
                409,
                format!("{grant} was not issued under the emergency bypass"),
            ));
        }
        if let Some(by) = &g.reviewed_by {
            return Err(Refusal::new(
                "already_reviewed",
                409,
                format!("{grant} was already reviewed by {by}"),
            ));
        }
        if g.claims.sub == ctx.caller.id {
            return Err(Refusal::new(
                "self_review",
                403,
                "you cannot review your own emergency access",
            )
            .hint("another approver must review it"));
        }
        Ok(vec![(
            Some(ctx.caller.id.clone()),
            EventKind::Review {
                grant: grant.clone(),
                note: note.to_owned(),
                envelope,
            },
        )])
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

    /// Starting a live drill: drill leads only, one at a time.
    pub fn decide_drill_start(
        &self,
        ctx: &Context<'_>,
        plan: &bglass_core::drill::LivePlan,
        envelope: StoredEnvelope,
    ) -> Decision {
        need_role(ctx, Role::DrillLead)?;
        plan.validate()
            .map_err(|why| Refusal::new("bad_plan", 400, format!("drill plan: {why}")))?;
        if let Some(running) = &self.drill {
            return Err(Refusal::new(
                "drill_running",
                409,
                format!("drill {running} is running; stop it first"),
            ));
        }
        if let Some(s) = plan.services.iter().find(|s| ctx.catalog.get(s).is_none()) {
            return Err(Refusal::new(
                "unknown_service",
                404,
                format!("the drill names {s}, which this proxy's catalog does not hold"),
            ));
        }
        Ok(vec![(
            Some(ctx.caller.id.clone()),
            EventKind::DrillStart {
                scenario: plan.scenario.to_string(),
                envelope: Some(envelope),
                plan: Some(plan.clone()),
            },
        )])
    }

    /// Stopping the live drill.
    pub fn decide_drill_stop(&self, ctx: &Context<'_>, drill: &str) -> Decision {
        need_role(ctx, Role::DrillLead)?;
        match &self.drill {
            Some(running) if running == drill => {
                Ok(vec![(Some(ctx.caller.id.clone()), EventKind::DrillStop {})])
            }
            Some(running) => Err(Refusal::new(
                "wrong_drill",
                409,
                format!("the running drill is {running}, not {drill}"),
            )),
            None => Err(Refusal::new("no_drill", 409, "no drill is running")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use bglass_core::id::ServiceName;

    fn event(kind: EventKind) -> Event {
        Event {
            v: bglass_core::audit::event::EVENT_VERSION,
            time_ms: 1_767_225_600_000,
            proxy: ProxyId::new("proxy-a").unwrap(),
            actor: Some(ResponderId::new("alice").unwrap()),
            drill: Some("d1".to_owned()),
            event: kind,
        }
    }

    #[test]
    fn the_kinds_replay_skips_never_change_the_state() {
        let grant = GrantId::new("g-0000000000000001").unwrap();
        let service = ServiceName::new("grafana").unwrap();
        let kinds = [
            EventKind::Use {
                grant: grant.clone(),
                service: service.clone(),
                method: "GET".to_owned(),
                path: "/".to_owned(),
                status: 200,
                bytes_in: 0,
                bytes_out: 1,
                duration_ms: 1,
                start: Some(6),
            },
            EventKind::UseStart {
                grant: grant.clone(),
                service: service.clone(),
                method: "GET".to_owned(),
                path: "/".to_owned(),
            },
            EventKind::SshCertificate {
                grant: grant.clone(),
                service: service.clone(),
                key: "SHA256:x".to_owned(),
                serial: 1,
                principals: vec!["p".to_owned()],
                valid_before: 1,
            },
            EventKind::TunnelOpen {
                grant: grant.clone(),
                service: service.clone(),
                tunnel: 1,
            },
            EventKind::TunnelClose {
                grant: grant.clone(),
                service: service.clone(),
                tunnel: 1,
                bytes_up: 1,
                bytes_down: 1,
                reason: "eof".to_owned(),
            },
            EventKind::ProxyStart {
                key: SigningKey::from_seed(&[1; 32]).unwrap().public_key(),
                version: "v".to_owned(),
                catalog: "c".to_owned(),
                roster: "r".to_owned(),
                recovered: None,
            },
            EventKind::ProxyStop {
                reason: "signal".to_owned(),
            },
            EventKind::ConfigReload {
                file: "catalog".to_owned(),
                accepted: true,
                digest: None,
                error: None,
            },
            EventKind::DrillResult {
                summary: bglass_core::drill::DrillSummary::default(),
            },
            EventKind::LogRollback {
                published_size: 2,
                published_root: "r".to_owned(),
                size: 1,
                detail: "d".to_owned(),
            },
            EventKind::LogFailed {
                error: "No space left on device".to_owned(),
            },
            EventKind::LogRecovered {
                failed_ms: 1,
                error: "No space left on device".to_owned(),
            },
            EventKind::StorageLow {
                free_bytes: 1,
                threshold_bytes: 2,
            },
            EventKind::StorageOk { free_bytes: 3 },
        ];
        let mut names: Vec<&str> = kinds.iter().map(EventKind::type_name).collect();
        names.sort_unstable();
        let mut ignored = REPLAY_IGNORES.to_vec();
        ignored.sort_unstable();
        assert_eq!(names, ignored, "every skipped kind is checked here");
        for kind in kinds {
            let event = event(kind);
            let mut state = State::new();
            let before = format!("{state:?}");
            state.apply(7, &event);
            assert_eq!(format!("{state:?}"), before, "{}", event.event.type_name());
            // And replay recognises it without parsing.
            let bytes = event.to_bytes().unwrap();
            assert_eq!(peek_kind(&bytes), Some(event.event.type_name()));
            assert!(state.replay(7, &bytes).is_ok());
        }
        // A kind that changes the state is parsed, and a malformed one refused.
        let mut state = State::new();
        assert!(state.replay(0, b"{\"v\":1,\"time_ms\":1,\"proxy\":\"p\",\"actor\":null,\"event\":{\"grant\":{}}}").is_err());
        assert!(state.replay(0, b"not json").is_err());
    }
}
