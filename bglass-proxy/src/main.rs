//! `bglass-proxy`: the operator's binary. Parses the command line and dispatches.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bglass_core::SecretString;
use bglass_core::id::{ProxyId, SecretName};
use bglass_core::vault::{Vault, VaultIdentity};
use bglass_proxy::config::ProxyConfig;
use clap::{Parser, Subcommand};

/// The bglass out-of-band authenticating proxy.
#[derive(Debug, Parser)]
#[command(name = "bglass-proxy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new proxy cell in DIR: CA and server certificate, signing key, SSH CA,
    /// vault, and a commented proxy.toml. Prints the pin responders need.
    Init {
        /// The directory (created; must not already hold a proxy).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The proxy's id (names its grants and audit log).
        #[arg(long, value_name = "NAME")]
        id: String,
        /// The TLS listen address, an IP literal and port (the certificate names this IP).
        #[arg(long, value_name = "IP:PORT")]
        listen: SocketAddr,
        /// A Prometheus metrics listener (plain HTTP; keep it on loopback).
        #[arg(long, value_name = "IP:PORT")]
        metrics: Option<SocketAddr>,
    },
    /// Run the proxy.
    Run {
        /// The proxy.toml.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Start even though the audit log is behind the newest checkpoint this proxy
        /// published (kept in DATA_DIR/published-checkpoint): its log was restored from an
        /// older copy, cut short or replaced. Without this flag the proxy refuses to start.
        /// With it, the rollback (the published size and root, and the log's size) is
        /// recorded as the log's next entry before anything is served, and the log as it
        /// now is becomes the published one. Use it only when that older log is the one to
        /// keep; keep the newer copy, if any, as evidence.
        #[arg(long)]
        accept_rollback: bool,
    },
    /// Validate a catalog and roster exactly as the proxy would load them; exit 0 when valid.
    Check {
        /// The catalog.
        #[arg(long, value_name = "FILE", default_value = "services.toml")]
        services: PathBuf,
        /// The roster.
        #[arg(long, value_name = "FILE", default_value = "responders.toml")]
        roster: PathBuf,
    },
    /// Manage the vault of upstream credentials.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Set a secret; the value is read from standard input (one line).
    Set {
        /// The secret's name, as `inject.secret` names it in the catalog.
        name: String,
        /// The proxy.toml.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// List the secrets' names (never their values).
    List {
        /// The proxy.toml.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove a secret.
    Remove {
        /// The secret's name.
        name: String,
        /// The proxy.toml.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn fail(message: impl std::fmt::Display, hint: &str) -> ExitCode {
    eprintln!("error: {message}");
    if !hint.is_empty() {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Init {
            dir,
            id,
            listen,
            metrics,
        } => init(&dir, &id, listen, metrics),
        Command::Run {
            config,
            accept_rollback,
        } => run(&config, accept_rollback),
        Command::Check { services, roster } => match bglass_proxy::check::check(&services, &roster)
        {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(
                e,
                "fix the file at the position shown; a running proxy keeps its last good version",
            ),
        },
        Command::Secrets(command) => secrets(command),
    }
}

fn init(
    dir: &std::path::Path,
    id: &str,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
) -> ExitCode {
    let id = match ProxyId::new(id) {
        Ok(id) => id,
        Err(e) => return fail(format!("--id: {e}"), ""),
    };
    match bglass_proxy::init::init(dir, &id, listen, metrics) {
        Ok(made) => {
            println!("proxy:       {id}");
            println!("config:      {}", made.config.display());
            println!("url:         https://{listen}");
            println!("pin:         {}", made.pin);
            println!("signing key: {}", made.signing_key);
            println!("ssh ca:      {}", made.ssh_ca);
            eprintln!(
                "\nNext:\n  1. Put services.toml and responders.toml in {dir} (or point proxy.toml at them).\n  2. Store upstream credentials: echo -n VALUE | bglass-proxy secrets set NAME --config {cfg}\n  3. Start: bglass-proxy run --config {cfg}\n\nResponders enroll with: bglass enroll --id ID --proxy https://{listen} --pin {pin}\nAuditors verify its log with: bglass audit verify {dir}/data/log --key {key}",
                dir = dir.display(),
                cfg = made.config.display(),
                pin = made.pin,
                key = made.signing_key,
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, ""),
    }
}

fn run(config: &std::path::Path, accept_rollback: bool) -> ExitCode {
    // Each tunnel holds two sockets: allow as many files as the hard limit does.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}"), ""),
    };
    runtime.block_on(async {
        let options = bglass_proxy::server::StartOptions { accept_rollback };
        let (proxy, startup) = match bglass_proxy::server::start_with(config, &options) {
            Ok(x) => x,
            Err(e @ bglass_proxy::server::StartError::RolledBack(_)) => {
                return fail(
                    e,
                    "find out why the log is older than what this proxy published (a restore from backup? a lost disk?) before accepting it",
                );
            }
            Err(e) => return fail(e, "fix the file named above; nothing was served"),
        };
        match bglass_proxy::server::serve(proxy, startup).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e, ""),
        }
    })
}

fn secrets(command: SecretsCommand) -> ExitCode {
    let config_path = match &command {
        SecretsCommand::Set { config, .. }
        | SecretsCommand::List { config }
        | SecretsCommand::Remove { config, .. } => config.clone(),
    };
    let config = match ProxyConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => return fail(e, ""),
    };
    let identity = match VaultIdentity::open_file(&config.vault_identity) {
        Ok(i) => i,
        Err(e) => return fail(e, ""),
    };
    let mut vault = match Vault::open(&config.vault, &identity) {
        Ok(v) => v,
        Err(e) => return fail(e, ""),
    };
    match command {
        SecretsCommand::List { .. } => {
            for name in vault.names() {
                if !name.as_str().starts_with("bglass.") {
                    println!("{name}");
                }
            }
            return ExitCode::SUCCESS;
        }
        SecretsCommand::Set { name, .. } => {
            let name = match SecretName::new(&name) {
                Ok(n) if !n.as_str().starts_with("bglass.") => n,
                Ok(_) => return fail("names starting with bglass. hold the proxy's own keys", ""),
                Err(e) => return fail(e, ""),
            };
            let mut value = String::new();
            if let Err(e) = std::io::stdin().take(64 * 1024).read_to_string(&mut value) {
                return fail(format!("reading the value from stdin: {e}"), "");
            }
            let value = value.trim_end_matches(['\n', '\r']).to_owned();
            if let Err(e) = vault.set(name, SecretString::from(value)) {
                return fail(
                    e,
                    "give the value on standard input, e.g. printf %s VALUE | bglass-proxy secrets set …",
                );
            }
        }
        SecretsCommand::Remove { name, .. } => {
            let Ok(name) = SecretName::new(&name) else {
                return fail(format!("no secret {name}"), "");
            };
            if name.as_str().starts_with("bglass.") || !vault.remove(&name) {
                return fail(format!("no secret {name}"), "");
            }
        }
    }
    match vault.save(&config.vault, &identity) {
        Ok(()) => {
            eprintln!("vault updated; a running proxy reads it again on SIGHUP");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, ""),
    }
}
