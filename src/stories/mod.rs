//! Phase 1 (SCAN): find story files, count their checkbox tasks, resolve dependencies and
//! statuses. Pure: reads files, runs no processes, knows nothing of git.

pub mod deps;
pub mod discover;
pub mod headings;
pub mod scan;
pub mod sprint_status;
mod story_names;
pub mod tasks;
pub mod tracker;

use serde::Serialize;
use std::path::{Path, PathBuf};

pub use discover::DiscoveredBy;
pub use scan::{find_artifacts_dir, scan, ScanOptions};
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
    /// `u/t <= threshold`, without float error putting a story at exactly 30 % on the wrong
    /// side: the threshold is read as the decimal it was written as (to nine places) and
    /// compared in integers, so 3/10 at 0.30 is CLOSEABLE although `0.30_f64` is a hair below
    /// 0.3. Thresholds with more decimals (1/3) are also compared as correctly-rounded doubles,
    /// which equal each other exactly when the ratio equals the threshold. NaN or negative
    /// thresholds admit nothing; infinite ones admit everything.
    pub fn of(unchecked: usize, total: usize, threshold: f64) -> Category {
        const SCALE: u128 = 1_000_000_000;
        if total == 0 {
            Category::Skipped
        } else if unchecked == 0 {
            Category::Clean
        } else {
            // `as` saturates: NaN and negatives become 0, infinity becomes u128::MAX.
            let limit = (threshold * SCALE as f64).round() as u128;
            let as_decimal = unchecked as u128 * SCALE <= limit.saturating_mul(total as u128);
            let as_double = unchecked as f64 / total as f64 <= threshold;
            if as_decimal || as_double {
                Category::Closeable
            } else {
                Category::NeedsPipeline
            }
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

impl ScanResult {
    /// The folder agents are told holds `sprint-status.yaml` and `completions/`: the main
    /// tracker's folder, else the main artifacts folder.
    pub fn tracker_dir(&self) -> PathBuf {
        self.sprint_status_files
            .first()
            .and_then(|t| t.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.artifacts_dir.clone())
    }
}

/// Everything phase 1 learned.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanResult {
    /// The sprint-artifacts folder holding the most stories, relative to the work tree root.
    pub artifacts_dir: PathBuf,
    /// Every folder holding stories (split layouts have several), `artifacts_dir` first.
    pub artifacts_dirs: Vec<PathBuf>,
    /// Which signal found them.
    pub discovered_by: DiscoveredBy,
    /// The `sprint-status.yaml` files read, the one naming the most stories first.
    pub sprint_status_files: Vec<PathBuf>,
    /// Where discovery looked and what it concluded.
    pub discovery: Vec<String>,
    /// Stories (t > 0), sorted by key in natural order (1-2 before 1-10).
    pub stories: Vec<Story>,
    pub skipped: Vec<Skipped>,
    /// Dependency cycles found (each as the keys in order); the edge closing each was dropped.
    pub cycles: Vec<Vec<String>>,
    /// Human-readable notes: status disagreements, unresolved dependency references, …
    pub warnings: Vec<String>,
    /// Stories whose tasks are `### Task N:` headings, by key, with how they are marked.
    pub heading_tasks: std::collections::BTreeMap<String, headings::HeadingTasks>,
}

#[cfg(test)]
mod tests {
    use super::Category;

    #[test]
    fn category_boundaries() {
        assert_eq!(Category::of(0, 0, 0.30), Category::Skipped);
        assert_eq!(Category::of(0, 5, 0.30), Category::Clean);
        assert_eq!(Category::of(3, 10, 0.30), Category::Closeable);
        assert_eq!(Category::of(30, 100, 0.30), Category::Closeable);
        assert_eq!(Category::of(4, 13, 0.30), Category::NeedsPipeline);
        assert_eq!(Category::of(31, 100, 0.30), Category::NeedsPipeline);
        assert_eq!(Category::of(1, 3, 1.0 / 3.0), Category::Closeable);
        assert_eq!(Category::of(1, 10, 0.1), Category::Closeable);
        assert_eq!(Category::of(7, 10, 0.7), Category::Closeable);
        assert_eq!(Category::of(1, 10, 0.0), Category::NeedsPipeline);
        assert_eq!(Category::of(1, 10, f64::NAN), Category::NeedsPipeline);
        assert_eq!(Category::of(1, 10, -1.0), Category::NeedsPipeline);
        assert_eq!(Category::of(10, 10, f64::INFINITY), Category::Closeable);
        assert_eq!(
            Category::of(usize::MAX, usize::MAX, 1.0),
            Category::Closeable
        );
    }
}
