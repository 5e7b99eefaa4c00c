//! Line and word helpers of the story parser: label matching, checkbox continuation lines,
//! heading names, statuses. All work on bounded prefixes or in one pass, without copies where
//! they can.

/// Heading text reduced to lowercase letters and digits, leading numbering dropped, so
/// `## 3. Tasks/Subtasks:` and `Tasks / Subtasks` compare equal.
pub(crate) fn heading_words(text: &str) -> String {
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

/// Heading text equal to `words` once reduced as [`heading_words`] does (`words` is lowercase
/// letters and digits, not starting with a digit): the same answer, without building the string.
pub(super) fn heading_words_are(text: &str, words: &str) -> bool {
    if !text.is_ascii() {
        return heading_words(text) == words;
    }
    let mut kept = text
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
        .skip_while(u8::is_ascii_digit);
    words.bytes().all(|w| kept.next() == Some(w)) && kept.next().is_none()
}

/// Lowercase ASCII needles searched for in text, ignoring ASCII case: what
/// `hay.to_ascii_lowercase().contains(needle)` answers for any of them, without the copy and
/// with one look-up per byte of the text (searching for each needle in turn, with a searcher
/// or by comparing at every offset, was a tenth of the scan).
pub(super) struct AsciiNeedles {
    needles: Vec<Vec<u8>>,
    /// Per byte, the needles (one bit each, by index; the 64th bit stands for all the rest)
    /// starting with it in either case.
    first: [u64; 256],
}

impl AsciiNeedles {
    /// From needles already lowercase; empty ones are dropped (as the callers ignore them).
    pub(super) fn new<S: AsRef<str>>(needles: &[S]) -> Self {
        let mut first = [0u64; 256];
        let needles: Vec<Vec<u8>> = needles
            .iter()
            .map(|n| n.as_ref().as_bytes().to_vec())
            .filter(|n| !n.is_empty())
            .collect();
        for (i, n) in needles.iter().enumerate() {
            let bit = 1u64 << i.min(63);
            first[usize::from(n[0])] |= bit;
            first[usize::from(n[0].to_ascii_uppercase())] |= bit;
        }
        AsciiNeedles { needles, first }
    }

    /// Whether ASCII-lowercased `hay` contains one of the needles, compared byte by byte (so
    /// a non-ASCII needle is found in text holding it, as `str::contains` finds it).
    pub(super) fn any_in(&self, hay: &[u8]) -> bool {
        let found_at = |i: usize, n: &Vec<u8>| {
            hay.len() - i >= n.len()
                && n.iter()
                    .zip(&hay[i..])
                    .all(|(n, h)| *n == h.to_ascii_lowercase())
        };
        hay.iter().enumerate().any(|(i, &b)| {
            let mut bits = self.first[usize::from(b)];
            while bits != 0 {
                let k = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let hit = if k < 63 {
                    found_at(i, &self.needles[k])
                } else {
                    self.needles[63..].iter().any(|n| found_at(i, n))
                };
                if hit {
                    return true;
                }
            }
            false
        })
    }
}

/// Whether `text` lowercased contains one of the (lowercase) needles of `searcher`. ASCII text
/// is compared in place; other text is lowercased first, as Unicode lowercasing can map a
/// non-ASCII character to ASCII (the Kelvin sign to `k`).
pub(super) fn lowercase_contains_any(text: &str, searcher: &AsciiNeedles) -> bool {
    if text.is_ascii() {
        searcher.any_in(text.as_bytes())
    } else {
        searcher.any_in(text.to_lowercase().as_bytes())
    }
}

/// Width of the whitespace at `offset` (tabs count 4): where an item's bullet sits.
pub(super) fn indent_at(src: &str, offset: usize) -> usize {
    let rest = src.get(offset..).unwrap_or("");
    rest.bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .map(|b| if b == b'\t' { 4 } else { 1 })
        .sum()
}

/// Bytes from `offset` to the end of its line.
pub(super) fn line_len(src: &str, offset: usize) -> usize {
    let rest = src.as_bytes().get(offset..).unwrap_or_default();
    memchr::memchr(b'\n', rest).unwrap_or(rest.len())
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub(super) fn truncate_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// How many leading bytes of a line are examined for a label: labels are short, and looking at
/// a bounded prefix keeps a 50 MB line linear.
const LABEL_WINDOW: usize = 64;

/// If `line` starts with one of `labels` (case-insensitive) followed by `:`, the rest after it.
pub(super) fn labelled_value<'a>(line: &'a str, labels: &[&str]) -> Option<&'a str> {
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
pub(super) fn lazy_checkbox(line: &str) -> Option<(bool, &str)> {
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
pub(super) fn clean_status(value: &str) -> Option<String> {
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
