//! Where a repository keeps its stories when nobody said.
//!
//! Real BMAD projects put stories flat in one folder, in a `stories/` subfolder, in per-epic
//! folders, in hidden folders, or split over several; their `sprint-status.yaml` may sit
//! elsewhere, and the paths their files give are often stale. So discovery asks the evidence,
//! strongest first:
//!
//! 1. the `development_status` keys of every `sprint-status.yaml` in the repository: a story
//!    is `<key>.md` (or `story-<key>.md`) wherever it is;
//! 2. BMAD's own config (`_bmad/bmm/config.yaml`: `dev_story_location`,
//!    `implementation_artifacts`, `sprint_artifacts`);
//! 3. `story_location` in `sprint-status.yaml`, only when that folder really holds stories;
//! 4. the usual folder names, preferring one whose Markdown files have task lists.
//!
//! A folder given with `--artifacts` or `teleos.sprintArtifacts` overrides all of it.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::sprint_status::{find_sprint_status, read_statuses, SPRINT_STATUS_FILES};
pub use super::story_names::is_non_story_name;
use super::story_names::{has_story_title, has_task_line};
use crate::error::Error;

/// Where stories live when nothing else says, tried in order (signal 4).
pub const DEFAULT_ARTIFACT_DIRS: &[&str] = &[
    "docs/sprint-artifacts",
    "_bmad-output/sprint-artifacts",
    "_bmad-output/implementation-artifacts",
    "docs/stories",
    "docs/implementation-artifacts",
    ".bmad-ephemeral",
];

/// BMAD's config files, newest layout first.
const BMAD_CONFIGS: &[&str] = &[
    "_bmad/bmm/config.yaml",
    ".bmad/bmm/config.yaml",
    "bmad/bmm/config.yaml",
];

/// Keys of a BMAD config naming the story folder, most specific first.
const BMAD_CONFIG_KEYS: &[&str] = &[
    "dev_story_location",
    "implementation_artifacts",
    "sprint_artifacts",
];

/// Folders never walked: dependencies, build output, caches. Hidden folders are walked (BMAD
/// uses `.bmad-ephemeral/`), except `.git`.
const SKIP_DIRS: &[&str] = &[
    ".git",
    "node_modules",
    "bower_components",
    "target",
    "vendor",
    "dist",
    "build",
    ".venv",
    "venv",
    "__pycache__",
    ".next",
    ".nuxt",
    ".cache",
    ".gradle",
    ".terraform",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    "Pods",
    "DerivedData",
    "coverage",
];

/// No real layout is deeper; a bound keeps a pathological tree cheap.
const MAX_DEPTH: usize = 12;

/// A tracker or config larger than this is not read.
const MAX_TRACKER_SIZE: u64 = 5 * 1024 * 1024;

/// Bytes of a Markdown file read to see whether it has a task list.
const TASK_PROBE_BYTES: u64 = 64 * 1024;

/// Bytes of a file read for its title (front matter, then the first `# ` heading).
const TITLE_PROBE_BYTES: u64 = 16 * 1024;

/// Files probed per folder for task lists.
const TASK_PROBE_FILES: usize = 20;

/// Which signal found the stories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiscoveredBy {
    /// `--artifacts` or `teleos.sprintArtifacts`.
    Configured,
    /// The keys of `sprint-status.yaml`.
    SprintStatus,
    /// `_bmad/bmm/config.yaml`.
    BmadConfig,
    /// `story_location` in `sprint-status.yaml`.
    StoryLocation,
    /// One of [`DEFAULT_ARTIFACT_DIRS`].
    #[default]
    FolderName,
}

impl DiscoveredBy {
    pub fn describe(self) -> &'static str {
        match self {
            DiscoveredBy::Configured => {
                "the configured folder (--artifacts / teleos.sprintArtifacts)"
            }
            DiscoveredBy::SprintStatus => "the story keys of sprint-status.yaml",
            DiscoveredBy::BmadConfig => "BMAD's config (bmm/config.yaml)",
            DiscoveredBy::StoryLocation => "story_location in sprint-status.yaml",
            DiscoveredBy::FolderName => "the usual folder names",
        }
    }
}

/// Where the stories are, and why we think so. Paths are absolute (under the root).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Folders holding stories, the one with the most first.
    pub dirs: Vec<PathBuf>,
    /// Story files named by tracker keys (only with [`DiscoveredBy::SprintStatus`]), and the
    /// story-titled files of the [`sparse`](Self::sparse) folders.
    pub keyed: Vec<PathBuf>,
    /// Folders of `dirs` the keys name only a few files of (a general `docs/` with the PRD and
    /// architecture beside a few stories): not listed whole, only their files in `keyed`.
    pub sparse: Vec<PathBuf>,
    /// `sprint-status.yaml` files, the one naming the most stories first.
    pub trackers: Vec<PathBuf>,
    pub by: DiscoveredBy,
    /// Also scan subfolders (per-epic folders found under a named folder).
    pub recursive: bool,
    /// Where discovery looked and what it concluded, for the report.
    pub notes: Vec<String>,
}

/// Find the stories of the work tree at `root`; `configured` (relative to `root` or absolute)
/// overrides discovery.
pub fn discover(root: &Path, configured: Option<&Path>) -> Result<Discovery, Error> {
    if let Some(dir) = configured {
        let dir = super::scan::find_artifacts_dir(root, Some(dir))?;
        return Ok(Discovery {
            trackers: find_sprint_status(&dir).into_iter().collect(),
            notes: vec![format!("using the configured folder {}", shown(&dir, root))],
            dirs: vec![dir],
            by: DiscoveredBy::Configured,
            ..Discovery::default()
        });
    }
    let walk = Walk::of(root);
    let mut notes = Vec::new();
    if let Some(found) = by_tracker_keys(root, &walk, &mut notes) {
        return Ok(Discovery { notes, ..found });
    }
    if walk.trackers.is_empty() {
        notes.push("no sprint-status.yaml in the repository".into());
    }
    let trackers = walk.trackers.clone();

    let mut candidates: Vec<(PathBuf, DiscoveredBy)> = Vec::new();
    for config in BMAD_CONFIGS.iter().map(|c| root.join(c)) {
        for dir in bmad_config_dirs(root, &config) {
            notes.push(format!(
                "{} names {}",
                shown(&config, root),
                shown(&dir, root)
            ));
            candidates.push((dir, DiscoveredBy::BmadConfig));
        }
    }
    for tracker in &trackers {
        if let Some(dir) = story_location(root, tracker) {
            notes.push(format!(
                "{} gives story_location {}",
                shown(tracker, root),
                shown(&dir, root)
            ));
            candidates.push((dir, DiscoveredBy::StoryLocation));
        }
    }
    candidates.extend(
        DEFAULT_ARTIFACT_DIRS
            .iter()
            .map(|d| (root.join(d), DiscoveredBy::FolderName)),
    );

    for (dir, by) in &candidates {
        if let Some((found, recursive)) = folder_with_tasks(dir) {
            notes.push(format!(
                "{} holds Markdown files with task lists{}",
                shown(&found, root),
                if recursive { " in its subfolders" } else { "" }
            ));
            return Ok(Discovery {
                dirs: vec![found],
                trackers: tracker_for(&trackers, dir),
                by: *by,
                recursive,
                notes,
                ..Discovery::default()
            });
        }
    }
    let stories = stories_folders(root, &walk);
    if !stories.is_empty() {
        let list: Vec<String> = stories.iter().map(|d| shown(d, root)).collect();
        notes.push(format!(
            "no usual folder has task lists; found folders named stories that do: {}",
            list.join(", ")
        ));
        return Ok(Discovery {
            trackers: tracker_for(&trackers, &stories[0]),
            dirs: stories,
            by: DiscoveredBy::FolderName,
            notes,
            ..Discovery::default()
        });
    }
    // Nothing has tasks yet: the first usual folder that exists, as before discovery.
    let dir = super::scan::find_artifacts_dir(root, None)?;
    notes.push(format!(
        "no folder has task lists; using {}, the first usual folder that exists",
        shown(&dir, root)
    ));
    Ok(Discovery {
        trackers: tracker_for(&trackers, &dir),
        dirs: vec![dir],
        by: DiscoveredBy::FolderName,
        notes,
        ..Discovery::default()
    })
}

/// Signal 1: story files named by the trackers' keys. `None` when no key has a file.
fn by_tracker_keys(root: &Path, walk: &Walk, notes: &mut Vec<String>) -> Option<Discovery> {
    // key → every file that could be its story.
    let mut hits: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut named: Vec<(usize, PathBuf)> = Vec::new();
    for tracker in &walk.trackers {
        let Some(text) = read_limited(tracker, MAX_TRACKER_SIZE) else {
            notes.push(format!("cannot read {}", shown(tracker, root)));
            continue;
        };
        let keys: Vec<String> = read_statuses(&text)
            .into_keys()
            .filter(|k| is_story_key(k))
            .collect();
        let mut with_file = 0;
        for key in &keys {
            let files: Vec<PathBuf> = [format!("{key}.md"), format!("story-{key}.md")]
                .iter()
                .filter_map(|name| walk.markdown.get(name.as_str()))
                .flatten()
                .cloned()
                .collect();
            if !files.is_empty() {
                with_file += 1;
                hits.entry(key.clone()).or_default().extend(files);
            }
        }
        notes.push(format!(
            "{}: {} of its {} story keys have a story file",
            shown(tracker, root),
            with_file,
            keys.len()
        ));
        named.push((with_file, tracker.clone()));
    }
    if hits.is_empty() {
        return None;
    }
    // A key with copies in several folders (an archive, old drafts) takes the copy in the
    // folder holding the most stories: that is where the project works.
    let mut per_dir: HashMap<PathBuf, usize> = HashMap::new();
    for files in hits.values() {
        for f in files {
            *per_dir.entry(parent(f)).or_default() += 1;
        }
    }
    let rank = |f: &PathBuf| {
        let dir = parent(f);
        (
            per_dir.get(&dir).copied().unwrap_or(0),
            std::cmp::Reverse(f.components().count()),
            std::cmp::Reverse(f.clone()),
        )
    };
    let mut keyed = Vec::new();
    let mut chosen: HashMap<PathBuf, usize> = HashMap::new();
    for files in hits.values() {
        if let Some(best) = files.iter().max_by_key(|f| rank(f)) {
            *chosen.entry(parent(best)).or_default() += 1;
            keyed.push(best.clone());
        }
    }
    let mut dirs: Vec<(PathBuf, usize)> = chosen.into_iter().collect();
    dirs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (dir, n) in &dirs {
        notes.push(format!("{n} stories in {}", shown(dir, root)));
    }
    let mut sparse = Vec::new();
    for (dir, n) in &dirs {
        if let Some(titled) = sparse_folder_stories(dir, *n, &keyed) {
            notes.push(format!(
                "{}: the keys name only {n} of its Markdown files, so of the others only the {} \
                 titled as stories are taken",
                shown(dir, root),
                titled.len()
            ));
            keyed.extend(titled);
            sparse.push(dir.clone());
        }
    }
    named.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.components().count().cmp(&b.1.components().count()))
            .then_with(|| a.1.cmp(&b.1))
    });
    keyed.sort();
    Some(Discovery {
        dirs: dirs.into_iter().map(|(d, _)| d).collect(),
        keyed,
        sparse,
        trackers: named.into_iter().map(|(_, t)| t).collect(),
        by: DiscoveredBy::SprintStatus,
        ..Discovery::default()
    })
}

/// When the keys name fewer of the Markdown files directly in `dir` than they leave unnamed
/// (not counting files whose names mark them as other documents), the folder is not a story
/// folder but a general one, and its unnamed files are stories only when titled so: the files
/// to take. `None` for a story folder, listed whole.
fn sparse_folder_stories(dir: &Path, named: usize, keyed: &[PathBuf]) -> Option<Vec<PathBuf>> {
    let others: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase());
            name.is_some_and(|n| n.ends_with(".md") && !is_non_story_name(&n))
                && p.is_file()
                && !keyed.contains(p)
        })
        .collect();
    if others.len() <= named {
        return None;
    }
    Some(
        others
            .into_iter()
            .filter(|p| {
                let mut head = Vec::new();
                fs::File::open(p)
                    .and_then(|f| f.take(TITLE_PROBE_BYTES).read_to_end(&mut head))
                    .is_ok()
                    && has_story_title(&String::from_utf8_lossy(&head))
            })
            .collect(),
    )
}

/// Keys of `development_status` that name stories: not epics, not retrospectives.
fn is_story_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    !lower.starts_with("epic-") && !lower.ends_with("-retrospective") && !key.contains('/')
}

/// Signal 2: the folders a BMAD config names, that exist.
fn bmad_config_dirs(root: &Path, config: &Path) -> Vec<PathBuf> {
    let Some(text) = read_limited(config, MAX_TRACKER_SIZE) else {
        return Vec::new();
    };
    let values = yaml_scalars(&text);
    BMAD_CONFIG_KEYS
        .iter()
        .filter_map(|k| values.get(*k))
        .filter_map(|v| {
            let v = v.replace("{project-root}", "");
            // Other placeholders (`{config_source}:…`) are not paths we can resolve.
            if v.contains('{') {
                return None;
            }
            let dir = root.join(v.trim_start_matches(['/', '\\']).replace('\\', "/"));
            dir.is_dir().then_some(dir)
        })
        .collect()
}

/// Signal 3: `story_location` of a tracker, as a folder of this work tree. Real files hold
/// stale, absolute or Windows paths, so the longest tail of the path that exists here is taken.
fn story_location(root: &Path, tracker: &Path) -> Option<PathBuf> {
    let text = read_limited(tracker, MAX_TRACKER_SIZE)?;
    let value = yaml_scalars(&text).remove("story_location")?;
    let value = value.replace("{project-root}", "").replace('\\', "/");
    let parts: Vec<&str> = value
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && !p.ends_with(':'))
        .collect();
    (0..parts.len())
        .map(|skip| root.join(parts[skip..].join("/")))
        .find(|dir| dir.is_dir())
}

/// Top-level `key: value` scalars of a YAML file (comments and quotes removed).
fn yaml_scalars(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split(" #").next().unwrap_or("").trim(),
        };
        if !value.is_empty() {
            out.entry(key.trim().to_string())
                .or_insert_with(|| value.to_string());
        }
    }
    out
}

/// The folder of stories at or under a candidate: itself, its `stories/` or `sprint-artifacts/`
/// subfolder, or (per-epic layouts) its subfolders, whichever first has Markdown files with
/// task lists. The flag says the stories are in subfolders.
fn folder_with_tasks(dir: &Path) -> Option<(PathBuf, bool)> {
    if !dir.is_dir() {
        return None;
    }
    let direct = [
        dir.to_path_buf(),
        dir.join("stories"),
        dir.join("sprint-artifacts"),
        dir.join("sprint-artifacts/stories"),
    ];
    if let Some(found) = direct.iter().find(|d| has_task_files(d)) {
        return Some((found.clone(), false));
    }
    let subdirs = fs::read_dir(dir).ok()?;
    let per_epic = subdirs.flatten().any(|e| {
        let p = e.path();
        p.is_dir() && (has_task_files(&p) || has_task_files(&p.join("stories")))
    });
    per_epic.then(|| (dir.to_path_buf(), true))
}

/// The last signal, when nothing else names a folder with task lists: every folder named
/// `stories`, wherever it is, whose Markdown files have task lists (as CoderMariusz/MonoPilot
/// keeps them, `new-doc/<area>/stories/`, with no tracker). Folders inside hidden or tool
/// folders (BMAD's own `.bmad/`, `_bmad/` templates, editor settings) are not the project's.
fn stories_folders(root: &Path, walk: &Walk) -> Vec<PathBuf> {
    let dirs: std::collections::BTreeSet<&Path> = walk
        .markdown
        .values()
        .flatten()
        .filter_map(|p| p.parent())
        .filter(|d| d.file_name().is_some_and(|n| n == "stories"))
        .filter(|d| {
            d.strip_prefix(root).is_ok_and(|rel| {
                rel.components().all(|c| {
                    let c = c.as_os_str().to_string_lossy();
                    !c.starts_with('.') && !c.starts_with("_bmad") && c != "bmad"
                })
            })
        })
        .collect();
    dirs.into_iter()
        .filter(|d| has_task_files(d))
        .map(Path::to_path_buf)
        .collect()
}

/// Whether some of the first Markdown files directly in `dir` have a task list.
fn has_task_files(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.to_ascii_lowercase().ends_with(".md") && !is_non_story_name(&name)
        })
        .take(TASK_PROBE_FILES)
        .any(|e| {
            let mut head = Vec::new();
            fs::File::open(e.path())
                .and_then(|f| f.take(TASK_PROBE_BYTES).read_to_end(&mut head))
                .is_ok()
                && has_task_line(&head)
        })
}

/// The trackers that belong with a folder chosen by signals 2–4: the one in it or its parent,
/// else every tracker found (statuses are read from all).
fn tracker_for(trackers: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    match find_sprint_status(dir) {
        Some(t) => std::iter::once(t.clone())
            .chain(trackers.iter().filter(|x| **x != t).cloned())
            .collect(),
        None => trackers.to_vec(),
    }
}

/// What a walk of the work tree found.
#[derive(Default)]
struct Walk {
    /// `name.md` → every file of that name.
    markdown: HashMap<String, Vec<PathBuf>>,
    /// Every `sprint-status.yaml` (or `.yml`), sorted shallow first.
    trackers: Vec<PathBuf>,
}

impl Walk {
    /// Walk `root`, skipping dependency and build folders, nested repositories and worktrees
    /// (a folder with its own `.git`), and folders the root `.gitignore` ignores by name.
    fn of(root: &Path) -> Walk {
        let ignored = gitignore_patterns(root);
        let mut walk = Walk::default();
        let mut pending = vec![(root.to_path_buf(), 0usize)];
        while let Some((dir, depth)) = pending.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    continue;
                };
                let path = entry.path();
                if kind.is_dir() {
                    let skip = depth + 1 > MAX_DEPTH
                        || SKIP_DIRS.contains(&name)
                        || path.join(".git").exists()
                        || is_ignored(&ignored, root, &path, name);
                    if !skip {
                        pending.push((path, depth + 1));
                    }
                } else if !(kind.is_file() || kind.is_symlink()) {
                    continue;
                } else if SPRINT_STATUS_FILES.contains(&name) {
                    walk.trackers.push(path);
                } else if name.len() > 3 && name.to_ascii_lowercase().ends_with(".md") {
                    walk.markdown
                        .entry(name.to_string())
                        .or_default()
                        .push(path);
                }
            }
        }
        walk.trackers.sort_by(|a, b| {
            a.components()
                .count()
                .cmp(&b.components().count())
                .then_with(|| a.cmp(b))
        });
        walk
    }
}

/// The root `.gitignore`'s plain patterns (no negations), without slashes at the
/// ends; a leading slash is kept to mean "from the root".
fn gitignore_patterns(root: &Path) -> Vec<String> {
    let Some(text) = read_limited(&root.join(".gitignore"), MAX_TRACKER_SIZE) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| l.trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "/")
        .collect()
}

/// Whether a folder is ignored by one of the root `.gitignore` patterns: a pattern with a
/// slash matches the path from the root, one without matches the folder's name anywhere.
fn is_ignored(patterns: &[String], root: &Path, path: &Path, name: &str) -> bool {
    if patterns.is_empty() {
        return false;
    }
    let rel = path
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    patterns.iter().any(|p| {
        let anchored = p.trim_start_matches('/');
        if p.contains('/') {
            let anchored = anchored.trim_start_matches("**/");
            if p.starts_with("**/") {
                super::scan::glob_match(anchored, name)
            } else {
                super::scan::glob_match(anchored, &rel)
            }
        } else {
            super::scan::glob_match(p, name)
        }
    })
}

fn read_limited(path: &Path, limit: u64) -> Option<String> {
    let file = fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).ok()?;
    String::from_utf8(bytes).ok()
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `path` relative to `root`, for messages.
pub fn shown(path: &Path, root: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_location_takes_the_tail_that_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("docs/stories")).unwrap();
        let tracker = root.join("sprint-status.yaml");
        fs::write(
            &tracker,
            "# story_location: nowhere\nstory_location: 'C:\\Users\\me\\proj\\docs\\stories'\n",
        )
        .unwrap();
        assert_eq!(
            story_location(root, &tracker),
            Some(root.join("docs/stories"))
        );
        fs::write(
            &tracker,
            "story_location: \"{project-root}/docs/stories\"\n",
        )
        .unwrap();
        assert_eq!(
            story_location(root, &tracker),
            Some(root.join("docs/stories"))
        );
        fs::write(&tracker, "story_location: gone/away\n").unwrap();
        assert_eq!(story_location(root, &tracker), None);
    }

    #[test]
    fn story_keys() {
        assert!(is_story_key("1-1-setup"));
        assert!(!is_story_key("epic-1"));
        assert!(!is_story_key("epic-1-retrospective"));
        assert!(!is_story_key("1-retrospective"));
    }
}
