//! Parallel mode (README, "Parallel mode"): one linked worktree per slot, a worker thread per
//! worktree, a dynamic queue that respects dependencies, in-memory merges into `integration-<sid>`,
//! landing on the starting branch, and a clean-up that never drops unmerged work.
//!
//! The user's checkout is never checked out, reset or merged into while agents run: every
//! branch move happens on refs with compare-and-swap, and only the final landing touches the
//! user's files, and only when their checkout is clean.

//!
//! The parts: `queue.rs` (which story runs next), `slot.rs` (one worktree's thread),
//! `landing.rs` (onto the user's branch), `cleanup.rs` (the session's worktrees and branches).

mod cleanup;
mod creation;
mod landing;
mod queue;
mod slot;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use self::cleanup::{cleanup, retire_slot, undo_session};
use self::creation::{Baseline, SlotTicket};
use self::landing::restore_integration;
pub(crate) use self::landing::{batch_start, land_or_keep};
use self::queue::{Next, Queue};
use self::slot::SlotRunner;
use crate::batch::claims::Claimer;
use crate::batch::gate::{self, MergeRecord};
use crate::batch::governor::Governor;
use crate::batch::names;
use crate::batch::order::{self, Schedule};
use crate::batch::progress::Progress;
use crate::batch::results::{BatchReport, Outcome, StoryResult};
use crate::batch::sequential::{status_line, Stopper};
use crate::batch::setup::SetupPlan;
use crate::batch::timing::{self, Lane, Phase};
use crate::batch::worker::{Answers, StoryEnv};
use crate::error::{Error, Result};
use crate::git::{self, ObjectId};
use crate::manifest::{ManifestFile, Session, SessionLock, WorktreeEntry};
use crate::stories::tracker::TrackerMode;
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
    /// Watch each worktree with inotify (`git::WorktreeWatch`); off: the full walk after
    /// every story.
    pub watch_worktrees: bool,
    /// Time between agent starts (the governor's stagger).
    pub stagger: Duration,
    /// Most parked worktrees (`teleos.poolMax`).
    pub pool_max: usize,
    /// The order ready stories take a free worktree in (`teleos.schedule`).
    pub schedule: Schedule,
    pub progress: &'a Progress,
}

pub use crate::batch::names::{integration_branch, rescue_ref, worktree_branch, worktree_name};

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
    let (start_branch, start) = batch_start(&main, env.land)?;
    let integration = integration_branch(sid);
    let integration_ref = names::integration_ref(sid);

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

    // What the user's checkout looks like before any agent starts, walked while the first
    // worktree is made (see `Baseline`).
    let user_before = Baseline::new();
    let listed: Vec<String> = stories.iter().map(|s| s.story_key.clone()).collect();
    let stories = order::arrange(stories, env.schedule);
    if let Some(line) = order::describe_change(&listed, &stories) {
        env.progress.line(&line);
    }
    let queue = Mutex::new(Queue::new(
        stories,
        Stopper::new(env.circuit_breaker, env.max_budget_usd),
    ));
    let cv = Condvar::new();
    // Serialises merges, and remembers where we last left the integration branch so a move
    // made behind our back (an agent committing to it) is noticed and undone.
    let integration_start = start_or_existing(&main, &integration_ref, start)?;
    let merge_lock = Mutex::new(integration_start);
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
    // Not synced: a power loss stops the agents too (see `ManifestFile::update_live`).
    let record_agent = |pgid: i32| {
        let _ = manifest.update_live(|m| {
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
    // Worktrees retired while the batch ran (see `creation.rs`): the final clean-up skips them.
    let retired_early = Mutex::new(BTreeSet::<usize>::new());
    // Removed worktrees' files are deleted on threads of their own, while the batch lands.
    let trash = git::TrashBin::default();
    let mut user_after = None;
    let park = env
        .keep_worktrees
        .then_some((&manifest, env.worktrees_dir.as_path(), env.pool_max));
    // One plain thread per worktree, not a rayon pool: each spends up to an hour blocked on
    // an agent, and rayon's pool is for short CPU work (the scan). Threads start on demand.
    thread::scope(|scope| {
        let walk = || {
            let repo = shared.to_thread_local();
            let walked = panic::catch_unwind(AssertUnwindSafe(|| {
                git::changed_paths_refreshed(&repo, None, true)
            }));
            let (paths, refreshed) = walked.ok().and_then(|r| r.ok()).unwrap_or_default();
            user_before.set(paths.into_iter().collect(), refreshed);
        };
        let walking = thread::Builder::new()
            .name("teleos-user-status".into())
            .spawn_scoped(scope, walk);
        if walking.is_err() {
            walk();
        }
        let mut made = 0;
        for slot in &slots {
            if !creation::claim_next_slot(&queue, &cv, env.story.cancel) {
                break;
            }
            made += 1;
            let ticket = SlotTicket::new(&queue, &cv);
            let (queue, cv, merge_lock, notes, shared, lanes) =
                (&queue, &cv, &merge_lock, &notes, &shared, &lanes);
            let (manifest, claimer) = (&manifest, &claimer);
            let (merges, base_checks) = (&merges, &base_checks);
            let (story_env, retired_early, user_before, trash) =
                (&story_env, &retired_early, &user_before, &trash);
            let integration_ref = integration_ref.as_str();
            let note = move |msg: String| {
                env.progress.line(&format!("warning: {msg}"));
                lock(notes).push(msg);
            };
            let work = move || {
                let repo = shared.to_thread_local();
                let w = SlotRunner {
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
                    watch: std::cell::RefCell::new(None),
                    claimer,
                };
                let mut lane = Lane {
                    lane: slot.n as u32,
                    phases: Vec::new(),
                };
                let keep_lane = |lane: Lane| lock(lanes).push(lane);
                let setup_start = timing::now_ms();
                let prepared =
                    panic::catch_unwind(AssertUnwindSafe(|| w.prepare_then(&|| ticket.made())))
                        .unwrap_or_else(|p| Err(Error::Internal(panic_message(&*p))));
                lane.phases
                    .push(Phase::until_now(timing::SETUP, setup_start));
                if let Err(e) = prepared {
                    ticket.failed();
                    keep_lane(lane);
                    note(format!("worktree {} could not be set up: {e}", slot.n));
                    env.progress.slot(slot.n, "unavailable");
                    return;
                }
                ticket.made();
                user_before.wait();
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
                // Nothing left for this slot: its worktree goes now, while the others run, or
                // while the user's checkout is walked. The last slot keeps its own only for what needs one
                // after the stories: the integration gate, and taking back a batch that failed
                // before doing anything. After Ctrl-C everything stays for `--resume`.
                let others = ticket.leave();
                let needed_after =
                    others == 0 && (env.story.gate.enabled() || lock(queue).setup_error.is_some());
                if needed_after || env.story.cancel.load(Ordering::SeqCst) {
                    env.progress.slot(slot.n, "idle");
                    return;
                }
                env.progress.slot(slot.n, "removing its worktree");
                let tip = git::resolve_ref(&repo, integration_ref).ok().flatten();
                let mut said = Vec::new();
                // Its change record proves it clean without walking it all again.
                let mut watch = w.watch.take();
                let retire =
                    || retire_slot(&repo, slot, tip, park, (watch.as_mut(), trash), &mut said);
                // A bug here leaves the slot to the final clean-up.
                if panic::catch_unwind(AssertUnwindSafe(retire)).is_ok() {
                    lock(retired_early).insert(slot.n);
                }
                lock(notes).extend(said);
                env.progress.slot(slot.n, "done");
            };
            let started = thread::Builder::new()
                .name(format!("teleos-wt-{}", slot.n))
                .spawn_scoped(scope, work);
            if let Err(e) = started {
                note(format!("worktree {}: cannot start its thread: {e}", slot.n));
            }
        }
        // A batch of short stories may never need all N worktrees.
        for slot in &slots[made..] {
            env.progress.slot(slot.n, "not needed");
        }
        // Once every slot has left its story loop, the user's checkout is walked (for the
        // check below) while the slots still remove their worktrees. The landing waits until
        // each is unregistered and moved into the trash, not until its files are deleted
        // (`trash` does that meanwhile): a crash while it lands must not find a worktree half
        // removed, and a trash folder is not one (`clean-orphans` deletes it; the crash test
        // `crash_during_landing` checks this).
        creation::wait_all_left(&queue, &cv);
        if !env.story.cancel.load(Ordering::SeqCst) {
            let refreshed = user_before.take_refreshed();
            user_after = Some(user_changes(env.root, refreshed.as_ref()));
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

    let user_changes_after = match user_after {
        Some(paths) => paths,
        None => user_changes(env.root, user_before.take_refreshed().as_ref()),
    };
    let user_changes_before = user_before.into_paths();
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

    report.notes.extend(restore_note(&main, sid, expected_tip));
    // Only a green integration lands: the gates run on it, and a merge that turns it red
    // is taken out.
    let merges = merges.into_inner().unwrap_or_default();
    let ie = gate::IntegrationEnv {
        gate: &env.story.gate,
        main: &main,
        worktrees: slots.iter().map(|s| s.path.as_path()).collect(),
        logs_dir: env.story.logs_dir,
        session_id: sid,
        integration_ref: &integration_ref,
        start: integration_start,
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
    } else {
        let branch = start_branch.as_deref();
        land_or_keep(env.land, &main, env.root, branch, sid, &mut report.notes)
    };
    report.not_landed = env.land && !landed;
    let retired_early = retired_early
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let all_slots: Vec<Slot> = slots
        .into_iter()
        .chain(unused)
        .filter(|s| !retired_early.contains(&s.n))
        .collect();
    cleanup(
        &main,
        &all_slots,
        &integration,
        landed,
        park,
        &trash,
        report,
    );
    manifest.update(|m| {
        m.sessions.remove(sid);
        Ok(())
    })?;
    session_lock.release_and_remove()?;
    for (path, e) in trash.wait() {
        report.notes.push(format!(
            "could not delete {} ({e}); `git teleos clean-orphans` deletes it",
            path.display()
        ));
    }
    Ok(())
}

/// Paths changed in the user's checkout (nothing when it cannot be walked).
fn user_changes(root: &Path, refreshed: Option<&git::Refreshed>) -> BTreeSet<String> {
    git::discover(root)
        .and_then(|r| git::changed_paths_refreshed(&r, refreshed, false))
        .map(|(paths, _)| paths)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// An agent still running elsewhere may have moved the integration branch after the last
/// merge (`expected`): put it back, so that only what this batch merged lands. What happened,
/// for the debrief.
fn restore_note(main: &gix::Repository, sid: &str, expected: ObjectId) -> Option<String> {
    let integration_ref = names::integration_ref(sid);
    let keep_as = names::session_ref(sid, "integration-moved");
    match restore_integration(main, &integration_ref, expected, &keep_as) {
        Ok(note) => note,
        Err(e) => Some(format!("could not check {}: {e}", integration_branch(sid))),
    }
}

/// A worktree an earlier run of session `sid` recorded, if it follows the session's naming
/// (anything else in the manifest is not ours to remove).
fn earlier_slot(dir: &Path, sid: &str, w: &WorktreeEntry) -> Option<Slot> {
    let path = PathBuf::from(w.path.as_deref()?);
    if path.parent() != Some(dir) {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    let n: usize = name
        .strip_prefix(&names::worktree_name_prefix(sid))?
        .parse()
        .ok()?;
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

/// The integration branch's current tip (a resumed session), or where it will be created.
fn start_or_existing(
    repo: &gix::Repository,
    integration_ref: &str,
    start: ObjectId,
) -> Result<ObjectId> {
    Ok(git::resolve_ref(repo, integration_ref)?.unwrap_or(start))
}
