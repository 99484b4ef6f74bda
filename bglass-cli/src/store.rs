//! What the CLI remembers between runs, beside its config (`state/` in the config directory):
//! per proxy its id, signing key and the last checkpoint seen (split-view detection), the
//! responder's current grants, and receipts proving their grants are in the proxies' logs.

use std::path::{Path, PathBuf};

use bglass_core::audit::receipt::Receipt;
use bglass_core::catalog::CertPin;
use bglass_core::id::{GrantId, ProxyId, ServiceName};
use bglass_core::keys::PublicKey;

use crate::error::{CliError, CliResult};

/// Largest state file read.
const MAX_STATE_BYTES: u64 = 1024 * 1024;

/// The state directory of a config.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// False for a store that keeps nothing (the drill simulator's participants).
    persist: bool,
}

/// What the CLI knows about one proxy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyRecord {
    /// Its URL.
    pub url: String,
    /// Its id (learned over the pinned channel at first contact).
    pub id: ProxyId,
    /// Its signing key (learned at first contact; a change is refused loudly).
    pub key: PublicKey,
    /// The last checkpoint seen: size.
    pub size: u64,
    /// … and root (base64).
    pub root: String,
    /// … and the signed note.
    pub note: String,
}

/// A grant the responder holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldGrant {
    /// Grant id.
    pub id: GrantId,
    /// Service.
    pub service: ServiceName,
    /// The proxy that issued it (URL).
    pub proxy_url: String,
    /// The proxy's id.
    pub proxy: ProxyId,
    /// The token.
    pub token: String,
    /// Valid until, Unix seconds.
    pub exp: u64,
    /// Issued under the emergency bypass.
    pub emergency: bool,
    /// When this machine received it, Unix ms (the newest grant is tried first).
    #[serde(default)]
    pub received_ms: u64,
}

/// A stored receipt and what is needed to check it offline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredReceipt {
    /// The grant.
    pub grant: GrantId,
    /// The proxy's id (the log's origin is `bglass/<id>`).
    pub proxy: ProxyId,
    /// The proxy's signing key.
    pub key: PublicKey,
    /// The receipt.
    pub receipt: Receipt,
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    use std::io::Read;
    file.take(MAX_STATE_BYTES).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> CliResult {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| CliError::user(format!("cannot create {}: {e}", parent.display())))?;
    let text = serde_json::to_vec_pretty(value).map_err(CliError::internal)?;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options
        .open(&tmp)
        .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CliError::user(format!("cannot write {}: {e}", path.display())))
}

impl Store {
    /// The store beside a config file.
    pub fn beside(config: &Path) -> Self {
        Self {
            dir: config.parent().unwrap_or(Path::new(".")).join("state"),
            persist: true,
        }
    }

    /// A store that reads nothing and writes nothing.
    pub fn ephemeral() -> Self {
        Self {
            dir: PathBuf::new(),
            persist: false,
        }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record of the proxy at `url` pinned by `pin`.
    pub fn proxy(&self, url: &str, pin: &CertPin) -> Option<ProxyRecord> {
        if !self.persist {
            return None;
        }
        read_json(&self.proxy_path(url, pin))
    }

    fn proxy_path(&self, url: &str, pin: &CertPin) -> PathBuf {
        let pin = pin.to_string();
        self.dir
            .join("proxies")
            .join(format!("{}-{}.json", sanitize(url), &pin[7..23]))
    }

    /// Saves what is known about a proxy.
    pub fn save_proxy(&self, pin: &CertPin, record: &ProxyRecord) -> CliResult {
        if !self.persist {
            return Ok(());
        }
        write_json(&self.proxy_path(&record.url, pin), record)
    }

    /// Saves a grant the responder now holds.
    pub fn save_grant(&self, grant: &HeldGrant) -> CliResult {
        if !self.persist {
            return Ok(());
        }
        write_json(
            &self.dir.join("grants").join(format!("{}.json", grant.id)),
            grant,
        )
    }

    /// Forgets a grant.
    pub fn remove_grant(&self, id: &GrantId) {
        if !self.persist {
            return;
        }
        let _ = std::fs::remove_file(self.dir.join("grants").join(format!("{id}.json")));
    }

    /// The grants held, newest expiry first.
    pub fn grants(&self) -> Vec<HeldGrant> {
        if !self.persist {
            return Vec::new();
        }
        let mut out: Vec<HeldGrant> = std::fs::read_dir(self.dir.join("grants"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| read_json(&e.path()))
            .collect();
        out.sort_by_key(|g| std::cmp::Reverse(g.exp));
        out
    }

    /// The held grants for `service` still valid at `now_s`, newest first.
    pub fn grants_for(&self, service: &ServiceName, now_s: u64) -> Vec<HeldGrant> {
        let mut out: Vec<HeldGrant> = self
            .grants()
            .into_iter()
            .filter(|g| &g.service == service && g.exp > now_s)
            .collect();
        out.sort_by_key(|g| std::cmp::Reverse((g.received_ms, g.exp)));
        out
    }

    /// Saves a receipt.
    pub fn save_receipt(&self, receipt: &StoredReceipt) -> CliResult {
        if !self.persist {
            return Ok(());
        }
        write_json(
            &self
                .dir
                .join("receipts")
                .join(format!("{}.json", receipt.grant)),
            receipt,
        )
    }

    /// Every stored receipt.
    pub fn receipts(&self) -> Vec<(PathBuf, Option<StoredReceipt>)> {
        if !self.persist {
            return Vec::new();
        }
        let mut out: Vec<(PathBuf, Option<StoredReceipt>)> =
            std::fs::read_dir(self.dir.join("receipts"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    let p = e.path();
                    let r = read_json(&p);
                    (p, r)
                })
                .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
