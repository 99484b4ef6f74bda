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
    let mut out = Vec::with_capacity(TILE_WIDTH);
    let mut at = 0usize;
    while at < bytes.len() {
        let entry = out.len();
        let Some(len_bytes) = bytes.get(at..at + 2) else {
            return Err(BundleError::Truncated { entry, offset: at });
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let Some(data) = bytes.get(at + 2..at + 2 + len) else {
            return Err(BundleError::Truncated { entry, offset: at });
        };
        if len == 0 {
            return Err(BundleError::Empty { entry });
        }
        out.push(data);
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
    /// Why reading stopped early, when it did (a torn or corrupt record).
    pub torn: Option<String>,
}

/// Reads a write-ahead file, stopping at the first incomplete or corrupt record.
pub fn read_wal(path: &Path) -> Result<WalContents, StorageError> {
    let bytes = match read_bounded(path, MAX_BUNDLE_BYTES * 2) {
        Ok(bytes) => bytes,
        Err(_) if !path.exists() => return Ok(WalContents::default()),
        Err(e) => return Err(e),
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
        return Err(err(path, "not a bglass write-ahead file"));
    }
    let mut contents = WalContents {
        valid_len: WAL_MAGIC.len() as u64,
        ..WalContents::default()
    };
    let mut at = WAL_MAGIC.len();
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 10) else {
            contents.torn = Some(format!("incomplete record header at byte {at}"));
            break;
        };
        let mut index_bytes = [0u8; 8];
        index_bytes.copy_from_slice(&head[..8]);
        let index = u64::from_be_bytes(index_bytes);
        let len = u16::from_be_bytes([head[8], head[9]]);
        let end = at + 10 + usize::from(len) + 8;
        let Some(record) = bytes.get(at..end) else {
            contents.torn = Some(format!("incomplete record at byte {at}"));
            break;
        };
        let data = &record[10..10 + usize::from(len)];
        if len == 0 || record[record.len() - 8..] != record_sum(index, len, data) {
            contents.torn = Some(format!("record at byte {at} fails its checksum"));
            break;
        }
        contents.records.push(WalRecord {
            index,
            data: data.to_vec(),
        });
        at = end;
        contents.valid_len = at as u64;
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

/// Reads the checkpoint history; a torn last record is reported, not an error.
pub fn read_history(path: &Path) -> Result<History, StorageError> {
    let bytes = match read_bounded(path, MAX_HISTORY_BYTES) {
        Ok(bytes) => bytes,
        Err(_) if !path.exists() => return Ok((Vec::new(), 0, None)),
        Err(e) => return Err(e),
    };
    let mut notes = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(len_bytes) = bytes.get(at..at + 4) else {
            return Ok((
                notes,
                at as u64,
                Some(format!("incomplete record at byte {at}")),
            ));
        };
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > super::checkpoint::MAX_CHECKPOINT_BYTES {
            return Err(err(path, format!("record at byte {at} claims {len} bytes")));
        }
        let Some(note) = bytes.get(at + 4..at + 4 + len) else {
            return Ok((
                notes,
                at as u64,
                Some(format!("incomplete record at byte {at}")),
            ));
        };
        notes.push(note.to_vec());
        at += 4 + len;
    }
    Ok((notes, at as u64, None))
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

    #[test]
    fn wal_stops_at_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE);
        let mut bytes = wal_header();
        encode_record(&mut bytes, 0, b"first");
        encode_record(&mut bytes, 1, b"second");
        let full = bytes.len();
        std::fs::write(&path, &bytes).unwrap();
        let c = read_wal(&path).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.valid_len, full as u64);
        assert!(c.torn.is_none());

        // Cut inside the second record: only the first survives.
        std::fs::write(&path, &bytes[..full - 3]).unwrap();
        let c = read_wal(&path).unwrap();
        assert_eq!(
            c.records,
            vec![WalRecord {
                index: 0,
                data: b"first".to_vec()
            }]
        );
        assert!(c.torn.is_some());

        // A flipped byte fails the checksum.
        let mut flipped = bytes.clone();
        let at = full - 10;
        flipped[at] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(read_wal(&path).unwrap().records.len(), 1);

        std::fs::write(&path, b"garbage!").unwrap();
        assert!(read_wal(&path).is_err());
    }
}
