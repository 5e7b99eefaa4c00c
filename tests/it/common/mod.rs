//! Hermetic test repositories and a runner for the real binary.
//!
//! Every git and git-teleos process gets the same environment, built from nothing by
//! [`hermetic`]: no user or system git config, fixed author/committer and dates, `LC_ALL=C`,
//! `HOME` inside the temp dir. In-process gix opens repositories with [`open_isolated`].
#![allow(dead_code)]

pub mod agent;
mod helpers;

pub use helpers::*;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_git-teleos");

pub struct TestRepo {
    _tmp: tempfile::TempDir,
    /// Root of the repository's main work tree.
    pub root: PathBuf,
    /// A scratch folder next to the repository (HOME, stand-in agents, logs).
    pub home: PathBuf,
    /// Extra entries put first on PATH for the binary (stand-in agent CLIs).
    pub bin_dir: PathBuf,
}

/// The result of running a command: status code, stdout, stderr as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Variables passed through from the test process: where temporary files go. Everything
/// else a child sees is set by [`hermetic`].
const PASSED_THROUGH: &[&str] = &["TMPDIR"];

/// The one hermetic environment, for every git, git-teleos and stand-in process a test starts:
/// the environment is cleared and only what the tests need comes back. No user or system git
/// config (`HOME` and `XDG_CONFIG_HOME` inside the test's temp dir, `GIT_CONFIG_GLOBAL` empty,
/// `GIT_CONFIG_NOSYSTEM`), fixed author, committer and dates, `LC_ALL=C`, `TZ=UTC`, stdin
/// closed, and `PATH` with `bin_dir` (stand-in agent CLIs) first, then the test process's own
/// (to find git, sh and the tools stand-ins use).
pub fn hermetic(cmd: &mut Command, home: &Path, bin_dir: &Path) {
    cmd.env_clear();
    for key in PASSED_THROUGH {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env("PATH", path)
        .stdin(Stdio::null());
}

/// Open a repository in this process the way tests must: gix reads only the repository's own
/// config, never the user's or the system's, nor `GIT_*` and `XDG_*` variables (the test
/// process runs with the developer's environment).
pub fn open_isolated(dir: &Path) -> gix::Repository {
    gix::discover_opts(dir, Default::default(), gix::open::Options::isolated())
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// The name libtest knows a test by (`module::test`), to run it again in a child process.
macro_rules! test_path {
    ($test:ident) => {
        $crate::common::without_crate(concat!(module_path!(), "::", stringify!($test)))
    };
}
pub(crate) use test_path;

/// `it::scan::a_test` becomes `scan::a_test`: libtest leaves out the crate's name.
pub fn without_crate(path: &'static str) -> &'static str {
    path.split_once("::").map_or(path, |(_, rest)| rest)
}

/// Set in the child process [`in_child_process`] starts, to the test it runs there.
const CHILD_TEST: &str = "TELEOS_TESTS_CHILD_TEST";

/// Whether this process is the child [`in_child_process`] started to run `test`.
pub fn is_child_process(test: &str) -> bool {
    std::env::var_os(CHILD_TEST).is_some_and(|t| t == test)
}

/// For a test that needs process-wide state (environment variables), which would leak into
/// the tests running next to it in this binary: in the test process, run the same test again
/// in a child process of this test binary with only `env` (plus `PATH`, `TMPDIR`, `LC_ALL`),
/// check that it ran and passed, and return `false`; in that child, return `true`, and the test
/// goes on with its body. Use with [`test_path!`]: `if !in_child_process(test_path!(me), &env)
/// { return; }`.
#[track_caller]
pub fn in_child_process(test: &str, env: &[(&str, &OsStr)]) -> bool {
    if is_child_process(test) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env_clear()
        .env(CHILD_TEST, test)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .stdin(Stdio::null());
    for key in PASSED_THROUGH {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let run = Run::from(cmd.output().expect("run the test binary"));
    // A filter that matches nothing passes too: make sure the test really ran.
    assert!(
        run.code == 0 && run.stdout.contains("test result: ok. 1 passed"),
        "{test} in a child process failed\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    false
}

impl TestRepo {
    /// A fresh repository on branch `main` with one commit.
    pub fn new() -> TestRepo {
        let repo = TestRepo::scratch("repo");
        repo.git(&["init", "-q", "-b", "main"]);
        // Parallel agents start 0.5 s apart by default; tests that count agents running at once
        // need them started together (a test may set it again).
        repo.git(&["config", "teleos.agentStagger", "0"]);
        repo.write("README.md", "# test project\n");
        repo.commit_all("initial commit");
        repo
    }

    /// A plain folder that is not a repository (same hermetic env).
    pub fn not_a_repo() -> TestRepo {
        TestRepo::scratch("plain")
    }

    /// A temp dir holding an empty folder `root_name` (the work tree), `home` and `bin`.
    fn scratch(root_name: &str) -> TestRepo {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().canonicalize().expect("canonical tempdir");
        let root = base.join(root_name);
        let home = base.join("home");
        let bin_dir = base.join("bin");
        for d in [&root, &home, &bin_dir] {
            fs::create_dir_all(d).expect("mkdir");
        }
        TestRepo {
            _tmp: tmp,
            root,
            home,
            bin_dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        self.write_bytes(rel, content.as_bytes());
    }

    pub fn write_bytes(&self, rel: &str, content: &[u8]) {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, content).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).expect("read")
    }

    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    /// Run git in the repository; panics on failure; returns trimmed stdout.
    #[track_caller]
    pub fn git(&self, args: &[&str]) -> String {
        let r = self.git_in(&self.root, args);
        assert_eq!(r.code, 0, "git {args:?} failed: {}", r.stderr);
        r.stdout.trim_end().to_string()
    }

    pub fn git_in(&self, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(dir);
        hermetic(&mut cmd, &self.home, &self.bin_dir);
        Run::from(cmd.output().expect("run git"))
    }

    /// Run the real `git-teleos` binary in the repository root.
    pub fn teleos<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.teleos_in(&self.root.clone(), args)
    }

    pub fn teleos_in<I, S>(&self, dir: &Path, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.teleos_cmd(dir);
        cmd.args(args);
        Run::from(cmd.output().expect("run git-teleos"))
    }

    /// A `git-teleos` command with the hermetic environment, for callers that need more control.
    pub fn teleos_cmd(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir);
        hermetic(&mut cmd, &self.home, &self.bin_dir);
        cmd
    }

    /// Put an executable script on the PATH the binary sees (a stand-in agent CLI).
    pub fn install_script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.bin_dir.join(name);
        fs::write(&p, body).expect("write script");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }
}

/// A story file with `done` checked and `left` unchecked top-level tasks.
pub fn story(title: &str, done: usize, left: usize) -> String {
    let mut s = format!("# {title}\n\nStatus: in-progress\n\n## Tasks / Subtasks\n\n");
    for i in 0..done {
        s.push_str(&format!("- [x] Task done {i}\n"));
    }
    for i in 0..left {
        s.push_str(&format!("- [ ] Task left {i}\n"));
    }
    s
}

/// Shell lines for a stand-in agent: set `$key` and `$file` from the `story_key:` and
/// `story_file:` lines of the prompt in `$prompt` (as the real agents read the prompt).
pub const STORY_FROM_PROMPT: &str = r#"key=$(printf '%s\n' "$prompt" | sed -n 's/^.*story_key[^:]*: *[`*]*\([^`* ]*\).*$/\1/p' | head -n 1)
file=$(printf '%s\n' "$prompt" | sed -n 's/^.*story_file[^:]*: *[`*]*\([^`* ]*\).*$/\1/p' | head -n 1)"#;

/// A captured output of a real agent CLI (tests/it/common/fixtures/agent-cli, see its README).
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/common/fixtures/agent-cli")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// claude's real result envelope (`claude.out`, one line) with a successful `result` and a
/// cost: what `claude -p --output-format json` prints when a run went well.
pub fn claude_envelope(result: &str, cost: f64) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&fixture("claude.out")).expect("claude.out is JSON");
    v["is_error"] = false.into();
    v["result"] = result.into();
    v["total_cost_usd"] = cost.into();
    v["num_turns"] = 3.into();
    v.to_string()
}

/// A shell here-document that prints `text` verbatim (quoted delimiter: nothing expands).
pub fn heredoc(text: &str, to_stderr: bool) -> String {
    format!(
        "cat {}<<'TELEOS_FIXTURE'\n{}{}TELEOS_FIXTURE\n",
        if to_stderr { ">&2 " } else { "" },
        text,
        if text.ends_with('\n') { "" } else { "\n" }
    )
}

/// A shell line printing claude's real envelope (`claude.out` turned into a success) whose
/// `result` is the output of the shell command `result_cmd`, JSON-escaped.
pub fn claude_envelope_sh(result_cmd: &str, cost: f64) -> String {
    let envelope = claude_envelope("@RESULT@", cost);
    let (pre, post) = envelope.split_once("@RESULT@").expect("placeholder");
    assert!(!pre.contains('\'') && !post.contains('\''));
    format!(
        r#"printf '%s%s%s\n' '{pre}' "$({result_cmd} | sed 's/\\/\\\\/g; s/"/\\"/g')" '{post}'"#
    ) + "\n"
}
