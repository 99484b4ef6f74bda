//! The agent's side: the key handed over by `bglass unlock` on a pipe, the private socket,
//! and the loop that answers this user's requests until the time limit or `bglass lock`.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bglass_core::envelope::{ENVELOPE_VERSION, FRESHNESS_SECS, RequestPayload};
use bglass_core::id::ResponderId;
use bglass_core::keys::{ResponderIdentity, SigningKey};
use bglass_core::timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use zeroize::{Zeroize, Zeroizing};

use super::{
    AgentError, AgentInfo, IO_TIMEOUT, MAX_CONNECTIONS, MAX_FRAME_BYTES, PROTOCOL_VERSION, Request,
    Response, check_socket_file, ensure_private_dir, my_uid,
};

/// The context string of a TLS 1.3 client CertificateVerify (RFC 8446 §4.4.3), with its
/// terminating zero byte; the signed message is 64 spaces, this, and the transcript hash.
const TLS13_CLIENT_CONTEXT: &[u8] = b"TLS 1.3, client CertificateVerify\0";

/// Whether `message` is a TLS 1.3 client CertificateVerify message (SHA-256 or SHA-384
/// transcript hash), and so can be nothing the proxies accept as a request.
pub fn is_tls13_client_verify(message: &[u8]) -> bool {
    let prefix = 64 + TLS13_CLIENT_CONTEXT.len();
    matches!(message.len().checked_sub(prefix), Some(32 | 48))
        && message[..64].iter().all(|b| *b == b' ')
        && &message[64..prefix] == TLS13_CLIENT_CONTEXT
}

/// The largest hand-over accepted on the agent's standard input.
const MAX_HANDOFF_BYTES: u64 = 16 * 1024;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Handoff {
    responder: ResponderId,
    pkcs8: String,
}

impl Drop for Handoff {
    fn drop(&mut self) {
        self.pkcs8.zeroize();
    }
}

/// The hand-over of an unlocked key from `bglass unlock` to its agent process (on a pipe
/// between the two; the bytes are zeroized on both sides after use).
pub fn handoff_bytes(identity: &ResponderIdentity) -> Result<Zeroizing<Vec<u8>>, AgentError> {
    let handoff = Handoff {
        responder: identity.id.clone(),
        pkcs8: URL_SAFE_NO_PAD.encode(identity.key.pkcs8_der()),
    };
    serde_json::to_vec(&handoff)
        .map(Zeroizing::new)
        .map_err(|e| AgentError::Protocol(e.to_string()))
}

/// Reads the hand-over from `reader` (the agent's standard input) until its end.
pub fn read_handoff(reader: impl Read) -> Result<ResponderIdentity, AgentError> {
    let mut bytes = Zeroizing::new(Vec::new());
    reader
        .take(MAX_HANDOFF_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| AgentError::Protocol(format!("cannot read the key hand-over: {e}")))?;
    if bytes.len() as u64 > MAX_HANDOFF_BYTES {
        return Err(AgentError::Protocol(
            "the key hand-over is too large".to_owned(),
        ));
    }
    let handoff: Handoff = serde_json::from_slice(&bytes)
        .map_err(|_| AgentError::Protocol("the key hand-over is not valid".to_owned()))?;
    let der = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(&handoff.pkcs8)
            .map_err(|_| AgentError::Protocol("the key hand-over is not valid".to_owned()))?,
    );
    let key = SigningKey::from_pkcs8(&der)
        .map_err(|e| AgentError::Protocol(format!("the handed-over key: {e}")))?;
    Ok(ResponderIdentity {
        id: handoff.responder.clone(),
        key,
    })
}

/// Makes this process harder to read the key out of: no core dumps, and not dumpable (other
/// processes of the same user cannot ptrace it or read its memory through /proc).
pub fn harden_process() -> Result<(), AgentError> {
    let fail =
        |what: &str, e: rustix::io::Errno| AgentError::Protocol(format!("cannot {what}: {e}"));
    rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| fail("disable core dumps", e))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| fail("make the process undumpable", e))?;
    Ok(())
}

/// Starts a session of its own for this process (no controlling terminal: closing the
/// terminal or Ctrl-C in it does not reach the agent).
pub fn detach() -> Result<(), AgentError> {
    rustix::process::setsid()
        .map(|_| ())
        .map_err(|e| AgentError::Protocol(format!("cannot start a session: {e}")))
}

/// Binds the agent's socket at `path` (mode 0600, in its private directory). A stale socket
/// of this user's that nobody listens on is replaced; a live agent, or anything at the path
/// that is not this user's socket, is refused.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, AgentError> {
    let dir = path
        .parent()
        .ok_or_else(|| AgentError::Protocol(format!("{} has no directory", path.display())))?;
    ensure_private_dir(dir)?;
    if check_socket_file(path)? {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(AgentError::Running(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(|source| AgentError::Io {
                    what: "cannot remove the stale socket",
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(AgentError::Io {
                    what: "cannot check the socket",
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    let io = |what| {
        move |source| AgentError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(io("cannot listen on"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("cannot restrict"))?;
    listener
        .set_nonblocking(true)
        .map_err(io("cannot configure"))?;
    Ok(listener)
}

/// Why the agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its time limit passed.
    Expired,
    /// `bglass lock`.
    Locked,
    /// SIGTERM or SIGINT.
    Signalled,
}

/// What the connection handlers share: the key (`None` once the agent ends).
struct Shared {
    key: Mutex<Option<ResponderIdentity>>,
    info: AgentInfo,
    owner: u32,
}

/// A lock request: the handler waits on `done` to answer after the key is gone.
type LockRequest = tokio::sync::oneshot::Sender<()>;

/// Serves on `listener` until `lifetime` has passed (by the monotonic and the wall clock),
/// a `Lock` request, or SIGTERM/SIGINT; then removes the socket at `path` and drops the key.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    identity: ResponderIdentity,
    lifetime: Duration,
) -> Result<Ended, AgentError> {
    let listener =
        tokio::net::UnixListener::from_std(listener).map_err(|source| AgentError::Io {
            what: "cannot listen on",
            path: path.clone(),
            source,
        })?;
    let certificate = bglass_tls::client_certificate(&identity.key, identity.id.as_str())
        .map_err(|e| AgentError::Protocol(format!("cannot make the TLS certificate: {e}")))?;
    let expires = timestamp::now_ms() / 1000 + lifetime.as_secs();
    let info = AgentInfo {
        version: PROTOCOL_VERSION,
        responder: identity.id.clone(),
        key: identity.key.public_key(),
        certificate: STANDARD.encode(certificate.as_ref()),
        expires,
        pid: std::process::id(),
    };
    let shared = Arc::new(Shared {
        key: Mutex::new(Some(identity)),
        info,
        owner: my_uid(),
    });
    let deadline = tokio::time::Instant::now() + lifetime;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let (lock_tx, mut lock_rx) = tokio::sync::mpsc::channel::<LockRequest>(1);
    let signal = |kind| {
        tokio::signal::unix::signal(kind).map_err(|source| AgentError::Io {
            what: "cannot handle signals for",
            path: path.clone(),
            source,
        })
    };
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut waiting: Option<LockRequest> = None;
    let ended = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // Over the limit: close at once (a flood must not hold the agent).
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else { continue };
                let shared = Arc::clone(&shared);
                let lock_tx = lock_tx.clone();
                tokio::spawn(async move {
                    handle(stream, &shared, &lock_tx).await;
                    drop(permit);
                });
            }
            _ = tick.tick() => {
                if tokio::time::Instant::now() >= deadline
                    || timestamp::now_ms() / 1000 >= expires
                {
                    break Ended::Expired;
                }
            }
            Some(done) = lock_rx.recv() => {
                waiting = Some(done);
                break Ended::Locked;
            }
            _ = term.recv() => break Ended::Signalled,
            _ = int.recv() => break Ended::Signalled,
        }
    };
    // The socket first (no new client finds a dying agent), then the key.
    let _ = std::fs::remove_file(&path);
    drop(listener);
    if let Ok(mut key) = shared.key.lock() {
        // Dropping the key zeroizes its PKCS#8 copy.
        drop(key.take());
    }
    if let Some(done) = waiting {
        let _ = done.send(());
        // Let the handler write "locked" before the process exits.
        let _ = tokio::time::timeout(IO_TIMEOUT, async {
            while slots.available_permits() < MAX_CONNECTIONS {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    Ok(ended)
}

/// Answers one connection: its peer must run as the agent's owner.
async fn handle(
    mut stream: UnixStream,
    shared: &Shared,
    lock_tx: &tokio::sync::mpsc::Sender<LockRequest>,
) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(_) => return,
    };
    if uid != shared.owner {
        let message = format!(
            "uid {uid} may not use this agent (it serves uid {} only)",
            shared.owner
        );
        let _ = send(&mut stream, &Response::Refused { message }).await;
        return;
    }
    loop {
        let body = match tokio::time::timeout(IO_TIMEOUT, read(&mut stream)).await {
            Ok(Ok(Some(body))) => body,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(message)) => {
                let _ = send(&mut stream, &Response::Refused { message }).await;
                return;
            }
        };
        let request: Request = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                let message = format!("not a request this agent answers: {e}");
                let _ = send(&mut stream, &Response::Refused { message }).await;
                return;
            }
        };
        let response = match request {
            Request::Lock {} => {
                let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                if lock_tx.send(done_tx).await.is_err() || done_rx.await.is_err() {
                    return;
                }
                let _ = send(&mut stream, &Response::Locked).await;
                return;
            }
            other => answer(shared, other),
        };
        if send(&mut stream, &response).await.is_err() {
            return;
        }
    }
}

/// The answer to a request other than `Lock`.
fn answer(shared: &Shared, request: Request) -> Response {
    let refused = |message: String| Response::Refused { message };
    let Ok(guard) = shared.key.lock() else {
        return refused("the agent is ending".to_owned());
    };
    let Some(identity) = guard.as_ref() else {
        return refused("the agent is locked".to_owned());
    };
    match request {
        Request::Hello {} => Response::Hello {
            info: shared.info.clone(),
        },
        Request::SealEnvelope { payload } => match check_payload(identity, &payload) {
            Err(message) => refused(message),
            Ok(()) => match bglass_core::envelope::seal(&payload, &identity.key) {
                Ok(bytes) => Response::Envelope {
                    envelope: STANDARD.encode(bytes),
                },
                Err(e) => refused(format!("cannot seal: {e}")),
            },
        },
        Request::SignTlsClientVerify { message } => match STANDARD.decode(message) {
            Ok(message) if is_tls13_client_verify(&message) => Response::Signature {
                signature: STANDARD.encode(identity.key.sign(b"", &message)),
            },
            _ => refused(
                "not a TLS 1.3 client CertificateVerify message: the agent signs nothing else"
                    .to_owned(),
            ),
        },
        Request::Lock {} => refused("lock is handled by the connection".to_owned()),
    }
}

/// The checks on a payload before the agent signs it.
fn check_payload(identity: &ResponderIdentity, payload: &RequestPayload) -> Result<(), String> {
    if payload.v != ENVELOPE_VERSION {
        return Err(format!(
            "payload version {} is not {ENVELOPE_VERSION}",
            payload.v
        ));
    }
    if payload.responder != identity.id {
        return Err(format!(
            "the payload names responder {}; this agent signs for {} only",
            payload.responder, identity.id
        ));
    }
    if payload.key != identity.key.public_key() {
        return Err("the payload names another key than the agent's".to_owned());
    }
    let now = timestamp::now_ms() / 1000;
    if payload.iat.abs_diff(now) > FRESHNESS_SECS {
        return Err(format!(
            "the payload is dated {}s away from now (limit {FRESHNESS_SECS}s): the agent signs only fresh requests",
            payload.iat.abs_diff(now)
        ));
    }
    Ok(())
}

/// Reads one frame: `None` at a clean end of the connection, an error message when the
/// frame is too large or empty.
async fn read(stream: &mut UnixStream) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(_) => return Ok(None),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME_BYTES {
        return Err(format!(
            "a request of {len} bytes is refused (limit {MAX_FRAME_BYTES})"
        ));
    }
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("the request ends early: {e}"))?;
    Ok(Some(body))
}

async fn send(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let body = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(&frame))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tls13_client_verify_messages_pass() {
        let mut m = vec![b' '; 64];
        m.extend_from_slice(TLS13_CLIENT_CONTEXT);
        m.extend_from_slice(&[7u8; 32]);
        assert!(is_tls13_client_verify(&m));
        m.extend_from_slice(&[7u8; 16]);
        assert!(is_tls13_client_verify(&m));
        m.push(0);
        assert!(!is_tls13_client_verify(&m));
        let mut server = vec![b' '; 64];
        server.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
        server.extend_from_slice(&[7u8; 32]);
        assert!(!is_tls13_client_verify(&server));
        let mut envelope = bglass_core::envelope::ENVELOPE_DOMAIN.to_vec();
        envelope.extend_from_slice(&[b'{'; 130]);
        assert!(!is_tls13_client_verify(&envelope));
        assert!(!is_tls13_client_verify(b""));
    }
}
