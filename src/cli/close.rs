//! `git teleos close`: select stories (phase 2), run the agent on each (phase 3), debrief (phase 4).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::agent::{self, AgentConfig, AgentKind};
use crate::batch::footprint::Footprint;
use crate::batch::orphans::{self, CleanOptions};
use crate::batch::parallel::{self, ParallelEnv};
use crate::batch::progress::Progress;
use crate::batch::remote::RemoteEnv;
use crate::batch::results::{self, BatchReport};
use crate::batch::resume::{resume_request, retry_request};
use crate::batch::select::{self, Request, Selection};
use crate::batch::sequential::{self, BatchEnv};
use crate::batch::setup;
use crate::batch::worker;
use crate::error::{Error, ExitCode};
use crate::gate::GatePlan;
use crate::settings::Runner;
use crate::settings::{Overrides, Settings};
use crate::stories::Category;

use super::prompts::{ask_mode, confirm, pick_interactively};
use super::scan::{scan_stories, ScanFlags};
use super::story_inputs::StoryInputs;
use super::{Context, GlobalArgs};

/// Close stories: run the agent once per selected story, verify, and debrief.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Without a terminal, name what to run (story keys, --all, \
--include-pipeline or --retry-blocked) and confirm with --yes; nothing waits on stdin."
)]
pub struct Args {
    /// Story keys, or unambiguous key prefixes (1-2 for 1-2-user-login).
    #[arg(value_name = "STORY")]
    pub stories: Vec<String>,
    /// Select every closeable story.
    #[arg(long)]
    pub all: bool,
    /// Also select every needs-pipeline story (routed, or run by teleos.pipelineCommand).
    #[arg(long)]
    pub include_pipeline: bool,
    /// Run the stories one after another in this checkout.
    #[arg(long, conflicts_with = "parallel")]
    pub sequential: bool,
    /// Run up to N agents at once, each in its own worktree [N: config teleos.maxWorktrees; default 3].
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "0")]
    pub parallel: Option<usize>,
    /// Leave the work on integration-<sid> instead of merging it into the starting branch.
    #[arg(long, requires = "parallel")]
    pub no_land: bool,
    /// On a merge conflict, re-run the agent to merge the integration branch and resolve it.
    #[arg(long, requires = "parallel")]
    pub resolve: bool,
    /// Keep clean worktrees for the next batch instead of removing them [config: teleos.keepWorktrees].
    #[arg(long, requires = "parallel")]
    pub keep_worktrees: bool,
    /// Finish the stories of an interrupted parallel session.
    #[arg(long, value_name = "SID", conflicts_with_all = ["stories", "all", "include_pipeline", "retry_blocked", "sequential"])]
    pub resume: Option<String>,
    /// Per-worktree setup: auto, install, symlink, none [config: teleos.setup].
    #[arg(long, value_name = "MODE", value_parser = ["auto", "install", "symlink", "none"])]
    pub setup: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Show what would run (the stories and the agent command line), run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the batch results as JSON (the source workflow's batch_results shape).
    #[arg(long)]
    pub json: bool,
    /// Re-run the stories the last batch left partially blocked.
    #[arg(long)]
    pub retry_blocked: bool,
    /// JSON answers to blocker questions, added to the prompts (see `debrief --answers-template`).
    #[arg(long, value_name = "FILE", requires = "retry_blocked")]
    pub answers: Option<PathBuf>,
    /// Agent preset [config: teleos.agent; default claude].
    #[arg(long, value_name = "NAME", value_parser = ["claude", "codex", "gemini", "opencode", "custom"])]
    pub agent: Option<String>,
    /// Custom agent command line, prompt on stdin [config: teleos.agentCommand].
    #[arg(long, value_name = "CMD")]
    pub agent_command: Option<String>,
    /// Model for the agent CLI [config: teleos.model].
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Maximum agent turns per story [config: teleos.maxTurns].
    #[arg(long, value_name = "N")]
    pub max_turns: Option<u32>,
    /// Seconds per story before the agent is killed [config: teleos.storyTimeout; default 3600].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Retries of a story that failed with an error [config: teleos.retries; default 2].
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Stop starting stories after this many consecutive failures [config: teleos.circuitBreaker].
    #[arg(long, value_name = "N")]
    pub circuit_breaker: Option<u32>,
    /// Leave sprint-status.yaml alone: agents are told not to edit it and git-teleos writes nothing
    /// to it [config: teleos.updateTracker=false].
    #[arg(long)]
    pub no_tracker: bool,
    /// Stop starting new stories once the agents' reported cost reaches this many US dollars.
    #[arg(long, value_name = "USD")]
    pub max_budget_usd: Option<f64>,
    /// A check every story and the integrated result must pass (repeatable) [config: teleos.gate; default: auto-detected].
    #[arg(long = "gate", value_name = "CMD", conflicts_with = "no_gate")]
    pub gates: Vec<String>,
    /// Run no gates: stories land on boxes and commits verified only.
    #[arg(long)]
    pub no_gate: bool,
    #[command(flatten)]
    pub scan: ScanFlags,
}

impl Args {
    fn overrides(&self, global: &GlobalArgs) -> Result<Overrides, Error> {
        let mut o = self.scan.overrides(global)?;
        o.agent = self.agent.clone();
        o.agent_command = self.agent_command.clone();
        o.model = self.model.clone();
        o.max_turns = self.max_turns;
        o.story_timeout = self.timeout;
        o.retries = self.retries;
        o.circuit_breaker = self.circuit_breaker;
        o.gates = self.gates.clone();
        o.no_gate = self.no_gate;
        o.update_tracker = self.no_tracker.then_some(false);
        Ok(o)
    }
}

/// The agent settings as the runner wants them.
pub fn agent_config(s: &Settings) -> Result<AgentConfig, Error> {
    let kind: AgentKind = s.agent.parse()?;
    Ok(AgentConfig {
        kind,
        program: s.agent_program.clone(),
        custom_command: s.agent_command.clone(),
        model: s.model.clone(),
        max_turns: s.max_turns,
        extra_args: s.agent_args.clone(),
        timeout: s.story_timeout,
        stall_timeout: s.stall_timeout,
        rate_limit_backoff: s.rate_limit_backoff,
        ..AgentConfig::default()
    })
}

fn interactive() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdin()) && console::Term::stderr().is_term()
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    if let Some(b) = args.max_budget_usd {
        if !(b > 0.0 && b.is_finite()) {
            return Err(Error::usage("--max-budget-usd must be a positive amount"));
        }
    }
    let ctx = Context::open(global, &args.overrides(global)?)?;
    let scan = scan_stories(&ctx)?;
    let common_dir = ctx.repo.common_dir().to_path_buf();
    let mut err = std::io::stderr();

    // Phase 2: what to run.
    let mut earlier: Vec<crate::batch::results::StoryResult> = Vec::new();
    let (request, answers) = if let Some(sid) = &args.resume {
        let (req, kept) = resume_request(&common_dir, sid)?;
        earlier = kept;
        (req, BTreeMap::new())
    } else if args.retry_blocked {
        retry_request(&common_dir, args.answers.as_deref())?
    } else {
        let req = Request {
            keys: args.stories.clone(),
            all: args.all,
            include_pipeline: args.include_pipeline,
        };
        (req, BTreeMap::new())
    };
    let tty = interactive();
    let selection = if request.is_empty() {
        if !tty {
            return Err(Error::usage_hint(
                "no stories selected, and no terminal to ask on",
                "name story keys, or pass --all (and --include-pipeline for needs-pipeline stories)",
            ));
        }
        match pick_interactively(&scan, ctx.settings.closeable_threshold)? {
            Some(s) => s,
            None => return Ok(ExitCode::SUCCESS),
        }
    } else {
        select::select(&scan, &request)?
    };
    for n in &selection.notes {
        let _ = writeln!(err, "note: {n}");
    }
    if selection.stories.is_empty() {
        let _ = writeln!(
            err,
            "Nothing to do: no closeable or needs-pipeline story selected."
        );
        return Ok(ExitCode::SUCCESS);
    }
    print_plan(&mut err, &selection, &ctx.settings);
    let gate_plan = GatePlan::resolve(&ctx.settings.gate, &ctx.root);
    for line in gate_plan.describe() {
        let _ = writeln!(err, "{line}");
    }
    if args.dry_run {
        if selection.closeable() > 0 {
            print_agent_command(&mut err, &ctx, &common_dir, &selection)?;
        }
        let _ = writeln!(err, "dry run: nothing was started.");
        return Ok(ExitCode::SUCCESS);
    }
    let slots = match (args.parallel, args.sequential) {
        (Some(0), _) => Some(ctx.settings.max_worktrees),
        (Some(n), _) => Some(n.min(crate::settings::defaults::MAX_WORKTREES_LIMIT)),
        (None, true) => None,
        (None, false) if args.resume.is_some() => Some(ctx.settings.max_worktrees),
        (None, false) if tty => ask_mode(ctx.settings.max_worktrees)?,
        (None, false) => {
            return Err(Error::usage_hint(
                "choose how to run the stories, there is no terminal to ask on",
                "pass --sequential (in this checkout) or --parallel [N] (N worktrees)",
            ))
        }
    };
    if !args.yes {
        if !tty {
            return Err(Error::usage_hint(
                "refusing to start agents without confirmation, and there is no terminal to ask on",
                "pass --yes to confirm",
            ));
        }
        let n = selection.stories.len();
        if !confirm(&format!("Start {}?", plural(n, "story", "stories")))? {
            let _ = writeln!(err, "Nothing started.");
            return Ok(ExitCode::SUCCESS);
        }
    }

    // Set-up checks before anything is created: a dirty checkout (sequential mode commits in
    // it), an agent that is missing or not logged in, a setup that cannot work.
    let branch = match slots {
        None => sequential::check_checkout(&ctx.repo)?,
        Some(_) => crate::git::current_branch(&ctx.repo)?,
    };
    // The agents commit, and so does git-teleos (merges, snapshots, reflogs): git must know who.
    if selection.closeable() > 0 {
        crate::git::require_identity(&ctx.repo)?;
    }
    let agent_cfg = agent_config(&ctx.settings)?;
    // With a remote runner the agents run elsewhere: their machines check their own login.
    let runner = ctx.settings.runner;
    let command_runner = slots.is_some() && runner.is_remote();
    if slots.is_some() && runner == Runner::Command && ctx.settings.runner_command.is_none() {
        return Err(Error::usage_hint(
            "teleos.runner is command, but teleos.runnerCommand is not set",
            "set it, e.g.: git config teleos.runnerCommand 'ssh build1 git teleos run-story --remote {remote} --base {base} --story {story} --key {key} --session {session}'",
        ));
    }
    if selection.closeable() > 0 && !command_runner {
        agent::preflight(&agent_cfg)?;
    }
    let setup_mode = args
        .setup
        .clone()
        .unwrap_or_else(|| ctx.settings.setup.clone());
    let setup_plan = setup::plan(
        &setup_mode,
        ctx.settings.install_command.as_deref(),
        &ctx.root,
    )
    .map_err(|e| {
        Error::usage_hint(
            e.to_string(),
            "set teleos.installCommand, or use --setup none",
        )
    })?;
    let instructions = match &ctx.settings.worker_instructions {
        Some(p) => {
            let path = ctx.root.join(p);
            Some(std::fs::read_to_string(&path).map_err(|e| Error::Config {
                key: "teleos.workerInstructions".into(),
                value: p.display().to_string(),
                reason: format!("cannot read {}: {e}", path.display()),
            })?)
        }
        None => None,
    };

    // A batch that ends in a setup error before any work (an agent that turns out not to be
    // authenticated) leaves all of this as it was.
    let session_id = args
        .resume
        .clone()
        .unwrap_or_else(crate::batch::new_session_id);
    let logs_dir = worker::logs_dir(&common_dir, &session_id);
    let teleos_dir = results::results_dir(&common_dir);
    let worktrees_dir = ctx.worktrees_dir();
    let manifest = crate::manifest::ManifestFile::new(&worktrees_dir);
    let footprint = Footprint::capture(
        &[
            manifest.path().to_path_buf(),
            manifest.lock_path().to_path_buf(),
            common_dir.join("info").join("exclude"),
        ],
        &[
            Footprint::dirs_up_to(&ctx.main_root, &worktrees_dir),
            vec![teleos_dir.join("logs"), teleos_dir.clone()],
        ]
        .concat(),
        std::slice::from_ref(&logs_dir),
    );

    // Ctrl-C / SIGTERM: stop the agents, record the batch, exit 128+n. A second one exits at
    // once (stopping agents can take their kill grace, a stuck step longer): the agents then
    // die with us (parent-death signal) and a later clean-up rescues what they left. The
    // shutdown action is registered first so it sees the flag as the first signal left it.
    let cancel = Arc::new(AtomicBool::new(false));
    let signal = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(
            sig,
            ExitCode::signal(sig).into(),
            Arc::clone(&cancel),
        );
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
        let _ = signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize);
    }
    // Say, once, what the first signal does and how to skip the wait (a thread of its own:
    // nothing may be printed from a signal handler).
    let signals = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
    if let Ok(mut caught) = signal_hook::iterator::Signals::new(signals) {
        std::thread::spawn(move || {
            if caught.forever().next().is_some() {
                eprintln!(
                    "\ninterrupted: stopping the agents and keeping their work; \
                     press Ctrl-C again to exit at once"
                );
            }
        });
    }

    let inputs = StoryInputs::new(&ctx, &scan, agent_cfg, instructions, logs_dir, gate_plan);
    let mode = match slots {
        Some(n) if command_runner => {
            format!("{} runner ({})", runner.name(), plural(n, "job", "jobs"))
        }
        Some(n) => format!("parallel ({})", plural(n, "worktree", "worktrees")),
        None => "sequential".to_string(),
    };
    let mut report = BatchReport {
        session_id: session_id.clone(),
        mode: mode.clone(),
        agent: ctx.settings.agent.clone(),
        started_at: crate::batch::now_iso8601(),
        finished_at: None,
        branch: branch.clone(),
        stories: earlier,
        stopped: None,
        notes: Vec::new(),
        not_landed: false,
        gate_plan: inputs.gate_plan.describe(),
        gates_off: inputs.gate_plan.off_note(),
        integration_gates: Vec::new(),
        governor: None,
        setup_error: None,
        started_ms: Some(crate::batch::timing::now_ms()),
        finished_ms: None,
        lanes: Vec::new(),
    };
    let _ = writeln!(
        err,
        "Session {session_id}: {}, {mode}, agent {}; logs in {}",
        plural(selection.stories.len(), "story", "stories"),
        ctx.settings.agent,
        inputs.logs_dir.display()
    );
    let story_env = inputs.env(&ctx.settings, &cancel, slots.is_some());
    match slots {
        None => {
            let mut env = BatchEnv {
                story: story_env,
                root: &ctx.root,
                branch: branch.as_deref(),
                session_id: &session_id,
                agent_name: &ctx.settings.agent,
                threshold: ctx.settings.closeable_threshold,
                circuit_breaker: ctx.settings.circuit_breaker,
                max_budget_usd: args.max_budget_usd,
                pipeline_command: ctx.settings.pipeline_command.as_deref(),
                answers: &answers,
                worktrees_dir: &ctx.root.join(&ctx.settings.worktree_dir),
                progress: &mut err,
            };
            sequential::run(&mut env, &selection.stories, &mut report)?;
        }
        Some(n) => {
            let (closeable, routed): (Vec<_>, Vec<_>) = selection
                .stories
                .iter()
                .cloned()
                .partition(|s| s.category == Category::Closeable);
            for story in &routed {
                let r = sequential::route(
                    ctx.settings.pipeline_command.as_deref(),
                    &story_env,
                    story,
                    &ctx.root,
                );
                let _ = writeln!(
                    err,
                    "{}",
                    sequential::status_line(&r, ctx.settings.closeable_threshold)
                );
                report.stories.push(r);
            }
            if !closeable.is_empty() && command_runner {
                let line = |l: &str| {
                    if !global.quiet {
                        eprintln!("{l}");
                    }
                };
                let env = RemoteEnv {
                    story: story_env,
                    root: &ctx.root,
                    session_id: &session_id,
                    slots: n,
                    settings: &ctx.settings,
                    // A job runs the agent up to 1 + retries times, each within the timeout.
                    timeout: ctx.settings.story_timeout * (ctx.settings.retries + 1),
                    land: !args.no_land,
                    progress: &line,
                };
                crate::batch::remote::run(&env, closeable, &mut report)?;
            } else if !closeable.is_empty() {
                let progress = Progress::new(
                    n.min(closeable.len()),
                    closeable.len(),
                    console::Term::stderr().is_term(),
                    global.quiet,
                    Box::new(std::io::stderr()),
                );
                let env = ParallelEnv {
                    story: story_env,
                    root: &ctx.root,
                    worktrees_dir,
                    slots: n,
                    session_id: &session_id,
                    circuit_breaker: ctx.settings.circuit_breaker,
                    max_budget_usd: args.max_budget_usd,
                    answers: &answers,
                    setup: setup_plan,
                    setup_timeout: ctx.settings.setup_timeout,
                    land: !args.no_land,
                    resolve: args.resolve,
                    keep_worktrees: args.keep_worktrees || ctx.settings.keep_worktrees,
                    watch_worktrees: ctx.settings.watch_worktrees,
                    stagger: ctx.settings.agent_stagger,
                    pool_max: ctx.settings.pool_max,
                    schedule: ctx.settings.schedule,
                    progress: &progress,
                };
                // Orphans first, quietly (README, "Orphaned sessions"); a failure never stops the
                // batch.
                clean_orphans_before(&ctx, args.resume.as_deref(), &mut err);
                parallel::run(&env, closeable, &mut report)?;
            }
        }
    }
    if let Some(detail) = report.setup_error.take() {
        for problem in footprint.restore() {
            let _ = writeln!(err, "warning: could not undo {problem}");
        }
        for n in &report.notes {
            let _ = writeln!(err, "note: {n}");
        }
        return Err(agent::AgentError::NotLoggedIn {
            kind: inputs.agent.kind,
            detail,
        }
        .into());
    }
    report.finished_at = Some(crate::batch::now_iso8601());
    report.finished_ms = Some(crate::batch::timing::now_ms());
    let saved = results::save(&common_dir, &report)?;
    let _ = writeln!(err, "Results saved in {}", saved.display());
    if let Some(h) = &ctx.settings.html_report {
        // The report is a convenience: failing to write it never fails the batch.
        let path = h.path(&common_dir, &ctx.root, &report.session_id);
        match super::report::write_html(&path, &report) {
            Ok(()) => {
                let _ = writeln!(err, "HTML report written to {}", path.display());
            }
            Err(e) => {
                let _ = writeln!(err, "warning: could not write the HTML report: {e}");
            }
        }
    }

    super::print_report(&mut std::io::stdout().lock(), &report, args.json)?;
    if cancel.load(Ordering::SeqCst) {
        let sig = signal.load(Ordering::SeqCst) as i32;
        return Ok(ExitCode::signal(if sig == 0 { 2 } else { sig }));
    }
    Ok(report.exit_code())
}

/// The exact command line the preset would run for the first closeable story (in this
/// checkout; a parallel batch runs the same in each worktree). `scripts/check-real-clis.sh`
/// feeds it to the real CLIs.
fn print_agent_command(
    err: &mut dyn Write,
    ctx: &Context,
    common_dir: &std::path::Path,
    selection: &Selection,
) -> Result<(), Error> {
    let cfg = agent_config(&ctx.settings)?;
    let key = selection
        .stories
        .iter()
        .find(|s| s.category == Category::Closeable)
        .map(|s| worker::safe_name(&s.story_key))
        .unwrap_or_default();
    let log = worker::logs_dir(common_dir, "dry-run").join(format!("{key}.log"));
    let output_file = PathBuf::from(format!("{}.final.txt", log.display()));
    match agent::build_invocation(&cfg, &ctx.root, &output_file) {
        Ok(inv) => {
            let env: String = inv.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
            let _ = writeln!(err, "Agent command: {env}{}", inv.display());
        }
        Err(e) => {
            let _ = writeln!(err, "Agent command: not available: {e}");
        }
    }
    Ok(())
}

/// Clean orphaned sessions before a parallel batch, keeping `resuming`; one line per session
/// cleaned, and a warning (never an error) when it fails.
fn clean_orphans_before(ctx: &Context, resuming: Option<&str>, err: &mut dyn Write) {
    let mut opts = CleanOptions::new(&ctx.main_root, &ctx.settings);
    opts.keep_session = resuming.map(str::to_string);
    match orphans::clean_orphans(&ctx.repo, &opts) {
        Ok(report) => {
            for d in &report.dropped_idle {
                let _ = writeln!(
                    err,
                    "note: removed idle worktree {} (parked longer than teleos.poolIdleHours){}",
                    d.path.display(),
                    if d.rescued.is_empty() {
                        String::new()
                    } else {
                        format!("; what it held is kept on {}", d.rescued.join(", "))
                    }
                );
            }
            for s in report.cleaned() {
                let kept: Vec<&str> = s.rescued.iter().map(|r| r.ref_name.as_str()).collect();
                let _ = writeln!(
                    err,
                    "note: cleaned orphaned session {}{}",
                    s.session_id,
                    if kept.is_empty() {
                        String::new()
                    } else {
                        format!("; its work is kept on {}", kept.join(", "))
                    }
                );
                for e in &s.errors {
                    let _ = writeln!(err, "warning: clean-up of session {}: {e}", s.session_id);
                }
            }
        }
        Err(e) => {
            let _ = writeln!(err, "warning: could not clean orphaned sessions: {e}");
        }
    }
}

fn print_plan(w: &mut dyn Write, sel: &Selection, settings: &Settings) {
    let _ = writeln!(
        w,
        "Plan: {} via {}, {} routed to the pipeline",
        plural(sel.closeable(), "closeable story", "closeable stories"),
        settings.agent,
        sel.routed()
    );
    for (i, s) in sel.stories.iter().enumerate() {
        let what = if s.category == Category::Closeable {
            format!("close ({} of {} tasks left)", s.unchecked, s.total)
        } else {
            "route to pipeline".to_string()
        };
        let deps = if s.depends_on.is_empty() {
            String::new()
        } else {
            format!(" after {}", s.depends_on.join(", "))
        };
        let _ = writeln!(w, "  {:>3}. {} — {what}{deps}", i + 1, s.story_key);
    }
}

/// `1 story`, `2 stories`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
