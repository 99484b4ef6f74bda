//! Every file operation the log performs when it writes, in one place, so that tests can make
//! any of them fail the way a disk does: ENOSPC, a short write, EIO on fsync, a read-only
//! file system (see [`Faults`]). Production code uses [`Disk::default`], which only does the
//! operations.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::{FileOp, StorageError, TMP_DIR, err, io_err};

/// A fault a [`Faults`] plan makes an operation fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with this `errno` (e.g. 28 ENOSPC, 5 EIO, 30 EROFS), having done
    /// nothing.
    Fail(i32),
    /// A write stores its first `written` bytes, then fails with `errno` (what a write
    /// that runs out of space does).
    Short {
        /// Bytes written before the error.
        written: usize,
        /// The error.
        errno: i32,
    },
}

/// Decides, before each operation, whether it fails. Implemented by tests; each call is
/// one operation, in the order the log performs them.
pub trait Faults: Send + Sync + std::fmt::Debug {
    /// Before `len` bytes are written to `path`.
    fn write(&self, path: &Path, len: usize) -> Option<Fault>;
    /// Before `path` (a file or a directory) is synced.
    fn sync(&self, path: &Path) -> Option<Fault>;
    /// Before `path` is created, opened for writing, truncated, renamed onto or removed.
    fn modify(&self, path: &Path) -> Option<Fault>;
}

/// The log's writing operations (with the test's fault plan, if any).
#[derive(Debug, Clone, Default)]
pub struct Disk {
    faults: Option<Arc<dyn Faults>>,
}

fn fault_error(fault: Fault) -> std::io::Error {
    match fault {
        Fault::Fail(errno) | Fault::Short { errno, .. } => std::io::Error::from_raw_os_error(errno),
    }
}

impl Disk {
    /// Operations that fail as `faults` decides.
    pub fn with_faults(faults: Arc<dyn Faults>) -> Self {
        Self {
            faults: Some(faults),
        }
    }

    fn check_modify(&self, path: &Path) -> std::io::Result<()> {
        match self.faults.as_ref().and_then(|f| f.modify(path)) {
            Some(fault) => Err(fault_error(fault)),
            None => Ok(()),
        }
    }

    /// Writes all of `bytes` at the file's position.
    pub fn write_all(&self, file: &mut File, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        match self
            .faults
            .as_ref()
            .and_then(|f| f.write(path, bytes.len()))
        {
            None => file.write_all(bytes),
            Some(Fault::Short { written, errno }) => {
                file.write_all(&bytes[..written.min(bytes.len())])?;
                Err(std::io::Error::from_raw_os_error(errno))
            }
            Some(fault) => Err(fault_error(fault)),
        }
    }

    /// Makes the file's data durable (`fdatasync`).
    pub fn sync_data(&self, file: &File, path: &Path) -> std::io::Result<()> {
        match self.faults.as_ref().and_then(|f| f.sync(path)) {
            Some(fault) => Err(fault_error(fault)),
            None => file.sync_data(),
        }
    }

    /// Makes the file's data and metadata durable (`fsync`).
    pub fn sync_all(&self, file: &File, path: &Path) -> std::io::Result<()> {
        match self.faults.as_ref().and_then(|f| f.sync(path)) {
            Some(fault) => Err(fault_error(fault)),
            None => file.sync_all(),
        }
    }

    /// Makes a directory's entries (new files, renames) durable.
    pub fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        if let Some(fault) = self.faults.as_ref().and_then(|f| f.sync(dir)) {
            return Err(io_err(dir, FileOp::Sync, &fault_error(fault)));
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, FileOp::Sync, &e))
    }

    /// Creates (or truncates) a file for writing.
    pub fn create(&self, path: &Path) -> std::io::Result<File> {
        self.check_modify(path)?;
        File::create(path)
    }

    /// Opens a file for appending, creating it when missing.
    pub fn open_append(&self, path: &Path) -> std::io::Result<File> {
        self.check_modify(path)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// Cuts a file to `len` bytes.
    pub fn set_len(&self, file: &File, path: &Path, len: u64) -> std::io::Result<()> {
        self.check_modify(path)?;
        file.set_len(len)
    }

    /// Renames `from` onto `to`.
    pub fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.check_modify(to)?;
        std::fs::rename(from, to)
    }

    /// Removes a file.
    pub fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.check_modify(path)?;
        std::fs::remove_file(path)
    }

    /// Writes `bytes` to `root/rel` atomically and durably: a temporary file in
    /// `root/tmp`, fsync, rename into place, fsync of the directory. On failure the
    /// temporary file is removed (best effort) and the target is as it was.
    pub fn write_atomic(&self, root: &Path, rel: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let target = root.join(rel);
        let parent = target.parent().unwrap_or(root).to_path_buf();
        if !root.is_dir() {
            return Err(err(root, FileOp::Write, "the log directory is missing"));
        }
        std::fs::create_dir_all(&parent).map_err(|e| io_err(&parent, FileOp::CreateDir, &e))?;
        let tmp = root.join(TMP_DIR).join(rel.replace('/', "_"));
        self.replace(&tmp, &target, &parent, bytes)
    }

    /// Writes `bytes` to `path` atomically and durably, through a temporary file beside it
    /// (for files outside the log directory, such as the published checkpoint).
    pub fn write_file_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = parent.join(tmp_name);
        self.replace(&tmp, path, &parent, bytes)
    }

    fn replace(
        &self,
        tmp: &Path,
        target: &Path,
        parent: &Path,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let written = self
            .create(tmp)
            .map_err(|e| io_err(tmp, FileOp::Open, &e))
            .and_then(|mut file| {
                self.write_all(&mut file, tmp, bytes)
                    .map_err(|e| io_err(tmp, FileOp::Write, &e))?;
                self.sync_all(&file, tmp)
                    .map_err(|e| io_err(tmp, FileOp::Sync, &e))
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        if let Err(e) = self.rename(tmp, target) {
            let _ = std::fs::remove_file(tmp);
            return Err(io_err(target, FileOp::Rename, &e));
        }
        self.sync_dir(parent)
    }
}

/// Writes `bytes` to `root/rel` atomically and durably, with no fault plan.
pub fn write_atomic(root: &Path, rel: &str, bytes: &[u8]) -> Result<(), StorageError> {
    Disk::default().write_atomic(root, rel, bytes)
}

/// Writes `bytes` to `path` atomically and durably, with no fault plan.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    Disk::default().write_file_atomic(path, bytes)
}
