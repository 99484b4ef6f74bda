//! `bglass`: the responder's binary. Parses the command line and dispatches; each command
//! lives in its own file under `cmd/`.

mod cli;
mod cmd;
mod tui;

use bglass_client::{client, config, error, out, outln, passphrase, store, tunnel};

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `COMPLETE=bash bglass …`: answer the shell's completion request and exit.
    clap_complete::CompleteEnv::with_factory(<cli::Cli as clap::CommandFactory>::command)
        .complete();
    let cli = cli::Cli::parse();
    bglass_client::failure::show_raw_errors(cli.verbose);
    bglass_client::style::init(cli.color);
    let result = match cli.command {
        cli::Command::Enroll(args) => cmd::enroll::run(cli.config.as_deref(), args),
        cli::Command::Whoami => cmd::whoami::run(cli.config.as_deref()),
        cli::Command::Access(args) => cmd::access::run(cli.config.as_deref(), args),
        cli::Command::Requests(args) => {
            cmd::approvals::requests_command(cli.config.as_deref(), args)
        }
        cli::Command::Approve(args) => cmd::approvals::approve(cli.config.as_deref(), args),
        cli::Command::Deny(args) => cmd::approvals::deny(cli.config.as_deref(), args),
        cli::Command::Revoke(args) => cmd::grants::revoke(cli.config.as_deref(), args),
        cli::Command::Review(args) => cmd::grants::review(cli.config.as_deref(), args),
        cli::Command::Grants(args) => cmd::grants::list(cli.config.as_deref(), args),
        cli::Command::Status(args) => cmd::status::run(cli.config.as_deref(), args),
        cli::Command::Curl(args) => cmd::curl::run(cli.config.as_deref(), args),
        cli::Command::Open(args) => cmd::open::run(cli.config.as_deref(), args),
        cli::Command::Ssh(args) => cmd::ssh::run(cli.config.as_deref(), args),
        cli::Command::Tunnel(args) => cmd::tunnel::run(cli.config.as_deref(), args),
        cli::Command::Forward(args) => cmd::forward::run(cli.config.as_deref(), args),
        cli::Command::Catalog(cli::CatalogCommand::Check(args)) => cmd::catalog::check(args),
        cli::Command::Audit(command) => cmd::audit::run(cli.config.as_deref(), command),
        cli::Command::Admin(command) => cmd::admin::run(cli.config.as_deref(), command),
        cli::Command::Rekey(args) => cmd::rekey::run(cli.config.as_deref(), &args),
        #[cfg(feature = "drill")]
        cli::Command::Canary(args) => cmd::canary::run(cli.config.as_deref(), &args),
        #[cfg(feature = "drill")]
        cli::Command::Drill(command) => cmd::drill::run(cli.config.as_deref(), command),
        cli::Command::Completions(args) => cmd::completions::run(args),
        cli::Command::Unlock(args) => cmd::agent::unlock(cli.config.as_deref(), args),
        cli::Command::Man(args) => cmd::man::run(args),
        cli::Command::Lock => cmd::agent::lock(cli.config.as_deref()),
        cli::Command::AgentDaemon(args) => cmd::agent::daemon(args),
        cli::Command::Tui => tui::run(cli.config.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}
