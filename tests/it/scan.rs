//! End-to-end: `git teleos scan` on real repositories with the real binary.

use crate::common;

use common::{story, TestRepo};

fn repo_with_stories() -> TestRepo {
    let r = TestRepo::new();
    let dir = "docs/sprint-artifacts";
    r.write(&format!("{dir}/1-1-clean.md"), &story("Clean", 4, 0));
    // exactly 30 % unchecked: closeable
    r.write(&format!("{dir}/1-2-boundary.md"), &story("Boundary", 7, 3));
    // 4/13 = 30.8 %: needs pipeline
    r.write(&format!("{dir}/1-10-over.md"), &story("Over", 9, 4));
    r.write(&format!("{dir}/2-1-far.md"), &story("Far", 1, 5));
    r.write(&format!("{dir}/README.md"), &story("Readme", 1, 1));
    r.write(&format!("{dir}/notes.md"), "# Notes\n\nno tasks here\n");
    r.write(
        &format!("{dir}/completions/1-1-summary.md"),
        &story("Nested", 0, 3),
    );
    r.commit_all("stories");
    r
}

#[test]
fn json_has_the_scan_results_shape_and_categories() {
    let r = repo_with_stories();
    let out = r.teleos(["scan", "--json"]);
    out.ok();
    let j = out.json();
    let keys = |field: &str| -> Vec<String> {
        j[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} missing: {j}"))
            .iter()
            .map(|s| s["story_key"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(keys("clean"), vec!["1-1-clean"]);
    assert_eq!(keys("closeable"), vec!["1-2-boundary"]);
    assert_eq!(keys("needs_pipeline"), vec!["1-10-over", "2-1-far"]);
    let skipped = common::strings_of(&j["skipped"], "filename");
    assert!(
        skipped.iter().any(|f| f.contains("README.md")),
        "{skipped:?}"
    );
    assert!(
        skipped.iter().any(|f| f.contains("notes.md")),
        "{skipped:?}"
    );
    assert!(
        !skipped.iter().any(|f| f.contains("summary")),
        "subfolders are not scanned: {skipped:?}"
    );
    assert_eq!(j["total_stories_scanned"], 6);
    let b = &j["closeable"][0];
    for field in [
        "story_key",
        "path",
        "total",
        "checked",
        "unchecked",
        "pct_unchecked",
        "subtasks_total",
        "subtasks_unchecked",
        "human_validation_tasks",
        "depends_on",
        "status",
    ] {
        assert!(b.get(field).is_some(), "field {field} missing in {b}");
    }
    assert_eq!(b["total"], 10);
    assert_eq!(b["unchecked"], 3);
    assert_eq!(b["pct_unchecked"], 30.0);
    assert_eq!(b["path"], "docs/sprint-artifacts/1-2-boundary.md");
    assert_eq!(b["status"], "in-progress");
}

#[test]
fn human_output_has_summary_and_tables_on_stdout() {
    let r = repo_with_stories();
    let out = r.teleos(["scan"]);
    out.ok();
    out.stdout_has("Closeable");
    assert!(out.stdout.contains("1-2-boundary"));
    assert!(out.stdout.contains("Needs pipeline"));
    assert!(out.stdout.contains("2-1-far"));
    assert!(out.stdout.contains("README.md"));
    assert!(
        !out.stdout.contains('\u{1b}'),
        "no colour when not a terminal"
    );
    let forced = r.teleos(["--color", "always", "scan"]);
    assert!(forced.stdout.contains('\u{1b}'), "--color always colours");
}

#[test]
fn threshold_flag_and_config_change_categories() {
    let r = repo_with_stories();
    let j = r.teleos(["scan", "--json", "--threshold", "0.5"]).json();
    assert_eq!(j["closeable"].as_array().unwrap().len(), 2);
    r.git(&["config", "teleos.closeableThreshold", "0.9"]);
    let j = r.teleos(["scan", "--json"]).json();
    assert_eq!(j["closeable"].as_array().unwrap().len(), 3);
    // flag beats config
    let j = r.teleos(["scan", "--json", "--threshold", "0.3"]).json();
    assert_eq!(j["closeable"].as_array().unwrap().len(), 1);
}

#[test]
fn malformed_config_is_an_error_naming_the_key() {
    let r = repo_with_stories();
    r.git(&["config", "teleos.closeableThreshold", "1.7"]);
    let out = r.teleos(["scan"]);
    out.code(2);
    out.stderr_has("error:");
    out.stderr_has("teleos.closeableThreshold");
    out.stderr_has("hint:");
    assert!(out.stdout.is_empty());
}

#[test]
fn global_config_is_read_too() {
    let r = repo_with_stories();
    let global = r.home.join("global.gitconfig");
    std::fs::write(&global, "[teleos]\n\tcloseableThreshold = 0.5\n").unwrap();
    let mut cmd = r.teleos_cmd(&r.root);
    cmd.env("GIT_CONFIG_GLOBAL", &global)
        .args(["scan", "--json"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["closeable"].as_array().unwrap().len(), 2);
}

#[test]
fn works_from_a_subfolder_and_a_linked_worktree() {
    let r = repo_with_stories();
    let sub = r.path("docs");
    let out = r.teleos_in(&sub, ["scan", "--json"]);
    out.ok();
    assert_eq!(out.json()["closeable"][0]["story_key"], "1-2-boundary");

    let wt = r.home.join("linked");
    r.git(&["worktree", "add", "-q", wt.to_str().unwrap(), "-b", "side"]);
    let out = r.teleos_in(&wt.join("docs/sprint-artifacts"), ["scan", "--json"]);
    out.ok();
    assert_eq!(out.json()["closeable"][0]["story_key"], "1-2-boundary");
}

#[test]
fn missing_artifacts_folder_names_the_paths_tried() {
    let r = TestRepo::new();
    let out = r.teleos(["scan"]);
    out.code(2);
    for p in [
        "docs/sprint-artifacts",
        "_bmad-output/sprint-artifacts",
        "_bmad-output/implementation-artifacts",
        "docs/stories",
    ] {
        assert!(out.stderr.contains(p), "{p} not named: {}", out.stderr);
    }
    let out = r.teleos(["scan", "--artifacts", "nowhere"]);
    out.code(2);
    out.stderr_has("nowhere");
}

#[test]
fn artifacts_folder_from_config_and_auto_detected_alternatives() {
    let r = TestRepo::new();
    r.write(
        "_bmad-output/implementation-artifacts/3-1-x.md",
        &story("X", 9, 1),
    );
    let out = r.teleos(["scan", "--json"]);
    out.ok();
    assert_eq!(out.json()["closeable"][0]["story_key"], "3-1-x");
    r.write("plans/4-1-y.md", &story("Y", 9, 1));
    r.git(&["config", "teleos.sprintArtifacts", "plans"]);
    let out = r.teleos(["scan", "--json"]);
    assert_eq!(out.json()["closeable"][0]["story_key"], "4-1-y");
}

#[test]
fn not_a_repository_is_exit_2() {
    let r = TestRepo::not_a_repo();
    let mut cmd = r.teleos_cmd(&r.root);
    // Stop discovery at the temp folder so an enclosing repository is not found.
    cmd.env("GIT_CEILING_DIRECTORIES", r.root.parent().unwrap())
        .arg("scan");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a git repository"), "{err}");
}

#[test]
fn bad_files_are_skipped_with_a_reason_not_a_crash() {
    let r = repo_with_stories();
    r.write_bytes(
        "docs/sprint-artifacts/5-1-latin1.md",
        b"# Caf\xe9\n\n- [ ] task\n",
    );
    let out = r.teleos(["scan", "--json"]);
    out.ok();
    let j = out.json();
    let reason = j["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["filename"].as_str().unwrap().contains("5-1-latin1"))
        .map(|s| s["reason"].as_str().unwrap().to_string())
        .expect("non-UTF-8 file listed under skipped");
    assert!(reason.to_lowercase().contains("utf-8"), "{reason}");
}

#[test]
fn dependency_cycles_are_reported_and_broken() {
    let r = TestRepo::new();
    let dir = "docs/sprint-artifacts";
    r.write(
        &format!("{dir}/7-1-a.md"),
        &(story("A", 9, 1) + "\n## Dependencies\n\n- Story 7.2 (the b story)\n"),
    );
    r.write(
        &format!("{dir}/7-2-b.md"),
        &(story("B", 9, 1) + "\n## Dependencies\n\n- Story 7.1\n"),
    );
    r.write(
        &format!("{dir}/7-3-c.md"),
        &("---\ndepends_on: [7-1]\n---\n".to_string() + &story("C", 9, 1)),
    );
    let out = r.teleos(["scan", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["cycles"].as_array().unwrap().len(), 1, "{j}");
    let c = common::entry(&j["closeable"], "7-3-c");
    assert_eq!(c["depends_on"], serde_json::json!(["7-1-a"]));
    let human = r.teleos(["scan"]);
    human.stdout_has("cycle");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let r = TestRepo::new();
    r.teleos(["scan", "--bogus"]).code(2);
    r.teleos(["frobnicate"]).code(2);
    let h = r.teleos(["--help"]);
    h.ok();
    assert!(h.stdout.contains("scan"));
    r.teleos(["--version"]).ok();
    let out = r.teleos(["scan", "--threshold", "2"]);
    out.code(2);
    out.stderr_has("threshold");
}

#[test]
fn completions_are_generated() {
    let r = TestRepo::new();
    let out = r.teleos(["completions", "bash"]);
    out.ok();
    assert!(out.stdout.contains("git-teleos"));
    assert!(out.stdout.contains("scan"));
}
