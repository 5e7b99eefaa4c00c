//! `git teleos run-story`: one story as a job on another machine (README, "More than one
//! machine"). In an empty folder: fetch the base from the shared remote, run the agent exactly
//! as a local worker does, and push the story's commits and its result back under
//! `refs/teleos/<sid>/`. It needs nothing else of the user's machine and pushes nowhere else.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::agent;
use crate::batch::results::Outcome;
use crate::batch::worker;
use crate::error::{Error, ExitCode};
use crate::gate::GatePlan;
use crate::remote;
use crate::settings::Overrides;

use super::scan::scan_stories;
use super::story_inputs::StoryInputs;
use super::{Context, GlobalArgs};

/// Run one story as a job: fetch its base, run the agent, push the result (for runners).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Run in an empty folder. Pushes only refs/teleos/<SID>/stories/<KEY> and \
refs/teleos/<SID>/results/<KEY> to the remote. Exit 0 when the story completed, 1 when it did \
not, 2 when the job could not be set up."
)]
pub struct Args {
    /// URL of the shared remote holding the base commit.
    #[arg(long, value_name = "URL", env = "TELEOS_REMOTE")]
    pub remote: String,
    /// The commit to start from.
    #[arg(long, value_name = "SHA", env = "TELEOS_BASE")]
    pub base: String,
    /// The story file, relative to the repository root.
    #[arg(long, value_name = "PATH", env = "TELEOS_STORY")]
    pub story: PathBuf,
    /// The session id of the batch this job belongs to.
    #[arg(long, value_name = "SID", env = "TELEOS_SESSION")]
    pub session: String,
    /// The story's key in ref names [default: the story file's stem].
    #[arg(long, value_name = "KEY", env = "TELEOS_KEY")]
    pub key: Option<String>,
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let sid = args.session.as_str();
    if !crate::manifest::is_valid_sid(sid) {
        return Err(Error::usage(format!(
            "'{sid}' is not a session id (6 lowercase hex characters)"
        )));
    }
    if !args.base.chars().all(|c| c.is_ascii_hexdigit()) || !(4..=64).contains(&args.base.len()) {
        return Err(Error::usage(format!(
            "'{}' is not a commit id (hexadecimal)",
            args.base
        )));
    }
    let story_path = relative_path(&args.story)?;
    let key = match &args.key {
        Some(k) => k.clone(),
        None => story_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if !remote::is_valid_key(&key) {
        return Err(Error::usage_hint(
            format!("'{key}' cannot be a story key in a ref name"),
            "pass --key with letters, digits, '-', '_' or '.'",
        ));
    }
    let dir = match &global.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| Error::io("current directory", e))?,
    };
    require_empty(&dir)?;
    let mut err = std::io::stderr();

    // The checkout: only the base and what it reaches, blobs on demand.
    remote::git(&dir, &["init", "-q"])?;
    let how = remote::fetch_base(&dir, &args.remote, &args.base, &remote::base_ref(sid, &key))
        .map_err(|e| {
            Error::setup(
                format!("cannot fetch {} from {}: {e}", args.base, args.remote),
                "check the URL, the job's git credentials, and that the orchestrator pushed the base",
            )
        })?;
    let branch = format!("teleos-{sid}-{key}");
    remote::git(&dir, &["checkout", "-q", "-b", &branch, &args.base]).map_err(|e| {
        Error::setup(
            format!("cannot check out {}: {e}", args.base),
            "the base must be a commit the remote holds",
        )
    })?;
    let _ = writeln!(err, "Fetched {} ({how}) into {}", args.base, dir.display());

    // From here on, exactly what `close` does for one story in a worktree.
    let job_global = GlobalArgs {
        dir: Some(dir.clone()),
        ..global.clone()
    };
    let ctx = Context::open(&job_global, &Overrides::default())?;
    let scan = scan_stories(&ctx)?;
    let story = scan
        .stories
        .iter()
        .find(|s| s.path == story_path)
        .cloned()
        .ok_or_else(|| {
            Error::usage_hint(
                format!("no story {} at {}", story_path.display(), args.base),
                "pass the story file's path relative to the repository root",
            )
        })?;
    crate::git::require_identity(&ctx.repo)?;
    let agent_cfg = super::close::agent_config(&ctx.settings)?;
    agent::preflight(&agent_cfg)?;
    let instructions = match &ctx.settings.worker_instructions {
        Some(p) => std::fs::read_to_string(ctx.root.join(p)).ok(),
        None => None,
    };

    // Ctrl-C / SIGTERM stop the agent; its result (cancelled) is still pushed.
    let cancel = Arc::new(AtomicBool::new(false));
    let signal = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
        let _ = signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize);
    }
    // As `close` does: agents are told the main tracker's folder, the writer knows them all;
    // the story gate and its repair rounds run here, on the job's machine, as in a worktree.
    let gate_plan = GatePlan::resolve(&ctx.settings.gate, &ctx.root);
    for line in gate_plan.describe() {
        let _ = writeln!(err, "{line}");
    }
    let inputs = StoryInputs::new(
        &ctx,
        &scan,
        agent_cfg,
        instructions,
        worker::logs_dir(ctx.repo.common_dir(), sid),
        gate_plan,
    );
    let env = inputs.env(&ctx.settings, &cancel, true);
    let _ = writeln!(err, "Running {} on branch {branch}", story.story_key);
    let mut result = worker::close_story(&env, &story, &ctx.root, Some(&branch), &Vec::new(), None);

    // Back to the remote: the commits (when there are any) and the result, in one push.
    let tip = remote::git(&dir, &["rev-parse", "HEAD"])?
        .stdout_text()
        .trim()
        .to_string();
    let made_commits = !tip.starts_with(&args.base) && !args.base.starts_with(&tip);
    let mut updates = Vec::new();
    // Uncommitted leftovers are work too: saved as a commit beside the story's.
    if !result.verified_clean {
        let msg = format!("teleos: uncommitted work of {key}");
        let snap = gix::open(&dir)
            .map_err(crate::git::gix_err)
            .and_then(|r| crate::git::snapshot_uncommitted(&r, &msg));
        if let Ok(Some(id)) = snap {
            let name = remote::uncommitted_ref(sid, &key);
            let saved = format!("; they are saved on {name} on the remote");
            match result
                .discrepancies
                .iter_mut()
                .find(|d| d.starts_with(worker::UNCOMMITTED))
            {
                Some(d) => d.push_str(&saved),
                None => result
                    .discrepancies
                    .push(format!("{}{saved}", worker::UNCOMMITTED)),
            }
            updates.push((id.to_string(), name));
        }
    }
    let json = serde_json::to_vec_pretty(&result)
        .map_err(|e| Error::Internal(format!("cannot encode the result: {e}")))?;
    let log = agent_logs(&result);
    let message = remote::result_message(sid, &key, made_commits.then_some(tip.as_str()));
    let result_commit = remote::commit_files(
        &dir,
        &[(remote::RESULT_FILE, &json), (remote::LOG_FILE, &log)],
        &message,
    )?;
    if made_commits {
        updates.push((tip.clone(), remote::stories_ref(sid, &key)));
    }
    updates.push((result_commit, remote::results_ref(sid, &key)));
    remote::push_refs(&dir, &args.remote, sid, &updates).map_err(|e| {
        Error::setup(
            format!("cannot push the result to {}: {e}", args.remote),
            "the job needs push access to refs/teleos/ on the remote",
        )
    })?;
    let _ = writeln!(
        err,
        "{}: {}{}; result pushed to {}",
        story.story_key,
        crate::batch::timing::outcome_name(result.outcome),
        result
            .error_message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        remote::results_ref(sid, &key)
    );
    if cancel.load(Ordering::SeqCst) {
        let sig = signal.load(Ordering::SeqCst) as i32;
        return Ok(ExitCode::signal(if sig == 0 { 2 } else { sig }));
    }
    Ok(if result.outcome == Outcome::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::INCOMPLETE
    })
}

/// The story path as given, relative and inside the repository.
fn relative_path(p: &Path) -> Result<PathBuf, Error> {
    let inside = p
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if p.as_os_str().is_empty() || !inside {
        return Err(Error::usage_hint(
            format!("'{}' is not a path inside the repository", p.display()),
            "pass the story file's path relative to the repository root",
        ));
    }
    Ok(p.components().collect())
}

/// The job writes a repository here: only into an empty folder, never over someone's files.
fn require_empty(dir: &Path) -> Result<(), Error> {
    let mut entries = std::fs::read_dir(dir).map_err(|e| {
        Error::usage_hint(
            format!("cannot read {}: {e}", dir.display()),
            "run git teleos run-story in an empty folder",
        )
    })?;
    if entries.next().is_some() {
        return Err(Error::usage_hint(
            format!("{} is not empty", dir.display()),
            "run git teleos run-story in a new, empty folder",
        ));
    }
    Ok(())
}

/// Every attempt's log, first to last, as one file.
fn agent_logs(result: &crate::batch::results::StoryResult) -> Vec<u8> {
    let mut paths: Vec<&Path> = result
        .timeline
        .iter()
        .filter_map(|a| a.log_path.as_deref())
        .collect();
    if paths.is_empty() {
        paths.extend(result.log_path.as_deref());
    }
    let mut out = Vec::new();
    for p in paths {
        if let Ok(bytes) = std::fs::read(p) {
            out.extend_from_slice(&bytes);
        }
    }
    out
}
