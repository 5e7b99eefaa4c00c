//! `git teleos hooks install|uninstall|status`: run clean-orphans from git hooks.

use std::io::Write;

use crate::error::Error;
use crate::git::hooks::{self, HookState, InstallOutcome, UninstallOutcome, HOOK_NAMES};
use crate::settings::Overrides;

use super::{out_err, Context, GlobalArgs};

/// Manage the git hooks that run `git teleos clean-orphans --quiet` after checkouts and merges.
#[derive(Debug, clap::Args)]
#[command(after_help = "The hooks are marked with `# >>> git-teleos >>>` / \
`# <<< git-teleos <<<` lines; anything else in them is yours and is kept as it is. \
core.hooksPath is honoured. The hook never fails a git command and returns at once when there is \
no session manifest.")]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Add the git-teleos block to the post-checkout and post-merge hooks.
    Install,
    /// Remove the git-teleos block, leaving the rest of each hook as it was.
    Uninstall,
    /// Show where the hooks are and whether the block is in them.
    Status,
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let ctx = Context::open(global, &Overrides::default())?;
    let dir = hooks::hooks_dir(&ctx.repo, &ctx.root);
    let mut out = std::io::stdout().lock();
    let source = if dir.from_hooks_path {
        " (from core.hooksPath)"
    } else {
        ""
    };
    writeln!(out, "hooks directory: {}{source}", dir.path.display()).map_err(out_err)?;
    for name in HOOK_NAMES {
        let what = match args.action {
            Action::Install => match hooks::install_hook(&dir.path, name)? {
                InstallOutcome::Created => "installed (new hook)",
                InstallOutcome::Added => "installed (added to your hook, which is kept)",
                InstallOutcome::Updated => "updated",
                InstallOutcome::Unchanged => "already installed",
            },
            Action::Uninstall => match hooks::uninstall_hook(&dir.path, name)? {
                UninstallOutcome::Deleted => "removed (the hook file was ours alone)",
                UninstallOutcome::Removed => "removed (the rest of your hook is kept)",
                UninstallOutcome::NotInstalled => "not installed",
            },
            Action::Status => match hooks::hook_state(&dir.path, name)? {
                HookState::Installed => "installed",
                HookState::UserOnly => "not installed (a hook of yours is there)",
                HookState::Missing => "not installed",
            },
        };
        writeln!(out, "{name}: {what}").map_err(out_err)?;
    }
    Ok(0)
}
