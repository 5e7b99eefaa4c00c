//! The end of a session: removing its worktrees and branches, keeping (or parking) anything
//! that holds unmerged work, and taking back a session that did nothing.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Slot;
use crate::batch::pool;
use crate::batch::results::BatchReport;
use crate::git;
use crate::manifest::ManifestFile;

/// Remove what a session created that did no work: its worktrees, their branches, the
/// integration branch and its manifest entry. Anything that refuses to go is reported.
pub(super) fn undo_session(
    main: &gix::Repository,
    slots: &[Slot],
    integration: &str,
    manifest: &ManifestFile,
    sid: &str,
    report: &mut BatchReport,
) {
    for slot in slots {
        let registered = git::list_worktrees(main)
            .map(|l| l.iter().any(|w| git::worktree_path_eq(&w.path, &slot.path)))
            .unwrap_or(false);
        if registered {
            let _ = git::unlock_worktree(main, &slot.path);
            if let Err(e) = git::remove_worktree(main, &slot.path, false) {
                report
                    .notes
                    .push(format!("kept worktree {}: {e}", slot.path.display()));
                continue;
            }
        }
        if matches!(
            git::resolve_ref(main, &format!("refs/heads/{}", slot.branch)),
            Ok(Some(_))
        ) {
            if let Err(e) = git::delete_branch_guarded(main, &slot.branch, |b| b == slot.branch) {
                report
                    .notes
                    .push(format!("kept branch {}: {e}", slot.branch));
            }
        }
    }
    if let Err(e) = git::delete_branch_guarded(main, integration, |b| b == integration) {
        report.notes.push(format!("kept branch {integration}: {e}"));
    }
    let _ = manifest.update(|m| {
        m.sessions.remove(sid);
        Ok(())
    });
}

/// Remove one slot's worktree and branch, or park the worktree when `park` is given and its
/// branch is merged into `integration_tip`; keep anything that holds unmerged work (a dirty
/// worktree, a branch with commits on no other ref) and say so in `notes`. Used at the end of a
/// batch and by a slot that has nothing left to do while others still run.
/// `removal`: the worktree's change record, when its slot still has it, and the bin that
/// deletes the files once the worktree is unregistered.
pub(super) fn retire_slot(
    main: &gix::Repository,
    slot: &Slot,
    integration_tip: Option<git::ObjectId>,
    park: Option<(&ManifestFile, &Path, usize)>,
    removal: (Option<&mut git::WorktreeWatch>, &git::TrashBin),
    notes: &mut Vec<String>,
) {
    // The crash test's point: one worktree gone, the next not yet (early or at the end).
    static RETIRED: AtomicUsize = AtomicUsize::new(0);
    if RETIRED.fetch_add(1, Ordering::SeqCst) == 1 {
        crate::fault::point("cleanup");
    }
    let exists = git::list_worktrees(main)
        .map(|l| l.iter().any(|w| git::worktree_path_eq(&w.path, &slot.path)))
        .unwrap_or(false);
    if exists {
        if let (Some((manifest, dir, max)), Some(tip)) = (park, integration_tip) {
            let merged = git::resolve_ref(main, &format!("refs/heads/{}", slot.branch))
                .ok()
                .flatten()
                .is_some_and(|b| git::is_ancestor(main, b, tip).unwrap_or(false));
            if merged {
                match pool::park(main, manifest, dir, &slot.path, &slot.branch, max) {
                    Ok(_) => return,
                    Err(e) => notes.push(format!(
                        "could not keep {} for reuse: {e}",
                        slot.path.display()
                    )),
                }
            }
        }
        // Removed still locked (our own lock; `remove_worktree` refuses it if dirty): a
        // `clean-orphans` or `git worktree prune` running meanwhile, as can happen while other
        // slots still run, must not take its admin folder once the checkout is gone. With
        // submodules, unlocked, so that gix's own check refuses populated ones.
        let submodules = slot.path.join(".gitmodules").symlink_metadata().is_ok();
        if submodules {
            let _ = git::unlock_worktree(main, &slot.path);
        }
        let (watch, bin) = removal;
        if let Err(e) = git::remove_worktree_with(main, &slot.path, !submodules, watch, Some(bin)) {
            // Kept as before this batch locked it.
            let _ = git::unlock_worktree(main, &slot.path);
            notes.push(format!("kept worktree {}: {e}", slot.path.display()));
            return;
        }
    }
    // A slot whose worktree could not be made has no branch: nothing to say about it.
    let full = format!("refs/heads/{}", slot.branch);
    if !matches!(git::resolve_ref(main, &full), Ok(Some(_))) {
        return;
    }
    if let Err(e) = git::delete_branch_guarded(main, &slot.branch, |b| b == slot.branch) {
        notes.push(format!("kept branch {}: {e}", slot.branch));
    }
}

/// Remove the session's worktrees and branches; keep anything that holds unmerged work.
pub(super) fn cleanup(
    main: &gix::Repository,
    slots: &[Slot],
    integration: &str,
    landed: bool,
    park: Option<(&ManifestFile, &Path, usize)>,
    bin: &git::TrashBin,
    report: &mut BatchReport,
) {
    let integration_tip = git::resolve_ref(main, &format!("refs/heads/{integration}"))
        .ok()
        .flatten();
    for slot in slots {
        retire_slot(
            main,
            slot,
            integration_tip,
            park,
            (None, bin),
            &mut report.notes,
        );
    }
    if landed {
        // Sessions that finish together update refs at the same moment; a deletion that lost
        // the race for a ref lock is tried again before the branch is reported as kept.
        let mut deleted = git::delete_branch_guarded(main, integration, |b| b == integration);
        for _ in 0..4 {
            if deleted.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            deleted = git::delete_branch_guarded(main, integration, |b| b == integration);
        }
        if let Err(e) = deleted {
            report.notes.push(format!("kept branch {integration}: {e}"));
        }
    } else {
        report
            .notes
            .push(format!("the batch's work is on branch {integration}"));
    }
}
