//! Orphaned sessions (README, "Orphaned sessions"): find the sessions in the manifest whose process
//! is gone, keep every piece of their work on rescue refs, then remove their worktrees, branches
//! and manifest entry — and nothing else, whatever the manifest says.
//!
//! The manifest is input from disk that other tools (and people) write, so it is never trusted
//! as a list of things to delete. A worktree is removed only when its path, after resolving `..`
//! and symlinks, lies inside the worktrees folder *and* git knows it as a linked worktree of this
//! repository; a branch is deleted only when its name follows the session's own naming
//! (`worktree/teleos-<sid>-<n>`, `integration-<sid>`), is not checked out anywhere, and its
//! commits are kept elsewhere. Session ids that are not ours (6 lowercase hex) are left alone.
//!
//! Order for each dead session: take its session lock (so it cannot come back to life while we
//! work), stop leftover agent process groups, save uncommitted work and unmerged commits under
//! `refs/teleos/rescue/<sid>/…`, remove worktrees, delete branches, drop the manifest entry,
//! release and remove the lock. Anything that fails is reported and the entry is kept, so a later
//! run tries again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::batch::names::integration_branch;
use crate::error::Result;
use crate::git::{self, Repository};
use crate::manifest::schema::STATUS_INTERRUPTED;
use crate::manifest::{
    is_valid_sid, session_liveness, Liveness, ManifestFile, Session, SessionLock,
};

pub use crate::batch::names::RESCUE_PREFIX;

mod cleaner;
use cleaner::Cleaner;

/// What to clean and how.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// The work tree root the worktrees folder is relative to.
    pub root: PathBuf,
    /// The worktrees folder holding the manifest (`<root>/.claude/worktrees`).
    pub worktrees_dir: PathBuf,
    /// Age after which another tool's session with a dead pid, or an interrupted session of
    /// ours, counts as orphaned.
    pub stale_hours: f64,
    /// Plan only: change nothing.
    pub dry_run: bool,
    /// A session never to touch (the one `close --resume` is about to continue).
    pub keep_session: Option<String>,
    /// Unix seconds "now" (for ages).
    pub now: i64,
    /// Hours after which a worktree parked for reuse is dropped (`teleos.poolIdleHours`); 0:
    /// never by age.
    pub pool_idle_hours: f64,
}

impl CleanOptions {
    /// The folder and threshold from the settings; not a dry run, nothing kept, now.
    pub fn new(root: &Path, settings: &crate::settings::Settings) -> CleanOptions {
        CleanOptions {
            root: root.to_path_buf(),
            worktrees_dir: root.join(&settings.worktree_dir),
            stale_hours: settings.stale_hours,
            dry_run: false,
            keep_session: None,
            now: crate::manifest::now_unix(),
            pool_idle_hours: settings.pool_idle_hours,
        }
    }
}

/// The outcome of one clean-up run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanReport {
    pub manifest: PathBuf,
    pub dry_run: bool,
    /// Every session in the manifest, with what happened to it.
    pub sessions: Vec<SessionCleanup>,
    /// Worktree admin folders (`<git dir>/worktrees/<id>`) whose checkout was gone.
    pub pruned_worktrees: Vec<String>,
    /// Folders of worktrees whose deletion a crash cut short (proven clean before it began).
    pub removed_trash: Vec<String>,
    /// Worktrees parked for reuse that were idle too long and were (or would be) dropped.
    pub dropped_idle: Vec<crate::batch::pool::Dropped>,
    /// Problems outside any one session (e.g. pruning failed).
    pub errors: Vec<String>,
}

impl CleanReport {
    /// Whether any session could not be cleaned completely.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.sessions.iter().any(|s| !s.errors.is_empty())
    }

    /// Sessions that were (or, in a dry run, would be) cleaned.
    pub fn cleaned(&self) -> impl Iterator<Item = &SessionCleanup> {
        self.sessions.iter().filter(|s| s.action != Action::Skipped)
    }
}

/// What was done with a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Alive, interrupted and recent, not ours, or excluded: nothing touched.
    Skipped,
    /// Dry run: this is what would be done.
    Planned,
    /// Cleaned and removed from the manifest.
    Cleaned,
    /// Cleaned as far as possible; the entry is kept so a later run tries again.
    Incomplete,
}

/// One session's clean-up.
#[derive(Debug, Clone, Serialize)]
pub struct SessionCleanup {
    pub session_id: String,
    pub action: Action,
    /// Why it is (not) an orphan.
    pub reason: String,
    /// Refs that keep its work (in a dry run: what would be kept, `ref` not yet created).
    pub rescued: Vec<Rescued>,
    pub removed_worktrees: Vec<PathBuf>,
    pub deleted_branches: Vec<String>,
    /// Agent process groups that were still running and were stopped.
    pub stopped_process_groups: Vec<i32>,
    /// Things the manifest named that the guards refused to touch.
    pub refused: Vec<String>,
    pub errors: Vec<String>,
}

/// Work kept on a ref.
#[derive(Debug, Clone, Serialize)]
pub struct Rescued {
    /// The full ref name (`refs/teleos/rescue/<sid>/…`).
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// The commit it points at; `None` in a dry run for uncommitted work not yet saved.
    pub commit: Option<String>,
    /// What it holds, for people: "3 commits of branch …", "uncommitted changes of …".
    pub what: String,
}

impl SessionCleanup {
    fn new(sid: &str, action: Action, reason: impl Into<String>) -> SessionCleanup {
        SessionCleanup {
            session_id: sid.to_string(),
            action,
            reason: reason.into(),
            rescued: Vec::new(),
            removed_worktrees: Vec::new(),
            deleted_branches: Vec::new(),
            stopped_process_groups: Vec::new(),
            refused: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// Why a session is left alone (not an orphan).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NotOrphan {
    #[error("in use by this run")]
    InUse,
    #[error("not a session id of git-teleos (6 lowercase hex characters); left alone")]
    NotASessionId,
    #[error("alive ({0})")]
    Alive(&'static str),
    #[error(
        "interrupted, kept for `git teleos close --resume {sid}` (cleaned after {stale_hours} h)"
    )]
    Interrupted { sid: String, stale_hours: f64 },
}

/// Why a session is or is not an orphan: `Ok(reason)` when it is one.
pub fn orphan_verdict(
    opts: &CleanOptions,
    sid: &str,
    session: &Session,
) -> std::result::Result<String, NotOrphan> {
    if opts.keep_session.as_deref() == Some(sid) {
        return Err(NotOrphan::InUse);
    }
    if !is_valid_sid(sid) {
        return Err(NotOrphan::NotASessionId);
    }
    let verdict = session_liveness(
        &opts.worktrees_dir,
        sid,
        session,
        opts.stale_hours,
        opts.now,
    );
    let reason = match verdict {
        Liveness::Alive(why) => return Err(NotOrphan::Alive(why)),
        Liveness::Dead(why) => why,
    };
    if session.status.as_deref() == Some(STATUS_INTERRUPTED) {
        let age_hours = session
            .started_at_unix()
            .map(|t| (opts.now - t) as f64 / 3600.0);
        if age_hours.is_none_or(|h| opts.stale_hours > 0.0 && h <= opts.stale_hours) {
            return Err(NotOrphan::Interrupted {
                sid: sid.to_string(),
                stale_hours: opts.stale_hours,
            });
        }
    }
    Ok(reason)
}

/// Clean every orphaned session of the manifest in `opts.worktrees_dir`, then prune worktree
/// admin folders (inside that folder) whose checkout is gone. A manifest that cannot be read is
/// an error and is left as it was; no manifest is nothing to do.
pub fn clean_orphans(repo: &Repository, opts: &CleanOptions) -> Result<CleanReport> {
    let manifest = ManifestFile::new(&opts.worktrees_dir);
    let mut report = CleanReport {
        manifest: manifest.path().to_path_buf(),
        dry_run: opts.dry_run,
        ..CleanReport::default()
    };
    let mut sessions = match manifest.read()? {
        Some(m) => m.sessions,
        None => Default::default(),
    };
    // Worktrees of ours that no session claims (a session that died before recording them,
    // or whose entry was lost) are cleaned as the sessions their names say they belong to,
    // with the same guards and the same rescue before anything is removed.
    let mut unclaimed = BTreeSet::new();
    for (sid, session) in unclaimed_sessions(repo, opts, &sessions)? {
        unclaimed.insert(sid.clone());
        sessions.insert(sid, session);
    }
    for (sid, session) in &sessions {
        // Paths other sessions claim: a tampered entry must not take a live session's worktree.
        let others: Vec<PathBuf> = sessions
            .iter()
            .filter(|(other, _)| *other != sid)
            .flat_map(|(_, s)| s.worktrees.iter().filter_map(|w| w.path.as_deref()))
            .map(|p| opts.root.join(p))
            .collect();
        let reason = match orphan_verdict(opts, sid, session) {
            Ok(reason) => reason,
            Err(why) => {
                report
                    .sessions
                    .push(SessionCleanup::new(sid, Action::Skipped, why.to_string()));
                continue;
            }
        };
        let outcome = if opts.dry_run {
            let mut out = SessionCleanup::new(sid, Action::Planned, reason);
            if let Some(cleaner) = Cleaner::new(repo, opts, sid, session, &others, &mut out) {
                cleaner.plan(&mut out);
            }
            out
        } else {
            clean_session(repo, opts, &manifest, (sid, session), &others, reason)
        };
        let mut outcome = outcome;
        if unclaimed.contains(sid) {
            outcome.reason = format!(
                "not in the manifest: its worktrees are claimed by no session ({})",
                outcome.reason
            );
        }
        report.sessions.push(outcome);
    }
    if opts.pool_idle_hours > 0.0 {
        let age = (opts.pool_idle_hours * 3600.0) as i64;
        let dropped = crate::batch::pool::drop_idle(
            repo,
            &manifest,
            &opts.worktrees_dir,
            opts.dry_run,
            Some(age),
            opts.now,
        );
        match dropped {
            Ok((dropped, errors)) => {
                report.dropped_idle = dropped;
                report.errors.extend(errors);
            }
            Err(e) => report
                .errors
                .push(format!("could not drop idle worktrees: {e}")),
        }
    }
    prune_inside(repo, opts, &mut report);
    Ok(report)
}

/// Sessions made up from git-teleos worktrees (`<dir>/teleos-<sid>-<n>`, known to git) that no
/// session in the manifest lists. Their liveness is judged by their session lock (and by the pid
/// their worktree lock names), never by age: such a session has no start time.
fn unclaimed_sessions(
    repo: &Repository,
    opts: &CleanOptions,
    sessions: &std::collections::BTreeMap<String, Session>,
) -> Result<Vec<(String, Session)>> {
    let claimed: Vec<PathBuf> = sessions
        .values()
        .flat_map(|s| s.worktrees.iter().filter_map(|w| w.path.as_deref()))
        .map(|p| opts.root.join(p))
        .collect();
    let mut found: std::collections::BTreeMap<String, Session> = Default::default();
    for w in git::list_worktrees(repo)? {
        if w.path.parent() != Some(opts.worktrees_dir.as_path())
            && !w
                .path
                .parent()
                .is_some_and(|p| git::worktree_path_eq(p, &opts.worktrees_dir))
        {
            continue;
        }
        let Some(name) = w.path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((sid, n)) = name
            .strip_prefix("teleos-")
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        if !is_valid_sid(sid) || n.parse::<usize>().is_err() || sessions.contains_key(sid) {
            continue;
        }
        if claimed.iter().any(|c| git::worktree_path_eq(c, &w.path)) {
            continue;
        }
        // A worktree lock naming a running process of this host: leave it to that process.
        let lock_pid = w
            .locked
            .as_deref()
            .and_then(|r| r.split_once("(pid ")?.1.split_once(')'))
            .and_then(|(pid, _)| pid.trim().parse::<i32>().ok());
        if lock_pid.is_some_and(crate::manifest::pid_alive) {
            continue;
        }
        let session = found.entry(sid.to_string()).or_insert_with(|| Session {
            integration_branch: Some(integration_branch(sid)),
            tool: Some(crate::manifest::schema::TOOL.to_string()),
            ..Session::default()
        });
        session.worktrees.push(crate::manifest::WorktreeEntry {
            path: Some(w.path.to_string_lossy().into_owned()),
            branch: w
                .branch
                .as_deref()
                .map(|b| b.trim_start_matches("refs/heads/").to_string()),
            ..Default::default()
        });
    }
    Ok(found.into_iter().collect())
}

/// Clean one dead session for real, holding its lock throughout.
fn clean_session(
    repo: &Repository,
    opts: &CleanOptions,
    manifest: &ManifestFile,
    (sid, session): (&str, &Session),
    others: &[PathBuf],
    reason: String,
) -> SessionCleanup {
    // The lock is the proof it stays dead: a `--resume` of it cannot start while we hold it.
    let lock = match SessionLock::acquire(&opts.worktrees_dir, sid) {
        Ok(lock) => lock,
        Err(e) => {
            return SessionCleanup::new(sid, Action::Skipped, format!("came back to life: {e}"))
        }
    };
    let mut out = SessionCleanup::new(sid, Action::Cleaned, reason);
    if let Some(cleaner) = Cleaner::new(repo, opts, sid, session, others, &mut out) {
        cleaner.run(&mut out);
    }
    if out.errors.is_empty() {
        let removed = manifest.update(|m| {
            m.sessions.remove(sid);
            Ok(())
        });
        if let Err(e) = removed {
            out.errors.push(format!(
                "could not remove the session from the manifest: {e}"
            ));
        }
    }
    if !out.errors.is_empty() {
        out.action = Action::Incomplete;
        drop(lock);
    } else if let Err(e) = lock.release_and_remove() {
        out.errors.push(e.to_string());
    }
    out
}

/// Remove admin folders of linked worktrees inside the worktrees folder whose checkout is gone
/// and which are not locked (what `git worktree prune` would do, limited to our folder).
fn prune_inside(repo: &Repository, opts: &CleanOptions, report: &mut CleanReport) {
    let list = match git::list_worktrees(repo) {
        Ok(list) => list,
        Err(e) => {
            report.errors.push(e.to_string());
            return;
        }
    };
    for w in list {
        if !w.prunable || !git::is_inside(&w.path, &opts.worktrees_dir) {
            continue;
        }
        if !opts.dry_run {
            if let Err(e) = git::remove_worktree_rescued(repo, &w.path, None) {
                report.errors.push(e.to_string());
                continue;
            }
        }
        report.pruned_worktrees.push(w.id);
    }
    // What a crash left of worktrees being deleted: proven clean before they were moved aside.
    let trash = std::fs::read_dir(&opts.worktrees_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(git::TRASH_PREFIX)
        });
    for e in trash {
        let name = e.file_name().to_string_lossy().into_owned();
        if !opts.dry_run {
            if let Err(e) = git::remove_trash(&e.path()) {
                report.errors.push(e.to_string());
                continue;
            }
        }
        report.removed_trash.push(name);
    }
}

/// Stop the agent process groups a dead session of ours recorded, best effort: SIGTERM, a
/// moment's grace, then SIGKILL. A group is signalled only when one of its processes still works
/// inside the worktrees folder, so a recycled group id of some unrelated program is left alone.
fn stop_agents(session: &Session, worktrees_dir: &Path) -> Vec<i32> {
    // SAFETY: getpgrp takes nothing and cannot fail.
    let own = unsafe { libc::getpgrp() };
    let here = session
        .host
        .as_deref()
        .is_none_or(|h| h == crate::manifest::hostname());
    if !session.is_ours() || !here {
        return Vec::new();
    }
    let groups: Vec<i32> = session
        .agent_pgids
        .iter()
        .copied()
        .filter(|&g| g > 1 && g != own && group_works_in(g, worktrees_dir))
        .collect();
    crate::process::stop_groups(&groups, std::time::Duration::from_secs(3));
    groups
}

/// Whether a process of group `g` has its working directory inside `dir` (Linux `/proc`).
fn group_works_in(g: i32, dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let pid = e.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // Fields after the command name (which may hold spaces): state ppid pgrp …
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return false;
        };
        let pgrp: Option<i32> = rest.split_whitespace().nth(2).and_then(|f| f.parse().ok());
        pgrp == Some(g)
            && std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| git::is_inside(&cwd, dir))
    })
}
