//! Reloads: the catalog and roster when their files change or on SIGHUP (fail stale: a
//! rejected version leaves the last good one in force; every attempt audited, a rejection
//! notified), the vault on SIGHUP, and the end of the grants of responders the roster no
//! longer holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bglass_core::audit::event::EventKind;
use bglass_core::catalog::{Catalog, CatalogError};
use bglass_core::failstale::Offer;
use bglass_core::id::ServiceName;
use bglass_core::roster::Roster;
use bglass_core::timestamp;
use bglass_core::vault::CredentialError;

use super::{Proxy, admins, lock};
use bglass_core::audit::policy_files::{self, PolicyKind};
use bglass_core::config_diff::{catalog_diff, roster_diff};

/// Why a catalog push was rejected (the last good catalog stays in force).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogReloadError {
    /// The catalog is invalid or unreadable.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// It could not be kept beside the audit log, whose entries must name only catalogs an
    /// auditor can read back.
    #[error("the catalog could not be kept beside the audit log: {0}")]
    Keep(#[from] bglass_core::audit::storage::StorageError),
    /// `proxy.toml` requires admin signatures, and the change does not carry enough.
    #[error("{0}")]
    Unsigned(String),
    /// It would send credentials where the vault does not bind them.
    #[error(
        "{}: would send credentials where they are not bound ({}); if the move is intended, bind them first: bglass-proxy secrets bind NAME --for SERVICE",
        path.display(),
        moved.iter().map(|(s, e)| format!("{s}: {e}")).collect::<Vec<_>>().join("; ")
    )]
    Unbound {
        /// The catalog file.
        path: PathBuf,
        /// The services that would move, and why their credential is not bound there.
        moved: Vec<(ServiceName, CredentialError)>,
    },
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the catalog and roster on SIGHUP or when their files change; a rejected version
/// leaves the last good one in force (fail stale). Every attempt is audited; a rejection is
/// notified. A roster change ends the grants of responders it removed.
pub async fn reload(proxy: Arc<Proxy>) {
    // Responders removed while the proxy was down lose their grants now.
    end_grants_of_departed(&proxy).await;
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    let files: [(&str, PathBuf); 2] = [
        ("catalog", proxy.config.services.clone()),
        ("roster", proxy.config.roster.clone()),
    ];
    // A file and its signature file: signatures may land after the file they sign.
    let stamp = |p: &Path| (mtime(p), mtime(&admins::sig_path(p)));
    let mut seen: Vec<(Option<SystemTime>, Option<SystemTime>)> =
        files.iter().map(|(_, p)| stamp(p)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let forced = tokio::select! {
            _ = hup.recv() => true,
            _ = tick.tick() => false,
        };
        if forced {
            // The vault (upstream credentials) is read again on SIGHUP only.
            let reloaded =
                bglass_core::vault::VaultIdentity::open_file(&proxy.config.vault_identity)
                    .and_then(|id| bglass_core::vault::Vault::open(&proxy.config.vault, &id));
            match reloaded {
                Ok(v) => {
                    *proxy
                        .vault
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(v)
                }
                Err(e) => {
                    eprintln!("bglass-proxy: vault reload REJECTED, keeping the last good one: {e}")
                }
            }
        }
        for (i, (name, path)) in files.iter().enumerate() {
            let now = stamp(path);
            if !forced && now == seen[i] {
                continue;
            }
            seen[i] = now;
            let outcome = match *name {
                "catalog" => reload_catalog(&proxy, path),
                _ => reload_roster(&proxy, path),
            };
            let accepted = outcome.error.is_none();
            if let Some(e) = &outcome.error {
                proxy.metrics.config_rejected(name);
                eprintln!(
                    "bglass-proxy: {name} reload REJECTED, keeping the last good version: {e}"
                );
            }
            let _ = proxy
                .record(
                    None,
                    EventKind::ConfigReload {
                        file: (*name).to_owned(),
                        accepted,
                        digest: outcome.digest,
                        error: outcome.error,
                        signers: outcome.signers,
                        changes: outcome.changes,
                    },
                )
                .await;
            if *name == "roster" && accepted {
                end_grants_of_departed(&proxy).await;
            }
        }
    }
}

/// What a reload attempt came to.
#[derive(Debug, Default)]
struct Outcome {
    /// The digest of the version put in force.
    digest: Option<String>,
    /// Why it was rejected.
    error: Option<String>,
    /// The admins who signed it.
    signers: Vec<String>,
    /// What it changed.
    changes: Vec<bglass_core::config_diff::Change>,
}

/// Offers the catalog at `path`. The bytes validated are kept beside the log before the
/// version is put in force, so that every accepted `config_reload` names a file an auditor
/// can read back.
fn reload_catalog(proxy: &Proxy, path: &Path) -> Outcome {
    let old = proxy.catalog.current();
    let parent = lock(&proxy.state).in_force.catalog.clone();
    let mut signers = Vec::new();
    let kept = bound_catalog(proxy, path).and_then(|(catalog, bytes)| {
        signers = admins::admit(
            &proxy.config.admins,
            PolicyKind::Catalog,
            path,
            &bytes,
            parent.as_deref(),
            None,
        )
        .map_err(CatalogReloadError::Unsigned)?;
        policy_files::store(proxy.log.dir(), PolicyKind::Catalog, &bytes)?;
        Ok(catalog)
    });
    match proxy.catalog.offer(kept, timestamp::now_ms() / 1000) {
        Offer::Accepted(c) => Outcome {
            digest: Some(c.digest().to_owned()),
            error: None,
            changes: catalog_diff(&old, &c),
            signers,
        },
        Offer::Rejected { error, .. } => Outcome {
            error: Some(error.to_string()),
            ..Outcome::default()
        },
    }
}

/// Offers the roster at `path` (kept beside the log first, as the catalog).
fn reload_roster(proxy: &Proxy, path: &Path) -> Outcome {
    let old = proxy.roster.current();
    let parent = lock(&proxy.state).in_force.roster.clone();
    let mut signers = Vec::new();
    let mut digest = None;
    let kept = Roster::load_with_bytes(path)
        .map_err(|e| e.to_string())
        .and_then(|(roster, bytes)| {
            signers = admins::admit(
                &proxy.config.admins,
                PolicyKind::Roster,
                path,
                &bytes,
                parent.as_deref(),
                Some((&old, &roster)),
            )?;
            digest = Some(
                policy_files::store(proxy.log.dir(), PolicyKind::Roster, &bytes).map_err(|e| {
                    format!("the roster could not be kept beside the audit log: {e}")
                })?,
            );
            Ok(roster)
        });
    match proxy.roster.offer(kept, timestamp::now_ms() / 1000) {
        Offer::Accepted(r) => Outcome {
            digest,
            error: None,
            changes: roster_diff(&old, &r),
            signers,
        },
        Offer::Rejected { error, .. } => Outcome {
            error: Some(error),
            ..Outcome::default()
        },
    }
}

/// Loads a catalog and refuses it when any of its services would send a credential where
/// the vault does not bind it (a new address, a new pin, another service, or one of the
/// proxy's own keys): a catalog push alone must never move a credential.
fn bound_catalog(proxy: &Proxy, path: &Path) -> Result<(Catalog, Vec<u8>), CatalogReloadError> {
    let (catalog, bytes) = Catalog::load_with_bytes(path)?;
    let vault = proxy
        .vault
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let moved: Vec<(ServiceName, CredentialError)> = vault
        .unbound(&catalog)
        .into_iter()
        .filter(|(_, e)| !matches!(e, CredentialError::Missing(_)))
        .collect();
    if moved.is_empty() {
        Ok((catalog, bytes))
    } else {
        Err(CatalogReloadError::Unbound {
            path: path.to_path_buf(),
            moved,
        })
    }
}

/// Ends every live grant whose holder left the roster (or whose key changed in it): their
/// open streams and tunnels are cut, and the revocations are recorded.
pub async fn end_grants_of_departed(proxy: &Arc<Proxy>) {
    let roster = proxy.roster.current();
    let departed = lock(&proxy.state).grants_of_departed(&roster, timestamp::now_ms());
    for (grant, holder) in departed {
        let kind = EventKind::Revoke {
            grant,
            reason: format!("{holder} is no longer in the roster with this key"),
            envelope: None,
        };
        let _ = proxy.record(None, kind).await;
    }
}
