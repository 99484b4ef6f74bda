//! The checkpoint history (`checkpoints`): every signed checkpoint in order, as
//! length-prefixed notes appended by the writer, and the `checkpoint` file that holds the
//! latest one.
//!
//! A crash can leave only a torn tail: the note being appended cut short or garbled, with
//! nothing after it. Reading reports the valid prefix and the tail.

use std::io::Read;
use std::path::Path;

use super::{CHECKPOINT_FILE, FileOp, HISTORY_FILE, StorageError, err, io_err, read_bounded};

/// Largest checkpoint history accepted (about 4 million checkpoints).
const MAX_HISTORY_BYTES: u64 = 1 << 30;

/// The checkpoint history: the notes, the length of the valid prefix, and why the last
/// record was incomplete, if it was.
pub type History = (Vec<Vec<u8>>, u64, Option<String>);

/// Reads the whole checkpoint history into memory (at most 1 GiB); a torn last record is
/// reported, not an error. [`for_each_history`] streams it instead.
pub fn read_history(path: &Path) -> Result<History, StorageError> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > MAX_HISTORY_BYTES
    {
        return Err(err(
            path,
            FileOp::Read,
            format!(
                "{} bytes, more than the {MAX_HISTORY_BYTES} allowed",
                meta.len()
            ),
        ));
    }
    let mut notes = Vec::new();
    let (valid, torn) = for_each_history(path, |_, _, note| {
        notes.push(note.to_vec());
        Ok(())
    })?;
    Ok((notes, valid, torn))
}

/// The longest record: a length and the largest note.
const MAX_RECORD: u64 = 4 + crate::audit::checkpoint::MAX_CHECKPOINT_BYTES as u64;

/// Streams the checkpoint history, calling `f` with each note's position (0 = the first),
/// its byte offset and its bytes, in order, in bounded memory whatever its length. Returns
/// the length of the valid prefix and, when the file ends in a torn record (cut short, or
/// with a length no record has), what is wrong with it. More bytes after the valid prefix
/// than one record can hold is damage, not a torn tail: an error.
pub fn for_each_history(
    path: &Path,
    mut f: impl FnMut(u64, u64, &[u8]) -> Result<(), StorageError>,
) -> Result<(u64, Option<String>), StorageError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, None)),
        Err(e) => return Err(io_err(path, FileOp::Open, &e)),
    };
    let file_len = file
        .metadata()
        .map_err(|e| io_err(path, FileOp::Read, &e))?
        .len();
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut at = 0u64;
    let mut n = 0u64;
    let mut note = Vec::with_capacity(crate::audit::checkpoint::MAX_CHECKPOINT_BYTES);
    let torn = |at: u64, what: String| -> Result<(u64, Option<String>), StorageError> {
        let rest = file_len.saturating_sub(at);
        if rest > MAX_RECORD {
            return Err(err(
                path,
                FileOp::Read,
                format!(
                    "the record at byte {at} {what}, and {rest} bytes follow it, more than one record holds: the file is damaged, not torn at its end by a crash"
                ),
            ));
        }
        Ok((
            at,
            Some(format!(
                "the record at byte {at} {what} ({rest} bytes to the end of the file)"
            )),
        ))
    };
    loop {
        let mut len_bytes = [0u8; 4];
        let got =
            read_full(&mut reader, &mut len_bytes).map_err(|e| io_err(path, FileOp::Read, &e))?;
        if got == 0 {
            return Ok((at, None));
        }
        if got < 4 {
            return torn(at, "is cut short in its length".to_owned());
        }
        let claimed = u32::from_be_bytes(len_bytes);
        let len = usize::try_from(claimed)
            .ok()
            .filter(|&n| n > 0 && n <= crate::audit::checkpoint::MAX_CHECKPOINT_BYTES);
        let Some(len) = len else {
            return torn(
                at,
                format!("claims {claimed} bytes, which no checkpoint has"),
            );
        };
        note.resize(len, 0);
        let got = read_full(&mut reader, &mut note).map_err(|e| io_err(path, FileOp::Read, &e))?;
        if got < len {
            return torn(at, format!("is cut short ({got} of {len} bytes)"));
        }
        f(n, at, &note)?;
        n += 1;
        at += 4 + len as u64;
    }
}

/// The end of the checkpoint history: its last two notes (with their byte offsets), how
/// many it holds, the length of its valid prefix and its torn tail, read in bounded memory.
#[derive(Debug, Default, Clone)]
pub struct HistoryEnd {
    /// Notes in the valid prefix.
    pub count: u64,
    /// Length of the valid prefix.
    pub valid_len: u64,
    /// The last note of the valid prefix, at its byte offset.
    pub last: Option<(u64, Vec<u8>)>,
    /// The note before it.
    pub before_last: Option<(u64, Vec<u8>)>,
    /// What is wrong with the torn tail, if there is one.
    pub torn: Option<String>,
}

/// Reads the end of the checkpoint history (streaming the whole file once).
pub fn history_end(path: &Path) -> Result<HistoryEnd, StorageError> {
    let mut end = HistoryEnd::default();
    let (valid_len, torn) = for_each_history(path, |n, at, note| {
        end.before_last = end.last.take();
        end.last = Some((at, note.to_vec()));
        end.count = n + 1;
        Ok(())
    })?;
    end.valid_len = valid_len;
    end.torn = torn;
    Ok(end)
}

/// Reads until `buf` is full or the end of the input; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The latest checkpoint note: the `checkpoint` file (written after each history record),
/// or, when that file is missing, the last note of the history (streamed). `None` for a
/// log that has none.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    let path = dir.join(CHECKPOINT_FILE);
    match read_bounded(&path, crate::audit::checkpoint::MAX_CHECKPOINT_BYTES as u64) {
        Ok(note) => return Ok(Some(note)),
        Err(_) if !path.exists() => {}
        Err(e) => return Err(e),
    }
    let mut last = None;
    for_each_history(&dir.join(HISTORY_FILE), |_, _, note| {
        last = Some(note.to_vec());
        Ok(())
    })?;
    Ok(last)
}

/// A note that no history record holds: empty, or larger than any checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a checkpoint note of {len} bytes is empty or larger than {max} bytes", max = crate::audit::checkpoint::MAX_CHECKPOINT_BYTES)]
pub struct NoteSizeError {
    /// The note's length.
    pub len: usize,
}

/// Encodes one history record: the note's length (4 bytes, big-endian), then the note.
pub fn encode_history(note: &[u8]) -> Result<Vec<u8>, NoteSizeError> {
    let too_large = NoteSizeError { len: note.len() };
    if note.is_empty() || note.len() > crate::audit::checkpoint::MAX_CHECKPOINT_BYTES {
        return Err(too_large);
    }
    let len = u32::try_from(note.len()).map_err(|_| too_large)?;
    let mut out = Vec::with_capacity(note.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(note);
    Ok(out)
}

/// The length of the history record of a note of `len` bytes.
pub fn history_record_len(len: usize) -> u64 {
    4 + len as u64
}
