//! Stories run as jobs beyond this machine: `git teleos run-story` in a fresh folder against a
//! bare repository as the shared remote (a `file://` URL), with a stand-in `claude` speaking
//! Claude Code's protocol. Real git everywhere; the remote's own branches are watched.

use crate::common;

use std::path::{Path, PathBuf};

use common::{story, TestRepo};

const DIR: &str = "docs/sprint-artifacts";
const SID: &str = "a1b2c3";

/// A stand-in `claude`: ticks the story's boxes, writes `out/<key>.txt`, commits, and answers
/// in Claude's envelope. Stories whose key starts with `9-` crash: a message on stderr and
/// exit 1, before any result, as the CLI does when it dies. Stories whose key starts with `6-`
/// are refused once for the API's rate limit (claude's real 429 envelope), then work. It
/// records where it ran.
fn install_agent(r: &TestRepo) {
    let state = r.home.join("agents");
    std::fs::create_dir_all(state.join("running")).unwrap();
    let limited = common::fixture("claude-429.out").trim().to_string();
    assert!(!limited.contains('\''));
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = auth ]; then echo '{{"loggedIn": true}}'; exit 0; fi
prompt=$(cat)
{story_from_prompt}
state="{state}"
case "$key" in 6-*) if [ ! -e "$state/limited-$key" ]; then : > "$state/limited-$key"; echo '{limited}'; exit 1; fi;; esac
pwd > "$state/cwd-$key"
# Dependency check: 1-2 must see the work of 1-1 already merged.
if [ "$key" = "1-2-second" ]; then
  if [ -f out/1-1-first.txt ]; then echo ok > "$state/dep-1-2"; else echo missing > "$state/dep-1-2"; fi
fi
touch "$state/running/$key"
now=$(ls "$state/running" | wc -l)
echo "$now" >> "$state/concurrency"
sleep "${{TELEOS_TEST_AGENT_SECONDS:-0}}"
case "$key" in 9-*) rm -f "$state/running/$key"; echo "Error: the agent process crashed" >&2; exit 1;; esac
already=$(grep -c '^- \[x\]' "$file")
total=$(grep -c '^- \[' "$file")
sed -i 's/^- \[ \] /- [x] /' "$file"
done_now=$((total - already))
mkdir -p out && echo "$key" > "out/$key.txt"
git add out "$file" && git commit -qm "teleos: close $key"
case "$key" in 8-*) echo "left behind" > leftover.txt;; esac
rm -f "$state/running/$key"
printf '{{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.1,"result":"{{\\"story_key\\":\\"%s\\",\\"status\\":\\"completed\\",\\"tasks_total\\":%s,\\"tasks_completed_by_closer\\":%s,\\"tasks_already_done\\":%s}}"}}\n' "$key" "$total" "$done_now" "$already"
"#,
        state = state.display(),
        story_from_prompt = common::STORY_FROM_PROMPT
    );
    r.install_script("claude", &script);
}

/// The user's repository with `keys` as stories, and a bare clone of it as the shared remote.
fn setup(keys: &[&str]) -> (TestRepo, PathBuf, String) {
    let r = common::repo_with_stories(keys);
    let bare = r.with_shared_remote();
    install_agent(&r);
    let url = format!("file://{}", bare.display());
    (r, bare, url)
}

/// `git show` in the bare remote.
fn show(r: &TestRepo, bare: &Path, what: &str) -> String {
    let out = r.git_in(bare, &["show", "--no-patch", "--format=%B", what]);
    assert_eq!(out.code, 0, "git show {what}: {}", out.stderr);
    out.stdout
}

fn blob(r: &TestRepo, bare: &Path, what: &str) -> String {
    let out = r.git_in(bare, &["show", what]);
    assert_eq!(out.code, 0, "git show {what}: {}", out.stderr);
    out.stdout
}

/// `git teleos run-story` of `story` (a path) in the job folder `job`, session `SID`.
fn run_story(r: &TestRepo, job: &Path, url: &str, base: &str, story: &str) -> common::Run {
    r.teleos_in(
        job,
        [
            "run-story",
            "--remote",
            url,
            "--base",
            base,
            "--story",
            story,
            "--session",
            SID,
        ],
    )
}

fn fresh_dir(r: &TestRepo, name: &str) -> PathBuf {
    let d = r.home.join("jobs").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn run_story_pushes_the_commits_and_the_result_and_nothing_else() {
    let (r, bare, url) = setup(&["1-1-first", "9-1-crash"]);
    let base = r.git(&["rev-parse", "HEAD"]);
    let before = common::remote_refs(&r, &url);

    let job = fresh_dir(&r, "one");
    let story_path = format!("{DIR}/1-1-first.md");
    let run = run_story(&r, &job, &url, &base, &story_path);
    run.ok();

    // Exactly two new refs, both under the session; nothing else on the remote changed.
    let after = common::remote_refs(&r, &url);
    let stories_ref = format!("refs/teleos/{SID}/stories/1-1-first");
    let results_ref = format!("refs/teleos/{SID}/results/1-1-first");
    let mut expected = before.clone();
    expected.insert(stories_ref.clone(), after[&stories_ref].clone());
    expected.insert(results_ref.clone(), after[&results_ref].clone());
    assert_eq!(after, expected);

    // The story's commit sits on the base; the result says completed and carries the log.
    assert_eq!(
        show(&r, &bare, &stories_ref).trim(),
        "teleos: close 1-1-first"
    );
    assert_eq!(
        r.git_in(&bare, &["rev-parse", &format!("{stories_ref}~1")])
            .stdout
            .trim(),
        base
    );
    let result: serde_json::Value =
        serde_json::from_str(&blob(&r, &bare, &format!("{results_ref}:result.json"))).unwrap();
    assert_eq!(result["story_key"], "1-1-first");
    assert_eq!(result["outcome"], "completed", "{result}");
    assert_eq!(result["tasks_done"], 10);
    let log = blob(&r, &bare, &format!("{results_ref}:agent.log"));
    assert!(log.contains("\"type\":\"result\""), "{log}");
    assert!(show(&r, &bare, &results_ref)
        .contains(&format!("Teleos-Story-Tip: {}", after[&stories_ref])));

    // The agent ran in the job's folder, not in the user's checkout, which is untouched.
    let cwd = std::fs::read_to_string(r.home.join("agents/cwd-1-1-first")).unwrap();
    assert_eq!(Path::new(cwd.trim()), job.canonicalize().unwrap());
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    assert_eq!(r.git(&["rev-parse", "HEAD"]), base);
}

#[test]
fn a_crashing_agent_pushes_an_error_result_and_exits_1() {
    let (r, bare, url) = setup(&["1-1-first", "9-1-crash"]);
    let base = r.git(&["rev-parse", "HEAD"]);
    let before = common::remote_refs(&r, &url);

    // Everything from TELEOS_* variables, as an engine hands them over.
    let job = fresh_dir(&r, "crash");
    let mut cmd = r.teleos_cmd(&job);
    cmd.arg("run-story")
        .env("TELEOS_REMOTE", &url)
        .env("TELEOS_BASE", &base)
        .env("TELEOS_STORY", format!("{DIR}/9-1-crash.md"))
        .env("TELEOS_SESSION", SID)
        .env("TELEOS_KEY", "9-1-crash");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");

    let after = common::remote_refs(&r, &url);
    let results_ref = format!("refs/teleos/{SID}/results/9-1-crash");
    let mut expected = before.clone();
    expected.insert(results_ref.clone(), after[&results_ref].clone());
    assert_eq!(
        after, expected,
        "only the result ref is new: no commits were made"
    );
    let result: serde_json::Value =
        serde_json::from_str(&blob(&r, &bare, &format!("{results_ref}:result.json"))).unwrap();
    assert_eq!(result["outcome"], "error", "{result}");
    assert!(
        result["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("exit code 1")),
        "{result}"
    );
    let log = blob(&r, &bare, &format!("{results_ref}:agent.log"));
    assert!(log.contains("the agent process crashed"), "{log}");
}

#[test]
fn uncommitted_leftovers_are_pushed_beside_the_story() {
    let (r, bare, url) = setup(&["8-1-leftover"]);
    let base = r.git(&["rev-parse", "HEAD"]);
    let job = fresh_dir(&r, "leftover");
    let run = run_story(&r, &job, &url, &base, &format!("{DIR}/8-1-leftover.md"));
    // Leftovers make the story partial: exit 1, and nothing of the work is lost.
    run.code(1);
    let saved = format!("refs/teleos/{SID}/uncommitted/8-1-leftover");
    assert_eq!(
        blob(&r, &bare, &format!("{saved}:leftover.txt")),
        "left behind\n"
    );
    let results_ref = format!("refs/teleos/{SID}/results/8-1-leftover");
    let result: serde_json::Value =
        serde_json::from_str(&blob(&r, &bare, &format!("{results_ref}:result.json"))).unwrap();
    assert_eq!(result["outcome"], "partial", "{result}");
    assert!(
        result["discrepancies"].to_string().contains(&saved),
        "{result}"
    );
}

#[test]
fn run_story_refuses_a_folder_that_is_not_empty() {
    let (r, _bare, url) = setup(&["1-1-first"]);
    let base = r.git(&["rev-parse", "HEAD"]);
    let job = fresh_dir(&r, "busy");
    std::fs::write(job.join("keep.txt"), "someone's file\n").unwrap();
    let run = run_story(&r, &job, &url, &base, &format!("{DIR}/1-1-first.md"));
    run.code(2);
    assert!(run.stderr.contains("error:") && run.stderr.contains("is not empty"));
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_dir(&job).unwrap().count(),
        1,
        "nothing written"
    );
    assert!(!common::remote_refs(&r, &url)
        .keys()
        .any(|k| k.starts_with("refs/teleos/")));
}

/// The command runner end to end: each job runs `git teleos run-story` in a fresh temporary
/// folder (a stand-in for another machine). One job's command blocks until done, one returns at
/// once (the job goes on detached, as a CI dispatch does); one agent crashes.
#[test]
fn command_runner_lands_five_of_six_through_the_remote() {
    let keys = [
        "1-1-first",
        "1-2-second",
        "1-3-detached",
        "1-4-more",
        "1-5-more",
        "9-1-crash",
    ];
    let (r, bare, url) = setup(&keys);
    r.write(
        &format!("{DIR}/1-2-second.md"),
        &(story("Second", 9, 1) + "\n## Dependencies\n\n- Story 1.1 (first)\n"),
    );
    r.commit_all("1-2 depends on 1-1");
    r.git_in(&r.root, &["push", "-q", "origin", "main"]);
    let jobs = r.home.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let job = r.install_script(
        "teleos-job",
        &format!(
            r#"#!/bin/sh
d=$(mktemp -d "{jobs}/job.XXXXXX")
cd "$d" || exit 2
case "$4" in 1-3-*)
  # Detached, as an engine's submit command leaves its job. Return only once the job has a
  # session of its own: the runner stops what a finished command leaves in its process group,
  # and a job still between fork and setsid would be stopped with it.
  setsid -f sh -c ': > "$0.started"; exec "$@"' "$d" "{bin}" run-story --remote "$1" --base "$2" --story "$3" --key "$4" --session "$5" >"$d.out" 2>&1
  while [ ! -e "$d.started" ]; do sleep 0.05; done
  exit 0;;
esac
exec "{bin}" run-story --remote "$1" --base "$2" --story "$3" --key "$4" --session "$5"
"#,
            jobs = jobs.display(),
            bin = common::BIN
        ),
    );
    r.git(&["config", "teleos.runner", "command"]);
    // A job that never reports fails the batch in minutes, not the default hour.
    r.git(&["config", "teleos.storyTimeout", "60"]);
    r.git(&[
        "config",
        "teleos.runnerCommand",
        &format!(
            "{} {{remote}} {{base}} {{story}} {{key}} {{session}}",
            job.display()
        ),
    ]);
    let remote_before = common::remote_refs(&r, &url);
    let start = r.git(&["rev-parse", "HEAD"]);

    let mut cmd = r.teleos_cmd(&r.root);
    cmd.env("TELEOS_TEST_AGENT_SECONDS", "2").args([
        "close",
        "--parallel",
        "3",
        "--all",
        "--yes",
        "--json",
    ]);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();

    // Five landed on main, in order for the dependency; the crash is an error.
    let completed = common::strings_of(&j["completed"], "story_key");
    assert_eq!(completed.len(), 5, "{j}\n{stderr}");
    assert!(!completed.contains(&"9-1-crash"));
    let crash = j["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["story_key"] == "9-1-crash")
        .unwrap_or_else(|| panic!("no error for the crash: {j}"));
    assert_eq!(crash["outcome"], "error");
    let log = r.git(&["log", "--format=%s", &format!("{start}..main")]);
    for k in &keys[..5] {
        assert!(
            log.contains(&format!("teleos: close {k}")),
            "{k} not on main:\n{log}"
        );
        assert!(
            r.path(&format!("out/{k}.txt")).exists(),
            "{k} not checked out"
        );
    }
    assert_eq!(
        std::fs::read_to_string(r.home.join("agents/dep-1-2"))
            .unwrap_or_default()
            .trim(),
        "ok",
        "1-2 ran before 1-1's work was merged"
    );

    // Every agent ran in a job folder; the user's checkout never got a worktree.
    for k in &keys {
        let cwd = std::fs::read_to_string(r.home.join(format!("agents/cwd-{k}"))).unwrap();
        assert!(
            Path::new(cwd.trim()).starts_with(jobs.canonicalize().unwrap()),
            "{k}: {cwd}"
        );
    }
    assert_eq!(
        r.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    assert!(!r.path(".claude/worktrees").exists());
    assert_eq!(common::max_concurrency(&r), 3, "3 jobs at once");

    // The remote's branches are untouched; of the session, only the crash's refs are left.
    common::assert_remote_keeps_only(&r, &url, &remote_before, "/9-1-crash");
    let _ = bare;
}

#[test]
fn command_runner_without_a_command_or_a_remote_is_a_setup_error() {
    let (r, _bare, url) = setup(&["1-1-first"]);
    r.git(&["config", "teleos.runner", "command"]);
    let run = r.teleos(["close", "--parallel", "2", "--all", "--yes"]);
    run.code(2);
    assert!(
        run.stderr
            .contains("error: teleos.runner is command, but teleos.runnerCommand is not set")
            && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );
    r.git(&["config", "teleos.runnerCommand", "true {key}"]);
    r.git(&["config", "teleos.remote", "nowhere"]);
    let run = r.teleos(["close", "--parallel", "2", "--all", "--yes"]);
    run.code(2);
    assert!(
        run.stderr.contains("error: no remote 'nowhere'") && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );
    // Nothing was pushed, and no integration branch was left behind.
    assert!(!common::remote_refs(&r, &url)
        .keys()
        .any(|k| k.starts_with("refs/teleos/")));
    assert_eq!(r.git(&["branch", "--list", "integration-*"]), "");
}

/// A runner command for the failure tests, by story key: `7-1-*` blocks and never reports (it
/// records its pid, then sleeps), `7-2-*` hands the job to an engine that never runs it (it
/// prints the job's id and returns at once), `7-3-*` fails at once (the engine refused it),
/// anything else runs `git teleos run-story` in a
/// fresh folder. The cancel command records its arguments, one line per call.
fn install_failing_runner(r: &TestRepo) -> PathBuf {
    let jobs = r.home.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let job = r.install_script(
        "teleos-job",
        &format!(
            r#"#!/bin/sh
case "$4" in
7-1-*) echo "blocking-$4"; echo $$ > "{jobs}/pid-$4"; exec sleep 1000;;
7-2-*) echo "Submitted batch job"; echo "queued-$4"; : > "{jobs}/submitted-$4"; exit 0;;
7-3-*) echo "error: queue 'gpu' does not exist" >&2; exit 3;;
esac
d=$(mktemp -d "{jobs}/job.XXXXXX")
cd "$d" || exit 2
# The job's own settings, as an engine's environment gives them: a short back-off.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=teleos.rateLimitBackoff GIT_CONFIG_VALUE_0=0.1
exec "{bin}" run-story --remote "$1" --base "$2" --story "$3" --key "$4" --session "$5"
"#,
            jobs = jobs.display(),
            bin = common::BIN
        ),
    );
    let cancel = r.install_script(
        "teleos-cancel",
        &format!(
            "#!/bin/sh\necho \"$1|$2|$3\" >> \"{}\"\n",
            r.home.join("cancelled").display()
        ),
    );
    r.git(&["config", "teleos.runner", "command"]);
    r.git(&[
        "config",
        "teleos.runnerCommand",
        &format!(
            "{} {{remote}} {{base}} {{story}} {{key}} {{session}}",
            job.display()
        ),
    ]);
    r.git(&[
        "config",
        "teleos.runnerCancelCommand",
        &format!("{} {{job}} {{key}} {{session}}", cancel.display()),
    ]);
    jobs
}

fn pid_alive(pid_file: &Path) -> bool {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The cancel command's calls, sorted.
fn cancelled(r: &TestRepo) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(r.home.join("cancelled"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

#[test]
fn silent_jobs_are_cancelled_through_the_engine_and_the_batch_goes_on() {
    let (r, _bare, url) = setup(&["1-1-first", "7-1-blocked", "7-2-queued", "7-3-refused"]);
    let jobs = install_failing_runner(&r);
    // Long enough for the real job to report on a loaded machine; the silent ones never do.
    r.git(&["config", "teleos.storyTimeout", "20"]);
    r.git(&["config", "teleos.retries", "0"]);
    let out = r
        .teleos_cmd(&r.root)
        .args(["close", "--parallel", "4", "--all", "--yes", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sid = j["session_id"].as_str().unwrap();

    // The job that reported landed; each silent one is an error that says what happened.
    let completed: Vec<&str> = j["completed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["story_key"].as_str().unwrap())
        .collect();
    assert_eq!(completed, ["1-1-first"], "{j}");
    assert!(r.path("out/1-1-first.txt").exists());
    for key in ["7-1-blocked", "7-2-queued"] {
        let e = j["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["story_key"] == key)
            .unwrap_or_else(|| panic!("no error for {key}: {j}"));
        let why = e["error_message"].as_str().unwrap_or_default();
        assert!(
            why.contains("reported nothing within 20 s and was cancelled"),
            "{key}: {why}"
        );
    }
    // A job the engine refused is an error with the engine's reason, and is not cancelled.
    let refused = j["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["story_key"] == "7-3-refused")
        .unwrap_or_else(|| panic!("no error for 7-3-refused: {j}"));
    let why = refused["error_message"].as_str().unwrap_or_default();
    assert!(
        why.contains("the job failed without a result")
            && why.contains("exit code 3")
            && why.contains("queue 'gpu' does not exist"),
        "{why}"
    );
    // Cancelled through the engine: the blocked command's process group is gone, and the
    // cancel command was given each job's id (the last line its runner command printed).
    assert!(!pid_alive(&jobs.join("pid-7-1-blocked")));
    assert_eq!(
        cancelled(&r),
        [
            format!("blocking-7-1-blocked|7-1-blocked|{sid}"),
            format!("queued-7-2-queued|7-2-queued|{sid}"),
        ]
    );
    // What did not land stays on the remote: the bases of the silent stories.
    let left = common::remote_refs(&r, &url);
    assert!(left.contains_key(&format!("refs/teleos/{sid}/base/7-2-queued")));
    assert!(!left.contains_key(&format!("refs/teleos/{sid}/base/1-1-first")));
}

#[test]
fn ctrl_c_cancels_every_job_through_the_engine() {
    let (r, _bare, _url) = setup(&["7-1-blocked", "7-2-queued"]);
    let jobs = install_failing_runner(&r);
    let child = r
        .teleos_cmd(&r.root)
        .args(["close", "--parallel", "2", "--all", "--yes", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both jobs are out: one command blocks, the other has returned; then Ctrl-C.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(jobs.join("pid-7-1-blocked").exists() && jobs.join("submitted-7-2-queued").exists()) {
        assert!(std::time::Instant::now() < deadline, "jobs never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sid = j["session_id"].as_str().unwrap();
    assert!(!pid_alive(&jobs.join("pid-7-1-blocked")));
    assert_eq!(
        cancelled(&r),
        [
            format!("blocking-7-1-blocked|7-1-blocked|{sid}"),
            format!("queued-7-2-queued|7-2-queued|{sid}"),
        ]
    );
    assert!(j["notes"].to_string().contains("interrupted"), "{j}");
}

/// A job whose agent met a rate limit (and got through on its own retry) tells the
/// orchestrator's governor, as a local worker does: dispatches pause, and the jobs allowed at
/// once drop by one.
#[test]
fn a_rate_limited_job_lowers_the_dispatch_limit() {
    let (r, _bare, _url) = setup(&["1-1-first", "6-1-limited", "1-2-more"]);
    install_failing_runner(&r);
    r.git(&["config", "teleos.rateLimitBackoff", "0.5"]);
    let out = r
        .teleos_cmd(&r.root)
        .args(["close", "--parallel", "3", "--all", "--yes", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["completed"].as_array().unwrap().len(), 3, "{j}");
    let limited = j["completed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["story_key"] == "6-1-limited")
        .unwrap();
    assert_eq!(limited["attempts"], 2, "{limited}");
    let g = &j["governor"];
    assert_eq!(g["max_parallel"], 3, "{j}");
    assert_eq!(g["rate_limit_signals"], 1, "{j}");
    assert_eq!(g["min_limit"], 2, "{j}");
    assert_eq!(g["events"][0]["event"], "rate_limited", "{j}");
    assert!(stderr.contains("rate limit: new agents wait"), "{stderr}");
}
