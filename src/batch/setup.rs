//! Per-worktree set-up (README, "Parallel mode", step 1): install dependencies or link them from
//! the main checkout, and copy the git-ignored files `.worktreeinclude` lists (e.g. `.env`).

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::process::{Cmd, Failure, ProcessError};

/// Why a worktree could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read .worktreeinclude: {0}")]
    ReadIncludes(#[source] std::io::Error),
    #[error(".worktreeinclude: '{0}' points outside the repository")]
    IncludeEscapes(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(ProcessError),
    /// The install command failed or was stopped; the tail is the end of its log.
    #[error("{failure}; log {}:\n{tail}", log.display())]
    Install {
        failure: Box<Failure>,
        log: PathBuf,
        tail: String,
    },
}

impl SetupError {
    fn io(what: String, source: std::io::Error) -> Self {
        SetupError::Io { what, source }
    }
}

/// How a new worktree gets its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupPlan {
    /// Nothing to do.
    None,
    /// Run this argv in the worktree.
    Install(Vec<String>),
    /// Link these folders (relative to the root) from the main checkout.
    Symlink(Vec<PathBuf>),
}

/// Folders linked in `symlink` mode when they exist in the main checkout.
pub const SYMLINK_DIRS: &[&str] = &["node_modules", ".venv", "vendor/bundle"];

/// Why the set-up settings give no plan.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("teleos.installCommand cannot be split: {0}")]
    CannotSplit(String),
    #[error("teleos.setup is 'install' but no installCommand is set and no lock file says how")]
    NoInstallCommand,
}

/// Decide the plan from `teleos.setup`, `teleos.installCommand` and the lock files present.
pub fn plan(
    mode: &str,
    install_command: Option<&str>,
    main_root: &Path,
) -> Result<SetupPlan, PlanError> {
    let detected = || -> Option<Vec<String>> {
        let has = |f: &str| main_root.join(f).is_file();
        let argv: &[&str] = if has("pnpm-lock.yaml") {
            &["pnpm", "install", "--frozen-lockfile"]
        } else if has("yarn.lock") {
            &["yarn", "install", "--immutable"]
        } else if has("package-lock.json") {
            &["npm", "ci"]
        } else {
            // Cargo and most other toolchains fetch on first build: nothing to install.
            return None;
        };
        Some(argv.iter().map(|s| s.to_string()).collect())
    };
    let configured = match install_command {
        Some(cmd) => Some(
            shlex::split(cmd)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| PlanError::CannotSplit(cmd.to_string()))?,
        ),
        None => None,
    };
    Ok(match mode {
        "none" => SetupPlan::None,
        "symlink" => SetupPlan::Symlink(
            SYMLINK_DIRS
                .iter()
                .map(PathBuf::from)
                .filter(|d| main_root.join(d).is_dir())
                .collect(),
        ),
        "install" => match configured.or_else(detected) {
            Some(argv) => SetupPlan::Install(argv),
            None => return Err(PlanError::NoInstallCommand),
        },
        // auto: an explicit command, else what a lock file implies, else nothing.
        _ => configured
            .or_else(detected)
            .map(SetupPlan::Install)
            .unwrap_or(SetupPlan::None),
    })
}

/// A relative path that stays inside its root: no `..`, no absolute part.
fn contained(rel: &Path) -> bool {
    !rel.as_os_str().is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The paths `.worktreeinclude` names that exist in the main checkout. Lines are paths or
/// globs with `*` in the last component; comments and blank lines are ignored; anything that
/// would leave the repository is refused.
pub fn worktree_includes(main_root: &Path) -> Result<Vec<PathBuf>, SetupError> {
    let text = match std::fs::read_to_string(main_root.join(".worktreeinclude")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SetupError::ReadIncludes(e)),
    };
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rel = Path::new(line.trim_start_matches('/'));
        if !contained(rel) {
            return Err(SetupError::IncludeEscapes(line.to_string()));
        }
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some((prefix, suffix)) = name.split_once('*') {
            let dir = main_root.join(rel.parent().unwrap_or(Path::new("")));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.len() >= prefix.len() + suffix.len()
                    && n.starts_with(prefix)
                    && n.ends_with(suffix)
                {
                    out.push(rel.parent().unwrap_or(Path::new("")).join(n));
                }
            }
        } else if main_root.join(rel).exists() {
            out.push(rel.to_path_buf());
        }
    }
    Ok(out)
}

/// Copy a file or folder tree; symlinks inside are not followed out of the tree (copied as
/// links), so a hostile link cannot make us read outside the repository.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        if !to.exists() {
            std::os::unix::fs::symlink(target, to)?;
        }
    } else if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
    } else {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// Limits on the install command: it runs in its own process group, which is stopped when it
/// runs past `timeout` or `cancel` is set (Ctrl-C), so a hung `npm ci` cannot hold a slot forever.
#[derive(Clone, Copy)]
pub struct SetupLimits<'a> {
    pub timeout: Duration,
    pub cancel: &'a AtomicBool,
}

/// Prepare one new worktree. The error carries the failed step's output for the debrief.
pub fn run(
    plan: &SetupPlan,
    main_root: &Path,
    worktree: &Path,
    log: &Path,
    limits: SetupLimits,
) -> Result<(), SetupError> {
    for rel in worktree_includes(main_root)? {
        copy_tree(&main_root.join(&rel), &worktree.join(&rel)).map_err(|e| {
            SetupError::io(format!("copying {} into the worktree", rel.display()), e)
        })?;
    }
    match plan {
        SetupPlan::None => Ok(()),
        SetupPlan::Symlink(dirs) => {
            for d in dirs {
                let link = worktree.join(d);
                if link.exists() {
                    continue;
                }
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| SetupError::io(format!("creating {}", parent.display()), e))?;
                }
                std::os::unix::fs::symlink(main_root.join(d), &link)
                    .map_err(|e| SetupError::io(format!("linking {}", d.display()), e))?;
            }
            Ok(())
        }
        SetupPlan::Install(argv) => install(argv, worktree, log, limits),
    }
}

fn install(
    argv: &[String],
    worktree: &Path,
    log: &Path,
    limits: SetupLimits,
) -> Result<(), SetupError> {
    if let Some(parent) = log.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let mut file = std::fs::File::create(log)
        .map_err(|e| SetupError::io(format!("creating {}", log.display()), e))?;
    let _ = writeln!(file, "$ {}", argv.join(" "));
    let out = Cmd::new(&argv[0])
        .args(&argv[1..])
        .current_dir(worktree)
        .timeout(limits.timeout)
        .cancel(limits.cancel)
        .log(file, u64::MAX)
        .run()
        .map_err(SetupError::Start)?;
    let Some(failure) = out.failure() else {
        return Ok(());
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(SetupError::Install {
        failure: Box::new(failure),
        log: log.to_path_buf(),
        tail: tail.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static NOT_CANCELLED: AtomicBool = AtomicBool::new(false);

    fn limits() -> SetupLimits<'static> {
        SetupLimits {
            timeout: Duration::from_secs(600),
            cancel: &NOT_CANCELLED,
        }
    }

    #[test]
    fn plans_from_lock_files_and_config() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(plan("auto", None, d.path()).unwrap(), SetupPlan::None);
        std::fs::write(d.path().join("package-lock.json"), "{}").unwrap();
        assert_eq!(
            plan("auto", None, d.path()).unwrap(),
            SetupPlan::Install(vec!["npm".into(), "ci".into()])
        );
        std::fs::write(d.path().join("pnpm-lock.yaml"), "").unwrap();
        assert_eq!(
            plan("install", None, d.path()).unwrap(),
            SetupPlan::Install(vec![
                "pnpm".into(),
                "install".into(),
                "--frozen-lockfile".into()
            ])
        );
        assert_eq!(
            plan("auto", Some("make deps"), d.path()).unwrap(),
            SetupPlan::Install(vec!["make".into(), "deps".into()])
        );
        assert_eq!(
            plan("none", Some("make"), d.path()).unwrap(),
            SetupPlan::None
        );
        let e = tempfile::tempdir().unwrap();
        assert!(plan("install", None, e.path()).is_err());
    }

    #[test]
    fn worktreeinclude_copies_and_refuses_escapes() {
        let main = tempfile::tempdir().unwrap();
        let wt = tempfile::tempdir().unwrap();
        std::fs::write(main.path().join(".env"), "SECRET=1\n").unwrap();
        std::fs::write(main.path().join(".env.local"), "X=2\n").unwrap();
        std::fs::write(
            main.path().join(".worktreeinclude"),
            "# files\n.env*\nmissing.txt\n",
        )
        .unwrap();
        // Setup with no install: only the .worktreeinclude copies run.
        let copy_includes = || {
            run(
                &SetupPlan::None,
                main.path(),
                wt.path(),
                &wt.path().join("log"),
                limits(),
            )
        };
        copy_includes().unwrap();
        assert_eq!(
            std::fs::read_to_string(wt.path().join(".env")).unwrap(),
            "SECRET=1\n"
        );
        assert!(wt.path().join(".env.local").exists());

        std::fs::write(main.path().join(".worktreeinclude"), "../../etc/passwd\n").unwrap();
        let err = copy_includes().unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        std::fs::write(main.path().join(".worktreeinclude"), "/etc/passwd\n").unwrap();
        // A leading slash means "from the repository root", never the filesystem root.
        copy_includes().unwrap();
        assert!(!wt.path().join("etc/passwd").exists());
    }

    #[test]
    fn failed_install_reports_its_output() {
        let main = tempfile::tempdir().unwrap();
        let wt = tempfile::tempdir().unwrap();
        let plan = SetupPlan::Install(vec![
            "sh".into(),
            "-c".into(),
            "echo broken dependency >&2; exit 3".into(),
        ]);
        let err = run(
            &plan,
            main.path(),
            wt.path(),
            &wt.path().join("setup.log"),
            limits(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("broken dependency"), "{err}");
    }

    #[test]
    fn a_hung_install_is_stopped_by_its_timeout() {
        let main = tempfile::tempdir().unwrap();
        let wt = tempfile::tempdir().unwrap();
        let plan = SetupPlan::Install(vec![
            "sh".into(),
            "-c".into(),
            "echo resolving packages; sleep 100".into(),
        ]);
        let short = SetupLimits {
            timeout: Duration::from_millis(300),
            cancel: &NOT_CANCELLED,
        };
        let log = wt.path().join("setup.log");
        let err = run(&plan, main.path(), wt.path(), &log, short).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("timed out after"), "{text}");
        assert!(text.contains("resolving packages"), "{text}");
        assert!(matches!(err, SetupError::Install { .. }));
    }

    #[test]
    fn symlink_links_dependency_folders() {
        let main = tempfile::tempdir().unwrap();
        let wt = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(main.path().join("node_modules/x")).unwrap();
        let p = plan("symlink", None, main.path()).unwrap();
        run(&p, main.path(), wt.path(), &wt.path().join("log"), limits()).unwrap();
        assert!(wt.path().join("node_modules/x").is_dir());
        assert!(std::fs::symlink_metadata(wt.path().join("node_modules"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
