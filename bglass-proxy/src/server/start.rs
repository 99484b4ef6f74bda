//! Starting the proxy: its configuration, keys from the vault, the catalog and roster, and
//! the audit log opened and replayed into the policy's state; and why a start fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::ExposeSecret;
use bglass_core::audit::event::Event;
use bglass_core::audit::event::EventKind;
use bglass_core::audit::log::{AuditLog, AuditOpenError, LogConfig, Rollback};
use bglass_core::audit::policy_files::{self, PolicyKind};
use bglass_core::catalog::{Catalog, CatalogError};
use bglass_core::failstale::FailStale;
use bglass_core::grant::GrantVerifier;
use bglass_core::id::{NameError, SecretName};
use bglass_core::keys::{KeyError, SigningKey};
use bglass_core::policy::{Refusal, State};
use bglass_core::roster::{Roster, RosterError};
use bglass_core::vault::{Vault, VaultError, VaultIdentity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use super::{Proxy, admission, storage};
use crate::config::{ProxyConfig, ProxyConfigError};
use crate::init::{CA_KEY_SECRET, SIGNING_KEY_SECRET, TLS_KEY_SECRET};
use crate::metrics::Metrics;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// `proxy.toml` is invalid or unreadable.
    #[error(transparent)]
    Config(#[from] ProxyConfigError),
    /// `proxy.toml` requires admin signatures on the catalog or roster, and the version on
    /// disk, changed since the log last put one in force, does not carry enough.
    #[error("{0}; the proxy does not start on rules its admins have not signed")]
    Unsigned(String),
    /// The vault or its identity cannot be opened.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The name of one of the proxy's own keys is not a vault name.
    #[error("the name of a proxy key: {0}")]
    KeyName(#[from] NameError),
    /// A key the running proxy needs is not in the vault.
    #[error("the vault has no {name}; was this proxy made by `bglass-proxy init`?")]
    MissingKey {
        /// The vault entry.
        name: SecretName,
    },
    /// A key in the vault is not base64.
    #[error("vault entry {name} is not base64")]
    KeyEncoding {
        /// The vault entry.
        name: SecretName,
    },
    /// The signing key in the vault is not a PKCS#8 Ed25519 key.
    #[error("vault entry {name}: {source}")]
    SigningKey {
        /// The vault entry.
        name: SecretName,
        /// Why.
        source: KeyError,
    },
    /// The TLS certificate chain cannot be read.
    #[error("{}: {source}", path.display())]
    Chain {
        /// The chain file.
        path: PathBuf,
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    /// The TLS configuration refused the chain or the key.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The catalog is invalid or unreadable.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The roster is invalid or unreadable.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// The audit log could not be opened: the proxy refuses to run without it.
    #[error("audit log: {0}")]
    Audit(AuditOpenError),
    /// The audit log is behind the newest checkpoint this proxy published, and the
    /// operator has not accepted that.
    #[error(
        "audit log rolled back: {0}. Nothing was served. If this log is the one to keep (the newer one is lost), start with --accept-rollback: the rollback is then recorded in the log before anything is served"
    )]
    RolledBack(Box<Rollback>),
    /// The catalog or roster in force could not be kept beside the audit log (an auditor
    /// could not check what the log records against it).
    #[error("audit log: keeping the {kind} in force beside the log: {source}")]
    PolicyFile {
        /// `catalog` or `roster`.
        kind: &'static str,
        /// Why.
        source: bglass_core::audit::storage::StorageError,
    },
    /// A witness cosigned this proxy's log at a size above what the log holds: the log was
    /// rolled back, and the operator has not accepted that.
    #[error(
        "audit log rolled back: {0}. Nothing was served. If this log is the one to keep (the newer one is lost), start with --accept-rollback: the rollback is then recorded in the log before anything is served"
    )]
    WitnessRollback(String),
    /// The witness's saved view of the logs it witnesses cannot be read.
    #[error("witness: {0}")]
    Witness(#[from] bglass_core::audit::witness::WitnessOpenError),
    /// The start could not be recorded in the audit log.
    #[error("audit log: recording the start: {0}")]
    RecordStart(Refusal),
    /// The signal handler could not be installed.
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

impl From<AuditOpenError> for StartError {
    fn from(e: AuditOpenError) -> Self {
        match e {
            AuditOpenError::RolledBack(rollback) => Self::RolledBack(rollback),
            other => Self::Audit(other),
        }
    }
}

/// A key the running proxy keeps in the vault, decoded.
fn secret_bytes(
    vault: &Vault,
    name: &SecretName,
) -> Result<zeroize::Zeroizing<Vec<u8>>, StartError> {
    let value = vault
        .proxy_key(name)
        .ok_or_else(|| StartError::MissingKey { name: name.clone() })?;
    STANDARD
        .decode(value.expose_secret())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| StartError::KeyEncoding { name: name.clone() })
}

/// How to start.
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    /// Start on a log that is behind the newest checkpoint this proxy published (restored
    /// from an older copy), recording the rollback in the log first.
    pub accept_rollback: bool,
}

/// Where the proxy keeps the newest checkpoint it has published, outside its log directory,
/// so that a log restored from an older copy is noticed at start.
pub const PUBLISHED_CHECKPOINT_FILE: &str = "published-checkpoint";

/// Loads everything and opens the log (replaying it into the state).
pub fn start(config_path: &Path) -> Result<(Arc<Proxy>, Startup), StartError> {
    start_with(config_path, &StartOptions::default())
}

/// [`start`] with options.
pub fn start_with(
    config_path: &Path,
    options: &StartOptions,
) -> Result<(Arc<Proxy>, Startup), StartError> {
    let config = ProxyConfig::load(config_path)?;
    let identity = VaultIdentity::open_file(&config.vault_identity)?;
    let vault = Vault::open(&config.vault, &identity)?;
    let name = SecretName::new(SIGNING_KEY_SECRET)?;
    let key = Arc::new(
        SigningKey::from_pkcs8(&secret_bytes(&vault, &name)?)
            .map_err(|source| StartError::SigningKey { name, source })?,
    );
    let tls_key =
        PrivatePkcs8KeyDer::from(secret_bytes(&vault, &SecretName::new(TLS_KEY_SECRET)?)?.to_vec());
    if vault.proxy_key(&SecretName::new(CA_KEY_SECRET)?).is_some() {
        eprintln!(
            "bglass-proxy: WARNING: the TLS CA private key is in the vault; the running proxy does not need it. Move it off this host: bglass-proxy export-ca-key --config {} --out FILE",
            config.path.display()
        );
    }
    let chain_err = |source| StartError::Chain {
        path: config.tls_chain.clone(),
        source,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.tls_chain)
        .map_err(chain_err)?
        .collect::<Result<_, _>>()
        .map_err(chain_err)?;
    // Each file is read once: the bytes parsed are the bytes kept beside the log and named
    // by digest in `proxy_start`.
    let (catalog, catalog_bytes) = Catalog::load_with_bytes(&config.services)?;
    for (service, why) in vault.unbound(&catalog) {
        eprintln!(
            "bglass-proxy: WARNING: {service} will be refused (credential_not_bound): {why}; bind it with `bglass-proxy secrets bind NAME --for {service}`"
        );
    }
    let (roster, roster_bytes) = Roster::load_with_bytes(&config.roster)?;

    let mut state = State::new();
    let log_config = LogConfig {
        published: Some(config.data_dir.join(PUBLISHED_CHECKPOINT_FILE)),
        accept_rollback: options.accept_rollback,
        reserve_bytes: config.storage.reserve_bytes,
        ..LogConfig::new(
            config.data_dir.join("log"),
            config.id.clone(),
            Arc::clone(&key),
        )
    };
    let (log, recovery) = AuditLog::open(log_config, |index, bytes| state.replay(index, bytes))?;
    if let Some(rollback) = &recovery.rollback {
        eprintln!("bglass-proxy: ROLLBACK ACCEPTED and recorded in the audit log: {rollback}");
    } else if options.accept_rollback {
        eprintln!("bglass-proxy: --accept-rollback given, but the audit log is not rolled back");
    }
    // Files changed while the proxy was down are held to the same signatures as a reload;
    // a signed change is recorded after the start, with its signers and what it changed.
    let mut changed = Vec::new();
    for (kind, path, bytes, parent) in [
        (
            PolicyKind::Catalog,
            &config.services,
            &catalog_bytes,
            state.in_force.catalog.clone(),
        ),
        (
            PolicyKind::Roster,
            &config.roster,
            &roster_bytes,
            state.in_force.roster.clone(),
        ),
    ] {
        // The roster in force, as kept beside the log, for a change that only rekeys.
        let in_force = (kind == PolicyKind::Roster)
            .then_some(parent.as_deref())
            .flatten()
            .and_then(|d| policy_files::load(log.dir(), kind, d).ok())
            .and_then(|old| Roster::from_bytes(Path::new(kind.name()), old).ok());
        let signers = super::admins::admit(
            &config.admins,
            kind,
            path,
            bytes,
            parent.as_deref(),
            in_force.as_ref().map(|old| (old, &roster)),
        )
        .map_err(StartError::Unsigned)?;
        if !signers.is_empty() {
            changed.push(EventKind::ConfigReload {
                file: kind.name().to_owned(),
                accepted: true,
                digest: Some(policy_files::digest(bytes)),
                error: None,
                signers,
                changes: changes_since(log.dir(), kind, parent.as_deref(), &catalog, &roster),
            });
        }
    }
    let keep = |kind: PolicyKind, bytes: &[u8]| {
        policy_files::store(log.dir(), kind, bytes).map_err(|source| StartError::PolicyFile {
            kind: kind.name(),
            source,
        })
    };
    let policy = PolicyDigests {
        catalog: keep(PolicyKind::Catalog, &catalog_bytes)?,
        roster: keep(PolicyKind::Roster, &roster_bytes)?,
    };
    let repaired = repairs_of(&recovery);
    if let Some(what) = &repaired {
        eprintln!("bglass-proxy: the audit log recovered from a crash: {what}");
    }
    if let Some(why) = &recovery.reserve_missing {
        eprintln!(
            "bglass-proxy: WARNING: the audit log's reserve file could not be made ({why}): on a full disk the log cannot record its failure until space returns"
        );
    }

    let witness = if config.witness_of.is_empty() {
        None
    } else {
        Some(Arc::new(bglass_core::audit::witness::Witness::open(
            &format!("bglass-witness/{}", config.id),
            Arc::clone(&key),
            config.witness_of.iter().cloned().collect(),
            &config.data_dir.join(WITNESS_FILE),
        )?))
    };
    let witness_tls = config
        .witnesses
        .iter()
        .map(super::witness::connector)
        .collect::<Result<Vec<_>, _>>()?;
    let cosigned = Mutex::new(vec![
        super::witness::Cosigned::default();
        config.witnesses.len()
    ]);
    let (notify, notify_rx) = tokio::sync::mpsc::unbounded_channel();
    let (refusals, refusals_rx) = tokio::sync::mpsc::channel(admission::IMMEDIATE_PER_MINUTE * 4);
    let upstream = crate::upstream::Upstreams::new();
    // Grants issued before a rotation of the signing key stay valid until they expire:
    // each is in the log, which the data plane requires of every grant.
    let verifier = GrantVerifier::new(config.id.clone(), key.public_key())
        .with_previous(state.key_transitions.iter().map(|t| t.old));
    let proxy = Arc::new(Proxy {
        catalog: FailStale::new(catalog),
        roster: Arc::new(FailStale::new(roster)),
        vault: RwLock::new(Arc::new(vault)),
        log: Arc::new(log),
        state: Mutex::new(state),
        metrics: Metrics::default(),
        health: Mutex::new(HashMap::new()),
        notify,
        refusals,
        admission: Arc::new(admission::Admission::default()),
        grant_changes: tokio::sync::watch::channel(0).0,
        jars: Mutex::new(HashMap::new()),
        request_waiters: Mutex::new(HashMap::new()),
        reads: Mutex::new(HashMap::new()),
        pending_changes: tokio::sync::watch::channel(0).0,
        upstream,
        storage: storage::StorageWatch::default(),
        verifier,
        key,
        witness,
        cosigned,
        witness_tls,
        config,
    });
    Ok((
        proxy,
        Startup {
            chain,
            tls_key,
            notify_rx,
            refusals_rx,
            recovered: recovery.entries,
            repaired,
            policy,
            changed,
            accept_rollback: options.accept_rollback,
        },
    ))
}

/// What the `kind` file in force now changed from the version the log last put in force
/// (read back from beside the log; nothing when it is not there).
fn changes_since(
    log_dir: &Path,
    kind: PolicyKind,
    parent: Option<&str>,
    catalog: &Catalog,
    roster: &Roster,
) -> Vec<bglass_core::config_diff::Change> {
    let Some(old) = parent.and_then(|d| policy_files::load(log_dir, kind, d).ok()) else {
        return Vec::new();
    };
    let name = Path::new(kind.name());
    match kind {
        PolicyKind::Catalog => Catalog::from_bytes(name, old)
            .map(|old| bglass_core::config_diff::catalog_diff(&old, catalog))
            .unwrap_or_default(),
        PolicyKind::Roster => Roster::from_bytes(name, old)
            .map(|old| bglass_core::config_diff::roster_diff(&old, roster))
            .unwrap_or_default(),
    }
}

/// What `start` hands to `serve`.
#[derive(Debug)]
pub struct Startup {
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) tls_key: PrivatePkcs8KeyDer<'static>,
    pub(super) notify_rx: tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>,
    pub(super) refusals_rx: tokio::sync::mpsc::Receiver<admission::Immediate>,
    /// Entries replayed from the log.
    pub recovered: u64,
    /// What opening the log repaired, in a sentence (recorded in `proxy_start`).
    pub repaired: Option<String>,
    /// The catalog and roster in force, as kept beside the log.
    pub policy: PolicyDigests,
    /// Signed catalog or roster changes made while the proxy was down, recorded after its
    /// start.
    pub changed: Vec<EventKind>,
    /// The operator accepted a rollback (`--accept-rollback`): a witness that holds more
    /// of this log than it has is then reported, not a reason to refuse the start.
    pub accept_rollback: bool,
}

/// The file in the data directory where this proxy, as a witness, keeps the latest
/// checkpoint it cosigned for each log it witnesses.
pub const WITNESS_FILE: &str = "witness.json";

/// The digests of the catalog and roster files in force, each kept beside the log
/// (`bglass_core::audit::policy_files`).
#[derive(Debug, Clone)]
pub struct PolicyDigests {
    /// The catalog's.
    pub catalog: String,
    /// The roster's.
    pub roster: String,
}

/// What opening the log repaired, in a sentence, when it repaired anything.
fn repairs_of(report: &bglass_core::audit::log::RecoveryReport) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(why) = &report.torn {
        parts.push(format!(
            "a torn tail of {} bytes cut from the write-ahead file after entry {} ({why}); nothing acknowledged was lost",
            report.torn_bytes_dropped,
            report.entries.saturating_sub(1)
        ));
    }
    if let Some(why) = &report.history_torn {
        parts.push(format!(
            "a torn tail of {} bytes cut from the checkpoint history ({why})",
            report.history_torn_bytes
        ));
    }
    if report.checkpoint_file_repaired {
        parts.push("the checkpoint file rewritten from the history".to_owned());
    }
    if let Some(b) = report.bundle_rebuilt {
        parts.push(format!(
            "entry bundle {b} rebuilt from the write-ahead file"
        ));
    }
    if report.files_repaired > 0 {
        parts.push(format!(
            "{} bundle or tile files written again",
            report.files_repaired
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
