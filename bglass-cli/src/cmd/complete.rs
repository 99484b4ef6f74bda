//! Dynamic completion of service names and grant/request ids (`source <(COMPLETE=bash
//! bglass)`; clap_complete calls `bglass` back with the words typed so far).
//!
//! Completion never asks for a passphrase and never waits long: the grants this machine
//! holds come from the local state beside the config; the catalog's services, the pending
//! requests and everyone's grants come from the proxies only while a key agent
//! (`bglass unlock`) signs for this config, within [`DEADLINE`].

use std::path::PathBuf;
use std::time::Duration;

use bglass_client::agent::AgentClient;
use bglass_client::client::{Call, Session};
use bglass_client::config::{self, Config};
use bglass_client::identity::Identity;
use bglass_client::store::Store;
use bglass_core::api::{GrantView, RequestView, StatusView};
use clap_complete::engine::CompletionCandidate;

/// How long completion may spend asking the proxies.
const DEADLINE: Duration = Duration::from_secs(2);

/// The config completion reads: `$BGLASS_CONFIG`, else the default location (the words
/// typed so far are not parsed, so `--config` on the line being completed is not seen).
fn config_path() -> Option<PathBuf> {
    let flag = std::env::var_os("BGLASS_CONFIG").map(PathBuf::from);
    config::locate(flag.as_deref()).ok().map(|l| l.path)
}

/// A session through the key agent, when one signs for this config.
fn agent_session() -> Option<Session> {
    let path = config_path()?;
    let config = Config::load(&path).ok()?;
    let client = AgentClient::find(&path).ok().flatten()?;
    if client.info().responder != config.responder {
        return None;
    }
    let mut session = Session::with_identity(&path, &config, Identity::agent(client)).ok()?;
    session.verbose = false;
    Some(session)
}

/// GETs `path` from the first proxy that answers, within the deadline, as the API's type.
fn fetch<T: serde::de::DeserializeOwned>(path: &str) -> Option<T> {
    let mut session = agent_session()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let path = path.to_owned();
    let value = runtime.block_on(async move {
        tokio::time::timeout(DEADLINE, session.attempt(&Call::get(path), None))
            .await
            .ok()?
            .ok()
            .map(|(value, _)| value)
    });
    runtime.shutdown_background();
    serde_json::from_value(value?).ok()
}

fn dedup(mut names: Vec<(String, Option<String>)>) -> Vec<CompletionCandidate> {
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    names
        .into_iter()
        .map(|(name, help)| CompletionCandidate::new(name).help(help.map(Into::into)))
        .collect()
}

fn held() -> Vec<bglass_client::store::HeldGrant> {
    config_path()
        .and_then(|p| Store::beside(&p).grants().ok())
        .unwrap_or_default()
}

/// Service names: the catalog's (through the agent), and those of the grants held here.
pub fn services() -> Vec<CompletionCandidate> {
    let mut names: Vec<(String, Option<String>)> = held()
        .into_iter()
        .map(|g| (g.service.to_string(), Some("you hold a grant".to_owned())))
        .collect();
    if let Some(status) = fetch::<StatusView>("/v1/status") {
        names.extend(status.services.into_iter().map(|s| {
            let help = format!("{} {}", s.kind.name(), s.health);
            (s.name.to_string(), Some(help))
        }));
    }
    dedup(names)
}

/// Grant ids: those held here, and those the proxy lists (through the agent).
pub fn grants() -> Vec<CompletionCandidate> {
    let mut ids: Vec<(String, Option<String>)> = held()
        .into_iter()
        .map(|g| (g.id.to_string(), Some(g.service.to_string())))
        .collect();
    if let Some(list) = fetch::<Vec<GrantView>>("/v1/grants") {
        ids.extend(list.into_iter().map(|g| {
            let help = format!("{} on {}", g.responder, g.service);
            (g.id.to_string(), Some(help))
        }));
    }
    dedup(ids)
}

/// Pending request ids (through the agent).
pub fn requests() -> Vec<CompletionCandidate> {
    let mut ids = Vec::new();
    if let Some(list) = fetch::<Vec<RequestView>>("/v1/requests") {
        ids.extend(list.into_iter().map(|r| {
            let help = format!("{} wants {}", r.responder, r.service);
            (r.id.to_string(), Some(help))
        }));
    }
    dedup(ids)
}
