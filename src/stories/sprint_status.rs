//! `sprint-status.yaml`: read the `development_status:` map and rewrite one value in place.
//!
//! No YAML library: the file is a flat map humans edit, with comments and layout to keep, so a
//! line-level reader that touches only the bytes of one value is both enough and safer.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::deps::KeyIndex;

/// File names tried, in order, in the artifacts folder and then its parent.
pub const SPRINT_STATUS_FILES: &[&str] = &["sprint-status.yaml", "sprint-status.yml"];

/// The sprint-status file for an artifacts folder: in it, or in its parent (the folder holding
/// `stories/`).
pub fn find_sprint_status(artifacts_dir: &Path) -> Option<PathBuf> {
    let parent = artifacts_dir.parent();
    std::iter::once(artifacts_dir)
        .chain(parent)
        .flat_map(|dir| SPRINT_STATUS_FILES.iter().map(move |f| dir.join(f)))
        .find(|p| p.is_file())
}

/// One `key: value` entry of `development_status:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) value: String,
    /// Byte range of the value as written (inside its quotes, if quoted).
    pub(super) value_range: Range<usize>,
}

/// `key → status` from the `development_status:` map. Comments, blank lines and nested maps
/// are ignored; `done# comment` and `"done"` both read as `done`.
pub fn read_statuses(text: &str) -> BTreeMap<String, String> {
    entries(text)
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

/// `text` with `key`'s value replaced by `status`, every other byte (comments, spacing, line
/// endings, the comment after the value) unchanged. `None` when the key is absent.
pub fn set_status(text: &str, key: &str, status: &str) -> Option<String> {
    let entry = entries(text).into_iter().find(|e| e.key == key)?;
    let mut out = String::with_capacity(text.len() + status.len());
    out.push_str(&text[..entry.value_range.start]);
    out.push_str(status);
    out.push_str(&text[entry.value_range.end..]);
    Some(out)
}

/// The sprint-status key a story file belongs to: its exact key, else the same key normalised
/// or by unambiguous prefix either way (`1-2` ↔ `1-2-user-login`, `story-1.2-x` ↔ `1-2-x`).
pub fn sprint_key_for<'a>(
    statuses: &'a BTreeMap<String, String>,
    index: &KeyIndex,
    story_key: &str,
) -> Option<&'a str> {
    if let Some((k, _)) = statuses.get_key_value(story_key) {
        return Some(k.as_str());
    }
    // No tracker: nothing to look up (the index's normalising would cost per story).
    if statuses.is_empty() {
        return None;
    }
    let found = index.lookup_ref(story_key).ok()?;
    statuses.get_key_value(&found).map(|(k, _)| k.as_str())
}

/// All entries of the `development_status:` block, with where each value sits.
pub(super) fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut in_block = false;
    // Entries sit at one indentation; deeper lines belong to nested values and are skipped.
    let mut entry_indent: Option<usize> = None;
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let mut line_start = offset;
        offset += raw.len();
        // A byte-order mark (editors on Windows write one) is not indentation.
        let raw = match raw.strip_prefix('\u{feff}') {
            Some(rest) if line_start == 0 => {
                line_start = '\u{feff}'.len_utf8();
                rest
            }
            _ => raw,
        };
        let line = raw.trim_end_matches(['\n', '\r']);
        let content = line.trim_start_matches([' ', '\t']);
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if indent == 0 {
            in_block = content
                .strip_prefix("development_status")
                .map(|r| r.trim_start())
                .is_some_and(|r| r.starts_with(':') && strip_comment(&r[1..]).trim().is_empty());
            entry_indent = None;
            continue;
        }
        if !in_block || *entry_indent.get_or_insert(indent) != indent {
            continue;
        }
        if let Some(entry) = parse_entry(content, line_start + indent) {
            out.push(entry);
        }
    }
    out
}

/// `key: value  # comment` at byte `base` of the file.
fn parse_entry(content: &str, base: usize) -> Option<Entry> {
    let (key, after_key) =
        if let Some(quote) = content.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let close = content[1..].find(quote)? + 1;
            (&content[1..close], &content[close + 1..])
        } else {
            let colon = content.find(':')?;
            (content[..colon].trim_end(), &content[colon..])
        };
    let after_colon = after_key.trim_start().strip_prefix(':')?;
    let value_offset = content.len() - after_colon.len();
    let lead = after_colon.len() - after_colon.trim_start().len();
    let value_part = &after_colon[lead..];
    let start = value_offset + lead;
    let (value, range) = match value_part.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let close = value_part[1..].find(q)? + 1;
            (&value_part[1..close], start + 1..start + close)
        }
        _ => {
            let v = strip_comment(value_part).trim_end();
            (v, start..start + v.len())
        }
    };
    if key.is_empty() || value.is_empty() {
        return None;
    }
    Some(Entry {
        key: key.to_string(),
        value: value.to_string(),
        value_range: base + range.start..base + range.end,
    })
}

/// Everything before `#`: real files write `done# comment` and mean `done`.
fn strip_comment(s: &str) -> &str {
    s.split('#').next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# generated by sm agent
project: demo
development_status:
  # Epic 1
  epic-1: in-progress   # started
  1-1-setup: done
  1-2-user-login: review# waiting on Bob

  '1-3-quoted': \"ready-for-dev\"  # c
  1-4-empty:
  epic-1-retrospective: optional
    nested: ignored
other_map:
  9-9: done
";

    #[test]
    fn reads_statuses() {
        let s = read_statuses(SAMPLE);
        let expected: BTreeMap<String, String> = [
            ("epic-1", "in-progress"),
            ("1-1-setup", "done"),
            ("1-2-user-login", "review"),
            ("1-3-quoted", "ready-for-dev"),
            ("epic-1-retrospective", "optional"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(s, expected);
    }

    #[test]
    fn no_block_no_statuses() {
        assert!(read_statuses("project: x\n").is_empty());
        assert!(read_statuses("").is_empty());
        assert!(read_statuses("development_status: {}\n  a: b\n").is_empty());
    }

    #[test]
    fn set_status_keeps_everything_else() {
        let out = set_status(SAMPLE, "1-2-user-login", "done").unwrap();
        assert_eq!(out, SAMPLE.replace("review# waiting", "done# waiting"));
        let out = set_status(SAMPLE, "epic-1", "done").unwrap();
        assert_eq!(
            out,
            SAMPLE.replace("in-progress   # started", "done   # started")
        );
        let out = set_status(SAMPLE, "1-3-quoted", "done").unwrap();
        assert_eq!(out, SAMPLE.replace("\"ready-for-dev\"", "\"done\""));
        assert_eq!(read_statuses(&out)["1-3-quoted"], "done");
        assert_eq!(set_status(SAMPLE, "9-9", "done"), None);
        assert_eq!(set_status(SAMPLE, "1-4-empty", "done"), None);
    }

    #[test]
    fn set_status_with_crlf() {
        let text = "development_status:\r\n  1-1: backlog\r\n  1-2: done\r\n";
        let out = set_status(text, "1-1", "in-progress").unwrap();
        assert_eq!(
            out,
            "development_status:\r\n  1-1: in-progress\r\n  1-2: done\r\n"
        );
    }

    #[test]
    fn story_keys_match_sprint_keys() {
        let statuses = read_statuses(SAMPLE);
        let keys: Vec<&String> = statuses.keys().collect();
        let index = KeyIndex::new(&keys);
        assert_eq!(
            sprint_key_for(&statuses, &index, "1-1-setup"),
            Some("1-1-setup")
        );
        assert_eq!(
            sprint_key_for(&statuses, &index, "1-2"),
            Some("1-2-user-login")
        );
        assert_eq!(
            sprint_key_for(&statuses, &index, "story-1.2"),
            Some("1-2-user-login")
        );
        assert_eq!(
            sprint_key_for(&statuses, &index, "1-1-renamed-slug"),
            Some("1-1-setup")
        );
        assert_eq!(sprint_key_for(&statuses, &index, "7-7"), None);
    }

    #[test]
    fn finds_file_in_dir_or_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let stories = tmp.path().join("stories");
        std::fs::create_dir(&stories).unwrap();
        assert_eq!(find_sprint_status(&stories), None);
        std::fs::write(tmp.path().join("sprint-status.yaml"), "x").unwrap();
        assert_eq!(
            find_sprint_status(&stories),
            Some(tmp.path().join("sprint-status.yaml"))
        );
        std::fs::write(stories.join("sprint-status.yaml"), "x").unwrap();
        assert_eq!(
            find_sprint_status(&stories),
            Some(stories.join("sprint-status.yaml"))
        );
    }
}
