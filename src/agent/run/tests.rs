//! Unit tests of `agent/run.rs`: real child processes (`sh`), no agent CLI.

use super::*;
use crate::agent::kind::AgentKind;
use crate::agent::preset::running_as_root;
use std::os::unix::fs::PermissionsExt;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn q(p: &Path) -> String {
    shlex::try_quote(&p.to_string_lossy())
        .expect("quotable")
        .into_owned()
}

/// A custom command run through `/bin/sh script` (no exec of a freshly written file,
/// which can fail with ETXTBSY while other tests fork).
fn custom(dir: &Path, body: &str) -> AgentConfig {
    let s = script(dir, "agent.sh", body);
    AgentConfig {
        kind: AgentKind::Custom,
        custom_command: Some(format!("/bin/sh {} {}", q(&s), q(dir))),
        timeout: Duration::from_secs(10),
        kill_grace: Duration::from_millis(300),
        rate_limit_backoff: Duration::from_millis(10),
        ..AgentConfig::default()
    }
}

fn run_with(
    dir: &Path,
    cfg: &AgentConfig,
    prompt: &str,
    cancel: &AtomicBool,
    limits: Limits,
) -> RunOutcome {
    let log = dir.join("logs").join("story.log");
    let req = RunRequest::new(dir, prompt, &log, cfg, cancel);
    // Executing a script written a moment ago can hit ETXTBSY if another test forked
    // while its file was open for writing; that is the test's race, not the runner's.
    for _ in 0..20 {
        match run_agent_with(&req, limits) {
            Err(AgentError::Spawn { source, .. })
                if source.raw_os_error() == Some(libc::ETXTBSY) =>
            {
                thread::sleep(Duration::from_millis(50))
            }
            other => return other.expect("run_agent"),
        }
    }
    panic!("script stayed busy")
}

fn run(dir: &Path, cfg: &AgentConfig, prompt: &str) -> RunOutcome {
    run_with(dir, cfg, prompt, &AtomicBool::new(false), Limits::default())
}

fn alive(pid: i32) -> bool {
    if !crate::process::pid_alive(pid) {
        return false;
    }
    // A zombie waiting for a reaper (containers may lack one) is dead for our purpose.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn prompt_arrives_on_stdin_and_output_is_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = custom(dir.path(), "cat\necho to-stderr >&2\n");
    let prompt = "close story 1-2 \"quoted\" $HOME `not run`\n";
    let out = run(dir.path(), &cfg, prompt);
    assert_eq!(out.final_text.as_deref(), Some(prompt));
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(
        (out.exit_code, out.attempts, out.signal),
        (Some(0), 1, None)
    );
    let log = fs::read_to_string(dir.path().join("logs/story.log")).expect("log");
    assert!(log.contains("argv: /bin/sh "), "{log}");
    assert!(log.contains(&format!("cwd: {}", dir.path().display())));
    assert!(log.contains("started: 20"));
    assert!(log.contains(prompt) && log.contains("to-stderr"));
    assert!(log.contains("=== end: exit code 0"));
}

#[test]
fn non_zero_exit_is_reported_not_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = custom(
        dir.path(),
        "cat >/dev/null\necho partial answer\necho boom >&2\nexit 3\n",
    );
    let out = run(dir.path(), &cfg, "p");
    assert_eq!(out.exit_code, Some(3));
    assert!(!out.rate_limited && out.attempts == 1);
    assert_eq!(out.error_reason().as_deref(), Some("exit code 3: boom"));
    assert_eq!(out.final_text.as_deref(), Some("partial answer\n"));
}

#[test]
fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = custom(
        dir.path(),
        "sleep 100 &\necho $! > \"$1/child.pid\"\necho started\nwait\n",
    );
    cfg.timeout = Duration::from_millis(700);
    let t = Instant::now();
    let out = run(dir.path(), &cfg, "");
    assert!(out.timed_out && !out.stalled && !out.cancelled, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(out
        .error_reason()
        .is_some_and(|r| r.starts_with("timed out after")));
    let pid: i32 = fs::read_to_string(dir.path().join("child.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    let until = Instant::now() + Duration::from_secs(2);
    while alive(pid) && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the agent's background child survived");
}

#[test]
fn sigterm_ignored_means_sigkill_after_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = custom(
        dir.path(),
        "trap '' TERM\necho ready\nwhile :; do sleep 1; done\n",
    );
    cfg.timeout = Duration::from_millis(400);
    cfg.kill_grace = Duration::from_millis(400);
    let t = Instant::now();
    let out = run(dir.path(), &cfg, "");
    assert!(out.timed_out);
    assert_eq!(out.signal, Some(libc::SIGKILL));
    assert!(t.elapsed() >= Duration::from_millis(800) && t.elapsed() < Duration::from_secs(4));
}

#[test]
fn stall_timeout_when_silent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = custom(dir.path(), "echo hello\nsleep 30\n");
    cfg.stall_timeout = Some(Duration::from_millis(500));
    let t = Instant::now();
    let out = run(dir.path(), &cfg, "");
    assert!(out.stalled && !out.timed_out, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(out.final_text.as_deref(), Some("hello\n"));
}

#[test]
fn cancel_flag_stops_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = custom(dir.path(), "sleep 30\n");
    let cancel = AtomicBool::new(false);
    let t = Instant::now();
    let out = thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(200));
            cancel.store(true, Ordering::Relaxed);
        });
        run_with(dir.path(), &cfg, "", &cancel, Limits::default())
    });
    assert!(
        out.cancelled && t.elapsed() < Duration::from_secs(3),
        "{out:?}"
    );
}

const RATE_LIMITED_TWICE: &str = "cat >/dev/null\nn=$(cat \"$1/count\" 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > \"$1/count\"\nif [ $n -lt $LIMITED_RUNS ]; then echo 'API Error: 429 rate limit exceeded' >&2; exit 1; fi\necho answer $n\n";

#[test]
fn rate_limited_then_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = custom(
        dir.path(),
        &RATE_LIMITED_TWICE.replace("$LIMITED_RUNS", "3"),
    );
    let out = run(dir.path(), &cfg, "p");
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(out.attempts, 3);
    assert_eq!(out.final_text.as_deref(), Some("answer 3\n"));
    let log = fs::read_to_string(dir.path().join("logs/story.log")).expect("log");
    assert!(log.contains("attempt 3 ==="));
}

#[test]
fn rate_limit_retries_exhausted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = custom(
        dir.path(),
        &RATE_LIMITED_TWICE.replace("$LIMITED_RUNS", "99"),
    );
    cfg.rate_limit_retries = 2;
    let out = run(dir.path(), &cfg, "p");
    assert!(out.rate_limited && !out.succeeded());
    assert_eq!(out.attempts, 3);
    assert!(out
        .error_reason()
        .is_some_and(|r| r.contains("rate or usage limit")));
}

#[test]
fn backoff_doubles() {
    let base = Duration::from_millis(10);
    assert_eq!(
        [1, 2, 3].map(|a| backoff(base, a)),
        [10, 20, 40].map(Duration::from_millis)
    );
    assert!(backoff(Duration::from_secs(60), 40) > Duration::ZERO);
}

#[test]
fn output_past_the_caps_is_drained_and_the_tail_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = custom(
        dir.path(),
        "head -c 300000 /dev/zero | tr '\\0' a\necho END\n",
    );
    let limits = Limits {
        log_bytes: 10_000,
        stdout_bytes: 1_000,
        stderr_bytes: 100,
    };
    let out = run_with(dir.path(), &cfg, "", &AtomicBool::new(false), limits);
    assert!(out.succeeded(), "{out:?}");
    let text = out.final_text.unwrap_or_default();
    assert_eq!(text.len(), 1_000);
    assert!(text.ends_with("aaaEND\n"));
    let log = fs::read_to_string(dir.path().join("logs/story.log")).expect("log");
    assert!(log.len() < 11_000 && log.contains("log truncated at 10000 bytes"));
}

#[test]
fn claude_stand_in_speaks_the_envelope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = script(
        dir.path(),
        "claude",
        "cat >/dev/null\nprintf '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"%s\",\"total_cost_usd\":0.25}' \"${IS_SANDBOX:-unset} $*\"\n",
    );
    let cfg = AgentConfig {
        program: Some(fake),
        model: Some("opus".into()),
        rate_limit_backoff: Duration::from_millis(10),
        ..AgentConfig::default()
    };
    let out = run(dir.path(), &cfg, "p");
    let sandbox = if running_as_root() { "1" } else { "unset" };
    let expected =
        format!("{sandbox} -p --output-format json --dangerously-skip-permissions --model opus");
    assert_eq!(out.final_text.as_deref(), Some(expected.as_str()));
    assert_eq!(out.cost_usd, Some(0.25));
    assert!(out.succeeded());
}

#[test]
fn claude_not_logged_in_envelope_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = script(
        dir.path(),
        "claude",
        "echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"result\":\"Not logged in · Please run /login\"}'\nexit 1\n",
    );
    let cfg = AgentConfig {
        program: Some(fake),
        ..AgentConfig::default()
    };
    let out = run(dir.path(), &cfg, "p");
    assert_eq!(
        out.failure.as_deref(),
        Some("is_error: Not logged in · Please run /login")
    );
    assert!(!out.rate_limited && out.attempts == 1);
    assert_eq!(
        out.error_reason().as_deref(),
        Some("exit code 1: is_error: Not logged in · Please run /login")
    );
}

#[test]
fn codex_stand_in_writes_the_output_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = script(
        dir.path(),
        "codex",
        "prompt=$(cat)\nwhile [ $# -gt 0 ]; do [ \"$1\" = -o ] && out=$2; shift; done\necho '{\"type\":\"turn.completed\"}'\nprintf 'final: %s' \"$prompt\" > \"$out\"\n",
    );
    let cfg = AgentConfig {
        kind: AgentKind::Codex,
        program: Some(fake),
        ..AgentConfig::default()
    };
    let out = run(dir.path(), &cfg, "the prompt");
    assert_eq!(out.final_text.as_deref(), Some("final: the prompt"));
    assert!(dir.path().join("logs/story.log.final.txt").exists());
}

#[test]
fn missing_program_is_a_setup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = AgentConfig {
        program: Some(PathBuf::from("no-such-agent-xyz")),
        ..AgentConfig::default()
    };
    let log = dir.path().join("story.log");
    let cancel = AtomicBool::new(false);
    let req = RunRequest::new(dir.path(), "", &log, &cfg, &cancel);
    let err = run_agent(&req).expect_err("must fail");
    assert!(matches!(
        err,
        AgentError::NotFound {
            kind: AgentKind::Claude,
            ..
        }
    ));
    assert!(err.hints().iter().any(|h| h.contains("--agent")));
}

#[test]
fn utc_timestamp_shape() {
    let ts = utc_now();
    assert_eq!(ts.len(), 20, "{ts}");
    assert!(ts.starts_with("20") && ts.ends_with('Z'));
}
