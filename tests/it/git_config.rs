//! Settings given the way git users give them (`git -c …`, `GIT_CONFIG_COUNT`), a grace period
//! of 0 hours, and the manifest shared by every worktree of a repository. Real binary, run
//! through real `git` where the user would.

use crate::common;

use std::path::Path;

use common::agent::Claude;
use common::{story, TestRepo};
use serde_json::{json, Value};

const DIR: &str = "docs/sprint-artifacts";
const WT: &str = ".claude/worktrees";

/// `git` can find `git teleos`: the built binary's folder first on PATH.
fn put_binary_on_path(r: &TestRepo) {
    let link = r.bin_dir.join("git-teleos");
    if !link.exists() {
        std::os::unix::fs::symlink(common::BIN, link).unwrap();
    }
}

/// `git <git_args> teleos <args>` in `dir`, with `env` added.
fn git_teleos(
    r: &TestRepo,
    dir: &Path,
    git_args: &[&str],
    args: &[&str],
    env: &[(&str, &str)],
) -> common::Run {
    let mut cmd = std::process::Command::new("git");
    cmd.current_dir(dir);
    common::hermetic(&mut cmd, &r.home, &r.bin_dir);
    cmd.args(git_args).arg("teleos").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// 4 of 10 tasks left: closeable from a threshold of 0.40, needs-pipeline below.
fn repo() -> TestRepo {
    let r = TestRepo::new();
    r.write(&format!("{DIR}/1-1-forty.md"), &story("Forty", 6, 4));
    r.commit_all("story");
    put_binary_on_path(&r);
    r
}

fn threshold(run: &common::Run) -> (f64, usize) {
    let j = run.ok().json();
    (
        j["threshold"].as_f64().unwrap(),
        j["closeable"].as_array().map_or(0, Vec::len),
    )
}

#[test]
fn git_dash_c_is_above_config_files_and_below_flags() {
    let r = repo();
    let root = r.root.clone();
    let scan = ["scan", "--json"];
    assert_eq!(
        threshold(&git_teleos(&r, &root, &[], &scan, &[])),
        (0.30, 0)
    );
    let c = ["-c", "teleos.closeableThreshold=0.5"];
    assert_eq!(threshold(&git_teleos(&r, &root, &c, &scan, &[])), (0.5, 1));

    // Above the repository's config.
    r.git(&["config", "teleos.closeableThreshold", "0.2"]);
    assert_eq!(threshold(&git_teleos(&r, &root, &[], &scan, &[])), (0.2, 0));
    assert_eq!(threshold(&git_teleos(&r, &root, &c, &scan, &[])), (0.5, 1));
    // Below the flag.
    let flagged = ["scan", "--json", "--threshold", "0.1"];
    assert_eq!(
        threshold(&git_teleos(&r, &root, &c, &flagged, &[])),
        (0.1, 0)
    );

    // GIT_CONFIG_COUNT too, and -c above it (git reads -c last).
    let count = [
        ("GIT_CONFIG_COUNT", "1"),
        ("GIT_CONFIG_KEY_0", "teleos.closeableThreshold"),
        ("GIT_CONFIG_VALUE_0", "0.45"),
    ];
    assert_eq!(
        threshold(&git_teleos(&r, &root, &[], &scan, &count)),
        (0.45, 1)
    );
    assert_eq!(
        threshold(&git_teleos(&r, &root, &c, &scan, &count)),
        (0.5, 1)
    );

    // A bad value given with -c is reported like any other, naming the key.
    let bad = git_teleos(&r, &root, &["-c", "teleos.agent=clippy"], &scan, &[]);
    bad.code(2);
    assert!(
        bad.stderr.contains("teleos.agent") && bad.stderr.contains("clippy"),
        "{}",
        bad.stderr
    );
    // Quoting survives: a value with a quote, a space and a '!' reaches the setting intact.
    let odd = git_teleos(&r, &root, &["-c", "teleos.agent=it's odd!"], &scan, &[]);
    odd.code(2);
    odd.stderr_has("it's odd!");
    // Case of section and key does not matter, as in git.
    let upper = ["-c", "TELEOS.CloseableThreshold=0.5"];
    assert_eq!(
        threshold(&git_teleos(&r, &root, &upper, &scan, &[])),
        (0.5, 1)
    );
}

#[test]
fn git_dash_c_chooses_the_agent_of_close() {
    let r = repo();
    let root = r.root.clone();
    let args = [
        "close",
        "1-1-forty",
        "--threshold",
        "0.5",
        "--dry-run",
        "--yes",
    ];
    let plan = git_teleos(&r, &root, &["-c", "teleos.agent=codex"], &args, &[]);
    plan.ok();
    plan.stderr_has("via codex");
    let plain = git_teleos(&r, &root, &[], &args, &[]);
    assert!(plain.ok().stderr.contains("via claude"), "{}", plain.stderr);
    // A key without a value is true, as git reads it.
    let flagless = git_teleos(
        &r,
        &root,
        &["-c", "teleos.taskSections"],
        &["scan", "--json"],
        &[],
    );
    flagless.ok();
    // git refuses a malformed value before running us; set by hand, it is an error here too.
    let broken = r
        .teleos_cmd(&root)
        .arg("scan")
        .env("GIT_CONFIG_PARAMETERS", "'teleos.agent'=codex")
        .output()
        .unwrap();
    let broken = common::Run {
        code: broken.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&broken.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&broken.stderr).into_owned(),
    };
    broken.code(2);
    broken.stderr_has("GIT_CONFIG_PARAMETERS");
    broken.stderr_has("hint:");
}

/// A session of another tool: no lock, no pid, started just now.
fn fresh_foreign_session() -> Value {
    json!({
        "started_at": chrono_now(),
        "workflow": "story-closer",
        "integration_branch": "integration-abc123",
        "worktrees": [],
        "status": "active",
    })
}

/// Now, as the manifest's ISO-8601 UTC time.
fn chrono_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn stale_hours_zero_means_no_grace_period() {
    let r = repo();
    r.write(
        &format!("{WT}/manifest.json"),
        &json!({"sessions": {"abc123": fresh_foreign_session()}}).to_string(),
    );
    // With the default grace period the fresh session is too recent to judge.
    let kept = r.teleos(["clean-orphans", "--json"]);
    kept.ok();
    assert!(r.read(&format!("{WT}/manifest.json")).contains("abc123"));
    let out = r.teleos(["clean-orphans", "--stale-hours", "0", "--json"]);
    out.ok();
    let m: Value = serde_json::from_str(&r.read(&format!("{WT}/manifest.json"))).unwrap();
    assert_eq!(m["sessions"], json!({}), "{}", out.stdout);
    let neg = r.teleos(["clean-orphans", "--stale-hours=-1"]);
    neg.code(2);
    neg.stderr_has("--stale-hours");
}

#[test]
fn linked_worktrees_share_the_main_worktrees_manifest() {
    let r = repo();
    let linked = r.add_linked_worktree();
    // A session recorded at the main worktree (by the seed's tools or git-teleos there)...
    r.write(
        &format!("{WT}/manifest.json"),
        &json!({"sessions": {"fedcba": fresh_foreign_session()}}).to_string(),
    );
    // ...is seen from the linked worktree, and the manifest named is the main one.
    let st = git_teleos(&r, &linked, &[], &["status", "--json"], &[]);
    let j = st.ok().json();
    assert_eq!(j["sessions"][0]["session_id"], "fedcba", "{j}");
    assert_eq!(
        Path::new(j["manifest"].as_str().unwrap()),
        r.path(&format!("{WT}/manifest.json"))
    );
    assert!(!linked.join(WT).exists());

    // A batch started from the linked worktree registers there too: its agent, running in
    // the batch's worktree, asks `git teleos status` at the main worktree and finds it.
    let state = r.home.join("seen-from-main.json");
    Claude::new()
        .sh(&format!(
            r#"(cd "{main}" && git teleos status --json > "{state}")
pwd > "{state}.cwd""#,
            main = r.root.display(),
            state = state.display(),
        ))
        .tick()
        .commit("-A")
        .sh("answer 10 4 6")
        .install(&r);
    let run = git_teleos(
        &r,
        &linked,
        &[],
        &[
            "close",
            "1-1-forty",
            "--parallel",
            "1",
            "--threshold",
            "0.5",
            "--yes",
            "--json",
        ],
        &[],
    );
    run.ok();
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let ids: Vec<&str> = seen["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "the other session and this one: {seen}");
    assert!(ids.contains(&"fedcba"), "{seen}");
    let cwd = std::fs::read_to_string(format!("{}.cwd", state.display())).unwrap();
    assert!(
        Path::new(cwd.trim()).starts_with(r.path(WT)),
        "the batch's worktree is under the main worktree: {cwd}"
    );
    // The work landed on the linked worktree's branch.
    assert!(
        !std::fs::read_to_string(linked.join(format!("{DIR}/1-1-forty.md")))
            .unwrap()
            .contains("- [ ]")
    );
}
