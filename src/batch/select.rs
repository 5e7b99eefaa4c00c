//! Phase 2 (PRESENT): which scanned stories a batch runs, in which order.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::stories::{Category, ScanResult, Story};

/// What the user asked for, without a terminal.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Story keys or unambiguous key prefixes.
    pub keys: Vec<String>,
    /// Every CLOSEABLE story.
    pub all: bool,
    /// Every NEEDS_PIPELINE story too.
    pub include_pipeline: bool,
}

impl Request {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.all && !self.include_pipeline
    }
}

/// The stories of a batch, dependencies first, and notes about what was left out.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub stories: Vec<Story>,
    pub notes: Vec<String>,
}

impl Selection {
    pub fn closeable(&self) -> usize {
        self.stories
            .iter()
            .filter(|s| s.category == Category::Closeable)
            .count()
    }
    pub fn routed(&self) -> usize {
        self.stories.len() - self.closeable()
    }
}

/// Resolve keys and flags against a scan.
pub fn select(scan: &ScanResult, req: &Request) -> Result<Selection> {
    let keys: Vec<String> = scan.stories.iter().map(|s| s.story_key.clone()).collect();
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    let mut notes = Vec::new();
    for wanted in &req.keys {
        let key = crate::stories::deps::resolve_key_prefix(&keys, wanted).map_err(|e| {
            Error::usage_hint(
                format!("story '{wanted}': {e}"),
                "run 'git teleos scan' to list the story keys",
            )
        })?;
        let story = scan.stories.iter().find(|s| s.story_key == key);
        match story.map(|s| s.category) {
            Some(Category::Clean) => notes.push(format!("{key} is already clean: nothing to do")),
            Some(Category::Closeable | Category::NeedsPipeline) => {
                chosen.insert(key);
            }
            _ => notes.push(format!("{key} has no tasks: not a story")),
        }
    }
    for s in &scan.stories {
        let wanted = match s.category {
            Category::Closeable => req.all,
            Category::NeedsPipeline => req.include_pipeline,
            _ => false,
        };
        if wanted {
            chosen.insert(s.story_key.clone());
        }
    }
    let picked: Vec<Story> = scan
        .stories
        .iter()
        .filter(|s| chosen.contains(&s.story_key))
        .cloned()
        .collect();
    Ok(Selection {
        stories: order_by_dependencies(picked),
        notes,
    })
}

/// Stable topological order: a story comes after the selected stories it depends on, otherwise
/// scan order is kept. Cycles were already broken by the scan; anything left over is appended.
pub fn order_by_dependencies(stories: Vec<Story>) -> Vec<Story> {
    let index: BTreeMap<String, usize> = stories
        .iter()
        .enumerate()
        .map(|(i, s)| (s.story_key.clone(), i))
        .collect();
    let mut placed = vec![false; stories.len()];
    let mut order = Vec::with_capacity(stories.len());
    // Repeated passes: each places every story whose selected dependencies are placed.
    loop {
        let mut progressed = false;
        for (i, s) in stories.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let ready = s
                .depends_on
                .iter()
                .filter_map(|d| index.get(d))
                .all(|&j| placed[j]);
            if ready {
                placed[i] = true;
                order.push(i);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    order.extend((0..stories.len()).filter(|i| !placed[*i]));
    let mut slots: Vec<Option<Story>> = stories.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Why a pick list was refused (shown to the user, who picks again).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PickError {
    #[error("'{0}' is not a number or range")]
    NotANumber(String),
    #[error("'{part}' is outside 1-{max}")]
    OutOfRange { part: String, max: usize },
    #[error("nothing picked")]
    NothingPicked,
}

/// Parse a pick list such as `1,3,5-7` against items numbered `1..=max`.
pub fn parse_numbers(text: &str, max: usize) -> std::result::Result<Vec<usize>, PickError> {
    let mut out = BTreeSet::new();
    for part in text
        .split([',', ' '])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: usize = a
            .parse()
            .map_err(|_| PickError::NotANumber(part.to_string()))?;
        let b: usize = b
            .parse()
            .map_err(|_| PickError::NotANumber(part.to_string()))?;
        if a == 0 || b == 0 || a > max || b > max || a > b {
            return Err(PickError::OutOfRange {
                part: part.to_string(),
                max,
            });
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        return Err(PickError::NothingPicked);
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story(key: &str, cat: Category, deps: &[&str]) -> Story {
        crate::batch::test_story(key, cat, deps)
    }

    fn scan() -> ScanResult {
        ScanResult {
            stories: vec![
                story("1-1-a", Category::Closeable, &["1-2-b"]),
                story("1-2-b", Category::Closeable, &[]),
                story("1-3-c", Category::Clean, &[]),
                story("2-1-d", Category::NeedsPipeline, &[]),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn all_selects_closeable_in_dependency_order() {
        let s = select(
            &scan(),
            &Request {
                all: true,
                ..Default::default()
            },
        )
        .unwrap();
        let keys: Vec<&str> = s.stories.iter().map(|s| s.story_key.as_str()).collect();
        assert_eq!(keys, vec!["1-2-b", "1-1-a"]);
    }

    #[test]
    fn prefixes_and_pipeline() {
        let req = Request {
            keys: vec!["1-2".into()],
            include_pipeline: true,
            ..Default::default()
        };
        let s = select(&scan(), &req).unwrap();
        let keys: Vec<&str> = s.stories.iter().map(|s| s.story_key.as_str()).collect();
        assert_eq!(keys, vec!["1-2-b", "2-1-d"]);
        assert_eq!(s.routed(), 1);
    }

    #[test]
    fn clean_story_is_a_note_and_unknown_key_an_error() {
        let s = select(
            &scan(),
            &Request {
                keys: vec!["1-3".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.stories.is_empty());
        assert!(s.notes[0].contains("clean"));
        let e = select(
            &scan(),
            &Request {
                keys: vec!["9-9".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn pick_lists() {
        assert_eq!(parse_numbers("1,3,5-7", 8).unwrap(), vec![1, 3, 5, 6, 7]);
        assert!(parse_numbers("0", 3).is_err());
        assert!(parse_numbers("4", 3).is_err());
        assert!(parse_numbers("x", 3).is_err());
        assert!(parse_numbers("", 3).is_err());
        assert_eq!(
            parse_numbers("2-4", 3).unwrap_err().to_string(),
            "'2-4' is outside 1-3"
        );
        assert_eq!(
            parse_numbers("x", 3).unwrap_err(),
            PickError::NotANumber("x".into())
        );
        assert_eq!(parse_numbers(" , ", 3), Err(PickError::NothingPicked));
    }
}
