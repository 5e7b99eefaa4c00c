//! Landing: putting back an integration branch moved behind the batch's back, and merging the
//! integration branch into the branch the batch started from (the only step that touches the
//! user's checkout, and only when it is clean).

use std::path::Path;

use crate::error::{Error, Result};
use crate::git::{self, LandOutcome, MergeOutcome, ObjectId};

/// If the integration branch is not where we left it, keep the stranger's tip on `keep_as`
/// and put the branch back. Returns what happened, for the debrief.
pub(super) fn restore_integration(
    repo: &gix::Repository,
    integration_ref: &str,
    expected: ObjectId,
    keep_as: &str,
) -> Result<Option<String>> {
    let actual = git::resolve_ref(repo, integration_ref)?;
    if actual == Some(expected) {
        return Ok(None);
    }
    if let Some(a) = actual {
        git::set_ref(repo, keep_as, a)?;
    }
    git::update_ref_cas(
        repo,
        integration_ref,
        expected,
        actual,
        "git-teleos: undo a move made outside the batch",
    )?;
    Ok(Some(format!(
        "{} was moved outside git-teleos; it was put back and the foreign commits are kept on {keep_as}",
        integration_ref.trim_start_matches("refs/heads/")
    )))
}

/// Land the integration branch: merge it into the branch the batch started from. With
/// `--no-land` (`land_wanted` false), say instead where the work is and how to merge it.
/// What happened goes to `notes` (the debrief's).
pub(crate) fn land_or_keep(
    land_wanted: bool,
    main: &gix::Repository,
    root: &Path,
    start_branch: Option<&str>,
    sid: &str,
    notes: &mut Vec<String>,
) -> bool {
    let (integration, integration_ref) = (
        &crate::batch::names::integration_branch(sid),
        &crate::batch::names::integration_ref(sid),
    );
    if !land_wanted {
        notes.push(format!(
            "--no-land: the work is on {integration}; merge it with: git merge {integration}"
        ));
        return false;
    }
    let Some(branch) = start_branch else {
        return false;
    };
    let finish_hint = format!("finish with: git merge {integration}");
    // Whether the branch really moved: "landed" is said only then.
    let mut moved = false;
    // Sessions that finish together land one at a time: while one moves the branch and then
    // the files, another would see a half-updated checkout and refuse it as dirty.
    let lock_path = crate::batch::results::results_dir(&git::common_dir(main)).join("land.lock");
    let _land_lock = std::fs::create_dir_all(lock_path.parent().unwrap_or(Path::new(".")))
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
        })
        .and_then(|f| f.lock().map(|_| f));
    let mut attempt = || -> Result<Option<bool>> {
        let tip = git::resolve_ref(main, integration_ref)?
            .ok_or_else(|| Error::git(format!("{integration_ref} disappeared")))?;
        let current = git::resolve_ref(main, branch)?
            .ok_or_else(|| Error::git(format!("{branch} disappeared")))?;
        if git::is_ancestor(main, tip, current)? {
            return Ok(Some(true));
        }
        // Fast-forward when the branch did not move; else one merge commit made in memory.
        moved = false;
        let target = if git::is_ancestor(main, current, tip)? {
            tip
        } else {
            match git::merge_commits_in_memory(
                main,
                current,
                tip,
                branch,
                &format!("Merge branch '{integration}'"),
            )? {
                MergeOutcome::Merged(id) | MergeOutcome::FastForward(id) => id,
                MergeOutcome::UpToDate => return Ok(Some(true)),
                MergeOutcome::Conflict { paths } => {
                    notes.push(format!(
                        "{branch} moved on and conflicts with the batch ({}): nothing was touched; {finish_hint}",
                        paths.join(", ")
                    ));
                    return Ok(Some(false));
                }
            }
        };
        let user = git::discover(root)?;
        crate::fault::point("landing");
        Ok(
            match git::land_fast_forward_checkout(&user, branch, target)? {
                // The branch moved under us: compute the landing again on its new tip.
                LandOutcome::NotFastForward | LandOutcome::Moved => None,
                LandOutcome::UpToDate => Some(true),
                LandOutcome::CheckedOut { .. } | LandOutcome::RefUpdated => {
                    moved = true;
                    Some(true)
                }
                LandOutcome::Dirty(paths) => {
                    notes.push(format!(
                    "your checkout has uncommitted changes ({}): it was not touched; {finish_hint}",
                    paths.join(", ")
                ));
                    Some(false)
                }
                LandOutcome::CheckedOutElsewhere(path) => {
                    notes.push(format!(
                        "{branch} is checked out in {}: nothing was touched; {finish_hint} there",
                        path.display()
                    ));
                    Some(false)
                }
            },
        )
    };
    let mut outcome = Ok(None);
    for _ in 0..5 {
        outcome = attempt();
        if !matches!(outcome, Ok(None)) {
            break;
        }
    }
    match outcome {
        Ok(None) => {
            notes.push(format!(
                "{branch} kept moving while landing: nothing was touched; {finish_hint}"
            ));
            false
        }
        Ok(Some(true)) => {
            let short = branch.trim_start_matches("refs/heads/");
            notes.push(if moved {
                format!("landed on {short}")
            } else {
                format!("nothing to land on {short}: no story's work was merged")
            });
            true
        }
        Ok(Some(false)) => false,
        Err(e) => {
            notes.push(format!("landing failed: {e}; {finish_hint}"));
            false
        }
    }
}

/// Where a batch starts: the user's branch (there must be one when the batch lands) and its
/// commit (there must be one: every story branches from it).
pub(crate) fn batch_start(
    main: &gix::Repository,
    land: bool,
) -> Result<(Option<String>, ObjectId)> {
    let start_branch = git::current_branch(main)?;
    if land && start_branch.is_none() {
        return Err(Error::usage_hint(
            "HEAD is detached: there is no branch to land the work on",
            "check out a branch first, or pass --no-land to keep the work on integration-<sid>",
        ));
    }
    let start = git::head_commit_id(main)?.ok_or_else(|| {
        Error::usage_hint(
            "the current branch has no commits yet: there is nothing to branch the stories from",
            "commit the stories first (git add -A && git commit)",
        )
    })?;
    Ok((start_branch, start))
}
