//! `bglass audit …`: the arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `bglass audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every entry, tile, hash and checkpoint signature; exit 0 when clean, 5 with the
    /// first defect otherwise.
    Verify(AuditVerifyArgs),
    /// List events, filtered.
    Show(AuditShowArgs),
    /// Export events for a SIEM or spreadsheet.
    Export(AuditExportArgs),
    /// The auditor's summary: grants, bypasses and reviews, denials, uses outside grants,
    /// drills apart from real incidents.
    Report(AuditReportArgs),
    /// Check the receipts of your own grants (and, given a copied log, that it holds them).
    Prove(AuditProveArgs),
    /// Replay a recorded SSH session in the terminal, after checking every chunk of it
    /// against the log; --verify checks only.
    Play(AuditPlayArgs),
    /// Mirror proxies' logs through their API (auditor role) and alert on a rollback, a
    /// fork or split view, altered entries, or a policy violation; once, or --follow.
    Monitor(AuditMonitorArgs),
}

/// `bglass audit monitor`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  bglass audit monitor --out /var/lib/bglass-audit --policy
  bglass audit monitor --out /var/lib/bglass-audit --policy --follow --webhook http://127.0.0.1:9000/bglass

Each proxy of your config is mirrored in OUT/<proxy id>, a log directory that
`bglass audit verify OUT/<proxy id>` reads offline. A round fetches the proxy's checkpoint
and only the entries since the last one, hashes them onto the mirror and takes the
checkpoint only when they give its root. Exit 5 when an alert is new or a mirror cannot
advance (rollback, fork), 4 when a proxy could not be reached, 0 otherwise. A webhook gets
each alert once.")]
pub struct AuditMonitorArgs {
    /// Where the mirrors are kept (one log directory per proxy, named by its id).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only this proxy of your config, by URL or id (repeat); default: every proxy.
    #[arg(long = "proxy", value_name = "URL|ID")]
    pub proxies: Vec<String>,
    /// A proxy's signing key obtained out of band, `ID=ed25519:…` (repeat). Without it, a
    /// new mirror trusts the key the proxy presents over its pinned TLS, with a warning.
    #[arg(long = "key", value_name = "ID=KEY")]
    pub keys: Vec<String>,
    #[command(flatten)]
    pub check: PolicyCheckArgs,
    /// Keep mirroring, a round every --interval, until stopped.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: the time between rounds.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        requires = "follow"
    )]
    pub interval: bglass_core::duration::HumanDuration,
    /// POST each new alert as JSON to `http://IP:PORT/path` (`text` for Slack-compatible
    /// hooks, and the details beside it); an alert not delivered is sent again next run.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Print one JSON object per proxy and round.
    #[arg(long)]
    pub json: bool,
}

/// `bglass audit prove`.
#[derive(Debug, Args)]
pub struct AuditProveArgs {
    /// A copied log directory to check the receipts against (optional).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the log is and how to trust it.
#[derive(Debug, Args)]
pub struct AuditSource {
    /// The log directory (the proxy's `log/` directory, or a copy of it).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The proxy's public key (ed25519:…), obtained out of band. Without it, the key
    /// recorded in the log's first entry is used, with a warning.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
}

/// `bglass audit play`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  bglass audit show /var/lib/bglass-proxy/log --sessions
  bglass audit play /var/lib/bglass-proxy/log s-1764547200000-a1b2c3d4e5f6 --verify
  bglass audit play /var/lib/bglass-proxy/log s-1764547200000-a1b2c3d4e5f6 --speed 4 --max-pause 2s

The log is verified first, then the recording (recordings/SESSION.rec beside it) chunk by
chunk against the SHA-256 the log holds for each: only bytes that verify are played. Exit 0
when the recording is complete, 5 when it is truncated, missing or altered (the message
names the chunk), after playing what verifies.")]
pub struct AuditPlayArgs {
    #[command(flatten)]
    pub source: AuditSource,
    /// The session (its recording id, as `bglass audit show DIR --sessions` lists it).
    #[arg(value_name = "SESSION")]
    pub session: String,
    /// Check the recording against the log and say what was found; play nothing.
    #[arg(long)]
    pub verify: bool,
    /// How much faster than real time to play (2 = twice as fast; 0 = no pauses at all).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    pub speed: f64,
    /// Shorten any pause longer than this (after --speed) to it.
    #[arg(long, value_name = "DURATION")]
    pub max_pause: Option<bglass_core::duration::HumanDuration>,
    /// Also show what the responder typed or sent, on standard error.
    #[arg(long)]
    pub input: bool,
}

/// `bglass audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub source: AuditSource,
    #[command(flatten)]
    pub check: PolicyCheckArgs,
    /// A witness of this log: `bglass-witness/<proxy id>=ed25519:<that proxy's key>`, or its
    /// cosigner verifier key (`<name>+<id>+<key>`, printed when the proxy starts); repeat for
    /// each. The checkpoint kept beside the log with its cosignatures must carry --quorum of
    /// theirs.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// With --witness: how many of the witnesses must have cosigned [default: all].
    #[arg(long, value_name = "K", requires = "witnesses")]
    pub quorum: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The policy check, shared by `audit verify` and `audit monitor`.
#[derive(Debug, Args)]
pub struct PolicyCheckArgs {
    /// Also prove, entry by entry, that what the log records was allowed by the roster and
    /// catalog then in force (kept beside the log): signed requests and approvals, approval
    /// counts, TTLs, emergency bypasses and their reviews, uses within live grants. Each
    /// violation fails the command (exit 5; the monitor alerts each once).
    #[arg(long)]
    pub policy: bool,
    /// With --policy: how soon after its issue an emergency grant must be reviewed.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "24h",
        requires = "policy"
    )]
    pub review_within: bglass_core::duration::HumanDuration,
}

impl PolicyCheckArgs {
    /// The options of the check.
    pub fn options(&self) -> bglass_core::audit::policy_check::PolicyOptions {
        bglass_core::audit::policy_check::PolicyOptions {
            review_within_ms: self.review_within.as_secs().saturating_mul(1000),
        }
    }
}

/// Filters shared by show, export and report.
#[derive(Debug, Args)]
pub struct AuditFilterArgs {
    /// Only events at or after this time (2026-11-21T22:00:00Z, 2026-11-21, or Unix seconds).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only events about this responder.
    #[arg(long, value_name = "ID")]
    pub responder: Option<String>,
    /// Only events about this service.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Only events of this drill.
    #[arg(long, value_name = "DRILL")]
    pub drill: Option<String>,
    /// Read the log even if it does not verify (forensics); a warning says so.
    #[arg(long)]
    pub unverified: bool,
}

/// `bglass audit show`.
#[derive(Debug, Args)]
pub struct AuditShowArgs {
    #[command(flatten)]
    pub source: AuditSource,
    #[command(flatten)]
    pub filter: AuditFilterArgs,
    /// List the recorded SSH sessions instead, each with its recording's state (complete,
    /// truncated, missing, altered) checked against the log.
    #[arg(long)]
    pub sessions: bool,
    /// Print JSON (an array of {index, event}, or of sessions).
    #[arg(long)]
    pub json: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line: {"index": N, "event": {...}}.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

/// `bglass audit export`.
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    #[command(flatten)]
    pub source: AuditSource,
    #[command(flatten)]
    pub filter: AuditFilterArgs,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
}

/// `bglass audit report`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  bglass audit report /var/lib/bglass-proxy/log --since 2026-11-01 --until 2026-12-01
  bglass audit report LOG --incident INC-123 --html review.html --bundle INC-123.tar

Without --incident, --responder, --html or --bundle: the summary of the period. With them:
the review of everything the log holds about the incident (or responder): its requests,
approvals, grants, emergency bypasses and reviews, denials, HTTP uses per tool, tunnels and
recorded sessions (each checked against the log), with an inclusion proof for every entry
it rests on. --html writes it as one self-contained page; --bundle as a tar file an auditor
without bglass can check (README.txt inside says how).")]
pub struct AuditReportArgs {
    #[command(flatten)]
    pub source: AuditSource,
    /// Period start (2026-11-21T22:00:00Z, 2026-11-21, or Unix seconds).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Period end.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Review one incident: the requests that name it and everything that followed them.
    #[arg(long, value_name = "INCIDENT")]
    pub incident: Option<String>,
    /// Review one responder's requests and everything that followed them.
    #[arg(long, value_name = "ID")]
    pub responder: Option<String>,
    /// Write the review as a self-contained HTML page.
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,
    /// Write the review package as a tar file: the page, the log entries, their proofs and
    /// the recordings.
    #[arg(long, value_name = "OUT.tar")]
    pub bundle: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
