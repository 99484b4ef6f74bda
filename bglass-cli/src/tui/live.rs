//! Keeping the console current and acting for it, over bglass-client sessions (the same
//! failover, signing and split-view checks as every command): one poller per proxy, each
//! on its own copy of the unlocked session, that reads status, requests, grants and the
//! drill, then waits in a long poll for a new request (or a refresh key); and one task per
//! action (access and its wait, approve, deny, revoke). Everything they learn goes to the
//! model as events.

use std::time::{Duration, Instant};

use bglass_client::client::{Call, CallFailure, Session, Unavailable};
use bglass_core::api::{GrantView, RequestView, StatusView};
use bglass_core::drill::LivePlan;
use bglass_core::duration::HumanDuration;
use bglass_core::envelope::{AccessRequest, Action};
use bglass_core::id::ServiceName;
use bglass_core::timestamp;
use tokio::sync::{mpsc, watch};

use super::model::{AccessUpdate, Event, PollOutcome, ProxyData};

/// How long one round of polling one proxy may take before it counts as not answering.
const ROUND_LIMIT: Duration = Duration::from_secs(8);
/// The long poll's length (the proxy answers at once when a new request arrives).
const LONG_POLL_SECS: u64 = 2;
/// Between rounds when a proxy does not answer.
const RETRY: Duration = Duration::from_secs(2);
/// Every this many rounds, a proxy's status and drill are read again and its log is checked
/// against the last checkpoint seen (other rounds read requests and grants only: two calls
/// a round, so that a console left open costs a proxy about one request a second).
const RECHECK_EVERY: u64 = 5;

/// Why a call failed, in a line, and whether it was a split view.
fn failure_text(e: &CallFailure) -> (String, bool) {
    match e {
        CallFailure::Unavailable(tried) => (
            tried
                .iter()
                .map(|(_, why)| why.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            tried
                .iter()
                .any(|(_, why)| matches!(why, Unavailable::SplitView(_))),
        ),
        other => (other.to_string(), false),
    }
}

async fn get<T: serde::de::DeserializeOwned>(
    session: &mut Session,
    proxy: usize,
    path: &str,
) -> Result<T, (String, bool)> {
    let (value, _) = session
        .attempt(&Call::get(path), Some(proxy))
        .await
        .map_err(|e| failure_text(&e))?;
    serde_json::from_value(value).map_err(|e| (format!("unexpected answer to {path}: {e}"), false))
}

/// The running drill as `GET /v1/drill` gives it.
#[derive(serde::Deserialize)]
struct DrillAnswer {
    plan: LivePlan,
    started_ms: u64,
}

/// One round of polling: requests and grants every round; the status (catalog, health, log
/// size) and the drill only when `full`, else carried over from `last`.
async fn poll_once(
    session: &mut Session,
    proxy: usize,
    recheck: bool,
    last: Option<&ProxyData>,
) -> Result<(ProxyData, u64), (String, bool)> {
    if recheck {
        session.recheck(proxy);
    }
    let started = Instant::now();
    let requests: Vec<RequestView> = get(session, proxy, "/v1/requests").await?;
    let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let grants: Vec<GrantView> = get(session, proxy, "/v1/grants").await?;
    let data = match last {
        Some(last) if !recheck => ProxyData {
            requests,
            grants,
            ..last.clone()
        },
        _ => {
            let status: StatusView = get(session, proxy, "/v1/status").await?;
            // No drill is a refusal (`no_drill`): nothing to show.
            let drill = get::<DrillAnswer>(session, proxy, "/v1/drill")
                .await
                .ok()
                .map(|d| (d.plan, d.started_ms));
            ProxyData {
                id: status.proxy.to_string(),
                roles: status.roles,
                log_size: status.log_size,
                audit_failure: status.audit_failure,
                services: status.services,
                requests,
                grants,
                drill,
            }
        }
    };
    Ok((data, latency))
}

/// Polls proxy `proxy` until the receiver goes away; `refresh` changes when the user asks
/// for a refresh (or an action changed something).
pub async fn poll_proxy(
    mut session: Session,
    proxy: usize,
    events: mpsc::UnboundedSender<Event>,
    mut refresh: watch::Receiver<u64>,
) {
    let mut round: u64 = 0;
    let mut last: Option<ProxyData> = None;
    let mut refreshed = false;
    loop {
        // The status, the drill and the split-view check every RECHECK_EVERY rounds, after
        // a refresh, and until the proxy has answered once.
        let recheck = round.is_multiple_of(RECHECK_EVERY) || refreshed || last.is_none();
        round += 1;
        refreshed = false;
        let result = tokio::time::timeout(
            ROUND_LIMIT,
            poll_once(&mut session, proxy, recheck, last.as_ref()),
        )
        .await
        .unwrap_or_else(|_| {
            Err((
                format!("no answer within {} s", ROUND_LIMIT.as_secs()),
                false,
            ))
        });
        let at_ms = timestamp::now_ms();
        let (outcome, newest) = match result {
            Ok((data, latency_ms)) => {
                let newest = data.requests.iter().map(|r| r.seq).max().unwrap_or(0);
                last = Some(data.clone());
                let checkpoint_size = session.conns[proxy].record.as_ref().map(|r| r.size);
                (
                    PollOutcome::Answered {
                        data: Box::new(data),
                        latency_ms,
                        checkpoint_size,
                        checkpoint_checked: recheck,
                    },
                    Some(newest),
                )
            }
            Err((why, split_view)) => (PollOutcome::Failed { why, split_view }, None),
        };
        if events
            .send(Event::Polled {
                proxy,
                at_ms,
                outcome,
            })
            .is_err()
        {
            return;
        }
        let wait = async {
            match newest {
                // A long poll: answered at once when a request newer than the ones seen
                // arrives, else after LONG_POLL_SECS.
                Some(since) => {
                    let path = format!("/v1/requests?wait={LONG_POLL_SECS}&since={since}");
                    if session
                        .attempt(&Call::get(path), Some(proxy))
                        .await
                        .is_err()
                    {
                        tokio::time::sleep(RETRY).await;
                    }
                }
                None => tokio::time::sleep(RETRY).await,
            }
        };
        tokio::select! {
            () = wait => {}
            changed = refresh.changed() => {
                if changed.is_err() {
                    return;
                }
                refreshed = true;
            }
        }
    }
}

/// Asks for access to `service` and follows the request until it is decided, riding out
/// proxies that stop answering meanwhile.
#[allow(clippy::too_many_arguments)]
pub async fn access(
    mut session: Session,
    service: ServiceName,
    reason: String,
    incident: String,
    ttl: Option<String>,
    emergency: bool,
    events: mpsc::UnboundedSender<Event>,
) {
    let ended = |message: String| {
        Event::Access(AccessUpdate::Ended {
            service: service.clone(),
            message,
        })
    };
    let ttl = match ttl.map(|t| t.parse::<HumanDuration>()).transpose() {
        Ok(t) => t,
        Err(e) => {
            let _ = events.send(ended(format!("TTL: {e}")));
            return;
        }
    };
    let action = Action::Access(AccessRequest {
        service: service.clone(),
        ttl,
        reason,
        incident,
        emergency,
        drill: None,
        canary: false,
    });
    let (value, proxy) = match session
        .attempt(&Call::post("/v1/access", action), None)
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            let _ = events.send(ended(format!("access to {service} failed: {e}")));
            return;
        }
    };
    let mut view: RequestView = match serde_json::from_value(value) {
        Ok(v) => v,
        Err(e) => {
            let _ = events.send(ended(format!(
                "unexpected answer to the access request: {e}"
            )));
            return;
        }
    };
    loop {
        match view.status.as_str() {
            "pending" => {
                if events
                    .send(Event::Access(AccessUpdate::Pending(Box::new(view.clone()))))
                    .is_err()
                {
                    return;
                }
                match session.poll_request(proxy, &view.id, 20).await {
                    Ok(next) => view = next,
                    Err(CallFailure::Local(e)) => {
                        let _ = events.send(ended(e.to_string()));
                        return;
                    }
                    Err(CallFailure::Refused(r)) => {
                        let _ = events.send(ended(format!("{}: {r}", view.id)));
                        return;
                    }
                    Err(e) => {
                        let _ = events.send(Event::Said(format!(
                            "still waiting for {}: the proxy does not answer ({}); retrying",
                            view.id,
                            failure_text(&e).0
                        )));
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
            "granted" => {
                let event = match session.keep_granted(proxy, &view).await {
                    Ok(()) => Event::Access(AccessUpdate::Granted(Box::new(view))),
                    Err(e) => ended(format!("granted, but the grant could not be kept: {e}")),
                };
                let _ = events.send(event);
                return;
            }
            "denied" => {
                let why = view.denied.clone().unwrap_or_else(|| "denied".to_owned());
                let _ = events.send(ended(format!("DENIED: {} ({}): {why}", service, view.id)));
                return;
            }
            "expired" => {
                let _ = events.send(ended(format!(
                    "EXPIRED: {} ({}): no approver decided in time",
                    service, view.id
                )));
                return;
            }
            "cancelled" => {
                let _ = events.send(ended(format!(
                    "WITHDRAWN: {} ({}): you withdrew it",
                    service, view.id
                )));
                return;
            }
            other => {
                let _ = events.send(ended(format!("{}: unexpected status {other}", view.id)));
                return;
            }
        }
    }
}

/// Signs `action` for proxy `proxy` (where the request or grant lives), sends it and says
/// how it went.
pub async fn act(
    mut session: Session,
    action: Action,
    proxy: usize,
    events: mpsc::UnboundedSender<Event>,
) {
    let what = match &action {
        Action::Approve { request } => format!("approve {request}"),
        Action::Deny { request, .. } => format!("deny {request}"),
        Action::Cancel { request } => format!("withdraw {request}"),
        Action::Revoke { grant, .. } => format!("revoke {grant}"),
        _ => "act".to_owned(),
    };
    let path = match crate::cmd::act::route(&action) {
        Ok(path) => path,
        Err(e) => {
            let _ = events.send(Event::Said(e.to_string()));
            return;
        }
    };
    let said = match session
        .attempt(&Call::post(path, action.clone()), Some(proxy))
        .await
    {
        Ok((value, _)) => {
            if let Action::Revoke { grant, .. } = &action {
                session.store.remove_grant(grant);
            }
            match (
                &action,
                serde_json::from_value::<RequestView>(value.clone()),
                serde_json::from_value::<GrantView>(value),
            ) {
                (Action::Approve { .. }, Ok(r), _) if r.status == "granted" => {
                    format!("approved {}: {} now has {}", r.id, r.responder, r.service)
                }
                (Action::Approve { .. }, Ok(r), _) => format!(
                    "approved {} ({} of {}); more approvals needed",
                    r.id,
                    r.approved_by.len(),
                    r.approvals_needed
                ),
                (Action::Deny { .. }, Ok(r), _) => format!("denied {}", r.id),
                (Action::Cancel { .. }, Ok(r), _) => format!("withdrew {}", r.id),
                (_, _, Ok(g)) => format!("{} on {} is now {}", g.id, g.service, g.state),
                _ => format!("{what}: done"),
            }
        }
        Err(e) => format!("cannot {what}: {e}"),
    };
    let _ = events.send(Event::Said(said));
}
