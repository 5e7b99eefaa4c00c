//! Idle worktrees kept between batches (`--keep-worktrees`, `teleos.keepWorktrees`), so the
//! next batch starts without a full checkout and with its installed dependencies in place.
//!
//! A parked worktree lives at `<worktrees dir>/teleos-pool-<k>` on branch
//! `worktree/teleos-pool-<k>`, locked with a reason naming git-teleos, and is listed in the
//! manifest's top-level `teleos_pool` field (other tools keep unknown fields). Only a clean
//! worktree whose commits are all merged is parked, and only a clean one is adopted: the same
//! rule as clean-up, nothing unmerged is ever discarded.
//!
//! The pool is bounded (README, "Idle worktrees"): at most `teleos.poolMax` parked worktrees
//! (parking one more drops the oldest), and `clean-orphans`, including its quiet run before
//! every parallel batch, drops those parked longer than `teleos.poolIdleHours`, saving anything
//! found in them under `refs/teleos/rescue/pool/…` first.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::git::{self, ObjectId};
use crate::manifest::{Manifest, ManifestFile};

/// The manifest's top-level field listing parked worktrees.
pub const POOL_FIELD: &str = "teleos_pool";
const IDLE_REASON: &str = "git-teleos: idle worktree kept for reuse by the next batch";

use crate::batch::names::{pool_branch, pool_worktree_name as pool_name};

/// One parked worktree as the manifest lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parked {
    pub path: PathBuf,
    pub branch: String,
    /// Unix seconds when it was parked; `None` in entries written before the pool had an age.
    pub parked_at: Option<i64>,
}

/// The parked worktrees the manifest lists, oldest first.
pub fn parked(m: &Manifest) -> Vec<Parked> {
    m.extra
        .get(POOL_FIELD)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some(Parked {
                        path: PathBuf::from(e.get("path")?.as_str()?),
                        branch: e.get("branch")?.as_str()?.to_string(),
                        parked_at: e.get("parked_at").and_then(Value::as_i64),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The parked worktrees the manifest lists, as (path, branch).
pub fn entries(m: &Manifest) -> Vec<(PathBuf, String)> {
    parked(m).into_iter().map(|p| (p.path, p.branch)).collect()
}

fn set_entries(m: &mut Manifest, list: &[Parked]) {
    if list.is_empty() {
        m.extra.remove(POOL_FIELD);
        return;
    }
    let values: Vec<Value> = list
        .iter()
        .map(|p| {
            let mut v = json!({"path": p.path.to_string_lossy(), "branch": p.branch});
            if let Some(t) = p.parked_at {
                v["parked_at"] = json!(t);
            }
            v
        })
        .collect();
    m.extra.insert(POOL_FIELD.to_string(), Value::Array(values));
}

/// Bytes the files under `path` take on disk (`st_blocks` × 512, so sparse files and a
/// filesystem's block rounding count as they really are), symlinks not followed, hard links
/// counted once per link. Unreadable entries count as 0: this is a figure for `status`.
pub fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = path.symlink_metadata() else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        if let Ok(list) = std::fs::read_dir(path) {
            for e in list.flatten() {
                total += disk_bytes(&e.path());
            }
        }
    }
    total
}

/// Disk taken by one parked worktree: its folder and its admin folder (`<git dir>/worktrees/<id>`,
/// the index mostly; the id is the name it was made with, so it is found through the worktree).
pub fn worktree_disk_bytes(path: &Path) -> u64 {
    let admin = gix::open(path).ok().map(|wt| wt.git_dir().to_path_buf());
    disk_bytes(path) + admin.as_deref().map_or(0, disk_bytes)
}

/// Park the clean worktree at `path` (on `branch`) for the next batch. With `max` worktrees
/// parked already, the oldest are dropped first (as `clean-orphans` drops them, rescuing
/// anything found); `max == 0` parks nothing (the error says so).
pub fn park(
    repo: &gix::Repository,
    manifest: &ManifestFile,
    dir: &Path,
    path: &Path,
    branch: &str,
    max: usize,
) -> Result<PathBuf> {
    if max == 0 {
        return Err(Error::git(
            "the pool holds no worktree (teleos.poolMax = 0)",
        ));
    }
    manifest.update(|m| {
        let mut list = parked(m);
        while list.len() >= max {
            let oldest = list.remove(0);
            // One that cannot be dropped stays listed: parking this one would pass the cap.
            if drop_one(repo, dir, &oldest).is_err() {
                list.insert(0, oldest);
                set_entries(m, &list);
                return Err(Error::git(format!(
                    "the pool is full ({max}) and {} could not be dropped",
                    list[0].path.display()
                )));
            }
        }
        let k = (1..)
            .find(|k| {
                let p = dir.join(pool_name(*k));
                !list.iter().any(|q| q.path == p) && p.symlink_metadata().is_err()
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
        list.push(Parked {
            path: to.clone(),
            branch: new_branch,
            parked_at: Some(crate::manifest::now_unix()),
        });
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
        let mut list = parked(m);
        let linked = git::list_worktrees(repo)?;
        // The most recently parked first: it is the nearest to the integration tip.
        while let Some(Parked {
            path: from,
            branch: old_branch,
            ..
        }) = list.pop()
        {
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

/// A parked worktree dropped by [`drop_idle`], with the refs that keep anything found in it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Dropped {
    pub path: PathBuf,
    /// Unix seconds when it was parked, if known.
    pub parked_at: Option<i64>,
    pub rescued: Vec<String>,
}

/// Drop parked worktrees: all of them when `older_than` is `None`, else those parked more than
/// `older_than` seconds before `now` (an entry without a time gets `now`, starting its clock).
/// A parked worktree is clean and merged, but that is checked, not assumed: uncommitted
/// changes and commits on no other ref are kept under `refs/teleos/rescue/pool/<name>/` before
/// anything is removed. `dry_run` only lists them. One that cannot be dropped stays listed.
pub fn drop_idle(
    repo: &gix::Repository,
    manifest: &ManifestFile,
    dir: &Path,
    dry_run: bool,
    older_than: Option<i64>,
    now: i64,
) -> Result<(Vec<Dropped>, Vec<String>)> {
    // Nothing parked: no manifest write (which would create the folder where none was).
    if manifest.read()?.is_none_or(|m| parked(&m).is_empty()) {
        return Ok((Vec::new(), Vec::new()));
    }
    manifest.update(|m| {
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        let mut errors = Vec::new();
        for mut p in parked(m) {
            let due = match (older_than, p.parked_at) {
                (None, _) => true,
                (Some(age), Some(t)) => now - t > age,
                (Some(_), None) => {
                    p.parked_at = Some(now);
                    false
                }
            };
            // Never anything outside our folder, whatever the manifest says.
            if !due || !git::is_inside(&p.path, dir) {
                kept.push(p);
                continue;
            }
            if dry_run {
                dropped.push(Dropped {
                    path: p.path.clone(),
                    parked_at: p.parked_at,
                    rescued: Vec::new(),
                });
                kept.push(p);
                continue;
            }
            match drop_one(repo, dir, &p) {
                Ok(rescued) => dropped.push(Dropped {
                    path: p.path.clone(),
                    parked_at: p.parked_at,
                    rescued,
                }),
                Err(e) => {
                    errors.push(format!("idle worktree {}: {e}", p.path.display()));
                    kept.push(p);
                }
            }
        }
        set_entries(m, &kept);
        Ok((dropped, errors))
    })
}

/// Remove one parked worktree and its pool branch, saving first what would otherwise be lost.
/// Returns the rescue refs made (none for a clean, merged one).
fn drop_one(repo: &gix::Repository, dir: &Path, p: &Parked) -> Result<Vec<String>> {
    if !git::is_inside(&p.path, dir) {
        return Err(Error::git(format!(
            "{} is outside the worktrees folder",
            p.path.display()
        )));
    }
    let name = p
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unnamed".into());
    let base = crate::batch::names::pool_rescue_prefix(&name);
    let mut rescued = Vec::new();
    let registered = git::list_worktrees(repo)?
        .iter()
        .any(|w| git::worktree_path_eq(&w.path, &p.path));
    if registered {
        let mut snap = None;
        if p.path.exists() {
            let wt = gix::open(&p.path).map_err(Error::git)?;
            if let Some(id) =
                git::snapshot_uncommitted(&wt, "teleos: uncommitted work in an idle worktree")?
            {
                rescued.push(git::create_ref_unique(
                    repo,
                    &format!("{base}/uncommitted"),
                    id,
                )?);
                snap = Some(id);
            }
        }
        git::remove_worktree_rescued(repo, &p.path, snap)?;
    }
    let full = format!("refs/heads/{}", p.branch);
    if let Some(tip) = git::resolve_ref(repo, &full)? {
        let ours = |b: &str| b == p.branch;
        if git::delete_branch_guarded(repo, &p.branch, ours).is_err() {
            // Commits on no other ref (the guard's refusal): keep them, then delete.
            rescued.push(git::create_ref_unique(
                repo,
                &format!("{base}/commits"),
                tip,
            )?);
            git::delete_branch_guarded(repo, &p.branch, ours)?;
        }
    }
    Ok(rescued)
}
