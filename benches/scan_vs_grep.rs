//! Workload C of the benchmarks: scanning 10,000 story files with `git-teleos scan --json`,
//! against the source workflow's method (two `grep -c` processes per file) and against `cat` of
//! the same files, in the same run.
//!
//! `cargo bench --bench scan_vs_grep` builds the fixture (a git repository holding
//! `SCAN_BENCH_FILES` generated stories, default 10,000), runs every measure once as a warm-up
//! (so all of them are measured with the page cache warm), then `SCAN_BENCH_ROUNDS` rounds
//! (default 5) with the order rotated each round, and prints the medians and ratios. It then
//! rewrites its own section of `BENCHMARKS.md` (between the scan-bench markers), so no figure
//! there is typed by hand. Set `SCAN_BENCH_WRITE=0` to leave the file alone; runs with a file
//! count other than the default only write it when `SCAN_BENCH_WRITE=1`.
//!
//! Run without `--bench` (as `cargo test --benches` does) it is a smoke test on 50 files.
//! `SCAN_BENCH_FIXTURE=DIR` only builds the fixture in `DIR` and keeps it, for profiling.

mod fixture;
#[path = "pool/fresh_fs.rs"]
#[allow(dead_code)]
mod fresh_fs;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use git_teleos::stories::{scan, ScanOptions};

const DEFAULT_FILES: usize = 10_000;
const DEFAULT_ROUNDS: usize = 5;
/// Files per `cat` process (one process per chunk, as `xargs -n 1000 cat` would).
const CAT_CHUNK: usize = 1_000;
const UNCHECKED: &str = r"^\s*- \[ \]";
const ANY_BOX: &str = r"^\s*- \[[xX ]\]";
const TARGET_VS_GREP: f64 = 0.05;
const TARGET_VS_CAT: f64 = 3.0;
const START_MARKER: &str = "<!-- scan-bench:start -->";
const END_MARKER: &str = "<!-- scan-bench:end -->";

/// One way of reading the fixture.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// The release binary, one process, as a user runs it.
    Binary,
    /// `git_teleos::stories::scan` called in this process: the binary minus process start,
    /// settings, repository discovery and JSON output.
    InProcess,
    /// Two `grep -c` processes per file.
    Grep,
    /// `cat` of every file, one process per `CAT_CHUNK` files.
    Cat,
}

const MEASURES: [Measure; 4] = [
    Measure::Binary,
    Measure::InProcess,
    Measure::Grep,
    Measure::Cat,
];

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Measure::Binary => "A",
            Measure::InProcess => "A′",
            Measure::Grep => "B",
            Measure::Cat => "C",
        }
    }

    fn description(self) -> String {
        match self {
            Measure::Binary => "`git-teleos scan --json` (release binary, stdout to /dev/null)".into(),
            Measure::InProcess => "`git_teleos::stories::scan` in-process (no process start, no JSON)".into(),
            Measure::Grep => format!(
                "`grep -c '{UNCHECKED}' f` and `grep -c '{ANY_BOX}' f` per file, sequential, output captured"
            ),
            Measure::Cat => format!("`cat` of all files, {CAT_CHUNK} files per process, to /dev/null"),
        }
    }
}

struct Setup {
    bin: PathBuf,
    root: PathBuf,
    home: PathBuf,
    files: Vec<PathBuf>,
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        Err(_) => default,
    }
}

fn run(setup: &Setup, measure: Measure) -> Duration {
    let start = Instant::now();
    match measure {
        Measure::Binary => {
            let status = fixture::hermetic(&mut Command::new(&setup.bin), &setup.home)
                .current_dir(&setup.root)
                .args(["scan", "--json"])
                .stdout(Stdio::null())
                .status()
                .expect("run git-teleos");
            assert!(status.success(), "git-teleos scan failed: {status}");
        }
        Measure::InProcess => {
            let result = scan(&ScanOptions::new(&setup.root)).expect("scan");
            std::hint::black_box(result);
        }
        Measure::Grep => {
            for file in &setup.files {
                for pattern in [UNCHECKED, ANY_BOX] {
                    // Exit status 1 means "no match": the count (0) is still on stdout.
                    let out = Command::new("grep")
                        .env("LC_ALL", "C")
                        .args(["-c", pattern])
                        .arg(file)
                        .stdin(Stdio::null())
                        .output()
                        .expect("run grep");
                    assert!(out.status.code().is_some_and(|c| c <= 1), "grep failed");
                    std::hint::black_box(out.stdout);
                }
            }
        }
        Measure::Cat => {
            for chunk in setup.files.chunks(CAT_CHUNK) {
                let status = Command::new("cat")
                    .args(chunk)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .expect("run cat");
                assert!(status.success(), "cat failed");
            }
        }
    }
    start.elapsed()
}

/// `10000` as `10,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if !n.is_multiple_of(2) {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The release binary cargo built for this bench (benchmarks get `CARGO_BIN_EXE_*`, built
/// with the bench profile, which inherits `release`); `SCAN_BENCH_BIN` overrides it.
fn binary() -> PathBuf {
    let bin = std::env::var_os("SCAN_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_git-teleos")));
    assert!(bin.is_file(), "no git-teleos binary at {}", bin.display());
    bin
}

/// First line of a command's stdout, or `unknown`.
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Value of the first `key : value` line of a /proc file.
fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    text.lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn machine(fixture_dir: &Path) -> Vec<(&'static str, String)> {
    let memory = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let disk = Command::new("df")
        .args(["-hT"])
        .arg(fixture_dir)
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let cols: Vec<String> = text
                .lines()
                .nth(1)?
                .split_whitespace()
                .map(str::to_string)
                .collect();
            (cols.len() >= 3).then(|| {
                format!(
                    "fixture in {} on {} ({}, {} total)",
                    fixture_dir.display(),
                    cols[0],
                    cols[1],
                    cols[2]
                )
            })
        })
        .unwrap_or_else(|| "unknown".into());
    vec![
        ("CPUs (`nproc`)", first_line("nproc", &[])),
        (
            "CPU model",
            proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        ),
        ("memory", memory),
        ("disk", disk),
        ("kernel", first_line("uname", &["-sr"])),
        (
            "load average at start (1/5/15 min)",
            fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into()),
        ),
        ("grep", first_line("grep", &["--version"])),
        ("cat", first_line("cat", &["--version"])),
    ]
}

fn commit_of_this_checkout() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let sha = first_line("git", &["-C", dir, "rev-parse", "--short=12", "HEAD"]);
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{sha} (with uncommitted changes)")
    } else {
        sha
    }
}

/// Put `section` between the markers of `BENCHMARKS.md`, creating the file or appending the
/// markers when missing; everything outside the markers is kept.
fn publish(section: &str) -> std::io::Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let old = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n\n".to_string(),
        Err(e) => return Err(e),
    };
    let block = format!("{START_MARKER}\n{section}{END_MARKER}");
    let new = match (old.find(START_MARKER), old.find(END_MARKER)) {
        (Some(s), Some(e)) if s < e => {
            format!("{}{block}{}", &old[..s], &old[e + END_MARKER.len()..])
        }
        _ => format!("{}\n\n{block}\n", old.trim_end()),
    };
    fs::write(&path, new)?;
    Ok(path)
}

fn main() {
    // cargo bench passes --bench; cargo test --benches runs us without it: a quick smoke run.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (default_files, default_rounds) = if bench_mode {
        (DEFAULT_FILES, DEFAULT_ROUNDS)
    } else {
        (50, 1)
    };
    let file_count = env_usize("SCAN_BENCH_FILES", default_files).max(1);
    let rounds = env_usize("SCAN_BENCH_ROUNDS", default_rounds).max(1);
    let write = match std::env::var("SCAN_BENCH_WRITE").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => bench_mode && file_count == DEFAULT_FILES,
    };

    // SCAN_BENCH_FIXTURE=DIR: only build the fixture in DIR (kept), e.g. to profile the binary.
    if let Some(dir) = std::env::var_os("SCAN_BENCH_FIXTURE") {
        let dir = PathBuf::from(dir);
        let (root, home) = (dir.join("repo"), dir.join("home"));
        fixture::init_repo(&root, &home);
        fixture::write_stories(&root, file_count).expect("write stories");
        eprintln!(
            "fixture: {file_count} stories in {}; profile with e.g.\n  cd {} && valgrind \
             --tool=callgrind {} scan --json >/dev/null",
            root.display(),
            root.display(),
            binary().display()
        );
        return;
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let scratch = tmp.path().canonicalize().expect("canonical tempdir");
    // The fixture gets a filesystem of its own, so no earlier run's disk state (dirty pages
    // being written back, freed inodes) can bias these reads.
    let fs_kind = if bench_mode {
        fresh_fs::FsKind::probe(&scratch)
    } else {
        fresh_fs::FsKind::Folder
    };
    let _fresh = fresh_fs::FreshFs::new(fs_kind, &scratch, &scratch.join("fs"));
    let base = scratch.join("fs");
    eprintln!("filesystem: {}", fs_kind.describe());
    let (root, home) = (base.join("repo"), base.join("home"));
    fixture::init_repo(&root, &home);
    let built = Instant::now();
    let files = fixture::write_stories(&root, file_count).expect("write stories");
    // Written back before anything is measured.
    let _ = Command::new("sync").status();
    let bytes: u64 = files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let lines: usize = (0..file_count)
        .map(|i| fixture::story_text(i).lines().count())
        .sum();
    eprintln!(
        "fixture: {file_count} stories, {:.1} MB, {lines} lines, written in {:.2}s to {}",
        bytes as f64 / 1e6,
        built.elapsed().as_secs_f64(),
        root.display()
    );
    let setup = Setup {
        bin: binary(),
        root,
        home,
        files,
    };
    eprintln!("binary: {}", setup.bin.display());

    // Sanity: the binary and the library agree on what the fixture holds.
    let expected = scan(&ScanOptions::new(&setup.root)).expect("scan");
    let out = fixture::hermetic(&mut Command::new(&setup.bin), &setup.home)
        .current_dir(&setup.root)
        .args(["scan", "--json"])
        .output()
        .expect("run git-teleos");
    assert!(
        out.status.success(),
        "git-teleos scan --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("scan --json output");
    assert_eq!(
        json["total_stories_scanned"].as_u64(),
        Some((expected.stories.len() + expected.skipped.len()) as u64),
        "binary and library disagree"
    );
    eprintln!(
        "scan finds {} stories, {} skipped; JSON output {:.1} MB",
        expected.stories.len(),
        expected.skipped.len(),
        out.stdout.len() as f64 / 1e6
    );

    // Warm-up: every measure once, so all are measured with the page cache warm.
    for m in MEASURES {
        let t = run(&setup, m);
        eprintln!("warm-up {:<2} {:>8.3}s", m.label(), t.as_secs_f64());
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); MEASURES.len()];
    for round in 0..rounds {
        // Rotate the order each round so no measure always follows the same one.
        for k in 0..MEASURES.len() {
            let i = (round + k) % MEASURES.len();
            let t = run(&setup, MEASURES[i]).as_secs_f64();
            eprintln!(
                "round {}/{rounds} {:<2} {t:>8.3}s",
                round + 1,
                MEASURES[i].label()
            );
            times[i].push(t);
        }
    }
    let medians: Vec<f64> = times.iter().map(|t| median(t.clone())).collect();
    let (a, a_in, b, c) = (medians[0], medians[1], medians[2], medians[3]);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| | measure | median s | min s | max s |\n| --- | --- | ---: | ---: | ---: |"
    );
    for (i, m) in MEASURES.iter().enumerate() {
        let min = times[i].iter().cloned().fold(f64::INFINITY, f64::min);
        let max = times[i].iter().cloned().fold(0.0, f64::max);
        let _ = writeln!(
            table,
            "| {} | {} | {:.3} | {min:.3} | {max:.3} |",
            m.label(),
            m.description(),
            medians[i]
        );
    }
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = writeln!(
        table,
        "\n| ratio | value | target | |\n| --- | ---: | ---: | --- |"
    );
    let _ = writeln!(
        table,
        "| A / B | {:.4} | ≤ {TARGET_VS_GREP} | {} |",
        a / b,
        verdict(a / b <= TARGET_VS_GREP)
    );
    let _ = writeln!(
        table,
        "| A / C | {:.2} | ≤ {TARGET_VS_CAT} | {} |",
        a / c,
        verdict(a / c <= TARGET_VS_CAT)
    );
    let _ = writeln!(
        table,
        "| A′ / B | {:.4} | (in-process, for reference) | |",
        a_in / b
    );
    let _ = writeln!(
        table,
        "| A′ / C | {:.2} | (in-process, for reference) | |",
        a_in / c
    );
    println!("\n{table}");

    if !write {
        eprintln!("BENCHMARKS.md left alone (SCAN_BENCH_WRITE, or a non-default file count)");
        return;
    }
    let mut section = String::new();
    let _ = writeln!(
        section,
        "## Workload C: scan of {} story files vs `grep -c` vs `cat`\n",
        thousands(file_count)
    );
    let _ = writeln!(
        section,
        "_Generated by `benches/scan_vs_grep.rs` at {} (commit {}); do not edit by hand._\n",
        first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        commit_of_this_checkout()
    );
    let _ = writeln!(
        section,
        "Command:\n\n```sh\ncargo bench --bench scan_vs_grep\n```\n\n\
         (`SCAN_BENCH_FILES` and `SCAN_BENCH_ROUNDS` shorten it; only the default 10,000 files \
         rewrite this section.)\n"
    );
    let _ = writeln!(section, "| machine | |\n| --- | --- |");
    for (k, v) in machine(&base) {
        let _ = writeln!(section, "| {k} | {} |", v.replace('|', "\\|"));
    }
    let _ = writeln!(
        section,
        "\nFixture: a git repository (no commits needed) with {} generated stories in `{}`, \
         {:.1} MB, {} lines, 20–80 lines each with task lists, subtasks, code fences and tables \
         (fixed seed: the same bytes on every machine); the scan finds {} stories and skips {} \
         (no tasks).\n",
        thousands(file_count),
        fixture::STORIES_DIR,
        bytes as f64 / 1e6,
        thousands(lines),
        thousands(expected.stories.len()),
        thousands(expected.skipped.len())
    );
    let _ = writeln!(
        section,
        "Method: the fixture is written to {} and synced before any measure; every measure \
         runs once as a warm-up, so **all are measured with a warm page cache** (the cache is \
         not dropped: a cold run measures the disk, not the method); then {rounds} rounds, the \
         order rotated each round; medians.\n",
        fs_kind.describe().replace(" per run", " for this run")
    );
    section.push_str(&table);
    match publish(&section) {
        Ok(path) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write BENCHMARKS.md: {e}"),
    }
}
