//! Repository work through gix: discovery, worktrees, branches, in-memory merges, rescue refs.
//! Knows nothing about agents or stories.
//!
//! # Threads
//!
//! [`gix::Repository`] is `Send` but not `Sync`: every function here takes `&Repository`, and a
//! caller that works on several threads opens one handle per thread — keep a
//! [`gix::ThreadSafeRepository`] (`repo.clone().into_sync()`) and call `.to_thread_local()` in each
//! thread. Handles are cheap to make that way; object caches are per handle.
//!
//! # Safety rules kept by this module
//!
//! - Nothing here discards uncommitted work: removing or resetting a worktree refuses when it is
//!   dirty, and deleting a branch refuses when its commits are reachable from no other ref.
//! - Every branch move is a compare-and-swap against the value read before the work started.

mod checkout;
pub mod config_env;
mod diff_update;
mod history;
pub mod hooks;
mod identity;
mod merge;
mod quick_status;
mod refs;
mod repo;
mod sign;
mod snapshot;
mod status;
mod watch;
mod worktree;

pub use checkout::{
    land_fast_forward_checkout, reset_clean_worktree_to, reset_clean_worktree_with,
    reset_worktree_to, LandOutcome,
};
pub use history::{
    commit_exists, commits_between, count_unreachable_from, files_changed, is_ancestor, path_id_at,
};
pub use identity::require_identity;
pub use merge::{
    merge_commits_in_memory, merge_commits_in_memory_owning, merge_into_branch,
    merge_into_branch_owning, replay_in_memory, MergeOutcome, OwnedPath, OwnedReport,
};
pub use quick_status::KnownIndex;
pub(crate) use refs::delete_if_at;
pub use refs::{
    create_branch, create_ref_unique, delete_branch_guarded, local_branches, resolve_ref,
    set_head_branch, set_ref, update_ref_cas, CasOutcome,
};
pub(crate) use repo::discover_gix;
pub use repo::{
    common_dir, current_branch, discover, head_commit_id, main_worktree_root, work_tree_root,
};
pub use snapshot::snapshot_uncommitted;
pub use status::{
    changed_paths, changed_paths_refreshed, dirty_paths, is_clean,
    remove_untracked_in_owned_worktree, Refreshed, DIRTY_PATHS_LIMIT,
};
pub use watch::WorktreeWatch;
pub use worktree::{
    add_worktree, is_inside, list_worktrees, lock_worktree, move_worktree, prune_worktrees,
    remove_if_registration_cut_short, remove_trash, remove_worktree, remove_worktree_rescued,
    remove_worktree_with, unlock_worktree, worktree_path_eq, TrashBin, WorktreeInfo, TRASH_PREFIX,
};

pub use gix::{ObjectId, Repository};

use crate::error::Error;

/// Turn a gix error into ours, keeping its whole cause chain as one line of sentences
/// (`top: cause: cause`). gix 0.90 errors print only their top frame with `{}`, and with `{:#}`
/// a report made of Debug labels (`Message { message: … }`) that must never reach the user.
pub(crate) fn gix_err(e: impl std::error::Error) -> Error {
    Error::git(error_chain(&e))
}

/// An error and its sources, each by its `Display`, joined with `: `; a cause whose text is
/// already said is not repeated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gix's report of a failure with causes, as `repo.add_worktree` returns it.
    fn gix_failure() -> gix::Error {
        use gix::error::ResultExt;
        let cause: std::result::Result<(), std::io::Error> =
            Err(std::io::Error::other("no committer configured"));
        cause
            .or_raise(|| gix::error::message("Could not initialize the linked worktree HEAD"))
            .unwrap_err()
    }

    #[test]
    fn gix_errors_read_as_sentences_with_their_causes() {
        let text = gix_err(gix_failure()).to_string();
        assert!(!text.contains("Message {"), "{text}");
        assert!(!text.contains("Caused by"), "{text}");
        assert!(
            text.contains("Could not initialize the linked worktree HEAD")
                && text.contains("no committer configured"),
            "{text}"
        );
    }
}
