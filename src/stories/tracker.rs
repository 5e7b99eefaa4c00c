//! The sprint tracker (`sprint-status.yaml`) as git-teleos writes it.
//!
//! Who writes it: in parallel mode git-teleos is the tracker's only writer. Agents editing
//! neighbouring lines of one file on different branches make the in-memory merges conflict
//! although their work never overlaps, so each story's value is set by git-teleos in the commit
//! that merges the story into the integration branch (`batch::parallel`), and an agent's own
//! edit of the file is dropped there (`git::merge`). Sequential mode keeps the agent editing its
//! line: one agent at a time cannot conflict with another, and the story stays one commit.
//! `--no-tracker` / `teleos.updateTracker=false` leaves the file exactly as it was.
//!
//! The writer is a pure text transform: one key's value changes, every other byte (comments,
//! blank lines, order, quoting, line endings, the comment after the value) stays as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::deps::KeyIndex;
use super::sprint_status::{entries, find_sprint_status, read_statuses, sprint_key_for};

/// Who writes the tracker during a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerMode {
    /// The agent sets its own story's value (sequential mode).
    Agent,
    /// git-teleos sets it when the story merges; agents' edits are dropped (parallel mode).
    Teleos,
    /// Nobody touches it (`--no-tracker`, `teleos.updateTracker=false`).
    Off,
}

impl TrackerMode {
    /// The mode for a batch: parallel batches use the single writer.
    pub fn for_batch(parallel: bool, update_tracker: bool) -> TrackerMode {
        match (update_tracker, parallel) {
            (false, _) => TrackerMode::Off,
            (true, true) => TrackerMode::Teleos,
            (true, false) => TrackerMode::Agent,
        }
    }
}

/// The tracker files of a repository, relative to its work-tree root ('/'-separated).
///
/// The one place that decides where trackers are: story discovery may rewire it to the
/// trackers it found (several when stories are split over folders).
pub fn tracker_files(root: &Path, artifacts_dir: &Path) -> Vec<PathBuf> {
    find_sprint_status(&root.join(artifacts_dir))
        .and_then(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .into_iter()
        .collect()
}

/// The status a story gets from its verified box count (the rule the agent prompt states):
/// `done` with at least 95 % checked and nothing blocked, `review` from 80 %, else `in-progress`.
/// The tracker files a merge keeps as the integration branch has them, as git paths (relative,
/// '/'-separated): all of them unless the agents are the tracker's writers.
pub fn owned_paths(mode: TrackerMode, files: &[PathBuf]) -> Vec<String> {
    match mode {
        TrackerMode::Agent => Vec::new(),
        TrackerMode::Teleos | TrackerMode::Off => files
            .iter()
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .collect(),
    }
}

/// What a merge does to an owned tracker file: set `key`'s `status` when git-teleos is the
/// writer; nothing otherwise (the file stays as the integration branch has it).
pub fn status_edit<'a>(
    mode: TrackerMode,
    key: &'a str,
    status: &'a str,
) -> impl Fn(&[u8]) -> Option<Vec<u8>> + 'a {
    move |bytes: &[u8]| {
        if mode != TrackerMode::Teleos {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let (new, _) = set_story_status(text, key, status).ok()?;
        Some(new.into_bytes())
    }
}

pub fn status_for(done: usize, total: usize, blocked: usize) -> &'static str {
    // Integers, so 19 of 20 is exactly 95 %.
    let at_least = |pct: usize| total > 0 && done * 100 >= pct * total;
    if at_least(95) && blocked == 0 {
        "done"
    } else if at_least(80) {
        "review"
    } else {
        "in-progress"
    }
}

/// Why a value could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    #[error("no entry for '{0}' under development_status")]
    NoEntry(String),
    #[error("'{0}' is not a status word (letters, digits, '-' and '_')")]
    BadValue(String),
}

/// `text` with `key`'s value under `development_status` set to `value`; every other byte is
/// kept. A key written twice gets the value in both places, so any reader agrees.
pub fn set_value(text: &str, key: &str, value: &str) -> Result<String, TrackerError> {
    // A plain word reads the same unquoted, in single and in double quotes: no escaping needed.
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plain {
        return Err(TrackerError::BadValue(value.to_string()));
    }
    let ranges: Vec<_> = entries(text)
        .into_iter()
        .filter(|e| e.key == key)
        .map(|e| e.value_range)
        .collect();
    if ranges.is_empty() {
        return Err(TrackerError::NoEntry(key.to_string()));
    }
    let mut out = String::with_capacity(text.len() + ranges.len() * value.len());
    let mut at = 0;
    for r in ranges {
        out.push_str(&text[at..r.start]);
        out.push_str(value);
        at = r.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// Set the status of story `story_key`, found by its exact key or the scan's key matching
/// (`1-2` ↔ `1-2-user-login`). Returns the new text and the tracker key that was set.
pub fn set_story_status(
    text: &str,
    story_key: &str,
    status: &str,
) -> Result<(String, String), TrackerError> {
    let statuses: BTreeMap<String, String> = read_statuses(text);
    let keys: Vec<&String> = statuses.keys().collect();
    let index = KeyIndex::new(&keys);
    let key = sprint_key_for(&statuses, &index, story_key)
        .ok_or_else(|| TrackerError::NoEntry(story_key.to_string()))?
        .to_string();
    let out = set_value(text, &key, status)?;
    Ok((out, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REAL: &str = "\
# generated: 2025-11-02
# project: net-pack-parser
# STATUS DEFINITIONS:
#   backlog -> ready-for-dev -> in-progress -> review -> done

generated: 2025-11-02
project: net-pack-parser
story_location: \"C:\\\\Users\\\\dev\\\\docs\\\\sprint-artifacts\"

development_status:
  # Epic 1: Foundation
  epic-1: contexted
  1-1-project-setup: done
  1-2-packet-capture: review   # waiting on QA
  1-3-parser-core: 'in-progress'
  1-4-export: \"ready-for-dev\"

  epic-1-retrospective: optional
";

    #[test]
    fn sets_one_value_and_nothing_else() {
        let out = set_value(REAL, "1-2-packet-capture", "done").unwrap();
        assert_eq!(out, REAL.replace("review   # waiting", "done   # waiting"));
        let out = set_value(REAL, "1-3-parser-core", "done").unwrap();
        assert_eq!(out, REAL.replace("'in-progress'", "'done'"));
        let out = set_value(REAL, "1-4-export", "review").unwrap();
        assert_eq!(out, REAL.replace("\"ready-for-dev\"", "\"review\""));
    }

    #[test]
    fn refuses_unknown_keys_and_odd_values() {
        assert_eq!(
            set_value(REAL, "9-9", "done"),
            Err(TrackerError::NoEntry("9-9".into()))
        );
        // Keys outside development_status are not entries.
        assert!(set_value(REAL, "project", "done").is_err());
        for bad in ["", "done # x", "a'b", "x\ny", "\"q\""] {
            assert_eq!(
                set_value(REAL, "1-1-project-setup", bad),
                Err(TrackerError::BadValue(bad.into()))
            );
        }
    }

    #[test]
    fn crlf_and_byte_order_mark_survive() {
        let text = "\u{feff}development_status:\r\n  # c\r\n\r\n  1-1: backlog\r\n  1-2: done\r\n";
        let out = set_value(text, "1-1", "in-progress").unwrap();
        assert_eq!(out, text.replace("backlog", "in-progress"));
        assert_eq!(out.matches("\r\n").count(), 5);
    }

    #[test]
    fn duplicate_keys_all_change() {
        let text = "development_status:\n  1-1: backlog\n  1-1: review\n";
        let out = set_value(text, "1-1", "done").unwrap();
        assert_eq!(out, "development_status:\n  1-1: done\n  1-1: done\n");
    }

    #[test]
    fn story_keys_find_their_entry() {
        let (out, key) = set_story_status(REAL, "1-2", "done").unwrap();
        assert_eq!(key, "1-2-packet-capture");
        assert_eq!(read_statuses(&out)["1-2-packet-capture"], "done");
        let (_, key) = set_story_status(REAL, "story-1.3", "done").unwrap();
        assert_eq!(key, "1-3-parser-core");
        assert!(set_story_status(REAL, "7-1", "done").is_err());
    }

    #[test]
    fn status_rule() {
        assert_eq!(status_for(19, 20, 0), "done");
        assert_eq!(status_for(20, 20, 1), "review");
        assert_eq!(status_for(18, 20, 0), "review");
        assert_eq!(status_for(16, 20, 0), "review");
        assert_eq!(status_for(15, 20, 0), "in-progress");
        assert_eq!(status_for(0, 0, 0), "in-progress");
    }

    #[test]
    fn modes() {
        assert_eq!(TrackerMode::for_batch(true, true), TrackerMode::Teleos);
        assert_eq!(TrackerMode::for_batch(false, true), TrackerMode::Agent);
        assert_eq!(TrackerMode::for_batch(true, false), TrackerMode::Off);
        assert_eq!(TrackerMode::for_batch(false, false), TrackerMode::Off);
    }

    #[test]
    fn finds_the_tracker_relative_to_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let arts = Path::new("_bmad-output/implementation-artifacts");
        std::fs::create_dir_all(tmp.path().join(arts).join("stories")).unwrap();
        assert!(tracker_files(tmp.path(), arts).is_empty());
        std::fs::write(tmp.path().join(arts).join("sprint-status.yaml"), "x").unwrap();
        assert_eq!(
            tracker_files(tmp.path(), &arts.join("stories")),
            vec![arts.join("sprint-status.yaml")]
        );
    }

    /// One line of a generated tracker.
    #[derive(Debug, Clone)]
    enum Line {
        Comment(String),
        Blank(String),
        /// key, value, quote (`None`, `'` or `"`), spaces after the colon, trailing comment.
        Entry(String, String, Option<char>, usize, Option<String>),
    }

    fn line() -> impl Strategy<Value = Line> {
        let word = "[a-z][a-z0-9-]{0,12}";
        prop_oneof![
            "[ -~]{0,30}".prop_map(|c| Line::Comment(c.replace('\n', ""))),
            "[ \t]{0,3}".prop_map(Line::Blank),
            (
                word,
                word,
                prop_oneof![Just(None), Just(Some('\'')), Just(Some('"'))],
                1usize..4,
                proptest::option::of("[ -~&&[^'\"]]{0,20}"),
            )
                .prop_map(|(k, v, q, sp, c)| Line::Entry(k, v, q, sp, c)),
        ]
    }

    fn render(lines: &[Line], eol: &str) -> String {
        let mut s = format!("# tracker\nproject: x{eol}development_status:{eol}");
        for l in lines {
            match l {
                Line::Comment(c) => s.push_str(&format!("  #{c}")),
                Line::Blank(b) => s.push_str(b),
                Line::Entry(k, v, q, sp, c) => {
                    let q = q.map(String::from).unwrap_or_default();
                    s.push_str(&format!("  {k}:{}{q}{v}{q}", " ".repeat(*sp)));
                    if let Some(c) = c {
                        s.push_str(&format!("  # {c}"));
                    }
                }
            }
            s.push_str(eol);
        }
        s.push_str(&format!("other:{eol}  k: v{eol}"));
        s
    }

    proptest! {
        #[test]
        fn only_the_one_value_changes(
            lines in proptest::collection::vec(line(), 1..30),
            crlf in any::<bool>(),
            pick in any::<prop::sample::Index>(),
            status in prop_oneof![Just("done"), Just("review"), Just("in-progress"), Just("x_1")],
        ) {
            let text = render(&lines, if crlf { "\r\n" } else { "\n" });
            let before = read_statuses(&text);
            prop_assume!(!before.is_empty());
            let keys: Vec<&String> = before.keys().collect();
            let key = keys[pick.index(keys.len())].clone();
            let out = set_value(&text, &key, status).unwrap();

            // Readers see exactly one change.
            let mut expected = before.clone();
            expected.insert(key.clone(), status.to_string());
            prop_assert_eq!(read_statuses(&out), expected);
            // Same lines, same endings; only lines holding the key differ.
            let a: Vec<&str> = text.split_inclusive('\n').collect();
            let b: Vec<&str> = out.split_inclusive('\n').collect();
            prop_assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                prop_assert_eq!(x.ends_with("\r\n"), y.ends_with("\r\n"));
                if x != y {
                    let trimmed = x.trim_start();
                    prop_assert!(
                        trimmed.starts_with(&format!("{key}:")),
                        "line {:?} changed to {:?}", x, y
                    );
                }
            }
            // Putting the old value back gives the original bytes (when the key is unique).
            let occurrences = lines.iter().filter(|l| matches!(l, Line::Entry(k, ..) if *k == key)).count();
            if occurrences == 1 {
                prop_assert_eq!(set_value(&out, &key, &before[&key]).unwrap(), text.clone());
            }
            // Setting the same value twice changes nothing more.
            prop_assert_eq!(set_value(&out, &key, status).unwrap(), out.clone());
        }
    }
}
