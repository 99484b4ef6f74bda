//! The key agent: `bglass unlock` decrypts the responder key once and hands it to a small
//! per-user background process (like ssh-agent) that signs for later commands over a Unix
//! socket, so that an incident costs one passphrase prompt, not one per command.
//!
//! What it signs, and nothing else:
//! - request envelopes, built by the agent itself from a typed [`RequestPayload`] that must
//!   name the agent's responder and key and be fresh (its `iat` within the proxies'
//!   freshness window), so the bytes signed are always `ENVELOPE_DOMAIN || payload JSON`;
//! - TLS 1.3 client `CertificateVerify` messages (64 spaces, the client context string, a
//!   SHA-256 or SHA-384 transcript hash), for the mutual TLS to the proxies.
//!
//! It never sends the key. Who can reach it: the socket (mode 0600) sits in a directory of
//! the user's own (0700, checked for owner and mode before use) under `$XDG_RUNTIME_DIR`, or
//! `/tmp/bglass-UID` without one; both sides check the other's uid with `SO_PEERCRED` and
//! refuse any other. It ends at its time limit (monotonic and wall clock), on `bglass lock`
//! or on SIGTERM/SIGINT: it removes its socket, drops the key (its PKCS#8 copy zeroized) and
//! exits.
//!
//! The wire: each message is a 4-byte big-endian length and that many bytes of JSON (at
//! most [`MAX_FRAME_BYTES`]); one request, one response, as many as the client likes on a
//! connection until it idles for [`IO_TIMEOUT`].

pub mod server;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::envelope::RequestPayload;
use bglass_core::id::ResponderId;
use bglass_core::keys::PublicKey;
use rustls_pki_types::CertificateDer;

use crate::error::{CliError, ErrorKind};

/// The protocol version both sides speak.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest message either side accepts (an envelope is at most 16 KiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// How long a read or write may take, and how long a connection may idle.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The longest time limit `bglass unlock --for` accepts.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A request to the agent.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Who the agent signs for, and until when. (Struct variants, even empty: serde
    /// refuses unknown fields only there.)
    Hello {},
    /// Sign this payload into an envelope.
    SealEnvelope {
        /// The payload (must name the agent's responder and key, and be fresh).
        payload: Box<RequestPayload>,
    },
    /// Sign a TLS 1.3 client CertificateVerify message (base64).
    SignTlsClientVerify {
        /// The message rustls asks to sign.
        message: String,
    },
    /// End the agent now.
    Lock {},
}

/// Who the agent signs for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The responder.
    pub responder: ResponderId,
    /// Their public key.
    pub key: PublicKey,
    /// The self-signed TLS client certificate over that key (base64 DER).
    pub certificate: String,
    /// When the agent ends, Unix seconds.
    pub expires: u64,
    /// Its process id.
    pub pid: u32,
}

/// The agent's answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// The answer to [`Request::Hello`].
    Hello {
        /// Who and until when.
        info: AgentInfo,
    },
    /// A sealed envelope (base64 of its bytes).
    Envelope {
        /// The envelope.
        envelope: String,
    },
    /// A signature (base64).
    Signature {
        /// The Ed25519 signature.
        signature: String,
    },
    /// The key is gone and the agent is ending.
    Locked,
    /// Refused, and why.
    Refused {
        /// Why.
        message: String,
    },
}

/// Why the agent could not be used or started.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent's directory or socket is not private to this user.
    #[error("refusing {path}: {why}")]
    Insecure {
        /// The directory or socket.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A file system or socket operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process at the other end runs as another user.
    #[error("the process at the other end of {path} runs as uid {found}, not {expected}")]
    PeerUid {
        /// The socket.
        path: PathBuf,
        /// Our uid.
        expected: u32,
        /// Theirs.
        found: u32,
    },
    /// The agent refused the request.
    #[error("the key agent refused: {0}")]
    Refused(String),
    /// The other end does not speak the protocol.
    #[error("the key agent's answer is not valid: {0}")]
    Protocol(String),
    /// Another agent already serves this config.
    #[error("a key agent already serves {0}")]
    Running(PathBuf),
    /// No agent serves this config.
    #[error("no key agent is running for this config")]
    NotRunning,
}

impl From<AgentError> for CliError {
    fn from(e: AgentError) -> Self {
        let hint = match &e {
            AgentError::Insecure { .. } => Some(
                "the agent's socket must sit in a directory only you can use (mode 0700, owned by you); find out who made it, remove it, and run `bglass unlock` again",
            ),
            AgentError::Refused(_) | AgentError::Protocol(_) => {
                Some("run `bglass lock`, then `bglass unlock` again")
            }
            _ => None,
        };
        // An agent that ended or cannot be reached is fixed by unlocking again (exit 1); one
        // that answers out of protocol is a bug.
        let kind = match &e {
            AgentError::Protocol(_) => ErrorKind::Internal,
            _ => ErrorKind::User,
        };
        let err = CliError::new(kind, &e);
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AgentError + 'a {
    move |source| AgentError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// This process's effective uid.
pub fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The directory the agents' sockets live in: `$XDG_RUNTIME_DIR/bglass` when that variable
/// names an absolute path, else `/tmp/bglass-UID`.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("bglass"),
        _ => std::env::temp_dir().join(format!("bglass-{}", my_uid())),
    }
}

/// The socket of the agent for the config at `config` (one agent per config: responders
/// with several configs, and tests, keep theirs apart).
pub fn socket_path(config: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        std::os::unix::ffi::OsStrExt::as_bytes(canonical.as_os_str()),
    );
    let name: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    runtime_dir().join(format!("agent-{name}.sock"))
}

/// Checks that `dir` is a directory (not a link) of this user's, mode 0700 or stricter,
/// in a parent that others cannot swap it out of.
pub fn check_private_dir(dir: &Path) -> Result<(), AgentError> {
    let meta = std::fs::symlink_metadata(dir).map_err(io("cannot inspect", dir))?;
    let insecure = |why: String| AgentError::Insecure {
        path: dir.to_path_buf(),
        why,
    };
    if !meta.file_type().is_dir() {
        return Err(insecure(
            "it is not a directory (a link or a file)".to_owned(),
        ));
    }
    let me = my_uid();
    if meta.uid() != me {
        return Err(insecure(format!(
            "it belongs to uid {}, not to you (uid {me})",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(insecure(format!(
            "its mode is {mode:04o}: others can reach it (it must be 0700)"
        )));
    }
    if let Some(parent) = dir.parent() {
        let pmeta = std::fs::metadata(parent).map_err(io("cannot inspect", parent))?;
        let pmode = pmeta.permissions().mode();
        let others_write = pmode & 0o022 != 0;
        let sticky = pmode & 0o1000 != 0;
        if (pmeta.uid() != me && pmeta.uid() != 0) || (others_write && !sticky) {
            return Err(AgentError::Insecure {
                path: parent.to_path_buf(),
                why: format!(
                    "others could replace the agent's directory in it (owner uid {}, mode {:04o})",
                    pmeta.uid(),
                    pmode & 0o7777
                ),
            });
        }
    }
    Ok(())
}

/// Creates the agent directory (0700) when missing, then checks it.
pub fn ensure_private_dir(dir: &Path) -> Result<(), AgentError> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent()
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io("cannot create", parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("cannot create", dir)(e)),
    }
    check_private_dir(dir)
}

/// Checks the file at `path`: `Ok(false)` when there is none, `Ok(true)` for a socket of
/// this user's, an error for anything else.
pub fn check_socket_file(path: &Path) -> Result<bool, AgentError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("cannot inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(AgentError::Insecure {
            path: path.to_path_buf(),
            why: "it is not a socket".to_owned(),
        });
    }
    if meta.uid() != my_uid() {
        return Err(AgentError::Insecure {
            path: path.to_path_buf(),
            why: format!("it belongs to uid {}, not to you", meta.uid()),
        });
    }
    Ok(true)
}

/// Writes one frame.
pub fn write_frame(writer: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| std::io::Error::other("message too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    writer.write_all(&frame)?;
    writer.flush()
}

/// Reads one frame (refusing one over [`MAX_FRAME_BYTES`] before reading its body).
pub fn read_frame(reader: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message of {len} bytes (limit {MAX_FRAME_BYTES})"),
        ));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// The uid of the process at the other end of a connected socket.
pub fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
    rustix::net::sockopt::socket_peercred(stream)
        .map(|cred| cred.uid.as_raw())
        .map_err(std::io::Error::from)
}

/// A connection to a running agent, checked: its socket is this user's in a private
/// directory, the process behind it runs as this user, and it speaks the protocol.
#[derive(Debug, Clone)]
pub struct AgentClient {
    path: PathBuf,
    info: AgentInfo,
    certificate: CertificateDer<'static>,
}

impl AgentClient {
    /// The agent serving the config at `config`: `Ok(None)` when none runs (no directory,
    /// no socket, or a stale one nobody listens on), an error when the directory or socket
    /// is not private or the other end is not this user's agent.
    pub fn find(config: &Path) -> Result<Option<Self>, AgentError> {
        Self::at(&socket_path(config))
    }

    /// The agent at socket `path` (see [`Self::find`]).
    pub fn at(path: &Path) -> Result<Option<Self>, AgentError> {
        let Some(dir) = path.parent() else {
            return Ok(None);
        };
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot inspect", dir)(e)),
            Ok(_) => check_private_dir(dir)?,
        }
        if !check_socket_file(path)? {
            return Ok(None);
        }
        let stream = match connect(path) {
            Ok(stream) => stream,
            Err(AgentError::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let info = match exchange(path, stream, &Request::Hello {})? {
            Response::Hello { info } => info,
            other => return Err(unexpected(&other)),
        };
        if info.version != PROTOCOL_VERSION {
            return Err(AgentError::Protocol(format!(
                "it speaks version {}, this bglass {PROTOCOL_VERSION}",
                info.version
            )));
        }
        let der = STANDARD
            .decode(&info.certificate)
            .map_err(|e| AgentError::Protocol(format!("certificate: {e}")))?;
        let certificate = CertificateDer::from(der);
        if bglass_tls::ed25519_key_of(&certificate).as_ref() != Some(&info.key) {
            return Err(AgentError::Protocol(
                "its certificate is not over its key".to_owned(),
            ));
        }
        Ok(Some(Self {
            path: path.to_path_buf(),
            info,
            certificate,
        }))
    }

    /// Who the agent signs for, and until when.
    pub fn info(&self) -> &AgentInfo {
        &self.info
    }

    /// Its socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The TLS client certificate over the responder's key.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    fn call(&self, request: &Request) -> Result<Response, AgentError> {
        let stream = connect(&self.path)?;
        match exchange(&self.path, stream, request)? {
            Response::Refused { message } => Err(AgentError::Refused(message)),
            other => Ok(other),
        }
    }

    /// Has the agent seal `payload` into an envelope.
    pub fn seal(&self, payload: &RequestPayload) -> Result<Vec<u8>, AgentError> {
        match self.call(&Request::SealEnvelope {
            payload: Box::new(payload.clone()),
        })? {
            Response::Envelope { envelope } => STANDARD
                .decode(envelope)
                .map_err(|e| AgentError::Protocol(format!("envelope: {e}"))),
            other => Err(unexpected(&other)),
        }
    }

    /// Has the agent sign a TLS 1.3 client CertificateVerify message.
    pub fn sign_tls(&self, message: &[u8]) -> Result<Vec<u8>, AgentError> {
        match self.call(&Request::SignTlsClientVerify {
            message: STANDARD.encode(message),
        })? {
            Response::Signature { signature } => STANDARD
                .decode(signature)
                .map_err(|e| AgentError::Protocol(format!("signature: {e}"))),
            other => Err(unexpected(&other)),
        }
    }

    /// Ends the agent: when this returns, it has dropped the key.
    pub fn lock(&self) -> Result<(), AgentError> {
        match self.call(&Request::Lock {})? {
            Response::Locked => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(response: &Response) -> AgentError {
    match response {
        Response::Refused { message } => AgentError::Refused(message.clone()),
        other => AgentError::Protocol(format!("unexpected answer {other:?}")),
    }
}

/// Connects to the socket at `path` and checks that the process behind it is this user's.
fn connect(path: &Path) -> Result<UnixStream, AgentError> {
    let stream = UnixStream::connect(path).map_err(io("cannot connect to", path))?;
    let found = peer_uid(&stream).map_err(io("cannot check the owner of", path))?;
    let expected = my_uid();
    if found != expected {
        return Err(AgentError::PeerUid {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(io("cannot configure", path))?;
    Ok(stream)
}

/// One request and its answer.
fn exchange(
    path: &Path,
    mut stream: UnixStream,
    request: &Request,
) -> Result<Response, AgentError> {
    let body = serde_json::to_vec(request).map_err(|e| AgentError::Protocol(e.to_string()))?;
    write_frame(&mut stream, &body).map_err(io("cannot write to", path))?;
    let answer = read_frame(&mut stream).map_err(io("cannot read from", path))?;
    serde_json::from_slice(&answer).map_err(|e| AgentError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_oversize() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{\"op\":\"hello\"}").unwrap();
        assert_eq!(
            read_frame(&mut buf.as_slice()).unwrap(),
            b"{\"op\":\"hello\"}"
        );
        let mut big = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes().to_vec();
        big.extend_from_slice(&[b'x'; 16]);
        assert!(read_frame(&mut big.as_slice()).is_err());
        assert!(read_frame(&mut [0u8, 0, 0, 0].as_slice()).is_err());
        assert!(write_frame(&mut Vec::new(), &vec![0u8; MAX_FRAME_BYTES + 1]).is_err());
    }

    #[test]
    fn requests_refuse_unknown_operations_and_fields() {
        assert!(serde_json::from_str::<Request>(r#"{"op":"export_key"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"hello","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"lock","x":1}"#).is_err());
        assert!(matches!(
            serde_json::from_str::<Request>(r#"{"op":"lock"}"#),
            Ok(Request::Lock {})
        ));
    }

    #[test]
    fn private_dir_checks_mode() {
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = base.path().join("bglass");
        ensure_private_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_private_dir(&dir).unwrap_err();
        assert!(err.to_string().contains("0755"), "{err}");
        std::fs::remove_dir(&dir).unwrap();
        std::os::unix::fs::symlink(base.path(), &dir).unwrap();
        assert!(check_private_dir(&dir).is_err());
    }
}
