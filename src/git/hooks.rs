//! Our block in the repository's git hooks, between marker lines, beside whatever the user's
//! hooks already hold: install adds or refreshes the block, uninstall takes it out and leaves
//! the rest byte for byte as it was.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gix::Repository;

use super::repo::common_dir;
use crate::error::{Error, Result};

/// The hooks we install: after a checkout (switching branches, `git worktree add`) and after a
/// merge (`git pull`) are the moments a user is back in the repository.
pub const HOOK_NAMES: &[&str] = &["post-checkout", "post-merge"];

pub const BEGIN_MARKER: &str = "# >>> git-teleos >>>";
pub const END_MARKER: &str = "# <<< git-teleos <<<";
/// In the block of a hook file that we created, so uninstall may delete the file again.
const CREATED_NOTE: &str = "# (git-teleos created this file)";
const SHEBANG: &str = "#!/bin/sh\n";

/// The block's body. It runs in a subshell that cannot end the user's hook early, fails
/// nothing (`|| true`, stdin closed), and returns at once when there is no manifest, before
/// any git-teleos process starts.
const BODY: &str = r#"# Cleans up orphaned git-teleos sessions; `git teleos hooks uninstall` removes this block.
# Never fails the git command, and does nothing when there is no session manifest.
( top=$(git rev-parse --show-toplevel 2>/dev/null) || exit 0
  dir=$(git config --get teleos.worktreeDir 2>/dev/null) || dir=.claude/worktrees
  case "$dir" in /*) ;; *) dir="$top/$dir" ;; esac
  [ -f "$dir/manifest.json" ] || exit 0
  git teleos clean-orphans --quiet </dev/null
) || true
"#;

/// Where the hooks live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksDir {
    pub path: PathBuf,
    /// Set by `core.hooksPath` (rather than `<common git dir>/hooks`).
    pub from_hooks_path: bool,
}

/// `core.hooksPath` (relative to `root`, `~/` expanded) or the common git dir's `hooks`, which
/// linked worktrees share.
pub fn hooks_dir(repo: &Repository, root: &Path) -> HooksDir {
    let configured = repo
        .config_snapshot()
        .string("core.hooksPath")
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty());
    match configured {
        Some(v) => {
            let path = match (v.strip_prefix("~/"), std::env::var_os("HOME")) {
                (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => root.join(v),
            };
            HooksDir {
                path,
                from_hooks_path: true,
            }
        }
        None => HooksDir {
            path: common_dir(repo).join("hooks"),
            from_hooks_path: false,
        },
    }
}

/// A hook file's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookState {
    Missing,
    /// The user's hook, without our block.
    UserOnly,
    Installed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallOutcome {
    Created,
    /// Added to the user's existing hook.
    Added,
    /// Our block was there but different; refreshed.
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UninstallOutcome {
    /// The file was ours alone and is gone.
    Deleted,
    /// Our block was taken out; the user's content stays.
    Removed,
    NotInstalled,
}

pub fn hook_state(dir: &Path, name: &str) -> Result<HookState> {
    Ok(match read_hook(&dir.join(name))? {
        None => HookState::Missing,
        Some(text) if find_block(&text).is_some() => HookState::Installed,
        Some(_) => HookState::UserOnly,
    })
}

/// Adds (or refreshes) our block in hook `name`; a new file gets a shebang and mode 0755.
pub fn install_hook(dir: &Path, name: &str) -> Result<InstallOutcome> {
    let path = dir.join(name);
    let Some(text) = read_hook(&path)? else {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        write_hook(&path, &format!("{SHEBANG}{}", block(true)), 0o755)?;
        return Ok(InstallOutcome::Created);
    };
    let mode = check_existing(&path, &text)?;
    let (new_text, outcome) = match find_block(&text) {
        Some((start, end)) => {
            let created = text[start..end].contains(CREATED_NOTE);
            let mut new_block = block(created);
            // Keep the shape of a block that closes the file without a newline (`find_block`).
            if !text[start..end].ends_with('\n') {
                new_block.pop();
            }
            if text[start..end].starts_with('\n') {
                new_block.insert(0, '\n');
            }
            if text[start..end] == new_block {
                return Ok(InstallOutcome::Unchanged);
            }
            let new_text = format!("{}{new_block}{}", &text[..start], &text[end..]);
            (new_text, InstallOutcome::Updated)
        }
        None => {
            // Right after the shebang, so that an `exit` or `exec` in the user's hook cannot
            // skip it; our block never ends the script itself.
            let at = if text.starts_with("#!") {
                text.find('\n').map_or(text.len(), |i| i + 1)
            } else {
                0
            };
            let mut new_block = block(false);
            if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
                // A one-line file without a final newline: the block follows a newline and
                // has none of its own, so that taking it out restores the file exactly.
                new_block.pop();
                new_block.insert(0, '\n');
            }
            let new_text = format!("{}{new_block}{}", &text[..at], &text[at..]);
            (new_text, InstallOutcome::Added)
        }
    };
    write_hook(&path, &new_text, mode)?;
    Ok(outcome)
}

/// Takes our block out of hook `name`, deleting the file if we created it and nothing else
/// was added since.
pub fn uninstall_hook(dir: &Path, name: &str) -> Result<UninstallOutcome> {
    let path = dir.join(name);
    let Some(text) = read_hook(&path)? else {
        return Ok(UninstallOutcome::NotInstalled);
    };
    let Some((start, end)) = find_block(&text) else {
        return Ok(UninstallOutcome::NotInstalled);
    };
    let created = text[start..end].contains(CREATED_NOTE);
    let rest = format!("{}{}", &text[..start], &text[end..]);
    if created && rest == SHEBANG {
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        return Ok(UninstallOutcome::Deleted);
    }
    let mode = check_existing(&path, &text)?;
    write_hook(&path, &rest, mode)?;
    Ok(UninstallOutcome::Removed)
}

fn block(created: bool) -> String {
    let note = if created {
        format!("{CREATED_NOTE}\n")
    } else {
        String::new()
    };
    format!("{BEGIN_MARKER}\n{note}{BODY}{END_MARKER}\n")
}

/// Byte range of our block: from the start of the begin-marker line to the end of the
/// end-marker line (its newline included). When the end marker closes the file without a
/// newline, the newline before the begin marker belongs to the block instead.
fn find_block(text: &str) -> Option<(usize, usize)> {
    let line_start = |at: usize| at == 0 || text.as_bytes()[at - 1] == b'\n';
    let mut start = text
        .match_indices(BEGIN_MARKER)
        .map(|(i, _)| i)
        .find(|&i| line_start(i))?;
    let end_at = text[start..]
        .match_indices(END_MARKER)
        .map(|(i, _)| start + i)
        .find(|&i| line_start(i))?;
    let mut end = end_at + END_MARKER.len();
    if text[end..].starts_with('\n') {
        end += 1;
    } else {
        start = start.saturating_sub(1);
    }
    Some((start, end))
}

/// The hook's text, `None` if there is no such file. Refuses symlinks and non-UTF-8 files.
fn read_hook(path: &Path) -> Result<Option<String>> {
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    if !meta.is_file() {
        return Err(Error::setup(
            format!("{} is not a regular file", path.display()),
            "hooks managed by other tools through links are left alone; add the block by hand",
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    String::from_utf8(bytes).map(Some).map_err(|_| {
        Error::setup(
            format!("{} is not a text file", path.display()),
            "git-teleos only edits shell-script hooks",
        )
    })
}

/// An existing hook we may edit: executable (a disabled hook stays the user's business) and a
/// shell script (our block is shell). Returns its mode.
fn check_existing(path: &Path, text: &str) -> Result<u32> {
    let mode = path
        .metadata()
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o111 == 0 {
        return Err(Error::setup(
            format!("{} exists but is not executable", path.display()),
            "it looks disabled; make it executable (chmod +x) or remove it, then run this again",
        ));
    }
    if let Some(first) = text.lines().next().filter(|l| l.starts_with("#!")) {
        let mut words = first[2..].split_whitespace();
        let mut interpreter = words.next().unwrap_or_default();
        if interpreter.ends_with("/env") {
            interpreter = words.find(|w| !w.starts_with('-')).unwrap_or_default();
        }
        let shell = interpreter.rsplit('/').next().unwrap_or_default();
        if !matches!(
            shell,
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh"
        ) {
            return Err(Error::setup(
                format!("{} is a {shell} script, not a shell script", path.display()),
                "call `git teleos clean-orphans --quiet || true` from it yourself",
            ));
        }
    }
    Ok(mode)
}

/// Replaces the file by rename with `mode`.
fn write_hook(path: &Path, text: &str, mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.teleos-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            // The umask may have narrowed the mode given at creation.
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io(format!("cannot write {}", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install_then_remove(original: &str) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("post-merge");
        std::fs::write(&p, original).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(
            install_hook(tmp.path(), "post-merge").unwrap(),
            InstallOutcome::Added
        );
        let once = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            install_hook(tmp.path(), "post-merge").unwrap(),
            InstallOutcome::Unchanged
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), once);
        assert!(once.contains(BEGIN_MARKER), "{once}");
        assert_eq!(
            uninstall_hook(tmp.path(), "post-merge").unwrap(),
            UninstallOutcome::Removed
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), original);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
    }

    #[test]
    fn user_content_survives_byte_for_byte() {
        for original in [
            "#!/bin/sh\necho hi\nexit 0\n",
            "#!/bin/sh",
            "#!/usr/bin/env bash\r\necho crlf\r\n",
            "echo no shebang\n",
            "#!/bin/sh\n\n\n# trailing blank lines\n\n",
            "#!/bin/sh\necho no final newline",
        ] {
            install_then_remove(original);
        }
    }

    #[test]
    fn a_created_file_is_deleted_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hooks");
        assert_eq!(
            install_hook(&dir, "post-checkout").unwrap(),
            InstallOutcome::Created
        );
        let mode = std::fs::metadata(dir.join("post-checkout"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            hook_state(&dir, "post-checkout").unwrap(),
            HookState::Installed
        );
        assert_eq!(
            uninstall_hook(&dir, "post-checkout").unwrap(),
            UninstallOutcome::Deleted
        );
        assert_eq!(
            hook_state(&dir, "post-checkout").unwrap(),
            HookState::Missing
        );
    }

    #[test]
    fn foreign_interpreters_and_disabled_hooks_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("post-merge");
        std::fs::write(&p, "#!/usr/bin/env python3\nprint(1)\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(install_hook(tmp.path(), "post-merge").is_err());
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(install_hook(tmp.path(), "post-merge").is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "#!/bin/sh\n");
    }
}
