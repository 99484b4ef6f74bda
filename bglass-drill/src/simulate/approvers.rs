//! The simulated approvers: each long-polls every proxy for pending requests and approves
//! those a fixed rotation assigns to them, never their own.

use std::time::Duration;

use bglass_client::client::{Call, Session};
use bglass_core::api::RequestView;
use bglass_core::envelope::Action;
use bglass_core::id::{RequestId, ResponderId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::world::World;
use bglass_client::config::ProxyEntry;
use bglass_client::error::CliResult;

/// Pause after a failed poll before polling again.
const RETRY: Duration = Duration::from_millis(200);

/// Starts one long poll per (approver, proxy) until `stop` turns true.
pub(super) fn spawn(
    world: &World,
    entries: &[ProxyEntry],
    stop: &watch::Receiver<bool>,
) -> CliResult<Vec<JoinHandle<()>>> {
    let approvers: Vec<ResponderId> = world
        .members
        .iter()
        .filter(|m| m.approver)
        .map(|m| m.id.clone())
        .collect();
    let mut tasks = Vec::new();
    for m in world.members.iter().filter(|m| m.approver) {
        for i in 0..entries.len() {
            let session = Session::in_memory(m.identity()?, entries)?;
            tasks.push(tokio::spawn(approve_loop(
                session,
                i,
                m.id.clone(),
                approvers.clone(),
                stop.clone(),
            )));
        }
    }
    Ok(tasks)
}

/// Whether `me` approves request `r`: the approvers in a rotation starting at a position
/// drawn from the request's id, without the requester; the first as many as the tool
/// needs approve.
fn assigned(me: &ResponderId, approvers: &[ResponderId], r: &RequestView) -> bool {
    let eligible: Vec<&ResponderId> = approvers.iter().filter(|a| **a != r.responder).collect();
    let n = eligible.len();
    if n == 0 {
        return false;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, r.id.as_str().as_bytes());
    let h = digest
        .as_ref()
        .iter()
        .take(8)
        .fold(0usize, |acc, b| acc.wrapping_shl(8) | usize::from(*b));
    let first = h % n;
    (0..usize::from(r.approvals_needed).min(n)).any(|k| eligible[(first + k) % n] == me)
}

async fn approve_loop(
    mut session: Session,
    proxy: usize,
    me: ResponderId,
    approvers: Vec<ResponderId>,
    mut stop: watch::Receiver<bool>,
) {
    let mut since = 0u64;
    let mut done: std::collections::HashSet<RequestId> = std::collections::HashSet::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let call = Call::get(format!("/v1/requests?wait=2&since={since}"));
        let answer = tokio::select! {
            a = session.call_with(&call, Some(proxy)) => a,
            _ = stop.changed() => return,
        };
        let list: Vec<RequestView> = match answer {
            Ok((value, _)) => serde_json::from_value(value).unwrap_or_default(),
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        for r in list {
            since = since.max(r.seq);
            if r.status != "pending"
                || r.responder == me
                || r.approved_by.contains(&me)
                || done.contains(&r.id)
                || !assigned(&me, &approvers, &r)
            {
                continue;
            }
            done.insert(r.id.clone());
            let _ = session
                .call_with(
                    &Call::post("/v1/approve", Action::Approve { request: r.id }),
                    Some(proxy),
                )
                .await;
        }
    }
}
