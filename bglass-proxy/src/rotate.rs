//! `bglass-proxy rotate-key`: a new signing key, put in force through a transition entry in
//! the audit log signed by the old key and the new one (`bglass_core::audit::rotation`).
//!
//! Run while the proxy is stopped (the log's lock says so). The steps are ordered so that a
//! crash at any point leaves something the next run finishes, and never a log signed by a
//! key that is lost:
//!
//! 1. the new key is kept in the vault as `bglass.signing_key.next` (unless a previous,
//!    interrupted run left one there: that one is used);
//! 2. the log is opened with the old key, co-signing with the new one; the transition entry
//!    is appended (unless the log already ends its chain at the new key) and a checkpoint
//!    signed by both keys covers it;
//! 3. the vault's signing key becomes the new key and `.next` is removed.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind};
use bglass_core::audit::log::{AuditLog, LogConfig};
use bglass_core::audit::rotation::KeyTransition;
use bglass_core::id::SecretName;
use bglass_core::keys::{PublicKey, SigningKey};
use bglass_core::vault::{Vault, VaultIdentity};
use bglass_core::{ExposeSecret, SecretString};

use crate::config::ProxyConfig;
use crate::init::SIGNING_KEY_SECRET;
use crate::server::PUBLISHED_CHECKPOINT_FILE;

/// Where an interrupted rotation keeps the new key until it is in force.
pub const NEXT_SIGNING_KEY_SECRET: &str = "bglass.signing_key.next";

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The key that signed before.
    pub old: PublicKey,
    /// The key in force now.
    pub new: PublicKey,
    /// The log entry recording the transition.
    pub index: u64,
    /// Whether this run finished one a crash had interrupted.
    pub resumed: bool,
}

/// Why a rotation stopped (what it did so far stays, and running it again finishes it).
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The vault could not be read or written.
    #[error(transparent)]
    Vault(#[from] bglass_core::vault::VaultError),
    /// A key in the vault is not a usable signing key.
    #[error("the vault's {name} is not an Ed25519 PKCS#8 key")]
    Key {
        /// Which.
        name: &'static str,
    },
    /// A key could not be made.
    #[error("a new key could not be made: {0}")]
    Generate(String),
    /// The log could not be opened (the proxy may be running: it holds the log's lock).
    #[error("the audit log could not be opened: {0} (stop the proxy first)")]
    Open(#[from] bglass_core::audit::log::AuditOpenError),
    /// The transition could not be written.
    #[error("the audit log could not record the rotation: {0}")]
    Append(#[from] bglass_core::audit::log::AuditAppendError),
    /// The event could not be encoded.
    #[error("the rotation entry could not be encoded: {0}")]
    Encode(#[from] bglass_core::audit::event::EventError),
}

fn name(value: &str) -> Result<SecretName, RotateError> {
    SecretName::new(value).map_err(|_| RotateError::Key {
        name: "secret name",
    })
}

fn key_of(
    vault: &Vault,
    secret: &SecretName,
    label: &'static str,
) -> Result<Option<SigningKey>, RotateError> {
    let Some(value) = vault.proxy_key(secret) else {
        return Ok(None);
    };
    let der = STANDARD
        .decode(value.expose_secret())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| RotateError::Key { name: label })?;
    SigningKey::from_pkcs8(&der)
        .map(Some)
        .map_err(|_| RotateError::Key { name: label })
}

/// Rotates the signing key of the proxy `config` describes (stopped).
pub fn rotate_signing_key(config: &ProxyConfig) -> Result<Rotated, RotateError> {
    let identity = VaultIdentity::open_file(&config.vault_identity)?;
    let mut vault = Vault::open(&config.vault, &identity)?;
    let current_name = name(SIGNING_KEY_SECRET)?;
    let next_name = name(NEXT_SIGNING_KEY_SECRET)?;
    let old = key_of(&vault, &current_name, SIGNING_KEY_SECRET)?.ok_or(RotateError::Key {
        name: SIGNING_KEY_SECRET,
    })?;
    let (new, resumed) = match key_of(&vault, &next_name, NEXT_SIGNING_KEY_SECRET)? {
        Some(next) => (next, true),
        None => (
            SigningKey::generate().map_err(|e| RotateError::Generate(e.to_string()))?,
            false,
        ),
    };
    let (old, new) = (Arc::new(old), Arc::new(new));

    // 2. The transition in the log, covered by a checkpoint both keys sign.
    let mut last: Option<(u64, PublicKey)> = None;
    let log_config = LogConfig {
        published: Some(config.data_dir.join(PUBLISHED_CHECKPOINT_FILE)),
        reserve_bytes: config.storage.reserve_bytes,
        successor: Some(Arc::clone(&new)),
        ..LogConfig::new(
            config.data_dir.join("log"),
            config.id.clone(),
            Arc::clone(&old),
        )
    };
    let (log, _) = AuditLog::open(log_config, |index, bytes| {
        if bglass_core::audit::event::peek_kind(bytes)
            == Some(bglass_core::audit::rotation::EVENT_TYPE)
            && let Ok(event) = Event::from_bytes(bytes)
            && let EventKind::SigningKeyRotated { transition } = event.event
        {
            last = Some((index, transition.new));
        }
        Ok(())
    })?;
    // 1. The new key, kept before the log names it (the log is ours now: a running proxy
    // would have refused the open above, before anything changed).
    if !resumed {
        vault.set_proxy_key(
            next_name.clone(),
            SecretString::from(STANDARD.encode(new.pkcs8_der())),
        )?;
        vault.save(&config.vault, &identity)?;
    }
    let index = match last {
        Some((index, key)) if key == new.public_key() => index,
        _ => {
            let index = log.size();
            let event = Event {
                v: EVENT_VERSION,
                time_ms: bglass_core::timestamp::now_ms(),
                proxy: config.id.clone(),
                actor: None,
                drill: None,
                event: EventKind::SigningKeyRotated {
                    transition: KeyTransition::sign(log.origin(), index, &old, &new),
                },
            };
            log.append(event.to_bytes()?)?;
            index
        }
    };
    log.checkpoint_now()?;
    log.close();

    // 3. The new key in force.
    vault.set_proxy_key(
        current_name,
        SecretString::from(STANDARD.encode(new.pkcs8_der())),
    )?;
    vault.remove_proxy_key(&next_name);
    vault.save(&config.vault, &identity)?;
    Ok(Rotated {
        old: old.public_key(),
        new: new.public_key(),
        index,
        resumed,
    })
}
