//! Running the agent CLI on one story: the log's header and footer, reading the answer, and
//! retries with back-off when a rate limit turns it away. Starting, watching and stopping the
//! child (stdin, timeouts, process group) is `crate::process`'s job.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::envelope::{interpret, mentions_rate_limit};
use super::error::AgentError;
use super::gate::StartGate;
use super::preset::{build_invocation, AgentConfig, Invocation};
use crate::process::{tail_str, Cmd, Stop};

/// One run of the agent on one story.
pub struct RunRequest<'a> {
    /// The checkout the agent works in.
    pub cwd: &'a Path,
    /// Written to the agent's stdin, never put on a command line.
    pub prompt: &'a str,
    /// stdout and stderr are appended here (parent folders are created).
    pub log_path: &'a Path,
    pub config: &'a AgentConfig,
    /// Set by the caller (e.g. on Ctrl-C) to stop the agent.
    pub cancel: &'a AtomicBool,
    /// Called with the agent's process group id once it has started.
    pub on_spawn: Option<&'a (dyn Fn(i32) + Sync)>,
    /// Asked before each start and told of rate limits (parallel batches share one).
    pub start_gate: Option<&'a dyn StartGate>,
}

impl<'a> RunRequest<'a> {
    /// A run on its own: no one told of its process group, no start gate.
    pub fn new(
        cwd: &'a Path,
        prompt: &'a str,
        log_path: &'a Path,
        config: &'a AgentConfig,
        cancel: &'a AtomicBool,
    ) -> RunRequest<'a> {
        RunRequest {
            cwd,
            prompt,
            log_path,
            config,
            cancel,
            on_spawn: None,
            start_gate: None,
        }
    }
}

/// How the run ended. Story-level failures are described here, not returned as errors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutcome {
    pub exit_code: Option<i32>,
    /// The signal that ended the agent, when one did.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stalled: bool,
    pub cancelled: bool,
    /// The agent's final answer, read from its output protocol.
    pub final_text: Option<String>,
    /// A failure the CLI's output reported (e.g. "is_error: Not logged in").
    pub failure: Option<String>,
    /// The last attempt was turned away by a rate or usage limit (retries exhausted).
    pub rate_limited: bool,
    /// The CLI says it is not authenticated: a setup error, never retried.
    pub setup_error: Option<String>,
    /// What the CLI reported without failing (e.g. codex error items).
    pub warnings: Vec<String>,
    /// Time spent waiting on rate limits (back-off and the shared pause), over all attempts.
    pub rate_limit_wait: Duration,
    /// Each of those waits, as (start, end) in milliseconds since the Unix epoch, for the
    /// batch's timeline.
    pub waits: Vec<(i64, i64)>,
    /// Cost reported by the CLI, summed over attempts.
    pub cost_usd: Option<f64>,
    /// Wall-clock time over all attempts, back-off included.
    pub duration: Duration,
    /// How many times the agent was started.
    pub attempts: u32,
    /// The end of stderr, for error messages (the whole of it is in the log).
    pub stderr_tail: String,
}

impl RunOutcome {
    /// The agent finished by itself, exited 0 and its output reported no failure.
    pub fn succeeded(&self) -> bool {
        self.error_reason().is_none()
    }

    /// Why the run counts as failed, in a few words, or `None` when it did not fail.
    pub fn error_reason(&self) -> Option<String> {
        let reason = if self.cancelled {
            "cancelled".to_string()
        } else if self.timed_out {
            format!("timed out after {:.1}s", self.duration.as_secs_f64())
        } else if self.stalled {
            "stalled: no output for too long".to_string()
        } else if self.rate_limited {
            format!(
                "rate or usage limit, still refused after {} attempts{}",
                self.attempts,
                self.failure
                    .as_deref()
                    .map(|f| format!(": {f}"))
                    .unwrap_or_default()
            )
        } else if let Some(sig) = self.signal {
            format!("killed by signal {sig}")
        } else if let Some(f) = &self.failure {
            match self.exit_code {
                Some(0) | None => f.clone(),
                Some(code) => format!("exit code {code}: {f}"),
            }
        } else if self.exit_code != Some(0) {
            let last = self
                .stderr_tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty());
            match last {
                Some(line) => format!(
                    "exit code {}: {}",
                    self.exit_code.unwrap_or(-1),
                    line.trim()
                ),
                None => format!("exit code {}", self.exit_code.unwrap_or(-1)),
            }
        } else {
            return None;
        };
        Some(reason)
    }
}

/// Caps on what a run keeps; the child's pipes are drained past them so it never blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub log_bytes: u64,
    /// stdout kept in memory (its tail: the result is at the end).
    pub stdout_bytes: usize,
    pub stderr_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            log_bytes: 64 << 20,
            stdout_bytes: 16 << 20,
            stderr_bytes: 64 << 10,
        }
    }
}

const POLL: Duration = Duration::from_millis(50);

/// Run the agent on one story, retrying while a rate or usage limit turns it away.
pub fn run_agent(req: &RunRequest) -> Result<RunOutcome, AgentError> {
    run_agent_with(req, Limits::default())
}

pub(crate) fn run_agent_with(req: &RunRequest, limits: Limits) -> Result<RunOutcome, AgentError> {
    let cfg = req.config;
    // Beside the log, not in the checkout: the agent's commit must not pick it up.
    let output_file = sidecar(req.log_path, "final.txt");
    let inv = build_invocation(cfg, req.cwd, &output_file)?;
    if let Some(parent) = req.log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| {
            AgentError::io(format!("cannot create log folder {}", parent.display()), e)
        })?;
    }
    let started = Instant::now();
    let mut cost: Option<f64> = None;
    let mut attempts = 0;
    let mut waited = Duration::ZERO;
    let mut waits = Vec::new();
    loop {
        attempts += 1;
        if let Some(gate) = req.start_gate {
            let from = crate::time::now_ms();
            let w = gate.acquire(req.cancel);
            if !w.is_zero() {
                waits.push((from, crate::time::now_ms()));
            }
            waited += w;
        }
        let once = run_once(&inv, req, attempts, limits);
        if let Some(gate) = req.start_gate {
            gate.release();
        }
        let mut outcome = once?;
        if let Some(c) = outcome.cost_usd {
            cost = Some(cost.unwrap_or(0.0) + c);
        }
        outcome.attempts = attempts;
        outcome.cost_usd = cost;
        if outcome.rate_limited && !outcome.cancelled {
            let wait = backoff(cfg.rate_limit_backoff, attempts);
            // Every worker holds its next start, not only this one.
            if let Some(gate) = req.start_gate {
                gate.rate_limited(wait);
            }
            if attempts <= cfg.rate_limit_retries {
                append_note(
                    req.log_path,
                    &format!("rate or usage limit; attempt {} in {wait:?}", attempts + 1),
                );
                // With a gate, the next `acquire` waits out the shared pause.
                let t = Instant::now();
                let from = crate::time::now_ms();
                if req.start_gate.is_some() || sleep_unless_cancelled(wait, req.cancel) {
                    waited += t.elapsed();
                    if req.start_gate.is_none() {
                        waits.push((from, crate::time::now_ms()));
                    }
                    continue;
                }
                outcome.cancelled = true;
            }
        }
        outcome.rate_limit_wait = waited;
        outcome.waits = std::mem::take(&mut waits);
        outcome.duration = started.elapsed();
        return Ok(outcome);
    }
}

/// `base`, doubled for each retry after the first.
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
}

/// Returns false when cancelled before `wait` elapsed.
fn sleep_unless_cancelled(wait: Duration, cancel: &AtomicBool) -> bool {
    let until = Instant::now() + wait;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        thread::sleep(POLL.min(until - now));
    }
}

fn sidecar(log_path: &Path, suffix: &str) -> PathBuf {
    let mut name = log_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "agent".into());
    name.push(".");
    name.push(suffix);
    log_path.with_file_name(name)
}

fn run_once(
    inv: &Invocation,
    req: &RunRequest,
    attempt: u32,
    limits: Limits,
) -> Result<RunOutcome, AgentError> {
    let cfg = req.config;
    if let Some(f) = &inv.output_file {
        // A previous attempt's answer must not pass for this one's.
        let _ = fs::remove_file(f);
    }
    // Append: an earlier run's log of the same story is evidence worth keeping.
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(req.log_path)
            .map_err(|e| {
                AgentError::io(
                    format!("cannot open agent log {}", req.log_path.display()),
                    e,
                )
            })
    };
    let mut log = open_log()?;
    // A full disk must not stop the run: the log is evidence, not a requirement.
    let _ = log.write_all(header(inv, req.cwd, attempt, req.prompt.len()).as_bytes());

    let mut cmd = Cmd::new(&inv.program)
        .args(&inv.args)
        .current_dir(req.cwd)
        .stdin(req.prompt)
        .timeout(cfg.timeout)
        .stall_timeout(cfg.stall_timeout)
        .kill_grace(cfg.kill_grace)
        .cancel(req.cancel)
        .capture(limits.stdout_bytes, limits.stderr_bytes)
        .log(open_log()?, limits.log_bytes);
    for (k, v) in &inv.env {
        cmd = cmd.env(k, v);
    }
    if let Some(f) = req.on_spawn {
        cmd = cmd.on_spawn(f);
    }
    let out = cmd.run()?;

    let exit_code = out.code();
    let stdout = out.stdout_text();
    let stderr = out.stderr_text();
    let file_text = inv
        .output_file
        .as_ref()
        .and_then(|f| fs::read_to_string(f).ok());
    let envelope = interpret(inv.kind, exit_code, &stdout, &stderr, file_text.as_deref());
    let killed_by_us = out.stopped.is_some();
    let failed = exit_code != Some(0) || envelope.failure.is_some();
    let rate_limited = !killed_by_us && failed && envelope.setup_error.is_none() && {
        envelope.rate_limited || {
            let mut haystack = envelope.failure.clone().unwrap_or_default();
            haystack.push('\n');
            haystack.push_str(tail_str(&stderr, 8 << 10));
            haystack.push('\n');
            haystack.push_str(tail_str(&stdout, 8 << 10));
            mentions_rate_limit(&haystack)
        }
    };
    let outcome = RunOutcome {
        exit_code,
        signal: out.signal(),
        timed_out: out.stopped == Some(Stop::Timeout),
        stalled: out.stopped == Some(Stop::Stall),
        cancelled: out.stopped == Some(Stop::Cancel),
        final_text: envelope.final_text,
        failure: envelope.failure,
        rate_limited,
        setup_error: envelope.setup_error,
        warnings: envelope.warnings,
        rate_limit_wait: Duration::ZERO,
        waits: Vec::new(),
        cost_usd: envelope.cost_usd,
        duration: out.duration,
        attempts: attempt,
        stderr_tail: tail_str(&stderr, 2048).to_string(),
    };
    let _ = log.write_all(footer(&outcome, out.stopped).as_bytes());
    Ok(outcome)
}

fn header(inv: &Invocation, cwd: &Path, attempt: u32, prompt_len: usize) -> String {
    let env: Vec<String> = inv.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "=== git-teleos agent run, attempt {attempt} ===\nstarted: {}\ncwd: {}\nargv: {}\n{}prompt: {prompt_len} bytes on stdin\n--- stdout and stderr ---\n",
        utc_now(),
        cwd.display(),
        inv.display(),
        if env.is_empty() { String::new() } else { format!("env: {}\n", env.join(" ")) },
    )
}

fn footer(outcome: &RunOutcome, stop: Option<Stop>) -> String {
    let how = match (outcome.exit_code, outcome.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    };
    let stopped = match stop {
        Some(Stop::Timeout) => ", stopped: timeout",
        Some(Stop::Stall) => ", stopped: no output (stall timeout)",
        Some(Stop::Cancel) => ", stopped: cancelled",
        None => "",
    };
    let failure = outcome
        .failure
        .as_deref()
        .map(|f| format!(", failure: {f}"))
        .unwrap_or_default();
    format!(
        "\n=== end: {how} after {:.1}s{stopped}{failure} ===\n",
        outcome.duration.as_secs_f64()
    )
}

fn append_note(path: &Path, msg: &str) {
    if let Ok(mut f) = OpenOptions::new().append(true).open(path) {
        let _ = writeln!(f, "[git-teleos] {msg}");
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, for the log headers.
fn utc_now() -> String {
    crate::time::now_iso8601()
}

#[cfg(test)]
mod tests;
