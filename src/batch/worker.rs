//! One story: build the prompt, run the agent, read its result, and verify every claim against
//! the repository (README, "Verify, don't trust"). Used by sequential and parallel mode alike.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::agent::{self, AgentConfig, RunOutcome, RunRequest, WorkerResult, WorkerStatus};
use crate::batch::results::{BlockerQuestion, Outcome, StoryResult};
use crate::batch::timing::{self, Attempt, Phase};
use crate::git;
use crate::stories::tracker::TrackerMode;
use crate::stories::{parse_story, ParseOptions, Story};

/// How a discrepancy about uncommitted leftovers starts.
pub const UNCOMMITTED: &str = "the agent left uncommitted changes";

/// What every story of a batch shares.
#[derive(Clone, Copy)]
pub struct StoryEnv<'a> {
    pub agent: &'a AgentConfig,
    pub parse: &'a ParseOptions,
    /// Sprint-artifacts folder relative to the work tree root.
    pub artifacts_dir: &'a Path,
    pub instructions: Option<&'a str>,
    pub date: &'a str,
    pub logs_dir: &'a Path,
    pub retries: u32,
    pub cancel: &'a AtomicBool,
    pub worktree_mode: bool,
    /// Who writes `sprint-status.yaml` in this batch.
    pub tracker: crate::stories::tracker::TrackerMode,
    /// The tracker files, relative to the work tree root (empty: none found).
    pub tracker_files: &'a [PathBuf],
    /// Told each agent's process group as it starts (recorded for clean-up after a crash).
    pub on_agent_spawn: Option<&'a (dyn Fn(i32) + Sync)>,
    /// The project's checks, run on each story's commits (`batch::gate`).
    pub gate: crate::batch::gate::GateEnv<'a>,
    /// When agents may start (parallel mode's governor).
    pub start_gate: Option<&'a dyn agent::StartGate>,
}

/// How many extra times a story turned away by a rate limit (its runner's own retries spent)
/// is tried again. These tries never count against `retries`.
const RATE_LIMITED_ROUNDS: u32 = 2;

/// Answers the user gave to a story's earlier blocker questions.
pub type Answers = Vec<BlockerQuestion>;

/// Run one story in `checkout` (the user's work tree in sequential mode, a linked worktree in
/// parallel mode) and return its verified result. Never fails: every failure is an outcome.
/// `watch`, when the checkout is watched, lets the check for leftovers judge only what changed.
pub fn close_story(
    env: &StoryEnv,
    story: &Story,
    checkout: &Path,
    branch: Option<&str>,
    answers: &Answers,
    mut watch: Option<&mut git::WorktreeWatch>,
) -> StoryResult {
    let started = Instant::now();
    let mut result = StoryResult::not_run(story, Outcome::Error, None);
    let base = match open_head(checkout) {
        Ok(b) => b,
        Err(e) => {
            result.error_message = Some(format!("cannot read the checkout's HEAD: {e}"));
            return result;
        }
    };
    let prompt = build_prompt(env, story, checkout, branch, answers);
    let mut cost = 0.0;
    let mut any_cost = false;
    let mut attempt: u32 = 0;
    // Tries that count against `retries`: not those a rate limit turned away.
    let mut counted = 0;
    let mut rate_limited_rounds = 0;
    loop {
        attempt += 1;
        let log_path = env.logs_dir.join(if attempt == 1 {
            format!("{}.log", safe_name(&story.story_key))
        } else {
            format!("{}.retry{}.log", safe_name(&story.story_key), attempt - 1)
        });
        let req = RunRequest {
            cwd: checkout,
            prompt: &prompt,
            log_path: &log_path,
            config: env.agent,
            cancel: env.cancel,
            on_spawn: env.on_agent_spawn,
            start_gate: env.start_gate,
        };
        result.log_path = Some(log_path.clone());
        let agent_start = timing::now_ms();
        let run = agent::run_agent(&req);
        let mut record = Attempt {
            attempt,
            log_path: Some(log_path.clone()),
            ..Attempt::default()
        };
        record.push(Phase::until_now(timing::AGENT, agent_start));
        if let Ok(r) = &run {
            if let Some(c) = r.cost_usd {
                cost += c;
                any_cost = true;
            }
            record.cost_usd = r.cost_usd;
            result.attempts += r.attempts.max(1);
            result.rate_limit_wait_secs += r.rate_limit_wait.as_secs_f64();
            for &(start, end) in &r.waits {
                record.push(Phase {
                    phase: timing::RATE_LIMIT_WAIT.to_string(),
                    start,
                    end,
                    detail: None,
                });
            }
            result.rate_limited = r.rate_limited;
            result.setup_error = r.setup_error.clone();
            for w in &r.warnings {
                if !result.warnings.contains(w) {
                    result.warnings.push(w.clone());
                }
            }
        } else {
            result.attempts += 1;
            result.rate_limited = false;
        }
        result = verify(
            env,
            story,
            checkout,
            base,
            run,
            result,
            watch.as_deref_mut(),
        );
        record.outcome = Some(timing::outcome_name(result.outcome));
        result.timeline.push(record);
        if result.rate_limited && result.outcome == Outcome::Error {
            rate_limited_rounds += 1;
        } else {
            counted += 1;
        }
        let retryable = result.outcome == Outcome::Error
            && result.setup_error.is_none()
            && counted <= env.retries
            && rate_limited_rounds <= RATE_LIMITED_ROUNDS
            && !env.cancel.load(Ordering::SeqCst)
            && result.commit_hash.is_none()
            && is_clean(checkout)
            && head_of(checkout) == Some(base);
        if !retryable {
            break;
        }
    }
    if any_cost {
        result.cost_usd = Some(cost);
    }
    result.duration_secs = started.elapsed().as_secs_f64();
    result
}

/// File names for logs: keys are file stems, but keep them to one path component.
pub(crate) fn safe_name(key: &str) -> String {
    key.chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect()
}

fn build_prompt(
    env: &StoryEnv,
    story: &Story,
    checkout: &Path,
    branch: Option<&str>,
    answers: &Answers,
) -> String {
    let tracker_file = tracker_file_for(env, story, checkout);
    let input = agent::PromptInput {
        story_key: &story.story_key,
        story_file: &story.path,
        sprint_artifacts: env.artifacts_dir,
        unchecked_count: story.unchecked,
        date: env.date.to_string(),
        human_patterns: &env.parse.human_patterns,
        instructions: env.instructions.map(str::to_string),
        answers: answers
            .iter()
            .filter_map(|q| {
                q.answer
                    .as_ref()
                    .map(|a| (q.task.clone(), q.question.clone(), a.clone()))
            })
            .collect(),
        worktree_mode: env.worktree_mode,
        branch: branch.map(str::to_string),
        tracker: env.tracker,
        tracker_file: &tracker_file,
    };
    agent::build_prompt(&input)
}

/// The tracker that holds the story's key (trackers may be split over folders), else the first
/// one, else where BMAD would put it. Read from the checkout the agent works in.
fn tracker_file_for(env: &StoryEnv, story: &Story, checkout: &Path) -> PathBuf {
    let holds_key = |rel: &&PathBuf| {
        std::fs::read_to_string(checkout.join(rel)).is_ok_and(|text| {
            let statuses = crate::stories::sprint_status::read_statuses(&text);
            let keys: Vec<&String> = statuses.keys().collect();
            let index = crate::stories::deps::KeyIndex::new(&keys);
            crate::stories::sprint_status::sprint_key_for(&statuses, &index, &story.story_key)
                .is_some()
        })
    };
    let found = if env.tracker_files.len() > 1 {
        env.tracker_files.iter().find(holds_key)
    } else {
        None
    };
    found
        .or(env.tracker_files.first())
        .cloned()
        .unwrap_or_else(|| env.artifacts_dir.join("sprint-status.yaml"))
}

/// Why a checkout's `HEAD` commit could not be read.
#[derive(Debug, thiserror::Error)]
enum HeadError {
    #[error(transparent)]
    Open(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Read(#[from] crate::error::Error),
    #[error("the branch has no commits yet")]
    NoCommits,
}

fn open_head(checkout: &Path) -> Result<gix::ObjectId, HeadError> {
    let repo = gix::open(checkout).map_err(|e| HeadError::Open(Box::new(e)))?;
    git::head_commit_id(&repo)?.ok_or(HeadError::NoCommits)
}

fn head_of(checkout: &Path) -> Option<gix::ObjectId> {
    open_head(checkout).ok()
}

fn is_clean(checkout: &Path) -> bool {
    gix::open(checkout)
        .ok()
        .and_then(|r| git::is_clean(&r).ok())
        .unwrap_or(false)
}

/// Turn the agent's run into a verified result: recount the boxes, check the commits.
fn verify(
    env: &StoryEnv,
    story: &Story,
    checkout: &Path,
    base: gix::ObjectId,
    run: Result<RunOutcome, agent::AgentError>,
    mut result: StoryResult,
    watch: Option<&mut git::WorktreeWatch>,
) -> StoryResult {
    result.discrepancies.clear();
    result.verified_clean = false;
    result.outcome = Outcome::Error;
    result.error_message = None;

    // What the repository says, whatever the agent says.
    let repo = match gix::open(checkout) {
        Ok(r) => r,
        Err(e) => {
            result.error_message = Some(format!("cannot open the checkout after the run: {e}"));
            return result;
        }
    };
    let head = git::head_commit_id(&repo).ok().flatten();
    let new_commits = match head {
        Some(h) if h != base => git::commits_between(&repo, base, h).unwrap_or_default(),
        _ => Vec::new(),
    };
    let dirty = match watch {
        Some(w) => w.dirty_paths(&repo),
        None => git::dirty_paths(&repo),
    };
    result.verified_clean = matches!(&dirty, Ok(d) if d.is_empty());
    // Unreadable counts as "look again later", never as clean.
    let dirty = dirty.unwrap_or_default();
    let after = std::fs::read_to_string(checkout.join(&story.path))
        .ok()
        .map(|text| parse_story(&text, env.parse));
    if let Some(after) = &after {
        result.tasks_total = after.total;
        result.tasks_done = after.checked;
    }
    result.commit_hash = new_commits.first().map(|c| c.to_string());
    // Sequential mode with the tracker left alone: the agent was told not to edit it. Its commit
    // is the user's branch already, so an edit is reported, not undone. (Parallel mode drops
    // such an edit when merging.)
    if env.tracker == TrackerMode::Off && !env.worktree_mode {
        if let Some(h) = head.filter(|h| *h != base) {
            let changed = git::files_changed(&repo, base, h).unwrap_or_default();
            for t in env.tracker_files {
                let t = t.to_string_lossy().replace('\\', "/");
                if changed.contains(&t) {
                    result.discrepancies.push(format!(
                        "the agent edited {t} although the tracker was to be left alone (--no-tracker)"
                    ));
                }
            }
        }
    }
    if !dirty.is_empty() {
        let shown: Vec<&str> = dirty.iter().take(5).map(String::as_str).collect();
        // In this checkout they stay where they are; a worktree's are saved on a ref by the
        // parallel batch, which adds where.
        result.discrepancies.push(format!(
            "{UNCOMMITTED} ({}{}){}",
            shown.join(", "),
            if dirty.len() > 5 { ", …" } else { "" },
            if env.worktree_mode {
                ""
            } else {
                "; they were kept as they are in your checkout"
            }
        ));
    }
    if after.is_none() {
        result.discrepancies.push(format!(
            "the story file {} is gone after the run",
            story.path.display()
        ));
    }

    // The agent's side: did it run, and what does it claim?
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            result.error_message = Some(e.to_string());
            return result;
        }
    };
    if let Some(reason) = run.error_reason() {
        result.interrupted = run.cancelled;
        result.error_message = Some(format!("agent failed: {reason}"));
        return result;
    }
    let text = run.final_text.clone().unwrap_or_default();
    let claimed: WorkerResult = match agent::extract_result(&text) {
        Ok(r) => r,
        Err(e) => {
            result.error_message = Some(format!("no usable result from the agent: {e}"));
            return result;
        }
    };
    if claimed.story_key != story.story_key {
        result.discrepancies.push(format!(
            "the result names story '{}', not '{}'",
            claimed.story_key, story.story_key
        ));
    }
    result.blocker_questions = claimed
        .blocker_questions
        .iter()
        .map(|q| BlockerQuestion {
            task: q.task.clone(),
            question: q.question.clone(),
            answer: None,
        })
        .collect();
    // Human tasks: what the file says, plus any the agent found that the patterns missed.
    let mut human: Vec<String> = after
        .as_ref()
        .map(|a| a.human_validation_tasks.clone())
        .unwrap_or_else(|| story.human_validation_tasks.clone());
    for t in &claimed.human_validation_tasks {
        if !human.iter().any(|h| h == t) {
            human.push(t.clone());
        }
    }
    result.human_validation_tasks = human;
    result.review_summary = serde_json::to_value(&claimed.review_summary).ok();

    let mut outcome = match claimed.status {
        WorkerStatus::Completed => Outcome::Completed,
        WorkerStatus::Partial => Outcome::Partial,
        WorkerStatus::Error => Outcome::Error,
    };
    if outcome == Outcome::Error {
        result.error_message = Some(if claimed.errors.is_empty() {
            "the agent reported an error".to_string()
        } else {
            claimed.errors.join("; ")
        });
    }

    // Claimed commit: it must be one of the commits this run made.
    if let Some(hash) = claimed
        .commit_hash
        .as_deref()
        .filter(|h| !h.trim().is_empty())
    {
        match git::commit_exists(&repo, hash.trim()) {
            Ok(Some(id)) if new_commits.contains(&id) => {}
            Ok(Some(_)) => result.discrepancies.push(format!(
                "claimed commit {hash} was not made by this run on this branch"
            )),
            _ => result
                .discrepancies
                .push(format!("claimed commit {hash} does not exist")),
        }
    }

    if let Some(after) = &after {
        let claimed_done =
            (claimed.tasks_already_done + claimed.tasks_completed_by_closer) as usize;
        if claimed_done != after.checked {
            result.discrepancies.push(format!(
                "the agent claims {claimed_done} of {} tasks checked; the file shows {}",
                after.total, after.checked
            ));
        }
        if after.checked < story.checked {
            result.discrepancies.push(format!(
                "{} checked task(s) were unchecked by the agent",
                story.checked - after.checked
            ));
        }
        let automatable_left = after
            .tasks
            .iter()
            .filter(|t| t.top_level && !t.checked && !t.human)
            .count();
        result.tasks_blocked =
            (claimed.tasks_blocked as usize).max(if outcome == Outcome::Completed {
                0
            } else {
                automatable_left
            });
        if outcome == Outcome::Completed && automatable_left > 0 {
            result.discrepancies.push(format!(
                "claimed completed, but {automatable_left} automatable task(s) are still unchecked"
            ));
            outcome = Outcome::Partial;
            result.tasks_blocked = automatable_left;
        }
        let made_progress = after.checked > story.checked;
        if made_progress && new_commits.is_empty() && outcome != Outcome::Error {
            result
                .discrepancies
                .push("tasks were ticked but nothing was committed".to_string());
            outcome = Outcome::Partial;
        }
        if outcome == Outcome::Completed
            && claimed.tasks_completed_by_closer > 0
            && new_commits.is_empty()
        {
            result.discrepancies.push(format!(
                "claimed {} task(s) done without a commit",
                claimed.tasks_completed_by_closer
            ));
            outcome = Outcome::Partial;
        }
    } else if outcome != Outcome::Error {
        outcome = Outcome::Partial;
    }
    if !dirty.is_empty() && outcome == Outcome::Completed {
        outcome = Outcome::Partial;
    }
    result.outcome = outcome;
    result
}

/// Where a batch's logs go: inside the git dir, never in a work tree.
pub fn logs_dir(common_dir: &Path, session_id: &str) -> PathBuf {
    crate::batch::results::results_dir(common_dir)
        .join("logs")
        .join(session_id)
}
