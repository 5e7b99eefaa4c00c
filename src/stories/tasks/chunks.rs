//! Which parts of a story the Markdown parser must see.
//!
//! Most of a real story (dev notes, file lists, change logs, references) holds no task, no
//! status and no dependency, yet parsing it was half of the scan's time. A story is cut into
//! chunks at ATX headings that start at column 0 after a blank line: such a heading closes
//! every open block (lists, quotes, paragraphs, tables, indented code) except a fenced code
//! block or an HTML block of types 1–5 opened at the top level, and front matter, which the
//! line scan below tracks exactly. Parsing a chunk alone then gives the events the whole
//! document gives for it. A chunk whose body cannot hold anything the parser's state reads
//! (see [`body_needs_parse`]) is skipped after its heading line.
//!
//! Whenever the line scan cannot be sure (a fence or HTML block indented 1–3 spaces, which may
//! or may not sit in a list item; a link reference definition, which reaches across chunks; a
//! bare carriage return; front matter holding fence-like lines), [`split`] gives up and the
//! whole file is parsed as before. The answers are the same either way; only the time differs.

use memchr::memmem;

/// One chunk: `start..heading_end` is its heading line (empty for the first chunk, which is
/// always parsed whole), `heading_end..end` its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chunk {
    pub start: usize,
    pub heading_end: usize,
    pub end: usize,
    /// What [`body_needs_parse`] finds in the body's lines, worked out during the cut (so the
    /// file is scanned once): a heading, markup, a hidden checkbox or a dependency label…
    lines_need_parse: bool,
    /// … and a status label.
    status_label: bool,
}

impl Chunk {
    fn new(start: usize, heading_end: usize, end: usize) -> Self {
        Chunk {
            start,
            heading_end,
            end,
            lines_need_parse: false,
            status_label: false,
        }
    }

    /// [`body_needs_parse`] of this chunk's body in `text`, from what the cut found.
    pub fn body_needs_parse(&self, text: &str, status_unknown: bool) -> bool {
        has_checkbox(&text.as_bytes()[self.heading_end..self.end])
            || self.lines_need_parse
            || (status_unknown && self.status_label)
    }

    /// Add what one Markdown line of the body shows (`prev_blank`: the body's line above).
    fn see(&mut self, line: &[u8], prev_blank: bool) {
        if self.lines_need_parse {
            return;
        }
        let (label, status) = labels_at_start(line);
        self.lines_need_parse =
            label || heading_or_markup(line, prev_blank) || hidden_checkbox(line);
        self.status_label = self.status_label || status;
    }
}

/// Where the top-level block structure stands at the start of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Normal,
    /// Inside a top-level fenced code block: its character and length.
    Fence(u8, usize),
    /// Inside a top-level HTML block of type 1–5: the text that ends it.
    Html(&'static [u8]),
    /// After a line starting with `<` that may begin an HTML block of type 6 or 7, which a
    /// blank line ends.
    HtmlUntilBlank,
}

/// What one line does to the top-level block structure.
enum Step {
    /// The line is content of an exact fence or HTML block: nothing in it is read.
    Opaque(Block),
    /// The line is Markdown the parser reads (prose, lists, tables, …).
    Markdown(Block),
    /// The line scan cannot tell: parse the whole file.
    Unsure,
}

/// Lines, each without its `\n` (a `\r` before it stays), with the offset of the next line.
fn lines(text: &[u8]) -> impl Iterator<Item = (&[u8], usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= text.len() {
            return None;
        }
        let rest = &text[at..];
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], at + i + 1),
            None => (rest, text.len()),
        };
        at = next;
        Some((line, next))
    })
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// Leading spaces, or `None` if the indentation holds a tab (its width depends on the column).
fn indent(line: &[u8]) -> Option<usize> {
    let n = line
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    (!line[..n].contains(&b'\t')).then_some(n)
}

/// A fence opener or closer's character and length, and whether anything follows it.
fn fence(s: &[u8]) -> Option<(u8, usize, &[u8])> {
    let c = *s.first()?;
    if c != b'`' && c != b'~' {
        return None;
    }
    let n = s.iter().take_while(|b| **b == c).count();
    (n >= 3).then(|| (c, n, &s[n..]))
}

/// The end marker of an HTML block of type 1–5 starting with `s`, if it starts one.
fn html_1_to_5(s: &[u8]) -> Option<&'static [u8]> {
    if s.starts_with(b"<!--") {
        return Some(b"-->");
    }
    if s.starts_with(b"<?") {
        return Some(b"?>");
    }
    if s.starts_with(b"<![CDATA[") {
        return Some(b"]]>");
    }
    if s.starts_with(b"<!") && s.get(2).is_some_and(u8::is_ascii_alphabetic) {
        return Some(b">");
    }
    for (tag, end) in [
        (&b"<script"[..], &b"</script>"[..]),
        (b"<pre", b"</pre>"),
        (b"<style", b"</style>"),
        (b"<textarea", b"</textarea>"),
    ] {
        if s.len() >= tag.len()
            && s[..tag.len()].eq_ignore_ascii_case(tag)
            && s.get(tag.len())
                .is_none_or(|b| b.is_ascii_whitespace() || *b == b'>')
        {
            return Some(end);
        }
    }
    None
}

fn contains(hay: &[u8], needle: &[u8], ignore_case: bool) -> bool {
    // Case only matters for letters: `-->`, `?>`, `]]>`, `>` and `]:` are searched for exactly,
    // on every line of an HTML comment: by their first byte, as building a substring searcher
    // per line cost more than the search.
    if !ignore_case || !needle.iter().any(u8::is_ascii_alphabetic) {
        let Some((&first, rest)) = needle.split_first() else {
            return true;
        };
        return memchr::memchr_iter(first, hay).any(|i| hay[i + 1..].starts_with(rest));
    }
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// How `line` moves the top-level block structure on from `block`.
fn step(block: Block, line: &[u8]) -> Step {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match block {
        Block::Fence(c, n) => {
            let closes = indent(line).is_some_and(|i| i <= 3)
                && fence(line.trim_ascii_start())
                    .is_some_and(|(c2, n2, rest)| c2 == c && n2 >= n && is_blank(rest));
            Step::Opaque(if closes { Block::Normal } else { block })
        }
        Block::Html(end) => Step::Opaque(if contains(line, end, true) {
            Block::Normal
        } else {
            block
        }),
        Block::HtmlUntilBlank if is_blank(line) => Step::Markdown(Block::Normal),
        Block::HtmlUntilBlank | Block::Normal => {
            let Some(ind) = indent(line) else {
                // A tab in the indentation: fine unless the line could open something.
                let s = line.trim_ascii_start();
                return if fence(s).is_some() || s.starts_with(b"<") {
                    Step::Unsure
                } else {
                    Step::Markdown(block)
                };
            };
            let s = &line[ind..];
            let fenced = fence(s).filter(|(c, _, rest)| *c == b'~' || !rest.contains(&b'`'));
            let html = s.starts_with(b"<");
            if ind >= 4 || !(fenced.is_some() || html) {
                // Indented code or a container's content: never a top-level block.
                return Step::Markdown(block);
            }
            if ind > 0 || block == Block::HtmlUntilBlank {
                // In a list item, or at the top level? Inside an HTML block, or not?
                return if fenced.is_some() || html_1_to_5(s).is_some() {
                    Step::Unsure
                } else {
                    Step::Markdown(Block::HtmlUntilBlank)
                };
            }
            if let Some((c, n, _)) = fenced {
                return Step::Opaque(Block::Fence(c, n));
            }
            match html_1_to_5(s) {
                // Ends on its own line (`<!-- x -->`) or runs on.
                Some(end) if contains(&s[2..], end, true) => Step::Opaque(Block::Normal),
                Some(end) => Step::Opaque(Block::Html(end)),
                None => Step::Markdown(Block::HtmlUntilBlank),
            }
        }
    }
}

/// An ATX heading line at column 0.
fn is_atx_heading(line: &[u8]) -> bool {
    let hashes = line.iter().take_while(|b| **b == b'#').count();
    (1..=6).contains(&hashes) && line.get(hashes).is_none_or(|b| b.is_ascii_whitespace())
}

/// An ATX heading line (as [`split`] cuts at) whose text has no inline markup and no closing
/// `#` sequence: its level and its text, as the parser reads it (up to whitespace at its ends,
/// which the state trims). Non-ASCII characters (`✅`, `—`, emoji) are text, as no delimiter
/// that Unicode punctuation or spaces could flank is allowed; so is `&` that starts no entity
/// (`Design & Implementation`; an entity needs a letter or `#` right after it).
pub(super) fn plain_heading(line: &str) -> Option<(pulldown_cmark::HeadingLevel, &str)> {
    use pulldown_cmark::HeadingLevel::*;
    let bytes = line.as_bytes();
    let hashes = bytes.iter().take_while(|b| **b == b'#').count();
    let level = [H1, H2, H3, H4, H5, H6]
        .get(hashes.checked_sub(1)?)
        .copied()?;
    let rest = &line.as_bytes()[hashes..];
    let plain = rest.iter().enumerate().all(|(i, &b)| {
        b.is_ascii_alphanumeric()
            || b" \t\r\n,.:;/()-+=?'\"%@$^{}".contains(&b)
            || !b.is_ascii()
            || (b == b'&'
                && rest
                    .get(i + 1)
                    .is_none_or(|n| !(n.is_ascii_alphanumeric() || *n == b'#')))
    });
    plain.then(|| (level, line[hashes..].trim_ascii()))
}

/// A line that may define a link reference (`[label]: url`, possibly in a list or quote):
/// those change how `[label]` reads anywhere in the file.
fn may_define_link(line: &[u8]) -> bool {
    let s = strip_container_marks(line);
    s.first() == Some(&b'[') && contains(s, b"]:", false)
}

/// `line` without leading whitespace, quote marks and list markers.
fn strip_container_marks(line: &[u8]) -> &[u8] {
    let n = line
        .iter()
        .take_while(|b| {
            matches!(
                b,
                b' ' | b'\t' | b'>' | b'-' | b'*' | b'+' | b'.' | b')' | b'0'..=b'9'
            )
        })
        .count();
    &line[n..]
}

/// Cut `text` into chunks, or `None` when it must be parsed whole.
#[cfg(test)]
pub(super) fn split(text: &str) -> Option<Vec<Chunk>> {
    let mut chunks = Vec::new();
    split_into(text, &mut chunks).then_some(chunks)
}

/// [`split`] into `chunks` (a buffer kept between files): true when `text` could be cut.
pub(super) fn split_into(text: &str, chunks: &mut Vec<Chunk>) -> bool {
    chunks.clear();
    cut(text, chunks).is_some()
}

fn cut(text: &str, chunks: &mut Vec<Chunk>) -> Option<()> {
    let bytes = text.as_bytes();
    // A bare `\r` ends a line for the parser, not for this scan.
    if memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n')) {
        return None;
    }
    // Front matter: no cut before its closing line, and nothing in it that looks like a block.
    let mut front_end = 0;
    let mut in_front = bytes.starts_with(b"---\n") || bytes.starts_with(b"---\r\n");
    chunks.push(Chunk::new(0, 0, bytes.len()));
    let mut block = Block::Normal;
    let mut prev_blank = false;
    // Whether the line above is blank as a lone body sees it (a heading line starts it anew).
    let mut body_prev_blank = true;
    let mut at = 0;
    for (i, (line, next)) in lines(bytes).enumerate() {
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
        if in_front {
            if may_define_link(trimmed) {
                return None;
            }
            if i > 0 && (trimmed == b"---" || trimmed == b"...") {
                in_front = false;
                front_end = next;
            } else if i > 0 {
                let s = trimmed.trim_ascii_start();
                if fence(s).is_some() || s.starts_with(b"<") {
                    return None;
                }
            }
            prev_blank = false;
            at = next;
            continue;
        }
        let cut = block == Block::Normal && prev_blank && at > front_end && is_atx_heading(trimmed);
        if cut {
            if let Some(last) = chunks.last_mut() {
                last.end = at;
            }
            chunks.push(Chunk::new(at, next, bytes.len()));
        }
        block = match step(block, line) {
            Step::Unsure => return None,
            // Inside fenced code or an HTML block, `[x]: y` defines nothing.
            Step::Opaque(b) => b,
            Step::Markdown(_) if may_define_link(trimmed) => return None,
            Step::Markdown(b) => {
                if let (false, Some(chunk)) = (cut, chunks.last_mut().filter(|c| c.start > 0)) {
                    chunk.see(trimmed, body_prev_blank);
                }
                b
            }
        };
        prev_blank = is_blank(trimmed);
        body_prev_blank = cut || prev_blank;
        at = next;
    }
    if in_front {
        return None;
    }
    Some(())
}

/// Labels the parser's state reads from a prose line: dependency labels always, `status` while
/// the status is unknown. Only their start matters: [`super::text::labelled_value`] wants the
/// label at the start of the line's text.
const DEPENDENCY_WORDS: &[&[u8]] = &[b"depend", b"prerequisite", b"blocked"];
const STATUS_WORD: &[u8] = b"status";

/// Characters inline markup may drop from a line's text (emphasis, strikethrough, code spans,
/// escapes, table pipes).
fn is_joining_markup(b: u8) -> bool {
    matches!(b, b'*' | b'_' | b'~' | b'`' | b'\\' | b'|')
}

/// Whether the body of a chunk (starting at the top level, after its heading line) may hold
/// anything the parser's state reads when the state itself does not already ask for the body
/// (a dependency section, a pending `## Status` heading): a heading, a checkbox, a dependency
/// label, or, while `status_unknown`, a status label. Fenced code and HTML blocks are not
/// looked into. Conservative: markup that could join characters is skipped when matching, and
/// links, inline HTML and entities, which drop or rewrite text, make the body count.
///
/// The scan uses [`Chunk::body_needs_parse`], which answers the same from what [`split`] found.
#[cfg(test)]
pub(super) fn body_needs_parse(body: &str, status_unknown: bool) -> bool {
    let bytes = body.as_bytes();
    // Literal checkboxes are the common reason: found before any other work.
    if has_checkbox(bytes) {
        return true;
    }
    let mut block = Block::Normal;
    let mut prev_blank = true;
    for (line, _) in lines(bytes) {
        let step = step(block, line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match step {
            Step::Unsure => return true,
            Step::Opaque(b) => block = b,
            Step::Markdown(b) => {
                block = b;
                if heading_or_markup(line, prev_blank)
                    || hidden_checkbox(line)
                    || label_at_start(line, status_unknown)
                {
                    return true;
                }
            }
        }
        prev_blank = is_blank(line);
    }
    false
}

/// A literal checkbox, `[ ]` or `[x]`, anywhere (in code too).
fn has_checkbox(bytes: &[u8]) -> bool {
    // Searchers built once per process: building one costs more than a short search.
    static FINDERS: std::sync::OnceLock<[memmem::Finder<'static>; 2]> = std::sync::OnceLock::new();
    let finders =
        FINDERS.get_or_init(|| [memmem::Finder::new(b"[ ]"), memmem::Finder::new(b"[x]")]);
    finders.iter().any(|f| f.find(bytes).is_some())
}

/// A checkbox once joining markup is dropped (`[*x*]`), ignoring case.
fn hidden_checkbox(line: &[u8]) -> bool {
    memchr::memchr_iter(b'[', line).any(|i| {
        let mut rest = line[i + 1..].iter().filter(|b| !is_joining_markup(**b));
        matches!(rest.next(), Some(b' ' | b'\t' | 0x0b | 0x0c | b'x' | b'X'))
            && rest.next() == Some(&b']')
    })
}

/// A label where a prose line's text can start: the line's start or a table cell's, after
/// container marks, list markers and markup (as `labelled_value` skips `*`, `_`, `-`).
/// Anything non-ASCII there (a no-break space the text's trim would drop) counts too.
#[cfg(test)]
fn label_at_start(line: &[u8], status_unknown: bool) -> bool {
    let (any, status) = labels_at_start(line);
    any || (status_unknown && status)
}

/// [`label_at_start`]'s two answers: a dependency label or non-ASCII start, and a status label.
fn labels_at_start(line: &[u8]) -> (bool, bool) {
    let mut status = false;
    let starts = std::iter::once(0).chain(memchr::memchr_iter(b'|', line).map(|i| i + 1));
    for start in starts {
        let skip = line[start..]
            .iter()
            .take_while(|b| {
                // `\x0b` too: the text's trim drops it, `is_ascii_whitespace` does not.
                b.is_ascii_whitespace()
                    || **b == 0x0b
                    || is_joining_markup(**b)
                    || matches!(b, b'>' | b'-' | b'+' | b'.' | b')' | b'0'..=b'9')
            })
            .count();
        let rest = &line[start + skip..];
        if rest.first().is_some_and(|b| !b.is_ascii()) {
            return (true, status);
        }
        let word_at = |w: &[u8]| {
            let mut text = rest.iter().filter(|b| !is_joining_markup(**b));
            w.iter()
                .all(|c| text.next().is_some_and(|b| b.to_ascii_lowercase() == *c))
        };
        if DEPENDENCY_WORDS.iter().any(|w| word_at(w)) {
            return (true, status);
        }
        status = status || word_at(STATUS_WORD);
    }
    (false, status)
}

/// A heading (ATX anywhere, in a list item or quote too; a setext underline after text), or
/// inline markup that drops or rewrites text: links and images (`](`), inline HTML and
/// autolinks (`<`), entities (`&name;`, `&#…;`).
fn heading_or_markup(line: &[u8], prev_blank: bool) -> bool {
    let s = line.trim_ascii_start();
    if s.is_empty() {
        return false;
    }
    if strip_container_marks(s).first() == Some(&b'#') {
        return true;
    }
    let underline = s.trim_ascii_end();
    if !prev_blank && (underline.iter().all(|b| *b == b'=') || underline.iter().all(|b| *b == b'-'))
    {
        return true;
    }
    memchr::memchr(b'<', s).is_some()
        || memchr::memchr_iter(b']', s).any(|i| s.get(i + 1) == Some(&b'('))
        || memchr::memchr_iter(b'&', s).any(|i| {
            s.get(i + 1)
                .is_some_and(|b| *b == b'#' || b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    /// [`super::plain_heading`] says what the parser says of the heading line, when it says.
    #[test]
    fn plain_headings_read_as_the_parser_reads_them() {
        use pulldown_cmark::{Event, Parser, Tag};
        let lines = [
            ("## Design & Implementation\n", true),
            ("### Testing (BLOCKING) ✅ COMPLETE\n", true),
            ("#### 🟢 LOW Priority — done\u{a0}\n", true),
            ("# a &\n", true),
            ("# a &&& b\n", true),
            ("# Tom & Jerry\r\n", true),
            ("## x &amp; y\n", false),
            ("## x &#38; y\n", false),
            ("## x &AMP y\n", false),
            ("## `code` & x\n", false),
            ("## *a* ✅\n", false),
            ("## a ## \n", false),
            ("####### seven\n", false),
        ];
        for (line, plain) in lines {
            let found = super::plain_heading(line);
            assert_eq!(found.is_some(), plain, "{line:?}");
            let Some((level, words)) = found else {
                continue;
            };
            let (mut parsed_level, mut text) = (None, String::new());
            for event in Parser::new_ext(line, super::super::PARSE_OPTIONS) {
                match event {
                    Event::Start(Tag::Heading { level, .. }) => parsed_level = Some(level),
                    Event::Text(t) | Event::Code(t) => text.push_str(&t),
                    _ => {}
                }
            }
            assert_eq!(parsed_level, Some(level), "{line:?}");
            assert_eq!(text.trim(), words.trim(), "{line:?}");
        }
    }

    /// [`super::contains`] answers as a search of every window does.
    #[test]
    fn contains_agrees_with_windows() {
        let hays: [&[u8]; 6] = [b"", b"-", b"a -- b -> c", b"x-->", b"--->", b"<A></SCRIPT>"];
        let needles: [&[u8]; 5] = [b"-->", b">", b"]:", b"</script>", b"?>"];
        for hay in hays {
            for needle in needles {
                for ignore_case in [false, true] {
                    let windows = hay.windows(needle.len()).any(|w| {
                        if ignore_case {
                            w.eq_ignore_ascii_case(needle)
                        } else {
                            w == needle
                        }
                    });
                    assert_eq!(super::contains(hay, needle, ignore_case), windows);
                }
            }
        }
    }
}
