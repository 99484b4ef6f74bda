//! The `[ssh]` section of `proxy.toml`: what binds the SSH certificates this proxy signs to
//! the access path. `source_addresses` becomes every certificate's `source-address`
//! critical option, so that a certificate copied off the responder's machine is refused
//! by sshd unless the connection comes from the proxy; `certificate_ttl` is how long a
//! certificate lives (never past its grant), so that one outlives a revocation by minutes
//! at most.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use bglass_core::duration::HumanDuration;

/// Most entries in `source_addresses`.
pub const MAX_SOURCE_ADDRESSES: usize = 16;
/// Certificate lifetime when `proxy.toml` sets none.
pub const DEFAULT_CERTIFICATE_TTL_SECS: u64 = 5 * 60;
/// Shortest `certificate_ttl` accepted.
pub const MIN_CERTIFICATE_TTL_SECS: u64 = 10;
/// Longest `certificate_ttl` accepted.
pub const MAX_CERTIFICATE_TTL_SECS: u64 = 60 * 60;
/// How far back a certificate's validity starts, for clock skew between proxy and host.
pub const BACKDATE_SECS: u64 = 60;

/// One address block (IP literal and prefix length), host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceNet {
    addr: IpAddr,
    prefix: u8,
}

impl SourceNet {
    /// The block of exactly one address.
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// Parses `IP` or `IP/PREFIX` (IP literals only; no host bits set; not `/0`).
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| "must be an IP literal, optionally with /prefix (no host names)")?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| {
                    (1..=max).contains(n)
                        && !p.starts_with('0')
                        && p.bytes().all(|b| b.is_ascii_digit())
                })
                .ok_or("the prefix length must be 1-32 for IPv4, 1-128 for IPv6")?,
        };
        if addr.is_unspecified() || addr.is_multicast() {
            return Err("unspecified and multicast addresses are never a connection's source");
        }
        let net = Self { addr, prefix };
        if net.masked() != addr {
            return Err("host bits are set below the prefix; write the block's first address");
        }
        Ok(net)
    }

    fn masked(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u32::from(a) & mask).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u128::from(a) & mask).to_be_bytes())
            }
        }
    }
}

impl std::fmt::Display for SourceNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The validated `[ssh]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshSettings {
    /// Where this proxy's connections to SSH hosts come from (the `source-address` option).
    pub source_addresses: Vec<SourceNet>,
    /// How long a certificate lives (capped by its grant's end).
    pub certificate_ttl: HumanDuration,
}

impl SshSettings {
    /// The `source-address` critical option's value: the blocks, comma-separated.
    pub fn source_address_option(&self) -> String {
        self.source_addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A certificate's validity (valid after, valid before), Unix seconds, issued at `now`
    /// under a grant that ends at `grant_exp`: backdated for clock skew, and ending after
    /// `certificate_ttl` or with the grant, whichever is first.
    pub fn window(&self, now: u64, grant_exp: u64) -> (u64, u64) {
        let end = now
            .saturating_add(self.certificate_ttl.as_secs())
            .min(grant_exp);
        (now.saturating_sub(BACKDATE_SECS), end)
    }
}

/// `[ssh]` as written.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSsh {
    source_addresses: Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
    certificate_ttl: Option<toml::Spanned<String>>,
}

/// The rule `[ssh]` broke.
#[derive(Debug, thiserror::Error)]
pub enum SshSettingsProblem {
    /// An entry of `source_addresses` is not an address block.
    #[error("ssh.source_addresses: {value:?} {reason}")]
    SourceAddress {
        /// The entry (truncated).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// `source_addresses` is empty or too long.
    #[error("ssh.source_addresses must list 1-{MAX_SOURCE_ADDRESSES} address blocks")]
    SourceCount,
    /// No `source_addresses` and a listen address that names no one address.
    #[error(
        "listen is {0}, which is no connection's source: set [ssh] source_addresses to the addresses this proxy connects to SSH hosts from"
    )]
    NoDefaultSource(IpAddr),
    /// `certificate_ttl` does not parse.
    #[error("ssh.certificate_ttl: {0}")]
    Duration(bglass_core::duration::DurationError),
    /// `certificate_ttl` is out of range.
    #[error(
        "ssh.certificate_ttl must be between {MIN_CERTIFICATE_TTL_SECS}s and {}m",
        MAX_CERTIFICATE_TTL_SECS / 60
    )]
    TtlRange,
}

/// Validates `[ssh]`; `listen` gives the default source address. Errors carry the span of
/// the offending value (`None`: the listen address).
pub(crate) fn validate(
    raw: Option<RawSsh>,
    listen: SocketAddr,
) -> Result<SshSettings, (Option<Range<usize>>, SshSettingsProblem)> {
    let raw = raw.unwrap_or_default();
    let source_addresses = match &raw.source_addresses {
        None => {
            if listen.ip().is_unspecified() {
                return Err((None, SshSettingsProblem::NoDefaultSource(listen.ip())));
            }
            vec![SourceNet::host(listen.ip())]
        }
        Some(list) => {
            if list.get_ref().is_empty() || list.get_ref().len() > MAX_SOURCE_ADDRESSES {
                return Err((Some(list.span()), SshSettingsProblem::SourceCount));
            }
            let mut nets = Vec::with_capacity(list.get_ref().len());
            for entry in list.get_ref() {
                let net = SourceNet::parse(entry.get_ref()).map_err(|reason| {
                    (
                        Some(entry.span()),
                        SshSettingsProblem::SourceAddress {
                            value: entry.get_ref().chars().take(64).collect(),
                            reason,
                        },
                    )
                })?;
                if !nets.contains(&net) {
                    nets.push(net);
                }
            }
            nets
        }
    };
    let certificate_ttl = match &raw.certificate_ttl {
        None => HumanDuration::from_secs(DEFAULT_CERTIFICATE_TTL_SECS)
            .ok_or((None, SshSettingsProblem::TtlRange))?,
        Some(text) => {
            let ttl: HumanDuration = text
                .get_ref()
                .parse()
                .map_err(|e| (Some(text.span()), SshSettingsProblem::Duration(e)))?;
            if !(MIN_CERTIFICATE_TTL_SECS..=MAX_CERTIFICATE_TTL_SECS).contains(&ttl.as_secs()) {
                return Err((Some(text.span()), SshSettingsProblem::TtlRange));
            }
            ttl
        }
    };
    Ok(SshSettings {
        source_addresses,
        certificate_ttl,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn address_blocks_parse_strictly_and_print_canonically() {
        assert_eq!(
            SourceNet::parse("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(
            SourceNet::parse("10.20.0.0/16").unwrap().to_string(),
            "10.20.0.0/16"
        );
        assert_eq!(
            SourceNet::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(SourceNet::parse("::1").unwrap().to_string(), "::1/128");
        for bad in [
            "proxy.internal",
            "10.20.0.1/16",
            "10.0.0.0/0",
            "10.0.0.0/33",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "0.0.0.0",
            "224.0.0.1",
            "::",
            "1.2.3.4 ",
            "",
        ] {
            assert!(SourceNet::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_window_is_backdated_and_ends_with_the_ttl_or_the_grant() {
        let settings = SshSettings {
            source_addresses: vec![SourceNet::parse("127.0.0.1").unwrap()],
            certificate_ttl: HumanDuration::from_secs(300).unwrap(),
        };
        assert_eq!(settings.window(10_000, 20_000), (9_940, 10_300));
        assert_eq!(settings.window(10_000, 10_100), (9_940, 10_100));
        assert_eq!(settings.source_address_option(), "127.0.0.1/32");
    }

    #[test]
    fn the_generated_proxy_toml_documents_a_section_that_loads_and_errors_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let id = bglass_core::id::ProxyId::new("proxy-a").unwrap();
        let listen: SocketAddr = "127.0.0.3:8443".parse().unwrap();
        let made = crate::init::init(dir.path(), &id, listen, None).unwrap();
        let text = std::fs::read_to_string(&made.config).unwrap();
        let loaded = crate::config::ProxyConfig::load(&made.config).unwrap();
        assert_eq!(loaded.ssh.source_address_option(), "127.0.0.3/32");
        assert_eq!(loaded.ssh.certificate_ttl.as_secs(), 300);
        // The commented example, uncommented, is valid and says the same.
        let uncommented = text
            .replace("# [ssh]", "[ssh]")
            .replace("# source_addresses", "source_addresses")
            .replace("# certificate_ttl = \"5m\"", "certificate_ttl = \"5m\"");
        assert!(uncommented.contains("\n[ssh]\nsource_addresses = [\"127.0.0.3/32\"]\n"));
        std::fs::write(&made.config, &uncommented).unwrap();
        let loaded = crate::config::ProxyConfig::load(&made.config).unwrap();
        assert_eq!(loaded.ssh.source_address_option(), "127.0.0.3/32");
        assert_eq!(loaded.ssh.certificate_ttl.as_secs(), 300);

        let with = |section: &str| {
            std::fs::write(&made.config, format!("{text}\n{section}")).unwrap();
            crate::config::ProxyConfig::load(&made.config)
        };
        let line = text.lines().count() + 3;
        let ok = with("[ssh]\nsource_addresses = [\"10.1.0.0/16\", \"2001:db8::7\"]\ncertificate_ttl = \"2m\"\n").unwrap();
        assert_eq!(
            ok.ssh.source_address_option(),
            "10.1.0.0/16,2001:db8::7/128"
        );
        assert_eq!(ok.ssh.certificate_ttl.as_secs(), 120);
        let err = with("[ssh]\nsource_addresses = [\"proxy.internal\"]\n").unwrap_err();
        assert_eq!(
            err.position.map(|p| (p.line, p.column)),
            Some((line, 21)),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("\"proxy.internal\" must be an IP literal"),
            "{err}"
        );
        let err = with("[ssh]\nsource_addresses = []\n").unwrap_err();
        assert!(err.to_string().contains("1-16 address blocks"), "{err}");
        let many: Vec<String> = (1..=17).map(|i| format!("\"10.0.0.{i}\"")).collect();
        let err = with(&format!("[ssh]\nsource_addresses = [{}]\n", many.join(","))).unwrap_err();
        assert!(err.to_string().contains("1-16 address blocks"), "{err}");
        let err = with("[ssh]\ncertificate_ttl = \"2h\"\n").unwrap_err();
        assert!(err.to_string().contains("between 10s and 60m"), "{err}");
        let err = with("[ssh]\ncertificate_ttl = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("ssh.certificate_ttl:"), "{err}");
        let err = with("[ssh]\nprincipals = []\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn the_default_source_is_the_listen_address_and_unspecified_needs_a_list() {
        let listen: SocketAddr = "192.0.2.7:8443".parse().unwrap();
        let s = validate(None, listen).unwrap();
        assert_eq!(s.source_address_option(), "192.0.2.7/32");
        assert_eq!(s.certificate_ttl.as_secs(), DEFAULT_CERTIFICATE_TTL_SECS);
        let any: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        assert!(matches!(
            validate(None, any),
            Err((None, SshSettingsProblem::NoDefaultSource(_)))
        ));
    }
}
