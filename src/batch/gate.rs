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
use crate::git::{self, MergeOutcome, ObjectId};
use crate::stories::{tracker, Story};

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

/// One merge the batch made into the integration branch.
#[derive(Debug, Clone)]
pub struct MergeRecord {
    pub key: String,
    /// Integration before and after this merge.
    pub before: ObjectId,
    pub after: ObjectId,
    /// What was merged (the story's branch tip).
    pub story_tip: ObjectId,
    /// Every gate passed on `story_tip` (its story gate).
    pub tip_green: bool,
    /// The status this merge wrote for the story in the sprint tracker, if it wrote one.
    pub tracker_status: Option<&'static str>,
}

/// A story taken out of the integration.
#[derive(Debug, Clone)]
pub struct Ejected {
    pub key: String,
    pub story_tip: ObjectId,
    pub why: String,
}

/// What the integration gate decided.
#[derive(Debug, Default)]
pub struct IntegrationVerdict {
    /// Where the integration branch should point now (`None`: leave it).
    pub new_tip: Option<ObjectId>,
    /// Green: it may land.
    pub green: bool,
    pub ejected: Vec<Ejected>,
    pub runs: Vec<GateResult>,
    pub notes: Vec<String>,
}

/// Where the integration gate runs: a clean worktree whose branch it may move.
pub struct GateCheckout<'a> {
    pub repo: &'a gix::Repository,
    pub path: &'a Path,
    pub logs_dir: &'a Path,
}

impl GateCheckout<'_> {
    /// Check `commit` out here and run the gates; `Err` when it could not be checked out.
    fn check(
        &self,
        env: &GateEnv,
        commit: ObjectId,
        n: usize,
        runs: &mut Vec<GateResult>,
    ) -> Result<bool> {
        let wt = gix::open(self.path).map_err(Error::git)?;
        // What an earlier run left behind must not block moving to the next candidate.
        git::remove_untracked_in_owned_worktree(&wt)?;
        git::reset_worktree_to(&wt, commit, env.cancel)?;
        let r = run_all(
            env,
            self.path,
            self.logs_dir,
            &format!("integration.gate{n}"),
        );
        if env.cancel.load(Ordering::SeqCst) {
            return Err(Error::git("interrupted"));
        }
        let green = all_green(env, &r);
        runs.extend(r);
        Ok(green)
    }
}

/// The integration gate: run the gates on the integration result (`merges`' last `after`).
/// Red: bisect over the merges (the gate runs on each candidate commit, all made in memory),
/// eject the first merge that turns it red, rebuild the rest on top of the last green commit
/// by replaying each later merge's own change, and check again, until green.
pub fn integration_gate(
    env: &GateEnv,
    at: &GateCheckout,
    tracker_files: &[String],
    start: ObjectId,
    merges: &[MergeRecord],
    message: &dyn Fn(&MergeRecord, &[Ejected]) -> String,
    progress: &mut dyn FnMut(&str),
) -> Result<IntegrationVerdict> {
    let mut v = IntegrationVerdict::default();
    let Some(last) = merges.last() else {
        v.green = true;
        return Ok(v);
    };
    let mut n = 0usize;
    let mut check = |commit: ObjectId, runs: &mut Vec<GateResult>| {
        n += 1;
        at.check(env, commit, n, runs)
    };
    // A fast-forward onto a commit whose story gate was green (one worktree, or one story)
    // needs no second run.
    if last.tip_green && last.after == last.story_tip {
        v.green = true;
        return Ok(v);
    }
    progress("integration: gate running");
    if check(last.after, &mut v.runs)? {
        v.green = true;
        return Ok(v);
    }
    progress("integration: gate red, checking where the batch started");
    if !check(start, &mut v.runs)? {
        v.notes.push(
            "the integration gate was already red where the batch started: no story can be blamed, nothing landed"
                .to_string(),
        );
        return Ok(v);
    }
    // chain[i] is the integration after i merges (chain[0] = start, known green).
    let mut chain: Vec<ObjectId> = std::iter::once(start)
        .chain(merges.iter().map(|m| m.after))
        .collect();
    let mut records: Vec<MergeRecord> = merges.to_vec();
    let mut lo = 0usize;
    loop {
        // gate(chain[lo]) green, gate(chain.last) red.
        let mut hi = chain.len() - 1;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            progress(&format!("integration: bisecting ({} merges left)", hi - lo));
            if check(chain[mid], &mut v.runs)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let culprit = records[hi - 1].clone();
        let failing = v
            .runs
            .iter()
            .rev()
            .find(|r| !r.passed)
            .map(|r| format!("`{}` ({})", r.command, r.status_text()))
            .unwrap_or_default();
        v.ejected.push(Ejected {
            key: culprit.key.clone(),
            story_tip: culprit.story_tip,
            why: format!("the integration gate {failing} turned red when its merge was added"),
        });
        // Rebuild: everything before the culprit stays; every later merge is replayed.
        let mut cur = chain[hi - 1];
        let mut rebuilt_chain = chain[..hi].to_vec();
        let mut rebuilt_records = records[..hi - 1].to_vec();
        for r in &records[hi..] {
            let contains_ejected = v
                .ejected
                .iter()
                .map(|e| git::is_ancestor(at.repo, e.story_tip, r.story_tip))
                .collect::<Result<Vec<bool>>>()?
                .into_iter()
                .any(|b| b);
            // A story that started after an ejected one merged carries it in its history: only
            // its own change is kept, on a single-parent commit.
            let parents: Vec<ObjectId> = if contains_ejected {
                vec![cur]
            } else {
                vec![cur, r.story_tip]
            };
            // The tracker is the integration's own file: the rebuild keeps its version and
            // sets this story's status again, as the merge did.
            let edit = |bytes: &[u8]| -> Option<Vec<u8>> {
                let text = std::str::from_utf8(bytes).ok()?;
                let (new, _) = tracker::set_story_status(text, &r.key, r.tracker_status?).ok()?;
                Some(new.into_bytes())
            };
            let owned: Vec<git::OwnedPath> = tracker_files
                .iter()
                .map(|path| git::OwnedPath { path, edit: &edit })
                .collect();
            match git::replay_in_memory(
                at.repo,
                cur,
                r.before,
                r.after,
                &parents,
                &message(r, &v.ejected),
                &owned,
            )? {
                MergeOutcome::Merged(id) | MergeOutcome::FastForward(id) => {
                    rebuilt_records.push(MergeRecord {
                        before: cur,
                        after: id,
                        ..r.clone()
                    });
                    rebuilt_chain.push(id);
                    cur = id;
                }
                MergeOutcome::UpToDate => {}
                MergeOutcome::Conflict { paths } => v.ejected.push(Ejected {
                    key: r.key.clone(),
                    story_tip: r.story_tip,
                    why: format!(
                        "its change could not be replayed without {} ({})",
                        culprit.key,
                        paths.join(", ")
                    ),
                }),
            }
        }
        chain = rebuilt_chain;
        records = rebuilt_records;
        v.new_tip = Some(cur);
        lo = hi - 1;
        if chain.len() - 1 == lo {
            // Nothing after the culprit: the last green commit is the result.
            v.green = true;
            return Ok(v);
        }
        progress("integration: gate running on the rebuilt result");
        if check(cur, &mut v.runs)? {
            v.green = true;
            return Ok(v);
        }
    }
}

/// Everything the integration gate of a parallel batch needs.
pub struct IntegrationEnv<'a> {
    pub gate: &'a GateEnv<'a>,
    pub main: &'a gix::Repository,
    /// The batch's worktrees; the gate runs in the first one still there and clean.
    pub worktrees: Vec<&'a Path>,
    pub logs_dir: &'a Path,
    pub session_id: &'a str,
    pub integration_ref: &'a str,
    /// The integration branch's tip before this batch's first merge.
    pub start: ObjectId,
    /// Sprint-tracker files git-teleos writes in the integration ('/'-separated paths).
    pub tracker_files: Vec<String>,
}

/// Run the integration gate, move the integration branch to the green rebuild, mark ejected
/// stories `integration_failed` (their work on a ref). Returns whether the integration may land.
pub fn gate_integration(
    ie: &IntegrationEnv,
    merges: &[MergeRecord],
    progress: &dyn Fn(&str),
    report: &mut crate::batch::results::BatchReport,
) -> bool {
    if !ie.gate.enabled() || merges.is_empty() {
        return true;
    }
    let sid = ie.session_id;
    let Some(path) = ie.worktrees.iter().copied().find(|p| {
        gix::open(p)
            .ok()
            .is_some_and(|r| git::is_clean(&r).unwrap_or(false))
    }) else {
        report.notes.push(
            "the integration gate could not run: no clean worktree was left to run it in".into(),
        );
        return false;
    };
    let old_tip = match git::resolve_ref(ie.main, ie.integration_ref) {
        Ok(Some(t)) => t,
        _ => {
            report.notes.push(format!(
                "the integration gate could not run: {} is gone",
                ie.integration_ref
            ));
            return false;
        }
    };
    let at = GateCheckout {
        repo: ie.main,
        path,
        logs_dir: ie.logs_dir,
    };
    let message = |r: &MergeRecord, ejected: &[Ejected]| {
        let keys: Vec<&str> = ejected.iter().map(|e| e.key.as_str()).collect();
        format!(
            "teleos: merge {} (session {sid}, rebuilt without {})",
            r.key,
            keys.join(", ")
        )
    };
    let verdict = integration_gate(
        ie.gate,
        &at,
        &ie.tracker_files,
        ie.start,
        merges,
        &message,
        &mut |s| progress(s),
    );
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) => {
            report
                .notes
                .push(format!("the integration gate could not run: {e}"));
            park_at(path, old_tip);
            return false;
        }
    };
    report.integration_gates = verdict.runs.clone();
    report.notes.extend(verdict.notes.iter().cloned());
    let mut green = verdict.green;
    if let Some(new_tip) = verdict.new_tip.filter(|t| *t != old_tip) {
        // The batch's integration as it was merged stays reachable, whatever happens next.
        let before = crate::batch::names::session_ref(sid, "integration-before-gate");
        let moved = git::set_ref(ie.main, &before, old_tip).and_then(|_| {
            git::update_ref_cas(
                ie.main,
                ie.integration_ref,
                new_tip,
                Some(old_tip),
                "git-teleos: integration rebuilt without the stories that turned the gate red",
            )
        });
        match moved {
            Ok(git::CasOutcome::Updated) => report.notes.push(format!(
                "the integration was rebuilt without {}; as merged before, it is kept on {before}",
                verdict
                    .ejected
                    .iter()
                    .map(|e| e.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Ok(_) => {
                report.notes.push(format!(
                    "{} moved while the integration gate ran: not landed",
                    ie.integration_ref
                ));
                green = false;
            }
            Err(e) => {
                report
                    .notes
                    .push(format!("could not rebuild the integration: {e}"));
                green = false;
            }
        }
    }
    let last_red = verdict.runs.iter().rev().find(|r| !r.passed).cloned();
    for e in &verdict.ejected {
        let name = crate::batch::names::rescue_ref(sid, &e.key, "");
        let kept = git::set_ref(ie.main, &name, e.story_tip).is_ok();
        if let Some(s) = report.stories.iter_mut().find(|s| s.story_key == e.key) {
            s.outcome = Outcome::IntegrationFailed;
            let last_line = last_red
                .as_ref()
                .and_then(|r| r.output_tail.lines().rev().find(|l| !l.trim().is_empty()))
                .map(|l| format!(": {}", l.trim()))
                .unwrap_or_default();
            s.error_message = Some(if kept {
                format!("{}{last_line}; its work is kept on {name}", e.why)
            } else {
                format!("{}{last_line}", e.why)
            });
            if kept {
                s.rescue_ref = Some(name.clone());
            }
            s.gates.extend(last_red.iter().cloned());
        }
    }
    // Leave the gate's worktree where the integration now is, so it can be parked or removed.
    let final_tip = git::resolve_ref(ie.main, ie.integration_ref)
        .ok()
        .flatten()
        .unwrap_or(old_tip);
    park_at(path, final_tip);
    green
}

fn park_at(path: &Path, tip: ObjectId) {
    if let Ok(wt) = gix::open(path) {
        let _ = git::remove_untracked_in_owned_worktree(&wt);
        let _ = git::reset_worktree_to(&wt, tip, &AtomicBool::new(false));
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
