//! What every story of a run is given, owned once: `close` builds it for a batch, `run-story`
//! for its one story on a job's machine, so a story runs the same way in both.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::agent::AgentConfig;
use crate::batch::gate::GateEnv;
use crate::batch::worker::StoryEnv;
use crate::gate::GatePlan;
use crate::settings::Settings;
use crate::stories::tracker::{self, TrackerMode};
use crate::stories::{ParseOptions, ScanResult};

use super::Context;

/// The owned parts of a `StoryEnv`; `env` lends them out.
pub(super) struct StoryInputs {
    pub agent: AgentConfig,
    pub instructions: Option<String>,
    pub logs_dir: PathBuf,
    pub gate_plan: GatePlan,
    parse: ParseOptions,
    date: String,
    /// The folder agents are told holds the tracker (the main one's).
    tracker_dir: PathBuf,
    /// Every tracker discovery found (several when stories are split over folders): the
    /// writer sets statuses in all of them.
    tracker_files: Vec<PathBuf>,
}

impl StoryInputs {
    pub(super) fn new(
        ctx: &Context,
        scan: &ScanResult,
        agent: AgentConfig,
        instructions: Option<String>,
        logs_dir: PathBuf,
        gate_plan: GatePlan,
    ) -> StoryInputs {
        let tracker_files = if scan.sprint_status_files.is_empty() {
            tracker::tracker_files(&ctx.root, &scan.artifacts_dir)
        } else {
            scan.sprint_status_files.clone()
        };
        StoryInputs {
            agent,
            instructions,
            logs_dir,
            gate_plan,
            parse: ParseOptions {
                task_sections: ctx.settings.task_sections.clone(),
                human_patterns: ctx.settings.human_patterns.clone(),
            },
            date: crate::batch::today(),
            tracker_dir: scan.tracker_dir(),
            tracker_files,
        }
    }

    /// The environment of each story: the settings' retries and gate limits, the run's cancel
    /// flag. `worktree_mode`: stories run in worktrees (parallel, or a job), not the checkout.
    pub(super) fn env<'a>(
        &'a self,
        settings: &Settings,
        cancel: &'a AtomicBool,
        worktree_mode: bool,
    ) -> StoryEnv<'a> {
        StoryEnv {
            tracker: TrackerMode::for_batch(worktree_mode, settings.update_tracker),
            tracker_files: &self.tracker_files,
            agent: &self.agent,
            parse: &self.parse,
            artifacts_dir: &self.tracker_dir,
            instructions: self.instructions.as_deref(),
            date: &self.date,
            logs_dir: &self.logs_dir,
            retries: settings.retries,
            cancel,
            worktree_mode,
            on_agent_spawn: None,
            gate: GateEnv {
                gates: self.gate_plan.gates(),
                timeout: settings.gate_timeout,
                repairs: settings.gate_repairs,
                cancel,
                on_spawn: None,
            },
            start_gate: None,
        }
    }
}
