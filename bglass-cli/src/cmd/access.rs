//! `bglass access SERVICE --reason R --incident I [--ttl D] [--emergency]`: ask for a grant,
//! wait for approvals when the service needs them, keep the grant and its audit receipt.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use bglass_core::api::RequestView;
use bglass_core::duration::HumanDuration;
use bglass_core::envelope::{AccessRequest, Action};
use bglass_core::id::ServiceName;
use bglass_core::timestamp;

use super::{block_on, print_json};
use crate::cli::AccessArgs;
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult, ErrorKind};

/// Runs `bglass access`.
pub fn run(config: Option<&Path>, args: AccessArgs) -> CliResult {
    // Parse everything first: no side effects before the input is known good.
    let service: ServiceName = super::parse_arg(Some("service"), &args.service)?;
    let ttl = args
        .ttl
        .as_deref()
        .map(|t| {
            t.parse::<HumanDuration>()
                .map_err(|e| CliError::user(format!("--ttl: {e}")))
        })
        .transpose()?;
    let wait: HumanDuration = args
        .wait
        .parse()
        .map_err(|e| CliError::user(format!("--wait: {e}")))?;
    let action = Action::Access(AccessRequest {
        service: service.clone(),
        ttl,
        reason: args.reason.clone(),
        incident: args.incident.clone(),
        emergency: args.emergency,
        drill: None,
    });
    let mut session = Session::open(config)?;
    block_on(async move {
        let (value, proxy) = session.call(&Call::post("/v1/access", action)).await?;
        let mut view: RequestView = serde_json::from_value(value).map_err(CliError::internal)?;
        if view.status == "pending" {
            view = wait_for_approval(&mut session, proxy, view, wait.to_std(), args.json).await?;
        }
        match view.status.as_str() {
            "granted" => granted(&mut session, proxy, &view, args.json).await,
            "expired" => Err(CliError::new(
                ErrorKind::Denied,
                format!("{} expired: no approver decided in time", view.id),
            )
            .with_hint("ask again with `bglass access`")),
            "denied" => Err(CliError::new(
                ErrorKind::Denied,
                format!(
                    "{} was {}",
                    view.id,
                    view.denied.clone().unwrap_or_else(|| "denied".to_owned())
                ),
            )),
            other => Err(CliError::internal(format!(
                "unexpected request status {other}"
            ))),
        }
    })
}

async fn wait_for_approval(
    session: &mut Session,
    proxy: usize,
    mut view: RequestView,
    wait: Duration,
    quiet: bool,
) -> CliResult<RequestView> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal() && !quiet;
    let mut last_line = String::new();
    loop {
        let line = format!(
            "waiting for approval of {} ({} of {} so far) — an approver runs: bglass approve {}",
            view.id,
            view.approved_by.len(),
            view.approvals_needed,
            view.id
        );
        let elapsed = started.elapsed().as_secs();
        if tty {
            eprint!("\r{line} [{:02}:{:02}]", elapsed / 60, elapsed % 60);
        } else if !quiet && line != last_line {
            eprintln!("{line}");
        }
        last_line = line;
        if started.elapsed() >= wait {
            if tty {
                eprintln!();
            }
            return Err(CliError::new(
                ErrorKind::Denied,
                format!(
                    "{} was not approved within {}",
                    view.id,
                    HumanDuration::from_secs(wait.as_secs())
                        .map_or_else(String::new, |d| d.to_string())
                ),
            )
            .with_hint(
                "it is still pending; approvers can still approve it, then run `bglass grants`",
            ));
        }
        // A long poll: the proxy answers at once when the request changes, else after a
        // second (which keeps the clock above ticking).
        let (value, _) = session
            .call_with(
                &Call::get(format!("/v1/requests/{}?wait=1", view.id)),
                Some(proxy),
            )
            .await?;
        view = serde_json::from_value(value).map_err(CliError::internal)?;
        if view.status != "pending" {
            if tty {
                eprintln!();
            }
            return Ok(view);
        }
    }
}

async fn granted(session: &mut Session, proxy: usize, view: &RequestView, json: bool) -> CliResult {
    let grant = view
        .grant
        .as_ref()
        .ok_or_else(|| CliError::internal("granted without a grant"))?;
    session.keep_granted(proxy, view).await?;
    let record = session.conns[proxy]
        .record
        .clone()
        .ok_or_else(|| CliError::internal("proxy not contacted"))?;
    if json {
        return print_json(view);
    }
    let now = timestamp::now_ms() / 1000;
    let minutes = grant.exp.saturating_sub(now).div_ceil(60);
    crate::outln!(
        "Granted {} until {} ({} min) by {} — grant {}{}",
        grant.service,
        timestamp::format_secs(grant.exp),
        minutes,
        record.id,
        grant.id,
        if grant.emergency {
            " [EMERGENCY: approvers notified; a review is now open]"
        } else {
            ""
        }
    )?;
    crate::outln!(
        "  bglass curl {} /   |   bglass open {}",
        grant.service,
        grant.service
    )
}
