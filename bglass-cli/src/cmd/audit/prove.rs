//! `bglass audit prove [DIR]`: check the receipts of your own grants — alone (signed
//! checkpoint and inclusion proof), against a copied log when one is given, and, for a
//! proxy your config gives a witness policy, in a checkpoint its witnesses cosigned.

use std::collections::HashMap;
use std::path::Path;

use bglass_core::audit::checkpoint;
use bglass_core::audit::receipt::ReceiptError;
use bglass_core::audit::tree::{Hash, check_inclusion, decode_hash};
use bglass_core::audit::verify::{Defect, VerifyReport, verify_dir};
use bglass_core::audit::witness::cosigners;
use bglass_core::id::ProxyId;
use bglass_core::keys::PublicKey;

use super::super::block_on;
use crate::cli::AuditProveArgs;
use crate::client::Session;
use crate::config;
use crate::error::{CliError, CliResult, ErrorKind};
use crate::store::{Store, StoredReceipt};

/// One receipt's outcome, as printed (`--json`: one object a receipt).
#[derive(Debug, serde::Serialize)]
struct Row {
    /// The grant (absent for an unreadable receipt file).
    #[serde(skip_serializing_if = "Option::is_none")]
    grant: Option<String>,
    /// The receipt file, when it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    ok: bool,
    /// Where the grant is proven.
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
    /// Why it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

/// Why a receipt does not prove its grant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum NotProven {
    /// The receipt file could not be read or parsed.
    #[error("unreadable receipt")]
    Unreadable,
    /// The receipt itself does not verify.
    #[error(transparent)]
    Receipt(ReceiptError),
    /// The copied log is another proxy's.
    #[error("the log in {dir} is {log}'s, not {receipt}'s")]
    OtherProxy {
        /// The copied log's directory.
        dir: String,
        /// Whose log it is.
        log: ProxyId,
        /// Whose receipt it is.
        receipt: ProxyId,
    },
    /// The copied log is shorter than the receipt's checkpoint.
    #[error("the log holds {entries} entries, the receipt's checkpoint {size}")]
    Short {
        /// Entries in the copied log.
        entries: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The copied log has a defect.
    #[error(transparent)]
    Log(Defect),
    /// Your config requires witnesses for this proxy, and no checkpoint they cosigned
    /// covers the entry.
    #[error("not witnessed: {0}")]
    Unwitnessed(String),
}

/// A proxy's checkpoint that meets your config's witness policy.
#[derive(Debug)]
struct Witnessed {
    conn: usize,
    size: u64,
    root: Hash,
    /// The witnesses that cosigned it.
    by: Vec<String>,
    quorum: usize,
}

/// Each proxy's witness view, by proxy id, and the proxies with a policy that could not be
/// told apart (not reached, never seen).
type Views = (HashMap<ProxyId, Result<Witnessed, String>>, Vec<String>);

/// For each proxy of the config with a witness policy: its current checkpoint when it
/// meets the policy, or why not (keyed by proxy id).
async fn witnessed_views(session: &Session, keys: &HashMap<ProxyId, PublicKey>) -> Views {
    let mut out = HashMap::new();
    let mut unreached = Vec::new();
    for (i, conn) in session.conns.iter().enumerate() {
        let quorum = conn.entry.witness_quorum;
        if quorum == 0 {
            continue;
        }
        let base = conn.entry.url.trim_end_matches('/');
        // Which proxy it is: from the record of an earlier contact, else from the proxy.
        let id = match conn.record.as_ref() {
            Some(r) => Some(r.id.clone()),
            None => match conn.http.get(format!("{base}/healthz")).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|h| serde_json::from_value::<ProxyId>(h["proxy"].clone()).ok()),
                Err(_) => None,
            },
        };
        let Some(id) = id else {
            // Not reached and never seen: which receipts are its own is unknown.
            unreached.push(conn.entry.url.clone());
            continue;
        };
        let Some(key) = keys.get(&id) else {
            continue;
        };
        let fetched = match conn
            .http
            .get(format!("{base}/v1/audit/checkpoint"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.bytes().await.map_err(|e| e.to_string()),
            Ok(r) => Err(format!("{} answered {}", conn.entry.url, r.status())),
            Err(e) => Err(format!("{} could not be reached ({e})", conn.entry.url)),
        };
        // The key this machine trusts for it now: the receipts' key, or the key a signed
        // rotation led this machine to since (kept with the proxy's record).
        let current = conn
            .record
            .as_ref()
            .filter(|r| r.id == id)
            .map_or(key, |r| &r.key);
        let view = fetched.and_then(|note| {
            let c = checkpoint::verify(&note, &checkpoint::origin(&id), current)
                .or_else(|_| checkpoint::verify(&note, &checkpoint::origin(&id), key))
                .map_err(|e| format!("its checkpoint does not verify with your receipts' key: {e}"))?;
            let text = String::from_utf8_lossy(&note);
            let by: Vec<String> = cosigners(&text, &conn.entry.witnesses)
                .into_iter()
                .map(str::to_owned)
                .collect();
            if by.len() < quorum {
                return Err(format!(
                    "its checkpoint of size {} carries {} of the {quorum} witness cosignatures your config requires",
                    c.size,
                    by.len()
                ));
            }
            Ok(Witnessed {
                conn: i,
                size: c.size,
                root: c.root,
                by,
                quorum,
            })
        });
        out.insert(id, view);
    }
    (out, unreached)
}

/// The receipt's entry in the witnessed checkpoint: an inclusion proof from the proxy.
async fn prove_witnessed(
    session: &Session,
    stored: &StoredReceipt,
    view: &Witnessed,
) -> Result<String, NotProven> {
    let index = stored.receipt.index;
    if index >= view.size {
        return Err(NotProven::Unwitnessed(format!(
            "the latest witnessed checkpoint (size {}) does not cover entry {index} yet; ask again later",
            view.size
        )));
    }
    let conn = &session.conns[view.conn];
    let url = format!(
        "{}/v1/audit/inclusion?index={index}&size={}",
        conn.entry.url.trim_end_matches('/'),
        view.size
    );
    let proof: Option<Vec<Hash>> = match conn.http.get(&url).send().await {
        Ok(r) if r.status().is_success() => r
            .json::<bglass_core::api::ProofView>()
            .await
            .ok()
            .map(|p| p.proof.iter().filter_map(|h| decode_hash(h)).collect()),
        _ => None,
    };
    let leaf = decode_hash(&stored.receipt.leaf_hash);
    match (proof, leaf) {
        (Some(proof), Some(leaf)) if check_inclusion(&proof, view.size, view.root, index, leaf) => {
            Ok(format!(
                "; witnessed: in the checkpoint of size {} cosigned by {} (quorum {})",
                view.size,
                view.by.join(", "),
                view.quorum
            ))
        }
        (None, _) => Err(NotProven::Unwitnessed(format!(
            "{} gave no inclusion proof into its witnessed checkpoint of size {}",
            conn.entry.url, view.size
        ))),
        _ => Err(NotProven::Unwitnessed(format!(
            "the entry is not in the witnessed checkpoint of size {}: the proxy's log no longer holds what your receipt proves",
            view.size
        ))),
    }
}

/// Checks one receipt alone, then against the copied log in `dir` when one is given.
fn prove(
    stored: &StoredReceipt,
    log: Option<&VerifyReport>,
    dir: Option<&Path>,
) -> Result<String, NotProven> {
    let origin = checkpoint::origin(&stored.proxy);
    let anchored = stored
        .receipt
        .verify(&origin, &stored.key, None)
        .map_err(NotProven::Receipt)?;
    let proof = format!(
        "in {} at index {} (checkpoint of size {})",
        stored.proxy, stored.receipt.index, anchored.size
    );
    let (Some(report), Some(dir)) = (log, dir) else {
        return Ok(proof);
    };
    // The copied log must be this proxy's, hold the entry, and agree with the checkpoint.
    if report.proxy != stored.proxy {
        return Err(NotProven::OtherProxy {
            dir: dir.display().to_string(),
            log: report.proxy.clone(),
            receipt: stored.proxy.clone(),
        });
    }
    let copied = verify_dir(dir, Some(stored.key)).map_err(NotProven::Log)?;
    if copied.entries < anchored.size {
        return Err(NotProven::Short {
            entries: copied.entries,
            size: anchored.size,
        });
    }
    Ok(proof)
}

/// Runs `bglass audit prove`.
pub fn run(config_flag: Option<&Path>, args: AuditProveArgs) -> CliResult {
    let location = config::locate(config_flag)?;
    let store = Store::beside(&location.path);
    let receipts = store.receipts();
    if receipts.is_empty() {
        return Err(CliError::user("no receipts stored")
            .with_hint("receipts are kept for grants you get with `bglass access`"));
    }
    let log = match &args.dir {
        Some(dir) => Some(super::verified(&crate::cli::AuditSource {
            dir: dir.clone(),
            key: None,
        })?),
        None => None,
    };
    // Receipts of proxies your config gives a witness policy are checked against a
    // checkpoint the witnesses cosigned (which needs the proxies and your key).
    let policy = config::Config::load(&location.path)
        .map_err(config::config_error)?
        .proxies
        .iter()
        .any(|p| p.witness_quorum > 0);
    let session = if policy {
        let mut s = Session::open(config_flag)?;
        s.silence();
        Some(s)
    } else {
        None
    };
    let keys: HashMap<ProxyId, PublicKey> = receipts
        .iter()
        .filter_map(|(_, r)| r.as_ref().map(|r| (r.proxy.clone(), r.key)))
        .collect();
    let (views, unreached) = match &session {
        Some(s) => block_on(async { Ok(witnessed_views(s, &keys).await) })?,
        None => (HashMap::new(), Vec::new()),
    };
    // Proxies known to have no witness policy (their receipts need no witnessed view).
    let unpoliced: Vec<ProxyId> = session
        .iter()
        .flat_map(|s| s.conns.iter())
        .filter(|c| c.entry.witness_quorum == 0)
        .filter_map(|c| c.record.as_ref().map(|r| r.id.clone()))
        .collect();
    let mut failures = 0;
    let mut rows = Vec::new();
    for (path, stored) in receipts {
        let row = match stored {
            None => Row {
                grant: None,
                file: Some(path.display().to_string()),
                ok: false,
                proof: None,
                why: Some(NotProven::Unreadable.to_string()),
            },
            Some(stored) => {
                let mut result = prove(&stored, log.as_ref(), args.dir.as_deref());
                let view = views
                    .get(&stored.proxy)
                    .map(|v| v.as_ref().map_err(Clone::clone));
                let view = match view {
                    None if !unreached.is_empty() && !unpoliced.contains(&stored.proxy) => {
                        Some(Err(format!(
                            "{} (your config requires witnesses for it) could not be reached, so no witnessed checkpoint was checked",
                            unreached.join(", ")
                        )))
                    }
                    other => other,
                };
                if let (Ok(proof), Some(view), Some(session)) = (&result, view, &session) {
                    let witnessed = match view {
                        Ok(view) => {
                            block_on(async { Ok(prove_witnessed(session, &stored, view).await) })?
                        }
                        Err(why) => Err(NotProven::Unwitnessed(why)),
                    };
                    result = witnessed.map(|w| format!("{proof}{w}"));
                }
                Row {
                    grant: Some(stored.grant.to_string()),
                    file: None,
                    ok: result.is_ok(),
                    proof: result.as_ref().ok().cloned(),
                    why: result.err().map(|e| e.to_string()),
                }
            }
        };
        if !row.ok {
            failures += 1;
        }
        rows.push(row);
    }
    if args.json {
        super::super::print_json(&rows)?;
    } else {
        for row in &rows {
            let name = row.grant.as_deref().or(row.file.as_deref()).unwrap_or("?");
            match (&row.proof, &row.why) {
                (Some(proof), _) => crate::outln!("{name}: proven {proof}")?,
                (None, why) => {
                    crate::outln!("{name}: NOT PROVEN: {}", why.as_deref().unwrap_or(""))?
                }
            }
        }
    }
    if failures > 0 {
        return Err(CliError::new(
            ErrorKind::Defect,
            format!("{failures} receipt(s) not proven"),
        ));
    }
    Ok(())
}
