//! `bglass audit play DIR SESSION`: a recorded SSH session replayed in the terminal, after
//! every chunk of it is checked against the verified log; `--verify` checks only. And the
//! listing of recorded sessions with their state (`bglass audit show DIR --sessions`).

use std::io::Write;
use std::time::Duration;

use bglass_core::audit::event::Event;
use bglass_core::audit::recording::{self, Check, Frame, FrameKind, Recording, State};
use bglass_core::timestamp;
use serde_json::json;

use super::{events, filter};
use crate::cli::{AuditPlayArgs, AuditShowArgs};
use crate::error::{CliError, CliResult, ErrorKind};

/// Runs `bglass audit play`.
pub fn run(args: AuditPlayArgs) -> CliResult {
    if !args.speed.is_finite() || args.speed < 0.0 {
        return Err(CliError::user(format!(
            "--speed {}: give a factor of 0 or more (1 is real time, 0 plays without pauses)",
            args.speed
        )));
    }
    if !recording::valid_session_id(&args.session) {
        return Err(CliError::user(format!(
            "{:?} is not a session id (lower-case letters, digits, '-' and '_')",
            args.session
        ))
        .with_hint("`bglass audit show DIR --sessions` lists the recorded sessions"));
    }
    let events = events(&args.source, false)?;
    let found = recording::collect(&events);
    let Some(rec) = found.iter().find(|r| r.session == args.session) else {
        return Err(
            CliError::user(format!("the log has no recorded session {}", args.session)).with_hint(
                format!(
                    "`bglass audit show {} --sessions` lists the {} recorded session(s) it has",
                    args.source.dir.display(),
                    found.len()
                ),
            ),
        );
    };
    let dir = &args.source.dir;
    let (check, bytes) = recording::read_verified(dir, rec)
        .map_err(|e| CliError::new(ErrorKind::Defect, format!("reading the recording: {e}")))?;
    eprintln!("{}", describe(rec));
    if args.verify {
        crate::outln!("{}: {}: {}", rec.session, check.state.name(), check.detail)?;
        return verdict(rec, &check);
    }
    let (frames, cut) = recording::decode(&bytes);
    play(&frames, &args)?;
    if let Some(cut) = cut {
        eprintln!("note: {cut} (the verified part ends there)");
    }
    verdict(rec, &check)
}

/// Exit 0 for a complete recording, 5 (naming what is wrong) otherwise.
fn verdict(rec: &Recording, check: &Check) -> CliResult {
    if check.state == State::Complete {
        return Ok(());
    }
    let hint = match check.state {
        State::Truncated if rec.end.is_none() => {
            "the proxy stopped before the session ended: what verifies is all there is"
        }
        _ => "keep the copy as evidence; compare with the proxy's own recordings directory",
    };
    Err(CliError::new(
        ErrorKind::Defect,
        format!(
            "recording {} is {}: {}",
            rec.session,
            check.state.name(),
            check.detail
        ),
    )
    .with_hint(hint))
}

/// A line naming the session: who, where, when, how it ended.
fn describe(r: &Recording) -> String {
    let end = match &r.end {
        Some(e) => format!("ended {} ({})", timestamp::format_ms(e.time_ms), e.reason),
        None => "no end in the log".to_owned(),
    };
    format!(
        "session {}: {} as {} on {} (grant {}), started {}, {end}",
        r.session,
        r.responder.as_ref().map_or("?", |a| a.as_str()),
        r.user,
        r.service,
        r.grant,
        timestamp::format_ms(r.start_ms)
    )
}

/// Writes the frames as they happened: output to standard output, the rest (commands,
/// exit statuses, the proxy's notes, and with --input what was sent) to standard error.
fn play(frames: &[Frame], args: &AuditPlayArgs) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    let max_pause = args.max_pause.map(|d| d.to_std());
    let mut last = 0u64;
    for f in frames {
        if args.speed > 0.0 && f.micros > last {
            let mut pause = Duration::from_secs_f64((f.micros - last) as f64 / 1e6 / args.speed);
            if let Some(max) = max_pause {
                pause = pause.min(max);
            }
            std::thread::sleep(pause);
        }
        last = last.max(f.micros);
        let at = format!("{:.3}s", f.micros as f64 / 1e6);
        let text = String::from_utf8_lossy(&f.data);
        let note = match f.kind {
            FrameKind::Output => {
                write_bytes(&mut stdout, &f.data)?;
                None
            }
            FrameKind::Error => {
                stdout.flush().map_err(CliError::internal)?;
                let _ = std::io::stderr().write_all(&f.data);
                None
            }
            FrameKind::Input if args.input => Some(format!("input {:?}", text)),
            FrameKind::Exec => Some(format!("exec: {text}")),
            FrameKind::Subsystem => Some(format!("subsystem: {text}")),
            FrameKind::Shell => Some("shell".to_owned()),
            FrameKind::Pty => Some(format!("terminal {text}")),
            FrameKind::Resize => Some(format!("resized to {text}")),
            FrameKind::ExitStatus => Some(format!("exit status {text}")),
            FrameKind::ExitSignal => Some(format!("killed by signal {text}")),
            FrameKind::Note => Some(text.into_owned()),
            _ => None,
        };
        if let Some(note) = note {
            stdout.flush().map_err(CliError::internal)?;
            eprint!("\r\n[{at} {note}]\r\n");
        }
    }
    stdout.flush().map_err(CliError::internal)
}

/// Writes `data` to standard output; a reader that went away ends the replay quietly.
fn write_bytes(out: &mut impl Write, data: &[u8]) -> CliResult {
    match out.write_all(data) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::closed_pipe()),
        Err(e) => Err(CliError::user(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// One recorded session and its check, as `show --sessions` lists it.
fn checked(dir: &std::path::Path, r: &Recording) -> (String, String) {
    match recording::check(dir, r) {
        Ok(c) => (c.state.name().to_owned(), c.detail),
        Err(e) => ("unreadable".to_owned(), e.to_string()),
    }
}

/// Runs `bglass audit show DIR --sessions`.
pub fn list(args: &AuditShowArgs, events: &[(u64, Event)]) -> CliResult {
    let f = filter(&args.filter)?;
    let sessions: Vec<Recording> = recording::collect(events)
        .into_iter()
        .filter(|r| {
            f.in_window(r.start_ms)
                && f.responder
                    .as_ref()
                    .is_none_or(|x| r.responder.as_ref() == Some(x))
                && f.service.as_ref().is_none_or(|s| &r.service == s)
        })
        .collect();
    let dir = &args.source.dir;
    let rows: Vec<(&Recording, (String, String))> =
        sessions.iter().map(|r| (r, checked(dir, r))).collect();
    if args.json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(r, (state, detail))| {
                json!({
                    "session": r.session,
                    "grant": r.grant,
                    "responder": r.responder,
                    "service": r.service,
                    "user": r.user,
                    "start_index": r.start_index,
                    "start_ms": r.start_ms,
                    "chunks": r.chunks.len(),
                    "bytes": r.chunks.iter().map(|(_, c)| c.bytes).sum::<u64>(),
                    "end": r.end.as_ref().map(|e| json!({
                        "index": e.index, "time_ms": e.time_ms, "reason": e.reason,
                        "chunks": e.chunks, "bytes": e.bytes, "sha256": e.sha256,
                    })),
                    "state": state,
                    "detail": detail,
                })
            })
            .collect();
        return bglass_client::output::print_json(&doc);
    }
    crate::outln!(
        "{:<32}  {:<24}  {:<12}  {:<16}  {:<10}  {:>6}  {:>10}  {:<9}  DETAIL",
        "SESSION",
        "STARTED (UTC)",
        "RESPONDER",
        "SERVICE",
        "USER",
        "CHUNKS",
        "BYTES",
        "STATE"
    )?;
    for (r, (state, detail)) in &rows {
        let reason = r
            .end
            .as_ref()
            .map_or(String::new(), |e| format!("[{}] ", e.reason));
        crate::outln!(
            "{:<32}  {:<24}  {:<12}  {:<16}  {:<10}  {:>6}  {:>10}  {:<9}  {reason}{detail}",
            r.session,
            timestamp::format_ms(r.start_ms),
            r.responder.as_ref().map_or("?", |a| a.as_str()),
            r.service.as_str(),
            r.user,
            r.chunks.len(),
            r.chunks.iter().map(|(_, c)| c.bytes).sum::<u64>(),
            state
        )?;
    }
    let broken = rows.iter().filter(|(_, (s, _))| s != "complete").count();
    eprintln!(
        "{} recorded session(s){}",
        rows.len(),
        if broken > 0 {
            format!(", {broken} not complete: `bglass audit play DIR SESSION --verify` says why")
        } else {
            String::new()
        }
    );
    Ok(())
}
