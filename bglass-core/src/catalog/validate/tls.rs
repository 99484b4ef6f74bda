//! An `https://` upstream's trust: `upstream_pin` (the SHA-256 of the server's certificate,
//! or of a CA certificate the server sends) and `upstream_server_name` (the name the
//! certificate must carry when a CA is pinned, sent as SNI and Host). Both are required for
//! https and refused for plain upstreams: nothing about an https upstream is left to a
//! system trust store or to DNS.

use std::net::IpAddr;

use toml::Spanned;

use super::{Ctx, RawService};
use crate::catalog::{CatalogError, CatalogProblem, CertPin, UpstreamTls};
use crate::id::{DnsName, NameError};

/// The TLS settings of an upstream whose address was written with (`https`) or without a
/// scheme; `upstream` locates errors about missing fields.
pub(super) fn upstream_tls(
    ctx: &Ctx<'_>,
    raw: &RawService,
    upstream: &Spanned<String>,
    https: bool,
) -> Result<Option<UpstreamTls>, CatalogError> {
    if !https {
        for (field, span) in [
            ("upstream_pin", raw.upstream_pin.as_ref().map(Spanned::span)),
            (
                "upstream_server_name",
                raw.upstream_server_name.as_ref().map(Spanned::span),
            ),
        ] {
            if let Some(span) = span {
                return Err(ctx.err(
                    span,
                    CatalogProblem::FieldNotForKind {
                        field,
                        kind: "plain (non-https) upstream",
                    },
                ));
            }
        }
        return Ok(None);
    }
    let missing = |field| {
        ctx.err(
            upstream.span(),
            CatalogProblem::MissingField {
                field,
                kind: "https upstream",
            },
        )
    };
    let pin_field = raw
        .upstream_pin
        .as_ref()
        .ok_or_else(|| missing("upstream_pin"))?;
    let pin = pin_field.get_ref().parse::<CertPin>().map_err(|error| {
        ctx.err(
            pin_field.span(),
            CatalogProblem::BadPin {
                field: "upstream_pin",
                error,
            },
        )
    })?;
    let name_field = raw
        .upstream_server_name
        .as_ref()
        .ok_or_else(|| missing("upstream_server_name"))?;
    let server_name = server_name(name_field.get_ref()).map_err(|reason| {
        ctx.err(
            name_field.span(),
            CatalogProblem::ServerName {
                value: name_field.get_ref().chars().take(64).collect(),
                reason,
            },
        )
    })?;
    Ok(Some(UpstreamTls { pin, server_name }))
}

/// A DNS name (the core's [`DnsName`] rule) or an IP literal.
fn server_name(name: &str) -> Result<String, &'static str> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    match DnsName::new(name) {
        Ok(name) => Ok(name.to_string()),
        Err(NameError::Invalid { rule, .. }) => Err(rule),
        Err(_) => Err("must be 1-253 characters"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::server_name;
    use crate::catalog::{Catalog, CatalogProblem};

    #[test]
    fn server_names_are_dns_names_or_ip_literals() {
        for good in [
            "kubernetes.internal",
            "k8s-api",
            "a.b-c.d9",
            "10.0.0.5",
            "::1",
        ] {
            assert!(server_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Kubernetes.internal",
            "kubernetes..internal",
            "-k8s.internal",
            "k8s-.internal",
            "k8s.internal.",
            "k8s_api.internal",
            "*.internal",
            "k8s internal",
            "10.0.0",
            "[::1]",
            "https://k8s.internal",
        ] {
            assert!(server_name(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(server_name(&"a".repeat(64)).is_err());
        assert!(server_name(&["a"; 128].join(".")).is_err());
    }

    fn service(upstream: &str, extra: &str) -> Result<Catalog, crate::catalog::CatalogError> {
        let text = format!(
            "version = 1\n[[service]]\nname = \"k8s\"\nkind = \"http\"\ndescription = \"d\"\nupstream = \"{upstream}\"\nmax_ttl = \"1h\"\ndefault_ttl = \"30m\"\nhealth = {{ path = \"/healthz\", expect_status = 200 }}\n{extra}"
        );
        Catalog::from_bytes(Path::new("c.toml"), text.into_bytes())
    }

    #[test]
    fn https_upstreams_need_a_pin_and_a_server_name_and_plain_ones_take_neither() {
        let pin = format!("sha256:{}", "ab".repeat(32));
        let catalog = service(
            "https://127.0.0.1:6443",
            &format!("upstream_pin = \"{pin}\"\nupstream_server_name = \"kubernetes.internal\"\n"),
        )
        .unwrap();
        let upstream = &catalog.services()[0].upstream;
        let tls = upstream.tls.as_ref().unwrap();
        assert_eq!(tls.pin.to_string(), pin);
        assert_eq!(tls.server_name, "kubernetes.internal");
        assert_eq!(upstream.to_string(), "https://127.0.0.1:6443");

        let missing = |extra: &str, field: &str| {
            let err = service("https://127.0.0.1:6443", extra).unwrap_err();
            assert!(
                matches!(&err.problem, CatalogProblem::MissingField { field: f, .. } if *f == field),
                "{err}"
            );
        };
        missing(
            "upstream_server_name = \"kubernetes.internal\"\n",
            "upstream_pin",
        );
        missing(
            &format!("upstream_pin = \"{pin}\"\n"),
            "upstream_server_name",
        );
        let err = service(
            "https://127.0.0.1:6443",
            &format!("upstream_pin = \"{pin}\"\nupstream_server_name = \"Kube\"\n"),
        )
        .unwrap_err();
        assert!(
            matches!(err.problem, CatalogProblem::ServerName { .. }),
            "{err}"
        );
        assert_eq!(err.position.unwrap().line, 11, "{err}");
        for extra in [
            format!("upstream_pin = \"{pin}\"\n"),
            "upstream_server_name = \"kubernetes.internal\"\n".to_owned(),
        ] {
            let err = service("127.0.0.1:8080", &extra).unwrap_err();
            assert!(
                matches!(err.problem, CatalogProblem::FieldNotForKind { .. }),
                "{err}"
            );
        }
    }
}
