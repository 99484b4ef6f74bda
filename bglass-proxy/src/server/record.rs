//! The audit pipeline: events made, queued to the log in the order of the decisions, waited
//! on until durable, applied to the state and handed to the notifier; refusals recorded;
//! the waiters of long polls woken.

use std::sync::Arc;
use std::time::Instant;

use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind};
use bglass_core::audit::log::{Appended, Submitted};
use bglass_core::id::ResponderId;
use bglass_core::policy::Refusal;
use bglass_core::timestamp;

use super::{Proxy, lock, storage};

impl Proxy {
    /// The event for `kind` by `actor`, now, tagged with the drill it belongs to.
    pub(super) fn event(
        &self,
        actor: Option<ResponderId>,
        kind: EventKind,
        drill: Option<String>,
    ) -> Event {
        Event {
            v: EVENT_VERSION,
            time_ms: timestamp::now_ms(),
            proxy: self.config.id.clone(),
            actor,
            drill,
            event: kind,
        }
    }

    /// Queues events for the log, in order (call with the state lock held when the order
    /// must match the order of decisions).
    pub fn submit(&self, events: &[Event]) -> Result<Vec<Submitted>, Refusal> {
        if let Some(why) = self.log.failure() {
            return Err(self.audit_failed(&why));
        }
        events
            .iter()
            .map(|event| {
                let bytes = event.to_bytes().map_err(|e| {
                    Refusal::new("internal", 500, format!("encoding an audit event: {e}"))
                })?;
                self.log.submit(bytes).map_err(|e| self.audit_failed(&e))
            })
            .collect()
    }

    /// Waits until submitted events are durable; hands them to the notifier.
    pub async fn wait(
        &self,
        pending: Vec<Submitted>,
        events: &[Event],
    ) -> Result<Vec<Appended>, Refusal> {
        let start = Instant::now();
        // The writer thread wakes this task itself: no thread waits per request.
        let mut results = Vec::with_capacity(pending.len());
        for submitted in pending {
            results.push(submitted.await);
        }
        let micros = timestamp::micros(start.elapsed());
        let mut out = Vec::with_capacity(results.len());
        for (result, event) in results.into_iter().zip(events) {
            match result {
                Ok(appended) => {
                    self.metrics.audit_append(micros, true);
                    // No webhook target: the notifier has stopped; nothing to hand over.
                    if !self.notify.is_closed() {
                        let _ = self.notify.send((appended.index, event.clone()));
                    }
                    out.push(appended);
                }
                Err(e) => {
                    self.metrics.audit_append(micros, false);
                    return Err(self.audit_failed(&e));
                }
            }
        }
        Ok(out)
    }

    /// Records one event by `actor` (refusals, uses, expiries, proxy events); the state is
    /// updated with it once it is durable.
    pub async fn record(
        &self,
        actor: Option<ResponderId>,
        kind: EventKind,
    ) -> Result<Appended, Refusal> {
        let (event, pending) = {
            let state = lock(&self.state);
            let drill = state.drill_tag(&kind);
            let event = self.event(actor, kind, drill);
            let pending = self.submit(std::slice::from_ref(&event))?;
            (event, pending)
        };
        let appended = self.wait(pending, std::slice::from_ref(&event)).await?;
        let first = appended
            .into_iter()
            .next()
            .ok_or_else(|| Refusal::new("internal", 500, "no append result"))?;
        lock(&self.state).apply(first.index, &event);
        self.applied(&event);
        Ok(first)
    }

    /// Queues one event that changes no state and that nobody waits for: a use's outcome,
    /// recorded after its response (the request itself was made durable, as `use_start`,
    /// before the tool saw it). The writer appends it with the next group commit; a failed
    /// append fails the log, and later requests are refused. Only when a notifier runs (and
    /// a runtime does: a request dropped at shutdown is still queued) is a task spawned to
    /// hand it over once durable.
    pub fn record_detached(&self, actor: Option<ResponderId>, kind: EventKind) {
        let (event, pending) = {
            let state = lock(&self.state);
            let drill = state.drill_tag(&kind);
            let event = self.event(actor, kind, drill);
            match self.submit(std::slice::from_ref(&event)) {
                Ok(pending) => (event, pending),
                // Refused because the log failed: recorded as such by `submit`.
                Err(_) => return,
            }
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.notify.is_closed() {
            return;
        }
        let notify = self.notify.clone();
        runtime.spawn(async move {
            for submitted in pending {
                if let Ok(appended) = submitted.await {
                    let _ = notify.send((appended.index, event.clone()));
                }
            }
        });
    }

    /// Tells open streams when a grant ends, and long polls when a request changes.
    pub fn applied(&self, event: &Event) {
        match &event.event {
            EventKind::Revoke { grant, .. } | EventKind::Expiry { grant } => {
                lock(&self.jars).remove(grant);
                self.grant_changes.send_modify(|g| *g += 1);
            }
            EventKind::Request { request, .. }
            | EventKind::Approval { request, .. }
            | EventKind::Grant { request, .. }
            | EventKind::Denial {
                request: Some(request),
                ..
            } => {
                if let Some(n) = lock(&self.request_waiters).get(request) {
                    n.notify_waiters();
                }
                self.pending_changes.send_modify(|g| *g += 1);
            }
            _ => {}
        }
    }

    /// The notifier of one request's changes (for a long poll); drop it with
    /// [`Self::unwait_request`].
    pub fn wait_request(&self, id: &bglass_core::id::RequestId) -> Arc<tokio::sync::Notify> {
        Arc::clone(lock(&self.request_waiters).entry(id.clone()).or_default())
    }

    /// Forgets a request's notifier once nobody waits on it.
    pub fn unwait_request(&self, id: &bglass_core::id::RequestId, n: Arc<tokio::sync::Notify>) {
        let mut waiters = lock(&self.request_waiters);
        // Ours and the map's: nobody else waits.
        if Arc::strong_count(&n) <= 2 {
            waiters.remove(id);
        }
    }

    /// The refusal while the audit log cannot write: it says since when and that the proxy
    /// retries by itself; the first one of a failure tells the operator what to do.
    pub(super) fn audit_failed(&self, why: &dyn std::fmt::Display) -> Refusal {
        self.metrics.denial("audit_failed");
        let health = self.log.health();
        if let Some(failure) = &health.failed {
            storage::announce_failure(self, failure);
        }
        Refusal::new("audit_failed", 503, storage::refusal_message(&health, why))
            .hint("try another proxy, or this one again shortly: it resumes by itself")
    }

    /// Records a refusal (best effort: a refusal is already a "no").
    pub async fn refuse(
        &self,
        actor: Option<ResponderId>,
        refusal: &Refusal,
        context: Denied,
    ) -> Refusal {
        self.metrics.denial(refusal.code);
        let kind = EventKind::Denial {
            reason: refusal.code.to_owned(),
            detail: refusal.message.clone(),
            request: context.request,
            service: context.service,
            grant: context.grant,
            envelope: context.envelope,
        };
        let _ = self.record(actor, kind).await;
        refusal.clone()
    }
}

/// What a refusal concerned, for its audit event.
#[derive(Debug, Default)]
pub struct Denied {
    /// The request.
    pub request: Option<bglass_core::id::RequestId>,
    /// The service.
    pub service: Option<bglass_core::id::ServiceName>,
    /// The grant.
    pub grant: Option<bglass_core::id::GrantId>,
    /// The envelope, when it decoded.
    pub envelope: Option<bglass_core::audit::event::StoredEnvelope>,
}
