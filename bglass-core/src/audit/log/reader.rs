//! Reading an open log's entries in order from its files, a bundle at a time, while the
//! writer goes on appending (the webhook notifier's backlog, mirrors).

use std::path::PathBuf;

use super::super::storage::{self, FileOp, StorageError, WAL_FILE};
use super::super::tree::{TILE_WIDTH, tile_offset};

/// Entries of an open log read in order from its files (see [`AuditLog::entries_from`](super::AuditLog::entries_from)).
#[derive(Debug)]
pub struct EntryReader {
    dir: PathBuf,
    /// The index of the next entry to return.
    next: u64,
    /// One past the last entry to return.
    end: u64,
    /// Entries read ahead, starting at `next`.
    batch: std::collections::VecDeque<Vec<u8>>,
}

impl EntryReader {
    /// A reader of the entries `from..end` of the log in `dir`.
    pub(super) fn new(dir: PathBuf, from: u64, end: u64) -> Self {
        Self {
            dir,
            next: from,
            end,
            batch: std::collections::VecDeque::new(),
        }
    }
}

impl EntryReader {
    /// The index of the next entry it returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Reads on up to `end` entries (the log's size at a later time; never lowered).
    pub fn extend_to(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// Reads the entries from `next` on: the rest of its full bundle, or the records of the
    /// write-ahead file. The writer moves entries from that file into a bundle while this
    /// reads, so an entry found in neither is looked for again.
    fn fill(&mut self) -> Result<(), StorageError> {
        let b = self.next / TILE_WIDTH as u64;
        for _ in 0..3 {
            let bundle = self.dir.join(storage::bundle_rel(b));
            match storage::read_bundle(&self.dir, b) {
                Ok(bytes) => {
                    let entries = storage::parse_bundle(&bytes).map_err(|e| {
                        storage::err(&bundle, FileOp::Read, format!("entry {}: {e}", self.next))
                    })?;
                    let skip = tile_offset(self.next);
                    self.batch
                        .extend(entries.into_iter().skip(skip).map(<[u8]>::to_vec));
                    return Ok(());
                }
                Err(_) if !bundle.exists() => {}
                Err(e) => return Err(e),
            }
            let wal_path = self.dir.join(WAL_FILE);
            let wal = storage::read_wal(&wal_path)
                .map_err(|e| storage::err(&wal_path, FileOp::Read, e))?;
            for record in wal.records {
                let wanted = self.next + self.batch.len() as u64;
                if record.index == wanted && wanted < self.end {
                    self.batch.push_back(record.data.into_bytes());
                }
            }
            if !self.batch.is_empty() {
                return Ok(());
            }
        }
        Err(storage::err(
            &self.dir,
            FileOp::Read,
            format!(
                "entry {} is in neither a bundle nor the write-ahead file",
                self.next
            ),
        ))
    }
}

impl Iterator for EntryReader {
    type Item = Result<(u64, Vec<u8>), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            self.batch.clear();
            return None;
        }
        if self.batch.is_empty()
            && let Err(e) = self.fill()
        {
            return Some(Err(e));
        }
        let entry = self.batch.pop_front()?;
        let index = self.next;
        self.next += 1;
        Some(Ok((index, entry)))
    }
}
