//! `bglass drill stop`: the running drill (or the one named) stopped on every proxy.

use std::path::Path;

use bglass_core::envelope::Action;
use bglass_core::id::DrillId;

use super::super::block_on;
use super::running_drill;
use crate::cli::DrillStopArgs;
use crate::client::{Call, Session};
use crate::error::{CliError, CliResult, ErrorKind};

/// `bglass drill stop`.
pub(super) fn run(config: Option<&Path>, args: &DrillStopArgs) -> CliResult {
    let mut session = Session::open(config)?;
    block_on(async move {
        let id = match &args.drill {
            Some(id) => DrillId::new(id).map_err(CliError::user)?,
            None => running_drill(&mut session).await?.0.drill,
        };
        let mut stopped = Vec::new();
        for i in 0..session.conns.len() {
            let call = Call::post(
                "/v1/drill/stop",
                Action::DrillStop {
                    drill: id.to_string(),
                },
            );
            match session.call_with(&call, Some(i)).await {
                Ok(_) => stopped.push(session.conns[i].entry.url.clone()),
                Err(e) => eprintln!("bglass: {}: {e}", session.conns[i].entry.url),
            }
        }
        if stopped.is_empty() {
            return Err(CliError::new(
                ErrorKind::Denied,
                format!("drill {id} was not stopped on any proxy"),
            ));
        }
        crate::outln!(
            "Drill {id} stopped on {}. Score it from copies of the logs: bglass drill report {id} --log DIR --key KEY",
            stopped.join(", ")
        )
    })
}
