//! Story discovery on layouts of real BMAD projects beyond the six of `discovery.rs`, each a
//! small copy of a layout that went wrong when `benches/real_bmad_check.sh` was run over a
//! wider set of public repositories.

use std::collections::BTreeSet;

use crate::common::{story, TestRepo};

/// The paths the scan lists as stories (every category).
fn listed(j: &serde_json::Value) -> BTreeSet<String> {
    ["clean", "closeable", "needs_pipeline"]
        .iter()
        .flat_map(|c| j[c].as_array().cloned().unwrap_or_default())
        .map(|s| s["path"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A story as BMAD's template writes it: `# Story 1.1: …`, optionally after front matter.
fn bmad_story(front: &str, title: &str, done: usize, left: usize) -> String {
    let body = story(title, done, left);
    format!("{front}{}", body.replacen("# ", "# Story ", 1))
}

/// ryanflash66/bearing-app 3ec9bb87: the tracker and its stories live in the project's general
/// `docs/` folder (story_location `docs/`), beside the PRD, the architecture, QA checklists and
/// action items, many of them with checklists. Only three keys have a `<key>.md`; the other
/// stories are `story1.1.md` / `story-5.6.1-….md`, titled `# Story 1.1: …`. The folder is
/// listed as a story folder, but its documents are not stories.
#[test]
fn bearing_app_general_docs_folder() {
    let r = TestRepo::new();
    r.write(
        "docs/sprint-status.yaml",
        "generated: 2026-01-16\nproject: bearing-app\ntracking_system: file-system\n\
         story_location: docs/\n\ndevelopment_status:\n  # Epic 1\n  epic-1: done\n\
         \x20 1-1-email-mfa-authentication: done\n  1-2-author-profiles: done\n\
         \x20 5-6-1-vertex-ai-context-caching: in-progress\n  epic-8: done\n\
         \x20 8-4-admin-login-maintenance-gating: done\n  8-6-publishing-service-request-popup: review\n\
         \x20 8-20-sync-manuscript-service: done\n",
    );
    let keyed = [
        "docs/8-4-admin-login-maintenance-gating.md",
        "docs/8-6-publishing-service-request-popup.md",
        "docs/8-20-sync-manuscript-service.md",
    ];
    for (i, path) in keyed.iter().enumerate() {
        r.write(path, &bmad_story("", &format!("8.{i}: Keyed"), 5, i));
    }
    let titled = [
        ("docs/story1.1.md", ""),
        ("docs/story1.2.md", ""),
        ("docs/story-5.6.1-vertex-ai-context-caching.md", ""),
        ("docs/story-h.1.md", "---\nepic: hardening\n---\n\n"),
    ];
    for (i, (path, front)) in titled.iter().enumerate() {
        r.write(path, &bmad_story(front, &format!("1.{i}: Titled"), 4, 1));
    }
    // Front matter naming the story, and no `# ` title at all.
    r.write(
        "docs/story-h.2.md",
        &format!(
            "---\nstory_id: H.2\nstory_name: 'RLS Hardening'\n---\n\n{}",
            story("x", 3, 0).replacen("# x", "## Story", 1)
        ),
    );
    // Documents with checklists whose names do not mark them: only their titles do.
    let docs = [
        ("docs/architecture-ai.md", "# Architecture: AI Integration"),
        (
            "docs/architecture-auth.md",
            "# Architecture: Authentication",
        ),
        (
            "docs/pending-actions.md",
            "# Pending Actions & Deferred Tasks",
        ),
        (
            "docs/qa-action-items-8.11-8.12.md",
            "# QA Action Items: Stories 8.11 & 8.12",
        ),
        (
            "docs/story-1.1-qa-feedback.md",
            "# QA Review Report – Story 1.1: Email + MFA",
        ),
        (
            "docs/manual-qa-guide-8.7-8.19.md",
            "# Manual QA Guide: Story 8.7 & 8.19",
        ),
        ("docs/tech-stack.md", "# Tech Stack"),
    ];
    for (path, title) in docs {
        r.write(
            path,
            &format!("{title}\n\n- [x] checked\n- [ ] open item\n"),
        );
    }
    r.write(
        "docs/prd.md",
        "# PRD\n\n## Acceptance Criteria\n\n- [ ] a\n",
    );
    r.commit_all("bearing-app layout");

    let j = r.teleos(["scan", "--json"]).ok().json();
    let mut wanted: BTreeSet<String> = keyed.iter().map(|s| s.to_string()).collect();
    wanted.extend(titled.iter().map(|(p, _)| p.to_string()));
    wanted.insert("docs/story-h.2.md".into());
    assert_eq!(listed(&j), wanted, "{}", j["discovery"]);
    assert_eq!(j["discovered_by"], "sprint-status");
    assert_eq!(j["artifacts_dirs"], serde_json::json!(["docs"]));
    assert_eq!(
        j["clean"][0]["sprint_status"], "done",
        "statuses still come from the tracker: {j}"
    );
    let why = j["discovery"].to_string();
    assert!(why.contains("titled as stories"), "{why}");

    // `--artifacts docs` lists the folder whole, as it says.
    let j = r
        .teleos(["scan", "--json", "--artifacts", "docs"])
        .ok()
        .json();
    assert!(listed(&j).contains("docs/architecture-ai.md"), "{j}");
}

/// A story folder where the keys name most files stays listed whole: its unkeyed stories
/// (renamed, not yet in the tracker) are listed whatever their titles, as before.
#[test]
fn story_folder_with_unkeyed_stories_is_listed_whole() {
    let r = TestRepo::new();
    r.write(
        "_bmad-output/implementation-artifacts/sprint-status.yaml",
        "development_status:\n  1-1-a: done\n  1-2-b: done\n  1-3-c: review\n",
    );
    let d = "_bmad-output/implementation-artifacts";
    for k in ["1-1-a", "1-2-b", "1-3-c"] {
        r.write(&format!("{d}/{k}.md"), &story(k, 4, 0));
    }
    // Named differently from its key, and titled without the word "Story" (LucaDeLeo/realitycam).
    r.write(&format!("{d}/debug-1-backend.md"), &story("Backend", 4, 1));
    r.commit_all("story folder");
    let j = r.teleos(["scan", "--json"]).ok().json();
    assert!(
        listed(&j).contains(&format!("{d}/debug-1-backend.md")),
        "{j}"
    );
    assert_eq!(listed(&j).len(), 4, "{j}");
}

/// hammaadworks/whatcha-doin bda45f70 writes its task lists as Prettier formats them,
/// `-   [x] Subtask 1.1`, three spaces after the marker (CommonMark allows one to four). With no
/// tracker key naming them, the folder-name signal must still see those task lists, and not
/// pass over the folder for a later one whose files write `- [ ]`.
#[test]
fn prettier_indented_task_lists_mark_a_story_folder() {
    let r = TestRepo::new();
    let prettier = "# Story 1.1: Project setup\n\nStatus: done\n\n## Tasks / Subtasks\n\n\
                    -   [x] **Task 1: Initialize** (AC: #1)\n    -   [x] Subtask 1.1: create app\n\
                    -   [ ] **Task 2: Install**\n";
    r.write(
        "docs/sprint-artifacts/stories/1-1-project-setup.md",
        prettier,
    );
    r.write(
        "docs/sprint-artifacts/stories/1-2-login.md",
        &prettier.replace("1.1: Project setup", "1.2: Login"),
    );
    r.write(".bmad-ephemeral/stories/0-1-old.md", &story("Old", 2, 1));
    r.commit_all("prettier lists");
    let j = r.teleos(["scan", "--json"]).ok().json();
    assert_eq!(j["discovered_by"], "folder-name", "{j}");
    assert_eq!(
        j["artifacts_dirs"],
        serde_json::json!(["docs/sprint-artifacts/stories"]),
        "{}",
        j["discovery"]
    );
    assert!(
        listed(&j).contains("docs/sprint-artifacts/stories/1-1-project-setup.md"),
        "{j}"
    );
}

/// CoderMariusz/MonoPilot 29261a9c: no tracker, no BMAD config, no usual folder; the stories
/// live in `new-doc/<area>/stories/`, one folder per area. Every such folder with task lists
/// is listed; BMAD's own templates (a `stories` folder under `.bmad/`) are not.
#[test]
fn stories_folders_anywhere_when_nothing_else_is_found() {
    let r = TestRepo::new();
    r.write(
        "new-doc/01-settings/stories/01.1.org-context-base-rls.md",
        &bmad_story("", "01.1: Org context", 3, 2),
    );
    r.write(
        "new-doc/01-settings/stories/01.10.machines-crud.md",
        &bmad_story("", "01.10: Machines", 0, 4),
    );
    r.write(
        "new-doc/08-quality/stories/08.1.quality-settings.md",
        &bmad_story("", "08.1: Quality settings", 1, 1),
    );
    r.write(
        "new-doc/08-quality/qa/08.1-qa-checklist.md",
        "# QA\n\n- [ ] check one\n",
    );
    r.write(
        ".bmad/bmm/workflows/stories/template.md",
        &bmad_story("", "{{n}}: {{title}}", 0, 3),
    );
    r.commit_all("docs");
    let j = r.teleos(["scan", "--json"]).ok().json();
    let wanted: BTreeSet<String> = [
        "new-doc/01-settings/stories/01.1.org-context-base-rls.md",
        "new-doc/01-settings/stories/01.10.machines-crud.md",
        "new-doc/08-quality/stories/08.1.quality-settings.md",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(listed(&j), wanted, "{}", j["discovery"]);
    assert_eq!(
        j["artifacts_dirs"],
        serde_json::json!(["new-doc/01-settings/stories", "new-doc/08-quality/stories"])
    );
}
