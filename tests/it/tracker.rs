//! End-to-end: in parallel mode git-teleos is the only writer of `sprint-status.yaml`. Stand-in
//! agents do what the old prompt told them (set their own line), on adjacent lines of the file.

use crate::common;

use common::agent::Claude;
use common::{story, TestRepo};

const DIR: &str = "docs/sprint-artifacts";
const TRACKER: &str = "docs/sprint-artifacts/sprint-status.yaml";
const KEYS: [&str; 6] = [
    "2-1-login-form",
    "2-2-password-reset",
    "2-3-session-timeout",
    "2-4-remember-me",
    "2-5-oauth-google",
    "2-6-audit-log",
];

/// The layout BMAD's sprint-planning workflow generates, CRLF line endings as a Windows
/// checkout has them, with the comments and blank lines people add.
fn tracker_text() -> String {
    let lf = "\
# generated: 2025-10-14
# project: acme-portal
# project_key: acme-portal
# tracking_system: file-system
# story_location: \"{project-root}/docs/sprint-artifacts\"

# STATUS DEFINITIONS:
# ==================
# Epic Status:
#   - backlog: Epic not yet started
#   - in-progress: Epic actively being worked on
#   - done: All stories in epic completed
#
# Story Status:
#   - backlog -> ready-for-dev -> in-progress -> review -> done

generated: 2025-10-14
project: acme-portal
project_key: acme-portal
tracking_system: file-system
story_location: \"{project-root}/docs/sprint-artifacts\"

development_status:
  # Epic 1: Foundations
  epic-1: done
  1-1-project-scaffold: done
  epic-1-retrospective: optional

  # Epic 2: Accounts
  epic-2: in-progress
  2-1-login-form: in-progress
  2-2-password-reset: review   # waiting for QA
  2-3-session-timeout: \"in-progress\"
  2-4-remember-me: 'ready-for-dev'
  2-5-oauth-google: in-progress
  2-6-audit-log: in-progress
  epic-2-retrospective: optional
";
    lf.replace('\n', "\r\n")
}

/// A stand-in `claude` that follows the old instructions: ticks every box, does its work,
/// sets its own tracker line to `done`, commits once, answers in Claude's envelope.
fn install_agent(r: &TestRepo) {
    Claude::new()
        .cost(0.1)
        .sh(
            r#"# The tracker the prompt names (whatever it says to do with it), as a real agent reads it.
tracker=$(printf '%s\n' "$prompt" | sed -n 's/^.*`\([^`]*sprint-status\.yaml\)`.*$/\1/p' | head -n 1)"#,
        )
        .sleep("1")
        .tick()
        .sh(r#"sed -i "s/^\(  $key: *\)[^ #]*/\1done/" "$tracker"
mkdir -p src && echo "$key" > "src/$key.txt""#)
        .commit("-A")
        .sh(r#"answer "$total" "$done_now" "$already" '"sprint_status":"done"'"#)
        .install(r);
}

fn repo() -> TestRepo {
    let r = TestRepo::new();
    r.agent_identity();
    r.write_bytes(TRACKER, tracker_text().as_bytes());
    for key in KEYS {
        r.write(&format!("{DIR}/{key}.md"), &story(key, 9, 1));
    }
    r.commit_all("sprint 2");
    install_agent(&r);
    r
}

fn close(r: &TestRepo, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["close", "--parallel", "3", "--all", "--yes", "--json"];
    args.extend_from_slice(extra);
    let out = r.teleos(args);
    out.code(0);
    out.json()
}

#[test]
fn six_parallel_stories_on_adjacent_tracker_lines_all_land_and_the_tracker_says_done() {
    let r = repo();
    let j = close(&r, &[]);
    let completed = j["completed"].as_array().unwrap();
    assert_eq!(completed.len(), 6, "{j}");
    assert_eq!(j["errors"], serde_json::json!([]), "{j}");
    for c in completed {
        assert_eq!(c["tracker_status"], "done", "{c}");
        let notes = c["discrepancies"].to_string();
        assert!(
            notes.contains(&format!(
                "the agent edited {TRACKER}; that change was dropped"
            )),
            "{notes}"
        );
    }

    // Every story's value is done; every other byte (comments, blank lines, quotes, the comment
    // after a value, CRLF) is as it was.
    let mut expected = tracker_text();
    for (from, to) in [
        ("2-1-login-form: in-progress", "2-1-login-form: done"),
        ("2-2-password-reset: review ", "2-2-password-reset: done "),
        (
            "2-3-session-timeout: \"in-progress\"",
            "2-3-session-timeout: \"done\"",
        ),
        (
            "2-4-remember-me: 'ready-for-dev'",
            "2-4-remember-me: 'done'",
        ),
        ("2-5-oauth-google: in-progress", "2-5-oauth-google: done"),
        ("2-6-audit-log: in-progress", "2-6-audit-log: done"),
    ] {
        assert!(expected.contains(from), "{from}");
        expected = expected.replace(from, to);
    }
    let on_main = r.git(&["show", &format!("main:{TRACKER}")]);
    assert_eq!(on_main, expected.trim_end(), "tracker on main");
    assert_eq!(
        std::fs::read(r.path(TRACKER)).unwrap(),
        expected.as_bytes(),
        "tracker in the checkout"
    );
    // All the agents' other work landed.
    for key in KEYS {
        assert_eq!(r.read(&format!("src/{key}.txt")), format!("{key}\n"));
        assert!(!r.read(&format!("{DIR}/{key}.md")).contains("- [ ]"));
    }
    assert_eq!(r.git(&["status", "--porcelain"]), "");

    // The debrief says what was set and what was dropped.
    let debrief = r.teleos(["debrief"]);
    let text = &debrief.ok().stdout;
    assert!(text.contains("Sprint tracker"), "{text}");
    for key in KEYS {
        assert!(text.contains(&format!("  {key}: done")), "{text}");
        assert!(
            text.contains(&format!(
                "  {key}: the agent edited {TRACKER}; that change was dropped"
            )),
            "{text}"
        );
    }
}

#[test]
fn no_tracker_leaves_the_file_byte_for_byte() {
    let r = repo();
    let j = close(&r, &["--no-tracker"]);
    assert_eq!(j["completed"].as_array().unwrap().len(), 6, "{j}");
    assert_eq!(
        std::fs::read(r.path(TRACKER)).unwrap(),
        tracker_text().as_bytes()
    );
    assert!(j["completed"][0]["tracker_status"].is_null(), "{j}");
    assert!(j["completed"][0]["discrepancies"]
        .to_string()
        .contains("left alone in this batch"));

    // The same through git config.
    let r = repo();
    r.git(&["config", "teleos.updateTracker", "false"]);
    let j = close(&r, &[]);
    assert_eq!(j["completed"].as_array().unwrap().len(), 6, "{j}");
    assert_eq!(
        std::fs::read(r.path(TRACKER)).unwrap(),
        tracker_text().as_bytes()
    );
}

#[test]
fn sequential_mode_keeps_the_agent_writing_its_line() {
    let r = repo();
    let out = r.teleos(["close", "2-3", "--sequential", "--yes", "--json"]);
    out.code(0);
    // What the agent wrote is what lands (this stand-in's sed drops the quotes and the CR of
    // its line: the fidelity is the agent's in this mode).
    let text = String::from_utf8(std::fs::read(r.path(TRACKER)).unwrap()).unwrap();
    assert!(text.contains("  2-3-session-timeout: done\n"), "{text}");
    assert!(text.contains("  2-1-login-form: in-progress\r\n"), "{text}");
    assert_eq!(
        out.json()["completed"][0]["discrepancies"],
        serde_json::json!([])
    );

    // Told to leave it alone, the agent's edit (kept: it is its commit on your branch) is reported.
    let out = r.teleos([
        "close",
        "2-1",
        "--sequential",
        "--no-tracker",
        "--yes",
        "--json",
    ]);
    out.code(0);
    let notes = out.json()["completed"][0]["discrepancies"].to_string();
    assert!(
        notes.contains(&format!(
            "the agent edited {TRACKER} although the tracker was to be left alone"
        )),
        "{notes}"
    );
}

#[test]
fn a_tracker_in_the_stories_parent_folder_gets_the_same_treatment() {
    // BMAD v6 layout: stories one folder below the tracker.
    let arts = "_bmad-output/implementation-artifacts";
    let tracker = format!("{arts}/sprint-status.yaml");
    let text = "development_status:\n  # Epic 3\n  3-1-search: ready-for-dev\n  3-2-filters: ready-for-dev\n";
    let r = TestRepo::new();
    r.agent_identity();
    r.git(&[
        "config",
        "teleos.sprintArtifacts",
        &format!("{arts}/stories"),
    ]);
    r.write(&tracker, text);
    for key in ["3-1-search", "3-2-filters"] {
        r.write(&format!("{arts}/stories/{key}.md"), &story(key, 9, 1));
    }
    r.commit_all("epic 3");
    install_agent(&r);
    let j = close(&r, &[]);
    assert_eq!(j["completed"].as_array().unwrap().len(), 2, "{j}");
    // The prompt named the tracker in the parent folder; the agents' edits of it were dropped
    // and git-teleos set both values.
    for c in j["completed"].as_array().unwrap() {
        assert_eq!(c["tracker_status"], "done", "{c}");
        assert!(
            c["discrepancies"].to_string().contains(&format!(
                "the agent edited {tracker}; that change was dropped"
            )),
            "{c}"
        );
    }
    assert_eq!(
        r.read(&tracker),
        text.replace("3-1-search: ready-for-dev", "3-1-search: done")
            .replace("3-2-filters: ready-for-dev", "3-2-filters: done")
    );
}
