//! Proving a worktree clean in one pass, without gix's full status: the index compared with
//! `HEAD`'s tree (through its cache-tree when that is valid), then one read of each folder and
//! one `lstat` per tracked file relative to its folder, on all cores. It only ever says "clean,
//! certainly" or "not proven": whatever it cannot judge exactly as the full walk would (a stat
//! that differs, a racily clean entry whose content does not hash the same, an untracked file
//! that is not ignored, a nested repository, a submodule, a conflict, an unusual config) sends
//! the caller to the full walk, which decides. So a leftover can never be missed here; it only
//! costs the full walk to be reported.
//!
//! The cost per tracked file is one `lstat` and a binary search in the index (no allocation):
//! the index's entries are sorted by path, so a folder's entries are one slice of them.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use gix::bstr::{BStr, BString, ByteSlice};
use gix::index::entry::{Mode, Stage, Stat};
use gix::{ObjectId, Repository};
use rayon::prelude::*;

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

/// The worktree's index read afresh, without verifying its trailing checksum (git does not
/// either, outside `fsck`: it guards against a torn disk write, not against a change).
/// `None` when there is no index file.
pub(super) fn load_index(repo: &Repository) -> Option<gix::index::File> {
    let path = repo.index_path();
    if !path.is_file() {
        return None;
    }
    gix::index::File::at(
        path,
        repo.object_hash(),
        true,
        gix::index::decode::Options::default(),
    )
    .ok()
}

/// An index as one check decoded it, kept for the next step in the same worktree (the update
/// to the next tip after a story's verification) so that it is not decoded again. It stands in
/// for a fresh load only while the file is provably the one it was decoded from: same length,
/// same modification time (gix's racy-clean checks read it), and the same trailing checksum,
/// which is the SHA-1 of everything before it; anything else, and the file is read afresh.
pub struct KnownIndex {
    index: gix::index::File,
    /// The file's length when its modification time was the decoded one; `None`: not reusable.
    len: Option<u64>,
}

impl KnownIndex {
    fn new(index: gix::index::File) -> Self {
        let len = std::fs::metadata(index.path())
            .ok()
            .filter(|m| modified_at(m, &index))
            .map(|m| m.len());
        Self { index, len }
    }

    /// The index, if `repo`'s index file is still exactly the one it was decoded from.
    pub(super) fn if_current(self, repo: &Repository) -> Option<gix::index::File> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        // An index written with `index.skipHash` (`feature.manyFiles`) ends in zeros whatever it
        // holds: it cannot be recognised, so it is read again each time (reuse is off there).
        let checksum = self.index.checksum().filter(|c| !c.is_null())?;
        let path = repo.index_path();
        if path != self.index.path() {
            return None;
        }
        let mut file = std::fs::File::open(&path).ok()?;
        let meta = file.metadata().ok()?;
        let len = meta.len();
        if Some(len) != self.len || !modified_at(&meta, &self.index) {
            return None;
        }
        let mut trailer = vec![0; checksum.as_slice().len()];
        file.seek(SeekFrom::End(-i64::try_from(trailer.len()).ok()?))
            .ok()?;
        file.read_exact(&mut trailer).ok()?;
        (trailer == checksum.as_slice()).then_some(self.index)
    }
}

/// Whether the file `meta` describes was last modified when `index` says its file was.
fn modified_at(meta: &std::fs::Metadata, index: &gix::index::File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let t = index.timestamp();
        t.unix_seconds() == meta.mtime() && i64::from(t.nanoseconds()) == meta.mtime_nsec()
    }
    // Only the unix checks make a `KnownIndex`; elsewhere it is never reused.
    #[cfg(not(unix))]
    {
        let _ = (meta, index);
        false
    }
}

/// Whether `index` (the worktree's, as read from its file) certainly holds exactly `HEAD`'s
/// tree (no staged change): through its cache-tree when valid, else entry by entry. `false`
/// also when it cannot tell.
pub(super) fn index_is_head(repo: &Repository, index: &gix::index::File) -> bool {
    #[cfg(unix)]
    return holds_head(repo, index).is_some();
    #[cfg(not(unix))]
    {
        let _ = (repo, index);
        false
    }
}

#[cfg(unix)]
/// Whether `index` holds exactly the entries of `tree`. A valid root cache-tree (the `TREE`
/// extension git keeps up to date on every index change, invalidating what an edit touches)
/// that names `tree` and counts every entry says so at once; otherwise the index is compared
/// with one built from the tree, entry by entry.
fn index_holds_tree(repo: &Repository, index: &gix::index::File, tree: ObjectId) -> Option<bool> {
    if let Some(cached) = index.tree() {
        let count = u32::try_from(index.entries().len()).ok()?;
        if cached.num_entries == Some(count) && cached.id == tree {
            return Some(true);
        }
    }
    let from_tree = repo.index_from_tree(&tree).ok()?;
    if from_tree.entries().len() != index.entries().len() {
        return Some(false);
    }
    Some(
        index
            .entries()
            .iter()
            .zip(from_tree.entries())
            .all(|(a, b)| a.id == b.id && a.mode == b.mode && a.path(index) == b.path(&from_tree)),
    )
}

#[cfg(unix)]
/// What both proofs first establish: settings under which the stat data means what it seems,
/// an index of plain unconflicted files that holds exactly `HEAD`'s tree. `None` (not proven)
/// otherwise.
struct Ground {
    root: std::path::PathBuf,
    index: gix::index::File,
    head: ObjectId,
}

#[cfg(unix)]
fn ground(repo: &Repository) -> Option<Ground> {
    let index = load_index(repo)?;
    let (root, head) = holds_head(repo, &index)?;
    Some(Ground { root, index, head })
}

#[cfg(unix)]
/// [`Ground`]'s conditions on an index already read: the worktree's root and `HEAD` if they
/// hold.
fn holds_head(
    repo: &Repository,
    index: &gix::index::File,
) -> Option<(std::path::PathBuf, ObjectId)> {
    let config = repo.config_snapshot();
    // Settings under which a file's kind or a name's case is not what it seems on disk.
    if config.boolean("core.ignoreCase") == Some(true)
        || config.boolean("core.fileMode") == Some(false)
        || config.boolean("core.symlinks") == Some(false)
        || config.string("core.fsmonitor").is_some()
    {
        return None;
    }
    let root = work_tree_root(repo)?;
    if index.is_sparse() {
        return None;
    }
    for entry in index.entries() {
        if entry.stage() != Stage::Unconflicted
            || !only_harmless_flags(entry.flags)
            // Submodules: the full walk looks inside them.
            || !matches!(
                entry.mode,
                Mode::FILE | Mode::FILE_EXECUTABLE | Mode::SYMLINK
            )
        {
            return None;
        }
    }
    // Staged changes: the index must hold exactly HEAD's tree.
    let head = head_commit_id(repo).ok()??;
    let head_tree = super::history::commit_tree_id(repo, head).ok()?;
    if !index_holds_tree(repo, index, head_tree)? {
        return None;
    }
    Some((root, head))
}

#[cfg(unix)]
fn check(repo: &Repository) -> Option<bool> {
    let Some(Ground { root, index, .. }) = ground(repo) else {
        return Some(false);
    };
    let walk = Walk {
        index: &index,
        options: repo.stat_options().ok()?,
        hash: repo.object_hash(),
        seen: AtomicUsize::new(0),
    };
    let untracked = walk.dir(&root, 0, index.entries(), true)?;
    // A tracked file never met in the folders is gone from disk.
    if walk.seen.load(Ordering::Relaxed) != index.entries().len() {
        return Some(false);
    }
    judge_untracked(repo, &index, &root, untracked, &mut |_, _| {})
}

/// The ignore rules as status applies them (`.gitignore` files read from the worktree).
pub(super) fn excludes<'r>(
    repo: &'r Repository,
    index: &gix::index::File,
) -> Option<gix::AttributeStack<'r>> {
    repo.excludes(
        index,
        None,
        gix::worktree::stack::state::ignore::Source::WorktreeThenIdMappingIfNotSkipped,
    )
    .ok()
}

#[cfg(unix)]
/// Whether every untracked name found is ignored, or a folder holding only ignored files (what
/// status does not report). `on_dir` is told each untracked folder that is not ignored itself,
/// before it is read (see [`Since::on_dir`]).
fn judge_untracked(
    repo: &Repository,
    index: &gix::index::File,
    root: &Path,
    untracked: Vec<(BString, bool)>,
    on_dir: &mut dyn FnMut(&BStr, bool),
) -> Option<bool> {
    if untracked.is_empty() {
        return Some(true);
    }
    // Untracked names are rare (build output, mostly ignored): judged one by one, here.
    let mut excludes = excludes(repo, index)?;
    let mut ignored = |rela: &BStr, is_dir: bool| -> Option<bool> {
        let mode = if is_dir { Mode::DIR } else { Mode::FILE };
        Some(excludes.at_entry(rela, Some(mode)).ok()?.is_excluded())
    };
    for (path, is_dir) in untracked {
        if ignored(path.as_bstr(), is_dir)? {
            continue;
        }
        if !is_dir {
            return Some(false); // an untracked file
        }
        on_dir(path.as_bstr(), true);
        let rela = gix::path::from_bstr(path.as_bstr()).ok()?;
        let dir = root.join(rela);
        if !untracked_dir_holds_only_ignored(&dir, path, &mut ignored)? {
            return Some(false);
        }
    }
    Some(true)
}

/// What [`proven_clean_since`] needs from the caller: the commit `HEAD` named when the worktree
/// was last proven clean, and every path written, created, removed or renamed in it since (as
/// told by the kernel). `on_dir` is told the folders to watch before their content is judged.
pub(crate) struct Since<'a> {
    pub base: ObjectId,
    /// Taken: the check adds the commits' paths to it.
    pub touched: std::collections::BTreeSet<BString>,
    /// `(folder, true)`: a new folder about to be read in full, with everything below it.
    /// `(folder, false)`: the folder of a file the commits changed, and the folders above it;
    /// it may be one nobody watched (a file forced in under an ignored folder), and later
    /// changes to that file must be seen.
    pub on_dir: &'a mut dyn FnMut(&BStr, bool),
}

/// `Some` only when the worktree is certainly clean, judging only the paths that can have
/// changed since it was last proven clean: those touched on disk since, and those whose index
/// entry changed (the tree diff from `base` to `HEAD`; the index is checked to hold `HEAD`'s
/// tree, and was `base`'s then). Every other file is as it was when it was clean. The cost
/// follows what changed, not the size of the worktree. `None`: not proven, run the full walk.
/// What comes back is the index the proof read, for the next step in the worktree to reuse.
pub(crate) fn proven_clean_since(repo: &Repository, since: Since<'_>) -> Option<KnownIndex> {
    #[cfg(unix)]
    return check_since(repo, since);
    #[cfg(not(unix))]
    return None;
}

#[cfg(unix)]
fn check_since(repo: &Repository, since: Since<'_>) -> Option<KnownIndex> {
    let Ground { root, index, head } = ground(repo)?;
    let mut paths = since.touched;
    if head != since.base {
        let old = super::history::commit_tree_id(repo, since.base).ok()?;
        let new = super::history::commit_tree_id(repo, head).ok()?;
        let changes = super::history::tree_changes(repo, old, new).ok()?;
        for path in changes.iter().filter_map(super::history::change_file_path) {
            if let Some(slash) = path.iter().rposition(|&b| b == b'/') {
                (since.on_dir)(path[..slash].as_bstr(), false);
            }
            paths.insert(path.to_owned());
        }
    }
    let walk = Walk {
        index: &index,
        options: repo.stat_options().ok()?,
        hash: repo.object_hash(),
        seen: AtomicUsize::new(0),
    };
    let mut untracked = Vec::new();
    // Folders read in full: what lies below them is judged already.
    let mut read: Vec<BString> = Vec::new();
    for path in &paths {
        let bytes: &[u8] = path.as_ref();
        let covered = read
            .iter()
            .any(|d| bytes.len() > d.len() && bytes.starts_with(d) && bytes[d.len()] == b'/');
        if covered {
            continue;
        }
        // The repository's own files, or rules that decide what is ignored: the full walk.
        let mut parts = bytes.split(|&b| b == b'/');
        if parts.clone().any(|c| c == b".git") || parts.next_back() == Some(b".gitignore") {
            return None;
        }
        let exact = index.entry_by_path(path.as_bstr());
        let mut prefix = path.clone();
        prefix.push(b'/');
        let below = index.prefixed_entries(prefix.as_bstr()).unwrap_or_default();
        let full = root.join(gix::path::from_bstr(path.as_bstr()).ok()?);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            // Gone: fine unless it was tracked (a deleted file or folder).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if exact.is_some() || !below.is_empty() {
                    return None;
                }
                continue;
            }
            // Not there as a folder (`a/b` where `a` is now a file): the full walk decides.
            Err(_) => return None,
        };
        if meta.is_dir() {
            if exact.is_some() {
                return None; // a tracked file replaced by a folder
            }
            if below.is_empty() {
                untracked.push((path.clone(), true));
            } else {
                (since.on_dir)(path.as_bstr(), true);
                let before = walk.seen.load(Ordering::Relaxed);
                untracked.extend(walk.dir(&full, prefix.len(), below, false)?);
                if walk.seen.load(Ordering::Relaxed) - before != below.len() {
                    return None; // a tracked file gone
                }
            }
            read.push(path.clone());
        } else if let Some(entry) = exact {
            if !walk.unchanged(entry, &meta, || full.clone()) {
                return None;
            }
        } else if !below.is_empty() {
            return None; // a tracked folder replaced by a file
        } else {
            untracked.push((path.clone(), false));
        }
    }
    judge_untracked(repo, &index, &root, untracked, since.on_dir)?.then(|| KnownIndex::new(index))
}

#[cfg(unix)]
/// Whether an untracked, not ignored folder holds nothing status would report: only ignored
/// files, or nothing (status does not list empty folders). A nested repository is reported.
fn untracked_dir_holds_only_ignored(
    dir: &Path,
    rela: BString,
    ignored: &mut impl FnMut(&BStr, bool) -> Option<bool>,
) -> Option<bool> {
    for item in std::fs::read_dir(dir).ok()? {
        let item = item.ok()?;
        let name = item.file_name();
        let name = gix::path::os_str_into_bstr(&name).ok()?;
        if name == ".git" {
            return Some(false);
        }
        let mut path = rela.clone();
        path.push(b'/');
        path.extend_from_slice(name);
        let is_dir = item.file_type().ok()?.is_dir();
        if ignored(path.as_bstr(), is_dir)? {
            continue;
        }
        if !is_dir || !untracked_dir_holds_only_ignored(&item.path(), path, ignored)? {
            return Some(false);
        }
    }
    Some(true)
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
/// The part of the walk that needs no repository handle, so that folders can be read on
/// several threads.
struct Walk<'a> {
    index: &'a gix::index::File,
    options: gix::index::entry::stat::Options,
    hash: gix::hash::Kind,
    /// Tracked files found on disk and unchanged.
    seen: AtomicUsize,
}

#[cfg(unix)]
/// Order of `path` against `name` followed by `/`, without building that string.
fn cmp_dir_prefix(path: &[u8], name: &[u8]) -> std::cmp::Ordering {
    let n = name.len().min(path.len());
    path[..n]
        .cmp(&name[..n])
        .then_with(|| match path.len().cmp(&name.len()) {
            std::cmp::Ordering::Less => std::cmp::Ordering::Less,
            std::cmp::Ordering::Equal => std::cmp::Ordering::Less, // "name" < "name/"
            std::cmp::Ordering::Greater => path[name.len()].cmp(&b'/'),
        })
}

#[cfg(unix)]
impl Walk<'_> {
    /// The part of an entry's path after the folder prefix of length `plen`.
    fn rel<'e>(&'e self, entry: &'e gix::index::Entry, plen: usize) -> &'e [u8] {
        let path: &[u8] = entry.path(self.index);
        path.get(plen..).unwrap_or_default()
    }

    /// The folder at `dir`, whose tracked files are `entries` (all the entries whose path
    /// starts with the folder's, which is `plen` bytes long with its `/`). Returns the
    /// untracked names found (path in the worktree, is a folder), or `None` when the folder is
    /// not proven clean: a tracked file differs, or something could not be read.
    fn dir(
        &self,
        dir: &Path,
        plen: usize,
        entries: &[gix::index::Entry],
        is_root: bool,
    ) -> Option<Vec<(BString, bool)>> {
        use std::os::unix::ffi::OsStrExt;
        let mut untracked = Vec::new();
        let mut subdirs = Vec::new();
        let untracked_path = |name: &[u8]| -> BString {
            let mut path = BString::from(dir_prefix(entries, self.index, plen));
            path.extend_from_slice(name);
            path
        };
        for item in std::fs::read_dir(dir).ok()? {
            let item = item.ok()?;
            let name = item.file_name();
            let name = name.as_bytes();
            if name == b".git" {
                if is_root {
                    continue; // this worktree's own link to the repository
                }
                return None; // a nested repository
            }
            let file = entries
                .binary_search_by(|e| self.rel(e, plen).cmp(name))
                .ok()
                .map(|i| &entries[i]);
            let kind = item.file_type().ok()?;
            if kind.is_dir() {
                if file.is_some() {
                    return None; // a tracked file replaced by a folder
                }
                let start =
                    entries.partition_point(|e| cmp_dir_prefix(self.rel(e, plen), name).is_lt());
                let rest = &entries[start..];
                let len = rest.partition_point(|e| cmp_dir_prefix(self.rel(e, plen), name).is_eq());
                if len == 0 {
                    untracked.push((untracked_path(name), true));
                } else {
                    subdirs.push((item.path(), plen + name.len() + 1, &rest[..len]));
                }
                continue;
            }
            match file {
                Some(entry) => {
                    let meta = item.metadata().ok()?; // lstat, relative to the open folder
                    if !self.unchanged(entry, &meta, || item.path()) {
                        return None;
                    }
                    self.seen.fetch_add(1, Ordering::Relaxed);
                }
                None => untracked.push((untracked_path(name), false)),
            }
        }
        let below: Vec<Vec<(BString, bool)>> = subdirs
            .par_iter()
            .map(|(path, plen, entries)| self.dir(path, *plen, entries, false))
            .collect::<Option<_>>()?;
        untracked.extend(below.into_iter().flatten());
        Some(untracked)
    }

    /// Whether the file is what the index entry records: same kind and mode, same stat data,
    /// and when the entry is racily clean (written in the second the index was), same content.
    fn unchanged(
        &self,
        entry: &gix::index::Entry,
        meta: &std::fs::Metadata,
        path: impl FnOnce() -> std::path::PathBuf,
    ) -> bool {
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
            return super::checkout::file_matches_as(self.hash, &path(), entry).unwrap_or(false);
        }
        true
    }
}

#[cfg(unix)]
/// The folder part (with its `/`, `plen` bytes) of the entries' paths; empty at the root.
fn dir_prefix<'a>(
    entries: &[gix::index::Entry],
    index: &'a gix::index::File,
    plen: usize,
) -> &'a [u8] {
    entries
        .first()
        .map(|e| {
            let path: &[u8] = e.path(index);
            &path[..plen.min(path.len())]
        })
        .unwrap_or_default()
}
