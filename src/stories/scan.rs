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
use super::tasks::{ParseOptions, ParsedStory, StoryParser};
use super::{Category, ScanResult, Skipped, Story};
use crate::error::{Error, ReadError};

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
    for d in found.dirs.iter().filter(|d| !found.sparse.contains(d)) {
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

    let outcomes: Vec<(String, PathBuf, Result<ParsedStory, ReadError>)> = candidates
        .into_par_iter()
        // One read buffer and one parser (options prepared, buffers kept) per piece of work
        // rayon hands a thread, not per file. The scan keeps counts, not the tasks: they are
        // not built at all (`StoryParser::counts`).
        .map_init(
            || (Vec::new(), StoryParser::new(&opts.parse)),
            |(buf, parser), (name, path)| {
                let parsed =
                    read_story_into(&path, opts.max_file_size, buf).map(|t| parser.counts(t));
                (name, path, parsed)
            },
        )
        .collect();

    let mut parsed: Vec<(String, PathBuf, ParsedStory)> = Vec::new();
    let mut seen = std::collections::BTreeMap::<String, String>::new();
    for (name, path, outcome) in outcomes {
        let story = match outcome {
            Err(e) => {
                result.skipped.push(Skipped {
                    filename: name,
                    reason: e.to_string(),
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
    // Sorted through indices: the entries are large, and moving them about cost more than
    // comparing their keys. Keys are unique here, so the order is the same.
    let mut order: Vec<usize> = (0..parsed.len()).collect();
    order.sort_by(|&i, &j| natural_cmp(&parsed[i].0, &parsed[j].0));
    let mut slots: Vec<Option<(String, PathBuf, ParsedStory)>> =
        parsed.into_iter().map(Some).collect();
    let parsed: Vec<(String, PathBuf, ParsedStory)> =
        order.iter().filter_map(|&i| slots[i].take()).collect();

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
        let first = files.len();
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
        // This folder's files share its path as prefix, so their bytes order them as paths
        // do; sorted so, cheaply, they form one run the sort below only has to merge (path
        // comparison, component by component, is slow on thousands of files).
        files[first..].sort_unstable_by(|a, b| {
            a.as_os_str()
                .as_encoded_bytes()
                .cmp(b.as_os_str().as_encoded_bytes())
        });
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
fn read_story(path: &Path, limit: u64) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    read_story_into(path, limit, &mut buf).map(str::to_string)
}

/// [`read_story`] into `buf`, which keeps its capacity from file to file: the scan's workers
/// read thousands of files each, and a fresh buffer per file was an allocation and a free of
/// ~12 KB (with its page faults) per story. The text is borrowed from `buf`.
fn read_story_into<'b>(
    path: &Path,
    limit: u64,
    buf: &'b mut Vec<u8>,
) -> Result<&'b str, ReadError> {
    let file = fs::File::open(path).map_err(ReadError::Unreadable)?;
    let size = file.metadata().map_err(ReadError::Unreadable)?.len();
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    buf.clear();
    // Sized from the metadata: no regrowth, no probe read past the end.
    buf.reserve(usize::try_from(size).unwrap_or(0).saturating_add(1));
    file.take(limit.saturating_add(1))
        .read_to_end(buf)
        .map_err(ReadError::Unreadable)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::GrewTooLarge { limit });
    }
    let text = std::str::from_utf8(buf).map_err(ReadError::NotUtf8)?;
    // A byte-order mark would hide a leading front-matter fence or heading.
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The first pattern excluding `name`, if any.
fn excluded_by<'p>(patterns: &'p [String], name: &str) -> Option<&'p str> {
    let lower = name.to_lowercase();
    patterns.iter().map(String::as_str).find(|p| {
        // Patterns are nearly always lowercase already: no copy then.
        let p: std::borrow::Cow<str> = if p.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase())
        {
            (*p).into()
        } else {
            p.to_lowercase().into()
        };
        if p.contains('*') {
            glob_match(&p, &lower)
        } else {
            lower.starts_with(&*p)
        }
    })
}

/// `*`-only glob over the whole name, by the usual greedy match with one backtrack point:
/// linear in practice and never exponential.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    if pattern.is_ascii() && name.is_ascii() {
        // Bytes are characters here: no decoding into vectors.
        return glob_match_in(pattern.as_bytes(), name.as_bytes(), b'*');
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    glob_match_in(&p, &n, '*')
}

fn glob_match_in<T: PartialEq + Copy>(p: &[T], n: &[T], any: T) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == any {
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
    p[pi..].iter().all(|c| *c == any)
}

/// Compare keys with digit runs as numbers: `1-2` < `1-10` < `2-1`, `19a-1` after `19-9`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    // Skip the common prefix (keys of one epic share a long one), backed up to the start of
    // a digit run it ends in: identical bytes and identical numbers compare equal and leave
    // the tie alone, so what follows compares the same.
    let mut common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    while common > 0 && a[common - 1].is_ascii_digit() {
        common -= 1;
    }
    (a, b) = (&a[common..], &b[common..]);
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
mod tests;
