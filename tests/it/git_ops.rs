//! The `git` module against real repositories made and checked with the real git CLI.
//!
//! The `git` module runs in this process, which has the developer's environment: repositories
//! are opened with [`common::open_isolated`], so the user's git config cannot change results.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use crate::common::{self, in_child_process, test_path};
use git_teleos::git::{self, CasOutcome, LandOutcome, MergeOutcome, ObjectId};
use tempfile::TempDir;

/// These tests work in bare temp folders, not a `TestRepo`: git gets a HOME that does not
/// exist, so it finds no user config or ignore file there (its config is also `/dev/null`).
pub(crate) const NO_HOME: &str = "/nonexistent/git-teleos-tests/home";

/// For the checkouts: never set.
static NO_CANCEL: AtomicBool = AtomicBool::new(false);

/// Run git hermetically in `dir`; panics with its output on failure.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_raw(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git_raw(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("git");
    cmd.args(args).current_dir(dir);
    common::hermetic(&mut cmd, Path::new(NO_HOME), Path::new(NO_HOME));
    cmd.output().expect("git runs")
}

pub(crate) fn write(dir: &Path, rela: &str, content: &str) {
    let path = dir.join(rela);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn read(dir: &Path, rela: &str) -> String {
    std::fs::read_to_string(dir.join(rela)).unwrap()
}

pub(crate) fn commit_all(dir: &Path, message: &str) -> ObjectId {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    rev(dir, "HEAD")
}

fn rev(dir: &Path, spec: &str) -> ObjectId {
    ObjectId::from_hex(git(dir, &["rev-parse", spec]).trim().as_bytes()).unwrap()
}

/// A repository on `main` with one commit (a.txt, dir/b.txt) and `.gitignore` ignoring `*.log`.
fn repo() -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let root = init_in(&tmp);
    write(&root, "a.txt", "one\ntwo\nthree\n");
    write(&root, "dir/b.txt", "bee\n");
    write(&root, ".gitignore", "*.log\n");
    commit_all(&root, "initial");
    (tmp, root)
}

/// An empty repository on `main` in `tmp/repo`, with a committer.
pub(crate) fn init_in(tmp: &TempDir) -> PathBuf {
    let root = tmp.path().canonicalize().unwrap().join("repo");
    std::fs::create_dir(&root).unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["config", "user.name", "Repo User"]);
    git(&root, &["config", "user.email", "repo@example.com"]);
    root
}

fn open(dir: &Path) -> gix::Repository {
    common::open_isolated(dir)
}

fn status(dir: &Path) -> String {
    git(dir, &["status", "--porcelain", "--untracked-files=all"])
}

/// What a developer's config could do to the in-process tests: ignore every untracked file
/// (`core.excludesFile`, `$XDG_CONFIG_HOME/git/ignore`) and sign commits with another name.
fn write_hostile_config(home: &Path) {
    let user = "[user]\n\tname = Hostile User\n\temail = hostile@example.com\n";
    write(
        home,
        ".gitconfig",
        &format!(
            "{user}[core]\n\texcludesFile = {}\n",
            home.join("ignore-all").display()
        ),
    );
    write(home, "ignore-all", "*\n");
    write(home, "xdg/git/config", user);
    write(home, "xdg/git/ignore", "*\n");
}

#[test]
fn in_process_gix_reads_no_user_config_and_no_git_variables() {
    let test = test_path!(in_process_gix_reads_no_user_config_and_no_git_variables);
    if !common::is_child_process(test) {
        // HOME, XDG_CONFIG_HOME and GIT_* variables belong to the whole process: set them only
        // in a child process of the test binary.
        let hostile = TempDir::new().unwrap();
        let home = hostile.path().canonicalize().unwrap();
        write_hostile_config(&home);
        let xdg = home.join("xdg");
        in_child_process(
            test,
            &[
                ("HOME", home.as_os_str()),
                ("XDG_CONFIG_HOME", xdg.as_os_str()),
                ("GIT_AUTHOR_NAME", OsStr::new("Hostile Variable")),
                ("GIT_COMMITTER_NAME", OsStr::new("Hostile Variable")),
            ],
        );
        return;
    }
    let (_tmp, root) = repo();
    write(&root, "new.txt", "untracked\n");

    // The hostile config is in force for a repository opened the ordinary way (so this test
    // can fail): the untracked file is hidden and commits would carry the hostile names.
    let exposed = gix::discover(&root).unwrap();
    assert!(
        git::is_clean(&exposed).unwrap(),
        "the user's ignore file is read"
    );
    assert_eq!(
        exposed.committer().unwrap().unwrap().name,
        "Hostile Variable"
    );

    // Opened as the tests open repositories, only the repository's own config counts.
    let repo = open(&root);
    assert!(!git::is_clean(&repo).unwrap());
    assert_eq!(
        git::dirty_paths(&repo).unwrap(),
        vec!["new.txt".to_string()]
    );
    let id = git::snapshot_uncommitted(&repo, "snapshot")
        .unwrap()
        .unwrap();
    let id = id.to_string();
    assert_eq!(
        git(&root, &["log", "-1", "--format=%an <%ae> / %cn <%ce>", &id]),
        "Repo User <repo@example.com> / Repo User <repo@example.com>\n"
    );
    assert!(git(&root, &["ls-tree", "--name-only", &id]).contains("new.txt\n"));
}

#[test]
fn discover_from_subfolder_and_not_a_repo() {
    let (tmp, root) = repo();
    // The library's own discovery (it reads the user's config, as git does: nothing here
    // depends on it); every other test opens isolated.
    let repo = git::discover(&root.join("dir")).unwrap();
    assert_eq!(git::work_tree_root(&repo).unwrap(), root);
    assert_eq!(git::common_dir(&repo), root.join(".git"));
    assert_eq!(
        git::current_branch(&repo).unwrap().as_deref(),
        Some("refs/heads/main")
    );
    assert_eq!(
        git::head_commit_id(&repo).unwrap(),
        Some(rev(&root, "HEAD"))
    );

    let outside = tmp.path().join("plain");
    std::fs::create_dir(&outside).unwrap();
    match git::discover(&outside) {
        Err(git_teleos::Error::NotARepository { .. }) => {}
        other => panic!("expected NotARepository, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn clean_means_no_staged_unstaged_or_untracked_change() {
    let (_tmp, root) = repo();
    let repo = open(&root);
    assert!(git::is_clean(&repo).unwrap());

    write(&root, "debug.log", "ignored\n");
    assert!(git::is_clean(&repo).unwrap(), "ignored files do not count");

    write(&root, "new/untracked.txt", "x\n");
    assert!(!git::is_clean(&repo).unwrap(), "untracked files count");
    assert_eq!(
        git::dirty_paths(&repo).unwrap(),
        vec!["new/untracked.txt".to_string()]
    );
    std::fs::remove_dir_all(root.join("new")).unwrap();

    write(&root, "a.txt", "changed\n");
    assert!(!git::is_clean(&repo).unwrap());
    git(&root, &["add", "a.txt"]);
    assert!(!git::is_clean(&repo).unwrap(), "staged changes count");
    assert_eq!(git::dirty_paths(&repo).unwrap(), vec!["a.txt".to_string()]);
}

/// The root of the index's cache-tree (`TREE` extension): its tree id and entry count, `None`
/// for the count when git marked it invalid; `None` without the extension.
fn cached_root(dir: &Path) -> Option<(ObjectId, Option<u32>)> {
    let index = open(dir).open_index().unwrap();
    index.tree().map(|t| (t.id, t.num_entries))
}

#[test]
fn an_index_whose_cached_tree_is_not_heads_is_never_proven_clean() {
    let (_tmp, root) = repo();
    let head_tree = rev(&root, "HEAD^{tree}");
    // `git commit` leaves a valid cache-tree naming HEAD's tree: clean.
    write(&root, "dir/sub/c.txt", "sea\n");
    commit_all(&root, "c");
    let head_tree_c = rev(&root, "HEAD^{tree}");
    assert_eq!(cached_root(&root), Some((head_tree_c, Some(4))));
    assert!(git::is_clean(&open(&root)).unwrap());

    // HEAD one back, the index still holding the commit (its cache-tree still valid, naming
    // the other tree), the files as in the index: a staged change the lstat pass cannot see.
    git(&root, &["reset", "-q", "--soft", "HEAD~1"]);
    assert_eq!(cached_root(&root), Some((head_tree_c, Some(4))));
    assert_ne!(head_tree_c, head_tree);
    assert!(!git::is_clean(&open(&root)).unwrap(), "staged addition");
    assert_eq!(
        git::dirty_paths(&open(&root)).unwrap(),
        vec!["dir/sub/c.txt".to_string()]
    );
    git(&root, &["commit", "-q", "-m", "c again"]);
    assert!(git::is_clean(&open(&root)).unwrap());

    // `git add` of an edit: the file matches the index, the index not HEAD (git invalidated
    // the cached trees on the way to the path).
    write(&root, "dir/sub/c.txt", "SEA\n");
    git(&root, &["add", "dir/sub/c.txt"]);
    assert_eq!(cached_root(&root).and_then(|(_, n)| n), None);
    assert!(!git::is_clean(&open(&root)).unwrap(), "staged edit");
    git(&root, &["commit", "-q", "-m", "edit"]);
    assert!(git::is_clean(&open(&root)).unwrap());

    // `git add -N`: an intent-to-add entry, which a commit leaves out of the cached tree.
    write(&root, "new.txt", "new\n");
    git(&root, &["add", "-N", "new.txt"]);
    git(&root, &["commit", "-q", "--allow-empty", "-m", "empty"]);
    assert!(!git::is_clean(&open(&root)).unwrap(), "intent to add");
}

/// Names that sort around a folder's own (`a-b` < `a/…` < `a0` < `ab` byte-wise).
pub(crate) const NEIGHBOURING_NAMES: [(&str, &str); 7] = [
    ("a", "file a\n"),
    ("a-b/x", "x\n"),
    ("sub/a/x", "x\n"),
    ("sub/a/y/z", "z\n"),
    ("sub/a-b", "ab\n"),
    ("sub/a0/w", "w\n"),
    ("sub/ab", "ab\n"),
];

#[test]
#[cfg(unix)]
fn clean_agrees_with_git_status_on_neighbouring_names_and_odd_leftovers() {
    let (_tmp, root) = repo();
    for (path, text) in NEIGHBOURING_NAMES {
        write(&root, path, text);
    }
    commit_all(&root, "names");
    let agree = |what: &str| {
        let clean = status(&root).is_empty();
        assert_eq!(git::is_clean(&open(&root)).unwrap(), clean, "{what}");
        clean
    };
    assert!(agree("clean"));
    type Change = fn(&Path);
    let cases: [(&str, Change); 12] = [
        ("untracked file", |r| write(r, "sub/a/new", "n\n")),
        ("ignored file", |r| write(r, "sub/a/y/new.log", "n\n")),
        ("empty untracked folder", |r| {
            std::fs::create_dir_all(r.join("sub/a/empty/deeper")).unwrap()
        }),
        ("untracked folder of ignored files", |r| {
            write(r, "sub/build/deep/x.log", "n\n")
        }),
        ("untracked file deep in a new folder", |r| {
            write(r, "sub/q/r/s.txt", "n\n")
        }),
        ("tracked file replaced by a folder", |r| {
            std::fs::remove_file(r.join("sub/ab")).unwrap();
            write(r, "sub/ab/f.log", "n\n");
        }),
        ("tracked folder replaced by a file", |r| {
            std::fs::remove_dir_all(r.join("sub/a0")).unwrap();
            write(r, "sub/a0", "w\n");
        }),
        ("nested repository", |r| {
            git(&r.join("sub/a"), &["init", "-q", "inner"]);
        }),
        ("edited in place, same size", |r| {
            write(r, "sub/a/y/z", "Z\n")
        }),
        ("deleted", |r| {
            std::fs::remove_file(r.join("a-b/x")).unwrap()
        }),
        ("deleted next to a folder of the same stem", |r| {
            std::fs::remove_file(r.join("sub/a-b")).unwrap()
        }),
        ("made executable", |r| {
            use std::os::unix::fs::PermissionsExt;
            let file = r.join("sub/a/x");
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }),
    ];
    for (what, change) in cases {
        change(&root);
        agree(what);
        git(&root, &["reset", "-q", "--hard"]);
        git(&root, &["clean", "-qfdx"]);
        git(&root, &["clean", "-qffdx"]);
        assert!(agree("clean again"), "after {what}");
    }
}

#[test]
fn commit_questions() {
    let (_tmp, root) = repo();
    let base = rev(&root, "HEAD");
    write(&root, "a.txt", "one\n");
    let c1 = commit_all(&root, "c1");
    write(&root, "dir/c.txt", "sea\n");
    std::fs::remove_file(root.join("dir/b.txt")).unwrap();
    let c2 = commit_all(&root, "c2");
    let repo = open(&root);

    assert_eq!(git::commits_between(&repo, base, c2).unwrap(), vec![c2, c1]);
    assert!(git::commits_between(&repo, c2, base).unwrap().is_empty());
    assert!(git::is_ancestor(&repo, base, c2).unwrap());
    assert!(!git::is_ancestor(&repo, c2, base).unwrap());
    assert_eq!(
        git::files_changed(&repo, base, c2).unwrap(),
        vec!["a.txt", "dir/b.txt", "dir/c.txt"]
    );
    let short = c1.to_hex_with_len(7).to_string();
    assert_eq!(git::commit_exists(&repo, &short).unwrap(), Some(c1));
    assert_eq!(
        git::commit_exists(&repo, &c2.to_string()).unwrap(),
        Some(c2)
    );
    assert_eq!(git::commit_exists(&repo, "deadbeefdead").unwrap(), None);
    assert_eq!(
        git::commit_exists(&repo, "main").unwrap(),
        None,
        "only hashes"
    );
    let tree = git(&root, &["rev-parse", "HEAD^{tree}"]);
    assert_eq!(
        git::commit_exists(&repo, tree.trim()).unwrap(),
        None,
        "a tree is no commit"
    );
}

#[test]
fn a_cancelled_worktree_checkout_stops_and_leaves_nothing() {
    let (_tmp, root) = repo();
    let repo = open(&root);
    let head = rev(&root, "HEAD");
    let wt = root.join(".claude/worktrees/teleos-abc123-1");
    let cancelled = AtomicBool::new(true);
    let err = git::add_worktree(&repo, &wt, "worktree/teleos-abc123-1", head, &cancelled)
        .expect_err("cancelled");
    assert!(err.to_string().contains("could not add worktree"), "{err}");
    assert!(!wt.join("dir/b.txt").exists());
    assert_eq!(git(&root, &["branch", "--list", "worktree/*"]), "");
    let listed = git(&root, &["worktree", "list", "--porcelain"]);
    assert_eq!(listed.matches("worktree ").count(), 1, "{listed}");
}

#[test]
fn worktrees_made_by_gix_are_accepted_by_git() {
    let (tmp, root) = repo();
    let repo = open(&root);
    let head = rev(&root, "HEAD");
    let wt1 = root.join(".claude/worktrees/teleos-abc123-1");
    let wt2 = tmp.path().canonicalize().unwrap().join("wt2");
    git::add_worktree(&repo, &wt1, "worktree/teleos-abc123-1", head, &NO_CANCEL).unwrap();
    git::add_worktree(&repo, &wt2, "worktree/teleos-abc123-2", head, &NO_CANCEL).unwrap();

    let listed = git(&root, &["worktree", "list", "--porcelain"]);
    assert!(
        listed.contains(&format!("worktree {}\n", wt1.display())),
        "{listed}"
    );
    assert!(
        listed.contains("branch refs/heads/worktree/teleos-abc123-1\n"),
        "{listed}"
    );
    assert_eq!(status(&wt1), "");
    assert_eq!(read(&wt1, "dir/b.txt"), "bee\n");

    // The same branch cannot be added twice, and a failed add leaves no branch behind.
    let wt3 = tmp.path().join("wt3");
    assert!(git::add_worktree(&repo, &wt3, "worktree/teleos-abc123-1", head, &NO_CANCEL).is_err());

    assert_eq!(
        rev(&root, "worktree/teleos-abc123-1"),
        head,
        "the existing branch survives"
    );
    git::lock_worktree(&repo, &wt1, "git-teleos session abc123").unwrap();
    let listed = git(&root, &["worktree", "list", "--porcelain"]);
    assert!(
        listed.contains("locked git-teleos session abc123\n"),
        "{listed}"
    );
    let infos = git::list_worktrees(&repo).unwrap();
    let info = infos.iter().find(|i| i.path == wt1).unwrap();
    assert_eq!(info.locked.as_deref(), Some("git-teleos session abc123"));
    assert_eq!(
        info.branch.as_deref(),
        Some("refs/heads/worktree/teleos-abc123-1")
    );
    assert_eq!(info.head, Some(head));
    assert!(!info.prunable);

    // git respects our lock; we respect git's.
    assert!(
        !git_raw(&root, &["worktree", "remove", wt1.to_str().unwrap()])
            .status
            .success()
    );
    assert!(git::remove_worktree(&repo, &wt1, false).is_err());
    git::unlock_worktree(&repo, &wt1).unwrap();
    git(
        &root,
        &[
            "worktree",
            "lock",
            "--reason",
            "by git",
            wt1.to_str().unwrap(),
        ],
    );
    let infos = git::list_worktrees(&repo).unwrap();
    assert_eq!(
        infos
            .iter()
            .find(|i| i.path == wt1)
            .unwrap()
            .locked
            .as_deref(),
        Some("by git")
    );
    git::unlock_worktree(&repo, &wt1).unwrap();
    assert!(!git(&root, &["worktree", "list", "--porcelain"]).contains("locked"));

    // Dirty worktrees are never removed, even with force_lock.
    write(&wt1, "agent-notes.md", "uncommitted\n");
    assert!(git::remove_worktree(&repo, &wt1, true).is_err());
    assert!(wt1.join("agent-notes.md").exists());
    std::fs::remove_file(wt1.join("agent-notes.md")).unwrap();

    git::remove_worktree(&repo, &wt1, false).unwrap();
    assert!(!wt1.exists());
    assert!(!git(&root, &["worktree", "list"]).contains("teleos-abc123-1"));
    git(
        &root,
        &[
            "rev-parse",
            "--verify",
            "refs/heads/worktree/teleos-abc123-1",
        ],
    );

    // git removes a worktree gix made.
    git(&root, &["worktree", "remove", wt2.to_str().unwrap()]);
    git(&root, &["fsck", "--no-progress"]);
}

#[test]
fn prune_drops_admin_folders_of_vanished_worktrees_but_not_locked_ones() {
    let (tmp, root) = repo();
    let repo = open(&root);
    let head = rev(&root, "HEAD");
    let base = tmp.path().canonicalize().unwrap();
    for n in 1..=3 {
        git::add_worktree(
            &repo,
            &base.join(format!("w{n}")),
            &format!("wt-{n}"),
            head,
            &NO_CANCEL,
        )
        .unwrap();
    }
    git::lock_worktree(&repo, &base.join("w2"), "keep").unwrap();
    for n in 1..=3 {
        std::fs::remove_dir_all(base.join(format!("w{n}"))).unwrap();
    }
    let infos = git::list_worktrees(&repo).unwrap();
    assert_eq!(infos.iter().filter(|i| i.prunable).count(), 2);

    let pruned = git::prune_worktrees(&repo).unwrap();
    assert_eq!(pruned, vec!["w1".to_string(), "w3".to_string()]);
    let listed = git(&root, &["worktree", "list", "--porcelain"]);
    assert!(
        listed.contains("w2") && !listed.contains("w1") && !listed.contains("w3"),
        "{listed}"
    );

    // git prune agrees after the lock is gone.
    git::unlock_worktree(&repo, &base.join("w2")).unwrap();
    git(&root, &["worktree", "prune"]);
    assert!(git::list_worktrees(&repo).unwrap().is_empty());
}

/// `main` plus branches `left` and `right` from the initial commit.
fn forked(left: &[(&str, &str)], right: &[(&str, &str)]) -> (TempDir, PathBuf, ObjectId, ObjectId) {
    let (tmp, root) = repo();
    let mut tips = Vec::new();
    for (branch, files) in [("left", left), ("right", right)] {
        git(&root, &["checkout", "-q", "-b", branch, "main"]);
        for (path, content) in files {
            write(&root, path, content);
        }
        tips.push(commit_all(&root, branch));
    }
    git(&root, &["checkout", "-q", "main"]);
    (tmp, root, tips[0], tips[1])
}

#[test]
fn merge_in_memory_makes_a_two_parent_commit() {
    let (_tmp, root, left, right) = forked(
        &[("a.txt", "ONE\ntwo\nthree\n")],
        &[("a.txt", "one\ntwo\nTHREE\n"), ("r.txt", "r\n")],
    );
    let repo = open(&root);
    git::create_branch(&repo, "integration-abc123", left).unwrap();
    let before = status(&root);
    let out = git::merge_into_branch(&repo, "refs/heads/integration-abc123", right, "Merge right")
        .unwrap();
    let MergeOutcome::Merged(id) = out else {
        panic!("expected a merge, got {out:?}")
    };
    assert_eq!(rev(&root, "integration-abc123"), id);
    let parents = git(
        &root,
        &["rev-list", "--parents", "-n1", "integration-abc123"],
    );
    assert_eq!(parents.trim(), format!("{id} {left} {right}"));
    assert_eq!(
        git(&root, &["show", "integration-abc123:a.txt"]),
        "ONE\ntwo\nTHREE\n"
    );
    assert_eq!(git(&root, &["show", "integration-abc123:r.txt"]), "r\n");
    assert_eq!(
        git(&root, &["log", "-1", "--format=%s", "integration-abc123"]),
        "Merge right\n"
    );
    git(&root, &["fsck", "--no-progress", "--strict"]);
    assert_eq!(status(&root), before, "the user's checkout is untouched");
    assert_eq!(
        git::current_branch(&repo).unwrap().as_deref(),
        Some("refs/heads/main")
    );

    // Merging again is a no-op.
    let again = git::merge_into_branch(&repo, "refs/heads/integration-abc123", right, "x").unwrap();
    assert_eq!(again, MergeOutcome::UpToDate);
}

#[test]
fn conflicting_merge_leaves_the_branch_and_object_store_alone() {
    let (_tmp, root, left, right) = forked(
        &[("a.txt", "one\nLEFT\nthree\n")],
        &[("a.txt", "one\nRIGHT\nthree\n"), ("z.txt", "z\n")],
    );
    let repo = open(&root);
    git::create_branch(&repo, "integration-abc123", left).unwrap();
    let objects_before = git(&root, &["count-objects", "-v"]);
    let out = git::merge_into_branch(&repo, "refs/heads/integration-abc123", right, "m").unwrap();
    assert_eq!(
        out,
        MergeOutcome::Conflict {
            paths: vec!["a.txt".into()]
        }
    );
    assert_eq!(rev(&root, "integration-abc123"), left);
    assert_eq!(
        git(&root, &["count-objects", "-v"]),
        objects_before,
        "nothing written"
    );
    git(&root, &["fsck", "--no-progress"]);
}

#[test]
fn merge_fast_forwards_when_possible() {
    let (_tmp, root) = repo();
    let base = rev(&root, "HEAD");
    git(&root, &["checkout", "-q", "-b", "story"]);
    write(&root, "s.txt", "story\n");
    let story = commit_all(&root, "story");
    git(&root, &["checkout", "-q", "main"]);
    let repo = open(&root);
    git::create_branch(&repo, "integration-abc123", base).unwrap();
    assert!(
        git::create_branch(&repo, "integration-abc123", base).is_err(),
        "exists"
    );
    let out = git::merge_into_branch(&repo, "refs/heads/integration-abc123", story, "m").unwrap();
    assert_eq!(out, MergeOutcome::FastForward(story));
    assert_eq!(rev(&root, "integration-abc123"), story);
}

#[test]
fn compare_and_swap_detects_a_moved_ref() {
    let (_tmp, root) = repo();
    let base = rev(&root, "HEAD");
    write(&root, "n.txt", "n\n");
    let next = commit_all(&root, "next");
    let repo = open(&root);
    let name = "refs/heads/cas";
    assert_eq!(
        git::update_ref_cas(&repo, name, base, None, "create").unwrap(),
        CasOutcome::Updated
    );
    assert_eq!(
        git::update_ref_cas(&repo, name, next, None, "again").unwrap(),
        CasOutcome::Conflict
    );
    // gix alone would accept "must not exist" when the value is the same; we do not.
    assert_eq!(
        git::update_ref_cas(&repo, name, base, None, "same").unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(
        git::update_ref_cas(&repo, name, next, Some(next), "wrong old").unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(rev(&root, "cas"), base);
    assert_eq!(
        git::update_ref_cas(&repo, name, next, Some(base), "ok").unwrap(),
        CasOutcome::Updated
    );
    assert_eq!(rev(&root, "cas"), next);

    // A lock held by someone else is waited on briefly, then reported (not taken as a conflict).
    std::fs::write(root.join(".git/refs/heads/cas.lock"), "").unwrap();
    assert!(git::update_ref_cas(&repo, name, base, Some(next), "locked").is_err());
    std::fs::remove_file(root.join(".git/refs/heads/cas.lock")).unwrap();

    git::set_ref(&repo, "refs/teleos/rescue/abc123/x", base).unwrap();
    git::set_ref(&repo, "refs/teleos/rescue/abc123/x", next).unwrap();
    assert_eq!(rev(&root, "refs/teleos/rescue/abc123/x"), next);
    assert!(git::set_ref(&repo, "HEAD", next).is_err());
}

#[test]
fn snapshot_keeps_modified_deleted_and_untracked_files_without_touching_anything() {
    let (_tmp, root) = repo();
    let repo = open(&root);
    assert_eq!(git::snapshot_uncommitted(&repo, "nothing").unwrap(), None);

    write(&root, "a.txt", "modified\n");
    std::fs::remove_file(root.join("dir/b.txt")).unwrap();
    write(&root, "new/untracked.txt", "untracked\n");
    write(&root, "staged.txt", "staged\n");
    git(&root, &["add", "staged.txt"]);
    write(&root, "build.log", "ignored\n");
    let status_before = status(&root);
    let index_before = std::fs::read(root.join(".git/index")).unwrap();

    let id = git::snapshot_uncommitted(&repo, "teleos: uncommitted work")
        .unwrap()
        .unwrap();
    let id = id.to_string();
    assert_eq!(status(&root), status_before);
    assert_eq!(
        std::fs::read(root.join(".git/index")).unwrap(),
        index_before
    );
    assert_eq!(
        git(&root, &["rev-parse", &format!("{id}^")]).trim(),
        rev(&root, "HEAD").to_string()
    );
    let files = git(&root, &["ls-tree", "-r", "--name-only", &id]);
    assert_eq!(files, ".gitignore\na.txt\nnew/untracked.txt\nstaged.txt\n");
    assert_eq!(git(&root, &["show", &format!("{id}:a.txt")]), "modified\n");
    assert_eq!(
        git(&root, &["log", "-1", "--format=%s", &id]),
        "teleos: uncommitted work\n"
    );
    git(&root, &["fsck", "--no-progress"]);
}

#[test]
fn delete_branch_is_guarded() {
    let (tmp, root) = repo();
    let repo = open(&root);
    let head = rev(&root, "HEAD");
    let ours = |name: &str| name.starts_with("worktree/teleos-abc123-") || name == "main";
    let wt = tmp.path().canonicalize().unwrap().join("wt");
    git::add_worktree(&repo, &wt, "worktree/teleos-abc123-1", head, &NO_CANCEL).unwrap();

    // Checked out here or in a linked worktree: refused even when the predicate allows it.
    assert!(git::delete_branch_guarded(&repo, "main", ours).is_err());
    assert!(git::delete_branch_guarded(&repo, "worktree/teleos-abc123-1", ours).is_err());
    git(&root, &["branch", "other"]);
    assert!(
        git::delete_branch_guarded(&repo, "other", ours).is_err(),
        "not ours"
    );
    git(&root, &["rev-parse", "--verify", "refs/heads/other"]);

    // Unsaved commits block deletion until they are kept on another ref.
    write(&wt, "work.txt", "work\n");
    let work = commit_all(&wt, "agent work");
    git(&wt, &["checkout", "-q", "--detach"]);
    assert!(git::delete_branch_guarded(&repo, "worktree/teleos-abc123-1", ours).is_err());
    git::set_ref(&repo, "refs/teleos/rescue/abc123/1", work).unwrap();
    git::delete_branch_guarded(&repo, "worktree/teleos-abc123-1", ours).unwrap();
    assert!(!git_raw(
        &root,
        &[
            "rev-parse",
            "--verify",
            "refs/heads/worktree/teleos-abc123-1"
        ]
    )
    .status
    .success());
}

#[test]
fn reset_worktree_rewrites_changed_files_and_leaves_status_clean() {
    let (tmp, root) = repo();
    let repo = open(&root);
    let start = rev(&root, "HEAD");
    // The target: one file modified, one deleted (its folder vanishes), new nested files, exec bit.
    git(&root, &["checkout", "-q", "-b", "target"]);
    write(&root, "a.txt", "one\nTWO\nthree\n");
    std::fs::remove_file(root.join("dir/b.txt")).unwrap();
    write(&root, "deep/er/c.txt", "sea\n");
    write(&root, "run.sh", "#!/bin/sh\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let target = commit_all(&root, "target");
    git(&root, &["checkout", "-q", "main"]);

    let wt = tmp.path().canonicalize().unwrap().join("wt");
    git::add_worktree(&repo, &wt, "worktree/teleos-abc123-1", start, &NO_CANCEL).unwrap();
    let wt_repo = open(&wt);
    let untouched_before = std::fs::metadata(wt.join(".gitignore"))
        .unwrap()
        .modified()
        .unwrap();

    write(&wt, "stray.txt", "dirty\n");
    assert!(
        git::reset_worktree_to(&wt_repo, target, &NO_CANCEL).is_err(),
        "dirty worktree refused"
    );
    std::fs::remove_file(wt.join("stray.txt")).unwrap();

    git::reset_worktree_to(&wt_repo, target, &NO_CANCEL).unwrap();
    assert_eq!(rev(&wt, "HEAD"), target);
    assert_eq!(status(&wt), "");
    assert_eq!(git(&wt, &["diff", "--stat", "HEAD"]), "");
    assert_eq!(read(&wt, "a.txt"), "one\nTWO\nthree\n");
    assert_eq!(read(&wt, "deep/er/c.txt"), "sea\n");
    assert!(!wt.join("dir").exists(), "emptied folder removed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(wt.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o111, 0);
    }
    let untouched_after = std::fs::metadata(wt.join(".gitignore"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        untouched_before, untouched_after,
        "unchanged files are not rewritten"
    );

    // And back again.
    git::reset_worktree_to(&wt_repo, start, &NO_CANCEL).unwrap();
    assert_eq!(status(&wt), "");
    assert_eq!(read(&wt, "dir/b.txt"), "bee\n");
    assert!(!wt.join("deep").exists());
    git(&root, &["fsck", "--no-progress"]);
}

/// The index's trailing checksum: all zeroes when written without one.
fn index_trailer_is_null(dir: &Path) -> bool {
    let data = std::fs::read(dir.join(".git/index")).unwrap();
    data[data.len() - 20..].iter().all(|b| *b == 0)
}

#[test]
fn an_index_is_written_without_its_checksum_when_git_would_write_it_so() {
    let (_tmp, root) = repo();
    let start = rev(&root, "HEAD");
    write(&root, ".gitattributes", "*.txt text\n");
    write(&root, "a.txt", "attributes\n");
    let with_attributes = commit_all(&root, "attributes");
    write(&root, "a.txt", "plain\n");
    let plain = commit_all(&root, "plain");
    assert!(!index_trailer_is_null(&root), "git hashes it by default");

    // `feature.manyFiles` turns `index.skipHash` on, as in git.
    git(&root, &["config", "feature.manyFiles", "true"]);
    // A changed `.gitattributes`: the full update, written by gix.
    git::reset_worktree_to(&open(&root), start, &NO_CANCEL).unwrap();
    assert!(index_trailer_is_null(&root));
    assert_eq!(status(&root), "");
    git::reset_worktree_to(&open(&root), with_attributes, &NO_CANCEL).unwrap();
    // Only `a.txt`: the update of the changed paths, written here.
    git::reset_clean_worktree_to(&open(&root), plain, &NO_CANCEL).unwrap();
    assert!(index_trailer_is_null(&root));
    assert_eq!(status(&root), "");
    assert_eq!(read(&root, "a.txt"), "plain\n");

    // Set explicitly, `index.skipHash` wins.
    git(&root, &["config", "index.skipHash", "false"]);
    git::reset_clean_worktree_to(&open(&root), with_attributes, &NO_CANCEL).unwrap();
    assert!(!index_trailer_is_null(&root));
    assert_eq!(status(&root), "");
    git(&root, &["fsck", "--no-progress"]);
}

#[test]
fn reset_of_a_worktree_seen_clean_checks_what_it_touches_and_loses_nothing() {
    let (tmp, root) = repo();
    let repo = open(&root);
    let start = rev(&root, "HEAD");
    git(&root, &["checkout", "-q", "-b", "target"]);
    write(&root, "a.txt", "one\nTWO\nthree\n");
    write(&root, "deep/er/c.txt", "sea\n");
    let target = commit_all(&root, "target");
    git(&root, &["checkout", "-q", "main"]);
    let wt = tmp.path().canonicalize().unwrap().join("wt");
    git::add_worktree(&repo, &wt, "worktree/teleos-abc123-1", start, &NO_CANCEL).unwrap();
    let wt_repo = open(&wt);

    // An untracked file where the update writes: kept, and the reset refused.
    write(&wt, "deep/er/c.txt", "mine\n");
    assert!(git::reset_clean_worktree_to(&wt_repo, target, &NO_CANCEL).is_err());
    assert_eq!(read(&wt, "deep/er/c.txt"), "mine\n");
    assert_eq!(rev(&wt, "HEAD"), start);
    std::fs::remove_dir_all(wt.join("deep")).unwrap();

    // A tracked file the update rewrites, edited: kept, and the reset refused.
    write(&wt, "a.txt", "edited\n");
    assert!(git::reset_clean_worktree_to(&wt_repo, target, &NO_CANCEL).is_err());
    assert_eq!(read(&wt, "a.txt"), "edited\n");
    assert_eq!(rev(&wt, "HEAD"), start);
    git(&wt, &["checkout", "--", "a.txt"]);

    // Clean: the update happens, only the changed files are written.
    git::reset_clean_worktree_to(&wt_repo, target, &NO_CANCEL).unwrap();
    assert_eq!(rev(&wt, "HEAD"), target);
    assert_eq!(status(&wt), "");
    assert_eq!(read(&wt, "a.txt"), "one\nTWO\nthree\n");
    assert_eq!(read(&wt, "deep/er/c.txt"), "sea\n");
    git::reset_clean_worktree_to(&wt_repo, start, &NO_CANCEL).unwrap();
    assert_eq!(status(&wt), "");
    assert!(!wt.join("deep").exists());
}

#[test]
fn reset_of_a_clean_worktree_writes_only_the_diff_and_keeps_the_index_true() {
    let (tmp, root) = repo();
    let repo = open(&root);
    let start = rev(&root, "HEAD");
    // The target: a file turned into a folder, a file gone, a mode-only change, a new deep
    // folder, a symbolic link; `.gitignore` untouched.
    git(&root, &["checkout", "-q", "-b", "target"]);
    std::fs::remove_file(root.join("a.txt")).unwrap();
    write(&root, "a.txt/inside.txt", "now a folder\n");
    std::fs::remove_file(root.join("dir/b.txt")).unwrap();
    write(&root, "x/y/z/deep.txt", "deep\n");
    write(&root, "run.sh", "#!/bin/sh\n");
    let first = commit_all(&root, "first");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("x/y/z/deep.txt", root.join("link")).unwrap();
    }
    let target = commit_all(&root, "target");
    git(&root, &["checkout", "-q", "main"]);
    let wt = tmp.path().canonicalize().unwrap().join("wt");
    git::add_worktree(&repo, &wt, "worktree/teleos-abc123-1", start, &NO_CANCEL).unwrap();
    let wt_repo = open(&wt);
    let untouched = || {
        std::fs::metadata(wt.join(".gitignore"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = untouched();

    for (to, present, absent) in [
        (
            first,
            vec!["a.txt/inside.txt", "x/y/z/deep.txt", "run.sh"],
            vec!["dir"],
        ),
        (target, vec!["link", "run.sh"], vec!["dir"]),
        (
            start,
            vec!["a.txt", "dir/b.txt"],
            vec!["x", "run.sh", "link"],
        ),
        (target, vec!["a.txt/inside.txt", "link"], vec!["dir"]),
    ] {
        git::reset_clean_worktree_to(&wt_repo, to, &NO_CANCEL).unwrap();
        assert_eq!(rev(&wt, "HEAD"), to);
        assert_eq!(status(&wt), "", "clean after moving to {to}");
        assert_eq!(git(&wt, &["diff", "--cached", "--stat", "HEAD"]), "");
        for p in present {
            assert!(wt.join(p).symlink_metadata().is_ok(), "{p} written");
        }
        for p in absent {
            assert!(wt.join(p).symlink_metadata().is_err(), "{p} removed");
        }
    }
    assert_eq!(before, untouched(), "unchanged files are not rewritten");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(wt.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o111, 0, "the mode-only change is on disk");
    }
    // A commit made on top records exactly the index: no stale cached tree brings back old files.
    assert_eq!(
        git(&wt, &["write-tree"]).trim(),
        rev(&wt, "HEAD^{tree}").to_string()
    );
    write(&wt, "more.txt", "more\n");
    git(&wt, &["add", "more.txt"]);
    git(&wt, &["commit", "-qm", "more"]);
    assert_eq!(
        git(&wt, &["diff", "--name-only", "HEAD~1", "HEAD"]),
        "more.txt\n"
    );
    git(&root, &["fsck", "--no-progress"]);
}

#[test]
fn reset_of_a_clean_worktree_keeps_the_cached_trees_it_did_not_touch_and_no_stale_one() {
    let (tmp, root) = repo();
    let repo = open(&root);
    let start = rev(&root, "HEAD");
    git(&root, &["checkout", "-q", "-b", "target"]);
    write(&root, "dir/b.txt", "BEE\n");
    write(&root, "dir/new/c.txt", "sea\n");
    write(&root, "other/d.txt", "dee\n");
    let target = commit_all(&root, "target");
    git(&root, &["checkout", "-q", "main"]);
    write(&root, "other/d.txt", "dee\n");
    write(&root, "keep/e.txt", "e\n");
    let before = commit_all(&root, "before");
    let wt = tmp.path().canonicalize().unwrap().join("wt");
    git::add_worktree(&repo, &wt, "worktree/teleos-abc123-1", before, &NO_CANCEL).unwrap();
    // git's own full cache-tree, as a commit by an agent leaves it.
    git(&wt, &["write-tree"]);
    assert_eq!(cached_root(&wt).and_then(|(_, n)| n), Some(5));

    let wt_repo = open(&wt);
    for to in [target, start, before, target] {
        git::reset_clean_worktree_to(&wt_repo, to, &NO_CANCEL).unwrap();
        assert_eq!(status(&wt), "", "clean after moving to {to}");
        assert!(git::is_clean(&open(&wt)).unwrap());
        // git trusts every valid cached tree: the tree it writes from the index is the target's.
        assert_eq!(
            git(&wt, &["write-tree"]).trim(),
            rev(&wt, "HEAD^{tree}").to_string()
        );
    }
    // The folders the last move did not touch keep their cached trees; git's write-tree above
    // made the whole extension valid again, so look before it.
    git::reset_clean_worktree_to(&wt_repo, before, &NO_CANCEL).unwrap();
    let index = open(&wt).open_index().unwrap();
    let cached = index.tree().expect("the cache-tree is kept");
    assert_eq!(cached.num_entries, None, "the root changed");
    let child = |name: &str| {
        cached
            .children
            .iter()
            .find(|c| c.name.as_slice() == name.as_bytes())
            .map(|c| c.num_entries)
    };
    assert_eq!(child("dir"), Some(None), "dir changed");
    assert_eq!(child("other"), Some(Some(1)), "other did not change");
    assert_eq!(
        git(&wt, &["write-tree"]).trim(),
        rev(&wt, "HEAD^{tree}").to_string()
    );
    git(&root, &["fsck", "--no-progress"]);
}

#[test]
fn land_while_another_git_command_holds_the_index_changes_nothing() {
    let (_tmp, root) = repo();
    let start = rev(&root, "HEAD");
    git(&root, &["checkout", "-q", "-b", "integration-abc123"]);
    write(&root, "a.txt", "landed\n");
    let tip = commit_all(&root, "integrated work");
    git(&root, &["checkout", "-q", "main"]);
    let before = std::fs::read(root.join(".git/index")).unwrap();
    // Another git command's lock, held for longer than landing waits.
    std::fs::write(root.join(".git/index.lock"), b"").unwrap();
    let e = git::land_fast_forward_checkout(&open(&root), "refs/heads/main", tip).unwrap_err();
    assert!(e.to_string().contains("another git command"), "{e}");
    // Neither the branch, the files nor the index moved, and the other command's lock stays.
    assert_eq!(rev(&root, "main"), start);
    assert_eq!(read(&root, "a.txt"), "one\ntwo\nthree\n");
    assert_eq!(std::fs::read(root.join(".git/index")).unwrap(), before);
    assert!(root.join(".git/index.lock").exists());
    std::fs::remove_file(root.join(".git/index.lock")).unwrap();
    let out = git::land_fast_forward_checkout(&open(&root), "refs/heads/main", tip).unwrap();
    assert!(matches!(out, LandOutcome::CheckedOut { .. }), "{out:?}");
    assert_eq!(status(&root), "");
}

#[test]
fn land_updates_a_clean_checkout_and_refuses_a_dirty_one() {
    let (_tmp, root) = repo();
    let start = rev(&root, "HEAD");
    git(&root, &["checkout", "-q", "-b", "integration-abc123"]);
    write(&root, "a.txt", "landed\n");
    write(&root, "new/file.txt", "new\n");
    let tip = commit_all(&root, "integrated work");
    git(&root, &["checkout", "-q", "main"]);
    let repo = open(&root);

    // An edit to a file the update writes blocks landing; nothing moves.
    write(&root, "a.txt", "user edit\n");
    let out = git::land_fast_forward_checkout(&repo, "refs/heads/main", tip).unwrap();
    assert_eq!(out, LandOutcome::Dirty(vec!["a.txt".into()]));
    assert_eq!(rev(&root, "main"), start);
    git(&root, &["checkout", "a.txt"]);

    // So does staged work anywhere (the index is rewritten by landing).
    write(&root, "dir/b.txt", "user edit\n");
    git(&root, &["add", "dir/b.txt"]);
    let out = git::land_fast_forward_checkout(&repo, "refs/heads/main", tip).unwrap();
    assert_eq!(out, LandOutcome::Dirty(vec!["dir/b.txt".into()]));
    assert_eq!(rev(&root, "main"), start);
    git(&root, &["reset", "-q", "dir/b.txt"]);

    // So does an untracked file where the update writes.
    write(&root, "new/file.txt", "user's own\n");
    let out = git::land_fast_forward_checkout(&repo, "refs/heads/main", tip).unwrap();
    assert_eq!(out, LandOutcome::Dirty(vec!["new/file.txt".into()]));
    std::fs::remove_dir_all(root.join("new")).unwrap();

    // An unrelated untracked file and an unstaged edit elsewhere are kept and do not block.
    write(&root, "notes.txt", "mine\n");
    let out = git::land_fast_forward_checkout(&repo, "refs/heads/main", tip).unwrap();
    assert!(matches!(out, LandOutcome::CheckedOut { .. }), "{out:?}");
    assert_eq!(rev(&root, "main"), tip);
    assert_eq!(status(&root), " M dir/b.txt\n?? notes.txt\n");
    assert_eq!(read(&root, "dir/b.txt"), "user edit\n");
    assert_eq!(read(&root, "a.txt"), "landed\n");
    assert_eq!(read(&root, "notes.txt"), "mine\n");

    let out = git::land_fast_forward_checkout(&repo, "refs/heads/main", tip).unwrap();
    assert_eq!(out, LandOutcome::UpToDate);

    // A branch checked out nowhere just moves.
    git(&root, &["branch", "elsewhere", &start.to_string()]);
    let out = git::land_fast_forward_checkout(&repo, "refs/heads/elsewhere", tip).unwrap();
    assert_eq!(out, LandOutcome::RefUpdated);
    assert_eq!(rev(&root, "elsewhere"), tip);
}

#[test]
fn concurrent_merges_into_one_branch_all_land() {
    let (_tmp, root) = repo();
    let base = rev(&root, "HEAD");
    let mut tips = Vec::new();
    for n in 0..4 {
        git(
            &root,
            &["checkout", "-q", "-b", &format!("story-{n}"), "main"],
        );
        write(&root, &format!("story-{n}.txt"), "done\n");
        tips.push(commit_all(&root, &format!("story {n}")));
    }
    git(&root, &["checkout", "-q", "main"]);
    let shared = open(&root).into_sync();
    git::create_branch(&shared.to_thread_local(), "integration-abc123", base).unwrap();
    std::thread::scope(|scope| {
        for tip in &tips {
            let shared = &shared;
            scope.spawn(move || {
                // One handle per thread: gix::Repository is not Sync.
                let repo = shared.to_thread_local();
                let out = git::merge_into_branch(&repo, "refs/heads/integration-abc123", *tip, "m")
                    .unwrap();
                assert!(matches!(
                    out,
                    MergeOutcome::Merged(_) | MergeOutcome::FastForward(_)
                ));
            });
        }
    });
    let files = git(&root, &["ls-tree", "--name-only", "integration-abc123"]);
    for n in 0..4 {
        assert!(files.contains(&format!("story-{n}.txt")), "{files}");
    }
    git(&root, &["fsck", "--no-progress"]);
}

#[test]
fn owned_path_keeps_the_target_side_then_takes_the_edit() {
    const T: &str = "sprint-status.yaml";
    let tracker = "# c\ndevelopment_status:\n  1-1: backlog\n  1-2: backlog\n";
    let (tmp, root) = repo();
    write(&root, T, tracker);
    let start = commit_all(&root, "tracker");
    // Integration already set 1-1; the story branch edits the neighbouring line (a conflict
    // without ownership) and does its real work.
    git(&root, &["checkout", "-q", "-b", "integ"]);
    write(&root, T, &tracker.replace("1-1: backlog", "1-1: done"));
    write(&root, "one.txt", "1\n");
    let integ = commit_all(&root, "1-1");
    git(
        &root,
        &["checkout", "-q", "-b", "story", &start.to_string()],
    );
    write(
        &root,
        T,
        &tracker.replace("1-2: backlog", "1-2: done # by agent"),
    );
    write(&root, "two.txt", "2\n");
    let story = commit_all(&root, "1-2");
    git(&root, &["checkout", "-q", "main"]);
    let repo = open(&root);
    let edit = |b: &[u8]| {
        let t = std::str::from_utf8(b).ok()?;
        Some(t.replace("1-2: backlog", "1-2: review").into_bytes())
    };
    let owned = [git::OwnedPath {
        path: T,
        edit: &edit,
    }];

    // Without ownership the tracker lines conflict.
    let plain = git::merge_commits_in_memory(&repo, integ, story, "integ", "m").unwrap();
    assert!(matches!(plain, MergeOutcome::Conflict { .. }), "{plain:?}");

    let (out, report) =
        git::merge_into_branch_owning(&repo, "refs/heads/integ", story, "merge 1-2", &owned)
            .unwrap();
    let MergeOutcome::Merged(id) = out else {
        panic!("expected a merge, got {out:?}")
    };
    assert_eq!(report.dropped, vec![T.to_string()]);
    assert_eq!(report.edited, vec![T.to_string()]);
    assert_eq!(
        git(&root, &["show", &format!("{id}:{T}")]),
        "# c\ndevelopment_status:\n  1-1: done\n  1-2: review\n"
    );
    assert_eq!(git(&root, &["show", &format!("{id}:two.txt")]), "2\n");
    assert_eq!(git(&root, &["show", &format!("{id}:one.txt")]), "1\n");
    assert_eq!(
        git(&root, &["rev-list", "--parents", "-n1", &id.to_string()]).trim(),
        format!("{id} {integ} {story}")
    );

    // Where a fast-forward would do, the edit still lands in one merge commit.
    git::create_branch(&repo, "ff", start).unwrap();
    let (out, report) =
        git::merge_into_branch_owning(&repo, "refs/heads/ff", story, "merge", &owned).unwrap();
    let MergeOutcome::Merged(ff) = out else {
        panic!("expected a merge commit, got {out:?}")
    };
    assert_eq!(report.dropped, vec![T.to_string()]);
    assert_eq!(
        git(&root, &["show", &format!("{ff}:{T}")]),
        tracker.replace("1-2: backlog", "1-2: review")
    );
    assert_eq!(
        git(&root, &["rev-list", "--parents", "-n1", &ff.to_string()]).trim(),
        format!("{ff} {start} {story}")
    );

    // Nothing new to merge, but the edit: one commit on the target.
    let (out, report) =
        git::merge_into_branch_owning(&repo, "refs/heads/ff", start, "status", &owned).unwrap();
    assert_eq!(
        out,
        MergeOutcome::UpToDate,
        "already reviewed: nothing to write"
    );
    assert!(report.dropped.is_empty() && report.edited.is_empty());
    git::create_branch(&repo, "plain", start).unwrap();
    let (out, _) =
        git::merge_into_branch_owning(&repo, "refs/heads/plain", start, "status", &owned).unwrap();
    let MergeOutcome::Merged(c) = out else {
        panic!("expected a status commit, got {out:?}")
    };
    assert_eq!(
        git(&root, &["rev-list", "--parents", "-n1", &c.to_string()]).trim(),
        format!("{c} {start}")
    );
    // No ownership, no change of behaviour: a fast-forward stays one.
    git::create_branch(&repo, "bare-ff", start).unwrap();
    let (out, report) =
        git::merge_into_branch_owning(&repo, "refs/heads/bare-ff", story, "m", &[]).unwrap();
    assert_eq!(out, MergeOutcome::FastForward(story));
    assert!(report.dropped.is_empty());
    git(&root, &["fsck", "--no-progress", "--strict"]);
    drop(tmp);
}

/// A worktree whose registration was cut short (admin folder without `HEAD`, as a process that
/// died inside `add_worktree` leaves it) is removed when it holds only its `.git` file, and
/// left alone as soon as it holds anything else.
#[test]
fn a_worktree_cut_short_while_registered_is_removed_only_when_empty() {
    let (_tmp, dir) = repo();
    let wt = dir.join("wt");
    let admin = dir.join(".git/worktrees/wt");
    let make_cut_short = |extra: Option<&str>| {
        git(&dir, &["worktree", "add", "-q", "--detach", "wt"]);
        for entry in std::fs::read_dir(&wt).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != ".git" {
                let p = entry.path();
                if p.is_dir() {
                    std::fs::remove_dir_all(p).unwrap();
                } else {
                    std::fs::remove_file(p).unwrap();
                }
            }
        }
        std::fs::remove_file(admin.join("HEAD")).unwrap();
        if let Some(name) = extra {
            std::fs::write(wt.join(name), "someone's file\n").unwrap();
        }
    };

    make_cut_short(Some("notes.txt"));
    assert!(!git::remove_if_registration_cut_short(&wt).unwrap());
    assert!(wt.join("notes.txt").exists() && admin.exists());
    std::fs::remove_dir_all(&wt).unwrap();
    std::fs::remove_dir_all(&admin).unwrap();

    make_cut_short(None);
    assert!(git::remove_if_registration_cut_short(&wt).unwrap());
    assert!(!wt.exists() && !admin.exists());
    // A finished worktree is never one.
    git(&dir, &["worktree", "add", "-q", "--detach", "wt"]);
    assert!(!git::remove_if_registration_cut_short(&wt).unwrap());
    assert!(wt.join(".git").exists());
}
