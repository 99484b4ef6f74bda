//! From raw TOML to a typed [`Catalog`]: every value checked, every error located.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;

use toml::Spanned;

use super::{
    CATALOG_VERSION, Catalog, CatalogError, CatalogProblem, DEFAULT_EMERGENCY_TTL_SECS,
    EmergencyBypass, HttpHealth, Injection, MAX_APPROVALS, MAX_DESCRIPTION_CHARS, MAX_SERVICES,
    MAX_TTL_SECS, Service, ServiceKind, TcpProbe, Upstream,
};
use crate::duration::HumanDuration;
use crate::id::{SecretName, ServiceName};
use crate::source::{Located, Source};

mod principals;
mod tls;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    version: Spanned<i64>,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    kind: Spanned<String>,
    description: Spanned<String>,
    upstream: Option<Spanned<String>>,
    upstream_pin: Option<Spanned<String>>,
    upstream_server_name: Option<Spanned<String>>,
    max_ttl: Spanned<String>,
    default_ttl: Spanned<String>,
    #[serde(default)]
    approvals: Option<Spanned<i64>>,
    #[serde(default)]
    emergency_bypass: Option<Spanned<bool>>,
    emergency_ttl: Option<Spanned<String>>,
    health: Option<Spanned<RawHealth>>,
    inject: Option<Spanned<RawInject>>,
    principals: Option<Spanned<Vec<Spanned<String>>>>,
    host_key: Option<Spanned<String>>,
    permit_port_forwarding: Option<Spanned<bool>>,
    permit_agent_forwarding: Option<Spanned<bool>>,
    share_principals: Option<Spanned<bool>>,
    record: Option<Spanned<bool>>,
    probe: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    path: Spanned<String>,
    expect_status: Spanned<i64>,
    #[serde(default)]
    auth: Option<Spanned<bool>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInject {
    header: Spanned<String>,
    secret: Spanned<String>,
    format: Spanned<String>,
}

/// Turns spans into located errors for one source.
struct Ctx<'a> {
    source: &'a Source,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, problem: CatalogProblem) -> CatalogError {
        Located::new(self.source.path(), self.source.locate(span), problem)
    }
}

/// Validates a catalog source (already size-checked) into a [`Catalog`].
pub fn parse_catalog(source: &Source) -> Result<Catalog, CatalogError> {
    let too_many = |count, line: Option<usize>| {
        Located::new(
            source.path(),
            line.map(|line| crate::source::Position { line, column: 1 }),
            CatalogProblem::TooManyServices {
                count,
                limit: MAX_SERVICES,
            },
        )
    };
    let headers = source.table_header_lines("service");
    if headers.len() > MAX_SERVICES {
        // Point at the first table past the limit.
        return Err(too_many(headers.len(), headers.get(MAX_SERVICES).copied()));
    }
    let raw: RawCatalog = source
        .parse_toml()
        .map_err(|e| e.map(CatalogProblem::Source))?;
    let ctx = Ctx { source };
    if *raw.version.get_ref() != i64::from(CATALOG_VERSION) {
        return Err(ctx.err(
            raw.version.span(),
            CatalogProblem::UnsupportedVersion {
                found: *raw.version.get_ref(),
            },
        ));
    }
    // Tables written another way (an inline array) escape the pre-parse count; check again.
    if raw.service.len() > MAX_SERVICES {
        return Err(too_many(raw.service.len(), None));
    }
    if raw.service.is_empty() {
        return Err(Located::new(
            source.path(),
            None,
            CatalogProblem::NoServices,
        ));
    }
    let mut first_line: HashMap<ServiceName, usize> = HashMap::new();
    let mut owners = principals::Owners::default();
    let mut services = Vec::with_capacity(raw.service.len());
    for raw_service in raw.service {
        let raw_service = raw_service.into_inner();
        let name_span = raw_service.name.span();
        let listed = principals::listed(&raw_service);
        let service = validate_service(&ctx, raw_service)?;
        let line = source.position(name_span.start).line;
        if let Some(first) = first_line.insert(service.name.clone(), line) {
            return Err(ctx.err(
                name_span,
                CatalogProblem::DuplicateName {
                    name: service.name.to_string(),
                    first_line: first,
                },
            ));
        }
        owners.claim(&ctx, &service.name, listed, line)?;
        services.push(service);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, source.text().as_bytes());
    Ok(Catalog::new(
        services,
        crate::keys::hex_lower(digest.as_ref()),
    ))
}

fn text(
    ctx: &Ctx<'_>,
    value: &Spanned<String>,
    field: &'static str,
    limit: usize,
) -> Result<String, CatalogError> {
    let s = value.get_ref();
    let n = s.chars().count();
    if n == 0 || n > limit || s.chars().any(char::is_control) {
        return Err(ctx.err(value.span(), CatalogProblem::Text { field, limit }));
    }
    Ok(s.clone())
}

fn duration(
    ctx: &Ctx<'_>,
    value: &Spanned<String>,
    field: &'static str,
) -> Result<HumanDuration, CatalogError> {
    value
        .get_ref()
        .parse()
        .map_err(|error| ctx.err(value.span(), CatalogProblem::Duration { field, error }))
}

fn address(
    ctx: &Ctx<'_>,
    value: &Spanned<String>,
    field: &'static str,
    allow_scheme: bool,
) -> Result<(SocketAddr, bool), CatalogError> {
    let bad = |reason| {
        ctx.err(
            value.span(),
            CatalogProblem::BadAddress {
                field,
                value: value.get_ref().chars().take(64).collect(),
                reason,
            },
        )
    };
    let raw = value.get_ref().as_str();
    let (rest, tls) = if let Some(rest) = raw.strip_prefix("https://") {
        (rest, true)
    } else if let Some(rest) = raw.strip_prefix("http://") {
        (rest, false)
    } else if raw.contains("://") {
        return Err(bad("the only schemes are http:// and https://"));
    } else {
        (raw, false)
    };
    if rest != raw && !allow_scheme {
        return Err(bad(
            "write IP:port without a scheme for ssh and tcp services",
        ));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let addr: SocketAddr = rest.parse().map_err(|_| {
        if rest.contains(':')
            && rest
                .rsplit(':')
                .next()
                .is_some_and(|p| p.parse::<u16>().is_err())
        {
            bad("the port must be a number 1-65535")
        } else if !rest.contains(':') {
            bad("a port is required (IP:port)")
        } else {
            bad("must be an IP literal and port (host names would need DNS); IPv6 as [::1]:port")
        }
    })?;
    if addr.port() == 0 {
        return Err(bad("the port must be a number 1-65535"));
    }
    if addr.ip().is_unspecified() || addr.ip().is_multicast() {
        return Err(bad("unspecified and multicast addresses cannot be reached"));
    }
    Ok((addr, tls))
}

/// Refuses every kind-specific field present on a service whose kind does not take it.
fn reject_foreign_fields(
    ctx: &Ctx<'_>,
    raw: &RawService,
    kind: &'static str,
) -> Result<(), CatalogError> {
    // (field, the one kind that takes it, its span when present)
    let fields = [
        ("health", "http", raw.health.as_ref().map(Spanned::span)),
        ("inject", "http", raw.inject.as_ref().map(Spanned::span)),
        (
            "principals",
            "ssh",
            raw.principals.as_ref().map(Spanned::span),
        ),
        ("host_key", "ssh", raw.host_key.as_ref().map(Spanned::span)),
        (
            "permit_port_forwarding",
            "ssh",
            raw.permit_port_forwarding.as_ref().map(Spanned::span),
        ),
        (
            "permit_agent_forwarding",
            "ssh",
            raw.permit_agent_forwarding.as_ref().map(Spanned::span),
        ),
        ("share_principals", "ssh", principals::share_span(raw)),
        ("record", "ssh", raw.record.as_ref().map(Spanned::span)),
        ("probe", "tcp", raw.probe.as_ref().map(Spanned::span)),
    ];
    for (field, takes, span) in fields {
        if let Some(span) = span
            && takes != kind
        {
            return Err(ctx.err(span, CatalogProblem::FieldNotForKind { field, kind }));
        }
    }
    Ok(())
}

fn require<'r, T>(
    ctx: &Ctx<'_>,
    field: &'r Option<Spanned<T>>,
    name: &'static str,
    kind: &'static str,
    at: &Spanned<String>,
) -> Result<&'r Spanned<T>, CatalogError> {
    field.as_ref().ok_or_else(|| {
        ctx.err(
            at.span(),
            CatalogProblem::MissingField { field: name, kind },
        )
    })
}

fn validate_service(ctx: &Ctx<'_>, raw: RawService) -> Result<Service, CatalogError> {
    let name = ServiceName::new(raw.name.get_ref())
        .map_err(|e| ctx.err(raw.name.span(), CatalogProblem::Name(e)))?;
    let kind: &'static str = match raw.kind.get_ref().as_str() {
        "http" => "http",
        "ssh" => "ssh",
        "tcp" => "tcp",
        other => {
            return Err(ctx.err(
                raw.kind.span(),
                CatalogProblem::UnknownKind {
                    found: other.chars().take(32).collect(),
                },
            ));
        }
    };
    let description = text(ctx, &raw.description, "description", MAX_DESCRIPTION_CHARS)?;

    let upstream_field = require(ctx, &raw.upstream, "upstream", kind, &raw.name)?;
    let (addr, tls) = address(ctx, upstream_field, "upstream", kind == "http")?;
    let tls = tls::upstream_tls(ctx, &raw, upstream_field, tls)?;

    let max_ttl = duration(ctx, &raw.max_ttl, "max_ttl")?;
    if max_ttl.as_secs() > MAX_TTL_SECS {
        return Err(ctx.err(
            raw.max_ttl.span(),
            CatalogProblem::MaxTtlTooLong { found: max_ttl },
        ));
    }
    let default_ttl = duration(ctx, &raw.default_ttl, "default_ttl")?;
    if default_ttl > max_ttl {
        return Err(ctx.err(
            raw.default_ttl.span(),
            CatalogProblem::TtlAboveMax {
                field: "default_ttl",
                ttl: default_ttl,
                max: max_ttl,
            },
        ));
    }

    let approvals = match &raw.approvals {
        None => 0,
        Some(a) => u8::try_from(*a.get_ref())
            .ok()
            .filter(|n| *n <= MAX_APPROVALS)
            .ok_or_else(|| {
                ctx.err(
                    a.span(),
                    CatalogProblem::Approvals {
                        found: *a.get_ref(),
                    },
                )
            })?,
    };
    let bypass = raw.emergency_bypass.as_ref().is_some_and(|b| *b.get_ref());
    let emergency = match (bypass, &raw.emergency_ttl) {
        (false, Some(ttl)) => {
            return Err(ctx.err(ttl.span(), CatalogProblem::EmergencyTtlWithoutBypass));
        }
        (false, None) => None,
        (true, ttl_field) => {
            if approvals == 0 {
                let span = raw
                    .emergency_bypass
                    .as_ref()
                    .map_or_else(|| raw.name.span(), Spanned::span);
                return Err(ctx.err(span, CatalogProblem::BypassWithoutApprovals));
            }
            let ttl = match ttl_field {
                Some(field) => {
                    let ttl = duration(ctx, field, "emergency_ttl")?;
                    if ttl > max_ttl {
                        return Err(ctx.err(
                            field.span(),
                            CatalogProblem::TtlAboveMax {
                                field: "emergency_ttl",
                                ttl,
                                max: max_ttl,
                            },
                        ));
                    }
                    ttl
                }
                None => HumanDuration::from_secs(DEFAULT_EMERGENCY_TTL_SECS.min(max_ttl.as_secs()))
                    .unwrap_or(max_ttl),
            };
            Some(EmergencyBypass { ttl })
        }
    };

    reject_foreign_fields(ctx, &raw, kind)?;
    let kind = match kind {
        "http" => http_kind(ctx, &raw)?,
        "ssh" => ssh_kind(ctx, &raw)?,
        _ => tcp_kind(ctx, &raw)?,
    };
    Ok(Service {
        name,
        description,
        upstream: Upstream { addr, tls },
        max_ttl,
        default_ttl,
        approvals,
        emergency,
        kind,
    })
}

/// Headers that must never be injected besides the hop-by-hop ones: framing and routing.
const FRAMING_HEADERS: [&str; 2] = ["host", "content-length"];

fn http_kind(ctx: &Ctx<'_>, raw: &RawService) -> Result<ServiceKind, CatalogError> {
    const KIND: &str = "http";

    let health = require(ctx, &raw.health, "health", KIND, &raw.name)?.get_ref();
    let path = health.path.get_ref();
    if !path.starts_with('/')
        || path.len() > 256
        || path.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ctx.err(
            health.path.span(),
            CatalogProblem::Health {
                field: "path",
                reason: "must start with '/', have no spaces or control characters, at most 256 bytes",
            },
        ));
    }
    let status = u16::try_from(*health.expect_status.get_ref())
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| {
            ctx.err(
                health.expect_status.span(),
                CatalogProblem::Health {
                    field: "expect_status",
                    reason: "must be an HTTP status 100-599",
                },
            )
        })?;

    let inject = match &raw.inject {
        None => None,
        Some(spanned) => Some(injection(ctx, spanned.get_ref())?),
    };
    let auth = match &health.auth {
        Some(a) if *a.get_ref() && inject.is_none() => {
            return Err(ctx.err(
                a.span(),
                CatalogProblem::Health {
                    field: "auth",
                    reason: "a probe can only carry the credential of a service with inject",
                },
            ));
        }
        Some(a) => *a.get_ref(),
        None => false,
    };
    Ok(ServiceKind::Http {
        health: HttpHealth {
            path: path.clone(),
            expect_status: status,
            auth,
        },
        inject,
    })
}

fn injection(ctx: &Ctx<'_>, raw: &RawInject) -> Result<Injection, CatalogError> {
    let header = raw.header.get_ref();
    let header_err = |reason| {
        ctx.err(
            raw.header.span(),
            CatalogProblem::InjectHeader {
                header: header.chars().take(64).collect(),
                reason,
            },
        )
    };
    // RFC 9110 token characters.
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if header.is_empty() || header.len() > 64 || !header.chars().all(tchar) {
        return Err(header_err("must be 1-64 HTTP token characters"));
    }
    if crate::headers::is_hop_by_hop(header)
        || FRAMING_HEADERS.contains(&header.to_ascii_lowercase().as_str())
    {
        return Err(header_err(
            "hop-by-hop, framing and routing headers cannot be injected",
        ));
    }
    let secret = SecretName::new(raw.secret.get_ref())
        .map_err(|e| ctx.err(raw.secret.span(), CatalogProblem::InjectSecret(e)))?;
    if secret.is_reserved() {
        return Err(ctx.err(
            raw.secret.span(),
            CatalogProblem::ReservedSecret(secret.to_string()),
        ));
    }
    let format = raw.format.get_ref();
    if format.matches("{}").count() != 1
        || format.len() > 256
        || format.chars().any(char::is_control)
    {
        return Err(ctx.err(raw.format.span(), CatalogProblem::InjectFormat));
    }
    Ok(Injection {
        header: header.clone(),
        secret,
        format: format.clone(),
    })
}

fn ssh_kind(ctx: &Ctx<'_>, raw: &RawService) -> Result<ServiceKind, CatalogError> {
    const KIND: &str = "ssh";

    let principals_field = require(ctx, &raw.principals, "principals", KIND, &raw.name)?;
    let list = principals_field.get_ref();
    if list.is_empty() || list.len() > 16 {
        return Err(ctx.err(principals_field.span(), CatalogProblem::PrincipalCount));
    }
    let mut principals = Vec::with_capacity(list.len());
    for p in list {
        let value = p.get_ref();
        let ok = !value.is_empty()
            && value.len() <= 32
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(ctx.err(
                p.span(),
                CatalogProblem::Principal {
                    value: value.chars().take(40).collect(),
                },
            ));
        }
        principals.push(value.clone());
    }

    let host_key_field = require(ctx, &raw.host_key, "host_key", KIND, &raw.name)?;
    let host_key_text = host_key_field.get_ref().trim();
    let host_key_err =
        |reason: String| ctx.err(host_key_field.span(), CatalogProblem::HostKey { reason });
    if host_key_text.len() > 1024 {
        return Err(host_key_err("longer than 1024 characters".to_owned()));
    }
    let parsed =
        ssh_key::PublicKey::from_openssh(host_key_text).map_err(|e| host_key_err(e.to_string()))?;
    // Store the canonical form without the comment.
    let host_key = parsed
        .to_openssh()
        .map_err(|e| host_key_err(e.to_string()))?;

    Ok(ServiceKind::Ssh {
        principals,
        host_key: host_key.split(' ').take(2).collect::<Vec<_>>().join(" "),
        permit_port_forwarding: raw
            .permit_port_forwarding
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
        permit_agent_forwarding: raw
            .permit_agent_forwarding
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
        share_principals: raw.share_principals.as_ref().is_some_and(|b| *b.get_ref()),
        record: raw.record.as_ref().is_some_and(|b| *b.get_ref()),
    })
}

fn tcp_kind(ctx: &Ctx<'_>, raw: &RawService) -> Result<ServiceKind, CatalogError> {
    const KIND: &str = "tcp";
    let probe_field = require(ctx, &raw.probe, "probe", KIND, &raw.name)?;
    let probe = match probe_field.get_ref().as_str() {
        "connect" => TcpProbe::Connect,
        "banner" => TcpProbe::Banner,
        "postgres" => TcpProbe::Postgres,
        "redis" => TcpProbe::Redis,
        other => {
            return Err(ctx.err(
                probe_field.span(),
                CatalogProblem::UnknownProbe {
                    found: other.chars().take(32).collect(),
                },
            ));
        }
    };
    Ok(ServiceKind::Tcp { probe })
}
