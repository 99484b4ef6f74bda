//! `bglass-proxy`: the operator's binary. Parses the command line and dispatches.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use bglass_core::SecretString;
use bglass_core::catalog::{Catalog, CatalogError, ServiceKind};
use bglass_core::id::{NameError, ProxyId, SecretName, ServiceName};
use bglass_core::vault::{Binding, Vault, VaultError, VaultIdentity};
use bglass_proxy::check::CheckError;
use bglass_proxy::config::{ProxyConfig, ProxyConfigError};
use bglass_proxy::init::InitError;
use bglass_proxy::server::StartError;
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: under load the proxy allocates and frees per request
/// from two worker threads and the audit writer, where glibc's arenas spent about 15% of the
/// proxy's CPU (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// With --diff OLD NEW: what a new catalog or roster changes (before admins sign it).
    Check {
        /// The catalog.
        #[arg(long, value_name = "FILE", default_value = "services.toml")]
        services: PathBuf,
        /// The roster.
        #[arg(long, value_name = "FILE", default_value = "responders.toml")]
        roster: PathBuf,
        /// Print what NEW changes from OLD (two catalogs or two rosters): services and
        /// responders added, removed, and changed field by field.
        #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with_all = ["services", "roster"])]
        diff: Option<Vec<PathBuf>>,
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
    /// Rotate the SSH CA with an overlap: `begin` (a new CA; give hosts both), `finish` (sign
    /// with the new one; SIGHUP the proxy), `retire` (drop the old one). `keys` prints the
    /// TrustedUserCAKeys lines hosts need now (also written to ssh_ca.pub beside proxy.toml).
    SshCa {
        /// The step.
        #[arg(value_enum)]
        step: SshCaStep,
        /// The proxy.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Rotate the proxy's signing key (the proxy stopped): a new key, put in force by an
    /// entry of the audit log signed by the old key and the new one. `audit verify` and
    /// every CLI that knew the old key follow the transition; grants issued before stay
    /// valid until they expire. Run it again to finish one a crash interrupted.
    RotateKey {
        /// The proxy.toml.
        #[arg(long)]
        config: PathBuf,
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
    /// Write the manual pages (bglass-proxy.1, bglass-proxy-COMMAND.1, …) into DIR.
    Man {
        /// The directory (created when missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Writes the manual page of `command` (named `name`) and of each subcommand into `dir`.
fn man_pages(command: &clap::Command, name: &str, dir: &std::path::Path) -> Result<usize, Failure> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| Failure::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone().display_name(name.to_owned()))
        .render(&mut roff)
        .map_err(io(dir))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, roff).map_err(io(&path))?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        written += man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
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

/// Why a command failed. Each variant has its message (`Display`) and the hint printed
/// under it ([`Failure::hint`]); `main` prints both and exits with status 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum Failure {
    /// `--id` is not a proxy id.
    #[error("--id: {0}")]
    Id(NameError),
    /// `init` failed.
    #[error(transparent)]
    Init(InitError),
    /// `check` found the catalog or roster invalid.
    #[error(transparent)]
    Check(CheckError),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The audit log is behind what this proxy published.
    #[error(transparent)]
    RolledBack(StartError),
    /// The proxy could not start.
    #[error(transparent)]
    Start(StartError),
    /// The signing key could not be rotated.
    #[error(transparent)]
    Rotate(#[from] bglass_proxy::rotate::RotateError),
    /// An SSH CA rotation step was refused.
    #[error(transparent)]
    SshCa(#[from] bglass_proxy::ssh_ca::SshCaError),
    /// The proxy stopped serving with an error.
    #[error(transparent)]
    Serve(StartError),
    /// `proxy.toml` is invalid or unreadable.
    #[error(transparent)]
    Config(#[from] ProxyConfigError),
    /// The vault or its identity cannot be opened, or the vault cannot be saved.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A secret name holds one of the proxy's own keys.
    #[error(
        "names starting with bglass. hold the proxy's own keys, which are never upstream credentials"
    )]
    Reserved,
    /// A secret name is invalid.
    #[error(transparent)]
    SecretName(NameError),
    /// `secrets bind` names a credential the vault does not hold.
    #[error("no credential {0}")]
    NoCredential(String),
    /// `secrets remove` names a secret the vault does not hold.
    #[error("no secret {0}")]
    NoSecret(String),
    /// The catalog named by `proxy.toml` cannot be loaded for a binding.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// `--for` names a service the catalog does not hold.
    #[error("--for {service}: no such service in {}", catalog.display())]
    NoService {
        /// The service named.
        service: String,
        /// The catalog.
        catalog: PathBuf,
    },
    /// `--for` names a service that does not inject this secret.
    #[error("--for {service}: {service} does not inject {name} (its inject.secret in {} must name it)", catalog.display())]
    NotInjected {
        /// The service named.
        service: ServiceName,
        /// The secret.
        name: SecretName,
        /// The catalog.
        catalog: PathBuf,
    },
    /// The credential's value could not be read from standard input.
    #[error("reading the value from stdin: {0}")]
    Stdin(std::io::Error),
    /// The credential could not be stored.
    #[error(transparent)]
    SetCredential(VaultError),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA key file could not be read.
    #[error("{}: {source}", path.display())]
    CaKeyRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server certificate could not be issued again.
    #[error(transparent)]
    Reissue(InitError),
    /// The file to export the CA key to exists.
    #[error("{} exists; refusing to overwrite it", .0.display())]
    OutExists(PathBuf),
    /// The CA key in the vault is not base64.
    #[error("the CA key in the vault is not base64")]
    CaKeyEncoding,
    /// The vault holds no CA key.
    #[error("the vault holds no CA key (it is already offline)")]
    NoCaKey,
    /// The CA key was written out but the vault without it could not be saved.
    #[error(transparent)]
    CaKeyStillInVault(VaultError),
}

impl Failure {
    /// What to do about it, when there is something to say.
    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Check(_) => Some(
                "fix the file at the position shown; a running proxy keeps its last good version",
            ),
            Self::RolledBack(_) => Some(
                "find out why the log is older than what this proxy published (a restore from backup? a lost disk?) before accepting it",
            ),
            Self::Start(_) => Some("fix the file named above; nothing was served"),
            Self::NoCredential(_) => Some("set it first: secrets set"),
            Self::NoService { .. } | Self::NotInjected { .. } => {
                Some("bind a credential to the services that inject it")
            }
            Self::SetCredential(_) => Some(
                "give the value on standard input, e.g. printf %s VALUE | bglass-proxy secrets set …",
            ),
            Self::Reissue(_) => {
                Some("give the offline/ca.key that `bglass-proxy init` wrote for this proxy")
            }
            Self::CaKeyStillInVault(_) => Some("the key was written but is still in the vault"),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.command {
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
        Command::Check {
            diff: Some(files), ..
        } => match files.as_slice() {
            [old, new] => bglass_proxy::check::diff(old, new)
                .map(|changes| {
                    if changes.is_empty() {
                        println!("no changes");
                    }
                    for c in changes {
                        println!("{c}");
                    }
                })
                .map_err(Failure::Check),
            _ => Ok(()),
        },
        Command::Check {
            services, roster, ..
        } => bglass_proxy::check::check(&services, &roster)
            .map(|report| print!("{report}"))
            .map_err(Failure::Check),
        Command::Secrets(command) => secrets(command),
        Command::ReissueCert {
            config,
            ca_key,
            listen,
        } => reissue_cert(&config, &ca_key, listen),
        Command::ExportCaKey { config, out } => export_ca_key(&config, &out),
        Command::RotateKey { config } => rotate_key(&config),
        Command::SshCa { step, config } => ssh_ca(&config, step),
        Command::Man { dir } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            command.build();
            man_pages(&command, "bglass-proxy", &dir).map(|n| {
                println!("wrote {n} manual pages to {}", dir.display());
            })
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}

fn init(
    dir: &std::path::Path,
    id: &str,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<(), Failure> {
    let id = ProxyId::new(id).map_err(Failure::Id)?;
    let made = bglass_proxy::init::init(dir, &id, listen, metrics).map_err(Failure::Init)?;
    println!("proxy:       {id}");
    println!("config:      {}", made.config.display());
    println!("url:         https://{listen}");
    println!("pin:         {}", made.pin);
    println!("signing key: {}", made.signing_key);
    println!("ssh ca:      {}", made.ssh_ca);
    println!("session ca:  {}", made.recording.session_ca);
    println!("ssh host key: {}", made.recording.host_key);
    eprintln!(
        "\nNext:\n  1. Move {ca} off this host (offline storage): the running proxy never needs it; it only\n     re-issues the server certificate (bglass-proxy reissue-cert --ca-key FILE).\n  2. Put services.toml and responders.toml in {dir} (or point proxy.toml at them).\n  3. Store upstream credentials, bound to the services that may receive them:\n     printf %s VALUE | bglass-proxy secrets set NAME --for SERVICE --config {cfg}\n  4. Start: bglass-proxy run --config {cfg}\n\nResponders enroll with: bglass enroll --id ID --proxy https://{listen} --pin {pin}\nAuditors verify its log with: bglass audit verify {dir}/data/log --key {key}",
        ca = made.offline_ca_key.display(),
        dir = dir.display(),
        cfg = made.config.display(),
        pin = made.pin,
        key = made.signing_key,
    );
    Ok(())
}

fn run(config: &std::path::Path, accept_rollback: bool) -> Result<(), Failure> {
    // Each tunnel holds two sockets: allow as many files as the hard limit does.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    runtime.block_on(async {
        let options = bglass_proxy::server::StartOptions { accept_rollback };
        let (proxy, startup) =
            bglass_proxy::server::start_with(config, &options).map_err(|e| match e {
                e @ StartError::RolledBack(_) => Failure::RolledBack(e),
                e => Failure::Start(e),
            })?;
        bglass_proxy::server::serve(proxy, startup)
            .await
            .map_err(|e| match e {
                e @ StartError::WitnessRollback(_) => Failure::RolledBack(e),
                e => Failure::Serve(e),
            })
    })
}

/// The bindings of `name` to `services`, from the catalog the proxy is configured with: each
/// service must exist and inject exactly this secret.
fn bindings_for(
    config: &ProxyConfig,
    name: &SecretName,
    services: &[String],
) -> Result<Vec<Binding>, Failure> {
    let catalog = Catalog::load(&config.services)?;
    let mut out = Vec::new();
    for wanted in services {
        let service = ServiceName::new(wanted)
            .ok()
            .and_then(|n| catalog.get(&n))
            .ok_or_else(|| Failure::NoService {
                service: wanted.clone(),
                catalog: config.services.clone(),
            })?;
        match &service.kind {
            ServiceKind::Http {
                inject: Some(inject),
                ..
            } if &inject.secret == name => {}
            _ => {
                return Err(Failure::NotInjected {
                    service: service.name.clone(),
                    name: name.clone(),
                    catalog: config.services.clone(),
                });
            }
        }
        out.push(Binding {
            service: service.name.to_string(),
            upstream: service.upstream.binding(),
        });
    }
    Ok(out)
}

fn secrets(command: SecretsCommand) -> Result<(), Failure> {
    let config_path = match &command {
        SecretsCommand::Set { config, .. }
        | SecretsCommand::Bind { config, .. }
        | SecretsCommand::List { config }
        | SecretsCommand::Remove { config, .. } => config.clone(),
    };
    let config = ProxyConfig::load(&config_path)?;
    let identity = VaultIdentity::open_file(&config.vault_identity)?;
    let mut vault = Vault::open(&config.vault, &identity)?;
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
            return Ok(());
        }
        SecretsCommand::Set { name, services, .. } => {
            let name = SecretName::new(&name).map_err(Failure::SecretName)?;
            if name.is_reserved() {
                return Err(Failure::Reserved);
            }
            let bindings = bindings_for(&config, &name, &services)?;
            let mut value = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut value)
                .map_err(Failure::Stdin)?;
            let value = value.trim_end_matches(['\n', '\r']).to_owned();
            vault
                .set_credential(name, SecretString::from(value), bindings)
                .map_err(Failure::SetCredential)?;
        }
        SecretsCommand::Bind { name, services, .. } => {
            let name = match SecretName::new(&name) {
                Ok(n) if n.is_reserved() => return Err(Failure::Reserved),
                Ok(n) if vault.credentials().any(|(c, _)| c == &n) => n,
                _ => return Err(Failure::NoCredential(name)),
            };
            let bindings = bindings_for(&config, &name, &services)?;
            vault.bind(&name, bindings)?;
        }
        SecretsCommand::Remove { name, .. } => {
            let Ok(secret) = SecretName::new(&name) else {
                return Err(Failure::NoSecret(name));
            };
            if secret.is_reserved() {
                return Err(Failure::Reserved);
            }
            if !vault.remove(&secret) {
                return Err(Failure::NoSecret(name));
            }
        }
    }
    vault.save(&config.vault, &identity)?;
    eprintln!("vault updated; a running proxy reads it again on SIGHUP");
    Ok(())
}

fn reissue_cert(
    config_path: &std::path::Path,
    ca_key: &std::path::Path,
    listen: Option<SocketAddr>,
) -> Result<(), Failure> {
    let config = ProxyConfig::load(config_path)?;
    let mut pem = zeroize::Zeroizing::new(String::new());
    std::fs::File::open(ca_key)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut pem))
        .map_err(|source| Failure::CaKeyRead {
            path: ca_key.to_path_buf(),
            source,
        })?;
    let listen = listen.unwrap_or(config.listen);
    let pin = bglass_proxy::init::reissue(&config, &pem, listen).map_err(Failure::Reissue)?;
    println!("certificate: {}", config.tls_chain.display());
    println!("names:       {}", listen.ip());
    println!("pin:         {pin} (unchanged)");
    eprintln!(
        "Restart the proxy to serve the new certificate; move the CA key off this host again."
    );
    Ok(())
}

/// A step of `ssh-ca`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SshCaStep {
    /// Make a new CA; hosts are to trust both.
    Begin,
    /// Sign with the new CA (after every host trusts it); the old one stays listed.
    Finish,
    /// Drop the old CA (after every host trusts the new one alone).
    Retire,
    /// Print the lines hosts must trust now.
    Keys,
    /// Recorded sessions: make the session CA and the proxy's SSH host key if missing; print
    /// the session CA (for recorded hosts' TrustedUserCAKeys, instead of the CA above) and
    /// the host key (for responders' `ssh_host_key`).
    Recording,
}

fn ssh_ca(config_path: &std::path::Path, step: SshCaStep) -> Result<(), Failure> {
    use bglass_proxy::ssh_ca::Step;
    let config = ProxyConfig::load(config_path)?;
    let step = match step {
        SshCaStep::Recording => {
            let keys = bglass_proxy::recording_keys::run(&config)?;
            println!("session ca:   {}", keys.session_ca);
            println!("ssh host key: {}", keys.host_key);
            eprintln!(
                "Recorded hosts (record = true) trust the session CA alone in TrustedUserCAKeys; responders pin the host key as ssh_host_key in their config.{}",
                if keys.made {
                    " The keys were made just now: SIGHUP the proxy."
                } else {
                    ""
                }
            );
            return Ok(());
        }
        SshCaStep::Begin => Step::Begin,
        SshCaStep::Finish => Step::Finish,
        SshCaStep::Retire => Step::Retire,
        SshCaStep::Keys => Step::Keys,
    };
    let trusted = bglass_proxy::ssh_ca::run(&config, step)?;
    for line in &trusted.lines {
        println!("{line}");
    }
    let next = match (step, trusted.next, trusted.previous) {
        (Step::Finish, ..) => {
            "The proxy signs with the new CA after SIGHUP (or a restart). Once every host trusts the new CA alone: `ssh-ca retire`."
        }
        (Step::Retire, ..) => "Hosts now need only the line above.",
        (_, true, _) => {
            "Put both lines in every host's TrustedUserCAKeys file; then `ssh-ca finish`."
        }
        (_, false, true) => {
            "The old CA is still listed for the overlap; `ssh-ca retire` once no host needs it."
        }
        _ => "The line hosts need in their TrustedUserCAKeys file.",
    };
    eprintln!("{next}");
    Ok(())
}

fn rotate_key(config_path: &std::path::Path) -> Result<(), Failure> {
    let config = ProxyConfig::load(config_path)?;
    let done = bglass_proxy::rotate::rotate_signing_key(&config)?;
    if done.resumed {
        println!("finished the rotation an earlier run began");
    }
    println!("old signing key: {}", done.old);
    println!("new signing key: {}", done.new);
    println!(
        "recorded at entry {} of the audit log, signed by both keys",
        done.index
    );
    println!(
        "note verifier key: {}",
        bglass_core::audit::checkpoint::verifier_key(
            &bglass_core::audit::checkpoint::origin(&config.id),
            &done.new
        )
    );
    eprintln!(
        "Start the proxy again. CLIs and `bglass audit verify` follow the signed transition; update the [[witness_of]] key of this proxy on the proxies that witness it, and this proxy's key in the witness lists of CLI configs (it also cosigns as a witness)."
    );
    Ok(())
}

fn export_ca_key(config_path: &std::path::Path, out: &std::path::Path) -> Result<(), Failure> {
    let config = ProxyConfig::load(config_path)?;
    let identity = VaultIdentity::open_file(&config.vault_identity)?;
    let mut vault = Vault::open(&config.vault, &identity)?;
    if out.exists() {
        return Err(Failure::OutExists(out.to_path_buf()));
    }
    let name = SecretName::new(bglass_proxy::init::CA_KEY_SECRET).map_err(Failure::SecretName)?;
    let encoded = vault.proxy_key(&name).ok_or(Failure::NoCaKey)?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(bglass_core::ExposeSecret::expose_secret(encoded))
        .map(zeroize::Zeroizing::new)
        .map_err(|_| Failure::CaKeyEncoding)?;
    let pem = zeroize::Zeroizing::new(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der[..])
    ));
    bglass_core::vault::write_private(out, pem.as_bytes())?;
    vault.remove_proxy_key(&name);
    vault
        .save(&config.vault, &identity)
        .map_err(Failure::CaKeyStillInVault)?;
    eprintln!(
        "the CA key is now in {} and no longer in the vault: move it off this host",
        out.display()
    );
    Ok(())
}
