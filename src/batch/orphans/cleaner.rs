//! Cleaning one orphaned session: the guards that decide which of its worktrees and branches
//! may go, rescuing their work onto refs, then removing them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{stop_agents, CleanOptions, Rescued, SessionCleanup};
use crate::batch::names::{integration_branch, worktree_branch};
use crate::git::{self, ObjectId, Repository};
use crate::manifest::Session;
use crate::settings::defaults::MAX_WORKTREES_LIMIT;

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
pub(super) struct Cleaner<'a> {
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
    pub(super) fn new(
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
    pub(super) fn plan(&self, out: &mut SessionCleanup) {
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
    pub(super) fn run(self, out: &mut SessionCleanup) {
        out.stopped_process_groups = stop_agents(self.session, &self.opts.worktrees_dir);

        // 1. Uncommitted work, saved without touching the worktree's files.
        let mut snapshots: Vec<Option<ObjectId>> = Vec::new();
        let mut unsafe_worktrees = BTreeSet::new();
        let mut gone = BTreeSet::new();
        for (i, w) in self.worktrees.iter().enumerate() {
            let mut snap = None;
            // Cut short while being registered: only its `.git` file, nothing to save.
            match git::remove_if_registration_cut_short(&w.path) {
                Ok(true) => {
                    out.removed_worktrees.push(w.path.clone());
                    gone.insert(i);
                }
                Ok(false) => {}
                Err(e) => {
                    out.errors.push(e.to_string());
                    unsafe_worktrees.insert(i);
                }
            }
            if w.path.exists() && !unsafe_worktrees.contains(&i) {
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
            if unsafe_worktrees.contains(&i) || gone.contains(&i) {
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
