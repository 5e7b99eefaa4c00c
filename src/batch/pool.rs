//! Idle worktrees kept between batches (`--keep-worktrees`, `teleos.keepWorktrees`), so the
//! next batch starts without a full checkout and with its installed dependencies in place.
//!
//! A parked worktree lives at `<worktrees dir>/teleos-pool-<k>` on branch
//! `worktree/teleos-pool-<k>`, locked with a reason naming git-teleos, and is listed in the
//! manifest's top-level `teleos_pool` field (other tools keep unknown fields). Only a clean
//! worktree whose commits are all merged is parked, and only a clean one is adopted: the same
//! rule as clean-up, nothing unmerged is ever discarded.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::git::{self, ObjectId};
use crate::manifest::{Manifest, ManifestFile};

/// The manifest's top-level field listing parked worktrees.
pub const POOL_FIELD: &str = "teleos_pool";
const IDLE_REASON: &str = "git-teleos: idle worktree kept for reuse by the next batch";

use crate::batch::names::{pool_branch, pool_worktree_name as pool_name};

/// The parked worktrees the manifest lists, as (path, branch).
pub fn entries(m: &Manifest) -> Vec<(PathBuf, String)> {
    m.extra
        .get(POOL_FIELD)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some((
                        PathBuf::from(e.get("path")?.as_str()?),
                        e.get("branch")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_entries(m: &mut Manifest, list: &[(PathBuf, String)]) {
    if list.is_empty() {
        m.extra.remove(POOL_FIELD);
        return;
    }
    let values: Vec<Value> = list
        .iter()
        .map(|(p, b)| json!({"path": p.to_string_lossy(), "branch": b}))
        .collect();
    m.extra.insert(POOL_FIELD.to_string(), Value::Array(values));
}

/// Park the clean worktree at `path` (on `branch`) for the next batch.
pub fn park(
    repo: &gix::Repository,
    manifest: &ManifestFile,
    dir: &Path,
    path: &Path,
    branch: &str,
) -> Result<PathBuf> {
    manifest.update(|m| {
        let mut list = entries(m);
        let k = (1..)
            .find(|k| {
                let p = dir.join(pool_name(*k));
                !list.iter().any(|(q, _)| q == &p) && p.symlink_metadata().is_err()
            })
            .unwrap_or(1);
        let (to, new_branch) = (dir.join(pool_name(k)), pool_branch(k));
        let wt = gix::open(path).map_err(Error::git)?;
        if !git::is_clean(&wt)? {
            return Err(Error::git(format!("{} is not clean", path.display())));
        }
        let head = git::head_commit_id(&wt)?.ok_or_else(|| Error::git("no HEAD"))?;
        git::unlock_worktree(repo, path)?;
        git::move_worktree(repo, path, &to)?;
        git::create_branch(repo, &new_branch, head)?;
        let moved = gix::open(&to).map_err(Error::git)?;
        git::set_head_branch(&moved, &new_branch)?;
        // Its commits are now on the pool branch too, so the guard lets it go.
        git::delete_branch_guarded(repo, branch, |b| b == branch)?;
        git::lock_worktree(repo, &to, IDLE_REASON)?;
        list.push((to.clone(), new_branch));
        set_entries(m, &list);
        Ok(to)
    })
}

/// Take a parked worktree for `path` on a new `branch`, or `None` if none is usable. The
/// worktree keeps its files (and ignored dependency folders); the caller brings it to `start`.
pub fn adopt(
    repo: &gix::Repository,
    manifest: &ManifestFile,
    dir: &Path,
    path: &Path,
    branch: &str,
) -> Result<bool> {
    manifest.update(|m| {
        let mut list = entries(m);
        let linked = git::list_worktrees(repo)?;
        while let Some((from, old_branch)) = list.pop() {
            // Only a registered, clean worktree of ours inside the worktrees folder will do;
            // anything else is dropped from the list (and left on disk for the user).
            let usable = git::is_inside(&from, dir)
                && linked.iter().any(|w| {
                    git::worktree_path_eq(&w.path, &from)
                        && w.branch.as_deref() == Some(&format!("refs/heads/{old_branch}"))
                })
                && gix::open(&from)
                    .ok()
                    .is_some_and(|r| git::is_clean(&r).unwrap_or(false));
            if !usable {
                continue;
            }
            let head: ObjectId = git::head_commit_id(&gix::open(&from).map_err(Error::git)?)?
                .ok_or_else(|| Error::git("no HEAD"))?;
            git::unlock_worktree(repo, &from)?;
            git::move_worktree(repo, &from, path)?;
            git::create_branch(repo, branch, head)?;
            let moved = gix::open(path).map_err(Error::git)?;
            git::set_head_branch(&moved, branch)?;
            git::delete_branch_guarded(repo, &old_branch, |b| b == old_branch)?;
            set_entries(m, &list);
            return Ok(true);
        }
        set_entries(m, &list);
        Ok(false)
    })
}

/// Remove every parked worktree that is still clean, with its pool branch (its commits are
/// merged: the guard refuses otherwise). Returns the removed paths; `dry_run` only lists them.
pub fn drop_idle(
    repo: &gix::Repository,
    manifest: &ManifestFile,
    dir: &Path,
    dry_run: bool,
) -> Result<Vec<PathBuf>> {
    manifest.update(|m| {
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for (path, branch) in entries(m) {
            if !git::is_inside(&path, dir) {
                kept.push((path, branch));
                continue;
            }
            if dry_run {
                removed.push(path.clone());
                kept.push((path, branch));
                continue;
            }
            // Locked by us as idle; `remove_worktree` still refuses anything uncommitted.
            match git::remove_worktree(repo, &path, true)
                .and_then(|_| git::delete_branch_guarded(repo, &branch, |b| b == branch))
            {
                Ok(()) => removed.push(path),
                Err(_) => kept.push((path, branch)),
            }
        }
        set_entries(m, &kept);
        Ok(removed)
    })
}
