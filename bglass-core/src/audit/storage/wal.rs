//! The write-ahead file (`pending.wal`): the entries after the last full bundle (and the
//! entries of that bundle, until the next one is full), as checksummed records appended by
//! the writer and synced before an entry is acknowledged.
//!
//! A crash can leave only a torn tail: the record being written cut short or filled with
//! whatever the file system left there, with nothing valid after it. Reading reports such a
//! tail (the caller decides whether it lies past everything acknowledged); a bad record
//! that valid records follow is damage, never dropped.

use std::path::Path;

use super::{Entry, FileOp, MAX_BUNDLE_BYTES, StorageError, err, read_bounded};

const WAL_MAGIC: &[u8; 8] = b"bglwal1\n";
const RECORD_OVERHEAD: usize = 8 + 2 + 8;

/// One write-ahead record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// The entry's index in the log.
    pub index: u64,
    /// The entry.
    pub data: Entry,
}

fn record_sum(index: u64, len: [u8; 2], data: &[u8]) -> [u8; 8] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&index.to_be_bytes());
    ctx.update(&len);
    ctx.update(data);
    let digest = ctx.finish();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

/// Appends the encoding of one record: index, length, entry, and an 8-byte checksum that
/// tells a record torn by a crash from a complete one.
pub fn encode_record(out: &mut Vec<u8>, index: u64, entry: &Entry) {
    let len = entry.len_prefix();
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&len);
    out.extend_from_slice(entry.as_bytes());
    out.extend_from_slice(&record_sum(index, len, entry.as_bytes()));
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
    /// Why the file ends early, when it does: its last record is torn (cut or garbled by a
    /// crash), and nothing valid follows it.
    pub torn: Option<String>,
    /// Bytes of the torn tail (0 when there is none).
    pub torn_bytes: u64,
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
    Invalid { what: String },
}

/// The valid record starting at `at`, if one does: (index, entry, end).
fn record_at(bytes: &[u8], at: usize) -> Result<(u64, Entry, usize), BadRecord> {
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
    // A length of 1 to 65,535 is always an entry.
    let Ok(entry) = Entry::new(data.to_vec()) else {
        return Err(BadRecord::Invalid {
            what: "is empty".to_owned(),
        });
    };
    if record[record.len() - 8..] != record_sum(index, [head[8], head[9]], data) {
        return Err(BadRecord::Invalid {
            what: "fails its checksum".to_owned(),
        });
    }
    Ok((index, entry, end))
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

/// Reads a write-ahead file.
///
/// Only a torn tail is left out (and reported in [`WalContents::torn`]): a bad record with
/// no valid record after it — cut short, empty, failing its checksum, or with a length
/// that runs past the file — which is what a crash leaves of the write it interrupted.
/// Whether the torn records lie past everything acknowledged is for the caller to check
/// (against the latest checkpoint). A bad record that valid records follow is a
/// [`WalError::Damaged`] naming it, never dropped.
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
        return Err(err(path, FileOp::Read, "not a bglass write-ahead file").into());
    }
    let mut contents = WalContents {
        valid_len: WAL_MAGIC.len() as u64,
        ..WalContents::default()
    };
    let mut at = WAL_MAGIC.len();
    while at < bytes.len() {
        let bad = match record_at(&bytes, at) {
            Ok((index, data, end)) => {
                contents.records.push(WalRecord { index, data });
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
        let what = match bad {
            BadRecord::Incomplete(what) | BadRecord::Invalid { what } => what,
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
        contents.torn = Some(format!(
            "the record at byte {at} {what}, and nothing valid follows it ({} bytes)",
            bytes.len() - at
        ));
        contents.torn_bytes = (bytes.len() - at) as u64;
        break;
    }
    Ok(contents)
}

/// The size of a record for `len` bytes of entry.
pub fn record_len(len: usize) -> usize {
    RECORD_OVERHEAD + len
}
