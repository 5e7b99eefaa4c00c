//! Phase 1 (SCAN): find story files, count their checkbox tasks, resolve dependencies and
//! statuses. Pure: reads files, runs no processes, knows nothing of git.

pub mod deps;
pub mod scan;
pub mod sprint_status;
pub mod tasks;

use serde::Serialize;
use std::path::PathBuf;

// pub use scan::{find_artifacts_dir, scan, ScanOptions};
pub use tasks::{parse_story, ParseOptions, ParsedStory, Task};

/// Where a story stands, from its unchecked (`u`) and total (`t`) top-level tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    /// `t == 0`: not a story.
    Skipped,
    /// `u == 0`.
    Clean,
    /// `u / t <= threshold`.
    Closeable,
    /// Everything else: too much left for the closer.
    NeedsPipeline,
}

impl Category {
    /// Exact rational comparison: `u/t <= threshold` without the float error that would put a
    /// story at exactly 30 % on the wrong side.
    pub fn of(unchecked: usize, total: usize, threshold: f64) -> Category {
        if total == 0 {
            Category::Skipped
        } else if unchecked == 0 {
            Category::Clean
        } else if (unchecked as f64) <= threshold * total as f64 + 1e-9 {
            Category::Closeable
        } else {
            Category::NeedsPipeline
        }
    }
}

/// One scanned story (the `scan_results` entry of the source workflow, plus extras).
#[derive(Debug, Clone, Serialize)]
pub struct Story {
    pub story_key: String,
    /// Path of the story file relative to the repository's work tree root.
    pub path: PathBuf,
    pub category: Category,
    pub total: usize,
    pub checked: usize,
    pub unchecked: usize,
    /// Percentage of top-level tasks unchecked, rounded to one decimal.
    pub pct_unchecked: f64,
    pub subtasks_total: usize,
    pub subtasks_unchecked: usize,
    /// Text of unchecked tasks matching a human-validation pattern.
    pub human_validation_tasks: Vec<String>,
    /// Keys of other scanned stories this one depends on (resolved, cycle-broken).
    pub depends_on: Vec<String>,
    /// The story file's own status (`Status: review`, `## Status`, front matter).
    pub status: Option<String>,
    /// The status `sprint-status.yaml` gives this key.
    pub sprint_status: Option<String>,
}

/// A file that was looked at but is not a story, with why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub filename: String,
    pub reason: String,
}

/// Everything phase 1 learned.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanResult {
    /// The sprint-artifacts folder, relative to the work tree root.
    pub artifacts_dir: PathBuf,
    /// Stories (t > 0), sorted by key in natural order (1-2 before 1-10).
    pub stories: Vec<Story>,
    pub skipped: Vec<Skipped>,
    /// Dependency cycles found (each as the keys in order); the edge closing each was dropped.
    pub cycles: Vec<Vec<String>>,
    /// Human-readable notes: status disagreements, unresolved dependency references, …
    pub warnings: Vec<String>,
}
