//! Recorded SSH (`record = true`): the proxy terminates SSH itself inside the responder's
//! tunnel, logs in to the host with a certificate it mints for itself, relays the session
//! channel by channel, and records what passes ([`super::recorder`]).
//!
//! - The tunnel is already authorised (mutual TLS, a live grant for the service), so the
//!   proxy's SSH endpoint accepts the `none` method, as the login name the responder asks
//!   for: the responder holds no SSH key or certificate at all.
//! - The proxy's login to the host uses a fresh in-memory key and a certificate from the
//!   session CA (valid minutes, from the proxy's addresses, with the catalog's principals), which
//!   recorded hosts trust instead of the responders' CA. The host's key must be the key the
//!   catalog pins.
//! - Session channels only: shells, commands, subsystems. Port, agent and X11 forwarding
//!   are refused (what passes through them could not be recorded as a session).
//! - Every input, output, terminal request, resize, command and exit status is a frame.
//!   When the recording cannot be written, each channel gets a message on standard error and
//!   exit status 255, and the session is closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bglass_core::audit::event::EventKind;
use bglass_core::audit::recording::{FrameKind, Header};
use bglass_core::catalog::{Service, ServiceKind};
use bglass_core::id::{GrantId, ResponderId};
use bglass_core::policy::Refusal;
use bglass_core::timestamp;
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg};
use tokio::net::TcpStream;

use super::recorder::{self, Finished, Recorder};
use super::{Proxy, lock};

/// How long the proxy's own login to the host may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Who and what a recorded session runs for.
#[derive(Debug)]
pub struct Context {
    /// The proxy.
    pub proxy: Arc<Proxy>,
    /// The grant holder.
    pub caller: ResponderId,
    /// The service.
    pub service: Service,
    /// The grant.
    pub grant: GrantId,
    /// The grant's end, Unix seconds.
    pub exp: u64,
    /// A canary's grant (its login runs `true` only).
    pub canary: bool,
    /// The tunnel.
    pub tunnel: u64,
}

/// Payload bytes each way, for the tunnel's close entry.
#[derive(Debug, Default)]
pub struct Counters {
    /// From the responder.
    pub up: AtomicU64,
    /// To the responder.
    pub down: AtomicU64,
}

/// The recording of a session once it has started.
struct Running {
    session: String,
    recorder: Recorder,
    writer: tokio::task::JoinHandle<Finished>,
}

type Slot = Arc<Mutex<Option<Running>>>;

/// A recording id: the start time and random bits.
fn session_id() -> Result<String, Refusal> {
    let mut random = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| Refusal::new("internal", 500, "random generator failed"))?;
    let bits: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("s-{}-{bits}", timestamp::now_ms()))
}

/// Why a session the client (or the network) ended, ended: `eof` when the client closed it
/// (a disconnect message, or the connection closed between packets), `error` otherwise.
fn ended_by_client(result: Result<(), russh::Error>) -> &'static str {
    use std::io::ErrorKind as K;
    match result {
        Ok(()) | Err(russh::Error::Disconnect | russh::Error::HUP) => "eof",
        Err(russh::Error::IO(e))
            if matches!(
                e.kind(),
                K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe
            ) =>
        {
            "eof"
        }
        Err(_) => "error",
    }
}

/// Serves the recorded session over `stream` until it ends or `ended` resolves (the grant
/// ended: `reason`), then closes its recording. Returns why it ended.
pub async fn serve<S>(
    ctx: Arc<Context>,
    stream: S,
    upstream: TcpStream,
    host_key: ssh_key::PrivateKey,
    counters: Arc<Counters>,
    ended: impl Future<Output = &'static str>,
) -> &'static str
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // russh keeps its own copy of the key types: the key crosses as OpenSSH text.
    let host_key = host_key
        .to_openssh(ssh_key::LineEnding::LF)
        .ok()
        .and_then(|pem| russh::keys::PrivateKey::from_openssh(pem.as_bytes()).ok());
    let Some(host_key) = host_key else {
        return "error";
    };
    let mut config = russh::server::Config {
        keys: vec![host_key],
        methods: russh::MethodSet::from(&[russh::MethodKind::None][..]),
        auth_rejection_time: Duration::from_millis(200),
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    };
    config.server_id = russh::SshId::Standard("SSH-2.0-bglass_recorded".into());
    let slot: Slot = Arc::new(Mutex::new(None));
    let handler = Handler {
        ctx: Arc::clone(&ctx),
        upstream: Some(upstream),
        up: None,
        broken: None,
        slot: Arc::clone(&slot),
        counters,
    };
    let reason = match russh::server::run_stream(Arc::new(config), stream, handler).await {
        Ok(running) => {
            let handle = running.handle();
            tokio::select! {
                result = running => ended_by_client(result),
                reason = ended => {
                    let note = format!("bglass: the grant {} {reason}; the proxy closed the session", ctx.grant);
                    let recorder = lock(&slot).as_ref().map(|r| r.recorder.clone());
                    if let Some(r) = recorder {
                        let _ = r.frame(FrameKind::Note, 0, note.as_bytes()).await;
                    }
                    let _ = handle
                        .disconnect(russh::Disconnect::ByApplication, note, String::new())
                        .await;
                    reason
                }
            }
        }
        Err(_) => "error",
    };
    let running = lock(&slot).take();
    if let Some(Running {
        session,
        recorder,
        writer,
    }) = running
    {
        drop(recorder);
        // The channels' pumps hold the last recorders; they end with the connection.
        let finished = match writer.await {
            Ok(f) => f,
            Err(e) => Finished {
                chunks: 0,
                bytes: 0,
                sha256: String::new(),
                failure: Some(format!("the recording's writer stopped: {e}")),
            },
        };
        let reason = if finished.failure.is_some() {
            "recording_failed"
        } else {
            reason
        };
        let end = EventKind::RecordingEnd {
            grant: ctx.grant.clone(),
            service: ctx.service.name.clone(),
            session,
            chunks: finished.chunks,
            bytes: finished.bytes,
            sha256: finished.sha256,
            reason: reason.to_owned(),
        };
        let _ = ctx.proxy.record(Some(ctx.caller.clone()), end).await;
        return reason;
    }
    reason
}

/// The proxy's SSH endpoint for one session.
struct Handler {
    ctx: Arc<Context>,
    upstream: Option<TcpStream>,
    up: Option<russh::client::Handle<PinnedUpstream>>,
    /// Why the session cannot go on (told on every channel it opens).
    broken: Option<String>,
    slot: Slot,
    counters: Arc<Counters>,
}

impl Handler {
    fn principals(&self) -> &[String] {
        match &self.ctx.service.kind {
            ServiceKind::Ssh { principals, .. } => principals,
            _ => &[],
        }
    }

    fn host_key(&self) -> &str {
        match &self.ctx.service.kind {
            ServiceKind::Ssh { host_key, .. } => host_key,
            _ => "",
        }
    }

    /// Logs in to the host as `user`, and starts the recording.
    async fn begin(&mut self, user: &str) -> Result<(), String> {
        let ctx = Arc::clone(&self.ctx);
        let stream = self
            .upstream
            .take()
            .ok_or_else(|| "the session logged in twice".to_owned())?;
        let up = tokio::time::timeout(LOGIN_TIMEOUT, self.login(stream, user))
            .await
            .map_err(|_| {
                format!(
                    "{} did not complete the proxy's login within {}s",
                    ctx.service.name,
                    LOGIN_TIMEOUT.as_secs()
                )
            })??;
        self.up = Some(up);
        let session = session_id().map_err(|r| r.message)?;
        let header = Header {
            format: bglass_core::audit::recording::FORMAT.to_owned(),
            session: session.clone(),
            proxy: ctx.proxy.config.id.to_string(),
            responder: ctx.caller.to_string(),
            service: ctx.service.name.to_string(),
            user: user.to_owned(),
            grant: ctx.grant.to_string(),
            start_ms: timestamp::now_ms(),
        };
        let start = EventKind::RecordingStart {
            grant: ctx.grant.clone(),
            service: ctx.service.name.clone(),
            tunnel: ctx.tunnel,
            session: session.clone(),
            user: user.to_owned(),
        };
        // The start is durable before the file holds a byte.
        ctx.proxy
            .record(Some(ctx.caller.clone()), start)
            .await
            .map_err(|r| format!("the audit log refused the recording's start: {}", r.message))?;
        let (recorder, writer) = recorder::start(&ctx.proxy, ctx.caller.clone(), &header).await?;
        *lock(&self.slot) = Some(Running {
            session,
            recorder,
            writer,
        });
        Ok(())
    }

    /// The proxy's own login to the host: a fresh key, a certificate from the session CA.
    async fn login(
        &self,
        stream: TcpStream,
        user: &str,
    ) -> Result<russh::client::Handle<PinnedUpstream>, String> {
        let ctx = &self.ctx;
        let ca = super::certify::vault_key(&ctx.proxy, crate::recording_keys::SESSION_CA_SECRET)
            .map_err(|r| r.message)?;
        let key = ssh_key::PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(|e| format!("generating the session key: {e}"))?;
        let now = timestamp::now_ms() / 1000;
        let window = ctx.proxy.config.ssh.window(now, ctx.exp);
        let principals = self.principals().to_vec();
        let spec = super::certify::Spec {
            key: key.public_key().key_data(),
            principals: &principals,
            window,
            key_id: format!(
                "bglass-recorded:{}:{}:{}",
                ctx.caller, ctx.grant, ctx.proxy.config.id
            ),
            probe_only: ctx.canary,
            extensions: Vec::new(),
        };
        let (cert, serial) = super::certify::sign(&ctx.proxy, &ca, &spec).map_err(|r| r.message)?;
        let event = EventKind::SshCertificate {
            grant: ctx.grant.clone(),
            service: ctx.service.name.clone(),
            key: key
                .public_key()
                .fingerprint(ssh_key::HashAlg::Sha256)
                .to_string(),
            serial,
            principals: principals.clone(),
            valid_before: window.1,
        };
        ctx.proxy
            .record(Some(ctx.caller.clone()), event)
            .await
            .map_err(|r| r.message)?;
        let pinned = PinnedUpstream {
            pinned: self.host_key().to_owned(),
        };
        let config = Arc::new(russh::client::Config {
            nodelay: true,
            ..Default::default()
        });
        let fail = |e: &dyn std::fmt::Display| format!("the proxy's session key: {e}");
        let key = key
            .to_openssh(ssh_key::LineEnding::LF)
            .map_err(|e| fail(&e))
            .and_then(|pem| {
                russh::keys::PrivateKey::from_openssh(pem.as_bytes()).map_err(|e| fail(&e))
            })?;
        let cert = cert
            .to_openssh()
            .map_err(|e| fail(&e))
            .and_then(|text| russh::keys::Certificate::from_openssh(&text).map_err(|e| fail(&e)))?;
        let mut handle = russh::client::connect_stream(config, stream, pinned)
            .await
            .map_err(|e| match e {
                UpstreamError::HostKey(why) => why,
                UpstreamError::Ssh(e) => format!("SSH to {}: {e}", ctx.service.name),
            })?;
        let auth = handle
            .authenticate_openssh_cert(user, Arc::new(key), cert)
            .await
            .map_err(|e| format!("{} refused the proxy's login: {e}", ctx.service.name))?;
        if !auth.success() {
            return Err(format!(
                "{} refused the proxy's session certificate for {user}: the host must trust this proxy's session CA (ssh_session_ca.pub) in TrustedUserCAKeys and allow the principal",
                ctx.service.name
            ));
        }
        Ok(handle)
    }
}

impl russh::server::Handler for Handler {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        // The login name is the responder's choice, as with a certificate of their own: the
        // host decides whether the catalog's principals may log in as it.
        if user.is_empty() || user.len() > 64 {
            return Ok(Auth::reject());
        }
        if self.up.is_none()
            && self.broken.is_none()
            && let Err(why) = self.begin(user).await
        {
            self.broken = Some(why);
        }
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let recorder = lock(&self.slot).as_ref().map(|r| r.recorder.clone());
        let opened = match (&self.up, recorder, &self.broken) {
            (Some(up), Some(recorder), None) => match up.channel_open_session().await {
                Ok(upstream) => Ok((upstream, recorder)),
                Err(e) => Err(format!(
                    "{} refused a session channel: {e}",
                    self.ctx.service.name
                )),
            },
            (_, _, Some(why)) => Err(why.clone()),
            _ => Err("the session has no login to the host".to_owned()),
        };
        let counters = Arc::clone(&self.counters);
        let handle = session.handle();
        tokio::spawn(async move {
            match opened {
                Ok((upstream, recorder)) => {
                    pump(channel, upstream, recorder, handle, counters).await;
                }
                Err(why) => refuse(&channel, &why).await,
            }
        });
        Ok(true)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _px: u32,
        _py: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
}

/// Tells the responder why the session cannot go on, on standard error, and closes.
async fn refuse(channel: &Channel<Msg>, why: &str) {
    let text = format!("bglass-proxy: {why}\r\n");
    let _ = channel.extended_data(1, text.as_bytes()).await;
    let _ = channel.exit_status(255).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

/// Relays one session channel both ways, recording every step, until either side closes or
/// the recording fails.
async fn pump(
    mut client: Channel<Msg>,
    mut upstream: Channel<russh::client::Msg>,
    recorder: Recorder,
    handle: russh::server::Handle,
    counters: Arc<Counters>,
) {
    let id = u32::from(client.id());
    let rec = |kind, data: Vec<u8>| {
        let recorder = recorder.clone();
        async move { recorder.frame(kind, id, &data).await }
    };
    let failure: Option<String> = loop {
        tokio::select! {
            why = recorder.failed() => break Some(why),
            msg = client.wait() => {
                let Some(msg) = msg else { break None };
                let step = match msg {
                    ChannelMsg::Data { data } => {
                        counters.up.fetch_add(data.len() as u64, Ordering::Relaxed);
                        match rec(FrameKind::Input, data.to_vec()).await {
                            Ok(()) => upstream.data(&data[..]).await.map_err(|e| e.to_string()),
                            Err(e) => Err(e),
                        }
                    }
                    ChannelMsg::RequestPty { term, col_width, row_height, pix_width, pix_height, terminal_modes, .. } => {
                        let text = format!("{term} {col_width} {row_height}");
                        match rec(FrameKind::Pty, text.into_bytes()).await {
                            Ok(()) => upstream
                                .request_pty(false, &term, col_width, row_height, pix_width, pix_height, &terminal_modes)
                                .await
                                .map_err(|e| e.to_string()),
                            Err(e) => Err(e),
                        }
                    }
                    ChannelMsg::RequestShell { .. } => match rec(FrameKind::Shell, Vec::new()).await {
                        Ok(()) => upstream.request_shell(false).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    },
                    ChannelMsg::Exec { command, .. } => match rec(FrameKind::Exec, command.clone()).await {
                        Ok(()) => upstream.exec(false, command).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    },
                    ChannelMsg::RequestSubsystem { name, .. } => {
                        match rec(FrameKind::Subsystem, name.clone().into_bytes()).await {
                            Ok(()) => upstream.request_subsystem(false, name).await.map_err(|e| e.to_string()),
                            Err(e) => Err(e),
                        }
                    }
                    ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                        let text = format!("{col_width} {row_height}");
                        match rec(FrameKind::Resize, text.into_bytes()).await {
                            Ok(()) => upstream
                                .window_change(col_width, row_height, pix_width, pix_height)
                                .await
                                .map_err(|e| e.to_string()),
                            Err(e) => Err(e),
                        }
                    }
                    ChannelMsg::SetEnv { variable_name, variable_value, .. } => upstream
                        .set_env(false, variable_name, variable_value)
                        .await
                        .map_err(|e| e.to_string()),
                    ChannelMsg::Signal { signal } => upstream.signal(signal).await.map_err(|e| e.to_string()),
                    ChannelMsg::Eof => upstream.eof().await.map_err(|e| e.to_string()),
                    ChannelMsg::Close => break None,
                    _ => Ok(()),
                };
                if let Err(why) = step {
                    if recorder.failure().is_some() {
                        break Some(why);
                    }
                    break None;
                }
            }
            msg = upstream.wait() => {
                let Some(msg) = msg else { break None };
                let step = match msg {
                    ChannelMsg::Data { data } => {
                        counters.down.fetch_add(data.len() as u64, Ordering::Relaxed);
                        match rec(FrameKind::Output, data.to_vec()).await {
                            Ok(()) => client.data(&data[..]).await.map_err(|e| e.to_string()),
                            Err(e) => Err(e),
                        }
                    }
                    ChannelMsg::ExtendedData { data, ext } => {
                        counters.down.fetch_add(data.len() as u64, Ordering::Relaxed);
                        match rec(FrameKind::Error, data.to_vec()).await {
                            Ok(()) => client.extended_data(ext, &data[..]).await.map_err(|e| e.to_string()),
                            Err(e) => Err(e),
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        match rec(FrameKind::ExitStatus, exit_status.to_string().into_bytes()).await {
                            Ok(()) => client.exit_status(exit_status).await.map_err(|e| e.to_string()),
                            Err(e) => Err(e),
                        }
                    }
                    ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => {
                        match rec(FrameKind::ExitSignal, format!("{signal_name:?}").into_bytes()).await {
                            Ok(()) => handle
                                .exit_signal_request(client.id(), signal_name, core_dumped, error_message, lang_tag)
                                .await
                                .map_err(|()| "the responder's side closed".to_owned()),
                            Err(e) => Err(e),
                        }
                    }
                    ChannelMsg::Eof => client.eof().await.map_err(|e| e.to_string()),
                    ChannelMsg::Close => break None,
                    _ => Ok(()),
                };
                if let Err(why) = step {
                    if recorder.failure().is_some() {
                        break Some(why);
                    }
                    break None;
                }
            }
        }
    };
    match failure {
        Some(why) => {
            refuse(
                &client,
                &format!("this session is recorded, and its recording could not be written ({why}); the session is closed"),
            )
            .await;
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    "the recording failed".to_owned(),
                    String::new(),
                )
                .await;
        }
        None => {
            let _ = rec(FrameKind::Close, Vec::new()).await;
            let _ = client.eof().await;
            let _ = client.close().await;
        }
    }
    let _ = upstream.close().await;
}

/// The proxy's client side to a recorded host: accepts only the catalog's pinned key.
#[derive(Debug)]
struct PinnedUpstream {
    pinned: String,
}

/// What the proxy's login to the host fails with.
#[derive(Debug)]
enum UpstreamError {
    HostKey(String),
    Ssh(russh::Error),
}

impl From<russh::Error> for UpstreamError {
    fn from(e: russh::Error) -> Self {
        Self::Ssh(e)
    }
}

impl russh::client::Handler for PinnedUpstream {
    type Error = UpstreamError;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKey,
    ) -> Result<bool, Self::Error> {
        let presented = server_public_key
            .to_openssh()
            .map_err(|e| UpstreamError::HostKey(format!("the host's key: {e}")))?;
        let key = |text: &str| {
            text.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        if key(&presented) != key(&self.pinned) {
            return Err(UpstreamError::HostKey(format!(
                "the host's key ({}) is not the key the catalog pins; the proxy refused to log in",
                key(&presented)
            )));
        }
        Ok(true)
    }
}
