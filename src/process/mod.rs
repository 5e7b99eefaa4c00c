//! Every child process git-teleos starts goes through [`Cmd`], so they all follow one set of
//! rules:
//!
//! - the `GIT_*` variables that pin a repository ([`SCRUBBED_GIT_VARS`]) are removed: a child
//!   must find the checkout it runs in, not the one `git teleos` was started from;
//! - the child leads its own process group, so one signal reaches everything it started;
//! - input is given as bytes on stdin (prompts never go on a command line), else stdin is
//!   `/dev/null`;
//! - stdout and stderr are drained by threads (a chatty child never blocks), their tails kept in
//!   memory and, optionally, everything teed to a capped log file;
//! - a wall-clock timeout, a stall timeout (no output) and a cancel flag each stop the *whole
//!   group*: SIGTERM, a grace period, SIGKILL. Whatever the child leaves running in its group
//!   after it exits (a dev server, a `sleep &`) is stopped the same way;
//! - on Linux the child is SIGKILLed if git-teleos dies;
//! - failures are a typed [`ProcessError`] carrying the command line, exit code, signal and the
//!   tail of stderr, displayed like git (`cannot run 'npm': …`, `'npm ci' failed with exit code
//!   1: …`).
//!
//! A test command in a worktree, its output's tail kept to show an agent:
//!
//! ```no_run
//! # use git_teleos::process::Cmd;
//! # use std::time::Duration;
//! let out = Cmd::new("cargo")
//!     .args(["test", "--quiet"])
//!     .current_dir("/path/to/worktree")
//!     .timeout(Duration::from_secs(600))
//!     .capture(8 << 10, 0)
//!     .merge_stderr()
//!     .run()?;
//! let passed = out.success();
//! let tail = out.stdout_text();
//! # Ok::<(), git_teleos::process::ProcessError>(())
//! ```
//!
//! Signing a buffer (the error says why when the signer fails):
//!
//! ```no_run
//! # use git_teleos::process::Cmd;
//! # use std::time::Duration;
//! # let payload = b"tree ...".to_vec();
//! let sig = Cmd::new("gpg")
//!     .args(["--status-fd=2", "-bsau", "KEYID"])
//!     .stdin(payload)
//!     .timeout(Duration::from_secs(60))
//!     .run_checked()?
//!     .stdout;
//! # Ok::<(), git_teleos::process::ProcessError>(())
//! ```

mod capture;
mod error;
mod group;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use std::os::unix::process::{CommandExt, ExitStatusExt};

pub use capture::tail_str;

use capture::{lock, Log, Pipe, Tail};
pub use error::{CommandLine, Failure, ProcessError, Stop};
pub use group::{group_alive, pid_alive, signal_group, stop_group, stop_groups};

/// Lower the calling thread's CPU priority (nice +10) for work that only prepares or tidies up
/// (checking out a worktree no story waits for yet, deleting a removed one's files), so that it
/// yields the cores to the agents and the verify-and-merge steps between them. Threads it starts
/// inherit the value (on Linux the nice value is per thread). Best effort: elsewhere, or when
/// refused, nothing changes.
pub fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; gettid cannot fail.
    unsafe {
        let tid = libc::gettid();
        let now = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, (now + 10).min(19));
    }
}

/// Variables git sets (for hooks, or for `git teleos` run as an extension) that pin a
/// repository. They are removed from every child's environment, and [`Cmd::env`] cannot put
/// them back.
pub const SCRUBBED_GIT_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
    "GIT_SHALLOW_FILE",
    "GIT_INTERNAL_SUPER_PREFIX",
];

/// Time between SIGTERM and SIGKILL unless [`Cmd::kill_grace`] says otherwise.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// stdout kept in memory unless [`Cmd::capture`] says otherwise.
pub const DEFAULT_STDOUT_TAIL: usize = 1 << 20;
/// stderr kept in memory unless [`Cmd::capture`] says otherwise.
pub const DEFAULT_STDERR_TAIL: usize = 64 << 10;
/// How much of stderr a [`Failure`] carries.
const FAILURE_STDERR_TAIL: usize = 2048;
/// The longest pause between two looks at a running child.
const MAX_POLL: Duration = Duration::from_millis(50);

/// A child process to run: a builder, consumed by [`Cmd::run`].
#[must_use = "a Cmd does nothing until it is run"]
pub struct Cmd<'a> {
    line: CommandLine,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    stall_timeout: Option<Duration>,
    kill_grace: Duration,
    cancel: Option<&'a AtomicBool>,
    stdout_cap: usize,
    stderr_cap: usize,
    merge_stderr: bool,
    log: Option<(File, u64)>,
    on_spawn: Option<&'a (dyn Fn(i32) + Sync)>,
}

impl<'a> Cmd<'a> {
    /// `program` is looked up on `PATH` unless it contains a `/`. No timeout until one is set.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            line: CommandLine {
                program: program.as_ref().to_os_string(),
                args: Vec::new(),
            },
            cwd: None,
            env: Vec::new(),
            stdin: None,
            timeout: None,
            stall_timeout: None,
            kill_grace: DEFAULT_KILL_GRACE,
            cancel: None,
            stdout_cap: DEFAULT_STDOUT_TAIL,
            stderr_cap: DEFAULT_STDERR_TAIL,
            merge_stderr: false,
            log: None,
            on_spawn: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.line.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.line
            .args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// The child's working directory (default: ours).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Add a variable to the child's environment (except one of [`SCRUBBED_GIT_VARS`]).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Bytes written to the child's stdin, which is then closed (the EOF it waits for). A
    /// thread writes them, so a child that reads slowly, or never, cannot block us.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Stop the child's group when it runs longer than this.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// [`Cmd::timeout`] when `Some`.
    pub fn timeout_opt(mut self, limit: Option<Duration>) -> Self {
        self.timeout = limit;
        self
    }

    /// Stop the child's group when it prints nothing (stdout or stderr) for this long.
    pub fn stall_timeout(mut self, limit: Option<Duration>) -> Self {
        self.stall_timeout = limit;
        self
    }

    /// Time between SIGTERM and SIGKILL when the group has to be stopped.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// Stop the child's group once this flag is set (e.g. by the Ctrl-C handler).
    pub fn cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// How many bytes of the end of stdout and of stderr [`Output`] keeps. Output past these
    /// caps is still read (and logged), only not kept.
    pub fn capture(mut self, stdout_bytes: usize, stderr_bytes: usize) -> Self {
        self.stdout_cap = stdout_bytes;
        self.stderr_cap = stderr_bytes;
        self
    }

    /// Keep stderr in the stdout tail, interleaved as the chunks arrive (as a terminal would
    /// show them: a test runner's failures and its summary in one text); [`Output::stderr`] is
    /// then empty.
    pub fn merge_stderr(mut self) -> Self {
        self.merge_stderr = true;
        self
    }

    /// Also write stdout and stderr, as they arrive, to `file` (opened by the caller, who may
    /// have written a header), up to `cap` bytes; a note marks where it was cut.
    pub fn log(mut self, file: File, cap: u64) -> Self {
        self.log = Some((file, cap));
        self
    }

    /// Called with the child's process group id as soon as it has started (to record it, so a
    /// later clean-up can stop the group if we die).
    pub fn on_spawn(mut self, f: &'a (dyn Fn(i32) + Sync)) -> Self {
        self.on_spawn = Some(f);
        self
    }

    /// The command line, for logs and messages.
    pub fn command_line(&self) -> &CommandLine {
        &self.line
    }

    /// Run to the end and return what happened, whatever the exit status. Errors only when the
    /// child could not be started or waited for.
    pub fn run(self) -> Result<Output, ProcessError> {
        let mut cmd = Command::new(&self.line.program);
        cmd.args(&self.line.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .process_group(0);
        // Merged output shares one pipe, as `2>&1` does: two pipes read by two threads could
        // deliver the streams' lines out of order.
        let merged = if self.merge_stderr {
            let (reader, writer) = std::io::pipe().map_err(|source| ProcessError::Spawn {
                command: self.line.clone(),
                source,
            })?;
            let writer2 = writer.try_clone().map_err(|source| ProcessError::Spawn {
                command: self.line.clone(),
                source,
            })?;
            cmd.stdout(writer).stderr(writer2);
            Some(reader)
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        };
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Last, so an explicit `env` cannot bring one back.
        for var in SCRUBBED_GIT_VARS {
            cmd.env_remove(var);
        }
        group::die_with_parent(&mut cmd);

        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            command: self.line.clone(),
            source,
        })?;
        // Our copies of the write ends must go, or the reader never sees the end of the output.
        drop(cmd);
        let pgid = child.id() as i32;
        if let Some(f) = self.on_spawn {
            f(pgid);
        }
        if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), self.stdin) {
            // Dropping the pipe at the end is the EOF; EPIPE from a child that quit is fine.
            thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }

        let log = self
            .log
            .map(|(file, cap)| Arc::new(Mutex::new(Log::new(file, cap))));
        let last_output_ms = Arc::new(AtomicU64::new(0));
        let out_tail = Arc::new(Mutex::new(Tail::new(self.stdout_cap)));
        let err_tail = Arc::new(Mutex::new(Tail::new(self.stderr_cap)));
        let (done_tx, done_rx) = mpsc::channel();
        let pipe = |tail: &Arc<Mutex<Tail>>| Pipe {
            tail: tail.clone(),
            log: log.clone(),
            last_output_ms: last_output_ms.clone(),
            start,
            done: done_tx.clone(),
        };
        let mut readers = 0;
        if let Some(src) = child.stdout.take() {
            let p = pipe(&out_tail);
            thread::spawn(move || p.drain(src));
            readers += 1;
        }
        if let Some(src) = merged {
            let p = pipe(&out_tail);
            thread::spawn(move || p.drain(src));
            readers += 1;
        }
        if let Some(src) = child.stderr.take() {
            let p = pipe(&err_tail);
            thread::spawn(move || p.drain(src));
            readers += 1;
        }
        drop(done_tx);

        let limits = Limits {
            timeout: self.timeout,
            stall: self.stall_timeout,
            grace: self.kill_grace,
            cancel: self.cancel,
        };
        let watched = watch(&mut child, pgid, &limits, start, &last_output_ms);
        // The child's own exit does not end what it left running in its group.
        stop_group(pgid, self.kill_grace);
        let (status, stopped) = watched.map_err(|source| ProcessError::Wait {
            command: self.line.clone(),
            source,
        })?;
        let duration = start.elapsed();
        let drained = capture::wait_readers(
            &done_rx,
            readers,
            self.kill_grace.max(Duration::from_secs(1)),
        );
        if let (false, Some(log)) = (drained, &log) {
            lock(log).note("output pipes still open (a process left the group); stopped reading");
        }
        let take = |t: &Arc<Mutex<Tail>>| std::mem::replace(&mut *lock(t), Tail::new(0));
        Ok(Output {
            command: self.line,
            status,
            stopped,
            stdout: take(&out_tail).into_bytes(),
            stderr: take(&err_tail).into_bytes(),
            duration,
            pipes_left_open: !drained,
        })
    }

    /// [`Cmd::run`], and a [`ProcessError::Failed`] unless the child exited 0 by itself.
    pub fn run_checked(self) -> Result<Output, ProcessError> {
        self.run()?.check()
    }
}

/// How a child ended.
#[derive(Debug)]
pub struct Output {
    pub command: CommandLine,
    pub status: ExitStatus,
    /// Set when we stopped it (timeout, stall, cancel).
    pub stopped: Option<Stop>,
    /// The end of stdout (see [`Cmd::capture`]).
    pub stdout: Vec<u8>,
    /// The end of stderr.
    pub stderr: Vec<u8>,
    pub duration: Duration,
    /// A process that left the group kept a pipe open; reading stopped without EOF.
    pub pipes_left_open: bool,
}

impl Output {
    /// Exited 0 by itself.
    pub fn success(&self) -> bool {
        self.status.success() && self.stopped.is_none()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that ended it, when one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// What went wrong, or `None` on success.
    pub fn failure(&self) -> Option<Failure> {
        if self.success() {
            return None;
        }
        let stderr = self.stderr_text();
        Some(Failure {
            command: self.command.clone(),
            code: self.code(),
            signal: self.signal(),
            stopped: self.stopped,
            duration: self.duration,
            stderr_tail: tail_str(&stderr, FAILURE_STDERR_TAIL).to_string(),
        })
    }

    /// `Ok(self)` on success, else [`ProcessError::Failed`].
    pub fn check(self) -> Result<Output, ProcessError> {
        match self.failure() {
            None => Ok(self),
            Some(f) => Err(ProcessError::Failed(Box::new(f))),
        }
    }
}

struct Limits<'a> {
    timeout: Option<Duration>,
    stall: Option<Duration>,
    grace: Duration,
    cancel: Option<&'a AtomicBool>,
}

/// Poll the child until it exits; on timeout, stall or cancel, SIGTERM its group, then SIGKILL
/// after the grace period. On a failed wait the group is killed and the child reaped.
fn watch(
    child: &mut Child,
    pgid: i32,
    limits: &Limits,
    start: Instant,
    last_output_ms: &AtomicU64,
) -> std::io::Result<(ExitStatus, Option<Stop>)> {
    let mut stop: Option<(Stop, Instant)> = None;
    let mut killed = false;
    // Short commands (git, a login check) end in milliseconds: look often at first.
    let mut poll = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok((status, stop.map(|(r, _)| r))),
            Ok(None) => {}
            Err(e) => {
                signal_group(pgid, libc::SIGKILL);
                let _ = child.wait();
                return Err(e);
            }
        }
        let now = Instant::now();
        match stop {
            None => {
                let elapsed = now.duration_since(start);
                let quiet = elapsed.saturating_sub(Duration::from_millis(
                    last_output_ms.load(Ordering::Relaxed),
                ));
                let reason = if limits.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    Some(Stop::Cancel)
                } else if limits.timeout.is_some_and(|t| elapsed >= t) {
                    Some(Stop::Timeout)
                } else if limits.stall.is_some_and(|s| quiet >= s) {
                    Some(Stop::Stall)
                } else {
                    None
                };
                if let Some(r) = reason {
                    signal_group(pgid, libc::SIGTERM);
                    stop = Some((r, now));
                }
            }
            Some((_, since)) if !killed && now.duration_since(since) >= limits.grace => {
                signal_group(pgid, libc::SIGKILL);
                killed = true;
            }
            Some(_) => {}
        }
        thread::sleep(poll);
        poll = (poll * 2).min(MAX_POLL);
    }
}

#[cfg(test)]
mod tests;
