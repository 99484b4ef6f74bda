//! The responder as a session signs: with the key unlocked in this process, or through the
//! key agent `bglass unlock` started (which keeps the key and signs for us). Envelopes and
//! the mutual TLS to the proxies go through here, whichever holds the key.

use std::path::Path;
use std::sync::Arc;

use bglass_core::catalog::CertPin;
use bglass_core::envelope::RequestPayload;
use bglass_core::id::ResponderId;
use bglass_core::keys::{PublicKey, ResponderIdentity, SigningKey};
use rustls::SignatureScheme;
use rustls::pki_types::SubjectPublicKeyInfoDer;

use crate::agent::{AgentClient, AgentError};
use crate::config::Config;
use crate::error::{CliError, CliResult};
use crate::passphrase;

/// Who signs, and with what.
#[derive(Debug)]
pub struct Identity {
    /// The responder's roster id.
    pub id: ResponderId,
    public: PublicKey,
    signer: Signer,
}

#[derive(Debug)]
enum Signer {
    /// The key, unlocked in this process.
    Local(SigningKey),
    /// The key agent.
    Agent(Arc<AgentClient>),
}

impl Identity {
    /// An identity whose key this process holds.
    pub fn local(identity: ResponderIdentity) -> Self {
        Self {
            id: identity.id,
            public: identity.key.public_key(),
            signer: Signer::Local(identity.key),
        }
    }

    /// An identity whose key the agent holds.
    pub fn agent(client: AgentClient) -> Self {
        Self {
            id: client.info().responder.clone(),
            public: client.info().key,
            signer: Signer::Agent(Arc::new(client)),
        }
    }

    /// The same identity for another session: a copy of the unlocked key (wiped when it
    /// drops), or the same agent.
    pub fn try_clone(&self) -> CliResult<Self> {
        let signer = match &self.signer {
            Signer::Local(key) => Signer::Local(
                SigningKey::from_pkcs8(key.pkcs8_der())
                    .map_err(|e| CliError::internal(format!("copying the unlocked key: {e}")))?,
            ),
            Signer::Agent(client) => Signer::Agent(Arc::clone(client)),
        };
        Ok(Self {
            id: self.id.clone(),
            public: self.public,
            signer,
        })
    }

    /// The responder of the config at `config_path`: through its key agent when one runs
    /// (no prompt), else by unlocking the key file with the passphrase. An agent that cannot
    /// be trusted (a directory or socket not private to this user, another uid behind it)
    /// is not used, with a warning.
    pub fn unlock(config_path: &Path, config: &Config) -> CliResult<Self> {
        match AgentClient::find(config_path) {
            Ok(Some(client)) if client.info().responder == config.responder => {
                return Ok(Self::agent(client));
            }
            Ok(Some(client)) => eprintln!(
                "bglass: warning: not using the key agent at {}: it signs for {}, but the config says responder = {}",
                client.path().display(),
                client.info().responder,
                config.responder
            ),
            Ok(None) => {}
            Err(e) => eprintln!("bglass: warning: not using the key agent: {e}"),
        }
        Self::from_key_file(config).map(Self::local)
    }

    /// Opens the key file with the passphrase (from the environment, or asked).
    pub fn from_key_file(config: &Config) -> CliResult<ResponderIdentity> {
        let passphrase = passphrase::existing_passphrase(&config.identity)?;
        let identity =
            ResponderIdentity::open_file(&config.identity, &passphrase).map_err(|e| {
                let hint = match &e {
                    bglass_core::keys::KeyFileError::WrongPassphrase { .. } => {
                        Some("type it again, or check BGLASS_PASSPHRASE")
                    }
                    bglass_core::keys::KeyFileError::InsecurePermissions { .. } => None,
                    _ => Some("re-enroll if the key file is lost or damaged"),
                };
                let err = CliError::user(&e);
                match hint {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            })?;
        if identity.id != config.responder {
            return Err(CliError::user(format!(
                "the key file belongs to {}, but the config says responder = {}",
                identity.id, config.responder
            )));
        }
        Ok(identity)
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The agent signing for this identity, if one does.
    pub fn agent_client(&self) -> Option<&AgentClient> {
        match &self.signer {
            Signer::Agent(client) => Some(client),
            Signer::Local(_) => None,
        }
    }

    /// A warning for a command that opens connections until `until` (Unix seconds, a
    /// grant's end) when the key agent signing for it ends earlier: every TLS handshake
    /// needs the agent, so connections opened after it ends fail.
    pub fn agent_ends_before(&self, until: u64) -> Option<String> {
        let agent = self.agent_client()?;
        let ends = agent.info().expires;
        (ends < until).then(|| {
            format!(
                "the key agent ends at {}, before the grant ({}): new connections fail after that; run `bglass unlock --for …` again, or `bglass lock` first to use the passphrase",
                bglass_core::timestamp::format_secs(ends),
                bglass_core::timestamp::format_secs(until)
            )
        })
    }

    /// Seals a payload (which must name this identity) into envelope bytes.
    pub fn seal(&self, payload: &RequestPayload) -> CliResult<Vec<u8>> {
        match &self.signer {
            Signer::Local(key) => bglass_core::envelope::seal(payload, key)
                .map_err(|e| CliError::user(format!("cannot sign the request: {e}"))),
            Signer::Agent(client) => client.seal(payload).map_err(|e| {
                CliError::from(e).with_hint(
                    "the key agent may have reached its time limit: run `bglass unlock` again",
                )
            }),
        }
    }

    /// The TLS client configuration for the proxy pinned by `pin`.
    pub fn tls_config(&self, pin: CertPin) -> CliResult<rustls::ClientConfig> {
        let config = match &self.signer {
            Signer::Local(key) => bglass_tls::client_config(pin, key, self.id.as_str()),
            Signer::Agent(client) => bglass_tls::client_config_with_key(
                pin,
                client.certificate().clone(),
                Arc::new(AgentTlsKey {
                    client: Arc::clone(client),
                    public: self.public,
                }),
            ),
        };
        config.map_err(|e| CliError::internal(format!("TLS setup: {e}")))
    }
}

/// The responder key as rustls sees it when the agent holds it: every TLS 1.3 client
/// CertificateVerify is signed by the agent.
#[derive(Debug)]
struct AgentTlsKey {
    client: Arc<AgentClient>,
    public: PublicKey,
}

impl rustls::sign::SigningKey for AgentTlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered.contains(&SignatureScheme::ED25519).then(|| {
            Box::new(AgentTlsSigner {
                client: Arc::clone(&self.client),
            }) as Box<dyn rustls::sign::Signer>
        })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let mut spki = bglass_tls::ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(self.public.as_bytes());
        Some(SubjectPublicKeyInfoDer::from(spki))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ED25519
    }
}

#[derive(Debug)]
struct AgentTlsSigner {
    client: Arc<AgentClient>,
}

impl rustls::sign::Signer for AgentTlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.client
            .sign_tls(message)
            .map_err(|e: AgentError| rustls::Error::General(format!("the key agent: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}
