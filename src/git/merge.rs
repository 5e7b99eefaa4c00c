//! Merges done in memory: no checkout, no index, nothing written on conflict.

use gix::bstr::{BStr, ByteSlice};
use gix::merge::tree::TreatAsUnresolved;
use gix::objs::Write as _;
use gix::{ObjectId, Repository};

use super::history::is_ancestor;
use super::refs::{resolve_ref, update_ref_cas, CasOutcome};
use super::{gix_err, identity};
use crate::error::{Error, Result};

/// What merging `theirs` into a branch (or commit) did or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// `theirs` is already contained: nothing to do.
    UpToDate,
    /// The target can simply move to `theirs` (returned id).
    FastForward(ObjectId),
    /// A two-parent merge commit (ours, theirs) was written.
    Merged(ObjectId),
    /// The histories conflict on these paths; nothing was written.
    Conflict { paths: Vec<String> },
}

/// How many times a merge is redone when the branch moved while we merged.
const MERGE_ATTEMPTS: u32 = 5;

/// Merge `theirs` into branch `target_branch_full` (`refs/heads/…`) without touching any
/// worktree: fast-forward when possible, else a merge commit. The branch only moves by
/// compare-and-swap from the value the merge started from; if it moved meanwhile the merge is
/// redone. A conflict leaves the branch untouched.
///
/// The branch should not be checked out anywhere: moving a checked-out branch leaves that
/// worktree showing the reverse change as staged (use `land_fast_forward_checkout` there).
pub fn merge_into_branch(
    repo: &Repository,
    target_branch_full: &str,
    theirs: ObjectId,
    message: &str,
) -> Result<MergeOutcome> {
    let label = target_branch_full
        .strip_prefix("refs/heads/")
        .unwrap_or(target_branch_full);
    for _ in 0..MERGE_ATTEMPTS {
        let ours = resolve_ref(repo, target_branch_full)?
            .ok_or_else(|| Error::git(format!("branch {target_branch_full} not found")))?;
        let outcome = merge_commits_in_memory(repo, ours, theirs, label, message)?;
        let (new, log) = match &outcome {
            MergeOutcome::UpToDate | MergeOutcome::Conflict { .. } => return Ok(outcome),
            MergeOutcome::FastForward(id) => (*id, "merge: Fast-forward".to_string()),
            MergeOutcome::Merged(id) => (*id, format!("merge {theirs}: Merge made by gix")),
        };
        crate::fault::point("merge-before-ref-update");
        match update_ref_cas(repo, target_branch_full, new, Some(ours), &log)? {
            CasOutcome::Updated => return Ok(outcome),
            // Someone else moved the branch: merge again onto its new tip.
            CasOutcome::Conflict => continue,
        }
    }
    Err(Error::git(format!(
        "{target_branch_full} kept moving while merging {theirs}; gave up after {MERGE_ATTEMPTS} attempts"
    )))
}

/// Merge commit `theirs` into commit `ours` and write the result, without moving any ref.
/// `ours_label` names our side in conflict reports. On conflict nothing is written.
pub fn merge_commits_in_memory(
    repo: &Repository,
    ours: ObjectId,
    theirs: ObjectId,
    ours_label: &str,
    message: &str,
) -> Result<MergeOutcome> {
    if is_ancestor(repo, theirs, ours)? {
        return Ok(MergeOutcome::UpToDate);
    }
    if is_ancestor(repo, ours, theirs)? {
        // gix's merge_commits never fast-forwards; we decide it here.
        return Ok(MergeOutcome::FastForward(theirs));
    }

    // Objects of the merge (blobs, trees, virtual merge bases) go to memory first, so a
    // conflicting merge writes nothing to the object database.
    let mut scratch = repo.clone().with_object_memory();
    scratch.object_cache_size_if_unset(4 * 1024 * 1024);
    let theirs_label = theirs.to_hex_with_len(12).to_string();
    let labels = gix::merge::blob::builtin_driver::text::Labels {
        ancestor: None,
        current: Some(BStr::new(ours_label.as_bytes())),
        other: Some(theirs_label.as_bytes().as_bstr()),
    };
    let options = scratch.tree_merge_options().map_err(gix_err)?.into();
    let tree_id = {
        let mut outcome = scratch
            .merge_commits(ours, theirs, labels, options)
            .map_err(gix_err)?;
        // merge_commits returns Ok even with conflicts: check before writing anything.
        if outcome
            .tree_merge
            .has_unresolved_conflicts(TreatAsUnresolved::git())
        {
            let how = TreatAsUnresolved::git();
            let mut paths: Vec<String> = outcome
                .tree_merge
                .conflicts
                .iter()
                .filter(|c| c.is_unresolved(how))
                .flat_map(|c| {
                    [
                        c.ours.location().to_string(),
                        c.theirs.location().to_string(),
                    ]
                })
                .filter(|p| !p.is_empty())
                .collect();
            paths.sort();
            paths.dedup();
            return Ok(MergeOutcome::Conflict { paths });
        }
        outcome.tree_merge.tree.write().map_err(gix_err)?.detach()
    };
    // Clean merge: persist what the merge produced, then the commit.
    if let Some(objects) = scratch.objects.take_object_memory() {
        for (kind, data) in objects.values() {
            repo.objects.write_buf(*kind, data).map_err(gix_err)?;
        }
    }
    let mut commit = gix::objs::Commit {
        tree: tree_id,
        parents: [ours, theirs].into_iter().collect(),
        author: identity::author(repo)?,
        committer: identity::committer(repo)?,
        encoding: None,
        message: identity::commit_message(message).into(),
        extra_headers: Vec::new(),
    };
    // With commit.gpgsign, a merge that cannot be signed is not written at all.
    super::sign::sign_commit_if_configured(repo, &mut commit)?;
    let id = repo.write_object(&commit).map_err(gix_err)?.detach();
    Ok(MergeOutcome::Merged(id))
}
