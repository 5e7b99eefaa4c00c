//! Plain task lists read without the Markdown parser.
//!
//! Parsing the chunks that hold checkboxes was most of the scan's time, and nearly all of them
//! are lists of items (`- [ ] Task 1: …`, `  - [x] Subtask`) and short paragraphs with plain
//! text, code spans and `**strong**` text. [`feed`] reads such a chunk body line by line and
//! hands the parser's state the events the parser would give for it: per item, its start (at
//! its bullet's line), its checkbox, its own text (code spans as their content, emphasis
//! delimiters dropped), line breaks, and its end after its sub-items; paragraphs outside items
//! likewise.
//!
//! Only what is certainly plain is read so; anything else makes [`feed`] decline, before the
//! state is touched, and the body is parsed by the parser as before. Declined: a line that
//! starts anything but an item or paragraph text (tables, fences, quotes, HTML, headings,
//! thematic breaks, setext underlines); tabs and carriage returns; an item indented 4 or more
//! columns past its container; a paragraph after a blank line inside an item; an ordered item
//! that could not interrupt the paragraph above it; and, outside code spans, text that inline
//! markup may rewrite: `*` other than `**` runs that only open or only close, `_` other than
//! between letters or digits, `<`, `&`, `\`, `[`, `]`, `|`, and a backtick run not closed on
//! its line. The answers are the same either way (tests compare both on every fixture, on
//! generated lists and on real stories); only the time differs.

use pulldown_cmark::{Event, Tag, TagEnd};

use super::State;

/// What the parser would tell the state about a plain list, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// An item whose bullet's line starts at this byte of the file.
    Start(usize),
    /// A paragraph outside any item, starting at this byte of the file.
    Paragraph(usize),
    /// The item's checkbox.
    Marker(bool),
    /// Own text of the item: this byte range of the file.
    Text(usize, usize),
    /// A line break inside a paragraph, at this byte (the end of the line above).
    SoftBreak(usize),
    End,
    EndParagraph,
}

/// An item still open while reading: where its content starts, and its list's kind (the
/// bullet character, or `.`/`)` for ordered lists).
struct Open {
    content_col: usize,
    kind: u8,
}

/// Buffers of [`feed`], kept from call to call and file to file.
#[derive(Default)]
pub(super) struct Scratch {
    ops: Vec<Op>,
    open: Vec<Open>,
}

/// Read `body` (starting at byte `base` of the file) into `state` if it is a plain list.
/// Returns false, with `state` untouched, otherwise.
pub(super) fn feed(state: &mut State<'_>, body: &str, base: usize, scratch: &mut Scratch) -> bool {
    let Scratch { ops, open } = scratch;
    ops.clear();
    open.clear();
    if !read_into(body.as_bytes(), base, ops, open) {
        return false;
    }
    let src = state.src;
    for op in ops.iter() {
        match *op {
            Op::Start(at) => state.start(Tag::Item, at),
            Op::Marker(checked) => state.event(Event::TaskListMarker(checked), base..base),
            Op::Text(start, end) => state.text(&src[start..end]),
            Op::End => state.end(TagEnd::Item),
            Op::SoftBreak(at) => state.event(Event::SoftBreak, at..at + 1),
            Op::Paragraph(at) => state.start(Tag::Paragraph, at),
            Op::EndParagraph => state.end(TagEnd::Paragraph),
        }
    }
    true
}

/// The events of a plain list, or false when `body` is not certainly one.
#[cfg(test)]
pub(super) fn read(body: &[u8], base: usize, ops: &mut Vec<Op>) -> bool {
    read_into(body, base, ops, &mut Vec::new())
}

/// [`read`] with the stack of open items in `open` (empty, kept between calls).
fn read_into(body: &[u8], base: usize, ops: &mut Vec<Op>, open: &mut Vec<Open>) -> bool {
    // Whether the line above is text of a paragraph (an item's or not), which the next line
    // continues unless it is blank or an item interrupting it.
    let mut after_text = false;
    // Whether that paragraph is outside any item (and so has paragraph events).
    let mut in_paragraph = false;
    let mut at = 0;
    while at < body.len() {
        let end = memchr::memchr(b'\n', &body[at..]).map_or(body.len(), |i| at + i);
        let line = &body[at..end];
        let line_start = at;
        at = end + 1;
        if line.iter().any(|b| *b == b'\t' || *b == b'\r') {
            return false;
        }
        let n = line.iter().take_while(|b| **b == b' ').count();
        if n == line.len() {
            if std::mem::take(&mut in_paragraph) {
                ops.push(Op::EndParagraph);
            }
            after_text = false;
            continue;
        }
        let text_at = base + line_start + n;
        let Some(item) = item_line(&line[n..]) else {
            if !plain_start(&line[n..]) {
                return false;
            }
            if after_text {
                // The paragraph above goes on (indented or lazily): a soft break, then text.
                ops.push(Op::SoftBreak(base + line_start - 1));
            } else {
                // A paragraph after a blank line: outside any item, or declined.
                if open.first().is_some_and(|o| o.content_col <= n) || n > 3 {
                    return false;
                }
                ops.extend(open.drain(..).map(|_| Op::End));
                ops.push(Op::Paragraph(text_at));
                in_paragraph = true;
            }
            if !inline(&line[n..], text_at, ops) {
                return false;
            }
            after_text = true;
            continue;
        };
        if std::mem::take(&mut in_paragraph) {
            ops.push(Op::EndParagraph);
        }
        // Items not containing this line end here (their content starts further right).
        let mut outermost_closed: Option<u8> = None;
        while let Some(last) = open.last().filter(|o| o.content_col > n) {
            outermost_closed = Some(last.kind);
            open.pop();
            ops.push(Op::End);
        }
        let container_col = open.last().map_or(0, |o| o.content_col);
        if n - container_col > 3 {
            // Indented code, or a continuation line of the text above.
            return false;
        }
        let continues_list = outermost_closed == Some(item.kind);
        if !continues_list && after_text && item.number.is_some_and(|k| k != 1) {
            // `2.` cannot start a list in the middle of a paragraph: it is text there.
            return false;
        }
        ops.push(Op::Start(base + line_start));
        if let Some(checked) = item.checkbox {
            ops.push(Op::Marker(checked));
        }
        let text_at = n + item.text_at;
        if !inline(&line[text_at..], base + line_start + text_at, ops) {
            return false;
        }
        open.push(Open {
            content_col: n + item.content_at,
            kind: item.kind,
        });
        after_text = true;
    }
    if in_paragraph {
        ops.push(Op::EndParagraph);
    }
    ops.extend(open.iter().map(|_| Op::End));
    true
}

/// One list item line, after its indentation.
struct ItemLine {
    kind: u8,
    /// The number of an ordered item.
    number: Option<u32>,
    /// Where the item's content starts (after the marker and its spaces).
    content_at: usize,
    checkbox: Option<bool>,
    /// Where the item's own text starts (after the checkbox, if any).
    text_at: usize,
}

/// `- [ ] text`, `* text`, `12. [x] text`: a list item with one line of plain-starting text.
fn item_line(s: &[u8]) -> Option<ItemLine> {
    let first = *s.first()?;
    let (kind, number, marker_len) = if matches!(first, b'-' | b'*' | b'+') {
        (first, None, 1)
    } else {
        let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let delim = *s.get(digits).filter(|d| matches!(d, b'.' | b')'))?;
        let number = std::str::from_utf8(&s[..digits]).ok()?.parse().ok()?;
        (delim, Some(number), digits + 1)
    };
    let spaces = s[marker_len..].iter().take_while(|b| **b == b' ').count();
    // Five or more spaces after the marker make indented code; none make no item.
    if !(1..=4).contains(&spaces) {
        return None;
    }
    let content_at = marker_len + spaces;
    let content = &s[content_at..];
    let (checkbox, text_at) = match content {
        [b'[', c @ (b' ' | b'x' | b'X'), b']', b' ', ..] => (Some(*c != b' '), content_at + 4),
        _ => (None, content_at),
    };
    plain_start(&s[text_at..]).then_some(ItemLine {
        kind,
        number,
        content_at,
        checkbox,
        text_at,
    })
}

/// Text that starts no block of its own (nor interrupts a paragraph): a letter, a digit not
/// making a list marker, an opening bracket or quote, a non-ASCII character (every block
/// starts with ASCII), or one code-span backtick.
fn plain_start(text: &[u8]) -> bool {
    match text.first() {
        Some(b) if b.is_ascii_alphabetic() || !b.is_ascii() || matches!(b, b'(' | b'"' | b'\'') => {
            true
        }
        Some(b) if b.is_ascii_digit() => {
            let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
            let marker = matches!(text.get(digits), Some(b'.' | b')'))
                && text.get(digits + 1).is_none_or(|b| *b == b' ');
            !marker
        }
        Some(b'`') => !text.starts_with(b"```"),
        // Strong emphasis opening the text (`**Task 1:** …`), checked as such by `inline`.
        Some(b'*') => text.starts_with(b"**") && text.get(2).is_some_and(u8::is_ascii_alphanumeric),
        _ => false,
    }
}

/// The inline text of `text` (at byte `at` of the file) as the parser gives it: code spans as
/// their content, the rest as written. False when markup may rewrite it.
fn inline(text: &[u8], at: usize, ops: &mut Vec<Op>) -> bool {
    let mut piece = 0;
    let mut i = 0;
    // Inside `**…**`: strong emphasis whose delimiters the parser drops.
    let mut strong = false;
    while i < text.len() {
        match text[i] {
            b'*' => {
                let run = text[i..].iter().take_while(|b| **b == b'*').count();
                let prev = i.checked_sub(1).map(|p| text[p]);
                let next = text.get(i + run).copied();
                // Only `**` runs that can only open (after a space, before text) or only
                // close (after text, before a space, the end or punctuation after a letter),
                // alternating: the parser then pairs each opener with the next closer.
                let opens = prev.is_none_or(|p| p == b' ')
                    && next.is_some_and(|n| n.is_ascii_graphic() && n != b'*');
                let closes = prev.is_some_and(|p| p.is_ascii_graphic() && p != b'*')
                    && next.is_none_or(|n| {
                        n == b' '
                            || (n.is_ascii_punctuation()
                                && prev.is_some_and(|p| p.is_ascii_alphanumeric()))
                    });
                if run != 2 || (opens == closes) || opens == strong {
                    return false;
                }
                strong = opens;
                if piece < i {
                    ops.push(Op::Text(at + piece, at + i));
                }
                i += run;
                piece = i;
            }
            b'`' => {
                let run = text[i..].iter().take_while(|b| **b == b'`').count();
                // No closer on this line: the parser may find one on a later line.
                let Some(close) = closing_run(text, i + run, run) else {
                    return false;
                };
                if piece < i {
                    ops.push(Op::Text(at + piece, at + i));
                }
                let (mut s, mut e) = (i + run, close);
                // One space is stripped from each side of `` ` x ` `` (not from all-space).
                if e - s >= 2
                    && text[s] == b' '
                    && text[e - 1] == b' '
                    && text[s..e].iter().any(|b| *b != b' ')
                {
                    s += 1;
                    e -= 1;
                }
                if s < e {
                    ops.push(Op::Text(at + s, at + e));
                }
                i = close + run;
                piece = i;
            }
            b'_' => {
                // Between letters or digits `_` neither opens nor closes emphasis.
                let word = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
                if !(i > 0 && word(text.get(i - 1)) && word(text.get(i + 1))) {
                    return false;
                }
                i += 1;
            }
            b'<' | b'&' | b'\\' | b'[' | b']' | b'|' => return false,
            _ => i += 1,
        }
    }
    if piece < text.len() {
        ops.push(Op::Text(at + piece, at + text.len()));
    }
    // An opener left unpaired is text.
    !strong
}

/// Where the run of exactly `len` backticks closing a code span opened before `from` starts.
fn closing_run(text: &[u8], from: usize, len: usize) -> Option<usize> {
    let mut i = from;
    while let Some(j) = memchr::memchr(b'`', &text[i..]).map(|j| i + j) {
        let run = text[j..].iter().take_while(|b| **b == b'`').count();
        if run == len {
            return Some(j);
        }
        i = j + run;
    }
    None
}
