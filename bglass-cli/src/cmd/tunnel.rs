//! `bglass tunnel SERVICE`: a stdin/stdout tunnel to an SSH or TCP service, for OpenSSH's
//! `ProxyCommand`:
//!
//! ```text
//! Host bastion.breakglass
//!     ProxyCommand bglass tunnel bastion
//! ```

use std::path::Path;

use bglass_core::id::ServiceName;
use tokio::io::AsyncWriteExt;

use super::block_on;
use crate::cli::TunnelArgs;
use crate::client::Session;
use crate::error::CliResult;
use crate::tunnel::Dialer;

/// Runs `bglass tunnel`.
pub fn run(config: Option<&Path>, args: TunnelArgs) -> CliResult {
    let service: ServiceName = super::parse_arg(Some("service"), &args.service)?;
    let mut session = Session::open(config)?;
    super::check_held(&mut session, &service)?;
    let dialer = Dialer::new(&session, &service)?;
    block_on(async move {
        let stream = dialer.dial().await?;
        let (mut from_tunnel, mut to_tunnel) = tokio::io::split(stream);
        let mut stdin = tokio::io::stdin();
        let mut stdout = tokio::io::stdout();
        let up = async {
            let _ = tokio::io::copy(&mut stdin, &mut to_tunnel).await;
            let _ = to_tunnel.shutdown().await;
        };
        let down = async {
            let _ = tokio::io::copy(&mut from_tunnel, &mut stdout).await;
            let _ = stdout.flush().await;
        };
        // The session ends when the service closes its side.
        tokio::select! {
            () = down => {}
            () = async { up.await; std::future::pending::<()>().await } => {}
        }
        Ok(())
    })
}
