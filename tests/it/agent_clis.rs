//! End-to-end with stand-ins that replay what the real agent CLIs print
//! (tests/it/common/fixtures/agent-cli, captured from the npm releases): codex's transient reconnects,
//! gemini's exit 41, claude's error subtypes and 429s, opencode's silence; the start governor;
//! a batch that fails before any work leaving the repository as it was.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::agent::Claude;
use common::{fixture, heredoc, lines, TestRepo, STORY_FROM_PROMPT};
use serde_json::Value;

/// Tick every unchecked task of `$file` and commit (what a good agent run leaves).
const TICK: &str = "sed -i 's/^- \\[ \\] /- [x] /' \"$file\" && git add -A && git commit -qm \"teleos: close $key\"";

/// The worker result a good run of `$key` reports (shell, inside double quotes).
const RESULT: &str = r#"{\"story_key\":\"$key\",\"status\":\"completed\",\"tasks_total\":10,\"tasks_completed_by_closer\":1,\"tasks_already_done\":9}"#;

fn repo(keys: &[&str]) -> TestRepo {
    common::repo_with_stories(keys)
}

/// Every file and folder under `dir` with its content (folders as `None`).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                todo.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[track_caller]
fn assert_same_tree(
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    after: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) {
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| k.display().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(changed.is_empty(), "the batch changed: {changed:?}");
}

/// gemini 0.61 with no account: exit 41, a plain line then indented JSON on stderr.
fn install_gemini_not_authenticated(r: &TestRepo) -> PathBuf {
    let calls = r.home.join("gemini-calls");
    r.install_script(
        "gemini",
        &format!(
            "#!/bin/sh\ncat >/dev/null\necho \"$*\" >> '{}'\n{}exit 41\n",
            calls.display(),
            heredoc(&fixture("gemini.err"), true)
        ),
    );
    calls
}

#[test]
fn gemini_not_authenticated_is_a_setup_error_that_leaves_the_repository_as_it_was() {
    for mode in [vec!["--parallel", "2"], vec!["--sequential"]] {
        let r = repo(&["1-1-a", "1-2-b", "1-3-c"]);
        let calls = install_gemini_not_authenticated(&r);
        let before = snapshot(&r.root);
        let mut args = vec!["close", "--all", "--yes", "--agent", "gemini"];
        args.extend(mode.iter().copied());
        let out = r.teleos(&args);
        out.code(2);
        out.stderr_has("error: the 'gemini' agent is not logged in: Please set an Auth method in your $HOME/.gemini/settings.json");
        out.stderr_has("hint: set GEMINI_API_KEY");
        assert!(!out.stdout.contains("landed") && !out.stderr.contains("landed"));
        // No retry: at most one call per worker that was already starting.
        let n = lines(&calls).len();
        let slots = if mode[0] == "--parallel" { 2 } else { 1 };
        assert!(n >= 1 && n <= slots, "{n} gemini calls in {mode:?}");
        assert_same_tree(&before, &snapshot(&r.root));
        assert!(!r.root.join(".claude").exists());
    }
}

/// A stand-in `claude` that answers with claude's real 429 envelope to any call made while
/// another runs or within 300 ms of another (coordinated through a file with `flock`), and
/// otherwise closes the story in 1.2 s.
fn install_rate_limited_claude(r: &TestRepo) -> PathBuf {
    let state = Claude::new()
        .cost(0.1)
        .sh(&format!(
            r#"exec 9>"$state/lock"
flock 9
now=$(date +%s%3N)
last=$(cat "$state/last" 2>/dev/null || echo 0)
running=$(cat "$state/running" 2>/dev/null || echo 0)
echo "$now" > "$state/last"
if [ "$running" -gt 0 ] || [ $((now - last)) -lt 300 ]; then
  echo "$key 429" >> "$state/calls"
  flock -u 9
  {limited}  exit 1
fi
echo $((running + 1)) > "$state/running"
echo "$key ok" >> "$state/calls"
flock -u 9
sleep 1.2
{TICK}
flock 9
echo $(( $(cat "$state/running") - 1 )) > "$state/running"
flock -u 9
answer 10 1 9"#,
            limited = heredoc(&fixture("claude-429.out"), false),
        ))
        .install(r);
    state.join("calls")
}

#[test]
fn the_governor_backs_off_on_429_and_climbs_back() {
    let keys = ["2-1-a", "2-2-b", "2-3-c", "2-4-d"];
    let r = repo(&keys);
    r.git(&["config", "teleos.rateLimitBackoff", "0.3"]);
    let calls = install_rate_limited_claude(&r);
    let out = r.teleos(["close", "--parallel", "3", "--all", "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["completed"].as_array().unwrap().len(), 4, "{j}");
    assert_eq!(j["errors"], Value::Array(vec![]), "{j}");
    let calls = lines(&calls);
    assert!(calls.iter().any(|c| c.ends_with(" 429")), "{calls:?}");
    for k in keys {
        assert_eq!(
            calls.iter().filter(|c| *c == &format!("{k} ok")).count(),
            1,
            "{calls:?}"
        );
    }
    let g = &j["governor"];
    assert_eq!(g["max_parallel"], 3, "{g}");
    let events = g["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let first_drop = kinds.iter().position(|k| *k == "rate_limited");
    assert!(first_drop.is_some(), "{g}");
    assert!(
        kinds[first_drop.unwrap()..].contains(&"limit_raised"),
        "the limit never climbed back: {g}"
    );
    assert!(
        events.iter().all(|e| e["limit"].as_u64().unwrap() <= 3),
        "{g}"
    );
    assert!(g["min_limit"].as_u64().unwrap() < 3, "{g}");
    assert!(
        j["summary"]["rate_limit_wait_secs"].as_f64().unwrap() > 0.0,
        "{j}"
    );
    let waited = j["completed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["rate_limit_wait_secs"].as_f64().unwrap() > 0.0)
        .count();
    assert!(waited >= 1, "{j}");
    // The batch record draws those waits on the stories' timelines.
    let sid = j["session_id"].as_str().unwrap();
    let record = common::batch_record(&r, sid);
    assert!(
        record.contains("\"phase\": \"rate_limit_wait\"")
            || record.contains("\"phase\":\"rate_limit_wait\""),
        "{record}"
    );
    // The progress said so.
    out.stderr_has("rate limit: new agents wait");
}

#[test]
fn claude_error_subtypes_show_the_cli_words() {
    let r = repo(&["3-1-a"]);
    Claude::new()
        .reply("*", "", &fixture("claude-maxturns-error.out"), 1)
        .install(&r);
    let out = r.close_all(&["--sequential", "--retries", "0"]);
    out.code(1);
    let j = out.json();
    let msg = j["errors"][0]["error_message"].as_str().unwrap();
    assert!(
        msg.contains("error_max_turns: Reached maximum number of turns (3)"),
        "{msg}"
    );
}

#[test]
fn codex_reconnecting_then_answering_is_not_a_failure() {
    let r = repo(&["4-1-a"]);
    // Replays codex.out's transient errors and warning item, then finishes its turn.
    r.install_script(
        "codex",
        &format!(
            r#"#!/bin/sh
if [ "$1" = login ]; then echo 'Logged in using an API key'; exit 0; fi
prompt=$(cat)
{STORY_FROM_PROMPT}
while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
{TICK}
{events}printf '%s\n' "{RESULT}" > "$out"
"#,
            events = heredoc(&fixture("codex-success.out"), false),
        ),
    );
    let out = r.close_all(&["--sequential", "--agent", "codex"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["completed"][0]["story_key"], "4-1-a", "{j}");
    assert_eq!(j["completed"][0]["attempts"], 1, "{j}");
    let warnings = j["completed"][0]["warnings"].to_string();
    assert!(
        warnings.contains("Falling back from WebSockets"),
        "{warnings}"
    );
}

#[test]
fn a_silent_opencode_stalls_and_the_batch_stops_when_every_run_died_the_same_way() {
    let r = repo(&["5-1-a", "5-2-b", "5-3-c"]);
    // Offline, opencode 1.18 prints nothing at all and retries forever.
    let calls = r.home.join("opencode-calls");
    r.install_script(
        "opencode",
        &format!(
            "#!/bin/sh\ncat >/dev/null\necho \"$*\" >> '{}'\nexec sleep 60\n",
            calls.display()
        ),
    );
    r.git(&["config", "teleos.stallTimeout", "1"]);
    let out = r.close_all(&["--sequential", "--agent", "opencode"]);
    out.code(1);
    let j = out.json();
    let stopped = j["stopped"].as_str().unwrap_or_default();
    assert!(
        stopped.contains("failed the same way") && stopped.contains("stalled"),
        "{j}"
    );
    // One story, tried three times (retries 2), then nothing more.
    assert_eq!(lines(&calls).len(), 3);
    assert_eq!(j["summary"]["not_started"], 2, "{j}");
}

#[test]
fn landed_is_said_only_when_commits_landed() {
    let r = repo(&["6-1-a"]);
    Claude::new()
        .reply("*", "", &fixture("claude-maxturns-error.out"), 1)
        .install(&r);
    let head = r.git(&["rev-parse", "HEAD"]);
    let out = r.close_all(&["--parallel", "2", "--retries", "0"]);
    out.code(1);
    let notes = out.json()["notes"].to_string();
    assert!(!notes.contains("landed on"), "{notes}");
    assert!(notes.contains("nothing to land"), "{notes}");
    assert_eq!(r.git(&["rev-parse", "HEAD"]), head);
}

#[test]
fn dry_run_shows_the_exact_agent_command() {
    let r = repo(&["7-1-a"]);
    let codex = r.install_script("codex", "#!/bin/sh\nexit 0\n");
    let out = r.teleos([
        "close",
        "--sequential",
        "--all",
        "--dry-run",
        "--agent",
        "codex",
    ]);
    out.ok();
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Agent command: "))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    let words = shlex::split(line).unwrap();
    assert_eq!(words[0], codex.to_string_lossy());
    assert_eq!(
        words[1..6],
        [
            "exec",
            "--json",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            "-C"
        ]
    );
    assert_eq!(words[6], r.root.to_string_lossy());
    assert_eq!(words.last().map(String::as_str), Some("-"));
    // Nothing was created.
    assert!(!r.root.join(".git/teleos").exists());
}
