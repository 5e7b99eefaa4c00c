//! What every repository command needs: the repository, its work-tree root, the settings.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::settings::{Overrides, Settings};

use super::GlobalArgs;

pub struct Context {
    pub repo: gix::Repository,
    /// Root of the work tree the command was started in (a linked worktree's own root).
    pub root: PathBuf,
    /// Root of the main worktree: where the worktrees folder and its manifest live, whichever
    /// worktree a session starts from (the seed's tools expect it there).
    pub main_root: PathBuf,
    pub settings: Settings,
}

impl Context {
    /// Discover the repository from `-C` or the current directory and resolve settings once.
    pub fn open(global: &GlobalArgs, overrides: &Overrides) -> Result<Context> {
        let start = match &global.dir {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().map_err(|e| Error::io("current directory", e))?,
        };
        if !start.is_dir() {
            return Err(Error::usage(format!(
                "cannot change to '{}': no such directory",
                start.display()
            )));
        }
        let repo = discover(&start)?;
        let root = repo.workdir().map(Path::to_path_buf).ok_or_else(|| {
            Error::usage_hint(
                "this is a bare repository: there are no story files to read",
                "run git teleos inside a checkout",
            )
        })?;
        let settings = Settings::resolve(&repo.config_snapshot(), overrides)?;
        let main_root = crate::git::main_worktree_root(&repo).unwrap_or_else(|| root.clone());
        Ok(Context {
            repo,
            root,
            main_root,
            settings,
        })
    }

    /// The worktrees folder (holding the manifest), under the main worktree's root.
    pub fn worktrees_dir(&self) -> PathBuf {
        self.main_root.join(&self.settings.worktree_dir)
    }
}

fn discover(start: &Path) -> Result<gix::Repository> {
    crate::git::discover_gix(start)?.map_err(|_| Error::NotARepository {
        path: start.to_path_buf(),
    })
}
