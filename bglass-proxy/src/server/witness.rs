//! Witnesses between proxies (C2SP tlog-witness): this proxy cosigns the checkpoints of the
//! logs it is configured to witness (`[[witness_of]]`, at `POST /v1/witness/add-checkpoint`,
//! the one route besides `/healthz` that needs no client key: a checkpoint's signature is
//! its authentication), and submits its own checkpoints to its witnesses
//! (`[[witnesses]]`), keeping the cosignatures they return to serve with its checkpoint.
//!
//! A witness that is down never blocks access: checkpoints wait for cosignatures, accesses
//! do not. A witness that refuses a checkpoint as a fork or a rollback is evidence: the
//! witness records the refusal in its own log (a `denial`, `log_inconsistent`) and notifies;
//! the submitting proxy says so on stderr. At start, a proxy whose log is behind what a
//! witness cosigned for it refuses to start (unless the operator accepts the rollback).

use std::sync::Arc;
use std::time::Duration;

use bglass_core::audit::checkpoint::VerifiedCheckpoint;
use bglass_core::audit::event::EventKind;
use bglass_core::audit::witness::{
    AddCheckpoint, COSIGNED_FILE, MAX_REQUEST_BYTES, SIZE_CONTENT_TYPE, WitnessError, cosigned_at,
};
use bglass_core::policy::Refusal;
use bglass_core::timestamp;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

use super::respond::plain;
use super::{Body, Denied, Proxy, lock};
use crate::config::WitnessTarget;

/// How often this proxy offers its newest checkpoint to its witnesses.
const SUBMIT_EVERY: Duration = Duration::from_secs(1);
/// How long one exchange with a witness may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a witness may take to answer at start (proxies restarting together must not
/// wait on each other for long: a witness that does not answer is skipped).
const START_TIMEOUT: Duration = Duration::from_secs(2);

/// What a witness of this proxy holds: the size it last cosigned, and its cosignature line
/// on the checkpoint of that size.
#[derive(Debug, Default, Clone)]
pub struct Cosigned {
    /// The size the witness holds (learnt from its answers).
    pub size: Option<u64>,
    /// Its cosignature on our checkpoint of that size.
    pub line: Option<(u64, String)>,
}

/// `POST /v1/witness/add-checkpoint`.
pub async fn add_checkpoint(proxy: &Arc<Proxy>, req: Request<Incoming>) -> Response<Body> {
    let Some(witness) = proxy.witness.as_ref() else {
        return plain(
            StatusCode::NOT_FOUND,
            "text/plain",
            "this proxy witnesses no log\n",
        );
    };
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "the add-checkpoint body is too large or was cut\n",
            );
        }
    };
    let witness = Arc::clone(witness);
    let now = timestamp::now_ms() / 1000;
    let answer = tokio::task::spawn_blocking(move || {
        witness.add_checkpoint(&body, now).map_err(|e| (e, body))
    })
    .await;
    match answer {
        Ok(Ok(line)) => plain(StatusCode::OK, "text/plain; charset=utf-8", line),
        Ok(Err((e, body))) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            if let WitnessError::OldSize { size, .. } = &e {
                return plain(status, SIZE_CONTENT_TYPE, format!("{size}\n"));
            }
            if e.is_evidence() {
                eprintln!("bglass-proxy: WITNESS REFUSED a checkpoint: {e}");
                let note = AddCheckpoint::parse(&body)
                    .map(|r| r.note)
                    .unwrap_or_default();
                let refusal = Refusal::new(
                    "log_inconsistent",
                    status.as_u16(),
                    format!(
                        "{e}; the refused checkpoint: {}",
                        String::from_utf8_lossy(&note).trim_end()
                    ),
                );
                let _ = proxy.refuse(None, &refusal, Denied::default()).await;
            }
            plain(status, "text/plain", format!("{e}\n"))
        }
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "the witness stopped\n",
        ),
    }
}

/// One exchange with a witness: the status and the body.
/// The TLS client of a witness: its pinned CA, no client certificate (made once, at start).
pub fn connector(target: &WitnessTarget) -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let config = rustls::ClientConfig::builder_with_provider(bglass_tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(bglass_tls::PinnedCaVerifier::new(target.pin)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn exchange(
    target: &WitnessTarget,
    connector: &tokio_rustls::TlsConnector,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(target.addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = connector
            .connect(ServerName::IpAddress(target.addr.ip().into()), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = Request::post("/v1/witness/add-checkpoint")
            .header(http::header::HOST, target.addr.to_string())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&text).into_owned()))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| "no answer in time".to_owned())?
}

/// Offers `checkpoint` to the witness `i`; updates what it is known to hold. Returns the
/// size the witness holds when it is above the checkpoint's (this log is behind it).
async fn offer(
    proxy: &Proxy,
    i: usize,
    checkpoint: &VerifiedCheckpoint,
    timeout: Duration,
) -> Option<u64> {
    let target = &proxy.config.witnesses[i];
    let known = lock(&proxy.cosigned)[i].clone();
    if known
        .line
        .as_ref()
        .is_some_and(|(s, _)| *s == checkpoint.size)
    {
        return None;
    }
    let old = known.size.unwrap_or(0).min(checkpoint.size);
    let proof = if old == 0 {
        Vec::new()
    } else {
        match proxy.log.consistency_proof(old, checkpoint.size) {
            Ok(p) => p,
            Err(e) => {
                eprintln!(
                    "bglass-proxy: witness {}: no proof from {old}: {e}",
                    target.name
                );
                return None;
            }
        }
    };
    let body = AddCheckpoint {
        old,
        proof,
        note: checkpoint.note.clone(),
    }
    .encode();
    match exchange(target, &proxy.witness_tls[i], body, timeout).await {
        Ok((200, lines)) => {
            let note = String::from_utf8_lossy(&checkpoint.note).into_owned();
            let mine: Vec<&str> = lines
                .lines()
                .filter(|l| {
                    cosigned_at(&format!("{note}{l}\n"), &target.name, &target.key).is_some()
                })
                .collect();
            {
                let mut all = lock(&proxy.cosigned);
                all[i].size = Some(checkpoint.size);
                if let Some(line) = mine.first() {
                    all[i].line = Some((checkpoint.size, format!("{line}\n")));
                }
            }
            None
        }
        Ok((409, text)) => {
            let held = text.trim().parse::<u64>().ok();
            lock(&proxy.cosigned)[i].size = held;
            held.filter(|h| *h > checkpoint.size)
        }
        Ok((status, text)) => {
            eprintln!(
                "bglass-proxy: witness {} REFUSED checkpoint {} ({status}): {}",
                target.name,
                checkpoint.size,
                text.trim()
            );
            None
        }
        // Down or unreachable: access goes on; the checkpoint waits.
        Err(_) => None,
    }
}

/// Before serving: asks each witness what it holds for this log. A witness that cosigned
/// more than this log holds shows the log was rolled back: the start is refused unless the
/// operator accepted the rollback, and then each such witness's view is returned, to be
/// recorded as a `log_rollback` before anything else. A witness that does not answer is
/// skipped.
pub async fn check_at_start(
    proxy: &Proxy,
    accept_rollback: bool,
) -> Result<Vec<EventKind>, String> {
    let Some(checkpoint) = proxy.log.latest_checkpoint() else {
        return Ok(Vec::new());
    };
    let mut accepted = Vec::new();
    for i in 0..proxy.config.witnesses.len() {
        let mut behind = offer(proxy, i, &checkpoint, START_TIMEOUT).await;
        // Learnt the witness's size: offer again from it.
        if behind.is_none() && lock(&proxy.cosigned)[i].line.is_none() {
            behind = offer(proxy, i, &checkpoint, START_TIMEOUT).await;
        }
        if let Some(held) = behind {
            let name = &proxy.config.witnesses[i].name;
            let what = format!(
                "witness {name} cosigned this log at size {held}, but it holds {} entries: it was rolled back (restored from an older copy, or replaced)",
                checkpoint.size
            );
            if !accept_rollback {
                return Err(what);
            }
            eprintln!("bglass-proxy: ROLLBACK ACCEPTED and recorded in the audit log: {what}");
            accepted.push(EventKind::LogRollback {
                published_size: held,
                published_root: String::new(),
                size: checkpoint.size,
                detail: what,
            });
        }
    }
    Ok(accepted)
}

/// Offers each new checkpoint to the witnesses, once a second.
pub async fn submitter(proxy: Arc<Proxy>) {
    if proxy.config.witnesses.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(SUBMIT_EVERY);
    // What was last said of each witness that holds more than this log: said once.
    let mut said: Vec<Option<u64>> = vec![None; proxy.config.witnesses.len()];
    // What `cosigned-checkpoint` beside the log holds.
    let mut kept = Vec::new();
    loop {
        tick.tick().await;
        let Some(checkpoint) = proxy.log.latest_checkpoint() else {
            continue;
        };
        for (i, said) in said.iter_mut().enumerate() {
            let behind = offer(&proxy, i, &checkpoint, EXCHANGE_TIMEOUT).await;
            if let Some(held) = behind
                && *said != Some(held)
            {
                eprintln!(
                    "bglass-proxy: witness {} holds this log at size {held}, above its {} entries: ROLLED BACK",
                    proxy.config.witnesses[i].name, checkpoint.size
                );
            }
            *said = behind;
        }
        // Kept beside the log, for auditors who check the witnesses offline: written once
        // a round, when the cosignatures gathered changed.
        let cosigned = cosigned_checkpoint(&proxy, &checkpoint);
        if cosigned != kept && cosigned.len() > checkpoint.note.len() {
            let path = proxy.log.dir().join(COSIGNED_FILE);
            let bytes = cosigned.clone();
            let written = tokio::task::spawn_blocking(move || {
                bglass_core::audit::storage::write_file_atomic(&path, &bytes)
            })
            .await;
            if matches!(written, Ok(Ok(()))) {
                kept = cosigned;
            }
        }
    }
}

/// The latest checkpoint with the cosignatures gathered for it.
pub fn cosigned_checkpoint(proxy: &Proxy, checkpoint: &VerifiedCheckpoint) -> Vec<u8> {
    let mut note = checkpoint.note.clone();
    for c in lock(&proxy.cosigned).iter() {
        if let Some((size, line)) = &c.line
            && *size == checkpoint.size
        {
            note.extend_from_slice(line.as_bytes());
        }
    }
    note
}
