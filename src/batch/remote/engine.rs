//! What every engine (the command runner, Kubernetes, Slurm) does for the dispatch/collect
//! loop, and nothing more: start a wave of jobs, say which of them died, cancel one. The git
//! data channel (bases, results, `ls-remote`, merging, landing) is the loop's, shared by all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::ProcessError;
use crate::settings::{Runner, Settings};

/// One story as a job receives it (beside what [`JobContext`] holds for every job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub key: String,
    /// The story file, relative to the repository root, with `/` separators.
    pub story: String,
    /// The commit the job starts from, in full hex.
    pub base: String,
}

/// What every job of a batch shares.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The shared remote's URL, as jobs reach it.
    pub remote: String,
    pub session: String,
    /// The user's work tree root (where relative paths in settings start).
    pub root: PathBuf,
    /// The batch's log folder: an engine keeps its own logs there (`<key>.job.log`).
    pub logs_dir: PathBuf,
    /// How long a job may stay silent; engines that can bound a job themselves use it too.
    pub timeout: Duration,
}

/// A job an engine could not start, watch or cancel, or that it saw die.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A program the engine uses (the runner command, `kubectl`, `sbatch`) could not run or
    /// failed.
    #[error("{action}: {source}")]
    Tool {
        action: String,
        #[source]
        source: ProcessError,
    },
    #[error("cannot start a thread for the job of {key}: {source}")]
    Thread {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// The engine ran the job and reports it failed; the text is the engine's reason.
    #[error("{0}")]
    Died(String),
    /// The engine answered something this program cannot read.
    #[error("unexpected answer from {tool}: {reason}")]
    Unreadable { tool: &'static str, reason: String },
    /// A setting turned out unusable for this job (a template that cannot be split).
    #[error(transparent)]
    Setting(Box<Error>),
    /// A job template could not be filled.
    #[error(transparent)]
    Render(#[from] super::kubernetes::RenderError),
}

impl EngineError {
    pub fn tool(action: impl Into<String>, source: ProcessError) -> Self {
        EngineError::Tool {
            action: action.into(),
            source,
        }
    }
}

/// An engine the loop hands jobs to. Calls come from the loop's thread only.
pub trait Engine {
    /// Start one job per story of `wave` (all ready at once, all on the same base). Returns a
    /// name per job, in the order of `wave`, for progress lines and the debrief.
    fn submit(&mut self, wave: &[JobSpec]) -> Result<Vec<String>, EngineError>;

    /// The jobs that the engine saw end without success since the last call: `(key, why)`.
    /// Called every round before the remote is looked at, so a job that pushed its result and
    /// then exited non-zero (a story that did not complete) is collected, not failed. An `Err`
    /// is the engine being unreachable for now; the loop says so and goes on.
    fn poll(&mut self) -> Result<Vec<(String, EngineError)>, EngineError>;

    /// The stories whose jobs, at the last `poll`, still waited for a place to run (a Slurm
    /// task PENDING, a pod not yet scheduled). A story's timeout is the agent's time, so it
    /// starts only once its job leaves the queue. By default jobs run as soon as submitted.
    fn queued(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Stop the job of `key`: it reported nothing in time, or the batch was interrupted.
    fn cancel(&mut self, key: &str) -> Result<(), EngineError>;

    /// Ctrl-C: stop every job of `keys`. Engines that can stop them together (one grace
    /// period for all, not one each) do; by default one after the other. Returns what failed.
    fn cancel_all(&mut self, keys: &[String]) -> Vec<(String, EngineError)> {
        keys.iter()
            .filter_map(|k| self.cancel(k).err().map(|e| (k.clone(), e)))
            .collect()
    }

    /// The batch is over: stop and wait for what this engine still runs on this machine (a
    /// runner command's process group). Jobs that delivered their result are not needed any
    /// more; those that did not were cancelled before.
    fn finish(&mut self);
}

/// The engine `teleos.runner` names, checked before anything is pushed: a runner that cannot
/// work fails the batch cleanly (exit 2).
pub fn for_runner(settings: &Settings, ctx: JobContext) -> Result<Box<dyn Engine>> {
    match settings.runner {
        Runner::Command => Ok(Box::new(super::command::CommandEngine::new(settings, ctx)?)),
        Runner::Kubernetes => Ok(Box::new(super::kubernetes::KubernetesEngine::new(
            settings, ctx,
        )?)),
        Runner::Slurm => super::slurm::engine(settings, ctx),
        Runner::Local => Err(Error::Internal(
            "the local runner has no remote engine".into(),
        )),
    }
}

/// An engine's job template: the file the setting `key` names (relative to the repository
/// root `root`), or the built-in one.
pub(super) fn read_template(
    root: &Path,
    key: &str,
    setting: Option<&PathBuf>,
    built_in: &str,
) -> Result<String> {
    let Some(p) = setting else {
        return Ok(built_in.to_string());
    };
    let path = root.join(p);
    std::fs::read_to_string(&path).map_err(|e| Error::Config {
        key: key.into(),
        value: p.display().to_string(),
        reason: format!("cannot read {}: {e}", path.display()),
    })
}
