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

use std::io::Read;
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

/// Largest full tile or bundle file: 256 entries of the largest size.
const MAX_BUNDLE_BYTES: u64 = (TILE_WIDTH * (2 + MAX_ENTRY_BYTES)) as u64;

mod disk;
mod history;
mod wal;

pub use disk::{Disk, Fault, Faults, write_atomic, write_file_atomic};
pub use history::{
    History, HistoryEnd, NoteSizeError, encode_history, for_each_history, history_end,
    history_record_len, latest_checkpoint, read_history,
};
pub use wal::{WalContents, WalError, WalRecord, encode_record, read_wal, record_len, wal_header};

/// A storage failure: which file, which operation, and the system's error number when the
/// system refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} {path}: {what}")]
pub struct StorageError {
    /// The file.
    pub path: String,
    /// What was being done to it.
    pub op: FileOp,
    /// What went wrong: the system's message, or what is wrong with the file's content.
    pub what: String,
    /// The operating system's error number, when the system refused an operation (28 is a
    /// full disk).
    pub errno: Option<i32>,
}

/// The file operation a [`StorageError`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileOp {
    /// Opening or creating a file.
    Open,
    /// Reading a file, or checking what it holds.
    Read,
    /// Writing to a file.
    Write,
    /// Flushing a file or directory to the disk (fsync).
    Sync,
    /// Renaming a file into place.
    Rename,
    /// Cutting a file to a length.
    Truncate,
    /// Making a directory.
    CreateDir,
    /// Taking the log's lock, or starting its writer.
    Start,
    /// Removing a file.
    Remove,
}

impl std::fmt::Display for FileOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open => "opening",
            Self::Read => "reading",
            Self::Write => "writing",
            Self::Sync => "syncing",
            Self::Remove => "removing",
            Self::Rename => "renaming into",
            Self::Truncate => "truncating",
            Self::CreateDir => "creating",
            Self::Start => "starting",
        })
    }
}

/// A storage failure that is not the system's: what is wrong with the file (or the log).
pub(crate) fn err(path: &Path, op: FileOp, what: impl std::fmt::Display) -> StorageError {
    StorageError {
        path: path.display().to_string(),
        op,
        what: what.to_string(),
        errno: None,
    }
}

/// A storage failure from an operating-system error, keeping its number.
pub fn io_err(path: &Path, op: FileOp, e: &std::io::Error) -> StorageError {
    StorageError {
        path: path.display().to_string(),
        op,
        what: e.to_string(),
        errno: e.raw_os_error(),
    }
}

/// The error of a failed operation `op` on `path` (for `map_err`).
pub fn io_err_at(path: &Path, op: FileOp) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |e| io_err(path, op, &e)
}

/// Reads a whole file, refusing it when larger than `max`.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, StorageError> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, FileOp::Open, &e))?;
    let len = file
        .metadata()
        .map_err(|e| io_err(path, FileOp::Read, &e))?
        .len();
    if len > max {
        return Err(err(
            path,
            FileOp::Read,
            format!("{len} bytes, more than the {max} allowed"),
        ));
    }
    let mut out = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| io_err(path, FileOp::Read, &e))?;
    Ok(out)
}

/// Syncs a directory so that renames and new files in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, FileOp::Sync, &e))
}

/// One entry's bytes: 1 to [`MAX_ENTRY_BYTES`] of them, what the 16-bit length prefix of
/// bundles and write-ahead records holds. Only [`Entry::new`] makes one, so the encoders
/// never cut an entry short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    bytes: Vec<u8>,
    len: u16,
}

/// Bytes that cannot be an entry: none, or more than [`MAX_ENTRY_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audit entry of {len} bytes is empty or larger than {MAX_ENTRY_BYTES} bytes")]
pub struct EntrySizeError {
    /// The length given.
    pub len: usize,
}

impl Entry {
    /// An entry, when `bytes` is not empty and fits the length prefix.
    pub fn new(bytes: Vec<u8>) -> Result<Self, EntrySizeError> {
        match u16::try_from(bytes.len()) {
            Ok(len) if len > 0 => Ok(Self { bytes, len }),
            _ => Err(EntrySizeError { len: bytes.len() }),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The length prefix of the formats.
    fn len_prefix(&self) -> [u8; 2] {
        self.len.to_be_bytes()
    }
}

impl AsRef<[u8]> for Entry {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Encodes entries as a C2SP entry bundle.
pub fn encode_bundle(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.bytes.len() + 2).sum());
    for entry in entries {
        out.extend_from_slice(&entry.len_prefix());
        out.extend_from_slice(&entry.bytes);
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
    /// More or fewer entries than the bundle should hold.
    #[error("bundle holds {found} entries, where {expected} were expected")]
    Count {
        /// Entries found.
        found: usize,
        /// Entries it should hold (256 for a full bundle).
        expected: usize,
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
    bundle_ranges_of(bytes, TILE_WIDTH)
}

/// Splits a bundle of `width` entries (a partial bundle, C2SP `entries/N.p/W`, or a full
/// one when `width` is 256) into its entries.
pub fn parse_bundle_of(bytes: &[u8], width: usize) -> Result<Vec<&[u8]>, BundleError> {
    Ok(bundle_ranges_of(bytes, width)?
        .into_iter()
        .filter_map(|r| bytes.get(r))
        .collect())
}

/// The byte ranges of the entries of a bundle of `width` entries.
fn bundle_ranges_of(
    bytes: &[u8],
    width: usize,
) -> Result<Vec<std::ops::Range<usize>>, BundleError> {
    let mut out = Vec::with_capacity(width);
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
    if out.len() != width {
        return Err(BundleError::Count {
            found: out.len(),
            expected: width,
        });
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
        let entries: Vec<Entry> = (0..TILE_WIDTH)
            .map(|i| Entry::new(format!("e{i}").into_bytes()).unwrap())
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
            Err(BundleError::Count {
                found: 255,
                expected: 256
            })
        );
    }

    #[test]
    fn an_entry_too_long_for_its_length_prefix_is_refused_never_cut_short() {
        assert_eq!(
            Entry::new(vec![b'x'; MAX_ENTRY_BYTES + 1]),
            Err(EntrySizeError {
                len: MAX_ENTRY_BYTES + 1
            })
        );
        assert_eq!(Entry::new(Vec::new()), Err(EntrySizeError { len: 0 }));
        // The largest entry is encoded whole, in a record and in a bundle.
        let largest = Entry::new(vec![b'x'; MAX_ENTRY_BYTES]).unwrap();
        let mut record = Vec::new();
        encode_record(&mut record, 7, &largest);
        assert_eq!(record.len(), record_len(MAX_ENTRY_BYTES));
        let bundle = encode_bundle(&vec![largest.clone(); TILE_WIDTH]);
        assert_eq!(parse_bundle(&bundle).unwrap()[255], largest.as_bytes());
        // A note larger than any checkpoint does not become a history record.
        let note = vec![b'n'; crate::audit::checkpoint::MAX_CHECKPOINT_BYTES + 1];
        assert_eq!(
            encode_history(&note),
            Err(NoteSizeError { len: note.len() })
        );
        assert_eq!(encode_history(b"n\n").unwrap(), b"\0\0\0\x02n\n");
    }

    fn wal_of(records: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = wal_header();
        let mut offsets = Vec::new();
        for (i, data) in records.iter().enumerate() {
            offsets.push(bytes.len());
            encode_record(
                &mut bytes,
                100 + i as u64,
                &Entry::new(data.to_vec()).unwrap(),
            );
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
    fn a_garbled_last_record_is_a_torn_tail_the_log_checks_against_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, offsets) = wal_of(&[b"first", b"second", b"the last entry"]);
        // A crash can leave the last record garbled as well as short: a changed byte of
        // its entry, or of its length. Nothing valid follows, so it is reported as a torn
        // tail; whether that tail was acknowledged is for the log to check (against its
        // latest checkpoint), not for the file reader.
        let mut flipped = bytes.clone();
        flipped[offsets[2] + 13] ^= 0x01;
        let mut longer = bytes.clone();
        longer[offsets[2] + 9] ^= 0x10;
        for garbled in [flipped, longer] {
            let c = read(dir.path(), &garbled).unwrap();
            assert_eq!(c.records.len(), 2);
            assert_eq!(c.valid_len, offsets[2] as u64);
            assert_eq!(c.torn_bytes, (bytes.len() - offsets[2]) as u64);
            assert!(c.torn.is_some());
        }
    }

    #[test]
    fn the_history_streams_and_the_latest_checkpoint_is_read_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let notes: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("note {i}\n").into_bytes())
            .collect();
        let bytes: Vec<u8> = notes
            .iter()
            .flat_map(|n| encode_history(n).unwrap())
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut seen = Vec::new();
        let (valid, torn) = for_each_history(&path, |i, _, note| {
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
