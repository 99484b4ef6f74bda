//! The CLI's config file (`config.toml`): who the responder is, where their key is, and the
//! proxies to try in priority order, each with its CA pin.
//!
//! Found via `--config`, then `BGLASS_CONFIG`, then `$XDG_CONFIG_HOME/bglass/config.toml`,
//! then `$HOME/.config/bglass/config.toml`. Only environment variables are consulted, never
//! the password database, so a static binary needs no NSS modules (and works where the
//! directory service is down).

use bglass_core::audit::witness::WitnessKey;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use bglass_core::catalog::CertPin;
use bglass_core::id::{DnsName, ResponderId};
use bglass_core::source::{Located, Source, SourceLimits, SourceProblem};
use toml::Spanned;

use crate::error::{CliError, CliResult};

/// Size and line limits checked before parsing.
pub const CONFIG_LIMITS: SourceLimits = SourceLimits {
    max_bytes: 64 * 1024,
    max_line_bytes: 1024,
};
/// Most proxies a config may list.
pub const MAX_PROXIES: usize = 16;

/// Where the config file is, and how it was chosen (for messages).
#[derive(Debug, Clone)]
pub struct ConfigLocation {
    /// The file.
    pub path: PathBuf,
}

/// Resolves the config path from the flag/env value or the XDG rules.
pub fn locate(explicit: Option<&Path>) -> CliResult<ConfigLocation> {
    if let Some(path) = explicit {
        return Ok(ConfigLocation {
            path: path.to_path_buf(),
        });
    }
    let env_dir = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = env_dir("XDG_CONFIG_HOME")
        .or_else(|| env_dir("HOME").map(|home| home.join(".config")))
        .ok_or_else(|| {
            CliError::user(
                "cannot find a config directory: neither XDG_CONFIG_HOME nor HOME is set",
            )
            .with_hint("pass --config FILE or set BGLASS_CONFIG")
        })?;
    Ok(ConfigLocation {
        path: base.join("bglass").join("config.toml"),
    })
}

/// One proxy the CLI may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEntry {
    /// The URL as written (`https://IP:PORT`).
    pub url: String,
    /// The socket address to connect to: never looked up in DNS.
    pub addr: SocketAddr,
    /// SHA-256 pin of the proxy's CA certificate.
    pub pin: CertPin,
    /// The witnesses of its log (`witnesses = ["bglass-witness/<id>=ed25519:…", …]`).
    pub witnesses: Vec<WitnessKey>,
    /// How many of them must have cosigned a checkpoint before this CLI takes it as the
    /// proxy's view (0: no witness policy).
    pub witness_quorum: usize,
    /// The key of the proxy's own SSH endpoint (recorded services), `ssh-ed25519 AAAA…`, as
    /// `bglass-proxy init` printed it: pinned like the TLS CA. Without it, the key the
    /// proxy names over its pinned TLS connection is used.
    pub ssh_host_key: Option<String>,
}

/// A validated CLI config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The responder's id.
    pub responder: ResponderId,
    /// The encrypted key file (absolute, or relative to the config's directory).
    pub identity: PathBuf,
    /// Proxies in priority order.
    pub proxies: Vec<ProxyEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    responder: Spanned<String>,
    identity: Spanned<String>,
    #[serde(default)]
    proxy: Vec<Spanned<RawProxy>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    url: Spanned<String>,
    pin: Spanned<String>,
    address: Option<Spanned<String>>,
    #[serde(default)]
    witnesses: Vec<Spanned<String>>,
    witness_quorum: Option<Spanned<i64>>,
    ssh_host_key: Option<Spanned<String>>,
}

/// The rule a config broke.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// Unreadable, too large, not UTF-8, overlong line, or not TOML for the schema.
    #[error(transparent)]
    Source(SourceProblem),
    /// The responder id is invalid.
    #[error("invalid responder id: {0}")]
    Responder(bglass_core::id::NameError),
    /// A proxy URL is not https://HOST:PORT.
    #[error("proxy url {url:?} is invalid: {reason}")]
    Url {
        /// The value.
        url: String,
        /// Why.
        reason: UrlProblem,
    },
    /// A pin is malformed.
    #[error("{0}")]
    Pin(bglass_core::catalog::PinError),
    /// No proxies, or too many.
    #[error("list 1-{MAX_PROXIES} [[proxy]] entries")]
    ProxyCount,
    /// The identity path is empty.
    #[error("identity must name the encrypted key file")]
    Identity,
    /// A witness entry or the quorum is invalid.
    #[error("{0}")]
    Witness(String),
    /// `ssh_host_key` is not an OpenSSH public key line.
    #[error(
        "ssh_host_key must be an OpenSSH public key (`ssh-ed25519 AAAA…`), as `bglass-proxy init` prints it"
    )]
    SshHostKey,
    /// A proxy is listed twice.
    #[error("proxy {url} is listed twice")]
    DuplicateProxy {
        /// The URL of the second entry.
        url: String,
    },
}

/// A config error: file, line, column and the rule.
pub type ConfigError = Located<ConfigProblem>;

/// Why a proxy URL (with its optional pinned `address`) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProblem {
    /// Not `https://`.
    #[error("it must start with https://")]
    NotHttps,
    /// A path, query or user part.
    #[error("give only https://HOST:PORT, without a path, query or user")]
    Extra,
    /// No port.
    #[error("a port is required (https://IP:PORT)")]
    NoPort,
    /// The port is not 1-65535.
    #[error("the port must be a number 1-65535")]
    Port,
    /// Looks like an IP address but is not one.
    #[error("the IP address is invalid")]
    Ip,
    /// The host is not a DNS name.
    #[error("the host is invalid: {0}")]
    Host(Box<bglass_core::id::NameError>),
    /// A host name without a pinned address.
    #[error(
        "a host name needs DNS, which may be down: use an IP literal, or add address = \"IP:PORT\""
    )]
    NeedsAddress,
    /// A pinned address beside an IP literal.
    #[error("an address is only needed when the url names a host")]
    NeedlessAddress,
    /// The pinned address is not `IP:PORT`.
    #[error("address must be an IP literal and port")]
    Address,
    /// The pinned address's port is not the URL's.
    #[error("the address's port differs from the url's")]
    AddressPort,
}

/// Parses a proxy URL: `https://IP:PORT[/]`, or `https://NAME:PORT` when a pinned `address`
/// is given. Returns the address to connect to.
pub fn parse_proxy_url(url: &str, address: Option<&str>) -> Result<SocketAddr, UrlProblem> {
    let rest = url.strip_prefix("https://").ok_or(UrlProblem::NotHttps)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(UrlProblem::Extra);
    }
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        if address.is_some() {
            return Err(UrlProblem::NeedlessAddress);
        }
        return Ok(addr);
    }
    let (host, port) = rest.rsplit_once(':').ok_or(UrlProblem::NoPort)?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or(UrlProblem::Port)?;
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Err(UrlProblem::Ip);
    }
    DnsName::new(host).map_err(|e| UrlProblem::Host(Box::new(e)))?;
    // A host name is allowed only with its address pinned beside it: the break-glass path
    // must not need DNS, which may be the very thing that is down.
    let address = address.ok_or(UrlProblem::NeedsAddress)?;
    let addr: SocketAddr = address.parse().map_err(|_| UrlProblem::Address)?;
    if addr.port() != port {
        return Err(UrlProblem::AddressPort);
    }
    Ok(addr)
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = Source::read(path, CONFIG_LIMITS).map_err(|e| e.map(ConfigProblem::Source))?;
        let raw: RawConfig = source
            .parse_toml()
            .map_err(|e| e.map(ConfigProblem::Source))?;
        let err = |span: std::ops::Range<usize>, problem| {
            Located::new(path, source.locate(span), problem)
        };
        let responder = ResponderId::new(raw.responder.get_ref())
            .map_err(|e| err(raw.responder.span(), ConfigProblem::Responder(e)))?;
        if raw.identity.get_ref().trim().is_empty() {
            return Err(err(raw.identity.span(), ConfigProblem::Identity));
        }
        let identity = PathBuf::from(raw.identity.get_ref());
        let identity = if identity.is_absolute() {
            identity
        } else {
            path.parent().unwrap_or(Path::new(".")).join(identity)
        };
        if raw.proxy.is_empty() || raw.proxy.len() > MAX_PROXIES {
            return Err(Located::new(path, None, ConfigProblem::ProxyCount));
        }
        let mut proxies: Vec<ProxyEntry> = Vec::new();
        for entry in raw.proxy {
            let entry = entry.into_inner();
            let url = entry.url.get_ref();
            let addr = parse_proxy_url(url, entry.address.as_ref().map(|a| a.get_ref().as_str()))
                .map_err(|reason| {
                err(
                    entry.url.span(),
                    ConfigProblem::Url {
                        url: url.chars().take(80).collect(),
                        reason,
                    },
                )
            })?;
            let pin: CertPin = entry
                .pin
                .get_ref()
                .parse()
                .map_err(|e| err(entry.pin.span(), ConfigProblem::Pin(e)))?;
            if proxies.iter().any(|p| p.addr == addr) {
                return Err(err(
                    entry.url.span(),
                    ConfigProblem::DuplicateProxy { url: url.clone() },
                ));
            }
            let mut witnesses = Vec::new();
            for w in &entry.witnesses {
                witnesses.push(w.get_ref().parse::<WitnessKey>().map_err(|e| {
                    err(w.span(), ConfigProblem::Witness(format!("witnesses: {e}")))
                })?);
            }
            let witness_quorum = match &entry.witness_quorum {
                None => witnesses.len(),
                Some(q) => usize::try_from(*q.get_ref())
                    .ok()
                    .filter(|k| (1..=witnesses.len()).contains(k))
                    .ok_or_else(|| {
                        err(
                            q.span(),
                            ConfigProblem::Witness(format!(
                                "witness_quorum must be between 1 and the {} witnesses listed",
                                witnesses.len()
                            )),
                        )
                    })?,
            };
            let ssh_host_key = match &entry.ssh_host_key {
                None => None,
                Some(k) => Some(
                    canonical_ssh_key(k.get_ref())
                        .ok_or_else(|| err(k.span(), ConfigProblem::SshHostKey))?,
                ),
            };
            proxies.push(ProxyEntry {
                url: url.clone(),
                addr,
                pin,
                witnesses,
                witness_quorum,
                ssh_host_key,
            });
        }
        Ok(Self {
            responder,
            identity,
            proxies,
        })
    }

    /// The config as TOML, as `bglass enroll` writes it.
    pub fn to_toml(&self, identity_as_written: &str) -> String {
        let mut out = String::from(
            "# bglass CLI configuration (written by `bglass enroll`).\n\
             # Proxies are tried in this order; each pin is the SHA-256 of that proxy's CA.\n\n",
        );
        out.push_str(&format!("responder = {:?}\n", self.responder.as_str()));
        out.push_str(&format!("identity = {identity_as_written:?}\n"));
        for proxy in &self.proxies {
            out.push_str(&format!(
                "\n[[proxy]]\nurl = {:?}\npin = \"{}\"\n",
                proxy.url, proxy.pin
            ));
            if !proxy.witnesses.is_empty() {
                let list: Vec<String> = proxy
                    .witnesses
                    .iter()
                    .map(|w| format!("\"{}={}\"", w.name, w.key))
                    .collect();
                out.push_str(&format!(
                    "witnesses = [{}]\nwitness_quorum = {}\n",
                    list.join(", "),
                    proxy.witness_quorum
                ));
            }
            if let Some(key) = &proxy.ssh_host_key {
                out.push_str(&format!("ssh_host_key = {key:?}\n"));
            }
        }
        out
    }
}

/// `type base64` of an OpenSSH public key line (its comment dropped), if it is one.
pub fn canonical_ssh_key(line: &str) -> Option<String> {
    use base64::Engine;
    let mut parts = line.split_whitespace();
    let (kind, data) = (parts.next()?, parts.next()?);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    (kind.starts_with("ssh-") || kind.starts_with("ecdsa-"))
        .then_some(())
        .filter(|()| decoded.len() > 4)?;
    Some(format!("{kind} {data}"))
}

/// Maps a config error to the CLI's error, with a hint.
pub fn config_error(e: ConfigError) -> CliError {
    let missing = matches!(&e.problem, ConfigProblem::Source(SourceProblem::Io(io)) if io.kind() == std::io::ErrorKind::NotFound);
    let err = CliError::user(&e);
    if missing {
        err.with_hint("run `bglass enroll` first, or pass --config FILE")
    } else {
        err.with_hint("fix the config file at the position shown")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_need_ip_literals_or_a_pinned_address() {
        assert_eq!(
            parse_proxy_url("https://127.0.0.1:8443", None),
            Ok("127.0.0.1:8443".parse().unwrap())
        );
        assert_eq!(
            parse_proxy_url("https://[::1]:8443/", None),
            Ok("[::1]:8443".parse().unwrap())
        );
        assert!(parse_proxy_url("http://127.0.0.1:8443", None).is_err());
        assert!(parse_proxy_url("https://127.0.0.1", None).is_err());
        assert!(parse_proxy_url("https://127.0.0.1:8443/v1", None).is_err());
        assert!(
            parse_proxy_url("https://proxy.example:8443", None)
                .unwrap_err()
                .to_string()
                .contains("DNS")
        );
        assert_eq!(
            parse_proxy_url("https://proxy.example:8443", Some("127.0.0.2:8443")),
            Ok("127.0.0.2:8443".parse().unwrap())
        );
        assert!(parse_proxy_url("https://proxy.example:8443", Some("127.0.0.2:9999")).is_err());
        assert!(parse_proxy_url("https://999.1.1.1:8443", None).is_err());
        assert!(matches!(
            parse_proxy_url("https://-proxy.example:8443", Some("127.0.0.2:8443")),
            Err(UrlProblem::Host(_))
        ));
    }

    #[test]
    fn config_round_trips_and_errors_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let pin = format!("sha256:{}", "0a".repeat(32));
        let config = Config {
            responder: ResponderId::new("alice").unwrap(),
            identity: dir.path().join("identity.age"),
            proxies: vec![ProxyEntry {
                witnesses: Vec::new(),
                witness_quorum: 0,
                ssh_host_key: None,
                url: "https://127.0.0.1:8443".to_owned(),
                addr: "127.0.0.1:8443".parse().unwrap(),
                pin: pin.parse().unwrap(),
            }],
        };
        std::fs::write(&path, config.to_toml("identity.age")).unwrap();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded.identity, dir.path().join("identity.age"));
        assert_eq!(loaded.proxies, config.proxies);

        std::fs::write(
            &path,
            format!("responder = \"alice\"\nidentity = \"k\"\n[[proxy]]\nurl = \"https://p:1\"\npin = \"{pin}\"\n"),
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err();
        assert_eq!(err.position.unwrap().line, 4);
        assert!(err.to_string().contains("needs DNS"), "{err}");
    }
}
