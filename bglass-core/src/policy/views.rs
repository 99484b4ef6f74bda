//! Requests and grants as the control API shows them: the policy's records turned into the
//! wire types of `api`, with the token only for its holder.

use crate::api::{GrantView, RequestView};
use crate::catalog::Catalog;
use crate::id::ResponderId;

use super::{GrantRec, Refusal, RequestRec, RequestStatus, State};
use crate::timestamp;

/// A span of seconds for a sentence: `45 s`, `12 min`, `3 h 05 min`.
pub fn span(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h {:02} min", secs / 3600, secs / 60 % 60),
    }
}

/// The data plane's refusal of a grant that expired at `exp` (Unix seconds): when, and how
/// long ago.
pub fn expired_refusal(what: &str, exp: u64, now_s: u64, service: &str) -> Refusal {
    Refusal::new(
        "expired_grant",
        403,
        format!(
            "{what} expired at {} ({} ago)",
            timestamp::format_secs(exp),
            span(now_s.saturating_sub(exp))
        ),
    )
    .hint(format!("run `bglass access {service}` for a new grant"))
}

impl GrantRec {
    /// Why the grant no longer serves, as the data plane refuses it: revoked (when, by
    /// whom and why) or expired (when); `None` while it is active.
    pub fn ended(&self, now_ms: u64) -> Option<Refusal> {
        let c = &self.claims;
        if let Some(at) = self.revoked_ms {
            let (by, why) = match &self.revoked {
                Some((Some(who), why)) => (who.to_string(), why.as_str()),
                Some((None, why)) => ("the proxy".to_owned(), why.as_str()),
                None => ("the proxy".to_owned(), ""),
            };
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            };
            return Some(
                Refusal::new(
                    "revoked_grant",
                    403,
                    format!(
                        "{} was revoked at {} by {by}{why}",
                        c.id,
                        timestamp::format_secs(at / 1000)
                    ),
                )
                .hint(format!(
                    "ask {by} why if unclear; run `bglass access {}` for a new grant if you still need it",
                    c.svc
                )),
            );
        }
        (!self.active(now_ms))
            .then(|| expired_refusal(c.id.as_str(), c.exp, now_ms / 1000, c.svc.as_str()))
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

impl State {
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
            RequestStatus::Cancelled => (
                "cancelled",
                Some("withdrawn by its requester".to_owned()),
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
            kind: catalog
                .get(&r.access.service)
                .map(|s| crate::api::ServiceType::of(&s.kind)),
        }
    }
}
