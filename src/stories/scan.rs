//! Phase 1 proper: find the sprint-artifacts folder, read every story file in parallel, and put
//! together categories, dependencies and statuses.

use std::cmp::Ordering;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::deps::{resolve_dependencies, KeyIndex};
use super::discover::{discover, is_non_story_name};
use super::headings::settle_by_status;
use super::sprint_status::{read_statuses, sprint_key_for};
use super::tasks::{parse_story, ParseOptions, ParsedStory};
use super::{Category, ScanResult, Skipped, Story};
use crate::error::Error;

pub use super::discover::DEFAULT_ARTIFACT_DIRS;

/// File names that are clearly not stories (case-insensitive; `*` matches any run of
/// characters, and a pattern without `*` is a name prefix).
pub const DEFAULT_EXCLUDE_PATTERNS: &[&str] = &[
    "README*",
    "index*",
    "template*",
    "session-report*",
    "retrospective*",
    "epic-*-retro*",
    "sprint-status*",
];

/// Story files larger than this are skipped: no real story is this big.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 5 * 1024 * 1024;

/// The closeable threshold of the source workflow.
pub const DEFAULT_THRESHOLD: f64 = 0.30;

/// Subfolders never scanned, even when recursive: they hold reports, not stories.
const NEVER_DESCEND: &[&str] = &["completions"];

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The work tree root; results' paths are relative to it.
    pub root: PathBuf,
    /// The configured artifacts folder, relative to `root` or absolute; `None` tries the defaults.
    pub artifacts_dir: Option<PathBuf>,
    /// Also scan subfolders (per-epic folders), except `completions/`.
    pub recursive: bool,
    /// File names to skip: case-insensitive prefixes, or simple globs with `*`.
    pub exclude_patterns: Vec<String>,
    /// Largest `unchecked / total` ratio that is CLOSEABLE.
    pub threshold: f64,
    pub parse: ParseOptions,
    /// Larger files are skipped as "too large".
    pub max_file_size: u64,
}

impl ScanOptions {
    /// The defaults of the source workflow, for the work tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ScanOptions {
            root: root.into(),
            artifacts_dir: None,
            recursive: false,
            exclude_patterns: DEFAULT_EXCLUDE_PATTERNS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            threshold: DEFAULT_THRESHOLD,
            parse: ParseOptions::default(),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// The sprint-artifacts folder (absolute when `root` is): the configured one, else the first
/// existing default; its `stories/` subfolder when the stories live there rather than in it.
pub fn find_artifacts_dir(root: &Path, configured: Option<&Path>) -> Result<PathBuf, Error> {
    let chosen = match configured {
        Some(dir) => {
            let dir = root.join(dir);
            if !dir.is_dir() {
                return Err(Error::NoArtifactsDir { tried: vec![dir] });
            }
            dir
        }
        None => {
            let tried: Vec<PathBuf> = DEFAULT_ARTIFACT_DIRS.iter().map(|d| root.join(d)).collect();
            match tried.iter().find(|d| d.is_dir()) {
                Some(dir) => dir.clone(),
                None => return Err(Error::NoArtifactsDir { tried }),
            }
        }
    };
    let stories = chosen.join("stories");
    if stories.is_dir() && !has_story_files(&chosen) {
        Ok(stories)
    } else {
        Ok(chosen)
    }
}

/// Whether `dir` directly holds a `*.md` file not excluded by default (so README.md alone
/// does not make a folder of stories). Unreadable counts as no.
fn has_story_files(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let defaults: Vec<String> = DEFAULT_EXCLUDE_PATTERNS
        .iter()
        .map(|s| s.to_string())
        .collect();
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        is_markdown(&name) && e.path().is_file() && excluded_by(&defaults, &name).is_none()
    })
}

/// Scan the stories: those of the configured folder, else those discovery finds. Fails only
/// when there is no folder (or it cannot be listed); files that cannot be read are reported in
/// `skipped`.
pub fn scan(opts: &ScanOptions) -> Result<ScanResult, Error> {
    let found = discover(&opts.root, opts.artifacts_dir.as_deref())?;
    let dir = found
        .dirs
        .first()
        .cloned()
        .unwrap_or_else(|| opts.root.clone());
    let mut result = ScanResult {
        artifacts_dir: relative_to(&dir, &opts.root),
        artifacts_dirs: found
            .dirs
            .iter()
            .map(|d| relative_to(d, &opts.root))
            .collect(),
        discovered_by: found.by,
        sprint_status_files: found
            .trackers
            .iter()
            .map(|t| relative_to(t, &opts.root))
            .collect(),
        discovery: found.notes.clone(),
        ..ScanResult::default()
    };
    // Files named by tracker keys are stories whatever their names say; other files are
    // stories unless their names mark them as something else.
    let keyed: std::collections::HashSet<&PathBuf> = found.keyed.iter().collect();
    let mut files: Vec<PathBuf> = found.keyed.clone();
    let keyed_names: std::collections::HashSet<String> =
        found.keyed.iter().map(|f| file_name(f)).collect();
    for d in &found.dirs {
        let recursive = opts.recursive || found.recursive;
        for f in list_markdown(d, recursive, &mut result.warnings)? {
            // A copy of a keyed story elsewhere (an archive) is not a second story.
            if !keyed.contains(&f) && !keyed_names.contains(&file_name(&f)) {
                files.push(f);
            }
        }
    }
    files.sort();
    files.dedup();

    let mut candidates = Vec::new();
    for file in files {
        let name = display_name(&file, &dir, &opts.root);
        // Keys become branch names, prompt text and JSON: they must be text.
        if file.to_str().is_none() {
            result.skipped.push(Skipped {
                filename: name,
                reason: "file name is not UTF-8".to_string(),
            });
            continue;
        }
        let base = file_name(&file);
        if let Some(pattern) = excluded_by(&opts.exclude_patterns, &base) {
            result.skipped.push(Skipped {
                filename: name,
                reason: format!("excluded by pattern '{pattern}'"),
            });
        } else if !keyed.contains(&file) && is_non_story_name(&base) {
            result.skipped.push(Skipped {
                filename: name,
                reason: "not a story (epic, tech spec, retrospective or report)".to_string(),
            });
        } else {
            candidates.push((name, file));
        }
    }

    let outcomes: Vec<(String, PathBuf, Result<ParsedStory, String>)> = candidates
        .into_par_iter()
        .map(|(name, path)| {
            let parsed =
                read_story(&path, opts.max_file_size).map(|t| parse_story(&t, &opts.parse));
            (name, path, parsed)
        })
        .collect();

    let mut parsed: Vec<(String, PathBuf, ParsedStory)> = Vec::new();
    let mut seen = std::collections::BTreeMap::<String, String>::new();
    for (name, path, outcome) in outcomes {
        let story = match outcome {
            Err(reason) => {
                result.skipped.push(Skipped {
                    filename: name,
                    reason,
                });
                continue;
            }
            Ok(p) if p.total == 0 => {
                let reason = "no tasks (not a story)".to_string();
                result.skipped.push(Skipped {
                    filename: name,
                    reason,
                });
                continue;
            }
            Ok(p) => p,
        };
        let key = file_stem(&path);
        // Keys name stories everywhere (branches, dependencies): the first file keeps its key.
        if let Some(first) = seen.get(&key) {
            let reason = format!("duplicate story key '{key}' (also {first})");
            result.skipped.push(Skipped {
                filename: name,
                reason,
            });
            continue;
        }
        seen.insert(key.clone(), name);
        parsed.push((key, relative_to(&path, &opts.root), story));
    }
    parsed.sort_by(|a, b| natural_cmp(&a.0, &b.0));

    let refs: Vec<(String, Vec<String>)> = parsed
        .iter()
        .map(|(k, _, p)| (k.clone(), p.dependency_refs.clone()))
        .collect();
    let mut graph = resolve_dependencies(&refs);
    result.warnings.append(&mut graph.warnings);
    for cycle in &graph.cycles {
        let mut shown = cycle.clone();
        shown.extend(cycle.first().cloned());
        result.warnings.push(format!(
            "dependency cycle {}; ignoring the dependency of {} on {}",
            shown.join(" → "),
            cycle.last().map(String::as_str).unwrap_or(""),
            cycle.first().map(String::as_str).unwrap_or(""),
        ));
    }
    result.cycles = graph.cycles;

    // Every tracker's statuses; the first tracker (naming the most stories) wins a key.
    let mut statuses = std::collections::BTreeMap::new();
    for file in &found.trackers {
        // Same limits as stories: a broken sprint file is a warning, not a failed scan.
        match read_story(file, opts.max_file_size) {
            Ok(text) => {
                for (k, v) in read_statuses(&text) {
                    statuses.entry(k).or_insert(v);
                }
            }
            Err(reason) => {
                let shown = relative_to(file, &opts.root);
                result
                    .warnings
                    .push(format!("ignoring {}: {reason}", shown.display()));
            }
        }
    }
    let sprint_keys: Vec<&String> = statuses.keys().collect();
    let sprint_index = KeyIndex::new(&sprint_keys);

    for (key, path, mut p) in parsed {
        let sprint_status = sprint_key_for(&statuses, &sprint_index, &key)
            .and_then(|k| statuses.get(k))
            .cloned();
        settle_by_status(&key, &mut p, sprint_status.as_deref(), &mut result.warnings);
        if let Some(h) = p.heading_tasks.take() {
            result.heading_tasks.insert(key.clone(), h);
        }
        if let (Some(own), Some(sprint)) = (&p.status, &sprint_status) {
            if !same_status(own, sprint) {
                result.warnings.push(format!(
                    "story {key}: its file says status '{own}' but sprint-status.yaml says '{sprint}'"
                ));
            }
        }
        result.stories.push(Story {
            category: Category::of(p.unchecked, p.total, opts.threshold),
            pct_unchecked: pct_one_decimal(p.unchecked, p.total),
            depends_on: graph.edges.remove(&key).unwrap_or_default(),
            story_key: key,
            path,
            total: p.total,
            checked: p.checked,
            unchecked: p.unchecked,
            subtasks_total: p.subtasks_total,
            subtasks_unchecked: p.subtasks_unchecked,
            human_validation_tasks: p.human_validation_tasks,
            status: p.status,
            sprint_status,
        });
    }
    Ok(result)
}

/// `100 * u / t` rounded half up to one decimal, in integers so 1/3 is exactly 33.3.
fn pct_one_decimal(unchecked: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let (u, t) = (unchecked as u128, total as u128);
    let tenths = (2000 * u + t) / (2 * t);
    tenths as f64 / 10.0
}

/// Statuses compare case-, space- and underscore-insensitively (`In Progress` = `in-progress`).
fn same_status(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().to_lowercase().replace([' ', '_'], "-");
    norm(a) == norm(b)
}

/// The `*.md` files under `dir` (subfolders too when `recursive`, but never `completions/`
/// nor symlinked folders, which could loop), sorted.
fn list_markdown(
    dir: &Path,
    recursive: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            // The top folder must be listable; a subfolder that is not is only a warning.
            Err(e) if current == dir => {
                return Err(Error::io(format!("cannot list {}", current.display()), e))
            }
            Err(e) => {
                warnings.push(format!("cannot list {}: {e}", current.display()));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    warnings.push(format!("cannot list {}: {e}", current.display()));
                    continue;
                }
            };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let hidden = name.starts_with('.');
                let never = NEVER_DESCEND.iter().any(|n| n.eq_ignore_ascii_case(&name));
                if recursive && !hidden && !never {
                    pending.push(path);
                }
            } else if is_markdown(&name) && (kind.is_file() || path.is_file()) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_markdown(name: &str) -> bool {
    name.len() > 3
        && name
            .get(name.len() - 3..)
            .is_some_and(|ext| ext.eq_ignore_ascii_case(".md"))
}

/// Read a story as UTF-8 text, or say why not. Reads at most `limit + 1` bytes so a file that
/// grows (or lies about its size) cannot exhaust memory.
fn read_story(path: &Path, limit: u64) -> Result<String, String> {
    let file = fs::File::open(path).map_err(|e| format!("unreadable: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("unreadable: {e}"))?
        .len();
    if size > limit {
        return Err(format!("too large ({size} bytes > {limit})"));
    }
    // Sized from the metadata: no regrowth, no probe read past the end.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("unreadable: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("too large (more than {limit} bytes)"));
    }
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    // A byte-order mark would hide a leading front-matter fence or heading.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The first pattern excluding `name`, if any.
fn excluded_by<'p>(patterns: &'p [String], name: &str) -> Option<&'p str> {
    let lower = name.to_lowercase();
    patterns.iter().map(String::as_str).find(|p| {
        let p = p.to_lowercase();
        if p.contains('*') {
            glob_match(&p, &lower)
        } else {
            lower.starts_with(&p)
        }
    })
}

/// `*`-only glob over the whole name, by the usual greedy match with one backtrack point:
/// linear in practice and never exponential.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Compare keys with digit runs as numbers: `1-2` < `1-10` < `2-1`, `19a-1` after `19-9`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    // `1-2` vs `1-02`, `h-1` vs `H-1`: told apart by zeros or case only if nothing else differs.
    let mut tie = Ordering::Equal;
    loop {
        match (a.first(), b.first()) {
            (None, None) => return tie,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                // Numbers of any length: longer (without leading zeros) is larger.
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                tie = tie.then(da.cmp(&db));
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                let ord = x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase());
                tie = tie.then(x.cmp(y));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&d| d == b'0').count();
    &digits[zeros..]
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// File name without `.md`: the story key.
fn file_stem(path: &Path) -> String {
    let name = file_name(path);
    name[..name.len().saturating_sub(3)].to_string()
}

/// Name shown in `skipped`: relative to the main artifacts folder (`epic-1/1-2.md` when
/// recursive), else to the root (a story in another folder).
fn display_name(path: &Path, dir: &Path, root: &Path) -> String {
    path.strip_prefix(dir)
        .or_else(|_| path.strip_prefix(root))
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn relative_to(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: impl AsRef<[u8]>) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// `n` checked and `u` unchecked top-level tasks.
    fn story(checked: usize, unchecked: usize) -> String {
        let mut s = String::from("# Story\n\n## Tasks\n");
        s += &"- [x] done\n".repeat(checked);
        s += &"- [ ] todo\n".repeat(unchecked);
        s
    }

    fn keys(r: &ScanResult) -> Vec<&str> {
        r.stories.iter().map(|s| s.story_key.as_str()).collect()
    }

    fn skip_reason<'a>(r: &'a ScanResult, name: &str) -> Option<&'a str> {
        r.skipped
            .iter()
            .find(|s| s.filename == name)
            .map(|s| s.reason.as_str())
    }

    #[test]
    fn finds_default_dirs_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let err = find_artifacts_dir(root, None).unwrap_err();
        match &err {
            Error::NoArtifactsDir { tried } => {
                let expected: Vec<PathBuf> =
                    DEFAULT_ARTIFACT_DIRS.iter().map(|d| root.join(d)).collect();
                assert_eq!(tried, &expected);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("docs/stories"));
        assert_eq!(err.exit_code(), 2);
        fs::create_dir_all(root.join("docs/stories")).unwrap();
        fs::create_dir_all(root.join("_bmad-output/implementation-artifacts")).unwrap();
        assert_eq!(
            find_artifacts_dir(root, None).unwrap(),
            root.join("_bmad-output/implementation-artifacts")
        );
    }

    #[test]
    fn configured_dir_and_stories_subfolder() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let err = find_artifacts_dir(root, Some(Path::new("custom"))).unwrap_err();
        assert!(
            matches!(err, Error::NoArtifactsDir { ref tried } if tried == &vec![root.join("custom")])
        );
        write(root, "custom/README.md", "# read me");
        write(root, "custom/stories/1-1.md", story(1, 0));
        assert_eq!(
            find_artifacts_dir(root, Some(Path::new("custom"))).unwrap(),
            root.join("custom/stories")
        );
        let abs = root.join("custom");
        assert_eq!(
            find_artifacts_dir(Path::new("/nonexistent"), Some(&abs)).unwrap(),
            root.join("custom/stories")
        );
        // Stories directly in the folder win over a stories/ subfolder.
        write(root, "custom/2-1.md", story(1, 0));
        assert_eq!(
            find_artifacts_dir(root, Some(Path::new("custom"))).unwrap(),
            root.join("custom")
        );
    }

    #[test]
    fn scans_categories_and_skips() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let d = "docs/sprint-artifacts";
        write(root, &format!("{d}/1-10-later.md"), story(10, 0));
        write(root, &format!("{d}/1-2-closeable.md"), story(7, 3));
        write(root, &format!("{d}/1-3-pipeline.md"), story(9, 4));
        write(root, &format!("{d}/2-1.md"), story(2, 1));
        write(root, &format!("{d}/README.md"), story(0, 1));
        write(root, &format!("{d}/Index.md"), "x");
        write(root, &format!("{d}/session-report-2024.md"), story(0, 1));
        write(root, &format!("{d}/epic-1-retrospective.md"), story(0, 1));
        write(root, &format!("{d}/notes.md"), "# Just notes\n");
        write(
            root,
            &format!("{d}/latin1.md"),
            b"- [ ] caf\xe9\n".as_slice(),
        );
        write(root, &format!("{d}/big.md"), "- [ ] x\n".repeat(200));
        write(root, &format!("{d}/not-markdown.txt"), story(0, 1));
        write(
            root,
            &format!("{d}/completions/1-2-closeable.md"),
            story(0, 1),
        );
        let mut opts = ScanOptions::new(root);
        opts.max_file_size = 1000;
        let r = scan(&opts).unwrap();
        assert_eq!(r.artifacts_dir, PathBuf::from(d));
        assert_eq!(
            keys(&r),
            ["1-2-closeable", "1-3-pipeline", "1-10-later", "2-1"]
        );
        let cats: Vec<Category> = r.stories.iter().map(|s| s.category).collect();
        assert_eq!(
            cats,
            [
                Category::Closeable,
                Category::NeedsPipeline,
                Category::Clean,
                Category::NeedsPipeline
            ]
        );
        let s = &r.stories[0];
        assert_eq!(
            (s.total, s.checked, s.unchecked, s.pct_unchecked),
            (10, 7, 3, 30.0)
        );
        assert_eq!(s.path, PathBuf::from(d).join("1-2-closeable.md"));
        assert_eq!(r.stories[1].pct_unchecked, 30.8);
        assert_eq!(r.stories[3].pct_unchecked, 33.3);
        assert_eq!(
            skip_reason(&r, "README.md"),
            Some("excluded by pattern 'README*'")
        );
        assert_eq!(
            skip_reason(&r, "Index.md"),
            Some("excluded by pattern 'index*'")
        );
        assert_eq!(
            skip_reason(&r, "session-report-2024.md"),
            Some("excluded by pattern 'session-report*'")
        );
        assert_eq!(
            skip_reason(&r, "epic-1-retrospective.md"),
            Some("excluded by pattern 'epic-*-retro*'")
        );
        assert_eq!(skip_reason(&r, "notes.md"), Some("no tasks (not a story)"));
        assert_eq!(skip_reason(&r, "latin1.md"), Some("not UTF-8"));
        assert_eq!(
            skip_reason(&r, "big.md"),
            Some("too large (1600 bytes > 1000)")
        );
        assert_eq!(r.skipped.len(), 7);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn recursive_scan_skips_completions() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let d = "docs/stories";
        write(root, &format!("{d}/epic-1/1-1.md"), story(1, 0));
        write(root, &format!("{d}/epic-2/2-1.md"), story(1, 0));
        write(root, &format!("{d}/epic-2/deeper/2-2.md"), story(1, 0));
        write(root, &format!("{d}/completions/9-9.md"), story(1, 0));
        write(root, &format!("{d}/3-1.md"), story(1, 0));
        write(root, &format!("{d}/epic-3/3-1.md"), story(1, 0));
        let mut opts = ScanOptions::new(root);
        assert_eq!(keys(&scan(&opts).unwrap()), ["3-1"]);
        opts.recursive = true;
        let r = scan(&opts).unwrap();
        assert_eq!(keys(&r), ["1-1", "2-1", "2-2", "3-1"]);
        assert_eq!(
            r.stories[2].path,
            PathBuf::from(d).join("epic-2/deeper/2-2.md")
        );
        assert_eq!(r.stories[3].path, PathBuf::from(d).join("3-1.md"));
        assert_eq!(
            skip_reason(&r, "epic-3/3-1.md"),
            Some("duplicate story key '3-1' (also 3-1.md)")
        );
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_file_is_skipped_not_fatal() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "docs/stories/1-1.md", story(1, 0));
        write(root, "docs/stories/1-2.md", story(1, 0));
        let locked = root.join("docs/stories/1-2.md");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        if fs::read(&locked).is_ok() {
            return; // running as root: permissions are not enforced
        }
        let r = scan(&ScanOptions::new(root)).unwrap();
        assert_eq!(keys(&r), ["1-1"]);
        assert!(skip_reason(&r, "1-2.md")
            .unwrap()
            .starts_with("unreadable: "));
    }

    #[test]
    fn huge_file_is_skipped_by_default_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let path = root.join("docs/stories/1-1-huge.md");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Sparse: 6 MiB without writing 6 MiB.
        let file = fs::File::create(&path).unwrap();
        file.set_len(6 * 1024 * 1024).unwrap();
        let r = scan(&ScanOptions::new(root)).unwrap();
        assert!(r.stories.is_empty());
        assert_eq!(
            skip_reason(&r, "1-1-huge.md"),
            Some("too large (6291456 bytes > 5242880)")
        );
    }

    #[test]
    fn dependencies_cycles_and_statuses() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let d = "_bmad-output/implementation-artifacts";
        write(
            root,
            &format!("{d}/1-1-a.md"),
            format!("# A\n\nStatus: done\n\n{}", story(1, 0)),
        );
        write(
            root,
            &format!("{d}/1-2-b.md"),
            format!("# B\n\nStatus: In Progress\n\n## Dependencies\n- Story 1.1\n- Story 1.3\n- 7-7\n\n{}", story(1, 1)),
        );
        write(
            root,
            &format!("{d}/1-3-c.md"),
            format!(
                "---\ndepends_on: [1-2]\nstatus: review\n---\n{}",
                story(1, 0)
            ),
        );
        write(
            root,
            &format!("{d}/story-2.1-d.md"),
            format!("Status: done\n\n{}", story(1, 0)),
        );
        write(
            root,
            &format!("{d}/sprint-status.yaml"),
            "development_status:\n  1-1-a: done\n  1-2-b: in-progress  # x\n  1-3-c: done\n  2-1-d: done\n",
        );
        let r = scan(&ScanOptions::new(root)).unwrap();
        assert_eq!(keys(&r), ["1-1-a", "1-2-b", "1-3-c", "story-2.1-d"]);
        // 1-2-b → 1-3-c → 1-2-b: the edge closing the cycle (1-3-c → 1-2-b) is dropped.
        assert_eq!(r.stories[1].depends_on, ["1-1-a", "1-3-c"]);
        assert_eq!(r.stories[2].depends_on, Vec::<String>::new());
        assert_eq!(
            r.cycles,
            vec![vec!["1-2-b".to_string(), "1-3-c".to_string()]]
        );
        assert_eq!(r.stories[3].sprint_status.as_deref(), Some("done"));
        assert_eq!(r.stories[1].status.as_deref(), Some("in progress"));
        assert_eq!(r.stories[1].sprint_status.as_deref(), Some("in-progress"));
        assert_eq!(
            r.warnings,
            [
                "story 1-2-b: dependency no story matches '7-7'",
                "dependency cycle 1-2-b → 1-3-c → 1-2-b; ignoring the dependency of 1-3-c on 1-2-b",
                "story 1-3-c: its file says status 'review' but sprint-status.yaml says 'done'",
            ]
        );
        assert!(!r
            .skipped
            .iter()
            .any(|s| s.filename.starts_with("sprint-status")));
    }

    #[test]
    fn sprint_status_in_parent_of_stories_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "docs/sprint-artifacts/sprint-status.yaml",
            "development_status:\n  1-1-x: review\n",
        );
        write(root, "docs/sprint-artifacts/stories/1-1-x.md", story(1, 1));
        let r = scan(&ScanOptions::new(root)).unwrap();
        assert_eq!(
            r.artifacts_dir,
            PathBuf::from("docs/sprint-artifacts/stories")
        );
        assert_eq!(r.stories[0].sprint_status.as_deref(), Some("review"));
    }

    #[test]
    fn broken_sprint_status_is_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "docs/stories/1-1.md", story(1, 0));
        write(
            root,
            "docs/stories/sprint-status.yaml",
            b"development_status:\n  1-1: \xff\n".as_slice(),
        );
        let r = scan(&ScanOptions::new(root)).unwrap();
        assert_eq!(keys(&r), ["1-1"]);
        assert_eq!(r.stories[0].sprint_status, None);
        assert_eq!(
            r.warnings,
            ["ignoring docs/stories/sprint-status.yaml: not UTF-8"]
        );
    }

    #[test]
    fn custom_exclude_patterns() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "docs/stories/1-1.md", story(1, 0));
        write(root, "docs/stories/draft-1-2.md", story(1, 0));
        write(root, "docs/stories/1-3-wip.md", story(1, 0));
        let mut opts = ScanOptions::new(root);
        opts.exclude_patterns = vec!["DRAFT".into(), "*-wip".into()];
        let r = scan(&opts).unwrap();
        assert_eq!(keys(&r), ["1-1", "1-3-wip"]);
        opts.exclude_patterns = vec!["*-wip.md".into()];
        assert_eq!(keys(&scan(&opts).unwrap()), ["1-1", "draft-1-2"]);
    }

    #[test]
    fn globs() {
        assert!(glob_match("readme*", "readme.md"));
        assert!(glob_match("epic-*-retro*", "epic-12-retro-2024.md"));
        assert!(!glob_match("epic-*-retro*", "1-2-epic-retro.md"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("*a*b", "xxaxxbxx"));
        assert!(glob_match("*", ""));
        assert!(!glob_match(&"*a".repeat(50), &"a".repeat(49)));
    }

    #[test]
    fn natural_order() {
        let mut ks = vec![
            "2-1", "1-10", "1-2", "10-1", "1-2-a", "19a-1", "19-9", "H-1", "1-02",
        ];
        ks.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ks,
            ["1-2", "1-02", "1-2-a", "1-10", "2-1", "10-1", "19-9", "19a-1", "H-1"]
        );
        assert_eq!(natural_cmp("H-1", "h-1"), Ordering::Less);
        assert_eq!(natural_cmp("H-1-b", "h-1-a"), Ordering::Greater);
        assert_eq!(
            natural_cmp("99999999999999999999999-1", "100000000000000000000000-1"),
            Ordering::Less
        );
    }

    #[test]
    fn percent_rounding() {
        assert_eq!(pct_one_decimal(1, 3), 33.3);
        assert_eq!(pct_one_decimal(2, 3), 66.7);
        assert_eq!(pct_one_decimal(1, 8), 12.5);
        assert_eq!(pct_one_decimal(1, 16), 6.3);
        assert_eq!(pct_one_decimal(0, 0), 0.0);
    }
}
