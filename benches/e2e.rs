//! End-to-end benchmark: `git teleos close --parallel 3` against the source workflow's procedure
//! done with the git CLI (`benches/e2e/baseline.sh`), on identical fixture repositories, with
//! the same stand-in `claude` (`benches/e2e/standin-claude.sh`), alternating the two sides.
//!
//! ```sh
//! cargo bench --bench e2e                                  # everything, full size
//! E2E_FILES=2000 E2E_ROUNDS=1 E2E_WORKLOADS=A,B cargo bench --bench e2e   # quick look
//! ```
//!
//! Knobs (environment): `E2E_FILES` (filler files of the A/D/E repository, default 20000),
//! `E2E_ROUNDS` (default 3), `E2E_WORKLOADS` (default `A,B,D,E,O`), `E2E_O_FILES` (the
//! repository sizes of workload O, default `2000,20000`), `E2E_B_FILES` (filler files of
//! the B repository, default 100), `E2E_LONG` / `E2E_SHORT` (B's story durations in seconds,
//! default 4 and 0.5), `E2E_STAGGER` (git-teleos's `teleos.agentStagger`, passed as `git -c`
//! would; unset: its default), `E2E_TMPDIR` (where fixtures go, default the system temp folder),
//! `E2E_TELEOS_BIN` (the binary to measure, default the one cargo built with this bench),
//! `E2E_WRITE=0` (print only; by default the `e2e-bench` section of BENCHMARKS.md is rewritten),
//! `E2E_KEEP=<dir>` (keep each git-teleos run's batch record and stderr there).
//!
//! Workloads: A, 24 instant stories on a 20,000-file repository with 3 worktrees; B, 12 stories
//! of skewed durations (long ones at positions 0, 3, 6, 9: fixed round-robin puts them all on
//! one worktree), whose open tasks say which are long (as a real story's do), then the same
//! with every story showing one open task (the sizes hidden); D, creating 3 worktrees cold, gix (`git_teleos::git::add_worktree`, three
//! threads) against `git worktree add` ×3; E, the peak memory of git-teleos during A; O, the
//! per-story overhead (agent exit to the next agent start in the same worktree, from the batch's
//! own timeline) of A's batch at each size of `E2E_O_FILES`, in a BENCHMARKS.md section of its
//! own (`benches/e2e/overhead.rs`).
//! Copies of the fixtures and correctness checks (all stories' `out/<key>.txt` on `main`, no
//! worktree left) are not timed.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// One fresh filesystem per run, shared with `benches/pool.rs`.
#[path = "pool/fresh_fs.rs"]
mod fresh_fs;
use fresh_fs::{FreshFs, FsKind};
// Per-story overhead from the batch's own timeline records.
#[path = "e2e/overhead.rs"]
mod overhead;
use overhead::workload_o;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const TELEOS_BIN: &str = env!("CARGO_BIN_EXE_git-teleos");
const STANDIN: &str = include_str!("e2e/standin-claude.sh");
const ARTIFACTS: &str = "docs/sprint-artifacts";
const SLOTS: usize = 3;
const MARK_START: &str = "<!-- e2e-bench:start -->";
const MARK_END: &str = "<!-- e2e-bench:end -->";
const OVERHEAD_START: &str = "<!-- e2e-overhead:start -->";
const OVERHEAD_END: &str = "<!-- e2e-overhead:end -->";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: do not run it there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("e2e: benchmark skipped (run it with `cargo bench --bench e2e`)");
        return;
    }
    let cfg = Config::from_env();
    let bench = Bench::new(&cfg);
    let mut report = Report {
        load_start: loadavg(),
        fs: bench.fs,
        ..Report::default()
    };
    println!(
        "e2e: workloads {:?}, {} rounds, {} files, fixtures in {}; each run on {}",
        cfg.workloads,
        cfg.rounds,
        cfg.files,
        bench.root.display(),
        bench.fs.describe()
    );
    if cfg.wants("A") || cfg.wants("E") {
        workload_a(&cfg, &bench, &mut report);
    }
    if cfg.wants("B") {
        workload_b(&cfg, &bench, &mut report);
    }
    if cfg.wants("D") {
        workload_d(&cfg, &bench, &mut report);
    }
    // O has a section of its own: running it alone leaves the A–E figures as they are.
    let mut sections = Vec::new();
    if ["A", "B", "D", "E"].iter().any(|w| cfg.wants(w)) {
        report.load_end = loadavg();
        sections.push((report.markdown(&cfg), MARK_START, MARK_END));
    }
    if cfg.wants("O") {
        let load_start = loadavg();
        let o = workload_o(&cfg, &bench);
        let section = o.markdown(&cfg, &bench, &load_start, &loadavg());
        sections.push((section, OVERHEAD_START, OVERHEAD_END));
    }
    for (section, start, end) in sections {
        println!("\n{section}");
        if cfg.write {
            let path = Path::new(MANIFEST_DIR).join("BENCHMARKS.md");
            match write_section(&path, &section, start, end) {
                Ok(()) => println!("e2e: wrote the {start} section of {}", path.display()),
                Err(e) => eprintln!("e2e: could not write {}: {e}", path.display()),
            }
        }
    }
}

struct Config {
    files: usize,
    /// Repository sizes of workload O.
    o_files: Vec<usize>,
    b_files: usize,
    rounds: usize,
    workloads: Vec<String>,
    long: f64,
    short: f64,
    tmpdir: PathBuf,
    teleos: PathBuf,
    write: bool,
}

fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Config {
        let workloads = std::env::var("E2E_WORKLOADS")
            .unwrap_or_else(|_| "A,B,D,E,O".into())
            .split(',')
            .map(|w| w.trim().to_ascii_uppercase())
            .filter(|w| !w.is_empty())
            .collect();
        Config {
            files: env_parse("E2E_FILES", 20_000),
            o_files: std::env::var("E2E_O_FILES")
                .unwrap_or_else(|_| "2000,20000".into())
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("E2E_O_FILES: {n:?} is not a number"))
                })
                .collect(),
            b_files: env_parse("E2E_B_FILES", 100),
            rounds: env_parse("E2E_ROUNDS", 3usize).max(1),
            workloads,
            long: env_parse("E2E_LONG", 4.0),
            short: env_parse("E2E_SHORT", 0.5),
            tmpdir: std::env::var_os("E2E_TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            teleos: std::env::var_os("E2E_TELEOS_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(TELEOS_BIN)),
            write: std::env::var("E2E_WRITE").map_or(true, |v| v != "0"),
        }
    }

    fn wants(&self, w: &str) -> bool {
        self.workloads.iter().any(|x| x == w)
    }
}

// The hermetic environment, filler files and stories shared by the benchmarks.
mod fixture;

/// The scratch area: fixtures, per-run copies, HOME, and the bin folder holding `claude`.
struct Bench {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    bin: PathBuf,
    teleos: PathBuf,
    baseline: PathBuf,
    /// How each run gets a filesystem of its own (see [`FsKind`]).
    fs: FsKind,
}

impl Bench {
    fn new(cfg: &Config) -> Bench {
        fs::create_dir_all(&cfg.tmpdir).expect("create E2E_TMPDIR");
        let tmp = tempfile::Builder::new()
            .prefix("teleos-e2e-")
            .tempdir_in(&cfg.tmpdir)
            .expect("temp dir");
        let root = tmp.path().canonicalize().expect("canonical temp dir");
        let home = root.join("home");
        let bin = root.join("bin");
        fs::create_dir_all(&home).expect("mkdir home");
        fs::create_dir_all(&bin).expect("mkdir bin");
        let teleos = cfg.teleos.canonicalize().unwrap_or_else(|e| {
            panic!(
                "{}: {e} (build it with `cargo build --release`)",
                cfg.teleos.display()
            )
        });
        let fs = FsKind::probe(&root);
        Bench {
            _tmp: tmp,
            root,
            home,
            bin,
            teleos,
            baseline: Path::new(MANIFEST_DIR).join("benches/e2e/baseline.sh"),
            fs,
        }
    }

    /// Where the stand-in agent appends the time (epoch seconds) at which each run started.
    fn starts_file(&self) -> PathBuf {
        self.root.join("agent-starts.txt")
    }

    /// Forget the agent start times of the previous run.
    fn reset_starts(&self) {
        fs::write(self.starts_file(), "").expect("reset agent starts");
    }

    /// Seconds from `spawned` (epoch seconds) to the first agent start recorded since the
    /// last [`Bench::reset_starts`].
    fn first_agent_after(&self, spawned: f64) -> Option<f64> {
        let text = fs::read_to_string(self.starts_file()).ok()?;
        text.lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .min_by(|a, b| a.total_cmp(b))
            .map(|first| first - spawned)
    }

    /// Install the stand-in agent with this durations table (`key seconds`, `*` = default).
    fn install_agent(&self, durations: &str) {
        let table = self.root.join("durations.txt");
        fs::write(&table, durations).expect("write durations");
        let script = STANDIN
            .replace("@DURATIONS@", &table.to_string_lossy())
            .replace("@STARTS@", &self.starts_file().to_string_lossy());
        let path = self.bin.join("claude");
        fs::write(&path, script).expect("write stand-in agent");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod agent");
    }

    /// A command with the hermetic environment: no user/system git config, fixed identities and
    /// dates, the stand-in agent first on PATH.
    fn cmd(&self, program: impl AsRef<OsStr>, dir: &Path) -> Command {
        fixture::command_with_bin(program, dir, &self.home, &self.bin)
    }

    /// Run git; panics on failure (fixture building and checks only, never timed).
    fn git(&self, dir: &Path, args: &[&str]) -> String {
        fixture::stdout_of(self.cmd("git", dir), dir, args)
    }

    /// A repository with `files` filler files and one story per key, committed and packed.
    fn build_fixture(&self, name: &str, files: usize, keys: &[String]) -> PathBuf {
        self.build_fixture_with(name, files, keys, |_| 1)
    }

    /// [`Bench::build_fixture`] with `open(i)` unticked tasks in the `i`th story.
    fn build_fixture_with(
        &self,
        name: &str,
        files: usize,
        keys: &[String],
        open: impl Fn(usize) -> usize,
    ) -> PathBuf {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).expect("mkdir fixture");
        fixture::write_filler(&dir, files);
        let stories = dir.join(ARTIFACTS);
        fs::create_dir_all(&stories).expect("mkdir stories");
        for (i, key) in keys.iter().enumerate() {
            fs::write(
                stories.join(format!("{key}.md")),
                fixture::story_with_open_tasks(key, open(i)),
            )
            .expect("write story");
        }
        fs::write(dir.join("README.md"), "# fixture\n").expect("write readme");
        self.git(&dir, &["init", "-q", "-b", "main"]);
        self.git(&dir, &["add", "-A"]);
        // No detached `gc --auto` racing the explicit `gc` below or the copies.
        self.git(&dir, &["-c", "gc.auto=0", "commit", "-q", "-m", "fixture"]);
        // Packed, like a real repository; loose objects would also make `gc --auto` fire
        // inside the baseline's git commands.
        self.git(&dir, &["gc", "-q"]);
        dir
    }

    /// A fresh copy of `fixture` on a filesystem of its own at `<root>/run` (not timed). The
    /// returned guard unmounts and deletes it: no run inherits another's disk state (recently
    /// freed inodes, dirty pages, a journal still being written back).
    fn fresh_copy(&self, fixture: &Path) -> (FreshFs, PathBuf) {
        let mnt = self.root.join("run");
        let fresh = FreshFs::new(self.fs, &self.root, &mnt);
        let repo = mnt.join("repo");
        let st = Command::new("cp")
            .arg("-a")
            .arg(fixture)
            .arg(&repo)
            .status()
            .expect("cp");
        assert!(st.success(), "cp -a failed");
        sync();
        (fresh, repo)
    }

    /// Time `git teleos close --parallel 3 --all --yes --json`; returns the run's figures.
    fn run_teleos(&self, repo: &Path) -> TeleosRun {
        let out = fs::File::create(self.root.join("teleos.out")).expect("stdout file");
        let err = fs::File::create(self.root.join("teleos.err")).expect("stderr file");
        self.reset_starts();
        let spawned = epoch_secs();
        let started = Instant::now();
        let mut cmd = self.cmd(&self.teleos, repo);
        // `E2E_STAGGER=S`: run git-teleos with `teleos.agentStagger=S` (as `git -c` would pass
        // it), to see what the ramp-up stagger costs a workload. Unset: the default.
        if let Ok(stagger) = std::env::var("E2E_STAGGER") {
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "teleos.agentStagger")
                .env("GIT_CONFIG_VALUE_0", stagger);
        }
        let child = cmd
            .args(["close", "--parallel", &SLOTS.to_string(), "--all", "--yes"])
            .arg("--json")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn git-teleos");
        let pid = child.id() as libc::pid_t;
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || poll_vm_hwm(pid, &peak, &stop))
        };
        // wait4 rather than Child::wait: its rusage gives the peak RSS (of git-teleos or of a
        // descendant it waited for, whichever is larger).
        let mut status = 0;
        // SAFETY: plain libc call on our own child; `usage` is a valid out-pointer.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let secs = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let _ = poller.join();
        assert_eq!(r, pid, "wait4 failed");
        drop(child);
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        };
        if code != 0 {
            warn(&format!(
                "git-teleos exited with {code}; stderr:\n{}",
                fs::read_to_string(self.root.join("teleos.err")).unwrap_or_default()
            ));
        }
        keep_record(repo, &self.root.join("teleos.err"));
        let gaps = overhead::from_repo(repo);
        if gaps.is_none() {
            warn("no batch record with a timeline: per-story overhead unknown for this run");
        }
        TeleosRun {
            secs,
            first_agent: self.first_agent_after(spawned).unwrap_or(f64::NAN),
            hwm_kib: peak.load(Ordering::SeqCst),
            maxrss_kib: usage.ru_maxrss as u64,
            gaps: gaps.unwrap_or_default(),
        }
    }

    /// Time the baseline script on `repo`: (wall seconds, seconds to the first agent start).
    fn run_baseline(&self, repo: &Path, keys: &[String]) -> (f64, f64) {
        let list = self.root.join("stories.tsv");
        let text: String = keys
            .iter()
            .map(|k| format!("{k}\t{ARTIFACTS}/{k}.md\n"))
            .collect();
        fs::write(&list, text).expect("write story list");
        self.reset_starts();
        let spawned = epoch_secs();
        let started = Instant::now();
        let out = self
            .cmd("bash", repo)
            .arg(&self.baseline)
            .arg(repo)
            .args(["b0a5e1", &SLOTS.to_string()])
            .arg(&list)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run baseline.sh");
        let secs = started.elapsed().as_secs_f64();
        if !out.status.success() || !out.stderr.is_empty() {
            warn(&format!(
                "baseline exited with {:?}; stderr:\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        (secs, self.first_agent_after(spawned).unwrap_or(f64::NAN))
    }

    /// Not timed: every story's output is on `main`, and no worktree or work branch is left.
    fn verify(&self, side: &str, repo: &Path, keys: &[String]) -> bool {
        let listed = self.git(
            repo,
            &["ls-tree", "-r", "--name-only", "main", "--", "out/"],
        );
        let have: BTreeSet<&str> = listed
            .lines()
            .filter_map(|l| l.strip_prefix("out/")?.strip_suffix(".txt"))
            .collect();
        let missing: Vec<&String> = keys.iter().filter(|k| !have.contains(k.as_str())).collect();
        let worktrees = self.git(repo, &["worktree", "list", "--porcelain"]);
        let extra_worktrees = worktrees
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count()
            - 1;
        let branches = self.git(repo, &["branch", "--format=%(refname:short)"]);
        let extra_branches: Vec<&str> = branches.lines().filter(|b| *b != "main").collect();
        let ok = missing.is_empty() && extra_worktrees == 0 && extra_branches.is_empty();
        if !ok {
            warn(&format!(
                "{side}: {} of {} stories missing on main {missing:?}; {extra_worktrees} worktrees \
                 and branches {extra_branches:?} left",
                missing.len(),
                keys.len()
            ));
        }
        ok
    }
}

struct TeleosRun {
    secs: f64,
    /// From spawn to the first agent process starting: the wait a user feels.
    first_agent: f64,
    /// Peak RSS of the git-teleos process itself (VmHWM), last value polled before it exited.
    hwm_kib: u64,
    /// wait4's ru_maxrss: the larger of git-teleos's peak and its reaped descendants'.
    maxrss_kib: u64,
    /// Agent exit to the next agent start in the same slot, from the batch record (ms).
    gaps: overhead::Gaps,
}

/// Poll `/proc/<pid>/status` every 5 ms and keep the largest VmHWM seen.
fn poll_vm_hwm(pid: libc::pid_t, peak: &AtomicU64, stop: &AtomicBool) {
    let path = format!("/proc/{pid}/status");
    while !stop.load(Ordering::SeqCst) {
        let Ok(text) = fs::read_to_string(&path) else {
            return;
        };
        let hwm = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        match hwm {
            Some(kib) => {
                peak.fetch_max(kib, Ordering::SeqCst);
            }
            None => return, // a zombie: no memory left to read
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `E2E_KEEP=<dir>`: keep each git-teleos run's batch record (`last-batch.json`, with its
/// timeline) and its stderr in `<dir>/run-<n>.*`, to account for a run's time afterwards (the
/// run's filesystem is gone once it ends).
fn keep_record(repo: &Path, stderr: &Path) {
    let Ok(dir) = std::env::var("E2E_KEEP") else {
        return;
    };
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let n = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    let dir = PathBuf::from(dir);
    let kept = fs::create_dir_all(&dir)
        .and_then(|()| {
            fs::copy(
                repo.join(".git/teleos/last-batch.json"),
                dir.join(format!("run-{n}.json")),
            )
        })
        .and_then(|_| fs::copy(stderr, dir.join(format!("run-{n}.err"))));
    if let Err(e) = kept {
        warn(&format!("E2E_KEEP: could not keep run {n}'s record: {e}"));
    }
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}-{i:02}")).collect()
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn warn(msg: &str) {
    eprintln!("e2e: WARNING: {msg}");
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Alternate the two sides round by round (teleos first on even rounds, baseline first on odd
/// ones) so that drift on a shared machine hits both alike.
fn alternate(
    cfg: &Config,
    bench: &Bench,
    label: &str,
    fixture: &Path,
    keys: &[String],
    failures: &mut Vec<String>,
) -> Sides {
    let (mut teleos_runs, mut baseline_runs) = (Vec::new(), Vec::new());
    for round in 0..cfg.rounds {
        let order = if round % 2 == 0 {
            ["teleos", "baseline"]
        } else {
            ["baseline", "teleos"]
        };
        for side in order {
            let (fresh, repo) = bench.fresh_copy(fixture);
            if side == "teleos" {
                let r = bench.run_teleos(&repo);
                println!(
                    "{label} round {}: git-teleos {:.2} s, first agent after {:.2} s (VmHWM {:.1} MiB, maxrss {:.1} MiB)",
                    round + 1,
                    r.secs,
                    r.first_agent,
                    r.hwm_kib as f64 / 1024.0,
                    r.maxrss_kib as f64 / 1024.0
                );
                teleos_runs.push(r);
            } else {
                let (secs, first) = bench.run_baseline(&repo, keys);
                println!(
                    "{label} round {}: baseline   {secs:.2} s, first agent after {first:.2} s",
                    round + 1
                );
                baseline_runs.push((secs, first));
            }
            if !bench.verify(side, &repo, keys) {
                failures.push(format!("{label} round {} {side}", round + 1));
            }
            drop(fresh);
        }
    }
    (teleos_runs, baseline_runs)
}

fn workload_a(cfg: &Config, bench: &Bench, report: &mut Report) {
    let keys = keys("a", 24);
    bench.install_agent("* 0\n");
    println!("A: building the fixture ({} files, 24 stories)", cfg.files);
    let fixture = bench.build_fixture("fixture-a", cfg.files, &keys);
    let (t, b) = alternate(cfg, bench, "A", &fixture, &keys, &mut report.failures);
    report.a = Some((t, b));
}

fn workload_b(cfg: &Config, bench: &Bench, report: &mut Report) {
    let keys = keys("b", 12);
    // Long stories at positions 0, 3, 6, 9: round-robin over 3 worktrees gives them all to the
    // first one.
    let long = |i: usize| i.is_multiple_of(3);
    let durations: Vec<f64> = (0..keys.len())
        .map(|i| if long(i) { cfg.long } else { cfg.short })
        .collect();
    let table: String = keys
        .iter()
        .zip(&durations)
        .map(|(k, d)| format!("{k} {d}\n"))
        .collect();
    bench.install_agent(&table);
    // As in a real batch, a story with more open tasks takes its agent longer: the short ones
    // have 1 open task, the long ones one per `E2E_SHORT` seconds of their duration.
    let open_long = (cfg.long / cfg.short).round().max(1.0) as usize;
    println!(
        "B: building the fixtures ({} files, 12 stories: 4 × {} s with {open_long} open tasks, 8 × {} s with 1; and the same with 1 open task each)",
        cfg.b_files, cfg.long, cfg.short
    );
    let sized = bench.build_fixture_with("fixture-b", cfg.b_files, &keys, |i| {
        if long(i) {
            open_long
        } else {
            1
        }
    });
    let hidden = bench.build_fixture("fixture-b-hidden", cfg.b_files, &keys);
    let sized = alternate(cfg, bench, "B", &sized, &keys, &mut report.failures);
    let hidden = alternate(cfg, bench, "B hidden", &hidden, &keys, &mut report.failures);
    let total: f64 = durations.iter().sum();
    let longest = durations.iter().copied().fold(0.0, f64::max);
    let mut by_length = durations.clone();
    by_length.sort_by(|a, b| b.total_cmp(a));
    report.b = Some(WorkloadB {
        sized,
        hidden,
        bound: (total / SLOTS as f64).max(longest),
        longest_first: list_schedule(&by_length, SLOTS),
        listed: list_schedule(&durations, SLOTS),
    });
}

/// The makespan of running `durations` in this order on `slots` workers, each story taking the
/// first free one, with no overhead at all: what a scheduler starting them in this order could
/// reach at best.
fn list_schedule(durations: &[f64], slots: usize) -> f64 {
    let mut free = vec![0.0f64; slots.max(1)];
    for d in durations {
        let first = free
            .iter_mut()
            .min_by(|a, b| a.total_cmp(b))
            .expect("at least one slot");
        *first += d;
    }
    free.into_iter().fold(0.0, f64::max)
}

/// Workload B's runs: with the stories' sizes visible in their open tasks, and hidden (every
/// story one open task, the same durations).
struct WorkloadB {
    sized: Sides,
    hidden: Sides,
    /// max(total/3, longest).
    bound: f64,
    /// The zero-overhead makespan of longest-first and of the listed order.
    longest_first: f64,
    listed: f64,
}

fn workload_d(cfg: &Config, bench: &Bench, report: &mut Report) {
    let fixture = bench.root.join("fixture-a");
    let fixture = if fixture.exists() {
        fixture
    } else {
        println!("D: building the fixture ({} files)", cfg.files);
        bench.build_fixture("fixture-a", cfg.files, &keys("a", 24))
    };
    let mut d = WorkloadD::default();
    for round in 0..cfg.rounds {
        let mut sides = ["gix", "git-serial", "git-parallel"];
        sides.rotate_left(round % 3);
        for side in sides {
            let (_fresh, repo) = bench.fresh_copy(&fixture);
            let secs = match side {
                "gix" => gix_worktrees(&repo),
                "git-serial" => git_worktrees(bench, &repo, false),
                _ => git_worktrees(bench, &repo, true),
            };
            println!("D round {}: {side:<12} {secs:.2} s", round + 1);
            let listed = bench.git(&repo, &["worktree", "list", "--porcelain"]);
            let n = listed
                .lines()
                .filter(|l| l.starts_with("worktree "))
                .count();
            let status = bench.git(
                &repo.join(".claude/worktrees/teleos-d0d0d0-1"),
                &["status", "--porcelain"],
            );
            if n != SLOTS + 1 || !status.is_empty() {
                warn(&format!(
                    "D {side}: {} linked worktrees, first one's status: {status:?}",
                    n - 1
                ));
                report
                    .failures
                    .push(format!("D round {} {side}", round + 1));
            }
            if side == "gix" {
                let reuse = gix_reuse(bench, &repo);
                println!("D round {}: {:<12} {reuse:.3} s", round + 1, "gix reuse");
                d.reuse.push(reuse);
            }
            match side {
                "gix" => d.gix.push(secs),
                "git-serial" => d.git_serial.push(secs),
                _ => d.git_parallel.push(secs),
            }
        }
    }
    report.d = Some(d);
}

fn wt_path(repo: &Path, n: usize) -> PathBuf {
    repo.join(format!(".claude/worktrees/teleos-d0d0d0-{n}"))
}

/// git-teleos's way: `git_teleos::git::add_worktree` on three threads at once, one repository
/// handle each (as `batch::parallel` does).
fn gix_worktrees(repo: &Path) -> f64 {
    let started = Instant::now();
    let main = git_teleos::git::discover(repo).expect("open fixture");
    let head = git_teleos::git::head_commit_id(&main)
        .expect("read HEAD")
        .expect("HEAD has a commit");
    let shared = main.into_sync();
    std::thread::scope(|s| {
        for n in 1..=SLOTS {
            let shared = &shared;
            s.spawn(move || {
                let local = shared.to_thread_local();
                git_teleos::git::add_worktree(
                    &local,
                    &wt_path(repo, n),
                    &format!("worktree/teleos-d0d0d0-{n}"),
                    head,
                    &std::sync::atomic::AtomicBool::new(false),
                )
                .expect("add_worktree");
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// The seed's way, `git worktree add -b … path HEAD` ×3 one after another (or, for reference,
/// as three background jobs).
fn git_worktrees(bench: &Bench, repo: &Path, parallel: bool) -> f64 {
    let started = Instant::now();
    let spawn = |n: usize| {
        bench
            .cmd("git", repo)
            .args(["worktree", "add", "-q", "-b"])
            .arg(format!("worktree/teleos-d0d0d0-{n}"))
            .arg(wt_path(repo, n))
            .arg("HEAD")
            .spawn()
            .expect("spawn git worktree add")
    };
    if parallel {
        let children: Vec<_> = (1..=SLOTS).map(spawn).collect();
        for mut c in children {
            assert!(c.wait().expect("wait").success(), "git worktree add failed");
        }
    } else {
        for n in 1..=SLOTS {
            assert!(
                spawn(n).wait().expect("wait").success(),
                "git worktree add failed"
            );
        }
    }
    started.elapsed().as_secs_f64()
}

/// The second batch on the same repository: park the three worktrees the cold run made (as
/// `--keep-worktrees` does), move `main` on by a commit touching a few files, then time taking
/// the parked worktrees for a new session and bringing each to the new `HEAD` (three threads,
/// as `batch::parallel` does). Only the files that changed are rewritten.
fn gix_reuse(bench: &Bench, repo: &Path) -> f64 {
    use git_teleos::batch::pool;
    use git_teleos::manifest::ManifestFile;
    let dir = repo.join(".claude/worktrees");
    let manifest = ManifestFile::new(&dir);
    let main = git_teleos::git::discover(repo).expect("open fixture");
    for n in 1..=SLOTS {
        pool::park(
            &main,
            &manifest,
            &dir,
            &wt_path(repo, n),
            &format!("worktree/teleos-d0d0d0-{n}"),
            SLOTS,
        )
        .expect("park");
    }
    for i in 0..5 {
        fs::write(
            repo.join(format!("src/changed-{i}.txt")),
            format!("new base {i}\n"),
        )
        .expect("write change");
    }
    bench.git(repo, &["add", "-A", "src"]);
    bench.git(repo, &["commit", "-q", "-m", "new base"]);
    let main = git_teleos::git::discover(repo).expect("reopen fixture");
    let head = git_teleos::git::head_commit_id(&main)
        .expect("read HEAD")
        .expect("HEAD has a commit");
    let shared = main.into_sync();
    let started = Instant::now();
    std::thread::scope(|s| {
        for n in 1..=SLOTS {
            let (shared, manifest, dir) = (&shared, &manifest, &dir);
            s.spawn(move || {
                let local = shared.to_thread_local();
                let path = repo.join(format!(".claude/worktrees/teleos-e0e0e0-{n}"));
                let taken = pool::adopt(
                    &local,
                    manifest,
                    dir,
                    &path,
                    &format!("worktree/teleos-e0e0e0-{n}"),
                )
                .expect("adopt");
                assert!(taken, "no parked worktree to take");
                let wt = gix::open(&path).expect("open worktree");
                git_teleos::git::reset_worktree_to(
                    &wt,
                    head,
                    &std::sync::atomic::AtomicBool::new(false),
                )
                .expect("reset to the new base");
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let status = bench.git(
        &repo.join(".claude/worktrees/teleos-e0e0e0-1"),
        &["status", "--porcelain"],
    );
    assert!(
        status.is_empty(),
        "a reused worktree is not clean: {status}"
    );
    secs
}

#[derive(Default)]
struct WorkloadD {
    /// Taking three parked worktrees to a new base (the second batch).
    reuse: Vec<f64>,
    gix: Vec<f64>,
    git_serial: Vec<f64>,
    git_parallel: Vec<f64>,
}

/// One workload's runs: git-teleos's, and the baseline's (wall seconds, seconds to the first
/// agent).
type Sides = (Vec<TeleosRun>, Vec<(f64, f64)>);

#[derive(Default)]
struct Report {
    a: Option<Sides>,
    b: Option<WorkloadB>,
    d: Option<WorkloadD>,
    failures: Vec<String>,
    load_start: String,
    load_end: String,
    fs: FsKind,
}

fn secs_list(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

impl Report {
    fn markdown(&self, cfg: &Config) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{MARK_START}");
        let _ = writeln!(
            s,
            "## End-to-end: `git teleos close --parallel 3` vs the seed's git CLI procedure\n"
        );
        let _ = writeln!(
            s,
            "Generated by `benches/e2e.rs`; no figure below is typed by hand. Reproduce with:\n"
        );
        let _ = writeln!(s, "```sh");
        let _ = writeln!(
            s,
            "E2E_FILES={} E2E_ROUNDS={} E2E_WORKLOADS={} cargo bench --bench e2e",
            cfg.files,
            cfg.rounds,
            cfg.workloads.join(",")
        );
        let _ = writeln!(s, "```\n");
        let _ = writeln!(
            s,
            "Knobs: `E2E_FILES` (default 20000), `E2E_ROUNDS` (3), `E2E_WORKLOADS` (`A,B,D,E,O`; O writes a section of its own), \
             `E2E_B_FILES` (100), `E2E_LONG`/`E2E_SHORT` (4 / 0.5 s), `E2E_STAGGER` (git-teleos's \
             `teleos.agentStagger`; unset: its default), `E2E_TMPDIR`, \
             `E2E_TELEOS_BIN`, `E2E_WRITE=0` (do not rewrite this section). \
             The run above used `E2E_B_FILES={}`, `E2E_LONG={}`, `E2E_SHORT={}`.\n",
            cfg.b_files, cfg.long, cfg.short
        );
        let _ = writeln!(s, "### Machine\n");
        for line in machine_facts(&cfg.tmpdir) {
            let _ = writeln!(s, "- {line}");
        }
        let _ = writeln!(
            s,
            "- load average (1/5/15 min) at start: {}; at end: {}",
            self.load_start, self.load_end
        );
        let _ = writeln!(s, "- every run's filesystem: {}\n", self.fs.describe());
        let _ = writeln!(s, "### Method\n");
        let _ = writeln!(
            s,
            "Each run starts from a fresh `cp -a`, onto a filesystem made for that run alone and \
             removed after it, of a fixture repository built with the git CLI \
             (hermetic: `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_CONFIG_NOSYSTEM=1`, fixed identities \
             and dates; filler files under `src/`, stories in `{ARTIFACTS}/` with 9 of 10 boxes \
             ticked, except B's long stories, which have one open task per `E2E_SHORT` seconds \
             of their duration and three ticked ones per open one; committed, then `git gc`). The copy and the checks are not timed. Both sides \
             use the same stand-in `claude` (`benches/e2e/standin-claude.sh`: sleeps the story's \
             duration, ticks the open boxes, writes `out/<key>.txt`, commits, answers with its \
             counts in Claude's JSON envelope).\n"
        );
        let _ = writeln!(
            s,
            "- **git-teleos**: `git-teleos close --parallel 3 --all --yes --json` (release build), \
             wall time from spawn to exit.\n\
             - **baseline**: `benches/e2e/baseline.sh`, the seed's §3.4 procedure with the git \
             CLI: `git branch -f integration-<sid> HEAD`; `git worktree add -b` ×3 one after \
             another; fixed assignment to the worktree with the fewest stories; the three \
             queues run concurrently; before each story after the first the worktree runs `git \
             merge integration-<sid> --no-edit`; after each story, under a lock, `git checkout \
             integration-<sid> && git merge <wt-branch> --no-edit && git checkout main` in the \
             main checkout; finally `git checkout main && git merge integration-<sid>`, `git \
             worktree remove --force` ×3, `git branch -D` ×4.\n\
             - Sides alternate (git-teleos first in odd rounds, baseline first in even ones). \
             Correctness is checked after every run (all `out/<key>.txt` on `main`, no worktree \
             or work branch left).\n"
        );
        let _ = writeln!(s, "### Results\n");
        let _ = writeln!(
            s,
            "| workload | git-teleos (median) | baseline (median) | ratio | target | |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
        let mut details = String::new();
        if let Some((t, b)) = &self.a {
            let ts: Vec<f64> = t.iter().map(|r| r.secs).collect();
            let b: Vec<f64> = b.iter().map(|x| x.0).collect();
            let (mt, mb) = (median(&ts), median(&b));
            if cfg.wants("A") {
                let _ = writeln!(
                    s,
                    "| A: 24 instant stories, {} files, 3 worktrees | {mt:.2} s | {mb:.2} s | {:.2} × | ≤ 0.5 × | {} |",
                    cfg.files,
                    mt / mb,
                    verdict(mt / mb <= 0.5)
                );
                let _ = writeln!(
                    details,
                    "- A samples (s): git-teleos {}; baseline {}",
                    secs_list(&ts),
                    secs_list(&b)
                );
            }
            if cfg.wants("E") {
                let hwm: Vec<f64> = t.iter().map(|r| r.hwm_kib as f64 / 1024.0).collect();
                let rss: Vec<f64> = t.iter().map(|r| r.maxrss_kib as f64 / 1024.0).collect();
                let worst = hwm.iter().copied().fold(0.0, f64::max);
                let _ = writeln!(
                    s,
                    "| E: peak RSS of git-teleos in A (VmHWM) | {:.1} MiB (max {worst:.1}) | – | – | ≤ 50 MB | {} |",
                    median(&hwm),
                    verdict(worst * 1.048_576 <= 50.0)
                );
                let _ = writeln!(
                    details,
                    "- E samples (MiB): VmHWM of the git-teleos process, polled every 5 ms: {}; \
                     wait4 `ru_maxrss` (git-teleos or the largest child it reaped — git, the \
                     agent's shell): {}",
                    secs_list(&hwm),
                    secs_list(&rss)
                );
            }
        }
        if let Some(wb) = &self.b {
            let (t, b) = &wb.sized;
            let ts: Vec<f64> = t.iter().map(|r| r.secs).collect();
            let b: Vec<f64> = b.iter().map(|x| x.0).collect();
            let (mt, mb) = (median(&ts), median(&b));
            let bound = wb.bound;
            let open_long = (cfg.long / cfg.short).round().max(1.0) as usize;
            let _ = writeln!(
                s,
                "| B: 12 skewed stories (4 × {} s with {open_long} open tasks at positions 0,3,6,9, 8 × {} s with 1), {} files | {mt:.2} s | {mb:.2} s | {:.2} × | ≤ 0.6 × | {} |",
                cfg.long,
                cfg.short,
                cfg.b_files,
                mt / mb,
                verdict(mt / mb <= 0.6)
            );
            let _ = writeln!(
                s,
                "| B against its lower bound max(total/3, longest) = {bound:.2} s | {mt:.2} s | {mb:.2} s | {:.2} × (baseline {:.2} ×) | ≤ 1.3 × | {} |",
                mt / bound,
                mb / bound,
                verdict(mt / bound <= 1.3)
            );
            let (ht, hb) = &wb.hidden;
            let hts: Vec<f64> = ht.iter().map(|r| r.secs).collect();
            let hb: Vec<f64> = hb.iter().map(|x| x.0).collect();
            let (mht, mhb) = (median(&hts), median(&hb));
            let _ = writeln!(
                s,
                "| B with the sizes hidden (every story 1 open task, same durations), against the bound | {mht:.2} s | {mhb:.2} s | {:.2} × (baseline {:.2} ×) | – | |",
                mht / bound,
                mhb / bound
            );
            let _ = writeln!(
                details,
                "- B samples (s): git-teleos {}; baseline {}. Lower bound max(total/3, longest) \
                 = {bound:.2} s. No overhead at all, 3 slots, each story to the first free one: \
                 longest first finishes at {:.2} s ({:.2} × the bound; four 4 s stories on \
                 three slots put two on one), the listed order at {:.2} s ({:.2} ×)",
                secs_list(&ts),
                secs_list(&b),
                wb.longest_first,
                wb.longest_first / bound,
                wb.listed,
                wb.listed / bound
            );
            let _ = writeln!(
                details,
                "- B with the sizes hidden, samples (s): git-teleos {}; baseline {}. Every story \
                 looks the same, so git-teleos starts them in the listed order",
                secs_list(&hts),
                secs_list(&hb)
            );
        }
        let first_agent = [
            (
                "A",
                self.a
                    .as_ref()
                    .filter(|_| cfg.wants("A"))
                    .map(|a| (&a.0, &a.1)),
            ),
            ("B", self.b.as_ref().map(|b| (&b.sized.0, &b.sized.1))),
        ];
        for (label, runs) in first_agent {
            let Some((t, b)) = runs else { continue };
            let tf: Vec<f64> = t.iter().map(|r| r.first_agent).collect();
            let bf: Vec<f64> = b.iter().map(|x| x.1).collect();
            let (mt, mb) = (median(&tf), median(&bf));
            let _ = writeln!(
                s,
                "| {label}: time to first agent (spawn to the first agent process) | {mt:.2} s | {mb:.2} s | {:.2} × | ≤ 0.5 × | {} |",
                mt / mb,
                verdict(mt / mb <= 0.5)
            );
            let _ = writeln!(
                details,
                "- {label} time to first agent, samples (s): git-teleos {}; baseline {}",
                secs_list(&tf),
                secs_list(&bf)
            );
        }
        if let Some(d) = &self.d {
            let (g, gs, gp) = (
                median(&d.gix),
                median(&d.git_serial),
                median(&d.git_parallel),
            );
            let _ = writeln!(
                s,
                "| D: 3 worktrees cold, {} files: gix ×3 threads vs `git worktree add` ×3 serial | {g:.2} s | {gs:.2} s | {:.2} × | – | |",
                cfg.files,
                g / gs
            );
            let _ = writeln!(
                s,
                "| D (reference): gix ×3 threads vs `git worktree add` ×3 concurrent jobs | {g:.2} s | {gp:.2} s | {:.2} × | – | |",
                g / gp
            );
            let r = median(&d.reuse);
            let _ = writeln!(
                s,
                "| D: second batch reusing the 3 parked worktrees (`--keep-worktrees`), new base 5 files on | {r:.3} s | {g:.2} s (cold) | {:.3} × | ≤ 0.1 × | {} |",
                r / g,
                verdict(r / g <= 0.1)
            );
            let _ = writeln!(details, "- D reuse samples (s): {}", secs_list(&d.reuse));
            let _ = writeln!(
                details,
                "- D samples (s): gix {}; git serial {}; git concurrent {}. \"Cold\" means no \
                 earlier worktree; the fixture was just copied, so its objects are in the page \
                 cache for every side alike",
                secs_list(&d.gix),
                secs_list(&d.git_serial),
                secs_list(&d.git_parallel)
            );
        }
        let _ = writeln!(s);
        s.push_str(&details);
        if self.failures.is_empty() {
            let _ = writeln!(
                s,
                "- correctness: every run checked, all stories on `main`, nothing left behind"
            );
        } else {
            let _ = writeln!(
                s,
                "- correctness: **check failed** in {}",
                self.failures.join("; ")
            );
        }
        let _ = writeln!(s, "\n{MARK_END}");
        s
    }
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Load average and, where the kernel has it, CPU pressure (share of the last 5 minutes in which
/// some runnable task waited for a CPU): how busy the shared machine was.
fn loadavg() -> String {
    let load = fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    let pressure = fs::read_to_string("/proc/pressure/cpu").ok().and_then(|p| {
        p.lines()
            .find(|l| l.starts_with("some"))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("avg300=")))
            .map(str::to_string)
    });
    match pressure {
        Some(p) => format!("{load} (CPU pressure, 5 min: {p} %)"),
        None => load,
    }
}

fn machine_facts(dir: &Path) -> Vec<String> {
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let d = dir.display();
    vec![
        format!("CPU: {} × {model} (`nproc`)", sh("nproc")),
        format!(
            "memory: {} total (`free -h`)",
            sh("free -h | awk '/^Mem:/ {print $2}'")
        ),
        format!(
            "disk of the fixtures ({d}): {} (`findmnt -T`, `df -h`)",
            sh(&format!(
                "findmnt -no SOURCE,FSTYPE -T '{d}' | tr -s ' '; df -h --output=size,avail '{d}' | tail -1 | awk '{{print \"size \" $1 \", free \" $2}}'"
            ))
            .replace('\n', ", ")
        ),
        format!("kernel: {}", sh("uname -sr")),
        format!("git: {}", sh("git --version")),
    ]
}

/// Replace the text between the markers (inclusive) in `path`, or append the section; create
/// the file if absent.
fn write_section(path: &Path, section: &str, start: &str, end: &str) -> std::io::Result<()> {
    let current = fs::read_to_string(path).unwrap_or_default();
    let new = match (current.find(start), current.find(end)) {
        (Some(a), Some(b)) if a < b => {
            let end = b + end.len();
            let rest = current[end..].strip_prefix('\n').unwrap_or(&current[end..]);
            format!("{}{section}{rest}", &current[..a])
        }
        _ if current.trim().is_empty() => section.to_string(),
        _ => format!("{}\n\n{section}", current.trim_end()),
    };
    fs::write(path, new)
}

fn epoch_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
