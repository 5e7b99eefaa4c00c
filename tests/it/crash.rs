//! Crash at every step of a parallel batch (TELEOS_FAULT, debug builds), then clean-orphans:
//! no agent work is lost, the user's branch is untouched or correctly landed, the manifest is
//! never torn, `git fsck` is clean, and no worktree is left.

use crate::common;

use std::collections::BTreeSet;

use common::agent::Claude;
use common::{lines, repo_with_stories, TestRepo};

/// A stand-in `claude` that commits its story's work, leaves one uncommitted scratch file, and
/// records every commit it made.
fn install_agent(r: &TestRepo, seconds: &str) {
    Claude::new()
        .tick()
        .write_out()
        .commit(r#"out "$file""#)
        .sh(r#"git rev-parse HEAD >> "$state/commits""#)
        .sh(r#"echo "scratch of $key" > "scratch-$key.txt""#)
        .record("ran")
        .sleep(seconds)
        .sh("answer 10 1 9")
        .install(r);
}

fn crash_at(point: &str) {
    let r = repo_with_stories(&["1-1-a", "1-2-b", "1-3-c"]);
    r.write("notes.txt", "the user's own notes\n");
    let start = r.git(&["rev-parse", "HEAD"]);
    install_agent(&r, if point == "agent-running" { "3" } else { "0" });

    let mut cmd = r.teleos_cmd(&r.root);
    cmd.env("TELEOS_FAULT", point)
        .args(["close", "--parallel", "2", "--all", "--yes", "--json"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code().is_none() && stderr.contains(&format!("fault injected at {point}")),
        "{point}: the run did not crash where asked ({:?})\n{stderr}",
        out.status
    );
    // The crash took the agents with it (parent-death signal); give them a moment to go.
    std::thread::sleep(std::time::Duration::from_millis(300));

    // The manifest, if any, is whole.
    let manifest = r.path(".claude/worktrees/manifest.json");
    if manifest.exists() {
        let text = std::fs::read_to_string(&manifest).unwrap();
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{point}: torn manifest ({e}):\n{text}"));
    }

    let trash = || -> Vec<String> {
        std::fs::read_dir(r.path(".claude/worktrees"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".teleos-trash-"))
            .collect()
    };
    if point == "worktree-removal" {
        // Caught between moving the worktree aside and unregistering it.
        assert_eq!(trash().len(), 1, "{point}: {:?}\n{stderr}", trash());
    }

    let clean = r.teleos(["clean-orphans"]);
    assert_eq!(
        clean.code, 0,
        "{point}: clean-orphans failed\n{}\n{}",
        clean.stdout, clean.stderr
    );

    // Every commit an agent made is still reachable from a ref.
    for c in lines(&r.home.join("agents/commits")) {
        let holders = r.git(&["for-each-ref", "--contains", &c, "--format=%(refname)"]);
        assert!(
            !holders.is_empty(),
            "{point}: agent commit {c} is reachable from no ref"
        );
    }
    // Every agent's uncommitted scratch file is in some ref's history.
    let ran: BTreeSet<String> = lines(&r.home.join("agents/ran")).into_iter().collect();
    for key in &ran {
        let found = r.git(&[
            "log",
            "--all",
            "--format=%H",
            "--",
            &format!("scratch-{key}.txt"),
        ]);
        assert!(
            !found.is_empty(),
            "{point}: the uncommitted work of {key} was lost"
        );
    }
    // The user's branch: untouched, or every commit on it is one of ours and it is checked out.
    let main = r.git(&["rev-parse", "main"]);
    if main != start {
        let ours = r.git(&["log", "--format=%s", &format!("{start}..main")]);
        assert!(
            ours.lines().all(|l| l.starts_with("teleos:")),
            "{point}: {ours}"
        );
        let status = r.git(&["status", "--porcelain"]);
        assert_eq!(
            status, "?? notes.txt",
            "{point}: the checkout does not match main"
        );
    }
    assert_eq!(r.git(&["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(r.read("notes.txt"), "the user's own notes\n");
    // No worktree is left, the repository is sound, no session remains.
    let worktrees = r.git(&["worktree", "list", "--porcelain"]);
    assert_eq!(
        worktrees.matches("worktree ").count(),
        1,
        "{point}: {worktrees}"
    );
    assert!(trash().is_empty(), "{point}: {:?}", trash());
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress"]);
    assert_eq!(fsck.code, 0, "{point}: {}", fsck.stderr);
    if manifest.exists() {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        assert_eq!(
            m["sessions"],
            serde_json::json!({}),
            "{point}: session left"
        );
    }
}

#[test]
fn crash_after_worktree_create() {
    crash_at("after-worktree-create");
}

#[test]
fn crash_mid_setup() {
    crash_at("mid-setup");
}

#[test]
fn crash_while_an_agent_runs() {
    crash_at("agent-running");
}

#[test]
fn crash_between_merge_and_ref_update() {
    crash_at("merge-before-ref-update");
}

#[test]
fn crash_during_landing() {
    crash_at("landing");
}

#[test]
fn crash_in_the_middle_of_removing_a_worktree() {
    crash_at("worktree-removal");
}

#[test]
fn crash_during_cleanup() {
    crash_at("cleanup");
}

#[test]
fn a_panic_in_one_story_ends_that_story_not_the_batch() {
    let r = repo_with_stories(&["1-1-a", "1-2-b", "1-3-c"]);
    install_agent(&r, "0");
    let mut cmd = r.teleos_cmd(&r.root);
    // A bug while the first story merges (holding the merge lock).
    cmd.env("TELEOS_FAULT", "panic-once:merge-before-ref-update")
        .args(["close", "--parallel", "2", "--all", "--yes", "--json"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The batch finished and reported: one story failed, so "incomplete", not a crash.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}):\n{stderr}"));
    let errors = j["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{j}");
    let why = errors[0]["error_message"].as_str().unwrap();
    assert!(
        why.contains("internal error") && why.contains("fault injected at merge-before-ref-update"),
        "{why}"
    );
    // The other two ran and landed (partial: this agent leaves a scratch file behind).
    let done: BTreeSet<&str> = ["completed", "blocked"]
        .iter()
        .flat_map(|k| j[*k].as_array().unwrap())
        .map(|s| s["story_key"].as_str().unwrap())
        .collect();
    assert_eq!(done.len(), 2, "{j}");
    for key in &done {
        assert!(
            r.path(&format!("out/{key}.txt")).exists(),
            "{key} did not land"
        );
    }
    let notes = j["notes"].to_string();
    assert!(notes.contains("retired after an internal error"), "{notes}");
    // The failed story's commit is kept on a ref.
    for c in lines(&r.home.join("agents/commits")) {
        let holders = r.git(&["for-each-ref", "--contains", &c, "--format=%(refname)"]);
        assert!(
            !holders.is_empty(),
            "agent commit {c} is reachable from no ref"
        );
    }
}

#[test]
fn every_crash_point_is_tested() {
    let tested = [
        "after-worktree-create",
        "mid-setup",
        "agent-running",
        "merge-before-ref-update",
        "landing",
        "cleanup",
        "worktree-removal",
    ];
    assert_eq!(git_teleos::fault::POINTS, tested);
}
