//! Sequential mode (README, "How it works"): stories one after another in the user's own checkout,
//! each story's commit landing on the current branch.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::batch::claims::Claimer;
use crate::batch::results::{BatchReport, Outcome, StoryResult};
use crate::batch::timing;
use crate::batch::worker::{close_story, Answers, StoryEnv};
use crate::error::{Error, Result};
use crate::git;
use crate::manifest::{ManifestFile, Session, SessionLock};
use crate::process::{Cmd, ProcessError};
use crate::stories::{Category, Story};

/// Everything a batch run needs besides the stories.
pub struct BatchEnv<'a> {
    pub story: StoryEnv<'a>,
    pub root: &'a Path,
    /// The branch checked out when the batch started (`refs/heads/…`).
    pub branch: Option<&'a str>,
    pub session_id: &'a str,
    pub agent_name: &'a str,
    pub threshold: f64,
    pub circuit_breaker: u32,
    pub max_budget_usd: Option<f64>,
    pub pipeline_command: Option<&'a str>,
    pub answers: &'a BTreeMap<String, Answers>,
    /// The worktrees folder: the session is recorded in its manifest, to claim its stories.
    pub worktrees_dir: &'a Path,
    /// Progress lines (stderr).
    pub progress: &'a mut dyn Write,
}

/// Refuse to start where an agent would sweep the user's own edits into its commit.
pub fn check_checkout(repo: &gix::Repository) -> Result<Option<String>> {
    let dirty = git::dirty_paths(repo)?;
    if !dirty.is_empty() {
        let shown: Vec<&str> = dirty.iter().take(5).map(String::as_str).collect();
        return Err(Error::Usage {
            message: format!(
                "your checkout has uncommitted changes ({}{}); an agent would commit them as its own",
                shown.join(", "),
                if dirty.len() > 5 { ", …" } else { "" }
            ),
            hints: vec![
                "commit or stash them first (git stash -u), then run again".into(),
                "or run in separate worktrees, which never touch your checkout: --parallel 1".into(),
            ],
        });
    }
    let branch = git::current_branch(repo)?;
    if branch.is_none() {
        return Err(Error::usage_hint(
            "HEAD is detached: the stories' commits would land on no branch",
            "check out a branch first (git switch <branch>)",
        ));
    }
    Ok(branch)
}

/// Why the batch stops before the next story, if it does.
pub struct Stopper {
    consecutive_failures: u32,
    breaker: u32,
    budget: Option<f64>,
    spent: f64,
    /// While no agent run has done anything else: the one way they all failed, and how many
    /// runs failed so.
    same_failure: Option<(String, u32)>,
    any_other: bool,
}

/// Agent runs that all failed the same way, after which no new story starts: the next would
/// almost surely fail again (an agent that cannot reach its provider stalls every time).
const SAME_FAILURE_RUNS: u32 = 3;

impl Stopper {
    pub fn new(breaker: u32, budget: Option<f64>) -> Self {
        Stopper {
            consecutive_failures: 0,
            breaker,
            budget,
            spent: 0.0,
            same_failure: None,
            any_other: false,
        }
    }

    pub fn record(&mut self, r: &StoryResult) {
        self.spent += r.cost_usd.unwrap_or(0.0);
        // A provider's rate limit says nothing about the stories or the agent.
        if r.rate_limited {
            return;
        }
        match (r.outcome, r.error_message.as_deref()) {
            // Only the run itself dying counts (stall, timeout, crash, the CLI's error), not
            // an answer that did not hold for this story.
            (Outcome::Error, Some(why))
                if r.attempts > 0 && !self.any_other && why.starts_with("agent failed:") =>
            {
                match &mut self.same_failure {
                    Some((cause, runs)) if cause == why => *runs += r.attempts,
                    Some(_) => {
                        self.same_failure = None;
                        self.any_other = true;
                    }
                    None => self.same_failure = Some((why.to_string(), r.attempts)),
                }
            }
            (Outcome::Completed | Outcome::Partial | Outcome::Error | Outcome::Conflict, _) => {
                self.same_failure = None;
                self.any_other = true;
            }
            _ => {}
        }
        match r.outcome {
            Outcome::Error => self.consecutive_failures += 1,
            Outcome::Completed | Outcome::Partial | Outcome::Conflict => {
                self.consecutive_failures = 0
            }
            _ => {}
        }
    }

    pub fn reason(&self) -> Option<String> {
        if self.breaker > 0 && self.consecutive_failures >= self.breaker {
            return Some(format!(
                "circuit breaker: {} consecutive failures",
                self.consecutive_failures
            ));
        }
        if let Some((cause, runs)) = &self.same_failure {
            if *runs >= SAME_FAILURE_RUNS {
                return Some(format!(
                    "every agent run so far ({runs}) failed the same way: {cause}"
                ));
            }
        }
        match self.budget {
            Some(b) if self.spent >= b => Some(format!(
                "budget reached: ${:.2} spent of ${b:.2}",
                self.spent
            )),
            _ => None,
        }
    }
}

/// `, gates green in 3.2s (1 repair)` when gates ran on the story.
fn gate_note(r: &StoryResult) -> String {
    if r.gates.is_empty() {
        return String::new();
    }
    let secs: f64 = r.gates.iter().map(|g| g.duration_secs).sum();
    if r.gates.last().is_some_and(|g| !g.passed) {
        return format!(
            ", gates red as where it started ({secs:.1}s of checks; the integration gate decides)"
        );
    }
    let repairs = match r.gate_repairs {
        0 => String::new(),
        1 => " after 1 repair".to_string(),
        n => format!(" after {n} repairs"),
    };
    format!(", gates green{repairs} ({secs:.1}s of checks)")
}

/// The per-story status line of sequential mode.
pub fn status_line(r: &StoryResult, threshold: f64) -> String {
    // `<key> — <what>: <the error message, else fallback>`
    let why = |what: &str, fallback: &str| {
        let message = r.error_message.as_deref().unwrap_or(fallback);
        format!("{} — {what}: {message}", r.story_key)
    };
    match r.outcome {
        Outcome::Completed => format!(
            "✅ {} — {}/{} tasks done, committed{}",
            r.story_key,
            r.tasks_done,
            r.tasks_total,
            gate_note(r)
        ),
        Outcome::Partial => format!(
            "⚠️ {} — {}/{} tasks done, {} blocked",
            r.story_key, r.tasks_done, r.tasks_total, r.tasks_blocked
        ),
        Outcome::Routed => format!(
            "🔀 {} routed to full story-pipeline (>{:.0}% unchecked)",
            r.story_key,
            threshold * 100.0
        ),
        Outcome::GateFailed => format!("❌ {}", why("Gate failed", "a gate is red")),
        Outcome::IntegrationFailed => format!(
            "❌ {}",
            why("Integration gate failed", "the integrated result is red")
        ),
        Outcome::Conflict => format!("❌ {}", why("Conflict", "merge conflict")),
        Outcome::Error => format!("❌ {}", why("Error", "unknown")),
        Outcome::NotStarted => format!("⏭️ {}", why("not started", "unknown")),
    }
}

/// Route a NEEDS_PIPELINE story: record it, or run the configured pipeline command on it
/// (story key appended), under the story timeout and the batch's cancel flag.
pub fn route(
    pipeline_command: Option<&str>,
    env: &StoryEnv,
    story: &Story,
    cwd: &Path,
) -> StoryResult {
    let mut r = StoryResult::not_run(story, Outcome::Routed, None);
    let Some(cmd) = pipeline_command else {
        return r;
    };
    let argv = match shlex::split(cmd) {
        Some(a) if !a.is_empty() => a,
        _ => {
            r.outcome = Outcome::Error;
            r.error_message = Some(format!("teleos.pipelineCommand cannot be split: {cmd}"));
            return r;
        }
    };
    let log = env.logs_dir.join(format!(
        "{}.pipeline.log",
        crate::batch::worker::safe_name(&story.story_key)
    ));
    let started = std::time::Instant::now();
    let started_ms = timing::now_ms();
    let ran = std::fs::create_dir_all(env.logs_dir)
        .and_then(|_| std::fs::File::create(&log))
        .map_err(|e| format!("pipeline command could not start: {e}"))
        .and_then(|f| {
            Cmd::new(&argv[0])
                .args(&argv[1..])
                .arg(&story.story_key)
                .current_dir(cwd)
                .timeout(env.agent.timeout)
                .kill_grace(env.agent.kill_grace)
                .cancel(env.cancel)
                .log(f, u64::MAX)
                .run_checked()
                .map_err(|e| match e {
                    ProcessError::Failed(f) => format!("pipeline command failed: {f}"),
                    other => format!("pipeline command could not start: {other}"),
                })
        });
    r.log_path = Some(log.clone());
    r.duration_secs = started.elapsed().as_secs_f64();
    let mut attempt = timing::Attempt {
        attempt: 1,
        log_path: Some(log),
        ..Default::default()
    };
    attempt.push(timing::Phase::until_now(timing::PIPELINE, started_ms));
    if let Err(message) = ran {
        r.outcome = Outcome::Error;
        r.error_message = Some(message);
    }
    attempt.outcome = Some(timing::outcome_name(r.outcome));
    r.timeline.push(attempt);
    r
}

/// Run the stories one after another in `env.root`. The session is in the manifest while it
/// runs, and each story is claimed there before its agent starts, as in parallel mode.
pub fn run(env: &mut BatchEnv, stories: &[Story], report: &mut BatchReport) -> Result<()> {
    let sid = env.session_id;
    let session_lock = SessionLock::acquire(env.worktrees_dir, sid)?;
    let manifest = ManifestFile::new(env.worktrees_dir);
    let repo = git::discover(env.root)?;
    crate::batch::parallel::exclude_worktrees_dir(&repo, env.root, env.worktrees_dir);
    manifest.update(|m| {
        // No worktrees and no integration branch: it works in the user's checkout.
        let mut session = Session::new(String::new(), Vec::new());
        session.integration_branch = None;
        m.sessions.insert(sid.to_string(), session);
        Ok(())
    })?;
    let claimer = Claimer {
        manifest: &manifest,
        dir: env.worktrees_dir,
        session_id: sid,
        branch: env.branch,
        start: git::head_commit_id(&repo)?,
    };
    run_claimed(env, &claimer, &repo, stories, report);
    manifest.update(|m| {
        m.sessions.remove(sid);
        Ok(())
    })?;
    session_lock.release_and_remove()
}

fn run_claimed(
    env: &mut BatchEnv,
    claimer: &Claimer,
    repo: &gix::Repository,
    stories: &[Story],
    report: &mut BatchReport,
) {
    let total = stories.len();
    let mut stopper = Stopper::new(env.circuit_breaker, env.max_budget_usd);
    let no_answers = Answers::new();
    for (i, story) in stories.iter().enumerate() {
        let stop = if env.story.cancel.load(Ordering::SeqCst) {
            Some("interrupted".to_string())
        } else {
            report.stopped.clone().or_else(|| stopper.reason())
        };
        if let Some(why) = stop {
            report.stopped.get_or_insert(why.clone());
            report
                .stories
                .push(StoryResult::not_run(story, Outcome::NotStarted, Some(why)));
            continue;
        }
        let result = if story.category == Category::NeedsPipeline {
            route(env.pipeline_command, &env.story, story, env.root)
        } else if let Some(skipped) = claimer.claim(repo, story) {
            // Another session has it (or closed it meanwhile): never run it twice.
            skipped
        } else {
            let _ = writeln!(
                env.progress,
                "🔧 Processing {} ({}/{}) — {} tasks remaining",
                story.story_key,
                i + 1,
                total,
                story.unchecked
            );
            let answers = env.answers.get(&story.story_key).unwrap_or(&no_answers);
            let base = gix::open(env.root)
                .ok()
                .and_then(|r| git::head_commit_id(&r).ok().flatten());
            let mut r = close_story(&env.story, story, env.root, None, answers, None);
            let progress = &mut *env.progress;
            crate::batch::gate::story_gate(
                &env.story,
                story,
                env.root,
                env.branch,
                crate::batch::gate::GatePlace::UserCheckout,
                &mut r,
                &mut |state| {
                    let _ = writeln!(progress, "   {state}");
                },
            );
            if r.outcome == Outcome::GateFailed {
                undo_red_story(env, base, &mut r);
            }
            r
        };
        let _ = writeln!(env.progress, "{}", status_line(&result, env.threshold));
        stopper.record(&result);
        let setup_error = result.setup_error.clone();
        report.stories.push(result);
        // Not authenticated: no other story can do better. Before any work, the batch ends as
        // a setup error; after some, it stops and says why.
        if let Some(e) = setup_error {
            if report.no_work_done() {
                report.setup_error = Some(e.clone());
            }
            report.stopped = Some(format!("the agent is not authenticated: {e}"));
            continue;
        }
        // Look at the checkout itself, not at what the agent said about it.
        let repo = gix::open(env.root).ok();
        let branch_now = repo
            .as_ref()
            .and_then(|r| git::current_branch(r).ok().flatten());
        let clean = repo
            .as_ref()
            .is_some_and(|r| git::is_clean(r).unwrap_or(false));
        if let Some(r) = report
            .stories
            .last()
            .filter(|r| r.outcome == Outcome::GateFailed)
        {
            // The next agent must not start on a broken tree.
            report.stopped = Some(format!(
                "{}'s gate stayed red; stopping so no other story starts on a red tree",
                r.story_key
            ));
        } else if branch_now.as_deref() != env.branch {
            report.stopped = Some(format!(
                "{} switched your checkout from {} to {}; stopping so no other story lands there",
                story.story_key,
                env.branch.unwrap_or("a detached HEAD"),
                branch_now.as_deref().unwrap_or("a detached HEAD")
            ));
        } else if !clean {
            // The next agent would commit these as its own; stop so the user can look first.
            report.stopped = Some(format!(
                "{} left uncommitted changes in your checkout (kept); look at them with git status",
                story.story_key
            ));
        }
    }
}

/// A story whose gate stayed red: keep its commits on a ref, then take them off the branch (the
/// checkout is clean, so nothing of the user's is touched). If the branch cannot be moved back,
/// the commits stay there and the report says how to undo them.
fn undo_red_story(env: &BatchEnv, base: Option<gix::ObjectId>, r: &mut StoryResult) {
    let Some(base) = base else { return };
    let Ok(repo) = gix::open(env.root) else {
        return;
    };
    let Ok(Some(head)) = git::head_commit_id(&repo) else {
        return;
    };
    if head == base {
        return;
    }
    let name = crate::batch::names::rescue_ref(env.session_id, &r.story_key, "");
    if let Err(e) = git::set_ref(&repo, &name, head) {
        r.discrepancies.push(format!(
            "its commits stay on your branch (could not keep them on {name}: {e})"
        ));
        return;
    }
    r.rescue_ref = Some(name.clone());
    match git::reset_worktree_to(&repo, base, &std::sync::atomic::AtomicBool::new(false)) {
        Ok(()) => {
            let m = r.error_message.take().unwrap_or_default();
            r.error_message = Some(format!(
                "{m}; its commits were taken off your branch and are kept on {name}"
            ));
        }
        Err(e) => r.discrepancies.push(format!(
            "its red commits are still on your branch ({e}); undo them with: git reset --keep {base}"
        )),
    }
}
