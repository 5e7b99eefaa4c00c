//! Linked worktrees made and managed with gix, in the layout git itself uses
//! (`<common>/worktrees/<id>/{gitdir,HEAD,commondir,locked}` and a `.git` file in the checkout).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;
use gix::{ObjectId, Repository};

use super::gix_err;
use super::refs::{create_branch, delete_if_at};
use super::repo::common_dir;
use super::status::dirty_paths;
use crate::error::{Error, Result};

/// A linked worktree as `git worktree list --porcelain` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreeInfo {
    /// The checkout folder (absolute; may no longer exist).
    pub path: PathBuf,
    /// The admin folder name under `<common>/worktrees/`.
    pub id: String,
    /// Full name of the checked-out branch; `None` when detached or unreadable.
    pub branch: Option<String>,
    /// The commit checked out, if it can be read.
    pub head: Option<ObjectId>,
    /// The lock reason (possibly empty) when locked.
    pub locked: Option<String>,
    /// Its checkout is gone and it is not locked: `git worktree prune` would remove it.
    pub prunable: bool,
}

/// Create branch `branch` (short name) at `start` and a linked worktree at `path` checked out
/// on it. If the worktree cannot be made, the new branch is deleted again. Setting `cancel`
/// (Ctrl-C) stops the checkout part way, with the same clean-up.
pub fn add_worktree(
    repo: &Repository,
    path: &Path,
    branch: &str,
    start: ObjectId,
    cancel: &AtomicBool,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let full = format!("refs/heads/{branch}");
    let name = gix::refs::FullName::try_from(full.as_str()).map_err(gix_err)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        create_branch(repo, branch, start)?;
        let added = repo.add_worktree(
            path,
            gix::worktree::add::Head::Attached(name.clone()),
            gix::progress::Discard,
            cancel,
        );
        let Err(e) = added else {
            return Ok(());
        };
        // gix rolled back its files; undo our branch too, but only if it is still where we put it.
        let _ = delete_if_at(repo, &full, start);
        let message = super::error_chain(&e);
        // gix reads every admin folder to check the branch is not checked out elsewhere; one
        // that another thread is creating at that moment has no `gitdir` yet. Try again.
        let racing = message.contains("Failed to read or iterate worktree directories");
        if !racing || attempt >= 20 {
            return Err(Error::git(format!(
                "could not add worktree at {}: {message}",
                path.display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10 * attempt));
    }
}

/// Mark the worktree at `worktree_path` locked, as `git worktree lock --reason <reason>`.
pub fn lock_worktree(repo: &Repository, worktree_path: &Path, reason: &str) -> Result<()> {
    with_proxy(repo, worktree_path, |proxy| {
        proxy
            .set_lock(Some(reason.as_bytes().as_bstr()))
            .map_err(gix_err)
    })
}

/// Remove the lock of the worktree at `worktree_path` (no error if it was not locked).
pub fn unlock_worktree(repo: &Repository, worktree_path: &Path) -> Result<()> {
    with_proxy(repo, worktree_path, |proxy| {
        proxy.set_lock(None).map_err(gix_err)
    })
}

/// The linked worktrees of the repository (not the main one), sorted by id.
pub fn list_worktrees(repo: &Repository) -> Result<Vec<WorktreeInfo>> {
    let mut out = Vec::new();
    for proxy in repo.worktrees().map_err(gix_err)? {
        // An admin folder being written by a concurrent `add_worktree` (or left broken) has no
        // readable `gitdir` yet: it is not a worktree to list.
        let (Ok(id), Ok(path)) = (proxy.id().map(|i| i.to_string()), proxy.base()) else {
            continue;
        };
        let locked = proxy.lock_reason().map(|r| r.to_string());
        let prunable = proxy.is_prunable();
        let (branch, head) = match proxy.into_repo_with_possibly_inaccessible_worktree() {
            Ok(wt) => {
                let branch = wt
                    .head_name()
                    .ok()
                    .flatten()
                    .map(|n| n.as_bstr().to_string());
                let head = wt.head_id().ok().map(|id| id.detach());
                (branch, head)
            }
            Err(_) => (None, None),
        };
        out.push(WorktreeInfo {
            path,
            id,
            branch,
            head,
            locked,
            prunable,
        });
    }
    Ok(out)
}

/// Remove the linked worktree at `path` and its admin folder, keeping its branch. Refuses a
/// worktree with staged, unstaged or untracked changes (never discards work), and a locked one
/// unless `force_lock`.
pub fn remove_worktree(repo: &Repository, path: &Path, force_lock: bool) -> Result<()> {
    remove_worktree_with(repo, path, force_lock, None, None)
}

/// [`remove_worktree`], with the worktree's change record (`watch`: the check for changes
/// judges what changed since it was last proven clean) and a [`TrashBin`] that deletes its files
/// in the background once it is unregistered.
pub fn remove_worktree_with(
    repo: &Repository,
    path: &Path,
    force_lock: bool,
    watch: Option<&mut super::WorktreeWatch>,
    bin: Option<&TrashBin>,
) -> Result<()> {
    let proxy = find_proxy(repo, path)?;
    if proxy.is_locked() && !force_lock {
        let reason = proxy
            .lock_reason()
            .map(|r| r.to_string())
            .unwrap_or_default();
        return Err(Error::git(format!(
            "refusing to remove locked worktree {} (reason: {reason})",
            path.display()
        )));
    }
    let base = proxy.base().map_err(gix_err)?;
    // Our own check counts staged, unstaged and untracked changes; gix's OverrideLock would
    // discard them.
    let mut checked = false;
    if base.exists() {
        let wt = proxy.clone().into_repo().map_err(gix_err)?;
        let dirty = match watch {
            Some(w) => w.dirty_paths(&wt)?,
            None => dirty_paths(&wt)?,
        };
        if !dirty.is_empty() {
            return Err(Error::git(format!(
                "refusing to remove worktree {}: it has uncommitted changes ({})",
                path.display(),
                dirty.join(", ")
            )));
        }
        checked = true;
    }
    use gix::worktree::remove::Force;
    // gix's `Never` walks the whole worktree once more for the same answer (a second status
    // walk per worktree removed, the larger part of removing one): skipped after our walk,
    // except with submodules, whose populated checkouts only gix's check refuses.
    let submodules = base.join(".gitmodules").symlink_metadata().is_ok();
    if checked && !submodules {
        return remove_checked_clean(&proxy, &base, bin);
    }
    let force = match (force_lock, checked && !submodules) {
        (true, _) => Force::OverrideLock,
        (false, true) => Force::DiscardChanges,
        (false, false) => Force::Never,
    };
    proxy.remove(force, gix::progress::Discard).map_err(gix_err)
}

/// Folders named so hold a worktree that was proven clean and was being deleted: nothing in
/// them is unsaved, and `clean-orphans` deletes what a crash left of them.
pub const TRASH_PREFIX: &str = ".teleos-trash-";

/// Remove a worktree already proven clean (see [`unregister_and_delete`]).
fn remove_checked_clean(
    proxy: &gix::worktree::Proxy<'_>,
    base: &Path,
    bin: Option<&TrashBin>,
) -> Result<()> {
    unregister_and_delete(proxy.git_dir(), base, bin)
}

/// Trash folders being deleted on threads of their own (see [`TRASH_PREFIX`]). Once a
/// worktree is in the trash and unregistered, nothing of it is in anyone's way, so deleting
/// its files (most of the time removing a worktree takes) need not hold up what comes next,
/// such as landing. [`TrashBin::wait`], or dropping the bin, waits for them; a process that dies
/// first leaves trash folders that `clean-orphans` deletes.
#[derive(Default)]
pub struct TrashBin {
    pending: std::sync::Mutex<Vec<(PathBuf, std::thread::JoinHandle<Result<()>>)>>,
}

impl TrashBin {
    fn delete(&self, trash: PathBuf) -> Result<()> {
        let moved = trash.clone();
        let spawned = std::thread::Builder::new()
            .name("teleos-trash".into())
            .spawn(move || {
                crate::process::background_priority();
                remove_trash(&moved)
            });
        match spawned {
            Ok(handle) => {
                self.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((trash, handle));
                Ok(())
            }
            // No thread to be had: deleted here and now.
            Err(_) => remove_trash(&trash),
        }
    }

    /// Wait until every trash folder handed over is deleted; what could not be is returned.
    pub fn wait(&self) -> Vec<(PathBuf, Error)> {
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut failed = Vec::new();
        for (path, handle) in pending {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push((path, e)),
                Err(_) => failed.push((path, Error::git("the deleting thread panicked"))),
            }
        }
        failed
    }
}

impl Drop for TrashBin {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Delete a worktree whose content is saved or proven clean, so that a crash at any moment
/// leaves something `clean-orphans` can finish: deleting 20,000 files in place takes a while,
/// and a process killed half-way left a registered worktree with half its files, which looks
/// like a mass of deletions to rescue and cannot be opened once its `.git` file is gone.
/// Instead the folder is renamed into the trash at once (one atomic step), the registration
/// (`admin`) removed so git sees nothing, and the trash deleted last.
fn unregister_and_delete(admin: &Path, base: &Path, bin: Option<&TrashBin>) -> Result<()> {
    let trash = if base.exists() {
        let name = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let trash = base.with_file_name(format!(
            "{TRASH_PREFIX}{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::rename(base, &trash)
            .map_err(|e| Error::io(format!("moving {} aside", base.display()), e))?;
        Some(trash)
    } else {
        None
    };
    crate::fault::point("worktree-removal");
    std::fs::remove_dir_all(admin)
        .map_err(|e| Error::io(format!("removing {}", admin.display()), e))?;
    // As git and gix do: `<common>/worktrees` goes with its last worktree (fails if not empty).
    if let Some(parent) = admin.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    match (trash, bin) {
        (Some(t), Some(bin)) => bin.delete(t),
        (Some(t), None) => remove_trash(&t),
        (None, _) => Ok(()),
    }
}

/// Delete a trash folder (see [`TRASH_PREFIX`]).
pub fn remove_trash(trash: &Path) -> Result<()> {
    std::fs::remove_dir_all(trash)
        .map_err(|e| Error::io(format!("removing {}", trash.display()), e))
}

/// Remove a linked worktree whose uncommitted changes the caller has already saved: `rescued`
/// is the snapshot commit holding them (`snapshot_uncommitted`). Without it, a dirty worktree is
/// refused as by [`remove_worktree`]. Locks are overridden; the branch is kept.
pub fn remove_worktree_rescued(
    repo: &Repository,
    path: &Path,
    rescued: Option<ObjectId>,
) -> Result<()> {
    let proxy = find_proxy(repo, path)?;
    let base = proxy.base().map_err(gix_err)?;
    if base.exists() && rescued.is_none() {
        let wt = proxy.clone().into_repo().map_err(gix_err)?;
        let dirty = dirty_paths(&wt)?;
        // Dirty by the index but identical to HEAD on disk (a checkout cut short): nothing to lose.
        if !dirty.is_empty() && super::snapshot::differs_from_head_on_disk(&wt)? {
            return Err(Error::git(format!(
                "refusing to remove worktree {}: it has uncommitted changes ({}) that were not saved",
                path.display(),
                dirty.join(", ")
            )));
        }
    }
    if let Some(id) = rescued {
        // The proof of rescue must be a real object before anything is deleted.
        repo.find_commit(id).map_err(gix_err)?;
    }
    unregister_and_delete(proxy.git_dir(), &base, None)
}

/// Remove a linked worktree whose registration was cut short (the process died inside
/// `add_worktree`): gix writes the checkout's `.git` file and the admin folder before the admin
/// folder's `HEAD`, so such a worktree cannot be opened. It is removed only when its folder holds
/// nothing but that `.git` file: registration installs no tracked files and no agent ever starts
/// before `add_worktree` returns, so there is nothing in it to lose. Returns whether it was one.
pub fn remove_if_registration_cut_short(path: &Path) -> Result<bool> {
    let dot_git = path.join(".git");
    let Ok(link) = std::fs::read_to_string(&dot_git) else {
        return Ok(false);
    };
    let Some(admin) = link.trim().strip_prefix("gitdir:").map(str::trim) else {
        return Ok(false);
    };
    let admin = path.join(admin);
    if admin.join("HEAD").exists() {
        return Ok(false);
    }
    let entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    if entries.iter().any(|n| n != ".git") {
        return Ok(false);
    }
    std::fs::remove_dir_all(path)
        .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    if admin.is_dir() {
        std::fs::remove_dir_all(&admin)
            .map_err(|e| Error::io(format!("removing {}", admin.display()), e))?;
    }
    Ok(true)
}

/// Move a linked worktree's folder from `from` to `to`, as `git worktree move` does: the
/// folder is renamed and its admin folder's `gitdir` updated. Refuses a locked worktree and an
/// existing destination.
pub fn move_worktree(repo: &Repository, from: &Path, to: &Path) -> Result<()> {
    let proxy = find_proxy(repo, from)?;
    if proxy.is_locked() {
        return Err(Error::git(format!(
            "refusing to move locked worktree {}",
            from.display()
        )));
    }
    if to.symlink_metadata().is_ok() {
        return Err(Error::git(format!("{} already exists", to.display())));
    }
    let base = proxy.base().map_err(gix_err)?;
    let admin = proxy.git_dir().to_path_buf();
    std::fs::rename(&base, to)
        .map_err(|e| Error::io(format!("moving {} to {}", base.display(), to.display()), e))?;
    let target = normalize(to).join(".git");
    let gitdir = admin.join("gitdir");
    std::fs::write(&gitdir, format!("{}\n", target.display())).map_err(|e| {
        // Put the folder back so git still finds it where its admin folder says.
        let _ = std::fs::rename(to, &base);
        Error::io(format!("writing {}", gitdir.display()), e)
    })
}

/// Remove admin folders `<common>/worktrees/<id>` whose checkout is gone, as
/// `git worktree prune` does; locked ones are kept. Returns the pruned ids.
pub fn prune_worktrees(repo: &Repository) -> Result<Vec<String>> {
    let admin_root = common_dir(repo).join("worktrees");
    let entries = match std::fs::read_dir(&admin_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", admin_root.display()), e)),
    };
    let mut pruned = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", admin_root.display()), e))?;
        let admin = entry.path();
        if !admin.is_dir() || admin.join("locked").symlink_metadata().is_ok() {
            continue;
        }
        if checkout_is_gone(&admin) {
            std::fs::remove_dir_all(&admin)
                .map_err(|e| Error::io(format!("removing {}", admin.display()), e))?;
            pruned.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    pruned.sort();
    // git removes the folder when its last worktree is pruned.
    let _ = std::fs::remove_dir(&admin_root);
    Ok(pruned)
}

/// git's rule: no readable `gitdir` file, or the `.git` file it names does not exist.
fn checkout_is_gone(admin: &Path) -> bool {
    let Ok(content) = std::fs::read_to_string(admin.join("gitdir")) else {
        return true;
    };
    let target = PathBuf::from(content.trim_end_matches(['\n', '\r']));
    if target.as_os_str().is_empty() {
        return true;
    }
    // Relative links (worktree.useRelativePaths) are relative to the admin folder.
    let target = if target.is_absolute() {
        target
    } else {
        admin.join(target)
    };
    target.symlink_metadata().is_err()
}

fn with_proxy(
    repo: &Repository,
    path: &Path,
    f: impl FnOnce(&gix::worktree::Proxy<'_>) -> Result<()>,
) -> Result<()> {
    let proxy = find_proxy(repo, path)?;
    f(&proxy)
}

/// The registered linked worktree whose checkout is `path` (compared after resolving symlinks).
fn find_proxy<'r>(repo: &'r Repository, path: &Path) -> Result<gix::worktree::Proxy<'r>> {
    let wanted = normalize(path);
    for proxy in repo.worktrees().map_err(gix_err)? {
        let Ok(base) = proxy.base() else { continue };
        if normalize(&base) == wanted {
            return Ok(proxy);
        }
    }
    Err(Error::git(format!(
        "{} is not a linked worktree of this repository",
        path.display()
    )))
}

/// Whether two paths name the same worktree folder (after resolving `..` and symlinks).
pub fn worktree_path_eq(a: &Path, b: &Path) -> bool {
    normalize(a) == normalize(b)
}

/// Canonical form of a path that may no longer exist: canonicalize the longest existing prefix.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(canonical) = absolute.canonicalize() {
        return canonical;
    }
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => normalize(parent).join(name),
        _ => absolute,
    }
}

/// Whether `path` lies strictly inside `dir`, both compared after resolving `..` and symlinks
/// (a symlink inside `dir` that points elsewhere is outside).
pub fn is_inside(path: &Path, dir: &Path) -> bool {
    let (path, dir) = (normalize(path), normalize(dir));
    path != dir && path.starts_with(&dir)
}
