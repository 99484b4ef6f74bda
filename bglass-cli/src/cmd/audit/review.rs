//! `bglass audit report DIR --incident INC [--html OUT] [--bundle OUT.tar]`: the review
//! package of one incident (or responder, or period), from a log that verifies.

use std::io::Write;
use std::path::{Path, PathBuf};

use bglass_core::audit::inclusion::{self, Proofs};
use bglass_core::audit::recording::{self, RECORDINGS_DIR};
use bglass_core::audit::report::read_events;
use bglass_core::audit::review::{Review, Scope};
use bglass_core::audit::verify::KeySource;
use bglass_core::id::ResponderId;
use serde_json::json;

use super::review_html::{Page, Session, to_html};
use super::{time_arg, verified};
use crate::cli::AuditReportArgs;
use crate::error::{CliError, CliResult, ErrorKind};

/// Most of a session's transcript shown in the page (the recording has it all).
const TRANSCRIPT_MAX: usize = 64 * 1024;

/// Runs the review.
pub fn run(args: &AuditReportArgs) -> CliResult {
    let scope = Scope {
        incident: args.incident.clone(),
        responder: args
            .responder
            .as_deref()
            .map(|r| crate::cmd::parse_arg::<ResponderId>(Some("--responder"), r))
            .transpose()?,
        since_ms: time_arg("--since", args.since.as_ref())?,
        until_ms: time_arg("--until", args.until.as_ref())?,
    };
    let dir = &args.source.dir;
    let log = verified(&args.source)?;
    for w in &log.warnings {
        eprintln!("warning: {w}");
    }
    let events = read_events(dir).map_err(|e| CliError::new(ErrorKind::Defect, e))?;
    let review = Review::build(&events, &scope);
    if review.requests.is_empty() {
        return Err(CliError::user(format!(
            "the log holds no request for {}",
            scope.describe()
        ))
        .with_hint("check the incident's name as responders gave it: `bglass audit show DIR` lists the requests"));
    }
    let sessions: Vec<Session> = review
        .recordings
        .iter()
        .map(|r| {
            let read = recording::read_verified(dir, r);
            let (check, transcript) = match read {
                Ok((check, bytes)) => {
                    let frames = recording::decode(&bytes).0;
                    (Ok(check), recording::transcript(&frames, TRANSCRIPT_MAX))
                }
                Err(e) => (Err(e.to_string()), (String::new(), false)),
            };
            Session {
                recording: r.clone(),
                check,
                transcript,
            }
        })
        .collect();
    let proofs = inclusion::prove(dir, &log.proxy, &log.key, &review.indexes).map_err(|e| {
        CliError::new(ErrorKind::Defect, format!("{}: {e}", dir.display()))
            .with_hint("run `bglass audit verify` on the directory")
    })?;
    let key = match log.key_source {
        KeySource::Given => format!("{} (given with --key)", log.key),
        KeySource::RecordedAtStart => format!(
            "{} (read from the log's first entry: proves the log self-consistent, not whose it is; give --key)",
            log.key
        ),
    };
    let log_dir = dir.display().to_string();
    let page = |recordings_href: &str| {
        to_html(&Page {
            review: &review,
            sessions: &sessions,
            proofs: &proofs,
            proxy: log.proxy.as_str(),
            key: key.clone(),
            log_dir: &log_dir,
            recordings_href,
        })
    };
    if let Some(out) = &args.html {
        let href = absolute(dir).join(RECORDINGS_DIR).display().to_string();
        bglass_core::audit::storage::write_file_atomic(
            out,
            page(&format!("file://{href}/")).as_bytes(),
        )
        .map_err(|e| CliError::user(format!("writing {}: {e}", out.display())))?;
        eprintln!("wrote {}", out.display());
    }
    if let Some(out) = &args.bundle {
        let html = page(&format!("{RECORDINGS_DIR}/"));
        bundle(out, dir, &review, &sessions, &proofs, &html)?;
        eprintln!("wrote {}", out.display());
    }
    let broken: Vec<&Session> = sessions.iter().filter(|s| !s.complete()).collect();
    for s in &broken {
        eprintln!(
            "warning: recording {} is {}: {}",
            s.recording.session,
            s.state(),
            s.detail()
        );
    }
    if args.json {
        return bglass_client::output::print_json(&document(&review, &sessions, &proofs));
    }
    crate::out!("{}", text(&review, &sessions, &proofs))?;
    Ok(())
}

/// The directory as an absolute path (for links), as given when that fails.
fn absolute(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The review as JSON: the review, each session's state, and the proofs.
fn document(review: &Review, sessions: &[Session], proofs: &Proofs) -> serde_json::Value {
    json!({
        "review": review,
        "sessions": sessions.iter().map(|s| json!({
            "session": s.recording.session,
            "grant": s.recording.grant,
            "responder": s.recording.responder,
            "service": s.recording.service,
            "user": s.recording.user,
            "start_ms": s.recording.start_ms,
            "chunks": s.recording.chunks.len(),
            "end": s.recording.end.as_ref().map(|e| json!({"index": e.index, "time_ms": e.time_ms, "reason": e.reason})),
            "state": s.state(),
            "detail": s.detail(),
        })).collect::<Vec<_>>(),
        "proofs": {
            "checkpoint": proofs.checkpoint,
            "size": proofs.size,
            "root": proofs.root,
            "receipts": proofs.receipts,
            "after_checkpoint": proofs.after_checkpoint,
        },
    })
}

/// The review in a few lines, for the terminal.
fn text(review: &Review, sessions: &[Session], proofs: &Proofs) -> String {
    let uses: usize = review.uses.iter().map(|t| t.uses.len()).sum();
    let open = review
        .bypasses
        .iter()
        .filter(|b| b.review.is_none())
        .count();
    let mut out = format!(
        "Review of {}: {} entries of {}\n\n\
         Requests: {}   approvals: {}   grants: {}   denials: {}\n\
         Emergency bypasses: {} ({open} review(s) open)\n\
         HTTP uses: {uses} on {} tool(s)   tunnels: {}\n\
         Recorded sessions: {}\n",
        review.scope.describe(),
        review.indexes.len(),
        review.entries,
        review.requests.len(),
        review.approvals.len(),
        review.grants.len(),
        review.denials.len(),
        review.bypasses.len(),
        review.uses.len(),
        review.tunnels.len(),
        sessions.len(),
    );
    for s in sessions {
        out.push_str(&format!(
            "  {}  {} on {}: {} ({})\n",
            s.recording.session,
            s.recording.responder.as_ref().map_or("?", |a| a.as_str()),
            s.recording.service,
            s.state(),
            s.detail()
        ));
    }
    out.push_str(&format!(
        "\nProofs: {} entries proven in the checkpoint of size {}{}\n",
        proofs.receipts.len(),
        proofs.size,
        if proofs.after_checkpoint.is_empty() {
            String::new()
        } else {
            format!(
                "; {} after it, not yet covered",
                proofs.after_checkpoint.len()
            )
        }
    ));
    out
}

/// What README.txt in a bundle says.
const README: &str = "\
bglass review package
=====================

review.html      the review: timeline, requests, approvals, grants (with TTL bars),
                 emergency bypasses and their reviews, denials, HTTP uses per tool,
                 tunnels, recorded SSH sessions and the proofs. Opens offline.
review.json      the same, as data.
entries.jsonl    every log entry the review rests on, one per line:
                 {\"index\": N, \"entry\": \"<the entry's exact bytes, as JSON text>\"}
proofs.json      the signed checkpoint and, for each entry, a receipt: its index, its
                 leaf hash and the inclusion proof to the checkpoint's root.
checkpoint       the signed checkpoint (a C2SP signed note), as the proxy wrote it.
recordings/      the recorded sessions' files (format bglass-rec v1), as found.

Checking it without bglass
--------------------------
1. The checkpoint is a signed note (c2sp.org/signed-note) over a checkpoint
   (c2sp.org/tlog-checkpoint): check its Ed25519 signature with the proxy's public
   key, obtained from its operator out of band.
2. For each line of entries.jsonl: leaf = SHA-256(0x00 || entry bytes); it must equal
   the receipt's leaf_hash (base64), and the receipt's inclusion proof must lead from it
   to the checkpoint's root (RFC 6962, section 2.1.1; index and tree size as given).
3. A recording is a sequence of chunks. The recording_chunks entries list each chunk's
   size and SHA-256 in order; the file is those chunks end to end. The recording_end
   entry gives the chunk count, the byte count and the SHA-256 of the whole file. A
   session with no recording_end entry was cut (the proxy stopped): what the listed
   chunks hold is all that is proven.

With bglass: `bglass audit play <log dir> <session> --verify` checks a recording, and
`bglass audit verify <log dir> --key <key>` the whole log.
";

/// Writes the bundle: a tar file (`<stem>/…`), built beside `out` and renamed into place.
fn bundle(
    out: &Path,
    dir: &Path,
    review: &Review,
    sessions: &[Session],
    proofs: &Proofs,
    html: &str,
) -> CliResult {
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("review")
        .to_owned();
    let tmp = out.with_extension(format!("tar.tmp-{}", std::process::id()));
    let written = write_tar(&tmp, &stem, dir, review, sessions, proofs, html)
        .and_then(|()| std::fs::rename(&tmp, out));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::user(format!("writing {}: {e}", out.display()))
    })
}

fn write_tar(
    path: &Path,
    stem: &str,
    dir: &Path,
    review: &Review,
    sessions: &[Session],
    proofs: &Proofs,
    html: &str,
) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(review.timeline.last().map_or(0, |t| t.time_ms / 1000));
        tar.append_data(&mut header, format!("{stem}/{name}"), data)
    };
    add("README.txt", README.as_bytes())?;
    add("review.html", html.as_bytes())?;
    let doc = serde_json::to_vec_pretty(&document(review, sessions, proofs))
        .map_err(std::io::Error::other)?;
    add("review.json", &doc)?;
    let mut lines = Vec::new();
    for e in &proofs.entries {
        serde_json::to_writer(&mut lines, &json!({"index": e.index, "entry": e.entry}))
            .map_err(std::io::Error::other)?;
        lines.push(b'\n');
    }
    add("entries.jsonl", &lines)?;
    let doc = serde_json::to_vec_pretty(&json!({
        "checkpoint": proofs.checkpoint,
        "size": proofs.size,
        "root": proofs.root,
        "receipts": proofs.receipts,
        "after_checkpoint": proofs.after_checkpoint,
    }))
    .map_err(std::io::Error::other)?;
    add("proofs.json", &doc)?;
    add("checkpoint", proofs.checkpoint.as_bytes())?;
    for s in sessions {
        let Some(file) = recording::file_path(dir, &s.recording.session) else {
            continue;
        };
        if file.exists() {
            let name = format!("{stem}/{RECORDINGS_DIR}/{}.rec", s.recording.session);
            tar.append_path_with_name(&file, name)?;
        }
    }
    let mut inner = tar.into_inner()?;
    inner.flush()?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}
