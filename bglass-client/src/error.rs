//! How the CLI reports failure: a kind with an exit code, one clear sentence, and a hint.
//!
//! Responders read these at 3 a.m.: the message says what went wrong, the hint says what to
//! do next. Exit codes are stable and documented (`docs/responder.md`, `bglass --help`).

use std::fmt;
use std::process::ExitCode;

/// What kind of failure, which decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: a file, flag value, passphrase or config the user can fix. Exit 1.
    User,
    /// A proxy refused (authentication, authorization, policy). Exit 3.
    Denied,
    /// No proxy could be reached, or the proxy could not serve. Exit 4.
    Unavailable,
    /// `bglass curl`: the tool answered 4xx. Exit 8.
    Upstream4xx,
    /// `bglass curl`: the tool answered 5xx. Exit 9.
    Upstream5xx,
    /// `bglass ssh`: the remote command's exit status, passed through as is.
    Exit(u8),
    /// Verification found a defect (tampered or damaged data). Exit 5.
    Defect,
    /// A drill ran but did not meet its scenario's expectations. Exit 6.
    DrillFailed,
    /// Standard output was closed by its reader: exit 0 without a message.
    ClosedPipe,
    /// A bug or an environment failure the user cannot fix by changing input. Exit 70.
    Internal,
}

impl ErrorKind {
    /// The process exit code for this kind (2 is clap's, for usage errors).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::ClosedPipe => 0,
            Self::Exit(code) => code,
            Self::User => 1,
            Self::Denied => 3,
            Self::Unavailable => 4,
            Self::Defect => 5,
            Self::DrillFailed => 6,
            Self::Upstream4xx => 8,
            Self::Upstream5xx => 9,
            Self::Internal => 70,
        }
    }
}

/// The exit codes, for `--help` and the docs.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   invalid input: a file, flag, passphrase or config to fix (the message says which)
  2   usage error: unknown command or flag
  3   denied by the proxy (the message gives the reason code)
  4   unavailable: no proxy reachable, or none able to serve
  5   verification failed: the audit log has a defect (the message names it and its index)
  6   bglass drill: the drill ran but did not meet its scenario's expectations
  8   bglass curl: the tool answered with a 4xx status
  9   bglass curl: the tool answered with a 5xx status
  bglass ssh -- COMMAND exits with the remote command's status
  70  internal error (please report it)";

/// A failure to show the user.
#[derive(Debug)]
pub struct CliError {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    code: Option<String>,
}

impl CliError {
    /// A user error with a message.
    pub fn user(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::User, message)
    }

    /// An internal error with a message.
    pub fn internal(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// An error of any kind.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
            hint: None,
            code: None,
        }
    }

    /// Adds the proxy's refusal code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The proxy's refusal code, when a proxy refused.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The reader of standard output went away: stop quietly, successfully.
    pub fn closed_pipe() -> Self {
        Self::new(ErrorKind::ClosedPipe, "")
    }

    /// Adds what to do next.
    pub fn with_hint(mut self, hint: impl fmt::Display) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    /// Prints the error to stderr and returns the exit code.
    pub fn report(&self) -> ExitCode {
        match self.kind {
            ErrorKind::ClosedPipe => return ExitCode::SUCCESS,
            // The remote command's status: its own output said what happened, unless the
            // status comes with a message of bglass's (a session cut before it ended).
            ErrorKind::Exit(code) if self.message.is_empty() => return ExitCode::from(code),
            _ => {}
        }
        eprintln!("error: {}", self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
        ExitCode::from(self.kind.exit_code())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;
