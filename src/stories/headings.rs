//! Stories whose tasks are headings, not checkboxes, as some real BMAD projects write them:
//!
//! ```markdown
//! ## Tasks / Subtasks
//!
//! ### Task 1: Add Child Notification to removeDevice Callable (AC: #6)
//! ### Task 2: Add DEVICE_REMOVED Notification Type (AC: #6) [x]
//! ### Task 3: Update Child Notification Delivery ✅
//! ```
//!
//! Read only for a story with no checkbox task at all (a second, cheap pass over the few files
//! that need it), so the parse of ordinary stories pays nothing for it.
//!
//! The rule (README, "Stories"):
//! - A heading is a task when its text starts with `Task` and a number (`Task 1:`, `Task 2.1`,
//!   `✅ Task 3`) and it sits under a heading that names tasks: one with the word `task`, `tasks`
//!   or `subtasks` (`Tasks / Subtasks`, `Technical Tasks`, `Completed Tasks`), or, with
//!   `teleos.taskSections`, one of the configured names. A task heading under another task
//!   heading is a subtask.
//! - Its mark is the last one in its text: done for ✅ ✔ ☑ ✓, `[x]`, a trailing upper-case
//!   `DONE` / `COMPLETE(D)`, `(done)` / `(complete)`, or a struck-through title; open for
//!   `[ ]`, `[~]`, `[/]`, ⏳ 🚧 ❌, `TODO` / `WIP` / `PARTIAL`, `(partial)` / `(in progress)`.
//!   A heading without a mark takes the mark of a `Status:` line right under it, if any.
//!   Anything else is open.
//! - Parsing counts marks only ([`parse_story`](super::parse_story) is also what verifies an
//!   agent's run, so a changed status line cannot pass for done work). The scan then lets the
//!   story's status decide ([`settle_by_status`]): when the tracker (else the file) says the
//!   story is done, its tasks count as done even if their headings carry no marks, and the
//!   JSON says how many were counted so (`task_headings.done_by_status`). Headings marked open
//!   in a done story are reported as a warning.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::Serialize;

use super::tasks::{heading_words, ParseOptions, ParsedStory, Task};

/// How a story's heading tasks are marked, for the scan's report and JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeadingTasks {
    /// Top-level task headings marked done.
    pub marked_done: usize,
    /// Top-level task headings marked open or partial (`[ ]`, `[~]`, …).
    pub marked_open: usize,
    /// Top-level task headings with no mark at all.
    pub unmarked: usize,
    /// Tasks counted done only because the story's status is done (set by the scan).
    pub done_by_status: usize,
    /// Text of the top-level headings marked open, for the scan's warning.
    #[serde(skip)]
    pub open: Vec<String>,
}

/// Longest task text kept, in bytes (as for sections in the checkbox parser).
const TEXT_MAX: usize = 256;

/// Statuses meaning the story is finished.
const DONE_STATUSES: &[&str] = &["done", "complete", "completed"];

/// Add the story's heading tasks to `out`, which has no checkbox task. Nothing changes when the
/// file has none either.
pub fn add_heading_tasks(text: &str, opts: &ParseOptions, out: &mut ParsedStory) {
    let found = read_heading_tasks(text, opts);
    if found.is_empty() {
        return;
    }
    let patterns: Vec<String> = opts
        .human_patterns
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.to_lowercase())
        .collect();
    let mut marks = HeadingTasks::default();
    for t in found {
        let checked = t.mark == Some(true);
        let lower = t.text.to_lowercase();
        let human = patterns.iter().any(|p| lower.contains(p.as_str()));
        if t.top_level {
            out.total += 1;
            if checked {
                out.checked += 1;
            } else {
                out.unchecked += 1;
            }
            match t.mark {
                Some(true) => marks.marked_done += 1,
                Some(false) => {
                    marks.marked_open += 1;
                    marks.open.push(t.text.clone());
                }
                None => marks.unmarked += 1,
            }
        } else {
            out.subtasks_total += 1;
            if !checked {
                out.subtasks_unchecked += 1;
            }
        }
        if human && !checked {
            out.human_validation_tasks.push(t.text.clone());
        }
        out.tasks.push(Task {
            text: t.text,
            checked,
            line: t.line,
            top_level: t.top_level,
            section: t.section,
            human,
        });
    }
    out.heading_tasks = Some(marks);
}

/// Let the story's status decide a heading-task story: when `sprint_status` (the tracker's),
/// else the file's own status, says done, every task counts as done. Heading marks are often
/// left out in stories the project has finished; a done story must not look like work for an
/// agent. Headings marked open in a done story are kept in `warnings`, as the project's own
/// files disagree there. Checkbox stories are left as they are.
pub fn settle_by_status(
    key: &str,
    p: &mut ParsedStory,
    sprint_status: Option<&str>,
    warnings: &mut Vec<String>,
) {
    let Some(marks) = p.heading_tasks.as_mut() else {
        return;
    };
    let Some(status) = sprint_status.or(p.status.as_deref()) else {
        return;
    };
    if !is_done_status(status) {
        return;
    }
    if !marks.open.is_empty() {
        let n = marks.open.len();
        warnings.push(format!(
            "story {key}: its status is '{status}' but {n} task heading{} marked open: {}",
            if n == 1 { " is" } else { "s are" },
            marks.open.join("; ")
        ));
    }
    marks.done_by_status = p.unchecked;
    p.checked = p.total;
    p.unchecked = 0;
    p.subtasks_unchecked = 0;
    p.human_validation_tasks.clear();
}

/// `done`, `Complete`, `completed` (as cleaned by the parser or read from the tracker).
pub fn is_done_status(status: &str) -> bool {
    let s = status.trim();
    DONE_STATUSES.iter().any(|d| s.eq_ignore_ascii_case(d))
}

/// One task heading as read.
struct Found {
    text: String,
    line: usize,
    top_level: bool,
    section: Option<String>,
    /// `Some(true)` done, `Some(false)` marked open, `None` unmarked.
    mark: Option<bool>,
}

/// What a heading above the current position is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Names tasks (`## Tasks / Subtasks`).
    Section,
    /// A task heading (its index in the found list).
    Task(usize),
    Other,
}

/// The task headings of `text`, in file order.
fn read_heading_tasks(text: &str, opts: &ParseOptions) -> Vec<Found> {
    let sections: Option<Vec<String>> = opts
        .task_sections
        .as_ref()
        .map(|names| names.iter().map(|n| heading_words(n)).collect());
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut found: Vec<Found> = Vec::new();
    // (level, kind, text) of the headings enclosing the current position.
    let mut stack: Vec<(HeadingLevel, Kind, String)> = Vec::new();
    let mut heading: Option<(HeadingLevel, usize)> = None;
    let mut heading_text = String::new();
    // Byte ranges of `heading_text` that were struck through.
    let mut struck: Vec<(usize, usize)> = Vec::new();
    // The task heading whose first paragraph may be its `Status:` line, and that line so far.
    let mut status_for: Option<usize> = None;
    let mut status_line: Option<String> = None;
    let mut in_metadata = false;
    // Line numbers, counted forward as the offsets only grow.
    let (mut line, mut counted_to) = (1usize, 0usize);
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                let to = range.start.min(text.len());
                line += text.as_bytes()[counted_to.min(to)..to]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                counted_to = counted_to.max(to);
                heading = Some((level, line));
                heading_text.clear();
                struck.clear();
                status_for = None;
            }
            Event::End(TagEnd::Heading(_)) => {
                let Some((level, at)) = heading.take() else {
                    continue;
                };
                while stack.last().is_some_and(|(l, _, _)| *l >= level) {
                    stack.pop();
                }
                let title = heading_text.trim();
                let in_section = stack.iter().any(|(_, k, _)| *k == Kind::Section);
                let kind = if in_section && is_task_title(title) {
                    let lead = heading_text.len() - heading_text.trim_start().len();
                    let title_struck = struck.iter().any(|&(s, e)| s <= lead && lead < e);
                    let mut mark = mark_of(title);
                    if mark.is_none() && title_struck {
                        mark = Some(true);
                    }
                    found.push(Found {
                        text: truncate(title, TEXT_MAX),
                        line: at,
                        top_level: !stack.iter().any(|(_, k, _)| matches!(k, Kind::Task(_))),
                        section: stack
                            .iter()
                            .rev()
                            .find(|(_, k, _)| *k == Kind::Section)
                            .map(|(_, _, t)| t.clone()),
                        mark,
                    });
                    if mark.is_none() {
                        status_for = Some(found.len() - 1);
                    }
                    Kind::Task(found.len() - 1)
                } else if names_tasks(title, sections.as_deref()) {
                    Kind::Section
                } else {
                    Kind::Other
                };
                stack.push((level, kind, truncate(title, TEXT_MAX)));
            }
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            Event::Start(Tag::Strikethrough) if heading.is_some() => {
                struck.push((heading_text.len(), usize::MAX));
            }
            Event::End(TagEnd::Strikethrough) if heading.is_some() => {
                if let Some(last) = struck.last_mut() {
                    last.1 = heading_text.len();
                }
            }
            Event::Start(Tag::Paragraph) if status_for.is_some() => {
                status_line = Some(String::new());
            }
            Event::Text(t) | Event::Code(t) if !in_metadata => {
                if heading.is_some() {
                    heading_text.push_str(&t);
                } else if let Some(s) = status_line.as_mut() {
                    s.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak | Event::End(TagEnd::Paragraph)
                if status_line.is_some() =>
            {
                // Only the first line of the first paragraph under the heading is looked at.
                if let (Some(i), Some(l)) = (status_for.take(), status_line.take()) {
                    if let Some(f) = found.get_mut(i) {
                        f.mark = status_line_mark(&l);
                    }
                }
            }
            // Any other block first (a list, code, a table): no status line.
            Event::Start(_) if heading.is_none() && status_line.is_none() => {
                status_for = None;
            }
            _ => {}
        }
    }
    found
}

/// `Task 1: …`, `Task 2.1 …`, `TASK #3`, `✅ Task 4`, `[x] Task 5`: the word `task`, then a
/// number.
fn is_task_title(title: &str) -> bool {
    let mut s = title.trim_start();
    // A leading box or mark (`[x] Task 1`, `✅ Task 1`).
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(end) = rest.find(']').filter(|&e| e <= 2) {
            s = &rest[end + 1..];
        }
    }
    let s = s.trim_start_matches(|c: char| !c.is_alphanumeric());
    let Some(head) = s.get(..4).filter(|h| h.eq_ignore_ascii_case("task")) else {
        return false;
    };
    let rest = s[head.len()..].trim_start_matches([' ', '\t', '#', '-']);
    rest.starts_with(|c: char| c.is_ascii_digit())
}

/// Whether a heading names a task list: one of `names` (normalised like the checkbox parser's
/// task sections) when given, else any heading with the word task, tasks or subtasks.
fn names_tasks(title: &str, names: Option<&[String]>) -> bool {
    match names {
        Some(names) => names.contains(&heading_words(title)),
        None => title.split(|c: char| !c.is_alphanumeric()).any(|w| {
            ["task", "tasks", "subtasks"]
                .iter()
                .any(|t| w.eq_ignore_ascii_case(t))
        }),
    }
}

/// The last mark in a heading's text: `Some(true)` done, `Some(false)` open, `None` none.
fn mark_of(title: &str) -> Option<bool> {
    // (byte position, done) of every mark; the last one wins (`[~] ✅` was finished later).
    let mut marks: Vec<(usize, bool)> = Vec::new();
    for (i, c) in title.char_indices() {
        match c {
            '✅' | '✔' | '☑' | '✓' => marks.push((i, true)),
            '⏳' | '🚧' | '❌' => marks.push((i, false)),
            '[' => match title.get(i..i + 3) {
                Some("[x]" | "[X]") => marks.push((i, true)),
                Some("[ ]" | "[~]" | "[/]") => marks.push((i, false)),
                _ => {}
            },
            _ => {}
        }
    }
    // Upper-case mark words, written apart from the title (`[x] DONE`). Word bytes are ASCII,
    // so the slices below fall on character boundaries.
    let bytes = title.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) {
            i += 1;
            continue;
        }
        let at = i;
        while i < bytes.len() && is_word(bytes[i]) {
            i += 1;
        }
        match &title[at..i] {
            "DONE" | "COMPLETE" | "COMPLETED" => marks.push((at, true)),
            "TODO" | "WIP" | "PARTIAL" => marks.push((at, false)),
            _ => {}
        }
    }
    let lower = title.to_ascii_lowercase();
    for (phrase, done) in [
        ("(done)", true),
        ("(complete)", true),
        ("(completed)", true),
        ("(partial)", false),
        ("(in progress)", false),
    ] {
        if let Some(at) = lower.rfind(phrase) {
            marks.push((at, done));
        }
    }
    marks.into_iter().max_by_key(|&(at, _)| at).map(|(_, d)| d)
}

/// The mark a `Status: …` line under a task heading gives it: done for done/complete(d) or a
/// done mark, open for any other status, none when the line is no status line.
fn status_line_mark(line: &str) -> Option<bool> {
    let t = line.trim().trim_start_matches(['*', '_']);
    let head = t.get(..6)?;
    if !head.eq_ignore_ascii_case("status") {
        return None;
    }
    let value = t[6..]
        .trim_start_matches(['*', '_', ' '])
        .strip_prefix(':')?;
    if mark_of(value) == Some(true) {
        return Some(true);
    }
    let word = value.trim_matches(|c: char| !c.is_alphanumeric());
    let first = word.split_whitespace().next().unwrap_or("");
    Some(is_done_status(first))
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stories::parse_story;

    fn parse(text: &str) -> ParsedStory {
        parse_story(text, &ParseOptions::default())
    }

    /// (text, checked, line, top_level) of every task.
    fn tasks(p: &ParsedStory) -> Vec<(&str, bool, usize, bool)> {
        p.tasks
            .iter()
            .map(|t| (t.text.as_str(), t.checked, t.line, t.top_level))
            .collect()
    }

    /// The shapes of Fledgely's stories (9d1e6133): unmarked, `[x]`, `[x] DONE`, ✅ and `[~]`.
    const FLEDGELY: &str = "# Story 3A.6: Co-Parent Removal Prevention

## Status: done

## Tasks / Subtasks

### Task 1: Create Guardian Removal Prevention Service (AC: #1, #4, #7) [x]

**Files:**

- `apps/web/src/services/guardianRemovalPreventionService.ts` (new)

### Task 2: Add Firebase Module [x] DONE

### Task 3: Update Family Settings UI (AC: #1, #4, #5) [~]

```typescript
### Task 9: not a heading, code
```

### Task 4: Create Subscription Data Models ✅

### Task 5: Add Child Notification to removeDevice Callable (AC: #6)

1.1 Import child notification delivery functions

## Dev Notes

### Task 6: notes about task 6 are not a task
";

    #[test]
    fn fledgely_heading_tasks_are_counted_with_their_marks() {
        let p = parse(FLEDGELY);
        assert_eq!(
            tasks(&p),
            [
                (
                    "Task 1: Create Guardian Removal Prevention Service (AC: #1, #4, #7) [x]",
                    true,
                    7,
                    true
                ),
                ("Task 2: Add Firebase Module [x] DONE", true, 13, true),
                (
                    "Task 3: Update Family Settings UI (AC: #1, #4, #5) [~]",
                    false,
                    15,
                    true
                ),
                ("Task 4: Create Subscription Data Models ✅", true, 21, true),
                (
                    "Task 5: Add Child Notification to removeDevice Callable (AC: #6)",
                    false,
                    23,
                    true
                ),
            ]
        );
        assert_eq!((p.total, p.checked, p.unchecked), (5, 3, 2));
        let h = p.heading_tasks.expect("heading tasks");
        assert_eq!((h.marked_done, h.marked_open, h.unmarked), (3, 1, 1));
        assert_eq!(p.tasks[0].section.as_deref(), Some("Tasks / Subtasks"));
    }

    #[test]
    fn checkbox_stories_are_left_alone() {
        let p = parse("## Tasks\n\n- [ ] Task 1: a\n\n### Task 2: b ✅\n");
        assert_eq!((p.total, p.checked), (1, 0));
        assert_eq!(p.heading_tasks, None);
        // Nested boxes only: still checkboxes (the story's tasks), so no heading pass either.
        let p = parse("## Tasks\n\n- Task 1\n  - [x] 1.1\n\n### Task 2: b\n");
        assert_eq!((p.total, p.subtasks_total), (1, 0));
        assert_eq!(p.heading_tasks, None);
    }

    #[test]
    fn only_headings_under_a_tasks_section_are_tasks() {
        for text in [
            "# T\n\n### Task 1: a\n",
            "## Dev Notes\n\n### Task 1: a\n",
            "## Tasks\n\n## Task 1: same level, not inside\n",
            "## Tasks\n\n    ### Task 1: indented code\n",
            "## Tasks\n\n~~~\n### Task 1: fenced\n~~~\n",
            "## Tasks\n\n### Taskforce 1\n\n### Task: no number\n\n### Tasks 1-3\n",
        ] {
            let p = parse(text);
            assert_eq!(p.total, 0, "{text}");
            assert_eq!(p.heading_tasks, None, "{text}");
        }
        for (section, n) in [
            ("Tasks / Subtasks", 1),
            ("Technical Tasks", 1),
            ("Completed Tasks", 1),
            ("3. Implementation Tasks:", 1),
            ("Task Breakdown", 1),
            ("Acceptance Criteria", 0),
        ] {
            let p = parse(&format!("## {section}\n\n### Task 1: a\n"));
            assert_eq!(p.total, n, "{section}");
        }
        // Any deeper heading level counts, setext headings too.
        let p = parse("# Tasks\n\n#### TASK #1 - a\n\nTask 2.1: b\n---\n");
        assert_eq!((p.total, p.unchecked), (2, 2));
    }

    #[test]
    fn configured_task_sections_name_the_sections() {
        let opts = ParseOptions::task_sections_only();
        let text =
            "## Technical Tasks\n\n### Task 1: a\n\n## Tasks / Subtasks\n\n### Task 2: b ✅\n";
        let p = parse_story(text, &opts);
        assert_eq!(tasks(&p), [("Task 2: b ✅", true, 7, true)]);
    }

    #[test]
    fn task_headings_under_a_task_heading_are_subtasks() {
        let p = parse("## Tasks\n\n### Task 1: a ✅\n\n#### Task 1.1: b\n\n### Task 2: c\n");
        assert_eq!((p.total, p.checked, p.unchecked), (2, 1, 1));
        assert_eq!((p.subtasks_total, p.subtasks_unchecked), (1, 1));
        assert!(!p.tasks[1].top_level);
    }

    #[test]
    fn marks_are_read_where_real_files_put_them() {
        let done = [
            "Task 1: a ✅",
            "✅ Task 1: a",
            "Task 1: a ✔️",
            "Task 1: a ✔",
            "Task 1: a ☑",
            "Task 1: a ✓",
            "[x] Task 1: a",
            "Task 1: a [X]",
            "Task 1: a [x] DONE",
            "Task 1: a DONE",
            "Task 1: a - COMPLETE",
            "Task 1: a COMPLETED",
            "Task 1: a (done)",
            "Task 1: a (Completed)",
            "~~Task 1: a~~",
            "Task 1: a [~] ✅",
            "Task 1: ✅ a (AC: #1)",
        ];
        for h in done {
            let p = parse(&format!("## Tasks\n\n### {h}\n"));
            assert_eq!((p.total, p.checked), (1, 1), "{h}");
        }
        let open = [
            "Task 1: a [ ]",
            "Task 1: a [~]",
            "Task 1: a [/]",
            "Task 1: a ⏳",
            "Task 1: a 🚧",
            "Task 1: a ❌",
            "Task 1: a TODO",
            "Task 1: a WIP",
            "Task 1: a (partial)",
            "Task 1: a (In Progress)",
            "Task 1: a ✅ [ ]",
        ];
        for h in open {
            let p = parse(&format!("## Tasks\n\n### {h}\n"));
            assert_eq!((p.total, p.checked), (1, 0), "{h}");
            assert_eq!(p.heading_tasks.map(|h| h.marked_open), Some(1), "{h}");
        }
        // Words of the title are not marks.
        for h in [
            "Task 1: Mark the order complete",
            "Task 2: Add DONE_STATE to the enum",
            "Task 3: Show the done checkmark",
            "Task 4: Todo list",
        ] {
            let p = parse(&format!("## Tasks\n\n### {h}\n"));
            assert_eq!(p.heading_tasks.map(|h| h.unmarked), Some(1), "{h}");
        }
    }

    #[test]
    fn a_status_line_under_an_unmarked_heading_marks_it() {
        let text =
            "## Tasks Completed\n\n### Task 1: a\n\n**Status:** Completed\n**Commit:** 78c4e14\n\n\
                    ### Task 2: b\n\nStatus: in progress\n\n### Task 3: c\n\n- Status: done\n\n\
                    ### Task 4: d ✅\n\nStatus: blocked\n";
        let p = parse(text);
        let checked: Vec<bool> = p.tasks.iter().map(|t| t.checked).collect();
        // Task 3's status is in a list, not the line under the heading; task 4's own mark wins.
        assert_eq!(checked, [true, false, false, true]);
        let h = p.heading_tasks.expect("heading tasks");
        assert_eq!((h.marked_done, h.marked_open, h.unmarked), (2, 1, 1));
    }

    #[test]
    fn human_tasks_and_front_matter() {
        let text = "---\nstatus: review\n---\n# T\n\n## Tasks\n\n### Task 1: Manual test on a Chromebook\n\n### Task 2: b\n";
        let p = parse(text);
        assert_eq!(p.status.as_deref(), Some("review"));
        assert_eq!(
            p.human_validation_tasks,
            ["Task 1: Manual test on a Chromebook"]
        );
        assert!(p.tasks[0].human);
        assert_eq!(p.tasks[0].line, 8);
    }

    #[test]
    fn the_status_decides_a_heading_task_story() {
        let text = "# T\n\n## Status: done\n\n## Tasks / Subtasks\n\n### Task 1: a\n\n### Task 2: b [x]\n\n### Task 3: Manual test c\n";
        let settle = |tracker: Option<&str>, own: Option<&str>| {
            let mut p = parse(text);
            p.status = own.map(str::to_string);
            let mut warnings = Vec::new();
            settle_by_status("3-1", &mut p, tracker, &mut warnings);
            (p, warnings)
        };
        // The tracker says done: all count as done, and how many by the status alone is kept.
        let (p, w) = settle(Some("done"), Some("in-progress"));
        assert_eq!((p.total, p.checked, p.unchecked), (3, 3, 0));
        assert!(p.human_validation_tasks.is_empty());
        assert_eq!(p.heading_tasks.as_ref().map(|h| h.done_by_status), Some(2));
        assert!(w.is_empty());
        // The tracker comes first; the file's status only when the tracker has none.
        let (p, _) = settle(Some("in-progress"), Some("done"));
        assert_eq!((p.checked, p.unchecked), (1, 2));
        assert_eq!(p.human_validation_tasks, ["Task 3: Manual test c"]);
        let (p, _) = settle(None, Some("Complete"));
        assert_eq!((p.checked, p.unchecked), (3, 0));
        let (p, _) = settle(None, None);
        assert_eq!((p.checked, p.unchecked), (1, 2));
        // A heading marked open in a done story is reported.
        let mut p = parse("## Tasks\n\n### Task 1: a [x]\n\n### Task 2: b [~]\n");
        let mut w = Vec::new();
        settle_by_status("39-6", &mut p, Some("done"), &mut w);
        assert_eq!(p.checked, 2);
        assert_eq!(
            w,
            ["story 39-6: its status is 'done' but 1 task heading is marked open: Task 2: b [~]"]
        );
        // Checkbox stories are not touched.
        let mut p = parse("## Tasks\n\n- [x] a\n- [ ] b\n");
        settle_by_status("1-1", &mut p, Some("done"), &mut w);
        assert_eq!((p.checked, p.unchecked), (1, 1));
    }

    #[test]
    fn the_prompt_tells_agents_a_mark_this_parser_reads_as_done() {
        let told = crate::agent::DEFAULT_INSTRUCTIONS;
        assert!(
            told.contains("For a heading task, end its heading with ` ✅`"),
            "{told}"
        );
        let p = parse("## Tasks\n\n### Task 3: Update Family Settings UI (AC: #1, #4, #5) ✅\n");
        assert_eq!(p.checked, 1);
    }

    #[test]
    fn long_and_odd_input_stays_linear_and_whole() {
        // Many headings: each is read once (a quadratic pass would take minutes here).
        let mut text = String::from("## Tasks\n\n");
        for i in 0..20_000 {
            text.push_str(&format!("### Task {i}: é✅\n\nbody\n\n"));
        }
        let p = parse(&text);
        assert_eq!((p.total, p.checked), (20_000, 20_000));
        assert_eq!(p.tasks[19_999].line, 3 + 4 * 19_999);
        // A giant heading is cut at a character boundary.
        let long = format!("## Tasks\n\n### Task 1: {}\n", "é".repeat(400));
        let p = parse(&long);
        assert!(p.tasks[0].text.len() <= TEXT_MAX);
    }
}
