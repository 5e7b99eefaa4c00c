//! The command runner (`teleos.runner=command`, README "More than one machine"): each ready
//! story becomes a job started by `teleos.runnerCommand`, which runs `git teleos run-story`
//! wherever the command puts it. The data channel is the shared remote: the base goes out as
//! `refs/teleos/<sid>/base/<key>`, the job's commits and result come back under
//! `refs/teleos/<sid>/{stories,results}/<key>`, found with `git ls-remote` and back-off
//! polling. This process alone merges (in memory, into `integration-<sid>`, as parallel mode
//! does) and lands: no worktree is ever made, the user's checkout is only touched by landing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::batch::parallel::{self, integration_branch};
use crate::batch::results::{BatchReport, Outcome, StoryResult};
use crate::batch::worker::{safe_name, StoryEnv};
use crate::error::{Error, Result};
use crate::git::{self, MergeOutcome, ObjectId};
use crate::process::{Cmd, ProcessError};
use crate::remote::{self as wire, git as run_git};
use crate::stories::tracker;
use crate::stories::{parse_story, Story};

/// The longest pause between two looks at the remote.
const MAX_POLL: Duration = Duration::from_secs(5);
const FIRST_POLL: Duration = Duration::from_millis(200);

pub struct RemoteEnv<'a> {
    pub story: StoryEnv<'a>,
    /// The user's work tree root (its repository holds the integration branch).
    pub root: &'a Path,
    pub session_id: &'a str,
    /// Jobs at once.
    pub slots: usize,
    /// `teleos.remote`: a remote name or a URL.
    pub remote: &'a str,
    /// `teleos.runnerCommand`, not yet split.
    pub command: &'a str,
    /// How long a job may stay silent before its story is an error.
    pub timeout: Duration,
    pub land: bool,
    pub progress: &'a (dyn Fn(&str) + Sync),
}

/// The job command for one story: the template split like a shell would, each placeholder
/// replaced inside its own argument (a value never becomes two arguments, nor a shell word).
pub fn job_argv(template: &str, values: &[(&str, &str)]) -> Result<Vec<String>> {
    let words = shlex::split(template)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| Error::Config {
            key: "teleos.runnerCommand".into(),
            value: template.into(),
            reason: "not a command line (unbalanced quotes, or empty)".into(),
        })?;
    Ok(words
        .into_iter()
        .map(|w| {
            values
                .iter()
                .fold(w, |w, (name, v)| w.replace(&format!("{{{name}}}"), v))
        })
        .collect())
}

/// The URL jobs use: `teleos.remote` as given when it is one, else the named remote's.
fn remote_url(root: &Path, remote: &str) -> Result<String> {
    if remote.contains("://") || remote.starts_with('/') || remote.contains('@') {
        return Ok(remote.to_string());
    }
    run_git(root, &["remote", "get-url", remote])
        .map(|o| o.stdout_text().trim().to_string())
        .map_err(|_| {
            Error::usage_hint(
                format!("no remote '{remote}' for the jobs to fetch from"),
                "set teleos.remote to a remote name or URL every job can reach",
            )
        })
}

struct Running {
    story: Story,
    base: ObjectId,
    started: Instant,
    /// How the job's command ended, once it has (a command may return at once).
    exited: Option<std::result::Result<(), String>>,
}

pub fn run(env: &RemoteEnv, stories: Vec<Story>, report: &mut BatchReport) -> Result<()> {
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
            "the current branch has no commits yet",
            "commit the stories first (git add -A && git commit)",
        )
    })?;
    // Checked before anything is pushed: a template that cannot run fails the batch cleanly.
    job_argv(env.command, &[])?;
    let url = remote_url(env.root, env.remote)?;
    let integration = integration_branch(sid);
    let integration_ref = format!("refs/heads/{integration}");
    if git::resolve_ref(&main, &integration_ref)?.is_none() {
        git::create_branch(&main, &integration, start)?;
    }
    report.branch = start_branch.clone();

    let selected: BTreeSet<String> = stories.iter().map(|s| s.story_key.clone()).collect();
    let mut pending = stories;
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut merged: BTreeSet<String> = BTreeSet::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let (tx, rx) = mpsc::channel::<(String, std::result::Result<(), String>)>();
    let cancel = env.story.cancel;
    thread::scope(|scope| -> Result<()> {
        let mut delay = FIRST_POLL;
        loop {
            if cancel.load(Ordering::SeqCst) {
                break;
            }
            // A story whose dependency failed cannot start: it would miss that work.
            pending.retain(|s| {
                let Some(dep) = s.depends_on.iter().find(|d| failed.contains(*d)) else {
                    return true;
                };
                let why = format!("its dependency {dep} did not land");
                report
                    .stories
                    .push(StoryResult::not_run(s, Outcome::NotStarted, Some(why)));
                failed.insert(s.story_key.clone());
                false
            });
            while running.len() < env.slots {
                let ready = pending.iter().position(|s| {
                    s.depends_on
                        .iter()
                        .filter(|d| selected.contains(*d))
                        .all(|d| merged.contains(d))
                });
                let Some(i) = ready else { break };
                let story = pending.remove(i);
                // Dependents start on the integration tip, which holds what they depend on.
                let base = git::resolve_ref(&main, &integration_ref)?.unwrap_or(start);
                match dispatch(env, &url, &story, base, scope, &tx) {
                    Ok(()) => {
                        (env.progress)(&format!("{}: job started", story.story_key));
                        running.insert(
                            story.story_key.clone(),
                            Running {
                                story,
                                base,
                                started: Instant::now(),
                                exited: None,
                            },
                        );
                    }
                    Err(e) => {
                        let why = format!("the job could not be started: {e}");
                        failed.insert(story.story_key.clone());
                        report.stories.push(StoryResult::not_run(
                            &story,
                            Outcome::Error,
                            Some(why),
                        ));
                    }
                }
            }
            if running.is_empty() {
                break;
            }
            while let Ok((key, how)) = rx.try_recv() {
                if let Some(r) = running.get_mut(&key) {
                    r.exited = Some(how);
                }
            }
            let mut progressed = false;
            let on_remote: BTreeMap<String, String> =
                wire::ls_remote(env.root, &url, &format!("{}*", wire::session_prefix(sid)))
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
            let keys: Vec<String> = running.keys().cloned().collect();
            for key in keys {
                let has_result = on_remote.contains_key(&wire::results_ref(sid, &key));
                let r = &running[&key];
                let reason = if has_result {
                    None
                } else if let Some(Err(why)) = &r.exited {
                    Some(format!("the job failed without a result: {why}"))
                } else if r.started.elapsed() > env.timeout {
                    Some(format!(
                        "the job reported nothing within {} s",
                        env.timeout.as_secs()
                    ))
                } else {
                    continue;
                };
                let Some(r) = running.remove(&key) else {
                    continue;
                };
                progressed = true;
                let (result, ok) = match reason {
                    Some(why) => (
                        StoryResult::not_run(&r.story, Outcome::Error, Some(why)),
                        false,
                    ),
                    None => collect(env, &main, &url, &r, &on_remote, &integration_ref),
                };
                (env.progress)(&crate::batch::sequential::status_line(&result, 0.0));
                if ok {
                    merged.insert(key);
                } else {
                    failed.insert(key);
                }
                report.stories.push(result);
            }
            if progressed {
                delay = FIRST_POLL;
                continue;
            }
            sleep_unless_cancelled(delay, cancel);
            delay = (delay * 2).min(MAX_POLL);
        }
        Ok(())
    })?;
    for (_, r) in running {
        report.stories.push(StoryResult::not_run(
            &r.story,
            Outcome::Error,
            Some("agent failed: cancelled".into()),
        ));
    }
    for s in pending {
        let why = if cancel.load(Ordering::SeqCst) {
            "interrupted"
        } else {
            "its dependencies could not be met"
        };
        report.stories.push(StoryResult::not_run(
            &s,
            Outcome::NotStarted,
            Some(why.into()),
        ));
    }
    if cancel.load(Ordering::SeqCst) {
        report.notes.push(format!(
            "interrupted: {integration} and the refs under refs/teleos/{sid}/ on {url} are kept"
        ));
        return Ok(());
    }

    if env.story.gate.enabled() {
        // It needs a checkout of the integration, which this runner never makes here.
        report.notes.push(
            "the integration gate does not run with teleos.runner=command yet: each story passed its story gate in its job, the merged whole was not checked".to_string(),
        );
    }
    let landed = parallel::land_or_keep(
        env.land,
        &main,
        env.root,
        start_branch.as_deref(),
        &integration,
        &integration_ref,
        report,
    );
    report.not_landed = env.land && !landed;
    finish_refs(env, &main, &url, &integration_ref, landed, report);
    Ok(())
}

/// Push the story's base under the session, then start its job on a thread of its own (a
/// command may block until the job is done).
fn dispatch<'s, 'e: 's>(
    env: &'e RemoteEnv,
    url: &str,
    story: &Story,
    base: ObjectId,
    scope: &'s thread::Scope<'s, 'e>,
    tx: &mpsc::Sender<(String, std::result::Result<(), String>)>,
) -> Result<()> {
    let sid = env.session_id;
    let key = story.story_key.clone();
    let base_hex = base.to_string();
    wire::push_refs(
        env.root,
        url,
        sid,
        &[(base_hex.clone(), wire::base_ref(sid, &key))],
    )?;
    let story_path = story.path.to_string_lossy().replace('\\', "/");
    let argv = job_argv(
        env.command,
        &[
            ("remote", url),
            ("base", &base_hex),
            ("story", &story_path),
            ("key", &key),
            ("session", sid),
        ],
    )?;
    let envs = [
        ("TELEOS_REMOTE", url.to_string()),
        ("TELEOS_BASE", base_hex),
        ("TELEOS_STORY", story_path),
        ("TELEOS_KEY", key.clone()),
        ("TELEOS_SESSION", sid.to_string()),
    ];
    let tx = tx.clone();
    let log = env
        .story
        .logs_dir
        .join(format!("{}.job.log", safe_name(&key)));
    let _ = std::fs::create_dir_all(env.story.logs_dir);
    thread::Builder::new()
        .name(format!("teleos-job-{key}"))
        .spawn_scoped(scope, move || {
            let mut cmd = Cmd::new(&argv[0])
                .args(&argv[1..])
                .current_dir(env.root)
                .timeout(env.timeout)
                .cancel(env.story.cancel)
                .merge_stderr();
            for (k, v) in &envs {
                cmd = cmd.env(k, v);
            }
            if let Ok(f) = std::fs::File::create(&log) {
                cmd = cmd.log(f, 16 << 20);
            }
            let how = cmd
                .run_checked()
                .map(|_| ())
                .map_err(|e: ProcessError| e.to_string());
            let _ = tx.send((key, how));
        })
        .map_err(|e| Error::io("starting a job thread", e))?;
    Ok(())
}

fn sleep_unless_cancelled(d: Duration, cancel: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !cancel.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}

/// Fetch a finished job's refs, read its result, check it against the commits, and merge the
/// work into the integration branch. Returns the result and whether the story merged.
fn collect(
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
fn finish_refs(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_fill_whole_arguments_and_never_split() {
        let argv = job_argv(
            "ssh build1 'git teleos run-story' --story={story} {key}",
            &[("story", "docs/a b.md; rm -rf /"), ("key", "1-1")],
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "ssh",
                "build1",
                "git teleos run-story",
                "--story=docs/a b.md; rm -rf /",
                "1-1"
            ]
        );
        assert!(job_argv("run 'unbalanced", &[]).is_err());
        assert!(job_argv("  ", &[]).is_err());
    }
}
