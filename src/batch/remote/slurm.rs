//! `teleos.runner=slurm`: one `sbatch` array job per wave of stories, cancelled with `scancel`.
//!
//! The job script is a template (`contrib/slurm/teleos-story.sbatch`, compiled in; replaced by
//! `teleos.slurmTemplate`) whose `{{placeholders}}` [`render`] fills with shell-quoted data: a
//! story path or a remote URL is always one quoted word, never code. Array task `i` runs the
//! wave's story `i`. The script goes to `sbatch --parsable` on stdin; `squeue` says which tasks
//! ended without success (and `scontrol` why, and where their output is), `scancel` stops one.
//! Results come back through the remote, as for every engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::batch::worker::safe_name;
use crate::error::{Error, Result};
use crate::process::{Cmd, Output};
use crate::settings::Settings;

use super::engine::{Engine, EngineError, JobContext, JobSpec};

/// The built-in job script.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../../contrib/slurm/teleos-story.sbatch");

/// `sbatch`, `squeue`, `scontrol` and `scancel` get this long: slurmctld answers in
/// milliseconds when it is up, and a hung controller must not hang the batch.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the end of a batch waits for tasks that delivered their result to end.
const FINISH_WAIT: Duration = Duration::from_secs(10);

/// How much of a dead job's output goes into its reason.
const OUTPUT_LINES: usize = 5;

/// A job script that cannot be filled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("the Slurm job template names an unknown placeholder {{{{{0}}}}}")]
    UnknownPlaceholder(String),
    #[error("the Slurm job template has a '{{{{' that is never closed")]
    Unclosed,
    #[error("{what} holds a NUL byte, which no shell word can carry")]
    Nul { what: &'static str },
    #[error("the session id '{0}' is not made of letters, digits, '-' and '_'")]
    Session(String),
    #[error("a wave needs at least one story")]
    Empty,
}

/// One word for bash: left bare when it holds only characters no shell treats specially,
/// else single-quoted (a `'` inside becomes `'\''`).
pub fn sh_quote(s: &str, what: &'static str) -> std::result::Result<String, RenderError> {
    if s.contains('\0') {
        return Err(RenderError::Nul { what });
    }
    let bare = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '+' | ',')
        });
    if bare {
        Ok(s.to_string())
    } else {
        Ok(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// The job script for one wave: every `{{name}}` of `template` replaced.
///
/// - `session`: the session id (checked to be letters, digits, `-`, `_`: it also names the job
///   and its output file in `#SBATCH` lines, which no shell reads);
/// - `array`: `0-<n-1>%<n>`, one task per story, all allowed at once (the wave never holds more
///   stories than the batch has free slots);
/// - `count`: the number of stories;
/// - `remote`: the shared remote's URL, one quoted word;
/// - `keys`, `stories`, `bases`: the wave's story keys, story files and base commits, quoted
///   words in array-index order, for `keys=({{keys}})`.
pub fn render(
    template: &str,
    session: &str,
    remote: &str,
    wave: &[JobSpec],
) -> std::result::Result<String, RenderError> {
    if wave.is_empty() {
        return Err(RenderError::Empty);
    }
    if session.is_empty()
        || !session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(RenderError::Session(session.to_string()));
    }
    let words = |what: &'static str, f: fn(&JobSpec) -> &str| {
        wave.iter()
            .map(|s| sh_quote(f(s), what))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(|w| w.join(" "))
    };
    let n = wave.len();
    let values: [(&str, String); 7] = [
        ("session", session.to_string()),
        ("array", format!("0-{}%{n}", n - 1)),
        ("count", n.to_string()),
        ("remote", sh_quote(remote, "the remote URL")?),
        ("keys", words("a story key", |s| &s.key)?),
        ("stories", words("a story path", |s| &s.story)?),
        ("bases", words("a base commit", |s| &s.base)?),
    ];
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find("}}").ok_or(RenderError::Unclosed)?;
        let name = after[..end].trim();
        let value = values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| RenderError::UnknownPlaceholder(name.to_string()))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The job id in `sbatch --parsable`'s answer (`<id>` or `<id>;<cluster>`).
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// One array task as `squeue` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub job: String,
    pub index: usize,
    pub state: String,
    pub reason: String,
}

/// The squeue format [`parse_squeue`] reads: array job id, task index, state, reason.
pub const SQUEUE_FORMAT: &str = "%F|%K|%T|%r";

/// `squeue --array --noheader --format=SQUEUE_FORMAT` lines; others (a pending range not
/// split, a header) are skipped.
pub fn parse_squeue(stdout: &str) -> Vec<TaskState> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(4, '|');
            let job = f.next()?.trim().to_string();
            let index = f.next()?.trim().parse().ok()?;
            let state = f.next()?.trim().to_string();
            let reason = f.next().unwrap_or("").trim().to_string();
            Some(TaskState {
                job,
                index,
                state,
                reason,
            })
        })
        .collect()
}

/// Slurm's job states in which the job is over, and how: `Some(true)` completed, `Some(false)`
/// ended otherwise, `None` not over (pending, running, completing, suspended, requeued, …).
pub fn ended(state: &str) -> Option<bool> {
    match state {
        "COMPLETED" => Some(true),
        "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL"
        | "DEADLINE" | "OUT_OF_MEMORY" | "REVOKED" | "SPECIAL_EXIT" => Some(false),
        _ => None,
    }
}

/// `scontrol -o show job` fields: `Key=Value` words (values without spaces, which is all this
/// reads: JobState, Reason, ExitCode, StdOut).
pub fn scontrol_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

struct Task {
    job: String,
    index: usize,
    /// Slurm says it is over (or forgot it); its output has been looked for.
    ended: bool,
    /// The loop needs no word of it any more: its death was reported, or it was cancelled.
    reported: bool,
    /// PENDING at the last poll, with Slurm's reason (Priority, Resources…).
    pending: Option<String>,
}

impl Task {
    fn id(&self) -> String {
        format!("{}_{}", self.job, self.index)
    }
}

pub struct SlurmEngine {
    ctx: JobContext,
    template: String,
    template_path: Option<PathBuf>,
    tasks: BTreeMap<String, Task>,
}

/// How `teleos.slurmTemplate` is named in messages.
fn template_name(path: Option<&Path>) -> String {
    path.map_or_else(|| "(built in)".into(), |p| p.display().to_string())
}

/// The engine for `teleos.runner=slurm`: its template read and tried, `sbatch` found.
pub fn engine(settings: &Settings, ctx: JobContext) -> Result<Box<dyn Engine>> {
    Ok(Box::new(SlurmEngine::new(settings, ctx)?))
}

impl SlurmEngine {
    pub fn new(settings: &Settings, ctx: JobContext) -> Result<Self> {
        let template = super::engine::read_template(
            &ctx.root,
            "teleos.slurmTemplate",
            settings.slurm_template.as_ref(),
            DEFAULT_TEMPLATE,
        )?;
        // Tried with stand-in values before anything is pushed: a template naming an unknown
        // placeholder fails the batch cleanly.
        let probe = JobSpec {
            key: "1-1".into(),
            story: "story.md".into(),
            base: "0".repeat(40),
        };
        render(&template, &ctx.session, &ctx.remote, &[probe]).map_err(|e| Error::Config {
            key: "teleos.slurmTemplate".into(),
            value: template_name(settings.slurm_template.as_deref()),
            reason: e.to_string(),
        })?;
        if which::which("sbatch").is_err() {
            return Err(Error::setup(
                "teleos.runner is slurm, but sbatch is not on PATH",
                "run git teleos close on a machine that can submit Slurm jobs (a login node), or install Slurm's client commands",
            ));
        }
        Ok(SlurmEngine {
            ctx,
            template,
            template_path: settings.slurm_template.clone(),
            tasks: BTreeMap::new(),
        })
    }

    /// A Slurm client command; `sbatch` runs in the batch's log folder, so that a template
    /// without `--chdir`/`--output` leaves its files there, never in the user's checkout.
    fn tool(&self, program: &str, args: &[&str]) -> Cmd<'static> {
        Cmd::new(program)
            .args(args)
            .current_dir(&self.ctx.logs_dir)
            .timeout(TOOL_TIMEOUT)
    }

    /// `scontrol -o show job ID`: one line of `Key=Value` words, while slurmctld still
    /// remembers the job; empty when it does not.
    fn show(&self, id: &str) -> String {
        self.tool("scontrol", &["-o", "show", "job", id])
            .run()
            .ok()
            .filter(Output::success)
            .map(|o| o.stdout_text())
            .unwrap_or_default()
    }

    /// Why a task that ended without success did so: its state, Slurm's reason, its exit
    /// code, and the last lines of its output when this machine can read it.
    fn explain(&self, key: &str, task: &Task, state: &str, reason: &str) -> String {
        let id = task.id();
        let line = self.show(&id);
        let mut why = format!("Slurm job {id} ended {state}");
        let reason = scontrol_field(&line, "Reason").unwrap_or(reason);
        let mut detail = Vec::new();
        if !reason.is_empty() && reason != "None" {
            detail.push(reason.to_string());
        }
        // `code:signal`.
        if let Some(code) = scontrol_field(&line, "ExitCode").filter(|c| *c != "0:0") {
            detail.push(format!("exit code {code}"));
        }
        if !detail.is_empty() {
            why.push_str(&format!(" ({})", detail.join(", ")));
        }
        if let Some(tail) = self.keep_output(key, &line) {
            why.push_str(&format!("; its output ends: {tail}"));
        }
        why
    }

    /// Move an ended task's output file (`StdOut` in `line`) into the log folder as
    /// `<key>.job.log`, when this machine can read it (one node, or a shared file system);
    /// returns its last lines, joined.
    fn keep_output(&self, key: &str, line: &str) -> Option<String> {
        let out = PathBuf::from(scontrol_field(line, "StdOut")?);
        let text = std::fs::read_to_string(&out).ok()?;
        let _ = std::fs::create_dir_all(&self.ctx.logs_dir);
        let kept = self
            .ctx
            .logs_dir
            .join(format!("{}.job.log", safe_name(key)));
        if std::fs::write(&kept, &text).is_ok() {
            // Kept with the batch's logs; the job's scratch copy would only pile up.
            let _ = std::fs::remove_file(&out);
        }
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(OUTPUT_LINES)..].join(" | ");
        (!tail.is_empty()).then_some(tail)
    }
}

impl Engine for SlurmEngine {
    fn submit(&mut self, wave: &[JobSpec]) -> std::result::Result<Vec<String>, EngineError> {
        let script =
            render(&self.template, &self.ctx.session, &self.ctx.remote, wave).map_err(|e| {
                EngineError::Setting(Box::new(Error::Config {
                    key: "teleos.slurmTemplate".into(),
                    value: template_name(self.template_path.as_deref()),
                    reason: e.to_string(),
                }))
            })?;
        let _ = std::fs::create_dir_all(&self.ctx.logs_dir);
        let out = self
            .tool("sbatch", &["--parsable"])
            .stdin(script.into_bytes())
            .run_checked()
            .map_err(|e| EngineError::tool("sbatch", e))?;
        let stdout = out.stdout_text();
        let job = parse_job_id(&stdout).ok_or_else(|| EngineError::Unreadable {
            tool: "sbatch",
            reason: format!("no job id in {:?}", stdout.trim()),
        })?;
        let mut names = Vec::with_capacity(wave.len());
        for (index, spec) in wave.iter().enumerate() {
            let task = Task {
                job: job.clone(),
                index,
                ended: false,
                reported: false,
                pending: None,
            };
            names.push(task.id());
            self.tasks.insert(spec.key.clone(), task);
        }
        Ok(names)
    }

    fn poll(&mut self) -> std::result::Result<Vec<(String, EngineError)>, EngineError> {
        let mut jobs: Vec<&str> = self
            .tasks
            .values()
            .filter(|t| !t.ended)
            .map(|t| t.job.as_str())
            .collect();
        jobs.sort_unstable();
        jobs.dedup();
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let list = jobs.join(",");
        let format = format!("--format={SQUEUE_FORMAT}");
        let args = [
            "--noheader",
            "--array",
            "--states=all",
            "--jobs",
            &list,
            &format,
        ];
        let out = self
            .tool("squeue", &args)
            .run()
            .map_err(|e| EngineError::tool("squeue", e))?;
        let listed = if !out.success() && out.stderr_text().contains("Invalid job id") {
            // Every job asked about is over and forgotten (slurmctld keeps ended jobs only
            // MinJobAge seconds).
            Vec::new()
        } else {
            parse_squeue(
                &out.check()
                    .map_err(|e| EngineError::tool("squeue", e))?
                    .stdout_text(),
            )
        };
        let mut died = Vec::new();
        let keys: Vec<String> = self.tasks.keys().cloned().collect();
        for key in keys {
            let task = &self.tasks[&key];
            if task.ended {
                continue;
            }
            let seen = listed
                .iter()
                .find(|s| s.job == task.job && s.index == task.index);
            let pending = seen
                .filter(|s| s.state == "PENDING")
                .map(|s| s.reason.clone());
            if let Some(t) = self.tasks.get_mut(&key) {
                t.pending = pending;
            }
            let task = &self.tasks[&key];
            let why = match seen {
                Some(s) => match ended(&s.state) {
                    None => continue,
                    // Collected already, or cancelled: only its output is wanted now.
                    Some(_) if task.reported => {
                        let _ = self.keep_output(&key, &self.show(&task.id()));
                        None
                    }
                    // Its result is on the remote unless the script skipped run-story.
                    Some(true) => {
                        let _ = self.keep_output(&key, &self.show(&task.id()));
                        Some(format!(
                            "Slurm job {} completed without pushing a result",
                            task.id()
                        ))
                    }
                    Some(false) => Some(self.explain(&key, task, &s.state, &s.reason)),
                },
                None => Some(format!(
                    "Slurm no longer knows job {} (it ended and was forgotten)",
                    task.id()
                )),
            };
            let Some(t) = self.tasks.get_mut(&key) else {
                continue;
            };
            t.ended = true;
            if let Some(why) = why.filter(|_| !t.reported) {
                t.reported = true;
                died.push((key, EngineError::Died(why)));
            }
        }
        Ok(died)
    }

    fn queued(&self) -> Vec<(String, String)> {
        self.tasks
            .iter()
            .filter(|(_, t)| !t.ended)
            .filter_map(|(k, t)| Some((k.clone(), t.pending.clone()?)))
            .collect()
    }

    fn cancel(&mut self, key: &str) -> std::result::Result<(), EngineError> {
        let Some(task) = self.tasks.get_mut(key) else {
            return Ok(());
        };
        task.reported = true;
        let id = task.id();
        self.tool("scancel", &[&id])
            .run_checked()
            .map(|_| ())
            .map_err(|e| EngineError::tool(format!("scancel {id}"), e))
    }

    fn finish(&mut self) {
        // Tasks that pushed their result were collected before Slurm saw them end. They end
        // within moments: wait that long, so that their output joins the batch's logs rather
        // than piling up on the node.
        let until = Instant::now() + FINISH_WAIT;
        while self.tasks.values().any(|t| !t.ended) && Instant::now() < until {
            if self.poll().is_err() {
                break;
            }
            if self.tasks.values().any(|t| !t.ended) {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    /// A wave as the loop hands it over: two stories on one base, one of them with a path no
    /// shell should see bare.
    fn wave() -> Vec<JobSpec> {
        let base = "0123456789abcdef0123456789abcdef01234567".to_string();
        vec![
            JobSpec {
                key: "1-1-first".into(),
                story: "docs/sprint-artifacts/1-1-first.md".into(),
                base: base.clone(),
            },
            JobSpec {
                key: "1-2-second".into(),
                story: "docs/it's $(touch pwned) `x`\n;.md".into(),
                base,
            },
        ]
    }

    const GOLDEN: &str = "tests/it/common/fixtures/slurm/wave.sbatch";

    /// The built-in template, filled for a wave, is byte-identical to the golden file
    /// (`UPDATE_GOLDEN=1` rewrites it after a deliberate change of the template).
    #[test]
    fn the_built_in_template_renders_to_the_golden_script() {
        let got = render(
            DEFAULT_TEMPLATE,
            "a1b2c3",
            "ssh://git@example.com/team/app.git",
            &wave(),
        )
        .unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert_eq!(got, want, "{GOLDEN} is stale; rerun with UPDATE_GOLDEN=1");
        assert!(got.contains("#SBATCH --array=0-1%2\n"), "{got}");
        assert!(!got.contains("{{"), "{got}");
    }

    /// Bash reads each filled value back as exactly the data it was: the rendered script, run as
    /// array task 1 with a `git` that prints its arguments one per line, passes the hostile story
    /// path through whole and runs nothing of it.
    #[test]
    fn bash_reads_every_value_back_as_data() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let git = bin.join("git");
        std::fs::write(
            &git,
            "#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$TMPDIR/args\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
        let remote = "file:///srv/it's here/app.git";
        let script = render(DEFAULT_TEMPLATE, "a1b2c3", remote, &wave()).unwrap();
        let out = Cmd::new("bash")
            .arg("-s")
            .stdin(script.into_bytes())
            .current_dir(tmp.path())
            .env("SLURM_ARRAY_TASK_ID", "1")
            .env("TMPDIR", tmp.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .timeout(Duration::from_secs(30))
            .run_checked()
            .unwrap();
        let text = std::fs::read_to_string(tmp.path().join("args")).unwrap();
        let args: Vec<&str> = text.split_terminator('\0').collect();
        let spec = &wave()[1];
        assert_eq!(
            args,
            [
                "teleos",
                "run-story",
                "--remote",
                remote,
                "--base",
                spec.base.as_str(),
                "--story",
                spec.story.as_str(),
                "--key",
                "1-2-second",
                "--session",
                "a1b2c3"
            ],
            "{}",
            out.stdout_text()
        );
        assert!(!tmp.path().join("pwned").exists());
        // The task's temporary folder is gone once the story ran.
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("teleos-story."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn templates_that_cannot_be_filled_are_refused() {
        let w = wave();
        assert_eq!(
            render("#SBATCH --x={{nope}}\n", "s1", "u", &w),
            Err(RenderError::UnknownPlaceholder("nope".into()))
        );
        assert_eq!(
            render("echo {{keys", "s1", "u", &w),
            Err(RenderError::Unclosed)
        );
        assert_eq!(
            render("{{session}}", "a b", "u", &w),
            Err(RenderError::Session("a b".into()))
        );
        assert_eq!(render("x", "s1", "u", &[]), Err(RenderError::Empty));
        assert!(matches!(
            render("{{remote}}", "s1", "u\0", &w),
            Err(RenderError::Nul { .. })
        ));
        // Spaces inside the braces are allowed, and text without placeholders stays as it is.
        assert_eq!(
            render("n={{ count }} a={{array}} ${x} {y}", "s1", "u", &w).unwrap(),
            "n=2 a=0-1%2 ${x} {y}"
        );
    }

    #[test]
    fn words_are_quoted_only_when_they_need_it() {
        assert_eq!(sh_quote("docs/a-1_b.md", "x").unwrap(), "docs/a-1_b.md");
        assert_eq!(sh_quote("", "x").unwrap(), "''");
        assert_eq!(sh_quote("a b", "x").unwrap(), "'a b'");
        assert_eq!(sh_quote("it's", "x").unwrap(), r"'it'\''s'");
        assert_eq!(sh_quote("$HOME", "x").unwrap(), "'$HOME'");
        assert_eq!(sh_quote("~/x", "x").unwrap(), "'~/x'");
    }

    #[test]
    fn sbatch_and_squeue_answers_are_read() {
        assert_eq!(parse_job_id("42\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("42;cluster-a\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("Submitted batch job 42\n"), None);
        assert_eq!(parse_job_id(""), None);
        // What squeue 22.05 prints for an array whose tasks pend, run and failed.
        let tasks = parse_squeue(
            "7|2|PENDING|JobArrayTaskLimit\n7|1|RUNNING|None\n7|0|FAILED|NonZeroExitCode\n9|N/A|PENDING|Resources\n",
        );
        assert_eq!(tasks.len(), 3);
        assert_eq!(
            tasks[2],
            TaskState {
                job: "7".into(),
                index: 0,
                state: "FAILED".into(),
                reason: "NonZeroExitCode".into()
            }
        );
        assert_eq!(ended("COMPLETED"), Some(true));
        assert_eq!(ended("NODE_FAIL"), Some(false));
        assert_eq!(ended("COMPLETING"), None);
        assert_eq!(ended("PENDING"), None);
        let line = "JobId=8 ArrayJobId=7 ArrayTaskId=0 JobState=FAILED Reason=NonZeroExitCode ExitCode=127:0 StdOut=/tmp/teleos-s1-7_0.out";
        assert_eq!(scontrol_field(line, "ExitCode"), Some("127:0"));
        assert_eq!(scontrol_field(line, "JobId"), Some("8"));
        assert_eq!(
            scontrol_field(line, "StdOut"),
            Some("/tmp/teleos-s1-7_0.out")
        );
        assert_eq!(scontrol_field(line, "Job"), None);
    }
}
