//! Talking to proxies: mutual TLS with the pinned CA, failover across the configured proxies
//! with bounded, jittered exponential backoff, signed envelopes addressed to the proxy that
//! receives them, and split-view detection on every contact.
//!
//! Split view: the CLI keeps the last checkpoint each proxy showed it. On every contact it
//! fetches the proxy's current checkpoint and a consistency proof from the old one; a proxy
//! whose log does not extend what this machine saw before is refused, loudly.

use bglass_core::audit::witness::cosigners;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bglass_core::api::ApiError;
use bglass_core::audit::checkpoint;
use bglass_core::audit::rotation::{self, KeyTransition};
use bglass_core::audit::tree::{Hash, check_consistency, decode_hash};
use bglass_core::envelope::{Action, ENVELOPE_VERSION, Nonce, RequestPayload};
use bglass_core::id::ProxyId;
use bglass_core::keys::{PublicKey, ResponderIdentity};

use crate::identity::Identity;
use bglass_core::timestamp;

use crate::config::{self, Config, ProxyEntry};
use crate::error::{CliError, CliResult, ErrorKind};
pub use crate::failure::{CallError, CallFailure, Refusal, SplitView, Unavailable, refusal_error};
use crate::store::{ProxyRecord, Store};

/// Rounds over all proxies before giving up.
pub const MAX_ROUNDS: u32 = 4;
/// First backoff between rounds.
pub const BASE_BACKOFF: Duration = Duration::from_millis(250);
/// Longest backoff between rounds.
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// The delay before round `round` (1-based): exponential, capped, with "equal jitter" (half
/// fixed, half random) so that hundreds of responders retrying at once spread out.
pub fn backoff(round: u32, random: f64) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1u32 << round.saturating_sub(1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    let half = capped / 2;
    half + half.mul_f64(random.clamp(0.0, 1.0))
}

/// A uniform draw in [0, 1] from the system random generator (jitter for retries).
pub fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX)
}

/// One proxy as the session uses it.
#[derive(Debug)]
pub struct Conn {
    /// Its config entry.
    pub entry: ProxyEntry,
    /// The HTTPS client (pinned CA, the responder's client certificate).
    pub http: reqwest::Client,
    /// What is known about it (after contact).
    pub record: Option<ProxyRecord>,
    contacted: bool,
    /// A refusal banner was printed for it in this run (print each once).
    warned: bool,
    /// Its checkpoint lacked the witness quorum, and that was said, in this run.
    unwitnessed: bool,
}

impl Conn {
    /// Contacted, with nothing to check its log against yet (a brand-new proxy, or a
    /// checkpoint not taken as its view): who it is is remembered for this run only.
    fn known_for_this_run(&mut self, id: ProxyId, key: PublicKey) {
        if self.record.is_none() {
            self.record = Some(ProxyRecord {
                url: self.entry.url.clone(),
                id,
                key,
                size: 0,
                root: String::new(),
                note: String::new(),
            });
        }
        self.contacted = true;
    }
}

/// A request to make, signed per proxy when it carries an action.
#[derive(Debug, Clone)]
pub struct Call {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path and query.
    pub path: String,
    /// The action to sign, for mutations.
    pub action: Option<Action>,
}

impl Call {
    /// A GET.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: reqwest::Method::GET,
            path: path.into(),
            action: None,
        }
    }

    /// A signed POST.
    pub fn post(path: impl Into<String>, action: Action) -> Self {
        Self {
            method: reqwest::Method::POST,
            path: path.into(),
            action: Some(action),
        }
    }
}

/// A responder's session: config, unlocked key, and a client per proxy.
#[derive(Debug)]
pub struct Session {
    /// The responder's identity (its key here, or in the key agent).
    pub identity: Identity,
    /// Local state.
    pub store: Store,
    /// The proxies, in priority order.
    pub conns: Vec<Conn>,
    /// Print progress of failover on stderr.
    pub verbose: bool,
}

fn http_client(entry: &ProxyEntry, identity: &Identity) -> CliResult<reqwest::Client> {
    let tls = identity.tls_config(entry.pin)?;
    let mut builder = reqwest::Client::builder();
    // A URL naming a host is dialled at its pinned address: never a DNS lookup (DNS may be
    // what is down during an incident).
    if let Some(host) = url_host(&entry.url)
        && host.parse::<std::net::IpAddr>().is_err()
    {
        builder = builder.resolve(host, entry.addr);
    }
    builder
        .use_preconfigured_tls(tls)
        .https_only(true)
        .no_proxy()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::internal(format!("HTTP client: {e}")))
}

/// The host of an `https://HOST:PORT` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.rsplit_once(':').map(|(host, _)| host)
}

impl Session {
    /// A session that keeps nothing on disk (the drill simulator's synthetic participants).
    pub fn in_memory(identity: ResponderIdentity, proxies: &[ProxyEntry]) -> CliResult<Self> {
        let identity = Identity::local(identity);
        let conns = proxies
            .iter()
            .map(|entry| {
                Ok(Conn {
                    http: http_client(entry, &identity)?,
                    record: None,
                    entry: entry.clone(),
                    contacted: false,
                    warned: false,
                    unwitnessed: false,
                })
            })
            .collect::<CliResult<Vec<_>>>()?;
        Ok(Self {
            identity,
            store: Store::ephemeral(),
            conns,
            verbose: false,
        })
    }

    /// Loads the config and unlocks the key (or uses the key agent when one runs).
    pub fn open(config_flag: Option<&Path>) -> CliResult<Self> {
        let location = config::locate(config_flag)?;
        let config = Config::load(&location.path).map_err(config::config_error)?;
        let identity = Identity::unlock(&location.path, &config)?;
        Self::with_identity(&location.path, &config, identity)
    }

    /// A session for the config at `config_path` signing as `identity`.
    pub fn with_identity(
        config_path: &Path,
        config: &Config,
        identity: Identity,
    ) -> CliResult<Self> {
        let store = Store::beside(config_path);
        let mut conns = Vec::new();
        for entry in &config.proxies {
            conns.push(Conn {
                http: http_client(entry, &identity)?,
                record: store.proxy(&entry.url, &entry.pin)?,
                entry: entry.clone(),
                contacted: false,
                warned: false,
                unwitnessed: false,
            });
        }
        Ok(Self {
            identity,
            store,
            conns,
            verbose: true,
        })
    }

    /// Makes a call, trying proxies in priority order with backoff between rounds. Returns
    /// the JSON answer and the index of the proxy that gave it.
    pub async fn call(&mut self, call: &Call) -> CliResult<(serde_json::Value, usize)> {
        self.call_with(call, None).await
    }

    /// Like [`Self::call`], but only on proxy `only` when given (grants are per proxy).
    pub async fn call_with(
        &mut self,
        call: &Call,
        only: Option<usize>,
    ) -> CliResult<(serde_json::Value, usize)> {
        Ok(self.attempt(call, only).await?)
    }

    /// Like [`Self::call_with`], with the failure as a value: which proxies were tried and
    /// why each did not answer, or the refusal.
    pub async fn attempt(
        &mut self,
        call: &Call,
        only: Option<usize>,
    ) -> Result<(serde_json::Value, usize), CallFailure> {
        // The latest reason per proxy, in priority order.
        let mut failures: Vec<(String, Unavailable)> = Vec::new();
        for round in 1..=MAX_ROUNDS {
            for i in 0..self.conns.len() {
                if only.is_some_and(|o| o != i) {
                    continue;
                }
                match self.try_one(i, call).await {
                    Ok(value) => return Ok((value, i)),
                    Err(CallError::Unavailable(why)) => {
                        let url = self.conns[i].entry.url.clone();
                        // Failover progress, when there is another proxy to try: with one
                        // proxy (or one allowed), the final error says it all.
                        let others = only.is_none() && self.conns.len() > 1;
                        if self.verbose && others {
                            let next = if i + 1 < self.conns.len() {
                                "trying the next proxy"
                            } else if round < MAX_ROUNDS {
                                "trying the first proxy again"
                            } else {
                                "no proxy left to try"
                            };
                            eprintln!("bglass: {url} unavailable ({why}); {next}");
                        }
                        match failures.iter_mut().find(|(u, _)| *u == url) {
                            Some(entry) => entry.1 = why,
                            None => failures.push((url, why)),
                        }
                    }
                    Err(CallError::Refused(refusal)) => return Err(CallFailure::Refused(refusal)),
                    Err(CallError::Local(e)) => return Err(CallFailure::Local(e)),
                }
            }
            if round < MAX_ROUNDS {
                tokio::time::sleep(backoff(round, random_unit())).await;
            }
        }
        Err(CallFailure::Unavailable(failures))
    }

    async fn try_one(&mut self, i: usize, call: &Call) -> Result<serde_json::Value, CallError> {
        self.contact(i).await?;
        let conn = &self.conns[i];
        let url = format!("{}{}", conn.entry.url.trim_end_matches('/'), call.path);
        let mut request = conn.http.request(call.method.clone(), &url);
        if let Some(action) = &call.action {
            let audience = conn
                .record
                .as_ref()
                .map(|r| r.id.clone())
                .ok_or(CallError::Unavailable(Unavailable::IdUnknown))?;
            let body = self.seal(action, &audience)?;
            request = request
                .body(body)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Unavailable(Unavailable::Transport(e)))?;
        answer(response).await
    }

    /// Signs an action for `audience`.
    pub fn seal(&self, action: &Action, audience: &ProxyId) -> Result<Vec<u8>, CallError> {
        let nonce = Nonce::random()
            .map_err(|_| CallError::Local(CliError::internal("random generator failed")))?;
        let payload = RequestPayload {
            v: ENVELOPE_VERSION,
            responder: self.identity.id.clone(),
            key: self.identity.public_key(),
            aud: audience.clone(),
            iat: timestamp::now_ms() / 1000,
            nonce,
            action: action.clone(),
        };
        self.identity.seal(&payload).map_err(CallError::Local)
    }

    /// First contact with a proxy in this run: learn or check its id and key, and check
    /// that its log extends the checkpoint this machine saw before (split view). A refusal
    /// of trust is printed loudly, once per proxy and run.
    async fn contact(&mut self, i: usize) -> Result<(), CallError> {
        if self.conns[i].contacted {
            return Ok(());
        }
        // Another bglass of this responder may store a newer checkpoint meanwhile: then
        // check against that one (the stored checkpoint only moves forward).
        for _ in 0..CONTACT_ATTEMPTS {
            match self.contact_once(i).await {
                Ok(Contact::Done) => return Ok(()),
                Ok(Contact::Raced) => {}
                Ok(Contact::Distrusted(why)) => {
                    let conn = &mut self.conns[i];
                    if !conn.warned
                        && let Some(banner) = why.banner(&conn.entry.url)
                    {
                        conn.warned = true;
                        eprintln!("{banner}");
                    }
                    return Err(CallError::Unavailable(why));
                }
                Err(e) => return Err(e),
            }
        }
        Err(CallError::Unavailable(Unavailable::CheckpointChurn))
    }

    async fn contact_once(&mut self, i: usize) -> Result<Contact, CallError> {
        let conn = &self.conns[i];
        let base = conn.entry.url.trim_end_matches('/').to_owned();
        let health = conn
            .http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .map_err(|e| CallError::Unavailable(Unavailable::Transport(e)))?;
        let health: serde_json::Value = health
            .json()
            .await
            .map_err(|e| CallError::Unavailable(Unavailable::Read(e)))?;
        let id: ProxyId = serde_json::from_value(health["proxy"].clone())
            .map_err(|_| CallError::Unavailable(Unavailable::Unnamed))?;
        let key: PublicKey = serde_json::from_value(health["key"].clone())
            .map_err(|_| CallError::Unavailable(Unavailable::NoKey))?;
        // A new key is taken only through rotations its log records, each signed by the
        // key before it and by the key after it; never on sight.
        let mut rotated_from = None;
        if let Some(known) = &conn.record
            && (known.id != id || known.key != key)
        {
            let transitions: Vec<KeyTransition> =
                serde_json::from_value(health["key_transitions"].clone()).unwrap_or_default();
            let followed = known.id == id
                && rotation::follow(&checkpoint::origin(&id), known.key, key, &transitions).is_ok();
            if !followed {
                return Ok(split_view(SplitView::Identity {
                    key: key.key_id(),
                    id,
                    known_id: known.id.clone(),
                    known_key: known.key.key_id(),
                }));
            }
            rotated_from = Some(known.key);
        }
        let checkpoint = conn
            .http
            .get(format!("{base}/v1/audit/checkpoint"))
            .send()
            .await
            .map_err(|e| CallError::Unavailable(Unavailable::Transport(e)))?;
        if !checkpoint.status().is_success() {
            let status = checkpoint.status().as_u16();
            if let Some(known) = &conn.record {
                // This machine has seen its log: a proxy that cannot show where its log is
                // now may have been reset, replaced or forked. Fail closed.
                let body = checkpoint.text().await.unwrap_or_default();
                let detail: String = serde_json::from_str::<ApiError>(&body)
                    .map(|e| e.message)
                    .unwrap_or(body)
                    .chars()
                    .take(120)
                    .collect();
                return Ok(Contact::Distrusted(Unavailable::NoCheckpoint {
                    status,
                    detail,
                    known: known.size,
                }));
            }
            // A brand-new proxy signs its first checkpoint within a second of starting:
            // remember who it is for this run (nothing to check its log against yet).
            let conn = &mut self.conns[i];
            conn.known_for_this_run(id, key);
            return Ok(Contact::Done);
        }
        let note = checkpoint
            .bytes()
            .await
            .map_err(|e| CallError::Unavailable(Unavailable::Read(e)))?;
        let origin = checkpoint::origin(&id);
        let verified = match checkpoint::verify(&note, &origin, &key) {
            Ok(v) => v,
            Err(e) => {
                return Ok(split_view(SplitView::Checkpoint(e)));
            }
        };
        if let Some(known) = &conn.record {
            let old_root = decode_hash(&known.root).ok_or_else(|| {
                CallError::Local(CliError::user(format!(
                    "the stored checkpoint of {} is damaged (state/proxies/ beside your config)",
                    conn.entry.url
                )))
            })?;
            if verified.size < known.size {
                return Ok(split_view(SplitView::Shrank {
                    known: known.size,
                    size: verified.size,
                }));
            }
            let proof: Vec<Hash> = if verified.size == known.size {
                Vec::new()
            } else {
                let answer = conn
                    .http
                    .get(format!(
                        "{base}/v1/audit/consistency?old={}&new={}",
                        known.size, verified.size
                    ))
                    .send()
                    .await
                    .map_err(|e| CallError::Unavailable(Unavailable::Transport(e)))?;
                let value: serde_json::Value = answer
                    .json()
                    .await
                    .map_err(|e| CallError::Unavailable(Unavailable::Read(e)))?;
                value["proof"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|h| h.as_str().and_then(decode_hash))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            if !check_consistency(&proof, verified.size, verified.root, known.size, old_root) {
                return Ok(split_view(SplitView::Forked {
                    size: verified.size,
                    known: known.size,
                }));
            }
        }
        // A witness policy: a checkpoint without the quorum of cosignatures is not taken as
        // the proxy's view (the last witnessed one stays the reference for the next
        // consistency check), and access goes on: a witness that is down must not block it.
        let quorum = conn.entry.witness_quorum;
        let witnessed = (quorum > 0).then(|| {
            let text = String::from_utf8_lossy(&verified.note);
            cosigners(&text, &conn.entry.witnesses).len()
        });
        if let Some(count) = witnessed
            && count < quorum
        {
            let conn = &mut self.conns[i];
            if !conn.unwitnessed {
                conn.unwitnessed = true;
                eprintln!(
                    "warning: {}'s checkpoint (size {}) carries {} of the {quorum} witness cosignatures your config requires: not taken as its view (its witnesses may be down or may have refused it; access goes on)",
                    conn.entry.url, verified.size, count
                );
            }
            conn.known_for_this_run(id, key);
            return Ok(Contact::Done);
        }
        let record = ProxyRecord {
            url: conn.entry.url.clone(),
            id,
            key,
            size: verified.size,
            root: STANDARD.encode(verified.root.0),
            note: String::from_utf8_lossy(&verified.note).into_owned(),
        };
        // Read, compare and replace the stored record under the state lock.
        let lock = self.store.lock().await?;
        let stored = self.store.proxy(&conn.entry.url, &conn.entry.pin)?;
        if stored != conn.record {
            let conn = &mut self.conns[i];
            conn.record = stored;
            return Ok(Contact::Raced);
        }
        if conn.record.as_ref() != Some(&record) {
            self.store.save_proxy(&lock, &conn.entry.pin, &record)?;
        }
        drop(lock);
        let conn = &mut self.conns[i];
        if let Some(old) = rotated_from {
            eprintln!(
                "{} rotated its signing key from {old} to {}: the rotation is signed by both keys and recorded in its log; this machine now knows the new key",
                conn.entry.url, record.key
            );
        }
        conn.record = Some(record);
        conn.contacted = true;
        Ok(Contact::Done)
    }
}

/// How often a contact is re-checked against a checkpoint another `bglass` stored meanwhile.
const CONTACT_ATTEMPTS: usize = 5;

/// The outcome of one contact attempt.
enum Contact {
    /// Checked (and the record stored).
    Done,
    /// Another `bglass` stored a different record meanwhile: check again against it.
    Raced,
    /// The proxy cannot be trusted (a split view, or no checkpoint).
    Distrusted(Unavailable),
}

fn split_view(what: SplitView) -> Contact {
    Contact::Distrusted(Unavailable::SplitView(what))
}

impl Session {
    /// Another session of the same responder over the same proxies and state, without
    /// unlocking the key again (a copy of the key, wiped when the session drops): for a
    /// console that polls on one session while it acts on others.
    pub fn sibling(&self) -> CliResult<Self> {
        let identity = self.identity.try_clone()?;
        let conns = self
            .conns
            .iter()
            .map(|c| {
                Ok(Conn {
                    http: http_client(&c.entry, &identity)?,
                    record: c.record.clone(),
                    entry: c.entry.clone(),
                    contacted: false,
                    warned: c.warned,
                    unwitnessed: c.unwitnessed,
                })
            })
            .collect::<CliResult<Vec<_>>>()?;
        Ok(Self {
            identity,
            store: self.store.clone(),
            conns,
            verbose: self.verbose,
        })
    }

    /// Prints nothing on stderr (failover progress, distrust banners): for a caller that
    /// owns the terminal and reports failures itself.
    pub fn silence(&mut self) {
        self.verbose = false;
        for conn in &mut self.conns {
            conn.warned = true;
        }
    }

    /// Makes the next call to proxy `i` check its identity and its log against the last
    /// checkpoint this machine saw again (split view), as at first contact.
    pub fn recheck(&mut self, i: usize) {
        if let Some(conn) = self.conns.get_mut(i) {
            conn.contacted = false;
        }
    }

    /// One long poll of request `id` on proxy `proxy`, the one that holds it: its view as
    /// soon as it changes, or after `wait_secs`.
    pub async fn poll_request(
        &mut self,
        proxy: usize,
        id: &bglass_core::id::RequestId,
        wait_secs: u64,
    ) -> Result<bglass_core::api::RequestView, CallFailure> {
        let call = Call::get(format!("/v1/requests/{id}?wait={wait_secs}"));
        let (value, _) = self.attempt(&call, Some(proxy)).await?;
        serde_json::from_value(value).map_err(|e| {
            CallFailure::Local(CliError::internal(format!(
                "unexpected answer about {id}: {e}"
            )))
        })
    }

    /// Keeps the grant of a granted request answered by proxy `proxy` with the local state,
    /// and its audit receipt when the proxy gives one (for `bglass audit prove`).
    pub async fn keep_granted(
        &mut self,
        proxy: usize,
        view: &bglass_core::api::RequestView,
    ) -> CliResult {
        let grant = view
            .grant
            .as_ref()
            .ok_or_else(|| CliError::internal("granted without a grant"))?;
        let token = grant
            .token
            .clone()
            .ok_or_else(|| CliError::internal("the proxy did not return the grant token"))?;
        let record = self
            .conns
            .get(proxy)
            .and_then(|c| c.record.clone())
            .ok_or_else(|| CliError::internal("proxy not contacted"))?;
        self.store.save_grant(&crate::store::HeldGrant {
            id: grant.id.clone(),
            service: grant.service.clone(),
            proxy_url: record.url.clone(),
            proxy: record.id.clone(),
            token,
            exp: grant.exp,
            emergency: grant.emergency,
            received_ms: timestamp::now_ms(),
        })?;
        if let Some(index) = view.grant_index {
            let receipt = self
                .call_with(
                    &Call::get(format!("/v1/audit/receipt?index={index}")),
                    Some(proxy),
                )
                .await
                .ok()
                .and_then(|(v, _)| serde_json::from_value(v).ok());
            if let Some(receipt) = receipt {
                self.store.save_receipt(&crate::store::StoredReceipt {
                    grant: grant.id.clone(),
                    proxy: record.id.clone(),
                    key: record.key,
                    receipt,
                })?;
            }
        }
        Ok(())
    }
}

impl Session {
    /// The grants held for `service` with the proxies that issued them, newest first
    /// (grants are per proxy: when one proxy is down, another's grant may still serve).
    pub fn held_grants(
        &self,
        service: &bglass_core::id::ServiceName,
    ) -> CliResult<Vec<(crate::store::HeldGrant, &Conn)>> {
        let now = timestamp::now_ms() / 1000;
        let held: Vec<_> = self
            .store
            .grants_for(service, now)?
            .into_iter()
            .filter_map(|g| {
                let conn = self.conns.iter().find(|c| c.entry.url == g.proxy_url)?;
                Some((g, conn))
            })
            .collect();
        if held.is_empty() {
            // The last grant this machine held for it, if it has run out: say when.
            let expired = self
                .store
                .grants()?
                .into_iter()
                .filter(|g| &g.service == service && g.exp <= now)
                .max_by_key(|g| g.exp);
            let message = match expired {
                Some(g) => format!(
                    "you hold no active grant for {service}: your grant {} expired at {} ({} ago)",
                    g.id,
                    timestamp::format_secs(g.exp),
                    bglass_core::policy::span(now.saturating_sub(g.exp))
                ),
                None => format!("you hold no active grant for {service}"),
            };
            return Err(CliError::new(ErrorKind::Denied, message).with_hint(format!(
                "run `bglass access {service} --reason … --incident …` first"
            )));
        }
        Ok(held)
    }
}

/// Reads an answer: JSON on success, a refusal (or unavailability) otherwise.
pub async fn answer(response: reqwest::Response) -> Result<serde_json::Value, CallError> {
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| CallError::Unavailable(Unavailable::Read(e)))?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&bytes)
            .map_err(|e| CallError::Unavailable(Unavailable::BadAnswer(e)));
    }
    let error: ApiError = serde_json::from_slice(&bytes).unwrap_or(ApiError {
        error: format!("http_{status}"),
        message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        hint: None,
    });
    // A proxy that cannot audit, or is saturated, is unavailable: the next one may serve.
    if matches!(error.error.as_str(), "audit_failed" | "busy") || status == 502 || status == 503 {
        return Err(CallError::Unavailable(Unavailable::CannotServe {
            status,
            code: error.error,
            message: error.message,
        }));
    }
    Err(CallError::Refused(Refusal { status, error }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_exponential_bounded_and_jittered() {
        // Without jitter the lower bound doubles each round, then stays under the cap.
        let lows: Vec<Duration> = (1..=8).map(|r| backoff(r, 0.0)).collect();
        assert_eq!(lows[0], BASE_BACKOFF / 2);
        assert_eq!(lows[1], BASE_BACKOFF);
        assert_eq!(lows[2], BASE_BACKOFF * 2);
        for r in 1..=30 {
            for j in [0.0, 0.25, 0.5, 0.99, 1.0] {
                let d = backoff(r, j);
                assert!(d <= MAX_BACKOFF, "round {r}: {d:?}");
                let full = BASE_BACKOFF
                    .saturating_mul(1 << (r - 1).min(16))
                    .min(MAX_BACKOFF);
                assert!(d >= full / 2 && d <= full, "round {r} jitter {j}: {d:?}");
            }
        }
        // Jitter spreads clients apart: different draws, different delays.
        assert_ne!(backoff(3, 0.1), backoff(3, 0.9));
        // The whole schedule is bounded: MAX_ROUNDS rounds never wait more than this.
        let worst: Duration = (1..MAX_ROUNDS).map(|r| backoff(r, 1.0)).sum();
        assert!(worst <= Duration::from_secs(2), "{worst:?}");
        let draws: std::collections::BTreeSet<u64> =
            (0..50).map(|_| (random_unit() * 1e9) as u64).collect();
        assert!(draws.len() > 45, "the jitter source is random");
    }
}
