//! What a Markdown file beside the stories is, from its name, title and first lines: a story
//! (it has a task list, its title says so) or another document (epic, tech spec, report).

/// A `- [ ]` / `- [x]` / `* [X]` / `1. [x]` list item (CommonMark allows one to four spaces
/// after the marker, and Prettier writes `-   [x]`), or a `### Task 1:` heading (stories that
/// write their tasks as headings, `headings.rs`), anywhere in `text`.
pub(super) fn has_task_line(text: &[u8]) -> bool {
    text.split(|b| *b == b'\n').any(|line| {
        let l = line.trim_ascii_start();
        let marker = match l.first() {
            Some(b'-' | b'*' | b'+') => 1,
            _ => {
                let digits = l.iter().take_while(|b| b.is_ascii_digit()).count();
                let ordered =
                    (1..=9).contains(&digits) && matches!(l.get(digits), Some(b'.' | b')'));
                if ordered {
                    digits + 1
                } else {
                    0
                }
            }
        };
        let rest = &l[marker..];
        let spaces = rest.iter().take_while(|b| **b == b' ').count();
        let checkbox = marker > 0
            && (1..=4).contains(&spaces)
            && rest.len() >= spaces + 3
            && rest[spaces] == b'['
            && matches!(rest[spaces + 1], b' ' | b'x' | b'X')
            && rest[spaces + 2] == b']';
        checkbox || is_task_heading_line(l)
    })
}

/// `## Task 1`, `### Task 2:`, `#### TASK #3`.
fn is_task_heading_line(l: &[u8]) -> bool {
    let hashes = l.iter().take_while(|b| **b == b'#').count();
    let Some(rest) = l.get(hashes..).filter(|_| (2..=6).contains(&hashes)) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(b" ").map(<[u8]>::trim_ascii_start) else {
        return false;
    };
    rest.len() > 4
        && rest[..4].eq_ignore_ascii_case(b"task")
        && rest[4..]
            .iter()
            .find(|b| !matches!(b, b' ' | b'#'))
            .is_some_and(u8::is_ascii_digit)
}

/// Words that mark a document beside the stories as something else: epics, tech specs,
/// retrospectives, validation and completion reports, QA and deployment guides.
const NON_STORY_WORDS: &[&str] = &[
    "epic",
    "epics",
    "retro",
    "retrospective",
    "tech-spec",
    "validation",
    "report",
    "summary",
    "completion",
    "checklist",
    "audit",
    "guide",
];

/// Whether a file name (not a tracker key) names a non-story document: one of its words
/// (split on `-`, `_`, `.`, space) is a [`NON_STORY_WORDS`] word, it starts with `review-` or
/// `code-review-`, or it ends in `-context` / `-review` (a story's context file or review).
pub fn is_non_story_name(name: &str) -> bool {
    // Called for every file discovery and the scan look at, so it allocates nothing: one pass
    // over the words, compared ignoring ASCII case (the same as lowercasing the name first).
    let bytes = name.as_bytes();
    let stem = match bytes.len().checked_sub(3) {
        Some(at) if bytes[at..].eq_ignore_ascii_case(b".md") => &bytes[..at],
        _ => bytes,
    };
    let is = |word: &[u8], like: &str| word.eq_ignore_ascii_case(like.as_bytes());
    let words = stem
        .split(|b| matches!(b, b'-' | b'_' | b'.' | b' '))
        .filter(|w| !w.is_empty());
    let mut previous: Option<&[u8]> = None;
    for (i, word) in words.enumerate() {
        let listed = NON_STORY_WORDS.iter().any(|w| is(word, w))
            // `tech-spec` spans two words.
            || (is(word, "spec") && previous.is_some_and(|p| is(p, "tech")));
        let review_first = match i {
            0 => is(word, "review"),
            1 => is(word, "review") && previous.is_some_and(|p| is(p, "code")),
            _ => false,
        };
        if listed || review_first {
            return true;
        }
        previous = Some(word);
    }
    // `previous` is now the last word.
    previous.is_some_and(|w| is(w, "context") || is(w, "review"))
}

/// Whether a document's title calls it a story. BMAD's story template titles every story
/// `# Story 1.2: …` (real ones also write `# User Story …`, `# Tech Debt Story …`), or its YAML
/// front matter gives a `story_id:` / `story_key:`; a report about a story (`# QA Review Report –
/// Story 1.1`) is told apart by the words before "Story", the words that mark file names. Words
/// after it are the story's own title ("Annual Review Checklist") and say nothing.
pub(super) fn has_story_title(text: &str) -> bool {
    let mut lines = text.lines();
    let mut first = lines.next();
    if first.map(str::trim_end) == Some("---") {
        let mut front = lines.by_ref().take_while(|l| l.trim_end() != "---");
        if front.any(|l| l.starts_with("story_id:") || l.starts_with("story_key:")) {
            return true;
        }
        // Consume the rest of the front matter; the title comes after it.
        front.for_each(drop);
        first = lines.next();
    }
    let Some(title) = first
        .into_iter()
        .chain(lines)
        .find_map(|l| l.strip_prefix("# "))
    else {
        return false;
    };
    let words: Vec<String> = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    match words.iter().position(|w| w == "story") {
        Some(0) => true,
        Some(at) => !is_non_story_name(&words[..at].join("-")),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_story_names() {
        for doc in [
            "epic-1-retro-2026-02-08.md",
            "epics.md",
            "tech-spec-4-cli-scaffold.md",
            "EPIC-2-COMPLETION-SUMMARY.md",
            "SESSION-COMPLETION-REPORT.md",
            ".comprehensive-validation-report-2026-01-03.md",
            "atdd-checklist-9-18-rtf.md",
            "code-review-9-18-rtf.md",
            "review-1-3-rbac.md",
            "15b-0a-dead-module-audit-context.md",
            "epic-46-retrospective.md",
            "5-3-task-2-deployment-guide.md",
        ] {
            assert!(is_non_story_name(doc), "{doc}");
        }
        for story in [
            "1-1-aws-cognito-mfa-integration.md",
            "story-1-2-database-schema-migrations.md",
            "debug-1-backend-debug-endpoints.md",
            "15b-0c-fix-remaining-cycles.md",
            "3-2-reviewer-dashboard.md",
            "2-4-contextual-help.md",
        ] {
            assert!(!is_non_story_name(story), "{story}");
        }
    }

    /// The first, allocating version, kept as the reference the one-pass version must match.
    fn non_story_name_reference(name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        let stem = lower.strip_suffix(".md").unwrap_or(&lower);
        let words: Vec<&str> = stem
            .split(['-', '_', '.', ' '])
            .filter(|w| !w.is_empty())
            .collect();
        let joined = format!("-{}-", words.join("-"));
        NON_STORY_WORDS
            .iter()
            .any(|w| joined.contains(&format!("-{w}-")))
            || joined.starts_with("-review-")
            || joined.starts_with("-code-review-")
            || matches!(words.last(), Some(&"context") | Some(&"review"))
    }

    #[test]
    fn non_story_names_match_the_reference() {
        let words = [
            "",
            "-",
            "_",
            ".",
            " ",
            "..",
            "md",
            ".md",
            ".MD",
            "epic",
            "Epics",
            "epicz",
            "tech",
            "TECH",
            "spec",
            "Spec",
            "review",
            "REVIEW",
            "code",
            "context",
            "Context",
            "guide",
            "1",
            "2-3",
            "story",
            "é",
            "Ünïcode",
            "retro",
            "audit",
        ];
        let mut checked = 0;
        for a in words {
            for b in words {
                for c in words {
                    for sep in ["-", "_", ".", " ", ""] {
                        let name = format!("{a}{sep}{b}{sep}{c}");
                        assert_eq!(
                            is_non_story_name(&name),
                            non_story_name_reference(&name),
                            "{name:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100_000);
    }

    #[test]
    fn task_lines() {
        assert!(has_task_line(b"# S\n\n  - [ ] a\n"));
        assert!(has_task_line(b"* [X] done"));
        // Prettier's list indent, and ordered items (whatcha-doin, README's `1. [x]`).
        assert!(has_task_line(b"-   [x] Subtask 1.1: Execute\n"));
        assert!(has_task_line(b"  12) [ ] twelfth\n"));
        assert!(!has_task_line(b"-      [x] five spaces is code\n"));
        assert!(!has_task_line(
            b"2026.[x] no space\n-[x] none\n1234567890. [ ] ten digits\n"
        ));
        assert!(!has_task_line(b"- [Source: docs/x.md]\n### Tasks\n"));
        // Stories whose tasks are headings (Fledgely).
        assert!(has_task_line(
            b"## Tasks / Subtasks\n\n### Task 1: Add Child Notification\n"
        ));
        assert!(has_task_line(b"#### TASK #2\n"));
        assert!(!has_task_line(b"# Task 1\n### Taskforce 2\n###Task 3\n"));
    }

    #[test]
    fn story_titles() {
        for story in [
            "# Story 8.7: Check consistency enhancement (AI)\n\n- [ ] a\n",
            "---\nid: 27.1\n---\n\n# Story 27.1: Dispatch Shell\n",
            "Intro\n# User Story H.1: Model & Service Governance\n",
            "# Tech Debt Story 15-TD-13: Transactional credit additions\n",
            "# Story E119-S13: Annual Review Checklist + ICO External Review\n",
            "---\nstory_id: E77-S02\nstory_name: 'Token Helper'\n---\n\n## Story\n",
        ] {
            assert!(has_story_title(story), "{story}");
        }
        for doc in [
            "# Architecture: AI Integration (Llama + Gemini)\n- [ ] a\n",
            "# QA Review Report – Story 1.1: Email + MFA Auth\n",
            "# QA Action Items: Stories 8.11 & 8.12\n",
            "# Design Guidance: E107-S03 — Fix TOC\n\n**Story Context**: a fix\n",
            "## Story 1.1\n",
            "---\ntitle: Story 1.1\n---\n\nno heading\n",
            "",
        ] {
            assert!(!has_story_title(doc), "{doc}");
        }
    }
}
