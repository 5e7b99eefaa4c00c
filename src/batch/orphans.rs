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

use crate::batch::names::{integration_branch, worktree_branch};
use crate::error::Result;
use crate::git::{self, ObjectId, Repository};
use crate::manifest::schema::STATUS_INTERRUPTED;
use crate::manifest::{
    is_valid_sid, session_liveness, Liveness, ManifestFile, Session, SessionLock,
};
use crate::settings::defaults::MAX_WORKTREES_LIMIT;

pub use crate::batch::names::RESCUE_PREFIX;

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

/// A worktree of the session that passed the guards.
struct Target {
    path: PathBuf,
    /// The admin folder name, which names the snapshot ref.
    name: String,
    /// The checked-out commit, if readable.
    head: Option<ObjectId>,
    /// Full name of the checked-out branch.
    branch: Option<String>,
}

/// The plan for one session, already filtered by the guards.
struct Cleaner<'a> {
    repo: &'a Repository,
    opts: &'a CleanOptions,
    sid: &'a str,
    session: &'a Session,
    worktrees: Vec<Target>,
    /// Existing branches of the session (short names), worktree branches first, integration last.
    branches: Vec<(String, ObjectId)>,
    /// Every local branch, for "is this commit kept elsewhere?".
    all_branches: Vec<(String, ObjectId)>,
}

impl<'a> Cleaner<'a> {
    /// Applies the guards; what they refuse is recorded in `out.refused`.
    fn new(
        repo: &'a Repository,
        opts: &'a CleanOptions,
        sid: &'a str,
        session: &'a Session,
        others: &[PathBuf],
        out: &mut SessionCleanup,
    ) -> Option<Cleaner<'a>> {
        let read = git::list_worktrees(repo).and_then(|w| Ok((w, git::local_branches(repo)?)));
        let (known, all_branches) = match read {
            Ok(both) => both,
            Err(e) => {
                out.errors.push(e.to_string());
                return None;
            }
        };
        let current = git::current_branch(repo).ok().flatten();
        let protected = |short: &str| {
            current.as_deref() == Some(format!("refs/heads/{short}").as_str())
                || matches!(short, "main" | "master")
        };

        let mut worktrees = Vec::new();
        for entry in &session.worktrees {
            let Some(raw) = entry.path.as_deref() else {
                continue;
            };
            let path = opts.root.join(raw);
            if !git::is_inside(&path, &opts.worktrees_dir) {
                out.refused.push(format!(
                    "worktree {raw}: not inside {}",
                    opts.worktrees_dir.display()
                ));
                continue;
            }
            if others.iter().any(|o| git::worktree_path_eq(o, &path)) {
                out.refused
                    .push(format!("worktree {raw}: another session claims it too"));
                continue;
            }
            let in_use_by_other = |reason: &str| {
                reason.starts_with("git-teleos session ")
                    && !reason.starts_with(&format!("git-teleos session {sid} "))
            };
            match known.iter().find(|w| git::worktree_path_eq(&w.path, &path)) {
                Some(w) if w.locked.as_deref().is_some_and(in_use_by_other) => {
                    out.refused.push(format!(
                        "worktree {raw}: locked by another session ({})",
                        w.locked.as_deref().unwrap_or_default()
                    ));
                }
                Some(w) => worktrees.push(Target {
                    path: w.path.clone(),
                    name: w.id.clone(),
                    head: w.head,
                    branch: w.branch.clone(),
                }),
                // Deleted by hand (with its admin folder): nothing left to remove.
                None if path.symlink_metadata().is_err() => {}
                None => out.refused.push(format!(
                    "worktree {raw}: not a linked worktree of this repository"
                )),
            }
        }

        // The session's own branch names; anything else the manifest names is refused.
        let mut names: Vec<String> = (1..=MAX_WORKTREES_LIMIT)
            .map(|n| worktree_branch(sid, n))
            .collect();
        names.push(integration_branch(sid));
        let mentioned = session
            .worktrees
            .iter()
            .filter_map(|w| w.branch.as_deref())
            .chain(session.integration_branch.as_deref());
        for name in mentioned {
            let short = name.strip_prefix("refs/heads/").unwrap_or(name);
            if !names.iter().any(|n| n == short) {
                out.refused.push(format!(
                    "branch {name}: not named like session {sid}'s branches; left alone"
                ));
            }
        }
        let mut branches = Vec::new();
        for name in names {
            let Some(tip) = all_branches.iter().find(|(b, _)| *b == name).map(|b| b.1) else {
                continue;
            };
            if protected(&name) {
                out.refused
                    .push(format!("branch {name}: checked out here; left alone"));
            } else {
                branches.push((name, tip));
            }
        }
        Some(Cleaner {
            repo,
            opts,
            sid,
            session,
            worktrees,
            branches,
            all_branches,
        })
    }

    fn rescue_name(&self, kind: &str, name: &str) -> String {
        crate::batch::names::orphan_rescue_ref(self.sid, kind, name)
    }

    /// Tips to keep (name, commit, description), integration first so worktree branches
    /// merged into it need no ref of their own; then any worktree HEAD not on those branches.
    fn candidate_tips(&self) -> Vec<(String, ObjectId, String)> {
        let mut out: Vec<(String, ObjectId, String)> = Vec::new();
        for (name, tip) in self.branches.iter().rev() {
            out.push((
                self.rescue_name("branches", name),
                *tip,
                format!("branch {name}"),
            ));
        }
        for w in &self.worktrees {
            let on_session_branch = w.branch.as_deref().is_some_and(|b| {
                self.branches
                    .iter()
                    .any(|(n, _)| b == format!("refs/heads/{n}"))
            });
            if let (Some(head), false) = (w.head, on_session_branch) {
                out.push((
                    self.rescue_name("head", &w.name),
                    head,
                    format!("HEAD of worktree {}", w.path.display()),
                ));
            }
        }
        out
    }

    /// Branches that stay after the clean-up: the commits they hold are safe.
    fn kept_tips(&self) -> Vec<ObjectId> {
        self.all_branches
            .iter()
            .filter(|(b, _)| !self.branches.iter().any(|(n, _)| n == b))
            .map(|(_, id)| *id)
            .collect()
    }

    /// Dry run: what would be rescued and removed.
    fn plan(&self, out: &mut SessionCleanup) {
        let mut hidden = self.kept_tips();
        for (ref_name, tip, what) in self.candidate_tips() {
            match git::count_unreachable_from(self.repo, tip, &hidden) {
                Ok(0) => {}
                Ok(n) => {
                    out.rescued.push(Rescued {
                        ref_name,
                        commit: Some(tip.to_string()),
                        what: format!("{n} commit(s) of {what}"),
                    });
                    hidden.push(tip);
                }
                Err(e) => out.errors.push(e.to_string()),
            }
        }
        for w in &self.worktrees {
            if let Ok(wt) = gix::open(&w.path) {
                if let Ok(dirty) = git::dirty_paths(&wt) {
                    if !dirty.is_empty() {
                        out.rescued.push(Rescued {
                            ref_name: self.rescue_name("uncommitted", &w.name),
                            commit: None,
                            what: format!(
                                "uncommitted changes of {} ({})",
                                w.path.display(),
                                dirty.join(", ")
                            ),
                        });
                    }
                }
            }
            out.removed_worktrees.push(w.path.clone());
        }
        out.deleted_branches = self.branches.iter().map(|(n, _)| n.clone()).collect();
        out.stopped_process_groups = self.session.agent_pgids.clone();
    }

    /// The real thing. Every step that fails is recorded; later steps that depend on it skip.
    fn run(self, out: &mut SessionCleanup) {
        out.stopped_process_groups = stop_agents(self.session, &self.opts.worktrees_dir);

        // 1. Uncommitted work, saved without touching the worktree's files.
        let mut snapshots: Vec<Option<ObjectId>> = Vec::new();
        let mut unsafe_worktrees = BTreeSet::new();
        for (i, w) in self.worktrees.iter().enumerate() {
            let mut snap = None;
            if w.path.exists() {
                let saved = gix::open(&w.path).map_err(git::gix_err).and_then(|wt| {
                    git::snapshot_uncommitted(
                        &wt,
                        &format!("teleos: uncommitted work of session {}", self.sid),
                    )
                });
                match saved {
                    Ok(Some(id)) => {
                        let name = self.rescue_name("uncommitted", &w.name);
                        match git::create_ref_unique(self.repo, &name, id) {
                            Ok(name) => {
                                out.rescued.push(Rescued {
                                    ref_name: name,
                                    commit: Some(id.to_string()),
                                    what: format!("uncommitted changes of {}", w.path.display()),
                                });
                                snap = Some(id);
                            }
                            Err(e) => {
                                out.errors.push(e.to_string());
                                unsafe_worktrees.insert(i);
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        out.errors.push(format!(
                            "could not save the uncommitted changes of {}: {e}",
                            w.path.display()
                        ));
                        unsafe_worktrees.insert(i);
                    }
                }
            }
            snapshots.push(snap);
        }

        // 2. Commits found on no branch that stays.
        let mut hidden = self.kept_tips();
        let mut branches_safe = true;
        for (ref_name, tip, what) in self.candidate_tips() {
            let kept = git::count_unreachable_from(self.repo, tip, &hidden).and_then(|n| {
                if n == 0 {
                    return Ok(());
                }
                let name = git::create_ref_unique(self.repo, &ref_name, tip)?;
                out.rescued.push(Rescued {
                    ref_name: name,
                    commit: Some(tip.to_string()),
                    what: format!("{n} commit(s) of {what}"),
                });
                hidden.push(tip);
                Ok(())
            });
            if let Err(e) = kept {
                out.errors.push(format!("could not keep {what}: {e}"));
                branches_safe = false;
            }
        }
        if !branches_safe {
            // Without the rescue refs, removing anything could lose commits.
            return;
        }

        // 3. Worktrees (their admin folders too), locks overridden: the session is dead.
        for (i, w) in self.worktrees.iter().enumerate() {
            if unsafe_worktrees.contains(&i) {
                continue;
            }
            match git::remove_worktree_rescued(self.repo, &w.path, snapshots[i]) {
                Ok(()) => out.removed_worktrees.push(w.path.clone()),
                Err(e) => out.errors.push(e.to_string()),
            }
        }

        // 4. Branches: the guard re-checks the naming, checkouts and that commits are kept.
        let ours: BTreeSet<String> = self.branches.iter().map(|(n, _)| n.clone()).collect();
        for (name, _) in &self.branches {
            match git::delete_branch_guarded(self.repo, name, |b| ours.contains(b)) {
                Ok(()) => out.deleted_branches.push(name.clone()),
                Err(e) => out.errors.push(e.to_string()),
            }
        }
    }
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
