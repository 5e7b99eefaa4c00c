//! Worktrees on demand (README, "Parallel mode"): a worktree is made only while a ready story
//! waits for one, and a slot with nothing left to do gives its worktree back while the other
//! agents still run. The real binary and real git; a stand-in `claude` replaying Claude Code's
//! result envelope.

use crate::common;

use common::agent::Claude;
use common::{lines, story, TestRepo};

const DIR: &str = "docs/sprint-artifacts";

fn repo_with(stories: &[(&str, String)]) -> TestRepo {
    let r = TestRepo::new();
    r.agent_identity();
    for (key, text) in stories {
        r.write(&format!("{DIR}/{key}.md"), text);
    }
    r.commit_all("stories");
    r
}

/// Closes the story, records the folder it ran in under `$state/cwd`, runs `extra` first.
fn install_agent(r: &TestRepo, extra: &str) {
    Claude::new()
        .sh(r#"echo "$key $(pwd)" >> "$state/cwd""#)
        .sh(extra)
        .tick()
        .write_out()
        .commit(r#"out "$file""#)
        .answer_counts()
        .install(r);
}

/// Nothing of the session is left: no linked worktree, no branch but `main`.
fn nothing_left(r: &TestRepo) {
    assert_eq!(r.worktree_count(), 1);
    assert_eq!(r.git(&["branch", "--format=%(refname:short)"]), "main");
}

#[test]
fn a_chain_of_dependent_stories_never_makes_a_second_worktree() {
    let dep = |on: &str| format!("\n## Dependencies\n\n- Story {on}\n");
    let r = repo_with(&[
        ("1-1-a", story("A", 9, 1)),
        ("1-2-b", story("B", 9, 1) + &dep("1.1")),
        ("1-3-c", story("C", 9, 1) + &dep("1.2")),
    ]);
    install_agent(&r, "");
    let out = r.teleos(["close", "--parallel", "3", "--all", "--yes"]);
    out.ok();
    let ran = lines(&r.home.join("agents/cwd"));
    assert_eq!(ran.len(), 3, "{ran:?}");
    // Only one story is ever ready, and the slot that ran its dependency is free for it.
    for line in &ran {
        assert!(line.ends_with("-1"), "ran outside worktree 1: {line}");
    }
    assert!(!out.stderr.contains("[wt-2] creating"), "{}", out.stderr);
    out.stderr_has("[wt-2] not needed")
        .stderr_has("[wt-3] not needed");
    for k in ["1-1-a", "1-2-b", "1-3-c"] {
        assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
    }
    nothing_left(&r);
}

#[test]
fn a_slot_with_nothing_left_removes_its_worktree_while_another_agent_runs() {
    let r = repo_with(&[
        ("1-1-long", story("Long", 9, 1)),
        ("1-2-short", story("Short", 9, 1)),
    ]);
    // 1-1 starts first, in worktree 1; 1-2 runs in worktree 2 and ends at once. 1-1's agent
    // then waits (two minutes at most) for worktree 2 to go, and says whether it went.
    install_agent(
        &r,
        r#"case "$key" in 1-1-*)
  other="${PWD%-1}-2"
  i=0
  while [ ! -f "$state/short-done" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
  while [ -e "$other" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
  if [ -e "$other" ]; then echo "still there" > "$state/seen"; else echo gone > "$state/seen"; fi
  ;;
1-2-*) touch "$state/short-done";;
esac"#,
    );
    let out = r.teleos(["close", "--parallel", "2", "--all", "--yes"]);
    out.ok();
    let ran = lines(&r.home.join("agents/cwd"));
    assert!(
        ran.iter()
            .any(|l| l.starts_with("1-2-short ") && l.ends_with("-2")),
        "1-2 did not run in worktree 2: {ran:?}\n{}",
        out.stderr
    );
    let seen = std::fs::read_to_string(r.home.join("agents/seen")).unwrap();
    assert_eq!(
        seen.trim(),
        "gone",
        "worktree 2 outlived its work\n{}",
        out.stderr
    );
    out.stderr_has("[wt-2] removing its worktree");
    for k in ["1-1-long", "1-2-short"] {
        assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
    }
    nothing_left(&r);
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress"]);
    assert_eq!(fsck.code, 0, "{}", fsck.stderr);
}

#[test]
fn a_slot_done_early_parks_its_worktree_with_keep_worktrees() {
    let r = repo_with(&[
        ("1-1-long", story("Long", 9, 1)),
        ("1-2-short", story("Short", 9, 1)),
    ]);
    r.git(&["config", "teleos.keepWorktrees", "true"]);
    // As above, but worktree 2 is parked, not removed: 1-1's agent waits for the pool's copy.
    install_agent(
        &r,
        r#"case "$key" in 1-1-*)
  pool="$(dirname "$PWD")/teleos-pool-1"
  i=0
  while [ ! -e "$pool" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
  if [ -e "$pool" ]; then echo parked > "$state/seen"; else echo "not parked" > "$state/seen"; fi
  ;;
esac"#,
    );
    let out = r.teleos(["close", "--parallel", "2", "--all", "--yes"]);
    out.ok();
    let seen = std::fs::read_to_string(r.home.join("agents/seen")).unwrap();
    assert_eq!(seen.trim(), "parked", "{}", out.stderr);
    // Both end up parked, clean, on their pool branches; nothing else is left.
    let listed = r.git(&["worktree", "list", "--porcelain"]);
    let parked = listed
        .lines()
        .filter(|l| l.starts_with("worktree ") && l.contains("teleos-pool-"))
        .count();
    assert_eq!(parked, 2, "{listed}");
    let all = listed
        .lines()
        .filter(|l| l.starts_with("worktree "))
        .count();
    assert_eq!(all, 3, "{listed}");
    for k in ["1-1-long", "1-2-short"] {
        assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
    }
}

#[test]
fn status_during_a_batch_shows_a_given_back_worktree_as_not_in_use() {
    let r = repo_with(&[
        ("1-1-long", story("Long", 9, 1)),
        ("1-2-short", story("Short", 9, 1)),
    ]);
    // 1-1 runs until the test releases it (two minutes at most), so the session is alive
    // while `status` looks at worktree 2, which 1-2 has already given back.
    install_agent(
        &r,
        r#"case "$key" in 1-1-*)
  i=0
  while [ ! -f "$state/release" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done;;
1-2-*) touch "$state/short-done";;
esac"#,
    );
    let mut batch = r.teleos_cmd(&r.root);
    batch
        .args(["close", "--parallel", "2", "--all", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = batch.spawn().unwrap();
    let wt2 = |listed: &str| {
        listed
            .lines()
            .any(|l| l.starts_with("worktree ") && l.ends_with("-2"))
    };
    let mut seen = None;
    for _ in 0..1200 {
        let listed = r.git(&["worktree", "list", "--porcelain"]);
        if r.home.join("agents/short-done").exists() && !wt2(&listed) {
            seen = Some(r.teleos(["status"]));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::write(r.home.join("agents/release"), "").unwrap();
    let code = child.wait().unwrap();
    assert!(code.success(), "{code:?}");
    let status = seen.expect("worktree 2 was never given back");
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains("worktree ") && l.contains("-2"))
        .unwrap_or_else(|| panic!("no line for worktree 2:\n{}", status.stdout));
    assert!(line.ends_with("(not in use)"), "{}", status.stdout);
    assert!(status.stdout.contains(" alive "), "{}", status.stdout);
    nothing_left(&r);
}

/// The keys in the order the agents ran them, read from `$state/cwd`.
fn run_order(r: &TestRepo) -> Vec<String> {
    lines(&r.home.join("agents/cwd"))
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn ready_stories_start_longest_first_unless_the_order_is_listed() {
    // Open tasks: a 1 (and e waits on it: a chain of 2), b 8, c 1, d 4, e 1. All closeable
    // (at most 30% open).
    let dep = |on: &str| format!("\n## Dependencies\n\n- Story {on}\n");
    let stories = [
        ("1-1-a", story("A", 9, 1)),
        ("1-2-b", story("B", 20, 8)),
        ("1-3-c", story("C", 9, 1)),
        ("1-4-d", story("D", 15, 4)),
        ("1-5-e", story("E", 9, 1) + &dep("1.1")),
    ];
    // One worktree: the queue's order is the run order.
    let r = repo_with(&stories);
    install_agent(&r, "");
    r.teleos(["close", "--parallel", "1", "--all", "--yes"])
        .ok();
    assert_eq!(
        run_order(&r),
        ["1-2-b", "1-4-d", "1-1-a", "1-3-c", "1-5-e"],
        "most open work first; a before c, since e waits on it"
    );
    nothing_left(&r);

    let r = repo_with(&stories);
    install_agent(&r, "");
    r.git(&["config", "teleos.schedule", "listed"]);
    r.teleos(["close", "--parallel", "1", "--all", "--yes"])
        .ok();
    assert_eq!(run_order(&r), ["1-1-a", "1-2-b", "1-3-c", "1-4-d", "1-5-e"]);
    nothing_left(&r);

    // A value git-teleos does not know stops the batch before anything starts.
    let r = repo_with(&stories);
    install_agent(&r, "");
    r.git(&["config", "teleos.schedule", "shortest"]);
    r.teleos(["close", "--parallel", "1", "--all", "--yes"])
        .code(2)
        .stderr_has("teleos.schedule");
    assert!(!r.home.join("agents/cwd").exists(), "an agent ran");
}
