//! The policy target's invariants: a model of what the log says (requests, their distinct
//! approvals, grants and their ends), checked against every event before it is appended and
//! against the whole state after every step, and the state rebuilt from the log at a
//! restart compared with the live one.

use std::collections::HashSet;

use bglass_core::audit::event::{Event, EventKind};
use bglass_core::id::{GrantId, RequestId, ResponderId, ServiceName};
use bglass_core::policy::{CANCELLED_BY_REQUESTER, RequestStatus, State};
use bglass_core::roster::Role;

use super::World;

/// What the model knows of a request, from the events the proxy appended.
pub struct ModelRequest {
    pub(crate) requester: ResponderId,
    pub(crate) service: ServiceName,
    pub(crate) emergency: bool,
    /// Distinct approvers, in the order their approvals were appended.
    pub(crate) approvals: Vec<ResponderId>,
    pub(crate) granted: Option<GrantId>,
    /// Its requester withdrew it (`Action::Cancel`).
    pub(crate) withdrawn: bool,
}

/// What the model knows of a grant.
pub struct ModelGrant {
    pub(crate) holder: ResponderId,
    pub(crate) emergency: bool,
    pub(crate) exp_ms: u64,
    /// A revocation or expiry of it was applied to the state.
    pub(crate) ended: bool,
}

impl World {
    /// Checks an event about to be appended against the model, and updates the model.
    pub(crate) fn observe(&mut self, event: &Event) {
        match &event.event {
            EventKind::Request {
                request,
                service,
                emergency,
                ..
            } => {
                let requester = event.actor.clone().expect("a request has its requester");
                let known = self.requests.insert(
                    request.clone(),
                    ModelRequest {
                        requester,
                        service: service.clone(),
                        emergency: *emergency,
                        approvals: Vec::new(),
                        granted: None,
                        withdrawn: false,
                    },
                );
                assert!(known.is_none(), "request id {request} made twice");
                self.request_order.push(request.clone());
            }
            EventKind::Approval { request, .. } => {
                let actor = event.actor.clone().expect("an approval has its approver");
                let r = self
                    .requests
                    .get_mut(request)
                    .expect("approval of a known request");
                assert_ne!(actor, r.requester, "self-approval of {request}");
                assert!(r.granted.is_none(), "approval of {request} after its grant");
                assert!(!r.withdrawn, "approval of {request} after its withdrawal");
                assert!(
                    self.roster
                        .get(&actor)
                        .is_some_and(|e| e.has(Role::Approver)),
                    "approval of {request} by {actor}, not an approver in the roster"
                );
                assert!(
                    !r.approvals.contains(&actor),
                    "{actor} approved {request} twice"
                );
                r.approvals.push(actor);
            }
            EventKind::Grant {
                grant,
                request,
                responder,
                service,
                nbf,
                exp,
                emergency,
                token,
            } => self.observe_grant(
                grant,
                request,
                responder,
                service,
                (*nbf, *exp),
                *emergency,
                token,
            ),
            EventKind::Revoke { grant, .. } | EventKind::Expiry { grant } => {
                let g = &self.grants.get(grant).expect("the end of a known grant");
                if let EventKind::Revoke { .. } = &event.event
                    && let Some(actor) = &event.actor
                {
                    assert!(
                        *actor == g.holder
                            || self
                                .roster
                                .get(actor)
                                .is_some_and(|e| e.has(Role::Approver)),
                        "{actor} revoked {grant}, neither its holder nor an approver"
                    );
                }
            }
            EventKind::Denial {
                reason,
                request: Some(request),
                ..
            } if reason == CANCELLED_BY_REQUESTER => {
                let actor = event.actor.clone().expect("a withdrawal has its requester");
                let r = self
                    .requests
                    .get_mut(request)
                    .expect("withdrawal of a known request");
                assert_eq!(actor, r.requester, "{actor} withdrew {request}, not theirs");
                assert!(r.granted.is_none(), "withdrawal of {request} after its grant");
                assert!(!r.withdrawn, "{request} withdrawn twice");
                r.withdrawn = true;
            }
            EventKind::Review { grant, .. } => {
                let actor = event.actor.clone().expect("a review has its reviewer");
                let g = &self.grants[grant];
                assert!(g.emergency, "review of {grant}, not an emergency grant");
                assert_ne!(actor, g.holder, "self-review of {grant}");
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn observe_grant(
        &mut self,
        grant: &GrantId,
        request: &RequestId,
        responder: &ResponderId,
        service: &ServiceName,
        (nbf, exp): (u64, u64),
        emergency: bool,
        token: &str,
    ) {
        let roster = &self.roster;
        let r = self
            .requests
            .get_mut(request)
            .expect("grant of a known request");
        assert!(r.granted.is_none(), "{request} granted twice");
        assert!(!r.withdrawn, "{request} granted after its withdrawal");
        r.granted = Some(grant.clone());
        assert_eq!(*responder, r.requester, "{grant} is not the requester's");
        assert_eq!(*service, r.service, "{grant} is for another service");
        let s = self.catalog.get(service).expect("a catalog service");
        let ttl = exp.checked_sub(nbf).expect("exp after nbf");
        assert!(
            ttl <= s.max_ttl.as_secs(),
            "{grant}: ttl {ttl}s above {}",
            s.max_ttl
        );
        assert_eq!(nbf, self.now_ms / 1000, "{grant} starts now");
        if emergency {
            let bypass = s
                .emergency
                .expect("emergency grant on a service without bypass");
            assert!(
                r.emergency,
                "{grant}: emergency grant for a request that did not ask"
            );
            assert!(
                ttl <= bypass.ttl.as_secs(),
                "{grant}: bypass ttl {ttl}s above {}",
                bypass.ttl
            );
        } else {
            let standing: HashSet<&ResponderId> = r
                .approvals
                .iter()
                .filter(|a| **a != r.requester)
                .filter(|a| roster.get(a).is_some_and(|e| e.has(Role::Approver)))
                .collect();
            assert!(
                standing.len() >= usize::from(s.approvals),
                "{grant} for {service} with {} standing approvals of {} needed",
                standing.len(),
                s.approvals
            );
        }
        // The token says the same, is signed by the proxy and bound to the holder's key.
        let holder = roster.get(responder).expect("the holder is in the roster");
        let verified = self
            .verifier
            .verify(token, self.now_ms / 1000, service, &holder.key)
            .expect("the grant's token verifies");
        let c = verified.claims();
        assert_eq!(
            (&c.id, &c.req, c.nbf, c.exp, c.emergency),
            (grant, request, nbf, exp, emergency),
            "the token and the event disagree"
        );
        self.grants.insert(
            grant.clone(),
            ModelGrant {
                holder: responder.clone(),
                emergency,
                exp_ms: exp.saturating_mul(1000),
                ended: false,
            },
        );
        self.grant_order.push(grant.clone());
    }

    /// The invariants of the state as a whole, after every step.
    pub(crate) fn check(&self) {
        let mut granted = HashSet::new();
        for (id, g) in &self.state.grants {
            assert!(
                granted.insert(&g.claims.req),
                "two grants for {}",
                g.claims.req
            );
            let model = &self.grants[id];
            if g.active(self.now_ms) {
                assert!(!model.ended, "{id} is live after its end was applied");
                assert!(self.now_ms < model.exp_ms, "{id} is live past its expiry");
                assert!(
                    g.revoked_ms.is_none() && !g.expired,
                    "{id} is live but ended"
                );
            }
        }
        for (id, r) in &self.state.requests {
            let model = &self.requests[id];
            match &r.status {
                RequestStatus::Granted(g) => {
                    assert_eq!(model.granted.as_ref(), Some(g), "{id} granted as {g}")
                }
                RequestStatus::Cancelled => {
                    assert!(model.withdrawn, "{id} cancelled without a withdrawal");
                    assert!(
                        !self.state.pending.contains_key(&r.seq),
                        "{id} still listed"
                    )
                }
                RequestStatus::Pending => {
                    assert!(model.granted.is_none(), "{id} pending after its grant");
                    assert!(!model.withdrawn, "{id} pending after its withdrawal");
                    assert!(self.state.pending.contains_key(&r.seq), "{id} not listed")
                }
                _ => assert!(
                    !self.state.pending.contains_key(&r.seq),
                    "{id} still listed"
                ),
            }
        }
    }

    /// A restart: the state rebuilt from the log's bytes must be the state the proxy had
    /// (once what it appended is applied); the proxy goes on with the rebuilt one.
    pub(crate) fn restart(&mut self) {
        self.durable();
        let mut rebuilt = State::new();
        for (index, bytes) in self.log.iter().enumerate() {
            rebuilt
                .replay(index as u64, bytes)
                .expect("every entry the proxy appended replays");
        }
        assert_eq!(
            summary(&rebuilt),
            summary(&self.state),
            "replay differs from live"
        );
        self.state = rebuilt;
    }
}

/// The state as comparable text, without the nonces (kept per window, not per event).
fn summary(state: &State) -> String {
    let mut requests: Vec<String> = state
        .requests
        .values()
        .map(|r| {
            format!(
                "{} {} {} {} {} {:?} {:?} {} {:?}",
                r.id,
                r.responder,
                r.access.service,
                r.ttl_secs,
                r.created_ms,
                r.approved_by,
                r.status,
                r.seq,
                r.access
            )
        })
        .collect();
    requests.sort();
    let mut grants: Vec<String> = state
        .grants
        .values()
        .map(|g| {
            format!(
                "{:?} {} {:?} {:?} {} {:?}",
                g.claims, g.index, g.revoked_ms, g.revoked, g.expired, g.reviewed_by
            )
        })
        .collect();
    grants.sort();
    format!(
        "requests {requests:#?}\ngrants {grants:#?}\npending {:?}\nseq {}",
        state.pending, state.request_seq
    )
}
