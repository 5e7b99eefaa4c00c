//! `git::WorktreeWatch`: after a story, the check for leftovers judges only what the kernel saw
//! change (and what the commits changed). It must give the full walk's answer in every case the
//! full walk is tested on, and more that only a record of changes can get wrong: a folder made
//! after the watch began, a file untracked by a commit, ignore rules that change, a renamed
//! folder.

use std::path::{Path, PathBuf};

use crate::common;
use crate::git_ops::{commit_all, git, init_in, write, NEIGHBOURING_NAMES};
use git_teleos::git::{self, WorktreeWatch};
use tempfile::TempDir;

/// A repository whose names sort around each other's folders, with an ignored build folder.
fn repo() -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let root = init_in(&tmp);
    write(&root, ".gitignore", "*.log\n/node_modules/\n");
    for (path, text) in NEIGHBOURING_NAMES {
        write(&root, path, text);
    }
    commit_all(&root, "names");
    write(&root, "node_modules/pkg/index.js", "module.exports = 1;\n");
    (tmp, root)
}

fn open(dir: &Path) -> gix::Repository {
    common::open_isolated(dir)
}

/// The watch's answer, checked against the full walk's and git's own.
fn check(watch: &mut WorktreeWatch, root: &Path, what: &str) -> bool {
    // Sorted: the full walk runs on several threads, so its order varies.
    let mut by_watch = watch.dirty_paths(&open(root)).unwrap();
    let mut by_walk = git::dirty_paths(&open(root)).unwrap();
    by_watch.sort();
    by_walk.sort();
    assert_eq!(
        by_watch, by_walk,
        "{what}: the watch and the full walk disagree"
    );
    let clean = git(root, &["status", "--porcelain", "--untracked-files=all"]).is_empty();
    assert_eq!(by_watch.is_empty(), clean, "{what}: git status disagrees");
    clean
}

fn restore(root: &Path) {
    git(root, &["reset", "-q", "--hard"]);
    // Untracked files only: the ignored `node_modules` stays, as an install's would.
    git(root, &["clean", "-qffd"]);
}

#[test]
#[cfg(target_os = "linux")]
fn the_watch_agrees_with_the_full_walk_and_walks_only_when_it_must() {
    let (_tmp, root) = repo();
    let mut watch = WorktreeWatch::start(&open(&root), true);
    assert!(watch.is_active());
    assert!(check(&mut watch, &root, "untouched"));
    assert_eq!(
        watch.full_walks(),
        0,
        "a clean worktree is proven without a walk"
    );

    type Change = fn(&Path);
    // (what, the change, whether the record alone must decide it)
    let cases: [(&str, Change, bool); 17] = [
        ("untracked file", |r| write(r, "sub/a/new", "n\n"), false),
        ("ignored file", |r| write(r, "sub/a/y/new.log", "n\n"), true),
        (
            "write in an ignored folder",
            |r| write(r, "node_modules/pkg/index.js", "module.exports = 2;\n"),
            true,
        ),
        (
            "empty untracked folder",
            |r| std::fs::create_dir_all(r.join("sub/a/empty/deeper")).unwrap(),
            true,
        ),
        (
            "untracked folder of ignored files",
            |r| write(r, "sub/build/deep/x.log", "n\n"),
            true,
        ),
        (
            "untracked file deep in a new folder",
            |r| write(r, "sub/q/r/s/t/u.txt", "n\n"),
            false,
        ),
        (
            "tracked file replaced by a folder",
            |r| {
                std::fs::remove_file(r.join("sub/ab")).unwrap();
                write(r, "sub/ab/f.log", "n\n");
            },
            false,
        ),
        (
            "tracked folder replaced by a file",
            |r| {
                std::fs::remove_dir_all(r.join("sub/a0")).unwrap();
                write(r, "sub/a0", "w\n");
            },
            false,
        ),
        (
            "nested repository",
            |r| {
                git(&r.join("sub/a"), &["init", "-q", "inner"]);
            },
            false,
        ),
        (
            "edited in place, same size",
            |r| write(r, "sub/a/y/z", "Z\n"),
            false,
        ),
        (
            "deleted",
            |r| std::fs::remove_file(r.join("a-b/x")).unwrap(),
            false,
        ),
        (
            "made executable",
            |r| {
                use std::os::unix::fs::PermissionsExt;
                let file = r.join("sub/a/x");
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
            },
            false,
        ),
        (
            "a new folder committed, as an agent does",
            |r| {
                write(r, "src/feature/deep/mod.rs", "pub fn f() {}\n");
                write(r, "sub/a/y/z", "zed\n");
                commit_all(r, "feature");
            },
            true,
        ),
        (
            "untracked file in the folder the last commit made",
            |r| write(r, "src/feature/deep/notes.md", "left over\n"),
            false,
        ),
        (
            "a file untracked by a commit, untouched on disk",
            |r| {
                git(r, &["rm", "-q", "--cached", "sub/a-b"]);
                git(r, &["commit", "-q", "-m", "untrack"]);
            },
            false,
        ),
        (
            "an ignored file un-ignored by a committed .gitignore",
            |r| {
                write(r, ".gitignore", "/node_modules/\n");
                commit_all(r, "track logs");
            },
            false,
        ),
        (
            "a renamed folder, then a leftover in it",
            |r| {
                git(r, &["mv", "sub/a", "sub/renamed"]);
                git(r, &["commit", "-q", "-m", "rename"]);
            },
            false,
        ),
    ];
    for (what, change, by_record) in cases {
        let walks = watch.full_walks();
        change(&root);
        check(&mut watch, &root, what);
        if by_record {
            assert_eq!(watch.full_walks(), walks, "{what}: decided by the record");
        }
        restore(&root);
        assert!(check(&mut watch, &root, &format!("after {what}")));
    }
    // After a rename the record starts over: the renamed folder is watched again.
    write(&root, "sub/renamed/y/late.txt", "late\n");
    assert!(!check(&mut watch, &root, "leftover in the renamed folder"));
    restore(&root);
    // A worktree found dirty is not known clean until the full walk says so again.
    assert!(check(&mut watch, &root, "clean after the leftover went"));

    // Nothing changes: the record decides, again and again.
    let walks = watch.full_walks();
    for _ in 0..3 {
        assert!(check(&mut watch, &root, "still clean"));
    }
    assert_eq!(watch.full_walks(), walks);
}

#[test]
#[cfg(target_os = "linux")]
fn rules_outside_the_worktree_that_change_send_the_check_to_the_full_walk() {
    let (_tmp, root) = repo();
    write(&root, "local.tmp", "mine\n");
    write(&root, ".git/info/exclude", "*.tmp\n");
    let mut watch = WorktreeWatch::start(&open(&root), false);
    assert!(check(&mut watch, &root, "ignored by info/exclude"));
    assert_eq!(
        watch.full_walks(),
        1,
        "not known clean: the first check walks"
    );
    assert!(check(&mut watch, &root, "again"));
    assert_eq!(watch.full_walks(), 1);
    // The rule goes: the file, untouched, is untracked now.
    write(&root, ".git/info/exclude", "# nothing\n");
    assert!(!check(&mut watch, &root, "info/exclude emptied"));
}

#[test]
#[cfg(target_os = "linux")]
fn a_worktree_opened_through_its_main_repository_is_still_proven_by_the_record() {
    // The slot opens its worktree by path; its removal opens it through the main repository's
    // worktree list, which spells the common folder another way. The record must still hold.
    let (_tmp, root) = repo();
    let wt = root.parent().unwrap().join("wt");
    git(
        &root,
        &["worktree", "add", "-q", "-b", "slot", wt.to_str().unwrap()],
    );
    let mut watch = WorktreeWatch::start(&open(&wt), true);
    write(&wt, "src/new.rs", "fn f() {}\n");
    commit_all(&wt, "work");
    assert!(check(&mut watch, &wt, "by path"));
    let main = open(&root);
    let proxy = main
        .worktrees()
        .unwrap()
        .into_iter()
        .find(|p| p.base().unwrap().ends_with("wt"))
        .expect("the linked worktree is listed");
    let through_main = proxy.into_repo().unwrap();
    assert!(watch.dirty_paths(&through_main).unwrap().is_empty());
    assert_eq!(watch.full_walks(), 0, "proven by the record, not walked");
}

#[test]
#[cfg(target_os = "linux")]
fn the_index_a_check_read_is_reused_only_while_the_file_is_that_one() {
    use std::sync::atomic::AtomicBool;
    let (_tmp, root) = repo();
    write(&root, "bin/tool.sh", "echo hi\n");
    let start = commit_all(&root, "tool");
    let mut watch = WorktreeWatch::start(&open(&root), true);
    let index = root.join(".git/index");
    let no_cancel = AtomicBool::new(false);
    let mode = |path: &str| git(&root, &["ls-files", "-s", "--", path]);

    // The story's commit, proven clean by the record: its index comes back.
    write(&root, "story/out.txt", "1\n");
    commit_all(&root, "story");
    // Its cached trees made invalid (a mode set and unset), so that a later change of a
    // mode keeps the file's length.
    git(&root, &["update-index", "--chmod=+x", "bin/tool.sh"]);
    git(&root, &["update-index", "--chmod=-x", "bin/tool.sh"]);
    // Not `check`: `git status` there may write the index again.
    assert!(watch.dirty_paths(&open(&root)).unwrap().is_empty());
    assert_eq!(watch.full_walks(), 0);
    let known = watch
        .take_proven_index()
        .expect("the check's index is kept");
    assert!(watch.take_proven_index().is_none(), "given once");

    // The index changes after the check: the same length (a mode bit), and its modification
    // time put back, so that only the content, through its checksum, can tell.
    let mtime = std::fs::metadata(&index).unwrap().modified().unwrap();
    let len = std::fs::metadata(&index).unwrap().len();
    git(&root, &["update-index", "--chmod=+x", "bin/tool.sh"]);
    assert_eq!(std::fs::metadata(&index).unwrap().len(), len);
    std::fs::File::options()
        .write(true)
        .open(&index)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    git::reset_clean_worktree_with(&open(&root), start, Some(known), &no_cancel).unwrap();
    assert!(
        mode("bin/tool.sh").starts_with("100755"),
        "the index was read afresh, with the change made after the check: {}",
        mode("bin/tool.sh")
    );
    assert!(!root.join("story/out.txt").exists());

    // Unchanged since the check: the update uses it and leaves the worktree as git would.
    git(&root, &["update-index", "--chmod=-x", "bin/tool.sh"]);
    write(&root, "story/out.txt", "2\n");
    commit_all(&root, "story again");
    assert!(watch.dirty_paths(&open(&root)).unwrap().is_empty());
    let known = watch
        .take_proven_index()
        .expect("the check's index is kept");
    git::reset_clean_worktree_with(&open(&root), start, Some(known), &no_cancel).unwrap();
    assert!(git(&root, &["status", "--porcelain", "--untracked-files=all"]).is_empty());
    assert!(mode("bin/tool.sh").starts_with("100644"));
    assert!(!root.join("story/out.txt").exists());
}

#[test]
#[cfg(target_os = "linux")]
fn folders_the_record_did_not_watch_are_watched_once_they_can_hold_changes() {
    let (_tmp, root) = repo();
    // An ignored, empty folder: nothing in it is reported, so nothing watches it.
    std::fs::create_dir_all(root.join("scratch")).unwrap();
    write(&root, ".git/info/exclude", "scratch/\n");
    let mut watch = WorktreeWatch::start(&open(&root), true);
    assert!(check(&mut watch, &root, "untouched"));
    // The rule goes: the full walk proves the (empty) folder clean, and from then on a file
    // made in it must be seen.
    write(&root, ".git/info/exclude", "# nothing\n");
    assert!(check(&mut watch, &root, "scratch/ no longer ignored"));
    write(&root, "scratch/new.txt", "n\n");
    assert!(!check(
        &mut watch,
        &root,
        "a file in the folder no longer ignored"
    ));
    std::fs::remove_file(root.join("scratch/new.txt")).unwrap();
    assert!(check(&mut watch, &root, "gone again"));

    // A commit forces in a file under the ignored `node_modules`: later edits to it count.
    git(&root, &["add", "-f", "node_modules/pkg/index.js"]);
    git(&root, &["commit", "-qm", "vendor one file"]);
    assert!(check(
        &mut watch,
        &root,
        "a file forced in under an ignored folder"
    ));
    // Unseen, the record would call this clean and `check` would find it disagreeing.
    write(&root, "node_modules/pkg/index.js", "module.exports = 3;\n");
    assert!(!check(&mut watch, &root, "the forced-in file edited"));
}
