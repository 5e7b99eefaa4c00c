//! 100 merges into an integration branch: git-teleos's in-memory merge (gix tree merge, merge
//! commit, compare-and-swap ref update, no checkout) against the source workflow's
//! `git checkout integration && git merge <branch> --no-edit && git checkout main` per story,
//! on identical repositories in the same run.
//!
//! ```sh
//! cargo bench --bench merges      # MERGES_FILES (default 2000) files, MERGES_N (100) branches
//! ```

#[path = "fixture/mod.rs"]
mod fixture;
#[path = "pool/fresh_fs.rs"]
mod fresh_fs;
use fresh_fs::{FreshFs, FsKind};

use std::fs;
use std::path::Path;
use std::time::Instant;

use git_teleos::git::{self, MergeOutcome};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A repository with `files` files on main and `n` branches, each changing its own file.
fn build(root: &Path, home: &Path, files: usize, n: usize) {
    fixture::init_repo(root, home);
    fs::create_dir_all(root.join("src")).expect("mkdir");
    for i in 0..files {
        fs::write(root.join(format!("src/f{i:05}.txt")), format!("file {i}\n")).expect("write");
    }
    fixture::git(root, home, &["add", "-A"]);
    fixture::git(root, home, &["commit", "-q", "-m", "base"]);
    fixture::git(root, home, &["branch", "integration"]);
    for b in 0..n {
        fixture::git(
            root,
            home,
            &["checkout", "-q", "-b", &format!("story-{b}"), "main"],
        );
        fs::write(
            root.join(format!("src/f{:05}.txt", b % files)),
            format!("changed by story {b}\n"),
        )
        .expect("write");
        fs::write(root.join(format!("story-{b}.txt")), "done\n").expect("write");
        fixture::git(root, home, &["add", "-A"]);
        fixture::git(root, home, &["commit", "-q", "-m", &format!("story {b}")]);
    }
    fixture::git(root, home, &["checkout", "-q", "main"]);
    fixture::git(root, home, &["gc", "-q"]);
}

fn copy(from: &Path, to: &Path) {
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp")
        .success();
    assert!(ok, "cp -a failed");
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    // `cargo test --benches` runs bench targets once with `--bench`-less args: keep it quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (files, n, rounds) = if quick {
        (50, 5, 1)
    } else {
        (
            env("MERGES_FILES", 2000),
            env("MERGES_N", 100),
            env("MERGES_ROUNDS", 3),
        )
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let fixture_dir = tmp.path().join("fixture");
    build(&fixture_dir, &home, files, n);
    // Every run on a filesystem of its own, so no run inherits another's disk state (dirty
    // pages, freed inodes) and the side that runs second is not biased.
    let fs_kind = FsKind::probe(tmp.path());
    let (mut gix_times, mut git_times) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for side in if round % 2 == 0 {
            ["gix", "git"]
        } else {
            ["git", "gix"]
        } {
            let mnt = tmp.path().join("run");
            let fresh = FreshFs::new(fs_kind, tmp.path(), &mnt);
            let repo_dir = mnt.join(format!("{side}-{round}"));
            copy(&fixture_dir, &repo_dir);
            let started = Instant::now();
            if side == "gix" {
                let repo = git::discover(&repo_dir).expect("open");
                for b in 0..n {
                    let tip = git::resolve_ref(&repo, &format!("refs/heads/story-{b}"))
                        .expect("resolve")
                        .expect("branch");
                    let out = git::merge_into_branch(
                        &repo,
                        "refs/heads/integration",
                        tip,
                        &format!("merge story {b}"),
                    )
                    .expect("merge");
                    assert!(!matches!(out, MergeOutcome::Conflict { .. }));
                }
                gix_times.push(started.elapsed().as_secs_f64());
            } else {
                for b in 0..n {
                    fixture::git(&repo_dir, &home, &["checkout", "-q", "integration"]);
                    fixture::git(
                        &repo_dir,
                        &home,
                        &["merge", "-q", "--no-edit", &format!("story-{b}")],
                    );
                    fixture::git(&repo_dir, &home, &["checkout", "-q", "main"]);
                }
                git_times.push(started.elapsed().as_secs_f64());
            }
            // Both sides must end with every story on integration.
            let log = fixture::git(&repo_dir, &home, &["log", "--format=%s", "integration"]);
            for b in 0..n {
                assert!(
                    log.contains(&format!("story {b}\n")) || log.ends_with(&format!("story {b}"))
                );
            }
            drop(fresh);
        }
    }
    let (g, c) = (median(gix_times.clone()), median(git_times.clone()));
    println!("{n} merges into integration, {files}-file repository, {rounds} rounds (medians)");
    println!(
        "  git-teleos in memory (gix):                 {g:.3} s  {:?}",
        gix_times
    );
    println!(
        "  git checkout + git merge + git checkout:    {c:.3} s  {:?}",
        git_times
    );
    println!("  ratio in-memory / checkout-merge:           {:.3}", g / c);
    if !quick {
        write_section(fs_kind, files, n, rounds, (g, &gix_times), (c, &git_times));
    }
}

const START: &str = "<!-- merges-bench:start -->";
const END: &str = "<!-- merges-bench:end -->";

/// Replace this harness's section of BENCHMARKS.md (or append it): no figure typed by hand.
fn write_section(
    fs_kind: FsKind,
    files: usize,
    n: usize,
    rounds: usize,
    gix: (f64, &[f64]),
    git: (f64, &[f64]),
) {
    let list = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let section = format!(
        "{START}\n## 100 merges into an integration branch\n\n\
         _Generated by `benches/merges.rs`; do not edit by hand._ Command: \
         `cargo bench --bench merges` ({n} story branches, each changing its own file, on a \
         {files}-file repository; {rounds} rounds, sides alternating; medians). Every run's \
         filesystem: {}.\n\n\
         | side | median s | samples s |\n| --- | ---: | --- |\n\
         | git-teleos: `merge_into_branch` in memory (gix tree merge, merge commit, CAS ref update, no checkout) | {:.3} | {} |\n\
         | seed: `git checkout integration && git merge <branch> --no-edit && git checkout main` per story | {:.3} | {} |\n\
         | ratio in memory / checkout-merge | {:.3} × | |\n{END}",
        fs_kind.describe(),
        gix.0,
        list(gix.1),
        git.0,
        list(git.1),
        gix.0 / git.0
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let new = match (text.find(START), text.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &text[..a], &text[b + END.len()..]),
        _ => format!("{}\n{section}\n", text.trim_end()),
    };
    fs::write(&path, new).expect("write BENCHMARKS.md");
    println!("wrote the merges section of {}", path.display());
}
