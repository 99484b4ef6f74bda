//! `[expect]` and `[[expect.tool]]`: what must hold at the end of the drill.

use toml::Spanned;

use super::Ctx;
use crate::id::ServiceName;
use crate::scenario::{Expectations, ScenarioError, ScenarioProblem, ToolExpect};

/// `[expect]` as TOML gives it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    success_rate: Option<Spanned<f64>>,
    tta_p95: Option<Spanned<String>>,
    approval_p95: Option<Spanned<String>>,
    unaudited: Option<Spanned<i64>>,
    failover: Option<bool>,
    #[serde(default)]
    tool: Vec<Spanned<RawToolExpect>>,
}

/// `[[expect.tool]]` as TOML gives it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToolExpect {
    name: Spanned<String>,
    success_rate: Option<Spanned<f64>>,
    tta_p95: Option<Spanned<String>>,
}

/// Validates `[expect]` (the defaults when it is left out).
pub(super) fn read(ctx: &Ctx<'_>, raw: Option<&RawExpect>) -> Result<Expectations, ScenarioError> {
    let mut expect = Expectations::default();
    let Some(e) = raw else {
        return Ok(expect);
    };
    expect.success_rate = e
        .success_rate
        .as_ref()
        .map(|r| ctx.rate("expect.success_rate", r))
        .transpose()?;
    expect.tta_p95 = ctx.millis_opt("expect.tta_p95", e.tta_p95.as_ref())?;
    expect.approval_p95 = ctx.millis_opt("expect.approval_p95", e.approval_p95.as_ref())?;
    if let Some(u) = &e.unaudited {
        expect.unaudited = u64::try_from(*u.get_ref()).map_err(|_| {
            ctx.err(
                u.span(),
                ScenarioProblem::Range {
                    what: "expect.unaudited",
                    range: "0 or more".to_owned(),
                },
            )
        })?;
    }
    expect.failover = e.failover;
    let names: Vec<Spanned<String>> = e.tool.iter().map(|t| t.get_ref().name.clone()).collect();
    let names = ctx.names("expect.tool", &names, ServiceName::new)?;
    for (name, t) in names.into_iter().zip(&e.tool) {
        let t = t.get_ref();
        expect.tools.push(ToolExpect {
            name,
            success_rate: t
                .success_rate
                .as_ref()
                .map(|r| ctx.rate("expect.tool.success_rate", r))
                .transpose()?,
            tta_p95: ctx.millis_opt("expect.tool.tta_p95", t.tta_p95.as_ref())?,
        });
    }
    Ok(expect)
}
