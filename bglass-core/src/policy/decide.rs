//! The decisions: an access request, an approval, a denial, a revocation, a review, the
//! start and stop of a live drill. Each looks at the state, the catalog and the roster and
//! returns the events to append (ending with the grant when one is due) or a refusal; none
//! changes the state. The rules: a grant needs the service's number of approvals, from
//! distinct approvers in the roster other than the requester, unless the service has an
//! emergency bypass and the requester uses it; the TTL never exceeds the service's maximum
//! (nor, for a bypass, its emergency TTL); a request is decided once.

use crate::audit::event::{EventKind, StoredEnvelope};
use crate::drill::LivePlan;
use crate::envelope::{AccessRequest, Action, VerifiedEnvelope};
use crate::grant::{self, GrantClaims};
use crate::id::{GrantId, RandomError, RequestId};
use crate::roster::Role;

use super::{
    CANCELLED_BY_REQUESTER, Context, DENIED_BY_APPROVER, Decision, GrantRec, REQUEST_EXPIRED,
    Refusal, RequestRec, RequestStatus, State, envelope_refusal,
};

fn random_id<T>(f: fn() -> Result<T, RandomError>) -> Result<T, Refusal> {
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
        canary: r.access.canary,
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

/// A canary's report of its probes: recorded as it came (the canary signed it), bounded.
fn decide_canary_report(ctx: &Context<'_>, results: &[crate::api::CanaryProbe]) -> Decision {
    need_role(ctx, Role::Canary)?;
    let too_big = results.len() > crate::api::MAX_CANARY_PROBES
        || results.iter().any(|p| {
            p.detail.len() > crate::api::MAX_CANARY_DETAIL
                || p.step.as_ref().is_some_and(|s| s.len() > 32)
        });
    if too_big {
        return Err(Refusal::new(
            "canary_report_too_large",
            413,
            format!(
                "a canary report holds at most {} probes of {} bytes each",
                crate::api::MAX_CANARY_PROBES,
                crate::api::MAX_CANARY_DETAIL
            ),
        ));
    }
    Ok(vec![(
        Some(ctx.caller.id.clone()),
        EventKind::CanaryReport {
            results: results.to_vec(),
        },
    )])
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
    /// Decides a verified envelope: its nonce first (never seen within the freshness
    /// window; recorded now, whatever the decision), then its action's rules. This is the
    /// one entry point of the control API's mutations; the `decide_*` below are its parts.
    pub fn decide(
        &mut self,
        ctx: &Context<'_>,
        verified: &VerifiedEnvelope,
        stored: StoredEnvelope,
    ) -> Decision {
        self.replay
            .check(verified, ctx.now_ms / 1000)
            .map_err(|e| envelope_refusal(&e))?;
        match &verified.payload().action {
            Action::Access(a) => self.decide_access(ctx, a, stored),
            Action::Approve { request } => self.decide_approve(ctx, request, stored),
            Action::Deny { request, reason } => self.decide_deny(ctx, request, reason, stored),
            Action::Revoke { grant, reason } => self.decide_revoke(ctx, grant, reason, stored),
            Action::Review { grant, note } => self.decide_review(ctx, grant, note, stored),
            Action::DrillStart(plan) => self.decide_drill_start(ctx, plan, stored),
            Action::DrillStop { drill } => self.decide_drill_stop(ctx, drill),
            Action::Cancel { request } => self.decide_cancel(ctx, request, stored),
            Action::CanaryReport { results } => decide_canary_report(ctx, results),
        }
    }

    /// The drill the events of a decision on `action` belong to, all of them: the drill of
    /// what the action concerns (an access only when it says so), never simply "whatever
    /// drill runs". Ask before applying the decision's events.
    pub fn drill_of(&self, action: &Action) -> Option<String> {
        match action {
            Action::Access(a) => a.drill.clone(),
            Action::Approve { request }
            | Action::Deny { request, .. }
            | Action::Cancel { request } => {
                self.requests.get(request).and_then(|r| r.drill.clone())
            }
            Action::Revoke { grant, .. } | Action::Review { grant, .. } => {
                self.grants.get(grant).and_then(|g| g.claims.drill.clone())
            }
            Action::DrillStart(plan) => Some(plan.drill.to_string()),
            Action::DrillStop { .. } => self.drill.clone(),
            Action::CanaryReport { .. } => None,
        }
    }

    /// An access request: the request event, and the grant at once when no approval is
    /// needed or the emergency bypass applies.
    pub fn decide_access(
        &self,
        ctx: &Context<'_>,
        access: &AccessRequest,
        envelope: StoredEnvelope,
    ) -> Decision {
        // A canary asks for probes only, and only the canary role may: it needs no
        // approval, never the bypass, and lasts one round of probes.
        if access.canary {
            need_role(ctx, Role::Canary)?;
            if access.emergency || access.drill.is_some() {
                return Err(Refusal::new(
                    "canary_probe_only",
                    400,
                    "a canary request asks for neither the emergency bypass nor a drill",
                ));
            }
        } else {
            need_role(ctx, Role::Responder)?;
        }
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
            let names = ctx.catalog.services().iter().map(|s| s.name.as_str());
            let hint = match crate::suggest::did_you_mean(access.service.as_str(), names) {
                Some(suggestion) => {
                    format!("{suggestion} (`bglass status` lists the services)")
                }
                None => "run `bglass status` to list the services".to_owned(),
            };
            Refusal::new(
                "unknown_service",
                404,
                format!("no service {} in this proxy's catalog", access.service),
            )
            .hint(hint)
        })?;
        let canary_ttl = crate::duration::HumanDuration::from_secs(
            grant::CANARY_TTL_SECS.min(service.max_ttl.as_secs()),
        );
        let ttl = if let Some(ttl) = canary_ttl.filter(|_| access.canary) {
            ttl
        } else {
            access.ttl.unwrap_or(service.default_ttl)
        };
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
            ended_ms: 0,
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
        } else if service.approvals == 0 || access.canary {
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
            RequestStatus::Cancelled => Err(Refusal::new(
                "already_cancelled",
                409,
                format!("{request} was withdrawn by its requester"),
            )),
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
            return Err(
                Refusal::new("self_denial", 403, "you cannot deny your own request").hint(format!(
                    "withdraw it with `bglass requests cancel {request}`"
                )),
            );
        }
        Ok(vec![(
            Some(ctx.caller.id.clone()),
            EventKind::Denial {
                reason: DENIED_BY_APPROVER.to_owned(),
                detail: reason.to_owned(),
                request: Some(request.clone()),
                service: Some(r.access.service.clone()),
                grant: None,
                envelope: Some(envelope),
            },
        )])
    }

    /// The requester withdrawing their own pending request: nobody else may (not even an
    /// approver: they deny it), and only while it is pending (a grant is revoked instead).
    pub fn decide_cancel(
        &self,
        ctx: &Context<'_>,
        request: &RequestId,
        envelope: StoredEnvelope,
    ) -> Decision {
        // Someone else's request is not theirs to know about: the same answer as for an id
        // that does not exist, unless they may see it (approvers).
        let r = match self.requests.get(request) {
            Some(r) if r.responder == ctx.caller.id => self.pending(request)?,
            Some(r) if ctx.caller.has(Role::Approver) => {
                return Err(Refusal::new(
                    "not_your_request",
                    403,
                    format!(
                        "{request} is {}'s request: only its requester can withdraw it",
                        r.responder
                    ),
                )
                .hint(format!(
                    "to refuse it, run `bglass deny {request} --reason …`"
                )));
            }
            _ => {
                return Err(
                    Refusal::new("unknown_request", 404, format!("no request {request}"))
                        .hint("run `bglass requests` to list your pending requests"),
                );
            }
        };
        Ok(vec![(
            Some(ctx.caller.id.clone()),
            EventKind::Denial {
                reason: CANCELLED_BY_REQUESTER.to_owned(),
                detail: format!("{request} withdrawn by its requester"),
                request: Some(request.clone()),
                service: Some(r.access.service.clone()),
                grant: None,
                envelope: Some(envelope),
            },
        )])
    }

    fn active_grant(&self, grant: &GrantId, now_ms: u64) -> Result<&GrantRec, Refusal> {
        let g = self.grants.get(grant).ok_or_else(|| {
            Refusal::new("unknown_grant", 404, format!("no grant {grant}")).hint(
                "copy the id from `bglass grants` (approvers see every active grant there); a grant lives on the proxy that issued it",
            )
        })?;
        // Ended already: say how, so that nobody revokes twice in doubt.
        match g.ended(now_ms) {
            None => Ok(g),
            Some(ended) if g.revoked_ms.is_some() => Err(Refusal::new(
                "already_revoked",
                409,
                format!("already revoked: {}", ended.message),
            )
            .hint("nothing to do: it no longer opens anything")),
            Some(ended) => Err(Refusal::new(
                "already_expired",
                409,
                format!("already ended: {}", ended.message),
            )
            .hint("nothing to do: it no longer opens anything")),
        }
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

    /// Starting a live drill: drill leads only, one at a time.
    pub fn decide_drill_start(
        &self,
        ctx: &Context<'_>,
        plan: &LivePlan,
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
}
