//! Parse one story file: its checkbox tasks (with a real CommonMark/GFM parser, so checkboxes in
//! code, tables and inline code are not tasks), its own status and its dependency references.
//!
//! Everything here is linear in the input (one pass of the Markdown parser plus per-line work on
//! bounded prefixes), so pathological files cost time proportional to their size, never more.

use std::rc::Rc;

use pulldown_cmark::{Event, HeadingLevel, MetadataBlockKind, Options, Parser, Tag, TagEnd};
use serde::Serialize;

mod chunks;
mod items;
mod plain;
mod refs;
mod reuse;
mod text;

use refs::extract_refs;
pub use reuse::StoryParser;
use reuse::{Buffers, Prepared};
use text::{
    clean_status, heading_words_are, indent_at, labelled_value, line_len, lowercase_contains_any,
    truncate_at_char, AsciiNeedles,
};
pub(crate) use text::{heading_words, strip_yaml_comment};

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

/// [`DEPENDENCY_HEADINGS`] and [`STATUS_HEADINGS`] as searchers, built once per process.
static NEEDLES: std::sync::LazyLock<[AsciiNeedles; 2]> = std::sync::LazyLock::new(|| {
    [
        AsciiNeedles::new(DEPENDENCY_HEADINGS),
        AsciiNeedles::new(STATUS_HEADINGS),
    ]
});

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
    StoryParser::new(opts).parse(text)
}

/// Read `text` into `state`: chunk by chunk where [`chunks::split`] can cut it (into
/// `chunks`), the plain task lists without the Markdown parser (`plain.rs`, with `scratch`).
fn read_story(
    state: &mut State<'_>,
    text: &str,
    chunks: &mut Vec<chunks::Chunk>,
    scratch: &mut plain::Scratch,
) {
    if !chunks::split_into(text, chunks) {
        state.feed(
            text,
            0,
            PARSE_OPTIONS | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS,
        );
        return;
    }
    for chunk in chunks.iter() {
        if chunk.start == 0 {
            // The preamble: front matter, title, status. Always read.
            let whole = &text[..chunk.end];
            state.feed(
                whole,
                0,
                PARSE_OPTIONS | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS,
            );
            continue;
        }
        // Front matter exists only at the top of the file: not in a chunk parsed alone.
        let heading = &text[chunk.start..chunk.heading_end];
        match chunks::plain_heading(heading) {
            // What the parser would say for it, without building a parser per heading.
            Some((level, words)) => {
                let tag = Tag::Heading {
                    level,
                    id: None,
                    classes: Vec::new(),
                    attrs: Vec::new(),
                };
                state.start(tag, chunk.start);
                state.text(words);
                state.end(TagEnd::Heading(level));
            }
            None => state.feed(heading, chunk.start, PARSE_OPTIONS),
        }
        let body = &text[chunk.heading_end..chunk.end];
        let state_reads_body = state.in_dependency_section()
            || (state.out.status.is_none() && state.status_heading_pending);
        let needed = state_reads_body || chunk.body_needs_parse(text, state.out.status.is_none());
        if needed && !plain::feed(state, body, chunk.heading_end, scratch) {
            state.feed(body, chunk.heading_end, PARSE_OPTIONS);
        }
    }
}

/// No checkbox anywhere: the tasks may be headings (a second pass, for these files only).
fn with_heading_tasks(text: &str, opts: &ParseOptions, mut out: ParsedStory) -> ParsedStory {
    promote_orphan_subtasks(&mut out);
    // Every task counts once (top-level or subtask), kept or not.
    if out.total + out.subtasks_total == 0 {
        super::headings::add_heading_tasks(text, opts, &mut out);
    }
    out
}

/// Checkboxes only under plain bullets (`- **Task 1: …**` with `- [x] Subtask 1.1` below it,
/// seen in real BMAD stories): with no top-level checkbox at all, those boxes are the story's
/// tasks, or the story would have none and be skipped.
fn promote_orphan_subtasks(out: &mut ParsedStory) {
    if out.total > 0 || out.subtasks_total == 0 {
        return;
    }
    for t in &mut out.tasks {
        t.top_level = true;
    }
    out.total = out.subtasks_total;
    out.unchecked = out.subtasks_unchecked;
    out.checked = out.total - out.unchecked;
    out.subtasks_total = 0;
    out.subtasks_unchecked = 0;
}

/// [`parse_story`] without cutting the file into chunks: what chunking must agree with.
#[cfg(test)]
fn parse_story_whole(text: &str, opts: &ParseOptions) -> ParsedStory {
    let prep = Prepared::new(opts);
    let mut state = State::new(text, &prep, true, Buffers::default());
    state.feed(
        text,
        0,
        PARSE_OPTIONS | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS,
    );
    with_heading_tasks(text, opts, state.finish().0)
}

/// The Markdown the parser reads (front matter is added for the top of the file).
const PARSE_OPTIONS: Options = Options::ENABLE_TASKLISTS.union(Options::ENABLE_TABLES);

/// Byte offset → 1-based line number, by binary search over line starts.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// The index of `text`, in `starts` (a buffer kept between files); none at all (every line
    /// number 0) when `needed` is false: only kept tasks show line numbers.
    fn new(text: &str, mut starts: Vec<usize>, needed: bool) -> Self {
        starts.clear();
        if needed {
            // Sized for lines of ~40 bytes, so most files need no regrowth.
            starts.reserve(text.len() / 40 + 1);
            starts.push(0);
            starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        }
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
    /// Only when tasks are kept (the scan keeps counts, and needs no section names).
    text: Option<Rc<str>>,
    names_tasks: bool,
    names_dependencies: bool,
    names_status: bool,
}

/// Longest section name kept per task, in bytes.
const SECTION_NAME_MAX: usize = 256;

struct State<'a> {
    src: &'a str,
    /// The options, prepared once for many files.
    prep: &'a Prepared,
    /// Whether the tasks themselves are kept ([`StoryParser::parse`]), or only their counts
    /// and the texts of the unchecked human ones ([`StoryParser::counts`], for the scan).
    keep_tasks: bool,
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
    /// Emptied buffers of finished items and the like, reused (`reuse.rs`).
    spare: reuse::Spare,
    out: ParsedStory,
}

impl<'a> State<'a> {
    fn new(text: &'a str, prep: &'a Prepared, keep_tasks: bool, bufs: Buffers) -> Self {
        let Buffers {
            starts,
            items,
            headings,
            metadata,
            prose,
            spare,
        } = bufs;
        State {
            src: text,
            prep,
            keep_tasks,
            lines: LineIndex::new(text, starts, keep_tasks),
            items,
            headings,
            headings_seen: 0,
            prev_top_indent: None,
            first_heading_is_title: false,
            in_heading: false,
            in_code: false,
            in_metadata: false,
            metadata,
            prose,
            status_heading_pending: false,
            spare,
            out: ParsedStory::default(),
        }
    }

    /// Read `part`, which starts at byte `base` of the file.
    fn feed(&mut self, part: &str, base: usize, options: Options) {
        for (event, range) in Parser::new_ext(part, options).into_offset_iter() {
            self.event(event, range.start + base..range.end + base);
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
                        item.lines.push((next_line, self.spare.string()));
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
                let mut lines = self.spare.lines();
                let mut own = self.spare.string();
                // Sized for the bullet's line: its text is pushed in pieces without regrowth.
                own.reserve(line_len(self.src, offset));
                lines.push((line, own));
                self.items.push(ItemFrame {
                    line,
                    marker: None,
                    nested,
                    counted,
                    section: self.headings.last().and_then(|h| h.text.clone()),
                    lines,
                });
            }
            Tag::Paragraph => {
                // A later paragraph of the same item starts a new own-text line.
                let line = self.lines.line_of(offset);
                if let Some(item) = self.items.last_mut() {
                    if item.lines.last().is_some_and(|(_, s)| !s.trim().is_empty()) {
                        item.lines.push((line, self.spare.string()));
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
                // Read in place and handed back: one buffer serves every heading of the file.
                let mut text = std::mem::take(&mut self.prose);
                self.heading(level, text.trim());
                text.clear();
                self.prose = text;
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

    fn heading(&mut self, level: HeadingLevel, text: &str) {
        if self.headings_seen == 0 {
            self.first_heading_is_title = level == HeadingLevel::H1;
        }
        self.headings_seen += 1;
        while self.headings.last().is_some_and(|h| h.level >= level) {
            self.headings.pop();
        }
        self.status_heading_pending = heading_words_are(text, "status");
        if self.out.status.is_none() && level <= HeadingLevel::H2 {
            // `## Status: done` (Fledgely writes its status so) states it in the heading itself.
            if let Some(value) = labelled_value(text, &["status"]) {
                self.out.status = clean_status(value);
            }
        }
        let names_dependencies = lowercase_contains_any(text, &NEEDLES[0]);
        if names_dependencies {
            // `### Depends on Story 6.5` names its reference in the heading itself.
            extract_refs(text, false, &mut self.out.dependency_refs);
        }
        self.headings.push(Heading {
            level,
            names_tasks: self
                .prep
                .task_sections
                .as_ref()
                .is_some_and(|n| n.contains(&heading_words(text))),
            names_dependencies,
            names_status: lowercase_contains_any(text, &NEEDLES[1]),
            text: self
                .keep_tasks
                .then(|| truncate_at_char(text, SECTION_NAME_MAX).into()),
        });
    }

    fn in_task_section(&self) -> bool {
        match &self.prep.task_sections {
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

#[cfg(test)]
mod tests;
