//! End-to-end: a parallel batch with a dependency, a conflict, a failure and a retry, then its
//! HTML report (`debrief --html`, `report SID --html`), the terminal timeline, and `history`.
//! A stand-in `claude` on PATH speaks Claude Code's stream (see /work/shared/agent-cli-outputs).

use crate::common;

use std::collections::BTreeMap;

use common::agent::{self, Claude};
use common::{story, TestRepo};
use serde_json::Value;

const DIR: &str = "docs/sprint-artifacts";

/// The stand-in agent. Every story ticks its boxes, writes `out/<key>.txt` and commits, except:
/// the two `1-*` stories both rewrite `routes.txt` (the second to merge conflicts);
/// `2-2-login-session` (which depends on 2-1) stops partial with a blocker question full of
/// markup (HTML injection);
/// `3-1-password-reset` fails its first run and succeeds on the retry;
/// `3-2-email-verification` fails every run. Failures print Claude's `is_error` result.
fn install_agent(r: &TestRepo) {
    let partial = common::claude_envelope(
        r#"{"story_key":"2-2-login-session","status":"partial","tasks_total":10,"tasks_completed_by_closer":0,"tasks_already_done":9,"tasks_blocked":1,"blocker_questions":[{"task":"Task left 0","question":"Which <script>alert(1)</script> token & </svg> store?"}]}"#,
        0.1,
    );
    Claude::new()
        .cost(0.1)
        .record("runs-$key")
        .sh(&format!(
            r#"runs=$(wc -l < "$state/runs-$key")
# 2-2 depends on 2-1: its work must already be merged here.
if [ "$key" = "2-2-login-session" ] && [ ! -f out/2-1-user-registration.txt ]; then
  echo missing > "$state/dep-missing"
fi
# The two conflicting stories run longer, so they overlap even when one worktree is slow to set up.
case "$key" in 1-*) sleep 2;; *) sleep 1;; esac
fail() {{
{failed}  exit 1
}}
case "$key" in
  3-2-*) fail;;
  3-1-*) [ "$runs" -eq 1 ] && fail;;
esac"#,
            failed = agent::error_envelope_sh(
                "error_during_execution",
                "API Error: 500 Internal server error",
                0.02
            ),
        ))
        .on(
            "2-2-*",
            &format!(
                r#"mkdir -p out && echo "$key" > "out/$key.txt"
    git add out && git commit -qm "teleos: partial $key"
{}    exit 0"#,
                common::heredoc(&partial, false)
            ),
        )
        .tick()
        .write_out()
        .on(
            "1-*",
            r#"echo "$key owns the routes" > routes.txt; git add routes.txt"#,
        )
        .commit(r#"out "$file""#)
        .answer_counts()
        .install(r);
}

const KEYS: [&str; 6] = [
    "1-1-profile-page",
    "1-2-avatar-upload",
    "2-1-user-registration",
    "2-2-login-session",
    "3-1-password-reset",
    "3-2-email-verification",
];

fn batch_repo() -> TestRepo {
    let r = TestRepo::new();
    r.agent_identity();
    r.write("routes.txt", "original\n");
    for key in KEYS {
        let mut text = story(key, 9, 1);
        if key == "2-2-login-session" {
            text.push_str("\n## Dependencies\n\n- Story 2.1 (user registration)\n");
        }
        r.write(&format!("{DIR}/{key}.md"), &text);
    }
    r.commit_all("stories");
    install_agent(&r);
    r
}

/// A small well-formedness check: tags nest and close (void elements aside), attribute values
/// are quoted, every `&` starts an entity, and `<` never appears outside a tag. Enough to catch
/// broken markup or an unescaped value, without an HTML5 parser as a dev-dependency.
fn check_well_formed(html: &str) {
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(['<', '&']) {
        let text = &rest[..i];
        assert!(!text.contains('>'), "stray '>' in text: {text:?}");
        rest = &rest[i..];
        if rest.starts_with('&') {
            let end = rest
                .find(';')
                .unwrap_or_else(|| panic!("bare & at {rest:.40}"));
            let name = &rest[1..end];
            let ok = (name.starts_with('#') && name[1..].chars().all(|c| c.is_ascii_digit()))
                || (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphabetic()));
            assert!(ok, "bad entity &{name};");
            rest = &rest[end + 1..];
            continue;
        }
        let end = rest
            .find('>')
            .unwrap_or_else(|| panic!("unclosed tag at {rest:.60}"));
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name, "</{name}> closes <{open}>");
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(!name.is_empty(), "empty tag name: <{tag}>");
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        if name == "style" {
            // Raw text up to </style>: CSS may hold '>' (child selectors).
            let close = rest.find("</style>").expect("unclosed <style>");
            rest = &rest[close + "</style>".len()..];
            continue;
        }
        stack.push(name);
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_string())
}

/// (lane, story, attempt, outcome, start, end) of a bar or a recorded attempt.
type BarInfo = (String, String, u32, String, i64, i64);

/// Each bar, in document order.
fn bars(html: &str) -> Vec<BarInfo> {
    let mut lane = String::new();
    let mut out = Vec::new();
    for piece in html.split('<').skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        if tag.starts_with("g class=\"lane\"") {
            lane = attr(tag, "data-lane").unwrap();
        } else if tag.starts_with("g ") && tag.contains(" class=\"bar ") {
            let a = |n: &str| attr(tag, n).unwrap_or_else(|| panic!("no {n} in {tag}"));
            out.push((
                lane.clone(),
                a("data-story"),
                a("data-attempt").parse().unwrap(),
                a("data-outcome"),
                a("data-start").parse().unwrap(),
                a("data-end").parse().unwrap(),
            ));
        }
    }
    out
}

fn no_external_references(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "http", "src=", "href=", "@import", "<script", "<link", "<iframe", "<img", "//",
    ] {
        assert!(!lower.contains(bad), "the report references {bad:?}");
    }
    for (i, _) in lower.match_indices("url(") {
        assert!(
            lower[i + 4..].starts_with('#'),
            "url() to outside: {:.40}",
            &lower[i..]
        );
    }
}

#[test]
fn a_parallel_batch_draws_one_bar_per_attempt_and_history_lists_it() {
    let r = batch_repo();
    let close = r.teleos([
        "close",
        "--parallel",
        "2",
        "--retries",
        "1",
        "--all",
        "--yes",
    ]);
    close.code(1);
    assert!(
        !r.home.join("agents/dep-missing").exists(),
        "2-2 ran before 2-1 merged"
    );
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(r.path(".git/teleos/last-batch.json")).unwrap(),
    )
    .unwrap();
    let stories = record["stories"].as_array().unwrap();
    let outcome_of = |k: &str| {
        common::entry(&record["stories"], k)["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(outcome_of("2-1-user-registration"), "completed");
    assert_eq!(outcome_of("2-2-login-session"), "partial");
    assert_eq!(outcome_of("3-1-password-reset"), "completed");
    assert_eq!(outcome_of("3-2-email-verification"), "error");
    let mut two = [
        outcome_of("1-1-profile-page"),
        outcome_of("1-2-avatar-upload"),
    ];
    two.sort();
    assert_eq!(two, ["completed", "conflict"], "{record}");

    // The record's attempts: lane, start, end, each with its phases.
    let mut expected = Vec::new();
    for s in stories {
        for a in s["timeline"].as_array().unwrap() {
            let phases = common::strings_of(&a["phases"], "phase");
            assert!(phases.contains(&"agent"), "{a}");
            expected.push((
                a["lane"].as_u64().unwrap().to_string(),
                s["story_key"].as_str().unwrap().to_string(),
                a["attempt"].as_u64().unwrap() as u32,
                a["outcome"].as_str().unwrap().to_string(),
                a["start"].as_i64().unwrap(),
                a["end"].as_i64().unwrap(),
            ));
        }
    }
    let attempts_of = |k: &str| expected.iter().filter(|e| e.1 == k).count();
    assert_eq!(attempts_of("3-1-password-reset"), 2, "{record}");
    assert_eq!(attempts_of("3-2-email-verification"), 2, "{record}");
    assert_eq!(attempts_of("2-1-user-registration"), 1);
    assert_eq!(expected.len(), 8, "{record}");
    assert_eq!(record["lanes"].as_array().unwrap().len(), 2, "{record}");

    // The HTML report.
    let html_path = r.home.join("report.html");
    r.teleos(["debrief", "--html", html_path.to_str().unwrap()])
        .code(1);
    let html = std::fs::read_to_string(&html_path).unwrap();
    if let Some(copy) = std::env::var_os("TELEOS_TEST_KEEP_REPORT") {
        // For the README screenshot (docs/report.png): keep a real report.
        std::fs::copy(&html_path, copy).unwrap();
    }
    check_well_formed(&html);
    assert!(html.contains("<svg"), "no svg");
    no_external_references(&html);
    // The agent's markup arrives as text, never as markup.
    assert!(html
        .contains("Which &lt;script&gt;alert(1)&lt;/script&gt; token &amp; &lt;/svg&gt; store?"));

    // One bar per attempt, in its lane, and each lane's bars in time order without overlap.
    let drawn = bars(&html);
    let mut a = drawn.clone();
    let mut b = expected.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "bars differ from the recorded attempts");
    let mut by_lane: BTreeMap<&str, Vec<&BarInfo>> = BTreeMap::new();
    for bar in &drawn {
        by_lane.entry(&bar.0).or_default().push(bar);
    }
    for (lane, bars) in &by_lane {
        for w in bars.windows(2) {
            assert!(
                w[0].5 <= w[1].4,
                "lane {lane}: {:?} overlaps or precedes {:?}",
                w[0],
                w[1]
            );
        }
    }
    let bar = |k: &str, n: u32| drawn.iter().find(|b| b.1 == k && b.2 == n).unwrap();
    // The retry is its own bar, after the failed attempt, on the same lane.
    let (first, retry) = (bar("3-1-password-reset", 1), bar("3-1-password-reset", 2));
    assert_eq!((first.3.as_str(), retry.3.as_str()), ("error", "completed"));
    assert_eq!(first.0, retry.0);
    assert!(first.5 <= retry.4);
    // The dependency: 2-2 starts after 2-1 merged.
    assert!(bar("2-1-user-registration", 1).5 <= bar("2-2-login-session", 1).4);
    assert!(drawn.iter().any(|b| b.3 == "conflict"));

    // Every story's key, outcome and cost.
    for s in stories {
        let key = s["story_key"].as_str().unwrap();
        let row_start = html
            .find(&format!("<tr data-story=\"{key}\">"))
            .unwrap_or_else(|| panic!("no row for {key}"));
        let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
        let outcome = s["outcome"].as_str().unwrap().replace('_', " ");
        assert!(row.contains(&format!(">{outcome}<")), "{row}");
        let cost = format!("${:.2}", s["cost_usd"].as_f64().unwrap());
        assert!(row.contains(&cost), "{cost} not in {row}");
    }

    // The terminal timeline, plain when stdout is not a terminal: one line per lane.
    let d = r.teleos(["debrief"]);
    d.code(1);
    let timeline = &d.stdout[d.stdout.find("\nTimeline\n").expect("no timeline")..];
    assert_eq!(timeline.matches("  worktree ").count(), 2, "{timeline}");
    assert!(
        !d.stdout.contains('\u{1b}'),
        "escape codes when not a terminal"
    );

    // `report SID --html` gives the same page.
    let sid = record["session_id"].as_str().unwrap();
    let again = r.home.join("again.html");
    r.teleos(["report", sid, "--html", again.to_str().unwrap()])
        .code(1);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);

    // History: this batch, an older record without timing, and a record that cannot be read.
    let batches = r.path(".git/teleos/batches");
    std::fs::write(batches.join("0ld0ld.json"), OLD_RECORD).unwrap();
    std::fs::write(batches.join("broken.json"), "{\"session_id\": ").unwrap();
    let h = r.teleos(["history"]);
    h.ok();
    let lines: Vec<&str> = h.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", h.stdout);
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {}", h.stdout))
    };
    assert!(lines[at("broken")].contains("unreadable"), "{}", h.stdout);
    // Newest first: this batch before the one of 2025.
    assert!(at(sid) < at("0ld0ld"), "{}", h.stdout);
    assert!(lines[at(sid)].contains("parallel (2 worktrees)"));
    assert!(lines[at(sid)].contains("3/1/2"), "{}", h.stdout);
    let j = r.teleos(["history", "--json"]);
    let list = j.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let this = list.iter().find(|l| l["session_id"] == sid).unwrap();
    assert_eq!(this["completed"], 3);
    assert_eq!(this["failed"], 2);
    assert_eq!(this["landed"], true);
    assert!(this["cost_usd"].as_f64().unwrap() > 0.5);
    let old = list.iter().find(|l| l["session_id"] == "0ld0ld").unwrap();
    assert_eq!(old["wall_secs"], 250.0);
    assert!(list.iter().any(|l| l["unreadable"].is_string()));

    // The old record renders too, with what it has.
    let old_html = r.home.join("old.html");
    r.teleos(["report", "0ld0ld", "--html", old_html.to_str().unwrap()])
        .ok();
    let old_html = std::fs::read_to_string(&old_html).unwrap();
    check_well_formed(&old_html);
    assert!(old_html.contains("1-2-login") && old_html.contains("No timing"));
}

/// A record as written before timing was recorded.
const OLD_RECORD: &str = r#"{
  "session_id": "0ld0ld", "mode": "sequential", "agent": "claude",
  "started_at": "2025-11-30T10:00:00Z", "finished_at": "2025-11-30T10:04:10Z",
  "branch": "refs/heads/main", "stopped": null, "notes": [], "not_landed": false,
  "stories": [{
    "story_key": "1-2-login", "path": "docs/stories/1-2-login.md", "outcome": "completed",
    "tasks_total": 5, "tasks_done": 5, "tasks_done_before": 3, "tasks_blocked": 0,
    "unchecked_before": 2, "pct_unchecked": 40.0, "commit_hash": "0123456789abcdef",
    "error_message": null, "blocker_questions": [], "human_validation_tasks": [],
    "discrepancies": [], "log_path": "/tmp/x.log", "cost_usd": 0.25,
    "duration_secs": 130.0, "attempts": 1, "rescue_ref": null
  }]
}"#;

#[test]
fn teleos_html_report_makes_close_write_the_report_and_debrief_name_it() {
    let r = batch_repo();
    r.git(&["config", "teleos.htmlReport", "true"]);
    let close = r.teleos(["close", "2-1-user-registration", "--sequential", "--yes"]);
    close.ok();
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(r.path(".git/teleos/last-batch.json")).unwrap(),
    )
    .unwrap();
    let sid = record["session_id"].as_str().unwrap();
    let path = r.path(&format!(".git/teleos/reports/{sid}.html"));
    assert!(
        close.stderr.contains(&path.display().to_string()),
        "{}",
        close.stderr
    );
    let html = std::fs::read_to_string(&path).unwrap();
    check_well_formed(&html);
    // Sequential mode: one lane, the user's checkout.
    let drawn = bars(&html);
    assert_eq!(drawn.len(), 1);
    assert_eq!(drawn[0].0, "checkout");
    let d = r.teleos(["debrief"]);
    d.ok();
    assert!(
        d.stdout
            .contains(&format!("HTML report: {}", path.display())),
        "{}",
        d.stdout
    );
}
