//! End-to-end: gates. A real repository whose own check (`check.sh`, committed like any
//! project's test script) fails on a `BUG` marker and on a route registered twice; a stand-in
//! `claude` on PATH speaking Claude Code's protocol writes what each story asks for.

use crate::common;

use common::agent::Claude;
use common::{entry, story, TestRepo};

const DIR: &str = "docs/sprint-artifacts";

/// The project's check, as a repository would have it in its scripts folder.
const CHECK: &str = r#"#!/bin/sh
# Project check: no BUG markers in tracked files, no route registered twice.
if git grep -n BUG -- . ':!check.sh'; then
  echo "check failed: BUG marker found"
  exit 1
fi
dups=$(cat routes/* 2>/dev/null | sort | uniq -d)
if [ -n "$dups" ]; then
  echo "check failed: route registered twice: $dups"
  exit 1
fi
echo "check passed" | tee check-report.txt
"#;

/// A stand-in `claude`. Every story ticks its boxes, writes `out/<key>.txt` and commits; then
/// by key: `*-bug` leaves a BUG marker and "repairs" nothing; `*-fixable` leaves one and
/// removes it when the repair prompt shows the check's output; `*-alpha`/`*-beta` register the
/// same route (each fine alone).
fn install_agent(r: &TestRepo) {
    Claude::new()
        .cost(0.1)
        .sh(r#"case "$prompt" in *"the project's check is red"*)
  printf '%s\n' "$prompt" > "$state/repair-$key"
  total=$(grep -c '^- \[' "$file")
  case "$key" in *-fixable)
    # Fix what the check's output points at, as a real agent would.
    if printf '%s\n' "$prompt" | grep -q 'src/fixable.txt:1:.*BUG'; then
      echo "total = price * qty" > src/fixable.txt
      git add src/fixable.txt && git commit -qm "fix: $key"
    fi;;
  esac
  answer "$total" 0 "$total"
  exit 0;;
esac"#)
        .tick()
        .sh(r#"mkdir -p out src routes && echo "$key" > "out/$key.txt"
case "$key" in
  *-bug) echo "BUG: off by one, fix later" > src/bug.txt;;
  *-fixable) echo "total = BUG price * qty" > src/fixable.txt;;
  *-alpha|*-beta) echo "GET /api/items" > "routes/$key";;
esac"#)
        .commit(r#"-A out src routes "$file""#)
        .answer_counts()
        .install(r);
}

fn repo_with(keys: &[&str]) -> TestRepo {
    repo_with_stories(
        &keys
            .iter()
            .map(|k| (*k, story("A story", 9, 1)))
            .collect::<Vec<_>>(),
    )
}

fn repo_with_stories(stories: &[(&str, String)]) -> TestRepo {
    let r = TestRepo::new();
    r.agent_identity();
    r.write("check.sh", CHECK);
    for (key, text) in stories {
        r.write(&format!("{DIR}/{key}.md"), text);
    }
    r.commit_all("stories and the project's check");
    r.git(&["config", "teleos.gate", "sh check.sh"]);
    install_agent(&r);
    r
}

/// Of two stories that register the same route, exactly one landed (its route file is on
/// main); returns (the landed one's key, the other's key).
#[track_caller]
fn landed_and_ejected(
    r: &TestRepo,
    pair: [&'static str; 2],
    j: &serde_json::Value,
) -> (&'static str, &'static str) {
    let on_main: Vec<&str> = pair
        .into_iter()
        .filter(|k| r.path(&format!("routes/{k}")).exists())
        .collect();
    assert_eq!(on_main.len(), 1, "{on_main:?}\n{j}");
    if on_main[0] == pair[0] {
        (pair[0], pair[1])
    } else {
        (pair[1], pair[0])
    }
}

fn check_passes(r: &TestRepo, dir: &std::path::Path) -> bool {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("check.sh").current_dir(dir);
    common::hermetic(&mut cmd, &r.home, &r.bin_dir);
    cmd.output().unwrap().status.success()
}

#[test]
fn story_repair_and_integration_gates_in_one_parallel_batch() {
    let keys = ["1-1-bug", "1-2-fixable", "1-3-alpha", "1-4-beta"];
    let r = repo_with(&keys);
    // The sprint tracker, which git-teleos writes as stories merge (and as it rebuilds).
    let tracker = format!("{DIR}/sprint-status.yaml");
    r.write(
        &tracker,
        "development_status:\n  epic-1: in-progress\n  1-1-bug: in-progress\n  1-2-fixable: in-progress\n  1-3-alpha: in-progress\n  1-4-beta: in-progress\n",
    );
    r.commit_all("sprint tracker");
    let start = r.git(&["rev-parse", "HEAD"]);

    // The plan names the gate and why it runs.
    let plan = r.teleos(["close", "--parallel", "4", "--all", "--dry-run"]);
    plan.ok();
    plan.stderr_has("$ sh check.sh   (teleos.gate)");

    let out = r.teleos(["close", "--parallel", "4", "--all", "--yes", "--json"]);
    let j = out.json();
    out.code(1);

    // Story gate: the BUG story is not merged, one repair round did not help, work on a ref.
    let bug = entry(&j["errors"], "1-1-bug");
    assert_eq!(bug["outcome"], "gate_failed", "{j}");
    assert_eq!(bug["gate_repairs"], 1);
    let gates = bug["gates"].as_array().unwrap();
    assert_eq!(
        gates.len(),
        2,
        "a red round, then a red round after repair: {bug}"
    );
    assert!(gates
        .iter()
        .all(|g| g["passed"] == false && g["exit_code"] == 1));
    assert!(gates[0]["output_tail"]
        .as_str()
        .unwrap()
        .contains("check failed: BUG marker found"));
    assert!(std::path::Path::new(gates[0]["log_path"].as_str().unwrap()).is_file());
    let kept = bug["rescue_ref"].as_str().unwrap();
    assert_eq!(
        r.git(&["show", &format!("{kept}:src/bug.txt")]),
        "BUG: off by one, fix later"
    );
    // The repair prompt carried the failing command and its output.
    let repair = std::fs::read_to_string(r.home.join("agents/repair-1-1-bug")).unwrap();
    assert!(repair.contains("`sh check.sh`"), "{repair}");
    assert!(
        repair.contains("check failed: BUG marker found"),
        "{repair}"
    );

    // Repair: red, then green after one round; it lands.
    let fixed = entry(&j["completed"], "1-2-fixable");
    assert_eq!(fixed["gate_repairs"], 1, "{fixed}");
    let runs = fixed["gates"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["passed"], false);
    assert_eq!(runs[1]["passed"], true);
    assert_eq!(r.read("src/fixable.txt"), "total = price * qty\n");
    // The batch record draws the gate runs and the repair round on the story's timeline.
    let sid = j["session_id"].as_str().unwrap();
    let record: serde_json::Value = serde_json::from_str(&common::batch_record(&r, sid)).unwrap();
    let story = entry(&record["stories"], "1-2-fixable");
    let phases: Vec<&str> = story["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["phases"].as_array().unwrap())
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    let count = |name: &str| phases.iter().filter(|p| **p == name).count();
    assert_eq!((count("gate"), count("repair")), (2, 1), "{phases:?}");

    // Integration: alpha and beta are green alone, red together; exactly one is on main.
    let (landed, ejected_key) = landed_and_ejected(&r, ["1-3-alpha", "1-4-beta"], &j);
    entry(&j["completed"], landed);
    let ejected = entry(&j["errors"], ejected_key);
    assert_eq!(ejected["outcome"], "integration_failed", "{j}");
    let msg = ejected["error_message"].as_str().unwrap();
    assert!(msg.contains("route registered twice"), "{msg}");
    let kept = ejected["rescue_ref"].as_str().unwrap();
    assert_eq!(
        r.git(&["show", &format!("{kept}:routes/{ejected_key}")]),
        "GET /api/items"
    );
    let integration = j["integration_gates"].as_array().unwrap();
    assert!(integration.iter().any(|g| g["passed"] == false));
    assert_eq!(
        integration.last().unwrap()["passed"],
        true,
        "{integration:?}"
    );

    // Main holds exactly the green work and passes the project's check.
    let log = r.git(&["log", "--format=%s", &format!("{start}..main")]);
    assert!(!log.contains("1-1-bug"), "{log}");
    assert!(!log.contains(&format!("close {ejected_key}")), "{log}");
    assert!(log.contains("teleos: close 1-2-fixable"), "{log}");
    // The tracker on main says done for exactly the stories that landed; the rebuild kept the
    // status its replayed merge had written.
    let statuses = r.read(&tracker);
    for (key, status) in [
        ("1-1-bug", "in-progress"),
        ("1-2-fixable", "done"),
        (landed, "done"),
        (ejected_key, "in-progress"),
    ] {
        assert!(
            statuses.contains(&format!("  {key}: {status}\n")),
            "{key}: {status}\n{statuses}"
        );
    }
    // The check's report file (not ignored here) was tidied from the worktrees, never committed.
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    assert_eq!(r.git(&["ls-files", "check-report.txt"]), "");
    assert!(check_passes(&r, &r.root), "main is red after the batch");

    // The debrief shows the gates, and the failing output of both failures.
    let debrief = r.teleos(["debrief"]);
    for text in [
        "Gates",
        "gate failed",
        "integration failed",
        "red: exit code 1",
        "| check failed: BUG marker found",
        "| check failed: route registered twice",
        "(integration)",
    ] {
        assert!(debrief.stdout.contains(text), "{text}:\n{}", debrief.stdout);
    }
}

#[test]
fn sequential_red_story_stops_the_batch_and_leaves_the_branch_green() {
    let r = repo_with(&["1-1-bug", "1-2-fine"]);
    // A well-kept project ignores its check's output (in the user's checkout nothing is tidied).
    r.write(".gitignore", "check-report.txt\n");
    r.commit_all("ignore the check's report");
    let start = r.git(&["rev-parse", "HEAD"]);
    let out = r.teleos(["close", "--sequential", "--all", "--yes", "--json"]);
    let j = out.json();
    out.code(1);
    let bug = entry(&j["errors"], "1-1-bug");
    assert_eq!(bug["outcome"], "gate_failed", "{j}");
    let fine = entry(&j["errors"], "1-2-fine");
    assert_eq!(fine["outcome"], "not_started", "{j}");
    assert!(j["stopped"].as_str().unwrap().contains("gate"), "{j}");
    // Its commits were taken off the branch and kept on a ref; the checkout is green.
    assert_eq!(r.git(&["rev-parse", "main"]), start);
    let kept = bug["rescue_ref"].as_str().unwrap();
    assert_eq!(
        r.git(&["log", "-1", "--format=%s", kept]),
        "teleos: close 1-1-bug"
    );
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    assert!(check_passes(&r, &r.root));
}

#[test]
fn gates_off_or_absent_are_said_in_the_plan_and_the_debrief() {
    let r = repo_with(&["1-1-fine"]);
    let out = r.teleos(["close", "--sequential", "--all", "--yes", "--no-gate"]);
    out.ok();
    out.stderr_has("Gates: off (--no-gate)");
    out.stdout_has("gates were off (--no-gate)");

    // No configuration and nothing to detect: the plan and debrief say no check ran.
    let r = repo_with(&["1-1-fine"]);
    r.git(&["config", "--unset", "teleos.gate"]);
    let out = r.teleos(["close", "--sequential", "--all", "--yes"]);
    out.ok();
    out.stderr_has("Gates: none detected");
    out.stdout_has("no gate was detected");

    // Detected from the project: a Makefile test target.
    r.write("Makefile", "test:\n\tsh check.sh\n");
    r.write(&format!("{DIR}/1-2-more.md"), &story("Another", 9, 1));
    r.commit_all("a Makefile and a story");
    let plan = r.teleos(["close", "--sequential", "--all", "--dry-run"]);
    plan.stderr_has("$ make test   (Makefile test target)");
}

#[test]
fn a_story_started_on_a_red_integration_is_not_blamed_for_it() {
    // 2-3-after waits for alpha and beta, so it starts where both are merged: red, by no fault
    // of its own.
    let after =
        story("After", 9, 1) + "\n## Dependencies\n\n- Story 2.1 (alpha)\n- Story 2.2 (beta)\n";
    let r = repo_with_stories(&[
        ("2-1-alpha", story("Alpha", 9, 1)),
        ("2-2-beta", story("Beta", 9, 1)),
        ("2-3-after", after),
    ]);
    let out = r.teleos(["close", "--parallel", "2", "--all", "--yes", "--json"]);
    let j = out.json();
    out.code(1);
    let after = entry(&j["completed"], "2-3-after");
    assert_eq!(
        after["gate_repairs"], 0,
        "no repair for a red it did not cause: {after}"
    );
    assert!(
        after["discrepancies"]
            .to_string()
            .contains("already red where the story started"),
        "{after}"
    );
    // No repair prompt was sent to its agent.
    assert!(!r.home.join("agents/repair-2-3-after").exists());
    // Its work was put back after the base was checked; the temporary ref is gone.
    let refs = r.git(&["for-each-ref", "--format=%(refname)", "refs/teleos/"]);
    assert!(!refs.contains("gate-check"), "{refs}");
    let (_, ejected) = landed_and_ejected(&r, ["2-1-alpha", "2-2-beta"], &j);
    assert_eq!(
        entry(&j["errors"], ejected)["outcome"],
        "integration_failed"
    );
    assert_eq!(r.read("out/2-3-after.txt"), "2-3-after\n");
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    assert!(check_passes(&r, &r.root), "main is red after the batch");
}

#[test]
fn with_one_worktree_the_last_story_gate_is_the_integration_gate() {
    let r = repo_with(&["3-1-fine", "3-2-fine"]);
    let out = r.teleos(["close", "--parallel", "1", "--all", "--yes", "--json"]);
    out.ok();
    let j = out.json();
    // Each story started where the other had merged: the integration is the last story's
    // gated commit, so its gates are not run a second time.
    assert_eq!(j["integration_gates"], serde_json::json!([]), "{j}");
    for key in ["3-1-fine", "3-2-fine"] {
        let s = entry(&j["completed"], key);
        assert_eq!(s["gates"][0]["passed"], true, "{s}");
        assert_eq!(r.read(&format!("out/{key}.txt")), format!("{key}\n"));
    }
    assert!(check_passes(&r, &r.root));
}
