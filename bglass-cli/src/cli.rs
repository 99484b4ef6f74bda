//! The command line, as clap parses it. No side effects here: `main` dispatches to `cmd`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::EXIT_CODES;

mod admin;
mod audit;
pub use admin::{AdminChange, AdminCommand, AdminFileKind, AdminSignArgs, AdminVerifyArgs};
pub use audit::{
    AuditCommand, AuditExportArgs, AuditFilterArgs, AuditMonitorArgs, AuditPlayArgs,
    AuditProveArgs, AuditReportArgs, AuditShowArgs, AuditSource, AuditVerifyArgs, ExportFormat,
};

/// bglass: signed, audited, time-limited break-glass access to critical tools.
#[derive(Debug, Parser)]
#[command(name = "bglass", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// The CLI config file [default: $BGLASS_CONFIG, else $XDG_CONFIG_HOME/bglass/config.toml,
    /// else ~/.config/bglass/config.toml]
    #[arg(long, global = true, value_name = "FILE", env = "BGLASS_CONFIG")]
    pub config: Option<PathBuf>,

    /// Show the system's own error text after each plain cause (for reports).
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,

    /// When to colour the output: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_name = "WHEN", value_enum, default_value_t)]
    pub color: bglass_client::style::ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create your responder key and CLI config, and print your roster entry for the operator.
    Enroll(EnrollArgs),
    /// Unlock your key and show who you are to the proxies (checks the passphrase).
    Whoami,
    /// Work with the catalog of critical tools.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Ask for access to a critical tool (signed, audited, time-limited).
    Access(AccessArgs),
    /// List pending access requests (approvers see everyone's); `requests cancel ID`
    /// withdraws your own.
    Requests(RequestsArgs),
    /// Approve a colleague's pending request (two-person rule).
    Approve(ApproveArgs),
    /// Refuse a pending request.
    Deny(DenyArgs),
    /// End a grant now (yours, or anyone's as an approver).
    Revoke(RevokeArgs),
    /// Close the review of an emergency bypass.
    Review(ReviewArgs),
    /// List your grants (approvers also see active grants and open reviews).
    Grants(JsonArgs),
    /// Show the proxies, who you are to them, and the services' health.
    Status(JsonArgs),
    /// Make one HTTP request to a tool through the proxy; the body goes to stdout.
    Curl(CurlArgs),
    /// Open a tool in the browser through a local forwarder on 127.0.0.1.
    Open(OpenArgs),
    /// SSH to a host with a short-lived certificate (a shell, or `-- COMMAND…`).
    Ssh(SshArgs),
    /// A stdin/stdout tunnel to an SSH or TCP service (for OpenSSH's ProxyCommand).
    Tunnel(TunnelArgs),
    /// Forward a loopback port to an SSH or TCP service (e.g. a database with its own client).
    Forward(ForwardArgs),
    /// Verify, read and summarise a proxy's audit log (offline, from a copied directory).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Sign a new catalog or roster as an admin of the proxies' `[admins]`, or check who
    /// signed it (k-of-n signed config changes).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Replace your key with a new one, vouched for by the old (for the roster's next version).
    Rekey(crate::cmd::rekey::RekeyArgs),
    /// Prove every pathway ready: a canary grant and a probe per proxy and tool (canary role).
    #[cfg(feature = "drill")]
    Canary(crate::cmd::canary::CanaryArgs),
    /// Rehearse outages: simulate a scenario locally, run a live drill, score it.
    #[cfg(feature = "drill")]
    #[command(subcommand)]
    Drill(DrillCommand),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Unlock your key once: a background key agent signs for later commands until the time
    /// limit (no passphrase prompt meanwhile).
    Unlock(UnlockArgs),
    /// End the key agent now (it drops the key).
    Lock,
    /// Write the manual pages (bglass.1, bglass-COMMAND.1, …) into a directory.
    Man(ManArgs),
    /// Internal: the key agent process `bglass unlock` starts.
    #[command(name = "agent-daemon", hide = true)]
    AgentDaemon(AgentDaemonArgs),
    /// The console: proxies, services, requests to approve, grants with their time left and
    /// the live drill, kept current; one unlock for the session (`?` shows the keys).
    Tui,
}

/// `bglass drill …`.
#[cfg(feature = "drill")]
#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Run a scenario in a world on loopback (real proxies, simulated tools, fault links,
    /// synthetic participants) and score it; exit 6 when its expectations are not met.
    Simulate(DrillSimulateArgs),
    /// Show what a scenario will do, before doing it.
    Plan(DrillPlanArgs),
    /// List every network endpoint the break-glass path needs, flagged where it matches a
    /// declared production dependency; exit 6 when one does.
    Deps(DrillDepsArgs),
    /// Start a live drill on every proxy (drill-lead role).
    Start(DrillStartArgs),
    /// Stop the live drill on every proxy (drill-lead role).
    Stop(DrillStopArgs),
    /// Take part in the live drill: probe the drill's tools through the proxies.
    Join(JsonArgs),
    /// Score a live drill from copies of the proxies' audit logs.
    Report(DrillReportArgs),
}

/// `bglass drill simulate`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  bglass drill simulate drills/zero-trust-outage.toml
  bglass drill simulate drills/company-wide.toml --participants 2000 --out /tmp/drill

Writes report.json, report.html and the world (each proxy's config and audit log) to
--out [default: drill-reports/<drill id>].")]
pub struct DrillSimulateArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Participants, instead of the scenario's count.
    #[arg(long, value_name = "N")]
    pub participants: Option<u32>,
    /// The output directory (must not hold a drill already).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the scorecard as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass drill plan`.
#[cfg(feature = "drill")]
#[derive(Debug, Args)]
pub struct DrillPlanArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass drill deps`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  bglass drill deps --proxy-config /etc/bglass/proxy.toml --services services.toml \\
      --cli-config ~/.config/bglass/config.toml --production drills/production.toml")]
pub struct DrillDepsArgs {
    /// A proxy's proxy.toml (repeat for each proxy).
    #[arg(long = "proxy-config", value_name = "FILE")]
    pub proxy_configs: Vec<PathBuf>,
    /// The catalog.
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,
    /// A responder's CLI config (repeat).
    #[arg(long = "cli-config", value_name = "FILE")]
    pub cli_configs: Vec<PathBuf>,
    /// The declared production dependencies.
    #[arg(long, value_name = "FILE")]
    pub production: PathBuf,
    /// Print the endpoints as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass drill start`.
#[cfg(feature = "drill")]
#[derive(Debug, Args)]
pub struct DrillStartArgs {
    /// The scenario file (its tools, client-side faults and duration make the plan).
    pub scenario: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass drill stop`.
#[cfg(feature = "drill")]
#[derive(Debug, Args)]
pub struct DrillStopArgs {
    /// The drill's id [default: the drill running on the first proxy that answers].
    pub drill: Option<String>,
}

/// `bglass drill report`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  bglass drill report zero-trust-outage-20261122031500 --log copies/primary/log \\
      --key ed25519:… --scenario drills/zero-trust-outage.toml --out report/")]
pub struct DrillReportArgs {
    /// The drill's id (as `bglass drill start` printed it).
    pub drill: String,
    /// A copy of a proxy's audit log directory (repeat for each proxy).
    #[arg(long = "log", value_name = "DIR", required = true)]
    pub logs: Vec<PathBuf>,
    /// Each log's proxy signing key, in the order of --log (as `bglass-proxy init` printed it).
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// The scenario, to judge its expectations.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Where report.json and report.html go.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the scorecard as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass enroll`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  bglass enroll --id alice --proxy https://192.0.2.10:8443 --pin sha256:3f1c…

Give --proxy and --pin once per proxy, in priority order (the first is tried first).
The passphrase is read from BGLASS_PASSPHRASE when set, otherwise asked twice on the terminal.")]
pub struct EnrollArgs {
    /// Your responder id (as the operator will put it in the roster).
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// Proxy URL, https://IP:PORT (repeat, in priority order).
    #[arg(long = "proxy", value_name = "URL", required = true)]
    pub proxies: Vec<String>,
    /// SHA-256 pin of each proxy's CA, sha256:HEX (as printed by `bglass-proxy init`), in the
    /// same order as --proxy.
    #[arg(long = "pin", value_name = "PIN", required = true)]
    pub pins: Vec<String>,
    /// Your display name in the roster [default: the id].
    #[arg(long)]
    pub name: Option<String>,
    /// Roles to ask the operator for (responder, approver, drill-lead, auditor, canary).
    #[arg(long, value_delimiter = ',', default_value = "responder")]
    pub roles: Vec<String>,
    /// Where to write the encrypted key [default: identity.age beside the config].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// scrypt work factor (log2 N) protecting the key: 18 takes about a second and 256 MiB;
    /// lower values are faster to unlock and cheaper to attack.
    #[arg(long, value_name = "N", default_value_t = bglass_core::keys::DEFAULT_WORK_FACTOR)]
    pub kdf_work_factor: u8,
}

/// Just `--json`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass access`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  bglass access grafana --reason \"dashboards for the eu outage\" --incident INC-123

Services that need approval wait for an approver (`bglass approve ID`); the TTL starts when
the last approval lands. The wait rides out a proxy that is down or restarting until --wait
is over, and asking again resumes your pending request (or reuses your live grant) for the
service unless you pass --new. --emergency skips approvals where the catalog allows it: short TTL,
approvers are notified, and an approver must review it afterwards.")]
pub struct AccessArgs {
    /// The service (see `bglass status`).
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::services))]
    pub service: String,
    /// Why you need access (recorded in the audit log).
    #[arg(long)]
    pub reason: String,
    /// The incident this is for.
    #[arg(long)]
    pub incident: String,
    /// How long (30m, 1h, …); at most the service's maximum [default: the service's default].
    #[arg(long)]
    pub ttl: Option<String>,
    /// Skip approvals under the emergency bypass (reviewed afterwards).
    #[arg(long)]
    pub emergency: bool,
    /// How long to wait for approvals.
    #[arg(long, default_value = "15m")]
    pub wait: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Ask anew even when you hold a live grant for the service or have a pending request
    /// for it (by default `access` reuses the grant, or waits on that request again).
    #[arg(long)]
    pub new: bool,
}

/// `bglass requests [cancel ID]`.
#[derive(Debug, Args)]
pub struct RequestsArgs {
    /// Withdraw a request instead of listing them.
    #[command(subcommand)]
    pub command: Option<RequestsCommand>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass requests …`.
#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// Withdraw your own pending request (signed and audited; approvers no longer see it).
    Cancel(CancelArgs),
}

/// `bglass requests cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The request id (r-…).
    pub request: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The request id (r-…).
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::requests))]
    pub request: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass deny`.
#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The request id (r-…).
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::requests))]
    pub request: String,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub reason: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The grant id (g-…).
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::grants))]
    pub grant: String,
    /// Why (recorded in the audit log).
    #[arg(long, default_value = "revoked by bglass revoke")]
    pub reason: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The emergency grant id (g-…).
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::grants))]
    pub grant: String,
    /// Your conclusion (recorded in the audit log).
    #[arg(long)]
    pub note: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bglass curl`.
#[derive(Debug, Args)]
pub struct CurlArgs {
    /// The service.
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::services))]
    pub service: String,
    /// The path on the tool, e.g. /api/health.
    pub path: String,
    /// HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    pub method: String,
    /// Request body (`@FILE` reads a file).
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// Extra request header, `Name: value` (repeat).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Print the status line and response headers to stderr.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
}

/// `bglass open`.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The service.
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::services))]
    pub service: String,
    /// Local address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub local: std::net::SocketAddr,
    /// Do not start a browser; just print the URL.
    #[arg(long)]
    pub no_browser: bool,
    /// Also write a kubeconfig (mode 0600) whose server is the forwarder, for kubectl
    /// (no browser is started).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `bglass ssh`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  bglass ssh bastion                       an interactive shell
  bglass ssh bastion -- journalctl -u api  one command; its exit status becomes bglass's
  bglass ssh bastion --save-cert           write a key and certificate for the system ssh
                                           (with ProxyCommand bglass tunnel bastion)

Certificates live minutes (5 by default; the proxy's [ssh] certificate_ttl), never past the
grant, and sshd accepts them only from the proxy's addresses. `bglass ssh` gets a fresh one
for every session; with --save-cert, run it again when the saved one has expired.")]
pub struct SshArgs {
    /// The service.
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::services))]
    pub service: String,
    /// Remote user [default: the first principal of the service].
    #[arg(long, short = 'l')]
    pub user: Option<String>,
    /// Write the key and certificate beside your config (ssh/<service>, ssh/<service>-cert.pub)
    /// and print an ~/.ssh/config snippet, instead of connecting. The certificate lives
    /// minutes: save a fresh one when it has expired, while the grant lasts.
    #[arg(long)]
    pub save_cert: bool,
    /// The command to run (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `bglass tunnel`.
#[derive(Debug, Args)]
#[command(after_help = "\
In ~/.ssh/config:
  Host bastion.breakglass
      ProxyCommand bglass tunnel bastion
      CertificateFile ~/.config/bglass/ssh/bastion-cert.pub
      IdentityFile ~/.config/bglass/ssh/bastion
(the certificate files are written by `bglass ssh bastion --save-cert`).")]
pub struct TunnelArgs {
    /// The service.
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::services))]
    pub service: String,
}

/// `bglass forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The service.
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(crate::cmd::complete::services))]
    pub service: String,
    /// Local address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub local: std::net::SocketAddr,
}

/// `bglass catalog …`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Validate a catalog and list its services; exit 0 when valid.
    Check(CatalogCheckArgs),
}

/// `bglass catalog check`.
#[derive(Debug, Args)]
pub struct CatalogCheckArgs {
    /// The catalog file.
    #[arg(value_name = "FILE", default_value = "services.toml")]
    pub file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `bglass completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `bglass unlock`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  bglass unlock --for 1h

The key agent listens on a socket only you can use ($XDG_RUNTIME_DIR/bglass/, else
/tmp/bglass-UID/), signs requests and TLS handshakes for this config's responder, never
hands the key out, and ends at its time limit or on `bglass lock`. Unlocking again replaces
it. The passphrase is read from BGLASS_PASSPHRASE when set, otherwise asked on the terminal.")]
pub struct UnlockArgs {
    /// How long the key stays unlocked (at most 12h).
    #[arg(long = "for", value_name = "DURATION", default_value = "30m")]
    pub r#for: String,
}

/// `bglass agent-daemon` (internal).
#[derive(Debug, Args)]
pub struct AgentDaemonArgs {
    /// The socket to listen on.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// The time limit.
    #[arg(long, value_name = "SECONDS")]
    pub seconds: u64,
}

/// `bglass man`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  bglass man ~/.local/share/man/man1 && man bglass-access")]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}
