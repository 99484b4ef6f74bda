//! The running proxy: the state every connection and task shares, and the modules that
//! start it, serve it and keep it current.
//!
//! - `start`: configuration, keys, catalog, roster, the log replayed into the policy state.
//! - `listen`: the mutual-TLS listener, admission, the router, serving and stopping.
//! - `record`: the audit pipeline (events queued in decision order, durable, applied).
//! - `respond`: JSON bodies and refusal responses.
//! - `api`: the control API; `mirror`: the entries and policy files auditors mirror; `dataplane`: HTTP tools; `tunnel`: SSH certificates and TCP
//!   tunnels; `recorded`, `recorder`: recorded SSH sessions; `certify`: SSH certificates; `hygiene`: what is stripped between client and tool.
//! - `admission`: connection caps and refused handshakes; `admins`: signed config changes.
//! - `ops`: the background tasks (expiries, handshake refusals, metrics listener);
//!   `probe`: health probes; `reload`: catalog, roster and vault reloads; `notify`:
//!   webhook notifications; `storage`: free space and the log's health.

mod admins;
pub mod admission;
mod api;
mod certify;
mod dataplane;
mod hygiene;
mod listen;
mod mirror;
mod notify;
mod ops;
mod probe;
mod record;
mod recorded;
mod recorder;
mod reload;
mod respond;
mod start;
mod storage;
mod tunnel;
mod witness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bglass_core::audit::event::Event;
use bglass_core::audit::log::AuditLog;
use bglass_core::catalog::Catalog;
use bglass_core::failstale::FailStale;
use bglass_core::grant::GrantVerifier;
use bglass_core::keys::SigningKey;
use bglass_core::policy::State;
use bglass_core::roster::Roster;
use bglass_core::vault::Vault;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;

use crate::config::ProxyConfig;
use crate::metrics::Metrics;

pub use listen::{Peer, serve, serve_on};
pub use record::Denied;
pub use respond::{REFUSAL_HEADER, full, json, refusal_response};
pub use start::{PUBLISHED_CHECKPOINT_FILE, StartError, StartOptions, Startup, start, start_with};

/// Whose reads of which kind of the log's files an `audit_read` entry counts.
type ReadKey = (bglass_core::id::ResponderId, &'static str);

/// The error type of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response (and of upstream requests).
pub type Body = BoxBody<Bytes, BoxError>;

/// A service's last probe: up or down (unknown before the first), and why when down.
pub type Health = (Option<bool>, Option<String>);

/// The running proxy, shared by every connection and task.
pub struct Proxy {
    /// `proxy.toml`.
    pub config: ProxyConfig,
    /// The signing key (grants, checkpoints).
    pub key: Arc<SigningKey>,
    /// Verifies grants this proxy issued.
    pub verifier: GrantVerifier,
    /// The catalog in force (fail stale).
    pub catalog: FailStale<Catalog>,
    /// The roster in force (fail stale); also consulted at every handshake.
    pub roster: Arc<FailStale<Roster>>,
    /// Upstream credentials.
    pub vault: RwLock<Arc<Vault>>,
    /// The audit log.
    pub log: Arc<AuditLog>,
    /// The live state (rebuilt from the log).
    pub state: Mutex<State>,
    /// Metrics.
    pub metrics: Metrics,
    /// Last health of each service: (up, detail).
    pub health: Mutex<HashMap<String, Health>>,
    /// Bumped whenever a grant ends (revocation, expiry), so that open streams re-check.
    pub grant_changes: tokio::sync::watch::Sender<u64>,
    /// The cookies tools set, per grant: replayed to the tool, never given to the client,
    /// dropped when the grant ends.
    jars: Mutex<HashMap<bglass_core::id::GrantId, hygiene::CookieJar>>,
    /// Audited reads of the log per reader and kind: when the last `audit_read` entry was
    /// written (Unix ms), and the reads since.
    reads: Mutex<HashMap<ReadKey, (u64, u64)>>,
    /// Long polls waiting on one request's decision (`GET /v1/requests/ID?wait=S`).
    request_waiters: Mutex<HashMap<bglass_core::id::RequestId, Arc<tokio::sync::Notify>>>,
    /// Bumped when the set of pending requests changes (`GET /v1/requests?wait=S`).
    pub pending_changes: tokio::sync::watch::Sender<u64>,
    /// Sends appended events to the notifier.
    notify: tokio::sync::mpsc::UnboundedSender<(u64, Event)>,
    /// Sends handshake refusals to be recorded one by one to the auditor task.
    refusals: tokio::sync::mpsc::Sender<admission::Immediate>,
    /// Connection caps and the summary of refused handshakes.
    pub admission: Arc<admission::Admission>,
    /// The client to upstream tools (plain HTTP, or pinned HTTPS).
    upstream: crate::upstream::Upstreams,
    /// Free space under the data directory, and what was announced of the log's health.
    storage: storage::StorageWatch,
    /// The witness of other proxies' logs, when `[[witness_of]]` lists any.
    pub witness: Option<Arc<bglass_core::audit::witness::Witness>>,
    /// What each of this proxy's witnesses (`[[witnesses]]`, in order) holds for its log.
    pub cosigned: Mutex<Vec<witness::Cosigned>>,
    /// The TLS client of each of those witnesses.
    witness_tls: Vec<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("id", &self.config.id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
