//! Real processes (`sh`, `sleep`, `cat`); limits are generous and nothing asserts a duration.

use super::*;
use std::fs;

fn sh(script: &str) -> Cmd<'static> {
    Cmd::new("sh")
        .arg("-c")
        .arg(script)
        .kill_grace(Duration::from_millis(300))
}

/// Alive and not a zombie waiting for a reaper (containers may lack one).
fn running(pid: i32) -> bool {
    pid_alive(pid)
        && fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn read_pid(path: &Path) -> i32 {
    fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

/// Give the kernel a moment to deliver the SIGKILL; generous, and not a timing assertion.
fn gone_soon(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while running(pid) && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
    }
    !running(pid)
}

#[test]
fn stdin_is_delivered_and_output_captured() {
    let input = "close story 1-2 \"quoted\" $HOME `not run`\n";
    let out = sh("cat; echo to-stderr >&2")
        .stdin(input)
        .run()
        .expect("run");
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout_text(), input);
    assert_eq!(out.stderr_text(), "to-stderr\n");
    assert_eq!(
        (out.code(), out.signal(), out.stopped),
        (Some(0), None, None)
    );
    assert!(out.failure().is_none());
}

#[test]
fn merged_output_keeps_both_streams_in_one_tail() {
    let out = sh("echo one; echo two >&2; sleep 0.2; echo three")
        .merge_stderr()
        .run_checked()
        .expect("run");
    let text = out.stdout_text();
    assert!(
        text.starts_with("one\n") && text.ends_with("three\n"),
        "{text}"
    );
    assert!(text.contains("two\n") && out.stderr.is_empty(), "{text}");
}

#[test]
fn without_input_stdin_is_empty() {
    let out = Cmd::new("cat").run_checked().expect("cat");
    assert!(out.stdout.is_empty());
}

#[test]
fn env_is_scrubbed_and_the_child_leads_its_own_group() {
    let pgid = AtomicU64::new(0);
    let record = |g: i32| pgid.store(g as u64, Ordering::Relaxed);
    let out = sh("echo \"${GIT_DIR-unset} ${GIT_WORK_TREE-unset} $KEEP\"; \
                  read -r stat < /proc/$$/stat; echo \"$$ $stat\"")
    .env("GIT_DIR", "/elsewhere")
    .env("KEEP", "kept")
    .on_spawn(&record)
    .run_checked()
    .expect("run");
    let text = out.stdout_text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("unset unset kept"));
    // `<pid> <pid> (sh) <state> <ppid> <pgrp> …`
    let fields: Vec<&str> = lines.next().expect("stat").split_whitespace().collect();
    let (pid, pgrp) = (fields[0], fields[5]);
    assert_eq!(pid, pgrp, "{fields:?}");
    assert_eq!(pgid.load(Ordering::Relaxed).to_string(), pid);
}

#[test]
fn timeout_stops_the_whole_group_grandchild_included() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    let out = sh("sleep 100 & echo $! > \"$0\"; echo started; wait")
        .arg(&pid_file)
        .timeout(Duration::from_millis(500))
        .run()
        .expect("run");
    assert_eq!(out.stopped, Some(Stop::Timeout), "{out:?}");
    assert!(!out.success());
    assert_eq!(out.stdout_text(), "started\n");
    assert!(gone_soon(read_pid(&pid_file)), "the grandchild survived");
    let err = out.check().expect_err("a timeout is a failure");
    assert!(err.to_string().contains("timed out after"), "{err}");
}

#[test]
fn what_the_child_leaves_behind_is_stopped_when_it_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("left.pid");
    let out = sh("sleep 100 & echo $! > \"$0\"; exit 0")
        .arg(&pid_file)
        .timeout(Duration::from_secs(60))
        .run()
        .expect("run");
    assert!(out.success(), "{out:?}");
    assert!(
        gone_soon(read_pid(&pid_file)),
        "the background sleep survived"
    );
}

#[test]
fn sigterm_ignored_means_sigkill_after_grace() {
    let out = sh("trap '' TERM; echo ready; while :; do sleep 1; done")
        .timeout(Duration::from_millis(300))
        .run()
        .expect("run");
    assert_eq!(out.stopped, Some(Stop::Timeout));
    assert_eq!(out.signal(), Some(libc::SIGKILL));
}

#[test]
fn stall_timeout_stops_a_silent_child() {
    let out = sh("echo hello; sleep 30")
        .timeout(Duration::from_secs(120))
        .stall_timeout(Some(Duration::from_millis(400)))
        .run()
        .expect("run");
    assert_eq!(out.stopped, Some(Stop::Stall), "{out:?}");
    assert_eq!(out.stdout_text(), "hello\n");
    let f = out.failure().expect("failure");
    assert!(
        f.to_string().contains("printed nothing for too long"),
        "{f}"
    );
}

#[test]
fn cancel_flag_stops_the_child() {
    let cancel = AtomicBool::new(false);
    let out = thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(200));
            cancel.store(true, Ordering::Relaxed);
        });
        sh("sleep 30")
            .timeout(Duration::from_secs(120))
            .cancel(&cancel)
            .run()
            .expect("run")
    });
    assert_eq!(out.stopped, Some(Stop::Cancel), "{out:?}");
    let err = out.check().expect_err("cancelled");
    assert_eq!(err.to_string(), "'sh -c 'sleep 30'' was cancelled");
}

#[test]
fn failure_carries_status_and_the_tail_of_stderr() {
    let err = sh("echo noise; echo first >&2; echo 'the real reason' >&2; exit 3")
        .run_checked()
        .expect_err("exit 3");
    let f = err.failure().expect("ran");
    assert_eq!((f.code, f.signal, f.stopped), (Some(3), None, None));
    assert_eq!(f.stderr_tail, "first\nthe real reason\n");
    assert_eq!(err.command().program, "sh");
    assert_eq!(
        err.to_string(),
        "'sh -c \"echo noise; echo first >&2; echo 'the real reason' >&2; exit 3\"' \
         failed with exit code 3: the real reason"
    );
}

#[test]
fn a_signal_is_reported() {
    let err = sh("kill -9 $$").run_checked().expect_err("killed");
    let f = err.failure().expect("ran");
    assert_eq!((f.code, f.signal), (None, Some(9)));
    assert!(err.to_string().ends_with("was killed by signal 9"), "{err}");
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let err = Cmd::new("no-such-program-xyz")
        .arg("x")
        .run()
        .expect_err("not found");
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot run 'no-such-program-xyz': "),
        "{err}"
    );
}

#[test]
fn output_past_the_caps_is_drained_the_tail_kept_and_the_log_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("run.log");
    let mut log = File::create(&log_path).expect("log");
    writeln!(log, "header").expect("header");
    let out = sh("head -c 300000 /dev/zero | tr '\\0' a; echo END; echo oops >&2")
        .capture(1_000, 100)
        .log(log, 10_000)
        .run_checked()
        .expect("run");
    assert_eq!(out.stdout.len(), 1_000);
    assert!(out.stdout_text().ends_with("aaaEND\n"));
    assert_eq!(out.stderr_text(), "oops\n");
    let logged = fs::read_to_string(&log_path).expect("log");
    assert!(logged.starts_with("header\naaa"), "{}", &logged[..20]);
    assert!(logged.len() < 11_000 && logged.contains("log truncated at 10000 bytes"));
}

#[test]
fn command_line_is_shown_quoted() {
    let cmd = Cmd::new("npm").args(["run", "two words"]);
    assert_eq!(cmd.command_line().to_string(), "npm run 'two words'");
}

#[test]
#[cfg(target_os = "linux")]
fn background_priority_lowers_only_the_calling_thread_and_what_it_starts() {
    // SAFETY: getpriority only reads its arguments.
    let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
    let before = nice();
    let (own, child) = std::thread::spawn(move || {
        super::background_priority();
        let child = std::thread::spawn(nice).join().unwrap();
        (nice(), child)
    })
    .join()
    .unwrap();
    assert_eq!(own, (before + 10).min(19));
    assert_eq!(child, own, "a thread it starts inherits it");
    assert_eq!(nice(), before, "the caller's other threads keep theirs");
}
