//! Questions about commits: ranges, ancestry, short hashes, changed files.

use gix::bstr::{BStr, ByteSlice};
use gix::{ObjectId, Repository};

use super::gix_err;
use crate::error::{Error, Result};

/// Commits reachable from `tip` but not from `base`, newest first (`git rev-list base..tip`).
pub fn commits_between(repo: &Repository, base: ObjectId, tip: ObjectId) -> Result<Vec<ObjectId>> {
    use gix::revision::walk::Sorting;
    use gix::traverse::commit::simple::CommitTimeOrder;
    let walk = repo
        .rev_walk([tip])
        .with_hidden([base])
        .sorting(Sorting::ByCommitTime(CommitTimeOrder::NewestFirst))
        .all()
        .map_err(gix_err)?;
    walk.map(|info| info.map(|info| info.id).map_err(gix_err))
        .collect()
}

/// The commit a (possibly abbreviated) hex hash names, or `None` when nothing or something else
/// (a tree, a blob, several objects) matches. Fewer than 4 or non-hex characters match nothing.
pub fn commit_exists(repo: &Repository, hex_prefix: &str) -> Result<Option<ObjectId>> {
    let hex = hex_prefix.trim();
    let max_len = repo.object_hash().len_in_hex();
    if hex.len() < 4 || hex.len() > max_len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let id = if hex.len() == max_len {
        ObjectId::from_hex(hex.as_bytes()).map_err(gix_err)?
    } else {
        let prefix = gix::hash::Prefix::from_hex(hex).map_err(gix_err)?;
        match repo.objects.lookup_prefix(prefix, None).map_err(gix_err)? {
            Some(Ok(id)) => id,
            // Ambiguous (Err) or unknown: the caller cannot use it as "the" commit.
            Some(Err(())) | None => return Ok(None),
        }
    };
    match repo.try_find_header(id).map_err(gix_err)? {
        Some(header) if header.kind() == gix::objs::Kind::Commit => Ok(Some(id)),
        _ => Ok(None),
    }
}

/// `true` when `a` is `b` or one of its ancestors (`git merge-base --is-ancestor a b`).
pub fn is_ancestor(repo: &Repository, a: ObjectId, b: ObjectId) -> Result<bool> {
    if a == b {
        return Ok(true);
    }
    let base = repo.merge_base(a, b).map_err(gix_err)?;
    Ok(base.is_some_and(|base| base.detach() == a))
}

/// Paths of files that differ between the trees of `base` and `tip`, sorted, without rename
/// detection (a rename shows as both paths).
pub fn files_changed(repo: &Repository, base: ObjectId, tip: ObjectId) -> Result<Vec<String>> {
    let changes = tree_changes(
        repo,
        commit_tree_id(repo, base)?,
        commit_tree_id(repo, tip)?,
    )?;
    let mut paths: Vec<String> = changes
        .iter()
        .filter_map(change_file_path)
        .map(ToString::to_string)
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// What changed from tree `old` to tree `new`, every path in full, without rename detection:
/// gix's plain tree diff, which skips every subtree whose id is unchanged. Not
/// `Repository::diff_tree_to_tree`: that also sets up a blob-diff cache, which loads the
/// whole index and verifies its checksum (for attributes), only to leave it unused when no
/// rename is tracked; on a large repository that cost more than the diff itself.
pub(crate) fn tree_changes(
    repo: &Repository,
    old: ObjectId,
    new: ObjectId,
) -> Result<Vec<gix::diff::tree::recorder::Change>> {
    let old = repo.find_tree(old).map_err(gix_err)?;
    let new = repo.find_tree(new).map_err(gix_err)?;
    let mut recorder = gix::diff::tree::Recorder::default();
    gix::diff::tree(
        gix::objs::TreeRefIter::from_bytes(&old.data, old.id.kind()),
        gix::objs::TreeRefIter::from_bytes(&new.data, new.id.kind()),
        gix::diff::tree::State::default(),
        &repo.objects,
        &mut recorder,
    )
    .map_err(gix_err)?;
    Ok(recorder.records)
}

/// The path of a change that concerns a file (not a folder) on either side: a folder added or
/// removed comes with a change for each file in it.
pub(crate) fn change_file_path(change: &gix::diff::tree::recorder::Change) -> Option<&BStr> {
    use gix::diff::tree::recorder::Change;
    let (path, file) = match change {
        Change::Addition {
            path, entry_mode, ..
        }
        | Change::Deletion {
            path, entry_mode, ..
        } => (path, !entry_mode.is_tree()),
        Change::Modification {
            path,
            previous_entry_mode,
            entry_mode,
            ..
        } => (
            path,
            !entry_mode.is_tree() || !previous_entry_mode.is_tree(),
        ),
    };
    file.then_some(path.as_bstr())
}

pub(crate) fn commit_tree_id(repo: &Repository, commit: ObjectId) -> Result<ObjectId> {
    let commit = repo.find_commit(commit).map_err(|e| {
        Error::git(format!(
            "{commit} is not a commit: {}",
            super::error_chain(&e)
        ))
    })?;
    Ok(commit.tree_id().map_err(gix_err)?.detach())
}

/// How many commits are reachable from `tip` and from none of `hidden`
/// (`git rev-list --count tip --not hidden…`).
pub fn count_unreachable_from(
    repo: &Repository,
    tip: ObjectId,
    hidden: &[ObjectId],
) -> Result<usize> {
    let walk = repo
        .rev_walk([tip])
        .with_hidden(hidden.iter().copied())
        .all()
        .map_err(gix_err)?;
    let mut count = 0;
    for info in walk {
        info.map_err(gix_err)?;
        count += 1;
    }
    Ok(count)
}

/// The object id of the file at `rel_path` (relative to the work tree root) in `commit`'s
/// tree; `None` when the commit has no such path.
pub fn path_id_at(
    repo: &Repository,
    commit: ObjectId,
    rel_path: &std::path::Path,
) -> Result<Option<ObjectId>> {
    let tree = repo
        .find_commit(commit)
        .map_err(|e| {
            Error::git(format!(
                "{commit} is not a commit: {}",
                super::error_chain(&e)
            ))
        })?
        .tree()
        .map_err(gix_err)?;
    let entry = tree.lookup_entry_by_path(rel_path).map_err(gix_err)?;
    Ok(entry.map(|e| e.object_id()))
}
