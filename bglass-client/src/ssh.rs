//! What `bglass ssh` and the drill's SSH logins share: the proxy's answer to a certificate
//! request, the check of a host's key against the key the catalog pins, and the SSH login
//! itself (russh, over any async stream: in practice the tunnel to the proxy).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::id::ServiceName;

use crate::error::{CliError, CliResult, ErrorKind};

/// What the proxy answers for a certificate request.
#[derive(Debug, serde::Deserialize)]
pub struct Issued {
    /// The OpenSSH certificate (none for a recorded service: the proxy logs in itself).
    #[serde(default)]
    pub certificate: String,
    /// The service is recorded: the session runs through the proxy's own SSH endpoint,
    /// whose key `host_key` then is.
    #[serde(default)]
    pub recorded: bool,
    /// The principals it carries (the first is the default login).
    pub principals: Vec<String>,
    /// The host key the catalog pins for the service.
    pub host_key: String,
    /// When the certificate ends (minutes after issue).
    pub valid_before: u64,
    /// When the grant ends (older proxies do not say).
    #[serde(default)]
    pub grant_expires: Option<u64>,
}

/// Refuses a host whose key (`presented`, in the SSH wire encoding) is not the catalog's
/// pinned key.
pub fn check_host_key(presented: &[u8], service: &ServiceName, pinned: &str) -> CliResult {
    let expected = pinned
        .split_whitespace()
        .nth(1)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .ok_or_else(|| CliError::internal("the catalog's host key is not an OpenSSH key"))?;
    if presented != expected.as_slice() {
        let shown = format!(
            "{} {}",
            pinned.split_whitespace().next().unwrap_or("?"),
            STANDARD.encode(presented)
        );
        return Err(CliError::new(
            ErrorKind::Denied,
            format!("the host key of {service} does not match the key pinned in the catalog; refusing to connect (presented: {shown})"),
        )
        .with_hint("if the host was rebuilt, the operator must update host_key in services.toml; otherwise this may be an impostor"));
    }
    Ok(())
}

/// Why an SSH login failed.
#[derive(Debug)]
pub enum LoginError {
    /// The session key or the certificate could not be read (a bug, not the host's fault).
    Key(String),
    /// The SSH handshake failed or did not finish in time.
    Handshake(String),
    /// The host's key is not the pinned key, or the pin is unreadable.
    HostKey(CliError),
    /// The host refused the certificate (`None`: it answered no; `Some`: the error on the way).
    Refused(Option<String>),
}

/// The client side of one SSH connection: accepts only the host key the catalog pins.
#[derive(Debug)]
pub struct PinnedHost {
    service: ServiceName,
    pinned: String,
}

/// What the connection's handler fails with: the host-key refusal, or russh's own errors.
#[derive(Debug)]
pub enum HostError {
    /// The host's key is not the pinned key.
    HostKey(CliError),
    /// The SSH protocol or transport failed.
    Ssh(russh::Error),
}

impl From<russh::Error> for HostError {
    fn from(e: russh::Error) -> Self {
        Self::Ssh(e)
    }
}

impl russh::client::Handler for PinnedHost {
    type Error = HostError;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKey,
    ) -> Result<bool, Self::Error> {
        let presented = server_public_key
            .to_bytes()
            .map_err(|e| HostError::HostKey(CliError::internal(format!("the host's key: {e}"))))?;
        check_host_key(&presented, &self.service, &self.pinned).map_err(HostError::HostKey)?;
        Ok(true)
    }
}

/// An authenticated SSH connection.
pub type SshHandle = russh::client::Handle<PinnedHost>;

/// Logs in over `stream` as `user` with `certificate` (OpenSSH format) for `private_key`
/// (OpenSSH PEM), the host's key checked strictly against `pinned` before anything is sent
/// under it. `timeout` bounds the handshake and the authentication.
pub async fn login<S>(
    stream: S,
    service: &ServiceName,
    pinned: &str,
    user: &str,
    private_key: &str,
    certificate: &str,
    timeout: Duration,
) -> Result<SshHandle, LoginError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let key = russh::keys::PrivateKey::from_openssh(private_key)
        .map_err(|e| LoginError::Key(format!("the session key: {e}")))?;
    let config = Arc::new(russh::client::Config::default());
    login_with(
        config,
        stream,
        service,
        pinned,
        user,
        key,
        certificate,
        timeout,
    )
    .await
}

/// [`login`] with a given client configuration (its algorithm preferences) and a session
/// key already in memory: the drill's logins share one configuration and skip the PEM
/// round trip of a key they generated themselves.
#[allow(clippy::too_many_arguments)]
pub async fn login_with<S>(
    config: Arc<russh::client::Config>,
    stream: S,
    service: &ServiceName,
    pinned: &str,
    user: &str,
    key: russh::keys::PrivateKey,
    certificate: &str,
    timeout: Duration,
) -> Result<SshHandle, LoginError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let cert = russh::keys::Certificate::from_openssh(certificate.trim())
        .map_err(|e| LoginError::Key(format!("the certificate: {e}")))?;
    let mut handle = connect(config, stream, service, pinned, timeout).await?;
    let timed_out = || LoginError::Handshake(format!("no answer within {}s", timeout.as_secs()));
    let auth = tokio::time::timeout(
        timeout,
        handle.authenticate_openssh_cert(user, Arc::new(key), cert),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|e| LoginError::Refused(Some(e.to_string())))?;
    if !auth.success() {
        return Err(LoginError::Refused(None));
    }
    Ok(handle)
}

/// Opens a recorded session over `stream`: the proxy's own SSH endpoint, whose key must be
/// `pinned` (the key the config pins, or else the one the proxy named over its pinned TLS),
/// authenticated by the tunnel itself (the `none` method as `user`).
pub async fn login_recorded<S>(
    stream: S,
    service: &ServiceName,
    pinned: &str,
    user: &str,
    timeout: Duration,
) -> Result<SshHandle, LoginError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = Arc::new(russh::client::Config::default());
    let mut handle = connect(config, stream, service, pinned, timeout).await?;
    let timed_out = || LoginError::Handshake(format!("no answer within {}s", timeout.as_secs()));
    let auth = tokio::time::timeout(timeout, handle.authenticate_none(user))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| LoginError::Refused(Some(e.to_string())))?;
    if !auth.success() {
        return Err(LoginError::Refused(Some(format!(
            "the proxy does not let {user} in (not one of the service's principals)"
        ))));
    }
    Ok(handle)
}

/// The SSH handshake over `stream`, the host's key checked against `pinned` before anything
/// is sent under it, within `timeout`.
async fn connect<S>(
    config: Arc<russh::client::Config>,
    stream: S,
    service: &ServiceName,
    pinned: &str,
    timeout: Duration,
) -> Result<SshHandle, LoginError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handler = PinnedHost {
        service: service.clone(),
        pinned: pinned.to_owned(),
    };
    tokio::time::timeout(
        timeout,
        russh::client::connect_stream(config, stream, handler),
    )
    .await
    .map_err(|_| LoginError::Handshake(format!("no answer within {}s", timeout.as_secs())))?
    .map_err(|e| match e {
        HostError::HostKey(e) => LoginError::HostKey(e),
        HostError::Ssh(e) => LoginError::Handshake(e.to_string()),
    })
}
