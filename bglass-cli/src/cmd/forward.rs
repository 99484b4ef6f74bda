//! `bglass forward SERVICE [--local 127.0.0.1:PORT]`: a loopback listener; each accepted
//! connection is a new tunnel to the service. Stops when the grant ends.

use std::path::Path;

use bglass_core::id::ServiceName;
use bglass_core::timestamp;

use super::block_on;
use crate::cli::ForwardArgs;
use crate::client::Session;
use crate::error::{CliError, CliResult};
use crate::tunnel::Dialer;

/// Runs `bglass forward`.
pub fn run(config: Option<&Path>, args: ForwardArgs) -> CliResult {
    let service: ServiceName = super::parse_arg(Some("service"), &args.service)?;
    if !args.local.ip().is_loopback() {
        return Err(
            CliError::user("--local must be a loopback address (127.0.0.1:PORT)")
                .with_hint("anyone who can reach the listener uses your grant: never expose it"),
        );
    }
    let mut session = Session::open(config)?;
    super::check_held(&mut session, &service)?;
    let dialer = Dialer::new(&session, &service)?;
    if let Some(warning) = session.identity.agent_ends_before(dialer.grant.exp) {
        eprintln!("bglass: warning: {warning}");
    }
    block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.local)
            .await
            .map_err(|e| CliError::user(format!("cannot listen on {}: {e}", args.local)))?;
        let local = listener.local_addr().map_err(CliError::internal)?;
        let exp = dialer.grant.exp;
        crate::outln!(
            "forwarding {local} to {service} until {} (grant {})",
            timestamp::format_secs(exp),
            dialer.grant.id
        )?;
        eprintln!("Press Ctrl-C to stop.");
        let until = std::time::Duration::from_secs(exp.saturating_sub(timestamp::now_ms() / 1000));
        let serve = async {
            loop {
                let Ok((mut local_conn, _)) = listener.accept().await else {
                    continue;
                };
                let dialer = dialer.clone();
                tokio::spawn(async move {
                    match dialer.dial().await {
                        Ok(mut tunnel) => {
                            let _ =
                                tokio::io::copy_bidirectional(&mut local_conn, &mut tunnel).await;
                        }
                        Err(e) => eprintln!("bglass: a connection could not be forwarded: {e}"),
                    }
                });
            }
        };
        tokio::select! {
            () = serve => Ok(()),
            () = tokio::time::sleep(until) => {
                eprintln!("the grant for {service} ended; forwarding stops");
                Ok(())
            }
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
