//! Principals shared between SSH services. Every SSH host trusts the same proxy SSH CA, so
//! a certificate issued for one service logs in to any host that accepts one of its
//! principals: a grant for a low-risk bastion would open a database host that maps the same
//! principal. Two SSH services may therefore list a common principal only when both say so
//! with `share_principals = true` (the same host reached under two names, say).

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::{Ctx, RawService};
use crate::catalog::{CatalogError, CatalogProblem};
use crate::id::ServiceName;

/// The principals one service lists, where, and whether it opted in to sharing.
pub(super) struct Listed {
    principals: Vec<(String, Range<usize>)>,
    share: bool,
}

/// What a raw service lists (nothing for services without principals).
pub(super) fn listed(raw: &RawService) -> Listed {
    Listed {
        principals: raw
            .principals
            .as_ref()
            .map(|list| {
                list.get_ref()
                    .iter()
                    .map(|p| (p.get_ref().clone(), p.span()))
                    .collect()
            })
            .unwrap_or_default(),
        share: raw.share_principals.as_ref().is_some_and(|b| *b.get_ref()),
    }
}

/// The first service listing each principal: its name, line, and opt-in.
#[derive(Default)]
pub(super) struct Owners {
    first: HashMap<String, (ServiceName, usize, bool)>,
}

impl Owners {
    /// Records `service`'s principals, refusing one already listed by another service
    /// unless both opted in.
    pub(super) fn claim(
        &mut self,
        ctx: &Ctx<'_>,
        service: &ServiceName,
        listed: Listed,
        line: usize,
    ) -> Result<(), CatalogError> {
        for (principal, span) in listed.principals {
            match self.first.get(&principal) {
                Some((other, other_line, other_share)) if other != service => {
                    if !(listed.share && *other_share) {
                        return Err(ctx.err(
                            span,
                            CatalogProblem::SharedPrincipal {
                                principal,
                                other: other.to_string(),
                                other_line: *other_line,
                            },
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    self.first
                        .insert(principal, (service.clone(), line, listed.share));
                }
            }
        }
        Ok(())
    }
}

/// The span of `share_principals`, for services that may not take it.
pub(super) fn share_span(raw: &RawService) -> Option<Range<usize>> {
    raw.share_principals.as_ref().map(Spanned::span)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use crate::catalog::{Catalog, CatalogProblem, ServiceKind};

    fn ssh(name: &str, principals: &str, share: Option<bool>) -> String {
        let share = share.map_or(String::new(), |s| format!("share_principals = {s}\n"));
        format!(
            "[[service]]\nname = \"{name}\"\nkind = \"ssh\"\ndescription = \"d\"\nupstream = \"127.0.0.1:22\"\nmax_ttl = \"1h\"\ndefault_ttl = \"30m\"\nprincipals = {principals}\nhost_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0/BI1KeVrrphI4X6+F7i7ANSpCOIVU1XEA7twXn56K\"\n{share}\n"
        )
    }

    fn parse(services: &[String]) -> Result<Catalog, crate::catalog::CatalogError> {
        let text = format!("version = 1\n\n{}", services.concat());
        Catalog::from_bytes(Path::new("c.toml"), text.into_bytes())
    }

    #[test]
    fn a_principal_is_shared_only_when_every_service_listing_it_opts_in() {
        let a = |share| ssh("a", "[\"ops\", \"x\"]", share);
        let b = |share| ssh("b", "[\"y\", \"ops\"]", share);
        for (sa, sb) in [
            (None, None),
            (Some(true), None),
            (None, Some(true)),
            (Some(false), Some(true)),
        ] {
            let err = parse(&[a(sa), b(sb)]).unwrap_err();
            match &err.problem {
                CatalogProblem::SharedPrincipal {
                    principal,
                    other,
                    other_line,
                } => {
                    assert_eq!((principal.as_str(), other.as_str()), ("ops", "a"));
                    assert_eq!(*other_line, 4);
                }
                other => panic!("unexpected {other:?}"),
            }
            // Located at the second listing: `"ops"` in b's `principals = ["y", "ops"]`.
            let at = err.position.unwrap();
            assert!(at.line > 12 && at.column == 20, "{err}");
        }
        let catalog = parse(&[a(Some(true)), b(Some(true))]).unwrap();
        assert!(matches!(
            catalog.services()[0].kind,
            ServiceKind::Ssh {
                share_principals: true,
                ..
            }
        ));
        // A third service joining the shared principal must opt in too.
        let c = ssh("c", "[\"ops\"]", None);
        assert!(parse(&[a(Some(true)), b(Some(true)), c]).is_err());
        // Distinct principals, and a name repeated within one service, are fine.
        parse(&[a(None), ssh("b", "[\"y\", \"y\"]", None)]).unwrap();
    }

    #[test]
    fn share_principals_belongs_to_ssh_services() {
        let text = "version = 1\n\n[[service]]\nname = \"r\"\nkind = \"tcp\"\ndescription = \"d\"\nupstream = \"127.0.0.1:6379\"\nmax_ttl = \"1h\"\ndefault_ttl = \"30m\"\nprobe = \"redis\"\nshare_principals = true\n";
        let err = Catalog::from_bytes(Path::new("c.toml"), text.as_bytes().to_vec()).unwrap_err();
        assert!(
            matches!(
                err.problem,
                CatalogProblem::FieldNotForKind {
                    field: "share_principals",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn record_is_an_ssh_setting() {
        let catalog =
            parse(&[ssh("a", "[\"ops\"]", None).replace("host_key", "record = true\nhost_key")])
                .unwrap();
        assert!(catalog.services()[0].recorded());
        assert!(!parse(&[ssh("a", "[\"ops\"]", None)]).unwrap().services()[0].recorded());
        let text = "version = 1\n\n[[service]]\nname = \"r\"\nkind = \"tcp\"\ndescription = \"d\"\nupstream = \"127.0.0.1:6379\"\nmax_ttl = \"1h\"\ndefault_ttl = \"30m\"\nprobe = \"redis\"\nrecord = true\n";
        let err = Catalog::from_bytes(Path::new("c.toml"), text.as_bytes().to_vec()).unwrap_err();
        assert!(
            matches!(
                err.problem,
                CatalogProblem::FieldNotForKind {
                    field: "record",
                    ..
                }
            ),
            "{err}"
        );
    }
}
