//! Story discovery on the layouts of six real public BMAD projects, with the real binary and no
//! flags. Each layout is a small copy of the project's own (folder and file names, a trimmed
//! `sprint-status.yaml`, stories with task lists, the non-story documents beside them):
//! jschulte/usmax-nda 90aa98bc, Fledgely/fledgely 9d1e6133, LucaDeLeo/realitycam ab9da35a,
//! Alberto-Codes/docvet 68271272, delphijc/net-pack-parser bcd26559,
//! Brownbull/gmni_boletapp 4ef094e2. `benches/real_bmad_check.sh` runs the same check on the
//! whole repositories.

use std::collections::BTreeSet;

use crate::common::{story, TestRepo};

/// A project layout: where its tracker is, what it says, and its files.
struct Layout {
    /// Path of `sprint-status.yaml`, and the header before `development_status:` (with its
    /// `story_location`, stale in several real projects).
    tracker: (&'static str, &'static str),
    /// Story files (`<key>.md` or `story-<key>.md`), each a tracker key.
    stories: &'static [&'static str],
    /// Keys in the tracker with no file (backlog) and epic/retrospective keys.
    other_keys: &'static [&'static str],
    /// Documents beside the stories that must not be listed.
    docs: &'static [&'static str],
    /// Other files (BMAD config, archived copies, …): (path, content).
    extra: &'static [(&'static str, &'static str)],
}

fn key_of(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.trim_end_matches(".md").to_string()
}

fn tracker_key(path: &str) -> String {
    let k = key_of(path);
    k.strip_prefix("story-").map(str::to_string).unwrap_or(k)
}

/// Build the layout in a fresh repository, scan it with no flags, and check that every story
/// is listed (≥ 90 % is the acceptance bar; these small copies must be complete), that no
/// document is, and that the JSON says where and why.
fn check(layout: &Layout, expect_dirs: &[&str], expect_by: &str) -> serde_json::Value {
    let r = TestRepo::new();
    let mut yaml = String::from(layout.tracker.1);
    yaml.push_str("\ndevelopment_status:\n  # Epic 1\n");
    for key in layout.other_keys {
        yaml.push_str(&format!("  {key}: backlog\n"));
    }
    for (i, path) in layout.stories.iter().enumerate() {
        let status = if i % 2 == 0 { "done" } else { "review" };
        yaml.push_str(&format!(
            "  {}: {status}   # {} pts\n",
            tracker_key(path),
            i + 1
        ));
    }
    r.write(layout.tracker.0, &yaml);
    for (i, path) in layout.stories.iter().enumerate() {
        r.write(path, &story(&key_of(path), 6, i % 3));
    }
    for path in layout.docs {
        // Real reports and specs have checklists too: only their names tell them apart.
        r.write(path, &story("Validation report", 3, 2));
    }
    for (path, text) in layout.extra {
        r.write(path, text);
    }
    r.commit_all("project");

    let out = r.teleos(["scan", "--json"]);
    out.ok();
    let j = out.json();
    let listed: BTreeSet<String> = ["clean", "closeable", "needs_pipeline"]
        .iter()
        .flat_map(|c| j[c].as_array().cloned().unwrap_or_default())
        .map(|s| s["path"].as_str().unwrap_or_default().to_string())
        .collect();
    let wanted: BTreeSet<String> = layout.stories.iter().map(|s| s.to_string()).collect();
    let found = wanted.intersection(&listed).count();
    assert!(
        found * 10 >= wanted.len() * 9,
        "only {found} of {} stories listed: {listed:?}\n{j}",
        wanted.len()
    );
    assert_eq!(
        listed, wanted,
        "listed exactly the stories\n{}",
        j["discovery"]
    );
    for doc in layout.docs {
        assert!(!listed.contains(*doc), "{doc} listed as a story");
    }
    let dirs: Vec<&str> = j["artifacts_dirs"]
        .as_array()
        .unwrap_or_else(|| panic!("no artifacts_dirs: {j}"))
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert_eq!(dirs, expect_dirs);
    assert_eq!(j["artifacts_dir"], expect_dirs[0]);
    assert_eq!(j["discovered_by"], expect_by);
    assert_eq!(j["sprint_status_files"][0], layout.tracker.0);
    // Statuses come from the tracker wherever it is.
    let first = &j["clean"][0];
    assert!(
        first["sprint_status"].is_string(),
        "no sprint status: {first}"
    );
    // The human report says where it looked and why.
    let human = r.teleos(["scan"]);
    human.ok();
    assert!(
        human
            .stdout
            .contains("found by the story keys of sprint-status.yaml")
            || expect_by != "sprint-status",
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains(expect_dirs[0]), "{}", human.stdout);
    j
}

const BMAD6_CONFIG: &str = "\
project_name: demo
planning_artifacts: \"{project-root}/_bmad-output/planning-artifacts\"
implementation_artifacts: \"{project-root}/_bmad-output/implementation-artifacts\"
output_folder: \"{project-root}/_bmad-output\"
";

/// usmax-nda: stories in `sprint-artifacts/` under `implementation-artifacts/`, a stale
/// `story_location`, a second (broken-symlink in the real repo) tracker one level up, archived
/// copies of stories in a subfolder, and many reports and code reviews beside the stories.
#[test]
fn usmax_nda_nested_sprint_artifacts() {
    let d = "_bmad-output/implementation-artifacts/sprint-artifacts";
    let j = check(
        &Layout {
            tracker: (
                "_bmad-output/implementation-artifacts/sprint-artifacts/sprint-status.yaml",
                "# story_location: docs/sprint-artifacts\nproject: usmax-nda\nstory_location: docs/sprint-artifacts\n",
            ),
            stories: &[
                "_bmad-output/implementation-artifacts/sprint-artifacts/1-1-aws-cognito-mfa-integration.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/1-2-jwt-middleware-and-user-context.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/1-3-rbac-permission-system.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/3-10-email-composition-and-sending.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/9-18-rtf-template-rich-text-editor.md",
            ],
            other_keys: &["epic-1", "1-6-session-timeout", "epic-1-retrospective"],
            docs: &[
                "_bmad-output/implementation-artifacts/EPIC-2-COMPLETION-SUMMARY.md",
                "_bmad-output/implementation-artifacts/SESSION-COMPLETION-REPORT.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/EPIC-7-REGENERATION-STATUS.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/atdd-checklist-9-18-rtf-template-rich-text-editor.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/code-review-9-18-rtf-template-rich-text-editor.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/review-1-3-rbac-permission-system.md",
                "_bmad-output/implementation-artifacts/sprint-artifacts/.comprehensive-validation-report-2026-01-03.md",
            ],
            extra: &[
                ("_bmad/bmm/config.yaml", BMAD6_CONFIG),
                (
                    "_bmad-output/implementation-artifacts/sprint-artifacts/original-anchored-stories/1-1-aws-cognito-mfa-integration.md",
                    "# Story 1.1 (original)\n\n- [ ] old task\n",
                ),
            ],
        },
        &[d],
        "sprint-status",
    );
    assert!(
        j["discovery"].to_string().contains("sprint-status.yaml"),
        "{j}"
    );
}

/// fledgely: tracker in `docs/sprint-artifacts/`, stories in its `stories/` subfolder, epic
/// retrospectives beside the tracker, BMAD 4 config under `.bmad/`.
#[test]
fn fledgely_stories_subfolder() {
    check(
        &Layout {
            tracker: (
                "docs/sprint-artifacts/sprint-status.yaml",
                "# story_location: docs/sprint-artifacts/stories\nstory_location: docs/sprint-artifacts/stories\n",
            ),
            stories: &[
                "docs/sprint-artifacts/stories/0-5-1-secure-safety-contact-channel.md",
                "docs/sprint-artifacts/stories/0-5-2-safety-request-documentation-upload.md",
                "docs/sprint-artifacts/stories/0-5-3-support-agent-escape-dashboard.md",
                "docs/sprint-artifacts/stories/34-5-1-rejection-pattern-tracking.md",
            ],
            other_keys: &["epic-0-5", "epic-0-5-retrospective"],
            docs: &[
                "docs/sprint-artifacts/epic-0-5-retro-2025-12-30.md",
                "docs/sprint-artifacts/epic-46-retrospective.md",
                "docs/sprint-artifacts/retrospectives/epic-18-retro-2025-12-29.md",
            ],
            extra: &[(
                ".bmad/bmm/config.yaml",
                "sprint_artifacts: '{project-root}/docs/sprint-artifacts'\noutput_folder: '{project-root}/docs'\n",
            )],
        },
        &["docs/sprint-artifacts/stories"],
        "sprint-status",
    );
}

/// realitycam: `story-<key>.md` files in `stories/`, tech specs in a sibling folder.
#[test]
fn realitycam_story_prefixed_files() {
    check(
        &Layout {
            tracker: (
                "docs/sprint-artifacts/sprint-status.yaml",
                "story_location: docs/sprint-artifacts\n",
            ),
            stories: &[
                "docs/sprint-artifacts/stories/story-1-1-monorepo-structure-development-environment.md",
                "docs/sprint-artifacts/stories/story-1-2-database-schema-migrations.md",
                "docs/sprint-artifacts/stories/story-4-6-metadata-validation.md",
                "docs/sprint-artifacts/stories/debug-1-backend-debug-endpoints.md",
            ],
            other_keys: &["epic-1"],
            docs: &[
                "docs/sprint-artifacts/epic-tech-specs/tech-spec-epic-1.md",
                "docs/sprint-artifacts/sprint-change-proposal-native-swift.md",
            ],
            extra: &[],
        },
        &["docs/sprint-artifacts/stories"],
        "sprint-status",
    );
}

/// docvet: flat in `_bmad-output/implementation-artifacts/` with retrospectives and tech specs
/// beside the stories.
#[test]
fn docvet_flat_implementation_artifacts() {
    check(
        &Layout {
            tracker: (
                "_bmad-output/implementation-artifacts/sprint-status.yaml",
                "story_location: _bmad-output/implementation-artifacts\n",
            ),
            stories: &[
                "_bmad-output/implementation-artifacts/1-1-add-require-attributes-config-toggle.md",
                "_bmad-output/implementation-artifacts/1-2-create-finding-dataclass.md",
                "_bmad-output/implementation-artifacts/1-3-section-header-parser-and-node-index.md",
            ],
            other_keys: &["epic-1", "epic-1-retrospective"],
            docs: &[
                "_bmad-output/implementation-artifacts/epic-1-retro-2026-02-08.md",
                "_bmad-output/implementation-artifacts/tech-spec-4-cli-scaffold.md",
                "_bmad-output/implementation-artifacts/tech-spec-ci-workflow.md",
            ],
            extra: &[("_bmad/bmm/config.yaml", BMAD6_CONFIG)],
        },
        &["_bmad-output/implementation-artifacts"],
        "sprint-status",
    );
}

/// net-pack-parser: flat in `docs/stories/` with the tracker there, context XML beside the
/// stories and planning documents one level up.
#[test]
fn net_pack_parser_docs_stories() {
    check(
        &Layout {
            tracker: (
                "docs/stories/sprint-status.yaml",
                "story_location: docs/stories\n",
            ),
            stories: &[
                "docs/stories/1-1-project-initialization-build-system.md",
                "docs/stories/1-10-smart-packet-list-views.md",
                "docs/stories/1-2-local-storage-manager.md",
            ],
            other_keys: &["epic-1"],
            docs: &[
                "docs/epics.md",
                "docs/implementation-readiness-report-2025-11-22.md",
            ],
            extra: &[(
                "docs/stories/1-1-project-initialization-build-system.context.xml",
                "<story-context/>\n",
            )],
        },
        &["docs/stories"],
        "sprint-status",
    );
}

/// gmni_boletapp: per-epic folders (`epic15b/stories/`), a stale BMAD config naming
/// `_bmad-output/implementation-artifacts`, retrospectives and context files beside them.
#[test]
fn gmni_boletapp_per_epic_folders() {
    check(
        &Layout {
            tracker: (
                "docs/sprint-artifacts/sprint-status.yaml",
                "# story_location: docs/sprint-artifacts\nstory_location: docs/sprint-artifacts\n",
            ),
            stories: &[
                "docs/sprint-artifacts/epic15b/stories/15b-0a-dead-module-audit.md",
                "docs/sprint-artifacts/epic15b/stories/15b-0b-fix-app-barrel-cycles.md",
                "docs/sprint-artifacts/epic15b/stories/15b-0c-fix-remaining-cycles.md",
                "docs/sprint-artifacts/epic18/stories/18-0-scan-cancel-phase-reset-hotfix.md",
                "docs/sprint-artifacts/epic18/stories/18-1-statement-scan-spike.md",
            ],
            other_keys: &["epic-15b", "epic-18", "epic-18-retrospective"],
            docs: &[
                "docs/sprint-artifacts/epic-14c-retro-2026-01-20.md",
                "docs/sprint-artifacts/epic15b/stories/15b-0a-dead-module-audit-context.md",
                "docs/sprint-artifacts/epic10/epic-10-insight-engine-brainstorm.md",
            ],
            extra: &[
                ("_bmad/bmm/config.yaml", BMAD6_CONFIG),
                ("_bmad-output/implementation-artifacts/.gitkeep", ""),
            ],
        },
        &[
            "docs/sprint-artifacts/epic15b/stories",
            "docs/sprint-artifacts/epic18/stories",
        ],
        "sprint-status",
    );
}

/// Without a tracker, BMAD's config names the folder; a hidden `.bmad-ephemeral/stories/`
/// is found by name; node_modules and ignored folders are not walked.
#[test]
fn without_tracker_config_then_folder_names() {
    let r = TestRepo::new();
    r.write(
        "_bmad/bmm/config.yaml",
        "implementation_artifacts: \"{project-root}/work/impl\"\n",
    );
    r.write("work/impl/1-1-login.md", &story("Login", 3, 1));
    r.write("docs/stories/2-1-other.md", &story("Other", 3, 1));
    r.commit_all("config");
    let j = r.teleos(["scan", "--json"]).ok().json();
    assert_eq!(j["discovered_by"], "bmad-config");
    assert_eq!(j["artifacts_dirs"][0], "work/impl");

    let r = TestRepo::new();
    r.write(
        ".bmad-ephemeral/stories/1-1-hidden.md",
        &story("Hidden", 3, 1),
    );
    r.write(".bmad-ephemeral/notes.md", "# notes\n");
    r.commit_all("hidden");
    let j = r.teleos(["scan", "--json"]).ok().json();
    assert_eq!(j["discovered_by"], "folder-name");
    assert_eq!(j["artifacts_dirs"][0], ".bmad-ephemeral/stories");
    assert_eq!(j["closeable"][0]["story_key"], "1-1-hidden");

    // A tracker whose stories sit only in node_modules or an ignored folder finds nothing there.
    let r = TestRepo::new();
    r.write(
        "sprint-status.yaml",
        "development_status:\n  1-1-vendored: done\n  1-2-ignored: done\n",
    );
    r.write("node_modules/pkg/1-1-vendored.md", &story("V", 1, 0));
    r.write(".gitignore", "/scratch/\n");
    r.write("scratch/1-2-ignored.md", &story("I", 1, 0));
    r.write("docs/stories/3-1-real.md", &story("Real", 1, 0));
    r.commit_all("ignored");
    let j = r.teleos(["scan", "--json"]).ok().json();
    assert_eq!(j["artifacts_dirs"][0], "docs/stories", "{j}");
    assert_eq!(j["clean"][0]["story_key"], "3-1-real");
}

/// Split layout: most stories in one folder, a few in another, tracker at the repository root.
/// `--artifacts` still overrides discovery.
#[test]
fn split_layout_and_override() {
    let r = TestRepo::new();
    r.write(
        "sprint-status.yaml",
        "development_status:\n  epic-1: done\n  1-1-a: done\n  1-2-b: review\n  1-3-c: done\n  2-1-d: in-progress\n",
    );
    for k in ["1-1-a", "1-2-b", "1-3-c"] {
        r.write(&format!("docs/sprint-artifacts/{k}.md"), &story(k, 4, 0));
    }
    r.write(".bmad-ephemeral/stories/2-1-d.md", &story("d", 4, 1));
    r.commit_all("split");
    let j = r.teleos(["scan", "--json"]).ok().json();
    assert_eq!(j["discovered_by"], "sprint-status");
    assert_eq!(
        j["artifacts_dirs"],
        serde_json::json!(["docs/sprint-artifacts", ".bmad-ephemeral/stories"])
    );
    assert_eq!(
        j["sprint_status_files"],
        serde_json::json!(["sprint-status.yaml"])
    );
    assert_eq!(
        j["closeable"][0]["path"],
        ".bmad-ephemeral/stories/2-1-d.md"
    );
    assert_eq!(j["closeable"][0]["sprint_status"], "in-progress");

    let j = r
        .teleos(["scan", "--json", "--artifacts", ".bmad-ephemeral/stories"])
        .ok()
        .json();
    assert_eq!(j["discovered_by"], "configured");
    assert_eq!(
        j["artifacts_dirs"],
        serde_json::json!([".bmad-ephemeral/stories"])
    );
    assert_eq!(j["clean"].as_array().map(Vec::len), Some(0));
}
