//! Parallel mode (README, "Parallel mode"): one linked worktree per slot, a worker thread per
//! worktree, a dynamic queue that respects dependencies, in-memory merges into `integration-<sid>`,
//! landing on the starting branch, and a clean-up that never drops unmerged work.
//!
//! The user's checkout is never checked out, reset or merged into while agents run: every
//! branch move happens on refs with compare-and-swap, and only the final landing touches the
//! user's files, and only when their checkout is clean.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::batch::claims::Claimer;
use crate::batch::gate::{self, MergeRecord};
use crate::batch::governor::Governor;
use crate::batch::pool;
use crate::batch::progress::Progress;
use crate::batch::results::{BatchReport, Outcome, StoryResult};
use crate::batch::sequential::{status_line, Stopper};
use crate::batch::setup::{self, SetupPlan};
use crate::batch::timing::{self, Attempt, Lane, Phase};
use crate::batch::worker::{close_story, Answers, StoryEnv, UNCOMMITTED};
use crate::error::{Error, Result};
use crate::git::{self, LandOutcome, MergeOutcome, ObjectId};
use crate::manifest::{ManifestFile, Session, SessionLock, WorktreeEntry};
use crate::stories::tracker::{self, TrackerMode};
use crate::stories::Story;

/// Everything a parallel batch needs besides the stories.
pub struct ParallelEnv<'a> {
    pub story: StoryEnv<'a>,
    /// The user's work tree root.
    pub root: &'a Path,
    /// Where worktrees and the manifest live (`<root>/.claude/worktrees` by default).
    pub worktrees_dir: PathBuf,
    pub slots: usize,
    pub session_id: &'a str,
    pub circuit_breaker: u32,
    pub max_budget_usd: Option<f64>,
    pub answers: &'a BTreeMap<String, Answers>,
    pub setup: SetupPlan,
    /// Limit on each worktree's install command.
    pub setup_timeout: Duration,
    pub land: bool,
    /// On a merge conflict, ask the agent to merge the integration branch and resolve it.
    pub resolve: bool,
    /// Park clean, merged worktrees for the next batch instead of removing them.
    pub keep_worktrees: bool,
    /// Time between agent starts (the governor's stagger).
    pub stagger: Duration,
    /// Most parked worktrees (`teleos.poolMax`).
    pub pool_max: usize,
    pub progress: &'a Progress,
}

pub fn integration_branch(sid: &str) -> String {
    format!("integration-{sid}")
}

pub fn worktree_branch(sid: &str, n: usize) -> String {
    format!("worktree/teleos-{sid}-{n}")
}

pub fn worktree_name(sid: &str, n: usize) -> String {
    format!("teleos-{sid}-{n}")
}

/// Ref keeping a story's work that did not land (conflict, error, leftovers).
pub fn rescue_ref(sid: &str, key: &str, what: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("refs/teleos/{sid}/{safe}{what}")
}

/// The shared queue: stories wait until the selected stories they depend on have merged.
struct Queue {
    pending: Vec<Story>,
    running: usize,
    merged: BTreeSet<String>,
    failed: BTreeSet<String>,
    selected: BTreeSet<String>,
    results: Vec<StoryResult>,
    stopper: Stopper,
    stopped: Option<String>,
    /// An agent said it is not authenticated: no story starts after it.
    setup_error: Option<String>,
}

enum Next {
    Run(Box<Story>),
    Done,
}

impl Queue {
    /// The next story this worker should run, waiting while dependencies are still running.
    /// `waited` is set when the worker had to wait for a dependency (drawn on its lane).
    fn next(lock: &Mutex<Queue>, cv: &Condvar, cancel: &AtomicBool, waited: &mut bool) -> Next {
        let Ok(mut q) = lock.lock() else {
            return Next::Done;
        };
        loop {
            if cancel.load(Ordering::SeqCst) {
                q.stopped.get_or_insert_with(|| "interrupted".into());
            }
            if q.stopped.is_none() {
                if let Some(why) = q.stopper.reason() {
                    q.stopped = Some(why);
                }
            }
            if q.stopped.is_some() || q.pending.is_empty() {
                return Next::Done;
            }
            // A story whose dependency failed cannot start: it would miss that work.
            let mut i = 0;
            while i < q.pending.len() {
                let blocked_by = q.pending[i]
                    .depends_on
                    .iter()
                    .find(|d| q.failed.contains(*d))
                    .cloned();
                if let Some(dep) = blocked_by {
                    let s = q.pending.remove(i);
                    let why = format!("its dependency {dep} did not land");
                    q.failed.insert(s.story_key.clone());
                    q.results
                        .push(StoryResult::not_run(&s, Outcome::NotStarted, Some(why)));
                    cv.notify_all();
                } else {
                    i += 1;
                }
            }
            let ready = q.pending.iter().position(|s| {
                s.depends_on
                    .iter()
                    .filter(|d| q.selected.contains(*d))
                    .all(|d| q.merged.contains(d))
            });
            if let Some(i) = ready {
                let s = q.pending.remove(i);
                q.running += 1;
                return Next::Run(Box::new(s));
            }
            if q.running == 0 {
                // Nothing running can unblock what is left (a cycle the scan did not break).
                return Next::Done;
            }
            // Wake up now and then to notice Ctrl-C.
            *waited = true;
            q = match cv.wait_timeout(q, Duration::from_millis(200)) {
                Ok((g, _)) => g,
                Err(_) => return Next::Done,
            };
        }
    }

    fn finish(lock: &Mutex<Queue>, cv: &Condvar, result: StoryResult, merged: bool) {
        if let Ok(mut q) = lock.lock() {
            q.running = q.running.saturating_sub(1);
            if merged {
                q.merged.insert(result.story_key.clone());
            } else {
                q.failed.insert(result.story_key.clone());
            }
            q.stopper.record(&result);
            if let Some(e) = &result.setup_error {
                q.stopped
                    .get_or_insert_with(|| format!("the agent is not authenticated: {e}"));
                q.setup_error.get_or_insert_with(|| e.clone());
            }
            q.results.push(result);
        }
        cv.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The text a panic carried, for the report (the panic hook has printed where it happened).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    format!("panicked: {}", text.as_deref().unwrap_or("(no message)"))
}

/// One slot's worktree.
struct Slot {
    n: usize,
    path: PathBuf,
    branch: String,
}

/// Run the closeable `stories` in parallel; results are appended to `report`.
pub fn run(env: &ParallelEnv, stories: Vec<Story>, report: &mut BatchReport) -> Result<()> {
    let sid = env.session_id;
    let main = git::discover(env.root)?;
    let start_branch = git::current_branch(&main)?;
    if env.land && start_branch.is_none() {
        return Err(Error::usage_hint(
            "HEAD is detached: there is no branch to land the work on",
            "check out a branch first, or pass --no-land to keep the work on integration-<sid>",
        ));
    }
    let start = git::head_commit_id(&main)?.ok_or_else(|| {
        Error::usage_hint(
            "the current branch has no commits yet: there is nothing to branch worktrees from",
            "commit the stories first (git add -A && git commit)",
        )
    })?;
    let integration = integration_branch(sid);
    let integration_ref = format!("refs/heads/{integration}");

    std::fs::create_dir_all(&env.worktrees_dir)
        .map_err(|e| Error::io(format!("creating {}", env.worktrees_dir.display()), e))?;
    exclude_worktrees_dir(&main, env.root, &env.worktrees_dir);
    // Held for the session's whole life: the proof of liveness clean-up relies on.
    let session_lock = SessionLock::acquire(&env.worktrees_dir, sid)?;
    let manifest = ManifestFile::new(&env.worktrees_dir);
    let slots: Vec<Slot> = (1..=env.slots.min(stories.len()).max(1))
        .map(|n| Slot {
            n,
            path: env.worktrees_dir.join(worktree_name(sid, n)),
            branch: worktree_branch(sid, n),
        })
        .collect();
    // Resuming: the earlier run may have had more worktrees than this one needs. They are
    // not used, but they are the session's: kept in the manifest and cleaned up at the end.
    let unused: Vec<Slot> = manifest.update(|m| {
        let unused: Vec<Slot> = m
            .sessions
            .get(sid)
            .map(|old| {
                old.worktrees
                    .iter()
                    .filter_map(|w| earlier_slot(&env.worktrees_dir, sid, w))
                    .filter(|e| !slots.iter().any(|s| s.n == e.n))
                    .collect()
            })
            .unwrap_or_default();
        let mut session = Session::new(
            integration.clone(),
            slots
                .iter()
                .chain(&unused)
                .map(|s| WorktreeEntry::new(s.path.to_string_lossy(), s.branch.clone()))
                .collect(),
        );
        if let Some(old) = m.sessions.get(sid) {
            // Resuming: keep what the earlier run recorded, but it is ours and alive again.
            session.extra = old.extra.clone();
        }
        m.sessions.insert(sid.to_string(), session);
        Ok(unused)
    })?;
    // A resumed session's integration branch (and worktrees) are not this run's to undo.
    let fresh_session = git::resolve_ref(&main, &integration_ref)?.is_none();
    if fresh_session {
        git::create_branch(&main, &integration, start)?;
    }
    report.branch = start_branch.clone();

    // What the user's checkout looks like now: agents must not touch it, and if one does
    // (a path out of its worktree), the debrief says so.
    let user_changes_before: BTreeSet<String> = git::changed_paths(&main, None)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let selected: BTreeSet<String> = stories.iter().map(|s| s.story_key.clone()).collect();
    let queue = Mutex::new(Queue {
        pending: stories,
        running: 0,
        merged: BTreeSet::new(),
        failed: BTreeSet::new(),
        selected,
        results: Vec::new(),
        stopper: Stopper::new(env.circuit_breaker, env.max_budget_usd),
        stopped: None,
        setup_error: None,
    });
    let cv = Condvar::new();
    // Serialises merges, and remembers where we last left the integration branch so a move
    // made behind our back (an agent committing to it) is noticed and undone.
    let batch_start = start_or_existing(&main, &integration_ref, start)?;
    let merge_lock = Mutex::new(batch_start);
    // Every merge this batch makes, in order: what the integration gate bisects.
    let merges = Mutex::new(Vec::<MergeRecord>::new());
    // Whether the gates are red at an integration tip a story started from (checked only when a
    // story gate is red, once per tip).
    let base_checks = Mutex::new(BTreeMap::<ObjectId, bool>::new());
    let notes = Mutex::new(Vec::<String>::new());
    let lanes = Mutex::new(Vec::<Lane>::new());
    let shared = main.clone().into_sync();
    let claimer = Claimer {
        manifest: &manifest,
        dir: &env.worktrees_dir,
        session_id: sid,
        branch: start_branch.as_deref(),
        start: Some(start),
    };

    // Agents' process groups go into the manifest so a clean-up after a crash can stop them.
    let record_agent = |pgid: i32| {
        let _ = manifest.update(|m| {
            if let Some(s) = m.sessions.get_mut(sid) {
                s.agent_pgids.push(pgid);
            }
            Ok(())
        });
    };
    // One governor for every worker: staggered starts, a shared pause on rate limits, and
    // a concurrency limit that drops on them and climbs back after twice the back-off.
    let say = |text: &str| env.progress.line(text);
    let governor = Governor::new(
        slots.len(),
        env.stagger,
        env.story.agent.rate_limit_backoff.saturating_mul(2),
        Some(&say),
    );
    let story_env = StoryEnv {
        on_agent_spawn: Some(&record_agent),
        gate: gate::GateEnv {
            on_spawn: Some(&record_agent),
            ..env.story.gate
        },
        start_gate: Some(&governor),
        ..env.story
    };
    // One plain thread per worktree, not a rayon pool: each spends up to an hour blocked on
    // an agent, and rayon's pool is for short CPU work (the scan).
    thread::scope(|scope| {
        for slot in &slots {
            let (queue, cv, merge_lock, notes, shared, lanes) =
                (&queue, &cv, &merge_lock, &notes, &shared, &lanes);
            let (manifest, claimer) = (&manifest, &claimer);
            let (merges, base_checks) = (&merges, &base_checks);
            let story_env = &story_env;
            let integration_ref = integration_ref.as_str();
            let note = move |msg: String| {
                env.progress.line(&format!("warning: {msg}"));
                lock(notes).push(msg);
            };
            let work = move || {
                let repo = shared.to_thread_local();
                let w = Worker {
                    env,
                    story: story_env,
                    repo: &repo,
                    slot,
                    integration_ref,
                    merge_lock,
                    manifest,
                    merges,
                    base_checks,
                    seen_clean: std::cell::Cell::new(false),
                    claimer,
                };
                let mut lane = Lane {
                    lane: slot.n as u32,
                    phases: Vec::new(),
                };
                let keep_lane = |lane: Lane| lock(lanes).push(lane);
                let setup_start = timing::now_ms();
                let prepared = panic::catch_unwind(AssertUnwindSafe(|| w.prepare()))
                    .unwrap_or_else(|p| Err(Error::Internal(panic_message(&*p))));
                lane.phases
                    .push(Phase::until_now(timing::SETUP, setup_start));
                if let Err(e) = prepared {
                    keep_lane(lane);
                    note(format!("worktree {} could not be set up: {e}", slot.n));
                    env.progress.slot(slot.n, "unavailable");
                    return;
                }
                loop {
                    let mut waited = false;
                    let wait_start = timing::now_ms();
                    let Next::Run(story) = Queue::next(queue, cv, env.story.cancel, &mut waited)
                    else {
                        break;
                    };
                    if waited {
                        let mut p = Phase::until_now(timing::WAIT_DEPENDENCY, wait_start);
                        p.detail = Some(format!("before {}", story.story_key));
                        lane.phases.push(p);
                    }
                    // A bug while one story runs ends that story, not the batch and its report.
                    let ran = panic::catch_unwind(AssertUnwindSafe(|| w.run_story(&story)));
                    let (result, merged, panicked) = match ran {
                        Ok((result, merged)) => (result, merged, false),
                        Err(p) => {
                            let why = format!(
                                "internal error (a bug in git-teleos, please report it): {}; \
                                 worktree {} is kept as it was",
                                panic_message(&*p),
                                slot.n
                            );
                            let mut r = StoryResult::not_run(&story, Outcome::Error, Some(why));
                            r.attempts = 0;
                            (r, false, true)
                        }
                    };
                    env.progress.line(&status_line(&result, 0.0));
                    env.progress.story_done();
                    Queue::finish(queue, cv, result, merged);
                    if panicked {
                        // Its worktree is in an unknown state: no further story runs there.
                        keep_lane(lane);
                        note(format!(
                            "worktree {} was retired after an internal error in {}",
                            slot.n, story.story_key
                        ));
                        env.progress.slot(slot.n, "unavailable");
                        return;
                    }
                }
                keep_lane(lane);
                env.progress.slot(slot.n, "idle");
            };
            let started = thread::Builder::new()
                .name(format!("teleos-wt-{}", slot.n))
                .spawn_scoped(scope, work);
            if let Err(e) = started {
                note(format!("worktree {}: cannot start its thread: {e}", slot.n));
            }
        }
    });
    env.progress.finish();

    // A panic caught above may have poisoned these; what they hold is still consistent enough
    // to report (and a moved integration tip is checked against the branch below).
    let mut q = queue.into_inner().unwrap_or_else(PoisonError::into_inner);
    let expected_tip = merge_lock
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    for s in std::mem::take(&mut q.pending) {
        let why = q
            .stopped
            .clone()
            .unwrap_or_else(|| "no worktree could run it (see the notes)".to_string());
        q.results
            .push(StoryResult::not_run(&s, Outcome::NotStarted, Some(why)));
    }
    let waits: f64 = q.results.iter().map(|r| r.rate_limit_wait_secs).sum();
    report.governor = Some(governor.summary(waits));
    report.stories.extend(q.results);
    report
        .notes
        .extend(notes.into_inner().unwrap_or_else(PoisonError::into_inner));
    let mut lanes = lanes.into_inner().unwrap_or_else(PoisonError::into_inner);
    lanes.sort_by_key(|l| l.lane);
    report.lanes.extend(lanes);
    if q.stopped.is_some() {
        report.stopped = q.stopped.clone();
    }

    // Not authenticated, and nothing done yet: take back everything this run created.
    if let Some(e) = q.setup_error.clone() {
        if fresh_session && q.merged.is_empty() && report.no_work_done() {
            undo_session(&main, &slots, &integration, &manifest, sid, report);
            session_lock.release_and_remove()?;
            report.setup_error = Some(e);
            return Ok(());
        }
    }

    let interrupted = env.story.cancel.load(Ordering::SeqCst);
    if interrupted {
        manifest.update(|m| {
            if let Some(s) = m.sessions.get_mut(sid) {
                s.status = Some(crate::manifest::schema::STATUS_INTERRUPTED.to_string());
            }
            Ok(())
        })?;
        report.notes.push(format!(
            "interrupted: worktrees, branches and {integration} are kept; finish with: git teleos close --resume {sid}"
        ));
        drop(session_lock);
        return Ok(());
    }

    let user_changes_after: BTreeSet<String> = git::discover(env.root)
        .and_then(|r| git::changed_paths(&r, None))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let touched: Vec<&String> = user_changes_after
        .symmetric_difference(&user_changes_before)
        .take(10)
        .collect();
    if !touched.is_empty() {
        report.notes.push(format!(
            "warning: your checkout changed while the agents ran (not by git-teleos): {}",
            touched
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // An agent still running elsewhere may have moved the integration branch after the last
    // merge: land only what this batch merged.
    match restore_integration(
        &main,
        &integration_ref,
        expected_tip,
        &format!("refs/teleos/{sid}/integration-moved"),
    ) {
        Ok(Some(note)) => report.notes.push(note),
        Ok(None) => {}
        Err(e) => report
            .notes
            .push(format!("could not check {integration}: {e}")),
    }

    // Only a green integration lands: the gates run on it, and a merge that turns it red is
    // taken out.
    let merges = merges.into_inner().unwrap_or_default();
    let ie = gate::IntegrationEnv {
        gate: &env.story.gate,
        main: &main,
        worktrees: slots.iter().map(|s| s.path.as_path()).collect(),
        logs_dir: env.story.logs_dir,
        session_id: sid,
        integration_ref: &integration_ref,
        start: batch_start,
        tracker_files: match env.story.tracker {
            TrackerMode::Teleos => env
                .story
                .tracker_files
                .iter()
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .collect(),
            _ => Vec::new(),
        },
    };
    let gate_ok = gate::gate_integration(&ie, &merges, &|s| env.progress.line(s), report);

    // Landing, then clean-up. A failure in either is reported, never hidden.
    let landed = if !gate_ok {
        report.notes.push(format!(
            "not landed: the integration gate is red; the work is on {integration}"
        ));
        false
    } else if env.land {
        land(
            &main,
            env.root,
            start_branch.as_deref(),
            &integration,
            &integration_ref,
            report,
        )
    } else {
        report.notes.push(format!(
            "--no-land: the work is on {integration}; merge it with: git merge {integration}"
        ));
        false
    };
    report.not_landed = env.land && !landed;
    let park = env
        .keep_worktrees
        .then_some((&manifest, env.worktrees_dir.as_path(), env.pool_max));
    let all_slots: Vec<Slot> = slots.into_iter().chain(unused).collect();
    cleanup(&main, &all_slots, &integration, landed, park, report);
    manifest.update(|m| {
        m.sessions.remove(sid);
        Ok(())
    })?;
    session_lock.release_and_remove()?;
    Ok(())
}

/// Remove what a session created that did no work: its worktrees, their branches, the
/// integration branch and its manifest entry. Anything that refuses to go is reported.
fn undo_session(
    main: &gix::Repository,
    slots: &[Slot],
    integration: &str,
    manifest: &ManifestFile,
    sid: &str,
    report: &mut BatchReport,
) {
    for slot in slots {
        let registered = git::list_worktrees(main)
            .map(|l| l.iter().any(|w| git::worktree_path_eq(&w.path, &slot.path)))
            .unwrap_or(false);
        if registered {
            let _ = git::unlock_worktree(main, &slot.path);
            if let Err(e) = git::remove_worktree(main, &slot.path, false) {
                report
                    .notes
                    .push(format!("kept worktree {}: {e}", slot.path.display()));
                continue;
            }
        }
        if matches!(
            git::resolve_ref(main, &format!("refs/heads/{}", slot.branch)),
            Ok(Some(_))
        ) {
            if let Err(e) = git::delete_branch_guarded(main, &slot.branch, |b| b == slot.branch) {
                report
                    .notes
                    .push(format!("kept branch {}: {e}", slot.branch));
            }
        }
    }
    if let Err(e) = git::delete_branch_guarded(main, integration, |b| b == integration) {
        report.notes.push(format!("kept branch {integration}: {e}"));
    }
    let _ = manifest.update(|m| {
        m.sessions.remove(sid);
        Ok(())
    });
}

/// A worktree an earlier run of session `sid` recorded, if it follows the session's naming
/// (anything else in the manifest is not ours to remove).
fn earlier_slot(dir: &Path, sid: &str, w: &WorktreeEntry) -> Option<Slot> {
    let path = PathBuf::from(w.path.as_deref()?);
    if path.parent() != Some(dir) {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    let n: usize = name.strip_prefix(&format!("teleos-{sid}-"))?.parse().ok()?;
    (worktree_name(sid, n) == name && w.branch.as_deref() == Some(&worktree_branch(sid, n))).then(
        || Slot {
            n,
            path,
            branch: worktree_branch(sid, n),
        },
    )
}

/// Keep the worktrees folder out of the user's `git status` (via `info/exclude`, not a file
/// of the checkout). Best effort: a failure only means `git status` lists the folder.
pub(crate) fn exclude_worktrees_dir(repo: &gix::Repository, root: &Path, dir: &Path) {
    // The folder sits under the main worktree, also when the batch starts from a linked one.
    let main_root = git::main_worktree_root(repo).unwrap_or_else(|| root.to_path_buf());
    let Ok(rel) = dir
        .strip_prefix(&main_root)
        .or_else(|_| dir.strip_prefix(root))
    else {
        return;
    };
    let pattern = format!("/{}/", rel.to_string_lossy().trim_end_matches('/'));
    let exclude = git::common_dir(repo).join("info").join("exclude");
    let current = std::fs::read_to_string(&exclude).unwrap_or_default();
    if current.lines().any(|l| l.trim() == pattern) {
        return;
    }
    let _ = std::fs::create_dir_all(exclude.parent().unwrap_or(Path::new(".")));
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("# git-teleos worktrees\n{pattern}\n"));
    let _ = std::fs::write(&exclude, text);
}

struct Worker<'a, 'e> {
    env: &'a ParallelEnv<'e>,
    /// The batch's story settings, plus recording each agent's process group in the manifest.
    story: &'a StoryEnv<'a>,
    repo: &'a gix::Repository,
    slot: &'a Slot,
    integration_ref: &'a str,
    merge_lock: &'a Mutex<ObjectId>,
    manifest: &'a ManifestFile,
    merges: &'a Mutex<Vec<MergeRecord>>,
    base_checks: &'a Mutex<BTreeMap<ObjectId, bool>>,
    /// A full status walk found this worktree clean after the last thing that ran in it, so
    /// bringing it to the next tip need only check the files that tip changes. Whatever runs
    /// in the worktree after that walk must clear it.
    seen_clean: std::cell::Cell<bool>,
    claimer: &'a Claimer<'a>,
}

impl Worker<'_, '_> {
    fn integration_tip(&self) -> Result<ObjectId> {
        git::resolve_ref(self.repo, self.integration_ref)?
            .ok_or_else(|| Error::git(format!("{} disappeared", self.integration_ref)))
    }

    /// Create (or reuse, when resuming) this slot's worktree, lock it, set it up.
    fn prepare(&self) -> Result<()> {
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
            git::add_worktree(
                self.repo,
                &slot.path,
                &slot.branch,
                tip,
                self.env.story.cancel,
            )?;
            crate::fault::point("after-worktree-create");
        }
        let reason = format!(
            "git-teleos session {sid} (pid {}) is using this worktree",
            std::process::id()
        );
        git::lock_worktree(self.repo, &slot.path, &reason)?;
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
        }
        Ok(())
    }

    fn set_manifest_story(&self, story: Option<&str>) {
        let path = self.slot.path.to_string_lossy().into_owned();
        let sid = self.env.session_id;
        let _ = self.manifest.update(|m| {
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
    fn run_story(&self, story: &Story) -> (StoryResult, bool) {
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
        let reset = if self.seen_clean.replace(false) {
            git::reset_clean_worktree_to
        } else {
            git::reset_worktree_to
        };
        if let Err(e) = reset(&wt, tip, self.env.story.cancel) {
            return failed(format!("cannot bring the worktree up to date: {e}"));
        }
        self.env
            .progress
            .slot(self.slot.n, &format!("{key}: agent running"));
        self.set_manifest_story(Some(key));
        let answers = self.env.answers.get(key).cloned().unwrap_or_default();
        crate::fault::point_later("agent-running", Duration::from_millis(500));
        let setup = Phase::until_now(timing::SETUP, setup_start);
        let mut result = close_story(
            self.story,
            story,
            &self.slot.path,
            Some(&self.slot.branch),
            &answers,
        );
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
        let edit = |bytes: &[u8]| -> Option<Vec<u8>> {
            if self.story.tracker != TrackerMode::Teleos {
                return None;
            }
            let text = std::str::from_utf8(bytes).ok()?;
            let (new, _) = tracker::set_story_status(text, key, status).ok()?;
            Some(new.into_bytes())
        };
        // Git paths: relative, '/'-separated.
        let paths: Vec<String> = match self.story.tracker {
            TrackerMode::Agent => Vec::new(),
            TrackerMode::Teleos | TrackerMode::Off => self
                .story
                .tracker_files
                .iter()
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .collect(),
        };
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

/// The integration branch's current tip (a resumed session), or where it will be created.
fn start_or_existing(
    repo: &gix::Repository,
    integration_ref: &str,
    start: ObjectId,
) -> Result<ObjectId> {
    Ok(git::resolve_ref(repo, integration_ref)?.unwrap_or(start))
}

/// If the integration branch is not where we left it, keep the stranger's tip on `keep_as`
/// and put the branch back. Returns what happened, for the debrief.
fn restore_integration(
    repo: &gix::Repository,
    integration_ref: &str,
    expected: ObjectId,
    keep_as: &str,
) -> Result<Option<String>> {
    let actual = git::resolve_ref(repo, integration_ref)?;
    if actual == Some(expected) {
        return Ok(None);
    }
    if let Some(a) = actual {
        git::set_ref(repo, keep_as, a)?;
    }
    git::update_ref_cas(
        repo,
        integration_ref,
        expected,
        actual,
        "git-teleos: undo a move made outside the batch",
    )?;
    Ok(Some(format!(
        "{} was moved outside git-teleos; it was put back and the foreign commits are kept on {keep_as}",
        integration_ref.trim_start_matches("refs/heads/")
    )))
}

/// Merge the integration branch into the branch the batch started from.
pub(crate) fn land(
    main: &gix::Repository,
    root: &Path,
    start_branch: Option<&str>,
    integration: &str,
    integration_ref: &str,
    report: &mut BatchReport,
) -> bool {
    let Some(branch) = start_branch else {
        return false;
    };
    let finish_hint = format!("finish with: git merge {integration}");
    // Whether the branch really moved: "landed" is said only then.
    let mut moved = false;
    // Sessions that finish together land one at a time: while one moves the branch and then
    // the files, another would see a half-updated checkout and refuse it as dirty.
    let lock_path = crate::batch::results::results_dir(&git::common_dir(main)).join("land.lock");
    let _land_lock = std::fs::create_dir_all(lock_path.parent().unwrap_or(Path::new(".")))
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
        })
        .and_then(|f| f.lock().map(|_| f));
    let mut attempt = || -> Result<Option<bool>> {
        let tip = git::resolve_ref(main, integration_ref)?
            .ok_or_else(|| Error::git(format!("{integration_ref} disappeared")))?;
        let current = git::resolve_ref(main, branch)?
            .ok_or_else(|| Error::git(format!("{branch} disappeared")))?;
        if git::is_ancestor(main, tip, current)? {
            return Ok(Some(true));
        }
        // Fast-forward when the branch did not move; else one merge commit made in memory.
        moved = false;
        let target = if git::is_ancestor(main, current, tip)? {
            tip
        } else {
            match git::merge_commits_in_memory(
                main,
                current,
                tip,
                branch,
                &format!("Merge branch '{integration}'"),
            )? {
                MergeOutcome::Merged(id) | MergeOutcome::FastForward(id) => id,
                MergeOutcome::UpToDate => return Ok(Some(true)),
                MergeOutcome::Conflict { paths } => {
                    report.notes.push(format!(
                        "{branch} moved on and conflicts with the batch ({}): nothing was touched; {finish_hint}",
                        paths.join(", ")
                    ));
                    return Ok(Some(false));
                }
            }
        };
        let user = git::discover(root)?;
        crate::fault::point("landing");
        Ok(
            match git::land_fast_forward_checkout(&user, branch, target)? {
                // The branch moved under us: compute the landing again on its new tip.
                LandOutcome::NotFastForward | LandOutcome::Moved => None,
                LandOutcome::UpToDate => Some(true),
                LandOutcome::CheckedOut { .. } | LandOutcome::RefUpdated => {
                    moved = true;
                    Some(true)
                }
                LandOutcome::Dirty(paths) => {
                    report.notes.push(format!(
                    "your checkout has uncommitted changes ({}): it was not touched; {finish_hint}",
                    paths.join(", ")
                ));
                    Some(false)
                }
                LandOutcome::CheckedOutElsewhere(path) => {
                    report.notes.push(format!(
                        "{branch} is checked out in {}: nothing was touched; {finish_hint} there",
                        path.display()
                    ));
                    Some(false)
                }
            },
        )
    };
    let mut outcome = Ok(None);
    for _ in 0..5 {
        outcome = attempt();
        if !matches!(outcome, Ok(None)) {
            break;
        }
    }
    match outcome {
        Ok(None) => {
            report.notes.push(format!(
                "{branch} kept moving while landing: nothing was touched; {finish_hint}"
            ));
            false
        }
        Ok(Some(true)) => {
            let short = branch.trim_start_matches("refs/heads/");
            report.notes.push(if moved {
                format!("landed on {short}")
            } else {
                format!("nothing to land on {short}: no story's work was merged")
            });
            true
        }
        Ok(Some(false)) => false,
        Err(e) => {
            report
                .notes
                .push(format!("landing failed: {e}; {finish_hint}"));
            false
        }
    }
}

/// Remove the session's worktrees and branches; keep anything that holds unmerged work.
fn cleanup(
    main: &gix::Repository,
    slots: &[Slot],
    integration: &str,
    landed: bool,
    park: Option<(&ManifestFile, &Path, usize)>,
    report: &mut BatchReport,
) {
    let integration_tip = git::resolve_ref(main, &format!("refs/heads/{integration}"))
        .ok()
        .flatten();
    for (i, slot) in slots.iter().enumerate() {
        if i == 1 {
            crate::fault::point("cleanup");
        }
        let exists = git::list_worktrees(main)
            .map(|l| l.iter().any(|w| git::worktree_path_eq(&w.path, &slot.path)))
            .unwrap_or(false);
        if exists {
            if let (Some((manifest, dir, max)), Some(tip)) = (park, integration_tip) {
                let merged = git::resolve_ref(main, &format!("refs/heads/{}", slot.branch))
                    .ok()
                    .flatten()
                    .is_some_and(|b| git::is_ancestor(main, b, tip).unwrap_or(false));
                if merged {
                    match pool::park(main, manifest, dir, &slot.path, &slot.branch, max) {
                        Ok(_) => continue,
                        Err(e) => report.notes.push(format!(
                            "could not keep {} for reuse: {e}",
                            slot.path.display()
                        )),
                    }
                }
            }
            let _ = git::unlock_worktree(main, &slot.path);
            if let Err(e) = git::remove_worktree(main, &slot.path, false) {
                report
                    .notes
                    .push(format!("kept worktree {}: {e}", slot.path.display()));
                continue;
            }
        }
        // A slot whose worktree could not be made has no branch: nothing to say about it.
        let full = format!("refs/heads/{}", slot.branch);
        if !matches!(git::resolve_ref(main, &full), Ok(Some(_))) {
            continue;
        }
        if let Err(e) = git::delete_branch_guarded(main, &slot.branch, |b| b == slot.branch) {
            report
                .notes
                .push(format!("kept branch {}: {e}", slot.branch));
        }
    }
    if landed {
        if let Err(e) = git::delete_branch_guarded(main, integration, |b| b == integration) {
            report.notes.push(format!("kept branch {integration}: {e}"));
        }
    } else {
        report
            .notes
            .push(format!("the batch's work is on branch {integration}"));
    }
}
