//! The monitor's alerts: what was already said (kept in `OUT/.monitor.json`, so that a
//! cron job says each thing once), and their delivery to a webhook.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bglass_core::audit::storage::write_file_atomic;
use bglass_core::timestamp;

use crate::error::{CliError, CliResult};

/// The state file, in the output directory beside the mirrors.
pub const STATE_FILE: &str = ".monitor.json";

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// The proxy whose log it is about.
    pub proxy: String,
    /// A stable code: `rollback`, `fork`, `entries_altered`, `key_changed`, or
    /// `policy:<violation kind>`.
    pub kind: String,
    /// What was found, in a sentence.
    pub detail: String,
    /// The entry it is about, for policy violations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Where the refused checkpoint was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<PathBuf>,
    /// When it was found.
    pub time: String,
    /// What makes it the same alert on the next run.
    #[serde(skip)]
    pub key: String,
}

impl Alert {
    /// An alert found now.
    pub fn new(
        proxy: &str,
        kind: impl Into<String>,
        detail: impl Into<String>,
        key: String,
    ) -> Self {
        Self {
            proxy: proxy.to_owned(),
            kind: kind.into(),
            detail: detail.into(),
            index: None,
            evidence: None,
            time: timestamp::format_ms(timestamp::now_ms()),
            key,
        }
    }

    /// The line printed and sent as the webhook's `text`.
    pub fn text(&self) -> String {
        let mut line = format!(
            "bglass audit monitor: ALERT {}: {}: {}",
            self.proxy, self.kind, self.detail
        );
        if let Some(path) = &self.evidence {
            line.push_str(&format!(" (evidence kept in {})", path.display()));
        }
        line
    }
}

/// What the monitor remembers between runs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Keys of the alerts already raised.
    #[serde(default)]
    pub alerted: BTreeSet<String>,
    /// Alerts the webhook has not accepted yet.
    #[serde(default)]
    pub undelivered: Vec<Alert>,
    /// Per proxy: the mirror size the policy check last covered.
    #[serde(default)]
    pub policy_checked: BTreeMap<String, u64>,
    /// Per proxy: policy files the log names that could not be fetched yet
    /// (`catalog-<digest>` or `roster-<digest>`).
    #[serde(default)]
    pub wanted_policy: BTreeMap<String, BTreeSet<String>>,
}

impl State {
    /// Reads the state in `out` (a fresh one when there is none).
    pub fn load(out: &Path) -> CliResult<Self> {
        let path = out.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                CliError::user(format!("{}: {e}", path.display()))
                    .with_hint("the monitor's state is damaged; move it aside to start afresh (alerts already raised are then raised again)")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CliError::user(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes it back, atomically.
    pub fn save(&self, out: &Path) -> CliResult {
        let bytes = serde_json::to_vec_pretty(self).map_err(CliError::internal)?;
        write_file_atomic(&out.join(STATE_FILE), &bytes)
            .map_err(|e| CliError::user(format!("keeping the monitor's state: {e}")))
    }

    /// Records `alert`; true when it is new (to be raised), false when it was raised
    /// before.
    pub fn raise(&mut self, alert: &Alert, webhook: bool) -> bool {
        if !self.alerted.insert(alert.key.clone()) {
            return false;
        }
        if webhook {
            self.undelivered.push(alert.clone());
        }
        true
    }
}

/// A webhook target.
#[derive(Debug)]
pub struct Webhook {
    url: String,
    http: reqwest::Client,
}

impl Webhook {
    /// A target at `url`: `http://IP:PORT/path`, as the proxy's notifications (no host
    /// names: DNS may be what is down; a local relay forwards elsewhere).
    pub fn new(url: &str) -> CliResult<Self> {
        let addr = url
            .strip_prefix("http://")
            .map(|rest| rest.split('/').next().unwrap_or(rest));
        if addr
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .is_none()
        {
            return Err(CliError::user(format!(
                "--webhook {url:?}: give http://IP:PORT/path (no host names: DNS may be down)"
            )));
        }
        // Plain HTTP only; the client still wants a TLS stack, which it never uses.
        let tls = rustls::ClientConfig::builder_with_provider(bglass_tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::internal(format!("TLS: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CliError::internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            url: url.to_owned(),
            http,
        })
    }

    /// Posts one JSON message; why not, when the target refused it or could not be reached.
    pub async fn post(&self, body: &serde_json::Value) -> Result<(), String> {
        match self.http.post(&self.url).json(body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("it answered {}", r.status())),
            Err(e) => Err(format!("it could not be reached: {e}")),
        }
    }

    /// Delivers the alerts not delivered yet, in order; stops at the first refusal (kept
    /// for the next run), and says so on stderr.
    pub async fn deliver(&self, state: &mut State) {
        while let Some(alert) = state.undelivered.first() {
            let body = serde_json::json!({
                "text": alert.text(),
                "alert": alert,
            });
            if let Err(why) = self.post(&body).await {
                eprintln!(
                    "warning: the webhook did not take an alert ({why}); {} alert(s) are sent again next round",
                    state.undelivered.len()
                );
                return;
            }
            state.undelivered.remove(0);
        }
    }
}
