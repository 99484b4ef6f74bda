//! What a drill participant does, simulated or live: for one tool, ask for access (failing
//! over between proxies as `bglass access` does), wait for approvals, then prove the access
//! works with a read-only probe through the proxy that granted it — an HTTP request the
//! tool accepts only with the injected credential, a TCP tunnel answering the tool's
//! protocol, or an SSH login with the proxy's certificate. Retried a few times, as a person
//! would, and measured: time to access runs from asking to the first authorised byte.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bglass_core::api::{GRANT_HEADER, RequestView};
use bglass_core::catalog::{Service, ServiceKind, TcpProbe};
use bglass_core::drill::{Access, Failure};
use bglass_core::envelope::{AccessRequest, Action};
use bglass_core::id::{DrillId, ProxyId, ServiceName};
use bglass_core::timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tools::{POSTGRES_SSL_REQUEST, REDIS_PING};
use bglass_client::client::{Call, Session, answer};
use bglass_client::error::{CliError, ErrorKind};
use bglass_client::store::HeldGrant;
use bglass_client::tunnel::Dialer;

/// Attempts per access before giving up.
pub const ATTEMPTS: u32 = 3;
/// Longest wait for one probe's answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A tool as a participant needs to know it.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its name.
    pub name: ServiceName,
    /// How to probe it.
    pub kind: TargetKind,
    /// For HTTP, the path requested (the catalog's health path: read-only by design).
    pub path: String,
    /// Whether the catalog allows the emergency bypass for it.
    pub emergency: bool,
}

/// How a tool is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// A request through `/s/<name>/`.
    Http,
    /// A tunnel speaking the probe's protocol.
    Tcp(TcpProbe),
    /// A certificate, a tunnel and a login.
    Ssh,
}

impl TargetKind {
    /// The catalog's name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp(_) => "tcp",
            Self::Ssh => "ssh",
        }
    }
}

impl Target {
    /// The target of a catalog service (`None` for a kind this bglass cannot probe).
    pub fn of(s: &Service) -> Option<Self> {
        Some(Self {
            name: s.name.clone(),
            kind: match &s.kind {
                ServiceKind::Http { .. } => TargetKind::Http,
                ServiceKind::Tcp { probe } => TargetKind::Tcp(*probe),
                ServiceKind::Ssh { .. } => TargetKind::Ssh,
                _ => return None,
            },
            path: match &s.kind {
                ServiceKind::Http { health, .. } => health.path.clone(),
                _ => "/".to_owned(),
            },
            emergency: s.emergency.is_some(),
        })
    }
}

/// How SSH services are probed.
#[derive(Clone, Debug)]
pub enum SshProbe {
    /// Log in with the certificate (a real `sshd` checks it), as `user` (the certificate's
    /// first principal when `None`).
    Login {
        /// The login.
        user: Option<String>,
        /// The host is the simulated world's own `sshd`, which accepts only ECDH P-256 key
        /// exchange ([`crate::tools::Sshd::start`]); a live drill's real hosts get the
        /// algorithm preferences of `bglass ssh`.
        world: bool,
    },
    /// Only the host's SSH banner through the tunnel, and the certificate issued.
    Banner,
}

/// The settings of one drill's accesses.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The drill's id (in the reason and incident of every request).
    pub drill: DrillId,
    /// When the drill started (offsets and time to access are measured from here).
    pub start: Instant,
    /// No new attempt after this.
    pub deadline: Instant,
    /// Ask for the emergency bypass where the catalog allows it.
    pub emergency: bool,
    /// How SSH is probed.
    pub ssh: SshProbe,
}

/// A failed attempt.
struct Failed {
    failure: Failure,
    /// A decision (denied by policy): retrying will not help.
    permanent: bool,
    proxy: Option<ProxyId>,
}

fn failed(stage: &str, code: &str, detail: impl Into<String>) -> Failed {
    Failed {
        failure: Failure {
            stage: stage.to_owned(),
            code: code.to_owned(),
            detail: detail.into(),
            ..Failure::default()
        },
        permanent: false,
        proxy: None,
    }
}

fn from_cli(stage: &str, e: &CliError) -> Failed {
    let code = e.code().map(str::to_owned).unwrap_or_else(|| {
        match e.kind() {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Denied => "denied",
            _ => "error",
        }
        .to_owned()
    });
    let mut f = failed(stage, &code, e.to_string());
    // Unavailability and upstream failures may pass; a policy refusal will not.
    f.permanent =
        e.kind() == ErrorKind::Denied && !code.starts_with("upstream_") && code != "audit_failed";
    f
}

/// One access: asks, waits, probes; retried up to [`ATTEMPTS`] times. `first` is the id of
/// the participant's first proxy (an access served by another counts as a failover).
pub async fn access(
    session: &mut Session,
    who: &str,
    first: Option<&ProxyId>,
    service: &Target,
    plan: &Plan,
) -> Access {
    let begun = Instant::now();
    let mut access = Access {
        participant: who.to_owned(),
        service: service.name.to_string(),
        kind: service.kind.name().to_owned(),
        start_ms: crate::ms_between(plan.start, begun),
        ..Access::default()
    };
    for attempt in 1..=ATTEMPTS {
        access.attempts = attempt;
        match attempt_once(session, service, plan, &mut access).await {
            Ok(proxy) => {
                access.ok = true;
                access.tta_ms = Some(crate::ms_since(begun));
                access.failover = first.is_some_and(|f| *f != proxy);
                access.proxy = Some(proxy.to_string());
                access.failure = None;
                return access;
            }
            Err(f) => {
                if let Some(proxy) = f.proxy {
                    access.proxy = Some(proxy.to_string());
                }
                access.failure = Some(f.failure);
                if f.permanent || attempt == ATTEMPTS || Instant::now() >= plan.deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    if Instant::now() >= plan.deadline
        && let Some(f) = &mut access.failure
        && f.code == "unavailable"
    {
        f.detail = format!("{} (the drill's time ran out)", f.detail);
    }
    access
}

/// One attempt; returns the id of the proxy that served it.
/// The grant `grant` (with its `token`) as held from proxy `index`, once contacted.
fn held(
    session: &Session,
    index: usize,
    grant: &bglass_core::api::GrantView,
    token: String,
) -> Result<HeldGrant, Box<Failed>> {
    let conn = &session.conns[index];
    Ok(HeldGrant {
        id: grant.id.clone(),
        service: grant.service.clone(),
        proxy_url: conn.entry.url.clone(),
        proxy: conn
            .record
            .as_ref()
            .map(|r| r.id.clone())
            .ok_or_else(|| Box::new(failed("request", "internal", "proxy not contacted")))?,
        token,
        exp: grant.exp,
        emergency: grant.emergency,
        received_ms: timestamp::now_ms(),
    })
}

/// A canary's probe of `service` through proxy `index` (`bglass canary`, canary role): a
/// canary grant (no approvals; usable only for this probe), then the probe — the health
/// path with the injected credential, a TCP connection the proxy makes and reports, or an
/// SSH login as `ssh_user` (the certificate's first principal when `None`) with a
/// certificate forced to run `true`. The failure's stage and code say where it broke.
pub async fn canary_probe(
    session: &mut Session,
    index: usize,
    service: &Target,
    ssh_user: Option<&str>,
) -> Result<(), Failure> {
    let action = Action::Access(AccessRequest {
        service: service.name.clone(),
        ttl: None,
        reason: "readiness probe".to_owned(),
        incident: "canary".to_owned(),
        emergency: false,
        drill: None,
        canary: true,
    });
    let (value, _) = session
        .call_with(&Call::post("/v1/access", action), Some(index))
        .await
        .map_err(|e| from_cli("request", &e).failure)?;
    let view: RequestView = serde_json::from_value(value)
        .map_err(|e| failed("request", "bad_answer", e.to_string()).failure)?;
    let (Some(grant), "granted") = (view.grant.as_ref(), view.status.as_str()) else {
        return Err(failed(
            "request",
            "not_granted",
            format!("the canary request is {}", view.status),
        )
        .failure);
    };
    let token = grant
        .token
        .clone()
        .ok_or_else(|| failed("request", "bad_answer", "no token").failure)?;
    let held = held(session, index, grant, token).map_err(|f| f.failure.clone())?;
    let probe = async {
        match service.kind {
            TargetKind::Http => probe_http(session, index, service, &held).await,
            TargetKind::Tcp(_) => Dialer::for_grant(session, &session.conns[index], held.clone())
                .map_err(|e| from_cli("tunnel", &e))?
                .probe()
                .await
                .map_err(|e| from_cli("tunnel", &e)),
            TargetKind::Ssh => {
                let how = SshProbe::Login {
                    user: ssh_user.map(str::to_owned),
                    world: false,
                };
                probe_ssh(session, index, service, &held, &how).await
            }
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(f)) => Err(f.failure),
        Err(_) => Err(failed(
            "tool",
            "timeout",
            format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        )
        .failure),
    }
}

async fn attempt_once(
    session: &mut Session,
    service: &Target,
    plan: &Plan,
    access: &mut Access,
) -> Result<ProxyId, Failed> {
    let action = Action::Access(AccessRequest {
        service: service.name.clone(),
        ttl: None,
        reason: format!("drill {}", plan.drill),
        incident: format!("drill-{}", plan.drill),
        emergency: plan.emergency && service.emergency,
        drill: Some(plan.drill.to_string()),
        canary: false,
    });
    let (value, index) = session
        .call(&Call::post("/v1/access", action))
        .await
        .map_err(|e| from_cli("request", &e))?;
    let proxy = session.conns[index].record.as_ref().map(|r| r.id.clone());
    let with_proxy = |mut f: Failed| {
        f.proxy = proxy.clone();
        f
    };
    let mut view: RequestView = serde_json::from_value(value)
        .map_err(|e| with_proxy(failed("request", "bad_answer", e.to_string())))?;
    if view.status == "pending" {
        let asked = Instant::now();
        while view.status == "pending" {
            if Instant::now() >= plan.deadline {
                return Err(with_proxy(failed(
                    "approval",
                    "drill_ended",
                    format!(
                        "{} still pending ({} of {} approvals) when the drill ended",
                        view.id,
                        view.approved_by.len(),
                        view.approvals_needed
                    ),
                )));
            }
            let (value, _) = session
                .call_with(
                    &Call::get(format!("/v1/requests/{}?wait=5", view.id)),
                    Some(index),
                )
                .await
                .map_err(|e| with_proxy(from_cli("approval", &e)))?;
            view = serde_json::from_value(value)
                .map_err(|e| with_proxy(failed("approval", "bad_answer", e.to_string())))?;
        }
        access.approval_ms = Some(crate::ms_since(asked));
    }
    if view.status != "granted" {
        let mut f = failed(
            "approval",
            "denied",
            view.denied.clone().unwrap_or_else(|| view.status.clone()),
        );
        f.permanent = true;
        return Err(with_proxy(f));
    }
    let grant = view
        .grant
        .as_ref()
        .ok_or_else(|| with_proxy(failed("request", "bad_answer", "granted without a grant")))?;
    let token = grant.token.clone().ok_or_else(|| {
        with_proxy(failed(
            "request",
            "bad_answer",
            "the proxy did not return the token",
        ))
    })?;
    access.grant = Some(grant.id.to_string());
    let held = held(session, index, grant, token).map_err(|f| with_proxy(*f))?;
    let probe = async {
        match service.kind {
            TargetKind::Http => probe_http(session, index, service, &held).await,
            TargetKind::Tcp(probe) => probe_tcp(session, index, &held, probe).await,
            TargetKind::Ssh => probe_ssh(session, index, service, &held, &plan.ssh).await,
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(held.proxy.clone()),
        Ok(Err(f)) => Err(with_proxy(f)),
        Err(_) => Err(with_proxy(failed(
            "tool",
            "timeout",
            format!(
                "no answer through the proxy within {} s",
                PROBE_TIMEOUT.as_secs()
            ),
        ))),
    }
}

async fn probe_http(
    session: &Session,
    index: usize,
    service: &Target,
    grant: &HeldGrant,
) -> Result<(), Failed> {
    let conn = &session.conns[index];
    let url = format!(
        "{}/s/{}{}",
        conn.entry.url.trim_end_matches('/'),
        service.name,
        service.path
    );
    let response = conn
        .http
        .get(&url)
        .header(GRANT_HEADER, &grant.token)
        .send()
        .await
        .map_err(|e| failed("tool", "unavailable", format!("{url}: {e}")))?;
    let status = response.status().as_u16();
    if let Some(code) = response
        .headers()
        .get("bglass-refusal")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    {
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        let mut f = failed("tool", &code, format!("{message} ({code})"));
        f.permanent = !code.starts_with("upstream_") && status < 500;
        return Err(f);
    }
    let body = response
        .text()
        .await
        .map_err(|e| failed("tool", "unavailable", format!("reading the answer: {e}")))?;
    // The simulator's tools answer `ok <name>` only to the injected credential; a real
    // tool in a live drill answers whatever it answers, and a 2xx or 3xx is access.
    if (200..400).contains(&status) {
        Ok(())
    } else if status == 401 || status == 403 {
        Err(failed(
            "tool",
            "credential_rejected",
            format!(
                "{} answered {status}: the proxy did not inject a credential it accepts",
                service.name
            ),
        ))
    } else {
        Err(failed(
            "tool",
            &format!("http_{status}"),
            format!(
                "{} answered {status}: {}",
                service.name,
                body.chars().take(120).collect::<String>()
            ),
        ))
    }
}

async fn probe_tcp(
    session: &Session,
    index: usize,
    grant: &HeldGrant,
    probe: TcpProbe,
) -> Result<(), Failed> {
    let dialer = Dialer::for_grant(session, &session.conns[index], grant.clone())
        .map_err(|e| from_cli("tunnel", &e))?;
    let mut tunnel = dialer.dial().await.map_err(|e| from_cli("tunnel", &e))?;
    let (send, expect): (&[u8], &[u8]) = match probe {
        TcpProbe::Postgres => (&POSTGRES_SSL_REQUEST, b"N"),
        TcpProbe::Redis => (REDIS_PING, b"+PONG\r\n"),
        TcpProbe::Banner => (b"", b""),
        _ => (b"GET /health HTTP/1.0\r\n\r\n", b"HTTP/1.0 200"),
    };
    let io = |e: std::io::Error| failed("tool", "unavailable", format!("through the tunnel: {e}"));
    tunnel.write_all(send).await.map_err(io)?;
    tunnel.flush().await.map_err(io)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    // A banner is any first bytes; otherwise the expected answer.
    while got.is_empty() || got.len() < expect.len() {
        let n = tunnel.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err(failed(
                "tool",
                "closed",
                "the tool closed the tunnel without answering",
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    let _ = tunnel.shutdown().await;
    if got.starts_with(expect) {
        Ok(())
    } else {
        Err(failed(
            "tool",
            "bad_answer",
            format!(
                "the tool answered {:?}",
                String::from_utf8_lossy(&got[..got.len().min(40)])
            ),
        ))
    }
}

async fn probe_ssh(
    session: &Session,
    index: usize,
    service: &Target,
    grant: &HeldGrant,
    how: &SshProbe,
) -> Result<(), Failed> {
    let key =
        russh::keys::PrivateKey::random(&mut rand_core::OsRng, russh::keys::Algorithm::Ed25519)
            .map_err(|e| failed("certificate", "internal", e.to_string()))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| failed("certificate", "internal", e.to_string()))?;
    let conn = &session.conns[index];
    let url = format!(
        "{}/v1/ssh/{}/certificate",
        conn.entry.url.trim_end_matches('/'),
        service.name
    );
    let response = conn
        .http
        .post(&url)
        .header(GRANT_HEADER, &grant.token)
        .json(&serde_json::json!({ "public_key": public }))
        .send()
        .await
        .map_err(|e| failed("certificate", "unavailable", format!("{url}: {e}")))?;
    let value = answer(response)
        .await
        .map_err(|e| from_cli("certificate", &e.into()))?;
    let issued: bglass_client::ssh::Issued = serde_json::from_value(value)
        .map_err(|e| failed("certificate", "bad_answer", e.to_string()))?;
    let dialer =
        Dialer::for_grant(session, conn, grant.clone()).map_err(|e| from_cli("tunnel", &e))?;
    let mut tunnel = dialer.dial().await.map_err(|e| from_cli("tunnel", &e))?;
    match how {
        SshProbe::Banner => {
            let mut banner = Vec::new();
            let mut buf = [0u8; 256];
            while !banner.contains(&b'\n') && banner.len() < 255 {
                let n = tunnel.read(&mut buf).await.map_err(|e| {
                    failed("tool", "unavailable", format!("through the tunnel: {e}"))
                })?;
                if n == 0 {
                    break;
                }
                banner.extend_from_slice(&buf[..n]);
            }
            if !banner.starts_with(b"SSH-2.0-") {
                return Err(failed("tool", "bad_answer", "no SSH banner"));
            }
            // A recorded service answers with the proxy's own SSH endpoint, and no
            // certificate is issued for it.
            if issued.recorded {
                return Ok(());
            }
            let certificate = ssh_key::Certificate::from_openssh(&issued.certificate)
                .map_err(|e| failed("certificate", "bad_certificate", e.to_string()))?;
            if certificate.valid_principals().is_empty() {
                return Err(failed(
                    "certificate",
                    "bad_certificate",
                    "no principals in the certificate",
                ));
            }
            Ok(())
        }
        SshProbe::Login { user, world } => {
            let user = user
                .clone()
                .or_else(|| issued.principals.first().cloned())
                .ok_or_else(|| failed("certificate", "bad_certificate", "no principal"))?;
            let config = if *world {
                world_ssh_config()
            } else {
                Arc::new(russh::client::Config::default())
            };
            login(config, tunnel, &service.name, &user, key, &issued).await
        }
    }
}

/// The SSH client configuration of a simulated drill's logins, shared by all of them: ECDH
/// on P-256 offered first. The world's `sshd` accepts only that key exchange (see
/// [`crate::tools::Sshd`]): OpenSSH computes it with OpenSSL, where its own portable
/// Curve25519 code cost each login about 2.7 ms of `sshd` CPU (a profile of a
/// 200-participant drill, 600 logins).
fn world_ssh_config() -> Arc<russh::client::Config> {
    static CONFIG: OnceLock<Arc<russh::client::Config>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let defaults = russh::Preferred::default();
        let kex: Vec<russh::kex::Name> = std::iter::once(russh::kex::ECDH_SHA2_NISTP256)
            .chain(defaults.kex.iter().copied())
            .collect();
        Arc::new(russh::client::Config {
            preferred: russh::Preferred {
                kex: kex.into(),
                ..defaults
            },
            ..russh::client::Config::default()
        })
    }))
}

/// One SSH login through `tunnel` with the session key and its certificate, the host's
/// key checked against the catalog's pin; the session ends as soon as the host accepted the
/// certificate. Logins run concurrently in this process (russh keeps no global state).
async fn login<S>(
    config: Arc<russh::client::Config>,
    tunnel: S,
    name: &ServiceName,
    user: &str,
    key: russh::keys::PrivateKey,
    issued: &bglass_client::ssh::Issued,
) -> Result<(), Failed>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use bglass_client::ssh::LoginError;
    let logged_in = if issued.recorded {
        bglass_client::ssh::login_recorded(
            tunnel,
            name,
            &issued.host_key,
            user,
            Duration::from_secs(10),
        )
        .await
    } else {
        bglass_client::ssh::login_with(
            config,
            tunnel,
            name,
            &issued.host_key,
            user,
            key,
            &issued.certificate,
            Duration::from_secs(10),
        )
        .await
    };
    let ssh = logged_in.map_err(|e| match e {
        LoginError::Key(why) => failed("tool", "internal", why),
        LoginError::Handshake(why) => failed("tool", "ssh_handshake", why),
        LoginError::HostKey(e) => {
            let mut f = failed("tool", "host_key_mismatch", e.to_string());
            f.permanent = true;
            f
        }
        LoginError::Refused(Some(why)) => failed(
            "tool",
            "ssh_auth",
            format!("{name} refused the certificate for {user}: {why}"),
        ),
        LoginError::Refused(None) => failed(
            "tool",
            "ssh_auth",
            format!("{name} did not accept the certificate for {user}"),
        ),
    })?;
    // Through a recorded service the proxy logs in to the host itself: only a command run
    // there shows that it got in.
    if issued.recorded {
        recorded_run(&ssh, name, user).await?;
    }
    let _ = ssh
        .disconnect(russh::Disconnect::ByApplication, "drill probe done", "")
        .await;
    Ok(())
}

/// Runs `true` on a recorded host through the proxy's session; fails with what the proxy
/// said when its own login (or the recording) failed.
async fn recorded_run(
    ssh: &bglass_client::ssh::SshHandle,
    name: &ServiceName,
    user: &str,
) -> Result<(), Failed> {
    let refused = |why: String| failed("tool", "ssh_auth", why);
    let mut channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| refused(format!("{name}: opening a session: {e}")))?;
    channel
        .exec(true, "true")
        .await
        .map_err(|e| refused(format!("{name}: running a command: {e}")))?;
    let (mut status, mut said) = (None, Vec::new());
    let wait = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                russh::ChannelMsg::ExtendedData { data, .. } => said.extend_from_slice(&data),
                russh::ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .map_err(|_| refused(format!("{name}: the command did not finish within 10s")))?;
    match status {
        Some(0) => Ok(()),
        _ => Err(refused(format!(
            "{name} as {user} through the proxy: {}",
            String::from_utf8_lossy(&said).trim()
        ))),
    }
}
