//! A worktree watched by the kernel (inotify), so that proving it clean after a story costs what
//! the story changed, not what the repository holds.
//!
//! Once a worktree is known clean (checked out just now, or proven by the full walk), every
//! folder in it that status could report anything in is watched. After a story, the paths the
//! kernel reported as written, created, removed or renamed since, together with those whose
//! index entry changed (the tree diff between the two `HEAD`s), are all that can differ from
//! the clean state: `quick_status::proven_clean_since` judges just those. Whenever the record
//! cannot be complete (the kernel's queue overflowed, a folder was renamed, a watch could not be
//! added, the rules deciding what is ignored changed, or the check was not conclusive), the full
//! walk decides, exactly as without a watch, and the watch starts over. So a leftover is never
//! missed because of the watch; at worst the watch saves nothing.
//!
//! What inotify cannot see is a write through another name of the same file (a hard link made
//! outside the worktree). A file opened for writing here is always seen, even when written
//! through a memory map: closing it is an event, and the check runs after the agent exited.

use gix::Repository;

use crate::error::Result;

/// A worktree's change record; see the module documentation. Without kernel support (not
/// Linux, or watches refused) every check is the full walk.
pub struct WorktreeWatch {
    #[cfg(target_os = "linux")]
    state: Option<linux::State>,
}

impl WorktreeWatch {
    /// Start watching the worktree of `repo`. `clean`: it is certainly clean now (a checkout
    /// made just now, nothing run in it since); otherwise the first check is the full walk.
    pub fn start(repo: &Repository, clean: bool) -> Self {
        #[cfg(target_os = "linux")]
        return Self {
            state: linux::State::start(repo, clean),
        };
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (repo, clean);
            Self {}
        }
    }

    /// Whether the kernel watches this worktree (for tests and messages).
    pub fn is_active(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.state.is_some();
        #[cfg(not(target_os = "linux"))]
        return false;
    }

    /// How many checks the full walk made (the first one, and every one the record could not
    /// decide); the others judged only what changed. For tests and diagnostics.
    pub fn full_walks(&self) -> usize {
        #[cfg(target_os = "linux")]
        return self.state.as_ref().map_or(0, |s| s.full_walks);
        #[cfg(not(target_os = "linux"))]
        return 0;
    }

    /// The index the last [`Self::dirty_paths`] read to prove the worktree clean from what
    /// changed (`None` after a full walk), for the update that follows: it is used only if the
    /// index file is still the one it was decoded from (see [`super::KnownIndex`]).
    pub fn take_proven_index(&mut self) -> Option<super::KnownIndex> {
        #[cfg(target_os = "linux")]
        return self.state.as_mut().and_then(|s| s.proven_index.take());
        #[cfg(not(target_os = "linux"))]
        return None;
    }

    /// What [`super::dirty_paths`] says, proven from the paths changed since the last check when
    /// that is conclusive, else by the full walk.
    pub fn dirty_paths(&mut self, repo: &Repository) -> Result<Vec<String>> {
        #[cfg(target_os = "linux")]
        if let Some(state) = &mut self.state {
            return state.dirty_paths(repo);
        }
        super::dirty_paths(repo)
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{BTreeSet, HashMap};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use gix::bstr::{BStr, BString, ByteSlice};
    use gix::{ObjectId, Repository};
    use inotify::{EventMask, Inotify, WatchMask};

    use crate::error::Result;
    use crate::git::quick_status::{self, Since};

    /// Most folders watched in one worktree; beyond it the full walk is cheaper than the
    /// watches' kernel memory (each pins its folder's inode).
    const MAX_WATCHES: usize = 50_000;

    /// Everything that can change what status reports about a file.
    fn mask() -> WatchMask {
        WatchMask::MODIFY
            | WatchMask::ATTRIB
            | WatchMask::CLOSE_WRITE
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::DELETE_SELF
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::MOVE_SELF
            | WatchMask::DONT_FOLLOW
            | WatchMask::ONLYDIR
    }

    /// A file's identity and times: any write or replacement changes it.
    type Stamp = (i64, i64, i64, i64, u64, u64);

    fn stamp(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some((
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.size(),
            m.ino(),
        ))
    }

    /// The ignore rules outside the worktree's own `.gitignore` files (which are watched like
    /// any file): `info/exclude` and the user's excludes file, each with its stamp.
    fn ignore_sources(repo: &Repository) -> Vec<(PathBuf, Option<Stamp>)> {
        let mut paths = vec![crate::git::common_dir(repo).join("info").join("exclude")];
        match repo.config_snapshot().trusted_path("core.excludesFile") {
            Ok(Some(p)) => paths.push(p),
            // Unreadable: an empty name never matches, so the next check goes to the full walk.
            Err(_) => paths.push(PathBuf::new()),
            Ok(None) => {
                if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
                    paths.push(PathBuf::from(d).join("git").join("ignore"));
                } else if let Some(h) = std::env::var_os("HOME") {
                    paths.push(PathBuf::from(h).join(".config").join("git").join("ignore"));
                }
            }
        }
        // Named as the file system resolves them: the same repository opened another way
        // (through a worktree's proxy, say) spells its folders differently.
        paths
            .into_iter()
            .map(|p| {
                let p = std::fs::canonicalize(&p).unwrap_or(p);
                let s = stamp(&p);
                (p, s)
            })
            .collect()
    }

    /// The worktree as it was last proven clean.
    struct Proof {
        head: ObjectId,
        sources: Vec<(PathBuf, Option<Stamp>)>,
    }

    pub(super) struct State {
        inotify: Inotify,
        root: PathBuf,
        /// Watched folders by watch descriptor: path relative to the root ("" for the root).
        dirs: HashMap<i32, BString>,
        root_wd: i32,
        /// Paths reported since the last proof.
        touched: BTreeSet<BString>,
        /// Events were lost or paths went stale: the record is incomplete.
        broken: bool,
        proof: Option<Proof>,
        /// The index the last check read, when it proved the worktree clean.
        pub(super) proven_index: Option<quick_status::KnownIndex>,
        buf: Vec<u8>,
        pub(super) full_walks: usize,
    }

    impl State {
        pub(super) fn start(repo: &Repository, clean: bool) -> Option<Self> {
            let root = crate::git::work_tree_root(repo)?;
            let mut state = Self {
                inotify: Inotify::init().ok()?,
                root,
                dirs: HashMap::new(),
                root_wd: -1,
                touched: BTreeSet::new(),
                broken: false,
                proof: None,
                proven_index: None,
                buf: vec![0; 64 * 1024],
                full_walks: 0,
            };
            state.watch_all(repo)?;
            if clean {
                state.proof = Some(Proof {
                    head: crate::git::head_commit_id(repo).ok()??,
                    sources: ignore_sources(repo),
                });
            }
            Some(state)
        }

        /// Watch every folder status could report something in: those holding tracked files,
        /// and untracked ones that are not ignored (with everything below them). Ignored folders
        /// (`node_modules`, `target`) stay unwatched: nothing in them is reported unless the
        /// ignore rules change, which sends the check to the full walk.
        fn watch_all(&mut self, repo: &Repository) -> Option<()> {
            let index = quick_status::load_index(repo)?;
            let mut excludes = quick_status::excludes(repo, &index)?;
            self.root_wd = self.add(BString::default())?;
            let mut pending = vec![BString::default()];
            while let Some(rel) = pending.pop() {
                let dir = self.abs(rel.as_bstr())?;
                let Ok(items) = std::fs::read_dir(&dir) else {
                    continue; // gone meanwhile: its parent's event says so
                };
                for item in items.flatten() {
                    if !item.file_type().is_ok_and(|t| t.is_dir()) {
                        continue;
                    }
                    let name = item.file_name();
                    if name == ".git" {
                        continue;
                    }
                    let child = join(rel.as_bstr(), name.as_bytes());
                    let mut prefix = child.clone();
                    prefix.push(b'/');
                    if index.prefixed_entries(prefix.as_bstr()).is_some() {
                        self.add(child.clone())?;
                        pending.push(child);
                        continue;
                    }
                    let ignored = excludes
                        .at_entry(child.as_bstr(), Some(gix::index::entry::Mode::DIR))
                        .ok()?
                        .is_excluded();
                    if !ignored {
                        self.watch_tree(child.as_bstr())?;
                    }
                }
            }
            Some(())
        }

        /// Watch `rel` and every folder below it.
        fn watch_tree(&mut self, rel: &BStr) -> Option<()> {
            let mut pending = vec![rel.to_owned()];
            while let Some(rel) = pending.pop() {
                if self.add(rel.clone()).is_none() {
                    // Gone already (its parent's event covers it), or no watch to be had.
                    if self.broken {
                        return None;
                    }
                    continue;
                }
                let Ok(items) = std::fs::read_dir(self.abs(rel.as_bstr())?) else {
                    continue;
                };
                for item in items.flatten() {
                    let name = item.file_name();
                    if name != ".git" && item.file_type().is_ok_and(|t| t.is_dir()) {
                        pending.push(join(rel.as_bstr(), name.as_bytes()));
                    }
                }
            }
            Some(())
        }

        /// Watch `rel` and every folder above it (adding a watch that exists is a no-op to
        /// the kernel), not what lies below.
        fn watch_chain(&mut self, rel: &BStr) -> Option<()> {
            let mut dir: &[u8] = rel.as_ref();
            loop {
                if self.add(BString::from(dir)).is_none() && self.broken {
                    return None;
                }
                match dir.iter().rposition(|&b| b == b'/') {
                    Some(slash) => dir = &dir[..slash],
                    None => return Some(()),
                }
            }
        }

        fn add(&mut self, rel: BString) -> Option<i32> {
            if self.dirs.len() >= MAX_WATCHES {
                self.broken = true;
                return None;
            }
            match self.inotify.watches().add(self.abs(rel.as_bstr())?, mask()) {
                Ok(wd) => {
                    let id = wd.get_watch_descriptor_id();
                    self.dirs.insert(id, rel);
                    Some(id)
                }
                Err(e) => {
                    // A folder removed meanwhile is reported by its parent; any other refusal
                    // (the user's watch limit) leaves a hole in the record.
                    if e.kind() != std::io::ErrorKind::NotFound {
                        self.broken = true;
                    }
                    None
                }
            }
        }

        fn abs(&self, rel: &BStr) -> Option<PathBuf> {
            if rel.is_empty() {
                return Some(self.root.clone());
            }
            Some(self.root.join(gix::path::from_bstr(rel).ok()?.as_ref()))
        }

        /// Take every event queued so far into `touched`.
        fn drain(&mut self) {
            loop {
                let events = match self.inotify.read_events(&mut self.buf) {
                    Ok(events) => events,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(_) => {
                        self.broken = true;
                        return;
                    }
                };
                for event in events {
                    let wd = event.wd.get_watch_descriptor_id();
                    let mask = event.mask;
                    if mask.contains(EventMask::Q_OVERFLOW) {
                        self.broken = true;
                        continue;
                    }
                    if mask.contains(EventMask::IGNORED) {
                        // The folder is gone (its parent reported it) or was unmounted.
                        self.dirs.remove(&wd);
                        if wd == self.root_wd {
                            self.broken = true;
                        }
                        continue;
                    }
                    if mask.intersects(EventMask::MOVE_SELF | EventMask::DELETE_SELF) {
                        // A moved folder's watches now name the wrong paths; the root itself
                        // going away leaves nothing to record.
                        if mask.contains(EventMask::MOVE_SELF) || wd == self.root_wd {
                            self.broken = true;
                        }
                        continue;
                    }
                    let (Some(dir), Some(name)) = (self.dirs.get(&wd), event.name) else {
                        continue;
                    };
                    if mask.contains(EventMask::ISDIR) && mask.contains(EventMask::MOVED_FROM) {
                        self.broken = true;
                        continue;
                    }
                    let path = join(dir.as_bstr(), name.as_bytes());
                    self.touched.insert(path);
                }
            }
        }

        pub(super) fn dirty_paths(&mut self, repo: &Repository) -> Result<Vec<String>> {
            self.drain();
            self.proven_index = None;
            let head = crate::git::head_commit_id(repo).ok().flatten();
            let base = self.proof.as_ref().map(|p| p.head);
            // Read once: compared now, and kept as the new proof's if this check proves it.
            let sources = ignore_sources(repo);
            let sources_same = self.proof.as_ref().is_some_and(|p| p.sources == sources);
            if let (false, true, Some(base), Some(head)) = (self.broken, sources_same, base, head) {
                // A folder read in full is watched first, so that nothing written into it
                // after it was read goes unseen.
                let proven = quick_status::proven_clean_since(
                    repo,
                    Since {
                        base,
                        touched: std::mem::take(&mut self.touched),
                        on_dir: &mut |d: &BStr, whole: bool| {
                            let watched = if whole {
                                self.watch_tree(d)
                            } else {
                                self.watch_chain(d)
                            };
                            if watched.is_none() {
                                self.broken = true;
                            }
                        },
                    },
                );
                if proven.is_some() && !self.broken {
                    self.proven_index = proven;
                    self.proof = Some(Proof { head, sources });
                    return Ok(Vec::new());
                }
            }
            // The full walk decides, and the record starts over from what it proves, with
            // every watch made afresh first: whatever sent the check here (lost events, ignore
            // rules that changed, a touched `.gitignore`) may have left a folder that is no
            // longer ignored unwatched.
            self.restart(repo);
            self.touched.clear();
            self.proof = None;
            self.full_walks += 1;
            let dirty = crate::git::dirty_paths(repo)?;
            if let (true, Some(head)) = (dirty.is_empty(), head) {
                // The ignore rules as read before the walk: one edited during it no longer
                // matches, and the next check walks in full again.
                self.proof = Some(Proof { head, sources });
            }
            Ok(dirty)
        }

        /// A new record: every watch made afresh before the full walk runs, so that nothing
        /// written after the walk passed a folder goes unseen.
        fn restart(&mut self, repo: &Repository) {
            let Ok(inotify) = Inotify::init() else {
                return;
            };
            self.inotify = inotify;
            self.dirs.clear();
            self.broken = false;
            if self.watch_all(repo).is_none() {
                self.broken = true;
            }
        }
    }

    fn join(dir: &BStr, name: &[u8]) -> BString {
        let mut path = BString::from(dir.as_bytes());
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        path
    }
}
