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
    merge_into_branch_owning(repo, target_branch_full, theirs, message, &[]).map(|(o, _)| o)
}

/// A file the target branch owns: what the merged side did to it is dropped (the target's
/// version is kept, also on conflict), then `edit` may rewrite the kept content (`None`: keep).
pub struct OwnedPath<'a> {
    /// Relative to the repository root, '/'-separated.
    pub path: &'a str,
    pub edit: &'a dyn Fn(&[u8]) -> Option<Vec<u8>>,
}

/// What happened to the owned paths in a merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedReport {
    /// Owned paths the merged side had changed; its change was dropped.
    pub dropped: Vec<String>,
    /// Owned paths `edit` rewrote in the result.
    pub edited: Vec<String>,
}

/// [`merge_into_branch`] with owned paths. When the owned files change, the result is one commit
/// holding the story's work and the owned files' new content (a merge commit, even where a
/// fast-forward would otherwise do; a commit on the target when `theirs` is already in it).
pub fn merge_into_branch_owning(
    repo: &Repository,
    target_branch_full: &str,
    theirs: ObjectId,
    message: &str,
    owned: &[OwnedPath],
) -> Result<(MergeOutcome, OwnedReport)> {
    let label = target_branch_full
        .strip_prefix("refs/heads/")
        .unwrap_or(target_branch_full);
    for _ in 0..MERGE_ATTEMPTS {
        let ours = resolve_ref(repo, target_branch_full)?
            .ok_or_else(|| Error::git(format!("branch {target_branch_full} not found")))?;
        let (outcome, report) =
            merge_commits_in_memory_owning(repo, ours, theirs, label, message, owned)?;
        let (new, log) = match &outcome {
            MergeOutcome::UpToDate | MergeOutcome::Conflict { .. } => return Ok((outcome, report)),
            MergeOutcome::FastForward(id) => (*id, "merge: Fast-forward".to_string()),
            MergeOutcome::Merged(id) => (*id, format!("merge {theirs}: Merge made by gix")),
        };
        crate::fault::point("merge-before-ref-update");
        match update_ref_cas(repo, target_branch_full, new, Some(ours), &log)? {
            CasOutcome::Updated => return Ok((outcome, report)),
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
    merge_commits_in_memory_owning(repo, ours, theirs, ours_label, message, &[]).map(|(o, _)| o)
}

/// [`merge_commits_in_memory`] with owned paths (see [`OwnedPath`]).
pub fn merge_commits_in_memory_owning(
    repo: &Repository,
    ours: ObjectId,
    theirs: ObjectId,
    ours_label: &str,
    message: &str,
    owned: &[OwnedPath],
) -> Result<(MergeOutcome, OwnedReport)> {
    if is_ancestor(repo, theirs, ours)? {
        // Nothing of theirs to merge; the owned files may still need their edit.
        return match apply_owned(repo, ours, None, tree_of(repo, ours)?, owned)? {
            (Some(tree), report) => {
                let id = write_commit(repo, tree, &[ours], message)?;
                Ok((MergeOutcome::Merged(id), report))
            }
            (None, report) => Ok((MergeOutcome::UpToDate, report)),
        };
    }
    if is_ancestor(repo, ours, theirs)? {
        // gix's merge_commits never fast-forwards; we decide it here. Theirs' tree is the
        // merge result; when the owned files differ from it, a merge commit carries them.
        return match apply_owned(repo, ours, Some(ours), tree_of(repo, theirs)?, owned)? {
            (Some(tree), report) => {
                let id = write_commit(repo, tree, &[ours, theirs], message)?;
                Ok((MergeOutcome::Merged(id), report))
            }
            (None, report) => Ok((MergeOutcome::FastForward(theirs), report)),
        };
    }
    let is_owned = |p: &str| owned.iter().any(|o| o.path == p);

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
        // Conflicts on owned paths do not count: the target's side is taken there below.
        let how = TreatAsUnresolved::git();
        let mut paths: Vec<String> = outcome
            .tree_merge
            .conflicts
            .iter()
            .filter(|c| c.is_unresolved(how))
            .filter(|c| {
                !(is_owned(&c.ours.location().to_string())
                    && is_owned(&c.theirs.location().to_string()))
            })
            .flat_map(|c| {
                [
                    c.ours.location().to_string(),
                    c.theirs.location().to_string(),
                ]
            })
            .filter(|p| !p.is_empty())
            .collect();
        if !paths.is_empty() {
            paths.sort();
            paths.dedup();
            return Ok((MergeOutcome::Conflict { paths }, OwnedReport::default()));
        }
        outcome.tree_merge.tree.write().map_err(gix_err)?.detach()
    };
    let base = scratch
        .merge_base(ours, theirs)
        .map_err(gix_err)?
        .map(|b| b.detach());
    let (edited_tree, report) = apply_owned(&scratch, ours, base, tree_id, owned)?;
    let tree_id = edited_tree.unwrap_or(tree_id);
    // Clean merge: persist what the merge produced, then the commit.
    if let Some(objects) = scratch.objects.take_object_memory() {
        for (kind, data) in objects.values() {
            repo.objects.write_buf(*kind, data).map_err(gix_err)?;
        }
    }
    let id = write_commit(repo, tree_id, &[ours, theirs], message)?;
    Ok((MergeOutcome::Merged(id), report))
}

fn write_commit(
    repo: &Repository,
    tree: ObjectId,
    parents: &[ObjectId],
    message: &str,
) -> Result<ObjectId> {
    let mut commit = gix::objs::Commit {
        tree,
        parents: parents.iter().copied().collect(),
        author: identity::author(repo)?,
        committer: identity::committer(repo)?,
        encoding: None,
        message: identity::commit_message(message).into(),
        extra_headers: Vec::new(),
    };
    // With commit.gpgsign, a commit that cannot be signed is not written at all.
    super::sign::sign_commit_if_configured(repo, &mut commit)?;
    Ok(repo.write_object(&commit).map_err(gix_err)?.detach())
}

fn tree_of(repo: &Repository, commit: ObjectId) -> Result<ObjectId> {
    Ok(repo
        .find_commit(commit)
        .map_err(gix_err)?
        .tree_id()
        .map_err(gix_err)?
        .detach())
}

/// The entry (mode, blob) at `path` in `commit`'s tree.
fn entry_at(
    repo: &Repository,
    commit: ObjectId,
    path: &str,
) -> Result<Option<(gix::objs::tree::EntryMode, ObjectId)>> {
    let tree = repo
        .find_commit(commit)
        .map_err(gix_err)?
        .tree()
        .map_err(gix_err)?;
    Ok(tree
        .lookup_entry_by_path(path)
        .map_err(gix_err)?
        .map(|e| (e.mode(), e.object_id())))
}

/// Put `ours`' version of every owned path into `tree` (noting where `theirs`, compared with
/// `base`, had changed it), then apply each edit. Returns the new tree when it differs.
fn apply_owned(
    repo: &Repository,
    ours: ObjectId,
    base: Option<ObjectId>,
    tree: ObjectId,
    owned: &[OwnedPath],
) -> Result<(Option<ObjectId>, OwnedReport)> {
    let mut report = OwnedReport::default();
    if owned.is_empty() {
        return Ok((None, report));
    }
    let mut editor = repo.edit_tree(tree).map_err(gix_err)?;
    let in_tree = |path: &str| -> Result<Option<(gix::objs::tree::EntryMode, ObjectId)>> {
        let t = repo.find_tree(tree).map_err(gix_err)?;
        Ok(t.lookup_entry_by_path(path)
            .map_err(gix_err)?
            .map(|e| (e.mode(), e.object_id())))
    };
    for o in owned {
        let kept = entry_at(repo, ours, o.path)?;
        let merged = in_tree(o.path)?;
        if let Some(base) = base {
            // Theirs changed the file if the merge result differs from what both started from
            // while ours did not make that difference.
            if merged != kept && merged != entry_at(repo, base, o.path)? {
                report.dropped.push(o.path.to_string());
            }
        }
        let Some((mode, blob)) = kept else {
            if merged.is_some() {
                editor.remove(o.path).map_err(gix_err)?;
            }
            continue;
        };
        let data = repo.find_blob(blob).map_err(gix_err)?.data.clone();
        let new_blob = match (o.edit)(&data) {
            Some(new) if new != data => {
                report.edited.push(o.path.to_string());
                repo.write_blob(&new).map_err(gix_err)?.detach()
            }
            _ => blob,
        };
        if merged != Some((mode, new_blob)) {
            editor
                .upsert(o.path, mode.kind(), new_blob)
                .map_err(gix_err)?;
        }
    }
    let new_tree = editor.write().map_err(gix_err)?.detach();
    Ok(((new_tree != tree).then_some(new_tree), report))
}

/// Apply the change `base..changed` on top of `onto` with a three-way tree merge, in memory,
/// and write a commit with `parents` (the first should be `onto`). Used to rebuild a branch
/// without one of its merges: each later merge's own change is replayed, nothing else. Owned
/// paths keep `onto`'s version, then their edit (see [`OwnedPath`]); a conflict there does
/// not count. On conflict nothing is written.
pub fn replay_in_memory(
    repo: &Repository,
    onto: ObjectId,
    base: ObjectId,
    changed: ObjectId,
    parents: &[ObjectId],
    message: &str,
    owned: &[OwnedPath],
) -> Result<MergeOutcome> {
    let is_owned = |p: &str| owned.iter().any(|o| o.path == p);
    let (base_tree, ours_tree, theirs_tree) = (
        tree_of(repo, base)?,
        tree_of(repo, onto)?,
        tree_of(repo, changed)?,
    );
    let mut scratch = repo.clone().with_object_memory();
    scratch.object_cache_size_if_unset(4 * 1024 * 1024);
    let theirs_label = changed.to_hex_with_len(12).to_string();
    let labels = gix::merge::blob::builtin_driver::text::Labels {
        ancestor: None,
        current: Some(BStr::new(b"rebuilt")),
        other: Some(theirs_label.as_bytes().as_bstr()),
    };
    let options = scratch.tree_merge_options().map_err(gix_err)?;
    let tree_id = {
        let mut outcome = scratch
            .merge_trees(base_tree, ours_tree, theirs_tree, labels, options)
            .map_err(gix_err)?;
        let how = TreatAsUnresolved::git();
        let mut paths: Vec<String> = outcome
            .conflicts
            .iter()
            .filter(|c| c.is_unresolved(how))
            .map(|c| c.ours.location().to_string())
            .filter(|p| !p.is_empty() && !is_owned(p))
            .collect();
        if !paths.is_empty() {
            paths.sort();
            paths.dedup();
            return Ok(MergeOutcome::Conflict { paths });
        }
        outcome.tree.write().map_err(gix_err)?.detach()
    };
    let (edited, _) = apply_owned(&scratch, onto, None, tree_id, owned)?;
    let tree_id = edited.unwrap_or(tree_id);
    if let Some(objects) = scratch.objects.take_object_memory() {
        for (kind, data) in objects.values() {
            repo.objects.write_buf(*kind, data).map_err(gix_err)?;
        }
    }
    let id = write_commit(repo, tree_id, parents, message)?;
    Ok(MergeOutcome::Merged(id))
}
