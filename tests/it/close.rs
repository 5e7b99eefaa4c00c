//! End-to-end: `git teleos close` (sequential) and `debrief` with stand-in agent CLIs on PATH
//! that speak Claude Code's protocol: prompt on stdin, one JSON envelope on stdout, exit codes.

use crate::common;

use common::agent::Claude;
use common::{story, TestRepo};
use serde_json::{json, Value};

const DIR: &str = "docs/sprint-artifacts";

/// One behaviour of the stand-in `claude`, chosen by story-key prefix.
struct Case {
    prefix: &'static str,
    /// Shell run in the checkout; `$file` is the story file, `$key` the story key.
    actions: String,
    /// stdout (the envelope), printed verbatim.
    stdout: String,
    code: i32,
}

const TICK: &str =
    "sed -i '/[Mm]anually verify/!s/^- \\[ \\] /- [x] /' \"$file\" && git add -A && git commit -qm \"teleos: close $key\"";

/// claude's real envelope (tests/it/common/fixtures/agent-cli/claude.out) carrying a good answer.
fn envelope(result_text: &str) -> String {
    common::claude_envelope(result_text, 0.25)
}

fn fenced(result: &Value) -> String {
    format!(
        "All done.\n\n```json\n{}\n```\n",
        serde_json::to_string_pretty(result).unwrap()
    )
}

fn worker_result(key: &str, status: &str, by_closer: usize, already: usize, extra: Value) -> Value {
    let mut v = json!({
        "story_key": key, "status": status, "tasks_total": by_closer + already,
        "tasks_completed_by_closer": by_closer, "tasks_already_done": already,
        "tasks_blocked": 0, "tasks_human_validation": 0, "blocker_questions": [],
        "human_validation_tasks": [],
        "review_summary": {"must_fix_found": 0, "must_fix_resolved": 0, "should_fix": 0, "iterations": 1},
        "sprint_status": "done", "commit_hash": null, "errors": [],
    });
    if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    v
}

fn complete(prefix: &'static str, key: &str, by_closer: usize, already: usize) -> Case {
    Case {
        prefix,
        actions: TICK.into(),
        stdout: envelope(&fenced(&worker_result(
            key,
            "completed",
            by_closer,
            already,
            json!({}),
        ))),
        code: 0,
    }
}

/// Install a stand-in `claude` whose behaviour depends on the story key in the prompt. Every
/// call records its prompt and environment under `home/calls/`.
fn install_claude(r: &TestRepo, logged_in: bool, cases: &[Case]) {
    let mut claude = if logged_in {
        Claude::new()
    } else {
        Claude::new().logged_out()
    }
    .record_calls();
    for c in cases {
        claude = claude.reply(&format!("{}*", c.prefix), &c.actions, &c.stdout, c.code);
    }
    claude
        .sh(r#"echo "stand-in: no case for $key" >&2; exit 3"#)
        .install(r);
}

fn calls(r: &TestRepo, ext: &str) -> Vec<String> {
    let dir = r.home.join("calls");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn repo() -> TestRepo {
    let r = TestRepo::new();
    r.agent_identity();
    r.git(&["config", "teleos.rateLimitBackoff", "0.05"]);
    r
}

/// [`repo`] with stories `(key, title, done, left)` committed.
fn repo_with(stories: &[(&str, &str, usize, usize)]) -> TestRepo {
    let r = repo();
    for (key, title, done, left) in stories {
        r.write(&format!("{DIR}/{key}.md"), &story(title, *done, *left));
    }
    r.commit_all("stories");
    r
}

fn head(r: &TestRepo) -> String {
    r.git(&["rev-parse", "HEAD"])
}

#[test]
fn completes_stories_and_verifies_the_repository() {
    let r = repo_with(&[("1-1-login", "Login", 8, 2), ("1-2-reset", "Reset", 9, 1)]);
    install_claude(
        &r,
        true,
        &[
            complete("1-1", "1-1-login", 2, 8),
            complete("1-2", "1-2-reset", 1, 9),
        ],
    );
    let before = head(&r);
    let out = r.teleos(["close", "--sequential", "--all", "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["completed"].as_array().unwrap().len(), 2, "{j}");
    assert_eq!(j["errors"].as_array().unwrap().len(), 0);
    // The file, not the claim: every box is checked now, and the commits exist on main.
    assert!(!r.read(&format!("{DIR}/1-1-login.md")).contains("- [ ]"));
    let log = r.git(&["log", "--format=%s", &format!("{before}..HEAD")]);
    assert_eq!(log, "teleos: close 1-2-reset\nteleos: close 1-1-login");
    assert_eq!(r.git(&["symbolic-ref", "HEAD"]), "refs/heads/main");
    let c = &j["completed"][0];
    assert_eq!(c["tasks_completed"], 10);
    assert_eq!(c["tasks_total"], 10);
    assert_eq!(
        c["commit_hash"].as_str().unwrap(),
        r.git(&["rev-parse", "HEAD~1"])
    );
    assert!((j["summary"]["cost_usd"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    let log_path = c["log_path"].as_str().unwrap();
    assert!(std::fs::read_to_string(log_path)
        .unwrap()
        .contains("total_cost_usd"));
    out.stderr_has("✅ 1-1-login — 10/10 tasks done, committed");

    // The protocol: prompt on stdin naming the story; claude's flags; no GIT_DIR inherited.
    let prompts = calls(&r, "prompt");
    assert_eq!(prompts.len(), 2);
    assert!(
        prompts[0].contains("1-1-login") && prompts[0].contains(&format!("{DIR}/1-1-login.md"))
    );
    let args = calls(&r, "args");
    assert!(
        args[0].contains("-p") && args[0].contains("--output-format json"),
        "{}",
        args[0]
    );
    for env in calls(&r, "env") {
        assert!(
            !env.lines()
                .any(|l| l.starts_with("GIT_DIR=") || l.starts_with("GIT_WORK_TREE=")),
            "{env}"
        );
    }

    // The debrief shows the same batch again.
    let d = r.teleos(["debrief"]);
    d.ok();
    assert!(
        d.stdout.contains("Completed") && d.stdout.contains("1-2-reset"),
        "{}",
        d.stdout
    );
}

#[test]
fn partial_with_blocker_questions_then_retry_with_answers() {
    let r = repo_with(&[("3-1-avatar", "Avatar", 8, 2)]);
    let partial = worker_result(
        "3-1-avatar",
        "partial",
        1,
        8,
        json!({"tasks_blocked": 1, "blocker_questions": [{"task": "Task left 1", "question": "Which size limit?"}]}),
    );
    install_claude(
        &r,
        true,
        &[Case {
            prefix: "3-1",
            // Tick only the first unchecked box.
            actions: "sed -i '0,/^- \\[ \\] /s//- [x] /' \"$file\" && git add -A && git commit -qm \"teleos: close $key\"".into(),
            stdout: envelope(&fenced(&partial)),
            code: 0,
        }],
    );
    let out = r.teleos(["close", "--sequential", "3-1", "--yes"]);
    out.code(1);
    out.stdout_has("Partially blocked");
    assert!(out.stdout.contains("Which size limit?"));
    out.stderr_has("⚠️ 3-1-avatar — 9/10 tasks done, 1 blocked");

    let template = r.teleos(["debrief", "--answers-template"]);
    template.ok();
    let mut answers = template.json();
    answers[0]["answer"] = json!("Use 2 MB, the CDN limit");
    let answers_file = r.home.join("answers.json");
    std::fs::write(&answers_file, answers.to_string()).unwrap();
    let out = r.teleos([
        "close",
        "--sequential",
        "--retry-blocked",
        "--answers",
        answers_file.to_str().unwrap(),
        "--yes",
    ]);
    out.code(1);
    let prompts = calls(&r, "prompt");
    assert_eq!(prompts.len(), 2);
    assert!(
        prompts[1].contains("Use 2 MB, the CDN limit"),
        "answers reach the prompt:\n{}",
        prompts[1]
    );
    assert!(prompts[1].contains("Which size limit?"));
}

#[test]
fn failures_are_errors_with_reasons_and_the_batch_goes_on() {
    let r = repo();
    for (k, _) in [
        ("4-1-nojson", 0),
        ("4-2-exit", 0),
        ("4-3-crash", 0),
        ("4-4-ok", 0),
    ] {
        r.write(&format!("{DIR}/{k}.md"), &story(k, 9, 1));
    }
    r.commit_all("stories");
    install_claude(
        &r,
        true,
        &[
            Case {
                prefix: "4-1",
                actions: String::new(),
                stdout: envelope("I did my best, no JSON here."),
                code: 0,
            },
            Case {
                prefix: "4-2",
                actions: String::new(),
                stdout: String::new(),
                code: 7,
            },
            Case {
                prefix: "4-3",
                actions: "kill -SEGV $$".into(),
                stdout: String::new(),
                code: 0,
            },
            complete("4-4", "4-4-ok", 1, 9),
        ],
    );
    let out = r.close_all(&["--sequential", "--retries", "0", "--circuit-breaker", "0"]);
    out.code(1);
    let j = out.json();
    let msg = |k: &str| {
        common::entry(&j["errors"], k)["error_message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        msg("4-1-nojson").contains("no usable result"),
        "{}",
        msg("4-1-nojson")
    );
    assert!(msg("4-2-exit").contains('7'), "{}", msg("4-2-exit"));
    assert!(
        msg("4-3-crash").contains("signal") || msg("4-3-crash").contains("11"),
        "{}",
        msg("4-3-crash")
    );
    assert_eq!(j["completed"][0]["story_key"], "4-4-ok");
    out.stderr_has("❌ 4-1-nojson — Error:");
}

#[test]
fn a_hanging_agent_is_killed_at_the_timeout() {
    let r = repo_with(&[("5-1-hang", "Hang", 9, 1), ("5-2-ok", "Ok", 9, 1)]);
    let pidfile = r.home.join("sleeper.pid");
    install_claude(
        &r,
        true,
        &[
            Case {
                prefix: "5-1",
                actions: format!("sleep 300 & echo $! > {}; wait", pidfile.display()),
                stdout: String::new(),
                code: 0,
            },
            complete("5-2", "5-2-ok", 1, 9),
        ],
    );
    let out = r.close_all(&["--sequential", "--timeout", "1", "--retries", "0"]);
    out.code(1);
    let j = out.json();
    assert!(
        j["errors"][0]["error_message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{j}"
    );
    assert_eq!(j["completed"][0]["story_key"], "5-2-ok");
    // The agent's child died with it: the whole process group was killed.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the agent's child {pid} outlived the timeout");
}

/// Alive and not a zombie waiting for a reaper (containers may have none).
fn running(pid: i32) -> bool {
    (unsafe { libc::kill(pid, 0) } == 0)
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let r = repo_with(&[("5-3-stubborn", "Stubborn", 9, 1)]);
    let state = r.home.join("stubborn");
    std::fs::create_dir_all(&state).unwrap();
    install_claude(
        &r,
        true,
        &[Case {
            prefix: "5-3",
            // Shrugs off SIGTERM: after the first Ctrl-C git-teleos would wait out the grace.
            actions: format!(
                "echo $$ > {s}/pid; trap 'touch {s}/got-term' TERM; while :; do sleep 1; done",
                s = state.display()
            ),
            stdout: String::new(),
            code: 0,
        }],
    );
    let child = r
        .teleos_cmd(&r.root)
        .args(["close", "--sequential", "--all", "--yes", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the agent starting", || state.join("pid").exists());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // The first Ctrl-C reached the agent as SIGTERM (and was ignored); now the second.
    wait_for("the agent's SIGTERM", || state.join("got-term").exists());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    // Forced: no waiting for the agent, so no report either.
    assert!(!stderr.contains("Results saved"), "{stderr}");
    assert!(out.stdout.is_empty());
    // The agent did not outlive git-teleos (parent-death signal).
    let pid: i32 = std::fs::read_to_string(state.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the agent's death", || !running(pid));
}

#[test]
fn false_claims_are_downgraded_and_reported() {
    let r = repo_with(&[("6-1-liar", "Liar", 8, 2)]);
    let claim = worker_result(
        "6-1-liar",
        "completed",
        2,
        8,
        json!({"commit_hash": "0123456789abcdef0123456789abcdef01234567"}),
    );
    install_claude(
        &r,
        true,
        &[Case {
            prefix: "6-1",
            actions: String::new(),
            stdout: envelope(&fenced(&claim)),
            code: 0,
        }],
    );
    let before = head(&r);
    let out = r.teleos(["close", "--sequential", "6-1", "--yes", "--json"]);
    out.code(1);
    let j = out.json();
    let b = &j["blocked"][0];
    assert_eq!(b["story_key"], "6-1-liar", "{j}");
    assert_eq!(b["tasks_completed"], 8, "the file's count, not the claim");
    let d = b["discrepancies"].to_string();
    assert!(d.contains("does not exist"), "{d}");
    assert!(d.contains("file shows 8"), "{d}");
    assert_eq!(head(&r), before);
}

#[test]
fn not_logged_in_stops_before_anything_is_created() {
    let r = repo_with(&[("7-1-x", "X", 9, 1)]);
    install_claude(&r, false, &[complete("7-1", "7-1-x", 1, 9)]);
    let out = r.teleos(["close", "--sequential", "--all", "--yes"]);
    out.code(2);
    out.stderr_has("not logged in");
    out.stderr_has("hint:");
    assert!(calls(&r, "prompt").is_empty(), "no story was run");
    assert!(!r.root.join(".git/teleos").exists(), "nothing was created");
}

#[test]
fn rate_limited_then_fine_is_not_a_failure() {
    let r = repo_with(&[("8-1-busy", "Busy", 9, 1)]);
    let counter = r.home.join("count");
    // claude's envelope for an API 429 (`api_error_status: 429`, `rate_limit_error`).
    let limited = common::fixture("claude-429.out").trim().to_string();
    assert!(!limited.contains('\''));
    let ok = envelope(&fenced(&worker_result(
        "8-1-busy",
        "completed",
        1,
        9,
        json!({}),
    )));
    install_claude(
        &r,
        true,
        &[Case {
            prefix: "8-1",
            actions: format!(
                "if [ ! -e {c} ]; then touch {c}; echo '{limited}'; exit 1; fi\n{TICK}",
                c = counter.display()
            ),
            stdout: ok,
            code: 0,
        }],
    );
    let out = r.teleos(["close", "--sequential", "--all", "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["completed"][0]["story_key"], "8-1-busy", "{j}");
    assert!(j["completed"][0]["attempts"].as_u64().unwrap() >= 2);
}

#[test]
fn a_human_validation_only_story_completes_and_lists_the_human_task() {
    let r = repo();
    let mut s = story("Human", 9, 0);
    s.push_str("- [ ] Manually verify the page in Safari\n");
    r.write(&format!("{DIR}/9-1-human.md"), &s);
    r.commit_all("stories");
    let res = worker_result(
        "9-1-human",
        "completed",
        0,
        9,
        json!({"human_validation_tasks": ["Manually verify the page in Safari"]}),
    );
    install_claude(
        &r,
        true,
        &[Case {
            prefix: "9-1",
            actions: String::new(),
            stdout: envelope(&fenced(&res)),
            code: 0,
        }],
    );
    let out = r.teleos(["close", "--sequential", "9-1", "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["completed"][0]["story_key"], "9-1-human", "{j}");
    assert_eq!(
        j["human_validation_tasks"][0]["task_text"],
        "Manually verify the page in Safari"
    );
    assert!(
        calls(&r, "prompt")[0]
            .to_lowercase()
            .contains("manually verify"),
        "patterns are in the prompt"
    );
}

#[test]
fn refuses_a_dirty_checkout_and_missing_flags_without_a_terminal() {
    let r = repo_with(&[("1-1-a", "A", 9, 1)]);
    install_claude(&r, true, &[complete("1-1", "1-1-a", 1, 9)]);

    let out = r.teleos(["close", "--sequential", "--yes"]);
    out.code(2);
    out.stderr_has("--all");
    let out = r.teleos(["close", "--sequential", "--all"]);
    out.code(2);
    out.stderr_has("--yes");
    let out = r.teleos(["close", "--all", "--yes"]);
    out.code(2);
    out.stderr_has("--parallel");
    let out = r.teleos(["close", "--sequential", "--all", "--dry-run"]);
    out.ok();
    out.stderr_has("1-1-a");
    let out = r.teleos(["close", "--sequential", "nope", "--yes"]);
    out.code(2);
    out.stderr_has("nope");

    r.write("scratch.txt", "my own edit\n");
    let out = r.teleos(["close", "--sequential", "--all", "--yes"]);
    out.code(2);
    assert!(
        out.stderr.contains("uncommitted") && out.stderr.contains("hint:"),
        "{}",
        out.stderr
    );
    assert_eq!(r.read("scratch.txt"), "my own edit\n");
    assert!(calls(&r, "prompt").is_empty());
}

#[test]
fn needs_pipeline_stories_are_routed_not_run() {
    let r = repo_with(&[("2-1-big", "Big", 2, 8)]);
    install_claude(&r, true, &[]);
    let out = r.teleos([
        "close",
        "--sequential",
        "--include-pipeline",
        "--yes",
        "--json",
    ]);
    out.ok();
    let j = out.json();
    assert_eq!(j["routed_to_pipeline"][0]["story_key"], "2-1-big");
    assert_eq!(j["routed_to_pipeline"][0]["unchecked_count"], 8);
    assert!(calls(&r, "prompt").is_empty());
    out.stderr_has("🔀 2-1-big routed");
}

#[test]
fn demo_runs_every_phase_offline() {
    let r = repo();
    let dir = r.home.join("demo");
    let out = r.teleos(["demo", "--dir", dir.to_str().unwrap(), "--json"]);
    // One demo story is left blocked on a product decision by design; the demo itself succeeds.
    out.ok();
    out.stderr_has("blocked on a question, as designed");
    let j: Value =
        serde_json::from_str(&out.stdout[out.stdout.find("{\n  \"session_id\"").unwrap()..])
            .unwrap();
    let keys = |f: &str| {
        let mut k = j[f]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["story_key"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        k.sort();
        k
    };
    assert_eq!(
        keys("completed"),
        vec!["1-1-user-login", "1-2-password-reset"]
    );
    assert_eq!(keys("blocked"), vec!["1-3-profile-page"]);
    assert_eq!(keys("routed_to_pipeline"), vec!["2-1-billing"]);
    assert_eq!(j["blocker_questions"].as_array().unwrap().len(), 1);
    assert!(j["human_validation_tasks"].as_array().unwrap().len() >= 2);
}

#[test]
fn budget_and_circuit_breaker_stop_new_stories() {
    let r = repo();
    for k in ["1-1-a", "1-2-b", "1-3-c"] {
        r.write(&format!("{DIR}/{k}.md"), &story(k, 9, 1));
    }
    r.commit_all("stories");
    install_claude(
        &r,
        true,
        &[
            complete("1-1", "1-1-a", 1, 9),
            complete("1-2", "1-2-b", 1, 9),
            complete("1-3", "1-3-c", 1, 9),
        ],
    );
    // Each run reports $0.25: a $0.40 budget allows two stories.
    let out = r.close_all(&["--sequential", "--max-budget-usd", "0.4"]);
    out.code(1);
    let j = out.json();
    assert_eq!(j["completed"].as_array().unwrap().len(), 2, "{j}");
    assert_eq!(j["errors"][0]["outcome"], "not_started");
    assert!(j["stopped"].as_str().unwrap().contains("budget"), "{j}");

    // Three failures in a row: the fourth story is not started.
    let r = repo();
    for k in ["2-1-a", "2-2-b", "2-3-c", "2-4-d"] {
        r.write(&format!("{DIR}/{k}.md"), &story(k, 9, 1));
    }
    r.commit_all("stories");
    let fail = |p: &'static str| Case {
        prefix: p,
        actions: String::new(),
        stdout: String::new(),
        code: 1,
    };
    install_claude(
        &r,
        true,
        &[
            fail("2-1"),
            fail("2-2"),
            fail("2-3"),
            complete("2-4", "2-4-d", 1, 9),
        ],
    );
    let out = r.close_all(&["--sequential", "--retries", "0"]);
    out.code(1);
    let j = out.json();
    assert!(
        j["stopped"].as_str().unwrap().contains("circuit breaker"),
        "{j}"
    );
    assert_eq!(calls(&r, "prompt").len(), 3, "the fourth agent never ran");
    // Retries: with the default (2), a failing story runs three times.
    let r2 = repo();
    r2.write(&format!("{DIR}/3-1-a.md"), &story("a", 9, 1));
    r2.commit_all("stories");
    install_claude(&r2, true, &[fail("3-1")]);
    r2.teleos(["close", "--sequential", "--all", "--yes"])
        .code(1);
    assert_eq!(calls(&r2, "prompt").len(), 3);
}

#[test]
fn interactive_selection_on_a_terminal() {
    // `script` gives the binary a real terminal; its stdin feeds the answers.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` command to provide a terminal");
        return;
    }
    let r = repo_with(&[
        ("1-1-a", "A", 9, 1),
        ("1-2-b", "B", 9, 1),
        ("2-1-big", "Big", 1, 9),
    ]);
    install_claude(&r, true, &[complete("1-2", "1-2-b", 1, 9)]);
    let run = |answers: &str| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &format!("{} close", common::BIN), "/dev/null"])
            .current_dir(&r.root);
        common::hermetic(&mut cmd, &r.home, &r.bin_dir);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answers.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // Pick story 2 by number, run it sequentially, confirm.
    let (code, screen) = run("p\n2\ns\ny\n");
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("Choice:") && screen.contains("1-2-b"),
        "{screen}"
    );
    assert_eq!(calls(&r, "prompt").len(), 1);
    assert!(calls(&r, "prompt")[0].contains("1-2-b"));
    assert!(!r.read(&format!("{DIR}/1-2-b.md")).contains("- [ ]"));
    // Quitting starts nothing.
    let (code, _) = run("q\n");
    assert_eq!(code, Some(0));
    assert_eq!(calls(&r, "prompt").len(), 1);
}

#[test]
fn an_agent_that_switches_the_users_branch_stops_the_batch() {
    let r = repo_with(&[("1-1-a", "A", 9, 1), ("1-2-b", "B", 9, 1)]);
    install_claude(
        &r,
        true,
        &[
            Case {
                prefix: "1-1",
                actions: format!("git checkout -q -b elsewhere && {TICK}"),
                stdout: envelope(&fenced(&worker_result(
                    "1-1-a",
                    "completed",
                    1,
                    9,
                    json!({}),
                ))),
                code: 0,
            },
            complete("1-2", "1-2-b", 1, 9),
        ],
    );
    let out = r.teleos(["close", "--sequential", "--all", "--yes", "--json"]);
    out.code(1);
    let j = out.json();
    assert!(
        j["stopped"]
            .as_str()
            .unwrap()
            .contains("switched your checkout"),
        "{j}"
    );
    assert_eq!(
        calls(&r, "prompt").len(),
        1,
        "no story ran after the switch"
    );
}
