//! Proving a worktree clean in one pass, without gix's full status: one read of each folder,
//! one `lstat` per tracked file relative to its folder, the index compared with `HEAD`'s tree
//! in memory. It only ever says "clean, certainly" or "not proven": whatever it cannot judge
//! exactly as the full walk would (a stat that differs, a racily clean entry whose content
//! does not hash the same, an untracked file that is not ignored, a nested repository, a
//! submodule, a conflict, an unusual config) sends the caller to the full walk, which decides.
//! So a leftover can never be missed here; it only costs the full walk to be reported.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gix::bstr::{BStr, BString, ByteSlice};
use gix::index::entry::{Mode, Stage, Stat};
use gix::Repository;

use super::repo::{head_commit_id, work_tree_root};

/// `true` only when the worktree certainly has no staged, unstaged or untracked (non-ignored)
/// change. `false` means "not proven": run the full status walk.
pub(super) fn proven_clean(repo: &Repository) -> bool {
    #[cfg(unix)]
    return check(repo).unwrap_or(false);
    // The stat fields read here are unix's: elsewhere the full walk always decides.
    #[cfg(not(unix))]
    return false;
}

#[cfg(unix)]
fn check(repo: &Repository) -> Option<bool> {
    let config = repo.config_snapshot();
    // Settings under which a file's kind or a name's case is not what it seems on disk.
    if config.boolean("core.ignoreCase") == Some(true)
        || config.boolean("core.fileMode") == Some(false)
        || config.boolean("core.symlinks") == Some(false)
        || config.string("core.fsmonitor").is_some()
    {
        return Some(false);
    }
    let root = work_tree_root(repo)?;
    let index = match repo.index_or_load_from_head_or_empty().ok()? {
        gix::worktree::IndexPersistedOrInMemory::Persisted(index) => index,
        gix::worktree::IndexPersistedOrInMemory::InMemory(_) => return Some(false),
    };
    let index: &gix::index::File = &index;
    if index.is_sparse() {
        return Some(false);
    }
    // Staged changes: the index must hold exactly HEAD's tree.
    let head = head_commit_id(repo).ok()??;
    let head_tree = super::history::commit_tree_id(repo, head).ok()?;
    let from_head = repo.index_from_tree(&head_tree).ok()?;
    if from_head.entries().len() != index.entries().len() {
        return Some(false);
    }
    for (a, b) in index.entries().iter().zip(from_head.entries()) {
        if a.id != b.id
            || a.mode != b.mode
            || a.stage() != Stage::Unconflicted
            || a.path(index) != b.path(&from_head)
            || !a.flags.is_empty() && !only_harmless_flags(a.flags)
        {
            return Some(false);
        }
    }
    let mut tracked: HashMap<&BStr, &gix::index::Entry> = HashMap::new();
    let mut tracked_dirs: HashSet<&BStr> = HashSet::new();
    for entry in index.entries() {
        if !matches!(
            entry.mode,
            Mode::FILE | Mode::FILE_EXECUTABLE | Mode::SYMLINK
        ) {
            return Some(false); // submodules: the full walk looks inside them
        }
        let path = entry.path(index);
        let mut p = path;
        while let Some(slash) = p.rfind_byte(b'/') {
            p = p[..slash].as_bstr();
            if !tracked_dirs.insert(p) {
                break;
            }
        }
        tracked.insert(path, entry);
    }
    let walk = Walk {
        repo,
        index,
        tracked: &tracked,
        tracked_dirs: &tracked_dirs,
        options: repo.stat_options().ok()?,
        excludes: std::cell::RefCell::new(
            repo.excludes(
                index,
                None,
                gix::worktree::stack::state::ignore::Source::WorktreeThenIdMappingIfNotSkipped,
            )
            .ok()?,
        ),
        seen: std::cell::Cell::new(0),
    };
    let clean = walk.dir(&root, BString::default(), true)?;
    // A tracked file never met in the folders is gone from disk.
    Some(clean && walk.seen.get() == tracked.len())
}

#[cfg(unix)]
/// Flags that do not change what status reports (the in-memory ones gix sets on load).
fn only_harmless_flags(flags: gix::index::entry::Flags) -> bool {
    use gix::index::entry::Flags;
    !flags.intersects(
        Flags::ASSUME_VALID | Flags::SKIP_WORKTREE | Flags::INTENT_TO_ADD | Flags::EXTENDED,
    )
}

#[cfg(unix)]
struct Walk<'a> {
    repo: &'a Repository,
    index: &'a gix::index::File,
    tracked: &'a HashMap<&'a BStr, &'a gix::index::Entry>,
    tracked_dirs: &'a HashSet<&'a BStr>,
    options: gix::index::entry::stat::Options,
    excludes: std::cell::RefCell<gix::AttributeStack<'a>>,
    /// Tracked files found on disk and unchanged.
    seen: std::cell::Cell<usize>,
}

#[cfg(unix)]
impl Walk<'_> {
    fn ignored(&self, rela: &BStr, is_dir: bool) -> Option<bool> {
        let mode = if is_dir { Mode::DIR } else { Mode::FILE };
        let mut stack = self.excludes.borrow_mut();
        let platform = stack.at_entry(rela, Some(mode)).ok()?;
        Some(platform.is_excluded())
    }

    /// Whether the folder at `dir` (`rela` in the worktree) holds nothing status would report.
    /// `None`: something could not be read; not proven.
    fn dir(&self, dir: &Path, rela: BString, in_tracked: bool) -> Option<bool> {
        for item in std::fs::read_dir(dir).ok()? {
            let item = item.ok()?;
            let name = item.file_name();
            let name = gix::path::os_str_into_bstr(&name).ok()?;
            if name == ".git" {
                if rela.is_empty() {
                    continue; // this worktree's own link to the repository
                }
                return Some(false); // a nested repository
            }
            let mut path = rela.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            let kind = item.file_type().ok()?;
            if kind.is_dir() {
                let tracked_dir = in_tracked && self.tracked_dirs.contains(path.as_bstr());
                if self.tracked.contains_key(path.as_bstr()) {
                    return Some(false); // a tracked file replaced by a folder
                }
                if !tracked_dir && self.ignored(path.as_bstr(), true)? {
                    continue;
                }
                if !self.dir(&item.path(), path, tracked_dir)? {
                    return Some(false);
                }
                continue;
            }
            match self.tracked.get(path.as_bstr()).filter(|_| in_tracked) {
                Some(entry) => {
                    let meta = item.metadata().ok()?; // lstat, relative to the open folder
                    if !self.unchanged(entry, &meta, &item.path()) {
                        return Some(false);
                    }
                    self.seen.set(self.seen.get() + 1);
                }
                None => {
                    if !self.ignored(path.as_bstr(), false)? {
                        return Some(false); // an untracked file
                    }
                }
            }
        }
        Some(true)
    }

    /// Whether the file is what the index entry records: same kind and mode, same stat data,
    /// and when the entry is racily clean (written in the second the index was), same content.
    fn unchanged(&self, entry: &gix::index::Entry, meta: &std::fs::Metadata, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let kind = meta.file_type();
        let kind_ok = match entry.mode {
            Mode::SYMLINK => kind.is_symlink(),
            Mode::FILE => kind.is_file() && meta.mode() & 0o100 == 0,
            Mode::FILE_EXECUTABLE => kind.is_file() && meta.mode() & 0o100 != 0,
            _ => false,
        };
        if !kind_ok {
            return false;
        }
        let time = |secs: i64, nsecs: i64| gix::index::entry::stat::Time {
            secs: secs as u32,
            nsecs: nsecs as u32,
        };
        let stat = Stat {
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            dev: meta.dev() as u32,
            ino: meta.ino() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size() as u32,
        };
        if !entry.stat.matches(&stat, self.options) {
            return false;
        }
        if entry.stat.is_racy(self.index.timestamp(), self.options) {
            // Changed within the index's own second: only the content can tell.
            return super::checkout::file_matches(self.repo, path, entry).unwrap_or(false);
        }
        true
    }
}
