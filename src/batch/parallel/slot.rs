//! The worktree slot: one thread's worktree, and running a story in it from start to merge
//! (prepare the worktree, run the story, gate and merge it into the integration branch under the
//! merge lock, resolve a conflict, replace a worktree left in a bad state).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use super::landing::restore_integration;
use super::{lock, ParallelEnv, Slot};
use crate::batch::claims::Claimer;
use crate::batch::gate::{self, MergeRecord};
use crate::batch::names::rescue_ref;
use crate::batch::pool;
use crate::batch::results::{Outcome, StoryResult};
use crate::batch::setup::{self, SetupPlan};
use crate::batch::timing::{self, Attempt, Phase};
use crate::batch::worker::{close_story, StoryEnv, UNCOMMITTED};
use crate::error::{Error, Result};
use crate::git::{self, MergeOutcome, ObjectId};
use crate::manifest::ManifestFile;
use crate::stories::tracker::{self, TrackerMode};
use crate::stories::Story;

/// A worktree slot: runs one story after another in its own worktree (one story's run is
/// `batch/worker.rs`).
pub(super) struct SlotRunner<'a, 'e> {
    pub(super) env: &'a ParallelEnv<'e>,
    /// The batch's story settings, plus recording each agent's process group in the manifest.
    pub(super) story: &'a StoryEnv<'a>,
    pub(super) repo: &'a gix::Repository,
    pub(super) slot: &'a Slot,
    pub(super) integration_ref: &'a str,
    pub(super) merge_lock: &'a Mutex<ObjectId>,
    pub(super) manifest: &'a ManifestFile,
    pub(super) merges: &'a Mutex<Vec<MergeRecord>>,
    pub(super) base_checks: &'a Mutex<BTreeMap<ObjectId, bool>>,
    /// A full status walk found this worktree clean after the last thing that ran in it, so
    /// bringing it to the next tip need only check the files that tip changes. Whatever runs
    /// in the worktree after that walk must clear it.
    pub(super) seen_clean: std::cell::Cell<bool>,
    /// The kernel's record of what changed in the worktree since it was last proven clean
    /// (`git::WorktreeWatch`): made with the worktree, it makes the check after each story
    /// follow what the story changed.
    pub(super) watch: std::cell::RefCell<Option<git::WorktreeWatch>>,
    pub(super) claimer: &'a Claimer<'a>,
}

impl SlotRunner<'_, '_> {
    fn integration_tip(&self) -> Result<ObjectId> {
        git::resolve_ref(self.repo, self.integration_ref)?
            .ok_or_else(|| Error::git(format!("{} disappeared", self.integration_ref)))
    }

    /// Create (or reuse, when resuming) this slot's worktree, lock it, set it up.
    pub(super) fn prepare(&self) -> Result<()> {
        self.prepare_then(&|| {})
    }

    /// [`Self::prepare`], calling `made` once the worktree is checked out and locked, before
    /// its set-up: the next worktree may be made while this one is set up.
    pub(super) fn prepare_then(&self, made: &dyn Fn()) -> Result<()> {
        let sid = self.env.session_id;
        let slot = self.slot;
        let exists = git::list_worktrees(self.repo)?
            .iter()
            .any(|w| git::worktree_path_eq(&w.path, &slot.path));
        // Say what really happens: a resumed session reuses the worktrees it kept.
        self.env.progress.slot(
            slot.n,
            if exists {
                "reusing the session's worktree"
            } else {
                "creating worktree"
            },
        );
        let branch_ref = format!("refs/heads/{}", slot.branch);
        if !exists && git::resolve_ref(self.repo, &branch_ref)?.is_some() {
            // A branch left by an interrupted run: its work is on integration or a rescue ref
            // already, so it may go.
            git::delete_branch_guarded(self.repo, &slot.branch, |b| b == slot.branch)?;
        }
        // A worktree parked by an earlier batch starts far faster than a fresh checkout, and
        // keeps its installed dependencies; any that cannot be taken is simply not used.
        let adopted = !exists
            && pool::adopt(
                self.repo,
                self.manifest,
                &self.env.worktrees_dir,
                &slot.path,
                &slot.branch,
            )
            .unwrap_or_else(|e| {
                self.env.progress.line(&format!(
                    "warning: an idle worktree could not be reused: {e}"
                ));
                false
            });
        if !exists && !adopted {
            let tip = self.integration_tip()?;
            let add = |repo: &gix::Repository| {
                git::add_worktree(repo, &slot.path, &slot.branch, tip, self.env.story.cancel)
            };
            if slot.n == 1 {
                add(self.repo)?;
            } else {
                // Made while agents run (on demand): at a lower priority, on a thread of its
                // own, so that the checkout's threads inherit it and this one keeps its own.
                let repo = self.repo.clone();
                std::thread::scope(|s| {
                    s.spawn(move || {
                        crate::process::background_priority();
                        add(&repo)
                    })
                    .join()
                    .unwrap_or_else(|_| Err(Error::git("the checkout thread panicked")))
                })?;
            }
            crate::fault::point("after-worktree-create");
        }
        let reason = format!(
            "git-teleos session {sid} (pid {}) is using this worktree",
            std::process::id()
        );
        git::lock_worktree(self.repo, &slot.path, &reason)?;
        made();
        if !exists {
            self.env.progress.slot(slot.n, "setting up");
            crate::fault::point("mid-setup");
            let log = self
                .env
                .story
                .logs_dir
                .join(format!("setup-wt-{}.log", slot.n));
            // A reused worktree has its dependencies: only `.worktreeinclude` files are copied.
            let plan = if adopted {
                &SetupPlan::None
            } else {
                &self.env.setup
            };
            let limits = setup::SetupLimits {
                timeout: self.env.setup_timeout,
                cancel: self.env.story.cancel,
            };
            setup::run(plan, self.env.root, &slot.path, &log, limits).map_err(|e| {
                Error::setup(
                    e.to_string(),
                    "fix teleos.setup / teleos.installCommand / teleos.setupTimeout, \
                     or use --setup none",
                )
            })?;
            // A checkout made just now is clean by construction: unless a set-up step wrote
            // into it, the first story need not walk all of it again.
            let wrote = !matches!(plan, SetupPlan::None)
                || setup::worktree_includes(self.env.root).map_or(true, |l| !l.is_empty());
            if !adopted && !wrote {
                self.seen_clean.set(true);
            }
        }
        // Watched from here on; unless it is clean by construction, the first check is the
        // full walk, which the watch then builds on.
        let watch = if self.env.watch_worktrees {
            let wt = gix::open(&slot.path).map_err(Error::git)?;
            Some(git::WorktreeWatch::start(&wt, self.seen_clean.get()))
        } else {
            None
        };
        self.watch.replace(watch);
        Ok(())
    }

    /// Which story the worktree runs, for other tools and `status`: a live field, not synced
    /// (see `ManifestFile::update_live`).
    fn set_manifest_story(&self, story: Option<&str>) {
        let path = self.slot.path.to_string_lossy().into_owned();
        let sid = self.env.session_id;
        let _ = self.manifest.update_live(|m| {
            if let Some(s) = m.sessions.get_mut(sid) {
                for w in &mut s.worktrees {
                    if w.path.as_deref() == Some(path.as_str()) {
                        w.story = story.map(str::to_string);
                    }
                }
            }
            Ok(())
        });
    }

    /// Run one story here; returns its result and whether its work is on integration.
    pub(super) fn run_story(&self, story: &Story) -> (StoryResult, bool) {
        let key = &story.story_key;
        // Start from everything merged so far.
        let setup_start = timing::now_ms();
        let failed = |msg: String| {
            let mut r = StoryResult::not_run(story, Outcome::Error, Some(msg));
            r.attempts = 0;
            // No agent ran, but the slot spent this time on the story: draw it.
            let mut a = Attempt {
                attempt: 1,
                lane: Some(self.slot.n as u32),
                outcome: Some(timing::outcome_name(Outcome::Error)),
                ..Attempt::default()
            };
            a.push(Phase::until_now(timing::SETUP, setup_start));
            r.timeline.push(a);
            (r, false)
        };
        // Another session started on the same stories may have this one: never run it twice.
        if let Some(skipped) = self.claimer.claim(self.repo, story) {
            return (skipped, false);
        }
        let tip = match self.integration_tip() {
            Ok(t) => t,
            Err(e) => return failed(e.to_string()),
        };
        let wt = match gix::open(&self.slot.path) {
            Ok(r) => r,
            Err(e) => return failed(format!("cannot open worktree: {e}")),
        };
        // A worktree made or resumed here gets the full check; after a story the walk that
        // verified it is recent enough.
        // The index the last story's verification read: the update need not decode it again.
        let known = self
            .watch
            .borrow_mut()
            .as_mut()
            .and_then(git::WorktreeWatch::take_proven_index);
        let cancel = self.env.story.cancel;
        let reset = if self.seen_clean.replace(false) {
            git::reset_clean_worktree_with(&wt, tip, known, cancel)
        } else {
            git::reset_worktree_to(&wt, tip, cancel)
        };
        if let Err(e) = reset {
            return failed(format!("cannot bring the worktree up to date: {e}"));
        }
        self.env
            .progress
            .slot(self.slot.n, &format!("{key}: agent running"));
        self.set_manifest_story(Some(key));
        let answers = self.env.answers.get(key).cloned().unwrap_or_default();
        crate::fault::point_later("agent-running", Duration::from_millis(500));
        let setup = Phase::until_now(timing::SETUP, setup_start);
        let mut watch = self.watch.take();
        let mut result = close_story(
            self.story,
            story,
            &self.slot.path,
            Some(&self.slot.branch),
            &answers,
            watch.as_mut(),
        );
        self.watch.replace(watch);
        gate::story_gate(
            self.story,
            story,
            &self.slot.path,
            Some(&self.slot.branch),
            gate::GatePlace::Worktree(&mut || self.gates_red_at(key, tip)),
            &mut result,
            &mut |state| self.env.progress.slot(self.slot.n, state),
        );
        self.set_manifest_story(None);
        self.env
            .progress
            .slot(self.slot.n, &format!("{key}: merging"));
        let merge_start = timing::now_ms();
        let merged = self.after_story(story, tip, &mut result);
        let lane = self.slot.n as u32;
        for a in &mut result.timeline {
            a.lane = Some(lane);
        }
        if let Some(first) = result.timeline.first_mut() {
            first.push(setup);
            first.phases.sort_by_key(|p| p.start);
        }
        let outcome = timing::outcome_name(result.outcome);
        if let Some(last) = result.timeline.last_mut() {
            last.push(Phase::until_now(timing::MERGE, merge_start));
            last.phases.sort_by_key(|p| p.start);
            // The merge can change the outcome (a conflict): the last attempt ends as the story.
            last.outcome = Some(outcome);
        }
        (result, merged)
    }

    /// Whether the gates are red at `base` (once per base; workers asking meanwhile wait).
    fn gates_red_at(&self, key: &str, base: ObjectId) -> Result<bool> {
        let mut known = self
            .base_checks
            .lock()
            .map_err(|_| Error::git("a gate thread panicked"))?;
        if let Some(red) = known.get(&base) {
            return Ok(*red);
        }
        let label = format!("base-{}.gate", base.to_hex_with_len(10));
        let red = gate::red_at_base(
            &self.story.gate,
            self.repo,
            &self.slot.path,
            base,
            &rescue_ref(self.env.session_id, key, "-gate-check"),
            (self.story.logs_dir, &label),
        )?;
        if !self.story.cancel.load(Ordering::SeqCst) {
            known.insert(base, red);
        }
        Ok(red)
    }

    /// Keep leftovers, merge what is good, keep what did not merge on a ref; leave the
    /// worktree clean for the next story.
    fn after_story(&self, story: &Story, base: ObjectId, result: &mut StoryResult) -> bool {
        let sid = self.env.session_id;
        let key = &story.story_key;
        let wt = match gix::open(&self.slot.path) {
            Ok(r) => r,
            Err(e) => {
                result
                    .discrepancies
                    .push(format!("worktree unreadable after the run: {e}"));
                return false;
            }
        };
        // The agent must stay on its branch. If it moved HEAD elsewhere, whatever HEAD holds is
        // kept on a ref and the worktree is renewed: resetting would move someone else's branch.
        let on_branch = git::current_branch(&wt).ok().flatten();
        let left_branch = on_branch.as_deref() != Some(&format!("refs/heads/{}", self.slot.branch));
        if left_branch {
            let head = git::head_commit_id(&wt).ok().flatten();
            let mut what = format!(
                "the agent left its branch (HEAD is now {})",
                on_branch.as_deref().unwrap_or("detached")
            );
            if let Some(h) = head.filter(|h| *h != base) {
                let name = rescue_ref(sid, key, "-head");
                if git::set_ref(self.repo, &name, h).is_ok() {
                    what.push_str(&format!("; its HEAD is kept on {name}"));
                    result.rescue_ref.get_or_insert(name);
                }
            }
            result.discrepancies.push(what);
            if result.outcome == Outcome::Completed {
                result.outcome = Outcome::Partial;
            }
        }

        // Verification's walk said clean, and left_branch would renew the worktree anyway.
        self.seen_clean.set(result.verified_clean && !left_branch);
        // Uncommitted leftovers: saved as a commit on a ref, then the worktree is replaced.
        let mut rescued_snapshot = None;
        // Verification already walked the worktree; walk again only if it could not say
        // "clean" (and an unreadable worktree counts as dirty: try to save it).
        if !result.verified_clean && !git::is_clean(&wt).unwrap_or(false) {
            match git::snapshot_uncommitted(&wt, &format!("teleos: uncommitted work of {key}")) {
                Ok(Some(snap)) => {
                    let name = rescue_ref(sid, key, "-uncommitted");
                    if git::set_ref(self.repo, &name, snap).is_ok() {
                        // The worktree is renewed: say where the changes are now.
                        let saved = format!(
                            "; they are saved on {name} (see them with: git show --stat {name})"
                        );
                        match result
                            .discrepancies
                            .iter_mut()
                            .find(|d| d.starts_with(UNCOMMITTED))
                        {
                            Some(d) => d.push_str(&saved),
                            None => result
                                .discrepancies
                                .push(format!("{UNCOMMITTED} in its worktree{saved}")),
                        }
                        result.rescue_ref = Some(name);
                        rescued_snapshot = Some(snap);
                    }
                }
                Ok(None) => {}
                Err(e) => result
                    .discrepancies
                    .push(format!("could not save the uncommitted changes: {e}")),
            }
        }

        let mut merged = false;
        let branch_tip = git::resolve_ref(self.repo, &format!("refs/heads/{}", self.slot.branch))
            .ok()
            .flatten();
        let new_work = branch_tip.filter(|t| *t != base);
        match (result.outcome, new_work) {
            (Outcome::Completed | Outcome::Partial, Some(tip)) => {
                let message = format!("teleos: merge {key} (session {sid})");
                let outcome = self.merge_guarded(key, tip, &message, result);
                match outcome {
                    Ok(MergeOutcome::Conflict { paths })
                        if self.env.resolve && self.resolve_conflict(key, &paths, result) =>
                    {
                        merged = true;
                    }
                    Ok(MergeOutcome::Conflict { paths }) => {
                        let name = rescue_ref(sid, key, "");
                        let _ = git::set_ref(self.repo, &name, tip);
                        result.outcome = Outcome::Conflict;
                        result.error_message = Some(format!(
                            "merge conflict in {}; the story's commits are kept on {name}",
                            paths.join(", ")
                        ));
                        result.rescue_ref.get_or_insert(name);
                    }
                    Ok(_) => merged = true,
                    Err(e) => {
                        let name = rescue_ref(sid, key, "");
                        let _ = git::set_ref(self.repo, &name, tip);
                        result.outcome = Outcome::Error;
                        result.error_message =
                            Some(format!("merge failed: {e}; commits kept on {name}"));
                        result.rescue_ref.get_or_insert(name);
                    }
                }
            }
            (_, Some(tip)) => {
                // Work of a story that failed: never merged, never dropped.
                let name = rescue_ref(sid, key, "");
                if git::set_ref(self.repo, &name, tip).is_ok() {
                    result.rescue_ref.get_or_insert(name);
                }
            }
            (Outcome::Completed | Outcome::Partial, None) => {
                merged = true;
                // No commits, but the tracker may still need the story's status.
                if self.story.tracker == TrackerMode::Teleos {
                    let message = format!("teleos: status of {key} (session {sid})");
                    if let Err(e) = self.merge_guarded(key, base, &message, result) {
                        result
                            .discrepancies
                            .push(format!("the tracker could not be updated: {e}"));
                    }
                }
            }
            _ => {}
        }

        if rescued_snapshot.is_some() || left_branch {
            // A renewed worktree ran its setup again: the next story walks it in full.
            if let Err(e) = self.replace_worktree(rescued_snapshot) {
                result
                    .discrepancies
                    .push(format!("the worktree could not be renewed: {e}"));
            }
        }
        merged
    }

    /// Merge `tip` into integration, one merge at a time; first undo any move of the
    /// integration branch that we did not make (its commits are kept on a ref).
    fn merge_guarded(
        &self,
        key: &str,
        tip: ObjectId,
        message: &str,
        result: &mut StoryResult,
    ) -> Result<MergeOutcome> {
        // Poisoned only by a panic caught in another story; the tip it holds is checked
        // against the branch right below, so it is still safe to use.
        let mut expected = lock(self.merge_lock);
        if let Some(note) = restore_integration(
            self.repo,
            self.integration_ref,
            *expected,
            &rescue_ref(self.env.session_id, key, "-integration-moved"),
        )? {
            result.discrepancies.push(note);
        }
        let before = *expected;
        let status =
            tracker::status_for(result.tasks_done, result.tasks_total, result.tasks_blocked);
        let edit = tracker::status_edit(self.story.tracker, key, status);
        let paths = tracker::owned_paths(self.story.tracker, self.story.tracker_files);
        let owned: Vec<git::OwnedPath> = paths
            .iter()
            .map(|path| git::OwnedPath { path, edit: &edit })
            .collect();
        let (outcome, report) =
            git::merge_into_branch_owning(self.repo, self.integration_ref, tip, message, &owned)?;
        if let MergeOutcome::Merged(id) | MergeOutcome::FastForward(id) = outcome {
            *expected = id;
            if let Ok(mut m) = self.merges.lock() {
                m.push(MergeRecord {
                    key: key.to_string(),
                    before,
                    after: id,
                    story_tip: tip,
                    tip_green: result.gates_green_at == Some(tip),
                    tracker_status: (self.story.tracker == TrackerMode::Teleos).then_some(status),
                });
            }
        }
        let why = match self.story.tracker {
            TrackerMode::Off => "the tracker is left alone in this batch (--no-tracker)",
            _ => "git-teleos is the tracker's only writer in parallel mode",
        };
        for path in &report.dropped {
            result.discrepancies.push(format!(
                "the agent edited {path}; that change was dropped ({why}), the rest of its work merged"
            ));
        }
        if !report.edited.is_empty() {
            result.tracker_status = Some(status.to_string());
        }
        Ok(outcome)
    }

    /// `--resolve`: the agent merges the integration branch into its branch and resolves the
    /// conflict; the result is checked (on its branch, clean, contains integration, no conflict
    /// markers) and merged once more. The story's first commits are kept on a ref either way.
    fn resolve_conflict(&self, key: &str, paths: &[String], result: &mut StoryResult) -> bool {
        let sid = self.env.session_id;
        let integration = self.integration_ref.trim_start_matches("refs/heads/");
        let branch_ref = format!("refs/heads/{}", self.slot.branch);
        let Ok(Some(before)) = git::resolve_ref(self.repo, &branch_ref) else {
            return false;
        };
        // The agent runs here again: only the check below can say clean once more.
        self.seen_clean.set(false);
        let _ = git::set_ref(self.repo, &rescue_ref(sid, key, "-before-resolve"), before);
        self.env
            .progress
            .slot(self.slot.n, &format!("{key}: agent resolving a conflict"));
        let prompt = crate::agent::build_resolve_prompt(key, &self.slot.branch, integration, paths);
        let log = self.story.logs_dir.join(format!("{key}.resolve.log"));
        let resolve_start = timing::now_ms();
        let run = crate::agent::run_agent(&crate::agent::RunRequest {
            cwd: &self.slot.path,
            prompt: &prompt,
            log_path: &log,
            config: self.story.agent,
            cancel: self.story.cancel,
            on_spawn: self.story.on_agent_spawn,
            start_gate: self.story.start_gate,
        });
        if let Some(last) = result.timeline.last_mut() {
            last.push(Phase::until_now(timing::RESOLVE, resolve_start));
        }
        let failed = |why: String, result: &mut StoryResult| {
            result
                .discrepancies
                .push(format!("--resolve did not resolve the conflict: {why}"));
            false
        };
        match &run {
            Ok(r) => {
                if let Some(why) = r.error_reason() {
                    return failed(why, result);
                }
                if let Some(c) = r.cost_usd {
                    result.cost_usd = Some(result.cost_usd.unwrap_or(0.0) + c);
                }
            }
            Err(e) => return failed(e.to_string(), result),
        }
        let check = || -> Result<ObjectId> {
            let wt = gix::open(&self.slot.path).map_err(Error::git)?;
            if git::current_branch(&wt)?.as_deref() != Some(branch_ref.as_str()) {
                return Err(Error::git("the agent left its branch"));
            }
            if !git::is_clean(&wt)? {
                return Err(Error::git("the worktree is not clean"));
            }
            let head = git::head_commit_id(&wt)?.ok_or_else(|| Error::git("no HEAD"))?;
            let tip = self.integration_tip()?;
            if !git::is_ancestor(self.repo, tip, head)? {
                return Err(Error::git(format!("{integration} was not merged")));
            }
            for path in git::files_changed(self.repo, tip, head)? {
                let text = std::fs::read_to_string(self.slot.path.join(&path)).unwrap_or_default();
                if text
                    .lines()
                    .any(|l| l.starts_with("<<<<<<<") || l.starts_with(">>>>>>>"))
                {
                    return Err(Error::git(format!("conflict markers left in {path}")));
                }
            }
            Ok(head)
        };
        let head = match check() {
            Ok(h) => h,
            Err(e) => return failed(e.to_string(), result),
        };
        self.seen_clean.set(true);
        let message = format!("teleos: merge {key} (session {sid}, conflict resolved)");
        match self.merge_guarded(key, head, &message, result) {
            Ok(MergeOutcome::Conflict { .. }) => failed("it still conflicts".into(), result),
            Ok(_) => {
                result.discrepancies.push(format!(
                    "merge conflict in {} resolved by the agent (--resolve)",
                    paths.join(", ")
                ));
                result.commit_hash = Some(head.to_string());
                true
            }
            Err(e) => failed(e.to_string(), result),
        }
    }

    /// Swap a worktree whose leftovers were saved for a fresh one on the same branch name.
    fn replace_worktree(&self, rescued: Option<ObjectId>) -> Result<()> {
        git::remove_worktree_rescued(self.repo, &self.slot.path, rescued)?;
        git::delete_branch_guarded(self.repo, &self.slot.branch, |b| b == self.slot.branch)?;
        self.prepare()
    }
}
