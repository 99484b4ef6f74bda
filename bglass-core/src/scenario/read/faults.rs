//! `[[fault]]`: timed faults on named links, each kind with exactly its own parameters.

use std::ops::Range;

use toml::Spanned;

use super::Ctx;
use crate::duration::Millis;
use crate::id::ProxyId;
use crate::scenario::{
    FAULT_KINDS, Fault, FaultKind, Link, MAX_FAULTS, ScenarioError, ScenarioProblem, parse_rate,
};
use crate::source::Located;

/// Longest latency a fault may add, ms.
const MAX_LATENCY_MS: u64 = 60_000;
/// Longest hold of a slow close, ms.
const MAX_HOLD_MS: u64 = 600_000;
/// Lowest bandwidth, bytes per second.
const MIN_RATE: u64 = 1024;

/// `[[fault]]` as TOML gives it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    link: Spanned<String>,
    kind: Spanned<String>,
    start: Option<Spanned<String>>,
    end: Option<Spanned<String>>,
    latency: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    hold: Option<Spanned<String>>,
    note: Option<Spanned<String>>,
}

/// Validates every `[[fault]]` of a drill on `proxies` lasting `duration`.
pub(super) fn read(
    ctx: &Ctx<'_>,
    raw: &[Spanned<RawFault>],
    proxies: &[ProxyId],
    duration: Millis,
) -> Result<Vec<Fault>, ScenarioError> {
    if raw.len() > MAX_FAULTS {
        return Err(Located::new(
            ctx.source.path(),
            None,
            ScenarioProblem::TooManyFaults(raw.len()),
        ));
    }
    raw.iter()
        .map(|f| fault(ctx, f, proxies, duration))
        .collect()
}

fn fault(
    ctx: &Ctx<'_>,
    raw: &Spanned<RawFault>,
    proxies: &[ProxyId],
    duration: Millis,
) -> Result<Fault, ScenarioError> {
    let span = raw.span();
    let f = raw.get_ref();
    let link: Link = f
        .link
        .get_ref()
        .parse()
        .map_err(|e| ctx.err(f.link.span(), ScenarioProblem::Link(e)))?;
    if let Link::ResponderToProxy(proxy) = &link
        && !proxies.contains(proxy)
    {
        return Err(ctx.err(
            f.link.span(),
            ScenarioProblem::UnknownProxy {
                proxy: proxy.clone(),
                known: proxies
                    .iter()
                    .map(ProxyId::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        ));
    }
    let kind = kind(ctx, f, span.clone())?;
    let start = ctx
        .millis_opt("start", f.start.as_ref())?
        .unwrap_or_default();
    let end = ctx.millis_opt("end", f.end.as_ref())?.unwrap_or(duration);
    if start >= end || end > duration {
        return Err(ctx.err(
            span,
            ScenarioProblem::Window {
                start,
                end,
                duration,
            },
        ));
    }
    let note = f.note.as_ref().map(|n| ctx.text("note", n)).transpose()?;
    Ok(Fault {
        link,
        kind,
        start,
        end,
        note,
        at: ctx.at(span),
    })
}

/// The fault's kind with its parameters; a parameter of another kind is an error.
fn kind(ctx: &Ctx<'_>, f: &RawFault, span: Range<usize>) -> Result<FaultKind, ScenarioError> {
    let name = f.kind.get_ref().as_str();
    let Some(kind) = FAULT_KINDS.iter().copied().find(|k| *k == name) else {
        return Err(ctx.err(
            f.kind.span(),
            ScenarioProblem::Kind(name.chars().take(32).collect()),
        ));
    };
    let field =
        |rule: &'static str| ctx.err(span.clone(), ScenarioProblem::FaultField { kind, rule });
    // Each kind takes exactly its own parameters.
    let takes: &[&str] = match kind {
        "latency" => &["latency", "jitter"],
        "bandwidth" => &["rate"],
        "slow_close" => &["hold"],
        _ => &[],
    };
    for (present, param, rule) in [
        (f.latency.is_some(), "latency", "does not take latency"),
        (f.jitter.is_some(), "jitter", "does not take jitter"),
        (f.rate.is_some(), "rate", "does not take rate"),
        (f.hold.is_some(), "hold", "does not take hold"),
    ] {
        if present && !takes.contains(&param) {
            return Err(field(rule));
        }
    }
    Ok(match kind {
        "down" => FaultKind::Down,
        "blackhole" => FaultKind::Blackhole,
        "reset" => FaultKind::Reset,
        "timeout" => FaultKind::Timeout,
        "latency" => {
            let latency = f
                .latency
                .as_ref()
                .ok_or_else(|| field("needs latency = \"300ms\""))?;
            let latency = ctx.millis("latency", latency)?;
            let jitter = ctx
                .millis_opt("jitter", f.jitter.as_ref())?
                .unwrap_or_default();
            if latency.as_ms() == 0 || latency.as_ms() > MAX_LATENCY_MS || jitter > latency {
                return Err(field("needs 0 < latency <= 60s and jitter <= latency"));
            }
            FaultKind::Latency { latency, jitter }
        }
        "bandwidth" => {
            let rate = f
                .rate
                .as_ref()
                .ok_or_else(|| field("needs rate = \"1MiB/s\""))?;
            let bytes_per_sec = parse_rate(rate.get_ref()).ok_or_else(|| {
                ctx.err(
                    rate.span(),
                    ScenarioProblem::Rate(rate.get_ref().chars().take(32).collect()),
                )
            })?;
            if bytes_per_sec < MIN_RATE {
                return Err(field("needs a rate of at least 1KiB/s"));
            }
            FaultKind::Bandwidth { bytes_per_sec }
        }
        _ => {
            let hold = f
                .hold
                .as_ref()
                .ok_or_else(|| field("needs hold = \"2s\""))?;
            let hold = ctx.millis("hold", hold)?;
            if hold.as_ms() == 0 || hold.as_ms() > MAX_HOLD_MS {
                return Err(field("needs 0 < hold <= 10m"));
            }
            FaultKind::SlowClose { hold }
        }
    })
}
