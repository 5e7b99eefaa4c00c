//! The integration gate of a parallel batch: run the gates on the integrated result; when it is
//! red, bisect the batch's merges, eject the one that turned it red, rebuild the integration
//! branch without it in memory, and check again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{all_green, run_all, GateEnv};
use crate::batch::results::Outcome;
use crate::error::{Error, Result};
use crate::gate::GateResult;
use crate::git::{self, MergeOutcome, ObjectId};
use crate::stories::tracker;

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
