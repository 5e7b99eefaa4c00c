//! `teleos.runner=command`: each story's job is started by `teleos.runnerCommand`, run on a
//! thread of its own (a command may block until the job is done, as `ssh build1 git teleos
//! run-story …` does, or return at once, as `gh workflow run` does).
//!
//! Cancelling a job stops the command's whole process group if it still runs, then runs
//! `teleos.runnerCancelCommand` when one is set: a command that returned at once left its job
//! running elsewhere, and only the engine it handed the job to can stop it. `{job}` in that
//! template is the last line the runner command printed on stdout (`sbatch --parsable`, `nomad
//! job dispatch` and friends print the job's id), empty when it printed none.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::batch::worker::safe_name;
use crate::error::{Error, Result};
use crate::process::{Cmd, Output, ProcessError};
use crate::settings::Settings;

use super::engine::{Engine, EngineError, JobContext, JobSpec};

/// A cancel command gets this long before it counts as failed.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of the runner command's stdout is kept to find the job's id in.
const STDOUT_KEPT: usize = 64 << 10;

/// The job command for one story: the template split like a shell would, each placeholder
/// replaced inside its own argument (a value never becomes two arguments, nor a shell word).
pub fn job_argv(key: &str, template: &str, values: &[(&str, &str)]) -> Result<Vec<String>> {
    let words = shlex::split(template)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| Error::Config {
            key: key.into(),
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

struct Job {
    /// Set to stop the runner command's process group.
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The runner command has ended (by itself or stopped).
    ended: bool,
    /// The last line it printed on stdout: the engine's name for the job.
    job_id: String,
    /// How it failed, until [`Engine::poll`] hands that to the loop.
    failure: Option<EngineError>,
}

pub struct CommandEngine {
    ctx: JobContext,
    template: String,
    cancel_template: Option<String>,
    jobs: BTreeMap<String, Job>,
    tx: mpsc::Sender<(String, Result<Output, ProcessError>)>,
    rx: mpsc::Receiver<(String, Result<Output, ProcessError>)>,
}

impl CommandEngine {
    pub fn new(settings: &Settings, ctx: JobContext) -> Result<Self> {
        let template = settings.runner_command.clone().ok_or_else(|| {
            Error::usage_hint(
                "teleos.runner is command, but teleos.runnerCommand is not set",
                "set it, e.g.: git config teleos.runnerCommand 'ssh build1 git teleos run-story --remote {remote} --base {base} --story {story} --key {key} --session {session}'",
            )
        })?;
        // Checked before anything is pushed: a template that cannot run fails the batch cleanly.
        job_argv("teleos.runnerCommand", &template, &[])?;
        if let Some(t) = &settings.runner_cancel_command {
            job_argv("teleos.runnerCancelCommand", t, &[])?;
        }
        let (tx, rx) = mpsc::channel();
        Ok(CommandEngine {
            ctx,
            template,
            cancel_template: settings.runner_cancel_command.clone(),
            jobs: BTreeMap::new(),
            tx,
            rx,
        })
    }

    fn start(&mut self, spec: &JobSpec) -> Result<(), EngineError> {
        let ctx = &self.ctx;
        let argv = job_argv(
            "teleos.runnerCommand",
            &self.template,
            &[
                ("remote", &ctx.remote),
                ("base", &spec.base),
                ("story", &spec.story),
                ("key", &spec.key),
                ("session", &ctx.session),
            ],
        )
        .map_err(|e| EngineError::Setting(Box::new(e)))?;
        let envs = [
            ("TELEOS_REMOTE", ctx.remote.clone()),
            ("TELEOS_BASE", spec.base.clone()),
            ("TELEOS_STORY", spec.story.clone()),
            ("TELEOS_KEY", spec.key.clone()),
            ("TELEOS_SESSION", ctx.session.clone()),
        ];
        let _ = std::fs::create_dir_all(&ctx.logs_dir);
        let log = ctx
            .logs_dir
            .join(format!("{}.job.log", safe_name(&spec.key)));
        let root = ctx.root.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let tx = self.tx.clone();
        let key = spec.key.clone();
        let thread = thread::Builder::new()
            .name(format!("teleos-job-{key}"))
            .spawn(move || {
                // No timeout of its own: the loop cancels a silent job through the engine.
                let mut cmd = Cmd::new(&argv[0])
                    .args(&argv[1..])
                    .current_dir(&root)
                    .cancel(&flag)
                    .capture(STDOUT_KEPT, 16 << 10);
                for (k, v) in &envs {
                    cmd = cmd.env(k, v);
                }
                if let Ok(f) = std::fs::File::create(&log) {
                    cmd = cmd.log(f, 16 << 20);
                }
                let _ = tx.send((key, cmd.run()));
            })
            .map_err(|source| EngineError::Thread {
                key: spec.key.clone(),
                source,
            })?;
        self.jobs.insert(
            spec.key.clone(),
            Job {
                stop,
                thread: Some(thread),
                ended: false,
                job_id: String::new(),
                failure: None,
            },
        );
        Ok(())
    }
}

impl CommandEngine {
    /// Record how the commands that ended since the last look ended.
    fn drain(&mut self) {
        while let Ok((key, how)) = self.rx.try_recv() {
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            job.ended = true;
            match how {
                Ok(out) => {
                    job.job_id = last_line(&out.stdout_text());
                    job.failure = match out.check() {
                        Ok(_) => None,
                        // Stopped by us: the loop already knows why.
                        Err(ProcessError::Failed(f)) if f.stopped.is_some() => None,
                        Err(e) => Some(EngineError::tool("the runner command", e)),
                    };
                }
                Err(e) => job.failure = Some(EngineError::tool("the runner command", e)),
            }
        }
    }
}

impl Engine for CommandEngine {
    fn submit(&mut self, wave: &[JobSpec]) -> Result<Vec<String>, EngineError> {
        let mut names = Vec::new();
        for spec in wave {
            self.start(spec)?;
            names.push(spec.key.clone());
        }
        Ok(names)
    }

    fn poll(&mut self) -> Result<Vec<(String, EngineError)>, EngineError> {
        self.drain();
        Ok(self
            .jobs
            .iter_mut()
            .filter_map(|(key, job)| job.failure.take().map(|e| (key.clone(), e)))
            .collect())
    }

    fn cancel(&mut self, key: &str) -> Result<(), EngineError> {
        let Some(job) = self.jobs.get_mut(key) else {
            return Ok(());
        };
        // Stop the command if it still runs, and wait for it: then what it printed, the job's
        // id, is known (its group gets SIGTERM, then SIGKILL after the grace period).
        job.stop.store(true, Ordering::SeqCst);
        if let Some(t) = job.thread.take() {
            let _ = t.join();
        }
        self.drain();
        let Some(template) = &self.cancel_template else {
            return Ok(());
        };
        let job_id = self
            .jobs
            .get(key)
            .map(|j| j.job_id.clone())
            .unwrap_or_default();
        let argv = job_argv(
            "teleos.runnerCancelCommand",
            template,
            &[
                ("job", &job_id),
                ("key", key),
                ("session", &self.ctx.session),
            ],
        )
        .map_err(|e| EngineError::Setting(Box::new(e)))?;
        Cmd::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&self.ctx.root)
            .timeout(CANCEL_TIMEOUT)
            .run_checked()
            .map_err(|e| EngineError::tool("the cancel command", e))?;
        Ok(())
    }

    fn cancel_all(&mut self, keys: &[String]) -> Vec<(String, EngineError)> {
        // Every command told to stop first, so they share one grace period.
        for key in keys {
            if let Some(job) = self.jobs.get(key) {
                job.stop.store(true, Ordering::SeqCst);
            }
        }
        keys.iter()
            .filter_map(|k| self.cancel(k).err().map(|e| (k.clone(), e)))
            .collect()
    }

    fn finish(&mut self) {
        for job in self.jobs.values() {
            if !job.ended {
                job.stop.store(true, Ordering::SeqCst);
            }
        }
        for job in self.jobs.values_mut() {
            if let Some(t) = job.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for CommandEngine {
    fn drop(&mut self) {
        self.finish();
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_fill_whole_arguments_and_never_split() {
        let argv = job_argv(
            "teleos.runnerCommand",
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
        assert!(job_argv("k", "run 'unbalanced", &[]).is_err());
        assert!(job_argv("k", "  ", &[]).is_err());
    }

    #[test]
    fn the_job_id_is_the_last_line_printed() {
        assert_eq!(last_line("Submitted.\n  4242  \n\n"), "4242");
        assert_eq!(last_line(""), "");
    }
}
