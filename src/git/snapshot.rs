//! Save a worktree's uncommitted work as a commit, like `git stash create` but including
//! untracked files, and without touching the worktree's files or index.

use std::path::Path;

use gix::objs::tree::EntryKind;
use gix::{ObjectId, Repository};

use super::repo::{head_commit_id, work_tree_root};
use super::status::changes;
use super::{gix_err, identity};
use crate::error::{Error, Result};

/// A commit whose parent is `HEAD` and whose tree is `HEAD`'s plus every tracked modification
/// or deletion and every untracked, non-ignored file, as they are on disk now. `None` when the
/// worktree is clean. Nothing in the worktree or index changes; nothing points at the commit
/// yet (keep it with `set_ref`).
///
/// Files are stored as their bytes on disk (no clean filters such as `core.autocrlf` or LFS).
/// Nested repositories found untracked are skipped, as `git add` would record only a gitlink.
pub fn snapshot_uncommitted(worktree_repo: &Repository, message: &str) -> Result<Option<ObjectId>> {
    let Some((head, tree)) = tree_on_disk(worktree_repo)? else {
        return Ok(None);
    };
    let commit = gix::objs::Commit {
        tree,
        parents: head.into_iter().collect(),
        author: identity::author(worktree_repo)?,
        committer: identity::committer(worktree_repo)?,
        encoding: None,
        message: identity::commit_message(message).into(),
        extra_headers: Vec::new(),
    };
    let id = worktree_repo
        .write_object(&commit)
        .map_err(gix_err)?
        .detach();
    Ok(Some(id))
}

/// Whether the files on disk hold anything `HEAD` does not: a worktree whose index is missing
/// or stale (a checkout cut short by a crash) looks dirty but may hold nothing to keep.
pub fn differs_from_head_on_disk(worktree_repo: &Repository) -> Result<bool> {
    Ok(tree_on_disk(worktree_repo)?.is_some())
}

/// `HEAD` and the tree of the files on disk, or `None` when that tree is `HEAD`'s.
fn tree_on_disk(worktree_repo: &Repository) -> Result<Option<(Option<ObjectId>, ObjectId)>> {
    let root = work_tree_root(worktree_repo)
        .ok_or_else(|| Error::git("cannot snapshot a bare repository"))?;
    let found = changes(worktree_repo, None)?;
    if found.is_empty() {
        return Ok(None);
    }
    let head = head_commit_id(worktree_repo)?;
    let base_tree = match head {
        Some(head) => super::history::commit_tree_id(worktree_repo, head)?,
        None => ObjectId::empty_tree(worktree_repo.object_hash()),
    };
    let mut editor = worktree_repo.edit_tree(base_tree).map_err(gix_err)?;
    for change in &found {
        // Whatever the status said (staged, modified, deleted, untracked), the disk decides.
        match entry_from_disk(worktree_repo, &root.join(&change.path))? {
            Some((kind, id)) => {
                editor
                    .upsert(change.path.as_str(), kind, id)
                    .map_err(gix_err)?;
            }
            None => {
                editor.remove(change.path.as_str()).map_err(gix_err)?;
            }
        }
    }
    let tree = editor.write().map_err(gix_err)?.detach();
    if tree == base_tree {
        // Only stat noise or skipped nested repositories: nothing to keep.
        return Ok(None);
    }
    Ok(Some((head, tree)))
}

/// The tree entry a path on disk becomes: `None` if it is gone (or a directory, e.g. a nested
/// repository, which we do not descend into).
fn entry_from_disk(repo: &Repository, path: &Path) -> Result<Option<(EntryKind, ObjectId)>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let read_err = |e| Error::io(format!("reading {}", path.display()), e);
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(read_err)?;
        let target = gix::path::into_bstr(target).map_err(gix_err)?;
        let bytes: &[u8] = &target;
        let id = repo.write_blob(bytes).map_err(gix_err)?.detach();
        return Ok(Some((EntryKind::Link, id)));
    }
    if meta.is_dir() {
        return Ok(None);
    }
    let file = std::fs::File::open(path).map_err(read_err)?;
    let id = repo.write_blob_stream(file).map_err(gix_err)?.detach();
    Ok(Some((
        if is_executable(&meta) {
            EntryKind::BlobExecutable
        } else {
            EntryKind::Blob
        },
        id,
    )))
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}
