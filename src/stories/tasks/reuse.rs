//! Parsing story after story without allocating afresh for each: the options prepared once
//! (lowercased patterns and their searcher, section names), and the parser's working buffers
//! handed from file to file.
//!
//! The scan parses ~10,000 files on rayon's threads; allocating and freeing each file's line
//! index, item and heading stacks, item texts and task list was hundreds of `malloc`/`free`
//! calls per file, and with glibc's allocator those threads then wait on each other's arena
//! locks (issue 11 §4). [`StoryParser::counts`] also skips what the scan throws away: the
//! tasks' texts, section names and line numbers.

use super::chunks::Chunk;
use super::plain::Scratch;
use super::text::{heading_words, AsciiNeedles};
use super::{read_story, with_heading_tasks, Heading, ItemFrame, ParseOptions, ParsedStory, State};

/// The options in the form the parser uses them.
pub(super) struct Prepared {
    pub opts: ParseOptions,
    /// The non-empty human-validation patterns, lowercased.
    pub human_needles: AsciiNeedles,
    /// The task section names reduced by [`heading_words`].
    pub task_sections: Option<Vec<String>>,
}

impl Prepared {
    pub fn new(opts: &ParseOptions) -> Self {
        let human: Vec<String> = opts
            .human_patterns
            .iter()
            .map(|p| p.to_lowercase())
            .collect();
        Prepared {
            opts: opts.clone(),
            human_needles: AsciiNeedles::new(&human),
            task_sections: opts
                .task_sections
                .as_ref()
                .map(|names| names.iter().map(|n| heading_words(n)).collect()),
        }
    }
}

/// The parser state's buffers between two files (all empty, capacity kept).
#[derive(Default)]
pub(super) struct Buffers {
    pub starts: Vec<usize>,
    pub items: Vec<ItemFrame>,
    pub headings: Vec<Heading>,
    pub metadata: String,
    pub prose: String,
    pub spare: Spare,
}

/// At most this many spare strings and line lists are kept: more are only ever live at once
/// in deeply nested or many-line items.
const SPARE_MAX: usize = 64;

/// Spare strings larger than this are let go, so one huge item does not keep its memory.
const SPARE_STRING_MAX: usize = 16 * 1024;

/// Emptied buffers of finished items, handed to the next ones.
#[derive(Default)]
pub(super) struct Spare {
    strings: Vec<String>,
    lines: Vec<Vec<(usize, String)>>,
    /// The own-text lines of a many-line item ([`State::finish_item`]).
    pub own: Vec<(usize, Option<bool>, String)>,
}

impl Spare {
    /// An empty string, with the capacity of an earlier one when there is one.
    pub fn string(&mut self) -> String {
        self.strings.pop().unwrap_or_default()
    }

    pub fn put_string(&mut self, mut s: String) {
        if s.capacity() > 0 && s.capacity() <= SPARE_STRING_MAX && self.strings.len() < SPARE_MAX {
            s.clear();
            self.strings.push(s);
        }
    }

    /// An empty list of an item's lines.
    pub fn lines(&mut self) -> Vec<(usize, String)> {
        self.lines.pop().unwrap_or_default()
    }

    /// Take back a list of an item's lines, and its strings.
    pub fn put_lines(&mut self, mut lines: Vec<(usize, String)>) {
        for (_, s) in lines.drain(..) {
            self.put_string(s);
        }
        if lines.capacity() > 0 && self.lines.len() < SPARE_MAX {
            self.lines.push(lines);
        }
    }
}

/// Parses story after story with one set of options, keeping its buffers in between.
pub struct StoryParser {
    prep: Prepared,
    bufs: Buffers,
    chunks: Vec<Chunk>,
    scratch: Scratch,
}

impl StoryParser {
    pub fn new(opts: &ParseOptions) -> Self {
        StoryParser {
            prep: Prepared::new(opts),
            bufs: Buffers::default(),
            chunks: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// What [`super::parse_story`] says of `text`.
    pub fn parse(&mut self, text: &str) -> ParsedStory {
        self.run(text, true)
    }

    /// The same, but with no `tasks` (its counts, statuses, references and human-validation
    /// texts are the same): what the scan keeps, without building the tasks.
    pub fn counts(&mut self, text: &str) -> ParsedStory {
        let mut out = self.run(text, false);
        // Only heading tasks (a second pass, for files without checkboxes) are built anyway.
        out.tasks = Vec::new();
        out
    }

    fn run(&mut self, text: &str, keep_tasks: bool) -> ParsedStory {
        let bufs = std::mem::take(&mut self.bufs);
        let mut state = State::new(text, &self.prep, keep_tasks, bufs);
        read_story(&mut state, text, &mut self.chunks, &mut self.scratch);
        let (out, bufs) = state.finish();
        self.bufs = bufs;
        with_heading_tasks(text, &self.prep.opts, out)
    }
}

/// A parser that read other files first (kept tasks and counts only, items of many lines,
/// nested lists, headings, front matter) says of `text` what a new one says (`expected`);
/// counting only, it says the same without the tasks.
#[cfg(test)]
pub(super) fn same_from_a_used_parser(text: &str, opts: &ParseOptions, expected: &ParsedStory) {
    let before = [
        "---\nstatus: x\n---\n# A\n\n## Tasks\n\n- [ ] manual test one\n  more\n  - [x] b\n\n  para\n",
        "# C\n\n1. [x] **one**\n   - [ ] `two`\n     - [ ] three\n2. [ ] four\n",
        // Last, so a file read after it would be in a dependency section if it stayed open.
        "# B\n\n- [ ] a\n        - [x] lazy\n        - [ ] lazy 2\n\n## Dependencies\n\nStory 1.2\n",
    ];
    let mut parser = StoryParser::new(opts);
    for t in before {
        parser.parse(t);
        parser.counts(t);
    }
    assert_eq!(
        &parser.parse(text),
        expected,
        "used parser differs on:\n{text}"
    );
    let counts = parser.counts(text);
    let without_tasks = ParsedStory {
        tasks: Vec::new(),
        ..expected.clone()
    };
    assert_eq!(counts, without_tasks, "counts differ on:\n{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_used_parser_forgets_the_last_file() {
        for text in [
            "Story 3.4 comes first.\n\n- [ ] a\n",
            "- [ ] a\n  b\n\nStatus: done\n",
            "",
        ] {
            let opts = ParseOptions::default();
            same_from_a_used_parser(text, &opts, &super::super::parse_story(text, &opts));
        }
    }
}
