//! `[participants]`: how many take part, how many approve, which tools they reach, how they
//! arrive.

use toml::Spanned;

use super::Ctx;
use crate::duration::Millis;
use crate::id::ServiceName;
use crate::scenario::{MAX_PARTICIPANTS, Participants, ScenarioError, ScenarioProblem};

/// `[participants]` as TOML gives it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParticipants {
    count: Spanned<i64>,
    approvers: Spanned<i64>,
    services: Option<Vec<Spanned<String>>>,
    arrival: Option<Spanned<String>>,
    #[serde(default)]
    emergency: bool,
}

/// Validates `[participants]` of a drill lasting `duration`.
pub(super) fn read(
    ctx: &Ctx<'_>,
    raw: &Spanned<RawParticipants>,
    duration: Millis,
) -> Result<Participants, ScenarioError> {
    let p = raw.get_ref();
    let range = |v: &Spanned<i64>, what, range: String| {
        ctx.err(v.span(), ScenarioProblem::Range { what, range })
    };
    let count = u32::try_from(*p.count.get_ref())
        .ok()
        .filter(|c| (1..=MAX_PARTICIPANTS).contains(c))
        .ok_or_else(|| {
            range(
                &p.count,
                "participants.count",
                format!("from 1 to {MAX_PARTICIPANTS}"),
            )
        })?;
    let approvers = u32::try_from(*p.approvers.get_ref())
        .ok()
        .filter(|a| *a <= count)
        .ok_or_else(|| {
            range(
                &p.approvers,
                "participants.approvers",
                format!("from 0 to count ({count})"),
            )
        })?;
    let services = match &p.services {
        None => None,
        Some(list) => {
            let out = ctx.names("service", list, ServiceName::new)?;
            if out.is_empty() {
                return Err(ctx.err(
                    raw.span(),
                    ScenarioProblem::Range {
                        what: "participants.services",
                        range: "a non-empty list (leave it out for every service)".to_owned(),
                    },
                ));
            }
            Some(out)
        }
    };
    let arrival = match &p.arrival {
        None => Millis::default(),
        Some(a) => {
            let v = ctx.millis("participants.arrival", a)?;
            if v >= duration {
                return Err(ctx.err(
                    a.span(),
                    ScenarioProblem::Range {
                        what: "participants.arrival",
                        range: format!("shorter than duration ({duration})"),
                    },
                ));
            }
            v
        }
    };
    Ok(Participants {
        count,
        approvers,
        services,
        arrival,
        emergency: p.emergency,
    })
}
