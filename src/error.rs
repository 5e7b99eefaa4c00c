//! The error type every layer returns, and the exit codes the program promises.

use std::path::PathBuf;

/// Exit codes, as documented in the README and the man page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything selected was done.
    Success = 0,
    /// The command ran, but some work did not complete (partial, error, conflict, red gates).
    Incomplete = 1,
    /// Bad usage or a setup problem: nothing was attempted.
    Usage = 2,
    /// A bug in git-teleos (a panic, a broken internal invariant), as jj and nextest give
    /// theirs a code of its own: a script can tell it from the user's mistakes.
    Internal = 3,
}

impl ExitCode {
    pub const SUCCESS: u8 = 0;
    pub const INCOMPLETE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INTERNAL: u8 = 3;
    /// 128 + n when stopped by signal n (as shells report it).
    pub fn signal(n: i32) -> u8 {
        (128 + n).clamp(0, 255) as u8
    }
}

/// A failure with a message in git's style (`error: …`) and optional hints (`hint: …`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Usage { message: String, hints: Vec<String> },
    #[error("not a git repository (or any parent up to mount point): {}", path.display())]
    NotARepository { path: PathBuf },
    #[error("no sprint-artifacts folder found; tried: {}", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoArtifactsDir { tried: Vec<PathBuf> },
    #[error("bad value for config key '{key}': {value:?} ({reason})")]
    Config {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("git: {0}")]
    Git(String),
    #[error("{message}")]
    Setup { message: String, hints: Vec<String> },
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
    /// A bug of ours, not the user's: exits with [`ExitCode::INTERNAL`].
    #[error("internal error: {0}")]
    Internal(String),
    /// A child process (setup command, pipeline command, git) could not run or failed.
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hints: Vec::new(),
        }
    }
    pub fn usage_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hints: vec![hint.into()],
        }
    }
    pub fn setup(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Setup {
            message: message.into(),
            hints: vec![hint.into()],
        }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    pub fn git(e: impl std::fmt::Display) -> Self {
        Error::Git(e.to_string())
    }

    /// Hints printed after the message, one `hint:` line each.
    pub fn hints(&self) -> Vec<String> {
        match self {
            Error::Usage { hints, .. } | Error::Setup { hints, .. } => hints.clone(),
            Error::NotARepository { .. } => {
                vec!["run this inside a git repository (or pass -C <path>)".into()]
            }
            Error::NoArtifactsDir { .. } => vec![
                "pass --artifacts <dir> or set it with: git config teleos.sprintArtifacts <dir>"
                    .into(),
            ],
            Error::Config { key, .. } => vec![format!(
                "fix it with: git config {key} <value>   (or remove it: git config --unset {key})"
            )],
            Error::Internal(_) => {
                vec!["this is a bug in git-teleos; please report it with the message above".into()]
            }
            _ => Vec::new(),
        }
    }

    /// Every error is a usage or setup problem unless it says otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted(sig) => ExitCode::signal(*sig),
            Error::Internal(_) => ExitCode::INTERNAL,
            _ => ExitCode::USAGE,
        }
    }
}

/// Why a story or tracker file was not read. Its text is the reason `scan` shows for the
/// skipped file (or in the warning about the tracker), so it names no path.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("unreadable: {0}")]
    Unreadable(#[source] std::io::Error),
    /// Larger than the limit by its metadata.
    #[error("too large ({size} bytes > {limit})")]
    TooLarge { size: u64, limit: u64 },
    /// Grew past the limit while being read (or its metadata lied).
    #[error("too large (more than {limit} bytes)")]
    GrewTooLarge { limit: u64 },
    #[error("not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
