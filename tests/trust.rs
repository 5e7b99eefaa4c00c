//! Trust under ordinary misuse (issue 17): no git identity, two sessions on the same stories,
//! resume leftovers, and a report that never says more than happened. Real git, the real
//! binary; the only stand-in is the agent CLI, speaking Claude Code's protocol.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{story, Run, TestRepo};

const DIR: &str = "docs/sprint-artifacts";

/// A stand-in `claude`: appends the story key to `<home>/runs` (every run, across sessions),
/// waits `<home>/delay` seconds if that file exists, ticks the story's boxes, writes
/// `out/<key>.txt`, commits, and answers with the worker result in Claude's envelope.
/// Stories whose key starts with `fail-` fail as Claude does on an API error.
fn install_agent(r: &TestRepo) {
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = auth ]; then echo '{{"loggedIn": true}}'; exit 0; fi
prompt=$(cat)
{story_from_prompt}
home="{home}"
echo "$key" >> "$home/runs"
case "$key" in fail-*)
  printf '{{"type":"result","subtype":"error_during_execution","is_error":true,"result":"API Error: 500 Internal server error"}}\n'
  exit 1;;
esac
[ -f "$home/delay" ] && sleep "$(cat "$home/delay")"
touch "$home/started-$key"
already=$(grep -c '^- \[x\]' "$file")
total=$(grep -c '^- \[' "$file")
sed -i 's/^- \[ \] /- [x] /' "$file"
done_now=$((total - already))
mkdir -p out && echo "$key" > "out/$key.txt"
case "$key" in dirty-*) echo "not committed" > "scratch-$key.txt";; esac
git add out "$file" && git commit -qm "teleos: close $key"
printf '{{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.1,"result":"{{\\"story_key\\":\\"%s\\",\\"status\\":\\"completed\\",\\"tasks_total\\":%s,\\"tasks_completed_by_closer\\":%s,\\"tasks_already_done\\":%s}}"}}\n' "$key" "$total" "$done_now" "$already"
"#,
        home = r.home.display(),
        story_from_prompt = common::STORY_FROM_PROMPT
    );
    r.install_script("claude", &script);
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
    assert_eq!(
        r.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    let common = Path::new(&r.git(&["rev-parse", "--git-common-dir"])).to_path_buf();
    assert!(!r.root.join(common).join("teleos").exists(), "{}", out.stderr);
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    assert!(runs(r).is_empty(), "an agent ran: {:?}", runs(r));
}

#[track_caller]
fn assert_identity_refused(out: &Run) {
    out.code(2);
    assert!(out.stderr.contains("error: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: ") && out.stderr.contains("git config user.name"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("git config user.email"),
        "{}",
        out.stderr
    );
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
