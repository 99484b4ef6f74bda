//! The audit log's view of a drill: accesses rebuilt from the events tagged with the drill's
//! id (the live drill's report), and the completeness check of a simulated drill (every
//! access the participants made is in the log of the proxy that served it).

use std::collections::{HashMap, HashSet};

use super::{Access, AuditCheck, Failure, LogCheck};
use crate::audit::event::{Event, EventKind};
use crate::audit::report::{Filter, Report};

/// The events of drill `drill` in one or more logs, as accesses: one per (participant,
/// tool), starting at the participant's first request. Times come from the proxies'
/// clocks: time to access runs from the request to the first authorised use recorded
/// (an HTTP use is recorded when its response ends; a tunnel when it opens).
/// `first_proxy` is the proxy participants try first (for failover counts).
pub fn accesses_from_log(
    events: &[(u64, Event)],
    drill: &str,
    start_ms: u64,
    first_proxy: Option<&str>,
) -> Vec<Access> {
    #[derive(Default)]
    struct Track {
        access: Access,
        start_abs: u64,
        granted: bool,
        ssh: bool,
    }
    let mut order: Vec<(String, String)> = Vec::new();
    let mut tracks: HashMap<(String, String), Track> = HashMap::new();
    let mut by_request: HashMap<String, (String, String, u64)> = HashMap::new();
    let mut by_grant: HashMap<String, (String, String)> = HashMap::new();
    let mut approved: HashSet<String> = HashSet::new();
    for (_, e) in events
        .iter()
        .filter(|(_, e)| e.drill.as_deref() == Some(drill))
    {
        let actor = e.actor.as_ref().map(|a| a.to_string()).unwrap_or_default();
        match &e.event {
            EventKind::Request {
                request, service, ..
            } => {
                let key = (actor.clone(), service.to_string());
                if !tracks.contains_key(&key) {
                    order.push(key.clone());
                    tracks.insert(
                        key.clone(),
                        Track {
                            access: Access {
                                participant: actor.clone(),
                                service: service.to_string(),
                                kind: "http".to_owned(),
                                start_ms: e.time_ms.saturating_sub(start_ms),
                                ..Access::default()
                            },
                            start_abs: e.time_ms,
                            ..Track::default()
                        },
                    );
                }
                if let Some(t) = tracks.get_mut(&key) {
                    t.access.attempts += 1;
                    t.access.proxy = Some(e.proxy.to_string());
                }
                by_request.insert(request.to_string(), (key.0, key.1, e.time_ms));
            }
            EventKind::Approval { request, .. } => {
                approved.insert(request.to_string());
            }
            EventKind::Grant { grant, request, .. } => {
                if let Some((p, s, asked)) = by_request.get(request.as_str()) {
                    let key = (p.clone(), s.clone());
                    by_grant.insert(grant.to_string(), key.clone());
                    if let Some(t) = tracks.get_mut(&key) {
                        t.granted = true;
                        t.access.grant = Some(grant.to_string());
                        if approved.contains(request.as_str()) {
                            t.access.approval_ms = Some(e.time_ms.saturating_sub(*asked));
                        }
                    }
                }
            }
            EventKind::SshCertificate { grant, .. } => {
                if let Some(t) = by_grant.get(grant.as_str()).and_then(|k| tracks.get_mut(k)) {
                    t.ssh = true;
                }
            }
            EventKind::Use { grant, .. } | EventKind::TunnelOpen { grant, .. } => {
                let status = match &e.event {
                    EventKind::Use { status, .. } => *status,
                    _ => 200,
                };
                let tunnel = matches!(e.event, EventKind::TunnelOpen { .. });
                let Some(t) = by_grant.get(grant.as_str()).and_then(|k| tracks.get_mut(k)) else {
                    continue;
                };
                if tunnel {
                    t.access.kind = if t.ssh { "ssh" } else { "tcp" }.to_owned();
                }
                if t.access.ok {
                    continue;
                }
                if status < 400 {
                    t.access.ok = true;
                    t.access.failure = None;
                    t.access.tta_ms = Some(e.time_ms.saturating_sub(t.start_abs));
                    t.access.proxy = Some(e.proxy.to_string());
                    t.access.failover = first_proxy.is_some_and(|f| f != e.proxy.as_str());
                } else {
                    t.access.failure = Some(Failure {
                        stage: "tool".to_owned(),
                        code: format!("http_{status}"),
                        detail: format!("{} answered {status}", t.access.service),
                        ..Failure::default()
                    });
                }
            }
            EventKind::Denial {
                reason,
                detail,
                request,
                service,
                grant,
                ..
            } => {
                let key = request
                    .as_ref()
                    .and_then(|r| {
                        by_request
                            .get(r.as_str())
                            .map(|(p, s, _)| (p.clone(), s.clone()))
                    })
                    .or_else(|| {
                        grant
                            .as_ref()
                            .and_then(|g| by_grant.get(g.as_str()).cloned())
                    })
                    .or_else(|| service.as_ref().map(|s| (actor.clone(), s.to_string())));
                if let Some(t) = key.and_then(|k| tracks.get_mut(&k))
                    && !t.access.ok
                {
                    t.access.failure = Some(Failure {
                        stage: "proxy".to_owned(),
                        code: reason.clone(),
                        detail: detail.clone(),
                        ..Failure::default()
                    });
                }
            }
            _ => {}
        }
    }
    order
        .into_iter()
        .filter_map(|k| tracks.remove(&k))
        .map(|mut t| {
            if !t.access.ok && t.access.failure.is_none() {
                t.access.failure = Some(if t.granted {
                    Failure {
                        stage: "tool".to_owned(),
                        code: "not_used".to_owned(),
                        detail: "granted, but no use of the grant is in the log".to_owned(),
                        ..Failure::default()
                    }
                } else {
                    Failure {
                        stage: "approval".to_owned(),
                        code: "not_granted".to_owned(),
                        detail: "requested, but never granted or denied".to_owned(),
                        ..Failure::default()
                    }
                });
            }
            t.access
        })
        .collect()
}

/// One proxy's log, read and verified, for [`audit_check`].
#[derive(Debug)]
pub struct ProxyLog {
    /// The verification result and size.
    pub check: LogCheck,
    /// Its events.
    pub events: Vec<(u64, Event)>,
}

/// Looks every successful access up in the log of the proxy that served it: its grant
/// and an authorised use (HTTP use or tunnel) under that grant, both tagged with the drill.
/// Marks each access `audited`, and counts uses that no grant covered.
pub fn audit_check(logs: &[ProxyLog], drill: &str, accesses: &mut [Access]) -> AuditCheck {
    let mut grants: HashMap<(&str, &str), ()> = HashMap::new();
    let mut used: HashSet<(&str, &str)> = HashSet::new();
    let mut drill_events = 0u64;
    let mut outside = 0u64;
    for log in logs {
        let proxy = log.check.proxy.as_str();
        for (_, e) in &log.events {
            if e.drill.as_deref() != Some(drill) {
                continue;
            }
            drill_events += 1;
            match &e.event {
                EventKind::Grant { grant, .. } => {
                    grants.insert((proxy, grant.as_str()), ());
                }
                EventKind::Use { grant, status, .. } if *status < 400 => {
                    used.insert((proxy, grant.as_str()));
                }
                EventKind::TunnelOpen { grant, .. } => {
                    used.insert((proxy, grant.as_str()));
                }
                _ => {}
            }
        }
        outside += Report::build(&log.events, &Filter::default())
            .uses_outside_grants
            .len() as u64;
    }
    let mut check = AuditCheck {
        logs: logs.iter().map(|l| l.check.clone()).collect(),
        uses_outside_grants: outside,
        drill_events,
        ..AuditCheck::default()
    };
    for a in accesses.iter_mut().filter(|a| a.ok) {
        check.checked += 1;
        let found = match (&a.proxy, &a.grant) {
            (Some(p), Some(g)) => {
                grants.contains_key(&(p.as_str(), g.as_str()))
                    && used.contains(&(p.as_str(), g.as_str()))
            }
            _ => false,
        };
        a.audited = Some(found);
        if found {
            check.found += 1;
        } else {
            check.unaudited += 1;
            if check.missing.len() < 20 {
                check.missing.push(format!(
                    "{} → {} (grant {}, proxy {})",
                    a.participant,
                    a.service,
                    a.grant.as_deref().unwrap_or("none"),
                    a.proxy.as_deref().unwrap_or("none")
                ));
            }
        }
    }
    check
}
