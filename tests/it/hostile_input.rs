//! Hostile and broken input: property tests for the story parser and the agent-result
//! extraction (no panic, bounded time), and story files whose names try to reach a shell.

use crate::common;

use git_teleos::agent::extract_result;
use git_teleos::stories::{parse_story, ParseOptions};
use proptest::prelude::*;

fn opts() -> ParseOptions {
    ParseOptions {
        task_sections: None,
        human_patterns: vec!["manually verify".into()],
    }
}

/// Markdown-ish fragments that stress the parser: fences, lists, tables, checkboxes, html.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("- [ ] task\n".to_string()),
        Just("- [x] done\n".to_string()),
        Just("  - [X] sub\n".to_string()),
        Just("1. [x] ordered\n".to_string()),
        Just("```\n".to_string()),
        Just("````markdown\n".to_string()),
        Just("| a | [ ] |\n|---|---|\n".to_string()),
        Just("## Tasks / Subtasks\n".to_string()),
        Just("## Dependencies\n- Story 1.2\n".to_string()),
        Just("---\ndepends_on: [1-1]\n---\n".to_string()),
        Just("Status: review\n".to_string()),
        Just("<!-- - [ ] -->\n".to_string()),
        Just("`- [ ] inline`\n".to_string()),
        Just(">".to_string()),
        Just("    ".to_string()),
        "[ -~\n\t]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_and_counts_are_consistent(parts in proptest::collection::vec(fragment(), 0..60)) {
        let text: String = parts.concat();
        let p = parse_story(&text, &opts());
        prop_assert_eq!(p.checked + p.unchecked, p.total);
        prop_assert!(p.subtasks_unchecked <= p.subtasks_total);
        prop_assert_eq!(p.tasks.iter().filter(|t| t.top_level).count(), p.total);
    }

    #[test]
    fn parser_takes_any_unicode(text in "\\PC{0,400}") {
        let _ = parse_story(&text, &opts());
    }

    #[test]
    fn extraction_never_panics(text in "\\PC{0,400}", json_ish in "[{}\\[\\]\":,a-z0-9 \\\\`]{0,200}") {
        let _ = extract_result(&text);
        let _ = extract_result(&json_ish);
        let _ = extract_result(&format!("```json\n{json_ish}\n```"));
    }
}

#[test]
fn pathological_markdown_is_bounded() {
    let deep = "- ".repeat(100_000) + "[ ] deep\n";
    let quotes = ">".repeat(100_000) + " - [ ] quoted\n";
    let long_line = format!("- [ ] {}\n", "x".repeat(5_000_000));
    // Speed is the benchmarks' business (no timed assertions here): a quadratic parser shows up
    // as this test never finishing, and the answers must still be consistent.
    for text in [deep, quotes, long_line] {
        let p = parse_story(&text, &opts());
        assert_eq!(p.checked + p.unchecked, p.total);
        assert!(p.total <= 1, "one checkbox at most, got {}", p.total);
    }
}

#[test]
fn pathological_agent_output_is_bounded() {
    let braces = "{".repeat(2_000_000);
    let strings = "{\"a\":\"".repeat(200_000);
    let fences = "```json\n{\n".repeat(100_000);
    for text in [braces, strings, fences] {
        assert!(extract_result(&text).is_err());
    }
}

#[test]
fn story_names_that_look_like_shell_are_just_names() {
    let r = common::TestRepo::new();
    r.agent_identity();
    let dir = "docs/sprint-artifacts";
    let evil = [
        "1-1 with spaces",
        "1-2-'quoted\"",
        "1-3;touch PWNED",
        "1-4-$(touch PWNED2)",
        "1-5-`touch PWNED3`",
    ];
    for name in evil {
        r.write(&format!("{dir}/{name}.md"), &common::story(name, 9, 1));
    }
    // A file name that is not UTF-8 is skipped with a reason, not a crash.
    {
        use std::os::unix::ffi::OsStrExt;
        let p = r
            .root
            .join(dir)
            .join(std::ffi::OsStr::from_bytes(b"1-6-\xff.md"));
        std::fs::write(p, common::story("latin", 9, 1)).unwrap();
    }
    r.commit_all("evil names");
    let out = r.teleos(["scan", "--json"]);
    out.ok();
    let j = out.json();
    let keys: Vec<String> = j["closeable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["story_key"].as_str().unwrap().to_string())
        .collect();
    for name in evil {
        assert!(
            keys.iter().any(|k| k == name),
            "{name} missing from {keys:?}"
        );
    }
    // A custom agent that just records its stdin: the names reach it only as data.
    r.install_script(
        "record-agent",
        &format!(
            "#!/bin/sh\ncat >> '{}/prompts'\necho 'no json'\n",
            r.home.display()
        ),
    );
    let out = r.teleos([
        "close",
        "--sequential",
        "--all",
        "--yes",
        "--retries",
        "0",
        "--circuit-breaker",
        "0",
        "--agent",
        "custom",
        "--agent-command",
        "record-agent",
    ]);
    out.code(1);
    let prompts = std::fs::read_to_string(r.home.join("prompts")).unwrap();
    assert!(prompts.contains("1-4-$(touch PWNED2)"));
    for f in ["PWNED", "PWNED2", "PWNED3"] {
        assert!(
            !r.path(f).exists() && !r.path(&format!("{dir}/{f}")).exists(),
            "{f} was created"
        );
    }
}
