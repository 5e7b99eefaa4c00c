//! The session manifest `.claude/worktrees/manifest.json`: schema, exclusive lock, atomic write,
//! and the per-session lock that tells live sessions from orphans.
//!
//! - [`schema`]: the seed-compatible JSON, lenient to read, faithful to write back.
//! - [`ManifestFile`]: lock-free reads; every change is a read-modify-write under
//!   `manifest.lock`, written to a temporary file and renamed into place.
//! - [`SessionLock`] and [`session_liveness`]: a session is alive while its lock is held.

mod claims;
mod file;
mod liveness;
mod lock;
pub mod schema;

pub use claims::{claim_story, Claim};
pub use file::{ManifestFile, LOCK_FILE, MANIFEST_FILE};
pub use liveness::{pid_alive, session_liveness, Liveness};
pub use lock::{is_valid_sid, session_lock_path, SessionLock};
pub use schema::{format_time, parse_pid, parse_time, Manifest, Session, WorktreeEntry};

/// Default age after which another tool's session with a dead pid is an orphan (the seed's 4 h).
pub const DEFAULT_STALE_HOURS: f64 = 4.0;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub use crate::time::now_unix;

/// This machine's host name, recorded with a pid because a pid means something only here.
/// Empty if it cannot be read.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname may not NUL-terminate a truncated
    // name, which is why the length is taken up to the first NUL or the buffer's end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}
