//! Stories whose tasks are `### Task N:` headings (issue 11 §1), through the real binary, on
//! trimmed copies of Fledgely's story files (`common/fixtures/heading-tasks/`, see its README):
//! `scan` lists them with their marks and lets the tracker's status decide a finished story,
//! and `close` has an agent mark a heading ✅ and verifies that mark, not the agent's word.

use std::fs;
use std::path::Path;

use crate::common;

use common::agent::Claude;
use common::entry;
use common::TestRepo;

const STORIES: &str = "docs/sprint-artifacts/stories";
const TRACKER: &str = "docs/sprint-artifacts/sprint-status.yaml";

fn copy_tree(from: &Path, to: &Path) {
    for e in fs::read_dir(from).expect("read fixture dir") {
        let e = e.expect("fixture entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            fs::create_dir_all(&dst).expect("mkdir");
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy fixture file");
        }
    }
}

/// A repository holding the fixture, committed.
fn fledgely() -> TestRepo {
    let r = TestRepo::new();
    r.agent_identity();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/common/fixtures/heading-tasks");
    copy_tree(&fixture, &r.root);
    r.commit_all("stories");
    r
}

#[test]
fn scan_lists_heading_task_stories_and_the_tracker_decides_finished_ones() {
    let r = fledgely();
    let run = r.teleos(["scan", "--json"]);
    run.ok();
    let j = run.json();
    assert_eq!(j["discovered_by"], "sprint-status", "{j}");
    let counts = |list: &str, key: &str| {
        let s = entry(&j[list], key);
        (
            s["total"].clone(),
            s["checked"].clone(),
            s["task_headings"].clone(),
        )
    };
    let marks = |done: usize, open: usize, unmarked: usize, by_status: usize| serde_json::json!({"marked_done": done, "marked_open": open, "unmarked": unmarked, "done_by_status": by_status});
    // Finished by the tracker although no heading is marked: done, and the JSON says why.
    assert_eq!(
        counts("clean", "19-6-device-removal-flow"),
        (6.into(), 6.into(), marks(0, 0, 6, 6))
    );
    // Marked `[x] DONE` and ✅.
    assert_eq!(
        counts("clean", "48-2-one-click-gcp-deployment"),
        (4.into(), 4.into(), marks(4, 0, 0, 0))
    );
    assert_eq!(
        counts("clean", "50-1-subscription-plan-selection"),
        (3.into(), 3.into(), marks(3, 0, 0, 0))
    );
    // Done by the tracker with one heading marked `[~]`: done, and the disagreement is noted.
    assert_eq!(
        counts("clean", "39-6-caregiver-action-logging"),
        (8.into(), 8.into(), marks(7, 1, 0, 1))
    );
    let warnings = j["warnings"].to_string();
    assert!(
        warnings.contains("story 39-6-caregiver-action-logging: its status is 'done' but 1 task heading is marked open: Task 7: Integrate Activity Dashboard into Parent Dashboard (AC: #2, #5) [~]"),
        "{warnings}"
    );
    // Its file still says `## Status: done`; the tracker, which says in-progress, decides.
    assert!(
        warnings.contains("story 3a-6-co-parent-removal-prevention: its file says status 'done' but sprint-status.yaml says 'in-progress'"),
        "{warnings}"
    );
    // In progress: the marks alone count. One `[~]` of six is closeable.
    assert_eq!(
        counts("closeable", "3a-6-co-parent-removal-prevention"),
        (6.into(), 5.into(), marks(5, 1, 0, 0))
    );
    // Not started, unmarked (`## Technical Tasks`, and `## Tasks / Subtasks`): all open.
    assert_eq!(
        counts("needs_pipeline", "7-5-6-signal-encryption-isolation"),
        (6.into(), 0.into(), marks(0, 0, 6, 0))
    );
    assert_eq!(
        counts("needs_pipeline", "52-6-trusted-adult-removal"),
        (6.into(), 0.into(), marks(0, 0, 6, 0))
    );
    // A checkbox story beside them is read as always, without the heading fields.
    let boxes = entry(&j["closeable"], "1-0-2-deployable-web-shell");
    assert_eq!((&boxes["total"], &boxes["checked"]), (&5.into(), &4.into()));
    assert!(boxes.get("task_headings").is_none(), "{boxes}");
    // A story with no tasks of either kind stays out.
    assert_eq!(
        j["skipped"],
        serde_json::json!([{"filename": "49-3-manual-backup-trigger.md", "reason": "no tasks (not a story)"}])
    );

    let human = r.teleos(["scan"]);
    human.ok();
    human.stdout_has(
        "7 stories write their tasks as `### Task N` headings (done when marked ✅, [x] or DONE); \
         2 of them count as done by their status although some of their headings carry no done mark",
    );
}

/// A stand-in claude that does what the prompt says for a heading task: it ends the open
/// heading with ✅ in place of its `[~]`, does the work, commits, and reports the counts.
fn agent_marking_headings(r: &TestRepo) {
    Claude::new()
        .record_calls()
        .sh(r#"sed -i 's/^\(### Task [0-9].*\) \[~\]$/\1 ✅/' "$file"
mkdir -p apps/web/src/app/family/settings && echo "// $key" > apps/web/src/app/family/settings/page.tsx"#)
        .commit("-A")
        .sh(r#"answer 6 1 5"#)
        .install(r);
}

#[test]
fn an_agent_closes_a_heading_task_story_by_marking_the_heading() {
    let r = fledgely();
    agent_marking_headings(&r);
    let out = r.teleos([
        "close",
        "--parallel",
        "1",
        "3a-6-co-parent-removal-prevention",
        "--yes",
        "--json",
    ]);
    out.code(0);
    let j = out.json();
    let c = entry(&j["completed"], "3a-6-co-parent-removal-prevention");
    assert_eq!(
        (&c["tasks_completed"], &c["tasks_total"]),
        (&6.into(), &6.into()),
        "{c}"
    );
    // git-teleos set the tracker from the verified count of marked headings.
    assert_eq!(c["tracker_status"], "done", "{c}");
    let tracker = r.read(TRACKER);
    assert!(
        tracker.contains(
            "  3a-6-co-parent-removal-prevention: done # Guardian removal prevention with modal"
        ),
        "{tracker}"
    );
    let story = r.read(&format!("{STORIES}/3a-6-co-parent-removal-prevention.md"));
    assert!(
        story.contains("### Task 3: Update Family Settings UI (AC: #1, #4, #5) ✅\n"),
        "{story}"
    );
    // The agent was told how heading tasks are marked.
    let prompt = fs::read_to_string(r.home.join("calls/0.prompt")).expect("recorded prompt");
    assert!(
        prompt.contains("For a heading task, end its heading with ` ✅`"),
        "{prompt}"
    );
}

#[test]
fn a_changed_status_line_does_not_pass_for_marked_headings() {
    let r = fledgely();
    // Claims every task done, but only rewrites the story's status: the heading stays `[~]`.
    Claude::new()
        .sh(r#"sed -i 's/^## Status: .*/## Status: done/' "$file""#)
        .commit("-A")
        .sh(r#"answer 6 1 5"#)
        .install(&r);
    let out = r.teleos([
        "close",
        "--sequential",
        "3a-6-co-parent-removal-prevention",
        "--yes",
        "--json",
    ]);
    out.code(1);
    let j = out.json();
    assert_eq!(j["completed"], serde_json::json!([]), "{j}");
    let b = entry(&j["blocked"], "3a-6-co-parent-removal-prevention");
    assert_eq!(
        (&b["tasks_completed"], &b["tasks_total"]),
        (&5.into(), &6.into()),
        "{b}"
    );
}
