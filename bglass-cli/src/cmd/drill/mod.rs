//! `bglass drill …`: simulate, plan, deps (for the drill lead and the security team), and
//! the live drill: start, stop, join, report; one module per subcommand. The drill itself
//! (scenarios loaded, the simulator, participants, reports) is the `bglass_drill` crate.

mod deps;
mod join;
mod plan;
mod report;
mod start;
mod stop;

use std::path::Path;

use bglass_core::drill::LivePlan;
use bglass_drill::report::not_met;
use bglass_drill::simulate;

pub use join::run_in as join_in;

use crate::cli::DrillCommand;
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult};

/// Runs `bglass drill …`.
pub fn run(config: Option<&Path>, command: DrillCommand) -> CliResult {
    match command {
        DrillCommand::Simulate(args) => {
            let passed = simulate::run(simulate::Options {
                scenario: args.scenario,
                participants: args.participants,
                out: args.out,
                json: args.json,
            })?;
            if passed { Ok(()) } else { Err(not_met()) }
        }
        DrillCommand::Plan(args) => plan::run(&args),
        DrillCommand::Deps(args) => deps::run(&args),
        DrillCommand::Start(args) => start::run(config, &args),
        DrillCommand::Stop(args) => stop::run(config, &args),
        DrillCommand::Join(args) => join::run(config, &args),
        DrillCommand::Report(args) => report::run(&args),
    }
}

/// The drill running on the first proxy that answers: its plan, when it started (Unix ms)
/// and which proxy said so.
async fn running_drill(session: &mut Session) -> CliResult<(LivePlan, u64, usize)> {
    #[derive(serde::Deserialize)]
    struct Running {
        plan: LivePlan,
        #[serde(default)]
        started_ms: u64,
    }
    let (value, index) = session.call(&Call::get("/v1/drill")).await?;
    let running: Running = serde_json::from_value(value).map_err(CliError::internal)?;
    Ok((running.plan, running.started_ms, index))
}
