//! The declared production dependencies (`drills/production.toml`): the systems a
//! network-wide outage takes down (Zero Trust, the identity provider, internal DNS, …) and
//! the addresses, ranges and host names by which they are reached.
//!
//! `bglass drill deps` matches every endpoint of the break-glass path against them, and a
//! simulated drill makes every link to a matching endpoint fail when the scenario says the
//! dependency is down. A break-glass path that touches one of them is a hidden dependency.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use toml::Spanned;

use crate::id::{DependencyName, NameError};
use crate::source::{Located, Source, SourceLimits, SourceProblem};

/// Size and line limits checked before parsing.
pub const PRODUCTION_LIMITS: SourceLimits = SourceLimits {
    max_bytes: 64 * 1024,
    max_line_bytes: 1024,
};
/// Most dependencies in one file.
pub const MAX_DEPENDENCIES: usize = 64;
/// Most addresses, ranges or host patterns in one dependency.
pub const MAX_MATCHERS: usize = 256;

/// The declared production dependencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Production {
    /// The file.
    pub path: PathBuf,
    /// The dependencies, in file order.
    pub dependencies: Vec<Dependency>,
}

/// One production dependency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// Its name (`zero-trust`, `idp`, `dns`, …), used in scenarios' `down`.
    pub name: DependencyName,
    /// What it is.
    pub description: String,
    /// Address ranges it serves (an endpoint inside one depends on it).
    pub ranges: Vec<IpNet>,
    /// Single addresses, with or without a port.
    pub addresses: Vec<AddressMatch>,
    /// Host names it serves: exact, or `*.suffix` for any name under a domain.
    pub hosts: Vec<String>,
    /// Whether it resolves host names (internal DNS): every endpoint written as a host
    /// name, without a pinned address, depends on it.
    pub resolves_names: bool,
}

/// An address, with or without a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressMatch {
    /// Any port on this address.
    Ip(IpAddr),
    /// This address and port.
    Socket(SocketAddr),
}

/// How an endpoint of the break-glass path is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// An IP literal and port (no DNS).
    Addr(SocketAddr),
    /// A host name with a pinned address beside it (no DNS; the name matters for TLS).
    PinnedName {
        /// The name.
        host: String,
        /// The pinned address.
        addr: SocketAddr,
    },
    /// A host name that must be looked up.
    Name {
        /// The name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Addr(a) => write!(f, "{a}"),
            Self::PinnedName { host, addr } => write!(f, "{host} (pinned to {addr})"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Dependency {
    /// Why `endpoint` depends on this dependency, or `None` when it does not.
    pub fn matches(&self, endpoint: &Endpoint) -> Option<String> {
        let by_addr = |addr: &SocketAddr| {
            if let Some(r) = self.ranges.iter().find(|r| r.contains(&addr.ip())) {
                return Some(format!("{} is in {} ({r})", addr.ip(), self.name));
            }
            self.addresses
                .iter()
                .find(|m| match m {
                    AddressMatch::Ip(ip) => *ip == addr.ip(),
                    AddressMatch::Socket(s) => s == addr,
                })
                .map(|_| format!("{addr} is an address of {}", self.name))
        };
        let by_host = |host: &str| {
            let host = host.to_ascii_lowercase();
            self.hosts
                .iter()
                .find(|pattern| match pattern.strip_prefix("*.") {
                    Some(suffix) => host.ends_with(&format!(".{suffix}")),
                    None => **pattern == host,
                })
                .map(|p| format!("{host} is served by {} ({p})", self.name))
        };
        match endpoint {
            Endpoint::Addr(addr) => by_addr(addr),
            Endpoint::PinnedName { host, addr } => by_addr(addr).or_else(|| by_host(host)),
            Endpoint::Name { host, .. } => by_host(host).or_else(|| {
                self.resolves_names.then(|| {
                    format!(
                        "{host} is a host name: reaching it needs {} to resolve it",
                        self.name
                    )
                })
            }),
        }
    }
}

/// The rule a production file broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProductionProblem {
    /// Unreadable, too large, not UTF-8, overlong line, or not TOML for the schema.
    #[error(transparent)]
    Source(SourceProblem),
    /// `version` is not 1.
    #[error("unsupported production file version {0} (this bglass reads version 1)")]
    Version(i64),
    /// A name is invalid.
    #[error(transparent)]
    Name(NameError),
    /// A name is used twice.
    #[error("dependency \"{0}\" is declared twice")]
    Duplicate(DependencyName),
    /// A range is malformed.
    #[error("range {0:?} is not an address range like 10.0.0.0/8 or fd00::/8")]
    Range(String),
    /// An address is malformed.
    #[error("address {0:?} is not an IP address or IP:PORT")]
    Address(String),
    /// A host pattern is malformed.
    #[error("host {0:?} is not a host name or *.domain pattern")]
    Host(String),
    /// A list is too long, or there are too many dependencies.
    #[error("too many entries: limit {0}")]
    TooMany(usize),
    /// A dependency matches nothing.
    #[error("dependency \"{0}\" lists no ranges, addresses or hosts, and does not resolve names")]
    Empty(DependencyName),
    /// A description is invalid.
    #[error("description must be 1-400 characters without control characters")]
    Text,
}

/// A production file error, located.
pub type ProductionError = Located<ProductionProblem>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduction {
    version: Spanned<i64>,
    #[serde(default)]
    dependency: Vec<Spanned<RawDependency>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDependency {
    name: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    ranges: Vec<Spanned<String>>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
    #[serde(default)]
    resolves_names: bool,
}

fn valid_host_pattern(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl Production {
    /// Reads and validates a production file.
    pub fn load(path: &Path) -> Result<Self, ProductionError> {
        let source =
            Source::read(path, PRODUCTION_LIMITS).map_err(|e| e.map(ProductionProblem::Source))?;
        Self::parse(&source)
    }

    /// Validates bytes already in memory.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, ProductionError> {
        let source = Source::from_bytes(path, bytes, PRODUCTION_LIMITS)
            .map_err(|e| e.map(ProductionProblem::Source))?;
        Self::parse(&source)
    }

    fn parse(source: &Source) -> Result<Self, ProductionError> {
        if source.table_header_lines("dependency").len() > MAX_DEPENDENCIES {
            return Err(Located::new(
                source.path(),
                None,
                ProductionProblem::TooMany(MAX_DEPENDENCIES),
            ));
        }
        let raw: RawProduction = source
            .parse_toml()
            .map_err(|e| e.map(ProductionProblem::Source))?;
        let err = |span: std::ops::Range<usize>, problem| {
            Located::new(source.path(), source.locate(span), problem)
        };
        if *raw.version.get_ref() != 1 {
            return Err(err(
                raw.version.span(),
                ProductionProblem::Version(*raw.version.get_ref()),
            ));
        }
        if raw.dependency.len() > MAX_DEPENDENCIES {
            return Err(Located::new(
                source.path(),
                None,
                ProductionProblem::TooMany(MAX_DEPENDENCIES),
            ));
        }
        let mut dependencies: Vec<Dependency> = Vec::new();
        for d in &raw.dependency {
            let span = d.span();
            let d = d.get_ref();
            let name = DependencyName::new(d.name.get_ref())
                .map_err(|e| err(d.name.span(), ProductionProblem::Name(e)))?;
            if dependencies.iter().any(|x| x.name == name) {
                return Err(err(
                    d.name.span(),
                    ProductionProblem::Duplicate(name.clone()),
                ));
            }
            let text = d.description.get_ref();
            if text.is_empty() || text.chars().count() > 400 || text.chars().any(char::is_control) {
                return Err(err(d.description.span(), ProductionProblem::Text));
            }
            for list in [&d.ranges, &d.addresses, &d.hosts] {
                if list.len() > MAX_MATCHERS {
                    return Err(err(span.clone(), ProductionProblem::TooMany(MAX_MATCHERS)));
                }
            }
            let ranges = d
                .ranges
                .iter()
                .map(|r| {
                    r.get_ref().parse::<IpNet>().map_err(|_| {
                        err(
                            r.span(),
                            ProductionProblem::Range(r.get_ref().chars().take(60).collect()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let addresses = d
                .addresses
                .iter()
                .map(|a| {
                    let text = a.get_ref();
                    text.parse::<SocketAddr>()
                        .map(AddressMatch::Socket)
                        .or_else(|_| text.parse::<IpAddr>().map(AddressMatch::Ip))
                        .map_err(|_| {
                            err(
                                a.span(),
                                ProductionProblem::Address(text.chars().take(60).collect()),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let hosts = d
                .hosts
                .iter()
                .map(|h| {
                    if valid_host_pattern(h.get_ref()) {
                        Ok(h.get_ref().to_ascii_lowercase())
                    } else {
                        Err(err(
                            h.span(),
                            ProductionProblem::Host(h.get_ref().chars().take(60).collect()),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            if ranges.is_empty() && addresses.is_empty() && hosts.is_empty() && !d.resolves_names {
                return Err(err(span, ProductionProblem::Empty(name.clone())));
            }
            dependencies.push(Dependency {
                name: name.clone(),
                description: text.clone(),
                ranges,
                addresses,
                hosts,
                resolves_names: d.resolves_names,
            });
        }
        Ok(Self {
            path: source.path().to_path_buf(),
            dependencies,
        })
    }

    /// The dependency with this name.
    pub fn get(&self, name: &DependencyName) -> Option<&Dependency> {
        self.dependencies.iter().find(|d| d.name == *name)
    }

    /// Every declared dependency `endpoint` depends on, with why.
    pub fn matches(&self, endpoint: &Endpoint) -> Vec<(&Dependency, String)> {
        self.dependencies
            .iter()
            .filter_map(|d| d.matches(endpoint).map(|why| (d, why)))
            .collect()
    }
}
