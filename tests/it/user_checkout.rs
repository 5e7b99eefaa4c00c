//! `git::changed_paths_refreshed`, the walks of the user's checkout before and after a parallel
//! batch. In a copied or restored checkout every file's stat differs from the index while its
//! content does not: the first walk reads them all and proves them, and the second starts from
//! that proof instead of reading them again. It must never hide a change.

use std::path::{Path, PathBuf};

use crate::common;
use crate::git_ops::{commit_all, git, init_in, write};
use git_teleos::git;
use tempfile::TempDir;

const FILES: [&str; 6] = [
    "README.md",
    "src/a.rs",
    "src/b.rs",
    "src/deep/c.rs",
    "docs/d.md",
    "docs/e.md",
];

/// Long ago: a file with this mtime is not "racy" (changed after the proof was taken).
fn long_ago() -> filetime::FileTime {
    filetime::FileTime::from_unix_time(1_577_836_800, 0)
}

/// A committed repository whose files all have stat data the index does not know (a new
/// mtime and ctime), as after `cp -a`, with their content unchanged.
fn copied_checkout() -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let root = init_in(&tmp);
    write(&root, ".gitignore", "*.log\n");
    for f in FILES {
        write(&root, f, &format!("// {f}\n"));
    }
    commit_all(&root, "files");
    for f in FILES.iter().chain([&".gitignore"]) {
        filetime::set_file_mtime(root.join(f), long_ago()).unwrap();
    }
    // A walk keeps no stat data whose ctime is in its own second or the one before (a change
    // then could look the same, to the second): these files' must be older.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    (tmp, root)
}

fn walk(root: &Path, from: Option<&git::Refreshed>) -> (Vec<String>, Option<git::Refreshed>) {
    let (mut paths, proof) =
        git::changed_paths_refreshed(&common::open_isolated(root), from, true).unwrap();
    paths.sort();
    (paths, proof)
}

/// What `git status` lists, paths only, sorted (`-uall`: untracked files one by one).
fn git_status(root: &Path) -> Vec<String> {
    let mut paths: Vec<String> = git(root, &["status", "--porcelain", "-uall"])
        .lines()
        .map(|l| l[3..].to_string())
        .collect();
    paths.sort();
    paths
}

#[test]
fn a_walk_from_an_earlier_proof_reads_nothing_again_and_misses_no_change() {
    let (_tmp, root) = copied_checkout();
    // One file is already changed (same size, old mtime): the walk reports it, and the proof
    // must not take its stat data as clean.
    write(&root, "src/b.rs", "// B.rs\n");
    filetime::set_file_mtime(root.join("src/b.rs"), long_ago()).unwrap();
    let (paths, proof) = walk(&root, None);
    assert_eq!(paths, ["src/b.rs"]);
    let proof = proof.expect("every file's stat changed: the walk proves them unchanged");

    // From the proof, nothing is left to prove: no file was read again. Without it, every
    // one is (the control).
    let (paths, again) = walk(&root, Some(&proof));
    assert_eq!(
        paths,
        ["src/b.rs"],
        "a change known before the proof is still reported"
    );
    assert!(again.is_none(), "the proof was not used");
    assert!(
        walk(&root, None).1.is_some(),
        "without the proof the files are read again"
    );

    // Changes made after the proof are all seen, including one that keeps the size and puts
    // the mtime back (its ctime moved), a new file in a new folder, a removed file, an
    // ignored file (not a change) and a staged one.
    write(&root, "src/a.rs", "// A.rs\n");
    filetime::set_file_mtime(root.join("src/a.rs"), long_ago()).unwrap();
    write(&root, "src/deep/new/leftover.txt", "left\n");
    std::fs::remove_file(root.join("docs/d.md")).unwrap();
    write(&root, "build.log", "ignored\n");
    let (paths, _) = walk(&root, Some(&proof));
    assert_eq!(paths, git_status(&root), "the walk and git status disagree");
    assert_eq!(
        paths,
        [
            "docs/d.md",
            "src/a.rs",
            "src/b.rs",
            "src/deep/new/leftover.txt"
        ]
    );
}

#[test]
fn a_proof_of_an_index_that_changed_since_is_not_used() {
    let (_tmp, root) = copied_checkout();
    let (_, proof) = walk(&root, None);
    let proof = proof.expect("a proof");
    // The user stages a change: the index the proof came from is gone.
    write(&root, "docs/e.md", "// staged\n");
    git(&root, &["add", "docs/e.md"]);
    let (paths, again) = walk(&root, Some(&proof));
    assert_eq!(paths, ["docs/e.md"]);
    assert_eq!(paths, git_status(&root));
    // `git add` refreshed nothing else, so the other files are read again and proved anew.
    assert!(again.is_some(), "the stale proof was used");
}

/// The whole batch: the user's checkout, copied (every stat stale), walked before the agents
/// start and after them. A tracked file an agent rewrites there behind git-teleos's back (same
/// size, mtime put back) is still reported.
#[test]
fn a_batch_in_a_copied_checkout_still_reports_a_tracked_file_an_agent_rewrote() {
    use common::agent::Claude;
    let r = common::TestRepo::new();
    r.agent_identity();
    r.write("notes.md", "the user's notes\n");
    for key in ["1-1-a", "1-2-b"] {
        r.write(
            &format!("docs/sprint-artifacts/{key}.md"),
            &common::story(key, 9, 1),
        );
    }
    r.commit_all("stories");
    for f in [
        "notes.md",
        "docs/sprint-artifacts/1-1-a.md",
        "docs/sprint-artifacts/1-2-b.md",
    ] {
        filetime::set_file_mtime(r.path(f), long_ago()).unwrap();
    }
    // Old enough for the walk before the batch to keep their stat data (see `copied_checkout`).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // No agent starts before the walk before the batch is over (each slot waits for it).
    let notes = r.path("notes.md");
    Claude::new()
        .on(
            "1-2-b",
            &format!(
                "printf 'THE user.s notes\\n' > '{0}'; touch -d @1577836800 '{0}'",
                notes.display()
            ),
        )
        .tick()
        .write_out()
        .commit(r#"out "$file""#)
        .answer_counts()
        .install(&r);
    let out = r.close_all(&["--parallel", "2"]);
    out.ok();
    let notes = out.json()["notes"].to_string();
    assert!(
        notes.contains("your checkout changed") && notes.contains("notes.md"),
        "{notes}"
    );
}

#[test]
fn an_index_without_a_checksum_gets_no_proof() {
    let (_tmp, root) = copied_checkout();
    // With `index.skipHash` every version of the index ends in the same zeros: a proof could
    // not tell the one it came from from a later one.
    git(&root, &["config", "index.skipHash", "true"]);
    git(&root, &["read-tree", "HEAD"]);
    let (paths, proof) = walk(&root, None);
    assert_eq!(paths, git_status(&root));
    assert!(proof.is_none(), "a proof of an index without a checksum");
}
