//! `git-teleos scan --json` against `cat` on real story files (issue 11 §4).
//!
//! `SCAN_REAL_SOURCES="GIT_DIR:COMMIT GIT_DIR:COMMIT …" cargo bench --bench scan_real` copies
//! the story files of those repositories (Markdown files under story folders that have task
//! lists and are not epics, specs or reports) into a temporary repository outside this one,
//! replicated to `SCAN_REAL_FILES` files (default 10,000), then runs both measures once as a
//! warm-up and `SCAN_REAL_ROUNDS` rounds (default 7), alternating which goes first, and prints
//! every sample, the medians and the ratio. It rewrites its section of `BENCHMARKS.md` (between
//! the scan-real markers) unless `SCAN_REAL_WRITE=0`. The corpus is deleted afterwards; set
//! `SCAN_REAL_KEEP=DIR` to build it in `DIR` and keep it (for profiling).
//!
//! Without `--bench` or without sources (as `cargo test --benches` runs it) it does nothing.

mod fixture;
#[path = "pool/fresh_fs.rs"]
#[allow(dead_code)]
mod fresh_fs;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use git_teleos::stories::discover::is_non_story_name;

const CAT_CHUNK: usize = 1_000;
const START_MARKER: &str = "<!-- scan-real:start -->";
const END_MARKER: &str = "<!-- scan-real:end -->";
const TARGET_VS_CAT: f64 = 3.0;

fn git(git_dir: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run git");
    out.stdout
}

/// Whether a repository path looks like a story file worth copying.
fn is_story_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let folder_ok = ["stories", "sprint-artifacts", "implementation-artifacts"]
        .iter()
        .any(|f| path.contains(&format!("{f}/")));
    folder_ok
        && name.ends_with(".md")
        && name.chars().next().is_some_and(|c| c.is_ascii_digit())
        && !is_non_story_name(name)
}

fn has_tasks(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("- [ ]") || l.starts_with("- [x]") || l.starts_with("- [X]")
    })
}

/// Real story texts of every source, in a stable order.
fn real_stories(sources: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, spec) in sources.split_whitespace().enumerate() {
        let (git_dir, commit) = spec.rsplit_once(':').expect("sources are GIT_DIR:COMMIT");
        let list = git(git_dir, &["ls-tree", "-r", "--name-only", commit]);
        let list = String::from_utf8_lossy(&list);
        for path in list.lines().filter(|p| is_story_path(p)) {
            let bytes = git(git_dir, &["show", &format!("{commit}:{path}")]);
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            if has_tasks(text) {
                let name = path.rsplit('/').next().unwrap_or(path);
                out.push((format!("r{i}-{name}"), bytes));
            }
        }
    }
    out
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let sources = std::env::var("SCAN_REAL_SOURCES").unwrap_or_default();
    if !benching || sources.trim().is_empty() {
        eprintln!("scan_real: set SCAN_REAL_SOURCES and run with cargo bench; nothing to do");
        return;
    }
    let files: usize = std::env::var("SCAN_REAL_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rounds: usize = std::env::var("SCAN_REAL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let bin = std::env::var_os("SCAN_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_git-teleos")));

    let stories = real_stories(&sources);
    assert!(!stories.is_empty(), "no story files in {sources}");
    let tmp = tempfile::tempdir().expect("temp dir");
    let keep = std::env::var_os("SCAN_REAL_KEEP");
    // The corpus gets a filesystem of its own (unless kept for profiling), so no earlier run's
    // disk state (dirty pages written back, freed inodes) can bias these reads.
    let fs_kind = if keep.is_some() {
        fresh_fs::FsKind::Folder
    } else {
        fresh_fs::FsKind::probe(tmp.path())
    };
    let _fresh = fresh_fs::FreshFs::new(fs_kind, tmp.path(), &tmp.path().join("fs"));
    let root = match keep {
        Some(dir) => PathBuf::from(dir),
        None => tmp.path().join("fs/repo"),
    };
    let home = tmp.path().join("fs/home");
    let dir = root.join("docs/stories");
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::create_dir_all(&home).expect("home");
    let mut paths = Vec::with_capacity(files);
    let mut bytes = 0u64;
    for i in 0..files {
        let (name, text) = &stories[i % stories.len()];
        let copy = i / stories.len();
        let name = if copy == 0 {
            name.clone()
        } else {
            format!("{}-c{copy}.md", name.trim_end_matches(".md"))
        };
        let path = dir.join(name);
        fs::write(&path, text).expect("write story");
        bytes += text.len() as u64;
        paths.push(path);
    }
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&root)
        .status()
        .expect("git init");
    assert!(status.success());
    // Written back before anything is measured.
    let _ = Command::new("sync").status();
    eprintln!("filesystem: {}", fs_kind.describe());
    eprintln!(
        "corpus: {} files ({} distinct real stories), {:.1} MB in {}",
        files,
        stories.len(),
        bytes as f64 / 1e6,
        dir.display()
    );

    let run_scan = |root: &Path| {
        let start = Instant::now();
        let status = fixture::hermetic(&mut Command::new(&bin), &home)
            .current_dir(root)
            .args(["scan", "--json"])
            .stdout(Stdio::null())
            .status()
            .expect("run git-teleos");
        assert!(status.success(), "scan failed");
        start.elapsed().as_secs_f64()
    };
    let run_cat = |paths: &[PathBuf]| {
        let start = Instant::now();
        for chunk in paths.chunks(CAT_CHUNK) {
            let status = Command::new("cat")
                .args(chunk)
                .stdout(Stdio::null())
                .status()
                .expect("run cat");
            assert!(status.success());
        }
        start.elapsed().as_secs_f64()
    };
    run_scan(&root);
    run_cat(&paths);
    let (mut scans, mut cats) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            scans.push(run_scan(&root));
            cats.push(run_cat(&paths));
        } else {
            cats.push(run_cat(&paths));
            scans.push(run_scan(&root));
        }
    }
    let ratios: Vec<f64> = scans.iter().zip(&cats).map(|(s, c)| s / c).collect();
    let (ms, mc, mr) = (
        median(scans.clone()),
        median(cats.clone()),
        median(ratios.clone()),
    );
    let fmt = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut section = String::new();
    let _ = writeln!(section, "{START_MARKER}");
    let _ = writeln!(
        section,
        "### Scan on real story files (`benches/scan_real.rs`)\n"
    );
    let _ = writeln!(
        section,
        "Corpus: {files} files, {:.1} MB, copies of {} real story files from {} public BMAD repositories \
         (`SCAN_REAL_SOURCES`), built at bench time outside the repository on {} and synced before measuring; \
         both measured with a warm page cache (one warm-up each). {rounds} rounds, alternating order, \
         `nproc` = {}.\n",
        bytes as f64 / 1e6,
        stories.len(),
        sources.split_whitespace().count(),
        fs_kind.describe().replace(" per run", " for this run"),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    let _ = writeln!(section, "| measure | median (s) | samples (s) |");
    let _ = writeln!(section, "| --- | --- | --- |");
    let _ = writeln!(
        section,
        "| `git-teleos scan --json` (release binary) | {ms:.3} | {} |",
        fmt(&scans)
    );
    let _ = writeln!(
        section,
        "| `cat` of all files, {CAT_CHUNK} per process | {mc:.3} | {} |",
        fmt(&cats)
    );
    let _ = writeln!(
        section,
        "\nScan / cat, per round: {}; median **{mr:.2}×** (target ≤ {TARGET_VS_CAT}×: {}).",
        fmt(&ratios),
        if mr <= TARGET_VS_CAT {
            "met"
        } else {
            "not met"
        }
    );
    let _ = writeln!(section, "{END_MARKER}");
    print!("{section}");

    if std::env::var("SCAN_REAL_WRITE").as_deref() != Ok("0") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        let old = fs::read_to_string(&path).unwrap_or_default();
        let new = match (old.find(START_MARKER), old.find(END_MARKER)) {
            (Some(a), Some(b)) if a < b => {
                format!(
                    "{}{}{}",
                    &old[..a],
                    section.trim_end(),
                    &old[b + END_MARKER.len()..]
                )
            }
            _ => format!("{}\n{}", old.trim_end(), section),
        };
        fs::write(&path, new).expect("write BENCHMARKS.md");
        eprintln!("wrote {}", path.display());
    }
}
