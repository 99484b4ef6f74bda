//! `proxy.toml`: where the proxy listens, where its files are, its limits and its
//! notification targets. Parsed as strictly as the catalog, errors located.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bglass_core::duration::HumanDuration;
use bglass_core::id::ProxyId;
use bglass_core::size::{ByteSize, SizeError};
use bglass_core::source::{Located, Source, SourceLimits, SourceProblem};
use toml::Spanned;

use crate::ssh_settings::{RawSsh, SshSettings, SshSettingsProblem};

/// Size and line limits checked before parsing.
pub const PROXY_CONFIG_LIMITS: SourceLimits = SourceLimits {
    max_bytes: 64 * 1024,
    max_line_bytes: 1024,
};

/// Default cap on open connections: a tunnel holds two descriptors, so this fits the
/// documented `LimitNOFILE=65536` with room for files and upstreams.
pub const DEFAULT_MAX_CONNECTIONS: i64 = 16_384;
/// Default cap on open connections from one source address.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: i64 = 256;

/// A notification target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyTarget {
    /// Where to POST: `http://IP:PORT/path` (loopback relays or internal receivers).
    pub url: String,
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The request path.
    pub path: String,
    /// `json` (generic) or `slack` (Slack-compatible `{"text": …}`).
    pub format: NotifyFormat,
}

/// Body format of a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyFormat {
    /// The event as JSON with a summary line.
    Json,
    /// `{"text": "…"}`, accepted by Slack-compatible webhooks.
    Slack,
}

/// Free-space warning threshold when `proxy.toml` sets none.
pub const DEFAULT_FREE_SPACE_WARNING: ByteSize = ByteSize::from_bytes(512 << 20);
/// Size of the audit log's reserve file when `proxy.toml` sets none.
pub const DEFAULT_RESERVE: ByteSize = ByteSize::from_bytes(8 << 20);
/// Smallest reserve accepted: room for a failure record, a recovery record and a
/// checkpoint, with margin.
pub const MIN_RESERVE: ByteSize = ByteSize::from_bytes(64 << 10);
/// Largest reserve accepted.
pub const MAX_RESERVE: ByteSize = ByteSize::from_bytes(1 << 30);

/// The `[storage]` section: watching the space left under the data directory, and what the
/// audit log keeps in reserve for when it runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageSettings {
    /// Below this many free bytes under the data directory the proxy warns (stderr, a
    /// `storage_low` audit event, `bglass status`, a notification). 0: never.
    pub free_space_warning_bytes: u64,
    /// The size of the audit log's reserve file, released when the disk is full so that
    /// the log can still record its failure and a final checkpoint.
    pub reserve_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            free_space_warning_bytes: DEFAULT_FREE_SPACE_WARNING.bytes(),
            reserve_bytes: DEFAULT_RESERVE.bytes(),
        }
    }
}

/// Limits of the HTTP listener and the data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers).
    pub max_header_bytes: usize,
    /// Largest request body on the control API.
    pub max_api_body_bytes: usize,
    /// Largest request body forwarded on the data plane.
    pub max_body_bytes: u64,
    /// Time allowed for an upstream to answer (headers).
    pub upstream_timeout: HumanDuration,
    /// Time a client may take to send a request head.
    pub header_timeout: HumanDuration,
    /// How long a request may wait for approvals before it expires.
    pub request_ttl: HumanDuration,
    /// Most connections open at once (new ones beyond are closed at accept).
    pub max_connections: usize,
    /// Most connections open at once from one source address (an IPv6 /64 counts as one).
    pub max_connections_per_source: usize,
}

/// A validated `proxy.toml`.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The file itself.
    pub path: PathBuf,
    /// Proxy id (names grants and the log).
    pub id: ProxyId,
    /// TLS listener.
    pub listen: SocketAddr,
    /// Prometheus metrics listener (plain HTTP; loopback).
    pub metrics_listen: Option<SocketAddr>,
    /// The catalog.
    pub services: PathBuf,
    /// The roster.
    pub roster: PathBuf,
    /// State: the audit log and the notifier's cursor.
    pub data_dir: PathBuf,
    /// The vault.
    pub vault: PathBuf,
    /// The vault identity.
    pub vault_identity: PathBuf,
    /// Server certificate chain (server, then CA), PEM.
    pub tls_chain: PathBuf,
    /// Limits.
    pub limits: Limits,
    /// Notification targets.
    pub notify: Vec<NotifyTarget>,
    /// What binds SSH certificates to the access path (`[ssh]`).
    pub ssh: SshSettings,
    /// Free-space warning and the audit log's reserve (`[storage]`).
    pub storage: StorageSettings,
    /// The other proxies' logs this proxy witnesses (`[[witness_of]]`): origin and key.
    pub witness_of: Vec<(String, bglass_core::keys::PublicKey)>,
    /// The witnesses of this proxy's log (`[[witnesses]]`).
    pub witnesses: Vec<WitnessTarget>,
    /// Who must sign catalog and roster changes (`[admins]`).
    pub admins: AdminPolicy,
}

/// `[admins]`: the admins' keys, and how many of them must sign a new catalog or roster
/// before it is put in force (0: no signatures required).
#[derive(Clone, Debug, Default)]
pub struct AdminPolicy {
    /// The admins.
    pub keys: Vec<bglass_core::admin::AdminKey>,
    /// Signatures required on a new catalog.
    pub catalog: usize,
    /// Signatures required on a new roster.
    pub roster: usize,
}

impl AdminPolicy {
    /// Signatures required on a new version of `kind`.
    pub fn threshold(&self, kind: bglass_core::audit::policy_files::PolicyKind) -> usize {
        match kind {
            bglass_core::audit::policy_files::PolicyKind::Catalog => self.catalog,
            bglass_core::audit::policy_files::PolicyKind::Roster => self.roster,
        }
    }
}

/// A witness of this proxy's log: another proxy's listener.
#[derive(Clone, Debug)]
pub struct WitnessTarget {
    /// Its cosigner name (`bglass-witness/<its id>`).
    pub name: String,
    /// Its TLS listener.
    pub addr: SocketAddr,
    /// Its TLS CA pin.
    pub pin: bglass_core::catalog::CertPin,
    /// Its cosigning key (its signing key).
    pub key: bglass_core::keys::PublicKey,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: Spanned<String>,
    listen: Spanned<String>,
    metrics_listen: Option<Spanned<String>>,
    services: Spanned<String>,
    roster: Spanned<String>,
    data_dir: Spanned<String>,
    vault: Spanned<String>,
    vault_identity: Spanned<String>,
    tls_chain: Spanned<String>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    notify: Vec<Spanned<RawNotify>>,
    #[serde(default)]
    ssh: Option<RawSsh>,
    #[serde(default)]
    storage: Option<RawStorage>,
    #[serde(default)]
    witness_of: Vec<Spanned<RawWitnessOf>>,
    #[serde(default)]
    witnesses: Vec<Spanned<RawWitness>>,
    #[serde(default)]
    admins: Option<Spanned<RawAdmins>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmins {
    keys: Vec<String>,
    #[serde(default)]
    catalog: usize,
    #[serde(default)]
    roster: usize,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitnessOf {
    origin: String,
    key: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitness {
    name: String,
    address: String,
    pin: String,
    key: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    free_space_warning: Option<Spanned<String>>,
    reserve: Option<Spanned<String>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_header_bytes: Option<Spanned<i64>>,
    max_api_body_bytes: Option<Spanned<i64>>,
    max_body_bytes: Option<Spanned<i64>>,
    upstream_timeout: Option<Spanned<String>>,
    header_timeout: Option<Spanned<String>>,
    request_ttl: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    max_connections_per_source: Option<Spanned<i64>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    url: Spanned<String>,
    format: Option<Spanned<String>>,
}

/// The rule `proxy.toml` broke.
#[derive(Debug, thiserror::Error)]
pub enum ProxyConfigProblem {
    /// Unreadable, too large, not UTF-8, overlong line, or not TOML for the schema.
    #[error(transparent)]
    Source(SourceProblem),
    /// The id is invalid.
    #[error("invalid proxy id: {0}")]
    Id(bglass_core::id::NameError),
    /// An address is not IP:port.
    #[error("{field} {value:?} must be an IP literal and port")]
    Address {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// A path is empty.
    #[error("{0} must not be empty")]
    Path(&'static str),
    /// A limit is out of range.
    #[error("limits.{field} must be between {min} and {max}")]
    Limit {
        /// The field.
        field: &'static str,
        /// Smallest.
        min: i64,
        /// Largest.
        max: i64,
    },
    /// A duration does not parse.
    #[error("limits.{field}: {error}")]
    Duration {
        /// The field.
        field: &'static str,
        /// Why.
        error: bglass_core::duration::DurationError,
    },
    /// A notification URL is not `http://IP:PORT/path`.
    #[error("notify url {0:?} must be http://IP:PORT/path (no host names: DNS may be down)")]
    NotifyUrl(String),
    /// An unknown notification format.
    #[error("notify format {0:?} must be \"json\" or \"slack\"")]
    NotifyFormat(String),
    /// The `[ssh]` section is invalid.
    #[error(transparent)]
    Ssh(SshSettingsProblem),
    /// A size in `[storage]` does not parse.
    #[error("storage.{field}: {error}")]
    Size {
        /// The field.
        field: &'static str,
        /// Why.
        error: SizeError,
    },
    /// A `[[witness_of]]` or `[[witnesses]]` entry is invalid.
    #[error("{0}")]
    Witness(String),
    /// The `[admins]` section is invalid.
    #[error("{0}")]
    Admins(String),
    /// `storage.reserve` is out of range.
    #[error("storage.reserve is {value}; it must be between {min} and {max}", min = MIN_RESERVE, max = MAX_RESERVE)]
    Reserve {
        /// The size given.
        value: ByteSize,
    },
}

/// A located `proxy.toml` error.
pub type ProxyConfigError = Located<ProxyConfigProblem>;

/// Parses `http://IP:PORT/path` into the address and path.
pub fn parse_http_url(url: &str) -> Option<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let addr: SocketAddr = host.parse().ok()?;
    (addr.port() != 0 && !path.contains(char::is_whitespace)).then_some((addr, path))
}

impl ProxyConfig {
    /// Reads and validates `proxy.toml`; relative paths are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ProxyConfigError> {
        let source = Source::read(path, PROXY_CONFIG_LIMITS)
            .map_err(|e| e.map(ProxyConfigProblem::Source))?;
        let raw: Raw = source
            .parse_toml()
            .map_err(|e| e.map(ProxyConfigProblem::Source))?;
        let err = |span: std::ops::Range<usize>, problem| {
            Located::new(path, source.locate(span), problem)
        };
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let id = ProxyId::new(raw.id.get_ref())
            .map_err(|e| err(raw.id.span(), ProxyConfigProblem::Id(e)))?;
        let addr =
            |field: &'static str, v: &Spanned<String>| -> Result<SocketAddr, ProxyConfigError> {
                // Port 0 lets the system choose: the proxy prints the address it bound.
                v.get_ref().parse::<SocketAddr>().ok().ok_or_else(|| {
                    err(
                        v.span(),
                        ProxyConfigProblem::Address {
                            field,
                            value: v.get_ref().chars().take(64).collect(),
                        },
                    )
                })
            };
        let listen = addr("listen", &raw.listen)?;
        let metrics_listen = raw
            .metrics_listen
            .as_ref()
            .map(|m| addr("metrics_listen", m))
            .transpose()?;
        let file =
            |field: &'static str, v: &Spanned<String>| -> Result<PathBuf, ProxyConfigError> {
                if v.get_ref().trim().is_empty() {
                    return Err(err(v.span(), ProxyConfigProblem::Path(field)));
                }
                let p = PathBuf::from(v.get_ref());
                Ok(if p.is_absolute() { p } else { base.join(p) })
            };
        let raw_limits = raw.limits.unwrap_or_default();
        let dur = |field: &'static str,
                   v: &Option<Spanned<String>>,
                   default: &str|
         -> Result<HumanDuration, ProxyConfigError> {
            let (text, span) = match v {
                Some(s) => (s.get_ref().as_str(), s.span()),
                None => (default, 0..0),
            };
            text.parse()
                .map_err(|error| err(span, ProxyConfigProblem::Duration { field, error }))
        };
        let limits = Limits {
            max_header_bytes: limit(
                &err,
                "max_header_bytes",
                &raw_limits.max_header_bytes,
                1024..=1 << 20,
                16 * 1024,
            )?,
            max_api_body_bytes: limit(
                &err,
                "max_api_body_bytes",
                &raw_limits.max_api_body_bytes,
                1024..=1 << 20,
                64 * 1024,
            )?,
            max_body_bytes: limit(
                &err,
                "max_body_bytes",
                &raw_limits.max_body_bytes,
                0..=1 << 40,
                64 << 20,
            )?,
            upstream_timeout: dur("upstream_timeout", &raw_limits.upstream_timeout, "30s")?,
            header_timeout: dur("header_timeout", &raw_limits.header_timeout, "10s")?,
            request_ttl: dur("request_ttl", &raw_limits.request_ttl, "1h")?,
            max_connections: limit(
                &err,
                "max_connections",
                &raw_limits.max_connections,
                16..=1 << 20,
                DEFAULT_MAX_CONNECTIONS,
            )?,
            max_connections_per_source: limit(
                &err,
                "max_connections_per_source",
                &raw_limits.max_connections_per_source,
                1..=1 << 20,
                DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            )?,
        };
        let mut notify = Vec::new();
        for n in raw.notify {
            let n = n.into_inner();
            let (addr, path) = parse_http_url(n.url.get_ref()).ok_or_else(|| {
                err(
                    n.url.span(),
                    ProxyConfigProblem::NotifyUrl(n.url.get_ref().chars().take(80).collect()),
                )
            })?;
            let format = match n.format.as_ref().map(|f| f.get_ref().as_str()) {
                None | Some("json") => NotifyFormat::Json,
                Some("slack") => NotifyFormat::Slack,
                Some(other) => {
                    let span = n.format.as_ref().map_or(0..0, Spanned::span);
                    return Err(err(
                        span,
                        ProxyConfigProblem::NotifyFormat(other.chars().take(32).collect()),
                    ));
                }
            };
            notify.push(NotifyTarget {
                url: n.url.get_ref().clone(),
                addr,
                path,
                format,
            });
        }
        let ssh = crate::ssh_settings::validate(raw.ssh, listen).map_err(|(span, problem)| {
            err(
                span.unwrap_or_else(|| raw.listen.span()),
                ProxyConfigProblem::Ssh(problem),
            )
        })?;
        let raw_storage = raw.storage.unwrap_or_default();
        let size = |field: &'static str,
                    v: &Option<Spanned<String>>,
                    default: ByteSize|
         -> Result<(ByteSize, std::ops::Range<usize>), ProxyConfigError> {
            match v {
                None => Ok((default, 0..0)),
                Some(s) => s
                    .get_ref()
                    .parse::<ByteSize>()
                    .map(|b| (b, s.span()))
                    .map_err(|error| err(s.span(), ProxyConfigProblem::Size { field, error })),
            }
        };
        let (warning, _) = size(
            "free_space_warning",
            &raw_storage.free_space_warning,
            DEFAULT_FREE_SPACE_WARNING,
        )?;
        let (reserve, reserve_span) = size("reserve", &raw_storage.reserve, DEFAULT_RESERVE)?;
        if !(MIN_RESERVE..=MAX_RESERVE).contains(&reserve) {
            return Err(err(
                reserve_span,
                ProxyConfigProblem::Reserve { value: reserve },
            ));
        }
        let storage = StorageSettings {
            free_space_warning_bytes: warning.bytes(),
            reserve_bytes: reserve.bytes(),
        };
        let mut witness_of = Vec::new();
        for w in raw.witness_of {
            let span = w.span();
            let w = w.into_inner();
            let key = w.key.parse().map_err(|e| {
                err(
                    span.clone(),
                    ProxyConfigProblem::Witness(format!("witness_of key: {e}")),
                )
            })?;
            if !w.origin.starts_with("bglass/") || w.origin == format!("bglass/{id}") {
                return Err(err(
                    span,
                    ProxyConfigProblem::Witness(format!(
                        "witness_of origin {:?} must be another proxy's log, bglass/<id>",
                        w.origin
                    )),
                ));
            }
            witness_of.push((w.origin, key));
        }
        let mut witnesses = Vec::new();
        for w in raw.witnesses {
            let span = w.span();
            let w = w.into_inner();
            let bad = |what: String| err(span.clone(), ProxyConfigProblem::Witness(what));
            let addr = w
                .address
                .parse()
                .map_err(|_| bad(format!("witnesses address {:?} must be IP:port", w.address)))?;
            let pin = w
                .pin
                .parse()
                .map_err(|e| bad(format!("witnesses pin: {e}")))?;
            let key = w
                .key
                .parse()
                .map_err(|e| bad(format!("witnesses key: {e}")))?;
            witnesses.push(WitnessTarget {
                name: w.name,
                addr,
                pin,
                key,
            });
        }
        let admins = match raw.admins {
            None => AdminPolicy::default(),
            Some(a) => {
                let span = a.span();
                let a = a.into_inner();
                let bad = |what: String| err(span.clone(), ProxyConfigProblem::Admins(what));
                let keys = a
                    .keys
                    .iter()
                    .map(|k| k.parse::<bglass_core::admin::AdminKey>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("admins.keys: {e}")))?;
                for (i, k) in keys.iter().enumerate() {
                    if keys[..i].iter().any(|o| o.key == k.key || o.name == k.name) {
                        return Err(bad(format!(
                            "admins.keys: {} is listed twice (by name or key)",
                            k.name
                        )));
                    }
                }
                for (what, n) in [("catalog", a.catalog), ("roster", a.roster)] {
                    if n > keys.len() {
                        return Err(bad(format!(
                            "admins.{what} = {n}, but only {} admin keys are listed",
                            keys.len()
                        )));
                    }
                }
                AdminPolicy {
                    keys,
                    catalog: a.catalog,
                    roster: a.roster,
                }
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            id,
            listen,
            metrics_listen,
            services: file("services", &raw.services)?,
            roster: file("roster", &raw.roster)?,
            data_dir: file("data_dir", &raw.data_dir)?,
            vault: file("vault", &raw.vault)?,
            vault_identity: file("vault_identity", &raw.vault_identity)?,
            tls_chain: file("tls_chain", &raw.tls_chain)?,
            limits,
            notify,
            ssh,
            storage,
            witness_of,
            witnesses,
            admins,
        })
    }
}

/// A `[limits]` integer in `range` (`default` when absent), in the type the proxy uses it
/// as; outside the range, or not representable in that type, a located error.
fn limit<T: TryFrom<i64>>(
    err: &impl Fn(std::ops::Range<usize>, ProxyConfigProblem) -> ProxyConfigError,
    field: &'static str,
    v: &Option<Spanned<i64>>,
    range: std::ops::RangeInclusive<i64>,
    default: i64,
) -> Result<T, ProxyConfigError> {
    let (value, span) = v
        .as_ref()
        .map_or((default, 0..0), |s| (*s.get_ref(), s.span()));
    let refused = || {
        err(
            span.clone(),
            ProxyConfigProblem::Limit {
                field,
                min: *range.start(),
                max: *range.end(),
            },
        )
    };
    if !range.contains(&value) {
        return Err(refused());
    }
    T::try_from(value).map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const BASE: &str = r#"id = "proxy-a"
listen = "127.0.0.1:8443"
services = "services.toml"
roster = "responders.toml"
data_dir = "data"
vault = "secrets.age"
vault_identity = "vault.key"
tls_chain = "tls/chain.pem"
"#;

    fn load(extra: &str) -> Result<ProxyConfig, ProxyConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, format!("{BASE}{extra}")).unwrap();
        ProxyConfig::load(&path)
    }

    #[test]
    fn storage_defaults_to_a_512mib_warning_and_an_8mib_reserve() {
        let config = load("").unwrap();
        assert_eq!(config.storage.free_space_warning_bytes, 512 << 20);
        assert_eq!(config.storage.reserve_bytes, 8 << 20);
        assert_eq!(config.storage, StorageSettings::default());
    }

    #[test]
    fn the_generated_proxy_toml_documents_a_storage_section_that_loads() {
        let dir = tempfile::tempdir().unwrap();
        let id = ProxyId::new("proxy-a").unwrap();
        let made =
            crate::init::init(dir.path(), &id, "127.0.0.1:8443".parse().unwrap(), None).unwrap();
        let text = std::fs::read_to_string(&made.config).unwrap();
        assert_eq!(
            ProxyConfig::load(&made.config).unwrap().storage,
            StorageSettings::default()
        );
        // The commented example, uncommented, is valid and says the defaults.
        let uncommented = text
            .replace("# [storage]", "[storage]")
            .replace("# free_space_warning", "free_space_warning")
            .replace("# reserve = ", "reserve = ");
        assert!(uncommented.contains("\n[storage]\nfree_space_warning = \"512MiB\""));
        std::fs::write(&made.config, &uncommented).unwrap();
        assert_eq!(
            ProxyConfig::load(&made.config).unwrap().storage,
            StorageSettings::default()
        );
    }

    #[test]
    fn storage_sizes_are_read() {
        let config =
            load("[storage]\nfree_space_warning = \"1GiB\"\nreserve = \"64KiB\"\n").unwrap();
        assert_eq!(config.storage.free_space_warning_bytes, 1 << 30);
        assert_eq!(config.storage.reserve_bytes, 64 << 10);
        let off = load("[storage]\nfree_space_warning = \"0B\"\n").unwrap();
        assert_eq!(off.storage.free_space_warning_bytes, 0);
        assert_eq!(off.storage.reserve_bytes, 8 << 20);
    }

    #[test]
    fn bad_storage_settings_are_refused_with_their_line() {
        let cases = [
            (
                "free_space_warning = \"512\"",
                "storage.free_space_warning: size \"512\" is invalid",
            ),
            (
                "free_space_warning = \"1.5GiB\"",
                "storage.free_space_warning: size \"1.5GiB\" is invalid",
            ),
            (
                "free_space_warning = \"lots\"",
                "storage.free_space_warning: size \"lots\" is invalid",
            ),
            (
                "free_space_warning = \"\"",
                "storage.free_space_warning: size is empty",
            ),
            (
                "reserve = \"32KiB\"",
                "storage.reserve is 32 KiB; it must be between 64 KiB and 1 GiB",
            ),
            (
                "reserve = \"2GiB\"",
                "storage.reserve is 2 GiB; it must be between 64 KiB and 1 GiB",
            ),
            (
                "reserve = \"99999999999999999999B\"",
                "storage.reserve: size \"99999999999999999999B\" is too large",
            ),
        ];
        for (line, want) in cases {
            let e = load(&format!("[storage]\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{line}: {e}");
            // Located on the line of the value (the section header is line 9).
            assert!(e.contains("proxy.toml:10:"), "{line}: {e}");
        }
        let unknown = load("[storage]\nfree_space = \"1GiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("free_space"), "{unknown}");
        let number = load("[storage]\nreserve = 65536\n")
            .unwrap_err()
            .to_string();
        assert!(number.contains("proxy.toml:10:"), "{number}");
    }
}
