//! End-to-end: `git teleos clean-orphans`, `status` and `hooks` against real repositories and
//! the real binary: a batch killed with SIGKILL, a hostile manifest, bad manifests, hooks over
//! a user's own hook.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agent::Claude;
use common::{repo_with_stories, TestRepo};
use serde_json::{json, Value};

const WT: &str = ".claude/worktrees";

fn wait_for(what: &str, timeout_secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_group(pgid: &str, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{}", pgid.trim())])
        .stderr(Stdio::null())
        .status();
}

fn group_alive(pgid: &str) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{}", pgid.trim())])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn manifest(r: &TestRepo) -> Value {
    serde_json::from_str(&r.read(&format!("{WT}/manifest.json"))).unwrap()
}

/// A stand-in `claude` whose behaviour depends on the story: `1-*` finishes at once, `2-*`
/// commits then sleeps, `3-*` leaves uncommitted files then sleeps. Each writes its process
/// group (its own pid: agents lead their group) to `<state>/<key>` when it reaches that state.
fn install_agent(r: &TestRepo) -> PathBuf {
    Claude::new()
        .sh("mkdir -p out")
        .on(
            "1-*",
            r#"sed -i 's/^- \[ \] /- [x] /' "$file"
    echo "$key" > "out/$key.txt"
    git add -A && git commit -qm "teleos: close $key"
    answer 10 1 9
    exit 0"#,
        )
        .on(
            "2-*",
            r#"echo "committed work" > "out/$key.txt"
    git add -A && git commit -qm "teleos: unmerged work of $key"
    echo $$ > "$state/$key.tmp" && mv "$state/$key.tmp" "$state/$key""#,
        )
        .on(
            "3-*",
            r#"echo "uncommitted work" > "out/$key.txt"
    echo "changed" >> README.md
    echo $$ > "$state/$key.tmp" && mv "$state/$key.tmp" "$state/$key""#,
        )
        .sleep("300")
        .install(r)
}

/// The session id of the only session in the manifest, once there is one.
fn wait_for_session(r: &TestRepo) -> String {
    let path = r.path(&format!("{WT}/manifest.json"));
    let mut sid = String::new();
    wait_for("the session in the manifest", 60, || {
        let Ok(text) = std::fs::read_to_string(&path) else {
            return false;
        };
        let Ok(m) = serde_json::from_str::<Value>(&text) else {
            return false;
        };
        match m["sessions"].as_object().and_then(|s| s.keys().next()) {
            Some(k) => {
                sid = k.clone();
                true
            }
            None => false,
        }
    });
    sid
}

#[test]
fn a_batch_killed_with_sigkill_is_cleaned_without_losing_any_work() {
    let r = repo_with_stories(&["1-1-fast", "2-1-committer", "3-1-dirty"]);
    let state = install_agent(&r);
    let start = r.git(&["rev-parse", "HEAD"]);
    let mut batch = r
        .teleos_cmd(&r.root)
        .args([
            "close",
            "--parallel",
            "3",
            "--all",
            "--yes",
            "--setup",
            "none",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sid = wait_for_session(&r);
    let integration = format!("integration-{sid}");
    wait_for("the agents' states", 60, || {
        state.join("2-1-committer").exists() && state.join("3-1-dirty").exists()
    });
    wait_for("1-1-fast merged into the integration branch", 60, || {
        r.git_in(&r.root, &["log", "--format=%s", &integration])
            .stdout
            .contains("teleos: close 1-1-fast")
    });
    let committer = std::fs::read_to_string(state.join("2-1-committer")).unwrap();
    let dirty = std::fs::read_to_string(state.join("3-1-dirty")).unwrap();

    // While the batch runs, its session is alive: clean-orphans touches nothing of it.
    let live = r.teleos(["clean-orphans", "--json"]);
    live.ok();
    let j = live.json();
    assert_eq!(j["sessions"][0]["session_id"], json!(sid), "{j}");
    assert_eq!(j["sessions"][0]["action"], "skipped", "{j}");
    let worktrees_live = r.git(&["worktree", "list"]);
    assert!(
        worktrees_live.contains(&format!("teleos-{sid}-")),
        "{worktrees_live}"
    );
    let status = r.teleos(["status", "--json"]).json();
    assert_eq!(status["sessions"][0]["state"], "alive", "{status}");
    let wts = status["sessions"][0]["worktrees"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        wts.iter()
            .any(|w| w["dirty"].as_array().is_some_and(|d| !d.is_empty())),
        "{status}"
    );

    // SIGKILL the orchestrator; the committer's agent dies with its group; the dirty one's
    // group is left for clean-orphans to stop, as recorded in the manifest.
    batch.kill().unwrap();
    batch.wait().unwrap();
    kill_group(&committer, "-KILL");
    // The batch recorded its agents' process groups as they started.
    let m = manifest(&r);
    let dirty_pgid: i32 = dirty.trim().parse().unwrap();
    assert!(
        m["sessions"][&sid]["agent_pgids"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(dirty_pgid))),
        "{m}"
    );

    let status = r.teleos(["status"]);
    status.ok();
    assert!(
        status.stdout.contains(&format!("Session {sid}  dead")),
        "{}",
        status.stdout
    );

    // A dry run changes nothing.
    let before = r.read(&format!("{WT}/manifest.json"));
    let plan = r.teleos(["clean-orphans", "--dry-run"]);
    plan.ok();
    plan.stdout_has("would keep");
    assert_eq!(r.read(&format!("{WT}/manifest.json")), before);
    assert_eq!(r.git(&["worktree", "list"]), worktrees_live);
    assert_eq!(r.git(&["for-each-ref", "refs/teleos/rescue"]), "");

    let out = r.teleos(["clean-orphans", "--json"]);
    out.ok();
    let j = out.json();
    let cleaned = &j["sessions"][0];
    assert_eq!(cleaned["action"], "cleaned", "{j}");
    assert_eq!(
        cleaned["stopped_process_groups"],
        json!([dirty.trim().parse::<i32>().unwrap()])
    );
    wait_for("the dirty agent's group to be gone", 10, || {
        !group_alive(&dirty)
    });

    // All three pieces of work are reachable from rescue refs.
    let prefix = format!("refs/teleos/rescue/{sid}");
    let rescued = r.git(&["for-each-ref", "--format=%(refname)", &prefix]);
    let all_logs = r.git(&["log", "--format=%s", "--glob", &format!("{prefix}/*")]);
    assert!(
        all_logs.contains("teleos: close 1-1-fast"),
        "{rescued}\n{all_logs}"
    );
    assert!(
        all_logs.contains("teleos: unmerged work of 2-1-committer"),
        "{rescued}\n{all_logs}"
    );
    let integ = format!("{prefix}/branches/{integration}");
    assert!(r
        .git(&["log", "--format=%s", &integ])
        .contains("teleos: close 1-1-fast"));
    let snapshot = rescued
        .lines()
        .find(|l| l.contains("/uncommitted/"))
        .unwrap_or_else(|| panic!("no snapshot ref in\n{rescued}"));
    assert_eq!(
        r.git(&["show", &format!("{snapshot}:out/3-1-dirty.txt")]),
        "uncommitted work"
    );
    assert!(r
        .git(&["show", &format!("{snapshot}:README.md")])
        .ends_with("changed"));

    // Nothing else is left, the user's branch did not move, the repository is sound.
    assert_eq!(r.worktree_count(), 1);
    assert_eq!(r.git(&["branch", "--format=%(refname:short)"]), "main");
    assert_eq!(r.git(&["rev-parse", "main"]), start);
    assert_eq!(manifest(&r)["sessions"], json!({}));
    assert!(!r.path(&format!("{WT}/.teleos-{sid}.lock")).exists());
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress", "--no-dangling"]);
    assert_eq!(fsck.code, 0, "{}{}", fsck.stdout, fsck.stderr);
    assert!(!fsck.stdout.contains("missing"), "{}", fsck.stdout);

    // A second run has nothing to do.
    let again = r.teleos(["clean-orphans"]);
    again.ok();
    again.stdout_has("No sessions");
}

/// A session that nothing could prove alive: no lock, no pid, started long ago.
fn dead_session(worktrees: Value, integration: &str) -> Value {
    json!({
        "started_at": "2020-01-01T00:00:00Z",
        "workflow": "story-closer",
        "integration_branch": integration,
        "worktrees": worktrees,
        "status": "active",
        "tool": "git-teleos",
    })
}

#[test]
fn a_hostile_manifest_cannot_delete_anything_outside() {
    let r = TestRepo::new();
    r.git(&["branch", "feature"]);
    r.git(&["branch", "other"]);
    r.write("outside/keep.txt", "precious\n");
    r.commit_all("outside");
    r.write("outside/untracked.txt", "precious too\n");
    // A linked worktree of the user's, outside the worktrees folder.
    let elsewhere = r.root.parent().unwrap().join("elsewhere");
    r.git(&[
        "worktree",
        "add",
        "-q",
        elsewhere.to_str().unwrap(),
        "other",
    ]);
    std::fs::write(elsewhere.join("mine.txt"), "user's work\n").unwrap();
    // A symlink inside the worktrees folder pointing at the user's folder.
    let wt = r.path(WT);
    std::fs::create_dir_all(&wt).unwrap();
    std::os::unix::fs::symlink(r.path("outside"), wt.join("teleos-abcdef-1")).unwrap();

    let entries = json!([
        {"path": r.path("outside").to_str().unwrap(), "branch": "main"},
        {"path": "../..", "branch": "feature"},
        {"path": format!("{WT}/../../.."), "branch": "other"},
        {"path": elsewhere.to_str().unwrap(), "branch": "other"},
        {"path": wt.join("teleos-abcdef-1").to_str().unwrap(), "branch": "refs/heads/main"},
        {"path": wt.to_str().unwrap(), "branch": "feature"},
    ]);
    let m = json!({"sessions": {
        "abcdef": dead_session(entries.clone(), "main"),
        "../../x": dead_session(entries, "feature"),
    }});
    let text = serde_json::to_string_pretty(&m).unwrap();
    r.write(&format!("{WT}/manifest.json"), &text);

    let out = r.teleos(["clean-orphans", "--json"]);
    out.ok();
    let j = out.json();
    let by_id = |id: &str| {
        j["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["session_id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {j}"))
            .clone()
    };
    let ours = by_id("abcdef");
    assert_eq!(ours["removed_worktrees"], json!([]), "{j}");
    assert_eq!(ours["deleted_branches"], json!([]), "{j}");
    let refused = ours["refused"].to_string();
    for what in ["main", "feature", "other", "not inside"] {
        assert!(refused.contains(what), "{what} not refused: {refused}");
    }
    assert_eq!(by_id("../../x")["action"], "skipped", "{j}");

    // Everything outside is as it was.
    assert_eq!(r.read("outside/keep.txt"), "precious\n");
    assert_eq!(r.read("outside/untracked.txt"), "precious too\n");
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("mine.txt")).unwrap(),
        "user's work\n"
    );
    assert_eq!(r.worktree_count(), 2);
    assert_eq!(
        r.git(&["branch", "--format=%(refname:short)"]),
        "feature\nmain\nother"
    );
    assert!(wt.join("teleos-abcdef-1").symlink_metadata().is_ok());
    assert_eq!(
        r.git(&["status", "--porcelain", "--", "outside"]),
        "?? outside/untracked.txt"
    );
    // The foreign id stays in the manifest; our id (nothing of it left to clean) is gone.
    let after = manifest(&r);
    assert!(after["sessions"].get("../../x").is_some());
    assert!(after["sessions"].get("abcdef").is_none());
}

#[test]
fn worktree_folders_deleted_by_hand_are_cleaned_and_their_commits_kept() {
    let r = TestRepo::new();
    let path = r.path(&format!("{WT}/teleos-123abc-1"));
    r.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "worktree/teleos-123abc-1",
        path.to_str().unwrap(),
    ]);
    r.git(&["branch", "integration-123abc"]);
    std::fs::write(path.join("work.txt"), "work\n").unwrap();
    r.git_in(&path, &["add", "work.txt"]);
    assert_eq!(r.git_in(&path, &["commit", "-qm", "agent work"]).code, 0);
    r.git(&["worktree", "lock", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&path).unwrap();
    let m = json!({"sessions": {"123abc": dead_session(
        json!([{"path": path.to_str().unwrap(), "branch": "worktree/teleos-123abc-1"}]),
        "integration-123abc",
    )}});
    r.write(&format!("{WT}/manifest.json"), &m.to_string());

    let out = r.teleos(["clean-orphans"]);
    out.ok();
    out.stdout_has("orphaned; cleaned");
    assert_eq!(
        r.git(&[
            "log",
            "--format=%s",
            "-1",
            "refs/teleos/rescue/123abc/branches/worktree/teleos-123abc-1"
        ]),
        "agent work"
    );
    assert_eq!(r.worktree_count(), 1);
    assert_eq!(r.git(&["branch", "--format=%(refname:short)"]), "main");
    assert_eq!(manifest(&r)["sessions"], json!({}));
}

#[test]
fn status_without_a_manifest_says_no_sessions() {
    let r = TestRepo::new();
    let out = r.teleos(["status"]);
    out.ok();
    out.stdout_has("No sessions");
    let j = r.teleos(["status", "--json"]).json();
    assert_eq!(j["sessions"], json!([]));
    assert_eq!(j["manifest_exists"], json!(false));
    r.teleos(["clean-orphans", "--quiet"]).ok();
    assert!(!r.path(".claude").exists(), "nothing is created");
}

#[test]
fn status_lists_unclaimed_worktrees() {
    let r = TestRepo::new();
    let path = r.path(&format!("{WT}/stray"));
    r.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "stray",
        path.to_str().unwrap(),
    ]);
    let j = r.teleos(["status", "--json"]).json();
    assert_eq!(j["unclaimed_worktrees"][0]["branch"], "stray", "{j}");
    assert_eq!(j["unclaimed_worktrees"][0]["linked_worktree"], true, "{j}");
}

#[test]
fn a_bad_manifest_is_an_error_naming_it_and_is_left_alone_unless_repaired() {
    for bad in [
        "",
        "   \n",
        "{\"sessions\": {",
        "not json",
        "{\"sessions\": []}",
        "[1, 2]",
    ] {
        let r = TestRepo::new();
        r.write(&format!("{WT}/manifest.json"), bad);
        let manifest_path = r.path(&format!("{WT}/manifest.json"));
        for cmd in [
            &["status"][..],
            &["clean-orphans"],
            &["clean-orphans", "--dry-run"],
        ] {
            let out = r.teleos(cmd);
            out.code(2);
            assert!(
                out.stderr.contains(manifest_path.to_str().unwrap()),
                "{cmd:?} {bad:?}: {}",
                out.stderr
            );
            assert_eq!(std::fs::read_to_string(&manifest_path).unwrap(), bad);
        }
        let out = r.teleos(["clean-orphans", "--repair"]);
        out.ok();
        let backups: Vec<PathBuf> = std::fs::read_dir(r.path(WT))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("manifest.json.bad-"))
            .collect();
        assert_eq!(backups.len(), 1, "{bad:?}");
        assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), bad);
        r.teleos(["status"]).ok();
    }
}

/// `git` can find `git teleos` (for the hooks).
fn put_binary_on_path(r: &TestRepo) {
    let link = r.bin_dir.join("git-teleos");
    if !link.exists() {
        std::os::unix::fs::symlink(common::BIN, link).unwrap();
    }
}

fn write_user_hook(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn hooks_install_twice_and_uninstall_keep_the_users_hook_byte_for_byte() {
    let r = TestRepo::new();
    put_binary_on_path(&r);
    let log = r.home.join("hook.log");
    let user = format!(
        "#!/bin/sh\n# my own hook\necho \"user hook $1\" >> '{}'\nexit 0\n",
        log.display()
    );
    let hook = r.path(".git/hooks/post-checkout");
    write_user_hook(&hook, &user);

    let first = r.teleos(["hooks", "install"]);
    first.ok();
    first.stdout_has("post-checkout: installed (added");
    let once = std::fs::read_to_string(&hook).unwrap();
    let second = r.teleos(["hooks", "install"]);
    second.ok();
    second.stdout_has("already installed");
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), once);
    assert!(
        once.starts_with("#!/bin/sh\n# >>> git-teleos >>>\n"),
        "{once}"
    );
    assert!(once.contains("# my own hook"));
    assert!(r.path(".git/hooks/post-merge").exists());

    // The hook runs the user's part, and a broken manifest cannot fail the checkout.
    r.write(&format!("{WT}/manifest.json"), "broken");
    let co = r.git_in(&r.root, &["checkout", "-q", "-b", "topic"]);
    assert_eq!(co.code, 0, "{}", co.stderr);
    assert!(
        co.stderr.contains("manifest"),
        "the error is shown: {}",
        co.stderr
    );
    assert!(std::fs::read_to_string(&log).unwrap().contains("user hook"));
    assert!(r
        .teleos(["hooks", "status"])
        .stdout
        .contains("post-checkout: installed"));

    let off = r.teleos(["hooks", "uninstall"]);
    off.ok();
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), user);
    assert!(!r.path(".git/hooks/post-merge").exists());
}

#[test]
fn hooks_honour_core_hooks_path_and_work_from_linked_worktrees() {
    let r = TestRepo::new();
    put_binary_on_path(&r);
    r.git(&["config", "core.hooksPath", "my-hooks"]);
    let out = r.teleos(["hooks", "install"]);
    out.ok();
    out.stdout_has("core.hooksPath");
    assert!(r.path("my-hooks/post-checkout").exists());
    assert!(!r.path(".git/hooks/post-checkout").exists());
    r.teleos(["hooks", "uninstall"]).ok();
    assert!(!r.path("my-hooks/post-checkout").exists());
    r.git(&["config", "--unset", "core.hooksPath"]);

    let linked = r.add_linked_worktree();
    r.teleos_in(&linked, ["hooks", "install"]).ok();
    assert!(r.path(".git/hooks/post-checkout").exists());
    // With no manifest the hook is silent and quick.
    let started = Instant::now();
    let co = r.git_in(&linked, &["checkout", "-q", "-b", "side2"]);
    assert_eq!(co.code, 0, "{}", co.stderr);
    assert_eq!(co.stderr, "");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_parallel_close_cleans_orphans_first() {
    let r = repo_with_stories(&["1-1-fast"]);
    install_agent(&r);
    let path = r.path(&format!("{WT}/teleos-fedcba-1"));
    r.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "worktree/teleos-fedcba-1",
        path.to_str().unwrap(),
    ]);
    std::fs::write(path.join("half-done.txt"), "left by a crashed run\n").unwrap();
    let m = json!({"sessions": {"fedcba": dead_session(
        json!([{"path": path.to_str().unwrap(), "branch": "worktree/teleos-fedcba-1"}]),
        "integration-fedcba",
    )}});
    r.write(&format!("{WT}/manifest.json"), &m.to_string());

    let out = r.teleos([
        "close",
        "--parallel",
        "1",
        "--yes",
        "--setup",
        "none",
        "1-1",
    ]);
    out.ok();
    out.stderr_has("cleaned orphaned session fedcba");
    assert_eq!(
        r.git(&[
            "show",
            "refs/teleos/rescue/fedcba/uncommitted/teleos-fedcba-1:half-done.txt"
        ]),
        "left by a crashed run"
    );
    assert!(!path.exists());
    assert_eq!(manifest(&r)["sessions"], json!({}));
}
