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

/// What a walk of a checkout proved beyond its answer: the index with the stat data of every
/// file whose stat no longer matched its entry but whose content did. `git status` writes that
/// back into the index; this stays in memory (the user's index is not written while agents
/// run), so that the next walk of the same checkout need not read those files again. A copied
/// or restored checkout (`cp -a`, a backup) has every file in that state, and reading 20,000 of
/// them takes several times as long as comparing their stat data.
pub struct Refreshed {
    /// The checksum of the on-disk index this was made from: once the index changes, this is
    /// stale and unused. Only an index with a real checksum gets one (with `index.skipHash`
    /// every version's trailer is zeros, which could not tell them apart).
    from: gix::hash::ObjectId,
    index: gix::index::File,
}

/// [`changed_paths`] of the whole checkout, starting from what an `earlier` walk of it proved
/// (if it still applies); with `prove`, also what this walk proved, for a later one.
pub fn changed_paths_refreshed(
    repo: &Repository,
    earlier: Option<&Refreshed>,
    prove: bool,
) -> Result<(Vec<String>, Option<Refreshed>)> {
    let (found, refreshed) = walk(repo, None, earlier, prove)?;
    Ok((found.into_iter().map(|c| c.path).collect(), refreshed))
}

pub(crate) fn changes(repo: &Repository, limit: Option<usize>) -> Result<Vec<Change>> {
    Ok(walk(repo, limit, None, false)?.0)
}

/// The status walk, from the `earlier` proof if it applies, and returning this walk's proof
/// if asked to `prove` (and there is anything to prove).
fn walk(
    repo: &Repository,
    limit: Option<usize>,
    earlier: Option<&Refreshed>,
    prove: bool,
) -> Result<(Vec<Change>, Option<Refreshed>)> {
    use gix::status::index_worktree::Item as WtItem;
    use gix::status::Item;
    use gix::worktree::IndexPersistedOrInMemory;

    // Most worktrees asked about are clean: one cheap pass proves it, or hands over to the
    // full walk below, which alone reports what changed.
    if super::quick_status::proven_clean(repo) {
        return Ok((Vec::new(), None));
    }

    let mut base = None;
    let mut before = None;
    if earlier.is_some() || prove {
        let on_disk = repo.index_or_empty().map_err(gix_err)?;
        let from = on_disk.checksum().filter(|c| !c.is_null());
        let index = match earlier.filter(|e| Some(e.from) == from) {
            Some(e) => IndexPersistedOrInMemory::InMemory(e.index.clone()),
            None => IndexPersistedOrInMemory::Persisted(on_disk),
        };
        // The stat data is read before the walk reads the content: a file changed in between
        // is either reported by the walk or has stat data unlike what is kept here.
        if prove && limit.is_none() {
            before = from
                .zip(super::work_tree_root(repo))
                .map(|(from, root)| (from, stat_all(&root, as_file(&index))));
        }
        base = Some(index);
    }
    // Force the directory walk back on: `status.showUntrackedFiles=no` must not hide work.
    let dirwalk = repo.dirwalk_options().map_err(gix_err)?;
    let mut platform = repo
        .status(gix::progress::Discard)
        .map_err(gix_err)?
        .index_worktree_options_mut(|opts| opts.dirwalk_options = Some(dirwalk))
        .untracked_files(gix::status::UntrackedFiles::Files)
        .index_worktree_rewrites(None)
        .tree_index_track_renames(gix::status::tree_index::TrackRenames::Disabled)
        .index_worktree_submodules(gix::status::Submodule::AsConfigured { check_dirty: true });
    // Kept only when this walk's proof is built on it; otherwise it goes to gix as it is.
    let base = match base {
        Some(index) if before.is_some() => {
            platform = platform.index(index.clone());
            Some(index)
        }
        Some(index) => {
            platform = platform.index(index);
            None
        }
        None => None,
    };
    let mut iter = platform.into_iter(None).map_err(gix_err)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for item in iter.by_ref() {
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
    // gix found stat data to refresh (it keeps which entries to itself, for writing the index).
    let stale = iter.outcome_mut().is_some_and(|o| o.has_changes());
    let refreshed = match (base, before) {
        (Some(index), Some((from, stats))) if stale => {
            let options = repo.stat_options().map_err(gix_err)?;
            Some(refresh(index, from, stats, &seen, options))
        }
        _ => None,
    };
    Ok((out, refreshed))
}

fn as_file(index: &gix::worktree::IndexPersistedOrInMemory) -> &gix::index::File {
    match index {
        gix::worktree::IndexPersistedOrInMemory::Persisted(shared) => shared,
        gix::worktree::IndexPersistedOrInMemory::InMemory(file) => file,
    }
}

/// The files' stat data, taken now (`None` for entries that are not plain files or links in
/// the worktree, or that cannot be read), and when: whatever changed from a second before that
/// on stays "racy" for the next walk, which reads it again (the second covers coarse
/// file-system clocks).
fn stat_all(root: &std::path::Path, index: &gix::index::File) -> Stats {
    use gix::index::entry::{Flags, Mode, Stat};
    use rayon::prelude::*;
    let taken = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let skip = Flags::SKIP_WORKTREE | Flags::ASSUME_VALID | Flags::INTENT_TO_ADD;
    let stats = index
        .entries()
        .par_iter()
        .map(|e| {
            let plain = matches!(e.mode, Mode::FILE | Mode::FILE_EXECUTABLE | Mode::SYMLINK);
            if !plain || e.flags.intersects(skip) || e.stage_raw() != 0 {
                return None;
            }
            let rela = gix::path::from_bstr(e.path(index)).ok()?;
            let meta = gix::index::fs::Metadata::from_path_no_follow(&root.join(rela)).ok()?;
            Stat::from_fs(&meta).ok()
        })
        .collect();
    Stats { taken, stats }
}

struct Stats {
    taken: std::time::SystemTime,
    stats: Vec<Option<gix::index::entry::Stat>>,
}

/// `index` with the stat data taken before a walk that found none of these files changed
/// (`changed` holds the paths it reported), dated to when they were taken.
fn refresh(
    index: gix::worktree::IndexPersistedOrInMemory,
    from: gix::hash::ObjectId,
    before: Stats,
    changed: &std::collections::BTreeSet<String>,
    options: gix::index::entry::stat::Options,
) -> Refreshed {
    let mut index = match index {
        gix::worktree::IndexPersistedOrInMemory::InMemory(file) => file,
        gix::worktree::IndexPersistedOrInMemory::Persisted(shared) => {
            gix::index::File::clone(&shared)
        }
    };
    // Stat data is compared to the second (nanoseconds only where git is built to use them):
    // a file changed again in the second its stat was taken, to the same size, with its mtime
    // put back, would look the same. The racy rule covers a recent mtime; a recent ctime is
    // left to the on-disk index's entry, so such a file is read again.
    let taken = before
        .taken
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (entries, paths) = index.entries_mut_and_pathbacking();
    for (entry, stat) in entries.iter_mut().zip(before.stats) {
        let Some(stat) = stat else { continue };
        if entry.stat.matches(&stat, options) || u64::from(stat.ctime.secs) >= taken {
            continue;
        }
        // As the walk spelled the paths it reported (lossily, for names that are not UTF-8).
        let path: &[u8] = entry.path_in(paths);
        let path = gix::bstr::ByteSlice::to_str_lossy(path);
        if changed.contains(path.as_ref()) {
            continue;
        }
        entry.stat = stat;
    }
    index.set_timestamp(filetime::FileTime::from_system_time(before.taken));
    Refreshed { from, index }
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
