//! Settings, resolved once per run: command-line flag over `git config teleos.*` over the
//! built-in default. Malformed config values are errors naming the key, never silent defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::batch::order::Schedule;
use crate::error::{Error, Result};

mod config;
pub use config::ConfigSource;
use config::Reader;

/// Built-in defaults (README, "Configuration"), those of the source workflow.
pub mod defaults {
    pub const CLOSEABLE_THRESHOLD: f64 = 0.30;
    pub const MAX_WORKTREES: usize = 3;
    pub const STORY_TIMEOUT_SECS: u64 = 3600;
    /// Long enough for a cold `npm ci` of a large project; short enough that a hung one frees
    /// its slot the same morning.
    pub const SETUP_TIMEOUT_SECS: u64 = 1800;
    pub const STALE_HOURS: f64 = 4.0;
    pub const RETRIES: u32 = 2;
    /// Short: enough to keep a batch's agents from reaching the provider in the same instant,
    /// and it counts from the previous start, so it costs nothing while a worktree takes longer
    /// to make (README, "Parallel mode").
    pub const AGENT_STAGGER_SECS: f64 = 0.5;
    pub const OPENCODE_STALL_SECS: u64 = 300;
    pub const CIRCUIT_BREAKER: u32 = 3;
    pub const AGENT: &str = "claude";
    pub const WORKTREE_DIR: &str = ".claude/worktrees";
    /// Upper bound on parallel worktrees: each runs a paid agent; more is almost surely a typo.
    pub const MAX_WORKTREES_LIMIT: usize = 64;
    /// A test suite that runs longer than this is almost surely hung.
    pub const GATE_TIMEOUT_SECS: u64 = 1800;
    pub const GATE_REPAIRS: u32 = 1;
    /// Parked worktrees kept at most: one batch's worth at the default parallelism (README,
    /// "Idle worktrees", has the measured disk cost of each).
    pub const POOL_MAX: usize = 3;
    /// Hours after which `clean-orphans` drops a parked worktree: a batch the next working day
    /// still finds it; a pool left over a long weekend is gone.
    pub const POOL_IDLE_HOURS: f64 = 48.0;
}

/// The agent presets `teleos.agent` accepts.
pub const AGENT_NAMES: &[&str] = &["claude", "codex", "gemini", "opencode", "custom"];
/// The values `teleos.setup` accepts.
pub const SETUP_MODES: &[&str] = &["auto", "install", "symlink", "none"];

/// `teleos.runner`: where parallel stories run (README, "More than one machine").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// Worktrees on this machine.
    Local,
    /// `teleos.runnerCommand` starts one job per story.
    Command,
    /// One Indexed Job per wave of stories, through `kubectl`.
    Kubernetes,
    /// One `sbatch` array job per wave of stories.
    Slurm,
}

impl Runner {
    pub const ALL: [Runner; 4] = [
        Runner::Local,
        Runner::Command,
        Runner::Kubernetes,
        Runner::Slurm,
    ];

    /// The value in `teleos.runner`.
    pub fn name(self) -> &'static str {
        match self {
            Runner::Local => "local",
            Runner::Command => "command",
            Runner::Kubernetes => "kubernetes",
            Runner::Slurm => "slurm",
        }
    }

    fn parse(v: &str) -> Option<Runner> {
        Runner::ALL.into_iter().find(|r| r.name() == v)
    }

    /// The stories run as jobs elsewhere, their results coming back through `teleos.remote`.
    pub fn is_remote(self) -> bool {
        self != Runner::Local
    }
}

/// The Kubernetes runner's settings (`teleos.kubernetes*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// The container image with git, git-teleos and the agent CLI.
    pub image: Option<String>,
    /// A Job template replacing the built-in one (relative to the repository root).
    pub template: Option<PathBuf>,
    /// `None`: kubectl's current namespace.
    pub namespace: Option<String>,
    /// The secret whose keys become the agent's environment (its API key).
    pub agent_secret: String,
    /// The secret holding the git credentials the job fetches and pushes with.
    pub git_secret: String,
}

/// Every `teleos.*` key the program reads, with what it means (for README, man page, `--help`).
pub const CONFIG_KEYS: &[(&str, &str)] = &[
    ("teleos.sprintArtifacts", "Folder holding the story files (relative to the repository root). Default: the first existing of docs/sprint-artifacts, _bmad-output/sprint-artifacts, _bmad-output/implementation-artifacts, docs/stories."),
    ("teleos.closeableThreshold", "Largest fraction of unchecked top-level tasks for a story to be CLOSEABLE, from 0 to 1. Default 0.30."),
    ("teleos.taskSections", "Boolean. When true, count only tasks under headings that name tasks (Tasks / Subtasks, Tasks, Implementation Tasks, or teleos.taskSectionHeading). Default false: the whole file counts."),
    ("teleos.taskSectionHeading", "Multi-valued. Heading names that hold tasks, replacing the built-in list when teleos.taskSections is true."),
    ("teleos.humanValidationPattern", "Multi-valued. Case-insensitive phrases that mark an unchecked task as human validation (agents never do these). Replaces the built-in list: manually verify, manual test, QA sign-off, user acceptance, visually confirm, browser test, human review."),
    ("teleos.excludePattern", "Multi-valued. File-name patterns (prefix, or glob with *) that are not stories, added to README*, index*, template*, session-report*."),
    ("teleos.recursive", "Boolean. Also scan per-epic subfolders of the sprint-artifacts folder. Default false."),
    ("teleos.maxWorktrees", "Parallel worktrees (agents at once) for --parallel without a number. Default 3."),
    ("teleos.agent", "Agent preset: claude (default), codex, gemini, opencode, or custom (uses teleos.agentCommand)."),
    ("teleos.agentProgram", "Path of the agent CLI for the chosen preset, when it is not the one found on PATH."),
    ("teleos.agentCommand", "A custom agent command line, split like a shell would but never run through one; the prompt arrives on stdin. Setting it implies teleos.agent=custom."),
    ("teleos.agentArgs", "Multi-valued. Extra arguments appended to the agent's command line."),
    ("teleos.model", "Model name passed to the agent CLI."),
    ("teleos.maxTurns", "Maximum agent turns per story (where the CLI supports it)."),
    ("teleos.storyTimeout", "Seconds an agent may run on one story before its whole process group is killed. Default 3600."),
    ("teleos.stallTimeout", "Seconds without any agent output before it is killed as stalled; 0 turns it off. Default: off, except 300 for the opencode preset (offline it retries silently forever)."),
    ("teleos.rateLimitBackoff", "Seconds to wait before retrying an agent run that hit a rate or usage limit; doubled for each further try (3 tries). In parallel mode every worker holds new starts for that long, one agent fewer runs at once, and one more is allowed again after each quiet period of twice this without a rate limit. Default 60."),
    ("teleos.agentStagger", "Seconds between agent starts while a parallel batch ramps up (each start that brings more agents at once than before), so agents do not all reach the provider at once; the time a slot spends making its worktree counts towards it, and later starts wait only while a rate limit lowered the limit. Default 0.5; 0 starts them together."),
    ("teleos.schedule", "The order in which a parallel batch starts its ready stories: longest-first (default: the most open tasks and subtasks first, less human-validation ones, counting the stories that wait on each, so a long story does not start last and keep the batch waiting) or listed (the selection's order). Dependencies hold either way."),
    ("teleos.retries", "Retries of a story that failed with an error. Default 2."),
    ("teleos.circuitBreaker", "Consecutive story failures after which no new story starts. Default 3; 0 disables."),
    ("teleos.workerInstructions", "File (relative to the repository root) whose text replaces the built-in worker instructions."),
    ("teleos.pipelineCommand", "Command run for selected NEEDS_PIPELINE stories (story key appended as the last argument). Default: none, they are only recorded as routed."),
    ("teleos.runner", "Where parallel stories run: local (default: worktrees on this machine), command (teleos.runnerCommand starts a job per story), kubernetes (one Indexed Job per wave of stories) or slurm (one sbatch array job per wave). Every runner but local runs git teleos run-story elsewhere; results come back through teleos.remote."),
    ("teleos.runnerCommand", "For teleos.runner=command: the command that starts one story's job, with {remote} {base} {story} {key} {session} each replaced inside its argument; split like a shell would, never run by one. It may block until the job ends or return at once."),
    ("teleos.runnerCancelCommand", "For teleos.runner=command: a command that cancels a job the runner command started and left running elsewhere (a job that reported nothing within the story timeout, or every job on Ctrl-C), with {job} {key} {session} replaced inside their arguments; {job} is the last line the runner command printed on its stdout. A runner command still running is stopped with its whole process group either way. Default: none."),
    ("teleos.kubernetesImage", "For teleos.runner=kubernetes (required): the container image the jobs run in; it needs git, git-teleos and the agent CLI."),
    ("teleos.kubernetesTemplate", "For teleos.runner=kubernetes: a Job template (relative to the repository root) replacing the built-in one, contrib/kubernetes/teleos-story-job.yaml; its {{placeholders}} are filled with JSON-quoted values."),
    ("teleos.kubernetesNamespace", "For teleos.runner=kubernetes: the namespace the jobs run in. Default: kubectl's current namespace."),
    ("teleos.kubernetesAgentSecret", "For teleos.runner=kubernetes: the secret whose keys become the agent's environment (e.g. ANTHROPIC_API_KEY). Default teleos-agent."),
    ("teleos.kubernetesGitSecret", "For teleos.runner=kubernetes: the secret holding a git-credentials file (key git-credentials, git's credential store format) the job fetches and pushes with. Default teleos-git."),
    ("teleos.slurmTemplate", "For teleos.runner=slurm: a job script (relative to the repository root) replacing the built-in one, contrib/slurm/teleos-story.sbatch; its {{placeholders}} are filled with shell-quoted values. sbatch, squeue, scontrol and scancel run with git-teleos's environment (SLURM_CONF and the like reach them)."),
    ("teleos.remote", "For every runner but local: the remote (name or URL) the jobs fetch from and push their results to, under refs/teleos/<sid>/. Default origin."),
    ("teleos.staleHours", "Age in hours after which a session of another tool whose pid is dead counts as orphaned; 0 means no grace period. Default 4."),
    ("teleos.worktreeDir", "Where parallel worktrees are created, relative to the repository root. Default .claude/worktrees."),
    ("teleos.keepWorktrees", "Boolean. Keep a parallel batch's clean, merged worktrees (with their installed dependencies) for the next batch instead of removing them. Default false."),
    ("teleos.watchWorktrees", "Boolean. On Linux, watch each parallel worktree with inotify so that the check for an agent's leftovers reads only what changed; one inotify instance and one watch per folder of each worktree while the batch runs. false walks the whole worktree after every story. Default true."),
    ("teleos.poolMax", "Most worktrees kept for reuse (teleos.keepWorktrees); parking one more drops the oldest. Default 3; 0 keeps none."),
    ("teleos.poolIdleHours", "Hours after which clean-orphans (also its quiet run before every parallel batch) drops a worktree kept for reuse, saving anything found in it on refs/teleos/rescue/pool/ first; 0 never drops by age. Default 48."),
    ("teleos.htmlReport", "Write each batch's HTML report (timeline, summary, stories) when close finishes: true for .git/teleos/reports/<sid>.html, or a folder (relative to the repository root) to write <sid>.html in. debrief then prints its path. Default: off."),
    ("teleos.updateTracker", "Boolean. Keep sprint-status.yaml up to date: in parallel mode git-teleos sets each story's status when it merges it (agents' edits of the file are dropped); in sequential mode the agent sets it. false leaves the file alone. Default true."),
    ("teleos.setup", "Per-worktree setup: auto (default: install when a lock file says how), install, symlink, or none."),
    ("teleos.installCommand", "Install command for teleos.setup=install, e.g. 'npm ci'."),
    ("teleos.setupTimeout", "Seconds the install command of one worktree may run before its whole process group is killed. Default 1800."),
    ("teleos.gate", "Multi-valued. A check every story and the integrated result must pass before landing (e.g. 'cargo test'), split like a shell would but never run by one ('sh -c \"…\"' for a shell). Replaces auto-detection (package.json test script, Cargo.toml, pytest configuration, go.mod, Makefile test target). 'none' turns gates off."),
    ("teleos.gateTimeout", "Seconds one gate command may run before its whole process group is killed (counts as red). Default 1800."),
    ("teleos.gateRepairs", "Times the agent is shown a red gate's output and asked to fix it before the story is gate_failed. Default 1; 0 disables repair."),
];

/// `teleos.htmlReport`: where a batch's HTML report is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HtmlReport {
    /// `<git common dir>/teleos/reports/`.
    DefaultDir,
    /// A folder, relative to the repository root unless absolute.
    Dir(PathBuf),
}

impl HtmlReport {
    /// The report file of session `sid`.
    pub fn path(&self, common_dir: &std::path::Path, root: &std::path::Path, sid: &str) -> PathBuf {
        let dir = match self {
            HtmlReport::DefaultDir => common_dir.join("teleos").join("reports"),
            HtmlReport::Dir(d) => root.join(d),
        };
        dir.join(format!("{sid}.html"))
    }
}
/// Values given on the command line; `None` means "not given, ask git config".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub sprint_artifacts: Option<PathBuf>,
    pub closeable_threshold: Option<f64>,
    pub task_sections: Option<bool>,
    pub recursive: Option<bool>,
    pub max_worktrees: Option<usize>,
    pub agent: Option<String>,
    pub agent_command: Option<String>,
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    pub story_timeout: Option<u64>,
    pub stale_hours: Option<f64>,
    pub retries: Option<u32>,
    pub circuit_breaker: Option<u32>,
    /// `--no-tracker` gives `Some(false)`.
    pub update_tracker: Option<bool>,
    /// `--gate CMD` (repeatable): replaces `teleos.gate` and auto-detection.
    pub gates: Vec<String>,
    /// `--no-gate`.
    pub no_gate: bool,
}

/// Which checks gate stories and landings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateSetting {
    /// Detect them from the project's files.
    Auto,
    /// `--no-gate` or `teleos.gate=none`; the string says which.
    Off(String),
    /// Given commands, and where they came from (`--gate` or `teleos.gate`).
    Commands(Vec<String>, &'static str),
}

/// Everything the program needs to know, resolved once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sprint_artifacts: Option<PathBuf>,
    pub closeable_threshold: f64,
    /// `None`: count the whole file; `Some(headings)`: only tasks under these headings.
    pub task_sections: Option<Vec<String>>,
    pub human_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub recursive: bool,
    pub max_worktrees: usize,
    pub agent: String,
    pub agent_command: Option<String>,
    pub agent_program: Option<PathBuf>,
    pub agent_args: Vec<String>,
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    pub story_timeout: Duration,
    pub stall_timeout: Option<Duration>,
    pub rate_limit_backoff: Duration,
    /// Time between agent starts in parallel mode.
    pub agent_stagger: Duration,
    /// The order a parallel batch starts ready stories in.
    pub schedule: Schedule,
    pub retries: u32,
    pub circuit_breaker: u32,
    pub worker_instructions: Option<PathBuf>,
    pub pipeline_command: Option<String>,
    /// Where parallel stories run (see `batch::remote`).
    pub runner: Runner,
    pub runner_command: Option<String>,
    pub runner_cancel_command: Option<String>,
    pub kubernetes: KubernetesSettings,
    /// `teleos.slurmTemplate`: a job script replacing the built-in one (relative to the root).
    pub slurm_template: Option<PathBuf>,
    pub remote: String,
    pub stale_hours: f64,
    pub worktree_dir: PathBuf,
    pub keep_worktrees: bool,
    /// Watch worktrees with inotify (`teleos.watchWorktrees`).
    pub watch_worktrees: bool,
    /// Most parked worktrees (`teleos.poolMax`).
    pub pool_max: usize,
    /// Hours after which a parked worktree is dropped; 0: never by age.
    pub pool_idle_hours: f64,
    /// Where `close` writes the HTML report; `None`: it does not.
    pub html_report: Option<HtmlReport>,
    /// Keep `sprint-status.yaml` up to date (see `stories::tracker`).
    pub update_tracker: bool,
    pub setup: String,
    pub install_command: Option<String>,
    /// Limit on one worktree's install command.
    pub setup_timeout: Duration,
    pub gate: GateSetting,
    pub gate_timeout: Duration,
    pub gate_repairs: u32,
}

impl Settings {
    /// Flag over config over default. Every config value is validated, even when a flag
    /// overrides it, so a broken config is noticed the first time, not on some later run.
    pub fn resolve(config: &dyn ConfigSource, flags: &Overrides) -> Result<Settings> {
        let c = Reader(config);
        let threshold = c.fraction("teleos.closeableThreshold")?;
        let task_sections_on = c.boolean("teleos.taskSections")?;
        let recursive = c.boolean("teleos.recursive")?;
        let keep_worktrees = c.boolean("teleos.keepWorktrees")?;
        let watch_worktrees = c.boolean("teleos.watchWorktrees")?;
        let pool_max = c.count("teleos.poolMax", 0, defaults::MAX_WORKTREES_LIMIT)?;
        let pool_idle_hours = c.hours("teleos.poolIdleHours")?;
        let html_report = c.html_report("teleos.htmlReport")?;
        let update_tracker = c.boolean("teleos.updateTracker")?;
        let max_worktrees = c.count("teleos.maxWorktrees", 1, defaults::MAX_WORKTREES_LIMIT)?;
        let agent = c.choice("teleos.agent", AGENT_NAMES)?;
        let agent_command = c.string("teleos.agentCommand");
        let max_turns = c.count("teleos.maxTurns", 1, 100_000)?;
        let story_timeout = c.count("teleos.storyTimeout", 1, 7 * 24 * 3600)?;
        let stall_timeout = c.count("teleos.stallTimeout", 0, 7 * 24 * 3600)?;
        let retries = c.count("teleos.retries", 0, 100)?;
        let backoff = c.non_negative("teleos.rateLimitBackoff")?;
        let stagger = c.non_negative("teleos.agentStagger")?;
        let schedule = c.parse(
            "teleos.schedule",
            "expected one of: longest-first, listed",
            Schedule::parse,
        )?;
        let circuit_breaker = c.count("teleos.circuitBreaker", 0, 100_000)?;
        let stale_hours = c.hours("teleos.staleHours")?;
        let setup = c.choice("teleos.setup", SETUP_MODES)?;
        let runner = c.parse(
            "teleos.runner",
            "expected one of: local, command, kubernetes, slurm",
            |v| Runner::parse(&v.to_ascii_lowercase()),
        )?;
        let setup_timeout = c.count("teleos.setupTimeout", 1, 7 * 24 * 3600)?;
        let gate_timeout = c.count("teleos.gateTimeout", 1, 7 * 24 * 3600)?;
        let gate_repairs = c.count("teleos.gateRepairs", 0, 10)?;
        let gate = gate_setting(c.0.get_all("teleos.gate"), flags)?;

        let headings = c.0.get_all("teleos.taskSectionHeading");
        let task_sections = if flags.task_sections.or(task_sections_on).unwrap_or(false) {
            Some(if headings.is_empty() {
                crate::stories::tasks::DEFAULT_TASK_SECTIONS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                headings
            })
        } else {
            None
        };
        let mut human_patterns = c.0.get_all("teleos.humanValidationPattern");
        if human_patterns.is_empty() {
            human_patterns = crate::stories::tasks::DEFAULT_HUMAN_PATTERNS
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        human_patterns.retain(|p| !p.trim().is_empty());

        let agent_command = flags.agent_command.clone().or(agent_command);
        // A custom command with no explicit preset means "use it": asking for both is redundant.
        let agent = match (&flags.agent, agent, &agent_command) {
            (Some(a), _, _) => a.clone(),
            (None, Some(a), _) => a,
            (None, None, Some(_)) => "custom".to_string(),
            (None, None, None) => defaults::AGENT.to_string(),
        };
        if !AGENT_NAMES.contains(&agent.as_str()) {
            return Err(Error::usage_hint(
                format!("unknown agent '{agent}'"),
                format!("choose one of: {}", AGENT_NAMES.join(", ")),
            ));
        }
        if agent == "custom" && agent_command.is_none() {
            return Err(Error::usage_hint(
                "agent 'custom' needs a command line",
                "pass --agent-command '<cmd> <args>' or set teleos.agentCommand",
            ));
        }
        let closeable_threshold = flags
            .closeable_threshold
            .or(threshold)
            .unwrap_or(defaults::CLOSEABLE_THRESHOLD);
        if let Some(h) = flags.stale_hours {
            // 0 is "no grace period": every dead session counts at once.
            if !(h >= 0.0 && h.is_finite()) {
                return Err(Error::usage(
                    "--stale-hours must be a number of hours, 0 or more",
                ));
            }
        }
        if !(0.0..=1.0).contains(&closeable_threshold) {
            return Err(Error::usage(format!(
                "--threshold must be between 0 and 1, not {closeable_threshold}"
            )));
        }

        let stall_timeout = match stall_timeout {
            Some(n) => (n > 0).then(|| Duration::from_secs(n as u64)),
            // opencode needs no login and, offline, retries silently forever.
            None if agent == "opencode" => Some(Duration::from_secs(defaults::OPENCODE_STALL_SECS)),
            None => None,
        };
        Ok(Settings {
            sprint_artifacts: flags
                .sprint_artifacts
                .clone()
                .or_else(|| c.string("teleos.sprintArtifacts").map(PathBuf::from)),
            closeable_threshold,
            task_sections,
            human_patterns,
            exclude_patterns: c.0.get_all("teleos.excludePattern"),
            recursive: flags.recursive.or(recursive).unwrap_or(false),
            max_worktrees: flags
                .max_worktrees
                .or(max_worktrees)
                .unwrap_or(defaults::MAX_WORKTREES),
            agent,
            agent_command,
            agent_program: c.string("teleos.agentProgram").map(PathBuf::from),
            agent_args: c.0.get_all("teleos.agentArgs"),
            model: flags.model.clone().or_else(|| c.string("teleos.model")),
            max_turns: flags.max_turns.or(max_turns.map(|n| n as u32)),
            story_timeout: Duration::from_secs(
                flags
                    .story_timeout
                    .or(story_timeout.map(|n| n as u64))
                    .unwrap_or(defaults::STORY_TIMEOUT_SECS),
            ),
            stall_timeout,
            rate_limit_backoff: Duration::from_secs_f64(backoff.unwrap_or(60.0)),
            agent_stagger: Duration::from_secs_f64(stagger.unwrap_or(defaults::AGENT_STAGGER_SECS)),
            schedule: schedule.unwrap_or_default(),
            retries: flags
                .retries
                .or(retries.map(|n| n as u32))
                .unwrap_or(defaults::RETRIES),
            circuit_breaker: flags
                .circuit_breaker
                .or(circuit_breaker.map(|n| n as u32))
                .unwrap_or(defaults::CIRCUIT_BREAKER),
            worker_instructions: c.string("teleos.workerInstructions").map(PathBuf::from),
            pipeline_command: c.string("teleos.pipelineCommand"),
            runner: runner.unwrap_or(Runner::Local),
            runner_command: c.string("teleos.runnerCommand"),
            runner_cancel_command: c.string("teleos.runnerCancelCommand"),
            slurm_template: c.string("teleos.slurmTemplate").map(PathBuf::from),
            kubernetes: KubernetesSettings {
                image: c.string("teleos.kubernetesImage"),
                template: c.string("teleos.kubernetesTemplate").map(PathBuf::from),
                namespace: c.string("teleos.kubernetesNamespace"),
                agent_secret: c
                    .string("teleos.kubernetesAgentSecret")
                    .unwrap_or_else(|| "teleos-agent".to_string()),
                git_secret: c
                    .string("teleos.kubernetesGitSecret")
                    .unwrap_or_else(|| "teleos-git".to_string()),
            },
            remote: c
                .string("teleos.remote")
                .unwrap_or_else(|| "origin".to_string()),
            stale_hours: flags
                .stale_hours
                .or(stale_hours)
                .unwrap_or(defaults::STALE_HOURS),
            worktree_dir: c
                .string("teleos.worktreeDir")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(defaults::WORKTREE_DIR)),
            keep_worktrees: keep_worktrees.unwrap_or(false),
            watch_worktrees: watch_worktrees.unwrap_or(true),
            pool_max: pool_max.unwrap_or(defaults::POOL_MAX),
            pool_idle_hours: pool_idle_hours.unwrap_or(defaults::POOL_IDLE_HOURS),
            html_report,
            update_tracker: flags.update_tracker.or(update_tracker).unwrap_or(true),
            setup: setup.unwrap_or_else(|| "auto".to_string()),
            install_command: c.string("teleos.installCommand"),
            setup_timeout: Duration::from_secs(
                setup_timeout.map_or(defaults::SETUP_TIMEOUT_SECS, |n| n as u64),
            ),
            gate,
            gate_timeout: Duration::from_secs(
                gate_timeout
                    .map(|n| n as u64)
                    .unwrap_or(defaults::GATE_TIMEOUT_SECS),
            ),
            gate_repairs: gate_repairs
                .map(|n| n as u32)
                .unwrap_or(defaults::GATE_REPAIRS),
        })
    }
}

/// `--no-gate` over `--gate` over `teleos.gate` over auto-detection. A command that a shell
/// could not split is refused here, before any agent starts.
fn gate_setting(config: Vec<String>, flags: &Overrides) -> Result<GateSetting> {
    if flags.no_gate {
        return Ok(GateSetting::Off("--no-gate".into()));
    }
    let (values, from, key) = if flags.gates.is_empty() {
        (config, "teleos.gate", "teleos.gate")
    } else {
        (flags.gates.clone(), "--gate", "--gate")
    };
    let values: Vec<String> = values
        .into_iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Ok(GateSetting::Auto);
    }
    if values.iter().any(|v| v.eq_ignore_ascii_case("none")) {
        if values.len() > 1 {
            return Err(Error::usage_hint(
                format!("{key} has 'none' and other commands"),
                "use either 'none' (no gates) or the commands to run",
            ));
        }
        return Ok(GateSetting::Off(format!("{key}=none")));
    }
    for v in &values {
        if shlex::split(v).is_none_or(|a| a.is_empty()) {
            return Err(Error::Config {
                key: key.to_string(),
                value: v.clone(),
                reason: "cannot be split into a command line (unbalanced quotes?)".into(),
            });
        }
    }
    Ok(GateSetting::Commands(values, from))
}
#[cfg(test)]
mod tests;
