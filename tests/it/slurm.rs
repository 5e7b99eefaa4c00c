//! `teleos.runner=slurm` end to end, against a real single-node Slurm cluster that
//! `scripts/slurm-localhost.sh` starts on this machine for each test (its own munged,
//! slurmctld and slurmd, its own ports, everything in the test's temporary folder). Jobs run
//! `git teleos run-story` under slurmd, with a bare repository as the shared remote and a
//! stand-in `claude`. Where Slurm is not installed or cannot start (not root, no `slurm-wlm`),
//! each test prints `skipped: <why>` and returns: it never passes silently. `.ci/run` installs
//! `slurm-wlm` and `munge`, so CI runs them.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::agent::Claude;
use common::{story, TestRepo};

const DIR: &str = "docs/sprint-artifacts";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm-localhost.sh");

/// A running private cluster; stopped (its jobs cancelled, its daemons ended by PID) on drop.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!(
                    "slurm-localhost.sh stop: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// Two distinct ports nobody listens on now (the kernel's picks, released at once).
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().expect("its address").port();
    (port(&a), port(&b))
}

/// Start a cluster in `dir`, or say why it cannot run here.
fn start_cluster(dir: &Path) -> Result<Cluster, String> {
    let (ctld, slurmd) = free_ports();
    let out = Command::new("bash")
        .arg(SCRIPT)
        .arg("start")
        .arg(dir)
        .env("SLURMCTLD_PORT", ctld.to_string())
        .env("SLURMD_PORT", slurmd.to_string())
        // Four slots on however many cores: the jobs mostly wait on git and the agent.
        .env("SLURM_LOCALHOST_CPUS", "4")
        .output()
        .map_err(|e| format!("cannot run {SCRIPT}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cluster = Cluster {
        dir: dir.to_path_buf(),
        conf: dir.join("slurm.conf"),
    };
    if !out.status.success() {
        // Dropping `cluster` stops whatever started.
        return Err(format!(
            "a single-node Slurm cannot start here: {}",
            stderr.trim()
        ));
    }
    Ok(cluster)
}

/// The cluster for a test, or `None` after printing why the test is skipped: straight to
/// stderr, past libtest's capture, so that a passing run still shows it. Where
/// `TELEOS_REQUIRE_SLURM` is set (`.ci/run` sets it once it installed Slurm), a cluster that
/// cannot start fails the test instead.
fn cluster_or_skip(r: &TestRepo, test: &str) -> Option<Cluster> {
    match start_cluster(&r.home.join("slurm")) {
        Ok(c) => Some(c),
        Err(why) if std::env::var_os("TELEOS_REQUIRE_SLURM").is_some() => {
            panic!("TELEOS_REQUIRE_SLURM is set, but {why}")
        }
        Err(why) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: slurm::{test}: {why}");
            None
        }
    }
}

/// The user's repository with `keys` as stories, a bare clone as the shared remote, the stand-in
/// agent, and `git-teleos` on the PATH the jobs get (as on a node where it is installed).
fn setup(keys: &[&str]) -> (TestRepo, String) {
    let r = common::repo_with_stories(keys);
    let bare = r.with_shared_remote();
    std::os::unix::fs::symlink(common::BIN, r.bin_dir.join("git-teleos")).unwrap();
    // Records where it ran and which Slurm task ran it; 9-* crash as the CLI does when it
    // dies (a message on stderr, exit 1, no result).
    Claude::new()
        .sh(r#"pwd > "$state/cwd-$key"; echo "${SLURM_ARRAY_JOB_ID:-none}_${SLURM_ARRAY_TASK_ID:-none}" > "$state/slurm-$key""#)
        .on("9-*", r#"echo "Error: the agent process crashed" >&2; exit 1"#)
        .tick()
        .write_out()
        .commit(r#"out "$file""#)
        .answer_counts()
        .install(&r);
    r.git(&["config", "teleos.runner", "slurm"]);
    r.git(&["config", "teleos.storyTimeout", "120"]);
    (r, format!("file://{}", bare.display()))
}

/// Replace the job script with the built-in one plus `lines` run first in each task (with
/// `TELEOS_KEY` set), committed and pushed as `ci/story.sbatch`.
fn custom_template(r: &TestRepo, lines: &str) {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/slurm/teleos-story.sbatch"
    ))
    .unwrap();
    let at = template
        .find("\ndir=$(mktemp")
        .expect("the template makes a folder");
    let template = format!(
        "{}\n{}{}",
        &template[..at],
        lines.trim_end(),
        &template[at..]
    );
    r.write("ci/story.sbatch", &template);
    r.commit_all("our own job script");
    r.git(&["push", "-q", "origin", "main"]);
    r.git(&["config", "teleos.slurmTemplate", "ci/story.sbatch"]);
}

/// Lines for [`custom_template`]: tasks of stories matching `glob` write `<job>_<task> <pid>`
/// to `$HOME/hung-<key>` and hang.
fn hang(glob: &str) -> String {
    format!(
        "case \"$TELEOS_KEY\" in {glob})\n  echo \"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} $$\" > \"$HOME/hung-$TELEOS_KEY\"\n  sleep 600;;\nesac"
    )
}

/// Slurm's state of a task, and that its shell is gone once Slurm ended it.
fn assert_cancelled(r: &TestRepo, cluster: &Cluster, key: &str) {
    let hung = std::fs::read_to_string(r.home.join(format!("hung-{key}"))).unwrap();
    let (task, pid) = hung.trim().split_once(' ').unwrap();
    // Cancelled, once slurmd has stopped the task (COMPLETING until then).
    let show = || {
        let out = Command::new("scontrol")
            .args(["-o", "show", "job", task])
            .env("SLURM_CONF", &cluster.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut state = show();
    for _ in 0..300 {
        if !state.contains("JobState=COMPLETING") && !state.contains("JobState=RUNNING") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        state = show();
    }
    assert!(state.contains("JobState=CANCELLED"), "{key}: {state}");
    // slurmd ends a cancelled task's processes (SIGTERM, SIGKILL after KillWait); wait for it.
    let proc = PathBuf::from(format!("/proc/{pid}"));
    for _ in 0..300 {
        if !proc.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !proc.exists(),
        "{key}: the hung task's shell {pid} still runs"
    );
}

/// `git teleos close --parallel N --all --yes --json` against the test's cluster.
fn close_cmd(r: &TestRepo, cluster: &Cluster, parallel: &str) -> Command {
    let mut cmd = r.teleos_cmd(&r.root);
    cmd.env("SLURM_CONF", &cluster.conf).args([
        "close",
        "--parallel",
        parallel,
        "--all",
        "--yes",
        "--json",
    ]);
    cmd
}

/// [`close_cmd`] started in the background, its output captured.
fn spawn_close(r: &TestRepo, cluster: &Cluster, parallel: &str) -> std::process::Child {
    close_cmd(r, cluster, parallel)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn close(
    r: &TestRepo,
    cluster: &Cluster,
    parallel: &str,
) -> (Option<i32>, serde_json::Value, String) {
    let out = close_cmd(r, cluster, parallel).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let j = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    (out.status.code(), j, stderr)
}

/// The `<key>.job.log` files under `.git/teleos/`, by key.
fn job_logs(r: &TestRepo) -> BTreeMap<String, String> {
    fn walk(dir: &Path, found: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(&p, found);
            } else if let Some(key) = name.strip_suffix(".job.log") {
                found.insert(
                    key.to_string(),
                    std::fs::read_to_string(&p).unwrap_or_default(),
                );
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(&r.root.join(".git/teleos"), &mut found);
    found
}

fn keys_of<'a>(j: &'a serde_json::Value, list: &str) -> Vec<&'a str> {
    j[list]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["story_key"].as_str()).collect())
        .unwrap_or_default()
}

/// Four stories in array jobs (1-2 depends on 1-1, so it goes out in a later wave, on the
/// integration tip), one agent crashes: three land, the crash is an error, exit 1, the remote
/// keeps only the crash's refs, and the user's checkout never gets a worktree.
#[test]
fn slurm_runner_lands_stories_through_array_jobs() {
    let keys = ["1-1-first", "1-2-second", "1-3-third", "9-1-crash"];
    let (r, url) = setup(&keys);
    r.write(
        &format!("{DIR}/1-2-second.md"),
        &(story("Second", 9, 1) + "\n## Dependencies\n\n- Story 1.1 (first)\n"),
    );
    r.commit_all("1-2 depends on 1-1");
    r.git(&["push", "-q", "origin", "main"]);
    let Some(cluster) = cluster_or_skip(&r, "slurm_runner_lands_stories_through_array_jobs") else {
        return;
    };
    let remote_before = common::remote_refs(&r, &url);
    let start = r.git(&["rev-parse", "HEAD"]);

    let (code, j, stderr) = close(&r, &cluster, "3");
    assert_eq!(code, Some(1), "{j}\n{stderr}");
    let mut completed = keys_of(&j, "completed");
    completed.sort_unstable();
    assert_eq!(
        completed,
        ["1-1-first", "1-2-second", "1-3-third"],
        "{j}\n{stderr}"
    );
    let crash = common::entry(&j["errors"], "9-1-crash");
    assert_eq!(crash["outcome"], "error", "{j}");
    let log = r.git(&["log", "--format=%s", &format!("{start}..main")]);
    for k in &keys[..3] {
        assert!(
            log.contains(&format!("teleos: close {k}")),
            "{k} not on main:\n{log}"
        );
        assert!(
            r.path(&format!("out/{k}.txt")).exists(),
            "{k} not checked out"
        );
    }

    // Every agent ran under slurmd as an array task, in a job folder outside the checkout.
    let state = r.home.join("agents");
    let mut arrays = BTreeMap::new();
    for k in &keys {
        let task = std::fs::read_to_string(state.join(format!("slurm-{k}"))).unwrap();
        let (job, index) = task.trim().split_once('_').unwrap();
        assert!(
            job.parse::<u32>().is_ok() && index.parse::<u32>().is_ok(),
            "{k}: {task}"
        );
        arrays
            .entry(job.to_string())
            .or_insert_with(Vec::new)
            .push(*k);
        let cwd = std::fs::read_to_string(state.join(format!("cwd-{k}"))).unwrap();
        let cwd = Path::new(cwd.trim());
        assert!(
            !cwd.starts_with(&r.root),
            "{k} ran in the checkout: {}",
            cwd.display()
        );
        assert!(
            cwd.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("teleos-story."),
            "{k}: {}",
            cwd.display()
        );
    }
    // The first wave (1-1, 1-3, the crash) was one array job; 1-2 waited for 1-1 to merge.
    assert_eq!(arrays.len(), 2, "{arrays:?}");
    assert!(arrays.values().any(|v| v.len() == 3), "{arrays:?}");
    assert_eq!(
        r.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    assert!(!r.path(".claude/worktrees").exists());
    assert_eq!(r.git(&["status", "--porcelain"]), "");

    // Each task's output (Slurm's --output file) moved to the batch's logs.
    let sid = j["session_id"].as_str().unwrap();
    let litter: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("teleos-{sid}-")))
        .collect();
    assert!(litter.is_empty(), "outputs left in /tmp: {litter:?}");
    let logs = job_logs(&r);
    for k in &keys {
        let log = logs
            .get(*k)
            .unwrap_or_else(|| panic!("no {k}.job.log among {:?}", logs.keys()));
        assert!(
            log.contains(&format!("teleos: story {k} on ")),
            "{k}: {log}"
        );
    }

    // The remote's branches are untouched; of the session, only the crash's refs are left.
    common::assert_remote_keeps_only(&r, &url, &remote_before, "/9-1-crash");
    drop(cluster);
}

/// A job that dies before `run-story` pushes anything (here: a replaced template whose task
/// for the second story exits 3) is an error carrying Slurm's reason and the job's output; the
/// other story of the same array job lands.
#[test]
fn a_slurm_job_that_dies_is_an_error_with_slurms_reason() {
    let (r, url) = setup(&["1-1-first", "1-2-vanish"]);
    custom_template(
        &r,
        r#"[ "$TELEOS_KEY" = 1-2-vanish ] && { echo "node lost its scratch disk"; exit 3; }"#,
    );
    let Some(cluster) = cluster_or_skip(&r, "a_slurm_job_that_dies_is_an_error_with_slurms_reason")
    else {
        return;
    };

    let (code, j, stderr) = close(&r, &cluster, "2");
    assert_eq!(code, Some(1), "{j}\n{stderr}");
    assert_eq!(keys_of(&j, "completed"), ["1-1-first"], "{j}\n{stderr}");
    let died = common::entry(&j["errors"], "1-2-vanish");
    let why = died["error_message"].as_str().unwrap_or_default();
    assert!(
        why.contains("the job failed without a result")
            && why.contains("ended FAILED")
            && why.contains("exit code 3:0")
            && why.contains("node lost its scratch disk"),
        "{why}"
    );
    assert!(
        !r.home.join("agents/cwd-1-2-vanish").exists(),
        "its agent never ran"
    );
    let after = common::remote_refs(&r, &url);
    assert!(
        !after.keys().any(|k| k.contains("/1-1-first")),
        "landed refs left: {after:?}"
    );
    drop(cluster);
}

/// A job that reports nothing within the story timeout (here: a replaced template whose task
/// hangs before `run-story`) is cancelled through Slurm: the story is an error, and Slurm
/// shows the task CANCELLED, its process gone. (A lone story: with a 5 s timeout, nothing here
/// may depend on another job finishing in time on a busy machine.)
#[test]
fn a_silent_slurm_job_is_cancelled_with_scancel() {
    let (r, _url) = setup(&["1-2-hang"]);
    custom_template(&r, &hang("1-2-hang"));
    r.git(&["config", "teleos.storyTimeout", "5"]);
    r.git(&["config", "teleos.retries", "0"]);
    let Some(cluster) = cluster_or_skip(&r, "a_silent_slurm_job_is_cancelled_with_scancel") else {
        return;
    };

    let (code, j, stderr) = close(&r, &cluster, "2");
    assert_eq!(code, Some(1), "{j}\n{stderr}");
    let hung = common::entry(&j["errors"], "1-2-hang");
    let why = hung["error_message"].as_str().unwrap_or_default();
    assert!(
        why.contains("reported nothing within 5 s and was cancelled") && !why.contains("failed"),
        "{why}"
    );
    assert_cancelled(&r, &cluster, "1-2-hang");
    drop(cluster);
}

/// Time a job spends waiting in Slurm's queue is not the agent's: a job held in the queue
/// longer than the story timeout is not cancelled, and lands once Slurm runs it.
#[test]
fn time_in_the_slurm_queue_does_not_count_against_the_story_timeout() {
    let (r, _url) = setup(&["1-1-queued"]);
    // The built-in job script, submitted held: it waits until the test releases it.
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/slurm/teleos-story.sbatch"
    ))
    .unwrap()
    .replacen(
        "#SBATCH --export=ALL",
        "#SBATCH --export=ALL\n#SBATCH --hold",
        1,
    );
    assert!(template.contains("--hold"), "{template}");
    r.write("ci/story.sbatch", &template);
    r.commit_all("a job script that is submitted held");
    r.git(&["push", "-q", "origin", "main"]);
    r.git(&["config", "teleos.slurmTemplate", "ci/story.sbatch"]);
    r.git(&["config", "teleos.storyTimeout", "5"]);
    r.git(&["config", "teleos.retries", "0"]);
    let Some(cluster) = cluster_or_skip(
        &r,
        "time_in_the_slurm_queue_does_not_count_against_the_story_timeout",
    ) else {
        return;
    };
    let child = spawn_close(&r, &cluster, "1");
    let squeue = || {
        let out = Command::new("squeue")
            .args(["--noheader", "--array", "--format=%i %T %r"])
            .env("SLURM_CONF", &cluster.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut held = String::new();
    for _ in 0..600 {
        held = squeue();
        if held.contains("PENDING") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        held.contains("PENDING"),
        "the job was never queued: {held:?}"
    );
    // Held for well over the 5 s timeout, then let go.
    std::thread::sleep(std::time::Duration::from_secs(12));
    let still = squeue();
    assert!(still.contains("PENDING"), "{still}");
    let job = still.split_whitespace().next().unwrap().to_string();
    let released = Command::new("scontrol")
        .args(["release", &job])
        .env("SLURM_CONF", &cluster.conf)
        .status()
        .unwrap();
    assert!(released.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    assert_eq!(out.status.code(), Some(0), "{j}\n{stderr}");
    assert_eq!(keys_of(&j, "completed"), ["1-1-queued"], "{j}\n{stderr}");
    assert!(stderr.contains("waits in the queue"), "{stderr}");
    drop(cluster);
}

/// Ctrl-C while array tasks run: every task is cancelled through Slurm, the stories are
/// errors that say so, exit 130.
#[test]
fn ctrl_c_cancels_every_slurm_job() {
    let (r, _url) = setup(&["1-1-first", "1-2-second"]);
    custom_template(&r, &hang("1-*"));
    let Some(cluster) = cluster_or_skip(&r, "ctrl_c_cancels_every_slurm_job") else {
        return;
    };
    let child = spawn_close(&r, &cluster, "2");
    // Both tasks run (each wrote its file), then Ctrl-C.
    let started = |k: &str| r.home.join(format!("hung-{k}")).exists();
    let mut waited = 0;
    while !(started("1-1-first") && started("1-2-second")) {
        assert!(waited < 600, "the array tasks never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["1-1-first", "1-2-second"] {
        let e = common::entry(&j["errors"], k);
        let why = e["error_message"].as_str().unwrap_or_default();
        assert!(
            why.contains("interrupted") && why.contains("was cancelled"),
            "{k}: {why}"
        );
        assert_cancelled(&r, &cluster, k);
    }
    drop(cluster);
}

/// No `sbatch` on PATH: a setup error before anything is pushed.
#[test]
fn slurm_runner_without_sbatch_is_a_setup_error() {
    let (r, url) = setup(&["1-1-first"]);
    let mut cmd = r.teleos_cmd(&r.root);
    // Only git's folder on PATH (this test's machine may well have Slurm installed).
    let git = git_only(&r);
    cmd.env("PATH", format!("{}:{}", r.bin_dir.display(), git.display()))
        .args(["close", "--parallel", "2", "--all", "--yes"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: teleos.runner is slurm, but sbatch is not on PATH")
            && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!common::remote_refs(&r, &url)
        .keys()
        .any(|k| k.starts_with("refs/teleos/")));
}

/// A folder holding only `git` (for a PATH without Slurm's commands).
fn git_only(r: &TestRepo) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    let git = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let lone = r.home.join("git-only");
    std::fs::create_dir_all(&lone).unwrap();
    std::os::unix::fs::symlink(git, lone.join("git")).unwrap();
    lone
}
