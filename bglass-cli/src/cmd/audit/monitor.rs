//! `bglass audit monitor`: an auditor's continuous mirror of proxies' logs.
//!
//! A round, for each proxy: who it is (`/healthz`), its checkpoint with the cosignatures
//! gathered, the entries since the mirror's size as C2SP entry bundles, hashed onto the
//! mirror (see [`bglass_core::audit::mirror`]), the catalogs and rosters the new entries
//! name, then the witness policy of the config and, with `--policy`, the policy check.
//! Whatever the mirror cannot take is an alert, raised once (the state file remembers),
//! printed, and posted to the webhook.

mod alerts;
pub use alerts::Webhook;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use bglass_core::api::ApiError;
use bglass_core::audit::checkpoint;
use bglass_core::audit::mirror::{AdvanceError, Inconsistency, Mirror, MirrorError, Seen};
use bglass_core::audit::policy_check;
use bglass_core::audit::policy_files::PolicyKind;
use bglass_core::audit::report::with_events;
use bglass_core::audit::rotation::{self, KeyTransition};
use bglass_core::audit::storage::parse_bundle_of;
use bglass_core::audit::tree::{Hash, TILE_WIDTH, decode_hash, tile_path};
use bglass_core::audit::witness::cosigners;
use bglass_core::id::ProxyId;
use bglass_core::keys::PublicKey;
use bglass_core::timestamp;

use self::alerts::{Alert, State};
use super::super::block_on;
use crate::cli::AuditMonitorArgs;
use crate::client::{Conn, Session};
use crate::error::{CliError, CliResult, ErrorKind};

/// One proxy's round, as printed.
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    /// Its id (its URL until it answered).
    proxy: String,
    url: String,
    /// Why this round did not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<String>,
    #[serde(skip)]
    failed_kind: Option<ErrorKind>,
    /// Entries the mirror holds.
    size: u64,
    /// Entries taken this round.
    new_entries: u64,
    /// The witnesses whose cosignature the checkpoint carries.
    cosigned_by: Vec<String>,
    /// The config's witness quorum (0: none).
    quorum: usize,
    /// Violations the policy check found in the whole mirror (when it ran this round).
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_violations: Option<usize>,
    /// Alerts raised this round.
    alerts: Vec<Alert>,
    /// What keeps the mirror from advancing (raised before or now).
    standing: Vec<String>,
}

/// What a fetch from a proxy came to when it was not a success.
enum Fetch {
    /// Not reached, or no answer.
    Unreachable(String),
    /// Answered with an error status.
    Refused(u16, String),
}

impl Fetch {
    fn text(&self) -> String {
        match self {
            Self::Unreachable(why) => format!("not reached: {why}"),
            Self::Refused(status, why) => format!("refused ({status}): {why}"),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused(401 | 403, _) => ErrorKind::Denied,
            _ => ErrorKind::Unavailable,
        }
    }
}

async fn get(conn: &Conn, path: &str) -> Result<Vec<u8>, Fetch> {
    let url = format!("{}{path}", conn.entry.url.trim_end_matches('/'));
    let response = conn
        .http
        .get(&url)
        .send()
        .await
        .map_err(|e| Fetch::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| Fetch::Unreachable(e.to_string()))?;
    if (200..300).contains(&status) {
        return Ok(body.to_vec());
    }
    let why = serde_json::from_slice::<ApiError>(&body).map_or_else(
        |_| String::from_utf8_lossy(&body).chars().take(200).collect(),
        |e| format!("{} ({})", e.message, e.error),
    );
    Err(Fetch::Refused(status, why))
}

/// One proxy of the config, across rounds.
struct Target {
    conn: usize,
    mirror: Option<Mirror>,
}

/// Everything a round needs besides the target.
struct Round<'a> {
    args: &'a AuditMonitorArgs,
    keys: &'a HashMap<ProxyId, PublicKey>,
    state: &'a mut State,
}

impl Round<'_> {
    /// Raises `alert` unless it was raised before; returns whether it is new.
    fn raise(&mut self, report: &mut Report, alert: Alert) -> bool {
        let new = self.state.raise(&alert, self.args.webhook.is_some());
        if new {
            report.alerts.push(alert);
        }
        new
    }

    /// A proxy presenting a key the mirror cannot follow: standing, raised once per key.
    fn key_changed(&mut self, report: &mut Report, presented: &PublicKey, detail: String) {
        report.standing.push(detail.clone());
        let key = format!("key_changed:{}:{presented}", report.proxy);
        let alert = Alert::new(&report.proxy, "key_changed", detail, key);
        self.raise(report, alert);
    }

    /// An inconsistency that keeps the mirror where it is: standing every round, raised
    /// once, with the refused checkpoint kept as evidence.
    fn inconsistent(
        &mut self,
        report: &mut Report,
        mirror: &Mirror,
        problem: &Inconsistency,
        note: &[u8],
    ) {
        let key = format!("{}:{}:{}", problem.code(), report.proxy, mirror.size());
        report.standing.push(problem.to_string());
        let mut alert = Alert::new(&report.proxy, problem.code(), problem.to_string(), key);
        if self.state.alerted.contains(&alert.key) {
            return;
        }
        match mirror.keep_evidence(problem.code(), note, timestamp::now_ms()) {
            Ok(path) => alert.evidence = Some(path),
            Err(e) => eprintln!("warning: keeping the evidence: {e}"),
        }
        self.raise(report, alert);
    }

    async fn proxy(&mut self, conn: &Conn, target: &mut Target, report: &mut Report) {
        if let Err(fetch) = self.proxy_inner(conn, target, report).await {
            report.failed_kind = Some(fetch.kind());
            report.failed = Some(fetch.text());
        }
    }

    async fn proxy_inner(
        &mut self,
        conn: &Conn,
        target: &mut Target,
        report: &mut Report,
    ) -> Result<(), Fetch> {
        let health: serde_json::Value = serde_json::from_slice(&get(conn, "/healthz").await?)
            .map_err(|e| Fetch::Unreachable(format!("/healthz: {e}")))?;
        let (Ok(id), Ok(presented)) = (
            serde_json::from_value::<ProxyId>(health["proxy"].clone()),
            serde_json::from_value::<PublicKey>(health["key"].clone()),
        ) else {
            return Err(Fetch::Unreachable(
                "/healthz names no proxy id and key".to_owned(),
            ));
        };
        report.proxy = id.to_string();
        // Rotations of its signing key, each signed by both keys: a key reached along them
        // from the one given is no key change (the mirror checks them against the entries).
        let transitions: Vec<KeyTransition> =
            serde_json::from_value(health["key_transitions"].clone()).unwrap_or_default();
        let key = match self.keys.get(&id) {
            Some(given)
                if *given != presented
                    && rotation::follow(
                        &checkpoint::origin(&id),
                        *given,
                        presented,
                        &transitions,
                    )
                    .is_err() =>
            {
                self.key_changed(
                    report,
                    &presented,
                    format!(
                        "it presents the signing key {presented}, not the {given} given with --key"
                    ),
                );
                return Ok(());
            }
            Some(given) => *given,
            None => presented,
        };
        let mirror = match target.mirror.take() {
            Some(m) if m.dir().ends_with(id.as_str()) => m,
            _ => match self.open(&id, key, report) {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let mirror = target.mirror.insert(mirror);
        let note = match get(conn, "/v1/audit/checkpoint").await {
            // A brand-new proxy has signed nothing yet.
            Err(Fetch::Refused(404, _)) if mirror.size() == 0 => return Ok(()),
            other => other?,
        };
        let before = mirror.size();
        match mirror.see_following(&note, &transitions) {
            Err(problem) => {
                self.inconsistent(report, mirror, &problem, &note);
                report.size = mirror.size();
                return Ok(());
            }
            Ok(Seen::Held) => {}
            Ok(Seen::Larger(checkpoint)) => {
                if !self
                    .advance(conn, mirror, checkpoint, &note, report)
                    .await?
                {
                    report.size = mirror.size();
                    return Ok(());
                }
            }
        }
        report.size = mirror.size();
        report.new_entries = report.size - before;
        self.fetch_policy(conn, mirror, report).await;
        self.witnesses(conn, mirror, &note, report);
        if self.args.check.policy {
            self.check_policy(mirror, report);
        }
        Ok(())
    }

    /// Opens (creating) the mirror of `id`; a key that did not sign it is an alert.
    fn open(&mut self, id: &ProxyId, key: PublicKey, report: &mut Report) -> Option<Mirror> {
        let dir = self.args.out.join(id.as_str());
        let fresh = !dir.join(bglass_core::audit::storage::HISTORY_FILE).exists();
        if fresh && !self.keys.contains_key(id) {
            eprintln!(
                "warning: mirroring {id} with the signing key it presents ({key}) over its pinned TLS; pass --key {id}=<key> to check it against one obtained out of band"
            );
        }
        match Mirror::open(&dir, id, key) {
            Ok(m) => Some(m),
            Err(MirrorError::Key { source, .. }) => {
                self.key_changed(
                    report,
                    &key,
                    format!(
                        "its checkpoints are no longer signed by the key of the mirror in {}: it presents {key} ({source})",
                        dir.display()
                    ),
                );
                None
            }
            Err(e) => {
                report.failed_kind = Some(ErrorKind::Defect);
                report.failed = Some(format!(
                    "the mirror cannot be opened: {e}; keep it as evidence and move it aside to mirror afresh"
                ));
                None
            }
        }
    }

    /// Takes a larger checkpoint's entries into the mirror; false when they were refused.
    async fn advance(
        &mut self,
        conn: &Conn,
        mirror: &mut Mirror,
        checkpoint: checkpoint::VerifiedCheckpoint,
        note: &[u8],
        report: &mut Report,
    ) -> Result<bool, Fetch> {
        let (from, to, root) = (mirror.size(), checkpoint.size, checkpoint.root);
        let bundles = mirror.bundles_to(to);
        let mut advance = mirror.advance(checkpoint);
        let mut refused = None;
        'bundles: for (b, width) in bundles {
            let path = format!("/v1/audit/{}", tile_path(None, b, Some(width)));
            let bytes = match get(conn, &path).await {
                Ok(bytes) => bytes,
                Err(fetch) => {
                    if let Err(e) = advance.abandon() {
                        eprintln!("warning: {e}");
                    }
                    return Err(fetch);
                }
            };
            let first = b * TILE_WIDTH as u64;
            let entries = match parse_bundle_of(&bytes, width) {
                Ok(entries) => entries,
                Err(e) => {
                    refused = Some(Inconsistency::EntryMalformed {
                        index: first,
                        what: format!("entry bundle {b}: {e}"),
                    });
                    break;
                }
            };
            for (k, entry) in entries.iter().enumerate() {
                if first + (k as u64) < from {
                    continue;
                }
                match advance.push(entry) {
                    Ok(()) => {}
                    Err(AdvanceError::Served(problem)) => {
                        refused = Some(problem);
                        break 'bundles;
                    }
                    Err(e) => {
                        if let Err(e) = advance.abandon() {
                            eprintln!("warning: {e}");
                        }
                        report.failed_kind = Some(ErrorKind::Internal);
                        report.failed = Some(format!("writing the mirror: {e}"));
                        return Ok(false);
                    }
                }
            }
        }
        let outcome = match refused {
            Some(problem) => {
                let _ = advance.abandon();
                Err(problem)
            }
            None => match advance.finish() {
                Ok(policy) => {
                    let wanted = self
                        .state
                        .wanted_policy
                        .entry(report.proxy.clone())
                        .or_default();
                    wanted.extend(
                        policy
                            .into_iter()
                            .map(|(kind, d)| format!("{}-{d}", kind.name())),
                    );
                    Ok(())
                }
                Err(AdvanceError::Served(problem)) => Err(problem),
                Err(e) => {
                    report.failed_kind = Some(ErrorKind::Internal);
                    report.failed = Some(format!("writing the mirror: {e}"));
                    return Ok(false);
                }
            },
        };
        let Err(mut problem) = outcome else {
            return Ok(true);
        };
        // Entries that do not give the root: a fork when the proxy cannot prove its tree
        // extends the mirror's, altered entries when it can.
        if let Inconsistency::EntriesAltered { .. } = problem {
            let proof = get(conn, &format!("/v1/audit/consistency?old={from}&new={to}"))
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<bglass_core::api::ProofView>(&b).ok())
                .map(|p| {
                    p.proof
                        .iter()
                        .filter_map(|h| decode_hash(h))
                        .collect::<Vec<Hash>>()
                });
            if !proof.is_some_and(|p| mirror.extends(&p, to, root)) {
                problem = Inconsistency::Fork {
                    mirror: from,
                    size: to,
                };
            }
        }
        self.inconsistent(report, mirror, &problem, note);
        Ok(false)
    }

    /// Fetches the catalogs and rosters the log names that the mirror lacks.
    async fn fetch_policy(&mut self, conn: &Conn, mirror: &Mirror, report: &mut Report) {
        let wanted: BTreeSet<String> = self
            .state
            .wanted_policy
            .get(&report.proxy)
            .cloned()
            .unwrap_or_default();
        for name in wanted {
            let Some((kind, digest)) = name.split_once('-').and_then(|(k, d)| {
                let kind = match k {
                    "catalog" => PolicyKind::Catalog,
                    "roster" => PolicyKind::Roster,
                    _ => return None,
                };
                Some((kind, d.to_owned()))
            }) else {
                continue;
            };
            let fetched = match get(conn, &format!("/v1/audit/policy/{name}.toml")).await {
                Ok(bytes) => bytes,
                Err(fetch) => {
                    eprintln!(
                        "warning: {}: the {} the log names ({digest}): {}; fetched again next round",
                        report.proxy,
                        kind.name(),
                        fetch.text()
                    );
                    continue;
                }
            };
            match mirror.keep_policy(kind, &digest, &fetched) {
                Ok(Ok(())) => {}
                Ok(Err(problem)) => {
                    let key = format!("{}:{}:{name}", problem.code(), report.proxy);
                    let alert = Alert::new(&report.proxy, problem.code(), problem.to_string(), key);
                    self.raise(report, alert);
                    continue;
                }
                Err(e) => {
                    eprintln!("warning: {e}");
                    continue;
                }
            }
            if let Some(set) = self.state.wanted_policy.get_mut(&report.proxy) {
                set.remove(&name);
            }
        }
        self.state.wanted_policy.retain(|_, set| !set.is_empty());
    }

    /// The config's witness policy on the checkpoint the mirror now holds; a cosigned one
    /// that meets it is kept for `audit verify --witness`.
    fn witnesses(&mut self, conn: &Conn, mirror: &Mirror, note: &[u8], report: &mut Report) {
        let text = String::from_utf8_lossy(note);
        let by = cosigners(&text, &conn.entry.witnesses);
        report.cosigned_by = by.iter().map(|s| (*s).to_owned()).collect();
        report.quorum = conn.entry.witness_quorum;
        if by.len() < report.quorum {
            eprintln!(
                "warning: {}: its checkpoint of size {} carries {} of the {} witness cosignatures your config requires; the last witnessed one stays in the mirror",
                report.proxy,
                mirror.size(),
                by.len(),
                report.quorum
            );
            return;
        }
        let path = mirror
            .dir()
            .join(bglass_core::audit::witness::COSIGNED_FILE);
        let is_own = mirror.latest().is_some_and(|l| note.starts_with(&l.note));
        if is_own
            && std::fs::read(&path).ok().as_deref() != Some(note)
            && let Err(e) = mirror.keep_cosigned(note)
        {
            eprintln!("warning: {e}");
        }
    }

    /// The policy check over the whole mirror, when it grew since the last one.
    fn check_policy(&mut self, mirror: &Mirror, report: &mut Report) {
        if self.state.policy_checked.get(&report.proxy) == Some(&mirror.size()) {
            return;
        }
        let options = self.args.check.options();
        let checked = with_events(mirror.dir(), |events| {
            policy_check::check(mirror.dir(), events, options)
        });
        let result = match checked {
            Ok(r) => r,
            Err(e) => {
                report.failed_kind = Some(ErrorKind::Defect);
                report.failed = Some(format!("the policy check could not read the mirror: {e}"));
                return;
            }
        };
        report.policy_violations = Some(result.violations.len());
        for v in &result.violations {
            let key = format!("policy:{}:{}:{}", report.proxy, v.index, v.kind);
            let mut alert = Alert::new(
                &report.proxy,
                format!("policy:{}", v.kind),
                format!("entry {}: {}", v.index, v.detail),
                key,
            );
            alert.index = Some(v.index);
            self.raise(report, alert);
        }
        self.state
            .policy_checked
            .insert(report.proxy.clone(), mirror.size());
    }
}

fn print(report: &Report, json: bool) -> CliResult {
    if json {
        return crate::outln!(
            "{}",
            serde_json::to_string(report).map_err(CliError::internal)?
        );
    }
    for alert in &report.alerts {
        crate::outln!("{}", alert.text())?;
    }
    if let Some(why) = &report.failed {
        eprintln!("{} ({}): {why}", report.proxy, report.url);
        return Ok(());
    }
    let mut line = format!(
        "{}: mirror at {} entries (+{})",
        report.proxy, report.size, report.new_entries
    );
    if !report.standing.is_empty() {
        line.push_str(&format!(", NOT ADVANCING: {}", report.standing.join("; ")));
    }
    if report.quorum > 0 || !report.cosigned_by.is_empty() {
        line.push_str(&format!(
            ", cosigned by {} of the witnesses in your config{}",
            report.cosigned_by.len(),
            if report.quorum > 0 {
                format!(" (quorum {})", report.quorum)
            } else {
                String::new()
            }
        ));
    }
    if let Some(n) = report.policy_violations {
        line.push_str(&format!(", policy: {n} violation(s) in the whole log"));
    }
    crate::outln!("{line}")
}

fn parse_keys(args: &AuditMonitorArgs) -> CliResult<HashMap<ProxyId, PublicKey>> {
    args.keys
        .iter()
        .map(|k| {
            let (id, key) = k
                .split_once('=')
                .ok_or_else(|| CliError::user(format!("--key {k:?}: give ID=ed25519:…")))?;
            let id: ProxyId = crate::cmd::parse_arg(Some("--key"), id)?;
            let key: PublicKey = key
                .parse()
                .map_err(|e| CliError::user(format!("--key {k:?}: {e}")))?;
            Ok((id, key))
        })
        .collect()
}

/// Runs `bglass audit monitor`.
pub fn run(config: Option<&Path>, args: AuditMonitorArgs) -> CliResult {
    let keys = parse_keys(&args)?;
    let webhook = args.webhook.as_deref().map(Webhook::new).transpose()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::user(format!("--out {}: {e}", args.out.display())))?;
    let mut session = Session::open(config)?;
    session.silence();
    let mut targets: Vec<Target> = (0..session.conns.len())
        .filter(|&i| {
            let entry = &session.conns[i].entry;
            args.proxies.is_empty()
                || args.proxies.iter().any(|p| {
                    *p == entry.url
                        || session.conns[i]
                            .record
                            .as_ref()
                            .is_some_and(|r| r.id.as_str() == p)
                })
        })
        .map(|conn| Target { conn, mirror: None })
        .collect();
    if targets.is_empty() {
        return Err(CliError::user("no proxy of your config matches --proxy")
            .with_hint("give a URL or id as `bglass status` shows them"));
    }
    let mut state = State::load(&args.out)?;
    block_on(async {
        loop {
            let outcome = round(&session, &mut targets, &args, &keys, &mut state).await?;
            if let Some(hook) = &webhook {
                hook.deliver(&mut state).await;
            }
            state.save(&args.out)?;
            if !args.follow {
                return outcome;
            }
            if let Err(e) = outcome {
                eprintln!("bglass audit monitor: {e}");
            }
            tokio::time::sleep(args.interval.to_std()).await;
        }
    })
}

/// One round over every target; the outcome of a run that stops after it.
async fn round(
    session: &Session,
    targets: &mut [Target],
    args: &AuditMonitorArgs,
    keys: &HashMap<ProxyId, PublicKey>,
    state: &mut State,
) -> CliResult<CliResult> {
    let mut round = Round { args, keys, state };
    let (mut alerts, mut standing, mut failed) = (0, 0, None);
    for target in targets.iter_mut() {
        let conn = &session.conns[target.conn];
        let mut report = Report {
            proxy: conn.entry.url.clone(),
            url: conn.entry.url.clone(),
            ..Report::default()
        };
        round.proxy(conn, target, &mut report).await;
        print(&report, args.json)?;
        alerts += report.alerts.len();
        standing += report.standing.len();
        if let Some(kind) = report.failed_kind {
            failed.get_or_insert((kind, report.proxy.clone(), report.failed.clone()));
        }
    }
    Ok(if alerts > 0 || standing > 0 {
        let mut parts = Vec::new();
        if alerts > 0 {
            parts.push(format!("{alerts} new alert(s)"));
        }
        if standing > 0 {
            parts.push(format!("{standing} mirror(s) cannot advance"));
        }
        Err(CliError::new(ErrorKind::Defect, parts.join("; "))
        .with_hint("keep the mirrors and their evidence/ as they are, and compare them with the proxies' operators and witnesses"))
    } else if let Some((kind, proxy, why)) = failed {
        Err(CliError::new(
            kind,
            format!("{proxy}: {}", why.unwrap_or_default()),
        ))
    } else {
        Ok(())
    })
}
