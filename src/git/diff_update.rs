//! Bringing a clean worktree from one commit to another by touching only the paths the two
//! trees differ in: a tree diff (which skips every subtree whose id is unchanged), gix's
//! checkout of just those entries, and an edit of the index in place. The cost follows the
//! change, not the size of the repository (only writing the index back is proportional to it).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use gix::bstr::{BStr, BString, ByteSlice};
use gix::diff::tree::recorder::Change;
use gix::index::entry::{Flags, Mode, Stat};
use gix::objs::tree::EntryKind;
use gix::{ObjectId, Repository};

use super::checkout::{on_disk_as_in_index, remove_file_and_empty_parents};
use super::gix_err;
use super::quick_status::KnownIndex;
use crate::error::Result;

/// What to write and remove, and the index it edits.
pub(super) struct DiffPlan {
    /// The worktree's index as on disk, which matches the old tree.
    index: gix::index::File,
    /// Files added or changed, with their new blob (or link, or mode).
    writes: Vec<(BString, ObjectId, Mode)>,
    /// Files no longer in the tree.
    removes: Vec<BString>,
}

fn index_mode(kind: EntryKind) -> Option<Mode> {
    match kind {
        EntryKind::Blob => Some(Mode::FILE),
        EntryKind::BlobExecutable => Some(Mode::FILE_EXECUTABLE),
        EntryKind::Link => Some(Mode::SYMLINK),
        EntryKind::Tree | EntryKind::Commit => None,
    }
}

/// Every component of `path` is one a checkout may write (no `.git`, `..`, or names some
/// filesystem would alias); the strictest rules, as a tree from anywhere may hold anything.
fn valid_path(path: &BStr, mode: Mode) -> bool {
    let parts: Vec<&[u8]> = path.split_str("/").collect();
    let last = parts.len().saturating_sub(1);
    parts.iter().enumerate().all(|(i, part)| {
        let link = (i == last && mode == Mode::SYMLINK)
            .then_some(gix::validate::path::component::Mode::Symlink);
        gix::validate::path::component(
            part.as_bstr(),
            link,
            gix::validate::path::component::Options {
                protect_windows: true,
                protect_ntfs: true,
                protect_hfs: true,
            },
        )
        .is_ok()
    })
}

/// The plan to move a worktree whose index and files match `old_tree` to `new_tree`, or `None`
/// when this way does not apply and the full update must decide: no index on disk, an index
/// that does not hold `old_tree`'s entries at the changed paths, a submodule, a path replaced
/// by a folder or the other way round, a changed `.gitattributes` (checkout filters read it),
/// or a path a checkout must not write.
/// `known`: the index as a check just read it, used instead of reading it again if the file
/// is still that one.
pub(super) fn plan_diff_update(
    repo: &Repository,
    old_tree: ObjectId,
    new_tree: ObjectId,
    known: Option<KnownIndex>,
) -> Result<Option<DiffPlan>> {
    // Read afresh unless known, our own copy to edit (the repository's shared one would be
    // cloned).
    let index = match known.and_then(|k| k.if_current(repo)) {
        Some(index) => index,
        None => match super::quick_status::load_index(repo) {
            Some(index) => index,
            None => return Ok(None),
        },
    };
    let records = super::history::tree_changes(repo, old_tree, new_tree)?;
    let mut writes = Vec::new();
    let mut removes = Vec::new();
    // The index must hold exactly the old entry (or none) where the trees differ.
    let holds = |path: &BStr, old: Option<(ObjectId, Mode)>| {
        let entry = index.entry_by_path_and_stage(path, gix::index::entry::Stage::Unconflicted);
        match (entry, old) {
            (Some(e), Some((id, mode))) => e.id == id && e.mode == mode,
            (None, None) => true,
            _ => false,
        }
    };
    for change in records {
        let (location, before, after) = match change {
            Change::Addition {
                path,
                entry_mode,
                oid,
                ..
            } => (path, None, Some((entry_mode, oid))),
            Change::Deletion {
                path,
                entry_mode,
                oid,
                ..
            } => (path, Some((entry_mode, oid)), None),
            Change::Modification {
                path,
                previous_entry_mode,
                previous_oid,
                entry_mode,
                oid,
            } => (
                path,
                Some((previous_entry_mode, previous_oid)),
                Some((entry_mode, oid)),
            ),
        };
        let is_tree = |side: &Option<(gix::objs::tree::EntryMode, ObjectId)>| {
            side.is_some_and(|(m, _)| m.is_tree())
        };
        let (tree_before, tree_after) = (is_tree(&before), is_tree(&after));
        if tree_before != tree_after && before.is_some() && after.is_some() {
            // A file became a folder or the other way round.
            return Ok(None);
        }
        if tree_before || tree_after {
            // A folder added, removed or changed: its files come as changes of their own.
            continue;
        }
        let name = location.rsplit_str("/").next().unwrap_or_default();
        if name == b".gitattributes" {
            return Ok(None);
        }
        let before = match before {
            Some((m, id)) => match index_mode(m.kind()) {
                Some(mode) => Some((id, mode)),
                None => return Ok(None),
            },
            None => None,
        };
        if !holds(location.as_bstr(), before) {
            return Ok(None);
        }
        match after {
            Some((m, id)) => {
                let Some(mode) = index_mode(m.kind()) else {
                    return Ok(None);
                };
                if !valid_path(location.as_bstr(), mode) {
                    return Ok(None);
                }
                writes.push((location, id, mode));
            }
            None => removes.push(location),
        }
    }
    Ok(Some(DiffPlan {
        index,
        writes,
        removes,
    }))
}

impl DiffPlan {
    /// The index this plan edits, as read from the worktree's index file.
    pub(super) fn index(&self) -> &gix::index::File {
        &self.index
    }

    /// Whether every file this plan writes or removes is exactly as the index says (absent
    /// where the index has no entry): applying it can then lose nothing. A `false` sends the
    /// caller to a full status walk.
    pub(super) fn touched_paths_match_index(&self, repo: &Repository, root: &Path) -> Result<bool> {
        let paths = self.writes.iter().map(|w| &w.0).chain(&self.removes);
        for path in paths {
            let Ok(rela) = gix::path::from_bstr(path.as_bstr()) else {
                return Ok(false);
            };
            let file = root.join(rela);
            let entry = self
                .index
                .entry_by_path_and_stage(path.as_bstr(), gix::index::entry::Stage::Unconflicted);
            if !on_disk_as_in_index(repo, &file, entry)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Remove the files gone from the tree, check out the changed ones with gix (filters and
    /// all), and put their entries, with fresh stat data, into the index. Returns the number
    /// of files written or removed.
    /// `lock`: the index lock, when the caller took it before planning (see [`IndexLock`]).
    pub(super) fn apply(
        self,
        repo: &Repository,
        root: &Path,
        cancel: &AtomicBool,
        lock: Option<IndexLock>,
    ) -> Result<usize> {
        let DiffPlan {
            mut index,
            writes,
            removes,
        } = self;
        for path in &removes {
            remove_file_and_empty_parents(root, &path.to_str_lossy())?;
        }
        let mut changed = gix::index::State::new(repo.object_hash());
        for (path, id, mode) in &writes {
            changed.dangerously_push_entry(
                Stat::default(),
                *id,
                Flags::empty(),
                *mode,
                path.as_bstr(),
            );
        }
        changed.sort_entries();
        // The unchanged `.gitattributes` files are on disk as in the index: read them there.
        super::checkout::checkout_entries(
            repo,
            &mut changed,
            root,
            gix::worktree::stack::state::attributes::Source::WorktreeThenIdMapping,
            cancel,
        )?;
        let touched = || {
            writes
                .iter()
                .map(|w| w.0.as_bstr())
                .chain(removes.iter().map(|p| p.as_bstr()))
        };
        // Found by binary search and flagged: the pass that drops them then only reads a flag
        // (hashing every path of the index to look it up in a set cost more than the rest).
        for path in touched() {
            if let Some(range) = index.entry_range(path) {
                for entry in &mut index.entries_mut()[range] {
                    entry.flags.insert(Flags::REMOVE);
                }
            }
        }
        index.remove_entries(|_, _, entry| entry.flags.contains(Flags::REMOVE));
        for entry in changed.entries() {
            index.dangerously_push_entry(
                entry.stat,
                entry.id,
                Flags::empty(),
                entry.mode,
                entry.path(&changed),
            );
        }
        index.sort_entries();
        // The cached trees of the folders on the way to a changed path describe old entries:
        // marked invalid, as git does when it edits the index. The others still hold (git's
        // next commit reuses them, and a valid root proves the index clean at once).
        if let Some(tree) = index.tree_mut() {
            for path in touched() {
                invalidate_cache_tree(tree, path);
            }
        }
        write_index(&index, skip_hash(repo), lock)?;
        Ok(writes.len() + removes.len())
    }
}

/// Mark the cache-tree node of every folder on the way to `path` invalid, the root included
/// (what git's `cache_tree_invalidate_path` does).
fn invalidate_cache_tree(tree: &mut gix::index::extension::Tree, path: &[u8]) {
    tree.num_entries = None;
    if let Some(slash) = path.find_byte(b'/') {
        let (dir, rest) = (&path[..slash], &path[slash + 1..]);
        if let Some(child) = tree.children.iter_mut().find(|c| c.name.as_slice() == dir) {
            invalidate_cache_tree(child, rest);
        }
    }
}

/// Whether git would write this repository's index without its trailing checksum (all zeroes
/// instead): `index.skipHash`, which `feature.manyFiles` turns on unless it is set (git's
/// `repo-settings.c`). Hashing a large index is a good part of writing it; git has read such
/// an index since 2.40, and older gits do not check the trailer outside `fsck`.
pub(super) fn skip_hash(repo: &Repository) -> bool {
    let config = repo.config_snapshot();
    config
        .boolean("index.skipHash")
        .or_else(|| config.boolean("feature.manyFiles"))
        .unwrap_or(false)
}

/// git's lock on a worktree's index (`index.lock`), held from before an update reads the index
/// until its new version is in place, so that no other git command changes the index (or
/// finds it half written) in between. Dropped unused, it is released and nothing changes.
pub(super) struct IndexLock(gix::lock::File);

impl IndexLock {
    /// Take the lock on `repo`'s index, waiting a little for another git command that holds
    /// it (an editor's `git status`, say) to finish.
    pub(super) fn acquire(repo: &Repository) -> Result<IndexLock> {
        Self::acquire_at(&repo.index_path())
    }

    fn acquire_at(path: &Path) -> Result<IndexLock> {
        gix::lock::File::acquire_to_update_resource(
            path,
            gix::lock::acquire::Fail::AfterDurationWithBackoff(std::time::Duration::from_secs(3)),
            None,
            0, // as gix's own index writer: the default permissions
        )
        .map(IndexLock)
        .map_err(|e| {
            crate::error::Error::git(format!(
                "cannot lock {}: {e} (another git command is using it; nothing was changed, run the command again once it is done)",
                path.display()
            ))
        })
    }
}

/// Write `index` to its file under git's lock (`lock` if the caller holds it already):
/// serialized in memory first and hashed in one pass (gix's own writer hashes each field as it
/// goes, several times slower on a large index). `skip_hash`: a null checksum, as
/// [`skip_hash`] says git would write.
pub(super) fn write_index(
    index: &gix::index::File,
    skip_hash: bool,
    lock: Option<IndexLock>,
) -> Result<()> {
    use std::io::Write as _;
    let state: &gix::index::State = index;
    let mut data = Vec::with_capacity(index.entries().len() * 96 + 1024);
    state
        .write_to(&mut data, gix::index::write::Options::default())
        .map_err(gix_err)?;
    let checksum = if skip_hash {
        index.object_hash().null()
    } else {
        let mut hasher = gix::hash::hasher(index.object_hash());
        hasher.update(&data);
        hasher.try_finalize().map_err(gix_err)?
    };
    let path = index.path();
    let IndexLock(mut lock) = match lock {
        Some(lock) => lock,
        None => IndexLock::acquire_at(path)?,
    };
    let written = lock
        .write_all(&data)
        .and_then(|()| lock.write_all(checksum.as_slice()));
    let failed = |e| crate::error::Error::io(format!("writing {}", path.display()), e);
    written.map_err(failed)?;
    lock.commit().map_err(|e| failed(e.error))?;
    Ok(())
}
