//! Branches and refs: creation, compare-and-swap updates, guarded deletion, rescue refs.

use std::time::Duration;

use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};
use gix::{ObjectId, Repository};

use super::{gix_err, identity};
use crate::error::{Error, Result};

/// Result of a guarded ref update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The ref had the expected value and now points at the new one.
    Updated,
    /// The ref did not have the expected value (someone else moved, created or deleted it).
    Conflict,
}

/// How often a ref update is tried while another process holds the ref's `.lock` file.
const LOCK_ATTEMPTS: u32 = 6;

fn full_name(name: &str) -> Result<FullName> {
    FullName::try_from(name).map_err(|e| Error::git(format!("invalid ref name '{name}': {e}")))
}

fn branch_name(short: &str) -> Result<FullName> {
    if short.starts_with("refs/") {
        return Err(Error::git(format!(
            "expected a short branch name, got '{short}'"
        )));
    }
    full_name(&format!("refs/heads/{short}"))
}

/// The commit (peeled) a ref points at, or `None` if it does not exist.
pub fn resolve_ref(repo: &Repository, full_name: &str) -> Result<Option<ObjectId>> {
    let Some(mut reference) = repo.try_find_reference(full_name).map_err(gix_err)? else {
        return Ok(None);
    };
    Ok(Some(reference.peel_to_id().map_err(gix_err)?.detach()))
}

/// Create branch `refs/heads/<name>` at `target`; fails if it already exists.
pub fn create_branch(repo: &Repository, name: &str, target: ObjectId) -> Result<()> {
    let full = branch_name(name)?;
    let message = format!("branch: Created from {target}");
    match update(repo, full, target, PreviousValue::MustNotExist, &message)? {
        CasOutcome::Updated => Ok(()),
        CasOutcome::Conflict => Err(Error::git(format!(
            "a branch named '{name}' already exists"
        ))),
    }
}

/// Move `full_name` to `new` only if it currently points at `expected_old` (or, with `None`,
/// does not exist yet). A held `.lock` is retried briefly; a different value is a `Conflict`.
pub fn update_ref_cas(
    repo: &Repository,
    full_name_str: &str,
    new: ObjectId,
    expected_old: Option<ObjectId>,
    log_message: &str,
) -> Result<CasOutcome> {
    let expected = match expected_old {
        Some(old) => PreviousValue::MustExistAndMatch(Target::Object(old)),
        None => PreviousValue::MustNotExist,
    };
    update(repo, full_name(full_name_str)?, new, expected, log_message)
}

/// Point `full_name` (e.g. `refs/teleos/rescue/<sid>/<name>`) at `target`, whatever it was.
pub fn set_ref(repo: &Repository, full_name_str: &str, target: ObjectId) -> Result<()> {
    if !full_name_str.starts_with("refs/") {
        return Err(Error::git(format!(
            "refusing to set '{full_name_str}': not under refs/"
        )));
    }
    let name = full_name(full_name_str)?;
    match update(
        repo,
        name,
        target,
        PreviousValue::Any,
        "git-teleos: keep work",
    )? {
        CasOutcome::Updated => Ok(()),
        CasOutcome::Conflict => Err(Error::git(format!("could not set {full_name_str}"))),
    }
}

/// Make the worktree of `worktree_repo` have `branch` (short name) checked out, by pointing
/// its `HEAD` at it. Files and index are not touched: the caller makes sure the branch points
/// at the commit the worktree holds.
pub fn set_head_branch(worktree_repo: &Repository, branch: &str) -> Result<()> {
    let target = full_name(&format!("refs/heads/{branch}"))?;
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: format!("git-teleos: switch to {branch}").into(),
            },
            expected: PreviousValue::Any,
            new: Target::Symbolic(target),
        },
        name: full_name("HEAD")?,
        deref: false,
    };
    match apply(worktree_repo, edit)? {
        CasOutcome::Updated => Ok(()),
        CasOutcome::Conflict => Err(Error::git("could not update HEAD")),
    }
}

fn update(
    repo: &Repository,
    name: FullName,
    new: ObjectId,
    expected: PreviousValue,
    log_message: &str,
) -> Result<CasOutcome> {
    // gix lets `MustNotExist` pass when the ref exists with the new value already; git and our
    // callers (create = "I made it") need a real "must not exist", so look first. A creation
    // racing this check with the very same value is the only case that slips through.
    if expected == PreviousValue::MustNotExist
        && repo
            .try_find_reference(name.as_ref())
            .map_err(gix_err)?
            .is_some()
    {
        return Ok(CasOutcome::Conflict);
    }
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                // Reflog messages are single lines.
                message: log_message.lines().next().unwrap_or_default().into(),
            },
            expected,
            new: Target::Object(new),
        },
        name,
        deref: false,
    };
    apply(repo, edit)
}

/// Apply one edit, signing the reflog ourselves (gix fails without a configured identity),
/// retrying while the ref is locked by someone else.
fn apply(repo: &Repository, edit: RefEdit) -> Result<CasOutcome> {
    let committer = identity::committer(repo)?;
    let mut time_buf = Default::default();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match repo.edit_references_as([edit.clone()], Some(committer.to_ref(&mut time_buf))) {
            Ok(_) => return Ok(CasOutcome::Updated),
            // A held `.lock` classifies as retryable; check it before "conflict".
            Err(e) if e.can_retry() && attempt < LOCK_ATTEMPTS => {
                std::thread::sleep(Duration::from_millis(20 << attempt));
            }
            Err(e) if e.can_retry() => {
                return Err(Error::git(format!(
                    "{} is locked by another process (a leftover .lock file?): {}",
                    edit.name.as_bstr(),
                    super::error_chain(&e)
                )))
            }
            Err(e) if e.is_conflict() => return Ok(CasOutcome::Conflict),
            Err(e) => return Err(gix_err(e)),
        }
    }
}

/// Delete branch `refs/heads/<short_name>`, refusing when:
/// - `allowed(short_name)` is false (the caller's naming rule, e.g. only this session's branches);
/// - it is checked out in any worktree of the repository (gix would delete it; git refuses);
/// - it holds commits reachable from no other ref — save them first (e.g. with [`set_ref`]).
pub fn delete_branch_guarded(
    repo: &Repository,
    short_name: &str,
    allowed: impl Fn(&str) -> bool,
) -> Result<()> {
    if !allowed(short_name) {
        return Err(Error::git(format!(
            "refusing to delete branch '{short_name}': not ours"
        )));
    }
    let full = branch_name(short_name)?;
    let Some(tip) = resolve_ref(repo, full.as_bstr().to_string().as_str())? else {
        return Err(Error::git(format!("branch '{short_name}' not found")));
    };
    for worktree in repo.worktrees_including_main().map_err(gix_err)? {
        let worktree = worktree.map_err(gix_err)?;
        if worktree.head_name().ok().flatten().as_ref() == Some(&full) {
            let place = worktree
                .workdir()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(Error::git(format!(
                "refusing to delete branch '{short_name}': checked out at {place}"
            )));
        }
    }
    let unsaved = commits_only_on(repo, &full, tip)?;
    if unsaved > 0 {
        return Err(Error::git(format!(
            "refusing to delete branch '{short_name}': {unsaved} commit(s) on it are on no other ref"
        )));
    }
    let edit = RefEdit {
        change: Change::Delete {
            expected: PreviousValue::MustExistAndMatch(Target::Object(tip)),
            log: RefLog::AndReference,
        },
        name: full,
        deref: false,
    };
    match apply(repo, edit)? {
        CasOutcome::Updated => Ok(()),
        CasOutcome::Conflict => Err(Error::git(format!(
            "branch '{short_name}' moved while it was being deleted"
        ))),
    }
}

/// Number of commits reachable from `tip` and from no ref other than `name`.
fn commits_only_on(repo: &Repository, name: &FullName, tip: ObjectId) -> Result<usize> {
    let mut others = Vec::new();
    let platform = repo.references().map_err(gix_err)?;
    for reference in platform.all().map_err(gix_err)? {
        let mut reference = reference.map_err(|e| Error::git(format!("reading refs: {e}")))?;
        if reference.name() == name.as_ref() {
            continue;
        }
        // Refs to trees or blobs (rare) protect no commits; skip what does not peel to a commit.
        if let Ok(commit) = reference.peel_to_commit() {
            others.push(commit.id);
        }
    }
    super::history::count_unreachable_from(repo, tip, &others)
}

/// Delete `full_name` if it still points at `expected` (rollback of a branch we just created).
pub(crate) fn delete_if_at(
    repo: &Repository,
    full_name_str: &str,
    expected: ObjectId,
) -> Result<CasOutcome> {
    let edit = RefEdit {
        change: Change::Delete {
            expected: PreviousValue::MustExistAndMatch(Target::Object(expected)),
            log: RefLog::AndReference,
        },
        name: full_name(full_name_str)?,
        deref: false,
    };
    apply(repo, edit)
}

/// Every local branch as (short name, commit it points at); branches that do not peel to a
/// commit are left out.
pub fn local_branches(repo: &Repository) -> Result<Vec<(String, ObjectId)>> {
    let platform = repo.references().map_err(gix_err)?;
    let mut out = Vec::new();
    for reference in platform.local_branches().map_err(gix_err)? {
        let mut reference = reference.map_err(|e| Error::git(format!("reading refs: {e}")))?;
        let short = reference.name().shorten().to_string();
        if let Ok(commit) = reference.peel_to_commit() {
            out.push((short, commit.id));
        }
    }
    Ok(out)
}

/// Create `full_name` at `target` without ever overwriting another value: if the name is taken
/// by a different commit, `-2`, `-3`, … are tried. Returns the name used (an existing ref that
/// already points at `target` is reused).
pub fn create_ref_unique(
    repo: &Repository,
    full_name_str: &str,
    target: ObjectId,
) -> Result<String> {
    if !full_name_str.starts_with("refs/") {
        return Err(Error::git(format!(
            "refusing to create '{full_name_str}': not under refs/"
        )));
    }
    for n in 1..=100 {
        let name = if n == 1 {
            full_name_str.to_string()
        } else {
            format!("{full_name_str}-{n}")
        };
        match resolve_ref(repo, &name)? {
            Some(existing) if existing == target => return Ok(name),
            Some(_) => continue,
            None => {}
        }
        match update(
            repo,
            full_name(&name)?,
            target,
            PreviousValue::MustNotExist,
            "git-teleos: keep work",
        )? {
            CasOutcome::Updated => return Ok(name),
            CasOutcome::Conflict => continue,
        }
    }
    Err(Error::git(format!(
        "could not find a free ref name near {full_name_str}"
    )))
}
