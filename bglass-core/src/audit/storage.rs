//! The log's files: C2SP tlog-tiles entry bundles and hash tiles, the write-ahead file that
//! holds the entries of the bundle being filled, and the checkpoint history.
//!
//! ```text
//! DIR/tile/entries/000        full entry bundles: 256 × (u16 big-endian length, entry)
//! DIR/tile/<L>/000            full hash tiles: 256 × 32-byte hashes
//! DIR/pending.wal             entries after the last full bundle (checksummed records)
//! DIR/checkpoint              the latest signed checkpoint
//! DIR/checkpoints             every signed checkpoint, in order (u32 length, note)
//! DIR/tmp/                    files being written; renamed into place when complete
//! DIR/lock                    held by the one process that writes the log
//! ```
//!
//! Full bundles and tiles never change once written. Everything is read under size limits,
//! and a malformed file is an error value, never a panic.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::tree::{FullTiles, HASH_SIZE, TILE_WIDTH, tile_path};

/// Largest entry: the bundle format's length prefix is 16 bits.
pub const MAX_ENTRY_BYTES: usize = 65_535;
/// The write-ahead file.
pub const WAL_FILE: &str = "pending.wal";
/// The latest checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// The checkpoint history.
pub const HISTORY_FILE: &str = "checkpoints";
/// The directory of files being written.
pub const TMP_DIR: &str = "tmp";
/// The writer's lock file.
pub const LOCK_FILE: &str = "lock";

const WAL_MAGIC: &[u8; 8] = b"bglwal1\n";
const RECORD_OVERHEAD: usize = 8 + 2 + 8;
/// Largest full tile or bundle file: 256 entries of the largest size.
const MAX_BUNDLE_BYTES: u64 = (TILE_WIDTH * (2 + MAX_ENTRY_BYTES)) as u64;
/// Largest checkpoint history accepted (about 4 million checkpoints).
const MAX_HISTORY_BYTES: u64 = 1 << 30;

/// A storage failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}")]
pub struct StorageError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub what: String,
}

pub(crate) fn err(path: &Path, what: impl std::fmt::Display) -> StorageError {
    StorageError {
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

/// Reads a whole file, refusing it when larger than `max`.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, StorageError> {
    let file = std::fs::File::open(path).map_err(|e| err(path, e))?;
    let len = file.metadata().map_err(|e| err(path, e))?.len();
    if len > max {
        return Err(err(
            path,
            format!("{len} bytes, more than the {max} allowed"),
        ));
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| err(path, e))?;
    Ok(out)
}

/// Syncs a directory so that renames and new files in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))
}

/// Writes `bytes` to `root/rel` atomically and durably: a temporary file in `root/tmp`,
/// fsync, rename into place, fsync of the directory.
pub fn write_atomic(root: &Path, rel: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let target = root.join(rel);
    let parent = target.parent().unwrap_or(root).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| err(&parent, e))?;
    let tmp = root.join(TMP_DIR).join(rel.replace('/', "_"));
    {
        let mut file = std::fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
        file.write_all(bytes).map_err(|e| err(&tmp, e))?;
        file.sync_all().map_err(|e| err(&tmp, e))?;
    }
    std::fs::rename(&tmp, &target).map_err(|e| err(&target, e))?;
    sync_dir(&parent)
}

/// Encodes entries as a C2SP entry bundle.
pub fn encode_bundle(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for entry in entries {
        let len = u16::try_from(entry.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&entry[..usize::from(len)]);
    }
    out
}

/// Why a bundle's bytes are not 256 entries.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry's length runs past the end of the file.
    #[error("entry {entry} at byte {offset} runs past the end of the bundle")]
    Truncated {
        /// Entry number within the bundle.
        entry: usize,
        /// Byte offset of its length prefix.
        offset: usize,
    },
    /// More or fewer entries than a full bundle holds.
    #[error("bundle holds {found} entries, a full bundle holds {TILE_WIDTH}")]
    Count {
        /// Entries found.
        found: usize,
    },
    /// An entry is empty.
    #[error("entry {entry} is empty")]
    Empty {
        /// Entry number within the bundle.
        entry: usize,
    },
}

/// Splits a bundle into its entries.
pub fn parse_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    Ok(bundle_ranges(bytes)?
        .into_iter()
        .filter_map(|r| bytes.get(r))
        .collect())
}

/// The byte ranges of a full bundle's entries.
pub fn bundle_ranges(bytes: &[u8]) -> Result<Vec<std::ops::Range<usize>>, BundleError> {
    let mut out = Vec::with_capacity(TILE_WIDTH);
    let mut at = 0usize;
    while at < bytes.len() {
        let entry = out.len();
        let Some(len_bytes) = bytes.get(at..at + 2) else {
            return Err(BundleError::Truncated { entry, offset: at });
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if at + 2 + len > bytes.len() {
            return Err(BundleError::Truncated { entry, offset: at });
        }
        if len == 0 {
            return Err(BundleError::Empty { entry });
        }
        out.push(at + 2..at + 2 + len);
        at += 2 + len;
    }
    if out.len() != TILE_WIDTH {
        return Err(BundleError::Count { found: out.len() });
    }
    Ok(out)
}

/// The path of full bundle `index`, relative to the log directory.
pub fn bundle_rel(index: u64) -> String {
    tile_path(None, index, None)
}

/// The path of full hash tile (`level`, `index`), relative to the log directory.
pub fn tile_rel(level: u8, index: u64) -> String {
    tile_path(Some(level), index, None)
}

/// One write-ahead record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// The entry's index in the log.
    pub index: u64,
    /// The entry.
    pub data: Vec<u8>,
}

fn record_sum(index: u64, len: u16, data: &[u8]) -> [u8; 8] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&index.to_be_bytes());
    ctx.update(&len.to_be_bytes());
    ctx.update(data);
    let digest = ctx.finish();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

/// Appends the encoding of one record: index, length, entry, and an 8-byte checksum that
/// tells a record torn by a crash from a complete one.
pub fn encode_record(out: &mut Vec<u8>, index: u64, data: &[u8]) {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&data[..usize::from(len)]);
    out.extend_from_slice(&record_sum(index, len, &data[..usize::from(len)]));
}

/// The header every write-ahead file starts with.
pub fn wal_header() -> Vec<u8> {
    WAL_MAGIC.to_vec()
}

/// What a write-ahead file holds.
#[derive(Debug, Default)]
pub struct WalContents {
    /// Complete records, in file order.
    pub records: Vec<WalRecord>,
    /// Length of the valid prefix (header and complete records).
    pub valid_len: u64,
    /// Why the file ends early, when it does: its last record is torn (cut by a crash
    /// before it was acknowledged), and nothing valid follows it.
    pub torn: Option<String>,
}

/// Why a write-ahead file cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The file could not be read, or is not a write-ahead file.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record is damaged in a way no crash leaves (complete records follow it, or it is
    /// whole but altered). Records after the damage may have been acknowledged, so nothing
    /// is dropped.
    #[error(
        "{path}: record {record} (entry {index}) at byte {offset} {what}{}: the file is damaged, not torn at its end by a crash",
        next.map(|n| format!(", and a complete record follows it at byte {n}")).unwrap_or_default()
    )]
    Damaged {
        /// The file.
        path: String,
        /// Byte offset of the damaged record.
        offset: u64,
        /// Its position among the file's records (0 = the first).
        record: usize,
        /// The entry it should hold.
        index: u64,
        /// What is wrong with it.
        what: String,
        /// Byte offset of the first complete, valid record after it, if any.
        next: Option<u64>,
    },
}

impl WalError {
    /// The entry concerned, for a damaged record.
    pub fn index(&self) -> Option<u64> {
        match self {
            Self::Damaged { index, .. } => Some(*index),
            Self::Storage(_) => None,
        }
    }
}

/// Why no valid record starts at an offset.
enum BadRecord {
    /// The file ends before the record does.
    Incomplete(String),
    /// The record is whole (it ends at `end`) but empty or failing its checksum.
    Invalid { what: String, end: usize },
}

/// The valid record starting at `at`, if one does: (index, data, end).
fn record_at(bytes: &[u8], at: usize) -> Result<(u64, &[u8], usize), BadRecord> {
    let Some(head) = bytes.get(at..at + 10) else {
        return Err(BadRecord::Incomplete(
            "is incomplete (its header runs past the end of the file)".to_owned(),
        ));
    };
    let mut index_bytes = [0u8; 8];
    index_bytes.copy_from_slice(&head[..8]);
    let index = u64::from_be_bytes(index_bytes);
    let len = u16::from_be_bytes([head[8], head[9]]);
    let end = at + 10 + usize::from(len) + 8;
    let Some(record) = bytes.get(at..end) else {
        return Err(BadRecord::Incomplete(format!(
            "is incomplete (its {len} bytes run past the end of the file)"
        )));
    };
    let data = &record[10..10 + usize::from(len)];
    if len == 0 {
        return Err(BadRecord::Invalid {
            what: "is empty".to_owned(),
            end,
        });
    }
    if record[record.len() - 8..] != record_sum(index, len, data) {
        return Err(BadRecord::Invalid {
            what: "fails its checksum".to_owned(),
            end,
        });
    }
    Ok((index, data, end))
}

/// Most candidate records whose checksum is computed while looking past a damaged record
/// (bounds the work on a file of garbage).
const MAX_PROBES: usize = 4096;

/// The first offset after `from` where a complete, valid record starts, among records
/// whose index is plausible after `expected` (every index when the first is unknown).
/// `Err` when the search gave up: the bytes cannot be told from a file damaged in the
/// middle, which is then assumed.
fn valid_record_after(
    bytes: &[u8],
    from: usize,
    expected: Option<u64>,
) -> Result<Option<usize>, ()> {
    let mut probes = 0;
    for at in from + 1..bytes.len() {
        let Some(head) = bytes.get(at..at + 10) else {
            break;
        };
        let mut index_bytes = [0u8; 8];
        index_bytes.copy_from_slice(&head[..8]);
        let index = u64::from_be_bytes(index_bytes);
        let len = usize::from(u16::from_be_bytes([head[8], head[9]]));
        // Records after the damaged one continue its sequence; there are fewer of them
        // than the bytes left could hold.
        let plausible = expected.is_none_or(|e| {
            index >= e && index - e <= (bytes.len() - at) as u64 / RECORD_OVERHEAD as u64 + 1
        });
        if !plausible || len == 0 || at + 10 + len + 8 > bytes.len() {
            continue;
        }
        probes += 1;
        if probes > MAX_PROBES {
            return Err(());
        }
        if record_at(bytes, at).is_ok() {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// Whether the bytes from `at` to the end of the file are one whole, valid record once its
/// length field is replaced by the length those bytes imply: a record whose length field
/// was damaged, not one a crash cut short.
fn whole_record_with_damaged_length(bytes: &[u8], at: usize) -> bool {
    let Some(rest) = bytes.get(at..) else {
        return false;
    };
    if rest.len() < RECORD_OVERHEAD + 1 || rest.len() > RECORD_OVERHEAD + MAX_ENTRY_BYTES {
        return false;
    }
    let len = rest.len() - RECORD_OVERHEAD;
    let mut index_bytes = [0u8; 8];
    index_bytes.copy_from_slice(&rest[..8]);
    let index = u64::from_be_bytes(index_bytes);
    let len16 = u16::try_from(len).unwrap_or(u16::MAX);
    rest[rest.len() - 8..] == record_sum(index, len16, &rest[10..10 + len])
}

/// Reads a write-ahead file.
///
/// Only a torn tail is left out (and reported in [`WalContents::torn`]): damage a crash
/// leaves at the end of the file, with no valid record after it. That is a last record
/// cut short (the file ends inside it), or one whose bytes from its checksum to the end of
/// the file are zero (space the file system allocated but the crash left unwritten). Any
/// other bad record is a [`WalError::Damaged`] naming it, never dropped: a record that
/// valid records follow, a whole last record with a wrong checksum (a changed byte), or a
/// last record whose length field was changed.
pub fn read_wal(path: &Path) -> Result<WalContents, WalError> {
    let bytes = match read_bounded(path, MAX_BUNDLE_BYTES * 2) {
        Ok(bytes) => bytes,
        Err(_) if !path.exists() => return Ok(WalContents::default()),
        Err(e) => return Err(e.into()),
    };
    if bytes.is_empty() {
        return Ok(WalContents::default());
    }
    if bytes.len() < WAL_MAGIC.len() || &bytes[..WAL_MAGIC.len()] != WAL_MAGIC {
        if WAL_MAGIC.starts_with(&bytes) {
            // A header torn before the first record: nothing was acknowledged.
            return Ok(WalContents {
                torn: Some("incomplete header".to_owned()),
                ..WalContents::default()
            });
        }
        return Err(err(path, "not a bglass write-ahead file").into());
    }
    let mut contents = WalContents {
        valid_len: WAL_MAGIC.len() as u64,
        ..WalContents::default()
    };
    let mut at = WAL_MAGIC.len();
    while at < bytes.len() {
        let bad = match record_at(&bytes, at) {
            Ok((index, data, end)) => {
                contents.records.push(WalRecord {
                    index,
                    data: data.to_vec(),
                });
                at = end;
                contents.valid_len = at as u64;
                continue;
            }
            Err(bad) => bad,
        };
        let expected = contents.records.last().map(|r| r.index + 1);
        let damaged = |what: String, next: Option<usize>| {
            // The entry it should hold: the one after the previous record, or for the
            // first record the one before the valid record that follows.
            let index = expected
                .or_else(|| {
                    next.and_then(|n| record_at(&bytes, n).ok())
                        .map(|(i, _, _)| i.saturating_sub(1))
                })
                .unwrap_or(0);
            WalError::Damaged {
                path: path.display().to_string(),
                offset: at as u64,
                record: contents.records.len(),
                index,
                what,
                next: next.map(|n| n as u64),
            }
        };
        let what = match &bad {
            BadRecord::Incomplete(what) | BadRecord::Invalid { what, .. } => what.clone(),
        };
        match valid_record_after(&bytes, at, expected) {
            Ok(Some(next)) => return Err(damaged(what, Some(next))),
            Ok(None) => {}
            Err(()) => {
                return Err(damaged(
                    format!(
                        "{what}, and the {} bytes after it hold too many candidates to search for valid records",
                        bytes.len() - at
                    ),
                    None,
                ));
            }
        }
        match bad {
            BadRecord::Incomplete(_) if whole_record_with_damaged_length(&bytes, at) => {
                return Err(damaged(
                    format!(
                        "{what}, but the bytes to the end of the file are one whole record whose length field was changed"
                    ),
                    None,
                ));
            }
            BadRecord::Invalid { end, .. } => {
                let checksum = end - 8;
                if !bytes[checksum..].iter().all(|b| *b == 0) {
                    return Err(damaged(
                        format!(
                            "{what}, though it is whole and its checksum was written: a changed byte, not a crash"
                        ),
                        None,
                    ));
                }
            }
            BadRecord::Incomplete(_) => {}
        }
        contents.torn = Some(format!("the record at byte {at} {what}"));
        break;
    }
    Ok(contents)
}

/// The size of a record for `len` bytes of entry.
pub fn record_len(len: usize) -> usize {
    RECORD_OVERHEAD + len
}

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
            format!(
                "{} bytes, more than the {MAX_HISTORY_BYTES} allowed",
                meta.len()
            ),
        ));
    }
    let mut notes = Vec::new();
    let (valid, torn) = for_each_history(path, |_, note| {
        notes.push(note.to_vec());
        Ok(())
    })?;
    Ok((notes, valid, torn))
}

/// Streams the checkpoint history, calling `f` with each note's position (0 = the first)
/// and bytes, in order, in bounded memory whatever its length. Returns the length of the
/// valid prefix and why the last record was incomplete, if it was.
pub fn for_each_history(
    path: &Path,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), StorageError>,
) -> Result<(u64, Option<String>), StorageError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, None)),
        Err(e) => return Err(err(path, e)),
    };
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut at = 0u64;
    let mut n = 0u64;
    let mut note = Vec::with_capacity(super::checkpoint::MAX_CHECKPOINT_BYTES);
    loop {
        let mut len_bytes = [0u8; 4];
        let got = read_full(&mut reader, &mut len_bytes).map_err(|e| err(path, e))?;
        if got == 0 {
            return Ok((at, None));
        }
        if got < 4 {
            return Ok((at, Some(format!("incomplete record at byte {at}"))));
        }
        let len = usize::try_from(u32::from_be_bytes(len_bytes)).unwrap_or(usize::MAX);
        if len > super::checkpoint::MAX_CHECKPOINT_BYTES {
            return Err(err(path, format!("record at byte {at} claims {len} bytes")));
        }
        note.resize(len, 0);
        let got = read_full(&mut reader, &mut note).map_err(|e| err(path, e))?;
        if got < len {
            return Ok((at, Some(format!("incomplete record at byte {at}"))));
        }
        f(n, &note)?;
        n += 1;
        at += 4 + len as u64;
    }
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
    match read_bounded(&path, super::checkpoint::MAX_CHECKPOINT_BYTES as u64) {
        Ok(note) => return Ok(Some(note)),
        Err(_) if !path.exists() => {}
        Err(e) => return Err(e),
    }
    let mut last = None;
    for_each_history(&dir.join(HISTORY_FILE), |_, note| {
        last = Some(note.to_vec());
        Ok(())
    })?;
    Ok(last)
}

/// Writes `bytes` to `path` atomically and durably, through a temporary file beside it
/// (for files outside the log directory, such as the published checkpoint).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = parent.join(tmp_name);
    {
        let mut file = std::fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
        file.write_all(bytes).map_err(|e| err(&tmp, e))?;
        file.sync_all().map_err(|e| err(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(path, e))?;
    sync_dir(parent)
}

/// Encodes one history record.
pub fn encode_history(note: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(note.len() + 4);
    out.extend_from_slice(&u32::try_from(note.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(note);
    out
}

/// Full hash tiles read from the log directory.
#[derive(Debug, Clone)]
pub struct DiskTiles {
    /// The log directory.
    pub dir: PathBuf,
}

impl FullTiles for DiskTiles {
    fn full_tile(&self, level: u8, index: u64) -> Result<Vec<u8>, tlog_tiles::Error> {
        let path = self.dir.join(tile_rel(level, index));
        let data = read_bounded(&path, (TILE_WIDTH * HASH_SIZE) as u64)
            .map_err(|_| tlog_tiles::Error::InvalidTile)?;
        if data.len() != TILE_WIDTH * HASH_SIZE {
            return Err(tlog_tiles::Error::InvalidTile);
        }
        Ok(data)
    }
}

/// The number of full bundles present, counted from 0 until the first missing one.
pub fn count_bundles(dir: &Path) -> u64 {
    let mut n = 0;
    while dir.join(bundle_rel(n)).exists() {
        n += 1;
    }
    n
}

/// Reads full bundle `index`, bounded.
pub fn read_bundle(dir: &Path, index: u64) -> Result<Vec<u8>, StorageError> {
    read_bounded(&dir.join(bundle_rel(index)), MAX_BUNDLE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_round_trip_and_refuse_damage() {
        let entries: Vec<Vec<u8>> = (0..TILE_WIDTH)
            .map(|i| format!("e{i}").into_bytes())
            .collect();
        let bytes = encode_bundle(&entries);
        let parsed = parse_bundle(&bytes).unwrap();
        assert_eq!(parsed.len(), TILE_WIDTH);
        assert_eq!(parsed[7], b"e7");
        assert!(matches!(
            parse_bundle(&bytes[..bytes.len() - 1]),
            Err(BundleError::Truncated { entry: 255, .. })
        ));
        assert_eq!(
            parse_bundle(&encode_bundle(&entries[..255])),
            Err(BundleError::Count { found: 255 })
        );
    }

    fn wal_of(records: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = wal_header();
        let mut offsets = Vec::new();
        for (i, data) in records.iter().enumerate() {
            offsets.push(bytes.len());
            encode_record(&mut bytes, 100 + i as u64, data);
        }
        (bytes, offsets)
    }

    fn read(dir: &Path, bytes: &[u8]) -> Result<WalContents, WalError> {
        let path = dir.join(WAL_FILE);
        std::fs::write(&path, bytes).unwrap();
        read_wal(&path)
    }

    fn damaged(result: Result<WalContents, WalError>) -> (u64, usize, u64, Option<u64>) {
        match result {
            Err(WalError::Damaged {
                offset,
                record,
                index,
                next,
                ..
            }) => (offset, record, index, next),
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn wal_reads_whole_files_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, _) = wal_of(&[b"first", b"second"]);
        let c = read(dir.path(), &bytes).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[1].index, 101);
        assert_eq!(c.valid_len, bytes.len() as u64);
        assert!(c.torn.is_none());
        assert!(read(dir.path(), b"garbage!").is_err());
        assert!(
            read_wal(&dir.path().join("none"))
                .unwrap()
                .records
                .is_empty()
        );
    }

    #[test]
    fn only_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, offsets) = wal_of(&[b"first", b"second", b"third"]);
        // Cut inside the last record (a write the crash cut short): the first two survive.
        for cut in [bytes.len() - 1, bytes.len() - 12, offsets[2] + 4] {
            let c = read(dir.path(), &bytes[..cut]).unwrap();
            assert_eq!(c.records.len(), 2, "cut at {cut}");
            assert_eq!(c.valid_len, offsets[2] as u64);
            assert!(c.torn.as_deref().unwrap().contains("incomplete"), "{c:?}");
        }
        // The last record zero-filled from inside it to the end (space allocated, never
        // written), and zeros appended after whole records.
        let mut zeroed = bytes.clone();
        zeroed[offsets[2] + 12..].fill(0);
        let c = read(dir.path(), &zeroed).unwrap();
        assert_eq!(c.records.len(), 2);
        assert!(c.torn.is_some());
        for zeros in [3, 17, 18, 40, 4096] {
            let mut padded = bytes.clone();
            padded.extend(std::iter::repeat_n(0u8, zeros));
            let c = read(dir.path(), &padded).unwrap();
            assert_eq!(c.records.len(), 3, "{zeros} zeros");
            assert!(c.torn.is_some());
        }
    }

    #[test]
    fn a_damaged_record_with_records_after_it_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, offsets) = wal_of(&[b"first", b"second", b"third", b"fourth"]);
        // A byte of the second record's entry, of its index, of its length, of its sum.
        for at in [
            offsets[1] + 12,
            offsets[1] + 3,
            offsets[1] + 9,
            offsets[2] - 1,
        ] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            let (offset, record, index, next) = damaged(read(dir.path(), &flipped));
            assert_eq!(
                (offset, record, index, next),
                (offsets[1] as u64, 1, 101, Some(offsets[2] as u64)),
                "flip at {at}"
            );
            let message = read(dir.path(), &flipped).unwrap_err().to_string();
            assert!(
                message.contains(&format!("record 1 (entry 101) at byte {}", offsets[1])),
                "{message}"
            );
        }
        // The first record: its index is named from the record after it.
        let mut flipped = bytes.clone();
        flipped[offsets[0] + 12] ^= 0x01;
        assert_eq!(
            damaged(read(dir.path(), &flipped)),
            (offsets[0] as u64, 0, 100, Some(offsets[1] as u64))
        );
    }

    #[test]
    fn a_changed_last_record_is_an_error_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, offsets) = wal_of(&[b"first", b"second", b"the last entry"]);
        // A byte of its entry: whole, with a checksum that was written.
        let mut flipped = bytes.clone();
        flipped[offsets[2] + 13] ^= 0x01;
        assert_eq!(
            damaged(read(dir.path(), &flipped)),
            (offsets[2] as u64, 2, 102, None)
        );
        // Its length made larger: it seems to run past the end, but the bytes to the end
        // are one whole record.
        let mut longer = bytes.clone();
        longer[offsets[2] + 9] ^= 0x10;
        assert_eq!(
            damaged(read(dir.path(), &longer)),
            (offsets[2] as u64, 2, 102, None)
        );
    }

    #[test]
    fn the_history_streams_and_the_latest_checkpoint_is_read_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let notes: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("note {i}\n").into_bytes())
            .collect();
        let bytes: Vec<u8> = notes.iter().flat_map(|n| encode_history(n)).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut seen = Vec::new();
        let (valid, torn) = for_each_history(&path, |i, note| {
            assert_eq!(i, seen.len() as u64);
            seen.push(note.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, notes);
        assert_eq!((valid, torn), (bytes.len() as u64, None));
        // Without the checkpoint file, the history's last note.
        assert_eq!(
            latest_checkpoint(dir.path()).unwrap(),
            Some(b"note 999\n".to_vec())
        );
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"the latest").unwrap();
        assert_eq!(
            latest_checkpoint(dir.path()).unwrap(),
            Some(b"the latest".to_vec())
        );
        // A torn last record is reported.
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let (notes_read, valid, torn) = read_history(&path).unwrap();
        assert_eq!(notes_read.len(), 999);
        assert!(valid < bytes.len() as u64 && torn.is_some());
    }
}
