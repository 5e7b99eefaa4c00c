//! Story claims: before its agent starts, a story is claimed in the manifest, under the
//! manifest's lock, so that two sessions started together never run the same story twice.
//!
//! A claim lasts as long as the session is in the manifest and alive (its lock is held): a
//! session that finishes removes itself and its claims, a crashed one is judged dead by its
//! lock. Another tool's session holds a story when one of its worktrees names it.

use std::path::Path;

use super::file::ManifestFile;
use super::liveness::session_liveness;
use super::schema::Session;
use crate::error::Result;

/// What claiming a story found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The story is ours now.
    Ours,
    /// A live session has it (its id and pid, for the report).
    Taken { session: String, pid: Option<i32> },
    /// No live session has it, but `still_open` said it need not run (the reason).
    Closed(String),
}

impl Claim {
    /// The reason a story was skipped, for the report; `None` when it is ours.
    pub fn skip_reason(&self) -> Option<String> {
        match self {
            Claim::Ours => None,
            Claim::Taken { session, pid } => Some(format!(
                "session {session}{} is closing it; not run twice",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            )),
            Claim::Closed(why) => Some(why.clone()),
        }
    }
}

/// Claim `key` for session `sid` (which must be in the manifest). Under the manifest lock: a
/// live other session that claimed it (or whose worktree works on it) keeps it; otherwise
/// `still_open` is asked (is the story still to be done, e.g. not closed on the branch by a
/// session that has finished meanwhile) and, when it returns no reason, the claim is recorded.
pub fn claim_story(
    manifest: &ManifestFile,
    dir: &Path,
    sid: &str,
    key: &str,
    stale_hours: f64,
    still_open: impl FnOnce() -> Option<String>,
) -> Result<Claim> {
    let now = super::now_unix();
    // A claim holds only while its session is alive: not synced (see `update_live`).
    manifest.update_live(|m| {
        let holder = m.sessions.iter().find(|(other, s)| {
            other.as_str() != sid
                && holds(s, key)
                && session_liveness(dir, other, s, stale_hours, now).is_alive()
        });
        if let Some((other, s)) = holder {
            return Ok(Claim::Taken {
                session: other.clone(),
                pid: s.pid,
            });
        }
        if let Some(why) = still_open() {
            return Ok(Claim::Closed(why));
        }
        if let Some(ours) = m.sessions.get_mut(sid) {
            if !ours.claimed_stories.iter().any(|k| k == key) {
                ours.claimed_stories.push(key.to_string());
            }
        }
        Ok(Claim::Ours)
    })
}

fn holds(session: &Session, key: &str) -> bool {
    session.claimed_stories.iter().any(|k| k == key)
        || session
            .worktrees
            .iter()
            .any(|w| w.story.as_deref() == Some(key))
}
