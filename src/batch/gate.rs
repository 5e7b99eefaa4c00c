//! Gates in a batch (the checks themselves are `crate::gate`): the story gate with its repair
//! round, and the integration gate that bisects the batch's merges, ejects the one that turned
//! the integrated result red, and rebuilds the integration branch without it, in memory.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::agent::{self, RunRequest};
use crate::batch::results::{Outcome, StoryResult};
use crate::batch::timing::{self, Phase};
use crate::batch::worker::{safe_name, StoryEnv};
use crate::error::{Error, Result};
use crate::gate::{run_gate, Gate, GateResult};
use crate::git::{self, ObjectId};
use crate::stories::Story;

mod integration;
pub use integration::{
    gate_integration, integration_gate, Ejected, GateCheckout, IntegrationEnv, IntegrationVerdict,
    MergeRecord,
};

/// The gates every story of a batch shares.
#[derive(Clone, Copy)]
pub struct GateEnv<'a> {
    /// Empty: gates are off (or none was found); nothing runs.
    pub gates: &'a [Gate],
    pub timeout: Duration,
    /// Repair rounds after a red story gate.
    pub repairs: u32,
    /// Set on Ctrl-C: a running gate is stopped and no further one starts.
    pub cancel: &'a AtomicBool,
    /// Told each gate's process group (recorded, so a clean-up after a crash stops it).
    pub on_spawn: Option<&'a (dyn Fn(i32) + Sync)>,
}

impl GateEnv<'_> {
    pub fn enabled(&self) -> bool {
        !self.gates.is_empty()
    }
}

/// Run every gate in `cwd`, stopping at the first red one; logs are `<logs>/<label>-<n>.log`.
pub fn run_all(env: &GateEnv, cwd: &Path, logs_dir: &Path, label: &str) -> Vec<GateResult> {
    let mut out = Vec::new();
    for (i, g) in env.gates.iter().enumerate() {
        if env.cancel.load(Ordering::SeqCst) {
            break;
        }
        let log = logs_dir.join(format!("{label}-{}.log", i + 1));
        let r = run_gate(g, cwd, &log, env.timeout, env.cancel, env.on_spawn);
        let red = !r.passed;
        out.push(r);
        if red {
            break;
        }
    }
    out
}

/// Every gate ran, and passed.
fn all_green(env: &GateEnv, runs: &[GateResult]) -> bool {
    runs.len() == env.gates.len() && runs.iter().all(|r| r.passed)
}

/// What a story stopped by Ctrl-C while its gates ran says (as its agent would); `close --resume`
/// goes by `StoryResult::interrupted`, not by this text.
const INTERRUPTED: &str = "agent failed: cancelled";

/// The first red gate of a round, as `` `cmd` (exit code 1) ``.
fn red_summary(runs: &[GateResult]) -> Option<(String, &GateResult)> {
    runs.iter()
        .find(|r| !r.passed)
        .map(|r| (format!("`{}` ({})", r.command, r.status_text()), r))
}

/// Where a story gate runs.
pub enum GatePlace<'a> {
    /// The user's own checkout (sequential mode): files a gate leaves are reported, not removed.
    UserCheckout,
    /// A worktree of the batch (parallel mode), with a way to tell whether the gates were already
    /// red where the story started: an earlier merge, not this story, broke them then.
    Worktree(&'a mut dyn FnMut() -> Result<bool>),
}

/// The story gate: after the agent's commit, run the gates in `checkout`; on red, show the
/// agent the failing command and the end of its output and let it repair, up to
/// `env.gate.repairs` times. Still red: the story is `gate_failed`.
///
/// Only work that would be merged is checked (completed or partial with a commit, checkout
/// clean). In a batch worktree, files a gate run leaves behind (untracked, not ignored) are
/// removed; in the user's checkout they are only reported. When the gates were already red at
/// the story's base, the story is not blamed: no repair, and its merge goes on to the
/// integration gate, whose bisection finds the merge at fault. `progress` is told what is
/// happening.
pub fn story_gate(
    env: &StoryEnv,
    story: &Story,
    checkout: &Path,
    branch: Option<&str>,
    mut place: GatePlace,
    result: &mut StoryResult,
    progress: &mut dyn FnMut(&str),
) {
    let owned = matches!(place, GatePlace::Worktree(_));
    story_gate_rounds(
        env,
        story,
        checkout,
        branch,
        &mut place,
        result,
        &mut *progress,
    );
    if result.gates.is_empty() {
        return;
    }
    let Ok(repo) = gix::open(checkout) else {
        return;
    };
    if owned {
        let _ = git::remove_untracked_in_owned_worktree(&repo);
    }
    let left = git::dirty_paths(&repo).unwrap_or_default();
    if !left.is_empty() {
        // The next story must not inherit them: the worktree is saved and renewed (parallel),
        // or the batch stops (sequential).
        result.verified_clean = false;
        result.discrepancies.push(format!(
            "the gates left changes in the checkout ({}); ignore build output in .gitignore",
            left.join(", ")
        ));
    }
}

fn story_gate_rounds(
    env: &StoryEnv,
    story: &Story,
    checkout: &Path,
    branch: Option<&str>,
    place: &mut GatePlace,
    result: &mut StoryResult,
    progress: &mut dyn FnMut(&str),
) {
    let owned = matches!(place, GatePlace::Worktree(_));
    let gates = env.gate;
    if !gates.enabled()
        || !matches!(result.outcome, Outcome::Completed | Outcome::Partial)
        || result.commit_hash.is_none()
    {
        return;
    }
    let key = &story.story_key;
    if !result.verified_clean {
        result.discrepancies.push(
            "the gates did not run on this story: it left uncommitted changes (the integration gate checks the merged result)"
                .to_string(),
        );
        return;
    }
    let mut round = 0u32;
    loop {
        progress(&format!("{key}: gate running"));
        let label = format!("{}.gate{round}", safe_name(key));
        let gate_start = timing::now_ms();
        let runs = run_all(&gates, checkout, env.logs_dir, &label);
        if let Some(last) = result.timeline.last_mut() {
            let mut p = Phase::until_now(timing::GATE, gate_start);
            p.detail = Some(if round == 0 {
                "story gate".to_string()
            } else {
                format!("story gate after repair round {round}")
            });
            last.push(p);
        }
        if env.cancel.load(Ordering::SeqCst) {
            // Unchecked work must not merge; `close --resume` runs the story again.
            result.gates.extend(runs);
            result.outcome = Outcome::Error;
            result.interrupted = true;
            result.error_message = Some(INTERRUPTED.to_string());
            result
                .discrepancies
                .push("interrupted while its gates ran".to_string());
            return;
        }
        if owned {
            if let Ok(repo) = gix::open(checkout) {
                let _ = git::remove_untracked_in_owned_worktree(&repo);
            }
        }
        // What the gate left (in the user's checkout) is not the repair's doing.
        let left_by_gate: std::collections::BTreeSet<String> = gix::open(checkout)
            .ok()
            .and_then(|r| git::changed_paths(&r, None).ok())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let red = red_summary(&runs)
            .map(|(s, r)| (s, r.command.clone(), r.status_text(), r.output_tail.clone()));
        result.gates.extend(runs);
        let Some((summary, command, status, tail)) = red else {
            result.gates_green_at = gix::open(checkout)
                .ok()
                .and_then(|r| git::head_commit_id(&r).ok().flatten());
            if round > 0 {
                result.discrepancies.push(format!(
                    "a gate was red on the agent's first commit; green after {} repair round(s)",
                    round
                ));
            }
            return;
        };
        if round == 0 {
            if let GatePlace::Worktree(base_is_red) = place {
                progress(&format!("{key}: gate red, checking the story's base"));
                match base_is_red() {
                    Ok(true) if !env.cancel.load(Ordering::SeqCst) => {
                        result.discrepancies.push(format!(
                            "gate {summary} is red, but it was already red where the story started (an earlier merge); the integration gate decides"
                        ));
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        result.outcome = Outcome::GateFailed;
                        result.error_message = Some(format!(
                            "gate {summary} is red, and its base could not be checked: {e}"
                        ));
                        return;
                    }
                }
                if env.cancel.load(Ordering::SeqCst) {
                    result.outcome = Outcome::Error;
                    result.interrupted = true;
                    result.error_message = Some(INTERRUPTED.to_string());
                    return;
                }
            }
        }
        if round >= gates.repairs {
            result.outcome = Outcome::GateFailed;
            let after = if round > 0 {
                format!(" after {round} repair round(s)")
            } else {
                String::new()
            };
            let last = tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            result.error_message =
                Some(format!("gate {summary} still red{after}: {}", last.trim()));
            return;
        }
        round += 1;
        result.gate_repairs = round;
        progress(&format!("{key}: agent repairing (gate red)"));
        let prompt = agent::build_repair_prompt(key, &story.path, branch, &command, &status, &tail);
        let log = env
            .logs_dir
            .join(format!("{}.repair{round}.log", safe_name(key)));
        let repair_start = timing::now_ms();
        let run = agent::run_agent(&RunRequest {
            cwd: checkout,
            prompt: &prompt,
            log_path: &log,
            config: env.agent,
            cancel: env.cancel,
            on_spawn: env.on_agent_spawn,
            start_gate: env.start_gate,
        });
        match run {
            Ok(r) => {
                if let Some(c) = r.cost_usd {
                    result.cost_usd = Some(result.cost_usd.unwrap_or(0.0) + c);
                }
                result.attempts += r.attempts.max(1);
                if let Some(why) = r.error_reason() {
                    result
                        .discrepancies
                        .push(format!("repair round {round} failed: {why}"));
                }
            }
            Err(e) => result
                .discrepancies
                .push(format!("repair round {round} could not run: {e}")),
        }
        if let Some(last) = result.timeline.last_mut() {
            let mut p = Phase::until_now(timing::REPAIR, repair_start);
            p.detail = Some(format!("repair round {round}"));
            last.push(p);
        }
        // The gates check what is committed: a repair left uncommitted is not a repair.
        let clean = gix::open(checkout)
            .ok()
            .and_then(|r| git::changed_paths(&r, None).ok())
            .is_some_and(|now| now.iter().all(|p| left_by_gate.contains(p)));
        if !clean {
            result.verified_clean = false;
            result.outcome = Outcome::GateFailed;
            result.error_message = Some(format!(
                "gate {summary} was red and repair round {round} left uncommitted changes"
            ));
            return;
        }
    }
}

/// Are the gates red at `base`? Checked in the batch worktree at `path` (whose branch holds the
/// story's work): that work is kept on `keep_ref` while the worktree shows `base`, then put
/// back. If it cannot be put back, the work stays on `keep_ref` and this is an error.
pub fn red_at_base(
    env: &GateEnv,
    repo: &gix::Repository,
    path: &Path,
    base: ObjectId,
    keep_ref: &str,
    logs: (&Path, &str),
) -> Result<bool> {
    let wt = gix::open(path).map_err(Error::git)?;
    let tip = git::head_commit_id(&wt)?.ok_or_else(|| Error::git("the worktree has no HEAD"))?;
    git::set_ref(repo, keep_ref, tip)?;
    let checked = (|| -> Result<bool> {
        git::remove_untracked_in_owned_worktree(&wt)?;
        git::reset_worktree_to(&wt, base, env.cancel)?;
        let runs = run_all(env, path, logs.0, logs.1);
        Ok(!all_green(env, &runs))
    })();
    // Whatever happened, the story's work goes back on its branch (never cut short).
    let _ = git::remove_untracked_in_owned_worktree(&wt);
    git::reset_worktree_to(&wt, tip, &AtomicBool::new(false))
        .map_err(|e| Error::git(format!("{e}; the story's work is kept on {keep_ref}")))?;
    let _ = git::delete_if_at(repo, keep_ref, tip);
    checked
}
