//! What went wrong with a child process, with enough to say so like git does.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

/// A program and its arguments, shown the way a shell would read them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: OsString,
    pub args: Vec<OsString>,
}

impl CommandLine {
    /// The program's name as given (for "cannot run 'npm'").
    pub fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = std::iter::once(&self.program).chain(&self.args);
        for (i, w) in words.enumerate() {
            let w = w.to_string_lossy();
            let quoted = shlex::try_quote(&w).unwrap_or(w.clone());
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&quoted)?;
        }
        Ok(())
    }
}

/// Why git-teleos stopped a child before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// It ran past its wall-clock limit.
    Timeout,
    /// It printed nothing for longer than its stall limit.
    Stall,
    /// The caller's cancel flag was set (Ctrl-C).
    Cancel,
}

/// A child that ran and did not succeed: it exited non-zero, was killed by a signal, or was
/// stopped by us.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub command: CommandLine,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stopped: Option<Stop>,
    pub duration: Duration,
    /// The end of its stderr (the whole of it is in the log, when there is one).
    pub stderr_tail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = &self.command;
        match (self.stopped, self.signal, self.code) {
            (Some(Stop::Timeout), ..) => write!(
                f,
                "'{cmd}' timed out after {:.1}s and was stopped",
                self.duration.as_secs_f64()
            )?,
            (Some(Stop::Stall), ..) => {
                write!(f, "'{cmd}' printed nothing for too long and was stopped")?
            }
            (Some(Stop::Cancel), ..) => write!(f, "'{cmd}' was cancelled")?,
            (None, Some(sig), _) => write!(f, "'{cmd}' was killed by signal {sig}")?,
            (None, None, Some(code)) => write!(f, "'{cmd}' failed with exit code {code}")?,
            (None, None, None) => write!(f, "'{cmd}' failed")?,
        }
        if let Some(line) = self.last_stderr_line() {
            write!(f, ": {line}")?;
        }
        Ok(())
    }
}

impl Failure {
    /// The last non-blank line of stderr: usually the one that says what went wrong.
    pub fn last_stderr_line(&self) -> Option<&str> {
        self.stderr_tail
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
    }
}

/// A child process that could not be run, or ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Not found, not executable, or the fork failed.
    #[error("cannot run '{}': {source}", command.program_name())]
    Spawn {
        command: CommandLine,
        #[source]
        source: std::io::Error,
    },
    /// Waiting for it failed (it was stopped and reaped anyway).
    #[error("cannot wait for '{command}': {source}")]
    Wait {
        command: CommandLine,
        #[source]
        source: std::io::Error,
    },
    /// It ran and did not succeed (only from [`super::Output::check`] and
    /// [`super::Cmd::run_checked`]; [`super::Cmd::run`] returns the output instead).
    #[error("{0}")]
    Failed(Box<Failure>),
}

impl ProcessError {
    /// The command line concerned.
    pub fn command(&self) -> &CommandLine {
        match self {
            ProcessError::Spawn { command, .. } | ProcessError::Wait { command, .. } => command,
            ProcessError::Failed(f) => &f.command,
        }
    }

    /// How it failed, when it ran.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ProcessError::Failed(f) => Some(f),
            _ => None,
        }
    }

    /// The program was not found (e.g. to suggest installing it).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProcessError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}
