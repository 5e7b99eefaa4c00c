//! Story references in prose and front matter: `Story 6.5`, `6-5`, `story-4.1.md` → `6-5`.

use crate::stories::deps::normalize_key;

/// Find story references in `text` and push them, normalised (`Story 6.5` → `6-5`).
///
/// Without `lenient`, a dotted number (`6.5`) counts only after the word "story"/"stories",
/// so that "Node 18.2" in a prerequisites section is not a story; dashed ones (`6-5`) always do.
pub(super) fn extract_refs(text: &str, lenient: bool, out: &mut Vec<String>) {
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
pub(super) fn parse_ref(word: &str, story_context: bool) -> Option<String> {
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
