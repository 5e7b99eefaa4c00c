//! Is a session in the manifest still running? Our sessions answer with their lock; other
//! tools' sessions with the seed's rule (pid gone and older than the stale threshold).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::lock::{is_valid_sid, session_lock_path};
use super::schema::Session;

/// The verdict, with the reason for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive(&'static str),
    Dead(String),
}

impl Liveness {
    pub fn is_alive(&self) -> bool {
        matches!(self, Liveness::Alive(_))
    }
}

/// Judges session `sid` of the worktrees folder `dir`.
///
/// - If our lock file `<dir>/.teleos-<sid>.lock` exists, the lock decides: held → alive, free →
///   dead. The lock is tried on a fresh open, so a lock held by this very process through another
///   open file (flock locks belong to open file descriptions) also counts as held.
/// - Otherwise (another tool's session, or one of ours whose lock file was deleted): a running
///   pid on this host → alive; a start time older than `stale_hours` → dead; anything we cannot
///   judge → alive ("too recent" — the safe side), except a session with neither pid nor start
///   time, which nothing could ever prove alive.
///
/// A pid recorded on another host is not checked (it names some other machine's process): only
/// the age counts then.
pub fn session_liveness(
    dir: &Path,
    sid: &str,
    session: &Session,
    stale_hours: f64,
    now_unix: i64,
) -> Liveness {
    // An id that is not ours has no lock of ours, and must not become part of a path.
    if is_valid_sid(sid) {
        if let Some(verdict) = lock_verdict(&session_lock_path(dir, sid)) {
            return verdict;
        }
    }

    let pid_state = match session.pid {
        _ if session.pid_unreadable() => return Liveness::Alive("pid unreadable"),
        None => None,
        Some(pid) => {
            let here = session
                .host
                .as_deref()
                .is_none_or(|h| h == super::hostname());
            if here && pid_alive(pid) {
                return Liveness::Alive("pid running");
            }
            Some((pid, here))
        }
    };
    if session.started_at_unreadable() {
        return Liveness::Alive("start time unreadable");
    }
    let Some(started) = session.started_at_unix() else {
        return match pid_state {
            None => Liveness::Dead("no pid or start time".into()),
            Some(_) => Liveness::Alive("too recent to judge"),
        };
    };
    let age_hours = (now_unix - started) as f64 / 3600.0;
    // A grace period of 0 is none at all: a dead pid is dead even in its first second.
    if stale_hours > 0.0 && age_hours <= stale_hours {
        return Liveness::Alive("too recent to judge");
    }
    Liveness::Dead(match pid_state {
        None => format!("no pid, started {age_hours:.1} h ago"),
        Some((pid, true)) => format!("pid {pid} not running, started {age_hours:.1} h ago"),
        Some((pid, false)) => {
            format!("pid {pid} is on another host, started {age_hours:.1} h ago")
        }
    })
}

/// `Some` verdict when the lock file exists and can be tried, `None` to fall back.
fn lock_verdict(path: &Path) -> Option<Liveness> {
    // Read-only is enough for flock; no create: a missing file means "not one of ours".
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    match file.try_lock() {
        // Closing `file` releases it at once: we only wanted to know.
        Ok(()) => Some(Liveness::Dead("session lock free".into())),
        Err(std::fs::TryLockError::WouldBlock) => Some(Liveness::Alive("session lock held")),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// One reading of `kill(pid, 0)` for the whole program: `EPERM` counts as alive (see there).
pub use crate::process::pid_alive;
