//! Finding the repository and reading where it lives and what is checked out.

use std::path::{Path, PathBuf};

use gix::{ObjectId, Repository};

use super::gix_err;
use crate::error::{Error, Result};

/// Open the repository containing `start`, from any subfolder and from linked worktrees, with
/// the settings of `git -c …` above every config file (see `config_env`).
pub fn discover(start: &Path) -> Result<Repository> {
    match discover_gix(start)? {
        Ok(repo) => Ok(repo),
        // gix classifies "no repository up to the root or ceiling" as not-found.
        Err(e) if e.is_not_found() => Err(Error::NotARepository {
            path: start.to_path_buf(),
        }),
        Err(e) => Err(gix_err(e)),
    }
}

/// gix's discovery with `git -c` settings as command-line overrides. The outer error is a
/// malformed `GIT_CONFIG_PARAMETERS`; the inner one gix's answer.
pub(crate) fn discover_gix(start: &Path) -> Result<gix::Result<Repository>> {
    use gix::sec::trust::DefaultForLevel;
    let overrides = super::config_env::cli_overrides()?;
    let options =
        |level| gix::open::Options::default_for_level(level).cli_overrides(overrides.clone());
    let trust_map = gix::sec::trust::Mapping {
        full: options(gix::sec::Trust::Full),
        reduced: options(gix::sec::Trust::Reduced),
    };
    Ok(
        gix::ThreadSafeRepository::discover_opts(start, Default::default(), trust_map)
            .map(Into::into),
    )
}

/// The absolute top folder of the worktree this handle was opened in; `None` when bare.
pub fn work_tree_root(repo: &Repository) -> Option<PathBuf> {
    repo.workdir().map(|dir| absolute(repo, dir))
}

/// The absolute common git folder (`.git` of the main worktree, shared by linked worktrees).
pub fn common_dir(repo: &Repository) -> PathBuf {
    absolute(repo, repo.common_dir())
}

/// The root of the main worktree (the one holding the `.git` folder), from any worktree of the
/// repository: shared state other tools expect there (the worktrees manifest) lives under it.
/// Falls back to this handle's own work tree when there is no main worktree (a bare repository
/// with linked worktrees).
pub fn main_worktree_root(repo: &Repository) -> Option<PathBuf> {
    // A linked worktree names it as `<main>/.git/worktrees/<name>/../..`: resolve the `..`.
    let mut common = PathBuf::new();
    for part in common_dir(repo).components() {
        match part {
            std::path::Component::ParentDir => {
                common.pop();
            }
            std::path::Component::CurDir => {}
            other => common.push(other),
        }
    }
    let from_common = (common.file_name() == Some(std::ffi::OsStr::new(".git")))
        .then(|| common.parent().map(Path::to_path_buf))
        .flatten()
        .filter(|root| root.is_dir());
    from_common.or_else(|| work_tree_root(repo))
}

/// The commit `HEAD` points at, or `None` on an unborn branch.
pub fn head_commit_id(repo: &Repository) -> Result<Option<ObjectId>> {
    let head = repo.head().map_err(gix_err)?;
    Ok(head.id().map(|id| id.detach()))
}

/// The full name (`refs/heads/…`) of the checked-out branch, or `None` when `HEAD` is detached.
pub fn current_branch(repo: &Repository) -> Result<Option<String>> {
    Ok(repo
        .head_name()
        .map_err(gix_err)?
        .map(|name| name.as_bstr().to_string()))
}

/// gix keeps paths as given when opened; anchor relative ones to the directory it captured then.
pub(crate) fn absolute(repo: &Repository, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        repo.current_dir().join(path)
    }
}
