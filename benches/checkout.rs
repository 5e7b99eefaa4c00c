//! Which worktree checkout is fastest here: gix's (`git_teleos::git::add_worktree`, the one
//! git-teleos uses) with 1, 2 and N threads against `git worktree add` with git's parallel
//! checkout (`checkout.workers` 1, 2 and N), on a fresh disk filesystem (a loop-mounted ext4
//! image, as root) and on a fresh tmpfs.
//!
//! ```sh
//! cargo bench --bench checkout                         # 20,000 files, 3 rounds
//! CHECKOUT_FILES=2000 CHECKOUT_ROUNDS=1 cargo bench --bench checkout
//! ```
//!
//! Knobs (environment): `CHECKOUT_FILES` (default 20000), `CHECKOUT_ROUNDS` (default 3),
//! `CHECKOUT_TMPDIR` (where the fixture and the images go, default the system temp folder),
//! `CHECKOUT_WRITE=0` (print only; by default the `checkout-bench` section of BENCHMARKS.md is
//! rewritten).
//!
//! Each timed run makes one worktree of the same 20,000-file repository (the e2e benchmark's
//! fixture shape) on a filesystem made for that run alone, from a fresh `cp -a` of the fixture
//! (not timed, so its objects are in the page cache for every side alike). The variants
//! rotate round by round. gix's thread count is set as git-teleos users set it, with
//! `checkout.workers` (gix reads the same key; unset, gix uses every core and git one).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

// Shared with `benches/e2e.rs` and `benches/pool.rs`; this bench picks the kinds itself.
#[path = "fixture/mod.rs"]
mod fixture;
#[path = "pool/fresh_fs.rs"]
#[allow(dead_code)]
mod fresh_fs;
use fresh_fs::{FreshFs, FsKind};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const MARK_START: &str = "<!-- checkout-bench:start -->";
const MARK_END: &str = "<!-- checkout-bench:end -->";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("checkout: benchmark skipped (run it with `cargo bench --bench checkout`)");
        return;
    }
    let files: usize = env_or("CHECKOUT_FILES", 20_000);
    let rounds: usize = env_or("CHECKOUT_ROUNDS", 3usize).max(1);
    let write = std::env::var("CHECKOUT_WRITE").map_or(true, |v| v != "0");
    let tmpdir = std::env::var_os("CHECKOUT_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    fs::create_dir_all(&tmpdir).expect("create CHECKOUT_TMPDIR");
    let tmp = tempfile::Builder::new()
        .prefix("teleos-checkout-")
        .tempdir_in(&tmpdir)
        .expect("temp dir");
    let root = tmp.path().canonicalize().expect("canonical temp dir");
    let load_start = loadavg();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut workers = vec![1, 2, cores];
    workers.dedup();
    let variants: Vec<(Tool, usize)> = workers
        .iter()
        .flat_map(|&w| [(Tool::Gix, w), (Tool::Git, w)])
        .collect();
    println!("checkout: building the fixture ({files} files)");
    let fixture = build_fixture(&root, files);
    let kinds: Vec<FsKind> = [FsKind::LoopExt4, FsKind::Tmpfs]
        .into_iter()
        .filter(|&k| FreshFs::mount(k, &root, &root.join("probe")).is_some())
        .collect();
    if kinds.is_empty() {
        eprintln!("checkout: cannot mount a filesystem (not root?): nothing measured");
        return;
    }
    let mut results: Vec<(FsKind, Tool, usize, Vec<f64>)> = Vec::new();
    for &kind in &kinds {
        for &(tool, w) in &variants {
            results.push((kind, tool, w, Vec::new()));
        }
        for round in 0..rounds {
            let mut order = variants.clone();
            order.rotate_left(round % variants.len());
            for (tool, w) in order {
                let mnt = root.join("run");
                let fresh = FreshFs::new(kind, &root, &mnt);
                let repo = mnt.join("repo");
                run_ok(Command::new("cp").arg("-a").arg(&fixture).arg(&repo));
                run_ok(&mut Command::new("sync"));
                let wt = repo.join(".claude/worktrees/teleos-c0c0c0-1");
                let secs = match tool {
                    Tool::Gix => gix_add(&repo, &wt, w),
                    Tool::Git => git_add(&repo, &wt, w),
                };
                check_clean(&wt);
                println!(
                    "{} round {}: {:<4} {w} worker(s): {secs:.3} s",
                    kind_name(kind),
                    round + 1,
                    tool.name()
                );
                let slot = results
                    .iter_mut()
                    .find(|r| r.0 == kind && r.1 == tool && r.2 == w)
                    .expect("variant listed");
                slot.3.push(secs);
                drop(fresh);
            }
        }
    }
    let section = markdown(
        files,
        rounds,
        cores,
        &results,
        &load_start,
        &loadavg(),
        &kinds,
    );
    println!("\n{section}");
    if write {
        let path = Path::new(MANIFEST_DIR).join("BENCHMARKS.md");
        match fixture::write_section(&path, MARK_START, MARK_END, &section) {
            Ok(()) => println!(
                "checkout: wrote the checkout-bench section of {}",
                path.display()
            ),
            Err(e) => eprintln!("checkout: could not write {}: {e}", path.display()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Gix,
    Git,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Gix => "gix",
            Tool::Git => "git",
        }
    }
}

fn kind_name(kind: FsKind) -> &'static str {
    match kind {
        FsKind::LoopExt4 => "ext4 (loop)",
        FsKind::Tmpfs => "tmpfs",
        FsKind::Folder => "shared folder",
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// git with the benchmark's hermetic environment: no user or system config, fixed identities.
fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&k);
        }
    }
    cmd.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .stdin(Stdio::null());
    cmd
}

fn run_ok(cmd: &mut Command) {
    let st = cmd.status().expect("spawn");
    assert!(st.success(), "{cmd:?} failed");
}

/// The e2e benchmark's fixture shape: `files` small Rust files, 500 a folder, committed and
/// packed.
fn build_fixture(root: &Path, files: usize) -> PathBuf {
    let dir = root.join("fixture");
    fixture::write_filler(&dir, files);
    fs::write(dir.join("README.md"), "# fixture\n").expect("write readme");
    run_ok(git(&dir).args(["init", "-q", "-b", "main"]));
    run_ok(git(&dir).args(["add", "-A"]));
    run_ok(git(&dir).args(["-c", "gc.auto=0", "commit", "-q", "-m", "fixture"]));
    run_ok(git(&dir).args(["gc", "-q"]));
    dir
}

/// git-teleos's way: `git_teleos::git::add_worktree` on a repository opened with
/// `checkout.workers=<workers>`.
fn gix_add(repo: &Path, wt: &Path, workers: usize) -> f64 {
    let started = Instant::now();
    let opts =
        gix::open::Options::default().config_overrides([format!("checkout.workers={workers}")]);
    let main = gix::open_opts(repo, opts).expect("open fixture");
    let head = main.head_id().expect("HEAD").detach();
    git_teleos::git::add_worktree(
        &main,
        wt,
        "worktree/teleos-c0c0c0-1",
        head,
        &AtomicBool::new(false),
    )
    .expect("add_worktree");
    started.elapsed().as_secs_f64()
}

/// `git -c checkout.workers=<workers> worktree add -b …` (git checks out in parallel only when
/// workers > 1 and at least `checkout.thresholdForParallelism`, 100, files change).
fn git_add(repo: &Path, wt: &Path, workers: usize) -> f64 {
    let started = Instant::now();
    run_ok(
        git(repo)
            .args(["-c", &format!("checkout.workers={workers}")])
            .args(["worktree", "add", "-q", "-b", "worktree/teleos-c0c0c0-1"])
            .arg(wt)
            .arg("HEAD"),
    );
    started.elapsed().as_secs_f64()
}

/// Not timed: the worktree git sees is clean.
fn check_clean(wt: &Path) {
    let out = git(wt)
        .args(["status", "--porcelain"])
        .output()
        .expect("git status");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "worktree not clean: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn markdown(
    files: usize,
    rounds: usize,
    cores: usize,
    results: &[(FsKind, Tool, usize, Vec<f64>)],
    load_start: &str,
    load_end: &str,
    kinds: &[FsKind],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{MARK_START}");
    let _ = writeln!(
        s,
        "## Worktree checkout: gix with 1, 2 and N threads vs git's parallel checkout\n"
    );
    let _ = writeln!(
        s,
        "Generated by `benches/checkout.rs`; reproduce with `CHECKOUT_FILES={files} \
         CHECKOUT_ROUNDS={rounds} cargo bench --bench checkout`. One worktree of a {files}-file \
         repository per run, each on a filesystem made for it alone, from a fresh copy of the \
         fixture; the thread count set with `checkout.workers` for both (N = {cores}, \
         `nproc`). Load average (1/5/15 min) at start: {load_start}; at end: {load_end}.\n"
    );
    let _ = writeln!(s, "| filesystem | tool | workers | median | samples (s) |");
    let _ = writeln!(s, "| --- | --- | --- | --- | --- |");
    for &kind in kinds {
        for (k, tool, w, xs) in results.iter().filter(|r| r.0 == kind) {
            let samples: Vec<String> = xs.iter().map(|x| format!("{x:.3}")).collect();
            let _ = writeln!(
                s,
                "| {} | {} | {w} | {:.3} s | {} |",
                kind_name(*k),
                tool.name(),
                median(xs),
                samples.join(", ")
            );
        }
    }
    let _ = writeln!(s, "\n{MARK_END}");
    s
}
