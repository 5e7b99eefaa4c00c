//! Parse one story file: its checkbox tasks (with a real CommonMark/GFM parser, so checkboxes in
//! code, tables and inline code are not tasks), its own status and its dependency references.
//!
//! Everything here is linear in the input (one pass of the Markdown parser plus per-line work on
//! bounded prefixes), so pathological files cost time proportional to their size, never more.

use std::rc::Rc;

use pulldown_cmark::{Event, HeadingLevel, MetadataBlockKind, Options, Parser, Tag, TagEnd};
use serde::Serialize;

use super::deps::normalize_key;

/// Unchecked tasks containing one of these (case-insensitive) need a human, not an agent.
pub const DEFAULT_HUMAN_PATTERNS: &[&str] = &[
    "manually verify",
    "manual test",
    "QA sign-off",
    "user acceptance",
    "visually confirm",
    "browser test",
    "human review",
];

/// Headings that name a story's task list, for [`ParseOptions::task_sections`].
pub const DEFAULT_TASK_SECTIONS: &[&str] = &["Tasks / Subtasks", "Tasks", "Implementation Tasks"];

/// Headings whose sections hold dependency prose (matched as case-insensitive substrings).
const DEPENDENCY_HEADINGS: &[&str] = &[
    "dependencies",
    "dependency",
    "prerequisite",
    "depends on",
    "blocked by",
];

/// Line labels (`**Depends on:** Story 6.5`) that introduce dependency references anywhere.
const DEPENDENCY_LABELS: &[&str] = &[
    "depends_on",
    "depends-on",
    "depends on",
    "dependencies",
    "dependency",
    "prerequisites",
    "prerequisite",
    "blocked by",
    "blocked-by",
];

/// Headings whose sections may carry a `Status:` line besides the preamble.
const STATUS_HEADINGS: &[&str] = &["status", "story info", "metadata"];

/// How to read a story file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// `None`: every task in the file counts (as the source workflow does). `Some(names)`: only
    /// tasks under a heading named one of these (case-insensitive, punctuation ignored), up to
    /// the next heading of the same or a higher level.
    pub task_sections: Option<Vec<String>>,
    /// Substrings (case-insensitive) marking an unchecked task as needing a human.
    pub human_patterns: Vec<String>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            task_sections: None,
            human_patterns: DEFAULT_HUMAN_PATTERNS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl ParseOptions {
    /// Defaults, but counting only the sections named in [`DEFAULT_TASK_SECTIONS`].
    pub fn task_sections_only() -> Self {
        ParseOptions {
            task_sections: Some(
                DEFAULT_TASK_SECTIONS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            ..ParseOptions::default()
        }
    }
}

/// One checkbox task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    /// The item's own inline text (not its nested children), trimmed.
    pub text: String,
    pub checked: bool,
    /// 1-based line of the item's bullet.
    pub line: usize,
    /// Not nested inside another list item.
    pub top_level: bool,
    /// Text of the innermost heading above the task, if any.
    pub section: Option<String>,
    /// The text matches a human-validation pattern: never for an agent to do.
    pub human: bool,
}

/// What one story file says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedStory {
    /// Counted tasks (top-level and subtasks), in file order.
    pub tasks: Vec<Task>,
    /// Top-level tasks: these make the ratio.
    pub total: usize,
    pub checked: usize,
    pub unchecked: usize,
    pub subtasks_total: usize,
    pub subtasks_unchecked: usize,
    /// Text of unchecked tasks matching a human-validation pattern.
    pub human_validation_tasks: Vec<String>,
    /// Normalised, de-duplicated references (`"6-5"`, `"1-2-user-login"`), not yet resolved.
    pub dependency_refs: Vec<String>,
    /// The file's own status, lowercased and trimmed.
    pub status: Option<String>,
    /// Set when the tasks are `### Task N:` headings rather than checkboxes (`headings.rs`).
    pub heading_tasks: Option<super::headings::HeadingTasks>,
}

/// Parse a story file. Never fails: anything unrecognised is simply not a task.
pub fn parse_story(text: &str, opts: &ParseOptions) -> ParsedStory {
    let mut state = State::new(text, opts);
    let options = Options::ENABLE_TASKLISTS
        | Options::ENABLE_TABLES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        state.event(event, range);
    }
    let mut out = state.finish();
    if out.tasks.is_empty() {
        // No checkbox anywhere: the tasks may be headings (a second pass, for these files only).
        super::headings::add_heading_tasks(text, opts, &mut out);
    }
    out
}

/// Byte offset → 1-based line number, by binary search over line starts.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}

/// A list item being read.
struct ItemFrame {
    line: usize,
    marker: Option<bool>,
    nested: bool,
    counted: bool,
    /// Shared with the heading: most items are no tasks, so the name is copied only for tasks.
    section: Option<Rc<str>>,
    /// The item's own inline text, one entry per source line (soft breaks split lines) with
    /// that line's number: continuation lines may hide lazily-indented subtasks.
    lines: Vec<(usize, String)>,
}

/// A heading above the current position, with what it means worked out once.
struct Heading {
    level: HeadingLevel,
    /// Shown as a task's section; capped so a giant heading is not copied into every task.
    text: Rc<str>,
    names_tasks: bool,
    names_dependencies: bool,
    names_status: bool,
}

/// Longest section name kept per task, in bytes.
const SECTION_NAME_MAX: usize = 256;

struct State<'a> {
    src: &'a str,
    human_patterns: Vec<String>,
    task_sections: Option<Vec<String>>,
    lines: LineIndex,
    items: Vec<ItemFrame>,
    headings: Vec<Heading>,
    headings_seen: usize,
    /// Bullet indentation of the last top-level item, while lists follow each other directly:
    /// a list indented deeper than it (`1. [ ] task` then `  - [ ] sub`, which CommonMark
    /// makes a separate list because 2 < 3) holds subtasks all the same.
    prev_top_indent: Option<usize>,
    first_heading_is_title: bool,
    in_heading: bool,
    in_code: bool,
    in_metadata: bool,
    metadata: String,
    /// Inline text of the current prose line, flushed at every line or block boundary.
    prose: String,
    status_heading_pending: bool,
    out: ParsedStory,
}

impl<'a> State<'a> {
    fn new(text: &'a str, opts: &ParseOptions) -> Self {
        State {
            src: text,
            human_patterns: opts
                .human_patterns
                .iter()
                .map(|p| p.to_lowercase())
                .collect(),
            task_sections: opts
                .task_sections
                .as_ref()
                .map(|names| names.iter().map(|n| heading_words(n)).collect()),
            lines: LineIndex::new(text),
            items: Vec::new(),
            headings: Vec::new(),
            headings_seen: 0,
            prev_top_indent: None,
            first_heading_is_title: false,
            in_heading: false,
            in_code: false,
            in_metadata: false,
            metadata: String::new(),
            prose: String::new(),
            status_heading_pending: false,
            out: ParsedStory::default(),
        }
    }

    fn event(&mut self, event: Event<'_>, range: std::ops::Range<usize>) {
        match event {
            Event::Start(tag) => self.start(tag, range.start),
            Event::End(tag) => self.end(tag),
            Event::Text(t) | Event::Code(t) => self.text(&t),
            Event::SoftBreak | Event::HardBreak => {
                self.flush_prose();
                if !self.in_code {
                    let next_line = self.lines.line_of(range.start) + 1;
                    if let Some(item) = self.items.last_mut() {
                        item.lines.push((next_line, String::new()));
                    }
                }
            }
            Event::TaskListMarker(checked) => {
                if let Some(item) = self.items.last_mut() {
                    item.marker = Some(checked);
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, t: &str) {
        if self.in_metadata {
            self.metadata.push_str(t);
        } else if !self.in_code {
            self.prose.push_str(t);
            if !self.in_heading {
                if let Some((_, own)) = self.items.last_mut().and_then(|i| i.lines.last_mut()) {
                    own.push_str(t);
                }
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>, offset: usize) {
        if is_inline(&tag) {
            return;
        }
        self.flush_prose();
        if self.items.is_empty() && !matches!(tag, Tag::List(_) | Tag::Item) {
            self.prev_top_indent = None;
        }
        match tag {
            Tag::Heading { .. } => self.in_heading = true,
            Tag::CodeBlock(_) => self.in_code = true,
            Tag::MetadataBlock(MetadataBlockKind::YamlStyle) => self.in_metadata = true,
            Tag::Item => {
                let line = self.lines.line_of(offset);
                let counted = self.in_task_section();
                let mut nested = !self.items.is_empty();
                if !nested {
                    let indent = indent_at(self.src, offset);
                    match self.prev_top_indent {
                        Some(prev) if indent > prev => nested = true,
                        _ => self.prev_top_indent = Some(indent),
                    }
                }
                self.items.push(ItemFrame {
                    line,
                    marker: None,
                    nested,
                    counted,
                    section: self.headings.last().map(|h| h.text.clone()),
                    lines: vec![(line, String::new())],
                });
            }
            Tag::Paragraph => {
                // A later paragraph of the same item starts a new own-text line.
                let line = self.lines.line_of(offset);
                if let Some(item) = self.items.last_mut() {
                    if item.lines.last().is_some_and(|(_, s)| !s.trim().is_empty()) {
                        item.lines.push((line, String::new()));
                    }
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        if is_inline_end(&tag) {
            return;
        }
        match tag {
            TagEnd::Heading(level) => {
                self.in_heading = false;
                let text = std::mem::take(&mut self.prose).trim().to_string();
                self.heading(level, text);
            }
            TagEnd::CodeBlock => {
                self.flush_prose();
                self.in_code = false;
            }
            TagEnd::MetadataBlock(_) => {
                self.in_metadata = false;
                let meta = std::mem::take(&mut self.metadata);
                self.front_matter(&meta);
            }
            TagEnd::Item => {
                self.flush_prose();
                if let Some(item) = self.items.pop() {
                    self.finish_item(item);
                }
            }
            _ => self.flush_prose(),
        }
    }

    fn heading(&mut self, level: HeadingLevel, text: String) {
        if self.headings_seen == 0 {
            self.first_heading_is_title = level == HeadingLevel::H1;
        }
        self.headings_seen += 1;
        while self.headings.last().is_some_and(|h| h.level >= level) {
            self.headings.pop();
        }
        let words = heading_words(&text);
        self.status_heading_pending = words == "status";
        if self.out.status.is_none() && level <= HeadingLevel::H2 {
            // `## Status: done` (Fledgely writes its status so) states it in the heading itself.
            if let Some(value) = labelled_value(&text, &["status"]) {
                self.out.status = clean_status(value);
            }
        }
        let names_dependencies = lowercase_contains_any(&text, DEPENDENCY_HEADINGS);
        if names_dependencies {
            // `### Depends on Story 6.5` names its reference in the heading itself.
            extract_refs(&text, false, &mut self.out.dependency_refs);
        }
        self.headings.push(Heading {
            level,
            names_tasks: self
                .task_sections
                .as_ref()
                .is_some_and(|n| n.contains(&words)),
            names_dependencies,
            names_status: lowercase_contains_any(&text, STATUS_HEADINGS),
            text: truncate_at_char(text, SECTION_NAME_MAX).into(),
        });
    }

    fn in_task_section(&self) -> bool {
        match &self.task_sections {
            None => true,
            Some(_) => self.headings.iter().any(|h| h.names_tasks),
        }
    }

    fn in_dependency_section(&self) -> bool {
        self.headings.iter().any(|h| h.names_dependencies)
    }

    /// Where a bare `Status:` line is believed: before the first heading after the title, or in
    /// a section about status or metadata (a `Status:` line deep in dev notes is prose).
    fn status_line_allowed(&self) -> bool {
        let preamble =
            self.headings_seen == 0 || (self.headings_seen == 1 && self.first_heading_is_title);
        preamble || self.headings.iter().any(|h| h.names_status)
    }

    /// Look at one line of prose (outside code) for a status or dependency references.
    fn flush_prose(&mut self) {
        if self.prose.is_empty() {
            return;
        }
        let mut line = std::mem::take(&mut self.prose);
        self.prose_line(line.trim());
        // Hand the buffer back: one allocation serves every line of the file.
        line.clear();
        self.prose = line;
    }

    fn prose_line(&mut self, trimmed: &str) {
        if trimmed.is_empty() {
            return;
        }
        if self.out.status.is_none() {
            if let Some(value) = labelled_value(trimmed, &["status"]) {
                if self.status_heading_pending || self.status_line_allowed() {
                    self.out.status = clean_status(value);
                }
            } else if self.status_heading_pending {
                self.out.status = clean_status(trimmed);
            }
        }
        self.status_heading_pending = false;
        if let Some(rest) = labelled_value(trimmed, DEPENDENCY_LABELS) {
            extract_refs(rest, true, &mut self.out.dependency_refs);
        } else if self.in_dependency_section() {
            extract_refs(trimmed, false, &mut self.out.dependency_refs);
        }
    }

    /// `status:` and `depends_on:` from YAML front matter (flow list, scalar or block list).
    fn front_matter(&mut self, yaml: &str) {
        let mut in_depends_block = false;
        for raw in yaml.lines() {
            let line = strip_yaml_comment(raw);
            if line.trim().is_empty() {
                continue;
            }
            let indented = line.starts_with(' ') || line.starts_with('\t');
            if in_depends_block {
                if let Some(item) = line.trim().strip_prefix('-') {
                    if indented || line.starts_with('-') {
                        extract_refs(item, true, &mut self.out.dependency_refs);
                        continue;
                    }
                }
                in_depends_block = false;
            }
            if indented {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key.trim().to_lowercase().as_str() {
                "status" if self.out.status.is_none() => self.out.status = clean_status(value),
                "depends_on" | "depends-on" | "dependencies" => {
                    if value.trim().is_empty() {
                        in_depends_block = true;
                    } else {
                        extract_refs(value, true, &mut self.out.dependency_refs);
                    }
                }
                _ => {}
            }
        }
    }

    fn finish_item(&mut self, mut item: ItemFrame) {
        if item.lines.len() == 1 {
            // One line (most items): no continuation can hide a subtask, so only its own box
            // counts; decided without building the per-line list below.
            let (Some(checked), true) = (item.marker, item.counted) else {
                return;
            };
            let (_, text) = item.lines.swap_remove(0);
            let text = text.trim().to_string();
            let human = self.is_human(&text);
            self.add_task(Task {
                text,
                checked,
                line: item.line,
                top_level: !item.nested,
                section: item.section.as_deref().map(str::to_string),
                human,
            });
            return;
        }
        // Continuation lines that look like checkboxes were indented too far for CommonMark to
        // see a nested list (e.g. 8 spaces under `- [ ] parent`); they are subtasks all the same.
        let mut own: Vec<(usize, Option<bool>, String)> = Vec::new();
        for (i, (line, text)) in item.lines.into_iter().enumerate() {
            let lazy = if i == 0 { None } else { lazy_checkbox(&text) };
            match (lazy, own.last_mut()) {
                (Some((checked, rest)), _) => own.push((line, Some(checked), rest.to_string())),
                (None, Some((_, _, acc))) => {
                    let t = text.trim();
                    if !t.is_empty() {
                        if !acc.is_empty() {
                            acc.push(' ');
                        }
                        acc.push_str(t);
                    }
                }
                (None, None) => own.push((item.line, item.marker, text.trim().to_string())),
            }
        }
        if !item.counted {
            return;
        }
        for (i, (line, marker, text)) in own.into_iter().enumerate() {
            let Some(checked) = marker else { continue };
            let top_level = i == 0 && !item.nested;
            let line = if i == 0 { item.line } else { line };
            let text = text.trim().to_string();
            let human = self.is_human(&text);
            self.add_task(Task {
                text,
                checked,
                line,
                top_level,
                section: item.section.as_deref().map(str::to_string),
                human,
            });
        }
    }

    fn add_task(&mut self, task: Task) {
        let out = &mut self.out;
        if task.top_level {
            out.total += 1;
            if task.checked {
                out.checked += 1;
            } else {
                out.unchecked += 1;
            }
        } else {
            out.subtasks_total += 1;
            if !task.checked {
                out.subtasks_unchecked += 1;
            }
        }
        if !task.checked && task.human {
            out.human_validation_tasks.push(task.text.clone());
        }
        out.tasks.push(task);
    }

    /// Case-insensitive match against the (already lowercased) human-validation patterns.
    fn is_human(&self, text: &str) -> bool {
        if text.is_ascii() {
            // Compared in place: no lowercase copy of every task.
            let hay = text.as_bytes();
            return self
                .human_patterns
                .iter()
                .any(|p| !p.is_empty() && contains_lowercased(hay, p.as_bytes()));
        }
        let lower = text.to_lowercase();
        self.human_patterns
            .iter()
            .any(|p| !p.is_empty() && lower.contains(p.as_str()))
    }

    fn finish(mut self) -> ParsedStory {
        self.flush_prose();
        // Items end children-first; report tasks in file order (stable for equal lines).
        self.out.tasks.sort_by_key(|t| t.line);
        let mut seen = std::collections::HashSet::new();
        self.out.dependency_refs.retain(|r| seen.insert(r.clone()));
        self.out
    }
}

fn is_inline(tag: &Tag<'_>) -> bool {
    matches!(
        tag,
        Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::Link { .. }
            | Tag::Image { .. }
    )
}

fn is_inline_end(tag: &TagEnd) -> bool {
    matches!(
        tag,
        TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link
            | TagEnd::Image
    )
}

/// Heading text reduced to lowercase letters and digits, leading numbering dropped, so
/// `## 3. Tasks/Subtasks:` and `Tasks / Subtasks` compare equal.
pub(super) fn heading_words(text: &str) -> String {
    let mut words: String = if text.is_ascii() {
        // Most headings: byte by byte into one allocation (the same result as below).
        let mut w = String::with_capacity(text.len());
        w.extend(
            text.bytes()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| char::from(b.to_ascii_lowercase())),
        );
        w
    } else {
        text.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(|c| c.to_lowercase())
            .collect()
    };
    let numbering = words.len() - words.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    words.drain(..numbering);
    words
}

/// Whether ASCII `hay`, lowercased, contains `needle` (a lowercased string): what
/// `to_lowercase().contains()` answers, without the copy.
fn contains_lowercased(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

/// Whether `text` lowercased contains one of `needles` (already lowercase). ASCII text is
/// compared in place; other text is lowercased first, as Unicode lowercasing can map a
/// non-ASCII character to ASCII (the Kelvin sign to `k`).
fn lowercase_contains_any(text: &str, needles: &[&str]) -> bool {
    if text.is_ascii() {
        let hay = text.as_bytes();
        needles
            .iter()
            .any(|n| contains_lowercased(hay, n.as_bytes()))
    } else {
        let lower = text.to_lowercase();
        needles.iter().any(|n| lower.contains(n))
    }
}

/// Width of the whitespace at `offset` (tabs count 4): where an item's bullet sits.
fn indent_at(src: &str, offset: usize) -> usize {
    let rest = src.get(offset..).unwrap_or("");
    rest.bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .map(|b| if b == b'\t' { 4 } else { 1 })
        .sum()
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate_at_char(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// How many leading bytes of a line are examined for a label: labels are short, and looking at
/// a bounded prefix keeps a 50 MB line linear.
const LABEL_WINDOW: usize = 64;

/// If `line` starts with one of `labels` (case-insensitive) followed by `:`, the rest after it.
fn labelled_value<'a>(line: &'a str, labels: &[&str]) -> Option<&'a str> {
    let mut end = line.len().min(LABEL_WINDOW);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    // Compared in place, ignoring ASCII case (the labels are lowercase ASCII): no lowercase
    // copy per line, which was a heap allocation for every line of prose.
    let head = line[..end].trim_start_matches(['*', '_', '-', ' ']);
    let skipped = end - head.len();
    let first = *head.as_bytes().first()?;
    for label in labels {
        let l = label.as_bytes();
        if l.first() != Some(&first.to_ascii_lowercase())
            || head.len() < l.len()
            || !head.as_bytes()[..l.len()].eq_ignore_ascii_case(l)
        {
            continue;
        }
        // The matched prefix is ASCII, so `l.len()` is a character boundary.
        let after = &head[l.len()..];
        let after_trim = after.trim_start_matches(['*', '_', ' ']);
        if after_trim.starts_with(':') {
            let start = skipped + l.len() + (after.len() - after_trim.len()) + 1;
            return Some(line[start..].trim_start_matches(['*', '_']));
        }
    }
    None
}

/// `- [ ] text`, `* [x] text`, `1. [X] text` at the start of a continuation line.
fn lazy_checkbox(line: &str) -> Option<(bool, &str)> {
    let s = line.trim_start();
    let after_bullet = if let Some(rest) = s.strip_prefix(['-', '*', '+']) {
        rest
    } else {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        s[digits..].strip_prefix(['.', ')'])?
    };
    let after_space = after_bullet.strip_prefix([' ', '\t'])?.trim_start();
    let bytes = after_space.as_bytes();
    if bytes.len() < 3 || bytes[0] != b'[' || bytes[2] != b']' {
        return None;
    }
    let checked = match bytes[1] {
        b' ' => false,
        b'x' | b'X' => true,
        _ => return None,
    };
    let rest = &after_space[3..];
    // GFM wants whitespace after the marker (or the end of the line).
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((checked, rest.trim()))
}

/// A status value as written, cleaned: `**Done** ✅` → `done`.
fn clean_status(value: &str) -> Option<String> {
    let v = strip_yaml_comment(value)
        .trim()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    (!v.is_empty()).then_some(v)
}

/// Drop a YAML-ish comment: everything from `#` on (`done# x` counts as `done`, as real
/// sprint files write it).
pub(crate) fn strip_yaml_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Find story references in `text` and push them, normalised (`Story 6.5` → `6-5`).
///
/// Without `lenient`, a dotted number (`6.5`) counts only after the word "story"/"stories",
/// so that "Node 18.2" in a prerequisites section is not a story; dashed ones (`6-5`) always do.
fn extract_refs(text: &str, lenient: bool, out: &mut Vec<String>) {
    let mut after_story = false;
    let is_word_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    for word in text.split(|c: char| !is_word_char(c)) {
        if word.is_empty() {
            continue;
        }
        // Most prose words hold no digit and so cannot be a reference: decide those without
        // allocating.
        if !word.bytes().any(|b| b.is_ascii_digit()) {
            let w = word.trim_matches(['.', '-']);
            if w.eq_ignore_ascii_case("story") || w.eq_ignore_ascii_case("stories") {
                after_story = true;
            } else if !(w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or")) {
                after_story = false;
            }
            continue;
        }
        let lower = word.to_ascii_lowercase();
        let lower = lower.trim_matches(['.', '-']);
        if lower == "story" || lower == "stories" {
            after_story = true;
            continue;
        }
        if lower == "and" || lower == "or" {
            continue;
        }
        match parse_ref(lower, after_story || lenient) {
            Some(r) => out.push(r),
            None => after_story = false,
        }
    }
}

/// One word as a story reference, or `None`. `word` is lowercase ASCII.
fn parse_ref(word: &str, story_context: bool) -> Option<String> {
    let word = word.strip_suffix(".md").unwrap_or(word);
    let (word, story_context) = match word.strip_prefix("story-").or(word.strip_prefix("story.")) {
        Some(rest) => (rest, true),
        None => (word, story_context),
    };
    if word.contains('.') && !story_context {
        return None;
    }
    let norm = normalize_key(word);
    let segments: Vec<&str> = norm.split('-').collect();
    if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let first = segments[0];
    let first_ok = first.starts_with(|c: char| c.is_ascii_digit())
        || (story_context && first.len() <= 3 && first.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !first_ok || !segments[1].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A date (2024-01-15) is not a story.
    let is_date = segments.len() >= 3
        && first.len() == 4
        && segments[1].len() == 2
        && segments[2].len() == 2
        && segments[..3]
            .iter()
            .all(|s| s.bytes().all(|b| b.is_ascii_digit()));
    (!is_date).then_some(norm)
}

#[cfg(test)]
mod tests {
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
        let p =
            parse("- [x] two\n  - [ ] s2\n1. [ ] three\n   - [x] s3\n*   [ ] four\n    - [ ] s4\n");
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
        let p = parse("- Phase 1\n  - [ ] inner\n");
        assert_eq!(counts(&p), (0, 0, 0, 1, 1));
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
            parse("---\ndepends_on: [\"5-1\", 'story-5.3']\nstatus: done\n---\n# T\n")
                .dependency_refs,
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
        assert_eq!(p.subtasks_total, 1);
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
}
