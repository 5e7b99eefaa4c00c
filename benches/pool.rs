//! What a default worktree pool would cost and save (issue 16, section 4): disk per parked
//! worktree, with and without installed dependencies, and the second batch's start with and
//! without the pool, measured with the real binary on the 20,000-file fixture of `benches/e2e.rs`.
//!
//! ```sh
//! cargo bench --bench pool                            # full size, rewrites BENCHMARKS.md's section
//! POOL_FILES=2000 POOL_ROUNDS=1 POOL_WRITE=0 cargo bench --bench pool   # quick look
//! ```
//!
//! Each run, on a new loop-mounted ext4 filesystem (tmpfs, or a plain folder, where mounting is
//! not allowed; said in the output) holding a fresh copy of the fixture:
//! 1. batch 1: `git teleos close --parallel 3 --all --yes` over three instant stories, with
//!    `teleos.keepWorktrees` true (side "pool") or false (side "cold");
//! 2. (pool side, not timed) `du` of each parked worktree, of its `node_modules`, and of its
//!    admin folder `.git/worktrees/<name>`;
//! 3. `main` moves on by a commit adding three new stories and touching a few files;
//! 4. batch 2, timed: the same command; time to first agent (spawn to the first stand-in agent
//!    starting) and the whole batch.
//!
//! The stand-in agent is `benches/e2e/standin-claude.sh` behind a wrapper that, like a worker
//! running `npm ci`, installs the dependencies (a copy of a `node_modules` made at set-up, never
//! committed, ignored by `.gitignore`) when the worktree has none. The main checkout has them
//! too. Sides alternate round by round.
//!
//! Knobs: `POOL_FILES` (default 20000), `POOL_ROUNDS` (default 3), `POOL_DEP_FILES` (files in
//! `node_modules`, default 4000), `POOL_TMPDIR`, `POOL_TELEOS_BIN`, `POOL_WRITE=0` (print only).

// The hermetic environment, filler files and stories shared by the benchmarks.
mod fixture;
#[path = "pool/fresh_fs.rs"]
mod fresh_fs;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fresh_fs::{FreshFs, FsKind};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const TELEOS_BIN: &str = env!("CARGO_BIN_EXE_git-teleos");
const STANDIN: &str = include_str!("e2e/standin-claude.sh");
const ARTIFACTS: &str = "docs/sprint-artifacts";
const SLOTS: usize = 3;
const MARK_START: &str = "<!-- pool-bench:start -->";
const MARK_END: &str = "<!-- pool-bench:end -->";

/// Installs the dependencies when the worktree has none, then hands over to the stand-in; the
/// start time is taken first, so "time to first agent" is the agent process starting.
const WRAPPER: &str = r#"#!/bin/sh
if [ "$1" = auth ]; then exec "@INNER@" "$@"; fi
date +%s.%N >> "@STARTS@"
[ -d node_modules ] || cp -R "@DEPS@" node_modules
exec "@INNER@" "$@"
"#;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("pool: benchmark skipped (run it with `cargo bench --bench pool`)");
        return;
    }
    let files = env_parse("POOL_FILES", 20_000usize);
    let rounds = env_parse("POOL_ROUNDS", 3usize).max(1);
    let dep_files = env_parse("POOL_DEP_FILES", 4_000usize);
    let write = std::env::var("POOL_WRITE").map_or(true, |v| v != "0");
    let tmpdir = std::env::var_os("POOL_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let teleos = std::env::var_os("POOL_TELEOS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TELEOS_BIN));
    let bench = Bench::new(&tmpdir, &teleos);
    let load_start = loadavg();
    println!(
        "pool: {rounds} rounds, {files} files, {dep_files} dependency files; each run on {}",
        bench.fs.describe()
    );
    let fixture = bench.build_fixture(files);
    let deps = bench.build_deps(dep_files);
    let deps_bytes = du(&deps);
    let mut m = Measures::default();
    for round in 0..rounds {
        let sides = if round % 2 == 0 {
            ["pool", "cold"]
        } else {
            ["cold", "pool"]
        };
        for side in sides {
            let run = bench.run(&fixture, &deps, side == "pool");
            println!(
                "round {} {side:<4}: first agent {:.2} s, batch {:.2} s, parked {:?}",
                round + 1,
                run.first_agent,
                run.batch,
                run.parked
            );
            if !run.ok {
                m.failures.push(format!("round {} {side}", round + 1));
            }
            if side == "pool" {
                m.pool.push(run);
            } else {
                m.cold.push(run);
            }
        }
    }
    let load_end = loadavg();
    let section = markdown(
        &m,
        files,
        dep_files,
        deps_bytes,
        (&load_start, &load_end),
        bench.fs,
    );
    println!("\n{section}");
    if write && files == 20_000 {
        let path = Path::new(MANIFEST_DIR).join("BENCHMARKS.md");
        match fixture::write_section(&path, MARK_START, MARK_END, &section) {
            Ok(()) => println!("pool: wrote the pool-bench section of {}", path.display()),
            Err(e) => eprintln!("pool: could not write {}: {e}", path.display()),
        }
    } else if write {
        println!("pool: only the default 20,000 files rewrite BENCHMARKS.md");
    }
}

fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

struct Bench {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    bin: PathBuf,
    teleos: PathBuf,
    fs: FsKind,
}

/// One run's figures.
#[derive(Debug, Default)]
struct Run {
    /// Seconds from spawning batch 2 to its first agent starting.
    first_agent: f64,
    /// Seconds batch 2 took, start to exit.
    batch: f64,
    /// Per parked worktree after batch 1: (folder bytes, its node_modules bytes, admin bytes).
    parked: Vec<(u64, u64, u64)>,
    ok: bool,
}

#[derive(Default)]
struct Measures {
    pool: Vec<Run>,
    cold: Vec<Run>,
    failures: Vec<String>,
}

impl Bench {
    fn new(tmpdir: &Path, teleos: &Path) -> Bench {
        fs::create_dir_all(tmpdir).expect("create POOL_TMPDIR");
        let tmp = tempfile::Builder::new()
            .prefix("teleos-pool-")
            .tempdir_in(tmpdir)
            .expect("temp dir");
        let root = tmp.path().canonicalize().expect("canonical temp dir");
        let (home, bin) = (root.join("home"), root.join("bin"));
        fs::create_dir_all(&home).expect("mkdir home");
        fs::create_dir_all(&bin).expect("mkdir bin");
        let teleos = teleos.canonicalize().unwrap_or_else(|e| {
            panic!(
                "{}: {e} (build it with `cargo build --release`)",
                teleos.display()
            )
        });
        let fs = FsKind::probe(&root);
        Bench {
            _tmp: tmp,
            root,
            home,
            bin,
            teleos,
            fs,
        }
    }

    fn starts_file(&self) -> PathBuf {
        self.root.join("agent-starts.txt")
    }

    /// The stand-in (instant stories) behind the installing wrapper, `deps` as the package
    /// source.
    fn install_agent(&self, deps: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let table = self.root.join("durations.txt");
        fs::write(&table, "* 0\n").expect("write durations");
        let inner = self.bin.join("claude-standin");
        let script = STANDIN
            .replace("@DURATIONS@", &table.to_string_lossy())
            .replace("@STARTS@", "/dev/null");
        fs::write(&inner, script).expect("write stand-in");
        let wrapper = WRAPPER
            .replace("@INNER@", &inner.to_string_lossy())
            .replace("@STARTS@", &self.starts_file().to_string_lossy())
            .replace("@DEPS@", &deps.to_string_lossy());
        let outer = self.bin.join("claude");
        fs::write(&outer, wrapper).expect("write wrapper");
        for p in [&inner, &outer] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod agent");
        }
    }

    /// A command with the hermetic environment of `benches/e2e.rs`.
    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
        fixture::command_with_bin(program, dir, &self.home, &self.bin)
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        fixture::stdout_of(self.cmd("git", dir), dir, args)
    }

    /// The e2e fixture's filler files, `node_modules/` ignored, batch 1's three stories.
    fn build_fixture(&self, files: usize) -> PathBuf {
        let dir = self.root.join("fixture");
        fixture::write_filler(&dir, files);
        fs::create_dir_all(dir.join(ARTIFACTS)).expect("mkdir stories");
        for k in ["1-1-a", "1-2-b", "1-3-c"] {
            fs::write(
                dir.join(format!("{ARTIFACTS}/{k}.md")),
                fixture::nearly_done_story(k),
            )
            .expect("story");
        }
        fs::write(dir.join("README.md"), "# fixture\n").expect("write readme");
        fs::write(dir.join(".gitignore"), "node_modules/\n").expect("write .gitignore");
        self.git(&dir, &["init", "-q", "-b", "main"]);
        self.git(&dir, &["add", "-A"]);
        self.git(&dir, &["-c", "gc.auto=0", "commit", "-q", "-m", "fixture"]);
        self.git(&dir, &["gc", "-q"]);
        dir
    }

    /// A `node_modules` of `files` files in packages of 25, sizes 1–16 KiB (fixed pattern), the
    /// shape of a small JavaScript project's install.
    fn build_deps(&self, files: usize) -> PathBuf {
        let dir = self.root.join("deps");
        for i in 0..files {
            let pkg = dir.join(format!("pkg-{:04}/lib", i / 25));
            if i % 25 == 0 {
                fs::create_dir_all(&pkg).expect("mkdir package");
            }
            let size = 1024 * (1 + (i * 7919) % 16);
            let line = format!("module.exports.f{i} = function () {{ return {i}; }};\n");
            let body = line.repeat(size / line.len() + 1);
            fs::write(pkg.join(format!("m{i}.js")), &body[..size]).expect("write dependency");
        }
        dir
    }

    /// One run of one side on a fresh filesystem.
    fn run(&self, fixture: &Path, deps: &Path, pool: bool) -> Run {
        let mnt = self.root.join("run");
        let _fresh = FreshFs::new(self.fs, &self.root, &mnt);
        let repo = mnt.join("repo");
        let deps_copy = mnt.join("deps");
        for (from, to) in [(fixture, &repo), (deps, &deps_copy)] {
            let st = Command::new("cp").arg("-a").arg(from).arg(to).status();
            assert!(st.is_ok_and(|s| s.success()), "cp -a failed");
        }
        // The user's own install in the main checkout.
        let st = Command::new("cp")
            .arg("-a")
            .arg(&deps_copy)
            .arg(repo.join("node_modules"))
            .status();
        assert!(st.is_ok_and(|s| s.success()), "cp -a failed");
        self.install_agent(&deps_copy);
        let keep = if pool { "true" } else { "false" };
        self.git(&repo, &["config", "teleos.keepWorktrees", keep]);
        sync();

        let mut run = Run {
            ok: true,
            ..Run::default()
        };
        run.ok &= self.close(&repo).is_some();
        let dir = repo.join(".claude/worktrees");
        for k in 1..=SLOTS {
            let wt = dir.join(format!("teleos-pool-{k}"));
            if wt.exists() {
                // The admin folder keeps the name the worktree was made with: follow `.git`.
                let admin = fs::read_to_string(wt.join(".git"))
                    .ok()
                    .and_then(|t| {
                        t.trim()
                            .strip_prefix("gitdir:")
                            .map(|p| PathBuf::from(p.trim()))
                    })
                    .unwrap_or_else(|| repo.join(".git/worktrees/missing"));
                run.parked
                    .push((du(&wt), du(&wt.join("node_modules")), du(&admin)));
            }
        }
        run.ok &= run.parked.len() == if pool { SLOTS } else { 0 };

        // main moves on: three new stories and a few changed files.
        for k in ["2-1-d", "2-2-e", "2-3-f"] {
            fs::write(
                repo.join(format!("{ARTIFACTS}/{k}.md")),
                fixture::nearly_done_story(k),
            )
            .expect("story");
        }
        for i in 0..5 {
            fs::write(repo.join(format!("src/changed-{i}.txt")), format!("{i}\n")).expect("w");
        }
        self.git(&repo, &["add", "-A"]);
        self.git(&repo, &["commit", "-q", "-m", "next stories"]);
        sync();

        fs::write(self.starts_file(), "").expect("reset agent starts");
        let spawned = epoch_secs();
        match self.close(&repo) {
            Some(secs) => run.batch = secs,
            None => run.ok = false,
        }
        run.first_agent = fs::read_to_string(self.starts_file())
            .ok()
            .and_then(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse::<f64>().ok())
                    .min_by(|a, b| a.total_cmp(b))
            })
            .map_or(f64::NAN, |first| first - spawned);
        let landed = self.git(&repo, &["ls-tree", "--name-only", "main", "out/"]);
        run.ok &= landed.lines().count() == 6;
        run
    }

    /// `git teleos close --parallel 3 --all --yes`; its wall seconds, `None` if it failed.
    fn close(&self, repo: &Path) -> Option<f64> {
        let started = Instant::now();
        let out = self
            .cmd(&self.teleos, repo)
            .args(["close", "--parallel", &SLOTS.to_string(), "--all", "--yes"])
            .output()
            .expect("spawn git-teleos");
        let secs = started.elapsed().as_secs_f64();
        if !out.status.success() {
            eprintln!(
                "pool: WARNING: git-teleos exited with {:?}:\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(secs)
    }
}

/// `du -s --block-size=1`: bytes of allocated blocks, as the disk really pays for them.
fn du(p: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-s", "--block-size=1"])
        .arg(p)
        .output()
        .expect("run du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn epoch_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mib(b: f64) -> String {
    format!("{:.1}", b / (1024.0 * 1024.0))
}

fn secs_list(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn markdown(
    m: &Measures,
    files: usize,
    dep_files: usize,
    deps_bytes: u64,
    (load_start, load_end): (&str, &str),
    fs_kind: FsKind,
) -> String {
    let mut s = String::new();
    let head = sh(&format!(
        "git -C '{MANIFEST_DIR}' rev-parse --short=12 HEAD"
    ));
    let when = sh("date -u '+%Y-%m-%d %H:%M UTC'");
    let _ = writeln!(s, "{MARK_START}");
    let _ = writeln!(
        s,
        "## Worktree pool: disk per parked worktree, second batch's start\n"
    );
    let _ = writeln!(
        s,
        "_Generated by `benches/pool.rs` at {when} (commit {head}); do not edit by hand._\n"
    );
    let _ = writeln!(s, "Command:\n\n```sh\ncargo bench --bench pool\n```\n");
    let _ = writeln!(
        s,
        "Fixture: the e2e fixture's {files} filler files (`src/`), `node_modules/` ignored; \
         dependencies: {dep_files} files in packages of 25, {} MiB by `du`, installed by the \
         stand-in agent (a copy, as `npm ci` from a warm cache) in any worktree without them and \
         present in the main checkout. Batch 1 closes 3 instant stories with \
         `close --parallel 3` and `teleos.keepWorktrees` true (pool) or false (cold); `main` \
         then moves on (3 new stories, 5 files); batch 2 is timed. Each run on {}. Sides \
         alternate round by round. {} rounds. Load average (1/5/15 min) at start {load_start}, \
         at end {load_end}; the machine (2 CPUs) is shared with other builds.\n",
        mib(deps_bytes as f64),
        fs_kind.describe(),
        m.pool.len().max(m.cold.len())
    );
    let parked: Vec<&(u64, u64, u64)> = m.pool.iter().flat_map(|r| &r.parked).collect();
    let col = |f: &dyn Fn(&(u64, u64, u64)) -> u64| {
        let v: Vec<f64> = parked.iter().map(|p| f(p) as f64).collect();
        (median(&v), v)
    };
    let (total, _) = col(&|p| p.0 + p.2);
    let (checkout, _) = col(&|p| p.0 - p.1 + p.2);
    let (deps, _) = col(&|p| p.1);
    let (admin, _) = col(&|p| p.2);
    let _ = writeln!(
        s,
        "Disk per parked worktree (`du -s --block-size=1`, median of {} parked worktrees):\n",
        parked.len()
    );
    let _ = writeln!(s, "| | MiB |\n| --- | ---: |");
    let _ = writeln!(
        s,
        "| admin folder `.git/worktrees/<name>` (index) | {} |",
        mib(admin)
    );
    let _ = writeln!(
        s,
        "| without dependencies (checkout + admin folder) | {} |",
        mib(checkout)
    );
    let _ = writeln!(s, "| its `node_modules` | {} |", mib(deps));
    let _ = writeln!(s, "| with dependencies | {} |", mib(total));
    let _ = writeln!(
        s,
        "| a full pool of {SLOTS}, with dependencies | {} |\n",
        mib(total * SLOTS as f64)
    );
    let fa = |rs: &[Run]| rs.iter().map(|r| r.first_agent).collect::<Vec<_>>();
    let bt = |rs: &[Run]| rs.iter().map(|r| r.batch).collect::<Vec<_>>();
    let _ = writeln!(
        s,
        "Batch 2 (seconds):\n\n| | time to first agent: samples | median | whole batch: samples | median |\n| --- | --- | ---: | --- | ---: |"
    );
    for (name, rs) in [("with the pool", &m.pool), ("without (cold)", &m.cold)] {
        let _ = writeln!(
            s,
            "| {name} | {} | {:.2} | {} | {:.2} |",
            secs_list(&fa(rs)),
            median(&fa(rs)),
            secs_list(&bt(rs)),
            median(&bt(rs))
        );
    }
    let _ = writeln!(
        s,
        "| pool / cold | | {:.2} | | {:.2} |",
        median(&fa(&m.pool)) / median(&fa(&m.cold)),
        median(&bt(&m.pool)) / median(&bt(&m.cold))
    );
    if !m.failures.is_empty() {
        let _ = writeln!(
            s,
            "\n**Runs that failed their checks:** {}",
            m.failures.join(", ")
        );
    }
    let _ = writeln!(s, "{MARK_END}");
    s
}
