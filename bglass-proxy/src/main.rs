//! `bglass-proxy`: the operator's binary. Parses the command line and dispatches.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use bglass_core::SecretString;
use bglass_core::catalog::{Catalog, ServiceKind};
use bglass_core::id::{ProxyId, SecretName, ServiceName};
use bglass_core::vault::{Binding, Vault, VaultIdentity};
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
    /// Issue a new TLS server key and certificate with the offline CA key (after moving the
    /// proxy to a new address, or when the server key may have leaked). Responders' pins
    /// stay valid: the CA is the same. Restart the proxy afterwards.
    ReissueCert {
        /// The proxy.toml.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The CA private key `init` wrote to offline/ca.key (kept off the host).
        #[arg(long, value_name = "FILE")]
        ca_key: PathBuf,
        /// The address the certificate names (default: `listen` from proxy.toml).
        #[arg(long, value_name = "IP:PORT")]
        listen: Option<SocketAddr>,
    },
    /// Move the TLS CA private key out of the vault of a proxy made by an older version into
    /// FILE (mode 0600), for the operator to take off the host.
    ExportCaKey {
        /// The proxy.toml.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Where to write the key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Set an upstream credential and bind it to the services that may receive it; the value
    /// is read from standard input (one line). The binding records each service's upstream
    /// as the catalog names it now: a catalog that later moves the service to another
    /// address (or pin) is rejected until the credential is bound again.
    Set {
        /// The secret's name, as `inject.secret` names it in the catalog.
        name: String,
        /// A service of the catalog that injects this secret (repeat for several).
        #[arg(long = "for", value_name = "SERVICE", required = true)]
        services: Vec<String>,
        /// The proxy.toml.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Bind a stored credential again, to the services' upstreams in the catalog now (after
    /// an operator moved a tool to a new address on purpose).
    Bind {
        /// The secret's name.
        name: String,
        /// A service of the catalog that injects this secret (repeat for several).
        #[arg(long = "for", value_name = "SERVICE", required = true)]
        services: Vec<String>,
        /// The proxy.toml.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// List the credentials' names and bindings (never their values).
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
        Command::ReissueCert {
            config,
            ca_key,
            listen,
        } => reissue_cert(&config, &ca_key, listen),
        Command::ExportCaKey { config, out } => export_ca_key(&config, &out),
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
                "\nNext:\n  1. Move {ca} off this host (offline storage): the running proxy never needs it; it only\n     re-issues the server certificate (bglass-proxy reissue-cert --ca-key FILE).\n  2. Put services.toml and responders.toml in {dir} (or point proxy.toml at them).\n  3. Store upstream credentials, bound to the services that may receive them:\n     printf %s VALUE | bglass-proxy secrets set NAME --for SERVICE --config {cfg}\n  4. Start: bglass-proxy run --config {cfg}\n\nResponders enroll with: bglass enroll --id ID --proxy https://{listen} --pin {pin}\nAuditors verify its log with: bglass audit verify {dir}/data/log --key {key}",
                ca = made.offline_ca_key.display(),
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

/// The bindings of `name` to `services`, from the catalog the proxy is configured with: each
/// service must exist and inject exactly this secret.
fn bindings_for(
    config: &ProxyConfig,
    name: &SecretName,
    services: &[String],
) -> Result<Vec<Binding>, String> {
    let catalog = Catalog::load(&config.services).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for wanted in services {
        let service = ServiceName::new(wanted)
            .ok()
            .and_then(|n| catalog.get(&n))
            .ok_or_else(|| {
                format!(
                    "--for {wanted}: no such service in {}",
                    config.services.display()
                )
            })?;
        match &service.kind {
            ServiceKind::Http {
                inject: Some(inject),
                ..
            } if &inject.secret == name => {}
            _ => {
                return Err(format!(
                    "--for {wanted}: {wanted} does not inject {name} (its inject.secret in {} must name it)",
                    config.services.display()
                ));
            }
        }
        out.push(Binding {
            service: service.name.to_string(),
            upstream: service.upstream.binding(),
        });
    }
    Ok(out)
}

fn secrets(command: SecretsCommand) -> ExitCode {
    let config_path = match &command {
        SecretsCommand::Set { config, .. }
        | SecretsCommand::Bind { config, .. }
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
    let reserved = "names starting with bglass. hold the proxy's own keys, which are never upstream credentials";
    match command {
        SecretsCommand::List { .. } => {
            for (name, bindings) in vault.credentials() {
                let places: Vec<String> = bindings.iter().map(ToString::to_string).collect();
                if places.is_empty() {
                    println!(
                        "{name}\tUNBOUND (never sent; bind it: secrets bind {name} --for SERVICE)"
                    );
                } else {
                    println!("{name}\t{}", places.join(", "));
                }
            }
            return ExitCode::SUCCESS;
        }
        SecretsCommand::Set { name, services, .. } => {
            let name = match SecretName::new(&name) {
                Ok(n) if !n.is_reserved() => n,
                Ok(_) => return fail(reserved, ""),
                Err(e) => return fail(e, ""),
            };
            let bindings = match bindings_for(&config, &name, &services) {
                Ok(b) => b,
                Err(e) => return fail(e, "bind a credential to the services that inject it"),
            };
            let mut value = zeroize::Zeroizing::new(String::new());
            if let Err(e) = std::io::stdin().take(64 * 1024).read_to_string(&mut value) {
                return fail(format!("reading the value from stdin: {e}"), "");
            }
            let value = value.trim_end_matches(['\n', '\r']).to_owned();
            if let Err(e) = vault.set_credential(name, SecretString::from(value), bindings) {
                return fail(
                    e,
                    "give the value on standard input, e.g. printf %s VALUE | bglass-proxy secrets set …",
                );
            }
        }
        SecretsCommand::Bind { name, services, .. } => {
            let name = match SecretName::new(&name) {
                Ok(n) if n.is_reserved() => return fail(reserved, ""),
                Ok(n) if vault.credentials().any(|(c, _)| c == &n) => n,
                _ => return fail(format!("no credential {name}"), "set it first: secrets set"),
            };
            let bindings = match bindings_for(&config, &name, &services) {
                Ok(b) => b,
                Err(e) => return fail(e, ""),
            };
            if let Err(e) = vault.bind(&name, bindings) {
                return fail(e, "");
            }
        }
        SecretsCommand::Remove { name, .. } => {
            let Ok(name) = SecretName::new(&name) else {
                return fail(format!("no secret {name}"), "");
            };
            if name.is_reserved() {
                return fail(reserved, "");
            }
            if !vault.remove(&name) {
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

fn reissue_cert(
    config_path: &std::path::Path,
    ca_key: &std::path::Path,
    listen: Option<SocketAddr>,
) -> ExitCode {
    let config = match ProxyConfig::load(config_path) {
        Ok(c) => c,
        Err(e) => return fail(e, ""),
    };
    let mut pem = zeroize::Zeroizing::new(String::new());
    let read = std::fs::File::open(ca_key).and_then(|f| f.take(64 * 1024).read_to_string(&mut pem));
    if let Err(e) = read {
        return fail(format!("{}: {e}", ca_key.display()), "");
    }
    let listen = listen.unwrap_or(config.listen);
    match bglass_proxy::init::reissue(&config, &pem, listen) {
        Ok(pin) => {
            println!("certificate: {}", config.tls_chain.display());
            println!("names:       {}", listen.ip());
            println!("pin:         {pin} (unchanged)");
            eprintln!(
                "Restart the proxy to serve the new certificate; move the CA key off this host again."
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(
            e,
            "give the offline/ca.key that `bglass-proxy init` wrote for this proxy",
        ),
    }
}

fn export_ca_key(config_path: &std::path::Path, out: &std::path::Path) -> ExitCode {
    let config = match ProxyConfig::load(config_path) {
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
    if out.exists() {
        return fail(
            format!("{} exists; refusing to overwrite it", out.display()),
            "",
        );
    }
    let Ok(name) = SecretName::new(bglass_proxy::init::CA_KEY_SECRET) else {
        return fail("internal: bad key name", "");
    };
    let der = match vault.proxy_key(&name).map(|v| {
        base64::engine::general_purpose::STANDARD
            .decode(bglass_core::ExposeSecret::expose_secret(v))
    }) {
        Some(Ok(der)) => zeroize::Zeroizing::new(der),
        Some(Err(_)) => return fail("the CA key in the vault is not base64", ""),
        None => return fail("the vault holds no CA key (it is already offline)", ""),
    };
    let pem = zeroize::Zeroizing::new(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der[..])
    ));
    if let Err(e) = bglass_core::vault::write_private(out, pem.as_bytes()) {
        return fail(e, "");
    }
    vault.remove_proxy_key(&name);
    match vault.save(&config.vault, &identity) {
        Ok(()) => {
            eprintln!(
                "the CA key is now in {} and no longer in the vault: move it off this host",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, "the key was written but is still in the vault"),
    }
}
