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

/// How a state file could not be used: loud, naming the file and what to do (a damaged
/// record is never taken for a first contact, which would re-pin the proxy's key and log).
fn damaged(path: &Path, what: impl std::fmt::Display) -> CliError {
    CliError::user(format!("state file {} {what}", path.display())).with_hint(format!(
        "bglass leaves it as it is. Find out why (disk full, an edit, tampering); keep a copy for your security team. Only if you are sure, move it aside: bglass then learns that proxy again at the next contact, trusting whatever key and log it shows. Directory: {}",
        path.parent().unwrap_or(Path::new(".")).display()
    ))
}

/// Reads a state file: `None` when it does not exist (first contact), an error naming the
/// file when it cannot be read or does not parse.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> CliResult<Option<T>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(damaged(path, format_args!("cannot be read: {e}"))),
    };
    let mut bytes = Vec::new();
    use std::io::Read;
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| damaged(path, format_args!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(damaged(
            path,
            format_args!("is larger than {MAX_STATE_BYTES} bytes: it is not one bglass wrote"),
        ));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| damaged(path, format_args!("is damaged (not a valid record: {e})")))
}

/// A random suffix for temporary files: concurrent writers never share one.
fn random_suffix() -> CliResult<String> {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| CliError::internal("random generator failed"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Options for a new private file: created here (never an existing one), mode 0600.
fn new_private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Writes a state file atomically: a new temporary file of its own (`.NAME.RANDOM.tmp`,
/// mode 0600) in the same directory, synced, then renamed over the file.
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> CliResult {
    let text = serde_json::to_vec_pretty(value).map_err(CliError::internal)?;
    write_private(path, &text)
}

/// Writes a private file atomically: a new temporary file of its own (`.NAME.RANDOM.tmp`,
/// mode 0600) in the same directory, synced, then renamed over the file.
pub fn write_private(path: &Path, text: &[u8]) -> CliResult {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| CliError::user(format!("cannot create {}: {e}", parent.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.{}.tmp", random_suffix()?));
    use std::io::Write;
    let written = new_private_file()
        .open(&tmp)
        .and_then(|mut f| f.write_all(text).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(CliError::user(format!(
            "cannot write {}: {e}",
            path.display()
        )));
    }
    Ok(())
}

/// Whether a directory entry is a state record (`*.json`), not a temporary file.
fn is_record(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "json")
        && path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
}

/// The exclusive advisory lock on the state directory, held while a record is read,
/// compared and replaced; released when dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: Option<std::fs::File>,
}

/// How long a command waits for another `bglass` of the same responder to release the lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

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

    /// The record of the proxy at `url` pinned by `pin`: `None` when this machine has none
    /// (first contact), an error naming the file when it is unreadable or damaged.
    pub fn proxy(&self, url: &str, pin: &CertPin) -> CliResult<Option<ProxyRecord>> {
        if !self.persist {
            return Ok(None);
        }
        let path = self.proxy_path(url, pin);
        let record: Option<ProxyRecord> = read_json(&path)?;
        if let Some(r) = &record {
            let root_ok =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &r.root)
                    .is_ok_and(|b| b.len() == 32);
            if r.url != url || !root_ok {
                return Err(damaged(
                    &path,
                    "is damaged (its URL or checkpoint root is not what bglass wrote)",
                ));
            }
        }
        Ok(record)
    }

    /// Takes the state lock outside an async runtime, waiting while another `bglass` of this
    /// responder holds it.
    pub fn lock_blocking(&self) -> CliResult<StateLock> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))?
            .block_on(self.lock())
    }

    /// Takes the state lock, waiting (without blocking the runtime) while another `bglass`
    /// of this responder holds it.
    pub async fn lock(&self) -> CliResult<StateLock> {
        if !self.persist {
            return Ok(StateLock { _file: None });
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| CliError::user(format!("cannot create {}: {e}", self.dir.display())))?;
        let path = self.dir.join("lock");
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .map_err(|e| CliError::user(format!("cannot open {}: {e}", path.display())))?;
        let started = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StateLock { _file: Some(file) }),
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(CliError::user(format!(
                        "another bglass has held the state lock {} for {}s",
                        path.display(),
                        LOCK_WAIT.as_secs()
                    ))
                    .with_hint("wait for your other bglass commands to finish, then retry"));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(CliError::user(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }

    fn proxy_path(&self, url: &str, pin: &CertPin) -> PathBuf {
        let pin = pin.to_string();
        self.dir
            .join("proxies")
            .join(format!("{}-{}.json", sanitize(url), &pin[7..23]))
    }

    /// Saves what is known about a proxy. The caller holds the [`StateLock`] and has just
    /// re-read the record it replaces.
    pub fn save_proxy(&self, _lock: &StateLock, pin: &CertPin, record: &ProxyRecord) -> CliResult {
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

    /// The grants held, newest expiry first; an error naming a damaged grant file.
    pub fn grants(&self) -> CliResult<Vec<HeldGrant>> {
        if !self.persist {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("grants"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if is_record(&path)
                && let Some(grant) = read_json::<HeldGrant>(&path)?
            {
                out.push(grant);
            }
        }
        out.sort_by_key(|g| std::cmp::Reverse(g.exp));
        Ok(out)
    }

    /// The held grants for `service` still valid at `now_s`, newest first.
    pub fn grants_for(&self, service: &ServiceName, now_s: u64) -> CliResult<Vec<HeldGrant>> {
        let mut out: Vec<HeldGrant> = self
            .grants()?
            .into_iter()
            .filter(|g| &g.service == service && g.exp > now_s)
            .collect();
        out.sort_by_key(|g| std::cmp::Reverse((g.received_ms, g.exp)));
        Ok(out)
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
                .map(|e| e.path())
                .filter(|p| is_record(p))
                .map(|p| {
                    let r = read_json(&p).ok().flatten();
                    (p, r)
                })
                .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
