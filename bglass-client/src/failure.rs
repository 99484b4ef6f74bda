//! Why a call to the proxies failed, as values: per proxy (unavailable, so the next proxy
//! may serve; refused, so none will; or a local problem), over every proxy tried, and why a
//! proxy is not trusted (a split view of its audit log). The CLI turns them into messages
//! and exit codes at the edge ([`CliError`]); the session decides failover on the variants.

use std::sync::atomic::{AtomicBool, Ordering};

use bglass_core::api::ApiError;
use bglass_core::audit::checkpoint::CheckpointError;
use bglass_core::id::ProxyId;

use crate::error::{CliError, ErrorKind};

/// Why a proxy is not trusted: its log or identity is not what this machine saw before.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitView {
    /// It presents another id or signing key.
    #[error(
        "it now presents itself as {id} with key {key}, but this machine knew it as {known_id} with key {known_key}"
    )]
    Identity {
        /// The id it presents.
        id: ProxyId,
        /// The key id it presents.
        key: String,
        /// The id this machine knew.
        known_id: ProxyId,
        /// The key id this machine knew.
        known_key: String,
    },
    /// Its checkpoint does not verify with its key.
    #[error("its checkpoint does not verify: {0}")]
    Checkpoint(CheckpointError),
    /// Its log is shorter than before.
    #[error("its log shrank from {known} to {size} entries")]
    Shrank {
        /// Entries this machine saw.
        known: u64,
        /// Entries it shows now.
        size: u64,
    },
    /// Its log does not extend the one seen before (no consistency proof).
    #[error(
        "its log of {size} entries does not extend the {known} entries this machine saw before"
    )]
    Forked {
        /// Entries it shows now.
        size: u64,
        /// Entries this machine saw.
        known: u64,
    },
}

/// Why one proxy could not serve a call: the next one may.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// No connection, or the request failed on the way.
    #[error("{}", transport_cause(.0))]
    Transport(reqwest::Error),
    /// Its answer could not be read or decoded.
    #[error("{}", transport_cause(.0))]
    Read(reqwest::Error),
    /// Its answer is not the JSON expected.
    #[error("bad answer: {0}")]
    BadAnswer(serde_json::Error),
    /// `/healthz` did not name the proxy.
    #[error("the proxy did not name itself")]
    Unnamed,
    /// `/healthz` did not give the proxy's signing key.
    #[error("the proxy did not give its signing key")]
    NoKey,
    /// An action cannot be addressed to a proxy whose id is not known yet.
    #[error("proxy id unknown")]
    IdUnknown,
    /// It said it cannot serve now (its audit log failed, it is saturated, or a gateway
    /// in front of it failed).
    #[error("{message}")]
    CannotServe {
        /// The HTTP status.
        status: u16,
        /// The proxy's reason code (`audit_failed`, `busy`, …).
        code: String,
        /// Its message.
        message: String,
    },
    /// Its log is not what this machine saw before.
    #[error("refused: split view ({0})")]
    SplitView(SplitView),
    /// Its log was seen before, but it does not show its current checkpoint.
    #[error(
        "refused: no audit checkpoint (asked for its signed audit checkpoint, it answered HTTP {status} ({detail}), but this machine saw {known} entries of its log before)"
    )]
    NoCheckpoint {
        /// The HTTP status of its answer.
        status: u16,
        /// What it said (shortened).
        detail: String,
        /// Entries this machine saw.
        known: u64,
    },
    /// Other `bglass` commands of this responder kept storing newer checkpoints meanwhile.
    #[error("its stored checkpoint kept changing under concurrent bglass commands")]
    CheckpointChurn,
}

impl Unavailable {
    /// The banner to print, once and loudly, when this is a refusal of trust.
    pub fn banner(&self, url: &str) -> Option<String> {
        match self {
            Self::SplitView(what) => Some(format!(
                "\n!!! SPLIT VIEW: the proxy at {url} is not showing this machine the same audit log as before: {what}.\n!!! Do not trust it. Report this to your security team with the files in state/proxies/ beside your bglass config.\n"
            )),
            Self::NoCheckpoint {
                status,
                detail,
                known,
            } => Some(format!(
                "\n!!! NO CHECKPOINT: the proxy at {url} does not show its audit checkpoint: asked for its signed audit checkpoint, it answered HTTP {status} ({detail}), but this machine saw {known} entries of its log before.\n!!! Its log may have been reset, replaced or forked: bglass does not use it now. If this lasts more than a few seconds, report it to your security team with the files in state/proxies/ beside your bglass config.\n"
            )),
            _ => None,
        }
    }
}

/// Whether messages carry the system's own error text (`bglass -v`) besides the plain
/// cause.
static RAW_ERRORS: AtomicBool = AtomicBool::new(false);

/// Shows the system's own error text in messages (`-v`), or only the plain cause.
pub fn show_raw_errors(on: bool) {
    RAW_ERRORS.store(on, Ordering::Relaxed);
}

/// Whether `-v` asked for the system's own error text.
pub fn raw_errors() -> bool {
    RAW_ERRORS.load(Ordering::Relaxed)
}

/// An error and its sources, one after another (reqwest's own message is terse).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// A transport error as a plain cause (`connection refused: is bglass-proxy running on
/// 127.0.0.1:8443?`), with the system's own text after it only with `-v`.
pub fn transport_cause(e: &reqwest::Error) -> String {
    let at = e
        .url()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| "the proxy".to_owned());
    let plain = if e.is_timeout() {
        Some(format!("no answer from {at} in time"))
    } else {
        None
    };
    cause(e, &at, plain)
}

/// Any error on the way to `at` (an address) as a plain cause, with the system's own text
/// after it only with `-v`.
pub fn plain_cause(e: &(dyn std::error::Error + 'static), at: &str) -> String {
    cause(e, at, None)
}

fn cause(e: &(dyn std::error::Error + 'static), at: &str, known: Option<String>) -> String {
    let plain = known
        .or_else(|| io_cause(e, at))
        .or_else(|| tls_cause(e, at))
        .unwrap_or_else(|| format!("the connection to {at} failed"));
    if raw_errors() {
        format!("{plain} [{}]", chain(e))
    } else {
        plain
    }
}

/// The plain cause of the first I/O error in `e`'s chain, if it has a well-known kind.
fn io_cause(e: &(dyn std::error::Error + 'static), at: &str) -> Option<String> {
    use std::io::ErrorKind as K;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(match io.kind() {
                K::ConnectionRefused => {
                    format!("connection refused: is bglass-proxy running on {at}?")
                }
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    format!("the connection to {at} was cut (is the proxy restarting?)")
                }
                K::TimedOut => format!("no answer from {at} in time"),
                K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown => {
                    format!("no route to {at}: check the network path")
                }
                K::AddrNotAvailable | K::AddrInUse => {
                    format!("this machine cannot open a connection to {at}")
                }
                _ => return None,
            });
        }
        source = s.source();
    }
    None
}

/// The first rustls error in `e`'s chain, looking also inside I/O errors (which wrap one
/// without giving it as their source).
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut stack: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(s) = stack.pop() {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            stack.push(inner);
        }
        if let Some(next) = s.source() {
            stack.push(next);
        }
    }
    None
}

/// Which side of the mutual TLS failed, for a readiness probe: `pin` when the proxy's
/// certificate is not of the pinned CA, `roster` when the proxy refused this machine's key
/// (an alert after the client's certificate), `None` for anything else.
pub fn tls_step(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    match tls_error(e)? {
        rustls::Error::InvalidCertificate(_) => Some("pin"),
        rustls::Error::General(why) if why.contains(bglass_tls::PIN_MISMATCH) => Some("pin"),
        rustls::Error::AlertReceived(_) => Some("roster"),
        _ => None,
    }
}

/// The plain cause of a TLS failure in `e`'s chain.
fn tls_cause(e: &(dyn std::error::Error + 'static), at: &str) -> Option<String> {
    Some(match tls_step(e) {
        Some("pin") => format!(
            "{at} did not present a certificate of the pinned CA: is it the proxy your config names (check the pin)?"
        ),
        Some(_) => format!(
            "{at} refused this machine's key at the TLS handshake: is your entry in its roster?"
        ),
        None => {
            tls_error(e)?;
            format!("the TLS handshake with {at} failed")
        }
    })
}

/// Why a call to one proxy failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Not reachable, busy, or refused by its own failure: try the next proxy.
    #[error(transparent)]
    Unavailable(Unavailable),
    /// The proxy answered with a refusal: do not try others.
    #[error(transparent)]
    Refused(Refusal),
    /// A local problem.
    #[error(transparent)]
    Local(CliError),
}

/// A proxy's refusal: its HTTP status and what it said.
#[derive(Debug, thiserror::Error)]
#[error("{} ({})", .error.message, .error.error)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The proxy's refusal.
    pub error: ApiError,
}

impl Refusal {
    /// Whether the proxy refused the request itself (4xx), rather than failed to serve it.
    pub fn is_denial(&self) -> bool {
        self.status < 500
    }
}

impl From<Refusal> for CliError {
    fn from(r: Refusal) -> Self {
        refusal_error(r.status, r.error)
    }
}

impl From<CliError> for CallError {
    fn from(e: CliError) -> Self {
        Self::Local(e)
    }
}

impl From<Unavailable> for CallError {
    fn from(e: Unavailable) -> Self {
        Self::Unavailable(e)
    }
}

impl From<CallError> for CliError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unavailable(why) => CliError::new(ErrorKind::Unavailable, why),
            CallError::Refused(refusal) => refusal.into(),
            CallError::Local(e) => e,
        }
    }
}

/// Why a call failed on every proxy it was allowed to try.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallFailure {
    /// No proxy answered: each proxy tried (URL) with its latest reason, in priority order.
    #[error("no proxy answered: {}", CallFailure::reasons(.0))]
    Unavailable(Vec<(String, Unavailable)>),
    /// A proxy refused.
    #[error(transparent)]
    Refused(Refusal),
    /// A local problem.
    #[error(transparent)]
    Local(CliError),
}

impl CallFailure {
    /// Each proxy tried and why it did not answer, `URL: why; …`.
    pub fn reasons(tried: &[(String, Unavailable)]) -> String {
        tried
            .iter()
            .map(|(url, why)| format!("{url}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl From<CallFailure> for CliError {
    fn from(e: CallFailure) -> Self {
        match e {
            unavailable @ CallFailure::Unavailable(_) => {
                CliError::new(ErrorKind::Unavailable, unavailable)
                    .with_hint("check the network path to the proxies; `bglass status` lists them")
            }
            CallFailure::Refused(refusal) => refusal.into(),
            CallFailure::Local(e) => e,
        }
    }
}

/// The CLI error for a proxy's refusal: denied, or unavailable for server-side failures.
pub fn refusal_error(status: u16, e: ApiError) -> CliError {
    let kind = if status >= 500 {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Denied
    };
    let err = CliError::new(kind, format!("{} ({})", e.message, e.error)).with_code(e.error);
    match e.hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}
