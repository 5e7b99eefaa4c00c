//! The repository-dependent part of the per-story overhead (issue 16 §2), without the batch
//! around it, so it can be timed in CPU (or counted under callgrind) on a loaded machine:
//!
//! ```sh
//! cargo run --release --example story_overhead -- /tmp/probe-20000 20000 10
//! ```
//!
//! Builds (once) a repository of `files` filler files laid out as the e2e benchmark's fixture,
//! then repeats `rounds` times what a worktree slot does around one agent: the stand-in agent's
//! commit (real `git add` and `git commit`, not measured), the verification as a worktree slot
//! makes it (`git::WorktreeWatch::dirty_paths`, judging what changed since the last proof), the
//! full verification for comparison (`git::is_clean`, which the quick pass must prove), and bringing the worktree to the next tip
//! (`git::reset_clean_worktree_with`, with the index the verification read, as a slot does;
//! here the commit before the agent's: a two-file diff).
//! Prints the CPU time (user + system, all threads of this process) of each step, per round
//! and the median.

#[path = "probe/mod.rs"]
mod probe;

use probe::{cpu, git};
use std::path::Path;
use std::sync::atomic::AtomicBool;

fn build(dir: &Path, files: usize) {
    for i in 0..files {
        let sub = dir.join(format!("src/m{:03}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&sub).expect("mkdir");
        }
        let body = format!("// filler file {i}\npub fn f{i}() -> usize {{\n    {i}\n}}\n");
        std::fs::write(sub.join(format!("file{i:05}.rs")), body).expect("write");
    }
    std::fs::create_dir_all(dir.join("docs/stories")).expect("mkdir");
    std::fs::write(dir.join("docs/stories/s.md"), "- [ ] task\n").expect("write");
    std::fs::write(dir.join(".gitignore"), "target/\n").expect("write");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["-c", "gc.auto=0", "commit", "-q", "-m", "fixture"]);
    git(dir, &["gc", "-q"]);
    // Past the second the index was written in: no racily clean entry from the set-up.
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map(String::as_str).unwrap_or("/tmp/probe"));
    let files: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    if !dir.join(".git").exists() {
        std::fs::create_dir_all(dir).expect("mkdir");
        build(dir, files);
    }
    let no_cancel = AtomicBool::new(false);
    let (mut verify, mut update, mut watched) = (Vec::new(), Vec::new(), Vec::new());
    let mut watch = git_teleos::git::WorktreeWatch::start(&gix::open(dir).expect("open"), false);
    let (mut verify_wall, mut update_wall) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // The stand-in agent: tick the box, write its output, commit (git writes the index).
        std::fs::write(dir.join("docs/stories/s.md"), "- [x] task\n").expect("write");
        std::fs::create_dir_all(dir.join("out")).expect("mkdir");
        std::fs::write(dir.join("out/k.txt"), format!("{round}\n")).expect("write");
        git(dir, &["add", "out", "docs/stories/s.md"]);
        git(dir, &["commit", "-q", "-m", "close k"]);
        let before = git(dir, &["rev-parse", "HEAD^"]);
        let before = gix::ObjectId::from_hex(before.as_bytes()).expect("hex");

        let t = cpu();
        let repo = gix::open(dir).expect("open");
        let dirty = watch.dirty_paths(&repo).expect("status");
        watched.push(cpu() - t);
        assert!(
            dirty.is_empty(),
            "the watch proves the worktree clean: {dirty:?}"
        );

        // `STORY_OVERHEAD_FULL=0` leaves the full verification out (to profile the rest).
        if std::env::var_os("STORY_OVERHEAD_FULL").is_none_or(|v| v != "0") {
            let (t, w) = (cpu(), std::time::Instant::now());
            let repo = gix::open(dir).expect("open");
            let clean = git_teleos::git::is_clean(&repo).expect("status");
            verify.push(cpu() - t);
            verify_wall.push(w.elapsed().as_secs_f64());
            assert!(clean, "the worktree is clean after the agent's commit");
        } else {
            verify.push(0.0);
            verify_wall.push(0.0);
        }

        let (t, w) = (cpu(), std::time::Instant::now());
        let repo = gix::open(dir).expect("open");
        // As a worktree slot does: with the index the watched verification read.
        let known = watch.take_proven_index();
        git_teleos::git::reset_clean_worktree_with(&repo, before, known, &no_cancel)
            .expect("reset");
        update.push(cpu() - t);
        update_wall.push(w.elapsed().as_secs_f64());
        println!(
            "round {round}: watched verify {:.1} ms, full verify {:.1} ms, update {:.1} ms \
             (CPU); {:.1}, {:.1} ms (wall)",
            watched[round] * 1e3,
            verify[round] * 1e3,
            update[round] * 1e3,
            verify_wall[round] * 1e3,
            update_wall[round] * 1e3
        );
    }
    println!(
        "{files} files, median of {rounds}: watched verify {:.1} ms (the first one walks in \
         full: {} full walks), full verify {:.1} ms, update {:.1} ms (CPU, user + system); \
         full verify {:.1} ms, update {:.1} ms (wall)",
        median(watched) * 1e3,
        watch.full_walks(),
        median(verify) * 1e3,
        median(update) * 1e3,
        median(verify_wall) * 1e3,
        median(update_wall) * 1e3
    );
}
