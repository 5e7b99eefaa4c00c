//! "Is this worktree clean?" including untracked files, which gix's `is_dirty()` ignores.

use gix::Repository;

use super::gix_err;
use crate::error::Result;

/// How many paths [`dirty_paths`] reports at most (for messages, not for processing).
pub const DIRTY_PATHS_LIMIT: usize = 20;

/// `true` when the worktree has no staged, unstaged or untracked (non-ignored) change.
///
/// Linked worktrees placed inside this one (e.g. `.claude/worktrees/…`) count as untracked
/// unless ignored; landing only objects to untracked paths it would overwrite.
pub fn is_clean(repo: &Repository) -> Result<bool> {
    Ok(changed_paths(repo, Some(1))?.is_empty())
}

/// Up to [`DIRTY_PATHS_LIMIT`] paths with staged, unstaged or untracked changes, for messages.
pub fn dirty_paths(repo: &Repository) -> Result<Vec<String>> {
    changed_paths(repo, Some(DIRTY_PATHS_LIMIT))
}

/// One change found by the status walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub path: String,
    /// The path is not in the index (an untracked file or nested repository).
    pub untracked: bool,
    /// The index differs from `HEAD` here (a staged change).
    pub staged: bool,
}

/// Paths changed between HEAD, index and worktree, untracked files listed one by one;
/// stops after `limit` paths. Each path appears once.
pub fn changed_paths(repo: &Repository, limit: Option<usize>) -> Result<Vec<String>> {
    Ok(changes(repo, limit)?.into_iter().map(|c| c.path).collect())
}

pub(crate) fn changes(repo: &Repository, limit: Option<usize>) -> Result<Vec<Change>> {
    use gix::status::index_worktree::Item as WtItem;
    use gix::status::Item;

    // Most worktrees asked about are clean: one cheap pass proves it, or hands over to the
    // full walk below, which alone reports what changed.
    if super::quick_status::proven_clean(repo) {
        return Ok(Vec::new());
    }

    // Force the directory walk back on: `status.showUntrackedFiles=no` must not hide work.
    let dirwalk = repo.dirwalk_options().map_err(gix_err)?;
    let iter = repo
        .status(gix::progress::Discard)
        .map_err(gix_err)?
        .index_worktree_options_mut(|opts| opts.dirwalk_options = Some(dirwalk))
        .untracked_files(gix::status::UntrackedFiles::Files)
        .index_worktree_rewrites(None)
        .tree_index_track_renames(gix::status::tree_index::TrackRenames::Disabled)
        .index_worktree_submodules(gix::status::Submodule::AsConfigured { check_dirty: true })
        .into_iter(None)
        .map_err(gix_err)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for item in iter {
        let item = item.map_err(gix_err)?;
        let untracked = match &item {
            // Stat-only refreshes and ignored entries are not changes.
            Item::IndexWorktree(wt) if wt.summary().is_none() => continue,
            Item::IndexWorktree(WtItem::DirectoryContents { .. }) => true,
            _ => false,
        };
        let path = item.location().to_string();
        if seen.insert(path.clone()) {
            let staged = matches!(item, Item::TreeIndex(_));
            out.push(Change {
                path,
                untracked,
                staged,
            });
            if limit.is_some_and(|limit| out.len() >= limit) {
                break;
            }
        }
    }
    Ok(out)
}

/// Delete the untracked, non-ignored files of a worktree git-teleos owns (never the user's
/// checkout): what a test run left behind there. Returns the paths removed; tracked changes
/// are left alone (the caller sees them as dirty).
pub fn remove_untracked_in_owned_worktree(repo: &Repository) -> Result<Vec<String>> {
    let root = super::work_tree_root(repo)
        .ok_or_else(|| crate::error::Error::git("no worktree to tidy"))?;
    let mut removed = Vec::new();
    for c in changes(repo, None)?.into_iter().filter(|c| c.untracked) {
        let path = root.join(&c.path);
        // Never follow a path out of the worktree.
        if c.path.split('/').any(|p| p == "..") {
            continue;
        }
        let gone = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path).is_ok(),
            Ok(_) => std::fs::remove_file(&path).is_ok(),
            Err(_) => false,
        };
        if gone {
            removed.push(c.path);
        }
    }
    Ok(removed)
}
