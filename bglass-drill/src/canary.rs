//! `bglass canary`: every pathway proven ready, end to end, from outside production. For
//! each proxy of the canary's config and each tool of its catalog: a canary grant (canary
//! role, no approvals, good for the tool's probe only) and the probe itself through the
//! proxy — the health path with the injected credential, a TCP connection, an SSH login
//! forced to run `true`. What broke is named by step; each proxy is told what its canary
//! found (`canary_report` in its log, `/metrics`, `bglass status`).

use bglass_client::client::{Call, Session};
use bglass_client::failure::{CallFailure, Unavailable, tls_step};
use bglass_core::api::{CanaryProbe, MAX_CANARY_DETAIL, ServiceType, StatusView};
use bglass_core::drill::Failure;
use bglass_core::envelope::Action;

use crate::participant::{Target, TargetKind, canary_probe};

/// What one pathway (a proxy, or a tool through it) was found to be.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pathway {
    /// The proxy's URL.
    pub proxy: String,
    /// The proxy's id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_id: Option<String>,
    /// The tool; `None` for the proxy itself (when it could not be used at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `http`, `ssh` or `tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether it works end to end.
    pub ok: bool,
    /// Where it broke: `pin`, `roster`, `proxy`, `grant`, `injection`, `upstream`, `login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What was seen.
    pub detail: String,
}

impl Pathway {
    /// `proxy-a/grafana` (or the URL when the proxy's id is unknown).
    pub fn key(&self) -> String {
        let proxy = self.proxy_id.clone().unwrap_or_else(|| self.proxy.clone());
        match &self.service {
            Some(s) => format!("{proxy}/{s}"),
            None => proxy,
        }
    }
}

/// The step a failed probe broke at, from where the participant's probe stopped.
fn step_of(f: &Failure) -> &'static str {
    match (f.stage.as_str(), f.code.as_str()) {
        (_, "missing_secret" | "credential_not_bound" | "credential_rejected") => "injection",
        (_, "ssh_auth") => "login",
        ("request" | "certificate", _) => "grant",
        _ => "upstream",
    }
}

/// A detail as a report may carry it: one line, bounded.
fn clean(detail: &str) -> String {
    let mut out: String = detail
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.trim().is_empty() {
        out = "no detail".to_owned();
    }
    while out.len() > MAX_CANARY_DETAIL || out.chars().count() > 500 {
        out.pop();
    }
    out
}

/// Why a proxy could not be used at all: the step and what was seen.
fn proxy_step(failure: &CallFailure) -> (&'static str, String) {
    match failure {
        CallFailure::Unavailable(tried) => {
            let step = tried
                .iter()
                .find_map(|(_, why)| match why {
                    Unavailable::Transport(e) | Unavailable::Read(e) => tls_step(e),
                    _ => None,
                })
                .unwrap_or("proxy");
            (step, failure.to_string())
        }
        CallFailure::Refused(r) => {
            let step = match r.error.error.as_str() {
                "unknown_key" | "no_client_key" | "not_in_roster" | "wrong_role" => "roster",
                _ => "proxy",
            };
            (step, format!("{} ({})", r.error.message, r.error.error))
        }
        other => ("proxy", other.to_string()),
    }
}

/// One round over every proxy of the session; each proxy is sent its results.
pub async fn round(session: &mut Session, ssh_user: Option<&str>) -> Vec<Pathway> {
    let mut out = Vec::new();
    for index in 0..session.conns.len() {
        let url = session.conns[index].entry.url.clone();
        let status = session
            .attempt(&Call::get("/v1/status"), Some(index))
            .await
            .and_then(|(v, _)| {
                serde_json::from_value::<StatusView>(v).map_err(|e| {
                    CallFailure::Local(bglass_client::error::CliError::internal(e.to_string()))
                })
            });
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                let (step, detail) = proxy_step(&e);
                out.push(Pathway {
                    proxy: url,
                    proxy_id: None,
                    service: None,
                    kind: None,
                    ok: false,
                    step: Some(step.to_owned()),
                    detail: clean(&detail),
                });
                continue;
            }
        };
        let mut probes = Vec::new();
        for s in &status.services {
            let kind = match s.kind {
                ServiceType::Http => TargetKind::Http,
                ServiceType::Ssh => TargetKind::Ssh,
                ServiceType::Tcp => {
                    TargetKind::Tcp(s.probe.unwrap_or(bglass_core::catalog::TcpProbe::Banner))
                }
                // A kind this bglass cannot probe: not a pathway it can vouch for.
                _ => continue,
            };
            let target = Target {
                name: s.name.clone(),
                kind,
                path: s.health_path.clone().unwrap_or_else(|| "/".to_owned()),
                emergency: false,
            };
            let (ok, step, detail) = match canary_probe(session, index, &target, ssh_user).await {
                Ok(()) => (true, None, "ready".to_owned()),
                Err(f) => (
                    false,
                    Some(step_of(&f).to_owned()),
                    clean(&format!("{}: {}", f.code, f.detail)),
                ),
            };
            probes.push(CanaryProbe {
                service: s.name.clone(),
                ok,
                step: step.clone(),
                detail: detail.clone(),
            });
            out.push(Pathway {
                proxy: url.clone(),
                proxy_id: Some(status.proxy.to_string()),
                service: Some(s.name.to_string()),
                kind: Some(kind.name().to_owned()),
                ok,
                step,
                detail,
            });
        }
        let report = Call::post(
            "/v1/canary/report",
            Action::CanaryReport { results: probes },
        );
        if let Err(e) = session.attempt(&report, Some(index)).await {
            eprintln!("warning: {url} was not told its canary results: {e}");
        }
    }
    out
}
