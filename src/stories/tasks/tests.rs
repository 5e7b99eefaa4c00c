//! Unit tests of the story parser.

use super::refs::parse_ref;
use super::*;

fn parse(text: &str) -> ParsedStory {
    parse_story(text, &ParseOptions::default())
}

fn counts(p: &ParsedStory) -> (usize, usize, usize, usize, usize) {
    (
        p.total,
        p.checked,
        p.unchecked,
        p.subtasks_total,
        p.subtasks_unchecked,
    )
}

#[test]
fn basic_bullets_and_case() {
    let p = parse("# S\n\n- [ ] a\n- [x] b\n- [X] c\n* [x] d\n+ [ ] e\n*   [x] f\n");
    assert_eq!(counts(&p), (6, 4, 2, 0, 0));
    let texts: Vec<_> = p.tasks.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(p.tasks[0].line, 3);
    assert_eq!(p.tasks[5].line, 8);
    assert!(p.tasks.iter().all(|t| t.top_level));
    assert_eq!(p.tasks[0].section.as_deref(), Some("S"));
}

#[test]
fn ordered_items() {
    let p = parse("1. [x] one\n2. [ ] two\n3) [X] three\n");
    assert_eq!(counts(&p), (3, 2, 1, 0, 0));
}

#[test]
fn other_markers_are_not_checkboxes() {
    let p = parse("- [~] partial\n- [?] unsure\n- [-] dash\n- [] empty\n- [ ] real\n");
    assert_eq!(counts(&p), (1, 0, 1, 0, 0));
    assert_eq!(p.tasks[0].text, "real");
}

#[test]
fn subtasks_at_indents_2_3_4() {
    let p = parse("- [x] two\n  - [ ] s2\n1. [ ] three\n   - [x] s3\n*   [ ] four\n    - [ ] s4\n");
    assert_eq!(counts(&p), (3, 1, 2, 3, 2));
    let subs: Vec<_> = p
        .tasks
        .iter()
        .filter(|t| !t.top_level)
        .map(|t| &t.text)
        .collect();
    assert_eq!(subs, ["s2", "s3", "s4"]);
}

#[test]
fn subtasks_at_indent_8() {
    // Too deep for CommonMark to nest under `- [ ] parent`: it is a lazy continuation line,
    // which we still read as a subtask.
    let p = parse("- [ ] parent\n        - [x] deep one\n        - [ ] deep two\n- [x] next\n");
    assert_eq!(counts(&p), (2, 1, 1, 2, 1));
    assert_eq!(p.tasks[0].text, "parent");
    assert_eq!(p.tasks[1].text, "deep one");
    assert_eq!(p.tasks[1].line, 2);
    assert_eq!(p.tasks[2].line, 3);
    assert!(!p.tasks[1].top_level);
    // And 8 spaces under a 4-space subtask nests properly.
    let p = parse("- [ ] a\n    - [ ] b\n        - [x] c\n");
    assert_eq!(counts(&p), (1, 0, 1, 2, 1));
}

#[test]
fn deeper_list_after_ordered_item_holds_subtasks() {
    // CommonMark makes `  - [ ]` under `1. [ ]` a separate list (2 < 3 columns); it is
    // still a subtask.
    let p = parse("1. [ ] Task\n  - [ ] sub\n  - [x] sub2\n2. [x] next\n");
    assert_eq!(counts(&p), (2, 1, 1, 2, 1));
    // Lists at the same indentation, or separated by prose, stay top-level.
    let p = parse("1. [ ] a\n- [ ] b\n\ntext\n\n  - [ ] c\n");
    assert_eq!(counts(&p), (3, 0, 3, 0, 0));
}

#[test]
fn task_in_plain_bullet_is_subtask() {
    let p = parse("- [x] setup\n- Phase 1\n  - [ ] inner\n");
    assert_eq!(counts(&p), (1, 1, 0, 1, 1));
}

/// As in real stories (hammaadworks/whatcha-doin): every box under a plain `**Task N**`
/// bullet. With no top-level box at all, those boxes are the tasks.
#[test]
fn boxes_only_under_plain_bullets_are_the_tasks() {
    let text = "## Tasks / Subtasks\n\n\
-   **Task 1: Initialize the project** (AC: #1)\n\
    -   [x] Subtask 1.1: scaffold\n\
    -   [ ] Subtask 1.2: install\n\
    -   **Testing:** manual check.\n\
-   **Task 2: Configure tools** (AC: #2)\n\
    -   [x] Subtask 2.1: eslint\n";
    let p = parse(text);
    assert_eq!(counts(&p), (3, 2, 1, 0, 0));
    assert!(p.tasks.iter().all(|t| t.top_level));
    assert_eq!(parse_story_whole(text, &ParseOptions::default()), p);
}

#[test]
fn own_text_excludes_children_and_code() {
    let p = parse("- [ ] Add `foo()` to **bar**\n  - [x] child\n");
    assert_eq!(p.tasks[0].text, "Add foo() to bar");
    let p = parse("- [ ] loose\n\n  second para\n\n  - [ ] child\n");
    assert_eq!(p.tasks[0].text, "loose second para");
    assert_eq!(p.tasks[1].text, "child");
}

#[test]
fn fenced_and_indented_code_are_not_tasks() {
    let text = "\
- [ ] real

```
- [ ] in fence
```

~~~md
- [x] tilde fence
~~~

    - [ ] indented code

````
```markdown
- [ ] nested fence
```
- [ ] still inside the outer fence
````
";
    let p = parse(text);
    assert_eq!(counts(&p), (1, 0, 1, 0, 0));
}

#[test]
fn tables_and_inline_code_are_not_tasks() {
    let text = "\
| task | state |
| --- | --- |
| - [ ] x | [x] |

Use `- [ ] foo` to write a task.

- [x] real
";
    let p = parse(text);
    assert_eq!(counts(&p), (1, 1, 0, 0, 0));
}

#[test]
fn html_comments_are_not_tasks() {
    let p = parse("<!--\n- [ ] hidden\n-->\n\n- [ ] shown\n");
    assert_eq!(p.total, 1);
}

#[test]
fn section_restriction() {
    let text = "\
# Story

## Acceptance Criteria
- [ ] ac1

## Tasks / Subtasks
- [x] t1
  - [ ] t1.1

### Notes under tasks
- [ ] t2

## Definition of Done
- [ ] dod

## Implementation Tasks
- [ ] t3
";
    let opts = ParseOptions::task_sections_only();
    let p = parse_story(text, &opts);
    assert_eq!(counts(&p), (3, 1, 2, 1, 1));
    assert_eq!(p.tasks[0].section.as_deref(), Some("Tasks / Subtasks"));
    assert_eq!(p.tasks[2].section.as_deref(), Some("Notes under tasks"));
    // Whole file by default.
    assert_eq!(counts(&parse(text)), (5, 1, 4, 1, 1));
    // Matching ignores case and punctuation.
    let p = parse_story("## TASKS/SUBTASKS:\n- [ ] a\n", &opts);
    assert_eq!(p.total, 1);
}

#[test]
fn human_validation_tasks() {
    let text = "\
- [ ] Manually verify the login page
- [x] manual test of done thing
- [ ] Write code
  - [ ] Get QA Sign-off from team
- [ ] browser TEST on safari
";
    let p = parse(text);
    assert_eq!(
        p.human_validation_tasks,
        [
            "Manually verify the login page",
            "Get QA Sign-off from team",
            "browser TEST on safari"
        ]
    );
    let opts = ParseOptions {
        human_patterns: vec!["write".into()],
        ..Default::default()
    };
    assert_eq!(
        parse_story(text, &opts).human_validation_tasks,
        ["Write code"]
    );
}

#[test]
fn status_forms() {
    assert_eq!(
        parse("# Story 1.2\n\nStatus: Review\n\n## Story\n")
            .status
            .as_deref(),
        Some("review")
    );
    assert_eq!(
        parse("# T\n\n**Status:** done\n").status.as_deref(),
        Some("done")
    );
    assert_eq!(
        parse("# T\n\n**Status**: In-Progress ✅\n")
            .status
            .as_deref(),
        Some("in-progress")
    );
    assert_eq!(
        parse("# T\n\n## Status\n\nReady for Review\n\n## Story\n")
            .status
            .as_deref(),
        Some("ready for review")
    );
    assert_eq!(
        parse("---\nstatus: drafted  # c\n---\n# T\n")
            .status
            .as_deref(),
        Some("drafted")
    );
    assert_eq!(
        parse("# T\n\n## Story Info\n\n- **Status:** blocked\n")
            .status
            .as_deref(),
        Some("blocked")
    );
    // A `Status:` line deep in the notes is prose, not the story's status.
    assert_eq!(
        parse("# T\n\n## Dev Notes\n\nStatus: the API returns 404\n").status,
        None
    );
    // Nor is one inside code.
    assert_eq!(parse("# T\n\n```\nStatus: done\n```\n").status, None);
    // The status in a section heading of its own (Fledgely), not in a deeper one.
    assert_eq!(
        parse("# Story 19.6: Device Removal Flow\n\n## Status: done\n\n## Story\n")
            .status
            .as_deref(),
        Some("done")
    );
    assert_eq!(
        parse("# T\n\n## Dev Notes\n\n### Status: the API returns 404\n").status,
        None
    );
    // First one wins.
    assert_eq!(
        parse("# T\n\nStatus: review\n\n## Status\n\ndone\n")
            .status
            .as_deref(),
        Some("review")
    );
}

#[test]
fn explicit_depends_on() {
    assert_eq!(
        parse("# T\n\ndepends_on: [5-1, 5-2]\n").dependency_refs,
        ["5-1", "5-2"]
    );
    assert_eq!(parse("depends_on: 5-1\n").dependency_refs, ["5-1"]);
    assert_eq!(
        parse("depends_on: []\n").dependency_refs,
        Vec::<String>::new()
    );
    assert_eq!(
        parse("---\ndepends_on: [\"5-1\", 'story-5.3']\nstatus: done\n---\n# T\n").dependency_refs,
        ["5-1", "5-3"]
    );
    assert_eq!(
        parse("---\ndepends_on:\n  - 1-2\n  - 1.3\ntitle: x\n---\n").dependency_refs,
        ["1-2", "1-3"]
    );
}

#[test]
fn prose_dependencies() {
    let text = "\
# Story 7.1: Thing

Uses ideas from Story 2.2 but does not depend on it.

## Dependencies

- Story 6.5 (auth) must be done
- story 6-6 and 6.7
- Requires Node 18.2 and a release on 2024-01-15
- See [story-4.1](./4-1-foo.md), Story 14.20, stories 3.1, 3.2

## Dev Notes

Mentions 9-9 outside any dependency section.

**Depends on:** Story 8.1, 8.2

### Prerequisites

1-0-2-setup-db
";
    let p = parse(text);
    assert_eq!(
        p.dependency_refs,
        [
            "6-5",
            "6-6",
            "6-7",
            "4-1",
            "14-20",
            "3-1",
            "3-2",
            "8-1",
            "8-2",
            "1-0-2-setup-db"
        ]
    );
}

#[test]
fn dependency_heading_text_counts() {
    assert_eq!(
        parse("### Blocked by Story 3.4\n\nnothing\n").dependency_refs,
        ["3-4"]
    );
    assert_eq!(
        parse("## Dependencies\n\n```\n9-9\n```\n").dependency_refs,
        Vec::<String>::new()
    );
}

#[test]
fn ref_parsing() {
    assert_eq!(parse_ref("6-5", false).as_deref(), Some("6-5"));
    assert_eq!(parse_ref("6.5", false), None);
    assert_eq!(parse_ref("6.5", true).as_deref(), Some("6-5"));
    assert_eq!(parse_ref("story-6.5", false).as_deref(), Some("6-5"));
    assert_eq!(parse_ref("19a-1", false).as_deref(), Some("19a-1"));
    assert_eq!(parse_ref("h-1", false), None);
    assert_eq!(parse_ref("h-1", true).as_deref(), Some("h-1"));
    assert_eq!(parse_ref("2024-01-15", true), None);
    assert_eq!(parse_ref("5", true), None);
    assert_eq!(parse_ref("6-", true), None);
}

#[test]
fn line_numbers_with_front_matter_and_crlf() {
    let p = parse("---\nstatus: x\n---\r\n# T\r\n\r\n- [ ] a\r\n- [x] b\r\n");
    assert_eq!(p.tasks.iter().map(|t| t.line).collect::<Vec<_>>(), [6, 7]);
}

#[test]
fn pathological_inputs_are_bounded() {
    let deep = "- ".repeat(100_000) + "[ ] x\n";
    let start = std::time::Instant::now();
    let p = parse(&deep);
    // The one box, nested under plain bullets only: the story's one task.
    assert_eq!((p.total, p.subtasks_total), (1, 0));
    let long_line = "- [ ] ".to_string() + &"word [x] ".repeat(500_000);
    let p = parse(&long_line);
    assert_eq!(p.total, 1);
    let status_line = "Status:".to_string() + &" x".repeat(1_000_000);
    assert!(parse(&status_line).status.is_some());
    let deps = "## Dependencies\n\n".to_string() + &"1-1 ".repeat(200_000);
    assert_eq!(parse(&deps).dependency_refs, ["1-1"]);
    // A giant heading over many tasks is not copied into each of them.
    let heading = "## Tasks ".to_string() + &"é".repeat(1_000_000) + "\n";
    let p = parse(&(heading + &"- [ ] t\n".repeat(100_000)));
    assert_eq!(p.total, 100_000);
    assert!(p.tasks[0]
        .section
        .as_ref()
        .is_some_and(|s| s.len() <= SECTION_NAME_MAX));
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());
}

/// Slow in debug builds; run with `cargo test --release -- --ignored`.
#[test]
#[ignore]
fn fifty_megabyte_line() {
    let line = "- [ ] ".to_string() + &"Story 1.2 [x] `c` *e* ".repeat(2_300_000);
    assert!(line.len() > 50_000_000);
    let start = std::time::Instant::now();
    let p = parse(&("## Dependencies\n\n".to_string() + &line));
    assert_eq!(p.total, 1);
    assert_eq!(p.dependency_refs, ["1-2"]);
    assert!(
        start.elapsed().as_secs() < 120,
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn empty_and_no_tasks() {
    assert_eq!(parse(""), ParsedStory::default());
    assert_eq!(parse("# Just a doc\n\nNo tasks.\n").total, 0);
}

/// What the cut finds in each body is what a scan of the lone body finds.
fn cut_agrees_with_lone_bodies(text: &str) {
    for chunk in super::chunks::split(text)
        .unwrap_or_default()
        .iter()
        .skip(1)
    {
        let body = &text[chunk.heading_end..chunk.end];
        for status_unknown in [false, true] {
            assert_eq!(
                chunk.body_needs_parse(text, status_unknown),
                super::chunks::body_needs_parse(body, status_unknown),
                "body {body:?} of:\n{text}"
            );
        }
    }
}

/// Chunked and whole parses agree, on both option sets; so do counts and a used parser.
fn same_as_whole(text: &str) {
    cut_agrees_with_lone_bodies(text);
    for opts in [ParseOptions::default(), ParseOptions::task_sections_only()] {
        let whole = parse_story_whole(text, &opts);
        assert_eq!(
            parse_story(text, &opts),
            whole,
            "chunked parse differs on:\n{text}"
        );
        super::reuse::same_from_a_used_parser(text, &opts, &whole);
    }
}

/// Every `*.md` file under `STORY_DIFF_DIR` parses the same chunked and whole:
/// `STORY_DIFF_DIR=/path/to/stories cargo test --release --lib chunked_matches_whole_on -- --ignored`.
#[test]
#[ignore]
fn chunked_matches_whole_on_a_folder() {
    let dir = std::env::var("STORY_DIFF_DIR").expect("set STORY_DIFF_DIR");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        cut_agrees_with_lone_bodies(&text);
        for opts in [ParseOptions::default(), ParseOptions::task_sections_only()] {
            assert_eq!(
                parse_story(&text, &opts),
                parse_story_whole(&text, &opts),
                "{}",
                path.display()
            );
        }
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn chunks_agree_with_the_whole_file() {
    let cases = [
        // A typical story: the dev notes are skipped, the tasks are not.
        "# Story 1.2: X\n\nStatus: review\n\n## Tasks / Subtasks\n\n- [ ] a\n  - [x] b\n\n## Dev Notes\n\nPlain prose.\n\n### Files\n\n- src/a.rs\n",
        // A heading inside a fence is no cut; checkboxes in it are no tasks.
        "# T\n\n```md\n\n# not a heading\n\n- [ ] in fence\n```\n\n## Tasks\n\n- [ ] real\n",
        "# T\n\n~~~~\n\n# in\n\n~~~\n\n- [ ] still in\n~~~~\n\n# after\n\n- [x] out\n",
        // An HTML comment spanning a blank line and a heading.
        "# T\n\n<!--\n\n# hidden\n\n- [ ] hidden\n-->\n\n# shown\n\n- [ ] shown\n",
        "# T\n\n<!-- one line -->\n\n# A\n\nprose\n",
        "# T\n\n<div>\n```\n</div>\n\n# A\n\n```\n\n# in fence\n\n- [ ] x\n```\n",
        // Indented fences: in a list item or not, the whole file is parsed.
        "# T\n\n- [ ] a\n  ```\n\n# H\n\n- [ ] b\n  ```\n",
        "# T\n\n   ```\n\n# in\n\n- [ ] c\n   ```\n\n# out\n",
        // Front matter with a heading-like comment after a blank line.
        "---\nstatus: done\n\n# comment\ndepends_on: [1-1]\n---\n\n# T\n\n- [ ] a\n",
        "---\n\n# T\n\n- [ ] a\n",
        // Link reference definitions reach across chunks.
        "# T\n\n- [ ] fix [foo]\n\n## Refs\n\n[foo]: /url\n",
        // Markup that could make a checkbox, a label or a heading in a skipped body.
        "# T\n\n## A\n\n- [ ] parent\n        - \\[ ] lazy\n\n## B\n\nDe*pends* on: 2-2\n\n## C\n\nStatus\n======\n",
        "# T\n\n## A\n\nx &#91; ] y\n\n## B\n\n**Depends on:** Story 3.1\n\n## C\n\n> ## Status\n> done\n",
        "# T\n\n## Dependencies\n\nStory 4.4\n\n### Sub\n\n5-5\n\n## Other\n\n6-6\n",
        "# T\n\n## Status\n\nin-progress\n\n## B\n\nStatus: done\n",
        "# T\n\n## B\n\nStatus: done\n\n## Status\n\nreview\n",
        "# T\r\n\r\n## A\r\n\r\n- [x] crlf\r\n\r\n## B\r\n\r\nprose\r\n",
        "# T\r\rbare\r\r## A\r\r- [ ] cr\r",
        "# T\n\n| a | b |\n| - | - |\n| [ ] | x |\n\n# A\n\n| c |\n| - |\n| dep|ends on: 1-1 |\n",
        "# T\n\n\t```\n\n# A\n\n- [ ] tab\n\t```\n",
        "#\n\n#\n\n- [ ] empty headings\n\n######x\n\n####### seven\n",
        // `[a]: b` in fenced code defines no link; in a list item it does.
        "# T\n\n```toml\n[a]: b\n```\n\n## A\n\n- [ ] see [a]\n",
        "# T\n\n- [a]: /u\n\n## A\n\n- [ ] see [a]\n",
        // Labels only where a line's or a cell's text starts.
        "# T\n\n## A\n\nThe HTTP status code\n\n## B\n\n| a | Depends on: 5-5 |\n|---|---|\n\n## C\n\n\u{a0}Depends on: 6-6\n\n## D\n\n\u{b}Status: done\n",
        "# T\n\n## A\n\n> - __Blocked by:__ 7-7\n\n## B\n\nsee `depends on: 8-8`\n",
    ];
    for text in cases {
        same_as_whole(text);
    }
}

#[test]
fn chunks_cut_at_top_level_headings_and_skip_plain_bodies() {
    use super::chunks::{body_needs_parse, split};
    let text =
        "# T\n\nStatus: x\n\n## Tasks\n\n- [ ] a\n\n## Dev Notes\n\n```\n\n# c\n```\n\nprose\n";
    let cuts: Vec<usize> = split(text).unwrap().iter().map(|c| c.start).collect();
    assert_eq!(cuts, [0, 16, 35]);
    assert!(body_needs_parse("\n- [ ] a\n", false));
    assert!(!body_needs_parse(
        "\n```\n\n# c\nDepends on: 1-1\n```\n\nprose\n",
        false
    ));
    // Labels count where a line's text starts (or a table cell's), markup skipped.
    assert!(body_needs_parse("\n- **Status:** done\n", true));
    assert!(!body_needs_parse("\n- **Status:** done\n", false));
    assert!(!body_needs_parse("\nThe HTTP status code\n", true));
    assert!(body_needs_parse("\n> 1. *De*pends on: 2-2\n", false));
    assert!(body_needs_parse("\n| a | `Blocked` by 3-3 |\n", false));
    assert!(!body_needs_parse(
        "\nNo blockers; depends on nothing\n",
        false
    ));
    assert!(body_needs_parse("\n\u{a0}Prerequisites: 4-4\n", false));
    assert!(body_needs_parse("\n- [*X*] hidden\n", false));
    assert!(body_needs_parse("\nsee [the docs](x)\n", false));
    assert!(body_needs_parse("\ntext\n---\n", false));
    assert!(!body_needs_parse(
        "\n---\n\nplain [Source: a.md#b]\n",
        false
    ));
    // Where the scan cannot be sure, nothing is cut.
    assert_eq!(split("# T\n\n  ```\n\n# A\n"), None);
    assert_eq!(split("# T\n\n[a]: /b\n"), None);
}

/// Every story text kept in `tests/` parses the same with the plain-list reader and chunks as
/// the parser reading the whole file.
#[test]
fn fixture_stories_parse_the_same_plain_and_whole() {
    let mut pending = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")];
    let mut n = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    same_as_whole(&text);
                    n += 1;
                }
            }
        }
    }
    assert!(n > 0, "no story fixtures found");
}

#[test]
fn plain_lists_read_as_the_parser_reads_them() {
    let cases = [
        "# T\n\n## Tasks\n\n- [x] **Task 1: a** (AC: #1)\n  - [ ] `b c` and ` d `\n    - e_f\n\n- [ ] g\n",
        "# T\n\n## Tasks\n\n1. [ ] a\n  - [ ] b\n2. [x] c\n   - [x] d\n",
        "# T\n\n## Tasks\n\n**Files:**\n- [ ] a\n\nProse **bold**.\n\n* [ ] b\n+ [x] c\n",
        // Declined: a continuation line, an ordered item that cannot interrupt, emphasis.
        "# T\n\n## Tasks\n\n- [ ] a\n        - [x] lazy\n",
        "# T\n\n## Tasks\n\n- [ ] a\n  2. [x] text\n",
        "# T\n\n## Tasks\n\n- [ ] *a* **b **c**\n- [ ] x**y**\n",
    ];
    for text in cases {
        same_as_whole(text);
    }
    let mut ops = Vec::new();
    assert!(super::plain::read(
        b"\n- [x] **a:** `b`\n  - c_d\n",
        0,
        &mut ops
    ));
    assert!(!super::plain::read(
        b"\n- [ ] a\n        - [x] lazy\n",
        0,
        &mut ops
    ));
    assert!(!super::plain::read(b"\n- [ ] see [a](b)\n", 0, &mut ops));
}

mod plain_vs_parser {
    use super::same_as_whole;
    use proptest::prelude::*;

    /// Lines mixing what the plain reader accepts with what it must decline.
    fn line() -> impl Strategy<Value = String> {
        let indent = prop::sample::select(vec!["", " ", "  ", "   ", "    ", "      ", "        "]);
        let marker = prop::sample::select(vec![
            "- ", "* ", "+ ", "1. ", "2. ", "3) ", "-  ", "-     ", "-", "", "10. ",
        ]);
        let checkbox = prop::sample::select(vec!["", "[ ] ", "[x] ", "[X] ", "[ ]", "[x]  "]);
        let word = prop::sample::select(vec![
            "a",
            "Task",
            "**b**",
            "**c:**",
            "**d",
            "e**",
            "`x`",
            "` y `",
            "``z``",
            "`",
            "a_b",
            "_c",
            "*d*",
            "#1",
            "2.",
            "(AC",
            "[l](u)",
            "<p>",
            "&amp;",
            "\\*",
            "|",
            "~",
            "é",
            "**",
            "```",
            "---",
            "===",
            "> q",
            "# h",
            "Status:",
            "Depends on: 2-1",
            "\t",
            " ",
        ]);
        (indent, marker, checkbox, prop::collection::vec(word, 0..5))
            .prop_map(|(i, m, c, words)| format!("{i}{m}{c}{}", words.join(" ")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn plain_reader_agrees_with_the_parser(
            lines in prop::collection::vec(line(), 1..12),
            heading in prop::sample::select(vec!["## Tasks", "## Dependencies", "## Status"]),
        ) {
            same_as_whole(&format!("# T\n\n{heading}\n\n{}\n", lines.join("\n")));
            same_as_whole(&format!("# T\n\n{heading}\n{}", lines.join("\n")));
        }
    }
}

mod needles {
    use super::super::text::AsciiNeedles;
    use proptest::prelude::*;

    proptest! {
        /// What a lowercase copy and `contains` answer, for any needles (more than 64 too).
        #[test]
        fn needles_find_what_contains_finds(
            hay in "[a-dA-D é]{0,40}",
            needles in prop::collection::vec("[a-d é]{0,3}", 0..80),
        ) {
            let searcher = AsciiNeedles::new(&needles);
            let lower = hay.to_ascii_lowercase();
            let expected = needles.iter().any(|n| !n.is_empty() && lower.contains(n.as_str()));
            prop_assert_eq!(searcher.any_in(hay.as_bytes()), expected);
        }
    }
}
