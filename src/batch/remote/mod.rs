//! Remote runners (README "More than one machine"): each ready story becomes a job on an
//! engine — `teleos.runnerCommand` ([`command`]), a Kubernetes Indexed Job ([`kubernetes`]), a
//! Slurm array job ([`slurm`]) — which runs `git teleos run-story` wherever the engine puts it.
//! Engines only start, watch and cancel jobs ([`engine::Engine`]); the data channel is the
//! shared remote, the same for all: the base goes out as `refs/teleos/<sid>/base/<key>`, the
//! job's commits and result come back under `refs/teleos/<sid>/{stories,results}/<key>`, found
//! with `git ls-remote` and back-off polling. This process alone merges (in memory, into
//! `integration-<sid>`, as parallel mode does) and lands ([`collect`]): no worktree is ever
//! made, the user's checkout is only touched by landing.

mod collect;
pub mod command;
pub mod engine;
pub mod kubernetes;
pub mod slurm;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::agent::StartGate;
use crate::batch::governor::Governor;
use crate::batch::parallel::{self, integration_branch};
use crate::batch::results::{BatchReport, Outcome, StoryResult};
use crate::batch::worker::StoryEnv;
use crate::error::{Error, Result};
use crate::git::{self, ObjectId};
use crate::remote::{self as wire, git as run_git};
use crate::settings::Settings;
use crate::stories::Story;

use engine::{Engine, EngineError, JobContext, JobSpec};

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
    /// `teleos.runner` and what each engine reads (`teleos.remote`, `teleos.runnerCommand`,
    /// `teleos.kubernetes*`, …).
    pub settings: &'a Settings,
    /// How long a job may stay silent before it is cancelled and its story is an error.
    pub timeout: Duration,
    pub land: bool,
    pub progress: &'a (dyn Fn(&str) + Sync),
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

/// A job the engine runs, until its result is collected or it is given up.
struct Running {
    story: Story,
    base: ObjectId,
    started: Instant,
    /// The engine's name for the job (progress lines, messages).
    job: String,
    /// The engine saw the job end without success (it may still have pushed a result).
    died: Option<EngineError>,
    /// The job waited in the engine's queue at the last poll (said once in the progress).
    queued: bool,
}

/// The loop's bookkeeping of stories, shared by dispatch and collect.
#[derive(Default)]
struct Books {
    running: BTreeMap<String, Running>,
    merged: BTreeSet<String>,
    failed: BTreeSet<String>,
}

pub fn run(env: &RemoteEnv, stories: Vec<Story>, report: &mut BatchReport) -> Result<()> {
    let sid = env.session_id;
    let main = git::discover(env.root)?;
    let (start_branch, start) = parallel::batch_start(&main, env.land)?;
    let url = remote_url(env.root, &env.settings.remote)?;
    // Made (and so checked) before anything is pushed: a runner that cannot work fails the
    // batch cleanly.
    let mut engine = engine::for_runner(
        env.settings,
        JobContext {
            remote: url.clone(),
            session: sid.to_string(),
            root: env.root.to_path_buf(),
            logs_dir: env.story.logs_dir.to_path_buf(),
            timeout: env.timeout,
        },
    )?;
    let integration = integration_branch(sid);
    let integration_ref = format!("refs/heads/{integration}");
    if git::resolve_ref(&main, &integration_ref)?.is_none() {
        git::create_branch(&main, &integration, start)?;
    }
    report.branch = start_branch.clone();

    let selected: BTreeSet<String> = stories.iter().map(|s| s.story_key.clone()).collect();
    let mut pending = stories;
    let mut books = Books::default();
    let cancel = env.story.cancel;
    // The governor of parallel mode, on dispatches: a job's result that says its agent met a
    // rate limit pauses new dispatches for the back-off and lowers the jobs allowed at once,
    // which climb back after quiet periods. No stagger: jobs start on other machines, and
    // a wave goes out whole.
    let say = |text: &str| (env.progress)(text);
    let backoff = env.story.agent.rate_limit_backoff;
    let governor = Governor::new(
        env.slots,
        Duration::ZERO,
        backoff.saturating_mul(2),
        Some(&say),
    );
    let mut delay = FIRST_POLL;
    let mut engine_trouble = false;
    loop {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        // A story whose dependency failed cannot start: it would miss that work.
        pending.retain(|s| {
            let Some(dep) = s.depends_on.iter().find(|d| books.failed.contains(*d)) else {
                return true;
            };
            let why = format!("its dependency {dep} did not land");
            report
                .stories
                .push(StoryResult::not_run(s, Outcome::NotStarted, Some(why)));
            books.failed.insert(s.story_key.clone());
            false
        });
        // Every story ready now goes out in one wave (one Indexed Job, one array job).
        let mut wave = Vec::new();
        while books.running.len() + wave.len() < env.slots {
            let ready = pending.iter().position(|s| is_ready(s, &books, &selected));
            let Some(i) = ready else { break };
            if !governor.try_acquire() {
                break;
            }
            wave.push(pending.remove(i));
        }
        if !wave.is_empty() {
            // Dependents start on the integration tip, which holds what they depend on.
            let base = git::resolve_ref(&main, &integration_ref)?.unwrap_or(start);
            let (sent, before) = (wave.len(), books.running.len());
            dispatch(env, engine.as_mut(), &url, wave, base, &mut books, report);
            // A wave that could not start holds no places.
            for _ in (books.running.len() - before)..sent {
                governor.release();
            }
        }
        if books.running.is_empty() {
            if !pending.iter().any(|s| is_ready(s, &books, &selected)) {
                break;
            }
            // Everything ready waits on the governor's pause.
            sleep_unless_cancelled(FIRST_POLL, cancel);
            continue;
        }
        // The engine first: a job that pushed its result and then exited non-zero is found
        // on the remote below, and collected rather than failed.
        match engine.poll() {
            Ok(died) => {
                engine_trouble = false;
                for (key, why) in died {
                    if let Some(r) = books.running.get_mut(&key) {
                        r.died = Some(why);
                    }
                }
                // Time in the queue is not the agent's: the timeout counts from the moment
                // the job leaves it.
                for (key, why) in engine.queued() {
                    if let Some(r) = books.running.get_mut(&key) {
                        r.started = Instant::now();
                        if !r.queued {
                            r.queued = true;
                            let why = if why.is_empty() {
                                String::new()
                            } else {
                                format!(" ({why})")
                            };
                            (env.progress)(&format!(
                                "{key}: job {} waits in the queue{why}",
                                r.job
                            ));
                        }
                    }
                }
            }
            Err(e) if !engine_trouble => {
                engine_trouble = true;
                (env.progress)(&format!("cannot watch the jobs (will retry): {e}"));
            }
            Err(_) => {}
        }
        let listed = wire::ls_remote(env.root, &url, &format!("{}*", wire::session_prefix(sid)));
        // A remote that did not answer this time says nothing about the results: a job that
        // died may still have pushed one (only the timeout is decided without it).
        let remote_answered = listed.is_ok();
        let on_remote: BTreeMap<String, String> = listed.unwrap_or_default().into_iter().collect();
        let keys: Vec<String> = books.running.keys().cloned().collect();
        let mut progressed = false;
        for key in keys {
            let has_result = on_remote.contains_key(&wire::results_ref(sid, &key));
            let r = &books.running[&key];
            let reason = if has_result {
                None
            } else if let (Some(why), true) = (&r.died, remote_answered) {
                Some(format!("the job failed without a result: {why}"))
            } else if r.started.elapsed() > env.timeout {
                let mut why = format!(
                    "the job reported nothing within {} s and was cancelled",
                    env.timeout.as_secs()
                );
                if let Err(e) = engine.cancel(&key) {
                    why.push_str(&format!(" (cancelling it failed: {e})"));
                }
                Some(why)
            } else {
                continue;
            };
            let Some(r) = books.running.remove(&key) else {
                continue;
            };
            progressed = true;
            governor.release();
            let (result, ok) = match reason {
                Some(why) => (
                    StoryResult::not_run(&r.story, Outcome::Error, Some(why)),
                    false,
                ),
                None => collect::collect(env, &main, &url, &r, &on_remote, &integration_ref),
            };
            if result.rate_limited || result.rate_limit_wait_secs > 0.0 {
                // The job's agent met a rate limit (its own back-off, or a last refusal).
                governor.rate_limited(backoff);
            }
            (env.progress)(&crate::batch::sequential::status_line(&result, 0.0));
            if ok {
                books.merged.insert(key);
            } else {
                books.failed.insert(key);
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
    // Ctrl-C: every job still out is cancelled through its engine.
    let out: Vec<String> = books.running.keys().cloned().collect();
    for (key, e) in engine.cancel_all(&out) {
        report
            .notes
            .push(format!("could not cancel the job of {key}: {e}"));
    }
    for (_, r) in std::mem::take(&mut books.running) {
        let mut result = StoryResult::not_run(
            &r.story,
            Outcome::Error,
            Some(format!("interrupted: its job {} was cancelled", r.job)),
        );
        result.interrupted = true;
        report.stories.push(result);
    }
    engine.finish();
    report.governor = Some(governor.summary(report.rate_limit_wait_secs()));
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
        report.notes.push(format!(
            "the integration gate does not run with teleos.runner={} yet: each story passed its story gate in its job, the merged whole was not checked",
            env.settings.runner.name()
        ));
    }
    let branch = start_branch.as_deref();
    let landed = parallel::land_or_keep(env.land, &main, env.root, branch, sid, &mut report.notes);
    report.not_landed = env.land && !landed;
    collect::finish_refs(env, &main, &url, &integration_ref, landed, report);
    Ok(())
}

/// Push the wave's base under the session (one ref per story, all in one push), then hand the
/// wave to the engine. A wave that cannot start makes each of its stories an error.
fn dispatch(
    env: &RemoteEnv,
    engine: &mut dyn Engine,
    url: &str,
    wave: Vec<Story>,
    base: ObjectId,
    books: &mut Books,
    report: &mut BatchReport,
) {
    let sid = env.session_id;
    let base_hex = base.to_string();
    let specs: Vec<JobSpec> = wave
        .iter()
        .map(|s| JobSpec {
            key: s.story_key.clone(),
            story: s.path.to_string_lossy().replace('\\', "/"),
            base: base_hex.clone(),
        })
        .collect();
    let updates: Vec<(String, String)> = specs
        .iter()
        .map(|s| (base_hex.clone(), wire::base_ref(sid, &s.key)))
        .collect();
    let why = match wire::push_refs(env.root, url, sid, &updates) {
        Err(e) => format!("cannot push its base to {url}: {e}"),
        Ok(()) => match engine.submit(&specs) {
            Err(e) => e.to_string(),
            Ok(jobs) => {
                for (story, job) in wave.into_iter().zip(jobs) {
                    (env.progress)(&format!("{}: job {job} started", story.story_key));
                    books.running.insert(
                        story.story_key.clone(),
                        Running {
                            story,
                            base,
                            started: Instant::now(),
                            job,
                            died: None,
                            queued: false,
                        },
                    );
                }
                return;
            }
        },
    };
    for story in wave {
        books.failed.insert(story.story_key.clone());
        report.stories.push(StoryResult::not_run(
            &story,
            Outcome::Error,
            Some(format!("the job could not be started: {why}")),
        ));
    }
}

/// Whether what `story` depends on (of this batch) has merged.
fn is_ready(story: &Story, books: &Books, selected: &BTreeSet<String>) -> bool {
    story
        .depends_on
        .iter()
        .filter(|d| selected.contains(*d))
        .all(|d| books.merged.contains(d))
}

fn sleep_unless_cancelled(d: Duration, cancel: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !cancel.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}
