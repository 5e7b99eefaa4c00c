//! The orchestrator's side of collecting a job: fetch what it pushed, check its result against
//! the commits, merge the work in memory into the integration branch, and, after landing,
//! delete the refs of what landed from the shared remote.

use std::collections::BTreeMap;

use crate::batch::results::{BatchReport, Outcome, StoryResult};
use crate::batch::worker::safe_name;
use crate::error::Result;
use crate::git::{self, MergeOutcome, ObjectId};
use crate::remote::{self as wire, git as run_git};
use crate::stories::parse_story;
use crate::stories::tracker;

use super::{RemoteEnv, Running};

/// Fetch a finished job's refs, read its result, check it against the commits, and merge the
/// work into the integration branch. Returns the result and whether the story merged.
pub(super) fn collect(
    env: &RemoteEnv,
    main: &gix::Repository,
    url: &str,
    r: &Running,
    on_remote: &BTreeMap<String, String>,
    integration_ref: &str,
) -> (StoryResult, bool) {
    let sid = env.session_id;
    let key = r.story.story_key.as_str();
    let fail = |why: String| {
        (
            StoryResult::not_run(&r.story, Outcome::Error, Some(why)),
            false,
        )
    };
    let results = wire::results_ref(sid, key);
    let stories = wire::stories_ref(sid, key);
    // Fetched to the same names here: the local copy is what a rescue points at.
    let mut specs = vec![format!("+{results}:{results}")];
    if on_remote.contains_key(&stories) {
        specs.push(format!("+{stories}:{stories}"));
    }
    let uncommitted = wire::uncommitted_ref(sid, key);
    if on_remote.contains_key(&uncommitted) {
        specs.push(format!("+{uncommitted}:{uncommitted}"));
    }
    let mut args = vec!["fetch", "-q", "--no-tags", url];
    args.extend(specs.iter().map(String::as_str));
    if let Err(e) = run_git(env.root, &args) {
        return fail(format!("cannot fetch the job's result: {e}"));
    }
    let json = match run_git(
        env.root,
        &["show", &format!("{results}:{}", wire::RESULT_FILE)],
    ) {
        Ok(o) => o.stdout,
        Err(e) => {
            return fail(format!(
                "the job's result has no {}: {e}",
                wire::RESULT_FILE
            ))
        }
    };
    let mut result: StoryResult = match serde_json::from_slice(&json) {
        Ok(v) => v,
        Err(e) => {
            return fail(format!(
                "the job's {} is not a result: {e}",
                wire::RESULT_FILE
            ))
        }
    };
    // The agent's log, kept with the batch's other logs.
    let log_path = env.story.logs_dir.join(format!("{}.log", safe_name(key)));
    if let Ok(o) = run_git(
        env.root,
        &["show", &format!("{results}:{}", wire::LOG_FILE)],
    ) {
        if std::fs::write(&log_path, &o.stdout).is_ok() {
            result.log_path = Some(log_path);
        }
    }
    if on_remote.contains_key(&uncommitted) {
        // Kept after landing too: leftovers are never merged, never dropped.
        result.rescue_ref = Some(uncommitted);
    }
    let tip = git::resolve_ref(main, &stories).ok().flatten();
    verify(env, main, r, tip, &mut result);

    let merged = match (result.outcome, tip.filter(|t| *t != r.base)) {
        (Outcome::Completed | Outcome::Partial, Some(tip)) => {
            let message = format!("teleos: merge {key} (session {sid})");
            match merge(env, main, integration_ref, key, tip, &message, &mut result) {
                Ok(MergeOutcome::Conflict { paths }) => {
                    result.outcome = Outcome::Conflict;
                    result.error_message = Some(format!(
                        "merge conflict in {}; the story's commits are kept on {stories}",
                        paths.join(", ")
                    ));
                    result.rescue_ref = Some(stories.clone());
                    false
                }
                Ok(_) => true,
                Err(e) => {
                    result.outcome = Outcome::Error;
                    result.error_message =
                        Some(format!("merge failed: {e}; commits kept on {stories}"));
                    result.rescue_ref = Some(stories.clone());
                    false
                }
            }
        }
        (Outcome::Completed | Outcome::Partial, None) => true,
        (_, Some(_)) => {
            // Work of a story that failed: never merged, never dropped.
            result.rescue_ref = Some(stories.clone());
            false
        }
        _ => false,
    };
    (result, merged)
}

/// The job verified its own run; what it says is checked again against what came back: the
/// story's commits must sit on the base this batch gave it, the claimed commit must be one of
/// them, and the story file at the tip must show the ticks the result counts.
fn verify(
    env: &RemoteEnv,
    main: &gix::Repository,
    r: &Running,
    tip: Option<ObjectId>,
    result: &mut StoryResult,
) {
    let mut problems = Vec::new();
    if result.story_key != r.story.story_key {
        problems.push(format!(
            "the job's result names story '{}', not '{}'",
            result.story_key, r.story.story_key
        ));
        result.story_key = r.story.story_key.clone();
    }
    let commits = match tip {
        Some(t) if t != r.base => {
            if !git::is_ancestor(main, r.base, t).unwrap_or(false) {
                problems.push(format!(
                    "the job's commits do not start from the base {} it was given",
                    r.base
                ));
            }
            git::commits_between(main, r.base, t).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    if let Some(hash) = result.commit_hash.clone() {
        let known = git::commit_exists(main, &hash).ok().flatten();
        if !known.is_some_and(|id| commits.contains(&id)) {
            problems.push(format!(
                "claimed commit {hash} is not among the commits the job pushed"
            ));
        }
    }
    let at = tip.unwrap_or(r.base);
    let path = r.story.path.to_string_lossy().replace('\\', "/");
    if let Ok(o) = run_git(env.root, &["show", &format!("{at}:{path}")]) {
        let after = parse_story(&o.stdout_text(), env.story.parse);
        if after.checked != result.tasks_done {
            problems.push(format!(
                "the job reports {} tasks checked; the story file it pushed shows {}",
                result.tasks_done, after.checked
            ));
            result.tasks_done = after.checked;
        }
    } else if tip.is_some() {
        problems.push(format!(
            "the story file {path} is missing from the job's commits"
        ));
    }
    if !problems.is_empty() && result.outcome == Outcome::Completed {
        result.outcome = Outcome::Partial;
    }
    result.discrepancies.extend(problems);
}

/// Merge `tip` into the integration branch in memory, owning the tracker as parallel mode
/// does (git-teleos sets the story's status; the job's edits of the file are dropped).
fn merge(
    env: &RemoteEnv,
    main: &gix::Repository,
    integration_ref: &str,
    key: &str,
    tip: ObjectId,
    message: &str,
    result: &mut StoryResult,
) -> Result<MergeOutcome> {
    let mode = env.story.tracker;
    let status = tracker::status_for(result.tasks_done, result.tasks_total, result.tasks_blocked);
    let edit = tracker::status_edit(mode, key, status);
    let paths = tracker::owned_paths(mode, env.story.tracker_files);
    let owned: Vec<git::OwnedPath> = paths
        .iter()
        .map(|path| git::OwnedPath { path, edit: &edit })
        .collect();
    let (outcome, owned_report) =
        git::merge_into_branch_owning(main, integration_ref, tip, message, &owned)?;
    for path in &owned_report.dropped {
        result.discrepancies.push(format!(
            "the agent edited {path}; that change was dropped (git-teleos is the tracker's only writer), the rest of its work merged"
        ));
    }
    if !owned_report.edited.is_empty() {
        result.tracker_status = Some(status.to_string());
    }
    Ok(outcome)
}

/// After landing: the remote keeps no refs of landed stories (nor does this repository);
/// work that did not land stays on the remote and is named in the debrief.
pub(super) fn finish_refs(
    env: &RemoteEnv,
    main: &gix::Repository,
    url: &str,
    integration_ref: &str,
    landed: bool,
    report: &mut BatchReport,
) {
    let sid = env.session_id;
    let mut gone = Vec::new();
    for s in &mut report.stories {
        let key = s.story_key.as_str();
        let done = landed && matches!(s.outcome, Outcome::Completed | Outcome::Partial);
        let refs = [
            wire::base_ref(sid, key),
            wire::stories_ref(sid, key),
            wire::results_ref(sid, key),
        ];
        if done {
            gone.extend(refs.iter().cloned());
            for name in &refs {
                if let Ok(Some(id)) = git::resolve_ref(main, name) {
                    let _ = git::delete_if_at(main, name, id);
                }
            }
        } else if s.outcome != Outcome::NotStarted && s.outcome != Outcome::Routed {
            report.notes.push(format!(
                "{key} did not land: its result and any commits stay on {url} under refs/teleos/{sid}/ (stories/{key}, results/{key})"
            ));
        }
    }
    if !gone.is_empty() {
        let mut args: Vec<&str> = vec!["push", "-q", url, "--delete"];
        args.extend(gone.iter().map(String::as_str));
        if let Err(e) = run_git(env.root, &args) {
            report.notes.push(format!(
                "could not delete the landed stories' refs from {url}: {e}"
            ));
        }
    }
    if landed {
        if let Ok(Some(id)) = git::resolve_ref(main, integration_ref) {
            let _ = git::delete_if_at(main, integration_ref, id);
        }
    }
}
