//! `bglass drill deps`: every endpoint the break-glass path needs, checked against the
//! declared production dependencies.

use std::path::PathBuf;

use bglass_core::catalog::Catalog;
use bglass_core::scenario::Production;
use bglass_core::scenario::production::Endpoint;

use super::super::print_json;
use crate::cli::DrillDepsArgs;
use crate::error::{CliError, CliResult, ErrorKind};

/// One endpoint the break-glass path needs.
#[derive(Debug, serde::Serialize)]
struct PathEndpoint {
    /// Who needs it (`proxy primary → tool grafana`).
    user: String,
    /// The endpoint as written.
    endpoint: String,
    /// The dependencies it matches, with why.
    depends_on: Vec<(String, String)>,
}

/// `bglass drill deps`.
pub(super) fn run(args: &DrillDepsArgs) -> CliResult {
    let production = Production::load(&args.production).map_err(CliError::user)?;
    let mut found: Vec<(String, Endpoint)> = Vec::new();
    let mut catalogs: Vec<PathBuf> = args.services.iter().cloned().collect();
    for path in &args.proxy_configs {
        let c = bglass_proxy::config::ProxyConfig::load(path)
            .map_err(|e| CliError::user(e).with_hint("give each proxy's proxy.toml"))?;
        found.push((
            format!("responders → proxy {} (listen)", c.id),
            Endpoint::Addr(c.listen),
        ));
        if let Some(m) = c.metrics_listen {
            found.push((
                format!("monitoring → proxy {} (metrics)", c.id),
                Endpoint::Addr(m),
            ));
        }
        for n in &c.notify {
            found.push((
                format!("proxy {} → notifications ({})", c.id, n.url),
                Endpoint::Addr(n.addr),
            ));
        }
        if args.services.is_none() && !catalogs.contains(&c.services) {
            catalogs.push(c.services.clone());
        }
    }
    for path in &catalogs {
        let catalog = Catalog::load(path).map_err(CliError::user)?;
        for s in catalog.services() {
            found.push((
                format!("proxies → tool {} ({})", s.name, s.kind_name()),
                Endpoint::Addr(s.upstream.addr),
            ));
        }
    }
    for path in &args.cli_configs {
        let c = crate::config::Config::load(path).map_err(crate::config::config_error)?;
        for p in &c.proxies {
            let host = p
                .url
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .rsplit_once(':')
                .map(|(h, _)| h.to_owned())
                .unwrap_or_default();
            let endpoint = if host.parse::<std::net::IpAddr>().is_ok() {
                Endpoint::Addr(p.addr)
            } else {
                Endpoint::PinnedName { host, addr: p.addr }
            };
            found.push((
                format!("responder {} → proxy {}", c.responder, p.url),
                endpoint,
            ));
        }
    }
    if found.is_empty() {
        return Err(CliError::user(
            "nothing to check: give --proxy-config, --services and/or --cli-config",
        ));
    }
    let list: Vec<PathEndpoint> = found
        .iter()
        .map(|(user, e)| PathEndpoint {
            user: user.clone(),
            endpoint: e.to_string(),
            depends_on: production
                .matches(e)
                .into_iter()
                .map(|(d, why)| (d.name.to_string(), why))
                .collect(),
        })
        .collect();
    let flagged = list.iter().filter(|e| !e.depends_on.is_empty()).count();
    if args.json {
        print_json(&serde_json::json!({ "endpoints": list, "flagged": flagged }))?;
    } else {
        let mut out = format!(
            "{} endpoint(s) on the break-glass path, checked against {} ({} declared dependencies):\n",
            list.len(),
            args.production.display(),
            production.dependencies.len()
        );
        for e in &list {
            let mark = if e.depends_on.is_empty() { "ok" } else { "!!" };
            out.push_str(&format!("  {mark} {:<26} {}\n", e.endpoint, e.user));
            for (d, why) in &e.depends_on {
                out.push_str(&format!("       depends on {d}: {why}\n"));
            }
        }
        out.push_str(&if flagged == 0 {
            "No endpoint depends on a declared production dependency.\n".to_owned()
        } else {
            format!(
                "{flagged} endpoint(s) depend on production systems the break-glass path must survive: fix them before the outage does.\n"
            )
        });
        crate::out!("{out}")?;
    }
    if flagged > 0 {
        return Err(CliError::new(
            ErrorKind::DrillFailed,
            format!("{flagged} hidden dependenc(ies) on the break-glass path"),
        ));
    }
    Ok(())
}
