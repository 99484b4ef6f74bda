//! The control API under `/v1/` (documented in `docs/api.md`).
//!
//! Every mutation is a signed envelope checked in this order: size and shape, the roster key
//! of the named responder, the signature, the connection's key, freshness (±5 min), audience,
//! nonce (never seen in the window), then the policy (roles, catalog, approvals). Every
//! refusal is answered with a stable code and recorded in the audit log.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::api::{ProofView, ServiceStatus, StatusView};
use bglass_core::audit::event::{Event, EventKind, StoredEnvelope};
use bglass_core::audit::tree::{MAX_TILE_LEVEL, tile_levels};
use bglass_core::envelope::{Action, DecodedEnvelope, VerifiedEnvelope};
use bglass_core::id::RequestId;
use bglass_core::roster::{Responder, Role};
use bglass_core::timestamp;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::{Body, Denied, Peer, Proxy, full, json, lock, refusal_response};
use bglass_core::policy::{Context, Refusal, envelope_refusal};

fn query(req: &Request<Incoming>, name: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

async fn body(proxy: &Proxy, req: Request<Incoming>) -> Result<bytes::Bytes, Refusal> {
    let limit = proxy.config.limits.max_api_body_bytes;
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|_| Refusal::new("too_large", 413, format!("request body over {limit} bytes")))
}

/// Answers one `/v1/` request.
pub async fn handle(proxy: &Arc<Proxy>, peer: &Peer, req: Request<Incoming>) -> Response<Body> {
    let caller = match proxy.responder_of(peer) {
        Ok(caller) => caller,
        Err(refusal) => {
            // A key the roster no longer holds is worth recording; no key at all is not.
            if peer.key.is_some() {
                let _ = proxy.refuse(None, &refusal, Denied::default()).await;
            }
            return refusal_response(&refusal);
        }
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let result = match (method, path.as_str()) {
        (
            Method::POST,
            "/v1/access" | "/v1/approve" | "/v1/deny" | "/v1/revoke" | "/v1/review"
            | "/v1/drill/start" | "/v1/drill/stop" | "/v1/cancel" | "/v1/canary/report",
        ) => mutate(proxy, peer, &caller, req).await,
        (Method::GET, "/v1/requests") => {
            let wait = wait_of(&req);
            Ok(requests(proxy, &caller, wait, query(&req, "since")).await)
        }
        (Method::GET, p) if p.starts_with("/v1/requests/") => {
            let wait = wait_of(&req);
            one_request(proxy, &caller, &p["/v1/requests/".len()..], wait).await
        }
        (Method::GET, "/v1/drill") => drill(proxy),
        (Method::GET, "/v1/grants") => Ok(grants(proxy, &caller)),
        (Method::GET, "/v1/status") => Ok(status(proxy, &caller)),
        (Method::GET, "/v1/audit/checkpoint") => checkpoint(proxy),
        (Method::GET, "/v1/audit/consistency") => consistency(proxy, &req),
        (Method::GET, "/v1/audit/inclusion") => inclusion(proxy, &req),
        (Method::GET, "/v1/audit/receipt") => receipt(proxy, &req).await,
        (Method::GET, p) if p.starts_with("/v1/audit/tile/entries/") => {
            super::mirror::entries(proxy, &caller, &p["/v1/audit/tile/entries/".len()..]).await
        }
        (Method::GET, p) if p.starts_with("/v1/audit/tile/") => {
            tile(proxy, &caller, &p["/v1/audit/".len()..])
        }
        (Method::GET, p) if p.starts_with("/v1/audit/policy/") => {
            super::mirror::policy_file(proxy, &caller, &p["/v1/audit/policy/".len()..]).await
        }
        _ => Err(Refusal::new("not_found", 404, format!("no route {path}"))),
    };
    result.unwrap_or_else(|r| refusal_response(&r))
}

/// Longest long poll (`?wait=S`): under the CLI's 30 s request timeout.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

fn wait_of(req: &Request<Incoming>) -> Option<std::time::Duration> {
    query(req, "wait").map(|s| std::time::Duration::from_secs(s).min(MAX_WAIT))
}

fn drill(proxy: &Proxy) -> Result<Response<Body>, Refusal> {
    let state = lock(&proxy.state);
    match (&state.drill, &state.drill_plan) {
        (Some(_), Some((plan, started_ms))) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "plan": plan, "started_ms": started_ms }),
        )),
        _ => Err(Refusal::new(
            "no_drill",
            404,
            "no drill is running on this proxy",
        )),
    }
}

fn now_ms() -> u64 {
    timestamp::now_ms()
}

/// Verifies the envelope in the body, decides, and records the outcome.
async fn mutate(
    proxy: &Arc<Proxy>,
    peer: &Peer,
    caller: &Responder,
    req: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let path = req.uri().path().to_owned();
    let bytes = match body(proxy, req).await {
        Ok(b) => b,
        Err(r) => {
            return Err(proxy
                .refuse(Some(caller.id.clone()), &r, Denied::default())
                .await);
        }
    };
    let now = now_ms();
    let decoded = match DecodedEnvelope::decode(&bytes) {
        Ok(d) => d,
        Err(e) => {
            return Err(proxy
                .refuse(
                    Some(caller.id.clone()),
                    &envelope_refusal(&e),
                    Denied::default(),
                )
                .await);
        }
    };
    let roster = proxy.roster.current();
    let claimed_key = roster.get(decoded.claimed_responder()).map(|r| r.key);
    let verified: VerifiedEnvelope = match decoded.verify(
        claimed_key.as_ref(),
        peer.key.as_ref(),
        &proxy.config.id,
        now / 1000,
    ) {
        Ok(v) => v,
        Err(e) => {
            return Err(proxy
                .refuse(
                    Some(caller.id.clone()),
                    &envelope_refusal(&e),
                    Denied::default(),
                )
                .await);
        }
    };
    let stored: StoredEnvelope = serde_json::from_value(verified.to_json())
        .map_err(|e| Refusal::new("internal", 500, e.to_string()))?;
    let action = verified.payload().action.clone();
    let expected = match &action {
        Action::Access(_) => "/v1/access",
        Action::Approve { .. } => "/v1/approve",
        Action::Deny { .. } => "/v1/deny",
        Action::Revoke { .. } => "/v1/revoke",
        Action::Review { .. } => "/v1/review",
        Action::DrillStart(_) => "/v1/drill/start",
        Action::DrillStop { .. } => "/v1/drill/stop",
        Action::Cancel { .. } => "/v1/cancel",
        Action::CanaryReport { .. } => "/v1/canary/report",
        _ => "",
    };
    let mut context = Denied {
        envelope: Some(stored.clone()),
        ..Denied::default()
    };
    if expected != path {
        let r = Refusal::new(
            "wrong_route",
            400,
            format!("this envelope belongs on {expected}, not {path}"),
        );
        return Err(proxy.refuse(Some(caller.id.clone()), &r, context).await);
    }
    match &action {
        Action::Access(a) => context.service = Some(a.service.clone()),
        Action::Approve { request } | Action::Deny { request, .. } | Action::Cancel { request } => {
            context.request = Some(request.clone())
        }
        Action::Revoke { grant, .. } | Action::Review { grant, .. } => {
            context.grant = Some(grant.clone())
        }
        _ => {}
    }

    let catalog = proxy.catalog.current();
    let decided = {
        let mut state = lock(&proxy.state);
        let ctx = Context {
            proxy: &proxy.config.id,
            key: &proxy.key,
            catalog: &catalog,
            roster: &roster,
            caller,
            now_ms: now,
        };
        let decision = state.decide(&ctx, &verified, stored);
        match decision {
            Ok(events) => {
                let drill = state.drill_of(&action);
                let events: Vec<Event> = events
                    .into_iter()
                    .map(|(actor, kind)| proxy.event(actor, kind, drill.clone()))
                    .collect();
                // Applied now, under the lock, so that the next decision sees them; queued
                // in the same order so that the log tells the same story.
                let pending = proxy.submit(&events)?;
                for e in &events {
                    state.apply(u64::MAX, e);
                }
                Ok((events, pending))
            }
            Err(r) => Err(r),
        }
    };
    let (events, pending) = match decided {
        Ok(x) => x,
        Err(r) => return Err(proxy.refuse(Some(caller.id.clone()), &r, context).await),
    };
    let appended = proxy.wait(pending, &events).await?;
    for e in &events {
        proxy.applied(e);
    }
    // The grant's audit index, now known.
    let mut request_id: Option<RequestId> = None;
    {
        let mut state = lock(&proxy.state);
        for (event, a) in events.iter().zip(&appended) {
            match &event.event {
                EventKind::Grant { grant, .. } => {
                    proxy.metrics.grant();
                    if let Some(g) = state.grants.get_mut(grant) {
                        g.index = a.index;
                    }
                }
                EventKind::Request { request, .. } => request_id = Some(request.clone()),
                _ => {}
            }
        }
    }
    let state = lock(&proxy.state);
    let view = match &action {
        Action::Access(_)
        | Action::Approve { .. }
        | Action::Deny { .. }
        | Action::Cancel { .. } => {
            let id = request_id.or(match &action {
                Action::Approve { request }
                | Action::Deny { request, .. }
                | Action::Cancel { request } => Some(request.clone()),
                _ => None,
            });
            let r = id
                .and_then(|id| state.requests.get(&id))
                .ok_or_else(|| Refusal::new("internal", 500, "the request vanished"))?;
            serde_json::to_value(state.request_view(r, &catalog, &caller.id, now_ms()))
        }
        Action::Revoke { grant, .. } | Action::Review { grant, .. } => {
            let g = state
                .grants
                .get(grant)
                .ok_or_else(|| Refusal::new("internal", 500, "the grant vanished"))?;
            serde_json::to_value(g.view(now_ms(), g.claims.sub == caller.id))
        }
        Action::DrillStart(plan) => Ok(serde_json::json!({ "drill": plan.drill, "started": true })),
        Action::DrillStop { drill } => Ok(serde_json::json!({ "drill": drill, "stopped": true })),
        Action::CanaryReport { results } => Ok(serde_json::json!({ "recorded": results.len() })),
        _ => Ok(serde_json::Value::Null),
    }
    .map_err(|e| Refusal::new("internal", 500, e.to_string()))?;
    Ok(json(StatusCode::OK, &view))
}

/// Pending requests the caller may see; with `since` (a `seq`), only those newer. With
/// `wait`, answers when there is one or the wait is over, so approvers need not poll.
async fn requests(
    proxy: &Proxy,
    caller: &Responder,
    wait: Option<std::time::Duration>,
    since: Option<u64>,
) -> Response<Body> {
    let newer = since.unwrap_or(0);
    if let Some(wait) = wait {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = proxy.pending_changes.subscribe();
        loop {
            let newest = lock(&proxy.state)
                .pending_since(caller, newer)
                .map(|r| r.seq)
                .max();
            if newest.is_some_and(|n| n > newer) {
                break;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                break;
            }
        }
    }
    let catalog = proxy.catalog.current();
    let state = lock(&proxy.state);
    let now = now_ms();
    let list: Vec<_> = state
        .pending_since(caller, newer)
        .map(|r| state.request_view(r, &catalog, &caller.id, now))
        .collect();
    json(StatusCode::OK, &list)
}

/// One request. With `wait`, answers once it is no longer pending or the wait is over.
async fn one_request(
    proxy: &Proxy,
    caller: &Responder,
    id: &str,
    wait: Option<std::time::Duration>,
) -> Result<Response<Body>, Refusal> {
    let id = RequestId::new(id).map_err(|e| Refusal::new("malformed", 400, e.to_string()))?;
    if let Some(wait) = wait {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = proxy.wait_request(&id);
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pending = lock(&proxy.state)
                .requests
                .get(&id)
                .is_some_and(|r| matches!(r.status, bglass_core::policy::RequestStatus::Pending));
            if !pending || tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        proxy.unwait_request(&id, notify);
    }
    let catalog = proxy.catalog.current();
    let state = lock(&proxy.state);
    let r = state
        .requests
        .get(&id)
        .filter(|r| r.responder == caller.id || caller.has(Role::Approver))
        .ok_or_else(|| Refusal::new("unknown_request", 404, format!("no request {id}")))?;
    Ok(json(
        StatusCode::OK,
        &state.request_view(r, &catalog, &caller.id, now_ms()),
    ))
}

fn grants(proxy: &Proxy, caller: &Responder) -> Response<Body> {
    let state = lock(&proxy.state);
    let now = now_ms();
    // Your grants (active or ended in the last day); approvers also see every active grant
    // and every emergency grant whose review is open.
    let mut list: Vec<_> = state
        .grants
        .values()
        .filter(|g| {
            let mine = g.claims.sub == caller.id && now < (g.claims.exp + 86_400) * 1000;
            let oversight = caller.has(Role::Approver)
                && (g.active(now) || (g.claims.emergency && g.reviewed_by.is_none()));
            mine || oversight
        })
        .map(|g| g.view(now, g.claims.sub == caller.id))
        .collect();
    list.sort_by_key(|g| g.nbf);
    json(StatusCode::OK, &list)
}

fn status(proxy: &Proxy, caller: &Responder) -> Response<Body> {
    let catalog = proxy.catalog.current();
    let health = lock(&proxy.health).clone();
    let canary = lock(&proxy.state).canary.clone();
    let services = catalog
        .services()
        .iter()
        .map(|s| {
            let (up, detail) = health.get(s.name.as_str()).cloned().unwrap_or((None, None));
            ServiceStatus {
                name: s.name.clone(),
                kind: bglass_core::api::ServiceType::of(&s.kind),
                approvals: s.approvals,
                emergency_bypass: s.emergency.is_some(),
                probe: match &s.kind {
                    bglass_core::catalog::ServiceKind::Tcp { probe } => Some(*probe),
                    _ => None,
                },
                health_path: match &s.kind {
                    bglass_core::catalog::ServiceKind::Http { health, .. } => {
                        Some(health.path.clone())
                    }
                    _ => None,
                },
                health: match up {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "unknown",
                }
                .to_owned(),
                detail,
                canary: canary.get(&s.name).cloned(),
            }
        })
        .collect();
    let (audit_failed_since_ms, audit_failures, audit_last_recovery, storage) =
        super::storage::status(proxy);
    json(
        StatusCode::OK,
        &StatusView {
            proxy: proxy.config.id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            you: caller.id.clone(),
            roles: caller.roles.iter().map(|r| r.name().to_owned()).collect(),
            catalog: catalog.digest().to_owned(),
            catalog_rejected: proxy.catalog.last_rejection().map(|r| r.reason),
            roster_rejected: proxy.roster.last_rejection().map(|r| r.reason),
            log_size: proxy.log.size(),
            audit_failure: proxy.log.failure().map(|f| f.to_string()),
            audit_failed_since_ms,
            audit_failures,
            audit_last_recovery,
            storage: Some(storage),
            services,
        },
    )
}

fn text(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r
}

fn checkpoint(proxy: &Proxy) -> Result<Response<Body>, Refusal> {
    let c = proxy
        .log
        .latest_checkpoint()
        .ok_or_else(|| Refusal::new("no_checkpoint", 404, "no checkpoint signed yet"))?;
    // With the cosignatures its witnesses returned for it.
    Ok(text(
        StatusCode::OK,
        super::witness::cosigned_checkpoint(proxy, &c),
    ))
}

fn proof(hashes: &[bglass_core::audit::tree::Hash]) -> Response<Body> {
    json(
        StatusCode::OK,
        &ProofView {
            proof: hashes.iter().map(|h| STANDARD.encode(h.0)).collect(),
        },
    )
}

fn consistency(proxy: &Proxy, req: &Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let (Some(old), Some(new)) = (query(req, "old"), query(req, "new")) else {
        return Err(Refusal::new("malformed", 400, "give ?old=N&new=M"));
    };
    let hashes = proxy
        .log
        .consistency_proof(old, new)
        .map_err(|e| Refusal::new("no_proof", 404, e.to_string()))?;
    Ok(proof(&hashes))
}

fn inclusion(proxy: &Proxy, req: &Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let (Some(index), Some(size)) = (query(req, "index"), query(req, "size")) else {
        return Err(Refusal::new("malformed", 400, "give ?index=N&size=M"));
    };
    let hashes = proxy
        .log
        .inclusion_proof(index, size)
        .map_err(|e| Refusal::new("no_proof", 404, e.to_string()))?;
    Ok(proof(&hashes))
}

async fn receipt(proxy: &Arc<Proxy>, req: &Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let index =
        query(req, "index").ok_or_else(|| Refusal::new("malformed", 400, "give ?index=N"))?;
    if index >= proxy.log.size() {
        return Err(Refusal::new(
            "no_entry",
            404,
            format!("no audit entry {index}"),
        ));
    }
    // Receipts reuse the latest checkpoint: the writer signs one within a second of any
    // append, and never more often, whoever asks (checkpoints stay bounded in number).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while proxy
        .log
        .latest_checkpoint()
        .is_none_or(|c| c.size <= index)
    {
        if tokio::time::Instant::now() >= deadline {
            return Err(
                Refusal::new("no_checkpoint", 503, "no checkpoint covers this entry yet")
                    .hint("ask again in a few seconds"),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let checkpoint = proxy
        .log
        .latest_checkpoint()
        .ok_or_else(|| Refusal::new("no_checkpoint", 503, "no checkpoint"))?;
    let hashes = proxy
        .log
        .inclusion_proof(index, checkpoint.size)
        .map_err(|e| Refusal::new("no_proof", 404, e.to_string()))?;
    let leaf = proxy
        .log
        .leaf_hash(index)
        .map_err(|e| Refusal::new("no_proof", 404, e.to_string()))?;
    Ok(json(
        StatusCode::OK,
        &bglass_core::audit::receipt::Receipt::new(index, leaf, &checkpoint, &hashes),
    ))
}

fn tile(proxy: &Proxy, caller: &Responder, path: &str) -> Result<Response<Body>, Refusal> {
    if !(caller.has(Role::Auditor) || caller.has(Role::Approver)) {
        return Err(Refusal::new(
            "missing_role",
            403,
            "mirroring the log needs the auditor role",
        ));
    }
    // tile/<L>/<N…>: full hash tiles from disk or the partial one from memory.
    let rest = path.strip_prefix("tile/").unwrap_or_default();
    let (level, index_path) = rest
        .split_once('/')
        .ok_or_else(|| Refusal::new("malformed", 400, "tile path is tile/<L>/<N>"))?;
    let level: u8 = level
        .parse()
        .map_err(|_| Refusal::new("malformed", 400, "tile level is a number"))?;
    if level > MAX_TILE_LEVEL {
        return Err(Refusal::new(
            "malformed",
            400,
            format!(
                "tile level {level} is not a tile level (C2SP tiles have levels 0..={MAX_TILE_LEVEL})"
            ),
        ));
    }
    let size = proxy.log.size();
    let levels = tile_levels(size);
    if level >= levels {
        let exist = match levels {
            0 => "none".to_owned(),
            n => format!("levels 0..={}", n - 1),
        };
        return Err(Refusal::new(
            "malformed",
            400,
            format!(
                "tile level {level} does not exist in a tree of {size} entries (it has {exist})"
            ),
        ));
    }
    let index_path = index_path.split(".p/").next().unwrap_or_default();
    let index = super::mirror::tile_index(index_path)
        .ok_or_else(|| Refusal::new("malformed", 400, "tile index is x###/…/###"))?;
    let data = proxy
        .log
        .hash_tile(level, index)
        .ok_or_else(|| Refusal::new("no_tile", 404, format!("no tile {path}")))?;
    Ok(text(StatusCode::OK, data))
}
