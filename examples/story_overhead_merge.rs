//! The merge part of the per-story overhead (issue 16 §2): a story's branch merged into the
//! integration branch in memory, as a worktree slot does (`git::merge_into_branch_owning`),
//! timed in CPU so that it can be compared on a loaded machine, or counted under callgrind.
//!
//! ```sh
//! cargo run --release --example story_overhead -- /tmp/probe-20000 20000 1   # builds it
//! cargo run --release --example story_overhead_merge -- /tmp/probe-20000 10
//! ```
//!
//! Each round: two commits off the branch `probe-integration`, each adding one file (real
//! `git`, not measured), then that branch's merge of the first (a fast-forward) and of the
//! second (a real merge). The repository is opened once, as a batch's slots share one: the
//! user's index, which gix reads for attributes, is loaded once and kept while unchanged.

#[path = "probe/mod.rs"]
mod probe;

use probe::{cpu, git};
use std::path::Path;
use std::process::Command;

/// A commit on a new branch off `base` changing one file, made without touching the checkout.
fn story(dir: &Path, base: &str, n: usize) -> gix::ObjectId {
    let blob = {
        let mut child = Command::new("git")
            .current_dir(dir)
            .args(["hash-object", "-w", "--stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("git");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("story {n}\n").as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let tmp_index = dir.join(".git/probe-index");
    let env = |c: &mut Command| {
        c.env("GIT_INDEX_FILE", &tmp_index);
    };
    let run = |args: &[&str]| {
        let mut c = Command::new("git");
        c.current_dir(dir).args([
            "-c",
            "user.name=probe",
            "-c",
            "user.email=probe@example.com",
        ]);
        env(&mut c);
        let out = c.args(args).output().expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["read-tree", base]);
    let path = format!("out/story{n}.txt");
    run(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("100644,{blob},{path}"),
    ]);
    let tree = run(&["write-tree"]);
    let commit = run(&["commit-tree", &tree, "-p", base, "-m", "story"]);
    gix::ObjectId::from_hex(commit.as_bytes()).expect("hex")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map(String::as_str).unwrap_or("/tmp/probe"));
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    assert!(
        dir.join(".git").exists(),
        "build it with the story_overhead example first"
    );
    git(dir, &["branch", "-f", "probe-integration", "HEAD"]);
    let target = "refs/heads/probe-integration";
    let mut times = Vec::new();
    // Opened once, as a batch's slots share one repository (and the user's index it loads).
    let repo = gix::open(dir).expect("open");
    for round in 0..rounds {
        let a = story(dir, "probe-integration", 2 * round);
        let b = story(dir, "probe-integration", 2 * round + 1);
        let t = cpu();
        for tip in [a, b] {
            git_teleos::git::merge_into_branch_owning(&repo, target, tip, "merge", &[])
                .expect("merge");
        }
        times.push(cpu() - t);
        println!(
            "round {round}: two merges {:.1} ms (CPU)",
            times[round] * 1e3
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median of {rounds}: two merges {:.1} ms (CPU, user + system)",
        times[rounds / 2] * 1e3
    );
}
