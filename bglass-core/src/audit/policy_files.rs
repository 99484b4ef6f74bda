//! The catalogs and rosters a log was written under, kept beside it by content: the log's
//! `proxy_start` and accepted `config_reload` entries name a file by the SHA-256 of its
//! bytes, and the bytes are stored in `policy/` under the log directory (written durably
//! before the entry that names them), so that whoever holds a copy of the log can prove,
//! entry by entry, that what it records was allowed by the rules then in force.
//!
//! A stored file is only ever read back through [`load`], which checks its bytes against
//! the digest the log names: a file changed beside the log is refused, never trusted.

use std::path::{Path, PathBuf};

use super::storage::{StorageError, write_atomic};

/// The directory under the log directory that holds the files.
pub const POLICY_DIR: &str = "policy";

/// Which file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyKind {
    /// The catalog (`services.toml`).
    Catalog,
    /// The roster (`responders.toml`).
    Roster,
}

impl PolicyKind {
    /// The name used in `config_reload` entries and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Roster => "roster",
        }
    }
}

/// SHA-256 of `bytes`, lower-case hex: the digest logs name files by (the catalog's
/// [`crate::catalog::Catalog::digest`] is the same function of the same bytes).
pub fn digest(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The file's path relative to the log directory.
pub fn relative_path(kind: PolicyKind, digest: &str) -> String {
    format!("{POLICY_DIR}/{}-{digest}.toml", kind.name())
}

/// Keeps `bytes` beside the log in `log_dir`, durably; returns their digest. A file already
/// there with the same content is left as it is.
pub fn store(log_dir: &Path, kind: PolicyKind, bytes: &[u8]) -> Result<String, StorageError> {
    let d = digest(bytes);
    let rel = relative_path(kind, &d);
    if std::fs::read(log_dir.join(&rel)).is_ok_and(|held| held == bytes) {
        return Ok(d);
    }
    write_atomic(log_dir, &rel, bytes)?;
    Ok(d)
}

/// Why a file the log names could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    /// The digest is not 64 lower-case hex characters.
    #[error("{kind} digest {digest:?} is not a SHA-256 in hex")]
    BadDigest {
        /// Which file.
        kind: &'static str,
        /// The digest as recorded.
        digest: String,
    },
    /// No file with that digest beside the log.
    #[error("the {kind} the log names ({digest}) is not kept beside it: {path} is missing")]
    Missing {
        /// Which file.
        kind: &'static str,
        /// The digest recorded.
        digest: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// The file's bytes do not hash to the digest recorded.
    #[error("{path} was changed: its bytes hash to {found}, the log names {digest}")]
    Altered {
        /// Where it is.
        path: PathBuf,
        /// The digest recorded.
        digest: String,
        /// The digest of what is there.
        found: String,
    },
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// Where it is.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Reads back the file the log names by `digest`, checked against it.
pub fn load(
    log_dir: &Path,
    kind: PolicyKind,
    digest_hex: &str,
) -> Result<Vec<u8>, PolicyFileError> {
    if digest_hex.len() != 64
        || !digest_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(PolicyFileError::BadDigest {
            kind: kind.name(),
            digest: digest_hex.to_owned(),
        });
    }
    let path = log_dir.join(relative_path(kind, digest_hex));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PolicyFileError::Missing {
                kind: kind.name(),
                digest: digest_hex.to_owned(),
                path,
            });
        }
        Err(source) => return Err(PolicyFileError::Io { path, source }),
    };
    let found = digest(&bytes);
    if found != digest_hex {
        return Err(PolicyFileError::Altered {
            path,
            digest: digest_hex.to_owned(),
            found,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_file_reads_back_and_a_changed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(crate::audit::storage::TMP_DIR)).unwrap();
        let d = store(dir.path(), PolicyKind::Roster, b"[[responder]]\n").unwrap();
        assert_eq!(d, digest(b"[[responder]]\n"));
        // Stored again: unchanged.
        assert_eq!(
            store(dir.path(), PolicyKind::Roster, b"[[responder]]\n").unwrap(),
            d
        );
        assert_eq!(
            load(dir.path(), PolicyKind::Roster, &d).unwrap(),
            b"[[responder]]\n"
        );
        assert!(matches!(
            load(dir.path(), PolicyKind::Catalog, &d),
            Err(PolicyFileError::Missing { .. })
        ));
        assert!(matches!(
            load(dir.path(), PolicyKind::Roster, "../../etc/passwd"),
            Err(PolicyFileError::BadDigest { .. })
        ));
        std::fs::write(
            dir.path().join(relative_path(PolicyKind::Roster, &d)),
            b"[[responder]]\n# added\n",
        )
        .unwrap();
        let e = load(dir.path(), PolicyKind::Roster, &d).unwrap_err();
        assert!(matches!(e, PolicyFileError::Altered { .. }), "{e}");
    }
}
