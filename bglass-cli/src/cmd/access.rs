//! `bglass access SERVICE --reason R --incident I [--ttl D] [--emergency] [--new]`: ask for a
//! grant, wait for approvals when the service needs them (riding out a proxy that is down
//! or restarting until the wait is over), keep the grant and its audit receipt.
//!
//! Asking again does not pile up requests: unless `--new`, a live grant of yours for the
//! service is reused, and a pending request of yours for it is waited on again (approvers
//! see one request, however often a responder retries).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use bglass_core::api::{GrantView, RequestView, ServiceType};
use bglass_core::duration::HumanDuration;
use bglass_core::envelope::{AccessRequest, Action};
use bglass_core::id::ServiceName;
use bglass_core::timestamp;

use super::{block_on, print_json};
use crate::cli::AccessArgs;
use crate::client::{Call, CallFailure, Session};
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
        canary: false,
    });
    let mut session = Session::open(config)?;
    block_on(async move {
        let started = Instant::now();
        let mut reused = false;
        let asked = Asked {
            ttl_secs: ttl.map(|t| t.as_secs()),
            emergency: args.emergency,
        };
        let (mut view, proxy) = match existing(&mut session, &service, &asked, args.new).await? {
            Some(Existing::Grant(view, proxy)) => {
                reused = true;
                (view, proxy)
            }
            Some(Existing::Pending(view, proxy)) => {
                eprintln!(
                    "bglass: {} is your pending request for {service} (asked {} ago, incident {}): waiting on it again; `--new` asks anew",
                    view.id,
                    ago(view.created_ms),
                    view.incident
                );
                (view, proxy)
            }
            None => {
                let (value, proxy) = session.call(&Call::post("/v1/access", action)).await?;
                let view: RequestView =
                    serde_json::from_value(value).map_err(CliError::internal)?;
                (view, proxy)
            }
        };
        if view.status == "pending" {
            view = wait_for_approval(&mut session, proxy, view, started, wait.to_std(), args.json)
                .await?;
        }
        match view.status.as_str() {
            "granted" => granted(&mut session, proxy, &view, args.json, reused).await,
            "expired" => Err(CliError::new(
                ErrorKind::Denied,
                format!("{} expired: no approver decided in time", view.id),
            )
            .with_hint("ask again with `bglass access`")),
            "denied" | "cancelled" => Err(CliError::new(
                ErrorKind::Denied,
                format!(
                    "{} was {}",
                    view.id,
                    view.denied.clone().unwrap_or_else(|| view.status.clone())
                ),
            )),
            other => Err(CliError::internal(format!(
                "unexpected request status {other}"
            ))),
        }
    })
}

/// What this responder already has for the service on the proxy that answers first.
enum Existing {
    /// A live grant (the request view that carries it), on proxy `.1`.
    Grant(RequestView, usize),
    /// A pending request, on proxy `.1`.
    Pending(RequestView, usize),
}

/// What this `access` asks for besides the service, to match against what the caller has.
struct Asked {
    /// `--ttl`, seconds, when given.
    ttl_secs: Option<u64>,
    /// `--emergency`.
    emergency: bool,
}

/// A live grant of the caller for `service`, else a pending request of theirs for it, on
/// the first proxy that answers; nothing with `new`. Only what matches the ask: a grant
/// (not under `--emergency`) of the `--ttl` asked, when one is given; a request with the
/// same emergency flag and, when given, the same TTL (asking for the bypass after waiting
/// for approvers is a new request, not a retry).
async fn existing(
    session: &mut Session,
    service: &ServiceName,
    asked: &Asked,
    new: bool,
) -> CliResult<Option<Existing>> {
    if new {
        return Ok(None);
    }
    let me = session.identity.id.clone();
    let (value, proxy) = session.call(&Call::get("/v1/grants")).await?;
    let grants: Vec<GrantView> = serde_json::from_value(value).map_err(CliError::internal)?;
    let live = grants
        .into_iter()
        .filter(|g| g.responder == me && &g.service == service && g.state == "active")
        .filter(|g| g.token.is_some() && !asked.emergency)
        .filter(|g| {
            asked
                .ttl_secs
                .is_none_or(|t| g.exp.saturating_sub(g.nbf) == t)
        })
        .max_by_key(|g| g.exp);
    if let Some(grant) = live {
        let (value, _) = session
            .call_with(
                &Call::get(format!("/v1/requests/{}", grant.request)),
                Some(proxy),
            )
            .await?;
        let view: RequestView = serde_json::from_value(value).map_err(CliError::internal)?;
        if view.status == "granted" && view.grant.as_ref().is_some_and(|g| g.id == grant.id) {
            return Ok(Some(Existing::Grant(view, proxy)));
        }
    }
    let (value, _) = session
        .call_with(&Call::get("/v1/requests"), Some(proxy))
        .await?;
    let pending: Vec<RequestView> = serde_json::from_value(value).map_err(CliError::internal)?;
    Ok(pending
        .into_iter()
        .filter(|r| r.responder == me && &r.service == service && r.status == "pending")
        .filter(|r| r.emergency == asked.emergency)
        .filter(|r| asked.ttl_secs.is_none_or(|t| r.ttl_secs == t))
        .max_by_key(|r| r.created_ms)
        .map(|r| Existing::Pending(r, proxy)))
}

/// How long ago `ms` (Unix ms) was, as `1m05s`.
fn ago(ms: u64) -> String {
    clock(Duration::from_millis(
        timestamp::now_ms().saturating_sub(ms),
    ))
}

/// A duration as `MM:SS` (or `H:MM:SS` past an hour).
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// How often a plain (non-terminal) wait says it is still waiting.
const PLAIN_TICK: Duration = Duration::from_secs(60);
/// The longest pause between attempts while the proxy does not answer.
const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(4);

/// Waits until the request is decided or `wait` (counted from `started`) is over, on the
/// proxy that holds the request. On a terminal the status line updates in place with the
/// elapsed time, and the bell rings on the answer; otherwise plain lines. A proxy that
/// stops answering is retried (jittered, capped backoff) until the deadline: the request
/// is in its audit log and survives a restart, so the wait reattaches to it.
async fn wait_for_approval(
    session: &mut Session,
    proxy: usize,
    mut view: RequestView,
    started: Instant,
    wait: Duration,
    quiet: bool,
) -> CliResult<RequestView> {
    let tty = std::io::stderr().is_terminal() && !quiet;
    let url = session.conns[proxy].entry.url.clone();
    let deadline = timestamp::format_secs(
        (timestamp::now_ms() / 1000)
            .saturating_add(wait.saturating_sub(started.elapsed()).as_secs()),
    );
    let mut last_line = String::new();
    let mut last_plain = Instant::now();
    let mut down_since: Option<Instant> = None;
    let mut retries: u32 = 0;
    // Retries are this loop's business: no failover chatter from each attempt.
    let verbose = std::mem::replace(&mut session.verbose, false);
    let result = loop {
        let line = format!(
            "waiting for approval of {} ({} of {} so far) — an approver runs: bglass approve {}",
            view.id,
            view.approved_by.len(),
            view.approvals_needed,
            view.id
        );
        let elapsed = clock(started.elapsed());
        if tty {
            eprint!("\r\x1b[K{line} [{elapsed}]");
            let _ = std::io::stderr().flush();
        } else if !quiet && (line != last_line || last_plain.elapsed() >= PLAIN_TICK) {
            if line == last_line {
                eprintln!("still waiting for {} ({elapsed} elapsed)", view.id);
            } else {
                eprintln!("{line}");
            }
            last_plain = Instant::now();
        }
        last_line = line;
        if started.elapsed() >= wait {
            if tty {
                eprintln!();
            }
            break Err(CliError::new(
                ErrorKind::Denied,
                format!(
                    "{} was not approved within {}",
                    view.id,
                    HumanDuration::from_secs(wait.as_secs())
                        .map_or_else(String::new, |d| d.to_string())
                ),
            )
            .with_hint(
                "it is still pending; approvers can still approve it: run `bglass access` again to wait on it, then `bglass grants`",
            ));
        }
        // A long poll: the proxy answers at once when the request changes, else after a
        // second (which keeps the clock above ticking).
        match session.poll_request(proxy, &view.id, 1).await {
            Ok(next) => {
                if let Some(since) = down_since.take() {
                    if tty {
                        eprintln!();
                    }
                    eprintln!(
                        "bglass: {url} answers again after {}; {} is still there: waiting on it",
                        clock(since.elapsed()),
                        view.id
                    );
                    retries = 0;
                }
                view = next;
                if view.status != "pending" {
                    if tty {
                        // The answer: end the status line and ring the bell.
                        eprintln!("\x07");
                    }
                    break Ok(view);
                }
            }
            Err(CallFailure::Unavailable(tried)) => {
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    if tty {
                        eprintln!();
                    }
                    let why = tried
                        .first()
                        .map_or_else(|| "no answer".to_owned(), |(_, why)| why.to_string());
                    eprintln!(
                        "bglass: the proxy at {url} is unreachable ({why}); {} is kept in its log: retrying until {deadline}",
                        view.id
                    );
                }
                retries = retries.saturating_add(1);
                let pause = crate::client::backoff(retries, crate::client::random_unit())
                    .min(OUTAGE_RETRY_MAX)
                    .min(wait.saturating_sub(started.elapsed()));
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                if tty {
                    eprintln!();
                }
                break Err(e.into());
            }
        }
    };
    session.verbose = verbose;
    result
}

async fn granted(
    session: &mut Session,
    proxy: usize,
    view: &RequestView,
    json: bool,
    reused: bool,
) -> CliResult {
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
    if reused {
        crate::outln!(
            "You already hold {} for {} until {} ({} min) from {}: reusing it (`--new` asks for another)",
            grant.id,
            grant.service,
            timestamp::format_secs(grant.exp),
            minutes,
            record.id,
        )?;
    } else {
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
    }
    crate::outln!("{}", how_to_use(&grant.service, view.kind))
}

/// The commands that use a grant for a service of `kind`.
fn how_to_use(service: &ServiceName, kind: Option<ServiceType>) -> String {
    match kind {
        Some(ServiceType::Ssh) => format!(
            "  bglass ssh {service}   |   bglass ssh {service} -- COMMAND   |   bglass ssh {service} --save-cert"
        ),
        Some(ServiceType::Tcp) => format!(
            "  bglass forward {service} --local 127.0.0.1:PORT   (then your client on that port)"
        ),
        _ => format!("  bglass curl {service} /   |   bglass open {service}"),
    }
}
