//! Moving a checked-out branch together with its index and files, rewriting only what changed.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::BStr;
use gix::index::entry::Flags;
use gix::{ObjectId, Repository};

use super::diff_update::{plan_diff_update, skip_hash, write_index, IndexLock};
use super::gix_err;
use super::history::{commit_tree_id, files_changed, is_ancestor};
use super::quick_status::KnownIndex;
use super::refs::{resolve_ref, update_ref_cas, CasOutcome};
use super::repo::{current_branch, head_commit_id, work_tree_root};
use super::status::{changes, dirty_paths, DIRTY_PATHS_LIMIT};
use super::worktree::normalize;
use crate::error::{Error, Result};

/// What landing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LandOutcome {
    /// The branch already contains the commit: nothing changed.
    UpToDate,
    /// The branch was checked out here: it moved, and index and files now match it.
    CheckedOut {
        /// Files written or removed.
        files_updated: usize,
    },
    /// The branch is not checked out in any worktree: only the ref moved.
    RefUpdated,
    /// Local changes are in the way (tracked changes, or untracked files where the update
    /// would write); nothing was touched.
    Dirty(Vec<String>),
    /// The commit does not descend from the branch: merge first; nothing was touched.
    NotFastForward,
    /// The branch is checked out in another worktree (that path); nothing was touched.
    CheckedOutElsewhere(PathBuf),
    /// The branch moved while landing; nothing was touched.
    Moved,
}

/// Fast-forward branch `branch_full` to `new` for the user. If it is checked out in the
/// worktree `repo_at_user_worktree` was opened in, that worktree's index and changed files are
/// updated too — but only when no tracked file has local changes and no untracked file sits
/// where the update writes (what `git merge --ff-only` accepts); otherwise nothing is touched.
pub fn land_fast_forward_checkout(
    repo_at_user_worktree: &Repository,
    branch_full: &str,
    new: ObjectId,
) -> Result<LandOutcome> {
    let repo = repo_at_user_worktree;
    let old = resolve_ref(repo, branch_full)?
        .ok_or_else(|| Error::git(format!("branch {branch_full} not found")))?;
    if is_ancestor(repo, new, old)? {
        return Ok(LandOutcome::UpToDate);
    }
    if !is_ancestor(repo, old, new)? {
        return Ok(LandOutcome::NotFastForward);
    }
    let log = format!("merge {new}: Fast-forward");
    if current_branch(repo)?.as_deref() != Some(branch_full) {
        if let Some(elsewhere) = checked_out_in(repo, branch_full)? {
            return Ok(LandOutcome::CheckedOutElsewhere(elsewhere));
        }
        return Ok(
            match update_ref_cas(repo, branch_full, new, Some(old), &log)? {
                CasOutcome::Updated => LandOutcome::RefUpdated,
                CasOutcome::Conflict => LandOutcome::Moved,
            },
        );
    }

    let root = work_tree_root(repo).ok_or_else(|| Error::git("no worktree to update"))?;
    // Held from before the index is read until its new version is written, as `git merge`
    // holds it: another git command (an editor's `git status`) can neither change the index
    // under this update nor, by holding the lock, leave the branch moved and the files
    // written with the old index beside them. Every early return below releases it.
    let lock = IndexLock::acquire(repo)?;
    let new_tree = commit_tree_id(repo, new)?;
    // Most landings: nothing staged (the cache-tree proves it), and the files the update
    // writes or removes are as the index has them. Then only those are read and written, as
    // `git merge --ff-only` would, and the rest of the checkout is left unread.
    if let Some(diff) = plan_diff_update(repo, commit_tree_id(repo, old)?, new_tree, None)? {
        // The index the plan read and will edit: loaded once.
        if super::quick_status::index_is_head(repo, diff.index())
            && diff.touched_paths_match_index(repo, &root)?
        {
            if update_ref_cas(repo, branch_full, new, Some(old), &log)? == CasOutcome::Conflict {
                return Ok(LandOutcome::Moved);
            }
            // Not interruptible, as below.
            let files_updated = diff.apply(repo, &root, &AtomicBool::new(false), Some(lock))?;
            return Ok(LandOutcome::CheckedOut { files_updated });
        }
    }
    let incoming = files_changed(repo, old, new)?;
    let in_the_way: Vec<String> = changes(repo, None)?
        .into_iter()
        // As `git merge --ff-only`: staged work, and files the update would write, are in the
        // way; other unstaged edits and untracked files are kept as they are.
        .filter(|c| c.staged || incoming.iter().any(|p| overlaps(p, &c.path)))
        .map(|c| c.path)
        .take(DIRTY_PATHS_LIMIT)
        .collect();
    if !in_the_way.is_empty() {
        return Ok(LandOutcome::Dirty(in_the_way));
    }
    if update_ref_cas(repo, branch_full, new, Some(old), &log)? == CasOutcome::Conflict {
        return Ok(LandOutcome::Moved);
    }
    // Not interruptible: the branch has moved, and stopping half way would leave the user's
    // checkout half updated. Only the changed files are written, so this is short.
    let files_updated =
        plan_update(repo, new_tree)?.apply(repo, &root, &AtomicBool::new(false), Some(lock))?;
    Ok(LandOutcome::CheckedOut { files_updated })
}

/// Move the branch checked out in `worktree_repo` (opened at that worktree) to `commit`, and
/// make its index and files match so `git status` is clean. Only changed files are rewritten.
/// Refuses a worktree with any staged, unstaged or untracked change, and a detached `HEAD`.
/// Setting `cancel` (Ctrl-C) stops a long checkout part way: the worktree is then left with
/// changes, which the batch keeps like any other.
pub fn reset_worktree_to(
    worktree_repo: &Repository,
    commit: ObjectId,
    cancel: &AtomicBool,
) -> Result<()> {
    reset_guarded(worktree_repo, commit, false, None, cancel)
}

/// [`reset_worktree_to`] for a worktree its caller saw clean (a full status walk) after the last
/// thing that ran in it. Instead of walking the whole worktree again, only the files this update
/// writes or removes are checked against the index before anything is touched; if one differs,
/// or a new path is already taken, the full walk decides as in [`reset_worktree_to`]. The cost
/// then follows what changed between the two commits, not the size of the repository.
pub fn reset_clean_worktree_to(
    worktree_repo: &Repository,
    commit: ObjectId,
    cancel: &AtomicBool,
) -> Result<()> {
    reset_guarded(worktree_repo, commit, true, None, cancel)
}

/// [`reset_clean_worktree_to`] with the index as the check that saw the worktree clean read
/// it (`WorktreeWatch::take_proven_index`): not decoded again if the file is still that one.
pub fn reset_clean_worktree_with(
    worktree_repo: &Repository,
    commit: ObjectId,
    known: Option<KnownIndex>,
    cancel: &AtomicBool,
) -> Result<()> {
    reset_guarded(worktree_repo, commit, true, known, cancel)
}

fn reset_guarded(
    repo: &Repository,
    commit: ObjectId,
    seen_clean: bool,
    known: Option<KnownIndex>,
    cancel: &AtomicBool,
) -> Result<()> {
    let root = work_tree_root(repo).ok_or_else(|| Error::git("no worktree to reset"))?;
    let branch = current_branch(repo)?
        .ok_or_else(|| Error::git(format!("{}: HEAD is detached", root.display())))?;
    if !seen_clean {
        refuse_if_dirty(repo, &root)?;
    }
    let old = head_commit_id(repo)?;
    if old == Some(commit) {
        return Ok(());
    }
    let target_tree = commit_tree_id(repo, commit)?;
    // The worktree matches `HEAD` (seen clean, or walked just above): the files to touch are
    // those the two trees differ in, found without reading the rest of the repository.
    let diff = match old {
        Some(old) => plan_diff_update(repo, commit_tree_id(repo, old)?, target_tree, known)?,
        None => None,
    };
    let log = format!("reset: moving to {commit}");
    let moved = || -> Result<()> {
        if update_ref_cas(repo, &branch, commit, old, &log)? == CasOutcome::Conflict {
            return Err(Error::git(format!(
                "{branch} moved while resetting {}",
                root.display()
            )));
        }
        Ok(())
    };
    if let Some(diff) = diff {
        if seen_clean && !diff.touched_paths_match_index(repo, &root)? {
            refuse_if_dirty(repo, &root)?;
        }
        moved()?;
        diff.apply(repo, &root, cancel, None)?;
        return Ok(());
    }
    let plan = plan_update(repo, target_tree)?;
    if seen_clean && !plan.touched_paths_match_index(repo, &root)? {
        refuse_if_dirty(repo, &root)?;
    }
    moved()?;
    plan.apply(repo, &root, cancel, None)?;
    Ok(())
}

fn refuse_if_dirty(repo: &Repository, root: &Path) -> Result<()> {
    let dirty = dirty_paths(repo)?;
    if dirty.is_empty() {
        return Ok(());
    }
    Err(Error::git(format!(
        "refusing to reset {}: it has uncommitted changes ({})",
        root.display(),
        dirty.join(", ")
    )))
}

/// Where (if anywhere) `branch_full` is the checked-out branch of a worktree.
fn checked_out_in(repo: &Repository, branch_full: &str) -> Result<Option<PathBuf>> {
    for worktree in repo.worktrees_including_main().map_err(gix_err)? {
        let worktree = worktree.map_err(gix_err)?;
        let head = worktree.head_name().ok().flatten();
        if head.is_some_and(|name| name.as_bstr() == branch_full) {
            return Ok(Some(
                worktree
                    .workdir()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            ));
        }
    }
    Ok(None)
}

/// `a` and `b` are the same path or one contains the other.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner.len() > outer.len()
            && inner.starts_with(outer)
            && inner.as_bytes()[outer.len()] == b'/'
    };
    a == b || inside(a, b) || inside(b, a)
}

/// How to bring a worktree's index and files from its current index to a tree: the target
/// index, with the entries whose id and mode are unchanged marked to be left alone, and the
/// paths that are no longer in the tree.
struct UpdatePlan {
    current: gix::index::File,
    target: gix::index::File,
    /// Positions in `target` of entries whose file is already right.
    unchanged: Vec<usize>,
    /// Paths in the current index that are not in the target.
    removed: Vec<String>,
}

/// Plan [`UpdatePlan::apply`] from `repo`'s current index to `target_tree`.
fn plan_update(repo: &Repository, target_tree: ObjectId) -> Result<UpdatePlan> {
    // A copy of our own, read afresh and freed once the plan is applied. The repository's
    // shared copy would stay loaded as long as the repository does (a whole story, in each of
    // several worktrees at once): on a large repository, index copies are most of a batch's
    // peak memory.
    let current = if repo.index_path().is_file() {
        repo.open_index().map_err(gix_err)?
    } else {
        match repo.index_or_load_from_head_or_empty().map_err(gix_err)? {
            gix::worktree::IndexPersistedOrInMemory::Persisted(index) => {
                index.into_owned_or_cloned()
            }
            gix::worktree::IndexPersistedOrInMemory::InMemory(index) => index,
        }
    };
    let mut target = repo.index_from_tree(&target_tree).map_err(gix_err)?;
    // Both indexes are sorted by path: binary searches, not a map of 20,000 paths.
    let mut unchanged = Vec::new();
    for (index, (entry, path)) in target.entries_mut_with_paths().enumerate() {
        if let Some(old) = unconflicted(&current, path) {
            if old.id == entry.id && old.mode == entry.mode {
                entry.stat = old.stat;
                // Checkout skips SKIP_WORKTREE entries: the file on disk is already right.
                entry.flags.insert(Flags::SKIP_WORKTREE);
                unchanged.push(index);
            }
        }
    }
    let removed: Vec<String> = current
        .entries()
        .iter()
        .filter(|e| e.stage_raw() == 0)
        .map(|e| e.path(&current))
        .filter(|p| target.entry_index_by_path(p).is_err())
        .map(|p| p.to_string())
        .collect();
    Ok(UpdatePlan {
        current,
        target,
        unchanged,
        removed,
    })
}

/// The stage-0 entry of `path` in `index`, if any.
fn unconflicted<'a>(index: &'a gix::index::File, path: &BStr) -> Option<&'a gix::index::Entry> {
    index.entry_by_path_and_stage(path, gix::index::entry::Stage::Unconflicted)
}

impl UpdatePlan {
    /// Whether every file the update would write or remove is exactly as the current index
    /// says (same content; absent where the index has no entry), so applying it can lose
    /// nothing. A `false` sends the caller to a full status walk, never straight to a refusal:
    /// a clean filter or line-ending conversion can make a clean file hash differently.
    fn touched_paths_match_index(&self, repo: &Repository, root: &Path) -> Result<bool> {
        let mut unchanged = self.unchanged.iter().peekable();
        let written = self
            .target
            .entries()
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                if unchanged.peek() == Some(&i) {
                    unchanged.next();
                    false
                } else {
                    true
                }
            })
            .map(|(_, e)| e.path(&self.target));
        let removed = self.removed.iter().map(|p| BStr::new(p.as_bytes()));
        for path in written.chain(removed) {
            let Ok(rela) = gix::path::from_bstr(path) else {
                return Ok(false);
            };
            let file = root.join(rela);
            if !on_disk_as_in_index(repo, &file, unconflicted(&self.current, path))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Make the index and files match the target, assuming they matched the current index
    /// (the caller checked). Entries whose id and mode are unchanged keep their file and stat
    /// data; the others are written by gix's checkout; paths no longer in the tree are
    /// deleted. Returns the number of files written or removed.
    fn apply(
        self,
        repo: &Repository,
        root: &Path,
        cancel: &AtomicBool,
        lock: Option<IndexLock>,
    ) -> Result<usize> {
        let UpdatePlan {
            current,
            mut target,
            unchanged,
            removed,
        } = self;
        // Not needed any more: freed before the checkout allocates its buffers.
        drop(current);
        for path in &removed {
            remove_file_and_empty_parents(root, path)?;
        }
        checkout_entries(
            repo,
            &mut target,
            root,
            gix::worktree::stack::state::attributes::Source::IdMapping,
            cancel,
        )?;
        let entries = target.entries_mut();
        for index in &unchanged {
            entries[*index].flags.remove(Flags::SKIP_WORKTREE);
        }
        write_index(&target, skip_hash(repo), lock)?;
        Ok(target.entries().len() - unchanged.len() + removed.len())
    }
}

/// Whether `file` is on disk as the index says: what `entry` records, or absent without one.
pub(super) fn on_disk_as_in_index(
    repo: &Repository,
    file: &Path,
    entry: Option<&gix::index::Entry>,
) -> Result<bool> {
    match entry {
        Some(entry) => file_matches(repo, file, entry),
        None => Ok(matches!(
            std::fs::symlink_metadata(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        )),
    }
}

/// Whether the file at `path` holds what the index `entry` records: its blob (or, for a
/// symbolic link, its target) hashes to the entry's id, and it is of the entry's kind.
pub(super) fn file_matches(
    repo: &Repository,
    path: &Path,
    entry: &gix::index::Entry,
) -> Result<bool> {
    file_matches_as(repo.object_hash(), path, entry)
}

/// [`file_matches`] for a repository whose objects are named with `hash`.
pub(super) fn file_matches_as(
    hash: gix::hash::Kind,
    path: &Path,
    entry: &gix::index::Entry,
) -> Result<bool> {
    use gix::index::entry::Mode;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(false);
    };
    let data = if entry.mode == Mode::SYMLINK {
        if !meta.file_type().is_symlink() {
            return Ok(false);
        }
        match std::fs::read_link(path) {
            Ok(target) => match gix::path::into_bstr(target) {
                Ok(bytes) => bytes.into_owned().into(),
                Err(_) => return Ok(false),
            },
            Err(_) => return Ok(false),
        }
    } else if entry.mode == Mode::FILE || entry.mode == Mode::FILE_EXECUTABLE {
        if !meta.is_file() {
            return Ok(false);
        }
        match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(_) => return Ok(false),
        }
    } else {
        // Submodules and other kinds: let the full walk judge.
        return Ok(false);
    };
    let id = gix::objs::compute_hash(hash, gix::objs::Kind::Blob, &data).map_err(gix_err)?;
    Ok(id == entry.id)
}

/// Write the entries of `index` into the work tree at `root` (files there may be overwritten),
/// with attributes read from `attributes`; any path gix could not write fails the whole call.
pub(super) fn checkout_entries(
    repo: &Repository,
    index: &mut gix::index::State,
    root: &Path,
    attributes: gix::worktree::stack::state::attributes::Source,
    cancel: &AtomicBool,
) -> Result<()> {
    let mut options = repo.checkout_options(attributes).map_err(gix_err)?;
    options.destination_is_initially_empty = false;
    options.overwrite_existing = true;
    let objects = repo
        .objects
        .clone()
        .into_arc()
        .map_err(|e| Error::io("opening the object database for checkout", e))?;
    let outcome = gix::worktree::state::checkout(
        index,
        root,
        objects,
        &gix::progress::Discard,
        &gix::progress::Discard,
        cancel,
        options,
    )
    .map_err(gix_err)?;
    if !outcome.collisions.is_empty() || !outcome.errors.is_empty() {
        let paths: Vec<String> = outcome
            .collisions
            .iter()
            .map(|c| c.path.to_string())
            .chain(
                outcome
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.path, super::error_chain(&e.error))),
            )
            .collect();
        return Err(Error::git(format!(
            "checkout in {} failed for: {}",
            root.display(),
            paths.join(", ")
        )));
    }
    Ok(())
}

pub(super) fn remove_file_and_empty_parents(root: &Path, rela_path: &str) -> Result<()> {
    let path = root.join(rela_path);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
    }
    let root = normalize(root);
    let mut dir = path.parent();
    while let Some(d) = dir {
        // Stop at the worktree root; a non-empty folder ends the walk (remove_dir fails).
        if normalize(d) == root || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}
