//! The world of a simulated drill, on loopback, under the drill's output directory:
//! simulated tools, a fault link in front of every named link, real proxies (made with
//! `bglass-proxy init`'s code, run in-process with real mutual TLS and real audit logs), a
//! generated roster of synthetic participants, and `sshd` for the SSH tools when installed.
//!
//! ```text
//! participant ──► link responder->proxy:P ──► proxy P ──► link proxy->service:S ──► tool S
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bglass_core::SecretString;
use bglass_core::catalog::{Catalog, CertPin, ServiceKind};
use bglass_core::id::{DependencyName, ProxyId, ResponderId, SecretName};
use bglass_core::keys::{ResponderIdentity, SigningKey};
use bglass_core::roster::{Responder, Role};
use bglass_core::scenario::production::Endpoint;
use bglass_core::scenario::{FaultKind, Link, Production, Scenario};
use bglass_core::vault::{Vault, VaultIdentity};

use super::link::FaultLink;
use super::participant::SshProbe;
use super::tools::{self, Sshd, Tool};
use bglass_client::config::ProxyEntry;
use bglass_client::error::{CliError, CliResult};

/// A production dependency that the break-glass path turned out to need: the scenario
/// declares it down, so its links are down for the whole drill.
#[derive(Clone, Debug)]
pub struct Forced {
    /// The dependency.
    pub dependency: DependencyName,
    /// Why it matched (`127.0.0.1:18011 is in 127.0.0.0/24`).
    pub why: String,
}

/// One running proxy of the world.
#[derive(Debug)]
pub struct WorldProxy {
    /// Its id (the scenario's name for it).
    pub id: ProxyId,
    /// Its directory.
    pub dir: PathBuf,
    /// Its signing key (for verifying its log).
    pub key: bglass_core::keys::PublicKey,
    /// Where it listens (behind its responder link).
    pub listen: SocketAddr,
    /// Its CA pin.
    pub pin: CertPin,
    /// Its SSH CA line.
    pub ssh_ca: String,
    /// Running: stop with `shutdown`.
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
    pub(super) shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A synthetic participant.
#[derive(Debug)]
pub struct Member {
    /// Roster id.
    pub id: ResponderId,
    /// Key.
    pub key: SigningKey,
    /// An approver.
    pub approver: bool,
}

impl Member {
    /// A fresh identity for a session (keys are not `Clone`).
    pub fn identity(&self) -> CliResult<ResponderIdentity> {
        Ok(ResponderIdentity {
            id: self.id.clone(),
            key: SigningKey::from_pkcs8(self.key.pkcs8_der()).map_err(CliError::internal)?,
        })
    }
}

/// The world.
#[derive(Debug)]
pub struct World {
    /// The catalog as the proxies load it (upstreams are the links).
    pub catalog: Catalog,
    /// Proxies in the participants' priority order.
    pub proxies: Vec<WorldProxy>,
    /// Fault links by link.
    pub links: BTreeMap<Link, Arc<FaultLink>>,
    /// Links forced down by a declared-down dependency.
    pub forced: BTreeMap<Link, Forced>,
    /// Participants (approvers first).
    pub members: Vec<Member>,
    /// The drill lead (starts and stops the drill on every proxy).
    pub lead: Member,
    /// How SSH tools are probed.
    pub ssh: SshProbe,
    /// Things the report must say about how the world was built.
    pub notes: Vec<String>,
    tools: Vec<Tool>,
    sshd: Vec<Sshd>,
}

fn io_err(what: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::user(format!("{}: {e}", what.display()))
}

fn random_hex(bytes: usize) -> CliResult<String> {
    let mut b = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| CliError::internal("random generator failed"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The simulated tools, the fault links in front of them, and the catalog text with each
/// upstream moved to its link (and each SSH host key to the world's own).
struct Stand {
    tools: Vec<Tool>,
    /// Vault secrets the HTTP tools check: (name, value).
    secrets: Vec<(SecretName, String)>,
    /// SSH tools to run `sshd` for: (service, port, host key, principals).
    ssh_hosts: Vec<SshHost>,
    links: BTreeMap<Link, Arc<FaultLink>>,
    text: String,
}

/// One SSH tool's `sshd`, to be started once the proxies' SSH CAs exist.
struct SshHost {
    service: String,
    port: u16,
    host_key: String,
    principals: Vec<String>,
}

/// The participants (approvers first), the drill lead, and the roster naming them.
struct People {
    members: Vec<Member>,
    lead: Member,
    roster: String,
}

/// Builds and starts the world for `scenario` in `dir` with `count` participants of whom
/// `approvers` approve.
pub async fn build(
    scenario: &Scenario,
    catalog_text: &str,
    production: Option<&Production>,
    dir: &Path,
    count: u32,
    approvers: u32,
) -> CliResult<World> {
    let original = Catalog::from_bytes(Path::new("catalog"), catalog_text.as_bytes().to_vec())
        .map_err(CliError::user)?;
    let mut notes = Vec::new();
    let have_sshd = Path::new(tools::SSHD).exists();
    let mut stand = stand_in(&original, catalog_text, have_sshd).await?;
    let mut ssh = if have_sshd {
        SshProbe::Login {
            user: Some(tools::local_user()),
            world: true,
        }
    } else {
        notes.push(format!(
            "sshd is not installed ({} missing): SSH tools were probed by the SSH banner through the tunnel and a certificate issued by the proxy, not by a login.",
            tools::SSHD
        ));
        SshProbe::Banner
    };
    if scenario
        .faults
        .iter()
        .any(|f| f.link == Link::ProxyToNotify)
    {
        notes.push(
            "faults on proxy->notify have no effect here: the simulated proxies send no notifications."
                .to_owned(),
        );
    }
    // Declared-down dependencies the path turns out to need: their links go down.
    let forced = forced_links(scenario, &original, production);
    let catalog = Catalog::from_bytes(
        Path::new("world/services.toml"),
        stand.text.as_bytes().to_vec(),
    )
    .map_err(|e| CliError::internal(format!("the world's catalog: {e}")))?;
    let people = people(count, approvers)?;
    let (mut proxies, listeners) = init_proxies(scenario, dir, &stand, &catalog, &people.roster)?;
    let sshd = match start_sshd(dir, &stand.ssh_hosts, &proxies).await? {
        Ok(sshd) => {
            if let (
                false,
                SshProbe::Login {
                    user: Some(user), ..
                },
            ) = (sshd.is_empty(), &ssh)
            {
                notes.push(format!(
                    "SSH tools are real sshd processes ({}) trusting the proxies' SSH CAs; participants log in with their certificates as {user}.",
                    tools::SSHD
                ));
            }
            sshd
        }
        Err(why) => {
            // Say so and probe less, rather than fail the drill for the simulator's sake.
            notes.push(why);
            for host in &stand.ssh_hosts {
                let tool = tools::ssh_banner_on(host.port)
                    .await
                    .map_err(CliError::internal)?;
                stand.tools.push(tool);
            }
            ssh = SshProbe::Banner;
            Vec::new()
        }
    };
    start_proxies(&mut proxies, listeners, &mut stand.links).await?;
    for (link, f) in &forced {
        if let Some(l) = stand.links.get(link) {
            l.set_faults(vec![FaultKind::Down]);
        }
        notes.push(format!(
            "{link} is down for the whole drill: the scenario declares {} down, and {}.",
            f.dependency, f.why
        ));
    }
    Ok(World {
        catalog,
        proxies,
        links: stand.links,
        forced,
        members: people.members,
        lead: people.lead,
        ssh,
        notes,
        tools: stand.tools,
        sshd,
    })
}

/// A stand-in for each catalog service and a fault link in front of it.
async fn stand_in(original: &Catalog, catalog_text: &str, have_sshd: bool) -> CliResult<Stand> {
    let mut stand = Stand {
        tools: Vec::new(),
        secrets: Vec::new(),
        ssh_hosts: Vec::new(),
        links: BTreeMap::new(),
        text: catalog_text.to_owned(),
    };
    for service in original.services() {
        let name = service.name.to_string();
        if service.upstream.tls.is_some() {
            // Its stand-in would need the pinned certificate; and the real address must
            // never be reached from a simulation.
            return Err(CliError::user(format!(
                "{name}: the simulator cannot stand in for an https upstream"
            )));
        }
        let upstream = match &service.kind {
            ServiceKind::Http { inject, .. } => {
                let (header, value) = match inject {
                    Some(inject) => {
                        let secret = random_hex(24)?;
                        let value = inject.render(&secret);
                        stand.secrets.push((inject.secret.clone(), secret));
                        (inject.header.clone(), value)
                    }
                    None => ("x-bglass-drill-none".to_owned(), String::new()),
                };
                let tool = tools::http(name.clone(), header, value)
                    .await
                    .map_err(CliError::internal)?;
                stand.push(tool)
            }
            ServiceKind::Tcp { probe } => {
                let tool = tools::tcp(*probe, format!("{name} ready\r\n"))
                    .await
                    .map_err(CliError::internal)?;
                stand.push(tool)
            }
            ServiceKind::Ssh {
                principals,
                host_key,
                ..
            } if have_sshd => {
                let (public, private) = host_key_pair()?;
                // The world's host key is pinned in the world's catalog.
                stand.text = stand
                    .text
                    .replace(&format!("{host_key:?}"), &format!("{public:?}"));
                let port = tools::free_port().map_err(CliError::internal)?;
                stand.ssh_hosts.push(SshHost {
                    service: name.clone(),
                    port,
                    host_key: private,
                    principals: principals.clone(),
                });
                SocketAddr::from(([127, 0, 0, 1], port))
            }
            ServiceKind::Ssh { .. } => {
                let tool = tools::ssh_banner().await.map_err(CliError::internal)?;
                stand.push(tool)
            }
            _ => {
                return Err(CliError::user(format!(
                    "{name}: the simulator cannot stand in for this kind of service"
                )));
            }
        };
        let link = Link::ProxyToService(service.name.clone());
        let fault_link = FaultLink::bind(link.to_string(), upstream)
            .await
            .map_err(CliError::internal)?;
        stand.text = stand.text.replace(
            &format!("\"{}\"", service.upstream.addr),
            &format!("\"{}\"", fault_link.addr()),
        );
        stand.links.insert(link, fault_link);
    }
    Ok(stand)
}

impl Stand {
    /// Keeps `tool` running; returns its address.
    fn push(&mut self, tool: Tool) -> SocketAddr {
        let addr = tool.addr;
        self.tools.push(tool);
        addr
    }
}

/// A fresh Ed25519 host key for an SSH tool: (public, private), OpenSSH format.
fn host_key_pair() -> CliResult<(String, String)> {
    let bad = |e: ssh_key::Error| CliError::internal(format!("host key: {e}"));
    let key = ssh_key::PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(bad)?;
    let public = key.public_key().to_openssh().map_err(bad)?;
    let private = key.to_openssh(ssh_key::LineEnding::LF).map_err(bad)?;
    Ok((public, private.to_string()))
}

/// `count` participants `p0001`, … (the first `approvers` approve), a drill lead, and
/// the roster that names them.
fn people(count: u32, approvers: u32) -> CliResult<People> {
    let member = |id: &str, approver| -> CliResult<Member> {
        Ok(Member {
            id: ResponderId::new(id).map_err(CliError::internal)?,
            key: SigningKey::generate().map_err(CliError::internal)?,
            approver,
        })
    };
    let members = (1..=count)
        .map(|i| member(&format!("p{i:04}"), i <= approvers))
        .collect::<CliResult<Vec<_>>>()?;
    let lead = member("drill-lead", false)?;
    let mut roster =
        String::from("# The drill's synthetic participants (generated).\nversion = 1\n\n");
    for m in &members {
        let mut roles = vec![Role::Responder];
        if m.approver {
            roles.push(Role::Approver);
        }
        let entry = Responder {
            id: m.id.clone(),
            name: format!("Participant {}", m.id),
            key: m.key.public_key(),
            roles,
        };
        roster.push_str(&entry.to_toml());
        roster.push('\n');
    }
    let entry = Responder {
        id: lead.id.clone(),
        name: "Drill lead".to_owned(),
        key: lead.key.public_key(),
        roles: vec![Role::DrillLead],
    };
    roster.push_str(&entry.to_toml());
    Ok(People {
        members,
        lead,
        roster,
    })
}

/// A proxy made by `bglass-proxy init`, not yet started, and the listener it will serve.
type Unstarted = (tokio::net::TcpListener, PathBuf);

/// Makes each of the scenario's proxies: its listener first (the certificate names the
/// address), then `init`, the world's catalog and roster, and the tools' secrets.
fn init_proxies(
    scenario: &Scenario,
    dir: &Path,
    stand: &Stand,
    served: &Catalog,
    roster: &str,
) -> CliResult<(Vec<WorldProxy>, Vec<Unstarted>)> {
    let mut proxies = Vec::new();
    let mut listeners = Vec::new();
    for id in &scenario.proxies {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(CliError::internal)?;
        listener.set_nonblocking(true).map_err(CliError::internal)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(CliError::internal)?;
        let listen = listener.local_addr().map_err(CliError::internal)?;
        let pdir = dir.join(id.as_str());
        let made = bglass_proxy::init::init(&pdir, id, listen, None).map_err(CliError::user)?;
        std::fs::write(pdir.join("services.toml"), &stand.text).map_err(io_err(&pdir))?;
        std::fs::write(pdir.join("responders.toml"), roster).map_err(io_err(&pdir))?;
        let config_text = std::fs::read_to_string(&made.config).map_err(io_err(&made.config))?;
        // Upstreams answer at once here; a stuck one should fail an attempt in seconds.
        // Every participant reaches the proxy from 127.0.0.1 (through its link), where real
        // responders each come from their own address: under the default cap per source
        // (256 connections) a crowd of more than a few hundred was turned away at accept
        // as if it were one flooding peer. The cap per source is the total cap here.
        let config_text = config_text.replacen(
            "# [limits]",
            &format!(
                "[limits]\nupstream_timeout = \"5s\"\nheader_timeout = \"10s\"\nmax_connections_per_source = {}",
                bglass_proxy::config::DEFAULT_MAX_CONNECTIONS
            ),
            1,
        );
        std::fs::write(&made.config, config_text).map_err(io_err(&made.config))?;
        store_secrets(&made.config, &stand.secrets, served)?;
        proxies.push(WorldProxy {
            id: id.clone(),
            dir: pdir,
            key: made.signing_key,
            listen,
            pin: made.pin,
            ssh_ca: made.ssh_ca,
            task: None,
            shutdown: None,
        });
        listeners.push((listener, made.config));
    }
    Ok((proxies, listeners))
}

/// Puts the tools' secrets in the vault of the proxy configured at `config`, each bound,
/// as an operator binds them, to the services that inject it.
fn store_secrets(
    config: &Path,
    secrets: &[(SecretName, String)],
    served: &Catalog,
) -> CliResult<()> {
    let internal = |e: &dyn std::fmt::Display| CliError::internal(e.to_string());
    let config = bglass_proxy::config::ProxyConfig::load(config).map_err(|e| internal(&e))?;
    let identity = VaultIdentity::open_file(&config.vault_identity).map_err(|e| internal(&e))?;
    let mut vault = Vault::open(&config.vault, &identity).map_err(|e| internal(&e))?;
    for (name, value) in secrets {
        let bindings = served
            .services()
            .iter()
            .filter(|s| {
                matches!(&s.kind, ServiceKind::Http { inject: Some(i), .. } if i.secret == *name)
            })
            .map(|s| bglass_core::vault::Binding {
                service: s.name.to_string(),
                upstream: s.upstream.binding(),
            })
            .collect();
        vault
            .set_credential(name.clone(), SecretString::from(value.clone()), bindings)
            .map_err(|e| internal(&e))?;
    }
    vault
        .save(&config.vault, &identity)
        .map_err(|e| internal(&e))
}

/// Starts `sshd` for each SSH tool, trusting every proxy's SSH CA. `Ok(Err(why))` when one
/// would not start: the world then probes SSH by banner, and the report says why.
async fn start_sshd(
    dir: &Path,
    hosts: &[SshHost],
    proxies: &[WorldProxy],
) -> CliResult<Result<Vec<Sshd>, String>> {
    let cas: String = proxies
        .iter()
        .map(|p| format!("{}\n", p.ssh_ca.trim()))
        .collect();
    let mut sshd = Vec::new();
    for host in hosts {
        let sdir = dir.join("sshd").join(&host.service);
        let (key, cas, principals, port) = (
            host.host_key.clone(),
            cas.clone(),
            host.principals.clone(),
            host.port,
        );
        let started = tokio::task::spawn_blocking(move || {
            Sshd::start(&sdir, port, key.as_bytes(), &cas, &principals)
        })
        .await
        .map_err(CliError::internal)?;
        match started {
            Ok(started) => sshd.push(started),
            Err(e) => {
                return Ok(Err(format!(
                    "sshd could not be started for {} ({e}): SSH tools were probed by the SSH banner through the tunnel and a certificate issued by the proxy, not by a login.",
                    host.service
                )));
            }
        }
    }
    Ok(Ok(sshd))
}

/// Starts each proxy on its listener (`bglass-proxy run`'s code, in-process), waits until
/// it serves, and puts a fault link in front of it.
async fn start_proxies(
    proxies: &mut [WorldProxy],
    listeners: Vec<Unstarted>,
    links: &mut BTreeMap<Link, Arc<FaultLink>>,
) -> CliResult<()> {
    for (proxy, (listener, config)) in proxies.iter_mut().zip(listeners) {
        let (running, startup) = bglass_proxy::server::start(&config)
            .map_err(|e| CliError::internal(format!("proxy {}: {e}", proxy.id)))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let id = proxy.id.clone();
        proxy.task = Some(tokio::spawn(async move {
            let ready = move || {
                let _ = ready_tx.send(());
            };
            let until = async {
                let _ = stopped.await;
            };
            if let Err(e) =
                bglass_proxy::server::serve_on(running, startup, listener, ready, until).await
            {
                eprintln!("bglass: drill proxy {id} stopped: {e}");
            }
        }));
        proxy.shutdown = Some(stop);
        ready_rx
            .await
            .map_err(|_| CliError::internal(format!("proxy {} did not start", proxy.id)))?;
        let link = Link::ResponderToProxy(proxy.id.clone());
        let fault_link = FaultLink::bind(link.to_string(), proxy.listen)
            .await
            .map_err(CliError::internal)?;
        links.insert(link, fault_link);
    }
    Ok(())
}

/// The links a scenario's down dependencies take down: every tool whose upstream matches
/// a dependency declared down.
pub fn forced_links(
    scenario: &Scenario,
    catalog: &Catalog,
    production: Option<&Production>,
) -> BTreeMap<Link, Forced> {
    let mut forced = BTreeMap::new();
    let Some(production) = production else {
        return forced;
    };
    for down in &scenario.down {
        let Some(dependency) = production.get(&down.value) else {
            continue;
        };
        for service in catalog.services() {
            let endpoint = Endpoint::Addr(service.upstream.addr);
            if let Some(why) = dependency.matches(&endpoint) {
                forced
                    .entry(Link::ProxyToService(service.name.clone()))
                    .or_insert(Forced {
                        dependency: down.value.clone(),
                        why: format!("the upstream of {}: {why}", service.name),
                    });
            }
        }
    }
    forced
}

impl World {
    /// The proxies as a participant's config lists them: through their responder links.
    pub fn entries(&self) -> Vec<ProxyEntry> {
        self.proxies
            .iter()
            .filter_map(|p| {
                let link = self.links.get(&Link::ResponderToProxy(p.id.clone()))?;
                Some(ProxyEntry {
                    witnesses: Vec::new(),
                    witness_quorum: 0,
                    ssh_host_key: None,
                    url: format!("https://{}", link.addr()),
                    addr: link.addr(),
                    pin: p.pin,
                })
            })
            .collect()
    }

    /// What the simulated tools saw, for the report: requests with the right credential (or
    /// protocol) and refusals.
    pub fn tool_note(&self) -> String {
        let (mut ok, mut refused) = (0u64, 0u64);
        for t in &self.tools {
            ok += t
                .counters
                .authorised
                .load(std::sync::atomic::Ordering::Relaxed);
            refused += t
                .counters
                .refused
                .load(std::sync::atomic::Ordering::Relaxed);
        }
        format!(
            "the simulated HTTP tools answered {ok} request(s) carrying the injected credential and refused {refused} without it."
        )
    }

    /// Stops the proxies (each records its stop and signs a last checkpoint), then the
    /// links, tools and sshd.
    pub async fn shutdown(&mut self) {
        for link in self.links.values() {
            link.set_faults(Vec::new());
        }
        for p in &mut self.proxies {
            if let Some(stop) = p.shutdown.take() {
                let _ = stop.send(());
            }
            if let Some(task) = p.task.take() {
                let _ = task.await;
            }
        }
        for link in self.links.values() {
            link.shutdown();
        }
        self.tools.clear();
        self.sshd.clear();
    }
}
