//! The catalog of critical tools (`services.toml`): schema, strict parsing,
//! validation and limits.
//!
//! Parsing happens in three steps, each of which can only narrow what is accepted: the
//! file's size, encoding, line lengths and number of `[[service]]` tables are checked
//! before any parsing; the TOML is parsed into raw structures that reject unknown fields;
//! then every value is validated and turned into the typed [`Catalog`]. Every error names
//! the file, the line and column, and the rule that was broken.

mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use crate::duration::{DurationError, HumanDuration};
use crate::id::{NameError, SecretName, ServiceName};
use crate::source::{Located, Source, SourceLimits, SourceProblem};

pub use validate::parse_catalog;

/// The catalog schema version this code reads.
pub const CATALOG_VERSION: u32 = 1;
/// Size and line limits checked before parsing.
pub const CATALOG_LIMITS: SourceLimits = SourceLimits {
    max_bytes: 256 * 1024,
    max_line_bytes: 4096,
};
/// Most services a catalog may hold.
pub const MAX_SERVICES: usize = 256;
/// Most approvals a service may require.
pub const MAX_APPROVALS: u8 = 5;
/// Longest `max_ttl`: a grant never outlives one day.
pub const MAX_TTL_SECS: u64 = crate::grant::MAX_GRANT_SECS;
/// Emergency-bypass TTL when the catalog does not set one (capped by `max_ttl`).
pub const DEFAULT_EMERGENCY_TTL_SECS: u64 = 15 * 60;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// A validated catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    services: Vec<Service>,
    digest: String,
}

impl Catalog {
    /// Reads and validates a catalog file.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let source =
            Source::read(path, CATALOG_LIMITS).map_err(|e| e.map(CatalogProblem::Source))?;
        parse_catalog(&source)
    }

    /// Reads and validates a catalog file, and returns the exact bytes validated (kept
    /// beside the audit log, whose entries name them by [`Self::digest`]).
    pub fn load_with_bytes(path: &Path) -> Result<(Self, Vec<u8>), CatalogError> {
        let source =
            Source::read(path, CATALOG_LIMITS).map_err(|e| e.map(CatalogProblem::Source))?;
        let catalog = parse_catalog(&source)?;
        Ok((catalog, source.text().as_bytes().to_vec()))
    }

    /// Validates catalog bytes already in memory; `path` names them in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, CatalogError> {
        let source = Source::from_bytes(path, bytes, CATALOG_LIMITS)
            .map_err(|e| e.map(CatalogProblem::Source))?;
        parse_catalog(&source)
    }

    pub(crate) fn new(services: Vec<Service>, digest: String) -> Self {
        Self { services, digest }
    }

    /// The services in file order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service with this name.
    pub fn get(&self, name: &ServiceName) -> Option<&Service> {
        self.services.iter().find(|s| &s.name == name)
    }

    /// SHA-256 of the file's bytes in hex: the catalog version shown in status and logs.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// One critical tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Unique name; the path segment in `/s/<name>/`.
    pub name: ServiceName,
    /// What the tool is, for humans.
    pub description: String,
    /// Where the proxy reaches it.
    pub upstream: Upstream,
    /// Longest grant that may be asked for.
    pub max_ttl: HumanDuration,
    /// Grant length when the request names none.
    pub default_ttl: HumanDuration,
    /// Approvals needed besides the requester (two-person rule when ≥ 1).
    pub approvals: u8,
    /// Whether and how approvals may be skipped with `--emergency`.
    pub emergency: Option<EmergencyBypass>,
    /// Kind-specific settings.
    pub kind: ServiceKind,
}

impl Service {
    /// The kind's name as written in the catalog.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// Whether the proxy records this service's sessions (an SSH service with
    /// `record = true`).
    pub fn recorded(&self) -> bool {
        matches!(self.kind, ServiceKind::Ssh { record: true, .. })
    }
}

/// The emergency bypass of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmergencyBypass {
    /// The (short) TTL of a bypass grant.
    pub ttl: HumanDuration,
}

/// How the proxy reaches a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// IP literal and port; never a host name: break glass must work while DNS is down, and
    /// a name would let whoever controls DNS choose where credentials go.
    pub addr: SocketAddr,
    /// For HTTP services over TLS (`https://`): what the server must prove.
    pub tls: Option<UpstreamTls>,
}

/// How an `https://` upstream is trusted: a pin and a name, never a system trust store or
/// DNS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// `upstream_pin`: the SHA-256 of the server's own certificate, or of a CA certificate
    /// it sends in its chain (which must then validate its certificate for the name).
    pub pin: CertPin,
    /// `upstream_server_name`: a DNS name or IP literal, sent as SNI and Host.
    pub server_name: String,
}

impl Upstream {
    /// How a credential binding names this upstream: scheme and address, and for TLS the
    /// pin and server name, so that neither a new address nor a new certificate (or name
    /// under a pinned CA) inherits a credential.
    pub fn binding(&self) -> String {
        match &self.tls {
            Some(tls) => format!("https://{} {} {}", self.addr, tls.pin, tls.server_name),
            None => format!("http://{}", self.addr),
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tls {
            Some(_) => write!(f, "https://{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// A SHA-256 certificate pin, written `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertPin(pub [u8; 32]);

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", crate::keys::hex_lower(&self.0))
    }
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertPin({self})")
    }
}

impl std::str::FromStr for CertPin {
    type Err = PinError;
    fn from_str(s: &str) -> Result<Self, PinError> {
        let hex = s.strip_prefix("sha256:").ok_or(PinError)?;
        if hex.len() != 64 {
            return Err(PinError);
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let digit = |b: u8| match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                _ => None,
            };
            match (digit(chunk[0]), digit(chunk[1])) {
                (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
                _ => return Err(PinError),
            }
        }
        Ok(Self(out))
    }
}

/// A pin is not `sha256:` followed by 64 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pin must be \"sha256:\" followed by 64 lowercase hex digits")]
pub struct PinError;

/// Kind-specific settings of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceKind {
    /// A web tool or API reached through `/s/<name>/`.
    Http {
        /// How the prober checks it.
        health: HttpHealth,
        /// The credential the proxy adds to every upstream request.
        inject: Option<Injection>,
    },
    /// An SSH host reached with a short-lived certificate.
    Ssh {
        /// Principals written into certificates.
        principals: Vec<String>,
        /// The host's public key in OpenSSH format; never trusted on first use.
        host_key: String,
        /// Allow port forwarding in certificates.
        permit_port_forwarding: bool,
        /// Allow agent forwarding in certificates.
        permit_agent_forwarding: bool,
        /// Another SSH service may list the same principals (when it says so too).
        share_principals: bool,
        /// The proxy terminates SSH itself and records the session (`record = true`): the
        /// responder gets no certificate for the host; the proxy logs in with one from its
        /// session CA, which the host trusts instead of the responders' CA.
        record: bool,
    },
    /// A TCP service (database, etcd) reached through a tunnel.
    Tcp {
        /// How the prober checks it.
        probe: TcpProbe,
    },
}

impl ServiceKind {
    /// The kind's name as written in the catalog.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Ssh { .. } => "ssh",
            Self::Tcp { .. } => "tcp",
        }
    }
}

/// The HTTP health check of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpHealth {
    /// Path requested (starts with `/`).
    pub path: String,
    /// The status that means healthy.
    pub expect_status: u16,
    /// Whether the probe carries the injected credential (`health.auth = true`); without
    /// it, probes never carry a credential.
    pub auth: bool,
}

/// A credential injected into upstream requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    /// The header set (any value from the client is removed first).
    pub header: String,
    /// The vault secret whose value fills the format.
    pub secret: SecretName,
    /// The header value, with `{}` standing for the secret.
    pub format: String,
}

impl Injection {
    /// The header value for a secret.
    pub fn render(&self, secret: &str) -> String {
        self.format.replacen("{}", secret, 1)
    }
}

/// How the prober checks a TCP service (named on the wire as in the catalog).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TcpProbe {
    /// A TCP connection succeeds.
    Connect,
    /// The server sends something first.
    Banner,
    /// A PostgreSQL SSLRequest is answered.
    Postgres,
    /// A Redis PING is answered with PONG.
    Redis,
}

impl TcpProbe {
    /// The names accepted in the catalog.
    pub const NAMES: [&'static str; 4] = ["connect", "banner", "postgres", "redis"];

    /// The name as written in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Banner => "banner",
            Self::Postgres => "postgres",
            Self::Redis => "redis",
        }
    }
}

/// A catalog error: file, line, column and the rule broken.
pub type CatalogError = Located<CatalogProblem>;

/// The rule a catalog broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogProblem {
    /// The file could not be read, is too large, is not UTF-8, has an overlong line, or
    /// is not valid TOML for the schema (syntax, unknown field, wrong type).
    #[error(transparent)]
    Source(SourceProblem),
    /// More `[[service]]` tables than [`MAX_SERVICES`] (counted before parsing).
    #[error("too many services: {count}, limit {limit}")]
    TooManyServices {
        /// How many were found.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The catalog has no services.
    #[error("the catalog defines no [[service]]")]
    NoServices,
    /// `version` is not [`CATALOG_VERSION`].
    #[error("unsupported catalog version {found} (this bglass reads version {CATALOG_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: i64,
    },
    /// The service name is invalid.
    #[error("invalid service name: {0}")]
    Name(NameError),
    /// Two services share a name.
    #[error("duplicate service name {name:?} (first defined on line {first_line})")]
    DuplicateName {
        /// The name.
        name: String,
        /// Where it was first defined.
        first_line: usize,
    },
    /// `kind` is not one of http, ssh, tcp.
    #[error("unknown kind {found:?}: expected \"http\", \"ssh\" or \"tcp\"")]
    UnknownKind {
        /// The kind found.
        found: String,
    },
    /// A duration does not parse.
    #[error("{field}: {error}")]
    Duration {
        /// The field.
        field: &'static str,
        /// Why.
        error: DurationError,
    },
    /// A TTL is longer than the service's `max_ttl`.
    #[error("{field} {ttl} is above max_ttl {max}")]
    TtlAboveMax {
        /// The field (`default_ttl` or `emergency_ttl`).
        field: &'static str,
        /// Its value.
        ttl: HumanDuration,
        /// The service's `max_ttl`.
        max: HumanDuration,
    },
    /// `max_ttl` is above the global bound.
    #[error("max_ttl {found} is above the limit of 24h")]
    MaxTtlTooLong {
        /// The value.
        found: HumanDuration,
    },
    /// A field this kind requires is missing.
    #[error("{kind} services need the field {field:?}")]
    MissingField {
        /// The field.
        field: &'static str,
        /// The service's kind.
        kind: &'static str,
    },
    /// A field that does not apply to this kind is present.
    #[error("field {field:?} does not apply to {kind} services")]
    FieldNotForKind {
        /// The field.
        field: &'static str,
        /// The service's kind.
        kind: &'static str,
    },
    /// An address is not an IP literal with a port.
    #[error("{field} {value:?} is not a valid address: {reason}")]
    BadAddress {
        /// The field.
        field: &'static str,
        /// The value (truncated).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// `upstream_server_name` is not a DNS name or IP literal.
    #[error("upstream_server_name {value:?} is invalid: {reason}")]
    ServerName {
        /// The value (truncated).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A certificate pin is malformed.
    #[error("{field}: {error}")]
    BadPin {
        /// The field.
        field: &'static str,
        /// Why.
        error: PinError,
    },
    /// `approvals` is out of range.
    #[error("approvals {found} is out of range 0..={MAX_APPROVALS}")]
    Approvals {
        /// The value.
        found: i64,
    },
    /// `emergency_bypass` on a service that needs no approvals has nothing to bypass.
    #[error("emergency_bypass only applies to services with approvals > 0")]
    BypassWithoutApprovals,
    /// `emergency_ttl` without `emergency_bypass = true`.
    #[error("emergency_ttl is set but emergency_bypass is not true")]
    EmergencyTtlWithoutBypass,
    /// The injection header is not a header name that may be injected.
    #[error("inject.header {header:?} is invalid: {reason}")]
    InjectHeader {
        /// The header (truncated).
        header: String,
        /// Why.
        reason: &'static str,
    },
    /// The injection names no valid vault secret.
    #[error("inject.secret must name a vault secret: {0}")]
    InjectSecret(NameError),
    /// The injection names one of the proxy's own keys.
    #[error(
        "inject.secret {0:?} names one of the proxy's own keys (\"bglass.…\"), which are never sent upstream"
    )]
    ReservedSecret(String),
    /// The injection format does not hold exactly one `{}` or has forbidden characters.
    #[error(
        "inject.format must contain \"{{}}\" exactly once, with no control characters (max 256)"
    )]
    InjectFormat,
    /// The health check is invalid.
    #[error("health.{field} is invalid: {reason}")]
    Health {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// `probe` names no known probe.
    #[error("unknown probe {found:?}: expected one of connect, banner, postgres, redis")]
    UnknownProbe {
        /// The value.
        found: String,
    },
    /// `host_key` is not an OpenSSH public key.
    #[error("host_key is not an OpenSSH public key: {reason}")]
    HostKey {
        /// Why.
        reason: String,
    },
    /// A principal is empty, too long or has forbidden characters.
    #[error("principal {value:?} is invalid: use 1-32 of a-z, 0-9, '_' and '-'")]
    Principal {
        /// The value (truncated).
        value: String,
    },
    /// `principals` is empty or too long.
    #[error("principals must list 1-16 names")]
    PrincipalCount,
    /// Two SSH services list the same principal without both opting in.
    #[error(
        "principal {principal:?} is also listed by SSH service {other:?} (line {other_line}): a certificate for either would log in to the other's hosts; give each SSH service its own principals, or set share_principals = true on both"
    )]
    SharedPrincipal {
        /// The principal.
        principal: String,
        /// The service that listed it first.
        other: String,
        /// Where that service is defined.
        other_line: usize,
    },
    /// A text field is too long or holds control characters.
    #[error("{field} must be 1-{limit} characters without control characters")]
    Text {
        /// The field.
        field: &'static str,
        /// The limit.
        limit: usize,
    },
}

#[cfg(test)]
mod tests;
