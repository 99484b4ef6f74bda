//! SSH session recordings that the audit log proves complete.
//!
//! For a `record = true` SSH service the proxy terminates SSH itself and writes what passes
//! through the session to `recordings/<session>.rec` under the log directory. The file is a
//! sequence of [frames](Frame); it is written in chunks, and the SHA-256 and size of every
//! chunk go into the audit log (`recording_chunks`, batched) once the chunk is on disk. The
//! session's `recording_end` entry carries the chunk count, the byte count and the SHA-256
//! of the whole file. Whoever holds a copy of the log and the file can therefore tell,
//! offline, whether the recording is complete and unaltered ([`check`]): a changed byte, a
//! chunk cut out, a cut tail and a missing file are each named, and a session that has no
//! end entry (the proxy stopped mid-session) is truncated, never complete.
//!
//! Recordings are never needed to verify the log itself.
//!
//! ## The file format (`bglass-rec v1`)
//!
//! Frames follow each other with no padding. A frame is a 17-byte head, big-endian:
//!
//! | bytes | field                                                    |
//! |-------|----------------------------------------------------------|
//! | 1     | kind (an ASCII letter, [`FrameKind`])                    |
//! | 4     | SSH channel number (the proxy's side)                    |
//! | 8     | microseconds since the session started                   |
//! | 4     | length of the data (at most [`MAX_FRAME_DATA`])          |
//!
//! followed by the data. The first frame is a header (`H`) whose data is a JSON object
//! naming the format, the session, the service, the user and the grant.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::event::{Event, EventKind};
use crate::id::{GrantId, ResponderId, ServiceName};

/// The directory under the log directory that holds recordings.
pub const RECORDINGS_DIR: &str = "recordings";

/// The format's name, in every header frame.
pub const FORMAT: &str = "bglass-rec v1";

/// The size of a frame's head.
pub const FRAME_HEAD: usize = 17;

/// The most data one frame carries (SSH packets are at most 32 KiB; the proxy splits
/// anything larger).
pub const MAX_FRAME_DATA: usize = 1 << 20;

/// The longest recording id.
const MAX_SESSION_ID: usize = 64;

/// How many later chunks are tried at the place of a chunk that does not match, to tell a
/// chunk cut out from one changed.
const CUT_SEARCH: usize = 64;

/// One chunk of a recording, as the log lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkDigest {
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

impl ChunkDigest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self {
            bytes: data.len() as u64,
            sha256: sha256_hex(data),
        }
    }
}

/// SHA-256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    crate::keys::hex_lower(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Whether `id` is a well-formed recording id (it names a file, so it is checked before any
/// path is made of it, even from a verified log).
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The file of recording `session` under the log directory `dir`.
pub fn file_path(dir: &Path, session: &str) -> Option<PathBuf> {
    valid_session_id(session).then(|| dir.join(RECORDINGS_DIR).join(format!("{session}.rec")))
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// `H`: the header (JSON).
    Header,
    /// `o`: output from the host (standard output, or the terminal).
    Output,
    /// `e`: standard error from the host.
    Error,
    /// `i`: input from the responder.
    Input,
    /// `p`: a terminal was asked for: `TERM COLS ROWS`.
    Pty,
    /// `r`: the terminal was resized: `COLS ROWS`.
    Resize,
    /// `s`: a shell was started.
    Shell,
    /// `x`: a command was run (its text).
    Exec,
    /// `S`: a subsystem was started (its name, e.g. `sftp`).
    Subsystem,
    /// `q`: the exit status (decimal).
    ExitStatus,
    /// `k`: the command was killed by a signal (its name).
    ExitSignal,
    /// `c`: the channel closed.
    Close,
    /// `n`: a note from the proxy (e.g. why it ended the session).
    Note,
}

impl FrameKind {
    /// The kind's byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Header => b'H',
            Self::Output => b'o',
            Self::Error => b'e',
            Self::Input => b'i',
            Self::Pty => b'p',
            Self::Resize => b'r',
            Self::Shell => b's',
            Self::Exec => b'x',
            Self::Subsystem => b'S',
            Self::ExitStatus => b'q',
            Self::ExitSignal => b'k',
            Self::Close => b'c',
            Self::Note => b'n',
        }
    }

    /// The kind of a byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'H' => Self::Header,
            b'o' => Self::Output,
            b'e' => Self::Error,
            b'i' => Self::Input,
            b'p' => Self::Pty,
            b'r' => Self::Resize,
            b's' => Self::Shell,
            b'x' => Self::Exec,
            b'S' => Self::Subsystem,
            b'q' => Self::ExitStatus,
            b'k' => Self::ExitSignal,
            b'c' => Self::Close,
            b'n' => Self::Note,
            _ => return None,
        })
    }
}

/// One frame of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: FrameKind,
    /// The SSH channel.
    pub channel: u32,
    /// Microseconds since the session started.
    pub micros: u64,
    /// The data.
    pub data: Vec<u8>,
}

/// Appends a frame to `out` (data longer than [`MAX_FRAME_DATA`] is split over frames).
pub fn encode(out: &mut Vec<u8>, kind: FrameKind, channel: u32, micros: u64, data: &[u8]) {
    let mut parts = data.chunks(MAX_FRAME_DATA);
    let first = parts.next().unwrap_or(&[]);
    for part in std::iter::once(first).chain(parts) {
        out.push(kind.byte());
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&micros.to_be_bytes());
        // At most MAX_FRAME_DATA, which fits.
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
}

/// Why bytes are not frames.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end inside a frame.
    #[error("the recording ends inside a frame at byte {0}")]
    Partial(u64),
    /// A frame's kind is unknown or its length too large.
    #[error("the recording has no valid frame at byte {0}")]
    Malformed(u64),
}

/// The frames of `bytes` in order, and, when the bytes end inside a frame or hold a bad
/// one, why (the frames before it are still returned).
pub fn decode(bytes: &[u8]) -> (Vec<Frame>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + FRAME_HEAD) else {
            return (frames, Some(FrameError::Partial(at as u64)));
        };
        let field = |range: std::ops::Range<usize>| head.get(range).unwrap_or(&[]);
        let kind = FrameKind::from_byte(head[0]);
        let channel = u32::from_be_bytes(field(1..5).try_into().unwrap_or([0; 4]));
        let micros = u64::from_be_bytes(field(5..13).try_into().unwrap_or([0; 8]));
        let len = u32::from_be_bytes(field(13..17).try_into().unwrap_or([0; 4])) as usize;
        let (Some(kind), true) = (kind, len <= MAX_FRAME_DATA) else {
            return (frames, Some(FrameError::Malformed(at as u64)));
        };
        let start = at + FRAME_HEAD;
        let Some(data) = bytes.get(start..start + len) else {
            return (frames, Some(FrameError::Partial(at as u64)));
        };
        frames.push(Frame {
            kind,
            channel,
            micros,
            data: data.to_vec(),
        });
        at = start + len;
    }
    (frames, None)
}

/// The header frame's content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: String,
    /// The recording's id.
    pub session: String,
    /// The proxy.
    pub proxy: String,
    /// The responder.
    pub responder: String,
    /// The service.
    pub service: String,
    /// The login name on the host.
    pub user: String,
    /// The grant.
    pub grant: String,
    /// When the session started, Unix milliseconds.
    pub start_ms: u64,
}

/// A recorded session as the log tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// The recording's id.
    pub session: String,
    /// The responder.
    pub responder: Option<ResponderId>,
    /// The grant.
    pub grant: GrantId,
    /// The service.
    pub service: ServiceName,
    /// The login name on the host.
    pub user: String,
    /// The index of its `recording_start` entry.
    pub start_index: u64,
    /// When it started, Unix milliseconds.
    pub start_ms: u64,
    /// Its chunks, each with the index of the entry that lists it.
    pub chunks: Vec<(u64, ChunkDigest)>,
    /// The first chunk numbering the log got wrong (a `recording_chunks` entry whose `first`
    /// is not the count so far), if any.
    pub misnumbered: Option<u64>,
    /// Its end, when the log has one.
    pub end: Option<RecordingEnd>,
}

/// The `recording_end` entry of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingEnd {
    /// The entry's index.
    pub index: u64,
    /// When, Unix milliseconds.
    pub time_ms: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the whole recording.
    pub sha256: String,
    /// Why the session ended.
    pub reason: String,
}

/// The recordings the events tell of, in the order they started.
pub fn collect(events: &[(u64, Event)]) -> Vec<Recording> {
    let mut out: Vec<Recording> = Vec::new();
    let mut by_id = std::collections::HashMap::new();
    for (index, event) in events {
        match &event.event {
            EventKind::RecordingStart {
                grant,
                service,
                session,
                user,
                ..
            } => {
                by_id.insert(session.clone(), out.len());
                out.push(Recording {
                    session: session.clone(),
                    responder: event.actor.clone(),
                    grant: grant.clone(),
                    service: service.clone(),
                    user: user.clone(),
                    start_index: *index,
                    start_ms: event.time_ms,
                    chunks: Vec::new(),
                    misnumbered: None,
                    end: None,
                });
            }
            EventKind::RecordingChunks {
                session,
                first,
                chunks,
            } => {
                if let Some(r) = by_id.get(session).and_then(|&i| out.get_mut(i)) {
                    if *first != r.chunks.len() as u64 && r.misnumbered.is_none() {
                        r.misnumbered = Some(*index);
                    }
                    r.chunks.extend(chunks.iter().map(|c| (*index, c.clone())));
                }
            }
            EventKind::RecordingEnd {
                session,
                chunks,
                bytes,
                sha256,
                reason,
                ..
            } => {
                if let Some(r) = by_id.get(session).and_then(|&i| out.get_mut(i)) {
                    r.end = Some(RecordingEnd {
                        index: *index,
                        time_ms: event.time_ms,
                        chunks: *chunks,
                        bytes: *bytes,
                        sha256: sha256.clone(),
                        reason: reason.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// What a recording's check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Every chunk the log lists is in the file, unchanged, and the end entry's count and
    /// hash match: the recording is the whole session.
    Complete,
    /// What the log lists verifies, but the session has no end (the proxy stopped
    /// mid-session), or the file stops before the end the log records.
    Truncated,
    /// The file is not there.
    Missing,
    /// A chunk is changed or cut out, or the file holds bytes the log does not list.
    Altered,
}

impl State {
    /// The state's name in listings (`complete`, `truncated`, `missing`, `altered`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Truncated => "truncated",
            Self::Missing => "missing",
            Self::Altered => "altered",
        }
    }
}

/// The result of checking a recording against the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The verdict.
    pub state: State,
    /// What was found, in a sentence (names the chunk and byte range when one is wrong).
    pub detail: String,
    /// How many bytes from the start of the file verify against the log (a player shows
    /// these and no more).
    pub verified_bytes: u64,
    /// How many chunks verify.
    pub verified_chunks: u64,
}

/// Why a recording could not be checked at all (the file could not be read).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct CheckError {
    /// The file.
    pub path: String,
    /// The error.
    pub source: std::io::Error,
}

/// Checks recording `r` against the file under the log directory `dir`.
pub fn check(dir: &Path, r: &Recording) -> Result<Check, CheckError> {
    let verdict = |state: State, detail: String, bytes: u64, chunks: u64| Check {
        state,
        detail,
        verified_bytes: bytes,
        verified_chunks: chunks,
    };
    let Some(path) = file_path(dir, &r.session) else {
        return Ok(verdict(
            State::Altered,
            format!("the log names an invalid recording id {:?}", r.session),
            0,
            0,
        ));
    };
    let io = |source: std::io::Error| CheckError {
        path: path.display().to_string(),
        source,
    };
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(verdict(
                State::Missing,
                format!(
                    "{} is missing ({} chunks are in the log)",
                    display_rel(&r.session),
                    r.chunks.len()
                ),
                0,
                0,
            ));
        }
        Err(e) => return Err(io(e)),
    };
    let file_len = file.metadata().map_err(io)?.len();
    let mut whole = ring::digest::Context::new(&ring::digest::SHA256);
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for (i, (entry, chunk)) in r.chunks.iter().enumerate() {
        let i = i as u64;
        if let Some(misnumbered) = r.misnumbered.filter(|m| m <= entry) {
            return Ok(verdict(
                State::Altered,
                format!("entry {misnumbered} lists chunks out of order"),
                offset,
                i,
            ));
        }
        let end = offset.saturating_add(chunk.bytes);
        if end > file_len {
            let total: u64 = r.chunks.iter().map(|(_, c)| c.bytes).sum();
            return Ok(verdict(
                State::Truncated,
                format!(
                    "the file ends at byte {file_len} inside chunk {i} (bytes {offset}..{end}); chunks {i}..{} ({} bytes) are not all there (the tail was cut)",
                    r.chunks.len(),
                    total - offset
                ),
                offset,
                i,
            ));
        }
        read_at(&mut file, offset, chunk.bytes, &mut buf).map_err(io)?;
        if sha256_hex(&buf) != chunk.sha256 {
            let detail = match cut_out(&mut file, offset, &r.chunks[i as usize + 1..], &mut buf)
                .map_err(io)?
            {
                Some(n) => format!(
                    "chunk {i} (bytes {offset}..{end}, listed in entry {entry}){} missing: the file goes on with chunk {} there",
                    if n > 1 {
                        format!(" and the {} after it are", n - 1)
                    } else {
                        " is".to_owned()
                    },
                    i + n
                ),
                None => format!(
                    "chunk {i} (bytes {offset}..{end}, listed in entry {entry}) is altered: its SHA-256 is not the one the log holds"
                ),
            };
            return Ok(verdict(State::Altered, detail, offset, i));
        }
        whole.update(&buf);
        offset = end;
    }
    let chunks = r.chunks.len() as u64;
    let Some(end) = &r.end else {
        let extra = file_len - offset;
        return Ok(verdict(
            State::Truncated,
            format!(
                "the session has no recording_end entry (the proxy stopped mid-session): the {chunks} chunks in the log ({offset} bytes) verify{}",
                if extra > 0 {
                    format!(", and {extra} bytes after them were never committed to the log")
                } else {
                    String::new()
                }
            ),
            offset,
            chunks,
        ));
    };
    let digest = crate::keys::hex_lower(whole.finish().as_ref());
    if end.chunks != chunks || end.bytes != offset || end.sha256 != digest {
        return Ok(verdict(
            State::Altered,
            format!(
                "the recording_end entry {} records {} chunks, {} bytes and SHA-256 {}, but the log lists {chunks} chunks, {offset} bytes, {digest}",
                end.index, end.chunks, end.bytes, end.sha256
            ),
            offset,
            chunks,
        ));
    }
    if file_len > offset {
        return Ok(verdict(
            State::Altered,
            format!(
                "the file holds {} bytes after its last chunk that the log does not list",
                file_len - offset
            ),
            offset,
            chunks,
        ));
    }
    Ok(verdict(
        State::Complete,
        format!("{chunks} chunks, {offset} bytes, each as the log records it"),
        offset,
        chunks,
    ))
}

/// The recording's file name for messages.
fn display_rel(session: &str) -> String {
    format!("{RECORDINGS_DIR}/{session}.rec")
}

/// Reads `len` bytes at `offset` into `buf` (which it resizes).
fn read_at(
    file: &mut std::fs::File,
    offset: u64,
    len: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    buf.clear();
    file.by_ref().take(len).read_to_end(buf)?;
    if (buf.len() as u64) < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file ended early",
        ));
    }
    Ok(())
}

/// When the bytes at `offset` are one of the chunks `after` (the ones that follow a chunk
/// that does not match), how many chunks were cut out before it.
fn cut_out(
    file: &mut std::fs::File,
    offset: u64,
    after: &[(u64, ChunkDigest)],
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<u64>> {
    let len = file.metadata()?.len();
    for (n, (_, chunk)) in after.iter().take(CUT_SEARCH).enumerate() {
        if offset + chunk.bytes > len {
            continue;
        }
        read_at(file, offset, chunk.bytes, buf)?;
        if sha256_hex(buf) == chunk.sha256 {
            return Ok(Some(n as u64 + 1));
        }
    }
    Ok(None)
}

/// The bytes of recording `r` that verify against the log (all of them when it is
/// complete), with the check.
pub fn read_verified(dir: &Path, r: &Recording) -> Result<(Check, Vec<u8>), CheckError> {
    let found = check(dir, r)?;
    let Some(path) = file_path(dir, &r.session) else {
        return Ok((found, Vec::new()));
    };
    if found.verified_bytes == 0 {
        return Ok((found, Vec::new()));
    }
    let io = |source: std::io::Error| CheckError {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let mut bytes = Vec::new();
    read_at(&mut file, 0, found.verified_bytes, &mut bytes).map_err(io)?;
    Ok((found, bytes))
}

/// A plain-text transcript of `frames` for reading (in a review page): commands run,
/// output with terminal control sequences removed, the proxy's notes and exit statuses.
/// Input is left out (a terminal echoes it, and it may hold a password typed at a prompt
/// that did not echo). At most `max` bytes; `true` when it was cut there.
pub fn transcript(frames: &[Frame], max: usize) -> (String, bool) {
    let mut out = String::new();
    for f in frames {
        let text = String::from_utf8_lossy(&f.data);
        match f.kind {
            FrameKind::Exec => out.push_str(&format!("$ {text}\n")),
            FrameKind::Subsystem => out.push_str(&format!("[subsystem {text}]\n")),
            FrameKind::Shell => out.push_str("[shell]\n"),
            FrameKind::Output | FrameKind::Error => out.push_str(&strip_controls(&text)),
            FrameKind::ExitStatus => out.push_str(&format!("[exit status {text}]\n")),
            FrameKind::ExitSignal => out.push_str(&format!("[killed by signal {text}]\n")),
            FrameKind::Note => out.push_str(&format!("[{text}]\n")),
            _ => {}
        }
        if out.len() > max {
            let mut cut = max;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            return (out, true);
        }
    }
    (out, false)
}

/// `text` without terminal escape sequences (CSI and OSC) and control characters other
/// than newline and tab; carriage returns are dropped.
fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "recording_tests.rs"]
mod tests;
