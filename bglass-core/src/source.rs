//! Reading configuration files under limits, and naming places in them by line and column.
//!
//! Every file bglass reads (catalog, roster, CLI and proxy configs, scenarios) goes through
//! [`Source`]: its size is checked before a byte is parsed, it must be UTF-8, its lines are
//! bounded, and every later error can point at `file:line:column`.

use std::fmt;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Limits applied to a file before it is parsed.
#[derive(Clone, Copy, Debug)]
pub struct SourceLimits {
    /// Largest accepted file, in bytes.
    pub max_bytes: u64,
    /// Longest accepted line, in bytes (bounds every string in the file).
    pub max_line_bytes: usize,
}

/// Why a file could not be read as text. Each variant is a rule the file broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceProblem {
    /// The file could not be opened or read.
    #[error("cannot read file: {0}")]
    Io(#[source] io::Error),
    /// The file is larger than the limit; it was not parsed.
    #[error("file is too large: {size} bytes, limit {limit} bytes (refused before parsing)")]
    TooLarge {
        /// Size of the file, or a lower bound on it when it kept growing.
        size: u64,
        /// The limit that was exceeded.
        limit: u64,
    },
    /// The file is not valid UTF-8.
    #[error("file is not valid UTF-8")]
    InvalidUtf8,
    /// A line is longer than the limit.
    #[error("line is too long: {length} bytes, limit {limit} bytes")]
    LineTooLong {
        /// Length of the offending line in bytes.
        length: usize,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The TOML parser rejected the file (syntax, unknown field, wrong type, missing field).
    #[error("{message}")]
    Toml {
        /// The parser's description of the problem.
        message: String,
    },
}

/// An error located in a file: `path:line:column: problem`.
#[derive(Debug)]
pub struct Located<P> {
    /// The file the problem is in.
    pub path: PathBuf,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// What rule was broken.
    pub problem: P,
}

impl<P> Located<P> {
    /// Creates a located error.
    pub fn new(path: impl Into<PathBuf>, position: Option<Position>, problem: P) -> Self {
        Self {
            path: path.into(),
            position,
            problem,
        }
    }

    /// Converts the problem into another problem type (used to wrap [`SourceProblem`]s).
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> Located<Q> {
        Located {
            path: self.path,
            position: self.position,
            problem: f(self.problem),
        }
    }
}

impl<P: fmt::Display> fmt::Display for Located<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}: {}", self.path.display(), p, self.problem),
            None => write!(f, "{}: {}", self.path.display(), self.problem),
        }
    }
}

impl<P: std::error::Error + 'static> std::error::Error for Located<P> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.problem)
    }
}

/// The text of a file that passed the size, encoding and line-length limits.
#[derive(Clone, Debug)]
pub struct Source {
    path: PathBuf,
    text: String,
}

impl Source {
    /// Reads `path`, refusing files over the limit without reading more than one byte past it.
    pub fn read(path: &Path, limits: SourceLimits) -> Result<Self, Located<SourceProblem>> {
        let fail = |problem| Located::new(path, None, problem);
        let file = std::fs::File::open(path).map_err(|e| fail(SourceProblem::Io(e)))?;
        let meta = file.metadata().map_err(|e| fail(SourceProblem::Io(e)))?;
        // The file may be a device or grow while read: never read more than one byte past
        // the limit, whatever the metadata says.
        let mut bytes = Vec::new();
        file.take(limits.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| fail(SourceProblem::Io(e)))?;
        let size = meta.len().max(bytes.len() as u64);
        if size > limits.max_bytes {
            return Err(too_large(path, &bytes, size, limits.max_bytes));
        }
        Self::from_bytes(path, bytes, limits)
    }

    /// Checks bytes already in memory (from a request body, stdin or a test).
    pub fn from_bytes(
        path: impl Into<PathBuf>,
        bytes: Vec<u8>,
        limits: SourceLimits,
    ) -> Result<Self, Located<SourceProblem>> {
        let path = path.into();
        let size = bytes.len() as u64;
        if size > limits.max_bytes {
            return Err(too_large(&path, &bytes, size, limits.max_bytes));
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let prefix = String::from_utf8_lossy(&bytes[..valid]);
                let position = position_in(&prefix, valid);
                return Err(Located::new(
                    path,
                    Some(position),
                    SourceProblem::InvalidUtf8,
                ));
            }
        };
        let source = Self { path, text };
        source.check_lines(limits.max_line_bytes)?;
        Ok(source)
    }

    fn check_lines(&self, limit: usize) -> Result<(), Located<SourceProblem>> {
        for (index, line) in self.text.split('\n').enumerate() {
            if line.len() > limit {
                return Err(Located::new(
                    &self.path,
                    Some(Position {
                        line: index + 1,
                        column: 1,
                    }),
                    SourceProblem::LineTooLong {
                        length: line.len(),
                        limit,
                    },
                ));
            }
        }
        Ok(())
    }

    /// The file's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The line and column of a byte offset (clamped to the end of the text).
    pub fn position(&self, offset: usize) -> Position {
        position_in(&self.text, offset)
    }

    /// The line numbers of lines that open an array-of-tables entry `[[name]]`, found
    /// without parsing.
    ///
    /// Used to refuse files with too many entries before the parser builds them all.
    pub fn table_header_lines(&self, name: &str) -> Vec<usize> {
        self.text
            .lines()
            .enumerate()
            .filter(|(_, line)| {
                let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
                compact
                    .strip_prefix("[[")
                    .and_then(|rest| rest.strip_prefix(name))
                    .is_some_and(|rest| rest.starts_with("]]"))
            })
            .map(|(index, _)| index + 1)
            .collect()
    }

    /// Parses the text as TOML into `T`, locating any parser error.
    pub fn parse_toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, Located<SourceProblem>> {
        toml::from_str(&self.text).map_err(|e| {
            let position = e.span().map(|span| self.position(span.start));
            Located::new(
                &self.path,
                position,
                SourceProblem::Toml {
                    message: e.message().trim_end().to_owned(),
                },
            )
        })
    }

    /// Locates a span from a [`toml::Spanned`] value.
    pub fn locate(&self, span: Range<usize>) -> Option<Position> {
        Some(self.position(span.start))
    }
}

/// The error for an oversized file, located where the limit is crossed (nothing is parsed).
fn too_large(path: &Path, bytes: &[u8], size: u64, limit: u64) -> Located<SourceProblem> {
    // A limit beyond the address space is beyond the bytes too.
    let cut = usize::try_from(limit).map_or(bytes.len(), |limit| limit.min(bytes.len()));
    let prefix = String::from_utf8_lossy(&bytes[..cut]);
    Located::new(
        path,
        Some(position_in(&prefix, prefix.len())),
        SourceProblem::TooLarge { size, limit },
    )
}

fn position_in(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in text.as_bytes()[..offset].iter().enumerate() {
        if *b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    let column = text
        .get(line_start..offset)
        .map_or(1, |s| s.chars().count() + 1);
    Position { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SourceLimits = SourceLimits {
        max_bytes: 64,
        max_line_bytes: 16,
    };

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let s = Source::from_bytes("f", "ab\ncdé\nx".as_bytes().to_vec(), LIMITS).unwrap();
        assert_eq!(s.position(0), Position { line: 1, column: 1 });
        assert_eq!(s.position(3), Position { line: 2, column: 1 });
        // "é" is two bytes; the byte after it is column 4.
        assert_eq!(s.position(7), Position { line: 2, column: 4 });
        assert_eq!(s.position(1000), Position { line: 3, column: 2 });
    }

    #[test]
    fn oversized_bytes_are_refused() {
        let err = Source::from_bytes("f", vec![b'a'; 65], LIMITS).unwrap_err();
        assert!(matches!(
            err.problem,
            SourceProblem::TooLarge {
                size: 65,
                limit: 64
            }
        ));
    }

    #[test]
    fn invalid_utf8_is_located() {
        let err = Source::from_bytes("f", b"ok\nab\xffc".to_vec(), LIMITS).unwrap_err();
        assert!(matches!(err.problem, SourceProblem::InvalidUtf8));
        assert_eq!(err.position, Some(Position { line: 2, column: 3 }));
        assert_eq!(err.to_string(), "f:2:3: file is not valid UTF-8");
    }

    #[test]
    fn long_lines_are_refused() {
        let err = Source::from_bytes("f", b"a\nbbbbbbbbbbbbbbbbbbbb".to_vec(), LIMITS).unwrap_err();
        assert!(matches!(err.problem, SourceProblem::LineTooLong { .. }));
        assert_eq!(err.position, Some(Position { line: 2, column: 1 }));
    }

    #[test]
    fn table_headers_are_counted_without_parsing() {
        let text = "[[service]]\n [ [ service ] ]\n[[services]]\n[service]\n";
        let s = Source::from_bytes("f", text.as_bytes().to_vec(), LIMITS).unwrap();
        assert_eq!(s.table_header_lines("service"), vec![1, 2]);
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        std::fs::write(&path, vec![b'#'; 100]).unwrap();
        let err = Source::read(&path, LIMITS).unwrap_err();
        assert!(matches!(
            err.problem,
            SourceProblem::TooLarge { size: 100, .. }
        ));
        // Located where the limit is crossed: byte 64 of a single line.
        assert_eq!(
            err.position,
            Some(Position {
                line: 1,
                column: 65
            })
        );
    }
}
