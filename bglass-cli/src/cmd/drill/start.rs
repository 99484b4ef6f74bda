//! `bglass drill start`: the live drill's plan, sent to every proxy.

use std::path::Path;

use bglass_core::duration::ms_text;
use bglass_core::envelope::Action;
use bglass_drill::live::{drill_id, live_plan};
use bglass_drill::load::load;

use super::super::{block_on, print_json};
use crate::cli::DrillStartArgs;
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult, ErrorKind};

/// `bglass drill start`: the same plan on every proxy that answers.
pub(super) fn run(config: Option<&Path>, args: &DrillStartArgs) -> CliResult {
    let loaded = load(&args.scenario)?;
    let plan = live_plan(&loaded, drill_id(&loaded.scenario.name)?, true);
    let mut session = Session::open(config)?;
    block_on(async move {
        let mut started = Vec::new();
        let mut failures = Vec::new();
        let mut refusal = None;
        for i in 0..session.conns.len() {
            match session
                .call_with(
                    &Call::post("/v1/drill/start", Action::DrillStart(plan.clone())),
                    Some(i),
                )
                .await
            {
                Ok(_) => started.push(session.conns[i].entry.url.clone()),
                Err(e) => {
                    failures.push(format!("{}: {e}", session.conns[i].entry.url));
                    if e.kind() == ErrorKind::Denied {
                        refusal.get_or_insert(e);
                    }
                }
            }
        }
        if started.is_empty() {
            // A refusal (role, a drill already running) says more than "unavailable".
            return Err(refusal.unwrap_or_else(|| {
                CliError::new(
                    ErrorKind::Unavailable,
                    format!("no proxy started the drill: {}", failures.join("; ")),
                )
            }));
        }
        if args.json {
            return print_json(&plan);
        }
        crate::outln!(
            "Drill {} started on {} ({}); participants run: bglass drill join",
            plan.drill,
            started.join(", "),
            ms_text(plan.duration_ms)
        )?;
        for f in failures {
            eprintln!("bglass: not started on {f}");
        }
        crate::outln!("Stop it with: bglass drill stop {}", plan.drill)
    })
}
