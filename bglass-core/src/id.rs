//! Validated names: services, responders, proxies, vault secrets, and for drills the
//! scenarios, drills and production dependencies.
//!
//! Names travel in URLs, log lines, certificates and file names, so each has a narrow
//! alphabet and a length bound, checked once when the name is made.

use std::fmt;

/// Why a string is not a valid name of some kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The string is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which kind of name.
        what: &'static str,
    },
    /// The string is longer than allowed.
    #[error("{what} {value:?} is too long: {length} characters, limit {limit}")]
    TooLong {
        /// Which kind of name.
        what: &'static str,
        /// The rejected value (truncated for display).
        value: String,
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The string has a character outside the alphabet, or starts badly.
    #[error("{what} {value:?} is invalid: use {rule}")]
    Invalid {
        /// Which kind of name.
        what: &'static str,
        /// The rejected value (truncated for display).
        value: String,
        /// The alphabet, in words.
        rule: &'static str,
    },
}

fn shorten(value: &str) -> String {
    value.chars().take(40).collect()
}

fn check(
    value: &str,
    what: &'static str,
    limit: usize,
    rule: &'static str,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    let length = value.chars().count();
    if length == 0 {
        return Err(NameError::Empty { what });
    }
    if length > limit {
        return Err(NameError::TooLong {
            what,
            value: shorten(value),
            length,
            limit,
        });
    }
    let mut chars = value.chars();
    let ok = chars.next().is_some_and(&first) && chars.all(&rest);
    if ok {
        Ok(())
    } else {
        Err(NameError::Invalid {
            what,
            value: shorten(value),
            rule,
        })
    }
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Display, FromStr and validating Deserialize for a string newtype with a `new` constructor.
macro_rules! string_newtype_impls {
    ($name:ident, $err:ty) => {
        impl $name {
            /// The value as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, $err> {
                Self::new(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $limit:literal, $rule:literal, $first:expr, $rest:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted name, in characters.
            pub const MAX_LEN: usize = $limit;

            /// Validates and wraps a name.
            pub fn new(value: &str) -> Result<Self, NameError> {
                check(value, $what, $limit, $rule, $first, $rest)?;
                Ok(Self(value.to_owned()))
            }

        }

        string_newtype_impls!($name, NameError);
    };
}

name_type!(
    /// A catalog service name: `[a-z0-9][a-z0-9-]{0,31}`.
    ServiceName,
    "service name",
    32,
    "1-32 of a-z, 0-9 and '-', starting with a letter or digit",
    lower_alnum,
    |c| lower_alnum(c) || c == '-'
);

name_type!(
    /// A responder id from the roster: `[a-z0-9][a-z0-9._-]{0,63}`.
    ResponderId,
    "responder id",
    64,
    "1-64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
    lower_alnum,
    |c| lower_alnum(c) || matches!(c, '.' | '_' | '-')
);

name_type!(
    /// A proxy id, which names the proxy in grants and in its log's checkpoints.
    ProxyId,
    "proxy id",
    63,
    "1-63 of a-z, 0-9, '.' and '-', starting with a letter or digit",
    lower_alnum,
    |c| lower_alnum(c) || matches!(c, '.' | '-')
);

name_type!(
    /// The name of a secret in a proxy's vault: `[a-z0-9_][a-z0-9_.-]{0,63}`.
    SecretName,
    "secret name",
    64,
    "1-64 of a-z, 0-9, '_', '.' and '-', starting with a letter, digit or '_'",
    |c| lower_alnum(c) || c == '_',
    |c| lower_alnum(c) || matches!(c, '_' | '.' | '-')
);

name_type!(
    /// A drill scenario's name (`name = …` in a scenario file): `[a-z0-9][a-z0-9-]{0,47}`,
    /// short enough that a drill id made from it and a timestamp fits [`DrillId`].
    ScenarioName,
    "scenario name",
    48,
    "1-48 of a-z, 0-9 and '-', starting with a letter or digit",
    lower_alnum,
    |c| lower_alnum(c) || c == '-'
);

name_type!(
    /// A drill's id, which tags the drill's audit events and grants:
    /// `[a-z0-9][a-z0-9-]{0,63}` (`bglass drill` makes it `<scenario>-<YYYYMMDDhhmmss>`).
    DrillId,
    "drill id",
    64,
    "1-64 of a-z, 0-9 and '-', starting with a letter or digit",
    lower_alnum,
    |c| lower_alnum(c) || c == '-'
);

name_type!(
    /// A declared production dependency (`zero-trust`, `idp`, `dns`), as a production file
    /// declares it and a scenario's `down` names it: `[a-z0-9][a-z0-9-]{0,47}`.
    DependencyName,
    "dependency name",
    48,
    "1-48 of a-z, 0-9 and '-', starting with a letter or digit",
    lower_alnum,
    |c| lower_alnum(c) || c == '-'
);

/// A DNS host name: dot-separated labels of 1-63 of a-z, 0-9 and '-', none starting or
/// ending with '-', at most 253 characters, the last label not all digits (an IP address is
/// written as an IP literal, never as a name). Catalog server names and the proxies' host
/// names in the CLI's config are checked by this one rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DnsName(String);

impl DnsName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 253;
    /// The rule, in words.
    pub const RULE: &'static str = "dot-separated labels of 1-63 of a-z, 0-9 and '-', not starting or ending with '-', the last not all digits (write an IP address as an IP literal)";

    /// Validates and wraps a DNS name.
    pub fn new(value: &str) -> Result<Self, NameError> {
        const WHAT: &str = "DNS name";
        let length = value.chars().count();
        if length == 0 {
            return Err(NameError::Empty { what: WHAT });
        }
        if length > Self::MAX_LEN {
            return Err(NameError::TooLong {
                what: WHAT,
                value: shorten(value),
                length,
                limit: Self::MAX_LEN,
            });
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let last_numeric = value
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()));
        if value.split('.').all(label_ok) && !last_numeric {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError::Invalid {
                what: WHAT,
                value: shorten(value),
                rule: Self::RULE,
            })
        }
    }
}

string_newtype_impls!(DnsName, NameError);

/// Vault names with this prefix hold the proxy's own keys: never upstream credentials.
pub const RESERVED_SECRET_PREFIX: &str = "bglass.";

impl SecretName {
    /// Whether this name holds one of the proxy's own keys (`bglass.…`).
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(RESERVED_SECRET_PREFIX)
    }
}

/// Why a string is not a valid request or grant id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: expected {prefix} followed by 16 lowercase hex digits")]
pub struct TokenIdError {
    what: &'static str,
    prefix: &'static str,
    value: String,
}

/// The system random number generator failed while making an id or nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| RandomError)?;
    Ok(out)
}

macro_rules! token_id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id (64 bits from the system's generator).
            pub fn random() -> Result<Self, RandomError> {
                let bytes: [u8; 8] = random_bytes()?;
                Ok(Self(format!("{}{}", $prefix, crate::keys::hex_lower(&bytes))))
            }

            /// Validates an id.
            pub fn new(value: &str) -> Result<Self, TokenIdError> {
                let ok = value.strip_prefix($prefix).is_some_and(|hex| {
                    hex.len() == 16
                        && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                });
                if ok {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(TokenIdError {
                        what: $what,
                        prefix: $prefix,
                        value: shorten(value),
                    })
                }
            }

        }

        string_newtype_impls!($name, TokenIdError);
    };
}

token_id_type!(
    /// The id a proxy gives an access request: `r-` and 16 hex digits.
    RequestId,
    "request id",
    "r-"
);

token_id_type!(
    /// The id a proxy gives a grant: `g-` and 16 hex digits.
    GrantId,
    "grant id",
    "g-"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert!(ServiceName::new("grafana").is_ok());
        assert!(ServiceName::new("kubernetes-api").is_ok());
        assert!(ServiceName::new("0day").is_ok());
        assert!(matches!(ServiceName::new(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            ServiceName::new("-x"),
            Err(NameError::Invalid { .. })
        ));
        assert!(matches!(
            ServiceName::new("Grafana"),
            Err(NameError::Invalid { .. })
        ));
        assert!(matches!(
            ServiceName::new("a/b"),
            Err(NameError::Invalid { .. })
        ));
        assert!(matches!(
            ServiceName::new(&"a".repeat(33)),
            Err(NameError::TooLong { length: 33, .. })
        ));
    }

    #[test]
    fn responder_ids() {
        assert!(ResponderId::new("alice.smith_2").is_ok());
        assert!(ResponderId::new("alice smith").is_err());
        assert!(ResponderId::new(".alice").is_err());
    }

    #[test]
    fn drill_names_start_with_a_letter_or_digit() {
        assert!(ScenarioName::new("zero-trust-outage").is_ok());
        assert!(ScenarioName::new(&"a".repeat(48)).is_ok());
        assert!(ScenarioName::new(&"a".repeat(49)).is_err());
        assert!(DrillId::new(&format!("{}-20261122031500", "a".repeat(48))).is_ok());
        assert!(DrillId::new(&"a".repeat(65)).is_err());
        for bad in ["-x", "", "A", "a_b", "a.b", "a b"] {
            assert!(ScenarioName::new(bad).is_err(), "{bad:?}");
            assert!(DrillId::new(bad).is_err(), "{bad:?}");
            assert!(DependencyName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dns_names() {
        for good in [
            "kubernetes.internal",
            "k8s-api",
            "a.b-c.d9",
            "proxy-a.example",
        ] {
            assert!(DnsName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Proxy.example",
            "proxy..example",
            "-proxy.example",
            "proxy-.example",
            "proxy.example.",
            "10.0.0.5",
            "a_b.example",
        ] {
            assert!(DnsName::new(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            DnsName::new(&"a".repeat(254)),
            Err(NameError::TooLong { .. })
        ));
        assert!(DnsName::new(&"a".repeat(64)).is_err());
    }

    #[test]
    fn token_ids() {
        let g = GrantId::random().unwrap();
        assert_eq!(GrantId::new(g.as_str()).unwrap(), g);
        assert!(GrantId::new("g-0123456789abcdef").is_ok());
        assert!(GrantId::new("r-0123456789abcdef").is_err());
        assert!(GrantId::new("g-0123456789ABCDEF").is_err());
        assert!(GrantId::new("g-0123").is_err());
        assert!(RequestId::new("r-0123456789abcdef").is_ok());
    }

    #[test]
    fn deserialize_validates() {
        let ok: Result<ServiceName, _> = serde_json::from_str("\"etcd\"");
        assert!(ok.is_ok());
        let bad: Result<ServiceName, _> = serde_json::from_str("\"ETCD\"");
        assert!(bad.is_err());
    }
}
