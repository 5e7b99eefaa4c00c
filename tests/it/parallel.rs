//! End-to-end: `git teleos close --parallel` with a stand-in `claude` on PATH speaking Claude
//! Code's protocol. Real git everywhere; the user's checkout is watched throughout.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::agent::Claude;
use common::{entry, story, TestRepo};

const DIR: &str = "docs/sprint-artifacts";

/// A stand-in `claude` for worktrees: ticks the story's boxes, writes `out/<key>.txt` (and
/// `shared.txt` for 9-* stories, which therefore conflict), commits, and answers with the
/// worker result in Claude's envelope. It records how many agents run at once.
fn install_agent(r: &TestRepo, seconds: &str) {
    std::fs::create_dir_all(r.home.join("agents/running")).unwrap();
    Claude::new()
        .cost(0.1)
        .sh(
            r#"case "$prompt" in *"Resolve the merge conflict"*)
  integ=$(printf '%s\n' "$prompt" | sed -n 's/^.*integration branch: `\([^`]*\)`.*$/\1/p' | head -n 1)
  git merge --no-edit -q "$integ" >/dev/null 2>&1
  grep -v '^<<<<<<<\|^=======\|^>>>>>>>' shared.txt > shared.tmp && mv shared.tmp shared.txt
  git add shared.txt && git commit -q --no-edit
  answer_status
  exit 0;;
esac
touch "$state/running/$key"
[ -f node_modules/installed ] && cp node_modules/installed "$state/deps-$key"
now=$(ls "$state/running" | wc -l)
echo "$now" >> "$state/concurrency"
pwd > "$state/cwd-$key"
# Dependency check: 1-2 must see the work of 1-1 already merged.
if [ "$key" = "1-2-second" ]; then
  if [ -f out/1-1-first.txt ]; then echo ok > "$state/dep-1-2"; else echo missing > "$state/dep-1-2"; fi
fi"#,
        )
        .sleep(seconds)
        .tick()
        .write_out()
        .on("9-*", r#"echo "$key wins" > shared.txt"#)
        .leftover("8-*", "leftover.txt", "left behind")
        .on(
            "*-deep",
            r#"mkdir -p new/deeper/still && echo "deep" > new/deeper/still/left.txt"#,
        )
        // A tracked file changed in place (same size, same second) or deleted, not committed.
        .on("*-edit", r#"printf 'ORIGINAL\n' > tracked.txt"#)
        .on("*-gone", "rm tracked.txt")
        .switch_branch("7-*")
        .commit(r#"out "$file" $( [ -f shared.txt ] && echo shared.txt )"#)
        .on(
            "6-*",
            r#"  # Commit something else straight onto the integration branch, then hide it.
  b=$(git symbolic-ref --short HEAD); sid=${b#worktree/teleos-}; sid=${sid%-*}
  good=$(git rev-parse HEAD)
  echo rogue > rogue.txt && git add rogue.txt && git commit -qm "rogue commit"
  git update-ref "refs/heads/integration-$sid" HEAD
  git reset -q --hard "$good""#,
        )
        .sh(r#"rm -f "$state/running/$key""#)
        .on("5-*", "rm -f ../../../notes.txt")
        .on("4-*", r"head -c 1000000000 /dev/zero | tr '\0' x; echo")
        .answer_counts()
        .install(r);
}

fn repo_with(stories: &[(&str, &str)]) -> TestRepo {
    let r = TestRepo::new();
    r.agent_identity();
    r.write("shared.txt", "original\n");
    r.write("tracked.txt", "original\n");
    for (key, text) in stories {
        r.write(&format!("{DIR}/{key}.md"), text);
    }
    r.commit_all("stories");
    r
}

fn no_conflict_markers(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        if p.is_dir() {
            no_conflict_markers(&p);
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            assert!(
                !text.contains("<<<<<<<"),
                "conflict markers in {}",
                p.display()
            );
        }
    }
}

#[test]
fn nine_stories_on_three_worktrees_land_and_leave_nothing_behind() {
    let mut stories: Vec<(String, String)> = Vec::new();
    stories.push(("1-1-first".into(), story("First", 9, 1)));
    stories.push((
        "1-2-second".into(),
        story("Second", 9, 1) + "\n## Dependencies\n\n- Story 1.1 (first)\n",
    ));
    for i in 3..=7 {
        stories.push((format!("1-{i}-more"), story("More", 8, 2)));
    }
    stories.push(("9-1-left".into(), story("Left", 9, 1)));
    stories.push(("9-2-right".into(), story("Right", 9, 1)));
    let refs: Vec<(&str, &str)> = stories
        .iter()
        .map(|(k, t)| (k.as_str(), t.as_str()))
        .collect();
    let r = repo_with(&refs);
    // Long enough that three agents overlap even on a loaded 2-core machine.
    install_agent(&r, "2");
    // The user's own work in progress: an untracked file and an unstaged edit.
    r.write("notes.txt", "my notes\n");
    r.write("tracked.txt", "my edit\n");
    let start = r.git(&["rev-parse", "HEAD"]);

    // Watch the user's HEAD while the batch runs.
    let mut child = r
        .teleos_cmd(&r.root)
        .args(["close", "--parallel", "3", "--all", "--yes", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut heads = Vec::new();
    while child.try_wait().unwrap().is_none() {
        heads.push(r.git(&["symbolic-ref", "HEAD"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one story conflicts\n{stdout}\n{stderr}"
    );
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        heads.iter().all(|h| h == "refs/heads/main"),
        "HEAD moved: {heads:?}"
    );

    // 8 stories landed, one of 9-1/9-2 lost the race on shared.txt and is kept on a ref.
    assert_eq!(j["completed"].as_array().unwrap().len(), 8, "{j}");
    let conflict = j["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "conflict")
        .unwrap_or_else(|| panic!("no conflict reported: {j}"));
    let loser = conflict["story_key"].as_str().unwrap();
    assert!(loser.starts_with("9-"));
    let kept = conflict["rescue_ref"].as_str().unwrap();
    let kept_log = r.git(&["log", "--format=%s", "-1", kept]);
    assert_eq!(kept_log, format!("teleos: close {loser}"));

    // The work is on main, in the user's files too; the user's own edits are untouched.
    let log = r.git(&["log", "--format=%s", &format!("{start}..main")]);
    for (key, _) in &stories {
        if key != loser {
            assert!(
                log.contains(&format!("teleos: close {key}")),
                "{key} missing from\n{log}"
            );
            assert!(
                r.path(&format!("out/{key}.txt")).exists(),
                "{key}'s file not checked out"
            );
        }
    }
    assert_eq!(r.read("notes.txt"), "my notes\n");
    assert_eq!(r.read("tracked.txt"), "my edit\n");
    assert_eq!(
        r.git(&["status", "--porcelain"]),
        " M tracked.txt\n?? notes.txt"
    );
    no_conflict_markers(&r.root);

    // Dependencies: 1-2 started after 1-1 merged; 3 agents ran at once.
    assert_eq!(
        std::fs::read_to_string(r.home.join("agents/dep-1-2"))
            .unwrap()
            .trim(),
        "ok"
    );
    assert!(
        common::max_concurrency(&r) >= 3,
        "max concurrency {}\n{stderr}",
        common::max_concurrency(&r)
    );
    // Agents ran in worktrees, never in the user's checkout.
    let cwd = std::fs::read_to_string(r.home.join("agents/cwd-1-1-first")).unwrap();
    assert!(cwd.contains(".claude/worktrees/teleos-"), "{cwd}");

    // Nothing left: no worktree, no worktree or integration branch, no session.
    assert_eq!(r.worktree_count(), 1);
    let branches = r.git(&["branch", "--format=%(refname:short)"]);
    assert_eq!(branches, "main", "branches left: {branches}");
    let manifest: serde_json::Value =
        serde_json::from_str(&r.read(".claude/worktrees/manifest.json")).unwrap();
    assert_eq!(manifest["sessions"], serde_json::json!({}));
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress"]);
    assert_eq!(fsck.code, 0, "{}", fsck.stderr);
}

#[test]
fn leftovers_are_rescued_and_a_dirty_landing_is_refused_safely() {
    let r = repo_with(&[
        ("8-1-messy", &story("Messy", 9, 1)),
        ("1-1-clean", &story("Clean", 9, 1)),
    ]);
    install_agent(&r, "0");
    // A staged change in the user's checkout blocks landing (the index would be rewritten).
    r.write("tracked.txt", "staged edit\n");
    r.git(&["add", "tracked.txt"]);
    let start = r.git(&["rev-parse", "HEAD"]);
    let out = r.teleos(["close", "--parallel", "2", "--all", "--yes", "--json"]);
    let j = out.json();
    // The messy story committed its work but left a file: kept on a ref, story partial.
    let messy = entry(&j["blocked"], "8-1-messy");
    let rescue = messy["rescue_ref"].as_str().unwrap();
    assert_eq!(
        r.git(&["show", &format!("{rescue}:leftover.txt")]),
        "left behind"
    );
    // Nothing landed on main, the user's staged edit is intact, the work waits on integration.
    assert_eq!(r.git(&["rev-parse", "main"]), start);
    assert_eq!(r.git(&["diff", "--cached", "--name-only"]), "tracked.txt");
    let notes = j["notes"].to_string();
    assert!(notes.contains("git merge integration-"), "{notes}");
    let sid = j["session_id"].as_str().unwrap();
    let integration = format!("integration-{sid}");
    let log = r.git(&["log", "--format=%s", &integration]);
    assert!(
        log.contains("teleos: close 1-1-clean") && log.contains("teleos: close 8-1-messy"),
        "{log}"
    );
    assert_eq!(r.worktree_count(), 1);
    out.code(1);
}

#[test]
fn a_leftover_in_a_deep_new_folder_is_rescued_and_never_reaches_the_next_story() {
    deep_leftover(true);
}

#[test]
fn without_the_watch_a_leftover_in_a_deep_new_folder_is_rescued_too() {
    deep_leftover(false);
}

/// `watch`: `teleos.watchWorktrees` (the check after each story reads what inotify saw
/// change, or walks the whole worktree).
fn deep_leftover(watch: bool) {
    // One slot: the second story runs in the worktree the first one left files in.
    let r = repo_with(&[
        ("1-1-deep", &story("Deep", 9, 1)),
        ("1-2-after", &story("After", 9, 1)),
    ]);
    r.git(&["config", "teleos.watchWorktrees", &watch.to_string()]);
    install_agent(&r, "0");
    let out = r.teleos(["close", "--parallel", "1", "--all", "--yes", "--json"]);
    let j = out.json();
    let deep = entry(&j["blocked"], "1-1-deep");
    let rescue = deep["rescue_ref"].as_str().unwrap();
    assert_eq!(
        r.git(&["show", &format!("{rescue}:new/deeper/still/left.txt")]),
        "deep"
    );
    // The next story's commit and the landed branch hold its own work, not the leftover.
    let landed = r.git(&["ls-tree", "-r", "--name-only", "main"]);
    assert!(landed.contains("out/1-2-after.txt"), "{landed}");
    assert!(!landed.contains("new/deeper"), "{landed}");
    assert!(!r.root.join("new").exists());
}

#[test]
fn a_tracked_file_edited_or_deleted_without_a_commit_is_rescued_and_never_reaches_the_next_story() {
    tracked_leftovers(true);
}

#[test]
fn without_the_watch_a_tracked_file_edited_or_deleted_is_rescued_too() {
    tracked_leftovers(false);
}

fn tracked_leftovers(watch: bool) {
    // One slot: each story runs in the worktree the one before left its change in.
    let r = repo_with(&[
        ("1-1-edit", &story("Edit", 9, 1)),
        ("1-2-gone", &story("Gone", 9, 1)),
        ("1-3-after", &story("After", 9, 1)),
    ]);
    r.git(&["config", "teleos.watchWorktrees", &watch.to_string()]);
    install_agent(&r, "0");
    let out = r.teleos(["close", "--parallel", "1", "--all", "--yes", "--json"]);
    let j = out.json();
    let edit = entry(&j["blocked"], "1-1-edit");
    let rescue = edit["rescue_ref"].as_str().unwrap();
    assert_eq!(
        r.git(&["show", &format!("{rescue}:tracked.txt")]),
        "ORIGINAL"
    );
    let gone = entry(&j["blocked"], "1-2-gone");
    let rescue = gone["rescue_ref"].as_str().unwrap();
    let listed = r.git(&["ls-tree", "-r", "--name-only", rescue]);
    assert!(!listed.contains("tracked.txt"), "{listed}");
    assert!(listed.contains("out/1-2-gone.txt"), "{listed}");
    for story in [&edit, &gone] {
        assert!(
            story["discrepancies"].to_string().contains("uncommitted"),
            "{story}"
        );
    }
    // The committed work merged; the leftovers did not, and the next story started clean.
    let landed = r.git(&["ls-tree", "-r", "--name-only", "main"]);
    assert!(landed.contains("out/1-3-after.txt"), "{landed}");
    assert_eq!(r.git(&["show", "main:tracked.txt"]), "original");
    assert_eq!(r.read("tracked.txt"), "original\n");
    out.code(1);
}

#[test]
fn ctrl_c_keeps_the_session_and_resume_finishes_it() {
    let r = repo_with(&[
        ("1-1-a", &story("A", 9, 1)),
        ("1-2-b", &story("B", 9, 1)),
        ("1-3-c", &story("C", 9, 1)),
        ("1-4-d", &story("D", 9, 1)),
    ]);
    install_agent(&r, "30");
    let child = r
        .teleos_cmd(&r.root)
        .args(["close", "--parallel", "2", "--all", "--yes", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until two agents run, then press Ctrl-C.
    let running = r.home.join("agents/running");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&running).map(|d| d.count()).unwrap_or(0) < 2 {
        assert!(std::time::Instant::now() < deadline, "agents never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sid = j["session_id"].as_str().unwrap().to_string();
    let m: serde_json::Value =
        serde_json::from_str(&r.read(".claude/worktrees/manifest.json")).unwrap();
    assert_eq!(m["sessions"][&sid]["status"], "interrupted", "{m}");
    assert!(r
        .git(&["worktree", "list"])
        .contains(&format!("teleos-{sid}-1")));
    assert!(r
        .git(&["branch", "--list", &format!("integration-{sid}")])
        .contains(&sid));
    assert!(
        j["notes"].to_string().contains(&format!("--resume {sid}")),
        "{j}"
    );

    // Resume with quick agents: everything lands, nothing is left.
    install_agent(&r, "0");
    let out = r.teleos(["close", "--resume", &sid, "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["completed"].as_array().unwrap().len(), 4, "{j}");
    for k in ["1-1-a", "1-2-b", "1-3-c", "1-4-d"] {
        assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
    }
    assert_eq!(r.worktree_count(), 1);
    assert_eq!(r.git(&["branch", "--format=%(refname:short)"]), "main");
}

/// `n` sessions started at once in one repository, two stories each; they all finish, the
/// manifest is valid at every read, and (when landing) every story ends up on main.
fn sessions_at_once(n: usize, land: bool) {
    let keys: Vec<(String, String)> = (1..=n)
        .flat_map(|s| (1..=2).map(move |k| (format!("{s}-{k}-x"), story("S", 9, 1))))
        .collect();
    let refs: Vec<(&str, &str)> = keys.iter().map(|(k, t)| (k.as_str(), t.as_str())).collect();
    let r = repo_with(&refs);
    install_agent(&r, "1");
    let mut children: Vec<_> = (1..=n)
        .map(|s| {
            let mut c = r.teleos_cmd(&r.root);
            c.args(["close", "--parallel", "2", "--yes", "--json"])
                .args([format!("{s}-1"), format!("{s}-2")]);
            if !land {
                c.arg("--no-land");
            }
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let manifest = r.path(".claude/worktrees/manifest.json");
    let mut reads = 0;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("manifest invalid mid-run ({e}):\n{text}"));
            reads += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(reads > 0);
    for c in children {
        let out = c.wait_with_output().unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{j}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(j["completed"].as_array().unwrap().len(), 2, "{j}");
        let sid = j["session_id"].as_str().unwrap();
        let kept = r.git(&["branch", "--list", &format!("integration-{sid}")]);
        assert_eq!(kept.contains(sid), !land, "integration-{sid}: {kept}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["sessions"], serde_json::json!({}));
    if land {
        for (k, _) in &keys {
            assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
        }
        assert_eq!(r.git(&["status", "--porcelain"]), "");
    }
}

#[test]
fn two_sessions_at_once_both_finish_and_the_manifest_stays_valid() {
    sessions_at_once(2, false);
}

#[test]
fn four_sessions_at_once_all_land() {
    sessions_at_once(4, true);
}

#[test]
fn agents_that_switch_branches_or_move_integration_are_caught() {
    let r = repo_with(&[
        ("7-1-switcher", &story("Switcher", 9, 1)),
        ("6-1-rogue", &story("Rogue", 9, 1)),
    ]);
    install_agent(&r, "0");
    let out = r.teleos(["close", "--parallel", "2", "--all", "--yes", "--json"]);
    let j = out.json();
    let all = j.to_string();
    // The switcher's commit went to another branch: reported, kept on a ref, not merged.
    assert!(all.contains("the agent left its branch"), "{j}");
    let head_ref = r.git(&["for-each-ref", "--format=%(refname)", "refs/teleos/"]);
    assert!(head_ref.contains("7-1-switcher-head"), "{head_ref}");
    // The rogue commit on integration was undone before landing and kept on a ref.
    assert!(all.contains("was moved outside git-teleos"), "{j}");
    assert!(!r.path("rogue.txt").exists(), "the rogue commit landed");
    let moved = head_ref
        .lines()
        .find(|l| l.contains("integration-moved"))
        .unwrap_or_else(|| panic!("{head_ref}"));
    assert_eq!(r.git(&["log", "-1", "--format=%s", moved]), "rogue commit");
    // The rogue agent's real work did land; the user's HEAD never moved.
    assert!(r.path("out/6-1-rogue.txt").exists());
    assert_eq!(r.git(&["symbolic-ref", "HEAD"]), "refs/heads/main");
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress"]);
    assert_eq!(fsck.code, 0, "{}", fsck.stderr);
    out.code(1);
}

#[test]
fn resolve_lets_the_agent_merge_a_conflict() {
    let r = repo_with(&[
        ("9-1-left", &story("Left", 9, 1)),
        ("9-2-right", &story("Right", 9, 1)),
    ]);
    install_agent(&r, "1");
    let out = r.close_all(&["--parallel", "2", "--resolve"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["completed"].as_array().unwrap().len(), 2, "{j}");
    assert!(j.to_string().contains("resolved by the agent"), "{j}");
    let shared = r.read("shared.txt");
    assert!(
        shared.contains("9-1-left wins") && shared.contains("9-2-right wins"),
        "{shared}"
    );
    assert!(!shared.contains("<<<<<<<"));
    assert_eq!(r.worktree_count(), 1);
}

#[test]
fn an_agent_that_floods_output_or_deletes_the_users_files_is_reported() {
    let r = repo_with(&[
        ("4-1-flood", &story("Flood", 9, 1)),
        ("5-1-vandal", &story("Vandal", 9, 1)),
    ]);
    install_agent(&r, "0");
    r.write("notes.txt", "the user's own notes\n");
    let out = r.teleos(["close", "--parallel", "2", "--all", "--yes", "--json"]);
    out.ok();
    let j = out.json();
    // 1 GB of output: the story still completes and its log stays capped.
    let flood = entry(&j["completed"], "4-1-flood");
    let log = std::fs::metadata(flood["log_path"].as_str().unwrap())
        .unwrap()
        .len();
    assert!(log < 80 * 1024 * 1024, "log is {log} bytes");
    // The deleted user file is reported, not silently ignored.
    let notes = j["notes"].to_string();
    assert!(
        notes.contains("your checkout changed") && notes.contains("notes.txt"),
        "{notes}"
    );
}

#[test]
fn kept_worktrees_are_reused_by_the_next_batch_with_their_dependencies() {
    let r = repo_with(&[("1-1-a", &story("A", 9, 1)), ("1-2-b", &story("B", 9, 1))]);
    r.write(".gitignore", "node_modules/\n");
    r.commit_all("ignore dependencies");
    install_agent(&r, "0");
    // The "install" leaves a marker that only a fresh install would rewrite.
    r.git(&[
        "config",
        "teleos.installCommand",
        "sh -c 'mkdir -p node_modules && echo $$ > node_modules/installed'",
    ]);
    let out = r.close_all(&["--parallel", "2", "--keep-worktrees"]);
    out.ok();
    let listed = r.git(&["worktree", "list", "--porcelain"]);
    let parked = listed
        .lines()
        .filter(|l| l.starts_with("worktree ") && l.contains("teleos-pool-"))
        .count();
    assert_eq!(parked, 2, "{listed}");
    let status = r.teleos(["status"]);
    status.stdout_has("Kept for reuse");
    // clean-orphans leaves idle worktrees alone unless asked.
    r.teleos(["clean-orphans"]).ok();
    assert!(r.git(&["worktree", "list"]).contains("teleos-pool-1"));
    // What each parked worktree's install wrote (read there: under load one slot may run both
    // stories while the other is still being set up, so the agents need not have seen both).
    let installs: Vec<String> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .filter(|p| p.contains("teleos-pool-"))
        .map(|p| {
            std::fs::read_to_string(Path::new(p).join("node_modules/installed"))
                .unwrap_or_else(|e| panic!("{p} keeps its install: {e}"))
        })
        .collect();
    assert_eq!(installs.len(), 2, "{listed}");

    // Next batch: new stories, the parked worktrees are taken, their installs kept.
    r.write(&format!("{DIR}/2-1-c.md"), &story("C", 9, 1));
    r.write(&format!("{DIR}/2-2-d.md"), &story("D", 9, 1));
    r.commit_all("more stories");
    let out = r.teleos(["close", "--parallel", "2", "2-1", "2-2", "--yes", "--json"]);
    out.ok();
    for k in ["2-1-c", "2-2-d"] {
        let seen = std::fs::read_to_string(r.home.join(format!("agents/deps-{k}"))).unwrap();
        assert!(
            installs.contains(&seen),
            "{k} saw a fresh install: {seen} not in {installs:?}"
        );
        assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
    }
    // Without --keep-worktrees this batch removed them: nothing left.
    assert_eq!(r.worktree_count(), 1);
    assert_eq!(r.git(&["branch", "--format=%(refname:short)"]), "main");
    let m: serde_json::Value =
        serde_json::from_str(&r.read(".claude/worktrees/manifest.json")).unwrap();
    assert!(m.get("teleos_pool").is_none(), "{m}");
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress"]);
    assert_eq!(fsck.code, 0, "{}", fsck.stderr);
}

#[test]
fn idle_worktrees_can_be_dropped() {
    let r = repo_with(&[("1-1-a", &story("A", 9, 1))]);
    install_agent(&r, "0");
    r.teleos([
        "close",
        "--parallel",
        "1",
        "--keep-worktrees",
        "--all",
        "--yes",
    ])
    .ok();
    assert!(r.git(&["worktree", "list"]).contains("teleos-pool-1"));
    let out = r.teleos(["clean-orphans", "--drop-idle"]);
    out.ok();
    out.stderr_has("removed idle worktree");
    assert_eq!(r.worktree_count(), 1);
    assert_eq!(r.git(&["branch", "--format=%(refname:short)"]), "main");
}
