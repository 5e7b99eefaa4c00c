//! Trust under ordinary misuse (issue 17): no git identity, two sessions on the same stories,
//! resume leftovers, and a report that never says more than happened. Real git, the real
//! binary; the only stand-in is the agent CLI, speaking Claude Code's protocol.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::agent::Claude;
use common::{story, Run, TestRepo};

const DIR: &str = "docs/sprint-artifacts";

/// A stand-in `claude`: appends the story key to `<home>/runs` (every run, across sessions),
/// waits `<home>/delay` seconds if that file exists, ticks the story's boxes, writes
/// `out/<key>.txt`, commits, and answers with the worker result in Claude's envelope.
/// Stories whose key ends in `-fail` fail as Claude does on an API error; those ending in
/// `-dirty` leave an uncommitted file behind.
fn install_agent(r: &TestRepo) {
    Claude::new()
        .cost(0.1)
        .sh(r#"echo "$key" >> "$home/runs""#)
        .fail(
            "*-fail",
            "error_during_execution",
            "API Error: 500 Internal server error",
        )
        .sh(r#"touch "$home/started-$key"
[ -f "$home/delay" ] && sleep "$(cat "$home/delay")"
[ -f "$home/delay-$key" ] && sleep "$(cat "$home/delay-$key")""#)
        .tick()
        .write_out()
        .leftover("*-dirty", "scratch-$key.txt", "not committed")
        .commit(r#"out "$file""#)
        .answer_counts()
        .install(r);
}

fn repo_with(keys: &[&str]) -> TestRepo {
    let r = TestRepo::new();
    for key in keys {
        r.write(&format!("{DIR}/{key}.md"), &story("Story", 9, 1));
    }
    r.commit_all("stories");
    install_agent(&r);
    r
}

/// How many times each story's agent ran, over every session.
fn runs(r: &TestRepo) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(r.home.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// `git-teleos` with no identity anywhere: an empty HOME, no global or system config, no
/// `GIT_AUTHOR_*` / `GIT_COMMITTER_*` / `EMAIL`.
fn without_identity(r: &TestRepo, args: &[&str]) -> Run {
    let empty_home = r.home.join("empty-home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let mut cmd = r.teleos_cmd(&r.root);
    cmd.args(args).env("HOME", &empty_home);
    for var in [
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_nothing_created(r: &TestRepo, out: &Run) {
    assert!(!r.path(".claude").exists(), "{}", out.stderr);
    assert_eq!(r.git(&["branch", "--format=%(refname)"]), "refs/heads/main");
    assert_eq!(r.git(&["for-each-ref", "refs/teleos"]), "");
    assert_eq!(r.worktree_count(), 1);
    let common = Path::new(&r.git(&["rev-parse", "--git-common-dir"])).to_path_buf();
    assert!(
        !r.root.join(common).join("teleos").exists(),
        "{}",
        out.stderr
    );
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    assert!(runs(r).is_empty(), "an agent ran: {:?}", runs(r));
}

#[track_caller]
fn assert_identity_refused(out: &Run) {
    out.code(2);
    out.stderr_has("error: ");
    assert!(
        out.stderr.contains("hint: ") && out.stderr.contains("git config user.name"),
        "{}",
        out.stderr
    );
    out.stderr_has("git config user.email");
    assert!(!out.stderr.contains("Message {"), "{}", out.stderr);
}

#[test]
fn no_identity_parallel_is_refused_before_anything_is_created() {
    let r = repo_with(&["1-1-a", "1-2-b", "1-3-c"]);
    let out = without_identity(&r, &["close", "--all", "--parallel", "3", "--yes"]);
    assert_identity_refused(&out);
    assert_nothing_created(&r, &out);
}

#[test]
fn no_identity_sequential_is_refused_before_anything_is_created() {
    let r = repo_with(&["1-1-a", "1-2-b"]);
    let out = without_identity(&r, &["close", "--all", "--sequential", "--yes"]);
    assert_identity_refused(&out);
    assert_nothing_created(&r, &out);
}

fn spawn(r: &TestRepo, args: &[&str]) -> std::process::Child {
    r.teleos_cmd(&r.root)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> (i32, serde_json::Value, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let j = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), j, stderr)
}

/// Wait (without a time limit on the result, only on hanging) until the agent of `key` started.
fn wait_started(r: &TestRepo, key: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !r.home.join(format!("started-{key}")).exists() {
        assert!(std::time::Instant::now() < deadline, "{key} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn story_keys(j: &serde_json::Value, section: &str) -> Vec<String> {
    j[section]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["story_key"].as_str().unwrap().to_string())
        .collect()
}

/// `n` sessions started at once on the same four stories: each story's agent runs once in all,
/// each story is completed by exactly one session, and every other session says why it
/// skipped it (which session has it, or that it was closed meanwhile).
fn same_stories_at_once(n: usize) {
    let keys = ["1-1-a", "1-2-b", "1-3-c", "1-4-d"];
    let r = repo_with(&keys);
    std::fs::write(r.home.join("delay"), "1").unwrap();
    let children: Vec<_> = (0..n)
        .map(|_| {
            spawn(
                &r,
                &["close", "--all", "--parallel", "2", "--yes", "--json"],
            )
        })
        .collect();
    let reports: Vec<_> = children.into_iter().map(finish).collect();
    assert_eq!(runs(&r), keys, "each story's agent must run once in all");
    let sids: Vec<String> = reports
        .iter()
        .map(|(_, j, _)| j["session_id"].as_str().unwrap().to_string())
        .collect();
    for key in keys {
        let completed_by: Vec<&String> = reports
            .iter()
            .zip(&sids)
            .filter(|((_, j, _), _)| story_keys(j, "completed").contains(&key.to_string()))
            .map(|(_, sid)| sid)
            .collect();
        assert_eq!(completed_by.len(), 1, "{key}: {reports:?}");
        for ((_, j, stderr), sid) in reports.iter().zip(&sids) {
            if sid == completed_by[0] {
                continue;
            }
            let skipped = j["errors"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["story_key"] == key)
                .unwrap_or_else(|| panic!("{sid} does not report {key}: {j}\n{stderr}"));
            let why = skipped["error_message"].as_str().unwrap();
            assert!(
                why.contains(&format!("session {}", completed_by[0]))
                    || why.contains("changed on main"),
                "{why}"
            );
        }
    }
    for k in keys {
        assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
    }
}

#[test]
fn two_sessions_on_the_same_stories_run_each_story_once() {
    same_stories_at_once(2);
}

#[test]
fn four_sessions_on_the_same_stories_run_each_story_once() {
    same_stories_at_once(4);
}

#[test]
fn sequential_sessions_claim_and_skip_claimed_stories() {
    let r = repo_with(&["1-1-a", "1-2-b"]);
    std::fs::write(r.home.join("delay"), "2").unwrap();
    // A sequential session works on 1-1 …
    let seq = spawn(&r, &["close", "1-1", "--sequential", "--yes", "--json"]);
    wait_started(&r, "1-1-a");
    // … so a parallel one started meanwhile leaves it alone and says who has it.
    let par = spawn(
        &r,
        &[
            "close",
            "--all",
            "--parallel",
            "2",
            "--no-land",
            "--yes",
            "--json",
        ],
    );
    let (_, pj, perr) = finish(par);
    let (scode, sj, serr) = finish(seq);
    assert_eq!(scode, 0, "{sj}\n{serr}");
    let seq_sid = sj["session_id"].as_str().unwrap();
    assert_eq!(story_keys(&pj, "completed"), ["1-2-b"], "{pj}\n{perr}");
    let skipped = &pj["errors"][0];
    assert_eq!(skipped["story_key"], "1-1-a", "{pj}");
    assert!(
        skipped["error_message"]
            .as_str()
            .unwrap()
            .contains(&format!("session {seq_sid}")),
        "{pj}"
    );

    // And a sequential session skips what a parallel one holds.
    let _ = std::fs::remove_file(r.home.join("started-1-2-b"));
    r.write(&format!("{DIR}/1-3-c.md"), &story("Story", 9, 1));
    r.commit_all("another story");
    let par = spawn(
        &r,
        &[
            "close",
            "1-3",
            "--parallel",
            "1",
            "--no-land",
            "--yes",
            "--json",
        ],
    );
    wait_started(&r, "1-3-c");
    let seq = r.teleos(["close", "1-3", "--sequential", "--yes", "--json"]);
    let (pcode, pj, perr) = finish(par);
    assert_eq!(pcode, 0, "{pj}\n{perr}");
    let par_sid = pj["session_id"].as_str().unwrap();
    let sj = seq.json();
    assert!(
        sj["errors"][0]["error_message"]
            .as_str()
            .unwrap()
            .contains(&format!("session {par_sid}")),
        "{sj}"
    );
    assert_eq!(runs(&r), ["1-1-a", "1-2-b", "1-3-c"]);
}

/// The linked worktrees git knows besides the main one, and the branches besides `main`.
fn leftovers(r: &TestRepo) -> (Vec<String>, Vec<String>) {
    let worktrees = r
        .git(&["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .filter(|p| Path::new(p) != r.root)
        .map(str::to_string)
        .collect();
    let branches = r
        .git(&["branch", "--format=%(refname:short)"])
        .lines()
        .filter(|b| *b != "main")
        .map(str::to_string)
        .collect();
    (worktrees, branches)
}

/// Five stories on three worktrees, Ctrl-C once three have merged and the last two run.
/// Returns the session id and how many worktrees it kept: the two running, and a third only if
/// it was not yet given back (a slot with nothing left removes its worktree while others run).
fn interrupted_after_three(r: &TestRepo) -> (String, usize) {
    for k in ["1-4-d", "1-5-e"] {
        std::fs::write(r.home.join(format!("delay-{k}")), "60").unwrap();
    }
    let child = spawn(r, &["close", "--all", "--parallel", "3", "--yes", "--json"]);
    wait_started(r, "1-4-d");
    wait_started(r, "1-5-e");
    // Three merges on the integration branch, then Ctrl-C.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let integ = r.git(&[
            "for-each-ref",
            "--format=%(refname)",
            "refs/heads/integration-*",
        ]);
        let merged = if integ.is_empty() {
            0
        } else {
            r.git(&["log", "--format=%s", &integ])
                .matches("teleos: close")
                .count()
        };
        if merged == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "three stories never merged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (code, j, stderr) = finish(child);
    assert_eq!(code, 130, "{stderr}");
    for k in ["1-4-d", "1-5-e"] {
        std::fs::remove_file(r.home.join(format!("delay-{k}"))).unwrap();
    }
    let kept = leftovers(r).0.len();
    assert!(
        (2..=3).contains(&kept),
        "the interrupted session keeps its worktrees: {:?}",
        leftovers(r)
    );
    (j["session_id"].as_str().unwrap().to_string(), kept)
}

#[test]
fn resume_removes_every_worktree_of_its_session() {
    let r = repo_with(&["1-1-a", "1-2-b", "1-3-c", "1-4-d", "1-5-e"]);
    let (sid, kept) = interrupted_after_three(&r);
    let out = r.teleos(["close", "--resume", &sid, "--yes", "--json"]);
    out.ok();
    assert_eq!(
        out.json()["completed"].as_array().unwrap().len(),
        5,
        "{}",
        out.stdout
    );
    assert_eq!(leftovers(&r), (vec![], vec![]), "{}", out.stderr);
    assert!(!r
        .path(&format!(".claude/worktrees/teleos-{sid}-3"))
        .exists());
    // It reuses the worktrees it kept: it does not claim to create them. (One given back
    // before the Ctrl-C is made again if its slot is needed.)
    assert!(
        out.stderr.matches("creating worktree").count() <= 3 - kept,
        "{}",
        out.stderr
    );
    out.stderr_has("reusing");
    for k in ["1-1-a", "1-2-b", "1-3-c", "1-4-d", "1-5-e"] {
        assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
    }
}

#[test]
fn resume_parks_every_worktree_of_its_session_when_keeping_them() {
    let r = repo_with(&["1-1-a", "1-2-b", "1-3-c", "1-4-d", "1-5-e"]);
    let (sid, kept) = interrupted_after_three(&r);
    let out = r.teleos([
        "close",
        "--resume",
        &sid,
        "--parallel",
        "3",
        "--keep-worktrees",
        "--yes",
    ]);
    out.ok();
    let (worktrees, branches) = leftovers(&r);
    assert!(
        worktrees.iter().all(|w| w.contains("teleos-pool-")),
        "{worktrees:?}\n{}",
        out.stderr
    );
    // Every worktree it kept is parked (a resumed slot whose worktree was given back early is
    // made again, and parked too).
    assert!(worktrees.len() >= kept, "{worktrees:?}");
    assert!(
        branches.iter().all(|b| b.contains("teleos-pool-")),
        "{branches:?}"
    );
}

#[test]
fn clean_orphans_removes_worktrees_no_session_claims_and_keeps_their_work() {
    let r = repo_with(&["1-1-a"]);
    // A git-teleos worktree whose session is gone from the manifest (or never made it there),
    // with a commit of its own and an uncommitted file.
    let sid = "abc123";
    let dir = r.path(&format!(".claude/worktrees/teleos-{sid}-3"));
    let branch = format!("worktree/teleos-{sid}-3");
    r.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        &branch,
        dir.to_str().unwrap(),
    ]);
    r.git(&[
        "worktree",
        "lock",
        "--reason",
        &format!("git-teleos session {sid} (pid 999999) is using this worktree"),
        dir.to_str().unwrap(),
    ]);
    std::fs::write(dir.join("work.txt"), "committed\n").unwrap();
    r.git_in(&dir, &["add", "work.txt"]).ok();
    r.git_in(&dir, &["commit", "-qm", "unmerged work"]).ok();
    std::fs::write(dir.join("draft.txt"), "not committed\n").unwrap();
    std::fs::create_dir_all(r.path(".claude/worktrees")).unwrap();
    std::fs::write(
        r.path(".claude/worktrees/manifest.json"),
        "{\"sessions\": {}}\n",
    )
    .unwrap();

    let out = r.teleos(["clean-orphans"]);
    out.ok();
    assert!(out.stdout.contains(sid), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(leftovers(&r), (vec![], vec![]), "{}", out.stdout);
    // The commit and the uncommitted file are kept on rescue refs.
    let refs = r.git(&[
        "for-each-ref",
        "--format=%(refname)",
        &format!("refs/teleos/rescue/{sid}"),
    ]);
    let mut found_commit = false;
    let mut found_draft = false;
    for name in refs.lines() {
        found_commit |= r
            .git(&["log", "--format=%s", name])
            .contains("unmerged work");
        found_draft |= r
            .git_in(&r.root, &["show", &format!("{name}:draft.txt")])
            .code
            == 0;
    }
    assert!(found_commit && found_draft, "refs: {refs}\n{}", out.stdout);
}

/// The rows of a debrief section's table (after its heading and column line).
fn section_rows(debrief: &str, heading: &str) -> usize {
    let mut lines = debrief.lines().skip_while(|l| l.trim() != heading);
    if lines.next().is_none() {
        return 0;
    }
    lines.skip(1).take_while(|l| !l.trim().is_empty()).count()
}

/// The number on a summary line (`  Errors:             2`).
fn summary(debrief: &str, label: &str) -> usize {
    debrief
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{label}:")))
        .unwrap_or_else(|| panic!("no {label} in\n{debrief}"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[track_caller]
fn no_debug_dump(out: &Run) {
    for text in [&out.stdout, &out.stderr] {
        for dump in ["Message {", "Some(", "None)", "Caused by"] {
            assert!(
                !text.contains(dump),
                "a Debug dump reached the user:\n{text}"
            );
        }
    }
}

#[test]
fn nothing_merged_is_never_reported_as_landed() {
    let r = repo_with(&["1-1-a-fail", "1-2-b-fail"]);
    let start = r.git(&["rev-parse", "main"]);
    let out = r.teleos([
        "close",
        "--all",
        "--parallel",
        "2",
        "--retries",
        "0",
        "--yes",
    ]);
    out.code(1);
    no_debug_dump(&out);
    assert_eq!(r.git(&["rev-parse", "main"]), start);
    assert!(!out.stdout.contains("landed on"), "{}", out.stdout);
    out.stdout_has("nothing to land");

    // One story lands: now it says so.
    r.write(&format!("{DIR}/1-3-c.md"), &story("Story", 9, 1));
    r.commit_all("one more");
    let out = r.teleos(["close", "1-3", "--parallel", "1", "--yes"]);
    out.ok();
    out.stdout_has("landed on main");
}

#[test]
fn summary_counts_equal_the_rows_listed() {
    // One story fails, the breaker trips, the others never start.
    let r = repo_with(&["1-1-a-fail", "1-2-b", "1-3-c"]);
    let out = r.teleos([
        "close",
        "--all",
        "--parallel",
        "1",
        "--retries",
        "0",
        "--circuit-breaker",
        "1",
        "--yes",
    ]);
    out.code(1);
    no_debug_dump(&out);
    let d = &out.stdout;
    let errors = section_rows(d, "Errors");
    assert_eq!(errors, 3, "{d}");
    assert_eq!(summary(d, "Errors"), errors, "{d}");
    assert_eq!(
        summary(d, "Selected"),
        summary(d, "Completed")
            + summary(d, "Partially blocked")
            + summary(d, "Routed to pipeline")
            + summary(d, "Errors"),
        "{d}"
    );
    assert!(!d.contains("landed on"), "{d}");
    let j = r.teleos(["debrief", "--json"]).json();
    assert_eq!(
        j["summary"]["errors"].as_u64().unwrap() as usize,
        j["errors"].as_array().unwrap().len(),
        "{j}"
    );
}

#[test]
fn parallel_debrief_says_where_uncommitted_changes_are() {
    let r = repo_with(&["1-1-a-dirty"]);
    let out = r.teleos(["close", "--all", "--parallel", "1", "--yes"]);
    no_debug_dump(&out);
    let d = &out.stdout;
    assert!(!d.contains("kept as they are"), "{d}");
    let sid = d.split_whitespace().nth(2).unwrap();
    let name = format!("refs/teleos/rescue/{sid}/1-1-a-dirty-uncommitted");
    assert!(
        d.contains(&format!(
            "uncommitted changes (scratch-1-1-a-dirty.txt); they are saved on {name}"
        )),
        "{d}"
    );
    assert_eq!(
        r.git(&["show", &format!("{name}:scratch-1-1-a-dirty.txt")]),
        "not committed"
    );
}
